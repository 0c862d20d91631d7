#include "storage/batch_reader.h"

#include <fcntl.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/segment.h"

namespace sluice::storage {

absl::Status BatchReader::OpenSegment(uint64_t base) {
  if (fd_.valid() && fd_base_ == base) return absl::OkStatus();
  auto dir = PartitionDir::Open(dir_, id_, false);
  if (!dir.ok()) return dir.status();
  bool direct = false;
  auto fd = OpenBuffered(dir->LogPath(base), O_RDONLY | O_CLOEXEC, &direct);
  if (!fd.ok()) return fd.status();
  fd_ = std::move(*fd);
  fd_base_ = base;
  return absl::OkStatus();
}

absl::StatusOr<BatchReader::Location> BatchReader::Locate(const LogState& log, uint64_t offset) {
  const SegmentState* seg = nullptr;
  for (const SegmentState& s : log.segments) {
    if (s.base_offset <= offset) seg = &s;
  }
  if (seg == nullptr || offset > seg->end_offset) {
    return absl::NotFoundError(absl::StrCat("partition ", id_.queue, "-", id_.partition,
                                            ": offset ", offset, " is not in the log"));
  }
  if (offset == seg->end_offset) return Location{seg->base_offset, seg->end_position};
  if (next_offset_ == offset && next_base_ == seg->base_offset) {
    return Location{seg->base_offset, next_position_};
  }
  uint64_t pos = 0;
  if (const IndexEntry* e = seg->index.FloorOffset(offset)) pos = e->position;
  if (absl::Status st = OpenSegment(seg->base_offset); !st.ok()) return st;
  // Walk the headers from the index entry: bounded by the durable bytes of the segment.
  std::byte hbuf[kBatchHeaderBytes];
  while (pos < seg->end_position) {
    size_t got = 0;
    if (absl::Status st = PreadFull(fd_.get(), hbuf, pos, &got); !st.ok()) return st;
    if (got != sizeof hbuf) break;
    const BatchHeader h = ReadHeader(hbuf);
    if (h.magic != kBatchMagic || h.stride_bytes == 0 || h.stride_bytes % align_ != 0) break;
    if (h.base_offset == offset) return Location{seg->base_offset, pos};
    if (h.base_offset > offset) break;
    pos += h.stride_bytes;
  }
  return absl::NotFoundError(absl::StrCat("partition ", id_.queue, "-", id_.partition,
                                          ": no batch starts at offset ", offset));
}

Errc BatchReader::Read(const LogState& log, uint64_t offset, std::span<std::byte> out,
                       uint32_t* len, uint64_t* end) {
  auto loc = Locate(log, offset);
  if (!loc.ok()) return absl::IsNotFound(loc.status()) ? Errc::kOffsetOutOfRange : Errc::kStorageFailed;
  const SegmentState* seg = nullptr;
  for (const SegmentState& s : log.segments) {
    if (s.base_offset == loc->segment_base) seg = &s;
  }
  if (seg == nullptr || loc->position >= seg->end_position) return Errc::kOffsetOutOfRange;
  if (!OpenSegment(seg->base_offset).ok()) return Errc::kStorageFailed;
  std::byte hbuf[kBatchHeaderBytes];
  size_t got = 0;
  if (!PreadFull(fd_.get(), hbuf, loc->position, &got).ok() || got != sizeof hbuf) {
    return Errc::kStorageFailed;
  }
  const BatchHeader h = ReadHeader(hbuf);
  const uint64_t used = uint64_t{h.header_bytes} + h.payload_bytes;
  if (h.stride_bytes > out.size() || used > out.size()) return Errc::kMessageTooLarge;
  if (!PreadFull(fd_.get(), out.first(h.stride_bytes), loc->position, &got).ok() ||
      got != h.stride_bytes) {
    return Errc::kStorageFailed;
  }
  BatchHeader v;
  if (VerifyBatch(out.first(h.stride_bytes), align_, &v) != BatchCheck::kOk ||
      v.base_offset != offset || !(PartitionId{v.queue, v.partition} == id_)) {
    return Errc::kStorageFailed;
  }
  *len = static_cast<uint32_t>(used);
  *end = v.end_offset();
  next_offset_ = *end;
  next_position_ = loc->position + v.stride_bytes;
  next_base_ = seg->base_offset;
  return Errc::kOk;
}

}  // namespace sluice::storage
