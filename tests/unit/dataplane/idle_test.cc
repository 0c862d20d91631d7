// The adaptive idle policy's back-off (dataplane/idle.h): spin, pause, then sleeps that double
// up to a cap, the layout's idle_sleep_max_us where no RX interrupt can end a sleep.
#include "dataplane/idle.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace sluice::dataplane {
namespace {

// The sleeps asked for over `passes` empty passes.
std::vector<uint64_t> Sleeps(IdlePolicy& p, uint32_t passes) {
  std::vector<uint64_t> out;
  for (uint32_t i = 0; i < passes; ++i) {
    if (const uint64_t ns = p.Next(0); ns != 0) out.push_back(ns);
  }
  return out;
}

TEST(IdlePolicy, SpinsAndPausesBeforeTheFirstSleep) {
  IdlePolicy p(hwconf::IdlePolicy::kAdaptive, false, 50'000);
  EXPECT_TRUE(Sleeps(p, IdlePolicy::kPausePasses - 1).empty());
  EXPECT_EQ(p.Next(0), IdlePolicy::kSleepMinNs);
}

TEST(IdlePolicy, WithoutWakeupsSleepsDoubleUpToTheLayoutsCap) {
  for (const uint64_t cap : {50'000ull, 400'000ull}) {
    IdlePolicy p(hwconf::IdlePolicy::kAdaptive, false, cap);
    const std::vector<uint64_t> s = Sleeps(p, IdlePolicy::kPausePasses + 40);
    ASSERT_FALSE(s.empty());
    EXPECT_EQ(s.front(), IdlePolicy::kSleepMinNs);
    for (size_t i = 1; i < s.size(); ++i) EXPECT_EQ(s[i], std::min(2 * s[i - 1], cap)) << i;
    EXPECT_EQ(s.back(), cap);
  }
}

TEST(IdlePolicy, WithWakeupsTheCapIsAMillisecond) {
  IdlePolicy p(hwconf::IdlePolicy::kAdaptive, true, 50'000);
  EXPECT_EQ(Sleeps(p, IdlePolicy::kPausePasses + 40).back(), IdlePolicy::kSleepMaxWithWakeupNs);
}

TEST(IdlePolicy, WorkResetsTheBackOffAndPollNeverSleeps) {
  IdlePolicy p(hwconf::IdlePolicy::kAdaptive, false, 50'000);
  EXPECT_FALSE(Sleeps(p, IdlePolicy::kPausePasses + 40).empty());
  EXPECT_EQ(p.Next(1), 0u);
  EXPECT_EQ(Sleeps(p, IdlePolicy::kPausePasses).size(), 1u);  // the back-off starts over
  IdlePolicy poll(hwconf::IdlePolicy::kPoll, false, 50'000);
  EXPECT_TRUE(Sleeps(poll, 10'000).empty());
}

}  // namespace
}  // namespace sluice::dataplane
