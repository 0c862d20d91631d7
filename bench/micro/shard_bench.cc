// Shard engine micro-benchmarks (dataplane/shard): the per-message costs of the queue engine with
// no I/O: a work-queue send+receive+delete cycle at 1k, 1M and 10M messages in flight, stream append
// (64 B and 1 KiB, plain and idempotent producer) including seal + durable + ack, the worker's
// pass over an in-memory stream (BM_WorkerPass: appends + SealDue + MarkDurable + Tick + Flush as
// dataplane/frontend.cc calls them), and the timer
// wheel's insert+cancel and insert+expire. Time per iteration is ns per message (or per timer).
//
// The shell's cadence is modelled: one SealBatch + MarkDurable (durability `none`) + Flush per
// kBatch messages, as a loop pass would. Each benchmark checks the engine's counters afterwards
// and reports an error if it did not do the work it claims (STYLE: benchmarks that cannot lie).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/shard/shard.h"
#include "dataplane/shard/timer_wheel.h"

namespace ss = sluice::shard;
using sluice::Errc;

namespace {

constexpr uint32_t kBatch = 32;  // messages per loop pass (seal + durable + flush)
constexpr ss::QueueId kQ{1};

// Counts events; keeps the last receipt so the cycle can delete what it received.
struct BenchSink final : ss::ShardSink {
  uint64_t acks = 0, acked_messages = 0, delivered = 0, leased = 0, done = 0, dead = 0;
  ss::Receipt last_receipt;
  void OnAck(const ss::AckRange& a) override { ++acks; acked_messages += a.count; }
  void OnDeliver(const ss::Delivery&) override { ++delivered; }
  void OnSubscriptionGap(const ss::SubscriptionGap&) override {}
  void OnLeased(const ss::Leased& l) override {
    ++leased;
    last_receipt = l.receipt;
  }
  void OnReceiveDone(const ss::ReceiveDone&) override { ++done; }
  void OnDeadLetter(const ss::DeadLetter&) override { ++dead; }
};

double Ns(const timeval& t) { return t.tv_sec * 1e9 + t.tv_usec * 1e3; }

void MakeDurable(ss::Shard& shard) {
  shard.SealBatch(kQ, 0);
  shard.MarkDurable(kQ, 0, ss::DurableOffset{shard.Find(kQ, 0)->log().sealed_end().value});
  shard.Flush();
}

// A work queue holding `in_flight` durable, ready messages: the state BM_WorkCycle runs in.
// Built once per depth and kept across the benchmark's runs (Google Benchmark calls the function
// once per trial iteration count, ~8 times for one reported figure): a cycle leaves the depth as
// it found it, and filling 10 M messages takes seconds each time, which made the 10 M case take
// half a minute and measure nothing more.
struct WorkCycleFixture {
  explicit WorkCycleFixture(uint32_t depth) : in_flight(depth), shard(Config(depth), &sink) {}
  static ss::ShardConfig Config(uint32_t depth) {
    ss::ShardConfig sc;
    // Steady state: one 4 KiB-aligned batch per kBatch messages, 2048 messages per 256 KiB chunk.
    sc.pool_chunks = depth / 2048 + 64;
    // As a long-running shard would be: no page fault on the message path. Without it the chunks
    // the fill did not reach fault in during the timed loop (10 M: ~70 THP faults, half the time).
    sc.prefault_pool = true;
    return sc;
  }
  // Empty on success, else why not.
  std::string Fill(const ss::MessageIn& m, uint64_t now) {
    ss::QueueConfig qc;
    qc.type = ss::QueueType::kWork;
    qc.max_messages = in_flight + 2 * kBatch;
    qc.memory_budget_chunks = Config(in_flight).pool_chunks;
    qc.max_message_bytes = 1024;
    if (shard.AddPartition(kQ, 0, qc) != Errc::kOk) return "AddPartition failed";
    for (uint32_t i = 0; i < in_flight; ++i) {
      if (shard.Append({1, 1, 1}, kQ, m, now).errc != Errc::kOk) return "prefill throttled";
      if (i % 1024 == 1023) MakeDurable(shard);
    }
    MakeDurable(shard);
    return {};
  }
  const uint32_t in_flight;
  BenchSink sink;  // before the shard, which points to it
  ss::Shard shard;
};

// Work queue: Send (append + durable in batches) + Receive 1 + Delete, with `in_flight` other
// messages queued ahead, so the structures are at that size throughout. Everything per cycle is
// the engine's: the sink only counts and keeps the last receipt (no per-message memory of its
// own), the payload is one 64 B buffer.
void BM_WorkCycle(benchmark::State& state) {
  static std::unique_ptr<WorkCycleFixture> fixture;  // one depth at a time (10 M: ~2.5 GB)
  const uint32_t in_flight = static_cast<uint32_t>(state.range(0));
  const std::string payload(64, 'w');
  ss::MessageIn m;
  m.record = {reinterpret_cast<const std::byte*>(payload.data()), payload.size()};
  const uint64_t now = 1'000'000'000;
  if (fixture == nullptr || fixture->in_flight != in_flight) {
    fixture.reset();  // free the previous depth's memory first
    fixture = std::make_unique<WorkCycleFixture>(in_flight);
    if (const std::string error = fixture->Fill(m, now); !error.empty()) {
      fixture.reset();
      state.SkipWithError(error.c_str());
      return;
    }
  }
  ss::Shard& shard = fixture->shard;
  BenchSink& sink = fixture->sink;
  const ss::ShardCounters before = shard.counters();
  rusage ru0{}, ru1{};
  getrusage(RUSAGE_SELF, &ru0);
  uint32_t pass = 0;
  for (auto _ : state) {
    shard.Append({1, 1, 1}, kQ, m, now);
    if (++pass == kBatch) {
      pass = 0;
      MakeDurable(shard);
    }
    shard.Receive({2, 2, 2}, kQ, 0, {1, 30'000, 0}, now);
    shard.Delete(kQ, 0, sink.last_receipt, now);
  }
  getrusage(RUSAGE_SELF, &ru1);
  MakeDurable(shard);
  const ss::ShardCounters& c = shard.counters();
  const uint64_t n = static_cast<uint64_t>(state.iterations());
  // The CPU time includes the kernel's: page faults in the loop (a first touch of pool memory)
  // showed up only there, as half of the 10 M figure. Reported so that it cannot hide again.
  state.counters["faults"] = static_cast<double>(ru1.ru_minflt - ru0.ru_minflt);
  state.counters["sys_ns"] = (Ns(ru1.ru_stime) - Ns(ru0.ru_stime)) / static_cast<double>(n);
  if (c.appended - before.appended != n || c.leases - before.leases != n ||
      c.deleted - before.deleted != n || c.throttled != 0 ||
      shard.Find(kQ, 0)->work()->Stats().ready != in_flight) {
    state.SkipWithError("did not send+receive+delete every iteration at constant depth");
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["in_flight"] = in_flight;
}
BENCHMARK(BM_WorkCycle)->Arg(1'000)->Arg(1'000'000)->Arg(10'000'000)->ArgName("in_flight");

// Stream append, steady state: the pool is full, retention drops the oldest durable chunk.
struct AppendVariant {
  size_t payload_bytes;
  bool idempotent;
};
constexpr AppendVariant kAppendVariants[] = {{64, false}, {64, true}, {1024, false}, {1024, true}};

void BM_StreamAppend(benchmark::State& state) {
  const AppendVariant v = kAppendVariants[state.range(0)];
  const std::string payload(v.payload_bytes, 's');
  ss::ShardConfig sc;
  sc.pool_chunks = 64;
  BenchSink sink;
  ss::Shard shard(sc, &sink);
  ss::QueueConfig qc;
  qc.type = ss::QueueType::kStream;
  qc.memory_budget_chunks = 32;
  qc.max_messages = 1 << 20;
  qc.max_message_bytes = 4096;
  if (shard.AddPartition(kQ, 0, qc) != Errc::kOk) {
    state.SkipWithError("AddPartition failed");
    return;
  }
  ss::MessageIn m;
  m.record = {reinterpret_cast<const std::byte*>(payload.data()), payload.size()};
  m.producer_id = v.idempotent ? 42 : 0;
  uint64_t now = 1'000'000'000;
  uint32_t pass = 0;
  for (auto _ : state) {
    shard.Append({1, 1, 1}, kQ, m, now);
    ++m.sequence;
    if (++pass == kBatch) {
      pass = 0;
      MakeDurable(shard);
      now += 1000;
    }
  }
  MakeDurable(shard);
  const ss::ShardCounters& c = shard.counters();
  const uint64_t n = static_cast<uint64_t>(state.iterations());
  if (c.appended != n || c.throttled != 0 || sink.acked_messages != n) {
    state.SkipWithError("not every message was appended and acked");
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(v.payload_bytes));
  state.counters["acks_per_msg"] = benchmark::Counter(static_cast<double>(sink.acks) / n);
  state.SetLabel(std::to_string(v.payload_bytes) + "B" + (v.idempotent ? "/idempotent" : ""));
}
BENCHMARK(BM_StreamAppend)->DenseRange(0, std::size(kAppendVariants) - 1);

// The worker's pass over an in-memory stream, as the frontend drives it (dataplane/frontend.cc,
// `Frontend::Impl::Service`): `per_pass` single-message Appends (one 64 B message per PRODUCE
// frame), then SealDue with the in-memory predicate, MarkDurable(sealed end, now) of what was
// sealed, Tick and Flush. The shard is configured as `EngineShardConfig` configures it (64 B
// alignment for in-memory batches, the three histograms, the prefaulted pool) and the queue as
// `ConfigOf` does (a stream, 64 chunks of budget, 65 536 index entries: in steady state every
// append past the index's end evicts the oldest chunk). Producer id 0 with a fixed sequence (a
// replayed frame: every ack a range of its own, the worst case for the ack path) or numbered
// sequences ("idempotent": one range per pass; sluice-loadgen --produce-flood numbers its
// producer-0 messages too, so the flood's acks are of this shape).
// The pass is one noinline function, so that callgrind can count it alone
// (--toggle-collect='(anonymous namespace)::WorkerPass(*'; docs/benchmarks.md, shard
// micro-benchmarks, session 9).
struct PassVariant {
  uint32_t per_pass;
  bool idempotent;
};
constexpr PassVariant kPassVariants[] = {{32, false}, {32, true}, {1, false}, {1, true}};

struct PassHistograms {
  ss::AckLatencyHistogram ack_latency_ns;
  ss::BatchBytesHistogram batch_bytes;
  ss::BatchMessagesHistogram batch_messages;
};

[[gnu::noinline]] void WorkerPass(ss::Shard& shard, ss::MessageIn& m, uint32_t per_pass,
                                  bool idempotent, uint64_t now) {
  const ss::ReplyTarget target{1, 1, 0};  // produce acks carry no request id
  for (uint32_t i = 0; i < per_pass; ++i) {
    shard.Append(target, kQ, m, now);
    if (idempotent) ++m.sequence;
  }
  shard.SealDue([](const ss::Partition&) { return true; },
                [&](const ss::Partition& pt) {
                  shard.MarkDurable(pt.queue(), pt.index(),
                                    ss::DurableOffset{pt.log().sealed_end().value}, now);
                });
  shard.Tick(now);
  shard.Flush();
}

void BM_WorkerPass(benchmark::State& state) {
  const PassVariant v = kPassVariants[state.range(0)];
  const std::string payload(108, 'p');  // a 64 B message's record: 44 B of fields + payload
  PassHistograms h;
  ss::ShardConfig sc;
  sc.chunk_bytes = 256 * 1024;
  sc.pool_chunks = 256;
  sc.prefault_pool = true;
  sc.batch_align_bytes = 4096;
  sc.memory_batch_align_bytes = 64;
  sc.batch_header_bytes = 64;
  sc.ack_latency_ns = &h.ack_latency_ns;
  sc.batch_bytes = &h.batch_bytes;
  sc.batch_messages = &h.batch_messages;
  BenchSink sink;
  ss::Shard shard(sc, &sink);
  ss::QueueConfig qc;
  qc.type = ss::QueueType::kStream;
  qc.durability = ss::Durability::kNone;
  qc.max_message_bytes = 64 * 1024;
  qc.memory_budget_chunks = 64;
  if (shard.AddPartition(kQ, 0, qc) != Errc::kOk) {
    state.SkipWithError("AddPartition failed");
    return;
  }
  ss::MessageIn m;
  m.record = {reinterpret_cast<const std::byte*>(payload.data()), payload.size()};
  m.body = m.record.subspan(44);
  m.producer_id = v.idempotent ? 42 : 0;
  uint64_t now = 1'000'000'000;
  for (auto _ : state) {
    WorkerPass(shard, m, v.per_pass, v.idempotent, now);
    now += 3'000;  // a pass of 32 frames takes ~3 us: the 1 ms timer tick turns every ~330 passes
  }
  const ss::ShardCounters& c = shard.counters();
  const uint64_t n = static_cast<uint64_t>(state.iterations()) * v.per_pass;
  const ss::Partition* p = shard.Find(kQ, 0);
  if (c.appended != n || c.throttled != 0 || sink.acked_messages != n ||
      p->log().durable_end().value != n || p->pending_acks() != 0) {
    state.SkipWithError("not every message was appended, made durable and acked");
  }
  state.SetItemsProcessed(static_cast<int64_t>(n));
  // CPU ns per message (kInvert: seconds per unit; the unit is 1e-9 of a message).
  state.counters["ns_per_msg"] =
      benchmark::Counter(static_cast<double>(n) * 1e-9,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["acks_per_msg"] = benchmark::Counter(static_cast<double>(sink.acks) / n);
  std::string label = std::to_string(v.per_pass);  // not "x" + ...: GCC 12's -Wrestrict misfires
  label.insert(label.begin(), 'x');
  label.append(v.idempotent ? "/idempotent" : "/producer0");
  state.SetLabel(label);
}
BENCHMARK(BM_WorkerPass)->DenseRange(0, std::size(kPassVariants) - 1);

struct Noop final : ss::TimerClient {
  uint64_t fired = 0;
  void OnTimer(ss::TimerNode*) override { ++fired; }
};

// Insert at a random deadline up to ~30 s (ticks of 1 ms) ahead, then cancel: the lease that is
// deleted before it expires, the common case.
void BM_TimerInsertCancel(benchmark::State& state) {
  ss::TimerWheel wheel(1'000'000);
  std::vector<ss::TimerNode> nodes(4096);
  std::vector<uint64_t> ahead(nodes.size());
  std::mt19937_64 rng(1);
  for (auto& a : ahead) a = 1 + rng() % 30'000;
  // Keep a standing population so inserts land in populated slots.
  std::vector<ss::TimerNode> standing(100'000);
  for (auto& n : standing) wheel.Insert(&n, wheel.now() + 1 + rng() % 30'000);
  size_t i = 0;
  for (auto _ : state) {
    ss::TimerNode& n = nodes[i];
    wheel.Insert(&n, wheel.now() + ahead[i]);
    wheel.Cancel(&n);
    i = (i + 1) & (nodes.size() - 1);
  }
  if (wheel.size() != standing.size()) state.SkipWithError("wheel population changed");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerInsertCancel);

// Insert N timers spread over ~30 s, then advance 1 ms at a time until all fired: per timer cost
// of insert + cascade + expire.
void BM_TimerInsertExpire(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<ss::TimerNode> nodes(n);
  std::vector<uint64_t> ahead(n);
  std::mt19937_64 rng(2);
  for (auto& a : ahead) a = 1 + rng() % 30'000;
  Noop client;
  for (auto& node : nodes) node.client = &client;
  uint64_t fired = 0;
  for (auto _ : state) {
    ss::TimerWheel wheel(1'000'000);
    for (size_t k = 0; k < n; ++k) wheel.Insert(&nodes[k], wheel.now() + ahead[k]);
    for (uint64_t t = wheel.now() + 1; wheel.size() != 0; ++t) {
      fired += wheel.Advance(t, [](ss::TimerNode* node) { node->client->OnTimer(node); });
    }
  }
  if (fired != n * state.iterations() || client.fired != fired) {
    state.SkipWithError("not every timer fired");
  }
  state.SetItemsProcessed(static_cast<int64_t>(n) * state.iterations());
}
BENCHMARK(BM_TimerInsertExpire)->Arg(100'000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
