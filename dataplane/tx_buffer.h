// Replies an lcore has built during one loop pass, per port, sent in bursts at the end of the pass
// (or earlier when a buffer fills). What the TX queue does not take is freed and counted, never
// retried in a loop: the packet path does not block (l3fwd's send_burst does the same).
#pragma once

#include <array>
#include <cstdint>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "dataplane/counters.h"

namespace sluice::dataplane {

class TxBuffer {
 public:
  static constexpr uint16_t kCapacity = 64;

  TxBuffer() = default;
  TxBuffer(uint16_t port_id, uint16_t queue_id) : port_id_(port_id), queue_id_(queue_id) {}

  void Add(rte_mbuf* m, LcoreCounters& c) {
    pending_[count_++] = m;
    bytes_ += m->pkt_len;  // counted now: once sent, the mbuf is the driver's (memif frees it)
    if (count_ == kCapacity) Flush(c);
  }

  // Every pass flushes, and most passes have nothing to send: the check stays inline, the
  // burst does not (inlined, it made every caller save registers on each pass).
  uint16_t Flush(LcoreCounters& c) { return count_ == 0 ? 0 : Send(c); }

 private:
  [[gnu::noinline]] uint16_t Send(LcoreCounters& c) {
    const uint16_t sent = rte_eth_tx_burst(port_id_, queue_id_, pending_.data(), count_);
    for (uint16_t i = sent; i < count_; ++i) {
      c.Drop(DropReason::kTxFull);
      bytes_ -= pending_[i]->pkt_len;
      rte_pktmbuf_free(pending_[i]);
    }
    c.tx_bytes += bytes_;
    c.tx_packets += sent;
    const uint16_t n = count_;
    count_ = 0;
    bytes_ = 0;
    return n;
  }

  uint16_t port_id_ = 0;
  uint16_t queue_id_ = 0;
  uint16_t count_ = 0;
  uint64_t bytes_ = 0;  // of the pending mbufs
  std::array<rte_mbuf*, kCapacity> pending_{};
};

}  // namespace sluice::dataplane
