// The two ways the produce loop (produce.cc) reaches the server, behind one small interface that
// the loop is a template over (no virtual call per packet):
//
//   DpdkPort    the memif (or NIC) port of a DPDK Link: buffers are mbufs, the loop writes the
//               Ethernet/IPv4/UDP headers itself (header_bytes() = 42), ARP is answered here.
//   KernelPort  a plain kernel UDP socket (no DPDK on the client, --udp): buffers come from a
//               fixed pool allocated once, batches leave with sendmmsg and arrive with recvmmsg
//               (MSG_DONTWAIT, the loop polls), the kernel writes the headers (header_bytes() = 0).
//               This is the client-side path the peers' clients use too, so sluice's figures
//               through it compare with theirs on equal terms.
//
// Both: Alloc() a buffer, write header_bytes() + payload at Data(), SetLen(), Tx() a burst (the
// port owns what it took; the caller keeps the rest), Rx() a burst, Payload() of a received
// buffer (empty if it is not a UDP datagram for us), Free(). HandleControl() takes the packets
// that are the port's own business (ARP) before the loop looks at a buffer.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include <rte_mbuf.h>

#include "absl/status/statusor.h"
#include "bench/loadgen/link.h"
#include "bench/loadgen/options.h"

namespace sluice::bench {

class DpdkPort {
 public:
  using Buf = rte_mbuf;
  explicit DpdkPort(Link& link) : link_(link) {}
  static constexpr uint16_t header_bytes() { return kUdpHeaderBytes; }
  void WriteHeaders(uint8_t* at, uint16_t payload_len) const { link_.WriteUdpHeaders(at, payload_len); }
  Buf* Alloc() { return rte_pktmbuf_alloc(link_.pool()); }
  static uint8_t* Data(Buf* m) { return rte_pktmbuf_mtod(m, uint8_t*); }
  static void SetLen(Buf* m, uint32_t len) { m->data_len = m->pkt_len = len; }
  static void Free(Buf* m) { rte_pktmbuf_free(m); }
  uint16_t Tx(Buf** b, uint16_t n) { return link_.Tx(b, n); }
  uint16_t Rx(Buf** b, uint16_t n) { return link_.Rx(b, n); }
  // Packets that are not the loop's business (ARP: answered or learnt here); true = consumed.
  bool HandleControl(Buf* m) { return link_.HandleArp(m); }
  std::span<const std::byte> Payload(Buf* m) const { return link_.UdpPayloadFor(m); }
  uint64_t tsc_hz() const { return link_.tsc_hz(); }
  uint16_t max_udp_payload() const { return link_.max_udp_payload(); }
  uint16_t mtu() const { return link_.mtu(); }
  absl::Status Exchange(std::span<const std::byte> request,
                        const std::function<bool(std::span<const std::byte>)>& on_reply) {
    return link_.Exchange(request, on_reply);
  }
  absl::Status Prepare() { return link_.ResolveServer(); }

 private:
  Link& link_;
};

class KernelPort {
 public:
  struct Buf {
    uint32_t len = 0;
    alignas(64) uint8_t data[9216];
  };
  // Socket connected to --server-ip:--server-port, non-blocking, large buffers; `pool` buffers.
  static absl::StatusOr<std::unique_ptr<KernelPort>> Open(const Options& o, uint32_t pool);
  ~KernelPort();
  KernelPort(const KernelPort&) = delete;
  KernelPort& operator=(const KernelPort&) = delete;

  static constexpr uint16_t header_bytes() { return 0; }
  void WriteHeaders(uint8_t*, uint16_t) const {}
  Buf* Alloc() {
    if (free_.empty()) return nullptr;
    Buf* b = free_.back();
    free_.pop_back();
    return b;
  }
  static uint8_t* Data(Buf* b) { return b->data; }
  static void SetLen(Buf* b, uint32_t len) { b->len = len; }
  void Free(Buf* b) { free_.push_back(b); }
  uint16_t Tx(Buf** b, uint16_t n);   // sendmmsg; frees what the kernel took
  uint16_t Rx(Buf** b, uint16_t n);   // recvmmsg, MSG_DONTWAIT
  static bool HandleControl(Buf*) { return false; }
  std::span<const std::byte> Payload(Buf* b) const {
    return {reinterpret_cast<const std::byte*>(b->data), b->len};
  }
  uint64_t tsc_hz() const { return tsc_hz_; }
  uint16_t max_udp_payload() const { return static_cast<uint16_t>(mtu_ - 28); }
  uint16_t mtu() const { return mtu_; }
  absl::Status Exchange(std::span<const std::byte> request,
                        const std::function<bool(std::span<const std::byte>)>& on_reply);
  absl::Status Prepare() { return absl::OkStatus(); }
  uint64_t send_errors() const { return send_errors_; }

 private:
  KernelPort() = default;
  const Options* o_ = nullptr;
  int fd_ = -1;
  uint16_t mtu_ = 1500;
  uint64_t tsc_hz_ = 0;
  std::vector<Buf> bufs_;
  std::vector<Buf*> free_;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iovs_;
  uint64_t send_errors_ = 0;
};

// The TSC rate without the EAL: rdtsc against CLOCK_MONOTONIC over ~50 ms.
uint64_t CalibrateTscHz();

}  // namespace sluice::bench
