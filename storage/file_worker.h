// Control-path file work off the polling lcore: a thread that runs blocking file-system jobs
// (unlinks, directory fsyncs, a segment's creation, a log's cut or restart, a partition's
// recovery and opening, a read-only log state found again) and hands each result back through
// the job's atomic state, which the lcore looks at in its pass. The lcore never waits for a job
// (Seastar's syscall thread: the blocking call runs elsewhere, the result comes back to the
// reactor).
//
// One FileWorker per shell (a storage shell, a standby's replication shell), and one per
// dedicated replication lcore's LogFileReader (dataplane/replication_handoff.h: the log states
// of its catch-up reads). The lcore takes the worker's mutex once per job (Submit), never per
// message or per batch; a job in flight costs it one acquire load per pass (FileJob::done).
// Jobs run one at a time, in the order submitted: two jobs on one partition keep their order,
// as the same calls on the lcore did.
//
// The thread inherits the CPU affinity of the thread that creates the worker: sluiced creates
// its shells on the main thread (main.cc, before the workers launch), i.e. the housekeeping
// lcore's CPU, never a polling worker's (as the spare preparer: storage/spare_preparer.h).
//
// A job holds everything it works on (paths, a copy of the log state): the lcore may forget the
// partition meanwhile (a queue deleted), and the job still completes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace sluice::storage {

class FileJob {
 public:
  enum State : uint8_t { kIdle, kQueued, kRunning, kDone };
  FileJob() = default;
  virtual ~FileJob() = default;
  FileJob(const FileJob&) = delete;
  FileJob& operator=(const FileJob&) = delete;

  // The lcore's look at the job: one acquire load. Once true, status() and whatever Run wrote
  // into the job are the lcore's to read.
  bool done() const { return state_.load(std::memory_order_acquire) == kDone; }
  State state() const { return state_.load(std::memory_order_acquire); }
  const absl::Status& status() const { return status_; }

 protected:
  // On the worker's thread: the blocking calls. Its result is status() (and the job's fields).
  virtual absl::Status Run() = 0;

 private:
  friend class FileWorker;
  std::atomic<State> state_{kIdle};
  absl::Status status_;
};

class FileWorker {
 public:
  // `name`: the thread's (top, ps -L; at most 15 characters). `max_jobs`: the bound of jobs
  // queued or running at once (Submit refuses more).
  FileWorker(const char* name, uint32_t max_jobs);
  // Runs the jobs still queued to the end (each is a file operation of a partition that a crash
  // would leave just as recoverable; finishing them leaves the files as the lcore asked), then
  // joins the thread.
  ~FileWorker();
  FileWorker(const FileWorker&) = delete;
  FileWorker& operator=(const FileWorker&) = delete;

  // kIdle -> kQueued (the thread makes it kRunning, then kDone). False, the job untouched: the
  // worker holds max_jobs already (the caller tries again in a later pass). One lock.
  bool Submit(std::shared_ptr<FileJob> job);
  // Jobs submitted and not yet done (for tests and stats; takes the lock).
  uint32_t pending();
  uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }
  // The destructor has begun (tests: a shutdown with jobs still queued).
  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

 private:
  void Run();
  const uint32_t max_jobs_;
  std::mutex mu_;
  std::condition_variable wake_;  // a job queued, or stop
  std::deque<std::shared_ptr<FileJob>> queue_;
  uint32_t running_ = 0;  // 0 or 1
  bool stop_ = false;
  std::atomic<uint64_t> completed_{0};
  std::thread thread_;
};

// A directory and everything in it, removed (a deleted queue's partition). Not a log operation
// that recovery orders: what a crash leaves half removed belongs to no queue any more.
class RemoveTreeJob final : public FileJob {
 public:
  explicit RemoveTreeJob(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 protected:
  absl::Status Run() override;

 private:
  const std::string path_;
};

}  // namespace sluice::storage
