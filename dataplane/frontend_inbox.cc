// Frontend (frontend_impl.h): request/reply. Inboxes (temporary reply queues) and REPLY frames.
#include "dataplane/frontend_impl.h"

namespace sluice::dataplane {

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

}  // namespace sluice::dataplane
