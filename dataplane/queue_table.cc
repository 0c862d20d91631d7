#include "dataplane/queue_table.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "protocol/assert.h"

namespace sluice::dataplane {

shard::QueueConfig ConfigOf(const hwconf::QueueDecl& d) {
  shard::QueueConfig c;
  c.type = d.type == hwconf::QueueType::kStream ? shard::QueueType::kStream
                                                : shard::QueueType::kWork;
  c.max_message_bytes = d.max_message_bytes;
  c.durability = shard::Durability::kNone;
  c.visibility_timeout_ms = d.visibility_timeout_ms;
  c.max_receive_count = d.max_receive_count;
  c.partitions = d.partitions;  // partition 0's shard coordinates consumer groups
  c.memory_budget_chunks = 64;
  return c;
}

absl::StatusOr<std::unique_ptr<const QueueTable>> QueueTable::Build(const hwconf::Layout& layout,
                                                                    std::vector<QueueInfo> queues,
                                                                    uint64_t version) {
  if (layout.shards == 0) return absl::InvalidArgumentError("layout has no shards");
  auto table = std::make_unique<QueueTable>();
  table->version_ = version;
  table->shard_worker_.assign(layout.shards, UINT16_MAX);
  for (size_t w = 0; w < layout.lcores.size(); ++w) {
    for (uint32_t s : layout.lcores[w].shards) {
      SLUICE_ASSERT(s < layout.shards);  // hwconf validated ownership
      table->shard_worker_[s] = static_cast<uint16_t>(w);
    }
  }
  for (uint16_t w : table->shard_worker_) SLUICE_ASSERT(w != UINT16_MAX);

  std::sort(queues.begin(), queues.end(),
            [](const QueueInfo& a, const QueueInfo& b) { return a.id < b.id; });
  const uint32_t max_id = queues.empty() ? 0 : queues.back().id;
  table->slot_.assign(max_id + 1u, kNoSlot);
  for (QueueInfo& q : queues) {
    if (q.id == 0 || table->slot_[q.id] != kNoSlot) {
      return absl::InvalidArgumentError(absl::StrFormat("queue '%s': id %u is 0 or not unique",
                                                        q.name, q.id));
    }
    // Placement is a pure function of (id, partition, shards): the same after a restart.
    if (q.partition_shard.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("queue '%s' has no partitions", q.name));
    }
    q.partition_worker.clear();
    for (uint32_t p = 0; p < q.partition_shard.size(); ++p) {
      const uint32_t shard = static_cast<uint32_t>((uint64_t{q.id} - 1 + p) % layout.shards);
      q.partition_shard[p] = shard;
      q.partition_worker.push_back(table->shard_worker_[shard]);
    }
    table->slot_[q.id] = static_cast<uint32_t>(&q - queues.data());
    if (!table->by_name_.emplace(q.name, q.id).second) {
      return absl::InvalidArgumentError(absl::StrFormat("queue '%s' declared twice", q.name));
    }
    table->largest_message_bytes_ = std::max(table->largest_message_bytes_,
                                             q.config.max_message_bytes);
  }
  table->queues_ = std::move(queues);
  return std::unique_ptr<const QueueTable>(std::move(table));
}

absl::StatusOr<std::unique_ptr<const QueueTable>> QueueTable::Build(const hwconf::Layout& layout) {
  std::vector<QueueInfo> queues;
  for (const hwconf::QueueDecl& decl : layout.queues) {
    QueueInfo q;
    q.id = static_cast<uint32_t>(queues.size() + 1);
    q.name = decl.name;
    q.config = ConfigOf(decl);
    q.partition_shard.resize(decl.partitions);
    queues.push_back(std::move(q));
  }
  // Dead-letter references by name, now that every id is known.
  for (size_t i = 0; i < layout.queues.size(); ++i) {
    const std::string& dlq = layout.queues[i].dead_letter_queue;
    if (dlq.empty()) continue;
    for (const QueueInfo& q : queues) {
      if (q.name == dlq) queues[i].config.dead_letter_queue = shard::QueueId{q.id};
    }
  }
  return Build(layout, std::move(queues));
}

}  // namespace sluice::dataplane
