// Suggest: the machine -> a Layout following the rules of suggest.h -> TOML with the reasons as
// comments.
#include "hwconf/suggest.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_join.h"
#include "hwconf/internal.h"
#include "hwconf/memory_budget.h"

namespace sluice::hwconf {
namespace {

using internal::Cat;

constexpr int kMaxDefaultQueues = 8;
constexpr int kMaxLcoreId = 127;  // RTE_MAX_LCORE - 1 of Debian's DPDK (settings.cc)
constexpr uint32_t kShardsPerWorker = 2;

struct Core {
  int node;
  std::vector<int> cpus;  // usable CPUs of the core, by id
  bool isolated;          // its first CPU is isolated
  bool takes_irqs;        // a CPU of it takes interrupts of a chosen port
};

struct PortPlan {
  Port port;
  int node;  // where its workers go
};

bool Usable(const MachineCpu& c) { return c.online && c.allowed; }

absl::StatusOr<std::vector<PortPlan>> PlanPorts(const Machine& m, const SuggestOptions& o,
                                                int main_node, std::vector<std::string>& notes) {
  std::vector<std::string> specs = o.ports;
  if (specs.empty()) {
    for (const PciDevice& d : m.pci) {
      if (d.driver == "vfio-pci" || d.driver == "uio_pci_generic" || d.driver == "igb_uio") {
        specs.push_back(d.address);
      }
    }
    notes.push_back(specs.empty()
                        ? "No NIC is bound to vfio-pci or uio and no --ports were given: one TAP "
                          "port, as in hwconf/tap.toml (bind a NIC with dpdk-devbind.py -b "
                          "vfio-pci ADDR, or name ports with --ports)."
                        : Cat("Ports: the NICs bound to vfio-pci/uio (", absl::StrJoin(specs, ", "),
                              ")."));
    if (specs.empty()) specs.push_back("net_tap0,iface=sluice0");
  }
  std::vector<PortPlan> plans;
  for (size_t i = 0; i < specs.size(); ++i) {
    PortPlan p{.node = main_node};
    p.port.name = Cat("client", i);
    p.port.ipv4 = Cat("198.18.", 2 * i, ".1");
    if (internal::CheckPci(specs[i]).empty()) {
      const PciDevice* dev = m.Pci(specs[i]);
      if (dev == nullptr) {
        return absl::InvalidArgumentError(Cat("--ports: ", specs[i], " is not a PCI device of ",
                                              m.source, " (dpdk-devbind.py --status-dev net)"));
      }
      p.port.pci = specs[i];
      if (dev->node >= 0) p.node = dev->node;
    } else if (internal::CheckVdev(specs[i]).empty()) {
      p.port.vdev = specs[i];
      if (p.port.vdev.starts_with("net_tap") && p.port.vdev.find(",iface=") != std::string::npos) {
        p.port.kernel_ipv4 = Cat("198.18.", 2 * i, ".2/24");
      }
    } else {
      return absl::InvalidArgumentError(
          Cat("--ports: \"", specs[i], "\" is neither a PCI address (DDDD:BB:DD.F) nor a vdev "
              "(net_DRIVERn[,key=value...])"));
    }
    plans.push_back(std::move(p));
  }
  return plans;
}

// The spare cores of each node, best first: isolated, then not taking the ports' interrupts.
std::map<int, std::vector<Core>> SpareCores(const Machine& m, int main_cpu,
                                            const std::set<int>& irq_cpus) {
  std::map<int, Core> by_core;
  const MachineCpu* main = m.Cpu(main_cpu);
  for (const MachineCpu& c : m.cpus) {
    if (!Usable(c) || c.core == main->core) continue;
    auto [it, fresh] = by_core.try_emplace(c.core, Core{c.node, {}, c.isolated, false});
    it->second.cpus.push_back(c.id);
    it->second.takes_irqs = it->second.takes_irqs || irq_cpus.contains(c.id);
  }
  std::map<int, std::vector<Core>> nodes;
  for (auto& [id, core] : by_core) nodes[core.node].push_back(core);
  for (auto& [node, cores] : nodes) {
    std::stable_sort(cores.begin(), cores.end(), [](const Core& a, const Core& b) {
      return std::pair(!a.isolated, a.takes_irqs) < std::pair(!b.isolated, b.takes_irqs);
    });
  }
  return nodes;
}

struct Assignment {
  std::vector<std::pair<int, int>> workers;  // (cpu, port index) per worker, in order
  std::vector<uint16_t> queues;              // per port
  int sqpoll_cpu = -1;
};

Assignment Assign(const Machine& m, const std::vector<PortPlan>& ports, int main_cpu,
                  int rx_queues, std::map<int, std::vector<Core>> spare,
                  std::vector<std::string>& notes) {
  Assignment a;
  // SQPOLL: a leftover isolated core on the first port's node, if workers keep at least two.
  std::vector<Core>& first = spare[ports[0].node];
  if (first.size() >= 3 && first.back().isolated) {
    a.sqpoll_cpu = first.back().cpus[0];
    first.pop_back();
    notes.push_back(Cat("SQPOLL on CPU ", a.sqpoll_cpu, ": an isolated core of node ",
                        ports[0].node, " left over; the kernel thread spins there."));
  }
  std::map<int, int> ports_on_node;
  for (const PortPlan& p : ports) ++ports_on_node[p.node];
  std::map<int, size_t> next;  // node -> next spare core
  std::vector<int> fallback;   // CPUs to share when no core is left: main's siblings, then all
  for (int s : m.Siblings(main_cpu)) {
    if (Usable(*m.Cpu(s))) fallback.push_back(s);
  }
  // First every port on its own node, then what is left over (an explicit --rx-queues larger
  // than the node) elsewhere, so that one port's overflow never takes another port's cores.
  std::vector<int> overflow;  // port index per worker still without a CPU
  for (size_t pi = 0; pi < ports.size(); ++pi) {
    const int node = ports[pi].node;
    // Count the cores that take none of the ports' interrupts when there are any: a worker on
    // the others is the last resort of an explicit --rx-queues, not a default.
    const auto& cores = spare[node];
    const int quiet = static_cast<int>(
        std::count_if(cores.begin(), cores.end(), [](const Core& c) { return !c.takes_irqs; }));
    const int usable = quiet > 0 ? quiet : static_cast<int>(cores.size());
    const int have = usable / std::max(1, ports_on_node[node]);
    const int queues = rx_queues > 0 ? rx_queues : std::clamp(have, 1, kMaxDefaultQueues);
    a.queues.push_back(static_cast<uint16_t>(queues));
    for (int q = 0; q < queues; ++q) {
      if (next[node] < spare[node].size()) {
        a.workers.emplace_back(spare[node][next[node]++].cpus[0], static_cast<int>(pi));
      } else {
        overflow.push_back(static_cast<int>(pi));
      }
    }
  }
  size_t shared = 0;
  for (int pi : overflow) {
    int cpu = -1;
    for (auto& [other, cores] : spare) {  // another node: remote, but a core of its own
      if (cpu < 0 && next[other] < cores.size()) cpu = cores[next[other]++].cpus[0];
    }
    if (cpu < 0 && !fallback.empty()) {
      cpu = fallback.back();
      fallback.pop_back();
    }
    if (cpu < 0) {  // no CPU of its own anywhere: share, round-robin over the workers' CPUs
      cpu = a.workers.empty() ? main_cpu : a.workers[shared++ % a.workers.size()].first;
    }
    a.workers.emplace_back(cpu, pi);
  }
  return a;
}

Layout Build(const Machine& m, const std::vector<PortPlan>& ports, const Assignment& a,
             int main_cpu, int main_node, std::vector<std::string>& notes) {
  Layout l;
  std::vector<int> cpus = {main_cpu};
  for (const auto& [cpu, port] : a.workers) cpus.push_back(cpu);
  const bool sharing = std::set<int>(cpus.begin(), cpus.end()).size() != cpus.size();
  const bool big = *std::max_element(cpus.begin(), cpus.end()) > kMaxLcoreId;
  for (size_t i = 0; i < cpus.size(); ++i) {
    // Lcore N on CPU N reads best; --lcores when CPUs are shared or beyond DPDK's lcore ids.
    const int id = sharing || big ? static_cast<int>(i) : cpus[i];
    l.eal.lcores.push_back(id);
    if (sharing || big) l.eal.lcore_cpus.emplace_back(id, cpus[i]);
  }
  l.eal.main_lcore = l.eal.lcores[0];
  if (sharing) {
    notes.push_back("Fewer CPUs than lcores: several lcores share a CPU (eal.lcore_cpus), all "
                    "with idle = \"adaptive\".");
  }
  for (size_t i = 0; i < ports.size(); ++i) {
    l.ports.push_back(ports[i].port);
    l.ports.back().rx_queues = a.queues[i];
  }
  std::vector<uint16_t> next_queue(ports.size(), 0);
  for (size_t w = 0; w < a.workers.size(); ++w) {
    const auto [cpu, port] = a.workers[w];
    Lcore c;
    c.id = l.eal.lcores[w + 1];
    c.rx.push_back({ports[port].port.name, next_queue[port]++});
    c.shards = {static_cast<uint32_t>(w) * kShardsPerWorker,
                static_cast<uint32_t>(w) * kShardsPerWorker + 1};
    const bool alone = std::count(cpus.begin(), cpus.end(), cpu) == 1;
    c.idle = alone && m.Cpu(cpu)->isolated ? IdlePolicy::kPoll : IdlePolicy::kAdaptive;
    l.lcores.push_back(std::move(c));
  }
  const bool all_poll = std::all_of(l.lcores.begin(), l.lcores.end(),
                                    [](const Lcore& c) { return c.idle == IdlePolicy::kPoll; });
  notes.push_back(all_poll ? "Workers poll: their CPUs are isolated."
                           : "Workers on CPUs that are not isolated (or shared) use idle = "
                             "\"adaptive\"; isolate them (isolcpus= nohz_full= rcu_nocbs=) and "
                             "set \"poll\" for the lowest latency.");
  l.shards = static_cast<uint32_t>(a.workers.size()) * kShardsPerWorker;
  if (a.sqpoll_cpu >= 0) {
    l.storage.sqpoll = true;
    l.storage.sqpoll_cpu = a.sqpoll_cpu;
  }

  const MemoryBudget b = EstimateMemory(l);
  const uint32_t need_mb = static_cast<uint32_t>((b.TotalMiB() + 255) / 256 * 256);
  l.eal.hugepages = std::any_of(ports.begin(), ports.end(),
                                [](const PortPlan& p) { return !p.port.pci.empty(); });
  if (l.eal.hugepages) {
    // The pool and rings on the main lcore's node; some on each other NIC's node for the PMD's
    // descriptor rings, which it allocates on the port's socket.
    l.eal.socket_mem_mb.assign(static_cast<size_t>(std::max(1, m.nodes)), 0);
    for (const PortPlan& p : ports) {
      if (!p.port.pci.empty() && p.node >= 0 && p.node < m.nodes) {
        l.eal.socket_mem_mb[static_cast<size_t>(p.node)] = 256;
      }
    }
    l.eal.socket_mem_mb[static_cast<size_t>(std::max(0, main_node))] = need_mb;
    const bool others = std::count(l.eal.socket_mem_mb.begin(), l.eal.socket_mem_mb.end(), 256u) > 0;
    notes.push_back(Cat("Hugepages: ", need_mb, " MiB on node ", std::max(0, main_node),
                        " (the main lcore's: mbuf pool and rings)",
                        others ? ", 256 MiB on the other NICs' nodes (descriptor rings)." : "."));
  } else {
    l.eal.memory_mb = std::max<uint32_t>(512, need_mb);
  }
  return l;
}

// ---- TOML ------------------------------------------------------------------------------------

std::string Quote(std::string_view s) { return Cat("\"", s, "\""); }

void WriteToml(const Machine& m, const Suggestion& s, std::ostream& out) {
  const Layout& l = s.layout;
  out << "# Suggested by `sluicectl hwconf suggest` for " << m.source << " (" << m.cpus.size()
      << " CPUs, " << m.nodes << " NUMA node" << (m.nodes == 1 ? "" : "s") << ").\n"
      << "# Check it: sluicectl hwconf check FILE. Change every ipv4 to the addresses of your "
         "network.\n#\n";
  for (const std::string& note : s.notes) out << "# " << note << "\n";
  out << "\n[eal]\nlcores = [" << absl::StrJoin(l.eal.lcores, ", ") << "]\n"
      << "main_lcore = " << l.eal.main_lcore << "   # housekeeping, on core 0\n";
  if (!l.eal.lcore_cpus.empty()) {
    out << "lcore_cpus = \""
        << absl::StrJoin(l.eal.lcore_cpus, ",", [](std::string* o, const std::pair<int, int>& p) {
             absl::StrAppend(o, p.first, "@", p.second);
           })
        << "\"\n";
  }
  out << "hugepages = " << (l.eal.hugepages ? "true" : "false") << "\n";
  if (l.eal.hugepages) {
    out << "socket_mem_mb = [" << absl::StrJoin(l.eal.socket_mem_mb, ", ") << "]\n";
  } else {
    out << "memory_mb = " << l.eal.memory_mb << "\n";
  }
  out << "file_prefix = " << Quote(l.eal.file_prefix) << "\n";
  for (const Port& p : l.ports) {
    out << "\n[[port]]\nname = " << Quote(p.name) << "\n";
    if (!p.pci.empty()) {
      const PciDevice* dev = m.Pci(p.pci);
      out << "pci = " << Quote(p.pci) << "   # NUMA node " << (dev ? dev->node : -1)
          << (dev && !dev->driver.empty() ? Cat(", driver ", dev->driver) : "") << "\n";
    } else {
      out << "vdev = " << Quote(p.vdev) << "\n";
    }
    out << "rx_queues = " << p.rx_queues << "   # one per worker\n"
        << "ipv4 = " << Quote(p.ipv4) << "   # CHANGE: the address this port answers for\n"
        << "udp_port = " << p.udp_port << "\n";
    if (!p.kernel_ipv4.empty()) out << "kernel_ipv4 = " << Quote(p.kernel_ipv4) << "\n";
  }
  for (const Lcore& c : l.lcores) {
    const int cpu = l.eal.CpuOf(c.id);
    const MachineCpu* mc = m.Cpu(cpu);
    out << "\n[[lcore]]   # CPU " << cpu << ", node " << (mc ? mc->node : -1)
        << (mc && mc->isolated ? ", isolated" : "") << "\nid = " << c.id << "\nrx = ["
        << absl::StrJoin(c.rx, ", ", [](std::string* o, const RxQueueRef& r) {
             absl::StrAppend(o, "\"", r.port, ":", r.queue, "\"");
           })
        << "]\nshards = [" << absl::StrJoin(c.shards, ", ") << "]\nidle = "
        << Quote(ToString(c.idle)) << "\n";
  }
  out << "\n[dataplane]\nshards = " << l.shards << "\nring_size = " << l.ring_size
      << "\nshard_memory_mb = " << l.shard_memory_mb << "\n"
      << "\n[storage]\ndata_dirs = ["
      << absl::StrJoin(l.storage.data_dirs, ", ",
                       [](std::string* o, const std::string& d) { o->append(Quote(d)); })
      << "]   # one directory per drive\ndurability = " << Quote(ToString(l.storage.durability))
      << "\n";
  if (l.storage.sqpoll) {
    out << "sqpoll = true\nsqpoll_cpu = " << l.storage.sqpoll_cpu << "\n";
  }
}

}  // namespace

absl::StatusOr<Suggestion> Suggest(const Machine& m, const SuggestOptions& o) {
  int main_cpu = -1;
  for (const MachineCpu& c : m.cpus) {
    if (Usable(c) && (main_cpu < 0 || c.id == 0)) main_cpu = c.id;
    if (main_cpu == 0) break;
  }
  if (main_cpu < 0) {
    return absl::InvalidArgumentError(Cat(m.source, ": no CPU is online and allowed"));
  }
  if (o.rx_queues < 0 || o.rx_queues > 1024) {
    return absl::InvalidArgumentError("--rx-queues: between 1 and 1024");
  }
  const int main_node = m.Cpu(main_cpu)->node;
  Suggestion s;
  absl::StatusOr<std::vector<PortPlan>> ports = PlanPorts(m, o, main_node, s.notes);
  if (!ports.ok()) return ports.status();
  std::set<int> irq_cpus;
  for (const PortPlan& p : *ports) {
    const PciDevice* dev = p.port.pci.empty() ? nullptr : m.Pci(p.port.pci);
    if (dev == nullptr) continue;
    for (const Irq& irq : dev->irqs) irq_cpus.insert(irq.cpus.begin(), irq.cpus.end());
  }
  const Assignment a =
      Assign(m, *ports, main_cpu, o.rx_queues, SpareCores(m, main_cpu, irq_cpus), s.notes);
  s.layout = Build(m, *ports, a, main_cpu, main_node, s.notes);
  std::ostringstream out;
  WriteToml(m, s, out);
  s.toml = out.str();
  return s;
}

}  // namespace sluice::hwconf
