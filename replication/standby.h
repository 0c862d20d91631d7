// The standby's side of the replication link (docs/replication.md §4): one Applier per partition
// reassembles the primary's batches, checks them (CRC, header, epoch, contiguity) and hands them
// to storage through a StandbySink; the StandbyLink owns the appliers, answers the primary with
// HELLO (its durable ends), cumulative ACKs and NAKs of gaps. Pure C++, time passed in, one
// thread owns it, nothing allocates after AddPartition.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "protocol/errc.h"
#include "replication/ack_stream.h"
#include "replication/link_format.h"
#include "replication/link_io.h"
#include "storage/batch_format.h"

namespace sluice::replication {

// Where verified batches go: the standby's own log, through the same storage code as the
// primary's (the shell), or a simulated log in tests.
// Ack records (AckSink) go to the same partition's ack log (storage/ack_log.h).
class StandbySink : public AckSink {
 public:
  // `batch`: the batch's exact on-disk bytes, padded with zeros to its stride; valid during the
  // call only. kOk: taken (it will be durable later: call StandbyLink::OnDurable); kThrottled:
  // not now (offered again on the next Poll); anything else: refused (counted, resent later).
  virtual Errc Apply(uint32_t queue, uint32_t partition, std::span<const std::byte> batch,
                     const storage::BatchHeader& header) = 0;

 protected:
  ~StandbySink() = default;
};

class Applier {
 public:
  static constexpr uint32_t kMaxFragments = 1024;
  Applier(uint32_t queue, uint32_t partition, uint64_t log_end, uint32_t max_batch_bytes,
          uint32_t align_bytes);

  enum class Result : uint8_t { kPartial, kApplied, kDuplicate, kGap, kBad, kThrottled, kDivergent };
  Result OnFragment(const LinkMessage& m, StandbySink& sink, LinkCounters& c);
  // Offers a verified batch the sink throttled again.
  Result RetryPending(StandbySink& sink, LinkCounters& c);
  void OnDurable(uint64_t end);
  // The primary's session restarted (its HELLO): drop a half-assembled batch.
  void ResetAssembly() { have_ = 0; pending_ = false; }
  // The shell cut the log back to `end` (a divergent tail): continue from there.
  void Truncated(uint64_t end);
  // The shell restarted the log empty at `start` (it ended below the primary's start): continue
  // from there.
  void Restarted(uint64_t start);
  // The primary's log starts past everything this partition took: it has no batch to send from
  // our end any more (retention removed it), so this log must restart at primary_start().
  bool BehindStart() const { return primary_start_ > expected_; }

  uint32_t queue() const { return queue_; }
  uint32_t partition() const { return partition_; }
  uint64_t expected() const { return expected_; }  // next offset to take (applied end)
  uint64_t durable() const { return durable_; }    // what is on our disk (acked to the primary)
  bool pending() const { return pending_; }
  // The first offset the primary's log still holds, from its last LOG_START (0: not stated, or
  // not by the primary of the current epoch). The standby removes nothing at or above it.
  uint64_t primary_start() const { return primary_start_; }
  void set_primary_start(uint64_t start) { primary_start_ = start; }
  // Where this partition's log may be cut from below (retention): the primary no longer holds
  // what lies under its start, and nothing not durable here is touched.
  uint64_t RetainFrom() const { return std::min(primary_start_, durable_); }
  bool ack_due = false;
  uint64_t last_nak_ns = 0;
  uint64_t last_nak_from = UINT64_MAX;

 private:
  Result Complete(StandbySink& sink, LinkCounters& c);

  const uint32_t queue_;
  const uint32_t partition_;
  const uint32_t align_;
  std::vector<std::byte> buf_;
  uint64_t bitmap_[kMaxFragments / 64] = {};
  uint64_t expected_;
  uint64_t durable_;
  uint64_t primary_start_ = 0;
  // The batch being assembled (its base is always expected_).
  uint64_t asm_end_ = 0;
  uint32_t asm_bytes_ = 0;
  uint32_t asm_unit_ = 0;
  uint32_t have_ = 0;  // fragments received (0: nothing in assembly)
  uint32_t total_ = 0;
  bool pending_ = false;  // assembled and verified, the sink throttled it
  uint32_t pending_stride_ = 0;
  storage::BatchHeader pending_header_{};
};

// The standby's durable end of a partition this channel does not own (0: unknown). Read from
// another lcore's published figure: an ack record waits until its data is durable there.
class DurableLookup {
 public:
  virtual uint64_t DurableEnd(uint32_t queue, uint32_t partition) const = 0;

 protected:
  ~DurableLookup() = default;
};

struct StandbyConfig {
  uint64_t epoch = 0;                    // highest epoch seen (persisted by the shell)
  uint64_t boot_id = 0;
  ChannelShape shape;                    // this channel (the primary's HELLO must state the same)
  // Durable ends of partitions other channels of this box own (a group commit logged in
  // partition 0's ack log names another partition): null when this channel owns them all.
  const DurableLookup* other_channels = nullptr;
  uint32_t max_datagram_bytes = 1472;
  uint64_t heartbeat_ns = 10'000'000;
  uint64_t peer_timeout_ns = 500'000'000;
  uint64_t nak_interval_ns = 2'000'000;  // at most one NAK per partition per interval
  uint32_t max_batch_bytes = (1u << 20) + 4096;
  uint32_t align_bytes = 4096;
  AckStreamConfig acks;
  uint64_t retention_interval_ns = 1'000'000'000;  // ForEachRetention: once per this, at most
};

class StandbyLink {
 public:
  explicit StandbyLink(const StandbyConfig& config);

  // Control path.
  void AddPartition(uint32_t queue, uint32_t partition, uint64_t log_end);
  void RemovePartition(uint32_t queue, uint32_t partition);

  // Data path.
  void OnDatagram(std::span<const std::byte> datagram, uint64_t now_ns, StandbySink& sink);
  // Storage made the partition durable up to `end`: acked on the next Poll.
  void OnDurable(uint32_t queue, uint32_t partition, uint64_t end);
  uint32_t Poll(uint64_t now_ns, LinkOutput& out, StandbySink& sink);

  // Applies the ack records whose data is durable here (each Poll does; the shell calls it on
  // shutdown after its writes drained).
  uint32_t ApplyAcks(StandbySink& sink);
  const AckReceiver* FindAck(uint32_t queue, uint32_t partition) const;

  // Retention (docs/replication.md §4): at most once per retention_interval_ns, fn(queue,
  // partition, keep_from) for every partition the primary stated a log start for (LOG_START),
  // with keep_from = min(that start, what is durable here) (Applier::RetainFrom). The shell
  // removes the closed segments of its log wholly below keep_from. Nothing while divergent.
  void ForEachRetention(uint64_t now_ns,
                        absl::FunctionRef<void(uint32_t queue, uint32_t partition,
                                               uint64_t keep_from)> fn);

  // Metadata replication: a complete catalog document from the primary, new since the last one
  // taken, moved into *out (the shell hands it to the control plane).
  bool TakeCatalog(std::string* out);

  uint64_t epoch() const { return epoch_; }
  // The client address the primary stated in its last HELLO (0: none heard).
  uint32_t primary_client_ipv4() const { return primary_client_ipv4_; }
  uint16_t primary_client_port() const { return primary_client_port_; }
  // Since the primary's last HELLO, every partition it listed is durable here up to the end it
  // stated then (latched): the standby has caught up and may be promoted without --force.
  bool caught_up() const { return caught_up_; }
  // The epoch changed since the last call (the shell persists it before acking anything more).
  bool TakeEpochChange() {
    const bool c = epoch_changed_;
    epoch_changed_ = false;
    return c;
  }
  bool primary_alive(uint64_t now_ns) const {
    return heard_ && now_ns <= last_rx_ns_ + config_.peer_timeout_ns;
  }
  // A primary of a newer epoch said HELLO and some of our logs hold a tail it does not (we were
  // the primary before it, or followed one): fn(queue, partition, our_end, truncate_to) for
  // each. The shell cuts those logs (off its lcore: it may take several passes) and calls
  // Truncated; the new epoch is adopted, nothing of that primary applied and no ACK sent, only
  // once none is left. A partition removed meanwhile (RemovePartition) leaves the list.
  bool divergent() const { return !divergent_.empty(); }
  void ForEachDivergent(absl::FunctionRef<void(uint32_t, uint32_t, uint64_t, uint64_t)> fn) const;
  void Truncated(uint32_t queue, uint32_t partition, uint64_t end);
  // Partitions whose log ends below the start the primary stated (LOG_START): it was wiped, or
  // away longer than the primary's retention keeps, and the primary cannot send what it needs
  // (docs/replication.md §4 "Behind the start"). fn(queue, partition, our_end, primary_start)
  // for each noted since the last call (a LOG_START notes them again every second while they
  // stay behind). The shell restarts each log empty at primary_start (off its lcore) and calls
  // Restarted. Nothing while divergent.
  void ForEachBehindStart(absl::FunctionRef<void(uint32_t, uint32_t, uint64_t, uint64_t)> fn);
  void Restarted(uint32_t queue, uint32_t partition, uint64_t start);
  // Messages in the tails cut so far (never acknowledged by a primary that mattered).
  uint64_t truncated_records() const { return truncated_records_; }
  const Applier* Find(uint32_t queue, uint32_t partition) const;
  const LinkCounters& counters() const { return counters_; }
  // A primary's HELLO stated another channel or layout shape: refused (see PrimaryLink).
  bool shape_mismatch() const { return shape_mismatch_; }
  const ChannelShape& peer_shape() const { return peer_shape_; }

 private:
  bool shape_mismatch_ = false;
  ChannelShape peer_shape_{};
  Applier* FindMut(uint32_t queue, uint32_t partition);
  void OnHello(const LinkMessage& m, uint64_t now_ns);
  void OnFragment(const LinkMessage& m, uint64_t now_ns, StandbySink& sink);
  bool SendHello(uint64_t now_ns, LinkOutput& out);
  bool SendAcks(LinkOutput& out, bool all);
  bool SendNak(const Applier& a, LinkOutput& out);
  bool SendAckPositions(LinkOutput& out, bool all);
  AckReceiver* FindAckMut(uint32_t queue, uint32_t partition);
  absl::flat_hash_map<uint64_t, std::unique_ptr<AckReceiver>> ack_receivers_;
  std::vector<AckReceiver*> ack_order_;
  std::vector<AckLogPosition> position_scratch_;

  StandbyConfig config_;
  uint64_t epoch_;
  bool epoch_changed_ = false;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Applier>> appliers_;
  std::vector<Applier*> order_;
  std::vector<Applier*> nak_due_;
  std::vector<Applier*> behind_;  // noted by LOG_START: BehindStart (reserved: no allocation)
  struct Divergent {
    uint32_t queue, partition;
    uint64_t ours, truncate_to;
  };
  void AdoptEpoch(uint64_t epoch);
  void AdoptPendingEpochIfCut();  // the epoch a divergence held back, once no cut is left
  void CheckCaughtUp();
  absl::flat_hash_map<uint64_t, uint64_t> primary_ends_;  // from its last HELLO
  std::vector<Divergent> divergent_;
  uint64_t pending_epoch_ = 0;  // adopted once divergent_ is empty
  uint64_t synced_boot_id_ = 0;  // the primary boot our log was last checked against (OnHello)
  uint64_t truncated_records_ = 0;
  bool caught_up_ = false;
  std::vector<PartitionOffset> scratch_;
  std::vector<HelloEntry> hello_scratch_;
  void OnCatalog(const LinkMessage& m);
  // Catalog reassembly (metadata: rare, allocates).
  std::string catalog_buf_;
  uint64_t catalog_rx_hash_ = 0;
  std::set<uint32_t> catalog_have_;  // fragment offsets received
  uint64_t catalog_rx_bytes_ = 0;
  uint64_t catalog_done_hash_ = 0;
  bool catalog_ready_ = false;
  bool catalog_ack_due_ = false;
  bool heard_ = false;
  bool heard_hello_ = false;  // the primary's HELLO of this session reached us (every part)
  bool hello_answer_ = false;  // the HELLO being received wants ours in return
  uint16_t hello_rx_next_ = 0;  // next part expected
  bool hello_due_ = true;
  uint64_t last_rx_ns_ = 0;
  uint64_t primary_boot_id_ = 0;
  uint32_t primary_client_ipv4_ = 0;
  uint16_t primary_client_port_ = 0;
  uint64_t next_control_ns_ = 0;
  uint64_t next_retention_ns_ = 0;
  LinkCounters counters_;
};

}  // namespace sluice::replication
