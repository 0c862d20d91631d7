// Frame and record codecs. Layouts: wire.h and docs/protocol.md; keep the three in step.
#include "protocol/codec.h"

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstring>

namespace sluice::protocol {
namespace {

using le::U16;
using le::U32;
using le::U64;
using le::U8;

// ---- small writer over raw bytes ----------------------------------------------------------------
struct Out {
  std::byte* p;
  void U8(uint8_t v) { *p++ = static_cast<std::byte>(v); }
  void U16(uint16_t v) { le::Store(p, v), p += 2; }
  void U32(uint32_t v) { le::Store(p, v), p += 4; }
  void U64(uint64_t v) { le::Store(p, v), p += 8; }
  void Bytes(const void* src, size_t n) {
    if (n != 0) std::memcpy(p, src, n);
    p += n;
  }
  void Str(std::string_view s) { Bytes(s.data(), s.size()); }
};

std::string_view Str(const std::byte* p, size_t n) {
  return std::string_view(reinterpret_cast<const char*>(p), n);
}

bool ValidReplyFrameBytes(uint16_t v) {
  return v == 0 || (v >= kMinReplyFrameBytes && v <= kMaxFrameBytes);
}
// JOIN_GROUP: member id and session timeout by operation (canonical: unused fields are 0).
bool ValidJoin(uint8_t op, uint64_t member, uint32_t session_ms) {
  if (op > kMaxGroupOp) return false;
  if (static_cast<GroupOp>(op) == GroupOp::kDescribe) return member == 0 && session_ms == 0;
  if (member == 0) return false;
  if (static_cast<GroupOp>(op) == GroupOp::kLeave) return session_ms == 0;
  return session_ms == 0 || (session_ms >= kMinSessionTimeoutMs && session_ms <= kMaxSessionTimeoutMs);
}
bool ValidMaxMessages(uint16_t v) { return v >= 1 && v <= kMaxReceiveMessages; }
bool ValidResultRequestType(uint8_t t) {
  switch (static_cast<FrameType>(t)) {
    case FrameType::kDelete:
    case FrameType::kNack:
    case FrameType::kExtend:
    case FrameType::kSubscribe:
    case FrameType::kUnsubscribe:
    case FrameType::kCommit:
    case FrameType::kOpenInbox:
    case FrameType::kReply: return true;
    default: return false;
  }
}
// start_value must be 0 where the kind does not use it.
bool ValidStart(uint8_t kind, uint64_t value, bool allow_committed) {
  if (kind > kMaxStartKind) return false;
  auto k = static_cast<StartKind>(kind);
  if (k == StartKind::kCommitted && !allow_committed) return false;
  if (k == StartKind::kEarliest || k == StartKind::kLatest || k == StartKind::kCommitted) {
    return value == 0;
  }
  return true;
}

// ---- message record -----------------------------------------------------------------------------

size_t HeadersBlockBytes(std::span<const Header> hs) {
  if (hs.empty()) return 0;
  size_t n = 2;
  for (const Header& h : hs) n += kHeaderEntryFixedBytes + h.key.size() + h.value.size();
  return n;
}

size_t MetadataBytes(const MessageSpec& m) {
  return m.key.size() + HeadersBlockBytes(m.headers) + m.dedup_id.size() + m.reply_to.size() +
         m.correlation_id.size() + m.group_id.size();
}

DecodeError CheckHeadersBlock(const std::byte* p, size_t len) {
  if (len < 2) return DecodeError::kBadHeaders;
  size_t n = U16(p);
  if (n == 0) return DecodeError::kBadHeaders;
  if (n > kMaxHeaders) return DecodeError::kFieldTooLong;
  size_t at = 2;
  for (size_t i = 0; i < n; ++i) {
    if (len - at < kHeaderEntryFixedBytes) return DecodeError::kBadHeaders;
    size_t entry = kHeaderEntryFixedBytes + U8(p + at) + U16(p + at + 1);
    if (len - at < entry) return DecodeError::kBadHeaders;
    at += entry;
  }
  return at == len ? DecodeError::kOk : DecodeError::kBadHeaders;
}

// Checks the record at p (avail bytes readable) without decoding it; *len = record_len when kOk.
// The one definition of a valid message record: validation walks (ValidateFrame) need only the
// verdict and the length, and a MessageView filled on the way cost as much again.
DecodeError CheckMessageRecord(const std::byte* p, size_t avail, uint32_t* len) {
  if (avail < 4) return DecodeError::kRecordOverrun;
  const uint32_t record_len = U32(p);
  // Nothing past record_len is read until these two hold.
  if (record_len > avail) return DecodeError::kRecordOverrun;
  if (record_len < kMessageFixedBytes) return DecodeError::kRecordTooShort;
  const uint8_t flags = U8(p + 7);
  const bool frag = (flags & kMsgFlagFragment) != 0;
  const size_t fixed = kMessageFixedBytes + (frag ? kFragmentExtBytes : 0);
  if ((flags & ~kKnownMessageFlags) != 0) return DecodeError::kBadFlags;
  if (record_len < fixed) return DecodeError::kRecordTooShort;
  const size_t key_len = U16(p + 32), headers_len = U16(p + 34);
  const size_t meta_len = key_len + headers_len + U8(p + 36) + U8(p + 37) + U8(p + 38) +
                          U8(p + 39);
  const size_t payload_len = U32(p + 40);
  const uint64_t sum = uint64_t{fixed} + meta_len + payload_len;  // no overflow: all < 2^32
  if (sum > record_len) return DecodeError::kFieldOverrun;
  if (sum < record_len) return DecodeError::kRecordLengthMismatch;
  if (U8(p + 6) > kMaxPriority) return DecodeError::kBadValue;
  if (U32(p + 24) > kMaxDelayMs) return DecodeError::kBadValue;
  if (key_len > kMaxKeyBytes || headers_len > kMaxHeadersBytes) return DecodeError::kFieldTooLong;
  if (headers_len != 0) {
    DecodeError e = CheckHeadersBlock(p + fixed + key_len, headers_len);
    if (e != DecodeError::kOk) return e;
  }
  if (frag) {
    const uint32_t total_len = U32(p + 44), fragment_offset = U32(p + 48);
    if (total_len > kMaxMessageBytes) return DecodeError::kMessageTooLarge;
    if (U16(p + 4) == kAnyPartition || payload_len == 0 ||
        uint64_t{fragment_offset} + payload_len > total_len ||
        (fragment_offset == 0 && payload_len == total_len) ||
        (fragment_offset != 0 && meta_len != 0)) {
      return DecodeError::kBadFragment;
    }
  } else if (payload_len > kMaxMessageBytes) {
    return DecodeError::kMessageTooLarge;
  }
  *len = record_len;
  return DecodeError::kOk;
}

// Decodes the record at p, which CheckMessageRecord accepted.
void ParseMessage(const std::byte* p, MessageView* m) {
  const uint32_t record_len = U32(p);
  const uint8_t flags = U8(p + 7);
  const bool frag = (flags & kMsgFlagFragment) != 0;
  const size_t fixed = kMessageFixedBytes + (frag ? kFragmentExtBytes : 0);
  const size_t key_len = U16(p + 32), headers_len = U16(p + 34);
  const size_t dedup_len = U8(p + 36), reply_len = U8(p + 37), corr_len = U8(p + 38),
               group_len = U8(p + 39);
  const size_t payload_len = U32(p + 40);
  m->partition = U16(p + 4);
  m->priority = U8(p + 6);
  m->flags = flags;
  m->sequence = U64(p + 8);
  m->timestamp_ns = U64(p + 16);
  m->delay_ms = U32(p + 24);
  m->ttl_ms = U32(p + 28);
  if (frag) {
    m->total_len = U32(p + 44);
    m->fragment_offset = U32(p + 48);
  } else {
    m->total_len = static_cast<uint32_t>(payload_len);
    m->fragment_offset = 0;
  }
  const std::byte* v = p + fixed;
  m->key = Str(v, key_len);
  v += key_len;
  m->headers = HeadersView(std::span<const std::byte>(v, headers_len));
  v += headers_len;
  m->dedup_id = Str(v, dedup_len);
  v += dedup_len;
  m->reply_to = Str(v, reply_len);
  v += reply_len;
  m->correlation_id = Str(v, corr_len);
  v += corr_len;
  m->group_id = Str(v, group_len);
  v += group_len;
  m->payload = std::span<const std::byte>(v, payload_len);
  m->record = std::span<const std::byte>(p, record_len);
}

void ReadMeta(const std::byte* p, DeliveredMeta* d) {
  d->offset = U64(p);
  d->server_timestamp_ns = U64(p + 8);
  d->receipt = U64(p + 16);
  d->producer_id = U64(p + 24);
  d->partition = U16(p + 32);
  d->receive_count = U16(p + 34);
}

void WriteMessage(std::byte* dst, const MessageSpec& m, size_t record_len) {
  Out o{dst};
  o.U32(static_cast<uint32_t>(record_len));
  o.U16(m.partition);
  o.U8(m.priority);
  o.U8(m.fragment ? kMsgFlagFragment : 0);
  o.U64(m.sequence);
  o.U64(m.timestamp_ns);
  o.U32(m.delay_ms);
  o.U32(m.ttl_ms);
  o.U16(static_cast<uint16_t>(m.key.size()));
  o.U16(static_cast<uint16_t>(HeadersBlockBytes(m.headers)));
  o.U8(static_cast<uint8_t>(m.dedup_id.size()));
  o.U8(static_cast<uint8_t>(m.reply_to.size()));
  o.U8(static_cast<uint8_t>(m.correlation_id.size()));
  o.U8(static_cast<uint8_t>(m.group_id.size()));
  o.U32(static_cast<uint32_t>(m.payload.size()));
  if (m.fragment) {
    o.U32(m.total_len);
    o.U32(m.fragment_offset);
  }
  o.Str(m.key);
  if (!m.headers.empty()) {
    o.U16(static_cast<uint16_t>(m.headers.size()));
    for (const Header& h : m.headers) {
      o.U8(static_cast<uint8_t>(h.key.size()));
      o.U16(static_cast<uint16_t>(h.value.size()));
      o.Str(h.key);
      o.Str(h.value);
    }
  }
  o.Str(m.dedup_id);
  o.Str(m.reply_to);
  o.Str(m.correlation_id);
  o.Str(m.group_id);
  o.Bytes(m.payload.data(), m.payload.size());
  SLUICE_ASSERT(static_cast<size_t>(o.p - dst) == record_len);
}

void WriteMeta(std::byte* dst, const DeliveredMeta& d) {
  Out o{dst};
  o.U64(d.offset);
  o.U64(d.server_timestamp_ns);
  o.U64(d.receipt);
  o.U64(d.producer_id);
  o.U16(d.partition);
  o.U16(d.receive_count);
  o.U32(0);
}

// ---- body shapes --------------------------------------------------------------------------------

DecodeError CheckType(const FrameView& f, FrameType t) {
  return f.header.type == t ? DecodeError::kOk : DecodeError::kWrongFrameType;
}

// Fixed-body frame types: count 0, body exactly `bytes`.
DecodeError CheckFixedBody(const FrameView& f, FrameType t, size_t bytes) {
  if (f.header.type != t) return DecodeError::kWrongFrameType;
  if (f.header.count != 0) return DecodeError::kUnexpectedCount;
  if (f.body.size() < bytes) return DecodeError::kTruncatedBody;
  if (f.body.size() > bytes) return DecodeError::kTrailingBytes;
  return DecodeError::kOk;
}

// Fixed body followed by one variable field of `var_len` bytes.
DecodeError CheckFixedPlusVar(const FrameView& f, size_t fixed, size_t var_len) {
  if (f.body.size() < fixed + var_len) return DecodeError::kFieldOverrun;
  if (f.body.size() > fixed + var_len) return DecodeError::kTrailingBytes;
  return DecodeError::kOk;
}

// Prefix followed by `count` records of `rec` bytes each.
DecodeError CheckFixedRecords(const FrameView& f, size_t prefix, size_t rec) {
  if (f.body.size() < prefix) return DecodeError::kTruncatedBody;
  const uint64_t want = uint64_t{f.header.count} * rec;
  const size_t have = f.body.size() - prefix;
  if (want > have) return DecodeError::kCountOverflow;
  if (want < have) return DecodeError::kTrailingBytes;
  return DecodeError::kOk;
}

// Walks `count` delivered records (with_meta) or message records; all must fill `bytes` exactly.
DecodeError CheckVariableRecords(std::span<const std::byte> bytes, uint32_t count,
                                 bool with_meta) {
  const size_t min_rec = kMessageFixedBytes + (with_meta ? kDeliveredMetaBytes : 0);
  if (uint64_t{count} * min_rec > bytes.size()) return DecodeError::kCountOverflow;
  const std::byte* p = bytes.data();
  size_t left = bytes.size();
  for (uint32_t i = 0; i < count; ++i) {
    if (left == 0) return DecodeError::kCountOverflow;
    if (with_meta) {
      if (left < kDeliveredMetaBytes) return DecodeError::kRecordOverrun;
      if (U32(p + 36) != 0) return DecodeError::kReservedNonZero;
      if (U16(p + 32) == kAnyPartition) return DecodeError::kBadValue;
      p += kDeliveredMetaBytes;
      left -= kDeliveredMetaBytes;
    }
    uint32_t len = 0;
    DecodeError e = CheckMessageRecord(p, left, &len);
    if (e != DecodeError::kOk) return e;
    p += len;
    left -= len;
  }
  return left == 0 ? DecodeError::kOk : DecodeError::kTrailingBytes;
}

void WriteHeader(std::byte* p, FrameType type, const FrameIds& ids, uint32_t length,
                 uint32_t count) {
  Out o{p};
  o.U32(kMagic);
  o.U8(kVersion);
  o.U8(static_cast<uint8_t>(type));
  o.U16(ids.flags);
  o.U32(length);
  o.U32(count);
  o.U64(ids.client_id);
  o.U64(ids.request_id);
}

// Fixed-body frames: checks room, writes the header (count 0) and returns where the body goes.
struct OneShot {
  std::byte* body = nullptr;
  size_t total = 0;
  EncodeError error = EncodeError::kOk;
};
OneShot BeginOneShot(std::span<std::byte> out, FrameType type, const FrameIds& ids,
                     size_t body_bytes) {
  if ((ids.flags & ~kKnownFrameFlags) != 0) return {nullptr, 0, EncodeError::kBadValue};
  const size_t total =
      kHeaderBytes + body_bytes + ((ids.flags & kFlagAuth) != 0 ? kAuthTagBytes : 0);
  if (total > out.size() || total > kMaxFrameBytes) return {nullptr, 0, EncodeError::kNoSpace};
  WriteHeader(out.data(), type, ids, static_cast<uint32_t>(total), 0);
  if ((ids.flags & kFlagAuth) != 0) {
    std::memset(out.data() + total - kAuthTagBytes, 0, kAuthTagBytes);
  }
  return {out.data() + kHeaderBytes, total, EncodeError::kOk};
}

}  // namespace

// ---- names --------------------------------------------------------------------------------------

std::string_view DecodeErrorName(DecodeError e) {
  switch (e) {
    case DecodeError::kOk: return "OK";
    case DecodeError::kTruncatedHeader: return "TRUNCATED_HEADER";
    case DecodeError::kBadMagic: return "BAD_MAGIC";
    case DecodeError::kBadVersion: return "BAD_VERSION";
    case DecodeError::kUnknownType: return "UNKNOWN_TYPE";
    case DecodeError::kBadFlags: return "BAD_FLAGS";
    case DecodeError::kLengthMismatch: return "LENGTH_MISMATCH";
    case DecodeError::kFrameTooLarge: return "FRAME_TOO_LARGE";
    case DecodeError::kWrongFrameType: return "WRONG_FRAME_TYPE";
    case DecodeError::kTruncatedBody: return "TRUNCATED_BODY";
    case DecodeError::kReservedNonZero: return "RESERVED_NON_ZERO";
    case DecodeError::kUnexpectedCount: return "UNEXPECTED_COUNT";
    case DecodeError::kCountOverflow: return "COUNT_OVERFLOW";
    case DecodeError::kTrailingBytes: return "TRAILING_BYTES";
    case DecodeError::kRecordTooShort: return "RECORD_TOO_SHORT";
    case DecodeError::kRecordOverrun: return "RECORD_OVERRUN";
    case DecodeError::kFieldOverrun: return "FIELD_OVERRUN";
    case DecodeError::kRecordLengthMismatch: return "RECORD_LENGTH_MISMATCH";
    case DecodeError::kFieldTooLong: return "FIELD_TOO_LONG";
    case DecodeError::kBadHeaders: return "BAD_HEADERS";
    case DecodeError::kBadFragment: return "BAD_FRAGMENT";
    case DecodeError::kMessageTooLarge: return "MESSAGE_TOO_LARGE";
    case DecodeError::kBadValue: return "BAD_VALUE";
  }
  return "UNKNOWN_DECODE_ERROR";
}

Errc ToErrc(DecodeError e) {
  switch (e) {
    case DecodeError::kOk: return Errc::kOk;
    case DecodeError::kBadVersion: return Errc::kUnsupportedVersion;
    case DecodeError::kUnknownType: return Errc::kUnknownType;
    case DecodeError::kMessageTooLarge: return Errc::kMessageTooLarge;
    default: return Errc::kMalformed;
  }
}

std::string_view EncodeErrorName(EncodeError e) {
  switch (e) {
    case EncodeError::kOk: return "OK";
    case EncodeError::kNoSpace: return "NO_SPACE";
    case EncodeError::kFieldTooLong: return "FIELD_TOO_LONG";
    case EncodeError::kBadValue: return "BAD_VALUE";
    case EncodeError::kMessageTooLarge: return "MESSAGE_TOO_LARGE";
  }
  return "UNKNOWN_ENCODE_ERROR";
}

// ---- message record API -------------------------------------------------------------------------

size_t EncodedSize(const MessageSpec& m) {
  return kMessageFixedBytes + (m.fragment ? kFragmentExtBytes : 0) + MetadataBytes(m) +
         m.payload.size();
}

EncodeError CheckMessage(const MessageSpec& m) {
  if (m.key.size() > kMaxKeyBytes) return EncodeError::kFieldTooLong;
  if (m.headers.size() > kMaxHeaders) return EncodeError::kFieldTooLong;
  for (const Header& h : m.headers) {
    if (h.key.size() > 0xFF || h.value.size() > 0xFFFF) return EncodeError::kFieldTooLong;
  }
  if (HeadersBlockBytes(m.headers) > kMaxHeadersBytes) return EncodeError::kFieldTooLong;
  if (m.dedup_id.size() > 0xFF || m.reply_to.size() > 0xFF || m.correlation_id.size() > 0xFF ||
      m.group_id.size() > 0xFF) {
    return EncodeError::kFieldTooLong;
  }
  if (m.priority > kMaxPriority || m.delay_ms > kMaxDelayMs) return EncodeError::kBadValue;
  if (m.payload.size() > kMaxMessageBytes) return EncodeError::kMessageTooLarge;
  if (m.fragment) {
    if (m.total_len > kMaxMessageBytes) return EncodeError::kMessageTooLarge;
    const size_t len = m.payload.size();
    if (m.partition == kAnyPartition || len == 0 ||
        uint64_t{m.fragment_offset} + len > m.total_len ||
        (m.fragment_offset == 0 && len == m.total_len) ||
        (m.fragment_offset != 0 && MetadataBytes(m) != 0)) {
      return EncodeError::kBadValue;
    }
  }
  return EncodeError::kOk;
}

MessageSpec SpecOf(const MessageView& m, std::span<Header> headers) {
  SLUICE_ASSERT(headers.size() >= m.headers.size());
  size_t n = 0;
  for (const Header& h : m.headers) headers[n++] = h;
  MessageSpec spec;
  spec.partition = m.partition;
  spec.priority = m.priority;
  spec.sequence = m.sequence;
  spec.timestamp_ns = m.timestamp_ns;
  spec.delay_ms = m.delay_ms;
  spec.ttl_ms = m.ttl_ms;
  spec.key = m.key;
  spec.headers = headers.first(n);
  spec.dedup_id = m.dedup_id;
  spec.reply_to = m.reply_to;
  spec.correlation_id = m.correlation_id;
  spec.group_id = m.group_id;
  spec.payload = m.payload;
  return spec;
}

EncodeResult EncodeMessageRecord(std::span<std::byte> out, const MessageSpec& m) {
  EncodeError e = CheckMessage(m);
  if (e != EncodeError::kOk) return e;
  const size_t n = EncodedSize(m);
  if (n > out.size()) return EncodeError::kNoSpace;
  WriteMessage(out.data(), m, n);
  return n;
}

DecodeResult<MessageView> DecodeMessageRecord(std::span<const std::byte> bytes) {
  uint32_t len = 0;
  DecodeError e = CheckMessageRecord(bytes.data(), bytes.size(), &len);
  if (e != DecodeError::kOk) return e;
  MessageView m;
  ParseMessage(bytes.data(), &m);
  return m;
}

MessageView RecordRef::View() const {
  MessageView m;
  ParseMessage(p_, &m);
  return m;
}

size_t ReadRecordAt(const std::byte* p, MessageView* v) {
  ParseMessage(p, v);
  return v->record.size();
}

size_t ReadRecordAt(const std::byte* p, DeliveredView* v) {
  ReadMeta(p, &v->meta);
  ParseMessage(p + kDeliveredMetaBytes, &v->message);
  return kDeliveredMetaBytes + v->message.record.size();
}

// ---- Fragmenter ---------------------------------------------------------------------------------

Fragmenter::Fragmenter(const MessageSpec& whole, size_t max_record_bytes) : whole_(whole) {
  SLUICE_ASSERT(!whole.fragment);
  error_ = CheckMessage(whole);
  if (error_ != EncodeError::kOk) return;
  needed_ = EncodedSize(whole) > max_record_bytes;
  if (!needed_) {
    fragments_ = 1;
    return;
  }
  if (whole.partition == kAnyPartition) {  // later fragments carry no key to hash
    error_ = EncodeError::kBadValue;
    return;
  }
  const size_t first_over = kMessageFixedBytes + kFragmentExtBytes + MetadataBytes(whole);
  const size_t later_over = kMessageFixedBytes + kFragmentExtBytes;
  if (max_record_bytes <= first_over) {
    error_ = EncodeError::kFieldTooLong;
    return;
  }
  first_chunk_ = max_record_bytes - first_over;
  chunk_ = max_record_bytes - later_over;
  const size_t rest = whole.payload.size() - first_chunk_;  // > 0 because needed_
  fragments_ = static_cast<uint32_t>(1 + (rest + chunk_ - 1) / chunk_);
}

bool Fragmenter::Next(MessageSpec* out) {
  if (error_ != EncodeError::kOk || emitted_ == fragments_) return false;
  if (!needed_) {
    *out = whole_;
    ++emitted_;
    return true;
  }
  const size_t total = whole_.payload.size();
  if (emitted_ == 0) {
    *out = whole_;
  } else {
    *out = MessageSpec{};
    out->partition = whole_.partition;
    out->priority = whole_.priority;
    out->sequence = whole_.sequence;
    out->timestamp_ns = whole_.timestamp_ns;
    out->delay_ms = whole_.delay_ms;
    out->ttl_ms = whole_.ttl_ms;
  }
  const size_t n = std::min(total - offset_, emitted_ == 0 ? first_chunk_ : chunk_);
  out->fragment = true;
  out->total_len = static_cast<uint32_t>(total);
  out->fragment_offset = static_cast<uint32_t>(offset_);
  out->payload = whole_.payload.subspan(offset_, n);
  offset_ += n;
  ++emitted_;
  return true;
}

// ---- frame header -------------------------------------------------------------------------------

// FrameHeader is the wire layout, so a header is a copy of the datagram's first 32 bytes.
static_assert(sizeof(FrameHeader) == kHeaderBytes && std::endian::native == std::endian::little);
static_assert(offsetof(FrameHeader, version) == 4 && offsetof(FrameHeader, type) == 5 &&
              offsetof(FrameHeader, flags) == 6 && offsetof(FrameHeader, length) == 8 &&
              offsetof(FrameHeader, count) == 12 && offsetof(FrameHeader, client_id) == 16 &&
              offsetof(FrameHeader, request_id) == 24);

namespace {

// The header checks, on a copy of the header's bytes.
DecodeError CheckHeader(std::span<const std::byte> d) {
  if (d.size() < kHeaderBytes) return DecodeError::kTruncatedHeader;
  FrameHeader h;
  std::memcpy(&h, d.data(), kHeaderBytes);
  if (h.magic != kMagic) return DecodeError::kBadMagic;
  if (h.version != kVersion) return DecodeError::kBadVersion;
  if (!IsKnownFrameType(static_cast<uint8_t>(h.type))) return DecodeError::kUnknownType;
  if ((h.flags & ~kKnownFrameFlags) != 0) return DecodeError::kBadFlags;
  if (h.length > kMaxFrameBytes) return DecodeError::kFrameTooLarge;
  if (h.length != d.size()) return DecodeError::kLengthMismatch;
  if (h.length < kHeaderBytes + ((h.flags & kFlagAuth) != 0 ? kAuthTagBytes : 0)) {
    return DecodeError::kLengthMismatch;
  }
  return DecodeError::kOk;
}

}  // namespace

// A checked header is copied from the datagram in one piece, never assembled from the fields
// the checks read: the compiler rebuilt the first word from constants and byte stores, and every
// caller's first 8-byte read of it waited for those stores (a store-forwarding stall per frame).
DecodeResult<FrameHeader> DecodeHeader(std::span<const std::byte> d) {
  if (DecodeError e = CheckHeader(d); e != DecodeError::kOk) return e;
  FrameHeader h;
  std::memcpy(&h, d.data(), kHeaderBytes);
  return h;
}

DecodeResult<FrameView> DecodeFrame(std::span<const std::byte> d) {
  if (DecodeError e = CheckHeader(d); e != DecodeError::kOk) return e;
  FrameView f;
  std::memcpy(&f.header, d.data(), kHeaderBytes);
  const uint32_t length = f.header.length;
  f.bytes = d.first(length);
  const size_t tag = (f.header.flags & kFlagAuth) != 0 ? kAuthTagBytes : 0;
  f.body = f.bytes.subspan(kHeaderBytes, length - kHeaderBytes - tag);
  if (tag != 0) {
    f.auth_tag = f.bytes.last(tag);
    f.authenticated = f.bytes.first(length - tag);
  }
  return f;
}

// ---- per-type decoders --------------------------------------------------------------------------

namespace {

// DecodeProduce's checks; ValidateFrame needs only the verdict, not a view to throw away.
DecodeError CheckProduce(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kProduce); e != DecodeError::kOk) return e;
  if (f.body.size() < kProducePrefixBytes) return DecodeError::kTruncatedBody;
  if (U32(f.body.data() + 4) != 0) return DecodeError::kReservedNonZero;
  return CheckVariableRecords(f.body.subspan(kProducePrefixBytes), f.header.count, false);
}

}  // namespace

DecodeResult<ProduceView> DecodeProduce(const FrameView& f) {
  if (DecodeError e = CheckProduce(f); e != DecodeError::kOk) return e;
  const std::byte* p = f.body.data();
  auto recs = f.body.subspan(kProducePrefixBytes);
  ProduceView v;
  v.queue_id = U32(p);
  v.producer_id = U64(p + 8);
  v.messages = MessageRange(recs, f.header.count);
  return v;
}

DecodeResult<AckView> DecodeAck(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kAck); e != DecodeError::kOk) return e;
  if (DecodeError e = CheckFixedRecords(f, kAckPrefixBytes, kAckRangeBytes);
      e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U32(p + 4) != 0) return DecodeError::kReservedNonZero;
  auto recs = f.body.subspan(kAckPrefixBytes);
  for (size_t i = 0; i < f.header.count; ++i) {
    const std::byte* r = recs.data() + i * kAckRangeBytes;
    if (U16(r) == kAnyPartition || U32(r + 4) == 0) return DecodeError::kBadValue;
  }
  AckView v;
  v.queue_id = U32(p);
  v.producer_id = U64(p + 8);
  v.ranges = FixedRange<AckRange>(recs, f.header.count);
  return v;
}

DecodeResult<ReceiveRequest> DecodeReceive(const FrameView& f) {
  if (DecodeError e = CheckFixedBody(f, FrameType::kReceive, kReceiveBytes);
      e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U16(p + 18) != 0 || U32(p + 20) != 0) return DecodeError::kReservedNonZero;
  ReceiveRequest r;
  r.queue_id = U32(p);
  r.partition = U16(p + 4);
  r.max_messages = U16(p + 6);
  r.visibility_ms = U32(p + 8);
  r.wait_ms = U32(p + 12);
  r.max_frame_bytes = U16(p + 16);
  if (!ValidMaxMessages(r.max_messages) || !ValidReplyFrameBytes(r.max_frame_bytes) ||
      (r.wait_ms != kQueueDefaultWait && r.wait_ms > kMaxWaitMs) ||
      (r.visibility_ms != kQueueDefaultVisibility && r.visibility_ms > kMaxVisibilityMs)) {
    return DecodeError::kBadValue;
  }
  return r;
}

DecodeResult<MessagesView> DecodeMessages(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kMessages); e != DecodeError::kOk) return e;
  if (f.body.size() < kMessagesPrefixBytes) return DecodeError::kTruncatedBody;
  const std::byte* p = f.body.data();
  if (U16(p + 6) != 0) return DecodeError::kReservedNonZero;
  auto recs = f.body.subspan(kMessagesPrefixBytes);
  if (DecodeError e = CheckVariableRecords(recs, f.header.count, true); e != DecodeError::kOk) {
    return e;
  }
  MessagesView v;
  v.prefix.queue_id = U32(p);
  v.prefix.partition = U16(p + 4);
  v.prefix.next_offset = U64(p + 8);
  v.prefix.high_watermark = U64(p + 16);
  v.messages = DeliveredRange(recs, f.header.count);
  return v;
}

DecodeResult<ReceiptOpsView> DecodeReceiptOps(const FrameView& f) {
  const FrameType t = f.header.type;
  if (t != FrameType::kDelete && t != FrameType::kNack && t != FrameType::kExtend) {
    return DecodeError::kWrongFrameType;
  }
  if (f.header.count == 0) return DecodeError::kUnexpectedCount;  // (amplification: see spec)
  if (DecodeError e = CheckFixedRecords(f, 0, kReceiptOpBytes); e != DecodeError::kOk) return e;
  const uint32_t ms_max = t == FrameType::kNack ? kMaxDelayMs : kMaxVisibilityMs;
  for (size_t i = 0; i < f.header.count; ++i) {
    const std::byte* r = f.body.data() + i * kReceiptOpBytes;
    if (U16(r + 6) != 0 || U32(r + 20) != 0) return DecodeError::kReservedNonZero;
    if (t == FrameType::kDelete && U32(r + 16) != 0) return DecodeError::kReservedNonZero;
    if (U16(r + 4) == kAnyPartition || U64(r + 8) == 0 || U32(r + 16) > ms_max) {
      return DecodeError::kBadValue;
    }
  }
  ReceiptOpsView v;
  v.type = t;
  v.ops = FixedRange<ReceiptOp>(f.body, f.header.count);
  return v;
}

DecodeResult<ResultView> DecodeResultFrame(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kResult); e != DecodeError::kOk) return e;
  if (DecodeError e = CheckFixedRecords(f, kResultPrefixBytes, kResultItemBytes);
      e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U8(p + 1) != 0 || U16(p + 2) != 0 || U32(p + 4) != 0) return DecodeError::kReservedNonZero;
  if (!ValidResultRequestType(U8(p))) return DecodeError::kBadValue;
  auto recs = f.body.subspan(kResultPrefixBytes);
  for (size_t i = 0; i < f.header.count; ++i) {
    if (U16(recs.data() + i * kResultItemBytes + 2) != 0) return DecodeError::kReservedNonZero;
  }
  ResultView v;
  v.request_type = static_cast<FrameType>(U8(p));
  v.items = FixedRange<ResultItem>(recs, f.header.count);
  return v;
}

DecodeResult<SubscribeRequest> DecodeSubscribe(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kSubscribe); e != DecodeError::kOk) return e;
  if (f.header.count != 0) return DecodeError::kUnexpectedCount;
  if (f.body.size() < kSubscribeFixedBytes) return DecodeError::kTruncatedBody;
  const std::byte* p = f.body.data();
  const size_t group_len = U8(p + 15);
  if (DecodeError e = CheckFixedPlusVar(f, kSubscribeFixedBytes, group_len);
      e != DecodeError::kOk) {
    return e;
  }
  if (U32(p + 28) != 0) return DecodeError::kReservedNonZero;
  SubscribeRequest r;
  r.subscription_id = U64(p);
  r.queue_id = U32(p + 8);
  r.partition = U16(p + 12);
  const uint8_t kind = U8(p + 14);
  r.start_value = U64(p + 16);
  r.initial_credits = U32(p + 24);
  r.group = Str(p + kSubscribeFixedBytes, group_len);
  if (r.subscription_id == 0 || !ValidStart(kind, r.start_value, true) ||
      (static_cast<StartKind>(kind) == StartKind::kCommitted && group_len == 0)) {
    return DecodeError::kBadValue;
  }
  r.start_kind = static_cast<StartKind>(kind);
  return r;
}

DecodeResult<DeliverView> DecodeDeliver(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kDeliver); e != DecodeError::kOk) return e;
  if (f.body.size() < kDeliverPrefixBytes) return DecodeError::kTruncatedBody;
  const std::byte* p = f.body.data();
  if (U16(p + 14) != 0) return DecodeError::kReservedNonZero;
  DeliverView v;
  v.prefix.subscription_id = U64(p);
  v.prefix.queue_id = U32(p + 8);
  v.prefix.partition = U16(p + 12);
  v.prefix.high_watermark = U64(p + 16);
  if (v.prefix.partition == kAnyPartition) return DecodeError::kBadValue;
  auto recs = f.body.subspan(kDeliverPrefixBytes);
  if (DecodeError e = CheckVariableRecords(recs, f.header.count, true); e != DecodeError::kOk) {
    return e;
  }
  v.messages = DeliveredRange(recs, f.header.count);
  return v;
}

DecodeResult<CreditGrant> DecodeCredit(const FrameView& f) {
  if (DecodeError e = CheckFixedBody(f, FrameType::kCredit, kCreditBytes); e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U16(p + 10) != 0) return DecodeError::kReservedNonZero;
  CreditGrant r;
  r.subscription_id = U64(p);
  r.partition = U16(p + 8);
  r.credits = U32(p + 12);
  r.next_offset = U64(p + 16);
  if (r.partition == kAnyPartition) return DecodeError::kBadValue;
  return r;
}

DecodeResult<NakRequest> DecodeNak(const FrameView& f) {
  if (DecodeError e = CheckFixedBody(f, FrameType::kNak, kNakBytes); e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U16(p + 10) != 0) return DecodeError::kReservedNonZero;
  NakRequest r;
  r.subscription_id = U64(p);
  r.partition = U16(p + 8);
  r.count = U32(p + 12);
  r.from_offset = U64(p + 16);
  if (r.partition == kAnyPartition || r.count == 0) return DecodeError::kBadValue;
  return r;
}

DecodeResult<FetchRequest> DecodeFetch(const FrameView& f) {
  if (DecodeError e = CheckFixedBody(f, FrameType::kFetch, kFetchBytes); e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U8(p + 7) != 0) return DecodeError::kReservedNonZero;
  FetchRequest r;
  r.queue_id = U32(p);
  r.partition = U16(p + 4);
  const uint8_t kind = U8(p + 6);
  r.start_value = U64(p + 8);
  r.max_messages = U16(p + 16);
  r.max_frame_bytes = U16(p + 18);
  r.max_bytes = U32(p + 20);
  if (r.partition == kAnyPartition || !ValidStart(kind, r.start_value, false) ||
      !ValidMaxMessages(r.max_messages) || !ValidReplyFrameBytes(r.max_frame_bytes)) {
    return DecodeError::kBadValue;
  }
  r.start_kind = static_cast<StartKind>(kind);
  return r;
}

DecodeResult<Heartbeat> DecodeHeartbeat(const FrameView& f) {
  if (DecodeError e = CheckFixedBody(f, FrameType::kHeartbeat, kHeartbeatBytes);
      e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U32(p + 20) != 0) return DecodeError::kReservedNonZero;
  Heartbeat r;
  r.cookie = U64(p);
  r.timestamp_ns = U64(p + 8);
  r.interval_ms = U32(p + 16);
  return r;
}

DecodeResult<ErrorReply> DecodeErrorFrame(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kError); e != DecodeError::kOk) return e;
  if (f.header.count != 0) return DecodeError::kUnexpectedCount;
  if (f.body.size() < kErrorFixedBytes) return DecodeError::kTruncatedBody;
  const std::byte* p = f.body.data();
  const size_t detail_len = U16(p + 2);
  if (DecodeError e = CheckFixedPlusVar(f, kErrorFixedBytes, detail_len); e != DecodeError::kOk) {
    return e;
  }
  if (detail_len > kMaxErrorDetailBytes) return DecodeError::kFieldTooLong;
  if (U8(p + 5) != 0) return DecodeError::kReservedNonZero;
  ErrorReply r;
  r.errc = static_cast<Errc>(U16(p));
  r.request_type = U8(p + 4);
  r.primary_port = U16(p + 6);
  r.primary_ipv4 = U32(p + 8);
  r.retry_after_ms = U32(p + 12);
  r.detail = Str(p + kErrorFixedBytes, detail_len);
  if (r.errc == Errc::kOk) return DecodeError::kBadValue;
  return r;
}

DecodeResult<LookupRequest> DecodeLookup(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kLookup); e != DecodeError::kOk) return e;
  if (f.header.count != 0) return DecodeError::kUnexpectedCount;
  if (f.body.size() < kLookupFixedBytes) return DecodeError::kTruncatedBody;
  const std::byte* p = f.body.data();
  const size_t name_len = U8(p);
  if (DecodeError e = CheckFixedPlusVar(f, kLookupFixedBytes, name_len); e != DecodeError::kOk) {
    return e;
  }
  if (U8(p + 1) != 0 || U16(p + 2) != 0 || U32(p + 4) != 0 || U64(p + 8) != 0) {
    return DecodeError::kReservedNonZero;
  }
  if (name_len == 0) return DecodeError::kBadValue;
  return LookupRequest{Str(p + kLookupFixedBytes, name_len)};
}

DecodeResult<LookupReply> DecodeLookupReply(const FrameView& f) {
  if (DecodeError e = CheckFixedBody(f, FrameType::kLookupReply, kLookupReplyBytes);
      e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U8(p + 7) != 0 || U32(p + 12) != 0) return DecodeError::kReservedNonZero;
  LookupReply r;
  r.queue_id = U32(p);
  r.partitions = U16(p + 4);
  const uint8_t qt = U8(p + 6);
  r.max_message_bytes = U32(p + 8);
  if (r.partitions == 0 || r.partitions > kMaxPartitions ||
      (qt != static_cast<uint8_t>(QueueType::kWorkQueue) &&
       qt != static_cast<uint8_t>(QueueType::kStream)) ||
      r.max_message_bytes > kMaxMessageBytes) {
    return DecodeError::kBadValue;
  }
  r.queue_type = static_cast<QueueType>(qt);
  return r;
}

DecodeResult<UnsubscribeRequest> DecodeUnsubscribe(const FrameView& f) {
  if (DecodeError e = CheckFixedBody(f, FrameType::kUnsubscribe, kUnsubscribeBytes);
      e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U16(p + 10) != 0 || U32(p + 12) != 0) return DecodeError::kReservedNonZero;
  UnsubscribeRequest r;
  r.subscription_id = U64(p);
  r.partition = U16(p + 8);
  if (r.subscription_id == 0) return DecodeError::kBadValue;
  return r;
}

DecodeResult<JoinGroupRequest> DecodeJoinGroup(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kJoinGroup); e != DecodeError::kOk) return e;
  if (f.header.count != 0) return DecodeError::kUnexpectedCount;
  if (f.body.size() < kJoinGroupFixedBytes) return DecodeError::kTruncatedBody;
  const std::byte* p = f.body.data();
  const size_t group_len = U8(p + 5);
  if (DecodeError e = CheckFixedPlusVar(f, kJoinGroupFixedBytes, group_len);
      e != DecodeError::kOk) {
    return e;
  }
  if (U16(p + 6) != 0 || U32(p + 20) != 0) return DecodeError::kReservedNonZero;
  JoinGroupRequest r;
  r.queue_id = U32(p);
  const uint8_t op = U8(p + 4);
  r.member_id = U64(p + 8);
  r.session_timeout_ms = U32(p + 16);
  r.group = Str(p + kJoinGroupFixedBytes, group_len);
  if (group_len == 0 || !ValidJoin(op, r.member_id, r.session_timeout_ms)) {
    return DecodeError::kBadValue;
  }
  r.op = static_cast<GroupOp>(op);
  return r;
}

DecodeResult<GroupStateView> DecodeGroupState(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kGroupState); e != DecodeError::kOk) return e;
  if (DecodeError e = CheckFixedRecords(f, kGroupStatePrefixBytes, kGroupPartitionBytes);
      e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U16(p + 10) != 0) return DecodeError::kReservedNonZero;
  auto recs = f.body.subspan(kGroupStatePrefixBytes);
  for (size_t i = 0; i < f.header.count; ++i) {
    const std::byte* r = recs.data() + i * kGroupPartitionBytes;
    if (U8(r + 3) != 0 || U32(r + 4) != 0) return DecodeError::kReservedNonZero;
    const uint8_t flags = U8(r + 2);
    if ((flags & ~kGroupPartitionCommitted) != 0) return DecodeError::kBadFlags;
    if (U16(r) == kAnyPartition || (flags == 0 && U64(r + 8) != 0)) return DecodeError::kBadValue;
  }
  GroupStateView v;
  v.prefix.queue_id = U32(p);
  v.prefix.generation = U32(p + 4);
  v.prefix.members = U16(p + 8);
  v.prefix.session_timeout_ms = U32(p + 12);
  v.partitions = FixedRange<GroupPartition>(recs, f.header.count);
  return v;
}

DecodeResult<CommitView> DecodeCommit(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kCommit); e != DecodeError::kOk) return e;
  if (f.header.count == 0) return DecodeError::kUnexpectedCount;  // amplification, as DELETE
  if (f.body.size() < kCommitPrefixBytes) return DecodeError::kTruncatedBody;
  const std::byte* p = f.body.data();
  const size_t group_len = U8(p + 16);
  if (U8(p + 17) != 0 || U16(p + 18) != 0 || U32(p + 20) != 0) {
    return DecodeError::kReservedNonZero;
  }
  if (f.body.size() < kCommitPrefixBytes + group_len) return DecodeError::kFieldOverrun;
  const size_t prefix = kCommitPrefixBytes + group_len;
  if (DecodeError e = CheckFixedRecords(f, prefix, kCommitItemBytes); e != DecodeError::kOk) {
    return e;
  }
  auto recs = f.body.subspan(prefix);
  for (size_t i = 0; i < f.header.count; ++i) {
    const std::byte* r = recs.data() + i * kCommitItemBytes;
    if (U16(r + 2) != 0 || U32(r + 4) != 0) return DecodeError::kReservedNonZero;
    if (U16(r) == kAnyPartition) return DecodeError::kBadValue;
  }
  CommitView v;
  v.prefix.queue_id = U32(p);
  v.prefix.generation = U32(p + 4);
  v.prefix.member_id = U64(p + 8);
  v.prefix.group = Str(p + kCommitPrefixBytes, group_len);
  if (group_len == 0 || (v.prefix.member_id == 0 && v.prefix.generation != 0)) {
    return DecodeError::kBadValue;
  }
  v.items = FixedRange<CommitItem>(recs, f.header.count);
  return v;
}

DecodeResult<OpenInboxRequest> DecodeOpenInbox(const FrameView& f) {
  if (DecodeError e = CheckFixedBody(f, FrameType::kOpenInbox, kOpenInboxBytes);
      e != DecodeError::kOk) {
    return e;
  }
  const std::byte* p = f.body.data();
  if (U8(p + 9) != 0 || U16(p + 10) != 0 || U32(p + 12) != 0 || U64(p + 16) != 0) {
    return DecodeError::kReservedNonZero;
  }
  OpenInboxRequest r;
  r.inbox_id = U64(p);
  const uint8_t op = U8(p + 8);
  if (r.inbox_id == 0 || op > kMaxInboxOp) return DecodeError::kBadValue;
  r.op = static_cast<InboxOp>(op);
  return r;
}

DecodeResult<ReplyView> DecodeReply(const FrameView& f) {
  if (DecodeError e = CheckType(f, FrameType::kReply); e != DecodeError::kOk) return e;
  if (f.header.count != 1) return DecodeError::kUnexpectedCount;
  if (f.body.size() < kReplyPrefixBytes) return DecodeError::kTruncatedBody;
  const std::byte* p = f.body.data();
  if (U64(p + 8) != 0) return DecodeError::kReservedNonZero;
  auto recs = f.body.subspan(kReplyPrefixBytes);
  if (DecodeError e = CheckVariableRecords(recs, 1, false); e != DecodeError::kOk) return e;
  ReplyView v;
  v.inbox_id = U64(p);
  v.message = MessageRange(recs, 1).front();
  if (v.inbox_id == 0 || v.message.is_fragment()) return DecodeError::kBadValue;
  return v;
}

DecodeError ValidateFrame(const FrameView& f) {
  switch (f.header.type) {
    case FrameType::kProduce: return CheckProduce(f);
    case FrameType::kAck: return DecodeAck(f).error();
    case FrameType::kReceive: return DecodeReceive(f).error();
    case FrameType::kMessages: return DecodeMessages(f).error();
    case FrameType::kDelete:
    case FrameType::kNack:
    case FrameType::kExtend: return DecodeReceiptOps(f).error();
    case FrameType::kResult: return DecodeResultFrame(f).error();
    case FrameType::kSubscribe: return DecodeSubscribe(f).error();
    case FrameType::kDeliver: return DecodeDeliver(f).error();
    case FrameType::kCredit: return DecodeCredit(f).error();
    case FrameType::kNak: return DecodeNak(f).error();
    case FrameType::kFetch: return DecodeFetch(f).error();
    case FrameType::kHeartbeat: return DecodeHeartbeat(f).error();
    case FrameType::kError: return DecodeErrorFrame(f).error();
    case FrameType::kLookup: return DecodeLookup(f).error();
    case FrameType::kLookupReply: return DecodeLookupReply(f).error();
    case FrameType::kUnsubscribe: return DecodeUnsubscribe(f).error();
    case FrameType::kJoinGroup: return DecodeJoinGroup(f).error();
    case FrameType::kGroupState: return DecodeGroupState(f).error();
    case FrameType::kCommit: return DecodeCommit(f).error();
    case FrameType::kOpenInbox: return DecodeOpenInbox(f).error();
    case FrameType::kReply: return DecodeReply(f).error();
  }
  return DecodeError::kUnknownType;
}

// The per-frame receive step of the dataplane: returning the view through DecodeResult cost a
// copy of it (96 bytes) per frame, a view default-constructed by the caller and filled here a
// zeroing of it, and ValidateFrame's switch a call for the common PRODUCE. The view is built
// once, in the caller's slot.
FrameView DecodeAnyValidFrame(std::span<const std::byte> d, DecodeError* error) {
  if (DecodeError e = CheckHeader(d); e != DecodeError::kOk) {
    *error = e;
    return {};
  }
  FrameHeader h;
  std::memcpy(&h, d.data(), kHeaderBytes);
  const uint32_t length = h.length;
  const std::span<const std::byte> bytes = d.first(length);
  const size_t tag = (h.flags & kFlagAuth) != 0 ? kAuthTagBytes : 0;
  FrameView f{h, bytes.subspan(kHeaderBytes, length - kHeaderBytes - tag),
              tag != 0 ? bytes.last(tag) : std::span<const std::byte>{},
              tag != 0 ? bytes.first(length - tag) : std::span<const std::byte>{}, bytes};
  *error = f.header.type == FrameType::kProduce ? CheckProduce(f) : ValidateFrame(f);
  return f;
}

// ---- FrameWriter --------------------------------------------------------------------------------

EncodeError FrameWriter::Begin(FrameType type, const FrameIds& ids, size_t prefix_bytes) {
  in_frame_ = false;
  if ((ids.flags & ~kKnownFrameFlags) != 0) return EncodeError::kBadValue;
  auth_ = (ids.flags & kFlagAuth) != 0;
  const size_t cap = std::min(buf_.size(), kMaxFrameBytes);
  const size_t tag = auth_ ? kAuthTagBytes : 0;
  if (cap < kHeaderBytes + prefix_bytes + tag) return EncodeError::kNoSpace;
  limit_ = cap - tag;
  WriteHeader(buf_.data(), type, ids, 0, 0);
  pos_ = kHeaderBytes;
  count_ = 0;
  type_ = type;
  in_frame_ = true;
  return EncodeError::kOk;
}

std::byte* FrameWriter::Claim(size_t n) {
  SLUICE_ASSERT(in_frame_);
  if (n > limit_ - pos_) return nullptr;
  std::byte* p = buf_.data() + pos_;
  pos_ += n;
  ++count_;
  return p;
}

EncodeError FrameWriter::BeginProduce(const FrameIds& ids, uint32_t queue_id,
                                      uint64_t producer_id) {
  if (EncodeError e = Begin(FrameType::kProduce, ids, kProducePrefixBytes); e != EncodeError::kOk) {
    return e;
  }
  Out o{buf_.data() + pos_};
  o.U32(queue_id);
  o.U32(0);
  o.U64(producer_id);
  pos_ += kProducePrefixBytes;
  return EncodeError::kOk;
}

EncodeError FrameWriter::AddMessage(const MessageSpec& m) {
  SLUICE_ASSERT(in_frame_ && type_ == FrameType::kProduce);
  if (EncodeError e = CheckMessage(m); e != EncodeError::kOk) return e;
  const size_t n = EncodedSize(m);
  std::byte* p = Claim(n);
  if (p == nullptr) return EncodeError::kNoSpace;
  WriteMessage(p, m, n);
  return EncodeError::kOk;
}

EncodeError FrameWriter::BeginAck(const FrameIds& ids, uint32_t queue_id, uint64_t producer_id) {
  if (EncodeError e = Begin(FrameType::kAck, ids, kAckPrefixBytes); e != EncodeError::kOk) {
    return e;
  }
  Out o{buf_.data() + pos_};
  o.U32(queue_id);
  o.U32(0);
  o.U64(producer_id);
  pos_ += kAckPrefixBytes;
  return EncodeError::kOk;
}

EncodeError FrameWriter::AddAckRange(const AckRange& r) {
  SLUICE_ASSERT(in_frame_ && type_ == FrameType::kAck);
  if (r.partition == kAnyPartition || r.count == 0) return EncodeError::kBadValue;
  std::byte* p = Claim(kAckRangeBytes);
  if (p == nullptr) return EncodeError::kNoSpace;
  Out o{p};
  o.U16(r.partition);
  o.U16(static_cast<uint16_t>(r.errc));
  o.U32(r.count);
  o.U64(r.first_sequence);
  o.U64(r.first_offset);
  return EncodeError::kOk;
}

EncodeError FrameWriter::BeginMessages(const FrameIds& ids, const MessagesPrefix& m) {
  if (EncodeError e = Begin(FrameType::kMessages, ids, kMessagesPrefixBytes);
      e != EncodeError::kOk) {
    return e;
  }
  Out o{buf_.data() + pos_};
  o.U32(m.queue_id);
  o.U16(m.partition);
  o.U16(0);
  o.U64(m.next_offset);
  o.U64(m.high_watermark);
  pos_ += kMessagesPrefixBytes;
  return EncodeError::kOk;
}

EncodeError FrameWriter::BeginDeliver(const FrameIds& ids, const DeliverPrefix& d) {
  if (d.partition == kAnyPartition) {
    in_frame_ = false;
    return EncodeError::kBadValue;
  }
  if (EncodeError e = Begin(FrameType::kDeliver, ids, kDeliverPrefixBytes);
      e != EncodeError::kOk) {
    return e;
  }
  Out o{buf_.data() + pos_};
  o.U64(d.subscription_id);
  o.U32(d.queue_id);
  o.U16(d.partition);
  o.U16(0);
  o.U64(d.high_watermark);
  pos_ += kDeliverPrefixBytes;
  return EncodeError::kOk;
}

EncodeError FrameWriter::AddDelivered(const DeliveredMeta& meta, const MessageSpec& m) {
  SLUICE_ASSERT(in_frame_ && (type_ == FrameType::kMessages || type_ == FrameType::kDeliver));
  if (meta.partition == kAnyPartition) return EncodeError::kBadValue;
  if (EncodeError e = CheckMessage(m); e != EncodeError::kOk) return e;
  const size_t n = EncodedSize(m);
  std::byte* p = Claim(kDeliveredMetaBytes + n);
  if (p == nullptr) return EncodeError::kNoSpace;
  WriteMeta(p, meta);
  WriteMessage(p + kDeliveredMetaBytes, m, n);
  return EncodeError::kOk;
}

EncodeError FrameWriter::AddDeliveredRaw(const DeliveredMeta& meta,
                                         std::span<const std::byte> record) {
  SLUICE_ASSERT(in_frame_ && (type_ == FrameType::kMessages || type_ == FrameType::kDeliver));
  SLUICE_ASSERT(record.size() >= kMessageFixedBytes && U32(record.data()) == record.size());
  if (meta.partition == kAnyPartition) return EncodeError::kBadValue;
  std::byte* p = Claim(kDeliveredMetaBytes + record.size());
  if (p == nullptr) return EncodeError::kNoSpace;
  WriteMeta(p, meta);
  std::memcpy(p + kDeliveredMetaBytes, record.data(), record.size());
  return EncodeError::kOk;
}

EncodeError FrameWriter::BeginReceiptOps(FrameType type, const FrameIds& ids) {
  SLUICE_ASSERT(type == FrameType::kDelete || type == FrameType::kNack ||
                type == FrameType::kExtend);
  return Begin(type, ids, 0);
}

EncodeError FrameWriter::AddReceiptOp(const ReceiptOp& op) {
  SLUICE_ASSERT(in_frame_ && (type_ == FrameType::kDelete || type_ == FrameType::kNack ||
                              type_ == FrameType::kExtend));
  const uint32_t ms_max = type_ == FrameType::kDelete ? 0
                          : type_ == FrameType::kNack ? kMaxDelayMs
                                                      : kMaxVisibilityMs;
  if (op.partition == kAnyPartition || op.receipt == 0 || op.ms > ms_max) {
    return EncodeError::kBadValue;
  }
  std::byte* p = Claim(kReceiptOpBytes);
  if (p == nullptr) return EncodeError::kNoSpace;
  Out o{p};
  o.U32(op.queue_id);
  o.U16(op.partition);
  o.U16(0);
  o.U64(op.receipt);
  o.U32(op.ms);
  o.U32(0);
  return EncodeError::kOk;
}

EncodeError FrameWriter::BeginResult(const FrameIds& ids, FrameType request_type) {
  if (!ValidResultRequestType(static_cast<uint8_t>(request_type))) {
    in_frame_ = false;
    return EncodeError::kBadValue;
  }
  if (EncodeError e = Begin(FrameType::kResult, ids, kResultPrefixBytes); e != EncodeError::kOk) {
    return e;
  }
  Out o{buf_.data() + pos_};
  o.U8(static_cast<uint8_t>(request_type));
  o.U8(0);
  o.U16(0);
  o.U32(0);
  pos_ += kResultPrefixBytes;
  return EncodeError::kOk;
}

EncodeError FrameWriter::AddResult(const ResultItem& item) {
  SLUICE_ASSERT(in_frame_ && type_ == FrameType::kResult);
  std::byte* p = Claim(kResultItemBytes);
  if (p == nullptr) return EncodeError::kNoSpace;
  Out o{p};
  o.U16(static_cast<uint16_t>(item.errc));
  o.U16(0);
  o.U32(item.index);
  o.U64(item.value);
  return EncodeError::kOk;
}

EncodeError FrameWriter::BeginGroupState(const FrameIds& ids, const GroupStatePrefix& g) {
  if (EncodeError e = Begin(FrameType::kGroupState, ids, kGroupStatePrefixBytes);
      e != EncodeError::kOk) {
    return e;
  }
  Out o{buf_.data() + pos_};
  o.U32(g.queue_id);
  o.U32(g.generation);
  o.U16(g.members);
  o.U16(0);
  o.U32(g.session_timeout_ms);
  pos_ += kGroupStatePrefixBytes;
  return EncodeError::kOk;
}

EncodeError FrameWriter::AddGroupPartition(const GroupPartition& gp) {
  SLUICE_ASSERT(in_frame_ && type_ == FrameType::kGroupState);
  if (gp.partition == kAnyPartition || (!gp.committed && gp.offset != 0)) {
    return EncodeError::kBadValue;
  }
  std::byte* p = Claim(kGroupPartitionBytes);
  if (p == nullptr) return EncodeError::kNoSpace;
  Out o{p};
  o.U16(gp.partition);
  o.U8(gp.committed ? kGroupPartitionCommitted : 0);
  o.U8(0);
  o.U32(0);
  o.U64(gp.offset);
  return EncodeError::kOk;
}

EncodeError FrameWriter::BeginCommit(const FrameIds& ids, const CommitPrefix& c) {
  if (c.group.size() > 0xFF) {
    in_frame_ = false;
    return EncodeError::kFieldTooLong;
  }
  if (c.group.empty() || (c.member_id == 0 && c.generation != 0)) {
    in_frame_ = false;
    return EncodeError::kBadValue;
  }
  if (EncodeError e = Begin(FrameType::kCommit, ids, kCommitPrefixBytes + c.group.size());
      e != EncodeError::kOk) {
    return e;
  }
  Out o{buf_.data() + pos_};
  o.U32(c.queue_id);
  o.U32(c.generation);
  o.U64(c.member_id);
  o.U8(static_cast<uint8_t>(c.group.size()));
  o.U8(0);
  o.U16(0);
  o.U32(0);
  o.Str(c.group);
  pos_ += kCommitPrefixBytes + c.group.size();
  return EncodeError::kOk;
}

EncodeError FrameWriter::AddCommit(const CommitItem& item) {
  SLUICE_ASSERT(in_frame_ && type_ == FrameType::kCommit);
  if (item.partition == kAnyPartition) return EncodeError::kBadValue;
  std::byte* p = Claim(kCommitItemBytes);
  if (p == nullptr) return EncodeError::kNoSpace;
  Out o{p};
  o.U16(item.partition);
  o.U16(0);
  o.U32(0);
  o.U64(item.offset);
  return EncodeError::kOk;
}

EncodeResult FrameWriter::Finish() {
  SLUICE_ASSERT(in_frame_);
  in_frame_ = false;
  if (count_ == 0 && (type_ == FrameType::kDelete || type_ == FrameType::kNack ||
                      type_ == FrameType::kExtend || type_ == FrameType::kCommit)) {
    return EncodeError::kBadValue;  // at least one receipt op
  }
  const size_t total = pos_ + (auth_ ? kAuthTagBytes : 0);
  SLUICE_ASSERT(total <= kMaxFrameBytes && total <= buf_.size());
  le::Store(buf_.data() + 8, static_cast<uint32_t>(total));
  le::Store(buf_.data() + 12, count_);
  if (auth_) std::memset(buf_.data() + pos_, 0, kAuthTagBytes);
  return total;
}

// ---- one-shot encoders --------------------------------------------------------------------------

EncodeResult EncodeReceive(std::span<std::byte> out, const FrameIds& ids, const ReceiveRequest& r) {
  if (!ValidMaxMessages(r.max_messages) || !ValidReplyFrameBytes(r.max_frame_bytes) ||
      (r.wait_ms != kQueueDefaultWait && r.wait_ms > kMaxWaitMs) ||
      (r.visibility_ms != kQueueDefaultVisibility && r.visibility_ms > kMaxVisibilityMs)) {
    return EncodeError::kBadValue;
  }
  OneShot s = BeginOneShot(out, FrameType::kReceive, ids, kReceiveBytes);
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U32(r.queue_id);
  o.U16(r.partition);
  o.U16(r.max_messages);
  o.U32(r.visibility_ms);
  o.U32(r.wait_ms);
  o.U16(r.max_frame_bytes);
  o.U16(0);
  o.U32(0);
  return s.total;
}

EncodeResult EncodeSubscribe(std::span<std::byte> out, const FrameIds& ids,
                             const SubscribeRequest& r) {
  if (r.group.size() > 0xFF) return EncodeError::kFieldTooLong;
  if (r.subscription_id == 0 ||
      !ValidStart(static_cast<uint8_t>(r.start_kind), r.start_value, true) ||
      (r.start_kind == StartKind::kCommitted && r.group.empty())) {
    return EncodeError::kBadValue;
  }
  OneShot s = BeginOneShot(out, FrameType::kSubscribe, ids, kSubscribeFixedBytes + r.group.size());
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U64(r.subscription_id);
  o.U32(r.queue_id);
  o.U16(r.partition);
  o.U8(static_cast<uint8_t>(r.start_kind));
  o.U8(static_cast<uint8_t>(r.group.size()));
  o.U64(r.start_value);
  o.U32(r.initial_credits);
  o.U32(0);
  o.Str(r.group);
  return s.total;
}

EncodeResult EncodeCredit(std::span<std::byte> out, const FrameIds& ids, const CreditGrant& r) {
  if (r.partition == kAnyPartition) return EncodeError::kBadValue;
  OneShot s = BeginOneShot(out, FrameType::kCredit, ids, kCreditBytes);
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U64(r.subscription_id);
  o.U16(r.partition);
  o.U16(0);
  o.U32(r.credits);
  o.U64(r.next_offset);
  return s.total;
}

EncodeResult EncodeNak(std::span<std::byte> out, const FrameIds& ids, const NakRequest& r) {
  if (r.partition == kAnyPartition || r.count == 0) return EncodeError::kBadValue;
  OneShot s = BeginOneShot(out, FrameType::kNak, ids, kNakBytes);
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U64(r.subscription_id);
  o.U16(r.partition);
  o.U16(0);
  o.U32(r.count);
  o.U64(r.from_offset);
  return s.total;
}

EncodeResult EncodeFetch(std::span<std::byte> out, const FrameIds& ids, const FetchRequest& r) {
  if (r.partition == kAnyPartition ||
      !ValidStart(static_cast<uint8_t>(r.start_kind), r.start_value, false) ||
      !ValidMaxMessages(r.max_messages) || !ValidReplyFrameBytes(r.max_frame_bytes)) {
    return EncodeError::kBadValue;
  }
  OneShot s = BeginOneShot(out, FrameType::kFetch, ids, kFetchBytes);
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U32(r.queue_id);
  o.U16(r.partition);
  o.U8(static_cast<uint8_t>(r.start_kind));
  o.U8(0);
  o.U64(r.start_value);
  o.U16(r.max_messages);
  o.U16(r.max_frame_bytes);
  o.U32(r.max_bytes);
  return s.total;
}

EncodeResult EncodeHeartbeat(std::span<std::byte> out, const FrameIds& ids, const Heartbeat& r) {
  OneShot s = BeginOneShot(out, FrameType::kHeartbeat, ids, kHeartbeatBytes);
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U64(r.cookie);
  o.U64(r.timestamp_ns);
  o.U32(r.interval_ms);
  o.U32(0);
  return s.total;
}

EncodeResult EncodeErrorFrame(std::span<std::byte> out, const FrameIds& ids, const ErrorReply& r) {
  if (r.errc == Errc::kOk) return EncodeError::kBadValue;
  const size_t tag = (ids.flags & kFlagAuth) != 0 ? kAuthTagBytes : 0;
  const size_t cap = std::min(out.size(), kMaxFrameBytes);
  if (cap < kHeaderBytes + kErrorFixedBytes + tag) return EncodeError::kNoSpace;
  size_t n = std::min({r.detail.size(), kMaxErrorDetailBytes,
                       cap - kHeaderBytes - kErrorFixedBytes - tag});
  FrameIds id2 = ids;
  if (n < r.detail.size()) {
    // Cut at a UTF-8 character boundary.
    while (n > 0 && (static_cast<uint8_t>(r.detail[n]) & 0xC0) == 0x80) --n;
    id2.flags |= kFlagTruncated;
  }
  OneShot s = BeginOneShot(out, FrameType::kError, id2, kErrorFixedBytes + n);
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U16(static_cast<uint16_t>(r.errc));
  o.U16(static_cast<uint16_t>(n));
  o.U8(r.request_type);
  o.U8(0);
  o.U16(r.primary_port);
  o.U32(r.primary_ipv4);
  o.U32(r.retry_after_ms);
  o.Str(r.detail.substr(0, n));
  return s.total;
}

EncodeResult EncodeLookup(std::span<std::byte> out, const FrameIds& ids, const LookupRequest& r) {
  if (r.name.size() > 0xFF) return EncodeError::kFieldTooLong;
  if (r.name.empty()) return EncodeError::kBadValue;
  OneShot s = BeginOneShot(out, FrameType::kLookup, ids, kLookupFixedBytes + r.name.size());
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U8(static_cast<uint8_t>(r.name.size()));
  o.U8(0);
  o.U16(0);
  o.U32(0);
  o.U64(0);
  o.Str(r.name);
  return s.total;
}

EncodeResult EncodeLookupReply(std::span<std::byte> out, const FrameIds& ids, const LookupReply& r) {
  if (r.partitions == 0 || r.partitions > kMaxPartitions ||
      (r.queue_type != QueueType::kWorkQueue && r.queue_type != QueueType::kStream) ||
      r.max_message_bytes > kMaxMessageBytes) {
    return EncodeError::kBadValue;
  }
  OneShot s = BeginOneShot(out, FrameType::kLookupReply, ids, kLookupReplyBytes);
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U32(r.queue_id);
  o.U16(r.partitions);
  o.U8(static_cast<uint8_t>(r.queue_type));
  o.U8(0);
  o.U32(r.max_message_bytes);
  o.U32(0);
  return s.total;
}

EncodeResult EncodeUnsubscribe(std::span<std::byte> out, const FrameIds& ids,
                               const UnsubscribeRequest& r) {
  if (r.subscription_id == 0) return EncodeError::kBadValue;
  OneShot s = BeginOneShot(out, FrameType::kUnsubscribe, ids, kUnsubscribeBytes);
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U64(r.subscription_id);
  o.U16(r.partition);
  o.U16(0);
  o.U32(0);
  return s.total;
}

EncodeResult EncodeJoinGroup(std::span<std::byte> out, const FrameIds& ids,
                             const JoinGroupRequest& r) {
  if (r.group.size() > 0xFF) return EncodeError::kFieldTooLong;
  if (r.group.empty() ||
      !ValidJoin(static_cast<uint8_t>(r.op), r.member_id, r.session_timeout_ms)) {
    return EncodeError::kBadValue;
  }
  OneShot s = BeginOneShot(out, FrameType::kJoinGroup, ids, kJoinGroupFixedBytes + r.group.size());
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U32(r.queue_id);
  o.U8(static_cast<uint8_t>(r.op));
  o.U8(static_cast<uint8_t>(r.group.size()));
  o.U16(0);
  o.U64(r.member_id);
  o.U32(r.session_timeout_ms);
  o.U32(0);
  o.Str(r.group);
  return s.total;
}

EncodeResult EncodeOpenInbox(std::span<std::byte> out, const FrameIds& ids,
                             const OpenInboxRequest& r) {
  if (r.inbox_id == 0 || static_cast<uint8_t>(r.op) > kMaxInboxOp) return EncodeError::kBadValue;
  OneShot s = BeginOneShot(out, FrameType::kOpenInbox, ids, kOpenInboxBytes);
  if (s.error != EncodeError::kOk) return s.error;
  Out o{s.body};
  o.U64(r.inbox_id);
  o.U8(static_cast<uint8_t>(r.op));
  o.U8(0);
  o.U16(0);
  o.U32(0);
  o.U64(0);
  return s.total;
}

EncodeResult EncodeReply(std::span<std::byte> out, const FrameIds& ids, uint64_t inbox_id,
                         const MessageSpec& m) {
  if (inbox_id == 0 || m.fragment) return EncodeError::kBadValue;
  if (EncodeError e = CheckMessage(m); e != EncodeError::kOk) return e;
  const size_t n = EncodedSize(m);
  OneShot s = BeginOneShot(out, FrameType::kReply, ids, kReplyPrefixBytes + n);
  if (s.error != EncodeError::kOk) return s.error;
  le::Store<uint32_t>(out.data() + 12, 1);  // count
  Out o{s.body};
  o.U64(inbox_id);
  o.U64(0);
  WriteMessage(o.p, m, n);
  return s.total;
}

std::string_view FormatInbox(uint64_t inbox_id, std::span<char, 22> buf) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::memcpy(buf.data(), kInboxPrefix.data(), kInboxPrefix.size());
  for (int i = 0; i < 16; ++i) {
    buf[kInboxPrefix.size() + i] = kHex[(inbox_id >> (60 - 4 * i)) & 0xF];
  }
  return std::string_view(buf.data(), kInboxPrefix.size() + 16);
}

std::optional<uint64_t> ParseInbox(std::string_view reply_to) {
  if (reply_to.size() != kInboxPrefix.size() + 16 || reply_to.substr(0, kInboxPrefix.size()) != kInboxPrefix) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : reply_to.substr(kInboxPrefix.size())) {
    v <<= 4;
    if (c >= '0' && c <= '9') v |= static_cast<uint64_t>(c - '0');
    else if (c >= 'a' && c <= 'f') v |= static_cast<uint64_t>(c - 'a' + 10);
    else return std::nullopt;
  }
  if (v == 0) return std::nullopt;
  return v;
}

}  // namespace sluice::protocol
