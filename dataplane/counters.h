// Per-lcore dataplane counters. The packet path never logs: every drop, throttle and reply is a
// counter here, read by the control thread (stats dump on exit, /metrics and telemetry later).
// Each lcore writes only its own LcoreCounters; readers tolerate torn-free 64-bit loads.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace sluice::dataplane {

enum class DropReason : uint8_t {
  kNotIpv4,           // ethertype neither IPv4 nor ARP
  kBadArp,            // ARP we do not answer (not a request, or not for our address)
  kBadIpHeader,       // version/IHL/total length inconsistent with the frame
  kBadIpChecksum,
  kFragment,          // IPv4 fragments are never reassembled (clients keep to the path MTU)
  kNotForUs,          // destination address is not the port's
  kUnsupportedL4,     // neither UDP nor ICMP echo request
  kBadUdp,            // UDP length inconsistent with the IP datagram
  kBadUdpChecksum,
  kWrongUdpPort,
  kMultiSegment,      // chained mbufs; the port is configured to avoid them
  kMalformedFrame,    // sluice frame failed decoding (see frame_errors)
  kTxFull,            // TX queue did not take a reply
  kNoMbuf,            // mempool exhausted while building a reply
  kCount
};

constexpr std::string_view DropReasonName(DropReason r) {
  constexpr std::array<std::string_view, static_cast<size_t>(DropReason::kCount)> kNames = {
      "not_ipv4",   "bad_arp",          "bad_ip_header", "bad_ip_checksum", "fragment",
      "not_for_us", "unsupported_l4",   "bad_udp",       "bad_udp_checksum", "wrong_udp_port",
      "multi_segment", "malformed_frame", "tx_full",          "no_mbuf"};
  return kNames[static_cast<size_t>(r)];
}

struct alignas(64) LcoreCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;
  uint64_t arp_replies = 0;
  uint64_t icmp_echo_replies = 0;
  uint64_t frames = 0;            // sluice frames accepted for processing
  uint64_t handoffs_out = 0;      // frames handed to another lcore's ring
  uint64_t handoffs_in = 0;       // frames taken from inbound rings
  uint64_t throttled = 0;         // frames whose hand-off found the owner's ring full
  uint64_t error_replies = 0;     // ERROR frames sent
  uint64_t idle_sleeps = 0;       // adaptive idle policy: times the loop slept
  uint64_t loops = 0;
  std::array<uint64_t, static_cast<size_t>(DropReason::kCount)> drops{};

  void Drop(DropReason r) { ++drops[static_cast<size_t>(r)]; }
};

}  // namespace sluice::dataplane
