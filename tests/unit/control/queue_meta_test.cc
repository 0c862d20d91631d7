// The queue model: every attribute's bounds and reasons, type checks, JSON round trips, the
// `--attr k=v` parser, and the layout declaration conversions.
#include "control/queue_meta.h"

#include "gtest/gtest.h"
#include "tests/unit/control/test_util.h"

namespace sluice::control {
namespace {

using testing::ExpectError;

Json WorkBody(Json attributes = Json::object()) {
  return Json{{"name", "q"}, {"type", "work"}, {"partitions", 2}, {"attributes", attributes}};
}

absl::Status CreateStatus(const Json& body, const MetaOptions& options = {}) {
  return SpecFromJson(body, options).status();
}

TEST(QueueMeta, DefaultsAreValidForBothTypes) {
  MetaOptions o;
  for (const char* type : {"stream", "work"}) {
    absl::StatusOr<QueueSpec> spec = SpecFromJson(Json{{"name", "a"}, {"type", type}}, o);
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->partitions, 1u);
    EXPECT_EQ(spec->attributes, o.defaults);
  }
  EXPECT_EQ(o.defaults.dedup_window_ms, 300'000u);  // 5 min
  EXPECT_EQ(o.defaults.max_message_bytes, 256u * 1024);
}

// Every integer attribute: its minimum and maximum pass, one past each fails with the field.
TEST(QueueMeta, EveryIntegerAttributeBounds) {
  MetaOptions o;
  int checked = 0;
  for (const AttributeInfo& a : Attributes()) {
    if (a.kind != AttrKind::kUint) continue;
    const uint64_t max = a.max != 0 ? a.max : o.max_delay_ms;
    const char* type = a.applies == AppliesTo::kStream ? "stream" : "work";
    const std::string field = "attributes." + std::string(a.name);
    auto body = [&](uint64_t v) {
      return Json{{"name", "q"}, {"type", type}, {"attributes", {{std::string(a.name), v}}}};
    };
    EXPECT_TRUE(CreateStatus(body(a.min), o).ok()) << a.name << " at min: " << CreateStatus(body(a.min), o);
    EXPECT_TRUE(CreateStatus(body(max), o).ok()) << a.name << " at max: " << CreateStatus(body(max), o);
    ExpectError(CreateStatus(body(max + 1), o), absl::StatusCode::kInvalidArgument, field,
                std::string(a.name) + " must be between");
    if (a.min > 0) {
      ExpectError(CreateStatus(body(a.min - 1), o), absl::StatusCode::kInvalidArgument, field,
                  std::string(a.name) + " must be between");
    }
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

TEST(QueueMeta, DocumentedLimits) {
  MetaOptions o;
  ExpectError(CreateStatus(WorkBody({{"max_message_bytes", kMiB + 1}})),
              absl::StatusCode::kInvalidArgument, "attributes.max_message_bytes", "1048576");
  EXPECT_TRUE(CreateStatus(WorkBody({{"visibility_timeout_ms", 12 * 3600 * 1000}})).ok());
  ExpectError(CreateStatus(WorkBody({{"visibility_timeout_ms", 12 * 3600 * 1000 + 1}})),
              absl::StatusCode::kInvalidArgument, "attributes.visibility_timeout_ms", "43200000 ms");
  ExpectError(CreateStatus(WorkBody({{"receive_wait_ms", 20'001}})),
              absl::StatusCode::kInvalidArgument, "attributes.receive_wait_ms");
  ExpectError(CreateStatus(WorkBody({{"priority_levels", 17}})), absl::StatusCode::kInvalidArgument,
              "attributes.priority_levels");
  ExpectError(CreateStatus(WorkBody({{"priority_levels", 0}})), absl::StatusCode::kInvalidArgument,
              "attributes.priority_levels");
  ExpectError(CreateStatus(WorkBody({{"delay_ms", 15 * 60 * 1000 + 1}})),
              absl::StatusCode::kInvalidArgument, "attributes.delay_ms");
}

TEST(QueueMeta, DelayCapIsConfigurable) {
  MetaOptions o;
  o.max_delay_ms = 60'000;
  EXPECT_TRUE(CreateStatus(WorkBody({{"delay_ms", 60'000}}), o).ok());
  ExpectError(CreateStatus(WorkBody({{"delay_ms", 60'001}}), o), absl::StatusCode::kInvalidArgument,
              "attributes.delay_ms", "between 0 and 60000");
  o.max_delay_ms = 3'600'000;
  EXPECT_TRUE(CreateStatus(WorkBody({{"delay_ms", 3'600'000}}), o).ok());
}

TEST(QueueMeta, EnumsAndTheirChoices) {
  for (const char* d : {"none", "write", "dsync"}) {
    EXPECT_TRUE(CreateStatus(WorkBody({{"durability", d}})).ok()) << d;
  }
  ExpectError(CreateStatus(WorkBody({{"durability", "fsync"}})), absl::StatusCode::kInvalidArgument,
              "attributes.durability", "\"none\", \"write\", \"dsync\"");
  ExpectError(CreateStatus(WorkBody({{"replication", "semi"}})), absl::StatusCode::kInvalidArgument,
              "attributes.replication", "\"async\", \"sync\"");
  ExpectError(CreateStatus(WorkBody({{"replication_degrade", true}})),
              absl::StatusCode::kInvalidArgument, "attributes.replication_degrade", "string");
  absl::StatusOr<QueueSpec> s =
      SpecFromJson(WorkBody({{"replication", "sync"}, {"replication_degrade", "allow"}}), {});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->attributes.replication, ReplicationMode::kSync);
  EXPECT_EQ(s->attributes.replication_degrade, Degrade::kAllow);
  ExpectError(CreateStatus(Json{{"name", "q"}, {"type", "topic"}}),
              absl::StatusCode::kInvalidArgument, "type", "\"stream\", \"work\"");
}

TEST(QueueMeta, TypeErrorsNameTheField) {
  ExpectError(CreateStatus(WorkBody({{"ttl_ms", "10"}})), absl::StatusCode::kInvalidArgument,
              "attributes.ttl_ms", "must be a number");
  ExpectError(CreateStatus(WorkBody({{"ttl_ms", -1}})), absl::StatusCode::kInvalidArgument,
              "attributes.ttl_ms", "must not be negative");
  ExpectError(CreateStatus(WorkBody({{"ttl_ms", 1.5}})), absl::StatusCode::kInvalidArgument,
              "attributes.ttl_ms", "must be an integer");
  ExpectError(CreateStatus(WorkBody({{"fifo", 1}})), absl::StatusCode::kInvalidArgument,
              "attributes.fifo", "true or false");
  ExpectError(CreateStatus(WorkBody({{"dead_letter_queue", 7}})),
              absl::StatusCode::kInvalidArgument, "attributes.dead_letter_queue", "string");
  ExpectError(CreateStatus(WorkBody({{"ttl_ms", 1ull << 40}})), absl::StatusCode::kInvalidArgument,
              "attributes.ttl_ms", "out of range");
  ExpectError(CreateStatus(Json{{"name", "q"}, {"type", "work"}, {"attributes", 3}}),
              absl::StatusCode::kInvalidArgument, "attributes", "must be an object");
  ExpectError(CreateStatus(Json::array()), absl::StatusCode::kInvalidArgument, "", "JSON object");
}

TEST(QueueMeta, UnknownAndServerOwnedFields) {
  absl::Status st = CreateStatus(WorkBody({{"visibility_timeout", 5}}));
  ExpectError(st, absl::StatusCode::kInvalidArgument, "attributes.visibility_timeout");
  EXPECT_EQ(ErrorCodeOf(st), "unknown_field");
  st = CreateStatus(Json{{"name", "q"}, {"type", "work"}, {"colour", "red"}});
  ExpectError(st, absl::StatusCode::kInvalidArgument, "colour");
  EXPECT_EQ(ErrorCodeOf(st), "unknown_field");
  ExpectError(CreateStatus(Json{{"name", "q"}, {"type", "work"}, {"id", 3}}),
              absl::StatusCode::kInvalidArgument, "id", "set by the server");
  ExpectError(CreateStatus(Json{{"type", "work"}}), absl::StatusCode::kInvalidArgument, "name",
              "required");
  ExpectError(CreateStatus(Json{{"name", "q"}}), absl::StatusCode::kInvalidArgument, "type",
              "required");
}

TEST(QueueMeta, Names) {
  EXPECT_TRUE(ValidateName("a").ok());
  EXPECT_TRUE(ValidateName("Orders_v2.eu-west-1").ok());
  EXPECT_TRUE(ValidateName(std::string(64, 'x')).ok());
  ExpectError(ValidateName(""), absl::StatusCode::kInvalidArgument, "name", "1 to 64");
  ExpectError(ValidateName(std::string(65, 'x')), absl::StatusCode::kInvalidArgument, "name");
  ExpectError(ValidateName("-a"), absl::StatusCode::kInvalidArgument, "name", "[A-Za-z0-9]");
  ExpectError(ValidateName("a/b"), absl::StatusCode::kInvalidArgument, "name");
  ExpectError(ValidateName("a b"), absl::StatusCode::kInvalidArgument, "name");
  ExpectError(CreateStatus(Json{{"name", "a%2Fb"}, {"type", "work"}}),
              absl::StatusCode::kInvalidArgument, "name");
}

TEST(QueueMeta, Partitions) {
  ExpectError(CreateStatus(Json{{"name", "q"}, {"type", "work"}, {"partitions", 0}}),
              absl::StatusCode::kInvalidArgument, "partitions", "between 1 and 4096");
  ExpectError(CreateStatus(Json{{"name", "q"}, {"type", "work"}, {"partitions", 4097}}),
              absl::StatusCode::kInvalidArgument, "partitions");
  EXPECT_TRUE(CreateStatus(Json{{"name", "q"}, {"type", "work"}, {"partitions", 4096}}).ok());
}

TEST(QueueMeta, AttributesOfTheOtherQueueType) {
  ExpectError(CreateStatus(Json{{"name", "s"}, {"type", "stream"},
                                {"attributes", {{"visibility_timeout_ms", 1000}}}}),
              absl::StatusCode::kInvalidArgument, "attributes.visibility_timeout_ms",
              "applies to work queues only");
  ExpectError(CreateStatus(Json{{"name", "s"}, {"type", "stream"}, {"attributes", {{"fifo", true}}}}),
              absl::StatusCode::kInvalidArgument, "attributes.fifo", "work queues only");
  ExpectError(CreateStatus(WorkBody({{"retention_ms", 1000}})), absl::StatusCode::kInvalidArgument,
              "attributes.retention_ms", "applies to stream queues only");
  // Stating the default of an attribute that does not apply is harmless.
  EXPECT_TRUE(CreateStatus(Json{{"name", "s"}, {"type", "stream"},
                                {"attributes", {{"visibility_timeout_ms", 30'000}}}})
                  .ok());
}

TEST(QueueMeta, DeadLetterRules) {
  ExpectError(CreateStatus(WorkBody({{"dead_letter_queue", "q"}, {"max_receive_count", 3}})),
              absl::StatusCode::kInvalidArgument, "attributes.dead_letter_queue", "itself");
  ExpectError(CreateStatus(WorkBody({{"dead_letter_queue", "dlq"}})),
              absl::StatusCode::kInvalidArgument, "attributes.max_receive_count", "at least 1");
  ExpectError(CreateStatus(WorkBody({{"dead_letter_queue", "bad name"}, {"max_receive_count", 3}})),
              absl::StatusCode::kInvalidArgument, "attributes.dead_letter_queue", "not a queue name");
  EXPECT_TRUE(CreateStatus(WorkBody({{"dead_letter_queue", "dlq"}, {"max_receive_count", 3}})).ok());
  // Dropping after N receives, without a DLQ, is allowed.
  EXPECT_TRUE(CreateStatus(WorkBody({{"max_receive_count", 3}})).ok());
}

TEST(QueueMeta, FifoHasOnePriorityLevel) {
  ExpectError(CreateStatus(WorkBody({{"fifo", true}, {"priority_levels", 2}})),
              absl::StatusCode::kInvalidArgument, "attributes.priority_levels", "fifo");
  EXPECT_TRUE(CreateStatus(WorkBody({{"fifo", true}, {"dedup_window_ms", 60'000}})).ok());
}

TEST(QueueMeta, ContentDedup) {
  EXPECT_FALSE(MetaOptions{}.defaults.content_dedup);  // off unless the queue asks
  const AttributeInfo* info = FindAttribute("content_dedup");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->kind, AttrKind::kBool);
  EXPECT_TRUE(info->live);
  absl::StatusOr<QueueSpec> s = SpecFromJson(WorkBody({{"content_dedup", true}}), MetaOptions{});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->attributes.content_dedup);
  EXPECT_FALSE(s->attributes.fifo);  // the bool accessors are per member
  EXPECT_TRUE(CreateStatus(Json{{"name", "s"}, {"type", "stream"},
                                {"attributes", {{"content_dedup", true}}}}).ok());  // both types
  ExpectError(CreateStatus(WorkBody({{"content_dedup", "yes"}})),
              absl::StatusCode::kInvalidArgument, "attributes.content_dedup", "true or false");
  // Without a window there is nothing to deduplicate within: said, not silently ignored.
  ExpectError(CreateStatus(WorkBody({{"content_dedup", true}, {"dedup_window_ms", 0}})),
              absl::StatusCode::kInvalidArgument, "attributes.content_dedup", "dedup_window_ms");
  EXPECT_EQ(*ParseAttributeValue("content_dedup", "true"), true);
  ExpectError(ParseAttributeValue("content_dedup", "1").status(),
              absl::StatusCode::kInvalidArgument, "attributes.content_dedup");
  absl::StatusOr<AttributePatch> p = PatchFromJson(Json{{"attributes", {{"content_dedup", true}}}});
  ASSERT_TRUE(p.ok());
  QueueAttributes a;
  ApplyPatch(*p, &a);
  EXPECT_TRUE(a.content_dedup);
  EXPECT_FALSE(a.fifo);
  EXPECT_EQ(FirstDifference(QueueAttributes{}, a), "content_dedup");
  // A queue stored before the attribute existed has none: it reads back as off.
  QueueMeta old;
  old.id = 3;
  old.spec.name = "old";
  old.spec.type = QueueType::kWork;
  Json stored = ToJson(old, /*all=*/true);
  ASSERT_EQ(stored["attributes"].erase("content_dedup"), 1u);
  absl::StatusOr<QueueMeta> back = MetaFromJson(stored, MetaOptions{});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->spec.attributes.content_dedup);
  EXPECT_EQ(*back, old);
}

TEST(QueueMeta, JsonRoundTrip) {
  QueueMeta m;
  m.id = 7;
  m.spec.name = "orders";
  m.spec.type = QueueType::kWork;
  m.spec.partitions = 4;
  m.spec.attributes.durability = Durability::kDsync;
  m.spec.attributes.visibility_timeout_ms = 45'000;
  m.spec.attributes.max_receive_count = 5;
  m.spec.attributes.dead_letter_queue = "orders-dlq";
  m.spec.attributes.fifo = true;
  m.spec.attributes.content_dedup = true;
  m.spec.attributes.replication = ReplicationMode::kSync;
  m.created_at_ms = 1000;
  m.updated_at_ms = 2000;
  m.purge_generation = 3;
  m.purged_at_ms = 1500;
  absl::StatusOr<QueueMeta> back = MetaFromJson(ToJson(m, /*all=*/true), MetaOptions{});
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
  // The API view leaves out attributes of the other type.
  const Json view = ToJson(m);
  EXPECT_TRUE(view["attributes"].contains("visibility_timeout_ms"));
  EXPECT_FALSE(view["attributes"].contains("retention_ms"));
  EXPECT_EQ(view["attributes"]["durability"], "dsync");
  EXPECT_EQ(view["id"], 7);
  // And reading it back yields the same queue.
  absl::StatusOr<QueueMeta> from_view = MetaFromJson(view, MetaOptions{});
  ASSERT_TRUE(from_view.ok());
  EXPECT_EQ(*from_view, m);
}

TEST(QueueMeta, Patch) {
  absl::StatusOr<AttributePatch> p =
      PatchFromJson(Json{{"attributes", {{"ttl_ms", 5000}, {"replication", "sync"}}}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->fields, (std::vector<std::string>{"replication", "ttl_ms"}));  // JSON objects sort
  QueueAttributes a;
  ApplyPatch(*p, &a);
  EXPECT_EQ(a.ttl_ms, 5000u);
  EXPECT_EQ(a.replication, ReplicationMode::kSync);
  EXPECT_EQ(a.visibility_timeout_ms, 30'000u);  // untouched
  absl::Status st = PatchFromJson(Json{{"partitions", 3}}).status();
  ExpectError(st, absl::StatusCode::kInvalidArgument, "partitions", "cannot change");
  EXPECT_EQ(ErrorCodeOf(st), "immutable");
  ExpectError(PatchFromJson(Json{{"attributes", {{"nope", 1}}}}).status(),
              absl::StatusCode::kInvalidArgument, "attributes.nope");
  ExpectError(PatchFromJson(Json::object()).status(), absl::StatusCode::kInvalidArgument,
              "attributes", "required");
  EXPECT_TRUE(SameAttribute("ttl_ms", a, a));
  QueueAttributes b = a;
  b.fifo = true;
  EXPECT_FALSE(SameAttribute("fifo", a, b));
  EXPECT_EQ(FirstDifference(a, b), "fifo");
  EXPECT_EQ(FirstDifference(a, a), "");
}

TEST(QueueMeta, AttrValueParsing) {
  auto v = [](const char* k, const char* t) { return ParseAttributeValue(k, t); };
  EXPECT_EQ(*v("visibility_timeout_ms", "500"), 500);
  EXPECT_EQ(*v("visibility_timeout_ms", "500ms"), 500);
  EXPECT_EQ(*v("visibility_timeout_ms", "30s"), 30'000);
  EXPECT_EQ(*v("delay_ms", "5m"), 300'000);
  EXPECT_EQ(*v("visibility_timeout_ms", "12h"), 43'200'000);
  EXPECT_EQ(*v("retention_ms", "7d"), 604'800'000);
  EXPECT_EQ(*v("max_message_bytes", "1MiB"), 1 << 20);
  EXPECT_EQ(*v("max_message_bytes", "64KiB"), 64 << 10);
  EXPECT_EQ(*v("retention_bytes", "2GiB"), 2ull << 30);
  EXPECT_EQ(*v("fifo", "true"), true);
  EXPECT_EQ(*v("durability", "dsync"), "dsync");
  EXPECT_EQ(*v("dead_letter_queue", "dlq"), "dlq");
  ExpectError(v("fifo", "yes").status(), absl::StatusCode::kInvalidArgument, "attributes.fifo");
  ExpectError(v("max_message_bytes", "1s").status(), absl::StatusCode::kInvalidArgument,
              "attributes.max_message_bytes", "KiB");
  ExpectError(v("priority_levels", "2x").status(), absl::StatusCode::kInvalidArgument,
              "attributes.priority_levels");
  ExpectError(v("ttl_ms", "").status(), absl::StatusCode::kInvalidArgument, "attributes.ttl_ms");
  ExpectError(v("ttl_ms", "99999999999999999999d").status(), absl::StatusCode::kInvalidArgument,
              "attributes.ttl_ms");
  absl::Status st = v("colour", "red").status();
  ExpectError(st, absl::StatusCode::kInvalidArgument, "attributes.colour", "known:");
  EXPECT_EQ(ErrorCodeOf(st), "unknown_field");
}

TEST(QueueMeta, LayoutDeclarations) {
  hwconf::Layout layout;
  layout.storage.durability = Durability::kDsync;
  layout.replication.mode = ReplicationMode::kSync;
  const MetaOptions o = MetaOptionsFromLayout(layout);
  EXPECT_EQ(o.defaults.durability, Durability::kDsync);
  EXPECT_EQ(o.defaults.replication, ReplicationMode::kSync);

  hwconf::QueueDecl d;
  d.name = "jobs";
  d.type = QueueType::kWork;
  d.partitions = 3;
  d.visibility_timeout_ms = 10'000;
  d.max_message_bytes = 4096;
  d.max_receive_count = 4;
  d.dead_letter_queue = "jobs-dlq";
  const QueueSpec spec = SpecFromQueueDecl(d, o);
  EXPECT_TRUE(Validate(spec, o).ok());
  EXPECT_EQ(spec.attributes.durability, Durability::kDsync);
  QueueMeta m;
  m.id = 1;
  m.spec = spec;
  const hwconf::QueueDecl back = ToQueueDecl(m);
  EXPECT_EQ(back.name, d.name);
  EXPECT_EQ(back.type, d.type);
  EXPECT_EQ(back.partitions, d.partitions);
  EXPECT_EQ(back.visibility_timeout_ms, d.visibility_timeout_ms);
  EXPECT_EQ(back.max_message_bytes, d.max_message_bytes);
  EXPECT_EQ(back.max_receive_count, d.max_receive_count);
  EXPECT_EQ(back.dead_letter_queue, d.dead_letter_queue);

  // A stream declaration carries no work-queue attributes into the spec.
  hwconf::QueueDecl s;
  s.name = "ticks";
  s.visibility_timeout_ms = 1;
  EXPECT_TRUE(Validate(SpecFromQueueDecl(s, o), o).ok());
}

TEST(QueueMeta, HttpStatusOfErrors) {
  EXPECT_EQ(HttpStatusOf(FieldError("x", "bad")), 400);
  EXPECT_EQ(HttpStatusOf(absl::NotFoundError("x")), 404);
  EXPECT_EQ(HttpStatusOf(absl::AlreadyExistsError("x")), 409);
  EXPECT_EQ(HttpStatusOf(absl::FailedPreconditionError("x")), 409);
  EXPECT_EQ(HttpStatusOf(absl::UnavailableError("x")), 503);
  EXPECT_EQ(HttpStatusOf(absl::InternalError("x")), 500);
  EXPECT_EQ(ErrorFieldOf(PrefixField(FieldError("b", "m"), "a")), "a.b");
  EXPECT_EQ(ErrorFieldOf(PrefixField(FieldError("", "m"), "a")), "a");
}

}  // namespace
}  // namespace sluice::control
