// Randomised encode -> decode round trips of every frame type. Each case has its own seed
// (base + case index); a failure prints it. Reproduce with SLUICE_TEST_SEED=<base>.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocol/codec.h"
#include "tests/unit/protocol/random_frames.h"

namespace sluice::protocol {
namespace {

using testing::OwnedMessage;
using testing::Rng;

constexpr int kCasesPerType = 250;  // x 23 types = 5750 cases

uint64_t BaseSeed() {
  const char* s = std::getenv("SLUICE_TEST_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 0) : 0x5EED5EED2026ull;
}

std::string Hex(std::span<const std::byte> b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (std::byte x : b) {
    s += d[static_cast<uint8_t>(x) >> 4];
    s += d[static_cast<uint8_t>(x) & 15];
  }
  return s;
}

bool SameBytes(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

void ExpectMessage(const MessageView& v, const MessageSpec& s) {
  EXPECT_EQ(v.partition, s.partition);
  EXPECT_EQ(v.priority, s.priority);
  EXPECT_EQ(v.is_fragment(), s.fragment);
  EXPECT_EQ(v.sequence, s.sequence);
  EXPECT_EQ(v.timestamp_ns, s.timestamp_ns);
  EXPECT_EQ(v.delay_ms, s.delay_ms);
  EXPECT_EQ(v.ttl_ms, s.ttl_ms);
  EXPECT_EQ(v.key, s.key);
  EXPECT_EQ(v.dedup_id, s.dedup_id);
  EXPECT_EQ(v.reply_to, s.reply_to);
  EXPECT_EQ(v.correlation_id, s.correlation_id);
  EXPECT_EQ(v.group_id, s.group_id);
  EXPECT_TRUE(SameBytes(v.payload, s.payload)) << Hex(v.payload) << " vs " << Hex(s.payload);
  EXPECT_EQ(v.record.size(), EncodedSize(s));
  if (s.fragment) {
    EXPECT_EQ(v.total_len, s.total_len);
    EXPECT_EQ(v.fragment_offset, s.fragment_offset);
  } else {
    EXPECT_EQ(v.total_len, s.payload.size());
    EXPECT_EQ(v.fragment_offset, 0u);
  }
  ASSERT_EQ(v.headers.size(), s.headers.size());
  size_t i = 0;
  for (const Header& h : v.headers) {
    EXPECT_EQ(h, s.headers[i]) << "header " << i;
    ++i;
  }
  EXPECT_EQ(i, s.headers.size());
}

// Decodes `frame` and checks the header against what was encoded.
FrameView CheckHeader(std::span<const std::byte> frame, FrameType t, const FrameIds& ids,
                      uint32_t count) {
  auto f = DecodeFrame(frame);
  EXPECT_TRUE(f.has_value()) << DecodeErrorName(f.error()) << " " << Hex(frame);
  if (!f) return FrameView{};
  EXPECT_EQ(f->header.type, t);
  EXPECT_EQ(f->header.client_id, ids.client_id);
  EXPECT_EQ(f->header.request_id, ids.request_id);
  EXPECT_EQ(f->header.flags & ~kFlagTruncated, ids.flags);
  EXPECT_EQ(f->header.count, count);
  EXPECT_EQ(f->header.length, frame.size());
  EXPECT_EQ(f->auth_tag.size(), (ids.flags & kFlagAuth) ? kAuthTagBytes : 0u);
  EXPECT_EQ(ValidateFrame(*f), DecodeError::kOk);
  return *f;
}

class RoundTrip : public ::testing::Test {
 protected:
  std::vector<std::byte> buf_ = std::vector<std::byte>(kMaxFrameBytes + 100);
  size_t records_checked_ = 0;    // records compared field by field, over all cases
  size_t fragments_checked_ = 0;

  std::span<std::byte> RandomBuffer(Rng& r) {
    size_t n = r.OneIn(3) ? kDefaultFrameBytes : r.Between(200, kMaxFrameBytes);
    return std::span<std::byte>(buf_).first(n);
  }

  // PRODUCE with random messages (some fragmented), filled until the buffer is full or done.
  void Produce(Rng& r) {
    auto out = RandomBuffer(r);
    FrameWriter w(out);
    FrameIds ids = testing::RandomIds(r);
    uint32_t queue = r.U32();
    uint64_t producer = r.U64();
    ASSERT_EQ(w.BeginProduce(ids, queue, producer), EncodeError::kOk);
    std::vector<OwnedMessage> owned(r.Between(1, 24));
    std::vector<MessageSpec> added;
    for (OwnedMessage& m : owned) {
      testing::RandomMessage(r, r.OneIn(10) ? 3000 : 200, &m);
      if (r.OneIn(6)) {  // fragment it and add only the fragments that fit
        m.payload.resize(r.Between(1500, 5000));
        m.Bind();
        m.spec.partition = testing::RandomPartition(r, false);
        Fragmenter fr(m.spec, r.Between(700, 1400));
        ASSERT_EQ(fr.error(), EncodeError::kOk);
        MessageSpec frag;
        while (fr.Next(&frag)) {
          if (w.AddMessage(frag) != EncodeError::kOk) break;
          added.push_back(frag);
        }
        continue;
      }
      EncodeError e = w.AddMessage(m.spec);
      if (e == EncodeError::kNoSpace) {
        ASSERT_GT(EncodedSize(m.spec), w.remaining());
        break;
      }
      ASSERT_EQ(e, EncodeError::kOk);
      added.push_back(m.spec);
    }
    auto n = w.Finish();
    ASSERT_TRUE(n.has_value());
    auto frame = std::span<const std::byte>(out.first(*n));
    FrameView f = CheckHeader(frame, FrameType::kProduce, ids, static_cast<uint32_t>(added.size()));
    auto p = DecodeProduce(f);
    ASSERT_TRUE(p.has_value()) << DecodeErrorName(p.error());
    EXPECT_EQ(p->queue_id, queue);
    EXPECT_EQ(p->producer_id, producer);
    size_t i = 0;
    for (const MessageView& v : p->messages) {
      ASSERT_LT(i, added.size());
      SCOPED_TRACE("message " + std::to_string(i));
      ExpectMessage(v, added[i]);
      // The record decodes the same on its own (as a shard reads it back from storage).
      auto alone = DecodeMessageRecord(v.record);
      ASSERT_TRUE(alone.has_value());
      ExpectMessage(*alone, added[i]);
      fragments_checked_ += v.is_fragment() ? 1 : 0;
      ++i;
    }
    EXPECT_EQ(i, added.size());
    records_checked_ += i;
  }

  void Ack(Rng& r) {
    auto out = RandomBuffer(r);
    FrameWriter w(out);
    FrameIds ids = testing::RandomIds(r);
    uint32_t queue = r.U32();
    uint64_t producer = r.U64();
    ASSERT_EQ(w.BeginAck(ids, queue, producer), EncodeError::kOk);
    std::vector<AckRange> ranges;
    for (size_t n = r.Between(0, 60); n > 0; --n) {
      AckRange a = testing::RandomAckRange(r);
      if (w.AddAckRange(a) != EncodeError::kOk) break;
      ranges.push_back(a);
    }
    auto len = w.Finish();
    ASSERT_TRUE(len.has_value());
    FrameView f = CheckHeader(out.first(*len), FrameType::kAck, ids, static_cast<uint32_t>(ranges.size()));
    auto a = DecodeAck(f);
    ASSERT_TRUE(a.has_value()) << DecodeErrorName(a.error());
    EXPECT_EQ(a->queue_id, queue);
    EXPECT_EQ(a->producer_id, producer);
    ASSERT_EQ(a->ranges.size(), ranges.size());
    size_t i = 0;
    for (AckRange got : a->ranges) EXPECT_EQ(got, ranges[i++]);
    records_checked_ += i;
  }

  // MESSAGES or DELIVER; half the records copied verbatim from separately encoded records.
  void Delivered(Rng& r, FrameType t) {
    auto out = RandomBuffer(r);
    FrameWriter w(out);
    FrameIds ids = testing::RandomIds(r);
    MessagesPrefix mp{r.U32(), testing::RandomPartition(r, true), r.U64(), r.U64()};
    DeliverPrefix dp{r.U64(), r.U32(), testing::RandomPartition(r, false), r.U64()};
    ASSERT_EQ(t == FrameType::kMessages ? w.BeginMessages(ids, mp) : w.BeginDeliver(ids, dp),
              EncodeError::kOk);
    std::vector<OwnedMessage> owned(r.Between(0, 16));
    std::vector<std::vector<std::byte>> raw(owned.size());
    std::vector<std::pair<DeliveredMeta, MessageSpec>> added;
    for (size_t k = 0; k < owned.size(); ++k) {
      testing::RandomMessage(r, 400, &owned[k]);
      DeliveredMeta meta = testing::RandomMeta(r);
      EncodeError e;
      if (r.OneIn(2)) {
        raw[k].resize(EncodedSize(owned[k].spec));
        ASSERT_TRUE(EncodeMessageRecord(raw[k], owned[k].spec).has_value());
        e = w.AddDeliveredRaw(meta, raw[k]);
      } else {
        e = w.AddDelivered(meta, owned[k].spec);
      }
      if (e == EncodeError::kNoSpace) break;
      ASSERT_EQ(e, EncodeError::kOk);
      added.emplace_back(meta, owned[k].spec);
    }
    auto len = w.Finish();
    ASSERT_TRUE(len.has_value());
    FrameView f = CheckHeader(out.first(*len), t, ids, static_cast<uint32_t>(added.size()));
    DeliveredRange range;
    if (t == FrameType::kMessages) {
      auto v = DecodeMessages(f);
      ASSERT_TRUE(v.has_value()) << DecodeErrorName(v.error());
      EXPECT_EQ(v->prefix, mp);
      range = v->messages;
    } else {
      auto v = DecodeDeliver(f);
      ASSERT_TRUE(v.has_value()) << DecodeErrorName(v.error());
      EXPECT_EQ(v->prefix, dp);
      range = v->messages;
    }
    ASSERT_EQ(range.size(), added.size());
    size_t i = 0;
    for (const DeliveredView& d : range) {
      SCOPED_TRACE("record " + std::to_string(i));
      EXPECT_EQ(d.meta, added[i].first);
      ExpectMessage(d.message, added[i].second);
      ++i;
    }
    EXPECT_EQ(i, added.size());
    records_checked_ += i;
  }

  void ReceiptOps(Rng& r, FrameType t) {
    auto out = RandomBuffer(r);
    FrameWriter w(out);
    FrameIds ids = testing::RandomIds(r);
    ASSERT_EQ(w.BeginReceiptOps(t, ids), EncodeError::kOk);
    std::vector<ReceiptOp> ops;
    for (size_t n = r.Between(1, 60); n > 0; --n) {
      ReceiptOp op = testing::RandomReceiptOp(r, t);
      if (w.AddReceiptOp(op) != EncodeError::kOk) break;
      ops.push_back(op);
    }
    auto len = w.Finish();
    ASSERT_TRUE(len.has_value());
    FrameView f = CheckHeader(out.first(*len), t, ids, static_cast<uint32_t>(ops.size()));
    auto v = DecodeReceiptOps(f);
    ASSERT_TRUE(v.has_value()) << DecodeErrorName(v.error());
    EXPECT_EQ(v->type, t);
    ASSERT_EQ(v->ops.size(), ops.size());
    for (size_t i = 0; i < ops.size(); ++i) EXPECT_EQ(v->ops[i], ops[i]);
    records_checked_ += ops.size();
  }

  void Result(Rng& r) {
    static constexpr FrameType kReq[] = {FrameType::kDelete, FrameType::kNack, FrameType::kExtend,
                                         FrameType::kSubscribe, FrameType::kUnsubscribe,
                                         FrameType::kCommit, FrameType::kOpenInbox,
                                         FrameType::kReply};
    auto out = RandomBuffer(r);
    FrameWriter w(out);
    FrameIds ids = testing::RandomIds(r);
    FrameType req = kReq[r.Below(8)];
    ASSERT_EQ(w.BeginResult(ids, req), EncodeError::kOk);
    std::vector<ResultItem> items;
    for (size_t n = r.Between(0, 60); n > 0; --n) {
      ResultItem it = testing::RandomResultItem(r);
      if (w.AddResult(it) != EncodeError::kOk) break;
      items.push_back(it);
    }
    auto len = w.Finish();
    ASSERT_TRUE(len.has_value());
    FrameView f = CheckHeader(out.first(*len), FrameType::kResult, ids, static_cast<uint32_t>(items.size()));
    auto v = DecodeResultFrame(f);
    ASSERT_TRUE(v.has_value()) << DecodeErrorName(v.error());
    EXPECT_EQ(v->request_type, req);
    ASSERT_EQ(v->items.size(), items.size());
    size_t i = 0;
    for (ResultItem it : v->items) EXPECT_EQ(it, items[i++]);
    records_checked_ += i;
  }

  void GroupState(Rng& r) {
    auto out = RandomBuffer(r);
    FrameWriter w(out);
    FrameIds ids = testing::RandomIds(r);
    const GroupStatePrefix prefix{r.U32(), r.U32(), r.U16(), r.U32()};
    ASSERT_EQ(w.BeginGroupState(ids, prefix), EncodeError::kOk);
    std::vector<GroupPartition> parts;
    for (size_t n = r.Between(0, 100); n > 0; --n) {
      GroupPartition gp{testing::RandomPartition(r, false), r.OneIn(2), 0};
      if (gp.committed) gp.offset = r.U64();
      if (w.AddGroupPartition(gp) != EncodeError::kOk) break;
      parts.push_back(gp);
    }
    auto len = w.Finish();
    ASSERT_TRUE(len.has_value());
    FrameView f = CheckHeader(out.first(*len), FrameType::kGroupState, ids,
                              static_cast<uint32_t>(parts.size()));
    auto v = DecodeGroupState(f);
    ASSERT_TRUE(v.has_value()) << DecodeErrorName(v.error());
    EXPECT_EQ(v->prefix, prefix);
    ASSERT_EQ(v->partitions.size(), parts.size());
    size_t i = 0;
    for (GroupPartition gp : v->partitions) EXPECT_EQ(gp, parts[i++]);
    records_checked_ += i + 1;
  }

  void Commit(Rng& r) {
    auto out = RandomBuffer(r);
    FrameWriter w(out);
    FrameIds ids = testing::RandomIds(r);
    std::string group = r.Bytes(255);
    if (group.empty()) group = "g";
    CommitPrefix prefix{r.U32(), r.U32(), r.Between(1, UINT64_MAX), group};
    if (r.OneIn(8)) prefix.member_id = prefix.generation = 0;  // administrative commit
    ASSERT_EQ(w.BeginCommit(ids, prefix), EncodeError::kOk);
    std::vector<CommitItem> items;
    for (size_t n = r.Between(1, 60); n > 0; --n) {
      CommitItem it{testing::RandomPartition(r, false), r.U64()};
      if (w.AddCommit(it) != EncodeError::kOk) break;
      items.push_back(it);
    }
    ASSERT_FALSE(items.empty());
    auto len = w.Finish();
    ASSERT_TRUE(len.has_value());
    FrameView f = CheckHeader(out.first(*len), FrameType::kCommit, ids,
                              static_cast<uint32_t>(items.size()));
    auto v = DecodeCommit(f);
    ASSERT_TRUE(v.has_value()) << DecodeErrorName(v.error());
    EXPECT_EQ(v->prefix, prefix);
    ASSERT_EQ(v->items.size(), items.size());
    for (size_t i = 0; i < items.size(); ++i) EXPECT_EQ(v->items[i], items[i]);
    records_checked_ += items.size();
  }

  // Fixed-body types: encode `value`, decode with `decode`, compare with ==.
  template <class T, class Enc, class Dec>
  void Fixed(Rng& r, FrameType t, const T& value, Enc enc, Dec dec) {
    auto out = std::span<std::byte>(buf_).first(kDefaultFrameBytes);
    FrameIds ids = testing::RandomIds(r);
    auto len = enc(out, ids, value);
    ASSERT_TRUE(len.has_value()) << EncodeErrorName(len.error());
    FrameView f = CheckHeader(out.first(*len), t, ids, 0);
    auto v = dec(f);
    ASSERT_TRUE(v.has_value()) << DecodeErrorName(v.error());
    EXPECT_EQ(*v, value);
    ++records_checked_;
  }

  void One(FrameType t, Rng& r) {
    std::string text;
    switch (t) {
      case FrameType::kProduce: return Produce(r);
      case FrameType::kAck: return Ack(r);
      case FrameType::kMessages:
      case FrameType::kDeliver: return Delivered(r, t);
      case FrameType::kDelete:
      case FrameType::kNack:
      case FrameType::kExtend: return ReceiptOps(r, t);
      case FrameType::kResult: return Result(r);
      case FrameType::kReceive:
        return Fixed(r, t, testing::RandomReceive(r), EncodeReceive, DecodeReceive);
      case FrameType::kSubscribe: {
        SubscribeRequest s;
        s.subscription_id = r.Between(1, UINT64_MAX);
        s.queue_id = r.U32();
        s.partition = testing::RandomPartition(r, true);
        text = r.Bytes(255);
        s.group = text;
        s.start_kind = testing::RandomStartKind(r, !text.empty());
        s.start_value = testing::StartValueFor(r, s.start_kind);
        s.initial_credits = r.U32();
        return Fixed(r, t, s, EncodeSubscribe, DecodeSubscribe);
      }
      case FrameType::kCredit:
        return Fixed(r, t, testing::RandomCredit(r), EncodeCredit, DecodeCredit);
      case FrameType::kNak: return Fixed(r, t, testing::RandomNak(r), EncodeNak, DecodeNak);
      case FrameType::kFetch: return Fixed(r, t, testing::RandomFetch(r), EncodeFetch, DecodeFetch);
      case FrameType::kHeartbeat:
        return Fixed(r, t, testing::RandomHeartbeat(r), EncodeHeartbeat, DecodeHeartbeat);
      case FrameType::kError: {
        ErrorReply e;
        e.errc = static_cast<Errc>(r.Between(1, 22));
        e.request_type = r.U8();
        e.primary_ipv4 = r.U32();
        e.primary_port = r.U16();
        e.retry_after_ms = r.U32();
        text = r.Bytes(kMaxErrorDetailBytes);
        e.detail = text;
        return Fixed(r, t, e, EncodeErrorFrame, DecodeErrorFrame);
      }
      case FrameType::kLookup: {
        text = r.Bytes(255);
        if (text.empty()) text = "q";
        return Fixed(r, t, LookupRequest{text}, EncodeLookup, DecodeLookup);
      }
      case FrameType::kLookupReply:
        return Fixed(r, t, testing::RandomLookupReply(r), EncodeLookupReply, DecodeLookupReply);
      case FrameType::kUnsubscribe:
        return Fixed(r, t, testing::RandomUnsubscribe(r), EncodeUnsubscribe, DecodeUnsubscribe);
      case FrameType::kJoinGroup: {
        JoinGroupRequest j;
        j.queue_id = r.U32();
        j.op = static_cast<GroupOp>(r.Below(3));
        if (j.op != GroupOp::kDescribe) j.member_id = r.Between(1, UINT64_MAX);
        if (j.op == GroupOp::kJoin && !r.OneIn(4)) {
          j.session_timeout_ms = static_cast<uint32_t>(
              r.Between(kMinSessionTimeoutMs, kMaxSessionTimeoutMs));
        }
        text = r.Bytes(255);
        if (text.empty()) text = "g";
        j.group = text;
        return Fixed(r, t, j, EncodeJoinGroup, DecodeJoinGroup);
      }
      case FrameType::kGroupState: return GroupState(r);
      case FrameType::kCommit: return Commit(r);
      case FrameType::kOpenInbox:
        return Fixed(r, t,
                     OpenInboxRequest{r.Between(1, UINT64_MAX), static_cast<InboxOp>(r.Below(2))},
                     EncodeOpenInbox, DecodeOpenInbox);
      case FrameType::kReply: {
        auto out = std::span<std::byte>(buf_).first(kDefaultFrameBytes);
        testing::OwnedMessage m;
        testing::RandomMessage(r, 200, &m);
        char inbox[22];
        m.spec.reply_to = {};
        m.spec.correlation_id = FormatInbox(r.Between(1, UINT64_MAX), inbox);
        const uint64_t id = r.Between(1, UINT64_MAX);
        FrameIds ids = testing::RandomIds(r);
        auto len = EncodeReply(out, ids, id, m.spec);
        if (!len) {
          ASSERT_EQ(len.error(), EncodeError::kNoSpace);  // a big random message
          return;
        }
        FrameView f = CheckHeader(out.first(*len), t, ids, 1);
        auto v = DecodeReply(f);
        ASSERT_TRUE(v.has_value()) << DecodeErrorName(v.error());
        EXPECT_EQ(v->inbox_id, id);
        EXPECT_EQ(v->message.correlation_id, m.spec.correlation_id);
        EXPECT_EQ(v->message.payload.size(), m.spec.payload.size());
        char again[22];
        EXPECT_EQ(ParseInbox(FormatInbox(id, again)), id);
        ++records_checked_;
        return;
      }
    }
    FAIL() << "type not covered";
  }
};

TEST_F(RoundTrip, EveryFrameTypeRandomised) {
  const uint64_t base = BaseSeed();
  int cases = 0;
  for (int i = 0; i < kCasesPerType; ++i) {
    for (uint8_t t = 1; t <= kMaxFrameType; ++t) {
      const uint64_t seed = base + static_cast<uint64_t>(i) * kMaxFrameType + t;
      Rng r(seed);
      {
        SCOPED_TRACE("seed " + std::to_string(seed) + " type " +
                     std::string(FrameTypeName(static_cast<FrameType>(t))));
        One(static_cast<FrameType>(t), r);
      }
      ++cases;
      if (HasFailure()) {
        FAIL() << "round trip failed: type " << FrameTypeName(static_cast<FrameType>(t))
               << ", case seed " << seed << " (base SLUICE_TEST_SEED=" << base << ")";
      }
    }
  }
  EXPECT_EQ(cases, kCasesPerType * kMaxFrameType);
  // The test checked what it claims: many records, fragments among them.
  EXPECT_GT(records_checked_, static_cast<size_t>(kCasesPerType) * 100);
  EXPECT_GT(fragments_checked_, static_cast<size_t>(kCasesPerType) / 4);
  std::printf("round trip: %d cases, %zu records, %zu fragments (base seed %llu)\n", cases,
              records_checked_, fragments_checked_, static_cast<unsigned long long>(base));
}

// Fragments of a random large message reassemble to the original payload.
TEST(Fragmenter, SplitsAndReassembles) {
  const uint64_t base = BaseSeed();
  for (int i = 0; i < 300; ++i) {
    const uint64_t seed = base ^ (0xF7A6ull << 20) ^ static_cast<uint64_t>(i);
    SCOPED_TRACE("seed " + std::to_string(seed));
    Rng r(seed);
    OwnedMessage m;
    testing::RandomMessage(r, 10, &m);
    m.payload.resize(r.Between(1, 300000));
    for (std::byte& b : m.payload) b = static_cast<std::byte>(r.U8());
    m.spec.partition = static_cast<uint16_t>(r.Below(16));
    m.Bind();
    const size_t budget = RecordBudget(r.OneIn(2) ? kDefaultFrameBytes : r.Between(600, kMaxFrameBytes), r.OneIn(2));
    Fragmenter f(m.spec, budget);
    ASSERT_EQ(f.error(), EncodeError::kOk);
    EXPECT_EQ(f.needed(), EncodedSize(m.spec) > budget);
    std::vector<std::byte> whole;
    std::vector<std::byte> frame(kMaxFrameBytes);
    MessageSpec frag;
    uint32_t n = 0;
    while (f.Next(&frag)) {
      ASSERT_LE(EncodedSize(frag), budget);
      auto rec = EncodeMessageRecord(frame, frag);
      ASSERT_TRUE(rec.has_value()) << EncodeErrorName(rec.error());
      auto v = DecodeMessageRecord(std::span<const std::byte>(frame).first(*rec));
      ASSERT_TRUE(v.has_value()) << DecodeErrorName(v.error());
      EXPECT_EQ(v->sequence, m.spec.sequence);
      EXPECT_EQ(v->partition, m.spec.partition);
      EXPECT_EQ(v->total_len, m.payload.size());
      EXPECT_EQ(v->fragment_offset, whole.size());
      if (n == 0) {
        EXPECT_EQ(v->key, m.spec.key);
      }
      whole.insert(whole.end(), v->payload.begin(), v->payload.end());
      ++n;
    }
    EXPECT_EQ(n, f.fragments());
    EXPECT_TRUE(SameBytes(whole, m.payload));
  }
}

}  // namespace

TEST(Inbox, NamesRoundTripAndRejectOthers) {
  char buf[22];
  EXPECT_EQ(FormatInbox(0x0123456789abcdefull, buf), "inbox:0123456789abcdef");
  EXPECT_EQ(ParseInbox("inbox:0123456789abcdef"), 0x0123456789abcdefull);
  EXPECT_EQ(ParseInbox("inbox:0000000000000000"), std::nullopt);  // inbox ids are non-zero
  EXPECT_EQ(ParseInbox("inbox:0123456789ABCDEF"), std::nullopt);  // canonical: lower case
  EXPECT_EQ(ParseInbox("inbox:0123"), std::nullopt);
  EXPECT_EQ(ParseInbox("orders"), std::nullopt);
  EXPECT_EQ(ParseInbox(""), std::nullopt);
}

}  // namespace sluice::protocol
