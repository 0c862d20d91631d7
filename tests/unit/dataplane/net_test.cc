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
