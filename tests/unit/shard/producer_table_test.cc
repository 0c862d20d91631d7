#include "dataplane/shard/producer_table.h"

#include <gtest/gtest.h>

namespace sluice::shard {
namespace {

using V = ProducerTable::Verdict;

TEST(ProducerTable, ProducerZeroIsNotIdempotent) {
  ProducerTable t(4);
  EXPECT_EQ(t.Classify(0, 0).verdict, V::kNotIdempotent);
  EXPECT_EQ(t.Classify(0, 99).verdict, V::kNotIdempotent);
}

TEST(ProducerTable, SequencesStartAtZeroAndAdvanceByOne) {
  ProducerTable t(4);
  EXPECT_EQ(t.Classify(7, 1).verdict, V::kOutOfOrder);  // unknown producer must start at 0
  auto c = t.Classify(7, 0);
  ASSERT_EQ(c.verdict, V::kNew);
  t.Record(c, 7, 0, 100);
  c = t.Classify(7, 1);
  ASSERT_EQ(c.verdict, V::kNew);
  t.Record(c, 7, 1, 105);
  EXPECT_EQ(t.Classify(7, 3).verdict, V::kOutOfOrder);  // gap
  c = t.Classify(7, 0);
  EXPECT_EQ(c.verdict, V::kDuplicate);
  EXPECT_EQ(c.offset, 100u);
  EXPECT_EQ(t.Classify(7, 1).offset, 105u);
}

TEST(ProducerTable, OldRetransmitBeyondTheWindowIsADuplicateWithoutOffset) {
  ProducerTable t(4);
  for (uint64_t s = 0; s < ProducerTable::kWindow + 5; ++s) {
    auto c = t.Classify(9, s);
    ASSERT_EQ(c.verdict, V::kNew);
    t.Record(c, 9, s, 1000 + s);
  }
  EXPECT_EQ(t.Classify(9, 4).verdict, V::kDuplicate);
  EXPECT_EQ(t.Classify(9, 4).offset, UINT64_MAX);
  EXPECT_EQ(t.Classify(9, 5).offset, 1005u);  // oldest still in the window
}

TEST(ProducerTable, EvictsLeastRecentlyUsedWhenFull) {
  ProducerTable t(2);
  for (uint64_t p : {1, 2}) t.Record(t.Classify(p, 0), p, 0, p);
  t.Record(t.Classify(1, 1), 1, 1, 10);  // 1 is now the most recent
  EXPECT_TRUE(t.Record(t.Classify(3, 0), 3, 0, 30));  // evicts 2
  EXPECT_EQ(t.Classify(2, 1).verdict, V::kOutOfOrder);  // forgotten: must start over
  EXPECT_EQ(t.Classify(1, 2).verdict, V::kNew);
  EXPECT_EQ(t.Classify(3, 1).verdict, V::kNew);
  EXPECT_EQ(t.size(), 2u);
}

// Classify answers the producer recorded last without hashing: that memory must follow
// evictions (capacity 1: the last producer itself goes) and switches between producers.
TEST(ProducerTable, TheLastProducerShortcutFollowsEvictionsAndSwitches) {
  ProducerTable one(1);
  one.Record(one.Classify(1, 0), 1, 0, 100);
  EXPECT_TRUE(one.Record(one.Classify(2, 0), 2, 0, 200));  // evicts 1, the producer seen last
  EXPECT_EQ(one.Classify(1, 1).verdict, V::kOutOfOrder);     // forgotten, not slot 0's state
  EXPECT_EQ(one.Classify(2, 1).verdict, V::kNew);
  EXPECT_EQ(one.Classify(2, 0).offset, 200u);
  EXPECT_TRUE(one.Record(one.Classify(1, 0), 1, 0, 300));  // evicts 2 (last), 1 starts over
  EXPECT_EQ(one.Classify(2, 1).verdict, V::kOutOfOrder);
  EXPECT_EQ(one.Classify(1, 0).offset, 300u);

  ProducerTable two(2);
  uint64_t next[3] = {0, 0, 0};
  for (int i = 0; i < 50; ++i) {  // alternate in runs: 1 1 1 2 2 1 ...
    const uint64_t p = (i / 3) % 2 == 0 ? 1 : 2;
    const auto c = two.Classify(p, next[p]);
    ASSERT_EQ(c.verdict, V::kNew) << i;
    two.Record(c, p, next[p], p * 1000 + next[p]);
    ++next[p];
    // The other producer's state is its own, whichever was recorded last.
    const uint64_t q = 3 - p;
    if (next[q] > 0) {
      EXPECT_EQ(two.Classify(q, next[q] - 1).offset, q * 1000 + next[q] - 1);
    }
    EXPECT_EQ(two.Classify(q, next[q] + 1).verdict, V::kOutOfOrder);
    EXPECT_EQ(two.Classify(q, next[q]).verdict, V::kNew);
  }
}

}  // namespace
}  // namespace sluice::shard
