#include "control/stats_json.h"

namespace sluice::control {

Json ToJson(const PartitionStats& p) {
  return Json{{"partition", p.partition},
              {"shard", p.shard},
              {"lcore", p.lcore},
              {"depth", p.depth},
              {"in_flight", p.in_flight},
              {"delayed", p.delayed},
              {"low_offset", p.low_offset},
              {"next_offset", p.next_offset},
              {"durable_offset", p.durable_offset},
              {"bytes_stored", p.bytes_stored},
              {"bytes_on_disk", p.bytes_on_disk},
              {"messages_in", p.messages_in},
              {"messages_out", p.messages_out},
              {"bytes_in", p.bytes_in},
              {"bytes_out", p.bytes_out},
              {"acked", p.acked},
              {"dead_lettered", p.dead_lettered},
              {"expired", p.expired},
              {"throttled", p.throttled},
              {"purged", p.purged},
              {"messages_in_per_s", p.messages_in_per_s},
              {"messages_out_per_s", p.messages_out_per_s},
              {"bytes_in_per_s", p.bytes_in_per_s},
              {"bytes_out_per_s", p.bytes_out_per_s}};
}

Json ToJson(const QueueStats& q) {
  PartitionStats t;
  Json parts = Json::array();
  for (const PartitionStats& p : q.partitions) {
    parts.push_back(ToJson(p));
    t.depth += p.depth;
    t.in_flight += p.in_flight;
    t.delayed += p.delayed;
    t.bytes_stored += p.bytes_stored;
    t.bytes_on_disk += p.bytes_on_disk;
    t.messages_in += p.messages_in;
    t.messages_out += p.messages_out;
    t.bytes_in += p.bytes_in;
    t.bytes_out += p.bytes_out;
    t.acked += p.acked;
    t.dead_lettered += p.dead_lettered;
    t.expired += p.expired;
    t.throttled += p.throttled;
    t.purged += p.purged;
    t.messages_in_per_s += p.messages_in_per_s;
    t.messages_out_per_s += p.messages_out_per_s;
    t.bytes_in_per_s += p.bytes_in_per_s;
    t.bytes_out_per_s += p.bytes_out_per_s;
  }
  Json totals = ToJson(t);
  for (const char* k : {"partition", "shard", "lcore", "low_offset", "next_offset",
                        "durable_offset"}) {
    totals.erase(k);
  }
  return Json{{"totals", std::move(totals)}, {"partitions", std::move(parts)}};
}

Json ToJson(const Histogram& h) {
  if (h.upper_bounds.empty()) return nullptr;
  return Json{{"upper_bounds", h.upper_bounds}, {"counts", h.counts}, {"sum", h.sum},
              {"count", h.count()}};
}

Json ToJson(const LcoreStats& l) {
  Json drops = Json::object();
  for (const auto& [reason, n] : l.drops) drops[reason] = n;
  return Json{{"lcore", l.lcore},
              {"worker", l.worker},
              {"rx_packets", l.rx_packets},
              {"rx_bytes", l.rx_bytes},
              {"tx_packets", l.tx_packets},
              {"tx_bytes", l.tx_bytes},
              {"arp_replies", l.arp_replies},
              {"icmp_echo_replies", l.icmp_echo_replies},
              {"frames", l.frames},
              {"messages_in", l.messages_in},
              {"handoffs_out", l.handoffs_out},
              {"handoffs_in", l.handoffs_in},
              {"throttled", l.throttled},
              {"error_replies", l.error_replies},
              {"idle_sleeps", l.idle_sleeps},
              {"kernel_yields", l.kernel_yields},
              {"loops", l.loops},
              {"rx_bursts", l.rx_bursts},
              {"busy_ns", l.busy_ns},
              {"loop_ns", l.loop_ns},
              {"drops", std::move(drops)},
              {"produced", l.produced},
              {"acked", l.acked},
              {"duplicates", l.duplicates},
              {"rejected", l.rejected},
              {"delivered", l.delivered},
              {"reply_no_buffer", l.reply_no_buffer},
              {"ring_occupancy", l.ring_occupancy},
              {"batches", l.batches},
              {"uring_submits", l.uring_submits},
              {"uring_completions", l.uring_completions},
              {"batch_bytes", ToJson(l.batch_bytes)},
              {"batch_messages", ToJson(l.batch_messages)},
              {"ack_latency_seconds", ToJson(l.ack_latency_seconds)}};
}

Json ToJson(const BackendStats& s, const CatalogSnapshot& catalog) {
  Json queues = Json::array();
  for (const QueueStats& q : s.queues) {
    const QueueMeta* meta = catalog.FindById(q.id);
    if (meta == nullptr) continue;
    Json j = ToJson(q);
    j["name"] = meta->spec.name;
    j["id"] = q.id;
    j["type"] = std::string(hwconf::ToString(meta->spec.type));
    queues.push_back(std::move(j));
  }
  Json lcores = Json::array();
  for (const LcoreStats& l : s.lcores) lcores.push_back(ToJson(l));
  return Json{{"catalog_version", catalog.version()},
              {"published_version", s.published_version},
              {"queues", std::move(queues)},
              {"lcores", std::move(lcores)},
              {"ack_latency_seconds", ToJson(s.ack_latency_seconds)}};
}

Json ToJson(const HealthReport& h) {
  Json checks = Json::array();
  for (const HealthCheck& c : h.checks) {
    checks.push_back(Json{{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
  }
  return Json{{"status", h.ok ? "ok" : "failing"}, {"checks", std::move(checks)}};
}

Json ToJson(const RoleInfo& r) {
  Json counters = Json::object();
  for (const auto& [k, v] : r.counters) counters[k] = v;
  return Json{{"role", r.role},
              {"epoch", r.epoch},
              {"peer", r.peer},
              {"replication_connected", r.replication_connected},
              {"replication_lag_bytes", r.replication_lag_bytes},
              {"caught_up", r.caught_up},
              {"fenced", r.fenced},
              {"catalog_replicated", r.catalog_replicated},
              {"replication_counters", counters}};
}

const QueueStats* FindQueueStats(const BackendStats& s, uint32_t id) {
  for (const QueueStats& q : s.queues) if (q.id == id) return &q;
  return nullptr;
}

}  // namespace sluice::control
