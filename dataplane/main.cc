// sluiced: the sluice appliance daemon. Reads like l3fwd: parse arguments, load the layout,
// initialise the EAL, create the mempool, set up ports and hand-off rings, open the queue
// catalog and publish it as the first queue table, launch one loop per worker lcore, serve the
// REST API, wait for a signal, stop and clean up.
//
// Exit codes (scripts rely on them):
//   0 clean shutdown after SIGINT/SIGTERM      1 invalid layout or arguments
//   2 usage error                               3 EAL initialisation failed
//   4 port, mempool or ring setup failed        5 a worker lcore failed at run time
//   6 control plane: metadata store, catalog, bootstrap, publication or REST listen failed
//   7 storage setup failed (data directory, io_uring)
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "absl/strings/str_format.h"
#include "control/catalog.h"
#include "control/control_service.h"
#include "control/file_store.h"
#include "control/rest_server.h"
#include "dataplane/address_check.h"
#include "dataplane/control_backend.h"
#include "dataplane/etcd_promotion.h"
#include "dataplane/frame_handler.h"
#include "dataplane/kernel_side.h"
#include "dataplane/port.h"
#include "dataplane/queue_table.h"
#include "dataplane/replication_shell.h"
#include "dataplane/stats.h"
#include "dataplane/storage_shell.h"
#include "dataplane/table_publisher.h"
#include "dataplane/unmap_guard.h"
#include "dataplane/worker.h"
#include "hwconf/loader.h"
#include "replication/state_file.h"

namespace sluice::dataplane {
namespace {

enum ExitCode { kExitOk = 0, kExitBadLayout = 1, kExitUsage = 2, kExitEal = 3, kExitSetup = 4,
                kExitWorker = 5, kExitControl = 6, kExitStorage = 7 };

std::atomic<bool> g_stop{false};
volatile sig_atomic_t g_signal = 0;
// Replication: the process stops and starts itself again (execv, same arguments) in another role:
// kPromote after `POST /v1/promote` on a standby, kRejoin when a primary saw a newer epoch;
// with etcd also kResume: a primary that lost its lease starts again as primary to reacquire it.
enum class Restart { kNone = 0, kPromote = 1, kRejoin = 2, kResume = 3 };
std::atomic<int> g_restart{0};
std::atomic<uint64_t> g_promote_epoch{0};  // etcd: the epoch a campaign won (0: none)
constexpr int kExitRestartNow = 100;  // internal: restart before serving (etcd said so at start)

void OnSignal(int sig) {
  g_signal = sig;
  g_stop.store(true, std::memory_order_relaxed);
}

struct Args {
  std::string hwconf;
  std::string stats_file;   // written on exit (JSON counters), for tests and operators
  bool check_only = false;
  std::optional<StorageFault> fault;  // test seam: --inject-storage-fault
  std::optional<LinkFault> link_fault;  // test seam: --inject-link-fault
  uint32_t ack_delay_ms = 0;            // test seam: --inject-standby-ack-delay
};

void PrintUsage(FILE* out) {
  std::fputs(
      "usage: sluiced --hwconf FILE [--check] [--stats-file PATH]\n"
      "\n"
      "Runs the sluice appliance on the machine layout FILE (see hwconf/README.md).\n"
      "\n"
      "  --hwconf FILE       layout to run (e.g. hwconf/tap.toml)\n"
      "  --check             validate and print the layout, then exit (no DPDK started)\n"
      "  --stats-file PATH   write the per-lcore counters as JSON to PATH on exit, and every\n"
      "                      second while running (for tests and scripts)\n"
      "  --inject-storage-fault QUEUE_ID:PARTITION:SKIP:ERRNO[:acks]\n"
      "                      test seam: writes of that partition fail with ERRNO (e.g. 5 = EIO)\n"
      "                      after SKIP of them succeeded; the partition must then answer\n"
      "                      STORAGE_FAILED while the others keep serving. ':acks': its ack-log\n"
      "                      writes fail instead of its segment writes\n"
      "  --inject-link-fault LOSS:DUP:REORDER[:CUT_FILE]\n"
      "                      test seam: the replication link drops, duplicates and (kernel UDP)\n"
      "                      swaps the datagrams this box sends with these probabilities (0..1),\n"
      "                      and sends nothing while CUT_FILE exists\n"
      "  --inject-standby-ack-delay MS\n"
      "                      test seam: a standby's ack-log writes stay in flight MS ms before\n"
      "                      they run (a slow disk on demand); its lcore must go on meanwhile\n"
      "  -h, --help          this text\n"
      "\n"
      "Queues live in the catalog under [control] metadata_dir (the layout's [[queue]] entries\n"
      "are created there when missing); the REST API and /metrics listen on [control] listen.\n"
      "Durable queues (durability write or dsync) are logged under [storage] data_dirs and\n"
      "recovered at start: every acknowledged message survives a crash.\n"
      "\n"
      "Stops cleanly on SIGINT or SIGTERM (open batches are written and acked first). Exit codes:\n"
      "0 clean stop, 1 invalid layout, 2 usage, 3 EAL init failed, 4 port/mempool/ring setup\n"
      "failed, 5 worker failure, 6 control plane (metadata, catalog, publication, REST listen)\n"
      "failed, 7 storage setup failed.\n",
      out);
}

int ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sluiced: %s needs a value\n", flag);
        return nullptr;
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      PrintUsage(stdout);
      std::exit(kExitOk);
    } else if (a == "--hwconf") {
      const char* v = value("--hwconf");
      if (!v) return kExitUsage;
      args->hwconf = v;
    } else if (a.rfind("--hwconf=", 0) == 0) {
      args->hwconf = a.substr(9);
    } else if (a == "--stats-file") {
      const char* v = value("--stats-file");
      if (!v) return kExitUsage;
      args->stats_file = v;
    } else if (a == "--check") {
      args->check_only = true;
    } else if (a == "--inject-link-fault") {
      const char* v = value("--inject-link-fault");
      if (!v) return kExitUsage;
      LinkFault f;
      char cut[4096] = {0};
      const int n = std::sscanf(v, "%lf:%lf:%lf:%4095s", &f.loss, &f.duplicate, &f.reorder, cut);
      if (n < 3 || f.loss < 0 || f.loss > 1 || f.duplicate < 0 || f.duplicate > 1 ||
          f.reorder < 0 || f.reorder > 1) {
        std::fprintf(stderr, "sluiced: --inject-link-fault wants LOSS:DUP:REORDER[:CUT_FILE] "
                     "(probabilities 0..1), got '%s'\n", v);
        return kExitUsage;
      }
      f.cut_file = cut;
      args->link_fault = f;
    } else if (a == "--inject-standby-ack-delay") {
      const char* v = value("--inject-standby-ack-delay");
      if (!v) return kExitUsage;
      char* end = nullptr;
      const unsigned long ms = std::strtoul(v, &end, 10);
      if (end == v || *end != '\0' || ms == 0 || ms > 60'000) {
        std::fprintf(stderr, "sluiced: --inject-standby-ack-delay wants milliseconds (1-60000), "
                     "got '%s'\n", v);
        return kExitUsage;
      }
      args->ack_delay_ms = static_cast<uint32_t>(ms);
    } else if (a == "--inject-storage-fault") {
      const char* v = value("--inject-storage-fault");
      if (!v) return kExitUsage;
      StorageFault f;
      const std::string_view sv(v);
      f.acks = sv.size() > 5 && sv.substr(sv.size() - 5) == ":acks";
      if (std::sscanf(v, "%u:%u:%u:%d", &f.queue, &f.partition, &f.skip, &f.error) != 4 ||
          f.error <= 0) {
        std::fprintf(stderr, "sluiced: --inject-storage-fault wants QUEUE_ID:PARTITION:SKIP:ERRNO, "
                     "got '%s'\n", v);
        return kExitUsage;
      }
      args->fault = f;
    } else {
      std::fprintf(stderr, "sluiced: unknown argument '%s'\n\n", a.c_str());
      PrintUsage(stderr);
      return kExitUsage;
    }
  }
  if (args->hwconf.empty()) {
    std::fputs("sluiced: --hwconf FILE is required\n\n", stderr);
    PrintUsage(stderr);
    return kExitUsage;
  }
  return kExitOk;
}

int InitEal(const hwconf::Layout& layout, const char* argv0) {
  std::vector<std::string> eal_args = hwconf::EalArgs(layout, argv0);
  std::vector<char*> eal_argv;
  for (std::string& s : eal_args) eal_argv.push_back(s.data());
  std::string line;
  for (const std::string& s : eal_args) line += " " + s;
  std::printf("sluiced: EAL args:%s\n", line.c_str());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "sluiced: EAL init failed: %s\n", rte_strerror(rte_errno));
    return kExitEal;
  }
  return kExitOk;
}

void InstallSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Enough mbufs for every RX/TX descriptor, every ring slot, and every lcore's cache and bursts,
// rounded to 2^n - 1 (the mempool's best size).
rte_mempool* CreateMempool(const hwconf::Layout& layout, uint16_t workers) {
  uint64_t n = 0;
  uint16_t max_mtu = 1500;
  for (const hwconf::Port& p : layout.ports) {
    n += uint64_t{p.rx_queues} * p.rx_descriptors + uint64_t{workers} * p.tx_descriptors;
    max_mtu = std::max(max_mtu, p.mtu);
  }
  n += uint64_t{workers} * workers * layout.ring_size;
  // The replication link's steering rings (one per ordered pair of channels: its rx_queues).
  n += hwconf::LinkSteeringSlots(layout);
  n += uint64_t{workers + 1u} * (256 + 4 * Worker::kRxBurst + TxBuffer::kCapacity * 4);
  uint64_t size = 1;
  while (size - 1 < n) size <<= 1;
  const uint16_t data_room = static_cast<uint16_t>(
      std::max<uint32_t>(RTE_MBUF_DEFAULT_DATAROOM, max_mtu + RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN)
      + RTE_PKTMBUF_HEADROOM);
  rte_mempool* pool = rte_pktmbuf_pool_create("sluice_mbufs", static_cast<unsigned>(size - 1), 256,
                                              0, data_room, static_cast<int>(rte_socket_id()));
  if (pool == nullptr) {
    std::fprintf(stderr, "sluiced: mempool of %lu mbufs x %u bytes: %s (raise eal.memory_mb)\n",
                 static_cast<unsigned long>(size - 1), data_room, rte_strerror(rte_errno));
  }
  return pool;
}

int SetupPorts(const hwconf::Layout& layout, SharedRuntime* rt) {
  const uint16_t tx_queues = rt->worker_count;
  for (const hwconf::Port& p : layout.ports) {
    // A dedicated replication lcore alone transmits on the link, on its channel's queue 0 (memif
    // connects only with as many TX as RX queues on both boxes: docs/replication.md §1).
    const bool dedicated_link = layout.replication.lcore >= 0 &&
                                p.name == layout.replication.link_port;
    auto port = SetupPort(p, rt->pool, dedicated_link ? p.rx_queues : tx_queues);
    if (!port.ok()) {
      std::fprintf(stderr, "sluiced: %s\n", std::string(port.status().message()).c_str());
      return kExitSetup;
    }
    const auto& m = port->addr.mac.addr_bytes;
    std::printf("sluiced: port %s (%s, ethdev %u): %s udp %u, mac %02x:%02x:%02x:%02x:%02x:%02x, "
                "%u rx / %u tx queues, rss %s, rx interrupts %s\n",
                p.name.c_str(), port->driver.c_str(), port->addr.port_id, p.ipv4.c_str(),
                p.udp_port, m[0], m[1], m[2], m[3], m[4], m[5], port->rx_queues,
                port->tx_queues, port->rss ? "on" : "off", port->rx_interrupts ? "on" : "off");
    rt->ports.push_back(*port);
    if (auto st = ConfigureKernelSide(p); !st.ok()) {
      std::fprintf(stderr, "sluiced: %s\n", std::string(st.message()).c_str());
      return kExitSetup;
    }
  }
  return kExitOk;
}

// One SP/SC ring per ordered pair of distinct workers.
int CreateRings(const hwconf::Layout& layout, SharedRuntime* rt) {
  for (uint16_t from = 0; from < rt->worker_count; ++from) {
    for (uint16_t to = 0; to < rt->worker_count; ++to) {
      if (from == to) continue;
      std::string name = absl::StrFormat("handoff_%u_%u", from, to);
      rte_ring* r = rte_ring_create(name.c_str(), layout.ring_size, static_cast<int>(rte_socket_id()),
                                    RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (r == nullptr) {
        std::fprintf(stderr, "sluiced: ring %s (%u entries): %s\n", name.c_str(), layout.ring_size,
                     rte_strerror(rte_errno));
        return kExitSetup;
      }
      rt->rings[from][to] = r;
    }
  }
  return kExitOk;
}

// Storage: the data directories exist and are writable, and every durable partition's log is
// recovered (all of them in parallel) before the workers take them over.
int RecoverStorage(const hwconf::Layout& layout, const QueueTable& table,
                   std::unique_ptr<StartupRecovery>* out) {
  for (const std::string& dir : layout.storage.data_dirs) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec || access(dir.c_str(), W_OK | X_OK) != 0) {
      std::fprintf(stderr, "sluiced: storage: data directory %s: %s\n", dir.c_str(),
                   ec ? ec.message().c_str() : std::strerror(errno));
      return kExitStorage;
    }
  }
  std::vector<storage::PartitionToRecover> what;
  for (const QueueInfo& q : table.queues()) {
    if (q.config.durability == shard::Durability::kNone) continue;
    for (uint32_t p = 0; p < q.partition_shard.size(); ++p) {
      what.push_back({DataDirOf(layout.storage, q.id, p), storage::PartitionId{q.id, p}, 0, false});
    }
  }
  *out = StartupRecovery::Run(layout.storage, what, RecoveryOptionsOf(layout.storage));
  return kExitOk;
}

int CreateStorageShells(const hwconf::Layout& layout, const SharedRuntime& rt,
                        const std::optional<StorageFault>& fault, uint64_t epoch,
                        std::vector<std::unique_ptr<StorageShell>>* shells) {
  for (uint16_t w = 0; w < rt.worker_count; ++w) {
    StorageShellConfig c;
    c.storage = layout.storage;
    c.epoch = epoch;
    c.completion_eventfd = rt.wake[w].fd;
    c.fault = fault;
    auto shell = StorageShell::Create(c, rt.recovery);
    if (!shell.ok()) {
      std::fprintf(stderr, "sluiced: storage: worker %u: %s\n", w,
                   std::string(shell.status().message()).c_str());
      return kExitStorage;
    }
    shells->push_back(std::move(*shell));
  }
  return kExitOk;
}

// Replication: the effective role and epoch (the state file in the first data directory wins
// over the layout's role once a promotion or a fencing changed it), the worker that polls the
// link, and, on a newly promoted primary, where its epoch begins in every partition's log.
struct ReplicationSetup {
  hwconf::ReplicationRole role = hwconf::ReplicationRole::kNone;
  replication::ReplicationState state;
  std::string state_path;
  ReplicationStatus status;
  // The replication channels (docs/replication.md §1): channel_worker[c] polls link queue c.
  std::vector<uint16_t> channel_worker;
  uint32_t layout_shape = 0;
  const PortRuntime* link = nullptr;
  rte_be32_t peer_ipv4 = 0;
  rte_be16_t peer_port = 0;
  rte_be32_t udp_ipv4 = 0;  // kernel UDP link: bind address
  rte_be16_t udp_port = 0;
  // A dedicated replication lcore ([replication] lcore): the shard lcores' hand-off to it.
  std::unique_ptr<ReplicationHandoff> handoff;
};

int LoadReplication(const hwconf::Layout& layout, ReplicationSetup* r) {
  r->role = layout.replication.role;
  if (r->role == hwconf::ReplicationRole::kNone) return kExitOk;
  std::error_code ec;
  std::filesystem::create_directories(layout.storage.data_dirs.front(), ec);
  r->state_path = replication::StatePath(layout.storage.data_dirs.front());
  auto st = replication::LoadState(r->state_path);
  if (!st.ok()) {
    std::fprintf(stderr, "sluiced: replication: %s\n", std::string(st.status().message()).c_str());
    return kExitStorage;
  }
  r->state = *st;
  if (r->state.role == "primary") r->role = hwconf::ReplicationRole::kPrimary;
  if (r->state.role == "standby") r->role = hwconf::ReplicationRole::kStandby;
  if (r->role == hwconf::ReplicationRole::kPrimary && r->state.epoch == 0) {
    r->state.epoch = 1;  // the first primary's epoch; persisted before it serves
    if (absl::Status s = replication::SaveState(r->state_path, r->state); !s.ok()) {
      std::fprintf(stderr, "sluiced: replication: %s\n", std::string(s.message()).c_str());
      return kExitStorage;
    }
  }
  r->status.epoch.store(r->state.epoch);
  r->status.role.store(r->role == hwconf::ReplicationRole::kPrimary ? 1 : 2);
  std::printf("sluiced: replication: role %s, epoch %llu%s\n",
              std::string(hwconf::ToString(r->role)).c_str(),
              static_cast<unsigned long long>(r->state.epoch),
              r->state.role ? " (from the state file)" : "");
  return kExitOk;
}

int SetUpReplicationLink(const hwconf::Layout& layout, const SharedRuntime& rt,
                         const QueueTable& table, ReplicationSetup* r) {
  if (r->role == hwconf::ReplicationRole::kNone) return kExitOk;
  auto parse = [](const std::string& hp, rte_be32_t* ip, rte_be16_t* port) {
    const size_t colon = hp.rfind(':');
    in_addr a{};
    if (colon == std::string::npos || inet_pton(AF_INET, hp.substr(0, colon).c_str(), &a) != 1) {
      return false;
    }
    *ip = a.s_addr;
    *port = rte_cpu_to_be_16(static_cast<uint16_t>(std::stoul(hp.substr(colon + 1))));
    return true;
  };
  // Which workers own shards: each must run a channel (its shards' partitions are replicated
  // by the lcore that writes them: nothing crosses lcores per message).
  std::vector<bool> owns(rt.worker_count, false);
  for (uint32_t s = 0; s < table.shard_count(); ++s) owns[table.WorkerOfShard(s)] = true;
  // A dedicated replication lcore (docs/replication.md §1): the one channel; hwconf validated
  // the layout, checked again here against what runs.
  int dedicated = -1;
  if (layout.replication.lcore >= 0) {
    for (uint16_t w = 0; w < rt.worker_count; ++w) {
      if (layout.lcores[w].id == layout.replication.lcore) dedicated = w;
    }
    if (dedicated < 0 || owns[static_cast<size_t>(dedicated)]) {
      std::fprintf(stderr, "sluiced: replication: lcore %d %s: a replication lcore is a worker "
                   "[[lcore]] that owns no shards\n", layout.replication.lcore,
                   dedicated < 0 ? "is not a worker lcore" : "owns shards");
      return kExitSetup;
    }
  }
  if (layout.replication.link_port.empty()) {
    // Kernel UDP: every worker that owns shards is a channel with its own socket, bound to
    // listen port + channel and talking to peer port + channel (nothing to steer: the kernel
    // delivers each datagram to the socket of its port).
    if (!parse(layout.replication.listen, &r->udp_ipv4, &r->udp_port)) {
      std::fprintf(stderr, "sluiced: replication: listen '%s' is not ip:port\n",
                   layout.replication.listen.c_str());
      return kExitBadLayout;
    }
    for (uint16_t w = 0; w < rt.worker_count; ++w) {
      if (owns[w] && dedicated < 0) r->channel_worker.push_back(w);
    }
    if (dedicated >= 0) r->channel_worker.push_back(static_cast<uint16_t>(dedicated));
    if (r->channel_worker.empty()) r->channel_worker.push_back(0);
    if (r->channel_worker.size() > kMaxReplicationChannels) {
      std::fprintf(stderr, "sluiced: replication: %zu lcores own shards: at most %u replication "
                   "channels\n", r->channel_worker.size(), kMaxReplicationChannels);
      return kExitSetup;
    }
    std::printf("sluiced: replication: kernel UDP link %s -> %s (%zu socket(s): port + channel)\n",
                layout.replication.listen.c_str(), layout.replication.peer.c_str(),
                r->channel_worker.size());
  } else {
    for (const PortRuntime& p : rt.ports) {
      if (p.conf->name == layout.replication.link_port) r->link = &p;
    }
    if (r->link == nullptr) {
      std::fprintf(stderr, "sluiced: replication: port '%s' is not set up\n",
                   layout.replication.link_port.c_str());
      return kExitSetup;
    }
    // Channel c is the worker that polls link queue c; it transmits on TX queue c too. memif
    // delivers queue c of one box to queue c of the other; a NIC (RSS) or af_packet (fanout)
    // may put a frame on any queue, and the lcore that gets it hands it to its channel's
    // (the UDP destination port names the channel: dataplane/link_steering.h).
    std::vector<int> worker_of_queue(r->link->conf->rx_queues, -1);
    for (size_t w = 0; w < layout.lcores.size(); ++w) {
      int polled = 0;
      for (const hwconf::RxQueueRef& q : layout.lcores[w].rx) {
        if (q.port != layout.replication.link_port) continue;
        ++polled;
        if (q.queue < worker_of_queue.size()) worker_of_queue[q.queue] = static_cast<int>(w);
      }
      if (polled > 1) {
        std::fprintf(stderr, "sluiced: replication: lcore %d polls %d queues of the link; each "
                     "replicating lcore polls one (its channel)\n", layout.lcores[w].id, polled);
        return kExitSetup;
      }
    }
    for (size_t q = 0; q < worker_of_queue.size(); ++q) {
      if (worker_of_queue[q] < 0) {
        std::fprintf(stderr, "sluiced: replication: no lcore polls \"%s:%zu\" (each of the "
                     "link's rx_queues is one lcore's replication channel)\n",
                     layout.replication.link_port.c_str(), q);
        return kExitSetup;
      }
      r->channel_worker.push_back(static_cast<uint16_t>(worker_of_queue[q]));
    }
    if (r->channel_worker.size() > kMaxReplicationChannels ||
        r->channel_worker.size() > rt.worker_count) {
      std::fprintf(stderr, "sluiced: replication: %zu link queues: at most %u channels, and no "
                   "more than worker lcores\n", r->channel_worker.size(), kMaxReplicationChannels);
      return kExitSetup;
    }
  }
  if (dedicated >= 0 && (r->channel_worker.size() != 1 || r->channel_worker[0] != dedicated)) {
    std::fprintf(stderr, "sluiced: replication: lcore %d is the replication lcore: it must poll "
                 "the link's only queue and no other lcore the link\n", layout.replication.lcore);
    return kExitSetup;
  }
  for (uint16_t w = 0; w < rt.worker_count && dedicated < 0; ++w) {
    if (owns[w] && std::find(r->channel_worker.begin(), r->channel_worker.end(), w) ==
                       r->channel_worker.end()) {
      std::fprintf(stderr, "sluiced: replication: lcore %d owns shards but polls no queue of the "
                   "link '%s': with replication every lcore that owns shards replicates them "
                   "itself over its own link queue (docs/replication.md §1)\n",
                   layout.lcores[w].id, layout.replication.link_port.c_str());
      return kExitSetup;
    }
  }
  if (!parse(layout.replication.peer, &r->peer_ipv4, &r->peer_port)) {
    std::fprintf(stderr, "sluiced: replication: peer '%s' is not ip:port\n",
                 layout.replication.peer.c_str());
    return kExitBadLayout;
  }
  // Channel c uses UDP port base + c on both boxes: every one must exist.
  const uint32_t last = static_cast<uint32_t>(r->channel_worker.size()) - 1;
  const uint16_t own_base = r->link != nullptr ? r->link->conf->udp_port
                                               : rte_be_to_cpu_16(r->udp_port);
  if (own_base + last > 65535 || rte_be_to_cpu_16(r->peer_port) + last > 65535) {
    std::fprintf(stderr, "sluiced: replication: %u channels use UDP ports %u.. here and %u.. on "
                 "the peer (port + channel): past 65535\n", last + 1, own_base,
                 rte_be_to_cpu_16(r->peer_port));
    return kExitSetup;
  }
  if (r->link != nullptr && r->channel_worker.size() > 1) {
    // Steering rings: one per ordered pair of channels (link_steering.h).
    LinkSteering& st = r->status.steering;
    st.channels = static_cast<uint16_t>(r->channel_worker.size());
    const uint32_t size = LinkRingSize(st.channels);
    for (uint16_t from = 0; from < st.channels; ++from) {
      st.wake[from] = &rt.wake[r->channel_worker[from]];
      for (uint16_t to = 0; to < st.channels; ++to) {
        if (from == to) continue;
        const std::string name = absl::StrFormat("linksteer_%u_%u", from, to);
        st.rings[from][to] = rte_ring_create(name.c_str(), size, static_cast<int>(rte_socket_id()),
                                             RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (st.rings[from][to] == nullptr) {
          std::fprintf(stderr, "sluiced: ring %s (%u entries): %s\n", name.c_str(), size,
                       rte_strerror(rte_errno));
          return kExitSetup;
        }
      }
    }
  }
  // The layout's shape, which the peer's must match: shard -> channel.
  std::vector<uint16_t> shard_channel(table.shard_count(), 0);
  for (uint32_t s = 0; s < table.shard_count() && dedicated < 0; ++s) {
    const uint16_t w = table.WorkerOfShard(s);
    shard_channel[s] = static_cast<uint16_t>(
        std::find(r->channel_worker.begin(), r->channel_worker.end(), w) -
        r->channel_worker.begin());
  }
  const uint16_t channels = static_cast<uint16_t>(r->channel_worker.size());
  r->layout_shape = replication::LayoutShapeHash(shard_channel, channels);
  r->status.channel_count = channels;
  if (dedicated >= 0) {
    // One hand-off ring per lcore that owns shards (replication_handoff.h).
    r->handoff = std::make_unique<ReplicationHandoff>();
    r->handoff->rings.resize(rt.worker_count);
    for (uint16_t w = 0; w < rt.worker_count; ++w) {
      if (owns[w]) {
        r->handoff->rings[w] =
            std::make_unique<replication::HandoffRing>(ReplicationHandoff::kRingBytes);
      }
    }
    r->handoff->wake = &rt.wake[dedicated];
    r->handoff->acks_flushed = std::make_unique<std::atomic<uint64_t>[]>(rt.worker_count);
    // A standby's shard lcores read its replicated logs through the replication lcore.
    if (r->role == hwconf::ReplicationRole::kStandby) r->handoff->SetUpReplicaReads(rt.wake);
    r->status.handoff = r->handoff.get();
    std::printf("sluiced: replication: lcore %d replicates every partition (dedicated); the "
                "shard lcores hand it their batches through rings of %u MiB\n",
                layout.replication.lcore, ReplicationHandoff::kRingBytes >> 20);
  }
  r->status.link_ready.store(r->link == nullptr || r->link->started);
  r->status.state = r->state;
  r->status.state_path = r->state_path;
  std::printf("sluiced: replication: %u channel(s), layout shape %08x%s\n", channels,
              r->layout_shape, r->status.steering.channels > 1 ? ", steered by UDP port" : "");
  return kExitOk;
}

// A newly promoted primary: its epoch begins at the end of each partition's log as recovered.
int RecordEpochStarts(StartupRecovery* recovery, ReplicationSetup* r) {
  if (r->role != hwconf::ReplicationRole::kPrimary || !r->state.pending_starts) return kExitOk;
  if (recovery != nullptr) {
    for (const auto& [k, end] : recovery->LogEnds()) r->state.starts[k] = end;
  }
  r->state.pending_starts = false;
  if (absl::Status s = replication::SaveState(r->state_path, r->state); !s.ok()) {
    std::fprintf(stderr, "sluiced: replication: %s\n", std::string(s.message()).c_str());
    return kExitStorage;
  }
  std::printf("sluiced: replication: epoch %llu begins at the log ends of %zu partition(s)\n",
              static_cast<unsigned long long>(r->state.epoch), r->state.starts.size());
  return kExitOk;
}

// Automatic promotion through etcd (docs/replication.md §7), when the layout names an endpoint.
// A primary holds the leader key before any worker exists (it registers partitions for
// replication only while writable); a standby starts watching once it runs.
int StartEtcdPromotion(const hwconf::Layout& layout, const SharedRuntime& rt,
                       ReplicationSetup* r, std::unique_ptr<EtcdPromotion>* out) {
  if (r->role == hwconf::ReplicationRole::kNone) return kExitOk;
  EtcdPromotionConfig c;
  c.layout = &layout;
  c.status = &r->status;
  c.primary = r->role == hwconf::ReplicationRole::kPrimary;
  c.epoch = r->state.epoch;
  c.boot_id = rt.unix_ns_at_start ^ (uint64_t{static_cast<uint32_t>(getpid())} << 32);
  c.next_epoch = [r] { return std::max(r->state.epoch, r->status.epoch.load()) + 1; };
  c.on_action = [](control::ElectionAction a, uint64_t epoch) {
    if (a == control::ElectionAction::kPromote) g_promote_epoch = epoch;
    const Restart what = a == control::ElectionAction::kPromote  ? Restart::kPromote
                         : a == control::ElectionAction::kRejoin ? Restart::kRejoin
                                                                 : Restart::kResume;
    int none = static_cast<int>(Restart::kNone);
    g_restart.compare_exchange_strong(none, static_cast<int>(what));
    g_stop = true;
  };
  auto p = EtcdPromotion::Create(std::move(c));
  if (!p.ok()) {
    std::fprintf(stderr, "sluiced: etcd: %s\n", std::string(p.status().message()).c_str());
    return kExitBadLayout;
  }
  *out = std::move(*p);
  if (*out == nullptr || r->role != hwconf::ReplicationRole::kPrimary) return kExitOk;
  std::printf("sluiced: etcd: acquiring the leader key before serving\n");
  std::fflush(stdout);
  const control::ElectionAction a = (*out)->Acquire(g_stop);
  if (a != control::ElectionAction::kNone) {
    (*out)->Stop();
    return kExitRestartNow;  // the action set g_restart
  }
  (*out)->Start();
  return kExitOk;
}

// The control plane: metadata store -> catalog -> service over the dataplane backend.
struct ControlPlane {
  std::unique_ptr<control::FileStore> store;
  std::unique_ptr<control::Catalog> catalog;
  std::unique_ptr<SluicedBackend> backend;
  std::unique_ptr<control::ControlService> service;
  std::unique_ptr<control::RestServer> rest;
};

int Fail(const char* what, const absl::Status& st) {
  std::fprintf(stderr, "sluiced: %s: %s\n", what, std::string(st.message()).c_str());
  return kExitControl;
}

// RCU publisher of the queue table and the workers' stats mailboxes.
int CreateTablePublisher(SharedRuntime* rt, std::unique_ptr<TablePublisher>* tables,
                         std::unique_ptr<StatsMailbox[]>* mailboxes) {
  auto t = TablePublisher::Create(rt->worker_count);
  if (!t.ok()) return Fail("queue table publisher", t.status());
  *tables = std::move(*t);
  *mailboxes = std::make_unique<StatsMailbox[]>(rt->worker_count);
  rt->tables = tables->get();
  rt->stats = mailboxes->get();
  SetUnmapGuard(tables->get());  // PMD unmaps wait for the workers' passes (unmap_guard.h)
  return kExitOk;
}

int OpenCatalog(const hwconf::Layout& layout, SharedRuntime* rt, ControlPlane* cp) {
  auto store = control::FileStore::Open(layout.control.metadata_dir);
  if (!store.ok()) return Fail("metadata store", store.status());
  cp->store = std::move(*store);
  const control::MetaOptions options = control::MetaOptionsFromLayout(layout);
  auto catalog = control::Catalog::Open(*cp->store, options);
  if (!catalog.ok()) return Fail("catalog", catalog.status());
  cp->catalog = std::move(*catalog);
  // Queues created at run time with the default message size must fit the shards.
  rt->min_message_bytes = options.defaults.max_message_bytes;
  cp->backend = std::make_unique<SluicedBackend>(layout, *rt);
  cp->service = std::make_unique<control::ControlService>(*cp->catalog, *cp->backend);
  std::printf("sluiced: catalog %s: %zu queue(s)\n", cp->catalog->StoreDescription().c_str(),
              cp->catalog->List().size());
  return kExitOk;
}

// The layout's [[queue]] declarations through the catalog, then the first table (before the
// workers exist: their shards are sized by it).
int BootstrapAndPublish(const hwconf::Layout& layout, ControlPlane* cp) {
  auto report = cp->service->Bootstrap(layout.queues);
  if (!report.ok()) return Fail("bootstrap of the layout's queues", report.status());
  for (const std::string& name : report->created) {
    std::printf("sluiced: queue %s created from the layout\n", name.c_str());
  }
  for (const std::string& w : report->warnings) std::printf("sluiced: warning: %s\n", w.c_str());
  if (absl::Status st = cp->service->PublishCurrent(); !st.ok()) return Fail("publication", st);
  return kExitOk;
}

int StartRest(const hwconf::Layout& layout, ControlPlane* cp) {
  cp->rest = std::make_unique<control::RestServer>(
      *cp->service, control::RestServerOptions{.listen = layout.control.listen});
  if (absl::Status st = cp->rest->Start(); !st.ok()) return Fail("REST API", st);
  std::printf("sluiced: REST API and /metrics on http://%s (DPDK telemetry: /sluice/...)\n",
              layout.control.listen.c_str());
  return kExitOk;
}

// Reverse order of construction: each part refers to the ones before it.
void StopControlPlane(ControlPlane* cp) {
  cp->rest.reset();
  cp->service.reset();
  cp->backend.reset();
  cp->catalog.reset();
  cp->store.reset();
}

// Promotion (standby -> primary, a new epoch) or rejoin (fenced primary -> standby): the state
// file says so first (atomic, fsynced), then the process becomes a new sluiced with the same
// arguments, which recovers its logs and serves in the new role (docs/replication.md §7).
int RestartInRole(Restart what, ReplicationSetup* r, char** argv) {
  replication::ReplicationState st = r->state;
  if (what == Restart::kPromote) {
    st.epoch = std::max(std::max(st.epoch, r->status.epoch.load()) + 1, g_promote_epoch.load());
    st.role = "primary";
    st.pending_starts = true;
    st.starts.clear();
    st.channel_epochs.clear();  // a primary's channels all have its epoch
  } else if (what == Restart::kRejoin) {
    st.role = "standby";
  }
  if (absl::Status s = replication::SaveState(r->state_path, st); !s.ok()) {
    std::fprintf(stderr, "sluiced: replication: %s\n", std::string(s.message()).c_str());
    return kExitStorage;
  }
  std::printf("sluiced: replication: %s with epoch %llu: restarting\n",
              what == Restart::kPromote  ? "promoted to primary"
              : what == Restart::kRejoin ? "rejoining as standby"
                                         : "resuming as primary (to reacquire the etcd key)",
              static_cast<unsigned long long>(st.epoch));
  std::fflush(stdout);
  std::fflush(stderr);
  // DPDK's runtime files stay locked through descriptors that survive exec (the new EAL would
  // find them busy): everything but stdio closes at exec. Not before: EAL's lcore threads still
  // wait on their pipes, and closing those under them panics.
  constexpr unsigned kCloseRangeCloexec = 1u << 2;  // CLOSE_RANGE_CLOEXEC (Linux 5.11)
  if (syscall(SYS_close_range, 3u, ~0u, kCloseRangeCloexec) != 0) {
    for (int fd = 3; fd < 65536; ++fd) {
      const int flags = fcntl(fd, F_GETFD);
      if (flags >= 0) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
  }
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "sluiced: replication: execv: %s\n", std::strerror(errno));
  return kExitSetup;
}

struct LaunchArg {
  Worker* worker;
};

int WorkerMain(void* arg) {
  auto* w = static_cast<LaunchArg*>(arg)->worker;
  return w->Run(g_stop);
}

// A standby adopts the primary's queue catalog (metadata replication) as it arrives.
void ApplyReplicatedCatalog(ReplicationSetup& repl, control::ControlService& service,
                            uint64_t* seen) {
  const uint64_t seq = repl.status.catalog_in_seq.load(std::memory_order_acquire);
  if (seq == *seen) return;
  *seen = seq;
  std::string doc;
  {
    std::lock_guard lock(repl.status.catalog_mu);
    doc = std::move(repl.status.catalog_in);
  }
  if (absl::Status st = service.ReplaceCatalog(doc); !st.ok()) {
    std::fprintf(stderr, "sluiced: replication: the primary's catalog was not adopted: %s\n",
                 std::string(st.message()).c_str());
    return;
  }
  std::printf("sluiced: replication: adopted the primary's catalog (%zu queue(s))\n",
              service.catalog().List().size());
  std::fflush(stdout);
}

int RunMainLoop(const std::vector<std::unique_ptr<Worker>>& workers, const Args& args,
                ReplicationSetup& repl, control::ControlService& service) {
  // The main lcore is housekeeping: it waits for a signal and publishes counters once a second.
  uint64_t next_stats = 0;
  uint64_t catalog_seen = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    if (repl.role != hwconf::ReplicationRole::kNone) AggregateReplicationStatus(repl.status);
    if (repl.role == hwconf::ReplicationRole::kStandby) {
      ApplyReplicatedCatalog(repl, service, &catalog_seen);
    }
    if (repl.role == hwconf::ReplicationRole::kPrimary && repl.status.fenced.load()) {
      std::printf("sluiced: replication: fenced: a primary of epoch %llu exists (ours is %llu); "
                  "taking no writes, restarting as its standby\n",
                  static_cast<unsigned long long>(repl.status.higher_epoch.load()),
                  static_cast<unsigned long long>(repl.state.epoch));
      std::fflush(stdout);
      g_restart = static_cast<int>(Restart::kRejoin);
      g_stop = true;
      break;
    }
    const uint64_t now = rte_get_timer_cycles();
    if (!args.stats_file.empty() && now >= next_stats) {
      WriteStatsFile(args.stats_file, workers);
      next_stats = now + rte_get_timer_hz();
    }
    usleep(20'000);
  }
  return kExitOk;
}

void Cleanup(SharedRuntime& rt) {
  for (const PortRuntime& p : rt.ports) ClosePort(p);
  for (auto& row : rt.rings)
    for (rte_ring*& r : row)
      if (r != nullptr) rte_ring_free(std::exchange(r, nullptr));
  if (rt.pool != nullptr) rte_mempool_free(rt.pool);
}

int Main(int argc, char** argv) {
  Args args;
  if (int rc = ParseArgs(argc, argv, &args); rc != kExitOk) return rc;

  auto layout = hwconf::LoadLayout(args.hwconf);
  if (!layout.ok()) {
    std::fprintf(stderr, "sluiced: %s\n", std::string(layout.status().message()).c_str());
    return kExitBadLayout;
  }
  if (args.check_only) {
    std::printf("%s\nsluiced: layout %s is valid\n", hwconf::FormatLayout(*layout).c_str(),
                args.hwconf.c_str());
    return kExitOk;
  }
  if (int rc = InitEal(*layout, argv[0]); rc != kExitOk) return rc;
  InstallSignals();

  SharedRuntime rt;
  rt.layout = &*layout;
  rt.tsc_hz = rte_get_tsc_hz();
  rt.tsc_start = rte_rdtsc();
  timespec unix_now{};
  clock_gettime(CLOCK_REALTIME, &unix_now);
  rt.unix_ns_at_start = static_cast<uint64_t>(unix_now.tv_sec) * 1'000'000'000ull +
                        static_cast<uint64_t>(unix_now.tv_nsec);
  rt.worker_count = static_cast<uint16_t>(layout->lcores.size());
  rt.ports.reserve(layout->ports.size());  // workers keep pointers into it
  int rc = kExitOk;
  rt.pool = CreateMempool(*layout, rt.worker_count);
  if (rt.pool == nullptr) rc = kExitSetup;
  if (rc == kExitOk) rc = SetupPorts(*layout, &rt);
  if (rc == kExitOk) rc = CreateRings(*layout, &rt);

  std::unique_ptr<AddressCheck> address_check;
  if (rc == kExitOk) {
    auto ac = AddressCheck::Create(static_cast<int>(rte_socket_id()));
    if (ac.ok()) {
      address_check.reset(*ac);
      rt.address_check = address_check.get();
    } else {
      std::fprintf(stderr, "sluiced: %s\n", std::string(ac.status().message()).c_str());
      rc = kExitSetup;
    }
  }
  std::unique_ptr<TablePublisher> tables;
  std::unique_ptr<StatsMailbox[]> mailboxes;
  ControlPlane cp;
  if (rc == kExitOk) rc = CreateTablePublisher(&rt, &tables, &mailboxes);
  if (rc == kExitOk) rc = OpenCatalog(*layout, &rt, &cp);
  if (rc == kExitOk) rc = BootstrapAndPublish(*layout, &cp);

  std::vector<WakeSignal> wake(rt.worker_count);
  for (WakeSignal& w : wake) w.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  rt.wake = wake.data();

  ReplicationSetup repl;
  if (rc == kExitOk) rc = LoadReplication(*layout, &repl);
  std::unique_ptr<StartupRecovery> recovery;
  std::vector<std::unique_ptr<StorageShell>> shells;
  if (rc == kExitOk) rc = RecoverStorage(*layout, *tables->Load(), &recovery);
  rt.recovery = recovery.get();
  if (rc == kExitOk) rc = SetUpReplicationLink(*layout, rt, *tables->Load(), &repl);
  if (repl.role != hwconf::ReplicationRole::kNone) rt.replication_status = &repl.status;
  if (rc == kExitOk) rc = RecordEpochStarts(recovery.get(), &repl);
  std::unique_ptr<EtcdPromotion> etcd;
  if (rc == kExitOk) rc = StartEtcdPromotion(*layout, rt, &repl, &etcd);
  if (rc == kExitOk) rc = CreateStorageShells(*layout, rt, args.fault, repl.state.epoch, &shells);

  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<LaunchArg> launch(rt.worker_count);
  if (rc == kExitOk) {
    for (uint16_t w = 0; w < rt.worker_count; ++w) {
      std::unique_ptr<ReplicationShell> link;
      const auto channel = std::find(repl.channel_worker.begin(), repl.channel_worker.end(), w);
      if (channel != repl.channel_worker.end()) {
        ReplicationShellConfig c;
        c.role = repl.role;
        c.channel = static_cast<uint16_t>(channel - repl.channel_worker.begin());
        c.channels = static_cast<uint16_t>(repl.channel_worker.size());
        c.layout_shape = repl.layout_shape;
        c.worker = w;
        c.dedicated = repl.handoff != nullptr;
        c.link_queue = c.channel;
        // A standby channel follows the epoch it last adopted itself (§7: its partitions were
        // checked against that primary); a primary's channels all have the box's.
        c.epoch = repl.role == hwconf::ReplicationRole::kStandby
                      ? repl.state.EpochOfChannel(c.channel) : repl.state.epoch;
        c.boot_id = rt.unix_ns_at_start ^ (uint64_t{static_cast<uint32_t>(getpid())} << 32);
        c.link = repl.link;
        c.peer_ipv4 = repl.peer_ipv4;
        c.peer_udp_port = repl.peer_port;
        c.udp_listen_ipv4 = repl.udp_ipv4;
        c.udp_listen_port = repl.udp_port;
        c.pool = rt.pool;
        c.storage = layout->storage;
        c.recovery = recovery.get();
        c.completion_eventfd = rt.wake[w].fd;
        for (const hwconf::Port& port : layout->ports) {
          in_addr a{};
          if (port.role == hwconf::PortRole::kClient && c.client_ipv4 == 0 &&
              inet_pton(AF_INET, port.ipv4.c_str(), &a) == 1) {
            c.client_ipv4 = ntohl(a.s_addr);
            c.client_port = port.udp_port;
          }
        }
        c.state = repl.state;
        c.status = &repl.status;
        c.fault = args.link_fault;
        c.ack_delay_ms = args.ack_delay_ms;
        auto shell = ReplicationShell::Create(c);
        if (!shell.ok()) {
          std::fprintf(stderr, "sluiced: replication: %s\n",
                       std::string(shell.status().message()).c_str());
          rc = kExitStorage;
          break;
        }
        link = std::move(*shell);
      }
      std::unique_ptr<HandoffReplicator> handoff;
      if (repl.handoff != nullptr && repl.handoff->rings[w] != nullptr) {
        handoff = std::make_unique<HandoffReplicator>(repl.status, *repl.handoff, w);
      }
      // Opens (and restores) the worker's durable partitions, on this thread, before launch.
      workers.push_back(std::make_unique<Worker>(w, layout->lcores[w], rt, std::move(shells[w]),
                                                 std::move(link), std::move(handoff)));
    }
  }
  if (rc == kExitOk) {
    for (uint16_t w = 0; w < rt.worker_count; ++w) {
      launch[w].worker = workers[w].get();
      const unsigned lcore = static_cast<unsigned>(layout->lcores[w].id);
      if (int lrc = rte_eal_remote_launch(WorkerMain, &launch[w], lcore); lrc != 0) {
        std::fprintf(stderr, "sluiced: launch on lcore %u failed: %s\n", lcore, rte_strerror(-lrc));
        g_stop = true;
        rc = kExitSetup;
        break;
      }
    }
  }
  if (rc == kExitOk && etcd && repl.role == hwconf::ReplicationRole::kStandby) etcd->Start();
  if (rc == kExitOk) {
    cp.backend->AttachReplication(
        &repl.status, layout->replication.peer,
        [](bool) {
          g_restart = static_cast<int>(Restart::kPromote);
          g_stop = true;
        },
        [&cp] { return cp.catalog->Export(); });
    cp.backend->PushCatalog();
    cp.backend->AttachWorkers(&workers);
    cp.backend->RegisterTelemetry();
    rc = StartRest(*layout, &cp);
  }
  if (rc == kExitOk) {
    std::printf("sluiced: running: %u worker lcore(s), %u shard(s), %zu queue(s); "
                "SIGINT/SIGTERM to stop\n", rt.worker_count, layout->shards,
                tables->Load()->queues().size());
    std::fflush(stdout);
    rc = RunMainLoop(workers, args, repl, *cp.service);
  }
  // No publication after this point: the REST server finishes its requests and stops before the
  // workers (a publication waits for them to pass a quiescent state).
  if (cp.rest) cp.rest->Stop();
  if (cp.backend) cp.backend->AttachWorkers(nullptr);
  g_stop = true;
  if (etcd) etcd->Stop();
  if (rc == kExitRestartNow) rc = kExitOk;
  // rte_eal_wait_lcore returns the lcore function's result (0 for one never launched).
  for (const auto& w : workers) {
    if (rte_eal_wait_lcore(static_cast<unsigned>(w->lcore_id())) != 0 && rc == kExitOk) {
      rc = kExitWorker;
    }
  }
  if (!args.stats_file.empty() && !workers.empty()) WriteStatsFile(args.stats_file, workers);
  PrintStats(stdout, workers);
  workers.clear();
  StopControlPlane(&cp);
  SetUnmapGuard(nullptr);
  if (GuardedUnmaps() != 0) {
    std::printf("sluiced: %" PRIu64 " unmap(s) of port memory waited for the workers' passes\n",
                GuardedUnmaps());
  }
  tables.reset();  // frees the last table
  for (WakeSignal& w : wake) close(w.fd);
  address_check.reset();
  Cleanup(rt);
  for (auto& row : repl.status.steering.rings)
    for (rte_ring*& r : row)
      if (r != nullptr) rte_ring_free(std::exchange(r, nullptr));
  rte_eal_cleanup();
  if (g_signal != 0) std::printf("sluiced: stopped on signal %d\n", static_cast<int>(g_signal));
  if (g_restart.load() != static_cast<int>(Restart::kNone) && g_signal == 0 && rc == kExitOk) {
    if (etcd && g_restart.load() == static_cast<int>(Restart::kPromote)) etcd->BeforePromotionExec();
    return RestartInRole(static_cast<Restart>(g_restart.load()), &repl, argv);
  }
  return rc;
}

}  // namespace
}  // namespace sluice::dataplane

int main(int argc, char** argv) { return sluice::dataplane::Main(argc, argv); }
