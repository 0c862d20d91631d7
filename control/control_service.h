// The one path by which queue metadata changes: catalog change (persisted) -> publication of the
// new snapshot to the backend. The REST server, the start-up bootstrap of the layout's [[queue]]
// declarations and tests all go through it, so the dataplane always runs the latest persisted
// catalog, published in version order.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "control/catalog.h"
#include "control/control_backend.h"

namespace sluice::control {

struct BootstrapReport {
  std::vector<std::string> created;   // declared and missing: created
  std::vector<std::string> existing;  // declared and already in the catalog, identical
  std::vector<std::string> warnings;  // declared but stored differently: the catalog wins
};

class ControlService {
 public:
  ControlService(Catalog& catalog, ControlBackend& backend);

  // Publishes the current catalog (start-up, after Catalog::Open and Bootstrap).
  absl::Status PublishCurrent();

  // Layout [[queue]] declarations (hwconf) as create requests: missing queues are created;
  // a queue that exists keeps its stored attributes (changed with the API since), and a
  // difference is reported as a warning. Dead-letter targets are created before the queues that
  // name them. Does not publish: call PublishCurrent after.
  absl::StatusOr<BootstrapReport> Bootstrap(const std::vector<hwconf::QueueDecl>& decls);

  // Catalog change, then Publish. A create whose publication fails is rolled back (the queue is
  // removed again) and the backend's error returned; an update/purge/delete whose publication
  // fails stays persisted (the backend runs it from its next publication or restart) and the
  // error is returned. Refused (409 not_primary, nothing changed) on a standby or a fenced
  // primary: a standby's catalog is the primary's (ReplaceCatalog), and a change made here would
  // be overwritten by the next one it receives, or diverge from it after a promotion.
  absl::StatusOr<CreateResult> CreateQueue(const QueueSpec& spec);
  absl::StatusOr<QueueMeta> UpdateQueue(std::string_view name, const AttributePatch& patch);
  absl::StatusOr<QueueMeta> PurgeQueue(std::string_view name);
  absl::StatusOr<QueueMeta> DeleteQueue(std::string_view name);

  // A standby adopts the primary's catalog (Catalog::Replace) and publishes it.
  absl::Status ReplaceCatalog(std::string_view document);

  // Backend stats with rates filled in (from the previous sample at least 1 s older).
  BackendStats Stats();

  Catalog& catalog() { return catalog_; }
  ControlBackend& backend() { return backend_; }

 private:
  absl::Status PublishLocked();
  // OK unless the backend is a standby or a fenced primary (then not_primary, with the reason).
  absl::Status RefuseUnlessPrimary();

  Catalog& catalog_;
  ControlBackend& backend_;
  std::mutex publish_mu_;  // catalog change + publication, one at a time

  struct Sample {
    uint64_t messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0;
  };
  struct Rates {
    double messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0;
  };
  std::mutex rates_mu_;
  std::chrono::steady_clock::time_point sample_time_{};
  std::map<std::pair<uint32_t, uint32_t>, Sample> sample_;  // (queue id, partition)
  std::map<std::pair<uint32_t, uint32_t>, Rates> rates_;
};

}  // namespace sluice::control
