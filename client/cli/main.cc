// sluice: the command-line client. One subcommand per operation; every error is printed as
// "sluice: <what was attempted>: <ERROR_NAME>: <advice>" and mapped to an exit code:
//   0 ok, 1 a request failed, 2 usage, 3 cannot reach the server / timeout.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/connection.h"
#include "client/errors.h"
#include "client/group_consumer.h"
#include "client/producer.h"
#include "client/redrive.h"
#include "client/request_reply.h"
#include "client/stream_consumer.h"
#include "client/work_consumer.h"

namespace sluice::client::cli {
namespace {

namespace p = protocol;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

constexpr const char* kExitCodes =
    "Exit codes: 0 ok, 1 a request failed, 2 usage error, 3 cannot reach the server or timed out.\n";

constexpr const char* kMainHelp =
    "usage: sluice [--server HOST:PORT] <command> [options]\n"
    "\n"
    "Talks to a sluice server over UDP. The server defaults to $SLUICE_SERVER, else "
    "198.18.0.1:7411.\n"
    "\n"
    "commands:\n"
    "  produce QUEUE             send messages (stdin lines, --file, or synthetic --count)\n"
    "  consume QUEUE             read a stream (push, in offset order per partition);\n"
    "                            --group G: as a member of a consumer group\n"
    "  group QUEUE GROUP         show a consumer group: generation, members, committed offsets\n"
    "  receive QUEUE             lease messages from a work queue\n"
    "  delete QUEUE RECEIPT...   delete leased messages\n"
    "  nack QUEUE RECEIPT...     give leased messages back (--delay-ms: visible again later)\n"
    "  extend QUEUE RECEIPT...   lengthen leases (--visibility-ms)\n"
    "  redrive DLQ               move dead letters back to their source queue (or --to)\n"
    "  request QUEUE [PAYLOAD]   send a request to a work queue and print the reply\n"
    "  respond QUEUE             answer requests from a work queue (echo, or --exec CMD)\n"
    "  lookup QUEUE              show a queue's id, type, partitions, max message size\n"
    "  ping                      heartbeat round trip\n"
    "\n"
    "global options (anywhere on the line):\n"
    "  --server HOST:PORT        server address; a replicated pair as HOST:PORT,HOST:PORT\n"
    "  --frame-bytes N           largest datagram (default 1472)\n"
    "  -h, --help                this help; `sluice <command> --help` for a command's\n"
    "\n";

struct Command {
  const char* name;
  const char* help;
  std::set<std::string> flags;   // flags that take a value
  std::set<std::string> bools;   // flags without a value
  size_t min_positional;
  size_t max_positional;
};

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"produce",
       "usage: sluice produce QUEUE [options]\n"
       "\n"
       "Sends messages: one per line of stdin (default) or of --file, or --count synthetic ones.\n"
       "Prints a summary: sent, acked, errors, msgs/s. Exits 1 if any message failed.\n"
       "\n"
       "  --file F          read lines from F instead of stdin\n"
       "  --count N         send N synthetic messages instead of reading lines\n"
       "  --size B          synthetic payload size in bytes (default 100)\n"
       "  --rate R          at most R messages per second (default: as fast as acks allow)\n"
       "  --key K           message key (picks the partition: CRC32C(key) % partitions)\n"
       "  --partition P     explicit partition\n"
       "  --priority P      0..15 (default 0); work queues hand out higher priorities first\n"
       "  --delay-ms D      work queues: invisible for D ms (up to 900000)\n"
       "  --ttl-ms T        time to live (0 = the queue's default); expired = never delivered\n"
       "  --group-id G      FIFO message group: one message of G leased at a time, in order\n"
       "  --dedup-id D      deduplication id (a repeat within the queue's window is not\n"
       "                    appended again); with several messages, D-<n> for the n-th\n"
       "  --header K=V[,K=V...]  application headers\n"
       "  --reply-to Q      reply-to queue name (request/reply)\n"
       "  --correlation-id C  correlation id (request/reply)\n"
       "  --linger-ms L     batching delay (default 1)\n"
       "  --timeout-ms T    wait at most T ms for the last acknowledgements (default 30000)\n",
       {"file", "count", "size", "rate", "key", "partition", "priority", "delay-ms", "ttl-ms",
        "linger-ms", "timeout-ms", "group-id", "dedup-id", "header", "reply-to",
        "correlation-id"},
       {},
       1,
       1},
      {"consume",
       "usage: sluice consume QUEUE [options]\n"
       "\n"
       "Subscribes to a stream and prints each message's payload on a line, in offset order per\n"
       "partition, until --count messages, --timeout-ms without a message, or Ctrl-C.\n"
       "\n"
       "With --group G the consumer joins consumer group G: the group's members share the\n"
       "partitions (rebalanced as members come, go or stop heartbeating), each member resumes\n"
       "from the group's committed offsets, and what was printed is committed on the way out.\n"
       "\n"
       "  --from F          offset, earliest, latest (default), or @<timestamp ns>; with --group:\n"
       "                    where partitions the group never committed start\n"
       "  --partition P     one partition (default: all; not with --group)\n"
       "  --count N         stop after N messages (exit 3 if the timeout comes first)\n"
       "  --timeout-ms T    stop after T ms without a message\n"
       "  --group G         consume as a member of consumer group G\n"
       "  --session-ms S    with --group: the server drops a silent member after S ms\n"
       "                    (default 10000, 100..300000)\n"
       "  --window N        credits per partition (default 256)\n"
       "  --format F        payload (default) or offsets: 'partition offset payload'\n",
       {"from", "partition", "count", "timeout-ms", "group", "window", "format", "session-ms"},
       {},
       1,
       1},
      {"receive",
       "usage: sluice receive QUEUE [options]\n"
       "\n"
       "Leases messages from a work queue and prints 'RECEIPT<TAB>payload' per message. The\n"
       "receipt is what `sluice delete` and `sluice nack` take.\n"
       "\n"
       "  --max N           at most N messages (default 1, up to 1024)\n"
       "  --visibility-ms V lease length (default: the queue's)\n"
       "  --wait-ms W       long poll: wait up to W ms for a message, up to 60000; 0 = answer\n"
       "                    at once (default: the queue's receive_wait_ms)\n"
       "  --partition P     one partition (default: any)\n"
       "  --delete          delete the messages after printing them\n"
       "  --headers         after each message, its attributes and headers, one per line,\n"
       "                    indented: receive_count, priority, key, group, ... and K: V\n",
       {"max", "visibility-ms", "wait-ms", "partition"},
       {"delete", "headers"},
       1,
       1},
      {"delete",
       "usage: sluice delete QUEUE RECEIPT...\n"
       "\n"
       "Deletes leased messages. Prints 'ok RECEIPT' per receipt; failures (STALE_RECEIPT,\n"
       "UNKNOWN_RECEIPT) go to stderr and make the exit status 1.\n",
       {},
       {},
       2,
       SIZE_MAX},
      {"nack",
       "usage: sluice nack QUEUE RECEIPT... [--delay-ms D]\n"
       "\n"
       "Gives leased messages back, visible again after D ms (default 0).\n",
       {"delay-ms"},
       {},
       2,
       SIZE_MAX},
      {"group",
       "usage: sluice group QUEUE GROUP\n"
       "\n"
       "Shows consumer group GROUP of stream QUEUE: its generation (one per membership change),\n"
       "its live members, and the committed offset of each partition ('-' where none).\n",
       {},
       {},
       2,
       2},
      {"extend",
       "usage: sluice extend QUEUE RECEIPT... --visibility-ms V\n"
       "\n"
       "Lengthens leases: each message stays invisible for V ms from now (up to 43200000).\n"
       "A lease that already ran out answers STALE_RECEIPT.\n",
       {"visibility-ms"},
       {},
       2,
       SIZE_MAX},
      {"redrive",
       "usage: sluice redrive DLQ [--to QUEUE] [--max N]\n"
       "\n"
       "Moves dead letters back: each message of work queue DLQ is produced again to the queue\n"
       "it was dead-lettered from (its sluice-dlq-source-queue header) or to --to, with its\n"
       "original key, headers, group, priority and payload, and deleted from DLQ once the target\n"
       "acknowledged it. Prints 'moved N, no target N, failed N'; exits 1 if any failed.\n"
       "\n"
       "  --to QUEUE        target queue for every message\n"
       "  --max N           at most N messages (default: all that are visible)\n",
       {"to", "max"},
       {},
       1,
       1},
      {"request",
       "usage: sluice request QUEUE [PAYLOAD] [--timeout-ms T]\n"
       "\n"
       "Sends PAYLOAD (or each line of stdin) as a request to work queue QUEUE, with a temporary\n"
       "reply inbox that the server removes when this client goes away, and prints each reply.\n"
       "A request without a reply within T ms (default 5000) fails with exit code 3.\n",
       {"timeout-ms"},
       {},
       1,
       2},
      {"respond",
       "usage: sluice respond QUEUE [--exec CMD] [--count N] [--timeout-ms T]\n"
       "\n"
       "Serves requests from work queue QUEUE: each reply is the request's payload (echo), or\n"
       "the standard output of `sh -c CMD` run with the payload on its standard input (a\n"
       "non-zero exit hands the request back for a retry). Stops after N requests, after T ms\n"
       "without one, or on Ctrl-C. Prints one line per request: 'replied', 'orphaned' (the\n"
       "requester is gone) or 'failed'.\n",
       {"exec", "count", "timeout-ms"},
       {},
       1,
       1},
      {"lookup",
       "usage: sluice lookup QUEUE\n"
       "\n"
       "Prints the queue's id, type, partition count and maximum message size.\n",
       {},
       {},
       1,
       1},
      {"ping",
       "usage: sluice ping [--count N]\n"
       "\n"
       "Completes the heartbeat handshake and measures heartbeat round trips.\n"
       "\n"
       "  --count N         round trips (default 1)\n",
       {"count"},
       {},
       0,
       0},
  };
  return commands;
}

struct Args {
  const Command* command = nullptr;
  std::map<std::string, std::string> flags;
  std::vector<std::string> positional;
  std::string server = DefaultServer();
  size_t frame_bytes = p::kDefaultFrameBytes;
  bool help = false;
};

int Usage(const std::string& msg, const Command* c) {
  std::fprintf(stderr, "sluice: %s\n", msg.c_str());
  std::fprintf(stderr, "%s", c != nullptr ? c->help : kMainHelp);
  return kExitUsage;
}

// Parses argv; returns an exit code when the program should stop (help, usage error).
std::optional<int> Parse(int argc, char** argv, Args* a) {
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) rest.emplace_back(argv[i]);
  std::vector<std::string> pending;  // flags of the command, before we know it
  for (size_t i = 0; i < rest.size(); ++i) {
    std::string arg = rest[i];
    if (arg == "-h" || arg == "--help") {
      a->help = true;
      continue;
    }
    if (arg.rfind("--", 0) == 0) {
      std::string name = arg.substr(2), value;
      bool has_value = false;
      if (size_t eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      const bool global = name == "server" || name == "frame-bytes";
      const bool is_bool = a->command != nullptr && a->command->bools.count(name) != 0;
      if (!has_value && !is_bool) {
        if (i + 1 >= rest.size()) return Usage("option --" + name + " needs a value", a->command);
        value = rest[++i];
      }
      if (global) {
        if (name == "server") a->server = value;
        if (name == "frame-bytes" && (!absl::SimpleAtoi(value, &a->frame_bytes) ||
                                      a->frame_bytes < 512 || a->frame_bytes > p::kMaxFrameBytes)) {
          return Usage("--frame-bytes must be 512..65507", a->command);
        }
        continue;
      }
      if (a->command == nullptr) return Usage("unknown option --" + name, nullptr);
      if (a->command->flags.count(name) == 0 && !is_bool) {
        return Usage("unknown option --" + name + " for " + a->command->name, a->command);
      }
      a->flags[name] = value;
      continue;
    }
    if (a->command == nullptr) {
      for (const Command& c : Commands()) {
        if (arg == c.name) a->command = &c;
      }
      if (a->command == nullptr) return Usage("unknown command '" + arg + "'", nullptr);
      continue;
    }
    a->positional.push_back(arg);
  }
  if (a->help) {
    std::printf("%s%s", a->command != nullptr ? a->command->help : kMainHelp, kExitCodes);
    return kExitOk;
  }
  if (a->command == nullptr) return Usage("no command given", nullptr);
  if (a->positional.size() < a->command->min_positional) {
    return Usage("missing arguments", a->command);
  }
  if (a->positional.size() > a->command->max_positional) {
    return Usage("too many arguments", a->command);
  }
  return std::nullopt;
}

// Integer option with bounds; sets *exit on a bad value.
template <class T>
T Flag(const Args& a, const std::string& name, T def, T lo, T hi, std::optional<int>* exit) {
  auto it = a.flags.find(name);
  if (it == a.flags.end()) return def;
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v) || v < static_cast<int64_t>(lo) ||
      v > static_cast<int64_t>(hi)) {
    *exit = Usage(absl::StrFormat("--%s must be a number in %d..%d", name, static_cast<int64_t>(lo),
                                  static_cast<int64_t>(hi)),
                  a.command);
    return def;
  }
  return static_cast<T>(v);
}

int ExitFor(const absl::Status& s) {
  if (s.ok()) return kExitOk;
  if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) return kExitUnreachable;
  return kExitFailed;
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
  return ExitFor(s);
}

absl::StatusOr<std::unique_ptr<Connection>> Connect(const Args& a) {
  ConnectionOptions o;
  o.server = a.server;
  o.max_frame_bytes = a.frame_bytes;
  return Connection::Connect(o);
}

// ---- produce ------------------------------------------------------------------------------------

int Produce(const Args& a, Connection& conn) {
  std::optional<int> exit;
  const std::string& queue = a.positional[0];
  const uint64_t count = Flag<uint64_t>(a, "count", 0, 0, UINT64_MAX / 2, &exit);
  const size_t size = Flag<size_t>(a, "size", 100, 0, p::kMaxMessageBytes, &exit);
  const uint64_t rate = Flag<uint64_t>(a, "rate", 0, 0, 100'000'000, &exit);
  const int partition = Flag<int>(a, "partition", -1, 0, p::kMaxPartitions - 1, &exit);
  const uint8_t priority = Flag<uint8_t>(a, "priority", 0, 0, p::kMaxPriority, &exit);
  const uint32_t delay = Flag<uint32_t>(a, "delay-ms", 0, 0, p::kMaxDelayMs, &exit);
  const uint32_t ttl = Flag<uint32_t>(a, "ttl-ms", 0, 0, UINT32_MAX, &exit);
  const int linger = Flag<int>(a, "linger-ms", 1, 0, 10'000, &exit);
  const int timeout = Flag<int>(a, "timeout-ms", 30'000, 1, 3'600'000, &exit);
  if (exit) return *exit;
  const std::string key = a.flags.count("key") ? a.flags.at("key") : "";
  auto text = [&](const char* name) { return a.flags.count(name) ? a.flags.at(name) : ""; };
  const std::string group_id = text("group-id"), dedup_id = text("dedup-id");
  const std::string reply_to = text("reply-to"), correlation_id = text("correlation-id");
  std::vector<std::pair<std::string, std::string>> header_text;
  if (a.flags.count("header")) {
    for (absl::string_view kv : absl::StrSplit(a.flags.at("header"), ',')) {
      const size_t eq = kv.find('=');
      if (eq == absl::string_view::npos || eq == 0) {
        return Usage("--header takes KEY=VALUE[,KEY=VALUE...]", a.command);
      }
      header_text.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  std::vector<p::Header> headers;
  for (const auto& [k, v] : header_text) headers.push_back({k, v});
  for (const auto* field : {&group_id, &dedup_id, &reply_to, &correlation_id}) {
    if (field->size() > 255) return Usage("ids and names are at most 255 bytes", a.command);
  }

  std::ifstream file;
  std::istream* in = &std::cin;
  if (a.flags.count("file")) {
    file.open(a.flags.at("file"));
    if (!file) return Usage("cannot open --file " + a.flags.at("file"), a.command);
    in = &file;
  }
  ProducerOptions po;
  po.linger = absl::Milliseconds(linger);
  auto prod = Producer::Create(conn, queue, po);
  if (!prod.ok()) return Fail(prod.status());

  uint64_t attempted = 0, sent = 0, acked = 0, errors = 0, printed = 0;
  auto on_done = [&](const absl::Status& s, uint16_t, uint64_t) {
    if (s.ok()) {
      ++acked;
      return;
    }
    ++errors;
    if (printed++ < 10) std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
  };
  const std::string synthetic(size, 'x');
  const MonoNs start = NowNs();
  std::string line;
  while (g_stop == 0) {
    std::string_view payload;
    if (count > 0 || a.flags.count("count")) {
      if (attempted >= count) break;
      payload = synthetic;
    } else {
      if (!std::getline(*in, line)) break;
      payload = line;
    }
    if (rate > 0) {  // pace: message n leaves at start + n / rate
      const MonoNs due = start + static_cast<MonoNs>(sent * 1'000'000'000.0 / rate);
      while (NowNs() < due) (void)conn.Poll(absl::Nanoseconds(due - NowNs()));
    }
    ++attempted;
    OutgoingMessage m;
    m.payload = AsBytes(payload);
    m.key = key;
    if (partition >= 0) m.partition = static_cast<uint16_t>(partition);
    m.priority = priority;
    m.delay_ms = delay;
    m.ttl_ms = ttl;
    m.group_id = group_id;
    m.reply_to = reply_to;
    m.correlation_id = correlation_id;
    m.headers = headers;
    std::string dedup;
    if (!dedup_id.empty()) {
      // One id per message: the first message gets D itself, later ones D-<n>.
      dedup = attempted == 1 ? dedup_id : absl::StrCat(dedup_id, "-", attempted - 1);
      m.dedup_id = dedup;
    }
    absl::Status s;
    while (absl::IsResourceExhausted(s = (*prod)->Send(m, on_done))) {
      (void)conn.Poll(absl::Milliseconds(10));  // window full: let acknowledgements in
    }
    if (!s.ok()) {
      ++errors;
      if (printed++ < 10) std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
      continue;
    }
    ++sent;
    (void)conn.Poll(absl::ZeroDuration());
  }
  absl::Status flushed = (*prod)->Flush(absl::Milliseconds(timeout));
  const double secs = static_cast<double>(NowNs() - start) / 1e9;
  if (printed > 10) std::fprintf(stderr, "sluice: ... %lu more errors\n", printed - 10);
  std::printf("sent %lu, acked %lu, errors %lu, %.0f msgs/s (%.3f s)\n", sent, acked,
              errors + (*prod)->pending(), secs > 0 ? static_cast<double>(acked) / secs : 0.0, secs);
  if (!flushed.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(flushed.message()).c_str());
    return acked == 0 ? kExitUnreachable : kExitFailed;
  }
  return errors > 0 ? kExitFailed : kExitOk;
}

// ---- consume ------------------------------------------------------------------------------------

// consume --group: a member of a consumer group (client/group_consumer.h).
int ConsumeGroup(const Args& a, Connection& conn, const StreamConsumerOptions& so, uint64_t count,
                 int64_t timeout_ms, const std::string& format) {
  std::optional<int> exit;
  const int64_t session = Flag<int64_t>(a, "session-ms", 10'000, p::kMinSessionTimeoutMs,
                                        p::kMaxSessionTimeoutMs, &exit);
  if (exit) return *exit;
  if (so.partition) return Usage("--partition and --group: the group assigns partitions", a.command);
  if (so.start.kind == p::StartKind::kCommitted) {
    return Usage("with --group, --from says where partitions the group never committed start "
                 "(earliest, latest, an offset or @timestamp); committed offsets are always used",
                 a.command);
  }
  const std::string& queue = a.positional[0];
  GroupConsumerOptions o;
  o.group = a.flags.at("group");
  o.start = so.start;
  o.window = so.window;
  o.session_timeout = absl::Milliseconds(session);
  uint64_t got = 0;
  MonoNs last = NowNs();
  // Past --count, messages handed over are not printed: the first of them per partition is
  // where the group resumes (offset order per partition), so that is what Close commits.
  std::map<uint16_t, uint64_t> unprinted;
  auto gc = GroupConsumer::Create(conn, queue, o, [&](const ReceivedMessage& m) {
    if (count > 0 && got >= count) {
      unprinted.try_emplace(m.partition, m.offset);
      return;
    }
    ++got;
    last = NowNs();
    if (format == "offsets") std::printf("%u %lu ", m.partition, m.offset);
    std::fwrite(m.payload.data(), 1, m.payload.size(), stdout);
    std::fputc('\n', stdout);
  });
  if (!gc.ok()) return Fail(gc.status());
  std::fprintf(stderr, "sluice: joined group '%s' of '%s' as member %016lx: generation %u\n",
               o.group.c_str(), queue.c_str(), (*gc)->member_id(), (*gc)->generation());
  uint32_t generation = (*gc)->generation();
  while (g_stop == 0 && (count == 0 || got < count)) {
    if (timeout_ms > 0 && NowNs() - last >= timeout_ms * 1'000'000) break;
    if (absl::Status s = (*gc)->Poll(absl::Milliseconds(100)); !s.ok()) return Fail(s);
    if ((*gc)->generation() != generation) {
      generation = (*gc)->generation();
      std::string parts;
      for (uint16_t part : (*gc)->assignment()) absl::StrAppend(&parts, parts.empty() ? "" : ",", part);
      std::fprintf(stderr, "sluice: group '%s' rebalanced: generation %u, %u members, "
                           "partitions [%s]\n",
                   o.group.c_str(), generation, (*gc)->members(), parts.c_str());
    }
    std::fflush(stdout);
  }
  std::fflush(stdout);
  // Commit exactly what was printed, then leave (the group rebalances at once).
  if (absl::Status s = (*gc)->Close(&unprinted); !s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
  }
  if (count > 0 && got < count && g_stop == 0) {
    std::fprintf(stderr, "sluice: consume from '%s': %lu of %lu messages before the timeout\n",
                 queue.c_str(), got, count);
    return kExitUnreachable;
  }
  return kExitOk;
}

int Group(const Args& a, Connection& conn) {
  auto d = DescribeGroup(conn, a.positional[0], a.positional[1]);
  if (!d.ok()) return Fail(d.status());
  auto q = conn.Lookup(a.positional[0]);
  if (!q.ok()) return Fail(q.status());
  std::printf("group '%s' of '%s': generation %u, %u member%s\n", a.positional[1].c_str(),
              a.positional[0].c_str(), d->generation, d->members, d->members == 1 ? "" : "s");
  for (uint16_t part = 0; part < q->partitions; ++part) {
    auto it = d->committed.find(part);
    if (it == d->committed.end()) {
      std::printf("partition %u: -\n", part);
    } else {
      std::printf("partition %u: %lu\n", part, it->second);
    }
  }
  return kExitOk;
}

int Consume(const Args& a, Connection& conn) {
  std::optional<int> exit;
  const std::string& queue = a.positional[0];
  const int partition = Flag<int>(a, "partition", -1, 0, p::kMaxPartitions - 1, &exit);
  const uint64_t count = Flag<uint64_t>(a, "count", 0, 0, UINT64_MAX / 2, &exit);
  const int64_t timeout = Flag<int64_t>(a, "timeout-ms", 0, 0, INT64_MAX / 1'000'000, &exit);
  const uint32_t window = Flag<uint32_t>(a, "window", 256, 1, 1 << 20, &exit);
  if (exit) return *exit;
  StreamConsumerOptions o;
  if (partition >= 0) o.partition = static_cast<uint16_t>(partition);
  if (a.flags.count("from")) {
    auto start = ParseStartPosition(a.flags.at("from"));
    if (!start.ok()) return Usage(std::string(start.status().message()), a.command);
    o.start = *start;
  }
  o.window = window;
  const std::string format = a.flags.count("format") ? a.flags.at("format") : "payload";
  if (format != "payload" && format != "offsets") {
    return Usage("--format is payload or offsets", a.command);
  }
  if (a.flags.count("group")) return ConsumeGroup(a, conn, o, count, timeout, format);
  if (o.start.kind == p::StartKind::kCommitted) {
    return Usage("--from committed needs --group (a group member resumes from its group's "
                 "committed offsets)",
                 a.command);
  }
  uint64_t got = 0;
  MonoNs last = NowNs();
  auto c = StreamConsumer::Create(conn, queue, o, [&](const ReceivedMessage& m) {
    if (count > 0 && got >= count) return;
    ++got;
    last = NowNs();
    if (format == "offsets") std::printf("%u %lu ", m.partition, m.offset);
    std::fwrite(m.payload.data(), 1, m.payload.size(), stdout);
    std::fputc('\n', stdout);
  });
  if (!c.ok()) return Fail(c.status());
  while (g_stop == 0 && (count == 0 || got < count)) {
    if (timeout > 0 && NowNs() - last >= timeout * 1'000'000) break;
    if (absl::Status s = conn.Poll(absl::Milliseconds(100)); !s.ok()) return Fail(s);
    std::fflush(stdout);
  }
  std::fflush(stdout);
  if (const uint64_t n = (*c)->stats().resubscribes; n > 0) {
    std::fprintf(stderr, "sluice: consume from '%s': subscribed again %lu time(s) (the server "
                 "changed, or restarted and lost the subscription)\n", queue.c_str(), n);
  }
  if (count > 0 && got < count && g_stop == 0) {
    std::fprintf(stderr, "sluice: consume from '%s': %lu of %lu messages before the timeout\n",
                 queue.c_str(), got, count);
    return kExitUnreachable;
  }
  return kExitOk;
}

// ---- work queues --------------------------------------------------------------------------------

int Receive(const Args& a, Connection& conn) {
  std::optional<int> exit;
  const uint16_t max = Flag<uint16_t>(a, "max", 1, 1, p::kMaxReceiveMessages, &exit);
  const int64_t vis = Flag<int64_t>(a, "visibility-ms", -1, 0, p::kMaxVisibilityMs, &exit);
  const int64_t wait = Flag<int64_t>(a, "wait-ms", -1, 0, p::kMaxWaitMs, &exit);
  const int partition = Flag<int>(a, "partition", -1, 0, p::kMaxPartitions - 1, &exit);
  if (exit) return *exit;
  auto wc = WorkConsumer::Create(conn, a.positional[0]);
  if (!wc.ok()) return Fail(wc.status());
  ReceiveOptions o;
  o.max_messages = max;
  if (vis >= 0) o.visibility = absl::Milliseconds(vis);
  if (wait >= 0) o.wait = absl::Milliseconds(wait);  // else the queue's receive_wait_ms
  if (partition >= 0) o.partition = static_cast<uint16_t>(partition);
  auto got = (*wc)->ReceiveSync(o);
  if (!got.ok()) return Fail(got.status());
  std::vector<Receipt> receipts;
  const bool show = a.flags.count("headers") != 0;
  auto attr = [](const char* name, std::string_view v) {
    if (!v.empty()) std::printf("  %s: %.*s\n", name, static_cast<int>(v.size()), v.data());
  };
  for (const OwnedMessage& m : *got) {
    const std::string r = FormatReceipt(ReceiptOf(*m));
    std::printf("%s\t", r.c_str());
    std::fwrite(m->payload.data(), 1, m->payload.size(), stdout);
    std::fputc('\n', stdout);
    if (show) {
      std::printf("  receive_count: %u\n  priority: %u\n  partition: %u\n  offset: %lu\n",
                  m->receive_count, m->priority, m->partition, m->offset);
      attr("key", m->key);
      attr("group_id", m->group_id);
      attr("dedup_id", m->dedup_id);
      attr("reply_to", m->reply_to);
      attr("correlation_id", m->correlation_id);
      for (const p::Header& h : m->headers) {
        std::printf("  header %.*s: %.*s\n", static_cast<int>(h.key.size()), h.key.data(),
                    static_cast<int>(h.value.size()), h.value.data());
      }
    }
    receipts.push_back(ReceiptOf(*m));
  }
  std::fflush(stdout);
  if (!a.flags.count("delete") || receipts.empty()) return kExitOk;
  auto results = (*wc)->DeleteSync(receipts);
  if (!results.ok()) return Fail(results.status());
  int rc = kExitOk;
  for (const absl::Status& s : *results) {
    if (!s.ok()) rc = std::max(rc, Fail(s));
  }
  return rc;
}

enum class ReceiptVerb { kDelete, kNack, kExtend };

int ReceiptCommand(const Args& a, Connection& conn, ReceiptVerb verb) {
  std::optional<int> exit;
  const uint32_t delay = Flag<uint32_t>(a, "delay-ms", 0, 0, p::kMaxDelayMs, &exit);
  const int64_t vis = Flag<int64_t>(a, "visibility-ms", -1, 0, p::kMaxVisibilityMs, &exit);
  if (exit) return *exit;
  if (verb == ReceiptVerb::kExtend && vis < 0) {
    return Usage("extend needs --visibility-ms", a.command);
  }
  std::vector<Receipt> receipts;
  for (size_t i = 1; i < a.positional.size(); ++i) {
    auto r = ParseReceipt(a.positional[i]);
    if (!r.ok()) return Usage(std::string(r.status().message()), a.command);
    receipts.push_back(*r);
  }
  auto wc = WorkConsumer::Create(conn, a.positional[0]);
  if (!wc.ok()) return Fail(wc.status());
  auto results = verb == ReceiptVerb::kNack
                     ? (*wc)->NackSync(receipts, absl::Milliseconds(delay))
                 : verb == ReceiptVerb::kExtend
                     ? (*wc)->ExtendSync(receipts, absl::Milliseconds(vis))
                     : (*wc)->DeleteSync(receipts);
  if (!results.ok()) return Fail(results.status());
  int rc = kExitOk;
  for (size_t i = 0; i < results->size(); ++i) {
    if ((*results)[i].ok()) {
      std::printf("ok %s\n", FormatReceipt(receipts[i]).c_str());
    } else {
      rc = std::max(rc, Fail((*results)[i]));
    }
  }
  return rc;
}

int RedriveCommand(const Args& a, Connection& conn) {
  std::optional<int> exit;
  const uint64_t max = Flag<uint64_t>(a, "max", 0, 0, UINT64_MAX / 2, &exit);
  if (exit) return *exit;
  RedriveOptions o;
  o.to = a.flags.count("to") ? a.flags.at("to") : "";
  o.max = max;
  absl::Status first;
  auto r = Redrive(conn, a.positional[0], o, &first);
  if (!r.ok()) return Fail(r.status());
  std::printf("moved %lu, no target %lu, failed %lu\n", r->moved, r->no_target, r->failed);
  if (!first.ok()) std::fprintf(stderr, "sluice: %s\n", std::string(first.message()).c_str());
  return r->failed > 0 ? kExitFailed : kExitOk;
}

int RequestCommand(const Args& a, Connection& conn) {
  std::optional<int> exit;
  const int64_t timeout = Flag<int64_t>(a, "timeout-ms", 5000, 1, 3'600'000, &exit);
  if (exit) return *exit;
  auto rq = Requester::Create(conn);
  if (!rq.ok()) return Fail(rq.status());
  auto one = [&](std::string_view payload) -> int {
    auto reply = (*rq)->Request(a.positional[0], AsBytes(payload), absl::Milliseconds(timeout));
    if (!reply.ok()) {
      return Fail(absl::Status(reply.status().code(),
                               absl::StrCat(Context("request to", a.positional[0]), ": ",
                                            reply.status().message())));
    }
    std::fwrite((*reply)->payload.data(), 1, (*reply)->payload.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
    return kExitOk;
  };
  if (a.positional.size() == 2) return one(a.positional[1]);
  int rc = kExitOk;
  for (std::string line; g_stop == 0 && std::getline(std::cin, line);) rc = std::max(rc, one(line));
  return rc;
}

// Runs `sh -c cmd` with `input` on its stdin; its stdout (one trailing newline removed).
absl::StatusOr<std::string> RunFilter(const std::string& cmd, std::string_view input) {
  int in[2], out[2];
  if (pipe(in) != 0 || pipe(out) != 0) return absl::InternalError("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  // Requests are small (one datagram): the pipe holds the whole input before the child reads.
  for (size_t done = 0; done < input.size();) {
    const ssize_t n = write(in[1], input.data() + done, input.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(in[1]);
  std::string result;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) result.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::AbortedError(absl::StrCat("--exec '", cmd, "' failed"));
  }
  if (!result.empty() && result.back() == '\n') result.pop_back();
  return result;
}

int RespondCommand(const Args& a, Connection& conn) {
  std::optional<int> exit;
  const uint64_t count = Flag<uint64_t>(a, "count", 0, 0, UINT64_MAX / 2, &exit);
  const int64_t timeout = Flag<int64_t>(a, "timeout-ms", 0, 0, INT64_MAX / 1'000'000, &exit);
  if (exit) return *exit;
  const std::string cmd = a.flags.count("exec") ? a.flags.at("exec") : "";
  std::signal(SIGPIPE, SIG_IGN);  // a --exec command may exit without reading its input
  auto rs = Responder::Create(
      conn, a.positional[0],
      [&](const ReceivedMessage& m) -> absl::StatusOr<std::string> {
        if (cmd.empty()) return std::string(m.payload_view());
        return RunFilter(cmd, m.payload_view());
      },
      {.batch = 1});
  if (!rs.ok()) return Fail(rs.status());
  uint64_t handled = 0;
  MonoNs last = NowNs();
  ResponderStats before = (*rs)->stats();
  while (g_stop == 0 && (count == 0 || handled < count)) {
    if (timeout > 0 && NowNs() - last >= timeout * 1'000'000) break;
    auto n = (*rs)->Serve(absl::Milliseconds(200));
    if (!n.ok()) return Fail(n.status());
    if (*n == 0) continue;
    handled += *n;
    last = NowNs();
    const ResponderStats& now = (*rs)->stats();
    const char* what = now.replied > before.replied     ? "replied"
                       : now.orphaned > before.orphaned ? "orphaned"
                                                        : "failed";
    std::printf("%s\n", what);
    std::fflush(stdout);
    before = now;
  }
  return kExitOk;
}

int Lookup(const Args& a, Connection& conn) {
  auto q = conn.Lookup(a.positional[0]);
  if (!q.ok()) return Fail(q.status());
  std::printf("queue '%s': id %u, %s, %u partition%s, max message %u bytes\n", q->name.c_str(),
              q->queue_id, q->type == p::QueueType::kStream ? "stream" : "work queue",
              q->partitions, q->partitions == 1 ? "" : "s", q->max_message_bytes);
  return kExitOk;
}

int Ping(const Args& a, Connection& conn) {
  std::optional<int> exit;
  const int count = Flag<int>(a, "count", 1, 1, 1'000'000, &exit);
  if (exit) return *exit;
  for (int i = 0; i < count && g_stop == 0; ++i) {
    auto rtt = conn.Ping();
    if (!rtt.ok()) return Fail(rtt.status());
    std::printf("heartbeat reply from %s: time=%.3f ms\n", conn.server().c_str(),
                absl::ToDoubleMilliseconds(*rtt));
    std::fflush(stdout);
    if (i + 1 < count) (void)conn.PollUntil([] { return g_stop != 0; }, absl::Seconds(1));
  }
  return kExitOk;
}

int Main(int argc, char** argv) {
  Args a;
  if (std::optional<int> rc = Parse(argc, argv, &a)) return *rc;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  auto conn = Connect(a);
  if (!conn.ok()) return Fail(conn.status());
  const std::string cmd = a.command->name;
  if (cmd == "produce") return Produce(a, **conn);
  if (cmd == "consume") return Consume(a, **conn);
  if (cmd == "receive") return Receive(a, **conn);
  if (cmd == "delete") return ReceiptCommand(a, **conn, ReceiptVerb::kDelete);
  if (cmd == "nack") return ReceiptCommand(a, **conn, ReceiptVerb::kNack);
  if (cmd == "extend") return ReceiptCommand(a, **conn, ReceiptVerb::kExtend);
  if (cmd == "redrive") return RedriveCommand(a, **conn);
  if (cmd == "request") return RequestCommand(a, **conn);
  if (cmd == "respond") return RespondCommand(a, **conn);
  if (cmd == "lookup") return Lookup(a, **conn);
  if (cmd == "group") return Group(a, **conn);
  return Ping(a, **conn);
}

}  // namespace
}  // namespace sluice::client::cli

int main(int argc, char** argv) { return sluice::client::cli::Main(argc, argv); }
