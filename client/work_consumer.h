// WorkConsumer: point-to-point receive from a work queue, with leases.
//
//   auto wc = WorkConsumer::Create(conn, "jobs");
//   auto batch = wc->ReceiveSync({.max_messages = 10, .wait = absl::Seconds(5)});
//   for (const OwnedMessage& m : *batch) { work(m->payload); receipts.push_back(ReceiptOf(*m)); }
//   auto results = wc->DeleteSync(receipts);   // one Status per receipt
//
// RECEIVE leases up to max_messages for the visibility timeout (the queue's default if none is
// given), long-polling up to `wait` when nothing is visible; the reply may span several MESSAGES
// datagrams. DELETE / NACK (optionally delayed) / EXTEND name leases by Receipt and get one
// outcome per receipt: STALE_RECEIPT (the lease expired and the message went to another
// receiver) and UNKNOWN_RECEIPT come back as Statuses with queue, partition and receipt in them.
//
// Async forms run their callback once (from the connection's Poll()); the Sync forms poll until
// it ran. Requests are retransmitted when unanswered; a retransmitted RECEIVE may lease more
// messages (at-least-once: they come back after their visibility timeout).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/connection.h"
#include "client/message.h"

namespace sluice::client {

struct ReceiveOptions {
  uint16_t max_messages = 1;                  // 1..1024
  std::optional<absl::Duration> visibility;   // lease length; none = the queue's default
  // Long poll, up to 60 s (0 = answer at once); none = the queue's receive_wait_ms (the server
  // applies it, so the client allows for the attribute's maximum, 20 s, before retransmitting).
  std::optional<absl::Duration> wait;
  std::optional<uint16_t> partition;          // none = any partition (the server picks)
};

// Called once per MESSAGES datagram of the reply (`last` on the final one), or once with an
// error. The messages' views are valid during the call only.
using ReceiveCallback = absl::AnyInvocable<void(
    const absl::Status& status, std::span<const ReceivedMessage> messages, bool last)>;
// One outcome per receipt, in the order given; `status` is not OK when the request as a whole
// failed (then every item carries that error too).
using ReceiptCallback = absl::AnyInvocable<void(const absl::Status& status,
                                                std::span<const absl::Status> per_receipt)>;

class WorkConsumer {
 public:
  static absl::StatusOr<std::unique_ptr<WorkConsumer>> Create(
      Connection& conn, std::string_view queue, absl::Duration timeout = absl::Seconds(3));
  WorkConsumer(Connection& conn, QueueInfo queue);
  ~WorkConsumer();  // cancels what is outstanding (its callbacks do not run)
  WorkConsumer(const WorkConsumer&) = delete;
  WorkConsumer& operator=(const WorkConsumer&) = delete;

  void Receive(const ReceiveOptions& options, ReceiveCallback done);
  void Delete(std::span<const Receipt> receipts, ReceiptCallback done);
  void Nack(std::span<const Receipt> receipts, absl::Duration delay, ReceiptCallback done);
  void Extend(std::span<const Receipt> receipts, absl::Duration visibility, ReceiptCallback done);

  // Blocking forms: poll the connection until the reply (bounded by the retransmissions).
  absl::StatusOr<std::vector<OwnedMessage>> ReceiveSync(const ReceiveOptions& options);
  absl::StatusOr<std::vector<absl::Status>> DeleteSync(std::span<const Receipt> receipts);
  absl::StatusOr<std::vector<absl::Status>> NackSync(std::span<const Receipt> receipts,
                                                     absl::Duration delay);
  absl::StatusOr<std::vector<absl::Status>> ExtendSync(std::span<const Receipt> receipts,
                                                       absl::Duration visibility);

  const QueueInfo& queue() const { return queue_; }
  size_t outstanding() const { return outstanding_.size(); }

 private:
  void ReceiptOps(protocol::FrameType type, std::span<const Receipt> receipts, uint32_t ms,
                  ReceiptCallback done);
  absl::StatusOr<std::vector<absl::Status>> ReceiptOpsSync(protocol::FrameType type,
                                                           std::span<const Receipt> receipts,
                                                           uint32_t ms);

  Connection& conn_;
  QueueInfo queue_;
  absl::flat_hash_set<uint64_t> outstanding_;  // request ids of pending calls
  std::vector<ReceivedMessage> batch_;         // reused by Receive
  std::vector<OwnedMessage> assembled_;        // reassembled fragments of the current batch
  DeliveryAssembler assembler_;
};

}  // namespace sluice::client
