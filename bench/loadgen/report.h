// What one run of the load generator measured, printed as text and written as JSON. Latencies are
// recorded in TSC cycles and converted to nanoseconds here.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "bench/loadgen/histogram.h"
#include "bench/loadgen/options.h"

namespace sluice::bench {

struct Result {
  // Measured interval (after warm-up), seconds.
  double measured_s = 0;

  // Frames and messages. "ok" = acknowledged OK or DUPLICATE (a resend of something appended).
  uint64_t frames_sent = 0;        // whole run, including warm-up and resends
  uint64_t messages_sent = 0;
  uint64_t frames_received = 0;    // datagrams that came back (acks, echoes, flood returns)
  uint64_t measured_frames_sent = 0;     // sent inside the measured interval
  uint64_t measured_frames_received = 0; // received inside it
  uint64_t measured_messages_ok = 0;     // acked OK inside it (the throughput figure)
  uint64_t messages_ok = 0;        // whole run
  uint64_t ack_ranges = 0;
  uint64_t ack_frames = 0;

  // Trouble (a clean benchmark run has zeros here, or says why not).
  uint64_t throttled = 0;          // messages answered THROTTLED (backed off and resent)
  uint64_t out_of_order = 0;       // answered OUT_OF_ORDER_SEQUENCE (resent from the gap)
  uint64_t other_errors = 0;       // any other errc in an ack range
  uint64_t error_frames = 0;       // ERROR frames received
  uint16_t last_error = 0;         // errc of the last error seen
  uint64_t timeouts = 0;           // streams that saw no ack progress for --ack-timeout-ms
  uint64_t lost = 0;               // messages/echoes given up on at a timeout or at the end
  uint64_t unmatched = 0;          // replies that matched nothing we sent
  uint64_t stale_acks = 0;         // acked sequences not outstanding (acked before, or a
                                   // DUPLICATE of a resend answered already): not timed
  uint64_t tx_refused = 0;         // frames the TX queue did not take at once (produce: retried
                                   // until taken; echo/flood: dropped)
  uint64_t late_sends = 0;         // open loop: frames sent > 100 us after their scheduled time
  uint64_t no_mbuf = 0;

  // CPU time the load loop got during the measured interval / its length: ~1.0 when it had its
  // CPU to itself; less means other work shared it and the figures are low (noisy machine).
  double cpu_share = 0;

  LogLinearHistogram latency;      // TSC cycles, messages sent inside the measured interval
  // --deliver: produce -> deliver, from the TSC in each message's payload to its DELIVER.
  LogLinearHistogram deliver_latency;
  uint64_t delivered = 0;
  uint64_t measured_delivered = 0;
  uint64_t deliver_gaps = 0;       // an offset not following the previous one (loss or reorder)
  uint64_t tsc_hz = 0;
  bool aborted = false;            // stopped early (fatal error from the server)
  std::string abort_reason;
};

// Human-readable summary on stdout.
void PrintResult(const Options& o, const Result& r);
// JSON document at o.json. False (and a message on stderr) if it cannot be written.
bool WriteJson(const Options& o, const Result& r);

}  // namespace sluice::bench
