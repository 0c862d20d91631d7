// A dedicated replication lcore's catch-up reads (LogFileReader, docs/replication.md §3): the
// primary's logs as the real writer wrote them, read back through the replication lcore's own
// io_uring — asynchronously (StartBatchRead submits nothing and waits for nothing; the batches
// come through PollBatchReads), verified, byte for byte what BatchReader's blocking preads read,
// in order across segment boundaries, several in flight; a log state found again when a read
// asks past it (incrementally), retention's removals answering kOffsetOutOfRange, a corrupt
// batch answering kStorageFailed.
#include "dataplane/replication_handoff.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "dataplane/storage_shell.h"
#include "storage/batch_reader.h"
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

  // Polls until `n` answers came (at most 10 s), keyed by cookie.
  std::map<uint64_t, Got> PollUntil(size_t n) {
    std::map<uint64_t, Got> out;
    const auto deadline = InSeconds(10);
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
      reader_->PollBatchReads([&](const Persistence::BatchRead& r) {
        Got g{r.errc, r.base, r.end, {r.bytes.begin(), r.bytes.end()}, r.next_hint_segment,
              r.next_hint_position};
        EXPECT_TRUE(out.emplace(r.cookie, std::move(g)).second) << r.cookie;
      });
    }
    return out;
  }

  // One read, waited for. Asked again while the answer is kOffsetOutOfRange and `until_found`
  // (the log state is found again at most once a millisecond).
  Got ReadOne(uint64_t offset, bool until_found = false) {
    const auto deadline = InSeconds(10);
    static uint64_t cookie = 1000;
    while (true) {
      EXPECT_EQ(reader_->StartBatchRead(kQueue, kPartition, offset, UINT64_MAX, 0, ++cookie),
                Errc::kOk);
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
};

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
    ASSERT_EQ(reader_->StartBatchRead(kQueue, kPartition, offset, hint_segment, hint_position,
                                      batches),
              Errc::kOk);
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
    ASSERT_EQ(reader_->StartBatchRead(kQueue, kPartition, 10 * i, UINT64_MAX, 0, i), Errc::kOk);
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
  EXPECT_EQ(reader_->StartBatchRead(kQueue, 7, 0, UINT64_MAX, 0, 1), Errc::kOk);
  EXPECT_EQ(PollUntil(1).at(1).errc, Errc::kOffsetOutOfRange);
  EXPECT_EQ(reader_->FirstSegmentBase(kQueue, 7), shard::kNoOffset);
}

}  // namespace
}  // namespace sluice::dataplane
