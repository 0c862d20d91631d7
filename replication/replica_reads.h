// A standby's replica reads with a dedicated replication lcore (docs/replication.md §1, §6).
// There the replicated logs are the replication lcore's (its writer and reader), while FETCH and
// SUBSCRIBE arrive on the shard lcores. Each shard lcore asks through a request ring and gets
// the records back through an answer ring, both single-producer / single-consumer HandoffRings
// (no lock, no allocation per read); the two sides' message formats are here:
//
//   request (shard lcore -> replication lcore): ReplicaReadRequest, one fixed-size message;
//   answer  (replication lcore -> shard lcore): ReplicaAnswerHeader, then per record an entry
//           {offset u64, timestamp u64, length u32} and the record's bytes.
//
// An answer carries the first record always and further records while entries and bytes stay
// within kReplicaAnswerBudget: what one reply frame (at most 65507 bytes, each record there
// costing more than its entry here) can carry, so a shard lcore sends the same frame as a
// channel that reads its own log; the answer's next_offset is then the first record left out.
//
// Room is never a surprise: a shard lcore has at most kMaxReplicaReads requests out (each
// answered exactly once), an answer is at most kMaxReplicaAnswerBytes, and the answer ring holds
// kMaxReplicaReads + 2 of them (one for a pad word at the buffer's end). The replication lcore
// still checks: an answer that does not fit goes as THROTTLED without records.
//
// The shard lcores also need, without a round trip, each partition's replicated start (the
// standby's retention moves it: docs/replication.md §4; so does a replicated purge mark, §6) and
// whether it is open here at all:
// ReplicaStartBoard, which the replication lcore writes. (Its durable end is on the
// DurableBoard already.)
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "protocol/assert.h"
#include "protocol/errc.h"
#include "replication/handoff_ring.h"

namespace sluice::replication {

struct ReplicaReadRequest {
  uint64_t value = 0;   // an offset, or with by_timestamp a time (ns)
  uint64_t cookie = 0;  // the shard lcore's, echoed in the answer
  uint32_t queue = 0;
  uint32_t partition = 0;
  uint32_t max_records = 0;
  uint8_t by_timestamp = 0;
  uint8_t pad[3] = {};
};
static_assert(sizeof(ReplicaReadRequest) == 32);

struct ReplicaAnswerHeader {
  uint64_t cookie = 0;
  uint64_t next_offset = 0;  // where the next read continues
  uint32_t count = 0;        // records that follow
  uint16_t errc = 0;         // Errc
  uint16_t pad = 0;
};
static_assert(sizeof(ReplicaAnswerHeader) == 24);

inline constexpr uint32_t kReplicaEntryBytes = 20;            // offset, timestamp, length
inline constexpr uint32_t kReplicaAnswerBudget = 64u << 10;   // entries + bytes, past the first
// The largest record an answer carries: one of a batch of the largest size the standby writes.
inline constexpr uint32_t kMaxReplicaRecordBytes = (1u << 20) + 8192;
inline constexpr uint32_t kMaxReplicaAnswerBytes =
    sizeof(ReplicaAnswerHeader) + kReplicaEntryBytes + kMaxReplicaRecordBytes;
static_assert(kMaxReplicaAnswerBytes >= sizeof(ReplicaAnswerHeader) + kReplicaAnswerBudget);
// Records of one answer at most (the budget over the smallest entry, and the first).
inline constexpr uint32_t kMaxReplicaAnswerRecords = kReplicaAnswerBudget / kReplicaEntryBytes + 1;
// Requests a shard lcore has out at once; beyond, ReadReplica answers THROTTLED (counted).
inline constexpr uint32_t kMaxReplicaReads = 4;
inline constexpr uint32_t kReplicaRequestRingBytes = 4096;
inline constexpr uint32_t kReplicaAnswerRingBytes = 8u << 20;
static_assert(kReplicaRequestRingBytes / 2 - 8 >= sizeof(ReplicaReadRequest) &&
              (kMaxReplicaReads + 1) * (sizeof(ReplicaReadRequest) + 16) <= kReplicaRequestRingBytes);
static_assert(kMaxReplicaAnswerBytes <= kReplicaAnswerRingBytes / 2 - 8 &&
              (kMaxReplicaReads + 2) * (kMaxReplicaAnswerBytes + 16) <= kReplicaAnswerRingBytes);

// Shard lcore: a request into the ring (false: no room; the caller answers THROTTLED).
bool PushReplicaRequest(HandoffRing& ring, const ReplicaReadRequest& r);
// Replication lcore: the oldest request, if any (released by ring.Pop()).
bool PeekReplicaRequest(HandoffRing& ring, ReplicaReadRequest* r);

// How many of `records` (each with .offset, .timestamp_ns, .record) an answer carries: the
// first always, then while entries and bytes stay within kReplicaAnswerBudget.
template <class Rec>
uint32_t ReplicaAnswerCount(std::span<const Rec> records) {
  uint64_t bytes = 0;
  uint32_t n = 0;
  for (const Rec& r : records) {
    bytes += kReplicaEntryBytes + r.record.size();
    if (n > 0 && bytes > kReplicaAnswerBudget) break;
    ++n;
  }
  return n;
}

enum class ReplicaAnswered : uint8_t {
  kAsRead,     // the answer went as the read gave it (records possibly cut to the budget)
  kThrottled,  // no room for it: THROTTLED without records went instead
  kNoRoom,     // not even that fitted: an invariant of the caller is broken
};

// Replication lcore: the answer to the request with `cookie`. A record larger than
// kMaxReplicaRecordBytes answers STORAGE_FAILED (the standby never writes one).
template <class Rec>
ReplicaAnswered PushReplicaAnswer(HandoffRing& ring, uint64_t cookie, Errc errc,
                                  uint64_t next_offset, std::span<const Rec> records) {
  if (errc != Errc::kOk) records = {};
  uint32_t n = ReplicaAnswerCount(records);
  if (n > 0 && records[0].record.size() > kMaxReplicaRecordBytes) {
    errc = Errc::kStorageFailed;
    n = 0;
  }
  if (n < records.size()) next_offset = records[n].offset;  // the first left out
  uint64_t len = sizeof(ReplicaAnswerHeader);
  for (uint32_t i = 0; i < n; ++i) len += kReplicaEntryBytes + records[i].record.size();
  SLUICE_ASSERT(len <= kMaxReplicaAnswerBytes);
  ReplicaAnswerHeader h{cookie, next_offset, n, static_cast<uint16_t>(errc), 0};
  if (std::byte* p = ring.Begin(static_cast<uint32_t>(len))) {
    std::memcpy(p, &h, sizeof h);
    p += sizeof h;
    for (uint32_t i = 0; i < n; ++i) {
      const Rec& r = records[i];
      const uint64_t offset = r.offset, ts = r.timestamp_ns;
      const uint32_t rlen = static_cast<uint32_t>(r.record.size());
      std::memcpy(p, &offset, 8);
      std::memcpy(p + 8, &ts, 8);
      std::memcpy(p + 16, &rlen, 4);
      if (rlen != 0) std::memcpy(p + kReplicaEntryBytes, r.record.data(), rlen);
      p += kReplicaEntryBytes + rlen;
    }
    ring.Commit();
    return ReplicaAnswered::kAsRead;
  }
  h = ReplicaAnswerHeader{cookie, next_offset, 0, static_cast<uint16_t>(Errc::kThrottled), 0};
  if (ring.Push({reinterpret_cast<const std::byte*>(&h), sizeof h})) {
    return ReplicaAnswered::kThrottled;
  }
  return ReplicaAnswered::kNoRoom;
}

// Shard lcore: an answer the ring holds, its records (each built as Rec{offset, timestamp,
// bytes}) pointing into the ring's buffer: valid until ring.Pop(). `records` must have room for
// kMaxReplicaAnswerRecords (reserved once: no allocation here).
template <class Rec>
void DecodeReplicaAnswer(std::span<const std::byte> m, ReplicaAnswerHeader* h,
                         std::vector<Rec>* records) {
  SLUICE_ASSERT(m.size() >= sizeof *h && records->capacity() >= kMaxReplicaAnswerRecords);
  std::memcpy(h, m.data(), sizeof *h);
  SLUICE_ASSERT(h->count <= kMaxReplicaAnswerRecords);
  records->clear();
  size_t at = sizeof *h;
  for (uint32_t i = 0; i < h->count; ++i) {
    SLUICE_ASSERT(at + kReplicaEntryBytes <= m.size());
    uint64_t offset, ts;
    uint32_t len;
    std::memcpy(&offset, m.data() + at, 8);
    std::memcpy(&ts, m.data() + at + 8, 8);
    std::memcpy(&len, m.data() + at + 16, 4);
    at += kReplicaEntryBytes;
    SLUICE_ASSERT(at + len <= m.size());
    records->push_back(Rec{offset, ts, m.subspan(at, len)});
    at += len;
  }
  SLUICE_ASSERT(at == m.size());
}

// Per partition the standby's replicated log start, or "not open here". One writer (the
// replication lcore), any number of readers; no lock, insert-only open addressing over a fixed
// table (a closed partition's entry stays, marked closed), as DurableBoard.
class ReplicaStartBoard {
 public:
  static constexpr uint32_t kSlots = 8192;

  // Writer. False only when the table is full (the partition then reads "not open").
  bool Set(uint32_t queue, uint32_t partition, uint64_t start);
  bool Close(uint32_t queue, uint32_t partition);
  // Readers: false when the partition is not open here (never was, or closed).
  bool Start(uint32_t queue, uint32_t partition, uint64_t* start) const;

 private:
  static constexpr uint64_t kClosed = UINT64_MAX;
  struct Slot {
    std::atomic<uint64_t> key{0};  // (queue << 32 | partition) + 1; 0: free
    std::atomic<uint64_t> start{kClosed};
  };
  bool Store(uint32_t queue, uint32_t partition, uint64_t start);
  std::unique_ptr<Slot[]> slots_ = std::make_unique<Slot[]>(kSlots);
};

// A standby's consumer-group commits, for a SUBSCRIBE from COMMITTED on a shard lcore with a
// dedicated replication lcore (docs/replication.md §6): the replication lcore applies partition
// 0's ack stream, where every commit of a queue is logged under "<partition>:<group>" (§13), and
// writes each here; the shard lcores read it without a round trip. One writer, any number of
// readers, no lock: insert-only open addressing over a fixed table. A slot's key (queue and the
// "<partition>:<group>" bytes) is written once, before the slot is published (release), and
// never changes; only its offset does (an atomic). A commit a snapshot no longer holds reads as
// none (kNone). A full table drops the commit (Set false): that group then starts as a group
// without a commit does.
class ReplicaCommitBoard {
 public:
  static constexpr uint32_t kSlots = 4096;
  static constexpr uint32_t kMaxKeyBytes = 272;  // "<partition u32>:" + a group of 255 bytes

  // Writer.
  bool Set(uint32_t queue, std::string_view key, uint64_t offset);
  // Every commit of `queue` reads as none, except those `keep(key)` says stay (a snapshot
  // replaced the queue's commits: control path, a scan of the table).
  void Retain(uint32_t queue, absl::FunctionRef<bool(std::string_view key)> keep);
  // Readers: false when the queue has no such commit.
  bool Get(uint32_t queue, std::string_view key, uint64_t* offset) const;

 private:
  static constexpr uint64_t kNone = UINT64_MAX;
  struct Slot {
    std::atomic<uint32_t> used{0};
    uint32_t queue = 0;
    uint32_t len = 0;
    char key[kMaxKeyBytes];
    std::atomic<uint64_t> offset{kNone};
  };
  static uint32_t Home(uint32_t queue, std::string_view key);
  std::unique_ptr<Slot[]> slots_ = std::make_unique<Slot[]>(kSlots);
};

}  // namespace sluice::replication
