// The queue metadata model: what a queue is (name, id, type, partitions) and its attributes, with
// one declarative attribute table (name, kind, unit, bounds, which queue type it applies to,
// whether it may change live, description) from which validation, JSON, `sluicectl --attr k=v`
// parsing and docs/control.md come. Every rejection is an absl::Status naming the field
// (control/errors.h).
//
// Plain data and pure functions: no I/O, no locks. The catalog (catalog.h) owns the live set.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hwconf/layout.h"
#include "nlohmann/json.hpp"

namespace sluice::control {

using Json = nlohmann::json;
using hwconf::Durability;
using hwconf::QueueType;
using hwconf::ReplicationMode;

// What a `sync` queue does while the standby cannot acknowledge: refuse produces (`deny`, the
// default: no acknowledged message is ever only on one box) or acknowledge after local durability
// (`allow`: keeps accepting, degrades to async until the standby is back).
enum class Degrade { kDeny, kAllow };

inline constexpr uint32_t kMiB = 1u << 20;
inline constexpr uint32_t kMaxNameBytes = 64;
inline constexpr uint32_t kMaxPartitions = 4096;       // hwconf [[queue]] partitions bound
inline constexpr uint32_t kMaxMessageBytesCap = kMiB;  // DESIGN §3: up to 1 MiB
inline constexpr uint32_t kMaxPriorityLevels = 16;     // the shard engine's limit (wire 0..15)
inline constexpr uint64_t kMaxVisibilityTimeoutMs = 12ull * 3600 * 1000;  // 12 h
inline constexpr uint64_t kMaxReceiveWaitMs = 20'000;                     // 20 s long poll
inline constexpr uint32_t kMaxReceiveCountCap = 1000;
inline constexpr uint64_t kDefaultMaxDelayMs = 15ull * 60 * 1000;         // 15 min
inline constexpr uint64_t kMaxTtlMs = 14ull * 24 * 3600 * 1000;           // 14 days
inline constexpr uint64_t kMaxDedupWindowMs = 3600ull * 1000;             // 1 h
inline constexpr uint64_t kMaxRetentionMs = 3650ull * 24 * 3600 * 1000;   // 10 years
inline constexpr uint64_t kMaxRetentionBytes = 1ull << 50;                // 1 PiB

struct QueueAttributes {
  Durability durability = Durability::kWrite;    // both: none | write | dsync
  uint64_t retention_ms = 0;                     // streams: 0 = no time bound
  uint64_t retention_bytes = 0;                  // streams: per partition; 0 = no size bound
  uint32_t max_message_bytes = 256 * 1024;       // both: 1 .. 1 MiB
  uint32_t visibility_timeout_ms = 30'000;       // work: lease when RECEIVE gives 0; 0 .. 12 h
  uint32_t receive_wait_ms = 0;                  // work: long poll when RECEIVE gives 0; 0 .. 20 s
  uint32_t max_receive_count = 0;                // work: 0 = never dead-letter; .. 1000
  std::string dead_letter_queue;                 // work: an existing other work queue, or ""
  uint32_t delay_ms = 0;                         // work: default delay; 0 .. max_delay_ms
  uint32_t ttl_ms = 0;                           // work: default time to live; 0 = none; .. 14 d
  uint32_t priority_levels = 1;                  // work: 1 .. 16
  bool fifo = false;                             // work: per-group order
  uint32_t dedup_window_ms = 300'000;            // both: dedup ids remembered; 0 = off; .. 1 h
  bool content_dedup = false;                    // both: no dedup id -> dedup by payload hash
  ReplicationMode replication = ReplicationMode::kAsync;  // both: async | sync
  Degrade replication_degrade = Degrade::kDeny;  // both: sync queues with the standby down

  bool operator==(const QueueAttributes&) const = default;
};

// What a client asks for.
struct QueueSpec {
  std::string name;
  QueueType type = QueueType::kStream;
  uint32_t partitions = 1;
  QueueAttributes attributes;

  bool operator==(const QueueSpec&) const = default;
};

// A queue in the catalog.
struct QueueMeta {
  uint32_t id = 0;  // >= 1, assigned by the catalog, never reused
  QueueSpec spec;
  uint64_t created_at_ms = 0;    // Unix time
  uint64_t updated_at_ms = 0;
  uint64_t purge_generation = 0; // +1 per purge
  uint64_t purged_at_ms = 0;     // 0 = never purged

  const std::string& name() const { return spec.name; }
  bool operator==(const QueueMeta&) const = default;
};

// Settings of the model that depend on the deployment.
struct MetaOptions {
  QueueAttributes defaults;                    // absent attributes take these values
  uint64_t max_delay_ms = kDefaultMaxDelayMs;  // cap of delay_ms (the "15 min" is configurable)
};

// Defaults from a layout: durability from [storage], replication mode from [replication].
MetaOptions MetaOptionsFromLayout(const hwconf::Layout& layout);

// ---- the attribute table -------------------------------------------------------------------

enum class AttrKind { kUint, kBool, kEnum, kString };
enum class AppliesTo { kBoth, kWork, kStream };

struct AttributeInfo {
  std::string_view name;
  AttrKind kind;
  AppliesTo applies;
  bool live;                     // may change with PATCH on an existing queue
  std::string_view unit;         // "ms", "bytes" or ""
  uint64_t min = 0;              // kUint bounds (max 0 = from MetaOptions, see max_delay_ms)
  uint64_t max = 0;
  std::string_view values;       // kEnum: "none|write|dsync"
  std::string_view doc;
};

std::span<const AttributeInfo> Attributes();
const AttributeInfo* FindAttribute(std::string_view name);

// ---- validation ----------------------------------------------------------------------------

// Name rule (as hwconf's [[queue]] name): [A-Za-z0-9][A-Za-z0-9_.-]{0,63}.
absl::Status ValidateName(std::string_view name);

// Everything that can be checked on one queue alone: name, partitions, each attribute's bounds,
// attributes set for the other queue type, and the rules between attributes. The rules against
// other queues (the dead-letter queue exists, is a work queue) are the catalog's.
absl::Status Validate(const QueueSpec& spec, const MetaOptions& options);

// ---- JSON -----------------------------------------------------------------------------------

// Attributes of `attrs` as a JSON object: only those that apply to `type` unless `all`.
Json AttributesToJson(const QueueAttributes& attrs, QueueType type, bool all = false);
// {"name", "id", "type", "partitions", "attributes", "created_at_ms", ...}. `all`: every
// attribute (the store keeps them all; the API shows those that apply to the type).
Json ToJson(const QueueMeta& meta, bool all = false);
Json ToJson(const QueueSpec& spec);

// A create request {"name", "type", "partitions"?, "attributes"?}: strict (unknown fields and
// wrong types rejected, with the field), absent attributes from options.defaults, then Validate.
absl::StatusOr<QueueSpec> SpecFromJson(const Json& body, const MetaOptions& options);
// A stored queue (ToJson(meta, true)): as strict, plus id and timestamps.
absl::StatusOr<QueueMeta> MetaFromJson(const Json& body, const MetaOptions& options);

// A PATCH: the attributes named and their new values (the others untouched).
struct AttributePatch {
  std::vector<std::string> fields;  // attribute names, each once
  QueueAttributes values;           // only `fields` are meaningful
};
// {"attributes": {...}}; each attribute type-checked (bounds are checked on the result).
absl::StatusOr<AttributePatch> PatchFromJson(const Json& body);
// Applies a patch; the result still needs Validate.
void ApplyPatch(const AttributePatch& patch, QueueAttributes* attrs);
// Whether attribute `name` has the same value in a and b (false for an unknown name).
bool SameAttribute(std::string_view name, const QueueAttributes& a, const QueueAttributes& b);
// The first attribute whose value differs between a and b, or "".
std::string_view FirstDifference(const QueueAttributes& a, const QueueAttributes& b);

// One `--attr key=value` of sluicectl as the JSON value the API expects: integers with unit
// suffixes (ms attributes: 500ms, 30s, 5m, 12h, 7d; bytes attributes: 512, 64KiB, 1MiB, 1GiB),
// booleans (true/false), enum names, strings.
absl::StatusOr<Json> ParseAttributeValue(std::string_view name, std::string_view text);

// ---- engine configuration ------------------------------------------------------------------

// The layout's declaration form of a queue (what dataplane::QueueTable is built from today).
hwconf::QueueDecl ToQueueDecl(const QueueMeta& meta);
// A layout [[queue]] declaration as a create request (its other attributes from `options`).
QueueSpec SpecFromQueueDecl(const hwconf::QueueDecl& decl, const MetaOptions& options);

std::string_view ToString(Degrade d);

}  // namespace sluice::control
