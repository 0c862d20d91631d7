// Ack-log replication (docs/replication.md §13): the records of each partition's ack log
// (storage/ack_log.h: work-queue deletes, consumer-group commits, purge marks) cross the link in
// order, numbered, so that a promoted standby does not deliver again what consumers deleted,
// resumes groups where they committed and keeps purged data purged.
//
// A partition's records form a *generation*: a sequence numbered from 0 that starts with a
// snapshot of the primary's whole ack state for the partition (SNAPSHOT_BEGIN, the
// "deleted below" mark, every delete above it, every commit, SNAPSHOT_END) and goes on with every
// record the primary logs after it. The primary starts a new generation whenever the standby
// cannot continue the current one (a new standby process, a new primary process, records the
// ring no longer holds): the snapshot replaces the standby's ack log atomically, which is also
// how a deposed primary rejoining as standby takes the new primary's ack state.
//
//   primary: AckSender per partition   ── ACKLOG (gen, first_seq, records) ──►   standby: AckReceiver
//                                       ◄── ACKLOG_ACK (gen, next_seq, applied, gap) ──
//
// Retransmission mirrors the batch Streamer: go-back-N from the standby's cumulative position,
// on a gap flag (at most once per quarter timeout for the same position) or after a timeout
// without progress. The standby takes records only in order, and applies one only when the data
// it names is durable in its own log (a delete of offset o waits until the standby's log holds o):
// an ack record never refers to data the standby lacks, so a promotion never hides a message that
// the new primary writes later at that offset. Pure C++, no clock, no allocation per record: rings
// are sized at construction; only a snapshot (rare, control path) allocates.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "replication/link_format.h"
#include "replication/link_io.h"
#include "storage/ack_log.h"

namespace sluice::replication {

struct AckStreamConfig {
  uint32_t ring_bytes = 256u << 10;  // encoded records kept (primary: for resends; standby:
  uint32_t ring_records = 8192;      // received, waiting for their data)
  uint32_t window_records = 4096;    // primary: sent and not yet received
  uint64_t retransmit_ns = 50'000'000;
};

// A FIFO of encoded ack records with consecutive sequence numbers, in one pre-allocated byte ring.
class AckRing {
 public:
  AckRing(uint32_t bytes, uint32_t records);
  // Appends a record numbered end_seq(); false when there is no room (nothing changes).
  bool Push(const AckRecord& r);
  void PopFront();
  // Empties it; the next record pushed is numbered `first_seq`.
  void Clear(uint64_t first_seq);
  bool empty() const { return count_ == 0; }
  uint32_t count() const { return count_; }
  uint64_t first_seq() const { return first_seq_; }
  uint64_t end_seq() const { return first_seq_ + count_; }
  // The encoded record numbered `seq` (first_seq() <= seq < end_seq()).
  std::span<const std::byte> At(uint64_t seq) const;

 private:
  struct Slot {
    uint32_t pos;
    uint32_t len;
  };
  std::vector<std::byte> bytes_;
  std::vector<Slot> slots_;
  uint32_t head_ = 0;
  uint32_t count_ = 0;
  uint32_t tail_pos_ = 0;
  uint64_t first_seq_ = 0;
};

// The "partition" a commit key of the ack log names: the Frontend logs every consumer-group
// commit of a queue in partition 0's ack log under "<partition>:<group>"
// (Frontend::PersistGroupCommit); other keys name the partition whose log holds them.
uint32_t CommitRefPartition(std::string_view key, uint32_t own_partition);

// Primary side, one per replicated partition.
class AckSender {
 public:
  // `gen_hi`: distinct per primary process (the high half of every generation number).
  AckSender(uint32_t queue, uint32_t partition, uint32_t gen_hi, const AckStreamConfig& config);

  // Data path: a record the primary just logged in the partition's ack log.
  void Offer(const AckRecord& r, LinkCounters& c);
  // A standby session opened: wait for its position (ACKLOG_ACK), then resume or snapshot.
  void OpenSession();
  void Disconnect();
  void OnPosition(const AckLogPosition& p, uint64_t now_ns, LinkCounters& c);
  // The standby needs a snapshot: the shell reads the partition's ack log (which holds every
  // record offered so far: flushed first) and hands it to SetSnapshot. Control path.
  bool WantsSnapshot() const { return state_ == State::kNeedSnapshot; }
  void SetSnapshot(const storage::AckState& state, uint64_t now_ns, LinkCounters& c) {
    SetSnapshot(state, live_end_, now_ns, c);
  }
  // The same for a state read later than the log was flushed (off the lcore, while records
  // went on being offered): `live_base` is offered() when the log was flushed, so `state` holds
  // every record below it (and perhaps some after: applied again, in order, they change
  // nothing). The generation continues with live record `live_base`, from the ring. False
  // (nothing changes, a snapshot is still wanted): the ring no longer holds them all.
  bool SetSnapshot(const storage::AckState& state, uint64_t live_base, uint64_t now_ns,
                   LinkCounters& c);
  // Sends due records, at most *datagrams datagrams (decremented). Returns datagrams sent.
  uint32_t Poll(uint64_t now_ns, uint64_t epoch, uint32_t max_datagram_bytes, uint32_t* datagrams,
                LinkOutput& out, LinkCounters& c);

  uint32_t queue() const { return queue_; }
  uint32_t partition() const { return partition_; }
  bool streaming() const { return state_ == State::kStreaming; }
  uint64_t generation() const { return gen_; }
  uint64_t offered() const { return live_end_; }  // records offered since the process started
  // Live records (numbered 0.. in offer order, as offered() counts them) the standby has
  // written to its ack log: every one below this was there at some point (a monotonic high
  // water; a snapshot the standby wrote covers every record offered before it). What the
  // replies of `replication = sync` queues wait for (docs/replication.md §13).
  uint64_t applied_live() const { return applied_live_; }
  // Records of the current generation the standby has not written to its ack log yet (0: in
  // step). Not streaming: every record offered, plus one (never 0).
  uint64_t lag() const { return streaming() ? End() - applied_ : live_end_ + 1; }

 private:
  enum class State : uint8_t { kIdle, kAwaiting, kNeedSnapshot, kStreaming };
  uint64_t End() const { return snap_count_ + (live_end_ - snap_live_base_); }
  // The encoded record of generation sequence `k`; false when memory no longer holds it.
  bool RecordAt(uint64_t k, std::span<const std::byte>* out) const;
  void Received(uint64_t next, uint64_t now_ns);
  void NoteApplied();  // applied_ moved: applied_live_ follows

  const uint32_t queue_;
  const uint32_t partition_;
  const uint32_t gen_hi_;
  const AckStreamConfig config_;
  State state_ = State::kIdle;
  AckRing ring_;               // live records, numbered from 0 per process
  uint64_t live_end_ = 0;
  uint64_t gen_ = 0;           // 0: none yet
  uint32_t gen_counter_ = 0;
  std::vector<std::byte> snap_;      // the generation's snapshot records (freed once received)
  std::vector<uint32_t> snap_pos_;   // where each starts (+ the end)
  uint64_t snap_count_ = 0;          // records in it
  uint64_t snap_live_base_ = 0;      // first live record after it
  uint64_t acked_ = 0;               // standby received every record below
  uint64_t applied_ = 0;             // ... and wrote every record below to its ack log
  uint64_t applied_live_ = 0;        // applied_live()
  uint64_t next_send_ = 0;
  uint64_t sent_high_ = 0;
  uint64_t last_progress_ns_ = 0;
  uint64_t last_gap_from_ = UINT64_MAX;
  uint64_t last_gap_ns_ = 0;
  uint64_t snapshot_ns_ = 0;         // when the current generation began
  std::vector<std::byte> scratch_;   // one datagram's records
};

// Where the standby's applied ack records go (the shell: the partition's own AckLog).
class AckSink {
 public:
  // Appends one record (kinds kDelete, kCommit, kDeletedBelow) to the partition's ack log;
  // false: not now (offered again next pass).
  virtual bool AppendAck(uint32_t queue, uint32_t partition, const AckRecord& r) = 0;
  // Replaces the partition's ack log with `state` (atomically: a snapshot). Rare. False: not
  // (yet) done, offered again next pass with the same state unless a newer snapshot replaced it
  // (the shell's replacement runs off the lcore and answers true once adopted).
  virtual bool ReplaceAcks(uint32_t queue, uint32_t partition, const storage::AckState& state) = 0;

 protected:
  ~AckSink() = default;
};

// Standby side, one per partition.
class AckReceiver {
 public:
  AckReceiver(uint32_t queue, uint32_t partition, const AckStreamConfig& config);

  // An ACKLOG datagram of this partition: records taken strictly in order.
  void OnAckLog(const LinkMessage& m, LinkCounters& c);
  // Applies the records whose data is durable here: `durable_end(ref)` is this box's durable end
  // of partition `ref` of the queue. Returns records (or snapshots) applied.
  uint32_t Apply(absl::FunctionRef<uint64_t(uint32_t ref)> durable_end, AckSink& sink,
                 LinkCounters& c);
  // Forget the generation (the log was cut, ...): the primary sends a snapshot next.
  void Reset();
  // Our position for ACKLOG_ACK (clears the gap flag).
  AckLogPosition TakePosition();
  bool ack_due = false;

  uint32_t queue() const { return queue_; }
  uint32_t partition() const { return partition_; }
  uint64_t generation() const { return gen_; }
  uint64_t next_seq() const { return next_; }
  uint64_t applied() const { return applied_; }
  // The ack log holds the state of a generation's snapshot at least (caught up for promotion).
  bool synced() const { return gen_ != 0 && !building_ && !snap_ready_ && applied_ > 0; }

 private:
  static bool Newer(uint64_t gen, uint64_t than);

  const uint32_t queue_;
  const uint32_t partition_;
  uint64_t gen_ = 0;
  uint64_t next_ = 0;     // records below it were received
  uint64_t applied_ = 0;  // ... and written to the ack log
  bool gap_ = false;
  bool building_ = false;    // between SNAPSHOT_BEGIN and SNAPSHOT_END
  bool snap_ready_ = false;  // complete, waiting for its data
  uint64_t snap_end_ = 0;
  storage::AckState snap_;
  absl::flat_hash_map<uint32_t, uint64_t> gate_;  // ref partition -> durable end the snapshot needs
  AckRing pending_;          // received records, waiting for their data or for the sink
};

}  // namespace sluice::replication
