// The message path must not allocate after warm-up (DESIGN §1): this binary replaces the global
// operator new with a counting one and drives every per-message call — append (idempotent, with
// dedup id and FIFO group), seal, durable, ack, fetch, push, receive, delete, nack, extend, long
// poll, timers — counting allocations between the markers.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "absl/strings/str_cat.h"
#include "dataplane/shard/shard.h"
#include "tests/unit/shard/test_sink.h"

namespace {
uint64_t g_allocations = 0;
}  // namespace

// The replacements pair malloc with free on purpose; GCC cannot see that through gtest's `new`.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace sluice::shard {
namespace {

using testing::Bytes;
using testing::kMs;

// Counts only: a sink that stores events would allocate itself.
struct CountingSink final : ShardSink {
  uint64_t events = 0;
  Receipt last;
  void OnAck(const AckRange&) override { ++events; }
  void OnDeliver(const Delivery&) override { ++events; }
  void OnSubscriptionGap(const SubscriptionGap&) override { ++events; }
  void OnLeased(const Leased& l) override {
    ++events;
    last = l.receipt;
  }
  void OnReceiveDone(const ReceiveDone&) override { ++events; }
  void OnDeadLetter(const DeadLetter&) override { ++events; }
};

TEST(NoAlloc, MessagePathDoesNotAllocateAfterWarmUp) {
  CountingSink sink;
  ShardConfig sc;
  sc.chunk_bytes = 64 * 1024;
  sc.pool_chunks = 64;
  Shard shard(sc, &sink);
  QueueConfig work;
  work.max_message_bytes = 1024;
  work.fifo = true;
  work.dedup_window_ms = 50;
  work.content_dedup = true;
  work.ttl_ms = 10'000;
  work.priority_levels = 3;
  work.max_receive_count = 3;
  work.memory_budget_chunks = 16;
  QueueConfig stream;
  stream.type = QueueType::kStream;
  stream.max_message_bytes = 1024;
  stream.memory_budget_chunks = 16;
  ASSERT_EQ(shard.AddPartition(QueueId{1}, 0, work), Errc::kOk);
  ASSERT_EQ(shard.AddPartition(QueueId{2}, 0, stream), Errc::kOk);
  ASSERT_EQ(shard.Subscribe(SubscriptionId{9}, {}, QueueId{2}, 0, StartPosition::Latest(), 0),
            Errc::kOk);

  // Ids prepared up front: building strings would be the test allocating, not the engine.
  std::vector<std::string> dedup_ids, groups;
  for (int i = 0; i < 1000; ++i) dedup_ids.push_back(absl::StrCat("dedup-", i));
  for (int i = 0; i < 16; ++i) groups.push_back(absl::StrCat("group-", i));
  const std::string payload(200, 'p');
  uint64_t now = 1'000'000 * kMs;
  uint64_t seq = 0, stream_seq = 0;

  auto round = [&](int i) {
    MessageIn m;
    m.record = Bytes(payload);
    m.producer_id = 5;
    m.sequence = seq;
    m.dedup_id = dedup_ids[i % dedup_ids.size()];
    m.body = m.record;
    if (i % 4 == 0) m.dedup_id = {};  // deduplicated by its payload (content_dedup)
    m.group = groups[i % groups.size()];
    m.priority = static_cast<uint8_t>(i % 3);
    const Errc e = shard.Append({1, 1, 1}, QueueId{1}, m, now).errc;
    if (e == Errc::kOk || e == Errc::kDuplicate) ++seq;  // a client resends what was refused
    if (i % 7 == 0) shard.Append({1, 1, 1}, QueueId{1}, m, now);  // retransmit
    MessageIn s;
    s.record = Bytes(payload);
    s.producer_id = 6;
    s.sequence = stream_seq;
    if (shard.Append({1, 1, 1}, QueueId{2}, s, now).errc == Errc::kOk) ++stream_seq;
    if (i % 4 == 3) {
      shard.SealAll();
      for (uint32_t q : {1u, 2u}) {
        shard.MarkDurable(QueueId{q}, 0,
                          DurableOffset{shard.Find(QueueId{q}, 0)->log().sealed_end().value});
      }
    }
    shard.Credit(SubscriptionId{9}, 1);
    shard.Fetch(QueueId{2}, 0, StartPosition::Earliest(), 8, 4096, [](const StoredMessage&) {});
    shard.Receive({2, 2, 2}, QueueId{1}, 0, {1, 20, i % 5 == 0 ? 30u : 0u}, now);
    switch (i % 6) {
      case 0: shard.Nack(QueueId{1}, 0, sink.last, i % 3, now); break;
      case 1: shard.Extend(QueueId{1}, 0, sink.last, 10, now); break;
      case 2: break;  // let the lease expire
      default: shard.Delete(QueueId{1}, 0, sink.last, now); break;
    }
    now += kMs * (1 + i % 7);
    shard.Tick(now);
    shard.Flush();
  };

  for (int i = 0; i < 20'000; ++i) round(i);  // warm-up: every table reaches its steady size
  const uint64_t before = g_allocations;
  const uint64_t events_before = sink.events;
  for (int i = 20'000; i < 60'000; ++i) round(i);
  EXPECT_EQ(g_allocations - before, 0u);
  // It did real work (not a throttled no-op loop).
  EXPECT_GT(sink.events - events_before, 100'000u);
  EXPECT_GT(shard.counters().leases, 10'000u);
  EXPECT_GT(shard.counters().delivered, 10'000u);
  EXPECT_GT(shard.counters().duplicates, 1'000u);
  const ShardCounters& c = shard.counters();
  std::printf("appended %llu leases %llu deleted %llu dead %llu throttled %llu out_of_order %llu "
              "expired %llu waiters %llu\n",
              (unsigned long long)c.appended, (unsigned long long)c.leases,
              (unsigned long long)c.deleted, (unsigned long long)c.dead_lettered,
              (unsigned long long)c.throttled, (unsigned long long)c.out_of_order,
              (unsigned long long)c.expired, (unsigned long long)c.waiters_parked);
}

}  // namespace
}  // namespace sluice::shard
