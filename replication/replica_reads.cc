#include "replication/replica_reads.h"

namespace sluice::replication {

bool PushReplicaRequest(HandoffRing& ring, const ReplicaReadRequest& r) {
  return ring.Push({reinterpret_cast<const std::byte*>(&r), sizeof r});
}

bool PeekReplicaRequest(HandoffRing& ring, ReplicaReadRequest* r) {
  const std::span<const std::byte> m = ring.Peek();
  if (m.empty()) return false;
  SLUICE_ASSERT(m.size() == sizeof *r);
  std::memcpy(r, m.data(), sizeof *r);
  return true;
}

namespace {
uint64_t StartKey(uint32_t q, uint32_t p) { return ((uint64_t{q} << 32) | p) + 1; }
uint32_t StartHome(uint64_t key, uint32_t slots) {
  return static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 40) % slots;
}
}  // namespace

bool ReplicaStartBoard::Store(uint32_t queue, uint32_t partition, uint64_t start) {
  const uint64_t key = StartKey(queue, partition);
  for (uint32_t i = 0, s = StartHome(key, kSlots); i < kSlots; ++i, s = (s + 1) % kSlots) {
    const uint64_t k = slots_[s].key.load(std::memory_order_relaxed);
    if (k != key && k != 0) continue;
    if (k == 0 && start == kClosed) return true;  // never opened: reads "not open" already
    // The value first: a reader that finds the key reads it (or "closed").
    slots_[s].start.store(start, std::memory_order_release);
    if (k == 0) slots_[s].key.store(key, std::memory_order_release);
    return true;
  }
  return false;
}

bool ReplicaStartBoard::Set(uint32_t queue, uint32_t partition, uint64_t start) {
  SLUICE_ASSERT(start != kClosed);
  return Store(queue, partition, start);
}

bool ReplicaStartBoard::Close(uint32_t queue, uint32_t partition) {
  return Store(queue, partition, kClosed);
}

bool ReplicaStartBoard::Start(uint32_t queue, uint32_t partition, uint64_t* start) const {
  const uint64_t key = StartKey(queue, partition);
  for (uint32_t i = 0, s = StartHome(key, kSlots); i < kSlots; ++i, s = (s + 1) % kSlots) {
    const uint64_t k = slots_[s].key.load(std::memory_order_acquire);
    if (k == 0) return false;
    if (k != key) continue;
    const uint64_t v = slots_[s].start.load(std::memory_order_acquire);
    if (v == kClosed) return false;
    *start = v;
    return true;
  }
  return false;
}

}  // namespace sluice::replication
