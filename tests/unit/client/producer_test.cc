#include "client/producer.h"

#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/errors.h"
#include "gtest/gtest.h"
#include "protocol/crc32c.h"
#include "tests/unit/client/test_util.h"

namespace sluice::client::testing {
namespace {

namespace p = protocol;

struct Outcome {
  absl::Status status = absl::UnknownError("not completed");
  uint16_t partition = 0xFFFF;
  uint64_t offset = 0;
  int calls = 0;
};

class ProducerTest : public ClientTest {
 protected:
  std::unique_ptr<Producer> Make(std::string_view queue, ProducerOptions o = {}) {
    auto prod = Producer::Create(*conn_, queue, o);
    if (!prod.ok()) ADD_FAILURE() << prod.status();
    SLUICE_ASSERT(prod.ok());
    return std::move(*prod);
  }
  // Sends payloads "m0".."m<n-1>"; outcomes land in `out`.
  void SendN(Producer& prod, int n, std::vector<Outcome>& out, std::string_view prefix = "m") {
    out.resize(n);
    for (int i = 0; i < n; ++i) {
      const std::string payload = absl::StrCat(Sv(prefix), i);
      ASSERT_TRUE(prod.Send({.payload = AsBytes(payload)},
                            [&out, i](const absl::Status& s, uint16_t part, uint64_t off) {
                              out[i].status = s;
                              out[i].partition = part;
                              out[i].offset = off;
                              ++out[i].calls;
                            })
                      .ok());
    }
  }
  static std::vector<std::string> Names(std::string_view prefix, int n) {
    std::vector<std::string> v;
    for (int i = 0; i < n; ++i) v.push_back(absl::StrCat(Sv(prefix), i));
    return v;
  }
  void ExpectAllAckedInOrder(const std::vector<Outcome>& out) {
    for (size_t i = 0; i < out.size(); ++i) {
      EXPECT_TRUE(out[i].status.ok()) << i << ": " << out[i].status;
      EXPECT_EQ(out[i].calls, 1) << i;
      EXPECT_EQ(out[i].offset, i) << i;
    }
  }
};

TEST_F(ProducerTest, LingerBatchesSmallMessagesIntoOneFrame) {
  auto prod = Make("orders", {.linger = absl::Milliseconds(50)});
  std::vector<Outcome> out;
  SendN(*prod, 10, out);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  ExpectAllAckedInOrder(out);
  EXPECT_EQ(server_->counters().produce_frames, 1u);
  EXPECT_EQ(server_->Payloads("orders", 0), Names("m", 10));
  EXPECT_EQ(prod->stats().frames_sent, 1u);
}

TEST_F(ProducerTest, LingerTimerSendsWithoutFlush) {
  auto prod = Make("orders", {.linger = absl::Milliseconds(5)});
  std::vector<Outcome> out;
  SendN(*prod, 3, out);
  ASSERT_TRUE(PollFor([&] { return prod->pending() == 0; }));
  ExpectAllAckedInOrder(out);
  EXPECT_EQ(server_->counters().produce_frames, 1u);
}

TEST_F(ProducerTest, ZeroLingerSendsEachMessageAtOnce) {
  auto prod = Make("orders", {.linger = absl::ZeroDuration()});
  std::vector<Outcome> out;
  SendN(*prod, 5, out);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  ExpectAllAckedInOrder(out);
  EXPECT_EQ(server_->counters().produce_frames, 5u);
}

TEST_F(ProducerTest, FullFramesLeaveWithoutWaitingForLinger) {
  auto prod = Make("orders", {.max_frame_bytes = 512, .linger = absl::Seconds(10)});
  std::vector<Outcome> out;
  const std::string big(100, 'x');
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(prod->Send({.payload = AsBytes(big)}).ok());
  }
  // No Flush: only frames that filled up have left.
  ASSERT_TRUE(PollFor([&] { return server_->LogSize("orders", 0) >= 12; }));
  EXPECT_GE(server_->counters().produce_frames, 4u);  // ~3 records of 144 bytes per 512-byte frame
  ASSERT_TRUE(prod->Flush(kWait).ok());
  EXPECT_EQ(server_->LogSize("orders", 0), 20u);
}

TEST_F(ProducerTest, CoalescedAcksCompleteSeveralRequests) {
  server_->SetAckDelayMs(30);
  auto prod = Make("orders", {.linger = absl::ZeroDuration()});
  std::vector<Outcome> out;
  SendN(*prod, 4, out);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  ExpectAllAckedInOrder(out);
  const FakeCounters c = server_->counters();
  EXPECT_EQ(c.produce_frames, 4u);
  EXPECT_EQ(c.ack_frames, 1u);  // one ACK frame ...
  EXPECT_EQ(c.ack_ranges, 1u);  // ... one range of four sequences, for four requests
}

TEST_F(ProducerTest, LostProduceIsRetransmittedWithTheSameSequences) {
  int dropped = 0;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToServer && f.header.type == p::FrameType::kProduce && dropped == 0) {
      ++dropped;
      return Fault::kDrop;
    }
    return Fault::kPass;
  });
  auto prod = Make("orders", {.linger = absl::Milliseconds(1), .ack_timeout = absl::Milliseconds(30)});
  std::vector<Outcome> out;
  SendN(*prod, 5, out);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  ExpectAllAckedInOrder(out);
  EXPECT_EQ(dropped, 1);
  EXPECT_GE(prod->stats().retransmits, 1u);
  EXPECT_EQ(server_->Payloads("orders", 0), Names("m", 5));
}

TEST_F(ProducerTest, LostAckDoesNotAppendTwice) {
  int dropped = 0;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToClient && f.header.type == p::FrameType::kAck && dropped == 0) {
      ++dropped;
      return Fault::kDrop;
    }
    return Fault::kPass;
  });
  auto prod = Make("orders", {.linger = absl::Milliseconds(1), .ack_timeout = absl::Milliseconds(30)});
  std::vector<Outcome> out;
  SendN(*prod, 5, out);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  // The retransmit was acked DUPLICATE with the original offsets: nothing appended twice.
  ExpectAllAckedInOrder(out);
  EXPECT_EQ(dropped, 1);
  EXPECT_GE(server_->counters().duplicates, 5u);
  EXPECT_EQ(prod->stats().duplicates, 5u);
  EXPECT_EQ(server_->Payloads("orders", 0), Names("m", 5));
}

TEST_F(ProducerTest, DuplicatedAndReorderedDatagramsKeepOrderAndAppendOnce) {
  int n = 0;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (f.header.type == p::FrameType::kProduce && d == Direction::kToServer) {
      switch (n++ % 3) {
        case 0: return Fault::kDelay;      // overtaken by the next frame
        case 1: return Fault::kDuplicate;
        default: return Fault::kPass;
      }
    }
    if (f.header.type == p::FrameType::kAck) return n % 2 == 0 ? Fault::kDuplicate : Fault::kPass;
    return Fault::kPass;
  });
  auto prod = Make("orders", {.max_frame_bytes = 512,
                              .linger = absl::ZeroDuration(),
                              .ack_timeout = absl::Milliseconds(30)});
  std::vector<Outcome> out;
  SendN(*prod, 30, out);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  ExpectAllAckedInOrder(out);
  EXPECT_EQ(server_->Payloads("orders", 0), Names("m", 30));
  EXPECT_GE(server_->counters().out_of_order + server_->counters().duplicates, 1u);
}

TEST_F(ProducerTest, ThrottledMessagesAreRetriedAfterBackoff) {
  server_->ThrottleNext(3);
  auto prod = Make("orders", {.linger = absl::Milliseconds(1)});
  std::vector<Outcome> out;
  SendN(*prod, 6, out);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  ExpectAllAckedInOrder(out);
  EXPECT_GE(prod->stats().throttled, 3u);
  EXPECT_EQ(server_->counters().throttled, 3u);
  EXPECT_EQ(server_->Payloads("orders", 0), Names("m", 6));
}

TEST_F(ProducerTest, LargeMessageIsFragmentedAndReassembledOnce) {
  int dropped = 0;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    // Lose the second fragment's frame once.
    if (d == Direction::kToServer && f.header.type == p::FrameType::kProduce) {
      auto prod = p::DecodeProduce(f);
      for (const p::MessageView& m : prod->messages) {
        if (m.is_fragment() && m.fragment_offset > 0 && dropped == 0) {
          ++dropped;
          return Fault::kDrop;
        }
      }
    }
    return Fault::kPass;
  });
  auto prod = Make("orders", {.linger = absl::Milliseconds(1), .ack_timeout = absl::Milliseconds(30)});
  std::string big(10000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  Outcome o;
  ASSERT_TRUE(prod->Send({.payload = AsBytes(big), .key = "k"},
                         [&](const absl::Status& s, uint16_t part, uint64_t off) {
                           o.status = s;
                           o.partition = part;
                           o.offset = off;
                           ++o.calls;
                         })
                  .ok());
  ASSERT_TRUE(prod->Send({.payload = AsBytes("small after")}).ok());
  ASSERT_TRUE(prod->Flush(kWait).ok());
  EXPECT_TRUE(o.status.ok()) << o.status;
  EXPECT_EQ(o.calls, 1);
  EXPECT_EQ(o.offset, 0u);
  EXPECT_EQ(prod->stats().fragmented, 1u);
  EXPECT_EQ(dropped, 1);
  const FakeCounters c = server_->counters();
  EXPECT_GE(c.fragments, 7u);  // 10000 bytes in ~1400-byte fragments
  EXPECT_EQ(c.reassembled, 1u);
  const std::vector<std::string> log = server_->Payloads("orders", 0);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0], big);
  EXPECT_EQ(log[1], "small after");
}

TEST_F(ProducerTest, TooLargeIsRejectedAtOnce) {
  auto prod = Make("small");  // max_message_bytes 2000
  const std::string big(2001, 'x');
  absl::Status s = prod->Send({.payload = AsBytes(big)});
  EXPECT_EQ(ErrcOf(s), Errc::kMessageTooLarge);
  EXPECT_TRUE(absl::StartsWith(s.message(),
                               "produce to 'small' partition 0: MESSAGE_TOO_LARGE: message exceeds "
                               "the queue's max_message_bytes"))
      << s;
  EXPECT_EQ(prod->pending(), 0u);
}

TEST_F(ProducerTest, ServerRejectionLeavesNoGapInSequences) {
  // 1990 bytes pass the client's payload check but the record (with its 44-byte header) is over
  // the server's 2000: rejected, and the server's expected sequence stays put.
  auto prod = Make("small", {.linger = absl::Milliseconds(5)});
  std::vector<Outcome> out(5);
  const std::string big(1990, 'b');
  for (int i = 0; i < 5; ++i) {
    const std::string payload = i == 1 ? big : absl::StrCat("m", i);
    ASSERT_TRUE(prod->Send({.payload = AsBytes(payload)},
                           [&out, i](const absl::Status& s, uint16_t, uint64_t off) {
                             out[i].status = s;
                             out[i].offset = off;
                             ++out[i].calls;
                           })
                    .ok());
  }
  ASSERT_TRUE(prod->Flush(kWait).ok());
  EXPECT_EQ(ErrcOf(out[1].status), Errc::kMessageTooLarge);
  EXPECT_TRUE(absl::StartsWith(out[1].status.message(),
                               "produce to 'small' partition 0: MESSAGE_TOO_LARGE"))
      << out[1].status;
  const uint64_t want[] = {0, 0, 1, 2, 3};
  for (int i : {0, 2, 3, 4}) {
    EXPECT_TRUE(out[i].status.ok()) << i << out[i].status;
    EXPECT_EQ(out[i].offset, want[i]) << i;
  }
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out[i].calls, 1);
  EXPECT_EQ(server_->Payloads("small", 0), (std::vector<std::string>{"m0", "m2", "m3", "m4"}));
  EXPECT_EQ(prod->stats().renumbered, 3u);
}

TEST_F(ProducerTest, ForgottenProducerStartsANewEpoch) {
  auto prod = Make("multi", {.linger = absl::Milliseconds(1),
                             .ack_timeout = absl::Milliseconds(30),
                             .sticky_partitioning = false});
  std::vector<Outcome> out;
  SendN(*prod, 6, out, "a");
  ASSERT_TRUE(prod->Flush(kWait).ok());
  const uint64_t first_id = prod->producer_id();
  server_->ForgetProducers();  // e.g. the server restarted
  std::vector<Outcome> more;
  SendN(*prod, 6, more, "b");
  ASSERT_TRUE(prod->Flush(kWait).ok());
  for (const Outcome& o : more) EXPECT_TRUE(o.status.ok()) << o.status;
  EXPECT_EQ(prod->stats().epochs, 1u);
  EXPECT_NE(prod->producer_id(), first_id);
  for (uint16_t part = 0; part < 3; ++part) {
    EXPECT_EQ(server_->Payloads("multi", part),
              (std::vector<std::string>{absl::StrCat("a", part), absl::StrCat("a", part + 3),
                                        absl::StrCat("b", part), absl::StrCat("b", part + 3)}));
  }
}

TEST_F(ProducerTest, ServerErrorsCompleteMessagesWithContext) {
  // A queue id the server does not know (as after the queue was deleted).
  Producer prod(*conn_, QueueInfo{"ghost", 999, 1, p::QueueType::kStream, 1000}, {});
  Outcome o;
  ASSERT_TRUE(prod.Send({.payload = AsBytes("x")},
                        [&](const absl::Status& s, uint16_t, uint64_t) {
                          o.status = s;
                          ++o.calls;
                        })
                  .ok());
  ASSERT_TRUE(prod.Flush(kWait).ok());
  EXPECT_EQ(o.calls, 1);
  EXPECT_EQ(ErrcOf(o.status), Errc::kUnknownQueue);
  EXPECT_TRUE(absl::StartsWith(o.status.message(),
                               "produce to 'ghost' partition 0: UNKNOWN_QUEUE: no queue with that "
                               "name or id; create it first"))
      << o.status;
  EXPECT_EQ(prod.stats().failed, 1u);
}

TEST_F(ProducerTest, KeysPickPartitionsLikeTheServer) {
  auto prod = Make("four", {.linger = absl::Milliseconds(1)});
  std::vector<Outcome> out(8);
  for (int i = 0; i < 8; ++i) {
    const std::string key = absl::StrCat("customer-", i);
    ASSERT_TRUE(prod->Send({.payload = AsBytes(key), .key = key},
                           [&out, i](const absl::Status& s, uint16_t part, uint64_t) {
                             out[i].status = s;
                             out[i].partition = part;
                           })
                    .ok());
  }
  ASSERT_TRUE(prod->Flush(kWait).ok());
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(out[i].status.ok());
    EXPECT_EQ(out[i].partition, p::PartitionForKey(absl::StrCat("customer-", i), 4));
  }
}

TEST_F(ProducerTest, KeylessMessagesGoRoundRobin) {
  auto prod = Make("four", {.linger = absl::Milliseconds(1), .sticky_partitioning = false});
  std::vector<Outcome> out;
  SendN(*prod, 8, out);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  for (int i = 0; i < 8; ++i) EXPECT_EQ(out[i].partition, i % 4) << i;
  for (uint16_t part = 0; part < 4; ++part) EXPECT_EQ(server_->LogSize("four", part), 2u);
}

TEST_F(ProducerTest, ExplicitPartitionOutOfRangeIsRejected) {
  auto prod = Make("four");
  absl::Status s = prod->Send({.payload = AsBytes("x"), .partition = 4});
  EXPECT_EQ(ErrcOf(s), Errc::kUnknownPartition);
}

TEST_F(ProducerTest, InFlightWindowIsBounded) {
  std::mutex mu;
  std::set<uint64_t> requests;  // distinct PRODUCE frames seen (retransmits share the id)
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToServer && f.header.type == p::FrameType::kProduce) {
      std::lock_guard<std::mutex> l(mu);
      requests.insert(f.header.request_id);
    }
    return d == Direction::kToClient && f.header.type == p::FrameType::kAck ? Fault::kDrop
                                                                            : Fault::kPass;
  });
  auto distinct = [&] {
    std::lock_guard<std::mutex> l(mu);
    return requests.size();
  };
  auto prod = Make("orders", {.linger = absl::ZeroDuration(),
                              .max_in_flight_frames = 2,
                              .ack_timeout = absl::Milliseconds(50)});
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(prod->Send({.payload = AsBytes("x")}).ok());
  // Unacknowledged frames are retransmitted, but no third frame is sent.
  ASSERT_TRUE(PollFor([&] { return prod->stats().retransmits >= 4; }));
  EXPECT_EQ(distinct(), 2u);
  EXPECT_EQ(prod->stats().frames_sent, 2u);
  // Acks flow again: the rest goes.
  server_->SetFaultHook(nullptr);
  ASSERT_TRUE(PollFor([&] { return server_->LogSize("orders", 0) == 10; }, absl::Seconds(15)));
  ASSERT_TRUE(prod->Flush(kWait).ok());
}

TEST_F(ProducerTest, PendingLimitPushesBack) {
  auto prod = Make("orders", {.linger = absl::Seconds(10), .max_pending_messages = 3});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(prod->Send({.payload = AsBytes("x")}).ok());
  absl::Status s = prod->Send({.payload = AsBytes("x")});
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  ASSERT_TRUE(prod->Flush(kWait).ok());
  EXPECT_TRUE(prod->Send({.payload = AsBytes("x")}).ok());
}

TEST_F(ProducerTest, UnacknowledgedMessagesFailAfterDeliveryTimeout) {
  auto prod = Make("orders", {.linger = absl::ZeroDuration(),
                              .ack_timeout = absl::Milliseconds(20),
                              .delivery_timeout = absl::Milliseconds(200)});
  server_->SetSilent(true);
  Outcome o;
  ASSERT_TRUE(prod->Send({.payload = AsBytes("x")},
                         [&](const absl::Status& s, uint16_t, uint64_t) {
                           o.status = s;
                           ++o.calls;
                         })
                  .ok());
  EXPECT_EQ(prod->Flush(absl::Milliseconds(50)).code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(PollFor([&] { return o.calls == 1; }));
  EXPECT_EQ(o.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(absl::StartsWith(o.status.message(), "produce to 'orders' partition 0: no acknowledgement"))
      << o.status;
  EXPECT_GE(prod->stats().retransmits, 2u);
}

TEST_F(ProducerTest, HeadersAndMetadataReachTheLog) {
  auto prod = Make("orders");
  const p::Header headers[] = {{"trace", "abc"}, {"type", "order"}};
  ASSERT_TRUE(prod->Send({.payload = AsBytes("body"),
                          .key = "k1",
                          .priority = 3,
                          .ttl_ms = 1000,
                          .headers = headers,
                          .correlation_id = "c-1"})
                  .ok());
  ASSERT_TRUE(prod->Flush(kWait).ok());
  auto q = conn_->Lookup("orders");
  ASSERT_EQ(server_->Payloads("orders", 0), std::vector<std::string>{"body"});
}

}  // namespace
}  // namespace sluice::client::testing

// ---- a replicated pair as a server list (docs/replication.md §7) --------------------------------

namespace sluice::client::testing {
namespace {

// The first box of the list is dead (silent): Connect() takes the next one that answers.
TEST_F(ProducerTest, ConnectTakesTheFirstServerOfAListThatAnswers) {
  FakeServer dead(StandardQueues());
  dead.SetSilent(true);
  ConnectionOptions o = Options();
  o.server = dead.address() + "," + server_->address();
  o.connect_timeout = absl::Milliseconds(300);
  auto c = Connection::Connect(o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->server(), server_->address());
}

// The primary goes silent (SIGKILL) with messages in flight: the producer's connection moves to
// the next server of the list after failover_after and every message is acknowledged there,
// each exactly once, without the caller doing anything.
TEST_F(ProducerTest, ASilentPrimaryIsLeftForTheNextServerOfTheList) {
  FakeServer standby(StandardQueues());
  ConnectionOptions o = Options();
  o.server = server_->address() + ", " + standby.address();
  o.heartbeat_interval = absl::Milliseconds(100);
  o.failover_after = absl::Milliseconds(300);
  conn_ = ConnectOrDie(o);
  ASSERT_EQ(conn_->server(), server_->address());
  auto prod = Make("orders", {.linger = absl::ZeroDuration()});
  std::vector<Outcome> first;
  SendN(*prod, 5, first);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  ExpectAllAckedInOrder(first);
  server_->SetSilent(true);
  std::vector<Outcome> out;
  SendN(*prod, 10, out);
  ASSERT_TRUE(prod->Flush(kWait).ok());
  ExpectAllAckedInOrder(out);  // offsets 0.. on the standby's (fake) log
  EXPECT_EQ(conn_->server(), standby.address());
  EXPECT_EQ(conn_->stats().failovers, 1u);
  EXPECT_EQ(standby.counters().appended, 10u);
}

// Without a list, a silent server is not left (nowhere to go): the messages time out.
TEST_F(ProducerTest, ASingleServerIsNeverLeft) {
  ConnectionOptions o = Options();
  o.heartbeat_interval = absl::Milliseconds(100);
  o.failover_after = absl::Milliseconds(200);
  conn_ = ConnectOrDie(o);
  auto prod = Make("orders", {.linger = absl::ZeroDuration(),
                              .delivery_timeout = absl::Milliseconds(800)});
  server_->SetSilent(true);
  std::vector<Outcome> out;
  SendN(*prod, 1, out);
  (void)prod->Flush(absl::Seconds(3));
  EXPECT_FALSE(out[0].status.ok());
  EXPECT_EQ(conn_->stats().failovers, 0u);
}

}  // namespace
}  // namespace sluice::client::testing
