// A standby's stream reads in the Frontend (docs/replication.md §6), with a fake replicated log
// behind the Replicator interface (the one path both layouts take: a channel's shell or a shard
// lcore's rings answer through ReadReplica / PollReplicaReads alike): a SUBSCRIBE from a
// timestamp resolves its start by its first read (RESULT, then DELIVERs, all REPLICA); one from
// COMMITTED starts at the group's replicated commit (partition 0's owner only, EARLIEST without a
// commit, as on a primary); a replicated purge mark hides what is below it.
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

// A standby's replicated log of queue 1 (partitions 0 and 1): record i at offset i, stamped
// 100 * (i + 1) ns. Reads are answered at the next PollReplicaReads, as the segments' reader
// answers them: by timestamp from the first record stamped at or after it, whatever the purge
// mark (the segments still hold what is below it).
class StandbyLog final : public Replicator {
 public:
  bool Writable() const override { return false; }
  void PrimaryAddress(uint32_t* ip, uint16_t* port) const override { *ip = 0, *port = 0; }
  void AddPartition(uint32_t, uint32_t, uint64_t) override {}
  void RemovePartition(uint32_t, uint32_t) override {}
  void Offer(uint32_t, uint32_t, std::span<const std::byte>, uint64_t, uint64_t,
             uint64_t) override {}
  bool Replicated(uint32_t, uint32_t, uint64_t, uint64_t*) const override { return false; }

  Errc ReadReplica(uint32_t queue, uint32_t partition, uint64_t value, uint32_t max_records,
                   uint64_t cookie, bool by_timestamp) override {
    if (queue != 1 || partition > 1) return Errc::kUnknownPartition;
    if (!by_timestamp && (value < ReplicaStart(queue, partition) || value >= records)) {
      return Errc::kOffsetOutOfRange;
    }
    reads.push_back({cookie, value, max_records, by_timestamp});
    return Errc::kOk;
  }
  uint64_t ReplicaStart(uint32_t, uint32_t partition) const override {
    return std::min<uint64_t>(purged_below[partition], records);
  }
  uint64_t ReplicaEnd(uint32_t, uint32_t) const override { return records; }
  bool ReplicaCommitted(uint32_t queue, uint32_t partition, std::string_view group,
                        uint64_t* offset) const override {
    auto it = commits.find(std::to_string(partition) + ":" + std::string(group));
    if (queue != 1 || it == commits.end()) return false;
    *offset = it->second;
    return true;
  }
  uint32_t PollReplicaReads(
      absl::FunctionRef<void(uint64_t, Errc, uint64_t, std::span<const shard::StoredMessage>)> fn)
      override {
    const std::vector<Read> now = std::move(reads);
    reads.clear();
    for (const Read& r : now) {
      uint64_t from = r.value;
      if (r.by_timestamp) {
        from = records;
        for (uint64_t i = 0; i < records; ++i) {
          if (Stamp(i) >= r.value) {
            from = i;
            break;
          }
        }
      }
      std::vector<shard::StoredMessage> got;
      for (uint64_t i = from; i < records && got.size() < r.max; ++i) {
        got.push_back({i, Stamp(i), Record()});
      }
      fn(r.cookie, Errc::kOk, from + got.size(), got);
    }
    return static_cast<uint32_t>(now.size());
  }
  static uint64_t Stamp(uint64_t offset) { return 100 * (offset + 1); }

  uint64_t records = 10;
  std::array<uint64_t, 2> purged_below{0, 0};
  std::map<std::string, uint64_t> commits;
  struct Read {
    uint64_t cookie, value;
    uint32_t max;
    bool by_timestamp;
  };
  std::vector<Read> reads;

 private:
  // A message record as the log holds it: the one message of a PRODUCE frame, as produced.
  std::span<const std::byte> Record() {
    if (record_.empty()) {
      record_.resize(256);
      p::FrameWriter w(record_);
      EXPECT_EQ(w.BeginProduce({1, 1, 0}, 1, 9), p::EncodeError::kOk);
      const std::string payload = "m";
      p::MessageSpec m;
      m.payload = {reinterpret_cast<const std::byte*>(payload.data()), payload.size()};
      EXPECT_EQ(w.AddMessage(m), p::EncodeError::kOk);
      record_.resize(*w.Finish());
      record_.erase(record_.begin(), record_.begin() + p::kHeaderBytes + p::kProducePrefixBytes);
    }
    return record_;
  }
  std::vector<std::byte> record_;
};

constexpr uint64_t kMs = 1'000'000;

class FrontendReplicaReads : public ::testing::Test {
 protected:
  void SetUp() override {
    layout_.shards = 2;
    hwconf::Lcore a, b;
    a.id = 1;
    a.shards = {0};
    b.id = 2;
    b.shards = {1};
    layout_.lcores = {a, b};
    hwconf::QueueDecl events;  // id 1: partition 0 on worker 0, partition 1 on worker 1
    events.name = "events";
    events.type = hwconf::QueueType::kStream;
    events.partitions = 2;
    layout_.queues = {events};
    auto table = QueueTable::Build(layout_);
    ASSERT_TRUE(table.ok());
    table_ = std::move(*table);
    ASSERT_EQ(table_->Find(1)->partition_worker[0], 0);
    ASSERT_EQ(table_->Find(1)->partition_worker[1], 1);
    const std::array<uint32_t, 1> s0{0}, s1{1};
    worker_[0] = std::make_unique<Frontend>(*table_, 0, s0, channel_, 0, nullptr, &log_);
    worker_[1] = std::make_unique<Frontend>(*table_, 1, s1, channel_, 0, nullptr, &log_);
  }

  void Feed(int worker, const std::vector<std::byte>& bytes) {
    auto f = p::DecodeFrame(bytes);
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(p::ValidateFrame(*f), p::DecodeError::kOk);
    RouteContext route;
    route.receiver = true;
    worker_[worker]->OnFrame(*f, Endpoint{42, 7}, route, now_);
  }
  void Subscribe(int worker, uint16_t partition, p::StartKind kind, uint64_t value,
                 uint64_t request, std::string_view group = {}, uint32_t credits = 100) {
    std::vector<std::byte> buf(512);
    p::SubscribeRequest r;
    r.subscription_id = 5;
    r.queue_id = 1;
    r.partition = partition;
    r.start_kind = kind;
    r.start_value = value;
    r.initial_credits = credits;
    r.group = group;
    buf.resize(*p::EncodeSubscribe(buf, {9, request, 0}, r));
    Feed(worker, buf);
  }
  void Service(int worker) { worker_[worker]->Service(now_ += kMs); }

  // What was sent since the last call, in order.
  struct Sent {
    std::vector<std::pair<uint64_t, p::ResultItem>> results;  // request id, item
    std::vector<uint64_t> delivered;                          // DELIVER offsets
    std::vector<uint64_t> fetched;                            // MESSAGES offsets
    std::vector<Errc> errors;
    bool all_replica = true;  // every RESULT, DELIVER and MESSAGES marked REPLICA
    bool result_first = true; // no DELIVER before the first RESULT
  };
  Sent Take() {
    Sent out;
    for (const auto& s : channel_.sent) {
      auto f = p::DecodeFrame(s);
      if (!f) continue;
      const bool replica = (f->header.flags & p::kFlagReplica) != 0;
      switch (f->header.type) {
        case p::FrameType::kResult: {
          const auto r = p::DecodeResultFrame(*f);
          for (const p::ResultItem it : r->items) {
            out.results.push_back({f->header.request_id, it});
          }
          out.all_replica &= replica;
          break;
        }
        case p::FrameType::kDeliver: {
          if (out.results.empty()) out.result_first = false;
          const auto d = p::DecodeDeliver(*f);
          for (const p::DeliveredView& m : d->messages) out.delivered.push_back(m.meta.offset);
          out.all_replica &= replica;
          break;
        }
        case p::FrameType::kMessages: {
          const auto m = p::DecodeMessages(*f);
          for (const p::DeliveredView& d : m->messages) out.fetched.push_back(d.meta.offset);
          out.all_replica &= replica;
          break;
        }
        case p::FrameType::kError:
          out.errors.push_back(p::DecodeErrorFrame(*f)->errc);
          break;
        default: break;
      }
    }
    channel_.sent.clear();
    return out;
  }
  static std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
    std::vector<uint64_t> v;
    for (uint64_t i = from; i < to; ++i) v.push_back(i);
    return v;
  }

  hwconf::Layout layout_;
  std::unique_ptr<const QueueTable> table_;
  FakeReplyChannel channel_;
  StandbyLog log_;
  std::array<std::unique_ptr<Frontend>, 2> worker_;
  uint64_t now_ = 10 * kMs;
};

TEST_F(FrontendReplicaReads, SubscribeFromATimestampStartsAtTheFirstRecordAtOrAfterIt) {
  // Between records 3 (400 ns) and 4 (500 ns): the subscription starts at 4.
  Subscribe(0, 0, p::StartKind::kTimestamp, 450, 1);
  Sent s = Take();
  EXPECT_TRUE(s.results.empty()) << "the RESULT needs the resolved start";
  EXPECT_TRUE(s.errors.empty());
  Service(0);
  s = Take();
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].first, 1u);
  EXPECT_EQ(s.results[0].second.errc, Errc::kOk);
  EXPECT_EQ(s.results[0].second.index, 0u);
  EXPECT_EQ(s.results[0].second.value, 4u);
  EXPECT_EQ(s.delivered, Range(4, 10));
  EXPECT_TRUE(s.all_replica);
  EXPECT_TRUE(s.result_first);
  // Live data follows from the cursor.
  log_.records = 12;
  Service(0);
  Service(0);
  EXPECT_EQ(Take().delivered, Range(10, 12));
}

TEST_F(FrontendReplicaReads, SubscribeFromATimestampHonoursTheInitialCredits) {
  Subscribe(0, 0, p::StartKind::kTimestamp, 200, 1, {}, /*credits=*/3);  // record 1
  Service(0);
  Service(0);
  Sent s = Take();
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].second.value, 1u);
  EXPECT_EQ(s.delivered, Range(1, 4));
}

TEST_F(FrontendReplicaReads, SubscribeFromATimestampPastEveryRecordStartsAtTheEnd) {
  Subscribe(0, 0, p::StartKind::kTimestamp, 5000, 1);
  Service(0);
  Sent s = Take();
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].second.errc, Errc::kOk);
  EXPECT_EQ(s.results[0].second.value, 10u);
  EXPECT_TRUE(s.delivered.empty());
  log_.records = 11;
  Service(0);
  Service(0);
  EXPECT_EQ(Take().delivered, Range(10, 11));
}

TEST_F(FrontendReplicaReads, SubscribeToEveryPartitionFromATimestamp) {
  // Each owner answers its own partitions (here one each), each once its start is known.
  Subscribe(0, p::kAnyPartition, p::StartKind::kTimestamp, 800, 1);
  Subscribe(1, p::kAnyPartition, p::StartKind::kTimestamp, 800, 1);
  Service(0);
  Service(1);
  Sent s = Take();
  ASSERT_EQ(s.results.size(), 2u);
  EXPECT_EQ(s.results[0].second.index, 0u);
  EXPECT_EQ(s.results[0].second.value, 7u);
  EXPECT_EQ(s.results[1].second.index, 1u);
  EXPECT_EQ(s.results[1].second.value, 7u);
  EXPECT_EQ(s.delivered, (std::vector<uint64_t>{7, 8, 9, 7, 8, 9}));
}

TEST_F(FrontendReplicaReads, SubscribeFromCommittedStartsAtTheReplicatedCommit) {
  log_.commits["0:g"] = 6;
  Subscribe(0, 0, p::StartKind::kCommitted, 0, 1, "g");
  Sent s = Take();
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].second.errc, Errc::kOk);
  EXPECT_EQ(s.results[0].second.value, 6u);
  EXPECT_TRUE(s.all_replica);
  Service(0);
  EXPECT_EQ(Take().delivered, Range(6, 10));
  // Another group, no commit: EARLIEST (as a primary answers), here the purge mark.
  log_.purged_below[0] = 2;
  Subscribe(0, 0, p::StartKind::kCommitted, 0, 2, "other");
  s = Take();
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].second.value, 2u);
}

TEST_F(FrontendReplicaReads, SubscribeFromCommittedIsAnsweredByPartitionZerosOwnerOnly) {
  // As on a primary: the coordinator (partition 0's owner) holds the group's offsets, so it
  // answers for the partitions it owns; another owner answers INVALID_ARGUMENT.
  log_.commits["1:g"] = 3;
  Subscribe(1, 1, p::StartKind::kCommitted, 0, 1, "g");
  Sent s = Take();
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].second.errc, Errc::kInvalidArgument);
}

TEST_F(FrontendReplicaReads, APurgeMarkHidesWhatIsBelowIt) {
  log_.purged_below[0] = 5;
  Subscribe(0, 0, p::StartKind::kEarliest, 0, 1);
  Sent s = Take();
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].second.value, 5u);
  Service(0);
  EXPECT_EQ(Take().delivered, Range(5, 10));
  // From an offset below it: as a primary answers a purged offset.
  Subscribe(0, 0, p::StartKind::kOffset, 3, 2);
  s = Take();
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].second.errc, Errc::kOffsetOutOfRange);
  // From a time below it (the segments still hold those records): from the mark.
  Subscribe(0, 0, p::StartKind::kTimestamp, 0, 3);
  Service(0);
  s = Take();
  ASSERT_EQ(s.results.size(), 1u);
  EXPECT_EQ(s.results[0].second.value, 5u);
  EXPECT_EQ(s.delivered, Range(5, 10));
  // A FETCH by time: the same.
  std::vector<std::byte> buf(256);
  p::FetchRequest f;
  f.queue_id = 1;
  f.partition = 0;
  f.start_kind = p::StartKind::kTimestamp;
  f.start_value = 0;
  f.max_messages = 100;
  buf.resize(*p::EncodeFetch(buf, {9, 4, 0}, f));
  Feed(0, buf);
  Service(0);
  s = Take();
  EXPECT_EQ(s.fetched, Range(5, 10));
  EXPECT_TRUE(s.all_replica);
}

}  // namespace
}  // namespace sluice::dataplane
