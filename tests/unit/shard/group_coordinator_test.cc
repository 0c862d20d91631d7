// Consumer groups (group_coordinator.h), driven with a fake clock: range assignment, rebalance on
// join / leave / session timeout with a new generation each time, generation fencing of stale
// commits, committed offsets that outlive members, limits; and the Shard's routing to the
// coordinator on partition 0 with expiry from Tick.
#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "dataplane/shard/group_coordinator.h"
#include "dataplane/shard/shard.h"
#include "tests/unit/shard/test_sink.h"

namespace sluice::shard {
namespace {

constexpr uint64_t kMs = 1'000'000;

std::set<uint32_t> PartitionsOf(const GroupAssignment& a) {
  std::set<uint32_t> s;
  for (uint32_t p = a.first_partition; p < a.first_partition + a.partition_count; ++p) s.insert(p);
  return s;
}

TEST(GroupCoordinator, FirstMemberGetsEverything) {
  GroupCoordinator c(4, 8, 8);
  GroupAssignment a;
  ASSERT_EQ(c.Join("g", 10, 1000, 0, &a), Errc::kOk);
  EXPECT_EQ(a.generation, 1u);
  EXPECT_EQ(a.members, 1u);
  EXPECT_EQ(a.session_ms, 1000u);
  EXPECT_EQ(PartitionsOf(a), (std::set<uint32_t>{0, 1, 2, 3}));
  // A heartbeat changes nothing.
  ASSERT_EQ(c.Join("g", 10, 1000, 500 * kMs, &a), Errc::kOk);
  EXPECT_EQ(a.generation, 1u);
  EXPECT_EQ(c.counters().rebalances, 1u);
}

TEST(GroupCoordinator, JoinRebalancesDisjointAndComplete) {
  GroupCoordinator c(5, 8, 8);
  GroupAssignment a, b, x;
  ASSERT_EQ(c.Join("g", 20, 1000, 0, &a), Errc::kOk);
  ASSERT_EQ(c.Join("g", 10, 1000, 0, &b), Errc::kOk);
  EXPECT_EQ(b.generation, 2u);
  ASSERT_EQ(c.Join("g", 20, 1000, 0, &a), Errc::kOk);  // 20 hears of generation 2
  EXPECT_EQ(a.generation, 2u);
  // Sorted by id: 10 first. 5 partitions over 2 members: [0,2) and [2,5).
  EXPECT_EQ(PartitionsOf(b), (std::set<uint32_t>{0, 1}));
  EXPECT_EQ(PartitionsOf(a), (std::set<uint32_t>{2, 3, 4}));
  // Deterministic: the same members give the same assignment in another coordinator.
  GroupCoordinator d(5, 8, 8);
  ASSERT_EQ(d.Join("g", 10, 1000, 0, &x), Errc::kOk);
  ASSERT_EQ(d.Join("g", 20, 1000, 0, &x), Errc::kOk);
  EXPECT_EQ(PartitionsOf(x), PartitionsOf(a));
}

TEST(GroupCoordinator, MoreMembersThanPartitions) {
  GroupCoordinator c(2, 8, 8);
  std::set<uint32_t> all;
  uint32_t idle = 0;
  for (uint64_t m = 1; m <= 3; ++m) {
    GroupAssignment a;
    ASSERT_EQ(c.Join("g", m, 1000, 0, &a), Errc::kOk);
  }
  for (uint64_t m = 1; m <= 3; ++m) {
    GroupAssignment a;
    ASSERT_EQ(c.Join("g", m, 1000, 0, &a), Errc::kOk);
    EXPECT_EQ(a.generation, 3u);
    for (uint32_t p : PartitionsOf(a)) EXPECT_TRUE(all.insert(p).second) << "partition twice";
    if (a.partition_count == 0) ++idle;
  }
  EXPECT_EQ(all, (std::set<uint32_t>{0, 1}));
  EXPECT_EQ(idle, 1u);
}

TEST(GroupCoordinator, LeaveRebalancesAtOnce) {
  GroupCoordinator c(4, 8, 8);
  GroupAssignment a, b;
  c.Join("g", 1, 1000, 0, &a);
  c.Join("g", 2, 1000, 0, &b);
  ASSERT_EQ(c.Leave("g", 2, &b), Errc::kOk);
  EXPECT_EQ(b.generation, 3u);
  EXPECT_EQ(b.members, 1u);
  ASSERT_EQ(c.Join("g", 1, 1000, 0, &a), Errc::kOk);
  EXPECT_EQ(a.generation, 3u);
  EXPECT_EQ(a.partition_count, 4u);
  // Leaving twice, or a stranger leaving, changes nothing.
  ASSERT_EQ(c.Leave("g", 2, &b), Errc::kOk);
  ASSERT_EQ(c.Leave("nope", 2, &b), Errc::kOk);
  EXPECT_EQ(c.Describe("g").generation, 3u);
}

TEST(GroupCoordinator, SilentMemberExpiresAfterItsSession) {
  GroupCoordinator c(4, 8, 8);
  GroupAssignment a, b;
  c.Join("g", 1, 1000, 0, &a);
  c.Join("g", 2, 3000, 0, &b);
  EXPECT_EQ(c.next_expiry_ns(), 1000 * kMs);
  EXPECT_EQ(c.Expire(999 * kMs), 0u);  // never early
  c.Join("g", 2, 3000, 900 * kMs, &b);  // 2 heartbeats; 1 does not
  EXPECT_EQ(c.Expire(1000 * kMs), 1u);
  EXPECT_EQ(c.counters().expirations, 1u);
  ASSERT_EQ(c.Join("g", 2, 3000, 1001 * kMs, &b), Errc::kOk);
  EXPECT_EQ(b.generation, 3u);
  EXPECT_EQ(b.members, 1u);
  EXPECT_EQ(b.partition_count, 4u);
  // 2 goes silent too: the group empties, its offsets stay.
  ASSERT_EQ(c.Commit("g", 2, 3, 1, 77), Errc::kOk);
  EXPECT_EQ(c.Expire(4000 * kMs), 0u);
  EXPECT_EQ(c.Expire(4001 * kMs), 1u);
  EXPECT_EQ(c.Describe("g").members, 0u);
  EXPECT_EQ(c.Committed("g", 1), 77u);
  EXPECT_EQ(c.next_expiry_ns(), UINT64_MAX);
  // A member that expired and comes back is a new member: a new generation.
  ASSERT_EQ(c.Join("g", 1, 1000, 5000 * kMs, &a), Errc::kOk);
  EXPECT_EQ(a.generation, 5u);
}

TEST(GroupCoordinator, StaleCommitsAreFenced) {
  GroupCoordinator c(4, 8, 8);
  GroupAssignment a, b;
  c.Join("g", 1, 1000, 0, &a);  // generation 1: 1 holds 0..3
  ASSERT_EQ(c.Commit("g", 1, 1, 3, 100), Errc::kOk);
  c.Join("g", 2, 1000, 0, &b);  // generation 2: 1 holds 0,1; 2 holds 2,3
  // 1 has not heard of generation 2 yet: its commit for partition 3 must not land.
  EXPECT_EQ(c.Commit("g", 1, 1, 3, 150), Errc::kStaleGeneration);
  EXPECT_EQ(c.Committed("g", 3), 100u);
  // With the new generation, only the partitions it holds.
  EXPECT_EQ(c.Commit("g", 1, 2, 3, 150), Errc::kStaleGeneration);
  EXPECT_EQ(c.Commit("g", 1, 2, 1, 10), Errc::kOk);
  EXPECT_EQ(c.Commit("g", 2, 2, 3, 160), Errc::kOk);
  EXPECT_EQ(c.Committed("g", 3), 160u);
  // A future generation, a stranger, an unknown group: refused.
  EXPECT_EQ(c.Commit("g", 2, 3, 3, 1), Errc::kStaleGeneration);
  EXPECT_EQ(c.Commit("g", 9, 2, 3, 1), Errc::kStaleGeneration);
  EXPECT_EQ(c.Commit("h", 2, 2, 3, 1), Errc::kStaleGeneration);
  EXPECT_EQ(c.Commit("g", 2, 2, 4, 1), Errc::kUnknownPartition);
  EXPECT_EQ(c.counters().stale_commits, 5u);  // the unknown partition is not a fencing
  EXPECT_EQ(c.Committed("g", 3), 160u);
  // Administrative commits only while nobody consumes.
  EXPECT_EQ(c.Commit("g", 0, 0, 0, 5), Errc::kStaleGeneration);
  c.Leave("g", 1, &a);
  c.Leave("g", 2, &b);
  EXPECT_EQ(c.Commit("g", 0, 0, 0, 5), Errc::kOk);
  EXPECT_EQ(c.Committed("g", 0), 5u);
  EXPECT_EQ(c.Commit("new", 0, 0, 2, 9), Errc::kOk);  // creates the group
  EXPECT_EQ(c.Committed("new", 2), 9u);
  EXPECT_FALSE(c.Committed("new", 1).has_value());
}

TEST(GroupCoordinator, GroupsAreIndependent) {
  GroupCoordinator c(2, 8, 8);
  GroupAssignment a, b;
  c.Join("g1", 1, 1000, 0, &a);
  c.Join("g2", 2, 1000, 0, &b);
  EXPECT_EQ(a.partition_count, 2u);
  EXPECT_EQ(b.partition_count, 2u);
  EXPECT_EQ(c.Commit("g1", 1, 1, 0, 10), Errc::kOk);
  EXPECT_FALSE(c.Committed("g2", 0).has_value());
}

TEST(GroupCoordinator, Limits) {
  GroupCoordinator c(2, 2, 2);
  GroupAssignment a;
  EXPECT_EQ(c.Join("", 1, 1000, 0, &a), Errc::kInvalidArgument);
  EXPECT_EQ(c.Join("g", 0, 1000, 0, &a), Errc::kInvalidArgument);
  ASSERT_EQ(c.Join("g", 1, 1000, 0, &a), Errc::kOk);
  ASSERT_EQ(c.Join("g", 2, 1000, 0, &a), Errc::kOk);
  EXPECT_EQ(c.Join("g", 3, 1000, 0, &a), Errc::kThrottled);  // members
  EXPECT_EQ(c.Describe("g").members, 2u);
  ASSERT_EQ(c.Join("h", 1, 1000, 0, &a), Errc::kOk);
  EXPECT_EQ(c.Join("i", 1, 1000, 0, &a), Errc::kThrottled);  // groups
  // Sessions are clamped.
  ASSERT_EQ(c.Join("h", 2, 1, 0, &a), Errc::kOk);
  EXPECT_EQ(a.session_ms, GroupCoordinator::kMinSessionMs);
  ASSERT_EQ(c.Join("h", 2, 0, 0, &a), Errc::kOk);
  EXPECT_EQ(a.session_ms, GroupCoordinator::kDefaultSessionMs);
}

// Many random joins, leaves and expiries: after each step, the live members' assignments in the
// current generation cover every partition exactly once.
TEST(GroupCoordinator, RandomMembershipAlwaysPartitionsTheQueue) {
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull;
    auto next = [&] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    const uint32_t parts = 1 + next() % 12;
    GroupCoordinator c(parts, 4, 16);
    uint64_t now = 0;
    uint32_t last_gen = 0;
    for (int step = 0; step < 100; ++step) {
      now += (next() % 400) * kMs;
      const uint64_t m = 1 + next() % 10;
      GroupAssignment a;
      switch (next() % 3) {
        case 0: ASSERT_EQ(c.Join("g", m, 1000, now, &a), Errc::kOk); break;
        case 1: c.Leave("g", m, &a); break;
        default: c.Expire(now); break;
      }
      std::set<uint32_t> covered;
      const uint32_t gen = c.Describe("g").generation;
      ASSERT_GE(gen, last_gen) << "seed " << seed;
      last_gen = gen;
      const uint32_t members = c.Describe("g").members;
      // Every partition is committable by exactly one member of the current generation.
      for (uint32_t p = 0; p < parts && members > 0; ++p) {
        int holders = 0;
        for (uint64_t id = 1; id <= 10; ++id) {
          if (c.Commit("g", id, gen, p, 1) == Errc::kOk) ++holders;
        }
        ASSERT_EQ(holders, 1) << "seed " << seed << " step " << step << " partition " << p;
        covered.insert(p);
      }
      if (members > 0) {
        ASSERT_EQ(covered.size(), parts);
      }
    }
  }
}

// ---- through the Shard -------------------------------------------------------------------------

TEST(ShardGroups, CoordinatorLivesOnPartitionZeroAndExpiresOnTick) {
  testing::RecordingSink sink;
  ShardConfig sc;
  sc.chunk_bytes = 16 * 1024;
  sc.pool_chunks = 8;
  Shard shard(sc, &sink);
  QueueConfig qc;
  qc.type = QueueType::kStream;
  qc.max_message_bytes = 4096;
  qc.memory_budget_chunks = 2;
  qc.partitions = 3;
  const QueueId q{5}, other{6}, work{7};
  ASSERT_EQ(shard.AddPartition(q, 0, qc), Errc::kOk);
  ASSERT_EQ(shard.AddPartition(other, 1, qc), Errc::kOk);  // partition 0 lives elsewhere
  QueueConfig wc;
  wc.max_message_bytes = 4096;
  wc.memory_budget_chunks = 2;
  ASSERT_EQ(shard.AddPartition(work, 0, wc), Errc::kOk);
  EXPECT_NE(shard.Find(q, 0)->groups(), nullptr);
  EXPECT_EQ(shard.Find(other, 1)->groups(), nullptr);

  GroupAssignment a;
  EXPECT_EQ(shard.JoinGroup(other, "g", 1, 1000, 0, &a), Errc::kUnknownPartition);
  EXPECT_EQ(shard.JoinGroup(work, "g", 1, 1000, 0, &a), Errc::kWrongQueueType);
  const uint64_t t0 = 1'000'000 * kMs;
  ASSERT_EQ(shard.JoinGroup(q, "g", 1, 1000, t0, &a), Errc::kOk);
  EXPECT_EQ(a.partition_count, 3u);
  ASSERT_EQ(shard.JoinGroup(q, "g", 2, 5000, t0, &a), Errc::kOk);
  EXPECT_EQ(a.generation, 2u);
  EXPECT_EQ(shard.CommitGroup(q, "g", 2, 2, 2, 42), Errc::kOk);
  EXPECT_EQ(shard.GroupCommitted(q, "g", 2), 42u);
  shard.Tick(t0 + 999 * kMs);
  EXPECT_EQ(shard.Find(q, 0)->groups()->Describe("g").members, 2u);
  shard.Tick(t0 + 1000 * kMs);  // member 1's session is over
  GroupAssignment d;
  ASSERT_EQ(shard.DescribeGroup(q, "g", &d), Errc::kOk);
  EXPECT_EQ(d.members, 1u);
  EXPECT_EQ(d.generation, 3u);
  ASSERT_EQ(shard.LeaveGroup(q, "g", 2, &a), Errc::kOk);
  EXPECT_EQ(a.members, 0u);
  EXPECT_EQ(shard.GroupCommitted(q, "g", 2), 42u);
  ASSERT_EQ(shard.RemovePartition(q, 0), Errc::kOk);
  shard.Tick(t0 + 10'000 * kMs);  // the coordinator is gone with its partition
}

}  // namespace
}  // namespace sluice::shard
