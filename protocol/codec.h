// Encoder and zero-copy decoder for every sluice frame type (docs/protocol.md).
//
// Decoding: DecodeFrame(datagram) checks the 32-byte header; then the DecodeX(frame) for the
// frame's type checks the whole body — every length, count, reserved field and record — before it
// returns a view. Views (std::string_view / std::span) point into the datagram: nothing is copied
// or allocated, and the datagram must outlive them. Iterating a decoded view cannot fail.
//
// Encoding: FrameWriter writes into a caller-provided buffer; Begin*() writes the header and the
// frame's fixed prefix, Add*() appends one record or reports kNoSpace (leaving the frame as it
// was, so the caller can send it and start another), Finish() patches length and count. One-shot
// EncodeX() functions write the fixed-body frame types.
//
// No exceptions, no virtual calls, no allocation. Programmer errors (Add of the wrong record kind,
// reading the value of a failed result) are SLUICE_ASSERTs; bad input is a DecodeError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "protocol/assert.h"
#include "protocol/errc.h"
#include "protocol/wire.h"

namespace sluice::protocol {

// ---- results ------------------------------------------------------------------------------------

// Why a frame or record was rejected. Numbers are for logs and counters only (not on the wire);
// ToErrc() gives the code a server sends back.
enum class DecodeError : uint8_t {
  kOk = 0,
  kTruncatedHeader,       // fewer than 32 bytes
  kBadMagic,              // magic != kMagic (server: drop silently)
  kBadVersion,            // version != 1                       -> UNSUPPORTED_VERSION
  kUnknownType,           // type byte not a FrameType          -> UNKNOWN_TYPE
  kBadFlags,              // unknown frame or message flag bit
  kLengthMismatch,        // header length != datagram size, or too small for header (+ tag)
  kFrameTooLarge,         // length > kMaxFrameBytes
  kWrongFrameType,        // DecodeX() called on a frame of another type
  kTruncatedBody,         // body shorter than the type's fixed part
  kReservedNonZero,       // a reserved field is not zero
  kUnexpectedCount,       // count != 0 on a fixed-body frame type; 0 on DELETE/NACK/EXTEND
  kCountOverflow,         // count promises more records than the body holds
  kTrailingBytes,         // bytes left after the last record / fixed body
  kRecordTooShort,        // record_len smaller than the record's fixed part
  kRecordOverrun,         // record_len runs past the end of the body
  kFieldOverrun,          // the record's field lengths add up to more than record_len
  kRecordLengthMismatch,  // ... or to less (unaccounted bytes in the record)
  kFieldTooLong,          // a field is longer than its limit (key, headers, detail, name)
  kBadHeaders,            // headers block inconsistent (count, entry lengths)
  kBadFragment,           // fragment fields inconsistent
  kMessageTooLarge,       // fragment total_len > kMaxMessageBytes  -> MESSAGE_TOO_LARGE
  kBadValue,              // a field holds a value the protocol does not allow
};
inline constexpr uint8_t kMaxDecodeError = static_cast<uint8_t>(DecodeError::kBadValue);

std::string_view DecodeErrorName(DecodeError e);
// The Errc a server answers with (kMalformed unless the error says otherwise).
Errc ToErrc(DecodeError e);

enum class EncodeError : uint8_t {
  kOk = 0,
  kNoSpace,          // the buffer (or the frame's maximum size) cannot hold it
  kFieldTooLong,     // a field exceeds its wire limit (key > 1024 bytes, name > 255, ...)
  kBadValue,         // a value the protocol does not allow (priority > 15, partition 0xFFFF ...)
  kMessageTooLarge,  // payload > kMaxMessageBytes
};
std::string_view EncodeErrorName(EncodeError e);

// A value or an error. E{} (kOk) means "has a value".
template <class T, class E>
class Expected {
 public:
  Expected(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  Expected(E error) : error_(error) { SLUICE_ASSERT(error != E{}); }  // NOLINT
  bool has_value() const { return error_ == E{}; }
  explicit operator bool() const { return has_value(); }
  E error() const { return error_; }
  const T& value() const& {
    SLUICE_ASSERT(has_value());
    return value_;
  }
  T& value() & {
    SLUICE_ASSERT(has_value());
    return value_;
  }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

 private:
  T value_{};
  E error_{};
};
template <class T>
using DecodeResult = Expected<T, DecodeError>;
using EncodeResult = Expected<size_t, EncodeError>;  // bytes written

// ---- fixed records and fixed bodies (same struct for encode and decode) --------------------------

// ACK record: `count` consecutive sequences from first_sequence got consecutive offsets from
// first_offset (errc OK or DUPLICATE), or all failed with errc (first_offset 0).
struct AckRange {
  uint16_t partition = 0;
  Errc errc = Errc::kOk;
  uint32_t count = 0;
  uint64_t first_sequence = 0;
  uint64_t first_offset = 0;
  friend bool operator==(const AckRange&, const AckRange&) = default;
};

// DELETE / NACK / EXTEND record. `ms`: DELETE 0; NACK re-delivery delay; EXTEND new visibility
// timeout from now.
struct ReceiptOp {
  uint32_t queue_id = 0;
  uint16_t partition = 0;
  uint64_t receipt = 0;
  uint32_t ms = 0;
  friend bool operator==(const ReceiptOp&, const ReceiptOp&) = default;
};

// RESULT record: outcome of record `index` of the request. `value`: SUBSCRIBE start offset
// resolved; EXTEND the granted visibility in ms; otherwise 0.
struct ResultItem {
  Errc errc = Errc::kOk;
  uint32_t index = 0;
  uint64_t value = 0;
  friend bool operator==(const ResultItem&, const ResultItem&) = default;
};

// ---- inline record readers (wire layout in wire.h / docs/protocol.md) ----------------------------

inline void ReadRecord(const std::byte* p, AckRange* r) {
  r->partition = le::U16(p);
  r->errc = static_cast<Errc>(le::U16(p + 2));
  r->count = le::U32(p + 4);
  r->first_sequence = le::U64(p + 8);
  r->first_offset = le::U64(p + 16);
}
inline void ReadRecord(const std::byte* p, ReceiptOp* r) {
  r->queue_id = le::U32(p);
  r->partition = le::U16(p + 4);
  r->receipt = le::U64(p + 8);
  r->ms = le::U32(p + 16);
}
inline void ReadRecord(const std::byte* p, ResultItem* r) {
  r->errc = static_cast<Errc>(le::U16(p));
  r->index = le::U32(p + 4);
  r->value = le::U64(p + 8);
}
template <class T>
inline constexpr size_t kRecordBytes = 0;
template <>
inline constexpr size_t kRecordBytes<AckRange> = kAckRangeBytes;
template <>
inline constexpr size_t kRecordBytes<ReceiptOp> = kReceiptOpBytes;
template <>
inline constexpr size_t kRecordBytes<ResultItem> = kResultItemBytes;

struct ReceiveRequest {
  uint32_t queue_id = 0;
  uint16_t partition = kAnyPartition;
  uint16_t max_messages = 1;                       // 1..kMaxReceiveMessages
  uint32_t visibility_ms = kQueueDefaultVisibility;
  uint32_t wait_ms = 0;  // long poll; 0 = answer at once; kQueueDefaultWait = the queue's
  uint16_t max_frame_bytes = 0;                    // reply datagram cap; 0 = 1472
  friend bool operator==(const ReceiveRequest&, const ReceiveRequest&) = default;
};

struct MessagesPrefix {  // MESSAGES (reply to RECEIVE / FETCH)
  uint32_t queue_id = 0;
  uint16_t partition = kAnyPartition;  // FETCH: the partition; RECEIVE: kAnyPartition
  uint64_t next_offset = 0;            // FETCH: offset to fetch next; RECEIVE: 0
  uint64_t high_watermark = 0;         // FETCH: partition end offset; RECEIVE: visible backlog
  friend bool operator==(const MessagesPrefix&, const MessagesPrefix&) = default;
};

struct DeliverPrefix {  // DELIVER (push for a subscription)
  uint64_t subscription_id = 0;
  uint32_t queue_id = 0;
  uint16_t partition = 0;
  uint64_t high_watermark = 0;  // partition end offset when sent
  friend bool operator==(const DeliverPrefix&, const DeliverPrefix&) = default;
};

struct DeliveredMeta {
  uint64_t offset = 0;
  uint64_t server_timestamp_ns = 0;
  uint64_t receipt = 0;      // work-queue lease handle; 0 for streams
  uint64_t producer_id = 0;  // with message.sequence: consumer-side dedup
  uint16_t partition = 0;
  uint16_t receive_count = 0;
  friend bool operator==(const DeliveredMeta&, const DeliveredMeta&) = default;
};

struct SubscribeRequest {
  uint64_t subscription_id = 0;  // client-chosen, unique per client_id
  uint32_t queue_id = 0;
  uint16_t partition = 0;        // kAnyPartition = every partition
  StartKind start_kind = StartKind::kLatest;
  uint64_t start_value = 0;      // offset or timestamp_ns; 0 for earliest/latest/committed
  uint32_t initial_credits = 0;  // window: deliver offsets < start + initial_credits
  std::string_view group;        // consumer group (<= 255 bytes), empty = none
  friend bool operator==(const SubscribeRequest&, const SubscribeRequest&) = default;
};

// CREDIT: the server may deliver offsets < next_offset + credits on this subscription partition.
// Absolute, so a lost or repeated CREDIT does no harm.
struct CreditGrant {
  uint64_t subscription_id = 0;
  uint16_t partition = 0;       // never kAnyPartition
  uint32_t credits = 0;
  uint64_t next_offset = 0;     // lowest offset not yet consumed (group: the committed offset)
  friend bool operator==(const CreditGrant&, const CreditGrant&) = default;
};

struct NakRequest {  // re-send [from_offset, from_offset + count)
  uint64_t subscription_id = 0;
  uint16_t partition = 0;
  uint32_t count = 0;
  uint64_t from_offset = 0;
  friend bool operator==(const NakRequest&, const NakRequest&) = default;
};

struct FetchRequest {
  uint32_t queue_id = 0;
  uint16_t partition = 0;
  StartKind start_kind = StartKind::kOffset;  // not kCommitted
  uint64_t start_value = 0;
  uint16_t max_messages = 1;    // 1..kMaxReceiveMessages
  uint16_t max_frame_bytes = 0; // reply datagram cap; 0 = 1472
  uint32_t max_bytes = 0;       // cap on payload bytes over all reply frames; 0 = no cap
  friend bool operator==(const FetchRequest&, const FetchRequest&) = default;
};

struct Heartbeat {
  uint64_t cookie = 0;        // server's address-verification cookie (0 on first contact)
  uint64_t timestamp_ns = 0;  // sender's clock
  uint32_t interval_ms = 0;   // sender's heartbeat period
  friend bool operator==(const Heartbeat&, const Heartbeat&) = default;
};

struct ErrorReply {
  Errc errc = Errc::kInternal;
  uint8_t request_type = 0;      // the FrameType answered (raw: may be unknown), 0 if none
  uint32_t primary_ipv4 = 0;     // NOT_PRIMARY: a.b.c.d as (a<<24)|(b<<16)|(c<<8)|d
  uint16_t primary_port = 0;     // NOT_PRIMARY: UDP port
  uint32_t retry_after_ms = 0;   // THROTTLED: suggested back-off
  std::string_view detail;       // UTF-8, <= kMaxErrorDetailBytes
  friend bool operator==(const ErrorReply&, const ErrorReply&) = default;
};

struct LookupRequest {
  std::string_view name;  // 1..255 bytes
  friend bool operator==(const LookupRequest&, const LookupRequest&) = default;
};

struct LookupReply {
  uint32_t queue_id = 0;
  uint16_t partitions = 0;  // 1..kMaxPartitions
  QueueType queue_type = QueueType::kWorkQueue;
  uint32_t max_message_bytes = 0;
  friend bool operator==(const LookupReply&, const LookupReply&) = default;
};

struct UnsubscribeRequest {
  uint64_t subscription_id = 0;
  uint16_t partition = kAnyPartition;  // kAnyPartition = all partitions of the subscription
  friend bool operator==(const UnsubscribeRequest&, const UnsubscribeRequest&) = default;
};

// JOIN_GROUP (docs/protocol.md §6.17): op kJoin (also the member's heartbeat), kLeave, kDescribe.
struct JoinGroupRequest {
  uint32_t queue_id = 0;
  GroupOp op = GroupOp::kJoin;
  uint64_t member_id = 0;          // kJoin/kLeave: non-zero, chosen by the client; kDescribe: 0
  uint32_t session_timeout_ms = 0; // kJoin: 0 = default, else 100..300000; otherwise 0
  std::string_view group;          // 1..255 bytes
  friend bool operator==(const JoinGroupRequest&, const JoinGroupRequest&) = default;
};

struct GroupStatePrefix {  // GROUP_STATE (reply to JOIN_GROUP)
  uint32_t queue_id = 0;
  uint32_t generation = 0;          // 0: the group has no members (never had, or all left)
  uint16_t members = 0;
  uint32_t session_timeout_ms = 0;  // kJoin: the session granted; otherwise 0
  friend bool operator==(const GroupStatePrefix&, const GroupStatePrefix&) = default;
};

// GROUP_STATE record: a partition (assigned to the member, or every partition for kDescribe) and
// the group's committed offset for it, if any.
struct GroupPartition {
  uint16_t partition = 0;  // never kAnyPartition
  bool committed = false;
  uint64_t offset = 0;     // the next offset to consume; 0 when !committed
  friend bool operator==(const GroupPartition&, const GroupPartition&) = default;
};

struct CommitPrefix {  // COMMIT
  uint32_t queue_id = 0;
  uint32_t generation = 0;  // the generation the member's assignment came with
  uint64_t member_id = 0;   // 0 with generation 0: an administrative commit (group without members)
  std::string_view group;   // 1..255 bytes
  friend bool operator==(const CommitPrefix&, const CommitPrefix&) = default;
};

struct CommitItem {
  uint16_t partition = 0;  // never kAnyPartition
  uint64_t offset = 0;     // next offset to consume
  friend bool operator==(const CommitItem&, const CommitItem&) = default;
};

// OPEN_INBOX: a temporary destination for replies, pushed to the opener as DELIVER frames with
// subscription_id = inbox_id and queue_id 0 (docs/protocol.md §11.2).
struct OpenInboxRequest {
  uint64_t inbox_id = 0;  // non-zero, chosen by the client
  InboxOp op = InboxOp::kOpen;
  friend bool operator==(const OpenInboxRequest&, const OpenInboxRequest&) = default;
};

inline void ReadRecord(const std::byte* p, GroupPartition* r) {
  r->partition = le::U16(p);
  r->committed = (le::U8(p + 2) & kGroupPartitionCommitted) != 0;
  r->offset = le::U64(p + 8);
}
inline void ReadRecord(const std::byte* p, CommitItem* r) {
  r->partition = le::U16(p);
  r->offset = le::U64(p + 8);
}
template <>
inline constexpr size_t kRecordBytes<GroupPartition> = kGroupPartitionBytes;
template <>
inline constexpr size_t kRecordBytes<CommitItem> = kCommitItemBytes;

// ---- message record -----------------------------------------------------------------------------

struct Header {
  std::string_view key;    // <= 255 bytes
  std::string_view value;  // <= 65535 bytes
  friend bool operator==(const Header&, const Header&) = default;
};

// The headers block of a decoded message (already validated): iterate to get Header values.
class HeadersView {
 public:
  HeadersView() = default;
  // `block` is the whole block including its u16 count, already validated; empty = no headers.
  explicit HeadersView(std::span<const std::byte> block) : block_(block) {}
  size_t size() const { return block_.empty() ? 0 : le::U16(block_.data()); }
  bool empty() const { return size() == 0; }
  std::span<const std::byte> bytes() const { return block_; }

  class iterator {
   public:
    using value_type = Header;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(const std::byte* p, size_t left) : p_(p), left_(left) { Load(); }
    const Header& operator*() const { return cur_; }
    const Header* operator->() const { return &cur_; }
    iterator& operator++() {
      p_ += kHeaderEntryFixedBytes + cur_.key.size() + cur_.value.size();
      --left_;
      Load();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.left_ == 0; }

   private:
    void Load() {
      if (left_ == 0) return;
      size_t k = le::U8(p_), v = le::U16(p_ + 1);
      const char* s = reinterpret_cast<const char*>(p_ + kHeaderEntryFixedBytes);
      cur_ = Header{std::string_view(s, k), std::string_view(s + k, v)};
    }
    const std::byte* p_ = nullptr;
    size_t left_ = 0;
    Header cur_;
  };
  iterator begin() const { return block_.empty() ? iterator() : iterator(block_.data() + 2, size()); }
  std::default_sentinel_t end() const { return {}; }

 private:
  std::span<const std::byte> block_;
};

// One decoded message record; every view points into the frame.
struct MessageView {
  uint16_t partition = kAnyPartition;
  uint8_t priority = 0;
  uint8_t flags = 0;
  uint64_t sequence = 0;
  uint64_t timestamp_ns = 0;  // producer's; 0 = server stamps
  uint32_t delay_ms = 0;
  uint32_t ttl_ms = 0;        // 0 = queue default
  uint32_t total_len = 0;       // whole payload length (== payload.size() unless a fragment)
  uint32_t fragment_offset = 0; // where `payload` sits in the whole payload
  std::string_view key;
  HeadersView headers;
  std::string_view dedup_id;
  std::string_view reply_to;        // queue name
  std::string_view correlation_id;
  std::string_view group_id;        // FIFO message group
  std::span<const std::byte> payload;
  std::span<const std::byte> record;  // the whole encoded record, to store or forward verbatim

  bool is_fragment() const { return (flags & kMsgFlagFragment) != 0; }
};

// What to encode as one message record.
struct MessageSpec {
  uint16_t partition = kAnyPartition;
  uint8_t priority = 0;  // 0..kMaxPriority
  uint64_t sequence = 0;
  uint64_t timestamp_ns = 0;
  uint32_t delay_ms = 0;
  uint32_t ttl_ms = 0;
  std::string_view key;              // <= kMaxKeyBytes
  std::span<const Header> headers;   // <= kMaxHeaders, block <= kMaxHeadersBytes
  std::string_view dedup_id;         // <= 255
  std::string_view reply_to;         // <= 255
  std::string_view correlation_id;   // <= 255
  std::string_view group_id;         // <= 255
  std::span<const std::byte> payload;
  // Fragments only (Fragmenter fills these): payload is bytes [fragment_offset, +size) of total_len.
  bool fragment = false;
  uint32_t total_len = 0;
  uint32_t fragment_offset = 0;
};

// The spec that re-encodes a decoded, unfragmented message: every metadata field and the payload,
// with the headers copied into `headers` (at least kMaxHeaders entries; the views still point into
// the record). Used to fragment a stored record for delivery, or to rebuild one.
MessageSpec SpecOf(const MessageView& m, std::span<Header> headers);

// Size of the encoded record (record_len), and whether the spec is encodable.
size_t EncodedSize(const MessageSpec& m);
EncodeError CheckMessage(const MessageSpec& m);
// Writes one message record at the start of `out` (as stored by a shard).
EncodeResult EncodeMessageRecord(std::span<std::byte> out, const MessageSpec& m);
// Decodes and validates the message record at the start of `bytes` (which may hold more after it;
// view.record.size() is how much it used).
DecodeResult<MessageView> DecodeMessageRecord(std::span<const std::byte> bytes);

// Splits a message too large for one record of `max_record_bytes` into fragment specs: fragment 0
// carries all metadata, the others only sequence/partition/priority and a payload slice.
//   Fragmenter f(spec, RecordBudget(1472, false));
//   for (MessageSpec frag; f.Next(&frag);) { writer.AddMessage(frag) ... }
class Fragmenter {
 public:
  Fragmenter(const MessageSpec& whole, size_t max_record_bytes);
  EncodeError error() const { return error_; }   // kFieldTooLong: metadata alone does not fit
  bool needed() const { return needed_; }        // false: the message fits unfragmented
  uint32_t fragments() const { return fragments_; }
  bool Next(MessageSpec* out);                   // the whole message once when !needed()

 private:
  MessageSpec whole_;
  size_t first_chunk_ = 0;
  size_t chunk_ = 0;
  size_t offset_ = 0;
  uint32_t fragments_ = 0;
  uint32_t emitted_ = 0;
  bool needed_ = false;
  EncodeError error_ = EncodeError::kOk;
};

// Largest message record that fits in an otherwise empty PRODUCE frame of `frame_bytes`.
constexpr size_t RecordBudget(size_t frame_bytes, bool auth) {
  size_t over = kHeaderBytes + kProducePrefixBytes + (auth ? kAuthTagBytes : 0);
  return frame_bytes > over ? frame_bytes - over : 0;
}

// ---- decoded frames -----------------------------------------------------------------------------

struct FrameView {
  FrameHeader header;
  std::span<const std::byte> body;           // between header and tag
  std::span<const std::byte> auth_tag;       // 16 bytes when kFlagAuth, else empty
  std::span<const std::byte> authenticated;  // bytes the tag covers: [0, length - 16)
  std::span<const std::byte> bytes;          // the whole frame
};

// Header checks only (magic, version, type, flags, length == datagram.size()).
DecodeResult<FrameHeader> DecodeHeader(std::span<const std::byte> datagram);
// Header checks, and splits body / tag.
DecodeResult<FrameView> DecodeFrame(std::span<const std::byte> datagram);

// Records of one fixed size, validated; random access.
template <class T>
class FixedRange {
 public:
  FixedRange() = default;
  FixedRange(std::span<const std::byte> bytes, uint32_t count) : bytes_(bytes), count_(count) {}
  uint32_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  T operator[](size_t i) const;  // i < size()
  std::span<const std::byte> bytes() const { return bytes_; }

  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(const std::byte* p) : p_(p) {}
    T operator*() const {
      T v;
      ReadRecord(p_, &v);
      return v;
    }
    iterator& operator++() {
      p_ += kRecordBytes<T>;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) { return a.p_ == b.p_; }

   private:
    const std::byte* p_ = nullptr;
  };
  iterator begin() const { return iterator(bytes_.data()); }
  iterator end() const { return iterator(bytes_.data() + size_t{count_} * kRecordBytes<T>); }

 private:
  std::span<const std::byte> bytes_;
  uint32_t count_ = 0;
};

// One message record of a validated frame, read in place: each accessor loads what it is asked
// for, nothing is decoded up front. The worker's walks over a PRODUCE (route, append) need a few
// fields of each record; a MessageView fills all of them (about 90 instructions per record, the
// largest part of an x1 frame's decode). Only for records ValidateFrame (or DecodeProduce)
// accepted: nothing is checked here.
class RecordRef {
 public:
  RecordRef() = default;
  explicit RecordRef(const std::byte* p) : p_(p) {}
  const std::byte* data() const { return p_; }
  uint32_t size() const { return le::U32(p_); }  // record_len
  std::span<const std::byte> record() const { return {p_, size()}; }
  uint16_t partition() const { return le::U16(p_ + 4); }
  uint8_t priority() const { return le::U8(p_ + 6); }
  uint8_t flags() const { return le::U8(p_ + 7); }
  bool is_fragment() const { return (flags() & kMsgFlagFragment) != 0; }
  uint64_t sequence() const { return le::U64(p_ + 8); }
  uint64_t timestamp_ns() const { return le::U64(p_ + 16); }
  uint32_t delay_ms() const { return le::U32(p_ + 24); }
  uint32_t ttl_ms() const { return le::U32(p_ + 28); }
  // The variable fields' lengths are one word at 32: key u16, headers u16, then dedup, reply_to,
  // correlation and group u8 each (wire.h); one load gives every offset.
  std::string_view key() const { return Field(0, LengthsWord() & 0xFFFF); }
  std::string_view dedup_id() const {
    const uint64_t w = LengthsWord();
    return Field((w & 0xFFFF) + ((w >> 16) & 0xFFFF), (w >> 32) & 0xFF);
  }
  std::string_view group_id() const {
    const uint64_t w = LengthsWord();
    const size_t before = (w & 0xFFFF) + ((w >> 16) & 0xFFFF) + ((w >> 32) & 0xFF) +
                          ((w >> 40) & 0xFF) + ((w >> 48) & 0xFF);
    return Field(before, w >> 56);
  }
  // Both at once, from one load of the lengths; when the record has none of dedup id, reply-to,
  // correlation id and group (the common shape) both are empty (nullptr) without adding anything.
  void DedupAndGroup(std::string_view* dedup, std::string_view* group) const {
    const uint64_t w = LengthsWord();
    if ((w >> 32) == 0) {
      *dedup = {};
      *group = {};
      return;
    }
    const char* v = reinterpret_cast<const char*>(p_) + FixedBytes() + (w & 0xFFFF) +
                    ((w >> 16) & 0xFFFF);
    const size_t dedup_len = (w >> 32) & 0xFF;
    *dedup = std::string_view(v, dedup_len);
    *group = std::string_view(v + dedup_len + ((w >> 40) & 0xFF) + ((w >> 48) & 0xFF), w >> 56);
  }
  // The payload (a fragment's slice for a fragment): the record's last payload_len bytes
  // (ValidateFrame checked that the lengths add up to record_len).
  std::span<const std::byte> payload() const {
    const uint32_t n = le::U32(p_ + 40);
    return {p_ + size() - n, n};
  }
  // The whole record decoded (every field), as MessageRange's iterator yields it.
  MessageView View() const;

 private:
  uint64_t LengthsWord() const { return le::U64(p_ + 32); }
  size_t FixedBytes() const { return kMessageFixedBytes + (is_fragment() ? kFragmentExtBytes : 0); }
  std::string_view Field(size_t at, size_t n) const {
    return std::string_view(reinterpret_cast<const char*>(p_ + FixedBytes() + at), n);
  }
  const std::byte* p_ = nullptr;
};

// The records of a validated PRODUCE as RecordRefs (MessageRange::records()).
class RecordRange {
 public:
  RecordRange(const std::byte* p, uint32_t count) : p_(p), count_(count) {}
  class iterator {
   public:
    using value_type = RecordRef;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(const std::byte* p, uint32_t left) : p_(p), left_(left) {}
    RecordRef operator*() const { return RecordRef(p_); }
    iterator& operator++() {
      p_ += le::U32(p_);
      --left_;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.left_ == 0; }

   private:
    const std::byte* p_ = nullptr;
    uint32_t left_ = 0;
  };
  iterator begin() const { return iterator(p_, count_); }
  std::default_sentinel_t end() const { return {}; }

 private:
  const std::byte* p_;
  uint32_t count_;
};

struct DeliveredView;
// Reads the validated variable-size record at p into *v (which keeps pointing into the frame);
// returns the record's size in bytes.
size_t ReadRecordAt(const std::byte* p, MessageView* v);
size_t ReadRecordAt(const std::byte* p, DeliveredView* v);

// Records of varying size (a View each), validated; read in order. The iterator owns the view it
// yields: copy it (or use front()) to keep it past the iterator.
template <class View>
class RecordList {
 public:
  RecordList() = default;
  RecordList(std::span<const std::byte> bytes, uint32_t count) : bytes_(bytes), count_(count) {}
  uint32_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  std::span<const std::byte> bytes() const { return bytes_; }

  class iterator {
   public:
    using value_type = View;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(const std::byte* p, uint32_t left) : p_(p), left_(left) {
      if (left_ != 0) size_ = ReadRecordAt(p_, &cur_);
    }
    const View& operator*() const { return cur_; }
    const View* operator->() const { return &cur_; }
    iterator& operator++() {
      p_ += size_;
      if (--left_ != 0) size_ = ReadRecordAt(p_, &cur_);
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.left_ == 0; }

   private:
    const std::byte* p_ = nullptr;
    uint32_t left_ = 0;
    size_t size_ = 0;
    View cur_;
  };
  iterator begin() const { return iterator(bytes_.data(), count_); }
  std::default_sentinel_t end() const { return {}; }
  View front() const {
    SLUICE_ASSERT(count_ != 0);
    return *begin();
  }

 private:
  std::span<const std::byte> bytes_;
  uint32_t count_ = 0;
};

// Message records (PRODUCE body), validated.
class MessageRange : public RecordList<MessageView> {
 public:
  using RecordList::RecordList;
  // The same records, read in place (RecordRef): for walks that need a few fields of each.
  RecordRange records() const { return RecordRange(bytes().data(), size()); }
};

struct DeliveredView {
  DeliveredMeta meta;
  MessageView message;
};

// Delivered records (MESSAGES / DELIVER body), validated.
using DeliveredRange = RecordList<DeliveredView>;

struct ProduceView {
  uint32_t queue_id = 0;
  uint64_t producer_id = 0;
  MessageRange messages;
};
struct AckView {
  uint32_t queue_id = 0;
  uint64_t producer_id = 0;
  FixedRange<AckRange> ranges;
};
struct MessagesView {
  MessagesPrefix prefix;
  DeliveredRange messages;
};
struct DeliverView {
  DeliverPrefix prefix;
  DeliveredRange messages;
};
struct ReceiptOpsView {
  FrameType type = FrameType::kDelete;  // kDelete, kNack or kExtend
  FixedRange<ReceiptOp> ops;
};
struct ResultView {
  FrameType request_type = FrameType::kDelete;
  FixedRange<ResultItem> items;
};

struct GroupStateView {
  GroupStatePrefix prefix;
  FixedRange<GroupPartition> partitions;
};
struct CommitView {
  CommitPrefix prefix;
  FixedRange<CommitItem> items;
};
struct ReplyView {
  uint64_t inbox_id = 0;
  MessageView message;  // exactly one, unfragmented
};

// One decoder per frame type. Each checks that frame.header.type matches (else kWrongFrameType).
DecodeResult<ProduceView> DecodeProduce(const FrameView& f);
// The same view without re-checking the records, for a frame whose ValidateFrame returned kOk
// (the dataplane validates once on receipt, then routes and appends: three walks become one).
// Inline: two calls per PRODUCE on the worker's path (route, append).
inline ProduceView DecodeValidatedProduce(const FrameView& f) {
  SLUICE_ASSERT(f.header.type == FrameType::kProduce && f.body.size() >= kProducePrefixBytes);
  const std::byte* p = f.body.data();
  ProduceView v;
  v.queue_id = le::U32(p);
  v.producer_id = le::U64(p + 8);
  v.messages = MessageRange(f.body.subspan(kProducePrefixBytes), f.header.count);
  return v;
}
DecodeResult<AckView> DecodeAck(const FrameView& f);
DecodeResult<ReceiveRequest> DecodeReceive(const FrameView& f);
DecodeResult<MessagesView> DecodeMessages(const FrameView& f);
DecodeResult<ReceiptOpsView> DecodeReceiptOps(const FrameView& f);  // DELETE, NACK, EXTEND
DecodeResult<ResultView> DecodeResultFrame(const FrameView& f);
DecodeResult<SubscribeRequest> DecodeSubscribe(const FrameView& f);
DecodeResult<DeliverView> DecodeDeliver(const FrameView& f);
DecodeResult<CreditGrant> DecodeCredit(const FrameView& f);
DecodeResult<NakRequest> DecodeNak(const FrameView& f);
DecodeResult<FetchRequest> DecodeFetch(const FrameView& f);
DecodeResult<Heartbeat> DecodeHeartbeat(const FrameView& f);
DecodeResult<ErrorReply> DecodeErrorFrame(const FrameView& f);
DecodeResult<LookupRequest> DecodeLookup(const FrameView& f);
DecodeResult<LookupReply> DecodeLookupReply(const FrameView& f);
DecodeResult<UnsubscribeRequest> DecodeUnsubscribe(const FrameView& f);
DecodeResult<JoinGroupRequest> DecodeJoinGroup(const FrameView& f);
DecodeResult<GroupStateView> DecodeGroupState(const FrameView& f);
DecodeResult<CommitView> DecodeCommit(const FrameView& f);
DecodeResult<OpenInboxRequest> DecodeOpenInbox(const FrameView& f);
DecodeResult<ReplyView> DecodeReply(const FrameView& f);

// Runs the decoder of the frame's type; kOk when the whole frame is valid.
DecodeError ValidateFrame(const FrameView& f);

// DecodeFrame and ValidateFrame in one call: the same checks in the same order, so the same
// error for every datagram, in *error. A PRODUCE's checks run inline. The view is meaningful
// only when *error is kOk.
FrameView DecodeAnyValidFrame(std::span<const std::byte> datagram, DecodeError* error);

// Whether `datagram` is a valid PRODUCE of the most common shape: no frame flags, one record,
// not a fragment, no headers block. True only when every check DecodeFrame and ValidateFrame
// make passes (they are all here, compared a word at a time, in no particular order: only the
// verdict "valid" is given); false says nothing (DecodeAnyValidFrame finds out). The worker's
// check of an x1 frame: ~175 instructions through the general walk, ~50 here.
inline bool IsCommonProduce(std::span<const std::byte> datagram) {
  const size_t n = datagram.size();
  if (n < kHeaderBytes + kProducePrefixBytes + kMessageFixedBytes || n > kMaxFrameBytes) {
    return false;
  }
  const std::byte* p = datagram.data();
  // Magic, version, type PRODUCE and flags 0 (bytes 0..7); length n and count 1 (8..15).
  constexpr uint64_t kWord0 = uint64_t{kMagic} | uint64_t{kVersion} << 32 |
                              uint64_t{static_cast<uint8_t>(FrameType::kProduce)} << 40;
  if (le::U64(p) != kWord0 || le::U64(p + 8) != (uint64_t{n} | uint64_t{1} << 32)) return false;
  if (le::U32(p + kHeaderBytes + 4) != 0) return false;  // the prefix's reserved word
  // The record fills the rest of the body (no trailing bytes); message flags 0 (not a fragment,
  // nothing unknown), priority and delay in range.
  const std::byte* r = p + kHeaderBytes + kProducePrefixBytes;
  const uint32_t record_len = le::U32(r);
  if (record_len != n - kHeaderBytes - kProducePrefixBytes || le::U8(r + 7) != 0 ||
      le::U8(r + 6) > kMaxPriority || le::U32(r + 24) > kMaxDelayMs) {
    return false;
  }
  // Lengths (key u16, headers u16, dedup, reply-to, correlation, group u8): no headers block,
  // the key and the payload within their limits, and everything adding up to record_len.
  const uint64_t lengths = le::U64(r + 32);
  const uint64_t key_len = lengths & 0xFFFF;
  const uint64_t payload_len = le::U32(r + 40);
  if (((lengths >> 16) & 0xFFFF) != 0 || key_len > kMaxKeyBytes ||
      payload_len > kMaxMessageBytes) {
    return false;
  }
  return kMessageFixedBytes + key_len + ((lengths >> 32) & 0xFF) + ((lengths >> 40) & 0xFF) +
             ((lengths >> 48) & 0xFF) + (lengths >> 56) + payload_len ==
         record_len;
}

// DecodeAnyValidFrame, with the common PRODUCE accepted inline (the dataplane's receive step).
inline FrameView DecodeValidFrame(std::span<const std::byte> datagram, DecodeError* error) {
  if (IsCommonProduce(datagram)) [[likely]] {
    *error = DecodeError::kOk;
    FrameHeader h;
    std::memcpy(&h, datagram.data(), kHeaderBytes);
    // What DecodeFrame gives for it: length == size, no auth tag.
    return FrameView{h, datagram.subspan(kHeaderBytes), {}, {}, datagram};
  }
  return DecodeAnyValidFrame(datagram, error);
}

// ---- encoding -----------------------------------------------------------------------------------

struct FrameIds {
  uint64_t client_id = 0;
  uint64_t request_id = 0;
  uint16_t flags = 0;  // kFlagAuth reserves a 16-byte tag (zeroed; the caller fills it); kFlagMore
};

// Builds one frame with records in `buf`. Reusable: Begin*() after Finish() starts a new frame.
class FrameWriter {
 public:
  explicit FrameWriter(std::span<std::byte> buf) : buf_(buf) {}

  EncodeError BeginProduce(const FrameIds& ids, uint32_t queue_id, uint64_t producer_id);
  EncodeError AddMessage(const MessageSpec& m);

  EncodeError BeginAck(const FrameIds& ids, uint32_t queue_id, uint64_t producer_id);
  EncodeError AddAckRange(const AckRange& r);

  EncodeError BeginMessages(const FrameIds& ids, const MessagesPrefix& p);
  EncodeError BeginDeliver(const FrameIds& ids, const DeliverPrefix& p);
  EncodeError AddDelivered(const DeliveredMeta& meta, const MessageSpec& m);
  // `record` is a message record exactly as produced (MessageView::record), copied verbatim.
  EncodeError AddDeliveredRaw(const DeliveredMeta& meta, std::span<const std::byte> record);

  EncodeError BeginReceiptOps(FrameType type, const FrameIds& ids);  // kDelete, kNack, kExtend
  EncodeError AddReceiptOp(const ReceiptOp& op);

  EncodeError BeginResult(const FrameIds& ids, FrameType request_type);
  EncodeError AddResult(const ResultItem& item);

  EncodeError BeginGroupState(const FrameIds& ids, const GroupStatePrefix& p);
  EncodeError AddGroupPartition(const GroupPartition& gp);

  // kFieldTooLong / kBadValue for a group name that is empty or longer than 255 bytes.
  EncodeError BeginCommit(const FrameIds& ids, const CommitPrefix& p);
  EncodeError AddCommit(const CommitItem& item);

  // Patches length and count, zeroes the auth tag; returns the frame size (frame = buf[0, n)).
  // kBadValue for a DELETE/NACK/EXTEND/COMMIT frame with no record.
  EncodeResult Finish();

  bool in_frame() const { return in_frame_; }
  FrameType type() const { return type_; }
  uint32_t count() const { return count_; }
  size_t size() const { return pos_; }  // bytes written so far, without the tag
  // Bytes still free for records (the tag is already set aside).
  size_t remaining() const { return limit_ - pos_; }
  std::span<std::byte> buffer() const { return buf_; }

 private:
  EncodeError Begin(FrameType type, const FrameIds& ids, size_t prefix_bytes);
  std::byte* Claim(size_t n);  // nullptr when it does not fit

  std::span<std::byte> buf_;
  size_t pos_ = 0;
  size_t limit_ = 0;  // buf_.size() - tag, capped at kMaxFrameBytes - tag
  uint32_t count_ = 0;
  FrameType type_ = FrameType::kHeartbeat;
  bool auth_ = false;
  bool in_frame_ = false;
};

// Fixed-body frames.
EncodeResult EncodeReceive(std::span<std::byte> out, const FrameIds& ids, const ReceiveRequest& r);
EncodeResult EncodeSubscribe(std::span<std::byte> out, const FrameIds& ids,
                             const SubscribeRequest& r);
EncodeResult EncodeCredit(std::span<std::byte> out, const FrameIds& ids, const CreditGrant& r);
EncodeResult EncodeNak(std::span<std::byte> out, const FrameIds& ids, const NakRequest& r);
EncodeResult EncodeFetch(std::span<std::byte> out, const FrameIds& ids, const FetchRequest& r);
EncodeResult EncodeHeartbeat(std::span<std::byte> out, const FrameIds& ids, const Heartbeat& r);
// The detail is cut to fit `out` (setting kFlagTruncated) rather than failing: a server answering
// an unverified source passes `out` no larger than the request. kNoSpace only when even an empty
// detail does not fit.
EncodeResult EncodeErrorFrame(std::span<std::byte> out, const FrameIds& ids, const ErrorReply& r);
EncodeResult EncodeLookup(std::span<std::byte> out, const FrameIds& ids, const LookupRequest& r);
EncodeResult EncodeLookupReply(std::span<std::byte> out, const FrameIds& ids, const LookupReply& r);
EncodeResult EncodeUnsubscribe(std::span<std::byte> out, const FrameIds& ids,
                               const UnsubscribeRequest& r);
EncodeResult EncodeJoinGroup(std::span<std::byte> out, const FrameIds& ids,
                             const JoinGroupRequest& r);
EncodeResult EncodeOpenInbox(std::span<std::byte> out, const FrameIds& ids,
                             const OpenInboxRequest& r);
// REPLY with one message record (not a fragment: kBadValue; too big for `out`: kNoSpace).
EncodeResult EncodeReply(std::span<std::byte> out, const FrameIds& ids, uint64_t inbox_id,
                         const MessageSpec& m);
// "inbox:<16 hex digits>" for an inbox id, and back (nullopt if `reply_to` names no inbox).
std::string_view FormatInbox(uint64_t inbox_id, std::span<char, 22> buf);
std::optional<uint64_t> ParseInbox(std::string_view reply_to);

// The tag of a finished frame with kFlagAuth (last 16 bytes), and the bytes it covers.
inline std::span<std::byte> AuthTagOf(std::span<std::byte> frame) {
  SLUICE_ASSERT(frame.size() >= kHeaderBytes + kAuthTagBytes);
  return frame.last(kAuthTagBytes);
}
inline std::span<const std::byte> AuthenticatedBytesOf(std::span<const std::byte> frame) {
  SLUICE_ASSERT(frame.size() >= kHeaderBytes + kAuthTagBytes);
  return frame.first(frame.size() - kAuthTagBytes);
}

template <class T>
T FixedRange<T>::operator[](size_t i) const {
  SLUICE_ASSERT(i < count_);
  T v;
  ReadRecord(bytes_.data() + i * kRecordBytes<T>, &v);
  return v;
}

}  // namespace sluice::protocol
