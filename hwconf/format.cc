// What a layout implies, in two forms: the EAL argv sluiced passes to rte_eal_init, and a summary
// for operators (`sluice-hwconf check`).
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "hwconf/loader.h"

namespace sluice::hwconf {
namespace {

// A Layout built by hand (tests, `suggest`) may still say -1; the loader resolves it.
int MainLcore(const Eal& eal) {
  return eal.main_lcore >= 0 || eal.lcores.empty() ? eal.main_lcore : eal.lcores.front();
}

// -l 0,1 when every lcore runs on the CPU of its number; --lcores 0@0,1@0,2@1 as soon as one
// does not, since only --lcores can put two lcores on one CPU.
void AppendLcores(const Eal& eal, std::vector<std::string>& args) {
  if (eal.lcore_cpus.empty()) {
    args.insert(args.end(), {"-l", absl::StrJoin(eal.lcores, ",")});
    return;
  }
  args.insert(args.end(), {"--lcores", absl::StrJoin(eal.lcores, ",", [&](std::string* o, int l) {
                             absl::StrAppend(o, l, "@", eal.CpuOf(l));
                           })});
}

void AppendMemory(const Eal& eal, std::vector<std::string>& args) {
  if (eal.hugepages && !eal.socket_mem_mb.empty()) {
    args.insert(args.end(), {"--socket-mem", absl::StrJoin(eal.socket_mem_mb, ",")});
  } else {
    args.insert(args.end(), {"-m", absl::StrCat(eal.memory_mb)});
  }
  if (!eal.hugepages) args.push_back("--no-huge");
}

void AppendDevices(const std::vector<Port>& ports, std::vector<std::string>& args) {
  bool any_pci = false;
  for (const Port& p : ports) {
    if (!p.pci.empty()) {
      args.insert(args.end(), {"-a", p.pci});
      any_pci = true;
    } else if (!p.vdev.empty()) {
      args.insert(args.end(), {"--vdev", p.vdev});
    }
  }
  // Without -a, EAL would probe (and take from the kernel) every NIC bound to a DPDK driver.
  if (!any_pci) args.push_back("--no-pci");
}

// ---- the summary ---------------------------------------------------------------------------

std::string RxList(const std::vector<RxQueueRef>& rx) {
  return rx.empty() ? "-" : absl::StrJoin(rx, " ", [](std::string* o, const RxQueueRef& r) {
    absl::StrAppend(o, r.port, ":", r.queue);
  });
}

std::string ShardList(const std::vector<uint32_t>& shards) {
  return shards.empty() ? "-" : absl::StrJoin(shards, ",");
}

void FormatPorts(const Layout& l, std::ostream& out) {
  out << "ports:\n";
  for (const Port& p : l.ports) {
    const std::string tx = p.tx_queues == 0
                               ? absl::StrCat(l.lcores.size(), " (one per worker)")
                               : absl::StrCat(p.tx_queues);
    out << absl::StrFormat("  %-10s %-11s %s %s\n", p.name, ToString(p.role),
                           p.pci.empty() ? "vdev" : "pci", p.pci.empty() ? p.vdev : p.pci)
        << absl::StrFormat("  %-10s %s:%d  mtu %d  rx %d x %d desc  tx %s x %d desc\n", "", p.ipv4,
                           p.udp_port, p.mtu, p.rx_queues, p.rx_descriptors, tx, p.tx_descriptors);
  }
}

void FormatLcores(const Layout& l, std::ostream& out) {
  out << "lcores (lcore@cpu):\n";
  for (int id : l.eal.lcores) {
    const std::string at = absl::StrCat(id, "@", l.eal.CpuOf(id));
    if (id == MainLcore(l.eal)) {
      out << absl::StrFormat("  %-6s main     control and housekeeping\n", at);
      continue;
    }
    const Lcore* worker = nullptr;
    for (const Lcore& c : l.lcores) {
      if (c.id == id) worker = &c;
    }
    if (worker == nullptr) {
      out << absl::StrFormat("  %-6s unused   enabled in EAL, no role\n", at);
      continue;
    }
    out << absl::StrFormat("  %-6s worker   idle %-8s rx %-24s shards %s\n", at,
                           ToString(worker->idle), RxList(worker->rx), ShardList(worker->shards));
  }
}

void FormatStorage(const Layout& l, std::ostream& out) {
  const Storage& s = l.storage;
  out << "dataplane: " << l.shards << " shards of " << l.shard_memory_mb
      << " MiB message memory, hand-off rings of " << l.ring_size << " entries\n"
      << "storage: " << absl::StrJoin(s.data_dirs, ", ") << "\n"
      << "  durability " << ToString(s.durability) << ", batch " << s.batch_bytes << " bytes or "
      << s.batch_time_us << " us, segment " << s.segment_bytes << " bytes, io_uring depth "
      << s.uring_depth << ", sqpoll "
      << (s.sqpoll ? (s.sqpoll_cpu >= 0 ? absl::StrCat("on CPU ", s.sqpoll_cpu) : "on") : "off")
      << "\n";
}

void FormatReplication(const Layout& l, std::ostream& out) {
  const Replication& r = l.replication;
  out << "replication: " << ToString(r.role);
  if (r.role != ReplicationRole::kNone) {
    out << ", peer " << r.peer << " over "
        << (r.link_port.empty() ? "kernel UDP" : absl::StrCat("port ", r.link_port))
        << ", default mode " << ToString(r.mode);
    if (!r.etcd.empty()) {
      out << ", automatic promotion through etcd " << r.etcd << " key " << r.etcd_key
          << " lease " << r.etcd_lease_ms << " ms";
    }
  }
  out << "\ncontrol: listen " << l.control.listen << ", metadata " << l.control.metadata_dir
      << "\n";
}

void FormatQueues(const Layout& l, std::ostream& out) {
  out << "queues:" << (l.queues.empty() ? " none declared" : "") << "\n";
  for (const QueueDecl& q : l.queues) {
    out << absl::StrFormat("  %-16s %-6s partitions %d, max message %d bytes", q.name,
                           ToString(q.type), q.partitions, q.max_message_bytes);
    if (q.type == QueueType::kWork) {
      out << ", visibility " << q.visibility_timeout_ms << " ms";
      if (!q.dead_letter_queue.empty()) {
        out << ", after " << q.max_receive_count << " receives -> " << q.dead_letter_queue;
      }
    }
    out << "\n";
  }
}

}  // namespace

std::vector<std::string> EalArgs(const Layout& layout, std::string_view argv0) {
  const Eal& eal = layout.eal;
  std::vector<std::string> args = {std::string(argv0)};
  AppendLcores(eal, args);
  args.insert(args.end(), {"--main-lcore", absl::StrCat(MainLcore(eal))});
  AppendMemory(eal, args);
  args.insert(args.end(), {"--file-prefix", eal.file_prefix});
  AppendDevices(layout.ports, args);
  args.insert(args.end(), eal.extra_args.begin(), eal.extra_args.end());
  return args;
}

std::string FormatLayout(const Layout& l) {
  std::ostringstream out;
  out << "layout: " << (l.source.empty() ? "(not from a file)" : l.source) << "\n"
      << "EAL: " << absl::StrJoin(EalArgs(l, "sluiced"), " ") << "\n";
  FormatPorts(l, out);
  FormatLcores(l, out);
  FormatStorage(l, out);
  FormatReplication(l, out);
  FormatQueues(l, out);
  return out.str();
}

}  // namespace sluice::hwconf
