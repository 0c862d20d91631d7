// Prepares the next segment of a partition ahead of need, on a thread of its own, so that a roll
// on the lcore is a rename instead of create + fallocate + fsync + directory fsync (about 10 ms
// on a virtual disk; docs/benchmarks.md).
//
// One SparePreparer per UringWriter (one per lcore that writes), one SpareSlot per partition.
// The lcore asks for a spare once per segment (Request: when the partition opens, and when the
// previous roll's rename completed) and at roll time takes it if it is ready (TakeReady); if it
// is not, the roll waits (the writer answers kThrottled) rather than create the file itself. The
// hand-off is the slot's atomic state; the preparer's mutex is taken by the lcore only in Request
// and Cancel, i.e. at most once per segment, never per message or per batch.
//
// The thread inherits the CPU affinity of the thread that creates the writer: sluiced creates
// its writers on the main thread (main.cc, before the workers launch), i.e. the housekeeping
// lcore's CPU, never a polling worker's. Create a writer on a worker's own thread and its spares
// are prepared on that CPU.
//
// The spare's file is `next.spare` in the partition directory (PartitionDir::PrepareSpare): a
// name recovery never reads as log data and removes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "storage/io.h"
#include "storage/segment.h"

namespace sluice::storage {

struct SpareSlot {
  enum State : uint8_t { kIdle, kQueued, kPreparing, kReady, kFailed };
  SpareSlot(PartitionDir d, uint64_t b, bool dio) : dir(std::move(d)), bytes(b), direct_io(dio) {}
  const PartitionDir dir;
  const uint64_t bytes;
  const bool direct_io;
  std::atomic<State> state{kIdle};
  // Written by the preparer while kPreparing, read by the lcore once it saw kReady / kFailed.
  Fd fd;
  bool direct = false;
  std::string error;
};

class SparePreparer {
 public:
  // `while_preparing`: test seam, called on the preparer's thread inside each preparation (while
  // preparing() is true), before the files are touched.
  explicit SparePreparer(uint32_t max_slots, std::function<void()> while_preparing = nullptr);
  ~SparePreparer();  // finishes the spare in progress, abandons queued ones
  SparePreparer(const SparePreparer&) = delete;
  SparePreparer& operator=(const SparePreparer&) = delete;

  // kIdle -> kQueued; the preparer thread makes it kReady or kFailed.
  void Request(const std::shared_ptr<SpareSlot>& slot);
  // If the slot is kReady: moves its file out into *fd, *direct and makes it kIdle.
  static bool TakeReady(SpareSlot& slot, Fd* fd, bool* direct);
  // Control path (partition close): waits for a preparation in progress, drops a queued one, and
  // unlinks a ready spare. The slot is kIdle afterwards.
  void Cancel(SpareSlot& slot);

  // A spare is being prepared now: its fsyncs are a journal commit with the disk's cache flush,
  // during which a direct write into unwritten extents blocks its submitter (on the segment's
  // i_data_sem) for as long, 100-145 ms measured here (docs/storage.md §4). The writer sends its
  // segment writes to io_uring's worker threads meanwhile. A relaxed load: a hint, not a lock.
  bool preparing() const { return preparing_.load(std::memory_order_relaxed); }

 private:
  void Run();
  std::mutex mu_;
  std::condition_variable wake_;  // work queued or stop
  std::condition_variable done_;  // a preparation finished
  std::vector<std::shared_ptr<SpareSlot>> queue_;  // reserved: Request does not allocate
  bool stop_ = false;
  std::atomic<bool> preparing_{false};
  std::function<void()> while_preparing_;
  std::thread thread_;
};

}  // namespace sluice::storage
