// The ack log of one partition (`acks.log` beside its segments): work-queue deletes and stream
// consumer-group commits, so that after a restart an acknowledged message is not delivered again
// and a group resumes where it committed.
//
// Entries (little-endian, 8-byte aligned, each CRC-checked; format in docs/storage.md):
//   [u32 crc32c of the rest][u8 kind][u8 group_len][u16 zero][u64 offset][group bytes, zero-padded to 8]
//   kind 1 DELETE offset          a work-queue message was deleted
//   kind 2 COMMIT group, offset   a consumer group committed `offset` (next to read)
//   kind 3 DELETED_BELOW offset   every message below `offset` is deleted (compaction, purge)
//
// Appends go into a fixed buffer; Flush writes what accumulated with one buffered pwrite (call it
// once per loop pass or on a timer, not per message). The ack log is not fsynced by default: an
// entry lost in a power failure only means a redelivery, which at-least-once allows. At start,
// Load reads it up to the first bad entry and Open rewrites it compacted (atomic replace).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/io.h"

namespace sluice::storage {

enum class AckKind : uint8_t { kDelete = 1, kCommit = 2, kDeletedBelow = 3 };

// What the ack log says, after load.
struct AckState {
  uint64_t deleted_below = 0;          // every offset below it is deleted
  std::vector<uint64_t> deleted;       // sorted, unique, all >= deleted_below
  std::map<std::string, uint64_t> commits;  // group -> committed offset (the latest)

  bool IsDeleted(uint64_t offset) const;
  // Folds `deleted` into deleted_below as far as it is contiguous from `start` (the log's
  // first retained offset: offsets below it are gone anyway).
  void Compact(uint64_t start);
};

struct AckLoadReport {
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t bytes_cut = 0;  // torn or corrupt tail ignored
};

class AckLog {
 public:
  static constexpr size_t kBufferBytes = 64 << 10;
  static constexpr size_t kMaxGroupBytes = 255;

  // Reads `path` (missing = empty state).
  static absl::StatusOr<AckState> Load(const std::string& path, AckLoadReport* report);
  // Writes `state` compacted as the new file (tmp, fsync, rename, directory fsync) and opens it
  // for appending.
  static absl::StatusOr<AckLog> Open(const std::string& dir, const std::string& path,
                                     const AckState& state);

  // false: the buffer is full; Flush and try again.
  bool Delete(uint64_t offset);
  bool Commit(std::string_view group, uint64_t offset);
  // Every message below `offset` is deleted (a purge; compaction writes the same entry).
  bool DeletedBelow(uint64_t offset);
  // Writes the buffered entries (one pwrite); `sync` adds an fdatasync.
  absl::Status Flush(bool sync = false);
  size_t buffered_bytes() const { return used_; }
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  AckLog(Fd fd, std::string path, uint64_t size);
  bool Append(AckKind kind, std::string_view group, uint64_t offset);

  Fd fd_;
  std::string path_;
  uint64_t file_bytes_ = 0;
  std::vector<std::byte> buf_;
  size_t used_ = 0;
};

}  // namespace sluice::storage
