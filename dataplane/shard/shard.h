// The queue engine of one shard: the partitions it owns and the calls the shell makes. One shard
// is driven by exactly one lcore; nothing here locks, reads a clock or allocates per message
// (time comes in as now_ns; tables are sized at AddPartition).
//
// Contract with the shell (DPDK lcore loop or the kernel-UDP test server):
// - Append every decoded message. Every Append is acknowledged exactly once through
//   ShardSink::OnAck: errors (throttled, too large, out of order...) at once, successes and
//   duplicates when the message is durable. Acks are coalesced into ranges; call Flush() once per
//   loop pass to emit the last open range.
// - SealBatch at batch_bytes / batch_time or every loop pass; hand ForEachUndurableBatch's bytes
//   to storage; call MarkDurable(end offset) when storage (and replication, if the queue asks)
//   completes. Durability `none`: MarkDurable right after SealBatch. Nothing is acked, fetched,
//   pushed or received before it is durable.
// - Every Receive gets exactly one ReceiveDone (after its Leased events), now or after a long poll.
// - Call Tick(now_ns) every loop pass: it fires leases, delays, TTLs and long-poll timeouts,
//   pushes to subscribers that still have credit, and applies stream retention by time.
// Record bytes in events are valid only during the callback.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "dataplane/shard/ack_coalescer.h"
#include "dataplane/shard/chunk_pool.h"
#include "dataplane/shard/dedup_table.h"
#include "dataplane/shard/group_coordinator.h"
#include "dataplane/shard/partition_log.h"
#include "dataplane/shard/producer_table.h"
#include "dataplane/shard/ring.h"
#include "dataplane/shard/stream.h"
#include "dataplane/shard/timer_wheel.h"
#include "dataplane/shard/types.h"
#include "dataplane/shard/work_queue.h"

namespace sluice::shard {

// One partition of one queue, owned by this shard.
class Partition {
 public:
  QueueId queue() const { return queue_; }
  uint32_t index() const { return index_; }
  const QueueConfig& config() const { return config_; }
  const PartitionLog& log() const { return log_; }
  // Work queues only (nullptr for streams) and the reverse.
  const WorkQueue* work() const { return work_.get(); }
  const Stream* stream() const { return stream_.get(); }
  // Partition 0 of a stream: the queue's consumer-group coordinator; nullptr elsewhere.
  const GroupCoordinator* groups() const { return groups_.get(); }
  // Appends (messages) waiting for durability to be acked.
  uint64_t pending_acks() const { return pending_messages_; }
  bool failed() const { return failed_; }
  const PartitionCounters& counters() const { return counters_; }

 private:
  friend class Shard;
  // A run of `count` appends waiting for durability: one producer, one reply target, one append
  // time, consecutive offsets from `offset`, sequences from `sequence` going up by
  // `sequence_step` (1: a numbering producer; 0: one that repeats its sequence, such as producer
  // id 0 replaying a frame). A pass's messages from one client are one entry, not one each: the
  // ring's pushes and MarkDurable's walk are per run (they were ~70 instructions per message).
  // Only kOk appends form runs; a duplicate waiting for its original is an entry of its own.
  struct PendingAck {
    static constexpr uint8_t kStepUnknown = 2;  // count 1: the next append decides
    ReplyTarget target;
    uint64_t producer_id;
    uint64_t sequence;     // the first message's
    uint64_t offset;       // the first message's (a duplicate's: its original)
    uint64_t appended_ns;  // ack latency
    uint32_t count;
    uint8_t sequence_step;
    Errc errc;
  };
  Partition(QueueId queue, uint32_t index, const QueueConfig& config, const ShardConfig& shard,
            ChunkPool& pool, uint64_t* chunks_evicted);

  QueueId queue_;
  uint32_t index_;
  bool open_listed_ = false;  // in Shard::open_batches_
  bool failed_ = false;       // storage failed: no more appends
  // A stream that has not failed and does not deduplicate by content: its appends without a
  // dedup id may take Shard::Append's inline path (UpdatePlainStream keeps it true to those
  // fields). Every queue has a dedup window by default (for messages that carry an id).
  bool plain_stream_ = false;
  void UpdatePlainStream() {
    plain_stream_ = stream_ != nullptr && !failed_ && !(dedup_.enabled() && config_.content_dedup);
  }
  // Written on the owning lcore only; mutable so that the const Fetch counts what it reads.
  mutable PartitionCounters counters_;
  QueueConfig config_;
  PartitionLog log_;  // declared before work_: the work queue releases its records first
  ProducerTable producers_;
  DedupTable dedup_;
  Ring<PendingAck> acks_;  // waiting for durability, in offset order of first append
  // Messages in acks_' runs: bounded by acks_.capacity() (max_pending_acks, rounded up to a
  // power of two, as when every message had an entry), so the ring cannot overflow either.
  uint64_t pending_messages_ = 0;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<WorkQueue> work_;
  std::unique_ptr<GroupCoordinator> groups_;
};

struct AppendResult {
  Errc errc = Errc::kOk;       // kOk, kDuplicate, or the error also sent in the ack
  uint64_t offset = kNoOffset;  // assigned (or original, for a duplicate)
};

class Shard {
 public:
  // Deliveries per subscriber per call (every drain is bounded; Tick continues the rest).
  static constexpr uint32_t kPushBudget = 256;

  Shard(const ShardConfig& config, ShardSink* sink);
  ~Shard();
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // ---- control (may allocate) ----
  // kInvalidArgument: already present, too many partitions, or a setting out of range.
  Errc AddPartition(QueueId queue, uint32_t partition, const QueueConfig& config);
  // The settings that may change while a partition lives (a queue attribute update): default
  // visibility timeout, max receive count and dead-letter queue, default delay and TTL, max
  // message size (within what a chunk holds), stream retention, dedup window, content dedup.
  // They apply to what comes next (a message keeps the delay and TTL it was sent with; a lease
  // keeps its deadline; a dedup id's window counts from when it was seen, see
  // DedupTable::SetWindow). Table sizes, priority levels, FIFO and durability are fixed at
  // AddPartition: ignored here.
  // kInvalidArgument if max_message_bytes no longer fits a chunk (nothing changed then).
  Errc UpdateLiveConfig(QueueId queue, uint32_t partition, const QueueConfig& next);
  // Purge: drops every message that is durable now, keeping the partition and its offsets.
  // Streams: the log starts at the durable end (*purged_below); offsets are never reused, so the
  // next append continues where the partition was; subscribers behind it get a SubscriptionGap,
  // fetches below it kOffsetOutOfRange. Work queues: ready, delayed and leased messages go
  // (their receipts name nothing: kUnknownReceipt); parked receives keep waiting. In both, what
  // was appended but is not durable yet stays (it is after the purge point) and idempotence and
  // dedup state stay. *purged_below: offsets below it are gone (the shell logs it so a restart
  // does not bring them back). Returns kUnknownPartition if not here.
  Errc Purge(QueueId queue, uint32_t partition, uint64_t* purged_below, uint64_t* dropped);
  // Drops the partition and everything in it (its subscriptions end, leases vanish).
  Errc RemovePartition(QueueId queue, uint32_t partition);
  const Partition* Find(QueueId queue, uint32_t partition) const;

  // ---- produce ----
  // Stream append or work-queue send. The partition is message.partition.
  // Inline: the common stream append (the partition asked for last, a plain stream, a message
  // without a dedup id, within the size limit, from producer id 0 or the next sequence of the
  // producer seen last, room
  // for its ack, room in the open batch) is done here, in the caller's frame; anything else —
  // every check, error and side path — is AppendSlow's, which decides from scratch.
  AppendResult Append(const ReplyTarget& target, QueueId queue, const MessageIn& m,
                      uint64_t now_ns) {
    SeeTime(now_ns);
    Partition* p = Get(queue, m.partition);
    if (p == nullptr || !p->plain_stream_ || !m.dedup_id.empty() ||
        m.record.size() > p->config_.max_message_bytes ||
        p->pending_messages_ >= p->acks_.capacity() ||
        (m.producer_id != 0 && !p->producers_.IsNextOfLast(m.producer_id, m.sequence)))
        [[unlikely]] {
      return AppendSlow(target, queue, m);
    }
    const PartitionLog::Appended a = p->log_.Append(m.record, now_ns_, m.producer_id);
    if (a.errc != Errc::kOk) [[unlikely]] return LogRefused(*p, target, m, a.errc);
    if (!p->open_listed_) [[unlikely]] ListOpen(*p);
    if (m.producer_id != 0) p->producers_.RecordNext(m.sequence, a.offset);
    return Accepted(*p, target, m, a.offset);
  }
  bool SealBatch(QueueId queue, uint32_t partition);  // true if a batch was sealed
  // Seals every open batch (visiting only partitions appended to since the last call) and calls
  // `sealed` for each partition that had one. Returns batches sealed.
  uint32_t SealAll(absl::FunctionRef<void(const Partition&)> sealed);
  uint32_t SealAll() {
    return SealAll([](const Partition&) {});
  }
  // Seals the open batches that `due` says are ready (batch bytes, age, or storage idle); the
  // others stay open and are offered again next call.
  uint32_t SealDue(absl::FunctionRef<bool(const Partition&)> due,
                   absl::FunctionRef<void(const Partition&)> sealed);
  // Offsets below `durable` met the queue's durability mode: release their acks, make them
  // receivable / push them. kUnknownPartition if not here.
  Errc MarkDurable(QueueId queue, uint32_t partition, DurableOffset durable);
  // The same, with the time it happened (the ack latency histogram measures up to it).
  Errc MarkDurable(QueueId queue, uint32_t partition, DurableOffset durable, uint64_t now_ns) {
    SeeTime(now_ns);
    return MarkDurable(queue, partition, durable);
  }
  Errc ForEachUndurableBatch(QueueId queue, uint32_t partition,
                             absl::FunctionRef<void(const SealedBatch&)> fn) const;
  // Storage failed for good (EIO, ENOSPC, failed fsync): appends waiting for durability and every
  // later append are answered kStorageFailed; what is durable stays readable.
  Errc FailPartition(QueueId queue, uint32_t partition);

  // ---- recovery (after AddPartition, before any other call for the partition) ----
  // Takes back one record storage recovered: idempotence and dedup state always; the message
  // itself unless `deleted` (a work-queue message whose delete was logged). kThrottled: the
  // partition's memory budget cannot hold what is on disk.
  Errc Restore(QueueId queue, const MessageIn& message, uint64_t offset, uint64_t timestamp_ns,
               bool deleted);
  // The partition continues at `next_offset`; restored work messages become receivable.
  Errc EndRestore(QueueId queue, uint32_t partition, uint64_t next_offset);

  // ---- streams ----
  FetchResult Fetch(QueueId queue, uint32_t partition, StartPosition start, uint32_t max_messages,
                    uint32_t max_bytes, absl::FunctionRef<void(const StoredMessage&)> visit) const;
  // Pushes what is available at once (up to credits). kInvalidArgument if the id is in use.
  Errc Subscribe(SubscriptionId id, const ReplyTarget& target, QueueId queue, uint32_t partition,
                 StartPosition start, uint32_t credits);
  Errc Credit(SubscriptionId id, uint32_t credits);
  Errc Unsubscribe(SubscriptionId id);
  Errc CommitOffset(QueueId queue, uint32_t partition, std::string_view group, uint64_t offset);
  std::optional<uint64_t> CommittedOffset(QueueId queue, uint32_t partition,
                                          std::string_view group) const;

  // ---- stream consumer groups (group_coordinator.h) ----
  // Addressed to the queue's coordinator, partition 0 of the stream: kUnknownPartition when this
  // shard does not hold it, kWrongQueueType for a work queue; else as GroupCoordinator.
  Errc JoinGroup(QueueId queue, std::string_view group, uint64_t member, uint32_t session_ms,
                 uint64_t now_ns, GroupAssignment* out);
  Errc LeaveGroup(QueueId queue, std::string_view group, uint64_t member, GroupAssignment* out);
  Errc DescribeGroup(QueueId queue, std::string_view group, GroupAssignment* out) const;
  Errc CommitGroup(QueueId queue, std::string_view group, uint64_t member, uint32_t generation,
                   uint32_t partition, uint64_t offset);
  std::optional<uint64_t> GroupCommitted(QueueId queue, std::string_view group,
                                         uint32_t partition) const;

  // ---- work queues ----
  // Always answered by exactly one ReceiveDone (with errc on error).
  Errc Receive(const ReplyTarget& target, QueueId queue, uint32_t partition,
               const ReceiveArgs& args, uint64_t now_ns);
  // kOk, kStaleReceipt (re-leased since), kUnknownReceipt (deleted / never), kUnknownPartition,
  // kWrongQueueType.
  Errc Delete(QueueId queue, uint32_t partition, Receipt receipt, uint64_t now_ns);
  Errc Nack(QueueId queue, uint32_t partition, Receipt receipt, uint32_t delay_ms, uint64_t now_ns);
  Errc Extend(QueueId queue, uint32_t partition, Receipt receipt, uint32_t visibility_ms,
              uint64_t now_ns);

  // ---- time and output ----
  // Advances timers to now_ns and does what became due. Returns units of work done.
  uint64_t Tick(uint64_t now_ns);
  // Emits the open coalesced ack range.
  void Flush() { acks_out_.Flush(*sink_); }

  const ShardCounters& counters() const { return counters_; }
  const ShardConfig& config() const { return config_; }
  ChunkPool& pool() { return pool_; }  // region() for io_uring buffer registration
  uint64_t now_ns() const { return now_ns_; }

 private:
  static uint64_t Key(QueueId q, uint32_t p) { return (uint64_t{q.value} << 32) | p; }
  // Inline fast paths (the per-message calls): the partition asked for last, a clock that did
  // not move.
  Partition* Get(QueueId q, uint32_t p) {
    const uint64_t key = Key(q, p);
    if (last_ != nullptr && key == last_key_) return last_;
    return Lookup(key);
  }
  Partition* Lookup(uint64_t key);  // and remember it as the last
  const Partition* Get(QueueId q, uint32_t p) const;
  void SeeTime(uint64_t now_ns) {
    if (now_ns > now_ns_) Advance(now_ns);
  }
  void Advance(uint64_t now_ns);
  void Ack(Partition& p, const ReplyTarget& target, const MessageIn& m, uint64_t offset, Errc errc);
  AppendResult AppendSlow(const ReplyTarget& target, QueueId queue, const MessageIn& m);
  AppendResult LogRefused(Partition& p, const ReplyTarget& target, const MessageIn& m, Errc errc);
  void ListOpen(Partition& p) {  // SealAll visits only partitions with an open batch
    p.open_listed_ = true;
    open_batches_.push_back(&p);
  }
  // The kOk ack of the message just appended at `offset`: it extends the last run when that run
  // is this producer's to this target, of this pass (same append time), ends just before
  // `offset`, and the sequence follows its step. Fields are compared and written in place (no
  // PendingAck built on the stack and copied: that was a store-forwarding stall per message).
  void AddPendingAck(Partition& p, const ReplyTarget& target, const MessageIn& m,
                     uint64_t offset) {
    ++p.pending_messages_;
    if (!p.acks_.empty()) {
      Partition::PendingAck& b = p.acks_.back();
      if (b.offset + b.count == offset && b.errc == Errc::kOk && b.appended_ns == now_ns_ &&
          b.producer_id == m.producer_id && b.target == target && b.count != UINT32_MAX) {
        // count 1: step unknown, (count - 1) * step is 0 whatever it holds.
        const uint64_t d = m.sequence - (b.sequence + uint64_t{b.count - 1} * b.sequence_step);
        if (b.sequence_step == Partition::PendingAck::kStepUnknown ? d <= 1
                                                                  : d == b.sequence_step) {
          b.sequence_step = static_cast<uint8_t>(d);
          ++b.count;
          return;
        }
      }
    }
    Partition::PendingAck& ack = p.acks_.emplace_back();
    ack.target = target;
    ack.producer_id = m.producer_id;
    ack.sequence = m.sequence;
    ack.offset = offset;
    ack.appended_ns = now_ns_;
    ack.count = 1;
    ack.sequence_step = Partition::PendingAck::kStepUnknown;
    ack.errc = Errc::kOk;
  }
  // The end of every accepted append (inline and slow path): its ack waits, counted.
  AppendResult Accepted(Partition& p, const ReplyTarget& target, const MessageIn& m,
                        uint64_t offset) {
    AddPendingAck(p, target, m, offset);
    ++counters_.appended;
    counters_.appended_bytes += m.record.size();
    ++p.counters_.messages_in;
    p.counters_.bytes_in += m.record.size();
    return {Errc::kOk, offset};
  }
  AppendResult Reject(const ReplyTarget& target, QueueId queue, const MessageIn& m, Errc errc);
  // Answers every append of `p` still waiting for durability with `errc`.
  void RejectPendingAcks(Partition& p, Errc errc);
  // What m is deduplicated by (its dedup id, else its payload on content_dedup queues), or
  // kNoDedup (shard.cc).
  static uint64_t DedupHash(const Partition& p, const MessageIn& m);
  AppendResult Duplicate(Partition& p, const ReplyTarget& target, const MessageIn& m,
                         uint64_t offset);
  Errc WorkPartition(QueueId queue, uint32_t partition, WorkQueue** out);
  void RecordSealed(const Partition& p);  // batch histograms
  Errc Coordinator(QueueId queue, GroupCoordinator** out) const;

  ShardConfig config_;
  ShardSink* sink_;
  ChunkPool pool_;
  TimerWheel wheel_;
  ShardCounters counters_;
  AckCoalescer acks_out_;
  uint64_t now_ns_ = 0;
  // The wheel's tick changes only when the clock reaches this (the start of the next tick): a
  // pass within the same tick (most of them: a pass is ~100 ns, a tick 1 ms) skips the division
  // and the wheel.
  uint64_t next_tick_ns_ = 0;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Partition>> partitions_;
  Partition* last_ = nullptr;  // Get's cache: the partition of key last_key_ (null: none)
  uint64_t last_key_ = 0;
  std::vector<Partition*> streams_;  // partitions Tick visits for push and retention
  std::vector<Partition*> coordinators_;  // partitions 0 of streams: group session expiry
  std::vector<Partition*> open_batches_;  // partitions with an open batch (SealAll visits these)
  struct SubRef {
    Partition* partition;
    uint32_t index;
  };
  absl::flat_hash_map<uint64_t, SubRef> subscriptions_;
};

}  // namespace sluice::shard
