#include "replication/ack_stream.h"

#include <algorithm>
#include <cstring>

#include "protocol/assert.h"

namespace sluice::replication {

// ---- AckRing ----------------------------------------------------------------------------------

AckRing::AckRing(uint32_t bytes, uint32_t records) : bytes_(bytes), slots_(records) {
  SLUICE_ASSERT(bytes >= AckRecordBytes(kMaxAckGroupBytes) && records > 0);
}

bool AckRing::Push(const AckRecord& r) {
  const uint32_t len = AckRecordBytes(r.group.size());
  if (count_ == slots_.size()) return false;
  uint32_t pos = 0;
  if (count_ > 0) {
    // Contiguous room after the tail, or from 0 when the tail is past the head's bytes.
    const uint32_t h = slots_[head_].pos;
    const uint32_t size = static_cast<uint32_t>(bytes_.size());
    if (tail_pos_ > h) {
      if (size - tail_pos_ >= len) pos = tail_pos_;
      else if (len <= h) pos = 0;
      else return false;
    } else if (tail_pos_ < h && h - tail_pos_ >= len) {
      pos = tail_pos_;
    } else {
      return false;
    }
  }
  EncodeAckRecord(bytes_.data() + pos, r);
  slots_[(head_ + count_) % slots_.size()] = Slot{pos, len};
  ++count_;
  tail_pos_ = pos + len;
  return true;
}

void AckRing::PopFront() {
  SLUICE_ASSERT(count_ > 0);
  head_ = (head_ + 1) % static_cast<uint32_t>(slots_.size());
  ++first_seq_;
  if (--count_ == 0) tail_pos_ = 0;
}

void AckRing::Clear(uint64_t first_seq) {
  head_ = count_ = tail_pos_ = 0;
  first_seq_ = first_seq;
}

std::span<const std::byte> AckRing::At(uint64_t seq) const {
  SLUICE_ASSERT(seq >= first_seq_ && seq < end_seq());
  const Slot& s = slots_[(head_ + (seq - first_seq_)) % slots_.size()];
  return {bytes_.data() + s.pos, s.len};
}

uint32_t CommitRefPartition(std::string_view key, uint32_t own_partition) {
  uint64_t v = 0;
  size_t i = 0;
  while (i < key.size() && i < 10 && key[i] >= '0' && key[i] <= '9') v = v * 10 + (key[i++] - '0');
  if (i == 0 || i >= key.size() || key[i] != ':' || v > UINT32_MAX) return own_partition;
  return static_cast<uint32_t>(v);
}

// ---- AckSender --------------------------------------------------------------------------------

AckSender::AckSender(uint32_t queue, uint32_t partition, uint32_t gen_hi,
                     const AckStreamConfig& config)
    : queue_(queue),
      partition_(partition),
      gen_hi_(gen_hi == 0 ? 1 : gen_hi),
      config_(config),
      ring_(config.ring_bytes, config.ring_records),
      scratch_(16384) {}

void AckSender::Offer(const AckRecord& r, LinkCounters& c) {
  SLUICE_ASSERT(r.group.size() <= kMaxAckGroupBytes);
  while (!ring_.Push(r)) {
    // Full: the oldest record goes. If the standby still needs it, only a snapshot (which the
    // ack log on disk holds) can bring it over.
    const uint64_t oldest = ring_.first_seq();
    ring_.PopFront();
    if (state_ == State::kStreaming && oldest >= snap_live_base_ &&
        snap_count_ + (oldest - snap_live_base_) >= acked_) {
      state_ = State::kNeedSnapshot;
      ++c.acklog_overflows;
    }
  }
  ++live_end_;
}

void AckSender::OpenSession() { state_ = State::kAwaiting; }

void AckSender::Disconnect() { state_ = State::kIdle; }

bool AckSender::RecordAt(uint64_t k, std::span<const std::byte>* out) const {
  if (k < snap_count_) {
    if (snap_pos_.empty()) return false;  // freed: received already
    *out = std::span<const std::byte>(snap_).subspan(snap_pos_[k], snap_pos_[k + 1] - snap_pos_[k]);
    return true;
  }
  const uint64_t live = snap_live_base_ + (k - snap_count_);
  if (live < ring_.first_seq() || live >= ring_.end_seq()) return false;
  *out = ring_.At(live);
  return true;
}

void AckSender::Received(uint64_t next, uint64_t now_ns) {
  acked_ = next;
  last_progress_ns_ = now_ns;
  if (next_send_ < acked_) next_send_ = acked_;
  if (acked_ >= snap_count_ && !snap_pos_.empty()) {  // the snapshot is over there: free it
    snap_.clear();
    snap_.shrink_to_fit();
    snap_pos_.clear();
    snap_pos_.shrink_to_fit();
  }
  const uint64_t live = acked_ > snap_count_ ? snap_live_base_ + (acked_ - snap_count_) : 0;
  while (!ring_.empty() && ring_.first_seq() < live) ring_.PopFront();
}

void AckSender::NoteApplied() {
  // Generation sequence -> live record: the snapshot (records [0, snap_count_)) holds every live
  // record below snap_live_base_; live record L is generation record snap_count_ + L - base.
  if (applied_ < snap_count_) return;
  applied_live_ = std::max(applied_live_, snap_live_base_ + (applied_ - snap_count_));
  SLUICE_ASSERT(applied_live_ <= live_end_);
}

void AckSender::OnPosition(const AckLogPosition& p, uint64_t now_ns, LinkCounters& c) {
  (void)c;
  if (state_ == State::kAwaiting) {
    std::span<const std::byte> unused;
    if (gen_ != 0 && p.generation == gen_ && p.next_seq <= End() &&
        (p.next_seq == End() || RecordAt(p.next_seq, &unused))) {
      // The standby continues this generation: resend from where it stands.
      state_ = State::kStreaming;
      acked_ = applied_ = 0;
      next_send_ = p.next_seq;
      Received(p.next_seq, now_ns);
      applied_ = p.next_seq - std::min<uint64_t>(p.applied_lag, p.next_seq);
      NoteApplied();
      last_gap_from_ = UINT64_MAX;
    } else {
      state_ = State::kNeedSnapshot;
    }
    return;
  }
  if (state_ != State::kStreaming) return;
  if (p.generation == 0 && now_ns >= snapshot_ns_ + config_.retransmit_ns) {
    // The standby has no generation at all (it cut its log, or lost its state) and its position
    // is newer than our snapshot's first send: it needs another.
    state_ = State::kNeedSnapshot;
    return;
  }
  if (p.generation != gen_) return;  // stale: a position from before our current generation
  if (p.next_seq > End()) return;                                   // bogus
  applied_ = std::max(applied_, p.next_seq - std::min<uint64_t>(p.applied_lag, p.next_seq));
  NoteApplied();
  if (p.next_seq > acked_) Received(p.next_seq, now_ns);
  if ((p.flags & kAckPositionGap) != 0 && p.next_seq == acked_ && p.next_seq < next_send_) {
    // Later datagrams in flight all report the same gap: one go-back per quarter timeout.
    if (p.next_seq == last_gap_from_ && now_ns < last_gap_ns_ + config_.retransmit_ns / 4) return;
    last_gap_from_ = p.next_seq;
    last_gap_ns_ = now_ns;
    next_send_ = p.next_seq;
    last_progress_ns_ = now_ns;
  }
}

bool AckSender::SetSnapshot(const storage::AckState& state, uint64_t live_base, uint64_t now_ns,
                            LinkCounters& c) {
  // Control path: allocates. Every record offered below `live_base` is in `state` (the shell
  // flushed the ack log before reading it), so the generation continues with that live record.
  SLUICE_ASSERT(live_base <= live_end_);
  if (live_base < live_end_ && (ring_.empty() || ring_.first_seq() > live_base)) return false;
  snap_.clear();
  snap_pos_.clear();
  auto put = [&](const AckRecord& r) {
    const size_t at = snap_.size();
    snap_pos_.push_back(static_cast<uint32_t>(at));
    snap_.resize(at + AckRecordBytes(r.group.size()));
    EncodeAckRecord(snap_.data() + at, r);
  };
  put({AckRecordKind::kSnapshotBegin, partition_, 0, {}});
  put({AckRecordKind::kDeletedBelow, partition_, state.deleted_below, {}});
  for (uint64_t o : state.deleted) {
    if (o >= state.deleted_below) put({AckRecordKind::kDelete, partition_, o, {}});
  }
  for (const auto& [key, offset] : state.commits) {
    if (key.size() > kMaxAckGroupBytes) continue;  // the ack log never holds one
    put({AckRecordKind::kCommit, CommitRefPartition(key, partition_), offset, key});
  }
  put({AckRecordKind::kSnapshotEnd, partition_, 0, {}});
  snap_count_ = snap_pos_.size();
  snap_pos_.push_back(static_cast<uint32_t>(snap_.size()));
  snap_live_base_ = live_base;
  while (!ring_.empty() && ring_.first_seq() < snap_live_base_) ring_.PopFront();
  if (ring_.empty()) ring_.Clear(live_end_);
  gen_ = (uint64_t{gen_hi_} << 32) | ++gen_counter_;
  acked_ = applied_ = next_send_ = sent_high_ = 0;
  last_gap_from_ = UINT64_MAX;
  state_ = State::kStreaming;
  snapshot_ns_ = now_ns;
  ++c.acklog_snapshots_sent;
  return true;
}

uint32_t AckSender::Poll(uint64_t now_ns, uint64_t epoch, uint32_t max_datagram_bytes,
                         uint32_t* datagrams, LinkOutput& out, LinkCounters& c) {
  if (state_ != State::kStreaming) return 0;
  if (acked_ < next_send_ && now_ns >= last_progress_ns_ + config_.retransmit_ns) {
    ++c.acklog_timeouts;
    next_send_ = acked_;
    last_progress_ns_ = now_ns;
  }
  const uint32_t cap = std::min<uint32_t>(static_cast<uint32_t>(scratch_.size()),
                                          max_datagram_bytes - kLinkHeaderBytes - kAckLogHeaderBytes);
  uint32_t sent = 0;
  while (*datagrams > 0 && next_send_ < End() && next_send_ - acked_ < config_.window_records) {
    // Gather what fits one datagram, then send it.
    const uint64_t first = next_send_;
    uint64_t k = first;
    uint32_t used = 0;
    while (k < End() && k - acked_ < config_.window_records) {
      std::span<const std::byte> rec;
      if (!RecordAt(k, &rec)) {  // cannot happen: eviction of a needed record asks for a snapshot
        state_ = State::kNeedSnapshot;
        ++c.acklog_overflows;
        return sent;
      }
      if (used + rec.size() > cap) break;
      std::memcpy(scratch_.data() + used, rec.data(), rec.size());
      used += static_cast<uint32_t>(rec.size());
      ++k;
    }
    SLUICE_ASSERT(k > first);  // one record always fits a datagram
    std::span<std::byte> buf = out.Acquire();
    if (buf.empty()) {
      ++c.tx_no_buffer;
      break;
    }
    const AckLogHeader h{queue_, partition_, gen_, first, static_cast<uint32_t>(k - first), used};
    const size_t n = EncodeAckLog(buf, Role::kPrimary, epoch, h,
                                  std::span<const std::byte>(scratch_).first(used));
    SLUICE_ASSERT(n != 0);
    out.Send(n);
    ++c.tx_datagrams;
    ++c.acklog_datagrams_sent;
    const uint64_t fresh = k > sent_high_ ? k - std::max(first, sent_high_) : 0;
    c.acklog_records_sent += fresh;
    c.acklog_records_resent += (k - first) - fresh;
    sent_high_ = std::max(sent_high_, k);
    if (acked_ == first) last_progress_ns_ = now_ns;  // the timer starts with the send
    next_send_ = k;
    --*datagrams;
    ++sent;
  }
  return sent;
}

// ---- AckReceiver ------------------------------------------------------------------------------

AckReceiver::AckReceiver(uint32_t queue, uint32_t partition, const AckStreamConfig& config)
    : queue_(queue), partition_(partition), pending_(config.ring_bytes, config.ring_records) {}

bool AckReceiver::Newer(uint64_t gen, uint64_t than) {
  // Generations of one primary process count up; another process's are taken as newer (an
  // older primary's messages are refused by their epoch before they get here).
  if (than == 0) return true;
  if ((gen >> 32) != (than >> 32)) return true;
  return static_cast<uint32_t>(gen) > static_cast<uint32_t>(than);
}

void AckReceiver::Reset() {
  gen_ = next_ = applied_ = 0;
  building_ = snap_ready_ = false;
  snap_ = storage::AckState{};
  gate_.clear();
  pending_.Clear(0);
  ack_due = true;
}

void AckReceiver::OnAckLog(const LinkMessage& m, LinkCounters& c) {
  const AckLogHeader& h = m.acklog;
  if (h.generation != gen_) {
    // A new generation starts at 0 with its snapshot; a later piece of one is useless here.
    if (h.first_seq != 0 || !Newer(h.generation, gen_)) {
      c.acklog_dropped += h.count;
      ack_due = true;
      return;
    }
    Reset();
    gen_ = h.generation;
  }
  if (h.first_seq > next_) {  // a datagram went missing: say so (the primary goes back)
    c.acklog_dropped += h.count;
    gap_ = true;
    ack_due = true;
    return;
  }
  ack_due = true;
  size_t pos = 0;
  for (uint32_t i = 0; i < h.count; ++i) {
    AckRecord r;
    pos += DecodeAckRecord(m.data.subspan(pos), &r);
    const uint64_t k = h.first_seq + i;
    if (k < next_) {
      ++c.acklog_dropped;  // a duplicate
      continue;
    }
    switch (r.kind) {
      case AckRecordKind::kSnapshotBegin:
        building_ = true;
        snap_ready_ = false;
        snap_ = storage::AckState{};
        gate_.clear();
        break;
      case AckRecordKind::kSnapshotEnd:
        if (building_) {
          building_ = false;
          snap_.Compact(snap_.deleted_below);
          snap_ready_ = true;
          snap_end_ = k + 1;
          pending_.Clear(k + 1);
        }
        break;
      default:
        if (building_) {
          // Snapshot (control path: allocates). Its data must be here before it replaces the log.
          uint64_t need = r.offset;
          if (r.kind == AckRecordKind::kDelete) {
            snap_.deleted.push_back(r.offset);
            need = r.offset + 1;
          } else if (r.kind == AckRecordKind::kCommit) {
            snap_.commits[std::string(r.group)] = r.offset;
          } else {
            snap_.deleted_below = std::max(snap_.deleted_below, r.offset);
          }
          uint64_t& g = gate_[r.ref_partition];
          g = std::max(g, need);
        } else {
          SLUICE_ASSERT(pending_.end_seq() == k);
          if (!pending_.Push(r)) {  // full: the rest comes again
            c.acklog_dropped += h.count - i;
            return;
          }
        }
        break;
    }
    next_ = k + 1;
  }
}

uint32_t AckReceiver::Apply(absl::FunctionRef<uint64_t(uint32_t)> durable_end, AckSink& sink,
                            LinkCounters& c) {
  uint32_t n = 0;
  if (snap_ready_) {
    for (const auto& [ref, need] : gate_) {
      if (durable_end(ref) < need) return 0;  // its data is still on the way
    }
    if (!sink.ReplaceAcks(queue_, partition_, snap_)) return 0;
    snap_ready_ = false;
    applied_ = snap_end_;
    snap_ = storage::AckState{};
    gate_.clear();
    ++c.acklog_snapshots_applied;
    ack_due = true;
    ++n;
  }
  if (building_ || gen_ == 0 || applied_ < pending_.first_seq()) return n;
  while (!pending_.empty()) {
    AckRecord r;
    DecodeAckRecord(pending_.At(pending_.first_seq()), &r);
    const uint64_t need = r.kind == AckRecordKind::kDelete ? r.offset + 1 : r.offset;
    if (durable_end(r.ref_partition) < need) break;  // the data first
    if (!sink.AppendAck(queue_, partition_, r)) break;
    pending_.PopFront();
    applied_ = pending_.first_seq();
    ++c.acklog_records_applied;
    ++n;
  }
  if (n > 0) ack_due = true;
  return n;
}

AckLogPosition AckReceiver::TakePosition() {
  AckLogPosition p{queue_, partition_, gen_, next_,
                   static_cast<uint32_t>(std::min<uint64_t>(next_ - applied_, UINT32_MAX)),
                   static_cast<uint16_t>(gap_ ? kAckPositionGap : 0), 0};
  gap_ = false;
  ack_due = false;
  return p;
}

}  // namespace sluice::replication
