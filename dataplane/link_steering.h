// Software steering of replication link frames between channels (docs/replication.md §1).
//
// Every worker lcore that owns shards is a replication channel: it polls RX queue c of the link
// port and transmits on TX queue c. Only memif delivers queue c of one box to queue c of the
// other. af_packet (PACKET_FANOUT_HASH over its per-queue sockets) and a NIC (RSS) put a frame on
// a queue by its flow hash, so a frame of channel j may arrive on channel k's queue. Which
// channel a frame belongs to is named by its UDP destination port: channel c sends from port
// base + c of its box to port base + c of the peer (the sender's distinct source port also spreads
// the channels over the queues of a hashing receiver). The lcore that received a frame of another
// channel hands it, mbuf and all, to that channel's lcore through a single-producer /
// single-consumer rte_ring (one per ordered pair of channels); the receiving channel then handles
// it as if its own queue had delivered it. A full ring drops the frame, counted: the link
// protocol's NAK and retransmission timeout recover it, and the receiving lcore never waits.
// (On a NIC that supports rte_flow, a rule per channel matching UDP destination port base + c
// with a QUEUE action to queue c would deliver every frame where it belongs and leave the rings
// empty; not built.)
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "hwconf/memory_budget.h"

namespace sluice::dataplane {

struct WakeSignal;  // dataplane/worker.h

inline constexpr uint32_t kMaxReplicationChannels = 16;

// LinkFrameChannel's answer for a frame that names no channel: ARP, ICMP, another UDP port, an IP
// fragment, a frame too short to tell. The lcore that received it handles it (answers ARP and
// ICMP on the link, counts and drops the rest).
inline constexpr int kSteerHere = -1;

// Pure: the channel a frame received on the link belongs to, from its UDP destination port
// (base_udp_port + channel, host order), or kSteerHere. `frame` starts at the Ethernet header.
// Reads only the headers, trusts nothing: any length or field that does not fit is kSteerHere.
int LinkFrameChannel(std::span<const uint8_t> frame, uint16_t base_udp_port, uint16_t channels);

// Entries of each (from, to) ring: about 1024 frames in flight towards a channel whatever the
// channel count, at least 128 per ring. The mempool holds an mbuf for every slot
// (hwconf::LinkSteeringSlots, which the layout's memory check counts too).
constexpr uint32_t LinkRingSize(uint32_t channels) { return hwconf::LinkSteeringRingSize(channels); }

// The rings and wake-ups, set up by the main thread before the workers start, read-only after.
struct LinkSteering {
  uint16_t channels = 0;  // 0 or 1: nothing to steer (one channel, or the kernel UDP link)
  std::array<std::array<rte_ring*, kMaxReplicationChannels>, kMaxReplicationChannels> rings{};
  std::array<WakeSignal*, kMaxReplicationChannels> wake{};  // the worker of each channel
};

// One channel's end of the steering: it alone enqueues on rings[self][*] and dequeues from
// rings[*][self]. Counters are plain: one thread owns the channel.
class LinkSteer {
 public:
  LinkSteer(const LinkSteering& s, uint16_t self);

  // Hands `m` to channel `to` (!= self) and wakes its lcore if it sleeps. False when the ring is
  // full: counted in `full`, and the caller frees `m` (the frame is lost; the link recovers).
  bool HandOff(uint16_t to, rte_mbuf* m);
  // Frames other channels handed to this one, at most `max`, oldest first per ring.
  uint32_t Take(rte_mbuf** out, uint32_t max);
  bool InboundEmpty() const;

  uint64_t handed_off = 0;  // frames given to another channel's lcore
  uint64_t full = 0;        // frames dropped: the other channel's ring was full
  uint64_t taken = 0;       // frames other channels' lcores handed to this one

 private:
  const LinkSteering& s_;
  uint16_t self_;
  std::array<rte_ring*, kMaxReplicationChannels> inbound_{};
  uint32_t inbound_count_ = 0;
  uint32_t next_inbound_ = 0;  // Take starts here: no ring starves the others
};

}  // namespace sluice::dataplane
