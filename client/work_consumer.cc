#include "client/work_consumer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "client/errors.h"
#include "protocol/assert.h"

namespace sluice::client {
namespace p = protocol;

namespace {

std::string_view Verb(p::FrameType t) {
  switch (t) {
    case p::FrameType::kDelete: return "delete from";
    case p::FrameType::kNack: return "nack on";
    default: return "extend lease on";
  }
}

// The control plane's bound on a queue's receive_wait_ms (control/queue_meta.cc).
constexpr uint32_t kMaxQueueReceiveWaitMs = 20'000;

uint32_t ClampMs(absl::Duration d, uint32_t max) {
  return static_cast<uint32_t>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 0, max));
}

}  // namespace

absl::StatusOr<std::unique_ptr<WorkConsumer>> WorkConsumer::Create(Connection& conn,
                                                                   std::string_view queue,
                                                                   absl::Duration timeout) {
  absl::StatusOr<QueueInfo> info = conn.Lookup(queue, timeout);
  if (!info.ok()) return info.status();
  if (info->type != p::QueueType::kWorkQueue) {
    return ErrcStatus(Errc::kWrongQueueType, Context("receive from", queue),
                      "it is a stream: use consume");
  }
  return std::make_unique<WorkConsumer>(conn, *std::move(info));
}

WorkConsumer::WorkConsumer(Connection& conn, QueueInfo queue)
    : conn_(conn), queue_(std::move(queue)) {}

WorkConsumer::~WorkConsumer() {
  for (uint64_t rid : outstanding_) conn_.Cancel(rid);
}

void WorkConsumer::Receive(const ReceiveOptions& o, ReceiveCallback done) {
  p::ReceiveRequest r;
  r.queue_id = queue_.queue_id;
  r.partition = o.partition ? *o.partition : p::kAnyPartition;
  r.max_messages = std::clamp<uint16_t>(o.max_messages, 1, p::kMaxReceiveMessages);
  r.visibility_ms = o.visibility ? ClampMs(*o.visibility, p::kMaxVisibilityMs)
                                 : p::kQueueDefaultVisibility;
  r.wait_ms = o.wait ? ClampMs(*o.wait, p::kMaxWaitMs) : p::kQueueDefaultWait;
  r.max_frame_bytes = static_cast<uint16_t>(conn_.options().max_frame_bytes);
  const uint64_t rid = conn_.NextRequestId();
  auto n = p::EncodeReceive(conn_.scratch(), conn_.Ids(rid), r);
  SLUICE_ASSERT(n.has_value());
  const std::string ctx = Context("receive from", queue_.name, o.partition);
  CallOptions co;
  co.server_wait = absl::Milliseconds(o.wait ? r.wait_ms : kMaxQueueReceiveWaitMs);
  outstanding_.insert(rid);
  conn_.Call(std::span<const std::byte>(conn_.scratch().data(), *n), co,
             [this, rid, ctx, done = std::move(done)](const p::FrameView* f,
                                                      const absl::Status& s) mutable {
               batch_.clear();
               assembled_.clear();
               bool last = true;
               absl::Status status;
               if (f == nullptr) {
                 status = WithContext(s, ctx);
               } else if (f->header.type == p::FrameType::kMessages) {
                 auto m = p::DecodeMessages(*f);
                 if (!m) {
                   status = absl::InternalError(absl::StrCat(ctx, ": malformed MESSAGES reply: ",
                                                             Sv(p::DecodeErrorName(m.error()))));
                 } else {
                   for (const p::DeliveredView& d : m->messages) {
                     if (!d.message.is_fragment()) {
                       batch_.push_back(ToReceived(d.meta, d.message));
                     } else if (std::optional<OwnedMessage> whole = assembler_.Add(d)) {
                       assembled_.push_back(std::move(*whole));
                       batch_.push_back(*assembled_.back());
                     }
                   }
                   last = (f->header.flags & p::kFlagMore) == 0;
                 }
               } else if (f->header.type == p::FrameType::kError) {
                 status = StatusFromErrorFrame(*f, ctx);
               } else {
                 status = absl::InternalError(absl::StrCat(
                     ctx, ": unexpected ", Sv(p::FrameTypeName(f->header.type)), " reply"));
               }
               if (last) outstanding_.erase(rid);
               done(status, batch_, last);
               return last;
             });
}

void WorkConsumer::ReceiptOps(p::FrameType type, std::span<const Receipt> receipts, uint32_t ms,
                              ReceiptCallback done) {
  struct State {
    std::vector<absl::Status> results;
    std::vector<bool> answered;
    absl::Status overall;
    int frames_left = 0;
    ReceiptCallback done;
  };
  auto state = std::make_shared<State>();
  state->results.resize(receipts.size());
  state->answered.resize(receipts.size(), false);
  state->done = std::move(done);
  if (receipts.empty()) {
    state->done(absl::OkStatus(), state->results);
    return;
  }
  const size_t per_frame =
      (conn_.options().max_frame_bytes - p::kHeaderBytes) / p::kReceiptOpBytes;
  SLUICE_ASSERT(per_frame >= 1);
  state->frames_left = static_cast<int>((receipts.size() + per_frame - 1) / per_frame);
  const std::string verb(Verb(type));
  for (size_t base = 0; base < receipts.size(); base += per_frame) {
    const size_t count = std::min(per_frame, receipts.size() - base);
    const uint64_t rid = conn_.NextRequestId();
    p::FrameWriter w(conn_.scratch().first(conn_.options().max_frame_bytes));
    SLUICE_ASSERT(w.BeginReceiptOps(type, conn_.Ids(rid)) == p::EncodeError::kOk);
    for (size_t i = 0; i < count; ++i) {
      const Receipt& r = receipts[base + i];
      SLUICE_ASSERT(w.AddReceiptOp(p::ReceiptOp{queue_.queue_id, r.partition, r.handle,
                                                type == p::FrameType::kDelete ? 0 : ms}) ==
                    p::EncodeError::kOk);
    }
    auto n = w.Finish();
    SLUICE_ASSERT(n.has_value());
    std::vector<Receipt> mine(receipts.begin() + base, receipts.begin() + base + count);
    outstanding_.insert(rid);
    conn_.Call(
        std::span<const std::byte>(conn_.scratch().data(), *n), {},
        [this, rid, state, base, verb, mine = std::move(mine)](const p::FrameView* f,
                                                               const absl::Status& s) {
          auto item_context = [&](size_t i) {
            return absl::StrCat(Context(verb, queue_.name, mine[i].partition), " receipt ",
                                FormatReceipt(mine[i]));
          };
          bool last = true;
          absl::Status whole;
          if (f == nullptr) {
            whole = s;
          } else if (f->header.type == p::FrameType::kResult) {
            auto res = p::DecodeResultFrame(*f);
            if (!res) {
              whole = absl::InternalError("malformed RESULT reply");
            } else {
              for (const p::ResultItem item : res->items) {
                if (item.index >= mine.size()) continue;
                state->answered[base + item.index] = true;
                state->results[base + item.index] = ErrcStatus(item.errc, item_context(item.index));
              }
              last = (f->header.flags & p::kFlagMore) == 0;
            }
          } else if (f->header.type == p::FrameType::kError) {
            whole = StatusFromErrorFrame(*f, {});
          } else {
            whole = absl::InternalError(absl::StrCat(
                "unexpected ", Sv(p::FrameTypeName(f->header.type)), " reply"));
          }
          if (!last) return false;
          outstanding_.erase(rid);
          for (size_t i = 0; i < mine.size(); ++i) {
            if (state->answered[base + i]) continue;
            state->results[base + i] =
                whole.ok() ? absl::InternalError(absl::StrCat(item_context(i),
                                                              ": the server gave no result for it"))
                           : WithContext(whole, item_context(i));
          }
          if (!whole.ok() && state->overall.ok()) {
            state->overall = WithContext(whole, Context(verb, queue_.name));
          }
          if (--state->frames_left == 0) state->done(state->overall, state->results);
          return true;
        });
  }
}

void WorkConsumer::Delete(std::span<const Receipt> receipts, ReceiptCallback done) {
  ReceiptOps(p::FrameType::kDelete, receipts, 0, std::move(done));
}
void WorkConsumer::Nack(std::span<const Receipt> receipts, absl::Duration delay,
                        ReceiptCallback done) {
  ReceiptOps(p::FrameType::kNack, receipts, ClampMs(delay, p::kMaxDelayMs), std::move(done));
}
void WorkConsumer::Extend(std::span<const Receipt> receipts, absl::Duration visibility,
                          ReceiptCallback done) {
  ReceiptOps(p::FrameType::kExtend, receipts, ClampMs(visibility, p::kMaxVisibilityMs),
             std::move(done));
}

absl::StatusOr<std::vector<OwnedMessage>> WorkConsumer::ReceiveSync(const ReceiveOptions& o) {
  std::vector<OwnedMessage> out;
  absl::Status status;
  bool done = false;
  Receive(o, [&](const absl::Status& s, std::span<const ReceivedMessage> batch, bool last) {
    if (!s.ok()) status = s;
    for (const ReceivedMessage& m : batch) out.emplace_back(m);
    done = done || last;
  });
  // Bounded: the call fails by itself after its attempts.
  (void)conn_.PollUntil([&] { return done; }, absl::InfiniteDuration());
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<absl::Status>> WorkConsumer::ReceiptOpsSync(
    p::FrameType type, std::span<const Receipt> receipts, uint32_t ms) {
  std::vector<absl::Status> out;
  absl::Status status;
  bool done = false;
  ReceiptOps(type, receipts, ms, [&](const absl::Status& s, std::span<const absl::Status> items) {
    status = s;
    out.assign(items.begin(), items.end());
    done = true;
  });
  (void)conn_.PollUntil([&] { return done; }, absl::InfiniteDuration());
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<absl::Status>> WorkConsumer::DeleteSync(std::span<const Receipt> r) {
  return ReceiptOpsSync(p::FrameType::kDelete, r, 0);
}
absl::StatusOr<std::vector<absl::Status>> WorkConsumer::NackSync(std::span<const Receipt> r,
                                                                 absl::Duration delay) {
  return ReceiptOpsSync(p::FrameType::kNack, r, ClampMs(delay, p::kMaxDelayMs));
}
absl::StatusOr<std::vector<absl::Status>> WorkConsumer::ExtendSync(std::span<const Receipt> r,
                                                                   absl::Duration visibility) {
  return ReceiptOpsSync(p::FrameType::kExtend, r, ClampMs(visibility, p::kMaxVisibilityMs));
}

}  // namespace sluice::client
