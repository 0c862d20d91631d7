// Memory for a shard's big tables (the work queue's slots, the chunk pool): allocated once at
// start-up, 2 MiB-aligned and advised for transparent huge pages when it is that large.
//
// Why: a queue with millions of messages touches its slots and records in an order no cache
// holds, and with 4 KiB pages most of those touches also miss the TLB (a page walk, two
// dimensional under a hypervisor). 2 MiB pages cut the walks by 512. The kernel may still refuse
// (THP "never", fragmentation): then it is ordinary memory, only slower. DPDK hugepage memory
// would do the same; the engine stays free of DPDK.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>

#include "protocol/assert.h"

namespace sluice::shard {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// `bytes` of memory aligned to `align` (at least); 2 MiB-aligned, rounded up to 2 MiB and advised
// MADV_HUGEPAGE when `bytes` is at least 2 MiB. Free with std::free.
inline std::byte* AllocateLarge(size_t bytes, size_t align) {
  SLUICE_ASSERT(align > 0 && (align & (align - 1)) == 0);
  if (bytes >= kHugePageBytes) {
    align = align > kHugePageBytes ? align : kHugePageBytes;
    bytes = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  }
  bytes = (bytes + align - 1) / align * align;  // aligned_alloc wants a multiple of align
  auto* p = static_cast<std::byte*>(std::aligned_alloc(align, bytes == 0 ? align : bytes));
  SLUICE_ASSERT(p != nullptr);  // start-up sizing: running out here is a configuration error
  if (bytes >= kHugePageBytes) (void)::madvise(p, bytes, MADV_HUGEPAGE);  // advice: may be refused
  return p;
}

// Writes a zero byte to each 4 KiB page of fresh memory [p, p + bytes) (a huge page faults in
// whole at its first write): the page faults happen now, at start-up, not on the message path.
// A write, not a read: a read of untouched memory maps the shared zero page and the first write
// would fault again.
inline void TouchPages(std::byte* p, size_t bytes) {
  constexpr size_t kPage = 4096;
  for (size_t i = 0; i < bytes; i += kPage) {
    *static_cast<volatile std::byte*>(p + i) = std::byte{0};  // volatile: must not be elided
  }
}

// A fixed-size array of T in such memory: sized once, elements value-initialized, never moved
// (TimerNodes inside are linked by address).
template <typename T>
class LargeArray {
 public:
  explicit LargeArray(size_t n)
      : data_(reinterpret_cast<T*>(AllocateLarge(n * sizeof(T), alignof(T)))), size_(n) {
    for (size_t i = 0; i < n; ++i) new (data_ + i) T();
  }
  ~LargeArray() {
    for (size_t i = 0; i < size_; ++i) data_[i].~T();
    std::free(data_);
  }
  LargeArray(const LargeArray&) = delete;
  LargeArray& operator=(const LargeArray&) = delete;

  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

 private:
  T* data_;
  size_t size_;
};

}  // namespace sluice::shard
