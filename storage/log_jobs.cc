#include "storage/log_jobs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "storage/batch_reader.h"
#include "storage/io.h"

namespace sluice::storage {

absl::Status CutLog(const std::string& data_dir, PartitionId id, const LogState& log,
                    uint64_t to) {
  BatchReader reader(data_dir, id);
  absl::StatusOr<BatchReader::Location> loc = reader.Locate(log, to);
  if (!loc.ok()) return loc.status();
  absl::StatusOr<PartitionDir> dir = PartitionDir::Open(data_dir, id, false);
  if (!dir.ok()) return dir.status();
  // Zeros from the cut to the end of its segment (the preallocated size stays), later segments
  // removed, the index rebuilt by recovery.
  for (const SegmentState& s : log.segments) {
    if (s.base_offset > loc->segment_base) {
      if (absl::Status st = dir->RemoveSegment(s.base_offset); !st.ok()) return st;
      continue;
    }
    if (s.base_offset != loc->segment_base) continue;
    const std::string path = dir->LogPath(s.base_offset);
    bool direct = false;
    absl::StatusOr<Fd> fd = OpenBuffered(path, O_RDWR | O_CLOEXEC, &direct);
    if (!fd.ok()) return fd.status();
    absl::StatusOr<uint64_t> size = FileSize(fd->get(), path);
    if (!size.ok()) return size.status();
    if (ftruncate(fd->get(), static_cast<off_t>(loc->position)) != 0 ||
        ftruncate(fd->get(), static_cast<off_t>(*size)) != 0 || fsync(fd->get()) != 0) {
      return absl::InternalError(absl::StrFormat("cut %s at %u: %s", path, loc->position,
                                                 std::strerror(errno)));
    }
    unlink(dir->IndexPath(s.base_offset).c_str());  // rebuilt from the log by recovery
  }
  return absl::OkStatus();
}

absl::Status PartitionOpenJob::ApplyChange() {
  switch (change) {
    case Change::kNone:
      return absl::OkStatus();
    case Change::kCut: {
      if (!closed_log.has_value()) {
        RecoveredPartition r =
            RecoverPartition(PartitionToRecover{data_dir, id, UINT64_MAX, false}, recovery);
        if (!r.status.ok()) return r.status;
        closed_log.emplace(std::move(r.log));
      }
      return CutLog(data_dir, id, *closed_log, offset);
    }
    case Change::kRestart: {
      absl::StatusOr<PartitionDir> dir = PartitionDir::Open(data_dir, id, true);
      if (!dir.ok()) return dir.status();
      return RestartLog(*dir, offset, segment_bytes);
    }
  }
  return absl::InternalError("unknown change");
}

absl::Status PartitionOpenJob::Run() {
  change_status = ApplyChange();
  closed_log.reset();  // its segments' read descriptors are released here, not on the lcore
  if (recovered.has_value() && change == Change::kNone) {
    rec = std::move(*recovered);
  } else {
    rec = RecoverPartition(PartitionToRecover{data_dir, id, UINT64_MAX, false}, recovery);
  }
  recovered.reset();
  if (!rec.status.ok()) return rec.status;
  rec.records = {};  // a standby restores nothing into an engine: freed here
  rec.data = {};
  // The ack log, compacted to the log's start as a primary's is at open.
  rec.acks.Compact(rec.log.start_offset());
  absl::StatusOr<PreparedFiles> f =
      UringWriter::PrepareFiles(data_dir, id, &rec.log, segment_bytes, direct_io);
  if (!f.ok()) return f.status();
  files = std::move(*f);
  absl::StatusOr<AckLog> a = AckLog::Open(files.dir->path(), files.dir->AckLogPath(), rec.acks);
  if (!a.ok()) return a.status();
  acks.emplace(std::move(*a));
  return absl::OkStatus();
}

absl::Status LogStateJob::Run() {
  if (known.has_value()) {
    if (RefreshLog(data_dir, id, recovery, &*known, &scanned_bytes).ok()) {
      refreshed = true;
      log = std::move(*known);
      known.reset();
      return absl::OkStatus();
    }
    known.reset();  // unspecified now; its read fds (shared with the lcore's state) dropped here
  }
  rescanned = true;
  RecoveredPartition rec = RecoverPartition(PartitionToRecover{data_dir, id, UINT64_MAX, false},
                                            recovery);
  const std::string path = data_dir + "/" + PartitionDir::DirName(id);
  dir = Fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!rec.status.ok()) return rec.status;
  log = std::move(rec.log);
  return absl::OkStatus();
}

absl::Status ReleaseLogStateJob::Run() {
  log = LogState{};
  dir = Fd();
  return absl::OkStatus();
}

absl::Status AckLoadJob::Run() {
  absl::StatusOr<PartitionDir> dir = PartitionDir::Open(data_dir, id, false);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<AckState> s = AckLog::Load(dir->AckLogPath(), &report);
  if (!s.ok()) return s.status();
  state = std::move(*s);
  return absl::OkStatus();
}

absl::Status AckReplaceJob::Run() {
  absl::StatusOr<PartitionDir> dir = PartitionDir::Open(data_dir, id, true);
  if (!dir.ok()) return dir.status();
  absl::StatusOr<AckLog> a = AckLog::Open(dir->path(), dir->AckLogPath(), state);
  if (!a.ok()) return a.status();
  acks.emplace(std::move(*a));
  return absl::OkStatus();
}

}  // namespace sluice::storage
