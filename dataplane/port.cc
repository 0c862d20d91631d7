#include <cstdio>
#include "dataplane/port.h"

#include <arpa/inet.h>

#include <rte_ethdev.h>

#include "absl/strings/str_format.h"
#include "protocol/assert.h"

namespace sluice::dataplane {
namespace {

absl::Status PortError(const hwconf::Port& port, std::string_view step, int rc) {
  return absl::InternalError(absl::StrFormat("port '%s': %s failed: %s (rc=%d)", port.name, step,
                                             rte_strerror(-rc), rc));
}

rte_eth_conf MakeConf(const hwconf::Port& port, const rte_eth_dev_info& info, PortRuntime* rt) {
  rte_eth_conf conf{};
  conf.rxmode.mtu = port.mtu;
  // RSS over the UDP 5-tuple spreads clients over RX queues; only where the PMD can do it.
  const uint64_t want_rss = RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_IPV4;
  if (port.rx_queues > 1 && (info.flow_type_rss_offloads & want_rss) != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads & want_rss;
    rt->rss = true;
  }
  const uint64_t want_rx = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
  if ((info.rx_offload_capa & want_rx) == want_rx) {
    conf.rxmode.offloads |= want_rx;
    rt->rx_cksum_offload = true;
  }
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE) {
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
  }
  return conf;
}

}  // namespace

absl::StatusOr<uint16_t> FindPortId(const hwconf::Port& port) {
  std::string name = !port.vdev.empty() ? port.vdev.substr(0, port.vdev.find(',')) : port.pci;
  uint16_t id = 0;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &id) != 0) {
    return absl::NotFoundError(absl::StrFormat(
        "port '%s': no ethdev named '%s' after EAL init (is the driver loaded, the device bound "
        "to a DPDK driver, or the vdev string valid?)", port.name, name));
  }
  return id;
}

absl::StatusOr<PortRuntime> SetupPort(const hwconf::Port& port, rte_mempool* pool,
                                      uint16_t tx_queues) {
  auto id = FindPortId(port);
  if (!id.ok()) return id.status();
  PortRuntime rt;
  rt.conf = &port;
  rt.addr.port_id = *id;

  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(*id, &info); rc != 0) return PortError(port, "dev_info_get", rc);
  rt.driver = info.driver_name;
  if (port.rx_queues > info.max_rx_queues || tx_queues > info.max_tx_queues) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "port '%s' (%s): layout asks for %u rx / %u tx queues, the device has at most %u / %u",
        port.name, rt.driver, port.rx_queues, tx_queues, info.max_rx_queues, info.max_tx_queues));
  }
  rte_eth_conf conf = MakeConf(port, info, &rt);
  // RX interrupts let an idle adaptive worker sleep until the next packet; not every PMD has
  // them, so try with and fall back to sleeping on a timer.
  conf.intr_conf.rxq = 1;
  rt.rx_interrupts = rte_eth_dev_configure(*id, port.rx_queues, tx_queues, &conf) == 0;
  if (!rt.rx_interrupts) {
    conf.intr_conf.rxq = 0;
    if (int rc = rte_eth_dev_configure(*id, port.rx_queues, tx_queues, &conf); rc != 0) {
      return PortError(port, "dev_configure", rc);
    }
  }
  uint16_t rx_desc = port.rx_descriptors, tx_desc = port.tx_descriptors;
  if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(*id, &rx_desc, &tx_desc); rc != 0) {
    return PortError(port, "adjust_nb_rx_tx_desc", rc);
  }
  const int socket = rte_eth_dev_socket_id(*id);
  for (uint16_t q = 0; q < port.rx_queues; ++q) {
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    if (int rc = rte_eth_rx_queue_setup(*id, q, rx_desc, socket, &rxconf, pool); rc != 0) {
      return PortError(port, absl::StrFormat("rx_queue_setup(%u)", q), rc);
    }
  }
  for (uint16_t q = 0; q < tx_queues; ++q) {
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    if (int rc = rte_eth_tx_queue_setup(*id, q, tx_desc, socket, &txconf); rc != 0) {
      return PortError(port, absl::StrFormat("tx_queue_setup(%u)", q), rc);
    }
  }
  if (int rc = rte_eth_dev_start(*id); rc != 0) {
    if (port.role != hwconf::PortRole::kReplication) return PortError(port, "dev_start", rc);
    // The other box may be down (a memif client finds no server socket): start it later.
    std::fprintf(stderr, "sluiced: port '%s' (replication link) did not start (%s); the lcore "
                 "that polls it retries\n", port.name.c_str(), rte_strerror(-rc));
    rt.started = false;
  }
  // A PMD may accept intr_conf.rxq and still give its queues no event fd (DPDK 22.11's memif and
  // af_packet: "Rx Intr handle unset"): no RX interrupts, then, and an idle adaptive worker
  // sleeps on a timer (hwconf::Lcore::idle_sleep_max_us).
  for (uint16_t q = 0; rt.rx_interrupts && q < port.rx_queues; ++q) {
    rt.rx_interrupts = rte_eth_dev_rx_intr_ctl_q_get_fd(*id, q) >= 0;
  }
  if (int rc = rte_eth_macaddr_get(*id, &rt.addr.mac); rc != 0) {
    return PortError(port, "macaddr_get", rc);
  }
  in_addr a{};
  SLUICE_ASSERT(inet_pton(AF_INET, port.ipv4.c_str(), &a) == 1);  // validated by hwconf
  rt.addr.ipv4 = a.s_addr;
  rt.addr.udp_port = rte_cpu_to_be_16(port.udp_port);
  rt.rx_queues = port.rx_queues;
  rt.tx_queues = tx_queues;
  return rt;
}

void ClosePort(const PortRuntime& port) {
  const uint16_t id = port.addr.port_id;
  if (int rc = rte_eth_dev_stop(id); rc != 0) {
    fprintf(stderr, "sluiced: port '%s': stop failed: %s\n", port.conf->name.c_str(),
            rte_strerror(-rc));
  }
  rte_eth_dev_close(id);
}

}  // namespace sluice::dataplane
