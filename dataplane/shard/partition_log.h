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
#include <bit>
#include <cstdint>
#include <cstring>
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
  // Copies `record` into the open batch (opening one, or a chunk, if needed). Inline: the
  // common case (the index has room, the record fits the current chunk) is a few dozen
  // instructions on the per-message path; anything else (eviction, a new chunk, throttling) is
  // AppendSlow's.
  Appended Append(std::span<const std::byte> record, uint64_t now_ns, uint64_t producer_id = 0) {
    const uint32_t need = static_cast<uint32_t>(sizeof(RecordHeader) + record.size());
    if ((config_.indexed && index_.full()) || !Fits(need)) [[unlikely]] {
      return AppendSlow(record, now_ns, producer_id);
    }
    return Write(record, now_ns, producer_id, need);
  }

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
  // Inline: once per sealed batch of an in-memory partition (every pass of the worker).
  void MarkDurable(DurableOffset durable) {
    SLUICE_ASSERT(durable.value <= sealed_);  // only sealed bytes can have reached storage
    if (durable.value <= durable_) return;     // late or repeated completions are harmless
    durable_ = durable.value;
    while (!batches_.empty() && batches_.front().end_offset() <= durable_) batches_.pop_front();
  }
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
  // False when EnforceRetention has nothing it could do (no retention bound, or only the current
  // chunk is held): the shard's per-pass walk asks this inline instead of calling.
  bool RetentionMayApply() const {
    return (config_.retention_bytes != 0 || config_.retention_ms != 0) && chunks_.size() >= 2;
  }

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
    // Exclusive end and the last record's time. Not kept up to date for the current chunk (the
    // back one: next_ and last_timestamp_ns_ are its values); set when the next chunk starts.
    // Readers look only at chunks before the back one (eviction takes a closed chunk only).
    uint64_t end_offset;
    uint64_t last_timestamp_ns;
  };
  void FinishCurrentSpan() {
    if (chunks_.empty()) return;
    chunks_.back().end_offset = next_;
    chunks_.back().last_timestamp_ns = last_timestamp_ns_;
  }

  Appended AppendSlow(std::span<const std::byte> record, uint64_t now_ns, uint64_t producer_id);
  // Writes one record that fits (Fits(need), and the index has room). The open batch's count
  // and last timestamp, and the current chunk's end offset and last timestamp, are not kept per
  // record: Seal and NewChunk derive them from next_ and last_timestamp_ns_.
  Appended Write(std::span<const std::byte> record, uint64_t now_ns, uint64_t producer_id,
                 uint32_t need) {
    const uint64_t ts = now_ns > last_timestamp_ns_ ? now_ns : last_timestamp_ns_;  // monotonic
    if (!batch_open_) OpenBatch(ts);
    // The header's fields go straight to the chunk: a RecordHeader built on the stack and copied
    // is stored in pieces and reloaded as one vector, a store-forwarding stall on every append.
    std::byte* dst = pool_.data(current_) + pos_;
    static_assert(std::endian::native == std::endian::little);  // length, then reserved 0
    const uint64_t length_and_reserved = record.size();
    std::memcpy(dst + offsetof(RecordHeader, length), &length_and_reserved, 8);
    std::memcpy(dst + offsetof(RecordHeader, timestamp_ns), &ts, 8);
    std::memcpy(dst + offsetof(RecordHeader, producer_id), &producer_id, 8);
    CopyRecord(dst + sizeof(RecordHeader), record.data(), record.size());
    Appended out;
    out.offset = next_++;
    out.timestamp_ns = ts;
    out.location = {current_, pos_ + static_cast<uint32_t>(sizeof(RecordHeader)),
                    static_cast<uint32_t>(record.size())};
    pos_ += need;
    PrefetchAhead();
    last_timestamp_ns_ = ts;
    if (config_.indexed) {
      IndexEntry& e = index_.emplace_back();  // in place: no 24-byte temporary reloaded
      e.chunk = out.location.chunk;
      e.pos = out.location.pos;
      e.length = out.location.length;
      e.timestamp_ns = ts;
    } else {
      ++pool_.live(current_);
    }
    return out;
  }
  // Small records (every 64 B message: 108 B of record) are copied with a few overlapping
  // 16- or 32-byte moves inline; the call into libc's memcpy and its size dispatch cost more
  // than the copy. Source and destination never overlap (the record is the caller's buffer).
  static void CopyRecord(std::byte* dst, const std::byte* src, size_t n) {
    // Unaligned, aliasing-safe 32-byte vectors (one vmovdqu each with AVX, two SSE moves without).
    using V [[gnu::vector_size(32), gnu::aligned(1), gnu::may_alias]] = char;
    if (n - 32 <= 96) {  // 32 <= n <= 128 (unsigned wrap below 32)
      const V a = *reinterpret_cast<const V*>(src);
      const V b = *reinterpret_cast<const V*>(src + n - 32);
      if (n > 64) {
        const V c = *reinterpret_cast<const V*>(src + 32);
        const V d = *reinterpret_cast<const V*>(src + n - 64);
        *reinterpret_cast<V*>(dst + 32) = c;
        *reinterpret_cast<V*>(dst + n - 64) = d;
      }
      *reinterpret_cast<V*>(dst) = a;
      *reinterpret_cast<V*>(dst + n - 32) = b;
    } else if (n != 0) {
      std::memcpy(dst, src, n);
    }
  }
  void OpenBatch(uint64_t ts);
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
  // Per call a compare; the lines go kPrefetchBlock bytes at a time, once the write position
  // comes within kWriteAhead - kPrefetchBlock of the prefetched end. One prefetch per loop turn:
  // four per turn (fewer instructions) made 1 KiB appends ~10 % slower in bench_frontend.
  void PrefetchAhead() {
    if (pos_ + kWriteAhead <= prefetched_ + kPrefetchBlock) return;
    const uint32_t to = std::min(pos_ + kWriteAhead, pool_.chunk_bytes());
    const std::byte* base = pool_.data(current_);
    for (; prefetched_ < to; prefetched_ += 64) __builtin_prefetch(base + prefetched_, 1);
  }
  static constexpr uint32_t kWriteAhead = 4096;
  static constexpr uint32_t kPrefetchBlock = 1024;
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
