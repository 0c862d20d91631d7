#include "dataplane/shard/chunk_pool.h"

#include <cstdlib>

#include "dataplane/shard/large_array.h"
#include "protocol/assert.h"

namespace sluice::shard {

ChunkPool::ChunkPool(uint32_t chunk_bytes, uint32_t chunks, uint32_t align,
                     std::span<std::byte> arena, bool prefault)
    : chunk_bytes_(chunk_bytes), capacity_(chunks) {
  SLUICE_ASSERT(chunk_bytes > 0 && align > 0 && chunk_bytes % align == 0);
  const size_t total = static_cast<size_t>(chunk_bytes) * chunks;
  if (arena.empty()) {
    base_ = AllocateLarge(total, align);  // huge pages when large: records are touched at random
    owned_ = true;
    if (prefault) TouchPages(base_, total);
  } else {
    SLUICE_ASSERT(arena.size() >= total);
    SLUICE_ASSERT(reinterpret_cast<uintptr_t>(arena.data()) % align == 0);
    base_ = arena.data();
  }
  free_.reserve(chunks);
  // Hand out low ids first: the first chunks used are the first touched (page faults at start).
  for (uint32_t i = chunks; i > 0; --i) free_.push_back(i - 1);
  live_.assign(chunks, 0);
  in_use_.assign(chunks, false);
}

ChunkPool::~ChunkPool() {
  if (owned_) std::free(base_);
}

uint32_t ChunkPool::Acquire() {
  if (free_.empty()) return kNone;
  const uint32_t id = free_.back();
  free_.pop_back();
  SLUICE_ASSERT(!in_use_[id]);
  in_use_[id] = true;
  live_[id] = 0;
  return id;
}

void ChunkPool::Release(uint32_t id) {
  SLUICE_ASSERT(id < capacity_ && in_use_[id]);
  in_use_[id] = false;
  free_.push_back(id);
}

}  // namespace sluice::shard
