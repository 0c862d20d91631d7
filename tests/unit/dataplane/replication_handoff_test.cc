// A shard lcore's side of the hand-off to a dedicated replication lcore (HandoffReplicator,
// docs/replication.md §1): what it puts in its ring, and what it does when the ring is full —
// never blocks, never loses a batch (offered without bytes, or kept and handed later), counts
// an ack record it could not hand over and stops calling that partition's acks replicated.
#include "dataplane/replication_handoff.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dataplane/replication_shell.h"
#include "dataplane/worker.h"

namespace sluice::dataplane {
namespace {

struct Taken {
  HandoffHeader h;
  std::vector<std::byte> payload;
};

class HandoffTest : public ::testing::Test {
 protected:
  explicit HandoffTest(uint32_t ring_bytes = 4096) {
    wake_.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    handoff_.rings.resize(1);
    handoff_.rings[0] = std::make_unique<replication::HandoffRing>(ring_bytes);
    handoff_.wake = &wake_;
    status_.role.store(1);
    status_.handoff = &handoff_;
    r_ = std::make_unique<HandoffReplicator>(status_, handoff_, 0);
  }
  ~HandoffTest() override { close(wake_.fd); }

  std::vector<Taken> TakeAll() {
    std::vector<Taken> out;
    for (auto m = ring().Peek(); !m.empty(); m = ring().Peek()) {
      if (m.size() < sizeof(HandoffHeader)) {  // the test's filler
        ring().Pop();
        continue;
      }
      Taken t;
      std::memcpy(&t.h, m.data(), sizeof t.h);
      t.payload.assign(m.begin() + sizeof t.h, m.end());
      out.push_back(std::move(t));
      ring().Pop();
    }
    return out;
  }
  replication::HandoffRing& ring() { return *handoff_.rings[0]; }
  static std::vector<std::byte> Bytes(size_t n, uint8_t v) {
    return std::vector<std::byte>(n, std::byte{v});
  }

  WakeSignal wake_;
  ReplicationStatus status_;
  ReplicationHandoff handoff_;
  std::unique_ptr<HandoffReplicator> r_;
};

TEST_F(HandoffTest, BatchesAcksAndPartitionsCrossInOrder) {
  r_->AddPartition(3, 1, 100);
  const auto batch = Bytes(200, 7);
  r_->Offer(3, 1, batch, 100, 110, 5);
  r_->Offer(3, 1, batch, 100, 110, 6);  // offered again (throttled): ignored
  EXPECT_EQ(r_->OfferAck(3, 1, Replicator::kAckCommit, 0, "grp", 42), 1u);
  r_->Offer(9, 9, batch, 0, 1, 7);      // not a replicated partition: nothing
  r_->RemovePartition(3, 1);
  const auto t = TakeAll();
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].h.kind, HandoffKind::kAdd);
  EXPECT_EQ(t[0].h.base, 100u);
  EXPECT_EQ(t[1].h.kind, HandoffKind::kBatch);
  EXPECT_EQ(t[1].h.base, 100u);
  EXPECT_EQ(t[1].h.end, 110u);
  EXPECT_EQ(t[1].payload, batch);
  EXPECT_EQ(t[2].h.kind, HandoffKind::kAck);
  EXPECT_EQ(t[2].h.base, 42u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(t[2].payload.data()), t[2].payload.size()),
            "grp");
  EXPECT_EQ(t[3].h.kind, HandoffKind::kRemove);
  EXPECT_EQ(handoff_.batches_from_log.load(), 0u);
}

TEST_F(HandoffTest, ABatchThatDoesNotFitIsOfferedFromTheLog) {
  r_->AddPartition(1, 0, 0);
  r_->Offer(1, 0, Bytes(1500, 1), 0, 10, 1);   // fits
  r_->Offer(1, 0, Bytes(1500, 2), 10, 20, 2);  // fits
  r_->Offer(1, 0, Bytes(1500, 3), 20, 30, 3);  // does not (4096-byte ring): header only
  r_->Offer(1, 0, Bytes(3000, 4), 30, 40, 4);  // never fits: header only
  const auto t = TakeAll();
  ASSERT_EQ(t.size(), 5u);
  EXPECT_EQ(t[2].h.kind, HandoffKind::kBatch);
  EXPECT_EQ(t[3].h.kind, HandoffKind::kFromLog);
  EXPECT_EQ(t[3].h.base, 20u);
  EXPECT_EQ(t[3].h.end, 30u);
  EXPECT_TRUE(t[3].payload.empty());
  EXPECT_EQ(t[4].h.kind, HandoffKind::kFromLog);
  EXPECT_EQ(t[4].h.base, 30u);
  EXPECT_EQ(t[4].h.end, 40u);
  EXPECT_EQ(handoff_.batches_from_log.load(), 2u);
}

TEST_F(HandoffTest, AFullRingKeepsTheRangeAndHandsItAtTheNextCall) {
  r_->AddPartition(1, 0, 0);
  // Fill the ring to the last byte with another partition's traffic.
  r_->AddPartition(2, 0, 0);
  while (ring().Begin(1) != nullptr) {
    ring().Commit();  // small messages: the ring ends up with no room even for a header
  }
  r_->Offer(1, 0, Bytes(100, 1), 0, 5, 1);
  r_->Offer(1, 0, Bytes(100, 2), 5, 9, 2);
  EXPECT_EQ(handoff_.deferred.load(), 2u);
  uint64_t end = 0;
  EXPECT_FALSE(r_->Replicated(1, 0, 0, &end));  // nothing published yet
  // The replication lcore drains; the next call of any kind hands the kept range over.
  auto t = TakeAll();
  for (const Taken& x : t) {
    EXPECT_TRUE(x.h.kind == HandoffKind::kAdd || x.payload.empty());
  }
  EXPECT_FALSE(r_->Replicated(1, 0, 0, &end));
  t = TakeAll();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].h.kind, HandoffKind::kFromLog);
  EXPECT_EQ(t[0].h.queue, 1u);
  EXPECT_EQ(t[0].h.base, 0u);
  EXPECT_EQ(t[0].h.end, 9u);
  // And later batches go with their bytes again.
  r_->Offer(1, 0, Bytes(100, 3), 9, 12, 3);
  t = TakeAll();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].h.kind, HandoffKind::kBatch);
  EXPECT_EQ(t[0].h.base, 9u);
}

TEST_F(HandoffTest, AnAckRecordThatCannotBeHandedOverIsCountedAndNeverReportedReplicated) {
  r_->AddPartition(1, 0, 0);
  handoff_.board.Set(1, 0, 50, 0);
  uint64_t applied = 9;
  ASSERT_TRUE(r_->AckReplicated(1, 0, 0, &applied));
  EXPECT_EQ(applied, 0u);
  while (ring().Begin(1) != nullptr) ring().Commit();
  EXPECT_EQ(r_->OfferAck(1, 0, Replicator::kAckDelete, 0, "", 3), 1u);  // still counted
  EXPECT_EQ(handoff_.acks_lost.load(), 1u);
  TakeAll();
  handoff_.board.Set(1, 0, 50, 1);  // whatever the replication lcore says
  EXPECT_FALSE(r_->AckReplicated(1, 0, 0, &applied));
  uint64_t end = 0;
  ASSERT_TRUE(r_->Replicated(1, 0, 0, &end));  // the data stream is unaffected
  EXPECT_EQ(end, 50u);
}

TEST_F(HandoffTest, AckRecordsCountAsWrittenOnlyAPassAfterTheyWereHandedOver) {
  // The Frontend flushes the ack logs once per pass, possibly before a record of that same pass:
  // a record counts as in the file at the end of the pass after the one that handed it over.
  handoff_.acks_flushed = std::make_unique<std::atomic<uint64_t>[]>(1);
  r_->AddPartition(1, 0, 0);
  r_->OfferAck(1, 0, Replicator::kAckDelete, 0, "", 1);
  r_->OfferAck(1, 0, Replicator::kAckDelete, 0, "", 2);
  r_->PassEnded();
  EXPECT_EQ(handoff_.acks_flushed[0].load(), 0u);
  r_->OfferAck(1, 0, Replicator::kAckDelete, 0, "", 3);
  r_->PassEnded();
  EXPECT_EQ(handoff_.acks_flushed[0].load(), 2u);
  r_->PassEnded();
  EXPECT_EQ(handoff_.acks_flushed[0].load(), 3u);
}

TEST_F(HandoffTest, OpeningsThatDidNotFitGoFirstAndDataNeverOvertakesThem) {
  while (ring().Begin(1) != nullptr) ring().Commit();
  r_->AddPartition(4, 0, 7);          // kept (control path)
  r_->Offer(4, 0, Bytes(10, 1), 7, 8, 1);  // must not pass the opening: kept as a range
  TakeAll();
  uint64_t end = 0;
  (void)r_->Replicated(4, 0, 0, &end);  // any call retries
  const auto t = TakeAll();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].h.kind, HandoffKind::kAdd);
  EXPECT_EQ(t[1].h.kind, HandoffKind::kFromLog);
  EXPECT_EQ(t[1].h.base, 7u);
  EXPECT_EQ(t[1].h.end, 8u);
}

// ---- a standby's replica reads through the replication lcore (docs/replication.md §6) -------

class ReplicaReadTest : public ::testing::Test {
 protected:
  ReplicaReadTest() {
    for (WakeSignal& w : wake_) w.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    handoff_.rings.resize(2);
    handoff_.rings[1] = std::make_unique<replication::HandoffRing>(4096);  // worker 1 owns shards
    handoff_.wake = &wake_[0];
    handoff_.SetUpReplicaReads(wake_);
    status_.role.store(2);
    status_.handoff = &handoff_;
    r_ = std::make_unique<HandoffReplicator>(status_, handoff_, 1);
  }
  ~ReplicaReadTest() override {
    for (WakeSignal& w : wake_) close(w.fd);
  }
  ReplicationHandoff::ReadRings& rings() { return *handoff_.reads[1]; }
  // What the replication lcore took: the requests in order.
  std::vector<replication::ReplicaReadRequest> Requests() {
    std::vector<replication::ReplicaReadRequest> out;
    replication::ReplicaReadRequest q;
    while (replication::PeekReplicaRequest(rings().requests, &q)) {
      out.push_back(q);
      rings().requests.Pop();
    }
    return out;
  }
  void Answer(uint64_t cookie, Errc errc, uint64_t next,
              const std::vector<shard::StoredMessage>& records) {
    ASSERT_EQ(replication::PushReplicaAnswer(rings().answers, cookie, errc, next,
                                             std::span<const shard::StoredMessage>(records)),
              replication::ReplicaAnswered::kAsRead);
  }

  WakeSignal wake_[2];
  ReplicationStatus status_;
  ReplicationHandoff handoff_;
  std::unique_ptr<HandoffReplicator> r_;
};

TEST_F(ReplicaReadTest, APrimaryHasNoReplicaToRead) {
  ReplicationHandoff primary;
  primary.rings.resize(1);
  primary.rings[0] = std::make_unique<replication::HandoffRing>(4096);
  primary.wake = &wake_[0];
  HandoffReplicator r(status_, primary, 0);  // no read rings: SetUpReplicaReads not called
  EXPECT_EQ(r.ReadReplica(1, 0, 0, 10, 0, false), Errc::kUnknownPartition);
  EXPECT_EQ(r.ReplicaEnd(1, 0), 0u);
  EXPECT_TRUE(r.RepliesEmpty());
}

TEST_F(ReplicaReadTest, RefusedAtOnceAsTheChannelWouldWithoutARequest) {
  EXPECT_EQ(r_->ReadReplica(3, 0, 0, 10, 0, false), Errc::kUnknownPartition);  // not open
  handoff_.replica_start.Set(3, 0, 100);
  status_.durable.Set(3, 0, 250);
  EXPECT_EQ(r_->ReplicaStart(3, 0), 100u);
  EXPECT_EQ(r_->ReplicaEnd(3, 0), 250u);
  EXPECT_EQ(r_->ReadReplica(3, 0, 99, 10, 0, false), Errc::kOffsetOutOfRange);   // retention
  EXPECT_EQ(r_->ReadReplica(3, 0, 250, 10, 0, false), Errc::kOffsetOutOfRange);  // not durable
  EXPECT_TRUE(Requests().empty());
  // In range, and by timestamp (the reader finds the offset): asked.
  EXPECT_EQ(r_->ReadReplica(3, 0, 100, 10, 5, false), Errc::kOk);
  EXPECT_EQ(r_->ReadReplica(3, 0, 123456789, 10, 6, true), Errc::kOk);
  const auto q = Requests();
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0].value, 100u);
  EXPECT_EQ(q[0].cookie, 5u);
  EXPECT_EQ(q[0].queue, 3u);
  EXPECT_EQ(q[0].max_records, 10u);
  EXPECT_EQ(q[0].by_timestamp, 0u);
  EXPECT_EQ(q[1].by_timestamp, 1u);
  EXPECT_EQ(q[1].value, 123456789u);
  // Closed: not open any more.
  handoff_.replica_start.Close(3, 0);
  EXPECT_EQ(r_->ReadReplica(3, 0, 100, 10, 7, false), Errc::kUnknownPartition);
  EXPECT_EQ(r_->ReplicaStart(3, 0), 0u);
}

TEST_F(ReplicaReadTest, ACommittedOffsetIsReadFromTheBoardUnderItsAckLogKey) {
  // The replication lcore writes partition 0's commits under "<partition>:<group>", the key the
  // primary logs them with (Frontend::PersistGroupCommit).
  uint64_t o = 0;
  EXPECT_FALSE(r_->ReplicaCommitted(3, 1, "g", &o));
  ASSERT_TRUE(handoff_.replica_commits.Set(3, "1:g", 42));
  ASSERT_TRUE(handoff_.replica_commits.Set(3, "0:g", 7));
  EXPECT_TRUE(r_->ReplicaCommitted(3, 1, "g", &o));
  EXPECT_EQ(o, 42u);
  EXPECT_TRUE(r_->ReplicaCommitted(3, 0, "g", &o));
  EXPECT_EQ(o, 7u);
  EXPECT_FALSE(r_->ReplicaCommitted(3, 2, "g", &o));
  EXPECT_FALSE(r_->ReplicaCommitted(4, 1, "g", &o));
  EXPECT_FALSE(r_->ReplicaCommitted(3, 1, "h", &o));
}

TEST_F(ReplicaReadTest, AnswersComeBackWithTheirRecordsAndFreeTheirPlace) {
  handoff_.replica_start.Set(1, 1, 0);
  status_.durable.Set(1, 1, 1000);
  for (uint64_t i = 0; i < replication::kMaxReplicaReads; ++i) {
    ASSERT_EQ(r_->ReadReplica(1, 1, i * 10, 3, i, false), Errc::kOk);
  }
  // One more than may be out: THROTTLED, counted, nothing asked.
  EXPECT_EQ(r_->ReadReplica(1, 1, 500, 3, 9, false), Errc::kThrottled);
  EXPECT_EQ(handoff_.replica_reads_throttled.load(), 1u);
  EXPECT_EQ(Requests().size(), replication::kMaxReplicaReads);
  EXPECT_TRUE(r_->RepliesEmpty());
  const std::string a = "alpha", b = "be";
  const std::vector<shard::StoredMessage> recs = {
      {0, 11, {reinterpret_cast<const std::byte*>(a.data()), a.size()}},
      {1, 12, {reinterpret_cast<const std::byte*>(b.data()), b.size()}}};
  Answer(0, Errc::kOk, 2, recs);
  Answer(1, Errc::kStorageFailed, 10, {});
  EXPECT_FALSE(r_->RepliesEmpty());
  struct Got {
    uint64_t cookie;
    Errc errc;
    uint64_t next;
    std::vector<std::string> records;
    std::vector<uint64_t> offsets;
  };
  std::vector<Got> got;
  EXPECT_EQ(r_->PollReplicaReads([&](uint64_t cookie, Errc e, uint64_t next,
                                     std::span<const shard::StoredMessage> rs) {
              Got g{cookie, e, next, {}, {}};
              for (const auto& m : rs) {
                g.records.emplace_back(reinterpret_cast<const char*>(m.record.data()),
                                       m.record.size());
                g.offsets.push_back(m.offset);
              }
              got.push_back(std::move(g));
            }),
            2u);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].cookie, 0u);
  EXPECT_EQ(got[0].errc, Errc::kOk);
  EXPECT_EQ(got[0].next, 2u);
  EXPECT_EQ(got[0].records, (std::vector<std::string>{"alpha", "be"}));
  EXPECT_EQ(got[0].offsets, (std::vector<uint64_t>{0, 1}));
  EXPECT_EQ(got[1].cookie, 1u);
  EXPECT_EQ(got[1].errc, Errc::kStorageFailed);
  EXPECT_TRUE(got[1].records.empty());
  EXPECT_TRUE(r_->RepliesEmpty());
  // Two answered: two more may be asked, not three.
  EXPECT_EQ(r_->ReadReplica(1, 1, 40, 3, 4, false), Errc::kOk);
  EXPECT_EQ(r_->ReadReplica(1, 1, 50, 3, 5, false), Errc::kOk);
  EXPECT_EQ(r_->ReadReplica(1, 1, 60, 3, 6, false), Errc::kThrottled);
  EXPECT_EQ(handoff_.replica_reads_throttled.load(), 2u);
}

TEST_F(ReplicaReadTest, ASleepingReplicationLcoreIsWokenByARequest) {
  handoff_.replica_start.Set(1, 0, 0);
  status_.durable.Set(1, 0, 10);
  uint64_t n = 0;
  ASSERT_EQ(r_->ReadReplica(1, 0, 0, 1, 0, false), Errc::kOk);
  EXPECT_LT(read(wake_[0].fd, &n, sizeof n), 0);  // awake: not written
  wake_[0].sleeping.store(true);
  ASSERT_EQ(r_->ReadReplica(1, 0, 1, 1, 1, false), Errc::kOk);
  EXPECT_EQ(read(wake_[0].fd, &n, sizeof n), static_cast<ssize_t>(sizeof n));
  EXPECT_EQ(n, 1u);
}

}  // namespace
}  // namespace sluice::dataplane
