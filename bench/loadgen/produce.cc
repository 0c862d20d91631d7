// --produce: the produce -> ack benchmark against sluiced.
//
// Streams: every (producer id, partition) pair is a stream with its own idempotent sequence
// (from 0), and a ring of the TSC at which each in-flight sequence was sent (closed loop) or was
// due to be sent by the schedule (open loop: latency from the *scheduled* time, so a stalled
// sender does not hide the stall — no coordinated omission). A frame carries `batch` messages of
// one stream; streams take turns.
//
// Acks are coalesced ranges {partition, errc, count, first_sequence}: each OK (or DUPLICATE)
// sequence's latency is ack TSC - ring[seq]. A THROTTLED or OUT_OF_ORDER range stalls its stream:
// nothing new is sent on it until all its in-flight messages are answered, then it resends from
// the first sequence not acknowledged (go-back-N; the server's idempotence answers the resends of
// anything it did append as DUPLICATE). A stream whose first unacknowledged sequence makes no
// progress for --ack-timeout-ms counts its in-flight as lost and resends the same way.
//
// Frames are built from a template made once with protocol::FrameWriter; per frame only the
// request id, producer id and each record's partition and sequence are patched. The patching is
// checked against protocol::DecodeProduce before the run starts.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_memcpy.h>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/loadgen/drivers.h"
#include "bench/loadgen/lookup.h"
#include "bench/loadgen/port.h"
#include "protocol/codec.h"

namespace sluice::bench {
namespace p = protocol;
namespace {

// Byte offsets inside the UDP payload (wire.h: frame header, PRODUCE prefix, message record).
constexpr size_t kRequestIdAt = 24;
constexpr size_t kQueueIdAt = p::kHeaderBytes;
constexpr size_t kProducerIdAt = p::kHeaderBytes + 8;
constexpr size_t kRecordsAt = p::kHeaderBytes + p::kProducePrefixBytes;
constexpr size_t kRecPartitionAt = 4;
constexpr size_t kRecSequenceAt = 8;

struct Stream {
  uint32_t queue_id = 0;
  uint64_t producer_id = 0;
  uint16_t partition = 0;
  uint64_t next_seq = 0;      // next sequence to send
  uint64_t base = 0;          // every sequence below is acknowledged OK
  uint32_t inflight = 0;      // sent, not yet answered
  bool stalled = false;       // after an error: resend from `base` once inflight == 0
  uint64_t resume_tsc = 0;    // THROTTLED back-off: not before
  uint64_t progress_tsc = 0;  // when `base` last moved (or the stream started a burst)
  uint64_t* stamp = nullptr;  // [seq & mask]: send or scheduled TSC; 0 = none pending
};

template <class Buf>
struct Pending {
  Buf* m = nullptr;
  uint64_t stamp = 0;         // open loop: scheduled TSC; closed loop: set at transmit
  uint32_t stream = 0;
  uint64_t first_seq = 0;
  bool refused = false;       // the TX queue refused it once already (counted once)
};

template <class Port>
class Producer {
 public:
  using Buf = typename Port::Buf;
  Producer(Port& link, const Options& o, std::vector<QueueRef> qs, uint64_t client_id,
           uint64_t producer_base);
  absl::Status Prepare();
  absl::Status Subscribe();  // --deliver: verify this source, SUBSCRIBE every queue
  Result Run();

 private:
  void Build(uint64_t now);
  void Transmit(uint64_t now);
  uint64_t Receive(uint64_t now);
  void OnAck(const p::AckView& ack, uint32_t qi, uint64_t now);
  void OnRange(Stream& s, const p::AckRange& r, uint64_t now);
  void OnErrorFrame(const p::FrameView& f);
  void CheckTimeouts(uint64_t now);
  int PickStream(uint64_t now);
  // --deliver: this client also subscribes to every partition of the queues (from LATEST) and
  // times produce -> deliver from the TSC each message carries in its first 8 payload bytes.
  void OnDeliver(const p::DeliverView& d, uint64_t now);
  void Keepalive(uint64_t now);     // HEARTBEAT (keeps the source verified) and CREDIT per partition
  void SendCredit(uint32_t sub_index);
  void SendControl(std::span<const std::byte> frame);
  void Abort(std::string reason) {
    if (!result_.aborted) result_.abort_reason = std::move(reason);
    result_.aborted = true;
  }
  bool Measured(uint64_t tsc) const { return tsc >= t_measure_ && tsc < t_end_; }

  Port& link_;
  const Options& o_;
  const std::vector<QueueRef> qs_;   // --queue a,b,...: streams over every queue
  std::vector<uint32_t> stream_base_;  // [queue index]: its first stream
  const uint64_t client_id_;
  const uint64_t producer_base_;
  std::vector<uint8_t> template_;  // UDP headers + PRODUCE frame
  size_t record_bytes_ = 0;
  std::vector<Stream> streams_;
  std::vector<uint64_t> stamps_;   // all streams' rings
  uint64_t ring_mask_ = 0;
  uint64_t window_msgs_ = 0;
  uint64_t inflight_ = 0;
  uint32_t rr_ = 0;
  uint64_t request_id_ = 1;
  uint64_t built_msgs_ = 0;
  Pending<Buf> pending_[kBurst];
  uint16_t npending_ = 0;
  bool closed_loop_ = true;
  double next_sched_ = 0;          // open loop: TSC of the next frame's slot
  double period_ = 0;              // open loop: TSC cycles between frames
  uint64_t timeout_cycles_ = 0;
  uint64_t t_measure_ = 0, t_end_ = 0;
  Result result_;
  struct Sub {
    uint64_t subscription_id = 0;
    uint16_t partition = 0;
    uint64_t next_offset = 0;   // lowest offset not yet delivered to us
    uint64_t credited_at = 0;   // next_offset of the last CREDIT sent
    bool started = false;       // next_offset known (from RESULT or the first DELIVER)
  };
  static constexpr uint32_t kCredits = 1 << 16;  // per partition, absolute window
  std::vector<Sub> subs_;
  std::vector<uint32_t> sub_base_;  // [queue index]: its first Sub
  uint64_t cookie_ = 0;
  uint64_t next_keepalive_ = 0;
  std::vector<std::byte> control_;  // scratch for HEARTBEAT / CREDIT frames
};

template <class Port>
Producer<Port>::Producer(Port& link, const Options& o, std::vector<QueueRef> qs, uint64_t client_id,
                   uint64_t producer_base)
    : link_(link), o_(o), qs_(std::move(qs)), client_id_(client_id),
      producer_base_(producer_base) {}

template <class Port>
absl::Status Producer<Port>::Prepare() {
  // The template: one PRODUCE frame of `batch` records of `size` payload bytes.
  std::vector<std::byte> payload(o_.size, std::byte{0x5a});
  p::MessageSpec spec;
  spec.partition = 0;
  spec.payload = payload;
  record_bytes_ = p::EncodedSize(spec);
  for (const QueueRef& q : qs_) {
    if (record_bytes_ > q.max_message_bytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "a %u-byte message record exceeds queue %u's max_message_bytes %u", record_bytes_, q.id,
          q.max_message_bytes));
    }
  }
  std::vector<std::byte> frame(p::kHeaderBytes + p::kProducePrefixBytes + o_.batch * record_bytes_);
  p::FrameWriter w(frame);
  SLUICE_ASSERT(w.BeginProduce({client_id_, 0, 0}, qs_[0].id, producer_base_) == p::EncodeError::kOk);
  for (uint32_t i = 0; i < o_.batch; ++i) SLUICE_ASSERT(w.AddMessage(spec) == p::EncodeError::kOk);
  auto n = w.Finish();
  SLUICE_ASSERT(n.has_value() && *n == frame.size());
  if (frame.size() > link_.max_udp_payload()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a PRODUCE frame of %u x %u-byte messages is %u bytes: more than the %u a %u-byte MTU "
        "carries (lower --batch or raise --mtu and the server's port mtu)",
        o_.batch, o_.size, frame.size(), link_.max_udp_payload(), link_.mtu()));
  }
  template_.resize(Port::header_bytes() + frame.size());
  link_.WriteHeaders(template_.data(), static_cast<uint16_t>(frame.size()));
  memcpy(template_.data() + Port::header_bytes(), frame.data(), frame.size());

  // Check the patch offsets: patch a copy and decode it with the protocol's own decoder.
  std::vector<uint8_t> probe = template_;
  uint8_t* f = probe.data() + Port::header_bytes();
  p::le::Store<uint64_t>(reinterpret_cast<std::byte*>(f + kRequestIdAt), 77);
  p::le::Store<uint64_t>(reinterpret_cast<std::byte*>(f + kProducerIdAt), producer_base_ + 5);
  p::le::Store<uint32_t>(reinterpret_cast<std::byte*>(f + kQueueIdAt), 4242);
  for (uint32_t i = 0; i < o_.batch; ++i) {
    std::byte* rec = reinterpret_cast<std::byte*>(f + kRecordsAt + i * record_bytes_);
    p::le::Store<uint16_t>(rec + kRecPartitionAt, 3);
    p::le::Store<uint64_t>(rec + kRecSequenceAt, 1000 + i);
  }
  auto fv = p::DecodeFrame({reinterpret_cast<const std::byte*>(f), frame.size()});
  SLUICE_ASSERT(fv.has_value() && fv->header.request_id == 77);
  auto pv = p::DecodeProduce(*fv);
  SLUICE_ASSERT(pv.has_value() && pv->producer_id == producer_base_ + 5 && pv->queue_id == 4242);
  uint32_t i = 0;
  for (const p::MessageView& m : pv->messages) {
    SLUICE_ASSERT(m.partition == 3 && m.sequence == 1000 + i && m.payload.size() == o_.size);
    ++i;
  }
  SLUICE_ASSERT(i == o_.batch);

  // Streams and their stamp rings: a stream never has more than the window in flight.
  window_msgs_ = uint64_t{o_.window} * o_.batch;
  uint64_t ring = 1;
  while (ring < window_msgs_) ring <<= 1;
  ring_mask_ = ring - 1;
  // Streams: queue-major, then producer, then partition. Producer ids are distinct per queue.
  uint32_t nstreams = 0;
  for (const QueueRef& q : qs_) {
    stream_base_.push_back(nstreams);
    nstreams += o_.producers * q.partitions;
  }
  stamps_.assign(ring * nstreams, 0);
  streams_.resize(nstreams);
  for (uint32_t qi = 0; qi < qs_.size(); ++qi) {
    const uint32_t parts = qs_[qi].partitions;
    for (uint32_t k = 0; k < o_.producers * parts; ++k) {
      Stream& st = streams_[stream_base_[qi] + k];
      st.queue_id = qs_[qi].id;
      st.producer_id = producer_base_ + uint64_t{qi} * o_.producers + k / parts;
      st.partition = static_cast<uint16_t>(k % parts);
      st.stamp = stamps_.data() + (stream_base_[qi] + k) * ring;
    }
  }
  closed_loop_ = o_.rate <= 0;
  period_ = closed_loop_ ? 0 : static_cast<double>(link_.tsc_hz()) * o_.batch / o_.rate;
  timeout_cycles_ = static_cast<uint64_t>(o_.ack_timeout_ms * 1e-3 * link_.tsc_hz());
  result_.tsc_hz = link_.tsc_hz();
  return absl::OkStatus();
}

// The next stream that may send a frame, or -1.
template <class Port>
int Producer<Port>::PickStream(uint64_t now) {
  const uint32_t n = static_cast<uint32_t>(streams_.size());
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t i = (rr_ + k) % n;
    Stream& s = streams_[i];
    if (s.stalled) {
      if (s.inflight != 0 || now < s.resume_tsc) continue;
      s.stalled = false;      // everything answered: go back to the first unacknowledged
      s.next_seq = s.base;
    }
    if (s.next_seq + o_.batch - s.base > ring_mask_ + 1) continue;  // ring (window) full
    rr_ = i + 1;
    return static_cast<int>(i);
  }
  return -1;
}

template <class Port>
void Producer<Port>::Build(uint64_t now) {
  while (npending_ < kBurst) {
    if (inflight_ + o_.batch > window_msgs_) return;
    if (o_.count != 0 && built_msgs_ >= o_.count) return;
    if (!closed_loop_ && static_cast<double>(now) < next_sched_) return;
    const int si = PickStream(now);
    if (si < 0) return;
    Buf* m = link_.Alloc();
    if (m == nullptr) {
      ++result_.no_mbuf;
      return;
    }
    Stream& s = streams_[si];
    uint8_t* d = Port::Data(m);
    rte_memcpy(d, template_.data(), template_.size());
    Port::SetLen(m, static_cast<uint32_t>(template_.size()));
    std::byte* f = reinterpret_cast<std::byte*>(d + Port::header_bytes());
    p::le::Store<uint64_t>(f + kRequestIdAt, request_id_++);
    p::le::Store<uint64_t>(f + kProducerIdAt, s.producer_id);
    p::le::Store<uint32_t>(f + kQueueIdAt, s.queue_id);
    std::byte* rec = f + kRecordsAt;
    // --deliver: the time this message counts from (the schedule's in open loop), in its payload.
    const uint64_t birth = closed_loop_ ? now : static_cast<uint64_t>(next_sched_);
    for (uint32_t i = 0; i < o_.batch; ++i, rec += record_bytes_) {
      p::le::Store<uint16_t>(rec + kRecPartitionAt, s.partition);
      p::le::Store<uint64_t>(rec + kRecSequenceAt, s.next_seq + i);
      if (o_.deliver) p::le::Store<uint64_t>(rec + record_bytes_ - o_.size, birth);
    }
    Pending<Buf>& pf = pending_[npending_++];
    pf.m = m;
    pf.stream = static_cast<uint32_t>(si);
    pf.first_seq = s.next_seq;
    pf.refused = false;
    pf.stamp = closed_loop_ ? 0 : static_cast<uint64_t>(next_sched_);
    if (!closed_loop_) next_sched_ += period_;
    if (s.next_seq == s.base) s.progress_tsc = now;
    s.next_seq += o_.batch;
    s.inflight += o_.batch;
    inflight_ += o_.batch;
    built_msgs_ += o_.batch;
  }
}

template <class Port>
void Producer<Port>::Transmit(uint64_t now) {
  // `now` is the pass's clock, read before this pass's build (or at its receipts): a closed-loop
  // send is stamped a little early, so latencies err long, never short. One TSC read per pass,
  // and one more when frames arrived (Receive), because a read costs ~70 ns on a virtual machine
  // that traps RDTSC (measured here), as much as a frame.
  Buf* pkts[kBurst];
  for (uint16_t i = 0; i < npending_; ++i) pkts[i] = pending_[i].m;
  const uint16_t sent = link_.Tx(pkts, npending_);
  for (uint16_t i = 0; i < sent; ++i) {
    const Pending<Buf>& pf = pending_[i];
    const uint64_t stamp = closed_loop_ ? now : pf.stamp;
    if (!closed_loop_ && now - pf.stamp > link_.tsc_hz() / 10'000) ++result_.late_sends;
    Stream& s = streams_[pf.stream];
    for (uint32_t k = 0; k < o_.batch; ++k) {
      uint64_t& slot = s.stamp[(pf.first_seq + k) & ring_mask_];
      if (slot == 0) slot = stamp;  // a resend keeps the original time
    }
    if (Measured(now)) ++result_.measured_frames_sent;
  }
  result_.frames_sent += sent;
  result_.messages_sent += uint64_t{sent} * o_.batch;
  for (uint16_t i = sent; i < npending_; ++i) {
    if (!pending_[i].refused) ++result_.tx_refused;
    pending_[i].refused = true;
    pending_[i - sent] = pending_[i];
  }
  npending_ = static_cast<uint16_t>(npending_ - sent);
}

template <class Port>
uint64_t Producer<Port>::Receive(uint64_t now) {
  Buf* pkts[kRxBurst];
  const uint16_t n = link_.Rx(pkts, kRxBurst);
  // The pass's clock was read before the poll: if the loadgen was descheduled in between (a
  // shared CPU), acks stamped with it would look faster than they were (seen: 2 us acks of a
  // 200 us dsync write). A burst that arrived gets its own clock.
  if (n != 0) now = rte_rdtsc();
  for (uint16_t i = 0; i < n; ++i) {
    Buf* m = pkts[i];
    if (link_.HandleControl(m)) continue;
    ++result_.frames_received;
    if (Measured(now)) ++result_.measured_frames_received;
    std::span<const std::byte> d = link_.Payload(m);
    auto f = d.empty() ? p::DecodeResult<p::FrameView>(p::DecodeError::kTruncatedHeader)
                       : p::DecodeFrame(d);
    if (f && f->header.type == p::FrameType::kAck) {
      auto ack = p::DecodeAck(*f);
      uint32_t qi = 0;
      while (ack && qi < qs_.size() && qs_[qi].id != ack->queue_id) ++qi;
      if (ack && qi < qs_.size()) {
        ++result_.ack_frames;
        OnAck(*ack, qi, now);
      } else {
        ++result_.unmatched;
      }
    } else if (f && f->header.type == p::FrameType::kError) {
      OnErrorFrame(*f);
    } else if (f && o_.deliver && f->header.type == p::FrameType::kDeliver) {
      if (auto dv = p::DecodeDeliver(*f)) OnDeliver(*dv, now);
      else ++result_.unmatched;
    } else if (f && o_.deliver && f->header.type == p::FrameType::kHeartbeat) {
      if (auto hb = p::DecodeHeartbeat(*f); hb && hb->cookie != 0) cookie_ = hb->cookie;
    } else if (f && o_.deliver && f->header.type == p::FrameType::kResult) {
      // a repeated SUBSCRIBE's answer: nothing to do
    } else {
      ++result_.unmatched;
    }
    link_.Free(m);
  }
  return now;
}

template <class Port>
void Producer<Port>::OnAck(const p::AckView& ack, uint32_t qi, uint64_t now) {
  const uint64_t pg = ack.producer_id - producer_base_;
  if (ack.producer_id < producer_base_ || pg / o_.producers != qi) {
    ++result_.unmatched;
    return;
  }
  const uint64_t pi = pg % o_.producers;
  const uint32_t parts = qs_[qi].partitions;
  for (const p::AckRange& r : ack.ranges) {
    ++result_.ack_ranges;
    if (r.partition >= parts) {
      ++result_.unmatched;
      continue;
    }
    OnRange(streams_[stream_base_[qi] + pi * parts + r.partition], r, now);
  }
}

template <class Port>
void Producer<Port>::OnRange(Stream& s, const p::AckRange& r, uint64_t now) {
  if (r.errc == Errc::kOk || r.errc == Errc::kDuplicate) {
    const bool measured_ack = Measured(now);
    // Only sequences still outstanding are ours: [base, next_seq). A sequence below `base` was
    // answered already, and its ring slot may hold a newer sequence's stamp (the ring is as small
    // as the window), so an ack repeated for it must not be read as the newer one's.
    const uint64_t first = std::max(r.first_sequence, s.base);
    const uint64_t last = std::min(r.first_sequence + r.count, s.next_seq);
    uint32_t answered = 0;
    for (uint64_t seq = first; seq < last; ++seq) {
      uint64_t& slot = s.stamp[seq & ring_mask_];
      if (slot == 0) continue;  // answered before (a resend's DUPLICATE)
      if (Measured(slot)) result_.latency.Record(now > slot ? now - slot : 0);
      slot = 0;
      ++answered;
      ++result_.messages_ok;
      if (measured_ack) ++result_.measured_messages_ok;
    }
    if (answered < r.count) result_.stale_acks += r.count - answered;
    answered = std::min(answered, s.inflight);
    s.inflight -= answered;
    inflight_ -= answered;
    if (r.first_sequence <= s.base && last > s.base) {
      s.base = last;
      s.progress_tsc = now;
    }
    return;
  }
  const uint32_t answered = std::min<uint32_t>(r.count, s.inflight);
  s.inflight -= answered;
  inflight_ -= answered;
  result_.last_error = static_cast<uint16_t>(r.errc);
  if (r.errc == Errc::kThrottled || r.errc == Errc::kOutOfOrderSequence) {
    if (r.errc == Errc::kThrottled) {
      result_.throttled += r.count;
      s.resume_tsc = now + link_.tsc_hz() / 50'000;  // back off 20 us
    } else {
      result_.out_of_order += r.count;
    }
    s.stalled = true;
    return;
  }
  result_.other_errors += r.count;
  Abort(absl::StrFormat("ack range with %s (partition %u, sequence %u)", ErrcName(r.errc),
                        r.partition, r.first_sequence));
}

template <class Port>
void Producer<Port>::OnErrorFrame(const p::FrameView& f) {
  ++result_.error_frames;
  auto e = p::DecodeErrorFrame(f);
  if (!e) return;
  result_.last_error = static_cast<uint16_t>(e->errc);
  if (e->errc != Errc::kThrottled) {
    Abort(absl::StrFormat("ERROR frame %s: %s", ErrcName(e->errc), e->detail));
  }
}

template <class Port>
void Producer<Port>::CheckTimeouts(uint64_t now) {
  for (Stream& s : streams_) {
    if (s.next_seq == s.base || now - s.progress_tsc < timeout_cycles_) continue;
    ++result_.timeouts;
    result_.lost += s.inflight;
    inflight_ -= s.inflight;
    s.inflight = 0;
    s.stalled = false;
    s.next_seq = s.base;
    s.progress_tsc = now;
  }
}

template <class Port>
Result Producer<Port>::Run() {
  const uint64_t hz = link_.tsc_hz();
  const uint64_t t0 = rte_rdtsc();
  t_measure_ = t0 + static_cast<uint64_t>(o_.warmup_s * hz);
  t_end_ = t_measure_ + static_cast<uint64_t>(o_.duration_s * hz);
  const uint64_t drain = static_cast<uint64_t>(o_.drain_s * hz);
  next_sched_ = static_cast<double>(t0);
  uint64_t stop_tsc = 0;
  CpuShare cpu;
  for (uint64_t pass = 0;; ++pass) {
    uint64_t now = rte_rdtsc();
    const bool sending =
        !result_.aborted && now < t_end_ && (o_.count == 0 || built_msgs_ < o_.count);
    if (!cpu.started() && now >= t_measure_) cpu.Start();
    if (!sending) {
      if (stop_tsc == 0) {
        stop_tsc = now;
        result_.cpu_share = cpu.Stop();
      }
      if ((inflight_ == 0 && npending_ == 0) || now - stop_tsc >= drain) break;
    }
    now = Receive(now);
    if (sending) Build(now);
    if (npending_ != 0) Transmit(now);
    if ((pass & 1023) == 0) {
      CheckTimeouts(now);
      if (o_.deliver && now >= next_keepalive_) Keepalive(now);
    }
  }
  for (uint16_t i = 0; i < npending_; ++i) link_.Free(pending_[i].m);
  result_.lost += inflight_;
  const uint64_t end = std::min(t_end_, stop_tsc);
  result_.measured_s = end > t_measure_ ? static_cast<double>(end - t_measure_) / hz : 0.0;
  return result_;
}

template <class Port>
void Producer<Port>::SendControl(std::span<const std::byte> frame) {
  Buf* m = link_.Alloc();
  if (m == nullptr) {
    ++result_.no_mbuf;
    return;
  }
  uint8_t* d = Port::Data(m);
  link_.WriteHeaders(d, static_cast<uint16_t>(frame.size()));
  memcpy(d + Port::header_bytes(), frame.data(), frame.size());
  Port::SetLen(m, static_cast<uint32_t>(Port::header_bytes() + frame.size()));
  for (int tries = 0; tries < 1000; ++tries) {
    if (link_.Tx(&m, 1) == 1) return;
  }
  link_.Free(m);
  ++result_.tx_refused;
}

template <class Port>
void Producer<Port>::SendCredit(uint32_t i) {
  Sub& sub = subs_[i];
  auto n = p::EncodeCredit(control_, {client_id_, request_id_++, 0},
                           p::CreditGrant{sub.subscription_id, sub.partition, kCredits,
                                          sub.next_offset});
  SLUICE_ASSERT(n.has_value());
  SendControl(std::span(control_.data(), *n));
  sub.credited_at = sub.next_offset;
}

template <class Port>
void Producer<Port>::Keepalive(uint64_t now) {
  next_keepalive_ = now + link_.tsc_hz() / 4;  // 250 ms: well inside the 3-interval limit
  auto n = p::EncodeHeartbeat(control_, {client_id_, request_id_++, 0},
                              p::Heartbeat{cookie_, 0, 250});
  SLUICE_ASSERT(n.has_value());
  SendControl(std::span(control_.data(), *n));
  for (uint32_t i = 0; i < subs_.size(); ++i) {
    if (subs_[i].started) SendCredit(i);
  }
}

template <class Port>
void Producer<Port>::OnDeliver(const p::DeliverView& d, uint64_t now) {
  // Subscription ids are this run's client id + queue index: a DELIVER for an earlier run's
  // subscription (same address, not yet dropped by the server) is not ours.
  const uint64_t qi = d.prefix.subscription_id - client_id_;
  if (qi >= qs_.size() || d.prefix.partition >= qs_[qi].partitions) {
    ++result_.unmatched;
    return;
  }
  const uint32_t si = sub_base_[qi] + d.prefix.partition;
  Sub& sub = subs_[si];
  const bool measured = Measured(now);
  for (const p::DeliveredView& m : d.messages) {
    if (sub.started && m.meta.offset != sub.next_offset) ++result_.deliver_gaps;
    if (m.meta.offset + 1 > sub.next_offset || !sub.started) sub.next_offset = m.meta.offset + 1;
    sub.started = true;
    ++result_.delivered;
    if (measured) ++result_.measured_delivered;
    if (m.message.payload.size() < 8) continue;
    const uint64_t birth = p::le::Load<uint64_t>(m.message.payload.data());
    if (Measured(birth)) result_.deliver_latency.Record(now > birth ? now - birth : 0);
  }
  if (sub.next_offset - sub.credited_at >= kCredits / 2) SendCredit(si);
}

template <class Port>
absl::Status Producer<Port>::Subscribe() {
  control_.resize(512);
  // Verify this source (docs/protocol.md §12): HEARTBEAT with cookie 0, then echo the cookie.
  for (int round = 0; round < 2; ++round) {
    const uint64_t rid = request_id_++;
    auto n = p::EncodeHeartbeat(control_, {client_id_, rid, 0}, p::Heartbeat{cookie_, 0, 250});
    SLUICE_ASSERT(n.has_value());
    auto st = link_.Exchange(std::span(control_.data(), *n), [&](std::span<const std::byte> b) {
      auto f = p::DecodeFrame(b);
      if (!f || f->header.type != p::FrameType::kHeartbeat || f->header.request_id != rid) {
        return false;
      }
      auto hb = p::DecodeHeartbeat(*f);
      if (hb && hb->cookie != 0) cookie_ = hb->cookie;
      return hb.has_value();
    });
    if (!st.ok()) return absl::DeadlineExceededError("HEARTBEAT: no answer (source verification)");
  }
  if (cookie_ == 0) return absl::FailedPreconditionError("HEARTBEAT: the server sent no cookie");
  for (uint32_t qi = 0; qi < qs_.size(); ++qi) {
    sub_base_.push_back(static_cast<uint32_t>(subs_.size()));
    for (uint16_t part = 0; part < qs_[qi].partitions; ++part) {
      subs_.push_back(Sub{client_id_ + qi, part, 0, 0, false});
    }
    const uint64_t rid = request_id_++;
    p::SubscribeRequest req;
    req.subscription_id = client_id_ + qi;
    req.queue_id = qs_[qi].id;
    req.partition = p::kAnyPartition;
    req.start_kind = p::StartKind::kLatest;
    req.initial_credits = kCredits;
    auto n = p::EncodeSubscribe(control_, {client_id_, rid, 0}, req);
    SLUICE_ASSERT(n.has_value());
    std::string error;
    auto st = link_.Exchange(std::span(control_.data(), *n), [&](std::span<const std::byte> b) {
      auto f = p::DecodeFrame(b);
      if (!f || f->header.request_id != rid) return false;
      if (f->header.type == p::FrameType::kError) {
        auto e = p::DecodeErrorFrame(*f);
        error = e ? absl::StrFormat("%s: %s", ErrcName(e->errc), e->detail) : "malformed ERROR";
        return true;
      }
      auto r = p::DecodeResultFrame(*f);
      if (!r) return false;
      for (const p::ResultItem& it : r->items) {
        if (it.errc != Errc::kOk) {
          error = absl::StrFormat("partition %u: %s", it.index, ErrcName(it.errc));
        } else if (it.index < qs_[qi].partitions) {
          Sub& sub = subs_[sub_base_[qi] + it.index];
          sub.next_offset = sub.credited_at = it.value;
          sub.started = true;
        }
      }
      return true;
    });
    if (!st.ok()) return absl::DeadlineExceededError("SUBSCRIBE: no answer");
    if (!error.empty()) return absl::FailedPreconditionError("SUBSCRIBE: " + error);
  }
  return absl::OkStatus();
}

template <class Port>
absl::StatusOr<Result> RunProduceOn(Port& port, const Options& o) {
  // Ids unique per run, so that several runs against one sluiced never share producer state.
  const uint64_t salt = (rte_rdtsc() ^ (uint64_t{static_cast<uint32_t>(getpid())} << 20)) &
                        0x0000FFFFFFFFFF00ull;
  const uint64_t client_id = salt | 0x1;
  const uint64_t producer_base = (salt << 8) | 0x100;
  if (auto st = port.Prepare(); !st.ok()) return st;
  std::vector<QueueRef> qs;
  for (absl::string_view name : absl::StrSplit(o.queue, ',', absl::SkipEmpty())) {
    const std::string queue(name.data(), name.size());
    auto q = Lookup(port, o, queue, client_id);
    if (!q.ok()) return q.status();
    std::printf("sluice-loadgen: queue '%s' is id %u, %u partition(s)\n", queue.c_str(), q->id,
                q->partitions);
    qs.push_back(*q);
  }
  if (qs.empty()) return absl::InvalidArgumentError("--queue names no queue");
  std::fflush(stdout);
  Producer<Port> producer(port, o, std::move(qs), client_id, producer_base);
  if (auto st = producer.Prepare(); !st.ok()) return st;
  if (o.deliver) {
    if (auto st = producer.Subscribe(); !st.ok()) return st;
  }
  return producer.Run();
}

}  // namespace

absl::StatusOr<Result> RunProduce(Link& link, const Options& o) {
  DpdkPort port(link);
  return RunProduceOn(port, o);
}

absl::StatusOr<Result> RunProduceUdp(const Options& o) {
  // Buffers: every frame of the window may wait in the pending burst, plus a receive burst.
  auto port = KernelPort::Open(o, 512);
  if (!port.ok()) return port.status();
  return RunProduceOn(**port, o);
}

}  // namespace sluice::bench
