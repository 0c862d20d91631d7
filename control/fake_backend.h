// A ControlBackend with no dataplane, for tests and for trying sluicectl: remembers what was
// published and purged, and invents deterministic statistics for the published queues (every
// call to Stats advances the counters by a fixed step so that rates are non-zero).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "control/control_backend.h"

namespace sluice::control {

class FakeBackend final : public ControlBackend {
 public:
  explicit FakeBackend(int lcores = 2);

  absl::Status Publish(std::shared_ptr<const CatalogSnapshot> snapshot) override;
  BackendStats Stats() override;
  absl::Status Purge(const QueueMeta& queue) override;
  HealthReport Liveness() override;
  HealthReport Readiness() override;
  RoleInfo Role() override;
  VersionInfo Version() override;

  // Test controls.
  void SetReady(bool ready);
  void SetLive(bool live);
  void FailNextPublish(absl::Status status);
  void SetRole(RoleInfo role);
  std::shared_ptr<const CatalogSnapshot> published() const;
  std::vector<uint64_t> published_versions() const;
  std::vector<std::string> purged() const;

 private:
  mutable std::mutex mu_;
  int lcores_;
  bool ready_ = true, live_ = true;
  absl::Status fail_next_publish_;
  std::shared_ptr<const CatalogSnapshot> published_;
  std::vector<uint64_t> published_versions_;
  std::vector<std::string> purged_;
  uint64_t ticks_ = 0;
  RoleInfo role_{"primary", 3, "127.0.0.2:7500", true, 0};
};

}  // namespace sluice::control
