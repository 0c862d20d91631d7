// The files of one partition's log:
//
//   <data_dir>/<queue>-<partition>/
//       00000000000000000000.log     segment: batches from offset 0, preallocated to segment_bytes
//       00000000000000000000.index   its sparse offset+time index (a cache: rebuilt from the log)
//       00000000000000052311.log     next segment, named by its first offset
//       00000000000000052311.index
//       acks.log                     work-queue deletes and consumer-group commits (ack_log.h)
//       next.spare                   at most one: the next segment, created and preallocated
//                                    ahead of need (not log data; see PrepareSpare)
//
// A segment is written front to back, batch after batch, each batch at a multiple of 4 KiB; the
// bytes past the last batch are preallocated zeros. The index holds one 32-byte entry per
// `index_interval_bytes` of log (the batch starting each interval: its base offset, position and
// first timestamp), and a *seal* entry once the segment is closed (end offset, end position, last
// timestamp). Because server timestamps never go backwards within a partition, the same entries
// are both the offset index and the time index: either lookup is one binary search.
//
// The directory is fsynced after a segment is created, renamed or removed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/batch_format.h"
#include "storage/io.h"

namespace sluice::storage {

enum class IndexKind : uint16_t { kBatch = 1, kSeal = 2 };

// On disk: 32 bytes, little-endian, CRC32C over the first 28.
struct IndexEntry {
  uint64_t offset = 0;        // kBatch: base offset of the batch; kSeal: segment end offset
  uint64_t position = 0;      // kBatch: where the batch starts; kSeal: end of the last batch
  uint64_t timestamp_ns = 0;  // kBatch: first timestamp of the batch; kSeal: last timestamp
  IndexKind kind = IndexKind::kBatch;
  uint16_t reserved = 0;
  uint32_t crc = 0;
};
static_assert(sizeof(IndexEntry) == 32);

// The in-memory index of one segment: batch entries in offset (and time) order, and the seal.
class SegmentIndex {
 public:
  void Add(const IndexEntry& e);  // asserts order
  void Seal(uint64_t end_offset, uint64_t end_position, uint64_t last_timestamp_ns);
  void Clear() { entries_.clear(); seal_.reset(); }

  // The last batch entry with offset <= `offset` (nullptr if none: before the segment).
  const IndexEntry* FloorOffset(uint64_t offset) const;
  // The last batch entry whose first timestamp is < ts, else the first entry: the first record
  // with timestamp >= ts is at or after it, and before the entry that follows it.
  const IndexEntry* FloorTimestamp(uint64_t ts_ns) const;
  // The entry after `e` (nullptr if `e` is the last batch entry).
  const IndexEntry* Next(const IndexEntry* e) const;

  const std::vector<IndexEntry>& entries() const { return entries_; }
  const std::optional<IndexEntry>& seal() const { return seal_; }
  bool empty() const { return entries_.empty(); }
  void Reserve(size_t n) { entries_.reserve(n); }

 private:
  std::vector<IndexEntry> entries_;
  std::optional<IndexEntry> seal_;
};

IndexEntry MakeIndexEntry(IndexKind kind, uint64_t offset, uint64_t position, uint64_t ts_ns);
bool IndexEntryValid(const IndexEntry& e);

// Where a scan of a segment stopped, and why.
struct ScanEnd {
  uint64_t position = 0;     // first byte not part of a valid batch
  uint64_t next_offset = 0;  // end offset of the last valid batch (or the segment base)
  uint64_t last_timestamp_ns = 0;
  uint64_t batches = 0;      // valid batches seen
  uint64_t bytes = 0;        // bytes of valid batches (strides)
  BatchCheck stop = BatchCheck::kEmpty;  // kEmpty = clean end, anything else = torn/corrupt
  BatchHeader bad{};         // the header found at `position` when stop is not kEmpty
};

// Walks valid batches of a segment file from `position` (a batch start whose base offset is
// `offset`) until the first one that is not valid, the end of the file, or fn returns false. A
// batch is valid when VerifyBatch accepts it, it belongs to `id` and its base offset continues
// the previous one. Reads with O_DIRECT where the file allows, in large sequential chunks
// (`chunk_bytes`, 0: 4 MiB; a scan that expects little, such as RefreshLog's of a log's tail,
// reads less of a preallocated segment's zeros).
absl::StatusOr<ScanEnd> ScanSegment(
    const std::string& path, PartitionId id, uint64_t position, uint64_t offset, uint32_t align,
    absl::FunctionRef<bool(const BatchHeader&, std::span<const std::byte>, uint64_t position)> fn,
    size_t chunk_bytes = 0);

// The directory of one partition.
class PartitionDir {
 public:
  static std::string DirName(PartitionId id);  // "<queue>-<partition>"
  // Parses "<queue>-<partition>"; false if the name is not one.
  static bool ParseDirName(std::string_view name, PartitionId* id);

  // create: make the directory (and its parents) if missing.
  static absl::StatusOr<PartitionDir> Open(const std::string& data_dir, PartitionId id, bool create);

  const std::string& path() const { return path_; }
  PartitionId id() const { return id_; }
  std::string LogPath(uint64_t base_offset) const;
  std::string IndexPath(uint64_t base_offset) const;
  std::string AckLogPath() const { return path_ + "/acks.log"; }
  // The spare segment. Its name is no segment name: recovery, the log tool and ListSegments never
  // read it as log data, whatever it holds (a crash can leave it empty, preallocated, or holding
  // batches written after a rename that the directory never made durable).
  static constexpr const char* kSpareName = "next.spare";
  std::string SparePath() const { return path_ + "/" + kSpareName; }

  // Base offsets of the segments present, ascending.
  absl::StatusOr<std::vector<uint64_t>> ListSegments() const;

  // Creates `<base>.log` preallocated (fallocate) to `bytes` and fsyncs the directory. An empty
  // `<base>.index` is created with it. Returns the log opened for writing (O_DIRECT if possible).
  absl::StatusOr<Fd> CreateSegment(uint64_t base_offset, uint64_t bytes, bool* direct) const;
  // The slow part of a roll, done ahead of need off the lcore: creates the spare (replacing a
  // leftover one) preallocated to `bytes`, fsyncs it and the directory, so that its size and
  // extents are durable. Returns it opened for writing (O_DIRECT if `direct_io` and possible).
  // The writer later renames it to `<base>.log` through its ring and fsyncs the directory before
  // acknowledging anything written to it (uring_writer.cc, RollPrepared).
  absl::StatusOr<Fd> PrepareSpare(uint64_t bytes, bool direct_io, bool* direct) const;
  // Unlinks the spare if there is one (no directory fsync: a spare that comes back after a crash
  // is ignored and removed again). *removed says whether there was one.
  absl::Status RemoveSpare(bool* removed) const;
  // Unlinks the segment and its index, then fsyncs the directory.
  absl::Status RemoveSegment(uint64_t base_offset) const;

  // Index entries in the file, up to the first invalid one (a torn tail of the index is ignored).
  absl::StatusOr<SegmentIndex> LoadIndex(uint64_t base_offset) const;
  // Replaces the index file atomically (temporary file, fsync, rename, directory fsync).
  absl::Status WriteIndex(uint64_t base_offset, const SegmentIndex& index) const;
  // Scans the whole segment and builds its index (sealed if `seal`), one entry per interval.
  absl::StatusOr<SegmentIndex> RebuildIndex(uint64_t base_offset, uint32_t align,
                                            uint32_t index_interval_bytes, bool seal) const;

 private:
  PartitionDir(std::string path, PartitionId id) : path_(std::move(path)), id_(id) {}
  std::string path_;
  PartitionId id_;
};

// Restarts a partition's log empty at `start` (a replication standby whose log ends below its
// primary's retained start, docs/replication.md §4 "Behind the start"): every segment goes,
// oldest first (each unlink followed by a directory fsync, as retention removes them, so a crash
// at any point leaves a contiguous log, the old one less its oldest segments, or none), then the
// spare, then `<start>.log` is created as a new partition's first segment (preallocated,
// fsynced, directory fsynced). Every segment present must start below `start` (checked before
// anything is removed): nothing at or past it is ever thrown away. The caller closed the
// partition and knows its log ends at or below `start`. Blocking (control path). The ack log
// stays (the caller compacts it to `start` when it reopens the partition).
absl::Status RestartLog(const PartitionDir& dir, uint64_t start, uint64_t segment_bytes);

// Cuts a segment at `position`: the bytes from there on become zeros again (truncate, then
// preallocate back to `segment_bytes`) and the file is fsynced. Used by recovery.
absl::Status TruncateSegment(const std::string& path, uint64_t position, uint64_t segment_bytes);

}  // namespace sluice::storage
