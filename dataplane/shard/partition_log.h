// The in-memory log of one partition: message bytes copied once into fixed-size chunks from the
// shard's ChunkPool, grouped into 4 KiB-aligned batches (the unit of persistence, replication and
// acknowledgement), and the three watermarks written >= sealed >= durable.
//
// Layout of a chunk:   | batch | pad | batch | pad | ... |        (a batch never spans chunks)
// Layout of a batch:   [header room, zeroed][RecordHeader][record bytes][RecordHeader][record]...
//                      [zero padding to the next batch_align boundary]
// Storage fills its batch header into the header room (base offset, count, CRC...) and writes the
// whole aligned span with O_DIRECT. A record never straddles a chunk end: when it does not fit,
// the open batch is sealed and the record starts a new chunk.
//
// Two modes. Indexed (streams): a dense offset index {chunk, pos, length, timestamp} gives
// fetch-from-offset in O(1) and fetch-from-timestamp by binary search; chunks leave in order,
// oldest first (retention). Unindexed (work queues): the caller keeps each message's
// RecordLocation; a chunk is freed as soon as it is closed and its last message is gone.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/functional/function_ref.h"
#include "dataplane/shard/chunk_pool.h"
#include "dataplane/shard/ring.h"
#include "dataplane/shard/types.h"
#include "protocol/errc.h"

namespace sluice::shard {

// In front of every record in the log, so storage recovery can walk a batch without the codec.
// The producer id travels with the record (the record itself carries only the sequence), so that
// recovery can rebuild each producer's idempotence state and a retransmit after a restart is
// still answered as a duplicate.
struct RecordHeader {
  uint32_t length;        // record bytes that follow
  uint32_t reserved;      // zero
  uint64_t timestamp_ns;  // server time at append
  uint64_t producer_id;   // 0 = not idempotent
};
static_assert(sizeof(RecordHeader) == 24);
static_assert(offsetof(RecordHeader, length) == 0 && offsetof(RecordHeader, reserved) == 4);

struct RecordLocation {
  uint32_t chunk = ChunkPool::kNone;
  uint32_t pos = 0;  // first record byte (after its RecordHeader) within the chunk
  uint32_t length = 0;
};

// A sealed batch as storage sees it. The bytes stay valid until MarkDurable covers end_offset().
struct SealedBatch {
  std::span<std::byte> bytes;  // aligned start .. aligned end (includes header room and padding)
  uint32_t header_bytes = 0;   // room at the front for storage's header (zeroed)
  uint32_t used_bytes = 0;     // header room + records; the rest of `bytes` is zero padding
  uint64_t first_offset = 0;
  uint32_t count = 0;
  uint64_t first_timestamp_ns = 0;
  uint64_t last_timestamp_ns = 0;
  uint64_t end_offset() const { return first_offset + count; }
};

struct LogConfig {
  bool indexed = true;
  uint32_t max_chunks = 64;
  uint32_t max_index_entries = 1 << 16;  // indexed only
  uint64_t retention_bytes = 0;          // indexed only; 0 = none
  uint64_t retention_ms = 0;             // indexed only; 0 = none
  uint32_t batch_align_bytes = 4096;
  uint32_t batch_header_bytes = 64;
  uint64_t* chunks_evicted = nullptr;  // indexed: counter bumped per chunk dropped (optional)
};

class PartitionLog {
 public:
  PartitionLog(ChunkPool& pool, const LogConfig& config);
  ~PartitionLog();  // returns every chunk to the pool
  PartitionLog(const PartitionLog&) = delete;
  PartitionLog& operator=(const PartitionLog&) = delete;

  struct Appended {
    Errc errc = Errc::kOk;  // kOk or kThrottled (budget, pool or index full, nothing evictable)
    uint64_t offset = kNoOffset;
    uint64_t timestamp_ns = 0;
    RecordLocation location;
  };
  // Copies `record` into the open batch (opening one, or a chunk, if needed).
  Appended Append(std::span<const std::byte> record, uint64_t now_ns, uint64_t producer_id = 0);

  // Recovery (before any Append). Takes back a record storage already holds, at its original
  // offset and timestamp. Offsets only go up; an unindexed log (work queue) may skip offsets
  // (deleted messages are not restored), an indexed one (stream) may not after its first record.
  Appended Restore(std::span<const std::byte> record, uint64_t offset, uint64_t timestamp_ns,
                   uint64_t producer_id);
  // Ends recovery: what was restored is sealed and durable (it is on disk already), and the log
  // continues at `next_offset` (>= every restored offset + 1).
  void EndRestore(uint64_t next_offset);

  // The open batch: records and bytes so far, and its first record's time (batch sealing policy).
  bool batch_open() const { return batch_open_; }
  uint32_t open_batch_bytes() const { return batch_open_ ? pos_ - open_start_ : 0; }
  uint64_t open_batch_since_ns() const { return batch_open_ ? open_.first_timestamp_ns : 0; }

  // Closes the open batch; returns false if none was open.
  bool Seal();
  // The batch the last Seal closed (its bytes may be gone since: sizes only).
  uint32_t last_sealed_bytes() const { return last_sealed_bytes_; }
  uint32_t last_sealed_count() const { return last_sealed_count_; }
  // Offsets below `durable` met the durability mode; their batches leave the undurable list.
  void MarkDurable(DurableOffset durable);
  // Sealed batches not yet wholly durable, oldest first.
  void ForEachUndurableBatch(absl::FunctionRef<void(const SealedBatch&)> fn) const;

  std::span<const std::byte> Record(RecordLocation loc) const;
  // Unindexed: the message at `loc` is gone; frees its chunk if that was the last one.
  void Release(RecordLocation loc);

  // Indexed: read one retained message. False if offset is outside [start, written).
  bool Read(uint64_t offset, StoredMessage* out) const;
  // Indexed: first retained offset whose timestamp >= ts, or written_end if none.
  uint64_t OffsetForTimestamp(uint64_t ts_ns) const;
  // Indexed: new retention bounds (a queue attribute changed); applied from the next pass.
  void SetRetention(uint64_t bytes, uint64_t ms) {
    config_.retention_bytes = bytes;
    config_.retention_ms = ms;
  }
  // Indexed (purge): the log now starts at `offset` (<= durable end): index entries below it
  // go, and so do the chunks wholly below it (except the current one). Offsets are not reused.
  // Returns messages dropped.
  uint64_t TruncateBefore(uint64_t offset);
  // Indexed: drops oldest durable chunks past retention_bytes / retention_ms. Returns chunks freed.
  uint32_t EnforceRetention(uint64_t now_ns);

  uint64_t start_offset() const { return start_; }  // indexed: oldest retained offset
  WrittenOffset written_end() const { return {next_}; }
  WrittenOffset sealed_end() const { return {sealed_}; }
  DurableOffset durable_end() const { return {durable_}; }
  uint32_t chunks_held() const { return chunks_held_; }

 private:
  struct IndexEntry {
    uint32_t chunk;
    uint32_t pos;
    uint32_t length;
    uint64_t timestamp_ns;
  };
  struct ChunkSpan {  // indexed mode: chunks in offset order
    uint32_t chunk;
    uint64_t first_offset;
    uint64_t end_offset;  // exclusive; grows while the chunk is the current one
    uint64_t last_timestamp_ns;
  };

  bool Fits(uint32_t need) const {  // inline: asked on every append
    if (current_ == ChunkPool::kNone) return false;
    const uint64_t start =
        batch_open_ ? pos_ : uint64_t{AlignUp(pos_)} + config_.batch_header_bytes;
    return start + need <= pool_.chunk_bytes();
  }
  // Prefetches the current chunk's lines up to kWriteAhead bytes past pos_ (those not asked for
  // yet). Records and batch padding are written in address order into chunks last touched a whole
  // queue ago (at millions of messages: in no cache), and a store that misses holds up every
  // store behind it (x86 commits stores in order). The hardware prefetchers do not run far enough
  // ahead on this path: asking ~32 small records ahead hides the memory latency.
  void PrefetchAhead() {
    const uint32_t to = std::min(pos_ + kWriteAhead, pool_.chunk_bytes());
    const std::byte* base = pool_.data(current_);
    for (; prefetched_ < to; prefetched_ += 64) __builtin_prefetch(base + prefetched_, 1);
  }
  static constexpr uint32_t kWriteAhead = 4096;
  bool NewChunk();
  bool EvictOldest();
  uint32_t AlignUp(uint32_t pos) const { return (pos + align_ - 1) & ~(align_ - 1); }

  ChunkPool& pool_;
  LogConfig config_;
  uint32_t align_;

  uint32_t current_ = ChunkPool::kNone;  // chunk being written
  uint32_t pos_ = 0;                     // next free byte in current_
  uint32_t prefetched_ = 0;              // current_'s lines below this were prefetched
  uint32_t chunks_held_ = 0;

  bool batch_open_ = false;
  SealedBatch open_;  // the open batch (bytes filled in at seal)
  uint32_t open_start_ = 0;

  uint64_t start_ = 0;    // indexed: oldest retained offset
  uint64_t next_ = 0;     // written end
  uint64_t sealed_ = 0;
  uint64_t durable_ = 0;
  uint64_t last_timestamp_ns_ = 0;
  uint32_t last_sealed_bytes_ = 0;
  uint32_t last_sealed_count_ = 0;

  Ring<SealedBatch> batches_;  // sealed, not wholly durable
  Ring<IndexEntry> index_;     // indexed: entry i is offset start_ + i
  Ring<ChunkSpan> chunks_;     // indexed
};

}  // namespace sluice::shard
