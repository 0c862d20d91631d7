#include "client/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace sluice::client {
namespace {

constexpr std::string_view kErrcPayloadUrl = "sluice.dev/errc";

// Advice for codes protocol/errc.h leaves without one.
std::string_view ClientAdvice(Errc e) {
  switch (e) {
    case Errc::kMalformed:
      return "the server could not decode the request; client and server versions may differ";
    case Errc::kUnsupportedVersion: return "the server speaks another protocol version; upgrade";
    case Errc::kUnknownType: return "the server does not know this request type; upgrade it";
    case Errc::kUnknownPartition: return "the partition index is beyond the queue's partitions";
    case Errc::kUnauthorized: return "the request's auth tag is missing or wrong; check the key";
    case Errc::kWrongQueueType:
      return "the queue is of the other type (work queue vs stream) for this operation";
    case Errc::kUnknownReceipt:
      return "no leased message has this receipt (already deleted, or never received)";
    case Errc::kOutOfOrderSequence:
      return "the server missed earlier messages of this producer; they are retransmitted";
    case Errc::kOffsetOutOfRange:
      return "the offset is not retained; start from earliest or latest";
    case Errc::kUnknownSubscription: return "the server has no such subscription; subscribe again";
    case Errc::kNotReplicated:
      return "the standby is gone or lagging: not confirmed on both boxes; retry it (a retried "
             "produce that was stored answers DUPLICATE with its offset, a retried delete that "
             "took effect answers UNKNOWN_RECEIPT)";
    case Errc::kInvalidArgument: return "a request field has a value the server does not allow";
    case Errc::kDuplicate: return "already appended earlier (idempotent retransmit or dedup id)";
    case Errc::kInternal: return "a server bug; report it with the server log";
    default: return "";
  }
}

}  // namespace

absl::StatusCode StatusCodeFor(Errc e) {
  using C = absl::StatusCode;
  switch (e) {
    case Errc::kOk: return C::kOk;
    case Errc::kMalformed:
    case Errc::kUnknownType:
    case Errc::kInvalidArgument:
    case Errc::kMessageTooLarge: return C::kInvalidArgument;
    case Errc::kUnsupportedVersion:
    case Errc::kWrongQueueType:
    case Errc::kStaleReceipt:
    case Errc::kStorageFailed: return C::kFailedPrecondition;
    case Errc::kUnknownQueue:
    case Errc::kUnknownPartition:
    case Errc::kUnknownReceipt:
    case Errc::kUnknownSubscription: return C::kNotFound;
    case Errc::kUnauthorized: return C::kPermissionDenied;
    case Errc::kUnverifiedSource: return C::kUnauthenticated;
    case Errc::kThrottled: return C::kResourceExhausted;
    case Errc::kNotPrimary:
    case Errc::kNotReplicated: return C::kUnavailable;
    case Errc::kOutOfOrderSequence:
    case Errc::kStaleGeneration: return C::kAborted;
    case Errc::kOffsetOutOfRange: return C::kOutOfRange;
    case Errc::kDuplicate: return C::kAlreadyExists;
    case Errc::kInternal: return C::kInternal;
  }
  return C::kUnknown;
}

std::string DescribeErrc(Errc e) {
  std::string_view advice = ErrcAdvice(e);
  if (advice.empty()) advice = ClientAdvice(e);
  if (advice.empty()) return std::string(ErrcName(e));
  return absl::StrCat(Sv(ErrcName(e)), ": ", Sv(advice));
}

absl::Status ErrcStatus(Errc e, std::string_view context, std::string_view detail) {
  if (e == Errc::kOk) return absl::OkStatus();
  std::string msg = context.empty() ? DescribeErrc(e) : absl::StrCat(Sv(context), ": ", DescribeErrc(e));
  if (!detail.empty()) absl::StrAppend(&msg, " (server: ", Sv(detail), ")");
  absl::Status s(StatusCodeFor(e), msg);
  s.SetPayload(Sv(kErrcPayloadUrl), absl::Cord(absl::StrCat(static_cast<unsigned>(e))));
  return s;
}

absl::Status StatusFromErrorFrame(const protocol::FrameView& f, std::string_view context) {
  auto e = protocol::DecodeErrorFrame(f);
  if (!e) {
    return absl::InternalError(absl::StrCat(Sv(context), context.empty() ? "" : ": ",
                                            "malformed ERROR reply (",
                                            Sv(protocol::DecodeErrorName(e.error())), ")"));
  }
  if ((f.header.flags & protocol::kFlagTruncated) != 0 && !e->detail.empty()) {
    return ErrcStatus(e->errc, context, absl::StrCat(Sv(e->detail), "..."));
  }
  return ErrcStatus(e->errc, context, e->detail);
}

std::optional<Errc> ErrcOf(const absl::Status& s) {
  absl::optional<absl::Cord> p = s.GetPayload(Sv(kErrcPayloadUrl));
  if (!p) return std::nullopt;
  unsigned v = 0;
  for (char c : std::string(*p)) v = v * 10 + static_cast<unsigned>(c - '0');
  return static_cast<Errc>(v);
}

std::string Context(std::string_view op, std::string_view queue, std::optional<uint16_t> partition,
                    std::optional<uint64_t> offset) {
  std::string s = absl::StrCat(Sv(op), " '", Sv(queue), "'");
  if (partition) absl::StrAppend(&s, " partition ", *partition);
  if (offset) absl::StrAppend(&s, " offset ", *offset);
  return s;
}

absl::Status WithContext(const absl::Status& s, std::string_view context) {
  if (s.ok() || context.empty()) return s;
  absl::Status out(s.code(), absl::StrCat(Sv(context), ": ", s.message()));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

bool IsRetryable(Errc e) {
  return e == Errc::kThrottled || e == Errc::kNotPrimary || e == Errc::kUnverifiedSource ||
         e == Errc::kNotReplicated;
}

}  // namespace sluice::client
