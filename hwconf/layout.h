// The machine layout that sluiced runs on: which cores do what, which NIC ports and queues,
// storage, replication and control settings. Loaded from TOML by hwconf/loader.h; every field's
// meaning, unit and default is documented in hwconf/README.md, generated from the settings table
// of hwconf/settings.cc (hwconf::PrintSettings, `sluice-hwconf settings`).
//
// A Layout returned by LoadLayout has passed every rule of hwconf/README.md §Validation, and
// eal.main_lcore is resolved (never -1).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::hwconf {

enum class IdlePolicy { kPoll, kAdaptive };
enum class Durability { kNone, kWrite, kDsync };
enum class ReplicationRole { kNone, kPrimary, kStandby };
enum class ReplicationMode { kAsync, kSync };
enum class QueueType { kStream, kWork };
enum class PortRole { kClient, kReplication };

struct Eal {
  std::vector<int> lcores;            // DPDK lcore ids; each maps to the CPU of the same number
                                      // unless lcore_cpus says otherwise
  int main_lcore = -1;                // control/housekeeping lcore; -1 = first of `lcores`
  uint32_t memory_mb = 512;           // -m (used unless hugepages and socket_mem_mb are both set)
  bool hugepages = false;             // false => --no-huge
  std::string file_prefix = "sluice"; // --file-prefix; distinct per process on one host
  std::vector<std::string> extra_args;// appended verbatim to the EAL argv
  // (lcore, cpu) pairs from [eal] lcore_cpus, sorted by lcore. Non-empty => EAL gets --lcores,
  // so that several lcores can share a CPU (a 2-CPU machine running main + 2 workers); lcores not
  // listed run on the CPU of their own number.
  std::vector<std::pair<int, int>> lcore_cpus;
  // With hugepages: MiB per NUMA socket, index = socket id (--socket-mem). Empty => -m memory_mb.
  std::vector<uint32_t> socket_mem_mb;

  // The CPU that `lcore` runs on.
  int CpuOf(int lcore) const {
    for (const auto& [l, cpu] : lcore_cpus) if (l == lcore) return cpu;
    return lcore;
  }
};

struct Port {
  std::string name;              // referenced by lcores[].rx and by replication.link_port
  std::string pci;               // PCI address (e.g. "0000:3b:00.0"), or empty when `vdev` is set
  std::string vdev;              // DPDK vdev string (e.g. "net_tap0,iface=sluice0"), or empty
  PortRole role = PortRole::kClient;
  uint16_t rx_queues = 1;
  uint16_t tx_queues = 0;        // 0 = one per worker lcore (what sluiced needs: each worker
                                 // transmits on its own queue, without locks)
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  uint16_t mtu = 1500;
  std::string ipv4;              // dotted quad this port answers ARP/ICMP/UDP for
  uint16_t udp_port = 7411;      // sluice protocol port
  // TAP ports only: address (CIDR) sluiced gives the kernel side of the TAP interface at start,
  // so that kernel clients on this host reach the dataplane at once. Empty = leave it alone.
  std::string kernel_ipv4;
};

struct RxQueueRef {
  std::string port;  // Port::name
  uint16_t queue = 0;
};

struct Lcore {
  int id = -1;                      // DPDK lcore id, must be in eal.lcores
  std::vector<RxQueueRef> rx;       // RX queues this lcore polls
  std::vector<uint32_t> shards;     // shard ids this lcore owns
  IdlePolicy idle = IdlePolicy::kAdaptive;
  // adaptive: the longest sleep when an RX queue of the lcore cannot wake it (memif, af_packet,
  // a NIC without RX interrupts): the latency it may add to the first frame after a quiet spell,
  // against the CPU an idle lcore burns (20,000 wake-ups a second at 50).
  uint32_t idle_sleep_max_us = 50;
};

struct Storage {
  std::vector<std::string> data_dirs = {"/var/lib/sluice/data"};  // one per device; partitions
                                                                 // spread over them
  uint32_t uring_depth = 256;
  bool sqpoll = false;
  int sqpoll_cpu = -1;                 // -1 = kernel chooses
  uint32_t batch_bytes = 256 * 1024;   // a batch closes at this many bytes...
  uint32_t batch_time_us = 200;        // ...or after this long, whichever comes first
  uint64_t segment_bytes = 256ull << 20;
  Durability durability = Durability::kWrite;  // default for queues that do not say
};

struct Replication {
  ReplicationRole role = ReplicationRole::kNone;
  std::string link_port;   // Port::name with role=replication, or empty for kernel UDP
  std::string peer;        // "ip:port" of the other box's link endpoint
  std::string listen;      // kernel UDP link (link_port ""): "ip:port" this box binds
  ReplicationMode mode = ReplicationMode::kAsync;  // default for queues that do not say
  // Automatic promotion (docs/replication.md §7): "" = manual promotion only.
  std::string etcd;                    // "http://a.b.c.d:port" of an etcd v3 endpoint
  uint32_t etcd_lease_ms = 3000;       // the leader key's lease (etcd counts whole seconds)
  std::string etcd_key = "/sluice/leader";  // the leader key; one per pair
  // A dedicated replication lcore (docs/replication.md §1): its DPDK lcore id, or -1 (the
  // default) for channels on the lcores that own shards.
  int lcore = -1;
};

struct Control {
  std::string listen = "127.0.0.1:7480";  // REST/metrics address
  std::string metadata_dir = "/var/lib/sluice/meta";
};

// Queues declared in the layout: created in the control plane's catalog at start when missing.
struct QueueDecl {
  std::string name;
  QueueType type = QueueType::kStream;
  uint32_t partitions = 1;
  uint32_t visibility_timeout_ms = 30'000;
  uint32_t max_message_bytes = 256 * 1024;
  uint32_t max_receive_count = 0;          // 0 = no dead-lettering
  std::string dead_letter_queue;
};

// dataplane.shard_memory_mb when unset: each shard's message memory (its chunk pool), in MiB.
inline constexpr uint32_t kDefaultShardMemoryMb = 64;

struct Layout {
  std::string source;        // file it was loaded from
  Eal eal;
  std::vector<Port> ports;
  std::vector<Lcore> lcores; // worker lcores; eal.main_lcore is never a worker
  uint32_t shards = 0;       // number of shards; each owned by exactly one worker lcore
  uint32_t ring_size = 1024; // entries per (from, to) lcore hand-off ring, power of two
  uint32_t shard_memory_mb = kDefaultShardMemoryMb;  // per shard (its chunk pool), touched at start
  Storage storage;
  Replication replication;
  Control control;
  std::vector<QueueDecl> queues;

  const Port* FindPort(std::string_view name) const {
    for (const Port& p : ports) if (p.name == name) return &p;
    return nullptr;
  }
};

std::string_view ToString(IdlePolicy);
std::string_view ToString(Durability);
std::string_view ToString(ReplicationRole);
std::string_view ToString(ReplicationMode);
std::string_view ToString(QueueType);
std::string_view ToString(PortRole);

}  // namespace sluice::hwconf
