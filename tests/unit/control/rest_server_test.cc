// The REST API on 127.0.0.1 (an ephemeral port) against the fake backend: every endpoint and
// every error status, each error with its JSON body.
#include "control/rest_server.h"

#include "control/fake_backend.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/unit/control/test_util.h"

namespace sluice::control {
namespace {

struct Res {
  int status = 0;
  Json body;
  std::string raw;
  httplib::Headers headers;
};

class RestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = std::move(*Catalog::Open(store_, MetaOptions{}));
    service_ = std::make_unique<ControlService>(*catalog_, backend_);
    ASSERT_TRUE(service_->PublishCurrent().ok());
    server_ = std::make_unique<RestServer>(
        *service_, RestServerOptions{.listen = "127.0.0.1:0", .threads = 2,
                                     .max_body_bytes = 64 * 1024});
    ASSERT_TRUE(server_->Start().ok());
    ASSERT_GT(server_->port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(5, 0);
  }
  void TearDown() override { server_->Stop(); }

  Res Do(const std::string& method, const std::string& path, const std::string& body = "") {
    httplib::Result r = method == "GET"      ? client_->Get(path)
                        : method == "POST"   ? client_->Post(path, body, "application/json")
                        : method == "PATCH"  ? client_->Patch(path, body, "application/json")
                        : method == "PUT"    ? client_->Put(path, body, "application/json")
                        : method == "DELETE" ? client_->Delete(path)
                                             : client_->Options(path);
    EXPECT_TRUE(r) << method << " " << path << ": " << httplib::to_string(r.error());
    if (!r) return {};
    Res out{r->status, Json::parse(r->body, nullptr, false), r->body, r->headers};
    return out;
  }

  // A 4xx/5xx with {"error": {"code": code, "message": non-empty, "field": field or null}}.
  static void ExpectErrorBody(const Res& r, int status, const std::string& code,
                              const std::string& field = "") {
    EXPECT_EQ(r.status, status) << r.raw;
    ASSERT_TRUE(r.body.is_object()) << r.raw;
    ASSERT_TRUE(r.body.contains("error")) << r.raw;
    const Json& e = r.body["error"];
    EXPECT_EQ(e.value("code", ""), code) << r.raw;
    EXPECT_FALSE(e.value("message", "").empty()) << r.raw;
    ASSERT_TRUE(e.contains("field")) << r.raw;
    if (field.empty()) {
      EXPECT_TRUE(e["field"].is_null()) << r.raw;
    } else {
      EXPECT_EQ(e["field"], field) << r.raw;
    }
  }

  Res Create(const Json& body) { return Do("POST", "/v1/queues", body.dump()); }

  MemoryStore store_;
  FakeBackend backend_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<ControlService> service_;
  std::unique_ptr<RestServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

const Json kOrders = {{"name", "orders"},
                      {"type", "work"},
                      {"partitions", 3},
                      {"attributes", {{"visibility_timeout_ms", 45000}}}};

TEST_F(RestTest, CreateIsIdempotentAndConflictsOnDifference) {
  Res r = Create(kOrders);
  EXPECT_EQ(r.status, 201) << r.raw;
  EXPECT_EQ(r.body["name"], "orders");
  EXPECT_EQ(r.body["id"], 1);
  EXPECT_EQ(r.body["attributes"]["visibility_timeout_ms"], 45000);
  EXPECT_EQ(r.body["attributes"]["durability"], "write");
  EXPECT_FALSE(r.body["attributes"].contains("retention_ms"));
  auto loc = r.headers.find("Location");
  ASSERT_NE(loc, r.headers.end());
  EXPECT_EQ(loc->second, "/v1/queues/orders");

  r = Create(kOrders);
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["id"], 1);

  Json other = kOrders;
  other["partitions"] = 4;
  ExpectErrorBody(Create(other), 409, "conflict", "partitions");
  other = kOrders;
  other["attributes"]["visibility_timeout_ms"] = 1000;
  ExpectErrorBody(Create(other), 409, "conflict", "attributes.visibility_timeout_ms");
  EXPECT_EQ(backend_.published()->queues().size(), 1u);
}

TEST_F(RestTest, CreateErrors) {
  ExpectErrorBody(Do("POST", "/v1/queues", "{\"name\": "), 400, "bad_json");
  ExpectErrorBody(Do("POST", "/v1/queues", ""), 400, "bad_json");
  ExpectErrorBody(Do("POST", "/v1/queues", "[1,2]"), 400, "invalid_argument");
  ExpectErrorBody(Create({{"name", "q"}, {"type", "work"}, {"shards", 2}}), 400, "unknown_field",
                  "shards");
  ExpectErrorBody(Create({{"name", "q"}, {"type", "work"}, {"attributes", {{"ttl", 2}}}}), 400,
                  "unknown_field", "attributes.ttl");
  ExpectErrorBody(Create({{"name", "q"}, {"type", "work"}, {"attributes", {{"priority_levels", 17}}}}),
                  400, "invalid_argument", "attributes.priority_levels");
  ExpectErrorBody(Create({{"name", "q"}, {"type", "work"}, {"attributes", {{"ttl_ms", "1h"}}}}), 400,
                  "invalid_argument", "attributes.ttl_ms");
  ExpectErrorBody(Create({{"name", "q q"}, {"type", "work"}}), 400, "invalid_argument", "name");
  ExpectErrorBody(Create({{"name", "q"}}), 400, "invalid_argument", "type");
  ExpectErrorBody(Create({{"name", "q"}, {"type", "work"}, {"partitions", 0}}), 400,
                  "invalid_argument", "partitions");
  ExpectErrorBody(Create({{"name", "q"}, {"type", "work"}, {"id", 9}}), 400, "invalid_argument",
                  "id");
  ExpectErrorBody(Create({{"name", "q"},
                          {"type", "work"},
                          {"attributes", {{"dead_letter_queue", "none-such"},
                                          {"max_receive_count", 2}}}}),
                  400, "invalid_argument", "attributes.dead_letter_queue");
  EXPECT_TRUE(catalog_->List().empty());
}

TEST_F(RestTest, ListAndDescribeWithLiveStats) {
  ASSERT_EQ(Create(kOrders).status, 201);
  ASSERT_EQ(Create({{"name", "ticks"}, {"type", "stream"}}).status, 201);
  Res r = Do("GET", "/v1/queues");
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.body["queues"].size(), 2u);
  EXPECT_EQ(r.body["queues"][0]["name"], "orders");
  EXPECT_EQ(r.body["queues"][1]["type"], "stream");
  EXPECT_TRUE(r.body["queues"][0]["stats"].contains("depth"));

  r = Do("GET", "/v1/queues/orders");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["partitions"], 3);
  const Json& stats = r.body["stats"];
  ASSERT_EQ(stats["partitions"].size(), 3u);
  for (const char* k : {"depth", "in_flight", "low_offset", "next_offset", "durable_offset",
                        "messages_in_per_s", "bytes_on_disk", "lcore", "shard"}) {
    EXPECT_TRUE(stats["partitions"][0].contains(k)) << k;
  }
  EXPECT_EQ(stats["partitions"][2]["partition"], 2);
  EXPECT_EQ(stats["totals"]["in_flight"], 9);  // 3 per work partition in the fake

  ExpectErrorBody(Do("GET", "/v1/queues/nope"), 404, "not_found", "name");
}

TEST_F(RestTest, Update) {
  ASSERT_EQ(Create(kOrders).status, 201);
  Res r = Do("PATCH", "/v1/queues/orders",
             Json{{"attributes", {{"ttl_ms", 60000}, {"replication", "sync"}}}}.dump());
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["attributes"]["ttl_ms"], 60000);
  EXPECT_EQ(r.body["attributes"]["replication"], "sync");
  EXPECT_EQ(backend_.published()->Find("orders")->spec.attributes.ttl_ms, 60000u);

  ExpectErrorBody(Do("PATCH", "/v1/queues/orders", R"({"attributes": {"fifo": true}})"), 400,
                  "immutable", "attributes.fifo");
  ExpectErrorBody(Do("PATCH", "/v1/queues/orders", R"({"partitions": 5})"), 400, "immutable",
                  "partitions");
  ExpectErrorBody(Do("PATCH", "/v1/queues/orders", R"({"attributes": {"ttl_ms": -1}})"), 400,
                  "invalid_argument", "attributes.ttl_ms");
  ExpectErrorBody(Do("PATCH", "/v1/queues/orders", R"({"attributes": {"colour": 1}})"), 400,
                  "unknown_field", "attributes.colour");
  ExpectErrorBody(Do("PATCH", "/v1/queues/orders", "nope"), 400, "bad_json");
  ExpectErrorBody(Do("PATCH", "/v1/queues/orders", "{}"), 400, "invalid_argument", "attributes");
  ExpectErrorBody(Do("PATCH", "/v1/queues/nope", R"({"attributes": {"ttl_ms": 1}})"), 404,
                  "not_found", "name");
}

TEST_F(RestTest, PurgeAndDelete) {
  ASSERT_EQ(Create(kOrders).status, 201);
  Res r = Do("POST", "/v1/queues/orders/purge");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["purge_generation"], 1);
  EXPECT_EQ(backend_.purged(), std::vector<std::string>{"orders"});
  EXPECT_EQ(Do("POST", "/v1/queues/orders/purge", "{}").status, 200);
  ExpectErrorBody(Do("POST", "/v1/queues/orders/purge", R"({"all": true})"), 400,
                  "invalid_argument");
  ExpectErrorBody(Do("POST", "/v1/queues/nope/purge"), 404, "not_found", "name");

  r = Do("DELETE", "/v1/queues/orders");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["deleted"]["name"], "orders");
  EXPECT_EQ(backend_.published()->Find("orders"), nullptr);
  ExpectErrorBody(Do("DELETE", "/v1/queues/orders"), 404, "not_found", "name");
}

TEST_F(RestTest, DeletingAReferencedDeadLetterQueueConflicts) {
  ASSERT_EQ(Create({{"name", "dlq"}, {"type", "work"}}).status, 201);
  ASSERT_EQ(Create({{"name", "jobs"},
                    {"type", "work"},
                    {"attributes", {{"dead_letter_queue", "dlq"}, {"max_receive_count", 3}}}})
                .status,
            201);
  ExpectErrorBody(Do("DELETE", "/v1/queues/dlq"), 409, "conflict", "name");
}

TEST_F(RestTest, MethodNotAllowed) {
  struct Case {
    const char* method;
    const char* path;
    const char* allow;
  };
  const Case cases[] = {
      {"PUT", "/v1/queues", "GET, POST, HEAD"},
      {"DELETE", "/v1/queues", "GET, POST, HEAD"},
      {"POST", "/v1/queues/orders", "GET, PATCH, DELETE, HEAD"},
      {"PUT", "/v1/queues/orders", "GET, PATCH, DELETE, HEAD"},
      {"GET", "/v1/queues/orders/purge", "POST"},
      {"DELETE", "/metrics", "GET, HEAD"},
      {"POST", "/health/live", "GET, HEAD"},
      {"POST", "/health/ready", "GET, HEAD"},
      {"PATCH", "/v1/role", "GET, HEAD"},
      {"POST", "/v1/version", "GET, HEAD"},
      {"POST", "/v1/stats", "GET, HEAD"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.method) + " " + c.path);
    Res r = Do(c.method, c.path, "{}");
    ExpectErrorBody(r, 405, "method_not_allowed");
    auto allow = r.headers.find("Allow");
    ASSERT_NE(allow, r.headers.end());
    EXPECT_EQ(allow->second, c.allow);
  }
}

TEST_F(RestTest, UnknownPathAndOversizedBody) {
  ExpectErrorBody(Do("GET", "/v2/queues"), 404, "not_found");
  ExpectErrorBody(Do("GET", "/v1/queues/a/b/c"), 404, "not_found");
  ExpectErrorBody(Do("POST", "/v1/queues", std::string(100 * 1024, ' ')), 413,
                  "payload_too_large");
}

TEST_F(RestTest, Health) {
  Res r = Do("GET", "/health/live");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body["status"], "ok");
  r = Do("GET", "/health/ready");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body["checks"].size(), 2u);
  backend_.SetReady(false);
  r = Do("GET", "/health/ready");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body["status"], "failing");
  EXPECT_EQ(r.body["checks"][0]["ok"], false);
  backend_.SetLive(false);
  EXPECT_EQ(Do("GET", "/health/live").status, 503);
}

TEST_F(RestTest, RoleVersionStats) {
  ASSERT_EQ(Create(kOrders).status, 201);
  Res r = Do("GET", "/v1/role");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["role"], "primary");
  EXPECT_EQ(r.body["epoch"], 3);
  r = Do("GET", "/v1/version");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body["version"], "0.1.0");
  EXPECT_EQ(r.body["api"], "v1");
  EXPECT_EQ(r.body["metadata_store"], "memory");
  EXPECT_EQ(r.body["components"]["dataplane"], "fake");
  r = Do("GET", "/v1/stats");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["queues"][0]["name"], "orders");
  EXPECT_EQ(r.body["queues"][0]["partitions"].size(), 3u);
  EXPECT_EQ(r.body["lcores"].size(), 2u);
  EXPECT_EQ(r.body["lcores"][0]["drops"]["bad_udp_checksum"], 2);
  EXPECT_EQ(r.body["published_version"], 1);
  EXPECT_EQ(r.body["ack_latency_seconds"]["counts"].size(), 5u);
}

TEST_F(RestTest, Metrics) {
  ASSERT_EQ(Create(kOrders).status, 201);
  httplib::Result r = client_->Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& m = r->body;
  for (const char* line :
       {"# TYPE sluice_partition_depth_messages gauge\n",
        "# TYPE sluice_partition_messages_in_total counter\n",
        "# TYPE sluice_lcore_drops_total counter\n",
        "# TYPE sluice_ack_latency_seconds histogram\n",
        "# TYPE sluice_lcore_ack_latency_seconds histogram\n",
        "# TYPE sluice_lcore_batch_messages histogram\n",
        "# TYPE sluice_queue_messages_in_total counter\n",
        "# TYPE sluice_partition_messages_in_per_second gauge\n",
        "sluice_queue_info{queue=\"orders\",id=\"1\",type=\"work\"} 1\n",
        "sluice_ack_latency_seconds_bucket{le=\"+Inf\"} 100\n",
        "sluice_ack_latency_seconds_count 100\n",
        "sluice_lcore_drops_total{lcore=\"1\",reason=\"bad_udp_checksum\"} 2\n",
        "sluice_ready 1\n", "sluice_build_info{version=\"0.1.0\"} 1\n"}) {
    EXPECT_NE(m.find(line), std::string::npos) << "missing: " << line << "\nin:\n" << m;
  }
  // Responses are counted (the create above at least).
  EXPECT_NE(m.find("sluice_control_http_responses_total{code=\"201\"} 1\n"), std::string::npos);
}

TEST_F(RestTest, PublicationFailureIs503) {
  backend_.FailNextPublish(absl::InternalError("table build failed"));
  ExpectErrorBody(Create(kOrders), 503, "unavailable");
  EXPECT_EQ(Do("GET", "/v1/queues/orders").status, 404);  // rolled back
}

TEST_F(RestTest, StoreFailureIs503) {
  store_.FailNextSaves(1);
  ExpectErrorBody(Create(kOrders), 503, "unavailable");
  EXPECT_EQ(Create(kOrders).status, 201);
}

TEST(RestServerStart, AddressInUseAndBadAddress) {
  MemoryStore store;
  FakeBackend backend;
  auto catalog = std::move(*Catalog::Open(store, {}));
  ControlService service(*catalog, backend);
  RestServer first(service, {.listen = "127.0.0.1:0"});
  ASSERT_TRUE(first.Start().ok());
  RestServer second(service, {.listen = "127.0.0.1:" + std::to_string(first.port())});
  EXPECT_EQ(second.Start().code(), absl::StatusCode::kUnavailable);
  RestServer third(service, {.listen = "localhost"});
  EXPECT_EQ(third.Start().code(), absl::StatusCode::kInvalidArgument);
  first.Stop();
  first.Stop();  // idempotent
}

}  // namespace
}  // namespace sluice::control
