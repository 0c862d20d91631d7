#include "storage/file_worker.h"

#include <pthread.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "protocol/assert.h"

namespace sluice::storage {

FileWorker::FileWorker(const char* name, uint32_t max_jobs) : max_jobs_(max_jobs) {
  SLUICE_ASSERT(max_jobs > 0);
  thread_ = std::thread([this] { Run(); });
  pthread_setname_np(thread_.native_handle(), name);
}

FileWorker::~FileWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
  SLUICE_ASSERT(queue_.empty());
}

bool FileWorker::Submit(std::shared_ptr<FileJob> job) {
  SLUICE_ASSERT(job != nullptr && job->state_.load(std::memory_order_relaxed) == FileJob::kIdle);
  {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSERT(!stop_);
    if (queue_.size() + running_ >= max_jobs_) return false;
    job->state_.store(FileJob::kQueued, std::memory_order_relaxed);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
  return true;
}

uint32_t FileWorker::pending() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<uint32_t>(queue_.size()) + running_;
}

void FileWorker::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    // On stop, what is queued still runs: a partition's file operation half done by a clean
    // shutdown would be no worse than a crash's, but there is no reason to leave it so.
    if (queue_.empty()) return;
    std::shared_ptr<FileJob> job = std::move(queue_.front());
    queue_.pop_front();
    running_ = 1;
    SLUICE_ASSERT(job->state_.load(std::memory_order_relaxed) == FileJob::kQueued);
    job->state_.store(FileJob::kRunning, std::memory_order_relaxed);
    lock.unlock();
    job->status_ = job->Run();
    // Release: the job's results (written by Run) are visible to the lcore that sees kDone.
    job->state_.store(FileJob::kDone, std::memory_order_release);
    completed_.fetch_add(1, std::memory_order_relaxed);
    job.reset();  // the last owner may be this thread (the lcore forgot the job): freed here
    lock.lock();
    running_ = 0;
  }
}

absl::Status RemoveTreeJob::Run() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) return absl::InternalError(absl::StrCat("removing ", path_, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace sluice::storage
