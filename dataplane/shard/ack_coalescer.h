// Coalesces per-message acknowledgements into ranges: consecutive sequences of one producer to one
// reply target with one outcome (and consecutive offsets) become one AckRange, so a 32-message
// frame is answered by one ack. The open range is emitted when an ack that does not extend it
// arrives, or on Flush (the shell flushes once per loop pass, like its TX drain).
#pragma once

#include "dataplane/shard/types.h"

namespace sluice::shard {

class AckCoalescer {
 public:
  void Add(const AckRange& one, ShardSink& sink) {
    if (open_.count != 0 && Extends(one)) {
      ++open_.count;
      return;
    }
    Flush(sink);
    open_ = one;
  }

  void Flush(ShardSink& sink) {
    if (open_.count == 0) return;
    sink.OnAck(open_);
    open_.count = 0;
  }

 private:
  bool Extends(const AckRange& a) const {
    if (!(a.target == open_.target) || a.queue != open_.queue || a.partition != open_.partition ||
        a.producer_id != open_.producer_id || a.errc != open_.errc ||
        open_.count == UINT32_MAX || a.first_sequence != open_.first_sequence + open_.count) {
      return false;
    }
    if (open_.first_offset == kNoOffset) return a.first_offset == kNoOffset;
    return a.first_offset == open_.first_offset + open_.count;
  }

  AckRange open_;
};

}  // namespace sluice::shard
