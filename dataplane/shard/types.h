// Vocabulary of the shard engine: ids, watermarks, queue settings, the message the shell hands in
// and the events the engine hands back. Everything here is plain data; the behaviour lives in
// partition_log, producer_table, work_queue, stream and shard.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "dataplane/shard/histogram.h"
#include "protocol/errc.h"

namespace sluice::shard {

// A strong type: two ids or two watermarks of different kinds never mix silently (STYLE §5).
template <typename T, typename Tag>
struct Strong {
  T value{};
  friend constexpr auto operator<=>(const Strong&, const Strong&) = default;
};

using QueueId = Strong<uint32_t, struct QueueIdTag>;
using SubscriptionId = Strong<uint64_t, struct SubscriptionIdTag>;

// Watermarks are *exclusive ends*: WrittenOffset{n} means offsets [0, n) are in memory,
// DurableOffset{n} means offsets [0, n) met the queue's durability mode. A message at offset o is
// durable iff o < durable.value. The storage shell passes a sealed batch's end_offset() here.
using WrittenOffset = Strong<uint64_t, struct WrittenOffsetTag>;
using DurableOffset = Strong<uint64_t, struct DurableOffsetTag>;

// Lease handle of a work-queue message: slot (high 32 bits) and lease generation (low 32 bits).
// A later lease of the same message bumps the generation, so an older handle is detectably stale.
using Receipt = Strong<uint64_t, struct ReceiptTag>;

inline constexpr uint64_t kNoOffset = ~uint64_t{0};

// Filled by the shell, echoed back verbatim with every reply event. The engine never looks inside.
struct ReplyTarget {
  uint64_t endpoint = 0;   // shell's encoding of the peer address / port / tx queue
  uint64_t client_id = 0;
  uint64_t request_id = 0;
  friend constexpr bool operator==(const ReplyTarget&, const ReplyTarget&) = default;
};

enum class QueueType : uint8_t { kStream, kWork };

// What the shell must do before it calls MarkDurable. The engine only carries it.
enum class Durability : uint8_t {
  kNone,   // memory only: the shell calls MarkDurable right after SealBatch
  kWrite,  // written to the device (its cache may lose it on power loss)
  kDsync,  // written with RWF_DSYNC / FUA
};

// Per-queue settings; every partition of the queue gets a copy. Capacities are pre-sized at
// AddPartition so the message path never allocates.
struct QueueConfig {
  QueueType type = QueueType::kWork;
  uint32_t max_message_bytes = 256 * 1024;  // default 256 KiB; must fit one chunk (ShardConfig)
  Durability durability = Durability::kNone;

  // Work queues.
  uint32_t visibility_timeout_ms = 30'000;  // lease length when RECEIVE gives 0
  uint32_t max_receive_count = 0;           // 0 = never dead-letter
  std::optional<QueueId> dead_letter_queue;  // target of messages past max_receive_count
  uint32_t delay_ms = 0;                    // default delay when a message gives 0
  uint32_t ttl_ms = 0;                      // default time to live when a message gives 0; 0 = none
  uint8_t priority_levels = 1;              // 1..16 (the wire's 0..15); higher is handed out first
  bool fifo = false;                        // per-group order: one leased message per group
  uint32_t dedup_window_ms = 0;             // 0 = no dedup by dedup id (any queue type)
  // Within dedup_window_ms, a message without a dedup id is deduplicated by a 64-bit hash of its
  // payload (MessageIn::body; SQS's ContentBasedDeduplication hashes the body only, so do we).
  bool content_dedup = false;

  // Streams: partitions of the whole queue. The shard holding partition 0 is the queue's
  // consumer-group coordinator and assigns partitions [0, partitions) to group members.
  uint32_t partitions = 1;
  uint32_t max_group_members = 64;  // members per consumer group (coordinator only)

  // Streams. Retention also happens when the memory budget is full (oldest durable chunk goes).
  uint64_t retention_bytes = 0;  // 0 = bounded by memory_budget_chunks only
  uint64_t retention_ms = 0;     // 0 = no time bound

  // Capacities (pre-allocated).
  uint32_t memory_budget_chunks = 64;  // chunks this partition may hold; past it: kThrottled
  uint32_t max_messages = 1 << 16;     // work: in-flight messages; stream: offset index entries
  uint32_t max_pending_acks = 16384;   // appended, not yet durable, awaiting ack (storage lag)
  uint32_t max_producers = 1024;       // idempotent producers remembered (LRU beyond)
  uint32_t max_subscriptions = 64;     // streams
  uint32_t max_consumer_groups = 64;   // streams: committed offsets
  uint32_t max_waiters = 256;          // work: parked long-poll receives
  uint32_t max_groups = 4096;          // work, fifo: message groups with messages in flight
  uint32_t max_dedup_entries = 1 << 16;  // dedup ids remembered (oldest forgotten early beyond)
};

// Per-shard settings.
struct ShardConfig {
  uint32_t chunk_bytes = 256 * 1024;  // fixed size of one log buffer; multiple of batch_align_bytes
  uint32_t pool_chunks = 256;         // chunks allocated at start-up, shared by all partitions
  uint32_t batch_align_bytes = 4096;  // every batch starts on this boundary (O_DIRECT)
  uint32_t batch_header_bytes = 64;   // zeroed room before a batch's records, for storage's header
  // Batches of partitions with durability kNone never reach a disk, so they need no O_DIRECT
  // alignment: a batch of one small message then costs a cache line of padding, not 4 KiB.
  // 0 = batch_align_bytes for every partition.
  uint32_t memory_batch_align_bytes = 0;
  uint64_t timer_tick_ns = 1'000'000; // timer resolution; deadlines round up, never fire early
  uint32_t max_partitions = 1024;
  uint32_t max_subscriptions = 4096;
  // Optional memory for the chunks (e.g. hugepages registered with io_uring). Must be
  // batch_align_bytes-aligned and hold chunk_bytes * pool_chunks. Empty: the shard allocates.
  std::span<std::byte> arena;
  // The shard allocates the chunks (no arena): touch every page of them now, so that no send
  // takes a page fault later. A first write to an untouched chunk otherwise faults on the message
  // path, and a transparent-huge-page fault zeroes 2 MiB and may compact memory first: 67 faults
  // took 0.4 s of kernel time in one 10 M in-flight run of bench_shard (session 8), half its
  // figure. Off by default: tests make thousands of small shards and would pay for memory they
  // never use. A long-running shard (the dataplane) wants it on.
  bool prefault_pool = false;
  // Optional histograms the shard fills (the shell's, shared by the shards of one lcore): the
  // time from Append to the kOk ack of each message, as the clock passed in sees it (ns), and the
  // size of each sealed batch (bytes from the header room to the last record; messages).
  AckLatencyHistogram* ack_latency_ns = nullptr;
  BatchBytesHistogram* batch_bytes = nullptr;
  BatchMessagesHistogram* batch_messages = nullptr;
};

// A message as the shell decoded it. `record` is the encoded record, stored verbatim; the views
// need to live only for the Append call.
struct MessageIn {
  std::span<const std::byte> record;
  uint16_t partition = 0;
  uint8_t priority = 0;        // clamped to priority_levels - 1
  uint32_t delay_ms = 0;       // 0 = queue default
  uint32_t ttl_ms = 0;         // 0 = queue default
  std::string_view dedup_id;   // empty = none
  std::string_view group;      // empty = none (fifo queues: the message is ungrouped)
  // The payload inside `record`, for content dedup (QueueConfig::content_dedup). data() ==
  // nullptr = not given: the message is never deduplicated by content (internal moves such as
  // dead-lettering, which carry no dedup id either). An empty payload has a non-null data().
  std::span<const std::byte> body;
  uint64_t producer_id = 0;    // 0 = not idempotent (ProducerTable)
  uint64_t sequence = 0;
  uint64_t timestamp_ns = 0;   // producer's clock; carried inside the record, unused here
};

// A stored message as visitors and events see it. `record` points into the log and is valid only
// during the callback that received it.
struct StoredMessage {
  uint64_t offset = 0;
  uint64_t timestamp_ns = 0;  // server time at append, non-decreasing per partition
  std::span<const std::byte> record;
};

// ---- events ------------------------------------------------------------------------------------

// One acknowledgement for `count` messages of one producer: sequences first_sequence.. and, for
// kOk, offsets first_offset.. (both consecutive). For kDuplicate (retransmit or dedup id hit)
// offsets are the originals, or kNoOffset if the original is too old to be remembered.
struct AckRange {
  ReplyTarget target;
  QueueId queue;
  uint32_t partition = 0;
  uint64_t producer_id = 0;
  uint64_t first_sequence = 0;
  uint32_t count = 0;
  uint64_t first_offset = kNoOffset;
  Errc errc = Errc::kOk;
};

// Stream push delivery to a subscription.
struct Delivery {
  ReplyTarget target;
  SubscriptionId subscription;
  QueueId queue;
  uint32_t partition = 0;
  StoredMessage message;
  uint32_t credits_left = 0;
};

// A retained message was dropped (retention) before a subscriber read it: it jumps to next_offset.
struct SubscriptionGap {
  ReplyTarget target;
  SubscriptionId subscription;
  QueueId queue;
  uint32_t partition = 0;
  uint64_t from_offset = 0;  // first offset the subscriber missed
  uint64_t next_offset = 0;  // where delivery resumes
};

// One work-queue message leased to a receiver.
struct Leased {
  ReplyTarget target;
  QueueId queue;
  uint32_t partition = 0;
  StoredMessage message;
  Receipt receipt;
  uint32_t receive_count = 0;  // 1 on first delivery
};

// End of one RECEIVE's answer (after its Leased events); count 0 = empty (or long poll timed out).
struct ReceiveDone {
  ReplyTarget target;
  QueueId queue;
  uint32_t partition = 0;
  uint32_t count = 0;
  Errc errc = Errc::kOk;
};

enum class DeadLetterReason : uint8_t { kMaxReceiveCount };

// How the last lease of a dead-lettered message ended.
enum class LeaseEnd : uint8_t { kExpired, kNacked };

// A message leaves this queue for its dead-letter queue, which may live on another shard: the
// shell appends `message.record` there. It is already removed here.
struct DeadLetter {
  QueueId source_queue;
  uint32_t source_partition = 0;
  std::optional<QueueId> dead_letter_queue;  // empty: the queue has none; the shell drops it
  StoredMessage message;
  uint32_t receive_count = 0;
  DeadLetterReason reason = DeadLetterReason::kMaxReceiveCount;
  LeaseEnd last_lease = LeaseEnd::kExpired;
};

// Where the engine's outputs go. Implemented by the shell (reply frames) and by tests. Called
// synchronously from inside engine calls; an implementation must not call back into the Shard.
class ShardSink {
 public:
  virtual ~ShardSink() = default;
  virtual void OnAck(const AckRange& ack) = 0;
  virtual void OnDeliver(const Delivery& delivery) = 0;
  virtual void OnSubscriptionGap(const SubscriptionGap& gap) = 0;
  virtual void OnLeased(const Leased& leased) = 0;
  virtual void OnReceiveDone(const ReceiveDone& done) = 0;
  virtual void OnDeadLetter(const DeadLetter& dead) = 0;
  // A work-queue message left its queue for good (deleted, expired or dead-lettered): storage
  // logs it so that a restart does not bring it back.
  virtual void OnRemoved(QueueId /*queue*/, uint32_t /*partition*/, uint64_t /*offset*/) {}
};

// Counters of one shard (the metrics probe reads them; single writer, the owner lcore).
// One partition's totals since it was added here (this process). Plain integers: only the
// owning lcore writes them; the shell copies them out on its own lcore when asked for stats.
struct PartitionCounters {
  uint64_t messages_in = 0;    // appended (retransmits and dedup hits not counted)
  uint64_t bytes_in = 0;       // record bytes appended
  uint64_t messages_out = 0;   // work: leases (redeliveries too); stream: pushed or fetched
  uint64_t bytes_out = 0;      // record bytes of those
  uint64_t acked = 0;          // appends acknowledged kOk or kDuplicate
  uint64_t throttled = 0;      // appends answered kThrottled
  uint64_t dead_lettered = 0;
  uint64_t expired = 0;        // TTL
  uint64_t purged = 0;         // messages dropped by purges
};

struct ShardCounters {
  uint64_t appended = 0;
  uint64_t appended_bytes = 0;
  uint64_t acked = 0;            // messages acked kOk or kDuplicate
  uint64_t throttled = 0;
  uint64_t duplicates = 0;       // retransmits and dedup hits (not appended again)
  uint64_t out_of_order = 0;
  uint64_t rejected = 0;         // too large, unknown partition, wrong type, invalid
  uint64_t batches_sealed = 0;
  uint64_t delivered = 0;        // stream push deliveries
  uint64_t subscription_gaps = 0;
  uint64_t leases = 0;           // work messages handed out (first or later delivery)
  uint64_t redeliveries = 0;     // leases with receive_count > 1
  uint64_t deleted = 0;
  uint64_t nacked = 0;
  uint64_t lease_expired = 0;
  uint64_t expired = 0;          // TTL passed before delivery; never delivered
  uint64_t dead_lettered = 0;
  uint64_t stale_receipts = 0;
  uint64_t unknown_receipts = 0;
  uint64_t waiters_parked = 0;
  uint64_t waiters_timed_out = 0;
  uint64_t producer_evictions = 0;
  uint64_t dedup_evictions = 0;  // dedup ids forgotten before their window (table full)
  uint64_t chunks_evicted = 0;   // stream retention
};

}  // namespace sluice::shard
