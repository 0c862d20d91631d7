// StreamConsumer: push delivery from a stream, in offset order per partition, with credits.
//
//   auto sc = StreamConsumer::Create(conn, "ticks", {.start = StartPosition::Earliest()},
//                                    [](const ReceivedMessage& m) { use(m.offset, m.payload); });
//   while (running) conn.Poll(absl::Milliseconds(100));
//
// One SUBSCRIBE per partition (all partitions, or the one asked for); the RESULT gives the
// resolved start offset. DELIVER frames are then pushed, never beyond the credit window: the
// consumer grants `window` messages past what the application has consumed and re-grants
// (CREDIT, absolute: next_offset + credits, so a lost or repeated grant is harmless) whenever
// half the window has been consumed, and re-sends the grant when idle.
//
// Loss: an offset past the next expected one is held back and starts a gap timer; if the gap is
// still open after gap_timeout (reordering tolerance) the consumer sends NAK {from, count} and,
// when NAKs bring nothing, FETCHes the range instead. A lost tail (nothing after it to show the
// gap) is found by an idle FETCH probe. Duplicates (offsets already handed out) are dropped.
// Messages reach the application exactly once each, in offset order per partition.
//
// With a handler, messages are handed to it inside Poll() (views valid during the call) and
// credit returns when it returns. Without one they are queued (copied) and Next() hands them
// out; credit returns as they are taken.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "client/message.h"

namespace sluice::client {

struct StreamConsumerOptions {
  std::optional<uint16_t> partition;  // none = every partition of the queue
  StartPosition start = StartPosition::Latest();
  // Consumer group whose committed offsets StartPosition::Committed() starts from (read once with
  // DescribeGroup; EARLIEST where the group has none). This does not join the group: for
  // membership, assignment and commits use GroupConsumer (group_consumer.h).
  std::string group;
  // Credits per partition: messages the server may push past what the application consumed.
  // Default 256.
  uint32_t window = 256;
  // How long a gap may stay open (reordering) before it is NAKed. Default 20 ms.
  absl::Duration gap_timeout = absl::Milliseconds(20);
  // Interval between repeated NAK / FETCH for a gap that stays open. Default 200 ms.
  absl::Duration recovery_interval = absl::Milliseconds(200);
  // NAKs without progress before FETCH is used instead; 0 = always FETCH. Default 2.
  int naks_before_fetch = 2;
  // With credit and no DELIVER at all (not even the server's idle ones) for this long, FETCH
  // from the next offset: finds a lost tail on a server that does not announce its high
  // watermark. Default 1 s.
  absl::Duration idle_probe = absl::Seconds(1);
  // The credit grant is repeated at least this often (the server drops a subscription that
  // sends neither CREDIT nor HEARTBEAT for three of its heartbeat intervals). Default 1 s.
  absl::Duration credit_interval = absl::Seconds(1);
  // SUBSCRIBE: time for all partitions to answer. Default 3 s.
  absl::Duration subscribe_timeout = absl::Seconds(3);
  // A live subscription hears at least one DELIVER a second (the server's idle ones carry the
  // high watermark). With none for this long the server no longer has it (it restarted, or a
  // standby was promoted in its place): SUBSCRIBE again from the next offset. The same happens at
  // once when the connection moves to another server (a NOT_PRIMARY redirect or a failover to
  // the next server of a list). Default 3 s.
  absl::Duration resubscribe_after = absl::Seconds(3);
};

using MessageHandler = absl::AnyInvocable<void(const ReceivedMessage& message)>;

struct StreamConsumerStats {
  uint64_t delivered = 0;     // handed to the application
  uint64_t duplicates = 0;    // dropped: offset already handed out
  uint64_t out_of_order = 0;  // held back waiting for a gap
  uint64_t gaps = 0;          // gaps that needed recovery (NAK or FETCH sent)
  uint64_t naks_sent = 0;
  uint64_t fetches_sent = 0;
  uint64_t credits_sent = 0;
  uint64_t skipped = 0;       // offsets the server no longer retains (OFFSET_OUT_OF_RANGE)
  uint64_t resubscribes = 0;  // SUBSCRIBEs sent again (another server, or the subscription lost)
};

struct FetchResult {
  std::vector<OwnedMessage> messages;
  uint64_t next_offset = 0;     // where the next fetch starts
  uint64_t high_watermark = 0;  // the partition's end offset
};

// Plain pull: one FETCH of up to max_messages from `start` in one partition of a stream.
absl::StatusOr<FetchResult> Fetch(Connection& conn, const QueueInfo& queue, uint16_t partition,
                                  StartPosition start, uint16_t max_messages,
                                  absl::Duration timeout = absl::Seconds(3));

class StreamConsumer final : public Endpoint {
 public:
  // Looks the queue up and subscribes (blocking, up to options.subscribe_timeout).
  static absl::StatusOr<std::unique_ptr<StreamConsumer>> Create(Connection& conn,
                                                                std::string_view queue,
                                                                StreamConsumerOptions options = {},
                                                                MessageHandler handler = nullptr);
  ~StreamConsumer() override;  // unsubscribes (fire and forget)
  StreamConsumer(const StreamConsumer&) = delete;
  StreamConsumer& operator=(const StreamConsumer&) = delete;

  // Queue mode (no handler): the next message in offset order of its partition, if one is ready.
  std::optional<OwnedMessage> Next();
  // Polls the connection until a message is ready or `timeout` passes.
  std::optional<OwnedMessage> NextWait(absl::Duration timeout);
  size_t ready() const { return ready_.size(); }

  // Stops delivery on every partition and waits for the server's RESULT.
  absl::Status Unsubscribe(absl::Duration timeout = absl::Seconds(3));

  // Next offset to be handed to the application in `partition`.
  uint64_t next_offset(uint16_t partition) const;
  // Offsets the server may push up to (exclusive) in `partition`.
  uint64_t granted_end(uint16_t partition) const;
  uint64_t subscription_id() const { return subscription_id_; }
  const QueueInfo& queue() const { return queue_; }
  const StreamConsumerStats& stats() const { return stats_; }

  // Endpoint
  void OnFrame(const protocol::FrameView& frame) override;
  MonoNs OnTimer(MonoNs now) override;

 private:
  struct Part {
    uint16_t partition = 0;
    bool subscribed = false;    // this consumer reads this partition
    bool active = false;        // RESULT received: `next` is known
    uint64_t control_request_id = 0;  // CREDIT / NAK frames (ERROR replies route back by it)
    uint64_t next = 0;          // next offset to hand out
    uint64_t consumed = 0;      // offsets < consumed are consumed (credit base)
    uint64_t granted_end = 0;   // the server may push offsets < granted_end
    uint64_t last_grant_base = 0;
    uint64_t high_watermark = 0;
    std::map<uint64_t, OwnedMessage> ahead;  // past a gap, waiting (bounded by the window)
    MonoNs gap_since = kNever;
    MonoNs next_recovery = 0;
    int naks_without_progress = 0;
    MonoNs last_activity = 0;   // last DELIVER / MESSAGES for this partition
    MonoNs last_credit = 0;
    bool fetch_outstanding = false;
    bool resync = false;        // next FETCH reply sets `next` (after OFFSET_OUT_OF_RANGE)
    MonoNs last_push = 0;       // last DELIVER: the subscription itself is alive
    bool resubscribing = false; // a SUBSCRIBE from `next` is out
  };

  StreamConsumer(Connection& conn, QueueInfo queue, StreamConsumerOptions options,
                 MessageHandler handler);
  absl::Status Subscribe();
  void Activate(Part& part, uint64_t start, MonoNs now);
  void Ingest(Part& part, const ReceivedMessage& m, MonoNs now);
  void IngestDelivered(Part& part, const protocol::DeliveredView& d, MonoNs now);
  void Hand(Part& part, const ReceivedMessage& m, OwnedMessage* owned);
  void DrainAhead(Part& part);
  void MaybeGrant(Part& part);
  void SendCredit(Part& part);
  void Recover(Part& part, MonoNs now);
  void SendFetch(Part& part, uint64_t from, uint32_t max, bool earliest);
  void OnOutOfRange(Part& part);
  void Resubscribe(Part& part, MonoNs now);
  Part* PartByControl(uint64_t request_id);

  Connection& conn_;
  QueueInfo queue_;
  StreamConsumerOptions options_;
  MessageHandler handler_;
  uint64_t subscription_id_ = 0;
  std::vector<Part> parts_;  // indexed by partition
  std::map<uint16_t, uint64_t> committed_;  // StartPosition::Committed(): the group's offsets
  std::deque<OwnedMessage> ready_;
  DeliveryAssembler assembler_;
  std::vector<uint64_t> outstanding_;  // request ids of pending calls
  StreamConsumerStats stats_;
  bool handing_ = false;
  uint64_t server_switches_ = 0;  // the connection's redirects + failovers when last looked at
};

}  // namespace sluice::client
