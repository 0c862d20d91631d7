// Raw batches of a partition's log by base offset, with blocking preads (docs/replication.md §5):
// the standby finds where to cut a divergent tail (rare, control-path work). The primary's
// catch-up does not use it: it reads through the worker's io_uring (UringReader, FetchBy::kBatch,
// which verifies each batch the same way); Read is the reference its tests compare against. Not for the per-message path: a read is one or two
// preads per batch, plus header preads to walk from the nearest index entry on a cold start;
// sequential reads continue from the last one without walking.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "protocol/errc.h"
#include "storage/batch_format.h"
#include "storage/io.h"
#include "storage/log_state.h"

namespace sluice::storage {

class BatchReader {
 public:
  // `data_dir`: the data directory holding the partition's directory.
  BatchReader(std::string data_dir, PartitionId id, uint32_t align_bytes = 4096)
      : dir_(std::move(data_dir)), id_(id), align_(align_bytes) {}

  struct Location {
    uint64_t segment_base = 0;
    uint64_t position = 0;  // where the batch starts (== the segment's end_position at the end)
  };
  // Where the batch that starts at `offset` lies; `offset` may be the log's end. NotFound if no
  // batch starts there.
  absl::StatusOr<Location> Locate(const LogState& log, uint64_t offset);

  // Reads the batch starting at `offset` (header + payload, no padding; verified) into `out`.
  // kOk: *len bytes, *end its end offset; kOffsetOutOfRange: no durable batch starts there;
  // kMessageTooLarge: `out` is too small; kStorageFailed: I/O error or a bad batch.
  Errc Read(const LogState& log, uint64_t offset, std::span<std::byte> out, uint32_t* len,
            uint64_t* end);

 private:
  absl::Status OpenSegment(uint64_t base);
  std::string dir_;
  PartitionId id_;
  uint32_t align_;
  Fd fd_;
  uint64_t fd_base_ = UINT64_MAX;
  // The batch after the last one read: sequential reads start there.
  uint64_t next_offset_ = UINT64_MAX;
  uint64_t next_position_ = 0;
  uint64_t next_base_ = UINT64_MAX;
};

}  // namespace sluice::storage
