// The REST/JSON management API and /metrics (docs/control.md), served by cpp-httplib on its own
// threads (one accept thread, a small worker pool). Every change goes through ControlService;
// every bad request gets a 4xx with {"error": {"code", "message", "field"}}.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "control/control_service.h"

namespace httplib {
class Server;
}

namespace sluice::control {

struct RestServerOptions {
  std::string listen = "127.0.0.1:7480";  // hwconf control.listen; port 0 = any free port
  int threads = 2;                        // request worker threads
  size_t max_body_bytes = 1 << 20;        // larger requests: 413
};

class RestServer {
 public:
  RestServer(ControlService& service, RestServerOptions options);
  ~RestServer();
  RestServer(const RestServer&) = delete;
  RestServer& operator=(const RestServer&) = delete;

  // Binds the listen address and starts serving on a thread of its own. Unavailable when the
  // address cannot be bound.
  absl::Status Start();
  // Stops accepting, finishes the requests in progress, joins the threads. Idempotent.
  void Stop();

  int port() const { return port_; }  // the bound port (after Start)
  std::map<int, uint64_t> ResponseCounts() const;

 private:
  void Routes();
  std::string Metrics();

  ControlService& service_;
  RestServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;

  mutable std::mutex counts_mu_;
  std::map<int, uint64_t> responses_;  // by HTTP status
};

// "host:port" -> (host, port); InvalidArgument otherwise.
absl::Status ParseHostPort(const std::string& text, std::string* host, int* port);

}  // namespace sluice::control
