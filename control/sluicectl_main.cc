// sluicectl: the operator's CLI for the control plane's REST API (docs/control.md §sluicectl).
//
// Exit codes (scripts rely on them):
//   0  done
//   1  the server refused the request or found nothing (4xx/5xx; health: not live or not ready)
//   2  usage error (bad command line; nothing was sent)
//   3  the server could not be reached (connection refused, timeout)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/queue_meta.h"
#include "control/rest_server.h"
#include "hwconf/machine_cli.h"
#include "httplib.h"

namespace sluice::control {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

constexpr char kMainHelp[] = R"(usage: sluicectl [--server HOST:PORT] [--json] [--timeout SECONDS] COMMAND ...

Operates a sluice server through its REST API (docs/control.md).

commands:
  queue create NAME --type stream|work [--partitions N] [--attr KEY=VALUE ...]
  queue list
  queue describe NAME
  queue update NAME --attr KEY=VALUE [--attr KEY=VALUE ...]
  queue purge NAME
  queue delete NAME
  health                      liveness and readiness, with their checks
  stats [--watch SECONDS] [--count N]   live per-queue, per-partition and per-lcore statistics
  metrics                     the Prometheus text of GET /metrics
  role                        replication role, epoch, peer, lag
  promote [--force]           make this standby the primary, with the next epoch (refused
                              until it has caught up with the primary, unless --force)
  version                     server and API version
  attributes                  the queue attributes, their units, bounds and defaults
  hwconf check FILE | suggest   a layout against this machine, or one for it (no server;
                              `sluicectl hwconf --help`: its own options and exit codes)

options:
  --server HOST:PORT   the server's control.listen address (default: $SLUICE_SERVER, else
                       127.0.0.1:7480)
  --json               print the server's JSON instead of tables (for scripts)
  --timeout SECONDS    connect and read timeout (default 5)
  -h, --help           this text; `sluicectl COMMAND --help` for one command

exit codes:
  0 done; 1 request refused or not found (HTTP 4xx/5xx, or unhealthy); 2 usage error;
  3 server not reachable
)";

constexpr char kQueueHelp[] = R"(usage: sluicectl queue create|list|describe|update|purge|delete ...

  queue create NAME --type stream|work [--partitions N] [--attr KEY=VALUE ...]
  queue list
  queue describe NAME
  queue update NAME --attr KEY=VALUE [--attr KEY=VALUE ...]
  queue purge NAME
  queue delete NAME

`sluicectl queue SUBCOMMAND --help` for one; `sluicectl attributes` lists the attributes.
)";

constexpr char kCreateHelp[] = R"(usage: sluicectl queue create NAME --type stream|work [--partitions N] [--attr KEY=VALUE ...]

Creates a queue. Idempotent: creating a queue that exists with the same type, partitions and
attributes succeeds (and says so); with different ones it fails with a conflict (exit 1).

  NAME               [A-Za-z0-9][A-Za-z0-9_.-]{0,63}
  --type T           stream (publish/subscribe) or work (point-to-point, leases)
  --partitions N     1..4096 (default 1); cannot change later
  --attr KEY=VALUE   an attribute (repeatable). Durations take ms, s, m, h, d (30s, 5m);
                     sizes take KiB, MiB, GiB (64KiB). `sluicectl attributes` lists them.

example:
  sluicectl queue create orders --type work --partitions 4 \
      --attr visibility_timeout_ms=45s --attr max_receive_count=5 --attr dead_letter_queue=orders-dlq
)";

constexpr char kListHelp[] = R"(usage: sluicectl queue list

Lists the queues with their type, partitions, depth, in-flight messages and rates.
)";

constexpr char kDescribeHelp[] = R"(usage: sluicectl queue describe NAME

Shows a queue's attributes and its live per-partition statistics (depth, in flight, offsets,
rates, bytes). Exit 1 when there is no such queue.
)";

constexpr char kUpdateHelp[] = R"(usage: sluicectl queue update NAME --attr KEY=VALUE [--attr KEY=VALUE ...]

Changes attributes of a running queue. durability, priority_levels and fifo cannot change live
(nor type and partitions); `sluicectl attributes` says which can.
)";

constexpr char kPurgeHelp[] = R"(usage: sluicectl queue purge NAME

Drops every stored message of the queue (leased and delayed ones too); the queue and its
offsets stay: the next message gets the next offset, stream reads below the new first offset
answer OFFSET_OUT_OF_RANGE. Durable queues log the purge before it is answered, so a restart
does not bring the messages back. A message still on its way to storage when the purge arrives
is kept.
)";

constexpr char kDeleteHelp[] = R"(usage: sluicectl queue delete NAME

Deletes the queue and its messages. Refused (exit 1) while another queue uses it as its
dead_letter_queue.
)";

constexpr char kHealthHelp[] = R"(usage: sluicectl health

GET /health/live and /health/ready with their checks. Exit 0 when both pass, 1 otherwise.
)";

constexpr char kStatsHelp[] = R"(usage: sluicectl stats [--watch SECONDS] [--count N]

Live statistics: per queue and partition (depth, in flight, offsets, rates) and per lcore
(packets, drops, throttled, ring occupancy).
  --watch SECONDS   refresh every SECONDS until interrupted (Ctrl-C)
  --count N         with --watch: stop after N refreshes
)";

constexpr char kMetricsHelp[] = R"(usage: sluicectl metrics

Prints GET /metrics (Prometheus text format).
)";

constexpr char kRoleHelp[] = "usage: sluicectl role\n\nReplication role, epoch, peer and lag.\n";
constexpr char kPromoteHelp[] =
    "usage: sluicectl promote [--force]\n\nMakes this standby the primary: its epoch goes up by "
    "one and is persisted\nbefore it serves; it restarts in the new role. Refused (exit 1) while "
    "the standby\nhas not caught up with the primary it last heard from, unless --force (acknowledged\n"
    "messages the old primary had and this box did not would be lost).\n";
constexpr char kVersionHelp[] = "usage: sluicectl version\n\nServer version and API version.\n";
constexpr char kAttributesHelp[] =
    "usage: sluicectl attributes\n\nThe queue attributes: kind, unit, bounds, whether they can "
    "change live.\n";

struct Options {
  std::string server;
  bool json = false;
  int timeout_s = 5;
};

struct Usage {
  std::string message;
};

// ---- HTTP ----------------------------------------------------------------------------------

struct Reply {
  int status = 0;
  std::string body;
  std::string content_type;
};

// The reply, or nullopt after printing why the server could not be reached.
std::optional<Reply> Call(const Options& o, const std::string& method, const std::string& path,
                          const std::string& body = "") {
  std::string host;
  int port = 0;
  (void)ParseHostPort(o.server, &host, &port);  // checked in main
  httplib::Client cli(host, port);
  cli.set_connection_timeout(o.timeout_s, 0);
  cli.set_read_timeout(o.timeout_s, 0);
  cli.set_write_timeout(o.timeout_s, 0);
  httplib::Result r = method == "POST"     ? cli.Post(path, body, "application/json")
                      : method == "PATCH"  ? cli.Patch(path, body, "application/json")
                      : method == "DELETE" ? cli.Delete(path)
                                           : cli.Get(path);
  if (!r) {
    std::fprintf(stderr, "sluicectl: cannot reach %s: %s\n", o.server.c_str(),
                 httplib::to_string(r.error()).c_str());
    return std::nullopt;
  }
  return Reply{r->status, r->body, r->get_header_value("Content-Type")};
}

Json ParseJson(const Reply& r) { return Json::parse(r.body, nullptr, false); }

// Prints the error of a refused request; returns kExitRefused.
int Refused(const Options& o, const Reply& r) {
  const Json j = ParseJson(r);
  if (o.json) std::cout << r.body;
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    const Json& e = j["error"];
    std::string field = e.contains("field") && e["field"].is_string()
                            ? absl::StrCat(" [", e["field"].get<std::string>(), "]")
                            : "";
    std::fprintf(stderr, "sluicectl: %s (HTTP %d %s%s)\n",
                 e.value("message", std::string("?")).c_str(), r.status,
                 e.value("code", std::string("?")).c_str(), field.c_str());
  } else {
    std::fprintf(stderr, "sluicectl: HTTP %d: %s\n", r.status, r.body.c_str());
  }
  return kExitRefused;
}

// ---- tables --------------------------------------------------------------------------------

using Row = std::vector<std::string>;

void PrintTable(const Row& header, const std::vector<Row>& rows) {
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
  for (const Row& r : rows) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  auto line = [&w](const Row& r) {
    std::string out;
    for (size_t i = 0; i < r.size(); ++i) {
      out += i + 1 == r.size() ? r[i] : absl::StrFormat("%-*s  ", static_cast<int>(w[i]), r[i]);
    }
    std::cout << out << "\n";
  };
  line(header);
  for (const Row& r : rows) line(r);
}

std::string Str(const Json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>();
  if (j.is_number_float()) return absl::StrFormat("%.1f", j.get<double>());
  return j.dump();
}

std::string Field(const Json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) ? Str(obj[key]) : "-";
}

// ---- commands ------------------------------------------------------------------------------

// The JSON object of repeated --attr KEY=VALUE.
Json Attrs(const std::vector<std::string>& kvs) {
  Json out = Json::object();
  for (const std::string& kv : kvs) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw Usage{"--attr wants KEY=VALUE, got \"" + kv + "\""};
    absl::StatusOr<Json> v = ParseAttributeValue(kv.substr(0, eq), kv.substr(eq + 1));
    if (!v.ok()) throw Usage{std::string(v.status().message())};
    out[kv.substr(0, eq)] = *v;
  }
  return out;
}

void PrintQueue(const Json& q) {
  std::cout << "name:        " << Field(q, "name") << "\n"
            << "id:          " << Field(q, "id") << "\n"
            << "type:        " << Field(q, "type") << "\n"
            << "partitions:  " << Field(q, "partitions") << "\n"
            << "purges:      " << Field(q, "purge_generation") << "\n"
            << "attributes:\n";
  if (q.contains("attributes")) {
    for (const auto& [k, v] : q["attributes"].items()) {
      std::cout << absl::StrFormat("  %-23s %s\n", k, Str(v));
    }
  }
}

void PrintPartitions(const Json& stats) {
  if (!stats.is_object() || !stats.contains("partitions")) {
    std::cout << "stats: not available (the dataplane has not published this queue yet)\n";
    return;
  }
  std::vector<Row> rows;
  for (const Json& p : stats["partitions"]) {
    rows.push_back({Field(p, "partition"), Field(p, "lcore"), Field(p, "depth"),
                    Field(p, "in_flight"), Field(p, "low_offset"), Field(p, "next_offset"),
                    Field(p, "durable_offset"), Field(p, "messages_in"), Field(p, "messages_out"),
                    Field(p, "messages_in_per_s"), Field(p, "messages_out_per_s"),
                    Field(p, "bytes_in_per_s"), Field(p, "bytes_out_per_s"),
                    Field(p, "bytes_stored"), Field(p, "bytes_on_disk")});
  }
  PrintTable({"PART", "LCORE", "DEPTH", "IN_FLIGHT", "LOW", "NEXT", "DURABLE", "IN", "OUT", "IN/S",
              "OUT/S", "IN_B/S", "OUT_B/S", "BYTES", "ON_DISK"},
             rows);
}

int QueueCommand(const Options& o, const std::string& sub, const std::vector<std::string>& pos,
                 const std::string& type, const std::string& partitions,
                 const std::vector<std::string>& attrs) {
  auto need_name = [&pos, &sub]() -> const std::string& {
    if (pos.size() != 1) throw Usage{"queue " + sub + " takes exactly one NAME"};
    return pos[0];
  };
  std::optional<Reply> r;
  if (sub == "create") {
    const std::string& name = need_name();
    if (type.empty()) throw Usage{"queue create needs --type stream|work"};
    Json body{{"name", name}, {"type", type}};
    if (!partitions.empty()) {
      char* end = nullptr;
      const unsigned long n = std::strtoul(partitions.c_str(), &end, 10);
      if (end == partitions.c_str() || *end != '\0') throw Usage{"--partitions wants a number"};
      body["partitions"] = n;
    }
    if (!attrs.empty()) body["attributes"] = Attrs(attrs);
    r = Call(o, "POST", "/v1/queues", body.dump());
  } else if (sub == "list") {
    if (!pos.empty()) throw Usage{"queue list takes no NAME"};
    r = Call(o, "GET", "/v1/queues");
  } else if (sub == "describe") {
    r = Call(o, "GET", "/v1/queues/" + need_name());
  } else if (sub == "update") {
    const std::string& name = need_name();
    if (attrs.empty()) throw Usage{"queue update needs at least one --attr KEY=VALUE"};
    r = Call(o, "PATCH", "/v1/queues/" + name, Json{{"attributes", Attrs(attrs)}}.dump());
  } else if (sub == "purge") {
    r = Call(o, "POST", "/v1/queues/" + need_name() + "/purge");
  } else if (sub == "delete") {
    r = Call(o, "DELETE", "/v1/queues/" + need_name());
  } else {
    throw Usage{"unknown queue subcommand \"" + sub + "\""};
  }
  if (!r) return kExitUnreachable;
  if (r->status >= 400) return Refused(o, *r);
  if (o.json) {
    std::cout << r->body;
    return kExitOk;
  }
  const Json j = ParseJson(*r);
  if (sub == "create") {
    std::cout << (r->status == 201 ? "created" : "exists, identical:") << " queue "
              << Field(j, "name") << " (id " << Field(j, "id") << ")\n";
  } else if (sub == "list") {
    std::vector<Row> rows;
    for (const Json& q : j["queues"]) {
      const Json& s = q.contains("stats") ? q["stats"] : Json();
      rows.push_back({Field(q, "name"), Field(q, "id"), Field(q, "type"), Field(q, "partitions"),
                      Field(s, "depth"), Field(s, "in_flight"), Field(s, "messages_in_per_s"),
                      Field(s, "messages_out_per_s"), Field(q["attributes"], "durability")});
    }
    PrintTable({"NAME", "ID", "TYPE", "PARTITIONS", "DEPTH", "IN_FLIGHT", "IN/S", "OUT/S",
                "DURABILITY"},
               rows);
  } else if (sub == "describe") {
    PrintQueue(j);
    std::cout << "\n";
    PrintPartitions(j.contains("stats") ? j["stats"] : Json());
  } else if (sub == "update") {
    std::cout << "updated queue " << Field(j, "name") << "\n";
    PrintQueue(j);
  } else if (sub == "purge") {
    std::cout << "purged queue " << Field(j, "name") << " (purge " << Field(j, "purge_generation")
              << ")\n";
  } else if (sub == "delete") {
    std::cout << "deleted queue " << Field(j["deleted"], "name") << "\n";
  }
  return kExitOk;
}

int Health(const Options& o) {
  bool all_ok = true;
  Json both = Json::object();
  for (const char* which : {"live", "ready"}) {
    std::optional<Reply> r = Call(o, "GET", std::string("/health/") + which);
    if (!r) return kExitUnreachable;
    if (r->status != 200 && r->status != 503) return Refused(o, *r);
    const Json j = ParseJson(*r);
    both[which] = j;
    all_ok = all_ok && r->status == 200;
    if (!o.json) {
      std::cout << which << ": " << Field(j, "status") << "\n";
      if (j.contains("checks")) {
        for (const Json& c : j["checks"]) {
          std::cout << absl::StrFormat("  %-4s %-12s %s\n", c.value("ok", false) ? "ok" : "FAIL",
                                       Field(c, "name"), Field(c, "detail"));
        }
      }
    }
  }
  if (o.json) std::cout << both.dump(2) << "\n";
  return all_ok ? kExitOk : kExitRefused;
}

// The upper bound of the bucket holding quantile q of a histogram ({"upper_bounds", "counts"}),
// as "<= 1.5ms"; "-" when there is none or nothing was observed.
std::string Quantile(const Json& h, double q) {
  if (!h.is_object() || !h.contains("counts") || !h.contains("upper_bounds")) return "-";
  const std::vector<uint64_t> counts = h["counts"].get<std::vector<uint64_t>>();
  const std::vector<double> bounds = h["upper_bounds"].get<std::vector<double>>();
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  if (total == 0) return "-";
  const double want = q * double(total);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (double(seen) >= want) {
      if (i >= bounds.size()) return "+Inf";
      const double s = bounds[i];
      return s >= 1 ? absl::StrFormat("<=%.3gs", s)
             : s >= 1e-3 ? absl::StrFormat("<=%.3gms", s * 1e3)
                         : absl::StrFormat("<=%.3gus", s * 1e6);
    }
  }
  return "+Inf";
}

void PrintStats(const Json& j) {
  std::vector<Row> rows;
  for (const Json& q : j["queues"]) {
    for (const Json& p : q["partitions"]) {
      rows.push_back({Field(q, "name"), Field(p, "partition"), Field(p, "lcore"), Field(p, "depth"),
                      Field(p, "in_flight"), Field(p, "next_offset"), Field(p, "durable_offset"),
                      Field(p, "messages_in_per_s"), Field(p, "messages_out_per_s"),
                      Field(p, "throttled")});
    }
  }
  PrintTable({"QUEUE", "PART", "LCORE", "DEPTH", "IN_FLIGHT", "NEXT", "DURABLE", "IN/S", "OUT/S",
              "THROTTLED"},
             rows);
  std::cout << "\n";
  rows.clear();
  for (const Json& l : j["lcores"]) {
    uint64_t drops = 0;
    for (const auto& [reason, n] : l["drops"].items()) drops += n.get<uint64_t>();
    rows.push_back({Field(l, "lcore"), Field(l, "rx_packets"), Field(l, "tx_packets"),
                    Field(l, "messages_in"), Field(l, "throttled"), absl::StrCat(drops),
                    Field(l, "ring_occupancy"), Field(l, "idle_sleeps"),
                    Quantile(l["ack_latency_seconds"], 0.5), Quantile(l["ack_latency_seconds"], 0.99)});
  }
  PrintTable({"LCORE", "RX_PKTS", "TX_PKTS", "MSGS_IN", "THROTTLED", "DROPS", "RING", "SLEEPS",
              "ACK_P50", "ACK_P99"},
             rows);
}

int Stats(const Options& o, double watch_s, long count) {
  const bool tty = isatty(STDOUT_FILENO) != 0;
  for (long i = 0; watch_s <= 0 ? i < 1 : (count <= 0 || i < count); ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::duration<double>(watch_s));
    std::optional<Reply> r = Call(o, "GET", "/v1/stats");
    if (!r) return kExitUnreachable;
    if (r->status >= 400) return Refused(o, *r);
    if (o.json) {
      std::cout << r->body << std::flush;
      continue;
    }
    if (watch_s > 0 && tty) std::cout << "\x1b[H\x1b[2J";
    const Json j = ParseJson(*r);
    if (watch_s > 0) {
      std::cout << "sluice " << o.server << "  catalog v" << Field(j, "catalog_version")
                << "  every " << watch_s << " s  (Ctrl-C to stop)\n\n";
    }
    PrintStats(j);
    std::cout << std::flush;
  }
  return kExitOk;
}

int Simple(const Options& o, const std::string& path) {
  std::optional<Reply> r = Call(o, "GET", path);
  if (!r) return kExitUnreachable;
  if (r->status >= 400) return Refused(o, *r);
  if (o.json || path == "/metrics") {
    std::cout << r->body;
    return kExitOk;
  }
  const Json j = ParseJson(*r);
  for (const auto& [k, v] : j.items()) {
    if (v.is_object()) {
      for (const auto& [k2, v2] : v.items()) std::cout << k << "." << k2 << ": " << Str(v2) << "\n";
    } else {
      std::cout << k << ": " << Str(v) << "\n";
    }
  }
  return kExitOk;
}

int ListAttributes(const Options& o) {
  Json out = Json::array();
  std::vector<Row> rows;
  const MetaOptions defaults;
  const Json d = AttributesToJson(defaults.defaults, QueueType::kWork, true);
  for (const AttributeInfo& a : sluice::control::Attributes()) {
    std::string range =
        a.kind == AttrKind::kUint
            ? absl::StrCat(a.min, "..", a.max == 0 ? defaults.max_delay_ms : a.max)
        : a.kind == AttrKind::kEnum ? std::string(a.values)
        : a.kind == AttrKind::kBool ? "true|false"
                                    : "queue name";
    const char* applies = a.applies == AppliesTo::kBoth   ? "both"
                          : a.applies == AppliesTo::kWork ? "work"
                                                          : "stream";
    const std::string def = Str(d[std::string(a.name)]);
    rows.push_back({std::string(a.name), std::string(a.unit.empty() ? "-" : a.unit), range,
                    def.empty() ? "\"\"" : def, applies, a.live ? "yes" : "no"});
    out.push_back(Json{{"name", a.name}, {"unit", a.unit}, {"range", range},
                       {"default", d[std::string(a.name)]}, {"applies_to", applies},
                       {"live", a.live}, {"doc", a.doc}});
  }
  if (o.json) {
    std::cout << out.dump(2) << "\n";
  } else {
    PrintTable({"ATTRIBUTE", "UNIT", "RANGE", "DEFAULT", "QUEUES", "LIVE"}, rows);
    std::cout << "\n(durability and replication default to the server layout's storage.durability "
                 "and replication.mode)\n";
  }
  return kExitOk;
}

const char* HelpFor(const std::vector<std::string>& words) {
  if (words.empty()) return kMainHelp;
  const std::string& c = words[0];
  if (c == "queue") {
    if (words.size() < 2) return kQueueHelp;
    const std::string& s = words[1];
    return s == "create"     ? kCreateHelp
           : s == "list"     ? kListHelp
           : s == "describe" ? kDescribeHelp
           : s == "update"   ? kUpdateHelp
           : s == "purge"    ? kPurgeHelp
           : s == "delete"   ? kDeleteHelp
                             : kQueueHelp;
  }
  if (c == "hwconf") return hwconf::kHwconfCliHelp;
  return c == "health"       ? kHealthHelp
         : c == "stats"      ? kStatsHelp
         : c == "metrics"    ? kMetricsHelp
         : c == "role"       ? kRoleHelp
         : c == "promote"    ? kPromoteHelp
         : c == "version"    ? kVersionHelp
         : c == "attributes" ? kAttributesHelp
                             : kMainHelp;
}

int Run(int argc, char** argv) {
  Options o;
  const char* env = std::getenv("SLUICE_SERVER");
  o.server = env && *env ? env : "127.0.0.1:7480";
  std::vector<std::string> words, attrs;
  std::string type, partitions;
  double watch_s = 0;
  bool force = false;
  long count = 0;
  bool help = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      const size_t eq = a.find('=');
      if (a.rfind(std::string(flag) + "=", 0) == 0) return a.substr(eq + 1);
      if (i + 1 >= argc) throw Usage{std::string(flag) + " needs a value"};
      return argv[++i];
    };
    auto is = [&a](const char* flag) {
      return a == flag || a.rfind(std::string(flag) + "=", 0) == 0;
    };
    if (a == "-h" || a == "--help") {
      help = true;
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--force") {
      force = true;
    } else if (is("--server")) {
      o.server = value("--server");
    } else if (is("--timeout")) {
      o.timeout_s = std::atoi(value("--timeout").c_str());
      if (o.timeout_s <= 0) throw Usage{"--timeout wants a positive number of seconds"};
    } else if (is("--type")) {
      type = value("--type");
    } else if (is("--partitions")) {
      partitions = value("--partitions");
    } else if (is("--attr")) {
      attrs.push_back(value("--attr"));
    } else if (is("--watch")) {
      watch_s = std::atof(value("--watch").c_str());
      if (watch_s <= 0) throw Usage{"--watch wants a positive number of seconds"};
    } else if (is("--count")) {
      count = std::atol(value("--count").c_str());
      if (count <= 0) throw Usage{"--count wants a positive number"};
    } else if (a.size() > 1 && a[0] == '-') {
      throw Usage{"unknown option " + a};
    } else {
      words.push_back(a);
      if (words.size() == 1 && a == "hwconf" && !help) {  // local, with its own options
        return hwconf::RunHwconfCli(std::vector<std::string>(argv + i + 1, argv + argc), o.json,
                                    std::cout, std::cerr);
      }
    }
  }
  if (!words.empty() && words[0] == "help") {
    words.erase(words.begin());
    help = true;
  }
  if (help) {
    std::fputs(HelpFor(words), stdout);
    return kExitOk;
  }
  if (words.empty()) throw Usage{"no command"};
  {
    std::string host;
    int port = 0;
    if (!ParseHostPort(o.server, &host, &port).ok() || port == 0) {
      throw Usage{"--server wants HOST:PORT, got \"" + o.server + "\""};
    }
  }
  const std::string cmd = words[0];
  auto no_args = [&words, &cmd]() {
    if (words.size() != 1) throw Usage{cmd + " takes no arguments"};
  };
  if (cmd != "queue" && (!type.empty() || !partitions.empty() || !attrs.empty())) {
    throw Usage{"--type, --partitions and --attr belong to queue commands"};
  }
  if (cmd != "stats" && (watch_s > 0 || count > 0)) throw Usage{"--watch and --count belong to stats"};
  if (cmd == "queue") {
    if (words.size() < 2) throw Usage{"queue needs a subcommand"};
    const std::string& sub = words[1];
    if (sub != "create" && sub != "update" && !attrs.empty()) {
      throw Usage{"--attr belongs to queue create and queue update"};
    }
    if (sub != "create" && (!type.empty() || !partitions.empty())) {
      throw Usage{"--type and --partitions belong to queue create"};
    }
    return QueueCommand(o, sub, std::vector<std::string>(words.begin() + 2, words.end()), type,
                        partitions, attrs);
  }
  if (cmd == "health") return no_args(), Health(o);
  if (cmd == "stats") return no_args(), Stats(o, watch_s, count);
  if (cmd == "metrics") return no_args(), Simple(o, "/metrics");
  if (cmd == "role") return no_args(), Simple(o, "/v1/role");
  if (cmd == "promote") {
    no_args();
    std::optional<Reply> r = Call(o, "POST", "/v1/promote", force ? "{\"force\": true}" : "{}");
    if (!r) return kExitUnreachable;
    if (r->status >= 400) return Refused(o, *r);
    std::cout << (o.json ? r->body : "promoting: epoch " + Str(ParseJson(*r)["epoch"]) + "\n");
    return kExitOk;
  }
  if (force) throw Usage{"--force belongs to promote"};
  if (cmd == "version") return no_args(), Simple(o, "/v1/version");
  if (cmd == "attributes") return no_args(), ListAttributes(o);
  throw Usage{"unknown command \"" + cmd + "\""};
}

}  // namespace
}  // namespace sluice::control

int main(int argc, char** argv) {
  try {
    return sluice::control::Run(argc, argv);
  } catch (const sluice::control::Usage& u) {
    std::fprintf(stderr, "sluicectl: %s\n(see sluicectl --help)\n", u.message.c_str());
    return sluice::control::kExitUsage;
  }
}
