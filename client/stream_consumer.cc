#include "client/stream_consumer.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "client/errors.h"
#include "client/random_id.h"
#include "client/group_consumer.h"
#include "protocol/assert.h"

namespace sluice::client {
namespace p = protocol;

namespace {

void Forget(std::vector<uint64_t>& ids, uint64_t id) {
  ids.erase(std::remove(ids.begin(), ids.end(), id), ids.end());
}

}  // namespace

// ---- plain fetch --------------------------------------------------------------------------------

absl::StatusOr<FetchResult> Fetch(Connection& conn, const QueueInfo& queue, uint16_t partition,
                                  StartPosition start, uint16_t max_messages,
                                  absl::Duration timeout) {
  const std::string ctx = Context("fetch from", queue.name, partition);
  if (partition >= queue.partitions) {
    return ErrcStatus(Errc::kUnknownPartition, ctx,
                      absl::StrCat("the queue has ", queue.partitions, " partitions"));
  }
  p::FetchRequest r;
  r.queue_id = queue.queue_id;
  r.partition = partition;
  r.start_kind = start.kind;
  r.start_value = start.kind == p::StartKind::kOffset || start.kind == p::StartKind::kTimestamp
                      ? start.value
                      : 0;
  r.max_messages = std::clamp<uint16_t>(max_messages, 1, p::kMaxReceiveMessages);
  r.max_frame_bytes = static_cast<uint16_t>(conn.options().max_frame_bytes);
  const uint64_t rid = conn.NextRequestId();
  auto n = p::EncodeFetch(conn.scratch(), conn.Ids(rid), r);
  if (!n) {
    return absl::InvalidArgumentError(absl::StrCat(ctx, ": ", Sv(p::EncodeErrorName(n.error()))));
  }
  FetchResult result;
  DeliveryAssembler assembler;
  absl::Status status;
  bool done = false;
  conn.Call(std::span<const std::byte>(conn.scratch().data(), *n), {},
            [&](const p::FrameView* f, const absl::Status& s) {
              if (f == nullptr) {
                status = WithContext(s, ctx);
              } else if (f->header.type == p::FrameType::kMessages) {
                auto m = p::DecodeMessages(*f);
                if (!m) {
                  status = absl::InternalError(absl::StrCat(ctx, ": malformed MESSAGES reply"));
                } else {
                  for (const p::DeliveredView& d : m->messages) {
                    if (!d.message.is_fragment()) {
                      result.messages.emplace_back(ToReceived(d.meta, d.message));
                    } else if (std::optional<OwnedMessage> whole = assembler.Add(d)) {
                      result.messages.push_back(std::move(*whole));
                    }
                  }
                  result.next_offset = m->prefix.next_offset;
                  result.high_watermark = m->prefix.high_watermark;
                  if ((f->header.flags & p::kFlagMore) != 0) return false;
                }
              } else if (f->header.type == p::FrameType::kError) {
                status = StatusFromErrorFrame(*f, ctx);
              } else {
                status = absl::InternalError(absl::StrCat(
                    ctx, ": unexpected ", Sv(p::FrameTypeName(f->header.type)), " reply"));
              }
              done = true;
              return true;
            });
  (void)conn.PollUntil([&] { return done; }, timeout);
  conn.Cancel(rid);
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat(ctx, ": no reply within ",
                                                    absl::FormatDuration(timeout)));
  }
  if (!status.ok()) return status;
  return result;
}

// ---- subscription -------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<StreamConsumer>> StreamConsumer::Create(
    Connection& conn, std::string_view queue, StreamConsumerOptions options,
    MessageHandler handler) {
  absl::StatusOr<QueueInfo> info = conn.Lookup(queue, options.subscribe_timeout);
  if (!info.ok()) return info.status();
  if (info->type != p::QueueType::kStream) {
    return ErrcStatus(Errc::kWrongQueueType, Context("subscribe to", queue),
                      "it is a work queue: use receive");
  }
  if (options.partition && *options.partition >= info->partitions) {
    return ErrcStatus(Errc::kUnknownPartition, Context("subscribe to", queue, *options.partition),
                      absl::StrCat("the queue has ", info->partitions, " partitions"));
  }
  std::map<uint16_t, uint64_t> committed;
  if (options.start.kind == p::StartKind::kCommitted) {
    // The group's offsets live with its coordinator, which may not serve every partition:
    // read them once and subscribe at explicit offsets.
    auto d = DescribeGroup(conn, info->name, options.group, options.subscribe_timeout);
    if (!d.ok()) return d.status();
    committed = std::move(d->committed);
  }
  std::unique_ptr<StreamConsumer> c(
      new StreamConsumer(conn, *std::move(info), std::move(options), std::move(handler)));
  c->committed_ = std::move(committed);
  if (absl::Status s = c->Subscribe(); !s.ok()) return s;
  return c;
}

StreamConsumer::StreamConsumer(Connection& conn, QueueInfo queue, StreamConsumerOptions options,
                               MessageHandler handler)
    : conn_(conn),
      queue_(std::move(queue)),
      options_(std::move(options)),
      handler_(std::move(handler)),
      subscription_id_(RandomId()) {
  options_.window = std::max<uint32_t>(options_.window, 1);
  parts_.resize(queue_.partitions);
  for (uint16_t i = 0; i < queue_.partitions; ++i) {
    Part& part = parts_[i];
    part.partition = i;
    part.subscribed = !options_.partition || *options_.partition == i;
    if (part.subscribed) {
      part.control_request_id = conn_.NextRequestId();
      conn_.Route(part.control_request_id, this);
    }
  }
  conn_.RouteDeliveries(subscription_id_, this);
  conn_.AddEndpoint(this);
  server_switches_ = conn_.stats().redirects + conn_.stats().failovers;
}

StreamConsumer::~StreamConsumer() {
  for (uint64_t rid : outstanding_) conn_.Cancel(rid);
  for (const Part& part : parts_) {
    if (part.control_request_id != 0) conn_.Unroute(part.control_request_id);
  }
  conn_.UnrouteDeliveries(subscription_id_);
  conn_.RemoveEndpoint(this);
  // Tell the server to stop pushing (best effort: it also stops when credit runs out).
  std::byte buf[p::kHeaderBytes + p::kUnsubscribeBytes];
  auto n = p::EncodeUnsubscribe(buf, conn_.Ids(conn_.NextRequestId()),
                                p::UnsubscribeRequest{subscription_id_, p::kAnyPartition});
  if (n) {
    conn_.Send(std::span<const std::byte>(buf, *n));
    conn_.Flush();
  }
}

absl::Status StreamConsumer::Subscribe() {
  int pending = 0;
  absl::Status first_error;
  for (Part& part : parts_) {
    if (!part.subscribed) continue;
    p::SubscribeRequest r;
    r.subscription_id = subscription_id_;
    r.queue_id = queue_.queue_id;
    r.partition = part.partition;
    StartPosition start = options_.start;
    if (start.kind == p::StartKind::kCommitted) {
      auto it = committed_.find(part.partition);
      start = it != committed_.end() ? StartPosition::Offset(it->second) : StartPosition::Earliest();
    }
    r.start_kind = start.kind;
    r.start_value =
        start.kind == p::StartKind::kOffset || start.kind == p::StartKind::kTimestamp ? start.value
                                                                                       : 0;
    r.initial_credits = options_.window;
    r.group = options_.group;
    const uint64_t rid = conn_.NextRequestId();
    auto n = p::EncodeSubscribe(conn_.scratch(), conn_.Ids(rid), r);
    if (!n) {
      return absl::InvalidArgumentError(
          absl::StrCat(Context("subscribe to", queue_.name, part.partition), ": ",
                       Sv(p::EncodeErrorName(n.error()))));
    }
    ++pending;
    outstanding_.push_back(rid);
    const std::string ctx = Context("subscribe to", queue_.name, part.partition);
    const uint16_t index = part.partition;
    conn_.Call(std::span<const std::byte>(conn_.scratch().data(), *n), {},
               [this, rid, ctx, index, &pending, &first_error](const p::FrameView* f,
                                                               const absl::Status& s) {
                 absl::Status status;
                 if (f == nullptr) {
                   status = WithContext(s, ctx);
                 } else if (f->header.type == p::FrameType::kResult) {
                   auto res = p::DecodeResultFrame(*f);
                   bool found = false;
                   if (res) {
                     for (const p::ResultItem item : res->items) {
                       if (item.index != index) continue;
                       found = true;
                       if (item.errc != Errc::kOk) {
                         status = ErrcStatus(item.errc, ctx);
                       } else {
                         Activate(parts_[index], item.value, NowNs());
                       }
                     }
                   }
                   if (!found) status = absl::InternalError(absl::StrCat(ctx, ": RESULT without this partition"));
                 } else if (f->header.type == p::FrameType::kError) {
                   status = StatusFromErrorFrame(*f, ctx);
                 } else {
                   status = absl::InternalError(absl::StrCat(
                       ctx, ": unexpected ", Sv(p::FrameTypeName(f->header.type)), " reply"));
                 }
                 if (!status.ok() && first_error.ok()) first_error = status;
                 --pending;
                 Forget(outstanding_, rid);
                 return true;
               });
  }
  absl::Status waited = conn_.PollUntil([&] { return pending == 0 || !first_error.ok(); },
                                        options_.subscribe_timeout);
  // The handlers reference locals: cancel whatever is still pending.
  for (uint64_t rid : outstanding_) conn_.Cancel(rid);
  outstanding_.clear();
  if (!first_error.ok()) return first_error;
  if (pending != 0) {
    return absl::DeadlineExceededError(absl::StrCat(
        Context("subscribe to", queue_.name), ": no RESULT within ",
        absl::FormatDuration(options_.subscribe_timeout), " (", waited.message(), ")"));
  }
  return absl::OkStatus();
}

void StreamConsumer::Activate(Part& part, uint64_t start, MonoNs now) {
  if (part.active) return;  // a retransmitted SUBSCRIBE's second RESULT
  part.active = true;
  part.next = part.consumed = part.last_grant_base = start;
  part.granted_end = start + options_.window;
  part.high_watermark = std::max(part.high_watermark, start);
  part.last_activity = now;
  part.last_push = now;
  part.last_credit = now;  // SUBSCRIBE carried the first grant
  // DELIVERs that overtook the RESULT.
  while (!part.ahead.empty() && part.ahead.begin()->first < start) part.ahead.erase(part.ahead.begin());
  DrainAhead(part);
}

// ---- delivery -----------------------------------------------------------------------------------

void StreamConsumer::Hand(Part& part, const ReceivedMessage& m, OwnedMessage* owned) {
  ++part.next;
  ++stats_.delivered;
  if (handler_) {
    handing_ = true;
    handler_(m);
    handing_ = false;
    part.consumed = part.next;
    MaybeGrant(part);
  } else if (owned != nullptr) {
    ready_.push_back(std::move(*owned));
  } else {
    ready_.emplace_back(m);
  }
}

void StreamConsumer::DrainAhead(Part& part) {
  while (!part.ahead.empty()) {
    auto it = part.ahead.begin();
    if (it->first < part.next) {
      ++stats_.duplicates;
      part.ahead.erase(it);
      continue;
    }
    if (it->first != part.next) break;
    OwnedMessage m = std::move(it->second);
    part.ahead.erase(it);
    Hand(part, *m, &m);
  }
}

void StreamConsumer::Ingest(Part& part, const ReceivedMessage& m, MonoNs now) {
  part.last_activity = now;
  if (!part.active) {  // before the RESULT: keep it (bounded)
    if (part.ahead.size() < 2 * options_.window) part.ahead.try_emplace(m.offset, m);
    return;
  }
  if (m.offset < part.next) {
    ++stats_.duplicates;
    return;
  }
  if (m.offset > part.next) {
    if (part.ahead.count(m.offset) != 0) {
      ++stats_.duplicates;
    } else if (part.ahead.size() < 2 * options_.window) {
      part.ahead.try_emplace(m.offset, m);
      ++stats_.out_of_order;
    }
    if (part.gap_since == kNever) part.gap_since = now;
    return;
  }
  Hand(part, m, nullptr);
  DrainAhead(part);
  // Progress: the gap (if any) starts over.
  part.naks_without_progress = 0;
  part.gap_since = part.ahead.empty() ? kNever : now;
  part.next_recovery = 0;
}

void StreamConsumer::IngestDelivered(Part& part, const p::DeliveredView& d, MonoNs now) {
  if (!d.message.is_fragment()) {
    Ingest(part, ToReceived(d.meta, d.message), now);
    return;
  }
  if (part.active && d.meta.offset < part.next) {  // a fragment of a message handed out already
    ++stats_.duplicates;
    return;
  }
  if (std::optional<OwnedMessage> whole = assembler_.Add(d)) Ingest(part, **whole, now);
}

void StreamConsumer::OnFrame(const p::FrameView& f) {
  const MonoNs now = NowNs();
  if (f.header.type == p::FrameType::kDeliver) {
    auto d = p::DecodeDeliver(f);
    if (!d || d->prefix.queue_id != queue_.queue_id || d->prefix.partition >= parts_.size()) return;
    Part& part = parts_[d->prefix.partition];
    if (!part.subscribed) return;
    part.last_activity = now;
    part.last_push = now;
    part.high_watermark = std::max(part.high_watermark, d->prefix.high_watermark);
    for (const p::DeliveredView& v : d->messages) {
      if (v.meta.partition != part.partition) continue;
      IngestDelivered(part, v, now);
    }
    return;
  }
  if (f.header.type == p::FrameType::kError) {  // answers a CREDIT or NAK
    Part* part = PartByControl(f.header.request_id);
    auto e = p::DecodeErrorFrame(f);
    if (part == nullptr || !e) return;
    conn_.OnServerError(*e);
    if (e->errc == Errc::kOffsetOutOfRange) OnOutOfRange(*part);
  }
}

StreamConsumer::Part* StreamConsumer::PartByControl(uint64_t request_id) {
  for (Part& part : parts_) {
    if (part.control_request_id == request_id) return &part;
  }
  return nullptr;
}

// The server no longer has offsets from `next` on (retention): continue at what it has.
void StreamConsumer::OnOutOfRange(Part& part) {
  if (!part.ahead.empty()) {
    const uint64_t to = part.ahead.begin()->first;
    stats_.skipped += to - part.next;
    part.next = to;
    part.consumed = std::max(part.consumed, to);
    DrainAhead(part);
  } else {
    part.resync = true;
    SendFetch(part, 0, options_.window, /*earliest=*/true);
  }
}

// ---- credit and recovery ------------------------------------------------------------------------

void StreamConsumer::MaybeGrant(Part& part) {
  if (part.consumed - part.last_grant_base >= std::max<uint32_t>(1, options_.window / 2)) {
    SendCredit(part);
  }
}

void StreamConsumer::SendCredit(Part& part) {
  const uint64_t end = part.consumed + options_.window;
  p::CreditGrant g;
  g.subscription_id = subscription_id_;
  g.partition = part.partition;
  // next_offset = what the application consumed (for a group, the committed offset), so the
  // grant's end is consumed + window whatever is still queued in this client.
  g.next_offset = part.consumed;
  g.credits = options_.window;
  std::byte buf[p::kHeaderBytes + p::kCreditBytes];
  auto n = p::EncodeCredit(buf, conn_.Ids(part.control_request_id), g);
  SLUICE_ASSERT(n.has_value());
  conn_.Send(std::span<const std::byte>(buf, *n));
  part.granted_end = end;
  part.last_grant_base = part.consumed;
  part.last_credit = NowNs();
  ++stats_.credits_sent;
}

void StreamConsumer::SendFetch(Part& part, uint64_t from, uint32_t max, bool earliest) {
  if (part.fetch_outstanding) return;
  p::FetchRequest r;
  r.queue_id = queue_.queue_id;
  r.partition = part.partition;
  r.start_kind = earliest ? p::StartKind::kEarliest : p::StartKind::kOffset;
  r.start_value = earliest ? 0 : from;
  r.max_messages = static_cast<uint16_t>(std::clamp<uint32_t>(max, 1, p::kMaxReceiveMessages));
  r.max_frame_bytes = static_cast<uint16_t>(conn_.options().max_frame_bytes);
  const uint64_t rid = conn_.NextRequestId();
  std::byte buf[p::kHeaderBytes + p::kFetchBytes];
  auto n = p::EncodeFetch(buf, conn_.Ids(rid), r);
  SLUICE_ASSERT(n.has_value());
  part.fetch_outstanding = true;
  ++stats_.fetches_sent;
  outstanding_.push_back(rid);
  const uint16_t index = part.partition;
  conn_.Call(std::span<const std::byte>(buf, *n), {},
             [this, rid, index](const p::FrameView* f, const absl::Status&) {
               Part& part = parts_[index];
               const MonoNs now = NowNs();
               bool last = true;
               if (f != nullptr && f->header.type == p::FrameType::kMessages) {
                 auto m = p::DecodeMessages(*f);
                 if (m) {
                   part.high_watermark = std::max(part.high_watermark, m->prefix.high_watermark);
                   last = (f->header.flags & p::kFlagMore) == 0;
                   for (const p::DeliveredView& d : m->messages) {
                     if (part.resync) {  // restart at the earliest retained offset
                       part.resync = false;
                       if (d.meta.offset > part.next) {
                         stats_.skipped += d.meta.offset - part.next;
                         part.next = d.meta.offset;
                         part.consumed = std::max(part.consumed, part.next);
                       }
                     }
                     IngestDelivered(part, d, now);
                   }
                 }
               } else if (f != nullptr && f->header.type == p::FrameType::kError) {
                 auto e = p::DecodeErrorFrame(*f);
                 if (e && e->errc == Errc::kOffsetOutOfRange && !part.resync) {
                   part.fetch_outstanding = false;
                   Forget(outstanding_, rid);
                   OnOutOfRange(part);
                   return true;
                 }
               }
               // Timeouts and other errors: the gap timer tries again later.
               if (last) {
                 part.fetch_outstanding = false;
                 Forget(outstanding_, rid);
               }
               return last;
             });
}

void StreamConsumer::Recover(Part& part, MonoNs now) {
  const uint64_t gap_end = part.ahead.empty()
                               ? std::min(part.high_watermark, part.granted_end)
                               : part.ahead.begin()->first;
  if (gap_end <= part.next) return;
  const uint64_t count = gap_end - part.next;
  if (part.naks_without_progress == 0) ++stats_.gaps;
  if (part.naks_without_progress < options_.naks_before_fetch) {
    p::NakRequest nak;
    nak.subscription_id = subscription_id_;
    nak.partition = part.partition;
    nak.from_offset = part.next;
    nak.count = static_cast<uint32_t>(std::min<uint64_t>(count, UINT32_MAX));
    std::byte buf[p::kHeaderBytes + p::kNakBytes];
    auto n = p::EncodeNak(buf, conn_.Ids(part.control_request_id), nak);
    SLUICE_ASSERT(n.has_value());
    conn_.Send(std::span<const std::byte>(buf, *n));
    ++stats_.naks_sent;
  } else {
    SendFetch(part, part.next, static_cast<uint32_t>(std::min<uint64_t>(count, p::kMaxReceiveMessages)),
              false);
  }
  ++part.naks_without_progress;
  part.next_recovery = now + ToNs(options_.recovery_interval);
}

// The server no longer has this partition's subscription, or the connection moved to another
// server: SUBSCRIBE again from the next offset to hand out (the same subscription id, so DELIVER
// frames keep their route). Offsets the new server no longer retains are skipped, as a fetch
// would; the credit grant is renewed once it answers.
void StreamConsumer::Resubscribe(Part& part, MonoNs now) {
  part.resubscribing = true;
  part.last_push = now;  // the next try only after another resubscribe_after
  ++stats_.resubscribes;
  p::SubscribeRequest r;
  r.subscription_id = subscription_id_;
  r.queue_id = queue_.queue_id;
  r.partition = part.partition;
  r.start_kind = p::StartKind::kOffset;
  r.start_value = part.next;
  r.initial_credits = options_.window;
  r.group = options_.group;
  const uint64_t rid = conn_.NextRequestId();
  auto n = p::EncodeSubscribe(conn_.scratch(), conn_.Ids(rid), r);
  SLUICE_ASSERT(n.has_value());  // the same request Subscribe() encoded at the start
  outstanding_.push_back(rid);
  const uint16_t index = part.partition;
  conn_.Call(std::span<const std::byte>(conn_.scratch().data(), *n), {},
             [this, rid, index](const p::FrameView* f, const absl::Status&) {
               Part& part = parts_[index];
               part.resubscribing = false;
               Forget(outstanding_, rid);
               if (f == nullptr || f->header.type != p::FrameType::kResult) return true;
               auto res = p::DecodeResultFrame(*f);
               if (!res) return true;
               for (const p::ResultItem item : res->items) {
                 if (item.index != index || item.errc != Errc::kOk) continue;
                 if (item.value > part.next) {  // retention on the new server
                   stats_.skipped += item.value - part.next;
                   part.next = item.value;
                   part.consumed = std::max(part.consumed, part.next);
                   while (!part.ahead.empty() && part.ahead.begin()->first < part.next) {
                     part.ahead.erase(part.ahead.begin());
                   }
                   DrainAhead(part);
                 }
                 part.last_push = NowNs();
                 SendCredit(part);  // absolute: consumed + window, whatever the SUBSCRIBE granted
               }
               return true;  // an error or a timeout: tried again after resubscribe_after
             });
}

MonoNs StreamConsumer::OnTimer(MonoNs now) {
  MonoNs next = kNever;
  const MonoNs gap_ns = ToNs(options_.gap_timeout);
  const MonoNs idle_ns = ToNs(options_.idle_probe);
  const MonoNs credit_ns = ToNs(options_.credit_interval);
  const MonoNs resubscribe_ns = ToNs(options_.resubscribe_after);
  const uint64_t switches = conn_.stats().redirects + conn_.stats().failovers;
  const bool server_changed = switches != server_switches_;
  server_switches_ = switches;
  for (Part& part : parts_) {
    if (!part.subscribed || !part.active) continue;
    if (!part.resubscribing && (server_changed || part.last_push + resubscribe_ns <= now)) {
      Resubscribe(part, now);
    }
    next = std::min(next, part.last_push + resubscribe_ns);
    const bool gap = !part.ahead.empty() ||
                     (part.high_watermark > part.next && part.next < part.granted_end);
    if (gap) {
      if (part.gap_since == kNever) part.gap_since = now;
      const MonoNs due = std::max(part.gap_since + gap_ns, part.next_recovery);
      if (due <= now) {
        Recover(part, now);
        next = std::min(next, part.next_recovery);
      } else {
        next = std::min(next, due);
      }
    } else {
      part.gap_since = kNever;
    }
    // Nothing heard with credit open: probe for a lost tail.
    if (part.last_activity + idle_ns <= now) {
      if (part.next < part.granted_end) {
        SendFetch(part, part.next,
                  static_cast<uint32_t>(std::min<uint64_t>(part.granted_end - part.next, 64)), false);
      }
      part.last_activity = now;
    }
    next = std::min(next, part.last_activity + idle_ns);
    // Keep the subscription alive and the (absolute, so harmless) grant fresh.
    if (part.last_credit + credit_ns <= now) SendCredit(part);
    next = std::min(next, part.last_credit + credit_ns);
  }
  return next;
}

// ---- queue mode ---------------------------------------------------------------------------------

std::optional<OwnedMessage> StreamConsumer::Next() {
  if (ready_.empty()) return std::nullopt;
  OwnedMessage m = std::move(ready_.front());
  ready_.pop_front();
  Part& part = parts_[m->partition];
  part.consumed = std::max(part.consumed, m->offset + 1);
  MaybeGrant(part);
  return m;
}

std::optional<OwnedMessage> StreamConsumer::NextWait(absl::Duration timeout) {
  (void)conn_.PollUntil([&] { return !ready_.empty(); }, timeout);
  return Next();
}

absl::Status StreamConsumer::Unsubscribe(absl::Duration timeout) {
  const uint64_t rid = conn_.NextRequestId();
  auto n = p::EncodeUnsubscribe(conn_.scratch(), conn_.Ids(rid),
                                p::UnsubscribeRequest{subscription_id_, p::kAnyPartition});
  SLUICE_ASSERT(n.has_value());
  absl::Status status;
  bool done = false;
  conn_.Call(std::span<const std::byte>(conn_.scratch().data(), *n), {},
             [&](const p::FrameView* f, const absl::Status& s) {
               done = true;
               if (f == nullptr) {
                 status = s;
               } else if (f->header.type == p::FrameType::kError) {
                 status = StatusFromErrorFrame(*f, {});
               }
               return true;
             });
  (void)conn_.PollUntil([&] { return done; }, timeout);
  conn_.Cancel(rid);
  for (Part& part : parts_) part.active = false;
  if (!done) return absl::DeadlineExceededError(absl::StrCat(Context("unsubscribe from", queue_.name), ": no reply"));
  return WithContext(status, Context("unsubscribe from", queue_.name));
}

uint64_t StreamConsumer::next_offset(uint16_t partition) const {
  return partition < parts_.size() ? parts_[partition].next : 0;
}

uint64_t StreamConsumer::granted_end(uint16_t partition) const {
  return partition < parts_.size() ? parts_[partition].granted_end : 0;
}

}  // namespace sluice::client
