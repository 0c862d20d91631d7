// Redrive: moves dead letters from a dead-letter queue back to the queue they came from (or to
// another queue), the way an operator does once the consumer's bug is fixed.
//
//   auto r = Redrive(conn, "jobs-dlq", {.max = 100});   // back to each message's source queue
//
// A dead letter carries the headers the server added when it moved it (docs/protocol.md §10.1):
// sluice-dlq-source-queue / -source-partition / -reason / ... The redrive leases a batch from the
// dead-letter queue, re-produces each message to its target with its original attributes (key,
// application headers, group id, reply-to, correlation id, priority, TTL, payload; the
// sluice-dlq-* headers removed, the dedup id replaced by one naming the dead letter,
// "sluice-redrive:<dlq>:<partition>:<offset>", so that neither the dedup window of the original id
// nor a target's content_dedup swallows it), and deletes it from the dead-letter queue only once
// the target acknowledged it. A crash in between leaves the dead letter leased: it comes back
// after the lease and is moved again (at-least-once; within the target's dedup window the id
// makes the second move a DUPLICATE). A message with no target (no --to, no source header)
// stays in the DLQ.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/connection.h"

namespace sluice::client {

struct RedriveOptions {
  std::string to;       // target queue; empty = each message's sluice-dlq-source-queue header
  uint64_t max = 0;     // at most this many messages; 0 = until the DLQ has none visible
  uint16_t batch = 32;  // messages leased per RECEIVE
  absl::Duration visibility = absl::Seconds(30);  // lease on what is being moved
  absl::Duration timeout = absl::Seconds(10);     // per batch: acknowledgements from the target
};

struct RedriveResult {
  uint64_t moved = 0;      // appended to the target and deleted from the DLQ
  uint64_t no_target = 0;  // left in the DLQ: no --to and no source header
  uint64_t failed = 0;     // the target refused it (left in the DLQ, visible after the lease)
};

// NOT_FOUND / WRONG_QUEUE_TYPE for a DLQ or target that is not a work queue... as the requests
// report them; per-message failures are counted in the result, the first one's Status in
// `first_error` when not null.
absl::StatusOr<RedriveResult> Redrive(Connection& conn, std::string_view dlq,
                                      const RedriveOptions& options,
                                      absl::Status* first_error = nullptr);

}  // namespace sluice::client
