#include "hwconf/memory_budget.h"

#include <algorithm>

namespace sluice::hwconf {

MemoryBudget EstimateMemory(const Layout& layout) {
  const uint64_t workers = layout.lcores.size();
  uint64_t n = 0;
  uint64_t max_mtu = 1500;
  for (const Port& p : layout.ports) {
    n += uint64_t{p.rx_queues} * p.rx_descriptors + workers * p.tx_descriptors;
    max_mtu = std::max<uint64_t>(max_mtu, p.mtu);
  }
  n += workers * workers * layout.ring_size;
  n += LinkSteeringSlots(layout);
  n += (workers + 1) * (kMempoolCache + 4 * kRxBurst + kTxBufferCapacity * 4);
  uint64_t size = 1;
  while (size - 1 < n) size <<= 1;

  MemoryBudget b;
  b.mbufs = size - 1;
  const uint64_t data_room = std::max<uint64_t>(kDefaultDataRoom, max_mtu + 14 + 4) + kHeadroom;
  // The mempool puts a 64-byte header before each object and aligns objects to cache lines.
  b.mbuf_bytes = 64 + ((kMbufHeader + data_room + 63) & ~uint64_t{63});
  b.pool_bytes = b.mbufs * b.mbuf_bytes;
  const uint64_t rings = workers > 1 ? workers * (workers - 1) : 0;
  b.ring_bytes = rings * (uint64_t{layout.ring_size} * 8 + 128) + LinkSteeringSlots(layout) * 8;
  b.overhead_bytes = kEalOverheadBytes;
  b.total_bytes = b.pool_bytes + b.ring_bytes + b.overhead_bytes;
  return b;
}

}  // namespace sluice::hwconf
