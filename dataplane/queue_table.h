// The queue table the lcores route by: queue id -> name, engine settings, purge generation, and
// for each partition the shard that owns it and the worker lcore that owns that shard. Immutable
// once built: lcores read it with no lock. sluiced builds one per published catalog snapshot
// (dataplane/control_backend.h) and swaps it in with RCU; tests and tools build one from a
// layout's [[queue]] declarations.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "dataplane/shard/types.h"
#include "hwconf/layout.h"

namespace sluice::dataplane {

inline constexpr uint32_t kMaxWorkers = 64;

struct QueueInfo {
  uint32_t id = 0;
  std::string name;
  shard::QueueConfig config;        // complete engine settings of every partition
  uint32_t receive_wait_ms = 0;     // long poll of a RECEIVE whose wait_ms is kQueueDefaultWait (frontend's)
  uint64_t purge_generation = 0;    // a change tells the owners to drop every message
  // Replication (a primary with a standby): `sync` acks only what the standby holds durable too;
  // while it cannot, produces are answered NOT_REPLICATED, or (degrade_allow) acked after local
  // durability with the alarm counter raised.
  bool sync_replication = false;
  bool degrade_allow = false;
  std::vector<uint32_t> partition_shard;   // partition -> shard id
  std::vector<uint16_t> partition_worker;  // partition -> worker index (cached from the shard map)

  bool is_stream() const { return config.type == shard::QueueType::kStream; }
};

// The engine settings of a layout [[queue]] declaration (tests and tools; sluiced goes through
// the catalog: control::ToShardQueueConfig). Durability `none`: storage is not wired into these.
shard::QueueConfig ConfigOf(const hwconf::QueueDecl& decl);

class QueueTable {
 public:
  // Queues with their id, name, config, receive_wait_ms and purge_generation set, and
  // partition_shard sized to the partition count; Build places the partitions. Ids are >= 1,
  // unique and sparse (deleted ids are never reused). Partitions go round-robin over the shards
  // starting at shard (id - 1) % shards, so that small queues do not all land on shard 0 and a
  // queue lands where it did before a restart.
  static absl::StatusOr<std::unique_ptr<const QueueTable>> Build(const hwconf::Layout& layout,
                                                                 std::vector<QueueInfo> queues,
                                                                 uint64_t version = 0);
  // The layout's [[queue]] declarations with ids 1, 2, ... in order.
  static absl::StatusOr<std::unique_ptr<const QueueTable>> Build(const hwconf::Layout& layout);

  // One bounds check and two loads: ids index a dense vector of positions (sized by the largest
  // id, 4 bytes per id ever issued up to it).
  const QueueInfo* Find(uint32_t id) const {
    if (id >= slot_.size()) return nullptr;
    const uint32_t at = slot_[id];
    return at == kNoSlot ? nullptr : &queues_[at];
  }
  const QueueInfo* FindByName(std::string_view name) const {
    // Debian's Abseil is built as C++14: absl::string_view is its own type there.
    auto it = by_name_.find(absl::string_view(name.data(), name.size()));
    return it == by_name_.end() ? nullptr : Find(it->second);
  }
  const std::vector<QueueInfo>& queues() const { return queues_; }  // by id
  uint16_t WorkerOfShard(uint32_t shard) const { return shard_worker_[shard]; }
  uint32_t shard_count() const { return static_cast<uint32_t>(shard_worker_.size()); }
  uint64_t version() const { return version_; }  // catalog snapshot version (0: from a layout)
  // The largest max_message_bytes of any queue (0 when there is none).
  uint32_t largest_message_bytes() const { return largest_message_bytes_; }

 private:
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  std::vector<QueueInfo> queues_;
  std::vector<uint32_t> slot_;  // id -> index into queues_, or kNoSlot
  absl::flat_hash_map<std::string, uint32_t> by_name_;
  std::vector<uint16_t> shard_worker_;  // shard id -> worker index
  uint64_t version_ = 0;
  uint32_t largest_message_bytes_ = 0;
};

}  // namespace sluice::dataplane
