#include "dataplane/control_backend.h"

#include "dataplane/replication_shell.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>

#include <rte_ethdev.h>
#include <rte_telemetry.h>
#include <rte_version.h>

#include "absl/strings/str_format.h"
#include "control/engine_config.h"
#include "control/errors.h"
#include "dataplane/frame_handler.h"
#include "dataplane/storage_shell.h"
#include "dataplane/worker.h"

namespace sluice::dataplane {
namespace {

namespace c = control;

// How long Stats waits for a worker to answer (a pass takes microseconds; an idle worker sleeps
// at most 1 ms). A worker that does not answer keeps its partitions out of this reading.
constexpr auto kFiguresWait = std::chrono::milliseconds(300);
// A worker whose loop counter did not move for this long is reported not live.
constexpr auto kStallAfter = std::chrono::seconds(2);

// The backend the telemetry callbacks read (they take no user pointer in DPDK 22.11).
std::mutex g_telemetry_mu;
SluicedBackend* g_telemetry_backend = nullptr;

}  // namespace

SluicedBackend::SluicedBackend(const hwconf::Layout& layout, SharedRuntime& rt)
    : layout_(layout), rt_(rt) {
  loop_samples_.resize(layout.lcores.size());
}

SluicedBackend::~SluicedBackend() {
  std::lock_guard lock(g_telemetry_mu);
  if (g_telemetry_backend == this) g_telemetry_backend = nullptr;
}

void SluicedBackend::AttachWorkers(const std::vector<std::unique_ptr<Worker>>* workers) {
  // Telemetry callbacks run under g_telemetry_mu: once this returns, none still reads the
  // previous workers (the REST server, the other reader, is stopped before workers go away).
  std::lock_guard lock(g_telemetry_mu);
  workers_.store(workers, std::memory_order_release);
}

absl::StatusOr<std::vector<QueueInfo>> SluicedBackend::QueuesOf(
    const c::CatalogSnapshot& snapshot, uint32_t message_cap, uint32_t shards) {
  std::vector<QueueInfo> queues;
  queues.reserve(snapshot.queues().size());
  std::vector<uint32_t> per_shard(shards, 0);
  const uint32_t max_per_shard = EngineShardConfig(0).max_partitions;
  shard::QueueConfig base;
  base.memory_budget_chunks = 64;  // as layout-declared queues had: a partition's share
  for (const c::QueueMeta& meta : snapshot.queues()) {
    QueueInfo q;
    q.id = meta.id;
    q.name = meta.name();
    q.config = c::ToShardQueueConfig(meta, snapshot, base);
    q.receive_wait_ms = meta.spec.attributes.receive_wait_ms;
    q.purge_generation = meta.purge_generation;
    q.sync_replication = meta.spec.attributes.replication == hwconf::ReplicationMode::kSync;
    q.degrade_allow = meta.spec.attributes.replication_degrade == c::Degrade::kAllow;
    q.partition_shard.resize(meta.spec.partitions);
    if (message_cap != 0 && q.config.max_message_bytes > message_cap) {
      return c::MakeError(
          absl::StatusCode::kResourceExhausted, c::errc::kLimit, "attributes.max_message_bytes",
          absl::StrFormat("queue '%s': max_message_bytes %u is more than this sluiced's shards "
                          "were sized for at start (%u bytes); restart sluiced to resize them",
                          q.name, q.config.max_message_bytes, message_cap));
    }
    for (uint32_t p = 0; p < meta.spec.partitions; ++p) {
      const uint32_t shard = static_cast<uint32_t>((uint64_t{meta.id} - 1 + p) % shards);
      if (++per_shard[shard] > max_per_shard) {
        return c::MakeError(absl::StatusCode::kResourceExhausted, c::errc::kLimit, "partitions",
                            absl::StrFormat("queue '%s': shard %u would hold more than %u "
                                            "partitions", q.name, shard, max_per_shard));
      }
    }
    queues.push_back(std::move(q));
  }
  return queues;
}

absl::Status SluicedBackend::Publish(std::shared_ptr<const c::CatalogSnapshot> snapshot) {
  // Publications come one at a time (ControlService); mu_ guards against Stats readers only.
  uint32_t cap = message_cap_;
  if (cap == 0) {
    // The first publication happens before the workers exist: their shards are sized for the
    // largest message of this table (and at least rt_.min_message_bytes).
    uint32_t largest = rt_.min_message_bytes;
    for (const c::QueueMeta& m : snapshot->queues()) {
      largest = std::max(largest, m.spec.attributes.max_message_bytes);
    }
    cap = EngineMessageCap(largest);
  }
  auto queues = QueuesOf(*snapshot, cap, layout_.shards);
  if (!queues.ok()) return queues.status();
  auto table = QueueTable::Build(layout_, std::move(*queues), snapshot->version());
  if (!table.ok()) return table.status();
  PrepareNewPartitions(**table);
  rt_.tables->Publish(std::move(*table));
  {
    std::lock_guard lock(mu_);
    message_cap_ = cap;
    snapshot_ = std::move(snapshot);
  }
  PushCatalog();  // metadata replication (primary): the standby gets this catalog too
  return absl::OkStatus();
}

absl::Status SluicedBackend::Purge(const c::QueueMeta& meta) {
  // The purge generation travels in the table just published: each owner drops the partition's
  // messages when it loads that table (Frontend::SetTable). A durable sync queue on a primary
  // with a standby: the purge is answered once the standby wrote every partition's purge mark
  // (docs/replication.md §13), waited for here (a control thread; bounded).
  const c::QueueAttributes& at = meta.spec.attributes;
  if (at.durability != hwconf::Durability::kNone) {
    if (absl::Status st = AwaitPurgeMarks(); !st.ok()) return st;
  }
  if (replication_ == nullptr || replication_->role.load(std::memory_order_relaxed) != 1 ||
      at.replication != hwconf::ReplicationMode::kSync ||
      at.durability == hwconf::Durability::kNone) {
    return absl::OkStatus();
  }
  ReplicationStatus& rs = *replication_;
  // The bound a reply waits (1 s), plus a sleeping worker's wake-up and the table's reach.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (;;) {
    {
      std::lock_guard lock(rs.purge_mu);
      auto it = std::find_if(rs.purges.begin(), rs.purges.end(), [&](const auto& p) {
        return p.queue == meta.id && p.generation == meta.purge_generation;
      });
      if (it != rs.purges.end() && it->settled >= meta.spec.partitions) {
        const ReplicationStatus::PurgeSettlement e = *it;
        rs.purges.erase(it);
        if (e.failed > 0) {
          return absl::InternalError(absl::StrFormat(
              "%u partition(s) could not log the purge mark", e.failed));
        }
        if (e.not_replicated > 0) {
          return absl::UnavailableError(absl::StrFormat(
              "NOT_REPLICATED: the standby did not confirm the purge of %u partition(s) (gone "
              "or lagging); done here, it reaches the standby when it is back", e.not_replicated));
        }
        return absl::OkStatus();
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::UnavailableError(
          "NOT_REPLICATED: the purge was not confirmed by the standby in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void SluicedBackend::PrepareNewPartitions(const QueueTable& table) {
  // A durable queue created at runtime: the slow file work of opening its partitions (about
  // 1-15 ms each: directory, first segment create + fallocate + fsync, ack log) happens here, on
  // the control thread, before the table that has it reaches the workers; each owner then only
  // adopts ready files on its lcore (StorageShell::Open, docs/storage.md §9). Until Publish
  // returns, the queue is not in any worker's table: a produce to it is answered as for any
  // unknown queue. The first publication (start-up) has no workers yet (start-up recovery opens
  // those); a standby's partitions are its replication shell's.
  if (rt_.recovery == nullptr || workers_.load(std::memory_order_acquire) == nullptr) return;
  if (replication_ != nullptr && replication_->role.load(std::memory_order_relaxed) == 2) return;
  std::vector<uint32_t> known;
  {
    std::lock_guard lock(mu_);
    if (snapshot_ != nullptr) {
      for (const c::QueueMeta& m : snapshot_->queues()) known.push_back(m.id);
    }
  }
  std::vector<std::pair<uint32_t, uint32_t>> fresh;
  for (const QueueInfo& q : table.queues()) {
    if (q.config.durability == shard::Durability::kNone ||
        std::find(known.begin(), known.end(), q.id) != known.end()) {
      continue;
    }
    for (uint32_t p = 0; p < q.partition_shard.size(); ++p) fresh.emplace_back(q.id, p);
  }
  if (!fresh.empty()) rt_.recovery->PrepareAll(layout_.storage, fresh);
}

absl::Status SluicedBackend::AwaitPurgeMarks() {
  // Each owner wrote its partitions' purge marks while it applied the table Publish just
  // published, through its lcore's io_uring: a write with an fdatasync linked behind it, which
  // the lcore does not wait for (docs/storage.md §6). The purge is answered once those syncs
  // completed, as it was when the lcore made them itself.
  const auto* workers = workers_.load(std::memory_order_acquire);
  if (workers == nullptr) return absl::OkStatus();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (const std::unique_ptr<Worker>& w : *workers) {
    const StorageShell* st = w->storage();
    if (st == nullptr) continue;
    const StorageShellStats& ss = st->stats();
    const uint64_t want = ss.ack_sync_requests.load();
    const uint64_t failed_before = ss.ack_syncs_failed.load();
    while (ss.ack_syncs_done.load() + ss.ack_syncs_failed.load() < want) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return absl::UnavailableError("the purge mark was not synced to disk in time");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (ss.ack_syncs_failed.load() != failed_before) {
      return absl::InternalError(
          "a partition's purge mark could not be written (its ack log failed: STORAGE_FAILED)");
    }
  }
  return absl::OkStatus();
}

std::vector<PartitionFigures> SluicedBackend::CollectFigures(
    std::vector<StorageFigures>* storage) {
  std::vector<PartitionFigures> all;
  const auto* workers = workers_.load(std::memory_order_acquire);
  if (workers == nullptr) return all;
  if (storage != nullptr) storage->assign(workers->size(), StorageFigures{});
  for (size_t w = 0; w < workers->size(); ++w) {
    StatsMailbox& box = rt_.stats[w];
    std::lock_guard lock(box.reader_mu);
    const uint64_t want = box.requested.fetch_add(1, std::memory_order_acq_rel) + 1;
    const auto deadline = std::chrono::steady_clock::now() + kFiguresWait;
    bool answered = false;
    while (!(answered = box.published.load(std::memory_order_acquire) >= want) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (answered) {
      all.insert(all.end(), box.figures.begin(), box.figures.end());
      if (storage != nullptr) (*storage)[w] = box.storage;
    }
  }
  return all;
}

namespace {

// A snapshot of an lcore's histogram (relaxed loads: each bucket whole, the set not atomic), its
// bounds and sum scaled (ns -> s).
template <typename H>
c::Histogram ToHistogram(const H& h, double scale) {
  c::Histogram out;
  out.upper_bounds.reserve(H::kBounds);
  out.counts.reserve(H::kBuckets);
  for (size_t i = 0; i < H::kBounds; ++i) out.upper_bounds.push_back(double(H::UpperBound(i)) * scale);
  for (size_t i = 0; i < H::kBuckets; ++i) out.counts.push_back(h.count(i));
  out.sum = double(h.sum()) * scale;
  return out;
}

}  // namespace

c::BackendStats SluicedBackend::Stats() {
  c::BackendStats out;
  std::shared_ptr<const c::CatalogSnapshot> snapshot;
  {
    std::lock_guard lock(mu_);
    snapshot = snapshot_;
  }
  if (snapshot == nullptr) return out;
  out.published_version = snapshot->version();

  std::map<std::pair<uint32_t, uint32_t>, PartitionFigures> figures;
  std::vector<StorageFigures> storage;
  for (const PartitionFigures& f : CollectFigures(&storage)) figures[{f.queue, f.partition}] = f;
  for (const c::QueueMeta& meta : snapshot->queues()) {
    c::QueueStats qs;
    qs.id = meta.id;
    for (uint32_t p = 0; p < meta.spec.partitions; ++p) {
      c::PartitionStats ps;
      ps.partition = p;
      ps.shard = static_cast<uint32_t>((uint64_t{meta.id} - 1 + p) % layout_.shards);
      for (const hwconf::Lcore& l : layout_.lcores) {
        if (std::find(l.shards.begin(), l.shards.end(), ps.shard) != l.shards.end()) {
          ps.lcore = l.id;
        }
      }
      if (auto it = figures.find({meta.id, p}); it != figures.end()) {
        const PartitionFigures& f = it->second;
        ps.depth = f.depth;
        ps.in_flight = f.in_flight;
        ps.delayed = f.delayed;
        ps.low_offset = f.low_offset;
        ps.next_offset = f.next_offset;
        ps.durable_offset = f.durable_offset;
        ps.bytes_stored = f.bytes_stored;
        ps.bytes_on_disk = f.bytes_on_disk;
        ps.messages_in = f.counters.messages_in;
        ps.messages_out = f.counters.messages_out;
        ps.bytes_in = f.counters.bytes_in;
        ps.bytes_out = f.counters.bytes_out;
        ps.acked = f.counters.acked;
        ps.dead_lettered = f.counters.dead_lettered;
        ps.expired = f.counters.expired;
        ps.throttled = f.counters.throttled;
        ps.purged = f.counters.purged;
      }
      qs.partitions.push_back(ps);
    }
    out.queues.push_back(std::move(qs));
  }

  const auto* workers = workers_.load(std::memory_order_acquire);
  if (workers == nullptr) return out;
  for (const auto& w : *workers) {
    const LcoreCounters& lc = w->counters();
    const FrontendCounters& fc = w->handler().frontend_counters();
    c::LcoreStats ls;
    ls.lcore = w->lcore_id();
    ls.worker = w->index();
    ls.rx_packets = lc.rx_packets;
    ls.rx_bytes = lc.rx_bytes;
    ls.tx_packets = lc.tx_packets;
    ls.tx_bytes = lc.tx_bytes;
    ls.arp_replies = lc.arp_replies;
    ls.icmp_echo_replies = lc.icmp_echo_replies;
    ls.frames = lc.frames;
    ls.messages_in = fc.produced;
    ls.handoffs_out = lc.handoffs_out;
    ls.handoffs_in = lc.handoffs_in;
    ls.throttled = lc.throttled;
    ls.error_replies = lc.error_replies;
    ls.idle_sleeps = lc.idle_sleeps;
    ls.kernel_yields = lc.kernel_yields;
    ls.loops = lc.loops;
    ls.rx_bursts = lc.rx_bursts;
    ls.busy_ns = lc.busy_ns;
    ls.loop_ns = lc.loop_ns;
    for (size_t r = 0; r < lc.drops.size(); ++r) {
      ls.drops.emplace_back(std::string(DropReasonName(static_cast<DropReason>(r))), lc.drops[r]);
    }
    ls.produced = fc.produced;
    ls.acked = fc.acked;
    ls.duplicates = fc.duplicates;
    ls.rejected = fc.rejected;
    ls.delivered = fc.delivered;
    ls.reply_no_buffer = fc.reply_no_buffer;
    ls.ring_occupancy = w->RingOccupancy();
    const FrontendHistograms& h = w->handler().frontend_histograms();
    ls.ack_latency_seconds = ToHistogram(h.ack_latency_ns, 1e-9);
    ls.batch_bytes = ToHistogram(h.batch_bytes, 1);
    ls.batch_messages = ToHistogram(h.batch_messages, 1);
    out.ack_latency_seconds.Merge(ls.ack_latency_seconds);
    if (w->index() < storage.size()) {
      ls.batches = storage[w->index()].batches;
      ls.uring_submits = storage[w->index()].submits;
      ls.uring_completions = storage[w->index()].completions;
    }
    out.lcores.push_back(std::move(ls));
  }
  return out;
}

c::HealthReport SluicedBackend::Liveness() {
  c::HealthReport r;
  const auto* workers = workers_.load(std::memory_order_acquire);
  if (workers == nullptr) {
    return c::HealthReport{false, {{"lcores", false, "workers not running"}}};
  }
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  std::string stalled;
  for (size_t i = 0; i < workers->size(); ++i) {
    const uint64_t loops = (*workers)[i]->counters().loops;
    LoopSample& s = loop_samples_[i];
    if (loops != s.loops || s.changed == std::chrono::steady_clock::time_point{}) {
      s.loops = loops;
      s.changed = now;
    } else if (now - s.changed > kStallAfter) {
      absl::StrAppendFormat(&stalled, "%sworker %u (lcore %d)", stalled.empty() ? "" : ", ", i,
                            (*workers)[i]->lcore_id());
    }
  }
  const bool ok = stalled.empty();
  r.ok = ok;
  r.checks.push_back({"lcores", ok,
                      ok ? absl::StrFormat("%u workers looping", workers->size())
                         : absl::StrCat("no loop progress for 2 s: ", stalled)});
  return r;
}

c::HealthReport SluicedBackend::Readiness() {
  c::HealthReport r;
  std::string down;
  for (const PortRuntime& p : rt_.ports) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(p.addr.port_id, &link) != 0 || link.link_status == 0) {
      absl::StrAppend(&down, down.empty() ? "" : ", ", p.conf->name);
    }
  }
  r.checks.push_back({"ports", down.empty(),
                      down.empty() ? absl::StrFormat("%u ports up", rt_.ports.size())
                                   : absl::StrCat("link down: ", down)});
  uint64_t version = 0;
  bool published = false;
  {
    std::lock_guard lock(mu_);
    published = snapshot_ != nullptr;
    if (published) version = snapshot_->version();
  }
  r.checks.push_back({"catalog", published,
                      published ? absl::StrFormat("version %u published", version)
                                : std::string("not published yet")});
  const bool running = workers_.load(std::memory_order_acquire) != nullptr;
  r.checks.push_back({"lcores", running, running ? "workers launched" : "workers not running"});
  r.checks.push_back({"storage", true, "not wired yet: queues live in memory"});
  for (const c::HealthCheck& ch : r.checks) r.ok = r.ok && ch.ok;
  return r;
}

void SluicedBackend::AttachReplication(ReplicationStatus* status, std::string peer,
                                       std::function<void(bool)> promote,
                                       std::function<std::string()> export_catalog) {
  replication_ = status;
  peer_ = std::move(peer);
  promote_ = std::move(promote);
  export_catalog_ = std::move(export_catalog);
}

void SluicedBackend::PushCatalog() {
  if (replication_ == nullptr || !export_catalog_ || replication_->role.load() != 1) return;
  std::string doc = export_catalog_();
  std::lock_guard lock(replication_->catalog_mu);
  replication_->catalog_out = std::move(doc);
  replication_->catalog_out_seq.fetch_add(1, std::memory_order_release);
}

c::RoleInfo SluicedBackend::Role() {
  c::RoleInfo r;
  if (replication_ == nullptr) return r;
  const int role = replication_->role.load(std::memory_order_relaxed);
  r.role = role == 1 ? "primary" : role == 2 ? "standby" : "standalone";
  r.epoch = replication_->epoch.load(std::memory_order_relaxed);
  r.peer = peer_;
  r.replication_connected = replication_->connected.load(std::memory_order_relaxed);
  r.replication_lag_bytes = replication_->figures.Get(ReplicationFigure::kLagOffsets);
  r.caught_up = replication_->caught_up.load(std::memory_order_relaxed);
  r.fenced = replication_->fenced.load(std::memory_order_relaxed);
  r.catalog_replicated = replication_->catalog_acked.load(std::memory_order_relaxed);
  // The box's figures (the channels' summed), then the few that are not sums.
  for (size_t f = 0; f < kReplicationFigures; ++f) {
    r.counters.emplace_back(std::string(kReplicationFigureNames[f]),
                            replication_->figures.v[f].load(std::memory_order_relaxed));
  }
  r.counters.emplace_back("backfill_reads_inflight_max",
                          replication_->backfill_reads_inflight_max.load(std::memory_order_relaxed));
  r.counters.emplace_back("apply_failures",
                          replication_->apply_failures.load(std::memory_order_relaxed));
  r.counters.emplace_back("status_seq", replication_->published.load(std::memory_order_acquire));
  r.counters.emplace_back("channels", replication_->channel_count);
  // Each replication channel (a worker lcore's own link queue, docs/replication.md §1).
  using F = ReplicationFigure;
  for (uint32_t i = 0; i < replication_->channel_count; ++i) {
    const ChannelStatus& ch = replication_->channels[i];
    const std::string p = "channel" + std::to_string(i) + "_";
    constexpr auto kR = std::memory_order_relaxed;
    r.counters.emplace_back(p + "connected", ch.connected.load(kR) ? 1 : 0);
    r.counters.emplace_back(p + "caught_up", ch.caught_up.load(kR) ? 1 : 0);
    r.counters.emplace_back(p + "partitions", ch.partitions.load(kR));
    r.counters.emplace_back(p + "epoch", ch.epoch.load(kR));
    r.counters.emplace_back(p + "lag", ch.figures.Get(F::kLagOffsets));
    r.counters.emplace_back(p + "batches_sent", ch.figures.Get(F::kBatchesSent));
    r.counters.emplace_back(p + "batches_applied", ch.figures.Get(F::kBatchesApplied));
    r.counters.emplace_back(p + "rx_shape_mismatch", ch.rx_shape_mismatch.load(kR));
    r.counters.emplace_back(p + "steered_out", ch.figures.Get(F::kLinkSteered));
    r.counters.emplace_back(p + "steered_in", ch.link_steered_in.load(kR));
    r.counters.emplace_back(p + "steer_full", ch.figures.Get(F::kLinkSteerDropped));
  }
  return r;
}

absl::StatusOr<uint64_t> SluicedBackend::Promote(bool force) {
  if (replication_ == nullptr || replication_->role.load() != 2) {
    return c::MakeError(absl::StatusCode::kFailedPrecondition, c::errc::kConflict, "",
                        "this box is not a standby");
  }
  if (!force && !replication_->caught_up.load()) {
    return c::MakeError(absl::StatusCode::kFailedPrecondition, c::errc::kConflict, "force",
                        "the standby has not caught up with the primary since it last heard "
                        "from it: promoting it may lose acknowledged messages; use --force to "
                        "promote anyway");
  }
  std::lock_guard lock(promote_mu_);
  if (!promoting_) {
    promoting_ = true;
    promote_(force);
  }
  return replication_->epoch.load() + 1;
}

c::VersionInfo SluicedBackend::Version() {
  return c::VersionInfo{{{"dpdk", rte_version()}}};
}

// ---- DPDK telemetry ----------------------------------------------------------------------------

namespace {

// Runs `fn(backend)` under the registration lock, or answers that sluiced is not running.
template <typename Fn>
int WithBackend(rte_tel_data* d, Fn fn) {
  std::lock_guard lock(g_telemetry_mu);
  rte_tel_data_start_dict(d);
  if (g_telemetry_backend == nullptr) {
    rte_tel_data_add_dict_string(d, "error", "sluiced control plane not running");
    return 0;
  }
  fn(*g_telemetry_backend, d);
  return 0;
}

int TelemetryHealth(const char*, const char*, rte_tel_data* d) {
  return WithBackend(d, [](SluicedBackend& b, rte_tel_data* out) {
    const c::HealthReport live = b.Liveness();
    const c::HealthReport ready = b.Readiness();
    rte_tel_data_add_dict_int(out, "live", live.ok);
    rte_tel_data_add_dict_int(out, "ready", ready.ok);
    for (const c::HealthCheck& ch : ready.checks) {
      rte_tel_data_add_dict_string(out, ch.name.c_str(), ch.detail.c_str());
    }
  });
}

int TelemetryLcores(const char*, const char*, rte_tel_data* d) {
  return WithBackend(d, [](SluicedBackend& b, rte_tel_data* out) {
    for (const c::LcoreStats& l : b.Stats().lcores) {
      rte_tel_data* e = rte_tel_data_alloc();
      if (e == nullptr) return;
      rte_tel_data_start_dict(e);
      rte_tel_data_add_dict_u64(e, "worker", l.worker);
      rte_tel_data_add_dict_u64(e, "rx_packets", l.rx_packets);
      rte_tel_data_add_dict_u64(e, "rx_bytes", l.rx_bytes);
      rte_tel_data_add_dict_u64(e, "tx_packets", l.tx_packets);
      rte_tel_data_add_dict_u64(e, "tx_bytes", l.tx_bytes);
      rte_tel_data_add_dict_u64(e, "frames", l.frames);
      rte_tel_data_add_dict_u64(e, "produced", l.produced);
      rte_tel_data_add_dict_u64(e, "acked", l.acked);
      rte_tel_data_add_dict_u64(e, "delivered", l.delivered);
      rte_tel_data_add_dict_u64(e, "rejected", l.rejected);
      rte_tel_data_add_dict_u64(e, "throttled", l.throttled);
      rte_tel_data_add_dict_u64(e, "handoffs_out", l.handoffs_out);
      rte_tel_data_add_dict_u64(e, "handoffs_in", l.handoffs_in);
      rte_tel_data_add_dict_u64(e, "ring_occupancy", l.ring_occupancy);
      rte_tel_data_add_dict_u64(e, "loops", l.loops);
      rte_tel_data_add_dict_u64(e, "rx_bursts", l.rx_bursts);
      rte_tel_data_add_dict_u64(e, "busy_ns", l.busy_ns);
      rte_tel_data_add_dict_u64(e, "loop_ns", l.loop_ns);
      rte_tel_data_add_dict_u64(e, "idle_sleeps", l.idle_sleeps);
      rte_tel_data_add_dict_u64(e, "kernel_yields", l.kernel_yields);
      uint64_t drops = 0;
      for (const auto& [reason, n] : l.drops) drops += n;
      rte_tel_data_add_dict_u64(e, "drops", drops);
      rte_tel_data_add_dict_container(out, absl::StrFormat("lcore%d", l.lcore).c_str(), e, 0);
    }
  });
}

int TelemetryQueues(const char*, const char*, rte_tel_data* d) {
  return WithBackend(d, [](SluicedBackend& b, rte_tel_data* out) {
    const c::BackendStats s = b.Stats();
    rte_tel_data_add_dict_u64(out, "published_version", s.published_version);
    for (const c::QueueStats& q : s.queues) {
      rte_tel_data* e = rte_tel_data_alloc();
      if (e == nullptr) return;
      c::PartitionStats t;
      for (const c::PartitionStats& p : q.partitions) {
        t.depth += p.depth;
        t.in_flight += p.in_flight;
        t.messages_in += p.messages_in;
        t.messages_out += p.messages_out;
        t.bytes_in += p.bytes_in;
        t.bytes_out += p.bytes_out;
        t.bytes_on_disk += p.bytes_on_disk;
        t.acked += p.acked;
        t.throttled += p.throttled;
        t.purged += p.purged;
      }
      rte_tel_data_start_dict(e);
      rte_tel_data_add_dict_u64(e, "partitions", q.partitions.size());
      rte_tel_data_add_dict_u64(e, "depth", t.depth);
      rte_tel_data_add_dict_u64(e, "in_flight", t.in_flight);
      rte_tel_data_add_dict_u64(e, "messages_in", t.messages_in);
      rte_tel_data_add_dict_u64(e, "messages_out", t.messages_out);
      rte_tel_data_add_dict_u64(e, "bytes_in", t.bytes_in);
      rte_tel_data_add_dict_u64(e, "bytes_out", t.bytes_out);
      rte_tel_data_add_dict_u64(e, "bytes_on_disk", t.bytes_on_disk);
      rte_tel_data_add_dict_u64(e, "acked", t.acked);
      rte_tel_data_add_dict_u64(e, "throttled", t.throttled);
      rte_tel_data_add_dict_u64(e, "purged", t.purged);
      rte_tel_data_add_dict_container(out, absl::StrFormat("queue%u", q.id).c_str(), e, 0);
    }
  });
}

// One histogram as a flat dict (telemetry nests one level only): "count", "sum" (in `unit`s),
// and Prometheus-style cumulative buckets "le_<bound>" (bounds in `unit`s) and "le_inf".
void AddHistogram(rte_tel_data* out, const std::string& key, const c::Histogram& h, double unit) {
  if (h.upper_bounds.empty()) return;
  rte_tel_data* e = rte_tel_data_alloc();
  if (e == nullptr) return;
  rte_tel_data_start_dict(e);
  rte_tel_data_add_dict_u64(e, "count", h.count());
  rte_tel_data_add_dict_u64(e, "sum", static_cast<uint64_t>(h.sum / unit + 0.5));
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    const std::string le =
        i < h.upper_bounds.size()
            ? absl::StrFormat("le_%u", static_cast<uint64_t>(h.upper_bounds[i] / unit + 0.5))
            : std::string("le_inf");
    rte_tel_data_add_dict_u64(e, le.c_str(), cumulative);
  }
  rte_tel_data_add_dict_container(out, key.c_str(), e, 0);
}

int TelemetryHistograms(const char*, const char*, rte_tel_data* d) {
  return WithBackend(d, [](SluicedBackend& b, rte_tel_data* out) {
    for (const c::LcoreStats& l : b.Stats().lcores) {
      AddHistogram(out, absl::StrFormat("lcore%d_ack_latency_ns", l.lcore), l.ack_latency_seconds,
                   1e-9);
      AddHistogram(out, absl::StrFormat("lcore%d_batch_bytes", l.lcore), l.batch_bytes, 1);
      AddHistogram(out, absl::StrFormat("lcore%d_batch_messages", l.lcore), l.batch_messages, 1);
    }
  });
}

}  // namespace

void SluicedBackend::RegisterTelemetry() {
  std::lock_guard lock(g_telemetry_mu);
  static bool registered = false;
  g_telemetry_backend = this;
  if (registered) return;
  registered = true;
  // DPDK refuses (-EINVAL) a help text of 128 characters or more: a failure is logged.
  struct Command {
    const char* name;
    telemetry_cb fn;
    const char* help;
  };
  const Command commands[] = {
      {"/sluice/health", TelemetryHealth, "Liveness and readiness of sluiced. No parameters"},
      {"/sluice/lcores", TelemetryLcores, "Counters of every worker lcore. No parameters"},
      {"/sluice/queues", TelemetryQueues,
       "Per queue<ID>: depth, in flight, messages/bytes in/out, bytes on disk. No parameters"},
      {"/sluice/histograms", TelemetryHistograms,
       "Per lcore<ID>_{ack_latency_ns,batch_bytes,batch_messages}: count, sum, le_<bound>. "
       "No parameters"},
  };
  for (const Command& c : commands) {
    if (const int rc = rte_telemetry_register_cmd(c.name, c.fn, c.help); rc != 0) {
      std::fprintf(stderr, "sluiced: telemetry command %s not registered: %s\n", c.name,
                   std::strerror(-rc));
    }
  }
}

}  // namespace sluice::dataplane
