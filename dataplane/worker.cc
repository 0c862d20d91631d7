#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "dataplane/frame_handler.h"
#include "dataplane/idle.h"
#include "protocol/assert.h"

namespace sluice::dataplane {

Worker::Worker(uint16_t index, const hwconf::Lcore& conf, const SharedRuntime& shared)
    : index_(index), conf_(conf), shared_(shared) {
  // Only client ports are set up so far; replication links (a later issue) are not polled yet.
  for (const hwconf::RxQueueRef& ref : conf.rx) {
    const hwconf::Port* port = shared.layout->FindPort(ref.port);
    SLUICE_ASSERT(port != nullptr);  // hwconf validated the reference
    if (port->role != hwconf::PortRole::kClient) continue;
    const PortRuntime* rt = nullptr;
    for (const PortRuntime& p : shared.ports)
      if (p.conf == port) rt = &p;
    SLUICE_ASSERT(rt != nullptr);
    rx_.push_back({rt, ref.queue});
  }
  for (uint16_t from = 0; from < shared.worker_count; ++from) {
    if (from != index && shared.rings[from][index] != nullptr) {
      inbound_.push_back(shared.rings[from][index]);
    }
  }
  uint16_t max_port = 0;
  for (const PortRuntime& p : shared.ports) max_port = std::max<uint16_t>(max_port, p.addr.port_id);
  tx_.resize(max_port + 1u);
  // Worker i transmits on TX queue i of every port: no TX queue is shared between lcores.
  for (const PortRuntime& p : shared.ports) tx_[p.addr.port_id] = TxBuffer(p.addr.port_id, index);
  handler_ = std::make_unique<FrameHandler>(*this, shared);
  tsc_start_ = rte_rdtsc();
}

Worker::~Worker() = default;

uint64_t Worker::NowNs() const {
  const uint64_t cycles = rte_rdtsc() - tsc_start_;
  // Split to avoid overflowing cycles * 1e9 after a few seconds.
  return (cycles / shared_.tsc_hz) * 1'000'000'000ull +
         (cycles % shared_.tsc_hz) * 1'000'000'000ull / shared_.tsc_hz;
}

bool Worker::HandOff(uint16_t to, rte_mbuf* m) {
  rte_ring* ring = shared_.rings[index_][to];
  SLUICE_ASSERT(ring != nullptr);
  if (rte_ring_sp_enqueue(ring, m) != 0) return false;
  ++counters_.handoffs_out;
  return true;
}

uint32_t Worker::PollRx() {
  uint32_t work = 0;
  rte_mbuf* pkts[kRxBurst];
  for (const RxQueue& q : rx_) {
    const uint16_t n = rte_eth_rx_burst(q.port->addr.port_id, q.queue, pkts, kRxBurst);
    work += n;
    counters_.rx_packets += n;
    for (uint16_t i = 0; i < n; ++i) {
      if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
      rte_mbuf* m = pkts[i];
      counters_.rx_bytes += m->pkt_len;
      Peer peer;
      switch (ClassifyFrame(m, q.port->addr, counters_, &peer)) {
        case RxVerdict::kDrop: rte_pktmbuf_free(m); break;
        case RxVerdict::kReply: Transmit(q.port->addr.port_id, m); break;
        case RxVerdict::kDatagram: handler_->OnDatagram(m, peer, *q.port); break;
      }
    }
  }
  return work;
}

uint32_t Worker::PollRings() {
  uint32_t work = 0;
  rte_mbuf* frames[kRxBurst];
  for (rte_ring* ring : inbound_) {
    const unsigned n = rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(frames), kRxBurst,
                                                 nullptr);
    counters_.handoffs_in += n;
    work += n;
    for (unsigned i = 0; i < n; ++i) handler_->OnHandoff(frames[i]);
  }
  return work;
}

void Worker::FlushTx() {
  for (TxBuffer& t : tx_) t.Flush(counters_);
}

int Worker::Run(const std::atomic<bool>& stop) {
  IdlePolicy idle(conf_.idle);
  while (!stop.load(std::memory_order_relaxed)) {
    ++counters_.loops;
    uint32_t work = PollRx();
    work += PollRings();
    work += handler_->Service(NowNs());
    FlushTx();
    if (idle.Idle(work)) ++counters_.idle_sleeps;
  }
  // Drain: what other lcores already handed us is still answered before the ports close.
  PollRings();
  handler_->Service(NowNs());
  FlushTx();
  return 0;
}

}  // namespace sluice::dataplane
