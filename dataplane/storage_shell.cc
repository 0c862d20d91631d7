#include "dataplane/storage_shell.h"

#include <cstdio>
#include <filesystem>

#include <tbb/parallel_for.h>

#include "absl/strings/str_format.h"
#include "protocol/assert.h"
#include "storage/segment.h"

namespace sluice::dataplane {

std::string DataDirOf(const hwconf::Storage& storage, uint32_t queue, uint32_t partition) {
  SLUICE_ASSERT(!storage.data_dirs.empty());
  const uint64_t h = (uint64_t{queue} * 0x9E3779B97F4A7C15ull) ^ partition;
  return storage.data_dirs[h % storage.data_dirs.size()];
}

storage::RecoveryOptions RecoveryOptionsOf(const hwconf::Storage& s) {
  storage::RecoveryOptions o;
  o.segment_bytes = s.segment_bytes;
  o.verify_all = true;  // a restart after a crash checks every batch's CRC
  o.repair = true;
  return o;
}

// ---- start-up recovery ---------------------------------------------------------------------------

std::unique_ptr<StartupRecovery> StartupRecovery::Run(
    const hwconf::Storage& storage, const std::vector<storage::PartitionToRecover>& what,
    const storage::RecoveryOptions& options) {
  auto out = std::make_unique<StartupRecovery>();
  storage::RecoveryRun run = storage::RecoverAll(what, options);
  out->seconds_ = run.seconds;
  out->bytes_scanned_ = run.bytes_scanned;
  for (size_t i = 0; i < what.size(); ++i) {
    storage::RecoveredPartition& r = run.partitions[i];
    if (!r.status.ok() || r.report.segments > 0 || r.report.cut) {
      std::printf("sluiced: recovery %s: %s\n", DataDirOf(storage, what[i].id.queue, what[i].id.partition).c_str(),
                  r.status.ok() ? storage::FormatReport(r.report).c_str()
                                : std::string(r.status.message()).c_str());
    }
    out->results_.emplace(std::make_pair(what[i].id.queue, what[i].id.partition), std::move(r));
  }
  std::printf("sluiced: recovered %zu partition(s) in %.3f s, %llu bytes scanned (%.2f GB/s)\n",
              what.size(), run.seconds, static_cast<unsigned long long>(run.bytes_scanned),
              run.gb_per_s());
  std::fflush(stdout);
  return out;
}

std::optional<storage::RecoveredPartition> StartupRecovery::Take(uint32_t queue,
                                                                 uint32_t partition) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = results_.find({queue, partition});
  if (it == results_.end()) return std::nullopt;
  std::optional<storage::RecoveredPartition> r(std::move(it->second));
  results_.erase(it);
  return r;
}

std::vector<std::pair<std::pair<uint32_t, uint32_t>, uint64_t>> StartupRecovery::LogEnds() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<std::pair<uint32_t, uint32_t>, uint64_t>> out;
  for (const auto& [k, r] : results_) {
    if (r.status.ok()) out.push_back({k, r.log.next_offset});
  }
  return out;
}

void StartupRecovery::Prepare(const hwconf::Storage& storage, uint32_t queue, uint32_t partition) {
  auto out = std::make_unique<PreparedOpen>();
  const std::string data_dir = DataDirOf(storage, queue, partition);
  const storage::PartitionId id{queue, partition};
  out->rec = storage::RecoverPartition(storage::PartitionToRecover{data_dir, id, 0, false},
                                       RecoveryOptionsOf(storage));
  out->status = out->rec.status;
  if (out->status.ok()) {
    out->rec.acks.Compact(out->rec.log.start_offset());
    absl::StatusOr<storage::PreparedFiles> files = storage::UringWriter::PrepareFiles(
        data_dir, id, &out->rec.log, storage.segment_bytes, /*direct_io=*/true);
    if (files.ok()) {
      out->files = std::move(*files);
      absl::StatusOr<storage::AckLog> acks = storage::AckLog::Open(
          out->files.dir->path(), out->files.dir->AckLogPath(), out->rec.acks);
      if (acks.ok()) {
        out->acks.emplace(std::move(*acks));
      } else {
        out->status = acks.status();
      }
    } else {
      out->status = files.status();
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  prepared_[{queue, partition}] = std::move(out);
}

void StartupRecovery::PrepareAll(const hwconf::Storage& storage,
                                 const std::vector<std::pair<uint32_t, uint32_t>>& partitions) {
  tbb::parallel_for(size_t{0}, partitions.size(), [&](size_t i) {
    Prepare(storage, partitions[i].first, partitions[i].second);
  });
}

std::unique_ptr<PreparedOpen> StartupRecovery::TakePrepared(uint32_t queue, uint32_t partition) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = prepared_.find({queue, partition});
  if (it == prepared_.end()) return nullptr;
  std::unique_ptr<PreparedOpen> out = std::move(it->second);
  prepared_.erase(it);
  return out;
}

// ---- the shell -----------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<StorageShell>> StorageShell::Create(const StorageShellConfig& config,
                                                                   StartupRecovery* startup) {
  storage::WriterConfig wc;
  wc.queue_depth = config.storage.uring_depth;
  wc.sqpoll = config.storage.sqpoll;
  wc.sqpoll_cpu = config.storage.sqpoll_cpu;
  wc.segment_bytes = config.storage.segment_bytes;
  wc.completion_eventfd = config.completion_eventfd;
  // The worker's completions run in a kworker on its CPU (docs/storage.md §4): a short slice
  // lets that kworker in within 100 us of a busy worker, not at the next tick.
  wc.owner_slice_ns = 100'000;
  // Batches live in several shards' chunk pools: no single region to register as buffers.
  absl::StatusOr<std::unique_ptr<storage::UringWriter>> writer = storage::UringWriter::Create(wc);
  if (!writer.ok()) return writer.status();
  if (config.fault.has_value() && !config.fault->acks) {
    storage::FaultInjection f;
    f.count = UINT32_MAX;  // every write from `skip` on: the partition is broken for good
    f.error = config.fault->error;
    f.only = storage::PartitionId{config.fault->queue, config.fault->partition};
    f.skip = config.fault->skip;
    (*writer)->InjectFaults(f);
  }
  storage::ReaderConfig rc;
  rc.max_reads = 8;  // each holds a read buffer of ~1.25 MiB: cold reads are the rare case
  absl::StatusOr<std::unique_ptr<storage::UringReader>> reader =
      storage::UringReader::Create(rc, writer->get());
  if (!reader.ok()) return reader.status();
  // Catch-up: kCatchupReads reads in flight at most, each buffer holding the largest batch (and
  // an index interval, for the first read of a cold start); a read is near its batch's size.
  storage::ReaderConfig cc;
  cc.max_reads = kCatchupReads;
  absl::StatusOr<std::unique_ptr<storage::UringReader>> catchup =
      storage::UringReader::Create(cc, writer->get());
  if (!catchup.ok()) return catchup.status();
  // The ack logs' ring: per pass at most one write (+ a purge's sync) per partition with acks.
  storage::AckRingConfig ac;
  ac.entries = 256;
  ac.completion_eventfd = config.completion_eventfd;
  absl::StatusOr<std::unique_ptr<storage::AckRing>> acks = storage::AckRing::Create(ac);
  if (!acks.ok()) return acks.status();
  if (config.fault.has_value() && config.fault->acks) {
    storage::AckFaultInjection f;
    f.count = UINT32_MAX;  // every ack write from `skip` on: the partition fails at the first
    f.error = config.fault->error;
    f.only = Key(config.fault->queue, config.fault->partition);
    f.skip = config.fault->skip;
    (*acks)->InjectFaults(f);
  }
  return std::unique_ptr<StorageShell>(new StorageShell(config, startup, std::move(*writer),
                                                        std::move(*reader), std::move(*catchup),
                                                        std::move(*acks)));
}

StorageShell::StorageShell(const StorageShellConfig& config, StartupRecovery* startup,
                           std::unique_ptr<storage::UringWriter> writer,
                           std::unique_ptr<storage::UringReader> reader,
                           std::unique_ptr<storage::UringReader> catchup,
                           std::unique_ptr<storage::AckRing> acks)
    : config_(config),
      startup_(startup),
      writer_(std::move(writer)),
      reader_(std::move(reader)),
      catchup_(std::move(catchup)),
      ack_ring_(std::move(acks)) {
  read_records_.reserve(4096);
  policy_.batch_bytes = config.storage.batch_bytes;
  policy_.batch_time_ns = uint64_t{config.storage.batch_time_us} * 1000;
  parts_.reserve(1024);
  by_handle_.reserve(1024);
  ack_dirty_.reserve(1024);
  ack_failed_.reserve(1024);
  // Created here, i.e. on the thread that creates the shell: sluiced's main thread (the
  // housekeeping CPU), never a polling worker's (storage/file_worker.h).
  files_ = std::make_unique<storage::FileWorker>("sluice-files", kMaxFileJobs);
  removals_.reserve(kMaxFileJobs);
}

StorageShell::~StorageShell() {
  // The ack logs' buffers are the kernel's until their writes complete.
  ack_ring_->Drain([](storage::AckLog&) {});
  // Removals not handed over yet (the worker was full) go now; the worker runs what it holds
  // to the end before its thread joins (~FileWorker).
  for (const auto& job : removals_) {
    if (job->state() == storage::FileJob::kIdle) (void)files_->Submit(job);
  }
  files_.reset();
  for (const auto& job : removals_) {
    if (job->done() && !job->status().ok()) {
      std::fprintf(stderr, "sluiced: %s\n", std::string(job->status().message()).c_str());
    }
  }
}

StorageShell::Part* StorageShell::Find(uint32_t q, uint32_t p) {
  auto it = parts_.find(Key(q, p));
  return it == parts_.end() ? nullptr : it->second.get();
}

const StorageShell::Part* StorageShell::Find(uint32_t q, uint32_t p) const {
  auto it = parts_.find(Key(q, p));
  return it == parts_.end() ? nullptr : it->second.get();
}

absl::StatusOr<RecoveredLog> StorageShell::Open(
    uint32_t queue, uint32_t partition, shard::Durability durability,
    absl::FunctionRef<absl::Status(const RecoveredMessage&)> restore,
    absl::FunctionRef<void(std::string_view group, uint64_t offset)> committed) {
  SLUICE_ASSERT(durability != shard::Durability::kNone && Find(queue, partition) == nullptr);
  const std::string data_dir = DataDirOf(config_.storage, queue, partition);
  const storage::PartitionId id{queue, partition};
  std::optional<storage::RecoveredPartition> rec;
  // A queue created at runtime: its files were opened off the lcore (StartupRecovery::Prepare).
  std::unique_ptr<PreparedOpen> prepared;
  if (startup_ != nullptr) rec = startup_->Take(queue, partition);
  if (!rec.has_value() && startup_ != nullptr) {
    prepared = startup_->TakePrepared(queue, partition);
    if (prepared != nullptr) {
      if (prepared->status.ok()) prepared->rec.status = absl::OkStatus();
      else prepared->rec.status = prepared->status;
      rec.emplace(std::move(prepared->rec));
    }
  }
  if (!rec.has_value()) {
    storage::PartitionToRecover what{data_dir, id, 0, false};
    rec = storage::RecoverPartition(what, RecoveryOptionsOf(config_.storage));
  }
  const std::string where = absl::StrFormat("queue %u partition %u (%s)", queue, partition,
                                            data_dir);
  if (!rec->status.ok()) {
    return absl::Status(rec->status.code(),
                        absl::StrFormat("%s: recovery: %s", where, rec->status.message()));
  }

  for (const storage::RecoveredRecord& r : rec->records) {
    RecoveredMessage m;
    m.offset = r.offset;
    m.timestamp_ns = r.timestamp_ns;
    m.producer_id = r.producer_id;
    m.deleted = rec->acks.IsDeleted(r.offset);
    m.record = rec->record(r);
    if (absl::Status s = restore(m); !s.ok()) {
      return absl::Status(s.code(), absl::StrFormat("%s: offset %u: %s", where, r.offset,
                                                    s.message()));
    }
  }
  for (const auto& [group, offset] : rec->acks.commits) committed(group, offset);

  storage::PartitionSpec spec;
  spec.data_dir = data_dir;
  spec.id = id;
  spec.durability = durability;
  spec.epoch = config_.epoch;
  std::optional<storage::AckLog> acks;
  std::string dir_path;
  absl::StatusOr<storage::PartitionHandle> h = absl::UnknownError("not opened");
  const uint64_t next_offset = rec->log.next_offset;
  if (prepared != nullptr) {
    // Adopted: no blocking file-system call here (the segment's registration goes through the
    // ring).
    acks.emplace(std::move(*prepared->acks));
    dir_path = prepared->files.dir->path();
    h = writer_->AdoptPartition(spec, std::move(rec->log), std::move(prepared->files));
    if (h.ok()) ++stats_.opens_off_lcore;
  } else {
    absl::StatusOr<storage::PartitionDir> dir = storage::PartitionDir::Open(data_dir, id, true);
    if (!dir.ok()) return dir.status();
    rec->acks.Compact(rec->log.start_offset());
    absl::StatusOr<storage::AckLog> opened =
        storage::AckLog::Open(dir->path(), dir->AckLogPath(), rec->acks);
    if (!opened.ok()) return opened.status();
    acks.emplace(std::move(*opened));
    dir_path = dir->path();
    h = writer_->OpenPartition(spec, std::move(rec->log));
    if (h.ok() && running_) ++stats_.opens_on_lcore;  // blocking calls on the worker's lcore
  }

  RecoveredLog out;
  out.next_offset = next_offset;
  out.summary = absl::StrFormat("%s: %u record(s) on disk, next offset %u", where,
                                rec->records.size(), out.next_offset);
  if (!h.ok()) {
    return absl::Status(h.status().code(),
                        absl::StrFormat("%s: open: %s", where, h.status().message()));
  }
  auto part = std::make_unique<Part>();
  part->queue = queue;
  part->partition = partition;
  part->handle = *h;
  part->acks.emplace(std::move(*acks));  // moved before Attach: its address is the ring's
  part->acks->Attach(ack_ring_.get(), Key(queue, partition));  // its place for good: parts_ owns it
  part->submitted_end = part->durable_end = out.next_offset;
  part->purged_below = rec->acks.deleted_below;
  part->dir = dir_path;
  by_handle_[*h] = part.get();
  parts_[Key(queue, partition)] = std::move(part);
  ++stats_.opened;
  return out;
}

void StorageShell::Close(uint32_t queue, uint32_t partition, bool remove) {
  auto it = parts_.find(Key(queue, partition));
  if (it == parts_.end()) return;
  Part& p = *it->second;
  if (p.acks.has_value()) {
    // Control path (queue deleted, shutdown): what is buffered goes, and the ring's requests on
    // the log complete before it does (waited for here).
    p.acks->StartFlush();
    ack_ring_->Wait(*p.acks, [this](storage::AckLog& l) { OnAckFailed(l); });
    if (p.acks->busy() && !p.acks->failed()) {  // its rest, re-queued by the completion
      ack_ring_->Wait(*p.acks, [this](storage::AckLog& l) { OnAckFailed(l); });
    }
    SyncAckStats();
  }
  writer_->ClosePartition(p.handle);
  if (p.ack_dirty) std::erase(ack_dirty_, &p);
  std::erase(ack_failed_, &p);
  by_handle_.erase(p.handle);
  if (remove) {
    // The directory goes on the file worker's thread (blocking unlinks, off the lcore); Poll
    // takes the result. Nothing here uses the directory any more (its files are closed above),
    // and queue ids are never reused, so no later partition can be given this directory while
    // the removal runs. A crash before it completes leaves a directory of no queue, as a crash
    // in the middle of the removal did before.
    auto job = std::make_shared<storage::RemoveTreeJob>(p.dir);
    (void)files_->Submit(job);  // refused (the worker is full): handed over by a later Poll
    removals_.push_back(std::move(job));
  }
  parts_.erase(it);
  ++stats_.closed;
}

bool StorageShell::Idle(uint32_t queue, uint32_t partition) const {
  const Part* p = Find(queue, partition);
  return p == nullptr || p->durable_end >= p->submitted_end;
}

Errc StorageShell::Submit(uint32_t queue, uint32_t partition, const shard::SealedBatch& batch) {
  Part* p = Find(queue, partition);
  SLUICE_ASSERT(p != nullptr);  // the frontend submits only partitions it opened here
  if (p->failed) return Errc::kStorageFailed;
  if (batch.end_offset() <= p->submitted_end) return Errc::kOk;  // taken in an earlier pass
  const Errc e = writer_->Submit(p->handle, batch);
  if (e == Errc::kOk) {
    p->submitted_end = batch.end_offset();
    ++stats_.submitted;
    stats_.submitted_bytes += batch.bytes.size();
    SyncWriterStats();
  } else if (e == Errc::kThrottled) {
    ++stats_.throttled;
  }
  return e;
}

void StorageShell::Report(const storage::Completion& c,
                          absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                                 std::string_view)> fn) {
  auto it = by_handle_.find(c.handle);
  if (it == by_handle_.end()) return;  // closed since
  Part& p = *it->second;
  SyncWriterStats();  // per completion (a batch or more), not per message: a few relaxed stores
  if (c.errc != Errc::kOk) {
    if (!p.failed) ++stats_.failed;
    p.failed = true;
    fn(p.queue, p.partition, c.durable, c.errc, writer_->failure(c.handle));
    return;
  }
  p.durable_end = std::max(p.durable_end, c.durable.value);
  fn(p.queue, p.partition, c.durable, Errc::kOk, {});
}

uint32_t StorageShell::Poll(absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                                   std::string_view)> fn) {
  uint32_t n = writer_->Poll([&](const storage::Completion& c) { Report(c, fn); });
  // Partitions an ack-log write or sync failed (FlushAcks found them): reported as a failed
  // write is, once.
  for (Part* p : ack_failed_) {
    if (p->failure_reported) continue;
    p->failure_reported = true;
    fn(p->queue, p->partition, shard::DurableOffset{p->durable_end}, Errc::kStorageFailed,
       p->acks->failure());
    ++n;
  }
  ack_failed_.clear();
  if (!removals_.empty()) n += PollRemovals();
  // A retention removal completes without a completion to report: its count goes over here.
  if (writer_->stats().retention_removed != stats_.segments_removed.load()) SyncWriterStats();
  return n;
}

uint32_t StorageShell::PollRemovals() {
  uint32_t n = 0;
  for (const auto& job : removals_) {
    if (job->state() == storage::FileJob::kIdle && !files_->Submit(job)) break;  // still full
  }
  // In order: the worker runs them in the order handed over.
  while (!removals_.empty() && removals_.front()->done()) {
    const storage::RemoveTreeJob& job = *removals_.front();
    if (job.status().ok()) {
      ++stats_.dirs_removed;
    } else {
      // As before the worker: said, and the directory stays (it belongs to no queue).
      ++stats_.dir_removal_errors;
      std::fprintf(stderr, "sluiced: %s\n", std::string(job.status().message()).c_str());
    }
    removals_.erase(removals_.begin());
    ++n;
  }
  return n;
}

void StorageShell::Drain(absl::FunctionRef<void(uint32_t, uint32_t, shard::DurableOffset, Errc,
                                                std::string_view)> fn) {
  writer_->Drain([&](const storage::Completion& c) { Report(c, fn); });
  SettleAcks();
}

bool StorageShell::AppendAck(Part* p, absl::FunctionRef<bool(storage::AckLog&)> append) {
  storage::AckLog& log = *p->acks;
  if (!log.failed() && append(log)) return true;
  if (!log.failed()) {
    // The active buffer is full: it goes now, or, if the other buffer is still being written,
    // once that write completed (waited for: rare, the disk is 64 KiB of acks behind).
    log.StartFlush();
    if (log.full_while_writing() || log.ops_in_flight() > 0) {
      if (log.buffered_bytes() > 0) {
        ++stats_.ack_write_waits;
        ack_ring_->Wait(log, [this](storage::AckLog& l) { OnAckFailed(l); });
      }
    }
    if (!log.failed() && append(log)) return true;
  }
  ++stats_.ack_flush_errors;  // not logged: the partition failed (a redelivery after a restart)
  return false;
}

void StorageShell::Removed(uint32_t queue, uint32_t partition, uint64_t offset) {
  Part* p = Find(queue, partition);
  if (p == nullptr || !p->acks.has_value()) return;
  if (!AppendAck(p, [&](storage::AckLog& l) { return l.Delete(offset); })) return;
  MarkDirty(p);
  ++stats_.ack_entries;
}

void StorageShell::Committed(uint32_t queue, uint32_t partition, std::string_view group,
                             uint64_t offset) {
  Part* p = Find(queue, partition);
  if (p == nullptr || !p->acks.has_value() || group.size() > storage::AckLog::kMaxGroupBytes) {
    return;
  }
  if (!AppendAck(p, [&](storage::AckLog& l) { return l.Commit(group, offset); })) return;
  MarkDirty(p);
  ++stats_.ack_entries;
}

absl::Status StorageShell::Purged(uint32_t queue, uint32_t partition, uint64_t below) {
  Part* p = Find(queue, partition);
  if (p == nullptr || !p->acks.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrFormat("queue %u partition %u: purge below offset %u: no log here", queue,
                        partition, below));
  }
  p->purged_below = std::max(p->purged_below, below);
  // Whatever deletes are buffered go first, then the mark; an fdatasync linked behind the write
  // makes it durable. Nothing blocks: the control thread that asked for the purge waits for
  // ack_syncs_done (SluicedBackend::Purge); a failure fails the partition (reported by Poll).
  if (!AppendAck(p, [&](storage::AckLog& l) { return l.DeletedBelow(below); })) {
    return absl::DataLossError(absl::StrFormat(
        "queue %u partition %u: purge below offset %u: ack log: %s", queue, partition, below,
        p->acks->failed() ? p->acks->failure() : std::string("no room")));
  }
  ++stats_.ack_entries;
  p->acks->StartFlush(/*sync=*/true);
  ++stats_.ack_sync_requests;
  SyncAckStats();
  return absl::OkStatus();
}

Errc StorageShell::Fetch(uint32_t queue, uint32_t partition, bool by_timestamp, uint64_t value,
                         uint32_t max_records, uint64_t cookie) {
  const Part* p = Find(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  storage::FetchRequest r;
  r.partition = p->handle;
  r.by = by_timestamp ? storage::FetchBy::kTimestamp : storage::FetchBy::kOffset;
  r.value = value;
  r.max_records = std::max<uint32_t>(1, max_records);
  r.cookie = cookie;
  const Errc e = reader_->Fetch(r);
  if (e != Errc::kThrottled) ++stats_.cold_fetches;
  return e;
}

Errc StorageShell::StartBatchRead(uint32_t queue, uint32_t partition, uint64_t offset,
                                  uint64_t hint_segment, uint64_t hint_position, uint64_t cookie) {
  const Part* p = Find(queue, partition);
  if (p == nullptr) return Errc::kUnknownPartition;
  storage::FetchRequest r;
  r.partition = p->handle;
  r.by = storage::FetchBy::kBatch;
  r.value = offset;
  r.cookie = cookie;
  r.hint_segment = hint_segment;
  r.hint_position = hint_position;
  return catchup_->Fetch(r);
}

Persistence::BatchRead BatchReadOf(const storage::FetchResult& r) {
  Persistence::BatchRead b;
  b.cookie = r.cookie;
  b.errc = r.errc;
  if (r.errc == Errc::kOk) {
    b.base = r.first_offset;
    b.end = r.next_offset;
    b.bytes = r.batch();
    b.next_hint_segment = r.segment_base;
    b.next_hint_position = r.end_position;
  }
  return b;
}

uint32_t StorageShell::PollBatchReads(absl::FunctionRef<void(const BatchRead&)> fn) {
  return catchup_->Poll([&](const storage::FetchResult& r) { fn(BatchReadOf(r)); });
}

uint32_t StorageShell::PollReads(
    absl::FunctionRef<void(uint64_t, Errc, uint64_t, std::span<const shard::StoredMessage>)> fn) {
  return reader_->Poll([&](const storage::FetchResult& r) {
    read_records_.clear();
    r.ForEach([&](const storage::RecordView& v) {
      read_records_.push_back(shard::StoredMessage{v.offset, v.timestamp_ns, v.record});
    });
    fn(r.cookie, r.errc, r.next_offset, read_records_);
  });
}

uint64_t StorageShell::LogStart(uint32_t queue, uint32_t partition) const {
  const Part* p = Find(queue, partition);
  if (p == nullptr) return shard::kNoOffset;
  // A purge mark hides what is below it (its segments go at the next retention pass).
  return std::max(writer_->log(p->handle).start_offset(), p->purged_below);
}

uint64_t StorageShell::FirstSegmentBase(uint32_t queue, uint32_t partition) const {
  const Part* p = Find(queue, partition);
  return p == nullptr ? shard::kNoOffset : writer_->log(p->handle).start_offset();
}

uint64_t StorageShell::LogBytes(uint32_t queue, uint32_t partition) const {
  const Part* p = Find(queue, partition);
  return p == nullptr ? 0 : writer_->log(p->handle).bytes();
}

bool StorageShell::HasClosedSegments(uint32_t queue, uint32_t partition) const {
  const Part* p = Find(queue, partition);
  return p != nullptr && !p->failed && writer_->log(p->handle).segments.size() > 1;
}

uint32_t StorageShell::EnforceRetention(uint32_t queue, uint32_t partition,
                                        uint64_t keep_from_offset, uint64_t max_bytes,
                                        uint64_t max_age_ns, uint64_t now_ns) {
  Part* p = Find(queue, partition);
  if (p == nullptr || p->failed) return 0;
  storage::UringWriter::Retention r;
  if (keep_from_offset == UINT64_MAX && p->purged_below > 0) {
    // A purged stream: the segments wholly below the purge mark go first.
    r.keep_from_offset = p->purged_below;
    (void)writer_->EnforceRetention(p->handle, r);  // counted when the ring completed it
  }
  r.keep_from_offset = keep_from_offset;
  r.max_bytes = max_bytes;
  r.max_age_ns = max_age_ns;
  r.now_ns = now_ns;
  absl::StatusOr<uint32_t> removed = writer_->EnforceRetention(p->handle, r);
  if (!removed.ok()) {
    ++stats_.retention_errors;
    std::fprintf(stderr, "sluiced: queue %u partition %u: retention: %s\n", queue, partition,
                 std::string(removed.status().message()).c_str());
    return 0;
  }
  SyncWriterStats();  // removals queued earlier completed since (segments_removed)
  return *removed;
}

void StorageShell::SyncWriterStats() {
  const storage::WriterStats& ws = writer_->stats();
  stats_.fixed_writes.set(ws.fixed_writes);
  stats_.writes_during_spare_sync.set(ws.writes_during_spare_sync);
  stats_.rolls_prepared.set(ws.rolls_prepared);
  stats_.rolls_blocking.set(ws.rolls_blocking);
  stats_.roll_waits.set(ws.roll_waits);
  stats_.spare_failures.set(ws.spare_failures);
  stats_.segments_removed.set(ws.retention_removed);
}

void StorageShell::MarkDirty(Part* p) {
  if (p->ack_dirty) return;
  p->ack_dirty = true;
  ack_dirty_.push_back(p);
}

void StorageShell::FlushAcks() {
  running_ = true;
  for (Part* p : ack_dirty_) {
    p->ack_dirty = false;
    // Not fsynced (docs/storage.md §6): a delete lost in a power failure means a redelivery,
    // which at-least-once allows. A write in flight on the log: these go when it completes.
    p->acks->StartFlush();
  }
  ack_dirty_.clear();
  if (ack_ring_->idle()) return;  // nothing in flight: no ring access at all
  ack_ring_->Poll([this](storage::AckLog& l) { OnAckFailed(l); });
  SyncAckStats();
}

bool StorageShell::AcksSettled() const {
  if (!ack_ring_->idle() || !ack_dirty_.empty()) return false;
  for (const auto& [key, p] : parts_) {
    if (p->acks.has_value() && p->acks->busy()) return false;
  }
  return true;
}

uint64_t StorageShell::AckLogEnd(uint32_t queue, uint32_t partition) const {
  const Part* p = Find(queue, partition);
  return p != nullptr && p->acks.has_value() ? p->acks->appended_bytes() : 0;
}

bool StorageShell::AckLogWritten(uint32_t queue, uint32_t partition, uint64_t end) const {
  const Part* p = Find(queue, partition);
  return p == nullptr || !p->acks.has_value() || p->acks->failed() ||
         p->acks->file_bytes() >= end;
}

void StorageShell::SettleAcks() {
  FlushAcks();
  // A completion may queue the rest of a short write or the next buffer: until all is quiet.
  for (int round = 0; round < 1000 && !ack_ring_->idle(); ++round) {
    ack_ring_->Drain([this](storage::AckLog& l) { OnAckFailed(l); });
  }
  SyncAckStats();
}

void StorageShell::OnAckFailed(storage::AckLog& log) {
  // As a failed segment write: the partition takes no more writes and answers STORAGE_FAILED
  // (docs/storage.md §6: an ack-log write error is never retried-and-forgotten).
  ++stats_.ack_flush_errors;
  // The purge marks waiting for this log's sync never will be: the control thread stops waiting.
  stats_.ack_syncs_failed += log.syncs_requested() - log.syncs_done();
  Part* p = Find(static_cast<uint32_t>(log.cookie() >> 32), static_cast<uint32_t>(log.cookie()));
  if (p == nullptr) return;
  if (!p->failed) {
    ++stats_.failed;
    ++stats_.ack_failures;
  }
  p->failed = true;
  if (!p->failure_reported) ack_failed_.push_back(p);
}

void StorageShell::SyncAckStats() {
  const storage::AckRingStats& as = ack_ring_->stats();
  stats_.ack_writes_async.set(as.writes);
  stats_.ack_syncs_async.set(as.syncs);
  stats_.ack_syncs_done.set(as.syncs_covered);
}

}  // namespace sluice::dataplane
