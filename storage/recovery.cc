#include "storage/recovery.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include <tbb/parallel_for.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/segment.h"

namespace sluice::storage {
namespace {

// How much non-zero data lies from `position` to the end of the file, and how many batch
// headers (by magic, at aligned positions) it holds: the measure of what a cut discards.
void MeasureTail(const std::string& path, uint64_t position, uint32_t align, uint64_t* bytes,
                 uint64_t* batches) {
  bool direct = false;
  absl::StatusOr<Fd> fd = OpenMaybeDirect(path, O_RDONLY, &direct);
  if (!fd.ok()) return;
  AlignedBuffer buf(4 << 20);
  uint64_t pos = AlignDown(position, align);
  uint64_t last_nonzero_end = position;
  while (true) {
    size_t got = 0;
    if (!PreadFull(fd->get(), buf.span(), pos, &got).ok() || got == 0) break;
    for (size_t b = 0; b + align <= got; b += align) {
      const std::byte* block = buf.data() + b;
      uint32_t magic;
      std::memcpy(&magic, block, 4);
      if (magic == kBatchMagic && pos + b >= position) ++*batches;
      for (size_t k = 0; k < align; k += 8) {
        uint64_t w;
        std::memcpy(&w, block + k, 8);
        if (w != 0) {
          last_nonzero_end = std::max(last_nonzero_end, pos + b + align);
          break;
        }
      }
    }
    pos += got;
    if (got < buf.size()) break;
  }
  *bytes += last_nonzero_end - position;
}

struct Recoverer {
  const PartitionToRecover& what;
  const RecoveryOptions& opt;
  RecoveredPartition out;
  std::optional<PartitionDir> dir;

  void Keep(const BatchHeader& h, std::span<const std::byte> batch) {
    if (h.end_offset() <= what.feed_from_offset) return;
    ForEachRecord(batch, h, [&](const RecordView& r) {
      if (r.offset < what.feed_from_offset) return;
      if (what.skip_deleted && out.acks.IsDeleted(r.offset)) return;
      const uint32_t pos = static_cast<uint32_t>(out.data.size());
      out.data.insert(out.data.end(), r.record.begin(), r.record.end());
      out.records.push_back(
          {r.offset, r.timestamp_ns, r.producer_id, pos, static_cast<uint32_t>(r.record.size())});
    });
  }

  // Recovers segment `base`, expected to start at `expected`. Returns false when the log ends in
  // it (cut, or it is the last).
  bool Segment(uint64_t base, bool last) {
    RecoveryReport& rep = out.report;
    SegmentState seg;
    seg.base_offset = seg.end_offset = base;
    absl::StatusOr<SegmentIndex> loaded = dir->LoadIndex(base);
    SegmentIndex index = loaded.ok() ? std::move(*loaded) : SegmentIndex{};
    const bool sealed = index.seal().has_value();
    // Trust a sealed index when allowed and no record of the segment is needed.
    if (!opt.verify_all && sealed && !last && index.seal()->offset <= what.feed_from_offset) {
      seg.end_offset = index.seal()->offset;
      seg.end_position = index.seal()->position;
      seg.first_timestamp_ns = index.entries().empty() ? 0 : index.entries().front().timestamp_ns;
      seg.last_timestamp_ns = index.seal()->timestamp_ns;
      seg.closed = true;
      seg.index = std::move(index);
      out.log.segments.push_back(std::move(seg));
      out.log.next_offset = out.log.segments.back().end_offset;
      return true;
    }
    // Scan start: the last checkpoint (index entry) unless records before it are needed.
    uint64_t from_pos = 0, from_offset = base;
    SegmentIndex rebuilt;
    if (!opt.verify_all && !index.empty() && index.entries().back().offset <= what.feed_from_offset) {
      const IndexEntry cp = index.entries().back();
      from_pos = cp.position;
      from_offset = cp.offset;
      for (const IndexEntry& e : index.entries()) rebuilt.Add(e);
      seg.first_timestamp_ns = index.entries().front().timestamp_ns;
    }
    bool first = from_pos == 0;
    uint64_t last_entry_pos = rebuilt.empty() ? 0 : rebuilt.entries().back().position;
    absl::StatusOr<ScanEnd> end = ScanSegment(
        dir->LogPath(base), what.id, from_pos, from_offset, opt.align_bytes,
        [&](const BatchHeader& h, std::span<const std::byte> batch, uint64_t position) {
          if (first) seg.first_timestamp_ns = h.first_timestamp_ns;
          const bool checkpoint_batch = !rebuilt.empty() && position == rebuilt.entries().back().position;
          if (!checkpoint_batch && (rebuilt.empty() || position >= last_entry_pos + opt.index_interval_bytes)) {
            rebuilt.Add(MakeIndexEntry(IndexKind::kBatch, h.base_offset, position, h.first_timestamp_ns));
            last_entry_pos = position;
          }
          first = false;
          Keep(h, batch);
          return true;
        });
    if (!end.ok()) {
      out.status = end.status();
      return false;
    }
    rep.batches_scanned += end->batches;
    rep.bytes_scanned += end->bytes;
    seg.end_offset = end->next_offset;
    seg.end_position = end->position;
    seg.last_timestamp_ns = end->batches > 0 ? end->last_timestamp_ns : seg.first_timestamp_ns;
    if (from_pos > 0 && end->batches == 0) {
      // The checkpoint batch itself failed: drop the entry that pointed at it.
      SegmentIndex kept;
      for (size_t i = 0; i + 1 < index.entries().size(); ++i) kept.Add(index.entries()[i]);
      rebuilt = std::move(kept);
    }
    const bool cut = end->stop != BatchCheck::kEmpty;
    if (cut) {
      rep.cut = true;
      rep.cut_segment = base;
      rep.cut_position = end->position;
      rep.cut_reason = end->stop;
      MeasureTail(dir->LogPath(base), end->position, opt.align_bytes, &rep.bytes_cut, &rep.batches_cut);
      if (opt.repair) {
        if (absl::Status s = TruncateSegment(dir->LogPath(base), end->position, opt.segment_bytes); !s.ok()) {
          out.status = s;
          return false;
        }
      }
    }
    const bool ends_here = cut || last;
    if (!ends_here && seg.end_offset > seg.base_offset) {
      rebuilt.Seal(seg.end_offset, seg.end_position, seg.last_timestamp_ns);
    }
    const bool changed = !loaded.ok() || rebuilt.entries().size() != index.entries().size() ||
                         rebuilt.seal().has_value() != index.seal().has_value();
    if (changed) {
      ++rep.indexes_rebuilt;
      if (opt.repair) {
        if (absl::Status s = dir->WriteIndex(base, rebuilt); !s.ok()) {
          out.status = s;
          return false;
        }
      }
    }
    seg.index = std::move(rebuilt);
    seg.closed = !ends_here;
    out.log.segments.push_back(std::move(seg));
    out.log.next_offset = out.log.segments.back().end_offset;
    return !ends_here;
  }

  void Run() {
    RecoveryReport& rep = out.report;
    rep.id = what.id;
    absl::StatusOr<PartitionDir> d = PartitionDir::Open(what.data_dir, what.id, opt.repair);
    if (!d.ok()) {
      if (absl::IsNotFound(d.status())) return;  // nothing on disk: a new, empty partition
      out.status = d.status();
      return;
    }
    dir = std::move(*d);
    // A prepared next segment (next.spare) is never log data, whatever it holds: batches in it
    // were written after a rename the directory never made durable, and none was acknowledged.
    if (::access(dir->SparePath().c_str(), F_OK) == 0) {
      rep.spare_removed = true;
      if (opt.repair) {
        bool removed = false;
        if (absl::Status s = dir->RemoveSpare(&removed); !s.ok()) {
          out.status = s;
          return;
        }
      }
    }
    AckLoadReport ack_report;
    absl::StatusOr<AckState> acks = AckLog::Load(dir->AckLogPath(), &ack_report);
    if (!acks.ok()) {
      out.status = acks.status();
      return;
    }
    out.acks = std::move(*acks);
    rep.ack_bytes_cut = ack_report.bytes_cut;

    absl::StatusOr<std::vector<uint64_t>> bases = dir->ListSegments();
    if (!bases.ok()) {
      out.status = bases.status();
      return;
    }
    size_t k = 0;
    for (; k < bases->size(); ++k) {
      const uint64_t base = (*bases)[k];
      if (k > 0 && base != out.log.next_offset) {  // a gap: the previous segment ended early
        rep.cut = true;
        rep.cut_segment = base;
        rep.cut_reason = BatchCheck::kBadRecords;
        break;
      }
      if (k == 0) out.log.next_offset = base;
      if (!Segment(base, k + 1 == bases->size())) {
        ++k;
        break;
      }
    }
    // Everything after the end of the log goes.
    for (; k < bases->size() && out.status.ok(); ++k) {
      MeasureTail(dir->LogPath((*bases)[k]), 0, opt.align_bytes, &rep.bytes_cut, &rep.batches_cut);
      ++rep.segments_removed;
      if (opt.repair) out.status = dir->RemoveSegment((*bases)[k]);
    }
    // The last remaining segment is the append target; it is open for more.
    if (!out.log.segments.empty()) out.log.segments.back().closed = false;
    rep.segments = static_cast<uint32_t>(out.log.segments.size());
    rep.start_offset = out.log.start_offset();
    rep.next_offset = out.log.next_offset;
    out.acks.Compact(rep.start_offset);
  }
};

}  // namespace

RecoveredPartition RecoverPartition(const PartitionToRecover& what, const RecoveryOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  Recoverer r{what, options, {}, {}};
  r.Run();
  r.out.report.id = what.id;
  r.out.report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::move(r.out);
}

namespace {

// Scans segment `seg` on from its end (its index gets an entry every index_interval_bytes, as
// recovery rebuilds one). FailedPrecondition: a whole valid batch of another offset (or another
// partition) stands where the segment should go on.
absl::Status ScanOn(const PartitionDir& dir, PartitionId id, const RecoveryOptions& o,
                    SegmentState* seg, uint64_t* scanned) {
  uint64_t last_entry = seg->index.empty() ? 0 : seg->index.entries().back().position;
  bool first = seg->end_position == 0;
  // Most refreshes find a few new batches: a small first read (the scan reads on as needed).
  constexpr size_t kTailChunkBytes = 256 << 10;
  absl::StatusOr<ScanEnd> end = ScanSegment(
      dir.LogPath(seg->base_offset), id, seg->end_position, seg->end_offset, o.align_bytes,
      [&](const BatchHeader& h, std::span<const std::byte>, uint64_t position) {
        if (first) seg->first_timestamp_ns = h.first_timestamp_ns;
        first = false;
        // (The scan's first batch may be the index's last entry, a checkpoint: not added twice.)
        if (seg->index.empty() || position >= last_entry + o.index_interval_bytes) {
          seg->index.Add(MakeIndexEntry(IndexKind::kBatch, h.base_offset, position,
                                        h.first_timestamp_ns));
          last_entry = position;
        }
        return true;
      },
      kTailChunkBytes);
  if (!end.ok()) return end.status();
  *scanned += end->bytes;
  if (end->batches > 0) {
    seg->end_offset = end->next_offset;
    seg->end_position = end->position;
    seg->last_timestamp_ns = end->last_timestamp_ns;
  }
  // A torn batch (the writer is at it) ends the state for now; a whole valid one that does not
  // continue the log means the files are not the ones the state was found in.
  if (end->stop == BatchCheck::kBadRecords || end->stop == BatchCheck::kWrongPartition) {
    return absl::FailedPreconditionError(absl::StrCat(
        "partition ", id.queue, "-", id.partition, ": segment ", seg->base_offset, " position ",
        end->position, " holds a batch that does not continue the log (offset ",
        end->bad.base_offset, ", expected ", seg->end_offset, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RefreshLog(const std::string& data_dir, PartitionId id, const RecoveryOptions& o,
                        LogState* log, uint64_t* scanned) {
  auto gone = [&](const char* why) {
    return absl::FailedPreconditionError(
        absl::StrCat("partition ", id.queue, "-", id.partition, ": ", why));
  };
  absl::StatusOr<PartitionDir> dir = PartitionDir::Open(data_dir, id, false);
  if (!dir.ok()) {
    if (absl::IsNotFound(dir.status()) && log->segments.empty()) return absl::OkStatus();
    return absl::IsNotFound(dir.status()) ? gone("its directory is gone") : dir.status();
  }
  absl::StatusOr<std::vector<uint64_t>> bases = dir->ListSegments();
  if (!bases.ok()) return bases.status();
  if (bases->empty()) {
    return log->segments.empty() ? absl::OkStatus() : gone("its segments are gone");
  }
  // Retention removes from the front.
  size_t drop = 0;
  while (drop < log->segments.size() && log->segments[drop].base_offset < bases->front()) ++drop;
  log->segments.erase(log->segments.begin(), log->segments.begin() + static_cast<ptrdiff_t>(drop));
  if (drop > 0 && log->segments.empty()) return gone("every known segment is gone");
  const size_t known = log->segments.size();
  if (bases->size() < known) return gone("a known segment is gone");
  for (size_t k = 0; k < known; ++k) {
    if ((*bases)[k] != log->segments[k].base_offset) return gone("a known segment is gone");
  }
  if (known > 0) {
    SegmentState& last = log->segments.back();
    // Rolled since (a later segment exists): its seal, once written, says where it ends.
    bool sealed = false;
    if (bases->size() > known) {
      absl::StatusOr<SegmentIndex> index = dir->LoadIndex(last.base_offset);
      if (index.ok() && index->seal().has_value() && index->seal()->offset >= last.end_offset) {
        last.end_offset = index->seal()->offset;
        last.end_position = index->seal()->position;
        last.last_timestamp_ns = index->seal()->timestamp_ns;
        last.index = std::move(*index);
        sealed = true;
      }
    }
    if (!sealed) {
      if (absl::Status st = ScanOn(*dir, id, o, &last, scanned); !st.ok()) return st;
    }
    last.closed = bases->size() > known;
  }
  // Segments new since: as recovery adds them, while each continues the last.
  for (size_t k = known; k < bases->size(); ++k) {
    const uint64_t base = (*bases)[k];
    if (!log->segments.empty() && base != log->segments.back().end_offset) break;  // not yet
    SegmentState seg;
    seg.base_offset = seg.end_offset = base;
    absl::StatusOr<SegmentIndex> index = dir->LoadIndex(base);
    const bool last = k + 1 == bases->size();
    if (index.ok() && index->seal().has_value() && !last) {
      seg.end_offset = index->seal()->offset;
      seg.end_position = index->seal()->position;
      seg.first_timestamp_ns = index->entries().empty() ? 0 : index->entries().front().timestamp_ns;
      seg.last_timestamp_ns = index->seal()->timestamp_ns;
      seg.index = std::move(*index);
    } else {
      if (index.ok() && !index->empty()) {  // scan from the last checkpoint
        const IndexEntry cp = index->entries().back();
        for (const IndexEntry& e : index->entries()) seg.index.Add(e);
        seg.first_timestamp_ns = index->entries().front().timestamp_ns;
        seg.end_offset = cp.offset;
        seg.end_position = cp.position;
      }
      if (absl::Status st = ScanOn(*dir, id, o, &seg, scanned); !st.ok()) {
        if (!absl::IsFailedPrecondition(st)) return st;
        if (seg.end_position == 0) return st;
        // The checkpoint itself did not hold: from the segment's start.
        seg = SegmentState{};
        seg.base_offset = seg.end_offset = base;
        if (absl::Status again = ScanOn(*dir, id, o, &seg, scanned); !again.ok()) return again;
      }
    }
    seg.closed = !last;
    log->segments.push_back(std::move(seg));
  }
  for (size_t k = 0; k + 1 < log->segments.size(); ++k) log->segments[k].closed = true;
  if (!log->segments.empty()) log->segments.back().closed = false;
  log->next_offset = log->segments.empty() ? log->next_offset : log->segments.back().end_offset;
  return absl::OkStatus();
}

RecoveryRun RecoverAll(std::span<const PartitionToRecover> what, const RecoveryOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  RecoveryRun run;
  run.partitions.resize(what.size());
  tbb::parallel_for(size_t{0}, what.size(),
                    [&](size_t i) { run.partitions[i] = RecoverPartition(what[i], options); });
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const RecoveredPartition& p : run.partitions) run.bytes_scanned += p.report.bytes_scanned;
  return run;
}

absl::StatusOr<std::vector<PartitionId>> ListPartitions(const std::string& data_dir) {
  DIR* d = ::opendir(data_dir.c_str());
  if (d == nullptr) return ErrnoStatus(errno, "opendir", data_dir);
  std::vector<PartitionId> ids;
  while (const dirent* e = ::readdir(d)) {
    PartitionId id;
    if (e->d_type == DT_DIR && PartitionDir::ParseDirName(e->d_name, &id)) ids.push_back(id);
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end(), [](const PartitionId& a, const PartitionId& b) {
    return a.queue != b.queue ? a.queue < b.queue : a.partition < b.partition;
  });
  return ids;
}

std::string FormatReport(const RecoveryReport& r) {
  std::string s = absl::StrFormat(
      "partition %u-%u: offsets [%u, %u), %u segments, %u batches / %u bytes scanned in %.3f s",
      r.id.queue, r.id.partition, r.start_offset, r.next_offset, r.segments, r.batches_scanned,
      r.bytes_scanned, r.seconds);
  if (r.indexes_rebuilt > 0) absl::StrAppend(&s, ", ", r.indexes_rebuilt, " index(es) rebuilt");
  if (r.cut) {
    absl::StrAppendFormat(&s, "; CUT at segment %u position %u (%s): %u bytes, %u batch headers, "
                          "%u later segment(s) removed",
                          r.cut_segment, r.cut_position, std::string(BatchCheckName(r.cut_reason)), r.bytes_cut,
                          r.batches_cut, r.segments_removed);
  }
  if (r.spare_removed) absl::StrAppend(&s, "; a prepared next segment (next.spare) was discarded");
    if (r.ack_bytes_cut > 0) absl::StrAppend(&s, "; ack log: ", r.ack_bytes_cut, " bytes of torn tail ignored");
  return s;
}

}  // namespace sluice::storage
