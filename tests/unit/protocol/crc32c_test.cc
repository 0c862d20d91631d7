// CRC32C against published check values (RFC 3720 appendix B.4) and the partition rule.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/crc32c.h"

namespace sluice::protocol {
namespace {

TEST(Crc32c, CheckValues) {
  EXPECT_EQ(Crc32c(std::string_view("123456789")), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string_view("")), 0u);
  std::string zeros(32, '\0'), ones(32, '\xFF'), inc(32, '\0'), dec(32, '\0');
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<char>(i);
    dec[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(inc), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(dec), 0x113FDB5Cu);
}

TEST(Crc32c, ExtendEqualsWhole) {
  std::string s;
  for (int i = 0; i < 1000; ++i) s += static_cast<char>(i * 7 + 3);
  for (size_t cut = 0; cut <= s.size(); cut += 37) {
    uint32_t a = Crc32c(std::string_view(s).substr(0, cut));
    EXPECT_EQ(Crc32cExtend(a, s.data() + cut, s.size() - cut), Crc32c(s)) << cut;
  }
}

// The values docs/protocol.md quotes for client implementers.
TEST(Crc32c, PartitionForKey) {
  EXPECT_EQ(Crc32c(std::string_view("order-42")), 0xF2452E86u);
  EXPECT_EQ(PartitionForKey("order-42", 8), 6);
  EXPECT_EQ(PartitionForKey("user-1", 8), 4);
  EXPECT_EQ(PartitionForKey("order-42", 8), 0xF2452E86u % 8);
  EXPECT_EQ(PartitionForKey("anything", 1), 0);
  EXPECT_EQ(PartitionForKey("", 16), 0);
}

}  // namespace
}  // namespace sluice::protocol
