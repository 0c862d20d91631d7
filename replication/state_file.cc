#include "replication/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace sluice::replication {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

}  // namespace

std::string StatePath(const std::string& data_dir) { return data_dir + "/replication.state"; }

absl::StatusOr<ReplicationState> LoadState(const std::string& path) {
  ReplicationState st;
  std::ifstream in(path);
  if (!in) {
    if (access(path.c_str(), F_OK) != 0 && errno == ENOENT) return st;
    return Errno(absl::StrCat("replication state ", path));
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    std::istringstream ls(line);
    std::string key;
    ls >> key;
    bool ok = true;
    if (key == "epoch") {
      ok = static_cast<bool>(ls >> st.epoch);
    } else if (key == "role") {
      std::string r;
      ok = static_cast<bool>(ls >> r) && (r == "primary" || r == "standby");
      st.role = r;
    } else if (key == "pending_starts") {
      int v = 0;
      ok = static_cast<bool>(ls >> v);
      st.pending_starts = v != 0;
    } else if (key == "start") {
      uint32_t q = 0, p = 0;
      uint64_t off = 0;
      ok = static_cast<bool>(ls >> q >> p >> off);
      st.starts[{q, p}] = off;
    } else if (key == "channel_epoch") {
      uint32_t c = 0;
      uint64_t e = 0;
      ok = static_cast<bool>(ls >> c >> e);
      st.channel_epochs[c] = e;
    } else {
      ok = false;
    }
    if (!ok) return absl::DataLossError(absl::StrCat(path, ":", n, ": cannot read '", line, "'"));
  }
  return st;
}

absl::Status SaveState(const std::string& path, const ReplicationState& st) {
  std::string text = absl::StrCat("epoch ", st.epoch, "\n");
  if (st.role) absl::StrAppend(&text, "role ", *st.role, "\n");
  absl::StrAppend(&text, "pending_starts ", st.pending_starts ? 1 : 0, "\n");
  for (const auto& [k, off] : st.starts) absl::StrAppend(&text, "start ", k.first, " ", k.second, " ", off, "\n");
  for (const auto& [c, e] : st.channel_epochs) absl::StrAppend(&text, "channel_epoch ", c, " ", e, "\n");
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(absl::StrCat("create ", tmp));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = Errno(absl::StrCat("write ", tmp));
      close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    absl::Status s = Errno(absl::StrCat("fsync ", tmp));
    close(fd);
    return s;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) return Errno(absl::StrCat("rename ", tmp));
  const std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  const int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Errno(absl::StrCat("open ", dir));
  const int r = fsync(dfd);
  close(dfd);
  if (r != 0) return Errno(absl::StrCat("fsync ", dir));
  return absl::OkStatus();
}

}  // namespace sluice::replication
