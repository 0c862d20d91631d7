#include "dataplane/replication_handoff.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "dataplane/replication_shell.h"
#include "dataplane/storage_shell.h"
#include "dataplane/worker.h"
#include "protocol/assert.h"
#include "storage/recovery.h"
#include "storage/segment.h"

namespace sluice::dataplane {
namespace {

uint64_t HandoffKey(uint32_t q, uint32_t p) { return (uint64_t{q} << 32) | p; }
// A partition's log state is found again (refreshed from its known end, or a recovery scan
// from scratch; read-only, on the reader's file worker) at most this often (counted from the
// adoption of the last state found): a batch the standby asks for that is
// not durable yet is asked for again every pass.
constexpr uint64_t kReloadIntervalNs = 1'000'000;
constexpr uint64_t kLogStartIntervalNs = 500'000'000;
// Partitions whose state is being found at once (jobs queued or running on the reader's file
// worker); more wait for a later call.
constexpr uint32_t kMaxStateJobs = 64;

uint64_t MonotonicNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

// ---- shard lcore side ---------------------------------------------------------------------------

HandoffReplicator::HandoffReplicator(const ReplicationStatus& status, ReplicationHandoff& handoff,
                                     uint16_t worker)
    : status_(status), handoff_(handoff), ring_(*handoff.rings.at(worker)), worker_(worker) {
  parts_.reserve(1024);
  deferred_.reserve(1024);
  if (worker < handoff.reads.size() && handoff.reads[worker] != nullptr) {
    reads_ = handoff.reads[worker].get();
    answer_records_.reserve(replication::kMaxReplicaAnswerRecords);
  }
}

void ReplicationHandoff::SetUpReplicaReads(WakeSignal* workers_wake) {
  reads.resize(rings.size());
  for (size_t w = 0; w < rings.size(); ++w) {
    if (rings[w] != nullptr) reads[w] = std::make_unique<ReadRings>();
  }
  worker_wake = workers_wake;
}

bool HandoffReplicator::Writable() const {
  return ReplicationRoleView(status_).Writable();
}

void HandoffReplicator::PrimaryAddress(uint32_t* ipv4, uint16_t* port) const {
  ReplicationRoleView(status_).PrimaryAddress(ipv4, port);
}

void HandoffReplicator::Wake() const {
  WakeSignal& w = *handoff_.wake;
  if (w.sleeping.load(std::memory_order_seq_cst)) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(w.fd, &one, sizeof one);  // only when it sleeps
  }
}

bool HandoffReplicator::Push(const HandoffHeader& h, std::span<const std::byte> payload) const {
  if (!ring_.Push({reinterpret_cast<const std::byte*>(&h), sizeof h}, payload)) return false;
  Wake();
  return true;
}

void HandoffReplicator::Retry() const {
  if (control_.empty() && deferred_.empty()) return;
  size_t done = 0;
  while (done < control_.size() && Push(control_[done], {})) ++done;
  control_.erase(control_.begin(), control_.begin() + static_cast<long>(done));
  if (!control_.empty()) return;  // data of a partition never overtakes its opening
  size_t kept = 0;
  for (uint64_t k : deferred_) {
    auto it = parts_.find(k);
    if (it == parts_.end()) continue;
    Part& p = it->second;
    if (p.handed_end < p.offered_end) {
      HandoffHeader h{HandoffKind::kFromLog, 0, 0, static_cast<uint32_t>(k >> 32),
                      static_cast<uint32_t>(k), 0, p.handed_end, p.offered_end, 0};
      if (Push(h, {})) {
        p.handed_end = p.offered_end;
      } else {
        deferred_[kept++] = k;
        continue;
      }
    }
    p.deferred = false;
  }
  deferred_.resize(kept);
}

void HandoffReplicator::AddPartition(uint32_t queue, uint32_t partition, uint64_t log_end) {
  Part& p = parts_[HandoffKey(queue, partition)];
  p = Part{log_end, log_end, 0, false, false};
  std::erase(deferred_, HandoffKey(queue, partition));
  HandoffHeader h{HandoffKind::kAdd, 0, 0, queue, partition, 0, log_end, log_end, 0};
  Retry();
  if (!control_.empty() || !Push(h, {})) control_.push_back(h);  // control path: may allocate
}

void HandoffReplicator::RemovePartition(uint32_t queue, uint32_t partition) {
  parts_.erase(HandoffKey(queue, partition));
  std::erase(deferred_, HandoffKey(queue, partition));
  HandoffHeader h{HandoffKind::kRemove, 0, 0, queue, partition, 0, 0, 0, 0};
  Retry();
  if (!control_.empty() || !Push(h, {})) control_.push_back(h);
}

void HandoffReplicator::Offer(uint32_t queue, uint32_t partition, std::span<const std::byte> bytes,
                              uint64_t base, uint64_t end, uint64_t now_ns) {
  Retry();
  auto it = parts_.find(HandoffKey(queue, partition));
  if (it == parts_.end()) return;
  Part& p = it->second;
  if (end <= p.offered_end) return;  // offered before (storage re-offers throttled batches)
  SLUICE_ASSERT(base == p.offered_end);
  p.offered_end = end;
  if (p.handed_end == base && control_.empty() && bytes.size() <= ring_.max_message() - sizeof(HandoffHeader)) {
    HandoffHeader h{HandoffKind::kBatch, 0, 0, queue, partition, 0, base, end, now_ns};
    if (Push(h, bytes)) {
      p.handed_end = end;
      return;
    }
  }
  // Not in the ring: the range is offered without bytes (read back from the log), now or later.
  handoff_.batches_from_log.fetch_add(1, std::memory_order_relaxed);
  if (control_.empty()) {
    HandoffHeader h{HandoffKind::kFromLog, 0, 0, queue, partition, 0, p.handed_end, end, now_ns};
    if (Push(h, {})) {
      p.handed_end = end;
      return;
    }
  }
  handoff_.deferred.fetch_add(1, std::memory_order_relaxed);
  if (!p.deferred) {
    p.deferred = true;
    deferred_.push_back(HandoffKey(queue, partition));  // reserved: no allocation below 1024 partitions
  }
}

bool HandoffReplicator::Replicated(uint32_t queue, uint32_t partition, uint64_t now_ns,
                                   uint64_t* end) const {
  (void)now_ns;  // the replication lcore applied the lag bound when it published
  Retry();
  return handoff_.board.Replicated(queue, partition, end);
}

uint64_t HandoffReplicator::OfferAck(uint32_t queue, uint32_t partition, uint8_t kind,
                                     uint32_t ref_partition, std::string_view group,
                                     uint64_t offset) {
  SLUICE_ASSERT(kind >= kAckDelete && kind <= kAckDeletedBelow && group.size() <= 0xffff);
  Retry();
  auto it = parts_.find(HandoffKey(queue, partition));
  if (it == parts_.end()) return 0;
  Part& p = it->second;
  ++p.acks;
  HandoffHeader h{HandoffKind::kAck, kind, static_cast<uint16_t>(group.size()), queue, partition,
                  ref_partition, offset, 0, 0};
  if (!control_.empty() ||
      !Push(h, {reinterpret_cast<const std::byte*>(group.data()), group.size()})) {
    // The standby misses this record: the partition's sync replies say NOT_REPLICATED from now
    // on (AckReplicated), counted and never silent.
    handoff_.acks_lost.fetch_add(1, std::memory_order_relaxed);
    p.acks_broken = true;
  } else {
    ++acks_pushed_;
  }
  return p.acks;
}

bool HandoffReplicator::AckReplicated(uint32_t queue, uint32_t partition, uint64_t now_ns,
                                      uint64_t* applied) const {
  (void)now_ns;
  Retry();
  auto it = parts_.find(HandoffKey(queue, partition));
  if (it == parts_.end() || it->second.acks_broken) return false;
  return handoff_.board.AcksApplied(queue, partition, applied);
}

void HandoffReplicator::PassEnded() {
  if (handoff_.acks_flushed == nullptr) return;
  handoff_.acks_flushed[worker_].store(acks_pushed_at_pass_end_, std::memory_order_release);
  acks_pushed_at_pass_end_ = acks_pushed_;
}

void HandoffReplicator::PurgeSettled(uint32_t queue, uint32_t partition, uint64_t generation,
                                     Errc errc) {
  SettlePurge(const_cast<ReplicationStatus&>(status_), queue, partition, generation, errc);
}

// ---- shard lcore: replica reads (a standby) ------------------------------------------------------

Errc HandoffReplicator::ReadReplica(uint32_t queue, uint32_t partition, uint64_t value,
                                    uint32_t max_records, uint64_t cookie, bool by_timestamp) {
  if (reads_ == nullptr) return Errc::kUnknownPartition;  // a primary: no replica
  // Refused at once as the replication lcore's ReplicationShell::ReadReplica would (it checks
  // again, against its writer: what these boards say may be a moment old).
  uint64_t start = 0;
  if (!handoff_.replica_start.Start(queue, partition, &start)) return Errc::kUnknownPartition;
  if (!by_timestamp && (value < start || value >= ReplicaEnd(queue, partition))) {
    return Errc::kOffsetOutOfRange;  // below the start (retention) or not durable here yet
  }
  SLUICE_ASSERT(cookie <= UINT32_MAX);  // the Frontend's read slot
  replication::ReplicaReadRequest r;
  r.value = value;
  r.cookie = cookie;
  r.queue = queue;
  r.partition = partition;
  r.max_records = max_records;
  r.by_timestamp = by_timestamp ? 1 : 0;
  // kMaxReplicaReads out keeps the answer ring from ever filling (replica_reads.h); the request
  // ring holds as many, so a refused push is an invariant broken, still answered THROTTLED.
  if (reads_out_ >= replication::kMaxReplicaReads ||
      !replication::PushReplicaRequest(reads_->requests, r)) {
    handoff_.replica_reads_throttled.fetch_add(1, std::memory_order_relaxed);
    return Errc::kThrottled;
  }
  ++reads_out_;
  Wake();
  return Errc::kOk;
}

uint64_t HandoffReplicator::ReplicaStart(uint32_t queue, uint32_t partition) const {
  uint64_t start = 0;
  if (reads_ == nullptr || !handoff_.replica_start.Start(queue, partition, &start)) return 0;
  return std::min(start, ReplicaEnd(queue, partition));
}

bool HandoffReplicator::ReplicaCommitted(uint32_t queue, uint32_t partition,
                                         std::string_view group, uint64_t* offset) const {
  // The replication lcore applies partition 0's ack stream and writes each commit there (the
  // key as Frontend::PersistGroupCommit logs it).
  if (reads_ == nullptr) return false;
  char key[300];
  const int n = std::snprintf(key, sizeof key, "%u:%.*s", partition,
                              static_cast<int>(group.size()), group.data());
  if (n <= 0 || static_cast<size_t>(n) >= sizeof key) return false;
  return handoff_.replica_commits.Get(queue, std::string_view(key, static_cast<size_t>(n)),
                                      offset);
}

uint64_t HandoffReplicator::ReplicaEnd(uint32_t queue, uint32_t partition) const {
  // The standby's channels publish their durable ends there (0: not open).
  return reads_ == nullptr ? 0 : status_.durable.DurableEnd(queue, partition);
}

uint32_t HandoffReplicator::PollReplicaReads(
    absl::FunctionRef<void(uint64_t, Errc, uint64_t, std::span<const shard::StoredMessage>)> fn) {
  if (reads_ == nullptr) return 0;
  uint32_t n = 0;
  for (std::span<const std::byte> m = reads_->answers.Peek(); !m.empty();
       m = reads_->answers.Peek()) {
    replication::ReplicaAnswerHeader h;
    replication::DecodeReplicaAnswer(m, &h, &answer_records_);
    // The records point into the ring: used before the slot is released.
    fn(h.cookie, static_cast<Errc>(h.errc), h.next_offset, answer_records_);
    reads_->answers.Pop();
    SLUICE_ASSERT(reads_out_ > 0);
    --reads_out_;
    ++n;
  }
  return n;
}

// ---- replication lcore: catch-up reads ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<LogFileReader>> LogFileReader::Create(
    const hwconf::Storage& storage) {
  std::unique_ptr<LogFileReader> r(new LogFileReader(storage));
  // As a shard lcore's catch-up reader (StorageShell): kCatchupReads reads in flight, each
  // buffer (allocated and registered here, once) holding the largest batch and an index
  // interval; a read is near its batch's size.
  storage::ReaderConfig rc;
  rc.max_reads = kCatchupReads;
  rc.align_bytes = r->options_.align_bytes;
  absl::StatusOr<std::unique_ptr<storage::UringReader>> reader =
      storage::UringReader::Create(rc, static_cast<const storage::ReadableLogs*>(r.get()));
  if (!reader.ok()) return reader.status();
  r->reader_ = std::move(*reader);
  // Created here, at start-up, on the thread that creates the shells (sluiced's main thread:
  // the housekeeping CPU, never a polling lcore's; storage/file_worker.h).
  r->files_ = std::make_unique<storage::FileWorker>("sluice-logread", kMaxStateJobs);
  return r;
}

LogFileReader::LogFileReader(const hwconf::Storage& storage)
    : storage_(storage), options_(RecoveryOptionsOf(storage)) {
  // Read-only: no repair, no cut of a tail the shard lcore is writing right now.
  options_.repair = false;
  options_.verify_all = false;
  logs_.reserve(1024);
  handles_.reserve(1024);
  finding_.reserve(1024);
}

LogFileReader::~LogFileReader() = default;

storage::PartitionHandle LogFileReader::Handle(uint32_t queue, uint32_t partition) const {
  auto [it, added] = handles_.try_emplace(HandoffKey(queue, partition),
                                          static_cast<storage::PartitionHandle>(logs_.size()));
  if (added) {  // once per partition
    auto l = std::make_unique<Log>();
    l->spec.data_dir = DataDirOf(storage_, queue, partition);
    l->spec.id = storage::PartitionId{queue, partition};
    logs_.push_back(std::move(l));
  }
  return it->second;
}

const storage::LogState* LogFileReader::log_state(uint32_t queue, uint32_t partition) const {
  auto it = handles_.find(HandoffKey(queue, partition));
  if (it == handles_.end() || !logs_[it->second]->loaded) return nullptr;
  return &logs_[it->second]->state;
}

bool LogFileReader::Finding(storage::PartitionHandle h, Find how) const {
  Log& l = *logs_[h];
  if (l.job != nullptr) return true;
  if (l.loaded_ns != 0 && MonotonicNs() < l.loaded_ns + kReloadIntervalNs) return false;
  auto job = std::make_shared<storage::LogStateJob>();  // a control-path allocation, rare
  job->data_dir = l.spec.data_dir;
  job->id = l.spec.id;
  job->recovery = options_;
  const bool refresh = l.loaded && !l.stale && how == Find::kRefresh;
  // The shard lcore wrote on, or retention removed segments: the tail from its known end, on a
  // copy (the reads in flight go on with the state as it is; the copy shares its read fds).
  if (refresh) job->known.emplace(l.state);
  if (!files_->Submit(job)) return false;  // kMaxStateJobs partitions at once: a later call
  l.job = std::move(job);
  l.job_refreshes = refresh;
  finding_.push_back(h);
  ++jobs_;
  return true;
}

bool LogFileReader::InRing(storage::PartitionHandle h) const {
  for (const Request& q : requests_) {
    if (q.busy && q.wait == Wait::kNone && q.handle == h) return true;
  }
  return false;
}

void LogFileReader::Adopt(storage::PartitionHandle h) const {
  Log& l = *logs_[h];
  if (l.job == nullptr || !l.job->done()) return;
  storage::LogStateJob& j = *l.job;
  // A scan from scratch brings a new directory fd: a read in the ring may have been prepared
  // with the old one (an open not submitted yet); adopted once it is out.
  if (j.rescanned && InRing(h)) return;
  if (l.job_refreshes) ++refreshes_;
  if (j.rescanned) ++reloads_;
  refresh_bytes_ += j.scanned_bytes;
  if (j.status().ok() && j.refreshed) {
    // The same files: read fds the reader opened since the copy was made are kept (both lists
    // ascend by base offset).
    size_t k = 0;
    for (storage::SegmentState& s : j.log.segments) {
      while (k < l.state.segments.size() && l.state.segments[k].base_offset < s.base_offset) ++k;
      if (s.read_fd == nullptr && k < l.state.segments.size() &&
          l.state.segments[k].base_offset == s.base_offset) {
        s.read_fd = l.state.segments[k].read_fd;
      }
    }
  }
  // Not found (an I/O error; j.log empty): no state, every read answers kStorageFailed until a
  // later job finds one. Either way what the state replaces is in j from here on.
  std::swap(l.state, j.log);
  l.loaded = j.status().ok();
  l.stale = false;
  l.rescanned = j.rescanned;
  l.loaded_ns = MonotonicNs();
  if (j.rescanned) std::swap(l.dir, j.dir);  // the files may not be the same ones
  // What was replaced may hold the last fd of a segment retention unlinked (or, after a scan
  // from scratch, of another partition's files): closed on the worker, not here.
  bool last_fds = j.dir.valid();
  for (const storage::SegmentState& s : j.log.segments) last_fds |= s.read_fd.use_count() == 1;
  if (last_fds) {
    auto release = std::make_shared<storage::ReleaseLogStateJob>();
    release->log = std::move(j.log);
    release->dir = std::move(j.dir);
    if (!files_->Submit(release)) {
      // The worker is full (kMaxStateJobs partitions being found): closed here, rarely.
    }
  }
  l.job.reset();
  std::erase(finding_, h);
}

void LogFileReader::AdoptDone() const {
  // Backwards: Adopt erases what it adopts.
  for (size_t k = finding_.size(); k-- > 0;) Adopt(finding_[k]);
}

void LogFileReader::Judge(Request& q, BatchRead* b) const {
  // A segment retention removed since the state was found fails its open: the offset is below
  // the log's start now, as on a channel. Else the caller tries again later, on a state found
  // from scratch.
  Log& l = *logs_[q.handle];
  if (l.loaded && q.offset < l.state.start_offset()) {
    b->errc = Errc::kOffsetOutOfRange;
  } else {
    b->errc = Errc::kStorageFailed;
    l.stale = true;
  }
}

bool LogFileReader::Issue(uint32_t i, uint64_t hint_segment, uint64_t hint_position) {
  const Request& q = requests_[i];
  storage::FetchRequest r;
  r.partition = q.handle;
  r.by = storage::FetchBy::kBatch;
  r.value = q.offset;
  r.cookie = i;
  r.hint_segment = hint_segment;
  r.hint_position = hint_position;
  // kOk, or an answer without I/O (out of range, a log not found) that Poll delivers too.
  return reader_->Fetch(r) != Errc::kThrottled;
}

Errc LogFileReader::StartBatchRead(uint32_t queue, uint32_t partition, uint64_t offset,
                                   uint64_t hint_segment, uint64_t hint_position,
                                   uint64_t cookie) {
  if (in_flight_ == requests_.size()) return Errc::kThrottled;
  const storage::PartitionHandle h = Handle(queue, partition);
  Adopt(h);
  const Log& l = *logs_[h];
  // No state yet (or a read found it stale), or one the offset is outside of (written on since,
  // or retention moved its start): found off the lcore first, the read asked again meanwhile.
  const bool need = !l.loaded || l.stale;
  if ((need || offset < l.state.start_offset() || offset >= l.state.next_offset) &&
      Finding(h, need ? Find::kFromScratch : Find::kRefresh)) {
    ++throttled_finding_;
    return Errc::kThrottled;
  }
  uint32_t i = 0;
  while (requests_[i].busy) ++i;
  requests_[i] = Request{true, hint_segment != UINT64_MAX, false, Wait::kNone, h, offset, cookie,
                         {}};
  const bool issued = Issue(i, hint_segment, hint_position);
  SLUICE_ASSERT(issued);  // one reader slot per request, and a request was free
  ++in_flight_;
  return Errc::kOk;
}

uint32_t LogFileReader::Resume(absl::FunctionRef<void(const BatchRead&)> fn) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < requests_.size(); ++i) {
    Request& q = requests_[i];
    if (!q.busy || q.wait == Wait::kNone || logs_[q.handle]->job != nullptr) continue;
    const Wait w = q.wait;
    q.wait = Wait::kNone;
    if (w == Wait::kIssue) {
      const bool issued = Issue(i, UINT64_MAX, 0);  // its reader slot is free since it answered
      SLUICE_ASSERT(issued);
      continue;
    }
    const Log& l = *logs_[q.handle];
    if (!q.retried && l.rescanned && l.loaded && q.offset >= l.state.start_offset()) {
      // Found from scratch: the read failed on files that are not these (a recreated
      // partition: its segment opened relative to the removed directory). Tried again, once.
      q.retried = true;
      const bool issued = Issue(i, UINT64_MAX, 0);
      SLUICE_ASSERT(issued);
      continue;
    }
    BatchRead b = q.answer;
    Judge(q, &b);
    q.busy = false;
    --in_flight_;
    ++n;
    fn(b);
  }
  return n;
}

uint32_t LogFileReader::PollBatchReads(absl::FunctionRef<void(const BatchRead&)> fn) {
  AdoptDone();  // states found since the last pass
  uint32_t n = Resume(fn);
  if (in_flight_ == 0) return n;
  reader_->Poll([&](const storage::FetchResult& r) {
    SLUICE_ASSERT(r.cookie < requests_.size() && requests_[r.cookie].busy);
    const uint32_t i = static_cast<uint32_t>(r.cookie);
    Request& q = requests_[i];
    Log& l = *logs_[q.handle];
    // No batch starts where the state says one does (an unhinted read: a hint may just be
    // stale, which the caller handles): the state is not the files' (a recreated partition).
    if (r.errc == Errc::kOffsetOutOfRange && !q.retried && !q.hinted &&
        q.offset >= l.state.start_offset() && q.offset < l.state.next_offset) {
      l.stale = true;
      q.retried = true;
      if (Finding(q.handle, Find::kFromScratch)) {
        q.wait = Wait::kIssue;  // keeps its slot; issued again once the state is adopted
      } else {
        retry_[retries_++] = i;  // found too recently: tried again on the state as it is
      }
      return;
    }
    BatchRead b = BatchReadOf(r);
    b.cookie = q.cookie;
    if (r.errc != Errc::kOk && r.errc != Errc::kOffsetOutOfRange) {
      // An I/O error or a batch that does not verify: judged on the state refreshed, once it is
      // (the answer waits, keeping its slot), else on the state as it is.
      if (Finding(q.handle, Find::kRefresh)) {
        q.wait = Wait::kVerdict;
        q.answer = b;
        q.answer.bytes = {};
        return;
      }
      Judge(q, &b);
    }
    q.busy = false;
    --in_flight_;
    ++n;
    fn(b);
  });
  // Their reader slots are free now.
  for (uint32_t k = 0; k < retries_; ++k) {
    const bool issued = Issue(retry_[k], UINT64_MAX, 0);
    SLUICE_ASSERT(issued);
  }
  retries_ = 0;
  return n;
}

uint64_t LogFileReader::FirstSegmentBase(uint32_t queue, uint32_t partition) const {
  // Once a second per partition (SendLogStarts), and after a read found nothing: retention may
  // have removed segments since (a state younger than half a second answers as it is). The
  // state is found again off the lcore; meanwhile this answers from the state it has (a start
  // no later than the log's: a standby told it keeps a little more, a second longer).
  const storage::PartitionHandle h = Handle(queue, partition);
  Adopt(h);
  const Log& l = *logs_[h];
  const bool fresh = l.loaded && !l.stale && MonotonicNs() < l.loaded_ns + kLogStartIntervalNs;
  if (!fresh) Finding(h, Find::kRefresh);
  if (!l.loaded || l.state.segments.empty()) return shard::kNoOffset;
  return l.state.start_offset();
}

}  // namespace sluice::dataplane
