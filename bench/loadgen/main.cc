// sluice-loadgen: the end-to-end load generator (DESIGN §9). Reads like the other DPDK programs of
// the tree: parse options, bring up the EAL and the memif port (link.cc), run one load loop on this
// lcore (produce.cc, raw.cc), report (report.cc), clean up.
//
// Exit codes: 0 measured (the JSON says whether the run was clean), 1 setup failed (EAL, port,
// link, ARP, LOOKUP), 2 usage, 3 the run was aborted by a server error.
#include <sched.h>
#include <signal.h>

#include <cstdio>
#include <string>

#include "bench/loadgen/drivers.h"
#include "bench/loadgen/link.h"
#include "bench/loadgen/options.h"
#include "bench/loadgen/report.h"

int main(int argc, char** argv) {
  using namespace sluice::bench;
  Options o;
  if (int rc = ParseOptions(argc, argv, &o); rc != 0) return rc;
  if (o.udp) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
    absl::StatusOr<Result> r = RunProduceUdp(o);
    if (!r.ok()) {
      std::fprintf(stderr, "sluice-loadgen: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
    PrintResult(o, *r);
    if (!WriteJson(o, *r)) return 1;
    return r->aborted ? 3 : 0;
  }
  // The run is bounded in time; a signal simply ends the process (the EAL state is per-prefix and
  // memif is torn down by the kernel with the socket).
  auto link = Link::Open(o, argv[0]);
  if (!link.ok()) {
    std::fprintf(stderr, "sluice-loadgen: %s\n", std::string(link.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<Result> r =
      o.mode == Mode::kProduce        ? RunProduce(**link, o)
      : o.mode == Mode::kProduceFlood ? RunProduceFlood(**link, o)
                                      : RunRaw(**link, o);
  if (!r.ok()) {
    std::fprintf(stderr, "sluice-loadgen: %s\n", std::string(r.status().message()).c_str());
    return 1;
  }
  PrintResult(o, *r);
  if (!WriteJson(o, *r)) return 1;
  return r->aborted ? 3 : 0;
}
