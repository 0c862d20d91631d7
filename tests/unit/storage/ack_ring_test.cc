// The ack log through the lcore's ack ring (storage/ack_ring.h): records written in order, new
// records accumulating while a write is in flight (two buffers), a purge's linked fdatasync, and
// failures (write or sync errors through the fault seam) that fail the log for good.
#include "storage/ack_ring.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "storage/ack_log.h"
#include "tests/unit/storage/test_util.h"

namespace sluice::storage {
namespace {

using testing::TempDir;

struct Fixture {
  TempDir tmp;
  std::string path = tmp.path() + "/acks.log";
  std::unique_ptr<AckRing> ring;
  std::optional<AckLog> log;
  std::vector<uint64_t> failed;  // cookies of logs the ring reported failed

  Fixture() {
    auto r = AckRing::Create(AckRingConfig{});
    EXPECT_TRUE(r.ok()) << r.status();
    ring = std::move(*r);
    auto l = AckLog::Open(tmp.path(), path, AckState{});
    EXPECT_TRUE(l.ok()) << l.status();
    log.emplace(std::move(*l));
    log->Attach(ring.get(), 42);
  }
  uint32_t Poll() {
    return ring->Poll([&](AckLog& l) { failed.push_back(l.cookie()); });
  }
  void Settle() {
    for (int i = 0; i < 100 && (log->busy() || !ring->idle()); ++i) {
      log->StartFlush();
      ring->Drain([&](AckLog& l) { failed.push_back(l.cookie()); });
    }
  }
  AckState Load(AckLoadReport* rep) {
    auto s = AckLog::Load(path, rep);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : AckState{};
  }
};

TEST(AckRing, RecordsAreWrittenInOrderThroughTheRing) {
  Fixture f;
  const uint64_t start = f.log->file_bytes();  // the compacted header (DELETED_BELOW 0)
  for (uint64_t o = 1; o <= 100; o += 2) ASSERT_TRUE(f.log->Delete(o));
  ASSERT_TRUE(f.log->Commit("g", 5));
  f.log->StartFlush();
  EXPECT_EQ(f.ring->in_flight(), 1u);  // prepared, not yet submitted: nothing blocked
  EXPECT_EQ(f.log->buffered_bytes(), 0u);  // the entries went with the write
  ASSERT_TRUE(f.log->Commit("g", 9));  // after the first write: must land after it
  f.Settle();
  EXPECT_TRUE(f.failed.empty());
  EXPECT_FALSE(f.log->failed());
  EXPECT_EQ(f.ring->stats().writes, 2u);
  EXPECT_EQ(f.ring->stats().syncs, 0u);  // deletes are not synced (at-least-once)
  EXPECT_EQ(f.log->file_bytes(), start + 50 * 16 + 2 * 24);
  AckLoadReport rep;
  const AckState st = f.Load(&rep);
  EXPECT_EQ(rep.bytes_cut, 0u);
  EXPECT_EQ(rep.entries, 1u + 50 + 2);
  EXPECT_EQ(st.commits.at("g"), 9u);  // the later commit wins: written in order
  EXPECT_TRUE(st.IsDeleted(99));
  EXPECT_FALSE(st.IsDeleted(98));
}

TEST(AckRing, NewRecordsAccumulateWhileAWriteIsInFlight) {
  Fixture f;
  ASSERT_TRUE(f.log->Delete(0));
  f.log->StartFlush();  // write #1 in flight (buffer A)
  // Fill the other buffer completely while #1 is in flight: no entry is lost or reordered.
  uint64_t o = 1;
  while (f.log->Delete(o)) ++o;
  EXPECT_EQ(f.log->buffered_bytes(), AckLog::kBufferBytes);
  EXPECT_TRUE(f.log->full_while_writing() || f.log->ops_in_flight() > 0);
  f.log->StartFlush();  // #1 still in flight (nothing submitted yet): the full buffer waits
  EXPECT_EQ(f.ring->stats().writes, 1u);
  EXPECT_EQ(f.log->buffered_bytes(), AckLog::kBufferBytes);
  // Completing #1 sends buffer B from the completion, and A takes new entries meanwhile.
  while (f.ring->stats().writes < 2) {
    f.Poll();
  }
  ASSERT_TRUE(f.log->Delete(o));
  f.Settle();
  EXPECT_TRUE(f.failed.empty());
  AckLoadReport rep;
  const AckState st = f.Load(&rep);
  EXPECT_EQ(rep.bytes_cut, 0u);
  EXPECT_EQ(st.deleted_below, o + 1);  // 0 .. o all deleted, contiguous: in order, none lost
  EXPECT_TRUE(st.deleted.empty());
}

TEST(AckRing, APurgeSyncIsLinkedBehindItsWriteAndCounted) {
  Fixture f;
  ASSERT_TRUE(f.log->Delete(3));
  f.log->StartFlush();  // a plain write in flight: the purge's sync must cover what follows it
  ASSERT_TRUE(f.log->DeletedBelow(10));
  f.log->StartFlush(/*sync=*/true);
  EXPECT_EQ(f.log->syncs_requested(), 1u);
  EXPECT_EQ(f.log->syncs_done(), 0u);
  f.Settle();
  EXPECT_EQ(f.log->syncs_done(), 1u);
  EXPECT_EQ(f.ring->stats().syncs, 1u);
  EXPECT_EQ(f.ring->stats().syncs_covered, 1u);
  EXPECT_EQ(f.ring->stats().writes, 2u);  // the mark went in the second write, the sync after it
  AckLoadReport rep;
  EXPECT_EQ(f.Load(&rep).deleted_below, 10u);
  // A sync with nothing buffered is a lone fdatasync.
  f.log->StartFlush(true);
  f.Settle();
  EXPECT_EQ(f.log->syncs_done(), 2u);
  EXPECT_EQ(f.ring->stats().syncs, 2u);
}

TEST(AckRing, AShortWriteIsRequeuedAndItsSyncWaitsForTheRest) {
  Fixture f;
  AckFaultInjection fi;
  fi.count = 3;
  fi.short_write = true;
  f.ring->InjectFaults(fi);
  for (uint64_t o = 0; o < 10; ++o) ASSERT_TRUE(f.log->Delete(o));
  f.log->StartFlush(/*sync=*/true);
  f.Settle();
  EXPECT_TRUE(f.failed.empty());
  EXPECT_FALSE(f.log->failed());
  EXPECT_GE(f.ring->stats().requeued, 3u);
  EXPECT_EQ(f.log->syncs_done(), 1u);
  AckLoadReport rep;
  const AckState st = f.Load(&rep);
  EXPECT_EQ(rep.bytes_cut, 0u);
  EXPECT_EQ(st.deleted_below, 10u);
}

TEST(AckRing, ADelayedWriteStaysInFlightForItsDelayThenLandsInFull) {
  // The seam a slow disk stands in for (a cache flush holding every write): the write and its
  // linked sync run only after the delay, and polling meanwhile never blocks.
  Fixture f;
  AckFaultInjection fi;
  fi.count = 1;
  fi.delay_ms = 200;
  f.ring->InjectFaults(fi);
  for (uint64_t o = 0; o < 10; ++o) ASSERT_TRUE(f.log->Delete(o));
  const auto t0 = std::chrono::steady_clock::now();
  f.log->StartFlush(/*sync=*/true);
  EXPECT_EQ(f.ring->in_flight(), 3u);  // the timeout, the write, its sync
  auto elapsed = [&] { return std::chrono::steady_clock::now() - t0; };
  uint64_t polls = 0;
  while (f.log->busy() && elapsed() < std::chrono::seconds(10)) {
    f.Poll();
    ++polls;
  }
  EXPECT_FALSE(f.log->busy());
  EXPECT_GE(elapsed(), std::chrono::milliseconds(190));  // not done before its delay
  EXPECT_GT(polls, 1u);  // each Poll returned: nothing waited for the timeout
  EXPECT_EQ(f.ring->in_flight(), 0u);
  EXPECT_TRUE(f.failed.empty());
  EXPECT_EQ(f.log->syncs_done(), 1u);
  AckLoadReport rep;
  const AckState st = f.Load(&rep);
  EXPECT_EQ(rep.bytes_cut, 0u);
  EXPECT_EQ(st.deleted_below, 10u);
}

TEST(AckRing, AWriteErrorFailsTheLogForGood) {
  Fixture f;
  AckFaultInjection fi;
  fi.count = 1;
  fi.error = EIO;
  f.ring->InjectFaults(fi);
  ASSERT_TRUE(f.log->Delete(1));
  f.log->StartFlush();
  f.Settle();
  ASSERT_EQ(f.failed, (std::vector<uint64_t>{42}));  // reported once, with the owner's cookie
  EXPECT_TRUE(f.log->failed());
  EXPECT_NE(f.log->failure().find("Input/output error"), std::string::npos) << f.log->failure();
  EXPECT_EQ(f.ring->stats().failures, 1u);
  // Not retried: later entries are not written either (the owner fails the partition).
  ASSERT_TRUE(f.log->Delete(2));
  f.log->StartFlush();
  f.Settle();
  EXPECT_EQ(f.ring->stats().writes, 1u);
  EXPECT_EQ(f.failed.size(), 1u);
  AckLoadReport rep;
  EXPECT_FALSE(f.Load(&rep).IsDeleted(1));
}

TEST(AckRing, ASyncErrorFailsTheLogAndThePurgeNeverCountsAsDone) {
  Fixture f;
  AckFaultInjection fi;
  fi.count = 1;
  fi.error = EIO;
  fi.sync = true;
  f.ring->InjectFaults(fi);
  ASSERT_TRUE(f.log->DeletedBelow(5));
  f.log->StartFlush(/*sync=*/true);
  f.Settle();
  ASSERT_EQ(f.failed.size(), 1u);
  EXPECT_TRUE(f.log->failed());
  EXPECT_NE(f.log->failure().find("fdatasync"), std::string::npos) << f.log->failure();
  EXPECT_EQ(f.log->syncs_done(), 0u);
  EXPECT_EQ(f.ring->stats().syncs_covered, 0u);
}

TEST(AckRing, AFaultAimedAtOneLogSkipsTheOthersAndItsFirstWrites) {
  Fixture f;
  auto other = AckLog::Open(f.tmp.path(), f.tmp.path() + "/other.log", AckState{});
  ASSERT_TRUE(other.ok());
  other->Attach(f.ring.get(), 7);
  AckFaultInjection fi;
  fi.count = UINT32_MAX;
  fi.error = ENOSPC;
  fi.only = 42;  // the fixture's log
  fi.skip = 1;   // its first write goes through
  f.ring->InjectFaults(fi);
  for (uint64_t o = 0; o < 3; ++o) {
    ASSERT_TRUE(f.log->Delete(o));
    ASSERT_TRUE(other->Delete(o));
    f.log->StartFlush();
    other->StartFlush();
    f.Settle();
    for (int i = 0; i < 100 && other->busy(); ++i) {
      other->StartFlush();
      f.ring->Drain([&](AckLog& l) { f.failed.push_back(l.cookie()); });
    }
  }
  EXPECT_EQ(f.failed, (std::vector<uint64_t>{42}));
  EXPECT_FALSE(other->failed());
  AckLoadReport rep;
  EXPECT_EQ(f.Load(&rep).deleted_below, 1u);  // the skipped (successful) write only
  auto st = AckLog::Load(f.tmp.path() + "/other.log", &rep);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->deleted_below, 3u);
}

TEST(AckRing, ManyLogsInOnePassShareTheRing) {
  TempDir tmp;
  AckRingConfig rc;
  rc.entries = 8;  // fewer SQ entries than logs: Sqe submits early, nothing is dropped
  auto ring = AckRing::Create(rc);
  ASSERT_TRUE(ring.ok());
  std::vector<std::unique_ptr<AckLog>> logs;
  for (int i = 0; i < 40; ++i) {
    const std::string path = tmp.path() + "/acks." + std::to_string(i);
    auto l = AckLog::Open(tmp.path(), path, AckState{});
    ASSERT_TRUE(l.ok());
    logs.push_back(std::make_unique<AckLog>(std::move(*l)));
    logs.back()->Attach(ring->get(), i);
    ASSERT_TRUE(logs.back()->Delete(0));
    logs.back()->StartFlush(i % 2 == 0);
  }
  std::vector<uint64_t> failed;
  for (int round = 0; round < 100; ++round) {
    bool busy = false;
    for (auto& l : logs) {
      l->StartFlush();
      busy |= l->busy();
    }
    if (!busy && (*ring)->idle()) break;
    (*ring)->Drain([&](AckLog& l) { failed.push_back(l.cookie()); });
  }
  EXPECT_TRUE(failed.empty());
  for (int i = 0; i < 40; ++i) {
    AckLoadReport rep;
    auto st = AckLog::Load(tmp.path() + "/acks." + std::to_string(i), &rep);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->deleted_below, 1u) << i;
    EXPECT_EQ(logs[static_cast<size_t>(i)]->syncs_done(), i % 2 == 0 ? 1u : 0u);
  }
}

}  // namespace
}  // namespace sluice::storage
