// The EAL argv a layout implies, exactly: sluiced hands it to rte_eal_init as is.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "hwconf/loader.h"
#include "tests/unit/hwconf/test_util.h"

namespace sluice::hwconf {
namespace {

using Args = std::vector<std::string>;

Layout MustLoad(const std::string& text) {
  absl::StatusOr<Layout> layout = LoadLayoutFromString(text, "t.toml");
  EXPECT_TRUE(layout.ok()) << layout.status();
  return layout.ok() ? *std::move(layout) : Layout{};
}

TEST(EalArgsTest, TapWithoutHugepages) {
  const Layout l = MustLoad(std::string(test::kMinimal));
  EXPECT_EQ(EalArgs(l, "sluiced"),
            (Args{"sluiced", "-l", "0,1", "--main-lcore", "0", "-m", "512", "--no-huge",
                  "--file-prefix", "sluice", "--vdev", "net_tap0,iface=sluice0", "--no-pci"}));
}

TEST(EalArgsTest, LcoreCpusSwitchToLcoresNotation) {
  // Lcore 1 is not in the map, so it runs on CPU 1, its own number.
  const Layout l = MustLoad(test::Edit("lcores = [0, 1]",
                                       "lcores = [0, 1, 2]\nmain_lcore = 2\n"
                                       "lcore_cpus = \"2@0,0@1\"",
                                       ""));
  ASSERT_FALSE(l.lcores.empty());
  const Args args = EalArgs(l, "x");
  EXPECT_EQ(args[1], "--lcores");
  EXPECT_EQ(args[2], "0@1,1@1,2@0") << "every lcore, in eal.lcores order";
  EXPECT_EQ(args[3], "--main-lcore");
  EXPECT_EQ(args[4], "2");
}

TEST(EalArgsTest, HugepagesWithSocketMemory) {
  const Layout l = MustLoad(test::Edit(
      "lcores = [0, 1]", "lcores = [0, 1]\nhugepages = true\nsocket_mem_mb = [4096, 0]"));
  const Args args = EalArgs(l, "x");
  EXPECT_EQ(args, (Args{"x", "-l", "0,1", "--main-lcore", "0", "--socket-mem", "4096,0",
                        "--file-prefix", "sluice", "--vdev", "net_tap0,iface=sluice0",
                        "--no-pci"}));
}

TEST(EalArgsTest, HugepagesWithoutSocketMemoryUseMinusM) {
  const Layout l = MustLoad(
      test::Edit("lcores = [0, 1]", "lcores = [0, 1]\nhugepages = true\nmemory_mb = 2048"));
  const Args args = EalArgs(l, "x");
  EXPECT_EQ(args[5], "-m");
  EXPECT_EQ(args[6], "2048");
  EXPECT_EQ(std::find(args.begin(), args.end(), "--no-huge"), args.end());
}

TEST(EalArgsTest, PciPortsAreAllowListedAndVdevsAdded) {
  const Layout l = MustLoad(test::Edit(
      "rx = [\"client0:0\"]", "rx = [\"client0:0\", \"nic:0\"]",
      "\n[[port]]\nname = \"nic\"\npci = \"0000:3b:00.0,rxq_cqe_comp_en=0\"\nipv4 = \"10.0.0.1\"\n"));
  const Args args = EalArgs(l, "x");
  const Args tail(args.begin() + 10, args.end());
  EXPECT_EQ(tail, (Args{"--vdev", "net_tap0,iface=sluice0", "-a", "0000:3b:00.0,rxq_cqe_comp_en=0"}))
      << "ports in file order; no --no-pci once a PCI port exists";
}

TEST(EalArgsTest, ExtraArgsComeLastVerbatim) {
  const Layout l = MustLoad(test::Edit(
      "lcores = [0, 1]",
      "lcores = [0, 1]\nfile_prefix = \"p2\"\nextra_args = [\"--log-level=pmd.net.tap:debug\", "
      "\"--iova-mode=va\"]"));
  const Args args = EalArgs(l, "x");
  ASSERT_GE(args.size(), 2u);
  EXPECT_EQ(args[args.size() - 2], "--log-level=pmd.net.tap:debug");
  EXPECT_EQ(args.back(), "--iova-mode=va");
  EXPECT_NE(std::find(args.begin(), args.end(), "p2"), args.end());
}

TEST(EalArgsTest, NeverInMemory) {
  const Layout l = MustLoad(std::string(test::kMinimal));
  for (const std::string& a : EalArgs(l, "x")) EXPECT_NE(a, "--in-memory");
}

TEST(EalArgsTest, HandBuiltLayoutResolvesMainLcore) {
  Layout l;
  l.eal.lcores = {4, 5};
  const Args args = EalArgs(l, "x");
  EXPECT_EQ(args[3], "--main-lcore");
  EXPECT_EQ(args[4], "4") << "main_lcore -1 = first of eal.lcores";
}

}  // namespace
}  // namespace sluice::hwconf
