// Hierarchical timing wheel (Varghese & Lauck; the Linux/Kafka layout): kLevels levels of 64
// slots, level L covering deadlines that differ from "now" first in bits [6L, 6L+6) of the tick
// count. Insert and Cancel are O(1); Advance fires due timers in deadline order (ties in no set
// order), cascades higher levels down as their slot comes around, and skips empty stretches.
//
// Nodes are intrusive (embedded in the owner's own record, e.g. a work-queue message slot), so a
// timer never allocates. Deadlines are in ticks (ShardConfig::timer_tick_ns); callers round up so
// a timer never fires early. Ranges: a deadline at most 2^41 ticks ahead (70 years at 1 ms).
#pragma once

#include <bit>
#include <cstdint>

#include "protocol/assert.h"

namespace sluice::shard {

struct TimerNode;

// Whoever embeds TimerNodes; Shard::Tick dispatches a fired node to its client.
class TimerClient {
 public:
  virtual void OnTimer(TimerNode* node) = 0;

 protected:
  ~TimerClient() = default;
};

struct TimerNode {
  TimerClient* client = nullptr;
  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  uint64_t deadline = 0;   // tick
  uint32_t slot = kUnlinked;  // level * 64 + index, kFiring, or kUnlinked
  uint32_t owner_index = 0;   // owner's own use (e.g. message slot)
  uint8_t kind = 0;           // owner's own use (e.g. message vs waiter)

  static constexpr uint32_t kUnlinked = UINT32_MAX;
  static constexpr uint32_t kFiring = UINT32_MAX - 1;
  bool linked() const { return slot != kUnlinked; }
};

class TimerWheel {
 public:
  static constexpr int kBits = 6;
  static constexpr int kSlots = 1 << kBits;
  static constexpr int kLevels = 7;  // 42 bits of ticks
  static constexpr uint64_t kMaxAhead = uint64_t{1} << 41;

  explicit TimerWheel(uint64_t now_tick = 0) : now_(now_tick) {}
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  uint64_t now() const { return now_; }
  uint64_t size() const { return count_; }

  // A deadline at or before now fires on the next Advance that moves time (now + 1).
  void Insert(TimerNode* n, uint64_t deadline) {
    SLUICE_ASSERT(!n->linked());
    if (deadline <= now_) deadline = now_ + 1;
    if (deadline - now_ > kMaxAhead) deadline = now_ + kMaxAhead;
    n->deadline = deadline;
    Place(n);
    ++count_;
  }

  void Cancel(TimerNode* n) {
    if (!n->linked()) return;
    Unlink(n);
    --count_;
  }

  // Moves time to `tick`, calling fire(TimerNode*) for every timer whose deadline <= tick. A fired
  // node is unlinked before the call; the callback may insert or cancel any timer. Cost is per
  // event (slot start or cascade), not per tick: empty stretches of time are skipped.
  template <typename Fire>
  uint64_t Advance(uint64_t tick, Fire&& fire) {
    uint64_t fired = 0;
    while (now_ < tick) {
      const uint64_t next = count_ == 0 ? UINT64_MAX : NextEvent();
      if (next > tick) {
        now_ = tick;
        break;
      }
      now_ = next;
      if ((now_ & (kSlots - 1)) == 0) Cascade();
      fired += FireSlot(static_cast<uint32_t>(now_ & (kSlots - 1)), fire);
    }
    return fired;
  }

 private:
  void Place(TimerNode* n) {
    int level = 0;
    while (level < kLevels - 1 && (n->deadline >> (kBits * (level + 1))) != (now_ >> (kBits * (level + 1)))) {
      ++level;
    }
    const uint32_t index = static_cast<uint32_t>((n->deadline >> (kBits * level)) & (kSlots - 1));
    const uint32_t s = static_cast<uint32_t>(level) * kSlots + index;
    n->slot = s;
    n->prev = nullptr;
    n->next = heads_[s];
    if (heads_[s] != nullptr) heads_[s]->prev = n;
    heads_[s] = n;
    occupied_[level] |= uint64_t{1} << index;
  }

  void Unlink(TimerNode* n) {
    TimerNode** head = n->slot == TimerNode::kFiring ? &firing_ : &heads_[n->slot];
    if (n->prev != nullptr) n->prev->next = n->next; else *head = n->next;
    if (n->next != nullptr) n->next->prev = n->prev;
    if (*head == nullptr && n->slot != TimerNode::kFiring) {
      occupied_[n->slot / kSlots] &= ~(uint64_t{1} << (n->slot % kSlots));
    }
    n->prev = n->next = nullptr;
    n->slot = TimerNode::kUnlinked;
  }

  // Earliest tick at which some occupied slot comes around (to fire at level 0, or to cascade).
  // Every timer at level L sits in a slot after the current one within the current level-(L+1)
  // block, except at the top level, whose slots may have wrapped into the next revolution.
  uint64_t NextEvent() const {
    uint64_t best = UINT64_MAX;
    for (int level = 0; level < kLevels; ++level) {
      const uint64_t occupied = occupied_[level];
      if (occupied == 0) continue;
      const int shift = kBits * level;
      const int cur = static_cast<int>((now_ >> shift) & (kSlots - 1));
      const uint64_t ahead = cur == kSlots - 1 ? 0 : occupied >> (cur + 1) << (cur + 1);
      uint64_t block = now_ >> (shift + kBits) << (shift + kBits);
      uint64_t index;
      if (ahead != 0) {
        index = static_cast<uint64_t>(std::countr_zero(ahead));
      } else {
        SLUICE_ASSERT(level == kLevels - 1);
        block += uint64_t{1} << (shift + kBits);
        index = static_cast<uint64_t>(std::countr_zero(occupied));
      }
      const uint64_t t = block | (index << shift);
      if (t < best) best = t;
    }
    return best;
  }

  // At a block boundary: for each level whose lower bits just wrapped, move its current slot's
  // timers down (highest level first, so they settle in one pass).
  void Cascade() {
    int top = 1;
    while (top < kLevels - 1 && ((now_ >> (kBits * top)) & (kSlots - 1)) == 0) ++top;
    for (int level = top; level >= 1; --level) {
      const uint32_t index = static_cast<uint32_t>((now_ >> (kBits * level)) & (kSlots - 1));
      const uint32_t s = static_cast<uint32_t>(level) * kSlots + index;
      TimerNode* n = heads_[s];
      heads_[s] = nullptr;
      occupied_[level] &= ~(uint64_t{1} << index);
      while (n != nullptr) {
        TimerNode* next = n->next;
        SLUICE_ASSERT(n->deadline >= now_);
        Place(n);  // now lands on a lower level (or level 0 slot now_ if due exactly now)
        n = next;
      }
    }
  }

  template <typename Fire>
  uint64_t FireSlot(uint32_t index, Fire& fire) {
    if (heads_[index] == nullptr) return 0;
    // Move the slot into the firing list, then pop one at a time: a callback may cancel a node
    // still waiting in it, which the firing list supports like any slot.
    firing_ = heads_[index];
    heads_[index] = nullptr;
    occupied_[0] &= ~(uint64_t{1} << index);
    for (TimerNode* n = firing_; n != nullptr; n = n->next) n->slot = TimerNode::kFiring;
    uint64_t fired = 0;
    while (firing_ != nullptr) {
      TimerNode* n = firing_;
      SLUICE_ASSERT(n->deadline == now_);
      Unlink(n);
      --count_;
      ++fired;
      fire(n);
    }
    return fired;
  }

  uint64_t now_;
  uint64_t count_ = 0;
  TimerNode* firing_ = nullptr;
  TimerNode* heads_[kLevels * kSlots] = {};
  uint64_t occupied_[kLevels] = {};
};

}  // namespace sluice::shard
