#include "dataplane/frontend.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "dataplane/pending_replies.h"
#include "dataplane/reassembly.h"
#include "dataplane/shard/shard.h"
#include "protocol/assert.h"

namespace sluice::dataplane {
namespace p = protocol;

namespace {

// Where a FETCH or SUBSCRIBE starts (kCommitted is resolved by the caller).
shard::StartPosition StartOf(p::StartKind kind, uint64_t value) {
  switch (kind) {
    case p::StartKind::kEarliest: return shard::StartPosition::Earliest();
    case p::StartKind::kLatest: return shard::StartPosition::Latest();
    case p::StartKind::kTimestamp: return shard::StartPosition::Timestamp(value);
    default: return shard::StartPosition::Offset(value);
  }
}

// Frame ids of a reply: the request's client and request ids.
p::FrameIds IdsOf(const shard::ReplyTarget& t, uint16_t flags = 0) {
  return p::FrameIds{t.client_id, t.request_id, flags};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Impl: the shards of this worker, the reply frames being filled, and the engine's sink.
class Frontend::Impl final : public shard::ShardSink {
 public:
  Impl(const QueueTable& table, uint16_t worker, std::span<const uint32_t> shards,
       ReplyChannel& replies, FrontendCounters& counters, FrontendHistograms& histograms,
       uint32_t min_message_bytes, Persistence* persistence, Replicator* replicator);

  void SetTable(const QueueTable& next);
  void CollectPartitionStats(std::vector<PartitionFigures>* out) const;
  std::vector<std::span<std::byte>> BatchMemory() const {
    std::vector<std::span<std::byte>> out;
    for (const std::unique_ptr<shard::Shard>& s : shards_) {
      if (s != nullptr) out.push_back(s->pool().region());
    }
    return out;
  }

  void OnFrame(const p::FrameView& f, const Endpoint& from, const RouteContext& route,
               uint64_t now_ns);
  uint32_t Service(uint64_t now_ns);
  void Drain(uint64_t now_ns);
  std::string StatsJson() const;

  // shard::ShardSink
  void OnAck(const shard::AckRange& ack) override;
  void OnDeliver(const shard::Delivery& d) override;
  void OnSubscriptionGap(const shard::SubscriptionGap& gap) override;
  void OnLeased(const shard::Leased& l) override;
  void OnReceiveDone(const shard::ReceiveDone& d) override;
  void OnDeadLetter(const shard::DeadLetter& d) override;
  void OnRemoved(shard::QueueId queue, uint32_t partition, uint64_t offset) override;

 private:
  // Consumer-group offsets live with the coordinator (partition 0's shard): they are logged in
  // partition 0's ack log as "<partition>:<group>" and given back to the coordinator at start.
  // Returns OfferAck's count for partition 0's ack stream (0: not replicated).
  uint64_t PersistGroupCommit(const QueueInfo& q, std::string_view group, uint32_t partition,
                              uint64_t offset);
  // A durable partition's recovered records back into its shard (from AddPartition).
  absl::Status RestoreLog(shard::Shard& s, const QueueInfo& q, uint32_t partition,
                          shard::Durability durability);
  bool Persisted(const shard::Partition& pt) const {
    return persistence_ != nullptr && pt.config().durability != shard::Durability::kNone;
  }
  // Storage, per pass: seal what is due, hand sealed batches over, apply completions.
  bool SealNow(const shard::Partition& pt, uint64_t now_ns) const;
  uint32_t SubmitBatches();
  void OnStorage(uint32_t queue, uint32_t partition, shard::DurableOffset durable, Errc errc,
                 std::string_view failure);
  // Removes log segments nothing needs any more (every kRetentionScanNs, on this lcore).
  void EnforceLogRetention(uint64_t now_ns);
  static constexpr uint64_t kRetentionScanNs = 1'000'000'000;

  // A reply frame being filled; sent at the end of the request or pass that opened it.
  struct OpenFrame {
    bool used = false;
    p::FrameType type = p::FrameType::kAck;
    uint64_t endpoint = 0;
    uint64_t client_id = 0;
    uint64_t key = 0;   // ACK: producer id; MESSAGES: request id; DELIVER: subscription
    uint32_t queue = 0;
    uint32_t partition = 0;
    ReplyBuffer buffer;
    p::FrameWriter writer{{}};
  };
  static constexpr size_t kMaxOpenFrames = 16;

  struct Subscription {
    uint64_t client_id = 0;
    uint64_t client_sub = 0;  // the client's subscription id
    uint64_t endpoint = 0;
    uint32_t queue = 0;
    uint32_t partition = 0;
    uint64_t next_offset = 0;  // next offset the engine will push
    uint32_t credits = 0;      // engine's remaining credit
    uint64_t last_credit_ns = 0;  // the consumer's last CREDIT (or the SUBSCRIBE)
    uint64_t last_push_ns = 0;    // our last DELIVER, empty or not
  };
  // docs/protocol.md §11: idle subscriptions get an empty DELIVER each heartbeat interval (so the
  // consumer notices loss at the tail); one without CREDIT for three intervals is dropped.
  static constexpr uint64_t kHeartbeatNs = 1'000'000'000;
  static constexpr uint64_t kSubscriptionScanNs = 100'000'000;
  void ScanSubscriptions(uint64_t now_ns);

  // Every partition this worker creates or drops goes through these two (storage hooks in here:
  // open/recover a partition's log, close/remove it).
  void AddPartition(const QueueInfo& q, uint32_t partition);
  void RemovePartition(uint32_t queue_id, uint32_t partition);
  void PurgePartition(const QueueInfo& q, uint32_t partition);

  shard::Shard* ShardOf(uint32_t queue, uint32_t partition);
  // Inline: asked per run of records to one partition (per x1 frame).
  bool Owns(const QueueInfo& q, uint32_t partition) const {
    return partition < q.partition_worker.size() && q.partition_worker[partition] == worker_;
  }
  // Whether this worker handles an item of (q, partition): it owns the partition, or it received
  // the frame and must answer for an item no owner can take (`answer` says with what).
  bool Mine(const QueueInfo& q, uint32_t partition, const RouteContext& route, Errc* answer) const {
    *answer = Errc::kOk;
    return Owns(q, partition) || MineNotOwned(q, partition, route, answer);
  }
  bool MineNotOwned(const QueueInfo& q, uint32_t partition, const RouteContext& route,
                    Errc* answer) const;
  Endpoint EndpointOf(uint64_t w0) const;
  void Learn(const Endpoint& from) {
    // Most frames come from the client the previous one came from: no hashing for them.
    if (from.w0 != learned_.w0 || from.w1 != learned_.w1) LearnNew(from);
  }
  void LearnNew(const Endpoint& from);

  OpenFrame* Find(p::FrameType type, uint64_t endpoint, uint64_t client, uint64_t key,
                  uint32_t queue, uint32_t partition);
  OpenFrame* Open(p::FrameType type, const shard::ReplyTarget& t, uint64_t key, uint32_t queue,
                  uint32_t partition);
  void Close(OpenFrame* f, bool more = false);
  void CloseAll();

  void Error(const p::FrameView& f, const Endpoint& to, Errc errc, std::string_view detail);
  // M is p::MessageView (a reassembled message) or p::RecordRef (a record of the frame).
  template <class M>
  void AppendMessage(const QueueInfo& q, const shard::ReplyTarget& target, uint64_t producer_id,
                     const M& m, uint64_t now_ns);
  void OnProduce(const p::FrameView& f, const Endpoint& from, const RouteContext& route,
                 uint64_t now_ns);
  void OnReceive(const p::FrameView& f, const Endpoint& from, const RouteContext& route,
                 uint64_t now_ns);
  void OnReceiptOps(const p::FrameView& f, const Endpoint& from, const RouteContext& route,
                    uint64_t now_ns);
  void OnFetch(const p::FrameView& f, const Endpoint& from, const RouteContext& route);
  void OnSubscribe(const p::FrameView& f, const Endpoint& from, const RouteContext& route);
  void OnCredit(const p::FrameView& f);
  void OnNak(const p::FrameView& f, const Endpoint& from);
  void OnUnsubscribe(const p::FrameView& f, const Endpoint& from);
  // Consumer groups: answered by the owner of the queue's partition 0 (its coordinator).
  // The stream a JOIN_GROUP/COMMIT names, when this worker coordinates its groups; nullptr when
  // answered (unknown queue, not a stream, busy) or another worker's.
  const QueueInfo* GroupCoordinatorQueue(const p::FrameView& f, const Endpoint& from,
                                         const RouteContext& route, uint32_t queue_id);
  void OnJoinGroup(const p::FrameView& f, const Endpoint& from, const RouteContext& route,
                   uint64_t now_ns);
  void OnCommit(const p::FrameView& f, const Endpoint& from, const RouteContext& route);
  // Request/reply inboxes (docs/protocol.md §11.2): owned by the worker of shard
  // inbox_id % shards; a reply is pushed to the inbox's endpoint as a DELIVER.
  bool OwnsInbox(uint64_t inbox_id, const RouteContext& route, bool* throttled) const;
  void OnOpenInbox(const p::FrameView& f, const Endpoint& from, const RouteContext& route);
  void OnReply(const p::FrameView& f, const Endpoint& from, const RouteContext& route);
  void AnswerOne(const p::FrameView& f, const Endpoint& from, Errc errc, uint64_t value);
  // Sends [start, start+max) of a stream partition as MESSAGES (fetch) or DELIVER (nak re-send).
  void SendRange(p::FrameType type, const shard::ReplyTarget& t, uint64_t sub_id,
                 uint32_t queue, uint32_t partition, shard::StartPosition start,
                 uint32_t max_messages, size_t frame_cap);
  // The same from any source of stored messages: the engine (memory) or a read of the log.
  using Visit = absl::FunctionRef<void(const shard::StoredMessage&)>;
  using Source =
      absl::FunctionRef<shard::FetchResult(uint32_t max_messages, uint32_t max_bytes, Visit)>;
  void SendRecords(p::FrameType type, const shard::ReplyTarget& t, uint64_t sub_id,
                   uint32_t queue, uint32_t partition, Source source, uint32_t max_messages,
                   size_t frame_cap);
  void ErrorTo(const shard::ReplyTarget& t, p::FrameType request, Errc errc);
  // FETCH of stream data older than memory: answered from the log once the read completes.
  bool StartColdFetch(const shard::ReplyTarget& t, uint32_t queue, uint32_t partition,
                      p::StartKind kind, uint64_t value, uint32_t max_messages, size_t cap);
  void OnColdRead(uint64_t cookie, Errc errc, uint64_t next_offset,
                  std::span<const shard::StoredMessage> records);
  // A stored record too large for one reply datagram, sent as fragments, one frame each.
  void SendFragments(p::FrameType type, const shard::ReplyTarget& t, uint64_t key,
                     uint32_t queue, uint32_t partition, const p::DeliveredMeta& meta,
                     std::span<const std::byte> record, uint64_t sub_id);
  void AckOne(const shard::ReplyTarget& t, uint32_t queue, uint32_t partition, uint64_t producer,
              uint64_t sequence, Errc errc);
  static bool FitsOneFrame(size_t prefix, size_t record) {
    return p::kHeaderBytes + prefix + p::kDeliveredMetaBytes + record <= p::kDefaultFrameBytes;
  }
  static uint64_t SubKey(uint64_t client, uint64_t sub, uint32_t partition) {
    return (client * 0x9E3779B97F4A7C15ull) ^ (sub << 16) ^ partition;
  }

  const QueueTable* table_;  // the current table; the previous one is never read again
  const uint16_t worker_;
  // The partitions this worker holds, by queue id: what SetTable reconciles against (it must not
  // read the previous table, which RCU may have freed).
  struct Held {
    uint64_t purge_generation = 0;
    std::vector<uint32_t> partitions;
  };
  absl::flat_hash_map<uint32_t, Held> held_;
  std::vector<uint32_t> scratch_;
  ReplyChannel& replies_;
  FrontendCounters& counters_;
  std::vector<std::unique_ptr<shard::Shard>> shards_;  // indexed by shard id (null: not ours)
  std::array<OpenFrame, kMaxOpenFrames> open_{};
  uint32_t open_used_ = 0;       // slots of open_ in use: most frames leave none open
  OpenFrame* pinned_ = nullptr;  // SendRange's frame, filled across a fetch visit
  absl::flat_hash_map<uint64_t, uint64_t> peer_mac_;          // endpoint word 0 -> MAC word
  Endpoint learned_{~uint64_t{0}, ~uint64_t{0}};  // the last pair put in peer_mac_
  absl::flat_hash_map<uint64_t, Subscription> subs_;          // engine id -> subscription
  absl::flat_hash_map<uint64_t, uint64_t> sub_ids_;           // SubKey -> engine id
  uint64_t next_sub_id_ = 1;
  uint64_t now_ns_ = 0;             // latest time seen (events carry none)
  uint64_t next_sub_scan_ns_ = 0;
  uint64_t subscriptions_dropped_ = 0;
  struct Inbox {
    uint64_t endpoint = 0;
    uint64_t client_id = 0;
    uint64_t last_seen_ns = 0;  // OPEN_INBOX refreshes it; 3 heartbeat intervals without: gone
    uint64_t next_offset = 0;   // numbers the replies pushed (the requester can spot loss)
  };
  static constexpr size_t kMaxInboxes = 65536;  // per worker
  absl::flat_hash_map<uint64_t, Inbox> inboxes_;
  std::unique_ptr<Reassembly> reassembly_;
  std::vector<const shard::Partition*> sealed_;  // Service: partitions sealed this pass
  Persistence* persistence_ = nullptr;  // null: every partition lives in memory only
  // Replication (null: none). On a primary, every durable partition's batches are offered to it
  // and sync queues' acks wait for the standby (ReleaseSync, OnAck); on a standby (or a fenced
  // primary) every request is answered NOT_PRIMARY.
  Replicator* replicator_ = nullptr;
  struct Replicated {
    uint32_t queue = 0;
    uint32_t partition = 0;
    uint64_t local = 0;     // durable on our disk
    uint64_t released = 0;  // given to the engine (MarkDurable): acks released up to here
  };
  absl::flat_hash_map<uint64_t, Replicated> replicated_;
  Errc ack_override_ = Errc::kOk;  // set around a MarkDurable that releases NOT_REPLICATED acks
  uint64_t override_key_ = 0;      // ... of this partition
  bool degraded_logged_ = false;
  static uint64_t PartKey(uint32_t q, uint32_t p) { return (uint64_t{q} << 32) | p; }
  void ReleaseSync(uint64_t now_ns);
  // Sync queues' DELETE and COMMIT replies wait until the standby wrote their ack records
  // (docs/replication.md §13): held here (bounded, pre-allocated; null without replication).
  std::unique_ptr<PendingReplies> pending_;
  static constexpr uint32_t kPendingReplies = 4096;
  static constexpr uint32_t kPendingItems = 16384;
  bool capture_ack_ = false;  // around an engine Delete: OnRemoved notes its record's count
  uint64_t captured_ack_ = 0;
  // Whether (q, partition)'s ack records must reach the standby before a reply.
  bool SyncAcks(const QueueInfo& q, uint32_t partition) const {
    return q.sync_replication && !replicated_.empty() &&
           replicated_.contains(PartKey(q.id, partition));
  }
  // kNotReplicated when a sync partition's standby is gone or lagging and the queue does not
  // degrade: the request is refused before anything is done (as a PRODUCE is); else kOk.
  Errc SyncAckRefusal(const QueueInfo& q, uint32_t partition, uint64_t now_ns);
  // Closes the reply pending_ has open: sent at once when nothing in it waits.
  void ClosePending();
  uint32_t ReleasePending(uint64_t now_ns, bool final);
  void SendPending(const PendingReplies::Head& h, std::span<const PendingReplies::Item> items);
  void DegradedAlarm(const QueueInfo& q);
  // The errc a sync queue's ACK (OK or DUPLICATE) must carry now; kOk when it may go as is.
  Errc SyncVerdict(const QueueInfo& q, uint32_t partition, uint64_t end, uint64_t now_ns);
  void ErrorNotPrimary(const p::FrameView& f, const Endpoint& to);
  // The ERROR frame answering request `f`, at most the request's size.
  void SendError(const p::FrameView& f, const Endpoint& to, const p::ErrorReply& e);
  // A FETCH on a standby: served from its replicated log; false when it cannot be (NOT_PRIMARY).
  bool OnStandbyFetch(const p::FrameView& f, const Endpoint& from, const RouteContext& route);
  // SUBSCRIBE / CREDIT / NAK / UNSUBSCRIBE on a standby: push reads of its replicated log
  // (docs/replication.md §6). False: not one of ours (the caller answers NOT_PRIMARY).
  bool OnStandbySubscription(const p::FrameView& f, const Endpoint& from,
                             const RouteContext& route);
  uint32_t ServiceReplicaSubs(uint64_t now_ns);
  // A standby subscription: pushed by replica reads as the standby's log grows and credits allow.
  struct ReplicaSub {
    bool used = false;
    uint64_t client_id = 0;
    uint64_t client_sub = 0;
    uint64_t endpoint = 0;
    uint32_t queue = 0;
    uint32_t partition = 0;
    uint64_t next_offset = 0;   // the next offset to push
    uint64_t credit_end = 0;    // pushes stay below (CREDIT's next_offset + credits)
    uint64_t last_credit_ns = 0;
    uint64_t last_push_ns = 0;
    bool reading = false;       // a replica read for it is in flight (cold_)...
    uint64_t read_from = 0;     // ...from this offset
  };
  static constexpr size_t kMaxReplicaSubs = 64;
  std::array<ReplicaSub, kMaxReplicaSubs> replica_subs_{};
  ReplicaSub* FindReplicaSub(uint64_t client_id, uint64_t client_sub, uint32_t partition);
  struct ColdFetch;
  void OnReplicaPush(ReplicaSub& s, const ColdFetch& c, Errc errc, uint64_t next_offset,
                     std::span<const shard::StoredMessage> records);
  // Records read from a log (a cold or replica read) sent as MESSAGES or DELIVER with `flags`;
  // returns the offset after the last record sent (0: none).
  uint64_t SendStored(p::FrameType type, const ColdFetch& c, uint64_t sub_id,
                      uint64_t next_offset, std::span<const shard::StoredMessage> records,
                      uint32_t max_messages, size_t cap, uint16_t flags);
  uint16_t reply_flags_ = 0;  // added to MESSAGES frames being built (kFlagReplica)
  std::vector<const shard::Partition*> to_submit_;  // sealed batches not all handed to storage
  std::vector<std::pair<uint32_t, uint32_t>> persisted_;  // (queue, partition) with a log here
  struct ColdFetch {
    bool used = false;
    bool replica = false;  // a standby's read of its replicated log: MESSAGES marked REPLICA
    int replica_sub = -1;  // >= 0: a push for replica_subs_[replica_sub], sent as DELIVER
    shard::ReplyTarget target;
    uint32_t queue = 0;
    uint32_t partition = 0;
    uint32_t max_messages = 0;
    size_t cap = 0;
  };
  std::array<ColdFetch, 16> cold_{};  // reads in flight; the cookie is the index
  uint64_t next_retention_ns_ = 0;
  struct PendingDeadLetter {
    uint32_t queue;
    uint32_t partition;
    size_t at;
    size_t len;
  };
  std::vector<PendingDeadLetter> dl_pending_;  // fixed capacity
  size_t AnnotateDeadLetter(const shard::DeadLetter& d, std::span<std::byte> out,
                            size_t room) const;
  std::vector<std::byte> dl_arena_;            // their records, fixed capacity
  void FlushDeadLetters(uint64_t now_ns);
};

shard::ShardConfig EngineShardConfig(uint32_t largest_message_bytes) {
  // Chunks hold whole records: at least twice the largest message (plus its metadata) per chunk.
  shard::ShardConfig sc;
  sc.chunk_bytes = 256 * 1024;
  while (sc.chunk_bytes < 2 * largest_message_bytes + 16 * 1024) sc.chunk_bytes *= 2;
  sc.pool_chunks = std::max<uint32_t>(16, (64u << 20) / sc.chunk_bytes);  // 64 MiB per shard
  // Durable queues' batches are written with O_DIRECT: 4 KiB-aligned. Queues with durability
  // `none` never reach a disk: their batches need only a cache line of alignment.
  sc.batch_align_bytes = 4096;
  sc.memory_batch_align_bytes = 64;
  sc.batch_header_bytes = 64;
  return sc;
}

uint32_t EngineMessageCap(uint32_t largest_message_bytes) {
  const shard::ShardConfig sc = EngineShardConfig(largest_message_bytes);
  return sc.chunk_bytes - sc.batch_header_bytes -
         static_cast<uint32_t>(sizeof(shard::RecordHeader));
}

Frontend::Impl::Impl(const QueueTable& table, uint16_t worker, std::span<const uint32_t> shards,
                     ReplyChannel& replies, FrontendCounters& counters,
                     FrontendHistograms& histograms, uint32_t min_message_bytes,
                     Persistence* persistence, Replicator* replicator)
    : table_(&table), worker_(worker), replies_(replies), counters_(counters),
      persistence_(persistence), replicator_(replicator) {
  shards_.resize(table.shard_count());
  const uint32_t largest = std::max(table.largest_message_bytes(), min_message_bytes);
  shard::ShardConfig sc = EngineShardConfig(largest);
  sc.ack_latency_ns = &histograms.ack_latency_ns;
  sc.batch_bytes = &histograms.batch_bytes;
  sc.batch_messages = &histograms.batch_messages;
  for (uint32_t s : shards) {
    SLUICE_ASSERT(s < shards_.size() && table.WorkerOfShard(s) == worker);
    shards_[s] = std::make_unique<shard::Shard>(sc, this);
  }
  to_submit_.reserve(1024);
  for (const QueueInfo& q : table.queues()) {
    for (uint32_t part = 0; part < q.partition_shard.size(); ++part) AddPartition(q, part);
  }
  reassembly_ = std::make_unique<Reassembly>(largest);
  if (replicator_ != nullptr) {
    pending_ = std::make_unique<PendingReplies>(kPendingReplies, kPendingItems);
  }
  sealed_.reserve(1024);
  dl_pending_.reserve(1024);
  dl_arena_.reserve(std::max<size_t>(4u << 20, 2 * size_t{largest} + 65536));
  peer_mac_.reserve(4096);
  subs_.reserve(1024);
  inboxes_.reserve(4096);
  sub_ids_.reserve(1024);
}

void Frontend::Impl::AddPartition(const QueueInfo& q, uint32_t partition) {
  shard::Shard* s = shards_[q.partition_shard[partition]].get();
  if (s == nullptr) return;  // another worker's
  shard::QueueConfig config = q.config;
  if (persistence_ == nullptr) config.durability = shard::Durability::kNone;  // memory only
  const shard::QueueId id{q.id};
  const Errc e = s->AddPartition(id, partition, config);
  if (e != Errc::kOk) {
    // The control plane checks what the engine takes before it publishes (chunk size, partitions
    // per shard), so this is a bug, not bad input.
    std::fprintf(stderr, "sluiced: queue '%s' partition %u: engine refused it: %s\n",
                 q.name.c_str(), partition, std::string(ErrcName(e)).c_str());
  }
  SLUICE_ASSERT(e == Errc::kOk);
  Held& h = held_[q.id];
  h.purge_generation = q.purge_generation;
  h.partitions.push_back(partition);
  if (persistence_ == nullptr || config.durability == shard::Durability::kNone) return;
  if (absl::Status st = RestoreLog(*s, q, partition, config.durability); !st.ok()) {
    // Serve the queue's other partitions; this one answers STORAGE_FAILED until an operator
    // repairs its log (sluice-log verify) and restarts.
    std::fprintf(stderr, "sluiced: queue '%s' partition %u: %s; it takes no writes\n",
                 q.name.c_str(), partition, std::string(st.message()).c_str());
    s->RemovePartition(id, partition);  // drop whatever was restored before the error
    const Errc again = s->AddPartition(id, partition, config);
    SLUICE_ASSERT(again == Errc::kOk);  // it was accepted a moment ago
    s->FailPartition(id, partition);
    ++counters_.storage_failures;
    return;
  }
  if (replicator_ != nullptr && replicator_->Writable()) {
    const uint64_t end = s->Find(id, partition)->log().durable_end().value;
    replicator_->AddPartition(q.id, partition, end);
    replicated_[PartKey(q.id, partition)] = Replicated{q.id, partition, end, end};
  }
}

absl::Status Frontend::Impl::RestoreLog(shard::Shard& s, const QueueInfo& q, uint32_t part,
                                        shard::Durability durability) {
  const shard::QueueId id{q.id};
  absl::StatusOr<RecoveredLog> log = persistence_->Open(
      q.id, part, durability,
      [&](const RecoveredMessage& r) -> absl::Status {
        auto m = p::DecodeMessageRecord(r.record);
        if (!m.has_value()) {
          return absl::DataLossError("a recovered record does not decode (CRC passed: a bug?)");
        }
        shard::MessageIn in;
        in.record = r.record;
        in.partition = static_cast<uint16_t>(part);
        in.priority = m->priority;
        in.delay_ms = m->delay_ms;
        in.ttl_ms = m->ttl_ms;
        in.dedup_id = m->dedup_id;
        in.group = m->group_id;
        in.producer_id = r.producer_id;
        in.sequence = m->sequence;
        in.timestamp_ns = m->timestamp_ns;
        const Errc e = s.Restore(id, in, r.offset, r.timestamp_ns, r.deleted);
        if (e == Errc::kThrottled) {
          return absl::ResourceExhaustedError(
              "the messages on disk exceed the partition's memory budget");
        }
        if (e != Errc::kOk) return absl::InternalError(std::string(ErrcName(e)));
        return absl::OkStatus();
      },
      [&](std::string_view key, uint64_t offset) {
        // "<partition>:<group>" in partition 0's log: a consumer group's offset (see
        // PersistGroupCommit), restored as an administrative commit while the group is empty.
        const size_t colon = key.find(':');
        uint32_t group_partition = 0;
        if (part == 0 && colon != std::string_view::npos &&
            absl::SimpleAtoi(absl::string_view(key.data(), colon), &group_partition)) {
          s.CommitGroup(id, key.substr(colon + 1), 0, 0, group_partition, offset);
        } else {
          s.CommitOffset(id, part, key, offset);
        }
      });
  if (!log.ok()) return log.status();
  const Errc ended = s.EndRestore(id, part, log->next_offset);
  SLUICE_ASSERT(ended == Errc::kOk);
  persisted_.emplace_back(q.id, part);
  return absl::OkStatus();
}

uint64_t Frontend::Impl::PersistGroupCommit(const QueueInfo& q, std::string_view group,
                                            uint32_t partition, uint64_t offset) {
  if (persistence_ == nullptr || q.config.durability == shard::Durability::kNone) return 0;
  char key[300];
  const int n = std::snprintf(key, sizeof key, "%u:%.*s", partition, static_cast<int>(group.size()),
                              group.data());
  if (n <= 0 || static_cast<size_t>(n) >= sizeof key) return 0;
  persistence_->Committed(q.id, 0, std::string_view(key, static_cast<size_t>(n)), offset);
  if (!replicated_.empty() && replicated_.contains(PartKey(q.id, 0))) {
    return replicator_->OfferAck(q.id, 0, Replicator::kAckCommit, partition,
                                 std::string_view(key, static_cast<size_t>(n)), offset);
  }
  return 0;
}

void Frontend::Impl::RemovePartition(uint32_t queue_id, uint32_t partition) {
  if (replicated_.erase(PartKey(queue_id, partition)) != 0) {
    replicator_->RemovePartition(queue_id, partition);
  }
  // The engine ends the partition's subscriptions; forget ours, so nothing refers to it.
  for (auto it = subs_.begin(); it != subs_.end();) {
    const Subscription& sub = it->second;
    if (sub.queue == queue_id && sub.partition == partition) {
      sub_ids_.erase(SubKey(sub.client_id, sub.client_sub, sub.partition));
      subs_.erase(it++);
    } else {
      ++it;
    }
  }
  for (auto& s : shards_) {
    // Pending appends are answered UNKNOWN_PARTITION and parked receives end, by the engine.
    const shard::Partition* pt = s ? s->Find(shard::QueueId{queue_id}, partition) : nullptr;
    if (pt == nullptr) continue;
    std::erase(to_submit_, pt);
    // A deleted queue's log goes with it.
    if (std::erase(persisted_, std::make_pair(queue_id, partition)) > 0) {
      persistence_->Close(queue_id, partition, /*remove=*/true);
    }
    s->RemovePartition(shard::QueueId{queue_id}, partition);
    return;
  }
}

void Frontend::Impl::PurgePartition(const QueueInfo& q, uint32_t partition) {
  shard::Shard* s = ShardOf(q.id, partition);
  if (s == nullptr) return;
  uint64_t below = 0;
  uint64_t dropped = 0;
  // Sync queues: the purge request (control plane) waits until the standby wrote the mark.
  const bool sync = SyncAcks(q, partition);
  auto settle = [&](Errc e) {
    if (sync) replicator_->PurgeSettled(q.id, partition, q.purge_generation, e);
  };
  if (const Errc e = s->Purge(shard::QueueId{q.id}, partition, &below, &dropped); e != Errc::kOk) {
    settle(e);
    return;
  }
  ++counters_.purges;
  if (std::find(persisted_.begin(), persisted_.end(), std::make_pair(q.id, partition)) ==
      persisted_.end()) {
    return;
  }
  if (absl::Status st = persistence_->Purged(q.id, partition, below); !st.ok()) {
    // Control path (once per purge): the purge holds in memory; a restart would bring back
    // what the log still has below the mark.
    std::fprintf(stderr, "sluiced: queue '%s': %s\n", q.name.c_str(),
                 std::string(st.message()).c_str());
    ++counters_.storage_failures;
    settle(Errc::kStorageFailed);
    return;
  }
  if (replicated_.contains(PartKey(q.id, partition))) {
    const uint64_t n =
        replicator_->OfferAck(q.id, partition, Replicator::kAckDeletedBelow, partition, {}, below);
    if (!sync) return;
    // Held as a reply without a frame (request type 0): settled when the standby has it.
    if (n != 0 && pending_->Open({0, q.id, q.purge_generation, 0, now_ns_}, 1)) {
      pending_->Add({Errc::kOk, partition, 0, PartKey(q.id, partition), n});
      ClosePending();
    } else {
      settle(n == 0 ? Errc::kOk : Errc::kThrottled);
    }
  }
}

bool Frontend::Impl::SealNow(const shard::Partition& pt, uint64_t now_ns) const {
  if (!Persisted(pt) || pt.failed()) return true;
  const BatchPolicy& policy = persistence_->batch_policy();
  const shard::PartitionLog& log = pt.log();
  if (log.open_batch_bytes() >= policy.batch_bytes ||
      now_ns >= log.open_batch_since_ns() + policy.batch_time_ns) {
    return true;
  }
  if (!persistence_->Idle(pt.queue().value, pt.index())) return false;
  // A sync queue's acks wait for the standby too: its "write in flight" lasts until the standby
  // acknowledged, so batches grow over the replication round trip (group commit across the
  // link) instead of crossing it one small batch at a time.
  if (!replicated_.empty()) {
    auto it = replicated_.find(PartKey(pt.queue().value, pt.index()));
    if (it != replicated_.end() && it->second.released < log.sealed_end().value) {
      const QueueInfo* q = table_->Find(pt.queue().value);
      uint64_t standby = 0;
      if (q != nullptr && q->sync_replication &&
          replicator_->Replicated(pt.queue().value, pt.index(), now_ns, &standby)) {
        return false;
      }
    }
  }
  return true;
}

uint32_t Frontend::Impl::SubmitBatches() {
  uint32_t work = 0;
  size_t kept = 0;
  for (size_t i = 0; i < to_submit_.size(); ++i) {
    const shard::Partition* pt = to_submit_[i];
    if (std::find(to_submit_.begin(), to_submit_.begin() + kept, pt) != to_submit_.begin() + kept) {
      continue;  // listed twice (sealed again while throttled)
    }
    Errc last = Errc::kOk;
    pt->log().ForEachUndurableBatch([&](const shard::SealedBatch& b) {
      if (last != Errc::kOk) return;  // keep order: nothing after a batch that did not go
      last = persistence_->Submit(pt->queue().value, pt->index(), b);
      if (last == Errc::kOk) {
        ++work;
        // Submit wrote the header: these are the on-disk bytes (a batch offered before is
        // ignored by the streamer).
        if (replicator_ != nullptr && replicated_.contains(PartKey(pt->queue().value, pt->index()))) {
          replicator_->Offer(pt->queue().value, pt->index(), b.bytes.first(b.used_bytes),
                             b.first_offset, b.end_offset(), now_ns_);
        }
      }
    });
    if (last == Errc::kThrottled) to_submit_[kept++] = pt;
    // kStorageFailed: the completion that failed the partition (already or soon) reports it.
  }
  to_submit_.resize(kept);
  return work;
}

Errc Frontend::Impl::SyncVerdict(const QueueInfo& q, uint32_t partition, uint64_t end,
                                 uint64_t now_ns) {
  uint64_t standby = 0;
  if (replicator_->Replicated(q.id, partition, now_ns, &standby) && end <= standby) return Errc::kOk;
  if (q.degrade_allow) {
    ++counters_.replication_degraded;
    if (!degraded_logged_) {
      degraded_logged_ = true;  // once per process: the counter says how often since
      std::fprintf(stderr, "sluiced: ALARM: queue '%s' (replication = sync, replication_degrade "
                   "= allow) acknowledges without the standby: it is gone, lagging or catching "
                   "up\n", q.name.c_str());
    }
    return Errc::kOk;
  }
  return Errc::kNotReplicated;
}

// Gives durable offsets to the engine: async queues as soon as they are local; sync queues up to
// what the standby holds too, or, while the standby cannot acknowledge, all that is local with
// the acks answered NOT_REPLICATED (replication_degrade = allow: acked, alarm raised).
void Frontend::Impl::ReleaseSync(uint64_t now_ns) {
  for (auto& [key, r] : replicated_) {
    if (r.local <= r.released) continue;
    shard::Shard* s = ShardOf(r.queue, r.partition);
    const QueueInfo* q = table_->Find(r.queue);
    if (s == nullptr || q == nullptr) continue;
    uint64_t target = r.local;
    if (q->sync_replication) {
      uint64_t standby = 0;
      if (replicator_->Replicated(r.queue, r.partition, now_ns, &standby)) {
        target = std::min(r.local, standby);
      } else if (!q->degrade_allow) {
        ack_override_ = Errc::kNotReplicated;
        override_key_ = key;
      }
    }
    if (target <= r.released) continue;
    r.released = target;
    s->MarkDurable(shard::QueueId{r.queue}, r.partition, shard::DurableOffset{target}, now_ns);
    ack_override_ = Errc::kOk;
  }
}

void Frontend::Impl::DegradedAlarm(const QueueInfo& q) {
  ++counters_.replication_degraded;
  if (!degraded_logged_) {
    degraded_logged_ = true;  // once per process: the counter says how often since
    std::fprintf(stderr, "sluiced: ALARM: queue '%s' (replication = sync, replication_degrade "
                 "= allow) acknowledges without the standby: it is gone, lagging or catching "
                 "up\n", q.name.c_str());
  }
}

Errc Frontend::Impl::SyncAckRefusal(const QueueInfo& q, uint32_t partition, uint64_t now_ns) {
  if (q.degrade_allow) return Errc::kOk;
  uint64_t applied = 0;
  if (replicator_->AckReplicated(q.id, partition, now_ns, &applied)) return Errc::kOk;
  ++counters_.not_replicated;
  return Errc::kNotReplicated;
}

void Frontend::Impl::ClosePending() {
  if (pending_->Close()) return;  // waits for the standby
  SendPending(pending_->last_head(), pending_->last_items());
  pending_->DropLast();
}

// Releases the replies whose ack records the standby has written; a reply whose partition is
// out of sync (standby gone, lagging, catching up), or that waited past the bound, is answered
// NOT_REPLICATED (replication_degrade = allow: OK, alarm raised), as a produce ack is.
uint32_t Frontend::Impl::ReleasePending(uint64_t now_ns, bool final) {
  uint64_t key = UINT64_MAX;  // the last partition asked: most replies name the same one
  bool in_sync = false;
  uint64_t applied = 0;
  return pending_->Release(
      [&](const PendingReplies::Head& h, const PendingReplies::Item& it) {
        if (it.wait_key != key) {
          key = it.wait_key;
          in_sync = replicator_->AckReplicated(static_cast<uint32_t>(key >> 32),
                                               static_cast<uint32_t>(key), now_ns, &applied);
        }
        if (in_sync && applied >= it.wait_seq) return PendingReplies::Verdict::kOk;
        if (in_sync && !final && now_ns < h.since_ns + Replicator::kSyncLagBoundNs) {
          return PendingReplies::Verdict::kWait;
        }
        const QueueInfo* q = table_->Find(static_cast<uint32_t>(key >> 32));
        if (q != nullptr && q->degrade_allow) {
          DegradedAlarm(*q);
          return PendingReplies::Verdict::kOk;
        }
        ++counters_.not_replicated;
        ++counters_.rejected;
        return PendingReplies::Verdict::kNotReplicated;
      },
      [&](const PendingReplies::Head& h, std::span<const PendingReplies::Item> items) {
        SendPending(h, items);
      });
}

void Frontend::Impl::SendPending(const PendingReplies::Head& h,
                                 std::span<const PendingReplies::Item> items) {
  if (h.request_type == 0) {  // a purge's mark: the control plane waits for it, no frame
    SLUICE_ASSERT(items.size() == 1);
    replicator_->PurgeSettled(static_cast<uint32_t>(h.client_id), items[0].index, h.request_id,
                              items[0].errc);
    return;
  }
  const shard::ReplyTarget target{h.endpoint, h.client_id, h.request_id};
  const auto type = static_cast<p::FrameType>(h.request_type);
  OpenFrame* out = Open(p::FrameType::kResult, target, h.request_id, 0, 0);
  if (out == nullptr) return;
  out->writer.BeginResult(IdsOf(target), type);
  for (const PendingReplies::Item& it : items) {
    const p::ResultItem item{it.errc, it.index, it.value};
    if (out->writer.AddResult(item) == p::EncodeError::kNoSpace) {
      Close(out, true);
      out = Open(p::FrameType::kResult, target, h.request_id, 0, 0);
      if (out == nullptr) return;
      out->writer.BeginResult(IdsOf(target), type);
      out->writer.AddResult(item);
    }
  }
  Close(out);
}

void Frontend::Impl::ErrorNotPrimary(const p::FrameView& f, const Endpoint& to) {
  ++counters_.not_primary;
  ++counters_.rejected;
  p::ErrorReply e;
  e.errc = Errc::kNotPrimary;
  e.request_type = static_cast<uint8_t>(f.header.type);
  replicator_->PrimaryAddress(&e.primary_ipv4, &e.primary_port);
  e.detail = "standby";
  SendError(f, to, e);
}

bool Frontend::Impl::OnStandbyFetch(const p::FrameView& f, const Endpoint& from,
                                    const RouteContext& route) {
  if (!route.receiver) return true;  // the receiver answers (the standby's link worker)
  auto r = p::DecodeFetch(f);
  const QueueInfo* q = table_->Find(r->queue_id);
  if (q == nullptr || !q->is_stream() || r->partition >= q->partition_shard.size()) return false;
  if (r->start_kind != p::StartKind::kOffset && r->start_kind != p::StartKind::kEarliest &&
      r->start_kind != p::StartKind::kTimestamp) {
    return false;
  }
  size_t slot = 0;
  while (slot < cold_.size() && cold_[slot].used) ++slot;
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  const Errc e = slot == cold_.size()
                     ? Errc::kThrottled
                     : replicator_->ReadReplica(q->id, r->partition,
                                                r->start_kind == p::StartKind::kEarliest
                                                    ? replicator_->ReplicaStart(q->id, r->partition)
                                                    : r->start_value,
                                                r->max_messages, slot,
                                                r->start_kind == p::StartKind::kTimestamp);
  if (e == Errc::kUnknownPartition) return false;
  if (e != Errc::kOk) {
    ErrorTo(target, p::FrameType::kFetch, e);
    return true;
  }
  const size_t cap = r->max_frame_bytes == 0 ? p::kDefaultFrameBytes : r->max_frame_bytes;
  cold_[slot] = ColdFetch{true, true, -1, target, q->id, r->partition, r->max_messages, cap};
  return true;
}

// ---- a standby's subscriptions ---------------------------------------------------------------
// The standby's engine holds no replicated records (they go from the link straight to its log),
// so its SUBSCRIBE is served here: per subscription, replica reads from next_offset while the
// standby's durable end is ahead and the consumer's credit allows, each pushed as DELIVER frames
// marked REPLICA. Credits, NAK (rewind) and UNSUBSCRIBE as on a primary; a consumer silent for
// three heartbeats is dropped. Only the receiving worker (the one with the replica reader) holds
// them. Start positions: an offset, EARLIEST or LATEST (a timestamp or COMMITTED needs the
// primary: NOT_PRIMARY).

Frontend::Impl::ReplicaSub* Frontend::Impl::FindReplicaSub(uint64_t client_id, uint64_t client_sub,
                                                           uint32_t partition) {
  for (ReplicaSub& s : replica_subs_) {
    if (s.used && s.client_id == client_id && s.client_sub == client_sub &&
        s.partition == partition) {
      return &s;
    }
  }
  return nullptr;
}

bool Frontend::Impl::OnStandbySubscription(const p::FrameView& f, const Endpoint& from,
                                           const RouteContext& route) {
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  switch (f.header.type) {
    case p::FrameType::kSubscribe: {
      auto r = p::DecodeSubscribe(f);
      const QueueInfo* q = table_->Find(r->queue_id);
      if (q == nullptr || !q->is_stream()) return false;
      if (r->start_kind != p::StartKind::kOffset && r->start_kind != p::StartKind::kEarliest &&
          r->start_kind != p::StartKind::kLatest) {
        return false;
      }
      if (!route.receiver) return true;
      const uint32_t parts = static_cast<uint32_t>(q->partition_shard.size());
      const uint32_t first = r->partition == p::kAnyPartition ? 0 : r->partition;
      const uint32_t last = r->partition == p::kAnyPartition ? parts : r->partition + 1;
      if (first >= parts) return false;
      OpenFrame* out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
      if (out == nullptr) return true;
      out->writer.BeginResult(IdsOf(target, p::kFlagReplica), p::FrameType::kSubscribe);
      for (uint32_t part = first; part < last && part < parts; ++part) {
        const uint64_t end = replicator_->ReplicaEnd(q->id, part);
        const uint64_t oldest = replicator_->ReplicaStart(q->id, part);
        uint64_t start = r->start_kind == p::StartKind::kOffset   ? r->start_value
                         : r->start_kind == p::StartKind::kLatest ? end
                                                                  : oldest;
        ReplicaSub* s = FindReplicaSub(f.header.client_id, r->subscription_id, part);
        if (s == nullptr) {  // a re-subscribe replaces, as on a primary
          for (ReplicaSub& free : replica_subs_) {
            if (!free.used && !free.reading) {
              s = &free;
              break;
            }
          }
        }
        Errc errc = Errc::kOk;
        if (s == nullptr) {
          errc = Errc::kThrottled;  // every slot taken
        } else if (start > end || start < oldest) {  // below: retention removed it
          errc = Errc::kOffsetOutOfRange;
        } else {
          const bool reading = s->reading;
          // A read still out for the replaced subscription is dropped when it lands (read_from).
          *s = ReplicaSub{true, f.header.client_id, r->subscription_id, from.w0, q->id, part,
                          start, start + r->initial_credits, now_ns_, now_ns_, reading,
                          reading ? UINT64_MAX : 0};
        }
        if (errc != Errc::kOk) {
          ++counters_.rejected;
          start = 0;
        }
        out->writer.AddResult(p::ResultItem{errc, part, start});
      }
      Close(out);  // before the first DELIVER
      return true;
    }
    case p::FrameType::kCredit: {
      auto c = p::DecodeCredit(f);
      ReplicaSub* s = FindReplicaSub(f.header.client_id, c->subscription_id, c->partition);
      if (s == nullptr) return false;
      s->last_credit_ns = now_ns_;
      s->credit_end = std::max(s->credit_end, c->next_offset + c->credits);
      return true;
    }
    case p::FrameType::kNak: {  // a gap the consumer saw: push again from there
      auto n = p::DecodeNak(f);
      ReplicaSub* s = FindReplicaSub(f.header.client_id, n->subscription_id, n->partition);
      if (s == nullptr) return false;
      s->next_offset = std::min(s->next_offset, n->from_offset);
      return true;
    }
    case p::FrameType::kUnsubscribe: {
      auto u = p::DecodeUnsubscribe(f);
      OpenFrame* out = nullptr;
      bool any = false;
      for (ReplicaSub& s : replica_subs_) {
        if (!s.used || s.client_id != f.header.client_id || s.client_sub != u->subscription_id ||
            (u->partition != p::kAnyPartition && u->partition != s.partition)) {
          continue;
        }
        s.used = false;
        any = true;
        if (out == nullptr) {
          out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
          if (out != nullptr) out->writer.BeginResult(IdsOf(target), p::FrameType::kUnsubscribe);
        }
        if (out != nullptr) out->writer.AddResult(p::ResultItem{Errc::kOk, s.partition, 0});
      }
      return any;  // the RESULT is lost only if no reply buffer was free (counted)
    }
    default: return false;
  }
}

uint32_t Frontend::Impl::ServiceReplicaSubs(uint64_t now_ns) {
  uint32_t work = 0;
  for (size_t i = 0; i < replica_subs_.size(); ++i) {
    ReplicaSub& s = replica_subs_[i];
    if (!s.used) continue;
    if (now_ns - s.last_credit_ns > 3 * kHeartbeatNs) {  // the consumer is gone
      s.used = false;
      ++subscriptions_dropped_;
      continue;
    }
    if (s.reading) continue;
    const uint64_t end = replicator_->ReplicaEnd(s.queue, s.partition);
    // Retention removed what this subscriber had not read: it goes on from the oldest kept (the
    // offsets jump, as on a primary).
    s.next_offset = std::max(s.next_offset, replicator_->ReplicaStart(s.queue, s.partition));
    const shard::ReplyTarget t{s.endpoint, s.client_id, 0};
    if (s.next_offset < end && s.next_offset < s.credit_end) {
      size_t slot = 0;
      while (slot < cold_.size() && cold_[slot].used) ++slot;
      if (slot == cold_.size()) break;  // reads are all taken: next pass
      const uint32_t n = static_cast<uint32_t>(
          std::min<uint64_t>({s.credit_end - s.next_offset, end - s.next_offset, 256}));
      if (replicator_->ReadReplica(s.queue, s.partition, s.next_offset, n, slot) != Errc::kOk) {
        continue;
      }
      cold_[slot] = ColdFetch{true, true, static_cast<int>(i), t, s.queue, s.partition, n,
                              p::kDefaultFrameBytes};
      s.reading = true;
      s.read_from = s.next_offset;
      ++work;
    } else if (now_ns - s.last_push_ns >= kHeartbeatNs) {  // idle: the watermark, as a primary
      if (OpenFrame* fr = Open(p::FrameType::kDeliver, t, s.client_sub, s.queue, s.partition)) {
        fr->writer.BeginDeliver(IdsOf(t, p::kFlagReplica),
                                p::DeliverPrefix{s.client_sub, s.queue,
                                                 static_cast<uint16_t>(s.partition), end});
        Close(fr);
      }
      s.last_push_ns = now_ns;
    }
  }
  return work;
}

void Frontend::Impl::OnReplicaPush(ReplicaSub& s, const ColdFetch& c, Errc errc,
                                   uint64_t next_offset,
                                   std::span<const shard::StoredMessage> records) {
  s.reading = false;
  if (!s.used || s.queue != c.queue || s.partition != c.partition) return;  // replaced or gone
  if (errc != Errc::kOk || records.empty()) return;  // tried again next pass
  // A NAK or a re-subscribe may have moved the cursor while the read was out: its records are
  // not the ones the cursor wants (the next pass reads from where it is now).
  if (s.next_offset != s.read_from) return;
  const uint64_t pushed_to =
      SendStored(p::FrameType::kDeliver, c, s.client_sub, next_offset, records,
                 static_cast<uint32_t>(records.size()), p::kDefaultFrameBytes, p::kFlagReplica);
  s.next_offset = std::max(s.next_offset, pushed_to);
  s.last_push_ns = now_ns_;
}

void Frontend::Impl::OnStorage(uint32_t queue, uint32_t partition, shard::DurableOffset durable,
                               Errc errc, std::string_view failure) {
  shard::Shard* s = ShardOf(queue, partition);
  if (s == nullptr) return;  // removed since
  if (errc == Errc::kOk) {
    if (auto it = replicated_.find(PartKey(queue, partition)); it != replicated_.end()) {
      it->second.local = std::max(it->second.local, durable.value);
      return;  // ReleaseSync gives it to the engine (after the standby, for sync queues)
    }
    s->MarkDurable(shard::QueueId{queue}, partition, durable, now_ns_);
    return;
  }
  const shard::Partition* pt = s->Find(shard::QueueId{queue}, partition);
  if (pt == nullptr || pt->failed()) return;
  // Never retried and forgotten: the partition stops taking writes and says so, once.
  const QueueInfo* q = table_->Find(queue);
  std::fprintf(stderr, "sluiced: queue '%s' partition %u: storage failed: %.*s; durable up to "
               "offset %llu; answering STORAGE_FAILED from now on\n",
               q != nullptr ? q->name.c_str() : "?", partition, static_cast<int>(failure.size()),
               failure.data(), static_cast<unsigned long long>(durable.value));
  if (auto it = replicated_.find(PartKey(queue, partition)); it != replicated_.end()) {
    it->second.local = it->second.released = std::max(it->second.released, durable.value);
  }
  s->MarkDurable(shard::QueueId{queue}, partition, durable);
  s->FailPartition(shard::QueueId{queue}, partition);
  ++counters_.storage_failures;
}

void Frontend::Impl::EnforceLogRetention(uint64_t now_ns) {
  for (const auto& [queue, part] : persisted_) {
    if (!persistence_->HasClosedSegments(queue, part)) continue;  // the active one always stays
    shard::Shard* s = ShardOf(queue, part);
    const shard::Partition* pt = s != nullptr ? s->Find(shard::QueueId{queue}, part) : nullptr;
    if (pt == nullptr) continue;
    const shard::QueueConfig& c = pt->config();
    if (pt->work() != nullptr) {
      // Walks the partition's slots: fine once a second for partitions with closed segments.
      const uint64_t lowest = pt->work()->Stats().lowest_offset;
      persistence_->EnforceRetention(queue, part, std::min(lowest, pt->log().durable_end().value),
                                     0, 0, now_ns);
    } else {  // by retention, and below a purge mark
      persistence_->EnforceRetention(queue, part, UINT64_MAX, c.retention_bytes,
                                     c.retention_ms * 1'000'000, now_ns);
    }
  }
}

void Frontend::Impl::OnRemoved(shard::QueueId queue, uint32_t partition, uint64_t offset) {
  if (persistence_ != nullptr) persistence_->Removed(queue.value, partition, offset);
  if (!replicated_.empty() && replicated_.contains(PartKey(queue.value, partition))) {
    const uint64_t n =
        replicator_->OfferAck(queue.value, partition, Replicator::kAckDelete, partition, {}, offset);
    if (capture_ack_) captured_ack_ = n;
  }
}

void Frontend::Impl::SetTable(const QueueTable& next) {
  // Removed queues.
  scratch_.clear();
  for (const auto& [id, held] : held_) {
    if (next.Find(id) == nullptr) scratch_.push_back(id);
  }
  for (uint32_t id : scratch_) {
    for (uint32_t part : held_[id].partitions) RemovePartition(id, part);
    held_.erase(id);
  }
  table_ = &next;
  for (const QueueInfo& q : next.queues()) {
    auto held = held_.find(q.id);
    if (held != held_.end()) {
      // Attribute updates that may change live reach the engine (the others wait for a restart).
      for (uint32_t part : held->second.partitions) {
        if (shard::Shard* s = ShardOf(q.id, part)) {
          s->UpdateLiveConfig(shard::QueueId{q.id}, part, q.config);
        }
      }
      // A purge drops the messages and keeps the partitions and their offsets.
      if (held->second.purge_generation != q.purge_generation) {
        held->second.purge_generation = q.purge_generation;
        for (uint32_t part : held->second.partitions) PurgePartition(q, part);
      }
      continue;
    }
    for (uint32_t part = 0; part < q.partition_shard.size(); ++part) AddPartition(q, part);
  }
  CloseAll();  // acks and receive answers of removed partitions
}

void Frontend::Impl::CollectPartitionStats(std::vector<PartitionFigures>* out) const {
  for (const auto& [id, held] : held_) {
    const QueueInfo* q = table_->Find(id);
    for (uint32_t part : held.partitions) {
      const uint32_t shard_id = q != nullptr ? q->partition_shard[part] : 0;
      const shard::Shard* s = shards_[shard_id].get();
      const shard::Partition* pt = s != nullptr ? s->Find(shard::QueueId{id}, part) : nullptr;
      if (pt == nullptr) continue;
      PartitionFigures f;
      f.queue = id;
      f.partition = part;
      f.shard = shard_id;
      f.next_offset = pt->log().written_end().value;
      f.durable_offset = pt->log().durable_end().value;
      f.low_offset = pt->log().start_offset();
      f.bytes_stored = uint64_t{pt->log().chunks_held()} * s->config().chunk_bytes;
      if (Persisted(*pt)) f.bytes_on_disk = persistence_->LogBytes(id, part);
      f.counters = pt->counters();
      if (const shard::WorkQueue* w = pt->work()) {
        const shard::WorkQueueStats ws = w->Stats();
        f.depth = uint64_t{ws.pending} + ws.delayed + ws.ready + ws.backlog;
        f.in_flight = ws.leased;
        f.delayed = ws.delayed;
      } else {
        f.depth = f.next_offset - f.low_offset;
      }
      out->push_back(f);
    }
  }
}

shard::Shard* Frontend::Impl::ShardOf(uint32_t queue, uint32_t partition) {
  const QueueInfo* q = table_->Find(queue);
  if (q == nullptr || partition >= q->partition_shard.size()) return nullptr;
  return shards_[q->partition_shard[partition]].get();
}

// Mine() for a partition this worker does not own.
bool Frontend::Impl::MineNotOwned(const QueueInfo& q, uint32_t partition,
                                  const RouteContext& route, Errc* answer) const {
  if (!route.receiver) return false;
  if (partition >= q.partition_worker.size()) {
    *answer = Errc::kUnknownPartition;
    return true;
  }
  if (route.throttled_workers & (uint64_t{1} << q.partition_worker[partition])) {
    *answer = Errc::kThrottled;
    return true;
  }
  return false;
}

void Frontend::Impl::LearnNew(const Endpoint& from) {
  auto [it, inserted] = peer_mac_.try_emplace(from.w0, from.w1);
  if (!inserted) it->second = from.w1;
  learned_ = from;
}

Endpoint Frontend::Impl::EndpointOf(uint64_t w0) const {
  auto it = peer_mac_.find(w0);
  return Endpoint{w0, it == peer_mac_.end() ? 0 : it->second};
}

// ---- reply frames -----------------------------------------------------------------------------

Frontend::Impl::OpenFrame* Frontend::Impl::Find(p::FrameType type, uint64_t endpoint,
                                                 uint64_t client, uint64_t key, uint32_t queue,
                                                 uint32_t partition) {
  if (open_used_ == 0) return nullptr;
  for (OpenFrame& f : open_) {
    if (f.used && f.type == type && f.endpoint == endpoint && f.client_id == client &&
        f.key == key && f.queue == queue && f.partition == partition) {
      return &f;
    }
  }
  return nullptr;
}

Frontend::Impl::OpenFrame* Frontend::Impl::Open(p::FrameType type, const shard::ReplyTarget& t,
                                                 uint64_t key, uint32_t queue,
                                                 uint32_t partition) {
  OpenFrame* slot = nullptr;
  for (OpenFrame& f : open_) {
    if (!f.used) {
      slot = &f;
      break;
    }
  }
  if (slot == nullptr) {  // all in use: send one early (never the frame a fetch is filling)
    slot = &open_[0] == pinned_ ? &open_[1] : &open_[0];
    Close(slot);
  }
  slot->buffer = replies_.Acquire(EndpointOf(t.endpoint), p::kMaxFrameBytes);
  if (!slot->buffer.ok()) {
    ++counters_.reply_no_buffer;
    return nullptr;
  }
  slot->used = true;
  ++open_used_;
  slot->type = type;
  slot->endpoint = t.endpoint;
  slot->client_id = t.client_id;
  slot->key = key;
  slot->queue = queue;
  slot->partition = partition;
  slot->writer = p::FrameWriter(slot->buffer.bytes);
  return slot;
}

void Frontend::Impl::Close(OpenFrame* f, bool more) {
  SLUICE_ASSERT(f->used && open_used_ > 0);
  f->used = false;
  --open_used_;
  auto n = f->writer.Finish();
  if (!n) {
    replies_.Abandon(f->buffer);
    return;
  }
  if (more) {  // more frames follow for this request (MESSAGES / FETCH split over datagrams)
    const uint16_t flags = p::le::U16(f->buffer.bytes.data() + 6) | p::kFlagMore;
    p::le::Store<uint16_t>(f->buffer.bytes.data() + 6, flags);
  }
  replies_.Send(f->buffer, *n);
}

void Frontend::Impl::CloseAll() {
  for (auto& s : shards_)
    if (s) s->Flush();
  if (open_used_ == 0) return;
  for (OpenFrame& f : open_)
    if (f.used) Close(&f);
}

void Frontend::Impl::Error(const p::FrameView& f, const Endpoint& to, Errc errc,
                           std::string_view detail) {
  ++counters_.rejected;
  if (errc == Errc::kThrottled) ++counters_.throttled;
  p::ErrorReply e;
  e.errc = errc;
  e.request_type = static_cast<uint8_t>(f.header.type);
  e.detail = detail;
  if (errc == Errc::kThrottled) e.retry_after_ms = 1;
  SendError(f, to, e);
}

void Frontend::Impl::SendError(const p::FrameView& f, const Endpoint& to, const p::ErrorReply& e) {
  // No bigger than the request: this may answer a source that has not proved its address.
  ReplyBuffer buf = replies_.Acquire(to, f.bytes.size());
  if (!buf.ok()) {
    ++counters_.reply_no_buffer;
    return;
  }
  auto n = p::EncodeErrorFrame(buf.bytes, {f.header.client_id, f.header.request_id, 0}, e);
  if (n) replies_.Send(buf, *n); else replies_.Abandon(buf);
}

// ---- requests ---------------------------------------------------------------------------------

void Frontend::Impl::OnFrame(const p::FrameView& f, const Endpoint& from,
                             const RouteContext& route, uint64_t now_ns) {
  now_ns_ = std::max(now_ns_, now_ns);
  Learn(from);
  if (replicator_ != nullptr && !replicator_->Writable()) {
    if (f.header.type == p::FrameType::kFetch && OnStandbyFetch(f, from, route)) return;
    if (OnStandbySubscription(f, from, route)) return;
    if (route.receiver) ErrorNotPrimary(f, from);  // the receiver answers once for all owners
    return;
  }
  switch (f.header.type) {
    case p::FrameType::kProduce: OnProduce(f, from, route, now_ns); break;
    case p::FrameType::kReceive: OnReceive(f, from, route, now_ns); break;
    case p::FrameType::kDelete:
    case p::FrameType::kNack:
    case p::FrameType::kExtend: OnReceiptOps(f, from, route, now_ns); break;
    case p::FrameType::kFetch: OnFetch(f, from, route); break;
    case p::FrameType::kSubscribe: OnSubscribe(f, from, route); break;
    case p::FrameType::kCredit: OnCredit(f); break;
    case p::FrameType::kNak: OnNak(f, from); break;
    case p::FrameType::kUnsubscribe: OnUnsubscribe(f, from); break;
    case p::FrameType::kJoinGroup: OnJoinGroup(f, from, route, now_ns); break;
    case p::FrameType::kCommit: OnCommit(f, from, route); break;
    case p::FrameType::kOpenInbox: OnOpenInbox(f, from, route); break;
    case p::FrameType::kReply: OnReply(f, from, route); break;
    default:
      // Server-to-client types sent to the server.
      if (route.receiver) Error(f, from, Errc::kUnknownType, "not a request type");
      break;
  }
  if (!dl_pending_.empty()) FlushDeadLetters(now_ns);
  CloseAll();
}

void Frontend::Impl::OnProduce(const p::FrameView& f, const Endpoint& from,
                               const RouteContext& route, uint64_t now_ns) {
  const p::ProduceView produce = p::DecodeValidatedProduce(f);
  const QueueInfo* q = table_->Find(produce.queue_id);
  if (q == nullptr) {
    if (route.receiver) Error(f, from, Errc::kUnknownQueue, "unknown queue id");
    return;
  }
  // ACK ranges are matched by (partition, sequence), not by frame (docs/protocol.md §8): without
  // the request id in the target, acks of consecutive frames coalesce into one range.
  const shard::ReplyTarget target{from.w0, f.header.client_id, 0};
  // Whether a partition is this worker's is the same for every message of the frame that names
  // it: asked once per run of messages to one partition (most frames name one).
  uint32_t mine_partition = UINT32_MAX;
  bool mine = false;
  Errc mine_answer = Errc::kOk;
  // The records are read in place (RecordRef): only a fragment is decoded into a MessageView,
  // for the reassembly.
  for (const p::RecordRef rec : produce.messages.records()) {
    const uint16_t partition = rec.partition();
    if (partition != mine_partition) {
      mine = Mine(*q, partition, route, &mine_answer);
      mine_partition = partition;
    }
    if (!mine) continue;
    Errc answer = mine_answer;
    const bool fragment = rec.is_fragment();
    // Later fragments have no key to hash: a fragmented message must name its partition.
    if (fragment && partition == p::kAnyPartition) answer = Errc::kInvalidArgument;
    if (answer == Errc::kOk && q->sync_replication && !q->degrade_allow &&
        replicated_.contains(PartKey(q->id, partition))) {
      uint64_t standby = 0;
      if (!replicator_->Replicated(q->id, partition, now_ns, &standby)) {
        answer = Errc::kNotReplicated;  // not appended: nothing the standby cannot hold
      }
    }
    if (answer != Errc::kOk) {
      AckOne(target, q->id, partition, produce.producer_id, rec.sequence(), answer);
      continue;
    }
    if (!fragment) {
      AppendMessage(*q, target, produce.producer_id, rec, now_ns);
      continue;
    }
    const p::MessageView frag = rec.View();
    const FragmentKey key{f.header.client_id, produce.producer_id, q->id, frag.partition,
                          frag.sequence};
    const Reassembly::Outcome o = reassembly_->Add(key, frag, q->config.max_message_bytes, now_ns);
    if (o.errc != Errc::kOk) {
      AckOne(target, q->id, frag.partition, produce.producer_id, frag.sequence, o.errc);
      continue;
    }
    if (!o.complete) continue;  // acknowledged once the whole message is appended
    const auto whole = p::DecodeMessageRecord(o.record);
    SLUICE_ASSERT(whole.has_value());  // rebuilt from validated fragments
    AppendMessage(*q, target, produce.producer_id, *whole, now_ns);
    reassembly_->Release();
  }
}

namespace {

// The engine's view of one message, from a decoded MessageView or straight from the record.
shard::MessageIn MessageInOf(const p::MessageView& m, uint64_t producer_id) {
  shard::MessageIn in;
  in.record = m.record;
  in.partition = m.partition;
  in.priority = m.priority;
  in.delay_ms = m.delay_ms;
  in.ttl_ms = m.ttl_ms;
  in.dedup_id = m.dedup_id;
  in.group = m.group_id;
  in.producer_id = producer_id;
  in.sequence = m.sequence;
  in.timestamp_ns = m.timestamp_ns;
  return in;
}
shard::MessageIn MessageInOf(p::RecordRef r, uint64_t producer_id) {
  shard::MessageIn in;
  in.record = r.record();
  in.partition = r.partition();
  in.priority = r.priority();
  in.delay_ms = r.delay_ms();
  in.ttl_ms = r.ttl_ms();
  r.DedupAndGroup(&in.dedup_id, &in.group);
  in.producer_id = producer_id;
  in.sequence = r.sequence();
  in.timestamp_ns = r.timestamp_ns();
  return in;
}

}  // namespace

// One message to its shard. Only a reassembled message needs a MessageView of its own: one
// default-constructed for every message cost a 168-byte `rep stos` per message.
template <class M>
void Frontend::Impl::AppendMessage(const QueueInfo& q, const shard::ReplyTarget& target,
                                   uint64_t producer_id, const M& m, uint64_t now_ns) {
  const shard::MessageIn in = MessageInOf(m, producer_id);
  const shard::AppendResult r =
      shards_[q.partition_shard[in.partition]]->Append(target, shard::QueueId{q.id}, in, now_ns);
  if (r.errc == Errc::kOk) ++counters_.produced;
}

void Frontend::Impl::OnReceive(const p::FrameView& f, const Endpoint& from,
                               const RouteContext& route, uint64_t now_ns) {
  auto r = p::DecodeReceive(f);
  const QueueInfo* q = table_->Find(r->queue_id);
  if (q == nullptr) {
    if (route.receiver) Error(f, from, Errc::kUnknownQueue, "unknown queue id");
    return;
  }
  if (q->is_stream()) {
    if (route.receiver) Error(f, from, Errc::kWrongQueueType, "RECEIVE needs a work queue");
    return;
  }
  uint32_t partition = r->partition == p::kAnyPartition ? route.any_partition : r->partition;
  if (r->partition == p::kAnyPartition && Owns(*q, partition)) {
    // "Any partition": rather than an empty answer from the partition routed to, take the first
    // partition this worker owns that has a message ready (a long poll still parks on the
    // routed one when none has).
    const uint32_t n = static_cast<uint32_t>(q->partition_worker.size());
    for (uint32_t i = 0; i < n; ++i) {
      const uint32_t cand = (route.any_partition + i) % n;
      if (!Owns(*q, cand)) continue;
      const shard::Partition* pt = ShardOf(q->id, cand)->Find(shard::QueueId{q->id}, cand);
      if (pt != nullptr && pt->work()->HasReady()) {
        partition = cand;
        break;
      }
    }
  }
  Errc answer;
  if (!Mine(*q, partition, route, &answer)) return;
  if (answer != Errc::kOk) {
    Error(f, from, answer, answer == Errc::kThrottled ? "owner busy" : "no such partition");
    return;
  }
  shard::ReceiveArgs args;
  args.max_messages = r->max_messages;
  args.visibility_ms = r->visibility_ms == p::kQueueDefaultVisibility ? 0 : r->visibility_ms;
  args.wait_ms = r->wait_ms == p::kQueueDefaultWait ? q->receive_wait_ms : r->wait_ms;
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  ShardOf(q->id, partition)->Receive(target, shard::QueueId{q->id}, partition, args, now_ns);
}

void Frontend::Impl::OnReceiptOps(const p::FrameView& f, const Endpoint& from,
                                  const RouteContext& route, uint64_t now_ns) {
  auto ops = p::DecodeReceiptOps(f);
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  // Sync queues (docs/replication.md §13): a DELETE on a sync partition this worker owns makes
  // the whole RESULT wait for the standby's ack log (one reply per request, as without); no room
  // to hold it: those deletes are answered THROTTLED and not done.
  bool defer = false;
  bool throttle_sync = false;
  if (f.header.type == p::FrameType::kDelete && !replicated_.empty()) {
    for (const p::ReceiptOp op : ops->ops) {
      const QueueInfo* q = table_->Find(op.queue_id);
      if (q != nullptr && Owns(*q, op.partition) && SyncAcks(*q, op.partition)) {
        defer = true;
        break;
      }
    }
    if (defer && pending_->Holds(from.w0, f.header.client_id, f.header.request_id,
                                 static_cast<uint8_t>(f.header.type))) {
      return;  // a retransmission: the held reply answers it
    }
    if (defer) {
      defer = pending_->Open({from.w0, f.header.client_id, f.header.request_id,
                              static_cast<uint8_t>(f.header.type), now_ns},
                             ops->ops.size());
      throttle_sync = !defer;
    }
  }
  OpenFrame* out = nullptr;
  for (uint32_t i = 0; i < ops->ops.size(); ++i) {
    const p::ReceiptOp op = ops->ops[i];
    const QueueInfo* q = table_->Find(op.queue_id);
    Errc errc;
    if (q == nullptr) {
      if (!route.receiver) continue;
      errc = Errc::kUnknownQueue;
    } else if (!Mine(*q, op.partition, route, &errc)) {
      continue;
    } else if (errc == Errc::kOk) {
      shard::Shard* s = ShardOf(q->id, op.partition);
      const shard::QueueId qid{q->id};
      const shard::Receipt receipt{op.receipt};
      const bool sync = (defer || throttle_sync) && f.header.type == p::FrameType::kDelete &&
                        SyncAcks(*q, op.partition);
      switch (f.header.type) {
        case p::FrameType::kDelete:
          if (!sync) {
            errc = s->Delete(qid, op.partition, receipt, now_ns);
          } else if (throttle_sync) {
            errc = Errc::kThrottled;
            ++counters_.throttled;
          } else if ((errc = SyncAckRefusal(*q, op.partition, now_ns)) == Errc::kOk) {
            capture_ack_ = true;
            captured_ack_ = 0;
            errc = s->Delete(qid, op.partition, receipt, now_ns);
            capture_ack_ = false;
            if (errc == Errc::kOk && captured_ack_ != 0) {
              pending_->Add({errc, i, 0, PartKey(q->id, op.partition), captured_ack_});
              continue;  // counted and answered when the standby has the record
            }
          }
          break;
        case p::FrameType::kNack: errc = s->Nack(qid, op.partition, receipt, op.ms, now_ns); break;
        default: errc = s->Extend(qid, op.partition, receipt, op.ms, now_ns); break;
      }
    }
    if (errc != Errc::kOk) ++counters_.rejected;
    if (defer) {
      pending_->Add({errc, i, 0, 0, 0});
      continue;
    }
    if (out == nullptr) {
      out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
      if (out == nullptr) return;
      out->writer.BeginResult(IdsOf(target), f.header.type);
    }
    const p::ResultItem item{errc, i, f.header.type == p::FrameType::kExtend ? op.ms : 0u};
    if (out->writer.AddResult(item) == p::EncodeError::kNoSpace) {
      Close(out, true);
      out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
      if (out == nullptr) return;
      out->writer.BeginResult(IdsOf(target), f.header.type);
      out->writer.AddResult(item);
    }
  }
  if (defer) ClosePending();
}

void Frontend::Impl::SendRange(p::FrameType type, const shard::ReplyTarget& t, uint64_t sub_id,
                               uint32_t queue, uint32_t partition, shard::StartPosition start,
                               uint32_t max_messages, size_t frame_cap) {
  shard::Shard* s = ShardOf(queue, partition);
  SendRecords(type, t, sub_id, queue, partition,
              [&](uint32_t n, uint32_t max_bytes, Visit visit) {
                return s->Fetch(shard::QueueId{queue}, partition, start, n, max_bytes, visit);
              },
              max_messages, frame_cap);
}

void Frontend::Impl::ErrorTo(const shard::ReplyTarget& t, p::FrameType request, Errc errc) {
  ++counters_.rejected;
  if (errc == Errc::kThrottled) ++counters_.throttled;
  ReplyBuffer buf = replies_.Acquire(EndpointOf(t.endpoint), p::kHeaderBytes + p::kErrorFixedBytes + 64);
  if (!buf.ok()) {
    ++counters_.reply_no_buffer;
    return;
  }
  p::ErrorReply e;
  e.errc = errc;
  e.request_type = static_cast<uint8_t>(request);
  e.detail = ErrcName(errc);
  if (errc == Errc::kThrottled) e.retry_after_ms = 1;
  auto n = p::EncodeErrorFrame(buf.bytes, IdsOf(t), e);
  if (n) replies_.Send(buf, *n); else replies_.Abandon(buf);
}

bool Frontend::Impl::StartColdFetch(const shard::ReplyTarget& t, uint32_t queue,
                                    uint32_t partition, p::StartKind kind, uint64_t value,
                                    uint32_t max_messages, size_t cap) {
  if (persistence_ == nullptr) return false;
  shard::Shard* s = ShardOf(queue, partition);
  const shard::Partition* pt = s != nullptr ? s->Find(shard::QueueId{queue}, partition) : nullptr;
  if (pt == nullptr || !Persisted(*pt) || pt->stream() == nullptr) return false;
  const shard::PartitionLog& log = pt->log();
  const uint64_t in_memory = log.start_offset();
  const uint64_t on_disk = persistence_->LogStart(queue, partition);
  if (on_disk == shard::kNoOffset || on_disk >= in_memory) return false;  // memory has it all
  bool by_timestamp = false;
  switch (kind) {
    case p::StartKind::kOffset:
      if (value >= in_memory || value < on_disk) return false;  // memory answers (or out of range)
      break;
    case p::StartKind::kEarliest:
      value = on_disk;
      break;
    case p::StartKind::kTimestamp: {
      shard::StoredMessage first;
      if (log.Read(in_memory, &first) && first.timestamp_ns < value) return false;
      by_timestamp = true;
      break;
    }
    default: return false;  // latest and committed positions are never older than memory
  }
  size_t slot = 0;
  while (slot < cold_.size() && cold_[slot].used) ++slot;
  const Errc e = slot == cold_.size() ? Errc::kThrottled
                                      : persistence_->Fetch(queue, partition, by_timestamp, value,
                                                            max_messages, slot);
  if (e == Errc::kThrottled || e == Errc::kUnknownPartition) {
    ErrorTo(t, p::FrameType::kFetch, e);
    return true;
  }
  cold_[slot] = ColdFetch{true, false, -1, t, queue, partition, max_messages, cap};  // via Poll
  return true;
}

void Frontend::Impl::OnColdRead(uint64_t cookie, Errc errc, uint64_t next_offset,
                                std::span<const shard::StoredMessage> records) {
  SLUICE_ASSERT(cookie < cold_.size() && cold_[cookie].used);
  const ColdFetch c = cold_[cookie];
  cold_[cookie].used = false;
  if (c.replica_sub >= 0) {
    OnReplicaPush(replica_subs_[static_cast<size_t>(c.replica_sub)], c, errc, next_offset, records);
    return;
  }
  if (ShardOf(c.queue, c.partition) == nullptr) return;  // removed since
  if (errc != Errc::kOk) {
    ErrorTo(c.target, p::FrameType::kFetch, errc);
    return;
  }
  // Segments may still hold records below a purge mark (a time search can land there): they
  // are not the log's any more. A standby's replica reads come from its replication shell (it
  // has no local Persistence, and purge marks are not replicated: docs/replication.md).
  const uint64_t start =
      c.replica || persistence_ == nullptr ? 0 : persistence_->LogStart(c.queue, c.partition);
  size_t below = 0;
  while (below < records.size() && records[below].offset < start) ++below;
  records = records.subspan(below);
  next_offset = std::max(next_offset, start);
  SendStored(p::FrameType::kMessages, c, 0, next_offset, records, c.max_messages, c.cap,
             c.replica ? p::kFlagReplica : 0);
}

uint64_t Frontend::Impl::SendStored(p::FrameType type, const ColdFetch& c, uint64_t sub_id,
                                    uint64_t next_offset,
                                    std::span<const shard::StoredMessage> records,
                                    uint32_t max_messages, size_t cap, uint16_t flags) {
  reply_flags_ = flags;
  struct Reset {
    uint16_t& f;
    ~Reset() { f = 0; }
  } reset{reply_flags_};
  uint64_t sent_to = 0;
  SendRecords(type, c.target, sub_id, c.queue, c.partition,
              [&](uint32_t n, uint32_t max_bytes, Visit visit) {
                shard::FetchResult r{Errc::kOk, next_offset, 0};
                uint64_t bytes = 0;
                for (const shard::StoredMessage& m : records) {
                  if (r.count == n || (r.count > 0 && bytes + m.record.size() > max_bytes)) {
                    r.next_offset = m.offset;
                    break;
                  }
                  visit(m);
                  ++r.count;
                  bytes += m.record.size();
                  sent_to = m.offset + 1;
                }
                return r;
              },
              max_messages, cap);
  return sent_to;
}

void Frontend::Impl::SendRecords(p::FrameType type, const shard::ReplyTarget& t, uint64_t sub_id,
                                 uint32_t queue, uint32_t partition, Source source,
                                 uint32_t max_messages, size_t frame_cap) {
  shard::Shard* s = ShardOf(queue, partition);
  OpenFrame* out = Open(type, t, type == p::FrameType::kDeliver ? sub_id : t.request_id, queue,
                        partition);
  if (out == nullptr) return;
  const size_t fixed = p::kHeaderBytes + (type == p::FrameType::kDeliver ? p::kDeliverPrefixBytes
                                                                          : p::kMessagesPrefixBytes);
  const size_t cap = std::min(frame_cap, out->buffer.bytes.size());
  const uint32_t per_msg = p::kDeliveredMetaBytes;
  // Ask the engine for no more record bytes than fit, so every visited message is sent.
  const uint32_t room = cap > fixed + per_msg ? static_cast<uint32_t>(cap - fixed) : 0;
  const uint32_t max_bytes_guess = room > per_msg * max_messages ? room - per_msg * max_messages
                                                                 : room / 2;
  uint32_t count = 0;
  uint64_t last = 0;
  bool stopped = false;
  p::FrameWriter& w = out->writer;
  // The prefix carries next_offset and the watermark, known only after the visit: write a
  // placeholder prefix, fill it in at the end.
  if (type == p::FrameType::kDeliver) {
    w.BeginDeliver(IdsOf(t, reply_flags_),
                   p::DeliverPrefix{sub_id, queue, static_cast<uint16_t>(partition), 0});
  } else {
    w.BeginMessages(IdsOf(t, reply_flags_),
                    p::MessagesPrefix{queue, static_cast<uint16_t>(partition), 0, 0});
  }
  pinned_ = out;
  const shard::FetchResult r = source(
      std::max<uint32_t>(1, max_messages), std::max<uint32_t>(1, max_bytes_guess),
      [&](const shard::StoredMessage& m) {
        if (stopped) return;
        p::DeliveredMeta meta;
        meta.offset = m.offset;
        meta.server_timestamp_ns = m.timestamp_ns;
        meta.partition = static_cast<uint16_t>(partition);
        if (count == 0 && !FitsOneFrame(fixed - p::kHeaderBytes, m.record.size())) {
          // Larger than a datagram: its fragments go first, this frame closes the reply.
          SendFragments(type, t, type == p::FrameType::kDeliver ? sub_id : t.request_id, queue,
                        partition, meta, m.record, sub_id);
          ++count;
          last = m.offset;
          stopped = true;
          return;
        }
        if (w.size() + per_msg + m.record.size() > cap ||
            w.AddDeliveredRaw(meta, m.record) != p::EncodeError::kOk) {
          stopped = true;  // did not fit: the consumer continues from next_offset
          return;
        }
        ++count;
        last = m.offset;
      });
  pinned_ = nullptr;
  if (r.errc != Errc::kOk) {
    out->used = false;
    replies_.Abandon(out->buffer);
    const Endpoint to = EndpointOf(t.endpoint);
    ReplyBuffer buf = replies_.Acquire(to, p::kHeaderBytes + p::kErrorFixedBytes + 64);
    if (!buf.ok()) return;
    p::ErrorReply e;
    e.errc = r.errc;
    e.request_type = static_cast<uint8_t>(type == p::FrameType::kDeliver ? p::FrameType::kNak
                                                                         : p::FrameType::kFetch);
    e.detail = ErrcName(r.errc);
    auto n = p::EncodeErrorFrame(buf.bytes, IdsOf(t), e);
    if (n) replies_.Send(buf, *n); else replies_.Abandon(buf);
    return;
  }
  counters_.delivered += count;
  const uint64_t next = count > 0 ? last + 1 : r.next_offset;
  std::byte* prefix = out->buffer.bytes.data() + p::kHeaderBytes;
  if (type == p::FrameType::kMessages) {
    p::le::Store<uint64_t>(prefix + 8, next);
    p::le::Store<uint64_t>(prefix + 16, s->Find(shard::QueueId{queue}, partition)
                                            ->log().durable_end().value);
  }
  Close(out);
}

void Frontend::Impl::OnFetch(const p::FrameView& f, const Endpoint& from,
                             const RouteContext& route) {
  auto r = p::DecodeFetch(f);
  const QueueInfo* q = table_->Find(r->queue_id);
  if (q == nullptr) {
    if (route.receiver) Error(f, from, Errc::kUnknownQueue, "unknown queue id");
    return;
  }
  if (!q->is_stream()) {
    if (route.receiver) Error(f, from, Errc::kWrongQueueType, "FETCH needs a stream");
    return;
  }
  Errc answer;
  if (!Mine(*q, r->partition, route, &answer)) return;
  if (answer != Errc::kOk) {
    Error(f, from, answer, "partition not available");
    return;
  }
  const shard::StartPosition start = StartOf(r->start_kind, r->start_value);
  const size_t cap = r->max_frame_bytes == 0 ? p::kDefaultFrameBytes : r->max_frame_bytes;
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  if (StartColdFetch(target, q->id, r->partition, r->start_kind, r->start_value, r->max_messages,
                     cap)) {
    return;  // older than memory: answered from the log when the read completes
  }
  SendRange(p::FrameType::kMessages, target, 0, q->id, r->partition, start, r->max_messages, cap);
}

void Frontend::Impl::OnSubscribe(const p::FrameView& f, const Endpoint& from,
                                 const RouteContext& route) {
  auto r = p::DecodeSubscribe(f);
  const QueueInfo* q = table_->Find(r->queue_id);
  if (q == nullptr || !q->is_stream()) {
    if (route.receiver) {
      Error(f, from, q == nullptr ? Errc::kUnknownQueue : Errc::kWrongQueueType,
            q == nullptr ? "unknown queue id" : "SUBSCRIBE needs a stream");
    }
    return;
  }
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  const uint32_t first = r->partition == p::kAnyPartition ? 0 : r->partition;
  const uint32_t last = r->partition == p::kAnyPartition
                            ? static_cast<uint32_t>(q->partition_worker.size())
                            : r->partition + 1;
  OpenFrame* out = nullptr;
  for (uint32_t part = first; part < last; ++part) {
    Errc errc;
    if (!Mine(*q, part, route, &errc)) continue;
    uint64_t start_offset = 0;
    shard::StartPosition start = StartOf(r->start_kind, r->start_value);
    if (errc == Errc::kOk) {
      if (r->start_kind == p::StartKind::kCommitted) {
        // The group's offsets live with its coordinator (partition 0's owner). Another worker
        // cannot read them: clients resolve COMMITTED through JOIN_GROUP and subscribe at an
        // offset (docs/protocol.md §11.1); here only the coordinator's worker answers it.
        std::optional<uint64_t> c;
        if (Owns(*q, 0)) {
          c = ShardOf(q->id, 0)->GroupCommitted(shard::QueueId{q->id}, std::string_view(r->group),
                                                part);
        } else {
          errc = Errc::kInvalidArgument;
        }
        start = c ? shard::StartPosition::Offset(*c) : shard::StartPosition::Earliest();
      }
    }
    if (errc == Errc::kOk) {
      const uint64_t key = SubKey(f.header.client_id, r->subscription_id, part);
      if (auto old = sub_ids_.find(key); old != sub_ids_.end()) {  // re-subscribe replaces
        ShardOf(q->id, part)->Unsubscribe(shard::SubscriptionId{old->second});
        subs_.erase(old->second);
        sub_ids_.erase(old);
      }
      const uint64_t id = next_sub_id_++;
      Subscription& sub = subs_[id];
      sub = Subscription{f.header.client_id, r->subscription_id, from.w0, q->id, part, 0,
                         r->initial_credits, now_ns_, now_ns_};
      // Resolve first so that the result carries the start offset even if pushes follow at once.
      auto fetch = ShardOf(q->id, part)->Fetch(shard::QueueId{q->id}, part, start, 0, 0,
                                               [](const shard::StoredMessage&) {});
      start_offset = fetch.next_offset;
      sub.next_offset = start_offset;
      errc = fetch.errc;
      if (errc == Errc::kOk) {
        errc = ShardOf(q->id, part)->Subscribe(shard::SubscriptionId{id}, target,
                                               shard::QueueId{q->id}, part,
                                               shard::StartPosition::Offset(start_offset),
                                               r->initial_credits);
      }
      if (errc == Errc::kOk) {
        sub_ids_[key] = id;
      } else {
        subs_.erase(id);
      }
    }
    if (errc != Errc::kOk) ++counters_.rejected;
    if (out == nullptr) {
      out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
      if (out == nullptr) return;
      out->writer.BeginResult(IdsOf(target), p::FrameType::kSubscribe);
    }
    out->writer.AddResult(p::ResultItem{errc, part, start_offset});
  }
  // The RESULT must reach the client before the first DELIVER of this subscription.
  if (out != nullptr) Close(out);
}

void Frontend::Impl::OnCredit(const p::FrameView& f) {
  auto c = p::DecodeCredit(f);
  auto it = sub_ids_.find(SubKey(f.header.client_id, c->subscription_id, c->partition));
  if (it == sub_ids_.end()) return;  // another worker's (credits go to every worker)
  Subscription& sub = subs_[it->second];
  sub.last_credit_ns = now_ns_;
  // The grant is absolute (deliver offsets < next_offset + credits); the engine counts credits
  // relative to what it has pushed.
  const uint64_t limit = c->next_offset + c->credits;
  const uint64_t have = sub.next_offset + sub.credits;
  if (limit <= have) return;
  const uint32_t add = static_cast<uint32_t>(std::min<uint64_t>(limit - have, UINT32_MAX));
  sub.credits += add;
  ShardOf(sub.queue, sub.partition)->Credit(shard::SubscriptionId{it->second}, add);
}

void Frontend::Impl::OnNak(const p::FrameView& f, const Endpoint& from) {
  auto n = p::DecodeNak(f);
  auto it = sub_ids_.find(SubKey(f.header.client_id, n->subscription_id, n->partition));
  if (it == sub_ids_.end()) return;
  const Subscription& sub = subs_[it->second];
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  SendRange(p::FrameType::kDeliver, target, sub.client_sub, sub.queue, sub.partition,
            shard::StartPosition::Offset(n->from_offset), std::max<uint32_t>(1, n->count),
            p::kDefaultFrameBytes);
}

void Frontend::Impl::OnUnsubscribe(const p::FrameView& f, const Endpoint& from) {
  auto u = p::DecodeUnsubscribe(f);
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  OpenFrame* out = nullptr;
  for (auto it = subs_.begin(); it != subs_.end();) {
    const Subscription& s = it->second;
    const bool match = s.client_id == f.header.client_id && s.client_sub == u->subscription_id &&
                       (u->partition == p::kAnyPartition || u->partition == s.partition);
    if (!match) {
      ++it;
      continue;
    }
    ShardOf(s.queue, s.partition)->Unsubscribe(shard::SubscriptionId{it->first});
    if (out == nullptr) {
      out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
      if (out != nullptr) out->writer.BeginResult(IdsOf(target), p::FrameType::kUnsubscribe);
    }
    if (out != nullptr) out->writer.AddResult(p::ResultItem{Errc::kOk, s.partition, 0});
    sub_ids_.erase(SubKey(s.client_id, s.client_sub, s.partition));
    subs_.erase(it++);
  }
}

const QueueInfo* Frontend::Impl::GroupCoordinatorQueue(const p::FrameView& f, const Endpoint& from,
                                                       const RouteContext& route,
                                                       uint32_t queue_id) {
  const QueueInfo* q = table_->Find(queue_id);
  if (q == nullptr || !q->is_stream()) {
    if (route.receiver) {
      Error(f, from, q == nullptr ? Errc::kUnknownQueue : Errc::kWrongQueueType,
            q == nullptr ? "unknown queue id" : "consumer groups need a stream");
    }
    return nullptr;
  }
  Errc answer;
  if (!Mine(*q, 0, route, &answer)) return nullptr;  // partition 0's owner coordinates
  if (answer != Errc::kOk) {
    Error(f, from, answer, "the group's coordinator is busy");
    return nullptr;
  }
  return q;
}

void Frontend::Impl::OnJoinGroup(const p::FrameView& f, const Endpoint& from,
                                 const RouteContext& route, uint64_t now_ns) {
  auto j = p::DecodeJoinGroup(f);
  const QueueInfo* q = GroupCoordinatorQueue(f, from, route, j->queue_id);
  if (q == nullptr) return;
  shard::Shard* s = ShardOf(q->id, 0);
  const shard::QueueId qid{q->id};
  const std::string_view group(j->group);
  shard::GroupAssignment a;
  Errc e = Errc::kOk;
  switch (j->op) {
    case p::GroupOp::kJoin:
      e = s->JoinGroup(qid, group, j->member_id, j->session_timeout_ms, now_ns, &a);
      break;
    case p::GroupOp::kLeave: e = s->LeaveGroup(qid, group, j->member_id, &a); break;
    case p::GroupOp::kDescribe:
      e = s->DescribeGroup(qid, group, &a);
      a.first_partition = 0;
      a.partition_count = static_cast<uint32_t>(q->partition_worker.size());
      a.session_ms = 0;
      break;
  }
  if (e != Errc::kOk) {
    Error(f, from, e, e == Errc::kThrottled ? "too many consumer groups or members"
                                            : "consumer group request refused");
    return;
  }
  // GROUP_STATE: the member's partitions (every partition for DESCRIBE) with the group's
  // committed offsets; split over frames flagged MORE when it does not fit one datagram.
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  const p::GroupStatePrefix prefix{q->id, a.generation, static_cast<uint16_t>(a.members),
                                   a.session_ms};
  auto open = [&]() -> OpenFrame* {
    OpenFrame* out = Open(p::FrameType::kGroupState, target, f.header.request_id, q->id, 0);
    if (out == nullptr) return nullptr;
    // Replies to one request stay within a reply datagram of the default size.
    out->writer = p::FrameWriter(out->buffer.bytes.first(
        std::min(out->buffer.bytes.size(), p::kDefaultFrameBytes)));
    out->writer.BeginGroupState(IdsOf(target), prefix);
    return out;
  };
  OpenFrame* out = open();
  if (out == nullptr) return;
  for (uint32_t i = 0; i < a.partition_count; ++i) {
    const uint32_t part = a.first_partition + i;
    const std::optional<uint64_t> c = s->GroupCommitted(qid, group, part);
    const p::GroupPartition gp{static_cast<uint16_t>(part), c.has_value(), c.value_or(0)};
    if (out->writer.AddGroupPartition(gp) == p::EncodeError::kNoSpace) {
      Close(out, /*more=*/true);
      if ((out = open()) == nullptr) return;
      out->writer.AddGroupPartition(gp);
    }
  }
  Close(out);
}

void Frontend::Impl::OnCommit(const p::FrameView& f, const Endpoint& from,
                              const RouteContext& route) {
  auto c = p::DecodeCommit(f);
  const QueueInfo* q = GroupCoordinatorQueue(f, from, route, c->prefix.queue_id);
  if (q == nullptr) return;
  shard::Shard* s = ShardOf(q->id, 0);
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  // Sync queues (docs/replication.md §13): the commits are logged in partition 0's ack log; the
  // RESULT waits until the standby wrote them. Refused (NOT_REPLICATED) before committing when
  // the standby is gone and the queue does not degrade; THROTTLED when nothing can hold it.
  Errc refuse = Errc::kOk;
  bool defer = false;
  if (SyncAcks(*q, 0)) {
    if (pending_->Holds(from.w0, f.header.client_id, f.header.request_id,
                        static_cast<uint8_t>(p::FrameType::kCommit))) {
      return;  // a retransmission: the held reply answers it
    }
    refuse = SyncAckRefusal(*q, 0, now_ns_);
    if (refuse == Errc::kOk) {
      defer = pending_->Open({from.w0, f.header.client_id, f.header.request_id,
                              static_cast<uint8_t>(p::FrameType::kCommit), now_ns_},
                             c->items.size());
      if (!defer) refuse = Errc::kThrottled;
    }
  }
  OpenFrame* out = nullptr;
  if (!defer) {
    out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
    if (out == nullptr) return;
    out->writer.BeginResult(IdsOf(target), p::FrameType::kCommit);
  }
  uint32_t index = 0;
  for (const p::CommitItem item : c->items) {
    Errc e = refuse;
    if (e == Errc::kThrottled) ++counters_.throttled;
    if (e == Errc::kOk) {
      e = s->CommitGroup(shard::QueueId{q->id}, std::string_view(c->prefix.group),
                         c->prefix.member_id, c->prefix.generation, item.partition, item.offset);
    }
    if (e != Errc::kOk) ++counters_.rejected;
    const uint64_t acks =
        e == Errc::kOk ? PersistGroupCommit(*q, c->prefix.group, item.partition, item.offset) : 0;
    if (defer) {
      pending_->Add({e, index++, item.offset, acks != 0 ? PartKey(q->id, 0) : 0, acks});
      continue;
    }
    const p::ResultItem result{e, index++, item.offset};
    if (out->writer.AddResult(result) == p::EncodeError::kNoSpace) {
      Close(out, true);
      out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
      if (out == nullptr) return;
      out->writer.BeginResult(IdsOf(target), p::FrameType::kCommit);
      out->writer.AddResult(result);
    }
  }
  if (defer) ClosePending();
  else Close(out);
}

bool Frontend::Impl::OwnsInbox(uint64_t inbox_id, const RouteContext& route,
                               bool* throttled) const {
  const uint16_t owner = table_->WorkerOfShard(static_cast<uint32_t>(inbox_id % table_->shard_count()));
  *throttled = owner != worker_ && route.receiver &&
               (route.throttled_workers & (uint64_t{1} << owner)) != 0;
  return owner == worker_;
}

// One RESULT item answering `f` (OPEN_INBOX, REPLY).
void Frontend::Impl::AnswerOne(const p::FrameView& f, const Endpoint& from, Errc errc,
                               uint64_t value) {
  if (errc != Errc::kOk) ++counters_.rejected;
  const shard::ReplyTarget target{from.w0, f.header.client_id, f.header.request_id};
  OpenFrame* out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
  if (out == nullptr) return;
  out->writer.BeginResult(IdsOf(target), f.header.type);
  out->writer.AddResult(p::ResultItem{errc, 0, value});
  Close(out);
}

void Frontend::Impl::OnOpenInbox(const p::FrameView& f, const Endpoint& from,
                                 const RouteContext& route) {
  auto r = p::DecodeOpenInbox(f);
  bool throttled = false;
  if (!OwnsInbox(r->inbox_id, route, &throttled)) {
    if (throttled) Error(f, from, Errc::kThrottled, "inbox owner busy");
    return;
  }
  auto it = inboxes_.find(r->inbox_id);
  if (it != inboxes_.end() && it->second.client_id != f.header.client_id) {
    // Another client's inbox: ids are random 64-bit numbers, so this is a clash or a probe.
    AnswerOne(f, from, Errc::kInvalidArgument, 0);
    return;
  }
  if (r->op == p::InboxOp::kClose) {
    if (it != inboxes_.end()) inboxes_.erase(it);
    AnswerOne(f, from, Errc::kOk, 0);
    return;
  }
  if (it == inboxes_.end()) {
    if (inboxes_.size() >= kMaxInboxes) {
      AnswerOne(f, from, Errc::kThrottled, 0);
      return;
    }
    it = inboxes_.emplace(r->inbox_id, Inbox{}).first;
  }
  it->second.endpoint = from.w0;  // follows the client if its address changed (verified source)
  it->second.client_id = f.header.client_id;
  it->second.last_seen_ns = now_ns_;
  AnswerOne(f, from, Errc::kOk, 3 * kHeartbeatNs / 1'000'000);  // lifetime without a refresh
}

void Frontend::Impl::OnReply(const p::FrameView& f, const Endpoint& from,
                             const RouteContext& route) {
  auto r = p::DecodeReply(f);
  bool throttled = false;
  if (!OwnsInbox(r->inbox_id, route, &throttled)) {
    if (throttled) Error(f, from, Errc::kThrottled, "inbox owner busy");
    return;
  }
  auto it = inboxes_.find(r->inbox_id);
  if (it == inboxes_.end()) {  // the requester went away (or never opened it)
    AnswerOne(f, from, Errc::kUnknownQueue, 0);
    return;
  }
  Inbox& inbox = it->second;
  const shard::ReplyTarget to{inbox.endpoint, inbox.client_id, 0};
  p::DeliveredMeta meta;
  meta.offset = inbox.next_offset++;
  meta.server_timestamp_ns = now_ns_;
  meta.partition = 0;
  const std::span<const std::byte> record = r->message.record;
  if (!FitsOneFrame(p::kDeliverPrefixBytes, record.size())) {
    SendFragments(p::FrameType::kDeliver, to, r->inbox_id, 0, 0, meta, record, r->inbox_id);
  } else if (OpenFrame* out = Open(p::FrameType::kDeliver, to, r->inbox_id, 0, 0)) {
    out->writer.BeginDeliver(IdsOf(to), p::DeliverPrefix{r->inbox_id, 0, 0, 0});
    out->writer.AddDeliveredRaw(meta, record);
    Close(out);
  }
  ++counters_.delivered;
  AnswerOne(f, from, Errc::kOk, meta.offset);
}

void Frontend::Impl::AckOne(const shard::ReplyTarget& t, uint32_t queue, uint32_t partition,
                            uint64_t producer, uint64_t sequence, Errc errc) {
  shard::AckRange a;
  a.target = t;
  a.queue = shard::QueueId{queue};
  a.partition = partition;
  a.producer_id = producer;
  a.first_sequence = sequence;
  a.count = 1;
  a.errc = errc;
  OnAck(a);
}

void Frontend::Impl::SendFragments(p::FrameType type, const shard::ReplyTarget& t, uint64_t key,
                                   uint32_t queue, uint32_t partition,
                                   const p::DeliveredMeta& meta,
                                   std::span<const std::byte> record, uint64_t sub_id) {
  auto whole = p::DecodeMessageRecord(record);
  SLUICE_ASSERT(whole.has_value());  // stored records were validated on the way in
  std::array<p::Header, p::kMaxHeaders> headers;
  const p::MessageSpec spec = p::SpecOf(*whole, headers);
  const size_t prefix = type == p::FrameType::kDeliver ? p::kDeliverPrefixBytes
                                                       : p::kMessagesPrefixBytes;
  p::Fragmenter fragmenter(spec, p::kDefaultFrameBytes - p::kHeaderBytes - prefix -
                                     p::kDeliveredMetaBytes);
  SLUICE_ASSERT(fragmenter.error() == p::EncodeError::kOk);
  uint32_t sent = 0;
  for (p::MessageSpec frag; fragmenter.Next(&frag);) {
    OpenFrame* f = Open(type, t, key, queue, partition);
    if (f == nullptr) return;  // the consumer re-fetches / the lease expires
    if (type == p::FrameType::kDeliver) {
      f->writer.BeginDeliver(IdsOf(t), p::DeliverPrefix{sub_id, queue,
                                                        static_cast<uint16_t>(partition), 0});
    } else {
      f->writer.BeginMessages(IdsOf(t, reply_flags_),
                              p::MessagesPrefix{queue, p::kAnyPartition, 0, 0});
    }
    const p::EncodeError e = f->writer.AddDelivered(meta, frag);
    SLUICE_ASSERT(e == p::EncodeError::kOk);
    // A MESSAGES reply always ends with a frame of its caller (SendRecords' own frame, or
    // ReceiveDone's): every fragment frame says MORE, or the client would stop reading at the
    // end of the first fragmented message.
    ++sent;
    Close(f, /*more=*/type == p::FrameType::kMessages || sent < fragmenter.fragments());
  }
}

// ---- engine outputs ---------------------------------------------------------------------------

void Frontend::Impl::OnAck(const shard::AckRange& a) {
  if (a.target.endpoint == kInternalEndpoint.w0) return;  // an internal hand-off: no reply
  // The range is read field by field, never copied: the coalescer wrote it in pieces moments
  // ago, and a struct copy reloads it as 16-byte vectors that span those stores (a
  // store-forwarding stall per ack range). Only the outcome may change here.
  Errc errc = a.errc;
  if ((errc == Errc::kOk || errc == Errc::kDuplicate) && a.first_offset != shard::kNoOffset &&
      !replicated_.empty()) {
    // Sync queues: an ACK (or a DUPLICATE pointing at an earlier append) says "on both boxes".
    if (ack_override_ != Errc::kOk && override_key_ == PartKey(a.queue.value, a.partition)) {
      errc = ack_override_;
    } else if (const QueueInfo* q = table_->Find(a.queue.value);
               q != nullptr && q->sync_replication &&
               replicated_.contains(PartKey(a.queue.value, a.partition))) {
      if (Errc v = SyncVerdict(*q, a.partition, a.first_offset + a.count, now_ns_); v != Errc::kOk) {
        errc = v;
      }
    }
    if (errc == Errc::kNotReplicated) counters_.not_replicated += a.count;
  }
  if (errc == Errc::kOk || errc == Errc::kDuplicate) {
    counters_.acked += a.count;
    if (errc == Errc::kDuplicate) counters_.duplicates += a.count;
  } else {
    counters_.rejected += a.count;
    if (errc == Errc::kThrottled) counters_.throttled += a.count;
  }
  // Everything is read before the reply frame is touched (Open may close and send another).
  const uint64_t endpoint = a.target.endpoint, client = a.target.client_id;
  const uint64_t request = a.target.request_id, producer = a.producer_id;
  const uint32_t queue = a.queue.value;
  const p::AckRange range{static_cast<uint16_t>(a.partition), errc, a.count, a.first_sequence,
                          a.first_offset == shard::kNoOffset ? 0 : a.first_offset};
  OpenFrame* f = Find(p::FrameType::kAck, endpoint, client, producer, queue, 0);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (f == nullptr) {
      const shard::ReplyTarget target{endpoint, client, request};
      f = Open(p::FrameType::kAck, target, producer, queue, 0);
      if (f == nullptr) return;
      f->writer.BeginAck(IdsOf(target), queue, producer);
    }
    if (f->writer.AddAckRange(range) == p::EncodeError::kOk) return;
    Close(f);
    f = nullptr;
  }
}

void Frontend::Impl::OnLeased(const shard::Leased& l) {
  ++counters_.delivered;
  p::DeliveredMeta meta;
  meta.offset = l.message.offset;
  meta.server_timestamp_ns = l.message.timestamp_ns;
  meta.receipt = l.receipt.value;
  meta.partition = static_cast<uint16_t>(l.partition);
  meta.receive_count = static_cast<uint16_t>(std::min<uint32_t>(l.receive_count, UINT16_MAX));
  OpenFrame* f = Find(p::FrameType::kMessages, l.target.endpoint, l.target.client_id,
                      l.target.request_id, l.queue.value, l.partition);
  if (!FitsOneFrame(p::kMessagesPrefixBytes, l.message.record.size())) {
    if (f != nullptr) Close(f, /*more=*/true);
    SendFragments(p::FrameType::kMessages, l.target, l.target.request_id, l.queue.value,
                  l.partition, meta, l.message.record, 0);
    return;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (f == nullptr) {
      f = Open(p::FrameType::kMessages, l.target, l.target.request_id, l.queue.value, l.partition);
      if (f == nullptr) return;  // the lease times out and the message is received again
      f->writer.BeginMessages(IdsOf(l.target),
                              p::MessagesPrefix{l.queue.value, p::kAnyPartition, 0, 0});
    }
    if (f->writer.size() + p::kDeliveredMetaBytes + l.message.record.size() <=
            p::kDefaultFrameBytes &&
        f->writer.AddDeliveredRaw(meta, l.message.record) == p::EncodeError::kOk) {
      return;
    }
    Close(f, /*more=*/true);
    f = nullptr;
  }
}

void Frontend::Impl::OnReceiveDone(const shard::ReceiveDone& d) {
  OpenFrame* f = Find(p::FrameType::kMessages, d.target.endpoint, d.target.client_id,
                      d.target.request_id, d.queue.value, d.partition);
  if (d.errc != Errc::kOk) {
    if (f != nullptr) Close(f);
    ReplyBuffer buf = replies_.Acquire(EndpointOf(d.target.endpoint),
                                       p::kHeaderBytes + p::kErrorFixedBytes + 64);
    if (!buf.ok()) return;
    p::ErrorReply e;
    e.errc = d.errc;
    e.request_type = static_cast<uint8_t>(p::FrameType::kReceive);
    e.detail = ErrcName(d.errc);
    auto n = p::EncodeErrorFrame(buf.bytes, IdsOf(d.target), e);
    if (n) replies_.Send(buf, *n); else replies_.Abandon(buf);
    return;
  }
  if (f == nullptr) {  // nothing leased (or the long poll timed out): an empty MESSAGES
    f = Open(p::FrameType::kMessages, d.target, d.target.request_id, d.queue.value, d.partition);
    if (f == nullptr) return;
    f->writer.BeginMessages(IdsOf(d.target),
                            p::MessagesPrefix{d.queue.value, p::kAnyPartition, 0, 0});
  }
  Close(f);
}

void Frontend::Impl::OnDeliver(const shard::Delivery& d) {
  auto it = subs_.find(d.subscription.value);
  SLUICE_ASSERT(it != subs_.end());
  Subscription& sub = it->second;
  sub.next_offset = d.message.offset + 1;
  sub.credits = d.credits_left;
  sub.last_push_ns = now_ns_;
  ++counters_.delivered;
  p::DeliveredMeta meta;
  meta.offset = d.message.offset;
  meta.server_timestamp_ns = d.message.timestamp_ns;
  meta.partition = static_cast<uint16_t>(d.partition);
  OpenFrame* f = Find(p::FrameType::kDeliver, d.target.endpoint, d.target.client_id,
                      sub.client_sub, d.queue.value, d.partition);
  if (!FitsOneFrame(p::kDeliverPrefixBytes, d.message.record.size())) {
    if (f != nullptr) Close(f);
    SendFragments(p::FrameType::kDeliver, d.target, sub.client_sub, d.queue.value, d.partition,
                  meta, d.message.record, sub.client_sub);
    return;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (f == nullptr) {
      f = Open(p::FrameType::kDeliver, d.target, sub.client_sub, d.queue.value, d.partition);
      if (f == nullptr) return;  // the consumer sees the gap and NAKs it
      const uint64_t hw = ShardOf(d.queue.value, d.partition)
                              ->Find(d.queue, d.partition)->log().durable_end().value;
      f->writer.BeginDeliver(IdsOf(d.target),
                             p::DeliverPrefix{sub.client_sub, d.queue.value,
                                              static_cast<uint16_t>(d.partition), hw});
    }
    if (f->writer.size() + p::kDeliveredMetaBytes + d.message.record.size() <=
            p::kDefaultFrameBytes &&
        f->writer.AddDeliveredRaw(meta, d.message.record) == p::EncodeError::kOk) {
      return;
    }
    Close(f);
    f = nullptr;
  }
}

void Frontend::Impl::OnSubscriptionGap(const shard::SubscriptionGap& gap) {
  // Retention dropped messages before this subscriber read them. The consumer sees the offsets
  // jump and its NAK for the gap is answered OFFSET_OUT_OF_RANGE.
  auto it = subs_.find(gap.subscription.value);
  if (it != subs_.end()) it->second.next_offset = gap.next_offset;
}

void Frontend::Impl::OnDeadLetter(const shard::DeadLetter& d) {
  // Called from inside the engine, which must not be re-entered: copy the record aside and move
  // it after the engine call returns (FlushDeadLetters).
  const size_t len = d.message.record.size();
  if (!d.dead_letter_queue || dl_pending_.size() == dl_pending_.capacity() ||
      dl_arena_.size() + len > dl_arena_.capacity()) {
    ++counters_.dead_letters_dropped;
    return;
  }
  const QueueInfo* dlq = table_->Find(d.dead_letter_queue->value);
  if (dlq == nullptr) {  // deleted since this partition was configured (no live config updates)
    ++counters_.dead_letters_dropped;
    return;
  }
  const uint32_t part = d.source_partition % static_cast<uint32_t>(dlq->partition_shard.size());
  const size_t at = dl_arena_.size();
  // The dead letter keeps every attribute of the original (key, headers, group, dedup id,
  // reply-to, correlation id, priority, TTL, payload) and gains headers saying where it came from
  // and why (docs/protocol.md §10.1); `sluice redrive` reads them. A record with no room for them
  // (64 headers, 8 KiB of headers) moves verbatim.
  const size_t room = dl_arena_.capacity() - at;
  size_t n = AnnotateDeadLetter(d, std::span<std::byte>(dl_arena_.data() + at, 0), room);
  if (n != 0) {
    dl_arena_.resize(at + n);
    n = AnnotateDeadLetter(d, std::span<std::byte>(dl_arena_.data() + at, n), room);
    SLUICE_ASSERT(n == dl_arena_.size() - at);
  } else {
    dl_arena_.insert(dl_arena_.end(), d.message.record.begin(), d.message.record.end());
    n = len;
  }
  p::le::Store<uint16_t>(dl_arena_.data() + at + 4, static_cast<uint16_t>(part));
  dl_pending_.push_back({dlq->id, part, at, n});
}

// Re-encodes a dead letter with the sluice-dlq-* headers into `out`; with an empty `out` only
// measures. Returns the record size, or 0 when it cannot be annotated (too many headers, or the
// result would not fit `room`).
size_t Frontend::Impl::AnnotateDeadLetter(const shard::DeadLetter& d, std::span<std::byte> out,
                                          size_t room) const {
  auto m = p::DecodeMessageRecord(d.message.record);
  SLUICE_ASSERT(m.has_value());  // stored records were validated on the way in
  constexpr size_t kAdded = 6;
  if (m->headers.size() + kAdded > p::kMaxHeaders) return 0;
  std::array<p::Header, p::kMaxHeaders> headers;
  p::MessageSpec spec = p::SpecOf(*m, headers);
  const size_t have = spec.headers.size();
  const QueueInfo* source = table_->Find(d.source_queue.value);
  char partition[12], offset[24], count[12];
  std::snprintf(partition, sizeof partition, "%u", d.source_partition);
  std::snprintf(offset, sizeof offset, "%lu", static_cast<unsigned long>(d.message.offset));
  std::snprintf(count, sizeof count, "%u", d.receive_count);
  headers[have + 0] = {"sluice-dlq-reason", "max_receive_count"};
  headers[have + 1] = {"sluice-dlq-last-lease",
                       d.last_lease == shard::LeaseEnd::kNacked ? "nacked" : "expired"};
  headers[have + 2] = {"sluice-dlq-source-queue",
                       source != nullptr ? std::string_view(source->name) : std::string_view()};
  headers[have + 3] = {"sluice-dlq-source-partition", partition};
  headers[have + 4] = {"sluice-dlq-source-offset", offset};
  headers[have + 5] = {"sluice-dlq-receive-count", count};
  spec.headers = std::span<const p::Header>(headers.data(), have + kAdded);
  if (p::CheckMessage(spec) != p::EncodeError::kOk) return 0;
  const size_t size = p::EncodedSize(spec);
  if (size > room) return 0;
  if (out.empty()) return size;
  auto n = p::EncodeMessageRecord(out, spec);
  return n ? *n : 0;
}

void Frontend::Impl::FlushDeadLetters(uint64_t now_ns) {
  for (const PendingDeadLetter& dl : dl_pending_) {
    const std::span<const std::byte> record(dl_arena_.data() + dl.at, dl.len);
    const QueueInfo& q = *table_->Find(dl.queue);
    bool moved;
    if (Owns(q, dl.partition)) {
      auto m = p::DecodeMessageRecord(record);
      SLUICE_ASSERT(m.has_value());
      shard::MessageIn in;
      in.record = record;
      in.partition = static_cast<uint16_t>(dl.partition);
      in.priority = m->priority;
      in.ttl_ms = m->ttl_ms;
      in.group = m->group_id;
      const shard::ReplyTarget internal{0, 0, 0};
      moved = ShardOf(dl.queue, dl.partition)
                  ->Append(internal, shard::QueueId{dl.queue}, in, now_ns).errc == Errc::kOk;
    } else {
      moved = replies_.HandOffRecord(q.partition_worker[dl.partition], dl.queue, record);
    }
    ++(moved ? counters_.dead_lettered : counters_.dead_letters_dropped);
  }
  dl_pending_.clear();
  dl_arena_.clear();
}

void Frontend::Impl::ScanSubscriptions(uint64_t now_ns) {
  for (auto it = inboxes_.begin(); it != inboxes_.end();) {  // requesters that went away
    if (now_ns - it->second.last_seen_ns > 3 * kHeartbeatNs) {
      inboxes_.erase(it++);
    } else {
      ++it;
    }
  }
  for (auto it = subs_.begin(); it != subs_.end();) {
    Subscription& s = it->second;
    shard::Shard* shard = ShardOf(s.queue, s.partition);
    if (now_ns - s.last_credit_ns > 3 * kHeartbeatNs) {  // the consumer is gone
      shard->Unsubscribe(shard::SubscriptionId{it->first});
      sub_ids_.erase(SubKey(s.client_id, s.client_sub, s.partition));
      subs_.erase(it++);
      ++subscriptions_dropped_;
      continue;
    }
    if (now_ns - s.last_push_ns >= kHeartbeatNs) {
      const shard::ReplyTarget t{s.endpoint, s.client_id, 0};
      if (OpenFrame* f = Open(p::FrameType::kDeliver, t, s.client_sub, s.queue, s.partition)) {
        const uint64_t hw =
            shard->Find(shard::QueueId{s.queue}, s.partition)->log().durable_end().value;
        f->writer.BeginDeliver(IdsOf(t), p::DeliverPrefix{s.client_sub, s.queue,
                                                          static_cast<uint16_t>(s.partition), hw});
        Close(f);
      }
      s.last_push_ns = now_ns;
    }
    ++it;
  }
}

uint32_t Frontend::Impl::Service(uint64_t now_ns) {
  now_ns_ = std::max(now_ns_, now_ns);
  uint64_t work = 0;
  if (now_ns >= next_sub_scan_ns_) {
    next_sub_scan_ns_ = now_ns + kSubscriptionScanNs;
    ScanSubscriptions(now_ns);
  }
  for (auto& s : shards_) {
    if (!s) continue;
    sealed_.clear();
    work += s->SealDue([&](const shard::Partition& pt) { return SealNow(pt, now_ns); },
                       [this](const shard::Partition& pt) { sealed_.push_back(&pt); });
    for (const shard::Partition* pt : sealed_) {
      if (Persisted(*pt)) {
        to_submit_.push_back(pt);
      } else {  // durability none: sealed is durable
        s->MarkDurable(pt->queue(), pt->index(), shard::DurableOffset{pt->log().sealed_end().value},
                       now_ns);
      }
    }
  }
  if (persistence_ != nullptr) {
    if (!to_submit_.empty()) work += SubmitBatches();
    work += persistence_->Poll([this](uint32_t q, uint32_t part, shard::DurableOffset d, Errc e,
                                      std::string_view why) { OnStorage(q, part, d, e, why); });
    work += persistence_->PollReads(
        [this](uint64_t cookie, Errc e, uint64_t next, std::span<const shard::StoredMessage> recs) {
          OnColdRead(cookie, e, next, recs);
        });
    if (!replicated_.empty()) ReleaseSync(now_ns);
    persistence_->FlushAcks();
    if (now_ns >= next_retention_ns_) {
      next_retention_ns_ = now_ns + kRetentionScanNs;
      EnforceLogRetention(now_ns);
    }
  }
  if (pending_ != nullptr && pending_->waiting() > 0) work += ReleasePending(now_ns, false);
  if (replicator_ != nullptr && !replicator_->Writable()) {
    work += ServiceReplicaSubs(now_ns);
    work += replicator_->PollReplicaReads(
        [this](uint64_t cookie, Errc e, uint64_t next, std::span<const shard::StoredMessage> recs) {
          OnColdRead(cookie, e, next, recs);
        });
  }
  for (auto& s : shards_) {
    if (s) work += s->Tick(now_ns);
  }
  if (!dl_pending_.empty()) FlushDeadLetters(now_ns);
  CloseAll();
  return static_cast<uint32_t>(std::min<uint64_t>(work, UINT32_MAX));
}

void Frontend::Impl::Drain(uint64_t now_ns) {
  // Seal everything, write it, wait for it: what producers sent before the stop is acked.
  for (auto& s : shards_) {
    if (!s) continue;
    sealed_.clear();
    s->SealAll([this](const shard::Partition& pt) { sealed_.push_back(&pt); });
    for (const shard::Partition* pt : sealed_) {
      if (Persisted(*pt)) {
        to_submit_.push_back(pt);
      } else {
        s->MarkDurable(pt->queue(), pt->index(), shard::DurableOffset{pt->log().sealed_end().value});
      }
    }
  }
  if (persistence_ != nullptr) {
    for (int round = 0; round < 64 && !to_submit_.empty(); ++round) {
      SubmitBatches();
      persistence_->Drain([this](uint32_t q, uint32_t part, shard::DurableOffset d, Errc e,
                                 std::string_view why) { OnStorage(q, part, d, e, why); });
    }
    // Async queues' acks go; sync ones only as far as the standby acked (the rest are resent by
    // their producers, and answered DUPLICATE or appended by whoever is primary then).
    if (!replicated_.empty()) ReleaseSync(now_ns);
  }
  // Replies still waiting for the standby: answered now with what it confirmed (the rest
  // NOT_REPLICATED, or acked with the alarm where the queue degrades).
  if (pending_ != nullptr && pending_->waiting() > 0) ReleasePending(now_ns, /*final=*/true);
  for (auto& s : shards_) {
    if (s) s->Flush();
  }
  CloseAll();
}

std::string Frontend::Impl::StatsJson() const {
  std::string out = "[";
  bool first = true;
  for (size_t id = 0; id < shards_.size(); ++id) {
    if (!shards_[id]) continue;
    const shard::ShardCounters& c = shards_[id]->counters();
    absl::StrAppendFormat(
        &out,
        "%s{\"shard\": %u, \"appended\": %u, \"acked\": %u, \"throttled\": %u, "
        "\"duplicates\": %u, \"out_of_order\": %u, \"rejected\": %u, \"delivered\": %u, "
        "\"leases\": %u, \"redeliveries\": %u, \"deleted\": %u, \"nacked\": %u, "
        "\"lease_expired\": %u, \"stale_receipts\": %u, \"unknown_receipts\": %u}",
        first ? "" : ", ", id, c.appended, c.acked, c.throttled, c.duplicates, c.out_of_order,
        c.rejected, c.delivered, c.leases, c.redeliveries, c.deleted, c.nacked, c.lease_expired,
        c.stale_receipts, c.unknown_receipts);
    first = false;
  }
  absl::StrAppendFormat(&out, "]");
  return out;
}

// ---------------------------------------------------------------------------------------------

Frontend::Frontend(const QueueTable& table, uint16_t worker, std::span<const uint32_t> shards,
                   ReplyChannel& replies, uint32_t min_message_bytes, Persistence* persistence,
                   Replicator* replicator)
    : impl_(std::make_unique<Impl>(table, worker, shards, replies, counters_, histograms_,
                                   min_message_bytes, persistence, replicator)) {}

void Frontend::SetTable(const QueueTable& next) { impl_->SetTable(next); }

void Frontend::CollectPartitionStats(std::vector<PartitionFigures>* out) const {
  impl_->CollectPartitionStats(out);
}

std::vector<std::span<std::byte>> Frontend::BatchMemory() const { return impl_->BatchMemory(); }

Frontend::~Frontend() = default;

void Frontend::OnFrame(const p::FrameView& frame, const Endpoint& from, const RouteContext& route,
                       uint64_t now_ns) {
  impl_->OnFrame(frame, from, route, now_ns);
}

uint32_t Frontend::Service(uint64_t now_ns) { return impl_->Service(now_ns); }

void Frontend::Drain(uint64_t now_ns) { impl_->Drain(now_ns); }

std::string Frontend::StatsJson() const { return impl_->StatsJson(); }

}  // namespace sluice::dataplane
