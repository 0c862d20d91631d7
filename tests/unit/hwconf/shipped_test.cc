// Every layout shipped in hwconf/ loads cleanly from the source tree, and says what its comments
// and hwconf/README.md promise about it.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "hwconf/loader.h"

namespace sluice::hwconf {
namespace {

Layout LoadShipped(const std::string& name) {
  const std::string path = std::string(SLUICE_SOURCE_DIR) + "/hwconf/" + name;
  absl::StatusOr<Layout> layout = LoadLayout(path);
  EXPECT_TRUE(layout.ok()) << layout.status();
  return layout.ok() ? *std::move(layout) : Layout{};
}

bool Has(const std::vector<std::string>& args, const std::string& a) {
  return std::find(args.begin(), args.end(), a) != args.end();
}

class ShippedLayoutTest : public testing::TestWithParam<std::string> {};

TEST_P(ShippedLayoutTest, LoadsCleanly) {
  const Layout l = LoadShipped(GetParam());
  EXPECT_FALSE(l.lcores.empty());
  EXPECT_FALSE(FormatLayout(l).empty());
}

INSTANTIATE_TEST_SUITE_P(All, ShippedLayoutTest,
                         testing::Values("tap.toml", "tap-2workers.toml", "memif-primary.toml",
                                         "memif-standby.toml", "examples/nic-2port.toml"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string name;
                           for (char c : info.param) name += std::isalnum(c) ? c : '_';
                           return name;
                         });

TEST(ShippedLayoutTest, TapRunsWithoutNicOrHugepages) {
  const Layout l = LoadShipped("tap.toml");
  ASSERT_EQ(l.ports.size(), 1u);
  EXPECT_EQ(l.ports[0].vdev, "net_tap0,iface=sluice0");
  EXPECT_EQ(l.ports[0].ipv4, "198.18.0.1");
  EXPECT_EQ(l.ports[0].kernel_ipv4, "198.18.0.2/24");
  EXPECT_EQ(l.eal.main_lcore, 0);
  ASSERT_EQ(l.lcores.size(), 1u);
  EXPECT_EQ(l.lcores[0].id, 1);
  EXPECT_EQ(l.lcores[0].idle, IdlePolicy::kAdaptive);
  EXPECT_EQ(l.shards, 2u);
  const auto args = EalArgs(l, "sluiced");
  EXPECT_TRUE(Has(args, "--no-huge"));
  EXPECT_TRUE(Has(args, "--no-pci"));
  ASSERT_GE(l.queues.size(), 2u);
  EXPECT_EQ(l.queues[0].name, "events");
  EXPECT_EQ(l.queues[0].type, QueueType::kStream);
  EXPECT_EQ(l.queues[1].name, "jobs");
  EXPECT_EQ(l.queues[1].type, QueueType::kWork);
}

TEST(ShippedLayoutTest, TwoWorkersShareTwoCpus) {
  const Layout l = LoadShipped("tap-2workers.toml");
  EXPECT_EQ(l.lcores.size(), 2u);
  EXPECT_EQ(l.ports[0].rx_queues, 2);
  EXPECT_EQ(l.shards, 4u);
  for (int lcore : l.eal.lcores) EXPECT_LT(l.eal.CpuOf(lcore), 2) << "lcore " << lcore;
  const auto args = EalArgs(l, "sluiced");
  EXPECT_EQ(args[1], "--lcores");
  EXPECT_EQ(args[2], "0@0,1@0,2@1");
}

TEST(ShippedLayoutTest, MemifPairIsConsistent) {
  const Layout primary = LoadShipped("memif-primary.toml");
  const Layout standby = LoadShipped("memif-standby.toml");
  EXPECT_EQ(primary.replication.role, ReplicationRole::kPrimary);
  EXPECT_EQ(standby.replication.role, ReplicationRole::kStandby);
  EXPECT_NE(primary.eal.file_prefix, standby.eal.file_prefix);
  EXPECT_NE(primary.control.listen, standby.control.listen);
  EXPECT_NE(primary.storage.data_dirs, standby.storage.data_dirs);
  EXPECT_NE(primary.control.metadata_dir, standby.control.metadata_dir);
  // Each names the other's link endpoint as its peer.
  const Port* p_link = primary.FindPort(primary.replication.link_port);
  const Port* s_link = standby.FindPort(standby.replication.link_port);
  ASSERT_NE(p_link, nullptr);
  ASSERT_NE(s_link, nullptr);
  EXPECT_EQ(primary.replication.peer, s_link->ipv4 + ":" + std::to_string(s_link->udp_port));
  EXPECT_EQ(standby.replication.peer, p_link->ipv4 + ":" + std::to_string(p_link->udp_port));
  EXPECT_NE(p_link->vdev.find("role=server"), std::string::npos);
  EXPECT_NE(s_link->vdev.find("role=client"), std::string::npos);
  EXPECT_EQ(p_link->vdev.substr(p_link->vdev.find("socket=")),
            s_link->vdev.substr(s_link->vdev.find("socket=")))
      << "both ends of the link use one socket and id";
}

TEST(ShippedLayoutTest, NicExampleUsesHugepagesAndPolls) {
  const Layout l = LoadShipped("examples/nic-2port.toml");
  EXPECT_TRUE(l.eal.hugepages);
  EXPECT_EQ(l.lcores.size(), 4u);
  for (const Lcore& c : l.lcores) EXPECT_EQ(c.idle, IdlePolicy::kPoll);
  ASSERT_EQ(l.ports.size(), 2u);
  EXPECT_FALSE(l.ports[0].pci.empty());
  EXPECT_FALSE(l.ports[1].pci.empty());
  const auto args = EalArgs(l, "sluiced");
  EXPECT_FALSE(Has(args, "--no-huge"));
  EXPECT_FALSE(Has(args, "--no-pci"));
  EXPECT_TRUE(Has(args, "--socket-mem"));
}

}  // namespace
}  // namespace sluice::hwconf
