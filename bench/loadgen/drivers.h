// The load loops. Each runs on the calling (main) lcore until its time (and count) bound, drains
// the replies still in flight for at most --drain-s, and returns what it measured.
#pragma once

#include <time.h>

#include "absl/status/statusor.h"
#include "bench/loadgen/link.h"
#include "bench/loadgen/options.h"
#include "bench/loadgen/report.h"

namespace sluice::bench {

// CPU time of the calling thread over wall time, between Start() and Stop(): how much of its CPU
// the load loop actually got (two system calls per run, outside the packet loop's fast path).
class CpuShare {
 public:
  void Start() {
    started_ = true;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0_);
    clock_gettime(CLOCK_MONOTONIC, &wall0_);
  }
  bool started() const { return started_; }
  double Stop() const {
    if (!started_) return 0;
    timespec cpu1, wall1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
    clock_gettime(CLOCK_MONOTONIC, &wall1);
    const double wall = Seconds(wall1) - Seconds(wall0_);
    return wall > 0 ? (Seconds(cpu1) - Seconds(cpu0_)) / wall : 0;
  }

 private:
  static double Seconds(const timespec& t) { return t.tv_sec + t.tv_nsec * 1e-9; }
  bool started_ = false;
  timespec cpu0_{}, wall0_{};
};

// Frames per TX burst and per RX poll, for every driver.
inline constexpr uint16_t kBurst = 32;
inline constexpr uint16_t kRxBurst = 64;

// --produce: ARP for the server, LOOKUP the queue, then PRODUCE (closed or open loop).
absl::StatusOr<Result> RunProduce(Link& link, const Options& o);

// --produce --udp: the same loop over a kernel UDP socket (no DPDK, no EAL).
absl::StatusOr<Result> RunProduceUdp(const Options& o);

// --produce-flood: LOOKUP the queue, then one pre-built PRODUCE frame (producer id 0) as fast as
// the TX queue takes it; counts messages acked OK.
absl::StatusOr<Result> RunProduceFlood(Link& link, const Options& o);

// --echo (ICMP echo frames, TSC-stamped, window or rate limited) and --flood (count only).
absl::StatusOr<Result> RunRaw(Link& link, const Options& o);

}  // namespace sluice::bench
