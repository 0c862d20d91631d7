#include "storage/spare_preparer.h"

#include <pthread.h>

#include <cstdio>
#include <utility>

#include "protocol/assert.h"

namespace sluice::storage {

SparePreparer::SparePreparer(uint32_t max_slots, std::function<void()> while_preparing)
    : while_preparing_(std::move(while_preparing)) {
  queue_.reserve(max_slots);
  thread_ = std::thread([this] { Run(); });
  pthread_setname_np(thread_.native_handle(), "sluice-spare");  // for top / perf / ps -L
}

SparePreparer::~SparePreparer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void SparePreparer::Request(const std::shared_ptr<SpareSlot>& slot) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSERT(slot->state.load(std::memory_order_relaxed) == SpareSlot::kIdle);
    SLUICE_ASSERT(queue_.size() < queue_.capacity());  // one request per slot at a time
    slot->state.store(SpareSlot::kQueued, std::memory_order_relaxed);
    queue_.push_back(slot);
  }
  wake_.notify_one();
}

bool SparePreparer::TakeReady(SpareSlot& slot, Fd* fd, bool* direct) {
  if (slot.state.load(std::memory_order_acquire) != SpareSlot::kReady) return false;
  *fd = std::move(slot.fd);
  *direct = slot.direct;
  slot.state.store(SpareSlot::kIdle, std::memory_order_release);
  return true;
}

void SparePreparer::Cancel(SpareSlot& slot) {
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return slot.state.load() != SpareSlot::kPreparing; });
  if (slot.state.load() == SpareSlot::kQueued) {
    std::erase_if(queue_, [&](const std::shared_ptr<SpareSlot>& s) { return s.get() == &slot; });
  }
  if (slot.state.load() == SpareSlot::kReady) slot.fd.Reset();
  slot.state.store(SpareSlot::kIdle);
  lock.unlock();
  bool removed = false;
  (void)slot.dir.RemoveSpare(&removed);  // a leftover is removed by recovery anyway
}

void SparePreparer::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::shared_ptr<SpareSlot> slot = std::move(queue_.front());
    queue_.erase(queue_.begin());
    SLUICE_ASSERT(slot->state.load() == SpareSlot::kQueued);
    slot->state.store(SpareSlot::kPreparing);
    lock.unlock();
    bool direct = false;
    preparing_.store(true, std::memory_order_relaxed);
    if (while_preparing_) while_preparing_();
    absl::StatusOr<Fd> fd = slot->dir.PrepareSpare(slot->bytes, slot->direct_io, &direct);
    preparing_.store(false, std::memory_order_relaxed);
    lock.lock();
    if (fd.ok()) {
      slot->fd = std::move(*fd);
      slot->direct = direct;
      slot->state.store(SpareSlot::kReady, std::memory_order_release);
    } else {
      slot->error = fd.status().ToString();
      slot->state.store(SpareSlot::kFailed, std::memory_order_release);
    }
    done_.notify_all();
  }
}

}  // namespace sluice::storage
