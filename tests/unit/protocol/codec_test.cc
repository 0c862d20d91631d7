// FrameWriter behaviour, the amplification rule, auth tags, and the worked example of
// docs/protocol.md (byte for byte: if this test changes, change the spec).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/codec.h"
#include "protocol/crc32c.h"
#include "tests/unit/protocol/random_frames.h"

namespace sluice::protocol {
namespace {

std::vector<std::byte> FromHex(std::string_view hex) {
  std::vector<std::byte> out;
  int hi = -1;
  for (char c : hex) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::byte>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

std::span<const std::byte> AsBytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// docs/protocol.md §Worked example.
constexpr std::string_view kProduceHex =
    "53 4c 43 45 01 01 00 00 67 00 00 00 01 00 00 00"
    "88 77 66 55 44 33 22 11 01 00 00 00 00 00 00 00"
    "07 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00"
    "37 00 00 00 ff ff 00 00 00 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
    "06 00 00 00 00 00 00 00 05 00 00 00 75 73 65 72"
    "2d 31 68 65 6c 6c 6f";
constexpr std::string_view kAckHex =
    "53 4c 43 45 01 02 00 00 48 00 00 00 01 00 00 00"
    "88 77 66 55 44 33 22 11 01 00 00 00 00 00 00 00"
    "07 00 00 00 00 00 00 00 2a 00 00 00 00 00 00 00"
    "04 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00"
    "e8 03 00 00 00 00 00 00";
constexpr FrameIds kExampleIds{0x1122334455667788ull, 1, 0};

TEST(WorkedExample, ProduceBytes) {
  std::vector<std::byte> buf(kDefaultFrameBytes);
  FrameWriter w(buf);
  ASSERT_EQ(w.BeginProduce(kExampleIds, 7, 42), EncodeError::kOk);
  MessageSpec m;
  m.key = "user-1";
  m.payload = AsBytes("hello");
  ASSERT_EQ(w.AddMessage(m), EncodeError::kOk);
  auto n = w.Finish();
  ASSERT_TRUE(n.has_value());
  auto want = FromHex(kProduceHex);
  ASSERT_EQ(*n, want.size());
  EXPECT_TRUE(std::equal(want.begin(), want.end(), buf.begin()));

  auto f = DecodeFrame(want);
  ASSERT_TRUE(f.has_value());
  auto p = DecodeProduce(*f);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->queue_id, 7u);
  EXPECT_EQ(p->producer_id, 42u);
  ASSERT_EQ(p->messages.size(), 1u);
  const MessageView v = p->messages.front();
  EXPECT_EQ(v.partition, kAnyPartition);
  EXPECT_EQ(v.key, "user-1");
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(v.payload.data()), v.payload.size()),
            "hello");
  // With 8 partitions the server routes it to CRC32C("user-1") % 8 == 4.
  EXPECT_EQ(PartitionForKey(v.key, 8), 4);
}

TEST(WorkedExample, AckBytes) {
  std::vector<std::byte> buf(kDefaultFrameBytes);
  FrameWriter w(buf);
  ASSERT_EQ(w.BeginAck(kExampleIds, 7, 42), EncodeError::kOk);
  ASSERT_EQ(w.AddAckRange({4, Errc::kOk, 1, 0, 1000}), EncodeError::kOk);
  auto n = w.Finish();
  ASSERT_TRUE(n.has_value());
  auto want = FromHex(kAckHex);
  ASSERT_EQ(*n, want.size());
  EXPECT_TRUE(std::equal(want.begin(), want.end(), buf.begin()));
  EXPECT_LE(want.size(), FromHex(kProduceHex).size());  // amplification rule
}

TEST(Receive, WaitQueueDefaultIsItsOwnValue) {
  // wait_ms 0xFFFFFFFF names the queue's receive_wait_ms; 0 still means "answer at once", and
  // anything else above 60 s is still refused.
  std::vector<std::byte> buf(128);
  ReceiveRequest r;
  r.queue_id = 7;
  r.wait_ms = kQueueDefaultWait;
  auto n = EncodeReceive(buf, FrameIds{1, 2}, r);
  ASSERT_TRUE(n.has_value());
  auto f = DecodeFrame(std::span<const std::byte>(buf.data(), *n));
  ASSERT_TRUE(f.has_value());
  auto back = DecodeReceive(*f);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->wait_ms, kQueueDefaultWait);
  r.wait_ms = kMaxWaitMs + 1;
  EXPECT_FALSE(EncodeReceive(buf, FrameIds{1, 2}, r).has_value());
}

TEST(FrameWriter, NoSpaceLeavesFrameIntact) {
  std::vector<std::byte> buf(200);
  FrameWriter w(buf);
  ASSERT_EQ(w.BeginProduce({1, 2, 0}, 3, 4), EncodeError::kOk);
  std::vector<std::byte> pay(60);
  MessageSpec m;
  m.payload = pay;  // record = 104 bytes; 200 - 48 = 152 free: one fits, not two
  EXPECT_EQ(w.AddMessage(m), EncodeError::kOk);
  const size_t before = w.size();
  EXPECT_EQ(w.AddMessage(m), EncodeError::kNoSpace);
  EXPECT_EQ(w.size(), before);
  EXPECT_EQ(w.count(), 1u);
  auto n = w.Finish();
  ASSERT_TRUE(n.has_value());
  auto f = DecodeFrame(std::span<const std::byte>(buf).first(*n));
  ASSERT_TRUE(f.has_value());
  auto p = DecodeProduce(*f);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->messages.size(), 1u);
}

TEST(FrameWriter, BufferTooSmallForHeader) {
  std::vector<std::byte> buf(40);
  FrameWriter w(buf);
  EXPECT_EQ(w.BeginProduce({}, 1, 1), EncodeError::kNoSpace);
  EXPECT_FALSE(w.in_frame());
  std::vector<std::byte> small(31);
  EXPECT_EQ(EncodeHeartbeat(small, {}, {}).error(), EncodeError::kNoSpace);
}

TEST(FrameWriter, CapsAtMaxFrame) {
  std::vector<std::byte> buf(100000);
  FrameWriter w(buf);
  ASSERT_EQ(w.BeginAck({}, 1, 1), EncodeError::kOk);
  int n = 0;
  while (w.AddAckRange({0, Errc::kOk, 1, 0, 0}) == EncodeError::kOk) ++n;
  EXPECT_EQ(n, static_cast<int>((kMaxFrameBytes - kHeaderBytes - kAckPrefixBytes) / kAckRangeBytes));
  auto len = w.Finish();
  ASSERT_TRUE(len.has_value());
  EXPECT_LE(*len, kMaxFrameBytes);
}

TEST(FrameWriter, RejectsBadValues) {
  std::vector<std::byte> buf(kDefaultFrameBytes);
  FrameWriter w(buf);
  EXPECT_EQ(w.BeginProduce({0, 0, 0x0100}, 1, 1), EncodeError::kBadValue);  // unknown flag
  ASSERT_EQ(w.BeginProduce({}, 1, 1), EncodeError::kOk);
  std::string key(kMaxKeyBytes + 1, 'k');
  MessageSpec m;
  m.key = key;
  EXPECT_EQ(w.AddMessage(m), EncodeError::kFieldTooLong);
  m = MessageSpec{};
  m.priority = kMaxPriority + 1;
  EXPECT_EQ(w.AddMessage(m), EncodeError::kBadValue);
  m = MessageSpec{};
  std::string long_id(256, 'x');
  m.dedup_id = long_id;
  EXPECT_EQ(w.AddMessage(m), EncodeError::kFieldTooLong);
  EXPECT_EQ(w.count(), 0u);
  ASSERT_EQ(w.BeginReceiptOps(FrameType::kDelete, {}), EncodeError::kOk);
  EXPECT_EQ(w.AddReceiptOp({1, 0, 5, 10}), EncodeError::kBadValue);  // DELETE has no ms
  EXPECT_EQ(w.AddReceiptOp({1, 0, 0, 0}), EncodeError::kBadValue);   // receipt 0
  EXPECT_EQ(w.BeginResult({}, FrameType::kProduce), EncodeError::kBadValue);
  EXPECT_EQ(EncodeLookup(buf, {}, LookupRequest{""}).error(), EncodeError::kBadValue);
  EXPECT_EQ(EncodeFetch(buf, {}, FetchRequest{1, 0, StartKind::kCommitted, 0, 1, 0, 0}).error(),
            EncodeError::kBadValue);
}

TEST(FrameWriter, AuthTagReservedAndZeroed) {
  std::vector<std::byte> buf(kDefaultFrameBytes, std::byte{0xAB});
  FrameWriter w(buf);
  ASSERT_EQ(w.BeginProduce({1, 2, kFlagAuth}, 3, 4), EncodeError::kOk);
  ASSERT_EQ(w.AddMessage(MessageSpec{}), EncodeError::kOk);
  auto n = w.Finish();
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, kHeaderBytes + kProducePrefixBytes + kMessageFixedBytes + kAuthTagBytes);
  auto frame = std::span<std::byte>(buf).first(*n);
  for (std::byte b : AuthTagOf(frame)) EXPECT_EQ(b, std::byte{0});
  AuthTagOf(frame)[0] = std::byte{0x5A};  // the caller's MAC goes here
  auto f = DecodeFrame(frame);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->auth_tag.size(), kAuthTagBytes);
  EXPECT_EQ(f->auth_tag[0], std::byte{0x5A});
  EXPECT_EQ(f->authenticated.size(), *n - kAuthTagBytes);
  EXPECT_EQ(f->body.size(), kProducePrefixBytes + kMessageFixedBytes);
  EXPECT_TRUE(DecodeProduce(*f).has_value());
  // A full buffer keeps room for the tag.
  std::vector<std::byte> tight(kHeaderBytes + kProducePrefixBytes + kMessageFixedBytes + kAuthTagBytes - 1);
  FrameWriter t(tight);
  ASSERT_EQ(t.BeginProduce({1, 2, kFlagAuth}, 3, 4), EncodeError::kOk);
  EXPECT_EQ(t.AddMessage(MessageSpec{}), EncodeError::kNoSpace);
}

// Amplification rule: an ERROR to an unverified source fits in the request's size.
TEST(Amplification, ErrorTruncatedToRequest) {
  std::vector<std::byte> buf(kDefaultFrameBytes);
  std::string detail = "record 3: key_len runs past the end of the record; ";
  detail += "\xC3\xA9\xC3\xA9\xC3\xA9";  // multi-byte UTF-8 at the end
  ErrorReply e{Errc::kMalformed, 1, 0, 0, 0, detail};
  for (size_t req = 0; req <= 120; ++req) {
    auto n = EncodeErrorFrame(std::span<std::byte>(buf).first(req), {1, 2, 0}, e);
    if (req < kHeaderBytes + kErrorFixedBytes) {
      EXPECT_EQ(n.error(), EncodeError::kNoSpace) << req;  // not sent at all
      continue;
    }
    ASSERT_TRUE(n.has_value()) << req;
    EXPECT_LE(*n, req);
    auto f = DecodeFrame(std::span<const std::byte>(buf).first(*n));
    ASSERT_TRUE(f.has_value());
    auto d = DecodeErrorFrame(*f);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->errc, Errc::kMalformed);
    EXPECT_EQ((f->header.flags & kFlagTruncated) != 0, d->detail.size() < detail.size());
    EXPECT_EQ(detail.substr(0, d->detail.size()), d->detail);
    // Never cut inside a UTF-8 sequence.
    if (!d->detail.empty() && d->detail.size() < detail.size()) {
      EXPECT_NE(static_cast<uint8_t>(detail[d->detail.size()]) & 0xC0, 0x80);
    }
  }
}

// Replies to PRODUCE and to DELETE/NACK/EXTEND are never larger than the request, whatever the
// mix: one ACK range (24 bytes) per message record (>= 44 bytes), one RESULT item (16) per
// receipt op (24).
TEST(Amplification, RepliesNoLargerThanRequests) {
  testing::Rng r(77);
  std::vector<std::byte> req(kMaxFrameBytes), rep(kMaxFrameBytes);
  for (int i = 0; i < 200; ++i) {
    FrameWriter w(std::span<std::byte>(req).first(r.Between(100, kMaxFrameBytes)));
    ASSERT_EQ(w.BeginProduce({}, 1, 1), EncodeError::kOk);
    testing::OwnedMessage m;
    for (;;) {
      testing::RandomMessage(r, 100, &m);
      if (w.AddMessage(m.spec) != EncodeError::kOk) break;
    }
    const uint32_t count = w.count();
    const size_t produce_len = *w.Finish();
    FrameWriter a(rep);
    ASSERT_EQ(a.BeginAck({}, 1, 1), EncodeError::kOk);
    for (uint32_t k = 0; k < count; ++k) ASSERT_EQ(a.AddAckRange({0, Errc::kOk, 1, k, k}), EncodeError::kOk);
    EXPECT_LE(*a.Finish(), produce_len);
  }
  for (uint32_t n = 1; n < 100; ++n) {
    FrameWriter d(req);
    ASSERT_EQ(d.BeginReceiptOps(FrameType::kDelete, {}), EncodeError::kOk);
    FrameWriter res(rep);
    ASSERT_EQ(res.BeginResult({}, FrameType::kDelete), EncodeError::kOk);
    for (uint32_t k = 0; k < n; ++k) {
      ASSERT_EQ(d.AddReceiptOp({1, 0, k + 1, 0}), EncodeError::kOk);
      ASSERT_EQ(res.AddResult({Errc::kUnknownReceipt, k, 0}), EncodeError::kOk);
    }
    EXPECT_LE(*res.Finish(), *d.Finish());
  }
  // LOOKUP is padded so that its reply (and an ERROR to it) is never larger.
  std::vector<std::byte> a(kMaxFrameBytes), b(kMaxFrameBytes);
  const size_t lookup = *EncodeLookup(a, {}, LookupRequest{"q"});
  EXPECT_LE(*EncodeLookupReply(b, {}, LookupReply{1, 1, QueueType::kStream, 0}), lookup);
  EXPECT_LE(kHeaderBytes + kErrorFixedBytes, lookup);
}

TEST(Headers, IterateAndCount) {
  const Header hs[] = {{"a", "1"}, {"", ""}, {"content-type", "text/plain"}};
  MessageSpec m;
  m.headers = hs;
  std::vector<std::byte> rec(256);
  auto n = EncodeMessageRecord(rec, m);
  ASSERT_TRUE(n.has_value());
  auto v = DecodeMessageRecord(std::span<const std::byte>(rec).first(*n));
  ASSERT_TRUE(v.has_value());
  ASSERT_EQ(v->headers.size(), 3u);
  size_t i = 0;
  for (const Header& h : v->headers) EXPECT_EQ(h, hs[i++]);
  EXPECT_EQ(i, 3u);
}

TEST(Fragmenter, Errors) {
  std::vector<std::byte> big(5000);
  MessageSpec m;
  m.payload = big;
  EXPECT_EQ(Fragmenter(m, 1000).error(), EncodeError::kBadValue);  // kAnyPartition
  m.partition = 1;
  std::string key(900, 'k');
  m.key = key;
  EXPECT_EQ(Fragmenter(m, 900).error(), EncodeError::kFieldTooLong);  // metadata > budget
  m.key = {};
  std::vector<std::byte> huge(kMaxMessageBytes + 1);
  m.payload = huge;
  EXPECT_EQ(Fragmenter(m, 1400).error(), EncodeError::kMessageTooLarge);
  m.payload = big;
  Fragmenter f(m, RecordBudget(kDefaultFrameBytes, false));
  EXPECT_TRUE(f.needed());
  EXPECT_EQ(f.fragments(), 4u);  // budget 1424 - 52 = 1372 bytes a fragment: 3 x 1372 + 884
}

TEST(Expected, ValueAndError) {
  DecodeResult<int> ok = 5;
  EXPECT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 5);
  DecodeResult<int> bad = DecodeError::kBadMagic;
  EXPECT_FALSE(bad);
  EXPECT_EQ(bad.error(), DecodeError::kBadMagic);
  EXPECT_EQ(ErrcName(Errc::kUnverifiedSource), "UNVERIFIED_SOURCE");
}

}  // namespace
}  // namespace sluice::protocol
