// Fixed-capacity FIFO ring, sized once (power of two) and never grown: the shard's queues have a
// limit each (TigerBeetle style), and a full ring is an expected outcome the caller turns into
// kThrottled, not an allocation.
#pragma once

#include <bit>
#include <cstdint>
#include <memory>

#include "protocol/assert.h"

namespace sluice::shard {

template <typename T>
class Ring {
 public:
  Ring() = default;
  explicit Ring(uint64_t min_capacity) { Reset(min_capacity); }

  void Reset(uint64_t min_capacity) {
    capacity_ = std::bit_ceil(min_capacity < 2 ? uint64_t{2} : min_capacity);
    items_ = std::make_unique<T[]>(capacity_);
    head_ = tail_ = 0;
  }

  bool empty() const { return head_ == tail_; }
  bool full() const { return tail_ - head_ == capacity_; }
  uint64_t size() const { return tail_ - head_; }
  uint64_t capacity() const { return capacity_; }

  // i-th element from the front (0 = oldest).
  T& operator[](uint64_t i) { return items_[(head_ + i) & (capacity_ - 1)]; }
  const T& operator[](uint64_t i) const { return items_[(head_ + i) & (capacity_ - 1)]; }
  T& front() { SLUICE_ASSERT(!empty()); return items_[head_ & (capacity_ - 1)]; }
  const T& front() const { SLUICE_ASSERT(!empty()); return items_[head_ & (capacity_ - 1)]; }
  T& back() { SLUICE_ASSERT(!empty()); return items_[(tail_ - 1) & (capacity_ - 1)]; }

  void push_back(const T& v) {
    SLUICE_ASSERT(!full());
    items_[tail_++ & (capacity_ - 1)] = v;
  }
  // The next slot, to be filled in place (no temporary: a large T built on the stack and copied
  // in costs a store-forwarding stall per push on the per-message path).
  T& emplace_back() {
    SLUICE_ASSERT(!full());
    return items_[tail_++ & (capacity_ - 1)];
  }
  void pop_front() {
    SLUICE_ASSERT(!empty());
    ++head_;
  }
  // Drops the n oldest (trivially destructible T: nothing to run per element).
  void pop_front(uint64_t n) {
    SLUICE_ASSERT(n <= size());
    head_ += n;
  }

 private:
  std::unique_ptr<T[]> items_;
  uint64_t capacity_ = 0;
  uint64_t head_ = 0;  // monotonically increasing; masked on access
  uint64_t tail_ = 0;
};

}  // namespace sluice::shard
