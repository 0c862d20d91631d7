#include "replication/standby.h"

#include <algorithm>
#include <cstring>

#include "protocol/assert.h"

namespace sluice::replication {

// ---- Applier ---------------------------------------------------------------------------------

Applier::Applier(uint32_t queue, uint32_t partition, uint64_t log_end, uint32_t max_batch_bytes,
                 uint32_t align_bytes)
    : queue_(queue),
      partition_(partition),
      align_(align_bytes),
      buf_((max_batch_bytes + align_bytes - 1) / align_bytes * align_bytes),
      expected_(log_end),
      durable_(log_end) {
  SLUICE_ASSERT(align_bytes > 0 && (align_bytes & (align_bytes - 1)) == 0);
}

Applier::Result Applier::OnFragment(const LinkMessage& m, StandbySink& sink, LinkCounters& c) {
  const BatchFragmentHeader& f = m.fragment;
  if (f.end_offset <= expected_) {  // we have it (maybe not durable yet): ack again
    ++c.duplicates;
    ack_due = true;
    return Result::kDuplicate;
  }
  if (f.base_offset > expected_) {
    ++c.gaps;
    return Result::kGap;
  }
  if (f.base_offset < expected_) {  // straddles our end: batch boundaries differ (divergence)
    ++c.divergent;
    return Result::kDivergent;
  }
  if (pending_) return Result::kThrottled;  // the whole batch is here; waiting for storage
  if (f.batch_bytes > buf_.size() || f.batch_bytes < storage::kBatchHeaderBytes ||
      (f.batch_bytes + f.frag_unit - 1) / f.frag_unit > kMaxFragments) {
    ++c.bad_batches;
    return Result::kBad;
  }
  // A fragment of another rendition of this batch (resent with another unit, or another
  // primary's batch at the same offset): start over with it.
  if (have_ != 0 && (f.end_offset != asm_end_ || f.batch_bytes != asm_bytes_ || f.frag_unit != asm_unit_)) {
    have_ = 0;
  }
  if (have_ == 0) {
    asm_end_ = f.end_offset;
    asm_bytes_ = f.batch_bytes;
    asm_unit_ = f.frag_unit;
    total_ = (f.batch_bytes + f.frag_unit - 1) / f.frag_unit;
    std::memset(bitmap_, 0, sizeof bitmap_);
  }
  const uint32_t idx = f.frag_offset / f.frag_unit;
  uint64_t& word = bitmap_[idx / 64];
  const uint64_t bit = uint64_t{1} << (idx % 64);
  if (word & bit) {
    ++c.duplicates;
    return Result::kPartial;
  }
  word |= bit;
  std::memcpy(buf_.data() + f.frag_offset, m.data.data(), f.frag_bytes);
  if (++have_ < total_) return Result::kPartial;
  return Complete(sink, c);
}

Applier::Result Applier::Complete(StandbySink& sink, LinkCounters& c) {
  have_ = 0;
  storage::BatchHeader h = storage::ReadHeader(std::span<const std::byte>(buf_).first(asm_bytes_));
  // The padding is not sent: zeros up to the stride, as on the primary's disk.
  if (h.stride_bytes < asm_bytes_ || h.stride_bytes > buf_.size()) {
    ++c.bad_batches;
    return Result::kBad;
  }
  std::memset(buf_.data() + asm_bytes_, 0, h.stride_bytes - asm_bytes_);
  const std::span<const std::byte> batch(buf_.data(), h.stride_bytes);
  if (storage::VerifyBatch(batch, align_, &h) != storage::BatchCheck::kOk || h.queue != queue_ ||
      h.partition != partition_ || h.base_offset != expected_ || h.end_offset() != asm_end_ ||
      h.header_bytes + h.payload_bytes != asm_bytes_) {
    ++c.bad_batches;
    return Result::kBad;
  }
  pending_ = true;
  pending_stride_ = h.stride_bytes;
  pending_header_ = h;
  return RetryPending(sink, c);
}

Applier::Result Applier::RetryPending(StandbySink& sink, LinkCounters& c) {
  if (!pending_) return Result::kPartial;
  const Errc e = sink.Apply(queue_, partition_, std::span<const std::byte>(buf_.data(), pending_stride_),
                            pending_header_);
  if (e != Errc::kOk) {
    ++c.apply_throttled;
    return Result::kThrottled;
  }
  pending_ = false;
  expected_ = pending_header_.end_offset();
  ++c.batches_applied;
  return Result::kApplied;
}

void Applier::Truncated(uint64_t end) {
  SLUICE_ASSERT(end <= expected_);
  expected_ = end;
  durable_ = std::min(durable_, end);
  have_ = 0;
  pending_ = false;
  ack_due = true;
}

void Applier::Restarted(uint64_t start) {
  SLUICE_ASSERT(start > expected_);  // only forward: nothing at or above the primary's start goes
  expected_ = durable_ = start;
  have_ = 0;
  pending_ = false;
  ack_due = true;
  last_nak_from = UINT64_MAX;
}

void Applier::OnDurable(uint64_t end) {
  SLUICE_ASSERT(end <= expected_);  // storage never reports more than it was given
  if (end > durable_) {
    durable_ = end;
    ack_due = true;
  }
}

// ---- StandbyLink -------------------------------------------------------------------------------

StandbyLink::StandbyLink(const StandbyConfig& config) : config_(config), epoch_(config.epoch) {
  SLUICE_ASSERT(config.max_datagram_bytes >= kLinkHeaderBytes + 64);
  scratch_.reserve(kMaxEntriesPerMessage);
  hello_scratch_.reserve(kMaxEntriesPerMessage);
  position_scratch_.reserve(kMaxEntriesPerMessage);
  primary_ends_.reserve(4096);
}

void StandbyLink::AddPartition(uint32_t queue, uint32_t partition, uint64_t log_end) {
  auto& a = appliers_[PartitionKey(queue, partition)];
  if (a != nullptr) return;
  a = std::make_unique<Applier>(queue, partition, log_end, config_.max_batch_bytes,
                                config_.align_bytes);
  order_.push_back(a.get());
  nak_due_.reserve(order_.size());
  behind_.reserve(order_.size());
  hello_due_ = true;  // the primary learns where this one stands
  auto& r = ack_receivers_[PartitionKey(queue, partition)];
  r = std::make_unique<AckReceiver>(queue, partition, config_.acks);
  ack_order_.push_back(r.get());
  r->ack_due = true;  // our (empty) position: the primary sends a snapshot
}

AckReceiver* StandbyLink::FindAckMut(uint32_t queue, uint32_t partition) {
  auto it = ack_receivers_.find(PartitionKey(queue, partition));
  return it == ack_receivers_.end() ? nullptr : it->second.get();
}
const AckReceiver* StandbyLink::FindAck(uint32_t queue, uint32_t partition) const {
  auto it = ack_receivers_.find(PartitionKey(queue, partition));
  return it == ack_receivers_.end() ? nullptr : it->second.get();
}

uint32_t StandbyLink::ApplyAcks(StandbySink& sink) {
  uint32_t n = 0;
  for (AckReceiver* r : ack_order_) {
    const bool was_synced = r->synced();
    n += r->Apply(
        [&](uint32_t ref) {
          const Applier* a = Find(r->queue(), ref);
          if (a != nullptr) return a->durable();
          return config_.other_channels != nullptr
                     ? config_.other_channels->DurableEnd(r->queue(), ref) : uint64_t{0};
        },
        sink, counters_);
    if (!was_synced && r->synced() && !caught_up_) CheckCaughtUp();
  }
  return n;
}

void StandbyLink::RemovePartition(uint32_t queue, uint32_t partition) {
  auto it = appliers_.find(PartitionKey(queue, partition));
  if (it == appliers_.end()) return;
  order_.erase(std::find(order_.begin(), order_.end(), it->second.get()));
  nak_due_.erase(std::remove(nak_due_.begin(), nak_due_.end(), it->second.get()), nak_due_.end());
  behind_.erase(std::remove(behind_.begin(), behind_.end(), it->second.get()), behind_.end());
  appliers_.erase(it);
  auto r = ack_receivers_.find(PartitionKey(queue, partition));
  if (r != ack_receivers_.end()) {
    ack_order_.erase(std::find(ack_order_.begin(), ack_order_.end(), r->second.get()));
    ack_receivers_.erase(r);
  }
  // A partition no longer here has no tail to cut (its queue was deleted while its cut ran off
  // the lcore): the others' cuts alone hold the new epoch back.
  const size_t before = divergent_.size();
  std::erase_if(divergent_, [&](const Divergent& d) {
    return d.queue == queue && d.partition == partition;
  });
  if (divergent_.size() != before) AdoptPendingEpochIfCut();
}

void StandbyLink::AdoptPendingEpochIfCut() {
  if (divergent_.empty() && pending_epoch_ != 0) {
    AdoptEpoch(pending_epoch_);
    pending_epoch_ = 0;
    synced_boot_id_ = primary_boot_id_;
    hello_due_ = true;
    CheckCaughtUp();
  }
}

Applier* StandbyLink::FindMut(uint32_t queue, uint32_t partition) {
  auto it = appliers_.find(PartitionKey(queue, partition));
  return it == appliers_.end() ? nullptr : it->second.get();
}
const Applier* StandbyLink::Find(uint32_t queue, uint32_t partition) const {
  auto it = appliers_.find(PartitionKey(queue, partition));
  return it == appliers_.end() ? nullptr : it->second.get();
}

void StandbyLink::OnDurable(uint32_t queue, uint32_t partition, uint64_t end) {
  if (Applier* a = FindMut(queue, partition)) a->OnDurable(end);
  if (!caught_up_) CheckCaughtUp();
}

void StandbyLink::CheckCaughtUp() {
  if (!heard_hello_ || divergent()) return;  // caught up with what the primary's HELLO stated
  for (const auto& [key, end] : primary_ends_) {
    const uint32_t q = static_cast<uint32_t>(key >> 32), p = static_cast<uint32_t>(key);
    const Applier* a = Find(q, p);
    if (a != nullptr && a->durable() < end) return;
    // The ack log too must hold the primary's state (its snapshot at least): a standby promoted
    // before would deliver again everything consumers deleted.
    const AckReceiver* r = FindAck(q, p);
    if (r != nullptr && !r->synced()) return;
  }
  caught_up_ = true;
}

void StandbyLink::AdoptEpoch(uint64_t epoch) {
  if (epoch > epoch_) {
    epoch_ = epoch;
    epoch_changed_ = true;
    // Log starts were the older primary's: the new one states its own.
    for (Applier* a : order_) a->set_primary_start(0);
  }
}

void StandbyLink::ForEachRetention(
    uint64_t now_ns, absl::FunctionRef<void(uint32_t, uint32_t, uint64_t)> fn) {
  if (now_ns < next_retention_ns_ || divergent()) return;
  next_retention_ns_ = now_ns + config_.retention_interval_ns;
  for (const Applier* a : order_) {
    if (a->primary_start() > 0) fn(a->queue(), a->partition(), a->RetainFrom());
  }
}

void StandbyLink::OnHello(const LinkMessage& m, uint64_t /*now_ns*/) {
  ++counters_.hellos_received;
  // Our log was last checked against a HELLO of synced_boot_id_, and every batch since came from
  // the primary of this epoch. A HELLO of that same primary boot and epoch states ends its log
  // has only grown past since (a primary's log never shrinks while it runs): one overtaken on
  // the link by batches sent after it (or sent late: a TX ring flushed after a cut) states ends
  // below ours, and is stale, not a divergence. Only another primary, or another boot of it, can
  // diverge from us.
  const bool same_primary = synced_boot_id_ != 0 && m.boot_id == synced_boot_id_ &&
                            m.epoch == epoch_ && pending_epoch_ == 0;
  if (m.hello_part == 0) {
    // Answer when the primary asks (it has no session with us) or is a new one; a HELLO that
    // answers ours needs no answer.
    hello_answer_ = (m.hello_flags & kHelloReplyWanted) != 0 || m.boot_id != primary_boot_id_ ||
                    m.epoch > epoch_ || !heard_hello_;
    primary_boot_id_ = m.boot_id;
    primary_client_ipv4_ = m.client_ipv4;
    primary_client_port_ = m.client_port;
    if (!same_primary) primary_ends_.clear();  // the same primary's ends only grow
    divergent_.clear();
    hello_rx_next_ = 0;
  }
  // Parts in order, of the same primary; anything else waits for the next whole HELLO (ours
  // keeps asking until one arrives whole).
  if (m.boot_id != primary_boot_id_ || m.hello_part != hello_rx_next_) return;
  ++hello_rx_next_;
  for (uint32_t i = 0; i < m.count; ++i) {
    const HelloEntry e = m.Hello(i);
    uint64_t& end = primary_ends_[PartitionKey(e.queue, e.partition)];
    end = same_primary ? std::max(end, e.offset) : e.offset;
    const Applier* a = Find(e.queue, e.partition);
    if (a == nullptr) continue;
    // Our data past the primary's end, or (when the primary's epoch is newer than any we
    // followed) past the start of its epoch, came from an older primary: it never reached this
    // one. Cut there.
    uint64_t keep = e.offset;
    if (m.epoch > epoch_) keep = std::min(keep, e.epoch_start);
    if (a->expected() > keep && !same_primary) {
      divergent_.push_back({e.queue, e.partition, a->expected(), keep});
      ++counters_.divergent;
    }
  }
  if (m.hello_part + 1 != m.hello_parts) return;
  // The whole HELLO is here.
  heard_hello_ = true;
  for (Applier* a : order_) a->ResetAssembly();
  caught_up_ = false;
  if (divergent_.empty()) {
    AdoptEpoch(m.epoch);
    synced_boot_id_ = m.boot_id;
    CheckCaughtUp();
  } else {
    pending_epoch_ = m.epoch;
    synced_boot_id_ = 0;  // our log is another primary's until the cut
  }
  if (hello_answer_) hello_due_ = true;  // our durable ends: the primary streams from there
}

void StandbyLink::ForEachDivergent(
    absl::FunctionRef<void(uint32_t, uint32_t, uint64_t, uint64_t)> fn) const {
  for (const Divergent& d : divergent_) fn(d.queue, d.partition, d.ours, d.truncate_to);
}

void StandbyLink::Truncated(uint32_t queue, uint32_t partition, uint64_t end) {
  for (size_t i = 0; i < divergent_.size(); ++i) {
    const Divergent& d = divergent_[i];
    if (d.queue != queue || d.partition != partition) continue;
    SLUICE_ASSERT(end <= d.truncate_to);
    divergent_.erase(divergent_.begin() + static_cast<ptrdiff_t>(i));
    break;
  }
  // The applier follows the log even when no divergence names it any more (the cut ran off the
  // lcore and a newer primary's HELLO found none meanwhile): what it took past `end` is gone
  // from the disk, and is taken again from the primary.
  if (Applier* a = FindMut(queue, partition); a != nullptr && end <= a->expected()) {
    truncated_records_ += a->expected() - end;
    a->Truncated(end);
    // Its ack log is an older primary's: the new primary's snapshot replaces it.
    if (AckReceiver* r = FindAckMut(queue, partition)) r->Reset();
  }
  AdoptPendingEpochIfCut();
}

void StandbyLink::ForEachBehindStart(
    absl::FunctionRef<void(uint32_t, uint32_t, uint64_t, uint64_t)> fn) {
  if (behind_.empty() || divergent()) return;
  // Still behind? (Batches may have come meanwhile; a newer primary forgot the starts.)
  for (const Applier* a : behind_) {
    if (a->BehindStart()) fn(a->queue(), a->partition(), a->expected(), a->primary_start());
  }
  behind_.clear();
}

void StandbyLink::Restarted(uint32_t queue, uint32_t partition, uint64_t start) {
  Applier* a = FindMut(queue, partition);
  if (a == nullptr) return;
  a->Restarted(start);
  ++counters_.behind_start_restarts;
  nak_due_.erase(std::remove(nak_due_.begin(), nak_due_.end(), a), nak_due_.end());
  // Its ack log was compacted to the new start by the shell; the primary's snapshot replaces it
  // (a new generation): promotion waits for it (caught_up), so no message the primary deleted
  // comes back.
  if (AckReceiver* r = FindAckMut(queue, partition)) r->Reset();
  // Caught up again only once durable up to the primary's ends as they are now: our HELLO asks
  // for the primary's (reply wanted) and states our new durable end, which the primary takes
  // as an ack (it streams from there).
  caught_up_ = false;
  heard_hello_ = false;
  hello_due_ = true;
}

void StandbyLink::OnFragment(const LinkMessage& m, uint64_t now_ns, StandbySink& sink) {
  Applier* a = FindMut(m.fragment.queue, m.fragment.partition);
  if (a == nullptr) {
    ++counters_.rx_unknown_partition;
    return;
  }
  if (a->OnFragment(m, sink, counters_) == Applier::Result::kGap) {
    if (a->expected() != a->last_nak_from || now_ns >= a->last_nak_ns + config_.nak_interval_ns) {
      a->last_nak_from = a->expected();
      a->last_nak_ns = now_ns;
      if (std::find(nak_due_.begin(), nak_due_.end(), a) == nak_due_.end()) nak_due_.push_back(a);
    }
  }
}

void StandbyLink::OnDatagram(std::span<const std::byte> datagram, uint64_t now_ns,
                             StandbySink& sink) {
  ++counters_.rx_datagrams;
  LinkMessage m;
  if (DecodeLink(datagram, &m) != DecodeError::kOk) {
    ++counters_.rx_malformed;
    return;
  }
  if (m.role != Role::kPrimary) {
    ++counters_.rx_wrong_role;
    return;
  }
  if (m.type == MsgType::kHello && !(m.shape == config_.shape)) {
    // Another channel's or another layout's primary: nothing of it is taken, not even its epoch.
    ++counters_.rx_shape_mismatch;
    shape_mismatch_ = true;
    peer_shape_ = m.shape;
    return;
  }
  if (m.epoch < epoch_) {  // a deposed primary: never apply what it says
    ++counters_.rx_stale_epoch;
    return;
  }
  if (m.epoch > epoch_ && m.type != MsgType::kHello) {
    // A newer primary's first words before its HELLO reached us (reordering): wait for the
    // HELLO, which says what to cut first.
    hello_due_ = true;
    return;
  }
  if (!heard_ || now_ns > last_rx_ns_ + config_.peer_timeout_ns) {
    hello_due_ = true;
    heard_hello_ = false;  // a new session: our HELLO asks for the primary's again
  }
  heard_ = true;
  last_rx_ns_ = now_ns;
  switch (m.type) {
    case MsgType::kHello: OnHello(m, now_ns); return;
    case MsgType::kBatch:
      if (!divergent()) OnFragment(m, now_ns, sink);
      return;
    case MsgType::kAckLog:
      if (divergent()) return;  // the cut first; the new primary's snapshot follows
      if (AckReceiver* r = FindAckMut(m.acklog.queue, m.acklog.partition)) {
        r->OnAckLog(m, counters_);
      } else {
        ++counters_.rx_unknown_partition;
      }
      return;
    case MsgType::kHeartbeat: return;
    case MsgType::kLogStart:
      if (divergent()) return;  // the cut first; the primary states its starts every second
      for (uint32_t i = 0; i < m.count; ++i) {
        const PartitionOffset e = m.Entry(i);
        if (Applier* a = FindMut(e.queue, e.partition)) {
          a->set_primary_start(e.offset);
          if (a->BehindStart() &&
              std::find(behind_.begin(), behind_.end(), a) == behind_.end()) {
            behind_.push_back(a);
          }
        } else {
          ++counters_.rx_unknown_partition;
        }
      }
      return;
    case MsgType::kCatalog: OnCatalog(m); return;
    case MsgType::kAck:
    case MsgType::kAckLogAck:
    case MsgType::kNak:
    case MsgType::kCatalogAck: ++counters_.rx_wrong_role; return;
  }
}

void StandbyLink::OnCatalog(const LinkMessage& m) {
  if (m.catalog_hash == catalog_done_hash_) {
    catalog_ack_due_ = true;  // our ack was lost: again
    return;
  }
  if (m.catalog_hash != catalog_rx_hash_) {
    catalog_rx_hash_ = m.catalog_hash;
    catalog_buf_.assign(m.catalog_bytes, '\0');
    catalog_have_.clear();
    catalog_rx_bytes_ = 0;
  }
  if (m.catalog_bytes != catalog_buf_.size() || !catalog_have_.insert(m.catalog_offset).second) {
    return;
  }
  std::memcpy(catalog_buf_.data() + m.catalog_offset, m.data.data(), m.data.size());
  catalog_rx_bytes_ += m.data.size();
  if (catalog_rx_bytes_ < catalog_buf_.size()) return;
  const std::span<const std::byte> doc(reinterpret_cast<const std::byte*>(catalog_buf_.data()),
                                       catalog_buf_.size());
  if (CatalogHash(doc) != m.catalog_hash) {  // overlapping fragments of a bogus sender
    ++counters_.rx_malformed;
    catalog_rx_hash_ = 0;
    return;
  }
  catalog_done_hash_ = m.catalog_hash;
  catalog_ready_ = true;
  catalog_ack_due_ = true;
}

bool StandbyLink::TakeCatalog(std::string* out) {
  if (!catalog_ready_) return false;
  catalog_ready_ = false;
  catalog_rx_hash_ = 0;
  *out = std::move(catalog_buf_);
  catalog_buf_.clear();
  catalog_have_.clear();
  return true;
}

bool StandbyLink::SendHello(uint64_t /*now_ns*/, LinkOutput& out) {
  // Until we heard the primary's HELLO, ours asks for an answer. As many parts as needed.
  const uint16_t flags = heard_hello_ ? 0 : kHelloReplyWanted;
  const uint32_t per = HelloEntriesPerDatagram(config_.max_datagram_bytes);
  const uint32_t total = static_cast<uint32_t>(order_.size());
  const uint16_t parts = static_cast<uint16_t>(std::max<uint32_t>(1, (total + per - 1) / per));
  for (uint16_t part = 0; part < parts; ++part) {
    std::span<std::byte> buf = out.Acquire();
    if (buf.empty()) {
      ++counters_.tx_no_buffer;
      return false;
    }
    hello_scratch_.clear();
    for (uint32_t i = part * per; i < std::min(total, (part + 1u) * per); ++i) {
      const Applier* a = order_[i];
      hello_scratch_.push_back({a->queue(), a->partition(), a->durable(), 0});
    }
    const size_t n = EncodeHello(buf, Role::kStandby, epoch_, config_.boot_id, hello_scratch_, 0,
                                 0, flags, part, parts, config_.shape);
    SLUICE_ASSERT(n != 0);
    out.Send(n);
    ++counters_.tx_datagrams;
  }
  ++counters_.hellos_sent;
  return true;
}

bool StandbyLink::SendAcks(LinkOutput& out, bool all) {
  // Between two primaries' logs (a cut under way, off the lcore: it may take several passes):
  // no durable end is stated, the cut partitions' ends being the older primary's. They go once
  // the cuts are made (ack_due stays set; the heartbeat states all).
  if (divergent()) return true;
  // As many ACK datagrams as the due entries need (bounded by the partition count).
  size_t i = 0;
  while (i < order_.size()) {
    scratch_.clear();
    std::span<std::byte> buf;
    size_t fit = 0;
    for (; i < order_.size(); ++i) {
      Applier* a = order_[i];
      if (!all && !a->ack_due) continue;
      if (buf.empty()) {
        buf = out.Acquire();
        if (buf.empty()) {
          ++counters_.tx_no_buffer;
          return false;
        }
        fit = std::min<size_t>(kMaxEntriesPerMessage,
                               (buf.size() - kLinkHeaderBytes - 8) / kPartitionOffsetBytes);
      }
      if (scratch_.size() == fit) break;
      a->ack_due = false;
      scratch_.push_back({a->queue(), a->partition(), a->durable()});
    }
    if (scratch_.empty()) {
      SLUICE_ASSERT(buf.empty());
      return true;
    }
    const size_t n = EncodeAck(buf, Role::kStandby, epoch_, scratch_);
    SLUICE_ASSERT(n != 0);
    out.Send(n);
    ++counters_.tx_datagrams;
    ++counters_.acks_sent;
  }
  return true;
}

bool StandbyLink::SendAckPositions(LinkOutput& out, bool all) {
  const uint32_t fit = std::min<uint32_t>(
      kMaxEntriesPerMessage, (config_.max_datagram_bytes - kLinkHeaderBytes - 8) / kAckLogPositionBytes);
  size_t i = 0;
  while (i < ack_order_.size()) {
    position_scratch_.clear();
    for (; i < ack_order_.size() && position_scratch_.size() < fit; ++i) {
      AckReceiver* r = ack_order_[i];
      if (all || r->ack_due) position_scratch_.push_back(r->TakePosition());
    }
    if (position_scratch_.empty()) continue;
    std::span<std::byte> buf = out.Acquire();
    if (buf.empty()) {
      ++counters_.tx_no_buffer;
      for (const AckLogPosition& p : position_scratch_) {  // again next pass
        if (AckReceiver* r = FindAckMut(p.queue, p.partition)) r->ack_due = true;
      }
      return false;
    }
    const size_t n = EncodeAckLogAck(buf, Role::kStandby, epoch_, position_scratch_);
    SLUICE_ASSERT(n != 0);
    out.Send(n);
    ++counters_.tx_datagrams;
    ++counters_.acklog_positions_sent;
  }
  return true;
}

bool StandbyLink::SendNak(const Applier& a, LinkOutput& out) {
  std::span<std::byte> buf = out.Acquire();
  if (buf.empty()) {
    ++counters_.tx_no_buffer;
    return false;
  }
  const size_t n = EncodeNak(buf, Role::kStandby, epoch_, a.queue(), a.partition(), a.expected());
  SLUICE_ASSERT(n != 0);
  out.Send(n);
  ++counters_.tx_datagrams;
  ++counters_.naks_sent;
  return true;
}

uint32_t StandbyLink::Poll(uint64_t now_ns, LinkOutput& out, StandbySink& sink) {
  uint32_t work = 0;
  for (Applier* a : order_) {
    if (a->pending()) {
      const Applier::Result r = a->RetryPending(sink, counters_);
      if (r == Applier::Result::kApplied) ++work;
    }
  }
  if (!primary_alive(now_ns) || !heard_hello_) {
    hello_due_ = hello_due_ || now_ns >= next_control_ns_;  // until the primary's HELLO reaches us
  }
  if (hello_due_ && !divergent()) {
    if (!SendHello(now_ns, out)) return work;
    hello_due_ = false;
    next_control_ns_ = now_ns + config_.heartbeat_ns;
    ++work;
  }
  for (size_t i = 0; i < nak_due_.size(); ++i) {
    if (!SendNak(*nak_due_[i], out)) {
      nak_due_.erase(nak_due_.begin(), nak_due_.begin() + static_cast<ptrdiff_t>(i));
      return work;
    }
    ++work;
  }
  nak_due_.clear();
  if (catalog_ack_due_) {
    std::span<std::byte> buf = out.Acquire();
    if (buf.empty()) {
      ++counters_.tx_no_buffer;
      return work;
    }
    const size_t n = EncodeCatalogAck(buf, Role::kStandby, epoch_, catalog_done_hash_);
    SLUICE_ASSERT(n != 0);
    out.Send(n);
    ++counters_.tx_datagrams;
    catalog_ack_due_ = false;
    ++work;
  }
  if (!SendAcks(out, false)) return work;
  if (!divergent()) work += ApplyAcks(sink);
  if (heard_hello_ && !divergent() && !SendAckPositions(out, false)) return work;
  if (now_ns >= next_control_ns_) {
    // Heartbeat: all durable ends (an ACK lost on the way is repaired here) when the primary is
    // alive; HELLO again when it is not (it may have restarted).
    next_control_ns_ = now_ns + config_.heartbeat_ns;
    if (primary_alive(now_ns)) {
      SendAcks(out, true);
      if (heard_hello_ && !divergent()) SendAckPositions(out, true);
      ++counters_.heartbeats_sent;
    }
    ++work;
  }
  return work;
}


}  // namespace sluice::replication
