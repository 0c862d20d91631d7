// A log-linear histogram for the lcore's hot path: fixed buckets, filled by one thread (the
// owning lcore) with a few integer operations and two relaxed atomic stores per value — no lock,
// no allocation, no system call — and read at any time by another thread (the control plane's
// /metrics and telemetry), which sees each counter whole (relaxed loads), never torn.
//
// Buckets: (0, 2^kMinShift], then every power of two from 2^kMinShift to 2^kMaxShift split into
// 2^kSubBits equal steps (relative error at most 1/2^kSubBits), then the overflow (+Inf). Bucket
// i holds the values v with UpperBound(i-1) < v <= UpperBound(i), so the bounds are Prometheus'
// `le` labels as they are. Values are integers (ns, bytes, messages); 0 falls into bucket 0.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace sluice::shard {

template <unsigned kMinShift, unsigned kMaxShift, unsigned kSubBits>
class LogLinearHistogram {
  static_assert(kMinShift >= kSubBits && kMaxShift > kMinShift && kMaxShift < 63);

 public:
  static constexpr size_t kSteps = size_t{1} << kSubBits;
  // Finite upper bounds; bucket kBounds is the overflow (+Inf).
  static constexpr size_t kBounds = 1 + (kMaxShift - kMinShift) * kSteps;
  static constexpr size_t kBuckets = kBounds + 1;

  // The bucket of `v` (pure; the tests pin it against UpperBound).
  static constexpr size_t BucketOf(uint64_t v) {
    if (v <= (uint64_t{1} << kMinShift)) return 0;
    const uint64_t w = v - 1;  // buckets are (lo, hi]: classify v-1 in [lo, hi)
    const unsigned e = static_cast<unsigned>(std::bit_width(w)) - 1;
    if (e >= kMaxShift) return kBounds;
    const uint64_t step = (w >> (e - kSubBits)) & (kSteps - 1);
    return 1 + (e - kMinShift) * kSteps + step;
  }
  // Upper bound (inclusive) of bucket i < kBounds.
  static constexpr uint64_t UpperBound(size_t i) {
    if (i == 0) return uint64_t{1} << kMinShift;
    const unsigned e = kMinShift + static_cast<unsigned>((i - 1) / kSteps);
    const uint64_t step = (i - 1) % kSteps;
    return (uint64_t{1} << e) + ((step + 1) << (e - kSubBits));
  }

  // The owning thread only.
  void Record(uint64_t v) {
    Bump(counts_[BucketOf(v)], 1);
    Bump(sum_, v);
  }
  // The same as `n` calls of Record(v) (the shard records a run of acks of one latency at once).
  void Record(uint64_t v, uint64_t n) {
    Bump(counts_[BucketOf(v)], n);
    Bump(sum_, v * n);
  }

  // Any thread.
  uint64_t count(size_t bucket) const { return counts_[bucket].load(std::memory_order_relaxed); }
  uint64_t sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t total() const {
    uint64_t n = 0;
    for (const auto& c : counts_) n += c.load(std::memory_order_relaxed);
    return n;
  }

 private:
  // One writer: a load and a store (no read-modify-write instruction, no lock prefix).
  static void Bump(std::atomic<uint64_t>& c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> sum_{0};
};

// Produce -> durable acknowledgement, in ns: 1.024 us .. ~17 s, two steps per power of two.
using AckLatencyHistogram = LogLinearHistogram<10, 34, 1>;
// Sealed batch bytes: 64 B .. 4 MiB, two steps per power of two.
using BatchBytesHistogram = LogLinearHistogram<6, 22, 1>;
// Messages per sealed batch: 1 .. 65536, two steps per power of two.
using BatchMessagesHistogram = LogLinearHistogram<1, 16, 1>;

}  // namespace sluice::shard
