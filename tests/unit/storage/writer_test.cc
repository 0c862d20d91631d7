#include "storage/uring_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "storage/recovery.h"
#include "tests/unit/storage/test_util.h"

namespace sluice::storage {
namespace {

using testing::Payload;
using testing::Producer;
using testing::Str;
using testing::TempDir;

constexpr uint64_t kSegment = 256 << 10;
constexpr int kBatches = 100;

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

// Writes `batches` batches of `per` records, then recovers the directory and checks that every
// record came back, in order, intact.
void RoundTrip(const std::string& parent, shard::Durability mode, bool expect_direct,
               bool force_buffered = false) {
  TempDir tmp(parent);
  Producer prod;
  WriterConfig config = Config(prod.pool.region());
  config.direct_io = !force_buffered;
  auto w = UringWriter::Create(config);
  ASSERT_TRUE(w.ok()) << w.status();
  auto h = (*w)->OpenPartition({tmp.path(), {5, 2}, mode, 3}, LogState{});
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ((*w)->direct_io(*h), expect_direct);
  for (int b = 0; b < kBatches; ++b) {
    prod.Batch(1 + b % 7, 200 + 37 * b);
    if (b % 3 == 0) prod.Flush(**w, *h);
  }
  prod.Flush(**w, *h);
  ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  const uint64_t n = prod.log.written_end().value;
  EXPECT_EQ(prod.log.durable_end().value, n);
  EXPECT_EQ((*w)->durable(*h).value, n);
  EXPECT_GE((*w)->stats().rolls, 2u);  // ~1 MiB of batches cross 256 KiB segments
  w->reset();

  PartitionToRecover what{tmp.path(), {5, 2}};
  RecoveredPartition r = RecoverPartition(what, Opts());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.report.cut) << FormatReport(r.report);
  EXPECT_EQ(r.report.next_offset, n);
  ASSERT_EQ(r.records.size(), n);
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(r.records[i].offset, i);
    EXPECT_EQ(r.records[i].timestamp_ns, 1'000'000 + i * 1000);
  }
  // Sizes vary per batch: check payloads by regenerating each batch's size.
  uint64_t off = 0;
  for (int b = 0; b < kBatches; ++b) {
    for (int k = 0; k < 1 + b % 7; ++k, ++off) {
      ASSERT_EQ(Str(r.record(r.records[off])), Payload(off, 200 + 37 * b)) << off;
    }
  }
  EXPECT_EQ(r.report.segments, r.log.segments.size());
  EXPECT_GE(r.log.segments.size(), 3u);
}

TEST(UringWriter, EndToEndWithODirectOnLocalDisk) {
  RoundTrip("/tmp", shard::Durability::kWrite, true);
}

TEST(UringWriter, EndToEndDsync) { RoundTrip("/tmp", shard::Durability::kDsync, true); }

// Whether `dir`'s filesystem takes O_DIRECT (tmpfs does since Linux 6.6; before, EINVAL).
bool TakesODirect(const std::string& dir) {
  const std::string probe = dir + "/sluice-odirect-probe-" + std::to_string(::getpid());
  bool direct = false;
  { auto fd = OpenMaybeDirect(probe, O_RDWR | O_CREAT, &direct); }
  std::filesystem::remove(probe);
  return direct;
}

TEST(UringWriter, OnTmpfsUsesODirectIfItCanElseBufferedPlusFdatasync) {
  if (!std::filesystem::exists("/dev/shm")) GTEST_SKIP() << "no /dev/shm";
  RoundTrip("/dev/shm", shard::Durability::kDsync, TakesODirect("/dev/shm"));
}

// The fallback path itself, whatever this kernel's tmpfs does: buffered write linked to an
// fdatasync, same data on disk.
TEST(UringWriter, BufferedPlusFdatasyncFallback) {
  RoundTrip("/tmp", shard::Durability::kDsync, false, /*force_buffered=*/true);
  if (std::filesystem::exists("/dev/shm")) {
    RoundTrip("/dev/shm", shard::Durability::kWrite, false, /*force_buffered=*/true);
  }
}

TEST(UringWriter, RingUsesTheBestSetupTheKernelOffers) {
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  ASSERT_TRUE(w.ok());
  const RingFeatures& f = (*w)->features();
  // Kernel 6.x: all present. On an older kernel the fallback is a plain ring; say so.
  if (!f.defer_taskrun) GTEST_SKIP() << "kernel without DEFER_TASKRUN: fallback ring in use";
  EXPECT_TRUE(f.single_issuer);
  // Polls with writes in flight enter the kernel only when the kernel flags completion work:
  // every Flush in these tests waits for its writes through that path.
  EXPECT_TRUE(f.taskrun_flag);
  EXPECT_TRUE(f.registered_buffers);
  EXPECT_TRUE(f.registered_files);
}

// The scheduler slice of the calling thread (EEVDF, /proc/thread-self/sched), 0 if not shown.
uint64_t ThreadSlice() {
  std::ifstream in("/proc/thread-self/sched");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("se.slice", 0) == 0) return std::stoull(line.substr(line.find(':') + 1));
  }
  return 0;
}

// The ring's owner gets the configured slice at its first write, so that the kworker finishing
// its writes preempts it soon; polling alone, or a writer without the setting, leaves it alone.
TEST(UringWriter, OwnerSliceIsSetOnTheThreadThatWrites) {
  uint64_t before = 0, polled = 0, with = 0, without = 0;
  std::thread t([&] {
    before = ThreadSlice();
    TempDir tmp;
    {
      Producer prod;
      auto plain = UringWriter::Create(Config(prod.pool.region()));
      ASSERT_TRUE(plain.ok());
      auto h = (*plain)->OpenPartition({tmp.path() + "/a", {1, 0}, shard::Durability::kWrite, 0},
                                       LogState{});
      ASSERT_TRUE(h.ok()) << h.status();
      prod.Batch(3);
      prod.Flush(**plain, *h);
      EXPECT_EQ(prod.log.durable_end().value, 3u);
      without = ThreadSlice();
    }
    Producer prod;
    WriterConfig c = Config(prod.pool.region());
    c.owner_slice_ns = 200'000;
    auto w = UringWriter::Create(c);
    ASSERT_TRUE(w.ok());
    auto h = (*w)->OpenPartition({tmp.path() + "/b", {1, 0}, shard::Durability::kWrite, 0},
                                 LogState{});
    ASSERT_TRUE(h.ok()) << h.status();
    (*w)->Poll([](const Completion&) {});
    polled = ThreadSlice();  // adopted the ring, wrote nothing yet
    prod.Batch(3);
    prod.Flush(**w, *h);
    EXPECT_EQ(prod.log.durable_end().value, 3u);
    with = ThreadSlice();
  });
  t.join();
  if (before == 0) GTEST_SKIP() << "kernel without per-task slices in /proc/thread-self/sched";
  EXPECT_EQ(without, before);
  EXPECT_EQ(polled, before);
  EXPECT_EQ(with, 200'000u);
}

TEST(UringWriter, SqpollWhenConfigured) {
  Producer prod;
  WriterConfig c = Config(prod.pool.region());
  c.sqpoll = true;
  auto w = UringWriter::Create(c);
  ASSERT_TRUE(w.ok());
  if (!(*w)->features().sqpoll) GTEST_SKIP() << "SQPOLL refused here";
  TempDir tmp;
  auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kWrite, 0}, LogState{});
  ASSERT_TRUE(h.ok());
  for (int b = 0; b < 10; ++b) prod.Batch(3);
  prod.Flush(**w, *h);
  EXPECT_EQ(prod.log.durable_end().value, 30u);
}

// A worker's shards each have a chunk pool: every pool is registered, and a batch from any of
// them is written with WRITE_FIXED (the region's own buffer index); memory outside them is not.
TEST(UringWriter, RegistersSeveralRegionsAndWritesFixedFromEach) {
  TempDir tmp;
  Producer a, b, outside;
  WriterConfig c = Config({});
  auto w = UringWriter::Create(c);
  ASSERT_TRUE(w.ok());
  if (!(*w)->features().defer_taskrun) GTEST_SKIP() << "kernel without DEFER_TASKRUN";
  const std::span<std::byte> regions[] = {a.pool.region(), b.pool.region()};
  ASSERT_TRUE((*w)->RegisterBuffers(regions).ok());
  EXPECT_EQ((*w)->registered_regions(), 2u);
  EXPECT_TRUE((*w)->features().registered_buffers);
  auto ha = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kWrite, 0}, LogState{});
  auto hb = (*w)->OpenPartition({tmp.path(), {1, 1}, shard::Durability::kWrite, 0}, LogState{});
  auto ho = (*w)->OpenPartition({tmp.path(), {1, 2}, shard::Durability::kWrite, 0}, LogState{});
  ASSERT_TRUE(ha.ok() && hb.ok() && ho.ok());
  for (int i = 0; i < 5; ++i) {
    a.Batch(3);
    a.Flush(**w, *ha);
    b.Batch(3);
    b.Flush(**w, *hb);
  }
  EXPECT_EQ((*w)->stats().fixed_writes, 10u);
  outside.Batch(3);
  outside.Flush(**w, *ho);
  EXPECT_EQ((*w)->stats().fixed_writes, 10u);  // not from a registered region: a plain write
  EXPECT_EQ(a.log.durable_end().value, 15u);
  EXPECT_EQ(b.log.durable_end().value, 15u);
  EXPECT_EQ(outside.log.durable_end().value, 3u);
  // More regions than the table holds are refused with a reason; the table stays as it was.
  std::vector<std::span<std::byte>> many(17, a.pool.region());
  const absl::Status s = (*w)->RegisterBuffers(many);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("at most 16"), std::string::npos) << s;
  EXPECT_EQ((*w)->registered_regions(), 2u);
  w->reset();
  // Read back: what the fixed writes put on disk is what the pools held.
  for (uint32_t part = 0; part < 2; ++part) {
    RecoveredPartition r = RecoverPartition({tmp.path(), {1, part}}, Opts());
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_FALSE(r.report.cut) << FormatReport(r.report);
    ASSERT_EQ(r.records.size(), 15u);
    EXPECT_EQ(Str(r.record(r.records[14])), Payload(14, 100));
  }
}

TEST(UringWriter, DurabilityNoneWritesNothingAndCompletesAtOnce) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  ASSERT_TRUE(w.ok());
  auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kNone, 0}, LogState{});
  ASSERT_TRUE(h.ok());
  prod.Batch(10);
  prod.Flush(**w, *h);
  EXPECT_EQ(prod.log.durable_end().value, 10u);
  EXPECT_EQ((*w)->stats().bytes, 0u);
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/1-0"));
}

TEST(UringWriter, SubmitIsIdempotentPerBatch) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  ASSERT_TRUE(w.ok());
  auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kWrite, 0}, LogState{});
  ASSERT_TRUE(h.ok());
  prod.Batch(4);
  prod.Batch(4);
  for (int i = 0; i < 3; ++i) {  // the shell offers every undurable batch every pass
    prod.log.ForEachUndurableBatch([&](const shard::SealedBatch& b) {
      EXPECT_EQ((*w)->Submit(*h, b), Errc::kOk);
    });
  }
  EXPECT_EQ((*w)->stats().batches, 2u);
  prod.Flush(**w, *h);
  EXPECT_EQ(prod.log.durable_end().value, 8u);
}

// Parameter: "/tmp" (O_DIRECT), "/dev/shm" (tmpfs), "buffered" (/tmp without O_DIRECT).
class Faults : public ::testing::TestWithParam<std::string> {
 protected:
  std::string Parent() const { return GetParam() == "buffered" ? "/tmp" : GetParam(); }
  WriterConfig Cfg(std::span<std::byte> region) const {
    WriterConfig c = Config(region);
    c.direct_io = GetParam() != "buffered";
    return c;
  }
};

TEST_P(Faults, WriteErrorFailsThePartitionForGoodAndOthersKeepServing) {
  TempDir tmp(Parent());
  Producer a, b;
  auto w = UringWriter::Create(Cfg({}));
  ASSERT_TRUE(w.ok());
  auto ha = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kDsync, 0}, LogState{});
  auto hb = (*w)->OpenPartition({tmp.path(), {1, 1}, shard::Durability::kDsync, 0}, LogState{});
  ASSERT_TRUE(ha.ok() && hb.ok());
  a.Batch(5);
  a.Flush(**w, *ha);
  ASSERT_EQ(a.log.durable_end().value, 5u);

  (*w)->InjectFaults({1, EIO, false});
  a.Batch(5);
  a.Batch(5);
  int failures = 0;
  for (int pass = 0; pass < 1000 && failures == 0; ++pass) {
    a.log.ForEachUndurableBatch([&](const shard::SealedBatch& s) { (*w)->Submit(*ha, s); });
    (*w)->Poll([&](const Completion& c) {
      if (c.errc == Errc::kStorageFailed) {
        ++failures;
        EXPECT_EQ(c.handle, *ha);
        EXPECT_EQ(c.durable.value, 5u);  // the good prefix stays durable; nothing after it
      } else if (c.handle == *ha) {
        a.log.MarkDurable(c.durable);
      }
    });
  }
  EXPECT_EQ(failures, 1);
  EXPECT_TRUE((*w)->failed(*ha));
  EXPECT_NE((*w)->failure(*ha).find("Input/output error"), std::string::npos) << (*w)->failure(*ha);
  EXPECT_EQ(a.log.durable_end().value, 5u);
  a.log.ForEachUndurableBatch([&](const shard::SealedBatch& s) {
    EXPECT_EQ((*w)->Submit(*ha, s), Errc::kStorageFailed);  // never retried-and-forgotten
  });
  for (int i = 0; i < 10; ++i) (*w)->Poll([&](const Completion& c) { ++failures; (void)c; });
  EXPECT_EQ(failures, 1);  // reported once
  // The other partition on the same ring keeps going.
  b.Batch(5);
  b.Flush(**w, *hb);
  EXPECT_EQ(b.log.durable_end().value, 5u);
  EXPECT_FALSE((*w)->failed(*hb));
}

TEST_P(Faults, EnospcFailsToo) {
  TempDir tmp(Parent());
  Producer a;
  auto w = UringWriter::Create(Cfg(a.pool.region()));
  ASSERT_TRUE(w.ok());
  auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kWrite, 0}, LogState{});
  ASSERT_TRUE(h.ok());
  (*w)->InjectFaults({1, ENOSPC, false});
  a.Batch(3);
  a.Flush(**w, *h);
  EXPECT_TRUE((*w)->failed(*h));
  EXPECT_EQ(a.log.durable_end().value, 0u);
}

TEST_P(Faults, EagainAndShortWritesAreRequeuedAndTheDataIsWhole) {
  TempDir tmp(Parent());
  Producer a;
  auto w = UringWriter::Create(Cfg(a.pool.region()));
  ASSERT_TRUE(w.ok());
  auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kDsync, 0}, LogState{});
  ASSERT_TRUE(h.ok());
  a.Batch(20, 500);  // 3 pages: a short write leaves a real remainder
  (*w)->InjectFaults({2, EAGAIN, false});
  a.Flush(**w, *h);
  a.Batch(20, 500);
  (*w)->InjectFaults({3, 0, true});
  a.Flush(**w, *h);
  ASSERT_FALSE((*w)->failed(*h)) << (*w)->failure(*h);
  EXPECT_EQ(a.log.durable_end().value, 40u);
  EXPECT_GE((*w)->stats().requeued, 4u);
  w->reset();
  RecoveredPartition r = RecoverPartition({tmp.path(), {1, 0}}, Opts());
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.report.cut) << FormatReport(r.report);
  ASSERT_EQ(r.records.size(), 40u);
  EXPECT_EQ(Str(r.record(r.records[39])), Payload(39, 500));
}

INSTANTIATE_TEST_SUITE_P(Paths, Faults, ::testing::Values("/tmp", "/dev/shm", "buffered"),
                         [](const auto& info) {
                           return info.param == "/tmp" ? std::string("direct")
                                  : info.param == "buffered" ? std::string("buffered")
                                                             : std::string("tmpfs");
                         });

TEST(UringWriter, ReopenAfterRecoveryContinuesTheLog) {
  TempDir tmp;
  {
    Producer prod;
    auto w = UringWriter::Create(Config(prod.pool.region()));
    auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kWrite, 0}, LogState{});
    ASSERT_TRUE(h.ok());
    for (int b = 0; b < 10; ++b) prod.Batch(5, 300);
    prod.Flush(**w, *h);
  }
  RecoveredPartition r = RecoverPartition({tmp.path(), {1, 0}, UINT64_MAX}, Opts());
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.log.next_offset, 50u);
  // A new engine log starting at 50 (the integration's job: here a log whose offsets we shift).
  Producer prod;
  for (int i = 0; i < 50; ++i) prod.log.Append(testing::Bytes("x"), 0);
  prod.log.Seal();
  prod.log.MarkDurable(shard::DurableOffset{50});
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kWrite, 0}, std::move(r.log));
  ASSERT_TRUE(h.ok()) << h.status();
  for (int b = 0; b < 10; ++b) prod.Batch(5, 300);
  prod.Flush(**w, *h);
  EXPECT_EQ(prod.log.durable_end().value, 100u);
  w->reset();
  RecoveredPartition again = RecoverPartition({tmp.path(), {1, 0}}, Opts());
  ASSERT_TRUE(again.status.ok());
  EXPECT_FALSE(again.report.cut) << FormatReport(again.report);
  ASSERT_EQ(again.records.size(), 100u);
  EXPECT_EQ(Str(again.record(again.records[99])), Payload(99, 300));
  EXPECT_EQ(Str(again.record(again.records[49])), Payload(49, 300));
}

TEST(UringWriter, RetentionRemovesWholeClosedSegments) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kWrite, 0}, LogState{});
  ASSERT_TRUE(h.ok());
  for (int b = 0; b < 200; ++b) prod.Batch(4, 200);  // 200 x 4 KiB = ~3 segments of 256 KiB
  prod.Flush(**w, *h);
  const size_t before = (*w)->log(*h).segments.size();
  ASSERT_GE(before, 3u);
  const uint64_t second_base = (*w)->log(*h).segments[1].base_offset;
  // Work queue: everything below second_base deleted -> the first segment goes.
  auto removed = (*w)->EnforceRetention(*h, {.keep_from_offset = second_base});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1u);
  EXPECT_EQ((*w)->log(*h).segments.front().base_offset, second_base);  // at once
  testing::Settle(**w);  // the unlinks and the directory fsync complete through the ring
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/1-0/00000000000000000000.log"));
  // Stream by size: keep at most one segment's worth; the active one always stays.
  removed = (*w)->EnforceRetention(*h, {.max_bytes = kSegment});
  ASSERT_TRUE(removed.ok());
  EXPECT_GE(*removed, 1u);
  EXPECT_LE((*w)->log(*h).bytes() - (*w)->log(*h).segments.front().end_position, kSegment);
  testing::Settle(**w);
  // By time: all closed segments are older than now - 1 ns.
  removed = (*w)->EnforceRetention(*h, {.max_age_ns = 1, .now_ns = UINT64_MAX / 2});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ((*w)->log(*h).segments.size(), 1u);
  testing::Settle(**w);
  EXPECT_EQ((*w)->stats().retention_removed, (*w)->stats().retention_queued);
  EXPECT_EQ((*w)->stats().retention_removed, before - 1);
  w->reset();
  RecoveredPartition r = RecoverPartition({tmp.path(), {1, 0}}, Opts());
  ASSERT_TRUE(r.status.ok());
  EXPECT_FALSE(r.report.cut);
  EXPECT_EQ(r.report.next_offset, 800u);
  EXPECT_EQ(r.records.front().offset, r.report.start_offset);
}

// Retention goes through the ring: exactly the segments asked for leave the log at once and
// their .log and .index files after the ring's unlinks; the directory fsync follows them; the
// active segment and the spare stay.
TEST(UringWriter, RetentionThroughTheRingRemovesExactlyTheOldestSegments) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kWrite, 0}, LogState{});
  ASSERT_TRUE(h.ok());
  for (int b = 0; b < 280; ++b) {
    prod.Batch(4, 200);  // 4 KiB batches, 64 per segment: 5 segments
    prod.Flush(**w, *h);
  }
  testing::Settle(**w);
  const std::vector<SegmentState> segs = (*w)->log(*h).segments;
  ASSERT_GE(segs.size(), 5u);
  auto pd = PartitionDir::Open(tmp.path(), {1, 0}, false);
  // Work queue: everything below segment 2's base is gone.
  auto removed = (*w)->EnforceRetention(*h, {.keep_from_offset = segs[2].base_offset});
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 2u);
  EXPECT_EQ((*w)->log(*h).segments.front().base_offset, segs[2].base_offset);
  EXPECT_EQ((*w)->log(*h).start_offset(), segs[2].base_offset);
  EXPECT_EQ((*w)->stats().retention_queued, 2u);
  // While the first removal is in flight, a second call queues nothing (no double unlink).
  EXPECT_EQ(*(*w)->EnforceRetention(*h, {.keep_from_offset = segs[3].base_offset}), 0u);
  const std::vector<Completion> done = testing::Settle(**w);
  for (const Completion& c : done) EXPECT_EQ(c.errc, Errc::kOk);
  EXPECT_EQ((*w)->stats().retention_removed, 2u);
  for (size_t i = 0; i < segs.size(); ++i) {
    const bool gone = i < 2;
    EXPECT_EQ(std::filesystem::exists(pd->LogPath(segs[i].base_offset)), !gone) << i;
    EXPECT_EQ(std::filesystem::exists(pd->IndexPath(segs[i].base_offset)), !gone) << i;
  }
  EXPECT_TRUE(std::filesystem::exists(pd->SparePath()));  // the next segment: not retention's
  EXPECT_FALSE((*w)->failed(*h));
  // The log goes on: more batches, and a fetch-free recovery finds exactly segments 2.. .
  prod.Batch(4, 200);
  prod.Flush(**w, *h);
  const uint64_t n = prod.log.durable_end().value;
  w->reset();
  RecoveredPartition r = RecoverPartition({tmp.path(), {1, 0}}, Opts());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.report.cut) << FormatReport(r.report);
  EXPECT_EQ(r.report.start_offset, segs[2].base_offset);
  EXPECT_EQ(r.report.next_offset, n);
  ASSERT_EQ(r.records.size(), n - segs[2].base_offset);
  EXPECT_EQ(Str(r.record(r.records.front())), Payload(segs[2].base_offset, 200));
}

// A failed directory fsync after retention's unlinks fails the partition like a failed write:
// reported once through Poll, said in failure(), every later Submit refused; the durable offset
// stays where it was and every acknowledged record that retention did not remove is recovered.
TEST(UringWriter, AFailedRetentionFsyncFailsThePartitionAndLosesNothingAcked) {
  TempDir tmp;
  Producer prod;
  auto w = UringWriter::Create(Config(prod.pool.region()));
  auto h = (*w)->OpenPartition({tmp.path(), {1, 0}, shard::Durability::kDsync, 0}, LogState{});
  ASSERT_TRUE(h.ok());
  for (int b = 0; b < 200; ++b) {
    prod.Batch(4, 200);
    prod.Flush(**w, *h);
  }
  testing::Settle(**w);
  const uint64_t acked = prod.log.durable_end().value;
  ASSERT_GE((*w)->log(*h).segments.size(), 3u);
  const uint64_t second_base = (*w)->log(*h).segments[1].base_offset;
  const uint64_t third_base = (*w)->log(*h).segments[2].base_offset;
  auto pd = PartitionDir::Open(tmp.path(), {1, 0}, false);
  // Two segments to remove; the directory fsync after the first one's unlink fails: the chain
  // stops there (the second segment's log is not unlinked: the log on disk stays contiguous).
  (*w)->InjectFaults({.count = 1, .error = EIO, .retention = true});
  auto removed = (*w)->EnforceRetention(*h, {.keep_from_offset = third_base});
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 2u);
  int failures = 0;
  for (const Completion& c : testing::Settle(**w)) failures += c.errc == Errc::kStorageFailed;
  EXPECT_EQ(failures, 1);
  EXPECT_TRUE((*w)->failed(*h));
  EXPECT_NE((*w)->failure(*h).find("retention: fsync directory"), std::string::npos)
      << (*w)->failure(*h);
  EXPECT_EQ((*w)->stats().retention_removed, 0u);  // not counted as done
  EXPECT_EQ((*w)->durable(*h).value, acked);
  EXPECT_FALSE(std::filesystem::exists(pd->LogPath(0)));
  EXPECT_TRUE(std::filesystem::exists(pd->LogPath(second_base)));
  prod.Batch(4, 200);
  prod.log.ForEachUndurableBatch([&](const shard::SealedBatch& b) {
    EXPECT_EQ((*w)->Submit(*h, b), Errc::kStorageFailed);
  });
  EXPECT_EQ(*(*w)->EnforceRetention(*h, {.keep_from_offset = UINT64_MAX - 1}), 0u);  // failed: no more
  w->reset();
  RecoveredPartition r = RecoverPartition({tmp.path(), {1, 0}}, Opts());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.report.cut) << FormatReport(r.report);
  EXPECT_EQ(r.report.start_offset, second_base);  // the first unlink ran, the second did not
  EXPECT_EQ(r.report.next_offset, acked);
  ASSERT_EQ(r.records.size(), acked - second_base);
  for (uint64_t i = second_base; i < acked; ++i) {
    ASSERT_EQ(Str(r.record(r.records[i - second_base])), Payload(i, 200)) << i;
  }
}

}  // namespace
}  // namespace sluice::storage
