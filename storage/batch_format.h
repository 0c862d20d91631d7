// The on-disk batch: the shard's sealed batch with a 64-byte header written into its header room.
//
//   [BatchHeader, 64 B][RecordHeader][record]...[RecordHeader][record][zero padding to align]
//   |<------------------ stride_bytes (a multiple of the alignment, 4 KiB) ------------------->|
//   |<-- 64 -->|<------------- payload_bytes ----------------->|
//
// The CRC32C covers the header (with its crc field zero) and the payload; the padding is not
// covered (it is zero when written and never read as data). Every field is little-endian; the
// byte-by-byte layout is in docs/storage.md. A batch is *valid* when magic, version, lengths and
// CRC all check and its records walk exactly to payload_bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "dataplane/shard/partition_log.h"

namespace sluice::storage {

inline constexpr uint32_t kBatchMagic = 0x54424C53;  // "SLBT" in file byte order
inline constexpr uint16_t kBatchVersion = 2;  // 2: RecordHeader carries the producer id
inline constexpr uint32_t kBatchHeaderBytes = 64;
inline constexpr uint32_t kRecordHeaderBytes = sizeof(shard::RecordHeader);

// Which log a batch belongs to. Carried in every header so a misplaced file is detected.
struct PartitionId {
  uint32_t queue = 0;
  uint32_t partition = 0;
  friend constexpr bool operator==(const PartitionId&, const PartitionId&) = default;
};

struct BatchHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t header_bytes;   // 64: where the payload starts
  uint32_t queue;
  uint32_t partition;
  uint64_t epoch;          // primary's epoch that wrote it (replication fencing)
  uint64_t base_offset;    // offset of the first record
  uint32_t count;          // records
  uint32_t payload_bytes;  // RecordHeader + record bytes, after the header
  uint64_t first_timestamp_ns;
  uint64_t last_timestamp_ns;
  uint32_t stride_bytes;   // header + payload + padding: the next batch starts this far on
  uint32_t crc;            // CRC32C of the header (this field zero) and the payload
  uint64_t end_offset() const { return base_offset + count; }
};
static_assert(sizeof(BatchHeader) == kBatchHeaderBytes);

// Fills the batch's header room (which must be >= 64 bytes and zero) from its metadata and the
// CRC of its payload. The bytes then are exactly what goes to disk and to the standby.
void EncodeBatch(const shard::SealedBatch& batch, PartitionId id, uint64_t epoch);

enum class BatchCheck : uint8_t {
  kOk,
  kEmpty,        // all-zero header: never written (preallocated tail) — the normal end of a log
  kTruncated,    // fewer bytes available than the header or its stride says
  kBadMagic,     // not a batch header (garbage, or a torn write that lost the header sector)
  kBadVersion,
  kBadLength,    // inconsistent lengths (payload beyond stride, stride not aligned...)
  kBadCrc,       // torn or corrupted payload or header
  kBadRecords,   // CRC fine but the records do not walk to payload_bytes with `count` records
  kWrongPartition,
};
std::string_view BatchCheckName(BatchCheck c);

// Checks the batch at the start of `bytes` (which may extend past it). `align` is the alignment
// the stride must be a multiple of. On kOk, *header is filled; on other results it may hold
// whatever was read (for reports).
BatchCheck VerifyBatch(std::span<const std::byte> bytes, uint32_t align, BatchHeader* header);

// Reads the header only (no CRC): for walking a log whose batches were verified before.
BatchHeader ReadHeader(std::span<const std::byte> bytes);

// One record of a verified batch.
struct RecordView {
  uint64_t offset;
  uint64_t timestamp_ns;
  uint64_t producer_id;
  std::span<const std::byte> record;
};
// Calls fn for each record of a batch that VerifyBatch accepted.
void ForEachRecord(std::span<const std::byte> batch, const BatchHeader& header,
                   absl::FunctionRef<void(const RecordView&)> fn);

}  // namespace sluice::storage
