// The shard's memory for message bytes: fixed-size, aligned chunks carved out of one region at
// start-up. Partitions take and return whole chunks; nothing on the message path allocates.
// One contiguous region also lets the storage shell register it with io_uring once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sluice::shard {

class ChunkPool {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  // `arena` empty: allocate chunk_bytes * chunks aligned to `align`, and with `prefault` touch
  // every page of it now (ShardConfig::prefault_pool). Otherwise use `arena` (not owned).
  ChunkPool(uint32_t chunk_bytes, uint32_t chunks, uint32_t align, std::span<std::byte> arena,
            bool prefault = false);
  ~ChunkPool();
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;

  // A free chunk's id, or kNone when the pool is exhausted.
  uint32_t Acquire();
  void Release(uint32_t id);

  std::byte* data(uint32_t id) { return base_ + static_cast<size_t>(id) * chunk_bytes_; }
  const std::byte* data(uint32_t id) const {
    return base_ + static_cast<size_t>(id) * chunk_bytes_;
  }
  // Messages still needing the chunk (work queues free a chunk when this drops to zero).
  uint32_t& live(uint32_t id) { return live_[id]; }

  uint32_t chunk_bytes() const { return chunk_bytes_; }
  uint32_t capacity() const { return capacity_; }
  uint32_t free_count() const { return static_cast<uint32_t>(free_.size()); }
  std::span<std::byte> region() { return {base_, static_cast<size_t>(chunk_bytes_) * capacity_}; }

 private:
  std::byte* base_ = nullptr;
  bool owned_ = false;
  uint32_t chunk_bytes_;
  uint32_t capacity_;
  std::vector<uint32_t> free_;  // stack of free ids; reserved to capacity, never grows
  std::vector<uint32_t> live_;
  std::vector<bool> in_use_;    // catches double release
};

}  // namespace sluice::shard
