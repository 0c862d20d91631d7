// VerifiedMemo (one worker's memory of its last verified source) against the table it fronts: a
// fake table (map of source -> last echo time) with AddressCheck's expiry, driven through random
// sequences of verifications, renewals and lookups at advancing times; the memo's answer is the
// table's answer every time, and it spares the lookup for repeated frames of one source.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <utility>

#include "dataplane/verified_memo.h"

namespace sluice::dataplane {
namespace {

constexpr uint64_t kFor = 300'000'000'000ull;  // AddressCheck::kVerifiedForNs

struct FakeTable {
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> at;
  uint64_t lookups = 0;
  bool Lookup(uint64_t e, uint64_t c, uint64_t* out) {
    ++lookups;
    auto it = at.find({e, c});
    if (it == at.end()) return false;
    *out = it->second;
    return true;
  }
  bool IsVerified(uint64_t e, uint64_t c, uint64_t now) {
    uint64_t t = 0;
    return Lookup(e, c, &t) && now - t < kFor;
  }
};

TEST(VerifiedMemo, AnswersAsTheTableAndSparesRepeatedLookups) {
  std::mt19937_64 g(29);
  FakeTable table;
  VerifiedMemo memo;
  uint64_t now = 1'000'000'000;
  uint64_t asked = 0, agreed_yes = 0, agreed_no = 0;
  for (int i = 0; i < 200000; ++i) {
    // Time moves by up to ~40 s a step, so entries expire and get renewed along the way.
    now += g() % (g() % 8 == 0 ? 40'000'000'000ull : 1'000'000ull);
    const uint64_t e = 1 + g() % 3, c = 10 + g() % 2;
    if (g() % 50 == 0) table.at[{e, c}] = now;  // a valid echo (Verify): the time moves forward
    if (g() % 200 == 0 && !table.at.empty()) {
      // Another worker's Verify, stamped with a pass clock up to 1 ms behind this one's: the
      // table's time may move back that much.
      table.at.begin()->second = now - g() % 1'000'000;
    }
    const uint64_t before = table.lookups;
    const bool want = table.IsVerified(e, c, now);
    table.lookups = before;  // count only the memo's lookups
    const bool got = memo.IsVerified(e, c, now, kFor, [&](uint64_t a, uint64_t b, uint64_t* t) {
      return table.Lookup(a, b, t);
    });
    ASSERT_EQ(got, want) << "step " << i;
    ++asked;
    (want ? agreed_yes : agreed_no) += 1;
  }
  EXPECT_GT(agreed_yes, 10000u);
  EXPECT_GT(agreed_no, 1000u);
  EXPECT_LT(table.lookups, asked);  // repeated frames of the last source needed none
}

TEST(VerifiedMemo, OneSourceAtFloodRateLooksUpOncePerMargin) {
  FakeTable table;
  VerifiedMemo memo;
  table.at[{7, 8}] = 5'000'000'000;
  auto ask = [&](uint64_t now) {
    return memo.IsVerified(7, 8, now, kFor, [&](uint64_t a, uint64_t b, uint64_t* t) {
      return table.Lookup(a, b, t);
    });
  };
  for (uint64_t now = 5'000'000'000; now < 6'000'000'000; now += 1'000) ASSERT_TRUE(ask(now));
  EXPECT_EQ(table.lookups, 1u);
  // Near the expiry the table is asked again (and says no once it has passed)...
  const uint64_t expiry = 5'000'000'000 + kFor;
  EXPECT_TRUE(ask(expiry - 1));
  EXPECT_EQ(table.lookups, 2u);
  EXPECT_FALSE(ask(expiry));
  // ...and a renewal is seen at once.
  table.at[{7, 8}] = expiry + 10;
  EXPECT_TRUE(ask(expiry + 20));
  // A clock behind the remembered time (another worker stamped it) is asked of the table.
  const uint64_t n = table.lookups;
  EXPECT_FALSE(ask(expiry + 5));  // the table: now - at wraps, not verified (as before)
  EXPECT_EQ(table.lookups, n + 1);
  // Another worker's Verify with a clock 0.5 ms behind moves the table's time back: at the
  // table's expiry the memo does not answer from the later time it remembers.
  table.at[{7, 8}] = 900'000'000'000;
  EXPECT_TRUE(ask(900'000'000'000));  // remembered: 900 s
  table.at[{7, 8}] = 900'000'000'000 - 500'000;
  EXPECT_FALSE(ask(900'000'000'000 - 500'000 + kFor));
  // Another source is never answered from the memo.
  EXPECT_FALSE(memo.IsVerified(7, 9, expiry + 30, kFor, [&](uint64_t a, uint64_t b, uint64_t* t) {
    return table.Lookup(a, b, t);
  }));
}

}  // namespace
}  // namespace sluice::dataplane
