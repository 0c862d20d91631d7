#include "client/group_consumer.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "client/errors.h"
#include "client/random_id.h"
#include "protocol/assert.h"

namespace sluice::client {
namespace p = protocol;

namespace {

std::string GroupContext(std::string_view op, std::string_view queue, std::string_view group) {
  return absl::StrCat(Sv(op), " group '", Sv(group), "' of '", Sv(queue), "'");
}

// Collects a GROUP_STATE answer (frames flagged MORE first). Returns true when complete.
template <class State>
bool Collect(const p::FrameView& f, State* state, absl::Status* status, std::string_view ctx) {
  if (f.header.type == p::FrameType::kError) {
    *status = StatusFromErrorFrame(f, ctx);
    return true;
  }
  auto g = p::DecodeGroupState(f);
  if (!g) {
    *status = absl::InternalError(absl::StrCat(Sv(ctx), ": unexpected ",
                                               Sv(p::FrameTypeName(f.header.type)), " reply"));
    return true;
  }
  state->generation = g->prefix.generation;
  state->members = g->prefix.members;
  for (const p::GroupPartition gp : g->partitions) {
    state->partitions[gp.partition] =
        gp.committed ? std::optional<uint64_t>(gp.offset) : std::nullopt;
  }
  return (f.header.flags & p::kFlagMore) == 0;
}

}  // namespace

// ---- describe -----------------------------------------------------------------------------------

absl::StatusOr<GroupDescription> DescribeGroup(Connection& conn, std::string_view queue,
                                               std::string_view group, absl::Duration timeout) {
  const std::string ctx = GroupContext("describe", queue, group);
  absl::StatusOr<QueueInfo> info = conn.Lookup(queue, timeout);
  if (!info.ok()) return info.status();
  p::JoinGroupRequest r;
  r.queue_id = info->queue_id;
  r.op = p::GroupOp::kDescribe;
  r.group = group;
  const uint64_t rid = conn.NextRequestId();
  auto n = p::EncodeJoinGroup(conn.scratch(), conn.Ids(rid), r);
  if (!n) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx, ": ", Sv(p::EncodeErrorName(n.error())),
                     " (a group name has 1 to 255 bytes)"));
  }
  struct {
    uint32_t generation = 0, members = 0;
    std::map<uint16_t, std::optional<uint64_t>> partitions;
  } state;
  absl::Status status;
  bool done = false;
  conn.Call(std::span<const std::byte>(conn.scratch().data(), *n), {},
            [&](const p::FrameView* f, const absl::Status& s) {
              if (f == nullptr) {
                status = WithContext(s, ctx);
                done = true;
                return true;
              }
              done = Collect(*f, &state, &status, ctx);
              return done;
            });
  (void)conn.PollUntil([&] { return done; }, timeout);
  conn.Cancel(rid);
  if (!done) return absl::DeadlineExceededError(absl::StrCat(ctx, ": no reply"));
  if (!status.ok()) return status;
  GroupDescription d;
  d.generation = state.generation;
  d.members = state.members;
  for (const auto& [part, off] : state.partitions) {
    if (off) d.committed[part] = *off;
  }
  return d;
}

// ---- membership ---------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<GroupConsumer>> GroupConsumer::Create(Connection& conn,
                                                                     std::string_view queue,
                                                                     GroupConsumerOptions options,
                                                                     MessageHandler handler) {
  const std::string ctx = GroupContext("join", queue, options.group);
  if (options.group.empty() || options.group.size() > 255) {
    return absl::InvalidArgumentError(absl::StrCat(ctx, ": a group name has 1 to 255 bytes"));
  }
  if (handler == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(ctx, ": a group consumer needs a handler"));
  }
  if (options.start.kind == p::StartKind::kCommitted) {
    return absl::InvalidArgumentError(absl::StrCat(
        ctx, ": members always resume from the group's committed offsets; `start` is for "
             "partitions without one (earliest, latest, an offset or a timestamp)"));
  }
  const int64_t session_ms = absl::ToInt64Milliseconds(options.session_timeout);
  if (session_ms < p::kMinSessionTimeoutMs || session_ms > p::kMaxSessionTimeoutMs) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx, ": the session timeout must be 100 ms to 300 s"));
  }
  absl::StatusOr<QueueInfo> info = conn.Lookup(queue, options.timeout);
  if (!info.ok()) return info.status();
  if (info->type != p::QueueType::kStream) {
    return ErrcStatus(Errc::kWrongQueueType, ctx, "consumer groups read streams");
  }
  std::unique_ptr<GroupConsumer> c(
      new GroupConsumer(conn, *std::move(info), std::move(options), std::move(handler)));
  std::optional<absl::StatusOr<State>> joined;
  c->SendJoin(p::GroupOp::kJoin, [&](absl::StatusOr<State> s) { joined = std::move(s); });
  (void)conn.PollUntil([&] { return joined.has_value(); }, c->options_.timeout);
  if (!joined) return absl::DeadlineExceededError(absl::StrCat(ctx, ": no reply"));
  if (!joined->ok()) return joined->status();
  c->next_heartbeat_ = NowNs() + ToNs(c->options_.heartbeat_interval);
  if (absl::Status s = c->Apply(**std::move(joined)); !s.ok()) return s;
  return c;
}

GroupConsumer::GroupConsumer(Connection& conn, QueueInfo queue, GroupConsumerOptions options,
                             MessageHandler handler)
    : conn_(conn),
      queue_(std::move(queue)),
      options_(std::move(options)),
      handler_(std::move(handler)),
      member_id_(options_.member_id != 0 ? options_.member_id : RandomId()) {
  if (options_.heartbeat_interval <= absl::ZeroDuration()) {
    options_.heartbeat_interval = options_.session_timeout / 3;
  }
  conn_.AddEndpoint(this);
}

GroupConsumer::~GroupConsumer() {
  for (uint64_t rid : outstanding_) conn_.Cancel(rid);
  outstanding_.clear();
  conn_.RemoveEndpoint(this);
  if (!closed_) {
    // Best effort: the group rebalances now rather than after the session timeout.
    SendCommit(nullptr);
    SendJoin(p::GroupOp::kLeave, nullptr);
    for (uint64_t rid : outstanding_) conn_.Cancel(rid);  // sent; nobody waits for the answers
    conn_.Flush();
  }
  parts_.clear();  // unsubscribes
}

void GroupConsumer::SendJoin(p::GroupOp op,
                             absl::AnyInvocable<void(absl::StatusOr<State>)> done) {
  p::JoinGroupRequest r;
  r.queue_id = queue_.queue_id;
  r.op = op;
  r.member_id = member_id_;
  r.session_timeout_ms = op == p::GroupOp::kJoin
                             ? static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.session_timeout))
                             : 0;
  r.group = options_.group;
  const uint64_t rid = conn_.NextRequestId();
  auto n = p::EncodeJoinGroup(conn_.scratch(), conn_.Ids(rid), r);
  SLUICE_ASSERT(n.has_value());  // Create checked the name and the session
  const std::string ctx =
      GroupContext(op == p::GroupOp::kJoin ? "join" : "leave", queue_.name, options_.group);
  outstanding_.push_back(rid);
  auto state = std::make_shared<State>();
  conn_.Call(std::span<const std::byte>(conn_.scratch().data(), *n), {},
             [this, rid, ctx, state, done = std::move(done)](const p::FrameView* f,
                                                             const absl::Status& s) mutable {
               absl::Status status;
               if (f == nullptr) {
                 status = WithContext(s, ctx);
               } else if (!Collect(*f, state.get(), &status, ctx)) {
                 return false;  // more GROUP_STATE frames follow
               }
               outstanding_.erase(std::remove(outstanding_.begin(), outstanding_.end(), rid),
                                  outstanding_.end());
               if (done) {
                 if (status.ok()) done(std::move(*state)); else done(status);
               }
               return true;
             });
}

bool GroupConsumer::SendCommit(absl::AnyInvocable<void(absl::Status)> done,
                               const std::map<uint16_t, uint64_t>* offsets) {
  if (parts_.empty()) return false;
  const uint64_t rid = conn_.NextRequestId();
  p::FrameWriter w(conn_.scratch());
  if (w.BeginCommit(conn_.Ids(rid), {queue_.queue_id, generation_, member_id_, options_.group}) !=
      p::EncodeError::kOk) {
    return false;
  }
  std::vector<uint16_t> sent;
  for (const auto& [part, consumer] : parts_) {
    uint64_t at = consumer->next_offset(part);
    if (offsets != nullptr) {
      if (auto it = offsets->find(part); it != offsets->end()) at = it->second;
    }
    if (w.AddCommit({part, at}) != p::EncodeError::kOk) break;
    sent.push_back(part);
  }
  auto n = w.Finish();
  if (!n) return false;
  ++stats_.commits_sent;
  outstanding_.push_back(rid);
  const std::string ctx = GroupContext("commit", queue_.name, options_.group);
  conn_.Call(std::span<const std::byte>(conn_.scratch().data(), *n), {},
             [this, rid, ctx, sent = std::move(sent), done = std::move(done)](
                 const p::FrameView* f, const absl::Status& s) mutable {
               absl::Status status;
               if (f == nullptr) {
                 status = WithContext(s, ctx);
               } else if (f->header.type == p::FrameType::kError) {
                 status = StatusFromErrorFrame(*f, ctx);
               } else if (auto res = p::DecodeResultFrame(*f); res) {
                 for (const p::ResultItem item : res->items) {
                   if (item.errc == Errc::kOk) {
                     ++stats_.commits_ok;
                     continue;
                   }
                   if (item.errc == Errc::kStaleGeneration) ++stats_.commits_stale;
                   const uint16_t part = item.index < sent.size() ? sent[item.index] : 0;
                   if (status.ok()) {
                     status = ErrcStatus(item.errc, absl::StrCat(ctx, " partition ", part));
                   }
                 }
                 if ((f->header.flags & p::kFlagMore) != 0) return false;
               } else {
                 status = absl::InternalError(absl::StrCat(ctx, ": malformed reply"));
               }
               outstanding_.erase(std::remove(outstanding_.begin(), outstanding_.end(), rid),
                                  outstanding_.end());
               if (done) done(status);
               return true;
             });
  return true;
}

// Follows a (new) assignment: drops partitions taken away, subscribes to new ones at the group's
// committed offset, or at options.start where the group has none (or where it is no longer
// retained: then from the earliest retained offset).
absl::Status GroupConsumer::Apply(State state) {
  if (state.generation != generation_) ++stats_.rebalances;
  generation_ = state.generation;
  members_ = state.members;
  for (auto it = parts_.begin(); it != parts_.end();) {
    if (state.partitions.count(it->first) == 0) it = parts_.erase(it); else ++it;
  }
  for (const auto& [part, committed] : state.partitions) {
    if (parts_.count(part) != 0) continue;
    StreamConsumerOptions so;
    so.partition = part;
    so.start = committed ? StartPosition::Offset(*committed) : options_.start;
    so.window = options_.window;
    so.subscribe_timeout = options_.timeout;
    auto handler = [this](const ReceivedMessage& m) {
      ++stats_.delivered;
      handler_(m);
    };
    auto sc = StreamConsumer::Create(conn_, queue_.name, so, handler);
    if (!sc.ok() && ErrcOf(sc.status()) == Errc::kOffsetOutOfRange) {
      so.start = StartPosition::Earliest();
      sc = StreamConsumer::Create(conn_, queue_.name, so, handler);
    }
    if (!sc.ok()) return sc.status();
    parts_[part] = *std::move(sc);
  }
  return absl::OkStatus();
}

absl::Status GroupConsumer::Poll(absl::Duration timeout) {
  if (closed_) return absl::FailedPreconditionError("the group consumer is closed");
  if (absl::Status s = conn_.Poll(timeout); !s.ok()) return s;
  if (pending_) {
    State next = *std::move(pending_);
    pending_.reset();
    return Apply(std::move(next));
  }
  return absl::OkStatus();
}

absl::Status GroupConsumer::Commit(const std::map<uint16_t, uint64_t>* offsets) {
  std::optional<absl::Status> result;
  if (!SendCommit([&](absl::Status s) { result = std::move(s); }, offsets)) {
    return absl::OkStatus();
  }
  (void)conn_.PollUntil([&] { return result.has_value(); }, options_.timeout);
  if (!result) {
    return absl::DeadlineExceededError(
        absl::StrCat(GroupContext("commit", queue_.name, options_.group), ": no reply"));
  }
  return *result;
}

absl::Status GroupConsumer::Close(const std::map<uint16_t, uint64_t>* offsets) {
  if (closed_) return absl::OkStatus();
  absl::Status committed = Commit(offsets);
  parts_.clear();  // no more deliveries
  std::optional<absl::Status> left;
  SendJoin(p::GroupOp::kLeave, [&](absl::StatusOr<State> s) { left = s.status(); });
  (void)conn_.PollUntil([&] { return left.has_value(); }, options_.timeout);
  closed_ = true;
  if (!committed.ok()) return committed;
  if (!left) {
    return absl::DeadlineExceededError(
        absl::StrCat(GroupContext("leave", queue_.name, options_.group), ": no reply"));
  }
  return *left;
}

std::vector<uint16_t> GroupConsumer::assignment() const {
  std::vector<uint16_t> out;
  for (const auto& [part, consumer] : parts_) out.push_back(part);
  return out;
}

std::optional<uint64_t> GroupConsumer::position(uint16_t partition) const {
  auto it = parts_.find(partition);
  if (it == parts_.end()) return std::nullopt;
  return it->second->next_offset(partition);
}

void GroupConsumer::OnFrame(const p::FrameView&) {}  // replies arrive through Call handlers

MonoNs GroupConsumer::OnTimer(MonoNs now) {
  if (closed_) return kNever;
  if (now >= next_heartbeat_ && !heartbeat_outstanding_) {
    next_heartbeat_ = now + ToNs(options_.heartbeat_interval);
    // Progress first, under the generation this member holds; then the heartbeat, whose answer
    // may carry a new generation (applied by the next Poll()).
    SendCommit(nullptr);
    heartbeat_outstanding_ = true;
    ++stats_.heartbeats;
    SendJoin(p::GroupOp::kJoin, [this](absl::StatusOr<State> s) {
      heartbeat_outstanding_ = false;
      if (!s.ok()) {
        ++stats_.join_errors;
        return;
      }
      std::vector<uint16_t> have = assignment();
      bool same = s->generation == generation_ && s->partitions.size() == have.size();
      for (uint16_t part : have) same = same && s->partitions.count(part) != 0;
      if (same) {
        members_ = s->members;
        return;
      }
      pending_ = *std::move(s);
    });
  }
  return next_heartbeat_;
}

}  // namespace sluice::client
