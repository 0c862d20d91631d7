// A double-ended ring buffer of move-only values with power-of-two capacity that grows by
// doubling and never shrinks: after warm-up, push_back/pop_front allocate nothing (unlike
// std::deque, which allocates and frees blocks as it moves).
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "protocol/assert.h"

namespace sluice::client {

template <class T>
class Ring {
 public:
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) {
    SLUICE_ASSERT(i < size_);
    return slots_[(head_ + i) & (slots_.size() - 1)];
  }
  const T& operator[](size_t i) const {
    SLUICE_ASSERT(i < size_);
    return slots_[(head_ + i) & (slots_.size() - 1)];
  }
  T& front() { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }

  void push_back(T v) {
    if (size_ == slots_.size()) Grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(v);
    ++size_;
  }
  void pop_front() {
    SLUICE_ASSERT(size_ > 0);
    slots_[head_] = T{};  // release what the value holds (callbacks, buffers)
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
  }
  void clear() {
    while (size_ > 0) pop_front();
    head_ = 0;
  }

 private:
  void Grow() {
    std::vector<T> bigger(slots_.empty() ? 16 : slots_.size() * 2);
    for (size_t i = 0; i < size_; ++i) bigger[i] = std::move((*this)[i]);
    slots_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<T> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace sluice::client
