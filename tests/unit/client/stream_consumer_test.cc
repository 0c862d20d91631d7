#include "client/stream_consumer.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/errors.h"
#include "client/producer.h"
#include "gtest/gtest.h"
#include "tests/unit/client/test_util.h"

namespace sluice::client::testing {
namespace {

namespace p = protocol;

struct Seen {
  uint16_t partition;
  uint64_t offset;
  std::string payload;
};

class StreamTest : public ClientTest {
 protected:
  std::unique_ptr<StreamConsumer> Subscribe(std::string_view queue, StreamConsumerOptions o,
                                            bool with_handler = true) {
    MessageHandler h;
    if (with_handler) {
      h = [this](const ReceivedMessage& m) {
        seen_.push_back({m.partition, m.offset, std::string(m.payload_view())});
      };
    }
    auto c = StreamConsumer::Create(*conn_, queue, std::move(o), std::move(h));
    if (!c.ok()) ADD_FAILURE() << c.status();
    SLUICE_ASSERT(c.ok());
    return std::move(*c);
  }
  void AppendN(std::string_view queue, uint16_t partition, int from, int to) {
    for (int i = from; i < to; ++i) server_->Append(queue, partition, absl::StrCat("m", i));
  }
  // The seen offsets of one partition are 0..n-1, each once, in order.
  void ExpectInOrder(uint16_t partition, uint64_t n) {
    std::vector<uint64_t> offs;
    for (const Seen& s : seen_) {
      if (s.partition != partition) continue;
      EXPECT_EQ(s.payload, absl::StrCat("m", s.offset));
      offs.push_back(s.offset);
    }
    ASSERT_EQ(offs.size(), n) << "partition " << partition;
    for (uint64_t i = 0; i < n; ++i) EXPECT_EQ(offs[i], i);
  }
  size_t SeenIn(uint16_t partition) {
    return std::count_if(seen_.begin(), seen_.end(),
                         [&](const Seen& s) { return s.partition == partition; });
  }
  std::vector<Seen> seen_;
};

// True if a DELIVER frame carries `offset`.
bool CarriesOffset(const p::FrameView& f, uint64_t offset) {
  if (f.header.type != p::FrameType::kDeliver) return false;
  auto d = p::DecodeDeliver(f);
  for (const p::DeliveredView& v : d->messages) {
    if (v.meta.offset == offset) return true;
  }
  return false;
}

TEST_F(StreamTest, SubscribeFromEarliestDeliversTheBacklogInOrder) {
  AppendN("orders", 0, 0, 5);
  auto c = Subscribe("orders", {.start = StartPosition::Earliest()});
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 5; }));
  ExpectInOrder(0, 5);
  EXPECT_EQ(c->next_offset(0), 5u);
}

TEST_F(StreamTest, SubscribeFromLatestSeesOnlyNewMessages) {
  AppendN("orders", 0, 0, 3);
  auto c = Subscribe("orders", {.start = StartPosition::Latest()});
  EXPECT_EQ(c->next_offset(0), 3u);
  auto prod = Producer::Create(*conn_, "orders", {.linger = absl::ZeroDuration()});
  ASSERT_TRUE(prod.ok());
  for (int i = 3; i < 6; ++i) {
    const std::string s = absl::StrCat("m", i);
    ASSERT_TRUE((*prod)->Send({.payload = AsBytes(s)}).ok());
  }
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 3; }));
  EXPECT_EQ(seen_.front().offset, 3u);
  EXPECT_EQ(seen_.back().offset, 5u);
}

TEST_F(StreamTest, SubscribeFromAnOffset) {
  AppendN("orders", 0, 0, 6);
  auto c = Subscribe("orders", {.start = StartPosition::Offset(4)});
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 2; }));
  EXPECT_EQ(seen_[0].offset, 4u);
  EXPECT_EQ(seen_[1].offset, 5u);
}

TEST_F(StreamTest, CreditWindowBoundsWhatTheServerPushes) {
  AppendN("orders", 0, 0, 10);
  auto c = Subscribe("orders", {.start = StartPosition::Earliest(), .window = 4}, false);
  ASSERT_TRUE(PollFor([&] { return c->ready() == 4; }));
  // Nothing consumed: the server stays within the window.
  (void)conn_->PollUntil([] { return false; }, absl::Milliseconds(50));
  EXPECT_EQ(c->ready(), 4u);
  EXPECT_EQ(server_->counters().delivered, 4u);
  EXPECT_EQ(c->granted_end(0), 4u);
  std::vector<uint64_t> got;
  while (got.size() < 10) {
    std::optional<OwnedMessage> m = c->NextWait(kWait);
    ASSERT_TRUE(m.has_value()) << "after " << got.size();
    EXPECT_EQ((*m)->payload_view(), absl::StrCat("m", got.size()));
    got.push_back((*m)->offset);
    // Never more pushed than consumed + window.
    EXPECT_LE(server_->counters().delivered, got.size() + 4);
  }
  for (uint64_t i = 0; i < 10; ++i) EXPECT_EQ(got[i], i);
  EXPECT_GE(c->stats().credits_sent, 2u);
}

TEST_F(StreamTest, GapIsDetectedAndNakedThenFilled) {
  bool dropped = false;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToClient && !dropped && CarriesOffset(f, 2)) {
      dropped = true;
      return Fault::kDrop;
    }
    return Fault::kPass;
  });
  auto c = Subscribe("orders", {.start = StartPosition::Earliest(), .naks_before_fetch = 5});
  for (int i = 0; i < 6; ++i) {  // one DELIVER per message
    server_->Append("orders", 0, absl::StrCat("m", i));
    ASSERT_TRUE(PollFor([&] { return server_->counters().delivered >= static_cast<uint64_t>(i + 1); }));
  }
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 6; }));
  ExpectInOrder(0, 6);
  EXPECT_TRUE(dropped);
  EXPECT_GE(c->stats().out_of_order, 1u);
  EXPECT_GE(c->stats().gaps, 1u);
  EXPECT_GE(c->stats().naks_sent, 1u);
  EXPECT_GE(server_->counters().naks, 1u);
}

TEST_F(StreamTest, LostNaksFallBackToFetch) {
  bool dropped = false;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToClient && !dropped && CarriesOffset(f, 1)) {
      dropped = true;
      return Fault::kDrop;
    }
    if (d == Direction::kToServer && f.header.type == p::FrameType::kNak) return Fault::kDrop;
    return Fault::kPass;
  });
  auto c = Subscribe("orders", {.start = StartPosition::Earliest(),
                                .recovery_interval = absl::Milliseconds(20),
                                .naks_before_fetch = 2});
  for (int i = 0; i < 4; ++i) {
    server_->Append("orders", 0, absl::StrCat("m", i));
    ASSERT_TRUE(PollFor([&] { return server_->counters().delivered >= static_cast<uint64_t>(i + 1); }));
  }
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 4; }));
  ExpectInOrder(0, 4);
  EXPECT_EQ(c->stats().naks_sent, 2u);
  EXPECT_GE(c->stats().fetches_sent, 1u);
}

TEST_F(StreamTest, LostTailIsFoundThroughTheHighWatermark) {
  bool dropped = false;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToClient && !dropped && CarriesOffset(f, 3)) {
      dropped = true;
      return Fault::kDrop;
    }
    return Fault::kPass;
  });
  server_->SetIdleDeliverMs(30);
  // The idle probe is far off: only the server's idle DELIVER (high watermark 4) can reveal it.
  auto c = Subscribe("orders", {.start = StartPosition::Earliest(), .idle_probe = absl::Seconds(30)});
  AppendN("orders", 0, 0, 3);
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 3; }));
  server_->Append("orders", 0, "m3");  // its DELIVER is lost; nothing comes after it
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 4; }, absl::Seconds(2)));
  ExpectInOrder(0, 4);
  EXPECT_TRUE(dropped);
  EXPECT_EQ(c->stats().gaps, 1u);
  EXPECT_EQ(c->stats().fetches_sent, 0u);

}

TEST_F(StreamTest, LostTailIsFoundByTheIdleProbe) {
  bool dropped = false;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToClient && !dropped && CarriesOffset(f, 3)) {
      dropped = true;
      return Fault::kDrop;
    }
    return Fault::kPass;
  });
  server_->SetIdleDeliverMs(0);  // a server that sends no idle DELIVER
  auto c = Subscribe("orders", {.start = StartPosition::Earliest(), .idle_probe = absl::Milliseconds(50)});
  AppendN("orders", 0, 0, 3);
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 3; }));
  server_->Append("orders", 0, "m3");
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 4; }, absl::Seconds(2)));
  ExpectInOrder(0, 4);
  EXPECT_GE(c->stats().fetches_sent, 1u);
}

// The server restarts (or a standby is promoted in its place) and forgets the subscription: no
// DELIVER comes, not even an idle one, so the consumer SUBSCRIBEs again from its next offset and
// what was appended meanwhile is pushed, each offset once, in order.
TEST_F(StreamTest, ALostSubscriptionIsMadeAgainFromTheNextOffset) {
  server_->SetIdleDeliverMs(20);
  auto c = Subscribe("orders", {.start = StartPosition::Earliest(),
                                .idle_probe = absl::Seconds(30),  // no FETCH fills it instead
                                .resubscribe_after = absl::Milliseconds(200)});
  AppendN("orders", 0, 0, 3);
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 3; }));
  EXPECT_EQ(c->stats().resubscribes, 0u);  // idle DELIVERs keep it alive
  server_->ForgetSubscriptions();
  AppendN("orders", 0, 3, 6);
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 6; }, absl::Seconds(3)));
  ExpectInOrder(0, 6);
  EXPECT_EQ(c->stats().resubscribes, 1u);
  EXPECT_EQ(server_->counters().subscribes, 2u);
  EXPECT_EQ(c->stats().fetches_sent, 0u);
}

TEST_F(StreamTest, DuplicatedAndReorderedDeliveriesArriveOnceInOrder) {
  int n = 0;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToClient && f.header.type == p::FrameType::kDeliver) {
      switch (n++ % 3) {
        case 0: return Fault::kDelay;
        case 1: return Fault::kDuplicate;
        default: return Fault::kPass;
      }
    }
    return Fault::kPass;
  });
  auto c = Subscribe("orders", {.start = StartPosition::Earliest()});
  for (int i = 0; i < 12; ++i) {
    server_->Append("orders", 0, absl::StrCat("m", i));
    (void)conn_->Poll(absl::Milliseconds(2));
  }
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 12; }));
  ExpectInOrder(0, 12);
  EXPECT_GE(c->stats().duplicates, 1u);
}

TEST_F(StreamTest, AllPartitionsAreSubscribed) {
  auto c = Subscribe("multi", {.start = StartPosition::Earliest()});
  for (uint16_t part = 0; part < 3; ++part) AppendN("multi", part, 0, 4);
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 12; }));
  for (uint16_t part = 0; part < 3; ++part) ExpectInOrder(part, 4);
}

TEST_F(StreamTest, OnePartitionOnly) {
  auto c = Subscribe("multi", {.partition = 1, .start = StartPosition::Earliest()});
  for (uint16_t part = 0; part < 3; ++part) AppendN("multi", part, 0, 2);
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 2; }));
  (void)conn_->PollUntil([] { return false; }, absl::Milliseconds(30));
  EXPECT_EQ(SeenIn(1), 2u);
  EXPECT_EQ(seen_.size(), 2u);
}

TEST_F(StreamTest, SubscribeErrorsNameTheQueue) {
  auto c = StreamConsumer::Create(*conn_, "jobs", {});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(ErrcOf(c.status()), Errc::kWrongQueueType);
  EXPECT_TRUE(absl::StartsWith(c.status().message(), "subscribe to 'jobs': WRONG_QUEUE_TYPE"))
      << c.status();
  auto far = StreamConsumer::Create(*conn_, "orders", {.start = StartPosition::Offset(100)});
  ASSERT_FALSE(far.ok());
  EXPECT_EQ(ErrcOf(far.status()), Errc::kOffsetOutOfRange);
  EXPECT_TRUE(absl::StartsWith(far.status().message(),
                               "subscribe to 'orders' partition 0: OFFSET_OUT_OF_RANGE"))
      << far.status();
  auto none = StreamConsumer::Create(*conn_, "nope", {});
  EXPECT_EQ(ErrcOf(none.status()), Errc::kUnknownQueue);
}

TEST_F(StreamTest, UnsubscribeStopsDelivery) {
  auto c = Subscribe("orders", {.start = StartPosition::Earliest()});
  AppendN("orders", 0, 0, 2);
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 2; }));
  ASSERT_TRUE(c->Unsubscribe().ok());
  AppendN("orders", 0, 2, 4);
  (void)conn_->PollUntil([] { return false; }, absl::Milliseconds(50));
  EXPECT_EQ(seen_.size(), 2u);
}

TEST_F(StreamTest, LargeMessagesArriveInFragmentsAndAreReassembled) {
  std::string big(5000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('A' + i % 23);
  server_->Append("orders", 0, "m0");
  server_->Append("orders", 0, big);
  server_->Append("orders", 0, "m2");
  bool dropped = false;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d != Direction::kToClient || f.header.type != p::FrameType::kDeliver || dropped) {
      return Fault::kPass;
    }
    auto dv = p::DecodeDeliver(f);
    for (const p::DeliveredView& v : dv->messages) {
      if (v.message.is_fragment() && v.message.fragment_offset > 0) {
        dropped = true;  // lose one fragment: the gap is NAKed and the message re-sent
        return Fault::kDrop;
      }
    }
    return Fault::kPass;
  });
  auto c = Subscribe("orders", {.start = StartPosition::Earliest()});
  ASSERT_TRUE(PollFor([&] { return seen_.size() == 3; }));
  EXPECT_TRUE(dropped);
  EXPECT_EQ(seen_[0].payload, "m0");
  EXPECT_EQ(seen_[1].payload, big);
  EXPECT_EQ(seen_[1].offset, 1u);
  EXPECT_EQ(seen_[2].payload, "m2");
  auto q = conn_->Lookup("orders");
  auto r = Fetch(*conn_, *q, 0, StartPosition::Offset(1), 2);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_EQ(r->messages[0]->payload_view(), big);
  EXPECT_EQ(r->messages[1]->payload_view(), "m2");
}

TEST_F(StreamTest, FetchReadsARange) {
  AppendN("orders", 0, 0, 10);
  auto q = conn_->Lookup("orders");
  ASSERT_TRUE(q.ok());
  auto r = Fetch(*conn_, *q, 0, StartPosition::Offset(3), 4);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r->messages[i]->offset, 3 + i);
    EXPECT_EQ(r->messages[i]->payload_view(), absl::StrCat("m", 3 + i));
  }
  EXPECT_EQ(r->next_offset, 7u);
  EXPECT_EQ(r->high_watermark, 10u);
  auto latest = Fetch(*conn_, *q, 0, StartPosition::Latest(), 4);
  ASSERT_TRUE(latest.ok());
  EXPECT_TRUE(latest->messages.empty());
  EXPECT_EQ(latest->next_offset, 10u);
  auto bad = Fetch(*conn_, *q, 0, StartPosition::Offset(11), 4);
  EXPECT_EQ(ErrcOf(bad.status()), Errc::kOffsetOutOfRange);
  EXPECT_TRUE(absl::StartsWith(bad.status().message(),
                               "fetch from 'orders' partition 0: OFFSET_OUT_OF_RANGE"))
      << bad.status();
  auto jobs = conn_->Lookup("jobs");
  auto wrong = Fetch(*conn_, *jobs, 0, StartPosition::Earliest(), 1);
  EXPECT_EQ(ErrcOf(wrong.status()), Errc::kWrongQueueType);
}

}  // namespace
}  // namespace sluice::client::testing
