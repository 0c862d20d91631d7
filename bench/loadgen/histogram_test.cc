#include "bench/loadgen/histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::bench {
namespace {

TEST(LogLinearHistogram, BucketsAreContiguousAndBounded) {
  // Every bucket's range starts right after the previous one ends.
  for (uint32_t b = 1; b < LogLinearHistogram::kBuckets; ++b) {
    ASSERT_EQ(LogLinearHistogram::LowestOf(b), LogLinearHistogram::HighestOf(b - 1) + 1) << b;
  }
  EXPECT_EQ(LogLinearHistogram::HighestOf(LogLinearHistogram::kBuckets - 1), UINT64_MAX);
  for (uint64_t v : std::vector<uint64_t>{0, 1, 127, 128, 255, 256, 1000, 123456789,
                                          UINT64_MAX}) {
    const uint32_t b = LogLinearHistogram::BucketOf(v);
    EXPECT_LE(LogLinearHistogram::LowestOf(b), v);
    EXPECT_GE(LogLinearHistogram::HighestOf(b), v);
    // Relative width under 1/128.
    EXPECT_LE(LogLinearHistogram::HighestOf(b) - LogLinearHistogram::LowestOf(b),
              LogLinearHistogram::LowestOf(b) / 128 + 1);
  }
}

TEST(LogLinearHistogram, PercentilesMatchSortedSamplesWithinOnePercent) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(8.0, 1.5);
  LogLinearHistogram h;
  std::vector<uint64_t> v;
  for (int i = 0; i < 100000; ++i) {
    const uint64_t x = static_cast<uint64_t>(dist(rng));
    v.push_back(x);
    h.Record(x);
  }
  std::sort(v.begin(), v.end());
  for (double p : {50.0, 90.0, 99.0, 99.9, 99.99}) {
    const uint64_t exact = v[static_cast<size_t>(std::ceil(p / 100 * v.size())) - 1];
    const uint64_t got = h.Percentile(p);
    EXPECT_GE(got, exact) << p;  // never under-reports
    EXPECT_LE(static_cast<double>(got), exact * 1.01 + 1) << p;
  }
  EXPECT_EQ(h.Percentile(100), v.back());
  EXPECT_EQ(h.max(), v.back());
  EXPECT_EQ(h.min(), v.front());
  EXPECT_EQ(h.count(), v.size());
}

TEST(LogLinearHistogram, EmptyAndMerge) {
  LogLinearHistogram a, b;
  EXPECT_EQ(a.Percentile(99), 0u);
  a.Record(10);
  b.Record(1000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_EQ(a.Percentile(50), 10u);
  EXPECT_EQ(a.Percentile(100), 1000u);
}

}  // namespace
}  // namespace sluice::bench
