#include "bench/loadgen/link.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "absl/strings/str_format.h"

namespace sluice::bench {
namespace {

constexpr uint16_t kDescriptors = 1024;

absl::StatusOr<rte_be32_t> ParseIpv4(const std::string& s, const char* what) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: '%s' is not an IPv4 address", what, s));
  }
  return a.s_addr;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Link>> Link::Open(const Options& o, const char* argv0) {
  std::unique_ptr<Link> link(new Link(o));
  auto local = ParseIpv4(o.local_ip, "--local-ip");
  if (!local.ok()) return local.status();
  auto server = ParseIpv4(o.server_ip, "--server-ip");
  if (!server.ok()) return server.status();
  link->local_ip_ = *local;
  link->server_ip_ = *server;
  link->local_port_ = rte_cpu_to_be_16(o.local_port);
  link->server_port_ = rte_cpu_to_be_16(o.server_port);
  link->mtu_ = o.mtu;
  memset(&link->server_mac_, 0xff, sizeof(link->server_mac_));
  if (auto st = link->InitEal(argv0); !st.ok()) return st;
  if (auto st = link->SetupPort(); !st.ok()) return st;
  if (auto st = link->WaitLinkUp(); !st.ok()) return st;
  return link;
}

absl::Status Link::InitEal(const char* argv0) {
  const std::string prefix =
      opts_.file_prefix.empty() ? absl::StrFormat("sluice-lg-%d", getpid()) : opts_.file_prefix;
  const std::string vdev = !opts_.vdev.empty()
      ? opts_.vdev
      : absl::StrFormat("net_memif_lg0,role=client,socket=%s,id=0", opts_.socket);
  std::vector<std::string> args = {argv0,
                                   "-l", std::to_string(opts_.cpu),
                                   "--no-huge", "-m", std::to_string(opts_.memory_mb),
                                   "--file-prefix", prefix,
                                   "--no-pci",
                                   "--vdev", vdev,
                                   "--log-level", "lib.eal:warning"};
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  std::string line;
  for (const std::string& s : args) line += " " + s;
  std::printf("sluice-loadgen: EAL args:%s\n", line.c_str());
  std::fflush(stdout);
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    return absl::InternalError(absl::StrFormat("EAL init failed: %s", rte_strerror(rte_errno)));
  }
  eal_up_ = true;
  tsc_hz_ = rte_get_tsc_hz();
  if (rte_eth_dev_count_avail() != 1) {
    return absl::FailedPreconditionError(
        absl::StrFormat("expected exactly one ethdev (the memif vdev), found %u",
                        rte_eth_dev_count_avail()));
  }
  uint16_t id = 0;
  RTE_ETH_FOREACH_DEV(id) port_ = id;
  return absl::OkStatus();
}

absl::Status Link::SetupPort() {
  // Every RX and TX descriptor, the bursts of the loop and the mempool cache, rounded to 2^n - 1.
  const uint32_t mbufs = 8191;
  const uint16_t data_room = static_cast<uint16_t>(
      std::max<uint32_t>(RTE_MBUF_DEFAULT_DATAROOM, mtu_ + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN) +
      RTE_PKTMBUF_HEADROOM);
  pool_ = rte_pktmbuf_pool_create("lg_mbufs", mbufs, 256, 0, data_room,
                                  static_cast<int>(rte_socket_id()));
  if (pool_ == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "mempool of %u x %u bytes: %s (raise --memory-mb)", mbufs, data_room,
        rte_strerror(rte_errno)));
  }
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(port_, &info); rc != 0) {
    return absl::InternalError(absl::StrFormat("dev_info_get: %s", rte_strerror(-rc)));
  }
  rte_eth_conf conf{};
  conf.rxmode.mtu = mtu_;
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE) {
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
  }
  if (int rc = rte_eth_dev_configure(port_, 1, 1, &conf); rc != 0) {
    return absl::InternalError(absl::StrFormat(
        "port %u (%s): configure with mtu %u: %s (the PMD allows mtu %u..%u)", port_,
        info.driver_name, mtu_, rte_strerror(-rc), info.min_mtu, info.max_mtu));
  }
  uint16_t rxd = kDescriptors, txd = kDescriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(port_, &rxd, &txd);
  const int socket = rte_eth_dev_socket_id(port_);
  if (int rc = rte_eth_rx_queue_setup(port_, 0, rxd, socket, nullptr, pool_); rc != 0) {
    return absl::InternalError(absl::StrFormat("rx_queue_setup: %s", rte_strerror(-rc)));
  }
  rte_eth_txconf txconf = info.default_txconf;
  txconf.offloads = conf.txmode.offloads;
  if (int rc = rte_eth_tx_queue_setup(port_, 0, txd, socket, &txconf); rc != 0) {
    return absl::InternalError(absl::StrFormat("tx_queue_setup: %s", rte_strerror(-rc)));
  }
  // A memif client cannot start before the server has created its socket: retry, bounded.
  const uint64_t deadline = rte_rdtsc() + static_cast<uint64_t>(opts_.connect_timeout_s * tsc_hz_);
  for (;;) {
    const int rc = rte_eth_dev_start(port_);
    if (rc == 0) break;
    if (rte_rdtsc() >= deadline) {
      return absl::UnavailableError(absl::StrFormat(
          "dev_start: %s for %.1f s: is the server (sluiced or testpmd) listening on %s?",
          rte_strerror(-rc), opts_.connect_timeout_s,
          opts_.vdev.empty() ? opts_.socket : opts_.vdev));
    }
    usleep(100'000);
  }
  port_up_ = true;
  rte_eth_macaddr_get(port_, &mac_);
  return absl::OkStatus();
}

absl::Status Link::WaitLinkUp() {
  const uint64_t deadline = rte_rdtsc() + static_cast<uint64_t>(opts_.connect_timeout_s * tsc_hz_);
  while (rte_rdtsc() < deadline) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port_, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) {
      return absl::OkStatus();
    }
    usleep(10'000);
  }
  return absl::DeadlineExceededError(absl::StrFormat(
      "memif link not up after %.1f s: is the server (sluiced or testpmd) running on %s?",
      opts_.connect_timeout_s, opts_.vdev.empty() ? opts_.socket : opts_.vdev));
}

Link::~Link() {
  if (port_up_) {
    rte_eth_dev_stop(port_);
    rte_eth_dev_close(port_);
  }
  if (pool_ != nullptr) rte_mempool_free(pool_);
  if (eal_up_) rte_eal_cleanup();
}

uint16_t Link::Rx(rte_mbuf** pkts, uint16_t n) { return rte_eth_rx_burst(port_, 0, pkts, n); }
uint16_t Link::Tx(rte_mbuf** pkts, uint16_t n) { return rte_eth_tx_burst(port_, 0, pkts, n); }

void Link::WriteIpHeaders(uint8_t* frame, uint8_t proto, uint16_t l4_len) const {
  auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
  eth->dst_addr = server_mac_;
  eth->src_addr = mac_;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + l4_len));
  ip->packet_id = 0;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = proto;
  ip->src_addr = local_ip_;
  ip->dst_addr = server_ip_;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

void Link::WriteUdpHeaders(uint8_t* frame, uint16_t payload_len) const {
  const uint16_t udp_len = static_cast<uint16_t>(sizeof(rte_udp_hdr) + payload_len);
  WriteIpHeaders(frame, IPPROTO_UDP, udp_len);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(frame + sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr));
  udp->src_port = local_port_;
  udp->dst_port = server_port_;
  udp->dgram_len = rte_cpu_to_be_16(udp_len);
  udp->dgram_cksum = 0;
}

std::span<const std::byte> Link::UdpPayloadFor(rte_mbuf* m) const {
  if (m->nb_segs != 1 || m->data_len < kUdpHeaderBytes) return {};
  const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
  const auto* eth = reinterpret_cast<const rte_ether_hdr*>(p);
  if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) return {};
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
  if (ip->next_proto_id != IPPROTO_UDP || ip->dst_addr != local_ip_) return {};
  const uint16_t ihl = rte_ipv4_hdr_len(ip);
  const uint16_t ip_total = rte_be_to_cpu_16(ip->total_length);
  if (ihl < sizeof(rte_ipv4_hdr) || ip_total < ihl + sizeof(rte_udp_hdr) ||
      sizeof(rte_ether_hdr) + ip_total > m->data_len) {
    return {};
  }
  const auto* udp = reinterpret_cast<const rte_udp_hdr*>(p + sizeof(rte_ether_hdr) + ihl);
  if (udp->dst_port != local_port_) return {};
  const uint16_t udp_len = rte_be_to_cpu_16(udp->dgram_len);
  if (udp_len < sizeof(rte_udp_hdr) || udp_len > ip_total - ihl) return {};
  return {reinterpret_cast<const std::byte*>(udp + 1), udp_len - sizeof(rte_udp_hdr)};
}

void Link::SendArp(uint16_t opcode, const rte_ether_addr& dst_mac, rte_be32_t dst_ip) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) return;
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  eth->dst_addr = dst_mac;
  eth->src_addr = mac_;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = RTE_ETHER_ADDR_LEN;
  arp->arp_plen = 4;
  arp->arp_opcode = rte_cpu_to_be_16(opcode);
  arp->arp_data.arp_sha = mac_;
  arp->arp_data.arp_sip = local_ip_;
  if (opcode == RTE_ARP_OP_REQUEST) {
    memset(&arp->arp_data.arp_tha, 0, sizeof(arp->arp_data.arp_tha));
  } else {
    arp->arp_data.arp_tha = dst_mac;
  }
  arp->arp_data.arp_tip = dst_ip;
  m->data_len = m->pkt_len = RTE_ETHER_MIN_LEN - RTE_ETHER_CRC_LEN;  // padded to 60 bytes
  memset(reinterpret_cast<uint8_t*>(arp + 1), 0,
         m->data_len - sizeof(rte_ether_hdr) - sizeof(rte_arp_hdr));
  if (Tx(&m, 1) != 1) rte_pktmbuf_free(m);
}

bool Link::HandleArp(rte_mbuf* m) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  if (m->data_len < sizeof(rte_ether_hdr) ||
      eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) {
    return false;
  }
  if (m->data_len >= sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)) {
    auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
    const uint16_t op = rte_be_to_cpu_16(arp->arp_opcode);
    if (op == RTE_ARP_OP_REQUEST && arp->arp_data.arp_tip == local_ip_) {
      SendArp(RTE_ARP_OP_REPLY, arp->arp_data.arp_sha, arp->arp_data.arp_sip);
    } else if (op == RTE_ARP_OP_REPLY && arp->arp_data.arp_sip == server_ip_) {
      server_mac_ = arp->arp_data.arp_sha;
      server_mac_known_ = true;
    }
  }
  rte_pktmbuf_free(m);
  return true;
}

absl::Status Link::ResolveServer() {
  const uint64_t deadline = rte_rdtsc() + static_cast<uint64_t>(opts_.connect_timeout_s * tsc_hz_);
  const uint64_t resend = tsc_hz_ / 5;
  rte_ether_addr bcast;
  memset(&bcast, 0xff, sizeof(bcast));
  uint64_t next_send = 0;
  rte_mbuf* pkts[32];
  while (!server_mac_known_) {
    const uint64_t now = rte_rdtsc();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "no ARP reply for %s within %.1f s (is the server sluiced, with that address?)",
          opts_.server_ip, opts_.connect_timeout_s));
    }
    if (now >= next_send) {
      SendArp(RTE_ARP_OP_REQUEST, bcast, server_ip_);
      next_send = now + resend;
    }
    const uint16_t n = Rx(pkts, 32);
    for (uint16_t i = 0; i < n; ++i)
      if (!HandleArp(pkts[i])) rte_pktmbuf_free(pkts[i]);
    if (n == 0) usleep(100);
  }
  return absl::OkStatus();
}

absl::Status Link::Exchange(std::span<const std::byte> request,
                            const std::function<bool(std::span<const std::byte>)>& on_reply) {
  if (request.size() > max_udp_payload()) return absl::InvalidArgumentError("request too large");
  const uint64_t deadline = rte_rdtsc() + static_cast<uint64_t>(opts_.connect_timeout_s * tsc_hz_);
  const uint64_t resend = tsc_hz_ / 5;
  uint64_t next_send = 0;
  rte_mbuf* pkts[32];
  for (;;) {
    const uint64_t now = rte_rdtsc();
    if (now >= deadline) return absl::NotFoundError("no reply");
    if (now >= next_send) {
      rte_mbuf* m = rte_pktmbuf_alloc(pool_);
      if (m == nullptr) return absl::ResourceExhaustedError("no mbuf");
      uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
      WriteUdpHeaders(frame, static_cast<uint16_t>(request.size()));
      memcpy(frame + kUdpHeaderBytes, request.data(), request.size());
      m->data_len = m->pkt_len = static_cast<uint32_t>(kUdpHeaderBytes + request.size());
      if (Tx(&m, 1) != 1) rte_pktmbuf_free(m);
      next_send = now + resend;
    }
    const uint16_t n = Rx(pkts, 32);
    bool done = false;
    for (uint16_t i = 0; i < n; ++i) {
      if (HandleArp(pkts[i])) continue;
      std::span<const std::byte> payload = UdpPayloadFor(pkts[i]);
      if (!done && !payload.empty() && on_reply(payload)) done = true;
      rte_pktmbuf_free(pkts[i]);
    }
    if (done) return absl::OkStatus();
    if (n == 0) usleep(100);
  }
}

}  // namespace sluice::bench
