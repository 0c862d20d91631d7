#include "storage/uring_reader.h"

#include <fcntl.h>
#include <sys/uio.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <vector>

#include "protocol/assert.h"
#include "storage/io.h"
#include "storage/uring_setup.h"

namespace sluice::storage {

void FetchResult::ForEach(absl::FunctionRef<void(const RecordView&)> fn) const {
  uint64_t pos = 0;
  uint32_t left = count;
  while (left > 0 && pos + kBatchHeaderBytes <= bytes_.size()) {
    const BatchHeader h = ReadHeader(bytes_.subspan(pos));
    ForEachRecord(bytes_.subspan(pos, h.stride_bytes), h, [&](const RecordView& r) {
      if (left == 0 || r.offset < first_offset) return;
      fn(r);
      --left;
    });
    pos += h.stride_bytes;
  }
}

namespace {

struct Slot {
  bool busy = false;
  bool in_ring = false;
  FetchRequest req;
  size_t segment = 0;          // index into the partition's LogState::segments at issue time
  uint64_t segment_base = 0;
  uint64_t position = 0;       // file position of buf[0]
  uint64_t limit = 0;          // durable end of the segment when issued
  uint32_t want = 0;           // kBatch: bytes the next read needs (0: read_bytes)
  std::shared_ptr<Fd> fd;
  AlignedBuffer buf;
  FetchResult result;          // filled when done (or at once, for answers without I/O)
  // The segment's file being opened through the ring (its first read by this reader): where
  // the read goes once it is open, and the name the kernel reads (relative to the partition
  // directory's fd).
  uint64_t open_position = 0;
  bool open_direct = false;    // O_DIRECT tried (a filesystem without it answers EINVAL)
  char name[32] = {};
};

// user_data: the slot, and which request of it.
constexpr uint64_t kOpenTag = uint64_t{1} << 32;

}  // namespace

struct UringReader::Impl {
  ReaderConfig cfg;
  const ReadableLogs* logs = nullptr;
  io_uring ring{};
  bool ring_ok = false;
  RingFeatures features;
  std::vector<Slot> slots;
  std::vector<uint32_t> done;  // slots whose result is ready without (more) I/O
  uint32_t pending_sqes = 0;
  uint32_t in_ring = 0;
  Stats stats;
  uint32_t inject_count = 0;  // test seam: reads that complete with -inject_error
  int inject_error = 0;

  ~Impl() {
    if (ring_ok) io_uring_queue_exit(&ring);
  }

  void Finish(uint32_t i, Errc errc) {
    slots[i].result.errc = errc;
    done.push_back(i);
  }
  // Starts (or continues) a fetch at `position` of segment `seg`.
  void Issue(uint32_t i, size_t seg, uint64_t position);
  void OnRead(uint32_t i, int res);
  // kBatch: the batch starting at the request's offset, or one more read towards it.
  void OnBatchRead(uint32_t i, std::span<const std::byte> got);
  // One more read from `pos` bytes past this read (the target lies further on), found again by
  // the segment's base: retention may have removed older segments (or this one) since the read
  // was issued, which shifts the indices.
  void Continue(uint32_t i, uint64_t pos);
  // The segment's file opened through the ring (no blocking open on the lcore).
  void PrepOpen(uint32_t i, bool direct);
  void OnOpen(uint32_t i, int res);
  // Where segment `base` is in the log now (retention may have shifted or removed it).
  bool Find(PartitionHandle h, uint64_t base, size_t* index) const {
    const LogState& log = logs->log(h);
    size_t k = 0;
    while (k < log.segments.size() && log.segments[k].base_offset < base) ++k;
    *index = k;
    return k < log.segments.size() && log.segments[k].base_offset == base;
  }
};

void UringReader::Impl::Issue(uint32_t i, size_t seg_index, uint64_t position) {
  Slot& s = slots[i];
  const LogState& log = logs->log(s.req.partition);
  if (seg_index >= log.segments.size()) {  // past the end: nothing more to give
    s.result.next_offset = logs->durable(s.req.partition).value;
    Finish(i, s.req.by != FetchBy::kTimestamp ? Errc::kOffsetOutOfRange : Errc::kOk);
    return;
  }
  const SegmentState& seg = log.segments[seg_index];
  if (position >= seg.end_position) {
    Issue(i, seg_index + 1, 0);
    return;
  }
  SegmentState& mseg = const_cast<SegmentState&>(seg);  // read_fd is the reader's cache
  if (!mseg.read_fd && logs->dir_fd(s.req.partition) >= 0) {
    s.segment_base = seg.base_offset;
    s.open_position = position;
    std::snprintf(s.name, sizeof s.name, "%020" PRIu64 ".log", seg.base_offset);
    PrepOpen(i, true);
    return;
  }
  if (!mseg.read_fd) {  // no directory fd (not expected): the blocking open
    absl::StatusOr<PartitionDir> dir = PartitionDir::Open(logs->spec(s.req.partition).data_dir,
                                                          logs->spec(s.req.partition).id, false);
    if (!dir.ok()) {
      Finish(i, Errc::kStorageFailed);
      return;
    }
    bool direct = false;
    absl::StatusOr<Fd> fd = OpenMaybeDirect(dir->LogPath(seg.base_offset), O_RDONLY, &direct);
    if (!fd.ok()) {
      Finish(i, Errc::kStorageFailed);
      return;
    }
    mseg.read_fd = std::make_shared<Fd>(std::move(*fd));
  }
  s.fd = mseg.read_fd;
  s.segment = seg_index;
  s.segment_base = seg.base_offset;
  s.position = position;
  s.limit = seg.end_position;
  const uint64_t want = s.want != 0 ? std::min(s.want, cfg.read_bytes) : cfg.read_bytes;
  const uint64_t len = AlignUp(std::min<uint64_t>(want, s.limit - position), cfg.align_bytes);
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  SLUICE_ASSERT(sqe != nullptr);
  if (features.registered_buffers) {
    io_uring_prep_read_fixed(sqe, s.fd->get(), s.buf.data(), static_cast<unsigned>(len), position,
                             static_cast<int>(i));
  } else {
    io_uring_prep_read(sqe, s.fd->get(), s.buf.data(), static_cast<unsigned>(len), position);
  }
  io_uring_sqe_set_data64(sqe, i);
  s.in_ring = true;
  ++in_ring;
  ++pending_sqes;
  ++stats.reads;
}

void UringReader::Impl::PrepOpen(uint32_t i, bool direct) {
  Slot& s = slots[i];
  s.open_direct = direct;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  SLUICE_ASSERT(sqe != nullptr);  // entries >= slots, one request per slot at a time
  io_uring_prep_openat(sqe, logs->dir_fd(s.req.partition), s.name,
                       O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0), 0);
  io_uring_sqe_set_data64(sqe, kOpenTag | i);
  s.in_ring = true;
  ++in_ring;
  ++pending_sqes;
  ++stats.opens;
}

void UringReader::Impl::OnOpen(uint32_t i, int res) {
  Slot& s = slots[i];
  s.in_ring = false;
  --in_ring;
  if (!logs->is_open(s.req.partition)) {  // closed (queue deleted) meanwhile
    Fd dropped(res);
    Finish(i, Errc::kUnknownPartition);
    return;
  }
  if (res == -EINVAL && s.open_direct) {  // no O_DIRECT here (tmpfs): as OpenMaybeDirect does
    PrepOpen(i, false);
    return;
  }
  size_t seg = 0;
  const bool present = Find(s.req.partition, s.segment_base, &seg);
  if (res < 0 && present) {
    ++stats.read_errors;
    Finish(i, Errc::kStorageFailed);
    return;
  }
  Fd fd(res);  // (an fd of a removed segment is dropped: a rare close)
  if (!present) {
    // Removed by retention while it was being opened: below the log's start now. A time fetch
    // goes on with the segments that remain (seg: the first after the removed one).
    if (s.req.by != FetchBy::kTimestamp) {
      Finish(i, Errc::kOffsetOutOfRange);
    } else {
      Issue(i, seg, 0);
    }
    return;
  }
  SegmentState& mseg = const_cast<SegmentState&>(logs->log(s.req.partition).segments[seg]);
  // Once per segment and reader, not per fetch (another fetch may have opened it first).
  if (!mseg.read_fd) mseg.read_fd = std::make_shared<Fd>(std::move(fd));
  Issue(i, seg, s.open_position);
}

void UringReader::Impl::OnRead(uint32_t i, int res) {
  Slot& s = slots[i];
  s.in_ring = false;
  --in_ring;
  if (inject_count > 0) {
    --inject_count;
    res = -inject_error;
  }
  if (res < 0) {
    ++stats.read_errors;
    Finish(i, Errc::kStorageFailed);
    return;
  }
  stats.bytes += static_cast<uint64_t>(res);
  const std::span<const std::byte> got{s.buf.data(),
                                       std::min<uint64_t>(static_cast<uint64_t>(res), s.limit - s.position)};
  if (s.req.by == FetchBy::kBatch) {
    OnBatchRead(i, got);
    return;
  }
  uint64_t pos = 0;
  int64_t first = -1;  // buffer position of the first batch to deliver
  uint32_t count = 0;
  while (pos < got.size()) {
    BatchHeader h;
    const BatchCheck c = VerifyBatch(got.subspan(pos), cfg.align_bytes, &h);
    if (c == BatchCheck::kTruncated) break;  // continues past the read: read on from here
    if (c != BatchCheck::kOk) {
      ++stats.bad_batches;
      Finish(i, Errc::kStorageFailed);
      return;
    }
    if (first < 0) {
      uint64_t from = UINT64_MAX;
      if (s.req.by == FetchBy::kOffset && h.end_offset() > s.req.value) {
        from = std::max(s.req.value, h.base_offset);
      } else if (s.req.by == FetchBy::kTimestamp && h.last_timestamp_ns >= s.req.value) {
        ForEachRecord(got.subspan(pos, h.stride_bytes), h, [&](const RecordView& r) {
          if (from == UINT64_MAX && r.timestamp_ns >= s.req.value) from = r.offset;
        });
      }
      if (from != UINT64_MAX) {
        first = static_cast<int64_t>(pos);
        s.result.first_offset = from;
      }
    }
    if (first >= 0) {
      const uint64_t skip = s.result.first_offset > h.base_offset ? s.result.first_offset - h.base_offset : 0;
      count += static_cast<uint32_t>(std::min<uint64_t>(h.count - skip, s.req.max_records - count));
      if (count == s.req.max_records) {
        pos += h.stride_bytes;
        break;
      }
    }
    pos += h.stride_bytes;
  }
  if (first < 0) {  // the answer lies further on: one more read
    if (pos == 0) {   // a batch larger than read_bytes: a configuration error
      Finish(i, Errc::kStorageFailed);
      return;
    }
    Continue(i, pos);
    return;
  }
  s.result.bytes_ = got.subspan(static_cast<size_t>(first), pos - static_cast<uint64_t>(first));
  s.result.count = count;
  s.result.next_offset = s.result.first_offset + count;
  Finish(i, Errc::kOk);
}

void UringReader::Impl::Continue(uint32_t i, uint64_t pos) {
  Slot& s = slots[i];
  size_t seg = 0;
  if (!logs->is_open(s.req.partition)) {
    Finish(i, Errc::kUnknownPartition);  // closed (queue deleted) since the read was issued
  } else if (Find(s.req.partition, s.segment_base, &seg)) {
    Issue(i, seg, s.position + pos);
  } else if (s.req.by == FetchBy::kTimestamp) {
    Issue(i, 0, 0);  // its segment is gone: the first record at or after the time is further on
  } else {
    Finish(i, Errc::kOffsetOutOfRange);  // the offset is below the log's start now
  }
}

void UringReader::Impl::OnBatchRead(uint32_t i, std::span<const std::byte> got) {
  Slot& s = slots[i];
  // Closed (queue deleted) while the read was in flight: the handle may name another partition
  // by now, so nothing of the log is looked at (the bytes are still valid: the slot holds the fd).
  if (!logs->is_open(s.req.partition)) {
    Finish(i, Errc::kUnknownPartition);
    return;
  }
  const PartitionId id = logs->spec(s.req.partition).id;
  uint64_t pos = 0;
  while (pos < got.size()) {
    BatchHeader h;
    const BatchCheck c = VerifyBatch(got.subspan(pos), cfg.align_bytes, &h);
    if (c == BatchCheck::kTruncated) {  // continues past the read
      s.want = cfg.batch_read_bytes;
      if (got.size() - pos < kBatchHeaderBytes) break;  // read on from its header
      const BatchHeader th = ReadHeader(got.subspan(pos));
      if (th.magic != kBatchMagic || th.stride_bytes == 0 || th.stride_bytes % cfg.align_bytes != 0) {
        ++stats.bad_batches;
        Finish(i, Errc::kStorageFailed);
        return;
      }
      if (th.base_offset == s.req.value) {
        // The target: the next read is exactly its stride (a small first read then costs one
        // more read for a large batch, never a read_bytes read for a small one).
        s.want = th.stride_bytes;
        break;
      }
      if (th.base_offset > s.req.value) {  // passed it: no batch starts there
        Finish(i, Errc::kOffsetOutOfRange);
        return;
      }
      // Before the target: stepped over by its header, as BatchReader walks (only the batch
      // delivered needs its bytes); the walk reads on past it.
      pos += th.stride_bytes;
      break;
    }
    if (c != BatchCheck::kOk || !(PartitionId{h.queue, h.partition} == id)) {
      ++stats.bad_batches;
      Finish(i, Errc::kStorageFailed);
      return;
    }
    if (h.base_offset == s.req.value) {
      s.result.bytes_ = got.subspan(pos, uint64_t{h.header_bytes} + h.payload_bytes);
      s.result.first_offset = h.base_offset;
      s.result.next_offset = h.end_offset();
      s.result.count = h.count;
      s.result.segment_base = s.segment_base;
      s.result.end_position = s.position + pos + h.stride_bytes;
      Finish(i, Errc::kOk);
      return;
    }
    if (h.base_offset > s.req.value) {  // passed it: no batch starts there
      Finish(i, Errc::kOffsetOutOfRange);
      return;
    }
    pos += h.stride_bytes;
  }
  // Nothing whole in this read: only the target's stride read again makes progress (a batch
  // larger than read_bytes is a configuration error; a short read of durable bytes, a fault).
  if (pos == 0 && !(s.want != 0 && s.want <= cfg.read_bytes && got.size() < s.want &&
                    s.limit - s.position >= s.want)) {
    ++stats.bad_batches;
    Finish(i, Errc::kStorageFailed);
    return;
  }
  Continue(i, pos);
}

absl::StatusOr<std::unique_ptr<UringReader>> UringReader::Create(const ReaderConfig& config,
                                                                 const ReadableLogs* logs) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = config;
  impl->logs = logs;
  RingOptions o;
  o.entries = std::max<uint32_t>(8, config.max_reads);
  if (absl::Status s = InitRing(&impl->ring, o, &impl->features); !s.ok()) return s;
  impl->ring_ok = true;
  impl->slots.resize(config.max_reads);
  std::vector<iovec> iov;
  for (Slot& s : impl->slots) {
    s.buf = AlignedBuffer(AlignUp(config.read_bytes, config.align_bytes));
    iov.push_back({s.buf.data(), s.buf.size()});
  }
  impl->done.reserve(config.max_reads);
  if (config.register_buffers) {
    impl->features.registered_buffers =
        io_uring_register_buffers(&impl->ring, iov.data(), static_cast<unsigned>(iov.size())) == 0;
  }
  return std::unique_ptr<UringReader>(new UringReader(std::move(impl)));
}

UringReader::UringReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UringReader::~UringReader() {
  if (!impl_->features.disabled) Drain([](const FetchResult&) {});
}

Errc UringReader::Fetch(const FetchRequest& req) {
  Impl& m = *impl_;
  EnableRing(&m.ring, &m.features);
  uint32_t i = 0;
  while (i < m.slots.size() && m.slots[i].busy) ++i;
  if (i == m.slots.size()) return Errc::kThrottled;
  Slot& s = m.slots[i];
  s.busy = true;
  s.req = req;
  s.want = req.by == FetchBy::kBatch ? m.cfg.batch_read_bytes : 0;
  s.result = FetchResult{};
  s.result.cookie = req.cookie;
  s.result.align_ = m.cfg.align_bytes;
  ++m.stats.fetches;
  if (m.logs->failed(req.partition)) {
    m.Finish(i, Errc::kStorageFailed);
    return Errc::kStorageFailed;
  }
  const LogState& log = m.logs->log(req.partition);
  const uint64_t durable = m.logs->durable(req.partition).value;
  s.result.next_offset = req.by != FetchBy::kTimestamp ? req.value : durable;
  // One lookup: the segment, then the index entry at or before the target.
  size_t seg = 0;
  const IndexEntry* e = nullptr;
  if (req.by != FetchBy::kTimestamp) {
    if (req.value < log.start_offset() || req.value >= durable) {
      m.Finish(i, Errc::kOffsetOutOfRange);
      return Errc::kOffsetOutOfRange;
    }
    auto it = std::upper_bound(log.segments.begin(), log.segments.end(), req.value,
                               [](uint64_t o, const SegmentState& st) { return o < st.base_offset; });
    seg = static_cast<size_t>(it - log.segments.begin()) - 1;
    e = log.segments[seg].index.FloorOffset(req.value);
    if (req.by == FetchBy::kBatch && req.hint_segment == log.segments[seg].base_offset &&
        req.hint_position < log.segments[seg].end_position &&
        (e == nullptr || req.hint_position >= e->position)) {
      ++m.stats.reads_hinted;
      m.Issue(i, seg, req.hint_position);  // sequential catch-up: straight at the batch
      return Errc::kOk;
    }
  } else {
    while (seg < log.segments.size() &&
           (log.segments[seg].end_position == 0 || log.segments[seg].last_timestamp_ns < req.value)) {
      ++seg;
    }
    if (seg < log.segments.size()) e = log.segments[seg].index.FloorTimestamp(req.value);
  }
  m.Issue(i, seg, e != nullptr ? e->position : 0);
  return Errc::kOk;
}

uint32_t UringReader::Poll(absl::FunctionRef<void(const FetchResult&)> fn) {
  Impl& m = *impl_;
  EnableRing(&m.ring, &m.features);
  if (m.in_ring == 0 && m.pending_sqes == 0 && m.done.empty()) return 0;  // no fetch of ours
  if (m.pending_sqes > 0) ++m.stats.submits;
  SubmitRing(&m.ring, m.features, m.pending_sqes > 0, m.in_ring > 0, false);
  m.pending_sqes = 0;
  io_uring_cqe* cqes[32];
  unsigned n;
  while ((n = io_uring_peek_batch_cqe(&m.ring, cqes, 32)) > 0) {
    for (unsigned k = 0; k < n; ++k) {
      const uint64_t data = io_uring_cqe_get_data64(cqes[k]);
      const uint32_t i = static_cast<uint32_t>(data);
      if (data & kOpenTag) {
        m.OnOpen(i, cqes[k]->res);
      } else {
        m.OnRead(i, cqes[k]->res);
      }
    }
    io_uring_cq_advance(&m.ring, n);
  }
  const uint32_t out = static_cast<uint32_t>(m.done.size());
  for (uint32_t i : m.done) {
    fn(m.slots[i].result);
    m.slots[i].busy = false;
    m.slots[i].fd.reset();
  }
  m.done.clear();
  if (m.pending_sqes > 0) {  // continuations issued while reaping
    ++m.stats.submits;
    SubmitRing(&m.ring, m.features, true, true, false);
    m.pending_sqes = 0;
  }
  return out;
}

void UringReader::Drain(absl::FunctionRef<void(const FetchResult&)> fn) {
  Impl& m = *impl_;
  EnableRing(&m.ring, &m.features);
  while (m.in_ring > 0 || m.pending_sqes > 0 || !m.done.empty()) {
    if (m.in_ring > 0 || m.pending_sqes > 0) {
      if (m.pending_sqes > 0) ++m.stats.submits;
      if (SubmitRing(&m.ring, m.features, m.pending_sqes > 0, true, true) < 0) break;
      m.pending_sqes = 0;
    }
    Poll(fn);
  }
}

const UringReader::Stats& UringReader::stats() const { return impl_->stats; }

void UringReader::InjectReadErrors(uint32_t count, int error) {
  impl_->inject_count = count;
  impl_->inject_error = error;
}

}  // namespace sluice::storage
