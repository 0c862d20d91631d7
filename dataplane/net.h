// Ethernet / ARP / IPv4 / ICMP / UDP for the dataplane: classify a received frame, answer ARP and
// ICMP echo in place, and write the headers of outgoing sluice datagrams. Everything here works on
// one single-segment mbuf at a time, allocates nothing and never blocks.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include <rte_mbuf.h>

#include "dataplane/counters.h"

namespace sluice::dataplane {

// The addresses one port answers for. Network byte order where the wire uses it.
struct PortAddress {
  uint16_t port_id = 0;
  rte_ether_addr mac{};
  rte_be32_t ipv4 = 0;
  rte_be16_t udp_port = 0;
};

// Where a reply goes: the source of the request. Packs into two words so that the shard engine can
// carry it as an opaque reply target without knowing about Ethernet.
struct Peer {
  rte_ether_addr mac{};
  rte_be32_t ipv4 = 0;
  rte_be16_t udp_port = 0;
  uint16_t port_id = 0;

  uint64_t Word0() const {
    return (uint64_t{ipv4} << 32) | (uint64_t{udp_port} << 16) | port_id;
  }
  uint64_t Word1() const {  // byte i at bits 8i, as FromWords reads it (one 6-byte load)
    static_assert(std::endian::native == std::endian::little);
    uint64_t w = 0;
    std::memcpy(&w, mac.addr_bytes, sizeof mac.addr_bytes);
    return w;
  }
  static Peer FromWords(uint64_t w0, uint64_t w1) {
    Peer p;
    p.ipv4 = static_cast<rte_be32_t>(w0 >> 32);
    p.udp_port = static_cast<rte_be16_t>(w0 >> 16);
    p.port_id = static_cast<uint16_t>(w0);
    for (int i = 0; i < 6; ++i) p.mac.addr_bytes[i] = static_cast<uint8_t>(w1 >> (8 * i));
    return p;
  }
};

enum class RxVerdict {
  kDrop,     // counted; caller frees the mbuf
  kReply,    // the mbuf was rewritten in place into an ARP or ICMP reply; caller transmits it
  kDatagram, // a UDP datagram for the sluice port: mbuf l2_len/l3_len/l4_len are set, `peer` filled
};

// Headers of a sluice datagram that the dataplane writes: Ethernet + IPv4 (no options) + UDP.
inline constexpr uint16_t kDatagramHeaderBytes =
    sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);

// Classifies one received frame (every case, every check: ClassifyFrame's fallback). Trusts the
// port's checksum offload flags when it set them and verifies in software otherwise.
RxVerdict ClassifyAnyFrame(rte_mbuf* m, const PortAddress& self, LcoreCounters& counters,
                           Peer* peer);

// The common frame only: a UDP datagram to the sluice port in an IPv4 header without options,
// in one segment, with no checksum offload verdict but GOOD (or none) and no UDP checksum to
// verify. True (and the same mbuf fields and *peer as ClassifyAnyFrame sets for kDatagram) only
// when every check ClassifyAnyFrame makes passes; false leaves everything untouched. The
// header's fields are compared a few words at a time instead of one by one (~160 -> ~60
// instructions per frame on the x1 flood).
inline bool ClassifyCommonDatagram(rte_mbuf* m, const PortAddress& self, Peer* peer) {
  constexpr uint32_t kEth = sizeof(rte_ether_hdr), kIp = sizeof(rte_ipv4_hdr);
  constexpr uint32_t kUdp = sizeof(rte_udp_hdr);
  if (m->nb_segs != 1 || m->data_len < kEth + kIp + kUdp) return false;
  // Offload verdicts: BAD, or anything but GOOD/none for the UDP checksum, takes the long way.
  const uint64_t ip_csum = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  const uint64_t l4_csum = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
  if (ip_csum == RTE_MBUF_F_RX_IP_CKSUM_BAD || l4_csum == RTE_MBUF_F_RX_L4_CKSUM_BAD) return false;
  const uint8_t* b = rte_pktmbuf_mtod(m, const uint8_t*);
  auto load16 = [b](uint32_t at) { uint16_t v; std::memcpy(&v, b + at, 2); return v; };
  auto load32 = [b](uint32_t at) { uint32_t v; std::memcpy(&v, b + at, 4); return v; };
  // Ether type IPv4 (08 00), version 4 with a 20-byte header (0x45): bytes 12..14.
  if ((load32(kEth - 2) & 0xffffff) != 0x450008) return false;
  const uint32_t ip_total = rte_be_to_cpu_16(load16(kEth + 2));
  if (ip_total < kIp + kUdp || ip_total > m->data_len - kEth) return false;
  // Fragment bits (MF, offset) 0 and protocol UDP: bytes 20..21 and 23.
  if ((load16(kEth + 6) & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0 ||
      b[kEth + 9] != IPPROTO_UDP) {
    return false;
  }
  const uint32_t src = load32(kEth + 12);
  if (load32(kEth + 16) != self.ipv4 || src == 0) return false;
  const uint32_t udp_at = kEth + kIp;
  // UDP length = the IP payload, destination port ours, no checksum (0) unless the port verified
  // it (GOOD): bytes 36..41.
  if (rte_be_to_cpu_16(load16(udp_at + 4)) != ip_total - kIp ||
      load16(udp_at + 2) != self.udp_port ||
      (l4_csum != RTE_MBUF_F_RX_L4_CKSUM_GOOD && load16(udp_at + 6) != 0)) {
    return false;
  }
  if (ip_csum != RTE_MBUF_F_RX_IP_CKSUM_GOOD) {
    // The header's ones'-complement sum in 32-bit words (2^16 = 1 modulo 0xffff: the same folded
    // value as rte_raw_cksum's 16-bit words); 0xffff when its checksum is right.
    uint64_t sum = uint64_t{load32(kEth)} + load32(kEth + 4) + load32(kEth + 8) +
                   load32(kEth + 12) + load32(kEth + 16);
    sum = (sum & 0xffffffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    if (sum != 0xffff) return false;
  }
  m->l2_len = kEth;
  m->l3_len = kIp;
  m->l4_len = kUdp;
  // Drop Ethernet padding so that the payload length is exactly the UDP payload.
  m->data_len = m->pkt_len = kEth + ip_total;
  std::memcpy(peer->mac.addr_bytes, b + 6, RTE_ETHER_ADDR_LEN);
  peer->ipv4 = src;
  peer->udp_port = load16(udp_at);
  peer->port_id = self.port_id;
  return true;
}

// Classifies one received frame: the common datagram inline, anything else (ARP, ICMP, options,
// every reason to drop) by ClassifyAnyFrame, with the same verdicts and counters.
inline RxVerdict ClassifyFrame(rte_mbuf* m, const PortAddress& self, LcoreCounters& counters,
                               Peer* peer) {
  if (ClassifyCommonDatagram(m, self, peer)) [[likely]] return RxVerdict::kDatagram;
  return ClassifyAnyFrame(m, self, counters, peer);
}

// The sluice payload of a datagram classified as kDatagram.
inline uint8_t* DatagramPayload(rte_mbuf* m) {
  return rte_pktmbuf_mtod_offset(m, uint8_t*, m->l2_len + m->l3_len + m->l4_len);
}
inline uint16_t DatagramPayloadLength(const rte_mbuf* m) {
  return static_cast<uint16_t>(m->data_len - m->l2_len - m->l3_len - m->l4_len);
}

// Writes Ethernet/IPv4/UDP headers in front of `payload_len` bytes that start at
// rte_pktmbuf_mtod(m) + kDatagramHeaderBytes, and sets the mbuf lengths. The IPv4 checksum is
// computed; the UDP checksum is left 0 (optional over IPv4, and the sluice frame carries its own
// integrity where it matters: batches have CRC32C).
void WriteDatagramHeaders(rte_mbuf* m, const PortAddress& self, const Peer& to, uint16_t payload_len);

// The same headers pre-built for one (self, to) pair: a reply copies them in one go and patches
// the three length-dependent fields, the IPv4 checksum computed incrementally (RFC 1624) from the
// sum of the template. Byte for byte what WriteDatagramHeaders writes.
struct DatagramTemplate {
  std::array<uint8_t, kDatagramHeaderBytes> bytes{};  // total and UDP lengths 0, checksum 0
  uint32_t ip_sum = 0;  // ones'-complement sum (folded) of the template's IPv4 header
};
DatagramTemplate MakeDatagramTemplate(const PortAddress& self, const Peer& to);

// Byte offsets of the fields a reply patches (Ethernet + IPv4 without options + UDP).
inline constexpr uint16_t kIpTotalLengthAt = sizeof(rte_ether_hdr) + 2;
inline constexpr uint16_t kIpChecksumAt = sizeof(rte_ether_hdr) + 10;
inline constexpr uint16_t kUdpLengthAt = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + 4;

// Copies the template's headers in front of the payload (at rte_pktmbuf_mtod(m)).
inline void CopyDatagramHeaders(rte_mbuf* m, const DatagramTemplate& t) {
  std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), t.bytes.data(), kDatagramHeaderBytes);
}

// Completes headers copied by CopyDatagramHeaders for `payload_len` bytes of payload (`ip_sum`:
// the template's) and sets the mbuf lengths, as WriteDatagramHeaders does.
inline void FinishDatagramHeaders(rte_mbuf* m, uint32_t ip_sum, uint16_t payload_len) {
  uint8_t* h = rte_pktmbuf_mtod(m, uint8_t*);
  const uint16_t udp_len = static_cast<uint16_t>(sizeof(rte_udp_hdr) + payload_len);
  const uint16_t ip_total = static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + udp_len);
  const rte_be16_t total_be = rte_cpu_to_be_16(ip_total);
  // The sum is taken over the header's 16-bit words as they lie in memory (as rte_raw_cksum
  // does), so the stored big-endian length adds as it is.
  // Both terms are at most 0xffff: one fold ends the carries.
  uint32_t sum = ip_sum + total_be;
  sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t csum = static_cast<uint16_t>(~sum);
  const rte_be16_t udp_be = rte_cpu_to_be_16(udp_len);
  std::memcpy(h + kIpTotalLengthAt, &total_be, 2);
  std::memcpy(h + kIpChecksumAt, &csum, 2);
  std::memcpy(h + kUdpLengthAt, &udp_be, 2);
  m->data_len = m->pkt_len = kDatagramHeaderBytes + payload_len;
  m->l2_len = sizeof(rte_ether_hdr);
  m->l3_len = sizeof(rte_ipv4_hdr);
  m->l4_len = sizeof(rte_udp_hdr);
  m->ol_flags = 0;
}

}  // namespace sluice::dataplane
