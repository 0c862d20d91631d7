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

uint32_t ReplicaCommitBoard::Home(uint32_t queue, std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ull ^ queue;  // FNV-1a over the queue and the key
  for (char c : key) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return static_cast<uint32_t>((h * 0x9E3779B97F4A7C15ull) >> 40) % kSlots;
}

bool ReplicaCommitBoard::Set(uint32_t queue, std::string_view key, uint64_t offset) {
  if (key.size() > kMaxKeyBytes || offset == kNone) return false;
  for (uint32_t i = 0, s = Home(queue, key); i < kSlots; ++i, s = (s + 1) % kSlots) {
    Slot& slot = slots_[s];
    if (slot.used.load(std::memory_order_relaxed) == 0) {
      // The key and the offset first, then the slot: a reader that sees it used sees them.
      slot.queue = queue;
      slot.len = static_cast<uint32_t>(key.size());
      std::memcpy(slot.key, key.data(), key.size());
      slot.offset.store(offset, std::memory_order_relaxed);
      slot.used.store(1, std::memory_order_release);
      return true;
    }
    if (slot.queue == queue && std::string_view(slot.key, slot.len) == key) {
      slot.offset.store(offset, std::memory_order_release);
      return true;
    }
  }
  return false;
}

void ReplicaCommitBoard::Retain(uint32_t queue,
                                absl::FunctionRef<bool(std::string_view key)> keep) {
  for (uint32_t s = 0; s < kSlots; ++s) {
    Slot& slot = slots_[s];
    if (slot.used.load(std::memory_order_relaxed) == 0 || slot.queue != queue) continue;
    if (!keep(std::string_view(slot.key, slot.len))) {
      slot.offset.store(kNone, std::memory_order_release);
    }
  }
}

bool ReplicaCommitBoard::Get(uint32_t queue, std::string_view key, uint64_t* offset) const {
  if (key.size() > kMaxKeyBytes) return false;
  for (uint32_t i = 0, s = Home(queue, key); i < kSlots; ++i, s = (s + 1) % kSlots) {
    const Slot& slot = slots_[s];
    if (slot.used.load(std::memory_order_acquire) == 0) return false;
    if (slot.queue != queue || std::string_view(slot.key, slot.len) != key) continue;
    const uint64_t v = slot.offset.load(std::memory_order_acquire);
    if (v == kNone) return false;
    *offset = v;
    return true;
  }
  return false;
}

}  // namespace sluice::replication
