#include "storage/recovery.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include <chrono>
#include <thread>

#include "storage/file_worker.h"
#include "storage/log_jobs.h"
#include "storage/segment.h"
#include "storage/uring_writer.h"
#include "tests/unit/storage/test_util.h"

namespace sluice::storage {
namespace {

using testing::Payload;
using testing::Producer;
using testing::Str;
using testing::TempDir;

constexpr uint64_t kSegment = 256 << 10;
constexpr PartitionId kId{4, 0};

RecoveryOptions Opts() {
  RecoveryOptions o;
  o.segment_bytes = kSegment;
  o.index_interval_bytes = 16 << 10;
  return o;
}

struct BatchAt {
  uint64_t segment, position, base, end;
  uint32_t stride, covered;
};

// Writes `batches` batches of `per` records of `size` bytes to partition kId under `dir`, and
// returns where each batch landed.
std::vector<BatchAt> WriteLog(const std::string& dir, int batches, uint32_t per, size_t size) {
  Producer prod(64 << 10, 256);
  WriterConfig c;
  c.segment_bytes = kSegment;
  c.index_interval_bytes = 16 << 10;
  c.buffers = prod.pool.region();
  auto w = UringWriter::Create(c);
  EXPECT_TRUE(w.ok());
  auto h = (*w)->OpenPartition({dir, kId, shard::Durability::kWrite, 1}, LogState{});
  EXPECT_TRUE(h.ok());
  for (int b = 0; b < batches; ++b) {
    prod.Batch(per, size);
    prod.Flush(**w, *h);
  }
  EXPECT_EQ(prod.log.durable_end().value, uint64_t{per} * batches);
  w->reset();
  std::vector<BatchAt> out;
  auto pd = PartitionDir::Open(dir, kId, false);
  const std::vector<uint64_t> bases = *pd->ListSegments();
  for (uint64_t base : bases) {
    auto end = ScanSegment(pd->LogPath(base), kId, 0, base, 4096,
                           [&](const BatchHeader& h, std::span<const std::byte>, uint64_t pos) {
                             out.push_back({base, pos, h.base_offset, h.end_offset(), h.stride_bytes,
                                            h.header_bytes + h.payload_bytes});
                             return true;
                           });
    EXPECT_TRUE(end.ok());
  }
  return out;
}

void Overwrite(const std::string& path, uint64_t position, std::span<const std::byte> bytes) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(position)),
            static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

std::string LogPath(const std::string& dir, uint64_t base) {
  return (*PartitionDir::Open(dir, kId, false)).LogPath(base);
}

void ExpectRecords(const RecoveredPartition& r, uint64_t n, size_t size) {
  ASSERT_EQ(r.records.size(), n);
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(r.records[i].offset, i);
    ASSERT_EQ(Str(r.record(r.records[i])), Payload(i, size)) << i;
  }
}

TEST(Recovery, CleanLogComesBackWhole) {
  TempDir tmp;
  const auto batches = WriteLog(tmp.path(), 60, 20, 300);
  RecoveredPartition r = RecoverPartition({tmp.path(), kId}, Opts());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.report.cut) << FormatReport(r.report);
  EXPECT_EQ(r.report.next_offset, 1200u);
  EXPECT_EQ(r.report.batches_scanned, 60u);
  EXPECT_EQ(r.report.indexes_rebuilt, 0u) << FormatReport(r.report);
  ExpectRecords(r, 1200, 300);
  EXPECT_EQ(r.log.segments.size(), r.report.segments);
  EXPECT_FALSE(r.log.segments.back().closed);
  std::printf("%s\n", FormatReport(r.report).c_str());
}

// A crash in the middle of the last batch's write: the device wrote some of its 512-byte
// sectors (in order, for this test) and the rest stayed zero. Every boundary is tried.
TEST(Recovery, TornLastBatchIsCutAtEvery512ByteBoundary) {
  TempDir tmp;
  const auto batches = WriteLog(tmp.path() + "/orig", 12, 40, 500);  // last batch: 5 pages
  const BatchAt last = batches.back();
  ASSERT_GE(last.stride, 16384u);
  for (uint32_t cut = 0; cut < last.stride; cut += 512) {
    SCOPED_TRACE(cut);
    const std::string dir = tmp.path() + "/c" + std::to_string(cut);
    std::filesystem::copy(tmp.path() + "/orig", dir, std::filesystem::copy_options::recursive);
    std::vector<std::byte> zeros(last.stride - cut);
    Overwrite(LogPath(dir, last.segment), last.position + cut, zeros);

    RecoveredPartition r = RecoverPartition({dir, kId}, Opts());
    ASSERT_TRUE(r.status.ok()) << r.status;
    const bool intact = cut >= last.covered;  // only padding was lost
    if (intact) {
      EXPECT_FALSE(r.report.cut);
      EXPECT_EQ(r.report.next_offset, last.end);
    } else if (cut == 0) {  // nothing of it reached the disk: a clean end
      EXPECT_FALSE(r.report.cut);
      EXPECT_EQ(r.report.next_offset, last.base);
    } else {
      EXPECT_TRUE(r.report.cut);
      EXPECT_EQ(r.report.cut_segment, last.segment);
      EXPECT_EQ(r.report.cut_position, last.position);
      EXPECT_EQ(r.report.next_offset, last.base);
      EXPECT_EQ(r.report.batches_cut, 1u);
      EXPECT_EQ(r.report.bytes_cut, AlignUp(cut, 4096));
      EXPECT_NE(FormatReport(r.report).find("CUT"), std::string::npos);
    }
    ExpectRecords(r, r.report.next_offset, 500);
    // Repaired: a second recovery finds a clean log ending at the same place.
    RecoveredPartition again = RecoverPartition({dir, kId}, Opts());
    EXPECT_FALSE(again.report.cut) << FormatReport(again.report);
    EXPECT_EQ(again.report.next_offset, r.report.next_offset);
    std::filesystem::remove_all(dir);
  }
}

TEST(Recovery, FlippedBitInTheMiddleStopsThereAndReports) {
  TempDir tmp;
  const auto batches = WriteLog(tmp.path(), 100, 10, 400);  // several segments
  const BatchAt victim = batches[30];
  ASSERT_LT(victim.segment, batches.back().segment);  // later segments exist
  const std::string path = LogPath(tmp.path(), victim.segment);
  std::byte b;
  {
    int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_EQ(::pread(fd, &b, 1, static_cast<off_t>(victim.position + 1000)), 1);
    ::close(fd);
  }
  b ^= std::byte{0x10};
  Overwrite(path, victim.position + 1000, {&b, 1});

  RecoveredPartition r = RecoverPartition({tmp.path(), kId}, Opts());
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(r.report.cut);
  EXPECT_EQ(r.report.cut_reason, BatchCheck::kBadCrc);
  EXPECT_EQ(r.report.cut_segment, victim.segment);
  EXPECT_EQ(r.report.cut_position, victim.position);
  EXPECT_EQ(r.report.next_offset, victim.base);
  EXPECT_GE(r.report.batches_cut, 70u);  // the corrupt one and everything after it
  EXPECT_GE(r.report.segments_removed, 1u);
  ExpectRecords(r, victim.base, 400);
  std::printf("%s\n", FormatReport(r.report).c_str());
  auto remaining = PartitionDir::Open(tmp.path(), kId, false)->ListSegments();
  EXPECT_EQ(remaining->back(), victim.segment);
}

TEST(Recovery, MissingIndexIsRebuiltTheSame) {
  TempDir tmp;
  WriteLog(tmp.path(), 100, 10, 400);
  auto dir = PartitionDir::Open(tmp.path(), kId, false);
  const auto bases = *dir->ListSegments();
  ASSERT_GE(bases.size(), 3u);
  std::vector<SegmentIndex> before;
  for (uint64_t base : bases) before.push_back(*dir->LoadIndex(base));
  for (uint64_t base : bases) std::filesystem::remove(dir->IndexPath(base));

  RecoveredPartition r = RecoverPartition({tmp.path(), kId}, Opts());
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.report.cut);
  EXPECT_EQ(r.report.indexes_rebuilt, bases.size());
  ExpectRecords(r, 1000, 400);
  for (size_t k = 0; k < bases.size(); ++k) {
    auto after = dir->LoadIndex(bases[k]);
    ASSERT_TRUE(after.ok());
    ASSERT_EQ(after->entries().size(), before[k].entries().size()) << k;
    for (size_t i = 0; i < after->entries().size(); ++i) {
      EXPECT_EQ(after->entries()[i].offset, before[k].entries()[i].offset);
      EXPECT_EQ(after->entries()[i].position, before[k].entries()[i].position);
    }
    EXPECT_EQ(after->seal().has_value(), k + 1 < bases.size());
  }
}

TEST(Recovery, FromTheLastCheckpointScansOnlyTheTail) {
  TempDir tmp;
  WriteLog(tmp.path(), 100, 10, 400);
  RecoveryOptions o = Opts();
  o.verify_all = false;
  RecoveredPartition r = RecoverPartition({tmp.path(), kId, UINT64_MAX}, o);
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.report.cut);
  EXPECT_EQ(r.report.next_offset, 1000u);
  EXPECT_TRUE(r.records.empty());
  EXPECT_LT(r.report.bytes_scanned, 64u << 10);  // one index interval and a little
  EXPECT_GT(r.report.batches_scanned, 0u);
}

TEST(Recovery, EmptyAndPreallocatedButUnwrittenTails) {
  TempDir tmp;
  // No directory at all: a new partition.
  RecoveredPartition none = RecoverPartition({tmp.path(), kId}, Opts());
  EXPECT_TRUE(none.status.ok());
  EXPECT_EQ(none.report.next_offset, 0u);
  EXPECT_TRUE(none.log.segments.empty());
  // A segment created (preallocated zeros) but never written.
  auto dir = PartitionDir::Open(tmp.path(), kId, true);
  bool direct;
  ASSERT_TRUE(dir->CreateSegment(0, kSegment, &direct).ok());
  RecoveredPartition empty = RecoverPartition({tmp.path(), kId}, Opts());
  ASSERT_TRUE(empty.status.ok());
  EXPECT_FALSE(empty.report.cut);
  EXPECT_EQ(empty.report.next_offset, 0u);
  ASSERT_EQ(empty.log.segments.size(), 1u);
  EXPECT_EQ(empty.log.segments[0].end_position, 0u);
  // A written log whose tail is the preallocated zeros (the normal case): no cut.
  TempDir tmp2;
  WriteLog(tmp2.path(), 3, 5, 100);
  RecoveredPartition r = RecoverPartition({tmp2.path(), kId}, Opts());
  EXPECT_FALSE(r.report.cut);
  EXPECT_EQ(r.report.next_offset, 15u);
  EXPECT_EQ(r.report.bytes_cut, 0u);
}

TEST(Recovery, GarbageAfterTheLastBatchIsCut) {
  TempDir tmp;
  const auto batches = WriteLog(tmp.path(), 5, 5, 100);
  std::vector<std::byte> junk(8192, std::byte{0xA5});
  Overwrite(LogPath(tmp.path(), batches.back().segment), batches.back().position + batches.back().stride, junk);
  RecoveredPartition r = RecoverPartition({tmp.path(), kId}, Opts());
  EXPECT_TRUE(r.report.cut);
  EXPECT_EQ(r.report.cut_reason, BatchCheck::kBadMagic);
  EXPECT_EQ(r.report.bytes_cut, 8192u);
  EXPECT_EQ(r.report.next_offset, 25u);
}

TEST(Recovery, WorkQueueRecordsDeletedInTheAckLogAreLeftOut) {
  TempDir tmp;
  WriteLog(tmp.path(), 4, 10, 100);
  auto dir = PartitionDir::Open(tmp.path(), kId, false);
  {
    auto acks = AckLog::Open(dir->path(), dir->AckLogPath(), AckState{});
    ASSERT_TRUE(acks.ok());
    for (uint64_t o = 0; o < 10; ++o) acks->Delete(o);
    acks->Delete(25);
    acks->Commit("g", 17);
    ASSERT_TRUE(acks->Flush().ok());
  }
  PartitionToRecover what{tmp.path(), kId};
  what.skip_deleted = true;
  RecoveredPartition r = RecoverPartition(what, Opts());
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.records.size(), 29u);
  EXPECT_EQ(r.records.front().offset, 10u);
  for (const RecoveredRecord& rec : r.records) EXPECT_NE(rec.offset, 25u);
  EXPECT_EQ(r.acks.deleted_below, 10u);
  EXPECT_EQ(r.acks.commits.at("g"), 17u);
}

TEST(Recovery, PartitionsRecoverInParallel) {
  TempDir tmp;
  std::vector<PartitionToRecover> what;
  for (uint32_t p = 0; p < 8; ++p) {
    Producer prod(64 << 10, 64);
    WriterConfig c;
    c.segment_bytes = kSegment;
    c.buffers = prod.pool.region();
    auto w = UringWriter::Create(c);
    auto h = (*w)->OpenPartition({tmp.path(), {9, p}, shard::Durability::kWrite, 0}, LogState{});
    ASSERT_TRUE(h.ok());
    for (int b = 0; b < 20 + static_cast<int>(p); ++b) {
      prod.Batch(10, 300);
      prod.Flush(**w, *h);
    }
    what.push_back({tmp.path(), {9, p}});
  }
  auto ids = ListPartitions(tmp.path());
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 8u);
  RecoveryRun run = RecoverAll(what, Opts());
  ASSERT_EQ(run.partitions.size(), 8u);
  for (uint32_t p = 0; p < 8; ++p) {
    EXPECT_TRUE(run.partitions[p].status.ok());
    EXPECT_EQ(run.partitions[p].report.id, (PartitionId{9, p}));
    EXPECT_EQ(run.partitions[p].report.next_offset, 10u * (20 + p));
    EXPECT_FALSE(run.partitions[p].report.cut);
  }
  EXPECT_GT(run.bytes_scanned, 0u);
  std::printf("recovered 8 partitions: %lu bytes in %.4f s (%.2f GB/s)\n",
              static_cast<unsigned long>(run.bytes_scanned), run.seconds, run.gb_per_s());
}


// A replication standby whose log ends below its primary's retained start restarts it empty at
// that start (RestartLog, docs/replication.md §4 "Behind the start"). Every point a crash can
// stop it at recovers to a consistent log: the old one less its oldest segments, none, or the
// new one, whose first segment starts at `start` > 0; and the writer opens that log there.
TEST(Recovery, LogRestartedAtALaterStartAndEveryCrashPointOnTheWay) {
  TempDir tmp;
  const std::vector<BatchAt> batches = WriteLog(tmp.path(), 40, 10, 3000);
  const uint64_t end = batches.back().end;
  const uint64_t start = end + 123;  // the primary's start, past everything this log holds
  auto dir = PartitionDir::Open(tmp.path(), kId, false);
  ASSERT_TRUE(dir.ok());
  const std::vector<uint64_t> bases = *dir->ListSegments();
  ASSERT_GE(bases.size(), 3u) << "the test wants several segments";

  // Nothing at or past the new start is ever thrown away: refused before anything goes.
  EXPECT_FALSE(RestartLog(*dir, bases.back(), kSegment).ok());
  EXPECT_EQ(*dir->ListSegments(), bases);

  // The crash points of the removals (oldest first, each made durable before the next): what
  // is left is a contiguous log ending where it ended, then nothing at all.
  for (size_t k = 1; k <= bases.size(); ++k) {
    ASSERT_TRUE(dir->RemoveSegment(bases[k - 1]).ok());
    RecoveredPartition r = RecoverPartition({tmp.path(), kId}, Opts());
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_FALSE(r.report.cut) << "after " << k << " removal(s)";
    if (k < bases.size()) {
      EXPECT_EQ(r.log.start_offset(), bases[k]);
      EXPECT_EQ(r.log.next_offset, end);
    } else {
      EXPECT_TRUE(r.log.segments.empty());
      EXPECT_EQ(r.log.next_offset, 0u);
    }
  }

  // Restarted (again, from wherever the crash left it; a leftover spare goes too): one empty
  // segment at `start`, which recovery accepts as the log's first, and the writer continues.
  { std::FILE* f = std::fopen(dir->SparePath().c_str(), "w"); ASSERT_NE(f, nullptr); std::fclose(f); }
  ASSERT_TRUE(RestartLog(*dir, start, kSegment).ok());
  EXPECT_EQ(*dir->ListSegments(), std::vector<uint64_t>{start});
  EXPECT_NE(::access(dir->SparePath().c_str(), F_OK), 0);
  RecoveredPartition r = RecoverPartition({tmp.path(), kId}, Opts());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.report.cut);
  EXPECT_EQ(r.report.segments, 1u);
  EXPECT_EQ(r.log.start_offset(), start);
  EXPECT_EQ(r.log.next_offset, start);
  WriterConfig c;
  c.segment_bytes = kSegment;
  auto w = UringWriter::Create(c);
  ASSERT_TRUE(w.ok());
  auto h = (*w)->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1}, std::move(r.log));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*w)->durable(*h).value, start);
  EXPECT_EQ((*w)->log(*h).start_offset(), start);
  (*w)->ClosePartition(*h);

  // A full restart of a written log in one go ends the same way.
  TempDir tmp2;
  WriteLog(tmp2.path(), 40, 10, 3000);
  auto dir2 = PartitionDir::Open(tmp2.path(), kId, false);
  ASSERT_TRUE(RestartLog(*dir2, start, kSegment).ok());
  RecoveredPartition r2 = RecoverPartition({tmp2.path(), kId}, Opts());
  ASSERT_TRUE(r2.status.ok());
  EXPECT_EQ(r2.log.start_offset(), start);
  EXPECT_EQ(r2.log.next_offset, start);
}

// ---- a standby's partition file work off the lcore (storage/log_jobs.h) ----------------------

// Runs `job` on a file worker, polling as the lcore does (bounded: 20 s).
bool RunOffLcore(FileWorker& w, const std::shared_ptr<FileJob>& job) {
  if (!w.Submit(job)) return false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!job->done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

std::shared_ptr<PartitionOpenJob> Job(const std::string& dir, PartitionOpenJob::Change change,
                                      uint64_t offset) {
  auto job = std::make_shared<PartitionOpenJob>();
  job->data_dir = dir;
  job->id = kId;
  job->change = change;
  job->offset = offset;
  job->segment_bytes = kSegment;
  job->recovery = Opts();
  return job;
}

// The job's result is adopted as the lcore does (no blocking call there) and continues at `end`.
void AdoptAndCheck(const std::string& dir, PartitionOpenJob& job, uint64_t start, uint64_t end) {
  ASSERT_TRUE(job.status().ok()) << job.status();
  ASSERT_TRUE(job.acks.has_value());
  EXPECT_TRUE(job.rec.records.empty());
  EXPECT_EQ(job.rec.log.start_offset(), start);
  EXPECT_EQ(job.rec.log.next_offset, end);
  WriterConfig c;
  c.segment_bytes = kSegment;
  auto w = UringWriter::Create(c);
  ASSERT_TRUE(w.ok());
  auto h = (*w)->AdoptPartition({dir, kId, shard::Durability::kWrite, 1}, std::move(job.rec.log),
                                std::move(job.files));
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*w)->durable(*h).value, end);
  EXPECT_EQ((*w)->log(*h).start_offset(), start);
  (*w)->ClosePartition(*h);
}

TEST(PartitionOpenJob, ACutOffTheLcoreDropsTheTailAndOpensTheRest) {
  TempDir tmp;
  const std::vector<BatchAt> batches = WriteLog(tmp.path(), 40, 10, 3000);
  auto dir = PartitionDir::Open(tmp.path(), kId, false);
  const std::vector<uint64_t> bases = *dir->ListSegments();
  ASSERT_GE(bases.size(), 3u);
  // A batch in the first segment, not its first: the cut zeroes the rest of that segment and
  // removes every later one.
  const BatchAt* cut = nullptr;
  for (const BatchAt& b : batches) {
    if (b.segment == bases[0] && b.base > bases[0]) cut = &b;
  }
  ASSERT_NE(cut, nullptr);
  FileWorker w("test-files", 4);
  auto job = Job(tmp.path(), PartitionOpenJob::Change::kCut, cut->base);
  job->closed_log = RecoverPartition({tmp.path(), kId}, Opts()).log;  // as the writer had it
  ASSERT_TRUE(RunOffLcore(w, job));
  EXPECT_TRUE(job->change_status.ok()) << job->change_status;
  EXPECT_FALSE(job->closed_log.has_value());  // released on the worker's thread
  EXPECT_EQ(*dir->ListSegments(), std::vector<uint64_t>{bases[0]});
  AdoptAndCheck(tmp.path(), *job, 0, cut->base);
  // Made again from the files alone (a reopen that failed left the partition closed): the same
  // cut is a no-op, and the log opens at the same end.
  auto again = Job(tmp.path(), PartitionOpenJob::Change::kCut, cut->base);
  ASSERT_TRUE(RunOffLcore(w, again));
  EXPECT_TRUE(again->change_status.ok()) << again->change_status;
  AdoptAndCheck(tmp.path(), *again, 0, cut->base);
  RecoveredPartition r = RecoverPartition({tmp.path(), kId}, Opts());
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.log.next_offset, cut->base);
  EXPECT_FALSE(r.report.cut);
}

TEST(PartitionOpenJob, ACutThatFailsLeavesTheLogAsItWasAndOpensIt) {
  TempDir tmp;
  const std::vector<BatchAt> batches = WriteLog(tmp.path(), 40, 10, 3000);
  const uint64_t end = batches.back().end;
  auto dir = PartitionDir::Open(tmp.path(), kId, false);
  const std::vector<uint64_t> bases = *dir->ListSegments();
  FileWorker w("test-files", 4);
  // No batch starts there: the cut is refused before anything changes, and the partition is
  // opened as it is (the shell says so, keeps it divergent and tries again).
  auto job = Job(tmp.path(), PartitionOpenJob::Change::kCut, batches[5].base + 1);
  ASSERT_TRUE(RunOffLcore(w, job));
  EXPECT_FALSE(job->change_status.ok());
  EXPECT_EQ(*dir->ListSegments(), bases);
  AdoptAndCheck(tmp.path(), *job, 0, end);
}

TEST(PartitionOpenJob, ARestartOffTheLcoreOpensTheLogEmptyAtTheNewStart) {
  TempDir tmp;
  const std::vector<BatchAt> batches = WriteLog(tmp.path(), 40, 10, 3000);
  const uint64_t end = batches.back().end;
  auto dir = PartitionDir::Open(tmp.path(), kId, false);
  const std::vector<uint64_t> bases = *dir->ListSegments();
  FileWorker w("test-files", 4);
  // A start inside the log: refused, nothing removed, the log opened as it was.
  auto refused = Job(tmp.path(), PartitionOpenJob::Change::kRestart, bases.back());
  ASSERT_TRUE(RunOffLcore(w, refused));
  EXPECT_FALSE(refused->change_status.ok());
  EXPECT_EQ(*dir->ListSegments(), bases);
  AdoptAndCheck(tmp.path(), *refused, 0, end);
  // Past its end: every segment removed (RestartLog's order), one created at the start.
  const uint64_t start = end + 123;
  auto job = Job(tmp.path(), PartitionOpenJob::Change::kRestart, start);
  ASSERT_TRUE(RunOffLcore(w, job));
  EXPECT_TRUE(job->change_status.ok()) << job->change_status;
  EXPECT_EQ(*dir->ListSegments(), std::vector<uint64_t>{start});
  AdoptAndCheck(tmp.path(), *job, start, start);
}

TEST(PartitionOpenJob, ANewPartitionIsCreatedOffTheLcore) {
  TempDir tmp;
  FileWorker w("test-files", 4);
  auto job = Job(tmp.path(), PartitionOpenJob::Change::kNone, 0);
  ASSERT_TRUE(RunOffLcore(w, job));
  EXPECT_TRUE(job->files.created);  // its first segment: created, preallocated, synced
  AdoptAndCheck(tmp.path(), *job, 0, 0);
  auto dir = PartitionDir::Open(tmp.path(), kId, false);
  EXPECT_EQ(*dir->ListSegments(), std::vector<uint64_t>{0});
}

// The ack snapshot's file work off the lcore (docs/replication.md §13): a standby's ack log
// replaced whole (AckReplaceJob: the log it hands back takes appends), a primary's read back
// (AckLoadJob); a replacement that cannot make its directory says so.
TEST(AckJobs, AReplacementAndALoadRunOffTheLcore) {
  TempDir tmp;
  FileWorker w("test-files", 4);
  {
    auto dir = PartitionDir::Open(tmp.path(), kId, true);
    ASSERT_TRUE(dir.ok()) << dir.status();
    auto log = AckLog::Open(dir->path(), dir->AckLogPath(), AckState{});
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE(log->Delete(3));
    ASSERT_TRUE(log->Commit("0:g", 7));
    ASSERT_TRUE(log->Flush().ok());
  }
  auto replace = std::make_shared<AckReplaceJob>();
  replace->data_dir = tmp.path();
  replace->id = kId;
  replace->state.deleted_below = 10;
  replace->state.deleted = {12};
  replace->state.commits["0:g"] = 11;
  ASSERT_TRUE(RunOffLcore(w, replace));
  ASSERT_TRUE(replace->status().ok()) << replace->status();
  ASSERT_TRUE(replace->acks.has_value());
  ASSERT_TRUE(replace->acks->Delete(14));
  ASSERT_TRUE(replace->acks->Flush().ok());
  auto load = std::make_shared<AckLoadJob>();
  load->data_dir = tmp.path();
  load->id = kId;
  ASSERT_TRUE(RunOffLcore(w, load));
  ASSERT_TRUE(load->status().ok()) << load->status();
  EXPECT_EQ(load->state.deleted_below, 10u);  // the old entries are gone
  EXPECT_EQ(load->state.deleted, (std::vector<uint64_t>{12, 14}));
  EXPECT_EQ(load->state.commits, (std::map<std::string, uint64_t>{{"0:g", 11}}));
  // A data directory that is a file: no partition directory, no log.
  const std::string file = tmp.path() + "/not-a-dir";
  std::FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  auto refused = std::make_shared<AckReplaceJob>();
  refused->data_dir = file;
  refused->id = kId;
  ASSERT_TRUE(RunOffLcore(w, refused));
  EXPECT_FALSE(refused->status().ok());
  EXPECT_FALSE(refused->acks.has_value());
}

}  // namespace
}  // namespace sluice::storage

namespace sluice::storage {
namespace {

// A reader of a log another thread writes (a dedicated replication lcore) keeps its state with
// RefreshLog: after each round of writes (rolls included) and after retention, the refreshed
// state is the one a recovery scan from scratch finds, and the refresh read only what was
// written since (nothing below the known end again).
TEST(RefreshLog, FollowsAWriterFromTheKnownEndAsRecoveryFindsIt) {
  TempDir tmp;
  Producer prod(64 << 10, 512);
  WriterConfig c;
  c.segment_bytes = kSegment;
  c.index_interval_bytes = 16 << 10;
  c.buffers = prod.pool.region();
  auto w = std::move(*UringWriter::Create(c));
  const PartitionHandle h = *w->OpenPartition({tmp.path(), kId, shard::Durability::kWrite, 1},
                                              LogState{});
  RecoveryOptions o = Opts();
  o.repair = false;
  o.verify_all = false;
  auto scratch = [&] {
    RecoveredPartition r = RecoverPartition({tmp.path(), kId, UINT64_MAX, false}, o);
    EXPECT_TRUE(r.status.ok()) << r.status;
    return std::move(r.log);
  };
  auto same = [](const LogState& a, const LogState& b) {
    ASSERT_EQ(a.segments.size(), b.segments.size());
    EXPECT_EQ(a.next_offset, b.next_offset);
    for (size_t k = 0; k < a.segments.size(); ++k) {
      EXPECT_EQ(a.segments[k].base_offset, b.segments[k].base_offset) << k;
      EXPECT_EQ(a.segments[k].end_offset, b.segments[k].end_offset) << k;
      EXPECT_EQ(a.segments[k].end_position, b.segments[k].end_position) << k;
      EXPECT_EQ(a.segments[k].closed, b.segments[k].closed) << k;
      // Every index entry a fetch may start at is a batch start of the log.
      for (const IndexEntry& e : a.segments[k].index.entries()) {
        EXPECT_LT(e.position, a.segments[k].end_position + 1) << k;
      }
    }
  };
  auto write = [&](int batches) {
    for (int b = 0; b < batches; ++b) prod.Batch(10, 150);
    prod.Flush(*w, h);
    testing::Settle(*w);
  };
  write(20);
  LogState st = scratch();
  ASSERT_EQ(st.segments.size(), 1u);
  // What finding the state again costs the reader's thread (blocking): printed, not asserted.
  using Clock = std::chrono::steady_clock;
  Clock::duration refresh_total{}, scratch_total{};
  for (int round = 0; round < 5; ++round) {
    write(40);  // ~160 KiB: a roll every other round or so
    uint64_t scanned = 0;
    const auto t0 = Clock::now();
    ASSERT_TRUE(RefreshLog(tmp.path(), kId, o, &st, &scanned).ok());
    const auto t1 = Clock::now();
    const LogState full = scratch();
    scratch_total += Clock::now() - t1;
    refresh_total += t1 - t0;
    same(st, full);
    EXPECT_EQ(st.next_offset, w->durable(h).value);
    EXPECT_LE(scanned, 40u * 4096) << round;  // only what was written since
  }
  auto us = [](Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); };
  std::printf("after 40 new batches: RefreshLog %.0f us, a recovery scan from scratch %.0f us "
              "(mean of 5)\n", us(refresh_total) / 5, us(scratch_total) / 5);
  ASSERT_GE(st.segments.size(), 3u);
  uint64_t scanned = 0;
  ASSERT_TRUE(RefreshLog(tmp.path(), kId, o, &st, &scanned).ok());
  EXPECT_EQ(scanned, 0u);  // nothing new

  const uint64_t third = w->log(h).segments[2].base_offset;
  ASSERT_TRUE(w->EnforceRetention(h, {.keep_from_offset = third}).ok());
  testing::Settle(*w);
  ASSERT_TRUE(RefreshLog(tmp.path(), kId, o, &st, &scanned).ok());
  EXPECT_EQ(st.start_offset(), third);
  same(st, scratch());
}

// The files are not the ones the state was found in (the partition deleted and created again,
// with other batches): FailedPrecondition, so the reader finds the state from scratch.
TEST(RefreshLog, AnotherLogInTheSamePlaceIsNotTakenForAContinuation) {
  TempDir tmp;
  WriteLog(tmp.path(), 100, 10, 150);
  RecoveryOptions o = Opts();
  o.repair = false;
  o.verify_all = false;
  RecoveredPartition r = RecoverPartition({tmp.path(), kId, UINT64_MAX, false}, o);
  ASSERT_TRUE(r.status.ok());
  LogState st = std::move(r.log);
  std::filesystem::remove_all(tmp.path() + "/" + PartitionDir::DirName(kId));
  WriteLog(tmp.path(), 120, 7, 150);  // other batch boundaries, other segment bases
  uint64_t scanned = 0;
  EXPECT_TRUE(absl::IsFailedPrecondition(RefreshLog(tmp.path(), kId, o, &st, &scanned)));
}

// The reader's state job (a dedicated replication lcore's LogFileReader) on the file worker: from
// a known state it refreshes (no scan from scratch), and the state it hands back is the scan's;
// without one, or when the files are another log (the partition recreated), it scans from
// scratch and opens the partition directory anew.
TEST(LogStateJob, RefreshesAKnownStateElseScansFromScratch) {
  TempDir tmp;
  WriteLog(tmp.path(), 30, 10, 150);
  RecoveryOptions o = Opts();
  o.repair = false;
  o.verify_all = false;
  FileWorker w("test-files", 4);
  auto job = [&](std::optional<LogState> known) {
    auto j = std::make_shared<LogStateJob>();
    j->data_dir = tmp.path();
    j->id = kId;
    j->recovery = o;
    j->known = std::move(known);
    EXPECT_TRUE(RunOffLcore(w, j));
    EXPECT_TRUE(j->status().ok()) << j->status();
    return j;
  };
  auto first = job(std::nullopt);
  EXPECT_TRUE(first->rescanned);
  EXPECT_FALSE(first->refreshed);
  EXPECT_TRUE(first->dir.valid());
  EXPECT_EQ(first->log.next_offset, 300u);

  // Written on (another writer appends to the same log: recovered, then opened at its end).
  WriteLog(tmp.path() + "/more", 60, 10, 150);  // a longer log elsewhere, copied in below
  std::filesystem::remove_all(tmp.path() + "/" + PartitionDir::DirName(kId));
  std::filesystem::rename(tmp.path() + "/more/" + PartitionDir::DirName(kId),
                          tmp.path() + "/" + PartitionDir::DirName(kId));
  // The same batches up to 300 (WriteLog is deterministic), 300 more after them.
  auto refreshed = job(first->log);
  EXPECT_TRUE(refreshed->refreshed);
  EXPECT_FALSE(refreshed->rescanned);
  EXPECT_FALSE(refreshed->dir.valid());  // the reader keeps its directory fd
  EXPECT_FALSE(refreshed->known.has_value());
  EXPECT_GT(refreshed->scanned_bytes, 0u);
  RecoveredPartition scan = RecoverPartition({tmp.path(), kId, UINT64_MAX, false}, o);
  ASSERT_TRUE(scan.status.ok());
  ASSERT_EQ(refreshed->log.segments.size(), scan.log.segments.size());
  EXPECT_EQ(refreshed->log.next_offset, 600u);
  for (size_t k = 0; k < scan.log.segments.size(); ++k) {
    EXPECT_EQ(refreshed->log.segments[k].base_offset, scan.log.segments[k].base_offset) << k;
    EXPECT_EQ(refreshed->log.segments[k].end_offset, scan.log.segments[k].end_offset) << k;
    EXPECT_EQ(refreshed->log.segments[k].end_position, scan.log.segments[k].end_position) << k;
  }

  // Another log in the same place (other batch boundaries, other segment bases, longer): the
  // refresh refuses it, the job scans from scratch.
  std::filesystem::remove_all(tmp.path() + "/" + PartitionDir::DirName(kId));
  WriteLog(tmp.path(), 120, 7, 150);
  auto other = job(refreshed->log);
  EXPECT_FALSE(other->refreshed);
  EXPECT_TRUE(other->rescanned);
  EXPECT_TRUE(other->dir.valid());
  EXPECT_EQ(other->log.next_offset, 840u);

  // What a reader replaced is released on the worker's thread.
  auto release = std::make_shared<ReleaseLogStateJob>();
  release->log = std::move(other->log);
  release->dir = std::move(other->dir);
  ASSERT_TRUE(RunOffLcore(w, release));
  EXPECT_TRUE(release->log.segments.empty());
  EXPECT_FALSE(release->dir.valid());
}

}  // namespace
}  // namespace sluice::storage
