// Producer: asynchronous, batched, idempotent sends to one queue.
//
//   auto producer = Producer::Create(conn, "orders", {});
//   producer->Send({.payload = AsBytes("hello"), .key = "customer-7"},
//                  [](const absl::Status& s, uint16_t partition, uint64_t offset) {...});
//   producer->Flush(absl::Seconds(5));
//
// How a message travels:
//   - Send() picks the partition (explicit; CRC32C(key) % partitions as the server would;
//     round-robin without a key), numbers the message with the next sequence of
//     (producer id, partition), and encodes it at once into the open PRODUCE frame (so the
//     caller's buffers may be reused when Send returns). A message too big for one datagram is
//     split by protocol::Fragmenter into frames of its own; all fragments share the sequence.
//   - A frame leaves when it is full, when it has lingered `linger`, or at once with linger 0,
//     while fewer than max_in_flight_frames are unacknowledged.
//   - ACK ranges (coalesced, possibly for several frames) complete messages: OK or DUPLICATE
//     with the offset. THROTTLED ranges are retransmitted after a growing back-off; a frame
//     without its ACK after ack_timeout is retransmitted byte for byte (same sequences), so the
//     server answers a retransmit of an appended message with its original offset instead of
//     appending it twice. Other errors complete the message with a Status that names the queue,
//     the partition and the error (ErrcName + advice).
//   - Sequences stay gap-free as the server sees them: a message rejected for good (e.g.
//     MESSAGE_TOO_LARGE) does not advance the server's expected sequence, so the incomplete
//     messages after it are renumbered down and resent (the rejected record is removed from
//     its frames). If the server answers OUT_OF_ORDER_SEQUENCE for the lowest incomplete
//     sequence twice (it forgot this producer: restart, eviction), the producer takes a new
//     producer id and renumbers everything from 0; messages whose ACK was lost in that moment
//     may then be appended twice (at-least-once).
//   - Every accepted message's callback runs exactly once, from Poll()/Flush() of the
//     connection, in no particular order across partitions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "client/ring.h"
#include "protocol/codec.h"

namespace sluice::client {

// The offset reported for a DUPLICATE ack whose original offset the server no longer remembers.
inline constexpr uint64_t kUnknownOffset = ~uint64_t{0};
// Sequence of the first message of a (producer id, partition); see docs/protocol.md.
inline constexpr uint64_t kFirstSequence = 0;

inline std::span<const std::byte> AsBytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

struct OutgoingMessage {
  std::span<const std::byte> payload;
  std::string_view key;                    // picks the partition: Crc32c(key) % partitions
  std::optional<uint16_t> partition;       // explicit partition (overrides the key)
  uint8_t priority = 0;                    // 0..15
  uint32_t delay_ms = 0;                   // work queues: invisible for this long
  uint32_t ttl_ms = 0;                     // 0 = the queue's default
  std::span<const protocol::Header> headers;
  std::string_view dedup_id;
  std::string_view reply_to;
  std::string_view correlation_id;
  std::string_view group_id;               // FIFO message group
  uint64_t timestamp_ns = 0;               // 0 = the server stamps it
};

// Runs once per accepted message. status OK: `offset` in `partition` (kUnknownOffset for a
// duplicate too old for the server to remember its offset).
using SendCallback =
    absl::AnyInvocable<void(const absl::Status& status, uint16_t partition, uint64_t offset)>;

struct ProducerOptions {
  // Largest PRODUCE datagram; 0 = the connection's max_frame_bytes (default 1472).
  size_t max_frame_bytes = 0;
  // How long a partly filled frame waits for more messages; 0 = each Send() leaves at once in
  // its own frame. Default 1 ms.
  absl::Duration linger = absl::Milliseconds(1);
  // Frames sent and not fully acknowledged. Default 64.
  size_t max_in_flight_frames = 64;
  // Messages accepted and not completed; beyond it Send() returns RESOURCE_EXHAUSTED (call
  // Poll()). Default 65536.
  size_t max_pending_messages = 65536;
  // A frame without its ACK is retransmitted after ack_timeout, doubling up to max_ack_timeout.
  // Defaults 100 ms, 1 s.
  absl::Duration ack_timeout = absl::Milliseconds(100);
  absl::Duration max_ack_timeout = absl::Seconds(1);
  // A message not acknowledged this long after Send() fails with DEADLINE_EXCEEDED. Default 30 s.
  absl::Duration delivery_timeout = absl::Seconds(30);
  // Back-off after THROTTLED: starts at throttle_backoff, doubles (with jitter) up to
  // throttle_backoff_max, resets on the next successful ACK. Defaults 2 ms, 500 ms.
  absl::Duration throttle_backoff = absl::Milliseconds(2);
  absl::Duration throttle_backoff_max = absl::Milliseconds(500);
  // 0 = a random nonzero id.
  uint64_t producer_id = 0;
  // Keyless messages without a partition: true = all go to one partition until the frame closes,
  // then the next partition (fuller frames); false = rotate on every message. Default true.
  bool sticky_partitioning = true;
};

struct ProducerStats {
  uint64_t accepted = 0;      // Send() calls that returned OK
  uint64_t acked = 0;         // completed OK (duplicates included)
  uint64_t duplicates = 0;    // acked with errc DUPLICATE
  uint64_t failed = 0;        // completed with an error
  uint64_t frames_sent = 0;   // first transmissions
  uint64_t retransmits = 0;   // frames sent again (timeout, throttle, gap)
  uint64_t throttled = 0;     // messages answered THROTTLED (then retried)
  uint64_t out_of_order = 0;  // messages answered OUT_OF_ORDER_SEQUENCE (then retried)
  uint64_t fragmented = 0;    // messages split into fragments
  uint64_t renumbered = 0;    // messages given new sequences (after a rejected message)
  uint64_t epochs = 0;        // new producer ids (the server had forgotten this producer)
};

class Producer final : public Endpoint {
 public:
  // Looks the queue up (blocking, up to `timeout`) and attaches to the connection.
  static absl::StatusOr<std::unique_ptr<Producer>> Create(Connection& conn, std::string_view queue,
                                                          ProducerOptions options = {},
                                                          absl::Duration timeout = absl::Seconds(3));
  // The connection's info about the queue, for callers who looked it up already.
  Producer(Connection& conn, QueueInfo queue, ProducerOptions options);
  ~Producer() override;
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Accepts the message (encodes it; the caller's buffers are free on return) or rejects it at
  // once: INVALID_ARGUMENT (a field the protocol does not allow, bad partition),
  // MESSAGE_TOO_LARGE as an ErrcStatus, RESOURCE_EXHAUSTED (max_pending_messages: Poll first).
  // On OK the callback runs exactly once, later, from the connection's Poll().
  absl::Status Send(const OutgoingMessage& message, SendCallback done = nullptr);

  // Closes the open frame and polls until every accepted message completed, or `timeout`
  // (DEADLINE_EXCEEDED, messages still pending).
  absl::Status Flush(absl::Duration timeout);

  size_t pending() const { return pending_messages_; }
  uint64_t producer_id() const { return producer_id_; }
  const QueueInfo& queue() const { return queue_; }
  const ProducerStats& stats() const { return stats_; }

  // Endpoint
  void OnFrame(const protocol::FrameView& frame) override;
  MonoNs OnTimer(MonoNs now) override;

 private:
  struct PendingMessage {
    SendCallback callback;
    uint64_t frame_first = 0;  // frames holding the message (several when fragmented)
    uint64_t frame_last = 0;
    bool done = false;
  };
  struct PartitionState {
    uint64_t next_sequence = kFirstSequence;
    uint64_t base_sequence = kFirstSequence;  // sequence of pending[0]
    Ring<PendingMessage> pending;
    // OUT_OF_ORDER_SEQUENCE for the lowest incomplete sequence: the server expects one this
    // producer will never send again (it forgot the producer, or a message's fate is unknown).
    uint64_t stuck_sequence = ~uint64_t{0};
    int stuck_count = 0;
  };
  struct MessageRef {
    uint16_t partition;
    uint64_t sequence;
  };
  struct Frame {
    uint64_t id = 0;
    uint64_t request_id = 0;
    std::vector<std::byte> buf;
    std::optional<protocol::FrameWriter> writer;
    size_t size = 0;
    std::vector<MessageRef> messages;  // one entry per record (a fragment counts once)
    uint32_t remaining = 0;            // records whose message is not complete
    MonoNs created = 0;
    MonoNs next_send = kNever;         // sent frames: next retransmission
    MonoNs rto = 0;
    MonoNs last_sent = 0;
    uint32_t sends = 0;
  };
  struct Completion {
    SendCallback callback;
    absl::Status status;
    uint16_t partition;
    uint64_t offset;
  };

  uint16_t PickPartition(const OutgoingMessage& m);
  Frame* OpenFrame(MonoNs now);
  void CloseOpenFrame();
  void SendReady(MonoNs now);
  Frame* FindFrame(uint64_t id);
  void ReleaseFrame(Frame* f);
  void Complete(uint16_t partition, uint64_t sequence, absl::Status status, uint64_t offset);
  void FailFrame(Frame* f, const absl::Status& status);
  void PopCompleted(PartitionState& ps);
  void OnAck(const protocol::FrameView& frame, MonoNs now);
  void OnError(const protocol::FrameView& frame, MonoNs now);
  void RescheduleMessageFrames(const PendingMessage& m, MonoNs at);
  void RescheduleAfterGap(uint16_t partition, const PendingMessage& m, MonoNs now);
  MonoNs NextThrottleDelay();
  void Renumber(uint16_t partition, uint64_t from, uint64_t first, MonoNs now);
  void RewriteFrames(uint16_t partition, uint64_t from, const std::vector<uint64_t>& remap,
                     MonoNs now);
  void NewEpoch(MonoNs now);
  void RunCompletions();
  std::string ContextFor(uint16_t partition) const;

  Connection& conn_;
  QueueInfo queue_;
  ProducerOptions options_;
  size_t frame_bytes_ = 0;
  uint64_t producer_id_ = 0;
  std::vector<PartitionState> partitions_;
  uint32_t round_robin_ = 0;
  uint64_t next_frame_id_ = 1;
  Frame* open_ = nullptr;
  // Closed frames in id order: [0, in_flight_) sent, the rest waiting for the window.
  std::vector<Frame*> frames_;
  size_t in_flight_ = 0;
  std::vector<std::unique_ptr<Frame>> all_frames_;  // owner of every Frame
  std::vector<Frame*> free_frames_;
  std::vector<Frame*> scratch_frames_;
  std::vector<std::pair<uint16_t, uint64_t>> holes_;  // rejected sequences of the current ACK
  std::vector<uint64_t> remap_;
  bool epoch_needed_ = false;
  std::vector<Completion> completions_;
  size_t pending_messages_ = 0;
  MonoNs throttle_delay_ = 0;
  uint64_t jitter_ = 0x9E3779B97F4A7C15ull;
  ProducerStats stats_;
};

}  // namespace sluice::client
