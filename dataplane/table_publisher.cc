#include "dataplane/table_publisher.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include <rte_common.h>
#include <rte_errno.h>

#include "absl/strings/str_format.h"
#include "protocol/assert.h"

namespace sluice::dataplane {

absl::StatusOr<std::unique_ptr<TablePublisher>> TablePublisher::Create(uint32_t readers) {
  const ssize_t size = rte_rcu_qsbr_get_memsize(readers);
  if (size <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat("rte_rcu_qsbr for %u readers: %s", readers,
                                                      rte_strerror(rte_errno)));
  }
  // Plain cache-aligned memory: the QSBR variable is only touched by this process's threads.
  const size_t bytes = RTE_ALIGN_CEIL(static_cast<size_t>(size), RTE_CACHE_LINE_SIZE);
  auto* qsbr = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(RTE_CACHE_LINE_SIZE, bytes));
  if (qsbr == nullptr) return absl::ResourceExhaustedError("rte_rcu_qsbr: out of memory");
  if (rte_rcu_qsbr_init(qsbr, readers) != 0) {
    std::free(qsbr);
    return absl::InternalError(absl::StrFormat("rte_rcu_qsbr_init(%u): %s", readers,
                                               rte_strerror(rte_errno)));
  }
  return std::unique_ptr<TablePublisher>(new TablePublisher(qsbr));
}

TablePublisher::~TablePublisher() {
  delete current_.exchange(nullptr);
  std::free(qsbr_);
}

void TablePublisher::Register(uint32_t reader) {
  SLUICE_ASSERT(rte_rcu_qsbr_thread_register(qsbr_, reader) == 0);
  rte_rcu_qsbr_thread_online(qsbr_, reader);
}

void TablePublisher::Unregister(uint32_t reader) {
  rte_rcu_qsbr_thread_offline(qsbr_, reader);
  SLUICE_ASSERT(rte_rcu_qsbr_thread_unregister(qsbr_, reader) == 0);
}

void TablePublisher::WaitGracePeriod() {
  // rte_rcu_qsbr_synchronize spins; on a machine where the control thread shares a CPU with the
  // lcores (2-core CI, adaptive idle) a spinning waiter delays the very passes it waits for.
  // Check without blocking and sleep between checks instead: publication is not latency-bound.
  const uint64_t token = rte_rcu_qsbr_start(qsbr_);
  while (rte_rcu_qsbr_check(qsbr_, token, false) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void TablePublisher::Publish(std::unique_ptr<const QueueTable> next) {
  SLUICE_ASSERT(next != nullptr);
  const QueueTable* old = current_.exchange(next.release(), std::memory_order_acq_rel);
  published_.fetch_add(1, std::memory_order_relaxed);
  // First grace period: every reader that might have loaded `old` reported quiescent since, so
  // none holds it. Second: every online reader finished a pass that began after the first, i.e.
  // a pass that loaded the new table (and reconciled its partitions) at its start.
  WaitGracePeriod();
  WaitGracePeriod();
  if (old != nullptr) {
    delete old;
    freed_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace sluice::dataplane
