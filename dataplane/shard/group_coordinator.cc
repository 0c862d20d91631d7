#include "dataplane/shard/group_coordinator.h"

#include <algorithm>

#include "protocol/assert.h"

namespace sluice::shard {

GroupCoordinator::GroupCoordinator(uint32_t partitions, uint32_t max_groups, uint32_t max_members)
    : partitions_(partitions), max_members_(max_members), groups_(max_groups) {
  SLUICE_ASSERT(partitions_ > 0);
  for (Group& g : groups_) {
    g.name.reserve(255);
    g.members.reserve(max_members_);
  }
}

GroupCoordinator::Group* GroupCoordinator::Find(std::string_view name) {
  for (Group& g : groups_) {
    if (g.used && g.name == name) return &g;
  }
  return nullptr;
}

const GroupCoordinator::Group* GroupCoordinator::Find(std::string_view name) const {
  for (const Group& g : groups_) {
    if (g.used && g.name == name) return &g;
  }
  return nullptr;
}

GroupCoordinator::Group* GroupCoordinator::Create(std::string_view name) {
  for (Group& g : groups_) {
    if (g.used) continue;
    g.used = true;
    g.name.assign(name.data(), name.size());
    g.generation = 0;
    g.members.clear();
    g.committed.assign(partitions_, kNone);
    return &g;
  }
  return nullptr;
}

void GroupCoordinator::Rebalance(Group& g) {
  ++g.generation;
  if (g.generation == 0) g.generation = 1;  // 0 means "never had a member"
  ++counters_.rebalances;
}

// Range assignment: member i of M (sorted by id) gets [i*P/M, (i+1)*P/M).
void GroupCoordinator::Fill(const Group& g, size_t i, GroupAssignment* out) const {
  const uint64_t m = g.members.size();
  out->generation = g.generation;
  out->members = static_cast<uint32_t>(m);
  out->session_ms = g.members[i].session_ms;
  const uint64_t first = i * partitions_ / m;
  const uint64_t end = (i + 1) * partitions_ / m;
  out->first_partition = static_cast<uint32_t>(first);
  out->partition_count = static_cast<uint32_t>(end - first);
}

Errc GroupCoordinator::Join(std::string_view group, uint64_t member, uint32_t session_ms,
                            uint64_t now_ns, GroupAssignment* out) {
  if (group.empty() || member == 0) return Errc::kInvalidArgument;
  session_ms = session_ms == 0 ? kDefaultSessionMs
                               : std::clamp(session_ms, kMinSessionMs, kMaxSessionMs);
  Group* g = Find(group);
  if (g == nullptr && (g = Create(group)) == nullptr) return Errc::kThrottled;
  auto it = std::lower_bound(g->members.begin(), g->members.end(), member,
                             [](const Member& m, uint64_t id) { return m.id < id; });
  if (it == g->members.end() || it->id != member) {
    if (g->members.size() >= max_members_) return Errc::kThrottled;
    it = g->members.insert(it, Member{member, 0, 0});  // within the reserved capacity
    ++counters_.joins;
    Rebalance(*g);
  }
  it->session_ms = session_ms;
  it->expires_ns = now_ns + uint64_t{session_ms} * 1'000'000;
  next_expiry_ns_ = std::min(next_expiry_ns_, it->expires_ns);
  Fill(*g, static_cast<size_t>(it - g->members.begin()), out);
  return Errc::kOk;
}

Errc GroupCoordinator::Leave(std::string_view group, uint64_t member, GroupAssignment* out) {
  if (group.empty()) return Errc::kInvalidArgument;
  *out = GroupAssignment{};
  Group* g = Find(group);
  if (g == nullptr) return Errc::kOk;
  auto it = std::find_if(g->members.begin(), g->members.end(),
                         [&](const Member& m) { return m.id == member; });
  if (it != g->members.end()) {
    g->members.erase(it);
    ++counters_.leaves;
    Rebalance(*g);
    RecomputeNextExpiry();
  }
  out->generation = g->generation;
  out->members = static_cast<uint32_t>(g->members.size());
  return Errc::kOk;
}

GroupAssignment GroupCoordinator::Describe(std::string_view group) const {
  GroupAssignment a;
  if (const Group* g = Find(group)) {
    a.generation = g->generation;
    a.members = static_cast<uint32_t>(g->members.size());
    a.partition_count = partitions_;
  }
  return a;
}

Errc GroupCoordinator::Commit(std::string_view group, uint64_t member, uint32_t generation,
                              uint32_t partition, uint64_t offset) {
  if (group.empty()) return Errc::kInvalidArgument;
  if (partition >= partitions_) return Errc::kUnknownPartition;
  Group* g = Find(group);
  if (member == 0 && generation == 0) {  // administrative: only while nobody consumes
    if (g == nullptr && (g = Create(group)) == nullptr) return Errc::kThrottled;
    if (!g->members.empty()) {
      ++counters_.stale_commits;
      return Errc::kStaleGeneration;
    }
    g->committed[partition] = offset;
    ++counters_.commits;
    return Errc::kOk;
  }
  if (g == nullptr || generation != g->generation) {
    ++counters_.stale_commits;
    return Errc::kStaleGeneration;
  }
  auto it = std::find_if(g->members.begin(), g->members.end(),
                         [&](const Member& m) { return m.id == member; });
  if (it == g->members.end()) {
    ++counters_.stale_commits;
    return Errc::kStaleGeneration;
  }
  GroupAssignment a;
  Fill(*g, static_cast<size_t>(it - g->members.begin()), &a);
  if (partition < a.first_partition || partition >= a.first_partition + a.partition_count) {
    ++counters_.stale_commits;
    return Errc::kStaleGeneration;
  }
  g->committed[partition] = offset;
  ++counters_.commits;
  return Errc::kOk;
}

std::optional<uint64_t> GroupCoordinator::Committed(std::string_view group,
                                                    uint32_t partition) const {
  const Group* g = Find(group);
  if (g == nullptr || partition >= partitions_ || g->committed[partition] == kNone) {
    return std::nullopt;
  }
  return g->committed[partition];
}

uint32_t GroupCoordinator::Expire(uint64_t now_ns) {
  if (now_ns < next_expiry_ns_) return 0;
  uint32_t removed = 0;
  for (Group& g : groups_) {
    if (!g.used) continue;
    const size_t before = g.members.size();
    std::erase_if(g.members, [&](const Member& m) { return m.expires_ns <= now_ns; });
    const size_t gone = before - g.members.size();
    if (gone > 0) {
      removed += static_cast<uint32_t>(gone);
      counters_.expirations += gone;
      Rebalance(g);  // one generation for all members that expired together
    }
  }
  RecomputeNextExpiry();
  return removed;
}

void GroupCoordinator::RecomputeNextExpiry() {
  next_expiry_ns_ = UINT64_MAX;
  for (const Group& g : groups_) {
    if (!g.used) continue;
    for (const Member& m : g.members) next_expiry_ns_ = std::min(next_expiry_ns_, m.expires_ns);
  }
}

}  // namespace sluice::shard
