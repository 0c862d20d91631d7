#include "dataplane/shard/timer_wheel.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <vector>

namespace sluice::shard {
namespace {

TEST(TimerWheel, FiresAtTheDeadlineTickNotBefore) {
  TimerWheel w(1000);
  TimerNode a, b, c;
  w.Insert(&a, 1005);
  w.Insert(&b, 1000 + 64 * 64 + 3);  // level 2
  w.Insert(&c, 999);                 // past: next tick
  std::vector<TimerNode*> fired;
  auto fire = [&](TimerNode* n) { fired.push_back(n); };
  w.Advance(1000, fire);
  EXPECT_TRUE(fired.empty());
  w.Advance(1001, fire);
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0], &c);
  w.Advance(1004, fire);
  EXPECT_EQ(fired.size(), 1u);
  w.Advance(1005, fire);
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[1], &a);
  w.Advance(1000 + 64 * 64 + 2, fire);
  EXPECT_EQ(fired.size(), 2u);
  w.Advance(1'000'000, fire);
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_EQ(fired[2], &b);
  EXPECT_EQ(w.size(), 0u);
  EXPECT_FALSE(b.linked());
}

TEST(TimerWheel, CancelAndCancelFromInsideACallback) {
  TimerWheel w(0);
  TimerNode a, b, c;
  w.Insert(&a, 10);
  w.Insert(&b, 10);
  w.Insert(&c, 20);
  w.Cancel(&c);
  EXPECT_FALSE(c.linked());
  int fired = 0;
  w.Advance(100, [&](TimerNode* n) {
    ++fired;
    w.Cancel(n == &a ? &b : &a);  // the other one is still waiting in the firing list
  });
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(w.size(), 0u);
}

// Random inserts, cancels and advances against a brute-force reference: every timer fires exactly
// once, in the first Advance whose target reaches its deadline, and with now() == its deadline.
TEST(TimerWheel, RandomizedAgainstReference) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const uint64_t start = rng() % (uint64_t{1} << 40);
    TimerWheel w(start);
    std::vector<TimerNode> nodes(500);
    std::vector<uint64_t> due(nodes.size(), 0);  // 0 = not armed
    for (uint32_t i = 0; i < nodes.size(); ++i) nodes[i].owner_index = i;
    uint64_t now = start;
    for (int step = 0; step < 3000; ++step) {
      const uint32_t i = static_cast<uint32_t>(rng() % nodes.size());
      switch (rng() % 4) {
        case 0:
        case 1: {
          if (nodes[i].linked()) break;
          const int scale = static_cast<int>(rng() % 5);
          const uint64_t ahead = 1 + rng() % (uint64_t{1} << (4 + 5 * scale));
          w.Insert(&nodes[i], now + ahead);
          due[i] = now + ahead;
          break;
        }
        case 2:
          w.Cancel(&nodes[i]);
          due[i] = 0;
          break;
        case 3: {
          const int scale = static_cast<int>(rng() % 5);
          const uint64_t target = now + rng() % (uint64_t{1} << (3 + 5 * scale));
          w.Advance(target, [&](TimerNode* n) {
            const uint32_t k = n->owner_index;
            if (due[k] == 0 || due[k] != w.now() || due[k] > target || due[k] <= now) {
              ADD_FAILURE() << "seed " << seed << " timer " << k << " due " << due[k]
                            << " fired at " << w.now();
            }
            due[k] = 0;
          });
          now = target;
          for (uint32_t k = 0; k < nodes.size(); ++k) {
            if (due[k] != 0 && due[k] <= now) {
              ADD_FAILURE() << "seed " << seed << " timer " << k << " due " << due[k]
                            << " not fired by " << now;
              due[k] = 0;
            }
          }
          break;
        }
      }
      if (HasFailure()) {
        std::fprintf(stderr, "failing seed %u at step %d\n", seed, step);
        return;
      }
    }
  }
}

}  // namespace
}  // namespace sluice::shard
