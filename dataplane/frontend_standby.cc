// Frontend (frontend_impl.h): a standby. Requests a standby refuses (NOT_PRIMARY) and the ones it
// serves from its replicated log: FETCH and SUBSCRIBE, marked REPLICA.
#include "dataplane/frontend_impl.h"

namespace sluice::dataplane {

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

// A replica read is served by the partition's owner, as on a primary (the frame handler hands
// the frame to it): with channels, the owner's channel is the one that writes the partition
// (another lcore's channel holds none of it); with a dedicated replication lcore, the owner
// reads through its rings like any shard lcore. The receiver answers what no owner takes:
// an unknown queue or partition (NOT_PRIMARY, the caller) and a full hand-off ring (THROTTLED).
bool Frontend::Impl::OnStandbyFetch(const p::FrameView& f, const Endpoint& from,
                                    const RouteContext& route) {
  auto r = p::DecodeFetch(f);
  const QueueInfo* q = table_->Find(r->queue_id);
  if (q == nullptr || !q->is_stream() || r->partition >= q->partition_shard.size()) return false;
  if (r->start_kind != p::StartKind::kOffset && r->start_kind != p::StartKind::kEarliest &&
      r->start_kind != p::StartKind::kTimestamp) {
    return false;
  }
  Errc handed;
  if (!Mine(*q, r->partition, route, &handed)) return true;  // its owner answers
  if (handed != Errc::kOk) {
    Error(f, from, handed, "partition not available");
    return true;
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

// The standby's engine holds no replicated records (they go from the link straight to its log),
// so its SUBSCRIBE is served here: per subscription, replica reads from next_offset while the
// standby's durable end is ahead and the consumer's credit allows, each pushed as DELIVER frames
// marked REPLICA. Credits, NAK (rewind) and UNSUBSCRIBE as on a primary; a consumer silent for
// three heartbeats is dropped. The partition's owner holds them, as on a primary: with
// channels, the lcore whose channel writes the partition; with a dedicated replication lcore,
// the shard lcore, whose Replicator reads through its rings to that lcore (docs/replication.md
// §1, §6). CREDIT, NAK and UNSUBSCRIBE reach every worker; the one holding the subscription acts.
// Start positions: an offset, EARLIEST (the log's start or the replicated purge mark), LATEST,
// COMMITTED (the group's offset in the replicated ack log) and a timestamp (resolved by the
// subscription's first read, which goes by timestamp: its RESULT follows that read).

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
      const uint32_t parts = static_cast<uint32_t>(q->partition_shard.size());
      const uint32_t first = r->partition == p::kAnyPartition ? 0 : r->partition;
      const uint32_t last = r->partition == p::kAnyPartition ? parts : r->partition + 1;
      if (first >= parts) return false;
      // Each owner answers for its partitions, in a RESULT of its own (as on a primary).
      OpenFrame* out = nullptr;
      auto add = [&](const p::ResultItem& item) {
        if (out == nullptr) {
          out = Open(p::FrameType::kResult, target, f.header.request_id, 0, 0);
          if (out == nullptr) return;  // no reply buffer (counted): the client asks again
          out->writer.BeginResult(IdsOf(target, p::kFlagReplica), p::FrameType::kSubscribe);
        }
        out->writer.AddResult(item);
      };
      for (uint32_t part = first; part < last && part < parts; ++part) {
        Errc handed;
        if (!Mine(*q, part, route, &handed)) continue;
        if (handed != Errc::kOk) {  // the owner's hand-off ring was full
          ++counters_.rejected;
          add(p::ResultItem{handed, part, 0});
          continue;
        }
        const uint64_t end = replicator_->ReplicaEnd(q->id, part);
        const uint64_t oldest = replicator_->ReplicaStart(q->id, part);
        uint64_t start = oldest;
        Errc errc = Errc::kOk;
        // From a timestamp: the first read resolves it (its RESULT follows), unless the log
        // holds nothing to search (then the start is its end, as a time past every record).
        const bool resolve = r->start_kind == p::StartKind::kTimestamp && oldest < end;
        switch (r->start_kind) {
          case p::StartKind::kOffset: start = r->start_value; break;
          case p::StartKind::kLatest: start = end; break;
          case p::StartKind::kTimestamp: start = end; break;
          case p::StartKind::kCommitted: {
            // As on a primary (OnSubscribe): the group's offsets are known where partition 0 is
            // (its replicated ack log holds every commit of the queue), so only partition 0's
            // owner answers COMMITTED; a group without a commit starts at EARLIEST.
            uint64_t committed = 0;
            if (!Owns(*q, 0)) {
              errc = Errc::kInvalidArgument;
            } else if (replicator_->ReplicaCommitted(q->id, part, r->group, &committed)) {
              start = committed;
            }
            break;
          }
          default: break;  // EARLIEST
        }
        ReplicaSub* s = FindReplicaSub(f.header.client_id, r->subscription_id, part);
        if (s == nullptr) {  // a re-subscribe replaces, as on a primary
          for (ReplicaSub& free : replica_subs_) {
            if (!free.used && !free.reading) {
              s = &free;
              break;
            }
          }
        }
        if (errc == Errc::kOk && s == nullptr) {
          errc = Errc::kThrottled;  // every slot taken
        } else if (errc == Errc::kOk && (start > end || start < oldest)) {
          errc = Errc::kOffsetOutOfRange;  // below: retention or a purge removed it
        } else if (errc == Errc::kOk) {
          const bool reading = s->reading;
          // A read still out for the replaced subscription is dropped when it lands (read_from).
          *s = ReplicaSub{true, f.header.client_id, r->subscription_id, from.w0, q->id, part,
                          start, start + r->initial_credits, now_ns_, now_ns_, reading,
                          reading ? UINT64_MAX : 0};
          if (resolve) {
            s->next_offset = 0;
            s->credit_end = 0;
            s->resolving = true;
            s->resolve_ts = r->start_value;
            s->request_id = f.header.request_id;
            s->initial_credits = r->initial_credits;
            continue;  // answered by SendReplicaSubResult
          }
        }
        if (errc != Errc::kOk) {
          ++counters_.rejected;
          start = 0;
        }
        add(p::ResultItem{errc, part, start});
      }
      if (out != nullptr) Close(out);  // before the first DELIVER
      return true;
    }
    case p::FrameType::kCredit: {
      auto c = p::DecodeCredit(f);
      ReplicaSub* s = FindReplicaSub(f.header.client_id, c->subscription_id, c->partition);
      // (While a start is being resolved, credit_end holds only what CREDITs said.)
      if (s == nullptr) return false;
      s->last_credit_ns = now_ns_;
      s->credit_end = std::max(s->credit_end, c->next_offset + c->credits);
      return true;
    }
    case p::FrameType::kNak: {  // a gap the consumer saw: push again from there
      auto n = p::DecodeNak(f);
      ReplicaSub* s = FindReplicaSub(f.header.client_id, n->subscription_id, n->partition);
      if (s == nullptr) return false;
      if (!s->resolving) s->next_offset = std::min(s->next_offset, n->from_offset);
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
    const shard::ReplyTarget t{s.endpoint, s.client_id, 0};
    if (s.resolving) {  // its first read, by timestamp
      size_t slot = 0;
      while (slot < cold_.size() && cold_[slot].used) ++slot;
      if (slot == cold_.size()) break;  // reads are all taken: next pass
      const uint32_t n = std::clamp<uint32_t>(s.initial_credits, 1, 256);
      const Errc e = replicator_->ReadReplica(s.queue, s.partition, s.resolve_ts, n, slot,
                                              /*by_timestamp=*/true);
      if (e == Errc::kThrottled) continue;  // next pass
      if (e != Errc::kOk) {                 // the partition went away here
        SendReplicaSubResult(s, e, 0);
        s.used = false;
        continue;
      }
      cold_[slot] = ColdFetch{true, true, static_cast<int>(i), t, s.queue, s.partition, n,
                              p::kDefaultFrameBytes};
      s.reading = true;
      s.read_from = 0;
      ++work;
      continue;
    }
    const uint64_t end = replicator_->ReplicaEnd(s.queue, s.partition);
    // Retention removed what this subscriber had not read: it goes on from the oldest kept (the
    // offsets jump, as on a primary).
    s.next_offset = std::max(s.next_offset, replicator_->ReplicaStart(s.queue, s.partition));
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
  if (s.resolving) {
    if (s.read_from == UINT64_MAX || errc == Errc::kThrottled) return;  // stale; or next pass
    // The first record at or after the time, or where the log ends when none is; never below
    // the purge mark (a time search can land in segments below it).
    const uint64_t oldest = replicator_->ReplicaStart(s.queue, s.partition);
    uint64_t start = std::max(records.empty() ? next_offset : records.front().offset, oldest);
    if (errc != Errc::kOk) start = 0;
    SendReplicaSubResult(s, errc, start);
    if (errc != Errc::kOk) {
      s.used = false;
      return;
    }
    s.resolving = false;
    s.next_offset = start;
    s.credit_end = std::max(s.credit_end, start + s.initial_credits);
    s.last_push_ns = now_ns_;
    size_t below = 0;
    while (below < records.size() && records[below].offset < start) ++below;
    records = records.subspan(below);
    if (records.empty() || s.credit_end <= start) return;
    const uint32_t n = static_cast<uint32_t>(
        std::min<uint64_t>(records.size(), s.credit_end - start));
    const uint64_t pushed_to = SendStored(p::FrameType::kDeliver, c, s.client_sub, next_offset,
                                          records, n, p::kDefaultFrameBytes, p::kFlagReplica);
    s.next_offset = std::max(s.next_offset, pushed_to);
    return;
  }
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

void Frontend::Impl::SendReplicaSubResult(const ReplicaSub& s, Errc errc, uint64_t start) {
  if (errc != Errc::kOk) ++counters_.rejected;
  const shard::ReplyTarget target{s.endpoint, s.client_id, s.request_id};
  OpenFrame* out = Open(p::FrameType::kResult, target, s.request_id, 0, 0);
  if (out == nullptr) return;  // no reply buffer (counted): the client subscribes again
  out->writer.BeginResult(IdsOf(target, p::kFlagReplica), p::FrameType::kSubscribe);
  out->writer.AddResult(p::ResultItem{errc, s.partition, start});
  Close(out);  // before the first DELIVER
}

}  // namespace sluice::dataplane
