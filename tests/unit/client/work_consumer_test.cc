#include "client/work_consumer.h"

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

class WorkTest : public ClientTest {
 protected:
  void SetUp() override {
    ClientTest::SetUp();
    auto wc = WorkConsumer::Create(*conn_, "jobs");
    ASSERT_TRUE(wc.ok()) << wc.status();
    wc_ = std::move(*wc);
  }
  void Produce(int n, std::string_view queue = "jobs") {
    auto prod = Producer::Create(*conn_, queue, {.linger = absl::Milliseconds(1)});
    ASSERT_TRUE(prod.ok());
    for (int i = 0; i < n; ++i) {
      const std::string s = absl::StrCat("job", i);
      ASSERT_TRUE((*prod)->Send({.payload = AsBytes(s)}).ok());
    }
    ASSERT_TRUE((*prod)->Flush(kWait).ok());
  }
  static std::vector<Receipt> Receipts(const std::vector<OwnedMessage>& msgs) {
    std::vector<Receipt> r;
    for (const OwnedMessage& m : msgs) r.push_back(ReceiptOf(*m));
    return r;
  }
  std::unique_ptr<WorkConsumer> wc_;
};

TEST_F(WorkTest, ReceiveThenDelete) {
  Produce(3);
  auto got = wc_->ReceiveSync({.max_messages = 10});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*got)[i]->payload_view(), absl::StrCat("job", i));
    EXPECT_NE((*got)[i]->receipt, 0u);
    EXPECT_EQ((*got)[i]->receive_count, 1);
  }
  // Leased: nothing more to receive.
  auto again = wc_->ReceiveSync({.max_messages = 10});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty());
  auto results = wc_->DeleteSync(Receipts(*got));
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 3u);
  for (const absl::Status& s : *results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(server_->LiveMessages("jobs", 0), 0u);
}

TEST_F(WorkTest, DeletingTwiceIsUnknownReceipt) {
  Produce(1);
  auto got = wc_->ReceiveSync({.max_messages = 1});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  const std::vector<Receipt> r = Receipts(*got);
  ASSERT_TRUE(wc_->DeleteSync(r).ok());
  auto results = wc_->DeleteSync(r);
  ASSERT_TRUE(results.ok());
  const absl::Status& s = (*results)[0];
  EXPECT_EQ(ErrcOf(s), Errc::kUnknownReceipt);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StartsWith(s.message(), absl::StrCat("delete from 'jobs' partition 0 receipt ",
                                                         FormatReceipt(r[0]), ": UNKNOWN_RECEIPT")))
      << s;
}

TEST_F(WorkTest, ExpiredLeaseMakesTheOldReceiptStale) {
  Produce(1);
  auto first = wc_->ReceiveSync({.max_messages = 1, .visibility = absl::Milliseconds(30)});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  // Long poll until the lease expires and the message is handed out again.
  auto second = wc_->ReceiveSync({.max_messages = 1, .wait = absl::Seconds(2)});
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->size(), 1u);
  EXPECT_EQ((*second)[0]->offset, (*first)[0]->offset);
  EXPECT_EQ((*second)[0]->receive_count, 2);
  EXPECT_NE((*second)[0]->receipt, (*first)[0]->receipt);
  auto stale = wc_->DeleteSync(Receipts(*first));
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(ErrcOf((*stale)[0]), Errc::kStaleReceipt);
  EXPECT_TRUE(absl::StrContains((*stale)[0].message(),
                                "STALE_RECEIPT: the lease expired and the message was handed to "
                                "another receiver"))
      << (*stale)[0];
  auto fresh = wc_->DeleteSync(Receipts(*second));
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE((*fresh)[0].ok()) << (*fresh)[0];
}

TEST_F(WorkTest, NackGivesTheMessageBack) {
  Produce(1);
  auto got = wc_->ReceiveSync({.max_messages = 1});
  ASSERT_TRUE(got.ok());
  auto nacked = wc_->NackSync(Receipts(*got), absl::ZeroDuration());
  ASSERT_TRUE(nacked.ok());
  EXPECT_TRUE((*nacked)[0].ok());
  auto again = wc_->ReceiveSync({.max_messages = 1});
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0]->receive_count, 2);
}

TEST_F(WorkTest, DelayedNackHidesTheMessageForAWhile) {
  Produce(1);
  auto got = wc_->ReceiveSync({.max_messages = 1});
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(wc_->NackSync(Receipts(*got), absl::Milliseconds(100)).ok());
  auto now = wc_->ReceiveSync({.max_messages = 1});
  ASSERT_TRUE(now.ok());
  EXPECT_TRUE(now->empty());
  auto later = wc_->ReceiveSync({.max_messages = 1, .wait = absl::Seconds(2)});
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->size(), 1u);
}

TEST_F(WorkTest, ExtendKeepsTheLease) {
  Produce(1);
  auto got = wc_->ReceiveSync({.max_messages = 1, .visibility = absl::Milliseconds(50)});
  ASSERT_TRUE(got.ok());
  auto ext = wc_->ExtendSync(Receipts(*got), absl::Seconds(10));
  ASSERT_TRUE(ext.ok());
  EXPECT_TRUE((*ext)[0].ok()) << (*ext)[0];
  // Past the original 50 ms the message stays leased.
  auto none = wc_->ReceiveSync({.max_messages = 1, .wait = absl::Milliseconds(150)});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto del = wc_->DeleteSync(Receipts(*got));
  EXPECT_TRUE((*del)[0].ok());
}

TEST_F(WorkTest, LongPollAnswersWhenAMessageArrives) {
  bool done = false;
  std::vector<std::string> payloads;
  wc_->Receive({.max_messages = 5, .wait = absl::Seconds(3)},
               [&](const absl::Status& s, std::span<const ReceivedMessage> msgs, bool last) {
                 EXPECT_TRUE(s.ok()) << s;
                 for (const ReceivedMessage& m : msgs) payloads.emplace_back(m.payload_view());
                 done = last;
               });
  (void)conn_->PollUntil([] { return false; }, absl::Milliseconds(30));
  EXPECT_FALSE(done);  // parked on the server
  server_->Append("jobs", 0, "late");
  ASSERT_TRUE(PollFor([&] { return done; }));
  EXPECT_EQ(payloads, std::vector<std::string>{"late"});
  EXPECT_EQ(wc_->outstanding(), 0u);
}

TEST_F(WorkTest, ReplySpreadOverSeveralDatagrams) {
  ConnectionOptions o = Options();
  o.max_frame_bytes = 512;
  conn_ = ConnectOrDie(o);
  auto wc = WorkConsumer::Create(*conn_, "jobs");
  ASSERT_TRUE(wc.ok());
  const std::string body(150, 'b');
  for (int i = 0; i < 20; ++i) server_->Append("jobs", 0, body);
  auto got = (*wc)->ReceiveSync({.max_messages = 20});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), 20u);
  // Many receipts: the DELETE is split over several frames too.
  auto results = (*wc)->DeleteSync(Receipts(*got));
  ASSERT_TRUE(results.ok());
  ASSERT_EQ(results->size(), 20u);
  for (const absl::Status& s : *results) EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(server_->LiveMessages("jobs", 0), 0u);
}

TEST_F(WorkTest, ManyReceiptsSplitAcrossFrames) {
  Produce(100);
  auto got = wc_->ReceiveSync({.max_messages = 100});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 100u);
  std::vector<Receipt> r = Receipts(*got);
  r.push_back(Receipt{0, 0xFFFFFFFFull});  // one bogus receipt among them
  auto results = wc_->DeleteSync(r);
  ASSERT_TRUE(results.ok());
  ASSERT_EQ(results->size(), 101u);
  for (size_t i = 0; i < 100; ++i) EXPECT_TRUE((*results)[i].ok()) << i << (*results)[i];
  EXPECT_EQ(ErrcOf((*results)[100]), Errc::kUnknownReceipt);
}

TEST_F(WorkTest, ReceiveFromAnyPartition) {
  auto wc = WorkConsumer::Create(*conn_, "jobs3");
  ASSERT_TRUE(wc.ok());
  for (uint16_t part = 0; part < 3; ++part) server_->Append("jobs3", part, absl::StrCat("p", part));
  auto got = (*wc)->ReceiveSync({.max_messages = 10});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 3u);
  auto one = (*wc)->ReceiveSync({.max_messages = 10, .partition = 2});
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(one->empty());  // all leased already
  auto results = (*wc)->DeleteSync(Receipts(*got));
  for (const absl::Status& s : *results) EXPECT_TRUE(s.ok()) << s;
}

TEST_F(WorkTest, LostReplyIsRetransmittedAndTheLeaseComesBack) {
  Produce(1);
  bool dropped = false;
  server_->SetFaultHook([&](Direction d, const p::FrameView& f) {
    if (d == Direction::kToClient && f.header.type == p::FrameType::kMessages && !dropped) {
      dropped = true;
      return Fault::kDrop;
    }
    return Fault::kPass;
  });
  // The first reply (leasing the message for 100 ms) is lost; the retransmitted RECEIVE long
  // polls until that lease expires and gets the message again: at-least-once.
  auto got = wc_->ReceiveSync({.max_messages = 1, .visibility = absl::Milliseconds(100),
                               .wait = absl::Seconds(1)});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0]->receive_count, 2);
  EXPECT_TRUE(dropped);
}

TEST_F(WorkTest, LargeMessageIsReassembledWithItsReceipt) {
  const std::string big(4000, 'z');
  server_->Append("jobs", 0, big);
  server_->Append("jobs", 0, "small");
  auto got = wc_->ReceiveSync({.max_messages = 10});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0]->payload_view(), big);
  EXPECT_EQ((*got)[1]->payload_view(), "small");
  auto results = wc_->DeleteSync(Receipts(*got));
  ASSERT_TRUE(results.ok());
  for (const absl::Status& s : *results) EXPECT_TRUE(s.ok()) << s;
}

TEST_F(WorkTest, WrongQueueType) {
  auto wc = WorkConsumer::Create(*conn_, "orders");
  ASSERT_FALSE(wc.ok());
  EXPECT_EQ(ErrcOf(wc.status()), Errc::kWrongQueueType);
  EXPECT_TRUE(absl::StartsWith(wc.status().message(), "receive from 'orders': WRONG_QUEUE_TYPE"))
      << wc.status();
}

}  // namespace
}  // namespace sluice::client::testing
