// The etcd JSON gateway encoding (control/etcd_client.h): requests as etcd 3.4 expects them, and
// responses as it answers (bodies captured from Debian's etcd 3.4.23 with curl).
#include "control/etcd_client.h"

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace sluice::control {
namespace {

using Json = nlohmann::json;

std::string Unb64(const Json& j) {
  std::string out;
  EXPECT_TRUE(absl::Base64Unescape(j.get<std::string>(), &out));
  return out;
}

TEST(EtcdJson, RequestsCarryBase64KeysAndDecimalStrings) {
  Json g = Json::parse(etcd_json::GrantRequest(3));
  EXPECT_EQ(g["TTL"], "3");
  EXPECT_EQ(Json::parse(etcd_json::LeaseIdRequest(7587868612829812739))["ID"],
            "7587868612829812739");  // beyond 2^53: a string keeps it exact
  EXPECT_EQ(Unb64(Json::parse(etcd_json::RangeRequest("/sluice/leader"))["key"]), "/sluice/leader");

  Json c = Json::parse(etcd_json::TxnRequest({{"/k", 0}, {"/k/epoch", 17}},
                                             {{"/k", "{\"epoch\":2}", 42}, {"/k/epoch", "2", 0}}));
  ASSERT_EQ(c["compare"].size(), 2u);
  EXPECT_EQ(c["compare"][0]["target"], "MOD");  // a missing key compares as mod_revision 0
  EXPECT_EQ(c["compare"][0]["result"], "EQUAL");
  EXPECT_EQ(c["compare"][0]["mod_revision"], "0");
  EXPECT_EQ(Unb64(c["compare"][0]["key"]), "/k");
  EXPECT_EQ(c["compare"][1]["mod_revision"], "17");
  EXPECT_EQ(Unb64(c["compare"][1]["key"]), "/k/epoch");
  ASSERT_EQ(c["success"].size(), 2u);
  const Json& put = c["success"][0]["request_put"];
  EXPECT_EQ(Unb64(put["key"]), "/k");
  EXPECT_EQ(Unb64(put["value"]), "{\"epoch\":2}");
  EXPECT_EQ(put["lease"], "42");
  EXPECT_EQ(Unb64(c["success"][1]["request_put"]["value"]), "2");
  EXPECT_EQ(c["success"][1]["request_put"]["lease"], "0");
  EXPECT_FALSE(c.contains("failure"));
}

TEST(EtcdJson, GrantAndKeepAliveAnswers) {
  auto id = etcd_json::GrantResponse(
      R"({"header":{"cluster_id":"15118495548433857066","revision":"1"},"ID":"4111120314003135493","TTL":"2"})");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 4111120314003135493);

  auto ttl = etcd_json::KeepAliveResponse(
      R"({"result":{"header":{"revision":"2"},"ID":"4111120314003135495","TTL":"2"}})");
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_EQ(*ttl, 2);
  // An expired lease: etcd leaves TTL out (zero) — not an error, the lease is gone.
  auto gone = etcd_json::KeepAliveResponse(
      R"({"result":{"header":{"revision":"3"},"ID":"4111120314003135495"}})");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(*gone, 0);

  EXPECT_FALSE(etcd_json::GrantResponse(R"({"header":{}})").ok());  // no ID
  EXPECT_FALSE(etcd_json::KeepAliveResponse(R"({"header":{}})").ok());
  EXPECT_FALSE(etcd_json::KeepAliveResponse(R"({"result":{"TTL":"x"}})").ok());
  auto err = etcd_json::KeepAliveResponse(
      R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}})");
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.status().message().find("no leader"), std::string_view::npos);
}

TEST(EtcdJson, RangeAnswers) {
  auto kv = etcd_json::RangeResponse(
      R"({"header":{"revision":"2"},"kvs":[{"key":"L2s=","create_revision":"2","mod_revision":"5","version":"1","value":"dg==","lease":"4111120314003135495"}],"count":"1"})");
  ASSERT_TRUE(kv.ok()) << kv.status();
  ASSERT_TRUE(kv->has_value());
  EXPECT_EQ((*kv)->key, "/k");
  EXPECT_EQ((*kv)->value, "v");
  EXPECT_EQ((*kv)->create_revision, 2);
  EXPECT_EQ((*kv)->mod_revision, 5);
  EXPECT_EQ((*kv)->lease, 4111120314003135495);

  auto absent = etcd_json::RangeResponse(R"({"header":{"revision":"3"}})");
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_FALSE(absent->has_value());

  EXPECT_FALSE(etcd_json::RangeResponse(R"({"kvs":[{"key":"***","value":"dg=="}]})").ok());
  EXPECT_FALSE(etcd_json::RangeResponse(R"({"kvs":[{"key":"L2s=","mod_revision":true}]})").ok());
  EXPECT_FALSE(etcd_json::RangeResponse("not json").ok());
  EXPECT_FALSE(etcd_json::RangeResponse("[1,2]").ok());
}

TEST(EtcdJson, TxnAnswers) {
  auto won = etcd_json::TxnResponse(
      R"({"header":{"revision":"2"},"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}]})");
  ASSERT_TRUE(won.ok()) << won.status();
  EXPECT_TRUE(*won);
  auto lost = etcd_json::TxnResponse(R"({"header":{"revision":"2"}})");  // false is left out
  ASSERT_TRUE(lost.ok()) << lost.status();
  EXPECT_FALSE(*lost);
  auto err = etcd_json::TxnResponse(
      R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
  ASSERT_FALSE(err.ok());
  EXPECT_NE(err.status().message().find("lease not found"), std::string_view::npos);
  EXPECT_NE(err.status().message().find("txn"), std::string_view::npos);  // names the call
}

TEST(EtcdJson, HttpErrorsSayWhat) {
  absl::Status down = etcd_json::HttpError("range", 0, "");
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(down.message().find("range"), std::string_view::npos);
  absl::Status notfound = etcd_json::HttpError(
      "lease revoke", 404, R"({"error":"etcdserver: requested lease not found","code":5})");
  EXPECT_NE(notfound.message().find("lease not found"), std::string_view::npos);
  EXPECT_NE(notfound.message().find("404"), std::string_view::npos);
}

TEST(EtcdClient, RefusesAnEndpointWithoutAPort) {
  EXPECT_FALSE(EtcdClient::Create("http://127.0.0.1", 500).ok());
  EXPECT_FALSE(EtcdClient::Create("http://127.0.0.1:0", 500).ok());
  EXPECT_TRUE(EtcdClient::Create("http://127.0.0.1:2379/", 500).ok());
}

TEST(EtcdClient, AnUnreachableEndpointIsAnErrorWithinTheTimeout) {
  // Port 1 on loopback: nothing listens (connection refused at once).
  auto c = EtcdClient::Create("http://127.0.0.1:1", 300);
  ASSERT_TRUE(c.ok());
  auto kv = (*c)->Get("/k");
  ASSERT_FALSE(kv.ok());
  EXPECT_EQ(kv.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace sluice::control
