// Reads of data no longer in memory, through the lcore's own io_uring (a second ring beside the
// writer's, on the same thread; or, on a dedicated replication lcore, which writes none of the
// logs it reads, a ring over the log states it found on disk: ReadableLogs): a fetch from an offset or a timestamp is one index lookup in
// memory, then one read of the index interval that holds the answer. The lcore never blocks:
// Fetch prepares the read, Poll reaps finished ones and hands their records to the caller.
//
//   reader.Fetch(FetchRequest{handle, FetchBy::kOffset, offset, max_records, cookie});
//   ...each loop pass...
//   reader.Poll([&](const FetchResult& r) { r.ForEach([&](const RecordView& m) {...}); });
//
// Only durable bytes are read (below ReadableLogs::durable and each segment's end_position). Every batch read
// is CRC-checked; a bad one ends the fetch with kStorageFailed.
//
// FetchBy::kBatch is replication catch-up's read (docs/replication.md §3): the one durable batch
// that starts at `value`, raw (header + payload, no padding: FetchResult::batch()), as
// BatchReader::Read gives it with blocking preads. The result says where the next batch starts
// (segment_base, end_position): passed back as the next request's hint, a sequential catch-up
// reads each batch with one read instead of walking from the index entry again.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "protocol/errc.h"
#include "storage/batch_format.h"
#include "storage/uring_writer.h"

namespace sluice::storage {

struct ReaderConfig {
  uint32_t max_reads = 32;            // reads in flight; each has its own buffer
  // Bytes per read: must hold an index interval plus the largest batch (index_interval_bytes +
  // the shard's chunk_bytes); a read that cannot reach its target continues with another.
  uint32_t read_bytes = (1 << 20) + (256 << 10);
  uint32_t align_bytes = 4096;
  bool register_buffers = true;
  // kBatch only: the first read of a request (most batches fit; a larger one is read on with
  // exactly its stride). Keeps a catch-up read near the batch's size, not read_bytes.
  uint32_t batch_read_bytes = 64 << 10;
};

enum class FetchBy : uint8_t { kOffset, kTimestamp, kBatch };

struct FetchRequest {
  PartitionHandle partition = 0;
  FetchBy by = FetchBy::kOffset;
  uint64_t value = 0;        // offset, or timestamp in ns (first record at or after it)
  uint32_t max_records = 1024;
  uint64_t cookie = 0;       // echoed in the result
  // kBatch only: where the batch at `value` starts, from the previous result's segment_base and
  // end_position (UINT64_MAX: unknown, found from the index). Used only if that segment is still
  // in the log; a wrong hint finds no batch at `value` and answers kOffsetOutOfRange.
  uint64_t hint_segment = UINT64_MAX;
  uint64_t hint_position = 0;
};

class FetchResult {
 public:
  uint64_t cookie = 0;
  Errc errc = Errc::kOk;     // kOk, kOffsetOutOfRange, kStorageFailed (I/O error or bad batch)
  uint64_t first_offset = 0;  // first record delivered
  uint64_t next_offset = 0;   // where a following fetch continues
  uint32_t count = 0;
  // kBatch: the segment holding the batch and the file position right after it (the hint of a
  // request for next_offset).
  uint64_t segment_base = UINT64_MAX;
  uint64_t end_position = 0;

  // The delivered records, valid during the Poll callback only.
  void ForEach(absl::FunctionRef<void(const RecordView&)> fn) const;
  // kBatch: the batch read (header + payload, no padding, verified), valid during the callback.
  std::span<const std::byte> batch() const { return bytes_; }

 private:
  friend class UringReader;
  std::span<const std::byte> bytes_;  // whole batches, the first one holding first_offset
  uint32_t align_ = 4096;
};

class UringReader {
 public:
  // `logs` gives the partitions' segments and indexes (a UringWriter, or any ReadableLogs);
  // both run on the same thread.
  static absl::StatusOr<std::unique_ptr<UringReader>> Create(const ReaderConfig& config,
                                                             const ReadableLogs* logs);
  ~UringReader();
  UringReader(const UringReader&) = delete;
  UringReader& operator=(const UringReader&) = delete;

  // kOk (result comes from Poll), kThrottled (all reads busy: ask again later), or an answer
  // that needs no I/O (kOffsetOutOfRange, kStorageFailed), also delivered through Poll.
  Errc Fetch(const FetchRequest& request);
  uint32_t Poll(absl::FunctionRef<void(const FetchResult&)> fn);
  void Drain(absl::FunctionRef<void(const FetchResult&)> fn);  // blocks until none in flight

  struct Stats {
    uint64_t fetches = 0;
    uint64_t reads = 0;      // > fetches only when a fetch needed a second read
    uint64_t bytes = 0;
    uint64_t opens = 0;      // segment files opened through the ring (first read of each)
    uint64_t read_errors = 0;  // reads (or opens of present segments) the kernel failed
    uint64_t bad_batches = 0;  // batches whose header or CRC did not verify
    uint64_t reads_hinted = 0; // kBatch requests that started at their hint
    uint64_t submits = 0;    // passes that submitted prepared reads or opens to the ring
  };
  const Stats& stats() const;

  // Test seam: the next `count` reads complete with -error instead of their result.
  void InjectReadErrors(uint32_t count, int error);

 private:
  struct Impl;
  explicit UringReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::storage
