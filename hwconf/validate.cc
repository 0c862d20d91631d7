// The rules of a layout that involve more than one key: who owns each shard and polls each RX
// queue, what refers to what, and limits between settings. Each value on its own has already been
// checked against the settings table (settings.cc). hwconf/README.md §Validation lists the rules.
#include <charconv>
#include <map>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hwconf/internal.h"

namespace sluice::hwconf::internal {
namespace {

// Errors name a key path; the SourceMap turns it into the line it was written on.
class Reporter {
 public:
  Reporter(const SourceMap& where, Diagnostics& diag) : where_(where), diag_(diag) {}

  // `line_path` is the (more precise) path whose line to cite, e.g. one list element.
  void Error(std::string_view key, std::string_view reason, std::string_view line_path = "") {
    diag_.Error(where_.Line(line_path.empty() ? key : line_path), key, reason);
  }
  int Line(std::string_view path) const { return where_.Line(path); }
  bool Written(std::string_view path) const { return where_.Has(path); }

 private:
  const SourceMap& where_;
  Diagnostics& diag_;
};

std::string Path(std::string_view section, size_t index, std::string_view key = "") {
  return key.empty() ? Cat(section, "[", index, "]")
                     : Cat(section, "[", index, "].", key);
}

std::string Elem(std::string_view list_path, size_t index) {
  return Cat(list_path, "[", index, "]");
}

std::string LcoreList(const std::vector<int>& lcores) {
  return Cat("[", absl::StrJoin(lcores, ", "), "]");
}

// ---- [eal] ---------------------------------------------------------------------------------

void CheckEal(Reporter& r, Eal& eal) {
  if (eal.lcores.empty()) {
    r.Error("eal.lcores", "is empty; it needs the main lcore and at least one worker");
    return;
  }
  for (size_t i = 0; i < eal.lcores.size(); ++i) {
    if (absl::c_count(eal.lcores, eal.lcores[i]) > 1 &&
        absl::c_find(eal.lcores, eal.lcores[i]) != eal.lcores.begin() + static_cast<long>(i)) {
      r.Error("eal.lcores", Cat("duplicate lcore id ", eal.lcores[i]),
              Elem("eal.lcores", i));
    }
  }
  if (eal.main_lcore == -1) {
    eal.main_lcore = eal.lcores.front();
  } else if (!absl::c_linear_search(eal.lcores, eal.main_lcore)) {
    r.Error("eal.main_lcore", Cat("lcore ", eal.main_lcore, " is not in eal.lcores ",
                                           LcoreList(eal.lcores)));
  }
  for (const auto& [lcore, cpu] : eal.lcore_cpus) {
    if (!absl::c_linear_search(eal.lcores, lcore)) {
      r.Error("eal.lcore_cpus",
              Cat("maps lcore ", lcore, ", which is not in eal.lcores ", LcoreList(eal.lcores)));
    }
  }
  if (!eal.socket_mem_mb.empty()) {
    if (!eal.hugepages) {
      r.Error("eal.socket_mem_mb",
              "needs hugepages = true (--socket-mem reserves hugepages); use memory_mb without");
    } else if (absl::c_all_of(eal.socket_mem_mb, [](uint32_t mb) { return mb == 0; })) {
      r.Error("eal.socket_mem_mb", "gives no socket any memory");
    }
  }
}

// ---- [[port]] ------------------------------------------------------------------------------

void CheckPortDevice(Reporter& r, const Port& p, size_t i) {
  if (!p.pci.empty() && !p.vdev.empty()) {
    r.Error(Path("port", i), Cat("port \"", p.name,
                                          "\" has both pci and vdev; set exactly one"));
  } else if (p.pci.empty() && p.vdev.empty()) {
    r.Error(Path("port", i), Cat("port \"", p.name,
                                          "\" has neither pci nor vdev; set exactly one"));
  }
}

// An address both the settings table and ParseDecimal have vouched for.
uint32_t Ipv4Bits(std::string_view s) {
  uint32_t bits = 0;
  for (std::string_view octet : Split(s, '.')) {
    uint32_t v = 0;
    (void)ParseDecimal(octet, &v);
    bits = bits << 8 | v;
  }
  return bits;
}

// sluiced puts kernel_ipv4 on the kernel side of the TAP: it must be a TAP with a named interface,
// and share a subnet with the dataplane's address, or the kernel would not ARP for it.
void CheckKernelSide(Reporter& r, const Port& p, size_t i) {
  if (p.kernel_ipv4.empty()) return;
  const std::string key = Path("port", i, "kernel_ipv4");
  if (!p.vdev.starts_with("net_tap") || p.vdev.find(",iface=") == std::string::npos) {
    r.Error(key, "needs a TAP vdev with iface=NAME (net_tapN,iface=NAME)");
    return;
  }
  const size_t slash = p.kernel_ipv4.find('/');
  uint32_t len = 0;
  (void)ParseDecimal(std::string_view(p.kernel_ipv4).substr(slash + 1), &len);  // [1, 30]: parsed
  const uint32_t mask = ~uint32_t{0} << (32 - len);
  const uint32_t kernel = Ipv4Bits(std::string_view(p.kernel_ipv4).substr(0, slash));
  const uint32_t dataplane = Ipv4Bits(p.ipv4);
  if (kernel == dataplane) {
    r.Error(key, Cat("is the port's own ipv4 ", p.ipv4, "; the kernel side needs another address"));
  } else if ((kernel & mask) != (dataplane & mask)) {
    r.Error(key, Cat(p.kernel_ipv4, " is not on the subnet of the port's ipv4 ", p.ipv4));
  }
}

void CheckPorts(Reporter& r, const Layout& l) {
  std::map<std::string, size_t> names, devices;  // -> index of the first port that used it
  size_t client_ports = 0;
  for (size_t i = 0; i < l.ports.size(); ++i) {
    const Port& p = l.ports[i];
    if (auto [it, fresh] = names.emplace(p.name, i); !fresh) {
      r.Error(Path("port", i, "name"),
              Cat("duplicate port name \"", p.name, "\" (also port[", it->second,
                           "], line ", r.Line(Path("port", it->second, "name")), ")"));
    }
    CheckPortDevice(r, p, i);
    CheckKernelSide(r, p, i);
    // DPDK refuses a device it already has; say which port claimed it first.
    const bool is_pci = !p.pci.empty();
    const std::string device = is_pci ? NormalizePci(p.pci) : std::string(VdevName(p.vdev));
    const std::string key = Path("port", i, is_pci ? "pci" : "vdev");
    if (auto [it, fresh] = devices.emplace(device, i); !fresh && !device.empty()) {
      r.Error(key, Cat("device ", device, " is already port[", it->second, "] (\"",
                                l.ports[it->second].name, "\")"));
    }
    if (p.role == PortRole::kClient) ++client_ports;
    if (p.tx_queues != 0 && p.tx_queues < l.lcores.size()) {
      r.Error(Path("port", i, "tx_queues"),
              Cat(p.tx_queues, " TX queues for ", l.lcores.size(),
                           " workers: each worker transmits on its own queue (0 = one per worker)"));
    }
  }
  if (client_ports == 0) r.Error("port", "no port has role = \"client\"; producers need one");
}

// ---- [[lcore]] -----------------------------------------------------------------------------

void CheckLcores(Reporter& r, const Layout& l) {
  std::map<int, size_t> ids;
  for (size_t i = 0; i < l.lcores.size(); ++i) {
    const Lcore& c = l.lcores[i];
    const std::string key = Path("lcore", i, "id");
    if (auto [it, fresh] = ids.emplace(c.id, i); !fresh) {
      r.Error(key, Cat("duplicate lcore id ", c.id, " (also lcore[", it->second,
                                "], line ", r.Line(Path("lcore", it->second, "id")), ")"));
    }
    if (!absl::c_linear_search(l.eal.lcores, c.id)) {
      r.Error(key, Cat("lcore ", c.id, " is not in eal.lcores ", LcoreList(l.eal.lcores)));
    } else if (c.id == l.eal.main_lcore) {
      r.Error(key, Cat("lcore ", c.id,
                                " is the main lcore (eal.main_lcore); a worker needs its own lcore"));
    }
    // A replication lcore over the kernel UDP link polls its socket, not an RX queue.
    const bool udp_replication_lcore = c.id == l.replication.lcore &&
                                       l.replication.role != ReplicationRole::kNone &&
                                       l.replication.link_port.empty();
    if (c.rx.empty() && c.shards.empty() && !udp_replication_lcore) {
      r.Error(Path("lcore", i), Cat("lcore ", c.id, " has no rx queues and no shards"));
    }
  }
}

// Every RX queue of a client port is polled exactly once: a queue nobody polls drops its share
// of the traffic (RSS sends flows there regardless), and two pollers of one queue would race.
void CheckRxQueues(Reporter& r, const Layout& l) {
  std::map<std::pair<std::string, uint16_t>, std::string> pollers;  // queue -> element path
  for (size_t i = 0; i < l.lcores.size(); ++i) {
    const std::string key = Path("lcore", i, "rx");
    for (size_t k = 0; k < l.lcores[i].rx.size(); ++k) {
      const RxQueueRef& ref = l.lcores[i].rx[k];
      const std::string at = Elem(key, k);
      const std::string name = Cat(ref.port, ":", ref.queue);
      const Port* port = l.FindPort(ref.port);
      if (port == nullptr) {
        r.Error(key, Cat("port \"", ref.port, "\" is not defined (ports: ",
                                  absl::StrJoin(l.ports, ", ", [](std::string* o, const Port& p) {
                                    o->append(p.name);
                                  }), ")"), at);
        continue;
      }
      if (ref.queue >= port->rx_queues) {
        r.Error(key, Cat("rx queue index ", ref.queue, " out of range [0, ",
                                  port->rx_queues - 1, "] (port \"", ref.port, "\" has rx_queues = ",
                                  port->rx_queues, ")"), at);
        continue;
      }
      if (auto [it, fresh] = pollers.emplace(std::pair(ref.port, ref.queue), at); !fresh) {
        r.Error(key, Cat("rx queue ", name, " is already polled by ", it->second,
                                  " (line ", r.Line(it->second), ")"), at);
      }
    }
  }
  for (size_t p = 0; p < l.ports.size(); ++p) {
    const Port& port = l.ports[p];
    if (port.role != PortRole::kClient) continue;
    std::vector<std::string> idle;
    for (uint16_t q = 0; q < port.rx_queues; ++q) {
      if (!pollers.contains({port.name, q})) idle.push_back(Cat(port.name, ":", q));
    }
    if (!idle.empty()) {
      r.Error(Path("port", p, "rx_queues"),
              Cat("rx queue ", absl::StrJoin(idle, ", "),
                           " polled by no lcore; list each in exactly one [[lcore]] rx"));
    }
  }
}

// Every shard is owned by exactly one worker: a shard without an owner would take messages that
// nobody persists, and two owners would break the single-writer rule of the shard engine.
void CheckShards(Reporter& r, const Layout& l) {
  std::map<uint32_t, std::string> owners;  // shard -> element path
  for (size_t i = 0; i < l.lcores.size(); ++i) {
    const std::string key = Path("lcore", i, "shards");
    for (size_t k = 0; k < l.lcores[i].shards.size(); ++k) {
      const uint32_t shard = l.lcores[i].shards[k];
      const std::string at = Elem(key, k);
      if (shard >= l.shards) {
        r.Error(key, Cat("shard ", shard, " out of range [0, ", l.shards - 1,
                                  "] (dataplane.shards = ", l.shards, ")"), at);
        continue;
      }
      if (auto [it, fresh] = owners.emplace(shard, at); !fresh) {
        r.Error(key, Cat("shard ", shard, " is already owned by ", it->second,
                                  " (line ", r.Line(it->second), ")"), at);
      }
    }
  }
  std::vector<uint32_t> orphans;
  for (uint32_t s = 0; s < l.shards; ++s) {
    if (!owners.contains(s)) orphans.push_back(s);
  }
  if (!orphans.empty()) {
    r.Error("dataplane.shards", Cat("shard ", absl::StrJoin(orphans, ", "),
                                             " owned by no lcore; list each in exactly one "
                                             "[[lcore]] shards"));
  }
}

// ---- [storage], [replication], [[queue]] ---------------------------------------------------

void CheckStorage(Reporter& r, const Layout& l) {
  const Storage& s = l.storage;
  if (s.data_dirs.empty()) r.Error("storage.data_dirs", "is empty; at least one directory");
  for (size_t i = 0; i < s.data_dirs.size(); ++i) {
    if (absl::c_find(s.data_dirs, s.data_dirs[i]) != s.data_dirs.begin() + static_cast<long>(i)) {
      r.Error("storage.data_dirs", Cat("\"", s.data_dirs[i], "\" is listed twice"),
              Elem("storage.data_dirs", i));
    }
  }
  if (s.segment_bytes < s.batch_bytes) {
    r.Error("storage.segment_bytes", Cat(s.segment_bytes, " is smaller than batch_bytes ",
                                                  s.batch_bytes, "; a batch must fit a segment"));
  }
  if (s.sqpoll_cpu >= 0 && !s.sqpoll) {
    r.Error("storage.sqpoll_cpu", "is set but sqpoll = false");
  }
  for (const Lcore& c : l.lcores) {
    if (s.sqpoll && s.sqpoll_cpu >= 0 && l.eal.CpuOf(c.id) == s.sqpoll_cpu) {
      r.Error("storage.sqpoll_cpu", Cat("CPU ", s.sqpoll_cpu, " runs worker lcore ", c.id,
                                                 "; the spinning SQPOLL thread would starve it"));
    }
  }
}

void CheckReplication(Reporter& r, const Layout& l) {
  const Replication& rep = l.replication;
  if (!rep.link_port.empty()) {
    const Port* port = l.FindPort(rep.link_port);
    if (port == nullptr) {
      r.Error("replication.link_port", Cat("port \"", rep.link_port, "\" is not defined"));
    } else if (port->role != PortRole::kReplication) {
      r.Error("replication.link_port",
              Cat("port \"", rep.link_port, "\" has role = \"", ToString(port->role),
                           "\"; the link needs role = \"replication\""));
    }
  }
  if (rep.role != ReplicationRole::kNone && rep.link_port.empty() && rep.listen.empty()) {
    r.Error("replication.listen", "is required for a kernel UDP link (link_port = \"\")");
  }
  if (rep.role == ReplicationRole::kNone && !rep.etcd.empty()) {
    r.Error("replication.etcd", "is set but role = \"none\": only a pair elects a primary");
  }
  if (rep.role != ReplicationRole::kNone && rep.peer.empty()) {
    r.Error("replication.peer", Cat("is required with role = \"", ToString(rep.role), "\""));
  }
  if (rep.lcore >= 0) {
    // A dedicated replication lcore (docs/replication.md §1): it replicates every partition, so
    // it owns none (the shard lcores hand it their batches) and it alone polls the link.
    const Lcore* c = nullptr;
    for (const Lcore& x : l.lcores)
      if (x.id == rep.lcore) c = &x;
    if (rep.role == ReplicationRole::kNone) {
      r.Error("replication.lcore", "is set but role = \"none\": nothing to replicate");
    } else if (c == nullptr) {
      r.Error("replication.lcore", Cat("lcore ", rep.lcore, " is not an [[lcore]]"));
    } else if (!c->shards.empty()) {
      r.Error("replication.lcore", Cat("lcore ", rep.lcore, " owns shards; a replication lcore "
                                       "owns none (the shard lcores hand it their batches)"));
    } else if (!rep.link_port.empty()) {
      const Port* port = l.FindPort(rep.link_port);
      size_t polled = 0;
      for (const RxQueueRef& q : c->rx) polled += q.port == rep.link_port;
      if (polled != 1 || (port != nullptr && port->rx_queues != 1)) {
        r.Error("replication.lcore",
                Cat("lcore ", rep.lcore, " must poll the link's only queue (\"", rep.link_port,
                    ":0\"; the port with rx_queues = 1): it alone runs the link"));
      }
    }
  }
  for (size_t i = 0; i < l.ports.size(); ++i) {
    const Port& p = l.ports[i];
    if (p.role == PortRole::kReplication && p.name != rep.link_port) {
      r.Error(Path("port", i, "role"),
              Cat("port \"", p.name, "\" has role = \"replication\" but is not "
                           "replication.link_port: nothing would use it"));
    }
  }
}

void CheckDeadLetter(Reporter& r, const Layout& l, size_t i) {
  const QueueDecl& q = l.queues[i];
  const std::string key = Path("queue", i, "dead_letter_queue");
  if (q.dead_letter_queue.empty()) {
    if (q.max_receive_count > 0) {
      r.Error(Path("queue", i, "max_receive_count"), "is set but dead_letter_queue is empty");
    }
    return;
  }
  if (q.max_receive_count == 0) {
    r.Error(key, "is set but max_receive_count = 0 never moves a message there");
  }
  auto dlq = absl::c_find_if(l.queues, [&](const QueueDecl& d) { return d.name == q.dead_letter_queue; });
  if (q.dead_letter_queue == q.name) {
    r.Error(key, "names the queue itself");
  } else if (dlq == l.queues.end()) {
    r.Error(key, Cat("queue \"", q.dead_letter_queue, "\" is not declared"));
  } else if (dlq->type != QueueType::kWork) {
    r.Error(key, Cat("queue \"", q.dead_letter_queue, "\" is a stream; a dead-letter "
                              "queue is a work queue"));
  }
}

void CheckQueues(Reporter& r, const Layout& l) {
  std::map<std::string, size_t> names;
  for (size_t i = 0; i < l.queues.size(); ++i) {
    const QueueDecl& q = l.queues[i];
    if (auto [it, fresh] = names.emplace(q.name, i); !fresh) {
      r.Error(Path("queue", i, "name"),
              Cat("duplicate queue name \"", q.name, "\" (also queue[", it->second,
                           "], line ", r.Line(Path("queue", it->second, "name")), ")"));
    }
    if (q.type == QueueType::kStream) {
      // Work-queue settings on a stream are a misunderstanding worth pointing out, not ignoring.
      for (std::string_view k : {"visibility_timeout_ms", "max_receive_count", "dead_letter_queue"}) {
        if (r.Written(Path("queue", i, k))) {
          r.Error(Path("queue", i, k), "applies to work queues only; this queue is a stream");
        }
      }
      continue;
    }
    CheckDeadLetter(r, l, i);
  }
}

}  // namespace

void ValidateLayout(const SourceMap& where, Diagnostics& diag, Layout& layout) {
  Reporter r(where, diag);
  CheckEal(r, layout.eal);  // first: resolves main_lcore, which CheckLcores uses
  CheckPorts(r, layout);
  CheckLcores(r, layout);
  CheckRxQueues(r, layout);
  CheckShards(r, layout);
  CheckStorage(r, layout);
  CheckReplication(r, layout);
  CheckQueues(r, layout);
}

// ---- value formats -------------------------------------------------------------------------

namespace {
bool IsDecimalOctet(std::string_view s) {
  uint32_t v = 0;
  return !s.empty() && s.size() <= 3 && absl::c_all_of(s, absl::ascii_isdigit) &&
         (s.size() == 1 || s[0] != '0') &&  // "010" reads as octal to inet_aton: refuse it
         ParseDecimal(s, &v) && v <= 255;
}

bool IsHex(std::string_view s, size_t digits) {
  return s.size() == digits && absl::c_all_of(s, absl::ascii_isxdigit);
}

// Device arguments after the first comma: key=value pairs, none empty.
bool ValidDevArgs(std::string_view args) {
  for (std::string_view kv : Split(args, ',')) {
    if (kv.empty()) return false;
  }
  return true;
}
}  // namespace

std::string CheckIpv4(std::string_view s) {
  std::vector<std::string_view> parts = Split(s, '.');
  if (parts.size() != 4 || !absl::c_all_of(parts, IsDecimalOctet)) {
    return Cat("\"", s, "\" is not an IPv4 address (a.b.c.d, each 0-255)");
  }
  return "";
}

std::string CheckHostPort(std::string_view s) {
  const size_t colon = s.rfind(':');
  uint32_t port = 0;
  if (colon == std::string_view::npos || !CheckIpv4(s.substr(0, colon)).empty() ||
      !ParseDecimal(s.substr(colon + 1), &port) || port == 0 || port > 65535) {
    return Cat("\"", s, "\" is not an IPv4 address and port (a.b.c.d:1-65535)");
  }
  return "";
}

std::string CheckName(std::string_view s) {
  const bool ok = !s.empty() && s.size() <= 64 && absl::ascii_isalnum(s[0]) &&
                  absl::c_all_of(s, [](char c) {
                    return absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-';
                  });
  return ok ? "" : Cat("\"", s, "\" is not a name: 1-64 of [A-Za-z0-9_.-], "
                                "starting with a letter or digit");
}

std::string CheckPci(std::string_view s) {
  const std::string_view addr = s.substr(0, s.find(','));
  std::vector<std::string_view> parts = Split(addr, ':');  // [domain:]bus:device.function
  if (parts.size() == 2) parts.insert(parts.begin(), "0000");
  bool ok = parts.size() == 3 && IsHex(parts[0], 4) && IsHex(parts[1], 2);
  if (ok) {
    const std::vector<std::string_view> dev_fn = Split(parts[2], '.');
    uint32_t device = 0, function = 0;
    ok = dev_fn.size() == 2 && IsHex(dev_fn[0], 2) && ParseHex(dev_fn[0], &device) &&
         device <= 0x1f && dev_fn[1].size() == 1 && ParseDecimal(dev_fn[1], &function) &&
         function <= 7;
  }
  if (ok && addr.size() < s.size()) ok = ValidDevArgs(s.substr(addr.size() + 1));
  return ok ? "" : Cat("\"", s, "\" is not a PCI address (DDDD:BB:DD.F or BB:DD.F, hex; "
                       "device <= 1f, function 0-7; optional ,key=value device args)");
}

std::string CheckVdev(std::string_view s) {
  const std::string_view name = VdevName(s);
  const std::string_view args = name.size() < s.size() ? s.substr(name.size() + 1) : "";
  const bool ok = name.size() > 4 && name.starts_with("net_") &&
                  absl::c_all_of(name, [](char c) {
                    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_';
                  }) &&
                  (name.size() == s.size() || ValidDevArgs(args));
  return ok ? "" : Cat("\"", s, "\" is not an ethdev vdev (net_DRIVERn[,key=value...], "
                                "e.g. net_tap0,iface=sluice0)");
}

std::string NormalizePci(std::string_view s) {
  std::string addr(s.substr(0, s.find(',')));
  for (char& c : addr) c = absl::ascii_tolower(c);
  return addr.size() == 7 ? Cat("0000:", addr) : addr;
}

std::string_view VdevName(std::string_view vdev) { return vdev.substr(0, vdev.find(',')); }

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> pieces;
  size_t start = 0;
  for (size_t cut = s.find(sep); cut != std::string_view::npos; cut = s.find(sep, start)) {
    pieces.push_back(s.substr(start, cut - start));
    start = cut + 1;
  }
  pieces.push_back(s.substr(start));
  return pieces;
}

namespace {
bool ParseBase(std::string_view s, int base, uint32_t* out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return ec == std::errc() && end == s.data() + s.size();
}
}  // namespace

bool ParseDecimal(std::string_view s, uint32_t* out) { return ParseBase(s, 10, out); }
bool ParseHex(std::string_view s, uint32_t* out) { return ParseBase(s, 16, out); }

}  // namespace sluice::hwconf::internal
