// The receiving worker's routing step for a PRODUCE (FrameHandler::OwnersOf): which workers own
// the partitions its records name, with kAnyPartition resolved here, once, in the frame itself.
// Without DPDK, so that bench_frontend and the unit tests run the worker's whole request path.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/frontend.h"
#include "dataplane/queue_table.h"
#include "protocol/codec.h"
#include "protocol/crc32c.h"

namespace sluice::dataplane {

// Bit per owner worker of the records of `produce` (a frame ValidateFrame accepted) to queue `q`.
// A record with kAnyPartition that is not a fragment gets PartitionForKey(key) or, keyless, the
// next partition of the round-robin cursor *rr; the choice is written into the record (at
// `frame` + its offset in `f`, the writable bytes of the same frame), so that owners and the
// stored record see it. A partition out of range is the receiver's (`self`) to answer.
// Inline: once per received PRODUCE, most of them one record long (the call and its frame were
// a third of it).
inline uint64_t RouteProduce(const QueueInfo& q, uint16_t self, const protocol::FrameView& f,
                             const protocol::ProduceView& produce, std::byte* frame,
                             uint32_t* rr) {
  namespace p = protocol;
  const uint16_t parts = static_cast<uint16_t>(q.partition_worker.size());
  uint64_t owners = 0;
  // Records read in place: a MessageView per record cost ~90 instructions for the two fields
  // (partition, flags) most records need here.
  for (const p::RecordRef rec : produce.messages.records()) {
    uint16_t part = rec.partition();
    if (part == p::kAnyPartition && !rec.is_fragment()) {
      const std::string_view key = rec.key();
      part = !key.empty() ? p::PartitionForKey(key, parts)
                          : static_cast<uint16_t>((*rr)++ % parts);
      // Resolve in place: owners (and the stored record) see the partition chosen here.
      const size_t at = static_cast<size_t>(rec.data() - f.bytes.data());
      p::le::Store<uint16_t>(frame + at + 4, part);
    }
    owners |= uint64_t{1} << OwnerOf(q, part, self);
  }
  return owners;
}

}  // namespace sluice::dataplane
