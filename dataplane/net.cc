#include "dataplane/net.h"

#include <rte_arp.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_udp.h>

namespace sluice::dataplane {
namespace {

RxVerdict AnswerArp(rte_mbuf* m, const PortAddress& self, LcoreCounters& c) {
  if (m->data_len < sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)) {
    c.Drop(DropReason::kBadArp);
    return RxVerdict::kDrop;
  }
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
      arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
      arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) ||
      arp->arp_data.arp_tip != self.ipv4) {
    c.Drop(DropReason::kBadArp);
    return RxVerdict::kDrop;
  }
  // Turn the request into the reply in place: no allocation, same mbuf goes back out.
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_tha = arp->arp_data.arp_sha;
  arp->arp_data.arp_tip = arp->arp_data.arp_sip;
  arp->arp_data.arp_sha = self.mac;
  arp->arp_data.arp_sip = self.ipv4;
  eth->dst_addr = eth->src_addr;
  eth->src_addr = self.mac;
  ++c.arp_replies;
  return RxVerdict::kReply;
}

RxVerdict AnswerEcho(rte_mbuf* m, rte_ether_hdr* eth, rte_ipv4_hdr* ip, uint16_t ip_hlen,
                     uint16_t ip_total, const PortAddress& self, LcoreCounters& c) {
  if (ip_total < ip_hlen + sizeof(rte_icmp_hdr)) {
    c.Drop(DropReason::kBadIpHeader);
    return RxVerdict::kDrop;
  }
  auto* icmp = reinterpret_cast<rte_icmp_hdr*>(reinterpret_cast<uint8_t*>(ip) + ip_hlen);
  if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0) {
    c.Drop(DropReason::kUnsupportedL4);
    return RxVerdict::kDrop;
  }
  // Echo reply: swap addresses, type 0, and patch the checksum incrementally (RFC 1624): only
  // the type byte changed, from 8 to 0.
  icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
  uint32_t sum = static_cast<uint16_t>(~rte_be_to_cpu_16(icmp->icmp_cksum)) +
                 static_cast<uint16_t>(~(RTE_IP_ICMP_ECHO_REQUEST << 8)) +
                 (RTE_IP_ICMP_ECHO_REPLY << 8);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  icmp->icmp_cksum = rte_cpu_to_be_16(static_cast<uint16_t>(~sum));
  ip->dst_addr = ip->src_addr;
  ip->src_addr = self.ipv4;
  ip->time_to_live = 64;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  eth->dst_addr = eth->src_addr;
  eth->src_addr = self.mac;
  // Trim any Ethernet padding beyond the IP datagram.
  m->data_len = m->pkt_len = static_cast<uint32_t>(sizeof(rte_ether_hdr) + ip_total);
  m->ol_flags = 0;
  ++c.icmp_echo_replies;
  return RxVerdict::kReply;
}

// The header's ones'-complement sum (0xffff when its checksum is right). A header without
// options, the usual one, is summed with a constant length, which the compiler unrolls.
uint16_t Ipv4HeaderSum(const rte_ipv4_hdr* ip, uint16_t ip_hlen) {
  return ip_hlen == sizeof(rte_ipv4_hdr) ? rte_raw_cksum(ip, sizeof(rte_ipv4_hdr))
                                         : rte_raw_cksum(ip, ip_hlen);
}

}  // namespace

RxVerdict ClassifyAnyFrame(rte_mbuf* m, const PortAddress& self, LcoreCounters& c,
                           Peer* peer) {
  if (m->nb_segs != 1) {
    c.Drop(DropReason::kMultiSegment);
    return RxVerdict::kDrop;
  }
  if (m->data_len < sizeof(rte_ether_hdr)) {
    c.Drop(DropReason::kNotIpv4);
    return RxVerdict::kDrop;
  }
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  if (eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP)) return AnswerArp(m, self, c);
  if (eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
    c.Drop(DropReason::kNotIpv4);
    return RxVerdict::kDrop;
  }

  const uint32_t avail = m->data_len - sizeof(rte_ether_hdr);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  if (avail < sizeof(rte_ipv4_hdr) || (ip->version_ihl >> 4) != 4) {
    c.Drop(DropReason::kBadIpHeader);
    return RxVerdict::kDrop;
  }
  const uint16_t ip_hlen = rte_ipv4_hdr_len(ip);
  const uint16_t ip_total = rte_be_to_cpu_16(ip->total_length);
  if (ip_hlen < sizeof(rte_ipv4_hdr) || ip_total < ip_hlen || ip_total > avail) {
    c.Drop(DropReason::kBadIpHeader);
    return RxVerdict::kDrop;
  }
  const uint64_t ip_csum = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (ip_csum == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
      (ip_csum != RTE_MBUF_F_RX_IP_CKSUM_GOOD && Ipv4HeaderSum(ip, ip_hlen) != 0xffff)) {
    c.Drop(DropReason::kBadIpChecksum);
    return RxVerdict::kDrop;
  }
  if ((rte_be_to_cpu_16(ip->fragment_offset) &
       (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0) {
    c.Drop(DropReason::kFragment);
    return RxVerdict::kDrop;
  }
  // 0.0.0.0 never sends sluice requests; the address marks internal hand-offs between workers.
  if (ip->dst_addr != self.ipv4 || ip->src_addr == 0) {
    c.Drop(DropReason::kNotForUs);
    return RxVerdict::kDrop;
  }
  if (ip->next_proto_id == IPPROTO_ICMP) return AnswerEcho(m, eth, ip, ip_hlen, ip_total, self, c);
  if (ip->next_proto_id != IPPROTO_UDP) {
    c.Drop(DropReason::kUnsupportedL4);
    return RxVerdict::kDrop;
  }

  auto* udp = reinterpret_cast<rte_udp_hdr*>(reinterpret_cast<uint8_t*>(ip) + ip_hlen);
  const uint16_t udp_len = ip_total >= ip_hlen + sizeof(rte_udp_hdr)
                               ? rte_be_to_cpu_16(udp->dgram_len) : 0;
  if (udp_len < sizeof(rte_udp_hdr) || udp_len != ip_total - ip_hlen) {
    c.Drop(DropReason::kBadUdp);
    return RxVerdict::kDrop;
  }
  const uint64_t l4_csum = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
  if (l4_csum == RTE_MBUF_F_RX_L4_CKSUM_BAD ||
      (l4_csum != RTE_MBUF_F_RX_L4_CKSUM_GOOD && udp->dgram_cksum != 0 &&
       rte_ipv4_udptcp_cksum_verify(ip, udp) != 0)) {
    c.Drop(DropReason::kBadUdpChecksum);
    return RxVerdict::kDrop;
  }
  if (udp->dst_port != self.udp_port) {
    c.Drop(DropReason::kWrongUdpPort);
    return RxVerdict::kDrop;
  }

  m->l2_len = sizeof(rte_ether_hdr);
  m->l3_len = ip_hlen;
  m->l4_len = sizeof(rte_udp_hdr);
  // Drop Ethernet padding so that the payload length is exactly the UDP payload.
  m->data_len = m->pkt_len = static_cast<uint32_t>(sizeof(rte_ether_hdr) + ip_total);
  peer->mac = eth->src_addr;
  peer->ipv4 = ip->src_addr;
  peer->udp_port = udp->src_port;
  peer->port_id = self.port_id;
  return RxVerdict::kDatagram;
}

void WriteDatagramHeaders(rte_mbuf* m, const PortAddress& self, const Peer& to,
                          uint16_t payload_len) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  eth->dst_addr = to.mac;
  eth->src_addr = self.mac;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);

  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  const uint16_t ip_total = static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) +
                                                  payload_len);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(ip_total);
  ip->packet_id = 0;
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = self.ipv4;
  ip->dst_addr = to.ipv4;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);

  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = self.udp_port;
  udp->dst_port = to.udp_port;
  udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_udp_hdr) + payload_len));
  udp->dgram_cksum = 0;

  m->data_len = m->pkt_len = kDatagramHeaderBytes + payload_len;
  m->l2_len = sizeof(rte_ether_hdr);
  m->l3_len = sizeof(rte_ipv4_hdr);
  m->l4_len = sizeof(rte_udp_hdr);
  m->ol_flags = 0;
}

DatagramTemplate MakeDatagramTemplate(const PortAddress& self, const Peer& to) {
  DatagramTemplate t;
  // Written by WriteDatagramHeaders into a scratch mbuf, so that the two never disagree.
  alignas(RTE_CACHE_LINE_SIZE) rte_mbuf m{};
  alignas(8) uint8_t buf[kDatagramHeaderBytes]{};
  m.buf_addr = buf;
  m.buf_len = sizeof buf;
  m.data_off = 0;
  WriteDatagramHeaders(&m, self, to, 0);
  const uint16_t zero = 0;
  std::memcpy(buf + kIpTotalLengthAt, &zero, 2);
  std::memcpy(buf + kIpChecksumAt, &zero, 2);
  std::memcpy(buf + kUdpLengthAt, &zero, 2);
  std::memcpy(t.bytes.data(), buf, kDatagramHeaderBytes);
  t.ip_sum = rte_raw_cksum(buf + sizeof(rte_ether_hdr), sizeof(rte_ipv4_hdr));
  return t;
}

}  // namespace sluice::dataplane
