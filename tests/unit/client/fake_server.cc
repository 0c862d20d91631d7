#include "tests/unit/client/fake_server.h"

#include <array>
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "protocol/assert.h"
#include "protocol/crc32c.h"

namespace sluice::client::testing {
namespace p = protocol;

namespace {

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

std::span<const std::byte> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace

FakeServer::FakeServer(std::vector<FakeQueue> queues) {
  for (FakeQueue& q : queues) {
    Queue queue;
    queue.parts.resize(q.partitions);
    queue.decl = std::move(q);
    queues_.push_back(std::move(queue));
  }
  fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  SLUICE_ASSERT(fd_ >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  SLUICE_ASSERT(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  SLUICE_ASSERT(getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  port_ = ntohs(a.sin_port);
  int buf = 4 << 20;
  setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  out_.resize(p::kMaxFrameBytes);
  thread_ = std::thread([this] { Loop(); });
}

FakeServer::~FakeServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

std::string FakeServer::address() const { return "127.0.0.1:" + std::to_string(port_); }

void FakeServer::SetFaultHook(FaultHook hook) {
  std::lock_guard<std::mutex> l(mu_);
  hook_ = std::move(hook);
}
void FakeServer::SetAckDelayMs(int ms) {
  std::lock_guard<std::mutex> l(mu_);
  ack_delay_ms_ = ms;
}
void FakeServer::ThrottleNext(int messages) {
  std::lock_guard<std::mutex> l(mu_);
  throttle_next_ = messages;
}
void FakeServer::ForgetVerifiedSources() {
  std::lock_guard<std::mutex> l(mu_);
  verified_.clear();
  cookie_epoch_ += 2;  // neither the current nor the previous cookie is accepted any more
}
void FakeServer::SetIdleDeliverMs(int ms) {
  std::lock_guard<std::mutex> l(mu_);
  idle_deliver_ms_ = ms;
}
void FakeServer::ForgetProducers() {
  std::lock_guard<std::mutex> l(mu_);
  for (Queue& q : queues_)
    for (Partition& part : q.parts) part.producers.clear();
}
void FakeServer::SetSilent(bool silent) {
  std::lock_guard<std::mutex> l(mu_);
  silent_ = silent;
}
void FakeServer::ForgetSubscriptions() {
  std::lock_guard<std::mutex> l(mu_);
  subs_.clear();
}

FakeCounters FakeServer::counters() {
  std::lock_guard<std::mutex> l(mu_);
  return counters_;
}

FakeServer::Queue* FakeServer::QueueById(uint32_t id) {
  for (Queue& q : queues_)
    if (q.decl.id == id) return &q;
  return nullptr;
}
FakeServer::Queue* FakeServer::QueueByName(std::string_view name) {
  for (Queue& q : queues_)
    if (q.decl.name == name) return &q;
  return nullptr;
}

uint64_t FakeServer::Append(std::string_view queue, uint16_t partition, std::string_view payload) {
  std::lock_guard<std::mutex> l(mu_);
  Queue* q = QueueByName(queue);
  SLUICE_ASSERT(q != nullptr && partition < q->parts.size());
  p::MessageSpec spec;
  spec.partition = partition;
  spec.payload = Bytes(payload);
  std::vector<std::byte> rec(p::EncodedSize(spec));
  SLUICE_ASSERT(p::EncodeMessageRecord(rec, spec).has_value());
  const uint64_t off = AppendLocked(*q, partition, rec, 0);
  Push();
  return off;
}

std::vector<std::string> FakeServer::Payloads(std::string_view queue, uint16_t partition) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  Queue* q = QueueByName(queue);
  if (q == nullptr || partition >= q->parts.size()) return out;
  for (const Stored& s : q->parts[partition].log) {
    auto m = p::DecodeMessageRecord(s.record);
    SLUICE_ASSERT(m.has_value());
    out.emplace_back(reinterpret_cast<const char*>(m->payload.data()), m->payload.size());
  }
  return out;
}

size_t FakeServer::LogSize(std::string_view queue, uint16_t partition) {
  std::lock_guard<std::mutex> l(mu_);
  Queue* q = QueueByName(queue);
  return q == nullptr || partition >= q->parts.size() ? 0 : q->parts[partition].log.size();
}

size_t FakeServer::LiveMessages(std::string_view queue, uint16_t partition) {
  std::lock_guard<std::mutex> l(mu_);
  Queue* q = QueueByName(queue);
  if (q == nullptr || partition >= q->parts.size()) return 0;
  size_t n = 0;
  for (const Stored& s : q->parts[partition].log) n += s.deleted ? 0 : 1;
  return n;
}

// ---- I/O ----------------------------------------------------------------------------------------

void FakeServer::Loop() {
  std::vector<std::byte> buf(65536);
  while (!stop_) {
    pollfd pfd{fd_, POLLIN, 0};
    poll(&pfd, 1, 1);
    std::lock_guard<std::mutex> l(mu_);
    for (int i = 0; i < 64; ++i) {
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t n = recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) break;
      Peer peer;
      peer.addr = from;
      peer.key = (uint64_t{ntohl(from.sin_addr.s_addr)} << 16) | ntohs(from.sin_port);
      ++counters_.datagrams_in;
      OnDatagram(peer, std::span<const std::byte>(buf.data(), static_cast<size_t>(n)), false);
    }
    Tick();
  }
}

void FakeServer::SendRaw(const Peer& to, std::span<const std::byte> bytes) {
  sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to.addr),
         sizeof to.addr);
}

void FakeServer::SendOut(const Peer& to, std::span<const std::byte> bytes) {
  if (silent_) return;
  Fault fault = Fault::kPass;
  if (hook_) {
    auto f = p::DecodeFrame(bytes);
    if (f) fault = hook_(Direction::kToClient, *f);
  }
  if (fault == Fault::kDrop) return;
  if (fault == Fault::kDelay) {
    held_.push_back({Direction::kToClient, to, {bytes.begin(), bytes.end()}, Now() + 20'000'000});
    return;
  }
  SendRaw(to, bytes);
  if (fault == Fault::kDuplicate) SendRaw(to, bytes);
  // A held datagram goes after the next one: reordered.
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->dir == Direction::kToClient) {
      SendRaw(it->peer, it->bytes);
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
}

void FakeServer::OnDatagram(const Peer& from, std::span<const std::byte> d, bool replay) {
  auto f = p::DecodeFrame(d);
  if (!f) {
    if (d.size() >= p::kHeaderBytes && p::le::U32(d.data()) == p::kMagic) {
      p::ErrorReply e;
      e.errc = p::ToErrc(f.error());
      e.detail = p::DecodeErrorName(f.error());
      p::FrameIds ids{p::le::U64(d.data() + 16), p::le::U64(d.data() + 24), 0};
      auto n = p::EncodeErrorFrame(std::span<std::byte>(out_.data(), d.size()), ids, e);
      if (n) SendOut(from, std::span<const std::byte>(out_.data(), *n));
    }
    return;
  }
  if (!replay && hook_) {
    const Fault fault = hook_(Direction::kToServer, *f);
    if (fault == Fault::kDrop) return;
    if (fault == Fault::kDelay) {
      held_.push_back({Direction::kToServer, from, {d.begin(), d.end()}, Now() + 20'000'000});
      return;
    }
    if (fault == Fault::kDuplicate) Handle(from, *f);
  }
  Handle(from, *f);
  if (!replay) {
    std::vector<Held> again;
    for (auto it = held_.begin(); it != held_.end();) {
      if (it->dir == Direction::kToServer) {
        again.push_back(std::move(*it));
        it = held_.erase(it);
      } else {
        ++it;
      }
    }
    for (Held& h : again) OnDatagram(h.peer, h.bytes, true);
  }
}

void FakeServer::Error(const Peer& to, const p::FrameView& f, Errc errc, std::string_view detail) {
  p::ErrorReply e;
  e.errc = errc;
  e.request_type = static_cast<uint8_t>(f.header.type);
  e.detail = detail;
  if (errc == Errc::kThrottled) e.retry_after_ms = 1;
  // Never more bytes than the request (amplification rule).
  auto n = p::EncodeErrorFrame(std::span<std::byte>(out_.data(), f.bytes.size()),
                               {f.header.client_id, f.header.request_id, 0}, e);
  if (n) SendOut(to, std::span<const std::byte>(out_.data(), *n));
}

uint64_t FakeServer::CookieFor(const Peer& p, uint64_t client_id, uint64_t epoch) const {
  const uint64_t c = Mix(p.key ^ Mix(client_id ^ Mix(epoch ^ secret_)));
  return c == 0 ? 1 : c;
}

bool FakeServer::Verified(const Peer& p, uint64_t client_id) const {
  return verified_.count({p.key, client_id}) != 0;
}

void FakeServer::Handle(const Peer& from, const p::FrameView& f) {
  if (silent_) return;
  if (p::DecodeError e = p::ValidateFrame(f); e != p::DecodeError::kOk) {
    Error(from, f, p::ToErrc(e), p::DecodeErrorName(e));
    return;
  }
  const p::FrameType t = f.header.type;
  if (t == p::FrameType::kHeartbeat) {
    ++counters_.heartbeats;
    auto hb = p::DecodeHeartbeat(f);
    if (hb->cookie != 0 && (hb->cookie == CookieFor(from, f.header.client_id, cookie_epoch_) ||
                            hb->cookie == CookieFor(from, f.header.client_id, cookie_epoch_ - 1))) {
      verified_[{from.key, f.header.client_id}] = true;
    }
    p::Heartbeat reply{CookieFor(from, f.header.client_id, cookie_epoch_),
                       static_cast<uint64_t>(Now()), 1000};
    auto n = p::EncodeHeartbeat(out_, {f.header.client_id, f.header.request_id, 0}, reply);
    SendOut(from, std::span<const std::byte>(out_.data(), *n));
    return;
  }
  if (t == p::FrameType::kLookup) {
    auto r = p::DecodeLookup(f);
    Queue* q = QueueByName(r->name);
    if (q == nullptr) {
      Error(from, f, Errc::kUnknownQueue, "no queue named '" + std::string(r->name) + "'");
      return;
    }
    p::LookupReply reply{q->decl.id, q->decl.partitions, q->decl.type, q->decl.max_message_bytes};
    auto n = p::EncodeLookupReply(std::span<std::byte>(out_.data(), f.bytes.size()),
                                  {f.header.client_id, f.header.request_id, 0}, reply);
    if (n) SendOut(from, std::span<const std::byte>(out_.data(), *n));
    return;
  }
  const bool needs_verified = t == p::FrameType::kReceive || t == p::FrameType::kFetch ||
                              t == p::FrameType::kSubscribe || t == p::FrameType::kCredit ||
                              t == p::FrameType::kNak;
  if (needs_verified && !Verified(from, f.header.client_id)) {
    ++counters_.unverified_rejected;
    Error(from, f, Errc::kUnverifiedSource, "source address not verified");
    return;
  }
  switch (t) {
    case p::FrameType::kProduce: OnProduce(from, f); break;
    case p::FrameType::kReceive: OnReceive(from, f); break;
    case p::FrameType::kDelete:
    case p::FrameType::kNack:
    case p::FrameType::kExtend: OnReceiptOps(from, f); break;
    case p::FrameType::kSubscribe: OnSubscribe(from, f); break;
    case p::FrameType::kCredit: OnCredit(f); break;
    case p::FrameType::kNak: OnNak(from, f); break;
    case p::FrameType::kFetch: OnFetch(from, f); break;
    case p::FrameType::kUnsubscribe: OnUnsubscribe(from, f); break;
    default: Error(from, f, Errc::kUnknownType, "not a request type"); break;
  }
  Push();
}

// ---- produce ------------------------------------------------------------------------------------

uint64_t FakeServer::AppendLocked(Queue& q, uint16_t partition, std::span<const std::byte> record,
                                  uint64_t producer_id) {
  Partition& part = q.parts[partition];
  Stored s;
  s.offset = part.log.size();
  s.timestamp_ns = static_cast<uint64_t>(Now());
  s.producer_id = producer_id;
  s.record.assign(record.begin(), record.end());
  // The record as stored names its partition.
  p::le::Store<uint16_t>(s.record.data() + 4, partition);
  auto m = p::DecodeMessageRecord(s.record);
  s.visible_at_ns = Now() + int64_t{m->delay_ms} * 1'000'000;
  part.log.push_back(std::move(s));
  ++counters_.appended;
  return part.log.back().offset;
}

void FakeServer::OnProduce(const Peer& from, const p::FrameView& f) {
  ++counters_.produce_frames;
  auto produce = p::DecodeProduce(f);
  Queue* q = QueueById(produce->queue_id);
  if (q == nullptr) {
    Error(from, f, Errc::kUnknownQueue, "unknown queue id");
    return;
  }
  const uint64_t pid = produce->producer_id;
  for (const p::MessageView& m : produce->messages) {
    p::AckRange r;
    r.partition = m.partition;
    r.count = 1;
    r.first_sequence = m.sequence;
    uint16_t part_index = m.partition;
    if (part_index == p::kAnyPartition) {
      part_index = m.key.empty() ? 0 : p::PartitionForKey(m.key, q->decl.partitions);
      r.partition = part_index;
    }
    if (part_index >= q->parts.size()) {
      r.partition = 0;
      r.errc = Errc::kUnknownPartition;
      AddAck(from, f, q->decl.id, pid, r);
      continue;
    }
    Partition& part = q->parts[part_index];
    ProducerState& ps = part.producers[pid];
    if (m.sequence < ps.next_sequence) {
      ++counters_.duplicates;
      r.errc = Errc::kDuplicate;
      auto it = ps.offsets.find(m.sequence);
      r.first_offset = it == ps.offsets.end() ? 0 : it->second;
      AddAck(from, f, q->decl.id, pid, r);
      continue;
    }
    if (m.sequence > ps.next_sequence) {
      ++counters_.out_of_order;
      r.errc = Errc::kOutOfOrderSequence;
      AddAck(from, f, q->decl.id, pid, r);
      continue;
    }
    if (throttle_next_ > 0) {
      --throttle_next_;
      ++counters_.throttled;
      r.errc = Errc::kThrottled;
      AddAck(from, f, q->decl.id, pid, r);
      continue;
    }
    std::vector<std::byte> whole;
    std::span<const std::byte> record = m.record;
    if (m.is_fragment()) {
      ++counters_.fragments;
      Reassembly& ra = part.reassembly[{pid, m.sequence}];
      ra.total = m.total_len;
      if (m.fragment_offset == 0) ra.first_record.assign(m.record.begin(), m.record.end());
      if (ra.payload.size() < m.total_len) ra.payload.resize(m.total_len);
      if (ra.pieces.emplace(m.fragment_offset, static_cast<uint32_t>(m.payload.size())).second) {
        std::memcpy(ra.payload.data() + m.fragment_offset, m.payload.data(), m.payload.size());
      }
      uint64_t have = 0;
      for (const auto& [off, len] : ra.pieces) have += len;
      if (have < ra.total || ra.first_record.empty()) continue;  // not yet: no ACK
      auto first = p::DecodeMessageRecord(ra.first_record);
      std::vector<p::Header> headers;
      for (const p::Header& h : first->headers) headers.push_back(h);
      p::MessageSpec spec;
      spec.partition = part_index;
      spec.priority = first->priority;
      spec.sequence = first->sequence;
      spec.timestamp_ns = first->timestamp_ns;
      spec.delay_ms = first->delay_ms;
      spec.ttl_ms = first->ttl_ms;
      spec.key = first->key;
      spec.headers = headers;
      spec.dedup_id = first->dedup_id;
      spec.reply_to = first->reply_to;
      spec.correlation_id = first->correlation_id;
      spec.group_id = first->group_id;
      spec.payload = ra.payload;
      whole.resize(p::EncodedSize(spec));
      SLUICE_ASSERT(p::EncodeMessageRecord(whole, spec).has_value());
      part.reassembly.erase({pid, m.sequence});
      ++counters_.reassembled;
      record = whole;
    }
    if (record.size() > q->decl.max_message_bytes) {
      // Like the shard: the whole record is measured, and a rejected message does not advance
      // the producer's expected sequence.
      r.errc = Errc::kMessageTooLarge;
      AddAck(from, f, q->decl.id, pid, r);
      continue;
    }
    const uint64_t off = AppendLocked(*q, part_index, record, pid);
    ps.offsets[m.sequence] = off;
    ++ps.next_sequence;
    r.errc = Errc::kOk;
    r.first_offset = off;
    AddAck(from, f, q->decl.id, pid, r);
  }
  if (ack_delay_ms_ == 0) FlushAcks(true);
}

void FakeServer::AddAck(const Peer& from, const p::FrameView& f, uint32_t queue_id,
                        uint64_t producer_id, const p::AckRange& r) {
  PendingAck* pa = nullptr;
  for (PendingAck& a : acks_) {
    if (a.peer.key == from.key && a.client_id == f.header.client_id && a.queue_id == queue_id &&
        a.producer_id == producer_id) {
      pa = &a;
    }
  }
  if (pa == nullptr) {
    acks_.push_back(PendingAck{from, f.header.client_id, f.header.request_id, queue_id, producer_id,
                               {}, Now() + int64_t{ack_delay_ms_} * 1'000'000});
    pa = &acks_.back();
  }
  pa->request_id = f.header.request_id;  // the latest request this ACK answers
  if (!pa->ranges.empty()) {
    p::AckRange& last = pa->ranges.back();
    const bool offsets_follow = r.errc != Errc::kOk && r.errc != Errc::kDuplicate
                                    ? r.first_offset == 0 && last.first_offset == 0
                                    : r.first_offset == last.first_offset + last.count;
    if (last.partition == r.partition && last.errc == r.errc &&
        r.first_sequence == last.first_sequence + last.count && offsets_follow) {
      last.count += r.count;
      return;
    }
  }
  pa->ranges.push_back(r);
}

void FakeServer::FlushAcks(bool all) {
  const int64_t now = Now();
  for (auto it = acks_.begin(); it != acks_.end();) {
    if (!all && it->due_ns > now) {
      ++it;
      continue;
    }
    size_t i = 0;
    while (i < it->ranges.size()) {
      p::FrameWriter w(std::span<std::byte>(out_.data(), p::kDefaultFrameBytes));
      w.BeginAck({it->client_id, it->request_id, 0}, it->queue_id, it->producer_id);
      while (i < it->ranges.size() && w.AddAckRange(it->ranges[i]) == p::EncodeError::kOk) ++i;
      auto n = w.Finish();
      ++counters_.ack_frames;
      counters_.ack_ranges += w.count();
      SendOut(it->peer, std::span<const std::byte>(out_.data(), *n));
    }
    it = acks_.erase(it);
  }
}

// ---- work queues --------------------------------------------------------------------------------

void FakeServer::OnReceive(const Peer& from, const p::FrameView& f) {
  ++counters_.receives;
  auto r = p::DecodeReceive(f);
  Queue* q = QueueById(r->queue_id);
  if (q == nullptr) return Error(from, f, Errc::kUnknownQueue, "unknown queue id");
  if (q->decl.type != p::QueueType::kWorkQueue) {
    return Error(from, f, Errc::kWrongQueueType, "RECEIVE needs a work queue");
  }
  if (r->partition != p::kAnyPartition && r->partition >= q->parts.size()) {
    return Error(from, f, Errc::kUnknownPartition, "no such partition");
  }
  if (r->wait_ms == p::kQueueDefaultWait) r->wait_ms = 0;  // the fake's queues' default: 0
  ParkedReceive pr{from, f.header, *r, Now() + int64_t{r->wait_ms} * 1'000'000};
  if (!TryReceive(pr, r->wait_ms == 0)) parked_.push_back(pr);
}

// Leases what is visible and answers; false (nothing sent) when nothing is and not `final`.
bool FakeServer::TryReceive(const ParkedReceive& pr, bool final) {
  Queue* q = QueueById(pr.request.queue_id);
  const int64_t now = Now();
  std::vector<std::pair<uint16_t, size_t>> picked;
  for (uint16_t part = 0; part < q->parts.size(); ++part) {
    if (pr.request.partition != p::kAnyPartition && pr.request.partition != part) continue;
    std::vector<Stored>& log = q->parts[part].log;
    for (size_t i = 0; i < log.size() && picked.size() < pr.request.max_messages; ++i) {
      if (!log[i].deleted && log[i].visible_at_ns <= now) picked.emplace_back(part, i);
    }
  }
  if (picked.empty() && !final) return false;
  const uint32_t vis = pr.request.visibility_ms == p::kQueueDefaultVisibility
                           ? q->decl.default_visibility_ms
                           : pr.request.visibility_ms;
  const size_t cap = pr.request.max_frame_bytes == 0 ? p::kDefaultFrameBytes
                                                     : pr.request.max_frame_bytes;
  const p::FrameIds ids{pr.header.client_id, pr.header.request_id, 0};
  p::FrameWriter w(std::span<std::byte>(out_.data(), cap));
  w.BeginMessages(ids, p::MessagesPrefix{q->decl.id, p::kAnyPartition, 0, 0});
  auto next_frame = [&] {  // this frame is full: send it with MORE, continue in the next
    auto n = w.Finish();
    p::le::Store<uint16_t>(out_.data() + 6, p::kFlagMore);
    SendOut(pr.peer, std::span<const std::byte>(out_.data(), *n));
    w = p::FrameWriter(std::span<std::byte>(out_.data(), cap));
    w.BeginMessages(ids, p::MessagesPrefix{q->decl.id, p::kAnyPartition, 0, 0});
  };
  for (auto [part, i] : picked) {
    Stored& s = q->parts[part].log[i];
    s.receipt = next_receipt_++;
    s.visible_at_ns = now + int64_t{vis} * 1'000'000;
    ++s.receive_count;
    receipts_[s.receipt] = {q->decl.id, part, s.offset};
    p::DeliveredMeta meta{s.offset, s.timestamp_ns, s.receipt, s.producer_id, part, s.receive_count};
    AddDelivered(w, cap, meta, s.record, next_frame);
    ++counters_.delivered;
  }
  auto n = w.Finish();
  SendOut(pr.peer, std::span<const std::byte>(out_.data(), *n));
  return true;
}

void FakeServer::OnReceiptOps(const Peer& from, const p::FrameView& f) {
  auto ops = p::DecodeReceiptOps(f);
  const int64_t now = Now();
  p::FrameWriter w(std::span<std::byte>(out_.data(), p::kDefaultFrameBytes));
  w.BeginResult({f.header.client_id, f.header.request_id, 0}, f.header.type);
  for (uint32_t i = 0; i < ops->ops.size(); ++i) {
    const p::ReceiptOp op = ops->ops[i];
    Errc errc = Errc::kOk;
    uint64_t value = 0;
    auto it = receipts_.find(op.receipt);
    Queue* q = QueueById(op.queue_id);
    if (q == nullptr) {
      errc = Errc::kUnknownQueue;
    } else if (it == receipts_.end() || std::get<0>(it->second) != op.queue_id ||
               std::get<1>(it->second) != op.partition) {
      errc = Errc::kUnknownReceipt;
    } else {
      Stored& s = q->parts[op.partition].log[std::get<2>(it->second)];
      if (s.deleted) {
        errc = Errc::kUnknownReceipt;
      } else if (s.receipt != op.receipt || s.visible_at_ns <= now) {
        errc = Errc::kStaleReceipt;  // the lease expired (and perhaps went to someone else)
      } else if (f.header.type == p::FrameType::kDelete) {
        s.deleted = true;
        s.receipt = 0;
      } else if (f.header.type == p::FrameType::kNack) {
        s.receipt = 0;
        s.visible_at_ns = now + int64_t{op.ms} * 1'000'000;
      } else {
        s.visible_at_ns = now + int64_t{op.ms} * 1'000'000;
        value = op.ms;
      }
    }
    SLUICE_ASSERT(w.AddResult(p::ResultItem{errc, i, value}) == p::EncodeError::kOk);
  }
  auto n = w.Finish();
  SendOut(from, std::span<const std::byte>(out_.data(), *n));
}

// ---- streams ------------------------------------------------------------------------------------

void FakeServer::OnSubscribe(const Peer& from, const p::FrameView& f) {
  ++counters_.subscribes;
  auto r = p::DecodeSubscribe(f);
  Queue* q = QueueById(r->queue_id);
  if (q == nullptr) return Error(from, f, Errc::kUnknownQueue, "unknown queue id");
  if (q->decl.type != p::QueueType::kStream) {
    return Error(from, f, Errc::kWrongQueueType, "SUBSCRIBE needs a stream");
  }
  p::FrameWriter w(std::span<std::byte>(out_.data(), p::kDefaultFrameBytes));
  w.BeginResult({f.header.client_id, f.header.request_id, 0}, p::FrameType::kSubscribe);
  const uint16_t first = r->partition == p::kAnyPartition ? 0 : r->partition;
  const uint16_t last = r->partition == p::kAnyPartition ? q->decl.partitions : r->partition + 1;
  std::vector<Subscription> added;
  for (uint16_t part = first; part < last; ++part) {
    if (part >= q->parts.size()) {
      w.AddResult(p::ResultItem{Errc::kUnknownPartition, part, 0});
      continue;
    }
    const std::vector<Stored>& log = q->parts[part].log;
    uint64_t start = 0;
    Errc errc = Errc::kOk;
    switch (r->start_kind) {
      case p::StartKind::kEarliest: start = 0; break;
      case p::StartKind::kLatest: start = log.size(); break;
      case p::StartKind::kTimestamp:
        start = log.size();
        for (const Stored& s : log) {
          if (s.timestamp_ns >= r->start_value) {
            start = s.offset;
            break;
          }
        }
        break;
      case p::StartKind::kCommitted: start = 0; break;
      case p::StartKind::kOffset:
        start = r->start_value;
        if (start > log.size()) errc = Errc::kOffsetOutOfRange;
        break;
    }
    w.AddResult(p::ResultItem{errc, part, start});
    if (errc != Errc::kOk) continue;
    // Re-subscribe replaces.
    subs_.erase(std::remove_if(subs_.begin(), subs_.end(),
                               [&](const Subscription& s) {
                                 return s.peer.key == from.key &&
                                        s.client_id == f.header.client_id &&
                                        s.subscription_id == r->subscription_id &&
                                        s.partition == part;
                               }),
                subs_.end());
    added.push_back(Subscription{from, f.header.client_id, f.header.request_id,
                                 r->subscription_id, q->decl.id, part, start,
                                 start + r->initial_credits});
  }
  auto n = w.Finish();
  SendOut(from, std::span<const std::byte>(out_.data(), *n));
  // The RESULT goes before the first DELIVER.
  for (Subscription& s : added) subs_.push_back(s);
}

void FakeServer::OnCredit(const p::FrameView& f) {
  ++counters_.credits;
  auto c = p::DecodeCredit(f);
  for (Subscription& s : subs_) {
    if (s.client_id == f.header.client_id && s.subscription_id == c->subscription_id &&
        s.partition == c->partition) {
      s.limit = std::max(s.limit, c->next_offset + c->credits);
    }
  }
}

void FakeServer::OnNak(const Peer& from, const p::FrameView& f) {
  ++counters_.naks;
  auto n = p::DecodeNak(f);
  for (const Subscription& s : subs_) {
    if (s.peer.key == from.key && s.client_id == f.header.client_id &&
        s.subscription_id == n->subscription_id && s.partition == n->partition) {
      SendDeliver(s, n->from_offset, std::min(n->from_offset + n->count, s.next),
                  f.header.request_id);
    }
  }
}

void FakeServer::SendDeliver(const Subscription& s, uint64_t from, uint64_t to,
                             uint64_t request_id) {
  Queue* q = QueueById(s.queue_id);
  const std::vector<Stored>& log = q->parts[s.partition].log;
  to = std::min<uint64_t>(to, log.size());
  const p::FrameIds ids{s.client_id, request_id, 0};
  const p::DeliverPrefix prefix{s.subscription_id, s.queue_id, s.partition, log.size()};
  if (from >= to) return;
  p::FrameWriter w(std::span<std::byte>(out_.data(), p::kDefaultFrameBytes));
  w.BeginDeliver(ids, prefix);
  auto next_frame = [&] {
    auto n = w.Finish();
    SendOut(s.peer, std::span<const std::byte>(out_.data(), *n));
    w = p::FrameWriter(std::span<std::byte>(out_.data(), p::kDefaultFrameBytes));
    w.BeginDeliver(ids, prefix);
  };
  for (uint64_t off = from; off < to; ++off) {
    const Stored& m = log[off];
    p::DeliveredMeta meta{m.offset, m.timestamp_ns, 0, m.producer_id, s.partition, 0};
    AddDelivered(w, p::kDefaultFrameBytes, meta, m.record, next_frame);
    ++counters_.delivered;
  }
  auto n = w.Finish();
  SendOut(s.peer, std::span<const std::byte>(out_.data(), *n));
}

void FakeServer::AddDelivered(p::FrameWriter& w, size_t cap, const p::DeliveredMeta& meta,
                              std::span<const std::byte> record,
                              const std::function<void()>& next_frame) {
  if (w.AddDeliveredRaw(meta, record) == p::EncodeError::kOk) return;
  if (w.count() > 0) {
    next_frame();
    if (w.AddDeliveredRaw(meta, record) == p::EncodeError::kOk) return;
  }
  // Too large for an empty frame: fragments, each with the message's metadata.
  auto m = p::DecodeMessageRecord(record);
  std::array<p::Header, p::kMaxHeaders> headers;
  const p::MessageSpec spec = p::SpecOf(*m, headers);
  const size_t budget = cap - p::kHeaderBytes - p::kDeliverPrefixBytes - p::kDeliveredMetaBytes;
  p::Fragmenter fragmenter(spec, budget);
  SLUICE_ASSERT(fragmenter.error() == p::EncodeError::kOk);
  for (p::MessageSpec frag; fragmenter.Next(&frag);) {
    if (w.AddDelivered(meta, frag) != p::EncodeError::kOk) {
      next_frame();
      SLUICE_ASSERT(w.AddDelivered(meta, frag) == p::EncodeError::kOk);
    }
  }
}

void FakeServer::Push() {
  const int64_t now = Now();
  for (Subscription& s : subs_) {
    Queue* q = QueueById(s.queue_id);
    const uint64_t end = std::min<uint64_t>(q->parts[s.partition].log.size(), s.limit);
    if (s.next >= end) {
      if (idle_deliver_ms_ > 0 && now - s.last_sent_ns >= int64_t{idle_deliver_ms_} * 1'000'000) {
        // Idle: an empty DELIVER carrying the high watermark, so a lost tail is noticed.
        s.last_sent_ns = now;
        p::FrameWriter w(std::span<std::byte>(out_.data(), p::kDefaultFrameBytes));
        w.BeginDeliver({s.client_id, s.request_id, 0},
                       p::DeliverPrefix{s.subscription_id, s.queue_id, s.partition,
                                        q->parts[s.partition].log.size()});
        auto n = w.Finish();
        SendOut(s.peer, std::span<const std::byte>(out_.data(), *n));
      }
      continue;
    }
    s.last_sent_ns = now;
    const uint64_t from = s.next;
    s.next = end;
    SendDeliver(s, from, end, s.request_id);
  }
}

void FakeServer::OnFetch(const Peer& from, const p::FrameView& f) {
  ++counters_.fetches;
  auto r = p::DecodeFetch(f);
  Queue* q = QueueById(r->queue_id);
  if (q == nullptr) return Error(from, f, Errc::kUnknownQueue, "unknown queue id");
  if (q->decl.type != p::QueueType::kStream) {
    return Error(from, f, Errc::kWrongQueueType, "FETCH needs a stream");
  }
  if (r->partition >= q->parts.size()) return Error(from, f, Errc::kUnknownPartition, "partition");
  const std::vector<Stored>& log = q->parts[r->partition].log;
  uint64_t start = 0;
  switch (r->start_kind) {
    case p::StartKind::kLatest: start = log.size(); break;
    case p::StartKind::kOffset: start = r->start_value; break;
    case p::StartKind::kTimestamp:
      start = log.size();
      for (const Stored& s : log) {
        if (s.timestamp_ns >= r->start_value) {
          start = s.offset;
          break;
        }
      }
      break;
    default: start = 0; break;
  }
  if (start > log.size()) return Error(from, f, Errc::kOffsetOutOfRange, "offset not retained");
  const size_t cap = r->max_frame_bytes == 0 ? p::kDefaultFrameBytes : r->max_frame_bytes;
  p::FrameWriter w(std::span<std::byte>(out_.data(), cap));
  w.BeginMessages({f.header.client_id, f.header.request_id, 0},
                  p::MessagesPrefix{q->decl.id, r->partition, 0, log.size()});
  uint64_t off = start;
  auto next_frame = [&] {
    auto n = w.Finish();
    p::le::Store<uint16_t>(out_.data() + 6, p::kFlagMore);
    p::le::Store<uint64_t>(out_.data() + p::kHeaderBytes + 8, off);
    SendOut(from, std::span<const std::byte>(out_.data(), *n));
    w = p::FrameWriter(std::span<std::byte>(out_.data(), cap));
    w.BeginMessages({f.header.client_id, f.header.request_id, 0},
                    p::MessagesPrefix{q->decl.id, r->partition, 0, log.size()});
  };
  while (off < log.size() && off - start < r->max_messages) {
    const Stored& m = log[off];
    p::DeliveredMeta meta{m.offset, m.timestamp_ns, 0, m.producer_id, r->partition, 0};
    AddDelivered(w, cap, meta, m.record, next_frame);
    ++off;
  }
  auto n = w.Finish();
  p::le::Store<uint64_t>(out_.data() + p::kHeaderBytes + 8, off);  // next_offset
  SendOut(from, std::span<const std::byte>(out_.data(), *n));
}

void FakeServer::OnUnsubscribe(const Peer& from, const p::FrameView& f) {
  auto u = p::DecodeUnsubscribe(f);
  p::FrameWriter w(std::span<std::byte>(out_.data(), p::kDefaultFrameBytes));
  w.BeginResult({f.header.client_id, f.header.request_id, 0}, p::FrameType::kUnsubscribe);
  for (auto it = subs_.begin(); it != subs_.end();) {
    if (it->client_id == f.header.client_id && it->subscription_id == u->subscription_id &&
        (u->partition == p::kAnyPartition || u->partition == it->partition)) {
      w.AddResult(p::ResultItem{Errc::kOk, it->partition, 0});
      it = subs_.erase(it);
    } else {
      ++it;
    }
  }
  auto n = w.Finish();
  SendOut(from, std::span<const std::byte>(out_.data(), *n));
}

// ---- timers -------------------------------------------------------------------------------------

void FakeServer::Tick() {
  FlushAcks(false);
  const int64_t now = Now();
  for (size_t i = 0; i < parked_.size();) {
    const bool final = parked_[i].deadline_ns <= now;
    if (TryReceive(parked_[i], final)) {
      parked_.erase(parked_.begin() + static_cast<ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
  // Held (delayed) datagrams nobody overtook: send them now.
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->due_ns > now) {
      ++it;
      continue;
    }
    Held h = std::move(*it);
    it = held_.erase(it);
    if (h.dir == Direction::kToClient) {
      SendRaw(h.peer, h.bytes);
    } else {
      OnDatagram(h.peer, h.bytes, true);
      it = held_.begin();
    }
  }
  Push();
}

}  // namespace sluice::client::testing
