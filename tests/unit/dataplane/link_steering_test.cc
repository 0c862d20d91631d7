// Software steering of replication link frames (dataplane/link_steering.h): which channel a frame
// belongs to, and the hand-off between channels' lcores (no EAL: the rings live in plain memory).
#include "dataplane/link_steering.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "dataplane/worker.h"

namespace sluice::dataplane {
namespace {

constexpr uint16_t kBase = 7412;

// Ethernet + IPv4 (ihl words) + UDP to `dport`, with `payload` bytes.
std::vector<uint8_t> UdpFrame(uint16_t dport, uint8_t ihl = 5, uint16_t frag = 0x4000,
                              uint8_t proto = 17, size_t payload = 32) {
  std::vector<uint8_t> f(14 + ihl * 4u + 8 + payload, 0);
  for (int i = 0; i < 6; ++i) f[i] = 0xff;
  f[6] = 0x02;
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t* ip = f.data() + 14;
  ip[0] = static_cast<uint8_t>(0x40 | ihl);
  const uint16_t total = static_cast<uint16_t>(ihl * 4u + 8 + payload);
  ip[2] = static_cast<uint8_t>(total >> 8);
  ip[3] = static_cast<uint8_t>(total);
  ip[6] = static_cast<uint8_t>(frag >> 8);
  ip[7] = static_cast<uint8_t>(frag);
  ip[8] = 64;
  ip[9] = proto;
  uint8_t* udp = ip + ihl * 4u;
  udp[0] = static_cast<uint8_t>(kBase >> 8);  // source port: base (any)
  udp[1] = static_cast<uint8_t>(kBase);
  udp[2] = static_cast<uint8_t>(dport >> 8);
  udp[3] = static_cast<uint8_t>(dport);
  return f;
}

int Channel(const std::vector<uint8_t>& f, uint16_t channels = 4, size_t len = SIZE_MAX) {
  return LinkFrameChannel({f.data(), std::min(len, f.size())}, kBase, channels);
}

TEST(LinkFrameChannel, TheUdpDestinationPortNamesTheChannel) {
  for (uint16_t c = 0; c < 4; ++c) EXPECT_EQ(Channel(UdpFrame(kBase + c)), c);
  EXPECT_EQ(Channel(UdpFrame(kBase + 1), 2), 1);
  // IP options: the UDP header is found after them.
  EXPECT_EQ(Channel(UdpFrame(kBase + 3, /*ihl=*/7)), 3);
  // 16 channels, the last one.
  EXPECT_EQ(Channel(UdpFrame(kBase + 15), 16), 15);
}

TEST(LinkFrameChannel, EverythingElseStaysWhereItLanded) {
  EXPECT_EQ(Channel(UdpFrame(kBase + 4)), kSteerHere);  // past the channel count
  EXPECT_EQ(Channel(UdpFrame(kBase - 1)), kSteerHere);  // below the base
  EXPECT_EQ(Channel(UdpFrame(7411)), kSteerHere);       // the client port
  EXPECT_EQ(Channel(UdpFrame(kBase + 2), 2), kSteerHere);
  EXPECT_EQ(Channel(UdpFrame(kBase), 0), kSteerHere);   // no channels at all
  EXPECT_EQ(Channel(UdpFrame(kBase + 1, 5, 0x4000, /*ICMP*/ 1)), kSteerHere);
  EXPECT_EQ(Channel(UdpFrame(kBase + 1, 5, 0x4000, /*TCP*/ 6)), kSteerHere);
  // Fragments: more to come, or an offset (a later fragment's "ports" are payload).
  EXPECT_EQ(Channel(UdpFrame(kBase + 1, 5, 0x2000)), kSteerHere);
  EXPECT_EQ(Channel(UdpFrame(kBase + 1, 5, 0x0010)), kSteerHere);
  // DF alone is no fragment.
  EXPECT_EQ(Channel(UdpFrame(kBase + 1, 5, 0x4000)), 1);
  // ARP, IPv6, a bad version or header length.
  std::vector<uint8_t> arp = UdpFrame(kBase + 1);
  arp[13] = 0x06;
  EXPECT_EQ(Channel(arp), kSteerHere);
  std::vector<uint8_t> v6 = UdpFrame(kBase + 1);
  v6[12] = 0x86;
  v6[13] = 0xdd;
  EXPECT_EQ(Channel(v6), kSteerHere);
  std::vector<uint8_t> bad = UdpFrame(kBase + 1);
  bad[14] = 0x65;  // version 6 in an IPv4 frame
  EXPECT_EQ(Channel(bad), kSteerHere);
  bad[14] = 0x44;  // ihl 4: shorter than an IPv4 header
  EXPECT_EQ(Channel(bad), kSteerHere);
  bad[14] = 0x4f;  // ihl 15: the UDP header would be past this frame's end
  EXPECT_EQ(Channel(bad, 4, 14 + 60 + 7), kSteerHere);
}

TEST(LinkFrameChannel, TruncatedFramesAreNeverReadPast) {
  const std::vector<uint8_t> f = UdpFrame(kBase + 2, /*ihl=*/6);
  const size_t udp_end = 14 + 24 + 8;
  for (size_t len = 0; len < udp_end; ++len) {
    // A copy of exactly `len` bytes: reading past it is a heap overflow (sanitizer builds).
    const std::vector<uint8_t> cut(f.begin(), f.begin() + static_cast<long>(len));
    EXPECT_EQ(Channel(cut), kSteerHere) << len;
  }
  EXPECT_EQ(Channel(std::vector<uint8_t>(f.begin(), f.begin() + udp_end)), 2);
}

TEST(LinkFrameChannel, RandomBytesAnswerAChannelInRangeOrHere) {
  std::mt19937 rng(7);
  int steered = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> f = UdpFrame(static_cast<uint16_t>(kBase + rng() % 6));
    const size_t flips = rng() % 4;
    for (size_t k = 0; k < flips; ++k) f[rng() % 50] = static_cast<uint8_t>(rng());
    const size_t len = rng() % (f.size() + 1);
    const int c = Channel(std::vector<uint8_t>(f.begin(), f.begin() + static_cast<long>(len)));
    ASSERT_TRUE(c == kSteerHere || (c >= 0 && c < 4)) << c;
    steered += c != kSteerHere;
  }
  EXPECT_GT(steered, 0);
}

TEST(LinkRingSize, AboutAThousandFramesTowardsAChannelAtLeast128PerRing) {
  EXPECT_EQ(LinkRingSize(1), 0u);
  EXPECT_EQ(LinkRingSize(2), 1024u);
  EXPECT_EQ(LinkRingSize(3), 512u);
  EXPECT_EQ(LinkRingSize(5), 256u);
  EXPECT_EQ(LinkRingSize(16), 128u);
  for (uint32_t c = 2; c <= kMaxReplicationChannels; ++c) {
    EXPECT_EQ(LinkRingSize(c) & (LinkRingSize(c) - 1), 0u) << c;  // a power of two
  }
}

TEST(LinkRingSize, ThePoolHoldsAnMbufForEverySlotOfTheLinksRings) {
  hwconf::Layout l;
  hwconf::Port link;
  link.name = "link";
  link.rx_queues = 2;
  l.ports.push_back(link);
  l.replication.link_port = "link";
  EXPECT_EQ(hwconf::LinkSteeringSlots(l), 0u);  // role none: no link at all
  l.replication.role = hwconf::ReplicationRole::kPrimary;
  EXPECT_EQ(hwconf::LinkSteeringSlots(l), 2u * 1024);
  l.ports[0].rx_queues = 4;
  EXPECT_EQ(hwconf::LinkSteeringSlots(l), 12u * 256);
  l.ports[0].rx_queues = 1;
  EXPECT_EQ(hwconf::LinkSteeringSlots(l), 0u);
  l.replication.link_port = "";  // kernel UDP: nothing to steer
  EXPECT_EQ(hwconf::LinkSteeringSlots(l), 0u);
}

// Rings in plain memory (rte_ring_init needs no EAL) and fake mbufs (never dereferenced).
class Steering : public ::testing::Test {
 protected:
  void SetUp() override {
    s_.channels = 3;
    for (uint16_t from = 0; from < 3; ++from) {
      wake_[from].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      ASSERT_GE(wake_[from].fd, 0);
      s_.wake[from] = &wake_[from];
      for (uint16_t to = 0; to < 3; ++to) {
        if (from == to) continue;
        const ssize_t bytes = rte_ring_get_memsize(kRingSize);
        ASSERT_GT(bytes, 0);
        void* mem = std::aligned_alloc(RTE_CACHE_LINE_SIZE,
                                       (static_cast<size_t>(bytes) + RTE_CACHE_LINE_SIZE - 1) &
                                           ~size_t{RTE_CACHE_LINE_SIZE - 1});
        ASSERT_NE(mem, nullptr);
        memory_.push_back(mem);
        auto* r = static_cast<rte_ring*>(mem);
        ASSERT_EQ(rte_ring_init(r, "t", kRingSize, RING_F_SP_ENQ | RING_F_SC_DEQ), 0);
        s_.rings[from][to] = r;
      }
    }
  }
  void TearDown() override {
    for (void* m : memory_) std::free(m);
    for (WakeSignal& w : wake_) close(w.fd);
  }
  static rte_mbuf* Fake(uintptr_t i) { return reinterpret_cast<rte_mbuf*>(0x10000 + i * 64); }
  uint64_t Wakes(uint16_t c) {
    uint64_t n = 0;
    return read(wake_[c].fd, &n, sizeof n) == sizeof n ? n : 0;
  }

  static constexpr unsigned kRingSize = 8;  // holds 7
  LinkSteering s_;
  WakeSignal wake_[3];
  std::vector<void*> memory_;
};

TEST_F(Steering, AFullRingDropsTheFrameCountedAndNeverWaits) {
  LinkSteer zero(s_, 0), one(s_, 1);
  uint32_t accepted = 0;
  for (uintptr_t i = 0; i < 10; ++i) accepted += zero.HandOff(1, Fake(i)) ? 1 : 0;
  EXPECT_EQ(accepted, 7u);
  EXPECT_EQ(zero.handed_off, 7u);
  EXPECT_EQ(zero.full, 3u);  // the caller frees those; the link's NAK/timeout recovers them
  EXPECT_FALSE(one.InboundEmpty());
  // Channel 1 takes them in order; once it did, there is room again.
  rte_mbuf* got[32];
  ASSERT_EQ(one.Take(got, 32), 7u);
  for (uintptr_t i = 0; i < 7; ++i) EXPECT_EQ(got[i], Fake(i));
  EXPECT_EQ(one.taken, 7u);
  EXPECT_TRUE(one.InboundEmpty());
  EXPECT_TRUE(zero.HandOff(1, Fake(99)));
  EXPECT_EQ(zero.full, 3u);
  ASSERT_EQ(one.Take(got, 32), 1u);
  EXPECT_EQ(got[0], Fake(99));
}

TEST_F(Steering, ASleepingChannelIsWokenAnAwakeOneIsNot) {
  LinkSteer zero(s_, 0);
  ASSERT_TRUE(zero.HandOff(2, Fake(1)));
  EXPECT_EQ(Wakes(2), 0u);  // awake: no system call
  wake_[2].sleeping.store(true);
  ASSERT_TRUE(zero.HandOff(2, Fake(2)));
  EXPECT_EQ(Wakes(2), 1u);
  EXPECT_EQ(Wakes(1), 0u);
}

TEST_F(Steering, EachChannelTakesFromEveryOtherNoRingStarves) {
  LinkSteer zero(s_, 0), one(s_, 1), two(s_, 2);
  for (uintptr_t i = 0; i < 7; ++i) {
    ASSERT_TRUE(zero.HandOff(2, Fake(i)));
    ASSERT_TRUE(one.HandOff(2, Fake(100 + i)));
  }
  // Takes of 2 alternate which ring goes first: both rings drain, each in its order.
  std::vector<uintptr_t> from_zero, from_one;
  rte_mbuf* got[2];
  for (int pass = 0; pass < 14 && !two.InboundEmpty(); ++pass) {
    const uint32_t n = two.Take(got, 2);
    ASSERT_GT(n, 0u);
    for (uint32_t i = 0; i < n; ++i) {
      const uintptr_t v = (reinterpret_cast<uintptr_t>(got[i]) - 0x10000) / 64;
      (v >= 100 ? from_one : from_zero).push_back(v);
    }
    if (pass == 0) {
      EXPECT_EQ(n, 2u);
    }
    if (pass == 1) {  // the second Take started at the other ring
      EXPECT_FALSE(from_zero.empty());
      EXPECT_FALSE(from_one.empty());
    }
  }
  EXPECT_TRUE(two.InboundEmpty());
  EXPECT_EQ(two.taken, 14u);
  ASSERT_EQ(from_zero.size(), 7u);
  ASSERT_EQ(from_one.size(), 7u);
  for (uintptr_t i = 0; i < 7; ++i) {
    EXPECT_EQ(from_zero[i], i);
    EXPECT_EQ(from_one[i], 100 + i);
  }
}

}  // namespace
}  // namespace sluice::dataplane
