// ReadMachine on the fixture topologies: what hwloc's XML and the fake sysfs/procfs say comes out
// in the Machine; and on this machine, that it reads at all.
#include <gtest/gtest.h>

#include "tests/unit/hwconf/machine_fixture.h"

namespace sluice::hwconf {
namespace {

using test::LoadMachine;

TEST(CpuListTest, ParsesAndFormats) {
  std::vector<int> cpus;
  ASSERT_TRUE(ParseCpuList("0-3,8,10-11", &cpus));
  EXPECT_EQ(cpus, (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(FormatCpuList(cpus), "0-3,8,10-11");
  ASSERT_TRUE(ParseCpuList("", &cpus));
  EXPECT_TRUE(cpus.empty());
  for (const char* bad : {"a", "3-1", "1,", "-1", "0-99999"}) {
    EXPECT_FALSE(ParseCpuList(bad, &cpus)) << bad;
  }
}

TEST(MachineTest, TwoSocketServer) {
  const Machine m = LoadMachine("server-2s");
  ASSERT_EQ(m.cpus.size(), 16u);
  EXPECT_EQ(m.nodes, 2);
  // Intel numbering: the sibling of CPU N is N + 8; node 0 has cores 0-3.
  EXPECT_EQ(m.Siblings(1), std::vector<int>{9});
  EXPECT_EQ(m.Siblings(12), std::vector<int>{4});
  EXPECT_EQ(m.Cpu(3)->node, 0);
  EXPECT_EQ(m.Cpu(11)->node, 0);
  EXPECT_EQ(m.Cpu(4)->node, 1);
  EXPECT_EQ(m.Cpu(5)->package, 1);
  EXPECT_EQ(FormatCpuList(m.CpusOfNode(1)), "4-7,12-15");
  EXPECT_FALSE(m.Cpu(0)->isolated);
  EXPECT_TRUE(m.Cpu(1)->isolated);
  EXPECT_TRUE(m.Cpu(1)->nohz_full);
  EXPECT_FALSE(m.Cpu(4)->isolated);
  for (const MachineCpu& c : m.cpus) EXPECT_TRUE(c.online && c.allowed) << c.id;

  const PciDevice* e810 = m.Pci("3b:00.0");  // short and upper-case spellings find it too
  ASSERT_NE(e810, nullptr);
  EXPECT_EQ(e810->address, "0000:3b:00.0");
  EXPECT_EQ(e810->node, 0);
  EXPECT_EQ(e810->driver, "vfio-pci");
  EXPECT_TRUE(e810->irqs.empty());
  const PciDevice* cx6 = m.Pci("0000:AF:00.0");
  ASSERT_NE(cx6, nullptr);
  EXPECT_EQ(cx6->node, 1);
  EXPECT_EQ(cx6->driver, "mlx5_core");
  EXPECT_EQ(cx6->netdevs, std::vector<std::string>{"ens6f0np0"});
  ASSERT_EQ(cx6->irqs.size(), 4u);
  EXPECT_EQ(cx6->irqs[0].number, 120);
  EXPECT_EQ(cx6->irqs[0].cpus, std::vector<int>{4});
  EXPECT_EQ(cx6->irqs[1].cpus, std::vector<int>{12});
  EXPECT_NE(cx6->irqs[0].name.find("mlx5_comp0@pci:0000:af:00.0"), std::string::npos)
      << cx6->irqs[0].name;

  EXPECT_TRUE(m.hugetlbfs_mounted);
  EXPECT_EQ(m.FreeHugepageBytes(0), (2ull << 30) + (8ull << 30));  // 1024 x 2M + 8 x 1G
  EXPECT_EQ(m.FreeHugepageBytes(1), 4ull << 30);
  EXPECT_EQ(m.FreeHugepageBytes(-1), 14ull << 30);
}

TEST(MachineTest, Laptop) {
  const Machine m = LoadMachine("laptop");
  ASSERT_EQ(m.cpus.size(), 8u);
  EXPECT_EQ(m.nodes, 1);
  EXPECT_EQ(m.Siblings(1), std::vector<int>{5});
  for (const MachineCpu& c : m.cpus) EXPECT_FALSE(c.isolated) << c.id;
  EXPECT_EQ(m.FreeHugepageBytes(-1), 0u);
  EXPECT_TRUE(m.hugetlbfs_mounted);
  const PciDevice* nic = m.Pci("0000:00:1f.6");
  ASSERT_NE(nic, nullptr);
  EXPECT_EQ(nic->node, 0) << "one node: numa_node -1 means node 0";
  EXPECT_EQ(nic->driver, "e1000e");
  ASSERT_EQ(nic->irqs.size(), 1u);
  EXPECT_EQ(nic->irqs[0].cpus, std::vector<int>{2});
}

TEST(MachineTest, TwoCoreVm) {
  const Machine m = LoadMachine("vm-2core");
  ASSERT_EQ(m.cpus.size(), 2u);
  EXPECT_TRUE(m.Siblings(0).empty());
  EXPECT_FALSE(m.hugetlbfs_mounted);
  const PciDevice* nic = m.Pci("0000:00:03.0");
  ASSERT_NE(nic, nullptr);
  EXPECT_EQ(nic->driver, "virtio-pci");
  ASSERT_EQ(nic->irqs.size(), 3u);
  EXPECT_EQ(nic->irqs[0].cpus, (std::vector<int>{0, 1}));
}

// Without the sysfs part, hwloc's own view stands: every CPU online, nothing isolated, the
// hugepages the XML lists as reserved taken as free.
TEST(MachineTest, TopologyWithoutSysfs) {
  MachineSource s = test::FixtureSource("server-2s");
  s.root = testing::TempDir() + "/no-such-root";
  absl::StatusOr<Machine> m = ReadMachine(s);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->cpus.size(), 16u);
  EXPECT_FALSE(m->Cpu(1)->isolated);
  EXPECT_EQ(m->FreeHugepageBytes(1), 4ull << 30);
  EXPECT_EQ(m->Pci("0000:af:00.0")->node, 1) << "from hwloc's PCI locality";
  EXPECT_TRUE(m->Pci("0000:af:00.0")->irqs.empty());
}

TEST(MachineTest, BadTopologyFileIsAnError) {
  absl::StatusOr<Machine> m = ReadMachine({.topology_xml = "/nonexistent/topology.xml"});
  EXPECT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("/nonexistent/topology.xml"), std::string::npos)
      << m.status();
}

TEST(MachineTest, ThisMachineReads) {
  absl::StatusOr<Machine> m = ReadMachine({});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->source, "this machine");
  ASSERT_FALSE(m->cpus.empty());
  EXPECT_TRUE(std::any_of(m->cpus.begin(), m->cpus.end(),
                          [](const MachineCpu& c) { return c.online && c.allowed; }));
  EXPECT_GE(m->nodes, 1);
}

}  // namespace
}  // namespace sluice::hwconf
