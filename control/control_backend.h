// What the control plane needs from the process that runs the queues (sluiced), and the live
// statistics it reads back. sluiced implements ControlBackend; tests use FakeBackend
// (fake_backend.h). Every call comes from a control thread (REST worker threads, start-up), never
// from an lcore. Stats, health, role and version may be called concurrently from several REST
// threads; Publish and Purge are serialised by ControlService (one at a time, in version order); the implementation reaches lcores only through RCU publication and counters the
// lcores write and the control thread reads (docs/control.md §Integration).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "control/catalog.h"

namespace sluice::control {

struct PartitionStats {
  uint32_t partition = 0;
  uint32_t shard = 0;
  int lcore = -1;
  // Gauges.
  uint64_t depth = 0;            // messages stored and not yet consumed (work: ready + delayed)
  uint64_t in_flight = 0;        // work: leased, not yet deleted
  uint64_t delayed = 0;          // work: not yet visible
  uint64_t low_offset = 0;       // first offset still held (retention, purge)
  uint64_t next_offset = 0;      // written: offsets [0, next_offset) appended
  uint64_t durable_offset = 0;   // durable: [0, durable_offset) met the queue's durability
  uint64_t bytes_stored = 0;     // bytes held in memory chunks
  uint64_t bytes_on_disk = 0;    // bytes of durable batches in segment files
  // Counters (monotonic since the partition was set up in this process).
  uint64_t messages_in = 0;      // appended (retransmits and dedup hits not counted)
  uint64_t messages_out = 0;     // stream: pushed or fetched; work: leased (redeliveries too)
  uint64_t bytes_in = 0;         // record bytes
  uint64_t bytes_out = 0;
  uint64_t acked = 0;            // produces acknowledged (durable) to the producer
  uint64_t dead_lettered = 0;
  uint64_t expired = 0;          // TTL
  uint64_t throttled = 0;        // produces answered THROTTLED
  uint64_t purged = 0;           // messages dropped by purges
  // Rates, computed by the control plane from successive samples (ControlService::Stats); the
  // backend leaves them 0.
  double messages_in_per_s = 0;
  double messages_out_per_s = 0;
  double bytes_in_per_s = 0;
  double bytes_out_per_s = 0;
};

struct QueueStats {
  uint32_t id = 0;
  std::vector<PartitionStats> partitions;
};

// Log-linear or any other fixed buckets: counts[i] = observations <= upper_bounds[i] and above
// the previous bound (not cumulative); counts has one more entry, for +Inf.
struct Histogram {
  std::vector<double> upper_bounds;
  std::vector<uint64_t> counts;  // upper_bounds.size() + 1
  double sum = 0;
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t c : counts) n += c;
    return n;
  }
  // Adds `other` bucket by bucket (same bounds; an empty histogram takes other's bounds).
  // False, and nothing added, if the bounds differ.
  bool Merge(const Histogram& other);
};

struct LcoreStats {
  int lcore = -1;       // DPDK lcore id
  uint32_t worker = 0;  // worker index
  // dataplane::LcoreCounters
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
  uint64_t arp_replies = 0, icmp_echo_replies = 0;
  uint64_t frames = 0, messages_in = 0, handoffs_out = 0, handoffs_in = 0;
  uint64_t throttled = 0, error_replies = 0, idle_sleeps = 0, kernel_yields = 0,
           loops = 0, rx_bursts = 0, busy_ns = 0, loop_ns = 0;
  std::vector<std::pair<std::string, uint64_t>> drops;  // by reason (DropReasonName)
  // dataplane::FrontendCounters
  uint64_t produced = 0, acked = 0, duplicates = 0, rejected = 0, delivered = 0;
  uint64_t reply_no_buffer = 0;
  // Gauges and storage.
  uint64_t ring_occupancy = 0;   // entries waiting in this lcore's inbound hand-off rings
  uint64_t batches = 0;          // batches sealed
  uint64_t uring_submits = 0, uring_completions = 0;
  // Empty upper_bounds = not reported.
  Histogram batch_bytes;          // bytes per sealed batch
  Histogram batch_messages;       // messages per sealed batch
  Histogram ack_latency_seconds;  // produce -> durable ack, per message, on this lcore
};

struct BackendStats {
  uint64_t published_version = 0;  // catalog snapshot version the lcores run with
  std::vector<QueueStats> queues;  // queues the backend runs (by id)
  std::vector<LcoreStats> lcores;
  Histogram ack_latency_seconds;   // produce -> ack, every lcore's merged; empty = not reported
};

struct HealthCheck {
  std::string name;
  bool ok = true;
  std::string detail;
};
struct HealthReport {
  bool ok = true;
  std::vector<HealthCheck> checks;
};

struct RoleInfo {
  std::string role = "standalone";  // "primary", "standby" or "standalone"
  uint64_t epoch = 0;
  std::string peer;                 // the other box's link endpoint, or ""
  bool replication_connected = false;
  uint64_t replication_lag_bytes = 0;  // primary: offsets the standby has not acked yet
  bool caught_up = false;  // standby: caught up with the primary (promotable without force)
  bool fenced = false;     // primary: a newer epoch exists; it takes no writes
  bool catalog_replicated = false;  // primary: the standby acknowledged the current catalog
  std::vector<std::pair<std::string, uint64_t>> counters;  // the link's, by name
};

struct VersionInfo {
  std::vector<std::pair<std::string, std::string>> components;  // e.g. {"dpdk", "22.11.4"}
};

class ControlBackend {
 public:
  virtual ~ControlBackend() = default;

  // Makes `snapshot` the queue table the lcores route by. Called with snapshots of increasing
  // version, one at a time. The implementation builds its table, swaps it in (RCU), sets up new
  // queues' partitions, and for removed ids drains their shards and removes their logs once no
  // lcore reads the old table. An error means the dataplane does not run this snapshot.
  virtual absl::Status Publish(std::shared_ptr<const CatalogSnapshot> snapshot) = 0;
  // Live statistics of the published queues and of every worker lcore.
  virtual BackendStats Stats() = 0;
  // Drops every stored message of `queue` (ready, delayed, leased); offsets, idempotence and
  // dedup state stay (docs/control.md §Purge).
  virtual absl::Status Purge(const QueueMeta& queue) = 0;
  virtual HealthReport Liveness() = 0;   // the process makes progress (lcores loop)
  virtual HealthReport Readiness() = 0;  // ports up, catalog published, storage recovered
  virtual RoleInfo Role() = 0;
  virtual VersionInfo Version() = 0;
  // A standby becomes primary with the next epoch (persisted before it serves); refused unless
  // it has caught up, or `force`. Returns the new epoch; the box restarts into it.
  virtual absl::StatusOr<uint64_t> Promote(bool force) {
    (void)force;
    return absl::UnimplementedError("promotion is not supported by this backend");
  }
};

}  // namespace sluice::control
