#include "storage/ack_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "protocol/assert.h"
#include "storage/ack_ring.h"
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
    : fd_(std::move(fd)), path_(std::move(path)), file_bytes_(size) {
  bufs_[0].resize(kBufferBytes);
}

bool AckLog::Append(AckKind kind, std::string_view group, uint64_t offset) {
  SLUICE_ASSERT(group.size() <= kMaxGroupBytes);
  const size_t n = EntryBytes(group.size());
  if (used_ + n > kBufferBytes) return false;
  EncodeEntry(active() + used_, kind, group, offset);
  used_ += n;
  return true;
}

bool AckLog::Delete(uint64_t offset) { return Append(AckKind::kDelete, {}, offset); }
bool AckLog::Commit(std::string_view group, uint64_t offset) {
  return Append(AckKind::kCommit, group, offset);
}
bool AckLog::DeletedBelow(uint64_t offset) { return Append(AckKind::kDeletedBelow, {}, offset); }

absl::Status AckLog::Flush(bool sync) {
  SLUICE_ASSERT(ops_ == 0 && flight_len_ == 0);  // nothing of the ring's path in flight
  if (failed_) return absl::DataLossError(failure_);
  if (used_ > 0) {
    if (absl::Status s = PwriteFull(fd_.get(), {active(), used_}, file_bytes_, path_); !s.ok()) {
      return s;
    }
    file_bytes_ += used_;
    used_ = 0;
  }
  if (sync && ::fdatasync(fd_.get()) != 0) return ErrnoStatus(errno, "fdatasync", path_);
  return absl::OkStatus();
}

// ---- through the ring ----------------------------------------------------------------------

void AckLog::Attach(AckRing* ring, uint64_t cookie) {
  SLUICE_ASSERT(ring_ == nullptr && ring != nullptr);
  ring_ = ring;
  cookie_ = cookie;
  bufs_[1].resize(kBufferBytes);
}

void AckLog::StartFlush(bool sync) {
  SLUICE_ASSERT(ring_ != nullptr);
  if (sync) {
    ++syncs_requested_;
    sync_wanted_ = true;
  }
  Pump();
}

void AckLog::Pump() {
  if (failed_ || ops_ > 0) return;
  if (flight_len_ == 0 && used_ > 0) {
    // The filled buffer goes; entries from now on accumulate in the other one.
    flight_buf_ = active_;
    flight_len_ = static_cast<uint32_t>(used_);
    flight_done_ = 0;
    active_ ^= 1;
    used_ = 0;
  }
  const bool sync = sync_wanted_;
  if (flight_len_ > 0) {
    if (!ring_->PrepWrite(this, fd_.get(), bufs_[flight_buf_].data() + flight_done_,
                          flight_len_ - flight_done_, file_bytes_ + flight_done_, sync)) {
      return;  // no submission entry now: the next StartFlush tries again
    }
  } else if (sync) {
    if (!ring_->PrepSync(this, fd_.get())) return;
  } else {
    return;
  }
  if (sync) {
    sync_wanted_ = false;
    sync_void_ = false;
    sync_covers_ = syncs_requested_;
  }
}

void AckLog::Fail(int err, std::string_view what) {
  if (failed_) return;
  failed_ = true;
  failure_ = absl::StrCat(absl::string_view(what.data(), what.size()), " ", path_, ": ",
                          std::strerror(err));
}

bool AckLog::OnCompletion(int op, int res) {
  SLUICE_ASSERT(ops_ > 0);
  --ops_;
  const bool was_failed = failed_;
  if (op == AckRing::kWrite) {
    if (res == -EAGAIN || res == -EINTR) {
      sync_void_ = true;  // a linked sync ran (or was cancelled) without this write
      ++ring_->stats_.requeued;
    } else if (res < 0) {
      Fail(-res, "ack log write to");
    } else if (res == 0) {
      Fail(EIO, "ack log write (no progress) to");
    } else {
      flight_done_ += static_cast<uint32_t>(res);
      SLUICE_ASSERT(flight_done_ <= flight_len_);
      if (flight_done_ < flight_len_) {
        sync_void_ = true;  // short: the rest is re-queued, and the sync with it
        ++ring_->stats_.requeued;
      } else {
        file_bytes_ += flight_len_;
        flight_len_ = 0;
        flight_done_ = 0;
      }
    }
  } else {
    if (res == -ECANCELED || res == -EAGAIN || res == -EINTR || (res == 0 && sync_void_)) {
      sync_wanted_ = true;  // its write did not complete: again, behind the rest of it
    } else if (res < 0) {
      Fail(-res, "ack log fdatasync of");
    } else if (sync_covers_ > syncs_done_) {
      ring_->stats_.syncs_covered += sync_covers_ - syncs_done_;
      syncs_done_ = sync_covers_;
    }
  }
  if (failed_ && !was_failed) return false;
  if (ops_ == 0) Pump();  // the rest, the next buffer, or a sync asked for meanwhile
  return true;
}

}  // namespace sluice::storage
