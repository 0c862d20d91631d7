// GroupConsumer: a stream consumer that is a member of a consumer group. The group's members share
// the stream's partitions; each partition is read by one member at a time, and the group's
// progress (committed offsets) survives members coming and going.
//
//   GroupConsumerOptions o;
//   o.group = "billing";
//   o.start = StartPosition::Earliest();   // for partitions the group never committed
//   auto gc = GroupConsumer::Create(conn, "events", o, [](const ReceivedMessage& m) {...});
//   while (running) (*gc)->Poll(absl::Milliseconds(100));   // instead of conn.Poll
//   (*gc)->Close();                                          // commit and leave
//
// How it works (docs/protocol.md §11.1):
//   - JOIN_GROUP to the queue's coordinator (the server owner of partition 0) answers with the
//     group's generation, the partitions assigned to this member and the group's committed
//     offset for each. The member subscribes to each of them (one StreamConsumer per partition)
//     at the committed offset, or at `start` where the group has none.
//   - Every heartbeat_interval the member commits what its handler has consumed (COMMIT, fenced
//     by generation) and re-sends JOIN_GROUP as its heartbeat. When a reply carries a new
//     generation the next Poll() applies it: partitions taken away are dropped, new ones are
//     subscribed at their committed offsets. A member that misses its session timeout is removed
//     by the server and the group rebalances; its next heartbeat rejoins it.
//   - Commits carry the generation: after a rebalance the server refuses the old generation's
//     commits (STALE_GENERATION), so a slow member cannot move the offsets of a partition that
//     now belongs to another. Messages consumed after the last accepted commit are delivered
//     again to the partition's next owner: delivery is at-least-once across rebalances.
//
// Handler mode only: messages are handed to the handler inside Poll() (views valid during the
// call), in offset order per partition; what the handler has returned from counts as consumed.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "client/message.h"
#include "client/stream_consumer.h"

namespace sluice::client {

struct GroupConsumerOptions {
  std::string group;                            // 1..255 bytes; required
  StartPosition start = StartPosition::Latest();  // partitions without a committed offset
  uint32_t window = 256;                        // credits per partition (StreamConsumer)
  // The server removes a member it has not heard from for this long. 100 ms .. 300 s. Default 10 s.
  absl::Duration session_timeout = absl::Seconds(10);
  // Commit + heartbeat period; 0 = session_timeout / 3.
  absl::Duration heartbeat_interval = absl::ZeroDuration();
  // Member id: 0 = a random nonzero id.
  uint64_t member_id = 0;
  // Blocking steps (join, subscribe, commit, leave). Default 3 s.
  absl::Duration timeout = absl::Seconds(3);
};

struct GroupConsumerStats {
  uint64_t delivered = 0;
  uint64_t heartbeats = 0;
  uint64_t rebalances = 0;     // new generations applied
  uint64_t commits_sent = 0;   // COMMIT frames
  uint64_t commits_ok = 0;     // partitions committed
  uint64_t commits_stale = 0;  // partitions refused STALE_GENERATION
  uint64_t join_errors = 0;    // heartbeats answered with an error or unanswered
};

// A group as DESCRIBE shows it: generation, member count, committed offset per partition.
struct GroupDescription {
  uint32_t generation = 0;
  uint32_t members = 0;
  std::map<uint16_t, uint64_t> committed;  // partitions with a committed offset
};
absl::StatusOr<GroupDescription> DescribeGroup(Connection& conn, std::string_view queue,
                                               std::string_view group,
                                               absl::Duration timeout = absl::Seconds(3));

class GroupConsumer final : public Endpoint {
 public:
  // Looks the queue up, joins the group and subscribes to the partitions assigned (blocking).
  static absl::StatusOr<std::unique_ptr<GroupConsumer>> Create(Connection& conn,
                                                               std::string_view queue,
                                                               GroupConsumerOptions options,
                                                               MessageHandler handler);
  // Without Close(): a last COMMIT and a LEAVE are sent, fire and forget.
  ~GroupConsumer() override;
  GroupConsumer(const GroupConsumer&) = delete;
  GroupConsumer& operator=(const GroupConsumer&) = delete;

  // Polls the connection (heartbeats, commits and deliveries happen inside), then applies an
  // assignment that arrived (may block up to options.timeout per added partition).
  absl::Status Poll(absl::Duration timeout);
  // Commits every assigned partition's consumed offset now and waits for the answer. ABORTED
  // (STALE_GENERATION) when the group has rebalanced since this member's assignment.
  // `offsets` (partition -> next offset) replaces the consumed positions of those partitions,
  // for callers that consumed less than the handler was given.
  absl::Status Commit(const std::map<uint16_t, uint64_t>* offsets = nullptr);
  // Commit, then LEAVE (the group rebalances at once). The consumer stops delivering.
  absl::Status Close(const std::map<uint16_t, uint64_t>* offsets = nullptr);

  uint64_t member_id() const { return member_id_; }
  uint32_t generation() const { return generation_; }
  uint32_t members() const { return members_; }
  std::vector<uint16_t> assignment() const;
  // Next offset to hand to the handler in an assigned partition (what a commit would send).
  std::optional<uint64_t> position(uint16_t partition) const;
  const QueueInfo& queue() const { return queue_; }
  const GroupConsumerStats& stats() const { return stats_; }

  // Endpoint
  void OnFrame(const protocol::FrameView& frame) override;
  MonoNs OnTimer(MonoNs now) override;

 private:
  struct State {  // one GROUP_STATE answer, possibly over several frames
    uint32_t generation = 0;
    uint32_t members = 0;
    std::map<uint16_t, std::optional<uint64_t>> partitions;
  };
  GroupConsumer(Connection& conn, QueueInfo queue, GroupConsumerOptions options,
                MessageHandler handler);
  // Sends JOIN_GROUP (kJoin / kLeave); `done` runs with the assembled state or an error.
  void SendJoin(protocol::GroupOp op, absl::AnyInvocable<void(absl::StatusOr<State>)> done);
  // Sends COMMIT for the assigned partitions; `done` gets the request's outcome.
  bool SendCommit(absl::AnyInvocable<void(absl::Status)> done,
                  const std::map<uint16_t, uint64_t>* offsets = nullptr);
  absl::Status Apply(State state);

  Connection& conn_;
  QueueInfo queue_;
  GroupConsumerOptions options_;
  MessageHandler handler_;
  uint64_t member_id_ = 0;
  uint32_t generation_ = 0;
  uint32_t members_ = 0;
  std::map<uint16_t, std::unique_ptr<StreamConsumer>> parts_;  // assigned partitions
  std::optional<State> pending_;  // a new generation, applied by the next Poll()
  MonoNs next_heartbeat_ = 0;
  bool heartbeat_outstanding_ = false;
  bool closed_ = false;
  std::vector<uint64_t> outstanding_;  // request ids of pending calls
  GroupConsumerStats stats_;
};

}  // namespace sluice::client
