// Dedup by the producer's dedup id, or by the payload's content when the queue asks and the
// message has no id, within a time window (one partition). Ids and contents are kept as 64-bit
// hashes: no string storage, no allocation. Two different ids (or payloads) colliding would make
// the second look like a duplicate; at 2^-63 per pair that is far below the other ways to lose a
// message.
// Capacity is fixed; when full, the oldest id is forgotten early (and counted) rather than
// growing the table.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "dataplane/shard/ring.h"

namespace sluice::shard {

class DedupTable {
 public:
  DedupTable(uint32_t capacity, uint64_t window_ns)
      : window_ns_(window_ns), order_(capacity == 0 ? 1 : capacity) {
    if (window_ns_ != 0) map_.reserve(order_.capacity() * 2);
  }

  bool enabled() const { return window_ns_ != 0; }
  uint64_t window_ns() const { return window_ns_; }
  // Ids and contents live in one table; the top bit keeps the two domains apart, so a dedup id
  // never matches a payload whatever the bytes (63 bits of hash remain in each domain).
  static constexpr uint64_t kContentBit = uint64_t{1} << 63;
  static uint64_t Hash(std::string_view id) {
    return absl::Hash<std::string_view>{}(id) & ~kContentBit;
  }
  static uint64_t HashContent(std::span<const std::byte> body) {
    return absl::Hash<std::string_view>{}(
               std::string_view(reinterpret_cast<const char*>(body.data()), body.size())) |
           kContentBit;
  }

  // A new window (a live queue attribute update; control path, may allocate). An id's window
  // always counts from when it was first seen: a shorter window forgets the ids older than it at
  // the next lookup; a longer one keeps the ids still remembered for longer (ids already
  // forgotten stay forgotten). 0 turns dedup off and forgets every id; turning it on from 0
  // sizes the table to `capacity` ids.
  void SetWindow(uint64_t window_ns, uint32_t capacity) {
    if (window_ns == 0) {
      map_.clear();
      order_.Reset(1);
    } else if (window_ns_ == 0) {
      order_.Reset(capacity == 0 ? 1 : capacity);
      map_.clear();
      map_.reserve(order_.capacity() * 2);
    }
    window_ns_ = window_ns;
  }

  // Offset of the message that carried this id within the window, if any.
  std::optional<uint64_t> Find(uint64_t hash, uint64_t now_ns) {
    ExpireUntil(now_ns);
    auto it = map_.find(hash);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }

  // Remembers a new id. Returns true if an older id had to be forgotten before its window ended.
  bool Insert(uint64_t hash, uint64_t offset, uint64_t now_ns) {
    bool evicted = false;
    if (order_.full()) {
      map_.erase(order_.front().hash);
      order_.pop_front();
      evicted = true;
    }
    order_.push_back({hash, now_ns});
    map_.emplace(hash, offset);
    return evicted;
  }

  uint64_t size() const { return map_.size(); }

 private:
  struct Entry {
    uint64_t hash;
    uint64_t seen_at_ns;
  };
  // The window is the same for every id, so insertion order is expiry order (whatever the
  // window is now).
  void ExpireUntil(uint64_t now_ns) {
    while (!order_.empty() && order_.front().seen_at_ns + window_ns_ <= now_ns) {
      map_.erase(order_.front().hash);
      order_.pop_front();
    }
  }

  uint64_t window_ns_;
  Ring<Entry> order_;
  absl::flat_hash_map<uint64_t, uint64_t> map_;  // hash -> offset
};

}  // namespace sluice::shard
