// Every way a layout can be wrong, one case each: the case edits the minimal valid layout, marks
// the line the error must cite with "#<", and names the key and a fragment of the reason. A case
// passes only if the loader fails with InvalidArgument and a line "t.toml:LINE: key 'KEY': ..."
// containing the reason; a case without "#<" expects a file-level error ("t.toml: key ...").
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "hwconf/loader.h"
#include "tests/unit/hwconf/test_util.h"

namespace sluice::hwconf {
namespace {

using test::kMinimal;
using test::LineOf;

struct ErrorCase {
  std::string name;
  std::vector<std::pair<std::string, std::string>> edits;  // (from, to), applied in order
  std::string append;                                       // added after the edits
  std::string key;
  std::string reason;  // a fragment of the reason
};

// gtest prints a failing parameter with this instead of a byte dump.
void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

std::string Apply(const ErrorCase& c) {
  std::string text(kMinimal);
  for (const auto& [from, to] : c.edits) {
    const size_t at = text.find(from);
    if (at == std::string::npos) return "EDIT FAILED: '" + from + "' is not in the layout";
    text.replace(at, from.size(), to);
  }
  return text + c.append;
}

// Shorthands for the edits most cases make.
const std::string kLcores = "lcores = [0, 1]";
const std::string kVdev = "vdev = \"net_tap0,iface=sluice0\"";
const std::string kIpv4 = "ipv4 = \"198.18.0.1\"";
const std::string kRx = "rx = [\"client0:0\"]";
const std::string kShards = "shards = [0]";
const std::string kDataDirs = "data_dirs = [\"/tmp/sluice-test\"]";
const std::string kTwoWorkers = "lcores = [0, 1, 2]";

std::vector<ErrorCase> Cases() {
  return {
      // ---- unknown keys, in every table: the reason lists the allowed keys
      {"UnknownSection", {}, "\n[eall] #<\nx = 1\n", "eall",
       "unknown key; allowed keys: [eal], [[port]], [[lcore]], [dataplane], [storage]"},
      {"UnknownEalKey", {{kLcores, kLcores + "\nlcore = 3 #<"}}, "", "eal.lcore",
       "unknown key; allowed keys: lcores, main_lcore, lcore_cpus, memory_mb"},
      {"UnknownPortKey", {{kIpv4, kIpv4 + "\nip = \"1.2.3.4\" #<"}}, "", "port[0].ip",
       "allowed keys: name, pci, vdev, role, rx_queues"},
      {"UnknownLcoreKey", {{kShards, kShards + "\nidle_policy = \"poll\" #<"}}, "",
       "lcore[0].idle_policy", "allowed keys: id, rx, shards, idle"},
      {"UnknownDataplaneKey", {{"shards = 1\n", "shards = 1\nring = 1024 #<\n"}}, "",
       "dataplane.ring", "allowed keys: shards, ring_size"},
      {"UnknownStorageKey", {{kDataDirs, kDataDirs + "\nfsync = true #<"}}, "", "storage.fsync",
       "allowed keys: data_dirs, uring_depth, sqpoll"},
      {"UnknownReplicationKey", {}, "\n[replication]\nlink = \"x\" #<\n", "replication.link",
       "allowed keys: role, link_port, peer, listen, mode"},
      {"UnknownControlKey", {}, "\n[control]\nport = 7480 #<\n", "control.port",
       "allowed keys: listen, metadata_dir"},
      {"UnknownQueueKey", {}, "\n[[queue]]\nname = \"q\"\nretention = 5 #<\n",
       "queue[0].retention", "allowed keys: name, type, partitions"},
      {"UnknownNestedTable", {}, "\n[storage.extra] #<\nx = 1\n", "storage.extra",
       "unknown key"},

      // ---- wrong types
      {"IntegerAsString", {{kLcores, kLcores + "\nmemory_mb = \"512\" #<"}}, "", "eal.memory_mb",
       "wrong type: expected integer, got string"},
      {"IntegerAsFloat", {{"shards = 1\n", "shards = 1\nring_size = 1024.0 #<\n"}}, "",
       "dataplane.ring_size", "wrong type: expected integer, got float"},
      {"BooleanAsInteger", {{kLcores, kLcores + "\nhugepages = 1 #<"}}, "", "eal.hugepages",
       "wrong type: expected boolean, got integer"},
      {"ListAsString", {{kRx, "rx = \"client0:0\" #<"}}, "", "lcore[0].rx",
       "wrong type: expected array of strings, got string"},
      {"ListElement", {{kShards, "shards = [0, \"1\"] #<"}}, "", "lcore[0].shards",
       "element 1: wrong type: expected integer, got string"},
      {"SectionNotTable", {{"[eal]\nlcores = [0, 1]", "eal = [0, 1] #<"}}, "", "eal",
       "wrong type: expected a table ([eal]), got array"},
      {"ArraySectionAsTable", {{"[[port]]", "[port] #<"}}, "", "port",
       "wrong type: expected an array of tables ([[port]]), got table"},
      {"EnumAsInteger", {{kShards, kShards + "\nidle = 1 #<"}}, "", "lcore[0].idle",
       "wrong type: expected string, got integer"},

      // ---- out of range: the reason gives the range
      {"MemoryTooSmall", {{kLcores, kLcores + "\nmemory_mb = 1 #<"}}, "", "eal.memory_mb",
       "value 1 out of range [64, 1048576]"},
      {"LcoreIdTooLarge", {{kLcores, "lcores = [0, 200] #<"}}, "", "eal.lcores",
       "element 1: value 200 out of range [0, 127]"},
      {"UdpPortTooLarge", {{kIpv4, kIpv4 + "\nudp_port = 70000 #<"}}, "", "port[0].udp_port",
       "value 70000 out of range [1, 65535]"},
      {"RxQueuesZero", {{kIpv4, kIpv4 + "\nrx_queues = 0 #<"}}, "", "port[0].rx_queues",
       "value 0 out of range [1, 1024]"},
      {"DescriptorsNotMultipleOf32", {{kIpv4, kIpv4 + "\nrx_descriptors = 100 #<"}}, "",
       "port[0].rx_descriptors", "value 100 is not a multiple of 32"},
      {"ShardsZero", {{"shards = 1\n", "shards = 0 #<\n"}}, "", "dataplane.shards",
       "value 0 out of range [1, 1024]"},
      {"RingSizeNotPowerOfTwo", {{"shards = 1\n", "shards = 1\nring_size = 1000 #<\n"}}, "",
       "dataplane.ring_size", "value 1000 is not a power of two"},
      {"ShardMemoryTooSmall", {{"shards = 1\n", "shards = 1\nshard_memory_mb = 2 #<\n"}}, "",
       "dataplane.shard_memory_mb", "value 2 out of range [4, 1048576]"},
      {"BatchBytesNotBlockMultiple", {{kDataDirs, kDataDirs + "\nbatch_bytes = 5000 #<"}}, "",
       "storage.batch_bytes", "value 5000 is not a multiple of 4096"},
      {"QueuePartitionsZero", {}, "\n[[queue]]\nname = \"q\"\npartitions = 0 #<\n",
       "queue[0].partitions", "value 0 out of range [1, 4096]"},

      // ---- enum strings: the reason lists the allowed ones
      {"IdleNotAllowed", {{kShards, kShards + "\nidle = \"spin\" #<"}}, "", "lcore[0].idle",
       "\"spin\" is not allowed; allowed: \"poll\", \"adaptive\""},
      {"PortRoleNotAllowed", {{kIpv4, kIpv4 + "\nrole = \"server\" #<"}}, "", "port[0].role",
       "\"server\" is not allowed; allowed: \"client\", \"replication\""},
      {"DurabilityNotAllowed", {{kDataDirs, kDataDirs + "\ndurability = \"fsync\" #<"}}, "",
       "storage.durability", "allowed: \"none\", \"write\", \"dsync\""},
      {"QueueTypeNotAllowed", {}, "\n[[queue]]\nname = \"q\"\ntype = \"pubsub\" #<\n",
       "queue[0].type", "allowed: \"stream\", \"work\""},
      {"ReplicationRoleNotAllowed", {}, "\n[replication]\nrole = \"leader\" #<\n",
       "replication.role", "allowed: \"none\", \"primary\", \"standby\""},
      {"ReplicationModeNotAllowed", {}, "\n[replication]\nmode = \"semi\" #<\n",
       "replication.mode", "allowed: \"async\", \"sync\""},

      // ---- missing things
      {"RequiredKeyMissing", {{"[[port]]", "[[port]] #<"}, {kIpv4 + "\n", ""}}, "", "port[0].ipv4",
       "required key is missing"},
      {"RequiredSectionMissing", {{"[dataplane]\nshards = 1\n", ""}}, "", "dataplane",
       "required section [dataplane] is missing"},
      {"NoPorts",
       {{"[[port]]\nname = \"client0\"\n" + kVdev + "\n" + kIpv4 + "\n", ""},
        {"[eal]", "port = [] #<\n[eal]"}},
       "", "port", "at least one [[port]] is required"},
      {"NoClientPort",
       {{"[[port]]", "[[port]] #<"}, {kIpv4, kIpv4 + "\nrole = \"replication\""}}, "", "port",
       "no port has role = \"client\""},

      // ---- malformed values
      {"BadIpv4", {{kIpv4, "ipv4 = \"198.18.0.300\" #<"}}, "", "port[0].ipv4",
       "\"198.18.0.300\" is not an IPv4 address (a.b.c.d, each 0-255)"},
      {"Ipv4LeadingZero", {{kIpv4, "ipv4 = \"198.18.0.01\" #<"}}, "", "port[0].ipv4",
       "is not an IPv4 address"},
      {"MulticastPortAddress", {{kIpv4, "ipv4 = \"224.0.0.1\" #<"}}, "", "port[0].ipv4",
       "is not a unicast address"},
      {"BadListenAddress", {}, "\n[control]\nlisten = \"127.0.0.1\" #<\n", "control.listen",
       "is not an IPv4 address and port"},
      {"BadPeerAddress", {}, "\n[replication]\npeer = \"10.0.0.256:7412\" #<\n", "replication.peer",
       "is not an IPv4 address and port"},
      {"EtcdNotHttp", {}, "\n[replication]\netcd = \"https://127.0.0.1:2379\" #<\n",
       "replication.etcd", "does not start with http://"},
      {"EtcdWithoutPort", {}, "\n[replication]\netcd = \"http://127.0.0.1\" #<\n",
       "replication.etcd", "is not an IPv4 address and port"},
      {"EtcdLeaseNotWholeSeconds", {}, "\n[replication]\netcd_lease_ms = 2500 #<\n",
       "replication.etcd_lease_ms", "is not a multiple of 1000 (etcd leases count whole seconds)"},
      {"EtcdLeaseTooShort", {}, "\n[replication]\netcd_lease_ms = 1000 #<\n",
       "replication.etcd_lease_ms", "[2000, 60000]"},
      {"EtcdKeyNotAbsolute", {}, "\n[replication]\netcd_key = \"leader\" #<\n",
       "replication.etcd_key", "must start with '/'"},
      {"BadPciAddress", {{kVdev, "pci = \"3b:00.8\" #<"}}, "", "port[0].pci",
       "is not a PCI address"},
      {"BadVdev", {{kVdev, "vdev = \"tap0\" #<"}}, "", "port[0].vdev", "is not an ethdev vdev"},
      {"BadPortName", {{"name = \"client0\"", "name = \"client:0\" #<"}}, "", "port[0].name",
       "is not a name"},
      {"BadRxRef", {{kRx, "rx = [\"client0\"] #<"}}, "", "lcore[0].rx",
       "element 0: \"client0\" is not PORT:QUEUE"},
      {"BadFilePrefix", {{kLcores, kLcores + "\nfile_prefix = \"a/b\" #<"}}, "", "eal.file_prefix",
       "must be 1-64 of [A-Za-z0-9_-]"},
      {"BadLcoreCpus", {{kLcores, kLcores + "\nlcore_cpus = \"0@0,1\" #<"}}, "", "eal.lcore_cpus",
       "\"1\" is not LCORE@CPU"},
      {"BadKernelCidr", {{kIpv4, kIpv4 + "\nkernel_ipv4 = \"198.18.0.2\" #<"}}, "",
       "port[0].kernel_ipv4", "is not a unicast a.b.c.d/len"},
      {"BadQueueName", {}, "\n[[queue]]\nname = \"bad name!\" #<\n", "queue[0].name",
       "is not a name"},

      // ---- [eal] rules
      {"DuplicateEalLcore", {{kLcores, "lcores = [0, 1, 1] #<"}}, "", "eal.lcores",
       "duplicate lcore id 1"},
      {"EmptyEalLcores", {{kLcores, "lcores = [] #<"}}, "", "eal.lcores", "is empty"},
      {"MainLcoreNotInEal", {{kLcores, kLcores + "\nmain_lcore = 7 #<"}}, "", "eal.main_lcore",
       "lcore 7 is not in eal.lcores [0, 1]"},
      {"LcoreCpusUnknownLcore", {{kLcores, kLcores + "\nlcore_cpus = \"0@0,1@1,5@0\" #<"}}, "",
       "eal.lcore_cpus", "maps lcore 5, which is not in eal.lcores [0, 1]"},
      {"SocketMemWithoutHugepages", {{kLcores, kLcores + "\nsocket_mem_mb = [1024, 0] #<"}}, "",
       "eal.socket_mem_mb", "needs hugepages = true"},

      // ---- [[lcore]] rules
      {"LcoreNotInEal", {{"id = 1", "id = 5 #<"}}, "", "lcore[0].id",
       "lcore 5 is not in eal.lcores [0, 1]"},
      {"MainLcoreAsWorker", {{"id = 1", "id = 0 #<"}}, "", "lcore[0].id",
       "lcore 0 is the main lcore"},
      {"DuplicateLcoreId", {}, "\n[[lcore]]\nid = 1 #<\nrx = []\n", "lcore[1].id",
       "duplicate lcore id 1 (also lcore[0], line 10)"},
      {"LcoreWithoutWork", {{kLcores, kTwoWorkers}}, "\n[[lcore]] #<\nid = 2\n", "lcore[1]",
       "lcore 2 has no rx queues and no shards"},

      // ---- shard ownership
      {"ShardOwnedTwice", {{kLcores, kTwoWorkers}}, "\n[[lcore]]\nid = 2\nshards = [0] #<\n",
       "lcore[1].shards", "shard 0 is already owned by lcore[0].shards[0] (line 12)"},
      {"ShardOwnedByNone", {{"shards = 1\n", "shards = 2 #<\n"}}, "", "dataplane.shards",
       "shard 1 owned by no lcore"},
      {"ShardOutOfRange", {{kShards, "shards = [0, 1] #<"}}, "", "lcore[0].shards",
       "shard 1 out of range [0, 0] (dataplane.shards = 1)"},

      // ---- RX queue polling
      {"RxQueuePolledTwice", {{kLcores, kTwoWorkers}},
       "\n[[lcore]]\nid = 2\nrx = [\"client0:0\"] #<\n", "lcore[1].rx",
       "rx queue client0:0 is already polled by lcore[0].rx[0] (line 11)"},
      {"RxQueuePolledByNone", {{kIpv4, kIpv4 + "\nrx_queues = 2 #<"}}, "", "port[0].rx_queues",
       "rx queue client0:1 polled by no lcore"},
      {"RxQueueIndexOutOfRange", {{kRx, "rx = [\"client0:0\", \"client0:1\"] #<"}}, "",
       "lcore[0].rx", "rx queue index 1 out of range [0, 0] (port \"client0\" has rx_queues = 1)"},
      {"RxPortNotDefined", {{kRx, "rx = [\"client0:0\", \"client9:0\"] #<"}}, "", "lcore[0].rx",
       "port \"client9\" is not defined (ports: client0)"},

      // ---- [[port]] rules
      {"PortBothPciAndVdev", {{"[[port]]", "[[port]] #<"}, {kVdev, kVdev + "\npci = \"0000:3b:00.0\""}},
       "", "port[0]", "port \"client0\" has both pci and vdev"},
      {"PortNeitherPciNorVdev", {{"[[port]]", "[[port]] #<"}, {kVdev + "\n", ""}}, "", "port[0]",
       "port \"client0\" has neither pci nor vdev"},
      {"DuplicatePortName", {},
       "\n[[port]]\nname = \"client0\" #<\nvdev = \"net_tap1\"\nipv4 = \"198.18.1.1\"\n",
       "port[1].name", "duplicate port name \"client0\" (also port[0], line 5)"},
      {"DuplicateDevice", {},
       "\n[[port]]\nname = \"client1\"\nvdev = \"net_tap0,iface=other\" #<\nipv4 = \"198.18.1.1\"\n",
       "port[1].vdev", "device net_tap0 is already port[0] (\"client0\")"},
      {"TooFewTxQueues",
       {{kLcores, kTwoWorkers}, {kIpv4, kIpv4 + "\nrx_queues = 2\ntx_queues = 1 #<"}},
       "\n[[lcore]]\nid = 2\nrx = [\"client0:1\"]\n", "port[0].tx_queues",
       "1 TX queues for 2 workers"},
      {"KernelSideNotTap", {{kVdev, "vdev = \"net_memif0\""}, {kIpv4, kIpv4 + "\nkernel_ipv4 = \"198.18.0.2/24\" #<"}},
       "", "port[0].kernel_ipv4", "needs a TAP vdev with iface=NAME"},
      {"KernelSideOtherSubnet", {{kIpv4, kIpv4 + "\nkernel_ipv4 = \"10.0.0.2/24\" #<"}}, "",
       "port[0].kernel_ipv4", "is not on the subnet of the port's ipv4 198.18.0.1"},
      {"KernelSideSameAddress", {{kIpv4, kIpv4 + "\nkernel_ipv4 = \"198.18.0.1/24\" #<"}}, "",
       "port[0].kernel_ipv4", "is the port's own ipv4"},

      // ---- [storage] rules
      {"NoDataDirs", {{kDataDirs, "data_dirs = [] #<"}}, "", "storage.data_dirs", "is empty"},
      {"DuplicateDataDir", {{kDataDirs, "data_dirs = [\"/a\",\n  \"/a\"] #<"}}, "",
       "storage.data_dirs", "\"/a\" is listed twice"},
      {"SegmentSmallerThanBatch",
       {{kDataDirs, kDataDirs + "\nbatch_bytes = 4194304\nsegment_bytes = 2097152 #<"}}, "",
       "storage.segment_bytes", "is smaller than batch_bytes 4194304"},
      {"SqpollCpuWithoutSqpoll", {{kDataDirs, kDataDirs + "\nsqpoll_cpu = 1 #<"}}, "",
       "storage.sqpoll_cpu", "is set but sqpoll = false"},
      {"SqpollOnWorkerCpu", {{kDataDirs, kDataDirs + "\nsqpoll = true\nsqpoll_cpu = 1 #<"}}, "",
       "storage.sqpoll_cpu", "CPU 1 runs worker lcore 1"},

      // ---- [replication] rules
      {"LinkPortNotDefined", {},
       "\n[replication]\nrole = \"primary\"\nlink_port = \"link\" #<\npeer = \"198.18.2.2:7412\"\n",
       "replication.link_port", "port \"link\" is not defined"},
      {"LinkPortNotReplicationRole", {},
       "\n[replication]\nrole = \"primary\"\nlink_port = \"client0\" #<\npeer = \"198.18.2.2:7412\"\n",
       "replication.link_port", "has role = \"client\"; the link needs role = \"replication\""},
      {"ReplicationWithoutPeer", {}, "\n[replication] #<\nrole = \"standby\"\n",
       "replication.peer", "is required with role = \"standby\""},
      {"EtcdWithoutRole", {}, "\n[replication]\netcd = \"http://127.0.0.1:2379\" #<\n",
       "replication.etcd", "is set but role = \"none\""},
      // A dedicated replication lcore (docs/replication.md §1).
      {"ReplicationLcoreWithoutRole", {}, "\n[replication]\nlcore = 1 #<\n",
       "replication.lcore", "is set but role = \"none\""},
      {"ReplicationLcoreNotAnLcore", {},
       "\n[replication]\nrole = \"primary\"\nlisten = \"127.0.0.1:7412\"\n"
       "peer = \"127.0.0.1:7413\"\nlcore = 5 #<\n",
       "replication.lcore", "lcore 5 is not an [[lcore]]"},
      {"ReplicationLcoreOwnsShards", {},
       "\n[replication]\nrole = \"primary\"\nlisten = \"127.0.0.1:7412\"\n"
       "peer = \"127.0.0.1:7413\"\nlcore = 1 #<\n",
       "replication.lcore", "lcore 1 owns shards; a replication lcore owns none"},
      {"ReplicationLcoreDoesNotPollTheLink", {{kLcores, kTwoWorkers}},
       "\n[[port]]\nname = \"link\"\nvdev = \"net_memif0\"\nipv4 = \"198.18.2.1\"\n"
       "role = \"replication\"\nrx_queues = 2\n"
       "\n[[lcore]]\nid = 2\nrx = [\"link:0\"]\n"
       "\n[replication]\nrole = \"primary\"\nlink_port = \"link\"\n"
       "peer = \"198.18.2.2:7412\"\nlcore = 2 #<\n",
       "replication.lcore", "lcore 2 must poll the link's only queue"},
      {"UnusedReplicationPort", {},
       "\n[[port]]\nname = \"link\"\nvdev = \"net_memif0\"\nipv4 = \"198.18.2.1\"\n"
       "role = \"replication\" #<\n",
       "port[1].role", "has role = \"replication\" but is not replication.link_port"},

      // ---- [[queue]] rules
      {"DuplicateQueueName", {}, "\n[[queue]]\nname = \"q\"\n[[queue]]\nname = \"q\" #<\n",
       "queue[1].name", "duplicate queue name \"q\" (also queue[0], line 21)"},
      {"DeadLetterNotDeclared", {},
       "\n[[queue]]\nname = \"q\"\ntype = \"work\"\nmax_receive_count = 3\n"
       "dead_letter_queue = \"dlq\" #<\n",
       "queue[0].dead_letter_queue", "queue \"dlq\" is not declared"},
      {"DeadLetterIsItself", {},
       "\n[[queue]]\nname = \"q\"\ntype = \"work\"\nmax_receive_count = 3\n"
       "dead_letter_queue = \"q\" #<\n",
       "queue[0].dead_letter_queue", "names the queue itself"},
      {"DeadLetterIsStream", {},
       "\n[[queue]]\nname = \"s\"\n[[queue]]\nname = \"q\"\ntype = \"work\"\n"
       "max_receive_count = 3\ndead_letter_queue = \"s\" #<\n",
       "queue[1].dead_letter_queue", "queue \"s\" is a stream"},
      {"ReceiveCountWithoutDeadLetter", {},
       "\n[[queue]]\nname = \"q\"\ntype = \"work\"\nmax_receive_count = 3 #<\n",
       "queue[0].max_receive_count", "is set but dead_letter_queue is empty"},
      {"DeadLetterWithoutReceiveCount", {},
       "\n[[queue]]\nname = \"d\"\ntype = \"work\"\n[[queue]]\nname = \"q\"\ntype = \"work\"\n"
       "dead_letter_queue = \"d\" #<\n",
       "queue[1].dead_letter_queue", "max_receive_count = 0 never moves a message there"},
      {"WorkSettingOnStream", {},
       "\n[[queue]]\nname = \"s\"\ntype = \"stream\"\nvisibility_timeout_ms = 5 #<\n",
       "queue[0].visibility_timeout_ms", "applies to work queues only"},
  };
}

class LayoutErrorTest : public testing::TestWithParam<ErrorCase> {};

TEST_P(LayoutErrorTest, CitesFileLineKeyAndReason) {
  const ErrorCase& c = GetParam();
  const std::string text = Apply(c);
  ASSERT_EQ(text.find("EDIT FAILED"), std::string::npos) << text;
  const int line = LineOf(text, "#<");
  const std::string where = line > 0 ? "t.toml:" + std::to_string(line) : std::string("t.toml");
  const std::string expected = where + ": key '" + c.key + "': ";

  absl::StatusOr<Layout> layout = LoadLayoutFromString(text, "t.toml");
  ASSERT_FALSE(layout.ok()) << "loaded a layout that should fail:\n" << text;
  EXPECT_EQ(layout.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(layout.status().message());
  bool found = false;
  for (size_t start = 0; start < message.size();) {
    size_t end = message.find('\n', start);
    if (end == std::string::npos) end = message.size();
    const std::string_view one(message.data() + start, end - start);
    if (one.starts_with(expected) && one.find(c.reason) != std::string_view::npos) found = true;
    start = end + 1;
  }
  EXPECT_TRUE(found) << "want a line starting \"" << expected << "\" containing \"" << c.reason
                     << "\"\ngot:\n" << message << "\nlayout:\n" << text;
}

INSTANTIATE_TEST_SUITE_P(Rules, LayoutErrorTest, testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

TEST(LayoutErrorTest, MinimalLayoutIsValid) {
  // The base every case edits must itself load, or the cases would pass for the wrong reason.
  absl::StatusOr<Layout> layout = LoadLayoutFromString(kMinimal, "t.toml");
  ASSERT_TRUE(layout.ok()) << layout.status();
}

TEST(LayoutErrorTest, SyntaxErrorCitesToml11Line) {
  const std::string text = "[eal]\nlcores = [0, 1]\nfoo bar\n";
  absl::StatusOr<Layout> layout = LoadLayoutFromString(text, "t.toml");
  ASSERT_FALSE(layout.ok());
  EXPECT_EQ(layout.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(layout.status().message());
  EXPECT_TRUE(message.starts_with("t.toml:3: TOML syntax error: ")) << message;
  EXPECT_NE(message.find("foo bar"), std::string::npos) << "the excerpt is kept: " << message;
  EXPECT_EQ(message.find('\x1b'), std::string::npos) << "no ANSI colours: " << message;
  EXPECT_EQ(message.find("[error]"), std::string::npos) << message;
}

TEST(LayoutErrorTest, DuplicateTomlKeyIsASyntaxError) {
  const std::string text = std::string(kMinimal) + "\n[control]\nlisten = \"127.0.0.1:1\"\n"
                                                   "listen = \"127.0.0.1:2\"\n";
  absl::StatusOr<Layout> layout = LoadLayoutFromString(text, "t.toml");
  ASSERT_FALSE(layout.ok());
  const std::string message(layout.status().message());
  EXPECT_TRUE(message.starts_with("t.toml:" + std::to_string(LineOf(text, "listen = \"127.0.0.1:2")) +
                                  ": TOML syntax error: "))
      << message;
}

TEST(LayoutErrorTest, ReportsEverySchemaErrorInLineOrder) {
  const std::string text = test::Edit(
      "lcores = [0, 1]", "lcores = [0, 1]\nmemory_mb = \"x\"\nbogus = 1",
      "\n[control]\nlisten = \"nowhere\"\n");
  absl::StatusOr<Layout> layout = LoadLayoutFromString(text, "t.toml");
  ASSERT_FALSE(layout.ok());
  const std::string message(layout.status().message());
  const size_t type_error = message.find("t.toml:3: key 'eal.memory_mb'");
  const size_t unknown = message.find("t.toml:4: key 'eal.bogus'");
  const size_t listen = message.find("key 'control.listen'");
  ASSERT_NE(type_error, std::string::npos) << message;
  ASSERT_NE(unknown, std::string::npos) << message;
  ASSERT_NE(listen, std::string::npos) << message;
  EXPECT_LT(type_error, unknown);
  EXPECT_LT(unknown, listen);
}

TEST(LayoutErrorTest, RulesRunOnlyOnACleanSchema) {
  // Shard 1 without an owner breaks a rule; memory_mb = "x" breaks the schema. With both, only
  // the schema error shows: rules comparing half-parsed values would bury it in noise.
  std::string text = test::Edit("shards = 1\n", "shards = 2\n");
  absl::StatusOr<Layout> rule_only = LoadLayoutFromString(text, "t.toml");
  ASSERT_FALSE(rule_only.ok());
  EXPECT_NE(std::string(rule_only.status().message()).find("owned by no lcore"), std::string::npos);

  text.replace(text.find("lcores = [0, 1]"), 15, "lcores = [0, 1]\nmemory_mb = \"x\"");
  absl::StatusOr<Layout> both = LoadLayoutFromString(text, "t.toml");
  ASSERT_FALSE(both.ok());
  const std::string message(both.status().message());
  EXPECT_NE(message.find("key 'eal.memory_mb'"), std::string::npos) << message;
  EXPECT_EQ(message.find("owned by no lcore"), std::string::npos) << message;
}

TEST(LayoutErrorTest, ReportsEveryRuleError) {
  std::string text = test::Edit("id = 1", "id = 0");  // the main lcore as a worker
  text.replace(text.find("shards = 1\n"), 11, "shards = 2\n");  // and shard 1 unowned
  absl::StatusOr<Layout> layout = LoadLayoutFromString(text, "t.toml");
  ASSERT_FALSE(layout.ok());
  const std::string message(layout.status().message());
  EXPECT_NE(message.find("t.toml:10: key 'lcore[0].id': lcore 0 is the main lcore"),
            std::string::npos) << message;
  EXPECT_NE(message.find("t.toml:15: key 'dataplane.shards': shard 1 owned by no lcore"),
            std::string::npos) << message;
}

}  // namespace
}  // namespace sluice::hwconf
