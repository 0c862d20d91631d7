// The ack-log stream's parts in isolation (replication/ack_stream.h): the record ring wraps and
// refuses what does not fit, commit keys name their partition, and the sender's session logic
// (resume from the ring, snapshot otherwise, a standby that lost its generation).
#include "replication/ack_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::replication {
namespace {

TEST(AckRing, WrapsKeepsOrderAndRefusesWhenFull) {
  AckRing ring(1024, 16);
  std::vector<std::string> keys;
  uint64_t pushed = 0, popped = 0;
  for (int round = 0; round < 200; ++round) {
    // Records of varying size (16..80 bytes) until one does not fit, then pop a few.
    for (;;) {
      const std::string key(static_cast<size_t>(pushed % 65), 'k');
      const AckRecord r{AckRecordKind::kCommit, 1, pushed, key};
      if (!ring.Push(r)) break;
      ++pushed;
    }
    ASSERT_GT(ring.count(), 0u);
    EXPECT_EQ(ring.end_seq(), pushed);
    for (int i = 0; i < 3 && !ring.empty(); ++i) {
      AckRecord got;
      DecodeAckRecord(ring.At(ring.first_seq()), &got);
      EXPECT_EQ(got.offset, popped);  // the record numbered k carries offset k here
      EXPECT_EQ(got.group.size(), popped % 65);
      ring.PopFront();
      ++popped;
    }
  }
  EXPECT_GT(pushed, 500u);
}

TEST(CommitRefPartition, ReadsThePartitionPrefix) {
  EXPECT_EQ(CommitRefPartition("3:group", 0), 3u);
  EXPECT_EQ(CommitRefPartition("12:g:x", 0), 12u);
  EXPECT_EQ(CommitRefPartition("group", 5), 5u);
  EXPECT_EQ(CommitRefPartition(":g", 5), 5u);
  EXPECT_EQ(CommitRefPartition("7", 5), 5u);
  EXPECT_EQ(CommitRefPartition("99999999999:g", 5), 5u);
}

// Captures what a sender emits.
class Capture : public LinkOutput {
 public:
  std::span<std::byte> Acquire() override { return buf_; }
  void Send(size_t bytes) override {
    LinkMessage m;
    ASSERT_EQ(DecodeLink(std::span<const std::byte>(buf_).first(bytes), &m), DecodeError::kOk);
    headers.push_back(m.acklog);
  }
  std::vector<AckLogHeader> headers;

 private:
  std::vector<std::byte> buf_ = std::vector<std::byte>(1472);
};

TEST(AckSender, ResumesFromTheRingOrSnapshotsAndNoticesALostGeneration) {
  AckStreamConfig cfg;
  LinkCounters c;
  AckSender s(5, 0, 0xabc, cfg);
  for (uint64_t o = 0; o < 10; ++o) s.Offer({AckRecordKind::kDelete, 0, o, {}}, c);
  EXPECT_FALSE(s.WantsSnapshot());  // no session: nothing wanted
  s.OpenSession();
  s.OnPosition({5, 0, 0, 0, 0, 0, 0}, 1'000, c);  // a standby with nothing
  ASSERT_TRUE(s.WantsSnapshot());
  storage::AckState st;
  for (uint64_t o = 0; o < 10; ++o) st.deleted.push_back(o);
  st.Compact(0);  // all contiguous: "deleted below 10"
  s.SetSnapshot(st, 1'000, c);
  ASSERT_TRUE(s.streaming());
  const uint64_t gen = s.generation();
  EXPECT_EQ(gen >> 32, 0xabcu);
  for (uint64_t o = 10; o < 15; ++o) s.Offer({AckRecordKind::kDelete, 0, o, {}}, c);
  Capture out;
  uint32_t budget = 64;
  s.Poll(2'000, 1, 1472, &budget, out, c);
  ASSERT_EQ(out.headers.size(), 1u);
  // BEGIN, DELETED_BELOW 10, END, then the 5 live deletes.
  EXPECT_EQ(out.headers[0].count, 8u);
  EXPECT_EQ(s.lag(), 8u);
  // The standby received and applied them all.
  s.OnPosition({5, 0, gen, 8, 0, 0, 0}, 3'000, c);
  EXPECT_EQ(s.lag(), 0u);
  // A new session of the same standby, same generation: resumed, no snapshot.
  s.Offer({AckRecordKind::kDelete, 0, 20, {}}, c);
  s.Disconnect();
  s.OpenSession();
  s.OnPosition({5, 0, gen, 8, 0, 0, 0}, 4'000, c);
  EXPECT_TRUE(s.streaming());
  EXPECT_EQ(s.generation(), gen);
  budget = 64;
  s.Poll(5'000, 1, 1472, &budget, out, c);
  ASSERT_EQ(out.headers.size(), 2u);
  EXPECT_EQ(out.headers[1].first_seq, 8u);
  EXPECT_EQ(out.headers[1].count, 1u);
  // A position of an older generation is stale; generation 0 soon after the snapshot too (it
  // may predate it); generation 0 later means the standby lost its state: a new snapshot.
  s.OnPosition({5, 0, gen - 1, 3, 0, 0, 0}, 6'000, c);
  EXPECT_TRUE(s.streaming());
  s.OnPosition({5, 0, 0, 0, 0, 0, 0}, 1'000 + cfg.retransmit_ns / 2, c);
  EXPECT_TRUE(s.streaming());
  s.OnPosition({5, 0, 0, 0, 0, 0, 0}, 1'000 + cfg.retransmit_ns, c);
  EXPECT_TRUE(s.WantsSnapshot());
  // A standby position in another process's generation: snapshot as well.
  AckSender t(5, 0, 0xdef, cfg);
  t.OpenSession();
  t.OnPosition({5, 0, gen, 8, 0, 0, 0}, 1, c);
  EXPECT_TRUE(t.WantsSnapshot());
}

// A ring of 8 records: small enough for a test to overflow.
AckStreamConfig SmallRing() {
  AckStreamConfig cfg;
  cfg.ring_bytes = 1024;
  cfg.ring_records = 8;
  return cfg;
}

TEST(AckSender, ARingOverflowWhileStreamingAsksForASnapshot) {
  const AckStreamConfig cfg = SmallRing();
  LinkCounters c;
  AckSender s(5, 0, 1, cfg);
  s.OpenSession();
  s.OnPosition({5, 0, 0, 0, 0, 0, 0}, 1, c);
  s.SetSnapshot({}, 1, c);
  for (uint64_t o = 0; o < 8; ++o) s.Offer({AckRecordKind::kDelete, 0, o, {}}, c);
  EXPECT_TRUE(s.streaming());
  s.Offer({AckRecordKind::kDelete, 0, 8, {}}, c);  // the ninth evicts one never received
  EXPECT_TRUE(s.WantsSnapshot());
  EXPECT_EQ(c.acklog_overflows, 1u);
}

// A primary reads the ack log for a snapshot on its file worker (docs/replication.md §13): the
// records offered while the read runs are not in the state it hands over, so the generation goes
// on from the first record offered after the log's end was noted (the live base), not from the
// end at the time the state arrives; a ring that lost some of them meanwhile refuses the state.
TEST(AckSender, ASnapshotReadOffTheLcoreGoesOnFromTheRecordsOfferedSinceTheFlush) {
  const AckStreamConfig cfg = SmallRing();
  LinkCounters c;
  AckSender s(5, 0, 1, cfg);
  for (uint64_t o = 0; o < 4; ++o) s.Offer({AckRecordKind::kDelete, 0, o, {}}, c);
  s.OpenSession();
  s.OnPosition({5, 0, 0, 0, 0, 0, 0}, 1, c);
  ASSERT_TRUE(s.WantsSnapshot());
  // Flushed with 4 offered; 3 more offered while the file is read, which holds the first 4.
  const uint64_t live_base = s.offered();
  for (uint64_t o = 4; o < 7; ++o) s.Offer({AckRecordKind::kDelete, 0, o, {}}, c);
  storage::AckState st;
  st.deleted_below = 4;
  ASSERT_TRUE(s.SetSnapshot(st, live_base, 10, c));
  ASSERT_TRUE(s.streaming());
  Capture out;
  uint32_t budget = 64;
  s.Poll(20, 1, 1472, &budget, out, c);
  ASSERT_EQ(out.headers.size(), 1u);
  // BEGIN, DELETED_BELOW 4, END, then the 3 deletes offered during the read.
  EXPECT_EQ(out.headers[0].count, 6u);
  EXPECT_EQ(s.lag(), 6u);

  // The ring (8 records) overflows during the read: records 4 and 5 are gone.
  AckSender t(5, 0, 2, cfg);
  for (uint64_t o = 0; o < 4; ++o) t.Offer({AckRecordKind::kDelete, 0, o, {}}, c);
  t.OpenSession();
  t.OnPosition({5, 0, 0, 0, 0, 0, 0}, 1, c);
  const uint64_t base = t.offered();
  for (uint64_t o = 4; o < 14; ++o) t.Offer({AckRecordKind::kDelete, 0, o, {}}, c);
  EXPECT_FALSE(t.SetSnapshot(st, base, 10, c));
  EXPECT_TRUE(t.WantsSnapshot());  // read again, flushed with 14 offered
  storage::AckState all;
  all.deleted_below = 14;
  EXPECT_TRUE(t.SetSnapshot(all, t.offered(), 20, c));
  EXPECT_TRUE(t.streaming());
  EXPECT_EQ(t.lag(), 3u);
}

// What sync queues' replies wait for (docs/replication.md §13): applied_live() counts the live
// records (numbered as offered() counts them) the standby wrote to its ack log, across the
// snapshot that opens a generation, received-but-unwritten records not included, and it never
// goes back (a later generation's snapshot covers what was offered before it).
TEST(AckSender, AppliedLiveCountsOfferedRecordsTheStandbyWrote) {
  AckStreamConfig cfg;
  LinkCounters c;
  AckSender s(5, 0, 7, cfg);
  // Three records before any standby: the snapshot will hold them.
  for (uint64_t o = 0; o < 3; ++o) s.Offer({AckRecordKind::kDelete, 0, o, {}}, c);
  EXPECT_EQ(s.offered(), 3u);
  EXPECT_EQ(s.applied_live(), 0u);
  s.OpenSession();
  s.OnPosition({5, 0, 0, 0, 0, 0, 0}, 1'000, c);
  ASSERT_TRUE(s.WantsSnapshot());
  storage::AckState st;
  st.deleted = {0, 1, 2};
  st.Compact(0);  // "deleted below 3": BEGIN, DELETED_BELOW, END = 3 snapshot records
  s.SetSnapshot(st, 1'000, c);
  const uint64_t gen = s.generation();
  // Two live records after it: generation records 3 and 4 (live 3 and 4).
  s.Offer({AckRecordKind::kDelete, 0, 3, {}}, c);
  s.Offer({AckRecordKind::kCommit, 0, 9, "0:g"}, c);
  EXPECT_EQ(s.offered(), 5u);
  // Received all 5, written none: nothing applied yet.
  s.OnPosition({5, 0, gen, 5, 5, 0, 0}, 2'000, c);
  EXPECT_EQ(s.applied_live(), 0u);
  // The snapshot written (3 records), not the live ones: live records below 3 are there.
  s.OnPosition({5, 0, gen, 5, 2, 0, 0}, 3'000, c);
  EXPECT_EQ(s.applied_live(), 3u);
  // One more written: live record 3.
  s.OnPosition({5, 0, gen, 5, 1, 0, 0}, 4'000, c);
  EXPECT_EQ(s.applied_live(), 4u);
  // A stale position (older figures) does not move it back.
  s.OnPosition({5, 0, gen, 4, 1, 0, 0}, 5'000, c);
  EXPECT_EQ(s.applied_live(), 4u);
  s.OnPosition({5, 0, gen, 5, 0, 0, 0}, 6'000, c);
  EXPECT_EQ(s.applied_live(), 5u);
  // The standby goes and comes back without its state: a new generation whose snapshot is
  // not written yet; what was applied before stays counted, new records wait for the snapshot.
  s.Offer({AckRecordKind::kDelete, 0, 4, {}}, c);
  s.Disconnect();
  s.OpenSession();
  s.OnPosition({5, 0, 0, 0, 0, 0, 0}, 7'000, c);
  ASSERT_TRUE(s.WantsSnapshot());
  st.deleted = {0, 1, 2, 3, 4};
  st.Compact(0);
  s.SetSnapshot(st, 8'000, c);
  EXPECT_EQ(s.applied_live(), 5u);
  s.OnPosition({5, 0, s.generation(), 3, 0, 0, 0}, 9'000, c);  // its 3 snapshot records written
  EXPECT_EQ(s.applied_live(), 6u);  // ... which hold live record 5
  EXPECT_LE(s.applied_live(), s.offered());
}

}  // namespace
}  // namespace sluice::replication
