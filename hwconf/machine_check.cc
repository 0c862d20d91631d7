// The rules of the machine check, one function per subject: CPUs, pollers, NUMA, PCI ports,
// interrupts, memory. hwconf/README.md §Machine check lists them with their severities.
#include "hwconf/machine_check.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_join.h"
#include "hwconf/internal.h"
#include "hwconf/memory_budget.h"

namespace sluice::hwconf {
namespace {

using internal::Cat;

constexpr uint64_t kMiB = 1 << 20;

class Findings {
 public:
  void Error(std::string code, std::string what, std::string why, std::string fix) {
    list_.push_back({Severity::kError, std::move(code), std::move(what), std::move(why),
                     std::move(fix)});
  }
  void Warning(std::string code, std::string what, std::string why, std::string fix) {
    list_.push_back({Severity::kWarning, std::move(code), std::move(what), std::move(why),
                     std::move(fix)});
  }
  std::vector<Finding> Take() {
    std::stable_partition(list_.begin(), list_.end(),
                          [](const Finding& f) { return f.severity == Severity::kError; });
    return std::move(list_);
  }

 private:
  std::vector<Finding> list_;
};

// Who runs where: every lcore with its CPU and role, and the SQPOLL thread.
struct Placement {
  int lcore;
  int cpu;
  const Lcore* worker;  // nullptr: the main lcore (or an enabled lcore with no role)
  bool polls() const { return worker != nullptr && worker->idle == IdlePolicy::kPoll; }
};

std::vector<Placement> Placements(const Layout& l) {
  std::vector<Placement> out;
  for (int id : l.eal.lcores) {
    const Lcore* worker = nullptr;
    for (const Lcore& c : l.lcores) {
      if (c.id == id) worker = &c;
    }
    out.push_back({id, l.eal.CpuOf(id), worker});
  }
  return out;
}

std::string OnlineCpus(const Machine& m) {
  std::vector<int> ids;
  for (const MachineCpu& c : m.cpus) {
    if (c.online && c.allowed) ids.push_back(c.id);
  }
  return FormatCpuList(ids);
}

std::string Role(const Placement& p) {
  return p.worker != nullptr ? Cat("worker lcore ", p.lcore) : Cat("main lcore ", p.lcore);
}

// ---- CPUs: they exist, are online, may be used ------------------------------------------------

void CheckCpus(const Layout& l, const Machine& m, Findings& f) {
  for (const Placement& p : Placements(l)) {
    const MachineCpu* cpu = m.Cpu(p.cpu);
    const std::string what = Cat(Role(p), " runs on CPU ", p.cpu);
    const std::string fix = Cat("use a CPU of ", OnlineCpus(m), " (eal.lcores, or eal.lcore_cpus "
                                "to map lcore ", p.lcore, " to another CPU)");
    if (cpu == nullptr) {
      f.Error("cpu-missing", what, "this machine has no such CPU; EAL cannot start the lcore", fix);
    } else if (!cpu->online) {
      f.Error("cpu-offline", what, "that CPU is offline; EAL cannot start the lcore",
              Cat("echo 1 > /sys/devices/system/cpu/cpu", p.cpu, "/online, or ", fix));
    } else if (!cpu->allowed) {
      f.Error("cpu-not-allowed", what,
              "that CPU is outside this process's cpuset (cgroup or taskset); EAL fails to pin "
              "the lcore there when sluiced starts the same way",
              Cat("widen the cpuset of the service (systemd AllowedCPUs=, docker --cpuset-cpus), "
                  "or ", fix));
    }
  }
  const Storage& s = l.storage;
  if (s.sqpoll && s.sqpoll_cpu >= 0) {
    const MachineCpu* cpu = m.Cpu(s.sqpoll_cpu);
    if (cpu == nullptr || !cpu->online) {
      f.Error("sqpoll-cpu-missing", Cat("storage.sqpoll_cpu is CPU ", s.sqpoll_cpu),
              cpu == nullptr ? "this machine has no such CPU; io_uring setup fails"
                             : "that CPU is offline; io_uring setup fails",
              Cat("pick a spare CPU of ", OnlineCpus(m), ", or -1 to let the kernel choose"));
    }
  }
}

// ---- pollers: isolated, alone on their CPU, and not on two threads of one core ----------------

void CheckIsolation(const Layout& l, const Machine& m, Findings& f) {
  for (const Placement& p : Placements(l)) {
    const MachineCpu* cpu = m.Cpu(p.cpu);
    if (!p.polls() || cpu == nullptr) continue;
    std::vector<std::string> missing;
    if (!cpu->isolated) missing.push_back("isolcpus");
    if (!cpu->nohz_full) missing.push_back("nohz_full");
    if (missing.empty()) continue;
    f.Warning("cpu-not-isolated",
              Cat(Role(p), " polls (idle = \"poll\") on CPU ", p.cpu, ", which is not in ",
                  absl::StrJoin(missing, " or ")),
              "the scheduler and the timer tick still run other work there, and each "
              "interruption is a latency spike",
              Cat("boot with isolcpus=", p.cpu, " nohz_full=", p.cpu, " rcu_nocbs=", p.cpu,
                  " (with the other workers' CPUs), or use idle = \"adaptive\" on a shared CPU"));
  }
}

void CheckSharing(const Layout& l, Findings& f) {
  const std::vector<Placement> all = Placements(l);
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t k = i + 1; k < all.size(); ++k) {
      const Placement& a = all[i];
      const Placement& b = all[k];
      if (a.cpu != b.cpu || (!a.polls() && !b.polls())) continue;
      const Placement& poller = a.polls() ? a : b;
      const Placement& other = a.polls() ? b : a;
      f.Warning("cpu-shared-poll",
                Cat(Role(poller), " polls on CPU ", poller.cpu, ", which also runs ", Role(other)),
                "a polling lcore never yields: the other one runs only when the kernel preempts "
                "it, milliseconds at a time",
                Cat("give ", Role(poller), " a CPU of its own, or idle = \"adaptive\""));
    }
  }
}

// Two pollers on the hyperthreads of one core share its execution units and caches: each runs
// at well under the speed of a core of its own.
void CheckSiblings(const Layout& l, const Machine& m, Findings& f) {
  struct Poller {
    int cpu;
    std::string who;
  };
  std::vector<Poller> pollers;
  for (const Placement& p : Placements(l)) {
    if (p.polls()) pollers.push_back({p.cpu, Role(p)});
  }
  if (l.storage.sqpoll && l.storage.sqpoll_cpu >= 0) {
    pollers.push_back({l.storage.sqpoll_cpu, "the SQPOLL thread (storage.sqpoll_cpu)"});
  }
  for (size_t i = 0; i < pollers.size(); ++i) {
    const std::vector<int> siblings = m.Siblings(pollers[i].cpu);
    for (size_t k = i + 1; k < pollers.size(); ++k) {
      if (std::find(siblings.begin(), siblings.end(), pollers[k].cpu) == siblings.end()) continue;
      f.Warning("ht-siblings-poll",
                Cat(pollers[i].who, " on CPU ", pollers[i].cpu, " and ", pollers[k].who,
                    " on CPU ", pollers[k].cpu, " are hyperthreads of one core and both spin"),
                "they share the core's execution units and L1/L2 caches, so each gets roughly "
                "half a core",
                Cat("move one to another physical core and leave CPU ", pollers[k].cpu,
                    " idle (thread_siblings_list in /sys/devices/system/cpu/cpu", pollers[i].cpu,
                    "/topology)"));
    }
  }
}

// ---- PCI ports: present, on a driver DPDK can use, on the node of their pollers --------------

bool DpdkCanUse(std::string_view driver) {
  // vfio-pci / uio: the device is handed to user space. mlx4/mlx5 are bifurcated: DPDK drives
  // the NIC through the kernel driver, which stays bound.
  return driver == "vfio-pci" || driver == "uio_pci_generic" || driver == "igb_uio" ||
         driver == "mlx5_core" || driver == "mlx4_core";
}

void CheckPciPort(const Port& port, const PciDevice& dev, Findings& f) {
  const std::string what = Cat("port \"", port.name, "\" (", dev.address, ")");
  if (dev.driver.empty()) {
    f.Error("pci-driver", Cat(what, " is bound to no driver"),
            "DPDK probes only devices bound to vfio-pci (or uio), so the port would not exist",
            Cat("modprobe vfio-pci && dpdk-devbind.py -b vfio-pci ", dev.address));
  } else if (!DpdkCanUse(dev.driver)) {
    f.Error("pci-driver",
            Cat(what, " is bound to the kernel driver ", dev.driver,
                dev.netdevs.empty() ? "" : Cat(" (interface ", absl::StrJoin(dev.netdevs, ", "), ")")),
            "DPDK's poll-mode driver cannot take a device the kernel drives (except mlx4/mlx5), "
            "so the port would not exist",
            Cat("dpdk-devbind.py -b vfio-pci ", dev.address,
                " (the kernel interface goes away; use another one for ssh)"));
  }
}

void CheckNuma(const Layout& l, const Machine& m, Findings& f) {
  const MachineCpu* main_cpu = m.Cpu(l.eal.CpuOf(l.eal.main_lcore));
  const int main_node = main_cpu != nullptr ? main_cpu->node : -1;
  std::set<std::string> unknown_reported;
  for (const Port& port : l.ports) {
    if (port.pci.empty()) continue;
    const PciDevice* dev = m.Pci(port.pci);
    if (dev == nullptr) continue;  // reported by CheckPorts
    if (dev->node < 0) {
      if (m.nodes > 1 && unknown_reported.insert(dev->address).second) {
        f.Warning("numa-unknown",
                  Cat("port \"", port.name, "\" (", dev->address, ") has no NUMA node (numa_node -1)"),
                  "the firmware does not say which socket the NIC hangs off, so this check cannot "
                  "tell whether its workers and mbufs are local",
                  "find the slot's socket in the board manual (or lstopo) and keep the workers "
                  "there; a BIOS update often fixes the ACPI tables");
      }
      continue;
    }
    for (const Lcore& w : l.lcores) {
      for (const RxQueueRef& rx : w.rx) {
        if (rx.port != port.name) continue;
        const int cpu = l.eal.CpuOf(w.id);
        const MachineCpu* c = m.Cpu(cpu);
        if (c == nullptr || c->node < 0 || c->node == dev->node) continue;
        f.Warning("numa-remote-poll",
                  Cat("worker lcore ", w.id, " (CPU ", cpu, ", node ", c->node, ") polls ",
                      port.name, ":", rx.queue, " of ", dev->address, " on node ", dev->node),
                  "every packet and descriptor crosses the socket interconnect: lower throughput, "
                  "higher latency",
                  Cat("run lcore ", w.id, " on a CPU of node ", dev->node, " (",
                      FormatCpuList(m.CpusOfNode(dev->node)), ")"));
      }
    }
    if (main_node >= 0 && main_node != dev->node) {
      f.Warning("numa-remote-mempool",
                Cat("port \"", port.name, "\" (", dev->address, ") is on node ", dev->node,
                    ", the mbuf pool and hand-off rings on node ", main_node),
                "sluiced allocates them on the main lcore's node (CPU " +
                    std::to_string(main_cpu->id) + "), so the NIC DMAs every packet to remote memory",
                Cat("put eal.main_lcore on a CPU of node ", dev->node, " (",
                    FormatCpuList(m.CpusOfNode(dev->node)),
                    "); with NICs on two nodes, one of them pays this until sluiced has a pool "
                    "per node"));
    }
  }
}

void CheckPorts(const Layout& l, const Machine& m, Findings& f) {
  bool any_pci = false;
  for (const Port& port : l.ports) {
    if (port.pci.empty()) continue;
    any_pci = true;
    const PciDevice* dev = m.Pci(port.pci);
    if (dev == nullptr) {
      f.Error("pci-missing",
              Cat("port \"", port.name, "\" names PCI device ", internal::NormalizePci(port.pci)),
              "this machine has no such device; EAL would find no port",
              "dpdk-devbind.py --status-dev net lists the NIC ports: correct port.pci");
      continue;
    }
    CheckPciPort(port, *dev, f);
  }
  if (any_pci && !l.eal.hugepages) {
    f.Warning("nic-without-hugepages", "a PCI port with eal.hugepages = false (--no-huge)",
              "NIC DMA needs IOVA-contiguous memory: most PMDs refuse to start, the others run "
              "on 4 KiB pages with many TLB misses",
              "set eal.hugepages = true and reserve hugepages on the NIC's node");
  }
}

// ---- interrupts ------------------------------------------------------------------------------

void CheckIrqs(const Layout& l, const Machine& m, Findings& f) {
  std::map<int, int> worker_on_cpu;  // cpu -> lcore
  for (const Lcore& w : l.lcores) worker_on_cpu.emplace(l.eal.CpuOf(w.id), w.id);
  for (const Port& port : l.ports) {
    const PciDevice* dev = port.pci.empty() ? nullptr : m.Pci(port.pci);
    if (dev == nullptr) continue;
    // cpu -> the IRQs of this port delivered there
    std::map<int, std::vector<int>> hits;
    std::set<int> elsewhere;
    for (const Irq& irq : dev->irqs) {
      for (int cpu : irq.cpus) {
        if (worker_on_cpu.contains(cpu)) {
          hits[cpu].push_back(irq.number);
        } else {
          elsewhere.insert(cpu);
        }
      }
    }
    for (const auto& [cpu, irqs] : hits) {
      // Where to send them instead: the node's housekeeping CPUs (no worker, not isolated),
      // else any CPU of the node without a worker.
      std::vector<int> housekeeping, spare;
      for (int c : m.CpusOfNode(dev->node >= 0 ? dev->node : 0)) {
        if (worker_on_cpu.contains(c)) continue;
        spare.push_back(c);
        if (!m.Cpu(c)->isolated) housekeeping.push_back(c);
      }
      if (!housekeeping.empty()) spare = housekeeping;
      f.Warning("irq-on-worker",
                Cat(irqs.size() == 1 ? "IRQ " : "IRQs ", absl::StrJoin(irqs, ","), " of port \"",
                    port.name, "\" (", dev->address, ") ", irqs.size() == 1 ? "is" : "are",
                    " delivered to CPU ", cpu, ", which runs worker lcore ", worker_on_cpu[cpu]),
                "each interrupt stops the worker's loop (latency spikes), and the kernel's "
                "softirq work runs on its core",
                Cat("for each IRQ: echo ", spare.empty() ? std::string("<a CPU without a worker>")
                                                         : FormatCpuList(spare),
                    " > /proc/irq/N/smp_affinity_list; keep irqbalance away from worker CPUs "
                    "(IRQBALANCE_BANNED_CPULIST)"));
    }
  }
}

// ---- memory and hugepages --------------------------------------------------------------------

// " (and N MiB in page sizes no hugetlbfs mount serves: mount one with pagesize=...)", or "".
std::string Unmounted(const Machine& m, int node) {
  const uint64_t all = m.FreeHugepageBytes(node, false), mounted = m.FreeHugepageBytes(node);
  if (all == mounted) return "";
  std::vector<std::string> sizes;
  for (const HugepagePool& p : m.hugepages) {
    if (p.free > 0 && !std::binary_search(m.mounted_page_bytes.begin(),
                                          m.mounted_page_bytes.end(), p.page_bytes)) {
      const std::string size = p.page_bytes >= (1u << 30) ? Cat(p.page_bytes >> 30, "G")
                                                          : Cat(p.page_bytes >> 20, "M");
      if (std::find(sizes.begin(), sizes.end(), size) == sizes.end()) sizes.push_back(size);
    }
  }
  return Cat(" (and ", (all - mounted) / kMiB, " MiB in pages no hugetlbfs mount serves: mount "
             "one with -o pagesize=", absl::StrJoin(sizes, ", pagesize="), ")");
}

void CheckMemory(const Layout& l, const Machine& m, Findings& f) {
  const MemoryBudget b = EstimateMemory(l);
  const MachineCpu* main_cpu = m.Cpu(l.eal.CpuOf(l.eal.main_lcore));
  const int main_node = main_cpu != nullptr ? main_cpu->node : -1;
  const bool per_socket = l.eal.hugepages && !l.eal.socket_mem_mb.empty();
  const std::string need = Cat(b.TotalMiB(), " MiB (", b.mbufs, " mbufs x ", b.mbuf_bytes,
                               " bytes, ", (b.ring_bytes + kMiB - 1) / kMiB,
                               " MiB of rings, ", b.overhead_bytes / kMiB, " MiB for EAL and PMDs)");
  if (per_socket && main_node >= 0) {
    const uint64_t have = static_cast<size_t>(main_node) < l.eal.socket_mem_mb.size()
                              ? l.eal.socket_mem_mb[static_cast<size_t>(main_node)]
                              : 0;
    if (have < b.TotalMiB()) {
      f.Error(have == 0 ? "socket-mem-main-node" : "memory-short",
              Cat("eal.socket_mem_mb gives node ", main_node, " (the main lcore's) ", have,
                  " MiB; the layout needs ", need),
              "sluiced creates the mbuf pool and rings on the main lcore's node and stops when "
              "they do not fit",
              Cat("set socket_mem_mb[", main_node, "] to at least ", b.TotalMiB(),
                  ", or fewer descriptors, queues or a smaller dataplane.ring_size"));
    }
  } else if (!per_socket && l.eal.memory_mb < b.TotalMiB()) {
    f.Error("memory-short", Cat("eal.memory_mb = ", l.eal.memory_mb, "; the layout needs ", need),
            "sluiced stops when the mbuf pool does not fit",
            Cat("set eal.memory_mb to at least ", b.TotalMiB(),
                ", or fewer descriptors, queues or a smaller dataplane.ring_size"));
  }
  if (!l.eal.hugepages) return;

  if (!m.hugetlbfs_mounted) {
    f.Error("hugetlbfs-missing", "eal.hugepages = true, and no hugetlbfs is mounted",
            "EAL maps hugepages through a hugetlbfs mount and fails without one",
            "mount -t hugetlbfs nodev /dev/hugepages (systemd's dev-hugepages.mount does it at boot)");
  }
  const std::string reserve = "reserve more: echo N > /sys/devices/system/node/nodeX/hugepages/"
                              "hugepages-2048kB/nr_hugepages, or at boot hugepagesz=1G hugepages=N";
  if (per_socket) {
    for (size_t node = 0; node < l.eal.socket_mem_mb.size(); ++node) {
      const uint64_t want = l.eal.socket_mem_mb[node];
      if (want == 0) continue;
      if (node >= static_cast<size_t>(m.nodes)) {
        f.Error("socket-mem-node-missing",
                Cat("eal.socket_mem_mb asks ", want, " MiB of node ", node),
                Cat("this machine has ", m.nodes, " NUMA node", m.nodes == 1 ? "" : "s",
                    "; EAL fails on a socket that does not exist"),
                Cat("give socket_mem_mb ", m.nodes, " entries"));
        continue;
      }
      const uint64_t free_mib = m.FreeHugepageBytes(static_cast<int>(node)) / kMiB;
      if (free_mib < want) {
        f.Error("hugepages-short",
                Cat("eal.socket_mem_mb asks ", want, " MiB of hugepages on node ", node, "; ",
                    free_mib, " MiB are free there", Unmounted(m, static_cast<int>(node))),
                "EAL fails to reserve the memory and sluiced does not start",
                Cat(reserve, "; or lower socket_mem_mb[", node, "]"));
      }
    }
  } else {
    const uint64_t free_mib = m.FreeHugepageBytes(-1) / kMiB;
    if (free_mib < l.eal.memory_mb) {
      f.Error("hugepages-short",
              Cat("eal.memory_mb asks ", l.eal.memory_mb, " MiB of hugepages; ", free_mib,
                  " MiB are free on the machine", Unmounted(m, -1)),
              "EAL fails to reserve the memory and sluiced does not start",
              Cat(reserve, "; or lower memory_mb"));
    }
  }
}

}  // namespace

std::vector<Finding> CheckOnMachine(const Layout& layout, const Machine& machine) {
  Findings f;
  CheckCpus(layout, machine, f);
  CheckIsolation(layout, machine, f);
  CheckSharing(layout, f);
  CheckSiblings(layout, machine, f);
  CheckPorts(layout, machine, f);
  CheckNuma(layout, machine, f);
  CheckIrqs(layout, machine, f);
  CheckMemory(layout, machine, f);
  return f.Take();
}

std::string_view ToString(Severity s) { return s == Severity::kError ? "error" : "warning"; }

std::string FormatFinding(const Finding& f) {
  return Cat(ToString(f.severity), ": ", f.what, ": ", f.why, "; fix: ", f.fix);
}

}  // namespace sluice::hwconf
