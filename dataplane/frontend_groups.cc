// Frontend (frontend_impl.h): consumer groups. JOIN_GROUP (members, assignments, heartbeats) and
// COMMIT of group offsets, answered by the group's coordinator partition.
#include "dataplane/frontend_impl.h"

namespace sluice::dataplane {

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

}  // namespace sluice::dataplane
