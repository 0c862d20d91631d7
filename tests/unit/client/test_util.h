// Shared by the client tests: a fake server with a standard set of queues and a connected client.
#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "client/connection.h"
#include "protocol/assert.h"
#include "gtest/gtest.h"
#include "tests/unit/client/fake_server.h"

namespace sluice::client::testing {

inline std::vector<FakeQueue> StandardQueues() {
  using protocol::QueueType;
  return {
      {"orders", 1, QueueType::kStream, 1},
      {"multi", 2, QueueType::kStream, 3},
      {"jobs", 3, QueueType::kWorkQueue, 1},
      {"small", 4, QueueType::kStream, 1, 2000},
      {"four", 5, QueueType::kStream, 4},
      {"jobs3", 6, QueueType::kWorkQueue, 3},
  };
}

// Bounded waits everywhere: no test waits longer than this for a condition.
inline constexpr absl::Duration kWait = absl::Seconds(5);

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<FakeServer>(StandardQueues());
    conn_ = ConnectOrDie();
  }

  ConnectionOptions Options() const {
    ConnectionOptions o;
    o.server = server_->address();
    o.retransmit_interval = absl::Milliseconds(50);
    o.max_retransmit_interval = absl::Milliseconds(200);
    o.connect_timeout = absl::Seconds(3);
    return o;
  }

  std::unique_ptr<Connection> ConnectOrDie(ConnectionOptions o) {
    auto c = Connection::Connect(std::move(o));
    if (!c.ok()) ADD_FAILURE() << c.status();
    SLUICE_ASSERT(c.ok());
    return std::move(*c);
  }
  std::unique_ptr<Connection> ConnectOrDie() { return ConnectOrDie(Options()); }

  // Polls the client until `cond` holds; fails the test after kWait.
  template <class F>
  bool PollFor(F cond, absl::Duration timeout = kWait) {
    absl::Status s = conn_->PollUntil(cond, timeout);
    EXPECT_TRUE(s.ok()) << s;
    return s.ok();
  }

  std::unique_ptr<FakeServer> server_;
  std::unique_ptr<Connection> conn_;
};

}  // namespace sluice::client::testing
