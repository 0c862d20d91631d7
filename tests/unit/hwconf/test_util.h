// Helpers shared by the hwconf tests: a minimal valid layout to mutate, and line lookup.
#pragma once

#include <string>
#include <string_view>

namespace sluice::hwconf::test {

// The smallest layout that passes every rule. Error cases edit one thing in it.
inline constexpr std::string_view kMinimal = R"([eal]
lcores = [0, 1]

[[port]]
name = "client0"
vdev = "net_tap0,iface=sluice0"
ipv4 = "198.18.0.1"

[[lcore]]
id = 1
rx = ["client0:0"]
shards = [0]

[dataplane]
shards = 1

[storage]
data_dirs = ["/tmp/sluice-test"]
)";

// 1-based line of the first line containing `marker`, 0 if none does.
inline int LineOf(std::string_view text, std::string_view marker) {
  const size_t at = text.find(marker);
  if (at == std::string_view::npos) return 0;
  int line = 1;
  for (size_t i = 0; i < at; ++i) line += text[i] == '\n';
  return line;
}

// kMinimal with the first `from` replaced by `to` (from must occur) and `append` added at the end.
inline std::string Edit(std::string_view from, std::string_view to, std::string_view append = "") {
  std::string text(kMinimal);
  if (!from.empty()) {
    const size_t at = text.find(from);
    if (at == std::string::npos) return "EDIT FAILED: '" + std::string(from) + "' not in kMinimal";
    text.replace(at, from.size(), to);
  }
  return text + std::string(append);
}

}  // namespace sluice::hwconf::test
