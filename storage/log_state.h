// What storage knows about one partition's files after recovery, and keeps current while it
// writes: the segments in offset order, each with its index and the end of its durable bytes.
// Recovery (recovery.h) produces it; UringWriter::OpenPartition takes it over; the reader
// (uring_reader.h) looks fetches up in it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "storage/io.h"
#include "storage/segment.h"

namespace sluice::storage {

struct SegmentState {
  uint64_t base_offset = 0;
  uint64_t end_offset = 0;     // exclusive end of the durable batches in it
  uint64_t end_position = 0;   // byte after the last durable batch
  uint64_t first_timestamp_ns = 0;
  uint64_t last_timestamp_ns = 0;
  bool closed = false;         // no more appends (a later segment exists)
  SegmentIndex index;
  std::shared_ptr<Fd> read_fd;  // opened by the reader on first use; outlives removal until reads end
};

struct LogState {
  uint64_t next_offset = 0;           // the engine continues at this offset
  std::vector<SegmentState> segments;  // ascending base_offset; the last one is the append target
  uint64_t start_offset() const { return segments.empty() ? next_offset : segments.front().base_offset; }
  uint64_t bytes() const {
    uint64_t b = 0;
    for (const SegmentState& s : segments) b += s.end_position;
    return b;
  }
};

}  // namespace sluice::storage
