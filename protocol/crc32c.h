// Portable software CRC32C (Castagnoli, reflected polynomial 0x82F63B78, init and final xor
// 0xFFFFFFFF), slicing-by-8. Clients in any language compute the same partition for a key:
// partition = Crc32c(key bytes) % partition_count (docs/protocol.md §Partition selection).
// Check value: Crc32c("123456789") == 0xE3069283.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace sluice::protocol {

// Continues a CRC: Crc32cExtend(Crc32c(a), b) == Crc32c(a + b). Crc32cExtend(0, x) == Crc32c(x).
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);

inline uint32_t Crc32c(std::span<const std::byte> data) {
  return Crc32cExtend(0, data.data(), data.size());
}
inline uint32_t Crc32c(std::string_view data) { return Crc32cExtend(0, data.data(), data.size()); }

// The partition the server picks for a message with a key and partition == kAnyPartition.
// `partitions` must be >= 1. (Messages without a key are spread round-robin by the server.)
inline uint16_t PartitionForKey(std::string_view key, uint16_t partitions) {
  return static_cast<uint16_t>(Crc32c(key) % (partitions == 0 ? 1u : partitions));
}

}  // namespace sluice::protocol
