// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), computed with the SSE4.2 `crc32`
// instruction. The build targets x86-64-v3, which includes SSE4.2, so there is no software path.
// Same parameters as iSCSI, ext4 metadata and protocol/'s software CRC32C: init ~0, final xor ~0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::storage {

// Continues a CRC: Crc32c(b, Crc32c(a)) == Crc32c(a ++ b). Start with crc = 0.
uint32_t Crc32c(std::span<const std::byte> bytes, uint32_t crc = 0);

}  // namespace sluice::storage
