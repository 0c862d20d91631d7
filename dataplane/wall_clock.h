// The clock a worker passes to its shards: Unix time in nanoseconds, read from the TSC once or
// twice per loop pass. Message timestamps (FETCH by time, time retention, TTLs, dedup windows)
// and every timer of the engine read it, so it has to stay on the wall clock for as long as the
// process runs, not only near its start.
//
// Why not `unix_ns_at_start + cycles / rte_get_tsc_hz()` alone: where the CPU does not state its
// TSC frequency (CPUID leaf 0x15; AMD, most VMs) DPDK measures it and rounds to 10 MHz. On the
// CI machine (TSC 2,095.994 MHz, DPDK says 2,100) that clock ran 0.19 % slow: 1.9 ms behind per
// second, 6.9 s per hour (seen as a timestamp FETCH that missed the messages it asked for).
// So the clock is re-anchored on CLOCK_REALTIME every kAnchorInterval (a vDSO read, or a system
// call where the clocksource has none: either way once per ~60 ms, never per message), and its
// rate is refined from the anchors' long baseline. Between anchors it extrapolates. It never
// goes backwards, so latencies and timer arithmetic on it stay non-negative: an anchor slightly
// behind the extrapolation holds the clock until it catches up; a step of the wall clock back by
// more than kMaxStepBackNs (settimeofday, an NTP step) is not followed (the clock goes on at its
// rate from where it is, as it did before anchors existed); a step forward is followed.
#pragma once

#include <algorithm>
#include <cstdint>

#include "protocol/assert.h"

namespace sluice::dataplane {

class WallClock {
 public:
  // Rates further than this from the measured TSC frequency are a wall-clock step (settimeofday,
  // an NTP step), not a rate: the baseline starts again.
  static constexpr uint64_t kMaxRateErrorPpm = 10'000;
  // The refined rate replaces the start-up estimate once the baseline spans this much.
  static constexpr uint64_t kMinBaselineNs = 1'000'000'000;
  // An anchor this far behind the clock is a step back, not drift (at kMaxRateErrorPpm an
  // anchor interval drifts by 0.6 ms).
  static constexpr uint64_t kMaxStepBackNs = 10'000'000;

  // tsc_hz: the TSC frequency as the EAL measured it; tsc, unix_ns: read together at start.
  void Start(uint64_t tsc, uint64_t unix_ns, uint64_t tsc_hz) {
    SLUICE_ASSERT(tsc_hz > 0);
    anchor_interval_cycles_ = tsc_hz / 16;  // ~62 ms
    nominal_q32_ = (uint64_t{1'000'000'000} << 32) / tsc_hz;
    ns_per_cycle_q32_ = nominal_q32_;
    base_tsc_ = anchor_tsc_ = tsc;
    base_unix_ns_ = anchor_unix_ns_ = unix_ns;
    now_ns_ = unix_ns;
  }

  // Per pass. True when the caller should read CLOCK_REALTIME and call Anchor before Now.
  bool AnchorDue(uint64_t tsc) const { return tsc - anchor_tsc_ >= anchor_interval_cycles_; }

  void Anchor(uint64_t tsc, uint64_t wall_ns) {
    const uint64_t ours = std::max(now_ns_, Extrapolate(tsc));
    uint64_t unix_ns = wall_ns + step_back_ns_;
    if (unix_ns + kMaxStepBackNs < ours) {
      // Stepped back: from now on the wall clock read plus the step is the reference (its rate
      // is still the wall clock's).
      step_back_ns_ += ours - unix_ns;
      Rebase(tsc, ours);
      return;
    }
    if (tsc <= base_tsc_ || unix_ns <= base_unix_ns_) {
      Rebase(tsc, std::max(unix_ns, ours));
      return;
    }
    const uint64_t span_ns = unix_ns - base_unix_ns_;
    if (span_ns >= kMinBaselineNs) {
      const uint64_t rate = static_cast<uint64_t>(
          (static_cast<unsigned __int128>(span_ns) << 32) / (tsc - base_tsc_));
      const uint64_t off = rate > nominal_q32_ ? rate - nominal_q32_ : nominal_q32_ - rate;
      if (static_cast<unsigned __int128>(off) * 1'000'000 >
          static_cast<unsigned __int128>(nominal_q32_) * kMaxRateErrorPpm) {
        Rebase(tsc, unix_ns);  // stepped forward: followed
        return;
      }
      ns_per_cycle_q32_ = rate;
    }
    anchor_tsc_ = tsc;
    anchor_unix_ns_ = unix_ns;
  }

  // The clock at `tsc`: never below what it said before.
  uint64_t Now(uint64_t tsc) {
    now_ns_ = std::max(now_ns_, Extrapolate(tsc));
    return now_ns_;
  }

  uint64_t ns_per_cycle_q32() const { return ns_per_cycle_q32_; }
  uint64_t step_back_ns() const { return step_back_ns_; }

 private:
  uint64_t Extrapolate(uint64_t tsc) const {
    return anchor_unix_ns_ + static_cast<uint64_t>(
        (static_cast<unsigned __int128>(tsc - anchor_tsc_) * ns_per_cycle_q32_) >> 32);
  }
  void Rebase(uint64_t tsc, uint64_t unix_ns) {
    base_tsc_ = anchor_tsc_ = tsc;
    base_unix_ns_ = anchor_unix_ns_ = unix_ns;
    ns_per_cycle_q32_ = nominal_q32_;
  }

  uint64_t anchor_interval_cycles_ = 0;
  uint64_t nominal_q32_ = 0;       // nanoseconds per cycle from tsc_hz, 32.32 fixed point
  uint64_t ns_per_cycle_q32_ = 0;  // refined from the baseline
  uint64_t base_tsc_ = 0;          // the baseline's start (the first anchor, or the last step)
  uint64_t base_unix_ns_ = 0;
  uint64_t anchor_tsc_ = 0;  // the latest anchor: Now extrapolates from it
  uint64_t anchor_unix_ns_ = 0;
  uint64_t now_ns_ = 0;
  uint64_t step_back_ns_ = 0;  // the wall clock's steps back, added to its reads
};

}  // namespace sluice::dataplane
