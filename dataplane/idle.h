// The idle policy of an lcore loop (DESIGN §1). `poll` spins: for cores dedicated to sluice.
// `adaptive` backs off after a run of empty passes, first with rte_pause, then with short sleeps
// that grow to a cap, so that a laptop or a 2-core CI machine running clients beside sluiced is not
// starved; the first pass that finds work resets it.
#pragma once

#include <sys/prctl.h>
#include <time.h>

#include <algorithm>
#include <cstdint>

#include <rte_pause.h>

#include "hwconf/layout.h"

namespace sluice::dataplane {

class IdlePolicy {
 public:
  // Passes without work before pausing, and before sleeping.
  static constexpr uint32_t kSpinPasses = 64;
  static constexpr uint32_t kPausePasses = 1024;
  static constexpr uint32_t kSleepMinNs = 1'000;
  static constexpr uint32_t kSleepMaxNs = 50'000;

  explicit IdlePolicy(hwconf::IdlePolicy mode) : mode_(mode) {
    // Sleeps of a few microseconds need a small timer slack (the default is 50 us).
    if (mode_ == hwconf::IdlePolicy::kAdaptive) prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  }

  // Called once per loop pass with the amount of work the pass did. Returns true if it slept.
  bool Idle(uint32_t work_done) {
    if (work_done != 0 || mode_ == hwconf::IdlePolicy::kPoll) {
      empty_passes_ = 0;
      sleep_ns_ = kSleepMinNs;
      return false;
    }
    ++empty_passes_;
    if (empty_passes_ < kSpinPasses) return false;
    if (empty_passes_ < kPausePasses) {
      rte_pause();
      return false;
    }
    timespec ts{0, static_cast<long>(sleep_ns_)};
    nanosleep(&ts, nullptr);
    sleep_ns_ = std::min(sleep_ns_ * 2, kSleepMaxNs);
    return true;
  }

 private:
  hwconf::IdlePolicy mode_;
  uint32_t empty_passes_ = 0;
  uint32_t sleep_ns_ = kSleepMinNs;
};

}  // namespace sluice::dataplane
