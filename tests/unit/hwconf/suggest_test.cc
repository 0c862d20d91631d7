// Suggest on every fixture: the TOML it writes loads, is the layout it built, and passes the
// machine check without errors (the round trip); and it follows the rules of suggest.h.
#include "hwconf/suggest.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/unit/hwconf/machine_fixture.h"

namespace sluice::hwconf {
namespace {

using test::Codes;
using test::Dump;
using test::LoadMachine;

struct RoundTrip {
  Suggestion s;
  Layout loaded;
  std::vector<Finding> findings;
};

RoundTrip SuggestAndLoad(const Machine& m, SuggestOptions o = {}) {
  RoundTrip r;
  absl::StatusOr<Suggestion> s = Suggest(m, o);
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return r;
  r.s = *std::move(s);
  absl::StatusOr<Layout> loaded = LoadLayoutFromString(r.s.toml, "suggested.toml");
  EXPECT_TRUE(loaded.ok()) << loaded.status() << "\n" << r.s.toml;
  if (!loaded.ok()) return r;
  r.loaded = *std::move(loaded);
  r.findings = CheckOnMachine(r.loaded, m);
  // The file says what Suggest built.
  const Layout& a = r.s.layout;
  const Layout& b = r.loaded;
  EXPECT_EQ(a.eal.lcores, b.eal.lcores);
  EXPECT_EQ(a.eal.main_lcore, b.eal.main_lcore);
  EXPECT_EQ(a.eal.lcore_cpus, b.eal.lcore_cpus);
  EXPECT_EQ(a.eal.hugepages, b.eal.hugepages);
  EXPECT_EQ(a.eal.socket_mem_mb, b.eal.socket_mem_mb);
  EXPECT_EQ(a.eal.memory_mb, b.eal.memory_mb);
  EXPECT_EQ(a.shards, b.shards);
  EXPECT_EQ(a.storage.sqpoll_cpu, b.storage.sqpoll_cpu);
  EXPECT_EQ(a.ports.size(), b.ports.size());
  for (size_t i = 0; i < std::min(a.ports.size(), b.ports.size()); ++i) {
    EXPECT_EQ(a.ports[i].pci, b.ports[i].pci);
    EXPECT_EQ(a.ports[i].vdev, b.ports[i].vdev);
    EXPECT_EQ(a.ports[i].rx_queues, b.ports[i].rx_queues);
  }
  EXPECT_EQ(a.lcores.size(), b.lcores.size());
  for (size_t i = 0; i < std::min(a.lcores.size(), b.lcores.size()); ++i) {
    EXPECT_EQ(a.lcores[i].id, b.lcores[i].id);
    EXPECT_EQ(a.lcores[i].idle, b.lcores[i].idle);
    EXPECT_EQ(a.lcores[i].shards, b.lcores[i].shards);
    EXPECT_EQ(a.lcores[i].rx.size(), b.lcores[i].rx.size());
  }
  return r;
}

std::vector<int> WorkerCpus(const Layout& l) {
  std::vector<int> cpus;
  for (const Lcore& c : l.lcores) cpus.push_back(l.eal.CpuOf(c.id));
  return cpus;
}

TEST(SuggestTest, ServerDefaultTakesTheDpdkBoundNics) {
  const Machine m = LoadMachine("server-2s");
  const RoundTrip r = SuggestAndLoad(m);
  EXPECT_TRUE(r.findings.empty()) << Dump(r.findings) << r.s.toml;
  const Layout& l = r.loaded;
  ASSERT_EQ(l.ports.size(), 2u);  // the E810's two ports (vfio-pci); the ConnectX stays with mlx5
  EXPECT_EQ(l.ports[0].pci, "0000:3b:00.0");
  EXPECT_EQ(l.ports[1].pci, "0000:3b:00.1");
  EXPECT_EQ(l.eal.main_lcore, 0);
  EXPECT_EQ(l.eal.CpuOf(l.eal.main_lcore), 0);
  // Node 0 has spare cores 1, 2, 3: SQPOLL takes one, each port one worker on another.
  EXPECT_EQ(WorkerCpus(l), (std::vector<int>{1, 2}));
  EXPECT_TRUE(l.storage.sqpoll);
  EXPECT_EQ(l.storage.sqpoll_cpu, 3);
  for (const Lcore& c : l.lcores) EXPECT_EQ(c.idle, IdlePolicy::kPoll) << c.id;
  EXPECT_TRUE(l.eal.hugepages);
  ASSERT_EQ(l.eal.socket_mem_mb.size(), 2u);
  EXPECT_GT(l.eal.socket_mem_mb[0], 0u);
  EXPECT_EQ(l.eal.socket_mem_mb[1], 0u);
  EXPECT_NE(r.s.toml.find("CHANGE: the address this port answers for"), std::string::npos);
}

TEST(SuggestTest, ServerNicOnNodeOnePutsWorkersThereAvoidingItsIrqCore) {
  const RoundTrip r = SuggestAndLoad(LoadMachine("server-2s"), {.ports = {"0000:af:00.0"}});
  // Core 4 (CPUs 4, 12) takes the NIC's interrupts: workers on 5, 6, 7, one hyperthread each.
  EXPECT_EQ(WorkerCpus(r.loaded), (std::vector<int>{5, 6, 7}));
  EXPECT_EQ(r.loaded.ports[0].rx_queues, 3);
  EXPECT_FALSE(r.loaded.storage.sqpoll) << "no isolated core left over on node 1";
  // The one mbuf pool is on the main lcore's node (core 0 is on node 0).
  EXPECT_EQ(Codes(r.findings), "numa-remote-mempool") << Dump(r.findings);
  EXPECT_EQ(r.loaded.eal.socket_mem_mb[1], 256u) << "descriptor rings on the NIC's node";
}

TEST(SuggestTest, ServerNicsOnBothNodesAndExplicitQueues) {
  const RoundTrip r =
      SuggestAndLoad(LoadMachine("server-2s"), {.ports = {"0000:3b:00.0", "0000:af:00.0"}, .rx_queues = 2});
  EXPECT_EQ(WorkerCpus(r.loaded), (std::vector<int>{1, 2, 5, 6}));
  EXPECT_EQ(test::CountErrors(r.findings), 0u) << Dump(r.findings);
  EXPECT_EQ(Codes(r.findings), "numa-remote-mempool") << Dump(r.findings);
}

TEST(SuggestTest, TooManyQueuesOverflowAfterEveryPortHasItsOwn) {
  const RoundTrip r =
      SuggestAndLoad(LoadMachine("server-2s"), {.ports = {"0000:3b:00.0", "0000:af:00.0"}, .rx_queues = 4});
  const Machine m = LoadMachine("server-2s");
  EXPECT_EQ(r.loaded.lcores.size(), 8u);
  EXPECT_EQ(test::CountErrors(r.findings), 0u) << Dump(r.findings);
  // Node 1's cores went to its own port before node 0's overflow could take them.
  int node1_on_cx6 = 0;
  for (const Lcore& c : r.loaded.lcores) {
    if (c.rx[0].port == "client1" && m.Cpu(r.loaded.eal.CpuOf(c.id))->node == 1) {
      ++node1_on_cx6;
    }
  }
  EXPECT_GE(node1_on_cx6, 3);
}

TEST(SuggestTest, LaptopGetsATapPortAndAdaptiveWorkers) {
  const RoundTrip r = SuggestAndLoad(LoadMachine("laptop"));
  EXPECT_TRUE(r.findings.empty()) << Dump(r.findings);
  ASSERT_EQ(r.loaded.ports.size(), 1u);
  EXPECT_EQ(r.loaded.ports[0].vdev, "net_tap0,iface=sluice0");
  EXPECT_EQ(r.loaded.ports[0].kernel_ipv4, "198.18.0.2/24");
  EXPECT_EQ(WorkerCpus(r.loaded), (std::vector<int>{1, 2, 3}));  // one thread per core
  for (const Lcore& c : r.loaded.lcores) EXPECT_EQ(c.idle, IdlePolicy::kAdaptive);
  EXPECT_FALSE(r.loaded.storage.sqpoll);
  EXPECT_FALSE(r.loaded.eal.hugepages);
}

TEST(SuggestTest, LaptopNicLeavesTheMachineStepsToCheck) {
  const RoundTrip r = SuggestAndLoad(LoadMachine("laptop"), {.ports = {"0000:00:1f.6"}});
  // What suggest cannot do for the operator: bind the NIC, reserve hugepages. The IRQ core (2)
  // is avoided.
  EXPECT_EQ(Codes(r.findings), "pci-driver hugepages-short") << Dump(r.findings);
  for (int cpu : WorkerCpus(r.loaded)) EXPECT_NE(cpu, 2);
}

TEST(SuggestTest, TwoCoreVmIsTheTapLayout) {
  const RoundTrip r = SuggestAndLoad(LoadMachine("vm-2core"));
  EXPECT_TRUE(r.findings.empty()) << Dump(r.findings);
  const Layout tap = test::LoadShipped("tap.toml");
  EXPECT_EQ(r.loaded.eal.lcores, tap.eal.lcores);
  EXPECT_EQ(r.loaded.eal.main_lcore, tap.eal.main_lcore);
  EXPECT_EQ(r.loaded.ports[0].vdev, tap.ports[0].vdev);
  EXPECT_EQ(r.loaded.lcores[0].idle, IdlePolicy::kAdaptive);
  EXPECT_EQ(r.loaded.eal.memory_mb, tap.eal.memory_mb);
}

TEST(SuggestTest, TwoCoreVmWithTwoQueuesSharesACpu) {
  const RoundTrip r = SuggestAndLoad(LoadMachine("vm-2core"), {.rx_queues = 2});
  EXPECT_TRUE(r.findings.empty()) << Dump(r.findings);
  EXPECT_EQ(r.loaded.lcores.size(), 2u);
  EXPECT_FALSE(r.loaded.eal.lcore_cpus.empty());
  for (int lcore : r.loaded.eal.lcores) EXPECT_LT(r.loaded.eal.CpuOf(lcore), 2);
}

TEST(SuggestTest, OneCpuSharesItBetweenMainAndWorker) {
  Machine m = LoadMachine("vm-2core");
  m.cpus[1].online = false;
  const RoundTrip r = SuggestAndLoad(m);
  EXPECT_EQ(test::CountErrors(r.findings), 0u) << Dump(r.findings);
  EXPECT_EQ(r.loaded.eal.lcore_cpus, (std::vector<std::pair<int, int>>{{0, 0}, {1, 0}}));
  EXPECT_EQ(r.loaded.lcores[0].idle, IdlePolicy::kAdaptive);
}

TEST(SuggestTest, VdevPortsAreTakenVerbatim) {
  const RoundTrip r = SuggestAndLoad(LoadMachine("vm-2core"),
                          {.ports = {"net_memif0,role=server,socket=/run/sluice/memif.sock,id=0"}});
  EXPECT_TRUE(r.findings.empty()) << Dump(r.findings);
  EXPECT_EQ(r.loaded.ports[0].vdev, "net_memif0,role=server,socket=/run/sluice/memif.sock,id=0");
  EXPECT_TRUE(r.loaded.ports[0].kernel_ipv4.empty());
}

TEST(SuggestTest, BadPortsAreRefused) {
  const Machine m = LoadMachine("server-2s");
  absl::StatusOr<Suggestion> s = Suggest(m, {.ports = {"eth0"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("neither a PCI address"), std::string::npos) << s.status();
  s = Suggest(m, {.ports = {"0000:5e:00.0"}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("not a PCI device of"), std::string::npos) << s.status();
}

}  // namespace
}  // namespace sluice::hwconf
