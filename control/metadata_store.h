// Where the catalog keeps its document: an interface with compare-and-swap on a version, so that
// a file (file_store.h, the default) or etcd (clusters, later: a key with its mod revision) can
// back it. The document is opaque bytes here (the catalog writes JSON).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice::control {

struct StoredDocument {
  uint64_t version = 0;  // >= 1; +1 per successful Save
  std::string body;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // The current document, or nullopt when none was ever saved. DataLoss when what is stored is
  // not a whole document (checksum or framing wrong): the caller must not overwrite it blindly.
  virtual absl::StatusOr<std::optional<StoredDocument>> Load() = 0;

  // Stores `body` as version expected_version + 1 if the stored version is `expected_version`
  // (0 = nothing stored yet); otherwise Aborted and nothing changes. When Save returns OK the new
  // version is durable; when it fails the store holds the old or (after a crash in the last step)
  // the new version, never a mix: reload to find out which.
  virtual absl::StatusOr<uint64_t> Save(uint64_t expected_version, std::string_view body) = 0;

  // For messages: "file /var/lib/sluice/meta/catalog.json", "memory".
  virtual std::string Describe() const = 0;
};

// In memory, for tests and for `none` deployments; same compare-and-swap rule.
class MemoryStore final : public MetadataStore {
 public:
  absl::StatusOr<std::optional<StoredDocument>> Load() override;
  absl::StatusOr<uint64_t> Save(uint64_t expected_version, std::string_view body) override;
  std::string Describe() const override { return "memory"; }

  // Tests: the next `n` Saves fail with Unavailable.
  void FailNextSaves(int n);

 private:
  std::mutex mu_;
  std::optional<StoredDocument> doc_;
  int fail_saves_ = 0;
};

}  // namespace sluice::control
