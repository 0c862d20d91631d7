// What a worker's Frontend needs from storage, as an interface so that the Frontend stays pure
// C++ (its tests run it with no storage: every partition in memory). The DPDK worker gives it a
// StorageShell (storage_shell.h): the worker's io_uring writer and the partitions' ack logs.
//
// Every call comes from the worker's own lcore thread, except that partitions may be opened on
// the main thread before the worker is launched (start-up recovery).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "dataplane/shard/partition_log.h"
#include "dataplane/shard/types.h"
#include "protocol/errc.h"

namespace sluice::dataplane {

// One record as recovery found it on disk.
struct RecoveredMessage {
  uint64_t offset = 0;
  uint64_t timestamp_ns = 0;
  uint64_t producer_id = 0;
  bool deleted = false;  // work queues: its delete is in the ack log
  std::span<const std::byte> record;
};

// What the log of a partition held at start.
struct RecoveredLog {
  uint64_t next_offset = 0;
  std::string summary;  // one line for the daemon's log
};

// When an open batch is sealed and handed to storage.
struct BatchPolicy {
  uint32_t batch_bytes = 256 * 1024;  // seal at this many bytes...
  uint64_t batch_time_ns = 200'000;   // ...or this age...
  // ...or at once when the partition has no write in flight: an idle partition pays no batching
  // delay, a busy one accumulates while its previous write completes (group commit).
};

// Replication catch-up reads in flight per worker (its channel), at most (StartBatchRead): with
// buffers of ~1.25 MiB each, the bound of the bytes catch-up reads hold.
inline constexpr uint32_t kCatchupReads = 4;

class Persistence {
 public:
  // Control path. Opens (recovering) the log of a partition whose durability is not kNone and
  // calls `restore` for every record it holds, in offset order, deleted ones included (they carry
  // idempotence state). A non-ok `restore` result stops the recovery and fails the open.
  virtual absl::StatusOr<RecoveredLog> Open(
      uint32_t queue, uint32_t partition, shard::Durability durability,
      absl::FunctionRef<absl::Status(const RecoveredMessage&)> restore,
      absl::FunctionRef<void(std::string_view group, uint64_t offset)> committed) = 0;
  // Closes the partition's log; `remove` deletes its files (queue deleted).
  virtual void Close(uint32_t queue, uint32_t partition, bool remove) = 0;

  // Data path, per loop pass.
  // No write of this partition in flight (the seal policy).
  virtual bool Idle(uint32_t queue, uint32_t partition) const = 0;
  // kOk (queued, or already submitted), kThrottled (offer it again next pass), kStorageFailed.
  virtual Errc Submit(uint32_t queue, uint32_t partition, const shard::SealedBatch& batch) = 0;
  // Submits what was queued and reports each partition whose durable offset advanced or failed
  // (errc kStorageFailed, with `failure` saying why).
  virtual uint32_t Poll(absl::FunctionRef<void(uint32_t queue, uint32_t partition,
                                               shard::DurableOffset durable, Errc errc,
                                               std::string_view failure)> fn) = 0;
  // A work-queue message left for good / a consumer group committed: logged so a restart keeps it.
  virtual void Removed(uint32_t queue, uint32_t partition, uint64_t offset) = 0;
  virtual void Committed(uint32_t queue, uint32_t partition, std::string_view group,
                         uint64_t offset) = 0;
  // A purge dropped every offset below `below`: logged, and its write + fdatasync queued at once
  // (a control-path call, once per purge, not per message; the caller does not wait for the
  // sync: StorageShell counts it, the control thread waits) so that a restart does not bring
  // those messages back. The segments wholly below it go with the next retention pass; reads
  // never reach below it. Not OK: the mark could not be logged (the purge holds in memory until a
  // restart). A sync that fails later fails the partition (reported through Poll).
  virtual absl::Status Purged(uint32_t queue, uint32_t partition, uint64_t below) = 0;
  // Retention (blocking: unlink + directory fsync per segment removed; call rarely). Only
  // closed segments go: those wholly below `keep_from_offset` (work queues: the oldest message
  // still in the queue), or, for streams (keep_from_offset UINT64_MAX), past max_bytes / older
  // than max_age_ns. Returns segments removed.
  virtual bool HasClosedSegments(uint32_t queue, uint32_t partition) const = 0;
  virtual uint32_t EnforceRetention(uint32_t queue, uint32_t partition, uint64_t keep_from_offset,
                                    uint64_t max_bytes, uint64_t max_age_ns, uint64_t now_ns) = 0;
  // Reads of stream data older than what the engine holds in memory, from the log through the
  // worker's io_uring; the lcore never blocks. `by_timestamp`: `value` is a time (first record at
  // or after it), else an offset. kOk: the result comes through PollReads with `cookie`;
  // kThrottled: all reads busy.
  virtual Errc Fetch(uint32_t queue, uint32_t partition, bool by_timestamp, uint64_t value,
                     uint32_t max_records, uint64_t cookie) = 0;
  virtual uint32_t PollReads(absl::FunctionRef<void(uint64_t cookie, Errc errc, uint64_t next_offset,
                                                    std::span<const shard::StoredMessage> records)>
                                 fn) = 0;
  // Bytes of the partition's log on disk (durable batches in its segments), for stats.
  virtual uint64_t LogBytes(uint32_t queue, uint32_t partition) const = 0;
  // Oldest offset in the partition's log (kNoOffset if it has none here).
  virtual uint64_t LogStart(uint32_t queue, uint32_t partition) const = 0;
  // The base offset of the partition's oldest segment (kNoOffset if it has none here): a batch
  // boundary, unlike LogStart, which may be a purge mark inside that segment. What a replication
  // standby is told (LOG_START) and restarts at when its log ends below it (docs/replication.md
  // §4). The default: a Persistence without purge marks.
  virtual uint64_t FirstSegmentBase(uint32_t queue, uint32_t partition) const {
    return LogStart(queue, partition);
  }
  // Replication catch-up through the worker's io_uring (docs/replication.md §3): the lcore never
  // blocks. Starts a read of the durable batch starting at `offset`. kOk: the answer comes
  // through PollBatchReads with `cookie` (so do kOffsetOutOfRange and kStorageFailed when
  // returned here: the read's slot is taken until then); kThrottled: every catch-up read is
  // busy; kUnknownPartition: not open here (nothing comes). `hint_segment`/`hint_position`:
  // the previous answer's for this partition (UINT64_MAX: none), so a sequential catch-up reads
  // each batch with one read. The defaults: a Persistence without catch-up reads.
  struct BatchRead {
    uint64_t cookie = 0;
    Errc errc = Errc::kOk;  // kOk, kOffsetOutOfRange, kStorageFailed, kUnknownPartition
    uint64_t base = 0;      // kOk: the batch's offsets
    uint64_t end = 0;
    std::span<const std::byte> bytes;  // kOk: header + payload, verified; valid in the callback
    uint64_t next_hint_segment = UINT64_MAX;  // the hint for a read at `end`
    uint64_t next_hint_position = 0;
  };
  virtual Errc StartBatchRead(uint32_t /*queue*/, uint32_t /*partition*/, uint64_t /*offset*/,
                              uint64_t /*hint_segment*/, uint64_t /*hint_position*/,
                              uint64_t /*cookie*/) {
    return Errc::kUnknownPartition;
  }
  virtual uint32_t PollBatchReads(absl::FunctionRef<void(const BatchRead&)> /*fn*/) { return 0; }
  // Writes what the ack logs buffered (once per pass; cheap when nothing is buffered). Through
  // the worker's io_uring: the writes complete in later passes.
  virtual void FlushAcks() = 0;
  // For a reader of a partition's ack-log file (a replication ack snapshot): the bytes appended
  // to it so far (AckLogEnd), and whether the file holds them (AckLogWritten: asked each pass
  // until true; true too once the log failed or the partition is gone). The writes go through
  // the lcore's ring, so the reader polls instead of waiting. Defaults: no ack logs here.
  virtual uint64_t AckLogEnd(uint32_t /*queue*/, uint32_t /*partition*/) const { return 0; }
  virtual bool AckLogWritten(uint32_t /*queue*/, uint32_t /*partition*/,
                             uint64_t /*end*/) const {
    return true;
  }
  // Blocks until nothing is in flight (shutdown), reporting as Poll does.
  virtual void Drain(absl::FunctionRef<void(uint32_t queue, uint32_t partition,
                                            shard::DurableOffset durable, Errc errc,
                                            std::string_view failure)> fn) = 0;

  virtual const BatchPolicy& batch_policy() const = 0;

 protected:
  ~Persistence() = default;
};

}  // namespace sluice::dataplane
