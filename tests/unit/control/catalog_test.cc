// Catalog semantics: ids, idempotent create and conflicts, dead-letter references, live and
// immutable updates, purge, delete, persistence, store failures, snapshots, and concurrency.
#include "control/catalog.h"

#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "control/file_store.h"
#include "gtest/gtest.h"
#include "tests/unit/control/test_util.h"

namespace sluice::control {
namespace {

using testing::ExpectError;
using testing::Stream;
using testing::Work;


AttributePatch Patch(const Json& attrs) {
  absl::StatusOr<AttributePatch> p = PatchFromJson(Json{{"attributes", attrs}});
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }
  void Reopen() {
    catalog_.reset();
    absl::StatusOr<std::unique_ptr<Catalog>> c =
        Catalog::Open(store_, MetaOptions{}, limits_, [this] { return ++now_ms_; });
    ASSERT_TRUE(c.ok()) << c.status();
    catalog_ = std::move(*c);
  }
  Catalog& c() { return *catalog_; }

  MemoryStore store_;
  CatalogLimits limits_;
  uint64_t now_ms_ = 1000;
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(CatalogTest, CreateAssignsIncreasingIds) {
  EXPECT_EQ(c().Create(Work("a"))->queue.id, 1u);
  EXPECT_EQ(c().Create(Stream("b"))->queue.id, 2u);
  absl::StatusOr<CreateResult> r = c().Create(Work("c", 3));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->created);
  EXPECT_EQ(r->queue.id, 3u);
  EXPECT_EQ(r->queue.spec.partitions, 3u);
  EXPECT_GT(r->queue.created_at_ms, 1000u);
  EXPECT_EQ(c().List().size(), 3u);
  EXPECT_EQ(c().Snapshot()->version(), 3u);
}

TEST_F(CatalogTest, IdenticalCreateIsIdempotent) {
  QueueSpec s = Work("orders", 4);
  s.attributes.visibility_timeout_ms = 10'000;
  absl::StatusOr<CreateResult> first = c().Create(s);
  ASSERT_TRUE(first.ok());
  const uint64_t version = c().Snapshot()->version();
  absl::StatusOr<CreateResult> again = c().Create(s);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->queue, first->queue);
  EXPECT_EQ(c().Snapshot()->version(), version);  // nothing persisted
}

TEST_F(CatalogTest, DifferentCreateConflicts) {
  QueueSpec s = Work("orders", 4);
  ASSERT_TRUE(c().Create(s).ok());
  QueueSpec other = s;
  other.partitions = 8;
  ExpectError(c().Create(other).status(), absl::StatusCode::kAlreadyExists, "partitions",
              "exists with a different partitions");
  other = s;
  other.type = QueueType::kStream;
  ExpectError(c().Create(other).status(), absl::StatusCode::kAlreadyExists, "type");
  other = s;
  other.attributes.ttl_ms = 5;
  absl::Status st = c().Create(other).status();
  ExpectError(st, absl::StatusCode::kAlreadyExists, "attributes.ttl_ms");
  EXPECT_EQ(HttpStatusOf(st), 409);
  EXPECT_EQ(ErrorCodeOf(st), "conflict");
}

TEST_F(CatalogTest, InvalidSpecIsRejectedBeforeAnything) {
  QueueSpec s = Work("bad name");
  ExpectError(c().Create(s).status(), absl::StatusCode::kInvalidArgument, "name");
  s = Work("q");
  s.attributes.priority_levels = 17;
  ExpectError(c().Create(s).status(), absl::StatusCode::kInvalidArgument,
              "attributes.priority_levels");
  EXPECT_TRUE(c().List().empty());
  EXPECT_EQ(c().Snapshot()->version(), 0u);
}

TEST_F(CatalogTest, IdsAreNeverReused) {
  ASSERT_TRUE(c().Create(Work("a")).ok());
  ASSERT_TRUE(c().Create(Work("b")).ok());
  ASSERT_TRUE(c().Delete("b").ok());
  EXPECT_EQ(c().Create(Work("c"))->queue.id, 3u);
  ASSERT_TRUE(c().Delete("c").ok());
  Reopen();  // next_id survives a restart
  EXPECT_EQ(c().Create(Work("b"))->queue.id, 4u);
}

TEST_F(CatalogTest, DeadLetterQueueMustExistBeWorkAndNotSelf) {
  ASSERT_TRUE(c().Create(Stream("events")).ok());
  QueueSpec s = Work("jobs");
  s.attributes.max_receive_count = 3;
  s.attributes.dead_letter_queue = "missing";
  ExpectError(c().Create(s).status(), absl::StatusCode::kInvalidArgument,
              "attributes.dead_letter_queue", "does not exist");
  s.attributes.dead_letter_queue = "events";
  ExpectError(c().Create(s).status(), absl::StatusCode::kInvalidArgument,
              "attributes.dead_letter_queue", "not a work queue");
  s.attributes.dead_letter_queue = "jobs";
  ExpectError(c().Create(s).status(), absl::StatusCode::kInvalidArgument,
              "attributes.dead_letter_queue", "itself");
  ASSERT_TRUE(c().Create(Work("jobs-dlq")).ok());
  s.attributes.dead_letter_queue = "jobs-dlq";
  ASSERT_TRUE(c().Create(s).ok());
  std::shared_ptr<const CatalogSnapshot> snap = c().Snapshot();
  EXPECT_EQ(snap->DeadLetterId(*snap->Find("jobs")), snap->Find("jobs-dlq")->id);
  EXPECT_EQ(snap->DeadLetterId(*snap->Find("events")), 0u);

  // The target cannot go while it is referenced.
  absl::Status st = c().Delete("jobs-dlq").status();
  ExpectError(st, absl::StatusCode::kFailedPrecondition, "name", "dead_letter_queue of \"jobs\"");
  EXPECT_EQ(HttpStatusOf(st), 409);
  ASSERT_TRUE(c().Update("jobs", Patch({{"dead_letter_queue", ""}})).ok());
  EXPECT_TRUE(c().Delete("jobs-dlq").ok());
}

TEST_F(CatalogTest, UpdateLiveAttributes) {
  ASSERT_TRUE(c().Create(Work("q")).ok());
  const uint64_t created = c().Describe("q")->updated_at_ms;
  absl::StatusOr<QueueMeta> u =
      c().Update("q", Patch({{"visibility_timeout_ms", 5000}, {"replication", "sync"}}));
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->spec.attributes.visibility_timeout_ms, 5000u);
  EXPECT_EQ(u->spec.attributes.replication, ReplicationMode::kSync);
  EXPECT_GT(u->updated_at_ms, created);
  EXPECT_EQ(c().Describe("q")->spec.attributes.visibility_timeout_ms, 5000u);
  // Every attribute the table calls live can change.
  for (const AttributeInfo& a : Attributes()) {
    if (!a.live || a.applies == AppliesTo::kStream || a.kind != AttrKind::kUint) continue;
    const uint64_t v = a.min + 1;
    EXPECT_TRUE(c().Update("q", Patch({{std::string(a.name), v}})).ok()) << a.name;
  }
}

TEST_F(CatalogTest, ImmutableAttributes) {
  ASSERT_TRUE(c().Create(Work("q")).ok());
  for (const auto& [name, value] : std::vector<std::pair<std::string, Json>>{
           {"durability", "dsync"}, {"priority_levels", 4}, {"fifo", true}}) {
    absl::Status st = c().Update("q", Patch({{name, value}})).status();
    ExpectError(st, absl::StatusCode::kInvalidArgument, "attributes." + name, "cannot change");
    EXPECT_EQ(ErrorCodeOf(st), "immutable");
  }
  // "Changing" one to its current value, together with a live change, is fine.
  EXPECT_TRUE(c().Update("q", Patch({{"durability", "write"}, {"ttl_ms", 9}})).ok());
  // A non-live attribute is caught even when a live one before it in the table changes too.
  ExpectError(c().Update("q", Patch({{"dedup_window_ms", 1}, {"fifo", true}})).status(),
              absl::StatusCode::kInvalidArgument, "attributes.fifo");
}

TEST_F(CatalogTest, UpdateValidatesTheResult) {
  ASSERT_TRUE(c().Create(Work("q")).ok());
  ASSERT_TRUE(c().Create(Stream("s")).ok());
  ExpectError(c().Update("q", Patch({{"receive_wait_ms", 20'001}})).status(),
              absl::StatusCode::kInvalidArgument, "attributes.receive_wait_ms");
  ExpectError(c().Update("s", Patch({{"ttl_ms", 5}})).status(), absl::StatusCode::kInvalidArgument,
              "attributes.ttl_ms", "work queues only");
  ExpectError(c().Update("q", Patch({{"dead_letter_queue", "s"}, {"max_receive_count", 2}}))
                  .status(),
              absl::StatusCode::kInvalidArgument, "attributes.dead_letter_queue", "not a work");
  ExpectError(c().Update("nope", Patch({{"ttl_ms", 5}})).status(), absl::StatusCode::kNotFound,
              "name");
}

TEST_F(CatalogTest, NoOpUpdateIsNotPersisted) {
  ASSERT_TRUE(c().Create(Work("q")).ok());
  const uint64_t v = c().Snapshot()->version();
  EXPECT_TRUE(c().Update("q", Patch({{"visibility_timeout_ms", 30'000}})).ok());
  EXPECT_EQ(c().Snapshot()->version(), v);
}

TEST_F(CatalogTest, PurgeAndDelete) {
  ASSERT_TRUE(c().Create(Work("q")).ok());
  absl::StatusOr<QueueMeta> p = c().Purge("q");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->purge_generation, 1u);
  EXPECT_GT(p->purged_at_ms, 0u);
  EXPECT_EQ(c().Purge("q")->purge_generation, 2u);
  ExpectError(c().Purge("x").status(), absl::StatusCode::kNotFound, "name", "no queue named \"x\"");
  absl::StatusOr<QueueMeta> d = c().Delete("q");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->spec.name, "q");
  ExpectError(c().Delete("q").status(), absl::StatusCode::kNotFound, "name");
  ExpectError(c().Describe("q").status(), absl::StatusCode::kNotFound, "name");
  EXPECT_TRUE(c().List().empty());
}

TEST_F(CatalogTest, EverythingSurvivesARestart) {
  QueueSpec s = Work("jobs", 2);
  s.attributes.delay_ms = 100;
  ASSERT_TRUE(c().Create(Work("dlq")).ok());
  s.attributes.max_receive_count = 2;
  s.attributes.dead_letter_queue = "dlq";
  ASSERT_TRUE(c().Create(s).ok());
  ASSERT_TRUE(c().Create(Stream("ticks")).ok());
  ASSERT_TRUE(c().Purge("ticks").ok());
  ASSERT_TRUE(c().Update("jobs", Patch({{"ttl_ms", 60'000}})).ok());
  const std::vector<QueueMeta> before = c().List();
  const uint64_t version = c().Snapshot()->version();
  Reopen();
  EXPECT_EQ(c().List(), before);
  EXPECT_EQ(c().Snapshot()->version(), version);
}

TEST_F(CatalogTest, FailedSaveChangesNothing) {
  store_.FailNextSaves(1);
  absl::Status st = c().Create(Work("q")).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusOf(st), 503);
  EXPECT_TRUE(c().List().empty());
  ASSERT_TRUE(c().Create(Work("q")).ok());
  EXPECT_EQ(c().Describe("q")->id, 1u);  // the failed create used no id
  store_.FailNextSaves(1);
  EXPECT_FALSE(c().Delete("q").ok());
  EXPECT_TRUE(c().Describe("q").ok());
  store_.FailNextSaves(1);
  EXPECT_FALSE(c().Update("q", Patch({{"ttl_ms", 7}})).ok());
  EXPECT_EQ(c().Describe("q")->spec.attributes.ttl_ms, 0u);
}

TEST_F(CatalogTest, SnapshotsAreImmutable) {
  ASSERT_TRUE(c().Create(Work("q")).ok());
  std::shared_ptr<const CatalogSnapshot> s1 = c().Snapshot();
  ASSERT_TRUE(c().Update("q", Patch({{"ttl_ms", 7}})).ok());
  ASSERT_TRUE(c().Create(Work("r")).ok());
  std::shared_ptr<const CatalogSnapshot> s2 = c().Snapshot();
  ASSERT_TRUE(c().Delete("q").ok());
  std::shared_ptr<const CatalogSnapshot> s3 = c().Snapshot();
  EXPECT_EQ(s1->queues().size(), 1u);
  EXPECT_EQ(s1->Find("q")->spec.attributes.ttl_ms, 0u);
  EXPECT_EQ(s2->Find("q")->spec.attributes.ttl_ms, 7u);
  EXPECT_LT(s1->version(), s2->version());
  EXPECT_EQ(s2->FindById(2)->spec.name, "r");
  EXPECT_EQ(s3->FindById(1), nullptr);

  SnapshotDiff d = Diff(*s1, *s2);
  EXPECT_EQ(d.added, std::vector<uint32_t>{2});
  EXPECT_EQ(d.changed, std::vector<uint32_t>{1});
  EXPECT_TRUE(d.removed.empty());
  d = Diff(*s2, *s3);
  EXPECT_EQ(d.removed, std::vector<uint32_t>{1});
  EXPECT_TRUE(d.added.empty() && d.changed.empty());
}

TEST_F(CatalogTest, QueueLimit) {
  limits_.max_queues = 2;
  Reopen();
  ASSERT_TRUE(c().Create(Work("a")).ok());
  ASSERT_TRUE(c().Create(Work("b")).ok());
  absl::Status st = c().Create(Work("c")).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrorCodeOf(st), "limit_exceeded");
  EXPECT_TRUE(c().Create(Work("a")).ok());  // idempotent create still answers
}

TEST_F(CatalogTest, ConcurrentCreatesAndDeletes) {
  constexpr int kThreads = 4, kRounds = 40;
  std::vector<std::thread> threads;
  std::vector<std::vector<uint32_t>> ids(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &ids] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string name = absl::StrCat("t", t, "-", i);
        absl::StatusOr<CreateResult> r = c().Create(Work(name));
        ASSERT_TRUE(r.ok()) << r.status();
        ids[t].push_back(r->queue.id);
        (void)c().Snapshot();
        if (i % 2 == 1) {
          ASSERT_TRUE(c().Delete(name).ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint32_t> all;
  for (const auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kRounds));  // unique
  EXPECT_EQ(*all.rbegin(), static_cast<uint32_t>(kThreads * kRounds));
  EXPECT_EQ(c().List().size(), static_cast<size_t>(kThreads * kRounds / 2));
  const std::vector<QueueMeta> before = c().List();
  Reopen();
  EXPECT_EQ(c().List(), before);
}

TEST(CatalogOpen, RejectsADocumentThatIsNotACatalog) {
  MemoryStore store;
  ASSERT_TRUE(store.Save(0, "not json").ok());
  EXPECT_EQ(Catalog::Open(store, {}).status().code(), absl::StatusCode::kDataLoss);
  MemoryStore store2;
  ASSERT_TRUE(store2.Save(0, R"({"format":"sluice-catalog","format_version":1,"next_id":2,
      "queues":[{"name":"a","id":5,"type":"work"}]})")
                  .ok());
  EXPECT_EQ(Catalog::Open(store2, {}).status().code(), absl::StatusCode::kDataLoss);  // id >= next
}

TEST(CatalogOpen, ADocumentFromBeforeContentDedupLoadsWithItOff) {
  MemoryStore store;
  ASSERT_TRUE(store.Save(0, R"({"format":"sluice-catalog","format_version":1,"next_id":6,
      "queues":[{"name":"a","id":5,"type":"work","attributes":{"dedup_window_ms":60000}}]})")
                  .ok());
  auto c = Catalog::Open(store, {});
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<QueueMeta> q = (*c)->Describe("a");
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(q->spec.attributes.content_dedup);
  EXPECT_EQ(q->spec.attributes.dedup_window_ms, 60'000u);
  // Turned on live, kept by the store, and adopted by a standby from the primary's export.
  ASSERT_TRUE((*c)->Update("a", Patch({{"content_dedup", true}})).ok());
  auto reopened = Catalog::Open(store, {});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE((*reopened)->Describe("a")->spec.attributes.content_dedup);
  MemoryStore standby_store;
  auto standby = Catalog::Open(standby_store, {});
  ASSERT_TRUE(standby.ok());
  ASSERT_TRUE((*standby)->Replace((*c)->Export()).ok());
  EXPECT_TRUE((*standby)->Describe("a")->spec.attributes.content_dedup);
}

TEST(CatalogOpen, WithTheFileStore) {
  const std::string dir = testing::MakeTempDir();
  {
    auto store = FileStore::Open(dir);
    auto c = Catalog::Open(**store, {});
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE((*c)->Create(Work("persisted", 2)).ok());
  }
  auto store = FileStore::Open(dir);
  auto c = Catalog::Open(**store, {});
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<QueueMeta> q = (*c)->Describe("persisted");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->spec.partitions, 2u);
  EXPECT_EQ((*c)->StoreDescription(), "file " + dir + "/catalog");
}

}  // namespace
}  // namespace sluice::control
