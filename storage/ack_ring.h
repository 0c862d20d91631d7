// The io_uring the ack logs of one lcore write through (docs/storage.md §6): a small ring of its
// own beside the writer's and the reader's, on the same thread. Why not the writer's ring: its
// request table, fault seam and completion dispatch are built around batches and segments, and a
// full writer ring (group commit under load) must not hold back deletes, nor ack writes take the
// slots batches need; an ack write is one SQE (two with the purge's fdatasync) per partition per
// pass, so a second ring costs one io_uring_enter in the passes that have acks to write, and
// none in the others (Poll returns before touching the ring when nothing is pending).
//
// The lcore never makes a blocking file-system call for an ack log: AckLog::StartFlush prepares
// a write of its pending entries (and a linked fdatasync for a purge mark) here, Poll submits and
// reaps without blocking and hands each completion back to its log. Only Wait and Drain block
// (partition close, shutdown, a log whose two buffers are both full).
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "storage/uring_setup.h"

namespace sluice::storage {

class AckLog;

struct AckRingConfig {
  uint32_t entries = 256;        // SQ entries; more logs than that in one pass submit early
  int completion_eventfd = -1;   // signalled on each completion (wakes a sleeping worker)
};

// Test seam: the next `count` writes (or, with `sync`, fdatasyncs) complete with -error instead
// of running; with short_write, writes are cut to 8 bytes instead (the rest is re-queued); with
// delay_ms, writes run (in full) only after that long in flight: a linked timeout ahead of each,
// the slow disk of docs/storage.md §4 on demand. `only`: just the log with that cookie, after
// `skip` of its requests went through.
struct AckFaultInjection {
  uint32_t count = 0;
  int error = 0;
  bool sync = false;
  bool short_write = false;
  uint32_t delay_ms = 0;
  std::optional<uint64_t> only;
  uint32_t skip = 0;
};

struct AckRingStats {
  uint64_t writes = 0;      // write requests submitted (a short write's rest counts again)
  uint64_t syncs = 0;       // fdatasync requests submitted
  uint64_t syncs_covered = 0;  // AckLog::StartFlush(sync) calls whose sync completed
  uint64_t bytes = 0;       // bytes the kernel took
  uint64_t submits = 0;     // io_uring_enter calls that submitted something
  uint64_t failures = 0;    // writes or syncs that failed (each fails its log)
  uint64_t requeued = 0;    // short writes and EAGAIN
};

class AckRing {
 public:
  static absl::StatusOr<std::unique_ptr<AckRing>> Create(const AckRingConfig& config);
  ~AckRing();
  AckRing(const AckRing&) = delete;
  AckRing& operator=(const AckRing&) = delete;

  // Submits what the logs prepared and reaps completions, never blocking. `failed` is called
  // once for each log whose write or sync failed in this call (AckLog::failure() says why).
  // Returns completions reaped.
  uint32_t Poll(absl::FunctionRef<void(AckLog&)> failed);
  // Blocks until `log` has nothing in flight (reporting failures as Poll does).
  void Wait(AckLog& log, absl::FunctionRef<void(AckLog&)> failed);
  // Blocks until nothing is in flight.
  void Drain(absl::FunctionRef<void(AckLog&)> failed);
  uint32_t in_flight() const { return in_flight_; }
  bool idle() const { return in_flight_ == 0 && pending_sqes_ == 0; }

  const AckRingStats& stats() const { return stats_; }
  void InjectFaults(const AckFaultInjection& f) { faults_ = f; }

 private:
  friend class AckLog;
  // Low bits of user_data. kDelay: a fault seam's timeout linked ahead of a write (no log op).
  enum Op : uint64_t { kWrite = 0, kSync = 1, kInjected = 2, kDelay = 4 };
  explicit AckRing(const AckRingConfig& config) : cfg_(config) {}
  void Adopt();
  io_uring_sqe* Sqe();
  // For AckLog::Pump: a write of [buf, buf+len) at `position`, optionally followed by a linked
  // fdatasync; or the fdatasync alone. False: no submission entry (tried again next pass).
  bool PrepWrite(AckLog* log, int fd, const std::byte* buf, uint32_t len, uint64_t position,
                 bool linked_sync);
  bool PrepSync(AckLog* log, int fd);
  // The fault seam's verdict for the next write (sync: fdatasync) of `log`.
  bool Inject(const AckLog& log, bool sync);
  uint32_t Reap(absl::FunctionRef<void(AckLog&)> failed);
  int Submit(bool wait);

  AckRingConfig cfg_;
  io_uring ring_{};
  bool ring_ok_ = false;
  bool enabled_ = false;
  RingFeatures features_;
  uint32_t in_flight_ = 0;
  uint32_t pending_sqes_ = 0;
  AckRingStats stats_;
  AckFaultInjection faults_;
  __kernel_timespec delay_{};  // faults_.delay_ms, read by the kernel when a timeout is submitted
};

}  // namespace sluice::storage
