// The RCU publication of queue tables under load, without DPDK's EAL: threads stand in for the
// worker lcores (each with a real Frontend over its shards, following the lcore protocol of
// TablePublisher: load at the start of a pass, quiescent at the end, offline around sleeps),
// while several control threads create, purge and delete queues through the real Catalog,
// ControlService and SluicedBackend, and another reads stats. Traffic flows all along on a queue
// nobody deletes: every message produced there must be acknowledged. Run under ASan/UBSan (the
// debug flavour) this proves that no lcore reads a freed table; the publisher's counters and
// LeakSanitizer that none leaks.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "control/catalog.h"
#include "control/control_service.h"
#include "control/metadata_store.h"
#include "dataplane/control_backend.h"
#include "dataplane/frontend.h"
#include "dataplane/table_publisher.h"
#include "dataplane/worker.h"
#include "protocol/codec.h"

namespace sluice::dataplane {
namespace {
namespace p = protocol;
namespace c = control;

// Replies of one fake lcore: counts acknowledged messages per queue.
class CountingChannel final : public ReplyChannel {
 public:
  ReplyBuffer Acquire(const Endpoint&, size_t max_bytes) override {
    for (uint32_t h = 0; h < kMaxOutstanding; ++h) {
      if (!busy_[h]) {
        busy_[h] = true;
        buffers_[h].assign(std::min<size_t>(max_bytes, 1472), std::byte{0});
        return {buffers_[h], h};
      }
    }
    return {};
  }
  void Send(const ReplyBuffer& b, size_t bytes) override {
    busy_[b.handle] = false;
    auto f = p::DecodeFrame(std::span<const std::byte>(b.bytes.data(), bytes));
    if (!f || f->header.type != p::FrameType::kAck) return;
    auto a = p::DecodeAck(*f);
    for (const p::AckRange& r : a->ranges) {
      if (r.errc == Errc::kOk || r.errc == Errc::kDuplicate) {
        if (a->queue_id == watched) acked += r.count;
      } else {
        ++errors;
      }
    }
  }
  void Abandon(const ReplyBuffer& b) override { busy_[b.handle] = false; }
  bool HandOffRecord(uint16_t, uint32_t, std::span<const std::byte>) override { return true; }

  uint32_t watched = 0;
  uint64_t acked = 0;
  uint64_t errors = 0;  // appends to deleted queues answered UNKNOWN_PARTITION and the like

 private:
  std::array<bool, kMaxOutstanding> busy_{};
  std::array<std::vector<std::byte>, kMaxOutstanding> buffers_;
};

std::vector<std::byte> ProduceFrame(uint32_t queue, uint32_t partition, uint64_t producer,
                                    uint64_t sequence) {
  static const std::string payload = "hammer";
  std::vector<std::byte> buf(256);
  p::FrameWriter w(buf);
  EXPECT_EQ(w.BeginProduce({1, sequence, 0}, queue, producer), p::EncodeError::kOk);
  p::MessageSpec m;
  m.partition = static_cast<uint16_t>(partition);
  m.sequence = sequence;
  m.payload = {reinterpret_cast<const std::byte*>(payload.data()), payload.size()};
  EXPECT_EQ(w.AddMessage(m), p::EncodeError::kOk);
  buf.resize(*w.Finish());
  return buf;
}

class ControlHammerTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kWorkers = 2;

  void SetUp() override {
    layout_.shards = 4;
    for (uint16_t w = 0; w < kWorkers; ++w) {
      hwconf::Lcore lc;
      lc.id = w + 1;
      lc.shards = {2u * w, 2u * w + 1};
      layout_.lcores.push_back(lc);
    }
    auto tables = TablePublisher::Create(kWorkers);
    ASSERT_TRUE(tables.ok()) << tables.status();
    tables_ = std::move(*tables);
    mailboxes_ = std::make_unique<StatsMailbox[]>(kWorkers);
    rt_.layout = &layout_;
    rt_.tables = tables_.get();
    rt_.stats = mailboxes_.get();
    rt_.worker_count = kWorkers;
    rt_.min_message_bytes = c::MetaOptions{}.defaults.max_message_bytes;
    auto catalog = c::Catalog::Open(store_, c::MetaOptions{});
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = std::move(*catalog);
    backend_ = std::make_unique<SluicedBackend>(layout_, rt_);
    service_ = std::make_unique<c::ControlService>(*catalog_, *backend_);
  }

  static c::QueueSpec Spec(const std::string& name, c::QueueType type, uint32_t partitions) {
    c::QueueSpec s;
    s.name = name;
    s.type = type;
    s.partitions = partitions;
    return s;
  }

  hwconf::Layout layout_;
  SharedRuntime rt_;
  std::unique_ptr<TablePublisher> tables_;
  std::unique_ptr<StatsMailbox[]> mailboxes_;
  c::MemoryStore store_;
  std::unique_ptr<c::Catalog> catalog_;
  std::unique_ptr<SluicedBackend> backend_;
  std::unique_ptr<c::ControlService> service_;
};

// One fake lcore: the loop of Worker::Run without packets.
struct FakeLcore {
  uint16_t index;
  const hwconf::Layout* layout;
  SharedRuntime* rt;
  uint32_t steady_id;
  CountingChannel channel;
  uint64_t produced = 0;
  uint64_t passes = 0;
  uint64_t tables_seen = 0;

  void Run(const std::atomic<bool>& stop) {
    TablePublisher& tables = *rt->tables;
    tables.Register(index);  // before the first load, as Worker's constructor does
    const QueueTable* table = tables.Load();
    const std::vector<uint32_t>& shards = layout->lcores[index].shards;
    Frontend frontend(*table, index, shards, channel, rt->min_message_bytes);
    channel.watched = steady_id;
    std::mt19937 rng(index);
    std::vector<uint64_t> sequence(64, 0);  // per partition of the steady queue
    std::vector<PartitionFigures> figures;
    while (!stop.load(std::memory_order_relaxed)) {
      ++passes;
      const uint64_t now_ns = 1'000'000 + passes * 10'000;
      if (const QueueTable* t = tables.Load(); t != table) {
        table = t;
        frontend.SetTable(*t);
        ++tables_seen;
      }
      // Read the whole table, as routing does (ASan catches a freed one here).
      uint64_t partitions = 0;
      for (const QueueInfo& q : table->queues()) {
        ASSERT_EQ(table->Find(q.id), &q);
        ASSERT_EQ(table->FindByName(q.name), &q);
        partitions += q.partition_worker.size();
      }
      ASSERT_GT(partitions, 0u);
      // Traffic on the steady queue (partition `index` is this lcore's: shard index*2).
      const QueueInfo* steady = table->Find(steady_id);
      ASSERT_NE(steady, nullptr);
      for (uint32_t part = 0; part < steady->partition_worker.size(); ++part) {
        if (steady->partition_worker[part] != index) continue;
        Feed(frontend, ProduceFrame(steady_id, part, 100 + index, sequence[part]++), now_ns);
        ++produced;
      }
      // And on some other queue this lcore owns a partition of (it may be deleted any time).
      const auto& qs = table->queues();
      const QueueInfo& other = qs[rng() % qs.size()];
      for (uint32_t part = 0; part < other.partition_worker.size(); ++part) {
        if (other.partition_worker[part] == index && other.is_stream() && other.id != steady_id) {
          Feed(frontend, ProduceFrame(other.id, part, 0, 0), now_ns);  // not idempotent
        }
      }
      frontend.Service(now_ns);
      StatsMailbox& box = rt->stats[index];
      if (const uint64_t want = box.requested.load(std::memory_order_acquire);
          want != box.published.load(std::memory_order_relaxed)) {
        figures.clear();
        frontend.CollectPartitionStats(&figures);
        box.figures.swap(figures);
        box.published.store(want, std::memory_order_release);
      }
      tables.Quiescent(index);
      if (passes % 32 == 0) {
        tables.Offline(index);
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        tables.Online(index);
      }
    }
    frontend.Service(1'000'000 + (passes + 1) * 10'000);
    tables.Unregister(index);
  }

  static void Feed(Frontend& frontend, const std::vector<std::byte>& bytes, uint64_t now_ns) {
    auto f = p::DecodeFrame(bytes);
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(p::ValidateFrame(*f), p::DecodeError::kOk);
    RouteContext route;
    route.receiver = true;
    frontend.OnFrame(*f, Endpoint{42, 7}, route, now_ns);
  }
};

TEST_F(ControlHammerTest, CreateDeletePurgeFromSeveralThreadsWhileTrafficFlows) {
  auto steady = service_->CreateQueue(Spec("steady", c::QueueType::kStream, kWorkers * 2));
  ASSERT_TRUE(steady.ok()) << steady.status();
  ASSERT_TRUE(service_->PublishCurrent().ok());

  std::atomic<bool> stop{false};
  std::vector<std::unique_ptr<FakeLcore>> lcores;
  std::vector<std::thread> threads;
  for (uint16_t w = 0; w < kWorkers; ++w) {
    lcores.push_back(std::make_unique<FakeLcore>(
        FakeLcore{w, &layout_, &rt_, steady->queue.id, {}}));
  }
  for (auto& l : lcores) threads.emplace_back([&l, &stop] { l->Run(stop); });

  constexpr int kWriters = 3;
  constexpr int kRounds = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      std::mt19937 rng(1000 + t);
      for (int i = 0; i < kRounds; ++i) {
        const std::string name = absl::StrCat("h", t, "-", i);
        const auto type = rng() % 2 ? c::QueueType::kStream : c::QueueType::kWork;
        auto created = service_->CreateQueue(Spec(name, type, 1 + rng() % 3));
        if (!created.ok()) {
          ADD_FAILURE() << created.status();
          ++failures;
          continue;
        }
        if (rng() % 3 == 0 && !service_->PurgeQueue(name).ok()) ++failures;
        if (rng() % 4 != 0 && !service_->DeleteQueue(name).ok()) ++failures;  // some stay
      }
    });
  }
  std::atomic<bool> writers_done{false};
  uint64_t stats_reads = 0;
  std::thread reader([&] {
    while (!writers_done.load()) {
      const c::BackendStats s = service_->Stats();
      EXPECT_GT(s.published_version, 0u);
      ++stats_reads;
    }
  });
  for (std::thread& w : writers) w.join();
  writers_done = true;
  reader.join();

  // Let the lcores run on the final table, then stop them.
  // Publish returned after two grace periods, so the lcores already run on the final table.
  const uint64_t published = tables_->published();
  stop = true;
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(stats_reads, 0u);
  // Every create, purge and delete published a table; all but the current one were freed.
  EXPECT_GE(published, uint64_t{kWriters} * kRounds);
  EXPECT_EQ(tables_->freed() + 1, tables_->published());
  for (auto& l : lcores) {
    EXPECT_GT(l->tables_seen, 0u) << "lcore " << l->index << " never saw a new table";
    // Nothing lost on the queue nobody touched: every message produced there was acknowledged.
    EXPECT_EQ(l->channel.acked, l->produced) << "lcore " << l->index;
    EXPECT_GT(l->produced, 0u);
  }
  // The catalog and the last table agree.
  const QueueTable* last = tables_->Load();
  EXPECT_EQ(last->version(), catalog_->Snapshot()->version());
  EXPECT_EQ(last->queues().size(), catalog_->List().size());
}

TEST_F(ControlHammerTest, QueuesTheShardsCannotHoldAreRefusedBeforePublication) {
  ASSERT_TRUE(service_->PublishCurrent().ok());
  c::QueueSpec big = Spec("big", c::QueueType::kStream, 1);
  big.attributes.max_message_bytes = 1 << 20;  // shards were sized for 256 KiB messages
  auto r = service_->CreateQueue(big);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_FALSE(catalog_->Describe("big").ok()) << "the refused create was not rolled back";
  EXPECT_EQ(tables_->Load()->FindByName("big"), nullptr);
}

TEST_F(ControlHammerTest, SparseIdsAfterDeletesStillResolve) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(service_->CreateQueue(Spec(absl::StrCat("q", i), c::QueueType::kWork, 2)).ok());
  }
  ASSERT_TRUE(service_->DeleteQueue("q1").ok());
  ASSERT_TRUE(service_->DeleteQueue("q3").ok());
  const QueueTable* t = tables_->Load();
  EXPECT_EQ(t->Find(2), nullptr);
  EXPECT_EQ(t->Find(4), nullptr);
  EXPECT_EQ(t->Find(99), nullptr);
  ASSERT_NE(t->Find(5), nullptr);
  EXPECT_EQ(t->Find(5)->name, "q4");
  EXPECT_EQ(t->FindByName("q4"), t->Find(5));
  // Placement is a function of (id, partition): queue 5 starts on shard 4 % 4 = 0.
  EXPECT_EQ(t->Find(5)->partition_shard, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(t->Find(5)->config.type, shard::QueueType::kWork);
  EXPECT_EQ(t->Find(5)->config.durability, shard::Durability::kWrite);
  EXPECT_EQ(t->Find(5)->config.visibility_timeout_ms, 30'000u);
}

}  // namespace
}  // namespace sluice::dataplane
