// ControlService: every change is persisted, then published in version order; a failed
// publication of a create is rolled back; the layout's [[queue]] bootstrap; rates.
#include "control/control_service.h"

#include <thread>

#include "control/fake_backend.h"
#include "gtest/gtest.h"
#include "tests/unit/control/test_util.h"

namespace sluice::control {
namespace {

using testing::Work;


class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = std::move(*Catalog::Open(store_, MetaOptions{}));
    service_ = std::make_unique<ControlService>(*catalog_, backend_);
  }
  MemoryStore store_;
  FakeBackend backend_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<ControlService> service_;
};

TEST_F(ServiceTest, ChangesArePublishedInVersionOrder) {
  ASSERT_TRUE(service_->PublishCurrent().ok());
  ASSERT_TRUE(service_->CreateQueue(Work("a")).ok());
  ASSERT_TRUE(service_->CreateQueue(Work("a")).ok());  // idempotent: nothing to publish
  AttributePatch p = *PatchFromJson(Json{{"attributes", {{"ttl_ms", 5}}}});
  ASSERT_TRUE(service_->UpdateQueue("a", p).ok());
  ASSERT_TRUE(service_->UpdateQueue("a", p).ok());  // no-op: nothing to publish
  ASSERT_TRUE(service_->PurgeQueue("a").ok());
  ASSERT_TRUE(service_->DeleteQueue("a").ok());
  EXPECT_EQ(backend_.published_versions(), (std::vector<uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(backend_.purged(), std::vector<std::string>{"a"});
  EXPECT_TRUE(backend_.published()->queues().empty());
  EXPECT_EQ(backend_.published(), catalog_->Snapshot());
}

TEST_F(ServiceTest, RefusedChangesAreNotPublished) {
  ASSERT_TRUE(service_->CreateQueue(Work("a")).ok());
  QueueSpec other = Work("a");
  other.partitions = 2;
  EXPECT_EQ(service_->CreateQueue(other).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(service_->DeleteQueue("zz").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(backend_.published_versions(), std::vector<uint64_t>{1});
}

// A standby's catalog is the primary's: a change made on it directly would be overwritten by the
// next replicated catalog, or diverge after a promotion. Refused, and nothing changes.
TEST_F(ServiceTest, StandbyAndFencedPrimaryRefuseCatalogChanges) {
  ASSERT_TRUE(service_->CreateQueue(Work("a")).ok());
  const uint64_t version = catalog_->Snapshot()->version();
  const std::vector<uint64_t> published = backend_.published_versions();
  RoleInfo standby;
  standby.role = "standby";
  standby.epoch = 7;
  standby.peer = "198.18.9.1:7500";
  RoleInfo fenced;
  fenced.role = "primary";
  fenced.epoch = 6;
  fenced.fenced = true;
  for (const RoleInfo& role : {standby, fenced}) {
    backend_.SetRole(role);
    const AttributePatch p = *PatchFromJson(Json{{"attributes", {{"ttl_ms", 5}}}});
    for (const absl::Status& st :
         {service_->CreateQueue(Work("b")).status(), service_->UpdateQueue("a", p).status(),
          service_->PurgeQueue("a").status(), service_->DeleteQueue("a").status()}) {
      EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << role.role << ": " << st;
      EXPECT_EQ(ErrorCodeOf(st), "not_primary") << st;
      EXPECT_EQ(HttpStatusOf(st), 409);
      EXPECT_NE(std::string(st.message()).find(role.fenced ? "fenced" : "198.18.9.1:7500"),
                std::string::npos)
          << st;
    }
    EXPECT_EQ(catalog_->Snapshot()->version(), version);
    EXPECT_EQ(backend_.published_versions(), published);
    EXPECT_TRUE(backend_.purged().empty());
  }
  // The primary's catalog still reaches a standby.
  backend_.SetRole(standby);
  ASSERT_TRUE(service_->ReplaceCatalog(catalog_->Export()).ok());
  // Promoted: changes are taken again.
  RoleInfo primary;
  primary.role = "primary";
  primary.epoch = 8;
  backend_.SetRole(primary);
  EXPECT_TRUE(service_->CreateQueue(Work("b")).ok());
}

TEST_F(ServiceTest, CreateWhosePublicationFailsIsRolledBack) {
  backend_.FailNextPublish(absl::ResourceExhaustedError("no room for 4096 more partitions"));
  absl::Status st = service_->CreateQueue(Work("big")).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(st.message()).find("no room"), std::string::npos);
  EXPECT_FALSE(catalog_->Describe("big").ok());
  EXPECT_TRUE(service_->CreateQueue(Work("big")).ok());
  EXPECT_EQ(backend_.published()->queues().size(), 1u);
}

TEST_F(ServiceTest, BootstrapFromLayoutDeclarations) {
  std::vector<hwconf::QueueDecl> decls(3);
  decls[0].name = "jobs";  // names its DLQ, declared after it
  decls[0].type = hwconf::QueueType::kWork;
  decls[0].partitions = 2;
  decls[0].max_receive_count = 3;
  decls[0].dead_letter_queue = "jobs-dlq";
  decls[1].name = "ticks";
  decls[2].name = "jobs-dlq";
  decls[2].type = hwconf::QueueType::kWork;
  absl::StatusOr<BootstrapReport> r = service_->Bootstrap(decls);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->created, (std::vector<std::string>{"ticks", "jobs-dlq", "jobs"}));
  EXPECT_TRUE(r->warnings.empty());
  ASSERT_TRUE(service_->PublishCurrent().ok());
  EXPECT_EQ(backend_.published()->queues().size(), 3u);

  // A restart with the same layout finds them; a changed declaration does not override the
  // stored queue (which the API may have changed since) but says so.
  AttributePatch p = *PatchFromJson(Json{{"attributes", {{"visibility_timeout_ms", 1000}}}});
  ASSERT_TRUE(service_->UpdateQueue("jobs", p).ok());
  decls[1].partitions = 4;
  r = service_->Bootstrap(decls);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->created.empty());
  EXPECT_EQ(r->existing, std::vector<std::string>{"jobs-dlq"});
  ASSERT_EQ(r->warnings.size(), 2u);
  EXPECT_NE(r->warnings[0].find("\"jobs\""), std::string::npos) << r->warnings[0];
  EXPECT_NE(r->warnings[0].find("visibility_timeout_ms"), std::string::npos);
  EXPECT_NE(r->warnings[1].find("ticks"), std::string::npos) << r->warnings[1];
  EXPECT_NE(r->warnings[1].find("partitions"), std::string::npos);
  EXPECT_EQ(catalog_->Describe("ticks")->spec.partitions, 1u);
}

TEST_F(ServiceTest, BootstrapReportsABadDeclaration) {
  std::vector<hwconf::QueueDecl> decls(1);
  decls[0].name = "jobs";
  decls[0].type = hwconf::QueueType::kWork;
  decls[0].max_receive_count = 3;
  decls[0].dead_letter_queue = "nowhere";
  absl::Status st = service_->Bootstrap(decls).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(st.message()).find("[[queue]] \"jobs\""), std::string::npos) << st;
}

TEST_F(ServiceTest, RatesFromSuccessiveSamples) {
  ASSERT_TRUE(service_->CreateQueue(Work("a")).ok());
  BackendStats s1 = service_->Stats();
  ASSERT_EQ(s1.queues.size(), 1u);
  EXPECT_EQ(s1.queues[0].partitions[0].messages_in_per_s, 0.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1050));
  BackendStats s2 = service_->Stats();
  // The fake adds 100 messages per Stats call: about 100 / 1.05 s.
  EXPECT_GT(s2.queues[0].partitions[0].messages_in_per_s, 50.0);
  EXPECT_LT(s2.queues[0].partitions[0].messages_in_per_s, 100.0);
  EXPECT_GT(s2.queues[0].partitions[0].bytes_in_per_s, 0.0);
  // Within the second, the last rates are kept.
  BackendStats s3 = service_->Stats();
  EXPECT_EQ(s3.queues[0].partitions[0].messages_in_per_s,
            s2.queues[0].partitions[0].messages_in_per_s);
}

}  // namespace
}  // namespace sluice::control

#include "control/engine_config.h"

namespace sluice::control {
namespace {

using testing::Work;

TEST(EngineConfig, CatalogQueueToShardSettings) {
  MemoryStore store;
  auto catalog = std::move(*Catalog::Open(store, {}));
  ASSERT_TRUE(catalog->Create(Work("dlq")).ok());
  QueueSpec s = Work("jobs");
  s.attributes.durability = Durability::kDsync;
  s.attributes.visibility_timeout_ms = 1234;
  s.attributes.max_receive_count = 4;
  s.attributes.dead_letter_queue = "dlq";
  s.attributes.delay_ms = 10;
  s.attributes.ttl_ms = 20;
  s.attributes.priority_levels = 8;
  s.attributes.dedup_window_ms = 30;
  s.attributes.content_dedup = true;
  s.attributes.max_message_bytes = 4096;
  ASSERT_TRUE(catalog->Create(s).ok());
  auto snap = catalog->Snapshot();
  shard::QueueConfig base;
  base.memory_budget_chunks = 7;
  const shard::QueueConfig c = ToShardQueueConfig(*snap->Find("jobs"), *snap, base);
  EXPECT_EQ(c.type, shard::QueueType::kWork);
  EXPECT_EQ(c.durability, shard::Durability::kDsync);
  EXPECT_EQ(c.visibility_timeout_ms, 1234u);
  EXPECT_EQ(c.max_receive_count, 4u);
  ASSERT_TRUE(c.dead_letter_queue.has_value());
  EXPECT_EQ(c.dead_letter_queue->value, 1u);
  EXPECT_EQ(c.delay_ms, 10u);
  EXPECT_EQ(c.ttl_ms, 20u);
  EXPECT_EQ(c.priority_levels, 8);
  EXPECT_EQ(c.dedup_window_ms, 30u);
  EXPECT_TRUE(c.content_dedup);
  EXPECT_EQ(c.max_message_bytes, 4096u);
  EXPECT_EQ(c.memory_budget_chunks, 7u);  // capacities from the base
  const shard::QueueConfig d = ToShardQueueConfig(*snap->Find("dlq"), *snap);
  EXPECT_FALSE(d.dead_letter_queue.has_value());
  EXPECT_EQ(d.durability, shard::Durability::kWrite);
}

}  // namespace
}  // namespace sluice::control
