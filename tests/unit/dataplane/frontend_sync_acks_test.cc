// The Frontend's replies on `replication = sync` queues (docs/replication.md §13), with a fake
// storage and a fake replicator: a DELETE's and a COMMIT's RESULT leave only once the standby has
// written their ack records; a retransmission of a held request is absorbed; a standby already
// gone refuses before anything is done; a held reply past the bound leaves NOT_REPLICATED; async
// queues answer at once.
#include <gtest/gtest.h>

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/frontend.h"
#include "hwconf/layout.h"
#include "tests/unit/dataplane/fake_reply_channel.h"
#include "protocol/codec.h"

namespace sluice::dataplane {
namespace {
namespace p = protocol;

// Durable at once: every batch submitted is reported durable by the next Poll.
class Storage final : public Persistence {
 public:
  absl::StatusOr<RecoveredLog> Open(uint32_t, uint32_t, shard::Durability,
                                    absl::FunctionRef<absl::Status(const RecoveredMessage&)>,
                                    absl::FunctionRef<void(std::string_view, uint64_t)>) override {
    return RecoveredLog{};
  }
  void Close(uint32_t, uint32_t, bool) override {}
  bool Idle(uint32_t, uint32_t) const override { return true; }
  Errc Submit(uint32_t q, uint32_t part, const shard::SealedBatch& b) override {
    done_.push_back({q, part, b.end_offset()});
    return Errc::kOk;
  }
  uint32_t Poll(absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                       std::string_view)> fn) override {
    for (const Done& d : done_) fn(d.q, d.p, shard::DurableOffset{d.end}, Errc::kOk, {});
    const uint32_t n = static_cast<uint32_t>(done_.size());
    done_.clear();
    return n;
  }
  void Removed(uint32_t, uint32_t, uint64_t) override {}
  void Committed(uint32_t, uint32_t, std::string_view, uint64_t) override {}
  absl::Status Purged(uint32_t, uint32_t, uint64_t) override { return absl::OkStatus(); }
  bool HasClosedSegments(uint32_t, uint32_t) const override { return false; }
  uint32_t EnforceRetention(uint32_t, uint32_t, uint64_t, uint64_t, uint64_t, uint64_t) override {
    return 0;
  }
  Errc Fetch(uint32_t, uint32_t, bool, uint64_t, uint32_t, uint64_t) override {
    return Errc::kThrottled;
  }
  uint32_t PollReads(absl::FunctionRef<void(uint64_t, Errc, uint64_t,
                                            std::span<const shard::StoredMessage>)>) override {
    return 0;
  }
  uint64_t LogBytes(uint32_t, uint32_t) const override { return 0; }
  uint64_t LogStart(uint32_t, uint32_t) const override { return shard::kNoOffset; }
  void FlushAcks() override {}
  void Drain(absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                    std::string_view)> fn) override {
    Poll(fn);
  }
  const BatchPolicy& batch_policy() const override { return policy_; }

 private:
  struct Done {
    uint32_t q, p;
    uint64_t end;
  };
  std::vector<Done> done_;
  BatchPolicy policy_;
};

// A standby that holds every batch at once; its ack-log position is set by the test.
class Standby final : public Replicator {
 public:
  bool Writable() const override { return true; }
  void PrimaryAddress(uint32_t* ip, uint16_t* port) const override { *ip = 0, *port = 0; }
  void AddPartition(uint32_t, uint32_t, uint64_t) override {}
  void RemovePartition(uint32_t, uint32_t) override {}
  void Offer(uint32_t, uint32_t, std::span<const std::byte>, uint64_t, uint64_t,
             uint64_t) override {}
  bool Replicated(uint32_t, uint32_t, uint64_t, uint64_t* end) const override {
    *end = UINT64_MAX;
    return in_sync;
  }
  uint64_t OfferAck(uint32_t q, uint32_t part, uint8_t, uint32_t, std::string_view,
                    uint64_t) override {
    return ++offered[Key(q, part)];
  }
  bool AckReplicated(uint32_t q, uint32_t part, uint64_t, uint64_t* a) const override {
    auto it = applied.find(Key(q, part));
    *a = it == applied.end() ? 0 : it->second;
    return in_sync;
  }
  void ApplyAll() { applied = offered; }
  static uint64_t Key(uint32_t q, uint32_t part) { return (uint64_t{q} << 32) | part; }

  bool in_sync = true;
  std::map<uint64_t, uint64_t> offered, applied;
};

constexpr uint64_t kMs = 1'000'000;

class FrontendSyncAcks : public ::testing::Test {
 protected:
  void SetUp() override {
    layout_.shards = 1;
    hwconf::Lcore lc;
    lc.id = 1;
    lc.shards = {0};
    layout_.lcores = {lc};
    hwconf::QueueDecl jobs;  // id 1: sync
    jobs.name = "jobs";
    jobs.type = hwconf::QueueType::kWork;
    jobs.partitions = 1;
    jobs.visibility_timeout_ms = 60000;
    hwconf::QueueDecl ajobs = jobs;  // id 2: async
    ajobs.name = "ajobs";
    hwconf::QueueDecl events;  // id 3: a sync stream
    events.name = "events";
    events.type = hwconf::QueueType::kStream;
    events.partitions = 2;
    layout_.queues = {jobs, ajobs, events};
    auto base = QueueTable::Build(layout_);
    ASSERT_TRUE(base.ok());
    std::vector<QueueInfo> queues = (*base)->queues();
    for (QueueInfo& q : queues) {
      q.config.durability = shard::Durability::kWrite;
      q.sync_replication = q.name != "ajobs";
    }
    table_ = std::move(*QueueTable::Build(layout_, std::move(queues)));
    const std::array<uint32_t, 1> shards{0};
    frontend_ = std::make_unique<Frontend>(*table_, 0, shards, channel_, 0, &storage_, &standby_);
  }

  void Feed(const std::vector<std::byte>& bytes, uint64_t now_ns) {
    auto f = p::DecodeFrame(bytes);
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(p::ValidateFrame(*f), p::DecodeError::kOk);
    RouteContext route;
    route.receiver = true;
    frontend_->OnFrame(*f, Endpoint{42, 7}, route, now_ns);
  }

  // Produces `n` messages to partition 0 of `queue`, acked (durable here and on the standby).
  void ProduceAcked(uint32_t queue, int n, uint64_t now_ns) {
    std::vector<std::byte> buf(65536);
    p::FrameWriter w(buf);
    ASSERT_EQ(w.BeginProduce({1, 100, 0}, queue, 9 + queue), p::EncodeError::kOk);
    const std::string payload = "m";
    for (int i = 0; i < n; ++i) {
      p::MessageSpec m;
      m.partition = 0;
      m.sequence = static_cast<uint64_t>(i);
      m.payload = {reinterpret_cast<const std::byte*>(payload.data()), payload.size()};
      ASSERT_EQ(w.AddMessage(m), p::EncodeError::kOk);
    }
    buf.resize(*w.Finish());
    Feed(buf, now_ns);
    for (int pass = 0; pass < 4; ++pass) frontend_->Service(now_ns + pass * kMs);
    channel_.sent.clear();
  }

  std::vector<uint64_t> Receive(uint32_t queue, uint16_t max, uint64_t now_ns) {
    std::vector<std::byte> buf(256);
    p::ReceiveRequest r;
    r.queue_id = queue;
    r.partition = 0;
    r.max_messages = max;
    buf.resize(*p::EncodeReceive(buf, {1, 500, 0}, r));
    Feed(buf, now_ns);
    std::vector<uint64_t> receipts;
    for (const auto& s : channel_.sent) {
      auto f = p::DecodeFrame(s);
      if (!f || f->header.type != p::FrameType::kMessages) continue;
      auto m = p::DecodeMessages(*f);
      for (const p::DeliveredView& d : m->messages) receipts.push_back(d.meta.receipt);
    }
    channel_.sent.clear();
    return receipts;
  }

  std::vector<std::byte> Delete(uint32_t queue, std::vector<uint64_t> receipts, uint64_t request) {
    std::vector<std::byte> buf(4096);
    p::FrameWriter w(buf);
    EXPECT_EQ(w.BeginReceiptOps(p::FrameType::kDelete, {1, request, 0}), p::EncodeError::kOk);
    for (uint64_t r : receipts) EXPECT_EQ(w.AddReceiptOp({queue, 0, r, 0}), p::EncodeError::kOk);
    buf.resize(*w.Finish());
    return buf;
  }

  // RESULT frames sent since the last call: request id -> item errcs.
  std::map<uint64_t, std::vector<Errc>> Sent() {
    std::map<uint64_t, std::vector<Errc>> out;
    for (const auto& s : channel_.sent) {
      auto f = p::DecodeFrame(s);
      if (!f || f->header.type != p::FrameType::kResult) continue;
      auto r = p::DecodeResultFrame(*f);
      for (const p::ResultItem it : r->items) out[f->header.request_id].push_back(it.errc);
    }
    channel_.sent.clear();
    return out;
  }

  hwconf::Layout layout_;
  std::unique_ptr<const QueueTable> table_;
  FakeReplyChannel channel_;
  Storage storage_;
  Standby standby_;
  std::unique_ptr<Frontend> frontend_;
};

using Results = std::map<uint64_t, std::vector<Errc>>;  // request id -> item errcs

TEST_F(FrontendSyncAcks, DeleteReplyWaitsForTheStandbysAckLog) {
  uint64_t now = 10 * kMs;
  ProduceAcked(1, 3, now);
  const std::vector<uint64_t> r = Receive(1, 3, now);
  ASSERT_EQ(r.size(), 3u);
  const auto del = Delete(1, {r[0]}, 1);
  Feed(del, now);
  frontend_->Service(now += kMs);
  EXPECT_EQ(Sent(), Results{}) << "answered before the standby wrote the delete";
  Feed(del, now);  // the client's retransmission: absorbed, not deleted again
  frontend_->Service(now += kMs);
  EXPECT_EQ(Sent(), Results{});
  EXPECT_EQ(standby_.offered[Standby::Key(1, 0)], 1u);
  standby_.ApplyAll();
  frontend_->Service(now += kMs);
  EXPECT_EQ(Sent(), (Results{{1, {Errc::kOk}}}));
  // A batch of two: one reply once both are there.
  Feed(Delete(1, {r[1], r[2]}, 2), now);
  standby_.applied[Standby::Key(1, 0)] = 2;  // one of the two
  frontend_->Service(now += kMs);
  EXPECT_EQ(Sent(), Results{});
  standby_.ApplyAll();
  frontend_->Service(now += kMs);
  EXPECT_EQ(Sent(), (Results{{2, {Errc::kOk, Errc::kOk}}}));
}

TEST_F(FrontendSyncAcks, StandbyGoneRefusesBeforeDeletingAndHeldRepliesTimeOut) {
  uint64_t now = 10 * kMs;
  ProduceAcked(1, 2, now);
  const std::vector<uint64_t> r = Receive(1, 2, now);
  ASSERT_EQ(r.size(), 2u);
  standby_.in_sync = false;
  Feed(Delete(1, {r[0]}, 1), now);
  EXPECT_EQ(Sent(), (Results{{1, {Errc::kNotReplicated}}}));
  EXPECT_EQ(standby_.offered[Standby::Key(1, 0)], 0u) << "deleted although refused";
  standby_.in_sync = true;
  // Held, and the standby never writes it: NOT_REPLICATED after the bound (done here).
  Feed(Delete(1, {r[0]}, 2), now);
  EXPECT_EQ(standby_.offered[Standby::Key(1, 0)], 1u);
  frontend_->Service(now + Replicator::kSyncLagBoundNs / 2);
  EXPECT_EQ(Sent(), Results{});
  frontend_->Service(now + Replicator::kSyncLagBoundNs + kMs);
  EXPECT_EQ(Sent(), (Results{{2, {Errc::kNotReplicated}}}));
  // Held, then the standby is lost: released at once.
  now += 2 * Replicator::kSyncLagBoundNs;
  Feed(Delete(1, {r[1]}, 3), now);
  frontend_->Service(now += kMs);
  EXPECT_EQ(Sent(), Results{});
  standby_.in_sync = false;
  frontend_->Service(now += kMs);
  EXPECT_EQ(Sent(), (Results{{3, {Errc::kNotReplicated}}}));
  // A retried DELETE of a message deleted here: UNKNOWN_RECEIPT.
  standby_.in_sync = true;
  Feed(Delete(1, {r[1]}, 4), now);
  EXPECT_EQ(Sent(), (Results{{4, {Errc::kUnknownReceipt}}}));
  EXPECT_EQ(frontend_->counters().not_replicated, 3u);
}

TEST_F(FrontendSyncAcks, AsyncQueuesAnswerAtOnce) {
  const uint64_t now = 10 * kMs;
  ProduceAcked(2, 1, now);
  const std::vector<uint64_t> r = Receive(2, 1, now);
  ASSERT_EQ(r.size(), 1u);
  standby_.in_sync = false;  // not even asked
  Feed(Delete(2, {r[0]}, 1), now);
  EXPECT_EQ(Sent(), (Results{{1, {Errc::kOk}}}));
}

TEST_F(FrontendSyncAcks, CommitReplyWaitsForPartitionZerosAckStream) {
  uint64_t now = 10 * kMs;
  std::vector<std::byte> buf(512);
  p::FrameWriter w(buf);
  ASSERT_EQ(w.BeginCommit({1, 7, 0}, {3, 0, 0, "g"}), p::EncodeError::kOk);
  ASSERT_EQ(w.AddCommit({0, 0}), p::EncodeError::kOk);
  ASSERT_EQ(w.AddCommit({1, 0}), p::EncodeError::kOk);
  buf.resize(*w.Finish());
  Feed(buf, now);
  frontend_->Service(now += kMs);
  EXPECT_EQ(Sent(), Results{});
  EXPECT_EQ(standby_.offered[Standby::Key(3, 0)], 2u);  // both in partition 0's ack log
  standby_.ApplyAll();
  frontend_->Service(now += kMs);
  EXPECT_EQ(Sent(), (Results{{7, {Errc::kOk, Errc::kOk}}}));
  standby_.in_sync = false;
  Feed(buf, now);
  EXPECT_EQ(Sent(), (Results{{7, {Errc::kNotReplicated, Errc::kNotReplicated}}}));
  EXPECT_EQ(standby_.offered[Standby::Key(3, 0)], 2u) << "committed although refused";
}

}  // namespace
}  // namespace sluice::dataplane
