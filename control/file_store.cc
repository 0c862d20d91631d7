#include "control/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "protocol/crc32c.h"

namespace sluice::control {
namespace {

constexpr std::string_view kMagic = "sluice-metadata 1";
constexpr size_t kMaxFileBytes = 64u << 20;  // a catalog of 4096 queues is well under 8 MiB

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::UnavailableError(
      absl::StrCat(absl::string_view(what.data(), what.size()), " ", path, ": ",
                   std::strerror(errno)));
}

std::string Header(uint64_t version, std::string_view body) {
  return absl::StrFormat("%s version=%d bytes=%d crc32c=%08x\n",
                         absl::string_view(kMagic.data(), kMagic.size()), version, body.size(),
                         protocol::Crc32c(body));
}

absl::Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open directory", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync directory", dir);
}

// Whole file, or nullopt when it does not exist.
absl::StatusOr<std::optional<std::string>> ReadFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return Errno("open", path);
  }
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status st = Errno("read", path);
      ::close(fd);
      return st;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileBytes) {
      ::close(fd);
      return absl::DataLossError(absl::StrCat(path, ": larger than ", kMaxFileBytes, " bytes"));
    }
  }
  ::close(fd);
  return std::optional<std::string>(std::move(out));
}

// Checks header, length and CRC; the stored document.
absl::StatusOr<StoredDocument> Parse(const std::string& path, const std::string& file) {
  auto bad = [&path](std::string_view why) {
    return absl::DataLossError(absl::StrCat(path, ": not a whole metadata document (",
                                            absl::string_view(why.data(), why.size()),
                                            "); restore it from a backup or the standby"));
  };
  const size_t eol = file.find('\n');
  if (eol == std::string::npos || file.compare(0, kMagic.size(), kMagic) != 0) {
    return bad("no header");
  }
  unsigned long long version = 0, bytes = 0;
  unsigned crc = 0;
  const std::string header = file.substr(0, eol);
  if (std::sscanf(header.c_str() + kMagic.size(), " version=%llu bytes=%llu crc32c=%8x", &version,
                  &bytes, &crc) != 3 ||
      version == 0) {
    return bad("bad header");
  }
  if (file.size() - eol - 1 != bytes) return bad("length differs from the header");
  std::string body = file.substr(eol + 1);
  if (protocol::Crc32c(body) != crc) return bad("checksum mismatch");
  return StoredDocument{version, std::move(body)};
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::OkStatus();
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    return S_ISDIR(st.st_mode) ? absl::OkStatus()
                               : absl::FailedPreconditionError(dir + " is not a directory");
  }
  const size_t slash = dir.find_last_of('/');
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : dir.substr(0, slash);
  if (parent != dir) {
    if (absl::Status s = MakeDirs(parent); !s.ok()) return s;
  }
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Errno("mkdir", dir);
  return FsyncDir(parent);
}

}  // namespace

const char* ToString(SaveStep step) {
  switch (step) {
    case SaveStep::kTempOpened: return "temp_opened";
    case SaveStep::kTempHalfWritten: return "temp_half_written";
    case SaveStep::kTempWritten: return "temp_written";
    case SaveStep::kTempSynced: return "temp_synced";
    case SaveStep::kRenamed: return "renamed";
    case SaveStep::kDirSynced: return "dir_synced";
  }
  return "?";
}

FileStore::FileStore(std::string dir, SaveFaultHook hook)
    : dir_(std::move(dir)), path_(dir_ + "/catalog"), temp_path_(dir_ + "/catalog.tmp"),
      hook_(std::move(hook)) {}

absl::StatusOr<std::unique_ptr<FileStore>> FileStore::Open(const std::string& dir,
                                                           SaveFaultHook hook) {
  if (dir.empty()) return absl::InvalidArgumentError("metadata directory is empty");
  if (absl::Status s = MakeDirs(dir); !s.ok()) return s;
  return std::unique_ptr<FileStore>(new FileStore(dir, std::move(hook)));
}

absl::StatusOr<std::optional<StoredDocument>> FileStore::Load() {
  absl::StatusOr<std::optional<std::string>> file = ReadFile(path_);
  if (!file.ok()) return file.status();
  if (!file->has_value()) {
    version_ = 0;
    return std::optional<StoredDocument>();
  }
  absl::StatusOr<StoredDocument> doc = Parse(path_, **file);
  if (!doc.ok()) return doc.status();
  version_ = doc->version;
  return std::optional<StoredDocument>(std::move(*doc));
}

absl::Status FileStore::Step(SaveStep step) {
  if (hook_ && !hook_(step)) {
    version_.reset();  // what is on disk is now unknown: the next Save reloads
    return absl::UnavailableError(absl::StrCat("metadata store: fault injected after ",
                                               ToString(step)));
  }
  return absl::OkStatus();
}

absl::Status FileStore::WriteTemp(const std::string& bytes) {
  const int fd = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create", temp_path_);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (absl::Status s = Step(SaveStep::kTempOpened); !s.ok()) return s;

  size_t done = 0;
  const size_t half = bytes.size() / 2;
  bool half_reported = false;
  while (done < bytes.size()) {
    const size_t want = (!half_reported && hook_) ? half - done : bytes.size() - done;
    if (want > 0) {
      const ssize_t n = ::write(fd, bytes.data() + done, want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno("write", temp_path_);
      done += static_cast<size_t>(n);
    }
    if (!half_reported && hook_ && done == half) {
      half_reported = true;
      if (absl::Status s = Step(SaveStep::kTempHalfWritten); !s.ok()) return s;
    }
  }
  if (absl::Status s = Step(SaveStep::kTempWritten); !s.ok()) return s;
  if (::fsync(fd) != 0) return Errno("fsync", temp_path_);  // never retried (DESIGN §5)
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FileStore::Save(uint64_t expected_version, std::string_view body) {
  if (!version_.has_value()) {
    absl::StatusOr<std::optional<StoredDocument>> current = Load();
    if (!current.ok()) return current.status();
  }
  if (*version_ != expected_version) {
    return absl::AbortedError(absl::StrCat(path_, ": metadata version is ", *version_,
                                           ", expected ", expected_version));
  }
  const uint64_t version = expected_version + 1;
  const std::string bytes = Header(version, body) + std::string(body);

  version_.reset();  // unknown until the rename is known to have happened or not
  if (absl::Status s = WriteTemp(bytes); !s.ok()) return s;
  // Check it both before and after it is on disk (STYLE: TigerBeetle).
  absl::StatusOr<std::optional<std::string>> back = ReadFile(temp_path_);
  if (!back.ok()) return back.status();
  if (!back->has_value() || **back != bytes) {
    return absl::DataLossError(temp_path_ + ": read back differs from what was written");
  }
  if (absl::Status s = Step(SaveStep::kTempSynced); !s.ok()) return s;

  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) return Errno("rename to", path_);
  if (absl::Status s = Step(SaveStep::kRenamed); !s.ok()) return s;
  if (absl::Status s = FsyncDir(dir_); !s.ok()) return s;
  if (absl::Status s = Step(SaveStep::kDirSynced); !s.ok()) return s;
  version_ = version;
  return version;
}

}  // namespace sluice::control
