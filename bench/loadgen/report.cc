#include "bench/loadgen/report.h"

#include <cstdio>
#include <iterator>

#include "absl/strings/str_format.h"

namespace sluice::bench {
namespace {

double Ns(const Result& r, uint64_t cycles) {
  return r.tsc_hz == 0 ? 0.0 : static_cast<double>(cycles) * 1e9 / static_cast<double>(r.tsc_hz);
}

double PerSecond(const Result& r, uint64_t n) {
  return r.measured_s > 0 ? static_cast<double>(n) / r.measured_s : 0.0;
}

std::string JsonEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out;
}

struct Pct {
  const char* name;
  double p;
};
constexpr Pct kPercentiles[] = {{"p50", 50},    {"p90", 90},      {"p99", 99},
                                {"p99_9", 99.9}, {"p99_99", 99.99}};

}  // namespace

void PrintResult(const Options& o, const Result& r) {
  const double mps = PerSecond(r, r.measured_messages_ok);
  std::printf("sluice-loadgen: %s", ModeName(o.mode));
  const bool produce = o.mode == Mode::kProduce || o.mode == Mode::kProduceFlood;
  if (produce) {
    std::printf(" queue=%s size=%u batch=%u producers=%u %s", o.queue.c_str(), o.size, o.batch,
                o.producers,
                o.rate > 0 ? absl::StrFormat("open-loop %.0f msg/s", o.rate).c_str()
                           : absl::StrFormat("closed-loop window=%u frames", o.window).c_str());
  } else {
    std::printf(" frame=%u B window=%u rate=%.0f", o.frame_bytes, o.window, o.rate);
  }
  std::printf(", measured %.2f s after %.2f s warm-up\n", r.measured_s, o.warmup_s);
  if (produce) {
    std::printf("  throughput: %.0f msg/s, %.0f frames/s sent, %.1f MB/s payload\n", mps,
                PerSecond(r, r.measured_frames_sent), mps * o.size / 1e6);
  } else {
    std::printf("  throughput: %.0f frames/s sent, %.0f frames/s received\n",
                PerSecond(r, r.measured_frames_sent), PerSecond(r, r.measured_frames_received));
  }
  if (r.latency.count() > 0) {
    std::printf("  latency (us, %lu samples): min %.2f", r.latency.count(), Ns(r, r.latency.min()) / 1e3);
    for (const Pct& p : kPercentiles) {
      std::printf(" %s %.2f", p.name, Ns(r, r.latency.Percentile(p.p)) / 1e3);
    }
    std::printf(" max %.2f mean %.2f\n", Ns(r, r.latency.max()) / 1e3,
                r.tsc_hz ? r.latency.mean() * 1e6 / static_cast<double>(r.tsc_hz) : 0.0);
  }
  if (o.deliver) {
    const LogLinearHistogram& h = r.deliver_latency;
    std::printf("  produce->deliver (us, %lu samples, %lu delivered, %lu gaps):", h.count(),
                r.delivered, r.deliver_gaps);
    for (const Pct& p : kPercentiles) std::printf(" %s %.2f", p.name, Ns(r, h.Percentile(p.p)) / 1e3);
    std::printf(" max %.2f; %.0f msg/s delivered\n", Ns(r, h.max()) / 1e3,
                PerSecond(r, r.measured_delivered));
  }
  std::printf("  sent %lu frames / %lu messages, received %lu frames (%lu ack frames, %lu ranges)\n",
              r.frames_sent, r.messages_sent, r.frames_received, r.ack_frames, r.ack_ranges);
  std::printf("  trouble: throttled %lu, out_of_order %lu, other_errors %lu, error_frames %lu, "
              "timeouts %lu, lost %lu, unmatched %lu, stale_acks %lu, tx_refused %lu, late_sends %lu, "
              "no_mbuf %lu\n",
              r.throttled, r.out_of_order, r.other_errors, r.error_frames, r.timeouts, r.lost,
              r.unmatched, r.stale_acks, r.tx_refused, r.late_sends, r.no_mbuf);
  std::printf("  load loop CPU share during the measured interval: %.0f%%\n", 100 * r.cpu_share);
  if (r.aborted) std::printf("  ABORTED: %s\n", r.abort_reason.c_str());
  std::fflush(stdout);
}

bool WriteJson(const Options& o, const Result& r) {
  if (o.json.empty()) return true;
  std::string j = "{\n";
  absl::StrAppendFormat(&j, "  \"label\": \"%s\",\n  \"mode\": \"%s\",\n", JsonEscape(o.label),
                        ModeName(o.mode));
  absl::StrAppendFormat(
      &j,
      "  \"config\": {\"queue\": \"%s\", \"size\": %u, \"batch\": %u, \"rate\": %.1f, "
      "\"window\": %u, \"producers\": %u, \"frame_bytes\": %u, \"duration_s\": %.3f, "
      "\"warmup_s\": %.3f, \"mtu\": %u, \"cpu\": %d, \"closed_loop\": %s},\n",
      JsonEscape(o.queue), o.size, o.batch, o.rate, o.window, o.producers, o.frame_bytes,
      o.duration_s, o.warmup_s, o.mtu, o.cpu, o.rate > 0 ? "false" : "true");
  const double mps = PerSecond(r, r.measured_messages_ok);
  absl::StrAppendFormat(
      &j,
      "  \"throughput\": {\"messages_per_s\": %.1f, \"frames_sent_per_s\": %.1f, "
      "\"frames_received_per_s\": %.1f, \"payload_mb_per_s\": %.3f},\n",
      mps, PerSecond(r, r.measured_frames_sent), PerSecond(r, r.measured_frames_received),
      mps * o.size / 1e6);
  absl::StrAppendFormat(&j, "  \"latency_ns\": {\"samples\": %u, \"min\": %.0f, ", r.latency.count(),
                        Ns(r, r.latency.min()));
  for (const Pct& p : kPercentiles) {
    absl::StrAppendFormat(&j, "\"%s\": %.0f, ", p.name, Ns(r, r.latency.Percentile(p.p)));
  }
  absl::StrAppendFormat(&j, "\"max\": %.0f, \"mean\": %.0f},\n", Ns(r, r.latency.max()),
                        r.tsc_hz ? r.latency.mean() * 1e9 / static_cast<double>(r.tsc_hz) : 0.0);
  // The CDF at fixed percentiles, for the plots of bench/run: [[percentile, ns], ...].
  j += "  \"cdf_ns\": [";
  for (size_t i = 0; i < std::size(kCdfPercentiles); ++i) {
    const double p = kCdfPercentiles[i];
    absl::StrAppendFormat(&j, "%s[%g, %.0f]", i ? ", " : "", p,
                          r.latency.count() ? Ns(r, r.latency.Percentile(p)) : 0.0);
  }
  j += "],\n";
  absl::StrAppendFormat(
      &j,
      "  \"counts\": {\"measured_s\": %.4f, \"frames_sent\": %u, \"messages_sent\": %u, "
      "\"frames_received\": %u, \"messages_ok\": %u, \"measured_messages_ok\": %u, "
      "\"ack_frames\": %u, \"ack_ranges\": %u, \"throttled\": %u, \"out_of_order\": %u, "
      "\"other_errors\": %u, \"error_frames\": %u, \"last_error\": %u, \"timeouts\": %u, "
      "\"lost\": %u, \"unmatched\": %u, \"stale_acks\": %u, \"tx_refused\": %u, \"late_sends\": %u, "
      "\"no_mbuf\": %u},\n",
      r.measured_s, r.frames_sent, r.messages_sent, r.frames_received, r.messages_ok,
      r.measured_messages_ok, r.ack_frames, r.ack_ranges, r.throttled, r.out_of_order,
      r.other_errors, r.error_frames, r.last_error, r.timeouts, r.lost, r.unmatched, r.stale_acks,
      r.tx_refused, r.late_sends, r.no_mbuf);
  if (o.deliver) {
    const LogLinearHistogram& h = r.deliver_latency;
    absl::StrAppendFormat(&j, "  \"deliver\": {\"delivered\": %u, \"measured_delivered\": %u, "
                          "\"messages_per_s\": %.1f, \"gaps\": %u, \"latency_ns\": {\"samples\": %u",
                          r.delivered, r.measured_delivered, PerSecond(r, r.measured_delivered),
                          r.deliver_gaps, h.count());
    for (const Pct& p : kPercentiles) {
      absl::StrAppendFormat(&j, ", \"%s\": %.0f", p.name, Ns(r, h.Percentile(p.p)));
    }
    absl::StrAppendFormat(&j, ", \"max\": %.0f}},\n", Ns(r, h.max()));
  }
  absl::StrAppendFormat(&j, "  \"cpu_share\": %.3f,\n", r.cpu_share);
  absl::StrAppendFormat(&j, "  \"tsc_hz\": %u,\n  \"aborted\": %s,\n  \"abort_reason\": \"%s\"\n}\n",
                        r.tsc_hz, r.aborted ? "true" : "false", JsonEscape(r.abort_reason));
  FILE* f = std::fopen(o.json.c_str(), "w");
  if (f == nullptr) {
    std::perror(o.json.c_str());
    return false;
  }
  std::fwrite(j.data(), 1, j.size(), f);
  return std::fclose(f) == 0;
}

}  // namespace sluice::bench
