// A ShardSink that records every event (copying record bytes, which are only valid during the
// callback), and helpers shared by the shard tests.
#pragma once

#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/shard/shard.h"

namespace sluice::shard::testing {

inline std::span<const std::byte> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string Str(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

struct RecordingSink final : ShardSink {
  struct Deliver {
    Delivery d;
    std::string record;
  };
  struct Lease {
    Leased l;
    std::string record;
  };
  struct Dead {
    DeadLetter d;
    std::string record;
  };
  std::vector<AckRange> acks;
  std::vector<Deliver> deliveries;
  std::vector<SubscriptionGap> gaps;
  std::vector<Lease> leased;
  std::vector<ReceiveDone> done;
  std::vector<Dead> dead;

  void OnAck(const AckRange& a) override { acks.push_back(a); }
  void OnDeliver(const Delivery& d) override {
    deliveries.push_back({d, Str(d.message.record)});
    deliveries.back().d.message.record = {};
  }
  void OnSubscriptionGap(const SubscriptionGap& g) override { gaps.push_back(g); }
  void OnLeased(const Leased& l) override {
    leased.push_back({l, Str(l.message.record)});
    leased.back().l.message.record = {};
  }
  void OnReceiveDone(const ReceiveDone& d) override { done.push_back(d); }
  void OnDeadLetter(const DeadLetter& d) override {
    dead.push_back({d, Str(d.message.record)});
    dead.back().d.message.record = {};
  }
  void Clear() { *this = RecordingSink{}; }
};

inline MessageIn Msg(std::string_view payload, uint16_t partition = 0) {
  MessageIn m;
  m.record = Bytes(payload);
  m.partition = partition;
  return m;
}

constexpr uint64_t kMs = 1'000'000;

}  // namespace sluice::shard::testing
