#include "storage/batch_format.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "protocol/crc32c.h"
#include "storage/crc32c.h"
#include "tests/unit/storage/test_util.h"

namespace sluice::storage {
namespace {

using testing::Bytes;
using testing::Producer;
using testing::Str;

std::vector<std::byte> Fill(size_t n, auto f) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(f(i));
  return v;
}

// RFC 3720 (iSCSI) appendix B.4 test vectors, plus the classic "123456789" check value.
TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c(Bytes("123456789")), 0xE3069283u);
  EXPECT_EQ(Crc32c(Fill(32, [](size_t) { return 0; })), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(Fill(32, [](size_t) { return 0xFF; })), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(Fill(32, [](size_t i) { return i; })), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(Fill(32, [](size_t i) { return 31 - i; })), 0x113FDB5Cu);
  EXPECT_EQ(Crc32c({}), 0u);
}

TEST(Crc32c, ContinuesAcrossSplitsAndAlignments) {
  const std::vector<std::byte> data = Fill(1000, [](size_t i) { return (i * 131) ^ (i >> 3); });
  const uint32_t whole = Crc32c(data);
  for (size_t split : {0, 1, 7, 8, 9, 31, 32, 33, 500, 999, 1000}) {
    const std::span<const std::byte> all(data);
    EXPECT_EQ(Crc32c(all.subspan(split), Crc32c(all.first(split))), whole) << split;
  }
  for (size_t start = 0; start < 16; ++start) {  // unaligned starts take the byte-wise prologue
    std::vector<std::byte> copy(data.begin() + static_cast<ptrdiff_t>(start), data.end());
    EXPECT_EQ(Crc32c(std::span<const std::byte>(data).subspan(start)), Crc32c(copy));
  }
}

// A CRC continued across the two implementations (short pieces: the SSE4.2 loop; long ones:
// ISA-L when built with it) is the CRC of the whole.
TEST(Crc32c, ContinuesAcrossImplementations) {
  const std::vector<std::byte> data = Fill(300000, [](size_t i) { return (i * 7919) ^ (i >> 5); });
  const std::span<const std::byte> all(data);
  const uint32_t whole = Crc32c(all);
  EXPECT_EQ(whole, sluice::protocol::Crc32c(all));
  for (size_t split : {1, 100, 511, 512, 4096, 299488, 299489, 299999}) {
    EXPECT_EQ(Crc32c(all.subspan(split), Crc32c(all.first(split))), whole) << split;
  }
}

// The 3-way interleaved paths (blocks of 3 x 256 and 3 x 8192 bytes) against protocol/'s
// table-driven CRC32C, over lengths around every block boundary and misaligned starts.
TEST(Crc32c, InterleavedPathsMatchTheTableDrivenCrc) {
  const std::vector<std::byte> data =
      Fill(3 * 8192 * 3 + 4096, [](size_t i) { return (i * 2654435761u) >> 13; });
  const std::span<const std::byte> all(data);
  // 511-513: where Crc32c hands over to ISA-L when the build has it (crc32c.cc).
  std::vector<size_t> lengths = {0,     1,     7,     8,     511,   512,   513,   767,
                                 768,   769,   1535,  1536,  24575, 24576, 24577, 25343,
                                 25344, 49152, 49153, 73727, 73728, 73729};
  for (size_t l = 100; l < 80000; l += 997) lengths.push_back(l);
  for (size_t start : {0, 1, 3, 8, 13}) {
    for (size_t len : lengths) {
      if (start + len > data.size()) continue;
      const auto piece = all.subspan(start, len);
      EXPECT_EQ(Crc32c(piece), sluice::protocol::Crc32c(piece))
          << "start " << start << " length " << len;
      EXPECT_EQ(Crc32c(piece, 0x12345678u),
                sluice::protocol::Crc32cExtend(0x12345678u, piece.data(), piece.size()))
          << "start " << start << " length " << len;
    }
  }
}

class BatchFormat : public ::testing::Test {
 protected:
  void SetUp() override {
    producer_.Batch(5, 300);
    producer_.log.ForEachUndurableBatch([&](const shard::SealedBatch& b) { batch_ = b; });
    EncodeBatch(batch_, id_, 7);
  }
  Producer producer_;
  shard::SealedBatch batch_;
  PartitionId id_{3, 1};
};

TEST_F(BatchFormat, EncodeThenVerifyRoundTrips) {
  BatchHeader h;
  ASSERT_EQ(VerifyBatch(batch_.bytes, 4096, &h), BatchCheck::kOk);
  EXPECT_EQ(h.magic, kBatchMagic);
  EXPECT_EQ(std::memcmp(batch_.bytes.data(), "SLBT", 4), 0);
  EXPECT_EQ(h.queue, 3u);
  EXPECT_EQ(h.partition, 1u);
  EXPECT_EQ(h.epoch, 7u);
  EXPECT_EQ(h.base_offset, 0u);
  EXPECT_EQ(h.count, 5u);
  EXPECT_EQ(h.payload_bytes, 5 * (kRecordHeaderBytes + 300u));
  EXPECT_EQ(h.stride_bytes, 4096u);
  EXPECT_EQ(h.first_timestamp_ns, 1'000'000u);
  EXPECT_EQ(h.last_timestamp_ns, 1'004'000u);
  std::vector<std::string> got;
  ForEachRecord(batch_.bytes, h, [&](const RecordView& r) {
    EXPECT_EQ(r.offset, got.size());
    EXPECT_EQ(r.timestamp_ns, 1'000'000u + 1000 * r.offset);
    got.push_back(Str(r.record));
  });
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[4], testing::Payload(4, 300));
}

TEST_F(BatchFormat, EveryFlippedBitInHeaderOrPayloadIsCaught) {
  const uint32_t covered = batch_.used_bytes;
  for (uint32_t byte = 0; byte < covered; ++byte) {
    for (int bit = 0; bit < 8; bit += 3) {
      batch_.bytes[byte] ^= std::byte{static_cast<uint8_t>(1u << bit)};
      BatchHeader h;
      EXPECT_NE(VerifyBatch(batch_.bytes, 4096, &h), BatchCheck::kOk) << byte << ":" << bit;
      batch_.bytes[byte] ^= std::byte{static_cast<uint8_t>(1u << bit)};
    }
  }
  BatchHeader h;
  EXPECT_EQ(VerifyBatch(batch_.bytes, 4096, &h), BatchCheck::kOk);
}

TEST_F(BatchFormat, PaddingIsNotCovered) {
  batch_.bytes[batch_.bytes.size() - 1] = std::byte{0x55};
  BatchHeader h;
  EXPECT_EQ(VerifyBatch(batch_.bytes, 4096, &h), BatchCheck::kOk);
}

TEST_F(BatchFormat, ClassifiesEmptyTruncatedAndGarbage) {
  std::vector<std::byte> zeros(4096);
  BatchHeader h;
  EXPECT_EQ(VerifyBatch(zeros, 4096, &h), BatchCheck::kEmpty);
  EXPECT_EQ(VerifyBatch(std::span<const std::byte>(batch_.bytes).first(2048), 4096, &h),
            BatchCheck::kTruncated);
  std::vector<std::byte> junk(4096, std::byte{0x42});
  EXPECT_EQ(VerifyBatch(junk, 4096, &h), BatchCheck::kBadMagic);
  EXPECT_EQ(VerifyBatch(batch_.bytes, 8192, &h), BatchCheck::kBadLength);  // stride not aligned
}

}  // namespace
}  // namespace sluice::storage
