// Shard-level tests of producing and of streams: offsets, fetch, idempotence, acks and
// durability, subscriptions with credits, throttling.
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

#include <memory>
#include <string>

#include "dataplane/shard/shard.h"
#include "tests/unit/shard/test_sink.h"

namespace sluice::shard {
namespace {

using testing::Bytes;
using testing::kMs;
using testing::Msg;
using testing::RecordingSink;

constexpr QueueId kQ{7};
const ReplyTarget kClient{1, 2, 3};

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ShardConfig sc;
    sc.chunk_bytes = 16 * 1024;
    sc.pool_chunks = 8;
    shard_ = std::make_unique<Shard>(sc, &sink_);
    QueueConfig qc;
    qc.type = QueueType::kStream;
    qc.max_message_bytes = 4096;
    qc.memory_budget_chunks = 4;
    ASSERT_EQ(shard_->AddPartition(kQ, 0, qc), Errc::kOk);
  }
  AppendResult Append(std::string_view payload, uint64_t producer = 0, uint64_t seq = 0) {
    MessageIn m = Msg(payload);
    m.producer_id = producer;
    m.sequence = seq;
    return shard_->Append(kClient, kQ, m, now_);
  }
  void MakeDurable() {
    shard_->SealBatch(kQ, 0);
    shard_->MarkDurable(kQ, 0, DurableOffset{shard_->Find(kQ, 0)->log().sealed_end().value});
    shard_->Flush();
  }
  std::vector<std::string> FetchAll(StartPosition from, uint32_t max = 100,
                                    uint32_t max_bytes = 1 << 20, FetchResult* out = nullptr) {
    std::vector<std::string> got;
    FetchResult r = shard_->Fetch(kQ, 0, from, max, max_bytes, [&](const StoredMessage& m) {
      got.push_back(testing::Str(m.record));
    });
    if (out != nullptr) *out = r;
    return got;
  }

  RecordingSink sink_;
  std::unique_ptr<Shard> shard_;
  uint64_t now_ = 5'000 * kMs;
};

TEST_F(StreamTest, AppendAssignsDenseOffsetsAndFetchReadsFromAnOffset) {
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Append(absl::StrCat("m", i)).offset, uint64_t(i));
  MakeDurable();
  EXPECT_EQ(FetchAll(StartPosition::Offset(2)), (std::vector<std::string>{"m2", "m3", "m4"}));
  EXPECT_EQ(FetchAll(StartPosition::Earliest(), 2), (std::vector<std::string>{"m0", "m1"}));
  FetchResult r;
  EXPECT_TRUE(FetchAll(StartPosition::Latest(), 100, 1 << 20, &r).empty());
  EXPECT_EQ(r.next_offset, 5u);
  FetchAll(StartPosition::Offset(6), 100, 1 << 20, &r);
  EXPECT_EQ(r.errc, Errc::kOffsetOutOfRange);
}

TEST_F(StreamTest, FetchStopsAtMaxBytesButAlwaysGivesOne) {
  Append(std::string(100, 'a'));
  Append(std::string(100, 'b'));
  Append(std::string(100, 'c'));
  MakeDurable();
  FetchResult r;
  EXPECT_EQ(FetchAll(StartPosition::Earliest(), 100, 250, &r).size(), 2u);
  EXPECT_EQ(r.next_offset, 2u);
  EXPECT_EQ(FetchAll(StartPosition::Earliest(), 100, 10).size(), 1u);
}

TEST_F(StreamTest, FetchByTimestamp) {
  for (int i = 0; i < 6; ++i) {
    Append(absl::StrCat("t", i));
    now_ += 10 * kMs;
  }
  MakeDurable();
  // Messages at 5000, 5010, ... ms.
  EXPECT_EQ(FetchAll(StartPosition::Timestamp(5'025 * kMs)),
            (std::vector<std::string>{"t3", "t4", "t5"}));
  EXPECT_EQ(FetchAll(StartPosition::Timestamp(5'020 * kMs)).front(), "t2");
  EXPECT_EQ(FetchAll(StartPosition::Timestamp(0)).size(), 6u);
  EXPECT_TRUE(FetchAll(StartPosition::Timestamp(9'999 * kMs)).empty());
}

TEST_F(StreamTest, NothingIsVisibleOrAckedBeforeDurable) {
  Append("a", 11, 0);
  Append("b", 11, 1);
  shard_->Flush();
  EXPECT_TRUE(sink_.acks.empty());
  EXPECT_TRUE(FetchAll(StartPosition::Earliest()).empty());
  shard_->SealBatch(kQ, 0);
  shard_->Flush();
  EXPECT_TRUE(sink_.acks.empty());  // sealed is not durable
  ASSERT_EQ(shard_->MarkDurable(kQ, 0, DurableOffset{1}), Errc::kOk);
  shard_->Flush();
  ASSERT_EQ(sink_.acks.size(), 1u);  // only the first
  EXPECT_EQ(sink_.acks[0].first_offset, 0u);
  EXPECT_EQ(FetchAll(StartPosition::Earliest()).size(), 1u);
  shard_->MarkDurable(kQ, 0, DurableOffset{2});
  shard_->Flush();
  ASSERT_EQ(sink_.acks.size(), 2u);
  EXPECT_EQ(sink_.acks[1].first_sequence, 1u);
}

TEST_F(StreamTest, AcksAreCoalescedIntoRanges) {
  for (uint64_t s = 0; s < 5; ++s) Append("x", 42, s);
  MessageIn other = Msg("y");
  other.producer_id = 43;
  shard_->Append(ReplyTarget{9, 9, 9}, kQ, other, now_);
  Append("x", 42, 5);
  MakeDurable();
  ASSERT_EQ(sink_.acks.size(), 3u);
  EXPECT_EQ(sink_.acks[0].producer_id, 42u);
  EXPECT_EQ(sink_.acks[0].first_sequence, 0u);
  EXPECT_EQ(sink_.acks[0].count, 5u);
  EXPECT_EQ(sink_.acks[0].first_offset, 0u);
  EXPECT_EQ(sink_.acks[0].errc, Errc::kOk);
  EXPECT_EQ(sink_.acks[0].target, kClient);
  EXPECT_EQ(sink_.acks[1].producer_id, 43u);
  EXPECT_EQ(sink_.acks[1].first_offset, 5u);
  EXPECT_EQ(sink_.acks[2].first_sequence, 5u);
  EXPECT_EQ(sink_.acks[2].first_offset, 6u);
  EXPECT_EQ(shard_->counters().acked, 7u);
}

TEST_F(StreamTest, RetransmitReturnsTheOriginalOffsetAndIsNotAppendedTwice) {
  Append("other");
  EXPECT_EQ(Append("a", 5, 0).offset, 1u);
  EXPECT_EQ(Append("b", 5, 1).offset, 2u);
  // Retransmit before durable: acked with the original offset once durable.
  const AppendResult dup = Append("a", 5, 0);
  EXPECT_EQ(dup.errc, Errc::kDuplicate);
  EXPECT_EQ(dup.offset, 1u);
  shard_->Flush();
  EXPECT_TRUE(sink_.acks.empty());
  MakeDurable();
  EXPECT_EQ(shard_->Find(kQ, 0)->log().written_end().value, 3u);
  ASSERT_EQ(sink_.acks.size(), 3u);  // {other}, {5: seq 0-1}, {5: seq 0 duplicate}
  EXPECT_EQ(sink_.acks[1].count, 2u);
  EXPECT_EQ(sink_.acks[2].errc, Errc::kDuplicate);
  EXPECT_EQ(sink_.acks[2].first_offset, 1u);
  // Retransmit after durable: acked at once.
  sink_.Clear();
  EXPECT_EQ(Append("b", 5, 1).offset, 2u);
  shard_->Flush();
  ASSERT_EQ(sink_.acks.size(), 1u);
  EXPECT_EQ(sink_.acks[0].errc, Errc::kDuplicate);
  EXPECT_EQ(sink_.acks[0].first_offset, 2u);
  EXPECT_EQ(shard_->counters().duplicates, 2u);
}

TEST_F(StreamTest, SequenceAheadOfNextExpectedIsOutOfOrder) {
  Append("a", 5, 0);
  const AppendResult r = Append("c", 5, 2);
  EXPECT_EQ(r.errc, Errc::kOutOfOrderSequence);
  Append("x", 6, 3);  // unknown producer starting past 0
  shard_->Flush();
  ASSERT_EQ(sink_.acks.size(), 2u);  // errors are acked at once
  EXPECT_EQ(sink_.acks[0].errc, Errc::kOutOfOrderSequence);
  EXPECT_EQ(sink_.acks[0].first_sequence, 2u);
  EXPECT_EQ(sink_.acks[1].errc, Errc::kOutOfOrderSequence);
  EXPECT_EQ(Append("b", 5, 1).offset, 1u);  // the gap filled, it goes on
  EXPECT_EQ(Append("c", 5, 2).offset, 2u);
  EXPECT_EQ(shard_->counters().out_of_order, 2u);
}

TEST_F(StreamTest, ErrorsForUnknownPartitionAndTooLarge) {
  MessageIn m = Msg("x", 3);
  EXPECT_EQ(shard_->Append(kClient, kQ, m, now_).errc, Errc::kUnknownPartition);
  EXPECT_EQ(Append(std::string(4097, 'x')).errc, Errc::kMessageTooLarge);
  EXPECT_EQ(shard_->Find(kQ, 0)->log().written_end().value, 0u);
}

TEST_F(StreamTest, ThrottlesWhenTheBudgetIsFullAndNothingIsDurableThenRecovers) {
  const std::string big(4000, 'x');
  int ok = 0;
  for (int i = 0; i < 100 && Append(big).errc == Errc::kOk; ++i) ++ok;
  EXPECT_EQ(ok, 16);  // 4 chunks of 16 KiB, 4 records each (one batch per chunk)
  EXPECT_EQ(Append(big, 9, 0).errc, Errc::kThrottled);
  shard_->Flush();
  ASSERT_FALSE(sink_.acks.empty());
  EXPECT_EQ(sink_.acks.back().errc, Errc::kThrottled);
  EXPECT_GE(shard_->counters().throttled, 2u);
  MakeDurable();
  // Durable now: the oldest chunk is retention's to drop, appends go on.
  const AppendResult r = Append(big, 9, 0);  // the throttled sequence was not consumed
  EXPECT_EQ(r.errc, Errc::kOk);
  EXPECT_EQ(r.offset, 16u);
  EXPECT_EQ(shard_->counters().chunks_evicted, 1u);
}

TEST_F(StreamTest, SubscriberGetsNoMoreThanItsCreditsAndResumesAfterCredit) {
  for (int i = 0; i < 5; ++i) Append(absl::StrCat("s", i));
  MakeDurable();
  const SubscriptionId sub{77};
  ASSERT_EQ(shard_->Subscribe(sub, kClient, kQ, 0, StartPosition::Offset(1), 2), Errc::kOk);
  ASSERT_EQ(sink_.deliveries.size(), 2u);
  EXPECT_EQ(sink_.deliveries[0].record, "s1");
  EXPECT_EQ(sink_.deliveries[1].record, "s2");
  EXPECT_EQ(sink_.deliveries[1].d.credits_left, 0u);
  shard_->Tick(now_ += kMs);
  EXPECT_EQ(sink_.deliveries.size(), 2u);
  ASSERT_EQ(shard_->Credit(sub, 10), Errc::kOk);
  ASSERT_EQ(sink_.deliveries.size(), 4u);
  EXPECT_EQ(sink_.deliveries[3].record, "s4");
  // New messages are pushed when durable, not when appended.
  Append("s5");
  EXPECT_EQ(sink_.deliveries.size(), 4u);
  MakeDurable();
  ASSERT_EQ(sink_.deliveries.size(), 5u);
  EXPECT_EQ(sink_.deliveries[4].d.message.offset, 5u);
  EXPECT_EQ(sink_.deliveries[4].d.subscription, sub);
  EXPECT_EQ(shard_->Unsubscribe(sub), Errc::kOk);
  EXPECT_EQ(shard_->Credit(sub, 1), Errc::kUnknownSubscription);
  Append("s6");
  MakeDurable();
  EXPECT_EQ(sink_.deliveries.size(), 5u);
}

TEST_F(StreamTest, SubscribeLatestAndErrors) {
  Append("old");
  MakeDurable();
  ASSERT_EQ(shard_->Subscribe(SubscriptionId{1}, kClient, kQ, 0, StartPosition::Latest(), 5),
            Errc::kOk);
  EXPECT_TRUE(sink_.deliveries.empty());
  EXPECT_EQ(shard_->Subscribe(SubscriptionId{1}, kClient, kQ, 0, StartPosition::Latest(), 5),
            Errc::kInvalidArgument);  // id in use
  EXPECT_EQ(shard_->Subscribe(SubscriptionId{2}, kClient, kQ, 0, StartPosition::Offset(9), 5),
            Errc::kOffsetOutOfRange);
  EXPECT_EQ(shard_->Subscribe(SubscriptionId{2}, kClient, kQ, 1, StartPosition::Latest(), 5),
            Errc::kUnknownPartition);
  Append("new");
  MakeDurable();
  ASSERT_EQ(sink_.deliveries.size(), 1u);
  EXPECT_EQ(sink_.deliveries[0].record, "new");
}

TEST_F(StreamTest, SlowSubscriberNeverBlocksAppendsAndGetsAGap) {
  ASSERT_EQ(shard_->Subscribe(SubscriptionId{1}, kClient, kQ, 0, StartPosition::Earliest(), 0),
            Errc::kOk);
  const std::string big(4000, 'x');
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(Append(big).errc, Errc::kOk) << i;
    MakeDurable();
  }
  EXPECT_GT(shard_->Find(kQ, 0)->log().start_offset(), 0u);
  ASSERT_EQ(shard_->Credit(SubscriptionId{1}, 1), Errc::kOk);
  ASSERT_EQ(sink_.gaps.size(), 1u);
  EXPECT_EQ(sink_.gaps[0].from_offset, 0u);
  EXPECT_EQ(sink_.gaps[0].next_offset, shard_->Find(kQ, 0)->log().start_offset());
  ASSERT_EQ(sink_.deliveries.size(), 1u);
  EXPECT_EQ(sink_.deliveries[0].d.message.offset, sink_.gaps[0].next_offset);
}

TEST_F(StreamTest, LargeCreditIsDrainedInBoundedStepsByTick) {
  for (uint32_t i = 0; i < Shard::kPushBudget + 10; ++i) Append("m");
  MakeDurable();
  ASSERT_EQ(shard_->Subscribe(SubscriptionId{1}, kClient, kQ, 0, StartPosition::Earliest(),
                              1'000'000), Errc::kOk);
  EXPECT_EQ(sink_.deliveries.size(), Shard::kPushBudget);
  EXPECT_EQ(shard_->Tick(now_), 10u);
  EXPECT_EQ(sink_.deliveries.size(), Shard::kPushBudget + 10);
}

TEST_F(StreamTest, ConsumerGroupCommittedOffsets) {
  Append("a");
  EXPECT_FALSE(shard_->CommittedOffset(kQ, 0, "g").has_value());
  EXPECT_EQ(shard_->CommitOffset(kQ, 0, "g", 1), Errc::kOk);
  EXPECT_EQ(shard_->CommitOffset(kQ, 0, "h", 0), Errc::kOk);
  EXPECT_EQ(shard_->CommitOffset(kQ, 0, "g", 5), Errc::kOffsetOutOfRange);
  EXPECT_EQ(shard_->CommittedOffset(kQ, 0, "g"), 1u);
  EXPECT_EQ(shard_->CommittedOffset(kQ, 0, "h"), 0u);
}

TEST_F(StreamTest, UndurableBatchesAreExposedForStorage) {
  Append("a");
  Append("b");
  shard_->SealBatch(kQ, 0);
  Append("c");
  shard_->SealBatch(kQ, 0);
  std::vector<SealedBatch> batches;
  shard_->ForEachUndurableBatch(kQ, 0, [&](const SealedBatch& b) { batches.push_back(b); });
  ASSERT_EQ(batches.size(), 2u);
  EXPECT_EQ(batches[0].end_offset(), 2u);
  EXPECT_EQ(batches[1].end_offset(), 3u);
  shard_->MarkDurable(kQ, 0, DurableOffset{batches[0].end_offset()});
  batches.clear();
  shard_->ForEachUndurableBatch(kQ, 0, [&](const SealedBatch& b) { batches.push_back(b); });
  EXPECT_EQ(batches.size(), 1u);
  EXPECT_DEATH(shard_->MarkDurable(kQ, 0, DurableOffset{4}), "durable.value <= sealed_");
}

TEST_F(StreamTest, PartitionsAreAddedOnceAndRemoved) {
  QueueConfig qc;
  EXPECT_EQ(shard_->AddPartition(kQ, 0, qc), Errc::kInvalidArgument);
  qc.max_message_bytes = 1 << 20;  // larger than a 16 KiB chunk
  EXPECT_EQ(shard_->AddPartition(kQ, 1, qc), Errc::kInvalidArgument);
  ASSERT_EQ(shard_->Subscribe(SubscriptionId{1}, kClient, kQ, 0, StartPosition::Latest(), 1),
            Errc::kOk);
  Append("x");
  EXPECT_EQ(shard_->RemovePartition(kQ, 0), Errc::kOk);
  EXPECT_EQ(shard_->Find(kQ, 0), nullptr);
  EXPECT_EQ(shard_->Credit(SubscriptionId{1}, 1), Errc::kUnknownSubscription);
  EXPECT_EQ(shard_->pool().free_count(), shard_->pool().capacity());
}


TEST_F(StreamTest, PurgeAdvancesTheStartAndKeepsOffsets) {
  for (int i = 0; i < 5; ++i) Append(absl::StrCat("m", i));
  MakeDurable();
  const SubscriptionId sub{9};
  ASSERT_EQ(shard_->Subscribe(sub, kClient, kQ, 0, StartPosition::Offset(1), 1), Errc::kOk);
  ASSERT_EQ(sink_.deliveries.size(), 1u);  // offset 1; the subscriber is behind, at 2
  Append("not durable yet");               // offset 5: after the purge point, it stays
  uint64_t below = 0, dropped = 0;
  ASSERT_EQ(shard_->Purge(kQ, 0, &below, &dropped), Errc::kOk);
  EXPECT_EQ(below, 5u);
  EXPECT_EQ(dropped, 5u);
  const Partition* p = shard_->Find(kQ, 0);
  EXPECT_EQ(p->log().start_offset(), 5u);
  EXPECT_EQ(p->log().written_end().value, 6u);
  EXPECT_EQ(p->counters().purged, 5u);
  FetchResult r;
  EXPECT_TRUE(FetchAll(StartPosition::Offset(2), 100, 1 << 20, &r).empty());
  EXPECT_EQ(r.errc, Errc::kOffsetOutOfRange);  // Kafka: below the log start
  MakeDurable();
  EXPECT_EQ(Append("next").offset, 6u);        // offsets go on, never reused
  MakeDurable();
  EXPECT_EQ(FetchAll(StartPosition::Earliest()),
            (std::vector<std::string>{"not durable yet", "next"}));
  // The subscriber behind the purge point is told of the gap and goes on from the start.
  ASSERT_EQ(shard_->Credit(sub, 10), Errc::kOk);
  ASSERT_FALSE(sink_.gaps.empty());
  EXPECT_EQ(sink_.gaps.back().from_offset, 2u);
  EXPECT_EQ(sink_.gaps.back().next_offset, 5u);
  EXPECT_EQ(sink_.deliveries.back().d.message.offset, 6u);
  // A purge of an empty tail is harmless; chunks below the start went back to the pool.
  ASSERT_EQ(shard_->Purge(kQ, 0, &below, &dropped), Errc::kOk);
  EXPECT_EQ(below, 7u);
  EXPECT_EQ(dropped, 2u);
  EXPECT_EQ(shard_->Purge(QueueId{99}, 0, &below, &dropped), Errc::kUnknownPartition);
}

TEST_F(StreamTest, PurgeFreesWholeChunksBelowTheStart) {
  // 16 KiB chunks, 4 per partition: ~3 KiB messages fill chunks quickly.
  const std::string big(3000, 'x');
  for (int i = 0; i < 12; ++i) {
    Append(big);
    MakeDurable();
  }
  const uint32_t held = shard_->Find(kQ, 0)->log().chunks_held();
  ASSERT_GE(held, 2u);
  uint64_t below = 0, dropped = 0;
  ASSERT_EQ(shard_->Purge(kQ, 0, &below, &dropped), Errc::kOk);
  EXPECT_EQ(shard_->Find(kQ, 0)->log().chunks_held(), 1u);  // only the current one stays
  EXPECT_EQ(Append("after").offset, below);
  MakeDurable();
  EXPECT_EQ(FetchAll(StartPosition::Earliest()), (std::vector<std::string>{"after"}));
}

TEST_F(StreamTest, PartitionCountersCountInOutAndAcks) {
  Append("abc");
  Append("de", 5, 0);
  Append("de", 5, 0);  // retransmit: a duplicate, not counted in
  MakeDurable();
  FetchAll(StartPosition::Earliest());
  const PartitionCounters& c = shard_->Find(kQ, 0)->counters();
  EXPECT_EQ(c.messages_in, 2u);
  EXPECT_EQ(c.bytes_in, 5u);
  EXPECT_EQ(c.messages_out, 2u);
  EXPECT_EQ(c.bytes_out, 5u);
  EXPECT_EQ(c.acked, 3u);
}

}  // namespace
}  // namespace sluice::shard
