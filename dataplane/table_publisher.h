// How a new queue table reaches the worker lcores without a lock (docs/control.md): the control
// thread builds an immutable QueueTable, swaps an atomic pointer, and frees the previous table
// only after every worker passed a quiescent state (DPDK's rte_rcu_qsbr).
//
// Reader protocol, per worker lcore (thread id = worker index):
//   Register (which goes online) once, before the first Load; each loop pass: Load() at the
//   start, Quiescent() at the end (the pointer loaded is never dereferenced after that); Offline() before an idle sleep and Online()
//   after it (a sleeping worker does not hold up publication); Unregister (offline too) at exit.
// Writer: Publish, one at a time (ControlService serialises publications).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <rte_rcu_qsbr.h>

#include "absl/status/statusor.h"
#include "dataplane/queue_table.h"

namespace sluice::dataplane {

class TablePublisher {
 public:
  // Room for `readers` reader threads (ids 0 .. readers-1). Works without the EAL.
  static absl::StatusOr<std::unique_ptr<TablePublisher>> Create(uint32_t readers);
  ~TablePublisher();  // frees the current table; every reader must be offline
  TablePublisher(const TablePublisher&) = delete;
  TablePublisher& operator=(const TablePublisher&) = delete;

  // ---- readers (lcores) ----
  void Register(uint32_t reader);
  void Unregister(uint32_t reader);
  void Online(uint32_t reader) { rte_rcu_qsbr_thread_online(qsbr_, reader); }
  void Offline(uint32_t reader) { rte_rcu_qsbr_thread_offline(qsbr_, reader); }
  void Quiescent(uint32_t reader) { rte_rcu_qsbr_quiescent(qsbr_, reader); }
  const QueueTable* Load() const { return current_.load(std::memory_order_acquire); }

  // ---- writer (control thread, not a registered reader) ----
  // Makes `next` current. Returns after two grace periods: by then every online reader has
  // started a pass with `next` (so anything processed after Publish returns sees it), and the
  // previous table, which no reader can still hold, is freed.
  void Publish(std::unique_ptr<const QueueTable> next);
  // Returns once every reader that was online when it was called has passed a quiescent state
  // or gone offline (one grace period). Any thread but a registered, online reader.
  void WaitForReaders() { WaitGracePeriod(); }

  uint64_t published() const { return published_.load(std::memory_order_relaxed); }
  uint64_t freed() const { return freed_.load(std::memory_order_relaxed); }

 private:
  explicit TablePublisher(rte_rcu_qsbr* qsbr) : qsbr_(qsbr) {}
  void WaitGracePeriod();

  rte_rcu_qsbr* qsbr_;
  std::atomic<const QueueTable*> current_{nullptr};
  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> freed_{0};
};

}  // namespace sluice::dataplane
