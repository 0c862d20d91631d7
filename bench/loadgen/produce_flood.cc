// --produce-flood: the server's capacity for PRODUCE frames, measured the way --flood measures
// dpdk-testpmd's: as little work per frame on this side as the port allows.
//
// One PRODUCE frame of --batch x --size is built once (producer id 0: no idempotence, so the same
// bytes may be appended again and again; partition 0 of the first --queue). Each pass copies it
// into a burst of mbufs, numbers the messages (as libsluice does: consecutive sequences, so the
// server acks a frame's messages, and consecutive frames, as one range) and offers them to the TX
// queue; what the queue refuses is dropped and counted (the server is behind), never retried. ACK frames are decoded and their OK messages
// counted: throughput = messages acked inside the measured interval / its length. No latency
// (--produce measures that, closed or open loop).
#include <unistd.h>

#include <cstring>
#include <vector>

#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>

#include "absl/strings/str_format.h"
#include "bench/loadgen/drivers.h"
#include "bench/loadgen/lookup.h"
#include "bench/loadgen/port.h"
#include "protocol/assert.h"
#include "protocol/codec.h"
#include "protocol/wire.h"

namespace sluice::bench {
namespace p = protocol;

absl::StatusOr<Result> RunProduceFlood(Link& link, const Options& o) {
  DpdkPort port(link);
  if (auto st = port.Prepare(); !st.ok()) return st;
  const uint64_t client_id = ((rte_rdtsc() ^ (uint64_t{static_cast<uint32_t>(getpid())} << 20)) &
                              0x0000FFFFFFFFFF00ull) | 0x3;
  auto q = Lookup(port, o, o.queue.substr(0, o.queue.find(',')), client_id);
  if (!q.ok()) return q.status();
  const uint32_t queue_id = q->id;

  // The frame, built once.
  std::vector<std::byte> payload(o.size, std::byte{0x5a});
  p::MessageSpec spec;
  spec.partition = 0;
  spec.payload = payload;
  std::vector<std::byte> frame(p::kHeaderBytes + p::kProducePrefixBytes +
                               size_t{o.batch} * p::EncodedSize(spec));
  p::FrameWriter w(frame);
  if (w.BeginProduce({client_id, 2, 0}, queue_id, /*producer_id=*/0) != p::EncodeError::kOk) {
    return absl::InternalError("PRODUCE template");
  }
  for (uint32_t i = 0; i < o.batch; ++i) {
    if (w.AddMessage(spec) != p::EncodeError::kOk) return absl::InternalError("PRODUCE template");
  }
  const auto n = w.Finish();
  if (!n || *n > port.max_udp_payload()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a PRODUCE frame of %u x %u-byte messages does not fit a %u-byte MTU", o.batch, o.size,
        port.mtu()));
  }
  std::vector<uint8_t> tmpl(DpdkPort::header_bytes() + *n);
  port.WriteHeaders(tmpl.data(), static_cast<uint16_t>(*n));
  std::memcpy(tmpl.data() + DpdkPort::header_bytes(), frame.data(), *n);
  // Where each record's sequence sits in the template (the u64 at byte 8 of a record,
  // docs/protocol.md §6.3; every record of the template has the same size).
  const size_t records_at = DpdkPort::header_bytes() + p::kHeaderBytes + p::kProducePrefixBytes;
  const size_t record_bytes = p::EncodedSize(spec);
  SLUICE_ASSERT(records_at + size_t{o.batch} * record_bytes == tmpl.size());
  uint64_t next_sequence = 0;

  Result r;
  r.tsc_hz = port.tsc_hz();
  const uint64_t hz = r.tsc_hz;
  const uint64_t t0 = rte_rdtsc();
  const uint64_t t_measure = t0 + static_cast<uint64_t>(o.warmup_s * hz);
  const uint64_t t_end = t_measure + static_cast<uint64_t>(o.duration_s * hz);
  const uint64_t drain = static_cast<uint64_t>(o.drain_s * hz);
  auto measured = [&](uint64_t tsc) { return tsc >= t_measure && tsc < t_end; };
  CpuShare cpu;
  rte_mbuf* tx[kBurst];
  rte_mbuf* rx[kRxBurst];
  for (;;) {
    const uint64_t now = rte_rdtsc();  // once per pass (a TSC read traps on some VMs)
    const bool sending = now < t_end;
    if (!cpu.started() && now >= t_measure) cpu.Start();
    if (!sending) {
      if (r.cpu_share == 0) r.cpu_share = cpu.Stop();
      if (now - t_end >= drain) break;
    }
    const uint16_t got = port.Rx(rx, kRxBurst);
    for (uint16_t i = 0; i < got; ++i) {
      rte_mbuf* m = rx[i];
      if (port.HandleControl(m)) continue;
      ++r.frames_received;
      if (measured(now)) ++r.measured_frames_received;
      auto f = p::DecodeFrame(port.Payload(m));
      if (f && f->header.type == p::FrameType::kAck) {
        if (auto ack = p::DecodeAck(*f)) {
          ++r.ack_frames;
          for (const p::AckRange& a : ack->ranges) {
            ++r.ack_ranges;
            if (a.errc == Errc::kOk) {
              r.messages_ok += a.count;
              if (measured(now)) r.measured_messages_ok += a.count;
            } else if (a.errc == Errc::kThrottled) {
              r.throttled += a.count;
            } else {
              r.other_errors += a.count;
              r.last_error = static_cast<uint16_t>(a.errc);
            }
          }
        } else {
          ++r.unmatched;
        }
      } else if (f && f->header.type == p::FrameType::kError) {
        ++r.error_frames;
      } else {
        ++r.unmatched;
      }
      DpdkPort::Free(m);
    }
    if (!sending) continue;
    if (rte_pktmbuf_alloc_bulk(link.pool(), tx, kBurst) != 0) {
      ++r.no_mbuf;
      continue;
    }
    for (rte_mbuf* m : tx) {
      uint8_t* d = rte_pktmbuf_mtod(m, uint8_t*);
      rte_memcpy(d, tmpl.data(), tmpl.size());
      for (uint32_t i = 0; i < o.batch; ++i) {
        p::le::Store<uint64_t>(reinterpret_cast<std::byte*>(d + records_at + i * record_bytes + 8),
                               next_sequence++);
      }
      m->data_len = m->pkt_len = static_cast<uint32_t>(tmpl.size());
    }
    const uint16_t sent = port.Tx(tx, kBurst);
    if (sent < kBurst) {
      r.tx_refused += kBurst - sent;
      rte_pktmbuf_free_bulk(tx + sent, kBurst - sent);
    }
    r.frames_sent += sent;
    r.messages_sent += uint64_t{sent} * o.batch;
    if (measured(now)) r.measured_frames_sent += sent;
  }
  r.measured_s = static_cast<double>(t_end - t_measure) / hz;
  return r;
}

}  // namespace sluice::bench
