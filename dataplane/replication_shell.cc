#include "dataplane/replication_shell.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <rte_ethdev.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dataplane/storage_shell.h"
#include "dataplane/worker.h"
#include "protocol/assert.h"
#include "storage/ack_log.h"
#include "storage/recovery.h"
#include "storage/segment.h"

namespace sluice::dataplane {
namespace {

constexpr uint32_t kArenaBytes = 32u << 20;       // standby: batches being written
constexpr uint32_t kMaxBatchBytes = (1u << 20) + 8192;
// Catch-up: after a read that failed (I/O error, bad batch), the partition's next read waits
// this long (a bad batch is not read again every pass; the log line says it once a second).
constexpr uint64_t kCatchupRetryNs = 100'000'000;
constexpr uint64_t kStatusIntervalNs = 20'000'000;
// Sync queues: the standby counts as gone when it has not acknowledged what waits for this long.
constexpr uint64_t kSyncLagBoundNs = Replicator::kSyncLagBoundNs;

uint64_t Key(uint32_t q, uint32_t p) { return (uint64_t{q} << 32) | p; }

bool SameAckState(const storage::AckState& a, const storage::AckState& b) {
  return a.deleted_below == b.deleted_below && a.deleted == b.deleted && a.commits == b.commits;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReplicationShell>> ReplicationShell::Create(
    const ReplicationShellConfig& c) {
  SLUICE_ASSERT(c.pool != nullptr && c.status != nullptr);
  std::unique_ptr<ReplicationShell> s(new ReplicationShell(c));
  if (c.link == nullptr) {
    if (absl::Status st = s->OpenUdp(); !st.ok()) return st;
  }
  if (c.role == hwconf::ReplicationRole::kStandby) {
    storage::WriterConfig wc;
    wc.queue_depth = c.storage.uring_depth;
    wc.segment_bytes = c.storage.segment_bytes;
    wc.completion_eventfd = c.completion_eventfd;
    auto writer = storage::UringWriter::Create(wc);
    if (!writer.ok()) return writer.status();
    s->writer_ = std::move(*writer);
    storage::ReaderConfig rc;
    rc.max_reads = 4;
    auto reader = storage::UringReader::Create(rc, s->writer_.get());
    if (!reader.ok()) return reader.status();
    s->reader_ = std::move(*reader);
    s->read_records_.reserve(4096);
    s->arena_ = static_cast<std::byte*>(std::aligned_alloc(4096, kArenaBytes));
    if (s->arena_ == nullptr) return absl::ResourceExhaustedError("replication arena");
    s->arena_bytes_ = kArenaBytes;
    storage::AckRingConfig ac;
    ac.entries = 256;  // per pass at most one write (+ a purge's sync) per partition with acks
    ac.completion_eventfd = c.completion_eventfd;
    auto acks = storage::AckRing::Create(ac);
    if (!acks.ok()) return acks.status();
    s->ack_ring_ = std::move(*acks);
    if (c.ack_delay_ms > 0) {
      storage::AckFaultInjection f;
      f.count = UINT32_MAX;  // every write of every ack log
      f.delay_ms = c.ack_delay_ms;
      s->ack_ring_->InjectFaults(f);
    }
    // Created on this thread: sluiced creates its shells on the main thread (the housekeeping
    // CPU), so the file worker never runs on a polling lcore's CPU (storage/file_worker.h).
    s->files_ = std::make_unique<storage::FileWorker>("sluice-sbfiles", kMaxFileJobs);
    s->standby_jobs_.reserve(kMaxFileJobs);
  } else {
    // A primary's: the ack logs read for snapshots (SendAckSnapshots). Same thread placement.
    s->files_ = std::make_unique<storage::FileWorker>("sluice-pfiles", kMaxFileJobs);
  }
  if (c.dedicated) {
    SLUICE_ASSERT(c.status->handoff != nullptr);
    absl::StatusOr<std::unique_ptr<LogFileReader>> reader = LogFileReader::Create(c.storage);
    if (!reader.ok()) return reader.status();
    s->log_reader_ = std::move(*reader);
  }
  return s;
}

ReplicationShell::ReplicationShell(const ReplicationShellConfig& c) : config_(c) {
  peer_.ipv4 = c.peer_ipv4;
  peer_.udp_port = c.peer_udp_port;
  std::memset(peer_.mac.addr_bytes, 0xff, sizeof peer_.mac.addr_bytes);  // broadcast at first
  if (c.link != nullptr) {
    self_ = c.link->addr;
    // Channel c's frames go from UDP port base + c here to base + c of the peer: the port names
    // the channel wherever the frame lands (link_steering.h), and distinct flows spread the
    // channels over the queues of a receiver that hashes them (RSS, af_packet's fanout).
    base_udp_port_ = rte_be_to_cpu_16(c.link->addr.udp_port);
    self_.udp_port = rte_cpu_to_be_16(static_cast<uint16_t>(base_udp_port_ + c.channel));
    peer_.udp_port = rte_cpu_to_be_16(
        static_cast<uint16_t>(rte_be_to_cpu_16(c.peer_udp_port) + c.channel));
    if (c.status->steering.channels > 1) steer_.emplace(c.status->steering, c.channel);
    peer_.port_id = c.link->addr.port_id;
    max_datagram_ = static_cast<uint32_t>(c.link->conf->mtu) - 28;  // IPv4 + UDP headers
    link_started_ = c.link->started;
    memif_client_ = c.link->conf->vdev.rfind("net_memif", 0) == 0 &&
                    c.link->conf->vdev.find("role=client") != std::string::npos;
  } else {
    max_datagram_ = 1472;  // as on a 1500-byte MTU link
    link_started_ = true;
  }
  if (c.role == hwconf::ReplicationRole::kPrimary) {
    replication::PrimaryConfig pc;
    pc.epoch = c.epoch;
    pc.boot_id = c.boot_id;
    pc.shape = replication::ChannelShape{c.channel, c.channels, c.layout_shape};
    pc.max_datagram_bytes = max_datagram_;
    pc.client_ipv4 = c.client_ipv4;
    pc.client_port = c.client_port;
    primary_ = std::make_unique<replication::PrimaryLink>(pc);
    catchup_hints_.reserve(1024);
    // Cookies unique across shells of this worker: an answer to a read a previous shell started
    // (its reader slot outlives it) matches none of this one's.
    catchup_seq_ = rte_get_timer_cycles() << 8;
  } else {
    replication::StandbyConfig sc;
    sc.epoch = c.epoch;
    sc.boot_id = c.boot_id;
    sc.shape = replication::ChannelShape{c.channel, c.channels, c.layout_shape};
    sc.other_channels = &c.status->durable;
    sc.max_datagram_bytes = max_datagram_;
    sc.max_batch_bytes = kMaxBatchBytes;
    standby_ = std::make_unique<replication::StandbyLink>(sc);
  }
  parts_.reserve(1024);
  by_handle_.reserve(1024);
  ack_dirty_.reserve(1024);
  ack_snapshots_.reserve(1024);
  SLUICE_ASSERT(c.channel < c.channels && c.channels <= kMaxReplicationChannels);
  c.status->role.store(primary_ ? 1 : 2, std::memory_order_relaxed);
  c.status->channels[c.channel].epoch.store(c.epoch, std::memory_order_relaxed);
}

ReplicationShell::~ReplicationShell() {
  // Partition jobs still with the file worker run to the end (~FileWorker); their results (a
  // prepared log, an open ack log) are dropped unadopted: the next start recovers those files.
  files_.reset();
  // The ack logs' buffers are the kernel's until their writes complete.
  if (ack_ring_ != nullptr) ack_ring_->Drain([](storage::AckLog&) {});
  if (writer_ != nullptr) {
    for (auto& [k, p] : parts_) writer_->ClosePartition(p->handle);
  }
  std::free(arena_);
  if (udp_fd_ >= 0) close(udp_fd_);
}

absl::Status ReplicationShell::OpenUdp() {
  udp_fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (udp_fd_ < 0) return absl::InternalError(absl::StrFormat("socket: %s", std::strerror(errno)));
  const int buf = 8 << 20;
  setsockopt(udp_fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(udp_fd_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  sockaddr_in self{};
  self.sin_family = AF_INET;
  self.sin_addr.s_addr = config_.udp_listen_ipv4;
  // Channel c: its own socket on port listen + c, talking to port peer + c (docs §1).
  self.sin_port = rte_cpu_to_be_16(
      static_cast<uint16_t>(rte_be_to_cpu_16(config_.udp_listen_port) + config_.channel));
  if (bind(udp_fd_, reinterpret_cast<const sockaddr*>(&self), sizeof self) != 0) {
    return absl::InternalError(absl::StrFormat("bind of the kernel UDP link: %s",
                                               std::strerror(errno)));
  }
  peer_addr_.sin_family = AF_INET;
  peer_addr_.sin_addr.s_addr = config_.peer_ipv4;
  peer_addr_.sin_port = rte_cpu_to_be_16(
      static_cast<uint16_t>(rte_be_to_cpu_16(config_.peer_udp_port) + config_.channel));
  // Every buffer and message header now: nothing allocates per datagram.
  udp_tx_.resize(size_t{kUdpTxBatch} * kUdpSlot);
  udp_rx_.resize(size_t{kUdpRxBatch} * kUdpSlot);
  tx_msgs_.resize(kUdpTxBatch);
  tx_iov_.resize(kUdpTxBatch);
  rx_msgs_.resize(kUdpRxBatch);
  rx_iov_.resize(kUdpRxBatch);
  rx_from_.resize(kUdpRxBatch);
  for (uint32_t i = 0; i < kUdpTxBatch; ++i) {
    tx_iov_[i] = iovec{udp_tx_.data() + size_t{i} * kUdpSlot, 0};
    tx_msgs_[i] = mmsghdr{};
    tx_msgs_[i].msg_hdr.msg_name = &peer_addr_;
    tx_msgs_[i].msg_hdr.msg_namelen = sizeof peer_addr_;
    tx_msgs_[i].msg_hdr.msg_iov = &tx_iov_[i];
    tx_msgs_[i].msg_hdr.msg_iovlen = 1;
  }
  for (uint32_t i = 0; i < kUdpRxBatch; ++i) {
    rx_iov_[i] = iovec{udp_rx_.data() + size_t{i} * kUdpSlot, kUdpSlot};
    rx_msgs_[i] = mmsghdr{};
    rx_msgs_[i].msg_hdr.msg_name = &rx_from_[i];
    rx_msgs_[i].msg_hdr.msg_iov = &rx_iov_[i];
    rx_msgs_[i].msg_hdr.msg_iovlen = 1;
  }
  return absl::OkStatus();
}

void ReplicationShell::FlushUdp() {
  if (udp_tx_count_ == 0) return;
  const int sent = sendmmsg(udp_fd_, tx_msgs_.data(), udp_tx_count_, 0);
  const uint32_t ok = sent > 0 ? static_cast<uint32_t>(sent) : 0;
  counters_->tx_packets += ok;
  for (uint32_t i = ok; i < udp_tx_count_; ++i) counters_->Drop(DropReason::kTxFull);
  udp_tx_count_ = 0;
}

uint32_t ReplicationShell::PollUdp(uint64_t now_ns) {
  uint32_t work = 0;
  for (int round = 0; round < 4; ++round) {  // bounded: 128 datagrams a pass
    for (uint32_t i = 0; i < kUdpRxBatch; ++i) rx_msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
    const int n = recvmmsg(udp_fd_, rx_msgs_.data(), kUdpRxBatch, MSG_DONTWAIT, nullptr);
    if (n <= 0) break;
    counters_->rx_packets += static_cast<uint64_t>(n);
    for (int i = 0; i < n; ++i) {
      const sockaddr_in& from = rx_from_[i];
      if (from.sin_addr.s_addr != peer_addr_.sin_addr.s_addr || from.sin_port != peer_addr_.sin_port) {
        counters_->Drop(DropReason::kNotForUs);  // only the peer speaks on the link
        continue;
      }
      const std::span<const std::byte> d(udp_rx_.data() + size_t{static_cast<uint32_t>(i)} * kUdpSlot,
                                         rx_msgs_[i].msg_len);
      if (primary_ != nullptr) primary_->OnDatagram(d, now_ns);
      else standby_->OnDatagram(d, now_ns, *this);
    }
    work += static_cast<uint32_t>(n);
    if (static_cast<uint32_t>(n) < kUdpRxBatch) break;
  }
  return work;
}

// ---- Replicator ------------------------------------------------------------------------------

bool ReplicationShell::Writable() const {
  // The etcd lease deadline is read on this lcore's own clock (a stalled election thread or a
  // SIGSTOP past the lease cannot leave it writable).
  // Fenced is box-wide: another channel may have heard the newer primary first.
  return primary_ != nullptr && !primary_->fenced() &&
         !config_.status->fenced.load(std::memory_order_relaxed) &&
         (config_.status == nullptr ||
          rte_get_timer_cycles() < config_.status->writable_until_tsc.load(std::memory_order_relaxed));
}

void ReplicationShell::PrimaryAddress(uint32_t* ipv4, uint16_t* udp_port) const {
  // From the primary's last HELLO (0 until one was heard: "not here", no redirect).
  *ipv4 = standby_ != nullptr ? standby_->primary_client_ipv4() : 0;
  *udp_port = standby_ != nullptr ? standby_->primary_client_port() : 0;
}

void ReplicationShell::AddPartition(uint32_t queue, uint32_t partition, uint64_t log_end) {
  if (primary_ == nullptr) return;
  primary_->AddPartition(queue, partition, log_end, config_.state.StartOf(queue, partition));
}

void ReplicationShell::RemovePartition(uint32_t queue, uint32_t partition) {
  if (primary_ != nullptr) primary_->RemovePartition(queue, partition);
  // A snapshot being read for it names records of its sender, which is gone.
  if (auto it = ack_loads_.find(Key(queue, partition)); it != ack_loads_.end()) {
    it->second.stale = true;
  }
}

void ReplicationShell::Offer(uint32_t queue, uint32_t partition, std::span<const std::byte> bytes,
                             uint64_t base, uint64_t end, uint64_t now_ns) {
  if (primary_ != nullptr) primary_->Offer(queue, partition, bytes, base, end, now_ns);
}

bool ReplicationShell::Replicated(uint32_t queue, uint32_t partition, uint64_t now_ns,
                                  uint64_t* end) const {
  return primary_ != nullptr &&
         primary_->Replicated(queue, partition, now_ns, kSyncLagBoundNs, end);
}

uint64_t ReplicationShell::OfferAck(uint32_t queue, uint32_t partition, uint8_t kind,
                                    uint32_t ref_partition, std::string_view group,
                                    uint64_t offset) {
  static_assert(kAckDelete == static_cast<uint8_t>(replication::AckRecordKind::kDelete) &&
                kAckCommit == static_cast<uint8_t>(replication::AckRecordKind::kCommit) &&
                kAckDeletedBelow == static_cast<uint8_t>(replication::AckRecordKind::kDeletedBelow));
  // Every key the Frontend logs fits a record (kMaxAckGroupBytes): nothing is dropped here.
  SLUICE_ASSERT(kind >= kAckDelete && kind <= kAckDeletedBelow &&
                group.size() <= replication::kMaxAckGroupBytes);
  if (primary_ == nullptr) return 0;
  primary_->OfferAck(queue, partition,
                     replication::AckRecord{static_cast<replication::AckRecordKind>(kind),
                                            ref_partition, offset, group});
  const replication::AckSender* a = primary_->FindAck(queue, partition);
  return a != nullptr ? a->offered() : 0;
}

bool ReplicationShell::AckReplicated(uint32_t queue, uint32_t partition, uint64_t now_ns,
                                     uint64_t* applied) const {
  // The partition's data stream in sync (connected, caught up, not lagging past the bound) and
  // its ack stream running (a standby that just reconnected is sent its position or a snapshot
  // first). `applied` counts records the standby wrote to its ack log (not merely received: a
  // received record may still wait there for its data, and only the ack log survives a restart
  // of the standby into a primary).
  uint64_t end = 0;
  if (primary_ == nullptr || !primary_->Replicated(queue, partition, now_ns, kSyncLagBoundNs, &end)) {
    return false;
  }
  const replication::AckSender* a = primary_->FindAck(queue, partition);
  if (a == nullptr || !a->streaming()) return false;
  *applied = a->applied_live();
  return true;
}

void ReplicationShell::PurgeSettled(uint32_t queue, uint32_t partition, uint64_t generation,
                                    Errc errc) {
  SettlePurge(*config_.status, queue, partition, generation, errc);
}

void SettlePurge(ReplicationStatus& s, uint32_t queue, uint32_t partition, uint64_t generation,
                 Errc errc) {
  (void)partition;
  // Once per partition per purge (control path): a mutex and, rarely, an allocation.
  std::lock_guard lock(s.purge_mu);
  ReplicationStatus::PurgeSettlement* e = nullptr;
  for (auto& p : s.purges) {
    if (p.queue == queue && p.generation == generation) e = &p;
  }
  if (e == nullptr) {
    if (s.purges.size() >= 256) s.purges.erase(s.purges.begin());  // nobody waited for those
    e = &s.purges.emplace_back();
    e->queue = queue;
    e->generation = generation;
  }
  ++e->settled;
  if (errc == Errc::kNotReplicated || errc == Errc::kThrottled) ++e->not_replicated;
  else if (errc != Errc::kOk) ++e->failed;
}

// ---- a dedicated replication lcore ------------------------------------------------------------

bool ReplicationShell::HandoffEmpty() const {
  if (!config_.dedicated) return true;
  for (const auto& r : config_.status->handoff->rings)
    if (r != nullptr && !r->Empty()) return false;
  for (const auto& r : config_.status->handoff->reads)
    if (r != nullptr && !r->requests.Empty()) return false;
  return true;
}

uint32_t ReplicationShell::DrainHandoff(uint64_t now_ns) {
  (void)now_ns;
  // At most this many messages per ring per pass: the link gets its turn.
  constexpr uint32_t kPerPass = 256;
  uint32_t work = 0;
  const auto& rings = config_.status->handoff->rings;
  if (acks_drained_.size() != rings.size()) acks_drained_.assign(rings.size(), 0);
  for (size_t w = 0; w < rings.size(); ++w) {
    replication::HandoffRing* ring = rings[w].get();
    if (ring == nullptr) continue;
    for (uint32_t i = 0; i < kPerPass; ++i) {
      const std::span<const std::byte> m = ring->Peek();
      if (m.empty()) break;
      SLUICE_ASSERT(m.size() >= sizeof(HandoffHeader));
      HandoffHeader h;
      std::memcpy(&h, m.data(), sizeof h);
      const std::span<const std::byte> payload = m.subspan(sizeof h);
      switch (h.kind) {
        case HandoffKind::kAdd:
        case HandoffKind::kRemove:
          // Whatever the board said of an earlier partition of that name no longer holds.
          config_.status->handoff->board.Set(h.queue, h.partition, replication::ReplicatedBoard::kNo,
                                             replication::ReplicatedBoard::kNo);
          if (h.kind == HandoffKind::kAdd) AddPartition(h.queue, h.partition, h.base);
          else RemovePartition(h.queue, h.partition);
          break;
        case HandoffKind::kBatch:
          ++handoff_batches_;
          if (primary_ != nullptr) primary_->Offer(h.queue, h.partition, payload, h.base, h.end, h.now_ns);
          break;
        case HandoffKind::kFromLog:
          ++handoff_from_log_;
          if (primary_ != nullptr) primary_->OfferFromLog(h.queue, h.partition, h.base, h.end, h.now_ns);
          break;
        case HandoffKind::kAck:
          SLUICE_ASSERT(payload.size() == h.group_len);
          ++acks_drained_[w];
          (void)OfferAck(h.queue, h.partition, h.ack_kind, h.ref_partition,
                         std::string_view(reinterpret_cast<const char*>(payload.data()),
                                          payload.size()),
                         h.base);
          break;
        default: SLUICE_ASSERT(false);
      }
      ring->Pop();
      ++work;
    }
  }
  return work;
}

void ReplicationShell::PublishBoard(uint64_t now_ns) {
  // Every pass: what the shard lcores' sync replies wait for (the lag bound applied here).
  replication::ReplicatedBoard& board = config_.status->handoff->board;
  primary_->ForEachStreamer([&](const replication::Streamer& st) {
    const uint32_t q = st.queue(), p = st.partition();
    uint64_t end = 0, applied = 0;
    if (!Replicated(q, p, now_ns, &end)) {
      board.Set(q, p, replication::ReplicatedBoard::kNo, replication::ReplicatedBoard::kNo);
      return;
    }
    if (!AckReplicated(q, p, now_ns, &applied)) applied = replication::ReplicatedBoard::kNo;
    board.Set(q, p, end, applied);
  });
}

void ReplicationShell::SendAckSnapshots(uint64_t now_ns, Persistence* storage) {
  // A standby that cannot continue a partition's ack-log stream gets the whole ack log: written
  // out first (so it holds every record offered), then read back on the file worker (rare: a
  // standby connecting, a restart, a ring overflow). At most 4 started a pass.
  if (!ack_loads_.empty()) {
    for (auto it = ack_loads_.begin(); it != ack_loads_.end();) {
      if (!it->second.job->done()) {
        ++it;
        continue;
      }
      const uint32_t q = static_cast<uint32_t>(it->first >> 32);
      const uint32_t p = static_cast<uint32_t>(it->first);
      const AckLoad load = std::move(it->second);
      ack_loads_.erase(it++);
      if (load.stale) continue;
      if (!load.job->status().ok()) {
        if (!ack_snapshot_error_logged_) {
          ack_snapshot_error_logged_ = true;
          std::fprintf(stderr, "sluiced: replication: queue %u partition %u: cannot read the ack "
                       "log for the standby: %s; retrying\n", q, p,
                       std::string(load.job->status().message()).c_str());
        }
        // Still wanted: read again, in a second (as a standby's failed replacement), not every
        // pass: a file that cannot be read now is not likely to be readable a pass later.
        ack_load_retry_ns_ = now_ns + 1'000'000'000;
        continue;
      }
      // Not taken (the standby went, or the ring lost records offered since the end was
      // noted): a partition that still wants one is read again below.
      if (primary_->SetAckSnapshot(q, p, load.job->state, load.live_base)) {
        ++acklog_snapshot_jobs_;
      }
    }
  }
  if (now_ns < ack_load_retry_ns_) return;
  ack_snapshots_.clear();
  primary_->ForEachAckSnapshot([&](uint32_t q, uint32_t p) {
    if (ack_snapshots_.size() < 4 && !ack_loads_.contains(Key(q, p))) {
      ack_snapshots_.emplace_back(q, p);
    }
  });
  if (ack_snapshots_.empty() || ack_loads_.size() + ack_snapshots_.size() > kMaxFileJobs) return;
  if (config_.dedicated) {
    // The shard lcores write the ack logs: not before each has written every record this lcore
    // took from it (a pass or two later), or the snapshot would miss one it counts as sent.
    const ReplicationHandoff& h = *config_.status->handoff;
    for (size_t w = 0; w < acks_drained_.size(); ++w) {
      if (h.acks_flushed[w].load(std::memory_order_acquire) < acks_drained_[w]) return;
    }
  }
  // The ack logs' writes go through the ring: a log is read once its file holds every record
  // offered when its snapshot was first asked for (its end noted then, its progress looked at
  // each pass: no wait on the ring). Records offered later may be in the file too; they also
  // go live from the noted base, and applying one twice changes nothing.
  for (auto it = ack_settles_.begin(); it != ack_settles_.end();) {
    const std::pair<uint32_t, uint32_t> part(static_cast<uint32_t>(it->first >> 32),
                                             static_cast<uint32_t>(it->first));
    if (std::find(ack_snapshots_.begin(), ack_snapshots_.end(), part) == ack_snapshots_.end()) {
      ack_settles_.erase(it++);  // no longer asked for this pass
    } else {
      ++it;
    }
  }
  bool flushed = false;
  bool written = true;
  for (const auto& [q, p] : ack_snapshots_) {
    auto [it, fresh] = ack_settles_.try_emplace(Key(q, p));
    if (fresh) {
      if (!flushed) storage->FlushAcks();
      flushed = true;
      it->second = AckSettle{storage->AckLogEnd(q, p), primary_->AckOffered(q, p)};
    }
    written = written && storage->AckLogWritten(q, p, it->second.end);
  }
  if (!written) return;
  for (const auto& [q, p] : ack_snapshots_) {
    auto job = std::make_shared<storage::AckLoadJob>();
    job->data_dir = DataDirOf(config_.storage, q, p);
    job->id = storage::PartitionId{q, p};
    const bool submitted = files_->Submit(job);
    SLUICE_ASSERT(submitted);  // at most kMaxFileJobs under way (all of them ack_loads_)
    const auto settle = ack_settles_.find(Key(q, p));  // noted above for every one of them
    ack_loads_.emplace(Key(q, p), AckLoad{job, settle->second.offered, false});
    ack_settles_.erase(settle);
  }
}

Errc ReplicationShell::ReadReplica(uint32_t queue, uint32_t partition, uint64_t value,
                                   uint32_t max_records, uint64_t cookie, bool by_timestamp) {
  bool polled = false;
  return StartReplicaRead(queue, partition, value, max_records, cookie, by_timestamp, &polled);
}

Errc ReplicationShell::StartReplicaRead(uint32_t queue, uint32_t partition, uint64_t value,
                                        uint32_t max_records, uint64_t cookie, bool by_timestamp,
                                        bool* answered_by_poll) {
  *answered_by_poll = false;
  if (reader_ == nullptr) return Errc::kUnknownPartition;
  auto it = parts_.find(Key(queue, partition));
  if (it == parts_.end()) {
    // Closed while its file job runs (a cut, a restart, an open): ask again shortly.
    return standby_jobs_.contains(Key(queue, partition)) ? Errc::kThrottled
                                                          : Errc::kUnknownPartition;
  }
  // Only what is durable here is read (the reader never goes past the log's durable bytes).
  // What the reader would refuse at once is refused here: the reader also reports such a
  // refusal through Poll, where the caller (which answers the error now) holds no read.
  const storage::PartitionHandle h = it->second->handle;
  if (writer_->failed(h)) return Errc::kStorageFailed;
  if (!by_timestamp && (value < ReadStart(*it->second) || value >= writer_->durable(h).value)) {
    // Below the start (retention, or a replicated purge mark: as a primary answers an offset
    // it purged) or not durable here yet.
    return Errc::kOffsetOutOfRange;
  }
  storage::FetchRequest r;
  r.partition = h;
  r.by = by_timestamp ? storage::FetchBy::kTimestamp : storage::FetchBy::kOffset;
  r.value = value;
  r.max_records = std::max<uint32_t>(1, max_records);
  r.cookie = cookie;
  const Errc e = reader_->Fetch(r);
  *answered_by_poll = e != Errc::kThrottled;  // kOk, or a refusal also reported through Poll
  return e;
}

// ---- a dedicated replication lcore on a standby: the shard lcores' replica reads ---------------

namespace {
// A read started for a shard lcore: its cookie says which lcore and which of its read slots.
constexpr uint64_t kShardRead = uint64_t{1} << 63;
uint64_t ShardReadCookie(size_t worker, uint64_t cookie) {
  return kShardRead | (uint64_t{worker} << 32) | cookie;
}
}  // namespace

void ReplicationShell::AnswerShardRead(uint64_t tagged, Errc errc, uint64_t next_offset,
                                       std::span<const shard::StoredMessage> records) {
  ReplicationHandoff& h = *config_.status->handoff;
  const size_t w = static_cast<size_t>((tagged & ~kShardRead) >> 32);
  SLUICE_ASSERT(w < h.reads.size() && h.reads[w] != nullptr);
  const replication::ReplicaAnswered a = replication::PushReplicaAnswer(
      h.reads[w]->answers, tagged & UINT32_MAX, errc, next_offset, records);
  // The shard lcore has at most kMaxReplicaReads out, each answered once: room by construction.
  SLUICE_ASSERT(a != replication::ReplicaAnswered::kNoRoom);
  if (a == replication::ReplicaAnswered::kThrottled) ++replica_answers_throttled_;
  ++replica_reads_served_;
  WakeSignal& wake = h.worker_wake[w];
  if (wake.sleeping.load(std::memory_order_seq_cst)) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake.fd, &one, sizeof one);  // only when it sleeps
  }
}

uint32_t ReplicationShell::ServeReplicaReads() {
  ReplicationHandoff& h = *config_.status->handoff;
  uint32_t work = 0;
  for (size_t w = 0; w < h.reads.size(); ++w) {
    if (h.reads[w] == nullptr) continue;
    replication::HandoffRing& ring = h.reads[w]->requests;
    // At most kMaxReplicaReads wait in a ring (the shard lcore has no more out).
    replication::ReplicaReadRequest r;
    while (replication::PeekReplicaRequest(ring, &r)) {
      const uint64_t tagged = ShardReadCookie(w, r.cookie);
      bool polled = false;
      const Errc e = StartReplicaRead(r.queue, r.partition, r.value, r.max_records, tagged,
                                      r.by_timestamp != 0, &polled);
      if (polled) {
        ++replica_reads_inflight_;
      } else {
        AnswerShardRead(tagged, e, r.value, {});  // refused now, as a channel refuses it
      }
      ring.Pop();
      ++work;
    }
  }
  // The reads' answers (the reader submits the ones just started here).
  work += PollReplicaReads([](uint64_t, Errc, uint64_t, std::span<const shard::StoredMessage>) {
    // The replication lcore takes no client frame (it polls only the link): every replica
    // read it starts is a shard lcore's, answered above.
    SLUICE_ASSERT(false);
  });
  return work;
}

void ReplicationShell::PublishReplicaStart(const StandbyPart& p) {
  if (!config_.dedicated || config_.status->handoff == nullptr) return;
  config_.status->handoff->replica_start.Set(p.queue, p.partition, ReadStart(p));
}

uint64_t ReplicationShell::ReadStart(const StandbyPart& p) const {
  return std::max(writer_->log(p.handle).start_offset(), p.purged_below);
}

void ReplicationShell::TakeAckState(StandbyPart& p, const storage::AckState& state) {
  // Control path (a partition opened, a snapshot applied): allocates.
  p.purged_below = state.deleted_below;
  p.commits.clear();
  for (const auto& [key, offset] : state.commits) p.commits[key] = offset;
  if (!config_.dedicated || config_.status->handoff == nullptr) return;
  replication::ReplicaCommitBoard& board = config_.status->handoff->replica_commits;
  for (const auto& [key, offset] : state.commits) board.Set(p.queue, key, offset);
  if (p.partition == 0) {  // commits the snapshot no longer holds are gone
    board.Retain(p.queue, [&](std::string_view key) {
      return p.commits.contains(absl::string_view(key.data(), key.size()));
    });
  }
  PublishReplicaStart(p);
}

bool ReplicationShell::ReplicaCommitted(uint32_t queue, uint32_t partition,
                                        std::string_view group, uint64_t* offset) const {
  // The queue's commits are in partition 0's ack log (Frontend::PersistGroupCommit's key): with
  // channels, partition 0's owner holds it, and only it asks (Replicator).
  auto it = parts_.find(Key(queue, 0));
  if (it == parts_.end()) return false;
  char key[300];
  const int n = std::snprintf(key, sizeof key, "%u:%.*s", partition,
                              static_cast<int>(group.size()), group.data());
  if (n <= 0 || static_cast<size_t>(n) >= sizeof key) return false;
  auto c = it->second->commits.find(absl::string_view(key, static_cast<size_t>(n)));
  if (c == it->second->commits.end()) return false;
  *offset = c->second;
  return true;
}

uint64_t ReplicationShell::ReplicaEnd(uint32_t queue, uint32_t partition) const {
  auto it = parts_.find(Key(queue, partition));
  return it == parts_.end() ? 0 : it->second->durable_end;
}

uint64_t ReplicationShell::ReplicaStart(uint32_t queue, uint32_t partition) const {
  // Retention removes segments from below (RetainStandby), a purge mark hides what is below it
  // (§13): reads start at the oldest served.
  auto it = parts_.find(Key(queue, partition));
  if (it == parts_.end() || writer_ == nullptr) return 0;
  return std::min(ReadStart(*it->second), it->second->durable_end);
}

uint32_t ReplicationShell::PollReplicaReads(
    absl::FunctionRef<void(uint64_t, Errc, uint64_t, std::span<const shard::StoredMessage>)> fn) {
  if (reader_ == nullptr) return 0;
  return reader_->Poll([&](const storage::FetchResult& r) {
    read_records_.clear();
    r.ForEach([&](const storage::RecordView& v) {
      read_records_.push_back(shard::StoredMessage{v.offset, v.timestamp_ns, v.record});
    });
    if ((r.cookie & kShardRead) != 0) {  // a shard lcore's (a dedicated replication lcore)
      SLUICE_ASSERT(replica_reads_inflight_ > 0);
      --replica_reads_inflight_;
      AnswerShardRead(r.cookie, r.errc, r.next_offset, read_records_);
      return;
    }
    fn(r.cookie, r.errc, r.next_offset, read_records_);
  });
}

// ---- link I/O ---------------------------------------------------------------------------------

void ReplicationShell::CheckLink(uint64_t now_ns) {
  std::atomic<bool>& ready = config_.status->link_ready;
  if (config_.channel != 0) {
    // The port is channel 0's to start and restart; this channel polls its queue while it runs.
    link_started_ = ready.load(std::memory_order_acquire);
    return;
  }
  if (now_ns < next_link_check_ns_) return;
  next_link_check_ns_ = now_ns + 200'000'000;
  const uint16_t id = self_.port_id;
  if (!link_started_) {
    if (rte_eth_dev_start(id) == 0) {
      link_started_ = true;
      ready.store(true, std::memory_order_release);
      link_down_since_ns_ = now_ns;
      std::printf("sluiced: replication link started\n");
      std::fflush(stdout);
    }
    return;
  }
  if (!memif_client_) return;
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(id, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) {
    link_down_since_ns_ = 0;
    return;
  }
  if (link_down_since_ns_ == 0) link_down_since_ns_ = now_ns;
  if (now_ns < link_down_since_ns_ + 1'000'000'000) return;
  // Down for a second: connect again (blocking, once a second at most, only while down: no
  // channel's queue has shared memory mapped then, and the others stop polling first — one that
  // read `ready` just before may call the ethdev's dummy burst once, which returns 0).
  ready.store(false, std::memory_order_release);
  rte_eth_dev_stop(id);
  link_started_ = rte_eth_dev_start(id) == 0;
  ready.store(link_started_, std::memory_order_release);
  link_down_since_ns_ = now_ns;
}

bool ReplicationShell::Chance(double p) {
  if (p <= 0) return false;
  rng_ ^= rng_ << 13;  // xorshift64: deterministic, no allocation
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return static_cast<double>(rng_ >> 11) * 0x1.0p-53 < p;
}

void ReplicationShell::CheckCut(uint64_t now_ns) {
  if (!config_.fault || config_.fault->cut_file.empty() || now_ns < next_cut_check_ns_) return;
  next_cut_check_ns_ = now_ns + 100'000'000;
  const bool cut = access(config_.fault->cut_file.c_str(), F_OK) == 0;
  if (cut != cut_) {
    std::printf("sluiced: link fault: link %s\n", cut ? "cut" : "healed");
    std::fflush(stdout);
  }
  cut_ = cut;
}

std::span<std::byte> ReplicationShell::Acquire() {
  if (udp_fd_ >= 0) {
    if (udp_tx_count_ == kUdpTxBatch) FlushUdp();
    return {udp_tx_.data() + size_t{udp_tx_count_} * kUdpSlot, max_datagram_};
  }
  SLUICE_ASSERT(out_ == nullptr && tx_ != nullptr);
  if (!link_started_) return {};
  out_ = rte_pktmbuf_alloc(config_.pool);
  if (out_ == nullptr) {
    counters_->Drop(DropReason::kNoMbuf);
    return {};
  }
  const size_t room = rte_pktmbuf_tailroom(out_) - kDatagramHeaderBytes;
  return {rte_pktmbuf_mtod_offset(out_, std::byte*, kDatagramHeaderBytes),
          std::min<size_t>(room, max_datagram_)};
}

void ReplicationShell::Send(size_t bytes) {
  const bool faults = config_.fault.has_value();
  const bool drop = faults && (cut_ || Chance(config_.fault->loss));
  const bool dup = faults && !drop && Chance(config_.fault->duplicate);
  if (udp_fd_ >= 0) {
    SLUICE_ASSERT(bytes <= max_datagram_ && udp_tx_count_ < kUdpTxBatch);
    if (drop) return;  // the slot is reused by the next Acquire
    // Slot i's entry points at slot i (a reordering swap below may have moved it last round).
    tx_iov_[udp_tx_count_] = iovec{udp_tx_.data() + size_t{udp_tx_count_} * kUdpSlot, bytes};
    if (faults && udp_tx_count_ > 0 && Chance(config_.fault->reorder)) {
      std::swap(tx_iov_[udp_tx_count_], tx_iov_[udp_tx_count_ - 1]);
    }
    ++udp_tx_count_;
    if (dup && udp_tx_count_ < kUdpTxBatch) {
      std::memcpy(udp_tx_.data() + size_t{udp_tx_count_} * kUdpSlot,
                  tx_iov_[udp_tx_count_ - 1].iov_base, tx_iov_[udp_tx_count_ - 1].iov_len);
      tx_iov_[udp_tx_count_] = iovec{udp_tx_.data() + size_t{udp_tx_count_} * kUdpSlot,
                                     tx_iov_[udp_tx_count_ - 1].iov_len};
      ++udp_tx_count_;
    }
    return;
  }
  SLUICE_ASSERT(out_ != nullptr && bytes <= max_datagram_);
  if (drop) {
    rte_pktmbuf_free(out_);
    out_ = nullptr;
    return;
  }
  WriteDatagramHeaders(out_, self_, peer_, static_cast<uint16_t>(bytes));
  if (dup) {
    rte_pktmbuf_refcnt_update(out_, 1);  // sent twice; each send drops a reference
    tx_->Add(out_, *counters_);
  }
  tx_->Add(out_, *counters_);
  out_ = nullptr;
}

uint32_t ReplicationShell::PollLink(uint64_t now_ns, TxBuffer* txp, LcoreCounters& c) {
  tx_ = txp;
  counters_ = &c;
  CheckCut(now_ns);
  if (udp_fd_ >= 0) {
    const uint32_t n = PollUdp(now_ns);
    if (standby_ != nullptr && n > 0) StandbyPass(now_ns);
    return n;
  }
  TxBuffer& tx = *txp;
  CheckLink(now_ns);
  uint32_t n = 0;
  rte_mbuf* pkts[32];
  if (link_started_) {
    n = rte_eth_rx_burst(self_.port_id, config_.link_queue, pkts, 32);
    c.rx_packets += n;
    for (uint16_t i = 0; i < n; ++i) {
      rte_mbuf* m = pkts[i];
      c.rx_bytes += m->pkt_len;
      if (steer_.has_value()) {
        // Another channel's frame (a hashing receiver put it on this queue): to its lcore.
        const int ch = LinkFrameChannel({rte_pktmbuf_mtod(m, const uint8_t*), m->data_len},
                                        base_udp_port_, config_.channels);
        if (ch != kSteerHere && ch != config_.channel) {
          if (!steer_->HandOff(static_cast<uint16_t>(ch), m)) rte_pktmbuf_free(m);
          continue;
        }
      }
      OnLinkFrame(m, now_ns, tx, c);
    }
  }
  // Frames of this channel that other channels' lcores received (bounded: two bursts a pass).
  if (steer_.has_value()) {
    for (int round = 0; round < 2; ++round) {
      const uint32_t k = steer_->Take(pkts, 32);
      for (uint32_t i = 0; i < k; ++i) OnLinkFrame(pkts[i], now_ns, tx, c);
      n += k;
      if (k < 32) break;
    }
  }
  if (standby_ != nullptr && n > 0) StandbyPass(now_ns);
  return n;
}

void ReplicationShell::OnLinkFrame(rte_mbuf* m, uint64_t now_ns, TxBuffer& tx, LcoreCounters& c) {
  Peer from;
  switch (ClassifyFrame(m, self_, c, &from)) {
    case RxVerdict::kDrop: rte_pktmbuf_free(m); break;
    case RxVerdict::kReply: tx.Add(m, c); break;
    case RxVerdict::kDatagram: {
      if (from.ipv4 == peer_.ipv4 && !peer_mac_known_) {
        peer_.mac = from.mac;  // learned: unicast from now on
        peer_mac_known_ = true;
      }
      const std::span<const std::byte> d(reinterpret_cast<const std::byte*>(DatagramPayload(m)),
                                         DatagramPayloadLength(m));
      if (primary_ != nullptr) {
        primary_->OnDatagram(d, now_ns);
      } else {
        standby_->OnDatagram(d, now_ns, *this);
      }
      rte_pktmbuf_free(m);
      break;
    }
  }
}

uint32_t ReplicationShell::Poll(uint64_t now_ns, Persistence* storage, TxBuffer* tx,
                                LcoreCounters& c) {
  tx_ = tx;
  counters_ = &c;
  if (log_reader_ != nullptr) storage = log_reader_.get();  // a dedicated replication lcore
  storage_ = storage;
  uint32_t work = 0;
  if (config_.dedicated) work += DrainHandoff(now_ns);
  if (primary_ != nullptr) {
    // Catch-up: batches memory no longer holds, read back from the log (bounded per pass).
    if (storage != nullptr) {
      // The answers of earlier passes first (each into its Streamer), then new reads.
      backfills_this_pass_ = 0;
      storage->PollBatchReads(
          [&](const Persistence::BatchRead& r) { OnCatchupRead(r, now_ns, storage); });
      StartCatchupReads(now_ns, storage);
      work += backfills_this_pass_;
      SendAckSnapshots(now_ns, storage);
      SendLogStarts(now_ns, storage);
    }
    // A new catalog from the control plane (rare): copied under the mailbox's mutex. Channel 0
    // carries the catalog (metadata is box-wide); the others only partitions.
    if (const uint64_t seq = config_.channel == 0 ? config_.status->catalog_out_seq.load(
                                                        std::memory_order_acquire)
                                                  : catalog_seq_seen_;
        seq != catalog_seq_seen_) {
      catalog_seq_seen_ = seq;
      {
        std::lock_guard lock(config_.status->catalog_mu);
        catalog_scratch_ = config_.status->catalog_out;
      }
      primary_->SetCatalog({reinterpret_cast<const std::byte*>(catalog_scratch_.data()),
                            catalog_scratch_.size()});
    }
    work += primary_->Poll(now_ns, *this);
    if (config_.dedicated) PublishBoard(now_ns);
    PublishFence();
  } else {
    StandbyPass(now_ns);
    if (config_.dedicated) work += ServeReplicaReads();
    work += writer_->Poll([&](const storage::Completion& comp) {
      auto it = by_handle_.find(comp.handle);
      if (it == by_handle_.end()) return;
      StandbyPart* p = it->second;
      if (comp.errc != Errc::kOk) {
        if (!p->failed) {
          std::fprintf(stderr, "sluiced: standby: queue %u partition %u: storage failed: %s; "
                       "durable up to offset %llu; not acknowledging more\n", p->queue,
                       p->partition, writer_->failure(p->handle).c_str(),
                       static_cast<unsigned long long>(comp.durable.value));
        }
        p->failed = true;
        config_.status->apply_failures.fetch_add(1, std::memory_order_relaxed);
      }
      p->durable_end = comp.durable.value;
      config_.status->durable.Set(p->queue, p->partition, comp.durable.value);
      standby_->OnDurable(p->queue, p->partition, comp.durable.value);
    });
    // Free the arena from the head: batches whose partition is durable past them.
    while (!pending_.empty() && (pending_.front().part == nullptr ||
                                 pending_.front().part->durable_end >= pending_.front().end)) {
      pending_.pop_front();
    }
    if (pending_.empty()) arena_tail_ = 0;
    standby_->ForEachRetention(now_ns, [&](uint32_t q, uint32_t p, uint64_t keep_from) {
      RetainStandby(q, p, keep_from);
    });
    work += standby_->Poll(now_ns, *this, *this);
    FlushStandbyAcks();  // one pwrite per ack log that took records this pass
    if (standby_->TakeCatalog(&catalog_scratch_)) {
      std::lock_guard lock(config_.status->catalog_mu);
      config_.status->catalog_in = std::move(catalog_scratch_);
      config_.status->catalog_in_seq.fetch_add(1, std::memory_order_release);
    }
  }
  if (udp_fd_ >= 0) FlushUdp();  // one sendmmsg for what this pass produced
  if (now_ns >= last_status_ns_ + kStatusIntervalNs) {
    last_status_ns_ = now_ns;
    PublishStatus();
  }
  return work;
}

void ReplicationShell::StartCatchupReads(uint64_t now_ns, Persistence* storage) {
  primary_->ForEachBackfill([&](uint32_t q, uint32_t p, uint64_t from) {
    if (catchup_in_flight_ >= kCatchupReads) return;
    uint32_t free_slot = kCatchupReads;
    for (uint32_t i = 0; i < kCatchupReads; ++i) {
      const CatchupRead& c = catchup_[i];
      if (c.busy && c.queue == q && c.partition == p) return;  // its read is in flight
      if (!c.busy && free_slot == kCatchupReads) free_slot = i;
    }
    SLUICE_ASSERT(free_slot < kCatchupReads);  // in flight < kCatchupReads
    uint64_t hint_segment = UINT64_MAX, hint_position = 0;
    if (auto it = catchup_hints_.find(Key(q, p)); it != catchup_hints_.end()) {
      if (now_ns < it->second.retry_after_ns) return;  // failed recently
      if (it->second.next_offset == from) {
        hint_segment = it->second.segment;
        hint_position = it->second.position;
      }
    }
    const uint64_t cookie = ++catchup_seq_;
    const Errc e = storage->StartBatchRead(q, p, from, hint_segment, hint_position, cookie);
    if (e == Errc::kThrottled || e == Errc::kUnknownPartition) return;  // nothing will come
    // kOk, or an answer without I/O (out of range, a failed log), which comes through
    // PollBatchReads like the others.
    catchup_[free_slot] = CatchupRead{true, q, p, from, cookie, hint_segment != UINT64_MAX};
    ++catchup_in_flight_;
    ++backfill_reads_async_;
    backfill_reads_inflight_max_ = std::max<uint64_t>(backfill_reads_inflight_max_, catchup_in_flight_);
  });
}

void ReplicationShell::OnCatchupRead(const Persistence::BatchRead& r, uint64_t now_ns,
                                     Persistence* storage) {
  uint32_t i = 0;
  while (i < kCatchupReads && !(catchup_[i].busy && catchup_[i].cookie == r.cookie)) ++i;
  if (i == kCatchupReads) return;  // a previous shell's read
  const CatchupRead c = catchup_[i];
  catchup_[i].busy = false;
  --catchup_in_flight_;
  const uint32_t q = c.queue, p = c.partition;
  switch (r.errc) {
    case Errc::kOk: {
      SLUICE_ASSERT(r.base == c.from);
      // The Streamer takes it if it still wants this batch (it may have moved on, or gone).
      primary_->Backfill(q, p, r.bytes, r.base, r.end);
      ++backfills_this_pass_;
      catchup_hints_[Key(q, p)] = CatchupHint{r.end, r.next_hint_segment, r.next_hint_position, 0};
      return;
    }
    case Errc::kUnknownPartition:  // closed (queue deleted) while the read was in flight
      catchup_hints_.erase(Key(q, p));
      return;
    case Errc::kOffsetOutOfRange: {
      if (c.hinted) {  // possibly a stale hint (the partition was recreated): once without it
        catchup_hints_.erase(Key(q, p));
        return;
      }
      if (const uint64_t start = storage->FirstSegmentBase(q, p);
          start != shard::kNoOffset && c.from < start && primary_->BehindStart(q, p, c.from)) {
        // Retention removed what this standby still needs (it was away, or wiped, longer than
        // retention keeps): it restarts that partition's log empty at our start, told by
        // LOG_START (docs/replication.md §4 "Behind the start"); its ack moves the streamer
        // there. Nothing is read for it meanwhile. Said once per occurrence.
        std::fprintf(stderr, "sluiced: replication: queue %u partition %u: the standby needs "
                     "offset %llu but this log starts at %llu (retention): it restarts its log "
                     "empty at %llu\n", q, p, static_cast<unsigned long long>(c.from),
                     static_cast<unsigned long long>(start), static_cast<unsigned long long>(start));
      }
      return;
    }
    default: {
      // An I/O error or a batch that does not verify: counted, said (once a second per
      // channel), and tried again after a while; the standby waits meanwhile.
      ++backfill_read_errors_;
      catchup_hints_[Key(q, p)] = CatchupHint{UINT64_MAX, UINT64_MAX, 0, now_ns + kCatchupRetryNs};
      if (now_ns >= next_read_error_log_ns_) {
        next_read_error_log_ns_ = now_ns + 1'000'000'000;
        std::fprintf(stderr, "sluiced: replication: queue %u partition %u: catch-up read of the "
                     "batch at offset %llu failed (%.*s): the standby waits; %llu failed so far\n",
                     q, p, static_cast<unsigned long long>(c.from),
                     static_cast<int>(ErrcName(r.errc).size()), ErrcName(r.errc).data(),
                     static_cast<unsigned long long>(backfill_read_errors_));
      }
      return;
    }
  }
}

void ReplicationShell::PublishStatus() {
  // This channel's figures; the main thread sums the channels into the box's.
  ReplicationStatus& box = *config_.status;
  ChannelStatus& s = box.channels[config_.channel];
  const replication::LinkCounters& c =
      primary_ != nullptr ? primary_->counters() : standby_->counters();
  constexpr auto kR = std::memory_order_relaxed;
  using F = ReplicationFigure;
  ReplicationFigures& f = s.figures;
  f.Set(F::kBatchesSent, c.batches_sent);
  f.Set(F::kBatchesResent, c.batches_resent);
  f.Set(F::kBatchesApplied, c.batches_applied);
  f.Set(F::kBackfillBatches, c.backfill_batches);
  f.Set(F::kBackfillReadsAsync, backfill_reads_async_);
  f.Set(F::kBackfillReadErrors, backfill_read_errors_);
  if (log_reader_ != nullptr) {
    f.Set(F::kLogReaderRingReads, log_reader_->read_stats().reads);
    f.Set(F::kLogReaderRefreshes, log_reader_->refreshes());
    f.Set(F::kLogReaderRescans, log_reader_->reloads());
  }
  f.Set(F::kRxMalformed, c.rx_malformed);
  f.Set(F::kRxStaleEpoch, c.rx_stale_epoch);
  f.Set(F::kAcklogRecordsSent, c.acklog_records_sent);
  f.Set(F::kAcklogRecordsResent, c.acklog_records_resent);
  f.Set(F::kAcklogSnapshotsSent, c.acklog_snapshots_sent);
  f.Set(F::kAcklogRecordsApplied, c.acklog_records_applied);
  f.Set(F::kAcklogSnapshotsApplied, c.acklog_snapshots_applied);
  f.Set(F::kAcklogDropped, c.acklog_dropped);
  s.backfill_reads_inflight_max.store(backfill_reads_inflight_max_, kR);
  s.rx_shape_mismatch.store(c.rx_shape_mismatch, kR);
  f.Set(F::kBehindStartRestarts,
        primary_ != nullptr ? c.standby_behind_start : c.behind_start_restarts);
  if (steer_.has_value()) {
    f.Set(F::kLinkSteered, steer_->handed_off);
    f.Set(F::kLinkSteerDropped, steer_->full);
    s.link_steered_in.store(steer_->taken, kR);
  }
  if (config_.dedicated) {
    f.Set(F::kHandoffBatches, handoff_batches_);
    f.Set(F::kHandoffFromLog, handoff_from_log_);
    f.Set(F::kHandoffAcksLost, box.handoff->acks_lost.load(kR));
    f.Set(F::kReplicaReadsServed, replica_reads_served_);
    f.Set(F::kReplicaReadsThrottled,
          box.handoff->replica_reads_throttled.load(kR) + replica_answers_throttled_);
    // The shard lcores' view of each partition's start: retention moves it (through the
    // writer's ring), so it is published again with the status (the replication lcore checks
    // every read against its writer anyway).
    if (standby_ != nullptr) {
      for (const auto& [k, p] : parts_) PublishReplicaStart(*p);
    }
  }
  f.Set(F::kAcklogSnapshotJobs, acklog_snapshot_jobs_);
  f.Set(F::kAckReplaceWaits, ack_replace_waits_);
  if (primary_ != nullptr) {
    f.Set(F::kAcklogLag, primary_->ack_lag());
    uint64_t lag = 0, partitions = 0;
    bool all_caught_up = primary_->connected();
    // The streamers: lag and catch-up over every partition.
    primary_->ForEachStreamer([&](const replication::Streamer& st) {
      lag += st.offered_end() - std::min(st.offered_end(), st.acked_end());
      all_caught_up = all_caught_up && st.caught_up();
      ++partitions;
    });
    f.Set(F::kLagOffsets, lag);
    s.connected.store(primary_->connected(), kR);
    s.partitions.store(partitions, kR);
    s.caught_up.store(all_caught_up, kR);
    s.catalog_acked.store(primary_->catalog_acked(), kR);
  } else {
    f.Set(F::kTruncatedRecords, standby_->truncated_records());
    f.Set(F::kStandbyFileJobs, standby_file_jobs_);
    s.connected.store(standby_->primary_alive(last_status_ns_), kR);
    s.caught_up.store(standby_->caught_up(), kR);
    s.partitions.store(parts_.size(), kR);
    s.primary_client_ipv4.store(standby_->primary_client_ipv4(), kR);
    s.primary_client_port.store(standby_->primary_client_port(), kR);
  }
  const bool mismatch = primary_ != nullptr ? primary_->shape_mismatch() : standby_->shape_mismatch();
  if (mismatch && !shape_logged_) {
    shape_logged_ = true;
    const replication::ChannelShape& peer =
        primary_ != nullptr ? primary_->peer_shape() : standby_->peer_shape();
    std::fprintf(stderr, "sluiced: replication: channel %u: REFUSED the peer: it replicates as "
                 "channel %u of %u with layout shape %08x, this box as channel %u of %u with "
                 "shape %08x. Both boxes must split their shards over the same number of "
                 "replication lcores the same way ([dataplane] shards and each [[lcore]]'s "
                 "shards and link queue alike); nothing is replicated until they do\n",
                 config_.channel, peer.channel, peer.channels, peer.layout, config_.channel,
                 config_.channels, config_.layout_shape);
    std::fflush(stderr);
  }
  s.published.fetch_add(1, std::memory_order_release);
}

void ReplicationShell::PublishFence() {
  // Box-wide at once: every channel's Writable and the other workers' role view read it.
  if (primary_ == nullptr || !primary_->fenced() || fence_published_) return;
  fence_published_ = true;
  ReplicationStatus& box = *config_.status;
  uint64_t h = box.higher_epoch.load(std::memory_order_relaxed);
  while (h < primary_->higher_epoch() &&
         !box.higher_epoch.compare_exchange_weak(h, primary_->higher_epoch())) {
  }
  box.fenced.store(true, std::memory_order_release);
}

void AggregateReplicationStatus(ReplicationStatus& s) {
  const uint32_t n = s.channel_count;
  // A new box publication only when every channel published since the last one.
  uint64_t seen[kMaxReplicationChannels];
  for (uint32_t i = 0; i < n; ++i) {
    seen[i] = s.channels[i].published.load(std::memory_order_acquire);
    if (seen[i] <= s.aggregated_at[i]) return;
  }
  constexpr auto kR = std::memory_order_relaxed;
  bool connected = true, caught_up = true, catalog = true;
  uint64_t epoch = s.epoch.load(kR);
  uint64_t bf_inflight_max = 0;
  std::array<uint64_t, kReplicationFigures> sums{};
  uint32_t client_ipv4 = 0;
  uint16_t client_port = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const ChannelStatus& c = s.channels[i];
    for (size_t f = 0; f < kReplicationFigures; ++f) sums[f] += c.figures.v[f].load(kR);
    connected = connected && c.connected.load(kR);
    caught_up = caught_up && c.caught_up.load(kR);
    catalog = catalog && c.catalog_acked.load(kR);
    epoch = std::max(epoch, c.epoch.load(kR));
    bf_inflight_max = std::max(bf_inflight_max, c.backfill_reads_inflight_max.load(kR));
    if (client_ipv4 == 0) {
      client_ipv4 = c.primary_client_ipv4.load(kR);
      client_port = c.primary_client_port.load(kR);
    }
  }
  for (size_t f = 0; f < kReplicationFigures; ++f) s.figures.v[f].store(sums[f], kR);
  s.connected.store(connected, kR);
  s.caught_up.store(caught_up, kR);
  if (s.role.load(kR) == 1) s.catalog_acked.store(catalog, kR);  // channel 0 carries it
  if (s.role.load(kR) == 2) s.epoch.store(epoch, kR);  // a standby's: the highest adopted
  s.backfill_reads_inflight_max.store(bf_inflight_max, kR);
  s.primary_client_ipv4.store(client_ipv4, kR);
  s.primary_client_port.store(client_port, kR);
  for (uint32_t i = 0; i < n; ++i) s.aggregated_at[i] = seen[i];
  s.published.fetch_add(1, std::memory_order_release);
}

absl::StatusOr<uint64_t> AdoptChannelEpoch(ReplicationStatus& s, uint16_t channel,
                                           uint64_t epoch) {
  std::lock_guard lock(s.state_mu);
  replication::ReplicationState next = s.state;
  // Every channel's epoch is written (a channel not listed would start at the box's, which
  // may be newer than the primary its partitions last followed).
  for (uint32_t c = 0; c < s.channel_count; ++c) {
    next.channel_epochs.emplace(c, s.state.EpochOfChannel(c));
  }
  next.channel_epochs[channel] = std::max(next.channel_epochs[channel], epoch);
  next.epoch = std::max(next.epoch, epoch);
  next.role = "standby";
  if (absl::Status st = replication::SaveState(s.state_path, next); !st.ok()) return st;
  s.state = std::move(next);
  uint64_t e = s.epoch.load(std::memory_order_relaxed);
  while (e < s.state.epoch && !s.epoch.compare_exchange_weak(e, s.state.epoch)) {
  }
  return s.state.epoch;
}

// ---- retention --------------------------------------------------------------------------------
// The standby removes what the primary removed (docs/replication.md §4 "Retention"): the primary
// states each partition's log start (LOG_START, every second), the standby cuts its own closed
// segments wholly below min(that start, its durable end). Its segment boundaries may differ from
// the primary's: it keeps at most a segment more.

void ReplicationShell::SendLogStarts(uint64_t now_ns, Persistence* storage) {
  if (now_ns < next_log_start_ns_) return;
  next_log_start_ns_ = now_ns + 1'000'000'000;
  // Once a second, a lookup per partition: the writer's first segment. Not the purge mark above
  // it (LogStart): a standby whose log ends below the start restarts there, which must be a
  // batch boundary this log holds; the purged segments go at the primary's next retention pass,
  // and the standby's a second or so later.
  primary_->ForEachStreamer([&](const replication::Streamer& st) {
    const uint64_t start = storage->FirstSegmentBase(st.queue(), st.partition());
    if (start != shard::kNoOffset) primary_->SetLogStart(st.queue(), st.partition(), start);
  });
}

void ReplicationShell::RetainStandby(uint32_t queue, uint32_t partition, uint64_t keep_from) {
  auto it = parts_.find(Key(queue, partition));
  if (it == parts_.end()) return;
  StandbyPart* p = it->second.get();
  if (p->failed) return;
  // Never anything not durable here (the applier's durable end is this one's; after a cut,
  // recovery may have ended the log lower still).
  keep_from = std::min(keep_from, p->durable_end);
  const storage::LogState& log = writer_->log(p->handle);
  if (log.segments.size() <= 1 || keep_from <= log.start_offset()) return;  // nothing to remove
  storage::UringWriter::Retention r;
  r.keep_from_offset = keep_from;
  absl::StatusOr<uint32_t> removed = writer_->EnforceRetention(p->handle, r);
  if (!removed.ok()) {
    // As a failed write: the partition stops (its unlinks' own failures come through Poll).
    std::fprintf(stderr, "sluiced: standby: queue %u partition %u: retention failed: %s; "
                 "durable up to offset %llu; not acknowledging more\n", queue, partition,
                 std::string(removed.status().message()).c_str(),
                 static_cast<unsigned long long>(p->durable_end));
    p->failed = true;
    config_.status->apply_failures.fetch_add(1, std::memory_order_relaxed);
  }
}

// ---- standby ---------------------------------------------------------------------------------

void ReplicationShell::StandbyPass(uint64_t now_ns) {
  running_ = true;
  pass_ns_ = now_ns;
  if (!ack_replaces_.empty()) ReapAckReplaces();
  // Partition file jobs the worker finished: adopted (a cut's Truncated may adopt the epoch,
  // persisted below in this same pass).
  if (!standby_jobs_.empty()) PollStandbyJobs(now_ns);
  // Divergent tails first, then the epoch they made us adopt, persisted before anything of the
  // new primary is acknowledged. Each cut runs on the file worker (docs/replication.md §4); the
  // partition stays divergent until it completed.
  if (standby_->divergent()) {
    struct Cut { uint32_t q, p; uint64_t ours, to; };
    std::vector<Cut> cuts;
    standby_->ForEachDivergent([&](uint32_t q, uint32_t p, uint64_t ours, uint64_t to) {
      cuts.push_back({q, p, ours, to});
    });
    for (const Cut& c : cuts) {
      StartStandbyJob(storage::PartitionOpenJob::Change::kCut, c.q, c.p, c.ours, c.to, now_ns);
    }
  }
  // Logs that end below the primary's start (wiped, or away longer than its retention keeps):
  // restarted empty at that start (on the file worker: as a new partition's first segment).
  struct Behind { uint32_t q, p; uint64_t ours, start; };
  std::vector<Behind> behind;
  standby_->ForEachBehindStart([&](uint32_t q, uint32_t p, uint64_t ours, uint64_t start) {
    behind.push_back({q, p, ours, start});
  });
  for (const Behind& b : behind) {
    StartStandbyJob(storage::PartitionOpenJob::Change::kRestart, b.q, b.p, b.ours, b.start,
                    now_ns);
  }
  if (standby_->TakeEpochChange()) {
    // This channel's partitions are cut; the others adopt the epoch for theirs (each recorded
    // per channel: a restart checks every channel's logs against the epoch it last followed).
    absl::StatusOr<uint64_t> box = AdoptChannelEpoch(*config_.status, config_.channel,
                                                     standby_->epoch());
    if (!box.ok()) {
      const absl::Status& st = box.status();
      // The epoch (and its start offsets) is what fences an old primary and finds divergent
      // tails after a restart: a standby that applies a newer epoch's batches without it on
      // disk could, restarted, take a deposed primary's tail for its own. Stop loudly instead
      // of limping on; the primary meanwhile answers sync queues NOT_REPLICATED, and nothing
      // it acked is lost. Exit code 7 is sluiced's "storage" code (dataplane/main.cc).
      std::fprintf(stderr, "sluiced: standby: FATAL: cannot persist epoch %llu: %s; "
                   "stopping (exit 7)\n",
                   static_cast<unsigned long long>(standby_->epoch()),
                   std::string(st.message()).c_str());
      std::fflush(stderr);
      std::_Exit(7);
    }
    config_.status->channels[config_.channel].epoch.store(standby_->epoch(),
                                                          std::memory_order_relaxed);
  }
}

absl::Status ReplicationShell::OpenStandbyPartition(uint32_t queue, uint32_t partition,
                                                    shard::Durability d) {
  const std::string data_dir = DataDirOf(config_.storage, queue, partition);
  const storage::PartitionId id{queue, partition};
  std::optional<storage::RecoveredPartition> rec;
  if (config_.recovery != nullptr) rec = config_.recovery->Take(queue, partition);
  if (!rec.has_value()) {
    rec = storage::RecoverPartition(storage::PartitionToRecover{data_dir, id, UINT64_MAX, false},
                                    RecoveryOptionsOf(config_.storage));
  }
  if (!rec->status.ok()) return rec->status;
  auto dir = storage::PartitionDir::Open(data_dir, id, true);
  if (!dir.ok()) return dir.status();
  // The replicated ack log, compacted as the primary's is at open.
  rec->acks.Compact(rec->log.start_offset());
  absl::StatusOr<storage::AckLog> acks =
      storage::AckLog::Open(dir->path(), dir->AckLogPath(), rec->acks);
  if (!acks.ok()) return acks.status();
  const uint64_t end = rec->log.next_offset;
  storage::PartitionSpec spec{data_dir, id, d, config_.epoch};
  auto h = writer_->OpenPartition(spec, std::move(rec->log));
  if (!h.ok()) return h.status();
  InstallStandbyPart(queue, partition, d, data_dir, end, std::move(*acks), rec->acks, *h);
  return absl::OkStatus();
}

absl::Status ReplicationShell::AdoptStandbyPartition(uint32_t queue, uint32_t partition,
                                                     shard::Durability d,
                                                     storage::PartitionOpenJob& job) {
  SLUICE_ASSERT(job.done() && job.status().ok() && job.acks.has_value());
  const uint64_t end = job.rec.log.next_offset;
  storage::PartitionSpec spec{job.data_dir, job.id, d, config_.epoch};
  // No blocking file-system call: the segment's registered-file slot is set through the ring.
  auto h = writer_->AdoptPartition(spec, std::move(job.rec.log), std::move(job.files));
  if (!h.ok()) return h.status();
  InstallStandbyPart(queue, partition, d, job.data_dir, end, std::move(*job.acks), job.rec.acks,
                     *h);
  job.acks.reset();
  return absl::OkStatus();
}

void ReplicationShell::InstallStandbyPart(uint32_t queue, uint32_t partition, shard::Durability d,
                                          const std::string& data_dir, uint64_t end,
                                          storage::AckLog acks,
                                          const storage::AckState& ack_state,
                                          storage::PartitionHandle h) {
  auto part = std::make_unique<StandbyPart>();
  part->queue = queue;
  part->partition = partition;
  part->handle = h;
  part->data_dir = data_dir;
  part->durability = d;
  part->durable_end = end;
  part->incarnation = ++incarnations_;
  part->acks.emplace(std::move(acks));
  // Its address is the ring's user data: the part is heap-held by parts_ and never moves.
  part->acks->Attach(ack_ring_.get(), Key(queue, partition));
  TakeAckState(*part, ack_state);
  by_handle_[h] = part.get();
  parts_[Key(queue, partition)] = std::move(part);
  if (!config_.status->durable.Set(queue, partition, end)) {
    std::fprintf(stderr, "sluiced: standby: queue %u partition %u: more partitions than the "
                 "durable board holds (%u): group commits naming it wait\n", queue, partition,
                 replication::DurableBoard::kSlots);
  }
  standby_->AddPartition(queue, partition, end);
  PublishReplicaStart(*parts_.at(Key(queue, partition)));
}

void ReplicationShell::CloseStandbyPartition(uint32_t queue, uint32_t partition,
                                             bool keep_applier) {
  auto it = parts_.find(Key(queue, partition));
  if (it == parts_.end()) return;
  // Close waits for the partition's writes in flight; its arena entries go with the head.
  writer_->ClosePartition(it->second->handle);
  StandbyPart* part = it->second.get();
  if (part->acks.has_value()) SettleStandbyAcks(*part->acks);
  if (part->ack_dirty) std::erase(ack_dirty_, part);
  for (uint32_t i = 0; i < pending_.count; ++i) {
    if (pending_.at(i).part == it->second.get()) pending_.at(i).part = nullptr;
  }
  by_handle_.erase(it->second->handle);
  config_.status->durable.Set(queue, partition, 0);
  if (config_.dedicated) config_.status->handoff->replica_start.Close(queue, partition);
  if (!keep_applier) standby_->RemovePartition(queue, partition);
  parts_.erase(it);
}

void ReplicationShell::SetTable(const QueueTable& table) {
  if (standby_ == nullptr) return;
  // The durable partitions of this worker's shards are written here (this channel's: the
  // primary's channel of the same number streams them, the layouts being of the same shape).
  absl::flat_hash_map<uint64_t, Wanted> wanted;
  std::vector<std::pair<uint32_t, uint32_t>> order;  // the table's order, for the opens
  for (const QueueInfo& q : table.queues()) {
    if (q.config.durability == shard::Durability::kNone) continue;
    for (uint32_t p = 0; p < q.partition_shard.size(); ++p) {
      if (!config_.dedicated && table.WorkerOfShard(q.partition_shard[p]) != config_.worker) {
        continue;  // a dedicated replication lcore writes every partition
      }
      wanted[Key(q.id, p)] = Wanted{q.config.durability, q.name};
      order.push_back({q.id, p});
    }
  }
  wanted_ = std::move(wanted);
  for (const auto& [q, p] : order) {
    const uint64_t k = Key(q, p);
    if (parts_.contains(k)) continue;
    const Wanted& w = wanted_.at(k);
    if (auto j = standby_jobs_.find(k); j != standby_jobs_.end()) {
      j->second.gone = false;  // wanted again before its job completed
      continue;
    }
    if (running_) {
      // The lcore runs: recovery, the ack log's rewrite and the first segment's creation go to
      // the file worker; the partition joins when they are done (PollStandbyJobs).
      StartStandbyJob(storage::PartitionOpenJob::Change::kNone, q, p, 0, 0, 0);
      if (!standby_jobs_.contains(k)) {
        std::fprintf(stderr, "sluiced: standby: queue '%s' partition %u: %u partition file jobs "
                     "under way: not replicated here\n", w.name.c_str(), p, kMaxFileJobs);
      }
      continue;
    }
    // Before the loop runs (the main thread, at start): opened here, as at start-up.
    if (absl::Status st = OpenStandbyPartition(q, p, w.durability); !st.ok()) {
      std::fprintf(stderr, "sluiced: standby: queue '%s' partition %u: %s; not replicated here\n",
                   w.name.c_str(), p, std::string(st.message()).c_str());
    }
  }
  std::vector<std::pair<uint32_t, uint32_t>> gone;
  for (const auto& [k, p] : parts_) {
    if (!wanted_.contains(k)) gone.push_back({p->queue, p->partition});
  }
  for (const auto& [q, p] : gone) CloseStandbyPartition(q, p);
  // A partition whose job is under way is closed once the job completed (FinishStandbyJob).
  for (auto& [k, j] : standby_jobs_) j.gone = !wanted_.contains(k);
}

Errc ReplicationShell::Apply(uint32_t queue, uint32_t partition, std::span<const std::byte> batch,
                             const storage::BatchHeader& h) {
  auto it = parts_.find(Key(queue, partition));
  if (it == parts_.end()) return Errc::kUnknownPartition;
  StandbyPart* part = it->second.get();
  if (part->failed) return Errc::kStorageFailed;
  const uint32_t len = static_cast<uint32_t>(batch.size());
  if (pending_.full()) return Errc::kThrottled;
  // Room in the arena: after the tail, or from 0 when the head has moved past it.
  uint32_t pos = arena_tail_;
  if (!pending_.empty()) {
    const uint32_t head = pending_.front().pos;
    if (arena_tail_ >= head) {
      if (arena_bytes_ - arena_tail_ < len) {
        if (head < len) return Errc::kThrottled;
        pos = 0;
      }
    } else if (head - arena_tail_ < len) {
      return Errc::kThrottled;
    }
  } else if (arena_bytes_ < len) {
    return Errc::kMessageTooLarge;
  }
  std::memcpy(arena_ + pos, batch.data(), len);
  shard::SealedBatch b;
  b.bytes = std::span<std::byte>(arena_ + pos, len);
  b.header_bytes = h.header_bytes;
  b.used_bytes = h.header_bytes + h.payload_bytes;
  b.first_offset = h.base_offset;
  b.count = h.count;
  b.first_timestamp_ns = h.first_timestamp_ns;
  b.last_timestamp_ns = h.last_timestamp_ns;
  const Errc e = writer_->SubmitEncoded(part->handle, b);
  if (e != Errc::kOk) return e;
  pending_.push_back({part, h.end_offset(), pos, len});
  arena_tail_ = pos + len;
  return Errc::kOk;
}

void ReplicationShell::StartStandbyJob(storage::PartitionOpenJob::Change change, uint32_t queue,
                                       uint32_t partition, uint64_t ours, uint64_t offset,
                                       uint64_t now_ns) {
  using Change = storage::PartitionOpenJob::Change;
  const uint64_t k = Key(queue, partition);
  if (standby_jobs_.contains(k)) return;  // under way: its completion decides
  if (change != Change::kNone) {
    if (auto r = change_retry_ns_.find(k); r != change_retry_ns_.end()) {
      if (now_ns < r->second) return;  // failed a moment ago: tried again after a second
      change_retry_ns_.erase(r);
    }
  }
  if (FileJobsUnderWay() >= kMaxFileJobs) return;  // a later pass
  auto w = wanted_.find(k);
  auto open = parts_.find(k);
  if (open == parts_.end() && w == wanted_.end()) return;  // no longer a partition of ours
  StandbyJob j;
  j.job = std::make_shared<storage::PartitionOpenJob>();
  storage::PartitionOpenJob& job = *j.job;
  job.data_dir = DataDirOf(config_.storage, queue, partition);
  job.id = storage::PartitionId{queue, partition};
  job.change = change;
  job.offset = offset;
  job.segment_bytes = config_.storage.segment_bytes;
  job.direct_io = true;  // the standby writer's (WriterConfig's default)
  job.recovery = RecoveryOptionsOf(config_.storage);
  j.ours = ours;
  if (w != wanted_.end()) {
    j.durability = w->second.durability;
    j.name = w->second.name;
  }
  if (change == Change::kNone && config_.recovery != nullptr) {
    job.recovered = config_.recovery->Take(queue, partition);  // a mutex, no file call
  }
  if (open != parts_.end()) {
    StandbyPart* part = open->second.get();
    j.durability = part->durability;
    if (change == Change::kRestart && writer_->log(part->handle).next_offset >= offset) {
      // Everything written here ends at or below the applier's end, which is below the start:
      // only what the primary no longer holds is thrown away (RestartLog also refuses a segment
      // at or past it).
      std::fprintf(stderr, "sluiced: standby: queue %u partition %u: cannot restart the log at "
                   "%llu: the log ends at %llu, not below it\n", queue, partition,
                   static_cast<unsigned long long>(offset),
                   static_cast<unsigned long long>(writer_->log(part->handle).next_offset));
      return;
    }
    // The log as the writer has it, for the cut to find its place without recovering first.
    if (change == Change::kCut) job.closed_log = writer_->log(part->handle);
  }
  if (change == Change::kRestart) {
    std::fprintf(stderr, "sluiced: standby: queue %u partition %u: my log ends at %llu, below the "
                 "primary's start %llu: restarting it empty at %llu\n", queue, partition,
                 static_cast<unsigned long long>(ours), static_cast<unsigned long long>(offset),
                 static_cast<unsigned long long>(offset));
  }
  // Closed before the files change: its writes in flight complete first (a wait on the
  // writer's ring), its ack log's requests too; the applier stays.
  if (open != parts_.end()) CloseStandbyPartition(queue, partition, /*keep_applier=*/true);
  const bool submitted = files_->Submit(j.job);
  // The worker holds only this shell's jobs (standby_jobs_, ack_replaces_), fewer than its bound.
  SLUICE_ASSERT(submitted);
  standby_jobs_.emplace(k, std::move(j));
}

void ReplicationShell::PollStandbyJobs(uint64_t now_ns) {
  std::vector<uint64_t> done;  // rare: a job completed (control path)
  for (const auto& [k, j] : standby_jobs_) {
    if (j.job->done()) done.push_back(k);
  }
  for (uint64_t k : done) {
    auto it = standby_jobs_.find(k);
    StandbyJob j = std::move(it->second);
    standby_jobs_.erase(it);
    FinishStandbyJob(static_cast<uint32_t>(k >> 32), static_cast<uint32_t>(k), j, now_ns);
  }
}

void ReplicationShell::FinishStandbyJob(uint32_t queue, uint32_t partition, StandbyJob& j,
                                        uint64_t now_ns) {
  using Change = storage::PartitionOpenJob::Change;
  storage::PartitionOpenJob& job = *j.job;
  ++standby_file_jobs_;
  absl::Status opened = job.status();
  if (opened.ok()) opened = AdoptStandbyPartition(queue, partition, j.durability, job);
  const auto off = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  switch (job.change) {
    case Change::kNone:
      if (!opened.ok()) {
        std::fprintf(stderr, "sluiced: standby: queue '%s' partition %u: %s; not replicated "
                     "here\n", j.name.c_str(), partition, std::string(opened.message()).c_str());
      }
      break;
    case Change::kCut: {
      absl::Status st = job.change_status;
      if (st.ok() && !opened.ok()) st = opened;
      if (!st.ok()) {
        // Still divergent (nothing of the new primary applied): tried again in a second; the
        // log is open as the failed step left it (as a crash there would), when it could be.
        std::fprintf(stderr, "sluiced: standby: queue %u partition %u: cannot cut the divergent "
                     "tail at offset %llu: %s%s%s; not following the primary\n", queue, partition,
                     off(job.offset), std::string(st.message()).c_str(),
                     opened.ok() || st == opened ? "" : "; reopening failed too: ",
                     opened.ok() || st == opened ? "" : std::string(opened.message()).c_str());
        change_retry_ns_[Key(queue, partition)] = now_ns + 1'000'000'000;
        break;
      }
      std::fprintf(stderr, "sluiced: standby: queue %u partition %u: cut the divergent tail "
                   "[%llu, %llu): %llu message(s) never acknowledged by the new primary dropped\n",
                   queue, partition, off(job.offset), off(j.ours), off(j.ours - job.offset));
      // A newer primary's HELLO may have asked meanwhile for a lower cut: that one comes next
      // pass (the partition stays divergent until it is made).
      uint64_t wanted_to = UINT64_MAX;
      standby_->ForEachDivergent([&](uint32_t q, uint32_t p, uint64_t, uint64_t to) {
        if (q == queue && p == partition) wanted_to = to;
      });
      if (wanted_to == UINT64_MAX || wanted_to >= job.offset) {
        standby_->Truncated(queue, partition, job.offset);
      }
      break;
    }
    case Change::kRestart: {
      absl::Status st = job.change_status;
      if (st.ok() && !opened.ok()) st = opened;
      if (!st.ok()) {
        // Tried again at the primary's next LOG_START (a second); the partition does not catch
        // up meanwhile (sync queues on it answer NOT_REPLICATED on the primary).
        std::fprintf(stderr, "sluiced: standby: queue %u partition %u: cannot restart the log at "
                     "%llu: %s%s%s\n", queue, partition, off(job.offset),
                     std::string(st.message()).c_str(),
                     opened.ok() || st == opened ? "" : "; reopening the log as it was failed too: ",
                     opened.ok() || st == opened ? "" : std::string(opened.message()).c_str());
        change_retry_ns_[Key(queue, partition)] = now_ns + 1'000'000'000;
        break;
      }
      const storage::LogState& log = writer_->log(parts_.at(Key(queue, partition))->handle);
      SLUICE_ASSERT(log.start_offset() == job.offset && log.next_offset == job.offset);
      // Recovery compacted the ack log to the new start (nothing below it is named any more);
      // the primary's snapshot then replaces it (StandbyLink::Restarted).
      standby_->Restarted(queue, partition, job.offset);
      break;
    }
  }
  // The table dropped it while the job ran: closed now, as SetTable would have, its applier
  // (and a divergence it still had: no tail to cut on a partition no longer here) forgotten.
  if (j.gone) {
    CloseStandbyPartition(queue, partition);
    standby_->RemovePartition(queue, partition);
  }
}

void ReplicationShell::Drain() {
  // Link frames other channels handed over that no pass will handle now: back to the pool
  // (bounded: the other lcores stop too).
  if (steer_.has_value()) {
    rte_mbuf* m[32];
    for (int i = 0; i < 64; ++i) {
      const uint32_t k = steer_->Take(m, 32);
      if (k == 0) break;
      rte_pktmbuf_free_bulk(m, k);
    }
  }
  if (writer_ == nullptr) return;
  writer_->Drain([&](const storage::Completion& comp) {
    auto it = by_handle_.find(comp.handle);
    if (it == by_handle_.end()) return;
    it->second->durable_end = comp.durable.value;
    config_.status->durable.Set(it->second->queue, it->second->partition, comp.durable.value);
    if (comp.errc == Errc::kOk) standby_->OnDurable(it->second->queue, it->second->partition,
                                                    comp.durable.value);
  });
  // Ack records whose data just became durable go to the ack logs before we stop (promotion).
  if (standby_ != nullptr && !standby_->divergent()) standby_->ApplyAcks(*this);
  FlushStandbyAcks();
  // A completion may queue the rest of a short write or the next buffer: until all is quiet.
  for (int round = 0; round < 1000 && !ack_ring_->idle(); ++round) {
    ack_ring_->Drain([this](storage::AckLog& l) { OnStandbyAckFailed(l); });
    for (auto& [key, p] : parts_) {
      if (p->acks.has_value() && p->acks->busy() && !p->acks->failed()) p->acks->StartFlush();
    }
  }
}

bool ReplicationShell::AppendAck(uint32_t queue, uint32_t partition,
                                 const replication::AckRecord& r) {
  auto it = parts_.find(Key(queue, partition));
  if (it == parts_.end() || !it->second->acks.has_value()) return false;
  StandbyPart* part = it->second.get();
  // Its log is being replaced (a snapshot the receiver applies first: never reached then).
  if (part->replacing_acks) return false;
  auto append = [&] {
    switch (r.kind) {
      case replication::AckRecordKind::kDelete: return part->acks->Delete(r.offset);
      case replication::AckRecordKind::kCommit: return part->acks->Commit(r.group, r.offset);
      case replication::AckRecordKind::kDeletedBelow: return part->acks->DeletedBelow(r.offset);
      default: return true;  // snapshot brackets never get here
    }
  };
  storage::AckLog& log = *part->acks;
  if (log.failed() || !append()) {
    // The active buffer is full: it goes now, or, if the other one is still being written, once
    // that write completed (waited for: rare, the disk is 64 KiB of acks behind).
    if (!log.failed()) {
      log.StartFlush();
      if ((log.full_while_writing() || log.ops_in_flight() > 0) && log.buffered_bytes() > 0) {
        ack_ring_->Wait(log, [this](storage::AckLog& l) { OnStandbyAckFailed(l); });
      }
    }
    if (log.failed() || !append()) {
      config_.status->apply_failures.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  }
  // What replica reads need of it (StandbyPart), as the record is applied.
  if (r.kind == replication::AckRecordKind::kCommit) {
    // (absl::string_view: this Abseil's own type, which its string hash takes)
    auto c = part->commits.find(absl::string_view(r.group.data(), r.group.size()));
    if (c != part->commits.end()) {
      c->second = r.offset;
    } else {
      part->commits.emplace(std::string(r.group), r.offset);  // a group's first commit here
    }
    if (config_.dedicated) config_.status->handoff->replica_commits.Set(queue, r.group, r.offset);
  } else if (r.kind == replication::AckRecordKind::kDeletedBelow) {
    part->purged_below = std::max(part->purged_below, r.offset);
    PublishReplicaStart(*part);
  }
  if (r.kind == replication::AckRecordKind::kDeletedBelow) {
    // A purge mark goes at once with an fdatasync linked behind it, as on the primary (rare:
    // once per purge); a failure counts as an apply failure when it completes.
    log.StartFlush(/*sync=*/true);
    return true;
  }
  if (!part->ack_dirty) {
    part->ack_dirty = true;
    ack_dirty_.push_back(part);
  }
  return true;
}

bool ReplicationShell::ReplaceAcks(uint32_t queue, uint32_t partition,
                                   const storage::AckState& state) {
  // The primary's ack state replaces ours whole (temporary file, fsync, rename, directory
  // fsync): on the file worker. The receiver offers the snapshot every pass until this says it
  // is in (true), and keeps the records after it meanwhile.
  auto it = parts_.find(Key(queue, partition));
  if (it == parts_.end()) return false;
  StandbyPart* part = it->second.get();
  const uint64_t k = Key(queue, partition);
  if (auto r = ack_replaces_.find(k); r != ack_replaces_.end()) {
    if (!r->second.job->done()) return false;  // under way
    const std::shared_ptr<storage::AckReplaceJob> job = std::move(r->second.job);
    const bool ours = r->second.incarnation == part->incarnation;
    ack_replaces_.erase(r);
    if (ours && !job->status().ok()) {
      std::fprintf(stderr, "sluiced: standby: queue %u partition %u: cannot replace the ack log: "
                   "%s; retrying\n", queue, partition,
                   std::string(job->status().message()).c_str());
      part->ack_retry_ns = pass_ns_ + 1'000'000'000;
      return false;
    }
    if (ours && SameAckState(job->state, state)) {
      // The old log took nothing since it was settled (replacing_acks): it goes, unread.
      part->acks.emplace(std::move(*job->acks));
      part->acks->Attach(ack_ring_.get(), k);
      part->replacing_acks = false;
      TakeAckState(*part, state);
      ++acklog_snapshot_jobs_;
      return true;
    }
    // Written for a partition since reopened, or a snapshot a newer one (a new generation)
    // replaced meanwhile: this one is written next.
  }
  if (pass_ns_ < part->ack_retry_ns || FileJobsUnderWay() >= kMaxFileJobs) return false;
  // From now on the old log takes nothing (AppendAck refuses). Its requests complete before the
  // job starts (the ring holds its address and buffers, and the job's rename replaces its
  // file), but they are not waited for: a write held by the disk (a cache flush: 100 ms and
  // more on a VM, docs/storage.md §4) would stop this lcore, and every partition's replication
  // with it. The receiver offers the snapshot again each pass, and the pass's FlushStandbyAcks
  // reaps the ring.
  part->replacing_acks = true;
  if (part->ack_dirty) {
    part->ack_dirty = false;
    std::erase(ack_dirty_, part);
  }
  if (part->acks.has_value() && part->acks->busy() && !part->acks->failed()) {
    part->acks->StartFlush();  // what is buffered, or a short write's rest; no-op while in flight
    ++ack_replace_waits_;
    return false;
  }
  auto job = std::make_shared<storage::AckReplaceJob>();
  job->data_dir = part->data_dir;
  job->id = storage::PartitionId{queue, partition};
  job->state = state;  // a copy (rare: a snapshot)
  const bool submitted = files_->Submit(job);
  SLUICE_ASSERT(submitted);  // fewer than kMaxFileJobs of this shell's under way
  ack_replaces_.emplace(k, AckReplace{job, part->incarnation});
  return false;
}

void ReplicationShell::ReapAckReplaces() {
  for (auto it = ack_replaces_.begin(); it != ack_replaces_.end();) {
    auto p = parts_.find(it->first);
    const bool stale = p == parts_.end() || p->second->incarnation != it->second.incarnation;
    if (stale && it->second.job->done()) {
      ack_replaces_.erase(it++);  // its partition was closed or reopened: the result goes
    } else {
      ++it;
    }
  }
}

void ReplicationShell::FlushStandbyAcks() {
  for (StandbyPart* p : ack_dirty_) {
    p->ack_dirty = false;
    // Not fsynced, as on the primary (docs/storage.md §6). A write in flight on the log: these
    // go when it completes.
    if (p->acks.has_value()) p->acks->StartFlush();
  }
  ack_dirty_.clear();
  if (ack_ring_->idle()) return;  // nothing in flight: no ring access at all
  ack_ring_->Poll([this](storage::AckLog& l) { OnStandbyAckFailed(l); });
}

void ReplicationShell::SettleStandbyAcks(storage::AckLog& log) {
  auto failed = [this](storage::AckLog& l) { OnStandbyAckFailed(l); };
  log.StartFlush();
  ack_ring_->Wait(log, failed);
  if (log.busy() && !log.failed()) ack_ring_->Wait(log, failed);  // its rest, re-queued
}

void ReplicationShell::OnStandbyAckFailed(storage::AckLog& log) {
  // As before the ring: counted as an apply failure and said once per log; the ack log takes
  // nothing more (a restart may redeliver what its lost deletes named, as at-least-once allows).
  config_.status->apply_failures.fetch_add(1, std::memory_order_relaxed);
  std::fprintf(stderr, "sluiced: standby: queue %u partition %u: ack log failed: %s\n",
               static_cast<uint32_t>(log.cookie() >> 32), static_cast<uint32_t>(log.cookie()),
               log.failure().c_str());
}

}  // namespace sluice::dataplane
