// The layout check against a machine (`sluicectl hwconf check`): what LoadLayout cannot know from
// the file alone. Each finding says what is wrong, why it matters, and how to fix it:
//
//   error: lcore 9 runs on CPU 9, which does not exist: ...; fix: ...
//
// Errors: the layout cannot start here (EAL or port setup would fail). Warnings: it starts, but
// pays for it in throughput or latency (cross-NUMA traffic, a poller sharing a core, interrupts
// on a worker). hwconf/README.md §Machine check lists every rule.
#pragma once

#include <string>
#include <vector>

#include "hwconf/layout.h"
#include "hwconf/machine.h"

namespace sluice::hwconf {

enum class Severity { kWarning, kError };

struct Finding {
  Severity severity = Severity::kWarning;
  std::string code;  // stable, for scripts and tests: "numa-remote-poll", "hugepages-short"...
  std::string what;  // the fact, naming the lcore, CPU, port, node
  std::string why;   // what it costs
  std::string fix;   // what to change, in the layout or on the machine
};

// Every finding of `layout` (a loaded, valid layout) on `machine`: errors first, then warnings,
// each group in the order of the rules.
std::vector<Finding> CheckOnMachine(const Layout& layout, const Machine& machine);

// "error: WHAT: WHY; fix: FIX" (no newline).
std::string FormatFinding(const Finding& f);
std::string_view ToString(Severity s);

}  // namespace sluice::hwconf
