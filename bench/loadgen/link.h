// The load generator's side of the path: its own EAL instance, one memif port in client role (one
// RX and one TX queue), a mempool, the addresses of both ends, and the few packet chores that are
// not the sluice protocol: Ethernet/IPv4/UDP headers, ARP (answering, and learning the server's
// MAC), and a bounded request/reply exchange for the setup steps (LOOKUP).
//
// Setup is a chain of steps that fail with context; the load loops (produce.cc, echo.cc) use
// Rx/Tx directly and never block.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "absl/status/statusor.h"
#include "bench/loadgen/options.h"

namespace sluice::bench {

// Ethernet (14) + IPv4 without options (20) + UDP (8).
inline constexpr uint16_t kUdpHeaderBytes = 42;

class Link {
 public:
  // rte_eal_init with an argv built from the options, mempool, port setup, waits for link up.
  static absl::StatusOr<std::unique_ptr<Link>> Open(const Options& o, const char* argv0);
  ~Link();  // stops and closes the port, frees the pool, rte_eal_cleanup
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  uint16_t Rx(rte_mbuf** pkts, uint16_t n);
  uint16_t Tx(rte_mbuf** pkts, uint16_t n);

  rte_mempool* pool() const { return pool_; }
  uint64_t tsc_hz() const { return tsc_hz_; }
  uint16_t mtu() const { return mtu_; }
  // Largest UDP payload that fits the MTU (no IP fragments).
  uint16_t max_udp_payload() const { return static_cast<uint16_t>(mtu_ - 28); }

  // Writes Ethernet/IPv4/UDP headers (to the server) at `frame` for `payload_len` bytes of UDP
  // payload. IPv4 checksum computed; UDP checksum 0 (optional over IPv4).
  void WriteUdpHeaders(uint8_t* frame, uint16_t payload_len) const;
  // Ethernet + IPv4 headers only (protocol `proto`), `l4_len` bytes follow the IPv4 header.
  void WriteIpHeaders(uint8_t* frame, uint8_t proto, uint16_t l4_len) const;

  // Sends ARP requests for the server's address until a reply names its MAC, answering the
  // server's own ARP requests meanwhile. Bounded by connect_timeout_s.
  absl::Status ResolveServer();
  bool server_mac_known() const { return server_mac_known_; }

  // Handles ARP in `m` (answers a request for our address in place and sends it, or learns the
  // server's MAC from a reply). True if `m` was ARP (it is then consumed).
  bool HandleArp(rte_mbuf* m);

  // Setup exchanges: sends `request` (a sluice frame) as one datagram, and calls `on_reply` with
  // the UDP payload of each sluice datagram that arrives until it returns true. Resends every
  // 200 ms; NotFound after connect_timeout_s.
  absl::Status Exchange(std::span<const std::byte> request,
                        const std::function<bool(std::span<const std::byte>)>& on_reply);

  // The UDP payload of a received frame if it is an IPv4/UDP datagram for our port, else empty.
  std::span<const std::byte> UdpPayloadFor(rte_mbuf* m) const;

  const rte_ether_addr& mac() const { return mac_; }
  const rte_ether_addr& server_mac() const { return server_mac_; }

 private:
  explicit Link(const Options& o) : opts_(o) {}
  absl::Status InitEal(const char* argv0);
  absl::Status SetupPort();
  absl::Status WaitLinkUp();
  void SendArp(uint16_t opcode, const rte_ether_addr& dst_mac, rte_be32_t dst_ip);

  const Options& opts_;
  bool eal_up_ = false;
  bool port_up_ = false;
  uint16_t port_ = 0;
  uint16_t mtu_ = 1500;
  rte_mempool* pool_ = nullptr;
  uint64_t tsc_hz_ = 0;
  rte_ether_addr mac_{};
  rte_ether_addr server_mac_{};  // broadcast until learned
  bool server_mac_known_ = false;
  rte_be32_t local_ip_ = 0;
  rte_be32_t server_ip_ = 0;
  rte_be16_t local_port_ = 0;
  rte_be16_t server_port_ = 0;
};

}  // namespace sluice::bench
