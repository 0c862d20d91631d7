// The default metadata store: one file in control.metadata_dir, replaced atomically.
//
//   <dir>/catalog       the current document
//   <dir>/catalog.tmp   the next one while it is written (left over only by a crash; ignored)
//
// File format: one header line, then the body bytes:
//   "sluice-metadata 1 version=<N> bytes=<B> crc32c=<8 hex>\n" <B bytes of body>
// A Save writes the temp file, fsyncs it, reads it back and checks it, renames it over the
// current file, and fsyncs the directory. A crash at any point leaves either the old or the new
// file under the name `catalog` (rename is atomic); Load checks the header, length and CRC32C, so
// a damaged file is reported (DataLoss), never half-read.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "control/metadata_store.h"

namespace sluice::control {

// The steps of a Save, in order; a fault hook runs after each (tests/unit/control).
enum class SaveStep {
  kTempOpened,     // catalog.tmp created (empty)
  kTempHalfWritten,// half of the new bytes written: a torn temp file
  kTempWritten,    // all bytes written, not yet synced
  kTempSynced,     // fsync(catalog.tmp) done, read back and verified, closed
  kRenamed,        // rename(catalog.tmp, catalog) done, directory not yet synced
  kDirSynced,      // fsync(dir) done: the new version is durable
};
inline constexpr int kSaveStepCount = 6;
const char* ToString(SaveStep step);

// Returns false to simulate a crash right after `step`: Save stops there and returns Unavailable,
// leaving the files as they are.
using SaveFaultHook = std::function<bool(SaveStep step)>;

class FileStore final : public MetadataStore {
 public:
  // Creates `dir` (and its parents) when missing, fsyncing each parent it created into.
  static absl::StatusOr<std::unique_ptr<FileStore>> Open(const std::string& dir,
                                                         SaveFaultHook hook = nullptr);

  absl::StatusOr<std::optional<StoredDocument>> Load() override;
  absl::StatusOr<uint64_t> Save(uint64_t expected_version, std::string_view body) override;
  std::string Describe() const override { return "file " + path_; }

  const std::string& path() const { return path_; }

 private:
  FileStore(std::string dir, SaveFaultHook hook);
  absl::Status WriteTemp(const std::string& bytes);
  absl::Status Step(SaveStep step);

  std::string dir_, path_, temp_path_;
  SaveFaultHook hook_;
  std::optional<uint64_t> version_;  // what is on disk, when known (unknown after a failed Save)
};

}  // namespace sluice::control
