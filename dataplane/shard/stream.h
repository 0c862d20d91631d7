// Stream state of one partition: push subscriptions with credits, pull fetches, and consumer
// groups' committed offsets. The messages themselves are the partition's indexed PartitionLog.
//
// Only durable messages are visible (fetched or pushed): a consumer never sees a message that a
// crash could take back, and for durability `none` the shell marks batches durable as it seals
// them, so nothing waits. A subscriber without credit simply stops; appends never wait for it.
// If retention drops messages it has not read, it gets a SubscriptionGap and continues at the
// oldest retained offset.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "dataplane/shard/partition_log.h"
#include "dataplane/shard/types.h"

namespace sluice::shard {

struct StartPosition {
  enum class Kind : uint8_t { kOffset, kEarliest, kLatest, kTimestamp };
  Kind kind = Kind::kLatest;
  uint64_t value = 0;  // offset or timestamp (ns)

  static StartPosition Offset(uint64_t o) { return {Kind::kOffset, o}; }
  static StartPosition Earliest() { return {Kind::kEarliest, 0}; }
  static StartPosition Latest() { return {Kind::kLatest, 0}; }
  static StartPosition Timestamp(uint64_t ts_ns) { return {Kind::kTimestamp, ts_ns}; }
};

struct FetchResult {
  Errc errc = Errc::kOk;
  uint64_t next_offset = 0;  // where the next fetch should start
  uint32_t count = 0;
};

struct StreamEnv {
  QueueId queue;
  uint32_t partition = 0;
  const QueueConfig* config = nullptr;
  PartitionLog* log = nullptr;
  ShardCounters* counters = nullptr;
  PartitionCounters* partition_counters = nullptr;
  ShardSink* sink = nullptr;
};

class Stream {
 public:
  static constexpr uint32_t kNil = UINT32_MAX;

  explicit Stream(const StreamEnv& env);

  // The offset `start` names: kOffsetOutOfRange unless within [oldest retained, durable end].
  Errc Resolve(StartPosition start, uint64_t* offset) const;

  // Visits up to max_messages durable messages from `start`, stopping before max_bytes of records
  // would be passed (the first message is always given, so a large one cannot block a reader).
  FetchResult Fetch(StartPosition start, uint32_t max_messages, uint32_t max_bytes,
                    absl::FunctionRef<void(const StoredMessage&)> visit) const;

  // kThrottled if max_subscriptions are active. *index identifies it for Credit / Unsubscribe.
  Errc Subscribe(SubscriptionId id, const ReplyTarget& target, StartPosition start,
                 uint32_t credits, uint32_t* index);
  void Unsubscribe(uint32_t index);
  void Credit(uint32_t index, uint32_t credits);
  uint64_t next_offset(uint32_t index) const { return subs_[index].next_offset; }
  uint32_t credits(uint32_t index) const { return subs_[index].credits; }

  // Pushes durable messages to subscribers with credit, at most `budget` per subscriber (the
  // rest on the next call: every drain is bounded). Returns deliveries made.
  // Inline: a stream nobody subscribes to (most, on the produce path) costs a compare.
  uint64_t Pump(uint32_t budget) { return active_subs_ == 0 ? 0 : PumpAll(budget); }
  // True if some subscriber has both credit and unread durable messages.
  bool Backlogged() const { return active_subs_ != 0 && AnyBacklogged(); }

  // Consumer groups: committed offsets (in memory; the shell persists them through storage).
  Errc Commit(std::string_view group, uint64_t offset);
  std::optional<uint64_t> Committed(std::string_view group) const;

 private:
  struct Subscription {
    SubscriptionId id;
    ReplyTarget target;
    uint64_t next_offset = 0;
    uint32_t credits = 0;
    bool active = false;
    uint32_t next_free = kNil;
  };
  uint64_t PumpAll(uint32_t budget);
  bool AnyBacklogged() const;
  uint64_t PumpOne(Subscription& sub, uint32_t budget);

  StreamEnv env_;
  std::vector<Subscription> subs_;  // sized once
  uint32_t free_sub_ = kNil;
  uint32_t active_subs_ = 0;
  absl::flat_hash_map<uint64_t, uint64_t> committed_;  // hash(group name) -> offset
};

}  // namespace sluice::shard
