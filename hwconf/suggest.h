// `sluicectl hwconf suggest`: a layout for a machine. The rules, in order:
//   - the main lcore (housekeeping) on CPU 0, i.e. core 0; its hyperthread sibling stays free;
//   - ports: those named (PCI addresses or vdev strings), else every NIC bound to vfio-pci or uio,
//     else a TAP port (net_tap0,iface=sluice0) as in hwconf/tap.toml;
//   - one worker per RX queue, on a physical core of the port's NUMA node (one hyperthread per
//     core), isolated cores first and cores that take the port's interrupts last; a port gets as
//     many queues as its node has spare cores (at most 8) unless rx_queues says;
//   - an SQPOLL core where an isolated core is left over on the first port's node;
//   - idle = "poll" on isolated CPUs, "adaptive" where cores are scarce or shared (not isolated,
//     or two lcores on one CPU: a 1- or 2-CPU machine);
//   - two shards per worker; memory sized by EstimateMemory, in hugepages on the main lcore's
//     node when there is a PCI port.
// The result loads with LoadLayout and passes CheckOnMachine without errors on the machine it
// was made for (suggest_test checks both on every fixture).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hwconf/layout.h"
#include "hwconf/machine.h"

namespace sluice::hwconf {

struct SuggestOptions {
  std::vector<std::string> ports;  // PCI addresses or vdev strings; empty = detect
  int rx_queues = 0;               // per port; 0 = one per spare core of its node, at most 8
};

struct Suggestion {
  Layout layout;
  std::vector<std::string> notes;  // why each choice, for the operator (TOML comments)
  std::string toml;                // the layout file, with the notes as comments
};

// InvalidArgumentError for a port that is neither a PCI address nor a vdev, a PCI address this
// machine does not have, or a machine without a usable CPU.
absl::StatusOr<Suggestion> Suggest(const Machine& machine, const SuggestOptions& options);

}  // namespace sluice::hwconf
