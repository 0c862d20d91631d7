// The shard lcore -> replication lcore hand-off pieces (replication/handoff_ring.h): the SPSC
// ring of variable-length messages and the board of replicated ends.
#include "replication/handoff_ring.h"

#include "replication/primary.h"

#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::replication {
namespace {

std::vector<std::byte> Msg(uint32_t len, uint32_t seed) {
  std::vector<std::byte> m(len);
  for (uint32_t i = 0; i < len; ++i) m[i] = static_cast<std::byte>((seed * 31 + i) & 0xff);
  return m;
}

TEST(HandoffRing, MessagesComeOutInOrderIntact) {
  HandoffRing r(256);
  EXPECT_TRUE(r.Empty());
  EXPECT_TRUE(r.Peek().empty());
  ASSERT_TRUE(r.Push(Msg(5, 1)));
  ASSERT_TRUE(r.Push(Msg(3, 2), Msg(4, 3)));  // two parts, one message
  auto a = r.Peek();
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(std::vector<std::byte>(a.begin(), a.end()), Msg(5, 1));
  r.Pop();
  auto b = r.Peek();
  ASSERT_EQ(b.size(), 7u);
  std::vector<std::byte> want = Msg(3, 2);
  for (std::byte x : Msg(4, 3)) want.push_back(x);
  EXPECT_EQ(std::vector<std::byte>(b.begin(), b.end()), want);
  r.Pop();
  EXPECT_TRUE(r.Empty());
}

TEST(HandoffRing, FullRefusesAndFreesOnPop) {
  HandoffRing r(128);
  EXPECT_EQ(r.max_message(), 56u);
  ASSERT_TRUE(r.Push(Msg(56, 1)));  // 64 bytes with its word
  ASSERT_TRUE(r.Push(Msg(56, 2)));  // 128: full
  EXPECT_FALSE(r.Push(Msg(1, 3)));
  EXPECT_EQ(r.Begin(1), nullptr);
  r.Peek();
  r.Pop();
  ASSERT_TRUE(r.Push(Msg(56, 3)));
  auto m = r.Peek();
  EXPECT_EQ(std::vector<std::byte>(m.begin(), m.end()), Msg(56, 2));
}

TEST(HandoffRing, WrapsWithAPadWhenAMessageDoesNotFitBeforeTheEnd) {
  HandoffRing r(128);
  ASSERT_TRUE(r.Push(Msg(40, 1)));  // [0, 48)
  ASSERT_TRUE(r.Push(Msg(40, 2)));  // [48, 96)
  r.Peek(); r.Pop();                // free [0, 48)
  // 40 bytes + word = 48 do not fit in [96, 128): padded, written at 0.
  ASSERT_TRUE(r.Push(Msg(40, 3)));
  EXPECT_FALSE(r.Push(Msg(8, 4)));  // [48, 96) still held
  auto m = r.Peek();
  EXPECT_EQ(std::vector<std::byte>(m.begin(), m.end()), Msg(40, 2));
  r.Pop();
  m = r.Peek();
  EXPECT_EQ(std::vector<std::byte>(m.begin(), m.end()), Msg(40, 3));
  r.Pop();
  EXPECT_TRUE(r.Empty());
}

TEST(HandoffRing, TwoThreadsPassEveryMessageOnceInOrder) {
  HandoffRing r(4096);
  constexpr uint32_t kCount = 200000;
  std::thread producer([&] {
    for (uint32_t i = 0; i < kCount;) {
      const uint32_t len = 4 + (i * 7) % 300;
      std::byte* p = r.Begin(len);
      if (p == nullptr) continue;  // full: retry (the test's producer spins)
      std::memcpy(p, &i, 4);
      for (uint32_t k = 4; k < len; ++k) p[k] = static_cast<std::byte>((i + k) & 0xff);
      r.Commit();
      ++i;
    }
  });
  uint32_t next = 0;
  bool intact = true;
  while (next < kCount) {
    auto m = r.Peek();
    if (m.empty()) continue;
    uint32_t i;
    std::memcpy(&i, m.data(), 4);
    if (i != next || m.size() != 4 + (i * 7) % 300) intact = false;
    for (uint32_t k = 4; k < m.size(); ++k)
      if (m[k] != static_cast<std::byte>((i + k) & 0xff)) intact = false;
    r.Pop();
    ++next;
    if (!intact) break;
  }
  producer.join();
  EXPECT_TRUE(intact) << "at message " << next;
  EXPECT_TRUE(r.Empty());
}

TEST(ReplicatedBoard, ReadsWhatTheWriterSet) {
  ReplicatedBoard b;
  uint64_t v = 0;
  EXPECT_FALSE(b.Replicated(1, 0, &v));
  ASSERT_TRUE(b.Set(1, 0, 100, ReplicatedBoard::kNo));
  ASSERT_TRUE(b.Replicated(1, 0, &v));
  EXPECT_EQ(v, 100u);
  EXPECT_FALSE(b.AcksApplied(1, 0, &v));  // ack stream not running
  ASSERT_TRUE(b.Set(1, 0, 120, 7));
  ASSERT_TRUE(b.AcksApplied(1, 0, &v));
  EXPECT_EQ(v, 7u);
  ASSERT_TRUE(b.Set(1, 0, ReplicatedBoard::kNo, 7));  // out of sync: neither holds
  EXPECT_FALSE(b.Replicated(1, 0, &v));
  EXPECT_FALSE(b.AcksApplied(1, 0, &v));
  EXPECT_FALSE(b.Replicated(1, 1, &v));  // another partition
}

TEST(ReplicatedBoard, FullTableRefusesNewPartitionsOnly) {
  ReplicatedBoard b;
  for (uint32_t p = 0; p < ReplicatedBoard::kSlots; ++p) ASSERT_TRUE(b.Set(2, p, p, 0));
  EXPECT_FALSE(b.Set(3, 0, 1, 0));
  EXPECT_TRUE(b.Set(2, 5, 50, 0));
  uint64_t v = 0;
  ASSERT_TRUE(b.Replicated(2, 5, &v));
  EXPECT_EQ(v, 50u);
}

// A batch the hand-off could not carry is offered without its bytes (Streamer::OfferFromLog): the
// streamer's in-memory run no longer ends at offered_end, so it goes, and what the standby needs
// is read back from the log.
TEST(StreamerOfferFromLog, WhatMemoryNoLongerHoldsIsReadBack) {
  Streamer s(1, 0, /*log_end=*/0, /*epoch_start=*/0, StreamerConfig{});
  LinkCounters c;
  const std::vector<std::byte> b = Msg(100, 1);
  s.Offer(b, 0, 10, 1, c);
  s.Connect(0, 2);
  uint64_t from = 99;
  EXPECT_FALSE(s.WantsBackfill(&from));  // [0, 10) in memory
  s.OfferFromLog(10, 20, 3, c);
  EXPECT_EQ(s.offered_end(), 20u);
  ASSERT_TRUE(s.WantsBackfill(&from));
  EXPECT_EQ(from, 0u);                   // read back from 0, not only from 10
  s.OfferFromLog(10, 20, 4, c);          // offered before: ignored
  EXPECT_EQ(s.offered_end(), 20u);
  s.Offer(b, 20, 30, 5, c);              // later batches with bytes again
  EXPECT_EQ(s.offered_end(), 30u);
  s.Backfill(b, 0, 10);
  s.OnAck(20, 6);
  EXPECT_FALSE(s.WantsBackfill(&from));  // [20, 30) in memory
}

}  // namespace
}  // namespace sluice::replication
