#include "dataplane/shard/shard.h"

#include <algorithm>

#include "protocol/assert.h"

namespace sluice::shard {
namespace {

LogConfig MakeLogConfig(const QueueConfig& q, const ShardConfig& s, uint64_t* evicted) {
  LogConfig c;
  c.indexed = q.type == QueueType::kStream;
  c.max_chunks = q.memory_budget_chunks;
  c.max_index_entries = q.max_messages;
  c.retention_bytes = q.retention_bytes;
  c.retention_ms = q.retention_ms;
  c.batch_align_bytes = q.durability == Durability::kNone && s.memory_batch_align_bytes != 0
                            ? s.memory_batch_align_bytes
                            : s.batch_align_bytes;
  c.batch_header_bytes = s.batch_header_bytes;
  c.chunks_evicted = evicted;
  return c;
}

}  // namespace

Partition::Partition(QueueId queue, uint32_t index, const QueueConfig& config,
                     const ShardConfig& shard, ChunkPool& pool, uint64_t* chunks_evicted)
    : queue_(queue),
      index_(index),
      config_(config),
      log_(pool, MakeLogConfig(config, shard, chunks_evicted)),
      producers_(config.max_producers),
      dedup_(config.dedup_window_ms == 0 ? 1 : config.max_dedup_entries,
             uint64_t{config.dedup_window_ms} * 1'000'000),
      // Bounds how far storage may lag behind appends before producers see kThrottled.
      acks_(config.max_pending_acks) {}

Shard::Shard(const ShardConfig& config, ShardSink* sink)
    : config_(config),
      sink_(sink),
      pool_(config.chunk_bytes, config.pool_chunks, config.batch_align_bytes, config.arena,
            config.prefault_pool) {
  SLUICE_ASSERT(sink_ != nullptr && config_.timer_tick_ns > 0);
  partitions_.reserve(config_.max_partitions);
  streams_.reserve(config_.max_partitions);
  open_batches_.reserve(config_.max_partitions);
  subscriptions_.reserve(config_.max_subscriptions * 2);
}

// Partitions go before the pool and the wheel (member order would do it too; this says so).
Shard::~Shard() {
  last_ = nullptr;
  streams_.clear();
  partitions_.clear();
}

// ---- control -------------------------------------------------------------------------------------

void Shard::Advance(uint64_t now_ns) {
  SLUICE_ASSERT(now_ns > now_ns_);
  now_ns_ = now_ns;
  // An empty wheel follows the clock at no cost, so the first timer after a quiet spell (or the
  // first ever, with now_ns far from 0) is placed relative to the present.
  if (wheel_.size() == 0 && now_ns_ >= next_tick_ns_) {
    const uint64_t tick = now_ns_ / config_.timer_tick_ns;
    wheel_.Advance(tick, [](TimerNode*) {});
    next_tick_ns_ = (tick + 1) * config_.timer_tick_ns;
  }
}

Errc Shard::AddPartition(QueueId queue, uint32_t partition, const QueueConfig& config) {
  const uint64_t room = uint64_t{config_.chunk_bytes} - config_.batch_header_bytes -
                        sizeof(RecordHeader);
  if (partitions_.contains(Key(queue, partition)) ||
      partitions_.size() >= config_.max_partitions || config.max_message_bytes > room ||
      config.priority_levels == 0 || config.priority_levels > 16 || config.max_messages == 0 ||
      config.memory_budget_chunks == 0 || config.max_pending_acks == 0 ||
      (config.fifo && config.max_groups == 0)) {
    return Errc::kInvalidArgument;
  }
  std::unique_ptr<Partition> p(
      new Partition(queue, partition, config, config_, pool_, &counters_.chunks_evicted));
  if (config.type == QueueType::kStream) {
    p->stream_ = std::make_unique<Stream>(
        StreamEnv{queue, partition, &p->config_, &p->log_, &counters_, &p->counters_, sink_});
    streams_.push_back(p.get());
    if (partition == 0) {
      p->groups_ = std::make_unique<GroupCoordinator>(
          std::max<uint32_t>(1, config.partitions), config.max_consumer_groups,
          config.max_group_members);
      coordinators_.push_back(p.get());
    }
  } else {
    p->work_ = std::make_unique<WorkQueue>(WorkQueueEnv{queue, partition, &p->config_, &p->log_,
                                                        &wheel_, config_.timer_tick_ns,
                                                        &counters_, &p->counters_, sink_,
                                                        &now_ns_});
  }
  p->UpdatePlainStream();
  partitions_.emplace(Key(queue, partition), std::move(p));
  return Errc::kOk;
}

Errc Shard::UpdateLiveConfig(QueueId queue, uint32_t partition, const QueueConfig& next) {
  Partition* p = Get(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  const uint64_t room = uint64_t{config_.chunk_bytes} - config_.batch_header_bytes -
                        sizeof(RecordHeader);
  if (next.max_message_bytes > room) return Errc::kInvalidArgument;
  QueueConfig& c = p->config_;  // the work queue and the stream read it by reference
  c.visibility_timeout_ms = next.visibility_timeout_ms;
  c.max_receive_count = next.max_receive_count;
  c.dead_letter_queue = next.dead_letter_queue;
  c.delay_ms = next.delay_ms;
  c.ttl_ms = next.ttl_ms;
  c.max_message_bytes = next.max_message_bytes;
  if (p->stream_ != nullptr) {
    c.retention_bytes = next.retention_bytes;
    c.retention_ms = next.retention_ms;
    p->log_.SetRetention(next.retention_bytes, next.retention_ms);
  }
  c.content_dedup = next.content_dedup;  // read per message: applies from the next append
  if (c.dedup_window_ms != next.dedup_window_ms) {
    c.dedup_window_ms = next.dedup_window_ms;
    p->dedup_.SetWindow(uint64_t{next.dedup_window_ms} * 1'000'000, c.max_dedup_entries);
  }
  p->UpdatePlainStream();  // the window or content dedup may have changed
  return Errc::kOk;
}

Errc Shard::Purge(QueueId queue, uint32_t partition, uint64_t* purged_below, uint64_t* dropped) {
  Partition* p = Get(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  const uint64_t below = p->log_.durable_end().value;
  uint64_t n = 0;
  if (p->work_ != nullptr) {
    n = p->work_->Purge();
  } else {
    n = p->log_.TruncateBefore(below);
    p->stream_->Pump(kPushBudget);  // subscribers behind the purge point learn of the gap now
  }
  p->counters_.purged += n;
  *purged_below = below;
  *dropped = n;
  return Errc::kOk;
}

Errc Shard::RemovePartition(QueueId queue, uint32_t partition) {
  auto it = partitions_.find(Key(queue, partition));
  if (it == partitions_.end()) return Errc::kUnknownPartition;
  Partition* p = it->second.get();
  for (auto s = subscriptions_.begin(); s != subscriptions_.end();) {
    if (s->second.partition == p) subscriptions_.erase(s++); else ++s;
  }
  streams_.erase(std::remove(streams_.begin(), streams_.end(), p), streams_.end());
  coordinators_.erase(std::remove(coordinators_.begin(), coordinators_.end(), p),
                      coordinators_.end());
  open_batches_.erase(std::remove(open_batches_.begin(), open_batches_.end(), p),
                      open_batches_.end());
  // Keep the promises: every Append gets an ack, every Receive a ReceiveDone. What was not
  // durable is gone with the partition.
  RejectPendingAcks(*p, Errc::kUnknownPartition);
  if (p->work_ != nullptr) p->work_->CancelWaiters(Errc::kUnknownPartition);
  Flush();
  if (last_ == p) last_ = nullptr;
  partitions_.erase(it);
  return Errc::kOk;
}

const Partition* Shard::Find(QueueId queue, uint32_t partition) const { return Get(queue, partition); }

// Consecutive messages mostly go to the partition the previous one went to: a one-entry cache
// in front of the map (a hash and a probe per message otherwise).
Partition* Shard::Lookup(uint64_t key) {
  auto it = partitions_.find(key);
  if (it == partitions_.end()) return nullptr;
  last_key_ = key;
  last_ = it->second.get();
  return last_;
}

const Partition* Shard::Get(QueueId q, uint32_t p) const {
  auto it = partitions_.find(Key(q, p));
  return it == partitions_.end() ? nullptr : it->second.get();
}

// ---- produce -------------------------------------------------------------------------------------

void Shard::Ack(Partition& p, const ReplyTarget& target, const MessageIn& m, uint64_t offset,
                Errc errc) {
  acks_out_.Add(target, p.queue_, p.index_, m.producer_id, m.sequence, offset, errc, *sink_);
}

AppendResult Shard::Reject(const ReplyTarget& target, QueueId queue, const MessageIn& m,
                           Errc errc) {
  switch (errc) {
    case Errc::kThrottled: ++counters_.throttled; break;
    case Errc::kOutOfOrderSequence: ++counters_.out_of_order; break;
    default: ++counters_.rejected; break;
  }
  acks_out_.Add(target, queue, m.partition, m.producer_id, m.sequence, kNoOffset, errc, *sink_);
  return {errc, kNoOffset};
}

namespace {

// No DedupHash: Hash() clears the top bit, so an id hash is never all ones; a content hash could
// be (2^-63), in which case that one payload is simply not deduplicated.
constexpr uint64_t kNoDedup = ~uint64_t{0};

}  // namespace

// The content hash is computed only for the queues that ask.
uint64_t Shard::DedupHash(const Partition& p, const MessageIn& m) {
  if (!p.dedup_.enabled()) return kNoDedup;
  if (!m.dedup_id.empty()) return DedupTable::Hash(m.dedup_id);
  if (p.config_.content_dedup && m.body.data() != nullptr) return DedupTable::HashContent(m.body);
  return kNoDedup;
}

// A retransmit or a dedup-id hit: acked with the original offset once that is durable.
AppendResult Shard::Duplicate(Partition& p, const ReplyTarget& target, const MessageIn& m,
                              uint64_t offset) {
  if (offset != kNoOffset && offset >= p.log_.durable_end().value) {
    if (p.pending_messages_ >= p.acks_.capacity()) {
      return Reject(target, p.queue_, m, Errc::kThrottled);
    }
    p.acks_.push_back({target, m.producer_id, m.sequence, offset, now_ns_, 1,
                       Partition::PendingAck::kStepUnknown, Errc::kDuplicate});
    ++p.pending_messages_;
  } else {
    ++counters_.acked;
    ++p.counters_.acked;
    Ack(p, target, m, offset, Errc::kDuplicate);
  }
  ++counters_.duplicates;
  return {Errc::kDuplicate, offset};
}

AppendResult Shard::LogRefused(Partition& p, const ReplyTarget& target, const MessageIn& m,
                               Errc errc) {
  if (errc == Errc::kThrottled) ++p.counters_.throttled;
  return Reject(target, p.queue_, m, errc);
}

// Every append the inline path in shard.h does not take (SeeTime was called there).
AppendResult Shard::AppendSlow(const ReplyTarget& target, QueueId queue, const MessageIn& m) {
  // The record's two words one by one: the caller stored them moments ago as two 8-byte stores,
  // and the span copied whole was reloaded as one 16-byte vector (a store-forwarding stall).
  const std::byte* const record = m.record.data();
  const size_t record_bytes = m.record.size();
  Partition* p = Get(queue, m.partition);
  if (p == nullptr) return Reject(target, queue, m, Errc::kUnknownPartition);
  if (record_bytes > p->config_.max_message_bytes) {
    return Reject(target, queue, m, Errc::kMessageTooLarge);
  }
  if (p->failed_) return Reject(target, queue, m, Errc::kStorageFailed);

  const ProducerTable::Check check = p->producers_.Classify(m.producer_id, m.sequence);
  if (check.verdict == ProducerTable::Verdict::kOutOfOrder) {
    return Reject(target, queue, m, Errc::kOutOfOrderSequence);
  }
  if (check.verdict == ProducerTable::Verdict::kDuplicate) {
    return Duplicate(*p, target, m, check.offset);
  }
  const uint64_t dedup_hash = p->dedup_.enabled() ? DedupHash(*p, m) : kNoDedup;
  const bool dedup = dedup_hash != kNoDedup;
  if (dedup) {
    if (const std::optional<uint64_t> original = p->dedup_.Find(dedup_hash, now_ns_)) {
      // The producer's sequence still advances: this sequence is answered, by the original.
      if (check.verdict == ProducerTable::Verdict::kNew &&
          p->producers_.Record(check, m.producer_id, m.sequence, *original)) {
        ++counters_.producer_evictions;
      }
      return Duplicate(*p, target, m, *original);
    }
  }

  // Capacity checks before any side effect, so a throttled message leaves no trace.
  if (p->pending_messages_ >= p->acks_.capacity() ||
      (p->work_ != nullptr && p->work_->Admit(m.group) != Errc::kOk)) {
    ++p->counters_.throttled;
    return Reject(target, queue, m, Errc::kThrottled);
  }
  const PartitionLog::Appended a =
      p->log_.Append(std::span<const std::byte>(record, record_bytes), now_ns_, m.producer_id);
  if (a.errc != Errc::kOk) return LogRefused(*p, target, m, a.errc);
  if (!p->open_listed_) ListOpen(*p);

  if (p->work_ != nullptr) p->work_->Add(a, m);
  if (check.verdict == ProducerTable::Verdict::kNew &&
      p->producers_.Record(check, m.producer_id, m.sequence, a.offset)) {
    ++counters_.producer_evictions;
  }
  if (dedup && p->dedup_.Insert(dedup_hash, a.offset, now_ns_)) ++counters_.dedup_evictions;
  return Accepted(*p, target, m, a.offset);
}

void Shard::RecordSealed(const Partition& p) {
  if (config_.batch_bytes != nullptr) config_.batch_bytes->Record(p.log_.last_sealed_bytes());
  if (config_.batch_messages != nullptr) {
    config_.batch_messages->Record(p.log_.last_sealed_count());
  }
}

bool Shard::SealBatch(QueueId queue, uint32_t partition) {
  Partition* p = Get(queue, partition);
  if (p == nullptr || !p->log_.Seal()) return false;
  ++counters_.batches_sealed;
  RecordSealed(*p);
  return true;
}

uint32_t Shard::SealAll(absl::FunctionRef<void(const Partition&)> sealed) {
  uint32_t n = 0;
  for (Partition* p : open_batches_) {
    p->open_listed_ = false;
    if (p->log_.Seal()) {
      ++n;
      RecordSealed(*p);
      sealed(*p);
    }
  }
  open_batches_.clear();
  counters_.batches_sealed += n;
  return n;
}

uint32_t Shard::SealDue(absl::FunctionRef<bool(const Partition&)> due,
                        absl::FunctionRef<void(const Partition&)> sealed) {
  uint32_t n = 0;
  size_t kept = 0;
  for (Partition* p : open_batches_) {
    if (p->log_.batch_open() && !due(*p)) {
      open_batches_[kept++] = p;
      continue;
    }
    p->open_listed_ = false;
    if (p->log_.Seal()) {
      ++n;
      RecordSealed(*p);
      sealed(*p);
    }
  }
  open_batches_.resize(kept);
  counters_.batches_sealed += n;
  return n;
}

void Shard::RejectPendingAcks(Partition& p, Errc errc) {
  while (!p.acks_.empty()) {
    const Partition::PendingAck& pa = p.acks_.front();
    MessageIn m;
    m.partition = static_cast<uint16_t>(p.index_);
    m.producer_id = pa.producer_id;
    const uint64_t step = pa.count > 1 ? pa.sequence_step : 0;
    for (uint32_t i = 0; i < pa.count; ++i) {  // one answer per message, as they came
      m.sequence = pa.sequence + i * step;
      Reject(pa.target, p.queue_, m, errc);
    }
    p.acks_.pop_front();
  }
  p.pending_messages_ = 0;
}

Errc Shard::FailPartition(QueueId queue, uint32_t partition) {
  Partition* p = Get(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  p->failed_ = true;
  p->UpdatePlainStream();
  RejectPendingAcks(*p, Errc::kStorageFailed);
  Flush();
  return Errc::kOk;
}

Errc Shard::Restore(QueueId queue, const MessageIn& m, uint64_t offset, uint64_t timestamp_ns,
                    bool deleted) {
  Partition* p = Get(queue, m.partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  SLUICE_ASSERT(p->acks_.empty());  // nothing appended yet
  SeeTime(timestamp_ns);  // it was stored in the past: now is at least that late
  p->producers_.Restore(m.producer_id, m.sequence, offset);
  if (const uint64_t h = DedupHash(*p, m); h != kNoDedup) {
    // Expiry counts from the original append time, as it would have without the restart.
    p->dedup_.Insert(h, offset, timestamp_ns);
  }
  if (deleted) return Errc::kOk;
  if (p->work_ != nullptr && p->work_->Admit(m.group) != Errc::kOk) return Errc::kThrottled;
  const PartitionLog::Appended a = p->log_.Restore(m.record, offset, timestamp_ns, m.producer_id);
  if (a.errc != Errc::kOk) return a.errc;
  if (p->work_ != nullptr) p->work_->Add(a, m);
  return Errc::kOk;
}

Errc Shard::EndRestore(QueueId queue, uint32_t partition, uint64_t next_offset) {
  Partition* p = Get(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  p->log_.EndRestore(next_offset);
  if (p->work_ != nullptr) p->work_->OnDurable(p->log_.durable_end());
  return Errc::kOk;
}

Errc Shard::MarkDurable(QueueId queue, uint32_t partition, DurableOffset durable) {
  Partition* p = Get(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  p->log_.MarkDurable(durable);
  const uint64_t end = p->log_.durable_end().value;
  // Per run of appends (one producer, target and append time), not per message: the coalescer
  // takes the run at once, the latency histogram gets the run's count in one bucket, the counters
  // are added once per call. The same ranges, totals and buckets as message by message.
  uint64_t acked = 0;
  AckLatencyHistogram* const latency = config_.ack_latency_ns;
  const QueueId queue_id = p->queue_;
  const uint32_t index = p->index_;
  while (!p->acks_.empty() && p->acks_.front().offset < end) {
    Partition::PendingAck& pa = p->acks_.front();
    // A run may end past `end` (it spans a batch boundary): its durable head goes, the rest
    // stays. A duplicate's entry (count 1) goes whole once its original is durable.
    const uint64_t left = end - pa.offset;
    const uint32_t n = left < pa.count ? static_cast<uint32_t>(left) : pa.count;
    // n > 1 only for a run of two or more, whose step is known (0 or 1).
    SLUICE_ASSERT(n == 1 || pa.sequence_step <= 1);
    acks_out_.AddRun(pa.target, queue_id, index, pa.producer_id, pa.sequence, pa.sequence_step, n,
                     pa.offset, pa.errc, *sink_);
    acked += n;
    if (latency != nullptr && pa.errc == Errc::kOk) {
      latency->Record(now_ns_ >= pa.appended_ns ? now_ns_ - pa.appended_ns : 0, n);
    }
    if (n < pa.count) [[unlikely]] {
      pa.offset += n;
      pa.sequence += n * pa.sequence_step;
      pa.count -= n;
      if (pa.count == 1) pa.sequence_step = Partition::PendingAck::kStepUnknown;
      break;
    }
    p->acks_.pop_front();
  }
  p->pending_messages_ -= acked;
  counters_.acked += acked;
  p->counters_.acked += acked;
  if (p->work_ != nullptr) p->work_->OnDurable(p->log_.durable_end());
  if (p->stream_ != nullptr) p->stream_->Pump(kPushBudget);
  return Errc::kOk;
}

Errc Shard::ForEachUndurableBatch(QueueId queue, uint32_t partition,
                                  absl::FunctionRef<void(const SealedBatch&)> fn) const {
  const Partition* p = Get(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  p->log_.ForEachUndurableBatch(fn);
  return Errc::kOk;
}

// ---- streams -------------------------------------------------------------------------------------

FetchResult Shard::Fetch(QueueId queue, uint32_t partition, StartPosition start,
                         uint32_t max_messages, uint32_t max_bytes,
                         absl::FunctionRef<void(const StoredMessage&)> visit) const {
  const Partition* p = Get(queue, partition);
  if (p == nullptr) return {Errc::kUnknownPartition};
  if (p->stream_ == nullptr) return {Errc::kWrongQueueType};
  PartitionCounters& pc = p->counters_;
  return p->stream_->Fetch(start, max_messages, max_bytes, [&](const StoredMessage& m) {
    ++pc.messages_out;
    pc.bytes_out += m.record.size();
    visit(m);
  });
}

Errc Shard::Subscribe(SubscriptionId id, const ReplyTarget& target, QueueId queue,
                      uint32_t partition, StartPosition start, uint32_t credits) {
  Partition* p = Get(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  if (p->stream_ == nullptr) return Errc::kWrongQueueType;
  if (subscriptions_.contains(id.value)) return Errc::kInvalidArgument;
  uint32_t index = 0;
  const Errc e = p->stream_->Subscribe(id, target, start, credits, &index);
  if (e != Errc::kOk) return e;
  subscriptions_.emplace(id.value, SubRef{p, index});
  p->stream_->Pump(kPushBudget);
  return Errc::kOk;
}

Errc Shard::Credit(SubscriptionId id, uint32_t credits) {
  auto it = subscriptions_.find(id.value);
  if (it == subscriptions_.end()) return Errc::kUnknownSubscription;
  Stream& s = *it->second.partition->stream_;
  s.Credit(it->second.index, credits);
  s.Pump(kPushBudget);
  return Errc::kOk;
}

Errc Shard::Unsubscribe(SubscriptionId id) {
  auto it = subscriptions_.find(id.value);
  if (it == subscriptions_.end()) return Errc::kUnknownSubscription;
  it->second.partition->stream_->Unsubscribe(it->second.index);
  subscriptions_.erase(it);
  return Errc::kOk;
}

Errc Shard::CommitOffset(QueueId queue, uint32_t partition, std::string_view group,
                         uint64_t offset) {
  Partition* p = Get(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  if (p->stream_ == nullptr) return Errc::kWrongQueueType;
  if (offset > p->log_.written_end().value) return Errc::kOffsetOutOfRange;
  return p->stream_->Commit(group, offset);
}

std::optional<uint64_t> Shard::CommittedOffset(QueueId queue, uint32_t partition,
                                               std::string_view group) const {
  const Partition* p = Get(queue, partition);
  if (p == nullptr || p->stream_ == nullptr) return std::nullopt;
  return p->stream_->Committed(group);
}

// ---- consumer groups -----------------------------------------------------------------------------

Errc Shard::Coordinator(QueueId queue, GroupCoordinator** out) const {
  const Partition* p = Get(queue, 0);
  if (p == nullptr) return Errc::kUnknownPartition;
  if (p->groups_ == nullptr) return Errc::kWrongQueueType;
  *out = p->groups_.get();
  return Errc::kOk;
}

Errc Shard::JoinGroup(QueueId queue, std::string_view group, uint64_t member, uint32_t session_ms,
                      uint64_t now_ns, GroupAssignment* out) {
  SeeTime(now_ns);
  GroupCoordinator* c = nullptr;
  const Errc e = Coordinator(queue, &c);
  return e != Errc::kOk ? e : c->Join(group, member, session_ms, now_ns_, out);
}

Errc Shard::LeaveGroup(QueueId queue, std::string_view group, uint64_t member,
                       GroupAssignment* out) {
  GroupCoordinator* c = nullptr;
  const Errc e = Coordinator(queue, &c);
  return e != Errc::kOk ? e : c->Leave(group, member, out);
}

Errc Shard::DescribeGroup(QueueId queue, std::string_view group, GroupAssignment* out) const {
  GroupCoordinator* c = nullptr;
  const Errc e = Coordinator(queue, &c);
  if (e == Errc::kOk) *out = c->Describe(group);
  return e;
}

Errc Shard::CommitGroup(QueueId queue, std::string_view group, uint64_t member,
                        uint32_t generation, uint32_t partition, uint64_t offset) {
  GroupCoordinator* c = nullptr;
  const Errc e = Coordinator(queue, &c);
  return e != Errc::kOk ? e : c->Commit(group, member, generation, partition, offset);
}

std::optional<uint64_t> Shard::GroupCommitted(QueueId queue, std::string_view group,
                                              uint32_t partition) const {
  GroupCoordinator* c = nullptr;
  if (Coordinator(queue, &c) != Errc::kOk) return std::nullopt;
  return c->Committed(group, partition);
}

// ---- work queues ---------------------------------------------------------------------------------

Errc Shard::WorkPartition(QueueId queue, uint32_t partition, WorkQueue** out) {
  Partition* p = Get(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  if (p->work_ == nullptr) return Errc::kWrongQueueType;
  *out = p->work_.get();
  return Errc::kOk;
}

Errc Shard::Receive(const ReplyTarget& target, QueueId queue, uint32_t partition,
                    const ReceiveArgs& args, uint64_t now_ns) {
  SeeTime(now_ns);
  WorkQueue* w = nullptr;
  const Errc e = WorkPartition(queue, partition, &w);
  if (e != Errc::kOk) {
    sink_->OnReceiveDone({target, queue, partition, 0, e});
    return e;
  }
  w->Receive(target, args, now_ns_);
  return Errc::kOk;
}

Errc Shard::Delete(QueueId queue, uint32_t partition, Receipt receipt, uint64_t now_ns) {
  SeeTime(now_ns);
  WorkQueue* w = nullptr;
  const Errc e = WorkPartition(queue, partition, &w);
  return e != Errc::kOk ? e : w->Delete(receipt);
}

Errc Shard::Nack(QueueId queue, uint32_t partition, Receipt receipt, uint32_t delay_ms,
                 uint64_t now_ns) {
  SeeTime(now_ns);
  WorkQueue* w = nullptr;
  const Errc e = WorkPartition(queue, partition, &w);
  return e != Errc::kOk ? e : w->Nack(receipt, delay_ms, now_ns_);
}

Errc Shard::Extend(QueueId queue, uint32_t partition, Receipt receipt, uint32_t visibility_ms,
                   uint64_t now_ns) {
  SeeTime(now_ns);
  WorkQueue* w = nullptr;
  const Errc e = WorkPartition(queue, partition, &w);
  return e != Errc::kOk ? e : w->Extend(receipt, visibility_ms, now_ns_);
}

// ---- time ----------------------------------------------------------------------------------------

uint64_t Shard::Tick(uint64_t now_ns) {
  SeeTime(now_ns);
  uint64_t work = 0;
  if (now_ns_ >= next_tick_ns_) {
    const uint64_t tick = now_ns_ / config_.timer_tick_ns;
    work = wheel_.Advance(tick, [](TimerNode* n) { n->client->OnTimer(n); });
    next_tick_ns_ = (tick + 1) * config_.timer_tick_ns;
  }
  for (Partition* p : coordinators_) {
    if (now_ns_ >= p->groups_->next_expiry_ns()) work += p->groups_->Expire(now_ns_);
  }
  // Both asked inline: a stream without retention bounds or subscribers costs two compares.
  for (Partition* p : streams_) {
    if (p->log_.RetentionMayApply()) work += p->log_.EnforceRetention(now_ns_);
    if (p->stream_->Backlogged()) work += p->stream_->Pump(kPushBudget);
  }
  return work;
}

}  // namespace sluice::shard
