// The request layer of one worker: turns validated request frames into calls on the shard
// engines this worker owns, and engine outputs (acks, deliveries, receive replies) into reply
// frames. Pure C++ (no DPDK): the shell gives it frames and a ReplyChannel to write replies into,
// so the same code runs behind the DPDK worker and in tests.
//
// A frame may address partitions owned by several workers. The receiving worker hands the frame
// to every owner; each owner's Frontend handles only the items of the partitions it owns (and the
// receiving worker answers for items no worker can take: bad partitions, full hand-off rings).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataplane/persistence.h"
#include "dataplane/counters.h"
#include "dataplane/queue_table.h"
#include "dataplane/replicator.h"
#include "dataplane/shard/types.h"
#include "hwconf/layout.h"
#include "protocol/codec.h"

namespace sluice::dataplane {

// Where a reply goes, packed by the shell (for DPDK: Peer words); opaque here.
struct Endpoint {
  uint64_t w0 = 0;
  uint64_t w1 = 0;
  bool operator==(const Endpoint&) const = default;
};

// A buffer for one reply datagram, held until sent or abandoned.
struct ReplyBuffer {
  std::span<std::byte> bytes;  // empty: no buffer was available (the shell counted it)
  uint32_t handle = 0;
  bool ok() const { return !bytes.empty(); }
};

class ReplyChannel {
 public:
  // Up to kMaxOutstanding buffers may be held at once (one per open reply frame).
  static constexpr uint32_t kMaxOutstanding = 32;

  // A buffer for one reply datagram to `to`, at most `max_bytes` and at most what the port's MTU
  // allows.
  virtual ReplyBuffer Acquire(const Endpoint& to, size_t max_bytes) = 0;
  // The buffer holds a finished frame of `bytes`: send it.
  virtual void Send(const ReplyBuffer& buffer, size_t bytes) = 0;
  // The buffer is not used after all.
  virtual void Abandon(const ReplyBuffer& buffer) = 0;
  // Appends `record` to (queue, partition) on another worker, as an internal PRODUCE that gets
  // no reply (dead letters). False when it cannot be handed over now (ring full, no buffer).
  virtual bool HandOffRecord(uint16_t worker, uint32_t queue, std::span<const std::byte> record) = 0;

 protected:
  ~ReplyChannel() = default;
};

// How the receiving worker routed a frame, for the owners that handle it.
struct RouteContext {
  bool receiver = false;           // this worker received the frame from the wire
  uint64_t throttled_workers = 0;  // receiver only: owners whose ring was full (bit per worker)
  uint16_t any_partition = 0;      // RECEIVE with kAnyPartition: the partition chosen
};

struct FrontendCounters {
  Counter produced;          // messages appended
  Counter acked;             // messages acknowledged
  Counter duplicates;        // idempotent retransmits answered with the original offset
  Counter throttled;         // items answered THROTTLED
  Counter rejected;          // items answered with another error
  Counter delivered;         // messages sent in MESSAGES/DELIVER
  Counter reply_no_buffer;   // replies lost for want of a buffer
  Counter dead_lettered;     // messages moved to their dead-letter queue
  Counter dead_letters_dropped;  // could not be moved (no DLQ, or no room / ring full)
  Counter storage_failures;  // partitions whose log failed (they answer STORAGE_FAILED), and
                             // purge marks that could not be logged
  Counter purges;            // partition purges applied
  Counter not_primary;       // requests refused: this box is a standby (or a fenced primary)
  Counter not_replicated;    // sync-queue messages answered NOT_REPLICATED
  Counter replication_degraded;  // ALARM: sync-queue messages acked without the standby
                                 // (queues with replication_degrade = allow)
};

// Histograms of one worker, filled on its lcore by its shards (plain per-lcore counters, see
// shard/histogram.h) and read by the control plane at any time.
struct FrontendHistograms {
  shard::AckLatencyHistogram ack_latency_ns;      // produce -> durable ack, per message
  shard::BatchBytesHistogram batch_bytes;         // per sealed batch
  shard::BatchMessagesHistogram batch_messages;   // per sealed batch
};

// Figures of one partition this worker holds (for the control plane's stats; a walk over the
// partition's state, so taken on request, not per message).
struct PartitionFigures {
  uint32_t queue = 0;
  uint32_t partition = 0;
  uint32_t shard = 0;
  uint64_t depth = 0;       // stream: offsets retained; work: pending + delayed + ready + backlog
  uint64_t in_flight = 0;   // work: leased
  uint64_t delayed = 0;
  uint64_t low_offset = 0;
  uint64_t next_offset = 0;
  uint64_t durable_offset = 0;
  uint64_t bytes_stored = 0;  // chunks held x chunk size
  uint64_t bytes_on_disk = 0;  // the partition's log (durable queues)
  shard::PartitionCounters counters;  // messages and bytes in/out... since it was added here
};

// The engine's shard settings for a worker whose largest queue message is `largest` bytes, with
// `shard_memory_mb` of message memory per shard (the layout's dataplane.shard_memory_mb), and the
// largest message such shards take (chunks are sized once, at start).
shard::ShardConfig EngineShardConfig(uint32_t largest_message_bytes,
                                     uint32_t shard_memory_mb = hwconf::kDefaultShardMemoryMb);
uint32_t EngineMessageCap(uint32_t largest_message_bytes);

// Replies to this endpoint are suppressed: internal PRODUCEs between workers (dead letters).
inline constexpr Endpoint kInternalEndpoint{0, 0};

class Frontend {
 public:
  // `shards`: the shard ids this worker owns; `worker`: its index. Shards are sized for messages
  // of max(min_message_bytes, the table's largest) bytes (queues added later must fit).
  // `persistence`: the worker's storage (null: every queue in memory, whatever its durability).
  // `replicator`: the worker's link to the standby, or its standby role (null: no replication).
  // `shard_memory_mb`: each shard's chunk pool (EngineShardConfig).
  Frontend(const QueueTable& table, uint16_t worker, std::span<const uint32_t> shards,
           ReplyChannel& replies, uint32_t min_message_bytes = 0,
           Persistence* persistence = nullptr, Replicator* replicator = nullptr,
           uint32_t shard_memory_mb = hwconf::kDefaultShardMemoryMb);
  ~Frontend();
  Frontend(const Frontend&) = delete;
  Frontend& operator=(const Frontend&) = delete;

  // A validated frame (protocol::ValidateFrame passed) from `from`.
  void OnFrame(const protocol::FrameView& frame, const Endpoint& from, const RouteContext& route,
               uint64_t now_ns);
  // The same for a validated PRODUCE whose view the caller already holds (the receiver's path:
  // one decode of its prefix for routing and appending, no dispatch on the type).
  void OnProduce(const protocol::FrameView& frame, const protocol::ProduceView& produce,
                 const Endpoint& from, const RouteContext& route, uint64_t now_ns);

  // Closes batches that are due, hands them to storage (durability none: durable at once),
  // applies storage completions, timers, deliveries. Returns work done.
  uint32_t Service(uint64_t now_ns);
  // Shutdown: seals and persists everything still open, waits for it, sends the last acks.
  void Drain(uint64_t now_ns);

  // Routes by `next` from now on (the shell loads a new table at the start of a pass, on the
  // lcore): creates the partitions of added queues it owns, drops those of deleted queues, and
  // empties purged ones. Never reads the previous table (RCU may free it after this pass).
  void SetTable(const QueueTable& next);
  // Appends the figures of every partition this worker holds.
  void CollectPartitionStats(std::vector<PartitionFigures>* out) const;
  // The memory every batch of this worker's shards lives in (one chunk pool per shard), for the
  // storage shell to register with its io_uring.
  std::vector<std::span<std::byte>> BatchMemory() const;

  const FrontendCounters& counters() const { return counters_; }
  const FrontendHistograms& histograms() const { return histograms_; }
  std::string StatsJson() const;

 private:
  class Impl;
  FrontendHistograms histograms_;  // before impl_: its shards write here until they go
  std::unique_ptr<Impl> impl_;
  FrontendCounters counters_;
};

// Owner of an item: the worker of (queue, partition), or `receiver` when the partition is invalid.
inline uint16_t OwnerOf(const QueueInfo& q, uint32_t partition, uint16_t receiver) {
  return partition < q.partition_worker.size() ? q.partition_worker[partition] : receiver;
}

}  // namespace sluice::dataplane
