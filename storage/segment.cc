#include "storage/segment.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "protocol/assert.h"
#include "storage/crc32c.h"

namespace sluice::storage {
namespace {

constexpr size_t kScanChunkBytes = 4 << 20;  // sequential read size of a scan
constexpr uint32_t kMaxStrideBytes = 64 << 20;

std::span<const std::byte> AsBytes(const IndexEntry& e) {
  return {reinterpret_cast<const std::byte*>(&e), sizeof e};
}

}  // namespace

// ---- index ---------------------------------------------------------------------------------

IndexEntry MakeIndexEntry(IndexKind kind, uint64_t offset, uint64_t position, uint64_t ts_ns) {
  IndexEntry e;
  e.offset = offset;
  e.position = position;
  e.timestamp_ns = ts_ns;
  e.kind = kind;
  e.crc = Crc32c(AsBytes(e).first(offsetof(IndexEntry, crc)));
  return e;
}

bool IndexEntryValid(const IndexEntry& e) {
  return (e.kind == IndexKind::kBatch || e.kind == IndexKind::kSeal) &&
         e.crc == Crc32c(AsBytes(e).first(offsetof(IndexEntry, crc)));
}

void SegmentIndex::Add(const IndexEntry& e) {
  SLUICE_ASSERT(!seal_.has_value());
  if (!entries_.empty()) {
    const IndexEntry& last = entries_.back();
    SLUICE_ASSERT(e.offset > last.offset && e.position > last.position &&
                  e.timestamp_ns >= last.timestamp_ns);
  }
  entries_.push_back(e);
}

void SegmentIndex::Seal(uint64_t end_offset, uint64_t end_position, uint64_t last_ts_ns) {
  SLUICE_ASSERT(entries_.empty() || end_offset > entries_.back().offset);
  seal_ = MakeIndexEntry(IndexKind::kSeal, end_offset, end_position, last_ts_ns);
}

const IndexEntry* SegmentIndex::FloorOffset(uint64_t offset) const {
  auto it = std::upper_bound(entries_.begin(), entries_.end(), offset,
                             [](uint64_t o, const IndexEntry& e) { return o < e.offset; });
  return it == entries_.begin() ? nullptr : &*(it - 1);
}

const IndexEntry* SegmentIndex::FloorTimestamp(uint64_t ts_ns) const {
  if (entries_.empty()) return nullptr;
  auto it = std::lower_bound(entries_.begin(), entries_.end(), ts_ns,
                             [](const IndexEntry& e, uint64_t t) { return e.timestamp_ns < t; });
  return it == entries_.begin() ? &entries_.front() : &*(it - 1);
}

const IndexEntry* SegmentIndex::Next(const IndexEntry* e) const {
  SLUICE_ASSERT(e >= entries_.data() && e < entries_.data() + entries_.size());
  return e + 1 == entries_.data() + entries_.size() ? nullptr : e + 1;
}

// ---- scan ----------------------------------------------------------------------------------

absl::StatusOr<ScanEnd> ScanSegment(
    const std::string& path, PartitionId id, uint64_t position, uint64_t offset, uint32_t align,
    absl::FunctionRef<bool(const BatchHeader&, std::span<const std::byte>, uint64_t)> fn,
    size_t chunk_bytes) {
  SLUICE_ASSERT(position % align == 0);
  bool direct = false;
  absl::StatusOr<Fd> fd = OpenMaybeDirect(path, O_RDONLY, &direct);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<uint64_t> size = FileSize(fd->get(), path);
  if (!size.ok()) return size.status();

  ScanEnd end;
  end.position = position;
  end.next_offset = offset;
  AlignedBuffer buf(chunk_bytes != 0 ? AlignUp(chunk_bytes, 4096) : kScanChunkBytes);
  uint64_t buf_pos = position;  // file position of buf[0]
  size_t buf_len = 0;
  // Makes [pos, pos + need) available in buf (need <= capacity); false at end of file.
  auto fill = [&](uint64_t pos, size_t need) -> absl::StatusOr<bool> {
    if (pos >= buf_pos && pos + need <= buf_pos + buf_len) return true;
    if (pos + need > *size) return false;
    if (need > buf.size()) buf = AlignedBuffer(AlignUp(need, 1 << 20));
    buf_pos = AlignDown(pos, 4096);
    const size_t want = std::min<uint64_t>(buf.size(), AlignUp(*size - buf_pos, 4096));
    size_t got = 0;
    if (absl::Status s = PreadFull(fd->get(), buf.span().first(want), buf_pos, &got); !s.ok()) {
      return s;
    }
    buf_len = got;
    return pos + need <= buf_pos + buf_len;
  };

  while (true) {
    absl::StatusOr<bool> have = fill(end.position, kBatchHeaderBytes);
    if (!have.ok()) return have.status();
    if (!*have) {
      end.stop = BatchCheck::kEmpty;  // end of file: the segment is full
      break;
    }
    BatchHeader h = ReadHeader({buf.data() + (end.position - buf_pos), kBatchHeaderBytes});
    end.bad = h;
    size_t stride = kBatchHeaderBytes;
    if (h.magic == kBatchMagic && h.stride_bytes % align == 0 && h.stride_bytes > 0 &&
        h.stride_bytes <= kMaxStrideBytes) {
      stride = h.stride_bytes;
      have = fill(end.position, stride);
      if (!have.ok()) return have.status();
      if (!*have) {
        end.stop = BatchCheck::kTruncated;
        break;
      }
    }
    const std::span<const std::byte> bytes{buf.data() + (end.position - buf_pos),
                                           buf_pos + buf_len - end.position};
    BatchCheck c = VerifyBatch(bytes, align, &h);
    if (c == BatchCheck::kOk && (h.queue != id.queue || h.partition != id.partition)) {
      c = BatchCheck::kWrongPartition;
    }
    if (c == BatchCheck::kOk && h.base_offset != end.next_offset) c = BatchCheck::kBadRecords;
    if (c != BatchCheck::kOk) {
      end.stop = c;
      break;
    }
    if (!fn(h, bytes.first(h.stride_bytes), end.position)) {
      end.stop = BatchCheck::kEmpty;
      break;
    }
    end.position += h.stride_bytes;
    end.next_offset = h.end_offset();
    end.last_timestamp_ns = h.last_timestamp_ns;
    ++end.batches;
    end.bytes += h.stride_bytes;
  }
  return end;
}

// ---- directory -----------------------------------------------------------------------------

std::string PartitionDir::DirName(PartitionId id) {
  return absl::StrCat(id.queue, "-", id.partition);
}

bool PartitionDir::ParseDirName(std::string_view name, PartitionId* id) {
  const size_t dash = name.find('-');
  if (dash == std::string_view::npos) return false;
  return absl::SimpleAtoi(absl::string_view(name.data(), dash), &id->queue) &&
         absl::SimpleAtoi(absl::string_view(name.data() + dash + 1, name.size() - dash - 1),
                          &id->partition);
}

absl::StatusOr<PartitionDir> PartitionDir::Open(const std::string& data_dir, PartitionId id,
                                                bool create) {
  PartitionDir dir(absl::StrCat(data_dir, "/", DirName(id)), id);
  if (create) {
    if (absl::Status s = MakeDirs(dir.path_); !s.ok()) return s;
  } else if (::access(dir.path_.c_str(), F_OK) != 0) {
    return ErrnoStatus(errno, "access", dir.path_);
  }
  return dir;
}

std::string PartitionDir::LogPath(uint64_t base) const {
  char name[32];
  std::snprintf(name, sizeof name, "%020" PRIu64 ".log", base);
  return absl::StrCat(path_, "/", name);
}

std::string PartitionDir::IndexPath(uint64_t base) const {
  char name[32];
  std::snprintf(name, sizeof name, "%020" PRIu64 ".index", base);
  return absl::StrCat(path_, "/", name);
}

absl::StatusOr<std::vector<uint64_t>> PartitionDir::ListSegments() const {
  DIR* d = ::opendir(path_.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "opendir", path_);
  std::vector<uint64_t> bases;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name(e->d_name);
    uint64_t base = 0;
    if (name.size() == 24 && name.substr(20) == ".log" &&
        absl::SimpleAtoi(absl::string_view(name.data(), 20), &base)) {
      bases.push_back(base);
    }
  }
  ::closedir(d);
  std::sort(bases.begin(), bases.end());
  return bases;
}

absl::StatusOr<Fd> PartitionDir::CreateSegment(uint64_t base, uint64_t bytes, bool* direct) const {
  const std::string log = LogPath(base);
  absl::StatusOr<Fd> fd = OpenMaybeDirect(log, O_RDWR | O_CREAT | O_EXCL, direct);
  if (!fd.ok()) return fd.status();
  if (int err = ::posix_fallocate(fd->get(), 0, static_cast<off_t>(bytes)); err != 0) {
    ::unlink(log.c_str());
    return ErrnoStatus(err, "fallocate", log);
  }
  // The file's size and extents must be durable before data in it is acknowledged.
  if (::fsync(fd->get()) != 0) return ErrnoStatus(errno, "fsync", log);
  Fd index(::open(IndexPath(base).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!index.valid()) return ErrnoStatus(errno, "open", IndexPath(base));
  if (absl::Status s = FsyncDir(path_); !s.ok()) return s;
  return fd;
}

absl::StatusOr<Fd> PartitionDir::PrepareSpare(uint64_t bytes, bool direct_io, bool* direct) const {
  const std::string spare = SparePath();
  if (::unlink(spare.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink", spare);
  const int flags = O_RDWR | O_CREAT | O_EXCL;
  absl::StatusOr<Fd> fd = direct_io ? OpenMaybeDirect(spare, flags, direct)
                                    : OpenBuffered(spare, flags, direct);
  if (!fd.ok()) return fd.status();
  if (int err = ::posix_fallocate(fd->get(), 0, static_cast<off_t>(bytes)); err != 0) {
    ::unlink(spare.c_str());
    return ErrnoStatus(err, "fallocate", spare);
  }
  // As for CreateSegment: size and extents durable before any data in the file is acknowledged.
  if (::fsync(fd->get()) != 0) return ErrnoStatus(errno, "fsync", spare);
  if (absl::Status s = FsyncDir(path_); !s.ok()) return s;
  return fd;
}

absl::Status PartitionDir::RemoveSpare(bool* removed) const {
  *removed = false;
  const std::string spare = SparePath();
  if (::unlink(spare.c_str()) == 0) {
    *removed = true;
  } else if (errno != ENOENT) {
    return ErrnoStatus(errno, "unlink", spare);
  }
  return absl::OkStatus();
}

absl::Status PartitionDir::RemoveSegment(uint64_t base) const {
  const std::string log = LogPath(base);
  if (::unlink(log.c_str()) != 0) return ErrnoStatus(errno, "unlink", log);
  const std::string index = IndexPath(base);
  if (::unlink(index.c_str()) != 0 && errno != ENOENT) return ErrnoStatus(errno, "unlink", index);
  return FsyncDir(path_);
}

absl::Status RestartLog(const PartitionDir& dir, uint64_t start, uint64_t segment_bytes) {
  absl::StatusOr<std::vector<uint64_t>> bases = dir.ListSegments();
  if (!bases.ok()) return bases.status();
  for (uint64_t base : *bases) {
    if (base >= start) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: a segment starts at %u, at or past the new start %u: not restarting",
          dir.path(), base, start));
    }
  }
  for (uint64_t base : *bases) {  // ascending: the log stays contiguous at every step
    if (absl::Status s = dir.RemoveSegment(base); !s.ok()) return s;
  }
  bool removed = false;
  if (absl::Status s = dir.RemoveSpare(&removed); !s.ok()) return s;
  bool direct = false;
  absl::StatusOr<Fd> fd = dir.CreateSegment(start, segment_bytes, &direct);
  return fd.ok() ? absl::OkStatus() : fd.status();
}

absl::StatusOr<SegmentIndex> PartitionDir::LoadIndex(uint64_t base) const {
  const std::string path = IndexPath(base);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open", path);
  absl::StatusOr<uint64_t> size = FileSize(fd.get(), path);
  if (!size.ok()) return size.status();
  std::vector<IndexEntry> raw(*size / sizeof(IndexEntry));
  size_t got = 0;
  absl::Status s = PreadFull(fd.get(), {reinterpret_cast<std::byte*>(raw.data()),
                                        raw.size() * sizeof(IndexEntry)}, 0, &got);
  if (!s.ok()) return s;
  SegmentIndex index;
  index.Reserve(raw.size());
  for (const IndexEntry& e : raw) {
    if (!IndexEntryValid(e) || index.seal().has_value()) break;  // torn tail: ignore the rest
    const bool ordered = index.empty()
        ? (e.kind == IndexKind::kBatch && e.offset == base && e.position == 0)
        : (e.offset > index.entries().back().offset && e.position > index.entries().back().position &&
           e.timestamp_ns >= index.entries().back().timestamp_ns);
    if (!ordered) break;
    if (e.kind == IndexKind::kSeal) {
      index.Seal(e.offset, e.position, e.timestamp_ns);
    } else {
      index.Add(e);
    }
  }
  return index;
}

absl::Status PartitionDir::WriteIndex(uint64_t base, const SegmentIndex& index) const {
  std::vector<IndexEntry> all = index.entries();
  if (index.seal()) all.push_back(*index.seal());
  const std::string path = IndexPath(base);
  const std::string tmp = path + ".tmp";
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoStatus(errno, "open", tmp);
    absl::Status s = PwriteFull(fd.get(), {reinterpret_cast<const std::byte*>(all.data()),
                                           all.size() * sizeof(IndexEntry)}, 0, tmp);
    if (!s.ok()) return s;
    if (::fdatasync(fd.get()) != 0) return ErrnoStatus(errno, "fdatasync", tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus(errno, "rename", tmp);
  return FsyncDir(path_);
}

absl::StatusOr<SegmentIndex> PartitionDir::RebuildIndex(uint64_t base, uint32_t align,
                                                        uint32_t interval, bool seal) const {
  SegmentIndex index;
  uint64_t last_entry_position = 0;
  absl::StatusOr<ScanEnd> end = ScanSegment(
      LogPath(base), id_, 0, base, align,
      [&](const BatchHeader& h, std::span<const std::byte>, uint64_t position) {
        if (index.empty() || position >= last_entry_position + interval) {
          index.Add(MakeIndexEntry(IndexKind::kBatch, h.base_offset, position, h.first_timestamp_ns));
          last_entry_position = position;
        }
        return true;
      });
  if (!end.ok()) return end.status();
  if (seal && end->batches > 0) index.Seal(end->next_offset, end->position, end->last_timestamp_ns);
  return index;
}

absl::Status TruncateSegment(const std::string& path, uint64_t position, uint64_t segment_bytes) {
  Fd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "open", path);
  if (::ftruncate(fd.get(), static_cast<off_t>(position)) != 0) {
    return ErrnoStatus(errno, "ftruncate", path);
  }
  if (segment_bytes > position) {
    if (int err = ::posix_fallocate(fd.get(), 0, static_cast<off_t>(segment_bytes)); err != 0) {
      return ErrnoStatus(err, "fallocate", path);
    }
  }
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync", path);
  return absl::OkStatus();
}

}  // namespace sluice::storage
