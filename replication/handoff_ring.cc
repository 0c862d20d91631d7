#include "replication/handoff_ring.h"

#include "protocol/assert.h"

namespace sluice::replication {

HandoffRing::HandoffRing(uint32_t bytes) : size_(bytes), buf_(new std::byte[bytes]) {
  SLUICE_ASSERT(bytes >= 64 && (bytes & (bytes - 1)) == 0);
}

uint64_t HandoffRing::ReadWord(uint64_t pos) const {
  uint64_t w;
  std::memcpy(&w, buf_.get() + (pos & (size_ - 1)), sizeof w);
  return w;
}

void HandoffRing::WriteWord(uint64_t pos, uint64_t w) {
  std::memcpy(buf_.get() + (pos & (size_ - 1)), &w, sizeof w);
}

std::byte* HandoffRing::Begin(uint32_t len) {
  SLUICE_ASSERT(len > 0 && len <= max_message());
  const uint64_t head = head_.v.load(std::memory_order_relaxed);
  const uint32_t at = static_cast<uint32_t>(head & (size_ - 1));
  // Positions are multiples of 8 and the buffer a power of two >= 64: a word always fits.
  uint64_t start = head;
  if (at + kWord + Padded(len) > size_) start = head + (size_ - at);  // pad to the end
  const uint64_t end = start + kWord + Padded(len);
  if (end - cached_tail_ > size_) {
    cached_tail_ = tail_.v.load(std::memory_order_acquire);
    if (end - cached_tail_ > size_) return nullptr;
  }
  if (start != head) WriteWord(head, kPad);
  WriteWord(start, len);
  open_pos_ = start + kWord;
  open_end_ = end;
  return buf_.get() + (open_pos_ & (size_ - 1));
}

void HandoffRing::Commit() {
  SLUICE_ASSERT(open_end_ != 0);
  head_.v.store(open_end_, std::memory_order_release);
  open_end_ = 0;
}

bool HandoffRing::Push(std::span<const std::byte> a, std::span<const std::byte> b) {
  if (a.size() + b.size() > max_message()) return false;
  std::byte* p = Begin(static_cast<uint32_t>(a.size() + b.size()));
  if (p == nullptr) return false;
  if (!a.empty()) std::memcpy(p, a.data(), a.size());
  if (!b.empty()) std::memcpy(p + a.size(), b.data(), b.size());
  Commit();
  return true;
}

std::span<const std::byte> HandoffRing::Peek() {
  uint64_t tail = tail_.v.load(std::memory_order_relaxed);
  const uint64_t head = head_.v.load(std::memory_order_acquire);
  if (tail == head) return {};
  uint64_t w = ReadWord(tail);
  if (w == kPad) {
    tail += size_ - (tail & (size_ - 1));
    SLUICE_ASSERT(tail != head);  // a pad word is only written before a message
    w = ReadWord(tail);
  }
  SLUICE_ASSERT(w <= max_message());
  const uint32_t len = static_cast<uint32_t>(w);
  peek_end_ = tail + kWord + Padded(len);
  return {buf_.get() + ((tail + kWord) & (size_ - 1)), len};
}

void HandoffRing::Pop() {
  SLUICE_ASSERT(peek_end_ != 0);
  tail_.v.store(peek_end_, std::memory_order_release);
  peek_end_ = 0;
}

namespace {
uint64_t BoardKey(uint32_t q, uint32_t p) { return ((uint64_t{q} << 32) | p) + 1; }
uint32_t BoardHome(uint64_t key, uint32_t slots) {
  return static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 40) % slots;
}
}  // namespace

bool ReplicatedBoard::Set(uint32_t queue, uint32_t partition, uint64_t end, uint64_t acks) {
  const uint64_t key = BoardKey(queue, partition);
  for (uint32_t i = 0, s = BoardHome(key, kSlots); i < kSlots; ++i, s = (s + 1) % kSlots) {
    const uint64_t k = slots_[s].key.load(std::memory_order_relaxed);
    if (k != key && k != 0) continue;
    // The values first: a reader that finds the key reads them (or the defaults).
    slots_[s].end.store(end, std::memory_order_release);
    slots_[s].acks.store(acks, std::memory_order_release);
    if (k == 0) slots_[s].key.store(key, std::memory_order_release);
    return true;
  }
  return false;
}

const ReplicatedBoard::Slot* ReplicatedBoard::Find(uint32_t queue, uint32_t partition) const {
  const uint64_t key = BoardKey(queue, partition);
  for (uint32_t i = 0, s = BoardHome(key, kSlots); i < kSlots; ++i, s = (s + 1) % kSlots) {
    const uint64_t k = slots_[s].key.load(std::memory_order_acquire);
    if (k == key) return &slots_[s];
    if (k == 0) return nullptr;
  }
  return nullptr;
}

bool ReplicatedBoard::Replicated(uint32_t queue, uint32_t partition, uint64_t* end) const {
  const Slot* s = Find(queue, partition);
  if (s == nullptr) return false;
  const uint64_t e = s->end.load(std::memory_order_acquire);
  if (e == kNo) return false;
  *end = e;
  return true;
}

bool ReplicatedBoard::AcksApplied(uint32_t queue, uint32_t partition, uint64_t* applied) const {
  const Slot* s = Find(queue, partition);
  if (s == nullptr || s->end.load(std::memory_order_acquire) == kNo) return false;
  const uint64_t a = s->acks.load(std::memory_order_acquire);
  if (a == kNo) return false;
  *applied = a;
  return true;
}

}  // namespace sluice::replication
