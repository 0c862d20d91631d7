// sluice-hwconf: check a layout file, print the EAL argv it implies, or print the settings
// reference. Exit status: 0 ok, 1 invalid (or unreadable) layout, 2 usage error.
#include <cstring>
#include <iostream>
#include <string_view>

#include "absl/strings/str_join.h"
#include "hwconf/loader.h"

namespace {

constexpr std::string_view kUsage =
    "usage: sluice-hwconf COMMAND\n"
    "\n"
    "  check FILE             load and validate a layout; print its summary and OK\n"
    "  eal-args FILE          print the EAL argv the layout implies, one argument a line\n"
    "  settings [--markdown]  print every layout key: type, allowed values, unit, default\n"
    "  --help                 this text\n"
    "\n"
    "Exit status: 0 ok, 1 invalid layout, 2 usage error. Keys and rules: hwconf/README.md.\n"
    "Against this machine (CPUs, NUMA, NICs, IRQs, hugepages): sluicectl hwconf check FILE;\n"
    "a layout for it: sluicectl hwconf suggest.\n";

int Usage(std::string_view why) {
  std::cerr << "sluice-hwconf: " << why << "\n\n" << kUsage;
  return 2;
}

int Check(const char* path) {
  absl::StatusOr<sluice::hwconf::Layout> layout = sluice::hwconf::LoadLayout(path);
  if (!layout.ok()) {
    std::cerr << layout.status().message() << "\n";
    return 1;
  }
  std::cout << sluice::hwconf::FormatLayout(*layout) << "OK\n";
  return 0;
}

int PrintEalArgs(const char* path) {
  absl::StatusOr<sluice::hwconf::Layout> layout = sluice::hwconf::LoadLayout(path);
  if (!layout.ok()) {
    std::cerr << layout.status().message() << "\n";
    return 1;
  }
  std::cout << absl::StrJoin(sluice::hwconf::EalArgs(*layout, "sluiced"), "\n") << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage("no command");
  const std::string_view command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (command == "check" || command == "eal-args") {
    if (argc != 3) return Usage(std::string(command) + " takes exactly one FILE");
    return command == "check" ? Check(argv[2]) : PrintEalArgs(argv[2]);
  }
  if (command == "settings") {
    if (argc == 2) {
      sluice::hwconf::PrintSettings(std::cout, sluice::hwconf::SettingsFormat::kText);
      return 0;
    }
    if (argc == 3 && std::strcmp(argv[2], "--markdown") == 0) {
      sluice::hwconf::PrintSettings(std::cout, sluice::hwconf::SettingsFormat::kMarkdown);
      return 0;
    }
    return Usage("settings takes only --markdown");
  }
  return Usage("unknown command '" + std::string(command) + "'");
}
