// Frontend::Impl: the state of one worker's request layer (its shards, the reply frames being
// filled, subscriptions, cold reads, held replies) and the methods that act on it. Internal to the
// sluice_frontend library: only dataplane/frontend*.cc include it. The methods live in one file
// per concern:
//   frontend.cc             construction, partitions, reply frames, request dispatch, the PRODUCE
//                           path and its acks, the per-pass Service and Drain (the hot path stays
//                           in one translation unit so that it inlines)
//   frontend_durability.cc  sealing and writing batches, storage completions, sync replication
//                           (held acks and replies), log retention
//   frontend_work.cc        work queues: RECEIVE, DELETE/NACK/EXTEND, leases, dead letters
//   frontend_streams.cc     streams: FETCH, SUBSCRIBE, credits, NAK, cold reads from the log
//   frontend_groups.cc      consumer groups: JOIN_GROUP, COMMIT
//   frontend_inbox.cc       request/reply: inboxes and REPLY
//   frontend_standby.cc     a standby's replica reads and subscriptions, NOT_PRIMARY
#pragma once

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

// Where a FETCH or SUBSCRIBE starts (kCommitted is resolved by the caller).
inline shard::StartPosition StartOf(p::StartKind kind, uint64_t value) {
  switch (kind) {
    case p::StartKind::kEarliest: return shard::StartPosition::Earliest();
    case p::StartKind::kLatest: return shard::StartPosition::Latest();
    case p::StartKind::kTimestamp: return shard::StartPosition::Timestamp(value);
    default: return shard::StartPosition::Offset(value);
  }
}

// Frame ids of a reply: the request's client and request ids.
inline p::FrameIds IdsOf(const shard::ReplyTarget& t, uint16_t flags = 0) {
  return p::FrameIds{t.client_id, t.request_id, flags};
}

// Impl: the shards of this worker, the reply frames being filled, and the engine's sink.
class Frontend::Impl final : public shard::ShardSink {
 public:
  Impl(const QueueTable& table, uint16_t worker, std::span<const uint32_t> shards,
       ReplyChannel& replies, FrontendCounters& counters, FrontendHistograms& histograms,
       uint32_t min_message_bytes, Persistence* persistence, Replicator* replicator,
       uint32_t shard_memory_mb);

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
  void OnProduceFrame(const p::FrameView& f, const p::ProduceView& produce, const Endpoint& from,
                      const RouteContext& route, uint64_t now_ns);
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
  // Most replies go to the client learned last: no hashing for them.
  Endpoint EndpointOf(uint64_t w0) const {
    return w0 == learned_.w0 ? learned_ : EndpointOfOther(w0);
  }
  Endpoint EndpointOfOther(uint64_t w0) const;
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
  void Discard(OpenFrame* f);  // releases an open frame unsent (its buffer back, the count down)
  // Sends every open reply frame (after each request and each pass). Inline: after most
  // requests of a flood there is nothing to send (acks come with the seal, in Service), and the
  // call cost ~30 instructions per frame to find that out.
  void CloseAll() {
    for (auto& s : shards_)
      if (s) s->Flush();
    if (open_used_ != 0) CloseOpen();
  }
  void CloseOpen();

  void Error(const p::FrameView& f, const Endpoint& to, Errc errc, std::string_view detail);
  // M is p::MessageView (a reassembled message) or p::RecordRef (a record of the frame).
  template <class M>
  void AppendMessage(const QueueInfo& q, const shard::ReplyTarget& target, uint64_t producer_id,
                     const M& m, uint64_t now_ns);
  void OnProduce(const p::FrameView& f, const p::ProduceView& produce, const Endpoint& from,
                 const RouteContext& route, uint64_t now_ns);
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
  // Whether this worker ever opened a log (a durable partition, even one whose log failed): until
  // then no write, read or ack-log entry of its can be in storage, and the pass does not poll it
  // (in-memory queues on a box with storage). Never cleared: a log closed since may still have
  // a read in flight.
  bool storage_used_ = false;
  bool storage_polled_ = false;  // the first pass polls anyway (the shell learns the loop runs)
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
    uint64_t read_from = 0;     // ...from this offset (UINT64_MAX: a replaced one's, dropped)
    // A SUBSCRIBE from a timestamp: the start is not known yet. The first read goes by
    // timestamp; its answer resolves the start, sends the RESULT (request_id) and pushes what
    // it read. Until then credit_end holds only what CREDITs said; initial_credits count from
    // the start.
    bool resolving = false;
    uint64_t resolve_ts = 0;
    uint64_t request_id = 0;
    uint32_t initial_credits = 0;
  };
  // The RESULT of a SUBSCRIBE whose start was resolved later (from a timestamp): one item.
  void SendReplicaSubResult(const ReplicaSub& s, Errc errc, uint64_t start);
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

}  // namespace sluice::dataplane
