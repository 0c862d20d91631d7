// What a valid layout loads into: every key reaches its field, defaults come from layout.h,
// derived values are resolved, and the summary and settings reference say what they should.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "hwconf/loader.h"
#include "tests/unit/hwconf/test_util.h"

namespace sluice::hwconf {
namespace {

using test::kMinimal;

Layout MustLoad(std::string_view text) {
  absl::StatusOr<Layout> layout = LoadLayoutFromString(text, "t.toml");
  EXPECT_TRUE(layout.ok()) << layout.status();
  return layout.ok() ? *std::move(layout) : Layout{};
}

TEST(LoaderTest, MinimalLayoutTakesTheDefaultsOfLayoutH) {
  const Layout l = MustLoad(kMinimal);
  const Layout d;  // the defaults, as layout.h declares them
  EXPECT_EQ(l.source, "t.toml");
  EXPECT_EQ(l.eal.lcores, (std::vector<int>{0, 1}));
  EXPECT_EQ(l.eal.main_lcore, 0) << "-1 resolves to the first of eal.lcores";
  EXPECT_EQ(l.eal.memory_mb, d.eal.memory_mb);
  EXPECT_EQ(l.eal.hugepages, d.eal.hugepages);
  EXPECT_EQ(l.eal.file_prefix, d.eal.file_prefix);
  EXPECT_TRUE(l.eal.lcore_cpus.empty());
  EXPECT_TRUE(l.eal.extra_args.empty());

  ASSERT_EQ(l.ports.size(), 1u);
  const Port& p = l.ports[0];
  const Port dp;
  EXPECT_EQ(p.name, "client0");
  EXPECT_EQ(p.vdev, "net_tap0,iface=sluice0");
  EXPECT_EQ(p.pci, "");
  EXPECT_EQ(p.role, PortRole::kClient);
  EXPECT_EQ(p.rx_queues, dp.rx_queues);
  EXPECT_EQ(p.tx_queues, 0) << "0 = one per worker";
  EXPECT_EQ(p.rx_descriptors, dp.rx_descriptors);
  EXPECT_EQ(p.mtu, dp.mtu);
  EXPECT_EQ(p.udp_port, 7411);
  EXPECT_EQ(p.kernel_ipv4, "");

  ASSERT_EQ(l.lcores.size(), 1u);
  EXPECT_EQ(l.lcores[0].id, 1);
  ASSERT_EQ(l.lcores[0].rx.size(), 1u);
  EXPECT_EQ(l.lcores[0].rx[0].port, "client0");
  EXPECT_EQ(l.lcores[0].rx[0].queue, 0);
  EXPECT_EQ(l.lcores[0].shards, (std::vector<uint32_t>{0}));
  EXPECT_EQ(l.lcores[0].idle, IdlePolicy::kAdaptive);

  EXPECT_EQ(l.shards, 1u);
  EXPECT_EQ(l.ring_size, d.ring_size);
  EXPECT_EQ(l.shard_memory_mb, 64u);
  EXPECT_EQ(l.storage.data_dirs, (std::vector<std::string>{"/tmp/sluice-test"}))
      << "a list in the file replaces the default list";
  EXPECT_EQ(l.storage.batch_bytes, d.storage.batch_bytes);
  EXPECT_EQ(l.storage.durability, Durability::kWrite);
  EXPECT_EQ(l.replication.role, ReplicationRole::kNone);
  EXPECT_EQ(l.control.listen, d.control.listen);
  EXPECT_TRUE(l.queues.empty());
}

TEST(LoaderTest, StorageSectionIsOptional) {
  std::string text(kMinimal);
  text.erase(text.find("[storage]"));
  const Layout l = MustLoad(text);
  EXPECT_EQ(l.storage.data_dirs, Layout{}.storage.data_dirs);
}

TEST(LoaderTest, EveryKeyReachesItsField) {
  const Layout l = MustLoad(R"(
[eal]
lcores = [3, 5, 7]
main_lcore = 7
lcore_cpus = "7@0,3@1,5@1"
memory_mb = 1024
hugepages = true
socket_mem_mb = [2048, 0]
file_prefix = "box-a"
extra_args = ["--log-level=lib.eal:debug", "--huge-unlink"]

[[port]]
name = "client0"
pci = "0000:3B:00.0,rxq_cqe_comp_en=0"
role = "client"
rx_queues = 2
tx_queues = 4
rx_descriptors = 2048
tx_descriptors = 512
mtu = 9000
ipv4 = "10.0.0.1"
udp_port = 9000

[[port]]
name = "link"
pci = "3b:00.1"
role = "replication"
ipv4 = "10.1.0.1"

[[lcore]]
id = 3
rx = ["client0:1", "link:0"]
shards = [1, 2]
idle = "poll"

[[lcore]]
id = 5
rx = ["client0:0"]
shards = [0]

[dataplane]
shards = 3
ring_size = 256
shard_memory_mb = 32

[storage]
data_dirs = ["/d0", "/d1"]
uring_depth = 64
sqpoll = true
sqpoll_cpu = 9
batch_bytes = 65536
batch_time_us = 0
segment_bytes = 1048576
durability = "dsync"

[replication]
role = "primary"
link_port = "link"
peer = "10.1.0.2:7412"
mode = "sync"

[control]
listen = "0.0.0.0:8080"
metadata_dir = "/m"

[[queue]]
name = "jobs"
type = "work"
partitions = 3
visibility_timeout_ms = 1000
max_message_bytes = 4096
max_receive_count = 2
dead_letter_queue = "dlq"

[[queue]]
name = "dlq"
type = "work"
)");
  EXPECT_EQ(l.eal.lcores, (std::vector<int>{3, 5, 7}));
  EXPECT_EQ(l.eal.main_lcore, 7);
  EXPECT_EQ(l.eal.lcore_cpus, (std::vector<std::pair<int, int>>{{3, 1}, {5, 1}, {7, 0}}))
      << "sorted by lcore";
  EXPECT_EQ(l.eal.CpuOf(7), 0);
  EXPECT_EQ(l.eal.memory_mb, 1024u);
  EXPECT_TRUE(l.eal.hugepages);
  EXPECT_EQ(l.eal.socket_mem_mb, (std::vector<uint32_t>{2048, 0}));
  EXPECT_EQ(l.eal.file_prefix, "box-a");
  EXPECT_EQ(l.eal.extra_args.size(), 2u);

  ASSERT_EQ(l.ports.size(), 2u);
  EXPECT_EQ(l.ports[0].pci, "0000:3B:00.0,rxq_cqe_comp_en=0");
  EXPECT_EQ(l.ports[0].rx_queues, 2);
  EXPECT_EQ(l.ports[0].tx_queues, 4);
  EXPECT_EQ(l.ports[0].rx_descriptors, 2048);
  EXPECT_EQ(l.ports[0].tx_descriptors, 512);
  EXPECT_EQ(l.ports[0].mtu, 9000);
  EXPECT_EQ(l.ports[0].ipv4, "10.0.0.1");
  EXPECT_EQ(l.ports[0].udp_port, 9000);
  EXPECT_EQ(l.ports[1].role, PortRole::kReplication);
  EXPECT_EQ(l.FindPort("link"), &l.ports[1]);

  ASSERT_EQ(l.lcores.size(), 2u);
  EXPECT_EQ(l.lcores[0].idle, IdlePolicy::kPoll);
  ASSERT_EQ(l.lcores[0].rx.size(), 2u);
  EXPECT_EQ(l.lcores[0].rx[0].port, "client0");
  EXPECT_EQ(l.lcores[0].rx[0].queue, 1);
  EXPECT_EQ(l.lcores[0].rx[1].port, "link");
  EXPECT_EQ(l.lcores[0].shards, (std::vector<uint32_t>{1, 2}));

  EXPECT_EQ(l.shards, 3u);
  EXPECT_EQ(l.ring_size, 256u);
  EXPECT_EQ(l.shard_memory_mb, 32u);
  EXPECT_EQ(l.storage.data_dirs.size(), 2u);
  EXPECT_EQ(l.storage.uring_depth, 64u);
  EXPECT_TRUE(l.storage.sqpoll);
  EXPECT_EQ(l.storage.sqpoll_cpu, 9);
  EXPECT_EQ(l.storage.batch_bytes, 65536u);
  EXPECT_EQ(l.storage.batch_time_us, 0u);
  EXPECT_EQ(l.storage.segment_bytes, 1048576u);
  EXPECT_EQ(l.storage.durability, Durability::kDsync);
  EXPECT_EQ(l.replication.role, ReplicationRole::kPrimary);
  EXPECT_EQ(l.replication.link_port, "link");
  EXPECT_EQ(l.replication.peer, "10.1.0.2:7412");
  EXPECT_EQ(l.replication.mode, ReplicationMode::kSync);
  EXPECT_EQ(l.control.listen, "0.0.0.0:8080");
  EXPECT_EQ(l.control.metadata_dir, "/m");

  ASSERT_EQ(l.queues.size(), 2u);
  EXPECT_EQ(l.queues[0].type, QueueType::kWork);
  EXPECT_EQ(l.queues[0].partitions, 3u);
  EXPECT_EQ(l.queues[0].visibility_timeout_ms, 1000u);
  EXPECT_EQ(l.queues[0].max_message_bytes, 4096u);
  EXPECT_EQ(l.queues[0].max_receive_count, 2u);
  EXPECT_EQ(l.queues[0].dead_letter_queue, "dlq");
  EXPECT_EQ(l.queues[1].partitions, 1u);
}

TEST(LoaderTest, ToStringGivesTheTomlSpelling) {
  EXPECT_EQ(ToString(IdlePolicy::kPoll), "poll");
  EXPECT_EQ(ToString(IdlePolicy::kAdaptive), "adaptive");
  EXPECT_EQ(ToString(Durability::kNone), "none");
  EXPECT_EQ(ToString(Durability::kWrite), "write");
  EXPECT_EQ(ToString(Durability::kDsync), "dsync");
  EXPECT_EQ(ToString(ReplicationRole::kNone), "none");
  EXPECT_EQ(ToString(ReplicationRole::kPrimary), "primary");
  EXPECT_EQ(ToString(ReplicationRole::kStandby), "standby");
  EXPECT_EQ(ToString(ReplicationMode::kAsync), "async");
  EXPECT_EQ(ToString(ReplicationMode::kSync), "sync");
  EXPECT_EQ(ToString(QueueType::kStream), "stream");
  EXPECT_EQ(ToString(QueueType::kWork), "work");
  EXPECT_EQ(ToString(PortRole::kClient), "client");
  EXPECT_EQ(ToString(PortRole::kReplication), "replication");
}

TEST(LoaderTest, MissingFileIsNotFound) {
  absl::StatusOr<Layout> layout = LoadLayout("/nonexistent/sluice/layout.toml");
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(layout.status().message()).find("/nonexistent/sluice/layout.toml"),
            std::string::npos);
}

TEST(LoaderTest, ErrorsFromAFileNameThePath) {
  const std::string path = testing::TempDir() + "/hwconf_bad_layout.toml";
  {
    std::ofstream out(path);
    out << test::Edit("id = 1", "id = 9");
  }
  absl::StatusOr<Layout> layout = LoadLayout(path);
  ASSERT_FALSE(layout.ok());
  EXPECT_NE(std::string(layout.status().message()).find(path + ":10: key 'lcore[0].id'"),
            std::string::npos)
      << layout.status();
  std::remove(path.c_str());
}

TEST(LoaderTest, EmptyTextNamesTheRequiredSections) {
  absl::StatusOr<Layout> layout = LoadLayoutFromString("", "empty.toml");
  ASSERT_FALSE(layout.ok());
  const std::string message(layout.status().message());
  for (const char* section : {"[eal]", "[[port]]", "[[lcore]]", "[dataplane]"}) {
    EXPECT_NE(message.find(std::string("required section ") + section + " is missing"),
              std::string::npos)
        << message;
  }
}

TEST(FormatLayoutTest, SaysWhatEachLcoreDoes) {
  const Layout l = MustLoad(test::Edit(
      "lcores = [0, 1]", "lcores = [0, 1, 2]\nlcore_cpus = \"0@0,1@0,2@1\"",
      "\n[[queue]]\nname = \"events\"\npartitions = 2\n"));
  const std::string text = FormatLayout(l);
  EXPECT_NE(text.find("layout: t.toml"), std::string::npos) << text;
  EXPECT_NE(text.find("EAL: sluiced --lcores 0@0,1@0,2@1 --main-lcore 0"), std::string::npos)
      << text;
  EXPECT_NE(text.find("client0    client      vdev net_tap0,iface=sluice0"), std::string::npos)
      << text;
  EXPECT_NE(text.find("0@0    main"), std::string::npos) << text;
  EXPECT_NE(text.find("1@0    worker   idle adaptive rx client0:0"), std::string::npos) << text;
  EXPECT_NE(text.find("2@1    unused"), std::string::npos) << text;
  EXPECT_NE(text.find("shards 0"), std::string::npos) << text;
  EXPECT_NE(text.find("storage: /tmp/sluice-test"), std::string::npos) << text;
  EXPECT_NE(text.find("replication: none"), std::string::npos) << text;
  EXPECT_NE(text.find("control: listen 127.0.0.1:7480"), std::string::npos) << text;
  EXPECT_NE(text.find("events           stream partitions 2"), std::string::npos) << text;
}

TEST(SettingsTest, TextReferenceListsEverySectionAndKey) {
  std::ostringstream out;
  PrintSettings(out);
  const std::string text = out.str();
  for (const char* s :
       {"[eal]", "[[port]]", "[[lcore]]", "[dataplane]", "[storage]", "[replication]", "[control]",
        "[[queue]]", "lcores = array of integers", "memory_mb = integer [64, 1048576], MiB",
        "(default 512)", "ring_size = integer [16, 65536], power of two", "(required)",
        "idle = string \"poll\", \"adaptive\"  (default \"adaptive\")", "kernel_ipv4",
        "lcore_cpus", "dead_letter_queue"}) {
    EXPECT_NE(text.find(s), std::string::npos) << "missing " << s << " in\n" << text;
  }
}

// The README's reference section is the Markdown output pasted verbatim; if a setting changes,
// regenerate it with `sluice-hwconf settings --markdown`.
TEST(SettingsTest, ReadmeReferenceIsTheGeneratedOne) {
  std::ifstream in(std::string(SLUICE_SOURCE_DIR) + "/hwconf/README.md");
  ASSERT_TRUE(in) << "cannot read hwconf/README.md";
  std::stringstream readme;
  readme << in.rdbuf();
  std::ostringstream generated;
  PrintSettings(generated, SettingsFormat::kMarkdown);
  const std::string begin = "<!-- BEGIN generated: sluice-hwconf settings --markdown -->\n";
  const std::string end = "<!-- END generated -->";
  const std::string text = readme.str();
  const size_t from = text.find(begin);
  const size_t to = text.find(end);
  ASSERT_NE(from, std::string::npos);
  ASSERT_NE(to, std::string::npos);
  EXPECT_EQ(text.substr(from + begin.size(), to - from - begin.size()), generated.str())
      << "hwconf/README.md is stale: paste `sluice-hwconf settings --markdown` between the markers";
}

// A dedicated replication lcore (docs/replication.md §1): it owns no shards; over kernel UDP it
// polls no RX queue at all (its socket), over a DPDK link the link's only queue.
TEST(LoaderTest, ADedicatedReplicationLcoreLoads) {
  const Layout udp = MustLoad(test::Edit(
      "lcores = [0, 1]", "lcores = [0, 1, 2]",
      "\n[[lcore]]\nid = 2\nrx = []\n"
      "\n[replication]\nrole = \"primary\"\nlisten = \"127.0.0.1:7412\"\n"
      "peer = \"127.0.0.1:7413\"\nlcore = 2\n"));
  EXPECT_EQ(udp.replication.lcore, 2);
  const Layout memif = MustLoad(test::Edit(
      "lcores = [0, 1]", "lcores = [0, 1, 2]",
      "\n[[port]]\nname = \"link\"\nvdev = \"net_memif0\"\nipv4 = \"198.18.2.1\"\n"
      "role = \"replication\"\n"
      "\n[[lcore]]\nid = 2\nrx = [\"link:0\"]\n"
      "\n[replication]\nrole = \"standby\"\nlink_port = \"link\"\npeer = \"198.18.2.2:7412\"\n"
      "lcore = 2\n"));
  EXPECT_EQ(memif.replication.lcore, 2);
  EXPECT_EQ(MustLoad(kMinimal).replication.lcore, -1);  // default: channels on shard lcores
}

}  // namespace
}  // namespace sluice::hwconf
