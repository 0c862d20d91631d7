// A minimal etcd v3 client for the leader key of automatic promotion (docs/replication.md §7):
// leases (grant, keep-alive, revoke), a range read of one key, and one conditional write (a txn:
// these puts only if those keys are unchanged since read, or still absent). It speaks etcd's JSON gRPC gateway over
// plain HTTP (cpp-httplib): keys and values are base64, 64-bit integers are decimal strings.
//
// EtcdApi is what the election (control/leader_election.h) uses; EtcdClient implements it over
// HTTP, the unit tests implement it in memory. The JSON encoding and decoding are free functions
// (namespace etcd_json) so that they are tested without a server. Calls block (a bounded
// timeout); they run on the election's own thread, never on a data-path lcore.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice::control {

// One key as etcd holds it.
struct EtcdKv {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;  // 0: not attached to a lease
};

// A txn condition: `key` still has this mod_revision; 0 = the key does not exist.
struct EtcdExpect {
  std::string key;
  int64_t mod_revision = 0;
};
struct EtcdPut {
  std::string key;
  std::string value;
  int64_t lease = 0;  // 0: not attached to a lease
};

class EtcdApi {
 public:
  virtual ~EtcdApi() = default;
  // A new lease of `ttl_s` seconds; its id.
  virtual absl::StatusOr<int64_t> Grant(int64_t ttl_s) = 0;
  // Renews `lease`; the TTL (seconds) it has again. 0: the lease no longer exists (expired or
  // revoked) — not an error.
  virtual absl::StatusOr<int64_t> KeepAlive(int64_t lease) = 0;
  virtual absl::Status Revoke(int64_t lease) = 0;
  // The key, or nullopt when absent.
  virtual absl::StatusOr<std::optional<EtcdKv>> Get(std::string_view key) = 0;
  // Every put, atomically, only if every expectation holds (nobody wrote those keys since they
  // were read). True: written.
  virtual absl::StatusOr<bool> PutIfUnchanged(const std::vector<EtcdExpect>& expect,
                                              const std::vector<EtcdPut>& puts) = 0;
};

namespace etcd_json {
// Request bodies.
std::string GrantRequest(int64_t ttl_s);
std::string LeaseIdRequest(int64_t lease);  // keepalive and revoke
std::string RangeRequest(std::string_view key);
std::string TxnRequest(const std::vector<EtcdExpect>& expect, const std::vector<EtcdPut>& puts);
// Response bodies (HTTP 200). An {"error": ...} body or malformed JSON is an error status
// naming the call.
absl::StatusOr<int64_t> GrantResponse(std::string_view body);      // the lease id
absl::StatusOr<int64_t> KeepAliveResponse(std::string_view body);  // the TTL; 0 = lease gone
absl::StatusOr<std::optional<EtcdKv>> RangeResponse(std::string_view body);
absl::StatusOr<bool> TxnResponse(std::string_view body);           // succeeded
// The error an etcd gateway answered with a non-200 status (its message when the body says).
absl::Status HttpError(std::string_view call, int http_status, std::string_view body);
}  // namespace etcd_json

class EtcdClient final : public EtcdApi {
 public:
  // `endpoint`: "http://a.b.c.d:port" (validated by hwconf). `timeout_ms` bounds every call
  // (connect, read and write each).
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(std::string_view endpoint,
                                                            int64_t timeout_ms);
  ~EtcdClient() override;

  absl::StatusOr<int64_t> Grant(int64_t ttl_s) override;
  absl::StatusOr<int64_t> KeepAlive(int64_t lease) override;
  absl::Status Revoke(int64_t lease) override;
  absl::StatusOr<std::optional<EtcdKv>> Get(std::string_view key) override;
  absl::StatusOr<bool> PutIfUnchanged(const std::vector<EtcdExpect>& expect,
                                      const std::vector<EtcdPut>& puts) override;

 private:
  struct Impl;
  explicit EtcdClient(std::unique_ptr<Impl> impl);
  absl::StatusOr<std::string> Post(std::string_view call, const char* path,
                                   const std::string& body);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::control
