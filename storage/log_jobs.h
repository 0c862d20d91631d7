// A partition log's control-path file work as jobs for the file worker (storage/file_worker.h):
// a standby's partition opened, after a cut of a divergent tail or a restart of its log at the
// primary's start when one is asked for (docs/replication.md §4). Everything blocking happens in
// Run, on the worker's thread: the change (preads to find the cut, ftruncate, unlinks, fsyncs, a
// segment's creation), the recovery of what the change left, the ack log's rewrite, the active
// segment's opening (UringWriter::PrepareFiles). The lcore then only adopts the result
// (UringWriter::AdoptPartition: no blocking file-system call).
//
// The steps and their order are those the lcore made before (ReplicationShell::Truncate and
// RestartAt until session 10): a crash at any point leaves what a crash at the same point left
// then, and recovery reads it the same way (storage_recovery_test
// LogRestartedAtALaterStartAndEveryCrashPointOnTheWay; log_jobs_test for the cut).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "storage/ack_log.h"
#include "storage/file_worker.h"
#include "storage/log_state.h"
#include "storage/recovery.h"
#include "storage/segment.h"
#include "storage/uring_writer.h"

namespace sluice::storage {

// Cuts the closed log of (data_dir, id) at `to` (the first offset dropped; a batch boundary of
// `log`, or its end): zeros from there to the end of its segment (the preallocated size stays,
// fsynced), later segments removed (each unlink followed by a directory fsync), the cut
// segment's index removed (recovery rebuilds it). Blocking; the partition's writer must have
// closed it.
absl::Status CutLog(const std::string& data_dir, PartitionId id, const LogState& log, uint64_t to);

class PartitionOpenJob final : public FileJob {
 public:
  enum class Change : uint8_t { kNone, kCut, kRestart };

  // ---- input, set before Submit ----
  std::string data_dir;
  PartitionId id{};
  Change change = Change::kNone;
  // kCut: the first offset dropped; kRestart: the log's new start (RestartLog).
  uint64_t offset = 0;
  // kCut: the log as its writer closed it (where the cut falls). Unset: recovered from the files
  // first (a partition a failed reopen left closed).
  std::optional<LogState> closed_log;
  // kNone: start-up recovery's result for the partition, used instead of recovering again.
  std::optional<RecoveredPartition> recovered;
  uint64_t segment_bytes = 0;
  bool direct_io = true;  // the adopting writer's
  RecoveryOptions recovery;

  // ---- output, the lcore's once done() ----
  // The cut's or restart's own result. Not OK: the files are as that step left them (as a crash
  // there would), and the log is opened as it now is, when it can be (status()).
  absl::Status change_status;
  RecoveredPartition rec;  // its log state and ack state (no records)
  std::optional<AckLog> acks;  // compacted to the log's start, open for appending
  PreparedFiles files;         // for UringWriter::AdoptPartition
  // status(): the open's (recovery, ack log, active segment). OK: adopt rec.log with files.

 protected:
  absl::Status Run() override;

 private:
  absl::Status ApplyChange();
};

// A partition's ack log read whole (AckLog::Load: open, reads), for a primary's snapshot of it
// to a standby that cannot continue its ack stream (docs/replication.md §13). The lcore flushed
// the log (its writes completed) before submitting it.
class AckLoadJob final : public FileJob {
 public:
  // ---- input, set before Submit ----
  std::string data_dir;
  PartitionId id{};

  // ---- output, the lcore's once done() and status() is OK ----
  AckState state;
  AckLoadReport report;

 protected:
  absl::Status Run() override;
};

// A partition's ack log replaced whole by `state` (a standby taking the primary's snapshot,
// docs/replication.md §13): AckLog::Open's temporary file, fsync, rename and directory fsync, on
// the worker's thread. The lcore adopts the opened log; until then the partition's old log takes
// nothing (the ack stream's records after the snapshot wait in its receiver).
class AckReplaceJob final : public FileJob {
 public:
  // ---- input, set before Submit ----
  std::string data_dir;
  PartitionId id{};
  AckState state;  // also what the lcore checks the result against when it adopts it

  // ---- output, the lcore's once done() and status() is OK ----
  std::optional<AckLog> acks;  // open for appending

 protected:
  absl::Status Run() override;
};

// A log's state found again off the lcore, read-only, for a reader of a log another thread
// writes (a dedicated replication lcore's LogFileReader, dataplane/replication_handoff.h): the
// blocking part of its catch-up reads. From `known` when set (RefreshLog: retention's removals
// from the front, the tail scanned on from its known end); else, or when the files do not
// continue `known` (RefreshLog's FailedPrecondition: a recreated partition) or the refresh
// fails, a recovery scan from scratch (RecoverPartition with `recovery`, which the reader sets
// to repair nothing), which also opens the partition directory anew. The lcore copies its state
// into `known` (the copy shares the segments' read fds), keeps reading with its own meanwhile,
// and adopts `log` once done().
class LogStateJob final : public FileJob {
 public:
  // ---- input, set before Submit ----
  std::string data_dir;
  PartitionId id{};
  RecoveryOptions recovery;
  std::optional<LogState> known;  // unset: from scratch

  // ---- output, the lcore's once done() ----
  LogState log;              // status() OK: the state found
  bool refreshed = false;    // RefreshLog continued `known` (no scan from scratch)
  bool rescanned = false;    // a recovery scan from scratch ran
  uint64_t scanned_bytes = 0;  // bytes of batches RefreshLog read
  Fd dir;                    // rescanned: the partition directory (-1: none, e.g. no files yet)
  // status(): not OK when no state could be found (the scan's I/O error): the reader then
  // answers kStorageFailed for the partition until a later job finds one.

 protected:
  absl::Status Run() override;
};

// What a reader replaced, released on the worker's thread: a log state whose segments' read fds
// may be the last descriptors of files retention unlinked (their close frees the blocks: not a
// call for a polling lcore), and a partition directory's fd.
class ReleaseLogStateJob final : public FileJob {
 public:
  LogState log;
  Fd dir;

 protected:
  absl::Status Run() override;
};

}  // namespace sluice::storage
