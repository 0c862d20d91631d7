// Seeded random values for protocol tests and the fuzz corpus generator. Everything a generated
// MessageSpec points to is owned by the OwnedMessage, so keep it alive while the spec is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "protocol/codec.h"

namespace sluice::protocol::testing {

class Rng {
 public:
  explicit Rng(uint64_t seed) : g_(seed) {}
  uint64_t U64() { return g_(); }
  uint32_t U32() { return static_cast<uint32_t>(g_()); }
  uint16_t U16() { return static_cast<uint16_t>(g_()); }
  uint8_t U8() { return static_cast<uint8_t>(g_()); }
  // Uniform in [0, n); n > 0.
  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(g_); }
  uint64_t Between(uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(g_);
  }
  bool OneIn(uint64_t n) { return Below(n) == 0; }
  // Mostly short, sometimes up to max_len; any byte values (binary-safe).
  std::string Bytes(size_t max_len) {
    size_t n = OneIn(4) ? 0 : (OneIn(8) ? Below(max_len + 1) : Below(std::min<size_t>(max_len, 24) + 1));
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(U8());
    return s;
  }
  std::mt19937_64& engine() { return g_; }

 private:
  std::mt19937_64 g_;
};

struct OwnedMessage {
  std::string key, dedup, reply_to, correlation, group;
  std::vector<std::string> header_keys, header_values;
  std::vector<Header> headers;
  std::vector<std::byte> payload;
  MessageSpec spec;

  // Rebuilds spec's views after the strings are set (call after copying/moving too).
  void Bind() {
    headers.clear();
    for (size_t i = 0; i < header_keys.size(); ++i) headers.push_back({header_keys[i], header_values[i]});
    spec.key = key;
    spec.dedup_id = dedup;
    spec.reply_to = reply_to;
    spec.correlation_id = correlation;
    spec.group_id = group;
    spec.headers = headers;
    spec.payload = payload;
  }
};

inline uint16_t RandomPartition(Rng& r, bool allow_any) {
  if (allow_any && r.OneIn(4)) return kAnyPartition;
  return static_cast<uint16_t>(r.OneIn(2) ? r.Below(8) : r.Below(kAnyPartition));
}

inline void RandomMessage(Rng& r, size_t max_payload, OwnedMessage* m) {
  *m = OwnedMessage{};
  m->spec.partition = RandomPartition(r, true);
  m->spec.priority = static_cast<uint8_t>(r.Below(kMaxPriority + 1));
  m->spec.sequence = r.U64();
  m->spec.timestamp_ns = r.OneIn(2) ? 0 : r.U64();
  m->spec.delay_ms = r.OneIn(2) ? 0 : static_cast<uint32_t>(r.Below(kMaxDelayMs + 1));
  m->spec.ttl_ms = r.OneIn(2) ? 0 : r.U32();
  m->key = r.Bytes(64);
  if (r.OneIn(3)) {
    size_t n = r.Between(1, 4);
    for (size_t i = 0; i < n; ++i) {
      m->header_keys.push_back(r.Bytes(16));
      m->header_values.push_back(r.Bytes(32));
    }
  }
  m->dedup = r.OneIn(2) ? std::string() : r.Bytes(40);
  m->reply_to = r.OneIn(3) ? r.Bytes(40) : std::string();
  m->correlation = r.OneIn(3) ? r.Bytes(40) : std::string();
  m->group = r.OneIn(3) ? r.Bytes(40) : std::string();
  size_t n = r.OneIn(10) ? 0 : r.Below(max_payload + 1);
  m->payload.resize(n);
  for (std::byte& b : m->payload) b = static_cast<std::byte>(r.U8());
  m->Bind();
}

inline FrameIds RandomIds(Rng& r) {
  FrameIds ids;
  ids.client_id = r.U64();
  ids.request_id = r.U64();
  ids.flags = static_cast<uint16_t>((r.OneIn(4) ? kFlagAuth : 0) | (r.OneIn(4) ? kFlagMore : 0));
  return ids;
}

inline StartKind RandomStartKind(Rng& r, bool allow_committed) {
  return static_cast<StartKind>(r.Below(allow_committed ? kMaxStartKind + 1 : kMaxStartKind));
}
inline uint64_t StartValueFor(Rng& r, StartKind k) {
  return (k == StartKind::kOffset || k == StartKind::kTimestamp) ? r.U64() : 0;
}
inline uint16_t RandomReplyFrameBytes(Rng& r) {
  return r.OneIn(2) ? 0 : static_cast<uint16_t>(r.Between(kMinReplyFrameBytes, kMaxFrameBytes));
}

inline ReceiveRequest RandomReceive(Rng& r) {
  ReceiveRequest q;
  q.queue_id = r.U32();
  q.partition = RandomPartition(r, true);
  q.max_messages = static_cast<uint16_t>(r.Between(1, kMaxReceiveMessages));
  q.visibility_ms = r.OneIn(3) ? kQueueDefaultVisibility : static_cast<uint32_t>(r.Below(kMaxVisibilityMs + 1));
  q.wait_ms = r.OneIn(4) ? kQueueDefaultWait : static_cast<uint32_t>(r.Below(kMaxWaitMs + 1));
  q.max_frame_bytes = RandomReplyFrameBytes(r);
  return q;
}

inline FetchRequest RandomFetch(Rng& r) {
  FetchRequest q;
  q.queue_id = r.U32();
  q.partition = RandomPartition(r, false);
  q.start_kind = RandomStartKind(r, false);
  q.start_value = StartValueFor(r, q.start_kind);
  q.max_messages = static_cast<uint16_t>(r.Between(1, kMaxReceiveMessages));
  q.max_frame_bytes = RandomReplyFrameBytes(r);
  q.max_bytes = r.U32();
  return q;
}

inline CreditGrant RandomCredit(Rng& r) {
  return CreditGrant{r.U64(), RandomPartition(r, false), r.U32(), r.U64()};
}
inline NakRequest RandomNak(Rng& r) {
  return NakRequest{r.U64(), RandomPartition(r, false), static_cast<uint32_t>(r.Between(1, UINT32_MAX)), r.U64()};
}
inline Heartbeat RandomHeartbeat(Rng& r) { return Heartbeat{r.U64(), r.U64(), r.U32()}; }
inline LookupReply RandomLookupReply(Rng& r) {
  return LookupReply{r.U32(), static_cast<uint16_t>(r.Between(1, kMaxPartitions)),
                     r.OneIn(2) ? QueueType::kWorkQueue : QueueType::kStream,
                     static_cast<uint32_t>(r.Below(kMaxMessageBytes + 1))};
}
inline UnsubscribeRequest RandomUnsubscribe(Rng& r) {
  return UnsubscribeRequest{r.Between(1, UINT64_MAX), RandomPartition(r, true)};
}
inline AckRange RandomAckRange(Rng& r) {
  return AckRange{RandomPartition(r, false), static_cast<Errc>(r.Below(22)),
                  static_cast<uint32_t>(r.Between(1, UINT32_MAX)), r.U64(), r.U64()};
}
inline ReceiptOp RandomReceiptOp(Rng& r, FrameType t) {
  uint32_t ms = t == FrameType::kDelete ? 0
                : t == FrameType::kNack ? static_cast<uint32_t>(r.Below(kMaxDelayMs + 1))
                                        : static_cast<uint32_t>(r.Below(kMaxVisibilityMs + 1));
  return ReceiptOp{r.U32(), RandomPartition(r, false), r.Between(1, UINT64_MAX), ms};
}
inline ResultItem RandomResultItem(Rng& r) {
  return ResultItem{static_cast<Errc>(r.Below(22)), r.U32(), r.U64()};
}
inline DeliveredMeta RandomMeta(Rng& r) {
  return DeliveredMeta{r.U64(), r.U64(), r.U64(), r.U64(), RandomPartition(r, false), r.U16()};
}

}  // namespace sluice::protocol::testing
