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
// Appends go into a fixed buffer. Two ways to write them out:
//  - through an AckRing (storage/ack_ring.h; the worker lcore's way): Attach once, then
//    StartFlush once per loop pass. It hands the buffer to the ring as one write and switches to
//    the second buffer, so new entries accumulate while the write is in flight (one write in
//    flight per log, in file order); a purge's StartFlush(sync) links an fdatasync behind it.
//    Nothing blocks; a failed write or sync fails the log for good (failed(), failure()): its
//    entries are not retried-and-forgotten, the caller fails the partition (docs/storage.md §6).
//  - Flush: one blocking pwrite (and fdatasync) — for a log not attached to a ring (the standby's
//    ack logs, tools, tests).
// Either way call it once per loop pass or on a timer, not per message. The ack log is not
// fsynced by default: an entry lost in a power failure only means a redelivery, which
// at-least-once allows. At start, Load reads it up to the first bad entry and Open rewrites it
// compacted (atomic replace).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "storage/io.h"

namespace sluice::storage {

class AckRing;

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
  // Writes the buffered entries (one pwrite); `sync` adds an fdatasync. Blocking: only for a
  // log with nothing in flight on a ring (not attached, or after AckRing::Wait).
  absl::Status Flush(bool sync = false);

  // ---- through an AckRing (the lcore's path; nothing here blocks) ----
  // From now on the log writes through `ring` (which must outlive it, or see it idle first);
  // `cookie` is the owner's, handed back with failures. The log must not move after this (its
  // address is the ring's user data).
  void Attach(AckRing* ring, uint64_t cookie);
  // Prepares a write of the buffered entries if none is in flight (else they go when it
  // completes, on the next call); `sync`: an fdatasync follows them (linked), covering every
  // entry appended so far — syncs_done() reaches syncs_requested() when it completed.
  void StartFlush(bool sync = false);
  bool failed() const { return failed_; }
  const std::string& failure() const { return failure_; }
  // Something buffered, or a write or sync in flight / wanted.
  bool busy() const { return used_ > 0 || flight_len_ > 0 || ops_ > 0 || sync_wanted_; }
  uint32_t ops_in_flight() const { return ops_; }
  uint64_t syncs_requested() const { return syncs_requested_; }
  uint64_t syncs_done() const { return syncs_done_; }
  uint64_t cookie() const { return cookie_; }
  // The active buffer is full and the other one is still being written: the caller waits for
  // the ring (AckRing::Wait) before appending more.
  bool full_while_writing() const { return flight_len_ > 0; }

  size_t buffered_bytes() const { return used_; }
  uint64_t file_bytes() const { return file_bytes_; }  // what the file holds (completed writes)
  // What the file will hold once the write in flight and the buffered entries are written.
  uint64_t appended_bytes() const { return file_bytes_ + flight_len_ + used_; }

 private:
  friend class AckRing;
  AckLog(Fd fd, std::string path, uint64_t size);
  bool Append(AckKind kind, std::string_view group, uint64_t offset);
  std::byte* active() { return bufs_[active_].data(); }
  // Prepares what is due (the rest of the write in flight, the next buffer, a sync) when
  // nothing is in flight.
  void Pump();
  // From the ring: `op` 0 write, 1 sync, with the kernel's (or the fault seam's) result.
  // false: the log failed in this completion.
  bool OnCompletion(int op, int res);
  void Fail(int err, std::string_view what);

  Fd fd_;
  std::string path_;
  uint64_t file_bytes_ = 0;
  // Two buffers: entries go into bufs_[active_] (used_ bytes); the other may be in flight.
  std::vector<std::byte> bufs_[2];
  int active_ = 0;
  size_t used_ = 0;

  AckRing* ring_ = nullptr;
  uint64_t cookie_ = 0;
  // The write in flight (or re-queued after a short write): bufs_[flight_buf_][0, flight_len_)
  // at file position file_bytes_; flight_done_ bytes of it are written.
  int flight_buf_ = 0;
  uint32_t flight_len_ = 0;
  uint32_t flight_done_ = 0;
  uint32_t ops_ = 0;             // requests in flight on the ring
  bool sync_wanted_ = false;     // a sync is asked for and not submitted yet
  bool sync_void_ = false;       // the write linked before the sync in flight fell short
  uint64_t syncs_requested_ = 0;
  uint64_t sync_covers_ = 0;     // syncs_requested_ when the sync in flight was prepared
  uint64_t syncs_done_ = 0;
  int inject_res_[2] = {0, 0};   // fault seam: the result the ring reports for a NOP
  bool failed_ = false;
  bool failure_reported_ = false;
  std::string failure_;
};

}  // namespace sluice::storage
