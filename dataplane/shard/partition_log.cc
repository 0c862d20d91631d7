#include "dataplane/shard/partition_log.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "protocol/assert.h"

namespace sluice::shard {

PartitionLog::PartitionLog(ChunkPool& pool, const LogConfig& config)
    : pool_(pool), config_(config), align_(config.batch_align_bytes) {
  SLUICE_ASSERT(align_ > 0 && (align_ & (align_ - 1)) == 0);
  SLUICE_ASSERT(pool_.chunk_bytes() % align_ == 0);
  SLUICE_ASSERT(config_.batch_header_bytes < pool_.chunk_bytes());
  // Worst case every batch holds one record and takes a whole alignment unit; and a batch holds at
  // least one record, of which a partition keeps at most max_index_entries (the index, or the
  // work queue's message table, which MakeLogConfig passes here). Without the second bound, 64 B
  // alignment and 1 MiB chunks make this ring 2^21 entries (> 100 MiB written per partition):
  // seconds of an lcore's time for a queue created at run time.
  batches_.Reset(std::min<uint64_t>(uint64_t{config_.max_chunks} * (pool_.chunk_bytes() / align_),
                                    config_.max_index_entries) + 1);
  if (config_.indexed) {
    index_.Reset(config_.max_index_entries);
    chunks_.Reset(config_.max_chunks + 1);
  }
}

PartitionLog::~PartitionLog() {
  if (config_.indexed) {
    while (!chunks_.empty()) {
      pool_.Release(chunks_.front().chunk);
      chunks_.pop_front();
    }
    return;
  }
  // Unindexed: the owner released every live record already; only the current chunk can remain,
  // plus chunks whose records the owner dropped wholesale (partition removal), which it frees.
  if (current_ != ChunkPool::kNone && pool_.live(current_) == 0) pool_.Release(current_);
}

PartitionLog::Appended PartitionLog::AppendSlow(std::span<const std::byte> record,
                                                uint64_t now_ns, uint64_t producer_id) {
  const uint32_t need = static_cast<uint32_t>(sizeof(RecordHeader) + record.size());
  SLUICE_ASSERT(config_.batch_header_bytes + uint64_t{need} <= pool_.chunk_bytes());
  Appended out;
  if (config_.indexed && index_.full() && !EvictOldest()) {
    out.errc = Errc::kThrottled;
    return out;
  }
  if (!Fits(need)) {
    Seal();  // a batch never spans chunks
    if (!NewChunk()) {
      out.errc = Errc::kThrottled;
      return out;
    }
  }
  out = Write(record, now_ns, producer_id, need);
  SLUICE_ASSERT(!config_.indexed || start_ + index_.size() == next_);  // the index is dense
  return out;
}

void PartitionLog::OpenBatch(uint64_t ts) {
  open_start_ = AlignUp(pos_);
  std::byte* header = pool_.data(current_) + open_start_;
  if (config_.batch_header_bytes == 64) {
    std::memset(header, 0, 64);  // the usual size: two vector stores, not a call
  } else {
    std::memset(header, 0, config_.batch_header_bytes);
  }
  pos_ = open_start_ + config_.batch_header_bytes;
  batch_open_ = true;
  open_ = SealedBatch{};
  open_.header_bytes = config_.batch_header_bytes;
  open_.first_offset = next_;
  open_.first_timestamp_ns = ts;
}

PartitionLog::Appended PartitionLog::Restore(std::span<const std::byte> record, uint64_t offset,
                                             uint64_t timestamp_ns, uint64_t producer_id) {
  SLUICE_ASSERT(offset >= next_);
  // Restored batches are on disk already: durable as soon as sealed, so that a stream longer
  // than its memory budget keeps only its tail in memory (retention evicts durable chunks only).
  MarkDurable(DurableOffset{sealed_});
  if (config_.indexed) {
    // A stream's index is dense: the first restored record sets where the log starts; from then
    // on offsets must follow each other.
    if (next_ == start_ && index_.empty() && chunks_.empty()) {
      start_ = next_ = sealed_ = durable_ = offset;
    }
    SLUICE_ASSERT(offset == next_);
  } else if (offset != next_) {
    // A work queue's batches in memory are never written again (they are on disk), so their
    // offsets are bookkeeping only: keep the open batch's range ending at next_.
    if (batch_open_) open_.first_offset += offset - next_;
    next_ = offset;
  }
  last_timestamp_ns_ = std::max(last_timestamp_ns_, timestamp_ns);
  return Append(record, timestamp_ns, producer_id);
}

void PartitionLog::EndRestore(uint64_t next_offset) {
  SLUICE_ASSERT(next_offset >= next_);
  Seal();
  if (config_.indexed && index_.empty() && chunks_.empty()) start_ = next_offset;
  if (!config_.indexed || index_.empty()) {
    // Nothing restored past next_: jump (an indexed log only when it holds no record).
    if (batch_open_) open_.first_offset += next_offset - next_;
    next_ = next_offset;
  }
  SLUICE_ASSERT(next_ == next_offset);
  sealed_ = next_;
  MarkDurable(DurableOffset{next_});
  SLUICE_ASSERT(batches_.empty());
}

bool PartitionLog::NewChunk() {
  // Unindexed: the chunk being closed may already be empty of live messages; free it first so a
  // partition at its budget whose messages were all deleted can go on.
  if (!config_.indexed && current_ != ChunkPool::kNone && pool_.live(current_) == 0) {
    pool_.Release(current_);
    --chunks_held_;
    current_ = ChunkPool::kNone;
  }
  if (config_.indexed) {
    while (chunks_held_ >= config_.max_chunks) {
      if (!EvictOldest()) return false;
    }
  } else if (chunks_held_ >= config_.max_chunks) {
    return false;
  }
  uint32_t id = pool_.Acquire();
  if (id == ChunkPool::kNone && config_.indexed && EvictOldest()) id = pool_.Acquire();
  if (id == ChunkPool::kNone) return false;
  current_ = id;
  pos_ = 0;
  prefetched_ = 0;
  ++chunks_held_;
  if (config_.indexed) {
    FinishCurrentSpan();  // the chunk being left: its end and last time (not kept per record)
    chunks_.push_back({id, next_, next_, last_timestamp_ns_});
    EnforceRetention(0);  // retention_bytes counts whole chunks
  }
  return true;
}

bool PartitionLog::Seal() {
  if (!batch_open_) return false;
  const uint32_t end = pos_;
  const uint32_t padded = AlignUp(end);
  std::byte* base = pool_.data(current_);
  // Deterministic bytes for CRC and O_DIRECT. Padding under 64 bytes (every in-memory batch,
  // 64 B aligned) is zeroed as one 64-byte block when the chunk has room: the bytes past `padded`
  // are free space of the current chunk, which the next batch writes before anything reads it.
  if (padded - end < 64 && end + 64 <= pool_.chunk_bytes()) {
    std::memset(base + end, 0, 64);
  } else {
    std::memset(base + end, 0, padded - end);
  }
  open_.bytes = {base + open_start_, padded - open_start_};
  open_.used_bytes = end - open_start_;
  open_.count = static_cast<uint32_t>(next_ - open_.first_offset);  // not counted per record
  open_.last_timestamp_ns = last_timestamp_ns_;
  SLUICE_ASSERT(open_.count > 0 && open_.end_offset() == next_);
  batches_.push_back(open_);
  last_sealed_bytes_ = open_.used_bytes;
  last_sealed_count_ = open_.count;
  pos_ = padded;
  PrefetchAhead();  // the padding moved pos_ on
  sealed_ = next_;
  batch_open_ = false;
  return true;
}

void PartitionLog::ForEachUndurableBatch(absl::FunctionRef<void(const SealedBatch&)> fn) const {
  for (uint64_t i = 0; i < batches_.size(); ++i) fn(batches_[i]);
}

std::span<const std::byte> PartitionLog::Record(RecordLocation loc) const {
  SLUICE_ASSERT(loc.chunk < pool_.capacity());
  return {pool_.data(loc.chunk) + loc.pos, loc.length};
}

void PartitionLog::Release(RecordLocation loc) {
  SLUICE_ASSERT(!config_.indexed);
  uint32_t& live = pool_.live(loc.chunk);
  SLUICE_ASSERT(live > 0);
  // A record is released only after it was durable (work messages are handed out only then), so
  // a closed chunk with no live record has nothing storage still needs.
  if (--live == 0 && loc.chunk != current_) {
    pool_.Release(loc.chunk);
    --chunks_held_;
  }
}

bool PartitionLog::Read(uint64_t offset, StoredMessage* out) const {
  SLUICE_ASSERT(config_.indexed);
  if (offset < start_ || offset >= next_) return false;
  const IndexEntry& e = index_[offset - start_];
  out->offset = offset;
  out->timestamp_ns = e.timestamp_ns;
  out->record = {pool_.data(e.chunk) + e.pos, e.length};
  return true;
}

uint64_t PartitionLog::OffsetForTimestamp(uint64_t ts_ns) const {
  SLUICE_ASSERT(config_.indexed);
  uint64_t lo = 0, hi = index_.size();  // first i with timestamp >= ts_ns
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (index_[mid].timestamp_ns < ts_ns) lo = mid + 1; else hi = mid;
  }
  return start_ + lo;
}

bool PartitionLog::EvictOldest() {
  // Only a closed (not current) chunk whose every message is durable may go: storage and the
  // producers' acks still need the others.
  if (!config_.indexed || chunks_.size() < 2) return false;
  const ChunkSpan oldest = chunks_.front();
  if (oldest.end_offset > durable_) return false;
  SLUICE_ASSERT(oldest.first_offset == start_);
  index_.pop_front(oldest.end_offset - start_);
  start_ = oldest.end_offset;
  chunks_.pop_front();
  pool_.Release(oldest.chunk);
  --chunks_held_;
  if (config_.chunks_evicted != nullptr) ++*config_.chunks_evicted;
  return true;
}

uint64_t PartitionLog::TruncateBefore(uint64_t offset) {
  SLUICE_ASSERT(config_.indexed && offset <= durable_);
  if (offset <= start_) return 0;
  const uint64_t dropped = offset - start_;
  while (chunks_.size() >= 2 && chunks_[1].first_offset <= offset) {
    // Every message of the oldest chunk is below `offset`, hence durable: EvictOldest takes it.
    const bool evicted = EvictOldest();
    SLUICE_ASSERT(evicted);
  }
  index_.pop_front(offset - start_);
  start_ = offset;
  if (!chunks_.empty()) chunks_.front().first_offset = start_;  // the rest of it stays held
  SLUICE_ASSERT(start_ + index_.size() == next_);
  return dropped;
}

uint32_t PartitionLog::EnforceRetention(uint64_t now_ns) {
  uint32_t evicted = 0;
  const uint64_t chunk_bytes = pool_.chunk_bytes();
  while (config_.retention_bytes != 0 && chunks_.size() >= 2 &&
         (chunks_held_ - 1) * chunk_bytes >= config_.retention_bytes && EvictOldest()) {
    ++evicted;  // keeps at least retention_bytes of whole chunks besides the current one
  }
  const uint64_t age_ns = config_.retention_ms * 1'000'000;
  while (config_.retention_ms != 0 && now_ns != 0 && chunks_.size() >= 2 &&
         chunks_.front().last_timestamp_ns + age_ns < now_ns && EvictOldest()) {
    ++evicted;
  }
  return evicted;
}

}  // namespace sluice::shard
