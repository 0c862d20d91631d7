#include "dataplane/kernel_side.h"

#include <spawn.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "absl/strings/str_format.h"

extern char** environ;

namespace sluice::dataplane {
namespace {

absl::Status RunIp(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string prog = "ip";
  argv.push_back(prog.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (int rc = posix_spawnp(&pid, "ip", nullptr, nullptr, argv.data(), environ); rc != 0) {
    return absl::InternalError(absl::StrFormat("cannot run 'ip' (iproute2): %s", strerror(rc)));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string line;
    for (const std::string& a : args) line += " " + a;
    return absl::InternalError(absl::StrFormat("'ip%s' failed (status %d)", line, status));
  }
  return absl::OkStatus();
}

// "net_tap0,iface=sluice0,..." -> "sluice0"
std::string TapInterface(const std::string& vdev) {
  const size_t at = vdev.find("iface=");
  if (at == std::string::npos) return "";
  const size_t end = vdev.find(',', at);
  return vdev.substr(at + 6, end == std::string::npos ? std::string::npos : end - at - 6);
}

}  // namespace

absl::Status ConfigureKernelSide(const hwconf::Port& port) {
  if (port.kernel_ipv4.empty()) return absl::OkStatus();
  const std::string iface = TapInterface(port.vdev);
  if (port.vdev.rfind("net_tap", 0) != 0 || iface.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "port '%s': kernel_ipv4 needs a TAP vdev with iface=NAME", port.name));
  }
  if (auto st = RunIp({"addr", "replace", port.kernel_ipv4, "dev", iface}); !st.ok()) {
    return absl::InternalError(absl::StrFormat("port '%s': %s", port.name, st.message()));
  }
  if (auto st = RunIp({"link", "set", iface, "up"}); !st.ok()) {
    return absl::InternalError(absl::StrFormat("port '%s': %s", port.name, st.message()));
  }
  return absl::OkStatus();
}

}  // namespace sluice::dataplane
