// Client-side errors: every outcome a caller sees is an absl::Status whose message says what was
// attempted (queue, partition, offset), which wire error code came back (ErrcName) and what to do
// about it (ErrcAdvice), e.g.
//   "produce to 'orders' partition 1: THROTTLED: the server is saturated; retry after a back-off"
// The wire code itself travels as a Status payload: ErrcOf(status) gives it back.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "protocol/codec.h"
#include "protocol/errc.h"

namespace sluice::client {

// Debian's Abseil keeps its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0): convert.
inline absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The absl::StatusCode a wire error maps to (THROTTLED -> RESOURCE_EXHAUSTED, UNKNOWN_QUEUE ->
// NOT_FOUND, NOT_PRIMARY -> UNAVAILABLE, ...). kOk -> OK.
absl::StatusCode StatusCodeFor(Errc e);

// "NAME: advice" (advice from protocol/errc.h, or the client's own when the protocol has none).
std::string DescribeErrc(Errc e);

// A Status for a wire error: "<context>: NAME: advice[ (server: detail)]", carrying `e` as payload.
absl::Status ErrcStatus(Errc e, std::string_view context, std::string_view detail = {});

// The Status for an ERROR frame (a detail the server cut short, kFlagTruncated, ends in "...").
absl::Status StatusFromErrorFrame(const protocol::FrameView& f, std::string_view context);

// The wire error carried by a Status made by ErrcStatus, if any.
std::optional<Errc> ErrcOf(const absl::Status& s);

// Context strings: "produce to 'orders'", "... partition 1", "... offset 42".
std::string Context(std::string_view op, std::string_view queue,
                    std::optional<uint16_t> partition = std::nullopt,
                    std::optional<uint64_t> offset = std::nullopt);

// Adds context in front of a status message, keeping its code and payloads.
absl::Status WithContext(const absl::Status& s, std::string_view context);

// True for errors worth retrying later without changing the request (THROTTLED, NOT_PRIMARY,
// UNVERIFIED_SOURCE, NOT_REPLICATED).
bool IsRetryable(Errc e);

}  // namespace sluice::client
