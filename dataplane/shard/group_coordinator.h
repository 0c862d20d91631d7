// Stream consumer groups of one queue: membership, rebalancing with generations, and the group's
// committed offsets per partition. One coordinator per queue, on the shard that owns the queue's
// partition 0 (a deterministic place every worker can compute from the queue table), so that
// membership and offsets of a group have exactly one authority and need no cross-core agreement.
//
// Membership: a member joins (or heartbeats) with a client-chosen id and a session timeout; a
// member silent past its session, or one that leaves, is removed. Every change of membership
// starts a new generation and reassigns the queue's partitions among the live members (range
// assignment over members sorted by id: member i of M gets [i*P/M, (i+1)*P/M), so the result
// depends only on the set of members). Members learn the new assignment on their next heartbeat.
//
// Fencing: a commit names the generation its assignment came with; it is refused
// (kStaleGeneration) unless that is the current generation and the partition is assigned to that
// member in it. So a member that has not yet heard of a rebalance cannot overwrite the offsets of
// the partition's new owner. A commit with member 0 and generation 0 is administrative (offsets
// reset by a tool) and allowed only while the group has no members.
//
// Committed offsets outlive membership: a group whose members all left keeps them, and a member
// that joins later resumes there. Partitions without a committed offset start where the consumer
// asks (earliest, latest, an offset, a timestamp) — the consumer resolves that itself.
//
// Time comes in as now_ns. Groups and members are pre-sized at construction (max_groups x
// max_members); a group's offset table is allocated on the group's first use (control path).
// Nothing here is on the per-message path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/errc.h"

namespace sluice::shard {

// A member's view of its group after a join, heartbeat or leave (or the group's, for Describe).
struct GroupAssignment {
  uint32_t generation = 0;  // 0: the group never had a member
  uint32_t members = 0;
  uint32_t session_ms = 0;       // granted session timeout (Join)
  uint32_t first_partition = 0;  // the member's partitions: [first, first + partition_count)
  uint32_t partition_count = 0;
};

struct GroupCounters {
  uint64_t joins = 0;        // members added
  uint64_t leaves = 0;       // members that left
  uint64_t expirations = 0;  // members removed for missing their session
  uint64_t rebalances = 0;   // generations started
  uint64_t commits = 0;
  uint64_t stale_commits = 0;
};

class GroupCoordinator {
 public:
  static constexpr uint32_t kDefaultSessionMs = 10'000;
  static constexpr uint32_t kMinSessionMs = 100;
  static constexpr uint32_t kMaxSessionMs = 300'000;

  GroupCoordinator(uint32_t partitions, uint32_t max_groups, uint32_t max_members);

  // Adds the member (a new generation) or renews its session. session_ms 0 = default; clamped to
  // [kMinSessionMs, kMaxSessionMs]. kThrottled: max_groups or max_members reached;
  // kInvalidArgument: empty group name or member 0.
  Errc Join(std::string_view group, uint64_t member, uint32_t session_ms, uint64_t now_ns,
            GroupAssignment* out);
  // Removes the member if present (a new generation if it was). Always kOk for a valid name.
  Errc Leave(std::string_view group, uint64_t member, GroupAssignment* out);
  // The group's generation and member count; zeros for an unknown group.
  GroupAssignment Describe(std::string_view group) const;

  // kOk, kStaleGeneration (see the header comment), kUnknownPartition, kThrottled (a new group
  // beyond max_groups, administrative commit only), kInvalidArgument (empty name).
  Errc Commit(std::string_view group, uint64_t member, uint32_t generation, uint32_t partition,
              uint64_t offset);
  std::optional<uint64_t> Committed(std::string_view group, uint32_t partition) const;

  // Removes members whose session ended by now_ns; their groups rebalance. Returns members
  // removed. O(1) when nothing is due.
  uint32_t Expire(uint64_t now_ns);
  uint64_t next_expiry_ns() const { return next_expiry_ns_; }

  uint32_t partitions() const { return partitions_; }
  const GroupCounters& counters() const { return counters_; }

 private:
  static constexpr uint64_t kNone = ~uint64_t{0};
  struct Member {
    uint64_t id = 0;
    uint64_t expires_ns = 0;
    uint32_t session_ms = 0;
  };
  struct Group {
    bool used = false;
    std::string name;             // reserved to 255 bytes up front
    uint32_t generation = 0;
    std::vector<Member> members;  // sorted by id; capacity max_members
    std::vector<uint64_t> committed;  // per partition; kNone = not committed
  };

  Group* Find(std::string_view name);
  const Group* Find(std::string_view name) const;
  Group* Create(std::string_view name);
  void Rebalance(Group& g);
  void Fill(const Group& g, size_t member_index, GroupAssignment* out) const;
  void RecomputeNextExpiry();

  uint32_t partitions_;
  uint32_t max_members_;
  std::vector<Group> groups_;
  uint64_t next_expiry_ns_ = UINT64_MAX;
  GroupCounters counters_;
};

}  // namespace sluice::shard
