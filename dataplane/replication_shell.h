// The replication shell of a worker lcore that owns shards: its replication channel
// (docs/replication.md §1), for the partitions of its own shards only, over its own queue pair of
// the link. The DPDK side of the pure core in replication/. It owns
//   - on a primary: the PrimaryLink; the Frontend offers it every durable batch (Replicator), and
//     batches the standby needs that memory no longer holds are read back from the log through
//     the worker's io_uring (Persistence::StartBatchRead, a few in flight; the lcore never
//     blocks on them);
//   - on a standby: the StandbyLink and its own io_uring writer, which writes the primary's
//     batches byte for byte into this box's logs (UringWriter::SubmitEncoded) and reports their
//     durable ends back as ACKs; a partition's blocking file work (an open at runtime, a cut of
//     a divergent tail, a restart behind the primary's start) runs on its file worker;
//   - the ack logs (docs/replication.md §13): on a primary, a partition's ack log read back (on
//     the file worker) as a snapshot for a standby that cannot continue its ack stream (rare);
//     on a standby, the replicated ack records appended to its partitions' ack logs (written
//     out once per pass), a snapshot replacing one whole on the file worker;
//   - the link port's RX and TX queue numbered like its channel: the link is IPv4/UDP from the
//     port's udp_port + channel to [replication] peer's port + channel; until the peer's MAC is
//     learned from its first frame, frames go to the Ethernet broadcast address (a
//     point-to-point link). A frame of another channel that lands on this queue (RSS,
//     af_packet's fanout) goes to that channel's lcore through a ring, and frames others
//     received for this channel come from theirs (dataplane/link_steering.h). The kernel UDP
//     link: a socket of its own on the listen port + channel.
// Only this worker's thread calls it once the worker runs. What is box-wide (role, epoch, fencing,
// the catalog, the port's start, the status the control plane shows) goes through
// ReplicationStatus, decided once (channel 0, the main thread, or a sticky flag).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "dataplane/counters.h"
#include "dataplane/link_steering.h"
#include "dataplane/net.h"
#include "dataplane/persistence.h"
#include "dataplane/port.h"
#include "dataplane/queue_table.h"
#include "dataplane/replication_handoff.h"
#include "dataplane/replicator.h"
#include "dataplane/tx_buffer.h"
#include "hwconf/layout.h"
#include "replication/durable_board.h"
#include "replication/primary.h"
#include "replication/standby.h"
#include "replication/state_file.h"
#include "storage/ack_ring.h"
#include "storage/batch_reader.h"
#include "storage/file_worker.h"
#include "storage/log_jobs.h"
#include "storage/uring_reader.h"
#include "storage/uring_writer.h"

namespace sluice::dataplane {

class StartupRecovery;

// The counters every replication channel publishes and the box shows as their sum
// (AggregateReplicationStatus: one loop over the table). A figure is added here and in
// kReplicationFigureNames, its /v1/role name, and nowhere else.
enum class ReplicationFigure : uint8_t {
  kBatchesSent, kBatchesResent, kBatchesApplied,
  kBackfillBatches,
  // Primary catch-up reads (docs/replication.md §3): started through the worker's io_uring, and
  // those that failed (I/O error or a bad batch).
  kBackfillReadsAsync, kBackfillReadErrors,
  kRxMalformed, kRxStaleEpoch,
  kTruncatedRecords,
  // A standby's log that ended below the primary's retained start, restarted empty at it
  // (docs/replication.md §4 "Behind the start"): on the standby, logs restarted; on the
  // primary, partitions whose standby it found needing an offset retention had removed.
  kBehindStartRestarts,
  // Ack-log replication (docs/replication.md §13); acklog_lag: primary, records the standby has
  // not applied.
  kAcklogRecordsSent, kAcklogRecordsResent, kAcklogSnapshotsSent, kAcklogRecordsApplied,
  kAcklogSnapshotsApplied, kAcklogDropped, kAcklogLag,
  // Link frames that arrived on another channel's queue and were handed over, and those dropped
  // because the ring to their channel was full (recovered by retransmission; link_steering.h).
  kLinkSteered, kLinkSteerDropped,
  // A dedicated replication lcore (replication_handoff.h): batches the shard lcores handed over
  // with their bytes; without them (the ring was full: read back from the log); ack records
  // that could not be handed over (their partitions' sync replies say NOT_REPLICATED).
  kHandoffBatches, kHandoffFromLog, kHandoffAcksLost,
  // A dedicated replication lcore on a standby: replica reads it served for the shard lcores,
  // and those refused THROTTLED for want of room (kMaxReplicaReads out on a shard lcore).
  kReplicaReadsServed, kReplicaReadsThrottled,
  // A dedicated replication lcore on a primary (LogFileReader): catch-up reads its own io_uring
  // made, log states refreshed from their known end, and found from scratch (a recovery scan).
  kLogReaderRingReads, kLogReaderRefreshes, kLogReaderRescans,
  // A standby's partition file work done off its lcore, by the shell's file worker
  // (docs/replication.md §4 "Off the lcore"): opens of partitions of queues the catalog brought,
  // cuts of divergent tails, restarts at the primary's start.
  kStandbyFileJobs,
  // Ack-log snapshots whose file work ran on the shell's file worker (docs/replication.md §13):
  // on a primary, ack logs read for a snapshot and sent; on a standby, ack logs replaced by one.
  kAcklogSnapshotJobs,
  // A standby: passes in which a snapshot's ack-log replacement found the old log's write still
  // in flight and went on (ReplaceAcks starts the job in a later pass instead of waiting).
  kAckReplaceWaits,
  kLagOffsets,  // primary: offered - acked, all partitions (/v1/role's replication_lag_bytes)
  kCount
};
inline constexpr size_t kReplicationFigures = static_cast<size_t>(ReplicationFigure::kCount);
inline constexpr std::array<std::string_view, kReplicationFigures> kReplicationFigureNames = {
    "batches_sent", "batches_resent", "batches_applied", "backfill_batches",
    "backfill_reads_async", "backfill_read_errors", "rx_malformed", "rx_stale_epoch",
    "truncated_records", "behind_start_restarts", "acklog_records_sent", "acklog_records_resent",
    "acklog_snapshots_sent", "acklog_records_applied", "acklog_snapshots_applied",
    "acklog_dropped", "acklog_lag", "link_steered", "link_steer_dropped", "handoff_batches",
    "handoff_from_log", "handoff_acks_lost", "replica_reads_served", "replica_reads_throttled",
    "log_reader_ring_reads", "log_reader_refreshes", "log_reader_rescans",
    "standby_file_jobs", "acklog_snapshot_jobs", "ack_replace_waits", "lag_offsets"};
static_assert(!kReplicationFigureNames.back().empty(), "a figure without a name");
struct ReplicationFigures {
  std::array<std::atomic<uint64_t>, kReplicationFigures> v{};
  uint64_t Get(ReplicationFigure f) const {
    return v[static_cast<size_t>(f)].load(std::memory_order_relaxed);
  }
  void Set(ReplicationFigure f, uint64_t x) {
    v[static_cast<size_t>(f)].store(x, std::memory_order_relaxed);
  }
};

// Replication from several worker lcores (docs/replication.md §1): every worker lcore that owns
// shards runs a channel — its own ReplicationShell over its own queue pair of the link — for its
// own partitions. A channel's figures, written by its shell, read by the main thread, which sums
// them into the box's ReplicationStatus (AggregateReplicationStatus). kMaxReplicationChannels:
// dataplane/link_steering.h.
struct ChannelStatus {
  ReplicationFigures figures;  // summed into the box's
  std::atomic<bool> connected{false};
  std::atomic<bool> caught_up{false};
  std::atomic<bool> catalog_acked{true};
  std::atomic<uint64_t> epoch{0};
  std::atomic<uint64_t> partitions{0};
  std::atomic<uint64_t> backfill_reads_inflight_max{0};  // the box shows the highest
  std::atomic<uint64_t> rx_shape_mismatch{0};
  std::atomic<uint64_t> link_steered_in{0};  // frames other channels' lcores handed to this one
  std::atomic<uint32_t> primary_client_ipv4{0};
  std::atomic<uint16_t> primary_client_port{0};
  std::atomic<uint64_t> published{0};  // the shell's publications (release after the figures)
};

// What the control plane reads (any thread). The box-wide figures are the channels' summed by
// the main thread (AggregateReplicationStatus); fenced and higher_epoch are set at once by the
// channel that saw a newer epoch (every channel's Writable reads them).
struct ReplicationStatus {
  std::atomic<int> role{0};  // 0 none, 1 primary, 2 standby
  std::atomic<uint64_t> epoch{0};
  std::atomic<bool> connected{false};   // primary: standby connected; standby: primary heard
  std::atomic<bool> caught_up{false};   // standby: caught up since the primary's HELLO;
                                        // primary: every partition's standby caught up
  std::atomic<bool> fenced{false};      // primary: a newer epoch was seen
  std::atomic<uint64_t> higher_epoch{0};
  ReplicationFigures figures;           // the channels' summed
  // The most catch-up reads in flight at once on one channel (docs/replication.md §3).
  std::atomic<uint64_t> backfill_reads_inflight_max{0};
  std::atomic<uint64_t> apply_failures{0};  // standby: batches its storage refused or failed
                                            // (counted by the channels directly)
  std::atomic<uint64_t> published{0};   // aggregations in which every channel published anew:
                                        // a reader waits for a later one
  std::atomic<bool> catalog_acked{false};   // primary: the standby holds the current catalog
  std::atomic<uint32_t> primary_client_ipv4{0};  // standby: the primary's client address
  std::atomic<uint16_t> primary_client_port{0};  // (host order), from its HELLO
  // Automatic promotion (dataplane/etcd_promotion.h): a primary takes writes only while the
  // timer (rte_get_timer_cycles) is below this, the end of its etcd lease less a margin; 0 until
  // it holds the leader key. Without etcd it stays at the maximum.
  std::atomic<uint64_t> writable_until_tsc{UINT64_MAX};
  // Metadata replication, between the control plane and the link worker (rare: a mutex).
  // Primary: the catalog document to send (control thread writes, worker takes). Standby: the
  // primary's document as received (worker writes, main thread applies).
  std::mutex catalog_mu;
  std::string catalog_out;
  std::atomic<uint64_t> catalog_out_seq{0};
  std::string catalog_in;
  std::atomic<uint64_t> catalog_in_seq{0};
  // Purges of sync queues (docs/replication.md §13): the link worker reports each partition's
  // purge mark as settled (Replicator::PurgeSettled); the control thread that published the
  // purge waits for all of the queue's partitions, then takes the entry out. Rare: a mutex.
  struct PurgeSettlement {
    uint32_t queue = 0;
    uint64_t generation = 0;
    uint32_t settled = 0;          // partitions reported
    uint32_t not_replicated = 0;   // ... of them not confirmed by the standby
    uint32_t failed = 0;           // ... not logged here at all
  };
  std::mutex purge_mu;
  std::vector<PurgeSettlement> purges;  // a few at most (one purge is published at a time)
  // Channels (docs/replication.md §1).
  uint32_t channel_count = 1;                      // set before the workers start
  std::array<ChannelStatus, kMaxReplicationChannels> channels;
  std::array<uint64_t, kMaxReplicationChannels> aggregated_at{};  // main thread only
  replication::DurableBoard durable;  // standby: every channel's durable ends
  // Frames that reach the lcore of another channel than theirs are handed over through these
  // rings (a DPDK link with several channels; set up before the workers start).
  LinkSteering steering;
  // A dedicated replication lcore (replication_handoff.h; null: channels on the shard lcores).
  ReplicationHandoff* handoff = nullptr;
  // The DPDK link port is started and restarted by channel 0 only; the others poll it while
  // this says it runs.
  std::atomic<bool> link_ready{false};
  // Standby: the state file, shared by the channels; each adopts a newer epoch for itself
  // (AdoptChannelEpoch, rare: a mutex and a blocking write).
  std::mutex state_mu;
  replication::ReplicationState state;
  std::string state_path;
};

// Main thread, every few ms: the channels' figures summed (lag, counters), and-ed (connected,
// caught up, catalog) and max-ed (epoch) into the box's.
void AggregateReplicationStatus(ReplicationStatus& s);
// A purge of a sync queue's partition settled (Replicator::PurgeSettled): recorded for the
// control thread that waits for it (a mutex: once per partition per purge).
void SettlePurge(ReplicationStatus& s, uint32_t queue, uint32_t partition, uint64_t generation,
                 Errc errc);
// A standby channel adopted `epoch` (after cutting its divergent tails): recorded for it, the
// box's epoch is the highest, the file written whole. Returns the box's epoch.
absl::StatusOr<uint64_t> AdoptChannelEpoch(ReplicationStatus& s, uint16_t channel, uint64_t epoch);

// A test seam (sluiced --inject-link-fault): the link shell drops, duplicates and (kernel UDP)
// swaps neighbouring datagrams it sends, with a fixed seed; while `cut_file` exists it sends
// nothing at all (checked every 100 ms). Each box injects on what it sends.
struct LinkFault {
  double loss = 0;
  double duplicate = 0;
  double reorder = 0;
  std::string cut_file;
};

struct ReplicationShellConfig {
  hwconf::ReplicationRole role = hwconf::ReplicationRole::kPrimary;  // effective role
  uint64_t epoch = 0;
  uint64_t boot_id = 0;
  const PortRuntime* link = nullptr;  // the layout's link port; null: kernel UDP on udp_listen
  rte_be32_t udp_listen_ipv4 = 0;     // kernel UDP link: the address its socket binds
  rte_be16_t udp_listen_port = 0;
  uint16_t link_queue = 0;            // its RX and TX queue on it: the channel's (memif: queue
                                      // i of one box is queue i of the other)
  uint16_t channel = 0;               // this worker's replication channel (docs §1)
  uint16_t channels = 1;
  uint32_t layout_shape = 0;          // replication::LayoutShapeHash of this box
  uint16_t worker = 0;                // standby: writes the partitions of this worker's shards
  // A dedicated replication lcore (status->handoff): this channel replicates every partition
  // (standby: writes them all), takes the shard lcores' batches from the hand-off rings and
  // reads catch-up batches from the log files itself (LogFileReader).
  bool dedicated = false;
  rte_be32_t peer_ipv4 = 0;
  rte_be16_t peer_udp_port = 0;
  rte_mempool* pool = nullptr;
  hwconf::Storage storage;             // standby: data dirs and writer settings
  StartupRecovery* recovery = nullptr; // standby: logs recovered at start
  int completion_eventfd = -1;
  uint32_t client_ipv4 = 0;  // primary: its client address (host order), told to the standby
  uint16_t client_port = 0;
  replication::ReplicationState state;  // epoch starts (primary)
  ReplicationStatus* status = nullptr;
  std::optional<LinkFault> fault;
  // Test seam (sluiced --inject-standby-ack-delay): a standby's ack-log writes stay in flight
  // this long before they run (storage::AckFaultInjection::delay_ms).
  uint32_t ack_delay_ms = 0;
};

// What the workers that run no replication channel see of replication (they own no shard: see §1
// of docs/replication.md): whether this box takes writes, and where the primary is.
class ReplicationRoleView final : public Replicator {
 public:
  explicit ReplicationRoleView(const ReplicationStatus& s) : s_(s) {}
  bool Writable() const override {
    return s_.role.load(std::memory_order_relaxed) == 1 && !s_.fenced.load(std::memory_order_relaxed) &&
           rte_get_timer_cycles() < s_.writable_until_tsc.load(std::memory_order_relaxed);
  }
  void PrimaryAddress(uint32_t* ipv4, uint16_t* port) const override {
    *ipv4 = s_.primary_client_ipv4.load(std::memory_order_relaxed);
    *port = s_.primary_client_port.load(std::memory_order_relaxed);
  }
  void AddPartition(uint32_t, uint32_t, uint64_t) override {}
  void RemovePartition(uint32_t, uint32_t) override {}
  void Offer(uint32_t, uint32_t, std::span<const std::byte>, uint64_t, uint64_t, uint64_t) override {}
  bool Replicated(uint32_t, uint32_t, uint64_t, uint64_t*) const override { return false; }

 private:
  const ReplicationStatus& s_;
};

class ReplicationShell final : public Replicator,
                               public replication::LinkOutput,
                               public replication::StandbySink {
 public:
  static absl::StatusOr<std::unique_ptr<ReplicationShell>> Create(const ReplicationShellConfig& c);
  ~ReplicationShell();

  // The link: a DPDK port (its RX queue 0 for the worker's interrupt-driven sleep), or a kernel
  // UDP socket (its fd for the same).
  bool has_port() const { return config_.link != nullptr; }
  // The standby's writes, or the primary's catch-up reads, submitted and not yet completed
  // (Worker::AwaitingKernel: an empty pass yields to the kernel's share of them).
  bool AwaitingKernel() const {
    return (writer_ != nullptr && writer_->in_flight() != 0) || catchup_in_flight_ != 0 ||
           replica_reads_inflight_ != 0 || (ack_ring_ != nullptr && !ack_ring_->idle());
  }
  uint16_t link_port_id() const { return config_.link->addr.port_id; }
  uint16_t link_queue() const { return config_.link_queue; }
  bool link_rx_interrupts() const { return config_.link->rx_interrupts; }
  int udp_fd() const { return udp_fd_; }
  // No link frame another channel handed to this one waits (Worker::Sleep checks it last).
  bool LinkRingsEmpty() const {
    return (!steer_.has_value() || steer_->InboundEmpty()) && HandoffEmpty();
  }
  bool HandoffEmpty() const;

  // Worker pass: frames from the link (and ARP on it), then what is due to send (and, standby,
  // storage completions). `storage`: the worker's (primary catch-up reads). `tx`: this worker's
  // TX buffer of the link port (null for the kernel UDP link).
  uint32_t PollLink(uint64_t now_ns, TxBuffer* tx, LcoreCounters& c);
  uint32_t Poll(uint64_t now_ns, Persistence* storage, TxBuffer* tx, LcoreCounters& c);
  // Standby: the partitions of durable queues follow the queue table.
  void SetTable(const QueueTable& table);
  // Standby: partition file jobs (open, cut, restart) under way on the file worker.
  size_t standby_jobs() const { return standby_jobs_.size(); }
  void Drain();

  // Replicator
  bool Writable() const override;
  void PrimaryAddress(uint32_t* ipv4, uint16_t* udp_port) const override;
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
  Errc ReadReplica(uint32_t queue, uint32_t partition, uint64_t value, uint32_t max_records,
                   uint64_t cookie, bool by_timestamp) override;
  uint64_t ReplicaEnd(uint32_t queue, uint32_t partition) const override;
  uint64_t ReplicaStart(uint32_t queue, uint32_t partition) const override;
  bool ReplicaCommitted(uint32_t queue, uint32_t partition, std::string_view group,
                        uint64_t* offset) const override;
  uint32_t PollReplicaReads(
      absl::FunctionRef<void(uint64_t, Errc, uint64_t, std::span<const shard::StoredMessage>)> fn)
      override;

  // replication::LinkOutput
  std::span<std::byte> Acquire() override;
  void Send(size_t bytes) override;
  // replication::StandbySink
  Errc Apply(uint32_t queue, uint32_t partition, std::span<const std::byte> batch,
             const storage::BatchHeader& header) override;
  bool AppendAck(uint32_t queue, uint32_t partition, const replication::AckRecord& r) override;
  bool ReplaceAcks(uint32_t queue, uint32_t partition, const storage::AckState& state) override;

 private:
  explicit ReplicationShell(const ReplicationShellConfig& c);
  absl::Status OpenStandbyPartition(uint32_t queue, uint32_t partition, shard::Durability d);
  void CloseStandbyPartition(uint32_t queue, uint32_t partition, bool keep_applier = false);
  // A standby partition's blocking file work runs on the shell's file worker, off this lcore
  // (docs/replication.md §4 "Off the lcore"): an open at runtime (a partition the catalog
  // brings), a cut of a divergent tail (closed first, its writes in flight complete), a restart
  // at the primary's start. While its job runs the partition is not in parts_: for a cut or a
  // restart the applier keeps the batches for it and the ack stream its records (Apply and
  // AppendAck refuse, they are offered again), a cut partition stays divergent (nothing of the
  // new primary applied, the epoch not adopted, no ACK sent); a partition being opened has no
  // applier yet (what the primary sends for it is dropped, and sent again once the opened
  // partition's HELLO says where it stands); replica reads of it answer THROTTLED. The lcore
  // adopts the result (UringWriter::AdoptPartition: no blocking file-system call).
  struct StandbyJob {
    std::shared_ptr<storage::PartitionOpenJob> job;
    shard::Durability durability = shard::Durability::kWrite;
    std::string name;  // the queue's, for the log
    uint64_t ours = 0;  // a cut's or restart's: this log's end before it
    bool gone = false;  // the table dropped the partition meanwhile: closed once adopted
  };
  void StartStandbyJob(storage::PartitionOpenJob::Change change, uint32_t queue,
                       uint32_t partition, uint64_t ours, uint64_t offset, uint64_t now_ns);
  void PollStandbyJobs(uint64_t now_ns);
  void FinishStandbyJob(uint32_t queue, uint32_t partition, StandbyJob& j, uint64_t now_ns);
  absl::Status AdoptStandbyPartition(uint32_t queue, uint32_t partition, shard::Durability d,
                                     storage::PartitionOpenJob& job);
  // The lcore half of an open: the partition's state here, the applier, the boards.
  void InstallStandbyPart(uint32_t queue, uint32_t partition, shard::Durability d,
                          const std::string& data_dir, uint64_t end, storage::AckLog acks,
                          const storage::AckState& ack_state, storage::PartitionHandle h);
  // Created with the shell (main thread): a standby's partition jobs and ack-log replacements,
  // a primary's ack-log reads for snapshots.
  std::unique_ptr<storage::FileWorker> files_;
  absl::flat_hash_map<uint64_t, StandbyJob> standby_jobs_;
  // After a cut or restart that failed: not tried again before this time (a second).
  absl::flat_hash_map<uint64_t, uint64_t> change_retry_ns_;
  // The durable partitions of the last table written here, with their durability and name.
  struct Wanted {
    shard::Durability durability;
    std::string name;
  };
  absl::flat_hash_map<uint64_t, Wanted> wanted_;
  bool running_ = false;  // the lcore's loop runs (a pass came): opens go to the file worker
  uint64_t standby_file_jobs_ = 0;
  // A partition's ack log replaced by the primary's snapshot (ReplaceAcks) on the file worker:
  // the temporary file, its fsync, the rename and the directory fsync are the job's
  // (storage::AckReplaceJob). While it runs the partition's old log takes nothing: the receiver
  // offers the snapshot again each pass (ReplaceAcks answers false until the job is done, then
  // adopts it if it wrote that same state) and keeps the records after it; AppendAck refuses.
  // An entry stays until its job is done, also when its partition was closed or reopened
  // meanwhile (`incarnation`: then its result is dropped), so that the worker never holds more
  // jobs than standby_jobs_ and ack_replaces_ count (kMaxFileJobs).
  struct AckReplace {
    std::shared_ptr<storage::AckReplaceJob> job;
    uint64_t incarnation = 0;
  };
  absl::flat_hash_map<uint64_t, AckReplace> ack_replaces_;
  uint64_t acklog_snapshot_jobs_ = 0;  // both roles: kAcklogSnapshotJobs
  uint64_t ack_replace_waits_ = 0;     // standby: kAckReplaceWaits
  uint64_t incarnations_ = 0;
  uint64_t pass_ns_ = 0;  // the current pass's time (ReplaceAcks has none of its own)
  size_t FileJobsUnderWay() const { return standby_jobs_.size() + ack_replaces_.size(); }
  // Done replacements whose partition is gone or was reopened: dropped.
  void ReapAckReplaces();
  void StandbyPass(uint64_t now_ns);
  // Retention (docs/replication.md §4): the primary's stated log starts, once a second.
  void SendLogStarts(uint64_t now_ns, Persistence* storage);
  void RetainStandby(uint32_t queue, uint32_t partition, uint64_t keep_from);
  uint64_t next_log_start_ns_ = 0;
  void PublishStatus();
  void PublishFence();
  // A dedicated replication lcore: the shard lcores' messages, then the board they read.
  uint32_t DrainHandoff(uint64_t now_ns);
  void PublishBoard(uint64_t now_ns);
  std::unique_ptr<LogFileReader> log_reader_;
  std::vector<uint64_t> acks_drained_;  // [worker]: ack records taken from its ring
  // A standby's replica reads ReadReplica starts: also from a shard lcore's request (a
  // dedicated replication lcore), answered through that lcore's answer ring (AnswerShardRead).
  // *answered_by_poll: the reader reports the result through Poll (kOk, or its own refusal).
  Errc StartReplicaRead(uint32_t queue, uint32_t partition, uint64_t value, uint32_t max_records,
                        uint64_t cookie, bool by_timestamp, bool* answered_by_poll);
  uint32_t ServeReplicaReads();
  void AnswerShardRead(uint64_t tagged_cookie, Errc errc, uint64_t next_offset,
                       std::span<const shard::StoredMessage> records);
  uint32_t replica_reads_inflight_ = 0;   // shard lcores' reads the reader holds
  uint64_t replica_reads_served_ = 0;     // answered
  uint64_t replica_answers_throttled_ = 0;  // answered THROTTLED for want of room (never, by
                                            // construction: replica_reads.h)
  uint64_t handoff_batches_ = 0;
  uint64_t handoff_from_log_ = 0;
  bool fence_published_ = false;
  bool shape_logged_ = false;

  struct StandbyPart {
    uint32_t queue = 0;
    uint32_t partition = 0;
    storage::PartitionHandle handle = 0;
    std::string data_dir;
    shard::Durability durability = shard::Durability::kWrite;
    uint64_t durable_end = 0;
    bool failed = false;
    std::optional<storage::AckLog> acks;  // the primary's ack records, replicated
    bool ack_dirty = false;               // in ack_dirty_
    // What replica reads need of those records (docs/replication.md §6), kept as they are
    // applied, on this lcore (no lock): the purge mark (nothing below it is served) and, in
    // partition 0's, the queue's group commits ("<partition>:<group>" -> offset; a new key
    // allocates once, a commit of a known one updates in place).
    uint64_t purged_below = 0;
    absl::flat_hash_map<std::string, uint64_t> commits;
    uint64_t incarnation = 0;  // distinct per open (an ack replacement's job names it)
    bool replacing_acks = false;     // its ack log is being replaced (ack_replaces_)
    uint64_t ack_retry_ns = 0;       // after a failed replacement: not before this
  };
  // The first offset replica reads serve: the log's start or the purge mark, the higher.
  uint64_t ReadStart(const StandbyPart& p) const;
  // The part's ack state changed whole (opened, a snapshot): its purge mark and commits follow,
  // and with a dedicated replication lcore the shard lcores' boards.
  void TakeAckState(StandbyPart& p, const storage::AckState& state);
  // The standby's ack logs write through ack_ring_ (docs/storage.md §6), as the primary's do:
  // nothing blocks on a pass. Settle (control path: close, cut, restart, a replaced log) waits
  // for the log's requests in flight after queueing what it buffers.
  void FlushStandbyAcks();
  void SettleStandbyAcks(storage::AckLog& log);
  void OnStandbyAckFailed(storage::AckLog& log);
  // A dedicated replication lcore: the partition's start, for the shard lcores' replica reads.
  void PublishReplicaStart(const StandbyPart& p);
  void SendAckSnapshots(uint64_t now_ns, Persistence* storage);
  // Primary: the ack logs being read for snapshots on the file worker (storage::AckLoadJob),
  // with the records offered when each was flushed (AckSender::SetSnapshot's live base). An
  // entry stays until its job is done (`stale`: its partition was removed meanwhile, the result
  // goes).
  struct AckLoad {
    std::shared_ptr<storage::AckLoadJob> job;
    uint64_t live_base = 0;
    bool stale = false;
  };
  absl::flat_hash_map<uint64_t, AckLoad> ack_loads_;
  // Primary: partitions whose ack-log file must hold what was appended when the snapshot was
  // asked (`end`, Persistence::AckLogEnd) before it is read, with the records offered then.
  struct AckSettle {
    uint64_t end = 0;
    uint64_t offered = 0;
  };
  absl::flat_hash_map<uint64_t, AckSettle> ack_settles_;
  // Standby batches being written: a FIFO over one aligned arena (O_DIRECT needs the alignment).
  struct Pending {
    StandbyPart* part;
    uint64_t end;
    uint32_t pos;
    uint32_t len;
  };

  ReplicationShellConfig config_;
  std::unique_ptr<replication::PrimaryLink> primary_;
  std::unique_ptr<replication::StandbyLink> standby_;
  // Link I/O.
  PortAddress self_{};
  Peer peer_{};
  bool peer_mac_known_ = false;
  TxBuffer* tx_ = nullptr;          // set for the duration of a pass
  LcoreCounters* counters_ = nullptr;
  rte_mbuf* out_ = nullptr;         // the mbuf of the last Acquire
  uint32_t max_datagram_ = 0;
  // The link port's state, kept by this worker: started (a memif client cannot start while its
  // server is away), and, for a memif client, restarted when the link stays down (it does not
  // reconnect by itself after the server went away).
  void CheckLink(uint64_t now_ns);
  // One frame from the link (its own queue, or handed over by another channel's lcore).
  void OnLinkFrame(rte_mbuf* m, uint64_t now_ns, TxBuffer& tx, LcoreCounters& c);
  std::optional<LinkSteer> steer_;  // several channels over a DPDK link
  uint16_t base_udp_port_ = 0;      // host order: channel c's frames go to base + c
  bool link_started_ = false;
  bool memif_client_ = false;
  uint64_t next_link_check_ns_ = 0;
  uint64_t link_down_since_ns_ = 0;
  // Primary catch-up (docs/replication.md §3): reads through the worker's io_uring
  // (Persistence::StartBatchRead), at most kCatchupReads in flight, one per partition (its
  // Streamer holds one read-back batch at a time); each answer goes to the Streamer as it comes.
  void StartCatchupReads(uint64_t now_ns, Persistence* storage);
  void OnCatchupRead(const Persistence::BatchRead& r, uint64_t now_ns, Persistence* storage);
  struct CatchupRead {
    bool busy = false;
    uint32_t queue = 0;
    uint32_t partition = 0;
    uint64_t from = 0;
    uint64_t cookie = 0;  // unique per read: an answer for another (older) read is ignored
    bool hinted = false;
  };
  std::array<CatchupRead, kCatchupReads> catchup_{};
  uint32_t catchup_in_flight_ = 0;
  uint64_t catchup_seq_ = 0;
  // Per partition: where its next batch starts on disk (the last answer's), and after a failed
  // read, when to try again (a bad batch is not read again every pass). Entries are added once
  // per partition (reserved), never per read.
  struct CatchupHint {
    uint64_t next_offset = UINT64_MAX;
    uint64_t segment = UINT64_MAX;
    uint64_t position = 0;
    uint64_t retry_after_ns = 0;
  };
  absl::flat_hash_map<uint64_t, CatchupHint> catchup_hints_;
  uint64_t backfill_reads_async_ = 0;
  uint64_t backfill_reads_inflight_max_ = 0;
  uint64_t backfill_read_errors_ = 0;
  uint64_t next_read_error_log_ns_ = 0;
  std::vector<std::pair<uint32_t, uint32_t>> ack_snapshots_;  // reserved: partitions to snapshot
  bool ack_snapshot_error_logged_ = false;
  uint64_t ack_load_retry_ns_ = 0;  // a snapshot's read failed: none started before this time
  std::vector<StandbyPart*> ack_dirty_;  // standby: ack logs with buffered records
  Persistence* storage_ = nullptr;
  uint32_t backfills_this_pass_ = 0;
  // Standby storage.
  std::unique_ptr<storage::UringWriter> writer_;
  std::unique_ptr<storage::AckRing> ack_ring_;  // standby: its ack logs' writes
  std::unique_ptr<storage::UringReader> reader_;  // standby reads of the replicated log
  std::vector<shard::StoredMessage> read_records_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<StandbyPart>> parts_;
  absl::flat_hash_map<storage::PartitionHandle, StandbyPart*> by_handle_;
  std::byte* arena_ = nullptr;
  uint32_t arena_bytes_ = 0;
  // FIFO of batches in the arena, pre-allocated (no allocation per batch).
  struct PendingRing {
    std::vector<Pending> slots = std::vector<Pending>(16384);
    uint32_t head = 0, count = 0;
    bool empty() const { return count == 0; }
    bool full() const { return count == slots.size(); }
    Pending& front() { return slots[head]; }
    Pending& at(uint32_t i) { return slots[(head + i) % slots.size()]; }
    void pop_front() { head = (head + 1) % static_cast<uint32_t>(slots.size()); --count; }
    void push_back(const Pending& p) { slots[(head + count++) % slots.size()] = p; }
  };
  PendingRing pending_;
  uint32_t arena_tail_ = 0;
  uint64_t last_status_ns_ = 0;
  uint64_t catalog_seq_seen_ = 0;
  std::string catalog_scratch_;
  // Kernel UDP link: one recvmmsg per burst of 32 datagrams, one sendmmsg per 64 (or per pass).
  absl::Status OpenUdp();
  uint32_t PollUdp(uint64_t now_ns);
  void FlushUdp();
  static constexpr uint32_t kUdpTxBatch = 64;
  static constexpr uint32_t kUdpRxBatch = 32;
  static constexpr uint32_t kUdpSlot = 2048;
  int udp_fd_ = -1;
  std::vector<std::byte> udp_tx_;
  std::vector<std::byte> udp_rx_;
  std::vector<mmsghdr> tx_msgs_;
  std::vector<mmsghdr> rx_msgs_;
  std::vector<iovec> tx_iov_;
  std::vector<iovec> rx_iov_;
  std::vector<sockaddr_in> rx_from_;
  sockaddr_in peer_addr_{};
  uint32_t udp_tx_count_ = 0;
  // Test seam state (LinkFault).
  bool Chance(double p);
  void CheckCut(uint64_t now_ns);
  uint64_t rng_ = 0x9E3779B97F4A7C15ull;
  bool cut_ = false;
  uint64_t next_cut_check_ns_ = 0;
};

}  // namespace sluice::dataplane
