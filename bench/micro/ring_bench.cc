// The hand-off between lcores (dataplane/worker.cc): one single-producer/single-consumer rte_ring
// per (from, to) worker pair, pointers (mbufs) moved in bursts. Measured here in ns/message and
// messages/s:
//
//   BM_RingHandoff/burst   the benchmark thread enqueues bursts (SP), a second thread dequeues them
//                          (SC) as a peer worker would: the cross-core cost, cache lines bouncing
//                          included. The consumer is pinned to another CPU than the producer when
//                          the machine has one (on a 2-CPU machine shared with builds, read the
//                          figure as an upper bound of the cost).
//   BM_RingSameThread      enqueue then dequeue the same burst on one thread: the ring's own
//                          instruction cost without any cache line transfer.
//
// The ring is made with rte_ring_init on memory of our own: no EAL (no hugepages, no root), the
// same enqueue/dequeue code the dataplane runs (they are inline functions of rte_ring.h).
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include <rte_ring.h>

namespace {

constexpr unsigned kRingSize = 1024;  // hwconf [dataplane] ring_size default

struct Ring {
  Ring() {
    const ssize_t bytes = rte_ring_get_memsize(kRingSize);
    mem = std::aligned_alloc(64, static_cast<size_t>((bytes + 63) / 64 * 64));
    r = static_cast<rte_ring*>(mem);
    if (rte_ring_init(r, "bench", kRingSize, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) std::abort();
  }
  ~Ring() { std::free(mem); }
  void* mem;
  rte_ring* r;
};

void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void BM_RingHandoff(benchmark::State& state) {
  const unsigned burst = static_cast<unsigned>(state.range(0));
  Ring ring;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> consumed{0};
  const unsigned cpus = std::thread::hardware_concurrency();
  std::thread consumer([&] {
    if (cpus >= 2) Pin(1);
    void* objs[64];
    uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      n += rte_ring_sc_dequeue_burst(ring.r, objs, 64, nullptr);
      // Touch what arrived, as a worker reads the mbuf it is handed.
      benchmark::DoNotOptimize(objs[0]);
    }
    n += rte_ring_sc_dequeue_burst(ring.r, objs, 64, nullptr);
    consumed.store(n, std::memory_order_relaxed);
  });
  if (cpus >= 2) Pin(0);
  std::vector<void*> objs(burst);
  for (unsigned i = 0; i < burst; ++i) objs[i] = reinterpret_cast<void*>(uintptr_t{i + 1} * 64);
  uint64_t produced = 0, full = 0;
  for (auto _ : state) {
    unsigned done = 0;
    while (done < burst) {
      const unsigned k = rte_ring_sp_enqueue_burst(ring.r, objs.data() + done, burst - done, nullptr);
      done += k;
      if (k == 0) ++full;
    }
    produced += burst;
  }
  // Let the consumer drain (bounded: the ring holds at most kRingSize entries).
  for (int i = 0; i < 1'000'000 && rte_ring_count(ring.r) != 0; ++i) std::this_thread::yield();
  stop.store(true);
  consumer.join();
  if (consumed.load() != produced) {
    state.SkipWithError("consumer did not receive every message");
    return;
  }
  state.SetItemsProcessed(static_cast<int64_t>(produced));
  state.counters["ns_per_msg"] = benchmark::Counter(
      static_cast<double>(produced), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["ring_full_spins"] = static_cast<double>(full);
}
BENCHMARK(BM_RingHandoff)->Arg(1)->Arg(8)->Arg(32)->UseRealTime();

void BM_RingSameThread(benchmark::State& state) {
  const unsigned burst = static_cast<unsigned>(state.range(0));
  Ring ring;
  std::vector<void*> in(burst), out(burst);
  for (unsigned i = 0; i < burst; ++i) in[i] = reinterpret_cast<void*>(uintptr_t{i + 1} * 64);
  for (auto _ : state) {
    const unsigned e = rte_ring_sp_enqueue_burst(ring.r, in.data(), burst, nullptr);
    const unsigned d = rte_ring_sc_dequeue_burst(ring.r, out.data(), burst, nullptr);
    if (e != burst || d != burst) {
      state.SkipWithError("ring lost items");
      return;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * burst);
  state.counters["ns_per_msg"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * burst,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RingSameThread)->Arg(1)->Arg(32);

}  // namespace

BENCHMARK_MAIN();
