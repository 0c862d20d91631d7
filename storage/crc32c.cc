#include "storage/crc32c.h"

#include <nmmintrin.h>

#include <cstring>

namespace sluice::storage {

// One dependent chain of `crc32` (3-cycle latency): ~8 bytes per 3 cycles, several GB/s per
// core, above what one NVMe device writes. A 3-way interleave with a carry-less-multiply combine
// would triple it; bench_storage measures whether that is ever worth its code.
uint32_t Crc32c(std::span<const std::byte> bytes, uint32_t crc) {
  const std::byte* p = bytes.data();
  size_t n = bytes.size();
  uint64_t c = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), static_cast<uint8_t>(*p));
    ++p;
    --n;
  }
  while (n >= 32) {
    uint64_t w[4];
    std::memcpy(w, p, sizeof w);
    c = _mm_crc32_u64(c, w[0]);
    c = _mm_crc32_u64(c, w[1]);
    c = _mm_crc32_u64(c, w[2]);
    c = _mm_crc32_u64(c, w[3]);
    p += 32;
    n -= 32;
  }
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);
    c = _mm_crc32_u64(c, w);
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), static_cast<uint8_t>(*p));
    ++p;
    --n;
  }
  return ~static_cast<uint32_t>(c);
}

}  // namespace sluice::storage
