// Coalesces per-message acknowledgements into ranges: consecutive sequences of one producer to one
// reply target with one outcome (and consecutive offsets) become one AckRange, so a 32-message
// frame is answered by one ack. The open range is emitted when an ack that does not extend it
// arrives, or on Flush (the shell flushes once per loop pass, like its TX drain).
#pragma once

#include "dataplane/shard/types.h"

namespace sluice::shard {

class AckCoalescer {
 public:
  // One message's ack. Takes the fields, not an AckRange: a range built on the stack and copied in
  // is stored in pieces and reloaded as vectors, a store-forwarding stall on every message.
  void Add(const ReplyTarget& target, QueueId queue, uint32_t partition, uint64_t producer_id,
           uint64_t sequence, uint64_t offset, Errc errc, ShardSink& sink) {
    if (open_.count != 0 && Extends(target, queue, partition, producer_id, sequence, offset, errc)) {
      ++open_.count;
      return;
    }
    Flush(sink);
    open_.target = target;
    open_.queue = queue;
    open_.partition = partition;
    open_.producer_id = producer_id;
    open_.first_sequence = sequence;
    open_.count = 1;
    open_.first_offset = offset;
    open_.errc = errc;
  }

  // The same as Add for each of `n` messages: sequences first_sequence + i * step (step 0 or 1),
  // offsets offset + i. Step 1: the first may extend the open range, the rest extend it (one
  // add). Step 0 (a repeated sequence): every message after the first is a range of its own.
  void AddRun(const ReplyTarget& target, QueueId queue, uint32_t partition, uint64_t producer_id,
              uint64_t first_sequence, uint64_t step, uint32_t n, uint64_t offset, Errc errc,
              ShardSink& sink) {
    Add(target, queue, partition, producer_id, first_sequence, offset, errc, sink);
    if (n == 1) return;
    if (step == 1 && offset != kNoOffset && uint64_t{open_.count} + n - 1 <= UINT32_MAX) {
      open_.count += n - 1;  // the open range now ends at the first message: the rest extend it
      return;
    }
    if (step == 0 && offset != kNoOffset) {
      // Each message repeats the sequence the open range ends at, so none extends it: each one
      // closes the open range and opens its own (target, producer, errc are already these).
      for (uint32_t i = 1; i < n; ++i) {
        sink.OnAck(open_);
        open_.first_sequence = first_sequence;
        open_.count = 1;
        open_.first_offset = offset + i;
      }
      return;
    }
    for (uint32_t i = 1; i < n; ++i) {
      Add(target, queue, partition, producer_id, first_sequence + i * step,
          offset == kNoOffset ? kNoOffset : offset + i, errc, sink);
    }
  }

  void Flush(ShardSink& sink) {
    if (open_.count == 0) return;
    sink.OnAck(open_);
    open_.count = 0;
  }

 private:
  bool Extends(const ReplyTarget& target, QueueId queue, uint32_t partition, uint64_t producer_id,
               uint64_t sequence, uint64_t offset, Errc errc) const {
    // The sequence first: a producer that does not number its messages (id 0, a fixed frame
    // replayed) breaks every range there, and the other fields would all compare equal first.
    if (sequence != open_.first_sequence + open_.count || !(target == open_.target) ||
        queue != open_.queue || partition != open_.partition ||
        producer_id != open_.producer_id || errc != open_.errc || open_.count == UINT32_MAX) {
      return false;
    }
    if (open_.first_offset == kNoOffset) return offset == kNoOffset;
    return offset == open_.first_offset + open_.count;
  }

  AckRange open_;
};

}  // namespace sluice::shard
