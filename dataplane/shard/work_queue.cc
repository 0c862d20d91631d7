#include "dataplane/shard/work_queue.h"

#include <algorithm>
#include <bit>

#include "absl/hash/hash.h"
#include "protocol/assert.h"

namespace sluice::shard {
namespace {

constexpr uint64_t kNsPerMs = 1'000'000;

uint64_t AddSat(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }

}  // namespace

WorkQueue::WorkQueue(const WorkQueueEnv& env)
    : env_(env),
      config_(*env.config),
      slots_(env.config->max_messages),
      by_offset_(std::bit_ceil(uint64_t{env.config->max_messages})),
      pending_(env.config->max_messages),
      levels_(std::clamp<uint32_t>(env.config->priority_levels, 1, kMaxLevels)) {
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    slots_[i].timer.client = this;
    slots_[i].timer.owner_index = i;
    slots_[i].timer.kind = kSlotTimer;
    slots_[i].next = i + 1 < slots_.size() ? i + 1 : kNil;
  }
  free_slot_ = slots_.empty() ? kNil : 0;
  if (config_.fifo) {
    groups_.resize(config_.max_groups);
    group_index_.reserve(config_.max_groups * 2);
    for (uint32_t g = 0; g < groups_.size(); ++g) {
      groups_[g].next_free = g + 1 < groups_.size() ? g + 1 : kNil;
    }
    free_group_ = groups_.empty() ? kNil : 0;
  }
  waiters_.resize(config_.max_waiters);
  for (uint32_t w = 0; w < waiters_.size(); ++w) {
    waiters_[w].timer.client = this;
    waiters_[w].timer.owner_index = w;
    waiters_[w].timer.kind = kWaiterTimer;
    waiters_[w].next = w + 1 < waiters_.size() ? w + 1 : kNil;
  }
  free_waiter_ = waiters_.empty() ? kNil : 0;
}

WorkQueue::~WorkQueue() {
  for (Slot& s : slots_) {
    env_.wheel->Cancel(&s.timer);
    if (s.state != State::kFree) env_.log->Release(s.location);
  }
  for (Waiter& w : waiters_) env_.wheel->Cancel(&w.timer);
}

// ---- append side ---------------------------------------------------------------------------------

Errc WorkQueue::Admit(std::string_view group) const {
  if (free_slot_ == kNil) return Errc::kThrottled;
  if (config_.fifo && !group.empty() && free_group_ == kNil &&
      !group_index_.contains(absl::Hash<std::string_view>{}(group))) {
    return Errc::kThrottled;
  }
  return Errc::kOk;
}

void WorkQueue::Add(const PartitionLog::Appended& a, const MessageIn& m) {
  SLUICE_ASSERT(a.errc == Errc::kOk && free_slot_ != kNil);
  const uint32_t i = free_slot_;
  Slot& s = slots_[i];
  SLUICE_ASSERT(s.state == State::kFree && !s.timer.linked());
  free_slot_ = s.next;
  ++used_slots_;

  const uint64_t delay_ms = m.delay_ms != 0 ? m.delay_ms : config_.delay_ms;
  const uint64_t ttl_ms = m.ttl_ms != 0 ? m.ttl_ms : config_.ttl_ms;
  s.location = a.location;
  s.offset = a.offset;
  s.timestamp_ns = a.timestamp_ns;
  s.visible_at_ns = AddSat(a.timestamp_ns, delay_ms * kNsPerMs);
  s.expire_at_ns = ttl_ms == 0 ? UINT64_MAX : AddSat(a.timestamp_ns, ttl_ms * kNsPerMs);
  s.first_generation = s.generation;
  s.prev = s.next = s.gprev = s.gnext = kNil;
  s.receive_count = 0;
  s.priority = static_cast<uint8_t>(std::min<uint32_t>(m.priority, levels_ - 1));
  s.state = State::kPending;
  s.group = kNil;
  if (config_.fifo && !m.group.empty()) {
    const uint64_t hash = absl::Hash<std::string_view>{}(m.group);
    auto [it, inserted] = group_index_.try_emplace(hash, free_group_);
    if (inserted) {  // Admit guaranteed a free group
      SLUICE_ASSERT(free_group_ != kNil);
      Group& g = groups_[free_group_];
      free_group_ = g.next_free;
      g = Group{};
      g.hash = hash;
    }
    s.group = it->second;
    ++groups_[s.group].count;
  }
  // Offsets reach the queue in order (the log is dense), so durability walks `pending_` in order.
  SLUICE_ASSERT(pending_.empty() || slots_[pending_.back()].offset < s.offset);
  pending_.push_back(i);
  const uint64_t mask = by_offset_.size() - 1;
  by_offset_[a.offset & mask] = i;
  __builtin_prefetch(&by_offset_[(a.offset + 256) & mask], 1);  // a store miss stalls the rest
}

void WorkQueue::OnDurable(DurableOffset durable) {
  const uint64_t now = *env_.now_ns;
  while (!pending_.empty() && slots_[pending_.front()].offset < durable.value) {
    const uint32_t i = pending_.front();
    pending_.pop_front();
    Slot& s = slots_[i];
    SLUICE_ASSERT(s.state == State::kPending);
    if (s.group != kNil) {  // join the group's list in offset order
      Group& g = groups_[s.group];
      s.gprev = g.tail;
      s.gnext = kNil;
      if (g.tail != kNil) slots_[g.tail].gnext = i; else g.head = i;
      g.tail = i;
    }
    if (now >= s.expire_at_ns) {
      Expire(i);
    } else if (s.visible_at_ns > now) {
      Delay(i);
    } else {
      MakeVisible(i, /*front=*/false);
    }
  }
  ServeWaiters(now);
}

// ---- receive side --------------------------------------------------------------------------------

uint32_t WorkQueue::Receive(const ReplyTarget& target, const ReceiveArgs& args, uint64_t now_ns) {
  const uint32_t visibility = args.visibility_ms != 0 ? args.visibility_ms : config_.visibility_timeout_ms;
  const uint32_t leased = LeaseReady(target, args.max_messages, visibility, now_ns);
  if (leased > 0 || args.wait_ms == 0 || args.max_messages == 0 || free_waiter_ == kNil) {
    env_.sink->OnReceiveDone({target, env_.queue, env_.partition, leased, Errc::kOk});
    return leased;
  }
  // Long poll: park until a message is ready (ServeWaiters) or wait_ms passes (OnWaiterTimer).
  const uint32_t w = free_waiter_;
  Waiter& waiter = waiters_[w];
  free_waiter_ = waiter.next;
  waiter.target = target;
  waiter.max_messages = args.max_messages;
  waiter.visibility_ms = visibility;
  waiter.active = true;
  waiter.next = kNil;
  waiter.prev = waiting_tail_;
  if (waiting_tail_ != kNil) waiters_[waiting_tail_].next = w; else waiting_head_ = w;
  waiting_tail_ = w;
  ++waiting_count_;
  ++env_.counters->waiters_parked;
  ArmAt(&waiter.timer, AddSat(now_ns, uint64_t{args.wait_ms} * kNsPerMs));
  return 0;
}

uint32_t WorkQueue::LeaseReady(const ReplyTarget& target, uint32_t max, uint32_t visibility_ms,
                               uint64_t now_ns) {
  uint32_t leased = 0;
  while (leased < max && ready_mask_ != 0) {
    const uint32_t level = 31 - static_cast<uint32_t>(std::countl_zero(ready_mask_));
    const uint32_t i = ready_[level].head;
    if (now_ns >= slots_[i].expire_at_ns) {  // TTL passed since the last Tick
      Expire(i);
      continue;
    }
    Lease(i, target, visibility_ms, now_ns);
    ++leased;
  }
  return leased;
}

void WorkQueue::Lease(uint32_t i, const ReplyTarget& target, uint32_t visibility_ms,
                      uint64_t now_ns) {
  Slot& s = slots_[i];
  SLUICE_ASSERT(s.state == State::kReady);
  ReadyUnlink(i);
  // Leases mostly follow offset order: start loading the slot of the message kLeaseAhead offsets
  // on (both lines), and the hint entries further on. A wrong hint (nacks, priorities, delays
  // reorder leases) costs a wasted prefetch, nothing else.
  {
    const uint64_t mask = by_offset_.size() - 1;
    const Slot* ahead = &slots_[by_offset_[(s.offset + kLeaseAhead) & mask]];
    __builtin_prefetch(ahead, 1);
    __builtin_prefetch(reinterpret_cast<const char*>(ahead) + 64, 1);  // Slot: two lines
    __builtin_prefetch(&by_offset_[(s.offset + 4 * kLeaseAhead) & mask]);
  }
  env_.wheel->Cancel(&s.timer);  // its TTL timer; the lease timer replaces it
  s.state = State::kLeased;
  ++s.generation;
  if (s.receive_count != UINT16_MAX) ++s.receive_count;
  SLUICE_ASSERT(s.generation != s.first_generation);
  ++env_.counters->leases;
  ++env_.partition_counters->messages_out;
  env_.partition_counters->bytes_out += s.location.length;
  if (s.receive_count > 1) ++env_.counters->redeliveries;
  ArmAt(&s.timer, AddSat(now_ns, uint64_t{visibility_ms} * kNsPerMs));
  Leased out;
  out.target = target;
  out.queue = env_.queue;
  out.partition = env_.partition;
  out.message = {s.offset, s.timestamp_ns, env_.log->Record(s.location)};
  out.receipt = Receipt{(uint64_t{i} << 32) | s.generation};
  out.receive_count = s.receive_count;
  env_.sink->OnLeased(out);
}

void WorkQueue::ServeWaiters(uint64_t now_ns) {
  while (waiting_head_ != kNil && ready_mask_ != 0) {
    const uint32_t w = waiting_head_;
    const Waiter& waiter = waiters_[w];
    const ReplyTarget target = waiter.target;
    const uint32_t max = waiter.max_messages, visibility = waiter.visibility_ms;
    env_.wheel->Cancel(&waiters_[w].timer);
    RemoveWaiter(w);
    const uint32_t n = LeaseReady(target, max, visibility, now_ns);
    env_.sink->OnReceiveDone({target, env_.queue, env_.partition, n, Errc::kOk});
  }
}

// ---- receipts ------------------------------------------------------------------------------------

// kOk: `receipt` is the message's latest lease (it may have expired without being re-leased).
// kStaleReceipt: an earlier lease of a message still here. kUnknownReceipt: anything else.
Errc WorkQueue::Classify(Receipt receipt, Slot** out) {
  const uint64_t index = receipt.value >> 32;
  const uint32_t gen = static_cast<uint32_t>(receipt.value);
  if (index >= slots_.size()) return Errc::kUnknownReceipt;
  Slot& s = slots_[index];
  if (s.state == State::kFree || s.state == State::kPending) return Errc::kUnknownReceipt;
  const uint32_t age = gen - s.first_generation;         // leases of this message: 1..span
  const uint32_t span = s.generation - s.first_generation;
  if (age == 0 || age > span) return Errc::kUnknownReceipt;
  *out = &s;
  return age == span ? Errc::kOk : Errc::kStaleReceipt;
}

Errc WorkQueue::Delete(Receipt receipt) {
  Slot* s = nullptr;
  const Errc e = Classify(receipt, &s);
  if (e == Errc::kStaleReceipt) ++env_.counters->stale_receipts;
  if (e == Errc::kUnknownReceipt) ++env_.counters->unknown_receipts;
  if (e != Errc::kOk) return e;
  ++env_.counters->deleted;
  Remove(static_cast<uint32_t>(s - slots_.data()));
  ServeWaiters(*env_.now_ns);  // the group's next message may have become ready
  return Errc::kOk;
}

Errc WorkQueue::Nack(Receipt receipt, uint32_t delay_ms, uint64_t now_ns) {
  Slot* s = nullptr;
  const Errc e = Classify(receipt, &s);
  if (e == Errc::kStaleReceipt) ++env_.counters->stale_receipts;
  if (e == Errc::kUnknownReceipt) ++env_.counters->unknown_receipts;
  if (e != Errc::kOk) return e;
  if (s->state != State::kLeased) return Errc::kOk;  // lease already over: nothing to give back
  ++env_.counters->nacked;
  env_.wheel->Cancel(&s->timer);
  EndLease(static_cast<uint32_t>(s - slots_.data()), uint64_t{delay_ms} * kNsPerMs, now_ns,
           LeaseEnd::kNacked);
  ServeWaiters(now_ns);
  return Errc::kOk;
}

Errc WorkQueue::Extend(Receipt receipt, uint32_t visibility_ms, uint64_t now_ns) {
  Slot* s = nullptr;
  Errc e = Classify(receipt, &s);
  if (e == Errc::kOk && s->state != State::kLeased) e = Errc::kStaleReceipt;  // lease ran out
  if (e == Errc::kStaleReceipt) ++env_.counters->stale_receipts;
  if (e == Errc::kUnknownReceipt) ++env_.counters->unknown_receipts;
  if (e != Errc::kOk) return e;
  env_.wheel->Cancel(&s->timer);
  ArmAt(&s->timer, AddSat(now_ns, uint64_t{visibility_ms} * kNsPerMs));
  return Errc::kOk;
}

// ---- state changes -------------------------------------------------------------------------------

// A lease ended without a delete (timeout or nack): dead-letter, drop, delay, or visible again.
void WorkQueue::EndLease(uint32_t i, uint64_t delay_ns, uint64_t now_ns, LeaseEnd how) {
  Slot& s = slots_[i];
  SLUICE_ASSERT(s.state == State::kLeased && !s.timer.linked());
  if (config_.max_receive_count != 0 && s.receive_count >= config_.max_receive_count) {
    SendToDeadLetter(i, how);
  } else if (now_ns >= s.expire_at_ns) {
    Expire(i);
  } else if (delay_ns != 0) {
    s.visible_at_ns = AddSat(now_ns, delay_ns);
    Delay(i);
  } else {
    MakeVisible(i, /*front=*/true);  // it is older than what is queued: first again
  }
}

void WorkQueue::Delay(uint32_t i) {
  Slot& s = slots_[i];
  s.state = State::kDelayed;
  ArmAt(&s.timer, std::min(s.visible_at_ns, s.expire_at_ns));
}

// Ready, unless an older message of its FIFO group is still here (then it waits in the backlog).
void WorkQueue::MakeVisible(uint32_t i, bool front) {
  Slot& s = slots_[i];
  if (s.group != kNil && groups_[s.group].head != i) {
    s.state = State::kBacklog;
  } else {
    s.state = State::kReady;
    ReadyPush(i, front);
  }
  ArmExpiry(i);
}

uint64_t WorkQueue::Purge() {
  uint64_t removed = 0;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    const State st = slots_[i].state;
    if (st == State::kFree || st == State::kPending) continue;
    // Removing a group's head may make its next message ready: that one is durable too, so it
    // was removed already (earlier in the walk) or will be (later).
    Remove(i, /*notify=*/false);
    ++removed;
  }
  SLUICE_ASSERT(ready_mask_ == 0);
  return removed;
}

void WorkQueue::Expire(uint32_t i) {
  ++env_.counters->expired;
  ++env_.partition_counters->expired;
  Remove(i);
}

void WorkQueue::SendToDeadLetter(uint32_t i, LeaseEnd how) {
  const Slot& s = slots_[i];
  DeadLetter out;
  out.source_queue = env_.queue;
  out.source_partition = env_.partition;
  out.dead_letter_queue = config_.dead_letter_queue;
  out.message = {s.offset, s.timestamp_ns, env_.log->Record(s.location)};
  out.receive_count = s.receive_count;
  out.reason = DeadLetterReason::kMaxReceiveCount;
  out.last_lease = how;
  env_.sink->OnDeadLetter(out);  // record bytes valid during the call; removed right after
  ++env_.counters->dead_lettered;
  ++env_.partition_counters->dead_lettered;
  Remove(i);
}

// The message leaves the queue for good: unlink it everywhere, free its record and slot.
void WorkQueue::Remove(uint32_t i, bool notify) {
  Slot& s = slots_[i];
  SLUICE_ASSERT(s.state != State::kFree && s.state != State::kPending);
  if (notify) env_.sink->OnRemoved(env_.queue, env_.partition, s.offset);
  env_.wheel->Cancel(&s.timer);
  if (s.state == State::kReady) ReadyUnlink(i);
  if (s.group != kNil) {
    Group& g = groups_[s.group];
    const bool was_head = g.head == i;
    if (s.gprev != kNil) slots_[s.gprev].gnext = s.gnext; else g.head = s.gnext;
    if (s.gnext != kNil) slots_[s.gnext].gprev = s.gprev; else g.tail = s.gprev;
    SLUICE_ASSERT(g.count > 0);
    --g.count;
    if (was_head && g.head != kNil && slots_[g.head].state == State::kBacklog) {
      slots_[g.head].state = State::kReady;  // the group moves on
      ReadyPush(g.head, /*front=*/false);
    }
    if (g.count == 0) {
      SLUICE_ASSERT(g.head == kNil);
      group_index_.erase(g.hash);
      g.next_free = free_group_;
      free_group_ = s.group;
    }
  }
  env_.log->Release(s.location);
  s.state = State::kFree;
  ++s.generation;  // receipts of this message now name nothing
  s.next = free_slot_;
  free_slot_ = i;
  --used_slots_;
}

// ---- timers --------------------------------------------------------------------------------------

void WorkQueue::OnTimer(TimerNode* node) {
  if (node->kind == kWaiterTimer) {
    OnWaiterTimer(node->owner_index);
  } else {
    OnSlotTimer(node->owner_index);
  }
}

void WorkQueue::OnSlotTimer(uint32_t i) {
  const uint64_t now = *env_.now_ns;
  Slot& s = slots_[i];
  switch (s.state) {
    case State::kLeased:
      ++env_.counters->lease_expired;
      EndLease(i, 0, now, LeaseEnd::kExpired);
      break;
    case State::kDelayed:
      if (now >= s.expire_at_ns) {
        Expire(i);
      } else if (now >= s.visible_at_ns) {
        MakeVisible(i, /*front=*/false);
      } else {
        Delay(i);  // fired for a TTL that moved (cannot happen today; harmless)
      }
      break;
    case State::kReady:
    case State::kBacklog:
      if (now >= s.expire_at_ns) Expire(i); else ArmExpiry(i);
      break;
    case State::kFree:
    case State::kPending:
      SLUICE_ASSERT(false);  // these states never hold a timer
  }
  ServeWaiters(now);
}

void WorkQueue::CancelWaiters(Errc errc) {
  while (waiting_head_ != kNil) {
    const uint32_t w = waiting_head_;
    const ReplyTarget target = waiters_[w].target;
    env_.wheel->Cancel(&waiters_[w].timer);
    RemoveWaiter(w);
    env_.sink->OnReceiveDone({target, env_.queue, env_.partition, 0, errc});
  }
}

void WorkQueue::RemoveWaiter(uint32_t w) {
  Waiter& waiter = waiters_[w];
  SLUICE_ASSERT(waiter.active);
  if (waiter.prev != kNil) waiters_[waiter.prev].next = waiter.next; else waiting_head_ = waiter.next;
  if (waiter.next != kNil) waiters_[waiter.next].prev = waiter.prev; else waiting_tail_ = waiter.prev;
  --waiting_count_;
  waiter.active = false;
  waiter.next = free_waiter_;
  free_waiter_ = w;
}

void WorkQueue::OnWaiterTimer(uint32_t w) {
  const ReplyTarget target = waiters_[w].target;
  RemoveWaiter(w);
  ++env_.counters->waiters_timed_out;
  env_.sink->OnReceiveDone({target, env_.queue, env_.partition, 0, Errc::kOk});
}

void WorkQueue::ArmAt(TimerNode* node, uint64_t deadline_ns) {
  // Round up: a timer may fire late by up to a tick, never early.
  // The default 1 ms tick divides by a constant (a multiply): a lease is armed per receive, and a
  // division by a run-time divisor costs more than the rest of ArmAt.
  const uint64_t tick = env_.tick_ns == kNsPerMs
                            ? deadline_ns / kNsPerMs + (deadline_ns % kNsPerMs != 0 ? 1 : 0)
                            : deadline_ns / env_.tick_ns + (deadline_ns % env_.tick_ns != 0 ? 1 : 0);
  env_.wheel->Insert(node, tick);
}

void WorkQueue::ArmExpiry(uint32_t i) {
  Slot& s = slots_[i];
  if (s.expire_at_ns != UINT64_MAX) ArmAt(&s.timer, s.expire_at_ns);
}

// ---- lists ---------------------------------------------------------------------------------------

void WorkQueue::ListPush(List& list, uint32_t i, bool front) {
  Slot& s = slots_[i];
  if (front) {
    s.prev = kNil;
    s.next = list.head;
    if (list.head != kNil) slots_[list.head].prev = i; else list.tail = i;
    list.head = i;
  } else {
    s.next = kNil;
    s.prev = list.tail;
    if (list.tail != kNil) slots_[list.tail].next = i; else list.head = i;
    list.tail = i;
  }
}

void WorkQueue::ListUnlink(List& list, uint32_t i) {
  Slot& s = slots_[i];
  if (s.prev != kNil) slots_[s.prev].next = s.next; else list.head = s.next;
  if (s.next != kNil) slots_[s.next].prev = s.prev; else list.tail = s.prev;
  s.prev = s.next = kNil;
}

void WorkQueue::ReadyPush(uint32_t i, bool front) {
  const uint8_t p = slots_[i].priority;
  ListPush(ready_[p], i, front);
  ready_mask_ |= 1u << p;
}

void WorkQueue::ReadyUnlink(uint32_t i) {
  const uint8_t p = slots_[i].priority;
  ListUnlink(ready_[p], i);
  if (ready_[p].head == kNil) ready_mask_ &= ~(1u << p);
}

WorkQueueStats WorkQueue::Stats() const {
  WorkQueueStats st;
  for (const Slot& s : slots_) {
    if (s.state != State::kFree) st.lowest_offset = std::min(st.lowest_offset, s.offset);
    switch (s.state) {
      case State::kPending: ++st.pending; break;
      case State::kDelayed: ++st.delayed; break;
      case State::kReady: ++st.ready; break;
      case State::kBacklog: ++st.backlog; break;
      case State::kLeased: ++st.leased; break;
      case State::kFree: break;
    }
  }
  st.waiters = waiting_count_;
  st.groups = static_cast<uint32_t>(group_index_.size());
  return st;
}

}  // namespace sluice::shard
