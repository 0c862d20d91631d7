#include "client/connection.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "client/errors.h"
#include "protocol/assert.h"

namespace sluice::client {
namespace p = protocol;

namespace {

constexpr size_t kRxSlotBytes = 65536;  // any UDP datagram fits
constexpr int kMaxRxRounds = 8;         // recvmmsg calls per Poll pass (bounded drain)

uint64_t RandomNonZero() {
  std::random_device rd;
  uint64_t v = 0;
  while (v == 0) v = (uint64_t{rd()} << 32) | rd();
  return v;
}

uint64_t WallNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Request types whose replies may be larger than the request: the server serves them only to a
// verified source (docs/protocol.md, amplification rule).
bool NeedsVerifiedSource(uint8_t type) {
  switch (static_cast<p::FrameType>(type)) {
    case p::FrameType::kReceive:
    case p::FrameType::kFetch:
    case p::FrameType::kSubscribe:
    case p::FrameType::kCredit:
    case p::FrameType::kNak: return true;
    default: return false;
  }
}

}  // namespace

MonoNs NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string DefaultServer() {
  const char* env = std::getenv("SLUICE_SERVER");
  if (env != nullptr && env[0] != '\0') return env;
  return "198.18.0.1:7411";
}

absl::StatusOr<sockaddr_in> ResolveServer(std::string_view server) {
  const size_t colon = server.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("server address '", Sv(server), "' is not host:port"));
  }
  const std::string host(server.substr(0, colon));
  uint32_t port = 0;
  if (!absl::SimpleAtoi(Sv(server.substr(colon + 1)), &port) || port == 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("server address '", Sv(server), "': bad port"));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve server '", host, "': ", gai_strerror(rc)));
  }
  addr.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  return addr;
}

// ---- pending calls ------------------------------------------------------------------------------

struct Connection::PendingCall {
  uint64_t request_id = 0;
  uint8_t type = 0;
  std::vector<std::byte> frame;
  ReplyHandler handler;
  MonoNs timeout_ns = 0;   // current attempt's timeout (doubles)
  MonoNs wait_ns = 0;      // server-side wait added to every attempt
  MonoNs deadline = 0;     // next retransmission, or failure when attempts are used up
  int attempts = 0;        // sends so far
  int max_attempts = 0;
  bool replied = false;    // a frame of a multi-frame reply came: waiting for the rest
};

Connection::Connection(ConnectionOptions options) : options_(std::move(options)) {
  options_.max_frame_bytes =
      std::clamp<size_t>(options_.max_frame_bytes, p::kMinReplyFrameBytes, p::kMaxFrameBytes);
  options_.batch_datagrams = std::clamp(options_.batch_datagrams, 1, 1024);
  options_.max_attempts = std::max(options_.max_attempts, 1);
  servers_ = absl::StrSplit(options_.server, ',', absl::SkipWhitespace());
  for (std::string& srv : servers_) srv = std::string(absl::StripAsciiWhitespace(srv));
  if (servers_.empty()) servers_.push_back(options_.server);
  server_ = servers_[0];
  client_id_ = options_.client_id != 0 ? options_.client_id : RandomNonZero();
  next_request_id_ = (RandomNonZero() & 0xFFFFFFFF) + 1;
  const size_t batch = static_cast<size_t>(options_.batch_datagrams);
  tx_bufs_.resize(batch);
  tx_lens_.resize(batch);
  rx_slot_bytes_ = kRxSlotBytes;
  rx_buf_.resize(batch * rx_slot_bytes_);
  scratch_.resize(p::kMaxFrameBytes);
}

Connection::~Connection() {
  // Handlers are dropped without being called: their owners (endpoints) are gone already.
  calls_.clear();
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Connect(ConnectionOptions options) {
  std::unique_ptr<Connection> c(new Connection(std::move(options)));
  // The first server of the list that answers the handshake.
  absl::Status first;
  for (size_t i = 0; i < c->servers_.size(); ++i) {
    c->server_index_ = i;
    c->server_ = c->servers_[i];
    absl::Status s = c->fd_ < 0 ? c->Open() : absl::OkStatus();
    if (s.ok() && i > 0) {
      absl::StatusOr<sockaddr_in> addr = ResolveServer(c->server_);
      s = addr.ok() ? absl::OkStatus() : addr.status();
      c->handshaking_ = true;  // Handshake() sends the first heartbeat itself
      const bool switched = s.ok() && c->SwitchTo(*addr);
      c->handshaking_ = false;
      if (s.ok() && !switched) {
        s = absl::UnavailableError(absl::StrCat("connect to ", c->server_, ": ",
                                                std::strerror(c->last_socket_errno_)));
      }
    }
    if (s.ok()) s = c->Handshake();
    if (s.ok()) {
      c->last_rx_ = NowNs();
      return c;
    }
    if (first.ok()) first = s;
    if (!absl::IsUnavailable(s) && !absl::IsDeadlineExceeded(s)) return s;
  }
  return first;
}

absl::Status Connection::Open() {
  absl::StatusOr<sockaddr_in> addr = ResolveServer(server_);
  if (!addr.ok()) return addr.status();
  addr_ = *addr;
  fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (options_.socket_buffer_bytes > 0) {
    int v = options_.socket_buffer_bytes;
    // A RECEIVE or FETCH answer can be a burst of hundreds of datagrams: a buffer capped at the
    // default net.core.rmem_max (208 KiB) drops fragments. With CAP_NET_ADMIN the *FORCE options
    // lift the cap; without, best effort.
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) != 0) {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
    }
    if (setsockopt(fd_, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) != 0) {
      setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
    }
  }
  if (connect(fd_, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach server ", server_, ": connect: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// HEARTBEAT(cookie 0) -> HEARTBEAT(cookie) -> HEARTBEAT(echo) -> reply: the source is verified.
absl::Status Connection::Handshake() {
  const MonoNs start = NowNs();
  const MonoNs deadline = start + ToNs(options_.connect_timeout);
  handshaking_ = true;
  for (int phase = 0; phase < 2; ++phase) {
    absl::Status result = absl::UnknownError("pending");
    bool done = false;
    const uint64_t rid = NextRequestId();
    p::Heartbeat hb{phase == 0 ? 0 : cookie_, WallNs(),
                    static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval))};
    auto n = p::EncodeHeartbeat(scratch_, Ids(rid), hb);
    SLUICE_ASSERT(n.has_value());
    if (phase == 1) last_echo_request_id_ = rid;
    CallOptions co;
    co.max_attempts = 1000;  // bounded by the connect deadline below
    Call(std::span<const std::byte>(scratch_.data(), *n), co,
         [&](const p::FrameView* f, const absl::Status& s) {
           done = true;
           if (f == nullptr) {
             result = s;
           } else if (f->header.type == p::FrameType::kHeartbeat) {
             result = cookie_ != 0 ? absl::OkStatus()
                                   : absl::UnavailableError("server sent a HEARTBEAT without cookie");
           } else if (f->header.type == p::FrameType::kError) {
             result = StatusFromErrorFrame(*f, absl::StrCat("handshake with ", server_));
           } else {
             result = absl::InternalError(absl::StrCat(
                 "unexpected ", Sv(p::FrameTypeName(f->header.type)), " reply to HEARTBEAT"));
           }
           return true;
         });
    (void)PollUntil([&] { return done; }, absl::Nanoseconds(deadline - NowNs()));
    Cancel(rid);
    if (!done || !result.ok()) {
      handshaking_ = false;
      if (!done || absl::IsDeadlineExceeded(result)) {
        std::string why = last_socket_errno_ != 0
                              ? absl::StrCat(" (", std::strerror(last_socket_errno_), ")")
                              : std::string();
        return absl::UnavailableError(absl::StrCat(
            "cannot reach server ", server_, ": no HEARTBEAT reply within ",
            absl::FormatDuration(options_.connect_timeout), why));
      }
      return result;
    }
  }
  verified_ = true;
  handshaking_ = false;
  next_heartbeat_ = NowNs() + ToNs(options_.heartbeat_interval);
  return absl::OkStatus();
}

// ---- transmit -----------------------------------------------------------------------------------

void Connection::Send(std::span<const std::byte> frame) {
  SLUICE_ASSERT(frame.size() <= p::kMaxFrameBytes);
  if (tx_count_ == tx_bufs_.size()) FlushTx();
  if (tx_count_ == tx_bufs_.size()) {
    // The socket buffer is full: wait a little for room (natural back-pressure on a sender).
    pollfd pfd{fd_, POLLOUT, 0};
    poll(&pfd, 1, 10);
    FlushTx();
  }
  if (tx_count_ == tx_bufs_.size()) {
    ++stats_.send_dropped;  // retransmission covers it
    return;
  }
  std::vector<std::byte>& b = tx_bufs_[tx_count_];
  if (b.size() < frame.size()) b.resize(frame.size());
  std::memcpy(b.data(), frame.data(), frame.size());
  tx_lens_[tx_count_] = frame.size();
  ++tx_count_;
}

void Connection::FlushTx() {
  while (tx_count_ > 0) {
    mmsghdr msgs[64];
    iovec iovs[64];
    const size_t n = std::min<size_t>(tx_count_, 64);
    for (size_t i = 0; i < n; ++i) {
      iovs[i] = iovec{tx_bufs_[i].data(), tx_lens_[i]};
      msgs[i] = mmsghdr{};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int r = sendmmsg(fd_, msgs, static_cast<unsigned>(n), MSG_DONTWAIT);
    size_t sent = 0;
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return;  // keep for later
      if (errno == EINTR) continue;
      // ECONNREFUSED (an earlier datagram drew ICMP port unreachable) and the like: this
      // datagram is lost; retransmission timers cover it.
      last_socket_errno_ = errno;
      ++stats_.send_dropped;
      sent = 1;
    } else {
      sent = static_cast<size_t>(r);
      for (size_t i = 0; i < sent; ++i) stats_.bytes_sent += tx_lens_[i];
      stats_.datagrams_sent += sent;
    }
    // Shift the unsent rest to the front (swap buffers, no copy).
    for (size_t i = sent; i < tx_count_; ++i) {
      std::swap(tx_bufs_[i - sent], tx_bufs_[i]);
      tx_lens_[i - sent] = tx_lens_[i];
    }
    tx_count_ -= sent;
  }
}

void Connection::SendHeartbeat(uint64_t request_id) {
  p::Heartbeat hb{cookie_, WallNs(),
                  static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval))};
  std::byte buf[p::kHeaderBytes + p::kHeartbeatBytes];
  auto n = p::EncodeHeartbeat(buf, Ids(request_id), hb);
  SLUICE_ASSERT(n.has_value());
  if (cookie_ != 0) last_echo_request_id_ = request_id;
  ++stats_.heartbeats_sent;
  Send(std::span<const std::byte>(buf, *n));
}

// ---- calls --------------------------------------------------------------------------------------

void Connection::Call(std::span<const std::byte> frame, const CallOptions& options,
                      ReplyHandler on_reply) {
  auto h = p::DecodeHeader(frame);
  SLUICE_ASSERT(h.has_value());
  std::unique_ptr<PendingCall> call;
  if (!call_pool_.empty()) {
    call = std::move(call_pool_.back());
    call_pool_.pop_back();
  } else {
    call = std::make_unique<PendingCall>();
  }
  call->request_id = h->request_id;
  call->type = static_cast<uint8_t>(h->type);
  call->frame.assign(frame.begin(), frame.end());
  call->handler = std::move(on_reply);
  const absl::Duration first =
      options.attempt_timeout > absl::ZeroDuration() ? options.attempt_timeout
                                                     : options_.retransmit_interval;
  call->timeout_ns = std::max<MonoNs>(ToNs(first), 1'000'000);
  call->wait_ns = std::max<MonoNs>(ToNs(options.server_wait), 0);
  call->max_attempts = options.max_attempts > 0 ? options.max_attempts : options_.max_attempts;
  call->attempts = 1;
  call->replied = false;
  call->deadline = NowNs() + call->timeout_ns + call->wait_ns;
  Send(frame);
  calls_[call->request_id] = std::move(call);
}

void Connection::Cancel(uint64_t request_id) {
  auto it = calls_.find(request_id);
  if (it == calls_.end()) return;
  std::unique_ptr<PendingCall> call = std::move(it->second);
  calls_.erase(it);
  call->handler = nullptr;
  call_pool_.push_back(std::move(call));
}

void Connection::FailCall(uint64_t request_id, const absl::Status& s) {
  auto it = calls_.find(request_id);
  if (it == calls_.end()) return;
  std::unique_ptr<PendingCall> call = std::move(it->second);
  calls_.erase(it);
  call->handler(nullptr, s);
  call->handler = nullptr;
  call_pool_.push_back(std::move(call));
}

void Connection::DispatchCall(PendingCall* call, const p::FrameView& f) {
  const uint64_t rid = call->request_id;
  if (f.header.type == p::FrameType::kError && call->attempts < call->max_attempts) {
    auto e = p::DecodeErrorFrame(f);
    if (e) {
      const bool unverified =
          e->errc == Errc::kUnverifiedSource ||
          (e->errc == Errc::kUnauthorized && NeedsVerifiedSource(call->type));
      const bool redirect = e->errc == Errc::kNotPrimary && options_.follow_redirects &&
                            e->primary_ipv4 != 0;
      if (unverified || redirect || e->errc == Errc::kThrottled) {
        OnServerError(*e);
        // Retry soon: after the handshake reply (a round trip) or the server's back-off.
        MonoNs delay = e->errc == Errc::kThrottled
                           ? std::max<MonoNs>(int64_t{e->retry_after_ms} * 1'000'000,
                                              call->timeout_ns / 4)
                           : std::min<MonoNs>(call->timeout_ns / 4, 50'000'000);
        call->deadline = NowNs() + delay;
        call->replied = false;
        return;
      }
    }
  }
  const bool done = call->handler(&f, absl::OkStatus());
  auto it = calls_.find(rid);  // the handler may have cancelled or re-issued it
  if (it == calls_.end() || it->second.get() != call) return;
  if (done) {
    std::unique_ptr<PendingCall> owned = std::move(it->second);
    calls_.erase(it);
    owned->handler = nullptr;
    call_pool_.push_back(std::move(owned));
  } else {
    call->replied = true;  // more frames to come: stop retransmitting, bound the wait
    call->deadline = NowNs() + call->timeout_ns + call->wait_ns;
  }
}

MonoNs Connection::RunCallTimers(MonoNs now) {
  due_.clear();
  MonoNs next = kNever;
  for (const auto& [id, call] : calls_) {
    if (call->deadline <= now) {
      due_.push_back(id);
    } else {
      next = std::min(next, call->deadline);
    }
  }
  for (uint64_t id : due_) {
    auto it = calls_.find(id);
    if (it == calls_.end()) continue;
    PendingCall* call = it->second.get();
    if (call->replied) {
      FailCall(id, absl::DeadlineExceededError(
                       "the server's multi-frame reply stopped before its last frame"));
      continue;
    }
    if (call->attempts >= call->max_attempts) {
      FailCall(id, absl::DeadlineExceededError(absl::StrCat(
                       "no reply from ", server_, " to ",
                       Sv(p::FrameTypeName(static_cast<p::FrameType>(call->type))), " after ",
                       call->attempts, " attempts")));
      continue;
    }
    ++call->attempts;
    ++stats_.retransmits;
    call->timeout_ns = std::min(call->timeout_ns * 2, ToNs(options_.max_retransmit_interval));
    call->deadline = now + call->timeout_ns + call->wait_ns;
    Send(call->frame);
    next = std::min(next, call->deadline);
  }
  return next;
}

// ---- receive and dispatch -----------------------------------------------------------------------

int Connection::ReceiveBatch() {
  const size_t batch = tx_bufs_.size();
  std::vector<mmsghdr>& msgs = rx_msgs_;
  std::vector<iovec>& iovs = rx_iovs_;
  msgs.resize(batch);
  iovs.resize(batch);
  int total = 0;
  for (int round = 0; round < kMaxRxRounds; ++round) {
    for (size_t i = 0; i < batch; ++i) {
      iovs[i] = iovec{rx_buf_.data() + i * rx_slot_bytes_, rx_slot_bytes_};
      msgs[i] = mmsghdr{};
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int r = recvmmsg(fd_, msgs.data(), static_cast<unsigned>(batch), MSG_DONTWAIT, nullptr);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR) continue;
      last_socket_errno_ = errno;  // ECONNREFUSED: ICMP port unreachable from the server
      if (errno == ECONNREFUSED) continue;
      break;
    }
    const MonoNs now = NowNs();
    for (int i = 0; i < r; ++i) {
      const size_t len = msgs[i].msg_len;
      ++stats_.datagrams_received;
      stats_.bytes_received += len;
      if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0) {
        ++stats_.malformed_received;
        continue;
      }
      last_rx_ = now;
      Dispatch(std::span<const std::byte>(rx_buf_.data() + i * rx_slot_bytes_, len));
    }
    total += r;
    if (static_cast<size_t>(r) < batch) break;
  }
  return total;
}

void Connection::Dispatch(std::span<const std::byte> datagram) {
  auto f = p::DecodeFrame(datagram);
  if (!f || f->header.client_id != client_id_) {
    ++stats_.malformed_received;
    return;
  }
  const p::FrameHeader& h = f->header;
  switch (h.type) {
    case p::FrameType::kHeartbeat:
      OnHeartbeat(*f);
      break;
    case p::FrameType::kAck: {
      if (f->body.size() < p::kAckPrefixBytes) break;
      auto it = ack_routes_.find(p::le::U64(f->body.data() + 8));
      if (it == ack_routes_.end()) {
        ++stats_.unmatched;
      } else {
        it->second->OnFrame(*f);
      }
      return;
    }
    case p::FrameType::kDeliver: {
      if (f->body.size() < p::kDeliverPrefixBytes) break;
      auto it = deliver_routes_.find(p::le::U64(f->body.data()));
      if (it == deliver_routes_.end()) {
        ++stats_.unmatched;
      } else {
        it->second->OnFrame(*f);
      }
      return;
    }
    default:
      break;
  }
  if (auto it = calls_.find(h.request_id); it != calls_.end()) {
    DispatchCall(it->second.get(), *f);
    return;
  }
  if (auto it = routes_.find(h.request_id); it != routes_.end()) {
    it->second->OnFrame(*f);
    return;
  }
  if (h.type != p::FrameType::kHeartbeat) ++stats_.unmatched;
}

void Connection::OnHeartbeat(const p::FrameView& f) {
  auto hb = p::DecodeHeartbeat(f);
  if (!hb) {
    ++stats_.malformed_received;
    return;
  }
  if (f.header.request_id == last_echo_request_id_ && hb->cookie == cookie_) verified_ = true;
  if (hb->cookie != 0 && hb->cookie != cookie_) {
    // First cookie, or the server rotated it: echo the latest at once (not during Connect(),
    // whose second phase does exactly that).
    cookie_ = hb->cookie;
    ++stats_.cookie_changes;
    if (!handshaking_) {
      verified_ = false;
      SendHeartbeat(NextRequestId());
    }
  }
}

void Connection::OnServerError(const p::ErrorReply& e) {
  if (e.errc == Errc::kUnverifiedSource || e.errc == Errc::kUnauthorized) {
    ++stats_.unverified_errors;
    verified_ = false;
    SendHeartbeat(NextRequestId());  // echoes the cookie, or asks for one (cookie 0)
  } else if (e.errc == Errc::kNotPrimary && options_.follow_redirects && e.primary_ipv4 != 0) {
    Redirect(e.primary_ipv4, e.primary_port);
  } else if (e.errc == Errc::kNotPrimary && options_.follow_redirects && servers_.size() > 1) {
    // Not the primary, and it does not know where the primary is (a standby that has not heard
    // one, a deposed primary): the next server of the list, at most once per failover_after.
    const MonoNs now = NowNs();
    if (now - last_failover_ >= ToNs(options_.failover_after)) {
      last_failover_ = now;
      server_index_ = (server_index_ + 1) % servers_.size();
      absl::StatusOr<sockaddr_in> to = ResolveServer(servers_[server_index_]);
      if (to.ok() && SwitchTo(*to)) ++stats_.failovers;
    }
  }
}

void Connection::Redirect(uint32_t ipv4, uint16_t port) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(ipv4);
  to.sin_port = htons(port != 0 ? port : ntohs(addr_.sin_port));
  if (to.sin_addr.s_addr == addr_.sin_addr.s_addr && to.sin_port == addr_.sin_port) return;
  // Not back to a server just left for its silence: a standby names the dead primary until it
  // is promoted itself, and answers the request then.
  if (NowNs() < silent_until_ && to.sin_addr.s_addr == silent_addr_.sin_addr.s_addr &&
      to.sin_port == silent_addr_.sin_port) {
    return;
  }
  if (SwitchTo(to)) ++stats_.redirects;
}

// Points the socket at `to` and verifies the source again (a new server, a new cookie).
bool Connection::SwitchTo(const sockaddr_in& to) {
  FlushTx();
  // Dissolve the old association first: it fixed the socket's source address, which may have
  // gone with the old server's route (a failed box's interface) and would make the new server
  // unreachable (ENETUNREACH). The kernel picks a source for the new server.
  sockaddr unspec{};
  unspec.sa_family = AF_UNSPEC;
  (void)connect(fd_, &unspec, sizeof unspec);
  if (connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
    last_socket_errno_ = errno;
    return false;
  }
  addr_ = to;
  char ip[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &to.sin_addr, ip, sizeof ip);
  server_ = absl::StrCat(ip, ":", ntohs(to.sin_port));
  cookie_ = 0;
  verified_ = false;
  if (!handshaking_) SendHeartbeat(NextRequestId());
  return true;
}

// The server in use has answered nothing (not even heartbeats) for failover_after: the next
// server of the list. Requests in flight are retransmitted there by their own timers.
void Connection::FailOver(MonoNs now) {
  const MonoNs after = ToNs(options_.failover_after);
  if (servers_.size() < 2 || handshaking_ || now - last_rx_ < after ||
      now - last_failover_ < after) {
    return;
  }
  last_failover_ = now;
  silent_addr_ = addr_;
  silent_until_ = now + 2 * after;
  server_index_ = (server_index_ + 1) % servers_.size();
  absl::StatusOr<sockaddr_in> to = ResolveServer(servers_[server_index_]);
  if (!to.ok() || !SwitchTo(*to)) return;
  ++stats_.failovers;
}

// ---- the loop -----------------------------------------------------------------------------------

void Connection::AddEndpoint(Endpoint* e) {
  if (std::find(endpoints_.begin(), endpoints_.end(), e) == endpoints_.end()) endpoints_.push_back(e);
}

void Connection::RemoveEndpoint(Endpoint* e) {
  endpoints_.erase(std::remove(endpoints_.begin(), endpoints_.end(), e), endpoints_.end());
}

MonoNs Connection::RunTimers(MonoNs now) {
  FailOver(now);
  MonoNs next = RunCallTimers(now);
  if (!handshaking_ && now >= next_heartbeat_) {
    SendHeartbeat(NextRequestId());
    next_heartbeat_ = now + ToNs(options_.heartbeat_interval);
  }
  if (!handshaking_) next = std::min(next, next_heartbeat_);
  for (size_t i = 0; i < endpoints_.size(); ++i) next = std::min(next, endpoints_[i]->OnTimer(now));
  return next;
}

absl::Status Connection::Poll(absl::Duration timeout) {
  SLUICE_ASSERT(!in_poll_);  // Poll() from inside a callback is a programmer error
  in_poll_ = true;
  MonoNs now = NowNs();
  const MonoNs span = std::max<MonoNs>(ToNs(timeout), 0);
  const MonoNs until = span >= kNever - now ? kNever : now + span;
  MonoNs next = RunTimers(now);
  FlushTx();
  // Datagrams still queued (socket buffer full): wake when it drains.
  pollfd pfd{fd_, static_cast<short>(POLLIN | (tx_count_ > 0 ? POLLOUT : 0)), 0};
  const MonoNs wait = std::max<MonoNs>(0, std::min(next, until) - now);
  timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
  const int r = ppoll(&pfd, 1, &ts, nullptr);
  absl::Status status;
  if (r < 0 && errno != EINTR) {
    status = absl::InternalError(absl::StrCat("ppoll: ", std::strerror(errno)));
  } else if (r > 0 && (pfd.revents & (POLLIN | POLLERR)) != 0) {
    ReceiveBatch();
  }
  now = NowNs();
  RunTimers(now);
  FlushTx();
  in_poll_ = false;
  return status;
}

absl::Status Connection::PollUntil(absl::FunctionRef<bool()> done, absl::Duration timeout) {
  const MonoNs now0 = NowNs();
  const MonoNs span = std::max<MonoNs>(ToNs(timeout), 0);  // saturates for InfiniteDuration
  const MonoNs until = span >= kNever - now0 ? kNever : now0 + span;
  while (!done()) {
    const MonoNs now = NowNs();
    if (now >= until) return absl::DeadlineExceededError("timed out");
    if (absl::Status s = Poll(absl::Nanoseconds(until - now)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// ---- simple requests ----------------------------------------------------------------------------

absl::StatusOr<QueueInfo> Connection::Lookup(std::string_view queue, absl::Duration timeout) {
  if (auto it = lookups_.find(std::string(queue)); it != lookups_.end()) return it->second;
  const std::string ctx = absl::StrCat("lookup '", Sv(queue), "'");
  if (queue.empty() || queue.size() > 255) {
    return absl::InvalidArgumentError(absl::StrCat(ctx, ": a queue name is 1..255 bytes"));
  }
  const uint64_t rid = NextRequestId();
  auto n = p::EncodeLookup(scratch_, Ids(rid), p::LookupRequest{queue});
  if (!n) return absl::InvalidArgumentError(absl::StrCat(ctx, ": ", Sv(p::EncodeErrorName(n.error()))));
  absl::StatusOr<QueueInfo> result = absl::UnknownError("pending");
  bool done = false;
  Call(std::span<const std::byte>(scratch_.data(), *n), {}, [&](const p::FrameView* f, const absl::Status& s) {
    done = true;
    if (f == nullptr) {
      result = WithContext(s, ctx);
    } else if (f->header.type == p::FrameType::kLookupReply) {
      auto r = p::DecodeLookupReply(*f);
      if (!r) {
        result = absl::InternalError(absl::StrCat(ctx, ": malformed LOOKUP_REPLY"));
      } else {
        result = QueueInfo{std::string(queue), r->queue_id, r->partitions, r->queue_type,
                           r->max_message_bytes};
      }
    } else if (f->header.type == p::FrameType::kError) {
      result = StatusFromErrorFrame(*f, ctx);
    } else {
      result = absl::InternalError(absl::StrCat(ctx, ": unexpected ",
                                                Sv(p::FrameTypeName(f->header.type)), " reply"));
    }
    return true;
  });
  (void)PollUntil([&] { return done; }, timeout);
  Cancel(rid);
  if (!done) {
    return absl::DeadlineExceededError(
        absl::StrCat(ctx, ": no reply from ", server_, " within ", absl::FormatDuration(timeout)));
  }
  if (result.ok()) lookups_[std::string(queue)] = *result;
  return result;
}

absl::StatusOr<absl::Duration> Connection::Ping(absl::Duration timeout) {
  const uint64_t rid = NextRequestId();
  p::Heartbeat hb{cookie_, WallNs(),
                  static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.heartbeat_interval))};
  auto n = p::EncodeHeartbeat(scratch_, Ids(rid), hb);
  SLUICE_ASSERT(n.has_value());
  if (cookie_ != 0) last_echo_request_id_ = rid;
  const MonoNs start = NowNs();
  MonoNs end = 0;
  absl::Status result;
  bool done = false;
  Call(std::span<const std::byte>(scratch_.data(), *n), {}, [&](const p::FrameView* f, const absl::Status& s) {
    done = true;
    end = NowNs();
    if (f == nullptr) {
      result = s;
    } else if (f->header.type != p::FrameType::kHeartbeat) {
      result = StatusFromErrorFrame(*f, "ping");
    }
    return true;
  });
  (void)PollUntil([&] { return done; }, timeout);
  Cancel(rid);
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat("ping ", server_, ": no HEARTBEAT reply within ",
                                                    absl::FormatDuration(timeout)));
  }
  if (!result.ok()) return WithContext(result, absl::StrCat("ping ", server_));
  return absl::Nanoseconds(end - start);
}

}  // namespace sluice::client
