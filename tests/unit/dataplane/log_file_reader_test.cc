// A dedicated replication lcore's catch-up reads (LogFileReader, docs/replication.md §3): the
// primary's logs as the real writer wrote them, read back through the replication lcore's own
// io_uring — asynchronously (StartBatchRead submits nothing and waits for nothing; the batches
// come through PollBatchReads), verified, byte for byte what BatchReader's blocking preads read,
// in order across segment boundaries, several in flight; a log state found again when a read
// asks past it (incrementally), retention's removals answering kOffsetOutOfRange, a corrupt
// batch answering kStorageFailed; the state found off the lcore, on the reader's file worker
// (a worker held busy leaves every call answering at once: kThrottled, no answer yet), and the
// state adopted the one a recovery scan from scratch finds.
#include "dataplane/replication_handoff.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "dataplane/storage_shell.h"
#include "storage/batch_reader.h"
#include "tests/unit/storage/gate_job.h"
#include "tests/unit/storage/test_util.h"

namespace sluice::dataplane {
namespace {

using storage::testing::Producer;
using storage::testing::TempDir;

constexpr uint32_t kQueue = 3;
constexpr uint32_t kPartition = 1;

std::chrono::steady_clock::time_point InSeconds(int s) {
  return std::chrono::steady_clock::now() + std::chrono::seconds(s);
}

using storage::testing::HeldWorker;  // the reader's state jobs queue behind its gate

struct Got {
  Errc errc = Errc::kOk;
  uint64_t base = 0;
  uint64_t end = 0;
  std::vector<std::byte> bytes;
  uint64_t hint_segment = UINT64_MAX;
  uint64_t hint_position = 0;
};

class LogFileReaderTest : public ::testing::Test {
 protected:
  LogFileReaderTest() {
    layout_.data_dirs = {tmp_.path()};
    layout_.segment_bytes = 256 << 10;
    storage::WriterConfig c;
    c.segment_bytes = layout_.segment_bytes;
    c.index_interval_bytes = 16 << 10;
    c.buffers = prod_.pool.region();
    writer_ = std::move(*storage::UringWriter::Create(c));
    h_ = *writer_->OpenPartition({DataDirOf(layout_, kQueue, kPartition),
                                  {kQueue, kPartition}, shard::Durability::kWrite, 0},
                                 storage::LogState{});
    reader_ = std::move(*LogFileReader::Create(layout_));
  }

  // `batches` batches of 10 records of 150 bytes (~4 KiB each after alignment: a 256 KiB
  // segment holds ~60), durable when it returns.
  void Write(int batches) {
    for (int b = 0; b < batches; ++b) prod_.Batch(10, 150);
    prod_.Flush(*writer_, h_);
    storage::testing::Settle(*writer_);
    ASSERT_EQ(writer_->durable(h_).value, prod_.log.sealed_end().value);
  }

  // What the blocking reader (BatchReader: preads of the segment files) reads at `offset`.
  std::vector<std::byte> Reference(uint64_t offset, uint64_t* end) {
    storage::BatchReader r(DataDirOf(layout_, kQueue, kPartition), {kQueue, kPartition});
    std::vector<std::byte> buf(2 << 20);
    uint32_t len = 0;
    if (r.Read(writer_->log(h_), offset, buf, &len, end) != Errc::kOk) return {};
    buf.resize(len);
    return buf;
  }

  // One pass of the lcore: the answers that came, kept by cookie in answers_.
  void PollOnce() {
    reader_->PollBatchReads([&](const Persistence::BatchRead& r) {
      Got g{r.errc, r.base, r.end, {r.bytes.begin(), r.bytes.end()}, r.next_hint_segment,
            r.next_hint_position};
      EXPECT_TRUE(answers_.emplace(r.cookie, std::move(g)).second) << r.cookie;
    });
  }

  // Polls until `n` answers came (at most 10 s), keyed by cookie.
  std::map<uint64_t, Got> PollUntil(size_t n) {
    const auto deadline = InSeconds(10);
    while (answers_.size() < n && std::chrono::steady_clock::now() < deadline) PollOnce();
    std::map<uint64_t, Got> out;
    out.swap(answers_);
    return out;
  }

  // StartBatchRead, asked again each pass (at most 10 s) while it answers kThrottled for want of
  // the partition's state (found on the file worker meanwhile), as the replication shell does.
  Errc Start(uint32_t partition, uint64_t offset, uint64_t hint_segment, uint64_t hint_position,
             uint64_t cookie) {
    const auto deadline = InSeconds(10);
    while (true) {
      const Errc e =
          reader_->StartBatchRead(kQueue, partition, offset, hint_segment, hint_position, cookie);
      if (e != Errc::kThrottled || reader_->in_flight() == kCatchupReads ||
          std::chrono::steady_clock::now() > deadline) {
        return e;
      }
      PollOnce();
    }
  }
  Errc Start(uint64_t offset, uint64_t cookie) {
    return Start(kPartition, offset, UINT64_MAX, 0, cookie);
  }

  // One read, waited for. Asked again while the answer is kOffsetOutOfRange and `until_found`
  // (the log state is found again at most once a millisecond).
  Got ReadOne(uint64_t offset, bool until_found = false) {
    const auto deadline = InSeconds(10);
    static uint64_t cookie = 1000;
    while (true) {
      EXPECT_EQ(Start(offset, ++cookie), Errc::kOk);
      std::map<uint64_t, Got> got = PollUntil(1);
      EXPECT_EQ(got.size(), 1u);
      if (got.empty()) return Got{Errc::kInternal};  // no answer in 10 s
      if (!until_found || got.begin()->second.errc != Errc::kOffsetOutOfRange ||
          std::chrono::steady_clock::now() > deadline) {
        return got.begin()->second;
      }
    }
  }

  TempDir tmp_;
  hwconf::Storage layout_;
  Producer prod_{64 << 10, 512};
  std::unique_ptr<storage::UringWriter> writer_;
  storage::PartitionHandle h_ = 0;
  std::unique_ptr<LogFileReader> reader_;
  std::map<uint64_t, Got> answers_;  // came, not yet taken by PollUntil
};

// What a recovery scan from scratch (read-only, as the reader's) finds in the partition now.
storage::LogState Scan(const hwconf::Storage& layout) {
  storage::RecoveryOptions o = RecoveryOptionsOf(layout);
  o.repair = false;
  o.verify_all = false;
  storage::RecoveredPartition r = storage::RecoverPartition(
      {DataDirOf(layout, kQueue, kPartition), {kQueue, kPartition}, UINT64_MAX, false}, o);
  EXPECT_TRUE(r.status.ok()) << r.status;
  return std::move(r.log);
}

void ExpectSame(const storage::LogState& a, const storage::LogState& b) {
  ASSERT_EQ(a.segments.size(), b.segments.size());
  EXPECT_EQ(a.next_offset, b.next_offset);
  EXPECT_EQ(a.start_offset(), b.start_offset());
  for (size_t k = 0; k < a.segments.size(); ++k) {
    const storage::SegmentState& x = a.segments[k];
    const storage::SegmentState& y = b.segments[k];
    EXPECT_EQ(x.base_offset, y.base_offset) << k;
    EXPECT_EQ(x.end_offset, y.end_offset) << k;
    EXPECT_EQ(x.end_position, y.end_position) << k;
    EXPECT_EQ(x.closed, y.closed) << k;
    EXPECT_EQ(x.first_timestamp_ns, y.first_timestamp_ns) << k;
    EXPECT_EQ(x.last_timestamp_ns, y.last_timestamp_ns) << k;
    // Every index entry a read may start at is a batch start of the log.
    for (const storage::IndexEntry& e : x.index.entries()) {
      EXPECT_LE(e.position, x.end_position) << k;
    }
  }
}

// A standby behind by the whole log: batch after batch, each next read at the previous answer's
// end with its hint, as the replication shell asks. Every batch is the blocking reader's, byte
// for byte, across every segment boundary; one ring read per batch; each segment's file opened
// once (through the ring), not once per read; one recovery scan for the whole walk.
TEST_F(LogFileReaderTest, ReadsEveryBatchInOrderAcrossSegmentsAsTheLogHoldsIt) {
  Write(300);
  const size_t segments = writer_->log(h_).segments.size();
  ASSERT_GE(segments, 4u);
  uint64_t offset = 0, batches = 0;
  uint64_t hint_segment = UINT64_MAX, hint_position = 0;
  // What the lcore spends inside the call that starts a read (the first one, which finds the
  // log's state, aside), against the blocking read of the same batch: printed, not asserted.
  using Clock = std::chrono::steady_clock;
  Clock::duration start_total{}, start_max{}, blocking_total{};
  // The replication lcore's old path: one BatchReader per partition, sequential reads going on
  // from the last one (preads of the page cache: the files were just written).
  storage::BatchReader sequential(DataDirOf(layout_, kQueue, kPartition), {kQueue, kPartition});
  std::vector<std::byte> scratch(2 << 20);
  while (offset < writer_->durable(h_).value) {
    const auto t0 = Clock::now();
    ASSERT_EQ(Start(kPartition, offset, hint_segment, hint_position, batches), Errc::kOk);
    if (batches > 0) {
      start_total += Clock::now() - t0;
      start_max = std::max(start_max, Clock::now() - t0);
    }
    std::map<uint64_t, Got> got = PollUntil(1);
    ASSERT_EQ(got.size(), 1u);
    const Got& g = got.begin()->second;
    ASSERT_EQ(g.errc, Errc::kOk) << offset;
    uint32_t len = 0;
    uint64_t seq_end = 0;
    const auto t1 = Clock::now();
    ASSERT_EQ(sequential.Read(writer_->log(h_), offset, scratch, &len, &seq_end), Errc::kOk);
    blocking_total += Clock::now() - t1;
    uint64_t ref_end = 0;
    ASSERT_EQ(g.bytes, Reference(offset, &ref_end)) << offset;
    EXPECT_EQ(g.base, offset);
    EXPECT_EQ(g.end, ref_end);
    offset = g.end;
    hint_segment = g.hint_segment;
    hint_position = g.hint_position;
    ++batches;
  }
  EXPECT_EQ(batches, 300u);
  EXPECT_EQ(offset, 3000u);
  auto us = [](Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); };
  std::printf("StartBatchRead: mean %.2f us, max %.2f us; the blocking sequential "
              "BatchReader::Read of the same batch: mean %.2f us\n",
              us(start_total) / static_cast<double>(batches - 1), us(start_max),
              us(blocking_total) / static_cast<double>(batches));
  const storage::UringReader::Stats& s = reader_->read_stats();
  EXPECT_EQ(s.fetches, batches);
  EXPECT_EQ(s.reads, batches);  // a 64 KiB first read holds each (small) batch whole
  EXPECT_EQ(s.opens, segments);
  EXPECT_EQ(s.bad_batches, 0u);
  EXPECT_GE(s.reads_hinted, batches - segments);
  EXPECT_EQ(reader_->reloads(), 1u);
}

// Reads are asynchronous: StartBatchRead only prepares them (no system call: nothing submitted,
// nothing delivered yet), PollBatchReads submits them in one go and hands the batches over as
// the kernel completes them. Every read slot busy: kThrottled, and nothing is lost.
TEST_F(LogFileReaderTest, ManyReadsInFlightAreSubmittedTogetherAndComeBackThroughPoll) {
  Write(200);
  std::vector<uint64_t> bases;  // every batch's base offset, from the blocking reader
  for (uint64_t o = 0, end = 0; o < writer_->durable(h_).value; o = end) {
    ASSERT_FALSE(Reference(o, &end).empty());
    bases.push_back(o);
  }
  ASSERT_EQ(bases.size(), 200u);
  std::map<uint64_t, Got> all;
  size_t next = 0;
  const auto deadline = InSeconds(20);
  while (all.size() < bases.size() && std::chrono::steady_clock::now() < deadline) {
    // Out of order on purpose: every 7th batch, wrapping round.
    const uint64_t submits_before = reader_->read_stats().submits;
    uint32_t started = 0;
    while (next < bases.size()) {
      const size_t k = (next * 7) % bases.size();
      const Errc e = reader_->StartBatchRead(kQueue, kPartition, bases[k], UINT64_MAX, 0, k);
      if (e == Errc::kThrottled) break;
      ASSERT_EQ(e, Errc::kOk);
      ++next;
      ++started;
    }
    if (started > 0) {
      EXPECT_EQ(reader_->read_stats().submits, submits_before);  // prepared, not submitted
    }
    EXPECT_LE(reader_->in_flight(), kCatchupReads);
    reader_->PollBatchReads([&](const Persistence::BatchRead& r) {
      Got g{r.errc, r.base, r.end, {r.bytes.begin(), r.bytes.end()}};
      EXPECT_TRUE(all.emplace(r.cookie, std::move(g)).second);
    });
  }
  ASSERT_EQ(all.size(), bases.size());
  for (const auto& [k, g] : all) {
    ASSERT_EQ(g.errc, Errc::kOk) << k;
    uint64_t end = 0;
    EXPECT_EQ(g.base, bases[k]);
    EXPECT_EQ(g.bytes, Reference(bases[k], &end)) << k;
    EXPECT_EQ(g.end, end);
  }
  const storage::UringReader::Stats& s = reader_->read_stats();
  EXPECT_GE(s.reads, bases.size());
  // Several reads per submission: batches of kCatchupReads reads, not one call per read.
  EXPECT_LT(s.submits, s.reads);
  EXPECT_EQ(reader_->in_flight(), 0u);
}

TEST_F(LogFileReaderTest, AllSlotsBusyIsThrottledUntilPolled) {
  Write(20);
  for (uint32_t i = 0; i < kCatchupReads; ++i) {
    ASSERT_EQ(Start(10 * i, i), Errc::kOk);  // the first waits for the state to be found
  }
  EXPECT_EQ(reader_->StartBatchRead(kQueue, kPartition, 100, UINT64_MAX, 0, 99), Errc::kThrottled);
  const std::map<uint64_t, Got> got = PollUntil(kCatchupReads);
  ASSERT_EQ(got.size(), kCatchupReads);
  for (const auto& [k, g] : got) EXPECT_EQ(g.errc, Errc::kOk);
  EXPECT_EQ(reader_->StartBatchRead(kQueue, kPartition, 100, UINT64_MAX, 0, 99), Errc::kOk);
  EXPECT_EQ(PollUntil(1).at(99).errc, Errc::kOk);
}

// The shard lcore writes on after the replication lcore found the log's state: a read past that
// state finds it again — by scanning on from the known end, not the whole log again — and reads
// the new batches, in the segments the writer rolled to meanwhile. Beyond what is written:
// kOffsetOutOfRange.
TEST_F(LogFileReaderTest, ALogWrittenOnIsFoundAgainFromItsKnownEnd) {
  Write(30);
  EXPECT_EQ(ReadOne(0).errc, Errc::kOk);
  EXPECT_EQ(ReadOne(300).errc, Errc::kOffsetOutOfRange);  // the end: nothing yet
  const uint64_t reloads = reader_->reloads();
  EXPECT_EQ(reloads, 1u);
  Write(150);  // rolls into new segments
  ASSERT_GE(writer_->log(h_).segments.size(), 3u);
  for (uint64_t o : {300ull, 310ull, 1790ull}) {
    const Got g = ReadOne(o, /*until_found=*/true);
    ASSERT_EQ(g.errc, Errc::kOk) << o;
    uint64_t end = 0;
    EXPECT_EQ(g.bytes, Reference(o, &end)) << o;
  }
  EXPECT_EQ(reader_->reloads(), reloads);  // no scan from scratch
  EXPECT_GE(reader_->refreshes(), 1u);
  EXPECT_EQ(ReadOne(1800).errc, Errc::kOffsetOutOfRange);
  EXPECT_EQ(ReadOne(1'000'000).errc, Errc::kOffsetOutOfRange);
}

// Retention removed the oldest segments: reading below the new start answers kOffsetOutOfRange
// (as a channel does), and FirstSegmentBase says where the log starts now — for a reader that
// found the log before the removal as for one that finds it after.
TEST_F(LogFileReaderTest, SegmentsRetentionRemovedAnswerOutOfRange) {
  Write(200);
  EXPECT_EQ(ReadOne(1000).errc, Errc::kOk);  // the state found, with the first segments
  ASSERT_GE(writer_->log(h_).segments.size(), 3u);
  const uint64_t third = writer_->log(h_).segments[2].base_offset;
  ASSERT_TRUE(writer_->EnforceRetention(h_, {.keep_from_offset = third}).ok());
  storage::testing::Settle(*writer_);
  ASSERT_EQ(writer_->log(h_).start_offset(), third);
  // The segment's file is gone: answered out of range (an open that failed is one first, then
  // the state is found again).
  const auto deadline = InSeconds(10);
  Got g = ReadOne(10);
  while (g.errc == Errc::kStorageFailed && std::chrono::steady_clock::now() < deadline) {
    g = ReadOne(10);
  }
  EXPECT_EQ(g.errc, Errc::kOffsetOutOfRange);
  EXPECT_EQ(reader_->FirstSegmentBase(kQueue, kPartition), third);
  EXPECT_EQ(ReadOne(third).errc, Errc::kOk);

  auto fresh = std::move(*LogFileReader::Create(layout_));
  reader_.swap(fresh);
  EXPECT_EQ(ReadOne(10).errc, Errc::kOffsetOutOfRange);
  EXPECT_EQ(reader_->FirstSegmentBase(kQueue, kPartition), third);
  const Got at = ReadOne(third);
  ASSERT_EQ(at.errc, Errc::kOk);
  uint64_t end = 0;
  EXPECT_EQ(at.bytes, Reference(third, &end));
}

// Bytes of a batch changed on disk after the log state was found: the read answers
// kStorageFailed (the CRC does not match), is counted, and delivers nothing; the batch before
// it still reads.
TEST_F(LogFileReaderTest, ACorruptBatchIsAnErrorNotACrash) {
  Write(20);
  EXPECT_EQ(ReadOne(0).errc, Errc::kOk);
  {
    const std::string path = tmp_.path() + "/" +
                             storage::PartitionDir::DirName({kQueue, kPartition}) +
                             "/00000000000000000000.log";
    const int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    const char junk[8] = {'c', 'o', 'r', 'r', 'u', 'p', 't', '!'};
    ASSERT_EQ(::pwrite(fd, junk, sizeof junk, 3 * 4096 + 200), 8);  // the 4th batch's records
    ::fsync(fd);
    ::close(fd);
  }
  const Got bad = ReadOne(30);
  EXPECT_EQ(bad.errc, Errc::kStorageFailed);
  EXPECT_TRUE(bad.bytes.empty());
  EXPECT_GE(reader_->read_stats().bad_batches, 1u);
  EXPECT_EQ(ReadOne(20).errc, Errc::kOk);
}

// A partition with no files (never written here): out of range, not an error.
TEST_F(LogFileReaderTest, APartitionWithoutFilesIsOutOfRange) {
  EXPECT_EQ(Start(7, 0, UINT64_MAX, 0, 1), Errc::kOk);
  EXPECT_EQ(PollUntil(1).at(1).errc, Errc::kOffsetOutOfRange);
  EXPECT_EQ(reader_->FirstSegmentBase(kQueue, 7), shard::kNoOffset);
}

// Finding a partition's state is file I/O (a recovery scan, a refresh of the tail): it runs on the
// reader's file worker, never inside a call of the lcore. With that worker held busy (a slow
// disk), every call answers at once: a read that needs the state is refused kThrottled (asked
// again, as when the slots are busy; no answer and no error meanwhile), FirstSegmentBase answers
// from what the reader has; reads inside the state it has go on. Released, the state found is
// adopted in a later call and the reads succeed.
TEST_F(LogFileReaderTest, FindingTheStateRunsOnTheFileWorkerAndTheLcoreNeverWaitsForIt) {
  using Clock = std::chrono::steady_clock;
  Write(30);
  Clock::duration slowest{};
  auto timed = [&](auto call) {
    const auto t0 = Clock::now();
    auto r = call();
    slowest = std::max(slowest, Clock::now() - t0);
    return r;
  };
  {
    HeldWorker held(reader_->file_worker());
    for (int pass = 0; pass < 200; ++pass) {
      EXPECT_EQ(timed([&] {
                  return reader_->StartBatchRead(kQueue, kPartition, 0, UINT64_MAX, 0, 1);
                }),
                Errc::kThrottled);
      EXPECT_EQ(timed([&] { return reader_->FirstSegmentBase(kQueue, kPartition); }),
                shard::kNoOffset);  // no state yet
      timed([&] { return (PollOnce(), 0); });
    }
    EXPECT_TRUE(answers_.empty());  // nothing answered, no error
    EXPECT_EQ(reader_->in_flight(), 0u);
    EXPECT_EQ(reader_->log_state(kQueue, kPartition), nullptr);
    EXPECT_EQ(reader_->reloads(), 0u);
    EXPECT_EQ(reader_->jobs(), 1u);  // one job, not one per call
    EXPECT_GE(reader_->throttled_finding(), 200u);
    held.Release();
    const Got g = ReadOne(0);
    ASSERT_EQ(g.errc, Errc::kOk);
    uint64_t end = 0;
    EXPECT_EQ(g.bytes, Reference(0, &end));
  }
  EXPECT_EQ(reader_->reloads(), 1u);
  EXPECT_EQ(reader_->refreshes(), 0u);

  // Written on: the read past the known end waits for the refresh, the reads inside do not.
  Write(150);
  ASSERT_GE(writer_->log(h_).segments.size(), 3u);
  {
    HeldWorker held(reader_->file_worker());
    for (int pass = 0; pass < 200; ++pass) {
      EXPECT_EQ(timed([&] {
                  return reader_->StartBatchRead(kQueue, kPartition, 1500, UINT64_MAX, 0, 2);
                }),
                Errc::kThrottled);
      EXPECT_EQ(timed([&] { return reader_->FirstSegmentBase(kQueue, kPartition); }), 0u);
      timed([&] { return (PollOnce(), 0); });
    }
    EXPECT_TRUE(answers_.empty());
    const Got inside = ReadOne(100);  // the state known: read at once, refresh or not
    EXPECT_EQ(inside.errc, Errc::kOk);
    EXPECT_EQ(reader_->refreshes(), 0u);
    held.Release();
    const Got g = ReadOne(1500);
    ASSERT_EQ(g.errc, Errc::kOk);
    uint64_t end = 0;
    EXPECT_EQ(g.bytes, Reference(1500, &end));
  }
  EXPECT_EQ(reader_->refreshes(), 1u);
  EXPECT_EQ(reader_->reloads(), 1u);  // refreshed from its known end, not found from scratch
  EXPECT_EQ(reader_->jobs(), 2u);
  // Each call above took microseconds; a call that waited for the held worker would have taken
  // until its release (the loops alone ran for far less than the bound).
  EXPECT_LT(slowest, std::chrono::milliseconds(250));
  std::printf("slowest call while the file worker was held: %.1f us\n",
              std::chrono::duration<double, std::micro>(slowest).count());
}

// A read that fails because retention removed its segment after the state was found: its answer
// waits (keeping its slot) for the state refreshed on the worker, and is then kOffsetOutOfRange
// (below the log's start now), never a kStorageFailed first.
TEST_F(LogFileReaderTest, AReadOfARemovedSegmentIsAnsweredOnTheRefreshedState) {
  Write(200);
  EXPECT_EQ(ReadOne(1000).errc, Errc::kOk);  // the state found, with the first segments
  ASSERT_GE(writer_->log(h_).segments.size(), 3u);
  const uint64_t third = writer_->log(h_).segments[2].base_offset;
  ASSERT_TRUE(writer_->EnforceRetention(h_, {.keep_from_offset = third}).ok());
  storage::testing::Settle(*writer_);
  // States are found again at most once a millisecond: past that, the failed read's refresh
  // starts at once (a rate, not a synchronisation).
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  HeldWorker held(reader_->file_worker());
  ASSERT_EQ(reader_->StartBatchRead(kQueue, kPartition, 10, UINT64_MAX, 0, 7), Errc::kOk);
  // The open fails at once (the file is gone); the answer waits for the refresh.
  const auto deadline = InSeconds(10);
  while (reader_->read_stats().read_errors == 0 && std::chrono::steady_clock::now() < deadline) {
    PollOnce();
  }
  ASSERT_EQ(reader_->read_stats().read_errors, 1u);
  for (int pass = 0; pass < 100; ++pass) PollOnce();
  EXPECT_TRUE(answers_.empty());
  EXPECT_EQ(reader_->in_flight(), 1u);  // its slot kept
  held.Release();
  const std::map<uint64_t, Got> got = PollUntil(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got.at(7).errc, Errc::kOffsetOutOfRange);
  EXPECT_EQ(reader_->FirstSegmentBase(kQueue, kPartition), third);
  EXPECT_EQ(reader_->reloads(), 1u);
  EXPECT_EQ(ReadOne(third).errc, Errc::kOk);
}

// The state the lcore adopts from the worker's jobs — refreshed from its known end round after
// round of writes, rolls and retention — is the one a recovery scan from scratch finds, and the
// refreshes read only what was written since.
TEST_F(LogFileReaderTest, TheStateAdoptedIsTheOneAScanFromScratchFinds) {
  Write(20);
  ASSERT_EQ(ReadOne(0).errc, Errc::kOk);
  ASSERT_NE(reader_->log_state(kQueue, kPartition), nullptr);
  ExpectSame(*reader_->log_state(kQueue, kPartition), Scan(layout_));
  for (int round = 0; round < 5; ++round) {
    const uint64_t end = writer_->durable(h_).value;
    const uint64_t bytes_before = reader_->refresh_bytes();
    Write(40);  // ~160 KiB: a roll every other round or so
    ASSERT_EQ(ReadOne(end, /*until_found=*/true).errc, Errc::kOk) << round;
    const storage::LogState* st = reader_->log_state(kQueue, kPartition);
    ASSERT_NE(st, nullptr);
    ExpectSame(*st, Scan(layout_));
    EXPECT_EQ(st->next_offset, writer_->durable(h_).value) << round;
    EXPECT_LE(reader_->refresh_bytes() - bytes_before, 40u * 4096) << round;
  }
  ASSERT_GE(writer_->log(h_).segments.size(), 3u);
  const uint64_t third = writer_->log(h_).segments[2].base_offset;
  ASSERT_TRUE(writer_->EnforceRetention(h_, {.keep_from_offset = third}).ok());
  storage::testing::Settle(*writer_);
  // The next refresh (a read past the end) drops the removed segments from the front (the
  // first one's file, read before, stays open until then: its fd is closed on the worker).
  const uint64_t end = writer_->durable(h_).value;
  Write(1);
  ASSERT_EQ(ReadOne(end, /*until_found=*/true).errc, Errc::kOk);
  ASSERT_NE(reader_->log_state(kQueue, kPartition), nullptr);
  EXPECT_EQ(reader_->log_state(kQueue, kPartition)->start_offset(), third);
  ExpectSame(*reader_->log_state(kQueue, kPartition), Scan(layout_));
  EXPECT_EQ(ReadOne(10).errc, Errc::kOffsetOutOfRange);
  EXPECT_EQ(reader_->reloads(), 1u);  // every state after the first refreshed, not rescanned
  EXPECT_GE(reader_->refreshes(), 5u);
}

// The partition deleted and created again with other batches (7 records each, not 10) after the
// state was found: a read at a batch start of the old log finds none there; the state is found
// again from scratch on the worker — the read keeps its slot, unanswered, while the worker is
// held — and the read is tried again on it: out of range (no batch starts there now), not an
// error; a batch start of the new log then reads its bytes.
TEST_F(LogFileReaderTest, ARecreatedPartitionIsFoundAgainFromScratchOffTheLcore) {
  Write(30);
  // The state found (FirstSegmentBase starts the job; a pass adopts it), no segment opened yet:
  // a file the reader holds open would still be read after its removal.
  const auto deadline = InSeconds(10);
  while (reader_->log_state(kQueue, kPartition) == nullptr &&
         std::chrono::steady_clock::now() < deadline) {
    reader_->FirstSegmentBase(kQueue, kPartition);
    PollOnce();
  }
  ASSERT_NE(reader_->log_state(kQueue, kPartition), nullptr);
  EXPECT_EQ(reader_->log_state(kQueue, kPartition)->next_offset, 300u);
  writer_->ClosePartition(h_);
  const std::string data_dir = DataDirOf(layout_, kQueue, kPartition);
  std::filesystem::remove_all(data_dir + "/" +
                              storage::PartitionDir::DirName({kQueue, kPartition}));
  Producer other{64 << 10, 512};
  storage::WriterConfig c;
  c.segment_bytes = layout_.segment_bytes;
  c.index_interval_bytes = 16 << 10;
  c.buffers = other.pool.region();
  auto w = std::move(*storage::UringWriter::Create(c));
  const storage::PartitionHandle h =
      *w->OpenPartition({data_dir, {kQueue, kPartition}, shard::Durability::kWrite, 0},
                        storage::LogState{});
  for (int b = 0; b < 40; ++b) other.Batch(7, 150);
  other.Flush(*w, h);
  storage::testing::Settle(*w);
  ASSERT_EQ(w->durable(h).value, 280u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));  // past the 1 ms between findings
  {
    HeldWorker held(reader_->file_worker());
    ASSERT_EQ(reader_->StartBatchRead(kQueue, kPartition, 20, UINT64_MAX, 0, 5), Errc::kOk);
    for (int pass = 0; pass < 200; ++pass) PollOnce();
    EXPECT_TRUE(answers_.empty());
    EXPECT_EQ(reader_->in_flight(), 1u);
    EXPECT_EQ(reader_->reloads(), 1u);
    held.Release();
    const std::map<uint64_t, Got> got = PollUntil(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got.at(5).errc, Errc::kOffsetOutOfRange);
  }
  EXPECT_EQ(reader_->reloads(), 2u);
  const Got g = ReadOne(21);
  ASSERT_EQ(g.errc, Errc::kOk);
  storage::BatchReader r(data_dir, {kQueue, kPartition});
  std::vector<std::byte> buf(2 << 20);
  uint32_t len = 0;
  uint64_t end = 0;
  ASSERT_EQ(r.Read(w->log(h), 21, buf, &len, &end), Errc::kOk);
  buf.resize(len);
  EXPECT_EQ(g.bytes, buf);
  EXPECT_EQ(g.end, 28u);
  ASSERT_NE(reader_->log_state(kQueue, kPartition), nullptr);
  ExpectSame(*reader_->log_state(kQueue, kPartition), Scan(layout_));
}

}  // namespace
}  // namespace sluice::dataplane
