#include "replication/durable_board.h"

namespace sluice::replication {
namespace {

uint64_t KeyOf(uint32_t queue, uint32_t partition) {
  // +1 keeps 0 free; (2^32-1, 2^32-1) would wrap to 0, and is no partition sluice creates.
  return ((uint64_t{queue} << 32) | partition) + 1;
}

}  // namespace

bool DurableBoard::Set(uint32_t queue, uint32_t partition, uint64_t end) {
  const uint64_t key = KeyOf(queue, partition);
  uint32_t at = Home(key);
  for (uint32_t i = 0; i < kSlots; ++i, at = (at + 1) % kSlots) {
    Slot& slot = slots_[at];
    uint64_t k = slot.key.load(std::memory_order_acquire);
    // Another channel may claim the same free slot for its own partition at the same moment:
    // the CAS decides, the loser probes on.
    if (k == 0 && slot.key.compare_exchange_strong(k, key, std::memory_order_acq_rel)) k = key;
    if (k == key) {
      slot.end.store(end, std::memory_order_release);
      return true;
    }
  }
  return false;
}

uint64_t DurableBoard::DurableEnd(uint32_t queue, uint32_t partition) const {
  const uint64_t key = KeyOf(queue, partition);
  uint32_t at = Home(key);
  for (uint32_t i = 0; i < kSlots; ++i, at = (at + 1) % kSlots) {
    const Slot& slot = slots_[at];
    const uint64_t k = slot.key.load(std::memory_order_acquire);
    if (k == 0) return 0;  // keys are never removed: the probe would have found it before a gap
    if (k == key) return slot.end.load(std::memory_order_acquire);
  }
  return 0;
}

}  // namespace sluice::replication
