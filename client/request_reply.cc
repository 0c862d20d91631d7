#include "client/request_reply.h"

#include <algorithm>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/errors.h"
#include "client/random_id.h"
#include "protocol/assert.h"

namespace sluice::client {
namespace p = protocol;

// ---- requester ----------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Requester>> Requester::Create(Connection& conn,
                                                             RequesterOptions options) {
  std::unique_ptr<Requester> r(new Requester(conn, options));
  if (absl::Status s = r->Open(); !s.ok()) return s;
  return r;
}

Requester::Requester(Connection& conn, RequesterOptions options)
    : conn_(conn),
      options_(options),
      inbox_id_(options.inbox_id != 0 ? options.inbox_id : RandomId()) {
  char buf[22];
  reply_to_ = std::string(p::FormatInbox(inbox_id_, buf));
  refresh_request_id_ = conn_.NextRequestId();
  conn_.Route(refresh_request_id_, this);
  conn_.RouteDeliveries(inbox_id_, this);
  conn_.AddEndpoint(this);
}

Requester::~Requester() {
  conn_.Unroute(refresh_request_id_);
  conn_.UnrouteDeliveries(inbox_id_);
  conn_.RemoveEndpoint(this);
  SendOpen(p::InboxOp::kClose);  // the server would forget it after three intervals anyway
  conn_.Flush();
}

absl::Status Requester::Open() {
  const std::string ctx = absl::StrCat("open reply inbox ", reply_to_);
  p::OpenInboxRequest r{inbox_id_, p::InboxOp::kOpen};
  const uint64_t rid = conn_.NextRequestId();
  auto n = p::EncodeOpenInbox(conn_.scratch(), conn_.Ids(rid), r);
  SLUICE_ASSERT(n.has_value());
  std::optional<absl::Status> result;
  conn_.Call(std::span<const std::byte>(conn_.scratch().data(), *n), {},
             [&](const p::FrameView* f, const absl::Status& s) {
               if (f == nullptr) {
                 result = WithContext(s, ctx);
               } else if (f->header.type == p::FrameType::kError) {
                 result = StatusFromErrorFrame(*f, ctx);
               } else if (auto res = p::DecodeResultFrame(*f); res && res->items.size() == 1) {
                 const Errc e = res->items[0].errc;
                 result = e == Errc::kOk ? absl::OkStatus() : ErrcStatus(e, ctx);
               } else {
                 result = absl::InternalError(absl::StrCat(ctx, ": unexpected reply"));
               }
               return true;
             });
  (void)conn_.PollUntil([&] { return result.has_value(); }, options_.open_timeout);
  conn_.Cancel(rid);
  if (!result) return absl::DeadlineExceededError(absl::StrCat(ctx, ": no reply"));
  next_refresh_ = NowNs() + ToNs(options_.refresh_interval);
  return *result;
}

void Requester::SendOpen(p::InboxOp op) {
  std::byte buf[p::kHeaderBytes + p::kOpenInboxBytes];
  auto n = p::EncodeOpenInbox(buf, conn_.Ids(refresh_request_id_), {inbox_id_, op});
  SLUICE_ASSERT(n.has_value());
  conn_.Send(std::span<const std::byte>(buf, *n));
}

Producer* Requester::ProducerFor(std::string_view queue, absl::Status* error) {
  auto it = producers_.find(queue);
  if (it != producers_.end()) return it->second.get();
  auto prod = Producer::Create(conn_, queue, {.linger = absl::ZeroDuration()});
  if (!prod.ok()) {
    *error = prod.status();
    return nullptr;
  }
  if ((*prod)->queue().type != p::QueueType::kWorkQueue) {
    *error = ErrcStatus(Errc::kWrongQueueType, Context("request to", queue),
                        "requests go to a work queue that a responder serves");
    return nullptr;
  }
  return producers_.emplace(std::string(queue), *std::move(prod)).first->second.get();
}

absl::Status Requester::RequestAsync(std::string_view queue, std::span<const std::byte> payload,
                                     absl::Duration deadline, ReplyCallback done,
                                     std::span<const p::Header> headers) {
  absl::Status error;
  Producer* prod = ProducerFor(queue, &error);
  if (prod == nullptr) return error;
  const std::string correlation =
      absl::StrFormat("%016x-%d", inbox_id_, static_cast<int64_t>(next_correlation_++));
  OutgoingMessage m;
  m.payload = payload;
  m.headers = headers;
  m.reply_to = reply_to_;
  m.correlation_id = correlation;
  Pending& pending = pending_[correlation];
  pending.done = std::move(done);
  pending.deadline = NowNs() + ToNs(deadline);
  absl::Status sent = prod->Send(m, [this, correlation](const absl::Status& s, uint16_t, uint64_t) {
    if (s.ok()) return;
    auto it = pending_.find(correlation);
    if (it == pending_.end()) return;
    ReplyCallback cb = std::move(it->second.done);
    pending_.erase(it);
    cb(s);
  });
  if (!sent.ok()) {
    pending_.erase(correlation);
    return sent;
  }
  ++stats_.requests;
  return absl::OkStatus();
}

absl::StatusOr<OwnedMessage> Requester::Request(std::string_view queue,
                                                std::span<const std::byte> payload,
                                                absl::Duration deadline,
                                                std::span<const p::Header> headers) {
  std::optional<absl::StatusOr<OwnedMessage>> result;
  absl::Status s = RequestAsync(
      queue, payload, deadline,
      [&](absl::StatusOr<const ReceivedMessage*> r) {
        if (r.ok()) {
          result.emplace(OwnedMessage(**r));
        } else {
          result.emplace(r.status());
        }
      },
      headers);
  if (!s.ok()) return s;
  // The timer in OnTimer ends it at the deadline; the margin only bounds a broken clock.
  (void)conn_.PollUntil([&] { return result.has_value(); }, deadline + absl::Seconds(1));
  if (!result) {
    return absl::DeadlineExceededError(absl::StrCat(Context("request to", queue), ": no reply"));
  }
  return *std::move(result);
}

void Requester::OnFrame(const p::FrameView& f) {
  if (f.header.type == p::FrameType::kError) {  // a refresh refused: e.g. redo the handshake
    if (auto e = p::DecodeErrorFrame(f)) conn_.OnServerError(*e);
    return;
  }
  if (f.header.type != p::FrameType::kDeliver) return;  // RESULTs of refreshes: nothing to do
  auto d = p::DecodeDeliver(f);
  if (!d || d->prefix.subscription_id != inbox_id_) return;
  for (const p::DeliveredView& dv : d->messages) {
    std::optional<OwnedMessage> whole;
    ReceivedMessage m;
    if (dv.message.is_fragment()) {
      whole = assembler_.Add(dv);
      if (!whole) continue;
      m = whole->get();
    } else {
      m = ToReceived(dv.meta, dv.message);
    }
    auto it = pending_.find(m.correlation_id);
    if (it == pending_.end()) {
      ++stats_.unmatched;
      continue;
    }
    ReplyCallback cb = std::move(it->second.done);
    pending_.erase(it);
    ++stats_.replies;
    cb(&m);
  }
}

MonoNs Requester::OnTimer(MonoNs now) {
  if (now >= next_refresh_) {
    SendOpen(p::InboxOp::kOpen);
    ++stats_.refreshes;
    next_refresh_ = now + ToNs(options_.refresh_interval);
  }
  MonoNs next = next_refresh_;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline <= now) {
      ReplyCallback cb = std::move(it->second.done);
      it = pending_.erase(it);
      ++stats_.timeouts;
      cb(absl::DeadlineExceededError("request: no reply before the deadline"));
    } else {
      next = std::min(next, it->second.deadline);
      ++it;
    }
  }
  return next;
}

// ---- responder ----------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Responder>> Responder::Create(Connection& conn,
                                                             std::string_view queue,
                                                             RequestHandler handler,
                                                             ResponderOptions options) {
  auto wc = WorkConsumer::Create(conn, queue);
  if (!wc.ok()) return wc.status();
  return std::unique_ptr<Responder>(
      new Responder(conn, *std::move(wc), std::move(handler), options));
}

Responder::Responder(Connection& conn, std::unique_ptr<WorkConsumer> work, RequestHandler handler,
                     ResponderOptions options)
    : conn_(conn), work_(std::move(work)), handler_(std::move(handler)), options_(options) {}

absl::StatusOr<Errc> Responder::SendReply(uint64_t inbox, const ReceivedMessage& request,
                                          std::string_view payload) {
  const std::string ctx = absl::StrCat("reply to ", Sv(request.reply_to));
  p::MessageSpec m;
  m.correlation_id = request.correlation_id;
  m.payload = std::span<const std::byte>(reinterpret_cast<const std::byte*>(payload.data()),
                                         payload.size());
  const uint64_t rid = conn_.NextRequestId();
  auto n = p::EncodeReply(conn_.scratch(), conn_.Ids(rid), inbox, m);
  if (!n) {
    return ErrcStatus(Errc::kMessageTooLarge, ctx,
                      absl::StrCat("a reply must fit one datagram of ", conn_.scratch().size(),
                                   " bytes (ConnectionOptions::max_frame_bytes)"));
  }
  std::optional<absl::StatusOr<Errc>> result;
  conn_.Call(std::span<const std::byte>(conn_.scratch().data(), *n), {},
             [&](const p::FrameView* f, const absl::Status& s) {
               if (f == nullptr) {
                 result = WithContext(s, ctx);
               } else if (f->header.type == p::FrameType::kError) {
                 result = StatusFromErrorFrame(*f, ctx);
               } else if (auto res = p::DecodeResultFrame(*f); res && res->items.size() == 1) {
                 result = res->items[0].errc;
               } else {
                 result = absl::InternalError(absl::StrCat(ctx, ": unexpected reply"));
               }
               return true;
             });
  (void)conn_.PollUntil([&] { return result.has_value(); }, absl::Seconds(5));
  conn_.Cancel(rid);
  if (!result) return absl::DeadlineExceededError(absl::StrCat(ctx, ": no answer"));
  return *std::move(result);
}

absl::StatusOr<size_t> Responder::Serve(absl::Duration wait) {
  ReceiveOptions ro;
  ro.max_messages = std::max<uint16_t>(options_.batch, 1);
  ro.visibility = options_.visibility;
  ro.wait = wait;
  ro.partition = options_.partition;
  auto batch = work_->ReceiveSync(ro);
  if (!batch.ok()) return batch.status();
  std::vector<Receipt> done, retry;
  for (const OwnedMessage& req : *batch) {
    ++stats_.requests;
    const std::optional<uint64_t> inbox = p::ParseInbox(req->reply_to);
    if (!inbox) {  // not a request (or for another kind of reply-to): nobody to answer
      ++stats_.orphaned;
      done.push_back(ReceiptOf(*req));
      continue;
    }
    absl::StatusOr<std::string> answer = handler_(*req);
    if (!answer.ok()) {
      ++stats_.failed;
      retry.push_back(ReceiptOf(*req));
      continue;
    }
    absl::StatusOr<Errc> sent = SendReply(*inbox, *req, *answer);
    if (!sent.ok()) {
      ++stats_.failed;
      retry.push_back(ReceiptOf(*req));
      continue;
    }
    if (*sent == Errc::kOk) {
      ++stats_.replied;
    } else if (*sent == Errc::kUnknownQueue) {
      ++stats_.orphaned;  // the requester went away: nobody waits for this answer
    } else {
      ++stats_.failed;
      retry.push_back(ReceiptOf(*req));
      continue;
    }
    done.push_back(ReceiptOf(*req));
  }
  if (!done.empty()) {
    auto r = work_->DeleteSync(done);
    if (!r.ok()) return r.status();
  }
  if (!retry.empty()) {
    auto r = work_->NackSync(retry, options_.retry_delay);
    if (!r.ok()) return r.status();
  }
  return batch->size();
}

}  // namespace sluice::client
