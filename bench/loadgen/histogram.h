// A log-linear latency histogram in the manner of HdrHistogram: fixed buckets, no allocation after
// construction, O(1) Record. Values are unsigned integers (the load generator records TSC cycles
// and converts to nanoseconds only when it reports).
//
// Layout: values below kSub (128) have a bucket each (exact). Above, every power-of-two range
// [2^e, 2^(e+1)) is cut into kSub equal buckets, so a bucket is at most 1/128 (0.79 %) of its
// values wide. 57 ranges cover every uint64_t: 7424 buckets, 58 KiB.
//
// Percentile(p) returns the highest value equivalent to the bucket holding the p-th percentile
// sample (HdrHistogram's convention: never under-reports), clamped to the exact maximum seen.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sluice::bench {

// Percentiles at which the reports sample a histogram for a latency CDF plot (bench/run).
inline constexpr double kCdfPercentiles[] = {0,  1,  5,  10, 20, 30, 40,   50,    60,     70,
                                             80, 90, 95, 97, 98, 99, 99.5, 99.9, 99.95, 99.99,
                                             99.999, 100};

class LogLinearHistogram {
 public:
  static constexpr uint32_t kSubBits = 7;
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;   // buckets per power of two
  static constexpr uint32_t kRanges = 64 - kSubBits + 1;        // shift 0..56, plus the linear part
  static constexpr uint32_t kBuckets = kRanges * kSub;

  LogLinearHistogram() : counts_(kBuckets, 0) {}

  static uint32_t BucketOf(uint64_t v) {
    if (v < kSub) return static_cast<uint32_t>(v);
    const uint32_t e = 63u - static_cast<uint32_t>(std::countl_zero(v));  // >= kSubBits
    const uint32_t shift = e - kSubBits;
    const uint64_t top = v >> shift;                                     // in [kSub, 2 kSub)
    return static_cast<uint32_t>((shift + 1) * kSub + (top - kSub));
  }
  // Smallest and largest value that fall into bucket `b`.
  static uint64_t LowestOf(uint32_t b) {
    if (b < kSub) return b;
    const uint32_t shift = b / kSub - 1;
    return (kSub + b % kSub) << shift;
  }
  static uint64_t HighestOf(uint32_t b) {
    if (b < kSub) return b;
    const uint32_t shift = b / kSub - 1;
    return LowestOf(b) + ((uint64_t{1} << shift) - 1);
  }

  void Record(uint64_t v) {
    ++counts_[BucketOf(v)];
    ++count_;
    sum_ += v;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }

  void Merge(const LogLinearHistogram& o) {
    for (uint32_t b = 0; b < kBuckets; ++b) counts_[b] += o.counts_[b];
    count_ += o.count_;
    sum_ += o.sum_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }

  void Reset() {
    std::fill(counts_.begin(), counts_.end(), 0);
    count_ = 0;
    sum_ = 0;
    min_ = UINT64_MAX;
    max_ = 0;
  }

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  // p in [0, 100]. 0 when empty.
  uint64_t Percentile(double p) const {
    if (count_ == 0) return 0;
    p = std::clamp(p, 0.0, 100.0);
    uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (uint32_t b = 0; b < kBuckets; ++b) {
      seen += counts_[b];
      if (seen >= rank) return std::min(HighestOf(b), max_);
    }
    return max_;
  }

 private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace sluice::bench
