// The write path of one lcore: its own io_uring, the partitions it owns, their active segments.
// Owned and called by exactly one thread (SINGLE_ISSUER); nothing here locks.
//
// Per loop pass the shell calls, for each partition with undurable batches:
//     shard.ForEachUndurableBatch(q, p, [&](const SealedBatch& b) { writer.Submit(h, b); });
// then once:
//     writer.Poll([&](const Completion& c) { c.errc == kOk ? shard.MarkDurable(q, p, c.durable)
//                                                           : /* answer STORAGE_FAILED */; });
// Submit is idempotent per batch (a batch already submitted is skipped), so the shell can offer
// every undurable batch every pass, oldest first; kThrottled means "no room now, offer it again
// next pass" (and every later batch of the partition answers kThrottled too in that pass): no
// room in the ring, or the batch starts a new segment and the spare for it is not prepared yet
// (a roll never creates its file on the calling thread: spare_preparer.h).
// Submit only prepares submission entries; Poll submits them all with one system call (none under
// SQPOLL) and reaps completions without blocking.
//
// A batch's bytes must stay untouched until Poll reported it durable (the shard guarantees that:
// they stay valid until MarkDurable covers them). Submit writes the batch header into them first
// (EncodeBatch), so after Submit the bytes are the exact on-disk form, ready for replication.
//
// Durability (per partition): kNone writes nothing (Poll reports the batch at once); kWrite
// completes when the device has the data (its volatile cache may still lose it); kDsync writes
// with RWF_DSYNC (FUA on NVMe). Without O_DIRECT (tmpfs) both kWrite and kDsync become a
// buffered write linked to an fdatasync.
//
// Failures: -EAGAIN and short writes are re-queued. Any other error (EIO, ENOSPC, a failed
// fdatasync, a failed roll or spare preparation, a failed unlink or directory fsync of retention,
// ...) fails the partition for good: it reports kStorageFailed once through Poll, every later
// Submit answers kStorageFailed, and its durable offset never moves again. Index writes (a
// cache) are the exception: counted, logged, not fatal.
//
// Everything that touches the disk after OpenPartition goes through the ring: batch writes,
// index entries and seals, a roll's rename / index create / directory fsync, retention's unlinks
// and directory fsyncs. Creating segments is the spare preparer's (a thread of the writer).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "dataplane/shard/partition_log.h"
#include "dataplane/shard/types.h"
#include "protocol/errc.h"
#include "storage/batch_format.h"
#include "storage/io.h"
#include "storage/log_state.h"
#include "storage/readable_logs.h"
#include "storage/segment.h"
#include "storage/uring_setup.h"

namespace sluice::storage {

struct WriterConfig {
  uint32_t queue_depth = 256;          // ring entries = the most I/O requests in flight
  bool sqpoll = false;                 // kernel thread polls the ring: no submit syscall
  int sqpoll_cpu = -1;                 // -1 = the kernel chooses
  uint32_t sqpoll_idle_ms = 1000;      // SQPOLL thread sleeps after this long idle
  uint64_t segment_bytes = 256ull << 20;  // preallocated size of each segment file
  uint32_t align_bytes = 4096;         // batch alignment (the shard's batch_align_bytes)
  uint32_t index_interval_bytes = 1 << 20;  // one index entry per this many bytes of log
  uint32_t max_partitions = 1024;
  uint32_t max_batches_in_flight = 64;  // per partition
  // Memory batches live in (a shard's ChunkPool::region()): registered with the ring so writes
  // skip the per-I/O page pinning. Empty: none at creation (RegisterBuffers can add regions).
  std::span<std::byte> buffers;
  // Opt-outs for tests and benchmarks of the fallback paths: never register buffers or files;
  // never use O_DIRECT (buffered writes + fdatasync, as on a filesystem without O_DIRECT).
  bool register_resources = true;
  bool direct_io = true;
  // Prepare each partition's next segment ahead of need on a thread of the writer (a spare, see
  // spare_preparer.h) so that a roll on the lcore is a rename. false: every roll creates its
  // segment on the spot, blocking the calling thread (tests of that path).
  bool prepare_spares = true;
  // Test seam: SparePreparer's `while_preparing` (called inside each spare's preparation).
  std::function<void()> while_preparing_spare;
  // When the next spare is asked for: once the active segment is this full (percent). 0: at once
  // (when the partition opens and when a roll's rename completed), which gives the preparer a
  // whole segment's time but keeps a spare (segment_bytes of disk) beside every partition; 50:
  // only partitions past half their segment hold one, and a burst that writes the second half
  // faster than the preparer works makes its roll wait.
  uint32_t spare_request_fill_percent = 0;
  // Signalled (eventfd write) on each completion, so a thread sleeping in epoll wakes for it.
  int completion_eventfd = -1;
  // Non-zero: the thread that owns the ring gets this scheduler slice at its first write
  // (SetThreadSlice, uring_setup.h), so the kernel's completion work for its writes (a kworker
  // on its CPU) preempts it within that time instead of waiting for its slice to end or for an
  // empty pass. A writer that never writes (in-memory queues only) leaves the thread alone.
  // sluiced's workers: 100 us.
  uint64_t owner_slice_ns = 0;
};

// A partition's files opened ahead, on a thread other than the writer's (UringWriter::
// PrepareFiles): the slow, blocking part of OpenPartition (directory create, first segment
// create + fallocate + fsync + directory fsync, index rewrite, opens), so that the writer's
// thread only adopts them (AdoptPartition), without a blocking file-system call.
struct PreparedFiles {
  std::optional<PartitionDir> dir;
  Fd dir_fd;
  Fd log;     // the active segment, preallocated to `capacity`
  Fd index;   // its index, rewritten to what recovery kept
  bool direct = true;
  uint64_t capacity = 0;
  uint64_t tail = 0;     // next write position in it
  bool created = false;  // a new partition's first segment (WriterStats::first_segments)
};

// One partition's news from Poll: its durable offset advanced, or it failed.
struct Completion {
  PartitionHandle handle = 0;
  PartitionId id;
  shard::DurableOffset durable;
  Errc errc = Errc::kOk;  // kOk or kStorageFailed (then `durable` is the last good offset)
};

// Test seam: the next `count` write submissions fail with `error` (as a completion with -error,
// through the ring), or, with short_write, are cut in half.
struct FaultInjection {
  uint32_t count = 0;
  int error = 0;          // e.g. EIO, ENOSPC, EAGAIN
  bool short_write = false;
  // The next `count` directory fsyncs after a prepared roll fail with `error` instead (the writes
  // are not touched).
  bool dir_sync = false;
  // The next `count` directory fsyncs after retention's unlinks fail with `error` instead.
  bool retention = false;
  // Only writes of this partition (default: any), and only after `skip` of them went through.
  std::optional<PartitionId> only;
  uint32_t skip = 0;
};

struct WriterStats {
  uint64_t batches = 0;
  uint64_t bytes = 0;
  uint64_t submits = 0;      // io_uring_submit calls that submitted something
  uint64_t requeued = 0;     // short writes and EAGAIN
  uint64_t first_segments = 0;  // new partitions' first segments, created by OpenPartition
  uint64_t rolls = 0;        // segments started by a roll (a batch that did not fit)
  uint64_t rolls_prepared = 0;  // of which: a spare was ready (rename + async directory fsync)
  // of which: created on the spot by the calling thread. Only with prepare_spares = false: with
  // spares a roll never blocks, it waits (roll_waits).
  uint64_t rolls_blocking = 0;
  uint64_t roll_waits = 0;      // rolls that found no spare ready and held their batch until one was
  uint64_t spare_failures = 0;  // spare preparations that failed (each fails its partition)
  uint64_t index_writes = 0;    // index entries (batch entries and seals) written through the ring
  uint64_t seals = 0;           // of which: seal entries of closed segments
  uint64_t index_write_errors = 0;  // index writes that failed (a cache: counted, not fatal)
  uint64_t index_deferrals = 0;  // passes an index entry or seal waited for a free request
  uint64_t ring_registrations = 0;  // new segments put in the registered file table by the ring
  uint64_t ring_closes = 0;         // closed segments whose slot and fds the ring released
  uint64_t retention_queued = 0;   // segments whose removal was queued on the ring
  uint64_t retention_removed = 0;  // of which: unlinked and the directory fsynced
  uint64_t failures = 0;     // partitions failed
  uint64_t fixed_writes = 0;  // write requests from a registered buffer (no page pinning per I/O)
  // Segment writes sent to io_uring's worker threads (IOSQE_ASYNC) because a spare was being
  // prepared (SparePreparer::preparing): the submitting thread does not wait out its fsync.
  uint64_t writes_during_spare_sync = 0;
};

// Threads: Create and OpenPartition may run on any thread before the first Submit/Poll/Drain;
// the ring is created disabled and the first of those calls adopts it for the calling thread
// (SINGLE_ISSUER). From then on every call, OpenPartition included, comes from that thread.
class UringWriter final : public ReadableLogs {
 public:
  static absl::StatusOr<std::unique_ptr<UringWriter>> Create(const WriterConfig& config);
  ~UringWriter();
  UringWriter(const UringWriter&) = delete;
  UringWriter& operator=(const UringWriter&) = delete;

  // Control path (blocking): takes over a partition's files as recovery left them (`state`;
  // an empty LogState for a new partition) and opens or creates its active segment.
  absl::StatusOr<PartitionHandle> OpenPartition(const PartitionSpec& spec, LogState state);
  // The same in two halves. PrepareFiles (blocking; any thread, e.g. the control thread that
  // creates a queue): opens or creates the active segment of the partition `state` describes,
  // adding a new partition's first segment to `state`. AdoptPartition (the owning thread, no
  // blocking file-system call: the segment's registered-file slot is set through the ring):
  // takes the partition over with those files. `segment_bytes`/`direct_io` must be the writer's.
  static absl::StatusOr<PreparedFiles> PrepareFiles(const std::string& data_dir, PartitionId id,
                                                    LogState* state, uint64_t segment_bytes,
                                                    bool direct_io);
  absl::StatusOr<PartitionHandle> AdoptPartition(const PartitionSpec& spec, LogState state,
                                                 PreparedFiles files);
  // Waits for the partition's writes in flight, seals nothing, closes its files.
  void ClosePartition(PartitionHandle h);

  // Registers more memory that batches live in (a worker's shards each have a chunk pool), with
  // config.buffers if any: one buffer table of up to 16 regions (each at most 1 GiB). Call it
  // before the thread that owns the ring first uses it, or from that thread. A refused
  // registration is not an error for the caller: writes then pin pages per I/O, as without it.
  absl::Status RegisterBuffers(std::span<const std::span<std::byte>> regions);
  uint32_t registered_regions() const;

  // Data path.
  Errc Submit(PartitionHandle h, const shard::SealedBatch& batch);
  // The same for a batch that already is in its on-disk form (a standby writing the primary's
  // batches byte for byte): its header, epoch and CRC are written as they are, not re-encoded.
  // `batch.bytes` must hold a valid batch (VerifyBatch) of this partition.
  Errc SubmitEncoded(PartitionHandle h, const shard::SealedBatch& batch);
  uint32_t Poll(absl::FunctionRef<void(const Completion&)> fn);  // returns completions reported
  // Blocks until nothing is in flight (shutdown, tests).
  void Drain(absl::FunctionRef<void(const Completion&)> fn);

  // Retention (non-blocking: queued on the ring). Removes closed segments that end at or before
  // `keep_from_offset` and, for streams, those past max_bytes / older than max_age_ns (0 = no
  // bound). The active segment always stays. The segments leave log() at once; their files are
  // unlinked and the directory fsynced through the ring (a failure fails the partition, reported
  // by Poll like a failed write). Returns the segments queued; 0 while the previous removal of
  // the partition is still in flight. Called from the owning thread.
  struct Retention {
    uint64_t keep_from_offset = UINT64_MAX;  // work queues: lowest offset still needed
    uint64_t max_bytes = 0;
    uint64_t max_age_ns = 0;
    uint64_t now_ns = 0;
  };
  absl::StatusOr<uint32_t> EnforceRetention(PartitionHandle h, const Retention& r);

  bool failed(PartitionHandle h) const override;
  // Not closed (ClosePartition): a read that completes after its partition closed checks this.
  bool is_open(PartitionHandle h) const override;
  const std::string& failure(PartitionHandle h) const;  // what failed, for logs and stats
  const LogState& log(PartitionHandle h) const override;         // for the reader and stats
  const PartitionSpec& spec(PartitionHandle h) const override;
  bool direct_io(PartitionHandle h) const;
  shard::DurableOffset durable(PartitionHandle h) const override;
  uint32_t in_flight() const;
  // The partition's next segment is prepared (a roll now is a rename, not a create).
  bool spare_ready(PartitionHandle h) const;
  // The partition directory, opened by OpenPartition (-1 for durability none): the reader opens
  // segments relative to it through its ring.
  int dir_fd(PartitionHandle h) const override;

  const RingFeatures& features() const;
  const WriterStats& stats() const;
  void InjectFaults(const FaultInjection& f);

 private:
  struct Impl;
  explicit UringWriter(std::unique_ptr<Impl> impl);
  Errc SubmitImpl(PartitionHandle h, const shard::SealedBatch& batch, bool encode);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::storage
