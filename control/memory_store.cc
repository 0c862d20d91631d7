#include "absl/strings/str_cat.h"
#include "control/metadata_store.h"

namespace sluice::control {

absl::StatusOr<std::optional<StoredDocument>> MemoryStore::Load() {
  std::lock_guard lock(mu_);
  return doc_;
}

absl::StatusOr<uint64_t> MemoryStore::Save(uint64_t expected_version, std::string_view body) {
  std::lock_guard lock(mu_);
  if (fail_saves_ > 0) {
    --fail_saves_;
    return absl::UnavailableError("memory store: injected failure");
  }
  const uint64_t current = doc_ ? doc_->version : 0;
  if (current != expected_version) {
    return absl::AbortedError(absl::StrCat("metadata version is ", current, ", expected ",
                                           expected_version));
  }
  doc_ = StoredDocument{current + 1, std::string(body)};
  return current + 1;
}

void MemoryStore::FailNextSaves(int n) {
  std::lock_guard lock(mu_);
  fail_saves_ = n;
}

}  // namespace sluice::control
