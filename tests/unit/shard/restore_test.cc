// The engine's side of storage: taking recovered records back (streams and work queues, with
// idempotence and dedup state), failing a partition, and sealing by a policy.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/shard/shard.h"
#include "tests/unit/shard/test_sink.h"

namespace sluice::shard {
namespace {

using testing::Bytes;
using testing::kMs;
using testing::Msg;
using testing::RecordingSink;

constexpr QueueId kQ{7};
const ReplyTarget kProducer{1, 1, 1};
const ReplyTarget kConsumer{2, 2, 2};
constexpr uint64_t kT0 = 1'700'000'000'000'000'000ull;  // Unix ns: the shell's clock

struct Removed {
  uint32_t partition;
  uint64_t offset;
};
struct RemovalSink final : ShardSink {
  RecordingSink events;
  std::vector<Removed> removed;
  void OnAck(const AckRange& a) override { events.OnAck(a); }
  void OnDeliver(const Delivery& d) override { events.OnDeliver(d); }
  void OnSubscriptionGap(const SubscriptionGap& g) override { events.OnSubscriptionGap(g); }
  void OnLeased(const Leased& l) override { events.OnLeased(l); }
  void OnReceiveDone(const ReceiveDone& d) override { events.OnReceiveDone(d); }
  void OnDeadLetter(const DeadLetter& d) override { events.OnDeadLetter(d); }
  void OnRemoved(QueueId, uint32_t partition, uint64_t offset) override {
    removed.push_back({partition, offset});
  }
};

class RestoreTest : public ::testing::Test {
 protected:
  void Make(QueueType type, uint32_t dedup_window_ms = 0, uint32_t budget_chunks = 64) {
    ShardConfig sc;
    sc.chunk_bytes = 16 * 1024;
    sc.pool_chunks = 64;
    shard_ = std::make_unique<Shard>(sc, &sink_);
    QueueConfig qc;
    qc.type = type;
    qc.durability = Durability::kDsync;
    qc.max_message_bytes = 4096;
    qc.max_messages = 1024;
    qc.memory_budget_chunks = budget_chunks;
    qc.dedup_window_ms = dedup_window_ms;
    qc.visibility_timeout_ms = 1000;
    ASSERT_EQ(shard_->AddPartition(kQ, 0, qc), Errc::kOk);
  }
  MessageIn Idem(std::string_view payload, uint64_t producer, uint64_t seq) {
    MessageIn m = Msg(payload);
    m.producer_id = producer;
    m.sequence = seq;
    return m;
  }
  const PartitionLog& log() { return shard_->Find(kQ, 0)->log(); }

  RemovalSink sink_;
  std::unique_ptr<Shard> shard_;
};

TEST_F(RestoreTest, StreamContinuesAtItsRecoveredOffsetAndServesRestoredRecords) {
  Make(QueueType::kStream);
  std::vector<std::string> payloads;  // the records' bytes must outlive the calls
  for (uint64_t o = 100; o < 110; ++o) payloads.push_back(absl::StrCat("m", o));
  for (uint64_t o = 100; o < 110; ++o) {
    ASSERT_EQ(shard_->Restore(kQ, Idem(payloads[o - 100], 0, 0), o, kT0 + o, false), Errc::kOk);
  }
  ASSERT_EQ(shard_->EndRestore(kQ, 0, 110), Errc::kOk);
  EXPECT_EQ(log().start_offset(), 100u);
  EXPECT_EQ(log().durable_end().value, 110u);
  bool undurable = false;
  shard_->ForEachUndurableBatch(kQ, 0, [&](const SealedBatch&) { undurable = true; });
  EXPECT_FALSE(undurable) << "restored batches are on disk: storage must not write them again";

  std::vector<std::string> got;
  FetchResult f = shard_->Fetch(kQ, 0, StartPosition::Offset(105), 100, 1 << 20,
                                [&](const StoredMessage& m) {
                                  got.push_back(testing::Str(m.record));
                                  EXPECT_EQ(m.timestamp_ns, kT0 + m.offset);
                                });
  EXPECT_EQ(f.errc, Errc::kOk);
  EXPECT_EQ(got, (std::vector<std::string>{"m105", "m106", "m107", "m108", "m109"}));

  const AppendResult r = shard_->Append(kProducer, kQ, Msg("new"), kT0 + 1000);
  EXPECT_EQ(r.offset, 110u);
}

TEST_F(RestoreTest, EmptyLogStartsAtNextOffset) {
  Make(QueueType::kStream);
  ASSERT_EQ(shard_->EndRestore(kQ, 0, 42), Errc::kOk);
  EXPECT_EQ(shard_->Append(kProducer, kQ, Msg("x"), kT0).offset, 42u);
  EXPECT_EQ(log().start_offset(), 42u);
}

TEST_F(RestoreTest, RetransmitAfterRestartIsAnsweredAsDuplicateWithItsOriginalOffset) {
  Make(QueueType::kStream);
  // Producer 9 wrote sequences 0..4 at offsets 0..4 before the crash.
  for (uint64_t s = 0; s < 5; ++s) {
    ASSERT_EQ(shard_->Restore(kQ, Idem("p", 9, s), s, kT0, false), Errc::kOk);
  }
  ASSERT_EQ(shard_->EndRestore(kQ, 0, 5), Errc::kOk);
  const AppendResult dup = shard_->Append(kProducer, kQ, Idem("p", 9, 3), kT0 + 1);
  EXPECT_EQ(dup.errc, Errc::kDuplicate);
  EXPECT_EQ(dup.offset, 3u);
  const AppendResult next = shard_->Append(kProducer, kQ, Idem("p", 9, 5), kT0 + 1);
  EXPECT_EQ(next.errc, Errc::kOk);
  EXPECT_EQ(next.offset, 5u);
  const AppendResult gap = shard_->Append(kProducer, kQ, Idem("p", 9, 9), kT0 + 1);
  EXPECT_EQ(gap.errc, Errc::kOutOfOrderSequence);
}

TEST_F(RestoreTest, ProducerWhoseEarlyRecordsAreGoneIsStillKnown) {
  Make(QueueType::kWork);
  // Sequences 0..2 were deleted and compacted away; 3 and 4 remain (4 deleted but logged).
  ASSERT_EQ(shard_->Restore(kQ, Idem("a", 5, 3), 10, kT0, false), Errc::kOk);
  ASSERT_EQ(shard_->Restore(kQ, Idem("b", 5, 4), 11, kT0, true), Errc::kOk);
  ASSERT_EQ(shard_->EndRestore(kQ, 0, 12), Errc::kOk);
  EXPECT_EQ(shard_->Append(kProducer, kQ, Idem("b", 5, 4), kT0).errc, Errc::kDuplicate);
  EXPECT_EQ(shard_->Append(kProducer, kQ, Idem("c", 5, 5), kT0).offset, 12u);
}

TEST_F(RestoreTest, WorkQueueRestoresOnlyUndeletedMessagesAtTheirOffsets) {
  Make(QueueType::kWork);
  ASSERT_EQ(shard_->Restore(kQ, Msg("zero"), 0, kT0, false), Errc::kOk);
  ASSERT_EQ(shard_->Restore(kQ, Msg("one"), 1, kT0, true), Errc::kOk);
  ASSERT_EQ(shard_->Restore(kQ, Msg("five"), 5, kT0, false), Errc::kOk);
  ASSERT_EQ(shard_->EndRestore(kQ, 0, 6), Errc::kOk);
  shard_->Receive(kConsumer, kQ, 0, {10, 0, 0}, kT0 + kMs);
  ASSERT_EQ(sink_.events.leased.size(), 2u);
  EXPECT_EQ(sink_.events.leased[0].record, "zero");
  EXPECT_EQ(sink_.events.leased[0].l.message.offset, 0u);
  EXPECT_EQ(sink_.events.leased[1].record, "five");
  EXPECT_EQ(sink_.events.leased[1].l.message.offset, 5u);
  // Deleting reports the offset, for the ack log.
  ASSERT_EQ(shard_->Delete(kQ, 0, sink_.events.leased[1].l.receipt, kT0 + 2 * kMs), Errc::kOk);
  ASSERT_EQ(sink_.removed.size(), 1u);
  EXPECT_EQ(sink_.removed[0].offset, 5u);
  EXPECT_EQ(shard_->Append(kProducer, kQ, Msg("six"), kT0 + 3 * kMs).offset, 6u);
}

TEST_F(RestoreTest, DedupIdsSurviveWithinTheirWindow) {
  Make(QueueType::kWork, /*dedup_window_ms=*/1000);
  MessageIn m = Msg("once");
  m.dedup_id = "order-17";
  ASSERT_EQ(shard_->Restore(kQ, m, 0, kT0, false), Errc::kOk);
  ASSERT_EQ(shard_->EndRestore(kQ, 0, 1), Errc::kOk);
  const AppendResult again = shard_->Append(kProducer, kQ, m, kT0 + 500 * kMs);
  EXPECT_EQ(again.errc, Errc::kDuplicate);
  EXPECT_EQ(again.offset, 0u);
  // The window counts from the original append, not from the restart.
  EXPECT_EQ(shard_->Append(kProducer, kQ, m, kT0 + 1001 * kMs).errc, Errc::kOk);
}

TEST_F(RestoreTest, ContentDedupSurvivesWithinItsWindow) {
  Make(QueueType::kWork, /*dedup_window_ms=*/1000);
  QueueConfig qc = shard_->Find(kQ, 0)->config();
  qc.content_dedup = true;
  ASSERT_EQ(shard_->UpdateLiveConfig(kQ, 0, qc), Errc::kOk);
  MessageIn m = Msg("same body");
  m.body = m.record;
  ASSERT_EQ(shard_->Restore(kQ, m, 0, kT0, false), Errc::kOk);
  ASSERT_EQ(shard_->EndRestore(kQ, 0, 1), Errc::kOk);
  const AppendResult again = shard_->Append(kProducer, kQ, m, kT0 + 500 * kMs);
  EXPECT_EQ(again.errc, Errc::kDuplicate);
  EXPECT_EQ(again.offset, 0u);
  EXPECT_EQ(shard_->Append(kProducer, kQ, m, kT0 + 1001 * kMs).errc, Errc::kOk);
}

TEST_F(RestoreTest, WorkQueueLargerThanItsBudgetIsReported) {
  Make(QueueType::kWork, 0, /*budget_chunks=*/1);
  const std::string big(3000, 'x');
  Errc e = Errc::kOk;
  uint64_t o = 0;
  for (; o < 100 && e == Errc::kOk; ++o) e = shard_->Restore(kQ, Msg(big), o, kT0, false);
  EXPECT_EQ(e, Errc::kThrottled);
}

TEST_F(RestoreTest, FailedPartitionAnswersStorageFailedToPendingAndNewAppends) {
  Make(QueueType::kStream);
  ASSERT_EQ(shard_->EndRestore(kQ, 0, 0), Errc::kOk);
  shard_->Append(kProducer, kQ, Idem("a", 3, 0), kT0);
  shard_->SealBatch(kQ, 0);
  shard_->Append(kProducer, kQ, Idem("b", 3, 1), kT0);
  shard_->SealBatch(kQ, 0);
  shard_->MarkDurable(kQ, 0, DurableOffset{1});  // "a" made it, "b" hit the failure
  shard_->Flush();
  ASSERT_EQ(shard_->FailPartition(kQ, 0), Errc::kOk);
  shard_->Append(kProducer, kQ, Idem("c", 3, 2), kT0);
  shard_->Flush();
  std::vector<Errc> acks;
  for (const AckRange& a : sink_.events.acks) {
    for (uint32_t i = 0; i < a.count; ++i) acks.push_back(a.errc);
  }
  EXPECT_EQ(acks, (std::vector<Errc>{Errc::kOk, Errc::kStorageFailed, Errc::kStorageFailed}));
  EXPECT_TRUE(shard_->Find(kQ, 0)->failed());
  // What was durable stays readable.
  uint32_t n = 0;
  shard_->Fetch(kQ, 0, StartPosition::Earliest(), 10, 1 << 20, [&](const StoredMessage&) { ++n; });
  EXPECT_EQ(n, 1u);
}

TEST_F(RestoreTest, SealDueKeepsBatchesThatAreNotDueOpen) {
  Make(QueueType::kStream);
  ASSERT_EQ(shard_->EndRestore(kQ, 0, 0), Errc::kOk);
  shard_->Append(kProducer, kQ, Msg("a"), kT0);
  uint32_t sealed = shard_->SealDue([](const Partition&) { return false; },
                                    [](const Partition&) { ADD_FAILURE(); });
  EXPECT_EQ(sealed, 0u);
  EXPECT_TRUE(log().batch_open());
  EXPECT_GT(log().open_batch_bytes(), 0u);
  EXPECT_EQ(log().open_batch_since_ns(), kT0);
  shard_->Append(kProducer, kQ, Msg("b"), kT0 + 1);
  std::vector<uint32_t> seen;
  sealed = shard_->SealDue([](const Partition&) { return true; },
                           [&](const Partition& p) { seen.push_back(p.index()); });
  EXPECT_EQ(sealed, 1u);
  EXPECT_EQ(seen, std::vector<uint32_t>{0});
  EXPECT_EQ(log().sealed_end().value, 2u);
}

}  // namespace
}  // namespace sluice::shard
