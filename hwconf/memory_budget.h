// What a layout needs from DPDK's memory: the mbuf pool that sluiced creates (dataplane/main.cc
// CreateMempool), the hand-off rings, and an allowance for EAL and the PMDs. The layout check
// compares it with eal.memory_mb or the main lcore's socket_mem_mb, and with free hugepages.
//
// The mbuf count follows CreateMempool's formula (every RX and TX descriptor, every ring slot —
// the replication link's steering rings too —, every lcore's cache and bursts, rounded up to
// 2^n - 1); when one changes, so must the other
// (memory_budget_test pins the numbers for the shipped layouts).
#pragma once

#include <cstdint>

#include "hwconf/layout.h"

namespace sluice::hwconf {

struct MemoryBudget {
  uint64_t mbufs = 0;           // in the pool
  uint64_t mbuf_bytes = 0;      // one mbuf with its mempool header, data room and headroom
  uint64_t pool_bytes = 0;      // mbufs * mbuf_bytes
  uint64_t ring_bytes = 0;      // the (from, to) hand-off rings
  uint64_t overhead_bytes = 0;  // EAL, PMD descriptor rings, hash tables: an allowance
  uint64_t total_bytes = 0;

  uint64_t TotalMiB() const { return (total_bytes + (1 << 20) - 1) >> 20; }
};

// Mirrors of the dataplane constants the formula uses (hwconf does not include dataplane/):
// Worker::kRxBurst, TxBuffer::kCapacity, the mempool cache size, RTE_MBUF_DEFAULT_DATAROOM,
// RTE_PKTMBUF_HEADROOM and sizeof(rte_mbuf).
inline constexpr uint64_t kRxBurst = 32;
inline constexpr uint64_t kTxBufferCapacity = 64;
inline constexpr uint64_t kMempoolCache = 256;
inline constexpr uint64_t kDefaultDataRoom = 2048;
inline constexpr uint64_t kHeadroom = 128;
inline constexpr uint64_t kMbufHeader = 128;
// Not measured per PMD: EAL's memzones and malloc heap, descriptor rings (a few MiB at most at
// 32768 descriptors x 1024 queues is not a layout anyone runs), the address-check hash tables.
inline constexpr uint64_t kEalOverheadBytes = 64ull << 20;

// The replication link's steering rings (dataplane/link_steering.h): one per ordered pair of
// channels (the link port's rx_queues), each of LinkSteeringRingSize entries — about 1024 frames
// in flight towards a channel whatever the channel count, at least 128 per ring (a power of two).
// The pool holds an mbuf for every slot.
constexpr uint32_t LinkSteeringRingSize(uint32_t channels) {
  if (channels <= 1) return 0;
  uint32_t size = 1024;
  while (size > 128 && size * (channels - 1) > 1024) size /= 2;
  return size;
}
inline uint64_t LinkSteeringSlots(const Layout& layout) {
  if (layout.replication.role == ReplicationRole::kNone) return 0;
  for (const Port& p : layout.ports) {
    if (p.name == layout.replication.link_port) {
      return uint64_t{p.rx_queues} * (p.rx_queues - 1u) * LinkSteeringRingSize(p.rx_queues);
    }
  }
  return 0;
}

MemoryBudget EstimateMemory(const Layout& layout);

}  // namespace sluice::hwconf
