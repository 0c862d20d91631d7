#include "control/rest_server.h"

#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/errors.h"
#include "control/metrics.h"
#include "control/stats_json.h"
#include "control/version.h"
#include "httplib.h"

namespace sluice::control {
namespace {

using httplib::Request;
using httplib::Response;

constexpr char kJson[] = "application/json";
constexpr char kQueuePath[] = R"(/v1/queues/([^/]+))";
constexpr char kPurgePath[] = R"(/v1/queues/([^/]+)/purge)";

void Reply(Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", kJson);
}

Json ErrorBody(std::string_view code, std::string_view message, std::string_view field) {
  Json e{{"code", code}, {"message", message}};
  e["field"] = field.empty() ? Json(nullptr) : Json(field);
  return Json{{"error", std::move(e)}};
}

void ReplyError(Response& res, const absl::Status& st) {
  Reply(res, HttpStatusOf(st),
        ErrorBody(ErrorCodeOf(st), std::string_view(st.message().data(), st.message().size()),
                  ErrorFieldOf(st)));
}

// The request body as JSON, or a bad_json error naming where it broke.
absl::StatusOr<Json> ParseBody(const Request& req) {
  try {
    return Json::parse(req.body);
  } catch (const Json::parse_error& e) {
    return MakeError(absl::StatusCode::kInvalidArgument, errc::kBadJson, "",
                     absl::StrCat("the request body is not JSON: ", e.what()));
  }
}

// A route's handlers by method; any other method answers 405 with Allow.
struct Route {
  std::string pattern;
  std::vector<std::pair<std::string, httplib::Server::Handler>> methods;
};

void Install(httplib::Server& server, const Route& route) {
  std::vector<std::string> allowed;
  for (const auto& [m, h] : route.methods) allowed.push_back(m);
  if (std::find(allowed.begin(), allowed.end(), "GET") != allowed.end()) allowed.push_back("HEAD");
  const std::string allow = absl::StrJoin(allowed, ", ");
  auto handler_for = [&route, allow](const std::string& method) -> httplib::Server::Handler {
    for (const auto& [m, h] : route.methods) if (m == method) return h;
    return [allow, method](const Request& req, Response& res) {
      res.set_header("Allow", allow);
      Reply(res, 405,
            ErrorBody(errc::kMethodNotAllowed,
                      absl::StrCat(method, " is not allowed on ", req.path, "; allowed: ", allow),
                      ""));
    };
  };
  server.Get(route.pattern, handler_for("GET"));
  server.Post(route.pattern, handler_for("POST"));
  server.Put(route.pattern, handler_for("PUT"));
  server.Patch(route.pattern, handler_for("PATCH"));
  server.Delete(route.pattern, handler_for("DELETE"));
}

}  // namespace

absl::Status ParseHostPort(const std::string& text, std::string* host, int* port) {
  const size_t colon = text.rfind(':');
  int p = -1;
  if (colon != std::string::npos && colon > 0) {
    const char* b = text.data() + colon + 1;
    const char* e = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(b, e, p);
    if (ec != std::errc() || ptr != e || b == e) p = -1;
  }
  if (p < 0 || p > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not HOST:PORT"));
  }
  *host = text.substr(0, colon);
  *port = p;
  return absl::OkStatus();
}

RestServer::RestServer(ControlService& service, RestServerOptions options)
    : service_(service), options_(std::move(options)),
      server_(std::make_unique<httplib::Server>()) {
  Routes();
}

RestServer::~RestServer() { Stop(); }

std::map<int, uint64_t> RestServer::ResponseCounts() const {
  std::lock_guard lock(counts_mu_);
  return responses_;
}

std::string RestServer::Metrics() {
  const BackendStats stats = service_.Stats();
  MetricsContext ctx;
  ctx.version = std::string(SluiceVersion());
  ctx.live = service_.backend().Liveness().ok;
  ctx.ready = service_.backend().Readiness().ok;
  ctx.role = service_.backend().Role();
  ctx.http_responses = ResponseCounts();
  return RenderMetrics(stats, *service_.catalog().Snapshot(), ctx);
}

void RestServer::Routes() {
  httplib::Server& s = *server_;
  ControlService& svc = service_;
  const int threads = options_.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.set_payload_max_length(options_.max_body_bytes);
  // httplib's default adds SO_REUSEPORT, which would let a second daemon share the management
  // port silently; keep SO_REUSEADDR only, so a busy address fails Start.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // Counted before the response is written (httplib runs this for every response, errors
  // included), so a client's next request already sees its previous one in /metrics.
  s.set_post_routing_handler([this](const Request&, Response& res) {
    std::lock_guard lock(counts_mu_);
    ++responses_[res.status];
  });
  // Statuses httplib sets itself (404 no route, 413, 400 malformed request) get the JSON body.
  s.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const Request& req, Response& res) -> httplib::Server::HandlerResponse {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string_view code = res.status == 404   ? errc::kNotFound
                            : res.status == 413 ? errc::kPayloadTooLarge
                            : res.status < 500  ? errc::kInvalidArgument
                                                : errc::kInternal;
    std::string msg = res.status == 404   ? absl::StrCat("no such endpoint: ", req.path)
                      : res.status == 413 ? "the request body is too large"
                                          : absl::StrCat("HTTP ", res.status);
    Reply(res, res.status, ErrorBody(code, msg, ""));
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    Reply(res, 500, ErrorBody(errc::kInternal, what, ""));
  });

  Install(s, {"/v1/queues",
              {{"GET",
                [&svc](const Request&, Response& res) {
                  const BackendStats stats = svc.Stats();
                  Json queues = Json::array();
                  for (const QueueMeta& q : svc.catalog().Snapshot()->queues()) {
                    Json j = ToJson(q);
                    const QueueStats* qs = FindQueueStats(stats, q.id);
                    j["stats"] = qs ? ToJson(*qs)["totals"] : Json(nullptr);
                    queues.push_back(std::move(j));
                  }
                  Reply(res, 200, Json{{"queues", std::move(queues)}});
                }},
               {"POST", [&svc](const Request& req, Response& res) {
                  absl::StatusOr<Json> body = ParseBody(req);
                  if (!body.ok()) return ReplyError(res, body.status());
                  absl::StatusOr<QueueSpec> spec = SpecFromJson(*body, svc.catalog().options());
                  if (!spec.ok()) return ReplyError(res, spec.status());
                  absl::StatusOr<CreateResult> r = svc.CreateQueue(*spec);
                  if (!r.ok()) return ReplyError(res, r.status());
                  if (r->created) res.set_header("Location", "/v1/queues/" + r->queue.spec.name);
                  Reply(res, r->created ? 201 : 200, ToJson(r->queue));
                }}}});

  Install(s, {kQueuePath,
              {{"GET",
                [&svc](const Request& req, Response& res) {
                  absl::StatusOr<QueueMeta> q = svc.catalog().Describe(req.matches[1].str());
                  if (!q.ok()) return ReplyError(res, q.status());
                  Json j = ToJson(*q);
                  const BackendStats stats = svc.Stats();
                  const QueueStats* qs = FindQueueStats(stats, q->id);
                  j["stats"] = qs ? ToJson(*qs) : Json(nullptr);
                  Reply(res, 200, j);
                }},
               {"PATCH",
                [&svc](const Request& req, Response& res) {
                  absl::StatusOr<Json> body = ParseBody(req);
                  if (!body.ok()) return ReplyError(res, body.status());
                  absl::StatusOr<AttributePatch> patch = PatchFromJson(*body);
                  if (!patch.ok()) return ReplyError(res, patch.status());
                  absl::StatusOr<QueueMeta> q = svc.UpdateQueue(req.matches[1].str(), *patch);
                  if (!q.ok()) return ReplyError(res, q.status());
                  Reply(res, 200, ToJson(*q));
                }},
               {"DELETE", [&svc](const Request& req, Response& res) {
                  absl::StatusOr<QueueMeta> q = svc.DeleteQueue(req.matches[1].str());
                  if (!q.ok()) return ReplyError(res, q.status());
                  Reply(res, 200, Json{{"deleted", ToJson(*q)}});
                }}}});

  Install(s, {kPurgePath,
              {{"POST", [&svc](const Request& req, Response& res) {
                  if (!req.body.empty()) {
                    absl::StatusOr<Json> body = ParseBody(req);
                    if (!body.ok()) return ReplyError(res, body.status());
                    if (!body->is_object() || !body->empty()) {
                      return ReplyError(res, FieldError("", "purge takes no parameters"));
                    }
                  }
                  absl::StatusOr<QueueMeta> q = svc.PurgeQueue(req.matches[1].str());
                  if (!q.ok()) return ReplyError(res, q.status());
                  Reply(res, 200, ToJson(*q));
                }}}});

  Install(s, {"/v1/stats", {{"GET", [&svc](const Request&, Response& res) {
                              const BackendStats stats = svc.Stats();
                              Reply(res, 200, ToJson(stats, *svc.catalog().Snapshot()));
                            }}}});
  Install(s, {"/health/live", {{"GET", [&svc](const Request&, Response& res) {
                                 const HealthReport h = svc.backend().Liveness();
                                 Reply(res, h.ok ? 200 : 503, ToJson(h));
                               }}}});
  Install(s, {"/health/ready", {{"GET", [&svc](const Request&, Response& res) {
                                  const HealthReport h = svc.backend().Readiness();
                                  Reply(res, h.ok ? 200 : 503, ToJson(h));
                                }}}});
  Install(s, {"/v1/role", {{"GET", [&svc](const Request&, Response& res) {
                             Reply(res, 200, ToJson(svc.backend().Role()));
                           }}}});
  Install(s, {"/v1/promote", {{"POST", [&svc](const Request& req, Response& res) {
                bool force = req.has_param("force") && req.get_param_value("force") != "0" &&
                             req.get_param_value("force") != "false";
                if (!req.body.empty()) {
                  absl::StatusOr<Json> body = ParseBody(req);
                  if (!body.ok()) return ReplyError(res, body.status());
                  if (body->is_object() && body->contains("force")) {
                    if (!(*body)["force"].is_boolean()) {
                      return ReplyError(res, MakeError(absl::StatusCode::kInvalidArgument,
                                                       errc::kInvalidArgument, "force",
                                                       "force must be true or false"));
                    }
                    force = (*body)["force"].get<bool>();
                  }
                }
                absl::StatusOr<uint64_t> epoch = svc.backend().Promote(force);
                if (!epoch.ok()) return ReplyError(res, epoch.status());
                Reply(res, 202, Json{{"promoting", true}, {"epoch", *epoch}, {"force", force}});
              }}}});
  Install(s, {"/v1/version", {{"GET", [&svc](const Request&, Response& res) {
                                Json components = Json::object();
                                for (const auto& [k, v] : svc.backend().Version().components) {
                                  components[k] = v;
                                }
                                Reply(res, 200,
                                      Json{{"version", SluiceVersion()},
                                           {"api", kApiVersion},
                                           {"metadata_store", svc.catalog().StoreDescription()},
                                           {"components", std::move(components)}});
                              }}}});
  Install(s, {"/metrics", {{"GET", [this](const Request&, Response& res) {
                             res.status = 200;
                             res.set_content(Metrics(), kMetricsContentType);
                           }}}});
}

absl::Status RestServer::Start() {
  std::string host;
  int port = 0;
  if (absl::Status st = ParseHostPort(options_.listen, &host, &port); !st.ok()) return st;
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
    if (port_ < 0) port_ = 0;
  } else if (server_->bind_to_port(host, port)) {
    port_ = port;
  }
  if (port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen,
                                               " (address in use or not local?)"));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // Stop() must not race the accept loop's start (httplib's stop() is a no-op before it runs).
  for (int i = 0; i < 5000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::OkStatus();
}

void RestServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace sluice::control
