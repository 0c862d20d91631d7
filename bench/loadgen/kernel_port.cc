#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include <rte_cycles.h>

#include "absl/strings/str_format.h"
#include "bench/loadgen/port.h"

namespace sluice::bench {

uint64_t CalibrateTscHz() {
  auto ns = [] {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC_RAW, &t);
    return uint64_t(t.tv_sec) * 1'000'000'000ull + uint64_t(t.tv_nsec);
  };
  const uint64_t n0 = ns(), c0 = rte_rdtsc();
  timespec d{0, 50'000'000};
  while (nanosleep(&d, &d) != 0 && errno == EINTR) {
  }
  const uint64_t n1 = ns(), c1 = rte_rdtsc();
  return static_cast<uint64_t>(static_cast<double>(c1 - c0) * 1e9 / static_cast<double>(n1 - n0));
}

absl::StatusOr<std::unique_ptr<KernelPort>> KernelPort::Open(const Options& o, uint32_t pool) {
  std::unique_ptr<KernelPort> p(new KernelPort());
  p->o_ = &o;
  p->mtu_ = o.mtu;
  p->fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd_ < 0) return absl::InternalError(absl::StrFormat("socket: %s", strerror(errno)));
  // Big socket buffers: a closed loop of 256 frames x 1.5 KB must not drop in the kernel.
  const int bytes = 8 << 20;
  setsockopt(p->fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  setsockopt(p->fd_, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
  setsockopt(p->fd_, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes);
  setsockopt(p->fd_, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(o.local_port);
  if (bind(p->fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    return absl::InternalError(absl::StrFormat("bind to port %u: %s", o.local_port, strerror(errno)));
  }
  sockaddr_in srv{};
  srv.sin_family = AF_INET;
  srv.sin_port = htons(o.server_port);
  if (inet_pton(AF_INET, o.server_ip.c_str(), &srv.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrFormat("bad --server-ip '%s'", o.server_ip));
  }
  if (connect(p->fd_, reinterpret_cast<sockaddr*>(&srv), sizeof srv) != 0) {
    return absl::InternalError(absl::StrFormat("connect to %s:%u: %s", o.server_ip, o.server_port,
                                               strerror(errno)));
  }
  p->bufs_.resize(pool);
  p->free_.reserve(pool);
  for (Buf& b : p->bufs_) p->free_.push_back(&b);
  p->msgs_.resize(64);
  p->iovs_.resize(64);
  p->tsc_hz_ = CalibrateTscHz();
  return p;
}

KernelPort::~KernelPort() {
  if (fd_ >= 0) close(fd_);
}

uint16_t KernelPort::Tx(Buf** b, uint16_t n) {
  n = static_cast<uint16_t>(std::min<size_t>(n, msgs_.size()));
  for (uint16_t i = 0; i < n; ++i) {
    iovs_[i] = {b[i]->data, b[i]->len};
    msgs_[i] = {};
    msgs_[i].msg_hdr.msg_iov = &iovs_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
  }
  int sent = sendmmsg(fd_, msgs_.data(), n, MSG_DONTWAIT);
  if (sent < 0) {
    // EAGAIN: the socket buffer is full, the caller retries. ECONNREFUSED (an ICMP port
    // unreachable from an earlier datagram) and the like: counted, the datagram is dropped like a
    // lost frame (the ack timeout resends).
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
    ++send_errors_;
    sent = 1;
  }
  for (int i = 0; i < sent; ++i) Free(b[i]);
  return static_cast<uint16_t>(sent);
}

uint16_t KernelPort::Rx(Buf** b, uint16_t n) {
  n = static_cast<uint16_t>(std::min<size_t>({n, msgs_.size(), free_.size()}));
  if (n == 0) return 0;
  for (uint16_t i = 0; i < n; ++i) {
    b[i] = free_[free_.size() - 1 - i];
    iovs_[i] = {b[i]->data, sizeof b[i]->data};
    msgs_[i] = {};
    msgs_[i].msg_hdr.msg_iov = &iovs_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
  }
  const int got = recvmmsg(fd_, msgs_.data(), n, MSG_DONTWAIT, nullptr);
  if (got <= 0) return 0;
  for (int i = 0; i < got; ++i) b[i]->len = msgs_[i].msg_len;
  free_.resize(free_.size() - static_cast<size_t>(got));
  return static_cast<uint16_t>(got);
}

absl::Status KernelPort::Exchange(std::span<const std::byte> request,
                                  const std::function<bool(std::span<const std::byte>)>& on_reply) {
  if (request.size() > max_udp_payload()) return absl::InvalidArgumentError("request too large");
  const uint64_t deadline = rte_rdtsc() + static_cast<uint64_t>(o_->connect_timeout_s * tsc_hz_);
  const uint64_t resend = tsc_hz_ / 5;
  uint64_t next_send = 0;
  for (;;) {
    const uint64_t now = rte_rdtsc();
    if (now >= deadline) return absl::NotFoundError("no reply");
    if (now >= next_send) {
      (void)send(fd_, request.data(), request.size(), MSG_DONTWAIT);
      next_send = now + resend;
    }
    Buf* got[16];
    const uint16_t n = Rx(got, 16);
    bool done = false;
    for (uint16_t i = 0; i < n; ++i) {
      if (!done && on_reply(Payload(got[i]))) done = true;
      Free(got[i]);
    }
    if (done) return absl::OkStatus();
    if (n == 0) usleep(100);
  }
}

}  // namespace sluice::bench
