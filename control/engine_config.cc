#include "control/engine_config.h"

namespace sluice::control {

shard::QueueConfig ToShardQueueConfig(const QueueMeta& queue, const CatalogSnapshot& snapshot,
                                      const shard::QueueConfig& base) {
  const QueueAttributes& a = queue.spec.attributes;
  shard::QueueConfig c = base;
  c.type = queue.spec.type == QueueType::kWork ? shard::QueueType::kWork : shard::QueueType::kStream;
  c.max_message_bytes = a.max_message_bytes;
  c.durability = a.durability == Durability::kNone    ? shard::Durability::kNone
                 : a.durability == Durability::kWrite ? shard::Durability::kWrite
                                                      : shard::Durability::kDsync;
  c.visibility_timeout_ms = a.visibility_timeout_ms;
  c.max_receive_count = a.max_receive_count;
  c.dead_letter_queue.reset();
  if (const uint32_t dlq = snapshot.DeadLetterId(queue); dlq != 0) {
    c.dead_letter_queue = shard::QueueId{dlq};
  }
  c.delay_ms = a.delay_ms;
  c.ttl_ms = a.ttl_ms;
  c.partitions = queue.spec.partitions;  // partition 0's shard coordinates consumer groups
  c.priority_levels = static_cast<uint8_t>(a.priority_levels);  // validated 1..16
  c.fifo = a.fifo;
  c.dedup_window_ms = a.dedup_window_ms;
  c.content_dedup = a.content_dedup;
  c.retention_bytes = a.retention_bytes;
  c.retention_ms = a.retention_ms;
  return c;
}

}  // namespace sluice::control
