// Malformed input: every rejection has its own DecodeError, and no truncation or lie about a
// length gets past the decoder (ASan/UBSan builds check that nothing reads out of bounds).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "protocol/codec.h"

namespace sluice::protocol {
namespace {

// Owned frame bytes with little-endian patch helpers.
struct Bytes {
  std::vector<std::byte> b;
  void P8(size_t at, uint8_t v) { b.at(at) = static_cast<std::byte>(v); }
  void P16(size_t at, uint16_t v) {
    SLUICE_ASSERT(at + 2 <= b.size());
    le::Store(b.data() + at, v);
  }
  void P32(size_t at, uint32_t v) {
    SLUICE_ASSERT(at + 4 <= b.size());
    le::Store(b.data() + at, v);
  }
  void P64(size_t at, uint64_t v) {
    SLUICE_ASSERT(at + 8 <= b.size());
    le::Store(b.data() + at, v);
  }
  uint32_t G32(size_t at) const { return le::U32(b.data() + at); }
  // Resize and keep the header's length field consistent.
  void Resize(size_t n) {
    SLUICE_ASSERT(n <= (size_t{1} << 20));  // a shrink below 0 is a bug in the table (and GCC,
                                         // inlining the table, warns of it otherwise)
    b.resize(n);
    if (n >= 12) P32(8, static_cast<uint32_t>(n));
  }
  void Append(size_t n) { Resize(b.size() + n); }
};

bool SameSpan(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.data() == b.data() && a.size() == b.size();
}

// DecodeFrame then ValidateFrame; every input also goes through DecodeValidFrame (the
// dataplane's one-call receive step), which must give the same verdict and, when kOk, the same
// view.
DecodeError Decode(std::span<const std::byte> d) {
  auto f = DecodeFrame(d);
  const DecodeError want = f ? ValidateFrame(*f) : f.error();
  DecodeError any = DecodeError::kOk;
  (void)DecodeAnyValidFrame(d, &any);
  EXPECT_EQ(any, want) << "DecodeAnyValidFrame: " << DecodeErrorName(any)
                       << ", DecodeFrame + ValidateFrame: " << DecodeErrorName(want);
  // The inline acceptor never accepts what the full checks refuse.
  if (IsCommonProduce(d)) {
    EXPECT_EQ(want, DecodeError::kOk);
  }
  DecodeError got = DecodeError::kOk;
  const FrameView v = DecodeValidFrame(d, &got);
  EXPECT_EQ(got, want) << "DecodeValidFrame: " << DecodeErrorName(got) << ", DecodeFrame + "
                       << "ValidateFrame: " << DecodeErrorName(want);
  if (want == DecodeError::kOk && got == DecodeError::kOk) {
    EXPECT_EQ(v.header, f->header);
    EXPECT_TRUE(SameSpan(v.body, f->body));
    EXPECT_TRUE(SameSpan(v.auth_tag, f->auth_tag));
    EXPECT_TRUE(SameSpan(v.authenticated, f->authenticated));
    EXPECT_TRUE(SameSpan(v.bytes, f->bytes));
  }
  return want;
}

// ---- base frames ------------------------------------------------------------------------------
// PRODUCE with one record at offset 48:
//   48 record_len 52 partition 54 priority 55 flags 56 sequence 64 timestamp 72 delay 76 ttl
//   80 key_len 82 headers_len 84 dedup_len 85 reply_len 86 corr_len 87 group_len 88 payload_len
//   92 key "k1" | 94 headers {count 1: "h" = "v"} (7 bytes) | 101 dedup "d" | 102 payload (10)
constexpr size_t kRec = 48;
const Header kHdr[] = {{"h", "v"}};
const std::byte kPayload[10] = {};

Bytes Encode(const std::function<EncodeResult(std::span<std::byte>)>& enc) {
  Bytes x;
  x.b.resize(kMaxFrameBytes);
  auto n = enc(x.b);
  EXPECT_TRUE(n.has_value());
  x.b.resize(n.has_value() ? *n : 0);
  EXPECT_EQ(Decode(x.b), DecodeError::kOk);
  return x;
}

MessageSpec BaseMessage() {
  MessageSpec m;
  m.partition = 3;
  m.sequence = 7;
  m.key = "k1";
  m.headers = kHdr;
  m.dedup_id = "d";
  m.payload = kPayload;
  return m;
}

Bytes Produce(const std::vector<MessageSpec>& msgs) {
  return Encode([&](std::span<std::byte> out) -> EncodeResult {
    FrameWriter w(out);
    EXPECT_EQ(w.BeginProduce({1, 2, 0}, 9, 11), EncodeError::kOk);
    for (const MessageSpec& m : msgs) EXPECT_EQ(w.AddMessage(m), EncodeError::kOk);
    return w.Finish();
  });
}
Bytes Produce1() { return Produce({BaseMessage()}); }

Bytes FragmentFrame(uint32_t offset) {
  MessageSpec m;
  m.partition = 1;
  m.payload = kPayload;
  m.fragment = true;
  m.total_len = 100;
  m.fragment_offset = offset;
  if (offset == 0) m.key = "k";
  return Produce({m});
}

Bytes Ack2() {
  return Encode([](std::span<std::byte> out) -> EncodeResult {
    FrameWriter w(out);
    w.BeginAck({1, 2, 0}, 9, 11);
    w.AddAckRange({0, Errc::kOk, 5, 100, 1000});
    w.AddAckRange({1, Errc::kThrottled, 1, 105, 0});
    return w.Finish();
  });
}

Bytes Messages1() {
  return Encode([](std::span<std::byte> out) -> EncodeResult {
    FrameWriter w(out);
    w.BeginMessages({1, 2, 0}, {9, kAnyPartition, 0, 0});
    w.AddDelivered({10, 20, 30, 40, 2, 1}, BaseMessage());
    return w.Finish();
  });
}

Bytes Receipts(FrameType t, uint32_t ms) {
  return Encode([=](std::span<std::byte> out) -> EncodeResult {
    FrameWriter w(out);
    w.BeginReceiptOps(t, {1, 2, 0});
    w.AddReceiptOp({9, 1, 77, ms});
    return w.Finish();
  });
}

Bytes Result1() {
  return Encode([](std::span<std::byte> out) -> EncodeResult {
    FrameWriter w(out);
    w.BeginResult({1, 2, 0}, FrameType::kDelete);
    w.AddResult({Errc::kUnknownReceipt, 0, 0});
    return w.Finish();
  });
}

Bytes Receive1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeReceive(out, {1, 2, 0}, ReceiveRequest{9, kAnyPartition, 10, 30000, 1000, 0});
  });
}
Bytes Subscribe1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeSubscribe(out, {1, 2, 0},
                           SubscribeRequest{5, 9, 0, StartKind::kOffset, 100, 64, "grp"});
  });
}
Bytes Fetch1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeFetch(out, {1, 2, 0}, FetchRequest{9, 0, StartKind::kOffset, 5, 10, 0, 0});
  });
}
Bytes Error1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeErrorFrame(out, {1, 2, 0}, ErrorReply{Errc::kThrottled, 1, 0, 0, 50, "busy"});
  });
}
Bytes Lookup1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeLookup(out, {1, 2, 0}, LookupRequest{"orders"});
  });
}
Bytes LookupReply1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeLookupReply(out, {1, 2, 0}, LookupReply{9, 4, QueueType::kStream, 1 << 18});
  });
}
Bytes Credit1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeCredit(out, {1, 2, 0}, CreditGrant{5, 0, 100, 1000});
  });
}
Bytes Nak1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeNak(out, {1, 2, 0}, NakRequest{5, 0, 3, 1000});
  });
}
Bytes Heartbeat1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeHeartbeat(out, {1, 2, 0}, Heartbeat{0, 1, 1000});
  });
}
Bytes Unsub1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeUnsubscribe(out, {1, 2, 0}, UnsubscribeRequest{5, kAnyPartition});
  });
}
Bytes Join1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeJoinGroup(out, {1, 2, 0}, JoinGroupRequest{9, GroupOp::kJoin, 77, 3000, "g1"});
  });
}
Bytes GroupState2() {
  return Encode([](std::span<std::byte> out) -> EncodeResult {
    FrameWriter w(out);
    w.BeginGroupState({1, 2, 0}, {9, 3, 2, 3000});
    w.AddGroupPartition({0, true, 42});
    w.AddGroupPartition({1, false, 0});
    return w.Finish();
  });
}
Bytes Commit1() {
  return Encode([](std::span<std::byte> out) -> EncodeResult {
    FrameWriter w(out);
    w.BeginCommit({1, 2, 0}, {9, 3, 77, "g1"});
    w.AddCommit({1, 100});
    return w.Finish();
  });
}
Bytes Inbox1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeOpenInbox(out, {1, 2, 0}, OpenInboxRequest{0xABC, InboxOp::kOpen});
  });
}
Bytes Reply1() {
  return Encode([](std::span<std::byte> out) {
    return EncodeReply(out, {1, 2, 0}, 0xABC, BaseMessage());
  });
}
Bytes Deliver1() {
  return Encode([](std::span<std::byte> out) -> EncodeResult {
    FrameWriter w(out);
    w.BeginDeliver({1, 2, 0}, {5, 9, 0, 100});
    w.AddDelivered({10, 20, 0, 40, 0, 0}, BaseMessage());
    return w.Finish();
  });
}

// One sample of every frame type, for the generic checks.
std::vector<Bytes> AllSamples() {
  return {Produce1(), Ack2(), Receive1(), Messages1(), Receipts(FrameType::kDelete, 0),
          Receipts(FrameType::kNack, 5), Receipts(FrameType::kExtend, 5), Result1(),
          Subscribe1(), Deliver1(), Credit1(), Nak1(), Fetch1(), Heartbeat1(), Error1(),
          Lookup1(), LookupReply1(), Unsub1(), Join1(), GroupState2(), Commit1(), Inbox1(), Reply1()};
}

// ---- the table --------------------------------------------------------------------------------

struct Case {
  const char* name;
  std::function<Bytes()> make;
  DecodeError want;
};

Bytes With(Bytes x, const std::function<void(Bytes&)>& f) {
  f(x);
  return x;
}

const std::vector<Case>& Table() {
  using D = DecodeError;
  static const std::vector<Case> t = {
      // header
      {"empty", [] { return Bytes{}; }, D::kTruncatedHeader},
      {"31 bytes", [] { return With(Produce1(), [](Bytes& x) { x.b.resize(31); }); }, D::kTruncatedHeader},
      {"bad magic", [] { return With(Produce1(), [](Bytes& x) { x.P32(0, 0x45434C54); }); }, D::kBadMagic},
      {"version 0", [] { return With(Produce1(), [](Bytes& x) { x.P8(4, 0); }); }, D::kBadVersion},
      {"version 2", [] { return With(Produce1(), [](Bytes& x) { x.P8(4, 2); }); }, D::kBadVersion},
      {"type 0", [] { return With(Produce1(), [](Bytes& x) { x.P8(5, 0); }); }, D::kUnknownType},
      {"type 24", [] { return With(Produce1(), [](Bytes& x) { x.P8(5, 24); }); }, D::kUnknownType},
      {"type 255", [] { return With(Produce1(), [](Bytes& x) { x.P8(5, 255); }); }, D::kUnknownType},
      {"unknown frame flag", [] { return With(Produce1(), [](Bytes& x) { x.P16(6, 0x0010); }); }, D::kBadFlags},
      {"high frame flag", [] { return With(Produce1(), [](Bytes& x) { x.P16(6, 0x8000); }); }, D::kBadFlags},
      {"length > datagram", [] { return With(Produce1(), [](Bytes& x) { x.P32(8, x.G32(8) + 1); }); }, D::kLengthMismatch},
      {"length < datagram", [] { return With(Produce1(), [](Bytes& x) { x.P32(8, x.G32(8) - 1); }); }, D::kLengthMismatch},
      {"length 0", [] { return With(Produce1(), [](Bytes& x) { x.P32(8, 0); }); }, D::kLengthMismatch},
      {"length > 65507", [] { return With(Produce1(), [](Bytes& x) { x.Resize(kMaxFrameBytes + 1); }); }, D::kFrameTooLarge},
      {"length 0xFFFFFFFF", [] { return With(Produce1(), [](Bytes& x) { x.P32(8, 0xFFFFFFFF); }); }, D::kFrameTooLarge},
      {"auth flag, no room for tag", [] { return With(Heartbeat1(), [](Bytes& x) { x.P16(6, kFlagAuth); x.Resize(40); }); }, D::kLengthMismatch},
      // PRODUCE prefix and counts
      {"produce body < prefix", [] { return With(Produce1(), [](Bytes& x) { x.P32(12, 0); x.Resize(40); }); }, D::kTruncatedBody},
      {"produce reserved", [] { return With(Produce1(), [](Bytes& x) { x.P32(36, 1); }); }, D::kReservedNonZero},
      {"count 0xFFFFFFFF", [] { return With(Produce1(), [](Bytes& x) { x.P32(12, 0xFFFFFFFF); }); }, D::kCountOverflow},
      {"count + 1", [] { return With(Produce({BaseMessage(), BaseMessage()}), [](Bytes& x) { x.P32(12, 3); }); }, D::kCountOverflow},
      {"count - 1", [] { return With(Produce({BaseMessage(), BaseMessage()}), [](Bytes& x) { x.P32(12, 1); }); }, D::kTrailingBytes},
      {"count 0 with a record", [] { return With(Produce1(), [](Bytes& x) { x.P32(12, 0); }); }, D::kTrailingBytes},
      {"partial record", [] { return With(Produce1(), [](Bytes& x) { x.P32(12, 2); x.Append(60); }); }, D::kRecordTooShort},
      {"record cut short", [] { return With(Produce1(), [](Bytes& x) { x.Resize(x.b.size() - 1); }); }, D::kRecordOverrun},
      {"3 bytes of a record", [] {
         std::vector<std::byte> pay(300);
         MessageSpec big; big.payload = pay;
         return With(Produce({big, BaseMessage()}), [](Bytes& x) { x.Resize(x.b.size() - 64 + 3); });
       }, D::kRecordOverrun},
      // record_len lies
      {"record_len + 1", [] { return With(Produce1(), [](Bytes& x) { x.P32(kRec, 65); }); }, D::kRecordOverrun},
      {"record_len huge", [] { return With(Produce1(), [](Bytes& x) { x.P32(kRec, 0xFFFFFFFF); }); }, D::kRecordOverrun},
      {"record_len 10", [] { return With(Produce1(), [](Bytes& x) { x.P32(kRec, 10); }); }, D::kRecordTooShort},
      {"record_len 0", [] { return With(Produce1(), [](Bytes& x) { x.P32(kRec, 0); }); }, D::kRecordTooShort},
      {"record_len - 1", [] { return With(Produce1(), [](Bytes& x) { x.P32(kRec, 63); x.Resize(x.b.size() - 1); }); }, D::kFieldOverrun},
      {"record with slack byte", [] { return With(Produce1(), [](Bytes& x) { x.P32(kRec, 65); x.Append(1); }); }, D::kRecordLengthMismatch},
      {"fragment flag, record too short for ext", [] { return With(Produce({MessageSpec{}}), [](Bytes& x) { x.P8(kRec + 7, kMsgFlagFragment); }); }, D::kRecordTooShort},
      // field lengths exceeding the record
      {"key_len past record", [] { return With(Produce1(), [](Bytes& x) { x.P16(kRec + 32, 0xFFFF); }); }, D::kFieldOverrun},
      {"headers_len past record", [] { return With(Produce1(), [](Bytes& x) { x.P16(kRec + 34, 100); }); }, D::kFieldOverrun},
      {"dedup_len past record", [] { return With(Produce1(), [](Bytes& x) { x.P8(kRec + 36, 200); }); }, D::kFieldOverrun},
      {"payload_len past record", [] { return With(Produce1(), [](Bytes& x) { x.P32(kRec + 40, 0xFFFFFFFF); }); }, D::kFieldOverrun},
      {"payload_len short", [] { return With(Produce1(), [](Bytes& x) { x.P32(kRec + 40, 9); }); }, D::kRecordLengthMismatch},
      // field limits (lengths consistent, value over the limit)
      {"key 1025 bytes", [] {
         std::string key(1000, 'k');
         std::vector<std::byte> pay(100);
         MessageSpec m; m.key = key; m.payload = pay;
         return With(Produce({m}), [](Bytes& x) { x.P16(kRec + 32, 1025); x.P32(kRec + 40, 75); });
       }, D::kFieldTooLong},
      {"unknown message flag", [] { return With(Produce1(), [](Bytes& x) { x.P8(kRec + 7, 0x02); }); }, D::kBadFlags},
      {"priority 16", [] { return With(Produce1(), [](Bytes& x) { x.P8(kRec + 6, 16); }); }, D::kBadValue},
      {"delay > 15 min", [] { return With(Produce1(), [](Bytes& x) { x.P32(kRec + 24, kMaxDelayMs + 1); }); }, D::kBadValue},
      // headers block (at 94: u16 count, u8 key_len, u16 value_len, "h", "v")
      {"headers block 1 byte", [] { return With(Produce1(), [](Bytes& x) { x.P16(kRec + 34, 1); x.P32(kRec + 40, 16); }); }, D::kBadHeaders},
      {"headers count 0", [] { return With(Produce1(), [](Bytes& x) { x.P16(94, 0); }); }, D::kBadHeaders},
      {"headers count 2", [] { return With(Produce1(), [](Bytes& x) { x.P16(94, 2); }); }, D::kBadHeaders},
      {"headers count 65", [] { return With(Produce1(), [](Bytes& x) { x.P16(94, 65); }); }, D::kFieldTooLong},
      {"header value_len overrun", [] { return With(Produce1(), [](Bytes& x) { x.P16(97, 5); }); }, D::kBadHeaders},
      {"header key_len overrun", [] { return With(Produce1(), [](Bytes& x) { x.P8(96, 9); }); }, D::kBadHeaders},
      {"header slack byte", [] { return With(Produce1(), [](Bytes& x) { x.P16(kRec + 34, 8); x.P32(kRec + 40, 9); }); }, D::kBadHeaders},
      // fragments (fragment ext at 92: total_len, 96: fragment_offset)
      {"fragment total > 1 MiB", [] { return With(FragmentFrame(0), [](Bytes& x) { x.P32(92, (1 << 20) + 1); }); }, D::kMessageTooLarge},
      {"fragment past total", [] { return With(FragmentFrame(0), [](Bytes& x) { x.P32(96, 95); }); }, D::kBadFragment},
      {"fragment offset overflow", [] { return With(FragmentFrame(0), [](Bytes& x) { x.P32(96, 0xFFFFFFFF); }); }, D::kBadFragment},
      {"fragment any partition", [] { return With(FragmentFrame(0), [](Bytes& x) { x.P16(kRec + 4, kAnyPartition); }); }, D::kBadFragment},
      {"fragment 0 holds all", [] { return With(FragmentFrame(0), [](Bytes& x) { x.P32(92, 10); }); }, D::kBadFragment},
      {"later fragment with key", [] { return With(FragmentFrame(0), [](Bytes& x) { x.P32(96, 50); }); }, D::kBadFragment},
      {"later fragment ok", [] { return FragmentFrame(90); }, D::kOk},
      // ACK
      {"ack count overflow", [] { return With(Ack2(), [](Bytes& x) { x.P32(12, 3); }); }, D::kCountOverflow},
      {"ack trailing", [] { return With(Ack2(), [](Bytes& x) { x.Append(1); }); }, D::kTrailingBytes},
      {"ack truncated prefix", [] { return With(Ack2(), [](Bytes& x) { x.P32(12, 0); x.Resize(40); }); }, D::kTruncatedBody},
      {"ack reserved", [] { return With(Ack2(), [](Bytes& x) { x.P32(36, 1); }); }, D::kReservedNonZero},
      {"ack range count 0", [] { return With(Ack2(), [](Bytes& x) { x.P32(48 + 4, 0); }); }, D::kBadValue},
      {"ack range any partition", [] { return With(Ack2(), [](Bytes& x) { x.P16(48, kAnyPartition); }); }, D::kBadValue},
      // MESSAGES / DELIVER
      {"messages reserved", [] { return With(Messages1(), [](Bytes& x) { x.P16(32 + 6, 1); }); }, D::kReservedNonZero},
      {"messages truncated prefix", [] { return With(Messages1(), [](Bytes& x) { x.P32(12, 0); x.Resize(50); }); }, D::kTruncatedBody},
      {"delivered meta reserved", [] { return With(Messages1(), [](Bytes& x) { x.P32(56 + 36, 1); }); }, D::kReservedNonZero},
      {"delivered any partition", [] { return With(Messages1(), [](Bytes& x) { x.P16(56 + 32, kAnyPartition); }); }, D::kBadValue},
      {"delivered count overflow", [] { return With(Messages1(), [](Bytes& x) { x.P32(12, 2); }); }, D::kCountOverflow},
      {"delivered inner record_len lie", [] { return With(Messages1(), [](Bytes& x) { x.P32(96, 65); }); }, D::kRecordOverrun},
      {"delivered partial meta", [] { return With(Messages1(), [](Bytes& x) { x.P32(12, 2); x.Append(90); }); }, D::kRecordTooShort},
      {"deliver any partition", [] { return With(Deliver1(), [](Bytes& x) { x.P16(32 + 12, kAnyPartition); }); }, D::kBadValue},
      {"deliver reserved", [] { return With(Deliver1(), [](Bytes& x) { x.P16(32 + 14, 1); }); }, D::kReservedNonZero},
      // DELETE / NACK / EXTEND
      {"delete with ms", [] { return With(Receipts(FrameType::kDelete, 0), [](Bytes& x) { x.P32(32 + 16, 5); }); }, D::kReservedNonZero},
      {"delete reserved", [] { return With(Receipts(FrameType::kDelete, 0), [](Bytes& x) { x.P16(32 + 6, 5); }); }, D::kReservedNonZero},
      {"delete receipt 0", [] { return With(Receipts(FrameType::kDelete, 0), [](Bytes& x) { x.P64(32 + 8, 0); }); }, D::kBadValue},
      {"nack delay too long", [] { return With(Receipts(FrameType::kNack, 0), [](Bytes& x) { x.P32(32 + 16, kMaxDelayMs + 1); }); }, D::kBadValue},
      {"extend too long", [] { return With(Receipts(FrameType::kExtend, 0), [](Bytes& x) { x.P32(32 + 16, kMaxVisibilityMs + 1); }); }, D::kBadValue},
      {"delete count 0", [] { return With(Receipts(FrameType::kDelete, 0), [](Bytes& x) { x.P32(12, 0); x.Resize(32); }); }, D::kUnexpectedCount},
      {"extend count overflow", [] { return With(Receipts(FrameType::kExtend, 0), [](Bytes& x) { x.P32(12, 0x40000000); }); }, D::kCountOverflow},
      // RESULT
      {"result bad request type", [] { return With(Result1(), [](Bytes& x) { x.P8(32, static_cast<uint8_t>(FrameType::kProduce)); }); }, D::kBadValue},
      {"result prefix reserved", [] { return With(Result1(), [](Bytes& x) { x.P8(33, 1); }); }, D::kReservedNonZero},
      {"result item reserved", [] { return With(Result1(), [](Bytes& x) { x.P16(40 + 2, 1); }); }, D::kReservedNonZero},
      // fixed-body frames
      {"receive count 1", [] { return With(Receive1(), [](Bytes& x) { x.P32(12, 1); }); }, D::kUnexpectedCount},
      {"receive short", [] { return With(Receive1(), [](Bytes& x) { x.Resize(x.b.size() - 1); }); }, D::kTruncatedBody},
      {"receive long", [] { return With(Receive1(), [](Bytes& x) { x.Append(1); }); }, D::kTrailingBytes},
      {"receive reserved", [] { return With(Receive1(), [](Bytes& x) { x.P16(32 + 18, 1); }); }, D::kReservedNonZero},
      {"receive max_messages 0", [] { return With(Receive1(), [](Bytes& x) { x.P16(32 + 6, 0); }); }, D::kBadValue},
      {"receive max_messages 1025", [] { return With(Receive1(), [](Bytes& x) { x.P16(32 + 6, 1025); }); }, D::kBadValue},
      {"receive wait > 60 s", [] { return With(Receive1(), [](Bytes& x) { x.P32(32 + 12, kMaxWaitMs + 1); }); }, D::kBadValue},
      {"receive frame cap 100", [] { return With(Receive1(), [](Bytes& x) { x.P16(32 + 16, 100); }); }, D::kBadValue},
      {"subscribe group past body", [] { return With(Subscribe1(), [](Bytes& x) { x.P8(32 + 15, 4); }); }, D::kFieldOverrun},
      {"subscribe group short", [] { return With(Subscribe1(), [](Bytes& x) { x.P8(32 + 15, 2); }); }, D::kTrailingBytes},
      {"subscribe short", [] { return With(Subscribe1(), [](Bytes& x) { x.Resize(60); }); }, D::kTruncatedBody},
      {"subscribe start kind 5", [] { return With(Subscribe1(), [](Bytes& x) { x.P8(32 + 14, 5); }); }, D::kBadValue},
      {"subscribe latest with value", [] { return With(Subscribe1(), [](Bytes& x) { x.P8(32 + 14, 2); }); }, D::kBadValue},
      {"subscribe id 0", [] { return With(Subscribe1(), [](Bytes& x) { x.P64(32, 0); }); }, D::kBadValue},
      {"subscribe reserved", [] { return With(Subscribe1(), [](Bytes& x) { x.P32(32 + 28, 1); }); }, D::kReservedNonZero},
      {"credit any partition", [] { return With(Credit1(), [](Bytes& x) { x.P16(32 + 8, kAnyPartition); }); }, D::kBadValue},
      {"credit reserved", [] { return With(Credit1(), [](Bytes& x) { x.P16(32 + 10, 1); }); }, D::kReservedNonZero},
      {"nak count 0", [] { return With(Nak1(), [](Bytes& x) { x.P32(32 + 12, 0); }); }, D::kBadValue},
      {"fetch committed", [] { return With(Fetch1(), [](Bytes& x) { x.P8(32 + 6, 4); x.P64(32 + 8, 0); }); }, D::kBadValue},
      {"fetch reserved", [] { return With(Fetch1(), [](Bytes& x) { x.P8(32 + 7, 1); }); }, D::kReservedNonZero},
      {"heartbeat reserved", [] { return With(Heartbeat1(), [](Bytes& x) { x.P32(32 + 20, 1); }); }, D::kReservedNonZero},
      {"error detail past body", [] { return With(Error1(), [](Bytes& x) { x.P16(32 + 2, 5); }); }, D::kFieldOverrun},
      {"error detail 1025", [] { return With(Error1(), [](Bytes& x) { x.P16(32 + 2, 1025); x.Resize(32 + 16 + 1025); }); }, D::kFieldTooLong},
      {"error errc OK", [] { return With(Error1(), [](Bytes& x) { x.P16(32, 0); }); }, D::kBadValue},
      {"error count", [] { return With(Error1(), [](Bytes& x) { x.P32(12, 1); }); }, D::kUnexpectedCount},
      {"lookup name 0", [] { return With(Lookup1(), [](Bytes& x) { x.P8(32, 0); x.Resize(48); }); }, D::kBadValue},
      {"lookup padding", [] { return With(Lookup1(), [](Bytes& x) { x.P64(40, 1); }); }, D::kReservedNonZero},
      {"lookup name past body", [] { return With(Lookup1(), [](Bytes& x) { x.P8(32, 7); }); }, D::kFieldOverrun},
      {"lookup reply 0 partitions", [] { return With(LookupReply1(), [](Bytes& x) { x.P16(32 + 4, 0); }); }, D::kBadValue},
      {"lookup reply queue type 3", [] { return With(LookupReply1(), [](Bytes& x) { x.P8(32 + 6, 3); }); }, D::kBadValue},
      {"unsubscribe reserved", [] { return With(Unsub1(), [](Bytes& x) { x.P32(32 + 12, 1); }); }, D::kReservedNonZero},
      {"join op 3", [] { return With(Join1(), [](Bytes& x) { x.P8(32 + 4, 3); }); }, D::kBadValue},
      {"join member 0", [] { return With(Join1(), [](Bytes& x) { x.P64(32 + 8, 0); }); }, D::kBadValue},
      {"join session 99 ms", [] { return With(Join1(), [](Bytes& x) { x.P32(32 + 16, 99); }); }, D::kBadValue},
      {"join session 300001 ms", [] { return With(Join1(), [](Bytes& x) { x.P32(32 + 16, 300001); }); }, D::kBadValue},
      {"leave with session", [] { return With(Join1(), [](Bytes& x) { x.P8(32 + 4, 1); }); }, D::kBadValue},
      {"describe with member", [] { return With(Join1(), [](Bytes& x) { x.P8(32 + 4, 2); x.P32(32 + 16, 0); }); }, D::kBadValue},
      {"join group name 0", [] { return With(Join1(), [](Bytes& x) { x.P8(32 + 5, 0); x.Resize(56); }); }, D::kBadValue},
      {"join group past body", [] { return With(Join1(), [](Bytes& x) { x.P8(32 + 5, 3); }); }, D::kFieldOverrun},
      {"join count", [] { return With(Join1(), [](Bytes& x) { x.P32(12, 1); }); }, D::kUnexpectedCount},
      {"join reserved", [] { return With(Join1(), [](Bytes& x) { x.P32(32 + 20, 1); }); }, D::kReservedNonZero},
      {"group state reserved", [] { return With(GroupState2(), [](Bytes& x) { x.P16(32 + 10, 1); }); }, D::kReservedNonZero},
      {"group state any partition", [] { return With(GroupState2(), [](Bytes& x) { x.P16(48, kAnyPartition); }); }, D::kBadValue},
      {"group state unknown flag", [] { return With(GroupState2(), [](Bytes& x) { x.P8(48 + 2, 3); }); }, D::kBadFlags},
      {"group state offset without commit", [] { return With(GroupState2(), [](Bytes& x) { x.P64(64 + 8, 5); }); }, D::kBadValue},
      {"group state count + 1", [] { return With(GroupState2(), [](Bytes& x) { x.P32(12, 3); }); }, D::kCountOverflow},
      {"commit count 0", [] { return With(Commit1(), [](Bytes& x) { x.P32(12, 0); x.Resize(32 + 24 + 2); }); }, D::kUnexpectedCount},
      {"commit any partition", [] { return With(Commit1(), [](Bytes& x) { x.P16(32 + 26, kAnyPartition); }); }, D::kBadValue},
      {"commit item reserved", [] { return With(Commit1(), [](Bytes& x) { x.P32(32 + 26 + 4, 1); }); }, D::kReservedNonZero},
      {"commit prefix reserved", [] { return With(Commit1(), [](Bytes& x) { x.P8(32 + 17, 1); }); }, D::kReservedNonZero},
      {"commit group past body", [] { return With(Commit1(), [](Bytes& x) { x.P8(32 + 16, 200); }); }, D::kFieldOverrun},
      {"inbox id 0", [] { return With(Inbox1(), [](Bytes& x) { x.P64(32, 0); }); }, D::kBadValue},
      {"inbox op 2", [] { return With(Inbox1(), [](Bytes& x) { x.P8(32 + 8, 2); }); }, D::kBadValue},
      {"inbox padding", [] { return With(Inbox1(), [](Bytes& x) { x.P64(32 + 16, 1); }); }, D::kReservedNonZero},
      {"inbox count", [] { return With(Inbox1(), [](Bytes& x) { x.P32(12, 1); }); }, D::kUnexpectedCount},
      {"reply count 2", [] { return With(Reply1(), [](Bytes& x) { x.P32(12, 2); }); }, D::kUnexpectedCount},
      {"reply count 0", [] { return With(Reply1(), [](Bytes& x) { x.P32(12, 0); }); }, D::kUnexpectedCount},
      {"reply inbox 0", [] { return With(Reply1(), [](Bytes& x) { x.P64(32, 0); }); }, D::kBadValue},
      {"reply reserved", [] { return With(Reply1(), [](Bytes& x) { x.P64(32 + 8, 1); }); }, D::kReservedNonZero},
      {"reply record cut", [] { return With(Reply1(), [](Bytes& x) { x.Resize(x.b.size() - 1); }); }, D::kRecordOverrun},
      {"commit generation without member", [] { return With(Commit1(), [](Bytes& x) { x.P64(32 + 8, 0); }); }, D::kBadValue},
  };
  return t;
}

TEST(Malformed, Table) {
  for (const Case& c : Table()) {
    Bytes x = c.make();
    EXPECT_EQ(Decode(x.b), c.want) << c.name << ": got " << DecodeErrorName(Decode(x.b))
                                   << ", want " << DecodeErrorName(c.want);
  }
}

// Every frame type, cut at every byte: with the datagram's own length the header check catches
// it; with the length field patched to match, the body check must.
TEST(Malformed, TruncatedAtEveryByte) {
  for (const Bytes& full : AllSamples()) {
    const auto type = static_cast<FrameType>(full.b[5]);
    SCOPED_TRACE(std::string(FrameTypeName(type)));
    for (size_t n = 0; n < full.b.size(); ++n) {
      std::span<const std::byte> cut(full.b.data(), n);
      EXPECT_EQ(Decode(cut), n < kHeaderBytes ? DecodeError::kTruncatedHeader
                                              : DecodeError::kLengthMismatch)
          << "cut at " << n;
      if (n < kHeaderBytes) continue;
      Bytes patched{std::vector<std::byte>(full.b.begin(), full.b.begin() + n)};
      patched.P32(8, static_cast<uint32_t>(n));
      EXPECT_NE(Decode(patched.b), DecodeError::kOk) << "cut at " << n << " with length patched";
    }
  }
}

// Found by the fuzzer: a 4-byte record whose record_len is larger than the input made the
// decoder read the flags byte past the end. Exact-size heap copies let ASan builds catch a relapse.
TEST(Malformed, RecordShorterThanFixedPart) {
  for (size_t n = 0; n < kMessageFixedBytes; ++n) {
    std::vector<std::byte> rec(n, std::byte{0xFF});
    if (n >= 4) le::Store(rec.data(), static_cast<uint32_t>(n == 4 ? 0x47FF47FF : n));
    auto v = DecodeMessageRecord(rec);
    EXPECT_EQ(v.error(), n < 4 || n == 4 ? DecodeError::kRecordOverrun : DecodeError::kRecordTooShort) << n;
  }
}

// A decoder for one type refuses frames of another.
TEST(Malformed, WrongFrameType) {
  Bytes ack = Ack2();
  auto f = DecodeFrame(ack.b);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(DecodeProduce(*f).error(), DecodeError::kWrongFrameType);
  EXPECT_EQ(DecodeReceiptOps(*f).error(), DecodeError::kWrongFrameType);
  EXPECT_EQ(DecodeHeartbeat(*f).error(), DecodeError::kWrongFrameType);
  EXPECT_EQ(DecodeSubscribe(*f).error(), DecodeError::kWrongFrameType);
}

TEST(Malformed, ErrcMapping) {
  EXPECT_EQ(ToErrc(DecodeError::kBadVersion), Errc::kUnsupportedVersion);
  EXPECT_EQ(ToErrc(DecodeError::kUnknownType), Errc::kUnknownType);
  EXPECT_EQ(ToErrc(DecodeError::kMessageTooLarge), Errc::kMessageTooLarge);
  EXPECT_EQ(ToErrc(DecodeError::kRecordOverrun), Errc::kMalformed);
  EXPECT_EQ(ToErrc(DecodeError::kOk), Errc::kOk);
  std::vector<std::string_view> names;
  for (uint8_t e = 0; e <= kMaxDecodeError; ++e) {
    auto name = DecodeErrorName(static_cast<DecodeError>(e));
    EXPECT_NE(name, "UNKNOWN_DECODE_ERROR");
    for (auto n : names) EXPECT_NE(n, name);
    names.push_back(name);
  }
}

// Every single-byte corruption of every sample either decodes or fails with a named error, and
// a frame that decodes re-validates the same (a smoke test; the fuzzer goes much further).
TEST(Malformed, EveryByteFlipped) {
  for (const Bytes& full : AllSamples()) {
    for (size_t i = 0; i < full.b.size(); ++i) {
      for (uint8_t v : {uint8_t{0x00}, uint8_t{0x01}, uint8_t{0x7F}, uint8_t{0x80}, uint8_t{0xFF}}) {
        Bytes x = full;
        x.P8(i, v);
        DecodeError e = Decode(x.b);
        EXPECT_LE(static_cast<uint8_t>(e), kMaxDecodeError);
      }
    }
  }
}

// The x1 flood's frame (one record, no key, no headers, producer 0) is the inline acceptor's
// shape, and so is one with a key, a dedup id and a group; every byte of it changed to each of a
// few values goes through Decode, which checks that the acceptor never takes a frame the full
// checks refuse, and that DecodeValidFrame gives the full checks' verdict and view.
TEST(Malformed, CommonProduceShape) {
  MessageSpec plain;
  plain.payload = kPayload;
  MessageSpec keyed = plain;
  keyed.key = "key";
  keyed.dedup_id = "d1";
  keyed.group_id = "g";
  keyed.partition = kAnyPartition;
  uint32_t accepted = 0;
  for (const MessageSpec& m : {plain, keyed}) {
    const Bytes full = Produce({m});
    ASSERT_TRUE(IsCommonProduce(full.b));
    for (size_t i = 0; i < full.b.size(); ++i) {
      for (uint8_t v : {uint8_t{0x00}, uint8_t{0x01}, uint8_t{0x10}, uint8_t{0x7F},
                        uint8_t{0xFF}}) {
        Bytes x = full;
        x.P8(i, v);
        accepted += IsCommonProduce(x.b) ? 1 : 0;
        (void)Decode(x.b);
      }
    }
    // Cut short (with the length patched) and grown by a byte: never the common shape.
    Bytes cut = full;
    cut.Resize(full.b.size() - 1);
    EXPECT_FALSE(IsCommonProduce(cut.b));
    (void)Decode(cut.b);
    Bytes grown = full;
    grown.Append(1);
    EXPECT_FALSE(IsCommonProduce(grown.b));
    EXPECT_EQ(Decode(grown.b), DecodeError::kTrailingBytes);
  }
  EXPECT_GT(accepted, 100u);  // the changed payload, ids and the like stay common
}

// Headers, a fragment, two records, frame flags: valid, but not the inline shape.
TEST(Malformed, OtherValidProducesTakeTheFullChecks) {
  const Bytes with_headers = Produce({BaseMessage()});
  EXPECT_FALSE(IsCommonProduce(with_headers.b));
  EXPECT_EQ(Decode(with_headers.b), DecodeError::kOk);
  MessageSpec plain;
  plain.payload = kPayload;
  const Bytes two = Produce({plain, plain});
  EXPECT_FALSE(IsCommonProduce(two.b));
  EXPECT_EQ(Decode(two.b), DecodeError::kOk);
}

}  // namespace
}  // namespace sluice::protocol
