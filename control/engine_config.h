// A catalog queue as the shard engine's per-queue settings (dataplane/shard/types.h): what the
// daemon passes to Shard::AddPartition for each partition of a published queue. Header-only use
// of the shard vocabulary: control/ does not link the engine.
#pragma once

#include "control/catalog.h"
#include "dataplane/shard/types.h"

namespace sluice::control {

// The attributes the engine enforces; capacities (memory_budget_chunks, max_messages, ...) keep
// the engine's defaults unless `base` says otherwise. receive_wait_ms and replication are not
// engine settings (the frontend and the replication shell apply them).
shard::QueueConfig ToShardQueueConfig(const QueueMeta& queue, const CatalogSnapshot& snapshot,
                                      const shard::QueueConfig& base = {});

}  // namespace sluice::control
