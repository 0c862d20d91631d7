#include "dataplane/shard/partition_log.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "absl/strings/str_cat.h"

#include <cstring>
#include <string>
#include <vector>

#include "dataplane/shard/large_array.h"
#include "tests/unit/shard/test_sink.h"

namespace sluice::shard {
namespace {

using testing::Bytes;
using testing::Str;

constexpr uint32_t kChunk = 8192;
constexpr uint32_t kAlign = 1024;

LogConfig Indexed(uint32_t max_chunks) {
  LogConfig c;
  c.indexed = true;
  c.max_chunks = max_chunks;
  c.max_index_entries = 1024;
  c.batch_align_bytes = kAlign;
  c.batch_header_bytes = 64;
  return c;
}

long MinorFaults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

// ShardConfig::prefault_pool: the pool's pages fault in when it is built (TouchPages), so writing
// every byte of it afterwards (what sends do) takes no page fault. Fresh mapped memory for the
// TouchPages check (malloc may hand back memory touched before), the pool as the shard builds it.
TEST(ChunkPool, PrefaultLeavesNoPageFaultForTheMessagePath) {
  constexpr size_t kBytes = size_t{8} << 20;  // 4 huge pages, or 2048 small ones
  for (const bool touch : {false, true}) {
    void* m = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    auto* p = static_cast<std::byte*>(m);
    (void)madvise(p, kBytes, MADV_HUGEPAGE);
    if (touch) TouchPages(p, kBytes);
    const long before = MinorFaults();
    std::memset(p, 1, kBytes);
    const long faults = MinorFaults() - before;
    munmap(p, kBytes);
    if (touch) {
      EXPECT_LT(faults, 2);
    } else {
      EXPECT_GE(faults, 3) << "untouched memory should fault: the check above means nothing";
    }
  }
  ChunkPool pool(256 * 1024, 32, 4096, {}, /*prefault=*/true);
  const long before = MinorFaults();
  for (uint32_t c = 0; c < pool.capacity(); ++c) std::memset(pool.data(c), 1, pool.chunk_bytes());
  EXPECT_LT(MinorFaults() - before, 2);
}

TEST(PartitionLog, OffsetsAreDenseAndRecordsReadBack) {
  ChunkPool pool(kChunk, 4, kAlign, {});
  PartitionLog log(pool, Indexed(4));
  for (int i = 0; i < 10; ++i) {
    const std::string payload = absl::StrCat("message-", i);
    const auto a = log.Append(Bytes(payload), 1000 + i);
    ASSERT_EQ(a.errc, Errc::kOk);
    EXPECT_EQ(a.offset, static_cast<uint64_t>(i));
  }
  EXPECT_EQ(log.written_end().value, 10u);
  StoredMessage m;
  ASSERT_TRUE(log.Read(7, &m));
  EXPECT_EQ(Str(m.record), "message-7");
  EXPECT_EQ(m.offset, 7u);
  EXPECT_EQ(m.timestamp_ns, 1007u);
  EXPECT_FALSE(log.Read(10, &m));
}

// Records up to 128 bytes are copied inline with overlapping 32-byte moves (PartitionLog::
// CopyRecord): every length from 0 to 300 (both sides of each branch: 31/32, 64/65, 128/129)
// reads back byte for byte, each header gives its length, and nothing past a record's end is
// written (a record followed by the next one's header reads back whole); sealed batches count
// and time their records (tallied at Seal, not per record), across chunks.
TEST(PartitionLog, EveryRecordLengthCopiesExactly) {
  ChunkPool pool(kChunk, 64, kAlign, {});
  PartitionLog log(pool, Indexed(64));
  std::vector<std::string> records;
  uint64_t batches = 0, in_batches = 0;
  for (uint32_t len = 0; len <= 300; ++len) {
    std::string r(len, '\0');
    for (uint32_t i = 0; i < len; ++i) r[i] = static_cast<char>('A' + (len * 7 + i) % 61);
    const auto a = log.Append(Bytes(r), 1000 + len);
    ASSERT_EQ(a.errc, Errc::kOk) << len;
    ASSERT_EQ(a.offset, len);
    records.push_back(std::move(r));
    if (len % 7 == 6 && log.Seal()) ++batches;
  }
  if (log.Seal()) ++batches;
  log.ForEachUndurableBatch([&](const SealedBatch& b) {
    in_batches += b.count;
    StoredMessage last;
    ASSERT_TRUE(log.Read(b.end_offset() - 1, &last));
    EXPECT_EQ(b.last_timestamp_ns, last.timestamp_ns);
    RecordHeader h;
    std::memcpy(&h, b.bytes.data() + b.header_bytes, sizeof h);
    EXPECT_EQ(h.length, records[b.first_offset].size());
    EXPECT_EQ(h.reserved, 0u);
  });
  EXPECT_EQ(in_batches, records.size());
  EXPECT_GT(batches, 40u);
  for (uint32_t len = 0; len < records.size(); ++len) {
    StoredMessage m;
    ASSERT_TRUE(log.Read(len, &m));
    ASSERT_EQ(Str(m.record), records[len]) << "length " << len;
    EXPECT_EQ(m.timestamp_ns, 1000u + len);
  }
  EXPECT_GT(log.chunks_held(), 2u);  // the lengths crossed chunk ends too
}

TEST(PartitionLog, TimestampsNeverGoBackwardsAndSearchFindsFirstAtOrAfter) {
  ChunkPool pool(kChunk, 4, kAlign, {});
  PartitionLog log(pool, Indexed(4));
  const uint64_t times[] = {100, 200, 150 /* clock stepped back */, 300, 300, 400};
  for (uint64_t t : times) ASSERT_EQ(log.Append(Bytes("x"), t).errc, Errc::kOk);
  StoredMessage m;
  ASSERT_TRUE(log.Read(2, &m));
  EXPECT_EQ(m.timestamp_ns, 200u);  // clamped to the previous timestamp
  EXPECT_EQ(log.OffsetForTimestamp(0), 0u);
  EXPECT_EQ(log.OffsetForTimestamp(200), 1u);
  EXPECT_EQ(log.OffsetForTimestamp(201), 3u);
  EXPECT_EQ(log.OffsetForTimestamp(300), 3u);
  EXPECT_EQ(log.OffsetForTimestamp(401), 6u);  // none: written end
}

TEST(PartitionLog, SealedBatchesAreAlignedZeroPaddedAndLeaveWhenDurable) {
  ChunkPool pool(kChunk, 4, kAlign, {});
  PartitionLog log(pool, Indexed(4));
  log.Append(Bytes("aaaa"), 1);
  log.Append(Bytes("bbbbbbbb"), 2);
  EXPECT_EQ(log.sealed_end().value, 0u);
  ASSERT_TRUE(log.Seal());
  EXPECT_FALSE(log.Seal());  // nothing open
  log.Append(Bytes("cc"), 3);
  ASSERT_TRUE(log.Seal());
  EXPECT_EQ(log.sealed_end().value, 3u);

  std::vector<SealedBatch> batches;
  log.ForEachUndurableBatch([&](const SealedBatch& b) { batches.push_back(b); });
  ASSERT_EQ(batches.size(), 2u);
  for (const SealedBatch& b : batches) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.bytes.data()) % kAlign, 0u);
    EXPECT_EQ(b.bytes.size() % kAlign, 0u);
    EXPECT_EQ(b.header_bytes, 64u);
    for (uint32_t i = 0; i < b.header_bytes; ++i) ASSERT_EQ(b.bytes[i], std::byte{0});
    for (size_t i = b.used_bytes; i < b.bytes.size(); ++i) ASSERT_EQ(b.bytes[i], std::byte{0});
  }
  EXPECT_EQ(batches[0].first_offset, 0u);
  EXPECT_EQ(batches[0].count, 2u);
  constexpr uint32_t kRec = sizeof(RecordHeader);
  EXPECT_EQ(batches[0].used_bytes, 64u + kRec + 4 + kRec + 8);
  EXPECT_EQ(batches[0].first_timestamp_ns, 1u);
  EXPECT_EQ(batches[0].last_timestamp_ns, 2u);
  // The record framing storage will walk: RecordHeader then bytes.
  RecordHeader h;
  std::memcpy(&h, batches[0].bytes.data() + 64, sizeof h);
  EXPECT_EQ(h.length, 4u);
  EXPECT_EQ(h.timestamp_ns, 1u);
  EXPECT_EQ(batches[1].first_offset, 2u);

  log.MarkDurable(DurableOffset{2});
  batches.clear();
  log.ForEachUndurableBatch([&](const SealedBatch& b) { batches.push_back(b); });
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0].first_offset, 2u);
  log.MarkDurable(DurableOffset{1});  // late completion: ignored
  EXPECT_EQ(log.durable_end().value, 2u);
}

TEST(PartitionLog, RecordsNeverStraddleAChunkEnd) {
  ChunkPool pool(kChunk, 8, kAlign, {});
  PartitionLog log(pool, Indexed(8));
  // 3000-byte records: two fit in a chunk after the header room, the third must move.
  std::vector<std::string> payloads;
  for (int i = 0; i < 9; ++i) payloads.push_back(std::string(3000, static_cast<char>('a' + i)));
  std::vector<PartitionLog::Appended> out;
  for (const auto& p : payloads) {
    out.push_back(log.Append(Bytes(p), 1));
    ASSERT_EQ(out.back().errc, Errc::kOk);
  }
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_LE(out[i].location.pos + out[i].location.length, kChunk);
    StoredMessage m;
    ASSERT_TRUE(log.Read(i, &m));
    EXPECT_EQ(Str(m.record), payloads[i]);
  }
  EXPECT_NE(out[1].location.chunk, out[2].location.chunk);
  EXPECT_EQ(out[2].location.pos, 64u + sizeof(RecordHeader));  // starts the new chunk's first batch
  // Moving to a new chunk sealed the batch left behind.
  EXPECT_EQ(log.sealed_end().value, 8u);
  EXPECT_EQ(log.chunks_held(), 5u);
}

TEST(PartitionLog, StreamThrottlesUntilDurableThenEvictsOldest) {
  ChunkPool pool(kChunk, 2, kAlign, {});
  PartitionLog log(pool, Indexed(2));
  const std::string big(3000, 'x');
  for (int i = 0; i < 4; ++i) ASSERT_EQ(log.Append(Bytes(big), 1).errc, Errc::kOk);
  // Two chunks full, nothing durable: nothing may be evicted.
  EXPECT_EQ(log.Append(Bytes(big), 1).errc, Errc::kThrottled);
  log.Seal();
  log.MarkDurable(DurableOffset{4});
  const auto a = log.Append(Bytes(big), 1);
  ASSERT_EQ(a.errc, Errc::kOk);
  EXPECT_EQ(a.offset, 4u);  // the throttled attempt took no offset
  EXPECT_EQ(log.start_offset(), 2u);  // the oldest chunk went
  StoredMessage m;
  EXPECT_FALSE(log.Read(1, &m));
  EXPECT_TRUE(log.Read(2, &m));
}

TEST(PartitionLog, RetentionByBytesAndTime) {
  uint64_t evicted = 0;
  ChunkPool pool(kChunk, 8, kAlign, {});
  LogConfig c = Indexed(8);
  c.retention_bytes = 2 * kChunk;
  c.retention_ms = 10;
  c.chunks_evicted = &evicted;
  PartitionLog log(pool, c);
  const std::string big(3000, 'x');
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(log.Append(Bytes(big), 1'000'000 * uint64_t(i)).errc, Errc::kOk);
    log.Seal();
    log.MarkDurable(log.sealed_end().value == 0 ? DurableOffset{0} : DurableOffset{log.sealed_end().value});
  }
  EXPECT_LE(log.chunks_held(), 3u);
  EXPECT_GT(evicted, 0u);
  const uint64_t before = log.start_offset();
  EXPECT_GT(log.EnforceRetention(100'000'000), 0u);  // 100 ms later: all closed chunks are old
  EXPECT_GT(log.start_offset(), before);
  EXPECT_EQ(log.chunks_held(), 1u);
}

TEST(PartitionLog, WorkModeFreesAChunkWhenItsLastMessageGoes) {
  ChunkPool pool(kChunk, 2, kAlign, {});
  LogConfig c = Indexed(2);
  c.indexed = false;
  PartitionLog log(pool, c);
  const std::string big(3000, 'x');
  std::vector<RecordLocation> locs;
  for (int i = 0; i < 4; ++i) {
    auto a = log.Append(Bytes(big), 1);
    ASSERT_EQ(a.errc, Errc::kOk);
    locs.push_back(a.location);
  }
  EXPECT_EQ(log.Append(Bytes(big), 1).errc, Errc::kThrottled);
  log.Seal();
  log.MarkDurable(DurableOffset{4});
  log.Release(locs[0]);
  EXPECT_EQ(pool.free_count(), 0u);  // chunk 0 still holds message 1
  log.Release(locs[1]);
  EXPECT_EQ(pool.free_count(), 1u);
  EXPECT_EQ(log.Append(Bytes(big), 1).errc, Errc::kOk);
  // The current chunk is freed when it is closed empty, too.
  log.Release(locs[2]);
  log.Release(locs[3]);
  EXPECT_EQ(Str(log.Record(locs[0])).size(), big.size());  // location math, not liveness
}

}  // namespace
}  // namespace sluice::shard
