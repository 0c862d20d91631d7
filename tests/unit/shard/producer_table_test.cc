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

}  // namespace
}  // namespace sluice::shard
