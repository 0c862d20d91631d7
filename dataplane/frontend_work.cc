// Frontend (frontend_impl.h): work queues. RECEIVE (leases), DELETE / NACK / EXTEND by receipt
// handle, their replies, and dead letters moved to a queue's dead-letter queue.
#include "dataplane/frontend_impl.h"

namespace sluice::dataplane {

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

}  // namespace sluice::dataplane
