// Expected outcomes of the control plane (STYLE §4): an absl::Status whose canonical code gives
// the HTTP status, plus two payloads that the REST layer puts into the error body
// {"error": {"code": ..., "message": ..., "field": ...}}:
//   - a stable, machine-readable error code ("invalid_argument", "unknown_field", "conflict", ...)
//   - the request field the error is about ("attributes.visibility_timeout_ms"), when there is one.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace sluice::control {

// Stable codes of the JSON error body (docs/control.md §Errors).
namespace errc {
inline constexpr std::string_view kInvalidArgument = "invalid_argument";  // 400: bad value
inline constexpr std::string_view kUnknownField = "unknown_field";        // 400
inline constexpr std::string_view kBadJson = "bad_json";                  // 400
inline constexpr std::string_view kImmutable = "immutable";               // 400: not changeable live
inline constexpr std::string_view kNotFound = "not_found";                // 404
inline constexpr std::string_view kMethodNotAllowed = "method_not_allowed";  // 405
inline constexpr std::string_view kConflict = "conflict";                 // 409
inline constexpr std::string_view kNotPrimary = "not_primary";          // 409: a standby or fenced box
inline constexpr std::string_view kLimit = "limit_exceeded";              // 409: too many queues/ids
inline constexpr std::string_view kPayloadTooLarge = "payload_too_large"; // 413
inline constexpr std::string_view kUnavailable = "unavailable";           // 503: store/backend failed
inline constexpr std::string_view kInternal = "internal";                 // 500
}  // namespace errc

// An InvalidArgument about `field` ("" = the request as a whole), code kInvalidArgument.
absl::Status FieldError(std::string_view field, std::string_view message);
// Any status with an explicit error code and field.
absl::Status MakeError(absl::StatusCode code, std::string_view errc, std::string_view field,
                       std::string_view message);

// The payloads, or a code derived from the canonical code / "" when absent.
std::string ErrorCodeOf(const absl::Status& status);
std::string ErrorFieldOf(const absl::Status& status);
// The HTTP status a control-plane error maps to (docs/control.md §Errors).
int HttpStatusOf(const absl::Status& status);

// A copy of `status` whose field is `prefix + "." + field` (or `prefix` when it had none).
absl::Status PrefixField(const absl::Status& status, std::string_view prefix);

}  // namespace sluice::control
