// LOOKUP of a queue by name, over either port of the load generator (port.h): its id, partition
// count and message size limit, or why not (unknown queue, no reply in --connect-timeout-s).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "bench/loadgen/options.h"
#include "protocol/codec.h"

namespace sluice::bench {

struct QueueRef {
  uint32_t id = 0;
  uint16_t partitions = 0;
  uint32_t max_message_bytes = 0;
};

template <class Port>
absl::StatusOr<QueueRef> Lookup(Port& link, const Options& o, const std::string& queue,
                                uint64_t client_id) {
  std::vector<std::byte> buf(protocol::kHeaderBytes + protocol::kLookupFixedBytes + 256);
  const uint64_t request_id = 1;
  auto n = protocol::EncodeLookup(buf, {client_id, request_id, 0}, protocol::LookupRequest{queue});
  if (!n) return absl::InvalidArgumentError(absl::StrFormat("queue name '%s' not encodable", queue));
  QueueRef q;
  std::string error;
  auto st = link.Exchange(std::span(buf.data(), *n), [&](std::span<const std::byte> d) {
    auto f = protocol::DecodeFrame(d);
    if (!f || f->header.request_id != request_id) return false;
    if (f->header.type == protocol::FrameType::kError) {
      auto e = protocol::DecodeErrorFrame(*f);
      error = e ? absl::StrFormat("%s: %s", ErrcName(e->errc), e->detail) : "malformed ERROR";
      return true;
    }
    auto r = protocol::DecodeLookupReply(*f);
    if (!r) return false;
    q.id = r->queue_id;
    q.partitions = r->partitions;
    q.max_message_bytes = r->max_message_bytes;
    return true;
  });
  if (!st.ok()) {
    return absl::DeadlineExceededError(
        absl::StrFormat("LOOKUP '%s': no reply within %.1f s", queue, o.connect_timeout_s));
  }
  if (!error.empty()) return absl::NotFoundError(absl::StrFormat("LOOKUP '%s': %s", queue, error));
  return q;
}

}  // namespace sluice::bench
