#include "dataplane/link_steering.h"

#include <unistd.h>

#include "dataplane/worker.h"
#include "protocol/assert.h"

namespace sluice::dataplane {

int LinkFrameChannel(std::span<const uint8_t> f, uint16_t base_udp_port, uint16_t channels) {
  constexpr size_t kEth = 14;
  constexpr size_t kUdp = 8;
  if (channels == 0 || f.size() < kEth + 20) return kSteerHere;
  if (f[12] != 0x08 || f[13] != 0x00) return kSteerHere;  // not IPv4 (ARP: answered here)
  const uint8_t* ip = f.data() + kEth;
  if ((ip[0] >> 4) != 4) return kSteerHere;
  const size_t ihl = size_t{ip[0] & 0x0fu} * 4;
  if (ihl < 20 || f.size() < kEth + ihl + kUdp) return kSteerHere;
  if (ip[9] != 17) return kSteerHere;  // not UDP (ICMP echo: answered here)
  // A fragment (more to come, or an offset): a later one has no UDP header, and sluice drops
  // every fragment anyway (ClassifyFrame counts it).
  if (((ip[6] << 8 | ip[7]) & 0x3fff) != 0) return kSteerHere;
  const uint8_t* udp = ip + ihl;
  const uint32_t dst = uint32_t{udp[2]} << 8 | udp[3];
  if (dst < base_udp_port || dst - base_udp_port >= channels) return kSteerHere;
  return static_cast<int>(dst - base_udp_port);
}

LinkSteer::LinkSteer(const LinkSteering& s, uint16_t self) : s_(s), self_(self) {
  SLUICE_ASSERT(s.channels <= kMaxReplicationChannels && self < s.channels);
  for (uint16_t from = 0; from < s.channels; ++from) {
    if (from == self) continue;
    SLUICE_ASSERT(s.rings[from][self] != nullptr && s.rings[self][from] != nullptr);
    inbound_[inbound_count_++] = s.rings[from][self];
  }
}

bool LinkSteer::HandOff(uint16_t to, rte_mbuf* m) {
  SLUICE_ASSERT(to != self_ && to < s_.channels);
  if (rte_ring_sp_enqueue(s_.rings[self_][to], m) != 0) {
    ++full;
    return false;
  }
  ++handed_off;
  // As Worker::HandOff: a system call only when the other lcore sleeps (its seq_cst flag and
  // its last ring check before sleeping order this against its decision to sleep).
  if (WakeSignal* w = s_.wake[to]; w != nullptr && w->sleeping.load(std::memory_order_seq_cst)) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(w->fd, &one, sizeof one);
  }
  return true;
}

uint32_t LinkSteer::Take(rte_mbuf** out, uint32_t max) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < inbound_count_ && n < max; ++i) {
    rte_ring* r = inbound_[(next_inbound_ + i) % inbound_count_];
    n += rte_ring_sc_dequeue_burst(r, reinterpret_cast<void**>(out + n), max - n, nullptr);
  }
  if (inbound_count_ != 0) next_inbound_ = (next_inbound_ + 1) % inbound_count_;
  taken += n;
  return n;
}

bool LinkSteer::InboundEmpty() const {
  for (uint32_t i = 0; i < inbound_count_; ++i) {
    if (rte_ring_count(inbound_[i]) != 0) return false;
  }
  return true;
}

}  // namespace sluice::dataplane
