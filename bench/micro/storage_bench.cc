// storage/: the append path (batch encode + CRC32C + io_uring write to the local disk) in
// ns/message and MB/s for 64 B and 1 KiB messages, CRC32C alone, and recovery in GB/s scanned.
// Each benchmark checks that it did what it claims (bytes reached the writer, everything became
// durable, recovery scanned the whole log), else it reports an error instead of a figure.
//
// The log lives under $SLUICE_BENCH_DIR (default /tmp) on whatever device that is; the figures
// are that device's, not an NVMe's. Say which when quoting them.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "dataplane/shard/chunk_pool.h"
#include "dataplane/shard/partition_log.h"
#include "storage/ack_log.h"
#include "storage/ack_ring.h"
#include "storage/batch_format.h"
#include "storage/crc32c.h"
#include "storage/recovery.h"
#include "storage/uring_writer.h"

namespace sluice::storage {
namespace {

constexpr uint32_t kChunkBytes = 256 << 10;  // the shard default: one batch at most per chunk
constexpr uint32_t kChunks = 256;
constexpr uint64_t kSegmentBytes = 64ull << 20;

struct BenchDir {
  BenchDir() {
    const char* env = std::getenv("SLUICE_BENCH_DIR");
    std::string tmpl = std::string(env != nullptr ? env : "/tmp") + "/sluice-storage-bench-XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~BenchDir() { std::filesystem::remove_all(path); }
  std::string path;
};

shard::LogConfig LogCfg() {
  shard::LogConfig c;
  c.indexed = false;  // work-queue style: a chunk goes once its batch is durable
  c.max_chunks = kChunks;
  c.batch_align_bytes = 4096;
  c.batch_header_bytes = 64;
  return c;
}

void BM_Crc32c(benchmark::State& state) {
  std::vector<std::byte> data(static_cast<size_t>(state.range(0)), std::byte{0x5a});
  uint32_t crc = 0;
  for (auto _ : state) {
    crc = Crc32c(data, crc);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * state.range(0));
}
BENCHMARK(BM_Crc32c)->Arg(4096)->Arg(256 << 10);

// range(0): message bytes; range(1): durability (1 write, 2 dsync); range(2): 1 = write to disk,
// 0 = encode only (the CPU part of the path: copy into the batch, seal, header + CRC).
void BM_AppendPath(benchmark::State& state) {
  const size_t msg = static_cast<size_t>(state.range(0));
  const auto mode = static_cast<shard::Durability>(state.range(1));
  const bool io = state.range(2) != 0;
  BenchDir dir;
  shard::ChunkPool pool(kChunkBytes, kChunks, 4096, {});
  std::vector<shard::RecordLocation> live;
  live.reserve(1 << 20);
  shard::PartitionLog log(pool, LogCfg());
  WriterConfig wc;
  wc.segment_bytes = kSegmentBytes;
  wc.buffers = pool.region();
  auto writer = UringWriter::Create(wc);
  auto h = (*writer)->OpenPartition({dir.path, {1, 0}, mode, 1}, LogState{});
  if (!h.ok()) {
    state.SkipWithError(h.status().ToString().c_str());
    return;
  }
  const std::string payload(msg, 'x');
  const auto record = std::span<const std::byte>(reinterpret_cast<const std::byte*>(payload.data()), msg);
  // One batch per iteration: as many messages as fill a chunk (group commit at batch_bytes).
  const uint32_t per_batch = static_cast<uint32_t>((kChunkBytes - 64) / (msg + sizeof(shard::RecordHeader)));
  uint64_t messages = 0, now = 1;
  auto release = [&](uint64_t durable) {
    log.MarkDurable(shard::DurableOffset{durable});
    size_t i = 0;
    for (; i < live.size() && messages - live.size() + i < durable; ++i) log.Release(live[i]);
    live.erase(live.begin(), live.begin() + static_cast<ptrdiff_t>(i));
  };
  // Until every sealed batch is durable: offer, wait, repeat (a batch refused as kThrottled
  // is offered again).
  auto settle = [&] {
    while (log.durable_end().value < log.sealed_end().value && !(*writer)->failed(*h)) {
      log.ForEachUndurableBatch([&](const shard::SealedBatch& b) { (*writer)->Submit(*h, b); });
      (*writer)->Drain([&](const Completion& c) { release(c.durable.value); });
    }
  };
  for (auto _ : state) {
    for (uint32_t i = 0; i < per_batch; ++i) {
      auto a = log.Append(record, ++now);
      if (a.errc != Errc::kOk) {  // memory full: wait for the device
        settle();
        a = log.Append(record, now);
        if (a.errc != Errc::kOk) {
          state.SkipWithError("log full even with everything durable");
          return;
        }
      }
      live.push_back(a.location);
      ++messages;
    }
    log.Seal();
    if (io) {
      log.ForEachUndurableBatch([&](const shard::SealedBatch& b) { (*writer)->Submit(*h, b); });
      (*writer)->Poll([&](const Completion& c) { release(c.durable.value); });
    } else {
      log.ForEachUndurableBatch([&](const shard::SealedBatch& b) { EncodeBatch(b, {1, 0}, 1); });
      release(log.sealed_end().value);
    }
    if ((*writer)->log(*h).segments.size() > 4) {
      (void)(*writer)->EnforceRetention(*h, {.max_bytes = 2 * kSegmentBytes});
    }
  }
  if (io) {
    settle();
    if (log.durable_end().value != messages || (*writer)->stats().bytes == 0) {
      state.SkipWithError("not everything reached the device");
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(messages));
  state.SetBytesProcessed(static_cast<int64_t>(messages * msg));
  state.counters["ns/msg"] = benchmark::Counter(static_cast<double>(messages),
                                                benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["direct"] = (*writer)->direct_io(*h) ? 1 : 0;
  state.counters["submits"] = static_cast<double>((*writer)->stats().submits);
}
BENCHMARK(BM_AppendPath)
    ->ArgNames({"msg_bytes", "durability", "io"})
    ->Args({64, 1, 0})->Args({1024, 1, 0})
    ->Args({64, 1, 1})->Args({1024, 1, 1})
    ->Args({64, 2, 1})->Args({1024, 2, 1})
    ->UseRealTime()->MinTime(1.0);

// Recovery of one partition's 256 MiB log (4 segments), read with O_DIRECT: GB/s scanned.
void BM_Recovery(benchmark::State& state) {
  BenchDir dir;
  {
    shard::ChunkPool pool(kChunkBytes, kChunks, 4096, {});
    shard::PartitionLog log(pool, LogCfg());
    std::vector<shard::RecordLocation> live;
    WriterConfig wc;
    wc.segment_bytes = kSegmentBytes;
    wc.buffers = pool.region();
    auto writer = UringWriter::Create(wc);
    auto h = (*writer)->OpenPartition({dir.path, {1, 0}, shard::Durability::kWrite, 1}, LogState{});
    const std::string payload(1024, 'r');
    const auto record = std::span<const std::byte>(reinterpret_cast<const std::byte*>(payload.data()), 1024);
    uint64_t released = 0;
    while ((*writer)->stats().bytes < 4 * kSegmentBytes - kChunkBytes * 2) {
      while (true) {
        auto a = log.Append(record, 1);
        if (a.errc != Errc::kOk) break;
        live.push_back(a.location);
      }
      log.Seal();
      log.ForEachUndurableBatch([&](const shard::SealedBatch& b) { (*writer)->Submit(*h, b); });
      (*writer)->Drain([&](const Completion& c) {
        log.MarkDurable(c.durable);
        for (; released < c.durable.value; ++released) log.Release(live[released]);
      });
    }
  }
  RecoveryOptions o;
  o.segment_bytes = kSegmentBytes;
  uint64_t bytes = 0;
  for (auto _ : state) {
    RecoveredPartition r = RecoverPartition({dir.path, {1, 0}, UINT64_MAX}, o);
    if (!r.status.ok() || r.report.cut || r.report.bytes_scanned < 3 * kSegmentBytes) {
      state.SkipWithError("recovery did not scan the whole clean log");
      return;
    }
    bytes += r.report.bytes_scanned;
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_Recovery)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);

// The segment roll as the lcore sees it: the time of the one Submit that does not fit the active
// segment and opens the next, with everything else (filling the segment with 1 MiB batches,
// waiting for them) outside the timing. range(0): segment MiB; range(1): 1 = spares prepared
// ahead (the default), 0 = every roll creates its segment on the lcore (the blocking path, as
// before spares). `prepared` / `blocking` count the rolls that found a spare segment ready /
// created one on the spot; `plain_submit_us` is a Submit that does not roll, for reference.
void BM_Roll(benchmark::State& state) {
  const uint64_t seg = static_cast<uint64_t>(state.range(0)) << 20;
  constexpr uint32_t kBatch = 1 << 20;
  BenchDir dir;
  WriterConfig wc;
  wc.segment_bytes = seg;
  wc.prepare_spares = state.range(1) != 0;
  auto writer = UringWriter::Create(wc);
  auto h = (*writer)->OpenPartition({dir.path, {1, 0}, shard::Durability::kWrite, 1}, LogState{});
  if (!h.ok()) {
    state.SkipWithError(h.status().ToString().c_str());
    return;
  }
  AlignedBuffer buf(kBatch);
  uint64_t next = 0;
  auto submit = [&]() {
    shard::SealedBatch b;
    b.bytes = buf.span();
    b.header_bytes = 64;
    b.used_bytes = 128;
    b.first_offset = next;
    b.count = 1;
    b.first_timestamp_ns = b.last_timestamp_ns = next + 1;
    const Errc e = (*writer)->Submit(*h, b);
    if (e == Errc::kOk) ++next;
    return e;
  };
  auto drain = [&] { (*writer)->Drain([](const Completion&) {}); };
  const uint64_t per_segment = seg / kBatch;
  double plain_s = 0;  // the same Submit when it does not roll, for reference
  uint64_t plain = 0;
  for (auto _ : state) {
    // Fill the active segment to its end (the first pass also fills segment 0).
    do {
      const auto p0 = std::chrono::steady_clock::now();
      if (submit() != Errc::kOk) {
        state.SkipWithError("a filling submit failed");
        return;
      }
      plain_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - p0).count();
      ++plain;
      drain();
    } while (next % per_segment != 0);
    const auto t0 = std::chrono::steady_clock::now();
    const Errc e = submit();  // does not fit: rolls
    const auto t1 = std::chrono::steady_clock::now();
    if (e != Errc::kOk || (*writer)->failed(*h)) {
      state.SkipWithError("the rolling submit failed");
      return;
    }
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    drain();
    (void)(*writer)->EnforceRetention(*h, {.max_bytes = 2 * seg});
  }
  const WriterStats& st = (*writer)->stats();
  if (st.rolls < static_cast<uint64_t>(state.iterations())) state.SkipWithError("fewer rolls than iterations");
  state.counters["rolls"] = static_cast<double>(st.rolls);
  state.counters["prepared"] = static_cast<double>(st.rolls_prepared);
  state.counters["blocking"] = static_cast<double>(st.rolls_blocking);
  state.counters["plain_submit_us"] = plain > 0 ? plain_s * 1e6 / static_cast<double>(plain) : 0;
}
BENCHMARK(BM_Roll)->ArgNames({"segment_MiB", "spares"})
    ->Args({64, 0})->Args({64, 1})->Args({256, 0})->Args({256, 1})->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(12);

// Retention as the lcore sees it: the time of the EnforceRetention call that removes the two
// oldest closed segments (1 MiB each, written with 256 KiB batches), everything else outside the
// timing. `complete_us`: wall time until the removal is durable (unlinks + directory fsync; with
// the ring, the Drain that follows the call).
void BM_Retention(benchmark::State& state) {
  constexpr uint64_t kSeg = 1 << 20;
  constexpr uint32_t kBatch = 256 << 10;
  BenchDir dir;
  WriterConfig wc;
  wc.segment_bytes = kSeg;
  auto writer = UringWriter::Create(wc);
  auto h = (*writer)->OpenPartition({dir.path, {1, 0}, shard::Durability::kWrite, 1}, LogState{});
  if (!h.ok()) {
    state.SkipWithError(h.status().ToString().c_str());
    return;
  }
  AlignedBuffer buf(kBatch);
  uint64_t next = 0;
  auto drain = [&] { (*writer)->Drain([](const Completion&) {}); };
  double complete_s = 0;
  uint64_t removed = 0;
  for (auto _ : state) {
    // Two closed segments and an active one (a roll may wait for its spare: retried).
    const auto fill_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while ((*writer)->log(*h).segments.size() < 3) {
      shard::SealedBatch b;
      b.bytes = buf.span();
      b.header_bytes = 64;
      b.used_bytes = 128;
      b.first_offset = next;
      b.count = 1;
      b.first_timestamp_ns = b.last_timestamp_ns = next + 1;
      const Errc e = (*writer)->Submit(*h, b);
      if (e == Errc::kOk) ++next;
      if ((e != Errc::kOk && e != Errc::kThrottled) ||
          std::chrono::steady_clock::now() > fill_deadline) {
        state.SkipWithError("a filling submit failed");
        return;
      }
      drain();
    }
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<uint32_t> n = (*writer)->EnforceRetention(*h, {.max_bytes = 1});
    const auto t1 = std::chrono::steady_clock::now();
    drain();
    const auto t2 = std::chrono::steady_clock::now();
    if (!n.ok() || *n != 2 || (*writer)->failed(*h)) {
      state.SkipWithError("retention did not remove two segments");
      return;
    }
    removed += *n;
    state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    complete_s += std::chrono::duration<double>(t2 - t0).count();
  }
  state.counters["removed"] = static_cast<double>(removed);
  state.counters["complete_us"] = complete_s * 1e6 / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Retention)->UseManualTime()->Unit(benchmark::kMicrosecond)->Iterations(12);

// The ack log under test writes through a ring of its own (the lcore's path since session 7);
// false, with the benchmark skipped, when no ring can be made.
bool AttachAckRing(benchmark::State& state, AckLog& log, std::unique_ptr<AckRing>* r) {
  auto made = AckRing::Create(AckRingConfig{});
  if (!made.ok()) {
    state.SkipWithError(std::string(made.status().message()).c_str());
    return false;
  }
  *r = std::move(*made);
  log.Attach(r->get(), 0);
  return true;
}

// The lcore's time per loop pass spent writing a partition's ack log (`deletes` entries per pass,
// 16 B each), the way StorageShell::FlushAcks does it: arg ring=0 the blocking buffered pwrite
// (before), ring=1 a write prepared on the ack ring and submitted + reaped without blocking
// (after: the kernel's work for it runs at submit or in its io-wq, outside the lcore's pass only
// when it is punted there). Wall time per pass, so the kernel's share done inside the submit call
// counts. `waits` counts passes that found both buffers full (the disk behind); expected 0.
void BM_AckFlush(benchmark::State& state) {
  const uint32_t deletes = static_cast<uint32_t>(state.range(0));
  const bool ring = state.range(1) != 0;
  BenchDir dir;
  const std::string path = dir.path + "/acks.log";
  auto log = AckLog::Open(dir.path, path, AckState{});
  if (!log.ok()) {
    state.SkipWithError(std::string(log.status().message()).c_str());
    return;
  }
  std::unique_ptr<AckRing> r;
  if (ring && !AttachAckRing(state, *log, &r)) return;
  uint64_t offset = 0;
  uint64_t waits = 0;
  bool failed = false;
  auto on_failed = [&](AckLog&) { failed = true; };
  for (auto _ : state) {
    for (uint32_t i = 0; i < deletes; ++i) {
      if (!log->Delete(offset)) {
        if (ring) {
          log->StartFlush();
          ++waits;
          r->Wait(*log, on_failed);
        } else {
          (void)log->Flush();
        }
        (void)log->Delete(offset);
      }
      ++offset;
    }
    if (ring) {
      log->StartFlush();
      r->Poll(on_failed);
    } else if (!log->Flush().ok()) {
      failed = true;
    }
  }
  if (ring) {
    for (int i = 0; i < 100 && log->busy(); ++i) {
      log->StartFlush();
      r->Drain(on_failed);
    }
  }
  if (failed || log->file_bytes() != 16 + offset * 16) {
    state.SkipWithError("the ack log does not hold every entry");
    return;
  }
  state.counters["waits"] = static_cast<double>(waits);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * deletes);
}
BENCHMARK(BM_AckFlush)->ArgNames({"deletes", "ring"})
    ->Args({16, 0})->Args({16, 1})->Args({256, 0})->Args({256, 1})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();

// A purge's mark, as StorageShell::Purged writes it: ring=0 a blocking pwrite + fdatasync on the
// lcore (before), ring=1 a write with a linked fdatasync prepared on the ack ring, submitted and
// reaped without waiting (after; the control thread waits for the sync, not the lcore). The lcore's
// wall time per purge; `synced` checks every mark reached the disk by the end.
void BM_AckPurge(benchmark::State& state) {
  const bool ring = state.range(0) != 0;
  BenchDir dir;
  auto log = AckLog::Open(dir.path, dir.path + "/acks.log", AckState{});
  if (!log.ok()) {
    state.SkipWithError(std::string(log.status().message()).c_str());
    return;
  }
  std::unique_ptr<AckRing> r;
  if (ring && !AttachAckRing(state, *log, &r)) return;
  bool failed = false;
  auto on_failed = [&](AckLog&) { failed = true; };
  uint64_t below = 0;
  for (auto _ : state) {
    (void)log->DeletedBelow(++below);
    if (ring) {
      log->StartFlush(/*sync=*/true);
      r->Poll(on_failed);
    } else if (!log->Flush(/*sync=*/true).ok()) {
      failed = true;
    }
  }
  if (ring) {
    for (int i = 0; i < 100 && log->busy(); ++i) {
      log->StartFlush();
      r->Drain(on_failed);
    }
    state.counters["syncs"] = static_cast<double>(r->stats().syncs);
  }
  if (failed || (ring && log->syncs_done() != log->syncs_requested())) {
    state.SkipWithError("a purge mark was not synced");
  }
}
BENCHMARK(BM_AckPurge)->ArgNames({"ring"})->Arg(0)->Arg(1)
    ->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(0.5);

}  // namespace
}  // namespace sluice::storage

BENCHMARK_MAIN();
