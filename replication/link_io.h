// What the pure replication core needs from its shell: somewhere to put outgoing datagrams.
// The DPDK shell hands out mbuf data rooms (IPv4/UDP headers in front); the kernel-UDP shell a
// slot of its sendmmsg array; tests a simulated link.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice::replication {

class LinkOutput {
 public:
  // A buffer for one datagram of at most max_datagram_bytes; empty when none is available now
  // (the caller stops sending this pass and tries again on the next).
  virtual std::span<std::byte> Acquire() = 0;
  // The buffer from the last Acquire holds a datagram of `bytes`: send it. Fire and forget.
  virtual void Send(size_t bytes) = 0;

 protected:
  ~LinkOutput() = default;
};

// The key of a partition in the core's tables.
inline constexpr uint64_t PartitionKey(uint32_t queue, uint32_t partition) {
  return (uint64_t{queue} << 32) | partition;
}

// Per-link counters (plain integers: one thread owns a link; the shell copies them out).
struct LinkCounters {
  uint64_t rx_datagrams = 0;
  uint64_t rx_malformed = 0;      // failed DecodeLink (any reason)
  uint64_t rx_wrong_role = 0;     // a primary's message at a primary, a standby's at a standby
  uint64_t rx_stale_epoch = 0;    // refused: epoch older than ours
  uint64_t rx_unknown_partition = 0;
  uint64_t rx_shape_mismatch = 0;  // a HELLO of another channel or layout shape (refused)
  uint64_t tx_datagrams = 0;
  uint64_t tx_no_buffer = 0;      // Acquire gave nothing
  uint64_t hellos_sent = 0;
  uint64_t hellos_received = 0;
  uint64_t heartbeats_sent = 0;
  // primary
  uint64_t batches_sent = 0;      // first transmissions
  uint64_t batches_resent = 0;    // retransmissions (NAK, timeout, catch-up restarts)
  uint64_t fragments_sent = 0;
  uint64_t naks_received = 0;
  uint64_t timeouts = 0;          // retransmission timer fired
  uint64_t ring_evictions = 0;    // unacked batches dropped from memory (read back from the log)
  uint64_t backfill_batches = 0;  // batches sent from the log
  uint64_t peer_lost = 0;         // peer silent past peer_timeout
  uint64_t fenced = 0;            // saw a higher epoch: stopped being primary
  uint64_t standby_behind_start = 0;  // the standby needed an offset retention had removed:
                                      // it restarts that partition's log at our start
  // standby
  uint64_t batches_applied = 0;
  uint64_t duplicates = 0;        // batches (or fragments of them) below what we hold
  uint64_t gaps = 0;              // fragments beyond what we expect
  uint64_t naks_sent = 0;
  uint64_t acks_sent = 0;
  uint64_t bad_batches = 0;       // reassembled batch failed verification (CRC, header, ...)
  uint64_t apply_throttled = 0;   // storage could not take the batch now (dropped, resent later)
  uint64_t divergent = 0;         // our log holds a batch the primary's does not (see Rejoin)
  uint64_t behind_start_restarts = 0;  // a log ending below the primary's start restarted
                                       // empty at that start (docs/replication.md §4)
  // ack-log replication (replication/ack_stream.h)
  uint64_t acklog_records_sent = 0;      // primary: records sent for the first time
  uint64_t acklog_records_resent = 0;    // primary: retransmitted (gap, timeout, resumed session)
  uint64_t acklog_datagrams_sent = 0;    // primary: ACKLOG datagrams (both of the above)
  uint64_t acklog_timeouts = 0;          // primary: no progress for the retransmission timeout
  uint64_t acklog_snapshots_sent = 0;    // primary: generations started with a snapshot
  uint64_t acklog_overflows = 0;         // primary: ring overwrote records the standby lacked
  uint64_t acklog_records_applied = 0;   // standby: records written to its ack logs
  uint64_t acklog_snapshots_applied = 0; // standby: ack logs replaced by a primary's snapshot
  uint64_t acklog_dropped = 0;           // standby: records not taken (duplicate, gap, stale
                                         // generation, pending ring full): resent
  uint64_t acklog_positions_sent = 0;    // standby: ACKLOG_ACK datagrams
};

}  // namespace sluice::replication
