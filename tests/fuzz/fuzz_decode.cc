// libFuzzer target: decode arbitrary bytes as a frame, run the decoder of its type (and every other
// decoder, which must refuse it), and walk every record it yields. Built with clang
// -fsanitize=fuzzer,address,undefined (tests/fuzz/meson.build).
//
// Beyond "no crash, no out-of-bounds read", it checks properties:
//   - ValidateFrame agrees with the type's decoder;
//   - a frame that decodes is canonical: re-encoding every record from its view gives back the
//     same bytes, and re-encoding fixed-body frames gives back the same frame;
//   - views point inside the input;
//   - a PRODUCE's records read in place (RecordRef, the worker's walk) agree with the full decode;
//   - the worker's one-call receive step (DecodeValidFrame, with its inline acceptor of the common
//     PRODUCE) gives DecodeFrame + ValidateFrame's verdict and view.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "protocol/codec.h"

namespace sp = sluice::protocol;

namespace {

#define FUZZ_CHECK(c) \
  do {                \
    if (!(c)) __builtin_trap(); \
  } while (0)

const std::byte* g_lo = nullptr;
const std::byte* g_hi = nullptr;

void Inside(std::span<const std::byte> s) {
  if (s.empty()) return;
  FUZZ_CHECK(s.data() >= g_lo && s.data() + s.size() <= g_hi);
}
void Inside(std::string_view s) {
  Inside(std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()), s.size()));
}

volatile uint64_t g_sink;

// Rebuilds the spec of a decoded message; re-encoding it must give the record bytes back.
void CheckMessage(const sp::MessageView& v) {
  Inside(v.record);
  Inside(v.key);
  Inside(v.payload);
  Inside(v.dedup_id);
  Inside(v.reply_to);
  Inside(v.correlation_id);
  Inside(v.group_id);
  sp::Header hs[sp::kMaxHeaders];
  size_t n = 0;
  for (const sp::Header& h : v.headers) {
    FUZZ_CHECK(n < sp::kMaxHeaders);
    Inside(h.key);
    Inside(h.value);
    hs[n++] = h;
  }
  FUZZ_CHECK(n == v.headers.size());
  sp::MessageSpec m;
  m.partition = v.partition;
  m.priority = v.priority;
  m.sequence = v.sequence;
  m.timestamp_ns = v.timestamp_ns;
  m.delay_ms = v.delay_ms;
  m.ttl_ms = v.ttl_ms;
  m.key = v.key;
  m.headers = std::span<const sp::Header>(hs, n);
  m.dedup_id = v.dedup_id;
  m.reply_to = v.reply_to;
  m.correlation_id = v.correlation_id;
  m.group_id = v.group_id;
  m.payload = v.payload;
  m.fragment = v.is_fragment();
  m.total_len = v.total_len;
  m.fragment_offset = v.fragment_offset;
  std::vector<std::byte> out(v.record.size());
  auto r = sp::EncodeMessageRecord(out, m);
  FUZZ_CHECK(r.has_value() && *r == v.record.size());
  FUZZ_CHECK(std::memcmp(out.data(), v.record.data(), out.size()) == 0);
  // And alone, as a shard reads a stored record.
  auto alone = sp::DecodeMessageRecord(v.record);
  FUZZ_CHECK(alone.has_value() && alone->record.size() == v.record.size());
  g_sink = g_sink + v.sequence + v.payload.size();
}

void CheckDelivered(const sp::DeliveredRange& range) {
  uint32_t n = 0;
  for (const sp::DeliveredView& d : range) {
    FUZZ_CHECK(d.meta.partition != sp::kAnyPartition);
    CheckMessage(d.message);
    ++n;
  }
  FUZZ_CHECK(n == range.size());
}

// Re-encodes a fixed-body frame and compares it with the input.
template <class T, class Enc>
void CheckFixed(const sp::FrameView& f, const sp::DecodeResult<T>& v, Enc enc) {
  if (!v) return;
  std::vector<std::byte> out(f.bytes.size());
  sp::FrameIds ids{f.header.client_id, f.header.request_id, f.header.flags};
  auto n = enc(out, ids, *v);
  FUZZ_CHECK(n.has_value() && *n == f.bytes.size());
  // The auth tag is zeroed by the encoder; compare what it covers.
  size_t cmp = f.bytes.size() - f.auth_tag.size();
  FUZZ_CHECK(std::memcmp(out.data(), f.bytes.data(), cmp) == 0);
}

void CheckFrame(const sp::FrameView& f) {
  using sp::FrameType;
  const sp::DecodeError all = sp::ValidateFrame(f);
  sp::DecodeError mine = sp::DecodeError::kUnknownType;
  switch (f.header.type) {
    case FrameType::kProduce: {
      auto p = sp::DecodeProduce(f);
      mine = p.error();
      if (p) {
        uint32_t n = 0;
        // The worker's in-place walk (RecordRef) reads what the full decode yields.
        auto ref = p->messages.records().begin();
        for (const sp::MessageView& m : p->messages) {
          CheckMessage(m);
          FUZZ_CHECK(!(ref == std::default_sentinel));
          const sp::RecordRef r = *ref;
          FUZZ_CHECK(r.data() == m.record.data() && r.size() == m.record.size());
          FUZZ_CHECK(r.partition() == m.partition && r.priority() == m.priority &&
                     r.flags() == m.flags && r.sequence() == m.sequence &&
                     r.timestamp_ns() == m.timestamp_ns && r.delay_ms() == m.delay_ms &&
                     r.ttl_ms() == m.ttl_ms);
          FUZZ_CHECK(r.key().data() == m.key.data() && r.key().size() == m.key.size());
          FUZZ_CHECK(r.dedup_id().data() == m.dedup_id.data() &&
                     r.dedup_id().size() == m.dedup_id.size());
          FUZZ_CHECK(r.group_id().data() == m.group_id.data() &&
                     r.group_id().size() == m.group_id.size());
          std::string_view dedup, group;
          r.DedupAndGroup(&dedup, &group);
          FUZZ_CHECK(dedup.size() == m.dedup_id.size() && group.size() == m.group_id.size());
          FUZZ_CHECK(dedup.empty() || dedup.data() == m.dedup_id.data());
          FUZZ_CHECK(group.empty() || group.data() == m.group_id.data());
          const sp::MessageView v = r.View();
          FUZZ_CHECK(v.payload.data() == m.payload.data() && v.payload.size() == m.payload.size());
          ++ref;
          ++n;
        }
        FUZZ_CHECK(ref == std::default_sentinel);
        FUZZ_CHECK(n == f.header.count);
      }
      break;
    }
    case FrameType::kAck: {
      auto a = sp::DecodeAck(f);
      mine = a.error();
      if (a) {
        for (sp::AckRange r : a->ranges) g_sink = g_sink + r.first_offset + r.count;
      }
      break;
    }
    case FrameType::kMessages: {
      auto m = sp::DecodeMessages(f);
      mine = m.error();
      if (m) CheckDelivered(m->messages);
      break;
    }
    case FrameType::kDeliver: {
      auto d = sp::DecodeDeliver(f);
      mine = d.error();
      if (d) CheckDelivered(d->messages);
      break;
    }
    case FrameType::kDelete:
    case FrameType::kNack:
    case FrameType::kExtend: {
      auto o = sp::DecodeReceiptOps(f);
      mine = o.error();
      if (o) {
        FUZZ_CHECK(o->ops.size() >= 1);
        for (sp::ReceiptOp op : o->ops) g_sink = g_sink + op.receipt;
      }
      break;
    }
    case FrameType::kResult: {
      auto r = sp::DecodeResultFrame(f);
      mine = r.error();
      if (r) {
        for (sp::ResultItem it : r->items) g_sink = g_sink + it.value;
      }
      break;
    }
    case FrameType::kReceive: {
      auto v = sp::DecodeReceive(f);
      mine = v.error();
      CheckFixed(f, v, sp::EncodeReceive);
      break;
    }
    case FrameType::kSubscribe: {
      auto v = sp::DecodeSubscribe(f);
      mine = v.error();
      if (v) Inside(v->group);
      CheckFixed(f, v, sp::EncodeSubscribe);
      break;
    }
    case FrameType::kCredit: {
      auto v = sp::DecodeCredit(f);
      mine = v.error();
      CheckFixed(f, v, sp::EncodeCredit);
      break;
    }
    case FrameType::kNak: {
      auto v = sp::DecodeNak(f);
      mine = v.error();
      CheckFixed(f, v, sp::EncodeNak);
      break;
    }
    case FrameType::kFetch: {
      auto v = sp::DecodeFetch(f);
      mine = v.error();
      CheckFixed(f, v, sp::EncodeFetch);
      break;
    }
    case FrameType::kHeartbeat: {
      auto v = sp::DecodeHeartbeat(f);
      mine = v.error();
      CheckFixed(f, v, sp::EncodeHeartbeat);
      break;
    }
    case FrameType::kError: {
      auto v = sp::DecodeErrorFrame(f);
      mine = v.error();
      if (v) Inside(v->detail);
      // (ERROR is not re-encoded: a received truncated flag need not match a re-cut detail.)
      break;
    }
    case FrameType::kLookup: {
      auto v = sp::DecodeLookup(f);
      mine = v.error();
      if (v) Inside(v->name);
      CheckFixed(f, v, sp::EncodeLookup);
      break;
    }
    case FrameType::kLookupReply: {
      auto v = sp::DecodeLookupReply(f);
      mine = v.error();
      CheckFixed(f, v, sp::EncodeLookupReply);
      break;
    }
    case FrameType::kUnsubscribe: {
      auto v = sp::DecodeUnsubscribe(f);
      mine = v.error();
      CheckFixed(f, v, sp::EncodeUnsubscribe);
      break;
    }
    case FrameType::kJoinGroup: {
      auto v = sp::DecodeJoinGroup(f);
      mine = v.error();
      if (v) Inside(v->group);
      CheckFixed(f, v, sp::EncodeJoinGroup);
      break;
    }
    case FrameType::kGroupState: {
      auto v = sp::DecodeGroupState(f);
      mine = v.error();
      if (v) {
        for (sp::GroupPartition gp : v->partitions) {
          FUZZ_CHECK(gp.partition != sp::kAnyPartition && (gp.committed || gp.offset == 0));
        }
      }
      break;
    }
    case FrameType::kOpenInbox: {
      auto v = sp::DecodeOpenInbox(f);
      mine = v.error();
      CheckFixed(f, v, sp::EncodeOpenInbox);
      break;
    }
    case FrameType::kReply: {
      auto v = sp::DecodeReply(f);
      mine = v.error();
      if (v) {
        FUZZ_CHECK(v->inbox_id != 0 && !v->message.is_fragment());
        CheckMessage(v->message);
      }
      break;
    }
    case FrameType::kCommit: {
      auto v = sp::DecodeCommit(f);
      mine = v.error();
      if (v) {
        Inside(v->prefix.group);
        FUZZ_CHECK(v->items.size() >= 1 && !v->prefix.group.empty());
        // Canonical: re-encoding the prefix and items gives the frame back.
        std::vector<std::byte> out(f.bytes.size());
        sp::FrameWriter w(out);
        FUZZ_CHECK(w.BeginCommit({f.header.client_id, f.header.request_id, f.header.flags},
                                 v->prefix) == sp::EncodeError::kOk);
        for (sp::CommitItem it : v->items) FUZZ_CHECK(w.AddCommit(it) == sp::EncodeError::kOk);
        auto n = w.Finish();
        FUZZ_CHECK(n.has_value() && *n == f.bytes.size());
        FUZZ_CHECK(std::memcmp(out.data(), f.bytes.data(), f.bytes.size() - f.auth_tag.size()) == 0);
      }
      break;
    }
  }
  FUZZ_CHECK(mine == all);
  FUZZ_CHECK(static_cast<uint8_t>(all) <= sp::kMaxDecodeError);
  FUZZ_CHECK(!sp::DecodeErrorName(all).empty());
  (void)sp::ToErrc(all);
  // Every other decoder refuses a frame that is not its type.
  if (f.header.type != FrameType::kProduce) {
    FUZZ_CHECK(sp::DecodeProduce(f).error() == sp::DecodeError::kWrongFrameType);
  }
  if (f.header.type != FrameType::kHeartbeat) {
    FUZZ_CHECK(sp::DecodeHeartbeat(f).error() == sp::DecodeError::kWrongFrameType);
  }
  if (f.header.type != FrameType::kMessages) {
    FUZZ_CHECK(sp::DecodeMessages(f).error() == sp::DecodeError::kWrongFrameType);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy into an exact-size heap buffer so ASan sees any read past the datagram.
  std::vector<std::byte> buf(size);
  if (size != 0) std::memcpy(buf.data(), data, size);
  std::span<const std::byte> d(buf.data(), size);
  g_lo = buf.data();
  g_hi = buf.data() + size;

  auto h = sp::DecodeHeader(d);
  auto f = sp::DecodeFrame(d);
  FUZZ_CHECK(h.has_value() == f.has_value());
  if (f) {
    FUZZ_CHECK(f->header == *h);
    FUZZ_CHECK(f->bytes.size() == size);
    FUZZ_CHECK(sp::kHeaderBytes + f->body.size() + f->auth_tag.size() == size);
    CheckFrame(*f);
  }
  {
    const sp::DecodeError want = f ? sp::ValidateFrame(*f) : f.error();
    sp::DecodeError got = sp::DecodeError::kOk, any = sp::DecodeError::kOk;
    const sp::FrameView v = sp::DecodeValidFrame(d, &got);
    (void)sp::DecodeAnyValidFrame(d, &any);
    FUZZ_CHECK(got == want && any == want);
    FUZZ_CHECK(!sp::IsCommonProduce(d) || want == sp::DecodeError::kOk);
    if (want == sp::DecodeError::kOk) {
      FUZZ_CHECK(v.header == f->header);
      FUZZ_CHECK(v.body.data() == f->body.data() && v.body.size() == f->body.size());
      FUZZ_CHECK(v.auth_tag.size() == f->auth_tag.size());
      FUZZ_CHECK(v.bytes.data() == f->bytes.data() && v.bytes.size() == f->bytes.size());
    }
  }
  // The same bytes as one stored message record.
  auto m = sp::DecodeMessageRecord(d);
  if (m) CheckMessage(*m);
  return 0;
}
