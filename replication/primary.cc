#include "replication/primary.h"

#include <algorithm>
#include <cstring>

#include "protocol/assert.h"

namespace sluice::replication {

// ---- Streamer ------------------------------------------------------------------------------

Streamer::Streamer(uint32_t queue, uint32_t partition, uint64_t log_end, uint64_t epoch_start,
                   const StreamerConfig& config)
    : queue_(queue),
      partition_(partition),
      epoch_start_(epoch_start),
      config_(config),
      ring_(config.ring_bytes),
      entries_(config.ring_batches),
      sent_(config.window_batches),
      slot_(config.max_batch_bytes),
      acked_end_(log_end),
      next_send_(log_end),
      sent_high_(log_end),
      offered_end_(log_end) {
  SLUICE_ASSERT(config.ring_batches > 0 && config.window_batches > 0);
}

uint64_t Streamer::ring_start() const { return count_ == 0 ? offered_end_ : EntryAt(0).base; }

const Streamer::Entry* Streamer::FindEntry(uint64_t base) const {
  if (count_ == 0 || base < EntryAt(0).base || base >= offered_end_) return nullptr;
  // Entries are contiguous and sorted by offset: binary search.
  uint32_t lo = 0, hi = count_;
  while (hi - lo > 1) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (EntryAt(mid).base <= base) lo = mid; else hi = mid;
  }
  const Entry& e = EntryAt(lo);
  return e.base == base ? &e : nullptr;
}

void Streamer::PopHead() {
  SLUICE_ASSERT(count_ > 0);
  head_ = (head_ + 1) % static_cast<uint32_t>(entries_.size());
  if (--count_ == 0) tail_pos_ = 0;
}

void Streamer::Offer(std::span<const std::byte> bytes, uint64_t base, uint64_t end,
                     uint64_t now_ns, LinkCounters& c) {
  if (end <= offered_end_) return;  // offered before (storage re-offers throttled batches)
  SLUICE_ASSERT(base == offered_end_);  // the shard seals batches in order, without holes
  SLUICE_ASSERT(end > base);
  if (acked_end_ == offered_end_) waiting_since_ns_ = now_ns;  // starts waiting now
  offered_end_ = end;
  const uint32_t len = static_cast<uint32_t>(bytes.size());
  if (len > ring_.size()) {  // never fits: always read back from the log
    while (count_ > 0) { PopHead(); ++c.ring_evictions; }
    return;
  }
  // Find room: append at tail_pos_, or wrap to 0; evict the oldest entries until it fits.
  uint32_t pos = 0;
  for (;;) {
    if (count_ == entries_.size()) {
      if (EntryAt(0).end > acked_end_) ++c.ring_evictions;
      PopHead();
      continue;
    }
    if (count_ == 0) { pos = 0; break; }
    const uint32_t h = EntryAt(0).pos;
    if (tail_pos_ > h) {
      if (ring_.size() - tail_pos_ >= len) { pos = tail_pos_; break; }
      if (len <= h) { pos = 0; break; }
    } else if (tail_pos_ < h) {
      if (h - tail_pos_ >= len) { pos = tail_pos_; break; }
    }
    if (EntryAt(0).end > acked_end_) ++c.ring_evictions;
    PopHead();
  }
  std::memcpy(ring_.data() + pos, bytes.data(), len);
  Entry& e = entries_[(head_ + count_) % entries_.size()];
  e = Entry{base, end, pos, len};
  ++count_;
  tail_pos_ = pos + len;
  DropAcked();  // if the standby acked it already (catch-up overtaking), it need not stay
}

void Streamer::OfferFromLog(uint64_t base, uint64_t end, uint64_t now_ns, LinkCounters& c) {
  if (end <= offered_end_) return;
  SLUICE_ASSERT(base == offered_end_ && end > base);
  if (acked_end_ == offered_end_) waiting_since_ns_ = now_ns;
  offered_end_ = end;
  // The ring holds a contiguous run of offsets ending at offered_end: what it holds now no
  // longer ends there, so it goes (read back from the log if the standby still needs it).
  while (count_ > 0) {
    if (EntryAt(0).end > acked_end_) ++c.ring_evictions;
    PopHead();
  }
}

void Streamer::DropAcked() {
  while (count_ > 0 && EntryAt(0).end <= acked_end_) PopHead();
}

void Streamer::Connect(uint64_t stated_end, uint64_t now_ns) {
  connected_ = true;
  divergent_ = stated_end > offered_end_;  // the standby holds what this log does not
  acked_end_ = std::min(stated_end, offered_end_);
  catchup_target_ = offered_end_;
  caught_up_ = acked_end_ >= catchup_target_ && !divergent_;
  behind_start_ = false;
  session_high_ = acked_end_;
  waiting_since_ns_ = now_ns;
  last_nak_from_ = UINT64_MAX;
  DropAcked();
  GoBack(acked_end_, now_ns);
}

void Streamer::Disconnect() {
  connected_ = false;
  caught_up_ = false;
  behind_start_ = false;
}

void Streamer::GoBack(uint64_t from, uint64_t now_ns) {
  next_send_ = from;
  frag_pos_ = 0;
  sent_head_ = 0;
  sent_count_ = 0;
  inflight_bytes_ = 0;
  last_progress_ns_ = now_ns;
}

void Streamer::OnAck(uint64_t durable_end, uint64_t now_ns) {
  if (!connected_ || divergent_) return;
  if (durable_end <= acked_end_ || durable_end > offered_end_) return;  // stale or bogus
  if (behind_start_ || durable_end > session_high_) {
    // The standby restarted its log at our start (its own ended below it): we were waiting for
    // that, or it acks more than we ever sent it in this session. Caught up only once it holds
    // our end as of now, from there. (Any progress ends the wait: were it something sent
    // before, a read finds out again.)
    behind_start_ = false;
    caught_up_ = false;
    catchup_target_ = offered_end_;
  }
  session_high_ = std::max(session_high_, durable_end);
  acked_end_ = durable_end;
  last_progress_ns_ = now_ns;
  waiting_since_ns_ = now_ns;
  while (sent_count_ > 0 && sent_[sent_head_].end <= acked_end_) {
    inflight_bytes_ -= sent_[sent_head_].len;
    sent_head_ = (sent_head_ + 1) % static_cast<uint32_t>(sent_.size());
    --sent_count_;
  }
  if (next_send_ < acked_end_) GoBack(acked_end_, now_ns);  // it has more than we resent
  if (acked_end_ >= catchup_target_) caught_up_ = true;
  if (slot_len_ != 0 && slot_end_ <= acked_end_) slot_len_ = 0;
  DropAcked();
}

void Streamer::OnNak(uint64_t from, uint64_t now_ns, LinkCounters& c) {
  if (!connected_ || divergent_) return;
  if (from < acked_end_ || from >= next_send_) return;  // stale, or not sent yet
  // One retransmission per NAKed offset per quarter timeout: the later batches already in
  // flight all make the standby NAK the same offset again.
  if (from == last_nak_from_ && now_ns < last_nak_ns_ + config_.retransmit_ns / 4) return;
  last_nak_from_ = from;
  last_nak_ns_ = now_ns;
  ++c.naks_received;
  GoBack(from, now_ns);
}

bool Streamer::WantsBackfill(uint64_t* from) const {
  if (!connected_ || divergent_ || behind_start_ || next_send_ >= offered_end_) return false;
  if (next_send_ >= ring_start()) return false;
  if (slot_len_ != 0 && slot_base_ == next_send_) return false;
  *from = next_send_;
  return true;
}

bool Streamer::BehindStart(uint64_t from) {
  // Only while the read still names what we want (it is asynchronous: the streamer may have
  // moved on, e.g. the standby's restart ack came meanwhile).
  if (uint64_t want = 0; !WantsBackfill(&want) || want != from) return false;
  behind_start_ = true;
  caught_up_ = false;
  return true;
}

void Streamer::Backfill(std::span<const std::byte> bytes, uint64_t base, uint64_t end) {
  if (bytes.size() > slot_.size() || end <= base) return;
  // Only the batch asked for, while it is still wanted: the read is asynchronous, so the answer
  // may come after the streamer moved (a go-back onto the batch the slot holds, which it may be
  // sending fragment by fragment, must not be overwritten under it).
  if (uint64_t want = 0; !WantsBackfill(&want) || want != base) return;
  std::memcpy(slot_.data(), bytes.data(), bytes.size());
  slot_base_ = base;
  slot_end_ = end;
  slot_len_ = static_cast<uint32_t>(bytes.size());
}

uint32_t Streamer::Poll(
    uint64_t now_ns, uint32_t* budget_bytes, uint32_t max_fragment_bytes,
    absl::FunctionRef<bool(const BatchFragmentHeader&, std::span<const std::byte>)> emit,
    LinkCounters& c) {
  if (!connected_ || divergent_) return 0;
  if (acked_end_ < next_send_ && now_ns >= last_progress_ns_ + config_.retransmit_ns) {
    ++c.timeouts;
    GoBack(acked_end_, now_ns);
  }
  uint32_t frags = 0;
  // Bounded: each iteration sends one whole batch or stops.
  for (uint32_t guard = 0; guard < entries_.size() + 1; ++guard) {
    if (next_send_ >= offered_end_ || *budget_bytes == 0) break;
    if (sent_count_ == sent_.size() || inflight_bytes_ >= config_.window_bytes) break;
    std::span<const std::byte> bytes;
    uint64_t end = 0;
    bool from_log = false;
    if (const Entry* e = FindEntry(next_send_)) {
      bytes = {ring_.data() + e->pos, e->len};
      end = e->end;
    } else if (slot_len_ != 0 && slot_base_ == next_send_) {
      bytes = {slot_.data(), slot_len_};
      end = slot_end_;
      from_log = true;
    } else {
      break;  // WantsBackfill says what to read
    }
    const BatchFragmentHeader base_h{queue_, partition_, next_send_, end,
                                     static_cast<uint32_t>(bytes.size()), 0, max_fragment_bytes, 0};
    while (frag_pos_ < bytes.size()) {
      BatchFragmentHeader h = base_h;
      h.frag_offset = frag_pos_;
      h.frag_bytes = static_cast<uint32_t>(std::min<size_t>(max_fragment_bytes, bytes.size() - frag_pos_));
      if (!emit(h, bytes.subspan(frag_pos_, h.frag_bytes))) return frags;  // next pass goes on
      ++frags;
      ++c.fragments_sent;
      frag_pos_ += h.frag_bytes;
      *budget_bytes -= std::min(*budget_bytes, h.frag_bytes);
    }
    if (acked_end_ == next_send_) last_progress_ns_ = now_ns;  // the timer starts with the send
    sent_[(sent_head_ + sent_count_) % sent_.size()] = Sent{end, static_cast<uint32_t>(bytes.size())};
    ++sent_count_;
    inflight_bytes_ += bytes.size();
    if (end <= sent_high_) ++c.batches_resent; else ++c.batches_sent;
    if (from_log) ++c.backfill_batches;
    sent_high_ = std::max(sent_high_, end);
    session_high_ = std::max(session_high_, end);
    next_send_ = end;
    frag_pos_ = 0;
    if (from_log) slot_len_ = 0;
  }
  return frags;
}

// ---- PrimaryLink -----------------------------------------------------------------------------

PrimaryLink::PrimaryLink(const PrimaryConfig& config) : config_(config) {
  SLUICE_ASSERT(FragmentCapacity(config.max_datagram_bytes) >= 256);
  scratch_.reserve(kMaxEntriesPerMessage);
  log_start_scratch_.reserve(kMaxEntriesPerMessage);
}

void PrimaryLink::AddPartition(uint32_t queue, uint32_t partition, uint64_t log_end,
                               uint64_t epoch_start) {
  auto& s = streamers_[PartitionKey(queue, partition)];
  if (s != nullptr) return;
  s = std::make_unique<Streamer>(queue, partition, log_end, epoch_start, config_.streamer);
  order_.push_back(s.get());
  // A standby already connected learns of it at its next HELLO; until then it streams from 0.
  if (connected_) s->Connect(0, last_now_ns_);
  const uint32_t gen_hi = static_cast<uint32_t>(config_.boot_id ^ (config_.boot_id >> 32));
  auto& a = ack_senders_[PartitionKey(queue, partition)];
  a = std::make_unique<AckSender>(queue, partition, gen_hi, config_.acks);
  ack_order_.push_back(a.get());
  if (connected_) a->OpenSession();  // the standby's next position says where it stands
}

void PrimaryLink::RemovePartition(uint32_t queue, uint32_t partition) {
  auto it = streamers_.find(PartitionKey(queue, partition));
  if (it == streamers_.end()) return;
  order_.erase(std::find(order_.begin(), order_.end(), it->second.get()));
  streamers_.erase(it);
  rr_ = 0;
  auto a = ack_senders_.find(PartitionKey(queue, partition));
  if (a != ack_senders_.end()) {
    ack_order_.erase(std::find(ack_order_.begin(), ack_order_.end(), a->second.get()));
    ack_senders_.erase(a);
    ack_rr_ = 0;
  }
}

AckSender* PrimaryLink::FindAckMut(uint32_t queue, uint32_t partition) {
  auto it = ack_senders_.find(PartitionKey(queue, partition));
  return it == ack_senders_.end() ? nullptr : it->second.get();
}
const AckSender* PrimaryLink::FindAck(uint32_t queue, uint32_t partition) const {
  auto it = ack_senders_.find(PartitionKey(queue, partition));
  return it == ack_senders_.end() ? nullptr : it->second.get();
}

void PrimaryLink::OfferAck(uint32_t queue, uint32_t partition, const AckRecord& r) {
  if (AckSender* a = FindAckMut(queue, partition)) a->Offer(r, counters_);
}

void PrimaryLink::ForEachAckSnapshot(absl::FunctionRef<void(uint32_t, uint32_t)> fn) const {
  if (!connected_ || fenced_) return;
  for (const AckSender* a : ack_order_) {
    if (a->WantsSnapshot()) fn(a->queue(), a->partition());
  }
}

void PrimaryLink::SetAckSnapshot(uint32_t queue, uint32_t partition,
                                 const storage::AckState& state) {
  AckSender* a = FindAckMut(queue, partition);
  if (a != nullptr && a->WantsSnapshot()) a->SetSnapshot(state, last_now_ns_, counters_);
}

bool PrimaryLink::SetAckSnapshot(uint32_t queue, uint32_t partition,
                                 const storage::AckState& state, uint64_t live_base) {
  AckSender* a = FindAckMut(queue, partition);
  if (a == nullptr || !a->WantsSnapshot() || live_base > a->offered()) return false;
  return a->SetSnapshot(state, live_base, last_now_ns_, counters_);
}

uint64_t PrimaryLink::AckOffered(uint32_t queue, uint32_t partition) const {
  const AckSender* a = FindAck(queue, partition);
  return a == nullptr ? 0 : a->offered();
}

uint64_t PrimaryLink::ack_lag() const {
  uint64_t lag = 0;
  for (const AckSender* a : ack_order_) lag += a->lag();
  return lag;
}

bool PrimaryLink::Has(uint32_t queue, uint32_t partition) const {
  return streamers_.contains(PartitionKey(queue, partition));
}

Streamer* PrimaryLink::FindMut(uint32_t queue, uint32_t partition) {
  auto it = streamers_.find(PartitionKey(queue, partition));
  return it == streamers_.end() ? nullptr : it->second.get();
}
const Streamer* PrimaryLink::Find(uint32_t queue, uint32_t partition) const {
  auto it = streamers_.find(PartitionKey(queue, partition));
  return it == streamers_.end() ? nullptr : it->second.get();
}

void PrimaryLink::OfferFromLog(uint32_t queue, uint32_t partition, uint64_t base, uint64_t end,
                               uint64_t now_ns) {
  if (Streamer* s = FindMut(queue, partition)) s->OfferFromLog(base, end, now_ns, counters_);
}

void PrimaryLink::Offer(uint32_t queue, uint32_t partition, std::span<const std::byte> bytes,
                        uint64_t base, uint64_t end, uint64_t now_ns) {
  if (Streamer* s = FindMut(queue, partition)) s->Offer(bytes, base, end, now_ns, counters_);
}

void PrimaryLink::OnHello(const LinkMessage& m, uint64_t now_ns) {
  ++counters_.hellos_received;
  bool divergent = false;
  for (const Streamer* s : order_) divergent = divergent || s->divergent();
  const bool same_session = connected_ && m.boot_id == peer_boot_id_;
  if (same_session && (!divergent || hello_rx_open_)) {
    if (hello_rx_open_) {
      // A later part of the HELLO that opened this session: connect what it lists.
      for (uint32_t i = 0; i < m.count; ++i) {
        const HelloEntry e = m.Hello(i);
        if (Streamer* s = FindMut(e.queue, e.partition)) s->Connect(e.offset, now_ns);
      }
      if (m.hello_part + 1 == m.hello_parts) CloseHelloSession(now_ns);
      return;
    }
    // The same standby again (it answered our HELLO, or missed us for a while): its stated ends
    // are acks. Losses in between are repaired by NAK and timeout, without a restart. It says
    // HELLO again while it has not heard ours (lost): answer, at most once per heartbeat.
    if (m.hello_flags & kHelloReplyWanted) hello_due_ = true;
    for (uint32_t i = 0; i < m.count; ++i) {
      const HelloEntry e = m.Hello(i);
      if (Streamer* s = FindMut(e.queue, e.partition)) s->OnAck(e.offset, now_ns);
    }
    return;
  }
  if (m.hello_part != 0) return;  // a session opens with part 0 (a lost one is asked for again)
  peer_boot_id_ = m.boot_id;
  connected_ = true;
  for (Streamer* s : order_) s->Disconnect();
  for (AckSender* a : ack_order_) a->OpenSession();  // resumed or snapshot, by its position
  for (uint32_t i = 0; i < m.count; ++i) {
    const HelloEntry e = m.Hello(i);
    if (Streamer* s = FindMut(e.queue, e.partition)) {
      s->Connect(e.offset, now_ns);
    } else {
      ++counters_.rx_unknown_partition;
    }
  }
  hello_rx_open_ = true;
  if (m.hello_parts == 1) CloseHelloSession(now_ns);
  next_control_ns_ = std::min(next_control_ns_, now_ns);  // answer with our HELLO (the standby
  hello_due_ = true;                                     // checks divergence with it)
  if (!catalog_.empty()) {  // a new standby session: the catalog again
    catalog_acked_ = false;
    catalog_pos_ = 0;
    next_catalog_ns_ = now_ns;
  }
}

void PrimaryLink::CloseHelloSession(uint64_t now_ns) {
  hello_rx_open_ = false;
  // Partitions the standby did not mention in any part: it has nothing of them yet.
  for (Streamer* s : order_) {
    if (!s->connected()) s->Connect(0, now_ns);
    if (s->divergent()) ++counters_.divergent;
  }
}

void PrimaryLink::OnDatagram(std::span<const std::byte> datagram, uint64_t now_ns) {
  ++counters_.rx_datagrams;
  LinkMessage m;
  if (DecodeLink(datagram, &m) != DecodeError::kOk) {
    ++counters_.rx_malformed;
    return;
  }
  if (m.epoch > config_.epoch) {  // someone was promoted past us: we are deposed
    if (!fenced_) ++counters_.fenced;
    fenced_ = true;
    higher_epoch_ = std::max(higher_epoch_, m.epoch);
    connected_ = false;
    for (Streamer* s : order_) s->Disconnect();
    for (AckSender* a : ack_order_) a->Disconnect();
    return;
  }
  if (m.role != Role::kStandby) {
    ++counters_.rx_wrong_role;
    return;
  }
  if (fenced_) return;
  if (m.type == MsgType::kHello && !(m.shape == config_.shape)) {
    // Another channel's or another layout's standby: its partitions are not this channel's.
    ++counters_.rx_shape_mismatch;
    shape_mismatch_ = true;
    peer_shape_ = m.shape;
    return;
  }
  last_rx_ns_ = now_ns;
  switch (m.type) {
    case MsgType::kHello: OnHello(m, now_ns); return;
    case MsgType::kAck:
      if (!connected_) return;  // acks of a session we have not (re)opened: wait for HELLO
      for (uint32_t i = 0; i < m.count; ++i) {
        const PartitionOffset e = m.Entry(i);
        if (Streamer* s = FindMut(e.queue, e.partition)) s->OnAck(e.offset, now_ns);
        else ++counters_.rx_unknown_partition;
      }
      return;
    case MsgType::kNak:
      if (!connected_) return;
      if (Streamer* s = FindMut(m.queue, m.partition)) s->OnNak(m.from_offset, now_ns, counters_);
      else ++counters_.rx_unknown_partition;
      return;
    case MsgType::kAckLogAck:
      if (!connected_) return;
      for (uint32_t i = 0; i < m.count; ++i) {
        const AckLogPosition e = m.Position(i);
        if (AckSender* a = FindAckMut(e.queue, e.partition)) a->OnPosition(e, now_ns, counters_);
        else ++counters_.rx_unknown_partition;
      }
      return;
    case MsgType::kHeartbeat: return;
    case MsgType::kCatalogAck:
      if (m.catalog_hash == catalog_hash_) catalog_acked_ = true;
      return;
    case MsgType::kBatch:
    case MsgType::kAckLog:
    case MsgType::kLogStart:
    case MsgType::kCatalog: ++counters_.rx_wrong_role; return;
  }
}

void PrimaryLink::SetCatalog(std::span<const std::byte> document) {
  const uint64_t hash = CatalogHash(document);
  if (hash == catalog_hash_ || document.size() > kMaxCatalogBytes) return;
  catalog_.assign(document.begin(), document.end());
  catalog_hash_ = hash;
  catalog_acked_ = false;
  catalog_pos_ = 0;
  next_catalog_ns_ = 0;
}

uint32_t PrimaryLink::SendCatalog(uint64_t now_ns, LinkOutput& out) {
  // At most 64 fragments a pass; a whole round every second until acknowledged.
  const uint32_t unit = config_.max_datagram_bytes - kLinkHeaderBytes - kCatalogHeaderBytes;
  uint32_t sent = 0;
  while (sent < 64) {
    std::span<std::byte> buf = out.Acquire();
    if (buf.empty()) {
      ++counters_.tx_no_buffer;
      return sent;
    }
    const uint32_t n = std::min<uint32_t>(unit, static_cast<uint32_t>(catalog_.size()) - catalog_pos_);
    const size_t len = EncodeCatalog(buf, Role::kPrimary, config_.epoch, catalog_hash_,
                                     static_cast<uint32_t>(catalog_.size()), catalog_pos_,
                                     std::span<const std::byte>(catalog_).subspan(catalog_pos_, n));
    SLUICE_ASSERT(len != 0);
    out.Send(len);
    ++counters_.tx_datagrams;
    ++sent;
    catalog_pos_ += n;
    if (catalog_pos_ >= catalog_.size()) {
      catalog_pos_ = 0;
      next_catalog_ns_ = now_ns + 1'000'000'000;
      break;
    }
  }
  return sent;
}

uint32_t PrimaryLink::Poll(uint64_t now_ns, LinkOutput& out) {
  uint32_t work = 0;
  last_now_ns_ = now_ns;
  if (connected_ && now_ns > last_rx_ns_ + config_.peer_timeout_ns) {
    connected_ = false;
    ++counters_.peer_lost;
    for (Streamer* s : order_) s->Disconnect();
    for (AckSender* a : ack_order_) a->Disconnect();
  }
  if (now_ns >= next_control_ns_) {
    next_control_ns_ = now_ns + config_.heartbeat_ns;
    std::span<std::byte> buf = out.Acquire();
    if (buf.empty()) {
      ++counters_.tx_no_buffer;
    } else {
      size_t n = 0;
      if (!connected_ || hello_due_) {
        // HELLO with our log ends, until the standby answers with its own; in as many parts
        // as the partitions need (each its own datagram).
        const uint16_t flags = connected_ ? 0 : kHelloReplyWanted;
        hello_due_ = false;
        const uint32_t per = HelloEntriesPerDatagram(config_.max_datagram_bytes);
        const uint32_t total = static_cast<uint32_t>(order_.size());
        const uint16_t parts = static_cast<uint16_t>(std::max<uint32_t>(1, (total + per - 1) / per));
        for (uint16_t part = 0; part < parts; ++part) {
          if (part > 0) {
            out.Send(n);
            ++counters_.tx_datagrams;
            buf = out.Acquire();
            if (buf.empty()) {
              ++counters_.tx_no_buffer;
              return work;
            }
          }
          scratch_.clear();
          for (uint32_t i = part * per; i < std::min(total, (part + 1u) * per); ++i) {
            const Streamer* s = order_[i];
            scratch_.push_back({s->queue(), s->partition(), s->offered_end(), s->epoch_start()});
          }
          n = EncodeHello(buf, Role::kPrimary, config_.epoch, config_.boot_id, scratch_,
                          config_.client_ipv4, config_.client_port, flags, part, parts,
                          config_.shape);
          SLUICE_ASSERT(n != 0);
        }
        ++counters_.hellos_sent;
      } else {
        n = EncodeHeartbeat(buf, Role::kPrimary, config_.epoch, now_ns);
        ++counters_.heartbeats_sent;
      }
      SLUICE_ASSERT(n != 0);
      out.Send(n);
      ++counters_.tx_datagrams;
      ++work;
    }
  }
  if (connected_ && !fenced_ && !catalog_acked_ && !catalog_.empty() && now_ns >= next_catalog_ns_) {
    work += SendCatalog(now_ns, out);
  }
  if (!connected_ || fenced_ || order_.empty()) return work;
  if (now_ns >= next_log_start_ns_) {
    next_log_start_ns_ = now_ns + config_.log_start_interval_ns;
    work += SendLogStarts(out);
  }
  uint32_t budget = config_.pass_budget_bytes;
  const uint32_t unit = FragmentCapacity(config_.max_datagram_bytes);
  bool no_buffer = false;
  auto emit = [&](const BatchFragmentHeader& h, std::span<const std::byte> bytes) {
    std::span<std::byte> buf = out.Acquire();
    if (buf.empty()) {
      ++counters_.tx_no_buffer;
      no_buffer = true;
      return false;
    }
    const size_t n = EncodeFragment(buf, Role::kPrimary, config_.epoch, h, bytes);
    SLUICE_ASSERT(n != 0);
    out.Send(n);
    ++counters_.tx_datagrams;
    return true;
  };
  // Round robin over partitions, so one partition's catch-up does not starve the others.
  const uint32_t n = static_cast<uint32_t>(order_.size());
  for (uint32_t i = 0; i < n && budget > 0 && !no_buffer; ++i) {
    Streamer* s = order_[(rr_ + i) % n];
    work += s->Poll(now_ns, &budget, unit, emit, counters_);
  }
  rr_ = (rr_ + 1) % n;
  // Ack records after the batches of this pass (they refer to data: the standby holds them
  // until that data is durable there anyway). Round robin, a bounded number of datagrams.
  uint32_t datagrams = config_.ack_datagrams_per_pass;
  const uint32_t na = static_cast<uint32_t>(ack_order_.size());
  for (uint32_t i = 0; i < na && datagrams > 0 && !no_buffer; ++i) {
    work += ack_order_[(ack_rr_ + i) % na]->Poll(now_ns, config_.epoch, config_.max_datagram_bytes,
                                                 &datagrams, out, counters_);
  }
  if (na > 0) ack_rr_ = (ack_rr_ + 1) % na;
  return work;
}

void PrimaryLink::SetLogStart(uint32_t queue, uint32_t partition, uint64_t start) {
  if (Streamer* s = FindMut(queue, partition)) s->set_log_start(start);
}

uint32_t PrimaryLink::SendLogStarts(LinkOutput& out) {
  // Every partition's log start, as many per datagram as fit. Idempotent: a lost one is
  // repaired by the next (a second later); the standby only ever removes below what it says.
  const uint32_t per = std::min<uint32_t>(
      kMaxEntriesPerMessage,
      (config_.max_datagram_bytes - kLinkHeaderBytes - 8) / kPartitionOffsetBytes);
  uint32_t sent = 0;
  for (size_t i = 0; i < order_.size(); i += per) {
    log_start_scratch_.clear();
    for (size_t j = i; j < std::min(order_.size(), i + per); ++j) {
      log_start_scratch_.push_back(
          {order_[j]->queue(), order_[j]->partition(), order_[j]->log_start()});
    }
    std::span<std::byte> buf = out.Acquire();
    if (buf.empty()) {
      ++counters_.tx_no_buffer;
      return sent;
    }
    const size_t n = EncodeLogStart(buf, Role::kPrimary, config_.epoch, log_start_scratch_);
    SLUICE_ASSERT(n != 0);
    out.Send(n);
    ++counters_.tx_datagrams;
    ++sent;
  }
  return sent;
}

void PrimaryLink::ForEachBackfill(
    absl::FunctionRef<void(uint32_t, uint32_t, uint64_t)> fn) const {
  for (const Streamer* s : order_) {
    uint64_t from = 0;
    if (s->WantsBackfill(&from)) fn(s->queue(), s->partition(), from);
  }
}

bool PrimaryLink::BehindStart(uint32_t queue, uint32_t partition, uint64_t from) {
  Streamer* s = FindMut(queue, partition);
  if (s == nullptr || !s->BehindStart(from)) return false;
  ++counters_.standby_behind_start;
  return true;
}

void PrimaryLink::Backfill(uint32_t queue, uint32_t partition, std::span<const std::byte> bytes,
                           uint64_t base, uint64_t end) {
  if (Streamer* s = FindMut(queue, partition)) s->Backfill(bytes, base, end);
}

bool PrimaryLink::Replicated(uint32_t queue, uint32_t partition, uint64_t now_ns,
                             uint64_t lag_bound_ns, uint64_t* end) const {
  const Streamer* s = Find(queue, partition);
  if (s == nullptr || !connected_ || fenced_ || !s->connected() || !s->caught_up() ||
      s->Lagging(now_ns, lag_bound_ns)) {
    return false;
  }
  *end = s->acked_end();
  return true;
}

}  // namespace sluice::replication
