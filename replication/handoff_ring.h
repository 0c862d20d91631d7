// The hand-off from a shard lcore to a dedicated replication lcore (docs/replication.md §1,
// "A replication lcore"): a single-producer / single-consumer ring of variable-length messages
// over one fixed byte buffer. The producer (the shard lcore) copies a message in (a durable
// batch, an ack-log record, a partition opened or closed); the consumer (the replication lcore)
// reads it in place and releases it. No lock, no allocation after construction: two monotonic
// positions, each written by one side (release) and read by the other (acquire).
//
// A message is an 8-byte length word followed by its bytes, padded to 8; one that does not fit
// before the buffer's end is preceded by a pad word and starts again at 0 (a message is therefore
// contiguous, at most half the buffer). A full ring refuses the message (Begin returns null): the
// producer decides what then (dataplane/replication_handoff.h: never lost silently).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace sluice::replication {

class HandoffRing {
 public:
  // `bytes`: a power of two, at least 64.
  explicit HandoffRing(uint32_t bytes);

  // The largest message that can ever fit.
  uint32_t max_message() const { return size_ / 2 - kWord; }

  // Producer. A slot of `len` bytes (0 < len <= max_message(): Peek's empty span means "none"),
  // or null when the ring is full for
  // now. Commit publishes it; at most one Begin is open at a time.
  std::byte* Begin(uint32_t len);
  void Commit();
  // Producer: copies `a` then `b` into one message; false when full.
  bool Push(std::span<const std::byte> a, std::span<const std::byte> b = {});

  // Consumer: the oldest message (empty span: none), valid until Pop.
  std::span<const std::byte> Peek();
  void Pop();
  bool Empty() const {
    return head_.v.load(std::memory_order_acquire) == tail_.v.load(std::memory_order_acquire);
  }
  uint32_t size() const { return size_; }

 private:
  static constexpr uint32_t kWord = 8;
  static constexpr uint64_t kPad = UINT64_MAX;
  static uint32_t Padded(uint32_t len) { return (len + kWord - 1) & ~(kWord - 1); }
  uint64_t ReadWord(uint64_t pos) const;
  void WriteWord(uint64_t pos, uint64_t w);

  const uint32_t size_;
  std::unique_ptr<std::byte[]> buf_;
  // Positions count bytes since the start (never wrap in practice: 2^64 bytes).
  struct alignas(64) Pos { std::atomic<uint64_t> v{0}; };
  Pos head_;  // producer writes: the end of committed messages
  Pos tail_;  // consumer writes: the start of unreleased messages
  // Producer-private: the open message.
  alignas(64) uint64_t open_pos_ = 0;   // where its bytes start
  uint64_t open_end_ = 0;               // head after Commit
  uint64_t cached_tail_ = 0;
  // Consumer-private: the message Peek returned.
  alignas(64) uint64_t peek_end_ = 0;
};

// The replication lcore's answers to the shard lcores (docs/replication.md §1): per partition,
// the standby's durable end while in sync (what Replicator::Replicated returns), and the ack
// records the standby applied while the partition's ack stream runs (AckReplicated). One writer
// (the replication lcore), any number of readers; no lock, insert-only open addressing over a
// fixed table, as DurableBoard.
class ReplicatedBoard {
 public:
  static constexpr uint32_t kSlots = 8192;
  static constexpr uint64_t kNo = UINT64_MAX;  // not in sync / ack stream not running

  // Writer. False only when the table is full (the partition then reads "not in sync").
  bool Set(uint32_t queue, uint32_t partition, uint64_t end, uint64_t acks_applied);
  // Readers: false when not in sync (or never set).
  bool Replicated(uint32_t queue, uint32_t partition, uint64_t* end) const;
  bool AcksApplied(uint32_t queue, uint32_t partition, uint64_t* applied) const;

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};  // (queue << 32 | partition) + 1; 0: free
    std::atomic<uint64_t> end{kNo};
    std::atomic<uint64_t> acks{kNo};
  };
  const Slot* Find(uint32_t queue, uint32_t partition) const;
  std::unique_ptr<Slot[]> slots_ = std::make_unique<Slot[]>(kSlots);
};

}  // namespace sluice::replication
