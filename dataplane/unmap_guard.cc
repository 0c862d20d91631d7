#include "dataplane/unmap_guard.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "dataplane/table_publisher.h"

namespace sluice::dataplane {
namespace {

std::atomic<TablePublisher*> g_readers{nullptr};
std::atomic<uint32_t> g_in_guard{0};  // guarded munmaps using g_readers right now
std::atomic<uint64_t> g_guarded{0};
thread_local bool t_poller = false;

void WaitForPollers() {
  if (t_poller) return;
  g_in_guard.fetch_add(1, std::memory_order_seq_cst);
  if (TablePublisher* readers = g_readers.load(std::memory_order_seq_cst)) {
    readers->WaitForReaders();
    g_guarded.fetch_add(1, std::memory_order_relaxed);
  }
  g_in_guard.fetch_sub(1, std::memory_order_release);
}

}  // namespace

void SetUnmapGuard(TablePublisher* readers) {
  g_readers.store(readers, std::memory_order_seq_cst);
  if (readers != nullptr) return;
  while (g_in_guard.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

void MarkPollerThread() { t_poller = true; }

uint64_t GuardedUnmaps() { return g_guarded.load(std::memory_order_relaxed); }

}  // namespace sluice::dataplane

// The interposed symbol (see unmap_guard.h). The system call itself: glibc's munmap is a plain
// wrapper around it, errno included.
extern "C" int munmap(void* addr, size_t length) noexcept {
  sluice::dataplane::WaitForPollers();
  return static_cast<int>(syscall(SYS_munmap, addr, length));
}
