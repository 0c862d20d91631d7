// The settings table: every key a layout file may contain, with its type, allowed values, unit,
// default and description. It is the single source for three things (STYLE point 6): the parser
// (a key not in the table is an error that lists the allowed ones), PrintSettings (the reference
// in hwconf/README.md and `sluice-hwconf settings`), and the enum names of ToString. Defaults are
// not written here: they are printed from a default-constructed layout.h struct, so the docs
// cannot disagree with the code.
#include <memory>
#include <optional>
#include <type_traits>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hwconf/internal.h"
#include "hwconf/loader.h"

namespace sluice::hwconf {
namespace internal {
namespace {

// Limits of the DPDK build (Debian 12 DPDK 22.11: RTE_MAX_LCORE 128, RTE_MAX_QUEUES_PER_PORT
// 1024) and of the kernel (CPU_SETSIZE 1024, IORING_MAX_ENTRIES 32768). hwconf does not include
// DPDK headers: the pure layout model must build without it.
constexpr int64_t kMaxLcore = 127;
constexpr int64_t kMaxCpu = 1023;
constexpr int64_t kMaxQueuesPerPort = 1024;
constexpr int64_t kMaxShards = 1024;
constexpr int64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;

// ---- enum names: the TOML spelling of each enum value, also used by ToString ----------------

template <typename E>
struct EnumName {
  std::string_view name;
  E value;
};

constexpr EnumName<IdlePolicy> kIdlePolicies[] = {{"poll", IdlePolicy::kPoll},
                                                  {"adaptive", IdlePolicy::kAdaptive}};
constexpr EnumName<Durability> kDurabilities[] = {
    {"none", Durability::kNone}, {"write", Durability::kWrite}, {"dsync", Durability::kDsync}};
constexpr EnumName<ReplicationRole> kReplicationRoles[] = {{"none", ReplicationRole::kNone},
                                                           {"primary", ReplicationRole::kPrimary},
                                                           {"standby", ReplicationRole::kStandby}};
constexpr EnumName<ReplicationMode> kReplicationModes[] = {{"async", ReplicationMode::kAsync},
                                                           {"sync", ReplicationMode::kSync}};
constexpr EnumName<QueueType> kQueueTypes[] = {{"stream", QueueType::kStream},
                                               {"work", QueueType::kWork}};
constexpr EnumName<PortRole> kPortRoles[] = {{"client", PortRole::kClient},
                                             {"replication", PortRole::kReplication}};

template <typename E, size_t N>
std::string_view NameOf(const EnumName<E> (&names)[N], E value) {
  for (const EnumName<E>& n : names) {
    if (n.value == value) return n.name;
  }
  return "?";  // only reachable through a cast of an out-of-range integer
}

template <typename E, size_t N>
std::string AllowedNames(const EnumName<E> (&names)[N]) {
  return absl::StrJoin(names, ", ", [](std::string* out, const EnumName<E>& n) {
    Append(out, "\"", n.name, "\"");
  });
}

// ---- codecs: how one key's TOML value is checked and stored, and how its default is shown ----

template <typename T>
using ParseFn = std::function<void(ParseContext&, const TomlValue&, const std::string& path, T&)>;

template <typename T>
struct Codec {
  std::string type;   // the TOML type, as the reference names it
  std::string range;  // the allowed values, "" when any value of the type goes
  ParseFn<T> parse;
  std::function<std::string(const T&)> show;  // the field of `T`, as TOML
};

template <typename T>
struct Field {
  std::string_view key;
  Codec<T> codec;
  std::string_view unit;
  bool required = false;
  std::string_view doc;
};

int LineOf(const TomlValue& v) { return static_cast<int>(v.location().line()); }

std::string_view TypeName(const TomlValue& v) {
  switch (v.type()) {
    case toml::value_t::boolean: return "boolean";
    case toml::value_t::integer: return "integer";
    case toml::value_t::floating: return "float";
    case toml::value_t::string: return "string";
    case toml::value_t::array: return "array";
    case toml::value_t::table: return "table";
    case toml::value_t::empty: return "nothing";
    default: return "date/time";
  }
}

// `what` prefixes the reason for list elements ("element 2: ").
bool ExpectType(ParseContext& ctx, const TomlValue& v, const std::string& path, toml::value_t t,
                std::string_view want, std::string_view what = "") {
  if (v.type() == t) return true;
  ctx.Error(v, path, Cat(what, "wrong type: expected ", want, ", got ", TypeName(v)));
  return false;
}

using IntCheck = std::string (*)(int64_t);
using StrCheck = std::string (*)(std::string_view);

std::optional<int64_t> ReadInt(ParseContext& ctx, const TomlValue& v, const std::string& path,
                               int64_t lo, int64_t hi, IntCheck check, std::string_view what = "") {
  if (!ExpectType(ctx, v, path, toml::value_t::integer, "integer", what)) {
    return std::nullopt;
  }
  const int64_t i = v.as_integer();
  if (i < lo || i > hi) {
    ctx.Error(v, path, Cat(what, "value ", i, " out of range [", lo, ", ", hi, "]"));
    return std::nullopt;
  }
  if (std::string why = check ? check(i) : ""; !why.empty()) {
    ctx.Error(v, path, Cat(what, "value ", i, " ", why));
    return std::nullopt;
  }
  return i;
}

std::optional<std::string> ReadString(ParseContext& ctx, const TomlValue& v,
                                      const std::string& path, StrCheck check,
                                      std::string_view what = "") {
  if (!ExpectType(ctx, v, path, toml::value_t::string, "string", what)) {
    return std::nullopt;
  }
  std::string s = v.as_string().str;
  if (std::string why = check ? check(s) : ""; !why.empty()) {
    ctx.Error(v, path, Cat(what, why));
    return std::nullopt;
  }
  return s;
}

std::string RangeDoc(int64_t lo, int64_t hi, std::string_view extra) {
  return Cat("[", lo, ", ", hi, "]", extra.empty() ? "" : ", ", extra);
}

template <typename T, typename M>
Codec<T> Int(M T::*member, int64_t lo, int64_t hi, IntCheck check = nullptr,
             std::string_view check_doc = "") {
  return {
      .type = "integer",
      .range = RangeDoc(lo, hi, check_doc),
      .parse = [=](ParseContext& ctx, const TomlValue& v, const std::string& path, T& out) {
        if (auto i = ReadInt(ctx, v, path, lo, hi, check)) out.*member = static_cast<M>(*i);
      },
      .show = [=](const T& t) { return Cat(t.*member); },
  };
}

template <typename T, typename E>
Codec<T> IntList(std::vector<E> T::*member, int64_t lo, int64_t hi) {
  return {
      .type = "array of integers",
      .range = Cat("each ", RangeDoc(lo, hi, "")),
      .parse = [=](ParseContext& ctx, const TomlValue& v, const std::string& path, T& out) {
        if (!ExpectType(ctx, v, path, toml::value_t::array, "array of integers")) return;
        (out.*member).clear();  // a list written in the file replaces the default one
        const auto& items = v.as_array();
        for (size_t i = 0; i < items.size(); ++i) {
          ctx.where.Record(Cat(path, "[", i, "]"), LineOf(items[i]));
          auto n = ReadInt(ctx, items[i], path, lo, hi, nullptr, Cat("element ", i, ": "));
          if (n) (out.*member).push_back(static_cast<E>(*n));
        }
      },
      .show = [=](const T& t) { return Cat("[", absl::StrJoin(t.*member, ", "), "]"); },
  };
}

template <typename T>
Codec<T> Bool(bool T::*member) {
  return {
      .type = "boolean",
      .range = "",
      .parse = [=](ParseContext& ctx, const TomlValue& v, const std::string& path, T& out) {
        if (ExpectType(ctx, v, path, toml::value_t::boolean, "boolean")) out.*member = v.as_boolean();
      },
      .show = [=](const T& t) { return std::string(t.*member ? "true" : "false"); },
  };
}

template <typename T>
Codec<T> Str(std::string T::*member, StrCheck check = nullptr, std::string_view range = "") {
  return {
      .type = "string",
      .range = std::string(range),
      .parse = [=](ParseContext& ctx, const TomlValue& v, const std::string& path, T& out) {
        if (auto s = ReadString(ctx, v, path, check)) out.*member = std::move(*s);
      },
      .show = [=](const T& t) { return Cat("\"", t.*member, "\""); },
  };
}

template <typename T>
Codec<T> StrList(std::vector<std::string> T::*member, StrCheck check = nullptr,
                 std::string_view range = "") {
  return {
      .type = "array of strings",
      .range = std::string(range),
      .parse = [=](ParseContext& ctx, const TomlValue& v, const std::string& path, T& out) {
        if (!ExpectType(ctx, v, path, toml::value_t::array, "array of strings")) return;
        (out.*member).clear();  // a list written in the file replaces the default one
        const auto& items = v.as_array();
        for (size_t i = 0; i < items.size(); ++i) {
          ctx.where.Record(Cat(path, "[", i, "]"), LineOf(items[i]));
          auto s = ReadString(ctx, items[i], path, check, Cat("element ", i, ": "));
          if (s) (out.*member).push_back(std::move(*s));
        }
      },
      .show = [=](const T& t) {
        return Cat("[", absl::StrJoin(t.*member, ", ", [](std::string* o, const auto& s) {
                              Append(o, "\"", s, "\"");
                            }), "]");
      },
  };
}

template <typename T, typename E, size_t N>
Codec<T> Enum(E T::*member, const EnumName<E> (&names)[N]) {
  return {
      .type = "string",
      .range = AllowedNames(names),
      .parse = [member, &names](ParseContext& ctx, const TomlValue& v, const std::string& path,
                                T& out) {
        auto s = ReadString(ctx, v, path, nullptr);
        if (!s) return;
        for (const EnumName<E>& n : names) {
          if (n.name == *s) {
            out.*member = n.value;
            return;
          }
        }
        ctx.Error(v, path, Cat("\"", *s, "\" is not allowed; allowed: ", AllowedNames(names)));
      },
      .show = [member, &names](const T& t) { return Cat("\"", NameOf(names, t.*member), "\""); },
  };
}

// [eal] lcore_cpus = "0@0,1@0,2@1": EAL's --lcores notation, one lcore per CPU (no groups).
std::string ReadLcoreCpus(std::string_view text, std::vector<std::pair<int, int>>& out) {
  for (std::string_view item : Split(text, ',')) {
    const size_t at = item.find('@');
    uint32_t lcore = 0, cpu = 0;
    if (at == std::string_view::npos || !ParseDecimal(item.substr(0, at), &lcore) ||
        !ParseDecimal(item.substr(at + 1), &cpu)) {
      return Cat("\"", item, "\" is not LCORE@CPU (e.g. \"0@0,1@0,2@1\")");
    }
    if (lcore > kMaxLcore || cpu > kMaxCpu) {
      return Cat("\"", item, "\": lcore out of range [0, ", kMaxLcore, "] or cpu out of range [0, ",
                 kMaxCpu, "]");
    }
    if (absl::c_any_of(out, [&](const auto& p) { return p.first == static_cast<int>(lcore); })) {
      return Cat("lcore ", lcore, " is mapped twice");
    }
    out.emplace_back(static_cast<int>(lcore), static_cast<int>(cpu));
  }
  absl::c_sort(out);
  return "";
}

Codec<Eal> LcoreCpus() {
  return {
      .type = "string",
      .range = Cat("\"LCORE@CPU,...\", lcore [0, ", kMaxLcore, "], cpu [0, ", kMaxCpu, "]"),
      .parse = [](ParseContext& ctx, const TomlValue& v, const std::string& path, Eal& out) {
        auto text = ReadString(ctx, v, path, nullptr);
        if (!text || text->empty()) return;
        std::vector<std::pair<int, int>> pairs;
        if (std::string why = ReadLcoreCpus(*text, pairs); !why.empty()) {
          ctx.Error(v, path, why);
          return;
        }
        out.lcore_cpus = std::move(pairs);
      },
      .show = [](const Eal& e) {
        return Cat("\"", absl::StrJoin(e.lcore_cpus, ",", [](std::string* o, const auto& p) {
                     absl::StrAppend(o, p.first, "@", p.second);
                   }), "\"");
      },
  };
}

// [[lcore]] rx = ["client0:0", "client0:1"]: which port queues this lcore polls.
std::string CheckRxRef(std::string_view s) {
  const size_t colon = s.rfind(':');
  uint32_t queue = 0;
  if (colon == std::string_view::npos || !CheckName(s.substr(0, colon)).empty() ||
      !ParseDecimal(s.substr(colon + 1), &queue) || queue >= kMaxQueuesPerPort) {
    return Cat("\"", s, "\" is not PORT:QUEUE (a port name, a queue index in [0, ",
                        kMaxQueuesPerPort - 1, "])");
  }
  return "";
}

Codec<Lcore> RxList() {
  return {
      .type = "array of strings",
      .range = "\"PORT:QUEUE\"",
      .parse = [](ParseContext& ctx, const TomlValue& v, const std::string& path, Lcore& out) {
        if (!ExpectType(ctx, v, path, toml::value_t::array, "array of strings")) return;
        const auto& items = v.as_array();
        for (size_t i = 0; i < items.size(); ++i) {
          ctx.where.Record(Cat(path, "[", i, "]"), LineOf(items[i]));
          auto s = ReadString(ctx, items[i], path, CheckRxRef, Cat("element ", i, ": "));
          if (!s) continue;
          const size_t colon = s->rfind(':');
          RxQueueRef ref{.port = s->substr(0, colon)};
          uint32_t queue = 0;
          (void)ParseDecimal(std::string_view(*s).substr(colon + 1), &queue);  // CheckRxRef did
          ref.queue = static_cast<uint16_t>(queue);
          out.rx.push_back(std::move(ref));
        }
      },
      .show = [](const Lcore&) { return std::string("[]"); },
  };
}

// ---- value checks that belong to one key --------------------------------------------------

std::string PowerOfTwo(int64_t v) {
  return IsPowerOfTwo(static_cast<uint64_t>(v)) ? "" : "is not a power of two";
}
std::string MultipleOf4KiB(int64_t v) {
  return v % 4096 == 0 ? "" : "is not a multiple of 4096 (O_DIRECT writes whole 4 KiB blocks)";
}
std::string MultipleOf32(int64_t v) {
  return v % 32 == 0 ? "" : "is not a multiple of 32 (the strictest common PMD alignment)";
}
std::string NonEmpty(std::string_view s) { return s.empty() ? "must not be empty" : ""; }
std::string OptionalName(std::string_view s) { return s.empty() ? "" : CheckName(s); }
std::string OptionalHostPort(std::string_view s) { return s.empty() ? "" : CheckHostPort(s); }
// The etcd endpoint: plain HTTP to an IPv4 literal (the JSON gateway; no TLS, no DNS at start).
std::string OptionalEtcdUrl(std::string_view s) {
  if (s.empty()) return "";
  constexpr std::string_view kScheme = "http://";
  if (s.substr(0, kScheme.size()) != kScheme) {
    return Cat("\"", s, "\" does not start with http:// (the etcd JSON gateway over plain HTTP)");
  }
  std::string_view hp = s.substr(kScheme.size());
  if (!hp.empty() && hp.back() == '/') hp.remove_suffix(1);
  if (std::string why = CheckHostPort(hp); !why.empty()) return Cat("\"", s, "\": ", why);
  return "";
}
std::string EtcdKey(std::string_view s) {
  if (s.size() < 2 || s.front() != '/') return "must start with '/' and name a key";
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) return "must be printable ASCII without spaces";
  }
  return "";
}
std::string WholeSeconds(int64_t v) {
  return v % 1000 == 0 ? "" : "is not a multiple of 1000 (etcd leases count whole seconds)";
}
std::string UnicastIpv4(std::string_view s) {
  if (std::string why = CheckIpv4(s); !why.empty()) return why;
  uint32_t first = 0;
  (void)ParseDecimal(s.substr(0, s.find('.')), &first);  // CheckIpv4 vouched for it
  if (s == "0.0.0.0" || s == "255.255.255.255" || first >= 224) {
    return Cat("\"", s, "\" is not a unicast address a port can own");
  }
  return "";
}
std::string OptionalCidr(std::string_view s) {
  if (s.empty()) return "";
  const size_t slash = s.find('/');
  uint32_t len = 0;
  if (slash == std::string_view::npos || !ParseDecimal(s.substr(slash + 1), &len) || len < 1 ||
      len > 30 || !UnicastIpv4(s.substr(0, slash)).empty()) {
    return Cat("\"", s, "\" is not a unicast a.b.c.d/len with len in [1, 30]");
  }
  return "";
}
std::string FilePrefix(std::string_view s) {
  const bool ok = !s.empty() && s.size() <= 64 && absl::c_all_of(s, [](char c) {
    return absl::ascii_isalnum(c) || c == '_' || c == '-';
  });
  return ok ? "" : Cat("\"", s, "\" must be 1-64 of [A-Za-z0-9_-] (it names a directory)");
}

// ---- the table -----------------------------------------------------------------------------

std::vector<Field<Eal>> EalFields() {
  return {
      {.key = "lcores", .codec = IntList(&Eal::lcores, 0, kMaxLcore), .required = true,
       .doc = "DPDK lcore ids to enable: the main lcore and every worker. Lcore N runs on CPU N "
              "unless `lcore_cpus` maps it elsewhere."},
      {.key = "main_lcore", .codec = Int(&Eal::main_lcore, -1, kMaxLcore),
       .doc = "The lcore that runs control and housekeeping; never a worker. -1 = the first of "
              "`lcores`."},
      {.key = "lcore_cpus", .codec = LcoreCpus(),
       .doc = "Optional lcore -> CPU map in EAL `--lcores` notation, e.g. `\"0@0,1@0,2@1\"`. When "
              "given, EAL gets `--lcores` and several lcores may share one CPU (main + 2 workers "
              "on a 2-CPU machine); lcores not listed run on the CPU of their own number."},
      {.key = "memory_mb", .codec = Int(&Eal::memory_mb, 64, 1 << 20), .unit = "MiB",
       .doc = "DPDK memory (`-m`), used unless hugepages and `socket_mem_mb` are both set. With "
              "hugepages it must fit in the pages reserved."},
      {.key = "hugepages", .codec = Bool(&Eal::hugepages),
       .doc = "Back DPDK memory with hugepages. false passes `--no-huge`: fine for TAP and memif, "
              "not for NIC line rate."},
      {.key = "socket_mem_mb", .codec = IntList(&Eal::socket_mem_mb, 0, 1 << 20), .unit = "MiB",
       .doc = "With hugepages only: memory per NUMA socket, index = socket id (`--socket-mem`), "
              "instead of `memory_mb`. Put it on the socket of the NIC and its workers."},
      {.key = "file_prefix", .codec = Str(&Eal::file_prefix, FilePrefix, "[A-Za-z0-9_-]{1,64}"),
       .doc = "`--file-prefix`: names the runtime directory /var/run/dpdk/PREFIX. Every DPDK "
              "process on a host needs its own (primary, standby and load generator)."},
      {.key = "extra_args", .codec = StrList(&Eal::extra_args),
       .doc = "Appended verbatim to the EAL argv, e.g. `[\"--log-level=pmd.net.tap:debug\"]`."},
  };
}

std::vector<Field<Port>> PortFields() {
  return {
      {.key = "name", .codec = Str(&Port::name, CheckName, "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"),
       .required = true,
       .doc = "Names the port in `lcore.rx` and `replication.link_port`; unique."},
      {.key = "pci", .codec = Str(&Port::pci, CheckPci, "[DDDD:]BB:DD.F"),
       .doc = "PCI address of a NIC port (`-a`). Exactly one of `pci` and `vdev`."},
      {.key = "vdev", .codec = Str(&Port::vdev, CheckVdev, "net_DRIVER[,key=value...]"),
       .doc = "DPDK virtual device (`--vdev`), e.g. `net_tap0,iface=sluice0` or "
              "`net_memif0,role=server,socket=/run/sluice/memif.sock,id=0`."},
      {.key = "role", .codec = Enum(&Port::role, kPortRoles),
       .doc = "`client`: producers and consumers; every RX queue is polled by exactly one worker. "
              "`replication`: the link to the other box, named by `replication.link_port`."},
      {.key = "rx_queues", .codec = Int(&Port::rx_queues, 1, kMaxQueuesPerPort),
       .doc = "RX queues (RSS spreads flows over them)."},
      {.key = "tx_queues", .codec = Int(&Port::tx_queues, 0, kMaxQueuesPerPort),
       .doc = "TX queues; 0 = one per worker lcore. Otherwise at least one per worker, since "
              "each worker transmits on its own queue without locks."},
      {.key = "rx_descriptors", .codec = Int(&Port::rx_descriptors, 64, 32768, MultipleOf32, "multiple of 32"),
       .doc = "RX ring size per queue."},
      {.key = "tx_descriptors", .codec = Int(&Port::tx_descriptors, 64, 32768, MultipleOf32, "multiple of 32"),
       .doc = "TX ring size per queue."},
      {.key = "mtu", .codec = Int(&Port::mtu, 68, 9600), .unit = "bytes",
       .doc = "IP MTU of the port."},
      {.key = "ipv4", .codec = Str(&Port::ipv4, UnicastIpv4, "unicast a.b.c.d"), .required = true,
       .doc = "The address this port answers ARP, ICMP echo and UDP for."},
      {.key = "kernel_ipv4", .codec = Str(&Port::kernel_ipv4, OptionalCidr, "\"a.b.c.d/len\" or \"\""),
       .doc = "TAP ports only: the address sluiced gives the kernel side of the TAP interface "
              "(`ip addr replace`) at start, on the subnet of `ipv4`, so that clients on this host "
              "reach the dataplane at once. \"\" = leave the interface alone."},
      {.key = "udp_port", .codec = Int(&Port::udp_port, 1, 65535),
       .doc = "UDP port of the sluice protocol (client ports) or of the link (replication ports: "
              "channel c uses this + c)."},
  };
}

std::vector<Field<Lcore>> LcoreFields() {
  return {
      {.key = "id", .codec = Int(&Lcore::id, 0, kMaxLcore), .required = true,
       .doc = "DPDK lcore id of this worker; in `eal.lcores`, not the main lcore, unique."},
      {.key = "rx", .codec = RxList(),
       .doc = "RX queues this worker polls, as `\"PORT:QUEUE\"`."},
      {.key = "shards", .codec = IntList(&Lcore::shards, 0, kMaxShards - 1),
       .doc = "Shard ids this worker owns, each < `dataplane.shards`."},
      {.key = "idle", .codec = Enum(&Lcore::idle, kIdlePolicies),
       .doc = "`poll`: spin (a dedicated core). `adaptive`: after a run of empty polls, pause "
              "then sleep briefly (shared machines, laptops, TAP)."},
      {.key = "idle_sleep_max_us", .codec = Int(&Lcore::idle_sleep_max_us, 1, 1000), .unit = "µs",
       .doc = "`adaptive` only: the longest idle sleep when an RX queue of this worker cannot "
              "wake it (memif, af_packet, a NIC without RX interrupts): the latency a quiet "
              "worker may add to the next frame, against the CPU it burns idle (at 50, about "
              "20,000 wake-ups a second). Where every RX queue has interrupts (TAP, kernel UDP "
              "link), a sleep ends at the next frame and lasts up to 1 ms."},
  };
}

std::vector<Field<Layout>> DataplaneFields() {
  return {
      {.key = "shards", .codec = Int(&Layout::shards, 1, kMaxShards), .required = true,
       .doc = "Number of shards; each owned by exactly one worker. Queue partitions are spread "
              "over shards."},
      {.key = "ring_size", .codec = Int(&Layout::ring_size, 16, 65536, PowerOfTwo, "power of two"),
       .unit = "entries",
       .doc = "Size of each (from, to) lcore hand-off ring (rte_ring needs a power of two)."},
      {.key = "shard_memory_mb", .codec = Int(&Layout::shard_memory_mb, 4, 1048576), .unit = "MiB",
       .doc = "Message memory per shard: the chunk pool its partitions' records and batches live "
              "in (each partition holds at most 64 chunks). Process memory, not the EAL's: "
              "allocated and touched at start-up, so it costs start-up time and RAM whether used "
              "or not. At least 16 chunks, each at least twice the largest message a queue takes "
              "(1 MiB with the default 256 KiB limit, so at least 16 MiB). When it is full, a "
              "stream partition gives up its oldest durable chunk (reads of it then go to "
              "disk); otherwise the producer is answered THROTTLED."},
  };
}

std::vector<Field<Storage>> StorageFields() {
  return {
      {.key = "data_dirs", .codec = StrList(&Storage::data_dirs, NonEmpty),
       .doc = "One directory per device; partitions are spread over them. At least one."},
      {.key = "uring_depth", .codec = Int(&Storage::uring_depth, 1, 32768), .unit = "entries",
       .doc = "io_uring submission queue depth per worker."},
      {.key = "sqpoll", .codec = Bool(&Storage::sqpoll),
       .doc = "Use an SQPOLL kernel thread (no submit system call, but it spins a CPU)."},
      {.key = "sqpoll_cpu", .codec = Int(&Storage::sqpoll_cpu, -1, kMaxCpu),
       .doc = "CPU for the SQPOLL thread; -1 = the kernel chooses. Only with `sqpoll`, and not a "
              "worker's CPU."},
      {.key = "batch_bytes",
       .codec = Int(&Storage::batch_bytes, 4 * kKiB, 64 * kMiB, MultipleOf4KiB, "multiple of 4096"),
       .unit = "bytes", .doc = "A batch closes at this many bytes..."},
      {.key = "batch_time_us", .codec = Int(&Storage::batch_time_us, 0, 1'000'000), .unit = "us",
       .doc = "...or this long after its first message, whichever comes first."},
      {.key = "segment_bytes",
       .codec = Int(&Storage::segment_bytes, 1 * kMiB, 64 * kGiB, MultipleOf4KiB, "multiple of 4096"),
       .unit = "bytes", .doc = "Size of a preallocated segment file; at least `batch_bytes`."},
      {.key = "durability", .codec = Enum(&Storage::durability, kDurabilities),
       .doc = "Default for queues that do not say: `none` (memory), `write` (on disk, device "
              "cache), `dsync` (RWF_DSYNC/FUA)."},
  };
}

std::vector<Field<Replication>> ReplicationFields() {
  return {
      {.key = "role", .codec = Enum(&Replication::role, kReplicationRoles),
       .doc = "This box's role in the pair."},
      {.key = "link_port", .codec = Str(&Replication::link_port, OptionalName, "a port name or \"\""),
       .doc = "The port (role = \"replication\") that carries the link; \"\" = kernel UDP "
               "(non-blocking sockets bound to `listen`). Each of its RX queues is one worker's "
               "replication channel; channel c sends from the port's `udp_port` + c."},
      {.key = "peer", .codec = Str(&Replication::peer, OptionalHostPort, "\"a.b.c.d:port\" or \"\""),
       .doc = "The other box's link endpoint; required unless role = \"none\". Channel c talks "
              "to its port + c."},
      {.key = "listen", .codec = Str(&Replication::listen, OptionalHostPort, "\"a.b.c.d:port\" or \"\""),
       .doc = "Kernel UDP link only (link_port = \"\"): the address this box's link sockets "
              "bind, channel c (the c-th worker that owns shards) on port + c; required then."},
      {.key = "mode", .codec = Enum(&Replication::mode, kReplicationModes),
       .doc = "Default for queues that do not say: `async` acks after local durability, `sync` "
              "after local and standby durability."},
      {.key = "etcd", .codec = Str(&Replication::etcd, OptionalEtcdUrl, "\"http://a.b.c.d:port\" or \"\""),
       .doc = "etcd v3 endpoint for automatic promotion: the primary holds a lease-backed leader "
              "key, the standby campaigns when it expires. \"\" = manual promotion only."},
      {.key = "etcd_lease_ms",
       .codec = Int(&Replication::etcd_lease_ms, 2000, 60000, WholeSeconds, "multiple of 1000"),
       .unit = "ms", .doc = "The leader key's lease. A primary that cannot renew it stops taking "
                            "writes after 3/4 of it; a standby promotes about a lease after a "
                            "primary died."},
      {.key = "etcd_key", .codec = Str(&Replication::etcd_key, EtcdKey, "\"/...\""),
       .doc = "The leader key; one per pair (two pairs sharing an etcd need distinct keys)."},
      {.key = "lcore", .codec = Int(&Replication::lcore, -1, kMaxLcore),
       .doc = "A dedicated replication lcore (an `[[lcore]]` id): it alone polls the link (over "
              "a DPDK port its `rx` lists the link's only queue; over kernel UDP its socket, and "
              "its `rx` may be empty) and replicates every partition; the lcores that own shards "
              "hand it their durable batches through rings (a copy per batch, a wake-up). It "
              "must own no shards. -1 (default): every lcore that owns shards is a replication "
              "channel itself (docs/replication.md §1)."},
  };
}

std::vector<Field<Control>> ControlFields() {
  return {
      {.key = "listen", .codec = Str(&Control::listen, CheckHostPort, "\"a.b.c.d:port\""),
       .doc = "REST API and /metrics address."},
      {.key = "metadata_dir", .codec = Str(&Control::metadata_dir, NonEmpty),
       .doc = "Where the control plane keeps queue metadata."},
  };
}

std::vector<Field<QueueDecl>> QueueFields() {
  return {
      {.key = "name", .codec = Str(&QueueDecl::name, CheckName, "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"),
       .required = true, .doc = "Queue name; unique."},
      {.key = "type", .codec = Enum(&QueueDecl::type, kQueueTypes),
       .doc = "`stream` (publish/subscribe, append-only) or `work` (point-to-point, leases)."},
      {.key = "partitions", .codec = Int(&QueueDecl::partitions, 1, 4096),
       .doc = "Partitions; order is total within one."},
      {.key = "visibility_timeout_ms", .codec = Int(&QueueDecl::visibility_timeout_ms, 0, 43'200'000),
       .unit = "ms", .doc = "Work queues: lease length of a received message."},
      {.key = "max_message_bytes", .codec = Int(&QueueDecl::max_message_bytes, 1, 16 * kMiB),
       .unit = "bytes", .doc = "Largest message accepted."},
      {.key = "max_receive_count", .codec = Int(&QueueDecl::max_receive_count, 0, 1000),
       .doc = "Work queues: receives before a message moves to `dead_letter_queue`; 0 = never."},
      {.key = "dead_letter_queue",
       .codec = Str(&QueueDecl::dead_letter_queue, OptionalName, "a declared work queue or \"\""),
       .doc = "Work queues: where messages go after `max_receive_count` receives."},
  };
}

// ---- sections ------------------------------------------------------------------------------

struct SettingRow {
  std::string key, type, range, unit;
  bool required;
  std::string default_text;  // as TOML; empty when required
  std::string doc;
};

struct Section {
  std::string_view name;
  bool is_array;  // [[name]]: any number of tables; [name]: one table
  bool required;
  std::string_view doc;
  std::function<void(ParseContext&, const TomlValue& table, const std::string& path, Layout&)> parse;
  std::function<std::vector<SettingRow>()> rows;
};

template <typename T>
std::string KeyList(const std::vector<Field<T>>& fields) {
  return absl::StrJoin(fields, ", ", [](std::string* o, const Field<T>& f) { o->append(f.key); });
}

template <typename T>
void ParseFields(ParseContext& ctx, const TomlValue& table, const std::string& path,
                 const std::vector<Field<T>>& fields, T& out) {
  const auto& entries = table.as_table();
  for (const auto& [key, value] : entries) {
    const bool known = absl::c_any_of(fields, [&](const Field<T>& f) { return f.key == key; });
    if (!known) {
      ctx.Error(value, Cat(path, ".", key),
                Cat("unknown key; allowed keys: ", KeyList(fields)));
    }
  }
  for (const Field<T>& f : fields) {
    const std::string key_path = Cat(path, ".", f.key);
    auto it = entries.find(std::string(f.key));
    if (it == entries.end()) {
      if (f.required) ctx.Error(table, key_path, "required key is missing");
      continue;
    }
    ctx.where.Record(key_path, LineOf(it->second));
    f.codec.parse(ctx, it->second, key_path, out);
  }
}

template <typename T>
std::vector<SettingRow> Rows(const std::vector<Field<T>>& fields) {
  const T defaults{};
  std::vector<SettingRow> rows;
  for (const Field<T>& f : fields) {
    rows.push_back({.key = std::string(f.key), .type = f.codec.type, .range = f.codec.range,
                    .unit = std::string(f.unit), .required = f.required,
                    .default_text = f.required ? "" : f.codec.show(defaults),
                    .doc = std::string(f.doc)});
  }
  return rows;
}

// A section whose table fills the object `select(layout)` returns (a [table]), or a new element
// of the vector it returns (an [[array]]). The fields are built once, with the section list.
template <typename T, typename Select>
Section MakeSection(std::string_view name, bool is_array, bool required, std::string_view doc,
                    std::vector<Field<T>> (*make_fields)(), Select select) {
  auto fields = std::make_shared<const std::vector<Field<T>>>(make_fields());
  return {
      .name = name, .is_array = is_array, .required = required, .doc = doc,
      .parse = [fields, select](ParseContext& ctx, const TomlValue& table, const std::string& path,
                                Layout& l) {
        if constexpr (std::is_same_v<decltype(select(l)), std::vector<T>&>) {
          ParseFields(ctx, table, path, *fields, select(l).emplace_back());
        } else {
          ParseFields(ctx, table, path, *fields, select(l));
        }
      },
      .rows = [fields] { return Rows(*fields); },
  };
}

const std::vector<Section>& Sections() {
  static const std::vector<Section> kSections = {
      MakeSection("eal", false, true, "DPDK EAL: which lcores run, on which CPUs, and its memory.",
                  EalFields, [](Layout& l) -> Eal& { return l.eal; }),
      MakeSection("port", true, true,
                  "One per DPDK port: a NIC port (`pci`) or a virtual device (`vdev`).",
                  PortFields, [](Layout& l) -> std::vector<Port>& { return l.ports; }),
      MakeSection("lcore", true, true,
                  "One per worker lcore: the RX queues it polls and the shards it owns.",
                  LcoreFields, [](Layout& l) -> std::vector<Lcore>& { return l.lcores; }),
      MakeSection("dataplane", false, true, "Shards and the rings between lcores.",
                  DataplaneFields, [](Layout& l) -> Layout& { return l; }),
      MakeSection("storage", false, false, "The log: devices, io_uring, batching, durability.",
                  StorageFields, [](Layout& l) -> Storage& { return l.storage; }),
      MakeSection("replication", false, false, "The link to the other box of the pair.",
                  ReplicationFields, [](Layout& l) -> Replication& { return l.replication; }),
      MakeSection("control", false, false, "Management address and metadata store.",
                  ControlFields, [](Layout& l) -> Control& { return l.control; }),
      MakeSection("queue", true, false,
                  "Queues created in the catalog at start-up when missing (the stored metadata "
                  "wins for existing ones; more through the REST API or sluicectl).",
                  QueueFields, [](Layout& l) -> std::vector<QueueDecl>& { return l.queues; }),
  };
  return kSections;
}

std::string SectionHeader(const Section& s) {
  return s.is_array ? Cat("[[", s.name, "]]") : Cat("[", s.name, "]");
}

std::string SectionList() {
  return absl::StrJoin(Sections(), ", ",
                       [](std::string* o, const Section& s) { o->append(SectionHeader(s)); });
}

void ParseArraySection(ParseContext& ctx, const Section& s, const TomlValue& v, Layout& out) {
  const std::string name(s.name);
  if (!v.is_array()) {
    ctx.Error(v, name, Cat("wrong type: expected an array of tables ([[", name,
                                    "]]), got ", TypeName(v)));
    return;
  }
  const auto& items = v.as_array();
  if (items.empty() && s.required) {
    ctx.Error(v, name, Cat("at least one [[", name, "]] is required"));
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string path = Cat(name, "[", i, "]");
    if (!items[i].is_table()) {
      ctx.Error(items[i], path, Cat("wrong type: expected a table, got ", TypeName(items[i])));
      continue;
    }
    ctx.where.Record(path, LineOf(items[i]));
    s.parse(ctx, items[i], path, out);
  }
}

void ParseTableSection(ParseContext& ctx, const Section& s, const TomlValue& v, Layout& out) {
  const std::string name(s.name);
  if (!v.is_table()) {
    ctx.Error(v, name, Cat("wrong type: expected a table ([", name, "]), got ", TypeName(v)));
    return;
  }
  s.parse(ctx, v, name, out);
}

// ---- printing the reference ----------------------------------------------------------------

// Breaks `text` into lines of at most `width` characters, each prefixed by `indent`.
std::string Wrap(std::string_view text, size_t width, std::string_view indent) {
  std::string out, line;
  for (std::string_view word : Split(text, ' ')) {
    if (word.empty()) continue;
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      Append(&out, indent, line, "\n");
      line.clear();
    }
    Append(&line, line.empty() ? "" : " ", word);
  }
  if (!line.empty()) Append(&out, indent, line, "\n");
  return out;
}

void PrintText(std::ostream& out) {
  out << "Layout settings (TOML). [[name]] sections repeat; each key's type, allowed values,\n"
         "unit and default, then what it does.\n";
  for (const Section& s : Sections()) {
    out << "\n" << SectionHeader(s) << (s.required ? "" : "  (optional)") << "  " << s.doc << "\n";
    for (const SettingRow& r : s.rows()) {
      out << "  " << r.key << " = " << r.type;
      if (!r.range.empty()) out << " " << r.range;
      if (!r.unit.empty()) out << ", " << r.unit;
      out << (r.required ? "  (required)" : "  (default " + r.default_text + ")")
          << "\n"
          << Wrap(r.doc, 90, "      ");
    }
  }
}

std::string MarkdownCell(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';  // a bare | would end the table cell
    out += c;
  }
  return out;
}

void PrintMarkdown(std::ostream& out) {
  for (const Section& s : Sections()) {
    out << "### `" << SectionHeader(s) << "`" << (s.required ? "" : " (optional)") << "\n\n"
        << s.doc << "\n\n"
        << "| key | type | allowed | unit | default | description |\n"
        << "| --- | --- | --- | --- | --- | --- |\n";
    for (const SettingRow& r : s.rows()) {
      out << "| `" << r.key << "` | " << r.type << " | " << MarkdownCell(r.range) << " | " << r.unit
          << " | " << (r.required ? "**required**" : "`" + r.default_text + "`")
          << " | " << MarkdownCell(r.doc) << " |\n";
    }
    out << "\n";
  }
}

}  // namespace

void ParseLayout(const TomlValue& root, ParseContext& ctx, Layout& out) {
  const auto& top = root.as_table();
  for (const auto& [key, value] : top) {
    if (!absl::c_any_of(Sections(), [&](const Section& s) { return s.name == key; })) {
      ctx.Error(value, key, Cat("unknown key; allowed keys: ", SectionList()));
    }
  }
  for (const Section& s : Sections()) {
    auto it = top.find(std::string(s.name));
    if (it == top.end()) {
      if (s.required) {
        ctx.diag.Error(0, s.name, Cat("required section ", SectionHeader(s), " is missing"));
      }
      continue;
    }
    ctx.where.Record(std::string(s.name), LineOf(it->second));
    if (s.is_array) {
      ParseArraySection(ctx, s, it->second, out);
    } else {
      ParseTableSection(ctx, s, it->second, out);
    }
  }
}

}  // namespace internal

void PrintSettings(std::ostream& out, SettingsFormat format) {
  if (format == SettingsFormat::kMarkdown) {
    internal::PrintMarkdown(out);
  } else {
    internal::PrintText(out);
  }
}

std::string_view ToString(IdlePolicy v) { return internal::NameOf(internal::kIdlePolicies, v); }
std::string_view ToString(Durability v) { return internal::NameOf(internal::kDurabilities, v); }
std::string_view ToString(ReplicationRole v) {
  return internal::NameOf(internal::kReplicationRoles, v);
}
std::string_view ToString(ReplicationMode v) {
  return internal::NameOf(internal::kReplicationModes, v);
}
std::string_view ToString(QueueType v) { return internal::NameOf(internal::kQueueTypes, v); }
std::string_view ToString(PortRole v) { return internal::NameOf(internal::kPortRoles, v); }

}  // namespace sluice::hwconf
