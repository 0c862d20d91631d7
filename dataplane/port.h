// Port setup from the layout: find the ethdev a hwconf port names, configure queues,
// descriptors, RSS and MTU, start it. One function per step, each failing with context.
#pragma once

#include <cstdint>
#include <string>

#include <rte_mempool.h>

#include "absl/status/statusor.h"
#include "dataplane/net.h"
#include "hwconf/layout.h"

namespace sluice::dataplane {

struct PortRuntime {
  const hwconf::Port* conf = nullptr;
  PortAddress addr;
  uint16_t rx_queues = 0;
  uint16_t tx_queues = 0;
  bool rss = false;            // false when the PMD cannot hash UDP (e.g. TAP without rte_flow)
  bool rx_cksum_offload = false;
  bool rx_interrupts = false;  // RX queue interrupts armed: an idle worker sleeps until a packet
  // False for a replication link whose start failed (a memif client whose server is not there
  // yet): the worker that polls it starts it later (ReplicationShell).
  bool started = true;
  std::string driver;
};

// The ethdev port id of a hwconf port: a vdev is named by its driver instance ("net_tap0"),
// a PCI device by its address.
absl::StatusOr<uint16_t> FindPortId(const hwconf::Port& port);

// Configures and starts the port. `tx_queues` is one per worker lcore so that every lcore can
// transmit replies without sharing a queue.
absl::StatusOr<PortRuntime> SetupPort(const hwconf::Port& port, rte_mempool* pool,
                                      uint16_t tx_queues);

// Stops and closes the port; logs but does not fail (shutdown path).
void ClosePort(const PortRuntime& port);

}  // namespace sluice::dataplane
