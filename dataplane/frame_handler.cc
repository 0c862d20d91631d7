#include "dataplane/frame_handler.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "dataplane/produce_route.h"
#include "dataplane/storage_shell.h"
#include "dataplane/worker.h"
#include "protocol/crc32c.h"

namespace sluice::dataplane {
namespace p = protocol;

namespace {

Endpoint EndpointOf(const Peer& peer) { return Endpoint{peer.Word0(), peer.Word1()}; }

std::span<const std::byte> PayloadOf(rte_mbuf* m) {
  return {reinterpret_cast<const std::byte*>(DatagramPayload(m)), DatagramPayloadLength(m)};
}

// The sender of a frame still in its received mbuf (an owner re-derives it after a hand-off).
Peer PeerOf(rte_mbuf* m) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, m->l2_len);
  auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, m->l2_len + m->l3_len);
  Peer peer;
  peer.mac = eth->src_addr;
  peer.ipv4 = ip->src_addr;
  peer.udp_port = udp->src_port;
  peer.port_id = m->port;
  return peer;
}

uint64_t Bit(uint16_t worker) { return uint64_t{1} << worker; }

}  // namespace

FrameHandler::FrameHandler(Worker& worker, const SharedRuntime& shared)
    : worker_(worker), shared_(shared), address_check_(*shared.address_check) {
  const hwconf::Lcore& conf = shared.layout->lcores[worker.index()];
  frontend_ = std::make_unique<Frontend>(worker.table(), worker.index(), conf.shards, *this,
                                         shared.min_message_bytes, worker.frontend_storage(),
                                         worker.replicator(), shared.layout->shard_memory_mb);
}

FrameHandler::~FrameHandler() {
  for (PendingReply& r : replies_)
    if (r.m != nullptr) rte_pktmbuf_free(r.m);
}

const PortRuntime* FrameHandler::PortById(uint16_t port_id) const {
  for (const PortRuntime& p : shared_.ports)
    if (p.addr.port_id == port_id) return &p;
  return nullptr;
}

bool FrameHandler::NeedsVerifiedSource(p::FrameType t) const {
  // Requests whose replies can be larger than the request itself.
  return t == p::FrameType::kReceive || t == p::FrameType::kFetch ||
         t == p::FrameType::kSubscribe || t == p::FrameType::kCredit ||
         t == p::FrameType::kNak || t == p::FrameType::kJoinGroup ||
         t == p::FrameType::kOpenInbox;  // replies are pushed to the inbox's address
}

// The common frame, by itself: its prefix decoded once for routing and appending, no dispatch on
// the type (OwnersOf's switch, the frontend's). The same steps, in the same order, as the general
// path of OnDatagram below took for a PRODUCE. Inlined into OnDatagram, its one caller (a call
// and its register saves per frame).
[[gnu::always_inline]] inline void FrameHandler::OnProduce(rte_mbuf* m, const p::FrameView& frame,
                                                           const Endpoint& ep) {
  const p::ProduceView produce = p::DecodeValidatedProduce(frame);
  RouteContext route;
  route.receiver = true;
  uint64_t owners = 0;
  if (const QueueInfo* q = worker_.table().Find(produce.queue_id); q != nullptr) {
    owners = RouteProduce(*q, worker_.index(), frame, produce,
                          reinterpret_cast<std::byte*>(DatagramPayload(m)), &produce_rr_);
  }
  // Each owner answers a PRODUCE with its own ACK frame: from an unverified source, the sum must
  // not exceed the request (docs/protocol.md, amplification rule).
  const size_t request_bytes = frame.bytes.size();
  if (std::popcount(owners) > 1 &&
      std::popcount(owners) * (p::kHeaderBytes + p::kAckPrefixBytes) +
              frame.header.count * p::kAckRangeBytes > request_bytes &&
      !Verified(ep, frame.header.client_id)) {
    AnswerError(frame.header, static_cast<uint8_t>(p::FrameType::kProduce),
                Errc::kUnverifiedSource,
                "PRODUCE spans several shards: verify the source address first", ep,
                request_bytes);
    rte_pktmbuf_free(m);
    return;
  }
  m->hash.usr = 0;  // route.any_partition: a PRODUCE resolves kAnyPartition in the frame itself
  // Most frames are this worker's alone: no walk over the workers for them.
  if ((owners & ~Bit(worker_.index())) != 0) HandOffToOwners(m, owners, &route);
  frontend_->OnProduce(frame, produce, ep, route, worker_.NowNs());
  worker_.Retire(m);
}

void FrameHandler::OnDatagram(rte_mbuf* m, const Peer& from, const PortRuntime& port) {
  (void)port;
  LcoreCounters& c = worker_.mutable_counters();
  const Endpoint ep = EndpointOf(from);
  std::span<const std::byte> datagram = PayloadOf(m);

  p::DecodeError err;
  const p::FrameView frame = p::DecodeValidFrame(datagram, &err);
  if (err != p::DecodeError::kOk) [[unlikely]] {
    c.Drop(DropReason::kMalformedFrame);
    AnswerMalformed(datagram, err, ep);
    rte_pktmbuf_free(m);
    return;
  }
  ++c.frames;
  const p::FrameType type = frame.header.type;
  if (type == p::FrameType::kProduce) [[likely]] {
    OnProduce(m, frame, ep);
    return;
  }
  if (type == p::FrameType::kHeartbeat) {
    AnswerHeartbeat(frame, ep);
    rte_pktmbuf_free(m);
    return;
  }
  if (type == p::FrameType::kLookup) {
    AnswerLookup(frame, ep);
    rte_pktmbuf_free(m);
    return;
  }
  // Asked only where the answer matters: a request whose reply may outgrow it, or a PRODUCE that
  // spans several shards (OnProduce). A single-shard PRODUCE, the common frame, never asks, so an
  // unverified producer (which the memo cannot remember) costs no shared-table lookup per frame.
  if (NeedsVerifiedSource(type) && !Verified(ep, frame.header.client_id)) {
    AnswerError(frame.header, static_cast<uint8_t>(type), Errc::kUnverifiedSource,
                "source address not verified: send HEARTBEAT and echo the server's cookie first",
                ep, datagram.size());
    rte_pktmbuf_free(m);
    return;
  }

  RouteContext route;
  route.receiver = true;
  const uint64_t owners = OwnersOf(frame, DatagramPayload(m), &route);
  m->hash.usr = route.any_partition;  // owners of a RECEIVE(any) need the partition chosen here
  HandOffToOwners(m, owners, &route);
  // The receiver always looks at the frame: it owns some items, or must answer for items nobody
  // could take (unknown queue or partition, full rings).
  frontend_->OnFrame(frame, ep, route, worker_.NowNs());
  worker_.Retire(m);
}

bool FrameHandler::Verified(const Endpoint& ep, uint64_t client_id) {
  return verified_memo_.IsVerified(ep.w0, client_id, worker_.NowNs(),
                                   AddressCheck::kVerifiedForNs,
                                   [this](uint64_t endpoint, uint64_t client, uint64_t* at) {
                                     return address_check_.VerifiedAt(endpoint, client, at);
                                   });
}

void FrameHandler::HandOffToOwners(rte_mbuf* m, uint64_t owners, RouteContext* route) {
  for (uint16_t w = 0; w < shared_.worker_count; ++w) {
    if (w == worker_.index() || (owners & Bit(w)) == 0) continue;
    rte_mbuf_refcnt_update(m, 1);
    if (!worker_.HandOff(w, m)) {
      rte_mbuf_refcnt_update(m, -1);
      ++worker_.mutable_counters().throttled;
      route->throttled_workers |= Bit(w);
    }
  }
}

void FrameHandler::OnHandoff(rte_mbuf* m) {
  std::span<const std::byte> datagram = PayloadOf(m);
  auto frame = p::DecodeFrame(datagram);
  SLUICE_ASSERT(frame.has_value());  // validated by the receiving worker
  RouteContext route;
  route.any_partition = static_cast<uint16_t>(m->hash.usr);
  const Peer from = PeerOf(m);
  const Endpoint ep = from.ipv4 == 0 ? kInternalEndpoint : EndpointOf(from);
  frontend_->OnFrame(*frame, ep, route, worker_.NowNs());
  worker_.Retire(m);
}

uint64_t FrameHandler::OwnersOf(const p::FrameView& f, uint8_t* payload, RouteContext* route) {
  const QueueTable& table = worker_.table();
  const uint16_t self = worker_.index();
  uint64_t owners = 0;
  auto all_workers = [&] { return shared_.worker_count >= 64 ? ~0ull : Bit(shared_.worker_count) - 1; };

  switch (f.header.type) {
    case p::FrameType::kProduce: {  // OnProduce routes a received PRODUCE itself (the same call)
      const p::ProduceView produce = p::DecodeValidatedProduce(f);
      const QueueInfo* q = table.Find(produce.queue_id);
      if (q == nullptr) return 0;
      return RouteProduce(*q, self, f, produce, reinterpret_cast<std::byte*>(payload),
                          &produce_rr_);
    }
    case p::FrameType::kReceive: {
      auto r = p::DecodeReceive(f);
      const QueueInfo* q = table.Find(r->queue_id);
      if (q == nullptr) return 0;
      uint16_t part = r->partition;
      if (part == p::kAnyPartition) {
        // Prefer a partition this worker owns (no hand-off); rotate among them.
        const uint32_t n = static_cast<uint32_t>(q->partition_worker.size());
        part = static_cast<uint16_t>(receive_rr_++ % n);
        for (uint32_t i = 0; i < n; ++i) {
          const uint16_t cand = static_cast<uint16_t>((part + i) % n);
          if (q->partition_worker[cand] == self) {
            part = cand;
            break;
          }
        }
        route->any_partition = part;
      }
      return Bit(OwnerOf(*q, part, self));
    }
    case p::FrameType::kFetch: {
      auto r = p::DecodeFetch(f);
      const QueueInfo* q = table.Find(r->queue_id);
      return q == nullptr ? 0 : Bit(OwnerOf(*q, r->partition, self));
    }
    case p::FrameType::kSubscribe: {
      auto r = p::DecodeSubscribe(f);
      const QueueInfo* q = table.Find(r->queue_id);
      if (q == nullptr) return 0;
      if (r->partition != p::kAnyPartition) return Bit(OwnerOf(*q, r->partition, self));
      for (uint16_t w : q->partition_worker) owners |= Bit(w);
      return owners;
    }
    case p::FrameType::kDelete:
    case p::FrameType::kNack:
    case p::FrameType::kExtend: {
      auto ops = p::DecodeReceiptOps(f);
      for (const p::ReceiptOp& op : ops->ops) {
        const QueueInfo* q = table.Find(op.queue_id);
        if (q != nullptr) owners |= Bit(OwnerOf(*q, op.partition, self));
      }
      return owners;
    }
    case p::FrameType::kJoinGroup: {  // consumer groups: the coordinator, partition 0's owner
      auto r = p::DecodeJoinGroup(f);
      const QueueInfo* q = table.Find(r->queue_id);
      return q == nullptr ? 0 : Bit(OwnerOf(*q, 0, self));
    }
    case p::FrameType::kCommit: {
      auto r = p::DecodeCommit(f);
      const QueueInfo* q = table.Find(r->prefix.queue_id);
      return q == nullptr ? 0 : Bit(OwnerOf(*q, 0, self));
    }
    case p::FrameType::kOpenInbox:  // request/reply inboxes: the worker of shard id % shards
    case p::FrameType::kReply: {
      const uint64_t id = f.header.type == p::FrameType::kOpenInbox
                              ? p::DecodeOpenInbox(f)->inbox_id
                              : p::DecodeReply(f)->inbox_id;
      return Bit(table.WorkerOfShard(static_cast<uint32_t>(id % table.shard_count())));
    }
    case p::FrameType::kCredit:
    case p::FrameType::kNak:
    case p::FrameType::kUnsubscribe:
      // These name a subscription, not a queue: every worker checks whether it holds it.
      return all_workers();
    default:
      return 0;  // server-to-client types: the frontend answers UNKNOWN_TYPE
  }
}

void FrameHandler::AnswerHeartbeat(const p::FrameView& f, const Endpoint& from) {
  auto hb = p::DecodeHeartbeat(f);
  const uint64_t now = worker_.NowNs();
  if (hb->cookie != 0) address_check_.Verify(from.w0, f.header.client_id, hb->cookie, now);
  p::Heartbeat reply;
  reply.cookie = address_check_.Cookie(from.w0, f.header.client_id, now);
  reply.timestamp_ns = now;
  reply.interval_ms = 1000;
  ReplyBuffer buf = Acquire(from, f.bytes.size());
  if (!buf.ok()) return;
  auto n = p::EncodeHeartbeat(buf.bytes, {f.header.client_id, f.header.request_id, 0}, reply);
  if (n) Send(buf, *n); else Abandon(buf);
}

void FrameHandler::AnswerLookup(const p::FrameView& f, const Endpoint& from) {
  auto req = p::DecodeLookup(f);
  const QueueInfo* q = worker_.table().FindByName(req->name);
  if (q == nullptr) {
    AnswerError(f.header, static_cast<uint8_t>(f.header.type), Errc::kUnknownQueue,
                std::string("no queue named '").append(req->name).append("'"), from,
                f.bytes.size());
    return;
  }
  p::LookupReply reply;
  reply.queue_id = q->id;
  reply.partitions = static_cast<uint16_t>(q->partition_worker.size());
  reply.queue_type = q->is_stream() ? p::QueueType::kStream : p::QueueType::kWorkQueue;
  reply.max_message_bytes = q->config.max_message_bytes;
  ReplyBuffer buf = Acquire(from, f.bytes.size());
  if (!buf.ok()) return;
  auto n = p::EncodeLookupReply(buf.bytes, {f.header.client_id, f.header.request_id, 0}, reply);
  if (n) Send(buf, *n); else Abandon(buf);
}

void FrameHandler::AnswerError(const p::FrameHeader& h, uint8_t raw_type, Errc errc,
                               std::string_view detail, const Endpoint& to,
                               size_t request_bytes) {
  p::ErrorReply e;
  e.errc = errc;
  e.request_type = raw_type;
  e.detail = detail;
  if (errc == Errc::kThrottled) e.retry_after_ms = 1;
  // Amplification rule: never more bytes than the request carried.
  ReplyBuffer buf = Acquire(to, request_bytes);
  if (!buf.ok()) return;
  auto n = p::EncodeErrorFrame(buf.bytes, {h.client_id, h.request_id, 0}, e);
  if (n) {
    ++worker_.mutable_counters().error_replies;
    Send(buf, *n);
  } else {
    Abandon(buf);
  }
}

void FrameHandler::AnswerMalformed(std::span<const std::byte> datagram, p::DecodeError e,
                                   const Endpoint& to) {
  // Garbage without our magic is not a sluice client: say nothing.
  if (datagram.size() < p::kHeaderBytes || p::le::U32(datagram.data()) != p::kMagic) return;
  p::FrameHeader h;
  h.client_id = p::le::U64(datagram.data() + 16);
  h.request_id = p::le::U64(datagram.data() + 24);
  AnswerError(h, p::le::U8(datagram.data() + 5), p::ToErrc(e), p::DecodeErrorName(e), to,
              datagram.size());
}

const FrameHandler::Route* FrameHandler::RouteTo(const Endpoint& to) {
  const uint64_t h = (to.w0 ^ to.w1) * 0x9E3779B97F4A7C15ull;
  Route& r = routes_[h >> (64 - std::countr_zero(kRoutes))];
  if (r.to == to) return &r;
  return BuildRoute(r, to);
}

const FrameHandler::Route* FrameHandler::BuildRoute(Route& r, const Endpoint& to) {
  const Peer peer = Peer::FromWords(to.w0, to.w1);
  const PortRuntime* port = PortById(peer.port_id);
  SLUICE_ASSERT(port != nullptr);
  // One datagram, no IP fragments: a reply must fit the port's MTU (and one mbuf: every mbuf of
  // the pool has the same room, RTE_PKTMBUF_HEADROOM in front).
  const size_t mbuf_room = rte_pktmbuf_data_room_size(shared_.pool) - RTE_PKTMBUF_HEADROOM;
  const size_t room = std::min<size_t>(mbuf_room, size_t{port->conf->mtu} + RTE_ETHER_HDR_LEN);
  SLUICE_ASSERT(room > kDatagramHeaderBytes);
  r.to = to;
  r.port = port;
  r.room = static_cast<uint32_t>(room - kDatagramHeaderBytes);
  r.headers = MakeDatagramTemplate(port->addr, peer);
  return &r;
}

ReplyBuffer FrameHandler::Acquire(const Endpoint& to, size_t max_bytes) {
  uint32_t h = 0;
  while (h < replies_.size() && replies_[h].m != nullptr) ++h;
  SLUICE_ASSERT(h < replies_.size());  // the frontend holds at most kMaxOutstanding
  const Route* route = RouteTo(to);
  rte_mbuf* m = worker_.AllocReply();
  if (m == nullptr) {
    worker_.mutable_counters().Drop(DropReason::kNoMbuf);
    return {};
  }
  SLUICE_ASSERT(rte_pktmbuf_tailroom(m) >= route->room + kDatagramHeaderBytes);
  CopyDatagramHeaders(m, route->headers);
  PendingReply& r = replies_[h];
  r.m = m;
  r.ip_sum = route->headers.ip_sum;
  r.port_id = route->port->addr.port_id;
  const size_t cap = std::min<size_t>(max_bytes, route->room);
  return {{rte_pktmbuf_mtod_offset(m, std::byte*, kDatagramHeaderBytes), cap}, h};
}

void FrameHandler::Send(const ReplyBuffer& buffer, size_t bytes) {
  PendingReply& r = replies_[buffer.handle];
  SLUICE_ASSERT(r.m != nullptr && bytes <= buffer.bytes.size());
  FinishDatagramHeaders(r.m, r.ip_sum, static_cast<uint16_t>(bytes));
  worker_.Transmit(r.port_id, r.m);
  r.m = nullptr;
}

bool FrameHandler::HandOffRecord(uint16_t worker, uint32_t queue,
                                 std::span<const std::byte> record) {
  rte_mbuf* m = rte_pktmbuf_alloc(shared_.pool);
  if (m == nullptr) {
    worker_.mutable_counters().Drop(DropReason::kNoMbuf);
    return false;
  }
  const size_t frame_len = p::kHeaderBytes + p::kProducePrefixBytes + record.size();
  if (kDatagramHeaderBytes + frame_len > rte_pktmbuf_tailroom(m)) {
    rte_pktmbuf_free(m);  // larger than one mbuf: cannot travel this way
    return false;
  }
  // A PRODUCE frame behind zeroed Ethernet/IP/UDP headers: the owner sees the internal endpoint
  // (address 0, port 0 on port 0) and sends no reply.
  auto* base = rte_pktmbuf_mtod(m, std::byte*);
  std::memset(base, 0, kDatagramHeaderBytes);
  std::byte* f = base + kDatagramHeaderBytes;
  p::le::Store<uint32_t>(f, p::kMagic);
  p::le::Store<uint8_t>(f + 4, p::kVersion);
  p::le::Store<uint8_t>(f + 5, static_cast<uint8_t>(p::FrameType::kProduce));
  p::le::Store<uint16_t>(f + 6, 0);
  p::le::Store<uint32_t>(f + 8, static_cast<uint32_t>(frame_len));
  p::le::Store<uint32_t>(f + 12, 1);
  p::le::Store<uint64_t>(f + 16, 0);
  p::le::Store<uint64_t>(f + 24, 0);
  p::le::Store<uint32_t>(f + 32, queue);
  p::le::Store<uint32_t>(f + 36, 0);
  p::le::Store<uint64_t>(f + 40, 0);  // producer 0: not idempotent
  std::memcpy(f + p::kHeaderBytes + p::kProducePrefixBytes, record.data(), record.size());
  m->data_len = m->pkt_len = static_cast<uint32_t>(kDatagramHeaderBytes + frame_len);
  m->l2_len = sizeof(rte_ether_hdr);
  m->l3_len = sizeof(rte_ipv4_hdr);
  m->l4_len = sizeof(rte_udp_hdr);
  m->port = 0;
  m->hash.usr = 0;
  SLUICE_ASSERT(p::DecodeFrame({f, frame_len}).has_value());
  if (!worker_.HandOff(worker, m)) {
    rte_pktmbuf_free(m);
    return false;
  }
  return true;
}

void FrameHandler::Abandon(const ReplyBuffer& buffer) {
  PendingReply& r = replies_[buffer.handle];
  if (r.m != nullptr) rte_pktmbuf_free(r.m);
  r.m = nullptr;
}

}  // namespace sluice::dataplane
