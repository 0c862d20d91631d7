#include "client/errors.h"

#include "client/message.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace sluice::client {
namespace {

TEST(ClientErrors, MessageNamesContextCodeAndAdvice) {
  absl::Status s = ErrcStatus(Errc::kThrottled, Context("produce to", "orders", 1));
  EXPECT_EQ(s.message(),
            "produce to 'orders' partition 1: THROTTLED: the server is saturated; retry after a "
            "back-off");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrcOf(s), Errc::kThrottled);
}

TEST(ClientErrors, ServerDetailIsAppended) {
  absl::Status s = ErrcStatus(Errc::kUnknownQueue, "lookup 'x'", "no queue named 'x'");
  EXPECT_EQ(s.message(),
            "lookup 'x': UNKNOWN_QUEUE: no queue with that name or id; create it first (server: no "
            "queue named 'x')");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
}

TEST(ClientErrors, EveryErrorCodeHasAdvice) {
  for (uint16_t v = 1; v <= static_cast<uint16_t>(Errc::kStaleGeneration); ++v) {
    const Errc e = static_cast<Errc>(v);
    const std::string d = DescribeErrc(e);
    EXPECT_NE(d.find(": "), std::string::npos) << "no advice for " << d;
    EXPECT_NE(StatusCodeFor(e), absl::StatusCode::kOk) << d;
    EXPECT_NE(StatusCodeFor(e), absl::StatusCode::kUnknown) << d;
  }
  EXPECT_TRUE(ErrcStatus(Errc::kOk, "x").ok());
}

TEST(ClientErrors, WithContextKeepsCodeAndErrc) {
  absl::Status s = WithContext(ErrcStatus(Errc::kStaleReceipt, ""), "delete from 'jobs'");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrcOf(s), Errc::kStaleReceipt);
  EXPECT_TRUE(absl::StartsWith(s.message(), "delete from 'jobs': STALE_RECEIPT"));
  EXPECT_FALSE(ErrcOf(absl::InternalError("x")).has_value());
}

TEST(ClientErrors, ReceiptTextRoundTrips) {
  const Receipt r{3, 0xDEADBEEF12ull};
  const std::string text = FormatReceipt(r);
  EXPECT_EQ(text, "3:000000deadbeef12");
  auto back = ParseReceipt(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, r);
  EXPECT_FALSE(ParseReceipt("nope").ok());
  EXPECT_FALSE(ParseReceipt("1:0").ok());       // 0 is never a receipt
  EXPECT_FALSE(ParseReceipt("70000:12").ok());  // partition out of range
}

TEST(ClientErrors, StartPositions) {
  EXPECT_EQ(ParseStartPosition("earliest")->kind, protocol::StartKind::kEarliest);
  EXPECT_EQ(ParseStartPosition("latest")->kind, protocol::StartKind::kLatest);
  EXPECT_EQ(ParseStartPosition("42")->value, 42u);
  EXPECT_EQ(ParseStartPosition("@1700000000000000000")->kind, protocol::StartKind::kTimestamp);
  EXPECT_FALSE(ParseStartPosition("soon").ok());
}

}  // namespace
}  // namespace sluice::client
