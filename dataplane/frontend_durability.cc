// Frontend (frontend_impl.h): durability. Sealing batches and handing them to storage, storage
// completions, sync replication (acks and replies held until the standby has the data), and
// removing log segments nothing needs any more.
#include "dataplane/frontend_impl.h"

namespace sluice::dataplane {

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
    DegradedAlarm(q);
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

}  // namespace sluice::dataplane
