// Frontend (frontend_impl.h): streams. FETCH, SUBSCRIBE with credits, NAK and UNSUBSCRIBE; records
// still in memory are sent from the shard, older ones through a cold read of the log.
#include "dataplane/frontend_impl.h"

namespace sluice::dataplane {

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
  if (ShardOf(c.queue, c.partition) == nullptr) return;  // removed since (replica reads too:
                                                         // the partition's owner serves them)
  if (errc != Errc::kOk) {
    ErrorTo(c.target, p::FrameType::kFetch, errc);
    return;
  }
  // Segments may still hold records below a purge mark (a time search can land there): they
  // are not the log's any more. A standby's replica reads: its replicated purge mark
  // (ReplicaStart, docs/replication.md §6).
  const uint64_t start = c.replica               ? replicator_->ReplicaStart(c.queue, c.partition)
                         : persistence_ == nullptr ? 0
                                                   : persistence_->LogStart(c.queue, c.partition);
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
    Discard(out);
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
    // A standby's engine holds none of the replicated records: its watermark is the replica's.
    p::le::Store<uint64_t>(prefix + 16, (reply_flags_ & p::kFlagReplica) != 0
                                            ? replicator_->ReplicaEnd(queue, partition)
                                            : s->Find(shard::QueueId{queue}, partition)
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

}  // namespace sluice::dataplane
