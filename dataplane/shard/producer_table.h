// Producer idempotence for one partition: per producer id, the next expected sequence and the
// offsets of its last kWindow messages, so a retransmit is answered with the original offset
// instead of being appended twice.
//
// Rules (the client library follows them):
// - producer_id 0 means "not idempotent": never tracked, every message is appended.
// - A producer id's sequences start at 0 and go up by one per message in this partition.
// - seq == next: new, append.  seq < next: retransmit, answer with the original offset (or
//   kNoOffset if it is older than the window).  seq > next: kOutOfOrderSequence (a gap: an
//   earlier message was lost; the client resends from the gap).
// - An unknown producer id whose first sequence is not 0 gets kOutOfOrderSequence: the table
//   forgot it (LRU eviction past `capacity`, or a restart), and the client must start over with a
//   fresh producer id. Accepting any first sequence would ack a lost earlier message as duplicate.
//
// Fixed capacity: the states live in a slab sized at construction, with an LRU list through it;
// the id -> slot map is reserved up front, so nothing allocates per message.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "protocol/assert.h"

namespace sluice::shard {

class ProducerTable {
 public:
  static constexpr uint32_t kWindow = 16;
  static constexpr uint32_t kNil = UINT32_MAX;

  explicit ProducerTable(uint32_t capacity) : states_(capacity < 1 ? 1 : capacity) {
    map_.reserve(states_.size() * 2);  // headroom: erase tombstones never force a rehash
    for (uint32_t i = 0; i < states_.size(); ++i) states_[i].lru_next = i + 1 < states_.size() ? i + 1 : kNil;
    free_ = 0;
  }

  enum class Verdict { kNotIdempotent, kNew, kDuplicate, kOutOfOrder };
  struct Check {
    Verdict verdict;
    uint64_t offset = UINT64_MAX;  // kDuplicate: original offset, or UINT64_MAX if too old
    uint32_t slot = kNil;          // pass to Record
  };

  Check Classify(uint64_t producer_id, uint64_t sequence) const {
    if (producer_id == 0) return {Verdict::kNotIdempotent};
    uint32_t slot = last_slot_;
    // The producer recorded last (most messages come in runs from one producer): no hashing.
    if (producer_id != last_id_) {
      auto it = map_.find(producer_id);
      if (it == map_.end()) {
        return {sequence == 0 ? Verdict::kNew : Verdict::kOutOfOrder};
      }
      slot = it->second;
    }
    const State& s = states_[slot];
    if (sequence == s.next) return {Verdict::kNew, UINT64_MAX, slot};
    if (sequence > s.next) return {Verdict::kOutOfOrder, UINT64_MAX, slot};
    const Entry& e = s.window[sequence % kWindow];
    const bool remembered = s.next - sequence <= kWindow && e.sequence == sequence;
    return {Verdict::kDuplicate, remembered ? e.offset : UINT64_MAX, slot};
  }

  // The shard's inline append path: true if `sequence` is the next one of `producer_id` (not 0),
  // the producer recorded last, which heads the LRU list (Classify would say kNew and Record would
  // take its inline path). RecordNext then records it.
  bool IsNextOfLast(uint64_t producer_id, uint64_t sequence) const {
    return producer_id == last_id_ && last_slot_ == lru_head_ && sequence == states_[last_slot_].next;
  }
  void RecordNext(uint64_t sequence, uint64_t offset) {
    State& s = states_[last_slot_];
    SLUICE_ASSERT(sequence == s.next);
    s.window[sequence % kWindow] = {sequence, offset};
    ++s.next;
  }

  // After a kNew message was appended at `offset`. Returns true if another producer was evicted.
  // Inline for the producer recorded last while it heads the LRU list (a run of messages from one
  // producer: every one but the first): its window entry and next sequence, nothing else.
  [[gnu::always_inline]] bool Record(const Check& check, uint64_t producer_id, uint64_t sequence,
                                     uint64_t offset) {
    SLUICE_ASSERT(check.verdict == Verdict::kNew);
    if (check.slot == last_slot_ && check.slot == lru_head_ && producer_id == last_id_) {
      State& s = states_[check.slot];
      SLUICE_ASSERT(sequence == s.next);
      s.window[sequence % kWindow] = {sequence, offset};
      ++s.next;
      return false;
    }
    return RecordSlow(check, producer_id, sequence, offset);
  }

  // A new producer, an eviction or an LRU move: out of line, so that Record stays small enough to
  // inline into Shard::Append.
  [[gnu::noinline]] bool RecordSlow(const Check& check, uint64_t producer_id, uint64_t sequence,
                                    uint64_t offset) {
    bool evicted = false;
    uint32_t slot = check.slot;
    if (slot == kNil) {
      if (free_ == kNil) {  // full: forget the least recently used producer
        slot = lru_tail_;
        Unlink(slot);
        map_.erase(states_[slot].producer_id);
        evicted = true;
      } else {
        slot = free_;
        free_ = states_[slot].lru_next;
      }
      states_[slot] = State{};
      states_[slot].producer_id = producer_id;
      map_.emplace(producer_id, slot);
      PushFront(slot);
    } else if (lru_head_ != slot) {
      Unlink(slot);
      PushFront(slot);
    }
    State& s = states_[slot];
    SLUICE_ASSERT(sequence == s.next);
    s.window[sequence % kWindow] = {sequence, offset};
    ++s.next;
    last_id_ = producer_id;
    last_slot_ = slot;
    return evicted;
  }

  // Recovery: `sequence` of `producer_id` is stored at `offset` (records come in offset order).
  // Unlike Record, a first sequence above 0 or a gap is accepted: the log is the truth, and
  // records before it may have left by retention or deletion.
  void Restore(uint64_t producer_id, uint64_t sequence, uint64_t offset) {
    if (producer_id == 0) return;
    Check check = Classify(producer_id, sequence);
    if (check.verdict == Verdict::kDuplicate) return;  // never written twice; nothing to learn
    if (check.verdict == Verdict::kOutOfOrder) {
      if (check.slot == kNil) {
        check = Check{Verdict::kNew};
        Record(check, producer_id, 0, offset);  // takes a slot, next = 1
        check.slot = map_.find(producer_id)->second;
        states_[check.slot].window[0] = Entry{};  // sequence 0 was not seen
      }
      states_[check.slot].next = sequence;
      check.verdict = Verdict::kNew;
    }
    Record(check, producer_id, sequence, offset);
  }

  uint64_t size() const { return map_.size(); }

 private:
  struct Entry {
    uint64_t sequence = UINT64_MAX;
    uint64_t offset = UINT64_MAX;
  };
  struct State {
    uint64_t producer_id = 0;
    uint64_t next = 0;
    Entry window[kWindow];
    uint32_t lru_prev = kNil;
    uint32_t lru_next = kNil;  // doubles as the free-list link
  };

  void Unlink(uint32_t i) {
    State& s = states_[i];
    if (s.lru_prev != kNil) states_[s.lru_prev].lru_next = s.lru_next; else lru_head_ = s.lru_next;
    if (s.lru_next != kNil) states_[s.lru_next].lru_prev = s.lru_prev; else lru_tail_ = s.lru_prev;
    s.lru_prev = s.lru_next = kNil;
  }
  void PushFront(uint32_t i) {
    State& s = states_[i];
    s.lru_prev = kNil;
    s.lru_next = lru_head_;
    if (lru_head_ != kNil) states_[lru_head_].lru_prev = i; else lru_tail_ = i;
    lru_head_ = i;
  }

  std::vector<State> states_;
  absl::flat_hash_map<uint64_t, uint32_t> map_;
  // The producer Record saw last and its slot (map_[last_id_] == last_slot_); 0: none (producer
  // id 0 is never tracked). The map only changes inside Record (an eviction, an insertion), which
  // ends by setting these: they always name a live entry.
  uint64_t last_id_ = 0;
  uint32_t last_slot_ = kNil;
  uint32_t free_ = kNil;
  uint32_t lru_head_ = kNil;
  uint32_t lru_tail_ = kNil;
};

}  // namespace sluice::shard
