#include "control/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace sluice::control {
namespace {

constexpr char kCodeUrl[] = "sluice.control/code";
constexpr char kFieldUrl[] = "sluice.control/field";

absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Payload(const absl::Status& status, const char* url) {
  auto p = status.GetPayload(url);  // absl::optional (Abseil is C++14 on Debian)
  return p ? std::string(*p) : std::string();
}

}  // namespace

absl::Status MakeError(absl::StatusCode code, std::string_view errc, std::string_view field,
                       std::string_view message) {
  absl::Status s(code, Absl(message));
  s.SetPayload(kCodeUrl, absl::Cord(Absl(errc)));
  if (!field.empty()) s.SetPayload(kFieldUrl, absl::Cord(Absl(field)));
  return s;
}

absl::Status FieldError(std::string_view field, std::string_view message) {
  return MakeError(absl::StatusCode::kInvalidArgument, errc::kInvalidArgument, field, message);
}

std::string ErrorCodeOf(const absl::Status& status) {
  std::string code = Payload(status, kCodeUrl);
  if (!code.empty()) return code;
  switch (status.code()) {
    case absl::StatusCode::kOk: return "";
    case absl::StatusCode::kInvalidArgument: return std::string(errc::kInvalidArgument);
    case absl::StatusCode::kNotFound: return std::string(errc::kNotFound);
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted: return std::string(errc::kConflict);
    case absl::StatusCode::kResourceExhausted: return std::string(errc::kLimit);
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDataLoss: return std::string(errc::kUnavailable);
    default: return std::string(errc::kInternal);
  }
}

std::string ErrorFieldOf(const absl::Status& status) { return Payload(status, kFieldUrl); }

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted: return 409;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDataLoss: return 503;
    default: return 500;
  }
}

absl::Status PrefixField(const absl::Status& status, std::string_view prefix) {
  if (status.ok()) return status;
  const std::string field = ErrorFieldOf(status);
  absl::Status out = status;
  out.SetPayload(kFieldUrl, absl::Cord(field.empty() ? std::string(prefix)
                                                     : absl::StrCat(Absl(prefix), ".", field)));
  return out;
}

}  // namespace sluice::control
