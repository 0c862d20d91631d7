// Frontend (frontend_impl.h): construction and the queue table, reply frames, request dispatch,
// the PRODUCE path with its acks, and the per-pass Service and Drain. The hot path (OnFrame ->
// OnProduce -> Shard::Append -> OnAck -> the open ACK frame) stays in this one translation unit so
// that it inlines; each other request family has its own file (listed in frontend_impl.h).
#include "dataplane/frontend_impl.h"

namespace sluice::dataplane {

shard::ShardConfig EngineShardConfig(uint32_t largest_message_bytes, uint32_t shard_memory_mb) {
  // Chunks hold whole records: at least twice the largest message (plus its metadata) per chunk.
  shard::ShardConfig sc;
  sc.chunk_bytes = 256 * 1024;
  while (sc.chunk_bytes < 2 * largest_message_bytes + 16 * 1024) sc.chunk_bytes *= 2;
  sc.pool_chunks = static_cast<uint32_t>(
      std::max<uint64_t>(16, (uint64_t{shard_memory_mb} << 20) / sc.chunk_bytes));
  // Touched at start-up: a first write into a fresh page is a page fault (a huge-page one may
  // compact memory first), i.e. a kernel entry of up to milliseconds on the append path the
  // first time a shard fills its pool (docs/benchmarks.md, the work cycle at 10 M in flight).
  sc.prefault_pool = true;
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
                     Persistence* persistence, Replicator* replicator, uint32_t shard_memory_mb)
    : table_(&table), worker_(worker), replies_(replies), counters_(counters),
      persistence_(persistence), replicator_(replicator) {
  shards_.resize(table.shard_count());
  const uint32_t largest = std::max(table.largest_message_bytes(), min_message_bytes);
  shard::ShardConfig sc = EngineShardConfig(largest, shard_memory_mb);
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
  storage_used_ = true;
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
        in.body = m->payload;  // content dedup is rebuilt like dedup ids
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

Endpoint Frontend::Impl::EndpointOfOther(uint64_t w0) const {
  auto it = peer_mac_.find(w0);
  return Endpoint{w0, it == peer_mac_.end() ? 0 : it->second};
}


// ---- reply frames ------------------------------------------------------------------------------

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
  auto n = f->writer.Finish();
  if (!n) {
    Discard(f);
    return;
  }
  SLUICE_ASSERT(f->used && open_used_ > 0);
  f->used = false;
  --open_used_;
  if (more) {  // more frames follow for this request (MESSAGES / FETCH split over datagrams)
    const uint16_t flags = p::le::U16(f->buffer.bytes.data() + 6) | p::kFlagMore;
    p::le::Store<uint16_t>(f->buffer.bytes.data() + 6, flags);
  }
  replies_.Send(f->buffer, *n);
}

// Every way out of an open frame (sent or not) takes its count down with it: CloseAll relies on
// the count to stop.
void Frontend::Impl::Discard(OpenFrame* f) {
  SLUICE_ASSERT(f->used && open_used_ > 0);
  f->used = false;
  --open_used_;
  replies_.Abandon(f->buffer);
}

void Frontend::Impl::CloseOpen() {
  // Most passes leave one frame open (the ACK of a window-1 PRODUCE): stop at the last one.
  for (size_t i = 0; open_used_ != 0; ++i) {
    SLUICE_ASSERT(i < open_.size());
    if (open_[i].used) Close(&open_[i]);
  }
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


// ---- requests ----------------------------------------------------------------------------------

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
    case p::FrameType::kProduce:
      OnProduce(f, p::DecodeValidatedProduce(f), from, route, now_ns);
      break;
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

// Inlined into OnProduceFrame (the receiver's path), called from OnFrame for the rest.
[[gnu::always_inline]] inline void Frontend::Impl::OnProduce(const p::FrameView& f,
                                                             const p::ProduceView& produce,
                                                             const Endpoint& from,
                                                             const RouteContext& route,
                                                             uint64_t now_ns) {
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

// OnFrame for a PRODUCE, its view decoded by the caller: the same steps in the same order.
void Frontend::Impl::OnProduceFrame(const p::FrameView& f, const p::ProduceView& produce,
                                    const Endpoint& from, const RouteContext& route,
                                    uint64_t now_ns) {
  SLUICE_ASSERT(f.header.type == p::FrameType::kProduce);
  if (replicator_ != nullptr && !replicator_->Writable()) {
    OnFrame(f, from, route, now_ns);  // a standby's answers
    return;
  }
  now_ns_ = std::max(now_ns_, now_ns);
  Learn(from);
  OnProduce(f, produce, from, route, now_ns);
  if (!dl_pending_.empty()) FlushDeadLetters(now_ns);
  CloseAll();
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
  in.body = m.payload;
  in.producer_id = producer_id;
  in.sequence = m.sequence;
  in.timestamp_ns = m.timestamp_ns;
  return in;
}

// Every field in one initializer: filled one by one after a default construction, the struct
// was zeroed first (an 88-byte `rep stos` per message).
shard::MessageIn MessageInOf(p::RecordRef r, uint64_t producer_id) {
  std::string_view dedup_id, group;
  r.DedupAndGroup(&dedup_id, &group);
  return shard::MessageIn{.record = r.record(),
                          .partition = r.partition(),
                          .priority = r.priority(),
                          .delay_ms = r.delay_ms(),
                          .ttl_ms = r.ttl_ms(),
                          .dedup_id = dedup_id,
                          .group = group,
                          .body = r.payload(),
                          .producer_id = producer_id,
                          .sequence = r.sequence(),
                          .timestamp_ns = r.timestamp_ns()};
}

}  // namespace

// One message to its shard. Only a reassembled message needs a MessageView of its own: one
// default-constructed for every message cost a 168-byte `rep stos` per message.
template <class M>
[[gnu::always_inline]] inline void Frontend::Impl::AppendMessage(
    const QueueInfo& q, const shard::ReplyTarget& target, uint64_t producer_id, const M& m,
    uint64_t now_ns) {
  shard::MessageIn in = MessageInOf(m, producer_id);
  // A dead letter another worker handed over (the only internal PRODUCE) is, like one moved on
  // this worker (FlushDeadLetters), never deduplicated by its content.
  if (target.endpoint == kInternalEndpoint.w0) in.body = {};
  const shard::AppendResult r =
      shards_[q.partition_shard[in.partition]]->Append(target, shard::QueueId{q.id}, in, now_ns);
  if (r.errc == Errc::kOk) ++counters_.produced;
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


// ---- engine outputs ----------------------------------------------------------------------------

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
    // An in-memory partition seals every pass: answered here, without SealNow's call.
    work += s->SealDue([&](const shard::Partition& pt) {
                         return !Persisted(pt) || SealNow(pt, now_ns);
                       },
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
  if (persistence_ != nullptr && (storage_used_ || !storage_polled_)) {
    storage_polled_ = true;
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


// ---- the public face ---------------------------------------------------------------------------

Frontend::Frontend(const QueueTable& table, uint16_t worker, std::span<const uint32_t> shards,
                   ReplyChannel& replies, uint32_t min_message_bytes, Persistence* persistence,
                   Replicator* replicator, uint32_t shard_memory_mb)
    : impl_(std::make_unique<Impl>(table, worker, shards, replies, counters_, histograms_,
                                   min_message_bytes, persistence, replicator,
                                   shard_memory_mb)) {}

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

void Frontend::OnProduce(const p::FrameView& frame, const p::ProduceView& produce,
                         const Endpoint& from, const RouteContext& route, uint64_t now_ns) {
  impl_->OnProduceFrame(frame, produce, from, route, now_ns);
}

uint32_t Frontend::Service(uint64_t now_ns) { return impl_->Service(now_ns); }

void Frontend::Drain(uint64_t now_ns) { impl_->Drain(now_ns); }

std::string Frontend::StatsJson() const { return impl_->StatsJson(); }

}  // namespace sluice::dataplane
