// The receiving worker's routing step for a PRODUCE (FrameHandler::OwnersOf): which workers own
// the partitions its records name, with kAnyPartition resolved here, once, in the frame itself.
// Without DPDK, so that bench_frontend and the unit tests run the worker's whole request path.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/queue_table.h"
#include "protocol/codec.h"

namespace sluice::dataplane {

// Bit per owner worker of the records of `produce` (a frame ValidateFrame accepted) to queue `q`.
// A record with kAnyPartition that is not a fragment gets PartitionForKey(key) or, keyless, the
// next partition of the round-robin cursor *rr; the choice is written into the record (at
// `frame` + its offset in `f`, the writable bytes of the same frame), so that owners and the
// stored record see it. A partition out of range is the receiver's (`self`) to answer.
uint64_t RouteProduce(const QueueInfo& q, uint16_t self, const protocol::FrameView& f,
                      const protocol::ProduceView& produce, std::byte* frame, uint32_t* rr);

}  // namespace sluice::dataplane
