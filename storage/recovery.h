// Recovery at start: per partition, make the log consistent and say what it holds.
//
// For each segment, oldest first: load its index (rebuild it from the log if missing or bad),
// then verify batches — every batch (verify_all), or from the last index checkpoint on (a sealed
// segment's index vouches for the batches before its seal). Stop at the first torn or corrupt
// batch, or at a batch whose offset does not continue the previous one; cut the log there (the
// rest of that segment becomes zeros again, later segments are removed) and report what was cut.
// The records from `feed_from_offset` on are returned, so the shell can rebuild the engine; for
// work queues those deleted in the ack log are left out. Partitions run in parallel (TBB).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "storage/ack_log.h"
#include "storage/batch_format.h"
#include "storage/log_state.h"

namespace sluice::storage {

struct RecoveryOptions {
  uint32_t align_bytes = 4096;
  uint32_t index_interval_bytes = 1 << 20;  // for indexes it rebuilds (as the writer's)
  uint64_t segment_bytes = 256ull << 20;    // a cut segment is preallocated back to this
  bool verify_all = true;  // false: trust sealed indexes, scan only from the last checkpoint
  bool repair = true;      // false: report only, change nothing on disk
};

struct PartitionToRecover {
  std::string data_dir;
  PartitionId id;
  uint64_t feed_from_offset = 0;  // records at or after it are returned; UINT64_MAX = none
  bool skip_deleted = false;      // work queues: leave out offsets the ack log deleted
};

struct RecoveryReport {
  PartitionId id;
  uint64_t start_offset = 0;    // oldest offset on disk
  uint64_t next_offset = 0;     // the engine continues here
  uint32_t segments = 0;
  uint64_t batches_scanned = 0;
  uint64_t bytes_scanned = 0;
  uint32_t indexes_rebuilt = 0;
  // The cut, if any.
  bool cut = false;
  uint64_t cut_segment = 0;     // base offset of the segment cut
  uint64_t cut_position = 0;
  BatchCheck cut_reason = BatchCheck::kOk;
  uint64_t bytes_cut = 0;       // non-zero bytes discarded (to the last non-zero 4 KiB block)
  uint64_t batches_cut = 0;     // batch headers seen (magic) in what was discarded
  uint32_t segments_removed = 0;
  uint64_t ack_bytes_cut = 0;
  bool spare_removed = false;   // a next.spare was present (removed when repairing)
  double seconds = 0;
};

struct RecoveredRecord {
  uint64_t offset;
  uint64_t timestamp_ns;
  uint64_t producer_id;
  uint32_t pos;     // in RecoveredPartition::data
  uint32_t length;
};

struct RecoveredPartition {
  absl::Status status;  // not ok: the partition could not be recovered (I/O error): do not open it
  RecoveryReport report;
  LogState log;         // hand to UringWriter::OpenPartition
  AckState acks;        // deletes and group commits
  std::vector<RecoveredRecord> records;  // in offset order
  std::vector<std::byte> data;
  std::span<const std::byte> record(const RecoveredRecord& r) const { return {data.data() + r.pos, r.length}; }
};

RecoveredPartition RecoverPartition(const PartitionToRecover& what, const RecoveryOptions& options);

// A log's state found again, read-only, from an earlier one that it updates in place: for a
// reader of a log another thread writes (a dedicated replication lcore's LogFileReader, which
// writes none of the primary's logs). Segments no longer in the directory leave `log` from its
// front (retention); the last known segment is scanned on from its known end, batch by batch
// and verified as recovery verifies; segments after it are added as recovery adds them with
// verify_all off (a sealed index trusted, else a scan from its last checkpoint), while each
// continues the one before. Nothing below the last known segment's end is read again, no index
// of a known segment is loaded again, the ack log is not read, and nothing is repaired: a torn
// or half-written tail just ends the state there for now. The segments kept keep their read_fd.
// FailedPrecondition: what is on disk does not continue `log` (a known segment missing from the
// middle, every known one gone, a valid batch of another offset where the log should go on: the
// partition was recreated): the caller finds the state from scratch (RecoverPartition); `log`
// is then unspecified. `*scanned`: bytes of batches read.
absl::Status RefreshLog(const std::string& data_dir, PartitionId id, const RecoveryOptions& o,
                        LogState* log, uint64_t* scanned);

struct RecoveryRun {
  std::vector<RecoveredPartition> partitions;  // same order as the input
  double seconds = 0;
  uint64_t bytes_scanned = 0;
  double gb_per_s() const { return seconds > 0 ? bytes_scanned / seconds / 1e9 : 0; }
};
// All partitions, in parallel (tbb::parallel_for, one task per partition).
RecoveryRun RecoverAll(std::span<const PartitionToRecover> what, const RecoveryOptions& options);

// The partitions present in a data directory ("<queue>-<partition>" subdirectories).
absl::StatusOr<std::vector<PartitionId>> ListPartitions(const std::string& data_dir);

// One line for the log: what was recovered and, if anything, what was cut.
std::string FormatReport(const RecoveryReport& r);

}  // namespace sluice::storage
