// The machine a layout runs on, as the layout check and `suggest` need it: CPUs (which exist, are
// online, may be used, are isolated), their physical cores and NUMA nodes, hugepages per node and
// size, PCI devices with their node, driver and interrupts, and where those interrupts go.
//
// A Machine is plain data. ReadMachine fills it from one of two sources, so that every check can
// be tested on machines the test host is not:
//   - this machine: hwloc discovers the topology, sysfs and procfs under "/" add the rest;
//   - a fixture: an hwloc XML topology (`lstopo --of xml`, `hwloc-gather-topology`) plus a
//     directory that stands for "/" and holds the sysfs and procfs files (sys/..., proc/...).
// tests/unit/hwconf/topologies/ has such fixtures; an operator can also check a layout for
// another box from its saved topology and a copy of those files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::hwconf {

struct MachineCpu {
  int id = -1;            // the OS CPU number (what lcore_cpus, isolcpus and taskset name)
  int core = -1;          // its physical core, an index unique on the machine; -1 unknown
  int package = -1;       // its socket; -1 unknown
  int node = -1;          // its NUMA node; -1 unknown (e.g. an offline CPU)
  bool online = true;     // /sys/devices/system/cpu/online
  bool allowed = true;    // in this process's cpuset (cgroup, taskset): EAL can pin a thread there
  bool isolated = false;  // /sys/devices/system/cpu/isolated (isolcpus=)
  bool nohz_full = false; // /sys/devices/system/cpu/nohz_full (nohz_full=)
};

// Hugepages of one size on one node. node -1: the machine reports no per-node counts.
struct HugepagePool {
  int node = -1;
  uint64_t page_bytes = 0;
  uint64_t total = 0;  // pages reserved (nr_hugepages)
  uint64_t free = 0;   // pages not in use (free_hugepages); what a new process can map
};

struct Irq {
  int number = -1;
  std::string name;       // the tail of its /proc/interrupts line: chip, hwirq, action names
  std::vector<int> cpus;  // where it is delivered: effective_affinity_list, else smp_affinity_list
};

struct PciDevice {
  std::string address;               // canonical: lower case, with domain ("0000:3b:00.0")
  int node = -1;                     // NUMA node; -1 unknown (the firmware does not say)
  std::string driver;                // bound kernel driver ("vfio-pci", "mlx5_core"), "" if none
  std::vector<std::string> netdevs;  // kernel interfaces of the device ("ens6f0np0")
  std::vector<Irq> irqs;             // its interrupts (MSI/MSI-X, or named after it)
};

struct Machine {
  std::string source;            // "this machine" or the fixture's XML path, for messages
  std::vector<MachineCpu> cpus;  // every CPU that exists, by id
  int nodes = 1;                 // NUMA nodes (at least 1)
  std::vector<HugepagePool> hugepages;
  bool hugetlbfs_mounted = false;  // EAL maps hugepages through a hugetlbfs mount
  // The page sizes the hugetlbfs mounts serve (pagesize= option, else the default size). EAL
  // uses only pages of a mounted size: 1 GiB pages without a 1 GiB mount are not there for it.
  std::vector<uint64_t> mounted_page_bytes;
  std::vector<PciDevice> pci;

  const MachineCpu* Cpu(int id) const;
  const PciDevice* Pci(std::string_view address) const;  // any spelling: "3b:00.0", upper case
  // The other CPUs of `cpu`'s physical core (its hyperthread siblings); empty when unknown.
  std::vector<int> Siblings(int cpu) const;
  // Online CPUs of `node`, by id.
  std::vector<int> CpusOfNode(int node) const;
  // Free hugepage bytes on `node`, or on the whole machine when node is -1: of the mounted sizes,
  // or of every size when `mounted_only` is false or no mount is known.
  uint64_t FreeHugepageBytes(int node, bool mounted_only = true) const;
};

struct MachineSource {
  std::string topology_xml;  // hwloc XML file; empty = discover this machine with hwloc
  std::string root = "/";    // where sys/ and proc/ are read from
};

// Reads the machine. Fails only when hwloc cannot load the topology; a sysfs or procfs file
// that is missing leaves its part at the default (nothing isolated, no hugepages, no IRQs).
absl::StatusOr<Machine> ReadMachine(const MachineSource& source);

// "0-3,8,10-11" -> {0, 1, 2, 3, 8, 10, 11}. Empty text -> {}. False on malformed text or more
// than `max_cpu` + 1 CPUs.
bool ParseCpuList(std::string_view text, std::vector<int>* out, int max_cpu = 8191);
// {0, 1, 2, 3, 8} -> "0-3,8".
std::string FormatCpuList(const std::vector<int>& cpus);

}  // namespace sluice::hwconf
