#include "storage/uring_reader.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>

#include "storage/batch_reader.h"

#include "tests/unit/storage/test_util.h"

namespace sluice::storage {
namespace {

using testing::Payload;
using testing::Producer;
using testing::Str;
using testing::TempDir;

// Completions come when the kernel has done the read: on a loaded machine that may take many
// polls, so the waits are bounded by time (10 s), not by a count of polls.
bool Before(std::chrono::steady_clock::time_point deadline) {
  return std::chrono::steady_clock::now() < deadline;
}
std::chrono::steady_clock::time_point InSeconds(int s) {
  return std::chrono::steady_clock::now() + std::chrono::seconds(s);
}

struct Fixture {
  explicit Fixture(const std::string& parent) : tmp(parent) {
    WriterConfig c;
    c.segment_bytes = 256 << 10;
    c.index_interval_bytes = 16 << 10;
    c.buffers = prod.pool.region();
    writer = std::move(*UringWriter::Create(c));
    h = *writer->OpenPartition({tmp.path(), {2, 0}, shard::Durability::kWrite, 0}, LogState{});
    for (int b = 0; b < 300; ++b) prod.Batch(10, 150);  // 3000 records, ~1.2 MiB, 5 segments
    prod.Flush(*writer, h);
    ReaderConfig rc;
    rc.read_bytes = (16 << 10) + (64 << 10);  // index interval + largest batch (a chunk)
    reader = std::move(*UringReader::Create(rc, writer.get()));
  }
  // One fetch, waited for.
  FetchResult Fetch(FetchBy by, uint64_t value, uint32_t max, std::vector<RecordView>* out,
                    std::vector<std::string>* payloads) {
    EXPECT_EQ(reader->Fetch({h, by, value, max, 77}), Errc::kOk);
    FetchResult got;
    bool done = false;
    while (!done) {
      reader->Poll([&](const FetchResult& r) {
        got = r;
        r.ForEach([&](const RecordView& v) {
          out->push_back(v);
          payloads->push_back(Str(v.record));
        });
        done = true;
      });
    }
    return got;
  }
  TempDir tmp;
  Producer prod{64 << 10, 512};
  std::unique_ptr<UringWriter> writer;
  PartitionHandle h = 0;
  std::unique_ptr<UringReader> reader;
};

TEST(UringReader, FetchFromAnOffsetIsOneLookupAndOneRead) {
  Fixture f("/tmp");
  ASSERT_GE(f.writer->log(f.h).segments.size(), 4u);
  for (uint64_t target : {0ull, 1ull, 9ull, 10ull, 1234ull, 2999ull}) {
    std::vector<RecordView> recs;
    std::vector<std::string> payloads;
    const uint64_t reads_before = f.reader->stats().reads;
    FetchResult r = f.Fetch(FetchBy::kOffset, target, 25, &recs, &payloads);
    EXPECT_EQ(f.reader->stats().reads - reads_before, 1u) << target;
    ASSERT_EQ(r.errc, Errc::kOk);
    EXPECT_EQ(r.cookie, 77u);
    EXPECT_EQ(r.first_offset, target);
    ASSERT_GE(recs.size(), 1u);
    EXPECT_EQ(recs.size(), r.count);
    EXPECT_LE(recs.size(), 25u);
    for (size_t i = 0; i < recs.size(); ++i) {
      EXPECT_EQ(recs[i].offset, target + i);
      EXPECT_EQ(payloads[i], Payload(target + i, 150));
    }
    EXPECT_EQ(r.next_offset, target + recs.size());
  }
}

TEST(UringReader, FetchFromATimestampFindsTheFirstRecordAtOrAfterIt) {
  Fixture f("/tmp");
  // Record o has timestamp 1'000'000 + 1000 o.
  for (uint64_t o : {0ull, 5ull, 777ull, 2500ull, 2999ull}) {
    std::vector<RecordView> recs;
    std::vector<std::string> payloads;
    FetchResult r = f.Fetch(FetchBy::kTimestamp, 1'000'000 + 1000 * o - 1, 3, &recs, &payloads);
    ASSERT_EQ(r.errc, Errc::kOk);
    ASSERT_FALSE(recs.empty());
    EXPECT_EQ(recs[0].offset, o);
    EXPECT_EQ(recs[0].timestamp_ns, 1'000'000 + 1000 * o);
  }
  std::vector<RecordView> recs;
  std::vector<std::string> payloads;
  FetchResult r = f.Fetch(FetchBy::kTimestamp, UINT64_MAX / 2, 3, &recs, &payloads);
  EXPECT_EQ(r.errc, Errc::kOk);
  EXPECT_EQ(r.count, 0u);
  EXPECT_EQ(r.next_offset, 3000u);  // nothing that late yet: continue at the end
}

TEST(UringReader, OutOfRangeAndBusy) {
  Fixture f("/tmp");
  std::vector<RecordView> recs;
  std::vector<std::string> payloads;
  EXPECT_EQ(f.reader->Fetch({f.h, FetchBy::kOffset, 3000, 10, 1}), Errc::kOffsetOutOfRange);
  bool seen = false;
  f.reader->Poll([&](const FetchResult& r) {
    EXPECT_EQ(r.errc, Errc::kOffsetOutOfRange);
    seen = true;
  });
  EXPECT_TRUE(seen);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(f.reader->Fetch({f.h, FetchBy::kOffset, 0, 1, 0}), Errc::kOk);
  EXPECT_EQ(f.reader->Fetch({f.h, FetchBy::kOffset, 0, 1, 0}), Errc::kThrottled);
  f.reader->Drain([](const FetchResult& r) { EXPECT_EQ(r.errc, Errc::kOk); });
}

TEST(UringReader, WorksOnTmpfsToo) {
  Fixture f("/dev/shm");
  std::vector<RecordView> recs;
  std::vector<std::string> payloads;
  FetchResult r = f.Fetch(FetchBy::kOffset, 1500, 100, &recs, &payloads);
  ASSERT_EQ(r.errc, Errc::kOk);
  ASSERT_EQ(recs.size(), 100u);
  EXPECT_EQ(payloads[99], Payload(1599, 150));
}

// One fetch issued and not yet polled; retention then removes its segment (the unlinks complete
// first). Returns what the fetch answered and its payloads.
FetchResult FetchAcrossRetention(Fixture& f, uint64_t offset, std::vector<std::string>* payloads) {
  const uint64_t second_base = f.writer->log(f.h).segments[1].base_offset;
  EXPECT_EQ(f.reader->Fetch({f.h, FetchBy::kOffset, offset, 20, 1}), Errc::kOk);  // queued only
  auto removed = f.writer->EnforceRetention(f.h, {.keep_from_offset = second_base});
  EXPECT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1u);
  testing::Settle(*f.writer);
  EXPECT_FALSE(std::filesystem::exists(f.tmp.path() + "/2-0/00000000000000000000.log"));
  FetchResult got;
  bool done = false;
  for (auto end = InSeconds(10); !done && Before(end);) {
    f.reader->Poll([&](const FetchResult& r) {
      got = r;
      r.ForEach([&](const RecordView& v) { payloads->push_back(Str(v.record)); });
      done = true;
    });
  }
  EXPECT_TRUE(done);
  return got;
}

// Retention removes a segment while a fetch reads it: the read holds its own descriptor of the
// file (opened by an earlier fetch), which the unlink does not disturb, and answers the records.
// A fetch issued after the removal never looks for the file (below the log's start).
TEST(UringReader, AReadInFlightSurvivesRetentionOfItsSegment) {
  Fixture f("/tmp");
  ASSERT_GE(f.writer->log(f.h).segments.size(), 3u);
  const uint64_t second_base = f.writer->log(f.h).segments[1].base_offset;
  std::vector<RecordView> recs;
  std::vector<std::string> payloads;
  ASSERT_EQ(f.Fetch(FetchBy::kOffset, 0, 1, &recs, &payloads).errc, Errc::kOk);  // opens it
  payloads.clear();
  const FetchResult got = FetchAcrossRetention(f, 5, &payloads);
  ASSERT_EQ(got.errc, Errc::kOk);
  ASSERT_EQ(payloads.size(), 20u);
  for (uint64_t i = 0; i < 20; ++i) EXPECT_EQ(payloads[i], Payload(5 + i, 150));
  EXPECT_EQ(f.reader->Fetch({f.h, FetchBy::kOffset, 5, 20, 2}), Errc::kOffsetOutOfRange);
  f.reader->Poll([](const FetchResult&) {});
  recs.clear();
  FetchResult later = f.Fetch(FetchBy::kOffset, second_base, 5, &recs, &payloads);
  EXPECT_EQ(later.errc, Errc::kOk);
  EXPECT_EQ(later.first_offset, second_base);
}

// The first read of a segment opens its file through the reader's ring. If retention removes the
// segment before that open ran, the fetch answers "below the log's start", never another file's
// bytes or a storage failure.
TEST(UringReader, AFetchWhoseSegmentGoesBeforeItsOpenAnswersOutOfRange) {
  Fixture f("/tmp");
  ASSERT_GE(f.writer->log(f.h).segments.size(), 3u);
  std::vector<std::string> payloads;
  const FetchResult got = FetchAcrossRetention(f, 5, &payloads);
  EXPECT_EQ(got.errc, Errc::kOffsetOutOfRange);
  EXPECT_TRUE(payloads.empty());
  EXPECT_EQ(f.reader->stats().opens, 1u);
}

// Segment files are opened through the ring, once per segment and reader.
TEST(UringReader, OpensEachSegmentOnceThroughTheRing) {
  Fixture f("/tmp");
  const size_t segments = f.writer->log(f.h).segments.size();
  std::vector<RecordView> recs;
  std::vector<std::string> payloads;
  for (int round = 0; round < 2; ++round) {
    for (const SegmentState& s : std::vector<SegmentState>(f.writer->log(f.h).segments)) {
      if (s.end_offset == s.base_offset) continue;
      recs.clear();
      payloads.clear();
      FetchResult r = f.Fetch(FetchBy::kOffset, s.base_offset, 3, &recs, &payloads);
      ASSERT_EQ(r.errc, Errc::kOk) << s.base_offset;
      ASSERT_EQ(payloads.size(), 3u);
      EXPECT_EQ(payloads[0], Payload(s.base_offset, 150));
    }
  }
  EXPECT_LE(f.reader->stats().opens, segments);
  EXPECT_GE(f.reader->stats().opens, segments - 1);
}

// A fetch in flight when its partition closes (its queue deleted) answers UNKNOWN_PARTITION; it
// does not look the closed partition up.
TEST(UringReader, AFetchInFlightWhenItsPartitionClosesAnswersUnknownPartition) {
  Fixture f("/tmp");
  ASSERT_EQ(f.reader->Fetch({f.h, FetchBy::kOffset, 5, 20, 1}), Errc::kOk);  // open queued
  f.writer->ClosePartition(f.h);
  FetchResult got;
  bool done = false;
  for (auto end = InSeconds(10); !done && Before(end);) {
    f.reader->Poll([&](const FetchResult& r) {
      got = r;
      done = true;
    });
  }
  ASSERT_TRUE(done);
  EXPECT_EQ(got.errc, Errc::kUnknownPartition);
}


// ---- FetchBy::kBatch: replication catch-up's reads (docs/replication.md §3) -------------------

// Polls until `n` results came (bounded), in the order they came.
std::vector<FetchResult> PollN(UringReader& r, size_t n,
                               std::vector<std::vector<std::byte>>* bytes = nullptr) {
  std::vector<FetchResult> out;
  for (auto end = InSeconds(10); out.size() < n && Before(end);) {
    r.Poll([&](const FetchResult& x) {
      out.push_back(x);
      if (bytes != nullptr) bytes->emplace_back(x.batch().begin(), x.batch().end());
    });
  }
  EXPECT_EQ(out.size(), n);
  // A timeout has failed the test above; callers index the results, so they get n of them.
  out.resize(std::max(out.size(), n));
  if (bytes != nullptr) bytes->resize(out.size());
  return out;
}

// What the blocking reader gives for the batch at `offset` (the reference).
std::vector<std::byte> Reference(Fixture& f, uint64_t offset, uint64_t* end) {
  BatchReader br(f.tmp.path(), {2, 0});
  std::vector<std::byte> buf(2 << 20);
  uint32_t len = 0;
  EXPECT_EQ(br.Read(f.writer->log(f.h), offset, buf, &len, end), Errc::kOk) << offset;
  buf.resize(len);
  return buf;
}

FetchRequest BatchAt(const Fixture& f, uint64_t offset, uint64_t cookie) {
  FetchRequest r;
  r.partition = f.h;
  r.by = FetchBy::kBatch;
  r.value = offset;
  r.cookie = cookie;
  return r;
}

// Every batch of the log, read in order as catch-up does (each result's position the next
// request's hint), is the blocking reader's batch byte for byte; with the hint, each is one read.
TEST(UringReaderBatch, ReadsEveryBatchByOffsetAsTheBlockingReaderDoes) {
  Fixture f("/tmp");
  uint64_t offset = 0, hint_seg = UINT64_MAX, hint_pos = 0, batches = 0;
  const uint64_t end = f.writer->durable(f.h).value;
  while (offset < end && batches < 1000) {
    FetchRequest req = BatchAt(f, offset, offset);
    req.hint_segment = hint_seg;
    req.hint_position = hint_pos;
    const uint64_t reads_before = f.reader->stats().reads;
    ASSERT_EQ(f.reader->Fetch(req), Errc::kOk);
    std::vector<std::vector<std::byte>> bytes;
    const FetchResult r = PollN(*f.reader, 1, &bytes)[0];
    ASSERT_EQ(r.errc, Errc::kOk) << offset;
    EXPECT_EQ(r.cookie, offset);
    EXPECT_EQ(r.first_offset, offset);
    uint64_t ref_end = 0;
    EXPECT_EQ(bytes[0], Reference(f, offset, &ref_end)) << offset;
    EXPECT_EQ(r.next_offset, ref_end);
    // Cold (no hint, or a new segment): possibly a walk from the index entry; else one read.
    if (hint_seg == r.segment_base) {
      EXPECT_EQ(f.reader->stats().reads - reads_before, 1u) << offset;
    }
    hint_seg = r.segment_base;
    hint_pos = r.end_position;
    offset = r.next_offset;
    ++batches;
  }
  EXPECT_EQ(offset, end);
  EXPECT_EQ(batches, 300u);
  EXPECT_GT(f.reader->stats().reads_hinted, 250u);
  EXPECT_EQ(f.reader->stats().read_errors, 0u);
  EXPECT_EQ(f.reader->stats().bad_batches, 0u);
}

// Several reads in flight at once (cold, spread over segments), each answered with its batch.
TEST(UringReaderBatch, SeveralInFlight) {
  Fixture f("/tmp");
  const std::vector<uint64_t> offsets = {0, 1000, 2000, 2990};  // batches of 10 records
  for (uint64_t o : offsets) ASSERT_EQ(f.reader->Fetch(BatchAt(f, o, o)), Errc::kOk);
  std::vector<std::vector<std::byte>> bytes;
  const std::vector<FetchResult> got = PollN(*f.reader, offsets.size(), &bytes);
  std::map<uint64_t, size_t> seen;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].errc, Errc::kOk) << got[i].cookie;
    seen[got[i].cookie] = i;
  }
  ASSERT_EQ(seen.size(), offsets.size());
  for (uint64_t o : offsets) {
    uint64_t end = 0;
    EXPECT_EQ(bytes[seen[o]], Reference(f, o, &end)) << o;
    EXPECT_EQ(got[seen[o]].next_offset, o + 10);
  }
}

// An offset where no batch starts, or past the log, answers out of range (no read for the
// latter); so does a wrong hint, never another batch.
TEST(UringReaderBatch, NoBatchStartsThereAnswersOutOfRange) {
  Fixture f("/tmp");
  EXPECT_EQ(f.reader->Fetch(BatchAt(f, 3000, 1)), Errc::kOffsetOutOfRange);
  EXPECT_EQ(f.reader->Fetch(BatchAt(f, 1005, 2)), Errc::kOk);
  FetchRequest wrong = BatchAt(f, 20, 3);
  wrong.hint_segment = 0;
  wrong.hint_position = 3 * 4096;  // batches of stride 4096: this is the batch at 30, past 20
  EXPECT_EQ(f.reader->Fetch(wrong), Errc::kOk);
  for (const FetchResult& r : PollN(*f.reader, 3)) {
    EXPECT_EQ(r.errc, Errc::kOffsetOutOfRange) << r.cookie;
    EXPECT_TRUE(r.batch().empty());
  }
}

// A batch larger than the first read: its header says its stride, one more read of exactly that.
TEST(UringReaderBatch, ALargeBatchTakesASecondReadOfItsStride) {
  Fixture f("/tmp");
  f.prod.Batch(200, 150);  // ~36 KiB
  f.prod.Flush(*f.writer, f.h);
  ReaderConfig rc;
  rc.read_bytes = (16 << 10) + (64 << 10);
  rc.batch_read_bytes = 8192;
  auto reader = std::move(*UringReader::Create(rc, f.writer.get()));
  FetchRequest req = BatchAt(f, 3000, 9);
  ASSERT_EQ(reader->Fetch(req), Errc::kOk);
  std::vector<std::vector<std::byte>> bytes;
  const FetchResult r = PollN(*reader, 1, &bytes)[0];
  ASSERT_EQ(r.errc, Errc::kOk);
  uint64_t end = 0;
  EXPECT_EQ(bytes[0], Reference(f, 3000, &end));
  EXPECT_EQ(r.next_offset, end);
  EXPECT_GT(end, 3050u);  // larger than the first read (the producer may cut it before 200)
  // From the index entry: the walk reads on to the batch, then its stride.
  EXPECT_GE(reader->stats().reads, 2u);
  EXPECT_LE(reader->stats().bytes, uint64_t{rc.read_bytes} * 8);
  // Small batches after it, each read cold (no hint): a walk from an index entry at or before
  // the large batch steps over it by its header, whatever the first read holds of it.
  f.prod.Batch(10, 150);
  f.prod.Batch(10, 150);
  f.prod.Flush(*f.writer, f.h);
  // (The producer may have cut the 200 records into two large batches: then one more.)
  uint64_t o = end;
  for (int k = 0; k < 3 && o < f.writer->durable(f.h).value; ++k) {
    ASSERT_EQ(reader->Fetch(BatchAt(f, o, o)), Errc::kOk);
    std::vector<std::vector<std::byte>> b2;
    const FetchResult r2 = PollN(*reader, 1, &b2)[0];
    ASSERT_EQ(r2.errc, Errc::kOk) << o;
    uint64_t e2 = 0;
    EXPECT_EQ(b2[0], Reference(f, o, &e2)) << o;
    EXPECT_EQ(r2.next_offset, e2);
    o = e2;
  }
  EXPECT_EQ(o, f.writer->durable(f.h).value);
  EXPECT_EQ(reader->stats().bad_batches, 0u);
}

// A cold read (no hint) whose walk starts at a large batch that is not the target (a sparse
// index: the segment's only entry is its start) steps over it by its header, without reading it.
TEST(UringReaderBatch, AColdWalkStepsOverALargeBatchByItsHeader) {
  TempDir tmp("/tmp");
  Producer prod{64 << 10, 64};
  WriterConfig c;
  c.segment_bytes = 4 << 20;
  c.index_interval_bytes = 4 << 20;
  c.buffers = prod.pool.region();
  auto writer = std::move(*UringWriter::Create(c));
  const PartitionHandle h =
      *writer->OpenPartition({tmp.path(), {2, 0}, shard::Durability::kWrite, 0}, LogState{});
  prod.Batch(200, 150);  // one or two batches larger than the first read
  for (int b = 0; b < 5; ++b) prod.Batch(10, 150);
  prod.Flush(*writer, h);
  ReaderConfig rc;
  rc.batch_read_bytes = 8192;
  auto reader = std::move(*UringReader::Create(rc, writer.get()));
  const uint64_t end = writer->durable(h).value;
  ASSERT_EQ(end, 250u);
  FetchRequest req;
  req.partition = h;
  req.by = FetchBy::kBatch;
  req.value = end - 20;  // the fourth small batch
  ASSERT_EQ(reader->Fetch(req), Errc::kOk);
  std::vector<std::vector<std::byte>> bytes;
  const FetchResult r = PollN(*reader, 1, &bytes)[0];
  ASSERT_EQ(r.errc, Errc::kOk);
  EXPECT_EQ(r.first_offset, end - 20);
  EXPECT_EQ(r.next_offset, end - 10);
  BatchReader br(tmp.path(), {2, 0});
  std::vector<std::byte> ref(1 << 20);
  uint32_t len = 0;
  uint64_t ref_end = 0;
  ASSERT_EQ(br.Read(writer->log(h), end - 20, ref, &len, &ref_end), Errc::kOk);
  ref.resize(len);
  EXPECT_EQ(bytes[0], ref);
  EXPECT_EQ(reader->stats().bad_batches, 0u);
  EXPECT_LT(reader->stats().bytes, 64u << 10);  // the large batch's bytes were not read
}

// Retention removes the segment before the read's open ran: out of range (the standby is behind
// the log's start), never a failure or another file's bytes; a request after it, at once.
TEST(UringReaderBatch, ARemovedSegmentAnswersOutOfRange) {
  Fixture f("/tmp");
  const uint64_t second_base = f.writer->log(f.h).segments[1].base_offset;
  ASSERT_EQ(f.reader->Fetch(BatchAt(f, 10, 1)), Errc::kOk);  // queued only
  ASSERT_TRUE(f.writer->EnforceRetention(f.h, {.keep_from_offset = second_base}).ok());
  testing::Settle(*f.writer);
  const FetchResult r = PollN(*f.reader, 1)[0];
  EXPECT_EQ(r.errc, Errc::kOffsetOutOfRange);
  EXPECT_EQ(f.reader->Fetch(BatchAt(f, 10, 2)), Errc::kOffsetOutOfRange);
  EXPECT_EQ(PollN(*f.reader, 1)[0].errc, Errc::kOffsetOutOfRange);
  ASSERT_EQ(f.reader->Fetch(BatchAt(f, second_base, 3)), Errc::kOk);
  EXPECT_EQ(PollN(*f.reader, 1)[0].errc, Errc::kOk);
}

// A read the kernel fails (EIO, injected) answers kStorageFailed and is counted; the next read
// of the same batch succeeds.
TEST(UringReaderBatch, AFailedReadIsReportedNotFatal) {
  Fixture f("/tmp");
  f.reader->InjectReadErrors(1, EIO);
  ASSERT_EQ(f.reader->Fetch(BatchAt(f, 50, 1)), Errc::kOk);
  EXPECT_EQ(PollN(*f.reader, 1)[0].errc, Errc::kStorageFailed);
  EXPECT_EQ(f.reader->stats().read_errors, 1u);
  ASSERT_EQ(f.reader->Fetch(BatchAt(f, 50, 2)), Errc::kOk);
  EXPECT_EQ(PollN(*f.reader, 1)[0].errc, Errc::kOk);
}

// A batch whose bytes on disk changed (CRC mismatch) answers kStorageFailed and is counted.
TEST(UringReaderBatch, ACorruptBatchIsReportedNotDelivered) {
  Fixture f("/tmp");
  uint64_t end = 0;
  ASSERT_FALSE(Reference(f, 30, &end).empty());
  {
    const int fd = ::open((f.tmp.path() + "/2-0/00000000000000000000.log").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    const char junk[8] = {'c', 'o', 'r', 'r', 'u', 'p', 't', '!'};
    ASSERT_EQ(::pwrite(fd, junk, sizeof junk, 3 * 4096 + 200), 8);  // the 4th batch's records
    ::fsync(fd);
    ::close(fd);
  }
  ASSERT_EQ(f.reader->Fetch(BatchAt(f, 30, 1)), Errc::kOk);
  const FetchResult r = PollN(*f.reader, 1)[0];
  EXPECT_EQ(r.errc, Errc::kStorageFailed);
  EXPECT_TRUE(r.batch().empty());
  EXPECT_EQ(f.reader->stats().bad_batches, 1u);
}

// The partition closes (its queue deleted) while the read is in flight: UNKNOWN_PARTITION.
TEST(UringReaderBatch, AReadInFlightWhenItsPartitionClosesAnswersUnknownPartition) {
  Fixture f("/tmp");
  // Open the segment first, so the read itself (not only the open) is in flight at the close.
  ASSERT_EQ(f.reader->Fetch(BatchAt(f, 0, 1)), Errc::kOk);
  ASSERT_EQ(PollN(*f.reader, 1)[0].errc, Errc::kOk);
  ASSERT_EQ(f.reader->Fetch(BatchAt(f, 20, 2)), Errc::kOk);
  f.writer->ClosePartition(f.h);
  EXPECT_EQ(PollN(*f.reader, 1)[0].errc, Errc::kUnknownPartition);
}

}  // namespace
}  // namespace sluice::storage
