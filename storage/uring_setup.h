// Ring creation shared by the writer and the reader: the best setup the kernel offers, falling
// back step by step (SQPOLL if asked; else SINGLE_ISSUER + DEFER_TASKRUN; else SINGLE_ISSUER;
// else a plain ring). SINGLE_ISSUER rings start disabled (R_DISABLED) so that the thread that
// will own them enables them on first use (EnableRing), whichever thread created them.
#pragma once

#include <liburing.h>

#include <cstdint>

#include "absl/status/status.h"

namespace sluice::storage {

struct RingFeatures {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool taskrun_flag = false;  // IORING_SQ_TASKRUN says when completion work waits (DEFER_TASKRUN)
  bool sqpoll = false;
  bool registered_buffers = false;
  bool registered_files = false;
  bool disabled = false;  // created R_DISABLED: EnableRing before the first submit
};

struct RingOptions {
  uint32_t entries = 256;
  bool sqpoll = false;
  int sqpoll_cpu = -1;
  uint32_t sqpoll_idle_ms = 1000;
};

absl::Status InitRing(io_uring* ring, const RingOptions& options, RingFeatures* features);
// Enables a disabled ring for the calling thread (no-op otherwise).
void EnableRing(io_uring* ring, RingFeatures* features);
// Submits what was prepared; with DEFER_TASKRUN also runs completion task work (with nothing to
// submit, only when the kernel flagged some: no system call otherwise). wait: block for at least
// one completion. Returns io_uring_submit*'s result (0 when it made no system call).
int SubmitRing(io_uring* ring, const RingFeatures& features, bool have_sqes, bool in_flight,
               bool wait);

// Gives the calling thread a short scheduler slice (EEVDF's per-task slice, sched_attr.
// sched_runtime; Linux 6.12+), keeping its policy and nice value. Why: a direct write into a
// preallocated (unwritten) extent completes in a kworker bound to the CPU that took the
// interrupt, often the polling thread's own. While the poller holds its slice, the woken kworker
// waits (up to a scheduler tick, 4 ms at HZ=250) and so does every write's completion; with a
// short slice the kworker preempts it within `slice_ns`. Only fair-class threads (SCHED_OTHER,
// SCHED_BATCH) are changed. Returns the error of sched_getattr/sched_setattr; the kernel keeps
// the slice within [0.1 ms, 100 ms], and one without per-task slices ignores it.
absl::Status SetThreadSlice(uint64_t slice_ns);

}  // namespace sluice::storage
