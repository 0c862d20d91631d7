// A dedicated replication lcore (docs/replication.md §1, "A replication lcore"; the layout's
// [replication] lcore). That lcore alone polls the link and runs one replication channel for
// every partition of the box; the lcores that own shards do not touch the link. What crosses
// between them:
//   - shard lcore -> replication lcore: each durable batch as storage took it, the partition's
//     ack-log records, partitions opened and closed, through one single-producer /
//     single-consumer HandoffRing per shard lcore (replication/handoff_ring.h). The copy into
//     the ring is the one a channel on the shard lcore would not make: PrimaryLink copies the
//     batch again into its ring of unacked batches on the replication lcore (kept: that ring
//     must outlive the hand-off ring's slot, and it evicts independently);
//   - replication lcore -> shard lcores: per partition, the standby's durable end while in sync
//     and the ack records it applied (replication::ReplicatedBoard, atomics), which the sync
//     replies of the shard lcores wait for;
//   - on a standby, replica reads (FETCH / SUBSCRIBE of replicated data, docs/replication.md
//     §6): the replicated logs are the replication lcore's, so a shard lcore's Frontend reads
//     them through a request ring and an answer ring of its own (replication/replica_reads.h),
//     and sees each partition's start (ReplicaStartBoard) and durable end (DurableBoard).
// A full ring never blocks and never loses a batch: the batch is then offered without its bytes
// (a header that says [base, end) is in the log), read back from the log on the replication
// lcore when the standby needs it; if even that does not fit, the shard lcore keeps the
// partition's un-handed range and hands it at its next call. An ack record that cannot be
// handed over is counted and its partition's ack replication stops counting as in sync (sync
// DELETE/COMMIT replies answer NOT_REPLICATED): never silently.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "dataplane/persistence.h"
#include "dataplane/replicator.h"
#include "hwconf/layout.h"
#include "replication/handoff_ring.h"
#include "replication/replica_reads.h"
#include "storage/file_worker.h"
#include "storage/log_jobs.h"
#include "storage/log_state.h"
#include "storage/readable_logs.h"
#include "storage/recovery.h"
#include "storage/uring_reader.h"

namespace sluice::dataplane {

struct WakeSignal;
struct ReplicationStatus;

// The hand-off, set up by the main thread before the workers start.
struct ReplicationHandoff {
  static constexpr uint32_t kRingBytes = 8u << 20;  // per shard lcore: ~30 batches of 256 KiB
  std::vector<std::unique_ptr<replication::HandoffRing>> rings;  // [worker]; null: no shards
  replication::ReplicatedBoard board;
  WakeSignal* wake = nullptr;  // the replication lcore's
  // Counted by the shard lcores (rare events: an atomic add each).
  std::atomic<uint64_t> batches_from_log{0};  // batches handed without bytes (ring full)
  std::atomic<uint64_t> deferred{0};          // hand-offs that waited for the next call
  std::atomic<uint64_t> acks_lost{0};         // ack records not handed over (ring full)
  // [worker]: ack records that shard lcore handed over and has since written to its ack logs
  // (FlushAcks, once per pass: published a pass late). An ack-log snapshot for the standby is
  // read from the files only once they hold every record the replication lcore took.
  std::unique_ptr<std::atomic<uint64_t>[]> acks_flushed;

  // A standby's replica reads (docs/replication.md §6): per shard lcore, its requests to the
  // replication lcore and the answers back (replication/replica_reads.h). Set up on a standby
  // only (SetUpReplicaReads, main thread, before the workers start): a primary serves no
  // replica read.
  struct ReadRings {
    replication::HandoffRing requests{replication::kReplicaRequestRingBytes};
    replication::HandoffRing answers{replication::kReplicaAnswerRingBytes};
  };
  std::vector<std::unique_ptr<ReadRings>> reads;  // [worker]; null: no shards (or a primary)
  replication::ReplicaStartBoard replica_start;   // written by the replication lcore
  replication::ReplicaCommitBoard replica_commits;  // so are the replicated group commits
  WakeSignal* worker_wake = nullptr;              // [worker]: a shard lcore's, for its answers
  std::atomic<uint64_t> replica_reads_throttled{0};  // refused: kMaxReplicaReads out already
  void SetUpReplicaReads(WakeSignal* workers_wake);  // for every lcore with a hand-off ring
};

// The message format of the rings.
enum class HandoffKind : uint8_t { kAdd = 1, kRemove, kBatch, kFromLog, kAck };
struct HandoffHeader {
  HandoffKind kind;
  uint8_t ack_kind;
  uint16_t group_len;
  uint32_t queue;
  uint32_t partition;
  uint32_t ref_partition;
  uint64_t base;    // kBatch/kFromLog: first offset; kAdd: log end; kAck: the offset named
  uint64_t end;
  uint64_t now_ns;
};

// What a shard lcore's Frontend sees of replication when a replication lcore runs it.
class HandoffReplicator final : public Replicator {
 public:
  HandoffReplicator(const ReplicationStatus& status, ReplicationHandoff& handoff, uint16_t worker);

  bool Writable() const override;
  void PrimaryAddress(uint32_t* ipv4, uint16_t* port) const override;
  void AddPartition(uint32_t queue, uint32_t partition, uint64_t log_end) override;
  void RemovePartition(uint32_t queue, uint32_t partition) override;
  void Offer(uint32_t queue, uint32_t partition, std::span<const std::byte> bytes, uint64_t base,
             uint64_t end, uint64_t now_ns) override;
  bool Replicated(uint32_t queue, uint32_t partition, uint64_t now_ns,
                  uint64_t* end) const override;
  uint64_t OfferAck(uint32_t queue, uint32_t partition, uint8_t kind, uint32_t ref_partition,
                    std::string_view group, uint64_t offset) override;
  bool AckReplicated(uint32_t queue, uint32_t partition, uint64_t now_ns,
                     uint64_t* applied) const override;
  void PurgeSettled(uint32_t queue, uint32_t partition, uint64_t purge_generation,
                    Errc errc) override;
  // A standby's replica reads, served by the replication lcore through this lcore's read rings
  // (ReplicationHandoff::reads): what is refused at once is refused here, as a channel refuses
  // it (a partition not open there, an offset outside [start, durable end), kMaxReplicaReads
  // out: THROTTLED, counted); the rest is answered through PollReplicaReads.
  Errc ReadReplica(uint32_t queue, uint32_t partition, uint64_t value, uint32_t max_records,
                   uint64_t cookie, bool by_timestamp) override;
  uint64_t ReplicaStart(uint32_t queue, uint32_t partition) const override;
  uint64_t ReplicaEnd(uint32_t queue, uint32_t partition) const override;
  bool ReplicaCommitted(uint32_t queue, uint32_t partition, std::string_view group,
                        uint64_t* offset) const override;
  uint32_t PollReplicaReads(
      absl::FunctionRef<void(uint64_t, Errc, uint64_t, std::span<const shard::StoredMessage>)> fn)
      override;
  // No answer waits (Worker::Sleep checks it last: the replication lcore wakes it otherwise).
  bool RepliesEmpty() const { return reads_ == nullptr || reads_->answers.Empty(); }

  // The end of a worker pass whose ack logs are settled (StorageShell::AcksSettled: the ring's
  // writes are asynchronous): every ack record handed over before the last such call has been
  // written to its ack log since (the Frontend starts the writes once per pass).
  void PassEnded();

 private:
  struct Part {
    uint64_t handed_end = 0;   // the replication lcore was told up to here
    uint64_t offered_end = 0;  // storage offered up to here
    uint64_t acks = 0;         // ack records offered (OfferAck's count)
    bool acks_broken = false;  // one was not handed over
    bool deferred = false;     // in deferred_
  };
  bool Push(const HandoffHeader& h, std::span<const std::byte> payload) const;
  // Hands over what earlier calls could not (a call of any kind tries again).
  void Retry() const;
  void Wake() const;

  const ReplicationStatus& status_;
  ReplicationHandoff& handoff_;
  replication::HandoffRing& ring_;
  mutable absl::flat_hash_map<uint64_t, Part> parts_;
  mutable std::vector<HandoffHeader> control_;  // partitions opened/closed, not yet handed
  mutable std::vector<uint64_t> deferred_;      // partitions with an un-handed range
  const uint16_t worker_;
  uint64_t acks_pushed_ = 0;
  uint64_t acks_pushed_at_pass_end_ = 0;
  ReplicationHandoff::ReadRings* reads_ = nullptr;  // a standby's
  uint32_t reads_out_ = 0;  // requests whose answer this lcore has not taken yet
  std::vector<shard::StoredMessage> answer_records_;  // reserved once
};

// The replication lcore's catch-up reads (docs/replication.md §3): it writes none of the
// primary's logs, so it reads them itself, read-only, from the segment files, through an
// io_uring of its own: a storage::UringReader over the log states this class finds on disk (it
// is the reader's ReadableLogs). StartBatchRead submits (kThrottled when its kCatchupReads
// slots are busy), PollBatchReads reaps and hands over verified batches, each segment's file is
// opened once through the ring and kept: the replication lcore never waits for a read, so the
// live batches of other partitions and the acks of sync producers do not wait behind one.
// A partition's log state comes from a recovery scan (read-only, no repair) on first use, then
// is refreshed (storage::RefreshLog: retention at the front, the tail scanned on from its known
// end) when a read asks outside it, at most every kReloadIntervalNs, and for FirstSegmentBase
// every kLogStartIntervalNs. A read that finds no batch where the state says one starts finds
// the state again from scratch and is tried again, once; segments retention removed answer
// kOffsetOutOfRange as on a channel.
// Finding a state is blocking file I/O (a directory listing, preads of the new tail; a scan from
// scratch), so it never runs on the lcore: it is a storage::LogStateJob on this reader's own
// FileWorker (one thread, created with the reader at start-up), at most one per partition at a
// time. The lcore starts it, polls on, and adopts the state found in a later call (any call
// that looks at the partition, and every PollBatchReads). Meanwhile a read that needs that
// state answers kThrottled, as when the slots are busy, and is asked again in a later pass; a
// read already taken that waits for it (tried again on a state found from scratch, or an error
// whose verdict, kOffsetOutOfRange or kStorageFailed, depends on the state found) keeps its
// slot and is answered through PollBatchReads; FirstSegmentBase answers from the state it has.
// What the adopted state replaced (read fds, possibly of segments retention unlinked) is closed
// on the worker too.
class LogFileReader final : public Persistence, private storage::ReadableLogs {
 public:
  static absl::StatusOr<std::unique_ptr<LogFileReader>> Create(const hwconf::Storage& storage);
  ~LogFileReader();

  Errc StartBatchRead(uint32_t queue, uint32_t partition, uint64_t offset, uint64_t hint_segment,
                      uint64_t hint_position, uint64_t cookie) override;
  uint32_t PollBatchReads(absl::FunctionRef<void(const BatchRead&)> fn) override;
  uint64_t FirstSegmentBase(uint32_t queue, uint32_t partition) const override;
  uint64_t LogStart(uint32_t queue, uint32_t partition) const override {
    return FirstSegmentBase(queue, partition);
  }
  void FlushAcks() override {}  // the shard lcores write the ack logs (once per pass)

  // Not used on the replication lcore (it owns no partition).
  absl::StatusOr<RecoveredLog> Open(uint32_t, uint32_t, shard::Durability,
                                    absl::FunctionRef<absl::Status(const RecoveredMessage&)>,
                                    absl::FunctionRef<void(std::string_view, uint64_t)>) override {
    return absl::UnimplementedError("the replication lcore opens no partition");
  }
  void Close(uint32_t, uint32_t, bool) override {}
  bool Idle(uint32_t, uint32_t) const override { return true; }
  Errc Submit(uint32_t, uint32_t, const shard::SealedBatch&) override { return Errc::kStorageFailed; }
  uint32_t Poll(absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                       std::string_view)>) override { return 0; }
  void Removed(uint32_t, uint32_t, uint64_t) override {}
  void Committed(uint32_t, uint32_t, std::string_view, uint64_t) override {}
  absl::Status Purged(uint32_t, uint32_t, uint64_t) override { return absl::OkStatus(); }
  bool HasClosedSegments(uint32_t, uint32_t) const override { return false; }
  uint32_t EnforceRetention(uint32_t, uint32_t, uint64_t, uint64_t, uint64_t, uint64_t) override {
    return 0;
  }
  Errc Fetch(uint32_t, uint32_t, bool, uint64_t, uint32_t, uint64_t) override {
    return Errc::kUnknownPartition;
  }
  uint32_t PollReads(absl::FunctionRef<void(uint64_t, Errc, uint64_t,
                                            std::span<const shard::StoredMessage>)>) override {
    return 0;
  }
  uint64_t LogBytes(uint32_t, uint32_t) const override { return 0; }
  void Drain(absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                    std::string_view)>) override {}
  const BatchPolicy& batch_policy() const override { return policy_; }

  uint32_t in_flight() const { return in_flight_; }
  uint64_t reloads() const { return reloads_; }      // log states found from scratch
  uint64_t refreshes() const { return refreshes_; }  // ... and refreshed (RefreshLog tried)
  uint64_t refresh_bytes() const { return refresh_bytes_; }  // bytes of batches refreshes read
  uint64_t jobs() const { return jobs_; }  // state-finding jobs submitted to the file worker
  // Reads refused (kThrottled) because their partition's state was being found.
  uint64_t throttled_finding() const { return throttled_finding_; }
  const storage::UringReader::Stats& read_stats() const { return reader_->stats(); }
  // Tests: the worker the state-finding runs on (to hold it busy), and the state a partition's
  // reads use now (nullptr: none found yet, or the last scan failed).
  storage::FileWorker& file_worker() { return *files_; }
  const storage::LogState* log_state(uint32_t queue, uint32_t partition) const;

 private:
  struct Log {
    storage::LogState state;
    storage::PartitionSpec spec;
    storage::Fd dir;  // the partition directory: the ring opens segments relative to it
    bool loaded = false;
    bool stale = false;  // a read failed: found from scratch before the next read
    uint64_t loaded_ns = 0;  // when the last state found was adopted (0: never)
    // Finding the state anew on the file worker (running, or done and not adopted yet).
    std::shared_ptr<storage::LogStateJob> job;
    bool job_refreshes = false;  // it started from the known state (RefreshLog)
    bool rescanned = false;      // the state adopted last was found from scratch
  };
  enum class Find : uint8_t { kRefresh, kFromScratch };
  // A taken read that waits for its partition's state being found.
  enum class Wait : uint8_t {
    kNone,
    kIssue,    // no batch where the old state said: tried again on the state found from scratch
    kVerdict,  // failed: out of range if the refreshed state starts above it, tried again
               // once if it was found from scratch (other files), else failed
  };
  // One read handed to the UringReader (its cookie is the index here).
  struct Request {
    bool busy = false;
    bool hinted = false;
    bool retried = false;
    Wait wait = Wait::kNone;
    storage::PartitionHandle handle = 0;
    uint64_t offset = 0;
    uint64_t cookie = 0;  // the caller's
    BatchRead answer;     // kVerdict: the failed read's (no bytes)
  };

  explicit LogFileReader(const hwconf::Storage& storage);
  storage::PartitionHandle Handle(uint32_t queue, uint32_t partition) const;
  // True while a job finds h's state (started now, or before and not adopted yet). False: none
  // runs, and none was started (adopted less than kReloadIntervalNs ago, or the worker is
  // full): the caller goes on with the state as it is, as a read asked too soon always did.
  // kRefresh starts from the known state; a log without one, or stale, is found from scratch.
  bool Finding(storage::PartitionHandle h, Find how) const;
  // Takes h's job's result if it is done (not while a read of h is in the ring after a scan
  // from scratch: its open may still name the old directory fd).
  void Adopt(storage::PartitionHandle h) const;
  void AdoptDone() const;  // every partition's
  bool InRing(storage::PartitionHandle h) const;
  // A failed read's answer on the state as it is now.
  void Judge(Request& q, BatchRead* b) const;
  // Waiting reads whose partition's state has been adopted: issued again, or answered.
  uint32_t Resume(absl::FunctionRef<void(const BatchRead&)> fn);
  bool Issue(uint32_t request, uint64_t hint_segment, uint64_t hint_position);

  // storage::ReadableLogs: the states found, read-only; a partition is never closed here.
  bool is_open(storage::PartitionHandle) const override { return true; }
  bool failed(storage::PartitionHandle h) const override { return !logs_[h]->loaded; }
  const storage::LogState& log(storage::PartitionHandle h) const override {
    return logs_[h]->state;
  }
  const storage::PartitionSpec& spec(storage::PartitionHandle h) const override {
    return logs_[h]->spec;
  }
  shard::DurableOffset durable(storage::PartitionHandle h) const override {
    return shard::DurableOffset{logs_[h]->state.next_offset};
  }
  int dir_fd(storage::PartitionHandle h) const override { return logs_[h]->dir.get(); }

  hwconf::Storage storage_;
  storage::RecoveryOptions options_;
  BatchPolicy policy_;
  mutable std::vector<std::unique_ptr<Log>> logs_;  // [handle]
  mutable absl::flat_hash_map<uint64_t, storage::PartitionHandle> handles_;
  std::array<Request, kCatchupReads> requests_{};
  uint32_t in_flight_ = 0;
  std::array<uint32_t, kCatchupReads> retry_{};  // requests to issue again after a poll
  uint32_t retries_ = 0;
  mutable std::vector<storage::PartitionHandle> finding_;  // partitions with a job (reserved)
  mutable uint64_t reloads_ = 0;
  mutable uint64_t refreshes_ = 0;
  mutable uint64_t refresh_bytes_ = 0;
  mutable uint64_t jobs_ = 0;
  uint64_t throttled_finding_ = 0;
  // Joined (its queued jobs run to the end: each owns what it works on) after reader_ is gone.
  std::unique_ptr<storage::FileWorker> files_;
  // Last: destroyed first (it drains its reads, which look at logs_).
  std::unique_ptr<storage::UringReader> reader_;
};

}  // namespace sluice::dataplane
