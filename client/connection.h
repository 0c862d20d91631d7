// Connection: one UDP socket to one sluice server, driven by Poll() on the caller's thread.
//
// What it does:
//   - Connect(): resolves the server, opens a connected UDP socket and runs the address
//     verification handshake (HEARTBEAT with cookie 0 -> the server's cookie -> HEARTBEAT echoing
//     it), so that replies bigger than their requests (RECEIVE, FETCH, SUBSCRIBE) are allowed.
//   - Poll(timeout): sends what is queued (one sendmmsg per batch), waits for datagrams or the next
//     timer, receives with recvmmsg, decodes frame headers and routes each frame: ACK by producer
//     id, DELIVER by subscription id, everything else by request id; runs timers (heartbeats,
//     retransmissions, endpoints' own timers). Callbacks run inside Poll().
//   - Call(): a request that is retransmitted (same bytes, same request id) until a reply comes,
//     with bounded attempts; ERROR UNVERIFIED_SOURCE re-runs the handshake and retries, THROTTLED
//     backs off and retries, NOT_PRIMARY switches to the primary named in the reply.
//   - Periodic HEARTBEATs that always echo the latest cookie the server sent.
//
// Not thread-safe: one thread owns a Connection and everything attached to it (Producer,
// StreamConsumer, WorkConsumer), which must be destroyed before it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "protocol/codec.h"
#include "protocol/wire.h"

namespace sluice::client {

// Monotonic nanoseconds (steady clock). Timers inside the client use this scale.
using MonoNs = int64_t;
inline constexpr MonoNs kNever = INT64_MAX;
MonoNs NowNs();
inline MonoNs ToNs(absl::Duration d) { return absl::ToInt64Nanoseconds(d); }

// $SLUICE_SERVER if set and not empty, else "198.18.0.1:7411".
std::string DefaultServer();

struct ConnectionOptions {
  // "host:port": an IPv4 literal or a name resolved with getaddrinfo. Default: DefaultServer().
  // A comma-separated list names the boxes of a replicated pair ("primary:7411,standby:7411"):
  // Connect() takes the first that answers, and a server that answers nothing for
  // failover_after is left for the next one in the list (a dead primary sends no NOT_PRIMARY; the
  // standby does, and becomes the primary once promoted).
  std::string server = DefaultServer();
  // Silence after which the connection moves to the next server of a list. Default 3 s (three
  // heartbeat intervals: a live server answers each heartbeat).
  absl::Duration failover_after = absl::Seconds(3);
  // Client id stamped in every frame header; 0 = a random nonzero id chosen at Connect().
  uint64_t client_id = 0;
  // Largest datagram this client sends and asks the server to send (RECEIVE/FETCH
  // max_frame_bytes). Default 1472: the UDP payload of a 1500-byte MTU path. 512..65507.
  size_t max_frame_bytes = protocol::kDefaultFrameBytes;
  // Connect(): time allowed for the whole cookie handshake. Default 3 s.
  absl::Duration connect_timeout = absl::Seconds(3);
  // First retransmission timeout of a request with no reply; doubles per attempt up to
  // max_retransmit_interval. Default 200 ms (a LAN round trip is far below).
  absl::Duration retransmit_interval = absl::Milliseconds(200);
  absl::Duration max_retransmit_interval = absl::Seconds(2);
  // Attempts (first send included) before a request fails with DEADLINE_EXCEEDED. Default 5.
  int max_attempts = 5;
  // Period of HEARTBEATs (which echo the server's latest cookie). Default 1 s.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Follow NOT_PRIMARY redirects to the primary named in the reply. Default true.
  bool follow_redirects = true;
  // SO_RCVBUF / SO_SNDBUF; 0 = leave the kernel default. Default 4 MiB.
  int socket_buffer_bytes = 4 << 20;
  // Datagrams per sendmmsg / recvmmsg call. Default 32.
  int batch_datagrams = 32;
};

struct ConnectionStats {
  uint64_t datagrams_sent = 0;
  uint64_t datagrams_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t send_dropped = 0;       // socket buffer full (EAGAIN) or send error: left to retransmit
  uint64_t malformed_received = 0; // datagrams that failed DecodeFrame, or unroutable bodies
  uint64_t unmatched = 0;          // replies for no pending request (late duplicates)
  uint64_t retransmits = 0;        // Call() retransmissions
  uint64_t heartbeats_sent = 0;
  uint64_t cookie_changes = 0;
  uint64_t redirects = 0;
  uint64_t failovers = 0;          // moves to the next server of a list after its silence
  uint64_t unverified_errors = 0;  // ERROR UNVERIFIED_SOURCE received
};

// What LOOKUP tells about a queue.
struct QueueInfo {
  std::string name;
  uint32_t queue_id = 0;
  uint16_t partitions = 0;
  protocol::QueueType type = protocol::QueueType::kWorkQueue;
  uint32_t max_message_bytes = 0;
};

// Something attached to a Connection that receives routed frames and has timers: Producer,
// StreamConsumer, WorkConsumer.
class Endpoint {
 public:
  virtual ~Endpoint() = default;
  // A frame routed to this endpoint. Views into it are valid only during the call.
  virtual void OnFrame(const protocol::FrameView& frame) = 0;
  // Runs timers due at `now`; returns when it wants to be called next (kNever: no timer). Called
  // on every Poll() pass, so work queued outside Poll (e.g. Producer::Send) is picked up.
  virtual MonoNs OnTimer(MonoNs now) = 0;
};

struct CallOptions {
  // First attempt's timeout; 0 = ConnectionOptions::retransmit_interval. Doubles per attempt.
  absl::Duration attempt_timeout = absl::ZeroDuration();
  // Attempts before giving up; 0 = ConnectionOptions::max_attempts.
  int max_attempts = 0;
  // Time the server may hold the request (RECEIVE long poll): added to every attempt's timeout.
  absl::Duration server_wait = absl::ZeroDuration();
};

// Gets each reply frame of a Call (ERROR frames included, except those the connection handles:
// UNVERIFIED_SOURCE, NOT_PRIMARY, THROTTLED while attempts remain) and returns true when the
// request is complete (false: more frames expected, e.g. kFlagMore). Called once with
// reply == nullptr and a non-OK status when the request timed out or was cancelled by the
// connection's destruction; a reply that completed it is never followed by that call.
using ReplyHandler =
    absl::AnyInvocable<bool(const protocol::FrameView* reply, const absl::Status& status)>;

class Connection {
 public:
  // Opens the socket and completes the cookie handshake within options.connect_timeout.
  // UNAVAILABLE when the server does not answer (exit code 3 in the CLI).
  static absl::StatusOr<std::unique_ptr<Connection>> Connect(ConnectionOptions options);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One pass of the I/O loop: flushes queued datagrams, waits up to `timeout` (0 = do not wait)
  // for a datagram or a due timer, then receives, dispatches and runs timers. Non-OK only for a
  // broken socket.
  absl::Status Poll(absl::Duration timeout);
  // Polls until done() or `timeout` passes (DEADLINE_EXCEEDED then). done() is checked first.
  absl::Status PollUntil(absl::FunctionRef<bool()> done, absl::Duration timeout);

  // LOOKUP(name): the queue's id, type, partitions and max message size. Cached per connection.
  // NOT_FOUND with "UNKNOWN_QUEUE: ..." when there is no such queue.
  absl::StatusOr<QueueInfo> Lookup(std::string_view queue, absl::Duration timeout = absl::Seconds(3));
  // A HEARTBEAT round trip.
  absl::StatusOr<absl::Duration> Ping(absl::Duration timeout = absl::Seconds(3));

  uint64_t client_id() const { return client_id_; }
  uint64_t cookie() const { return cookie_; }
  // True once the server answered a HEARTBEAT that echoed its cookie.
  bool verified() const { return verified_; }
  const std::string& server() const { return server_; }
  const ConnectionOptions& options() const { return options_; }
  const ConnectionStats& stats() const { return stats_; }

  // ---- building blocks for Producer, StreamConsumer, WorkConsumer --------------------------------

  uint64_t NextRequestId() { return next_request_id_++; }
  protocol::FrameIds Ids(uint64_t request_id, uint16_t flags = 0) const {
    return protocol::FrameIds{client_id_, request_id, flags};
  }
  // A buffer of max_frame_bytes to encode one frame in before Send()/Call() copy it.
  std::span<std::byte> scratch() { return scratch_; }
  // Queues one datagram (copied) for the next flush; fire and forget.
  void Send(std::span<const std::byte> frame);
  // Sends what is queued now (Poll() does it too).
  void Flush() { FlushTx(); }
  // Sends a request (copied; its request id is read from the header) and retransmits it until
  // the handler says it is complete, or fails it after the attempts (see ReplyHandler).
  void Call(std::span<const std::byte> frame, const CallOptions& options, ReplyHandler on_reply);
  // Forgets a pending Call without running its handler (an endpoint going away).
  void Cancel(uint64_t request_id);

  // Routes: frames with this request id / ACKs for this producer id / DELIVERs for this
  // subscription id go to the endpoint. Calls take precedence for their own request ids.
  void Route(uint64_t request_id, Endpoint* e) { routes_[request_id] = e; }
  void Unroute(uint64_t request_id) { routes_.erase(request_id); }
  void RouteAcks(uint64_t producer_id, Endpoint* e) { ack_routes_[producer_id] = e; }
  void UnrouteAcks(uint64_t producer_id) { ack_routes_.erase(producer_id); }
  void RouteDeliveries(uint64_t subscription_id, Endpoint* e) { deliver_routes_[subscription_id] = e; }
  void UnrouteDeliveries(uint64_t subscription_id) { deliver_routes_.erase(subscription_id); }
  // Endpoints whose OnTimer runs every Poll pass.
  void AddEndpoint(Endpoint* e);
  void RemoveEndpoint(Endpoint* e);

  // Handles what every request can get back: UNVERIFIED_SOURCE (redo the handshake) and
  // NOT_PRIMARY (switch servers). Endpoints call it for ERROR frames routed to them; the
  // connection calls it for Call() replies.
  void OnServerError(const protocol::ErrorReply& e);

 private:
  struct PendingCall;
  explicit Connection(ConnectionOptions options);
  absl::Status Open();
  absl::Status Handshake();
  void SendHeartbeat(uint64_t request_id);
  void FlushTx();
  int ReceiveBatch();
  void Dispatch(std::span<const std::byte> datagram);
  void DispatchCall(PendingCall* call, const protocol::FrameView& f);
  void OnHeartbeat(const protocol::FrameView& f);
  MonoNs RunTimers(MonoNs now);
  MonoNs RunCallTimers(MonoNs now);
  void FailCall(uint64_t request_id, const absl::Status& s);
  void Redirect(uint32_t ipv4, uint16_t port);
  bool SwitchTo(const sockaddr_in& to);
  void FailOver(MonoNs now);

  ConnectionOptions options_;
  std::string server_;
  // The servers of a list (one entry without a list), and the one in use; a server left for its
  // silence is not redirected to again until `silent_until_` (the standby names the dead
  // primary until it is promoted itself).
  std::vector<std::string> servers_;
  size_t server_index_ = 0;
  MonoNs last_failover_ = 0;
  sockaddr_in silent_addr_{};
  MonoNs silent_until_ = 0;
  sockaddr_in addr_{};
  int fd_ = -1;
  uint64_t client_id_ = 0;
  uint64_t next_request_id_ = 1;
  uint64_t cookie_ = 0;
  bool verified_ = false;
  bool in_poll_ = false;
  int last_socket_errno_ = 0;
  MonoNs next_heartbeat_ = 0;
  MonoNs last_rx_ = 0;
  bool handshaking_ = false;           // inside Connect(): no periodic heartbeats, no auto-echo
  uint64_t last_echo_request_id_ = 0; // last HEARTBEAT sent with a cookie: its reply = verified

  // Transmit queue: copies of datagrams, flushed with sendmmsg.
  std::vector<std::vector<std::byte>> tx_bufs_;
  std::vector<size_t> tx_lens_;
  size_t tx_count_ = 0;
  // Receive batch.
  std::vector<std::byte> rx_buf_;
  size_t rx_slot_bytes_ = 0;
  std::vector<mmsghdr> rx_msgs_;
  std::vector<iovec> rx_iovs_;

  std::vector<std::byte> scratch_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<PendingCall>> calls_;
  std::vector<std::unique_ptr<PendingCall>> call_pool_;
  std::vector<uint64_t> due_;  // reused by RunCallTimers
  absl::flat_hash_map<uint64_t, Endpoint*> routes_;
  absl::flat_hash_map<uint64_t, Endpoint*> ack_routes_;
  absl::flat_hash_map<uint64_t, Endpoint*> deliver_routes_;
  std::vector<Endpoint*> endpoints_;
  absl::flat_hash_map<std::string, QueueInfo> lookups_;
  ConnectionStats stats_;
};

// Parses "a.b.c.d:port" or "host:port" (getaddrinfo, IPv4).
absl::StatusOr<sockaddr_in> ResolveServer(std::string_view server);

}  // namespace sluice::client
