// The storage of one worker lcore: its own io_uring writer (storage/uring_writer.h), and for each
// durable partition it owns, the log's handle and its ack log. Implements the Frontend's
// Persistence interface. Only the worker's thread calls it once the worker runs (the ring is
// SINGLE_ISSUER); partitions opened before that are opened on the main thread at start-up.
//
// Start-up recovery of every partition runs before the workers are created, in parallel with TBB
// (StartupRecovery); each shell takes its partitions' results from there. A partition of a queue
// created later is prepared by the control thread before it publishes the table that has it
// (StartupRecovery::Prepare: recovery of its new or empty directory, ack log, first segment) and
// adopted here without a blocking file-system call; one nothing was prepared for is opened on
// the spot (blocking, counted as opens_on_lcore). The ack logs write through a ring of their own
// (storage/ack_ring.h): nothing on the lcore blocks for them either.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "dataplane/counters.h"
#include "dataplane/persistence.h"
#include "hwconf/layout.h"
#include "storage/ack_log.h"
#include "storage/ack_ring.h"
#include "storage/file_worker.h"
#include "storage/recovery.h"
#include "storage/uring_reader.h"
#include "storage/uring_writer.h"

namespace sluice::dataplane {

// Where a partition's log lives: one of the layout's data directories, chosen by a stable hash so
// that a restart with the same list finds it again.
std::string DataDirOf(const hwconf::Storage& storage, uint32_t queue, uint32_t partition);

// A test seam (sluiced --inject-storage-fault): the writes of one partition fail after `skip`
// of them went through, so tests can see STORAGE_FAILED on it while the others keep serving.
struct StorageFault {
  uint32_t queue = 0;
  uint32_t partition = 0;
  uint32_t skip = 0;
  int error = 0;  // errno, e.g. EIO
  // The partition's ack-log writes fail instead (through the ack ring's seam): an ack-log
  // error must fail the partition like a segment write error.
  bool acks = false;
};

// A partition of a queue created at runtime, opened ahead off the lcore (StartupRecovery::
// Prepare, on the control thread that publishes the table that has it): recovered (its
// directory is new or empty), its ack log written compacted and open, its first segment created,
// preallocated and synced. The worker's lcore adopts it (StorageShell::Open) without a blocking
// file-system call.
struct PreparedOpen {
  absl::Status status;  // not OK: the open fails with it (the partition answers STORAGE_FAILED)
  storage::RecoveredPartition rec;
  std::optional<storage::AckLog> acks;
  storage::PreparedFiles files;
};

// Recovery of the partitions present at start, shared by the workers' shells (main thread and
// each shell's Open at start-up; not on the data path). Also holds the partitions of queues
// created at runtime, prepared off the lcore, until their worker adopts them.
class StartupRecovery {
 public:
  // Recovers every listed partition in parallel. Prints one line per partition that had data.
  static std::unique_ptr<StartupRecovery> Run(const hwconf::Storage& storage,
                                              const std::vector<storage::PartitionToRecover>& what,
                                              const storage::RecoveryOptions& options);
  // The result for (queue, partition), moved out; nullopt if it was not recovered at start.
  std::optional<storage::RecoveredPartition> Take(uint32_t queue, uint32_t partition);
  // The log end (next offset) of every partition recovered without error and not taken yet.
  std::vector<std::pair<std::pair<uint32_t, uint32_t>, uint64_t>> LogEnds();
  double seconds() const { return seconds_; }
  uint64_t bytes_scanned() const { return bytes_scanned_; }

  // Control thread, before publishing a table with a new durable queue: does the blocking file
  // work of opening (queue, partition) (blocking: recovery of its directory, ack-log rewrite,
  // first segment create + fallocate + fsync + directory fsync) and keeps the result for its
  // worker. Errors are kept too (the worker's open fails with them).
  void Prepare(const hwconf::Storage& storage, uint32_t queue, uint32_t partition);
  // Prepare for each (queue, partition), in parallel (TBB, as start-up recovery): a queue with
  // many partitions does not pay their fsyncs one after another.
  void PrepareAll(const hwconf::Storage& storage,
                  const std::vector<std::pair<uint32_t, uint32_t>>& partitions);
  // The worker's shell: the prepared partition, moved out (null: none was prepared).
  std::unique_ptr<PreparedOpen> TakePrepared(uint32_t queue, uint32_t partition);

 private:
  std::mutex mu_;
  std::map<std::pair<uint32_t, uint32_t>, storage::RecoveredPartition> results_;
  std::map<std::pair<uint32_t, uint32_t>, std::unique_ptr<PreparedOpen>> prepared_;
  double seconds_ = 0;
  uint64_t bytes_scanned_ = 0;
};

// Control-path file jobs a shell's file worker holds at once (storage/file_worker.h): removals
// of a deleted queue's partitions; more wait in the shell for room.
inline constexpr uint32_t kMaxFileJobs = 64;

struct StorageShellConfig {
  hwconf::Storage storage;  // data_dirs, uring_depth, sqpoll, segment_bytes, batch bytes/time
  uint64_t epoch = 0;
  int completion_eventfd = -1;  // signalled on each completion (wakes a sleeping worker)
  std::optional<StorageFault> fault;
};

storage::RecoveryOptions RecoveryOptionsOf(const hwconf::Storage& storage);

// A catch-up read's result as the streamer takes it (Persistence::PollBatchReads), with the hint
// for the read that continues it. The bytes stay the reader's: valid in the callback only.
Persistence::BatchRead BatchReadOf(const storage::FetchResult& r);

// Written by the worker's lcore, read by the main lcore (stats file): relaxed atomics.
struct StorageShellStats {
  Counter opened;            // partitions opened (minus `closed`: open now)
  Counter closed;
  Counter failed;            // partitions whose log failed
  Counter submitted;         // batches handed to the writer
  Counter submitted_bytes;
  Counter throttled;         // Submit answered kThrottled (writer full)
  Counter ack_entries;       // deletes and commits logged
  Counter ack_flush_errors;  // ack-log writes or syncs that failed, or entries that found no room
  Counter ack_writes_async;  // ack-log writes submitted through the lcore's ack ring
  Counter ack_syncs_async;   // ack-log fdatasyncs submitted through the ring (purge marks)
  Counter ack_sync_requests;  // purge marks to sync (Purged calls)
  Counter ack_syncs_done;    // of which: synced (a fdatasync behind them completed)
  Counter ack_syncs_failed;  // of which: never to be synced (their ack log failed)
  Counter ack_write_waits;   // appends that waited for the ring: both buffers of a log were full
  Counter ack_failures;      // partitions failed by an ack-log write or sync error
  // Partitions opened while the worker runs (a queue created at runtime): their files prepared
  // off the lcore and adopted (no blocking file call on it), or opened on the lcore (blocking:
  // nothing was prepared for them).
  Counter opens_off_lcore;
  Counter opens_on_lcore;
  Counter cold_fetches;      // fetches served from the log (older than memory)
  Counter segments_removed;  // retention: unlinked and the directory fsynced (through the ring)
  Counter retention_errors;
  Counter fixed_writes;      // writes from registered memory (the shards' chunk pools)
  Counter writes_during_spare_sync;  // sent to io_uring's workers while a spare was synced
  Counter rolls_prepared;    // segment rolls into a spare prepared off the lcore
  Counter rolls_blocking;    // segment rolls that created the file on the lcore (spares off only)
  Counter roll_waits;        // rolls that held their batch until the spare was ready
  Counter spare_failures;    // spare preparations that failed (the partition fails)
  // A deleted queue's partition directories, removed by the shell's file worker (off the
  // lcore), and the removals that failed (logged; the directory stays, owned by no queue).
  Counter dirs_removed;
  Counter dir_removal_errors;
};

class StorageShell final : public Persistence {
 public:
  static absl::StatusOr<std::unique_ptr<StorageShell>> Create(const StorageShellConfig& config,
                                                              StartupRecovery* startup);
  ~StorageShell();

  absl::StatusOr<RecoveredLog> Open(
      uint32_t queue, uint32_t partition, shard::Durability durability,
      absl::FunctionRef<absl::Status(const RecoveredMessage&)> restore,
      absl::FunctionRef<void(std::string_view group, uint64_t offset)> committed) override;
  void Close(uint32_t queue, uint32_t partition, bool remove) override;
  bool Idle(uint32_t queue, uint32_t partition) const override;
  Errc Submit(uint32_t queue, uint32_t partition, const shard::SealedBatch& batch) override;
  uint32_t Poll(absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                       std::string_view)> fn) override;
  void Removed(uint32_t queue, uint32_t partition, uint64_t offset) override;
  void Committed(uint32_t queue, uint32_t partition, std::string_view group,
                 uint64_t offset) override;
  absl::Status Purged(uint32_t queue, uint32_t partition, uint64_t below) override;
  void FlushAcks() override;
  Errc StartBatchRead(uint32_t queue, uint32_t partition, uint64_t offset, uint64_t hint_segment,
                      uint64_t hint_position, uint64_t cookie) override;
  uint32_t PollBatchReads(absl::FunctionRef<void(const BatchRead&)> fn) override;
  Errc Fetch(uint32_t queue, uint32_t partition, bool by_timestamp, uint64_t value,
             uint32_t max_records, uint64_t cookie) override;
  uint32_t PollReads(absl::FunctionRef<void(uint64_t, Errc, uint64_t,
                                            std::span<const shard::StoredMessage>)> fn) override;
  uint64_t LogStart(uint32_t queue, uint32_t partition) const override;
  uint64_t FirstSegmentBase(uint32_t queue, uint32_t partition) const override;
  uint64_t LogBytes(uint32_t queue, uint32_t partition) const override;
  bool HasClosedSegments(uint32_t queue, uint32_t partition) const override;
  uint32_t EnforceRetention(uint32_t queue, uint32_t partition, uint64_t keep_from_offset,
                            uint64_t max_bytes, uint64_t max_age_ns, uint64_t now_ns) override;
  void Drain(absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                    std::string_view)> fn) override;
  const BatchPolicy& batch_policy() const override { return policy_; }

  const StorageShellStats& stats() const { return stats_; }
  const storage::WriterStats& writer_stats() const { return writer_->stats(); }
  // Registers the memory batches live in with this worker's ring (before the worker runs).
  absl::Status RegisterBatchMemory(std::span<const std::span<std::byte>> regions) {
    return writer_->RegisterBuffers(regions);
  }
  uint32_t registered_regions() const { return writer_->registered_regions(); }
  // Writes submitted and not yet completed: the kernel still has work to do for them.
  bool AwaitingKernel() const { return writer_->in_flight() != 0 || !ack_ring_->idle(); }
  // Every ack-log entry appended so far is written (nothing buffered, in flight or wanted). One
  // look at each partition: used per pass only with a dedicated replication lcore.
  bool AcksSettled() const;
  const storage::AckRingStats& ack_ring_stats() const { return ack_ring_->stats(); }
  void InjectAckFaults(const storage::AckFaultInjection& f) { ack_ring_->InjectFaults(f); }
  // Every ack log written out and synced as asked (blocking; shutdown).
  void SettleAcks();
  uint64_t AckLogEnd(uint32_t queue, uint32_t partition) const override;
  bool AckLogWritten(uint32_t queue, uint32_t partition, uint64_t end) const override;
  // Durable partitions open here (in-memory queues have none).
  bool Persisting() const { return !parts_.empty(); }
  // Directory removals (a deleted queue's partitions) handed to the file worker and not yet
  // seen completed by Poll.
  size_t removals_pending() const { return removals_.size(); }
  // The shell's control-path file worker (tests hold it with a job of their own).
  storage::FileWorker& file_worker() { return *files_; }

 private:
  struct Part {
    uint32_t queue = 0;
    uint32_t partition = 0;
    storage::PartitionHandle handle = 0;
    std::optional<storage::AckLog> acks;
    uint64_t submitted_end = 0;  // end offset of the last batch handed to the writer
    uint64_t durable_end = 0;
    uint64_t purged_below = 0;  // the ack log's "deleted below" mark: nothing below is read
    bool failed = false;
    bool failure_reported = false;  // an ack-log failure, reported through Poll
    bool ack_dirty = false;  // in ack_dirty_
    std::string dir;
  };
  StorageShell(const StorageShellConfig& config, StartupRecovery* startup,
               std::unique_ptr<storage::UringWriter> writer,
               std::unique_ptr<storage::UringReader> reader,
               std::unique_ptr<storage::UringReader> catchup,
               std::unique_ptr<storage::AckRing> acks);
  static uint64_t Key(uint32_t q, uint32_t p) { return (uint64_t{q} << 32) | p; }
  Part* Find(uint32_t q, uint32_t p);
  const Part* Find(uint32_t q, uint32_t p) const;
  void MarkDirty(Part* p);
  void SyncWriterStats();  // the writer's counters into stats_
  void SyncAckStats();     // the ack ring's counters into stats_
  void OnAckFailed(storage::AckLog& log);  // fails the log's partition (reported by Poll)
  // Appends an entry to `p`'s ack log (`append` returns false when its buffer is full): when
  // full, flushes, and waits for the ring if the other buffer is still being written (counted).
  // False: not logged (the log failed; counted in ack_flush_errors).
  bool AppendAck(Part* p, absl::FunctionRef<bool(storage::AckLog&)> append);
  // Hands removals waiting for room to the file worker, and takes those completed (Poll).
  uint32_t PollRemovals();
  void Report(const storage::Completion& c,
              absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                     std::string_view)> fn);

  StorageShellConfig config_;
  StartupRecovery* startup_;
  std::unique_ptr<storage::UringWriter> writer_;
  std::unique_ptr<storage::UringReader> reader_;  // on the writer's thread, its own ring
  // Replication catch-up's reads (StartBatchRead): a ring of their own, so their slots and
  // completions never mix with consumers' fetches; a few slots (the bound of reads in flight).
  std::unique_ptr<storage::UringReader> catchup_;
  std::vector<shard::StoredMessage> read_records_;  // PollReads scratch (reserved)
  BatchPolicy policy_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Part>> parts_;
  absl::flat_hash_map<storage::PartitionHandle, Part*> by_handle_;
  std::vector<Part*> ack_dirty_;  // partitions with buffered ack-log entries
  // The ack logs' ring (storage/ack_ring.h: why a ring of its own) and the partitions an ack-log
  // failure failed, to report through Poll.
  std::unique_ptr<storage::AckRing> ack_ring_;
  std::vector<Part*> ack_failed_;
  bool running_ = false;  // the worker's loop called us (FlushAcks): opens from now on are its
  StorageShellStats stats_;
  // Control-path file work off the lcore (storage/file_worker.h): a deleted queue's partition
  // directories are removed there. removals_: handed over (or waiting for room), in order.
  std::unique_ptr<storage::FileWorker> files_;
  std::vector<std::shared_ptr<storage::RemoveTreeJob>> removals_;
};

}  // namespace sluice::dataplane
