// The shard keeps appends waiting for durability as runs (one entry per producer, reply target
// and append time: Partition::PendingAck) and acks them per run. This test drives a stream
// partition with random appends — two reply targets, producer id 0 with a repeated or a rising
// sequence, two idempotent producers with retransmits and gaps, dedup-id hits, time that often
// stands still across seals (runs spanning batch boundaries), MarkDurable to any point up to the
// sealed end (runs split), Flush at random, a small pending-ack limit (THROTTLED), a small index
// (the oldest durable chunk evicted, or THROTTLED), retention, and at the end a storage failure
// (every waiting append answered one by one, later appends refused) — and checks the ACK ranges
// against a reference that keeps one entry per message and feeds the coalescer message by
// message (what the shard did before runs): the same ranges in the same order, the same
// pending count, acked counter and ack-latency histogram, and that the log reads back what was
// appended at each offset. The failing seed is printed
// (ACK_RUNS_SEED=<seed> replays it).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <array>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/shard/ack_coalescer.h"
#include "dataplane/shard/shard.h"
#include "tests/unit/shard/test_sink.h"

namespace sluice::shard {
namespace {

using testing::RecordingSink;

constexpr QueueId kQ{3};
constexpr uint32_t kPendingLimit = 16;  // a power of two: the ring's capacity is the limit
constexpr uint32_t kIndex = 64;

std::string Describe(const AckRange& a) {
  return absl::StrCat("{target ", a.target.endpoint, " producer ", a.producer_id, " seq ",
                      a.first_sequence, " count ", a.count, " offset ",
                      a.first_offset == kNoOffset ? std::string("none")
                                                  : absl::StrCat(a.first_offset),
                      " errc ", static_cast<int>(a.errc), "}");
}

bool Same(const AckRange& a, const AckRange& b) {
  return a.target == b.target && a.queue == b.queue && a.partition == b.partition &&
         a.producer_id == b.producer_id && a.first_sequence == b.first_sequence &&
         a.count == b.count && a.first_offset == b.first_offset && a.errc == b.errc;
}

class Runner {
 public:
  // Odd seeds have a dedup window (appends with a dedup id take Shard::AppendSlow, the others
  // mostly the inline path, as on a queue with the default window); seeds 3 mod 4 deduplicate by
  // content too (every append takes AppendSlow; some payloads repeat); even seeds have no window.
  // Every third keeps only two chunks by
  // retention_bytes. The index holds 64 messages of ~600 bytes over ~3 of the 16 KiB chunks:
  // appends evict the oldest durable chunk (PartitionLog::AppendSlow) or are THROTTLED.
  explicit Runner(uint64_t seed)
      : rng_(seed), dedup_(seed % 2 == 1), content_dedup_(seed % 4 == 3) {
    ShardConfig sc;
    sc.chunk_bytes = 16 * 1024;
    sc.pool_chunks = 64;
    sc.memory_batch_align_bytes = 64;
    sc.ack_latency_ns = &latency_;
    shard_ = std::make_unique<Shard>(sc, &sink_);
    QueueConfig qc;
    qc.type = QueueType::kStream;
    qc.durability = Durability::kNone;
    qc.max_message_bytes = 1024;
    qc.memory_budget_chunks = 8;
    qc.max_messages = kIndex;
    qc.max_pending_acks = kPendingLimit;
    qc.dedup_window_ms = dedup_ ? 60'000 : 0;
    qc.content_dedup = content_dedup_;
    if (seed % 3 == 0) qc.retention_bytes = 2 * sc.chunk_bytes;
    SLUICE_ASSERT(shard_->AddPartition(kQ, 0, qc) == Errc::kOk);
  }

  // Returns an empty string, or what diverged.
  std::string Run(int ops) {
    for (int op = 0; op < ops; ++op) {
      const uint64_t r = rng_() % 100;
      if (r < 60) {
        Append();
      } else if (r < 72) {
        shard_->SealBatch(kQ, 0);
      } else if (r < 84) {
        MarkDurable();
      } else if (r < 92) {
        Flush();
      } else if (r < 96) {
        if (rng_() % 2 == 0) now_ += 1 + rng_() % 5'000;  // else time stands still
      } else {
        shard_->Tick(now_);  // retention
      }
      if (std::string e = Check(op); !e.empty()) return e;
    }
    // What the log holds reads back: the appended records at their offsets.
    if (std::string e = CheckLog(); !e.empty()) return e;
    // Storage fails: every waiting append is answered, message by message, in order.
    shard_->FailPartition(kQ, 0);
    for (const Pending& pa : pending_) {
      ref_.Add(pa.target, kQ, 0, pa.producer, pa.sequence, kNoOffset, Errc::kStorageFailed,
               ref_sink_);
    }
    pending_.clear();
    ref_.Flush(ref_sink_);
    MessageIn late;
    const std::string payload = "late";
    late.record = testing::Bytes(payload);
    if (shard_->Append({1, 10, 0}, kQ, late, now_).errc != Errc::kStorageFailed) {
      return "an append after the storage failure was not refused";
    }
    ref_.Add({1, 10, 0}, kQ, 0, 0, 0, kNoOffset, Errc::kStorageFailed, ref_sink_);
    Flush();
    return Check(ops);
  }

 private:
  struct Pending {
    ReplyTarget target;
    uint64_t producer;
    uint64_t sequence;
    uint64_t offset;
    uint64_t appended_ns;
    Errc errc;
  };

  void Append() {
    const ReplyTarget target{1 + rng_() % 2, 10, 0};
    const uint64_t producer = std::array<uint64_t, 3>{0, 7, 9}[rng_() % 3];
    uint64_t seq = 0;
    if (producer == 0) {
      seq = rng_() % 2 == 0 ? 0 : unnumbered_++;  // a replayed frame, or a counter
    } else {
      uint64_t& next = next_[producer];
      const uint64_t r = rng_() % 10;
      seq = r < 7 ? next : r < 9 ? next - std::min<uint64_t>(next, 1 + rng_() % 3) : next + 1;
    }
    std::string payload = absl::StrCat("m", counter_++, std::string(550 + rng_() % 100, '.'));
    if (rng_() % 8 == 0) payload = absl::StrCat("same", rng_() % 4, std::string(600, '.'));
    std::string dedup;
    if (rng_() % 8 == 0) dedup = absl::StrCat("d", rng_() % 6);
    MessageIn m;
    m.record = testing::Bytes(payload);
    m.body = m.record;
    m.producer_id = producer;
    m.sequence = seq;
    m.dedup_id = dedup;
    if (!dedup_) m.dedup_id = {};
    const uint64_t pending_before = pending_.size();
    const Partition* part = shard_->Find(kQ, 0);
    const bool index_full =
        part->log().written_end().value - part->log().start_offset() >= kIndex;
    const AppendResult res = shard_->Append(target, kQ, m, now_);
    if (res.errc == Errc::kOk) stored_[res.offset] = payload;
    // Dedup ids (odd seeds), or payloads (content dedup): a known one from producer id 0 is
    // answered by its original.
    const std::string key = !dedup.empty() ? dedup : content_dedup_ ? "content:" + payload : "";
    if (dedup_ && !key.empty()) {
      auto seen = dedup_seen_.find(key);
      if (seen != dedup_seen_.end() && producer == 0 &&
          !(res.errc == Errc::kThrottled ||
            (res.errc == Errc::kDuplicate && res.offset == seen->second))) {
        dedup_missed_ = true;
      }
      if (res.errc == Errc::kOk) dedup_seen_.emplace(key, res.offset);
    }
    if (producer != 0 && seq == next_[producer] &&
        (res.errc == Errc::kOk || res.errc == Errc::kDuplicate)) {
      ++next_[producer];  // appended, or answered by a dedup-id original: the sequence advances
    }
    if (res.errc == Errc::kThrottled && pending_before < kPendingLimit && !index_full) {
      throttled_wrongly_ = true;  // neither the ack limit nor the log (index full, not evictable)
    }
    if (res.errc == Errc::kOk && pending_before >= kPendingLimit) accepted_over_limit_ = true;
    // The reference: one entry per message (the shard before runs).
    const bool waits = res.errc == Errc::kOk ||
                       (res.errc == Errc::kDuplicate && res.offset != kNoOffset &&
                        res.offset >= durable_);
    if (waits) {
      pending_.push_back({target, producer, seq, res.offset, now_, res.errc});
    } else {
      ref_.Add(target, kQ, 0, producer, seq, res.errc == Errc::kDuplicate ? res.offset : kNoOffset,
               res.errc, ref_sink_);
      if (res.errc == Errc::kDuplicate) ++ref_acked_;  // answered at once: acked too
    }
  }

  void MarkDurable() {
    const Partition* p = shard_->Find(kQ, 0);
    const uint64_t sealed = p->log().sealed_end().value;
    if (sealed <= durable_) return;
    // Anywhere up to the sealed end: often inside a run (a run may span batches).
    const uint64_t to = durable_ + 1 + rng_() % (sealed - durable_);
    durable_ = to;
    shard_->MarkDurable(kQ, 0, DurableOffset{to}, now_);
    while (!pending_.empty() && pending_.front().offset < to) {
      const Pending& pa = pending_.front();
      ref_.Add(pa.target, kQ, 0, pa.producer, pa.sequence, pa.offset, pa.errc, ref_sink_);
      ++ref_acked_;
      if (pa.errc == Errc::kOk) ref_latency_.Record(now_ - pa.appended_ns);
      pending_.pop_front();
    }
  }

  void Flush() {
    shard_->Flush();
    ref_.Flush(ref_sink_);
  }

  std::string CheckLog() {
    uint64_t n = 0;
    std::string error;
    const FetchResult f = shard_->Fetch(kQ, 0, StartPosition::Earliest(), 1 << 20, 1 << 30,
                                        [&](const StoredMessage& sm) {
                                          auto it = stored_.find(sm.offset);
                                          if (error.empty() &&
                                              (it == stored_.end() ||
                                               testing::Str(sm.record) != it->second)) {
                                            error = absl::StrCat("offset ", sm.offset,
                                                                 " reads back wrong");
                                          }
                                          ++n;
                                        });
    if (!error.empty()) return error;
    if (f.errc != Errc::kOk || f.next_offset != durable_) {
      return absl::StrCat("fetch ended at ", f.next_offset, ", durable ", durable_);
    }
    if (n == 0 && durable_ != 0 && stored_.size() > 0 &&
        shard_->Find(kQ, 0)->log().start_offset() < durable_) {
      return "nothing read back";
    }
    return {};
  }

  std::string Check(int op) {
    const std::vector<AckRange>& got = sink_.acks;
    const std::vector<AckRange>& want = ref_sink_.acks;
    for (size_t i = 0; i < std::max(got.size(), want.size()); ++i) {
      if (i >= got.size() || i >= want.size() || !Same(got[i], want[i])) {
        return absl::StrCat("op ", op, ": ack range ", i, ": got ",
                            i < got.size() ? Describe(got[i]) : "none", ", want ",
                            i < want.size() ? Describe(want[i]) : "none");
      }
    }
    const Partition* p = shard_->Find(kQ, 0);
    if (p->pending_acks() != pending_.size()) {
      return absl::StrCat("op ", op, ": pending ", p->pending_acks(), ", want ", pending_.size());
    }
    if (shard_->counters().acked != ref_acked_) {
      return absl::StrCat("op ", op, ": acked counter ", shard_->counters().acked);
    }
    if (latency_.total() != ref_latency_.total() || latency_.sum() != ref_latency_.sum()) {
      return absl::StrCat("op ", op, ": latency histogram ", latency_.total(), "/",
                          latency_.sum(), ", want ", ref_latency_.total(), "/",
                          ref_latency_.sum());
    }
    for (size_t b = 0; b < AckLatencyHistogram::kBuckets; ++b) {
      if (latency_.count(b) != ref_latency_.count(b)) {
        return absl::StrCat("op ", op, ": latency bucket ", b);
      }
    }
    if (dedup_missed_) return absl::StrCat("op ", op, ": a known dedup id was appended again");
    if (throttled_wrongly_) return absl::StrCat("op ", op, ": THROTTLED below the limit");
    if (accepted_over_limit_) return absl::StrCat("op ", op, ": appended past the limit");
    return {};
  }

  std::mt19937_64 rng_;
  const bool dedup_;
  const bool content_dedup_;
  std::map<uint64_t, std::string> stored_;  // offset -> payload
  std::map<std::string, uint64_t> dedup_seen_;  // dedup id -> offset of its original
  bool dedup_missed_ = false;
  RecordingSink sink_;
  RecordingSink ref_sink_;
  AckCoalescer ref_;
  AckLatencyHistogram latency_;
  AckLatencyHistogram ref_latency_;
  std::unique_ptr<Shard> shard_;
  std::deque<Pending> pending_;
  std::map<uint64_t, uint64_t> next_;
  uint64_t unnumbered_ = 0;
  uint64_t counter_ = 0;
  uint64_t now_ = 1'000'000'000;
  uint64_t durable_ = 0;
  uint64_t ref_acked_ = 0;
  bool throttled_wrongly_ = false;
  bool accepted_over_limit_ = false;
};

// Shard::Append's inline path is for streams that do not deduplicate by content: turning content
// dedup on (a live attribute) must send the next appends through the full path at once, and a
// storage failure must refuse them.
TEST(ShardAckRuns, LiveContentDedupAndFailureLeaveTheInlinePath) {
  RecordingSink sink;
  Shard shard(ShardConfig{}, &sink);
  QueueConfig qc;
  qc.type = QueueType::kStream;
  qc.max_message_bytes = 1024;
  qc.dedup_window_ms = 60'000;  // the default window: ids only, while content_dedup is off
  ASSERT_EQ(shard.AddPartition(kQ, 0, qc), Errc::kOk);
  const std::string payload = "same payload";
  MessageIn m;
  m.record = testing::Bytes(payload);
  m.body = m.record;
  const uint64_t now = 1'000'000'000;
  EXPECT_EQ(shard.Append({1, 1, 0}, kQ, m, now).errc, Errc::kOk);
  EXPECT_EQ(shard.Append({1, 1, 0}, kQ, m, now).errc, Errc::kOk);  // no content dedup yet
  qc.content_dedup = true;
  ASSERT_EQ(shard.UpdateLiveConfig(kQ, 0, qc), Errc::kOk);
  const AppendResult first = shard.Append({1, 1, 0}, kQ, m, now);
  EXPECT_EQ(first.errc, Errc::kOk);
  const AppendResult again = shard.Append({1, 1, 0}, kQ, m, now);
  EXPECT_EQ(again.errc, Errc::kDuplicate);
  EXPECT_EQ(again.offset, first.offset);
  qc.content_dedup = false;
  ASSERT_EQ(shard.UpdateLiveConfig(kQ, 0, qc), Errc::kOk);
  EXPECT_EQ(shard.Append({1, 1, 0}, kQ, m, now).errc, Errc::kOk);
  shard.FailPartition(kQ, 0);
  EXPECT_EQ(shard.Append({1, 1, 0}, kQ, m, now).errc, Errc::kStorageFailed);
}

TEST(ShardAckRuns, MatchAckPerMessageReference) {
  uint64_t first = 1, count = 1500;
  if (const char* s = std::getenv("ACK_RUNS_SEED")) {
    first = std::strtoull(s, nullptr, 10);
    count = 1;
  }
  for (uint64_t seed = first; seed < first + count; ++seed) {
    Runner runner(seed);
    const std::string error = runner.Run(400);
    ASSERT_TRUE(error.empty()) << "seed " << seed << ": " << error;
  }
}

}  // namespace
}  // namespace sluice::shard
