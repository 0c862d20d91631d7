// The replies sync queues hold until the standby has their ack records (dataplane/
// pending_replies.h): released when nothing in them waits, in any order across partitions,
// bounded (Open says no when full, nothing changes), slots reused as the ring wraps, and every
// reply released exactly once with its items intact.
#include "dataplane/pending_replies.h"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <random>
#include <vector>

namespace sluice::dataplane {
namespace {

using Verdict = PendingReplies::Verdict;

struct Sent {
  PendingReplies::Head head;
  std::vector<PendingReplies::Item> items;
};

// Releases with `applied[key]` as the standby's position per partition; `refused` keys answer
// NOT_REPLICATED.
uint32_t Release(PendingReplies& p, const std::map<uint64_t, uint64_t>& applied,
                 std::vector<Sent>* sent, uint64_t refused = UINT64_MAX) {
  return p.Release(
      [&](const PendingReplies::Head&, const PendingReplies::Item& it) {
        if (it.wait_key == refused) return Verdict::kNotReplicated;
        auto a = applied.find(it.wait_key);
        return a != applied.end() && a->second >= it.wait_seq ? Verdict::kOk : Verdict::kWait;
      },
      [&](const PendingReplies::Head& h, std::span<const PendingReplies::Item> items) {
        sent->push_back({h, {items.begin(), items.end()}});
      });
}

TEST(PendingReplies, ReleasedWhenEveryItemIsReplicatedInAnyPartitionOrder) {
  PendingReplies p(8, 64);
  std::vector<Sent> sent;
  // Reply 1: partition A seq 3, an item already final (an error), partition B seq 1.
  ASSERT_TRUE(p.Open({10, 1, 100, 5, 0}, 3));
  p.Add({Errc::kOk, 0, 0, 0xA, 3});
  p.Add({Errc::kUnknownReceipt, 1, 0, 0, 0});
  p.Add({Errc::kOk, 2, 0, 0xB, 1});
  EXPECT_TRUE(p.Close());
  // Reply 2: partition B seq 2 only.
  ASSERT_TRUE(p.Open({10, 1, 101, 5, 0}, 4));
  p.Add({Errc::kOk, 0, 0, 0xB, 2});
  EXPECT_TRUE(p.Close());
  EXPECT_EQ(p.waiting(), 2u);
  EXPECT_EQ(p.items_held(), 4u);  // the unused reservation given back
  EXPECT_TRUE(p.Holds(10, 1, 101, 5));
  EXPECT_FALSE(p.Holds(10, 1, 101, 21));  // another request type
  EXPECT_FALSE(p.Holds(11, 1, 101, 5));   // another endpoint

  // A lags: reply 2 (only B) goes first; reply 1 still waits for A.
  EXPECT_EQ(Release(p, {{0xA, 2}, {0xB, 2}}, &sent), 1u);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].head.request_id, 101u);
  EXPECT_FALSE(p.Holds(10, 1, 101, 5));  // released: a late retransmission is a new request
  EXPECT_TRUE(p.Holds(10, 1, 100, 5));
  EXPECT_EQ(p.waiting(), 1u);
  EXPECT_EQ(p.size(), 2u);  // a hole behind the older reply
  // Nothing new: nothing released again.
  EXPECT_EQ(Release(p, {{0xA, 2}, {0xB, 2}}, &sent), 0u);
  EXPECT_EQ(Release(p, {{0xA, 3}, {0xB, 2}}, &sent), 1u);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].head.request_id, 100u);
  ASSERT_EQ(sent[1].items.size(), 3u);
  EXPECT_EQ(sent[1].items[0].errc, Errc::kOk);
  EXPECT_EQ(sent[1].items[1].errc, Errc::kUnknownReceipt);
  EXPECT_EQ(sent[1].items[2].index, 2u);
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.items_held(), 0u);
}

TEST(PendingReplies, NotReplicatedRewritesOnlyTheWaitingItems) {
  PendingReplies p(4, 16);
  std::vector<Sent> sent;
  ASSERT_TRUE(p.Open({1, 2, 3, 21, 0}, 3));
  p.Add({Errc::kOk, 0, 7, 0xA, 1});
  p.Add({Errc::kStaleGeneration, 1, 8, 0, 0});
  p.Add({Errc::kOk, 2, 9, 0xB, 1});
  ASSERT_TRUE(p.Close());
  // B is fine, A's standby is gone.
  EXPECT_EQ(Release(p, {{0xB, 1}}, &sent, /*refused=*/0xA), 1u);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].items[0].errc, Errc::kNotReplicated);
  EXPECT_EQ(sent[0].items[0].value, 7u);
  EXPECT_EQ(sent[0].items[1].errc, Errc::kStaleGeneration);
  EXPECT_EQ(sent[0].items[2].errc, Errc::kOk);
}

TEST(PendingReplies, AReplyWithNothingWaitingIsForTheCallerToSendAndDrop) {
  PendingReplies p(2, 8);
  ASSERT_TRUE(p.Open({1, 2, 3, 5, 0}, 2));
  p.Add({Errc::kNotReplicated, 0, 0, 0, 0});
  EXPECT_FALSE(p.Close());
  EXPECT_EQ(p.last_head().request_id, 3u);
  ASSERT_EQ(p.last_items().size(), 1u);
  EXPECT_EQ(p.last_items()[0].errc, Errc::kNotReplicated);
  p.DropLast();
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.waiting(), 0u);
  EXPECT_EQ(p.items_held(), 0u);
}

TEST(PendingReplies, FullRefusesWithoutChangingAnything) {
  PendingReplies p(2, 8);
  std::vector<Sent> sent;
  EXPECT_FALSE(p.Open({1, 1, 1, 5, 0}, 9));  // more items than the ring holds
  ASSERT_TRUE(p.Open({1, 1, 1, 5, 0}, 5));
  p.Add({Errc::kOk, 0, 0, 0xA, 1});
  p.Close();
  EXPECT_FALSE(p.Open({1, 1, 2, 5, 0}, 8));  // items: 7 free, not 8
  ASSERT_TRUE(p.Open({1, 1, 2, 5, 0}, 7));
  p.Add({Errc::kOk, 0, 0, 0xA, 2});
  p.Close();
  EXPECT_FALSE(p.Open({1, 1, 3, 5, 0}, 1));  // replies: both slots used
  EXPECT_EQ(p.waiting(), 2u);
  EXPECT_EQ(Release(p, {{0xA, 2}}, &sent), 2u);
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(p.Open({1, 1, 3, 5, 0}, 8));  // everything free again
  p.Add({Errc::kOk, 0, 0, 0xA, 3});
  p.Close();
}

// Random traffic over several partitions with a small ring: every reply comes out once, with
// the items it was given, no sooner than its partitions allow; the ring wraps many times.
TEST(PendingReplies, RandomTrafficWrapsAndReleasesEachReplyOnce) {
  std::mt19937_64 rng(42);
  PendingReplies p(16, 64);
  std::map<uint64_t, uint64_t> offered, applied;  // per partition key
  std::map<uint64_t, std::vector<PendingReplies::Item>> expected;  // request id -> items
  std::map<uint64_t, std::map<uint64_t, uint64_t>> needs;  // request id -> key -> highest seq
  std::vector<Sent> sent;
  uint64_t next_request = 1, refused_opens = 0;
  for (int step = 0; step < 20000; ++step) {
    if (rng() % 3 != 0) {
      const uint32_t n = 1 + static_cast<uint32_t>(rng() % 12);
      const uint64_t id = next_request;
      if (!p.Open({1, 1, id, 5, 0}, n)) {
        ++refused_opens;
      } else {
        ++next_request;
        const uint32_t used = 1 + static_cast<uint32_t>(rng() % n);
        std::vector<PendingReplies::Item> items;
        for (uint32_t i = 0; i < used; ++i) {
          PendingReplies::Item it{Errc::kOk, i, rng(), 0, 0};
          if (rng() % 4 != 0) {
            it.wait_key = rng() % 3;
            it.wait_seq = ++offered[it.wait_key];
            needs[id][it.wait_key] = it.wait_seq;
          }
          items.push_back(it);
          p.Add(it);
        }
        if (!p.Close()) {
          sent.push_back({p.last_head(), {p.last_items().begin(), p.last_items().end()}});
          p.DropLast();
        }
        for (auto& it : items) it.wait_seq = 0;  // as released
        expected[id] = items;
      }
    } else {
      const uint64_t key = rng() % 3;
      applied[key] = std::min(offered[key], applied[key] + rng() % 6);
      const size_t before = sent.size();
      Release(p, applied, &sent);
      for (size_t i = before; i < sent.size(); ++i) {
        for (const auto& it : sent[i].items) ASSERT_EQ(it.wait_seq, 0u);
        for (const auto& [k, seq] : needs[sent[i].head.request_id]) {
          ASSERT_GE(applied[k], seq) << "released before its partition " << k << " allowed";
        }
      }
    }
  }
  for (uint64_t k = 0; k < 3; ++k) applied[k] = offered[k];
  Release(p, applied, &sent);
  EXPECT_TRUE(p.empty());
  EXPECT_EQ(p.items_held(), 0u);
  EXPECT_GT(refused_opens, 0u);  // it was full at times
  std::map<uint64_t, int> seen;
  for (const Sent& s : sent) {
    ++seen[s.head.request_id];
    const auto& want = expected.at(s.head.request_id);
    ASSERT_EQ(s.items.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(s.items[i].index, want[i].index);
      EXPECT_EQ(s.items[i].value, want[i].value);
      EXPECT_EQ(s.items[i].errc, Errc::kOk);
    }
  }
  EXPECT_EQ(seen.size(), expected.size());
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << "request " << id;
  EXPECT_GT(expected.size(), 1000u);
}

}  // namespace
}  // namespace sluice::dataplane
