#include "storage/ack_ring.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "protocol/assert.h"
#include "storage/ack_log.h"

namespace sluice::storage {
namespace {

constexpr uint64_t kOpBits = 3;  // AckLog is at least 8-byte aligned: its address has them free
constexpr uint64_t kOpMask = (uint64_t{1} << kOpBits) - 1;
static_assert(alignof(AckLog) >= 8);

}  // namespace

absl::StatusOr<std::unique_ptr<AckRing>> AckRing::Create(const AckRingConfig& config) {
  std::unique_ptr<AckRing> r(new AckRing(config));
  RingOptions o;
  o.entries = std::max<uint32_t>(config.entries, 8);
  if (absl::Status s = InitRing(&r->ring_, o, &r->features_); !s.ok()) return s;
  r->ring_ok_ = true;
  return r;
}

AckRing::~AckRing() {
  if (enabled_) Drain([](AckLog&) {});
  if (ring_ok_) io_uring_queue_exit(&ring_);
}

void AckRing::Adopt() {
  if (enabled_) return;
  EnableRing(&ring_, &features_);
  if (cfg_.completion_eventfd >= 0) {
    const int rc = io_uring_register_eventfd(&ring_, cfg_.completion_eventfd);
    SLUICE_ASSERT(rc == 0);  // a valid eventfd on our own ring: failing means a bug
  }
  enabled_ = true;
}

io_uring_sqe* AckRing::Sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr && enabled_) {
    // More logs flushed in this pass than the SQ holds: what is queued leaves now (not
    // blocking: a submit), which frees the SQ.
    Submit(false);
    sqe = io_uring_get_sqe(&ring_);
  }
  if (sqe != nullptr) ++pending_sqes_;
  return sqe;
}

bool AckRing::PrepWrite(AckLog* log, int fd, const std::byte* buf, uint32_t len,
                        uint64_t position, bool linked_sync) {
  // Every entry of the chain or none: a write whose linked sync found no room would be a lone
  // write (the fault seam's delay adds a timeout ahead of it).
  const uint32_t need = (linked_sync ? 2u : 1u) + (faults_.delay_ms > 0 ? 1u : 0u);
  if (io_uring_sq_space_left(&ring_) < need && enabled_) Submit(false);
  if (io_uring_sq_space_left(&ring_) < need) return false;
  const auto base = reinterpret_cast<uint64_t>(log);
  log->inject_res_[kWrite] = 0;
  bool delay = false;
  if (Inject(*log, false)) {
    if (faults_.short_write) {
      len = std::min<uint32_t>(len, 8);
    } else if (faults_.delay_ms > 0) {
      delay = true;
    } else {
      log->inject_res_[kWrite] = -faults_.error;
    }
  }
  if (delay) {
    io_uring_sqe* t = Sqe();
    SLUICE_ASSERT(t != nullptr);
    delay_.tv_sec = faults_.delay_ms / 1000;
    delay_.tv_nsec = static_cast<long long>(faults_.delay_ms % 1000) * 1'000'000;
    // ETIME_SUCCESS: the expiry counts as success, so the link goes on to the write.
    io_uring_prep_timeout(t, &delay_, 0, IORING_TIMEOUT_ETIME_SUCCESS);
    t->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(t, base | kDelay);
    ++in_flight_;
  }
  io_uring_sqe* sqe = Sqe();
  SLUICE_ASSERT(sqe != nullptr);
  if (log->inject_res_[kWrite] != 0) {
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, base | kWrite | kInjected);
  } else {
    io_uring_prep_write(sqe, fd, buf, len, position);
    io_uring_sqe_set_data64(sqe, base | kWrite);
  }
  ++log->ops_;
  ++in_flight_;
  ++stats_.writes;
  if (!linked_sync) return true;
  sqe->flags |= IOSQE_IO_LINK;  // the sync runs only once the write succeeded in full
  const bool ok = PrepSync(log, fd);
  SLUICE_ASSERT(ok);  // room for both was checked above
  return true;
}

bool AckRing::PrepSync(AckLog* log, int fd) {
  io_uring_sqe* sqe = Sqe();
  if (sqe == nullptr) return false;
  const auto base = reinterpret_cast<uint64_t>(log);
  log->inject_res_[kSync] = 0;
  if (Inject(*log, true)) log->inject_res_[kSync] = -faults_.error;
  if (log->inject_res_[kSync] != 0) {
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, base | kSync | kInjected);
  } else {
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, base | kSync);
  }
  ++log->ops_;
  ++in_flight_;
  ++stats_.syncs;
  return true;
}

bool AckRing::Inject(const AckLog& log, bool sync) {
  if (faults_.count == 0 || faults_.sync != sync) return false;
  if (faults_.only.has_value() && *faults_.only != log.cookie()) return false;
  if (faults_.skip > 0) {
    --faults_.skip;
    return false;
  }
  --faults_.count;
  return true;
}

int AckRing::Submit(bool wait) {
  Adopt();
  const int n = SubmitRing(&ring_, features_, pending_sqes_ > 0, in_flight_ > 0, wait);
  if (pending_sqes_ > 0 && n > 0) ++stats_.submits;
  if (n >= 0) pending_sqes_ = 0;
  if (n >= 0 || n == -EINTR || n == -EAGAIN || n == -EBUSY) return 0;
  return n;  // e.g. -EEXIST: not the thread that owns the ring
}

uint32_t AckRing::Reap(absl::FunctionRef<void(AckLog&)> failed) {
  uint32_t total = 0;
  io_uring_cqe* cqes[64];
  while (true) {
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 64);
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) {
      const uint64_t data = io_uring_cqe_get_data64(cqes[i]);
      auto* log = reinterpret_cast<AckLog*>(data & ~kOpMask);
      const int op = static_cast<int>(data & 1);
      int res = cqes[i]->res;
      if ((data & kInjected) != 0) res = log->inject_res_[op];
      SLUICE_ASSERT(in_flight_ > 0);
      --in_flight_;
      if ((data & kDelay) != 0) continue;  // the seam's timeout: its write completes next
      if (op == kWrite && res > 0) stats_.bytes += static_cast<uint64_t>(res);
      if (!log->OnCompletion(op, res)) {
        ++stats_.failures;
        failed(*log);
      }
    }
    io_uring_cq_advance(&ring_, n);
    total += n;
  }
  return total;
}

uint32_t AckRing::Poll(absl::FunctionRef<void(AckLog&)> failed) {
  if (enabled_ && pending_sqes_ == 0 && in_flight_ == 0) return 0;  // nothing to do: no syscall
  Submit(false);
  const uint32_t n = Reap(failed);
  if (pending_sqes_ > 0) Submit(false);  // what the completions queued leaves in this pass
  return n;
}

void AckRing::Wait(AckLog& log, absl::FunctionRef<void(AckLog&)> failed) {
  while (log.ops_ > 0) {
    if (Submit(true) != 0) break;  // not the owning thread: nothing we can wait for
    Reap(failed);
  }
}

void AckRing::Drain(absl::FunctionRef<void(AckLog&)> failed) {
  while (in_flight_ > 0 || pending_sqes_ > 0) {
    if (Submit(in_flight_ > 0) != 0) break;
    Reap(failed);
  }
}

}  // namespace sluice::storage
