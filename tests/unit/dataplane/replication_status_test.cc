// The box's replication status from its channels' (AggregateReplicationStatus, docs/replication.md
// §1 and §10): every figure summed, the rest and-ed or max-ed, only once every channel published.
#include <gtest/gtest.h>

#include "dataplane/replication_shell.h"

namespace sluice::dataplane {
namespace {

TEST(AggregateReplicationStatus, EveryFigureIsTheChannelsSumOnceEachPublished) {
  ReplicationStatus s;
  s.role.store(1);
  s.channel_count = 2;
  s.apply_failures.store(9);  // counted by the channels directly: not an aggregate
  for (uint32_t c = 0; c < 2; ++c) {
    ChannelStatus& ch = s.channels[c];
    for (size_t f = 0; f < kReplicationFigures; ++f) ch.figures.v[f].store((f + 1) * (c + 1) * 10);
    ch.connected.store(true);
    ch.caught_up.store(c == 0);
    ch.backfill_reads_inflight_max.store(c == 0 ? 3 : 1);
  }
  s.channels[0].published.store(1);
  AggregateReplicationStatus(s);  // channel 1 has not published: nothing yet
  EXPECT_EQ(s.published.load(), 0u);
  EXPECT_EQ(s.figures.Get(ReplicationFigure::kBatchesSent), 0u);

  s.channels[1].published.store(1);
  AggregateReplicationStatus(s);
  EXPECT_EQ(s.published.load(), 1u);
  for (size_t f = 0; f < kReplicationFigures; ++f) {
    EXPECT_EQ(s.figures.v[f].load(), (f + 1) * 30) << kReplicationFigureNames[f];
  }
  EXPECT_TRUE(s.connected.load());
  EXPECT_FALSE(s.caught_up.load());  // and-ed
  EXPECT_EQ(s.backfill_reads_inflight_max.load(), 3u);  // the highest
  EXPECT_EQ(s.apply_failures.load(), 9u);

  // Again only after both published anew.
  s.channels[0].figures.Set(ReplicationFigure::kLinkSteered, 1000);
  s.channels[0].published.store(2);
  AggregateReplicationStatus(s);
  EXPECT_EQ(s.published.load(), 1u);
  s.channels[1].published.store(2);
  AggregateReplicationStatus(s);
  EXPECT_EQ(s.published.load(), 2u);
  EXPECT_EQ(s.figures.Get(ReplicationFigure::kLinkSteered), 1000u + 17 * 20);
}

TEST(ReplicationFigures, EachHasAName) {
  for (size_t f = 0; f < kReplicationFigures; ++f) {
    EXPECT_FALSE(kReplicationFigureNames[f].empty()) << f;
    for (size_t g = 0; g < f; ++g) EXPECT_NE(kReplicationFigureNames[f], kReplicationFigureNames[g]);
  }
  EXPECT_EQ(kReplicationFigureNames[static_cast<size_t>(ReplicationFigure::kLinkSteered)],
            "link_steered");
  EXPECT_EQ(kReplicationFigureNames[static_cast<size_t>(ReplicationFigure::kLagOffsets)],
            "lag_offsets");
}

}  // namespace
}  // namespace sluice::dataplane
