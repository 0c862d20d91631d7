// An in-process sluice server for client tests: a thread with a UDP socket on 127.0.0.1 that
// decodes frames with protocol/ and answers per the server rules (docs/protocol.md) from a small
// in-memory model: LOOKUP, the HEARTBEAT cookie handshake (replies larger than the request only to
// verified sources), idempotent PRODUCE per (producer, partition, sequence) with coalesced ACKs
// and fragment reassembly, work queues (RECEIVE with leases and long poll, DELETE / NACK /
// EXTEND with STALE_RECEIPT / UNKNOWN_RECEIPT), streams (SUBSCRIBE with credits, DELIVER push,
// CREDIT, NAK, FETCH, UNSUBSCRIBE).
//
// Faults: a hook sees every datagram in both directions and can drop, duplicate or delay
// (reorder) it; THROTTLED can be injected for the next N messages; ACKs can be held back and
// coalesced. All public methods are thread-safe (one mutex; the hook runs under it and must not
// call back into the server).
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "protocol/codec.h"

namespace sluice::client::testing {

struct FakeQueue {
  std::string name;
  uint32_t id = 0;
  protocol::QueueType type = protocol::QueueType::kStream;
  uint16_t partitions = 1;
  uint32_t max_message_bytes = 256 << 10;
  uint32_t default_visibility_ms = 30'000;
};

enum class Direction { kToServer, kToClient };
enum class Fault { kPass, kDrop, kDuplicate, kDelay };
// Sees each datagram (decoded header and body); kDelay holds it and sends it after the next
// datagram in the same direction (or after 20 ms): a reordering.
using FaultHook = std::function<Fault(Direction, const protocol::FrameView&)>;

struct FakeCounters {
  uint64_t datagrams_in = 0;
  uint64_t produce_frames = 0;
  uint64_t appended = 0;
  uint64_t duplicates = 0;
  uint64_t out_of_order = 0;
  uint64_t throttled = 0;
  uint64_t ack_frames = 0;
  uint64_t ack_ranges = 0;
  uint64_t heartbeats = 0;
  uint64_t unverified_rejected = 0;
  uint64_t receives = 0;
  uint64_t subscribes = 0;
  uint64_t credits = 0;
  uint64_t naks = 0;
  uint64_t fetches = 0;
  uint64_t delivered = 0;
  uint64_t fragments = 0;
  uint64_t reassembled = 0;
};

class FakeServer {
 public:
  explicit FakeServer(std::vector<FakeQueue> queues);
  ~FakeServer();
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  std::string address() const;  // "127.0.0.1:<port>"

  void SetFaultHook(FaultHook hook);
  // Hold ACK ranges this long and send them coalesced (one frame per producer). 0 = at once.
  void SetAckDelayMs(int ms);
  // The next `messages` produced messages are answered THROTTLED (not appended).
  void ThrottleNext(int messages);
  // Forget every verified source (as a server restart would); the cookie epoch moves on too.
  void ForgetVerifiedSources();
  // Idle subscription partitions get an empty DELIVER with the high watermark this often (the
  // server's heartbeat interval, docs/protocol.md §11). Default 1000 ms; 0 = never.
  void SetIdleDeliverMs(int ms);
  // Forget every producer's sequence state (as a restart or an LRU eviction would).
  void ForgetProducers();
  // Stop answering entirely (a dead server).
  void SetSilent(bool silent);
  // Forget every subscription (as a restart, or a standby promoted in place, would).
  void ForgetSubscriptions();

  // Appends a message as if produced (no producer id), pushing it to subscribers.
  uint64_t Append(std::string_view queue, uint16_t partition, std::string_view payload);
  // Payloads of a partition's log, in offset order (work queues: deleted ones included).
  std::vector<std::string> Payloads(std::string_view queue, uint16_t partition);
  size_t LogSize(std::string_view queue, uint16_t partition);
  // Work queues: messages neither deleted nor expired.
  size_t LiveMessages(std::string_view queue, uint16_t partition);
  FakeCounters counters();

 private:
  struct Stored {
    uint64_t offset = 0;
    uint64_t timestamp_ns = 0;
    uint64_t producer_id = 0;
    std::vector<std::byte> record;
    // Work queues.
    uint64_t receipt = 0;      // current lease (0: none)
    int64_t visible_at_ns = 0; // leased until / delayed until
    uint16_t receive_count = 0;
    bool deleted = false;
  };
  struct ProducerState {
    uint64_t next_sequence = 0;
    std::map<uint64_t, uint64_t> offsets;  // sequence -> offset
  };
  struct Reassembly {
    std::vector<std::byte> first_record;  // fragment 0 (metadata)
    std::vector<std::byte> payload;
    std::map<uint32_t, uint32_t> pieces;  // fragment_offset -> length
    uint32_t total = 0;
  };
  struct Partition {
    std::vector<Stored> log;
    std::map<uint64_t, ProducerState> producers;
    std::map<std::pair<uint64_t, uint64_t>, Reassembly> reassembly;  // (producer, sequence)
  };
  struct Queue {
    FakeQueue decl;
    std::vector<Partition> parts;
  };
  struct Peer {
    sockaddr_in addr{};
    uint64_t key = 0;  // ip << 16 | port
  };
  struct Subscription {
    Peer peer;
    uint64_t client_id = 0;
    uint64_t request_id = 0;
    uint64_t subscription_id = 0;
    uint32_t queue_id = 0;
    uint16_t partition = 0;
    uint64_t next = 0;
    uint64_t limit = 0;
    int64_t last_sent_ns = 0;
  };
  struct PendingAck {
    Peer peer;
    uint64_t client_id = 0;
    uint64_t request_id = 0;
    uint32_t queue_id = 0;
    uint64_t producer_id = 0;
    std::vector<protocol::AckRange> ranges;
    int64_t due_ns = 0;
  };
  struct ParkedReceive {
    Peer peer;
    protocol::FrameHeader header;
    protocol::ReceiveRequest request;
    int64_t deadline_ns = 0;
  };
  struct Held {
    Direction dir;
    Peer peer;
    std::vector<std::byte> bytes;
    int64_t due_ns = 0;
  };

  void Loop();
  void OnDatagram(const Peer& from, std::span<const std::byte> d, bool replay);
  void Handle(const Peer& from, const protocol::FrameView& f);
  void SendRaw(const Peer& to, std::span<const std::byte> bytes);
  void SendOut(const Peer& to, std::span<const std::byte> bytes);
  void Error(const Peer& to, const protocol::FrameView& f, Errc errc, std::string_view detail);
  uint64_t CookieFor(const Peer& p, uint64_t client_id, uint64_t epoch) const;
  bool Verified(const Peer& p, uint64_t client_id) const;

  Queue* QueueById(uint32_t id);
  Queue* QueueByName(std::string_view name);
  uint64_t AppendLocked(Queue& q, uint16_t partition, std::span<const std::byte> record,
                        uint64_t producer_id);
  void OnProduce(const Peer& from, const protocol::FrameView& f);
  void AddAck(const Peer& from, const protocol::FrameView& f, uint32_t queue_id,
              uint64_t producer_id, const protocol::AckRange& r);
  void FlushAcks(bool all);
  void OnReceive(const Peer& from, const protocol::FrameView& f);
  bool TryReceive(const ParkedReceive& r, bool final);
  void OnReceiptOps(const Peer& from, const protocol::FrameView& f);
  void OnSubscribe(const Peer& from, const protocol::FrameView& f);
  void OnCredit(const protocol::FrameView& f);
  void OnNak(const Peer& from, const protocol::FrameView& f);
  void OnFetch(const Peer& from, const protocol::FrameView& f);
  void OnUnsubscribe(const Peer& from, const protocol::FrameView& f);
  void Push();
  void SendDeliver(const Subscription& s, uint64_t from, uint64_t to, uint64_t request_id);
  void Tick();
  // Adds a delivered record to `w`, starting the next frame through `next_frame` when it is full
  // and splitting a record too large for an empty frame into fragments (docs/protocol.md §9).
  void AddDelivered(protocol::FrameWriter& w, size_t cap, const protocol::DeliveredMeta& meta,
                    std::span<const std::byte> record, const std::function<void()>& next_frame);

  std::mutex mu_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<Queue> queues_;
  FaultHook hook_;
  int ack_delay_ms_ = 0;
  int idle_deliver_ms_ = 1000;
  int throttle_next_ = 0;
  bool silent_ = false;
  uint64_t secret_ = 0x5EC2E7ull;
  uint64_t cookie_epoch_ = 1;
  std::map<std::pair<uint64_t, uint64_t>, bool> verified_;  // (peer key, client id)
  std::vector<PendingAck> acks_;
  std::vector<ParkedReceive> parked_;
  std::vector<Subscription> subs_;
  std::vector<Held> held_;
  uint64_t next_receipt_ = 1;
  std::map<uint64_t, std::tuple<uint32_t, uint16_t, uint64_t>> receipts_;  // -> queue, part, offset
  FakeCounters counters_;
  std::vector<std::byte> out_;
};

}  // namespace sluice::client::testing
