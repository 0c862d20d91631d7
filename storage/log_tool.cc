// sluice-log: offline inspection of a data directory (run it while sluiced is stopped, or on a
// copy). It never changes anything on disk.
//
//   sluice-log verify DIR            check every batch's CRC in every partition; exit 1 on the
//                                    first corrupt or torn batch of any partition, saying where
//   sluice-log dump DIR [--records]  segments, offset and time ranges, batch counts; with
//                                    --records one line per record
//
// A prepared next segment (next.spare) is ignored: it is never log data.
//
// DIR is a data directory (holding <queue>-<partition>/) or one partition directory.
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "storage/ack_log.h"
#include "storage/recovery.h"
#include "storage/segment.h"

namespace sluice::storage {
namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: sluice-log verify DIR\n"
               "       sluice-log dump DIR [--records]\n"
               "DIR: a data directory (with <queue>-<partition>/ inside) or a partition directory\n");
  return 2;
}

// The partitions DIR stands for: (data dir, id) pairs.
bool Resolve(const std::string& dir, std::string* data_dir, std::vector<PartitionId>* ids) {
  std::string trimmed = dir;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const size_t slash = trimmed.find_last_of('/');
  const std::string leaf = slash == std::string::npos ? trimmed : trimmed.substr(slash + 1);
  PartitionId id;
  if (PartitionDir::ParseDirName(leaf, &id)) {
    *data_dir = slash == std::string::npos ? "." : trimmed.substr(0, slash);
    ids->push_back(id);
    return true;
  }
  absl::StatusOr<std::vector<PartitionId>> all = ListPartitions(trimmed);
  if (!all.ok()) {
    std::fprintf(stderr, "sluice-log: %s\n", all.status().ToString().c_str());
    return false;
  }
  *data_dir = trimmed;
  *ids = std::move(*all);
  return true;
}

// Walks one partition; returns false on the first bad batch (after printing where).
bool WalkPartition(const std::string& data_dir, PartitionId id, bool dump, bool records,
                   uint64_t* batches_total, uint64_t* bytes_total) {
  absl::StatusOr<PartitionDir> dir = PartitionDir::Open(data_dir, id, false);
  if (!dir.ok()) {
    std::printf("%s\n", dir.status().ToString().c_str());
    return false;
  }
  absl::StatusOr<std::vector<uint64_t>> bases = dir->ListSegments();
  if (!bases.ok()) {
    std::printf("%s\n", bases.status().ToString().c_str());
    return false;
  }
  if (dump) std::printf("partition %u-%u (%s): %zu segment(s)\n", id.queue, id.partition,
                        dir->path().c_str(), bases->size());
  // The prepared next segment is not log data (ListSegments never lists it): only say it is there.
  if (dump && ::access(dir->SparePath().c_str(), F_OK) == 0) {
    std::printf("  %s: prepared next segment, not log data (ignored)\n", PartitionDir::kSpareName);
  }
  uint64_t expected = bases->empty() ? 0 : bases->front();
  for (size_t k = 0; k < bases->size(); ++k) {
    const uint64_t base = (*bases)[k];
    if (base != expected) {
      std::printf("GAP %s: segment %020" PRIu64 " starts at offset %" PRIu64 ", expected %" PRIu64 "\n",
                  dir->path().c_str(), base, base, expected);
      return false;
    }
    uint64_t first_ts = 0;
    bool any = false;
    absl::StatusOr<ScanEnd> end = ScanSegment(
        dir->LogPath(base), id, 0, base, 4096,
        [&](const BatchHeader& h, std::span<const std::byte> batch, uint64_t position) {
          if (!any) first_ts = h.first_timestamp_ns;
          any = true;
          if (records) {
            std::printf("  batch @%" PRIu64 " offsets [%" PRIu64 ", %" PRIu64 ") epoch %" PRIu64
                        " %u bytes\n", position, h.base_offset, h.end_offset(), h.epoch,
                        h.stride_bytes);
            ForEachRecord(batch, h, [&](const RecordView& r) {
              std::printf("    offset %" PRIu64 " ts %" PRIu64 " %zu bytes\n", r.offset,
                          r.timestamp_ns, r.record.size());
            });
          }
          return true;
        });
    if (!end.ok()) {
      std::printf("%s\n", end.status().ToString().c_str());
      return false;
    }
    *batches_total += end->batches;
    *bytes_total += end->bytes;
    absl::StatusOr<SegmentIndex> index = dir->LoadIndex(base);
    if (dump) {
      std::printf("  segment %020" PRIu64 ": offsets [%" PRIu64 ", %" PRIu64 "), ts [%" PRIu64
                  ", %" PRIu64 "], %" PRIu64 " batches, %" PRIu64 " bytes, index %s\n",
                  base, base, end->next_offset, first_ts, end->last_timestamp_ns, end->batches,
                  end->position,
                  !index.ok() ? "missing"
                  : index->seal() ? "sealed"
                  : index->empty() ? "empty" : "open");
    }
    const bool last = k + 1 == bases->size();
    if (end->stop != BatchCheck::kEmpty) {
      std::printf("CORRUPT %s offset %" PRIu64 " position %" PRIu64 ": %s%s\n",
                  dir->LogPath(base).c_str(), end->next_offset, end->position,
                  std::string(BatchCheckName(end->stop)).c_str(),
                  last ? " (torn tail: recovery cuts it)" : " (recovery cuts the log here)");
      return false;
    }
    expected = end->next_offset;
  }
  AckLoadReport ack;
  absl::StatusOr<AckState> acks = AckLog::Load(dir->AckLogPath(), &ack);
  if (dump && acks.ok()) {
    std::printf("  acks: %" PRIu64 " entries, deleted below %" PRIu64 " + %zu more, %zu group(s)",
                ack.entries, acks->deleted_below, acks->deleted.size(), acks->commits.size());
    for (const auto& [g, o] : acks->commits) std::printf(" %s=%" PRIu64, g.c_str(), o);
    std::printf("%s\n", ack.bytes_cut > 0 ? " (torn tail)" : "");
  }
  return true;
}

}  // namespace
}  // namespace sluice::storage

int main(int argc, char** argv) {
  using namespace sluice::storage;
  if (argc < 3) return Usage();
  const std::string cmd = argv[1];
  const bool records = argc > 3 && std::strcmp(argv[3], "--records") == 0;
  if ((cmd != "verify" && cmd != "dump") || (argc > 3 && !records) || argc > 4) return Usage();
  std::string data_dir;
  std::vector<PartitionId> ids;
  if (!Resolve(argv[2], &data_dir, &ids)) return 2;
  bool ok = true;
  uint64_t batches = 0, bytes = 0;
  for (const PartitionId& id : ids) {
    ok &= WalkPartition(data_dir, id, cmd == "dump", records, &batches, &bytes);
  }
  std::printf("%s: %zu partition(s), %" PRIu64 " batches, %" PRIu64 " bytes checked\n",
              ok ? "OK" : "CORRUPT", ids.size(), batches, bytes);
  return ok ? 0 : 1;
}
