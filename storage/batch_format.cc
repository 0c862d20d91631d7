#include "storage/batch_format.h"

#include <cstring>

#include "protocol/assert.h"
#include "storage/crc32c.h"

namespace sluice::storage {
namespace {

constexpr size_t kCrcField = offsetof(BatchHeader, crc);

// CRC of [0, covered) with the 4 bytes of the crc field counted as zero.
uint32_t BatchCrc(std::span<const std::byte> bytes, size_t covered) {
  static constexpr std::byte kZero[4] = {};
  uint32_t crc = Crc32c(bytes.first(kCrcField));
  crc = Crc32c(kZero, crc);
  return Crc32c(bytes.subspan(kCrcField + 4, covered - kCrcField - 4), crc);
}

bool AllZero(std::span<const std::byte> bytes) {
  for (std::byte b : bytes) {
    if (b != std::byte{0}) return false;
  }
  return true;
}

}  // namespace

std::string_view BatchCheckName(BatchCheck c) {
  switch (c) {
    case BatchCheck::kOk: return "ok";
    case BatchCheck::kEmpty: return "empty";
    case BatchCheck::kTruncated: return "truncated";
    case BatchCheck::kBadMagic: return "bad-magic";
    case BatchCheck::kBadVersion: return "bad-version";
    case BatchCheck::kBadLength: return "bad-length";
    case BatchCheck::kBadCrc: return "bad-crc";
    case BatchCheck::kBadRecords: return "bad-records";
    case BatchCheck::kWrongPartition: return "wrong-partition";
  }
  return "?";
}

void EncodeBatch(const shard::SealedBatch& batch, PartitionId id, uint64_t epoch) {
  SLUICE_ASSERT(batch.header_bytes >= kBatchHeaderBytes);
  SLUICE_ASSERT(batch.used_bytes >= batch.header_bytes && batch.used_bytes <= batch.bytes.size());
  SLUICE_ASSERT(batch.count > 0);
  BatchHeader h{};
  h.magic = kBatchMagic;
  h.version = kBatchVersion;
  h.header_bytes = static_cast<uint16_t>(batch.header_bytes);
  h.queue = id.queue;
  h.partition = id.partition;
  h.epoch = epoch;
  h.base_offset = batch.first_offset;
  h.count = batch.count;
  h.payload_bytes = batch.used_bytes - batch.header_bytes;
  h.first_timestamp_ns = batch.first_timestamp_ns;
  h.last_timestamp_ns = batch.last_timestamp_ns;
  h.stride_bytes = static_cast<uint32_t>(batch.bytes.size());
  h.crc = 0;
  std::memcpy(batch.bytes.data(), &h, sizeof h);
  h.crc = BatchCrc(batch.bytes, batch.used_bytes);
  std::memcpy(batch.bytes.data() + kCrcField, &h.crc, sizeof h.crc);
}

BatchHeader ReadHeader(std::span<const std::byte> bytes) {
  SLUICE_ASSERT(bytes.size() >= sizeof(BatchHeader));
  BatchHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  return h;
}

BatchCheck VerifyBatch(std::span<const std::byte> bytes, uint32_t align, BatchHeader* header) {
  SLUICE_ASSERT(align > 0 && (align & (align - 1)) == 0);
  if (bytes.size() < sizeof(BatchHeader)) {
    return AllZero(bytes) ? BatchCheck::kEmpty : BatchCheck::kTruncated;
  }
  const BatchHeader h = ReadHeader(bytes);
  *header = h;
  if (h.magic != kBatchMagic) {
    return AllZero(bytes.first(sizeof h)) ? BatchCheck::kEmpty : BatchCheck::kBadMagic;
  }
  if (h.version != kBatchVersion) return BatchCheck::kBadVersion;
  const uint64_t covered = uint64_t{h.header_bytes} + h.payload_bytes;
  if (h.header_bytes < kBatchHeaderBytes || h.stride_bytes == 0 || h.stride_bytes % align != 0 ||
      covered > h.stride_bytes || h.count == 0 ||
      h.payload_bytes < uint64_t{h.count} * kRecordHeaderBytes ||
      h.last_timestamp_ns < h.first_timestamp_ns) {
    return BatchCheck::kBadLength;
  }
  if (bytes.size() < h.stride_bytes) return BatchCheck::kTruncated;
  if (BatchCrc(bytes, covered) != h.crc) return BatchCheck::kBadCrc;
  // Walk the records: they must fill the payload exactly, `count` of them.
  uint64_t pos = h.header_bytes;
  for (uint32_t i = 0; i < h.count; ++i) {
    if (pos + kRecordHeaderBytes > covered) return BatchCheck::kBadRecords;
    shard::RecordHeader r;
    std::memcpy(&r, bytes.data() + pos, sizeof r);
    pos += kRecordHeaderBytes + uint64_t{r.length};
    if (pos > covered) return BatchCheck::kBadRecords;
  }
  return pos == covered ? BatchCheck::kOk : BatchCheck::kBadRecords;
}

void ForEachRecord(std::span<const std::byte> batch, const BatchHeader& header,
                   absl::FunctionRef<void(const RecordView&)> fn) {
  uint64_t pos = header.header_bytes;
  for (uint32_t i = 0; i < header.count; ++i) {
    shard::RecordHeader r;
    std::memcpy(&r, batch.data() + pos, sizeof r);
    pos += kRecordHeaderBytes;
    SLUICE_ASSERT(pos + r.length <= batch.size());
    fn(RecordView{header.base_offset + i, r.timestamp_ns, r.producer_id, batch.subspan(pos, r.length)});
    pos += r.length;
  }
}

}  // namespace sluice::storage
