// Command line of sluice-loadgen: one typed field per option, its default in the initialiser and
// its meaning in the comment (the same text is printed by --help, options.cc).
#pragma once

#include <cstdint>
#include <string>

namespace sluice::bench {

enum class Mode {
  kProduce,  // LOOKUP the queue, then PRODUCE; latency = ack TSC - send (or scheduled) TSC
  kEcho,     // ICMP echo requests carrying a TSC; latency = return TSC - send TSC (testpmd
             // macswap/io bounces them, sluiced answers them)
  kFlood,    // count only: UDP frames at the highest rate the port takes; counts what comes back
  kProduceFlood,  // PRODUCE frames (producer id 0: no idempotence, one pre-built frame) at the
                  // highest rate the port takes; counts the messages acked: the server's
                  // capacity, measured the way --flood measures testpmd's
};

struct Options {
  Mode mode = Mode::kProduce;

  // ---- port and EAL ----
  bool udp = false;            // --udp: kernel UDP socket (sendmmsg/recvmmsg), no DPDK (produce)
  std::string socket = "/run/sluice/bench.sock";  // memif socket of the server (role=server side)
  std::string vdev;            // full vdev string; overrides `socket` when set
  int cpu = 0;                 // CPU the load loop (the EAL main lcore) is pinned to
  std::string file_prefix;     // EAL --file-prefix; default "sluice-lg-<pid>" (unique per process)
  uint32_t memory_mb = 512;    // EAL -m (no hugepages: --no-huge)
  uint16_t mtu = 1500;         // largest IP datagram + 14; frames that do not fit are refused
  std::string local_ip = "198.18.1.2";   // our address (the server answers it)
  uint16_t local_port = 40000;           // our UDP port
  std::string server_ip = "198.18.1.1";  // sluiced's port address (hwconf port.ipv4)
  uint16_t server_port = 7411;           // sluiced's UDP port (hwconf port.udp_port)
  double connect_timeout_s = 10;         // memif link up, ARP and LOOKUP, each at most this long

  // ---- produce ----
  std::string queue = "bench";  // queue name(s), comma-separated (LOOKUP each)
  uint32_t size = 64;           // payload bytes per message
  uint32_t batch = 1;           // messages per PRODUCE frame
  double rate = 0;              // messages/s, open loop from a schedule; 0 = closed loop at max
  uint32_t window = 256;        // frames outstanding at most (messages: window * batch)
  uint32_t producers = 1;       // producer ids (idempotent; sequences from 0 per partition)
  uint64_t count = 0;           // stop sending after this many messages (0: only the duration)
  bool deliver = false;         // also subscribe and time produce -> deliver (payload >= 8 bytes)
  double ack_timeout_ms = 500;  // no ack progress on a stream this long: its in-flight are lost

  // ---- echo / flood ----
  uint32_t frame_bytes = 64;    // Ethernet frame without CRC (>= 60)

  // ---- all modes ----
  double duration_s = 5;        // measured interval (after warm-up)
  double warmup_s = 1;          // excluded from every figure
  double drain_s = 1;           // after sending stops, wait this long at most for the last acks
  std::string json;             // write the result as JSON here
  std::string label;            // free text copied into the JSON (the e2e script's case name)
};

// Parses argv (everything is ours: the EAL arguments are built from the options). Returns 0, or
// 2 after printing the problem (usage error); exits 0 for --help.
int ParseOptions(int argc, char** argv, Options* o);

const char* ModeName(Mode m);

}  // namespace sluice::bench
