// Request/reply over sluice (docs/protocol.md §11.2).
//
//   auto rq = Requester::Create(conn);
//   auto reply = (*rq)->Request("prices", AsBytes("GET AAPL"), absl::Seconds(2));
//   if (reply.ok()) use((*reply)->payload_view());
//
//   auto rs = Responder::Create(conn, "prices", [](const ReceivedMessage& m) -> std::string {
//     return Quote(m.payload_view());
//   });
//   while (running) (*rs)->Serve(absl::Seconds(1));
//
// The requester opens a temporary inbox on the server (OPEN_INBOX; a random 64-bit id, its
// address verified) and refreshes it every heartbeat interval; the server forgets it three
// intervals after the requester goes away, so nothing is left behind. A request is an ordinary
// message to the service's work queue with reply_to = "inbox:<id>" and a unique correlation id.
// The responder leases requests, computes the answer, sends it with REPLY (the server pushes it
// to the inbox's owner as a DELIVER) and deletes the request once the server took the reply; a
// request whose requester is gone is deleted without an answer.
//
// Delivery: a request is at-least-once (a responder that dies mid-way leaves it leased; it is
// handed out again after the lease), and a reply may be lost in the network: the requester then
// sees DEADLINE_EXCEEDED. Requests should be safe to repeat; the requester ignores late or
// duplicate replies (by correlation id).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "client/message.h"
#include "client/producer.h"
#include "client/work_consumer.h"

namespace sluice::client {

struct RequesterOptions {
  uint64_t inbox_id = 0;  // 0 = random
  // OPEN_INBOX refresh period; the server drops an inbox after three without. Default 1 s.
  absl::Duration refresh_interval = absl::Seconds(1);
  absl::Duration open_timeout = absl::Seconds(3);
};

struct RequesterStats {
  uint64_t requests = 0;
  uint64_t replies = 0;
  uint64_t timeouts = 0;
  uint64_t unmatched = 0;  // replies for no pending request (late, duplicate)
  uint64_t refreshes = 0;
};

// Runs once per request: the reply (views valid during the call), or the error.
using ReplyCallback = absl::AnyInvocable<void(absl::StatusOr<const ReceivedMessage*> reply)>;

class Requester final : public Endpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Requester>> Create(Connection& conn,
                                                           RequesterOptions options = {});
  ~Requester() override;  // closes the inbox (fire and forget); pending callbacks do not run
  Requester(const Requester&) = delete;
  Requester& operator=(const Requester&) = delete;

  // Sends `payload` (with `headers`) to work queue `queue` and calls `done` with the reply, or
  // with DEADLINE_EXCEEDED when none came within `deadline`, from the connection's Poll().
  absl::Status RequestAsync(std::string_view queue, std::span<const std::byte> payload,
                            absl::Duration deadline, ReplyCallback done,
                            std::span<const protocol::Header> headers = {});
  // Blocking form: polls the connection until the reply or the deadline.
  absl::StatusOr<OwnedMessage> Request(std::string_view queue, std::span<const std::byte> payload,
                                       absl::Duration deadline,
                                       std::span<const protocol::Header> headers = {});

  uint64_t inbox_id() const { return inbox_id_; }
  const std::string& reply_to() const { return reply_to_; }
  size_t pending() const { return pending_.size(); }
  const RequesterStats& stats() const { return stats_; }

  // Endpoint
  void OnFrame(const protocol::FrameView& frame) override;
  MonoNs OnTimer(MonoNs now) override;

 private:
  struct Pending {
    ReplyCallback done;
    MonoNs deadline = 0;
  };
  Requester(Connection& conn, RequesterOptions options);
  absl::Status Open();
  void SendOpen(protocol::InboxOp op);
  Producer* ProducerFor(std::string_view queue, absl::Status* error);

  Connection& conn_;
  RequesterOptions options_;
  uint64_t inbox_id_ = 0;
  std::string reply_to_;
  uint64_t next_correlation_ = 0;
  std::map<std::string, Pending, std::less<>> pending_;  // by correlation id
  std::map<std::string, std::unique_ptr<Producer>, std::less<>> producers_;
  DeliveryAssembler assembler_;
  MonoNs next_refresh_ = 0;
  uint64_t refresh_request_id_ = 0;  // every refresh reuses it: its RESULTs route here
  RequesterStats stats_;
};

// Computes the reply payload for a request; an error status NACKs the request (it is handed out
// again after `retry_delay`).
using RequestHandler =
    absl::AnyInvocable<absl::StatusOr<std::string>(const ReceivedMessage& request)>;

struct ResponderOptions {
  uint16_t batch = 16;                              // requests leased per RECEIVE
  absl::Duration visibility = absl::Seconds(30);    // lease while a request is handled
  absl::Duration retry_delay = absl::Seconds(1);    // NACK delay after a handler error
  std::optional<uint16_t> partition;                // none = any partition
};

struct ResponderStats {
  uint64_t requests = 0;   // handled
  uint64_t replied = 0;    // replies the server took
  uint64_t orphaned = 0;   // requester gone (or no reply_to): deleted without a reply
  uint64_t failed = 0;     // handler errors (nacked) and replies the server refused
};

class Responder {
 public:
  static absl::StatusOr<std::unique_ptr<Responder>> Create(Connection& conn,
                                                           std::string_view queue,
                                                           RequestHandler handler,
                                                           ResponderOptions options = {});
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  // One round: lease up to `batch` requests (long-polling up to `wait`), answer each, delete the
  // answered ones. Returns how many requests it handled.
  absl::StatusOr<size_t> Serve(absl::Duration wait);

  const ResponderStats& stats() const { return stats_; }

 private:
  Responder(Connection& conn, std::unique_ptr<WorkConsumer> work, RequestHandler handler,
            ResponderOptions options);
  // REPLY to `inbox`; the server's verdict (OK, UNKNOWN_QUEUE when the inbox is gone, ...).
  absl::StatusOr<Errc> SendReply(uint64_t inbox, const ReceivedMessage& request,
                                 std::string_view payload);

  Connection& conn_;
  std::unique_ptr<WorkConsumer> work_;
  RequestHandler handler_;
  ResponderOptions options_;
  ResponderStats stats_;
};

}  // namespace sluice::client
