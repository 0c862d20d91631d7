// The `hwconf` commands of sluicectl: argument parsing, output (one line per finding, or JSON),
// exit status. The checks and the suggestion are in machine_check.cc and suggest.cc.
#include "hwconf/machine_cli.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "hwconf/internal.h"
#include "hwconf/loader.h"
#include "hwconf/machine_check.h"
#include "hwconf/suggest.h"

namespace sluice::hwconf {

const char kHwconfCliHelp[] = R"(usage: sluicectl hwconf check FILE [--json] [--topology XML --root DIR]
       sluicectl hwconf suggest [--ports PORT...] [--rx-queues N] [--out FILE [--force]]
                                [--topology XML --root DIR]

Layouts against the machine this runs on (no server needed; docs/operations.md).

  check FILE      load the layout, then check it against this machine: CPUs that exist, are
                  online and isolated, hyperthread siblings that both poll, the NUMA node of each
                  PCI port against its workers and the mbuf pool, its driver and interrupts,
                  hugepages and memory. One line per finding:
                    error|warning: WHAT: WHY; fix: HOW
  suggest         write a layout for this machine (stdout, or --out FILE): main lcore on core
                  0, one worker per RX queue on the port's NUMA node, SQPOLL on a spare
                  isolated core, "adaptive" idle where cores are scarce or not isolated
  --ports PORT... PCI addresses (0000:3b:00.0) or vdevs (net_tap0,iface=sluice0), until the
                  next option; default: the NICs bound to vfio-pci/uio, else a TAP port
  --rx-queues N   RX queues (and workers) per port; default one per spare core, at most 8
  --out FILE      write the layout there (refuses to overwrite without --force)
  --json          check: a JSON object {layout, machine, errors, warnings, findings[]}
  --topology XML  read another machine: its hwloc XML (lstopo --of xml, hwloc-gather-topology)
  --root DIR      ... and its sysfs/procfs files under DIR (DIR/sys/..., DIR/proc/...)

exit status of check: 0 no finding; 1 warnings only (runs here, slower than it could);
2 errors (cannot run here, or not a valid layout), or a usage error.
exit status of suggest: 0 written; 2 error or usage error.
)";

namespace {

using Json = nlohmann::ordered_json;
using internal::Cat;

struct Usage {
  std::string message;
};

struct Args {
  std::string command;
  std::vector<std::string> files;
  std::vector<std::string> ports;
  int rx_queues = 0;
  std::string out;
  bool force = false;
  bool json = false;
  MachineSource source;
};

Args Parse(const std::vector<std::string>& words, bool json) {
  Args a;
  a.json = json;
  if (words.empty()) throw Usage{"hwconf needs a command: check or suggest"};
  a.command = words[0];
  if (a.command != "check" && a.command != "suggest") {
    throw Usage{Cat("unknown hwconf command \"", a.command, "\"")};
  }
  for (size_t i = 1; i < words.size(); ++i) {
    const std::string& w = words[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= words.size()) throw Usage{w + " needs a value"};
      return words[++i];
    };
    if (w == "--json") {
      a.json = true;
    } else if (w == "--topology") {
      a.source.topology_xml = value();
    } else if (w == "--root") {
      a.source.root = value();
    } else if (w == "--out" && a.command == "suggest") {
      a.out = value();
    } else if (w == "--force" && a.command == "suggest") {
      a.force = true;
    } else if (w == "--rx-queues" && a.command == "suggest") {
      if (!absl::SimpleAtoi(value(), &a.rx_queues) || a.rx_queues < 1 || a.rx_queues > 1024) {
        throw Usage{"--rx-queues wants a number in [1, 1024]"};
      }
    } else if (w == "--ports" && a.command == "suggest") {
      // Vdev strings have commas of their own: ports are separate words, up to the next option.
      while (i + 1 < words.size() && !words[i + 1].starts_with("-")) a.ports.push_back(words[++i]);
      if (a.ports.empty()) throw Usage{"--ports needs at least one PCI address or vdev"};
    } else if (w.starts_with("-")) {
      throw Usage{Cat("unknown option ", w, " for hwconf ", a.command)};
    } else {
      a.files.push_back(w);
    }
  }
  if (a.command == "check" && a.files.size() != 1) throw Usage{"hwconf check takes one FILE"};
  if (a.command == "suggest" && !a.files.empty()) {
    throw Usage{"hwconf suggest takes no FILE (use --out FILE)"};
  }
  if (a.command == "suggest" && a.json) throw Usage{"--json belongs to hwconf check"};
  if (a.force && a.out.empty()) throw Usage{"--force goes with --out FILE"};
  return a;
}

std::string MachineSummary(const Machine& m) {
  return Cat(m.source, " (", m.cpus.size(), " CPUs, ", m.nodes, " NUMA node",
             m.nodes == 1 ? "" : "s", ")");
}

// Loader errors as findings: one per line of the status, in the same format.
std::vector<Finding> LayoutErrors(const absl::Status& st) {
  std::vector<Finding> out;
  for (absl::string_view line : absl::StrSplit(st.message(), '\n', absl::SkipEmpty())) {
    out.push_back({Severity::kError, "layout-invalid", std::string(line),
                   "the file is not a valid layout",
                   "correct it (keys and rules: hwconf/README.md, `sluice-hwconf settings`)"});
  }
  return out;
}

int Report(const Args& a, const std::string& machine, const std::vector<Finding>& findings,
           std::ostream& out) {
  size_t errors = 0;
  for (const Finding& f : findings) errors += f.severity == Severity::kError;
  const size_t warnings = findings.size() - errors;
  if (a.json) {
    Json j{{"layout", a.files[0]}, {"machine", machine}, {"errors", errors},
           {"warnings", warnings}, {"findings", Json::array()}};
    for (const Finding& f : findings) {
      j["findings"].push_back({{"severity", ToString(f.severity)}, {"code", f.code},
                               {"what", f.what}, {"why", f.why}, {"fix", f.fix}});
    }
    out << j.dump(2) << "\n";
  } else {
    for (const Finding& f : findings) out << FormatFinding(f) << "\n";
    out << a.files[0] << " on " << machine << ": " << errors << " error"
        << (errors == 1 ? "" : "s") << ", " << warnings << " warning" << (warnings == 1 ? "" : "s")
        << "\n";
  }
  return errors > 0 ? kCliErrors : warnings > 0 ? kCliWarnings : kCliOk;
}

int Check(const Args& a, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Layout> layout = LoadLayout(a.files[0]);
  if (!layout.ok()) return Report(a, "(not read)", LayoutErrors(layout.status()), out);
  absl::StatusOr<Machine> machine = ReadMachine(a.source);
  if (!machine.ok()) {
    err << "sluicectl: hwconf check: " << machine.status().message() << "\n";
    return kCliErrors;
  }
  return Report(a, MachineSummary(*machine), CheckOnMachine(*layout, *machine), out);
}

int SuggestCommand(const Args& a, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Machine> machine = ReadMachine(a.source);
  if (!machine.ok()) {
    err << "sluicectl: hwconf suggest: " << machine.status().message() << "\n";
    return kCliErrors;
  }
  absl::StatusOr<Suggestion> s = Suggest(*machine, {.ports = a.ports, .rx_queues = a.rx_queues});
  if (!s.ok()) {
    err << "sluicectl: hwconf suggest: " << s.status().message() << "\n";
    return kCliErrors;
  }
  // What check will say about it: the suggestion is only as good as the machine's tuning.
  const std::string name = a.out.empty() ? "suggested layout" : a.out;
  absl::StatusOr<Layout> reloaded = LoadLayoutFromString(s->toml, name);
  if (!reloaded.ok()) {  // a bug in Suggest: say so rather than write a file that does not load
    err << "sluicectl: hwconf suggest: internal error, the layout does not load:\n"
        << reloaded.status().message() << "\n";
    return kCliErrors;
  }
  if (a.out.empty()) {
    out << s->toml;
  } else {
    std::error_code ec;
    if (!a.force && std::filesystem::exists(a.out, ec)) {
      err << "sluicectl: hwconf suggest: " << a.out << " exists; --force to overwrite it\n";
      return kCliErrors;
    }
    std::ofstream file(a.out, std::ios::trunc);
    file << s->toml;
    file.close();
    if (!file) {
      err << "sluicectl: hwconf suggest: cannot write " << a.out << "\n";
      return kCliErrors;
    }
    out << "wrote " << a.out << " for " << MachineSummary(*machine) << "\n";
  }
  for (const Finding& f : CheckOnMachine(*reloaded, *machine)) err << FormatFinding(f) << "\n";
  return kCliOk;
}

}  // namespace

int RunHwconfCli(const std::vector<std::string>& args, bool json, std::ostream& out,
                 std::ostream& err) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")) {
    out << kHwconfCliHelp;
    return kCliOk;
  }
  for (const std::string& w : args) {
    if (w == "--help" || w == "-h") {
      out << kHwconfCliHelp;
      return kCliOk;
    }
  }
  try {
    const Args a = Parse(args, json);
    return a.command == "check" ? Check(a, out, err) : SuggestCommand(a, out, err);
  } catch (const Usage& u) {
    err << "sluicectl: " << u.message << "\n(see sluicectl hwconf --help)\n";
    return kCliErrors;
  }
}

}  // namespace sluice::hwconf
