// One worker lcore: an agent whose pass polls its RX queues, drains its inbound hand-off rings,
// services the shards it owns (batches, durability, timers, deliveries) and transmits the replies
// of the pass in bursts. Nothing here is shared with another lcore except through the rings;
// the counters are read (never written) by the main lcore.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dataplane/counters.h"
#include "dataplane/frontend.h"
#include "dataplane/port.h"
#include "dataplane/queue_table.h"
#include "dataplane/tx_buffer.h"
#include "dataplane/wall_clock.h"
#include "hwconf/layout.h"

namespace sluice::dataplane {

class AddressCheck;
class FrameHandler;
class StartupRecovery;
class StorageShell;
class ReplicationShell;
class ReplicationRoleView;
class HandoffReplicator;
struct ReplicationStatus;
class Persistence;
struct StorageFault;
class TablePublisher;

struct RxQueue {
  const PortRuntime* port = nullptr;
  uint16_t queue = 0;
};

// How a worker that sleeps is woken by the others: they check `sleeping` after a hand-off and
// write the eventfd. Sender and sleeper order their accesses with seq_cst, so a hand-off that
// lands while the worker decides to sleep is either seen by its last ring check or wakes it.
struct alignas(64) WakeSignal {
  std::atomic<bool> sleeping{false};
  int fd = -1;  // eventfd
};

// The storage shell's counters, copied on the lcore with the partition figures.
struct StorageFigures {
  uint64_t batches = 0;      // batches written (durable)
  uint64_t submits = 0;      // io_uring submit calls that submitted something
  uint64_t completions = 0;  // batches completed
};

// Partition figures a worker publishes when the control thread asks (ControlBackend::Stats):
// the reader bumps `requested` and waits for `published` to reach it; the worker fills `figures`
// at the end of a pass in between. Readers take `reader_mu` for the whole exchange, so the worker
// never waits and never writes while a reader copies.
struct alignas(64) StatsMailbox {
  std::atomic<uint64_t> requested{0};
  std::atomic<uint64_t> published{0};
  std::mutex reader_mu;
  std::vector<PartitionFigures> figures;
  StorageFigures storage;  // the worker's storage shell (zeros: every queue in memory)
};

// State every worker reads and nobody writes after start-up (but the wake signals, the table
// publisher and the stats mailboxes).
struct SharedRuntime {
  const hwconf::Layout* layout = nullptr;
  TablePublisher* tables = nullptr;  // the current QueueTable, published with RCU
  uint32_t min_message_bytes = 0;    // shards are sized for at least this (runtime queues)
  std::vector<PortRuntime> ports;
  rte_mempool* pool = nullptr;
  uint64_t tsc_hz = 0;
  uint64_t tsc_start = 0;  // one time base for every worker (cookies, verification times)
  // Wall-clock time at tsc_start: the clock every worker passes to its shards reads Unix time,
  // so that timestamps in logs survive restarts (timestamp fetches, TTLs, dedup windows); each
  // worker's WallClock keeps it on CLOCK_REALTIME from there (wall_clock.h).
  uint64_t unix_ns_at_start = 0;
  // Storage: null when every queue is in memory (no durable queue in the layout).
  StartupRecovery* recovery = nullptr;
  const StorageFault* storage_fault = nullptr;  // test seam, see storage_shell.h
  // rings[from][to]: single-producer/single-consumer hand-off from worker `from` to `to`.
  std::array<std::array<rte_ring*, kMaxWorkers>, kMaxWorkers> rings{};
  uint16_t worker_count = 0;
  WakeSignal* wake = nullptr;  // [worker_count]
  StatsMailbox* stats = nullptr;  // [worker_count]
  AddressCheck* address_check = nullptr;
  // Replication status (null: no replication): workers that do not poll the link read the role.
  ReplicationStatus* replication_status = nullptr;
};

class Worker {
 public:
  static constexpr uint16_t kRxBurst = 32;

  // Registers as reader `index` of the table publisher (Run unregisters when it returns).
  // `storage`: this worker's storage shell (null: every queue in memory).
  // `replication`: this worker polls the replication link (null: it does not, or no replication).
  Worker(uint16_t index, const hwconf::Lcore& conf, const SharedRuntime& shared,
         std::unique_ptr<StorageShell> storage,
         std::unique_ptr<ReplicationShell> replication = nullptr,
         std::unique_ptr<HandoffReplicator> handoff = nullptr);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // The lcore body: loops until `stop`, then drains what it holds and returns 0.
  int Run(const std::atomic<bool>& stop);

  uint16_t index() const { return index_; }
  int lcore_id() const { return conf_.id; }
  const LcoreCounters& counters() const { return counters_; }
  const FrameHandler& handler() const { return *handler_; }
  // The frontend's storage: null when in memory, and on a standby (the replication shell writes
  // its logs; the frontend answers NOT_PRIMARY).
  Persistence* frontend_storage();
  ReplicationShell* replication() { return replication_.get(); }
  Replicator* replicator();
  StorageShell* storage() { return storage_.get(); }  // null: in memory
  const StorageShell* storage() const { return storage_.get(); }

  // Used by the frame handler: queue a reply for transmission on `port_id`.
  void Transmit(uint16_t port_id, rte_mbuf* m) { tx_[port_id].Add(m, counters_); }
  // Hand a frame to worker `to`; false when its ring is full (caller answers THROTTLED).
  bool HandOff(uint16_t to, rte_mbuf* m);
  // A received frame the handler is done with: freed with the rest of its burst in one
  // rte_pktmbuf_free_bulk (one mempool put per burst instead of one per frame).
  void Retire(rte_mbuf* m) {
    if (retired_n_ == retired_.size()) FreeRetired();
    retired_[retired_n_++] = m;
  }
  // An mbuf for a reply: a received frame this worker retired (kept by FreeRetired), reset as
  // rte_pktmbuf_alloc would, or else one from the pool. Null when the pool is empty.
  rte_mbuf* AllocReply() {
    if (spare_n_ == 0) return rte_pktmbuf_alloc(shared_.pool);
    rte_mbuf* m = spare_[--spare_n_];
    rte_pktmbuf_reset(m);
    return m;
  }
  LcoreCounters& mutable_counters() { return counters_; }
  // Time of the current loop pass (read once per pass: frames of a pass share it).
  uint64_t NowNs() const { return now_ns_; }
  // The table of the current pass (loaded from the publisher at its start).
  const QueueTable& table() const { return *table_; }
  // Entries waiting in this worker's inbound hand-off rings (any thread may ask).
  uint64_t RingOccupancy() const;

 private:
  uint32_t PollRx();
  uint32_t PollRings();
  void FlushTx();
  // Sleeps up to `ns`, or until a packet or a hand-off arrives (when the ports can tell).
  void Sleep(uint64_t ns);
  bool RingsEmpty() const;
  inline bool AwaitingKernel() const;  // defined and used in worker.cc only (inlined into Run)
  void SetUpWakeups();
  void LoadTable();         // start of a pass: a newer table? reconcile partitions
  // End of a pass: figures asked for by the control thread. Inline: a pass asks, and nearly
  // every pass finds nothing asked (a call per pass cost more than the two loads).
  void AnswerStatsRequest() {
    StatsMailbox& box = shared_.stats[index_];
    const uint64_t requested = box.requested.load(std::memory_order_acquire);
    if (requested != box.published.load(std::memory_order_relaxed)) PublishStats(box, requested);
  }
  void PublishStats(StatsMailbox& box, uint64_t requested);

  const uint16_t index_;
  const hwconf::Lcore& conf_;
  const SharedRuntime& shared_;
  std::vector<RxQueue> rx_;
  std::vector<rte_ring*> inbound_;
  std::vector<TxBuffer> tx_;  // indexed by port id
  std::array<rte_mbuf*, kRxBurst> retired_{};  // Retire(): freed at the end of each burst
  uint32_t retired_n_ = 0;
  // A received frame is freed and a reply allocated in the same pass (a window-1 PRODUCE and
  // its ACK): instead of a mempool put and get, the last frame of a burst is kept as the next
  // reply's mbuf while fewer than kSpares are kept (one per burst: a flood's frames still go in
  // one bulk free).
  static constexpr uint32_t kSpares = 4;
  std::array<rte_mbuf*, kSpares> spare_{};
  uint32_t spare_n_ = 0;
  void FreeRetired() {
    if (retired_n_ == 0) return;
    uint32_t n = retired_n_;
    retired_n_ = 0;
    // One segment only (a chain goes to the bulk free, which frees every segment). Kept when
    // this was the last reference (a frame handed to other workers may still be theirs): then a
    // plain direct mbuf, ready for the pool or for reuse.
    if (spare_n_ < kSpares && retired_[n - 1]->nb_segs == 1) {
      rte_mbuf* m = rte_pktmbuf_prefree_seg(retired_[--n]);
      if (m != nullptr) {
        if (m->pool == shared_.pool) {
          spare_[spare_n_++] = m;
        } else {
          rte_mbuf_raw_free(m);
        }
      }
    }
    if (n != 0) rte_pktmbuf_free_bulk(retired_.data(), n);
  }
  void FreeSpares() {
    while (spare_n_ != 0) rte_mbuf_raw_free(spare_[--spare_n_]);
  }
  std::unique_ptr<StorageShell> storage_;  // before handler_: the frontend uses it
  std::unique_ptr<ReplicationShell> replication_;  // likewise
  std::unique_ptr<ReplicationRoleView> role_view_;  // other workers of a replicated box
  // A shard lcore of a box with a dedicated replication lcore: hands its batches to it.
  std::unique_ptr<HandoffReplicator> handoff_;
  std::unique_ptr<FrameHandler> handler_;
  const QueueTable* table_ = nullptr;
  std::vector<PartitionFigures> figures_;  // built here, swapped into the mailbox
  void UpdateClock();
  WallClock clock_;
  uint64_t now_ns_ = 0;
  int epoll_fd_ = -1;
  bool rx_wakeups_ = false;  // every RX queue can interrupt
  alignas(64) LcoreCounters counters_;
};

}  // namespace sluice::dataplane
