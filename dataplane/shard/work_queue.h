// Work-queue state of one partition: which stored messages are pending durability, delayed,
// ready, waiting behind their FIFO group, or leased; receipts; leases, delays and TTL on the
// shard's timer wheel; priorities; FIFO groups; dead-lettering; long-poll receive waiters.
//
// Life of a message:  Add -> kPending --durable--> kDelayed --delay over--> kReady --Receive-->
//   kLeased --Delete--> gone          (kBacklog instead of kReady while an older message of its
//           --Nack / lease expiry--> kReady or kDelayed  (or dead letter past max_receive_count)
// TTL: a message whose time to live passes before it is leased is dropped, never delivered.
// Messages become receivable only once durable (a consumer never sees what a crash could lose).
//
// Each message has one slot in a table sized at start; its only timer is the one relevant to its
// state (delay end, TTL, or lease end), embedded in the slot. No allocation per message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "dataplane/shard/large_array.h"
#include "dataplane/shard/partition_log.h"
#include "dataplane/shard/ring.h"
#include "dataplane/shard/timer_wheel.h"
#include "dataplane/shard/types.h"

namespace sluice::shard {

struct WorkQueueEnv {
  QueueId queue;
  uint32_t partition = 0;
  const QueueConfig* config = nullptr;
  PartitionLog* log = nullptr;
  TimerWheel* wheel = nullptr;
  uint64_t tick_ns = 1'000'000;
  ShardCounters* counters = nullptr;
  PartitionCounters* partition_counters = nullptr;
  ShardSink* sink = nullptr;
  const uint64_t* now_ns = nullptr;  // the shard's latest time (for timer callbacks)
};

struct ReceiveArgs {
  uint32_t max_messages = 1;
  uint32_t visibility_ms = 0;  // 0 = queue default
  uint32_t wait_ms = 0;        // long poll: park up to this long if nothing is ready
};

struct WorkQueueStats {
  uint32_t pending = 0;  // appended, not yet durable
  uint32_t delayed = 0;
  uint32_t ready = 0;
  uint32_t backlog = 0;  // visible, behind a leased or delayed message of its group
  uint32_t leased = 0;
  uint32_t waiters = 0;
  uint32_t groups = 0;
  uint64_t lowest_offset = UINT64_MAX;  // oldest message still in the queue (none: UINT64_MAX)
};

class WorkQueue final : private TimerClient {
 public:
  explicit WorkQueue(const WorkQueueEnv& env);
  ~WorkQueue();  // cancels its timers, releases its records
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Room for one more message of `group`? kOk or kThrottled. Call before appending to the log.
  Errc Admit(std::string_view group) const;
  // The log took `m` as `a`. Admit said kOk.
  void Add(const PartitionLog::Appended& a, const MessageIn& m);
  // Messages below `durable` become delayed or visible (and may answer parked receives).
  void OnDurable(DurableOffset durable);

  // Leases up to max_messages: emits Leased per message, then ReceiveDone (now, or when parked:
  // as soon as a message is ready or wait_ms passes). Returns messages leased now.
  uint32_t Receive(const ReplyTarget& target, const ReceiveArgs& args, uint64_t now_ns);
  Errc Delete(Receipt receipt);
  Errc Nack(Receipt receipt, uint32_t delay_ms, uint64_t now_ns);
  Errc Extend(Receipt receipt, uint32_t visibility_ms, uint64_t now_ns);

  // Purge: every durable message leaves (ready, delayed, backlogged and leased ones: their
  // receipts name nothing from now on), without a per-message OnRemoved (the caller logs one
  // "deleted below" mark instead). Messages not yet durable stay; parked receives keep waiting.
  // Returns messages removed. Walks the slot table: control path only.
  uint64_t Purge();
  // Answers every parked receive with an empty ReceiveDone carrying `errc` (partition removal).
  void CancelWaiters(Errc errc);

  // Counts by state; walks the slot table (tests, metrics scrape; not for the message path).
  WorkQueueStats Stats() const;  // walks every slot: for control, not per request
  bool HasReady() const { return ready_mask_ != 0; }  // O(1)

 private:
  enum class State : uint8_t { kFree, kPending, kDelayed, kReady, kBacklog, kLeased };
  static constexpr uint32_t kNil = UINT32_MAX;
  static constexpr uint8_t kSlotTimer = 0;
  static constexpr uint8_t kWaiterTimer = 1;
  static constexpr uint32_t kMaxLevels = 16;  // the wire's priorities 0..15

  // Two cache lines exactly: at millions of queued messages the slot of the message being leased
  // is cold, so each line it spans is a miss. The first line holds what every state change
  // touches (the timer node, the record, the state); the second the offsets, times and links.
  struct alignas(64) Slot {
    TimerNode timer;
    RecordLocation location;
    uint16_t receive_count = 0;       // saturates (max_receive_count is at most 1000)
    State state = State::kFree;
    uint8_t priority = 0;
    uint64_t offset = 0;
    uint64_t timestamp_ns = 0;
    uint64_t visible_at_ns = 0;       // append time + delay
    uint64_t expire_at_ns = UINT64_MAX;  // append time + TTL
    uint32_t generation = 0;          // bumped per lease and when freed (receipts)
    uint32_t first_generation = 0;    // generation when this message took the slot
    uint32_t prev = kNil, next = kNil;  // ready list; `next` also links the free list
    uint32_t gprev = kNil, gnext = kNil;  // group list (offset order)
    uint32_t group = kNil;
  };
  static_assert(sizeof(Slot) == 128 && offsetof(Slot, offset) == 64);
  struct List {
    uint32_t head = kNil, tail = kNil;
  };
  struct Group {
    uint64_t hash = 0;
    uint32_t head = kNil, tail = kNil;  // durable messages of the group, oldest first
    uint32_t count = 0;                 // messages of the group in any state but free
    uint32_t next_free = kNil;
  };
  struct Waiter {
    TimerNode timer;
    ReplyTarget target;
    uint32_t max_messages = 0;
    uint32_t visibility_ms = 0;
    uint32_t prev = kNil, next = kNil;  // waiting list; `next` also links the free list
    bool active = false;
  };

  void OnTimer(TimerNode* node) override;
  void OnSlotTimer(uint32_t i);
  void OnWaiterTimer(uint32_t w);
  void RemoveWaiter(uint32_t w);

  Errc Classify(Receipt receipt, Slot** out);
  uint32_t LeaseReady(const ReplyTarget& target, uint32_t max, uint32_t visibility_ms,
                      uint64_t now_ns);
  void Lease(uint32_t i, const ReplyTarget& target, uint32_t visibility_ms, uint64_t now_ns);
  void EndLease(uint32_t i, uint64_t delay_ns, uint64_t now_ns, LeaseEnd how);
  void MakeVisible(uint32_t i, bool front);
  void Delay(uint32_t i);
  void Remove(uint32_t i, bool notify = true);
  void Expire(uint32_t i);
  void SendToDeadLetter(uint32_t i, LeaseEnd how);
  void ServeWaiters(uint64_t now_ns);
  void ArmAt(TimerNode* node, uint64_t deadline_ns);
  void ArmExpiry(uint32_t i);

  void ListPush(List& list, uint32_t i, bool front);
  void ListUnlink(List& list, uint32_t i);
  void ReadyPush(uint32_t i, bool front);
  void ReadyUnlink(uint32_t i);

  WorkQueueEnv env_;
  const QueueConfig& config_;
  LargeArray<Slot> slots_;  // sized once; nodes inside must never move
  // The slot of the message at each offset (masked; entries are overwritten as offsets move on,
  // so an entry is a hint, never trusted): the order leases usually follow, known far enough
  // ahead to prefetch the slot a lease will take kLeaseAhead leases from now (Lease). The ready
  // list alone names only the next one, a memory latency too late at millions of messages.
  LargeArray<uint32_t> by_offset_;
  static constexpr uint64_t kLeaseAhead = 32;
  uint32_t free_slot_ = kNil;
  uint32_t used_slots_ = 0;
  Ring<uint32_t> pending_;   // slots appended but not durable, in offset order
  List ready_[kMaxLevels];
  uint32_t ready_mask_ = 0;  // bit p set: ready_[p] non-empty
  uint32_t levels_;

  std::vector<Group> groups_;
  absl::flat_hash_map<uint64_t, uint32_t> group_index_;
  uint32_t free_group_ = kNil;

  std::vector<Waiter> waiters_;
  uint32_t free_waiter_ = kNil;
  uint32_t waiting_head_ = kNil, waiting_tail_ = kNil;
  uint32_t waiting_count_ = 0;
};

}  // namespace sluice::shard
