// The machine fixtures of tests/unit/hwconf/topologies (README.md there says what each one is),
// and layouts to check on them.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "hwconf/loader.h"
#include "hwconf/machine.h"
#include "hwconf/machine_check.h"

namespace sluice::hwconf::test {

inline std::string FixtureDir(std::string_view name) {
  return std::string(SLUICE_SOURCE_DIR) + "/tests/unit/hwconf/topologies/" + std::string(name);
}

inline MachineSource FixtureSource(std::string_view name) {
  return {.topology_xml = FixtureDir(name) + "/topology.xml", .root = FixtureDir(name) + "/root"};
}

inline Machine LoadMachine(std::string_view name) {
  absl::StatusOr<Machine> m = ReadMachine(FixtureSource(name));
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : Machine{};
}

inline Layout MustLoad(std::string_view toml, std::string_view name = "test.toml") {
  absl::StatusOr<Layout> l = LoadLayoutFromString(toml, name);
  EXPECT_TRUE(l.ok()) << l.status();
  return l.ok() ? *std::move(l) : Layout{};
}

inline Layout LoadShipped(std::string_view name) {
  absl::StatusOr<Layout> l = LoadLayout(std::string(SLUICE_SOURCE_DIR) + "/hwconf/" + std::string(name));
  EXPECT_TRUE(l.ok()) << l.status();
  return l.ok() ? *std::move(l) : Layout{};
}

inline std::string Codes(const std::vector<Finding>& findings) {
  std::string out;
  for (const Finding& f : findings) out += (out.empty() ? "" : " ") + f.code;
  return out;
}

inline std::string Dump(const std::vector<Finding>& findings) {
  std::string out;
  for (const Finding& f : findings) out += FormatFinding(f) + "\n";
  return out;
}

// "error|warning: WHAT: WHY; fix: HOW" on one line, each part non-empty. (No std::regex: GCC 12
// warns inside <regex> under the sanitizer flavour's -O1, and warnings are errors.)
inline bool IsFindingLine(std::string_view line) {
  if (line.find('\n') != std::string_view::npos) return false;
  if (line.starts_with("error: ")) {
    line.remove_prefix(7);
  } else if (line.starts_with("warning: ")) {
    line.remove_prefix(9);
  } else {
    return false;
  }
  const size_t fix = line.rfind("; fix: ");
  if (fix == std::string_view::npos || fix + 7 == line.size()) return false;
  const size_t colon = line.substr(0, fix).find(": ");
  return colon != std::string_view::npos && colon > 0 && colon + 2 < fix;
}

inline size_t CountErrors(const std::vector<Finding>& findings) {
  size_t n = 0;
  for (const Finding& f : findings) n += f.severity == Severity::kError;
  return n;
}

// A tuned layout for the 2-socket server: the NIC on node 0, its workers on isolated physical
// cores of node 0, SQPOLL on another one, hugepages on node 0. Every rule passes.
inline constexpr std::string_view kServerGood = R"([eal]
lcores = [0, 1, 2]
main_lcore = 0
hugepages = true
socket_mem_mb = [1024, 0]

[[port]]
name = "client0"
pci = "0000:3b:00.0"
rx_queues = 2
ipv4 = "10.0.0.1"

[[lcore]]
id = 1
rx = ["client0:0"]
shards = [0]
idle = "poll"

[[lcore]]
id = 2
rx = ["client0:1"]
shards = [1]
idle = "poll"

[dataplane]
shards = 2

[storage]
data_dirs = ["/tmp/sluice-test"]
sqpoll = true
sqpoll_cpu = 3
)";

// kServerGood with every `from` replaced by `to`.
inline std::string ServerWith(std::string_view from, std::string_view to) {
  std::string text(kServerGood);
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  while (at != std::string::npos) {
    text.replace(at, from.size(), to);
    at = text.find(from, at + to.size());
  }
  return text;
}

}  // namespace sluice::hwconf::test
