// RenderMetrics byte for byte on hand-made stats: per-queue sums, per-partition counters and
// rates, per-lcore histograms as Prometheus histograms (cumulative _bucket{le}, _sum, _count),
// and the lcores' ack latency merged into sluice_ack_latency_seconds.
#include <gtest/gtest.h>

#include <string>

#include "control/metrics.h"

namespace sluice::control {
namespace {

CatalogSnapshot OneQueue() {
  QueueMeta q;
  q.id = 4;
  q.spec.name = "orders";
  q.spec.type = QueueType::kWork;
  q.spec.partitions = 2;
  return CatalogSnapshot(9, {q});
}

BackendStats Stats() {
  BackendStats s;
  s.published_version = 9;
  QueueStats qs;
  qs.id = 4;
  for (uint32_t p = 0; p < 2; ++p) {
    PartitionStats ps;
    ps.partition = p;
    ps.lcore = 1;
    ps.messages_in = 10 + p;
    ps.messages_out = 5;
    ps.bytes_in = 1000;
    ps.bytes_out = 400;
    ps.bytes_on_disk = 8192;
    ps.purged = p;
    ps.messages_in_per_s = 1.5;
    ps.bytes_out_per_s = 0.25;
    qs.partitions.push_back(ps);
  }
  s.queues.push_back(qs);
  for (int l = 1; l <= 2; ++l) {
    LcoreStats ls;
    ls.lcore = l;
    ls.ack_latency_seconds = Histogram{{0.001, 0.01}, {uint64_t(l), 2, 1}, 0.5};
    ls.batch_messages = Histogram{{1, 2, 4}, {3, 0, 1, 0}, 7};
    s.lcores.push_back(ls);
  }
  return s;
}

void ExpectLines(const std::string& text, std::initializer_list<const char*> lines) {
  for (const char* line : lines) {
    EXPECT_NE(text.find(line), std::string::npos) << "missing:\n" << line << "\nin:\n" << text;
  }
}

TEST(RenderMetrics, QueueSumsPartitionCountersAndRates) {
  const std::string m = RenderMetrics(Stats(), OneQueue(), MetricsContext{"1.0"});
  ExpectLines(m, {
      "# TYPE sluice_queue_messages_in_total counter\n"
      "sluice_queue_messages_in_total{queue=\"orders\"} 21\n",
      "sluice_queue_bytes_out_total{queue=\"orders\"} 800\n",
      "sluice_queue_disk_bytes{queue=\"orders\"} 16384\n",
      "sluice_queue_purged_total{queue=\"orders\"} 1\n",
      "# TYPE sluice_queue_messages_in_per_second gauge\n"
      "sluice_queue_messages_in_per_second{queue=\"orders\"} 3\n",
      "sluice_queue_bytes_out_per_second{queue=\"orders\"} 0.5\n",
      "sluice_partition_messages_in_total{queue=\"orders\",partition=\"1\"} 11\n",
      "sluice_partition_messages_out_total{queue=\"orders\",partition=\"0\"} 5\n",
      "sluice_partition_purged_total{queue=\"orders\",partition=\"1\"} 1\n",
      "sluice_partition_messages_in_per_second{queue=\"orders\",partition=\"0\"} 1.5\n",
      "sluice_partition_bytes_out_per_second{queue=\"orders\",partition=\"1\"} 0.25\n",
  });
}

TEST(RenderMetrics, LcoreHistogramsAndTheMergedAckLatency) {
  const std::string m = RenderMetrics(Stats(), OneQueue(), MetricsContext{"1.0"});
  ExpectLines(m, {
      "# HELP sluice_lcore_ack_latency_seconds Produce to durable acknowledgement latency, per "
      "message, on this lcore.\n"
      "# TYPE sluice_lcore_ack_latency_seconds histogram\n"
      "sluice_lcore_ack_latency_seconds_bucket{lcore=\"1\",le=\"0.001\"} 1\n"
      "sluice_lcore_ack_latency_seconds_bucket{lcore=\"1\",le=\"0.01\"} 3\n"
      "sluice_lcore_ack_latency_seconds_bucket{lcore=\"1\",le=\"+Inf\"} 4\n"
      "sluice_lcore_ack_latency_seconds_sum{lcore=\"1\"} 0.5\n"
      "sluice_lcore_ack_latency_seconds_count{lcore=\"1\"} 4\n"
      "sluice_lcore_ack_latency_seconds_bucket{lcore=\"2\",le=\"0.001\"} 2\n",
      "# TYPE sluice_lcore_batch_messages histogram\n"
      "sluice_lcore_batch_messages_bucket{lcore=\"1\",le=\"1\"} 3\n"
      "sluice_lcore_batch_messages_bucket{lcore=\"1\",le=\"2\"} 3\n"
      "sluice_lcore_batch_messages_bucket{lcore=\"1\",le=\"4\"} 4\n"
      "sluice_lcore_batch_messages_bucket{lcore=\"1\",le=\"+Inf\"} 4\n"
      "sluice_lcore_batch_messages_sum{lcore=\"1\"} 7\n"
      "sluice_lcore_batch_messages_count{lcore=\"1\"} 4\n",
      // Both lcores: buckets (1+2, 2+2, 1+1), sum 0.5 + 0.5.
      "# TYPE sluice_ack_latency_seconds histogram\n"
      "sluice_ack_latency_seconds_bucket{le=\"0.001\"} 3\n"
      "sluice_ack_latency_seconds_bucket{le=\"0.01\"} 7\n"
      "sluice_ack_latency_seconds_bucket{le=\"+Inf\"} 9\n"
      "sluice_ack_latency_seconds_sum 1\n"
      "sluice_ack_latency_seconds_count 9\n",
  });
  // No batch_bytes reported: no family at all (not an empty histogram).
  EXPECT_EQ(m.find("sluice_lcore_batch_bytes"), std::string::npos);
}

TEST(Histogram, MergeRefusesOtherBounds) {
  Histogram a{{1, 2}, {1, 1, 1}, 3};
  EXPECT_TRUE(a.Merge(Histogram{{1, 2}, {0, 1, 0}, 2}));
  EXPECT_EQ(a.counts, (std::vector<uint64_t>{1, 2, 1}));
  EXPECT_EQ(a.sum, 5);
  EXPECT_FALSE(a.Merge(Histogram{{1, 3}, {1, 1, 1}, 1}));
  EXPECT_EQ(a.count(), 4u);
  Histogram empty;
  EXPECT_TRUE(empty.Merge(a));
  EXPECT_EQ(empty.counts, a.counts);
}

}  // namespace
}  // namespace sluice::control
