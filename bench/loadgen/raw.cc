// --echo and --flood: the raw memif path, no sluice protocol.
//
// --echo sends ICMP echo requests to the server address whose data carries a magic, a sequence
// number and a TSC (the send time, or the scheduled time with --rate). dpdk-testpmd in macswap or
// io forwarding returns them as they are; sluiced answers them (ICMP echo reply, data unchanged).
// Either way the loadgen reads the TSC back: round trip = now - stamp. At most --window frames
// are in flight; none coming back for --ack-timeout-ms writes the in-flight off as lost.
//
// --flood sends UDP frames from one template as fast as the TX queue takes them (or at --rate)
// and counts what comes back: the packet rate of the path (testpmd io forwarding: the round trip
// rate; testpmd rxonly: what the far side can receive).
#include <cstring>
#include <vector>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_memcpy.h>

#include "absl/strings/str_format.h"
#include "bench/loadgen/drivers.h"
#include "protocol/wire.h"

namespace sluice::bench {
namespace le = protocol::le;
namespace {

constexpr uint32_t kEchoMagic = 0x474C5345;  // "ESLG"
constexpr size_t kIcmpAt = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr);
constexpr size_t kIcmpDataAt = kIcmpAt + sizeof(rte_icmp_hdr);
// Echo data: u32 magic | u64 stamp | u32 sequence.
constexpr size_t kEchoDataBytes = 16;

class RawDriver {
 public:
  RawDriver(Link& link, const Options& o) : link_(link), o_(o), echo_(o.mode == Mode::kEcho) {}
  absl::Status Prepare();
  Result Run();

 private:
  uint16_t Build(uint64_t now, rte_mbuf** pkts);
  uint64_t Receive(uint64_t now);
  bool Measured(uint64_t tsc) const { return tsc >= t_measure_ && tsc < t_end_; }

  Link& link_;
  const Options& o_;
  const bool echo_;
  std::vector<uint8_t> template_;
  uint64_t inflight_ = 0;
  uint32_t seq_ = 0;
  double next_sched_ = 0;
  double period_ = 0;
  uint64_t last_rx_tsc_ = 0;
  uint64_t t_measure_ = 0, t_end_ = 0;
  Result result_;
};

absl::Status RawDriver::Prepare() {
  if (o_.frame_bytes > link_.mtu() + 14u) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--frame-bytes %u is more than --mtu %u allows", o_.frame_bytes, link_.mtu()));
  }
  template_.assign(o_.frame_bytes, 0);
  if (echo_) {
    const uint16_t l4 = static_cast<uint16_t>(o_.frame_bytes - kIcmpAt);
    if (l4 < sizeof(rte_icmp_hdr) + kEchoDataBytes) {
      return absl::InvalidArgumentError("--frame-bytes too small for an echo frame (>= 58)");
    }
    link_.WriteIpHeaders(template_.data(), IPPROTO_ICMP, l4);
    auto* icmp = reinterpret_cast<rte_icmp_hdr*>(template_.data() + kIcmpAt);
    icmp->icmp_type = RTE_IP_ICMP_ECHO_REQUEST;
    icmp->icmp_code = 0;
    icmp->icmp_ident = rte_cpu_to_be_16(o_.local_port);
    le::Store<uint32_t>(reinterpret_cast<std::byte*>(template_.data() + kIcmpDataAt), kEchoMagic);
  } else {
    const uint16_t payload = static_cast<uint16_t>(o_.frame_bytes - kUdpHeaderBytes);
    link_.WriteUdpHeaders(template_.data(), payload);
  }
  const double rate = o_.rate;
  period_ = rate > 0 ? static_cast<double>(link_.tsc_hz()) / rate : 0;
  result_.tsc_hz = link_.tsc_hz();
  return absl::OkStatus();
}

uint16_t RawDriver::Build(uint64_t now, rte_mbuf** pkts) {
  uint16_t n = kBurst;
  if (echo_) n = static_cast<uint16_t>(std::min<uint64_t>(n, o_.window - std::min<uint64_t>(inflight_, o_.window)));
  if (period_ > 0) {
    const double due = (static_cast<double>(now) - next_sched_) / period_;
    n = static_cast<uint16_t>(std::min<double>(n, due < 0 ? 0 : due + 1));
  }
  if (n == 0) return 0;
  if (rte_pktmbuf_alloc_bulk(link_.pool(), pkts, n) != 0) {
    ++result_.no_mbuf;
    return 0;
  }
  for (uint16_t i = 0; i < n; ++i) {
    uint8_t* d = rte_pktmbuf_mtod(pkts[i], uint8_t*);
    rte_memcpy(d, template_.data(), template_.size());
    pkts[i]->data_len = pkts[i]->pkt_len = static_cast<uint32_t>(template_.size());
    const uint64_t stamp = period_ > 0 ? static_cast<uint64_t>(next_sched_) : now;
    if (period_ > 0) next_sched_ += period_;
    if (!echo_) continue;
    std::byte* data = reinterpret_cast<std::byte*>(d + kIcmpDataAt);
    le::Store<uint64_t>(data + 4, stamp);
    le::Store<uint32_t>(data + 12, seq_);
    auto* icmp = reinterpret_cast<rte_icmp_hdr*>(d + kIcmpAt);
    icmp->icmp_seq_nb = rte_cpu_to_be_16(static_cast<uint16_t>(seq_));
    ++seq_;
    icmp->icmp_cksum = 0;
    const uint16_t sum = rte_raw_cksum(icmp, template_.size() - kIcmpAt);
    icmp->icmp_cksum = sum == 0xffff ? sum : static_cast<uint16_t>(~sum);
  }
  return n;
}

// Returns the clock of this receipt. The pass's clock was read before the poll; on a shared CPU
// the loadgen can be descheduled between the two, and an echo stamped with the pass's clock would
// then look faster than it was (seen: 2 us "round trips" of a 200 us write). Echoes read the clock
// again once a burst arrived; the flood (no timestamps) keeps its one read per pass.
uint64_t RawDriver::Receive(uint64_t now) {
  rte_mbuf* pkts[kRxBurst];
  const uint16_t n = link_.Rx(pkts, kRxBurst);
  if (n != 0 && echo_) now = rte_rdtsc();
  if (n != 0) last_rx_tsc_ = now;
  result_.frames_received += n;
  if (Measured(now)) result_.measured_frames_received += n;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (!echo_) continue;
    const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
    const auto* eth = reinterpret_cast<const rte_ether_hdr*>(d);
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
    if (m->data_len < kIcmpDataAt + kEchoDataBytes ||
        eth->ether_type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) ||
        ip->next_proto_id != IPPROTO_ICMP || rte_ipv4_hdr_len(ip) != sizeof(rte_ipv4_hdr) ||
        le::U32(reinterpret_cast<const std::byte*>(d + kIcmpDataAt)) != kEchoMagic) {
      ++result_.unmatched;
      continue;
    }
    const uint64_t stamp = le::U64(reinterpret_cast<const std::byte*>(d + kIcmpDataAt + 4));
    if (Measured(stamp)) result_.latency.Record(now > stamp ? now - stamp : 0);
    ++result_.messages_ok;
    if (inflight_ > 0) --inflight_;
  }
  rte_pktmbuf_free_bulk(pkts, n);
  return now;
}

Result RawDriver::Run() {
  const uint64_t hz = link_.tsc_hz();
  const uint64_t t0 = rte_rdtsc();
  t_measure_ = t0 + static_cast<uint64_t>(o_.warmup_s * hz);
  t_end_ = t_measure_ + static_cast<uint64_t>(o_.duration_s * hz);
  const uint64_t drain = static_cast<uint64_t>(o_.drain_s * hz);
  const uint64_t timeout = static_cast<uint64_t>(o_.ack_timeout_ms * 1e-3 * hz);
  next_sched_ = static_cast<double>(t0);
  last_rx_tsc_ = t0;
  uint64_t stop_tsc = 0;
  CpuShare cpu;
  rte_mbuf* pkts[kBurst];
  for (;;) {
    uint64_t now = rte_rdtsc();
    const bool sending = now < t_end_ && (o_.count == 0 || result_.frames_sent < o_.count);
    if (!cpu.started() && now >= t_measure_) cpu.Start();
    if (!sending) {
      if (stop_tsc == 0) {
        stop_tsc = now;
        result_.cpu_share = cpu.Stop();
      }
      if ((echo_ && inflight_ == 0) || now - stop_tsc >= drain) break;
    }
    now = Receive(now);
    if (echo_ && inflight_ != 0 && now - last_rx_tsc_ > timeout) {
      ++result_.timeouts;
      result_.lost += inflight_;
      inflight_ = 0;
      last_rx_tsc_ = now;
    }
    if (!sending) continue;
    const uint16_t n = Build(now, pkts);
    if (n == 0) continue;
    const uint16_t sent = link_.Tx(pkts, n);
    result_.frames_sent += sent;
    result_.messages_sent += sent;
    if (Measured(now)) result_.measured_frames_sent += sent;
    if (echo_) {
      if (inflight_ == 0) last_rx_tsc_ = now;
      inflight_ += sent;
    }
    if (sent < n) {
      // Not retried: a refused frame is simply not sent (its slot in the schedule is skipped).
      result_.tx_refused += n - sent;
      rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    }
  }
  if (echo_) result_.lost += inflight_;
  result_.measured_messages_ok = result_.measured_frames_received;
  const uint64_t end = std::min(t_end_, stop_tsc);
  result_.measured_s = end > t_measure_ ? static_cast<double>(end - t_measure_) / hz : 0.0;
  return result_;
}

}  // namespace

absl::StatusOr<Result> RunRaw(Link& link, const Options& o) {
  RawDriver d(link, o);
  if (auto st = d.Prepare(); !st.ok()) return st;
  return d.Run();
}

}  // namespace sluice::bench
