// The set of queues: create (idempotent), list, describe, update, purge, delete. Assigns ids
// (from 1, never reused, so a stale id on the wire never reaches another queue), persists every
// change through a MetadataStore before it is visible, and hands out immutable snapshots for
// publication to the dataplane (control_service.h).
//
// Thread-safe: one mutex around every operation (the control plane, never the packet path).
// Memory and disk agree: a change whose Save fails is not applied.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "control/metadata_store.h"
#include "control/queue_meta.h"

namespace sluice::control {

// An immutable view of the catalog at one version: what the dataplane's queue table is built from.
class CatalogSnapshot {
 public:
  CatalogSnapshot(uint64_t version, std::vector<QueueMeta> queues);

  uint64_t version() const { return version_; }  // the store's document version (0 = empty)
  const std::vector<QueueMeta>& queues() const { return queues_; }  // sorted by id
  const QueueMeta* Find(std::string_view name) const;
  const QueueMeta* FindById(uint32_t id) const;
  // The id of a queue's dead-letter queue, or 0 when it has none.
  uint32_t DeadLetterId(const QueueMeta& queue) const;

 private:
  uint64_t version_;
  std::vector<QueueMeta> queues_;
};

// What changed between two snapshots (by id: ids are never reused).
struct SnapshotDiff {
  std::vector<uint32_t> added;
  std::vector<uint32_t> removed;
  std::vector<uint32_t> changed;  // attributes updated or purged
};
SnapshotDiff Diff(const CatalogSnapshot& before, const CatalogSnapshot& after);

struct CatalogLimits {
  uint32_t max_queues = 4096;
};

struct CreateResult {
  QueueMeta queue;
  bool created = false;  // false: an identical queue existed (idempotent create)
};

class Catalog {
 public:
  using Clock = std::function<uint64_t()>;  // Unix time in ms

  // Loads the store's document (an empty catalog when there is none).
  static absl::StatusOr<std::unique_ptr<Catalog>> Open(MetadataStore& store, MetaOptions options,
                                                       CatalogLimits limits = {},
                                                       Clock clock = nullptr);

  // Validates and adds. An existing queue with the same name: OK with created=false when the
  // spec is identical (after defaults), AlreadyExists (409, field = first difference) when not.
  absl::StatusOr<CreateResult> Create(const QueueSpec& spec);
  std::vector<QueueMeta> List() const;
  absl::StatusOr<QueueMeta> Describe(std::string_view name) const;
  // Changes the patched attributes; an attribute that cannot change live (AttributeInfo::live)
  // may only be "changed" to its current value. A patch that changes nothing is not persisted.
  absl::StatusOr<QueueMeta> Update(std::string_view name, const AttributePatch& patch);
  // Records a purge (purge_generation + 1); the messages are the backend's to drop.
  absl::StatusOr<QueueMeta> Purge(std::string_view name);
  // Removes the queue; FailedPrecondition (409) while another queue dead-letters into it.
  absl::StatusOr<QueueMeta> Delete(std::string_view name);

  std::shared_ptr<const CatalogSnapshot> Snapshot() const;

  // Replication (docs/replication.md §8): the whole catalog as its stored document (ids,
  // next_id, every attribute), and, on a standby, that document of the primary's adopted as
  // this catalog (persisted like any change; ids stay the primary's). Replace of an identical
  // catalog changes nothing.
  std::string Export() const;
  absl::Status Replace(std::string_view document);
  const MetaOptions& options() const { return options_; }
  std::string StoreDescription() const { return store_.Describe(); }

 private:
  struct State {
    uint64_t version = 0;
    uint32_t next_id = 1;
    std::vector<QueueMeta> queues;  // sorted by id
  };

  Catalog(MetadataStore& store, MetaOptions options, CatalogLimits limits, Clock clock);
  // Cross-queue rules: the dead-letter queue exists, is a work queue, is not the queue itself.
  static absl::Status CheckReferences(const State& state, const QueueSpec& spec);
  // Saves `next` as the new state; on success it becomes current and a new snapshot is made.
  absl::Status Commit(State next);
  static std::string Serialize(const State& state);
  static absl::StatusOr<State> Parse(std::string_view document, const MetaOptions& options,
                                     const std::string& where);

  MetadataStore& store_;
  const MetaOptions options_;
  const CatalogLimits limits_;
  const Clock clock_;

  mutable std::mutex mu_;
  State state_;
  std::shared_ptr<const CatalogSnapshot> snapshot_;
};

}  // namespace sluice::control
