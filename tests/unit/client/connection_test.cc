#include "client/connection.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/strings/match.h"
#include "client/errors.h"
#include "client/stream_consumer.h"
#include "gtest/gtest.h"
#include "tests/unit/client/test_util.h"

namespace sluice::client::testing {
namespace {

namespace p = protocol;

TEST_F(ClientTest, ConnectCompletesTheCookieHandshake) {
  EXPECT_TRUE(conn_->verified());
  EXPECT_NE(conn_->cookie(), 0u);
  EXPECT_NE(conn_->client_id(), 0u);
  // Cookie 0 first, then the echo.
  EXPECT_GE(server_->counters().heartbeats, 2u);
}

TEST_F(ClientTest, HandshakeSurvivesLostHeartbeats) {
  int dropped = 0;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (f.header.type == p::FrameType::kHeartbeat && dropped < 2) {
      ++dropped;  // the first reply to the client and the first echo to the server... whichever
      (void)d;
      return Fault::kDrop;
    }
    return Fault::kPass;
  });
  auto c = Connection::Connect(Options());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE((*c)->verified());
  EXPECT_EQ(dropped, 2);
}

TEST_F(ClientTest, SilentServerIsUnavailable) {
  server_->SetSilent(true);
  ConnectionOptions o = Options();
  o.connect_timeout = absl::Milliseconds(300);
  const MonoNs start = NowNs();
  auto c = Connection::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(c.status().message(), "cannot reach server")) << c.status();
  EXPECT_LT(NowNs() - start, 2'000'000'000);  // bounded by connect_timeout
}

TEST_F(ClientTest, ClosedPortIsUnavailable) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);  // nobody listens there now
  ConnectionOptions o = Options();
  o.server = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  o.connect_timeout = absl::Milliseconds(300);
  auto c = Connection::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ClientTest, BadServerAddress) {
  ConnectionOptions o = Options();
  o.server = "no-port-here";
  auto c = Connection::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientTest, LookupFindsQueuesAndNamesUnknownOnes) {
  auto q = conn_->Lookup("multi");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->queue_id, 2u);
  EXPECT_EQ(q->partitions, 3);
  EXPECT_EQ(q->type, p::QueueType::kStream);
  auto missing = conn_->Lookup("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrcOf(missing.status()), Errc::kUnknownQueue);
  EXPECT_EQ(std::string(missing.status().message()),
            "lookup 'nope': UNKNOWN_QUEUE: no queue with that name or id; create it first "
            "(server: no q...)");  // cut to the request's size: amplification rule
}

TEST_F(ClientTest, LookupIsRetransmittedWhenLost) {
  int dropped = 0;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToServer && f.header.type == p::FrameType::kLookup && dropped == 0) {
      ++dropped;
      return Fault::kDrop;
    }
    return Fault::kPass;
  });
  auto q = conn_->Lookup("orders");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(dropped, 1);
  EXPECT_GE(conn_->stats().retransmits, 1u);
}

TEST_F(ClientTest, PingMeasuresARoundTrip) {
  auto rtt = conn_->Ping();
  ASSERT_TRUE(rtt.ok()) << rtt.status();
  EXPECT_GT(*rtt, absl::ZeroDuration());
  EXPECT_LT(*rtt, absl::Seconds(1));
}

TEST_F(ClientTest, UnverifiedSourceIsReverifiedTransparently) {
  server_->ForgetVerifiedSources();
  auto q = conn_->Lookup("orders");
  ASSERT_TRUE(q.ok());
  server_->Append("orders", 0, "hello");
  auto r = Fetch(*conn_, *q, 0, StartPosition::Earliest(), 10);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->messages[0]->payload_view(), "hello");
  EXPECT_GE(server_->counters().unverified_rejected, 1u);
  EXPECT_GE(conn_->stats().unverified_errors, 1u);
  EXPECT_TRUE(conn_->verified());
}

TEST_F(ClientTest, PeriodicHeartbeatsEchoTheLatestCookie) {
  ConnectionOptions o = Options();
  o.heartbeat_interval = absl::Milliseconds(30);
  conn_ = ConnectOrDie(o);
  const uint64_t before = conn_->cookie();
  server_->ForgetVerifiedSources();  // the server's cookie changes
  ASSERT_TRUE(PollFor([&] { return conn_->cookie() != before && conn_->verified(); }));
  // Verified again by the heartbeats alone: a FETCH is served without an UNVERIFIED_SOURCE.
  const uint64_t rejected = server_->counters().unverified_rejected;
  auto q = conn_->Lookup("orders");
  auto r = Fetch(*conn_, *q, 0, StartPosition::Earliest(), 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(server_->counters().unverified_rejected, rejected);
  EXPECT_GE(conn_->stats().cookie_changes, 2u);
}

TEST_F(ClientTest, UnansweredRequestFailsAfterBoundedAttempts) {
  auto q = conn_->Lookup("orders");
  ASSERT_TRUE(q.ok());
  server_->SetSilent(true);
  const MonoNs start = NowNs();
  auto r = Fetch(*conn_, *q, 0, StartPosition::Earliest(), 1, absl::Seconds(10));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(absl::StrContains(r.status().message(), "after 5 attempts")) << r.status();
  EXPECT_LT(NowNs() - start, 3'000'000'000);
}

}  // namespace
}  // namespace sluice::client::testing
