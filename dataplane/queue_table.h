// The queue table the lcores route by: queue id -> type, partitions, and for each partition the
// shard that owns it and the worker lcore that owns that shard. Immutable once built: lcores read
// it with no lock. (The control-plane issue swaps new tables in with RCU; until then the table is
// built once at start from the layout's queue declarations.)
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "hwconf/layout.h"

namespace sluice::dataplane {

inline constexpr uint32_t kMaxWorkers = 64;

struct QueueInfo {
  uint32_t id = 0;
  std::string name;
  hwconf::QueueDecl decl;
  hwconf::Durability durability = hwconf::Durability::kWrite;  // the layout's [storage] default
  std::vector<uint32_t> partition_shard;   // partition -> shard id
  std::vector<uint16_t> partition_worker;  // partition -> worker index (cached from the shard map)
};

class QueueTable {
 public:
  // Queue ids start at 1 (0 is never a valid id on the wire). Partitions are spread round-robin
  // over the shards, starting at a different shard for each queue so that small queues do not all
  // land on shard 0.
  static absl::StatusOr<std::unique_ptr<const QueueTable>> Build(const hwconf::Layout& layout);

  const QueueInfo* Find(uint32_t id) const {
    return id >= 1 && id <= queues_.size() ? &queues_[id - 1] : nullptr;
  }
  const QueueInfo* FindByName(std::string_view name) const {
    // Debian's Abseil is built as C++14: absl::string_view is its own type there.
    auto it = by_name_.find(absl::string_view(name.data(), name.size()));
    return it == by_name_.end() ? nullptr : Find(it->second);
  }
  const std::vector<QueueInfo>& queues() const { return queues_; }
  uint16_t WorkerOfShard(uint32_t shard) const { return shard_worker_[shard]; }
  uint32_t shard_count() const { return static_cast<uint32_t>(shard_worker_.size()); }

 private:
  std::vector<QueueInfo> queues_;
  absl::flat_hash_map<std::string, uint32_t> by_name_;
  std::vector<uint16_t> shard_worker_;  // shard id -> worker index
};

}  // namespace sluice::dataplane
