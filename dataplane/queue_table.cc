#include "dataplane/queue_table.h"

#include "absl/strings/str_format.h"
#include "protocol/assert.h"

namespace sluice::dataplane {

absl::StatusOr<std::unique_ptr<const QueueTable>> QueueTable::Build(const hwconf::Layout& layout) {
  auto table = std::make_unique<QueueTable>();
  table->shard_worker_.assign(layout.shards, UINT16_MAX);
  for (size_t w = 0; w < layout.lcores.size(); ++w) {
    for (uint32_t s : layout.lcores[w].shards) {
      SLUICE_ASSERT(s < layout.shards);  // hwconf validated ownership
      table->shard_worker_[s] = static_cast<uint16_t>(w);
    }
  }
  for (uint16_t w : table->shard_worker_) SLUICE_ASSERT(w != UINT16_MAX);
  if (layout.shards == 0) return absl::InvalidArgumentError("layout has no shards");

  for (const hwconf::QueueDecl& decl : layout.queues) {
    QueueInfo q;
    q.durability = layout.storage.durability;
    q.id = static_cast<uint32_t>(table->queues_.size() + 1);
    q.name = decl.name;
    q.decl = decl;
    for (uint32_t p = 0; p < decl.partitions; ++p) {
      const uint32_t shard = (q.id - 1 + p) % layout.shards;
      q.partition_shard.push_back(shard);
      q.partition_worker.push_back(table->shard_worker_[shard]);
    }
    if (!table->by_name_.emplace(q.name, q.id).second) {
      return absl::InvalidArgumentError(absl::StrFormat("queue '%s' declared twice", q.name));
    }
    table->queues_.push_back(std::move(q));
  }
  return std::unique_ptr<const QueueTable>(std::move(table));
}

}  // namespace sluice::dataplane
