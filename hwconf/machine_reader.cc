// ReadMachine: hwloc for the structure (CPUs, cores, packages, NUMA nodes, PCI locality),
// sysfs and procfs under MachineSource::root for what hwloc does not say or says only as a total
// (online and isolated CPUs, free hugepages per node, drivers, interrupts and their affinity).
#include <hwloc.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "hwconf/internal.h"
#include "hwconf/machine.h"

namespace sluice::hwconf {
namespace {

namespace fs = std::filesystem;
using internal::AV;
using internal::Cat;

// Bounds on what a hostile or broken sysfs could make us read: every file read here is a line or
// a table of a few KiB, and no machine has more than a few thousand devices or IRQs.
constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxDirEntries = 4096;
constexpr int kMaxIrqs = 1 << 16;

std::optional<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxFileBytes) return std::nullopt;
  }
  return text;
}

std::optional<std::vector<int>> ReadCpuList(const fs::path& path) {
  std::optional<std::string> text = ReadFile(path);
  if (!text) return std::nullopt;
  const absl::string_view trimmed = absl::StripAsciiWhitespace(*text);
  std::vector<int> cpus;
  if (!ParseCpuList(std::string_view(trimmed.data(), trimmed.size()), &cpus)) return std::nullopt;
  return cpus;
}

std::optional<int64_t> ReadInt(const fs::path& path) {
  std::optional<std::string> text = ReadFile(path);
  int64_t v = 0;
  if (!text || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &v)) return std::nullopt;
  return v;
}

// Names in `dir`, sorted; empty when it does not exist.
std::vector<std::string> ListDir(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
    if (names.size() == kMaxDirEntries) break;
  }
  std::sort(names.begin(), names.end());
  return names;
}

// ---- hwloc ---------------------------------------------------------------------------------

struct TopologyDeleter {
  void operator()(hwloc_topology* t) const { hwloc_topology_destroy(t); }
};
using Topology = std::unique_ptr<hwloc_topology, TopologyDeleter>;

absl::StatusOr<Topology> LoadTopology(const MachineSource& source) {
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) return absl::InternalError("hwloc_topology_init failed");
  Topology topo(raw);
  // Disallowed CPUs too (a cgroup cpuset that excludes a worker's CPU is a finding, not a
  // CPU that does not exist), and every PCI device (the NUMA node of each port).
  hwloc_topology_set_flags(raw, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  hwloc_topology_set_io_types_filter(raw, HWLOC_TYPE_FILTER_KEEP_ALL);
  // Not the "pci" plugin (libpciaccess): Linux's own backend reads the same devices from sysfs,
  // and libpciaccess never frees its device table (LeakSanitizer fails every test run).
  hwloc_topology_set_components(raw, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "pci");
  if (!source.topology_xml.empty() && hwloc_topology_set_xml(raw, source.topology_xml.c_str()) != 0) {
    return absl::InvalidArgumentError(
        Cat(source.topology_xml, ": hwloc cannot use it as an XML topology"));
  }
  if (hwloc_topology_load(raw) != 0) {
    return absl::InvalidArgumentError(
        Cat(source.topology_xml.empty() ? std::string("this machine") : source.topology_xml,
            ": hwloc cannot load the topology"));
  }
  return topo;
}

// The node of an object whose nodeset names exactly one node, else -1.
int SingleNode(hwloc_const_nodeset_t nodeset) {
  if (nodeset == nullptr || hwloc_bitmap_weight(nodeset) != 1) return -1;
  return hwloc_bitmap_first(nodeset);
}

void ReadCpus(hwloc_topology_t topo, Machine& m) {
  hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topo);
  const int pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
  for (int i = 0; i < pus; ++i) {
    hwloc_obj_t pu = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, static_cast<unsigned>(i));
    MachineCpu cpu;
    cpu.id = static_cast<int>(pu->os_index);
    hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
    // Without Core objects (some VMs), each PU is its own core: no siblings.
    cpu.core = core != nullptr ? static_cast<int>(core->logical_index) : 100000 + cpu.id;
    hwloc_obj_t package = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, pu);
    cpu.package = package != nullptr ? static_cast<int>(package->os_index) : -1;
    cpu.node = SingleNode(pu->nodeset);
    cpu.allowed = hwloc_bitmap_isset(allowed, pu->os_index) != 0;
    m.cpus.push_back(cpu);
  }
  // CPUs that exist but hwloc does not show (offline ones): in the complete cpuset only.
  hwloc_const_cpuset_t complete = hwloc_topology_get_complete_cpuset(topo);
  for (int id = hwloc_bitmap_first(complete); id >= 0; id = hwloc_bitmap_next(complete, id)) {
    if (m.Cpu(id) == nullptr) m.cpus.push_back({.id = id, .online = false});
  }
  m.nodes = std::max(1, hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE));
}

// hwloc's page counts are totals (reserved pages, used or not); sysfs gives the free ones and
// replaces these when it has them.
std::vector<HugepagePool> HwlocHugepages(hwloc_topology_t topo) {
  std::vector<HugepagePool> pools;
  const int nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < nodes; ++i) {
    hwloc_obj_t node = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(i));
    for (unsigned k = 0; k < node->attr->numanode.page_types_len; ++k) {
      const auto& pt = node->attr->numanode.page_types[k];
      if (pt.size <= 4096) continue;  // normal pages
      pools.push_back({.node = static_cast<int>(node->os_index), .page_bytes = pt.size,
                       .total = pt.count, .free = pt.count});
    }
  }
  return pools;
}

std::string PciAddress(const hwloc_obj_t dev) {
  const auto& a = dev->attr->pcidev;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%01x", a.domain, a.bus, a.dev, a.func);
  return buf;
}

void ReadHwlocPci(hwloc_topology_t topo, Machine& m) {
  for (hwloc_obj_t dev = hwloc_get_next_pcidev(topo, nullptr); dev != nullptr;
       dev = hwloc_get_next_pcidev(topo, dev)) {
    hwloc_obj_t local = hwloc_get_non_io_ancestor_obj(topo, dev);
    m.pci.push_back({.address = PciAddress(dev),
                     .node = local != nullptr ? SingleNode(local->nodeset) : -1});
  }
}

// ---- sysfs and procfs ------------------------------------------------------------------------

void ReadCpuStates(const fs::path& root, Machine& m) {
  const fs::path dir = root / "sys/devices/system/cpu";
  if (auto present = ReadCpuList(dir / "present")) {
    for (int id : *present) {
      if (m.Cpu(id) == nullptr) m.cpus.push_back({.id = id, .online = false});
    }
  }
  if (auto online = ReadCpuList(dir / "online")) {
    for (MachineCpu& c : m.cpus) c.online = std::binary_search(online->begin(), online->end(), c.id);
  }
  if (auto isolated = ReadCpuList(dir / "isolated")) {
    for (MachineCpu& c : m.cpus) {
      c.isolated = std::binary_search(isolated->begin(), isolated->end(), c.id);
    }
  }
  if (auto nohz = ReadCpuList(dir / "nohz_full")) {
    for (MachineCpu& c : m.cpus) c.nohz_full = std::binary_search(nohz->begin(), nohz->end(), c.id);
  }
  std::sort(m.cpus.begin(), m.cpus.end(),
            [](const MachineCpu& a, const MachineCpu& b) { return a.id < b.id; });
}

// "hugepages-2048kB" -> 2 MiB.
std::optional<uint64_t> PageBytes(std::string_view dir_name) {
  absl::string_view s = AV(dir_name);
  uint64_t kb = 0;
  if (!absl::ConsumePrefix(&s, "hugepages-") || !absl::ConsumeSuffix(&s, "kB") ||
      !absl::SimpleAtoi(s, &kb)) {
    return std::nullopt;
  }
  return kb * 1024;
}

// "2M", "1024M", "1G", "2048k" (the pagesize= mount option) -> bytes.
std::optional<uint64_t> SizeWithSuffix(absl::string_view s) {
  uint64_t shift = 0;
  if (absl::ConsumeSuffix(&s, "k") || absl::ConsumeSuffix(&s, "K")) shift = 10;
  else if (absl::ConsumeSuffix(&s, "M")) shift = 20;
  else if (absl::ConsumeSuffix(&s, "G")) shift = 30;
  uint64_t n = 0;
  if (!absl::SimpleAtoi(s, &n)) return std::nullopt;
  return n << shift;
}

// A hugetlbfs mount without pagesize= serves the default size: "Hugepagesize: 2048 kB" in
// /proc/meminfo (2 MiB, x86's default, when it cannot be read).
uint64_t DefaultHugepageBytes(const fs::path& root) {
  if (auto meminfo = ReadFile(root / "proc/meminfo")) {
    for (absl::string_view line : absl::StrSplit(*meminfo, '\n')) {
      uint64_t kb = 0;
      if (absl::ConsumePrefix(&line, "Hugepagesize:") &&
          absl::ConsumeSuffix(&line, "kB") &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kb)) {
        return kb << 10;
      }
    }
  }
  return 2 << 20;
}

void ReadPools(const fs::path& dir, int node, std::vector<HugepagePool>& out) {
  for (const std::string& name : ListDir(dir)) {
    std::optional<uint64_t> bytes = PageBytes(name);
    auto total = ReadInt(dir / name / "nr_hugepages");
    auto free = ReadInt(dir / name / "free_hugepages");
    if (!bytes || !total || !free) continue;
    out.push_back({.node = node, .page_bytes = *bytes, .total = static_cast<uint64_t>(*total),
                   .free = static_cast<uint64_t>(*free)});
  }
}

void ReadHugepages(const fs::path& root, std::vector<HugepagePool> from_hwloc, Machine& m) {
  std::vector<HugepagePool> pools;
  const fs::path nodes = root / "sys/devices/system/node";
  for (const std::string& name : ListDir(nodes)) {
    int node = 0;
    if (name.rfind("node", 0) != 0 || !absl::SimpleAtoi(AV(name).substr(4), &node)) continue;
    ReadPools(nodes / name / "hugepages", node, pools);
  }
  if (pools.empty()) ReadPools(root / "sys/kernel/mm/hugepages", -1, pools);  // no NUMA in sysfs
  m.hugepages = pools.empty() ? std::move(from_hwloc) : std::move(pools);

  if (auto mounts = ReadFile(root / "proc/mounts")) {
    const uint64_t default_bytes = DefaultHugepageBytes(root);
    for (absl::string_view line : absl::StrSplit(*mounts, '\n')) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() < 4 || f[2] != "hugetlbfs") continue;
      m.hugetlbfs_mounted = true;
      uint64_t bytes = default_bytes;
      for (absl::string_view opt : absl::StrSplit(f[3], ',')) {
        if (absl::ConsumePrefix(&opt, "pagesize=")) bytes = SizeWithSuffix(opt).value_or(bytes);
      }
      m.mounted_page_bytes.push_back(bytes);
    }
    std::sort(m.mounted_page_bytes.begin(), m.mounted_page_bytes.end());
    m.mounted_page_bytes.erase(std::unique(m.mounted_page_bytes.begin(), m.mounted_page_bytes.end()),
                               m.mounted_page_bytes.end());
  }
}

struct InterruptLine {
  int number;
  std::string name;
};

// /proc/interrupts: a header "CPU0 CPU1 ...", then "  N:  count per CPU  chip hwirq actions".
// Only numbered lines matter (not NMI, LOC...).
std::vector<InterruptLine> ReadInterrupts(const fs::path& root) {
  std::vector<InterruptLine> out;
  std::optional<std::string> text = ReadFile(root / "proc/interrupts");
  if (!text) return out;
  std::vector<absl::string_view> lines = absl::StrSplit(*text, '\n');
  if (lines.empty()) return out;
  const size_t ncpu = std::vector<absl::string_view>(absl::StrSplit(lines[0], ' ', absl::SkipEmpty())).size();
  for (size_t i = 1; i < lines.size() && out.size() < static_cast<size_t>(kMaxIrqs); ++i) {
    absl::string_view line = absl::StripLeadingAsciiWhitespace(lines[i]);
    const size_t colon = line.find(':');
    int number = 0;
    if (colon == absl::string_view::npos || !absl::SimpleAtoi(line.substr(0, colon), &number)) {
      continue;
    }
    absl::string_view rest = line.substr(colon + 1);
    for (size_t k = 0; k < ncpu; ++k) {  // skip the per-CPU counts
      rest = absl::StripLeadingAsciiWhitespace(rest);
      const size_t sp = rest.find(' ');
      if (sp == absl::string_view::npos) break;
      rest = rest.substr(sp);
    }
    out.push_back({number, std::string(absl::StripAsciiWhitespace(rest))});
  }
  return out;
}

std::vector<int> IrqAffinity(const fs::path& root, int irq) {
  const fs::path dir = root / "proc/irq" / std::to_string(irq);
  if (auto eff = ReadCpuList(dir / "effective_affinity_list"); eff && !eff->empty()) return *eff;
  if (auto set = ReadCpuList(dir / "smp_affinity_list")) return *set;
  return {};
}

void ReadSysfsPci(const fs::path& root, const std::vector<InterruptLine>& interrupts, Machine& m) {
  const fs::path bus = root / "sys/bus/pci/devices";
  for (const std::string& name : ListDir(bus)) {
    const std::string address = internal::NormalizePci(name);
    if (m.Pci(address) == nullptr) m.pci.push_back({.address = address});
  }
  for (PciDevice& dev : m.pci) {
    const fs::path dir = bus / dev.address;
    if (auto node = ReadInt(dir / "numa_node"); node && *node >= 0) dev.node = static_cast<int>(*node);
    std::error_code ec;
    const fs::path driver = fs::read_symlink(dir / "driver", ec);
    if (!ec) dev.driver = driver.filename().string();
    dev.netdevs = ListDir(dir / "net");
    std::set<int> numbers;
    for (const std::string& n : ListDir(dir / "msi_irqs")) {
      int irq = 0;
      if (absl::SimpleAtoi(n, &irq)) numbers.insert(irq);
    }
    std::map<int, std::string> names;
    for (const InterruptLine& line : interrupts) {
      bool named = line.name.find(dev.address) != std::string::npos;
      for (const std::string& netdev : dev.netdevs) {
        named = named || line.name.find(netdev) != std::string::npos;
      }
      if (named) numbers.insert(line.number);
      if (numbers.contains(line.number)) names[line.number] = line.name;
    }
    for (int irq : numbers) {
      dev.irqs.push_back({.number = irq, .name = names[irq], .cpus = IrqAffinity(root, irq)});
    }
  }
  std::sort(m.pci.begin(), m.pci.end(),
            [](const PciDevice& a, const PciDevice& b) { return a.address < b.address; });
}

}  // namespace

absl::StatusOr<Machine> ReadMachine(const MachineSource& source) {
  absl::StatusOr<Topology> topo = LoadTopology(source);
  if (!topo.ok()) return topo.status();
  Machine m;
  m.source = source.topology_xml.empty() ? "this machine" : source.topology_xml;
  ReadCpus(topo->get(), m);
  ReadHwlocPci(topo->get(), m);
  const fs::path root = source.root.empty() ? fs::path("/") : fs::path(source.root);
  ReadCpuStates(root, m);
  ReadHugepages(root, HwlocHugepages(topo->get()), m);
  ReadSysfsPci(root, ReadInterrupts(root), m);
  // A single-node machine often reports numa_node -1 for its devices: there is only one.
  if (m.nodes == 1) {
    for (PciDevice& d : m.pci) d.node = 0;
    for (MachineCpu& c : m.cpus) {
      if (c.node < 0) c.node = 0;
    }
  }
  return m;
}

// ---- Machine ---------------------------------------------------------------------------------

const MachineCpu* Machine::Cpu(int id) const {
  for (const MachineCpu& c : cpus) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

const PciDevice* Machine::Pci(std::string_view address) const {
  const std::string canonical = internal::NormalizePci(address);
  for (const PciDevice& d : pci) {
    if (d.address == canonical) return &d;
  }
  return nullptr;
}

std::vector<int> Machine::Siblings(int id) const {
  std::vector<int> out;
  const MachineCpu* cpu = Cpu(id);
  if (cpu == nullptr || cpu->core < 0) return out;
  for (const MachineCpu& c : cpus) {
    if (c.core == cpu->core && c.id != id) out.push_back(c.id);
  }
  return out;
}

std::vector<int> Machine::CpusOfNode(int node) const {
  std::vector<int> out;
  for (const MachineCpu& c : cpus) {
    if (c.online && c.node == node) out.push_back(c.id);
  }
  return out;
}

uint64_t Machine::FreeHugepageBytes(int node, bool mounted_only) const {
  uint64_t bytes = 0;
  for (const HugepagePool& p : hugepages) {
    const bool usable = !mounted_only || mounted_page_bytes.empty() ||
                        std::binary_search(mounted_page_bytes.begin(), mounted_page_bytes.end(),
                                           p.page_bytes);
    if (usable && (node < 0 || p.node == node || p.node < 0)) bytes += p.free * p.page_bytes;
  }
  return bytes;
}

bool ParseCpuList(std::string_view text, std::vector<int>* out, int max_cpu) {
  out->clear();
  if (text.empty()) return true;
  for (std::string_view item : internal::Split(text, ',')) {
    const size_t dash = item.find('-');
    uint32_t lo = 0, hi = 0;
    if (!internal::ParseDecimal(item.substr(0, dash), &lo)) return false;
    hi = lo;
    if (dash != std::string_view::npos && !internal::ParseDecimal(item.substr(dash + 1), &hi)) {
      return false;
    }
    if (hi < lo || hi > static_cast<uint32_t>(max_cpu)) return false;
    for (uint32_t c = lo; c <= hi; ++c) out->push_back(static_cast<int>(c));
    if (out->size() > static_cast<size_t>(max_cpu) + 1) return false;
  }
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
  return true;
}

std::string FormatCpuList(const std::vector<int>& cpus_in) {
  std::vector<int> cpus = cpus_in;
  std::sort(cpus.begin(), cpus.end());
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? Cat(cpus[i]) : Cat(cpus[i], "-", cpus[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace sluice::hwconf
