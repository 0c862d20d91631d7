#include "storage/crc32c.h"

#include <nmmintrin.h>

#include <array>
#include <climits>
#include <cstring>

#if SLUICE_HAVE_ISAL
#include <isa-l/crc.h>
#endif

namespace sluice::storage {
namespace {

// One `crc32` chain does 8 bytes per 3 cycles (the instruction's latency) while the unit could
// start one per cycle. Long buffers are therefore cut in three blocks whose CRCs run as three
// independent chains, then joined: the CRC register is linear over GF(2), so the state after
// A ++ B is "the state after A, advanced over |B| zero bytes" xor "the state after B from 0".
// Advancing over a fixed number of zeros is a 32x32 bit matrix, applied a byte at a time through
// four 256-entry tables (Mark Adler's crc32c.c does the same). At 1 GB/s of 1 KiB messages the
// single chain took 16 % of a worker (perf, session 4); bench_storage BM_Crc32c has the rates.
constexpr uint32_t kPoly = 0x82F63B78;  // reflected Castagnoli
constexpr size_t kLong = 8192;          // block of the 3-way loop for long buffers
constexpr size_t kShort = 256;          // and for what is left

using Matrix = std::array<uint32_t, 32>;
using ShiftTables = std::array<std::array<uint32_t, 256>, 4>;

constexpr uint32_t Times(const Matrix& m, uint32_t v) {
  uint32_t sum = 0;
  for (size_t i = 0; v != 0; ++i, v >>= 1) {
    if (v & 1) sum ^= m[i];
  }
  return sum;
}

constexpr Matrix Square(const Matrix& m) {
  Matrix out{};
  for (size_t i = 0; i < 32; ++i) out[i] = Times(m, m[i]);
  return out;
}

// The operator that advances a CRC register over `bytes` zero bytes (a power of two).
constexpr Matrix ZerosOperator(size_t bytes) {
  Matrix one_bit{};  // one zero bit
  one_bit[0] = kPoly;
  for (size_t i = 1; i < 32; ++i) one_bit[i] = uint32_t{1} << (i - 1);
  Matrix op = Square(Square(Square(one_bit)));  // 8 zero bits: one byte
  for (size_t n = bytes; n > 1; n >>= 1) op = Square(op);
  return op;
}

constexpr ShiftTables MakeShiftTables(size_t bytes) {
  const Matrix op = ZerosOperator(bytes);
  ShiftTables t{};
  for (uint32_t n = 0; n < 256; ++n) {
    t[0][n] = Times(op, n);
    t[1][n] = Times(op, n << 8);
    t[2][n] = Times(op, n << 16);
    t[3][n] = Times(op, n << 24);
  }
  return t;
}

constexpr ShiftTables kLongShift = MakeShiftTables(kLong);
constexpr ShiftTables kShortShift = MakeShiftTables(kShort);
static_assert((kLong & (kLong - 1)) == 0 && (kShort & (kShort - 1)) == 0);

inline uint64_t Shift(const ShiftTables& t, uint64_t crc) {
  return t[0][crc & 0xFF] ^ t[1][(crc >> 8) & 0xFF] ^ t[2][(crc >> 16) & 0xFF] ^ t[3][crc >> 24];
}

inline uint64_t Load(const std::byte* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

// Three chains over [p, p + block), [p + block, ...), [p + 2 block, ...), joined into `c`.
inline uint64_t ThreeWay(uint64_t c, const std::byte* p, size_t block, const ShiftTables& t) {
  uint64_t c1 = 0, c2 = 0;
  for (const std::byte* end = p + block; p < end; p += 8) {
    c = _mm_crc32_u64(c, Load(p));
    c1 = _mm_crc32_u64(c1, Load(p + block));
    c2 = _mm_crc32_u64(c2, Load(p + 2 * block));
  }
  c = Shift(t, c) ^ c1;
  return Shift(t, c) ^ c2;
}

}  // namespace

// From this size on, ISA-L's crc32_iscsi when the build has it (Debian's libisal): it picks at run
// time a folding loop on carry-less multiplies (VPCLMULQDQ where the CPU has it), 3-7x the 3-way
// `crc32` loop below on a 256 KiB batch in cache (65 vs 9-20 GB/s here). The CRC of every batch
// a worker writes runs on the worker's CPU (EncodeBatch): ~62 ns of each 1 KiB message in the
// `write` case before (docs/benchmarks.md "Session 8"). Same polynomial and conventions: ISA-L
// takes and returns the register without the final inversion.
constexpr size_t kIsalFrom = 512;

uint32_t Crc32c(std::span<const std::byte> bytes, uint32_t crc) {
#if SLUICE_HAVE_ISAL
  if (bytes.size() >= kIsalFrom && bytes.size() <= INT_MAX) {
    // crc32_iscsi does not write through its buffer pointer (it is only not declared const).
    auto* p = const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(bytes.data()));
    return ~crc32_iscsi(p, static_cast<int>(bytes.size()), ~crc);
  }
#endif
  const std::byte* p = bytes.data();
  size_t n = bytes.size();
  uint64_t c = ~crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), static_cast<uint8_t>(*p));
    ++p;
    --n;
  }
  for (; n >= 3 * kLong; p += 3 * kLong, n -= 3 * kLong) c = ThreeWay(c, p, kLong, kLongShift);
  for (; n >= 3 * kShort; p += 3 * kShort, n -= 3 * kShort) {
    c = ThreeWay(c, p, kShort, kShortShift);
  }
  for (; n >= 8; p += 8, n -= 8) c = _mm_crc32_u64(c, Load(p));
  for (; n > 0; ++p, --n) c = _mm_crc32_u8(static_cast<uint32_t>(c), static_cast<uint8_t>(*p));
  return ~static_cast<uint32_t>(c);
}

}  // namespace sluice::storage
