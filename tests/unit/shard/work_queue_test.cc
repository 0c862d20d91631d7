// Shard-level tests of work queues: receive / delete / nack / extend, receipts, visibility
// timeouts, delays, TTL, priorities, dead letters, FIFO groups, dedup, long polls, throttling.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "dataplane/shard/shard.h"
#include "tests/unit/shard/test_sink.h"

namespace sluice::shard {
namespace {

using testing::kMs;
using testing::Msg;
using testing::RecordingSink;

constexpr QueueId kQ{3};
const ReplyTarget kProducer{1, 1, 1};
const ReplyTarget kConsumer{2, 2, 2};

class WorkTest : public ::testing::Test {
 protected:
  void Make(QueueConfig qc, uint32_t pool_chunks = 32) {
    qc.max_message_bytes = 4096;
    ShardConfig sc;
    sc.chunk_bytes = 16 * 1024;
    sc.pool_chunks = pool_chunks;
    shard_ = std::make_unique<Shard>(sc, &sink_);
    ASSERT_EQ(shard_->AddPartition(kQ, 0, qc), Errc::kOk);
  }
  void SetUp() override {
    QueueConfig qc;
    qc.visibility_timeout_ms = 1000;
    qc.max_message_bytes = 4096;
    qc.max_messages = 64;
    Make(qc);
  }
  AppendResult Send(std::string_view payload, uint32_t delay_ms = 0, uint8_t priority = 0,
                    std::string_view group = {}, std::string_view dedup = {}) {
    MessageIn m = Msg(payload);
    m.delay_ms = delay_ms;
    m.priority = priority;
    m.group = group;
    m.dedup_id = dedup;
    m.body = m.record;  // here the record is all payload (content dedup hashes the body)
    const AppendResult r = shard_->Append(kProducer, kQ, m, now_);
    Durable();
    return r;
  }
  void Durable() {
    shard_->SealBatch(kQ, 0);
    shard_->MarkDurable(kQ, 0, DurableOffset{shard_->Find(kQ, 0)->log().sealed_end().value});
    shard_->Flush();
  }
  // Leases up to n; returns the payloads; receipts in sink_.leased.
  std::vector<std::string> Receive(uint32_t n, uint32_t visibility_ms = 0, uint32_t wait_ms = 0) {
    const size_t before = sink_.leased.size();
    shard_->Receive(kConsumer, kQ, 0, {n, visibility_ms, wait_ms}, now_);
    std::vector<std::string> got;
    for (size_t i = before; i < sink_.leased.size(); ++i) got.push_back(sink_.leased[i].record);
    return got;
  }
  Receipt LastReceipt() const { return sink_.leased.back().l.receipt; }
  void Advance(uint64_t ms) {
    now_ += ms * kMs;
    shard_->Tick(now_);
  }
  WorkQueueStats Stats() const { return shard_->Find(kQ, 0)->work()->Stats(); }

  RecordingSink sink_;
  std::unique_ptr<Shard> shard_;
  uint64_t now_ = 1'000'000 * kMs;
};

TEST_F(WorkTest, ReceiveLeasesInOrderAndDeleteRemoves) {
  Send("a");
  Send("b");
  Send("c");
  EXPECT_EQ(Receive(2), (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_EQ(sink_.done[0].count, 2u);
  EXPECT_EQ(sink_.leased[0].l.receive_count, 1u);
  EXPECT_EQ(sink_.leased[1].l.message.offset, 1u);
  EXPECT_EQ(shard_->Delete(kQ, 0, sink_.leased[0].l.receipt, now_), Errc::kOk);
  EXPECT_EQ(shard_->Delete(kQ, 0, sink_.leased[0].l.receipt, now_), Errc::kUnknownReceipt);
  EXPECT_EQ(Receive(5), (std::vector<std::string>{"c"}));
  EXPECT_TRUE(Receive(5).empty());
  EXPECT_EQ(sink_.done.back().count, 0u);
  EXPECT_EQ(Stats().leased, 2u);
}

TEST_F(WorkTest, NothingIsReceivableBeforeDurable) {
  shard_->Append(kProducer, kQ, Msg("a"), now_);
  EXPECT_TRUE(Receive(1).empty());
  shard_->SealBatch(kQ, 0);
  EXPECT_TRUE(Receive(1).empty());
  Durable();
  EXPECT_EQ(Receive(1).size(), 1u);
}

TEST_F(WorkTest, VisibilityTimeoutRedeliversWithReceiveCount) {
  Send("a");
  ASSERT_EQ(Receive(1, 500).size(), 1u);
  const Receipt first = LastReceipt();
  Advance(499);
  EXPECT_TRUE(Receive(1).empty());
  Advance(1);
  EXPECT_EQ(shard_->counters().lease_expired, 1u);
  ASSERT_EQ(Receive(1).size(), 1u);
  EXPECT_EQ(sink_.leased.back().l.receive_count, 2u);
  EXPECT_EQ(shard_->counters().redeliveries, 1u);
  const Receipt second = LastReceipt();
  EXPECT_NE(first, second);
  // The first lease expired and the message was re-leased: stale, not unknown.
  EXPECT_EQ(shard_->Delete(kQ, 0, first, now_), Errc::kStaleReceipt);
  EXPECT_EQ(shard_->Nack(kQ, 0, first, 0, now_), Errc::kStaleReceipt);
  EXPECT_EQ(shard_->Extend(kQ, 0, first, 10, now_), Errc::kStaleReceipt);
  EXPECT_EQ(shard_->Delete(kQ, 0, second, now_), Errc::kOk);
  // Gone: every handle of it is unknown now.
  EXPECT_EQ(shard_->Delete(kQ, 0, first, now_), Errc::kUnknownReceipt);
  EXPECT_EQ(shard_->Delete(kQ, 0, second, now_), Errc::kUnknownReceipt);
  EXPECT_EQ(shard_->Delete(kQ, 0, Receipt{~uint64_t{0}}, now_), Errc::kUnknownReceipt);
}

TEST_F(WorkTest, ExpiredButNotReleasedLeaseCanStillBeDeleted) {
  Send("a");
  Receive(1, 100);
  const Receipt r = LastReceipt();
  Advance(200);
  EXPECT_EQ(Stats().ready, 1u);
  EXPECT_EQ(shard_->Extend(kQ, 0, r, 100, now_), Errc::kStaleReceipt);  // no lease to extend
  EXPECT_EQ(shard_->Delete(kQ, 0, r, now_), Errc::kOk);
  EXPECT_TRUE(Receive(1).empty());
}

TEST_F(WorkTest, ReusedSlotDoesNotAcceptTheOldMessagesReceipt) {
  Send("a");
  Receive(1);
  const Receipt old = LastReceipt();
  ASSERT_EQ(shard_->Delete(kQ, 0, old, now_), Errc::kOk);
  // Fill the queue so the freed slot is reused by a new message, and lease it.
  for (int i = 0; i < 64; ++i) Send("n");
  ASSERT_EQ(Receive(64).size(), 64u);
  EXPECT_EQ(shard_->Delete(kQ, 0, old, now_), Errc::kUnknownReceipt);
}

TEST_F(WorkTest, NackMakesVisibleAtOnceOrAfterDelay) {
  Send("a");
  Send("b");
  Receive(1);
  EXPECT_EQ(shard_->Nack(kQ, 0, LastReceipt(), 0, now_), Errc::kOk);
  EXPECT_EQ(Receive(1), (std::vector<std::string>{"a"}));  // back in front of "b"
  EXPECT_EQ(shard_->Nack(kQ, 0, LastReceipt(), 300, now_), Errc::kOk);
  EXPECT_EQ(Receive(5), (std::vector<std::string>{"b"}));
  Advance(299);
  EXPECT_TRUE(Receive(1).empty());
  Advance(1);
  EXPECT_EQ(Receive(1), (std::vector<std::string>{"a"}));
  EXPECT_EQ(sink_.leased.back().l.receive_count, 3u);
  EXPECT_EQ(shard_->counters().nacked, 2u);
}

TEST_F(WorkTest, ExtendPushesTheLeaseOut) {
  Send("a");
  Receive(1, 100);
  Advance(90);
  EXPECT_EQ(shard_->Extend(kQ, 0, LastReceipt(), 100, now_), Errc::kOk);
  Advance(90);
  EXPECT_TRUE(Receive(1).empty());
  Advance(10);
  EXPECT_EQ(Receive(1).size(), 1u);
}

TEST_F(WorkTest, FirstTimerIsPlacedRelativeToTheClockNotToZero) {
  // A realistic epoch clock (2^41 ms ahead of 0 would be clamped by the wheel otherwise).
  now_ = 1'700'000'000'000'000'000ull;
  Send("a");
  Receive(1, 100);
  Advance(100);
  EXPECT_EQ(Receive(1).size(), 1u);
}

TEST_F(WorkTest, WrongTypeAndUnknownPartition) {
  EXPECT_EQ(shard_->Delete(kQ, 1, Receipt{0}, now_), Errc::kUnknownPartition);
  EXPECT_EQ(shard_->Receive(kConsumer, kQ, 1, {1, 0, 0}, now_), Errc::kUnknownPartition);
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_EQ(sink_.done[0].errc, Errc::kUnknownPartition);
  FetchResult f = shard_->Fetch(kQ, 0, StartPosition::Earliest(), 1, 1, [](const StoredMessage&) {});
  EXPECT_EQ(f.errc, Errc::kWrongQueueType);
  EXPECT_EQ(shard_->Subscribe(SubscriptionId{1}, kConsumer, kQ, 0, StartPosition::Latest(), 1),
            Errc::kWrongQueueType);
}

TEST_F(WorkTest, ThrottlesWhenSlotsOrMemoryRunOutAndRecovers) {
  QueueConfig qc;
  qc.max_message_bytes = 4096;
  Make(qc, /*pool_chunks=*/8);  // the queue's budget (64) is larger: the pool runs out first
  const std::string big(4000, 'x');
  int ok = 0;
  for (int i = 0; i < 64; ++i) {
    if (Send(big).errc != Errc::kOk) break;
    ++ok;
  }
  EXPECT_EQ(ok, 8 * 4);  // each batch sealed at once and 4 KiB-aligned: 4 per 16 KiB chunk
  EXPECT_EQ(Send(big).errc, Errc::kThrottled);
  EXPECT_EQ(sink_.acks.back().errc, Errc::kThrottled);
  // Deleting the messages of the oldest chunk gives it back.
  ASSERT_EQ(Receive(4).size(), 4u);
  for (size_t i = 0; i < 4; ++i) shard_->Delete(kQ, 0, sink_.leased[i].l.receipt, now_);
  EXPECT_EQ(Send(big).errc, Errc::kOk);
  EXPECT_GE(shard_->counters().throttled, 1u);
}

TEST_F(WorkTest, ThrottlesWhenAllSlotsAreInUse) {
  for (int i = 0; i < 64; ++i) ASSERT_EQ(Send("s").errc, Errc::kOk);
  EXPECT_EQ(Send("s").errc, Errc::kThrottled);
  Receive(1);
  shard_->Delete(kQ, 0, LastReceipt(), now_);
  EXPECT_EQ(Send("s").errc, Errc::kOk);
}

TEST_F(WorkTest, PerMessageAndDefaultDelay) {
  QueueConfig qc;
  qc.delay_ms = 50;
  Make(qc);
  Send("default");     // 50 ms
  Send("own", 10);     // 10 ms
  EXPECT_TRUE(Receive(5).empty());
  EXPECT_EQ(Stats().delayed, 2u);
  Advance(10);
  EXPECT_EQ(Receive(5), (std::vector<std::string>{"own"}));
  Advance(40);
  EXPECT_EQ(Receive(5), (std::vector<std::string>{"default"}));
}

TEST_F(WorkTest, TtlExpiredMessagesAreNeverDelivered) {
  QueueConfig qc;
  qc.ttl_ms = 100;
  Make(qc);
  Send("a");
  MessageIn m = Msg("long");
  m.ttl_ms = 1000;
  shard_->Append(kProducer, kQ, m, now_);
  Durable();
  Advance(100);
  EXPECT_EQ(shard_->counters().expired, 1u);
  EXPECT_EQ(Receive(5, 500), (std::vector<std::string>{"long"}));
  // Expired while leased: dropped when the lease ends instead of coming back.
  Advance(2000);
  EXPECT_TRUE(Receive(5).empty());
  EXPECT_EQ(shard_->counters().expired, 2u);
  // Expired between ticks: checked at receive time too.
  Send("b");
  now_ += 150 * kMs;  // no Tick
  EXPECT_TRUE(Receive(5).empty());
  EXPECT_EQ(shard_->counters().expired, 3u);
}

TEST_F(WorkTest, HigherPriorityFirstFifoWithinALevel) {
  QueueConfig qc;
  qc.priority_levels = 3;
  Make(qc);
  Send("low1", 0, 0);
  Send("high1", 0, 2);
  Send("mid1", 0, 1);
  Send("high2", 0, 2);
  Send("clamped", 0, 9);  // above the levels: highest
  Send("low2", 0, 0);
  EXPECT_EQ(Receive(10), (std::vector<std::string>{"high1", "high2", "clamped", "mid1", "low1",
                                                   "low2"}));
}

TEST_F(WorkTest, MaxReceiveCountMovesToTheDeadLetterQueue) {
  QueueConfig qc;
  qc.max_receive_count = 2;
  qc.dead_letter_queue = QueueId{99};
  Make(qc);
  Send("poison");
  Receive(1, 100);
  Advance(100);  // expiry 1
  Receive(1, 100);
  EXPECT_EQ(shard_->Nack(kQ, 0, LastReceipt(), 0, now_), Errc::kOk);  // second failure
  ASSERT_EQ(sink_.dead.size(), 1u);
  EXPECT_EQ(sink_.dead[0].record, "poison");
  EXPECT_EQ(sink_.dead[0].d.dead_letter_queue, QueueId{99});
  EXPECT_EQ(sink_.dead[0].d.receive_count, 2u);
  EXPECT_EQ(sink_.dead[0].d.reason, DeadLetterReason::kMaxReceiveCount);
  EXPECT_EQ(sink_.dead[0].d.last_lease, LeaseEnd::kNacked);
  EXPECT_EQ(sink_.dead[0].d.source_queue, kQ);
  EXPECT_TRUE(Receive(1).empty());
  EXPECT_EQ(shard_->counters().dead_lettered, 1u);
  // A lease that runs out at the limit: dead-lettered with "expired".
  Send("slow");
  Receive(1, 100);
  Advance(100);
  Receive(1, 100);
  Advance(100);
  shard_->Tick(now_);
  ASSERT_EQ(sink_.dead.size(), 2u);
  EXPECT_EQ(sink_.dead[1].record, "slow");
  EXPECT_EQ(sink_.dead[1].d.last_lease, LeaseEnd::kExpired);
}

TEST_F(WorkTest, FifoGroupsHoldLaterMessagesWhileOneIsLeased) {
  QueueConfig qc;
  qc.fifo = true;
  Make(qc);
  Send("a1", 0, 0, "A");
  Send("a2", 0, 0, "A");
  Send("b1", 0, 0, "B");
  Send("free", 0, 0, "");  // ungrouped: not held back
  Send("a3", 0, 0, "A");
  EXPECT_EQ(Receive(10), (std::vector<std::string>{"a1", "b1", "free"}));
  const Receipt a1 = sink_.leased[0].l.receipt;
  EXPECT_EQ(Stats().backlog, 2u);
  EXPECT_EQ(shard_->Delete(kQ, 0, sink_.leased[1].l.receipt, now_), Errc::kOk);  // b1
  EXPECT_EQ(shard_->Delete(kQ, 0, sink_.leased[2].l.receipt, now_), Errc::kOk);  // free
  // a1's lease expires: a1 again, not a2.
  Advance(30'000);
  EXPECT_EQ(Receive(10), (std::vector<std::string>{"a1"}));
  EXPECT_EQ(shard_->Delete(kQ, 0, a1, now_), Errc::kStaleReceipt);
  EXPECT_EQ(shard_->Delete(kQ, 0, LastReceipt(), now_), Errc::kOk);
  EXPECT_EQ(Receive(10), (std::vector<std::string>{"a2"}));
  EXPECT_EQ(shard_->Delete(kQ, 0, LastReceipt(), now_), Errc::kOk);
  EXPECT_EQ(Receive(10), (std::vector<std::string>{"a3"}));
}

TEST_F(WorkTest, DedupIdWithinTheWindowIsAckedWithTheOriginalOffset) {
  QueueConfig qc;
  qc.dedup_window_ms = 1000;
  Make(qc);
  EXPECT_EQ(Send("x", 0, 0, {}, "id-1").offset, 0u);
  const AppendResult dup = Send("x again", 0, 0, {}, "id-1");
  EXPECT_EQ(dup.errc, Errc::kDuplicate);
  EXPECT_EQ(dup.offset, 0u);
  EXPECT_EQ(sink_.acks.back().errc, Errc::kDuplicate);
  EXPECT_EQ(sink_.acks.back().first_offset, 0u);
  EXPECT_EQ(Send("y", 0, 0, {}, "id-2").offset, 1u);
  Advance(1000);
  EXPECT_EQ(Send("x late", 0, 0, {}, "id-1").offset, 2u);  // window over
  EXPECT_EQ(Receive(10), (std::vector<std::string>{"x", "y", "x late"}));
}

TEST_F(WorkTest, ContentDedupTakesTheSameBodyWithoutIdAsADuplicate) {
  QueueConfig qc;
  qc.dedup_window_ms = 1000;
  qc.content_dedup = true;
  Make(qc);
  EXPECT_EQ(Send("x").offset, 0u);
  const AppendResult dup = Send("x");
  EXPECT_EQ(dup.errc, Errc::kDuplicate);
  EXPECT_EQ(dup.offset, 0u);
  EXPECT_EQ(sink_.acks.back().errc, Errc::kDuplicate);
  EXPECT_EQ(sink_.acks.back().first_offset, 0u);
  EXPECT_EQ(Send("y").offset, 1u);  // another body
  // An explicit dedup id wins over the content: same body, new id -> appended; same id -> dup.
  EXPECT_EQ(Send("x", 0, 0, {}, "id-1").offset, 2u);
  EXPECT_EQ(Send("other", 0, 0, {}, "id-1").offset, 2u);
  // Ids and bodies are apart by construction: an id equal to a remembered body is new.
  EXPECT_EQ(Send("z", 0, 0, {}, "y").offset, 3u);
  // A message without a body view (an internal move) is never deduplicated by content.
  EXPECT_EQ(shard_->Append(kProducer, kQ, Msg("x"), now_).errc, Errc::kOk);
  Durable();
  // The window edge: "x" was first seen at now_; still a duplicate 1 ms before the end.
  Advance(999);
  EXPECT_EQ(Send("x").errc, Errc::kDuplicate);
  Advance(1);
  EXPECT_EQ(Send("x").offset, 5u);  // window over: appended, remembered anew
  EXPECT_EQ(Send("x").offset, 5u);
  EXPECT_EQ(Receive(10), (std::vector<std::string>{"x", "y", "x", "z", "x", "x"}));
}

TEST_F(WorkTest, ContentDedupOffAppendsEqualBodies) {
  QueueConfig qc;
  qc.dedup_window_ms = 1000;  // dedup ids on, content dedup off (the default)
  Make(qc);
  EXPECT_EQ(Send("x").offset, 0u);
  EXPECT_EQ(Send("x").offset, 1u);
  EXPECT_EQ(Receive(10), (std::vector<std::string>{"x", "x"}));
}

TEST_F(WorkTest, ContentDedupChangesLive) {
  QueueConfig qc;
  qc.dedup_window_ms = 1000;
  qc.max_messages = 64;
  qc.max_message_bytes = 4096;  // what a 16 KiB chunk takes (UpdateLiveConfig checks it)
  Make(qc);
  EXPECT_EQ(Send("x").errc, Errc::kOk);
  EXPECT_EQ(Send("x").errc, Errc::kOk);  // off
  qc.content_dedup = true;
  ASSERT_EQ(shard_->UpdateLiveConfig(kQ, 0, qc), Errc::kOk);
  EXPECT_EQ(Send("x").offset, 2u);  // bodies are remembered from now on
  EXPECT_EQ(Send("x").errc, Errc::kDuplicate);
  qc.content_dedup = false;
  ASSERT_EQ(shard_->UpdateLiveConfig(kQ, 0, qc), Errc::kOk);
  EXPECT_EQ(Send("x").offset, 3u);
}

TEST_F(WorkTest, LongPollIsAnsweredTheMomentAMessageIsReady) {
  EXPECT_TRUE(Receive(2, 0, 5000).empty());
  EXPECT_TRUE(sink_.done.empty());  // parked
  EXPECT_EQ(Stats().waiters, 1u);
  Advance(10);
  shard_->Append(kProducer, kQ, Msg("late"), now_);
  EXPECT_TRUE(sink_.leased.empty());  // not durable yet
  Durable();
  ASSERT_EQ(sink_.leased.size(), 1u);
  EXPECT_EQ(sink_.leased[0].l.target, kConsumer);
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_EQ(sink_.done[0].count, 1u);
  // A second long poll times out empty.
  EXPECT_TRUE(Receive(1, 0, 100).empty());
  Advance(99);
  EXPECT_EQ(sink_.done.size(), 1u);
  Advance(1);
  ASSERT_EQ(sink_.done.size(), 2u);
  EXPECT_EQ(sink_.done[1].count, 0u);
  EXPECT_EQ(shard_->counters().waiters_timed_out, 1u);
}

TEST_F(WorkTest, RemovePartitionCancelsTimersAndFreesMemory) {
  Send("a");
  Send("b", 100);
  Receive(1);
  Receive(1, 0, 1000);
  shard_->Append(kProducer, kQ, Msg("not durable"), now_);
  const size_t done = sink_.done.size();
  sink_.acks.clear();
  EXPECT_EQ(shard_->RemovePartition(kQ, 0), Errc::kOk);
  // Promises kept: the parked receive is answered, the undurable message is acked with an error.
  ASSERT_EQ(sink_.done.size(), done + 1);
  EXPECT_EQ(sink_.done.back().errc, Errc::kUnknownPartition);
  ASSERT_EQ(sink_.acks.size(), 1u);
  EXPECT_EQ(sink_.acks[0].errc, Errc::kUnknownPartition);
  Advance(100'000);  // no timer may fire into the removed partition
  EXPECT_EQ(shard_->pool().free_count(), shard_->pool().capacity());
}


TEST_F(WorkTest, PurgeRemovesReadyDelayedAndLeasedButNotWhatIsNotDurable) {
  Send("leased");
  Send("ready");
  Send("delayed", 60'000);
  ASSERT_EQ(Receive(1), (std::vector<std::string>{"leased"}));
  const Receipt held = LastReceipt();
  shard_->Append(kProducer, kQ, Msg("in flight to storage"), now_);  // not durable
  uint64_t below = 0, dropped = 0;
  ASSERT_EQ(shard_->Purge(kQ, 0, &below, &dropped), Errc::kOk);
  EXPECT_EQ(below, 3u);  // offsets 0..2 were durable
  EXPECT_EQ(dropped, 3u);
  EXPECT_EQ(Stats().leased, 0u);
  EXPECT_EQ(Stats().delayed, 0u);
  EXPECT_EQ(Stats().ready, 0u);
  EXPECT_EQ(Stats().pending, 1u);
  EXPECT_EQ(shard_->Delete(kQ, 0, held, now_), Errc::kUnknownReceipt);  // the purge took it
  EXPECT_EQ(shard_->Find(kQ, 0)->counters().purged, 3u);
  // A long poll parked after the purge is answered by the message that was still on its way
  // to storage: it stays.
  EXPECT_TRUE(Receive(1, 0, 5000).empty());
  const size_t leased_before = sink_.leased.size();
  Durable();
  ASSERT_EQ(sink_.leased.size(), leased_before + 1);
  EXPECT_EQ(sink_.leased.back().record, "in flight to storage");
  EXPECT_EQ(sink_.leased.back().l.message.offset, 3u);
  EXPECT_EQ(Send("after").offset, 4u);  // offsets go on
}

TEST_F(WorkTest, PurgeOfFifoGroupsFreesTheGroups) {
  QueueConfig qc;
  qc.fifo = true;
  qc.max_groups = 4;
  qc.max_messages = 64;
  Make(qc);
  for (int i = 0; i < 3; ++i) {
    Send("a", 0, 0, "g1");
    Send("b", 0, 0, "g2");
  }
  ASSERT_EQ(Receive(10).size(), 2u);  // one per group
  uint64_t below = 0, dropped = 0;
  ASSERT_EQ(shard_->Purge(kQ, 0, &below, &dropped), Errc::kOk);
  EXPECT_EQ(dropped, 6u);
  EXPECT_EQ(Stats().groups, 0u);
  Send("c", 0, 0, "g3");
  EXPECT_EQ(Receive(10), (std::vector<std::string>{"c"}));
}

TEST_F(WorkTest, DedupWindowChangesLive) {
  QueueConfig qc;
  qc.dedup_window_ms = 0;
  qc.max_messages = 64;
  qc.max_message_bytes = 4096;  // what a 16 KiB chunk takes (UpdateLiveConfig checks it)
  Make(qc);
  EXPECT_EQ(Send("x", 0, 0, {}, "id").errc, Errc::kOk);
  EXPECT_EQ(Send("x", 0, 0, {}, "id").errc, Errc::kOk);  // no dedup yet
  // Turned on: ids seen from now on are remembered.
  qc.dedup_window_ms = 1000;
  ASSERT_EQ(shard_->UpdateLiveConfig(kQ, 0, qc), Errc::kOk);
  EXPECT_EQ(Send("y", 0, 0, {}, "id-2").offset, 2u);
  Advance(500);
  EXPECT_EQ(Send("y", 0, 0, {}, "id-2").errc, Errc::kDuplicate);
  // Grown: an id still remembered lives for the new window, from when it was first seen.
  qc.dedup_window_ms = 5000;
  ASSERT_EQ(shard_->UpdateLiveConfig(kQ, 0, qc), Errc::kOk);
  Advance(3000);  // 3.5 s after id-2: inside 5 s
  EXPECT_EQ(Send("y", 0, 0, {}, "id-2").errc, Errc::kDuplicate);
  // Shrunk: ids older than the new window are forgotten at once.
  qc.dedup_window_ms = 2000;
  ASSERT_EQ(shard_->UpdateLiveConfig(kQ, 0, qc), Errc::kOk);
  EXPECT_EQ(Send("y", 0, 0, {}, "id-2").errc, Errc::kOk);
  // Off: nothing is deduplicated.
  EXPECT_EQ(Send("z", 0, 0, {}, "id-3").errc, Errc::kOk);
  qc.dedup_window_ms = 0;
  ASSERT_EQ(shard_->UpdateLiveConfig(kQ, 0, qc), Errc::kOk);
  EXPECT_EQ(Send("z", 0, 0, {}, "id-3").errc, Errc::kOk);
}

TEST_F(WorkTest, PartitionCountersCountLeasesExpiryAndThrottles) {
  Send("a");
  Send("bb");
  ASSERT_EQ(Receive(1).size(), 1u);
  Advance(1000);  // the lease expires
  ASSERT_EQ(Receive(2).size(), 2u);
  const PartitionCounters& c = shard_->Find(kQ, 0)->counters();
  EXPECT_EQ(c.messages_in, 2u);
  EXPECT_EQ(c.bytes_in, 3u);
  EXPECT_EQ(c.messages_out, 3u);  // a redelivery is another message out
  EXPECT_EQ(c.bytes_out, 4u);
  EXPECT_EQ(c.acked, 2u);
}

}  // namespace
}  // namespace sluice::shard
