// What a worker's Frontend needs from replication (docs/replication.md §6), as an interface so
// that the Frontend stays pure C++. The DPDK worker gives it its ReplicationShell
// (replication_shell.h); null when the box runs alone ([replication] role = "none").
//
// Every call comes from the worker's own lcore thread, except AddPartition/RemovePartition of
// partitions opened on the main thread before the worker is launched.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "dataplane/shard/types.h"
#include "protocol/errc.h"

namespace sluice::dataplane {

class Replicator {
 public:
  // This box takes writes: a primary that no newer primary has fenced. False on a standby (and
  // on a fenced primary): requests are answered NOT_PRIMARY with PrimaryAddress.
  virtual bool Writable() const = 0;
  // The primary's client address, if known (host byte order); 0 when not known.
  virtual void PrimaryAddress(uint32_t* ipv4, uint16_t* udp_port) const = 0;

  // A durable partition opened (its log ends at log_end) or closed on this worker.
  virtual void AddPartition(uint32_t queue, uint32_t partition, uint64_t log_end) = 0;
  virtual void RemovePartition(uint32_t queue, uint32_t partition) = 0;

  // A batch storage took, in its exact on-disk form (header + records, no padding).
  virtual void Offer(uint32_t queue, uint32_t partition, std::span<const std::byte> bytes,
                     uint64_t base, uint64_t end, uint64_t now_ns) = 0;
  // A record the primary just logged in the partition's ack log (docs/replication.md §13): `kind`
  // is storage::AckKind's value (1 delete, 2 commit, 3 deleted below); `ref_partition` the
  // partition whose data `offset` names (a group commit is logged in partition 0's ack log).
  // Replicated to the standby's ack log, after the data it names.
  // Kinds (storage::AckKind's values; the Frontend does not see storage/).
  // Returns the partition's ack records offered so far, this one included (its sequence + 1, as
  // AckReplicated counts them); 0 when the partition is not replicated.
  static constexpr uint8_t kAckDelete = 1, kAckCommit = 2, kAckDeletedBelow = 3;
  virtual uint64_t OfferAck(uint32_t queue, uint32_t partition, uint8_t kind,
                            uint32_t ref_partition, std::string_view group, uint64_t offset) {
    (void)queue, (void)partition, (void)kind, (void)ref_partition, (void)group, (void)offset;
    return 0;
  }
  // How many of the partition's ack records (counted as OfferAck counts them) the standby has
  // written to its ack log, when the partition is in sync (as Replicated says) and its ack
  // stream runs; false otherwise. The replies of sync queues' DELETE and COMMIT wait for it
  // (docs/replication.md §13).
  virtual bool AckReplicated(uint32_t queue, uint32_t partition, uint64_t now_ns,
                             uint64_t* applied) const {
    (void)queue, (void)partition, (void)now_ns, (void)applied;
    return false;
  }
  // A purge of a sync queue's partition (its DELETED_BELOW record) settled: the standby wrote it
  // (kOk; also with replication_degrade = allow and the alarm), or it did not within the bound /
  // the standby is gone (kNotReplicated), or the purge could not be logged here (another errc).
  // The control plane's purge request waits for every partition's (docs/replication.md §13).
  virtual void PurgeSettled(uint32_t queue, uint32_t partition, uint64_t purge_generation,
                            Errc errc) {
    (void)queue, (void)partition, (void)purge_generation, (void)errc;
  }
  // How long a sync queue's reply waits for the standby at most before it is answered
  // NOT_REPLICATED (or, with replication_degrade = allow, acked with the alarm): the standby
  // counts as lagging past its bound. The same bound for produce acks and for ack records.
  static constexpr uint64_t kSyncLagBoundNs = 1'000'000'000;
  // The standby's durable end of the partition when it is connected, caught up and not lagging
  // past the bound; false otherwise.
  virtual bool Replicated(uint32_t queue, uint32_t partition, uint64_t now_ns,
                          uint64_t* end) const = 0;

  // A standby serves stream reads from its replicated log: records from `value` (an offset, or
  // with by_timestamp the first record stamped at or after it, ns), answered through
  // PollReplicaReads with `cookie` (kOk), or kThrottled / kUnknownPartition now.
  virtual Errc ReadReplica(uint32_t queue, uint32_t partition, uint64_t value,
                           uint32_t max_records, uint64_t cookie, bool by_timestamp = false) {
    (void)queue, (void)partition, (void)value, (void)max_records, (void)cookie;
    (void)by_timestamp;
    return Errc::kUnknownPartition;
  }
  // The oldest offset the standby serves: its log's start (retention removes what the primary
  // removed: docs/replication.md §4) or the replicated purge mark, whichever is higher (§13);
  // EARLIEST starts there, an offset below it is out of range.
  virtual uint64_t ReplicaStart(uint32_t queue, uint32_t partition) const {
    (void)queue;
    (void)partition;
    return 0;
  }
  // A standby's durable end of the partition (what ReadReplica can return below); 0 if unknown.
  virtual uint64_t ReplicaEnd(uint32_t queue, uint32_t partition) const {
    (void)queue;
    (void)partition;
    return 0;
  }
  // A standby: the offset `group` last committed for `partition` (the next to read), as this
  // box's replicated ack log holds it (docs/replication.md §6, §13); false: no commit known. A
  // queue's commits are all in partition 0's ack log, so only the partition's owner of the
  // queue's partition 0 asks (as only the coordinator answers COMMITTED on a primary).
  virtual bool ReplicaCommitted(uint32_t queue, uint32_t partition, std::string_view group,
                                uint64_t* offset) const {
    (void)queue, (void)partition, (void)group, (void)offset;
    return false;
  }
  virtual uint32_t PollReplicaReads(
      absl::FunctionRef<void(uint64_t cookie, Errc errc, uint64_t next_offset,
                             std::span<const shard::StoredMessage> records)> fn) {
    (void)fn;
    return 0;
  }

 protected:
  ~Replicator() = default;
};

}  // namespace sluice::dataplane
