#include "storage/ack_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "protocol/assert.h"
#include "storage/crc32c.h"

namespace sluice::storage {
namespace {

constexpr size_t kEntryHeaderBytes = 16;

size_t EntryBytes(size_t group_len) { return kEntryHeaderBytes + AlignUp(group_len, 8); }

// Encodes one entry at `out` (which has EntryBytes(group.size()) bytes).
void EncodeEntry(std::byte* out, AckKind kind, std::string_view group, uint64_t offset) {
  const size_t n = EntryBytes(group.size());
  std::memset(out, 0, n);
  out[4] = static_cast<std::byte>(kind);
  out[5] = static_cast<std::byte>(group.size());
  std::memcpy(out + 8, &offset, 8);
  if (!group.empty()) std::memcpy(out + kEntryHeaderBytes, group.data(), group.size());
  const uint32_t crc = Crc32c({out + 4, n - 4});
  std::memcpy(out, &crc, 4);
}

}  // namespace

bool AckState::IsDeleted(uint64_t offset) const {
  return offset < deleted_below || std::binary_search(deleted.begin(), deleted.end(), offset);
}

void AckState::Compact(uint64_t start) {
  std::sort(deleted.begin(), deleted.end());
  deleted.erase(std::unique(deleted.begin(), deleted.end()), deleted.end());
  deleted_below = std::max(deleted_below, start);
  size_t i = 0;
  while (i < deleted.size() && deleted[i] < deleted_below) ++i;
  while (i < deleted.size() && deleted[i] == deleted_below) {
    ++deleted_below;
    ++i;
  }
  deleted.erase(deleted.begin(), deleted.begin() + static_cast<ptrdiff_t>(i));
}

absl::StatusOr<AckState> AckLog::Load(const std::string& path, AckLoadReport* report) {
  AckState state;
  *report = AckLoadReport{};
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return state;
    return ErrnoStatus(errno, "open", path);
  }
  absl::StatusOr<uint64_t> size = FileSize(fd.get(), path);
  if (!size.ok()) return size.status();
  std::vector<std::byte> data(*size);
  size_t got = 0;
  if (absl::Status s = PreadFull(fd.get(), data, 0, &got); !s.ok()) return s;
  size_t pos = 0;
  while (pos + kEntryHeaderBytes <= got) {
    const std::byte* p = data.data() + pos;
    const auto kind = static_cast<AckKind>(p[4]);
    const size_t group_len = static_cast<size_t>(p[5]);
    const size_t n = EntryBytes(group_len);
    uint32_t crc;
    std::memcpy(&crc, p, 4);
    if (pos + n > got || crc != Crc32c({p + 4, n - 4})) break;  // torn or corrupt: stop here
    uint64_t offset;
    std::memcpy(&offset, p + 8, 8);
    if (kind == AckKind::kDelete) {
      state.deleted.push_back(offset);
    } else if (kind == AckKind::kCommit) {
      state.commits[std::string(reinterpret_cast<const char*>(p + kEntryHeaderBytes), group_len)] =
          offset;
    } else if (kind == AckKind::kDeletedBelow) {
      state.deleted_below = std::max(state.deleted_below, offset);
    } else {
      break;
    }
    pos += n;
    ++report->entries;
  }
  report->bytes = pos;
  report->bytes_cut = got - pos;
  state.Compact(state.deleted_below);
  return state;
}

absl::StatusOr<AckLog> AckLog::Open(const std::string& dir, const std::string& path,
                                    const AckState& state) {
  std::vector<std::byte> out;
  auto put = [&](AckKind kind, std::string_view group, uint64_t offset) {
    const size_t at = out.size();
    out.resize(at + EntryBytes(group.size()));
    EncodeEntry(out.data() + at, kind, group, offset);
  };
  put(AckKind::kDeletedBelow, {}, state.deleted_below);
  for (uint64_t o : state.deleted) put(AckKind::kDelete, {}, o);
  for (const auto& [group, offset] : state.commits) put(AckKind::kCommit, group, offset);

  const std::string tmp = path + ".tmp";
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoStatus(errno, "open", tmp);
    if (absl::Status s = PwriteFull(fd.get(), out, 0, tmp); !s.ok()) return s;
    if (::fdatasync(fd.get()) != 0) return ErrnoStatus(errno, "fdatasync", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus(errno, "rename", tmp);
  if (absl::Status s = FsyncDir(dir); !s.ok()) return s;
  Fd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open", path);
  return AckLog(std::move(fd), path, out.size());
}

AckLog::AckLog(Fd fd, std::string path, uint64_t size)
    : fd_(std::move(fd)), path_(std::move(path)), file_bytes_(size), buf_(kBufferBytes) {}

bool AckLog::Append(AckKind kind, std::string_view group, uint64_t offset) {
  SLUICE_ASSERT(group.size() <= kMaxGroupBytes);
  const size_t n = EntryBytes(group.size());
  if (used_ + n > buf_.size()) return false;
  EncodeEntry(buf_.data() + used_, kind, group, offset);
  used_ += n;
  return true;
}

bool AckLog::Delete(uint64_t offset) { return Append(AckKind::kDelete, {}, offset); }
bool AckLog::Commit(std::string_view group, uint64_t offset) {
  return Append(AckKind::kCommit, group, offset);
}
bool AckLog::DeletedBelow(uint64_t offset) { return Append(AckKind::kDeletedBelow, {}, offset); }

absl::Status AckLog::Flush(bool sync) {
  if (used_ > 0) {
    if (absl::Status s = PwriteFull(fd_.get(), {buf_.data(), used_}, file_bytes_, path_); !s.ok()) {
      return s;
    }
    file_bytes_ += used_;
    used_ = 0;
  }
  if (sync && ::fdatasync(fd_.get()) != 0) return ErrnoStatus(errno, "fdatasync", path_);
  return absl::OkStatus();
}

}  // namespace sluice::storage
