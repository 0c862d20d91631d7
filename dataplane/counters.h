// Per-lcore dataplane counters. The packet path never logs: every drop, throttle and reply is a
// counter here, read by the control thread (stats dump on exit, /metrics and telemetry later).
// Each lcore writes only its own counters; the control thread (REST /metrics, DPDK telemetry)
// reads them concurrently. Counter makes that a defined race: relaxed atomic loads and stores,
// with no read-modify-write (one writer), so an increment compiles to the plain add it was.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace sluice::dataplane {

// A monotonic counter written by one thread and read by any.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter& o) : v_(o.load()) {}
  Counter& operator=(const Counter& o) {
    v_.store(o.load(), std::memory_order_relaxed);
    return *this;
  }
  Counter& operator+=(uint64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    return *this;
  }
  Counter& operator++() { return *this += 1; }
  void operator++(int) { *this += 1; }
  void set(uint64_t n) { v_.store(n, std::memory_order_relaxed); }  // a copy of another's count
  uint64_t load() const { return v_.load(std::memory_order_relaxed); }
  operator uint64_t() const { return load(); }  // NOLINT: reads like the plain integer it was

 private:
  std::atomic<uint64_t> v_{0};
};
static_assert(sizeof(Counter) == sizeof(uint64_t));

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
  Counter rx_packets;
  Counter rx_bytes;
  Counter tx_packets;
  Counter tx_bytes;
  Counter arp_replies;
  Counter icmp_echo_replies;
  Counter frames;            // sluice frames accepted for processing
  Counter handoffs_out;      // frames handed to another lcore's ring
  Counter handoffs_in;       // frames taken from inbound rings
  Counter throttled;         // frames whose hand-off found the owner's ring full
  Counter error_replies;     // ERROR frames sent
  Counter idle_sleeps;       // adaptive idle policy: times the loop slept
  Counter kernel_yields;     // empty passes that gave the CPU to the kernel's share of our I/O
  Counter loops;
  Counter rx_bursts;  // RX bursts that returned frames: rx_packets / rx_bursts is the burst fill
  // Time in the loop, and in the passes that found work: busy_ns / loop_ns is how much of its
  // CPU the lcore needs (DPDK's lcore "busy percentage"). Near 1: saturated, frames wait for it.
  Counter busy_ns;
  Counter loop_ns;
  std::array<Counter, static_cast<size_t>(DropReason::kCount)> drops{};

  void Drop(DropReason r) { ++drops[static_cast<size_t>(r)]; }
};

}  // namespace sluice::dataplane
