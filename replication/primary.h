// The primary's side of the replication link (docs/replication.md §3): one Streamer per
// replicated partition, and the PrimaryLink that owns them, talks to one standby and keeps the
// link alive. Pure C++: no DPDK, no io_uring, no clock (time is passed in). One thread owns it.
//
// Data path (per loop pass, no allocation: every buffer is sized when a partition is added):
//   link.Offer(q, p, bytes, base, end)    a batch storage took (its exact on-disk bytes)
//   link.OnDatagram(bytes, now)           what came from the standby (HELLO, ACK, NAK, HEARTBEAT)
//   link.Poll(now, out)                   sends what is due: batches within the window,
//                                         retransmissions, HELLO/HEARTBEAT; returns work done
//   link.ForEachBackfill(fn)              batches the standby needs that memory no longer holds:
//   link.Backfill(q, p, bytes, base, end)   the shell reads them from the log and hands them in
//   link.Replicated(q, p, now, &end)      the standby's durable end, if it is in sync (sync queues)
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "replication/ack_stream.h"
#include "replication/link_format.h"
#include "replication/link_io.h"

namespace sluice::replication {

struct StreamerConfig {
  uint32_t ring_bytes = 4u << 20;      // copies of batches the standby has not acked yet
  uint32_t ring_batches = 4096;        // entries in that ring
  uint32_t window_bytes = 2u << 20;    // flow window: bytes sent and not yet acked
  uint32_t window_batches = 512;       // ... and batches
  uint32_t max_batch_bytes = (1u << 20) + 4096;  // largest batch (backfill slot)
  uint64_t retransmit_ns = 50'000'000; // no ack progress this long: resend from the acked end
};

// One partition's stream to the standby. Offsets: acked_end <= next_send <= offered_end.
class Streamer {
 public:
  Streamer(uint32_t queue, uint32_t partition, uint64_t log_end, uint64_t epoch_start,
           const StreamerConfig& config);

  // A batch of the primary's log, in its on-disk form (header + payload, no padding). Batches
  // come in offset order; one below offered_end is ignored (storage offers a batch again when it
  // was throttled). Copied into the ring; the oldest entries go when it is full (they are read
  // back from the log if the standby still needs them).
  void Offer(std::span<const std::byte> bytes, uint64_t base, uint64_t end, uint64_t now_ns,
             LinkCounters& c);
  // Batches [base, end) the log holds but memory does not (a dedicated replication lcore's
  // hand-off ring was full: docs/replication.md §1): offered without their bytes, read back
  // from the log when the standby needs them, as a batch too large for the ring.
  void OfferFromLog(uint64_t base, uint64_t end, uint64_t now_ns, LinkCounters& c);
  // The standby stated its durable end (HELLO): stream from there.
  void Connect(uint64_t stated_end, uint64_t now_ns);
  void Disconnect();
  void OnAck(uint64_t durable_end, uint64_t now_ns);
  void OnNak(uint64_t from, uint64_t now_ns, LinkCounters& c);

  // Sends fragments of due batches through `emit` (false: no buffer, stop) while the window and
  // `*budget_bytes` allow. Returns fragments sent.
  uint32_t Poll(uint64_t now_ns, uint32_t* budget_bytes, uint32_t max_fragment_bytes,
                absl::FunctionRef<bool(const BatchFragmentHeader&, std::span<const std::byte>)> emit,
                LinkCounters& c);

  // The standby needs the batch starting at *from, which is not in memory.
  bool WantsBackfill(uint64_t* from) const;
  // The catch-up read of `from` found it below the log's first segment (retention removed it):
  // the standby restarts its log at the primary's start (docs/replication.md §4 "Behind the
  // start"); until its ack says so, nothing more is read for it. True when newly so (the shell
  // logs it once per occurrence).
  bool BehindStart(uint64_t from);
  bool behind_start() const { return behind_start_; }
  // Ignored unless WantsBackfill still names `base` (a late answer of an asynchronous read).
  void Backfill(std::span<const std::byte> bytes, uint64_t base, uint64_t end);

  uint32_t queue() const { return queue_; }
  uint32_t partition() const { return partition_; }
  bool connected() const { return connected_; }
  uint64_t acked_end() const { return acked_end_; }
  uint64_t next_send() const { return next_send_; }
  uint64_t offered_end() const { return offered_end_; }
  uint64_t epoch_start() const { return epoch_start_; }
  // The first offset the primary's log still holds (after retention), told to the standby in
  // LOG_START so that it removes the same (docs/replication.md §4 "Retention").
  uint64_t log_start() const { return log_start_; }
  void set_log_start(uint64_t start) { log_start_ = start; }
  uint64_t ring_start() const;
  // Caught up: the standby acked everything the primary had when it connected (or since).
  bool caught_up() const { return caught_up_; }
  // Something offered has waited for the standby's ack longer than `bound_ns`.
  bool Lagging(uint64_t now_ns, uint64_t bound_ns) const {
    return acked_end_ < offered_end_ && now_ns > waiting_since_ns_ + bound_ns;
  }
  bool divergent() const { return divergent_; }

 private:
  struct Entry {
    uint64_t base;
    uint64_t end;
    uint32_t pos;
    uint32_t len;
  };
  struct Sent {
    uint64_t end;
    uint32_t len;
  };
  Entry& EntryAt(uint32_t i) { return entries_[(head_ + i) % entries_.size()]; }
  const Entry& EntryAt(uint32_t i) const { return entries_[(head_ + i) % entries_.size()]; }
  const Entry* FindEntry(uint64_t base) const;
  void PopHead();
  void GoBack(uint64_t from, uint64_t now_ns);
  void DropAcked();

  const uint32_t queue_;
  const uint32_t partition_;
  const uint64_t epoch_start_;
  const StreamerConfig config_;
  std::vector<std::byte> ring_;
  std::vector<Entry> entries_;
  uint32_t head_ = 0;
  uint32_t count_ = 0;
  uint32_t tail_pos_ = 0;
  std::vector<Sent> sent_;  // FIFO of batches in flight (window accounting)
  uint32_t sent_head_ = 0;
  uint32_t sent_count_ = 0;
  uint64_t inflight_bytes_ = 0;
  std::vector<std::byte> slot_;  // one backfilled batch
  uint64_t slot_base_ = 0;
  uint64_t slot_end_ = 0;
  uint32_t slot_len_ = 0;

  bool connected_ = false;
  bool caught_up_ = false;
  bool divergent_ = false;
  bool behind_start_ = false;   // waiting for the standby to restart its log at our start
  uint64_t catchup_target_ = 0;
  // The highest end sent in this session (from the standby's stated end on): an ack above it
  // names data we never sent it, i.e. the standby restarted its log at our start (§4 "Behind
  // the start"), and catching up starts again from there to our end at that moment.
  uint64_t session_high_ = 0;
  uint64_t acked_end_ = 0;
  uint64_t next_send_ = 0;
  uint64_t sent_high_ = 0;      // highest end ever sent (first sends vs resends)
  uint64_t offered_end_ = 0;
  uint64_t log_start_ = 0;
  uint32_t frag_pos_ = 0;       // bytes of the batch at next_send_ already sent
  uint64_t last_progress_ns_ = 0;
  uint64_t waiting_since_ns_ = 0;
  uint64_t last_nak_from_ = UINT64_MAX;
  uint64_t last_nak_ns_ = 0;
};

struct PrimaryConfig {
  uint64_t epoch = 1;
  uint64_t boot_id = 0;                  // distinct per process start
  ChannelShape shape;                    // this channel (a standby's HELLO must state the same)
  uint32_t client_ipv4 = 0;              // where clients reach this primary (host order), told
  uint16_t client_port = 0;              // to the standby for its NOT_PRIMARY redirects
  uint32_t max_datagram_bytes = 1472;    // UDP payload that fits the link MTU
  uint64_t heartbeat_ns = 10'000'000;
  uint64_t peer_timeout_ns = 500'000'000;  // standby silent this long: gone
  uint32_t pass_budget_bytes = 512u << 10;  // batch bytes sent per Poll (live + catch-up)
  StreamerConfig streamer;
  AckStreamConfig acks;
  uint32_t ack_datagrams_per_pass = 64;     // ACKLOG datagrams per Poll, over all partitions
  uint64_t log_start_interval_ns = 1'000'000'000;  // LOG_START to a connected standby
};

class PrimaryLink {
 public:
  explicit PrimaryLink(const PrimaryConfig& config);

  // Control path (allocates).
  // `epoch_start`: where this primary's epoch began in the partition's log (its log end when it
  // was promoted; 0 for a partition created since): a deposed primary that rejoins truncates
  // what it holds past it.
  void AddPartition(uint32_t queue, uint32_t partition, uint64_t log_end, uint64_t epoch_start = 0);
  void RemovePartition(uint32_t queue, uint32_t partition);
  bool Has(uint32_t queue, uint32_t partition) const;
  // Where the partition's log starts on this box now (the shell reads it from storage after
  // retention, about once a second): sent to the standby in LOG_START every
  // log_start_interval_ns while it is connected. Ignored for partitions not replicated.
  void SetLogStart(uint32_t queue, uint32_t partition, uint64_t start);

  // Data path.
  void OfferFromLog(uint32_t queue, uint32_t partition, uint64_t base, uint64_t end,
                    uint64_t now_ns);
  void Offer(uint32_t queue, uint32_t partition, std::span<const std::byte> bytes, uint64_t base,
             uint64_t end, uint64_t now_ns);
  void OnDatagram(std::span<const std::byte> datagram, uint64_t now_ns);
  uint32_t Poll(uint64_t now_ns, LinkOutput& out);
  void ForEachBackfill(absl::FunctionRef<void(uint32_t queue, uint32_t partition, uint64_t from)> fn) const;
  // The shell's catch-up read of `from` found it below the log's first segment: see
  // Streamer::BehindStart. True when newly so (counted in standby_behind_start).
  bool BehindStart(uint32_t queue, uint32_t partition, uint64_t from);
  void Backfill(uint32_t queue, uint32_t partition, std::span<const std::byte> bytes,
                uint64_t base, uint64_t end);
  // The standby's durable end of the partition, when the standby is connected, has caught up
  // and does not lag past `lag_bound_ns`; false otherwise (sync queues then answer
  // NOT_REPLICATED, or degrade where the queue allows it).
  bool Replicated(uint32_t queue, uint32_t partition, uint64_t now_ns, uint64_t lag_bound_ns,
                  uint64_t* end) const;

  // Ack-log replication (ack_stream.h). Data path: a record the primary just logged in the
  // partition's ack log (ignored for partitions not replicated).
  void OfferAck(uint32_t queue, uint32_t partition, const AckRecord& r);
  // Partitions whose standby needs a snapshot of the ack log; the shell reads it (flushed) and
  // hands it to SetAckSnapshot. Control path (rare).
  void ForEachAckSnapshot(absl::FunctionRef<void(uint32_t queue, uint32_t partition)> fn) const;
  void SetAckSnapshot(uint32_t queue, uint32_t partition, const storage::AckState& state);
  // The same for a state read off the lcore (AckSender::SetSnapshot with `live_base`, which
  // AckOffered gave when the log was flushed). False: not taken (no longer wanted, or the ring
  // lost records since: the partition is still listed by ForEachAckSnapshot, read it again).
  bool SetAckSnapshot(uint32_t queue, uint32_t partition, const storage::AckState& state,
                      uint64_t live_base);
  uint64_t AckOffered(uint32_t queue, uint32_t partition) const;
  const AckSender* FindAck(uint32_t queue, uint32_t partition) const;
  // Ack records of every partition the standby has not written to its ack logs (0: in step).
  uint64_t ack_lag() const;

  // Metadata replication: the queue catalog document the standby must hold (control path:
  // copied). Sent when it changes and when a standby (re)connects, again every second until the
  // standby acknowledges it.
  void SetCatalog(std::span<const std::byte> document);
  bool catalog_acked() const { return catalog_acked_; }

  bool connected() const { return connected_; }
  // A message with a higher epoch came: another box was promoted. From then on this link sends
  // nothing but HELLOs and the shell must stop taking writes (NOT_PRIMARY).
  bool fenced() const { return fenced_; }
  uint64_t epoch() const { return config_.epoch; }
  uint64_t higher_epoch() const { return higher_epoch_; }
  // A standby's HELLO stated another channel or layout shape: refused (never connects). The
  // last such shape, for the shell's error message.
  bool shape_mismatch() const { return shape_mismatch_; }
  const ChannelShape& peer_shape() const { return peer_shape_; }
  const LinkCounters& counters() const { return counters_; }
  const Streamer* Find(uint32_t queue, uint32_t partition) const;
  void ForEachStreamer(absl::FunctionRef<void(const Streamer&)> fn) const {
    for (const Streamer* s : order_) fn(*s);
  }

 private:
  Streamer* FindMut(uint32_t queue, uint32_t partition);
  void OnHello(const LinkMessage& m, uint64_t now_ns);
  void CloseHelloSession(uint64_t now_ns);
  bool hello_rx_open_ = false;  // parts of the standby's session-opening HELLO still to come

  PrimaryConfig config_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Streamer>> streamers_;
  std::vector<Streamer*> order_;  // round-robin order of Poll
  absl::flat_hash_map<uint64_t, std::unique_ptr<AckSender>> ack_senders_;
  std::vector<AckSender*> ack_order_;
  uint32_t ack_rr_ = 0;
  AckSender* FindAckMut(uint32_t queue, uint32_t partition);
  std::vector<HelloEntry> scratch_;
  uint32_t rr_ = 0;
  bool connected_ = false;
  bool fenced_ = false;
  bool hello_due_ = false;  // answer a (new) standby's HELLO with ours
  uint32_t SendCatalog(uint64_t now_ns, LinkOutput& out);
  uint32_t SendLogStarts(LinkOutput& out);
  std::vector<PartitionOffset> log_start_scratch_;
  uint64_t next_log_start_ns_ = 0;
  std::vector<std::byte> catalog_;
  uint64_t catalog_hash_ = 0;
  bool catalog_acked_ = true;
  uint32_t catalog_pos_ = 0;
  uint64_t next_catalog_ns_ = 0;
  uint64_t last_now_ns_ = 0;
  uint64_t higher_epoch_ = 0;
  bool shape_mismatch_ = false;
  ChannelShape peer_shape_{};
  uint64_t peer_boot_id_ = 0;
  uint64_t last_rx_ns_ = 0;
  uint64_t next_control_ns_ = 0;
  LinkCounters counters_;
};

}  // namespace sluice::replication
