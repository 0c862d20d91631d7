// The request frontend without DPDK: frames in, reply frames out through a fake ReplyChannel.
#include "dataplane/frontend.h"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <map>
#include <string>
#include <vector>

#include "hwconf/layout.h"
#include "tests/unit/dataplane/fake_reply_channel.h"
#include "protocol/codec.h"

namespace sluice::dataplane {
namespace {
namespace p = protocol;

class FrontendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    layout_.shards = 1;
    hwconf::Lcore lc;
    lc.id = 1;
    lc.shards = {0};
    layout_.lcores = {lc};
    hwconf::QueueDecl stream;
    stream.name = "events";
    stream.type = hwconf::QueueType::kStream;
    stream.partitions = 2;
    hwconf::QueueDecl work;
    work.name = "jobs";
    work.type = hwconf::QueueType::kWork;
    work.partitions = 1;
    work.visibility_timeout_ms = 1000;
    work.max_receive_count = 2;
    work.dead_letter_queue = "dlq";
    hwconf::QueueDecl dlq;
    dlq.name = "dlq";
    dlq.type = hwconf::QueueType::kWork;
    dlq.partitions = 1;
    layout_.queues = {stream, work, dlq};
    table_ = std::move(*QueueTable::Build(layout_));
    const std::array<uint32_t, 1> shards{0};
    frontend_ = std::make_unique<Frontend>(*table_, 0, shards, channel_);
  }

  // Feeds one encoded frame as if received from the wire by this worker.
  void Feed(std::span<const std::byte> bytes, uint64_t now_ns = 1'000'000) {
    auto f = p::DecodeFrame(bytes);
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(p::ValidateFrame(*f), p::DecodeError::kOk);
    RouteContext route;
    route.receiver = true;
    frontend_->OnFrame(*f, Endpoint{42, 7}, route, now_ns);
  }

  std::vector<std::byte> Produce(uint32_t queue, uint64_t producer,
                                 const std::vector<p::MessageSpec>& msgs) {
    std::vector<std::byte> buf(65536);
    p::FrameWriter w(buf);
    EXPECT_EQ(w.BeginProduce({1, 100, 0}, queue, producer), p::EncodeError::kOk);
    for (const auto& m : msgs) EXPECT_EQ(w.AddMessage(m), p::EncodeError::kOk);
    auto n = w.Finish();
    buf.resize(*n);
    return buf;
  }

  std::vector<p::AckRange> Acks() {
    std::vector<p::AckRange> out;
    for (auto& s : channel_.sent) {
      auto f = p::DecodeFrame(s);
      if (!f || f->header.type != p::FrameType::kAck) continue;
      auto a = p::DecodeAck(*f);
      for (p::AckRange r : a->ranges) out.push_back(r);
    }
    return out;
  }

  hwconf::Layout layout_;
  std::unique_ptr<const QueueTable> table_;
  FakeReplyChannel channel_;
  std::unique_ptr<Frontend> frontend_;
};

std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// dataplane.shard_memory_mb sizes each shard's chunk pool; never below 16 chunks, whose size
// follows the largest message.
TEST(EngineShardConfigTest, TheLayoutsShardMemorySizesThePool) {
  EXPECT_EQ(EngineShardConfig(0).pool_chunks, 256u);  // 64 MiB of 256 KiB chunks
  EXPECT_EQ(EngineShardConfig(0, 16).pool_chunks, 64u);
  EXPECT_EQ(EngineShardConfig(0, 4).pool_chunks, 16u);
  const shard::ShardConfig large = EngineShardConfig(1 << 20, 16);
  EXPECT_EQ(large.chunk_bytes, 4u << 20);
  EXPECT_EQ(large.pool_chunks, 16u);  // the floor: 64 MiB, not 16
}

TEST_F(FrontendTest, ProduceIsAckedOnlyAfterServiceAndRetransmitIsDuplicate) {
  std::string a = "alpha", b = "beta";
  p::MessageSpec m1, m2;
  m1.partition = m2.partition = 1;
  m1.sequence = 0;
  m2.sequence = 1;
  m1.payload = Bytes(a);
  m2.payload = Bytes(b);
  auto frame = Produce(1, 9, {m1, m2});
  Feed(frame);
  EXPECT_TRUE(Acks().empty()) << "acked before the batch was durable";
  frontend_->Service(2'000'000);
  auto acks = Acks();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].errc, Errc::kOk);
  EXPECT_EQ(acks[0].count, 2u);
  EXPECT_EQ(acks[0].first_offset, 0u);
  channel_.sent.clear();
  Feed(frame);  // retransmission
  frontend_->Service(3'000'000);
  acks = Acks();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].errc, Errc::kDuplicate);
  EXPECT_EQ(acks[0].first_offset, 0u);
  EXPECT_EQ(frontend_->counters().produced, 2u);
}

// Content dedup through the worker's produce path (records read in place: RecordRef::payload),
// live from a new table; a dead letter handed over by another worker is never deduplicated by it.
TEST_F(FrontendTest, ContentDedupByThePayloadOfRecordsReadInPlace) {
  std::vector<QueueInfo> queues = table_->queues();
  queues[1].config.dedup_window_ms = 60'000;  // jobs
  queues[1].config.content_dedup = true;
  auto next = QueueTable::Build(layout_, queues, 2);
  ASSERT_TRUE(next.ok()) << next.status();
  frontend_->SetTable(**next);
  table_ = std::move(*next);
  std::string body = "same body", other = "other";
  std::vector<p::MessageSpec> msgs(3);
  for (int i = 0; i < 3; ++i) {
    msgs[i].partition = 0;
    msgs[i].sequence = static_cast<uint64_t>(i);
    msgs[i].payload = Bytes(i == 1 ? other : body);
  }
  Feed(Produce(2, 4, msgs));
  frontend_->Service(2'000'000);
  uint32_t ok = 0, dup = 0;
  for (const p::AckRange& a : Acks()) {
    if (a.errc == Errc::kOk) ok += a.count;
    if (a.errc == Errc::kDuplicate) {
      ++dup;
      EXPECT_EQ(a.first_offset, 0u);
    }
  }
  EXPECT_EQ(ok, 2u);
  EXPECT_EQ(dup, 1u);
  EXPECT_EQ(frontend_->counters().produced, 2u);
  // The same body as an internal hand-off (address 0, no reply): appended.
  msgs.resize(1);
  auto frame = Produce(2, 0, msgs);
  auto f = p::DecodeFrame(frame);
  ASSERT_TRUE(f.has_value());
  RouteContext route;
  route.receiver = true;
  frontend_->OnFrame(*f, kInternalEndpoint, route, 3'000'000);
  frontend_->Service(3'000'000);
  EXPECT_EQ(frontend_->counters().produced, 3u);
}

TEST_F(FrontendTest, UnknownPartitionIsAnsweredByTheReceiver) {
  std::string a = "x";
  p::MessageSpec m;
  m.partition = 5;
  m.payload = Bytes(a);
  Feed(Produce(1, 0, {m}));
  auto acks = Acks();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].errc, Errc::kUnknownPartition);
}

TEST_F(FrontendTest, FragmentedMessageIsReassembledAndDeliveredInFragments) {
  std::string big(5000, 'q');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  p::MessageSpec whole;
  whole.partition = 0;
  whole.sequence = 0;
  whole.key = "k";
  whole.payload = Bytes(big);
  p::Fragmenter fr(whole, p::RecordBudget(1472, false));
  ASSERT_TRUE(fr.needed());
  std::vector<std::vector<std::byte>> frames;
  for (p::MessageSpec frag; fr.Next(&frag);) frames.push_back(Produce(1, 3, {frag}));
  // Out of order, with one fragment repeated.
  std::swap(frames.front(), frames.back());
  frames.push_back(frames[1]);
  for (auto& f : frames) Feed(f);
  frontend_->Service(2'000'000);
  auto acks = Acks();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].errc, Errc::kOk);
  EXPECT_EQ(acks[0].count, 1u);

  // Fetch it back: it comes as fragments whose payloads rebuild the original.
  channel_.sent.clear();
  std::vector<std::byte> buf(256);
  p::FetchRequest req;
  req.queue_id = 1;
  req.partition = 0;
  req.start_kind = p::StartKind::kEarliest;
  req.max_messages = 10;
  auto n = p::EncodeFetch(buf, {1, 5, 0}, req);
  buf.resize(*n);
  Feed(buf);
  std::string rebuilt(big.size(), '\0');
  size_t got = 0;
  for (auto& s : channel_.sent) {
    auto f = p::DecodeFrame(s);
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(f->header.type, p::FrameType::kMessages);
    auto mv = p::DecodeMessages(*f);
    ASSERT_TRUE(mv.has_value());
    for (const auto& d : mv->messages) {
      ASSERT_TRUE(d.message.is_fragment());
      EXPECT_EQ(d.meta.offset, 0u);
      std::memcpy(rebuilt.data() + d.message.fragment_offset, d.message.payload.data(),
                  d.message.payload.size());
      got += d.message.payload.size();
    }
  }
  EXPECT_EQ(got, big.size());
  EXPECT_EQ(rebuilt, big);
}

// A FETCH the engine refuses (here past the end) is answered with an ERROR and leaves no reply
// frame counted as open: the pass's CloseAll, and the next request's ACK, still work (the
// refused frame was once released without its count, which CloseAll then asserted on).
TEST_F(FrontendTest, RefusedFetchLeavesNoFrameOpen) {
  std::vector<std::byte> buf(256);
  p::FetchRequest req;
  req.queue_id = 1;
  req.partition = 0;
  req.start_kind = p::StartKind::kOffset;
  req.start_value = 1000;  // the partition is empty
  req.max_messages = 10;
  auto n = p::EncodeFetch(buf, {1, 5, 0}, req);
  buf.resize(*n);
  Feed(buf);
  frontend_->Service(2'000'000);
  ASSERT_EQ(channel_.sent.size(), 1u);
  auto f = p::DecodeFrame(channel_.sent[0]);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->header.type, p::FrameType::kError);
  EXPECT_EQ(p::DecodeErrorFrame(*f)->errc, Errc::kOffsetOutOfRange);

  channel_.sent.clear();
  const std::string after = "after";  // outlives the spec that points into it
  p::MessageSpec m;
  m.partition = 0;
  m.sequence = 0;
  m.payload = Bytes(after);
  Feed(Produce(1, 3, {m}));
  frontend_->Service(3'000'000);
  auto acks = Acks();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].errc, Errc::kOk);
}

TEST_F(FrontendTest, ReceiveDeleteAndStaleReceipt) {
  std::string a = "job";
  p::MessageSpec m;
  m.partition = 0;
  m.payload = Bytes(a);
  Feed(Produce(2, 0, {m}));
  frontend_->Service(2'000'000);
  channel_.sent.clear();

  std::vector<std::byte> buf(256);
  p::ReceiveRequest rr;
  rr.queue_id = 2;
  rr.max_messages = 1;
  rr.visibility_ms = 10;
  auto n = p::EncodeReceive(buf, {1, 6, 0}, rr);
  buf.resize(*n);
  RouteContext route;
  route.receiver = true;
  route.any_partition = 0;
  auto f = p::DecodeFrame(buf);
  frontend_->OnFrame(*f, Endpoint{42, 7}, route, 3'000'000);
  ASSERT_EQ(channel_.sent.size(), 1u);
  auto reply = p::DecodeFrame(channel_.sent[0]);
  auto msgs = p::DecodeMessages(*reply);
  ASSERT_EQ(msgs->messages.size(), 1u);
  const uint64_t receipt = (*msgs->messages.begin()).meta.receipt;

  // Let the lease expire and re-lease: the first receipt is now stale.
  frontend_->Service(3'000'000 + 50'000'000);
  channel_.sent.clear();
  frontend_->OnFrame(*f, Endpoint{42, 7}, route, 60'000'000);
  ASSERT_EQ(channel_.sent.size(), 1u);
  auto reply2 = p::DecodeFrame(channel_.sent[0]);
  auto msgs2 = p::DecodeMessages(*reply2);
  ASSERT_EQ(msgs2->messages.size(), 1u);
  EXPECT_EQ((*msgs2->messages.begin()).meta.receive_count, 2);
  const uint64_t receipt2 = (*msgs2->messages.begin()).meta.receipt;

  channel_.sent.clear();
  std::vector<std::byte> del(256);
  p::FrameWriter w(del);
  w.BeginReceiptOps(p::FrameType::kDelete, {1, 7, 0});
  w.AddReceiptOp({2, 0, receipt, 0});
  w.AddReceiptOp({2, 0, receipt2, 0});
  auto dn = w.Finish();
  del.resize(*dn);
  Feed(del, 61'000'000);
  ASSERT_EQ(channel_.sent.size(), 1u);
  auto res = p::DecodeFrame(channel_.sent[0]);
  auto items = p::DecodeResultFrame(*res);
  ASSERT_EQ(items->items.size(), 2u);
  EXPECT_EQ(items->items[0].errc, Errc::kStaleReceipt);
  EXPECT_EQ(items->items[1].errc, Errc::kOk);
}

TEST_F(FrontendTest, SubscribeGetsResultThenPushesWithinCredits) {
  std::vector<std::byte> buf(256);
  p::SubscribeRequest sr;
  sr.subscription_id = 77;
  sr.queue_id = 1;
  sr.partition = 1;
  sr.start_kind = p::StartKind::kEarliest;
  sr.initial_credits = 2;
  auto n = p::EncodeSubscribe(buf, {1, 8, 0}, sr);
  buf.resize(*n);
  Feed(buf);
  ASSERT_EQ(channel_.sent.size(), 1u);
  auto res = p::DecodeFrame(channel_.sent[0]);
  ASSERT_EQ(res->header.type, p::FrameType::kResult);
  channel_.sent.clear();

  std::string payload = "m";
  std::vector<p::MessageSpec> msgs(5);
  for (int i = 0; i < 5; ++i) {
    msgs[i].partition = 1;
    msgs[i].payload = Bytes(payload);
  }
  Feed(Produce(1, 0, msgs));
  frontend_->Service(2'000'000);
  uint32_t delivered = 0;
  for (auto& s : channel_.sent) {
    auto f = p::DecodeFrame(s);
    if (f->header.type != p::FrameType::kDeliver) continue;
    auto dv = p::DecodeDeliver(*f);
    delivered += dv->messages.size();
  }
  EXPECT_EQ(delivered, 2u) << "pushed beyond the credit window";

  channel_.sent.clear();
  std::vector<std::byte> cb(256);
  auto cn = p::EncodeCredit(cb, {1, 9, 0}, p::CreditGrant{77, 1, 10, 2});
  cb.resize(*cn);
  Feed(cb);
  frontend_->Service(3'000'000);
  delivered = 0;
  uint64_t first = UINT64_MAX;
  for (auto& s : channel_.sent) {
    auto f = p::DecodeFrame(s);
    if (f->header.type != p::FrameType::kDeliver) continue;
    auto dv = p::DecodeDeliver(*f);
    for (const auto& d : dv->messages) {
      first = std::min(first, d.meta.offset);
      ++delivered;
    }
  }
  EXPECT_EQ(delivered, 3u);
  EXPECT_EQ(first, 2u);
}

TEST_F(FrontendTest, MessagePastMaxReceiveCountMovesToTheDeadLetterQueue) {
  std::string a = "poison";
  p::MessageSpec m;
  m.partition = 0;
  m.payload = Bytes(a);
  m.key = "k1";
  m.correlation_id = "c-9";
  m.priority = 3;
  const p::Header app[] = {{"app", "yes"}};
  m.headers = app;
  Feed(Produce(2, 0, {m}));
  frontend_->Service(1'000'000);
  auto receive = [&](uint32_t queue, uint64_t now_ns) {
    frontend_->Service(now_ns);  // timers first: lease expiries due by now
    channel_.sent.clear();
    std::vector<std::byte> buf(256);
    p::ReceiveRequest rr;
    rr.queue_id = queue;
    rr.partition = 0;
    rr.max_messages = 1;
    rr.visibility_ms = 10;
    auto n = p::EncodeReceive(buf, {1, 6, 0}, rr);
    buf.resize(*n);
    Feed(buf, now_ns);
    frontend_->Service(now_ns);
    auto reply = p::DecodeFrame(channel_.sent.at(0));
    auto msgs = p::DecodeMessages(*reply);
    return msgs->messages.size();
  };
  EXPECT_EQ(receive(2, 2'000'000), 1u);
  EXPECT_EQ(receive(2, 100'000'000), 1u);   // lease expired: second receive
  EXPECT_EQ(receive(2, 200'000'000), 0u);   // past max_receive_count: gone from "jobs"
  frontend_->Service(210'000'000);          // seal + durable in the dead-letter queue
  EXPECT_EQ(frontend_->counters().dead_lettered, 1u);
  EXPECT_EQ(receive(3, 220'000'000), 1u);   // ... and waiting in "dlq"
  EXPECT_TRUE(channel_.handed_off.empty()) << "one worker: the DLQ is local";
  // With its original attributes and where it came from and why.
  auto reply = p::DecodeFrame(channel_.sent.at(0));
  auto msgs = p::DecodeMessages(*reply);
  const p::DeliveredView dv = msgs->messages.front();
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(dv.message.payload.data()),
                             dv.message.payload.size()),
            "poison");
  EXPECT_EQ(dv.message.key, "k1");
  EXPECT_EQ(dv.message.correlation_id, "c-9");
  EXPECT_EQ(dv.message.priority, 3);
  std::map<std::string, std::string> h;
  for (const p::Header& x : dv.message.headers) h[std::string(x.key)] = std::string(x.value);
  EXPECT_EQ(h["app"], "yes");
  EXPECT_EQ(h["sluice-dlq-reason"], "max_receive_count");
  EXPECT_EQ(h["sluice-dlq-last-lease"], "expired");
  EXPECT_EQ(h["sluice-dlq-source-queue"], "jobs");
  EXPECT_EQ(h["sluice-dlq-source-partition"], "0");
  EXPECT_EQ(h["sluice-dlq-source-offset"], "0");
  EXPECT_EQ(h["sluice-dlq-receive-count"], "2");
}

}  // namespace
}  // namespace sluice::dataplane

namespace sluice::dataplane {
namespace {

// A new table (a queue added, one purged) changes nothing for the subscriptions, acks and
// credits of the queues that stay.
TEST_F(FrontendTest, SetTableKeepsOtherQueuesRunning) {
  std::vector<std::byte> buf(256);
  p::SubscribeRequest sr;
  sr.subscription_id = 77;
  sr.queue_id = 1;
  sr.partition = 1;
  sr.start_kind = p::StartKind::kEarliest;
  sr.initial_credits = 2;
  buf.resize(*p::EncodeSubscribe(buf, {1, 8, 0}, sr));
  Feed(buf);
  std::string payload = "m";
  std::vector<p::MessageSpec> msgs(5);
  for (int i = 0; i < 5; ++i) {
    msgs[i].partition = 1;
    msgs[i].sequence = static_cast<uint64_t>(i);
    msgs[i].payload = Bytes(payload);
  }
  Feed(Produce(1, 5, msgs));
  frontend_->Service(2'000'000);
  channel_.sent.clear();

  std::vector<QueueInfo> queues = table_->queues();
  QueueInfo extra;
  extra.id = 9;
  extra.name = "extra";
  extra.config.type = shard::QueueType::kWork;
  extra.partition_shard.resize(2);
  queues.push_back(extra);
  queues[2].purge_generation = 1;  // dlq
  auto next = QueueTable::Build(layout_, queues, 2);
  ASSERT_TRUE(next.ok()) << next.status();
  frontend_->SetTable(**next);
  table_.reset();  // the previous table is gone, as RCU frees it: the frontend must not read it

  std::vector<std::byte> cb(256);
  cb.resize(*p::EncodeCredit(cb, {1, 9, 0}, p::CreditGrant{77, 1, 10, 2}));
  Feed(cb);
  for (int i = 0; i < 5; ++i) msgs[i].sequence = 5 + static_cast<uint64_t>(i);
  Feed(Produce(1, 5, msgs));
  frontend_->Service(3'000'000);
  uint32_t delivered = 0;
  for (auto& s : channel_.sent) {
    auto f = p::DecodeFrame(s);
    if (f->header.type != p::FrameType::kDeliver) continue;
    delivered += p::DecodeDeliver(*f)->messages.size();
  }
  EXPECT_EQ(delivered, 8u) << "the subscription stalled after SetTable";
  uint32_t acked = 0;
  for (const p::AckRange& a : Acks()) {
    if (a.errc == Errc::kOk) acked += a.count;
  }
  EXPECT_EQ(acked, 5u);
  table_ = std::move(*next);
}

}  // namespace
}  // namespace sluice::dataplane
