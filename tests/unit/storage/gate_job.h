// A file-worker job that blocks until released: a disk that does not answer, holding a
// storage::FileWorker busy so that the jobs behind it queue. Shared by the tests of the file
// worker, the storage shell and the dedicated replication lcore's log reader.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "storage/file_worker.h"

namespace sluice::storage::testing {

class GateJob final : public FileJob {
 public:
  // Once released, the job runs `then` (if any) on the worker's thread and answers `result`.
  explicit GateJob(absl::Status result = absl::OkStatus(), std::function<void()> then = nullptr)
      : result_(std::move(result)), then_(std::move(then)) {}

  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool started() const { return started_.load(); }

 protected:
  absl::Status Run() override {
    started_.store(true);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return open_; });
    if (then_) then_();
    return result_;
  }

 private:
  const absl::Status result_;
  const std::function<void()> then_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  std::atomic<bool> started_{false};
};

// `worker` held busy by a GateJob from construction (once the worker has taken it) until
// Release() or the end of the scope.
class HeldWorker {
 public:
  explicit HeldWorker(FileWorker& worker) : gate_(std::make_shared<GateJob>()) {
    EXPECT_TRUE(worker.Submit(gate_));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!gate_->started() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    EXPECT_TRUE(gate_->started());
  }
  ~HeldWorker() { gate_->Release(); }
  HeldWorker(const HeldWorker&) = delete;
  HeldWorker& operator=(const HeldWorker&) = delete;
  void Release() { gate_->Release(); }

 private:
  std::shared_ptr<GateJob> gate_;
};

}  // namespace sluice::storage::testing
