// The idle policy of an lcore loop (DESIGN §1). `poll` spins: for cores dedicated to sluice.
// `adaptive` backs off after a run of empty passes, first with rte_pause, then by sleeping until
// the next packet or hand-off (RX queue interrupts plus an eventfd the other workers signal), or
// until a short timeout so that timers (leases, long polls) still fire; the first pass that finds
// work resets it. A laptop or a 2-core CI machine running clients beside sluiced is not starved.
#pragma once

#include <sys/prctl.h>

#include <algorithm>
#include <cstdint>

#include <rte_pause.h>

#include "hwconf/layout.h"
#include "protocol/assert.h"

namespace sluice::dataplane {

class IdlePolicy {
 public:
  // Passes without work before pausing, and before sleeping.
  static constexpr uint32_t kSpinPasses = 64;
  static constexpr uint32_t kPausePasses = 1024;
  static constexpr uint64_t kSleepMinNs = 1'000;
  // With interrupts a sleep ends on the next packet, so it can be long; without, it bounds the
  // latency a sleeping worker adds: the layout's idle_sleep_max_us (hwconf::Lcore).
  static constexpr uint64_t kSleepMaxWithWakeupNs = 1'000'000;

  IdlePolicy(hwconf::IdlePolicy mode, bool wakeups, uint64_t sleep_max_ns)
      : mode_(mode), max_ns_(wakeups ? kSleepMaxWithWakeupNs : sleep_max_ns) {
    SLUICE_ASSERT(max_ns_ >= kSleepMinNs);
    // Sleeps of a few microseconds need a small timer slack (the default is 50 us).
    if (mode_ == hwconf::IdlePolicy::kAdaptive) prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  }

  // Called once per loop pass with the work the pass did. Returns 0, or how long to sleep.
  uint64_t Next(uint32_t work_done) {
    if (work_done != 0 || mode_ == hwconf::IdlePolicy::kPoll) {
      empty_passes_ = 0;
      sleep_ns_ = kSleepMinNs;
      return 0;
    }
    ++empty_passes_;
    if (empty_passes_ < kSpinPasses) return 0;
    if (empty_passes_ < kPausePasses) {
      rte_pause();
      return 0;
    }
    const uint64_t ns = sleep_ns_;
    sleep_ns_ = std::min(sleep_ns_ * 2, max_ns_);
    return ns;
  }

 private:
  hwconf::IdlePolicy mode_;
  uint64_t max_ns_;
  uint32_t empty_passes_ = 0;
  uint64_t sleep_ns_ = kSleepMinNs;
};

}  // namespace sluice::dataplane
