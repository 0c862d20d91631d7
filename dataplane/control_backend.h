// sluiced's side of the control plane (control/control_backend.h): publishes catalog snapshots
// to the worker lcores as QueueTables through RCU (TablePublisher), reads the workers' counters
// and partition figures for /v1/stats and /metrics, answers health, and registers the same
// figures as DPDK telemetry commands under /sluice/ (dpdk-telemetry.py).
//
// Every call runs on a control thread (start-up, REST workers, the telemetry thread), never on an
// lcore; nothing here touches a Shard: the lcores reconcile their partitions when they load a new
// table (Frontend::SetTable), and publish partition figures when asked (StatsMailbox).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <mutex>
#include <vector>

#include "control/control_backend.h"
#include "dataplane/table_publisher.h"
#include "dataplane/worker.h"
#include "hwconf/layout.h"

namespace sluice::dataplane {

struct ReplicationStatus;

class SluicedBackend final : public control::ControlBackend {
 public:
  // `rt` must have tables, stats and min_message_bytes set; it outlives the backend.
  SluicedBackend(const hwconf::Layout& layout, SharedRuntime& rt);
  ~SluicedBackend() override;

  // The workers run (after launch): stats and liveness read them from now on. Null: they are
  // about to stop (call it after the REST server stopped, before the workers are destroyed).
  void AttachWorkers(const std::vector<std::unique_ptr<Worker>>* workers);
  // Registers /sluice/health, /sluice/lcores, /sluice/queues with DPDK telemetry (once per
  // process; the commands answer "not running" after this backend is gone).
  void RegisterTelemetry();
  // Replication status (written by the link worker) and what `POST /v1/promote` does once it is
  // allowed (the daemon restarts itself as primary). Before the REST server starts.
  // `export_catalog`: the catalog document, sent to the standby after each publication.
  void AttachReplication(ReplicationStatus* status, std::string peer,
                         std::function<void(bool force)> promote,
                         std::function<std::string()> export_catalog);
  // Hands the current catalog to the link worker (primary; after each publication).
  void PushCatalog();

  absl::Status Publish(std::shared_ptr<const control::CatalogSnapshot> snapshot) override;
  control::BackendStats Stats() override;
  absl::Status Purge(const control::QueueMeta& queue) override;
  // Waits (bounded) until every worker's purge-mark syncs asked for so far completed.
  absl::Status AwaitPurgeMarks();
  // Opens the partitions of durable queues new in `table` off the lcores (before publishing).
  void PrepareNewPartitions(const QueueTable& table);
  control::HealthReport Liveness() override;
  control::HealthReport Readiness() override;
  control::RoleInfo Role() override;
  absl::StatusOr<uint64_t> Promote(bool force) override;
  control::VersionInfo Version() override;

  // The QueueInfo list a snapshot becomes (placement is QueueTable::Build's); checks that every
  // queue fits the shards as sized at start. Exposed for tests.
  static absl::StatusOr<std::vector<QueueInfo>> QueuesOf(const control::CatalogSnapshot& snapshot,
                                                         uint32_t message_cap,
                                                         uint32_t shards);

 private:
  // Partition figures of every worker, asked through the mailboxes (bounded wait).
  // Also the workers' storage counters, by worker index, when `storage` is given.
  std::vector<PartitionFigures> CollectFigures(std::vector<StorageFigures>* storage = nullptr);

  const hwconf::Layout& layout_;
  SharedRuntime& rt_;
  uint32_t message_cap_ = 0;  // the largest message the shards take (fixed by the first Publish)
  std::atomic<const std::vector<std::unique_ptr<Worker>>*> workers_{nullptr};
  ReplicationStatus* replication_ = nullptr;
  std::function<std::string()> export_catalog_;
  std::string peer_;
  std::function<void(bool)> promote_;
  std::mutex promote_mu_;
  bool promoting_ = false;

  std::mutex mu_;  // snapshot_, liveness samples
  std::shared_ptr<const control::CatalogSnapshot> snapshot_;
  struct LoopSample {
    uint64_t loops = 0;
    std::chrono::steady_clock::time_point changed{};
  };
  std::vector<LoopSample> loop_samples_;
};

}  // namespace sluice::dataplane
