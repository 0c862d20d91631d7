#include "client/producer.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"
#include "client/errors.h"
#include "protocol/assert.h"
#include "protocol/crc32c.h"

namespace sluice::client {
namespace p = protocol;

namespace {

uint64_t RandomProducerId() {
  std::random_device rd;
  uint64_t v = 0;
  while (v == 0) v = (uint64_t{rd()} << 32) | rd();
  return v;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(Connection& conn,
                                                           std::string_view queue,
                                                           ProducerOptions options,
                                                           absl::Duration timeout) {
  absl::StatusOr<QueueInfo> info = conn.Lookup(queue, timeout);
  if (!info.ok()) return info.status();
  return std::make_unique<Producer>(conn, *std::move(info), options);
}

Producer::Producer(Connection& conn, QueueInfo queue, ProducerOptions options)
    : conn_(conn), queue_(std::move(queue)), options_(options) {
  SLUICE_ASSERT(queue_.partitions >= 1);
  frame_bytes_ = options_.max_frame_bytes != 0 ? options_.max_frame_bytes
                                               : conn_.options().max_frame_bytes;
  frame_bytes_ = std::clamp<size_t>(frame_bytes_, p::kMinReplyFrameBytes, p::kMaxFrameBytes);
  options_.max_in_flight_frames = std::max<size_t>(options_.max_in_flight_frames, 1);
  producer_id_ = options_.producer_id != 0 ? options_.producer_id : RandomProducerId();
  partitions_.resize(queue_.partitions);
  conn_.RouteAcks(producer_id_, this);
  conn_.AddEndpoint(this);
}

Producer::~Producer() {
  conn_.RemoveEndpoint(this);
  conn_.UnrouteAcks(producer_id_);
  for (Frame* f : frames_) conn_.Unroute(f->request_id);
}

std::string Producer::ContextFor(uint16_t partition) const {
  return Context("produce to", queue_.name, partition);
}

uint16_t Producer::PickPartition(const OutgoingMessage& m) {
  if (m.partition) return *m.partition;
  if (!m.key.empty()) return p::PartitionForKey(m.key, queue_.partitions);
  const uint16_t part = static_cast<uint16_t>(round_robin_ % queue_.partitions);
  if (!options_.sticky_partitioning) ++round_robin_;
  return part;
}

absl::Status Producer::Send(const OutgoingMessage& m, SendCallback done) {
  if (pending_messages_ >= options_.max_pending_messages) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "produce to '", queue_.name, "': ", pending_messages_,
        " messages pending (max_pending_messages): call Poll() to let acknowledgements in"));
  }
  if (m.partition && *m.partition >= queue_.partitions) {
    return ErrcStatus(Errc::kUnknownPartition, ContextFor(*m.partition),
                      absl::StrCat("the queue has ", queue_.partitions, " partitions"));
  }
  const uint16_t partition = PickPartition(m);
  if (queue_.max_message_bytes != 0 && m.payload.size() > queue_.max_message_bytes) {
    return ErrcStatus(Errc::kMessageTooLarge, ContextFor(partition),
                      absl::StrCat(m.payload.size(), " bytes > max_message_bytes ",
                                   queue_.max_message_bytes));
  }
  PartitionState& ps = partitions_[partition];
  p::MessageSpec spec;
  spec.partition = partition;
  spec.priority = m.priority;
  spec.sequence = ps.next_sequence;
  spec.timestamp_ns = m.timestamp_ns;
  spec.delay_ms = m.delay_ms;
  spec.ttl_ms = m.ttl_ms;
  spec.key = m.key;
  spec.headers = m.headers;
  spec.dedup_id = m.dedup_id;
  spec.reply_to = m.reply_to;
  spec.correlation_id = m.correlation_id;
  spec.group_id = m.group_id;
  spec.payload = m.payload;
  if (p::EncodeError e = p::CheckMessage(spec); e != p::EncodeError::kOk) {
    return absl::InvalidArgumentError(absl::StrCat(
        ContextFor(partition), ": message rejected by the encoder: ", Sv(p::EncodeErrorName(e))));
  }
  const MonoNs now = NowNs();
  const size_t budget = p::RecordBudget(frame_bytes_, false);
  PendingMessage pm;
  pm.callback = std::move(done);
  if (p::EncodedSize(spec) <= budget) {
    if (open_ != nullptr && open_->writer->AddMessage(spec) == p::EncodeError::kOk) {
      pm.frame_first = pm.frame_last = open_->id;
    } else {
      if (open_ != nullptr) CloseOpenFrame();
      Frame* f = OpenFrame(now);
      SLUICE_ASSERT(f->writer->AddMessage(spec) == p::EncodeError::kOk);
      pm.frame_first = pm.frame_last = f->id;
    }
    open_->messages.push_back({partition, spec.sequence});
    ++open_->remaining;
  } else {
    p::Fragmenter fragmenter(spec, budget);
    if (fragmenter.error() != p::EncodeError::kOk) {
      return absl::InvalidArgumentError(
          absl::StrCat(ContextFor(partition), ": cannot fragment the message (",
                       Sv(p::EncodeErrorName(fragmenter.error())),
                       "): its metadata alone does not fit a frame of ", frame_bytes_, " bytes"));
    }
    if (open_ != nullptr) CloseOpenFrame();
    ++stats_.fragmented;
    pm.frame_first = next_frame_id_;
    uint32_t emitted = 0;
    for (p::MessageSpec frag; fragmenter.Next(&frag);) {
      if (emitted++ > 0) CloseOpenFrame();
      Frame* f = OpenFrame(now);
      SLUICE_ASSERT(f->writer->AddMessage(frag) == p::EncodeError::kOk);
      f->messages.push_back({partition, spec.sequence});
      ++f->remaining;
    }
    pm.frame_last = open_->id;
  }
  ++ps.next_sequence;
  ps.pending.push_back(std::move(pm));
  ++pending_messages_;
  ++stats_.accepted;
  // A frame that cannot take even a minimal record more is closed now.
  if (options_.linger <= absl::ZeroDuration() ||
      open_->writer->remaining() < p::kMessageFixedBytes + 1) {
    CloseOpenFrame();
  }
  SendReady(now);
  if (options_.linger <= absl::ZeroDuration()) conn_.Flush();
  return absl::OkStatus();
}

Producer::Frame* Producer::OpenFrame(MonoNs now) {
  SLUICE_ASSERT(open_ == nullptr);
  Frame* f;
  if (!free_frames_.empty()) {
    f = free_frames_.back();
    free_frames_.pop_back();
  } else {
    all_frames_.push_back(std::make_unique<Frame>());
    f = all_frames_.back().get();
    f->buf.resize(frame_bytes_);
  }
  f->id = next_frame_id_++;
  f->request_id = conn_.NextRequestId();
  f->writer.emplace(std::span<std::byte>(f->buf.data(), frame_bytes_));
  SLUICE_ASSERT(f->writer->BeginProduce(conn_.Ids(f->request_id), queue_.queue_id, producer_id_) ==
                p::EncodeError::kOk);
  f->size = 0;
  f->messages.clear();
  f->remaining = 0;
  f->created = now;
  f->next_send = kNever;
  f->rto = ToNs(options_.ack_timeout);
  f->sends = 0;
  open_ = f;
  return f;
}

void Producer::CloseOpenFrame() {
  if (open_ == nullptr) return;
  Frame* f = open_;
  open_ = nullptr;
  auto n = f->writer->Finish();
  SLUICE_ASSERT(n.has_value());
  f->size = *n;
  if (options_.sticky_partitioning) ++round_robin_;
  if (f->remaining == 0) {  // every message in it already completed
    free_frames_.push_back(f);
    return;
  }
  frames_.push_back(f);
  conn_.Route(f->request_id, this);
}

void Producer::SendReady(MonoNs now) {
  while (in_flight_ < frames_.size() && in_flight_ < options_.max_in_flight_frames) {
    Frame* f = frames_[in_flight_++];
    conn_.Send(std::span<const std::byte>(f->buf.data(), f->size));
    f->sends = 1;
    f->last_sent = now;
    f->next_send = now + f->rto;
    ++stats_.frames_sent;
  }
}

Producer::Frame* Producer::FindFrame(uint64_t id) {
  if (open_ != nullptr && open_->id == id) return open_;
  auto it = std::lower_bound(frames_.begin(), frames_.end(), id,
                             [](const Frame* f, uint64_t v) { return f->id < v; });
  return it != frames_.end() && (*it)->id == id ? *it : nullptr;
}

void Producer::ReleaseFrame(Frame* f) {
  auto it = std::lower_bound(frames_.begin(), frames_.end(), f->id,
                             [](const Frame* x, uint64_t v) { return x->id < v; });
  SLUICE_ASSERT(it != frames_.end() && *it == f);
  const size_t index = static_cast<size_t>(it - frames_.begin());
  frames_.erase(it);
  if (index < in_flight_) --in_flight_;
  conn_.Unroute(f->request_id);
  free_frames_.push_back(f);
}

void Producer::Complete(uint16_t partition, uint64_t sequence, absl::Status status,
                        uint64_t offset) {
  PartitionState& ps = partitions_[partition];
  SLUICE_ASSERT(sequence >= ps.base_sequence && sequence < ps.next_sequence);
  PendingMessage& m = ps.pending[sequence - ps.base_sequence];
  SLUICE_ASSERT(!m.done);
  m.done = true;
  --pending_messages_;
  if (status.ok()) {
    ++stats_.acked;
  } else {
    ++stats_.failed;
  }
  if (m.callback) completions_.push_back({std::move(m.callback), std::move(status), partition, offset});
  for (uint64_t id = m.frame_first; id <= m.frame_last; ++id) {
    Frame* f = FindFrame(id);
    if (f == nullptr) continue;
    // A record of this message in the frame: fragments of one message are one record per frame.
    SLUICE_ASSERT(f->remaining > 0);
    if (--f->remaining == 0 && f != open_) ReleaseFrame(f);
  }
}

void Producer::PopCompleted(PartitionState& ps) {
  while (!ps.pending.empty() && ps.pending.front().done) {
    ps.pending.pop_front();
    ++ps.base_sequence;
  }
}

void Producer::FailFrame(Frame* f, const absl::Status& status) {
  // Completing the last message releases the frame: walk a copy of its message list.
  const std::vector<MessageRef> refs = f->messages;
  for (const MessageRef& r : refs) {
    PartitionState& ps = partitions_[r.partition];
    if (r.sequence < ps.base_sequence || r.sequence >= ps.next_sequence) continue;
    if (ps.pending[r.sequence - ps.base_sequence].done) continue;
    Complete(r.partition, r.sequence, WithContext(status, ContextFor(r.partition)), 0);
  }
  for (const MessageRef& r : refs) PopCompleted(partitions_[r.partition]);
}

MonoNs Producer::NextThrottleDelay() {
  const MonoNs lo = ToNs(options_.throttle_backoff), hi = ToNs(options_.throttle_backoff_max);
  throttle_delay_ = throttle_delay_ == 0 ? lo : std::min(throttle_delay_ * 2, hi);
  jitter_ ^= jitter_ << 13;  // xorshift: spread retries of many producers
  jitter_ ^= jitter_ >> 7;
  jitter_ ^= jitter_ << 17;
  return throttle_delay_ / 2 + static_cast<MonoNs>(jitter_ % static_cast<uint64_t>(throttle_delay_ / 2 + 1));
}

void Producer::RescheduleMessageFrames(const PendingMessage& m, MonoNs at) {
  for (uint64_t id = m.frame_first; id <= m.frame_last; ++id) {
    Frame* f = FindFrame(id);
    if (f != nullptr && f != open_ && f->sends > 0) f->next_send = at;
  }
}

// OUT_OF_ORDER_SEQUENCE: the server misses an earlier message of this partition (the gap). The
// frame holding the gap is resent soon (a later frame overtook it, so it was probably lost: fast
// retransmit, at most once per quarter ack_timeout), and this message's frames right after it:
// same pass, id order, so the gap goes first. A gap in the same frame needs nothing more.
void Producer::RescheduleAfterGap(uint16_t partition, const PendingMessage& m, MonoNs now) {
  PartitionState& ps = partitions_[partition];
  for (size_t i = 0; i < ps.pending.size(); ++i) {
    const PendingMessage& first = ps.pending[i];
    if (first.done) continue;
    if (first.frame_first >= m.frame_first) return;  // the gap travels with this message
    Frame* g = FindFrame(first.frame_first);
    if (g == nullptr || g->sends == 0) return;
    g->next_send = std::min(g->next_send,
                            std::max(now, g->last_sent + ToNs(options_.ack_timeout) / 4));
    RescheduleMessageFrames(m, g->next_send);
    return;
  }
}

void Producer::OnFrame(const p::FrameView& frame) {
  const MonoNs now = NowNs();
  if (frame.header.type == p::FrameType::kAck) {
    OnAck(frame, now);
  } else if (frame.header.type == p::FrameType::kError) {
    OnError(frame, now);
  }
  SendReady(now);
  RunCompletions();
}

void Producer::OnAck(const p::FrameView& frame, MonoNs now) {
  auto ack = p::DecodeAck(frame);
  if (!ack || ack->queue_id != queue_.queue_id || ack->producer_id != producer_id_) return;
  MonoNs throttle_at = 0;  // one back-off step per ACK frame, however many ranges it throttles
  for (const p::AckRange r : ack->ranges) {
    if (r.partition >= partitions_.size()) continue;
    PartitionState& ps = partitions_[r.partition];
    // Only sequences still pending; a range may be stale (a duplicate ACK) or partly so.
    const uint64_t lo = std::max(r.first_sequence, ps.base_sequence);
    const uint64_t hi = std::min(r.first_sequence + r.count, ps.next_sequence);
    for (uint64_t seq = lo; seq < hi; ++seq) {
      PendingMessage& m = ps.pending[seq - ps.base_sequence];
      if (m.done) continue;
      switch (r.errc) {
        case Errc::kOk:
        case Errc::kDuplicate: {
          if (r.errc == Errc::kDuplicate) ++stats_.duplicates;
          throttle_delay_ = 0;
          const uint64_t offset =
              r.first_offset == kUnknownOffset ? kUnknownOffset : r.first_offset + (seq - r.first_sequence);
          Complete(r.partition, seq, absl::OkStatus(), offset);
          break;
        }
        case Errc::kThrottled:
          ++stats_.throttled;
          if (throttle_at == 0) throttle_at = now + NextThrottleDelay();
          RescheduleMessageFrames(m, throttle_at);
          break;
        case Errc::kNotReplicated:  // appended or not, a retransmit settles it
          if (throttle_at == 0) throttle_at = now + NextThrottleDelay();
          RescheduleMessageFrames(m, throttle_at);
          break;
        case Errc::kOutOfOrderSequence: {
          ++stats_.out_of_order;
          size_t first_incomplete = 0;  // done entries at the front are few (popped per ACK)
          while (ps.pending[first_incomplete].done) ++first_incomplete;
          if (first_incomplete == seq - ps.base_sequence) {
            ps.stuck_count = ps.stuck_sequence == seq ? ps.stuck_count + 1 : 1;
            ps.stuck_sequence = seq;
            if (ps.stuck_count >= 2) epoch_needed_ = true;
          }
          RescheduleAfterGap(r.partition, m, now);
          break;
        }
        default:
          // Rejected for good: the server will not advance past this sequence.
          Complete(r.partition, seq, ErrcStatus(r.errc, ContextFor(r.partition)), 0);
          holes_.emplace_back(r.partition, seq);
          break;
      }
    }
  }
  // Highest first: each renumbering shifts only what is above its hole.
  std::sort(holes_.begin(), holes_.end(),
            [](const auto& x, const auto& y) { return x.second > y.second; });
  for (const auto& [partition, seq] : holes_) Renumber(partition, seq, seq, now);
  holes_.clear();
  for (PartitionState& ps : partitions_) PopCompleted(ps);
  if (epoch_needed_) {
    epoch_needed_ = false;
    NewEpoch(now);
  }
}

// Gives the incomplete messages of `partition` with sequence >= `from` new sequences,
// consecutive from `first` in their order; completed ones >= `from` leave the window and their
// records leave every frame (a reused sequence must never carry them again).
void Producer::Renumber(uint16_t partition, uint64_t from, uint64_t first, MonoNs now) {
  PartitionState& ps = partitions_[partition];
  if (from >= ps.next_sequence || from < ps.base_sequence) return;
  SLUICE_ASSERT(from == ps.base_sequence || first == from);
  CloseOpenFrame();  // records are rewritten in closed frames only
  remap_.assign(ps.next_sequence - from, kUnknownOffset);
  Ring<PendingMessage> kept;
  for (uint64_t seq = ps.base_sequence; seq < from; ++seq) {
    kept.push_back(std::move(ps.pending[seq - ps.base_sequence]));
  }
  uint64_t next = first;
  for (uint64_t seq = from; seq < ps.next_sequence; ++seq) {
    PendingMessage& m = ps.pending[seq - ps.base_sequence];
    if (m.done) continue;
    remap_[seq - from] = next++;
    if (remap_[seq - from] != seq) ++stats_.renumbered;
    kept.push_back(std::move(m));
  }
  if (from == ps.base_sequence) ps.base_sequence = first;
  ps.next_sequence = next;
  ps.pending = std::move(kept);
  ps.stuck_sequence = ~uint64_t{0};
  ps.stuck_count = 0;
  RewriteFrames(partition, from, remap_, now);
}

// Walks every frame's records: those of `partition` with sequence >= from get remap[seq - from],
// or are removed when that is kUnknownOffset. Rewritten frames that were sent go again now.
void Producer::RewriteFrames(uint16_t partition, uint64_t from, const std::vector<uint64_t>& remap,
                             MonoNs now) {
  scratch_frames_.clear();
  for (Frame* f : frames_) {
    std::byte* base = f->buf.data();
    size_t in = p::kHeaderBytes + p::kProducePrefixBytes, out = in;
    uint32_t count = 0;
    bool changed = false;
    f->messages.clear();
    while (in < f->size) {
      const uint32_t len = p::le::U32(base + in);
      const uint16_t part = p::le::U16(base + in + 4);
      uint64_t seq = p::le::U64(base + in + 8);
      bool keep = true;
      if (part == partition && seq >= from && seq - from < remap.size()) {
        changed = true;
        if (remap[seq - from] == kUnknownOffset) {
          keep = false;
        } else {
          seq = remap[seq - from];
          p::le::Store<uint64_t>(base + in + 8, seq);
        }
      }
      if (keep) {
        if (out != in) std::memmove(base + out, base + in, len);
        f->messages.push_back({part, seq});
        out += len;
        ++count;
      }
      in += len;
    }
    if (!changed) continue;
    f->size = out;
    p::le::Store<uint32_t>(base + 8, static_cast<uint32_t>(out));  // header length
    p::le::Store<uint32_t>(base + 12, count);                        // header count
    if (count == 0) {
      scratch_frames_.push_back(f);
    } else if (f->sends > 0) {
      f->next_send = now;
    }
  }
  for (Frame* f : scratch_frames_) {
    f->remaining = 0;
    ReleaseFrame(f);
  }
}

// The server no longer knows this producer: a new producer id, every partition renumbered from
// the first sequence, every frame rewritten and resent.
void Producer::NewEpoch(MonoNs now) {
  ++stats_.epochs;
  CloseOpenFrame();
  conn_.UnrouteAcks(producer_id_);
  uint64_t id = 0;
  while (id == 0 || id == producer_id_) id = RandomProducerId();
  producer_id_ = id;
  conn_.RouteAcks(producer_id_, this);
  for (Frame* f : frames_) {
    p::le::Store<uint64_t>(f->buf.data() + p::kHeaderBytes + 8, producer_id_);
  }
  for (uint16_t part = 0; part < partitions_.size(); ++part) {
    PartitionState& ps = partitions_[part];
    PopCompleted(ps);
    if (ps.pending.empty()) {
      ps.base_sequence = ps.next_sequence = kFirstSequence;
      continue;
    }
    Renumber(part, ps.base_sequence, kFirstSequence, now);
  }
  for (Frame* f : frames_) {
    if (f->sends > 0) f->next_send = now;
  }
}

void Producer::OnError(const p::FrameView& frame, MonoNs now) {
  auto e = p::DecodeErrorFrame(frame);
  if (!e) return;
  Frame* f = nullptr;
  for (Frame* x : frames_) {
    if (x->request_id == frame.header.request_id) f = x;
  }
  if (f == nullptr || f->sends == 0) return;
  conn_.OnServerError(*e);
  switch (e->errc) {
    case Errc::kThrottled:
      ++stats_.throttled;
      f->next_send = now + std::max<MonoNs>(NextThrottleDelay(), int64_t{e->retry_after_ms} * 1'000'000);
      return;
    case Errc::kNotPrimary:
    case Errc::kUnverifiedSource:
    case Errc::kNotReplicated:
      f->next_send = now + ToNs(options_.ack_timeout) / 4;
      return;
    default:
      FailFrame(f, StatusFromErrorFrame(frame, {}));
      return;
  }
}

MonoNs Producer::OnTimer(MonoNs now) {
  MonoNs next = kNever;
  if (open_ != nullptr) {
    const MonoNs close_at = open_->created + ToNs(options_.linger);
    if (close_at <= now) {
      CloseOpenFrame();
    } else {
      next = close_at;
    }
  }
  SendReady(now);
  // Messages past their delivery timeout fail (their frames go with them).
  const MonoNs delivery = ToNs(options_.delivery_timeout);
  scratch_frames_.clear();
  for (Frame* f : frames_) {
    if (f->created + delivery <= now) scratch_frames_.push_back(f);
    else break;  // frames_ is in creation order
  }
  for (Frame* f : scratch_frames_) {
    if (FindFrame(f->id) != f) continue;  // released meanwhile (a fragment's sibling)
    FailFrame(f, absl::DeadlineExceededError(absl::StrCat(
                     "no acknowledgement within ", absl::FormatDuration(options_.delivery_timeout),
                     " (", f->sends, " transmissions)")));
  }
  // Retransmissions, in id order, of sent frames whose timer is due.
  const MonoNs max_rto = ToNs(options_.max_ack_timeout);
  for (size_t i = 0; i < in_flight_; ++i) {
    Frame* f = frames_[i];
    if (f->next_send <= now) {
      conn_.Send(std::span<const std::byte>(f->buf.data(), f->size));
      ++f->sends;
      f->last_sent = now;
      ++stats_.retransmits;
      f->rto = std::min(f->rto * 2, max_rto);
      f->next_send = now + f->rto;
    }
    next = std::min(next, f->next_send);
  }
  if (!frames_.empty()) next = std::min(next, frames_.front()->created + delivery);
  RunCompletions();
  return next;
}

void Producer::RunCompletions() {
  // Callbacks may call Send() (which never completes anything synchronously): index loop.
  for (size_t i = 0; i < completions_.size(); ++i) {
    Completion& c = completions_[i];
    c.callback(c.status, c.partition, c.offset);
  }
  completions_.clear();
}

absl::Status Producer::Flush(absl::Duration timeout) {
  CloseOpenFrame();
  SendReady(NowNs());
  absl::Status s = conn_.PollUntil([&] { return pending_messages_ == 0; }, timeout);
  if (!s.ok() && absl::IsDeadlineExceeded(s)) {
    return absl::DeadlineExceededError(absl::StrCat("produce to '", queue_.name, "': ",
                                                    pending_messages_, " messages still unacknowledged after ",
                                                    absl::FormatDuration(timeout)));
  }
  return s;
}

}  // namespace sluice::client
