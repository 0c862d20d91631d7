#include "storage/uring_setup.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "protocol/assert.h"
#include "storage/io.h"

namespace sluice::storage {

absl::Status InitRing(io_uring* ring, const RingOptions& o, RingFeatures* features) {
  int err = -EINVAL;
  if (o.sqpoll) {
    io_uring_params p{};
    p.flags = IORING_SETUP_SQPOLL | (o.sqpoll_cpu >= 0 ? IORING_SETUP_SQ_AFF : 0);
    p.sq_thread_cpu = o.sqpoll_cpu >= 0 ? static_cast<uint32_t>(o.sqpoll_cpu) : 0;
    p.sq_thread_idle = o.sqpoll_idle_ms;
    err = io_uring_queue_init_params(o.entries, ring, &p);
    if (err == 0) {
      features->sqpoll = true;
      return absl::OkStatus();
    }
    std::fprintf(stderr, "sluice storage: warning: SQPOLL ring refused (%s); using a plain ring\n",
                 std::strerror(-err));
  }
  // TASKRUN_FLAG: the kernel sets IORING_SQ_TASKRUN in the shared SQ flags when completion work
  // is waiting for us, so a pass with writes in flight and nothing to submit enters the kernel
  // only when there is something to collect (SubmitRing), not once (or twice) per pass.
  const uint32_t tries[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
          IORING_SETUP_R_DISABLED,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_R_DISABLED, 0};
  for (uint32_t flags : tries) {
    io_uring_params p{};
    p.flags = flags;
    err = io_uring_queue_init_params(o.entries, ring, &p);
    if (err == 0) {
      features->single_issuer = (flags & IORING_SETUP_SINGLE_ISSUER) != 0;
      features->defer_taskrun = (flags & IORING_SETUP_DEFER_TASKRUN) != 0;
      features->taskrun_flag = (flags & IORING_SETUP_TASKRUN_FLAG) != 0;
      features->disabled = (flags & IORING_SETUP_R_DISABLED) != 0;
      return absl::OkStatus();
    }
  }
  return ErrnoStatus(-err, "io_uring_queue_init", "storage ring");
}

void EnableRing(io_uring* ring, RingFeatures* features) {
  if (!features->disabled) return;
  // liburing 2.3 declares io_uring_enable_rings but does not export it: the raw register call.
  const long err = ::syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS,
                             nullptr, 0);
  SLUICE_ASSERT(err == 0);
  features->disabled = false;
}

int SubmitRing(io_uring* ring, const RingFeatures& f, bool have_sqes, bool in_flight, bool wait) {
  if (wait && (in_flight || have_sqes)) return io_uring_submit_and_wait(ring, 1);
  if (have_sqes) return f.defer_taskrun ? io_uring_submit_and_get_events(ring) : io_uring_submit(ring);
  if (f.defer_taskrun && in_flight) {
    // Nothing completed since the last look (no task work queued, no CQ overflow): no system
    // call. A completion that lands just after this load is seen by the next pass.
    if (f.taskrun_flag &&
        (IO_URING_READ_ONCE(*ring->sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) == 0) {
      return 0;
    }
    return io_uring_get_events(ring);
  }
  return 0;
}

namespace {

// struct sched_attr (include/uapi/linux/sched/types.h, SCHED_ATTR_SIZE_VER1): the kernel's header
// cannot be included next to glibc's <sched.h> (both define sched_param).
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};
static_assert(sizeof(SchedAttr) == 56);

}  // namespace

absl::Status SetThreadSlice(uint64_t slice_ns) {
  SchedAttr a{};
  // glibc 2.36 has no wrapper for either call.
  if (::syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0) {
    return ErrnoStatus(errno, "sched_getattr", "the storage thread");
  }
  if (a.sched_policy != SCHED_OTHER && a.sched_policy != SCHED_BATCH) return absl::OkStatus();
  a.size = sizeof a;
  a.sched_flags = 0;
  a.sched_runtime = slice_ns;  // policy, nice value kept as read
  if (::syscall(SYS_sched_setattr, 0, &a, 0) != 0) {
    return ErrnoStatus(errno, "sched_setattr (slice)", "the storage thread");
  }
  return absl::OkStatus();
}

}  // namespace sluice::storage
