#include "storage/uring_writer.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/fs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "dataplane/shard/ring.h"
#include "protocol/assert.h"
#include "storage/spare_preparer.h"

namespace sluice::storage {
namespace {

constexpr uint32_t kFilesPerPartition = 4;  // the active segment + segments still completing
constexpr uint64_t kNoSeq = UINT64_MAX;

// A prepared roll's chain (Request::gen holds the Part::files slot of the new segment), linked in
// this order: kRename (next.spare -> <base>.log), kIndexOpen (<base>.index, created), kDirSync
// (fsync of the directory, which makes the rename durable).
// kIndexWrite: one 32-byte index entry (a batch entry or the seal) written to a segment's index
// file from Request::buf (Request::gen: the Part::files slot).
// Retention: kUnlink of a removed segment's .index (on its own) and .log (name in Request::buf),
// and kRetentionSync, the fsync of the directory after each .log unlink; the .log unlinks and
// fsyncs of one call form one linked chain, oldest segment first.
// kFileRegister / kFileUnregister: a segment's slot in the registered file table set to its fd
// (Request::gen: the Part::files slot) or emptied (Request::gen: the table slot); kClose: a
// closed segment's fd. The lcore's roll and file close make no system call of their own.
enum class Op : uint8_t {
  kFree, kWrite, kSync, kRename, kIndexOpen, kDirSync, kIndexWrite, kUnlink, kRetentionSync,
  kFileRegister, kFileUnregister, kClose
};
constexpr uint32_t kRollOps = 3;
// A roll's requests besides its write: the chain, the new file's registration, the old
// segment's seal.
constexpr uint32_t kRollReserve = kRollOps + 2;
constexpr uint32_t kCloseOps = 3;  // unregister, close the log, close the index
int kNoFile = -1;  // what IORING_OP_FILES_UPDATE reads to empty a slot (never written)
constexpr size_t kNameBytes = 32;  // "<20 digits>.index" and its NUL fit

struct Request {
  Op op = Op::kFree;
  uint32_t part = 0;
  uint64_t seq = kNoSeq;  // the flight (batch) it belongs to
  uint32_t gen = 0;       // kSync: the write attempt it follows; kIndexWrite: the file slot
  int inject_res = 0;     // fault injection: the result to report instead of the real one
  // What the kernel reads for the request, alive until its completion (requests are a fixed
  // table): kIndexWrite's entry, kUnlink's file name (relative to Part::dir_fd).
  alignas(8) char buf[kNameBytes] = {};
};
static_assert(sizeof(IndexEntry) <= kNameBytes);

// A batch on its way to disk.
struct Flight {
  uint64_t seq = 0;
  uint64_t first_offset = 0;
  uint64_t end_offset = 0;
  uint64_t first_ts = 0;
  uint64_t last_ts = 0;
  std::byte* buf = nullptr;
  uint32_t stride = 0;
  uint32_t written = 0;   // bytes the device took so far
  uint64_t position = 0;  // in the segment
  uint64_t segment = 0;   // base offset of its segment
  uint8_t file = 0;       // Part::files slot
  uint32_t gen = 0;       // write attempts (a re-queue bumps it)
  uint32_t ops = 0;       // requests in flight
  bool synced = false;    // buffered mode: the fdatasync after the last write attempt succeeded
  bool fixed = false;     // buf lies in a registered region: written with WRITE_FIXED
  uint16_t buf_index = 0; // that region's index in the ring's buffer table
};

struct SegmentFile {
  Fd fd;
  Fd index_fd;
  int slot = -1;          // registered file index, -1 = use fd
  uint64_t base = 0;
  uint64_t capacity = 0;  // file size: appends stop before it
  uint32_t ops = 0;       // requests in flight on it
  bool open = false;
  bool active = false;
  // false from a prepared roll until its chain (rename, index open, directory fsync) completed:
  // until then the segment's name may not survive a crash, so no batch in it is reported durable
  // (Retire).
  bool dir_synced = true;
  uint32_t roll_ops = 0;     // requests of that chain still in flight
  bool roll_failed = false;
  // The chain's RENAMEAT completed: the name next.spare is free again, the next spare may be
  // prepared (true for a segment that was not renamed into place).
  bool renamed = true;
  // Closing: the seal entry was queued on the ring (or none is needed); the file closes once
  // that write completed.
  bool seal_done = false;
  // A registration through the ring in flight: the table slot it fills and the fd the kernel
  // reads (here, not on the stack: the kernel may read it after RollPrepared returned).
  int pending_slot = -1;
  int reg_fd = -1;
  // The chain's path names (relative to Part::dir_fd): the kernel reads them when the ring
  // submits, which is after RollPrepared returned, so they live here, not on the stack.
  char log_name[32] = {};
  char index_name[32] = {};
};

struct Part {
  bool open = false;
  PartitionSpec spec;
  std::optional<PartitionDir> dir;
  LogState log;
  SegmentFile files[kFilesPerPartition];
  uint8_t active = 0;
  bool direct = true;
  uint64_t tail = 0;           // next write position in the active segment
  uint64_t submitted_end = 0;  // end offset of the last batch submitted
  uint64_t durable_end = 0;
  uint64_t reported_end = 0;
  shard::Ring<Flight> flights;
  uint64_t next_seq = 0;
  bool failed = false;
  bool failure_reported = false;
  std::string failure;
  bool dirty = false;
  bool warned = false;  // the buffered-fallback warning, once per partition
  std::shared_ptr<SpareSlot> spare;  // the next segment, prepared off the lcore (null: none)
  Fd dir_fd;                         // the partition directory, for the ring's fsync of it
  // A roll found no spare ready and holds its batch (kThrottled) until one is: counted once per
  // roll in WriterStats::roll_waits.
  bool waiting_for_spare = false;
  // Retention's chain in flight: its requests, and the segments it removes.
  uint32_t removal_ops = 0;
  uint32_t removal_segments = 0;
  bool removal_failed = false;
  bool deferred = false;  // in Impl::deferred: index work waits for a free request
};

}  // namespace

struct UringWriter::Impl {
  WriterConfig cfg;
  io_uring ring{};
  bool ring_ok = false;
  std::vector<std::span<std::byte>> regions;  // the ring's buffer table, in index order
  bool enabled = false;  // R_DISABLED rings are enabled by the owning thread's first call
  bool slice_set = false;  // the owner's first write applied cfg.owner_slice_ns
  RingFeatures features;
  WriterStats stats;
  FaultInjection faults;
  std::vector<Request> requests;
  std::vector<uint32_t> free_requests;
  std::vector<int> free_slots;  // registered file slots
  std::vector<Part> parts;
  std::vector<uint32_t> dirty;
  // Partitions whose retirement or file close waits for a free request (an index entry or seal
  // to write): made dirty again after the pass, so the next Poll retries.
  std::vector<uint32_t> deferred;
  uint32_t pending_sqes = 0;
  // Declared last: destroyed (its thread joined) before anything the spares refer to.
  std::unique_ptr<SparePreparer> preparer;

  ~Impl() {
    if (ring_ok) io_uring_queue_exit(&ring);
  }

  absl::Status Setup();
  void Adopt();
  absl::Status RegisterRegions(std::span<const std::span<std::byte>> more);
  Part& P(PartitionHandle h) {
    SLUICE_ASSERT(h < parts.size() && parts[h].open);
    return parts[h];
  }
  Flight& FlightOf(Part& p, uint64_t seq) {
    SLUICE_ASSERT(!p.flights.empty() && seq >= p.flights.front().seq);
    Flight& f = p.flights[seq - p.flights.front().seq];
    SLUICE_ASSERT(f.seq == seq);
    return f;
  }
  uint32_t AllocRequest(Op op, uint32_t part, uint64_t seq) {
    SLUICE_ASSERT(!free_requests.empty());
    const uint32_t id = free_requests.back();
    free_requests.pop_back();
    requests[id] = Request{op, part, seq, 0, 0};
    return id;
  }
  void FreeRequest(uint32_t id) {
    requests[id].op = Op::kFree;
    free_requests.push_back(id);
  }
  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    SLUICE_ASSERT(sqe != nullptr);  // SQ entries >= requests, and a request holds one SQE at most
    ++pending_sqes;
    return sqe;
  }

  absl::Status OpenActive(Part& p, PartitionHandle h);
  // A segment's files become the partition's active segment (the log's last). via_ring: its
  // registered-file slot is set through the ring (the owning thread's way: no system call);
  // else with io_uring_register_files_update (the blocking paths).
  void Install(Part& p, PartitionHandle h, PreparedFiles files, bool via_ring);
  void RegisterViaRing(PartitionHandle h, SegmentFile& f, uint8_t i);
  // A new open partition (the last of `parts`) at the log's end, with no files yet.
  absl::StatusOr<PartitionHandle> AddPart(const PartitionSpec& spec, LogState state);
  absl::Status Roll(Part& p, PartitionHandle h, uint64_t base);
  // Both rolls: the active segment closes (its files once nothing is in flight on them) and the
  // log gains a segment starting at `base`.
  void StartSegment(Part& p, PartitionHandle h, uint64_t base);
  absl::Status RollPrepared(Part& p, PartitionHandle h, uint64_t base, Fd log, bool direct);
  // OpenPartition of a new partition (control path, blocking): its first segment.
  absl::Status CreateFirstSegment(Part& p, PartitionHandle h, uint64_t base);
  // The spare for the partition's next segment, if none is asked for yet and asking is safe.
  void MaybeRequestSpare(Part& p);
  // Closes a segment file that is no longer active once nothing is in flight on it and no
  // unretired batch is in it, after writing its seal entry through the ring.
  void MaybeClose(PartitionHandle h, Part& p, uint8_t i);
  // via_ring: the lcore's path (table slot emptied and fds closed by the ring, if it has room);
  // else with plain system calls (control path: partition close).
  void CloseFile(PartitionHandle h, Part& p, uint8_t i, bool via_ring);
  // Queues `e` to be written at `at` in file i's index. False: no free request (retry later).
  bool PrepIndexWrite(PartitionHandle h, Part& p, uint8_t i, const IndexEntry& e, uint64_t at);
  void Defer(PartitionHandle h, Part& p) {
    ++stats.index_deferrals;
    if (!p.deferred) {
      p.deferred = true;
      deferred.push_back(h);
    }
  }
  void PrepWrite(PartitionHandle h, Part& p, Flight& f);
  void Fail(PartitionHandle h, Part& p, int err, std::string_view what);
  void MarkDirty(PartitionHandle h, Part& p) {
    if (!p.dirty) {
      p.dirty = true;
      dirty.push_back(h);
    }
  }
  void OnCompletion(uint32_t id, int res);
  void Retire(PartitionHandle h, Part& p);
  uint32_t Reap();
  int SubmitPending(bool wait);
  uint32_t Report(absl::FunctionRef<void(const Completion&)> fn);
};

// ---- setup ---------------------------------------------------------------------------------

absl::Status UringWriter::Impl::Setup() {
  const uint32_t depth = std::max<uint32_t>(cfg.queue_depth, 8);
  RingOptions o{depth, cfg.sqpoll, cfg.sqpoll_cpu, cfg.sqpoll_idle_ms};
  if (absl::Status s = InitRing(&ring, o, &features); !s.ok()) return s;
  ring_ok = true;
  if (cfg.register_resources && !cfg.buffers.empty()) {
    const std::span<std::byte> initial[] = {cfg.buffers};
    if (absl::Status s = RegisterRegions(initial); !s.ok()) {
      std::fprintf(stderr, "sluice storage: warning: %s; writes pin pages per I/O\n",
                   std::string(s.message()).c_str());
    }
  }
  const uint32_t slots = cfg.max_partitions * kFilesPerPartition;
  if (cfg.register_resources && io_uring_register_files_sparse(&ring, slots) == 0) {
    features.registered_files = true;
    for (int i = static_cast<int>(slots) - 1; i >= 0; --i) free_slots.push_back(i);
  }
  requests.resize(depth);
  for (uint32_t i = depth; i-- > 0;) free_requests.push_back(i);
  if (cfg.prepare_spares) {
    preparer = std::make_unique<SparePreparer>(cfg.max_partitions, cfg.while_preparing_spare);
  }
  parts.reserve(cfg.max_partitions);
  dirty.reserve(cfg.max_partitions);
  deferred.reserve(cfg.max_partitions);
  return absl::OkStatus();
}

void UringWriter::Impl::Adopt() {
  EnableRing(&ring, &features);
  // Registered by the owning thread: a SINGLE_ISSUER ring takes registrations only from it.
  if (!enabled && cfg.completion_eventfd >= 0) {
    const int rc = io_uring_register_eventfd(&ring, cfg.completion_eventfd);
    SLUICE_ASSERT(rc == 0);  // a valid eventfd on our own ring: failing means a bug
  }
  enabled = true;
}

// One buffer table per ring: adding regions replaces the table with the old regions plus the new.
absl::Status UringWriter::Impl::RegisterRegions(std::span<const std::span<std::byte>> more) {
  std::vector<std::span<std::byte>> next = regions;
  for (std::span<std::byte> r : more) {
    if (!r.empty()) next.push_back(r);
  }
  constexpr size_t kMaxRegions = 16;      // Flight::buf_index and a short lookup per batch
  constexpr size_t kMaxRegionBytes = 1ull << 30;  // the kernel's limit per registered buffer
  if (next.size() > kMaxRegions) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot register ", next.size(), " buffer regions (at most ", kMaxRegions, ")"));
  }
  std::vector<iovec> iov;
  for (std::span<std::byte> r : next) {
    if (r.size() > kMaxRegionBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot register a buffer region of ", r.size(), " bytes (at most 1 GiB)"));
    }
    iov.push_back(iovec{r.data(), r.size()});
  }
  if (features.registered_buffers) io_uring_unregister_buffers(&ring);
  features.registered_buffers = false;
  regions.clear();
  if (iov.empty()) return absl::OkStatus();
  const int err = io_uring_register_buffers(&ring, iov.data(), static_cast<unsigned>(iov.size()));
  if (err != 0) {
    return absl::InternalError(absl::StrCat("cannot register ", iov.size(),
                                            " buffer region(s) with io_uring: ",
                                            std::strerror(-err)));
  }
  features.registered_buffers = true;
  regions = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<UringWriter>> UringWriter::Create(const WriterConfig& config) {
  SLUICE_ASSERT(config.align_bytes > 0 && (config.align_bytes & (config.align_bytes - 1)) == 0);
  SLUICE_ASSERT(config.segment_bytes % config.align_bytes == 0);
  auto impl = std::make_unique<Impl>();
  impl->cfg = config;
  if (absl::Status s = impl->Setup(); !s.ok()) return s;
  return std::unique_ptr<UringWriter>(new UringWriter(std::move(impl)));
}

UringWriter::UringWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UringWriter::~UringWriter() {
  if (impl_->enabled) Drain([](const Completion&) {});
  // Spares of partitions still open go (a crash leaves them to recovery, which removes them).
  for (Part& p : impl_->parts) {
    if (p.open && p.spare) impl_->preparer->Cancel(*p.spare);
  }
}

// ---- partitions ----------------------------------------------------------------------------

namespace {

// The blocking half of opening a partition's active segment `seg` (any thread): opens it (O_DIRECT
// if asked and possible), preallocates it if short, rewrites its index to what recovery kept
// and opens that for appending.
absl::Status PrepareActive(const PartitionDir& dir, const SegmentState& seg, uint64_t segment_bytes,
                           bool direct_io, PreparedFiles* out) {
  const std::string path = dir.LogPath(seg.base_offset);
  absl::StatusOr<Fd> fd = direct_io ? OpenMaybeDirect(path, O_RDWR, &out->direct)
                                    : OpenBuffered(path, O_RDWR, &out->direct);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<uint64_t> size = FileSize(fd->get(), path);
  if (!size.ok()) return size.status();
  if (*size < segment_bytes) {
    if (int e = ::posix_fallocate(fd->get(), 0, static_cast<off_t>(segment_bytes)); e != 0) {
      return ErrnoStatus(e, "fallocate", path);
    }
    if (::fsync(fd->get()) != 0) return ErrnoStatus(errno, "fsync", path);
  }
  // The index file is rewritten to exactly what recovery kept, then appended to.
  if (absl::Status s = dir.WriteIndex(seg.base_offset, seg.index); !s.ok()) return s;
  Fd index(::open(dir.IndexPath(seg.base_offset).c_str(), O_WRONLY | O_CLOEXEC));
  if (!index.valid()) return ErrnoStatus(errno, "open", dir.IndexPath(seg.base_offset));
  out->log = std::move(*fd);
  out->index = std::move(index);
  out->capacity = std::max(*size, segment_bytes);
  out->tail = seg.end_position;
  return absl::OkStatus();
}

}  // namespace

absl::Status UringWriter::Impl::OpenActive(Part& p, PartitionHandle h) {
  PreparedFiles files;
  if (absl::Status s = PrepareActive(*p.dir, p.log.segments.back(), cfg.segment_bytes,
                                     cfg.direct_io, &files);
      !s.ok()) {
    return s;
  }
  Install(p, h, std::move(files), /*via_ring=*/false);
  return absl::OkStatus();
}

absl::StatusOr<PartitionHandle> UringWriter::Impl::AddPart(const PartitionSpec& spec,
                                                           LogState state) {
  if (parts.size() >= cfg.max_partitions) {
    return absl::ResourceExhaustedError("storage writer: max_partitions reached");
  }
  const PartitionHandle h = static_cast<PartitionHandle>(parts.size());
  parts.emplace_back();  // reserved to max_partitions: no allocation
  Part& p = parts.back();
  p.open = true;
  p.spec = spec;
  p.log = std::move(state);
  p.submitted_end = p.durable_end = p.reported_end = p.log.next_offset;
  p.flights.Reset(cfg.max_batches_in_flight);
  return h;
}

// Gives segment file i (f) a registered-file slot through the ring (a files-update request):
// until that completes, writes use the plain fd. Needs a free slot and a free request.
void UringWriter::Impl::RegisterViaRing(PartitionHandle h, SegmentFile& f, uint8_t i) {
  SLUICE_ASSERT(!free_slots.empty() && !free_requests.empty());
  f.pending_slot = free_slots.back();
  free_slots.pop_back();
  f.reg_fd = f.fd.get();
  const uint32_t id = AllocRequest(Op::kFileRegister, h, kNoSeq);
  requests[id].gen = i;
  io_uring_sqe* sqe = Sqe();
  io_uring_prep_files_update(sqe, &f.reg_fd, 1, f.pending_slot);
  io_uring_sqe_set_data64(sqe, id);
  ++f.ops;
}

void UringWriter::Impl::Install(Part& p, PartitionHandle h, PreparedFiles files, bool via_ring) {
  const SegmentState& seg = p.log.segments.back();
  uint8_t i = 0;
  while (i < kFilesPerPartition && p.files[i].open) ++i;
  SLUICE_ASSERT(i < kFilesPerPartition);  // Roll checks for a free slot first
  SegmentFile& f = p.files[i];
  f = SegmentFile{};
  f.fd = std::move(files.log);
  f.index_fd = std::move(files.index);
  f.base = seg.base_offset;
  f.capacity = files.capacity;
  f.open = true;
  f.active = true;
  if (!free_slots.empty() && via_ring) {
    if (!free_requests.empty()) {
      RegisterViaRing(h, f, i);  // as a prepared roll's
      MarkDirty(h, p);           // the next Poll submits it
    }
  } else if (!free_slots.empty()) {
    const int slot = free_slots.back();
    int fdv = f.fd.get();
    if (io_uring_register_files_update(&ring, static_cast<unsigned>(slot), &fdv, 1) == 1) {
      f.slot = slot;
      free_slots.pop_back();
    }
  }
  p.active = i;
  p.tail = files.tail;
  p.direct = files.direct;
  if (!p.direct && !p.warned) {
    p.warned = true;
    std::fprintf(stderr, "sluice storage: warning: %s: %s; partition %u-%u uses buffered writes + "
                 "fdatasync\n", p.dir->LogPath(seg.base_offset).c_str(),
                 cfg.direct_io ? "no O_DIRECT on this filesystem" : "O_DIRECT disabled by config",
                 p.spec.id.queue, p.spec.id.partition);
  }
}

absl::StatusOr<PreparedFiles> UringWriter::PrepareFiles(const std::string& data_dir,
                                                        PartitionId id, LogState* state,
                                                        uint64_t segment_bytes, bool direct_io) {
  PreparedFiles out;
  absl::StatusOr<PartitionDir> dir = PartitionDir::Open(data_dir, id, true);
  if (!dir.ok()) return dir.status();
  out.dir = std::move(*dir);
  out.dir_fd = Fd(::open(out.dir->path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!out.dir_fd.valid()) return ErrnoStatus(errno, "open", out.dir->path());
  if (state->segments.empty()) {
    bool direct = true;
    absl::StatusOr<Fd> fd = out.dir->CreateSegment(state->next_offset, segment_bytes, &direct);
    if (!fd.ok()) return fd.status();
    SegmentState seg;
    seg.base_offset = seg.end_offset = state->next_offset;
    state->segments.push_back(std::move(seg));
    out.created = true;
  }
  SLUICE_ASSERT(state->segments.back().end_offset == state->next_offset);
  if (absl::Status s = PrepareActive(*out.dir, state->segments.back(), segment_bytes, direct_io,
                                     &out);
      !s.ok()) {
    return s;
  }
  return out;
}

absl::StatusOr<PartitionHandle> UringWriter::AdoptPartition(const PartitionSpec& spec,
                                                            LogState state, PreparedFiles files) {
  Impl& m = *impl_;
  SLUICE_ASSERT(spec.durability != shard::Durability::kNone && files.dir.has_value() &&
                files.log.valid() && !state.segments.empty());
  absl::StatusOr<PartitionHandle> added = m.AddPart(spec, std::move(state));
  if (!added.ok()) return added.status();
  const PartitionHandle h = *added;
  Part& p = m.parts.back();
  p.dir = std::move(files.dir);
  p.dir_fd = std::move(files.dir_fd);
  if (m.preparer) {
    p.spare = std::make_shared<SpareSlot>(*p.dir, m.cfg.segment_bytes, m.cfg.direct_io);
  }
  if (files.created) ++m.stats.first_segments;
  m.Install(p, h, std::move(files), /*via_ring=*/true);
  m.MaybeRequestSpare(p);
  return h;
}

absl::StatusOr<PartitionHandle> UringWriter::OpenPartition(const PartitionSpec& spec,
                                                           LogState state) {
  Impl& m = *impl_;
  absl::StatusOr<PartitionHandle> added = m.AddPart(spec, std::move(state));
  if (!added.ok()) return added.status();
  const PartitionHandle h = *added;
  Part& p = m.parts.back();
  if (spec.durability == shard::Durability::kNone) return h;  // memory only: no files

  absl::StatusOr<PartitionDir> dir = PartitionDir::Open(spec.data_dir, spec.id, true);
  if (!dir.ok()) {
    m.parts.pop_back();
    return dir.status();
  }
  p.dir = std::move(*dir);
  // The directory, for the ring's operations on names in it (rename, unlink, fsync, open).
  p.dir_fd = Fd(::open(p.dir->path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!p.dir_fd.valid()) {
    const absl::Status s = ErrnoStatus(errno, "open", p.dir->path());
    m.parts.pop_back();
    return s;
  }
  if (m.preparer) {
    p.spare = std::make_shared<SpareSlot>(*p.dir, m.cfg.segment_bytes, m.cfg.direct_io);
  }
  absl::Status s;
  if (p.log.segments.empty()) {
    // A new partition: its first segment is created here, on the control path (sluiced opens
    // the layout's partitions on the main thread before the workers run), not by a roll.
    s = m.CreateFirstSegment(p, h, p.log.next_offset);
  } else {
    SLUICE_ASSERT(p.log.segments.back().end_offset == p.log.next_offset);
    s = m.OpenActive(p, h);
  }
  if (!s.ok()) {
    m.parts.pop_back();
    return s;
  }
  // The spare for the next segment right away: the preparer has a whole segment's time.
  m.MaybeRequestSpare(p);
  return h;
}

void UringWriter::ClosePartition(PartitionHandle h) {
  Impl& m = *impl_;
  Part& p = m.P(h);
  m.Adopt();
  while (true) {
    // Completed batches retire (their index entries), closing segments get their seal: all of
    // it through the ring, waited for here.
    m.Retire(h, p);
    for (uint8_t i = 0; i < kFilesPerPartition; ++i) m.MaybeClose(h, p, i);
    bool busy = p.removal_ops > 0;
    for (const SegmentFile& f : p.files) busy |= f.open && f.ops > 0;
    if (!busy || m.SubmitPending(true) != 0) break;
    m.Reap();
  }
  for (uint8_t i = 0; i < kFilesPerPartition; ++i) {
    if (p.files[i].open) m.CloseFile(h, p, i, false);
  }
  if (p.spare) m.preparer->Cancel(*p.spare);  // waits for one in progress, unlinks it
  p.spare.reset();
  p.dir_fd.Reset();
  p.open = false;
}

absl::Status UringWriter::Impl::Roll(Part& p, PartitionHandle h, uint64_t base) {
  uint8_t free_slot = kFilesPerPartition;
  for (uint8_t i = 0; i < kFilesPerPartition; ++i) {
    if (!p.files[i].open) free_slot = i;
  }
  if (free_slot == kFilesPerPartition) return absl::UnavailableError("segments still completing");
  if (p.spare) {
    Fd spare;
    bool spare_direct = false;
    if (SparePreparer::TakeReady(*p.spare, &spare, &spare_direct)) {
      p.waiting_for_spare = false;
      return RollPrepared(p, h, base, std::move(spare), spare_direct);
    }
    if (p.spare->state.load(std::memory_order_acquire) == SpareSlot::kFailed) {
      // The segment cannot be made (ENOSPC, EIO, ...): as when a create on the spot failed, the
      // partition fails, loudly; nothing acknowledged is touched.
      ++stats.spare_failures;
      p.spare->state.store(SpareSlot::kIdle, std::memory_order_release);
      return absl::InternalError(absl::StrCat("preparing the next segment (", base,
                                              ") failed: ", p.spare->error));
    }
    // Not ready (a new partition, a burst faster than the preparer, or the previous roll's
    // rename has not run yet): the batch waits, nothing blocks. Asked for now if it can be.
    if (!p.waiting_for_spare) {
      p.waiting_for_spare = true;
      ++stats.roll_waits;
    }
    MaybeRequestSpare(p);
    return absl::UnavailableError("next segment not prepared yet");
  }
  bool direct = true;
  absl::StatusOr<Fd> fd = p.dir->CreateSegment(base, cfg.segment_bytes, &direct);
  if (!fd.ok()) return fd.status();
  fd->Reset();  // OpenActive reopens it the same way
  StartSegment(p, h, base);
  ++stats.rolls;
  ++stats.rolls_blocking;
  return OpenActive(p, h);
}

absl::Status UringWriter::Impl::CreateFirstSegment(Part& p, PartitionHandle h, uint64_t base) {
  bool direct = true;
  absl::StatusOr<Fd> fd = p.dir->CreateSegment(base, cfg.segment_bytes, &direct);
  if (!fd.ok()) return fd.status();
  fd->Reset();  // OpenActive reopens it the same way
  StartSegment(p, h, base);
  ++stats.first_segments;
  return OpenActive(p, h);
}

void UringWriter::Impl::MaybeRequestSpare(Part& p) {
  if (!p.spare || p.spare->state.load(std::memory_order_relaxed) != SpareSlot::kIdle) return;
  // The preparer starts by unlinking a leftover next.spare: not before the active segment's own
  // rename away from that name ran.
  const SegmentFile& active = p.files[p.active];
  if (!active.open || !active.active || !active.renamed) return;
  if (p.tail * 100 < active.capacity * cfg.spare_request_fill_percent && !p.waiting_for_spare) {
    return;  // not full enough yet (a roll waiting for it asks at once)
  }
  preparer->Request(p.spare);
}

void UringWriter::Impl::StartSegment(Part& p, PartitionHandle h, uint64_t base) {
  if (!p.log.segments.empty()) {
    p.log.segments.back().closed = true;
    SegmentFile& old = p.files[p.active];
    if (old.open && old.active) {
      old.active = false;
      MaybeClose(h, p, p.active);
    }
  }
  SegmentState seg;
  seg.base_offset = seg.end_offset = base;
  p.log.segments.push_back(std::move(seg));
}

// The roll with a spare ready: no blocking call but the registered-file update. The rename, the
// index file's creation and the directory fsync go through the ring as one linked chain (each
// starts when the one before it succeeded). Writes to the new segment may start at once (they go
// to the file, whatever its name), but none is reported durable before the chain completed
// (SegmentFile::dir_synced): a crash before it may leave the file named next.spare, which
// recovery removes, and only batches nobody was told about are in it.
absl::Status UringWriter::Impl::RollPrepared(Part& p, PartitionHandle h, uint64_t base, Fd log,
                                             bool direct) {
  StartSegment(p, h, base);  // may queue the old segment's seal: one request of the reserve
  SLUICE_ASSERT(free_requests.size() >= kRollOps + 1);  // SubmitImpl checked for them
  uint8_t i = 0;
  while (i < kFilesPerPartition && p.files[i].open) ++i;
  SLUICE_ASSERT(i < kFilesPerPartition);  // Roll checked for a free slot
  SegmentFile& f = p.files[i];
  f = SegmentFile{};
  f.fd = std::move(log);
  f.base = base;
  f.capacity = cfg.segment_bytes;
  f.open = true;
  f.active = true;
  f.dir_synced = false;
  f.renamed = false;
  std::snprintf(f.log_name, sizeof f.log_name, "%020" PRIu64 ".log", base);
  std::snprintf(f.index_name, sizeof f.index_name, "%020" PRIu64 ".index", base);
  if (!free_slots.empty()) RegisterViaRing(h, f, i);
  p.active = i;
  p.tail = 0;
  p.direct = direct;
  if (!p.direct && !p.warned) {  // once per partition, as in OpenActive
    p.warned = true;
    std::fprintf(stderr, "sluice storage: warning: %s: %s; partition %u-%u uses buffered writes + "
                 "fdatasync\n", p.dir->path().c_str(),
                 cfg.direct_io ? "no O_DIRECT on this filesystem" : "O_DIRECT disabled by config",
                 p.spec.id.queue, p.spec.id.partition);
  }

  const bool targeted = !faults.only.has_value() || *faults.only == p.spec.id;
  for (const Op op : {Op::kRename, Op::kIndexOpen, Op::kDirSync}) {
    const uint32_t id = AllocRequest(op, h, kNoSeq);
    requests[id].gen = i;
    io_uring_sqe* sqe = Sqe();
    if (op == Op::kDirSync && faults.dir_sync && !faults.retention && faults.count > 0 && targeted) {
      --faults.count;
      requests[id].inject_res = -faults.error;
      io_uring_prep_nop(sqe);
    } else if (op == Op::kRename) {
      // RENAME_NOREPLACE: a segment of that name already existing is a bug, never overwritten.
      io_uring_prep_renameat(sqe, p.dir_fd.get(), PartitionDir::kSpareName, p.dir_fd.get(),
                             f.log_name, RENAME_NOREPLACE);
    } else if (op == Op::kIndexOpen) {
      // The index is a cache (recovery rebuilds a missing one): created, not synced.
      io_uring_prep_openat(sqe, p.dir_fd.get(), f.index_name,
                           O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    } else {
      io_uring_prep_fsync(sqe, p.dir_fd.get(), 0);
    }
    if (op != Op::kDirSync) sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, id);
    ++f.ops;
    ++f.roll_ops;
  }
  ++stats.rolls;
  ++stats.rolls_prepared;
  return absl::OkStatus();
}

bool UringWriter::Impl::PrepIndexWrite(PartitionHandle h, Part& p, uint8_t i, const IndexEntry& e,
                                      uint64_t at) {
  if (free_requests.empty()) return false;
  SegmentFile& f = p.files[i];
  const uint32_t id = AllocRequest(Op::kIndexWrite, h, kNoSeq);
  requests[id].gen = i;
  std::memcpy(requests[id].buf, &e, sizeof e);
  io_uring_sqe* sqe = Sqe();
  // Buffered, not synced: the index is a cache (recovery rebuilds what is missing or torn).
  io_uring_prep_write(sqe, f.index_fd.get(), requests[id].buf, sizeof e, at);
  io_uring_sqe_set_data64(sqe, id);
  ++f.ops;
  ++stats.index_writes;
  return true;
}

void UringWriter::Impl::MaybeClose(PartitionHandle h, Part& p, uint8_t i) {
  SegmentFile& f = p.files[i];
  if (!f.open || f.active || f.ops > 0) return;
  for (uint64_t k = 0; k < p.flights.size(); ++k) {
    if (p.flights[k].file == i) return;  // Retire comes back for it
  }
  if (!f.seal_done && !p.failed) {
    // The seal entry: the segment's end, so that recovery may trust the index of a closed
    // segment without scanning it. Written through the ring; the file stays open until then.
    for (auto it = p.log.segments.rbegin(); it != p.log.segments.rend(); ++it) {
      if (it->base_offset != f.base) continue;
      if (it->index.empty() || it->index.seal() || !f.index_fd.valid()) break;
      const uint64_t at = it->index.entries().size() * sizeof(IndexEntry);
      const IndexEntry e = MakeIndexEntry(IndexKind::kSeal, it->end_offset, it->end_position,
                                          it->last_timestamp_ns);
      if (!PrepIndexWrite(h, p, i, e, at)) {
        Defer(h, p);  // no free request: the next pass tries again
        return;
      }
      it->index.Seal(it->end_offset, it->end_position, it->last_timestamp_ns);
      f.seal_done = true;
      ++stats.seals;
      return;
    }
    f.seal_done = true;  // nothing to seal (no entry, already sealed, or removed)
  }
  CloseFile(h, p, i, true);
}

void UringWriter::Impl::CloseFile(PartitionHandle h, Part& p, uint8_t i, bool via_ring) {
  SegmentFile& f = p.files[i];
  SLUICE_ASSERT(f.open && f.ops == 0 && f.pending_slot < 0);
  if (via_ring && free_requests.size() >= kCloseOps) {
    // Nothing is in flight on the file: its slot is emptied and its fds closed by the ring (the
    // slot is reused only once that completed). The Part::files entry is free at once.
    if (f.slot >= 0) {
      const uint32_t id = AllocRequest(Op::kFileUnregister, h, kNoSeq);
      requests[id].gen = static_cast<uint32_t>(f.slot);
      io_uring_sqe* sqe = Sqe();
      io_uring_prep_files_update(sqe, &kNoFile, 1, f.slot);
      io_uring_sqe_set_data64(sqe, id);
    }
    for (Fd* fd : {&f.fd, &f.index_fd}) {
      if (!fd->valid()) continue;
      const uint32_t id = AllocRequest(Op::kClose, h, kNoSeq);
      io_uring_sqe* sqe = Sqe();
      io_uring_prep_close(sqe, fd->Release());
      io_uring_sqe_set_data64(sqe, id);
    }
    f = SegmentFile{};
    ++stats.ring_closes;
    return;
  }
  if (f.slot >= 0) {
    int none = -1;
    io_uring_register_files_update(&ring, static_cast<unsigned>(f.slot), &none, 1);
    free_slots.push_back(f.slot);
  }
  f = SegmentFile{};
}

// ---- submit --------------------------------------------------------------------------------

void UringWriter::Impl::PrepWrite(PartitionHandle h, Part& p, Flight& f) {
  SegmentFile& file = p.files[f.file];
  const uint32_t id = AllocRequest(Op::kWrite, h, f.seq);
  ++f.gen;
  io_uring_sqe* sqe = Sqe();
  std::byte* buf = f.buf + f.written;
  uint32_t len = f.stride - f.written;
  const uint64_t pos = f.position + f.written;
  const int fd = file.slot >= 0 ? file.slot : file.fd.get();
  const bool targeted = !faults.dir_sync && !faults.retention &&
                        (!faults.only.has_value() || *faults.only == p.spec.id);
  if (faults.count > 0 && targeted && faults.skip > 0) {
    --faults.skip;
  } else if (faults.count > 0 && targeted) {
    --faults.count;
    if (faults.short_write) {
      len = std::max<uint32_t>(512, (len / 2) & ~511u);
    } else {
      requests[id].inject_res = -faults.error;
    }
  }
  if (requests[id].inject_res != 0) {
    io_uring_prep_nop(sqe);
  } else if (f.fixed) {
    io_uring_prep_write_fixed(sqe, fd, buf, len, pos, f.buf_index);
    ++stats.fixed_writes;
  } else {
    io_uring_prep_write(sqe, fd, buf, len, pos);
  }
  if (file.slot >= 0 && requests[id].inject_res == 0) sqe->flags |= IOSQE_FIXED_FILE;
  if (p.direct && p.spec.durability == shard::Durability::kDsync) sqe->rw_flags = RWF_DSYNC;
  if (p.direct && requests[id].inject_res == 0 && preparer != nullptr && preparer->preparing()) {
    sqe->flags |= IOSQE_ASYNC;
    ++stats.writes_during_spare_sync;
  }
  io_uring_sqe_set_data64(sqe, id);
  ++f.ops;
  ++file.ops;
  if (p.direct) return;
  // No O_DIRECT: the write lands in the page cache; an fdatasync linked behind it makes it
  // reach the device (the link breaks, and the sync is cancelled, if the write falls short).
  sqe->flags |= IOSQE_IO_LINK;
  const uint32_t sync_id = AllocRequest(Op::kSync, h, f.seq);
  requests[sync_id].gen = f.gen;
  io_uring_sqe* sync = Sqe();
  io_uring_prep_fsync(sync, fd, IORING_FSYNC_DATASYNC);
  if (file.slot >= 0) sync->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sync, sync_id);
  f.synced = false;
  ++f.ops;
  ++file.ops;
}

Errc UringWriter::Submit(PartitionHandle h, const shard::SealedBatch& batch) {
  return SubmitImpl(h, batch, true);
}

Errc UringWriter::SubmitEncoded(PartitionHandle h, const shard::SealedBatch& batch) {
  return SubmitImpl(h, batch, false);
}

Errc UringWriter::SubmitImpl(PartitionHandle h, const shard::SealedBatch& batch, bool encode) {
  Impl& m = *impl_;
  m.Adopt();
  Part& p = m.P(h);
  if (p.failed) return Errc::kStorageFailed;
  if (batch.end_offset() <= p.submitted_end) return Errc::kOk;  // submitted in an earlier pass
  // An earlier batch was refused (kThrottled) in this pass: this one waits for it.
  if (batch.first_offset > p.submitted_end) return Errc::kThrottled;
  SLUICE_ASSERT(batch.first_offset == p.submitted_end);  // batches never overlap
  if (p.flights.full()) return Errc::kThrottled;
  if (p.spec.durability == shard::Durability::kNone) {
    p.submitted_end = p.durable_end = batch.end_offset();
    m.MarkDirty(h, p);
    return Errc::kOk;
  }
  if (!m.slice_set) {
    // The owning thread's first write (a thread with in-memory queues only is left alone).
    // Not fatal: completions then wait longer for the kworker.
    m.slice_set = true;
    if (m.cfg.owner_slice_ns != 0) {
      if (absl::Status s = SetThreadSlice(m.cfg.owner_slice_ns); !s.ok()) {
        std::fprintf(stderr, "sluice storage: warning: %s\n", std::string(s.message()).c_str());
      }
    }
  }
  const uint32_t stride = static_cast<uint32_t>(batch.bytes.size());
  SLUICE_ASSERT(stride % m.cfg.align_bytes == 0 &&
                reinterpret_cast<uintptr_t>(batch.bytes.data()) % m.cfg.align_bytes == 0);
  SLUICE_ASSERT(stride <= m.cfg.segment_bytes);
  const SegmentFile& current = p.files[p.active];
  SLUICE_ASSERT(current.open && current.active);  // OpenPartition opened or created it
  const bool roll = p.tail + stride > current.capacity;
  // The write (and its fdatasync when buffered), and a prepared roll's chain plus the old
  // segment's seal entry (queued by StartSegment when nothing is in flight on it).
  const uint32_t need = (p.direct ? 1 : 2) + (roll ? kRollReserve : 0);
  if (m.free_requests.size() < need) return Errc::kThrottled;
  if (roll) {
    if (absl::Status s = m.Roll(p, h, batch.first_offset); !s.ok()) {
      if (absl::IsUnavailable(s)) return Errc::kThrottled;
      m.Fail(h, p, 0, s.ToString());
      return Errc::kStorageFailed;
    }
  }
  if (encode) EncodeBatch(batch, p.spec.id, p.spec.epoch);

  Flight f;
  f.seq = p.next_seq++;
  f.first_offset = batch.first_offset;
  f.end_offset = batch.end_offset();
  f.first_ts = batch.first_timestamp_ns;
  f.last_ts = batch.last_timestamp_ns;
  f.buf = batch.bytes.data();
  f.stride = stride;
  f.position = p.tail;
  f.segment = p.files[p.active].base;
  f.file = p.active;
  f.fixed = false;
  if (m.features.registered_buffers) {
    for (size_t i = 0; i < m.regions.size(); ++i) {
      const std::span<std::byte> r = m.regions[i];
      if (f.buf >= r.data() && f.buf + stride <= r.data() + r.size()) {
        f.fixed = true;
        f.buf_index = static_cast<uint16_t>(i);
        break;
      }
    }
  }
  p.flights.push_back(f);
  m.PrepWrite(h, p, p.flights.back());
  p.tail += stride;
  // The next segment is asked for as soon as this one's rename ran (OnCompletion), or here for a
  // segment that was not renamed into place (recovered, or created on the spot): a relaxed load
  // per batch, the preparer's mutex once per segment.
  m.MaybeRequestSpare(p);
  p.submitted_end = batch.end_offset();
  ++m.stats.batches;
  m.stats.bytes += stride;
  return Errc::kOk;
}

// ---- completions ---------------------------------------------------------------------------

void UringWriter::Impl::Fail(PartitionHandle h, Part& p, int err, std::string_view what) {
  if (p.failed) return;
  p.failed = true;
  p.failure = std::string(what);
  if (err != 0) p.failure += std::string(": ") + std::strerror(err);
  ++stats.failures;
  std::fprintf(stderr, "sluice storage: partition %u-%u FAILED, no more writes: %s\n",
               p.spec.id.queue, p.spec.id.partition, p.failure.c_str());
  MarkDirty(h, p);
}

void UringWriter::Impl::OnCompletion(uint32_t id, int res) {
  const Request r = requests[id];
  FreeRequest(id);
  Part& p = parts[r.part];
  if (r.op == Op::kRename || r.op == Op::kIndexOpen || r.op == Op::kDirSync) {
    SegmentFile& sf = p.files[r.gen];
    SLUICE_ASSERT(sf.open && !sf.dir_synced && sf.ops > 0 && sf.roll_ops > 0);
    --sf.ops;
    --sf.roll_ops;
    MarkDirty(r.part, p);
    if (r.inject_res != 0) res = r.inject_res;
    if (r.op == Op::kIndexOpen && res >= 0) sf.index_fd = Fd(res);
    if (r.op == Op::kRename && res >= 0) {
      sf.renamed = true;
      if (!p.failed) MaybeRequestSpare(p);  // the earliest safe moment: next.spare is free
    }
    if (res < 0 && !sf.roll_failed) {  // the first failure; the rest of the chain is cancelled
      sf.roll_failed = true;
      const char* what = r.op == Op::kRename ? "rename next.spare to"
                         : r.op == Op::kIndexOpen ? "create the index of" : "fsync directory after renaming next.spare to";
      Fail(r.part, p, -res, absl::StrCat(what, " ", p.dir->LogPath(sf.base)));
    }
    if (sf.roll_ops == 0 && !sf.roll_failed) sf.dir_synced = true;
    return;
  }
  if (r.op == Op::kFileRegister) {
    SegmentFile& sf = p.files[r.gen];
    SLUICE_ASSERT(sf.open && sf.ops > 0 && sf.pending_slot >= 0);
    --sf.ops;
    if (res == 1) {
      sf.slot = sf.pending_slot;  // later writes use the registered file
      ++stats.ring_registrations;
    } else {
      // Not fatal: the segment is written through its plain fd, as without registered files.
      std::fprintf(stderr, "sluice storage: warning: partition %u-%u: registering %s: %s\n",
                   p.spec.id.queue, p.spec.id.partition, p.dir->LogPath(sf.base).c_str(),
                   res < 0 ? std::strerror(-res) : "not updated");
      free_slots.push_back(sf.pending_slot);
    }
    sf.pending_slot = -1;
    MarkDirty(r.part, p);
    if (!sf.active) MaybeClose(r.part, p, static_cast<uint8_t>(r.gen));
    return;
  }
  if (r.op == Op::kFileUnregister || r.op == Op::kClose) {
    // The file is gone from Part::files already; nothing of the partition is touched (it may
    // be closed by now).
    if (r.op == Op::kFileUnregister && res == 1) {
      free_slots.push_back(static_cast<int>(r.gen));
    } else if (res < 0 || (r.op == Op::kFileUnregister && res != 1)) {
      // A slot that could not be emptied is not reused; a failed close leaks nothing we use.
      std::fprintf(stderr, "sluice storage: warning: %s of a closed segment file failed: %s\n",
                   r.op == Op::kClose ? "close" : "unregistering",
                   res < 0 ? std::strerror(-res) : "not updated");
    }
    return;
  }
  if (r.op == Op::kIndexWrite) {
    SegmentFile& sf = p.files[r.gen];
    SLUICE_ASSERT(sf.open && sf.ops > 0);
    --sf.ops;
    if (res != static_cast<int>(sizeof(IndexEntry))) {
      // Not a durability matter (the index is a cache that recovery verifies and rebuilds), so
      // not a partition failure; counted and logged.
      ++stats.index_write_errors;
      std::fprintf(stderr, "sluice storage: warning: partition %u-%u: index write to %s: %s\n",
                   p.spec.id.queue, p.spec.id.partition, p.dir->IndexPath(sf.base).c_str(),
                   res < 0 ? std::strerror(-res) : "short write");
    }
    MarkDirty(r.part, p);
    if (!sf.active) MaybeClose(r.part, p, static_cast<uint8_t>(r.gen));
    return;
  }
  if (r.op == Op::kUnlink || r.op == Op::kRetentionSync) {
    SLUICE_ASSERT(p.removal_ops > 0);
    --p.removal_ops;
    if (r.inject_res != 0) res = r.inject_res;
    // A segment without an index file is possible (the index is a cache); anything else that
    // fails leaves files or a directory entry whose fate after a crash is unknown: the partition
    // fails, as for a failed write.
    const bool index = std::string_view(r.buf).ends_with(".index");
    // -ECANCELED: a link of the chain broke after an earlier step failed (that one failed the
    // partition); the segments after it stay on disk, a contiguous prefix of the log.
    if (res < 0 && res != -ECANCELED && !(r.op == Op::kUnlink && index && res == -ENOENT)) {
      p.removal_failed = true;
      Fail(r.part, p, -res, r.op == Op::kUnlink
                                ? absl::StrCat("retention: unlink ", p.dir->path(), "/", r.buf)
                                : absl::StrCat("retention: fsync directory ", p.dir->path()));
    }
    if (p.removal_ops == 0) {
      if (!p.removal_failed) stats.retention_removed += p.removal_segments;
      p.removal_segments = 0;
      p.removal_failed = false;
    }
    MarkDirty(r.part, p);
    return;
  }
  Flight& f = FlightOf(p, r.seq);
  --f.ops;
  --p.files[f.file].ops;
  MarkDirty(r.part, p);
  if (r.inject_res != 0) res = r.inject_res;
  if (p.failed) return;  // a failed partition only drains
  if (r.op == Op::kSync) {
    if (r.gen != f.gen || res == -ECANCELED) return;  // a re-queued write brings its own sync
    if (res < 0) {
      Fail(r.part, p, -res, absl::StrCat("fdatasync ", p.dir->LogPath(f.segment)));
    } else {
      f.synced = true;
    }
    return;
  }
  if (res == -EAGAIN || (res >= 0 && f.written + static_cast<uint32_t>(res) < f.stride)) {
    if (res > 0) f.written += static_cast<uint32_t>(res);
    ++stats.requeued;
    if (res == 0) {
      Fail(r.part, p, 0, absl::StrCat("write ", p.dir->LogPath(f.segment), ": wrote nothing"));
      return;
    }
    PrepWrite(r.part, p, f);
    return;
  }
  if (res < 0) {
    Fail(r.part, p, -res, absl::StrCat("write ", p.dir->LogPath(f.segment), " at ",
                                       f.position + f.written));
    return;
  }
  f.written += static_cast<uint32_t>(res);
}

// Retires the completed batches at the front, in order: the durable offset only ever covers a
// prefix with no hole, whatever order the device completed them in.
void UringWriter::Impl::Retire(PartitionHandle h, Part& p) {
  while (!p.failed && !p.flights.empty()) {
    Flight& f = p.flights.front();
    const bool done = f.ops == 0 && f.written == f.stride && (p.direct || f.synced) &&
                      p.files[f.file].dir_synced;
    if (!done) break;
    SegmentState* seg = nullptr;
    for (auto it = p.log.segments.rbegin(); it != p.log.segments.rend(); ++it) {
      if (it->base_offset == f.segment) { seg = &*it; break; }
    }
    SLUICE_ASSERT(seg != nullptr && seg->end_position == f.position);
    const bool want_entry = seg->index.empty() ||
        f.position >= seg->index.entries().back().position + cfg.index_interval_bytes;
    if (want_entry) {
      const IndexEntry e = MakeIndexEntry(IndexKind::kBatch, f.first_offset, f.position, f.first_ts);
      const uint64_t at = seg->index.entries().size() * sizeof(IndexEntry);
      // Through the ring, buffered, not synced: a lost entry only makes recovery scan a little
      // more. No free request: the batch retires in a later pass (nothing is skipped, so the
      // file's entries stay contiguous).
      if (!PrepIndexWrite(h, p, f.file, e, at)) {
        Defer(h, p);
        break;
      }
      seg->index.Add(e);
    }
    if (seg->end_offset == seg->base_offset) seg->first_timestamp_ns = f.first_ts;
    seg->end_offset = f.end_offset;
    seg->end_position = f.position + f.stride;
    seg->last_timestamp_ns = f.last_ts;
    p.durable_end = f.end_offset;
    p.log.next_offset = f.end_offset;
    const uint8_t file = f.file;
    p.flights.pop_front();
    MaybeClose(h, p, file);
  }
}

uint32_t UringWriter::Impl::Reap() {
  uint32_t total = 0;
  io_uring_cqe* cqes[64];
  while (true) {
    const unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 64);
    if (n == 0) break;
    for (unsigned i = 0; i < n; ++i) {
      OnCompletion(static_cast<uint32_t>(io_uring_cqe_get_data64(cqes[i])), cqes[i]->res);
    }
    io_uring_cq_advance(&ring, n);
    total += n;
  }
  return total;
}

int UringWriter::Impl::SubmitPending(bool wait) {
  const bool in_flight = free_requests.size() < requests.size();
  const int n = SubmitRing(&ring, features, pending_sqes > 0, in_flight, wait);
  if (pending_sqes > 0 && n > 0) ++stats.submits;
  if (n >= 0 || n == -EINTR || n == -EAGAIN || n == -EBUSY) {
    if (n >= 0) pending_sqes = 0;
    return 0;
  }
  return n;  // e.g. -EEXIST: called from a thread that does not own the ring
}

uint32_t UringWriter::Impl::Report(absl::FunctionRef<void(const Completion&)> fn) {
  uint32_t reported = 0;
  for (uint32_t h : deferred) {  // retried now: they wait for a free request, not a completion
    parts[h].deferred = false;
    MarkDirty(h, parts[h]);
  }
  deferred.clear();
  for (uint32_t h : dirty) {
    Part& p = parts[h];
    p.dirty = false;
    if (!p.open) continue;
    Retire(h, p);
    if (p.durable_end > p.reported_end) {
      p.reported_end = p.durable_end;
      fn(Completion{h, p.spec.id, shard::DurableOffset{p.durable_end}, Errc::kOk});
      ++reported;
    }
    if (p.failed && !p.failure_reported) {
      p.failure_reported = true;
      fn(Completion{h, p.spec.id, shard::DurableOffset{p.durable_end}, Errc::kStorageFailed});
      ++reported;
    }
  }
  dirty.clear();
  return reported;
}

uint32_t UringWriter::Poll(absl::FunctionRef<void(const Completion&)> fn) {
  Impl& m = *impl_;
  // Most passes of a busy lcore have no write of their own in flight (in-memory queues, or
  // between group commits): nothing to submit, reap or report, so no ring access at all.
  if (m.enabled && m.pending_sqes == 0 && m.dirty.empty() && m.deferred.empty() &&
      m.free_requests.size() == m.requests.size()) {
    return 0;
  }
  m.Adopt();
  m.SubmitPending(false);
  m.Reap();
  const uint32_t n = m.Report(fn);
  m.SubmitPending(false);  // re-queued writes leave in this pass, not the next
  return n;
}

void UringWriter::Drain(absl::FunctionRef<void(const Completion&)> fn) {
  Impl& m = *impl_;
  m.Adopt();
  while (m.free_requests.size() < m.requests.size()) {
    if (m.SubmitPending(true) != 0) break;  // not the owning thread: nothing we can wait for
    m.Reap();
    m.Report(fn);
  }
  m.Report(fn);
}

// ---- retention -----------------------------------------------------------------------------

// Nothing here blocks: the removals go through the ring (per segment: unlink .index; unlink .log
// then fsync the directory, linked in order across segments), reported in OnCompletion. The
// segments leave LogState at once, so no new fetch or catch-up read looks for them; a read
// already in flight holds its own descriptor of the file (uring_reader.cc), which an unlink does
// not disturb.
absl::StatusOr<uint32_t> UringWriter::EnforceRetention(PartitionHandle h, const Retention& r) {
  Impl& m = *impl_;
  Part& p = m.P(h);
  if (!p.dir || p.failed) return 0u;
  if (p.removal_ops > 0) return 0u;  // the previous removal is still completing: next time
  m.Adopt();
  // At most half the free requests (writes keep their room): three per segment.
  const size_t budget = m.free_requests.size() / 2;
  const bool targeted = !m.faults.only.has_value() || *m.faults.only == p.spec.id;
  // Which segments go: a prefix of the log.
  uint32_t removed = 0;
  uint64_t kept_bytes = p.log.bytes();
  while (removed + 1 < p.log.segments.size() && 3 * (removed + 1) <= budget) {
    const SegmentState& oldest = p.log.segments[removed];
    if (!oldest.closed) break;
    bool open = false;
    for (const SegmentFile& f : p.files) open |= f.open && f.base == oldest.base_offset;
    if (open) break;  // still completing (or its seal is being written)
    const bool unneeded = oldest.end_offset <= r.keep_from_offset;
    const bool too_big = r.max_bytes != 0 && kept_bytes - oldest.end_position >= r.max_bytes;
    const bool too_old = r.max_age_ns != 0 && oldest.last_timestamp_ns + r.max_age_ns < r.now_ns;
    const bool go = r.keep_from_offset != UINT64_MAX ? unneeded : (too_big || too_old);
    if (!go) break;
    kept_bytes -= oldest.end_position;
    ++removed;
  }
  // Their logs, each unlink followed by the directory fsync that makes it durable, in one linked
  // chain (consecutive SQEs), oldest first: removals reach the disk in order, so a crash at any
  // point leaves the log contiguous (recovery cuts at a gap between segments).
  for (uint32_t k = 0; k < removed; ++k) {
    for (const Op op : {Op::kUnlink, Op::kRetentionSync}) {
      const uint32_t id = m.AllocRequest(op, h, kNoSeq);
      io_uring_sqe* sqe = m.Sqe();
      if (op == Op::kUnlink) {
        std::snprintf(m.requests[id].buf, kNameBytes, "%020" PRIu64 ".log",
                      p.log.segments[k].base_offset);
        io_uring_prep_unlinkat(sqe, p.dir_fd.get(), m.requests[id].buf, 0);
      } else if (m.faults.retention && m.faults.count > 0 && targeted) {
        // An fsync of no file: the kernel fails it (EBADF), so the chain breaks as it would on
        // a real failure; reported as the injected error.
        --m.faults.count;
        m.requests[id].inject_res = -m.faults.error;
        io_uring_prep_fsync(sqe, -1, 0);
      } else {
        io_uring_prep_fsync(sqe, p.dir_fd.get(), 0);
      }
      if (k + 1 < removed || op == Op::kUnlink) sqe->flags |= IOSQE_IO_LINK;
      io_uring_sqe_set_data64(sqe, id);
      ++p.removal_ops;
    }
  }
  // Their indexes, on their own (a cache; a leftover index without its log is ignored).
  for (uint32_t k = 0; k < removed; ++k) {
    const uint32_t id = m.AllocRequest(Op::kUnlink, h, kNoSeq);
    std::snprintf(m.requests[id].buf, kNameBytes, "%020" PRIu64 ".index",
                  p.log.segments[k].base_offset);
    io_uring_sqe* sqe = m.Sqe();
    io_uring_prep_unlinkat(sqe, p.dir_fd.get(), m.requests[id].buf, 0);
    io_uring_sqe_set_data64(sqe, id);
    ++p.removal_ops;
  }
  p.log.segments.erase(p.log.segments.begin(), p.log.segments.begin() + removed);
  p.removal_segments = removed;
  m.stats.retention_queued += removed;
  return removed;
}

// ---- accessors -----------------------------------------------------------------------------

bool UringWriter::failed(PartitionHandle h) const { return impl_->P(h).failed; }
bool UringWriter::is_open(PartitionHandle h) const {
  return h < impl_->parts.size() && impl_->parts[h].open;
}
const std::string& UringWriter::failure(PartitionHandle h) const { return impl_->P(h).failure; }
const LogState& UringWriter::log(PartitionHandle h) const { return impl_->P(h).log; }
const PartitionSpec& UringWriter::spec(PartitionHandle h) const { return impl_->P(h).spec; }
bool UringWriter::direct_io(PartitionHandle h) const { return impl_->P(h).direct; }
shard::DurableOffset UringWriter::durable(PartitionHandle h) const {
  return shard::DurableOffset{impl_->P(h).durable_end};
}
int UringWriter::dir_fd(PartitionHandle h) const { return impl_->P(h).dir_fd.get(); }
bool UringWriter::spare_ready(PartitionHandle h) const {
  const Part& p = impl_->P(h);
  return p.spare && p.spare->state.load(std::memory_order_acquire) == SpareSlot::kReady;
}
uint32_t UringWriter::in_flight() const {
  return static_cast<uint32_t>(impl_->requests.size() - impl_->free_requests.size());
}
const RingFeatures& UringWriter::features() const { return impl_->features; }
const WriterStats& UringWriter::stats() const { return impl_->stats; }

absl::Status UringWriter::RegisterBuffers(std::span<const std::span<std::byte>> regions) {
  if (!impl_->cfg.register_resources) return absl::OkStatus();
  return impl_->RegisterRegions(regions);
}

uint32_t UringWriter::registered_regions() const {
  return impl_->features.registered_buffers ? static_cast<uint32_t>(impl_->regions.size()) : 0;
}
void UringWriter::InjectFaults(const FaultInjection& f) { impl_->faults = f; }

}  // namespace sluice::storage
