#include "control/etcd_client.h"

#include <charconv>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "control/absl_view.h"

namespace sluice::control {
namespace {

using Json = nlohmann::json;

std::string B64(std::string_view s) { return absl::Base64Escape(A(s)); }

// The gateway writes int64 fields as decimal strings (proto3 JSON); accept numbers too.
std::optional<int64_t> Int64(const Json& j) {
  if (j.is_number_integer()) return j.get<int64_t>();
  if (!j.is_string()) return std::nullopt;
  const std::string& s = j.get_ref<const std::string&>();
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// A field that proto3 JSON leaves out when it is zero.
absl::StatusOr<int64_t> Int64Field(const Json& obj, const char* name, std::string_view call) {
  auto it = obj.find(name);
  if (it == obj.end()) return 0;
  std::optional<int64_t> v = Int64(*it);
  if (!v) return absl::InvalidArgumentError(absl::StrCat("etcd ", A(call), ": field ", name,
                                                         " is not an integer: ", it->dump()));
  return *v;
}

absl::StatusOr<Json> Parse(std::string_view call, std::string_view body) {
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("etcd ", A(call), ": the answer is not a JSON "
                                                   "object: ", A(body.substr(0, 200))));
  }
  // Unary calls answer {"error": "...", "code": N, "message": ...}; the streaming keep-alive
  // answers {"error": {"grpc_code": N, "message": ...}}.
  if (auto e = j.find("error"); e != j.end()) {
    std::string message = e->is_string() ? e->get<std::string>() : e->value("message", e->dump());
    return absl::UnavailableError(absl::StrCat("etcd ", A(call), ": ", message));
  }
  return j;
}


}  // namespace

namespace etcd_json {

std::string GrantRequest(int64_t ttl_s) {
  return Json{{"TTL", std::to_string(ttl_s)}, {"ID", "0"}}.dump();
}
std::string LeaseIdRequest(int64_t lease) { return Json{{"ID", std::to_string(lease)}}.dump(); }
std::string RangeRequest(std::string_view key) { return Json{{"key", B64(key)}}.dump(); }

std::string TxnRequest(const std::vector<EtcdExpect>& expect, const std::vector<EtcdPut>& puts) {
  // A key that does not exist compares as mod_revision 0 (etcd compares MOD, CREATE and
  // VERSION of a missing key against zero).
  Json compare = Json::array();
  for (const EtcdExpect& e : expect) {
    compare.push_back(Json{{"key", B64(e.key)}, {"target", "MOD"}, {"result", "EQUAL"},
                           {"mod_revision", std::to_string(e.mod_revision)}});
  }
  Json success = Json::array();
  for (const EtcdPut& p : puts) {
    success.push_back(Json{{"request_put", {{"key", B64(p.key)}, {"value", B64(p.value)},
                                            {"lease", std::to_string(p.lease)}}}});
  }
  return Json{{"compare", compare}, {"success", success}}.dump();
}

absl::StatusOr<int64_t> GrantResponse(std::string_view body) {
  auto j = Parse("lease grant", body);
  if (!j.ok()) return j.status();
  auto id = Int64Field(*j, "ID", "lease grant");
  if (!id.ok()) return id.status();
  if (*id == 0) return absl::InvalidArgumentError("etcd lease grant: the answer has no lease ID");
  return *id;
}

absl::StatusOr<int64_t> KeepAliveResponse(std::string_view body) {
  auto j = Parse("lease keepalive", body);
  if (!j.ok()) return j.status();
  // A stream of one message: {"result": {"ID": ..., "TTL": ...}}; TTL left out (0) = expired.
  auto r = j->find("result");
  if (r == j->end() || !r->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("etcd lease keepalive: no result in ",
                                                   A(body.substr(0, 200))));
  }
  auto ttl = Int64Field(*r, "TTL", "lease keepalive");
  if (!ttl.ok()) return ttl.status();
  return std::max<int64_t>(*ttl, 0);
}

absl::StatusOr<std::optional<EtcdKv>> RangeResponse(std::string_view body) {
  auto j = Parse("range", body);
  if (!j.ok()) return j.status();
  auto kvs = j->find("kvs");
  if (kvs == j->end() || kvs->empty()) return std::optional<EtcdKv>();
  if (!kvs->is_array() || !(*kvs)[0].is_object()) {
    return absl::InvalidArgumentError("etcd range: kvs is not an array of objects");
  }
  const Json& kv = (*kvs)[0];
  EtcdKv out;
  if (!absl::Base64Unescape(kv.value("key", ""), &out.key) ||
      !absl::Base64Unescape(kv.value("value", ""), &out.value)) {
    return absl::InvalidArgumentError("etcd range: key or value is not base64");
  }
  auto create = Int64Field(kv, "create_revision", "range");
  auto mod = Int64Field(kv, "mod_revision", "range");
  auto lease = Int64Field(kv, "lease", "range");
  if (!create.ok()) return create.status();
  if (!mod.ok()) return mod.status();
  if (!lease.ok()) return lease.status();
  out.create_revision = *create;
  out.mod_revision = *mod;
  out.lease = *lease;
  return std::optional<EtcdKv>(std::move(out));
}

absl::StatusOr<bool> TxnResponse(std::string_view body) {
  auto j = Parse("txn", body);
  if (!j.ok()) return j.status();
  auto s = j->find("succeeded");  // left out when false
  if (s == j->end()) return false;
  if (!s->is_boolean()) return absl::InvalidArgumentError("etcd txn: succeeded is not a boolean");
  return s->get<bool>();
}

absl::Status HttpError(std::string_view call, int http_status, std::string_view body) {
  if (http_status == 0) {
    return absl::UnavailableError(absl::StrCat("etcd ", A(call), ": no answer (connection "
                                               "refused or timed out)"));
  }
  if (auto j = Parse(call, body); !j.ok()) {
    if (j.status().code() == absl::StatusCode::kUnavailable) {  // it carried an error message
      return absl::UnavailableError(absl::StrCat(j.status().message(), " (HTTP ", http_status, ")"));
    }
  }
  return absl::UnavailableError(absl::StrCat("etcd ", A(call), ": HTTP ", http_status, ": ",
                                             A(body.substr(0, 200))));
}

}  // namespace etcd_json

struct EtcdClient::Impl {
  Impl(const std::string& host, int port) : http(host, port) {}
  httplib::Client http;
};

EtcdClient::EtcdClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdClient::~EtcdClient() = default;

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(std::string_view endpoint,
                                                                int64_t timeout_ms) {
  constexpr std::string_view kScheme = "http://";
  std::string_view hp = endpoint;
  if (hp.substr(0, kScheme.size()) == kScheme) hp.remove_prefix(kScheme.size());
  if (!hp.empty() && hp.back() == '/') hp.remove_suffix(1);
  const size_t colon = hp.rfind(':');
  int port = 0;
  if (colon == std::string_view::npos ||
      std::from_chars(hp.data() + colon + 1, hp.data() + hp.size(), port).ec != std::errc() ||
      port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("etcd endpoint '", A(endpoint),
                                                   "' is not http://host:port"));
  }
  auto impl = std::make_unique<Impl>(std::string(hp.substr(0, colon)), port);
  const time_t sec = static_cast<time_t>(timeout_ms / 1000);
  const time_t usec = static_cast<time_t>((timeout_ms % 1000) * 1000);
  impl->http.set_connection_timeout(sec, usec);
  impl->http.set_read_timeout(sec, usec);
  impl->http.set_write_timeout(sec, usec);
  impl->http.set_keep_alive(true);
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(impl)));
}

absl::StatusOr<std::string> EtcdClient::Post(std::string_view call, const char* path,
                                             const std::string& body) {
  httplib::Result r = impl_->http.Post(path, body, "application/json");
  if (!r) return etcd_json::HttpError(call, 0, "");
  if (r->status != 200) return etcd_json::HttpError(call, r->status, r->body);
  return std::move(r->body);
}

absl::StatusOr<int64_t> EtcdClient::Grant(int64_t ttl_s) {
  auto body = Post("lease grant", "/v3/lease/grant", etcd_json::GrantRequest(ttl_s));
  if (!body.ok()) return body.status();
  return etcd_json::GrantResponse(*body);
}

absl::StatusOr<int64_t> EtcdClient::KeepAlive(int64_t lease) {
  auto body = Post("lease keepalive", "/v3/lease/keepalive", etcd_json::LeaseIdRequest(lease));
  if (!body.ok()) return body.status();
  return etcd_json::KeepAliveResponse(*body);
}

absl::Status EtcdClient::Revoke(int64_t lease) {
  auto body = Post("lease revoke", "/v3/lease/revoke", etcd_json::LeaseIdRequest(lease));
  return body.status();
}

absl::StatusOr<std::optional<EtcdKv>> EtcdClient::Get(std::string_view key) {
  auto body = Post("range", "/v3/kv/range", etcd_json::RangeRequest(key));
  if (!body.ok()) return body.status();
  return etcd_json::RangeResponse(*body);
}

absl::StatusOr<bool> EtcdClient::PutIfUnchanged(const std::vector<EtcdExpect>& expect,
                                                const std::vector<EtcdPut>& puts) {
  auto body = Post("txn", "/v3/kv/txn", etcd_json::TxnRequest(expect, puts));
  if (!body.ok()) return body.status();
  return etcd_json::TxnResponse(*body);
}

}  // namespace sluice::control
