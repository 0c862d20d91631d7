// CheckOnMachine: each rule fires on the layout and machine it is about, with the severity,
// the names and the fix it promises, and stays quiet on a layout that is right.
#include <gtest/gtest.h>

#include "hwconf/memory_budget.h"
#include "tests/unit/hwconf/machine_fixture.h"

namespace sluice::hwconf {
namespace {

using test::Codes;
using test::CountErrors;
using test::Dump;
using test::LoadMachine;
using test::MustLoad;
using test::ServerWith;

const Finding* Find(const std::vector<Finding>& fs, std::string_view code) {
  for (const Finding& f : fs) {
    if (f.code == code) return &f;
  }
  return nullptr;
}

bool Mentions(const Finding* f, std::string_view text) {
  return f != nullptr && (f->what + " " + f->why + " " + f->fix).find(text) != std::string::npos;
}

// kServerGood with worker lcore 2 as lcore `id` (on CPU `id`).
std::string MoveWorker2(int id) {
  const std::string text = ServerWith("lcores = [0, 1, 2]", "lcores = [0, 1, " + std::to_string(id) + "]");
  std::string out = text;
  out.replace(out.find("id = 2"), 6, "id = " + std::to_string(id));
  return out;
}

class ServerTest : public testing::Test {
 protected:
  std::vector<Finding> Check(std::string_view toml) { return CheckOnMachine(MustLoad(toml), m_); }
  Machine m_ = LoadMachine("server-2s");
};

TEST_F(ServerTest, GoodLayoutHasNoFinding) {
  const auto fs = Check(test::kServerGood);
  EXPECT_TRUE(fs.empty()) << Dump(fs);
}

TEST_F(ServerTest, CrossNumaPollingIsAWarning) {
  // Worker 2 moves to CPU 5, on node 1, while the NIC is on node 0.
  const auto fs = Check(MoveWorker2(5));
  EXPECT_EQ(Codes(fs), "numa-remote-poll") << Dump(fs);
  const Finding* f = Find(fs, "numa-remote-poll");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->severity, Severity::kWarning);
  EXPECT_TRUE(Mentions(f, "worker lcore 5 (CPU 5, node 1) polls client0:1 of 0000:3b:00.0 on node 0"))
      << f->what;
  EXPECT_TRUE(Mentions(f, "a CPU of node 0 (0-3,8-11)")) << f->fix;
}

TEST_F(ServerTest, HyperthreadSiblingsBothPollingIsAWarning) {
  // CPU 9 is CPU 1's sibling; both workers poll.
  const auto fs = Check(MoveWorker2(9));
  EXPECT_EQ(Codes(fs), "ht-siblings-poll") << Dump(fs);
  EXPECT_TRUE(Mentions(Find(fs, "ht-siblings-poll"), "worker lcore 1 on CPU 1 and worker lcore 9 on CPU 9"));
  // With one of them adaptive, they no longer both spin.
  std::string text = MoveWorker2(9);
  text.replace(text.rfind("\"poll\""), 6, "\"adaptive\"");
  EXPECT_TRUE(Check(text).empty()) << Dump(Check(text));
}

TEST_F(ServerTest, SqpollOnAPollersSiblingIsAWarning) {
  const auto fs = Check(ServerWith("sqpoll_cpu = 3", "sqpoll_cpu = 10"));  // sibling of CPU 2
  EXPECT_EQ(Codes(fs), "ht-siblings-poll") << Dump(fs);
  EXPECT_TRUE(Mentions(Find(fs, "ht-siblings-poll"), "the SQPOLL thread"));
}

TEST_F(ServerTest, InsufficientHugepagesIsAnError) {
  // Node 1 has 4 x 1 GiB pages free.
  const auto fs = Check(ServerWith("socket_mem_mb = [1024, 0]", "socket_mem_mb = [1024, 8192]"));
  EXPECT_EQ(Codes(fs), "hugepages-short") << Dump(fs);
  const Finding* f = Find(fs, "hugepages-short");
  EXPECT_EQ(f->severity, Severity::kError);
  EXPECT_TRUE(Mentions(f, "8192 MiB of hugepages on node 1; 4096 MiB are free there")) << f->what;
  EXPECT_TRUE(Mentions(f, "nr_hugepages")) << f->fix;
  // -m without socket_mem_mb counts every node: 14 GiB free.
  const auto total = Check(ServerWith("socket_mem_mb = [1024, 0]", "memory_mb = 16384"));
  EXPECT_EQ(Codes(total), "hugepages-short") << Dump(total);
  EXPECT_TRUE(Check(ServerWith("socket_mem_mb = [1024, 0]", "memory_mb = 8192")).empty());
}

TEST_F(ServerTest, MempoolMustFitTheMainLcoresNode) {
  const auto none = Check(ServerWith("socket_mem_mb = [1024, 0]", "socket_mem_mb = [0, 1024]"));
  EXPECT_EQ(Codes(none), "socket-mem-main-node") << Dump(none);
  const auto small = Check(ServerWith("socket_mem_mb = [1024, 0]", "socket_mem_mb = [64, 0]"));
  EXPECT_EQ(Codes(small), "memory-short") << Dump(small);
  EXPECT_TRUE(Mentions(Find(small, "memory-short"), "set socket_mem_mb[0] to at least"));
}

TEST_F(ServerTest, IrqOnAWorkerCpuIsAWarning) {
  // The ConnectX-6 on node 1 delivers IRQs 120 and 122 to CPU 4, 121 and 123 to CPU 12.
  constexpr std::string_view kToml = R"([eal]
lcores = [12, 4, 5]
main_lcore = 12
hugepages = true
socket_mem_mb = [0, 1024]

[[port]]
name = "cx6"
pci = "0000:af:00.0"
rx_queues = 2
ipv4 = "10.0.1.1"

[[lcore]]
id = 4
rx = ["cx6:0"]
shards = [0]

[[lcore]]
id = 5
rx = ["cx6:1"]
shards = [1]
idle = "poll"

[dataplane]
shards = 2

[storage]
data_dirs = ["/tmp/sluice-test"]
)";
  const auto fs = Check(kToml);
  EXPECT_EQ(Codes(fs), "irq-on-worker") << Dump(fs);
  const Finding* f = Find(fs, "irq-on-worker");
  EXPECT_TRUE(Mentions(f, "IRQs 120,122 of port \"cx6\" (0000:af:00.0) are delivered to CPU 4, "
                          "which runs worker lcore 4"))
      << f->what;
  // The fix names the node's housekeeping CPUs that run no worker: 12 runs the main lcore.
  EXPECT_TRUE(Mentions(f, "echo 12 > /proc/irq/N/smp_affinity_list")) << f->fix;
}

TEST_F(ServerTest, NicOnTheOtherNodeThanTheMempoolIsAWarning) {
  const auto fs = Check(ServerWith("0000:3b:00.0", "0000:af:00.1"));
  // Workers 1 and 2 are on node 0 too: both rules speak.
  EXPECT_EQ(Codes(fs), "numa-remote-poll numa-remote-poll numa-remote-mempool") << Dump(fs);
  EXPECT_TRUE(Mentions(Find(fs, "numa-remote-mempool"), "is on node 1, the mbuf pool and hand-off rings on node 0"));
}

TEST_F(ServerTest, CpusThatDoNotExistOrAreOfflineAreErrors) {
  const auto missing = Check(MoveWorker2(16));  // 16 CPUs: 0-15
  ASSERT_NE(Find(missing, "cpu-missing"), nullptr) << Dump(missing);
  EXPECT_TRUE(Mentions(Find(missing, "cpu-missing"), "worker lcore 16 runs on CPU 16"));
  EXPECT_TRUE(Mentions(Find(missing, "cpu-missing"), "use a CPU of 0-15"));

  m_.cpus[2].online = false;
  m_.cpus[1].allowed = false;
  const auto fs = Check(test::kServerGood);
  EXPECT_EQ(Codes(fs), "cpu-not-allowed cpu-offline") << Dump(fs);
  EXPECT_EQ(CountErrors(fs), 2u);
  EXPECT_TRUE(Mentions(Find(fs, "cpu-offline"), "/sys/devices/system/cpu/cpu2/online"));
}

TEST_F(ServerTest, PollingOnACpuThatIsNotIsolatedIsAWarning) {
  const auto fs = Check(ServerWith("lcores = [0, 1, 2]", "lcores = [0, 1, 2]\nlcore_cpus = \"2@4\""));
  // CPU 4 is node 1's housekeeping core: not isolated, and remote from the NIC.
  EXPECT_EQ(Codes(fs), "cpu-not-isolated numa-remote-poll") << Dump(fs);
  EXPECT_TRUE(Mentions(Find(fs, "cpu-not-isolated"), "isolcpus=4 nohz_full=4 rcu_nocbs=4"));
}

TEST_F(ServerTest, APollerSharingItsCpuIsAWarning) {
  const auto fs = Check(ServerWith("lcores = [0, 1, 2]", "lcores = [0, 1, 2]\nlcore_cpus = \"2@1\""));
  // One finding for the pair, naming both.
  EXPECT_EQ(Codes(fs), "cpu-shared-poll") << Dump(fs);
  EXPECT_TRUE(Mentions(Find(fs, "cpu-shared-poll"), "worker lcore 1 polls on CPU 1, which also runs worker lcore 2"));
}

TEST_F(ServerTest, PciDeviceMissingOrOnAKernelDriver) {
  const auto missing = Check(ServerWith("0000:3b:00.0", "0000:5e:00.0"));
  EXPECT_EQ(Codes(missing), "pci-missing") << Dump(missing);
  PciDevice& e810 = m_.pci[0];
  ASSERT_EQ(e810.address, "0000:3b:00.0");
  e810.driver = "ice";
  e810.netdevs = {"ens1f0"};
  const auto kernel = Check(test::kServerGood);
  EXPECT_EQ(Codes(kernel), "pci-driver") << Dump(kernel);
  EXPECT_TRUE(Mentions(Find(kernel, "pci-driver"), "kernel driver ice (interface ens1f0)"));
  EXPECT_TRUE(Mentions(Find(kernel, "pci-driver"), "dpdk-devbind.py -b vfio-pci 0000:3b:00.0"));
}

TEST_F(ServerTest, OnlyMountedPageSizesCount) {
  ASSERT_EQ(m_.mounted_page_bytes, (std::vector<uint64_t>{2u << 20, 1u << 30}));
  m_.mounted_page_bytes = {2u << 20};  // the 1 GiB pages are reserved but not mounted
  EXPECT_EQ(m_.FreeHugepageBytes(0), 2ull << 30);
  const auto fs = Check(ServerWith("socket_mem_mb = [1024, 0]", "socket_mem_mb = [4096, 0]"));
  EXPECT_EQ(Codes(fs), "hugepages-short") << Dump(fs);
  EXPECT_TRUE(Mentions(Find(fs, "hugepages-short"),
                       "2048 MiB are free there (and 8192 MiB in pages no hugetlbfs mount serves: "
                       "mount one with -o pagesize=1G)"))
      << Dump(fs);
}

TEST_F(ServerTest, HugepagesNeedAHugetlbfsMount) {
  m_.hugetlbfs_mounted = false;
  EXPECT_EQ(Codes(Check(test::kServerGood)), "hugetlbfs-missing");
}

TEST_F(ServerTest, SocketMemOnANodeThatDoesNotExist) {
  const auto fs = Check(ServerWith("socket_mem_mb = [1024, 0]", "socket_mem_mb = [1024, 0, 512]"));
  EXPECT_EQ(Codes(fs), "socket-mem-node-missing") << Dump(fs);
}

TEST(LaptopTest, TapLayoutsPassAndNicNeedsBindingAndHugepages) {
  const Machine m = LoadMachine("laptop");
  for (const char* shipped : {"tap.toml", "tap-2workers.toml", "memif-primary.toml"}) {
    const auto fs = CheckOnMachine(test::LoadShipped(shipped), m);
    EXPECT_TRUE(fs.empty()) << shipped << ":\n" << Dump(fs);
  }
  std::string nic(test::kServerGood);
  nic.replace(nic.find("0000:3b:00.0"), 12, "0000:00:1f.6");
  nic.replace(nic.find("[1024, 0]"), 9, "[1024]");
  const auto fs = CheckOnMachine(MustLoad(nic), m);
  // Nothing isolated, the NIC on e1000e, no hugepages reserved, and its IRQ on CPU 2 (a worker).
  EXPECT_EQ(Codes(fs), "pci-driver hugepages-short cpu-not-isolated cpu-not-isolated irq-on-worker")
      << Dump(fs);
  EXPECT_EQ(CountErrors(fs), 2u);
}

TEST(VmTest, ShippedTapLayoutsPassWithAtMostWarnings) {
  const Machine m = LoadMachine("vm-2core");
  for (const char* shipped : {"tap.toml", "tap-2workers.toml"}) {
    const auto fs = CheckOnMachine(test::LoadShipped(shipped), m);
    EXPECT_EQ(CountErrors(fs), 0u) << shipped << ":\n" << Dump(fs);
  }
  EXPECT_TRUE(CheckOnMachine(test::LoadShipped("tap.toml"), m).empty());
}

TEST(VmTest, TheNicExampleCannotRunOnIt) {
  const auto fs = CheckOnMachine(test::LoadShipped("examples/nic-2port.toml"), LoadMachine("vm-2core"));
  for (const char* code : {"cpu-missing", "sqpoll-cpu-missing", "pci-missing", "hugetlbfs-missing",
                           "hugepages-short"}) {
    EXPECT_NE(Find(fs, code), nullptr) << code << "\n" << Dump(fs);
  }
  EXPECT_EQ(CountErrors(fs), fs.size()) << Dump(fs);
}

TEST(VmTest, MemoryForTheMbufPool) {
  const Machine m = LoadMachine("vm-2core");
  std::string text = R"([eal]
lcores = [0, 1]
lcore_cpus = "0@0,1@1"
memory_mb = 512

[[port]]
name = "client0"
vdev = "net_tap0,iface=sluice0"
ipv4 = "198.18.0.1"
rx_descriptors = 32768
tx_descriptors = 32768

[[lcore]]
id = 1
rx = ["client0:0"]
shards = [0]

[dataplane]
shards = 1
ring_size = 65536
)";
  const auto fs = CheckOnMachine(MustLoad(text), m);
  EXPECT_EQ(Codes(fs), "memory-short") << Dump(fs);
  const MemoryBudget b = EstimateMemory(MustLoad(text));
  EXPECT_TRUE(Mentions(Find(fs, "memory-short"), "set eal.memory_mb to at least " +
                                                     std::to_string(b.TotalMiB())));
  // 32768 RX + 32768 TX descriptors + 65536 ring slots + 2 x 640 for caches and bursts.
  EXPECT_EQ(b.mbufs, (1u << 18) - 1);
}

// The formula mirrors dataplane/main.cc CreateMempool: pinned for tap.toml so that a change to
// one shows up here.
TEST(MemoryBudgetTest, TapLayout) {
  const MemoryBudget b = EstimateMemory(test::LoadShipped("tap.toml"));
  // 1 x 1024 RX + 1 x 1024 TX + 1 x 1 x 1024 ring + 2 x (256 + 128 + 256) = 4352 -> 8191.
  EXPECT_EQ(b.mbufs, 8191u);
  EXPECT_EQ(b.mbuf_bytes, 64u + 128 + 2048 + 128);
  EXPECT_EQ(b.ring_bytes, 0u) << "one worker: no hand-off ring";
  EXPECT_LT(b.TotalMiB(), 512u);
}

TEST(FormatTest, FindingLineShape) {
  EXPECT_TRUE(test::IsFindingLine("warning: a: b; fix: c"));
  for (const char* bad : {"note: a: b; fix: c", "error: a b; fix: c", "error: a: b; fix: ",
                          "error: a: b", "error: a: b; fix: c\nd"}) {
    EXPECT_FALSE(test::IsFindingLine(bad)) << bad;
  }
}

TEST(FormatTest, OneLinePerFinding) {
  const auto fs = CheckOnMachine(test::LoadShipped("examples/nic-2port.toml"), LoadMachine("vm-2core"));
  ASSERT_FALSE(fs.empty());
  for (const Finding& f : fs) {
    const std::string text = FormatFinding(f);
    EXPECT_TRUE(test::IsFindingLine(text)) << text;
    EXPECT_FALSE(f.code.empty());
  }
}

}  // namespace
}  // namespace sluice::hwconf
