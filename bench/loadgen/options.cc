#include "bench/loadgen/options.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string_view>
#include <vector>

namespace sluice::bench {
namespace {

constexpr const char* kUsage =
    "usage: sluice-loadgen [--produce | --produce-flood | --echo | --flood] [options]\n"
    "\n"
    "A DPDK load generator for sluiced over a memif link (client role). One lcore, its own EAL\n"
    "instance (--no-huge, unique --file-prefix). Bounded in time (and optionally in count); exits\n"
    "by itself.\n"
    "\n"
    "modes:\n"
    "  --produce (default)  LOOKUP --queue, then PRODUCE; produce->ack latency from TSC stamps\n"
    "  --echo               ICMP echo frames carrying a TSC; raw round trip of the path\n"
    "                       (dpdk-testpmd macswap/io bounces them; sluiced answers them)\n"
    "  --flood              count only: UDP frames as fast as the port takes them; counts returns\n"
    "  --produce-flood      PRODUCE frames of --batch x --size (producer id 0, one pre-built frame)\n"
    "                       as fast as the port takes them; counts messages acked OK. The\n"
    "                       server's capacity, the way --flood measures testpmd's (no latency)\n"
    "\n"
    "kernel UDP (no DPDK on the client; --produce only):\n"
    "  --udp                a plain UDP socket to --server-ip:--server-port (sendmmsg/recvmmsg,\n"
    "                       polled), bound to --local-port; --cpu pins the thread. The path the\n"
    "                       peers' clients take too (bench/run runs it against sluiced's TAP port)\n"
    "\n"
    "port and EAL:\n"
    "  --socket PATH        server's memif socket (default /run/sluice/bench.sock)\n"
    "  --vdev STR           full vdev string instead (net_memif...,role=client,...)\n"
    "  --cpu N              CPU of the load loop (default 0)\n"
    "  --file-prefix STR    EAL file prefix (default sluice-lg-<pid>)\n"
    "  --memory-mb N        EAL -m (default 512)\n"
    "  --mtu N              largest IP datagram (default 1500; the server's port mtu)\n"
    "  --local-ip A --local-port N     our address (default 198.18.1.2:40000)\n"
    "  --server-ip A --server-port N   sluiced's address (default 198.18.1.1:7411)\n"
    "  --connect-timeout-s S           link, ARP, LOOKUP: each at most S (default 10)\n"
    "\n"
    "produce:\n"
    "  --queue NAME[,NAME]  queue(s) to produce to (default bench); streams take turns over\n"
    "                       every queue x producer id x partition\n"
    "  --size B             payload bytes per message (default 64)\n"
    "  --batch N            messages per frame (default 1)\n"
    "  --rate R             messages/s, open loop from a schedule (latency from the scheduled\n"
    "                       send time: no coordinated omission); 0 = closed loop (default)\n"
    "  --window N           frames outstanding at most (default 256)\n"
    "  --producers N        idempotent producer ids (default 1)\n"
    "  --count N            stop sending after N messages (default 0: duration only)\n"
    "  --deliver            also SUBSCRIBE (from LATEST, every partition) and time produce ->\n"
    "                       deliver from a TSC stamp in each payload (--size >= 8)\n"
    "  --ack-timeout-ms T   a stream with no ack progress for T ms: in-flight counted lost and\n"
    "                       resent from the first unacknowledged sequence (default 500)\n"
    "\n"
    "echo / flood:\n"
    "  --frame-bytes B      Ethernet frame size without CRC (default 64, >= 60)\n"
    "  --window N           echo: frames outstanding at most (default 256; 1 = unloaded RTT)\n"
    "  --rate R             echo/flood: frames/s (0 = as fast as the window/port allows)\n"
    "\n"
    "all modes:\n"
    "  --duration-s S       measured interval (default 5)\n"
    "  --warmup-s S         excluded warm-up before it (default 1)\n"
    "  --drain-s S          wait at most S for the last replies (default 1)\n"
    "  --json PATH          write the result as JSON\n"
    "  --label STR          copied into the JSON\n";

bool ParseU64(const char* s, uint64_t max, uint64_t* out) {
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-') return false;
  *out = v;
  return true;
}

bool ParseDouble(const char* s, double* out) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !std::isfinite(v) || v < 0) return false;
  *out = v;
  return true;
}

}  // namespace

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kProduce: return "produce";
    case Mode::kEcho: return "echo";
    case Mode::kFlood: return "flood";
    case Mode::kProduceFlood: return "produce-flood";
  }
  return "?";
}

int ParseOptions(int argc, char** argv, Options* o) {
  struct Flag {
    const char* name;
    std::function<bool(const char*)> set;  // nullptr value for switches
    bool takes_value = true;
  };
  auto u32 = [](uint32_t* f, uint64_t max = UINT32_MAX) {
    return [f, max](const char* v) {
      uint64_t x;
      if (!ParseU64(v, max, &x)) return false;
      *f = static_cast<uint32_t>(x);
      return true;
    };
  };
  auto u16 = [](uint16_t* f) {
    return [f](const char* v) {
      uint64_t x;
      if (!ParseU64(v, UINT16_MAX, &x)) return false;
      *f = static_cast<uint16_t>(x);
      return true;
    };
  };
  auto dbl = [](double* f) { return [f](const char* v) { return ParseDouble(v, f); }; };
  auto str = [](std::string* f) {
    return [f](const char* v) {
      *f = v;
      return !f->empty();
    };
  };
  auto mode = [o](Mode m) {
    return [o, m](const char*) {
      o->mode = m;
      return true;
    };
  };
  const std::vector<Flag> flags = {
      {"--produce", mode(Mode::kProduce), false},
      {"--echo", mode(Mode::kEcho), false},
      {"--flood", mode(Mode::kFlood), false},
      {"--produce-flood", mode(Mode::kProduceFlood), false},
      {"--udp", [o](const char*) { o->udp = true; return true; }, false},
      {"--deliver", [o](const char*) { o->deliver = true; return true; }, false},
      {"--socket", str(&o->socket)},
      {"--vdev", str(&o->vdev)},
      {"--cpu", [o](const char* v) {
         uint64_t x;
         if (!ParseU64(v, 1023, &x)) return false;
         o->cpu = static_cast<int>(x);
         return true;
       }},
      {"--file-prefix", str(&o->file_prefix)},
      {"--memory-mb", u32(&o->memory_mb, 1 << 20)},
      {"--mtu", u16(&o->mtu)},
      {"--local-ip", str(&o->local_ip)},
      {"--local-port", u16(&o->local_port)},
      {"--server-ip", str(&o->server_ip)},
      {"--server-port", u16(&o->server_port)},
      {"--connect-timeout-s", dbl(&o->connect_timeout_s)},
      {"--queue", str(&o->queue)},
      {"--size", u32(&o->size, 1 << 20)},
      {"--batch", u32(&o->batch, 4096)},
      {"--rate", dbl(&o->rate)},
      {"--window", u32(&o->window, 1 << 16)},
      {"--producers", u32(&o->producers, 1024)},
      {"--count", [o](const char* v) { return ParseU64(v, UINT64_MAX, &o->count); }},
      {"--ack-timeout-ms", dbl(&o->ack_timeout_ms)},
      {"--frame-bytes", u32(&o->frame_bytes, 9600)},
      {"--duration-s", dbl(&o->duration_s)},
      {"--warmup-s", dbl(&o->warmup_s)},
      {"--drain-s", dbl(&o->drain_s)},
      {"--json", str(&o->json)},
      {"--label", str(&o->label)},
  };

  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    std::string_view name = a;
    const char* value = nullptr;
    if (size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string_view::npos) {
      name = a.substr(0, eq);
      value = argv[i] + eq + 1;
    }
    const Flag* flag = nullptr;
    for (const Flag& f : flags)
      if (name == f.name) flag = &f;
    if (flag == nullptr) {
      std::fprintf(stderr, "sluice-loadgen: unknown argument '%s'\n\n%s", argv[i], kUsage);
      return 2;
    }
    if (flag->takes_value && value == nullptr) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sluice-loadgen: %s needs a value\n", flag->name);
        return 2;
      }
      value = argv[++i];
    }
    if (!flag->set(value)) {
      std::fprintf(stderr, "sluice-loadgen: bad value '%s' for %s\n", value, flag->name);
      return 2;
    }
  }

  // Cross-option rules.
  const char* problem = nullptr;
  if (o->batch == 0) problem = "--batch must be >= 1";
  else if (o->window == 0) problem = "--window must be >= 1";
  else if (o->producers == 0) problem = "--producers must be >= 1";
  else if (o->duration_s <= 0 || o->duration_s > 3600) problem = "--duration-s must be in (0, 3600]";
  else if (o->warmup_s > 600 || o->drain_s > 60) problem = "--warmup-s <= 600, --drain-s <= 60";
  else if (o->frame_bytes < 60) problem = "--frame-bytes must be >= 60";
  else if (o->mtu < 576) problem = "--mtu must be >= 576";
  else if (uint64_t{o->window} * o->batch > (1u << 20)) problem = "--window * --batch <= 2^20";
  else if (o->udp && o->mode != Mode::kProduce) problem = "--udp goes with --produce only";
  else if (o->deliver && o->size < 8) problem = "--deliver needs --size >= 8 (the payload carries a TSC)";
  if (problem != nullptr) {
    std::fprintf(stderr, "sluice-loadgen: %s\n", problem);
    return 2;
  }
  return 0;
}

}  // namespace sluice::bench
