// The lcore histogram (dataplane/shard/histogram.h): bucket arithmetic against its bounds,
// recording, overflow, and a reader on another thread while the owner records.
#include "dataplane/shard/histogram.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>

namespace sluice::shard {
namespace {

using H = LogLinearHistogram<10, 34, 1>;  // AckLatencyHistogram

TEST(LogLinearHistogram, BoundsArePowersOfTwoSplitInSteps) {
  static_assert(H::kBounds == 1 + 24 * 2);
  EXPECT_EQ(H::UpperBound(0), 1024u);
  EXPECT_EQ(H::UpperBound(1), 1536u);  // 1024 + 512
  EXPECT_EQ(H::UpperBound(2), 2048u);
  EXPECT_EQ(H::UpperBound(3), 3072u);
  EXPECT_EQ(H::UpperBound(H::kBounds - 1), uint64_t{1} << 34);
  for (size_t i = 1; i < H::kBounds; ++i) {
    EXPECT_LT(H::UpperBound(i - 1), H::UpperBound(i)) << i;
    // Relative width at most one step (1/2 with one sub-bit).
    EXPECT_LE(H::UpperBound(i) - H::UpperBound(i - 1), H::UpperBound(i - 1) / 2 + 1) << i;
  }
}

TEST(LogLinearHistogram, EveryValueFallsInTheBucketWhoseBoundsHoldIt) {
  // (UpperBound(i-1), UpperBound(i)]: check each bound, its neighbours, and a sweep.
  for (size_t i = 0; i < H::kBounds; ++i) {
    const uint64_t hi = H::UpperBound(i);
    EXPECT_EQ(H::BucketOf(hi), i) << "bound " << hi;
    EXPECT_EQ(H::BucketOf(hi + 1), i + 1) << "above bound " << hi;
    if (i > 0) {
      EXPECT_EQ(H::BucketOf(H::UpperBound(i - 1) + 1), i);
    }
  }
  EXPECT_EQ(H::BucketOf(0), 0u);
  EXPECT_EQ(H::BucketOf(1), 0u);
  EXPECT_EQ(H::BucketOf((uint64_t{1} << 34) + 1), H::kBounds);  // overflow (+Inf)
  EXPECT_EQ(H::BucketOf(UINT64_MAX), H::kBounds);
  for (uint64_t v = 1; v < (uint64_t{1} << 20); v = v * 3 / 2 + 1) {
    const size_t b = H::BucketOf(v);
    ASSERT_LT(b, H::kBounds);
    EXPECT_LE(v, H::UpperBound(b)) << v;
    if (b > 0) {
      EXPECT_GT(v, H::UpperBound(b - 1)) << v;
    }
  }
}

TEST(LogLinearHistogram, RecordCountsAndSums) {
  H h;
  h.Record(500);                      // bucket 0
  h.Record(1536);                     // bucket 1 (inclusive bound)
  h.Record(1537);                     // bucket 2
  h.Record(uint64_t{1} << 40);        // overflow
  EXPECT_EQ(h.count(0), 1u);
  EXPECT_EQ(h.count(1), 1u);
  EXPECT_EQ(h.count(2), 1u);
  EXPECT_EQ(h.count(H::kBounds), 1u);
  EXPECT_EQ(h.total(), 4u);
  EXPECT_EQ(h.sum(), 500u + 1536 + 1537 + (uint64_t{1} << 40));
}

TEST(LogLinearHistogram, SmallConfigurations) {
  using M = LogLinearHistogram<1, 16, 1>;  // messages per batch
  EXPECT_EQ(M::UpperBound(0), 2u);
  EXPECT_EQ(M::UpperBound(1), 3u);
  EXPECT_EQ(M::UpperBound(2), 4u);
  EXPECT_EQ(M::BucketOf(1), 0u);
  EXPECT_EQ(M::BucketOf(3), 1u);
  EXPECT_EQ(M::BucketOf(4), 2u);
  EXPECT_EQ(M::BucketOf(5), 3u);
  EXPECT_EQ(M::UpperBound(M::kBounds - 1), 65536u);
}

TEST(LogLinearHistogram, AReaderOnAnotherThreadSeesMonotonicCounts) {
  // One writer, one reader, as on an lcore and the control thread: the reader's totals never go
  // down and end at what was recorded.
  H h;
  constexpr uint64_t kN = 200'000;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    uint64_t last = 0;
    while (!done.load()) {
      const uint64_t now = h.total();
      EXPECT_GE(now, last);
      last = now;
    }
  });
  for (uint64_t i = 0; i < kN; ++i) h.Record(i * 7919 % 5'000'000);
  done = true;
  reader.join();
  EXPECT_EQ(h.total(), kN);
}

}  // namespace
}  // namespace sluice::shard
