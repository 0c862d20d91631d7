// JSON forms of the backend's statistics and reports, as the REST API returns them
// (docs/control.md). sluicectl reads the same shapes.
#pragma once

#include "control/catalog.h"
#include "control/control_backend.h"
#include "control/queue_meta.h"

namespace sluice::control {

Json ToJson(const PartitionStats& p);
// {"totals": {...}, "partitions": [...]} (totals: sums; offsets are per partition only).
Json ToJson(const QueueStats& q);
Json ToJson(const LcoreStats& l);
Json ToJson(const Histogram& h);  // {"upper_bounds", "counts", "sum"} or null when empty
// {"published_version", "queues": [{"name", "id", ...stats}], "lcores": [...], "ack_latency_seconds"}
Json ToJson(const BackendStats& s, const CatalogSnapshot& catalog);
Json ToJson(const HealthReport& h);
Json ToJson(const RoleInfo& r);

// The stats of queue `id` in `s`, or nullptr.
const QueueStats* FindQueueStats(const BackendStats& s, uint32_t id);

}  // namespace sluice::control
