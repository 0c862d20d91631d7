// Segment rolls: a prepared spare makes the roll a rename, acknowledgements in the new segment
// wait for the directory fsync that makes the rename durable, and a leftover spare (whatever it
// holds) is never read as log data by recovery or the log tool.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "storage/recovery.h"
#include "storage/uring_writer.h"
#include "tests/unit/storage/test_util.h"

namespace sluice::storage {
namespace {

using testing::Payload;
using testing::Producer;
using testing::Str;
using testing::TempDir;

constexpr uint64_t kSegment = 256 << 10;
constexpr PartitionId kId{4, 1};

WriterConfig Config(std::span<std::byte> region) {
  WriterConfig c;
  c.queue_depth = 64;
  c.segment_bytes = kSegment;
  c.index_interval_bytes = 16 << 10;
  c.max_partitions = 8;
  c.buffers = region;
  return c;
}

RecoveryOptions Opts() {
  RecoveryOptions o;
  o.segment_bytes = kSegment;
  o.index_interval_bytes = 16 << 10;
  return o;
}

// Waits (bounded) for the partition's spare to be prepared: a condition, not a sleep.
bool AwaitSpare(const UringWriter& w, PartitionHandle h) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!w.spare_ready(h)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// Writes `segments` segments' worth of 4 KiB batches (4 records of 200 B), waiting for the spare
// at each half-full point so that every roll after the first finds it ready.
uint64_t WriteSegments(Producer& prod, UringWriter& w, PartitionHandle h, double segments,
                       bool await_spare) {
  const int per_segment = static_cast<int>(kSegment / 4096);
  for (int b = 0; b < static_cast<int>(segments * per_segment); ++b) {
    prod.Batch(4, 200);
    prod.Flush(w, h);
    if (await_spare && b % per_segment == per_segment / 2 + 1) {
      EXPECT_TRUE(AwaitSpare(w, h)) << "batch " << b;
    }
  }
  return prod.log.durable_end().value;
}

RecoveredPartition Recover(const std::string& dir) {
  return RecoverPartition(PartitionToRecover{dir, kId}, Opts());
}

void ExpectExactLog(const RecoveredPartition& r, uint64_t n) {
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.report.cut) << FormatReport(r.report);
  EXPECT_EQ(r.report.next_offset, n);
  ASSERT_EQ(r.records.size(), n);
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(r.records[i].offset, i);
    ASSERT_EQ(Str(r.record(r.records[i])), Payload(i, 200)) << i;
  }
}

TEST(Roll, RollsAfterTheFirstUseThePreparedSpare) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  ASSERT_TRUE(w.ok()) << w.status();
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kDsync, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  const uint64_t n = WriteSegments(prod, **w, *h, 4, true);
  ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  ASSERT_EQ(n, prod.log.written_end().value);
  const WriterStats& st = (*w)->stats();
  // Segment 0 is created when the partition opens (control path, not a roll); segments 1..3
  // are renames of spares.
  EXPECT_EQ(st.first_segments, 1u);
  EXPECT_EQ(st.rolls, 3u);
  EXPECT_EQ(st.rolls_blocking, 0u);
  EXPECT_EQ(st.rolls_prepared, 3u);
  EXPECT_EQ(st.spare_failures, 0u);
  // No system call of the lcore's own in those rolls: each new segment entered the registered
  // file table through the ring, each closed one left it (and had its fds closed) the same way.
  testing::Settle(**w);
  EXPECT_EQ(st.ring_registrations, 3u);
  EXPECT_EQ(st.ring_closes, 3u);
  ASSERT_EQ((*w)->log(*h).segments.size(), 4u);
  const std::string dir = tmp.path() + "/4-1";
  for (const SegmentState& s : (*w)->log(*h).segments) {
    auto pd = PartitionDir::Open(tmp.path(), kId, false);
    EXPECT_TRUE(std::filesystem::exists(pd->LogPath(s.base_offset))) << s.base_offset;
    EXPECT_EQ(std::filesystem::file_size(pd->LogPath(s.base_offset)), kSegment);
  }
  // The last segment is past half full: its successor is prepared, under the spare's name.
  EXPECT_TRUE((*w)->spare_ready(*h));
  EXPECT_TRUE(std::filesystem::exists(dir + "/next.spare"));
  EXPECT_EQ(std::filesystem::file_size(dir + "/next.spare"), kSegment);
  // Closing the partition removes the spare.
  (*w)->ClosePartition(*h);
  EXPECT_FALSE(std::filesystem::exists(dir + "/next.spare"));
  w->reset();
  RecoveredPartition r = Recover(tmp.path());
  ExpectExactLog(r, n);
  EXPECT_FALSE(r.report.spare_removed);
  EXPECT_EQ(r.report.segments, 4u);
}

// While a spare is being prepared (its fsyncs: a journal commit and the disk's cache flush), a
// direct write into unwritten extents would hold its submitter for as long (docs/storage.md §4):
// the writes submitted meanwhile go to io_uring's worker threads (IOSQE_ASYNC), and are written
// as any other. The preparation is held open here by the test seam.
TEST(Roll, WritesSubmittedWhileASpareIsPreparedGoToTheKernelsWorkers) {
  TempDir tmp;
  Producer prod;
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  WriterConfig c = Config(prod.pool.region());
  c.while_preparing_spare = [&] {
    entered.store(true);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!release.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  };
  auto w = UringWriter::Create(c);
  ASSERT_TRUE(w.ok()) << w.status();
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  // The partition asked for its first spare when it opened; the preparer is inside it now.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!entered.load() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_TRUE(entered.load());
  for (int b = 0; b < 8; ++b) {
    prod.Batch(4, 200);
    prod.Flush(**w, *h);
  }
  const uint64_t during = (*w)->stats().writes_during_spare_sync;
  EXPECT_GE(during, 8u);  // every one of them (a re-queued short write would count again)
  release.store(true);
  ASSERT_TRUE(AwaitSpare(**w, *h));
  for (int b = 0; b < 8; ++b) {
    prod.Batch(4, 200);
    prod.Flush(**w, *h);
  }
  EXPECT_EQ((*w)->stats().writes_during_spare_sync, during);  // inline again
  ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  const uint64_t n = prod.log.durable_end().value;
  ASSERT_EQ(n, 64u);
  w->reset();
  ExpectExactLog(Recover(tmp.path()), n);
}

// A partition of a queue created at runtime: its files are opened on another thread
// (PrepareFiles: directory, first segment create + fallocate + fsync, index), and the writer's
// thread adopts them (AdoptPartition) with no system call of its own: the segment's registered
// file slot is set through the ring, like a prepared roll's.
TEST(Roll, APartitionPreparedOnAnotherThreadIsAdoptedWithoutABlockingCall) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  ASSERT_TRUE(w.ok()) << w.status();
  LogState state;
  absl::StatusOr<PreparedFiles> files = absl::UnknownError("not run");
  std::thread control([&] {
    files = UringWriter::PrepareFiles(tmp.path(), kId, &state, kSegment, /*direct_io=*/true);
  });
  control.join();
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_TRUE(files->created);
  ASSERT_EQ(state.segments.size(), 1u);  // the new first segment, added by PrepareFiles
  EXPECT_EQ(std::filesystem::file_size(tmp.path() + "/4-1/00000000000000000000.log"), kSegment);
  auto h = (*w)->AdoptPartition({tmp.path(), kId, shard::Durability::kDsync, 1}, std::move(state),
                                std::move(*files));
  ASSERT_TRUE(h.ok()) << h.status();
  const uint64_t n = WriteSegments(prod, **w, *h, 2.5, true);
  ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  testing::Settle(**w);
  const WriterStats& st = (*w)->stats();
  EXPECT_EQ(st.first_segments, 1u);
  EXPECT_EQ(st.rolls_blocking, 0u);
  EXPECT_EQ(st.rolls_prepared, 2u);
  // The adopted segment and the two rolled-into ones all entered the file table via the ring.
  EXPECT_EQ(st.ring_registrations, 3u);
  w->reset();
  ExpectExactLog(Recover(tmp.path()), n);
}

// The same with a partition that has data: PrepareFiles reopens its active segment where
// recovery left it, and writes continue after the recovered records.
TEST(Roll, APreparedPartitionWithDataContinuesWhereRecoveryLeftIt) {
  TempDir tmp;
  Producer prod;
  uint64_t first = 0;
  {
    auto w = UringWriter::Create(Config(prod.pool.region()));
    auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
    ASSERT_TRUE(h.ok()) << h.status();
    first = WriteSegments(prod, **w, *h, 0.5, false);
  }
  RecoveredPartition r = Recover(tmp.path());
  ASSERT_TRUE(r.status.ok()) << r.status;
  auto files = UringWriter::PrepareFiles(tmp.path(), kId, &r.log, kSegment, true);
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_FALSE(files->created);
  EXPECT_GT(files->tail, 0u);
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->AdoptPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, std::move(r.log),
                                std::move(*files));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*w)->durable(*h).value, first);
  const uint64_t n = WriteSegments(prod, **w, *h, 0.25, false);
  ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  EXPECT_GT(n, first);
  EXPECT_EQ((*w)->stats().first_segments, 0u);
  w->reset();
  ExpectExactLog(Recover(tmp.path()), n);
}

TEST(Roll, WithoutSparesEveryRollBlocksAndIsCounted) {
  TempDir tmp;
  Producer prod;
  WriterConfig c = Config(prod.pool.region());
  c.prepare_spares = false;
  auto w = UringWriter::Create(c);
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  const uint64_t n = WriteSegments(prod, **w, *h, 3, false);
  EXPECT_EQ((*w)->stats().first_segments, 1u);
  EXPECT_EQ((*w)->stats().rolls, 2u);
  EXPECT_EQ((*w)->stats().rolls_blocking, 2u);
  EXPECT_EQ((*w)->stats().rolls_prepared, 0u);
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/4-1/next.spare"));
  w->reset();
  ExpectExactLog(Recover(tmp.path()), n);
}

// The writer's ordering: a batch in a segment whose rename is not yet durable is not reported
// durable. With the directory fsync failing, nothing in the new segment is ever acknowledged and
// the partition fails (it cannot know whether the segment's name survives a crash).
TEST(Roll, NoAckInTheNewSegmentBeforeTheDirectoryFsync) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  const int per_segment = static_cast<int>(kSegment / 4096);
  for (int b = 0; b < per_segment; ++b) {
    prod.Batch(4, 200);
    prod.Flush(**w, *h);
  }
  ASSERT_TRUE(AwaitSpare(**w, *h));
  const uint64_t end_of_first = prod.log.durable_end().value;
  ASSERT_EQ(end_of_first, 4u * per_segment);
  (*w)->InjectFaults({.count = 1, .error = EIO, .dir_sync = true});
  // Three batches: the first rolls into the spare, all go to the new segment's file.
  uint64_t reported = 0;
  for (int b = 0; b < 3; ++b) prod.Batch(4, 200);
  prod.log.ForEachUndurableBatch([&](const shard::SealedBatch& b) {
    EXPECT_EQ((*w)->Submit(*h, b), Errc::kOk);
  });
  EXPECT_EQ((*w)->stats().rolls_prepared, 1u);
  bool failed = false;
  (*w)->Drain([&](const Completion& c) {
    if (c.errc == Errc::kOk) reported = std::max(reported, c.durable.value);
    failed |= c.errc == Errc::kStorageFailed;
  });
  EXPECT_TRUE(failed);
  EXPECT_TRUE((*w)->failed(*h));
  EXPECT_NE((*w)->failure(*h).find("fsync directory"), std::string::npos) << (*w)->failure(*h);
  EXPECT_LE(reported, end_of_first);  // nothing past the old segment was acknowledged
  EXPECT_EQ((*w)->durable(*h).value, end_of_first);
  w->reset();
  // The writes did reach the renamed file (only the fsync was faked): recovery may find those
  // unacknowledged batches, but never loses an acknowledged one.
  RecoveredPartition r = Recover(tmp.path());
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_GE(r.records.size(), end_of_first);
  for (uint64_t i = 0; i < end_of_first; ++i) {
    ASSERT_EQ(Str(r.record(r.records[i])), Payload(i, 200)) << i;
  }
}

// Big batches, several per pass: a segment is half full right after its roll, before the roll's
// chain (rename of next.spare) even reached the kernel. The next spare must not be prepared
// before that rename ran (preparing starts by unlinking a leftover next.spare).
TEST(Roll, ASegmentHalfFullAtItsRollWaitsForItsRenameBeforeTheNextSpare) {
  TempDir tmp;
  Producer prod(64 << 10, 256);
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  for (int round = 0; round < 30; ++round) {
    for (int b = 0; b < 3; ++b) prod.Batch(200, 200);  // ~45 KiB each: 3 of them > half a segment
    prod.Flush(**w, *h);
    ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  }
  const uint64_t n = prod.log.durable_end().value;
  ASSERT_EQ(n, prod.log.written_end().value);
  EXPECT_GE((*w)->stats().rolls, 10u);
  EXPECT_GE((*w)->stats().rolls_prepared, 1u);
  w->reset();
  ExpectExactLog(Recover(tmp.path()), n);
}

// The rename never replaces a file: a segment already named like the new one (a bug) fails the
// partition, leaves that file as it was, and nothing written after the roll is acknowledged.
TEST(Roll, ARenameOntoAnExistingSegmentFailsThePartition) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  const int per_segment = static_cast<int>(kSegment / 4096);
  for (int b = 0; b < per_segment; ++b) {
    prod.Batch(4, 200);
    prod.Flush(**w, *h);
  }
  ASSERT_TRUE(AwaitSpare(**w, *h));
  const uint64_t end_of_first = prod.log.durable_end().value;
  auto pd = PartitionDir::Open(tmp.path(), kId, false);
  const std::string squatter = pd->LogPath(end_of_first);
  std::ofstream(squatter) << "not a segment";
  prod.Batch(4, 200);
  prod.Flush(**w, *h);
  EXPECT_EQ((*w)->stats().rolls_prepared, 1u);
  EXPECT_TRUE((*w)->failed(*h));
  EXPECT_NE((*w)->failure(*h).find("rename next.spare"), std::string::npos) << (*w)->failure(*h);
  EXPECT_EQ((*w)->durable(*h).value, end_of_first);
  EXPECT_EQ(prod.log.durable_end().value, end_of_first);
  EXPECT_EQ(std::filesystem::file_size(squatter), 13u);
}

// With spare_request_fill_percent = 50 (a spare only beside partitions past half a segment, the
// disk-thrifty setting) the spare is asked for at half full; rolls are still all prepared when
// the writer keeps up.
TEST(Roll, SparesAskedForAtHalfFullStillMakeEveryRollPrepared) {
  TempDir tmp;
  Producer prod;
  WriterConfig c = Config(prod.pool.region());
  c.spare_request_fill_percent = 50;
  auto w = UringWriter::Create(c);
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  const uint64_t n = WriteSegments(prod, **w, *h, 3.25, true);
  EXPECT_EQ((*w)->stats().rolls, 3u);
  EXPECT_EQ((*w)->stats().rolls_prepared, 3u);
  EXPECT_EQ((*w)->stats().roll_waits, 0u);
  w->reset();
  ExpectExactLog(Recover(tmp.path()), n);
}

// A new partition's first segment is created by OpenPartition (the control path), and its
// successor is asked for at once: the very first roll is a prepared one, nothing blocks.
TEST(Roll, TheFirstRollOfANewPartitionIsPrepared) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*w)->stats().first_segments, 1u);
  EXPECT_EQ((*w)->stats().rolls, 0u);
  ASSERT_TRUE(AwaitSpare(**w, *h));  // requested by OpenPartition, not at half full
  const uint64_t n = WriteSegments(prod, **w, *h, 1.25, false);
  EXPECT_EQ((*w)->stats().rolls, 1u);
  EXPECT_EQ((*w)->stats().rolls_prepared, 1u);
  EXPECT_EQ((*w)->stats().rolls_blocking, 0u);
  EXPECT_EQ((*w)->stats().roll_waits, 0u);
  w->reset();
  ExpectExactLog(Recover(tmp.path()), n);
}

// Two rolls in one pass: the second finds no spare (the next one may be prepared only once the
// first roll's rename ran, which needs a submit). It does not create the segment on the spot:
// its batch and every later one answer kThrottled (the shard keeps them) until the spare is
// ready; then they are written, and nothing is lost or reordered.
TEST(Roll, ABurstThatOutrunsThePreparerWaitsAndLosesNothing) {
  TempDir tmp;
  Producer prod(64 << 10, 256);
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kDsync, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(AwaitSpare(**w, *h));
  for (int b = 0; b < 12; ++b) prod.Batch(200, 200);  // ~570 KiB: more than two segments
  std::vector<Errc> answers;
  prod.log.ForEachUndurableBatch([&](const shard::SealedBatch& b) {
    answers.push_back((*w)->Submit(*h, b));
  });
  // Segment 0, then the roll into the ready spare, then segment 1 filled, then the second roll:
  // no spare yet, so that batch and every later one wait (kThrottled), none is refused.
  size_t ok = 0;
  while (ok < answers.size() && answers[ok] == Errc::kOk) ++ok;
  EXPECT_GT(ok, 0u);
  ASSERT_LT(ok, answers.size()) << "the burst should outrun the preparer";
  for (size_t b = ok; b < answers.size(); ++b) EXPECT_EQ(answers[b], Errc::kThrottled) << b;
  EXPECT_EQ((*w)->stats().rolls_prepared, 1u);
  EXPECT_EQ((*w)->stats().roll_waits, 1u);
  prod.Flush(**w, *h);  // offers them again every pass, as the shell does
  ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  const uint64_t n = prod.log.durable_end().value;
  ASSERT_EQ(n, prod.log.written_end().value);
  EXPECT_GE((*w)->stats().rolls_prepared, 2u);
  EXPECT_EQ((*w)->stats().rolls_blocking, 0u);
  EXPECT_EQ((*w)->stats().rolls, (*w)->stats().rolls_prepared);
  w->reset();
  RecoveredPartition r = Recover(tmp.path());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.report.cut) << FormatReport(r.report);
  ASSERT_EQ(r.records.size(), n);
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(Str(r.record(r.records[i])), Payload(i, 200)) << i;
  EXPECT_GE(r.report.segments, 3u);
}

// A spare that cannot be prepared fails the partition (as a failed create on the spot did):
// loudly, once, with what failed; what was acknowledged stays.
TEST(Roll, AFailedSpareFailsThePartition) {
  TempDir tmp;
  Producer prod;
  // A directory in the spare's place: the preparer cannot unlink it (EISDIR).
  const std::string blocker = tmp.path() + "/4-1/next.spare";
  std::filesystem::create_directories(blocker);
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  const int per_segment = static_cast<int>(kSegment / 4096);
  bool failed = false;
  for (int b = 0; b < 2 * per_segment && !failed; ++b) {
    prod.Batch(4, 200);
    prod.log.ForEachUndurableBatch([&](const shard::SealedBatch& sb) { (void)(*w)->Submit(*h, sb); });
    for (const Completion& c : testing::Settle(**w)) {
      if (c.errc == Errc::kOk) prod.log.MarkDurable(c.durable);
      failed |= c.errc == Errc::kStorageFailed;
    }
  }
  EXPECT_TRUE(failed);  // reported through Poll
  EXPECT_TRUE((*w)->failed(*h));
  EXPECT_NE((*w)->failure(*h).find("preparing the next segment"), std::string::npos)
      << (*w)->failure(*h);
  EXPECT_EQ((*w)->stats().spare_failures, 1u);
  EXPECT_EQ((*w)->stats().rolls, 0u);
  EXPECT_EQ((*w)->stats().rolls_blocking, 0u);
  const uint64_t acked = prod.log.durable_end().value;
  EXPECT_EQ(acked, 4u * per_segment);  // the whole first segment
  w->reset();
  std::filesystem::remove_all(blocker);
  ExpectExactLog(Recover(tmp.path()), acked);
}

// The closed segment's seal entry is written through the ring once its last batch retired, and
// the file closes after that write. Recovery trusts the sealed index (no scan of that segment)
// and, with the seal lost, scans it and writes the seal back.
TEST(Roll, TheSealGoesThroughTheRingAndRecoveryWorksWithOrWithoutIt) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  const uint64_t n = WriteSegments(prod, **w, *h, 2.5, true);
  testing::Settle(**w);
  ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  EXPECT_EQ((*w)->stats().seals, 2u);
  EXPECT_EQ((*w)->stats().index_write_errors, 0u);
  const std::vector<SegmentState> segs = (*w)->log(*h).segments;
  ASSERT_EQ(segs.size(), 3u);
  auto pd = PartitionDir::Open(tmp.path(), kId, false);
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<SegmentIndex> idx = pd->LoadIndex(segs[i].base_offset);
    ASSERT_TRUE(idx.ok()) << idx.status();
    ASSERT_TRUE(idx->seal().has_value()) << i;
    EXPECT_EQ(idx->seal()->offset, segs[i + 1].base_offset);
    EXPECT_EQ(idx->seal()->position, segs[i].end_position);
    EXPECT_EQ(idx->entries().size(), segs[i].index.entries().size());  // every entry on disk
  }
  EXPECT_FALSE(pd->LoadIndex(segs[2].base_offset)->seal().has_value());  // the active one
  w->reset();
  RecoveryOptions trusting = Opts();
  trusting.verify_all = false;
  PartitionToRecover what{tmp.path(), kId};
  what.feed_from_offset = UINT64_MAX;  // no records wanted: sealed segments need no scan
  RecoveredPartition sealed = RecoverPartition(what, trusting);
  ASSERT_TRUE(sealed.status.ok()) << sealed.status;
  EXPECT_EQ(sealed.report.next_offset, n);
  EXPECT_EQ(sealed.report.indexes_rebuilt, 0u);
  const uint64_t scanned_with_seals = sealed.report.bytes_scanned;
  EXPECT_LT(scanned_with_seals, segs[2].end_position + 4096);  // only the active segment's tail
  // Without segment 0's seal (the last 32 bytes of its index): scanned, sealed again, exact.
  const std::string index0 = pd->IndexPath(segs[0].base_offset);
  std::filesystem::resize_file(index0, std::filesystem::file_size(index0) - sizeof(IndexEntry));
  ASSERT_FALSE(pd->LoadIndex(segs[0].base_offset)->seal().has_value());
  RecoveredPartition unsealed = RecoverPartition(what, trusting);
  ASSERT_TRUE(unsealed.status.ok()) << unsealed.status;
  EXPECT_EQ(unsealed.report.next_offset, n);
  EXPECT_EQ(unsealed.report.indexes_rebuilt, 1u);
  EXPECT_GT(unsealed.report.bytes_scanned, scanned_with_seals);
  EXPECT_TRUE(pd->LoadIndex(segs[0].base_offset)->seal().has_value());  // written back
  std::filesystem::resize_file(index0, std::filesystem::file_size(index0) - sizeof(IndexEntry));
  ExpectExactLog(Recover(tmp.path()), n);  // and a full verification, without it
}

// A ring with few requests: batches fill it, so index entries and seals often find no free
// request when their batch retires. They wait for the next pass (the batch's durability report
// with them) rather than being skipped: every entry reaches the file, contiguous, every segment
// gets its seal, and the log is exact.
TEST(Roll, IndexWritesWaitForAFreeRequestAndNoneIsSkipped) {
  TempDir tmp;
  Producer prod;
  WriterConfig c = Config(prod.pool.region());
  c.queue_depth = 8;
  c.index_interval_bytes = 4096;  // an entry for every batch
  auto w = UringWriter::Create(c);
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_TRUE(AwaitSpare(**w, *h));
  const int per_segment = static_cast<int>(kSegment / 4096);
  for (int round = 0; round < 2 * per_segment / 16 + 2; ++round) {
    for (int b = 0; b < 16; ++b) prod.Batch(4, 200);
    prod.Flush(**w, *h);
    ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
    if ((*w)->stats().rolls_prepared == 1 && !(*w)->spare_ready(*h)) {
      ASSERT_TRUE(AwaitSpare(**w, *h));
    }
  }
  testing::Settle(**w);
  const uint64_t n = prod.log.durable_end().value;
  ASSERT_EQ(n, prod.log.written_end().value);
  const std::vector<SegmentState> segs = (*w)->log(*h).segments;
  ASSERT_GE(segs.size(), 3u);
  auto pd = PartitionDir::Open(tmp.path(), kId, false);
  for (size_t i = 0; i < segs.size(); ++i) {
    absl::StatusOr<SegmentIndex> idx = pd->LoadIndex(segs[i].base_offset);
    ASSERT_TRUE(idx.ok()) << idx.status();
    EXPECT_EQ(idx->entries().size(), segs[i].index.entries().size()) << i;
    EXPECT_EQ(idx->entries().size(), segs[i].end_position / 4096) << i;  // one per batch
    EXPECT_EQ(idx->seal().has_value(), i + 1 < segs.size()) << i;
  }
  EXPECT_EQ((*w)->stats().index_write_errors, 0u);
  EXPECT_GT((*w)->stats().index_deferrals, 0u);  // the case this test is about happened
  w->reset();
  ExpectExactLog(Recover(tmp.path()), n);
}

enum class Leftover { kEmpty, kPreallocated, kGarbage, kCopyOfTheActiveSegment, kBatchesFromOffset0 };

class LeftoverSpare : public ::testing::TestWithParam<Leftover> {};

// A crash can leave next.spare in any state: just created, preallocated, or (rename never made
// durable) holding batches written after a roll. Recovery reads exactly the log, removes the
// spare, and the log tool ignores it.
TEST_P(LeftoverSpare, RecoveryIgnoresAndRemovesIt) {
  TempDir tmp;
  Producer prod;
  WriterConfig c = Config(prod.pool.region());
  c.prepare_spares = false;  // the spare below is the test's
  uint64_t n = 0;
  {
    auto w = UringWriter::Create(c);
    auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, LogState{});
    ASSERT_TRUE(h.ok()) << h.status();
    n = WriteSegments(prod, **w, *h, 1.25, false);  // segment 1 a quarter full
  }
  auto pd = PartitionDir::Open(tmp.path(), kId, false);
  ASSERT_TRUE(pd.ok());
  const std::string spare = pd->SparePath();
  switch (GetParam()) {
    case Leftover::kEmpty:
      std::ofstream(spare).flush();
      break;
    case Leftover::kPreallocated: {
      bool direct = false;
      ASSERT_TRUE(pd->PrepareSpare(kSegment, true, &direct).ok());
      break;
    }
    case Leftover::kGarbage: {
      std::ofstream out(spare, std::ios::binary);
      for (int i = 0; i < 100000; ++i) out.put(static_cast<char>(i * 131));
      break;
    }
    case Leftover::kCopyOfTheActiveSegment:
    case Leftover::kBatchesFromOffset0: {
      // Valid batches of this partition (a copy of segment 0, or of the active segment): what a
      // lost rename leaves, batches that look like log data but are not part of the log.
      const auto bases = *pd->ListSegments();
      const uint64_t src = GetParam() == Leftover::kBatchesFromOffset0 ? bases.front() : bases.back();
      std::filesystem::copy_file(pd->LogPath(src), spare);
      break;
    }
  }
  ASSERT_TRUE(std::filesystem::exists(spare));
  // The log tool (read only) ignores it and says so.
  const char* tool = std::getenv("SLUICE_LOG");
  if (tool != nullptr) {
    const std::string cmd = std::string(tool) + " dump " + pd->path() + " > " + tmp.path() + "/dump.txt";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    std::ifstream in(tmp.path() + "/dump.txt");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("next.spare: prepared next segment, not log data"), std::string::npos) << text;
    EXPECT_TRUE(std::filesystem::exists(spare));
  }
  RecoveredPartition r = Recover(tmp.path());
  ExpectExactLog(r, n);
  EXPECT_TRUE(r.report.spare_removed);
  EXPECT_EQ(r.report.segments, 2u);
  EXPECT_FALSE(std::filesystem::exists(spare));
  // A writer continuing from there prepares a fresh spare and rolls into it.
  Producer more;
  for (uint64_t i = 0; i < n; ++i) more.log.Append(testing::Bytes("x"), 0);
  more.log.Seal();
  more.log.MarkDurable(shard::DurableOffset{n});
  WriterConfig c2 = Config(more.pool.region());
  auto w = UringWriter::Create(c2);
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, std::move(r.log));
  ASSERT_TRUE(h.ok()) << h.status();
  const int per_segment = static_cast<int>(kSegment / 4096);
  for (int b = 0; b < per_segment; ++b) {
    more.Batch(4, 200);
    more.Flush(**w, *h);
    if (b == per_segment / 2 && (*w)->stats().rolls_prepared == 0) {
      ASSERT_TRUE(AwaitSpare(**w, *h));
    }
  }
  EXPECT_EQ((*w)->stats().rolls_prepared, 1u);
  ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  w->reset();
  RecoveredPartition again = Recover(tmp.path());
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_FALSE(again.report.cut) << FormatReport(again.report);
  EXPECT_EQ(again.report.next_offset, more.log.durable_end().value);
  EXPECT_EQ(Str(again.record(again.records[n - 1])), Payload(n - 1, 200));
}

INSTANTIATE_TEST_SUITE_P(States, LeftoverSpare,
                         ::testing::Values(Leftover::kEmpty, Leftover::kPreallocated,
                                           Leftover::kGarbage, Leftover::kCopyOfTheActiveSegment,
                                           Leftover::kBatchesFromOffset0));

}  // namespace
}  // namespace sluice::storage
