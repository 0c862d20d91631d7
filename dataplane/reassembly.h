// Reassembly of fragmented messages (docs/protocol.md §9) for the partitions one worker owns.
// Fragments are keyed by (client, producer, queue, partition, sequence); they may arrive in any
// order, in any frames, and more than once. A complete message is rebuilt as one unfragmented
// record — fragment 0's metadata followed by the whole payload — and appended like any other.
//
// Memory is fixed at start: kSlots buffers of the largest queue's maximum message size. When every
// slot is busy the fragment is answered THROTTLED (the producer retransmits); an incomplete
// message is dropped after kTimeoutNs without an ACK (the producer retransmits it whole).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "protocol/codec.h"
#include "protocol/errc.h"

namespace sluice::dataplane {

struct FragmentKey {
  uint64_t client_id = 0;
  uint64_t producer_id = 0;
  uint32_t queue = 0;
  uint32_t partition = 0;
  uint64_t sequence = 0;
  bool operator==(const FragmentKey&) const = default;
};

class Reassembly {
 public:
  static constexpr uint32_t kSlots = 8;
  static constexpr uint64_t kTimeoutNs = 5'000'000'000ull;
  static constexpr uint32_t kMaxFragments = 2048;

  // `max_message_bytes`: the largest payload any queue allows.
  explicit Reassembly(uint32_t max_message_bytes);

  struct Outcome {
    Errc errc = Errc::kOk;  // kOk: `complete` says whether a record is ready
    bool complete = false;
    std::span<const std::byte> record;  // the rebuilt record; valid until the next Add
  };
  // One fragment (m.is_fragment()) of a message whose queue allows `queue_max` payload bytes.
  Outcome Add(const FragmentKey& key, const protocol::MessageView& m, uint32_t queue_max,
              uint64_t now_ns);
  // Frees the slot of the last complete message (after the caller appended it).
  void Release();
  // Drops incomplete messages older than the timeout. Returns how many were dropped.
  uint32_t Expire(uint64_t now_ns);

  uint64_t dropped() const { return dropped_; }

 private:
  struct Slot {
    bool used = false;
    FragmentKey key;
    uint64_t started_ns = 0;
    uint32_t total_len = 0;
    uint32_t received = 0;             // payload bytes received (distinct fragments)
    bool have_first = false;
    std::vector<std::byte> meta;       // fragment 0's fixed part + metadata fields, capacity fixed
    std::vector<std::byte> payload;    // total_len bytes, capacity fixed
    std::vector<uint32_t> offsets;     // fragment offsets seen (duplicates are ignored)
  };
  Slot* FindOrClaim(const FragmentKey& key, uint64_t now_ns);
  Outcome Build(Slot& s);

  std::vector<Slot> slots_;
  std::vector<std::byte> record_;  // the rebuilt record
  Slot* completed_ = nullptr;
  uint64_t dropped_ = 0;
};

}  // namespace sluice::dataplane
