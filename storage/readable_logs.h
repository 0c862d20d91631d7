// What a reader (uring_reader.h) reads: partitions' logs by handle, as their owner keeps them on
// the reader's thread. The writer of a shard lcore is one (UringWriter: its own partitions, as it
// writes them); a dedicated replication lcore, which writes none of the primary's logs, has
// another (dataplane LogFileReader: the log states it finds on disk, read-only). The reader only
// asks; it never changes a partition, except for caching each segment's read fd in its
// SegmentState (read_fd), which the owner keeps while it keeps the segment.
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/shard/types.h"
#include "storage/batch_format.h"
#include "storage/log_state.h"

namespace sluice::storage {

struct PartitionSpec {
  std::string data_dir;
  PartitionId id;
  shard::Durability durability = shard::Durability::kWrite;
  uint64_t epoch = 0;
};

using PartitionHandle = uint32_t;

class ReadableLogs {
 public:
  // Not closed: a read that completes after its partition closed checks this (the handle may
  // name another partition by then).
  virtual bool is_open(PartitionHandle h) const = 0;
  // The log cannot be read (a failed writer; a log state that could not be found): every read
  // answers kStorageFailed.
  virtual bool failed(PartitionHandle h) const = 0;
  virtual const LogState& log(PartitionHandle h) const = 0;
  virtual const PartitionSpec& spec(PartitionHandle h) const = 0;
  // Reads stay below this offset (and each segment below its end_position).
  virtual shard::DurableOffset durable(PartitionHandle h) const = 0;
  // The partition directory (segments are opened relative to it through the reader's ring); -1:
  // none (the reader then opens a segment with a blocking open).
  virtual int dir_fd(PartitionHandle h) const = 0;

 protected:
  ~ReadableLogs() = default;
};

}  // namespace sluice::storage
