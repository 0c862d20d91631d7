// Replies that wait for the standby (docs/replication.md §13 "sync queues"): on a queue with
// `replication = sync`, the RESULT of a DELETE or a COMMIT leaves only once the standby has
// written the ack records they logged into its own ack log. One of these per worker (Frontend):
// a bounded, pre-allocated FIFO of replies, each a contiguous run of result items in an item
// ring. No allocation, lock or system call after construction; when full, Open says no and the
// Frontend answers THROTTLED instead (before doing anything).
//
// A reply is released when none of its items waits any more; replies of different partitions
// progress independently, so a released reply may leave a hole behind an older one that still
// waits (its slots are reused once everything before it is released too).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/functional/function_ref.h"
#include "protocol/errc.h"

namespace sluice::dataplane {

class PendingReplies {
 public:
  // Whom a reply goes to, and what it answers.
  struct Head {
    uint64_t endpoint = 0;
    uint64_t client_id = 0;
    uint64_t request_id = 0;
    uint8_t request_type = 0;  // protocol::FrameType of the request (DELETE, COMMIT)
    uint64_t since_ns = 0;     // when it started waiting
  };
  // One RESULT item. `wait_seq` != 0: it waits until the ack stream of `wait_key` (the
  // Frontend's partition key) has `wait_seq` records in the standby's ack log; 0: final.
  struct Item {
    Errc errc = Errc::kOk;
    uint32_t index = 0;
    uint64_t value = 0;
    uint64_t wait_key = 0;
    uint64_t wait_seq = 0;
  };
  // What becomes of a waiting item now: still waiting, or its final errc.
  enum class Verdict : uint8_t { kWait, kOk, kNotReplicated };

  PendingReplies(uint32_t max_replies, uint32_t max_items);

  // Opens a reply of at most `max_items` items (at least 1); false when there is no room for it
  // (nothing changes). Only one reply is open at a time: Add to it, then Close it.
  bool Open(const Head& head, uint32_t max_items);
  void Add(const Item& item);
  // Ends the open reply (its unused item slots are given back). Returns whether any item waits;
  // when none does, the caller sends it at once (Last) and drops it (DropLast).
  bool Close();
  const Head& last_head() const;
  std::span<const Item> last_items() const;
  void DropLast();

  // Asks `verdict` about every waiting item (in FIFO order) and hands every reply with nothing
  // left waiting to `send`, once. Returns replies released.
  uint32_t Release(absl::FunctionRef<Verdict(const Head&, const Item&)> verdict,
                   absl::FunctionRef<void(const Head&, std::span<const Item>)> send);

  // A reply to this request still waits: a client's retransmission of it (same request id) is
  // answered by that reply, not done again (a DELETE done twice would answer UNKNOWN_RECEIPT
  // before the first reply says OK). A walk over the replies held: sync requests only.
  bool Holds(uint64_t endpoint, uint64_t client_id, uint64_t request_id,
             uint8_t request_type) const;

  bool empty() const { return count_ == 0; }
  uint32_t size() const { return count_; }        // replies held (released holes included)
  uint32_t waiting() const { return waiting_; }   // replies not released yet
  uint32_t items_held() const { return items_used_; }

 private:
  struct Reply {
    Head head;
    uint32_t first = 0;   // position in items_
    uint32_t count = 0;   // items added
    uint32_t span = 0;    // item slots it holds (count, plus slots skipped at the ring's end)
    uint32_t waiting = 0; // items still waiting
    bool released = false;
  };
  Reply& At(uint32_t i) { return replies_[(head_ + i) % replies_.size()]; }
  const Reply& At(uint32_t i) const { return replies_[(head_ + i) % replies_.size()]; }
  void PopReleased();

  std::vector<Reply> replies_;
  std::vector<Item> items_;
  uint32_t head_ = 0;
  uint32_t count_ = 0;
  uint32_t waiting_ = 0;
  uint32_t items_head_ = 0;  // first slot of the oldest reply
  uint32_t items_tail_ = 0;  // next free slot
  uint32_t items_used_ = 0;  // slots held (spans)
  bool open_ = false;
  uint32_t open_cap_ = 0;
};

}  // namespace sluice::dataplane
