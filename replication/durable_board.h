// The standby's durable end of every partition, shared between its replication channels
// (docs/replication.md §1, §13). Each channel (a worker lcore) publishes the durable ends of the
// partitions it writes; the others read them: a group commit is logged in partition 0's ack log
// but names another partition, possibly another channel's, and is applied only once that
// partition's data is durable here.
//
// One writer per partition, any number of readers; no lock, no allocation after construction:
// insert-only open addressing over a fixed table (a closed partition's entry stays, at 0). A
// write per storage completion, a read per ack record that names another channel's partition.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "replication/standby.h"

namespace sluice::replication {

class DurableBoard final : public DurableLookup {
 public:
  // Partitions a box can hold at once (every queue's, over all channels): far above the tens
  // of replicated partitions the per-partition rings are sized for (§3).
  static constexpr uint32_t kSlots = 8192;

  // The channel that writes (queue, partition) states its durable end (first call: inserts).
  // Returns false only when the table is full (the partition then reads 0: its commits wait).
  bool Set(uint32_t queue, uint32_t partition, uint64_t end);
  // 0 for a partition never set.
  uint64_t DurableEnd(uint32_t queue, uint32_t partition) const override;

 private:
  struct Slot {
    std::atomic<uint64_t> key{0};  // (queue << 32 | partition) + 1; 0: free
    std::atomic<uint64_t> end{0};
  };
  static uint32_t Home(uint64_t key) {
    return static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 40) % kSlots;
  }
  std::unique_ptr<Slot[]> slots_ = std::make_unique<Slot[]>(kSlots);
};

}  // namespace sluice::replication
