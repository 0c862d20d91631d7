// Reply headers from a pre-built template (dataplane/net.h: MakeDatagramTemplate, Copy/Finish-
// DatagramHeaders) against WriteDatagramHeaders, which writes every field and sums the IPv4
// header: byte for byte the same, for every payload length and many addresses (the incremental
// checksum's end-around carries). No EAL: the mbufs are plain structs over local buffers.
#include "dataplane/net.h"

#include <array>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

namespace sluice::dataplane {
namespace {

struct FakeMbuf {
  alignas(RTE_CACHE_LINE_SIZE) rte_mbuf m{};
  std::array<uint8_t, 2048> buf{};
  FakeMbuf() {
    m.buf_addr = buf.data();
    m.buf_len = static_cast<uint16_t>(buf.size());
    m.data_off = 128;
    m.ol_flags = RTE_MBUF_F_TX_IPV4;  // set by someone before: both writers clear it
  }
  const uint8_t* data() const { return buf.data() + m.data_off; }
};

void ExpectSame(const PortAddress& self, const Peer& to, uint16_t payload_len) {
  FakeMbuf a, b;
  WriteDatagramHeaders(&a.m, self, to, payload_len);
  const DatagramTemplate t = MakeDatagramTemplate(self, to);
  CopyDatagramHeaders(&b.m, t);
  FinishDatagramHeaders(&b.m, t.ip_sum, payload_len);
  ASSERT_EQ(std::memcmp(a.data(), b.data(), kDatagramHeaderBytes), 0) << "payload " << payload_len;
  EXPECT_EQ(a.m.data_len, b.m.data_len);
  EXPECT_EQ(a.m.pkt_len, b.m.pkt_len);
  EXPECT_EQ(a.m.l2_len, b.m.l2_len);
  EXPECT_EQ(a.m.l3_len, b.m.l3_len);
  EXPECT_EQ(a.m.l4_len, b.m.l4_len);
  EXPECT_EQ(a.m.ol_flags, b.m.ol_flags);
  EXPECT_EQ(b.m.ol_flags, 0u);
  // The header sums to 0xffff with its checksum in it: a receiver accepts it.
  EXPECT_EQ(rte_raw_cksum(b.data() + sizeof(rte_ether_hdr), sizeof(rte_ipv4_hdr)), 0xffff);
}

TEST(DatagramTemplate, SameBytesAsWritingEveryField) {
  PortAddress self;
  self.port_id = 0;
  self.mac = {{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
  self.ipv4 = rte_cpu_to_be_32(RTE_IPV4(198, 18, 1, 1));
  self.udp_port = rte_cpu_to_be_16(7411);
  Peer to;
  to.mac = {{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
  to.ipv4 = rte_cpu_to_be_32(RTE_IPV4(198, 18, 1, 2));
  to.udp_port = rte_cpu_to_be_16(40000);
  for (uint32_t len = 0; len <= 1500 - 28; ++len) ExpectSame(self, to, static_cast<uint16_t>(len));
}

TEST(DatagramTemplate, ManyAddresses) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    PortAddress self;
    Peer to;
    const uint64_t r1 = rng(), r2 = rng(), r3 = rng();
    std::memcpy(self.mac.addr_bytes, &r1, 6);
    std::memcpy(to.mac.addr_bytes, &r2, 6);
    self.ipv4 = static_cast<uint32_t>(r3);
    to.ipv4 = static_cast<uint32_t>(r3 >> 32);
    // Addresses whose sums land on the carries' edges: all ones, all zeros.
    if (i % 7 == 0) to.ipv4 = 0xffffffff;
    if (i % 11 == 0) self.ipv4 = 0;
    self.udp_port = static_cast<uint16_t>(r1 >> 48);
    to.udp_port = static_cast<uint16_t>(r2 >> 48);
    ExpectSame(self, to, static_cast<uint16_t>(rng() % 1473));
    ExpectSame(self, to, 0);
    ExpectSame(self, to, 1472);
  }
}

}  // namespace
}  // namespace sluice::dataplane

// ---- classification: the inline common-datagram path against the full one --------------------

namespace sluice::dataplane {
namespace {

struct Classified {
  RxVerdict verdict;
  std::array<uint8_t, 2048> buf;
  uint16_t data_len;
  uint32_t pkt_len;
  uint64_t l2, l3, l4, ol_flags;
  Peer peer;
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> drops;
  uint64_t arp, icmp;
};

Classified Classify(bool full, const FakeMbuf& in, const PortAddress& self) {
  FakeMbuf f;
  f.buf = in.buf;
  f.m.data_off = in.m.data_off;
  f.m.data_len = in.m.data_len;
  f.m.pkt_len = in.m.pkt_len;
  f.m.nb_segs = in.m.nb_segs;
  f.m.ol_flags = in.m.ol_flags;
  LcoreCounters c;
  Peer peer;
  Classified r;
  r.verdict = full ? ClassifyAnyFrame(&f.m, self, c, &peer) : ClassifyFrame(&f.m, self, c, &peer);
  r.buf = f.buf;
  r.data_len = f.m.data_len;
  r.pkt_len = f.m.pkt_len;
  r.l2 = f.m.l2_len;
  r.l3 = f.m.l3_len;
  r.l4 = f.m.l4_len;
  r.ol_flags = f.m.ol_flags;
  r.peer = r.verdict == RxVerdict::kDatagram ? peer : Peer{};
  for (size_t i = 0; i < r.drops.size(); ++i) r.drops[i] = c.drops[i].load();
  r.arp = c.arp_replies.load();
  r.icmp = c.icmp_echo_replies.load();
  return r;
}

// A valid datagram to `self` (checksummed IPv4 header, UDP checksum 0), `payload` bytes.
void BuildDatagram(FakeMbuf* f, const PortAddress& self, uint16_t payload) {
  Peer from;
  from.mac = {{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
  from.ipv4 = rte_cpu_to_be_32(RTE_IPV4(198, 18, 1, 2));
  from.udp_port = rte_cpu_to_be_16(40000);
  // WriteDatagramHeaders writes a reply from `self` to `from`: swap the roles.
  PortAddress sender;
  sender.mac = from.mac;
  sender.ipv4 = from.ipv4;
  sender.udp_port = from.udp_port;
  Peer to;
  to.mac = self.mac;
  to.ipv4 = self.ipv4;
  to.udp_port = self.udp_port;
  WriteDatagramHeaders(&f->m, sender, to, payload);
  f->m.nb_segs = 1;
  f->m.ol_flags = 0;
}

TEST(ClassifyFrame, CommonPathAgreesWithTheFullOne) {
  PortAddress self;
  self.port_id = 3;
  self.mac = {{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
  self.ipv4 = rte_cpu_to_be_32(RTE_IPV4(198, 18, 1, 1));
  self.udp_port = rte_cpu_to_be_16(7411);
  const uint64_t flags[] = {0,
                            RTE_MBUF_F_RX_IP_CKSUM_GOOD,
                            RTE_MBUF_F_RX_IP_CKSUM_BAD,
                            RTE_MBUF_F_RX_IP_CKSUM_NONE,
                            RTE_MBUF_F_RX_L4_CKSUM_GOOD,
                            RTE_MBUF_F_RX_L4_CKSUM_BAD,
                            RTE_MBUF_F_RX_L4_CKSUM_NONE,
                            RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD,
                            RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_BAD};
  std::mt19937_64 rng(11);
  uint32_t datagrams = 0, dropped = 0;
  for (int i = 0; i < 200'000; ++i) {
    FakeMbuf f;
    BuildDatagram(&f, self, static_cast<uint16_t>(rng() % 300));
    uint8_t* d = f.buf.data() + f.m.data_off;
    // Mostly valid frames (the fast path's), then one to three header bytes changed (each
    // check's edge), a length cut or padded, an offload verdict, a second segment.
    const int edits = static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % kDatagramHeaderBytes;
      switch (rng() % 4) {
        case 0: d[at] = static_cast<uint8_t>(rng()); break;
        case 1: d[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
        case 2: d[at] = 0; break;
        default: d[at] = 0xff; break;
      }
    }
    if (rng() % 8 == 0) {
      const uint16_t len = static_cast<uint16_t>(rng() % (f.m.data_len + 64));
      f.m.data_len = len;
      f.m.pkt_len = len;
    }
    if (rng() % 4 == 0) f.m.ol_flags = flags[rng() % std::size(flags)];
    if (rng() % 64 == 0) f.m.nb_segs = 2;
    const Classified a = Classify(true, f, self), b = Classify(false, f, self);
    ASSERT_EQ(a.verdict, b.verdict) << "case " << i;
    ASSERT_EQ(std::memcmp(a.buf.data(), b.buf.data(), a.buf.size()), 0) << "case " << i;
    ASSERT_EQ(a.data_len, b.data_len) << "case " << i;
    ASSERT_EQ(a.pkt_len, b.pkt_len) << "case " << i;
    ASSERT_EQ(a.l2, b.l2) << "case " << i;
    ASSERT_EQ(a.l3, b.l3) << "case " << i;
    ASSERT_EQ(a.l4, b.l4) << "case " << i;
    ASSERT_EQ(a.ol_flags, b.ol_flags) << "case " << i;
    ASSERT_EQ(a.peer.Word0(), b.peer.Word0()) << "case " << i;
    ASSERT_EQ(a.peer.Word1(), b.peer.Word1()) << "case " << i;
    ASSERT_EQ(a.drops, b.drops) << "case " << i;
    ASSERT_EQ(a.arp, b.arp) << "case " << i;
    ASSERT_EQ(a.icmp, b.icmp) << "case " << i;
    if (a.verdict == RxVerdict::kDatagram) ++datagrams;
    if (a.verdict == RxVerdict::kDrop) ++dropped;
  }
  // Both sides of the fast path were exercised.
  EXPECT_GT(datagrams, 20'000u);
  EXPECT_GT(dropped, 20'000u);
}

TEST(ClassifyFrame, CommonPathTakesTheCommonFrame) {
  PortAddress self;
  self.mac = {{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
  self.ipv4 = rte_cpu_to_be_32(RTE_IPV4(198, 18, 1, 1));
  self.udp_port = rte_cpu_to_be_16(7411);
  FakeMbuf f;
  BuildDatagram(&f, self, 164);
  f.m.data_len = f.m.pkt_len = f.m.data_len + 6;  // Ethernet padding: trimmed
  Peer peer;
  ASSERT_TRUE(ClassifyCommonDatagram(&f.m, self, &peer));
  EXPECT_EQ(f.m.data_len, kDatagramHeaderBytes + 164);
  EXPECT_EQ(peer.ipv4, rte_cpu_to_be_32(RTE_IPV4(198, 18, 1, 2)));
  EXPECT_EQ(peer.udp_port, rte_cpu_to_be_16(40000));
  // A bad IPv4 checksum is not the common frame.
  BuildDatagram(&f, self, 164);
  f.buf[f.m.data_off + kIpChecksumAt] ^= 1;
  EXPECT_FALSE(ClassifyCommonDatagram(&f.m, self, &peer));
}

}  // namespace
}  // namespace sluice::dataplane
