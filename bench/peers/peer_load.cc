// sluice-peer-load: the produce -> ack load of bench/run against the peers (DESIGN §9), through
// each peer's own client protocol on a kernel TCP socket:
//
//   redis     XADD to a stream via hiredis (pipelined); the reply is the "ack". Durability is the
//             server's appendfsync (always ~ sluice dsync, everysec ~ sluice write), set by bench/run.
//   rabbitmq  basic.publish with publisher confirms via librabbitmq (rabbitmq-c) to a durable
//             quorum queue (Raft log, fsync before confirm ~ sluice dsync); persistent messages.
//   nats      JetStream publish (PUB with a reply inbox; the JetStream PubAck is the "ack") on a
//             file-storage stream. No Debian package ships a C client, so this speaks the NATS
//             text protocol itself (CONNECT/PUB/SUB/MSG/PING/PONG: a few lines).
//
// Closed loop: at most --window messages outstanding; latency = reply time - send time per
// message, into the same log-linear histogram as sluice-loadgen, warm-up excluded. The JSON has
// sluice-loadgen's shape (throughput.messages_per_s, latency_ns.p50..., counts, cpu_share) so that
// bench/run treats every row alike. One thread; its CPU share is measured like the loadgen's.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <hiredis/hiredis.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "bench/loadgen/histogram.h"

namespace {

using sluice::bench::LogLinearHistogram;

uint64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1'000'000'000ull + uint64_t(t.tv_nsec);
}

double ThreadCpuS() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

struct Options {
  std::string peer;                 // redis | rabbitmq | nats
  std::string host = "127.0.0.1";
  int port = 0;
  uint32_t size = 64;
  uint32_t window = 64;
  double duration_s = 5;
  double warmup_s = 1;
  std::string json;
  std::string label;
  int cpu = -1;
  std::string target = "bench";     // stream / queue / subject name
  uint64_t max_len = 100000;        // retention bound so that a long run does not fill memory
};

// The measurement shared by every peer: FIFO of send stamps (every peer here answers a single
// connection's requests in order), histogram, counters.
struct Meter {
  uint64_t t_measure = 0, t_end = 0;
  LogLinearHistogram hist;
  uint64_t sent = 0, acked = 0, measured_acked = 0, errors = 0;
  double cpu0 = 0, cpu1 = 0, wall0 = 0, wall1 = 0;
  bool cpu_started = false, cpu_stopped = false;
  std::string error;

  void Start(const Options& o) {
    const uint64_t t0 = NowNs();
    t_measure = t0 + uint64_t(o.warmup_s * 1e9);
    t_end = t_measure + uint64_t(o.duration_s * 1e9);
  }
  bool Sending(uint64_t now) {
    if (!cpu_started && now >= t_measure) {
      cpu_started = true;
      cpu0 = ThreadCpuS();
      wall0 = now * 1e-9;
    }
    if (now >= t_end && !cpu_stopped) {
      cpu_stopped = true;
      cpu1 = ThreadCpuS();
      wall1 = now * 1e-9;
    }
    return now < t_end && error.empty();
  }
  void Ack(uint64_t stamp, uint64_t now, bool ok) {
    if (!ok) {
      ++errors;
      return;
    }
    ++acked;
    if (now >= t_measure && now < t_end) ++measured_acked;
    if (stamp >= t_measure && stamp < t_end) hist.Record(now - stamp);
  }
};

// ---------------------------------------------------------------------------------------------
// Redis Streams (hiredis, pipelined XADD).

void RunRedis(const Options& o, Meter& m) {
  redisContext* c = redisConnect(o.host.c_str(), o.port);
  if (c == nullptr || c->err) {
    m.error = std::string("redis connect: ") + (c ? c->errstr : "out of memory");
    return;
  }
  std::string payload(o.size, 'x');
  const std::string maxlen = std::to_string(o.max_len);
  redisReply* r = static_cast<redisReply*>(redisCommand(c, "DEL %s", o.target.c_str()));
  if (r == nullptr) {
    m.error = std::string("redis DEL: ") + c->errstr;
    redisFree(c);
    return;
  }
  freeReplyObject(r);
  std::deque<uint64_t> stamps;
  m.Start(o);
  for (;;) {
    const uint64_t now = NowNs();
    const bool sending = m.Sending(now);
    while (sending && stamps.size() < o.window) {
      redisAppendCommand(c, "XADD %s MAXLEN ~ %s * d %b", o.target.c_str(), maxlen.c_str(),
                         payload.data(), payload.size());
      stamps.push_back(NowNs());
      ++m.sent;
    }
    if (stamps.empty()) break;
    void* reply = nullptr;
    if (redisGetReply(c, &reply) != REDIS_OK) {
      m.error = std::string("redis: ") + c->errstr;
      break;
    }
    auto* rr = static_cast<redisReply*>(reply);
    const uint64_t t = NowNs();
    m.Ack(stamps.front(), t, rr->type != REDIS_REPLY_ERROR);
    if (rr->type == REDIS_REPLY_ERROR && m.error.empty()) m.error = std::string("XADD: ") + rr->str;
    stamps.pop_front();
    freeReplyObject(rr);
    // Drain whatever else is already buffered without blocking again.
  }
  redisFree(c);
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ (rabbitmq-c): quorum queue, publisher confirms.

bool AmqpOk(amqp_rpc_reply_t r, const char* what, std::string* err) {
  if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
  char buf[256];
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
    std::snprintf(buf, sizeof buf, "%s: %s", what, amqp_error_string2(r.library_error));
  } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
    std::snprintf(buf, sizeof buf, "%s: channel closed %u %.*s", what, m->reply_code,
                  int(m->reply_text.len), static_cast<const char*>(m->reply_text.bytes));
  } else if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
    std::snprintf(buf, sizeof buf, "%s: connection closed %u %.*s", what, m->reply_code,
                  int(m->reply_text.len), static_cast<const char*>(m->reply_text.bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%s: server error 0x%x", what, r.reply.id);
  }
  *err = buf;
  return false;
}

void RunRabbit(const Options& o, Meter& m) {
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t* sock = amqp_tcp_socket_new(conn);
  if (sock == nullptr || amqp_socket_open(sock, o.host.c_str(), o.port) != AMQP_STATUS_OK) {
    m.error = "rabbitmq: cannot connect";
    amqp_destroy_connection(conn);
    return;
  }
  const int fd = amqp_get_sockfd(conn);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!AmqpOk(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest"),
              "login", &m.error)) {
    amqp_destroy_connection(conn);
    return;
  }
  amqp_channel_open(conn, 1);
  if (!AmqpOk(amqp_get_rpc_reply(conn), "channel.open", &m.error)) return;
  amqp_confirm_select(conn, 1);
  if (!AmqpOk(amqp_get_rpc_reply(conn), "confirm.select", &m.error)) return;
  amqp_table_entry_t args[3];
  args[0].key = amqp_cstring_bytes("x-queue-type");
  args[0].value.kind = AMQP_FIELD_KIND_UTF8;
  args[0].value.value.bytes = amqp_cstring_bytes("quorum");
  args[1].key = amqp_cstring_bytes("x-max-length");
  args[1].value.kind = AMQP_FIELD_KIND_I64;
  args[1].value.value.i64 = static_cast<int64_t>(o.max_len);
  args[2].key = amqp_cstring_bytes("x-overflow");
  args[2].value.kind = AMQP_FIELD_KIND_UTF8;
  args[2].value.value.bytes = amqp_cstring_bytes("drop-head");
  amqp_table_t table{3, args};
  amqp_queue_declare(conn, 1, amqp_cstring_bytes(o.target.c_str()), 0, /*durable=*/1, 0, 0, table);
  if (!AmqpOk(amqp_get_rpc_reply(conn), "queue.declare (quorum)", &m.error)) return;
  amqp_queue_purge(conn, 1, amqp_cstring_bytes(o.target.c_str()));
  if (!AmqpOk(amqp_get_rpc_reply(conn), "queue.purge", &m.error)) return;

  std::string payload(o.size, 'x');
  amqp_bytes_t body{payload.size(), payload.data()};
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = 2;  // persistent
  std::deque<uint64_t> stamps;  // stamps[i] is delivery tag first_tag + i
  uint64_t first_tag = 1;
  m.Start(o);
  for (;;) {
    const uint64_t now = NowNs();
    const bool sending = m.Sending(now);
    while (sending && stamps.size() < o.window) {
      if (amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(o.target.c_str()), 0,
                             0, &props, body) != AMQP_STATUS_OK) {
        m.error = "basic.publish failed";
        break;
      }
      stamps.push_back(NowNs());
      ++m.sent;
    }
    if (stamps.empty() || !m.error.empty()) break;
    amqp_frame_t frame;
    timeval tv{5, 0};
    const int st = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
    if (st == AMQP_STATUS_TIMEOUT) {
      m.error = "no confirm within 5 s";
      break;
    }
    if (st != AMQP_STATUS_OK) {
      m.error = std::string("wait frame: ") + amqp_error_string2(st);
      break;
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    const uint64_t t = NowNs();
    bool ok;
    uint64_t tag;
    bool multiple;
    if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      auto* a = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
      ok = true, tag = a->delivery_tag, multiple = a->multiple;
    } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
      auto* a = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
      ok = false, tag = a->delivery_tag, multiple = a->multiple;
    } else {
      continue;  // basic.return etc.: not ours to time
    }
    if (tag < first_tag || tag >= first_tag + stamps.size()) continue;
    if (multiple) {
      while (first_tag <= tag) {
        m.Ack(stamps.front(), t, ok);
        stamps.pop_front();
        ++first_tag;
      }
    } else {
      // A single confirm may arrive out of order; confirms here come in order for one channel,
      // so anything before it was confirmed by an earlier frame.
      while (first_tag <= tag) {
        m.Ack(stamps.front(), t, ok);
        stamps.pop_front();
        ++first_tag;
      }
    }
  }
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream (text protocol on a TCP socket).

class NatsConn {
 public:
  bool Connect(const Options& o, std::string* err) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(o.port));
    inet_pton(AF_INET, o.host.c_str(), &a.sin_addr);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      *err = std::string("nats connect: ") + std::strerror(errno);
      return false;
    }
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string line;
    if (!ReadLine(&line) || line.rfind("INFO ", 0) != 0) {
      *err = "nats: no INFO from the server";
      return false;
    }
    if (line.find("\"jetstream\":true") == std::string::npos) {
      *err = "nats: server runs without JetStream";
      return false;
    }
    out_ += "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}"
            "\r\nSUB _INBOX.sl.> 1\r\n";
    return Flush(err);
  }
  void Pub(std::string_view subject, std::string_view reply, std::string_view payload) {
    out_ += "PUB ";
    out_ += subject;
    out_ += ' ';
    out_ += reply;
    out_ += ' ';
    out_ += std::to_string(payload.size());
    out_ += "\r\n";
    out_ += payload;
    out_ += "\r\n";
  }
  bool Flush(std::string* err) {
    size_t off = 0;
    while (off < out_.size()) {
      ssize_t n = write(fd_, out_.data() + off, out_.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        *err = std::string("nats write: ") + std::strerror(errno);
        return false;
      }
      off += size_t(n);
    }
    out_.clear();
    return true;
  }
  // Next MSG: its subject and payload (PING answered, +OK skipped). False on error/close.
  bool NextMsg(std::string* subject, std::string* payload, std::string* err) {
    std::string line;
    for (;;) {
      if (!ReadLine(&line)) {
        *err = "nats: connection closed";
        return false;
      }
      if (line == "PING") {
        out_ += "PONG\r\n";
        if (!Flush(err)) return false;
        continue;
      }
      if (line.rfind("-ERR", 0) == 0) {
        *err = "nats: " + line;
        return false;
      }
      if (line.rfind("MSG ", 0) != 0 && line.rfind("HMSG ", 0) != 0) continue;
      // MSG <subject> <sid> [reply] <#bytes>  |  HMSG <subject> <sid> [reply] <#hdr> <#total>
      std::vector<std::string_view> f;
      std::string_view s = line;
      while (!s.empty()) {
        size_t sp = s.find(' ');
        f.push_back(s.substr(0, sp));
        if (sp == std::string_view::npos) break;
        s.remove_prefix(sp + 1);
      }
      if (f.size() < 4) continue;
      *subject = std::string(f[1]);
      const size_t len = std::strtoul(std::string(f.back()).c_str(), nullptr, 10);
      if (!ReadN(len + 2, payload)) {
        *err = "nats: connection closed";
        return false;
      }
      payload->resize(len);
      return true;
    }
  }
  ~NatsConn() {
    if (fd_ >= 0) close(fd_);
  }

 private:
  bool Fill() {
    char buf[65536];
    ssize_t n;
    do n = read(fd_, buf, sizeof buf);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    in_.append(buf, size_t(n));
    return true;
  }
  bool ReadLine(std::string* line) {
    size_t nl;
    while ((nl = in_.find("\r\n", pos_)) == std::string::npos)
      if (!Fill()) return false;
    line->assign(in_, pos_, nl - pos_);
    pos_ = nl + 2;
    Compact();
    return true;
  }
  bool ReadN(size_t n, std::string* out) {
    while (in_.size() - pos_ < n)
      if (!Fill()) return false;
    out->assign(in_, pos_, n);
    pos_ += n;
    Compact();
    return true;
  }
  void Compact() {
    if (pos_ > 65536) {
      in_.erase(0, pos_);
      pos_ = 0;
    }
  }
  int fd_ = -1;
  std::string in_, out_;
  size_t pos_ = 0;
};

void RunNats(const Options& o, Meter& m) {
  NatsConn c;
  if (!c.Connect(o, &m.error)) return;
  // A file-storage stream on the subject; recreated per run (delete may fail if absent).
  const std::string stream = "SLUICEBENCH";
  std::string subj, payload;
  c.Pub("$JS.API.STREAM.DELETE." + stream, "_INBOX.sl.del", "");
  const std::string cfg = "{\"name\":\"" + stream + "\",\"subjects\":[\"" + o.target +
                          "\"],\"storage\":\"file\",\"retention\":\"limits\",\"max_msgs\":" +
                          std::to_string(o.max_len) + ",\"discard\":\"old\",\"num_replicas\":1}";
  c.Pub("$JS.API.STREAM.CREATE." + stream, "_INBOX.sl.create", cfg);
  if (!c.Flush(&m.error)) return;
  for (;;) {
    if (!c.NextMsg(&subj, &payload, &m.error)) return;
    if (subj == "_INBOX.sl.create") {
      if (payload.find("\"error\"") != std::string::npos) {
        m.error = "nats stream create: " + payload;
        return;
      }
      break;
    }
  }
  const std::string body(o.size, 'x');
  std::deque<uint64_t> stamps;  // stamps[i] is publish number first + i
  uint64_t first = 0, next = 0;
  m.Start(o);
  for (;;) {
    const uint64_t now = NowNs();
    const bool sending = m.Sending(now);
    while (sending && stamps.size() < o.window) {
      c.Pub(o.target, "_INBOX.sl." + std::to_string(next++), body);
      stamps.push_back(NowNs());
      ++m.sent;
    }
    if (stamps.empty()) break;
    if (!c.Flush(&m.error)) break;
    if (!c.NextMsg(&subj, &payload, &m.error)) break;
    const uint64_t t = NowNs();
    if (subj.rfind("_INBOX.sl.", 0) != 0) continue;
    const char* num = subj.c_str() + 10;
    if (*num < '0' || *num > '9') continue;
    const uint64_t n = std::strtoull(num, nullptr, 10);
    if (n < first || n >= first + stamps.size()) continue;
    const bool ok = payload.find("\"error\"") == std::string::npos;
    if (!ok && m.error.empty()) m.error = "nats publish: " + payload;
    // PubAcks of one stream leave in order; an ack for n confirms everything before it too
    // (a missing ack before n would be a server bug, counted as acked at this time).
    while (first <= n) {
      m.Ack(stamps.front(), t, ok);
      stamps.pop_front();
      ++first;
    }
  }
}

// ---------------------------------------------------------------------------------------------

const char* kUsage =
    "usage: sluice-peer-load --peer redis|rabbitmq|nats --port N [options]\n"
    "  --host A          server address (default 127.0.0.1)\n"
    "  --size B          payload bytes (default 64)\n"
    "  --window N        messages outstanding (default 64; 1 = unloaded latency)\n"
    "  --duration-s S    measured interval (default 5)   --warmup-s S  excluded before (1)\n"
    "  --target NAME     stream / queue / subject (default bench)\n"
    "  --max-len N       retention bound of the stream/queue (default 100000)\n"
    "  --cpu N           pin this process to CPU N\n"
    "  --json PATH       write the result (sluice-loadgen's JSON shape)   --label STR\n";

bool Parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) return false;
    const char* v = argv[++i];
    if (a == "--peer") o->peer = v;
    else if (a == "--host") o->host = v;
    else if (a == "--port") o->port = std::atoi(v);
    else if (a == "--size") o->size = uint32_t(std::strtoul(v, nullptr, 10));
    else if (a == "--window") o->window = uint32_t(std::strtoul(v, nullptr, 10));
    else if (a == "--duration-s") o->duration_s = std::atof(v);
    else if (a == "--warmup-s") o->warmup_s = std::atof(v);
    else if (a == "--target") o->target = v;
    else if (a == "--max-len") o->max_len = std::strtoull(v, nullptr, 10);
    else if (a == "--cpu") o->cpu = std::atoi(v);
    else if (a == "--json") o->json = v;
    else if (a == "--label") o->label = v;
    else return false;
  }
  return (o->peer == "redis" || o->peer == "rabbitmq" || o->peer == "nats") && o->port > 0 &&
         o->window > 0 && o->size > 0 && o->duration_s > 0;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!Parse(argc, argv, &o)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  Meter m;
  if (o.peer == "redis") RunRedis(o, m);
  else if (o.peer == "rabbitmq") RunRabbit(o, m);
  else RunNats(o, m);

  const double measured = o.duration_s;
  const double mps = m.measured_acked / measured;
  const double share = m.cpu_stopped && m.wall1 > m.wall0 ? (m.cpu1 - m.cpu0) / (m.wall1 - m.wall0) : 0;
  auto pct = [&](double p) { return double(m.hist.Percentile(p)); };
  std::printf("sluice-peer-load: %s size=%u window=%u: %.0f msg/s, p50 %.1f p99 %.1f p99.9 %.1f "
              "max %.1f us (%lu samples), errors %lu, cpu %.0f%%%s%s\n",
              o.peer.c_str(), o.size, o.window, mps, pct(50) / 1e3, pct(99) / 1e3, pct(99.9) / 1e3,
              double(m.hist.max()) / 1e3, m.hist.count(), m.errors, 100 * share,
              m.error.empty() ? "" : ", ERROR: ", m.error.c_str());
  if (!o.json.empty()) {
    std::string cdf = "[";
    for (double p : sluice::bench::kCdfPercentiles) {
      char b[64];
      std::snprintf(b, sizeof b, "%s[%g, %.0f]", cdf.size() > 1 ? ", " : "", p,
                    m.hist.count() ? pct(p) : 0.0);
      cdf += b;
    }
    cdf += "]";
    FILE* f = std::fopen(o.json.c_str(), "w");
    if (f == nullptr) {
      std::perror(o.json.c_str());
      return 1;
    }
    std::fprintf(f,
                 "{\n  \"label\": \"%s\",\n  \"mode\": \"produce\",\n  \"peer\": \"%s\",\n"
                 "  \"config\": {\"size\": %u, \"batch\": 1, \"window\": %u, \"rate\": 0, "
                 "\"duration_s\": %.3f, \"warmup_s\": %.3f, \"closed_loop\": true, \"cpu\": %d},\n"
                 "  \"throughput\": {\"messages_per_s\": %.1f, \"payload_mb_per_s\": %.3f},\n"
                 "  \"latency_ns\": {\"samples\": %lu, \"min\": %lu, \"p50\": %.0f, \"p90\": %.0f, "
                 "\"p99\": %.0f, \"p99_9\": %.0f, \"p99_99\": %.0f, \"max\": %lu, \"mean\": %.0f},\n"
                 "  \"cdf_ns\": %s,\n"
                 "  \"counts\": {\"messages_sent\": %lu, \"messages_ok\": %lu, "
                 "\"measured_messages_ok\": %lu, \"other_errors\": %lu, \"timeouts\": 0, "
                 "\"lost\": 0, \"error_frames\": 0},\n"
                 "  \"cpu_share\": %.3f,\n  \"aborted\": %s,\n  \"abort_reason\": \"%s\"\n}\n",
                 Escape(o.label).c_str(), o.peer.c_str(), o.size, o.window, o.duration_s,
                 o.warmup_s, o.cpu, mps, mps * o.size / 1e6, m.hist.count(), m.hist.min(), pct(50),
                 pct(90), pct(99), pct(99.9), pct(99.99), m.hist.max(), m.hist.mean(), cdf.c_str(), m.sent,
                 m.acked, m.measured_acked, m.errors, share, m.error.empty() ? "false" : "true",
                 Escape(m.error).c_str());
    std::fclose(f);
  }
  return m.error.empty() ? 0 : 3;
}
