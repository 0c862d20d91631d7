// Replica reads across a dedicated replication lcore (replication/replica_reads.h,
// docs/replication.md §1, §6): the request and answer formats over HandoffRings, the answer's
// budget (what one reply frame can carry, the first record always), the room the answer ring
// guarantees, and the start board the shard lcores read.
#include "replication/replica_reads.h"

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::replication {
namespace {

struct Rec {
  uint64_t offset = 0;
  uint64_t timestamp_ns = 0;
  std::span<const std::byte> record;
};

// Records over one backing buffer: record i has `sizes[i]` bytes of value (offset + k) % 251.
struct Records {
  std::vector<std::byte> bytes;
  std::vector<Rec> recs;
  Records(uint64_t first, const std::vector<uint32_t>& sizes) {
    size_t total = 0;
    for (uint32_t s : sizes) total += s;
    bytes.resize(total);
    size_t at = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      for (uint32_t k = 0; k < sizes[i]; ++k) {
        bytes[at + k] = std::byte(static_cast<uint8_t>((first + i + k) % 251));
      }
      recs.push_back(Rec{first + i, 1000 + first + i, {bytes.data() + at, sizes[i]}});
      at += sizes[i];
    }
  }
  std::span<const Rec> span() const { return recs; }
};

std::vector<Rec> Decode(HandoffRing& ring, ReplicaAnswerHeader* h) {
  std::vector<Rec> out;
  out.reserve(kMaxReplicaAnswerRecords);
  const auto m = ring.Peek();
  EXPECT_FALSE(m.empty());
  DecodeReplicaAnswer(m, h, &out);
  return out;
}

void ExpectSame(const std::vector<Rec>& got, std::span<const Rec> want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].offset, want[i].offset);
    EXPECT_EQ(got[i].timestamp_ns, want[i].timestamp_ns);
    ASSERT_EQ(got[i].record.size(), want[i].record.size());
    EXPECT_TRUE(std::equal(got[i].record.begin(), got[i].record.end(), want[i].record.begin()));
  }
}

TEST(ReplicaReads, RequestsCrossInOrder) {
  HandoffRing ring(kReplicaRequestRingBytes);
  for (uint32_t i = 0; i < kMaxReplicaReads; ++i) {
    ReplicaReadRequest r;
    r.value = 100 + i;
    r.cookie = i;
    r.queue = 7;
    r.partition = i;
    r.max_records = 256;
    r.by_timestamp = i % 2;
    ASSERT_TRUE(PushReplicaRequest(ring, r));
  }
  ReplicaReadRequest r;
  for (uint32_t i = 0; i < kMaxReplicaReads; ++i) {
    ASSERT_TRUE(PeekReplicaRequest(ring, &r));
    EXPECT_EQ(r.value, 100 + i);
    EXPECT_EQ(r.cookie, i);
    EXPECT_EQ(r.queue, 7u);
    EXPECT_EQ(r.partition, i);
    EXPECT_EQ(r.max_records, 256u);
    EXPECT_EQ(r.by_timestamp, i % 2);
    ring.Pop();
  }
  EXPECT_FALSE(PeekReplicaRequest(ring, &r));
}

TEST(ReplicaReads, AnswerCarriesTheRecordsIntact) {
  HandoffRing ring(1u << 20);
  Records rs(40, {0, 1, 17, 300, 1000, 8});
  ASSERT_EQ(PushReplicaAnswer(ring, 5, Errc::kOk, 46, rs.span()), ReplicaAnswered::kAsRead);
  ReplicaAnswerHeader h;
  const auto got = Decode(ring, &h);
  EXPECT_EQ(h.cookie, 5u);
  EXPECT_EQ(static_cast<Errc>(h.errc), Errc::kOk);
  EXPECT_EQ(h.next_offset, 46u);  // all carried: the read's own
  ExpectSame(got, rs.span());
  ring.Pop();
  EXPECT_TRUE(ring.Empty());
}

TEST(ReplicaReads, ARefusalCarriesNoRecords) {
  HandoffRing ring(1u << 16);
  Records rs(0, {10, 10});
  ASSERT_EQ(PushReplicaAnswer(ring, 9, Errc::kOffsetOutOfRange, 77, rs.span()),
            ReplicaAnswered::kAsRead);
  ReplicaAnswerHeader h;
  EXPECT_TRUE(Decode(ring, &h).empty());
  EXPECT_EQ(static_cast<Errc>(h.errc), Errc::kOffsetOutOfRange);
  EXPECT_EQ(h.next_offset, 77u);
  EXPECT_EQ(h.cookie, 9u);
}

TEST(ReplicaReads, BudgetCutsAfterTheFirstAndSaysWhereToGoOn) {
  HandoffRing ring(8u << 20);
  // 1000 records of 200 bytes: 220 each against a 64 KiB budget.
  Records small(0, std::vector<uint32_t>(1000, 200));
  const uint32_t n = ReplicaAnswerCount(small.span());
  EXPECT_EQ(n, kReplicaAnswerBudget / (kReplicaEntryBytes + 200));
  ASSERT_EQ(PushReplicaAnswer(ring, 1, Errc::kOk, 1000, small.span()), ReplicaAnswered::kAsRead);
  ReplicaAnswerHeader h;
  auto got = Decode(ring, &h);
  ExpectSame(got, small.span().first(n));
  EXPECT_EQ(h.next_offset, n);  // the first left out
  ring.Pop();
  // A first record above the budget goes alone (a message of up to 1 MiB is sent in fragments).
  Records big(50, {300u << 10, 10, 10});
  ASSERT_EQ(PushReplicaAnswer(ring, 2, Errc::kOk, 53, big.span()), ReplicaAnswered::kAsRead);
  got = Decode(ring, &h);
  ExpectSame(got, big.span().first(1));
  EXPECT_EQ(h.next_offset, 51u);
  ring.Pop();
  // Larger than any record the standby writes: refused, nothing carried.
  Records huge(60, {kMaxReplicaRecordBytes + 1});
  ASSERT_EQ(PushReplicaAnswer(ring, 3, Errc::kOk, 61, huge.span()), ReplicaAnswered::kAsRead);
  EXPECT_TRUE(Decode(ring, &h).empty());
  EXPECT_EQ(static_cast<Errc>(h.errc), Errc::kStorageFailed);
}

TEST(ReplicaReads, EverythingOneReplyFrameCarriesIsInTheAnswer) {
  // A reply frame (at most 65507 bytes) spends 40 bytes of metadata per record: any run of
  // records that fits one is carried whole, so the shard lcore sends the frame a channel would.
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::vector<uint32_t> sizes;
    size_t frame = 24 + 24;  // header and prefix
    for (;;) {
      const uint32_t s = rng() % 4 == 0 ? rng() % 4000 : rng() % 64;
      if (frame + 40 + s > 65507) break;
      frame += 40 + s;
      sizes.push_back(s);
    }
    Records rs(0, sizes);
    EXPECT_EQ(ReplicaAnswerCount(rs.span()), sizes.size()) << round;
  }
}

TEST(ReplicaReads, TheAnswerRingHoldsEveryReadOutAtAnyPosition) {
  // kMaxReplicaReads answers of the largest size fit wherever the ring's positions are (the
  // pad word at the buffer's end included): the replication lcore never needs to wait.
  HandoffRing ring(kReplicaAnswerRingBytes);
  Records big(0, {kMaxReplicaRecordBytes});
  std::mt19937 rng(3);
  for (int round = 0; round < 64; ++round) {
    // Move the positions: a filler of a random size, taken.
    std::vector<std::byte> filler(8 + rng() % (kReplicaAnswerRingBytes / 2 - 64));
    ASSERT_TRUE(ring.Push(filler));
    ASSERT_FALSE(ring.Peek().empty());
    ring.Pop();
    for (uint32_t i = 0; i < kMaxReplicaReads; ++i) {
      ASSERT_EQ(PushReplicaAnswer(ring, i, Errc::kOk, 1, big.span()), ReplicaAnswered::kAsRead)
          << "round " << round << " answer " << i;
    }
    for (uint32_t i = 0; i < kMaxReplicaReads; ++i) {
      ReplicaAnswerHeader h;
      const auto got = Decode(ring, &h);
      EXPECT_EQ(h.cookie, i);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0].record.size(), kMaxReplicaRecordBytes);
      ring.Pop();
    }
  }
}

TEST(ReplicaReads, NoRoomAnswersThrottledThenNothing) {
  HandoffRing ring(4096);
  Records rs(0, {1000});  // an answer of 1044 bytes: three fit in 4096, not four
  for (uint64_t i = 0; i < 3; ++i) {
    ASSERT_EQ(PushReplicaAnswer(ring, i, Errc::kOk, 1, rs.span()), ReplicaAnswered::kAsRead);
  }
  // No room for the fourth as read: THROTTLED, without records, in its place.
  ASSERT_EQ(PushReplicaAnswer(ring, 3, Errc::kOk, 1, rs.span()), ReplicaAnswered::kThrottled);
  for (uint64_t i = 0; i < 4; ++i) {
    ReplicaAnswerHeader h;
    const auto got = Decode(ring, &h);
    EXPECT_EQ(h.cookie, i);
    EXPECT_EQ(static_cast<Errc>(h.errc), i < 3 ? Errc::kOk : Errc::kThrottled);
    EXPECT_EQ(got.size(), i < 3 ? 1u : 0u);
    ring.Pop();
  }
  // A ring full to the last word: not even the header.
  while (ring.Push(std::vector<std::byte>(24))) {
  }
  EXPECT_EQ(PushReplicaAnswer(ring, 4, Errc::kOk, 1, rs.span()), ReplicaAnswered::kNoRoom);
}

TEST(ReplicaReads, StartBoard) {
  ReplicaStartBoard b;
  uint64_t s = 99;
  EXPECT_FALSE(b.Start(1, 0, &s));
  EXPECT_TRUE(b.Close(1, 0));  // never opened: stays "not open", takes no slot
  EXPECT_FALSE(b.Start(1, 0, &s));
  EXPECT_TRUE(b.Set(1, 0, 0));
  EXPECT_TRUE(b.Start(1, 0, &s));
  EXPECT_EQ(s, 0u);
  EXPECT_TRUE(b.Set(1, 0, 4096));  // retention moved it
  EXPECT_TRUE(b.Start(1, 0, &s));
  EXPECT_EQ(s, 4096u);
  EXPECT_FALSE(b.Start(1, 1, &s));
  EXPECT_TRUE(b.Close(1, 0));
  EXPECT_FALSE(b.Start(1, 0, &s));
  EXPECT_TRUE(b.Set(1, 0, 12));  // reopened (a restart at a later start)
  EXPECT_TRUE(b.Start(1, 0, &s));
  EXPECT_EQ(s, 12u);
  // Many partitions: each its own.
  for (uint32_t q = 0; q < 100; ++q)
    for (uint32_t p = 0; p < 40; ++p) ASSERT_TRUE(b.Set(q + 10, p, q * 1000 + p));
  for (uint32_t q = 0; q < 100; ++q) {
    for (uint32_t p = 0; p < 40; ++p) {
      ASSERT_TRUE(b.Start(q + 10, p, &s));
      EXPECT_EQ(s, q * 1000 + p);
    }
  }
}

TEST(ReplicaReads, CommitBoard) {
  ReplicaCommitBoard b;
  uint64_t o = 99;
  EXPECT_FALSE(b.Get(1, "0:g", &o));
  EXPECT_TRUE(b.Set(1, "0:g", 5));
  EXPECT_TRUE(b.Get(1, "0:g", &o));
  EXPECT_EQ(o, 5u);
  EXPECT_TRUE(b.Set(1, "0:g", 9));  // a later commit updates in place
  EXPECT_TRUE(b.Get(1, "0:g", &o));
  EXPECT_EQ(o, 9u);
  EXPECT_FALSE(b.Get(2, "0:g", &o));  // another queue
  EXPECT_FALSE(b.Get(1, "0:h", &o));
  EXPECT_FALSE(b.Get(1, "0:", &o));
  EXPECT_TRUE(b.Set(1, "1:g", 0));  // offset 0 is a commit too
  EXPECT_TRUE(b.Get(1, "1:g", &o));
  EXPECT_EQ(o, 0u);
  // A snapshot without "0:g": it reads as none; other queues keep theirs.
  EXPECT_TRUE(b.Set(2, "0:g", 3));
  b.Retain(1, [](std::string_view key) { return key == "1:g"; });
  EXPECT_FALSE(b.Get(1, "0:g", &o));
  EXPECT_TRUE(b.Get(1, "1:g", &o));
  EXPECT_TRUE(b.Get(2, "0:g", &o));
  EXPECT_EQ(o, 3u);
  EXPECT_TRUE(b.Set(1, "0:g", 11));  // committed again
  EXPECT_TRUE(b.Get(1, "0:g", &o));
  EXPECT_EQ(o, 11u);
  // The longest key: a group of 255 bytes after "<u32>:".
  const std::string longest = "4294967295:" + std::string(255, 'x');
  ASSERT_LE(longest.size(), ReplicaCommitBoard::kMaxKeyBytes);
  EXPECT_TRUE(b.Set(7, longest, 1));
  EXPECT_TRUE(b.Get(7, longest, &o));
  EXPECT_FALSE(b.Set(7, std::string(ReplicaCommitBoard::kMaxKeyBytes + 1, 'x'), 1));
  // Many groups: each its own, until the table is full.
  uint32_t set = 0;
  for (uint32_t g = 0; g < ReplicaCommitBoard::kSlots + 10; ++g) {
    if (b.Set(9, std::to_string(g % 4) + ":group" + std::to_string(g), g)) ++set;
  }
  EXPECT_EQ(set, ReplicaCommitBoard::kSlots - 4);  // 4 slots held above
  for (uint32_t g = 0; g < set; ++g) {
    ASSERT_TRUE(b.Get(9, std::to_string(g % 4) + ":group" + std::to_string(g), &o));
    EXPECT_EQ(o, g);
  }
}

TEST(ReplicaReads, TwoThreadsReadThroughTheRings) {
  // A "shard lcore" thread asks for reads (at most kMaxReplicaReads out) and checks every
  // answer against what it asked; a "replication lcore" thread answers each with records
  // derived from the request. 5000 reads, each answered once, in order, intact.
  HandoffRing requests(kReplicaRequestRingBytes);
  HandoffRing answers(kReplicaAnswerRingBytes);
  constexpr uint64_t kReads = 5000;
  std::atomic<bool> failed{false};
  std::thread replication([&] {
    uint64_t answered = 0;
    std::vector<uint32_t> sizes;
    while (answered < kReads && !failed.load()) {
      ReplicaReadRequest r;
      if (!PeekReplicaRequest(requests, &r)) {
        std::this_thread::yield();  // a shared machine: let the other side run
        continue;
      }
      sizes.assign(r.max_records, 0);
      for (uint32_t i = 0; i < r.max_records; ++i) sizes[i] = (r.value + i) % 700;
      Records rs(r.value, sizes);
      requests.Pop();
      if (PushReplicaAnswer(answers, r.cookie, Errc::kOk, r.value + r.max_records, rs.span()) !=
          ReplicaAnswered::kAsRead) {
        failed = true;
      }
      ++answered;
    }
  });
  std::vector<Rec> got;
  got.reserve(kMaxReplicaAnswerRecords);
  uint64_t asked = 0, done = 0;
  std::mt19937 rng(11);
  std::vector<ReplicaReadRequest> out;  // in order
  while (done < kReads && !failed.load()) {
    if (asked < kReads && asked - done < kMaxReplicaReads) {
      ReplicaReadRequest r;
      r.value = asked * 3;
      r.cookie = asked;
      r.max_records = 1 + rng() % 300;
      ASSERT_TRUE(PushReplicaRequest(requests, r));
      out.push_back(r);
      ++asked;
    }
    const auto m = answers.Peek();
    if (m.empty()) {
      std::this_thread::yield();
      continue;
    }
    ReplicaAnswerHeader h;
    DecodeReplicaAnswer(m, &h, &got);
    const ReplicaReadRequest& r = out[done];
    ASSERT_EQ(h.cookie, r.cookie);
    ASSERT_FALSE(got.empty());
    ASSERT_LE(got.size(), r.max_records);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].offset, r.value + i);
      ASSERT_EQ(got[i].record.size(), (r.value + i) % 700);
      for (size_t k = 0; k < got[i].record.size(); ++k) {
        ASSERT_EQ(got[i].record[k], std::byte(static_cast<uint8_t>((r.value + i + k) % 251)));
      }
    }
    ASSERT_EQ(h.next_offset, r.value + got.size());
    answers.Pop();
    ++done;
  }
  replication.join();
  EXPECT_FALSE(failed.load());
  EXPECT_EQ(done, kReads);
}

}  // namespace
}  // namespace sluice::replication
