#include "dataplane/shard/stream.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "protocol/assert.h"

namespace sluice::shard {

Stream::Stream(const StreamEnv& env) : env_(env), subs_(env.config->max_subscriptions) {
  for (uint32_t i = 0; i < subs_.size(); ++i) subs_[i].next_free = i + 1 < subs_.size() ? i + 1 : kNil;
  free_sub_ = subs_.empty() ? kNil : 0;
  committed_.reserve(env.config->max_consumer_groups * 2);
}

Errc Stream::Resolve(StartPosition start, uint64_t* offset) const {
  const uint64_t oldest = env_.log->start_offset();
  const uint64_t durable = env_.log->durable_end().value;
  switch (start.kind) {
    case StartPosition::Kind::kOffset:
      if (start.value < oldest || start.value > durable) return Errc::kOffsetOutOfRange;
      *offset = start.value;
      return Errc::kOk;
    case StartPosition::Kind::kEarliest:
      *offset = std::min(oldest, durable);
      return Errc::kOk;
    case StartPosition::Kind::kLatest:
      *offset = durable;
      return Errc::kOk;
    case StartPosition::Kind::kTimestamp:
      *offset = std::clamp(env_.log->OffsetForTimestamp(start.value), oldest, durable);
      return Errc::kOk;
  }
  return Errc::kInvalidArgument;
}

FetchResult Stream::Fetch(StartPosition start, uint32_t max_messages, uint32_t max_bytes,
                          absl::FunctionRef<void(const StoredMessage&)> visit) const {
  FetchResult r;
  r.errc = Resolve(start, &r.next_offset);
  if (r.errc != Errc::kOk) return r;
  const uint64_t durable = env_.log->durable_end().value;
  uint64_t bytes = 0;
  StoredMessage m;
  while (r.count < max_messages && r.next_offset < durable && env_.log->Read(r.next_offset, &m)) {
    if (r.count > 0 && bytes + m.record.size() > max_bytes) break;
    bytes += m.record.size();
    visit(m);
    ++r.count;
    ++r.next_offset;
  }
  return r;
}

Errc Stream::Subscribe(SubscriptionId id, const ReplyTarget& target, StartPosition start,
                       uint32_t credits, uint32_t* index) {
  uint64_t offset = 0;
  const Errc e = Resolve(start, &offset);
  if (e != Errc::kOk) return e;
  if (free_sub_ == kNil) return Errc::kThrottled;
  const uint32_t i = free_sub_;
  Subscription& sub = subs_[i];
  free_sub_ = sub.next_free;
  sub = Subscription{id, target, offset, credits, true, kNil};
  ++active_subs_;
  *index = i;
  return Errc::kOk;
}

void Stream::Unsubscribe(uint32_t index) {
  Subscription& sub = subs_[index];
  SLUICE_ASSERT(sub.active);
  sub.active = false;
  sub.next_free = free_sub_;
  free_sub_ = index;
  --active_subs_;
}

void Stream::Credit(uint32_t index, uint32_t credits) {
  Subscription& sub = subs_[index];
  SLUICE_ASSERT(sub.active);
  sub.credits = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{sub.credits} + credits, UINT32_MAX));
}

uint64_t Stream::PumpAll(uint32_t budget) {
  uint64_t delivered = 0;
  for (Subscription& sub : subs_) {
    if (sub.active && sub.credits > 0) delivered += PumpOne(sub, budget);
  }
  return delivered;
}

uint64_t Stream::PumpOne(Subscription& sub, uint32_t budget) {
  const uint64_t durable = env_.log->durable_end().value;
  if (sub.next_offset < env_.log->start_offset()) {  // retention overtook a slow subscriber
    SubscriptionGap gap{sub.target, sub.id, env_.queue, env_.partition, sub.next_offset,
                        env_.log->start_offset()};
    sub.next_offset = env_.log->start_offset();
    ++env_.counters->subscription_gaps;
    env_.sink->OnSubscriptionGap(gap);
  }
  uint64_t n = 0;
  Delivery d;
  d.target = sub.target;
  d.subscription = sub.id;
  d.queue = env_.queue;
  d.partition = env_.partition;
  while (n < budget && sub.credits > 0 && sub.next_offset < durable &&
         env_.log->Read(sub.next_offset, &d.message)) {
    ++sub.next_offset;
    d.credits_left = --sub.credits;
    env_.sink->OnDeliver(d);
    env_.partition_counters->bytes_out += d.message.record.size();
    ++n;
  }
  env_.counters->delivered += n;
  env_.partition_counters->messages_out += n;
  return n;
}

bool Stream::AnyBacklogged() const {
  const uint64_t durable = env_.log->durable_end().value;
  for (const Subscription& sub : subs_) {
    if (sub.active && sub.credits > 0 && sub.next_offset < durable) return true;
  }
  return false;
}

Errc Stream::Commit(std::string_view group, uint64_t offset) {
  const uint64_t key = absl::Hash<std::string_view>{}(group);
  auto it = committed_.find(key);
  if (it == committed_.end()) {
    if (committed_.size() >= env_.config->max_consumer_groups) return Errc::kThrottled;
    committed_.emplace(key, offset);
  } else {
    it->second = offset;
  }
  return Errc::kOk;
}

std::optional<uint64_t> Stream::Committed(std::string_view group) const {
  auto it = committed_.find(absl::Hash<std::string_view>{}(group));
  if (it == committed_.end()) return std::nullopt;
  return it->second;
}

}  // namespace sluice::shard
