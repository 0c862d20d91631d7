#include "control/metrics.h"

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluice::control {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string LabelText(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", labels[i].first, "=\"", Escape(labels[i].second), "\"");
  }
  return out + "}";
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 9e15) return absl::StrFormat("%.0f", v);
  return absl::StrFormat("%.17g", v);
}

// Families in first-use order; samples of a family stay together.
class Exposition {
 public:
  void Sample(const std::string& family, const char* type, const char* help, const Labels& labels,
              uint64_t value, const char* suffix = "") {
    Lines(family, type, help) += absl::StrCat(family, suffix, LabelText(labels), " ", value, "\n");
  }
  void SampleD(const std::string& family, const char* type, const char* help,
               const Labels& labels, double value) {
    Lines(family, type, help) += absl::StrCat(family, LabelText(labels), " ", Number(value), "\n");
  }
  void Histo(const std::string& family, const char* help, const Labels& labels,
             const Histogram& h) {
    if (h.upper_bounds.empty() || h.counts.size() != h.upper_bounds.size() + 1) return;
    std::string& out = Lines(family, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= h.upper_bounds.size(); ++i) {
      cumulative += h.counts[i];
      Labels l = labels;
      l.emplace_back("le", i < h.upper_bounds.size() ? Number(h.upper_bounds[i]) : "+Inf");
      absl::StrAppend(&out, family, "_bucket", LabelText(l), " ", cumulative, "\n");
    }
    absl::StrAppend(&out, family, "_sum", LabelText(labels), " ", Number(h.sum), "\n");
    absl::StrAppend(&out, family, "_count", LabelText(labels), " ", cumulative, "\n");
  }
  std::string Text() const {
    std::string out;
    for (const auto& f : families_) out += f.second;
    return out;
  }

 private:
  std::string& Lines(const std::string& family, const char* type, const char* help) {
    for (auto& f : families_) if (f.first == family) return f.second;
    families_.emplace_back(family, absl::StrCat("# HELP ", family, " ", help, "\n# TYPE ", family,
                                                " ", type, "\n"));
    return families_.back().second;
  }
  std::vector<std::pair<std::string, std::string>> families_;
};

struct PartitionMetric {
  const char* name;
  const char* type;
  const char* help;
  uint64_t PartitionStats::*member;
};
constexpr PartitionMetric kPartitionMetrics[] = {
    {"sluice_partition_depth_messages", "gauge", "Messages stored and not yet consumed.",
     &PartitionStats::depth},
    {"sluice_partition_inflight_messages", "gauge", "Work queues: messages leased, not deleted.",
     &PartitionStats::in_flight},
    {"sluice_partition_delayed_messages", "gauge", "Work queues: messages not yet visible.",
     &PartitionStats::delayed},
    {"sluice_partition_low_offset", "gauge", "First offset still held.", &PartitionStats::low_offset},
    {"sluice_partition_next_offset", "gauge", "Offset the next message gets (written end).",
     &PartitionStats::next_offset},
    {"sluice_partition_durable_offset", "gauge",
     "End of the messages that met the queue's durability.", &PartitionStats::durable_offset},
    {"sluice_partition_stored_bytes", "gauge", "Bytes held in memory.", &PartitionStats::bytes_stored},
    {"sluice_partition_disk_bytes", "gauge", "Bytes in segment files.", &PartitionStats::bytes_on_disk},
    {"sluice_partition_messages_in_total", "counter", "Messages appended.",
     &PartitionStats::messages_in},
    {"sluice_partition_messages_out_total", "counter", "Messages delivered or received.",
     &PartitionStats::messages_out},
    {"sluice_partition_bytes_in_total", "counter", "Bytes appended.", &PartitionStats::bytes_in},
    {"sluice_partition_bytes_out_total", "counter", "Bytes delivered or received.",
     &PartitionStats::bytes_out},
    {"sluice_partition_acked_total", "counter", "Work queues: messages deleted by receipt.",
     &PartitionStats::acked},
    {"sluice_partition_dead_lettered_total", "counter",
     "Work queues: messages moved past max_receive_count.", &PartitionStats::dead_lettered},
    {"sluice_partition_expired_total", "counter", "Messages past their time to live.",
     &PartitionStats::expired},
    {"sluice_partition_throttled_total", "counter", "Produces answered THROTTLED.",
     &PartitionStats::throttled},
    {"sluice_partition_purged_total", "counter", "Messages dropped by purges.",
     &PartitionStats::purged},
};

// Per-queue sums of the partitions' figures (offsets do not add up: left out).
constexpr PartitionMetric kQueueMetrics[] = {
    {"sluice_queue_depth_messages", "gauge", "Messages stored and not yet consumed.",
     &PartitionStats::depth},
    {"sluice_queue_inflight_messages", "gauge", "Work queues: messages leased, not deleted.",
     &PartitionStats::in_flight},
    {"sluice_queue_delayed_messages", "gauge", "Work queues: messages not yet visible.",
     &PartitionStats::delayed},
    {"sluice_queue_stored_bytes", "gauge", "Bytes held in memory.", &PartitionStats::bytes_stored},
    {"sluice_queue_disk_bytes", "gauge", "Bytes in segment files.", &PartitionStats::bytes_on_disk},
    {"sluice_queue_messages_in_total", "counter", "Messages appended.", &PartitionStats::messages_in},
    {"sluice_queue_messages_out_total", "counter", "Messages delivered or received.",
     &PartitionStats::messages_out},
    {"sluice_queue_bytes_in_total", "counter", "Bytes appended.", &PartitionStats::bytes_in},
    {"sluice_queue_bytes_out_total", "counter", "Bytes delivered or received.",
     &PartitionStats::bytes_out},
    {"sluice_queue_acked_total", "counter", "Produces acknowledged.", &PartitionStats::acked},
    {"sluice_queue_dead_lettered_total", "counter",
     "Work queues: messages moved past max_receive_count.", &PartitionStats::dead_lettered},
    {"sluice_queue_expired_total", "counter", "Messages past their time to live.",
     &PartitionStats::expired},
    {"sluice_queue_throttled_total", "counter", "Produces answered THROTTLED.",
     &PartitionStats::throttled},
    {"sluice_queue_purged_total", "counter", "Messages dropped by purges.", &PartitionStats::purged},
};

struct RateMetric {
  const char* suffix;  // after sluice_partition_ / sluice_queue_
  const char* help;
  double PartitionStats::*member;
};
constexpr RateMetric kRateMetrics[] = {
    {"messages_in_per_second", "Messages appended per second (control plane, over >= 1 s).",
     &PartitionStats::messages_in_per_s},
    {"messages_out_per_second", "Messages delivered or received per second.",
     &PartitionStats::messages_out_per_s},
    {"bytes_in_per_second", "Bytes appended per second.", &PartitionStats::bytes_in_per_s},
    {"bytes_out_per_second", "Bytes delivered or received per second.",
     &PartitionStats::bytes_out_per_s},
};

struct LcoreMetric {
  const char* name;
  const char* type;
  const char* help;
  uint64_t LcoreStats::*member;
};
constexpr LcoreMetric kLcoreMetrics[] = {
    {"sluice_lcore_rx_packets_total", "counter", "Packets received.", &LcoreStats::rx_packets},
    {"sluice_lcore_rx_bytes_total", "counter", "Bytes received.", &LcoreStats::rx_bytes},
    {"sluice_lcore_tx_packets_total", "counter", "Packets sent.", &LcoreStats::tx_packets},
    {"sluice_lcore_tx_bytes_total", "counter", "Bytes sent.", &LcoreStats::tx_bytes},
    {"sluice_lcore_arp_replies_total", "counter", "ARP replies sent.", &LcoreStats::arp_replies},
    {"sluice_lcore_icmp_echo_replies_total", "counter", "ICMP echo replies sent.",
     &LcoreStats::icmp_echo_replies},
    {"sluice_lcore_frames_total", "counter", "sluice frames accepted.", &LcoreStats::frames},
    {"sluice_lcore_messages_in_total", "counter", "Records appended by this lcore's shards.",
     &LcoreStats::messages_in},
    {"sluice_lcore_handoffs_out_total", "counter", "Frames handed to another lcore.",
     &LcoreStats::handoffs_out},
    {"sluice_lcore_handoffs_in_total", "counter", "Frames taken from inbound rings.",
     &LcoreStats::handoffs_in},
    {"sluice_lcore_throttled_total", "counter", "THROTTLED answers sent.", &LcoreStats::throttled},
    {"sluice_lcore_error_replies_total", "counter", "ERROR frames sent.", &LcoreStats::error_replies},
    {"sluice_lcore_idle_sleeps_total", "counter", "Adaptive idle policy: sleeps.",
     &LcoreStats::idle_sleeps},
    {"sluice_lcore_kernel_yields_total", "counter",
     "Empty passes that yielded the CPU while this lcore's writes were in the kernel.",
     &LcoreStats::kernel_yields},
    {"sluice_lcore_loops_total", "counter", "Passes of the lcore loop.", &LcoreStats::loops},
    {"sluice_lcore_rx_bursts_total", "counter", "RX bursts that returned frames.",
     &LcoreStats::rx_bursts},
    {"sluice_lcore_busy_nanoseconds_total", "counter",
     "Time in loop passes that found work (over loop time: the lcore's busy share).",
     &LcoreStats::busy_ns},
    {"sluice_lcore_loop_nanoseconds_total", "counter", "Time in the lcore loop, idle included.",
     &LcoreStats::loop_ns},
    {"sluice_lcore_produced_total", "counter", "Messages appended by the frontend.",
     &LcoreStats::produced},
    {"sluice_lcore_acked_total", "counter", "Messages acknowledged to producers.",
     &LcoreStats::acked},
    {"sluice_lcore_duplicates_total", "counter", "Idempotent retransmits answered.",
     &LcoreStats::duplicates},
    {"sluice_lcore_rejected_total", "counter", "Items answered with an error other than THROTTLED.",
     &LcoreStats::rejected},
    {"sluice_lcore_delivered_total", "counter", "Messages sent in MESSAGES/DELIVER.",
     &LcoreStats::delivered},
    {"sluice_lcore_reply_no_buffer_total", "counter", "Replies lost for want of a buffer.",
     &LcoreStats::reply_no_buffer},
    {"sluice_lcore_ring_occupancy", "gauge", "Entries waiting in this lcore's inbound rings.",
     &LcoreStats::ring_occupancy},
    {"sluice_lcore_batches_total", "counter", "Batches sealed.", &LcoreStats::batches},
    {"sluice_lcore_uring_submits_total", "counter", "io_uring submissions.",
     &LcoreStats::uring_submits},
    {"sluice_lcore_uring_completions_total", "counter", "io_uring completions.",
     &LcoreStats::uring_completions},
};

}  // namespace

bool Histogram::Merge(const Histogram& other) {
  if (other.upper_bounds.empty()) return true;
  if (upper_bounds.empty() && counts.empty()) {
    *this = other;
    return true;
  }
  if (upper_bounds != other.upper_bounds || counts.size() != other.counts.size()) return false;
  for (size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  sum += other.sum;
  return true;
}

std::string RenderMetrics(const BackendStats& stats, const CatalogSnapshot& catalog,
                          const MetricsContext& ctx) {
  Exposition x;
  x.Sample("sluice_build_info", "gauge", "Version of this sluice build.", {{"version", ctx.version}},
           1);
  x.Sample("sluice_live", "gauge", "1 when the liveness checks pass.", {}, ctx.live ? 1 : 0);
  x.Sample("sluice_ready", "gauge", "1 when the readiness checks pass.", {}, ctx.ready ? 1 : 0);
  x.Sample("sluice_role", "gauge", "This box's replication role (1 for the current role).",
           {{"role", ctx.role.role}}, 1);
  x.Sample("sluice_replication_epoch", "gauge", "Replication epoch.", {}, ctx.role.epoch);
  x.Sample("sluice_replication_connected", "gauge", "1 when the replication link is up.", {},
           ctx.role.replication_connected ? 1 : 0);
  x.Sample("sluice_replication_lag_bytes", "gauge", "Bytes the standby is behind.", {},
           ctx.role.replication_lag_bytes);
  x.Sample("sluice_catalog_version", "gauge", "Version of the persisted queue catalog.", {},
           catalog.version());
  x.Sample("sluice_catalog_published_version", "gauge",
           "Catalog version the dataplane's queue table was built from.", {},
           stats.published_version);
  x.Sample("sluice_queues", "gauge", "Queues in the catalog.", {}, catalog.queues().size());
  for (const QueueMeta& q : catalog.queues()) {
    x.Sample("sluice_queue_info", "gauge", "Queues: id and type (value 1).",
             {{"queue", q.spec.name}, {"id", absl::StrCat(q.id)},
              {"type", std::string(hwconf::ToString(q.spec.type))}},
             1);
  }
  for (const QueueMeta& q : catalog.queues()) {
    x.Sample("sluice_queue_partitions", "gauge", "Partitions of a queue.", {{"queue", q.spec.name}},
             q.spec.partitions);
  }
  for (const QueueStats& qs : stats.queues) {
    const QueueMeta* q = catalog.FindById(qs.id);
    if (q == nullptr) continue;  // deleted since the backend sampled
    for (const PartitionStats& p : qs.partitions) {
      x.Sample("sluice_partition_info", "gauge", "Owner of a partition: shard and lcore (value 1).",
               {{"queue", q->spec.name}, {"partition", absl::StrCat(p.partition)},
                {"shard", absl::StrCat(p.shard)}, {"lcore", absl::StrCat(p.lcore)}},
               1);
    }
  }
  for (const PartitionMetric& m : kQueueMetrics) {
    for (const QueueStats& qs : stats.queues) {
      const QueueMeta* q = catalog.FindById(qs.id);
      if (q == nullptr) continue;
      uint64_t sum = 0;
      for (const PartitionStats& p : qs.partitions) sum += p.*m.member;
      x.Sample(m.name, m.type, m.help, {{"queue", q->spec.name}}, sum);
    }
  }
  for (const RateMetric& m : kRateMetrics) {
    for (const QueueStats& qs : stats.queues) {
      const QueueMeta* q = catalog.FindById(qs.id);
      if (q == nullptr) continue;
      double sum = 0;
      for (const PartitionStats& p : qs.partitions) sum += p.*m.member;
      x.SampleD(absl::StrCat("sluice_queue_", m.suffix), "gauge", m.help,
                {{"queue", q->spec.name}}, sum);
    }
  }
  for (const PartitionMetric& m : kPartitionMetrics) {
    for (const QueueStats& qs : stats.queues) {
      const QueueMeta* q = catalog.FindById(qs.id);
      if (q == nullptr) continue;
      for (const PartitionStats& p : qs.partitions) {
        x.Sample(m.name, m.type, m.help,
                 {{"queue", q->spec.name}, {"partition", absl::StrCat(p.partition)}}, p.*m.member);
      }
    }
  }
  for (const RateMetric& m : kRateMetrics) {
    for (const QueueStats& qs : stats.queues) {
      const QueueMeta* q = catalog.FindById(qs.id);
      if (q == nullptr) continue;
      for (const PartitionStats& p : qs.partitions) {
        x.SampleD(absl::StrCat("sluice_partition_", m.suffix), "gauge", m.help,
                  {{"queue", q->spec.name}, {"partition", absl::StrCat(p.partition)}},
                  p.*m.member);
      }
    }
  }
  for (const LcoreMetric& m : kLcoreMetrics) {
    for (const LcoreStats& l : stats.lcores) {
      x.Sample(m.name, m.type, m.help, {{"lcore", absl::StrCat(l.lcore)}}, l.*m.member);
    }
  }
  for (const LcoreStats& l : stats.lcores) {
    for (const auto& [reason, n] : l.drops) {
      x.Sample("sluice_lcore_drops_total", "counter", "Packets dropped, by reason.",
               {{"lcore", absl::StrCat(l.lcore)}, {"reason", reason}}, n);
    }
  }
  for (const LcoreStats& l : stats.lcores) {
    x.Histo("sluice_lcore_batch_bytes", "Bytes per sealed batch.",
            {{"lcore", absl::StrCat(l.lcore)}}, l.batch_bytes);
  }
  for (const LcoreStats& l : stats.lcores) {
    x.Histo("sluice_lcore_batch_messages", "Messages per sealed batch.",
            {{"lcore", absl::StrCat(l.lcore)}}, l.batch_messages);
  }
  for (const LcoreStats& l : stats.lcores) {
    x.Histo("sluice_lcore_ack_latency_seconds",
            "Produce to durable acknowledgement latency, per message, on this lcore.",
            {{"lcore", absl::StrCat(l.lcore)}}, l.ack_latency_seconds);
  }
  // Every lcore's ack latency together (the backend's own figure when it gives one).
  Histogram all = stats.ack_latency_seconds;
  if (all.upper_bounds.empty()) {
    for (const LcoreStats& l : stats.lcores) all.Merge(l.ack_latency_seconds);
  }
  x.Histo("sluice_ack_latency_seconds", "Produce to durable acknowledgement latency, per message.",
          {}, all);
  for (const auto& [code, n] : ctx.http_responses) {
    x.Sample("sluice_control_http_responses_total", "counter",
             "REST API responses, by HTTP status.", {{"code", absl::StrCat(code)}}, n);
  }
  return x.Text();
}

}  // namespace sluice::control
