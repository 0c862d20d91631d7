// Wire constants of the sluice protocol, version 1: frame header, frame types, flags, limits and
// the byte size of every fixed part. docs/protocol.md is the spec; every number here appears there.
//
// All multi-byte integers on the wire are little-endian. Nothing here allocates or throws.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sluice::protocol {

// ---- frame --------------------------------------------------------------------------------------
inline constexpr uint32_t kMagic = 0x45434C53;  // bytes on the wire: 'S' 'L' 'C' 'E'
inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderBytes = 32;
inline constexpr size_t kAuthTagBytes = 16;        // at the very end of a frame with kFlagAuth
inline constexpr size_t kMaxFrameBytes = 65507;    // largest UDP/IPv4 payload
inline constexpr size_t kDefaultFrameBytes = 1472; // UDP payload on a 1500-byte MTU path

// Frame types. 0 is never valid. Numbers are part of the protocol: never renumber.
enum class FrameType : uint8_t {
  kProduce = 1,      // client -> server: messages for one queue
  kAck = 2,          // server -> client: reply to PRODUCE, coalesced sequence ranges
  kReceive = 3,      // client -> server: work-queue receive (lease), long poll
  kMessages = 4,     // server -> client: reply to RECEIVE and FETCH
  kDelete = 5,       // client -> server: delete leased messages by receipt
  kNack = 6,         // client -> server: give leases back (optionally delayed)
  kExtend = 7,       // client -> server: extend leases
  kResult = 8,       // server -> client: per-item outcome for DELETE/NACK/EXTEND/SUBSCRIBE/UNSUBSCRIBE
  kSubscribe = 9,    // client -> server: start push delivery from a stream partition
  kDeliver = 10,     // server -> client: pushed stream messages
  kCredit = 11,      // client -> server: flow-control window for a subscription
  kNak = 12,         // client -> server: re-send a gap of a subscription
  kFetch = 13,       // client -> server: pull from a stream by offset or time
  kHeartbeat = 14,   // both ways: liveness and source-address verification (cookie)
  kError = 15,       // server -> client: request-level failure
  kLookup = 16,      // client -> server: queue name -> id, type, partition count
  kLookupReply = 17, // server -> client
  kUnsubscribe = 18, // client -> server
  kJoinGroup = 19,   // client -> server: join (heartbeat), leave or describe a consumer group
  kGroupState = 20,  // server -> client: generation, assignment and committed offsets
  kCommit = 21,      // client -> server: commit a group's offsets (fenced by generation)
  kOpenInbox = 22,   // client -> server: open / refresh / close a temporary reply inbox
  kReply = 23,       // client -> server: one reply message for an inbox (request/reply)
};
inline constexpr uint8_t kMaxFrameType = 23;

constexpr bool IsKnownFrameType(uint8_t t) { return t >= 1 && t <= kMaxFrameType; }

constexpr std::string_view FrameTypeName(FrameType t) {
  switch (t) {
    case FrameType::kProduce: return "PRODUCE";
    case FrameType::kAck: return "ACK";
    case FrameType::kReceive: return "RECEIVE";
    case FrameType::kMessages: return "MESSAGES";
    case FrameType::kDelete: return "DELETE";
    case FrameType::kNack: return "NACK";
    case FrameType::kExtend: return "EXTEND";
    case FrameType::kResult: return "RESULT";
    case FrameType::kSubscribe: return "SUBSCRIBE";
    case FrameType::kDeliver: return "DELIVER";
    case FrameType::kCredit: return "CREDIT";
    case FrameType::kNak: return "NAK";
    case FrameType::kFetch: return "FETCH";
    case FrameType::kHeartbeat: return "HEARTBEAT";
    case FrameType::kError: return "ERROR";
    case FrameType::kLookup: return "LOOKUP";
    case FrameType::kLookupReply: return "LOOKUP_REPLY";
    case FrameType::kUnsubscribe: return "UNSUBSCRIBE";
    case FrameType::kJoinGroup: return "JOIN_GROUP";
    case FrameType::kGroupState: return "GROUP_STATE";
    case FrameType::kCommit: return "COMMIT";
    case FrameType::kOpenInbox: return "OPEN_INBOX";
    case FrameType::kReply: return "REPLY";
  }
  return "UNKNOWN_TYPE";
}

// Frame header flags (u16). Any other bit set => DecodeError::kBadFlags (MALFORMED).
inline constexpr uint16_t kFlagAuth = 0x0001;      // a 16-byte auth tag ends the frame
inline constexpr uint16_t kFlagMore = 0x0002;      // reply: more frames follow for this request_id
inline constexpr uint16_t kFlagTruncated = 0x0004; // ERROR: detail cut short (amplification rule)
inline constexpr uint16_t kFlagReplica = 0x0008;   // MESSAGES/DELIVER: served by a standby, from its
                                                   // replicated log (docs/replication.md §6)
inline constexpr uint16_t kKnownFrameFlags = kFlagAuth | kFlagMore | kFlagTruncated | kFlagReplica;

// Header layout (byte offsets).
//   0 u32 magic | 4 u8 version | 5 u8 type | 6 u16 flags | 8 u32 length | 12 u32 count
//  16 u64 client_id | 24 u64 request_id
struct FrameHeader {
  uint32_t magic = kMagic;
  uint8_t version = kVersion;
  FrameType type = FrameType::kHeartbeat;
  uint16_t flags = 0;
  uint32_t length = 0;  // whole frame: header + body + auth tag
  uint32_t count = 0;   // records in the body (0 for fixed-body frame types)
  uint64_t client_id = 0;
  uint64_t request_id = 0;
  friend bool operator==(const FrameHeader&, const FrameHeader&) = default;
};

// ---- addressing ---------------------------------------------------------------------------------
inline constexpr uint16_t kAnyPartition = 0xFFFF;           // PRODUCE: server picks; RECEIVE: any
inline constexpr uint32_t kQueueDefaultVisibility = 0xFFFFFFFF;  // RECEIVE visibility_ms
inline constexpr uint32_t kQueueDefaultWait = 0xFFFFFFFF;        // RECEIVE wait_ms: the queue's receive_wait_ms
inline constexpr uint16_t kMaxPartitions = 0xFFFE;          // partition indexes 0..0xFFFD

enum class QueueType : uint8_t { kWorkQueue = 1, kStream = 2 };

// Where SUBSCRIBE / FETCH start.
enum class StartKind : uint8_t {
  kOffset = 0,     // start_value is an offset
  kEarliest = 1,   // first retained offset; start_value must be 0
  kLatest = 2,     // next offset to be written; start_value must be 0
  kTimestamp = 3,  // first message with server timestamp >= start_value (ns since Unix epoch)
  kCommitted = 4,  // SUBSCRIBE with a group only: the group's committed offset
};
inline constexpr uint8_t kMaxStartKind = 4;

// JOIN_GROUP operations (stream consumer groups, docs/protocol.md §11.1).
enum class GroupOp : uint8_t {
  kJoin = 0,      // join, or heartbeat as a member: answered with this member's assignment
  kLeave = 1,     // leave now (the group rebalances at once)
  kDescribe = 2,  // no membership change: every partition's committed offset
};
inline constexpr uint8_t kMaxGroupOp = 2;
inline constexpr uint8_t kGroupPartitionCommitted = 0x01;  // GROUP_STATE record flag
inline constexpr uint32_t kMinSessionTimeoutMs = 100;
inline constexpr uint32_t kMaxSessionTimeoutMs = 300'000;
inline constexpr uint32_t kDefaultSessionTimeoutMs = 10'000;

// OPEN_INBOX operations (request/reply, docs/protocol.md §11.2).
enum class InboxOp : uint8_t { kOpen = 0, kClose = 1 };  // kOpen also refreshes
inline constexpr uint8_t kMaxInboxOp = 1;
// A message's reply_to naming an inbox: "inbox:" + the inbox id as 16 lower-case hex digits.
inline constexpr std::string_view kInboxPrefix = "inbox:";

// ---- message record -----------------------------------------------------------------------------
// Fixed part (byte offsets within the record):
//   0 u32 record_len | 4 u16 partition | 6 u8 priority | 7 u8 flags | 8 u64 sequence
//  16 u64 timestamp_ns | 24 u32 delay_ms | 28 u32 ttl_ms | 32 u16 key_len | 34 u16 headers_len
//  36 u8 dedup_len | 37 u8 reply_to_len | 38 u8 correlation_len | 39 u8 group_len
//  40 u32 payload_len
//  [44 u32 total_len | 48 u32 fragment_offset]   only when flags has kMsgFlagFragment
// then: key, headers block, dedup id, reply-to, correlation id, group id, payload.
inline constexpr size_t kMessageFixedBytes = 44;
inline constexpr size_t kFragmentExtBytes = 8;
inline constexpr uint8_t kMsgFlagFragment = 0x01;
inline constexpr uint8_t kKnownMessageFlags = kMsgFlagFragment;
inline constexpr uint8_t kMaxPriority = 15;  // 0 = default/lowest, 15 = most urgent

inline constexpr size_t kMaxKeyBytes = 1024;
inline constexpr size_t kMaxHeadersBytes = 8192;  // whole headers block
inline constexpr size_t kMaxHeaders = 64;
inline constexpr size_t kHeaderEntryFixedBytes = 3;  // u8 key_len, u16 value_len
inline constexpr size_t kMaxMessageBytes = 1 << 20;          // payload after reassembly, hard cap
inline constexpr size_t kDefaultMaxMessageBytes = 256 << 10; // queue default

// Delivered record = 40-byte delivery metadata + the message record exactly as produced.
//   0 u64 offset | 8 u64 server_timestamp_ns | 16 u64 receipt | 24 u64 producer_id
//  32 u16 partition | 34 u16 receive_count | 36 u32 reserved
inline constexpr size_t kDeliveredMetaBytes = 40;

// ---- fixed sizes of frame bodies and records (docs/protocol.md has every offset) ----------------
inline constexpr size_t kProducePrefixBytes = 16;   // u32 queue_id, u32 rsv, u64 producer_id
inline constexpr size_t kAckPrefixBytes = 16;       // same as PRODUCE
inline constexpr size_t kAckRangeBytes = 24;
inline constexpr size_t kReceiveBytes = 24;
inline constexpr size_t kMessagesPrefixBytes = 24;
inline constexpr size_t kReceiptOpBytes = 24;       // DELETE / NACK / EXTEND record
inline constexpr size_t kResultPrefixBytes = 8;
inline constexpr size_t kResultItemBytes = 16;
inline constexpr size_t kSubscribeFixedBytes = 32;  // + group name
inline constexpr size_t kDeliverPrefixBytes = 24;
inline constexpr size_t kCreditBytes = 24;
inline constexpr size_t kNakBytes = 24;
inline constexpr size_t kFetchBytes = 24;
inline constexpr size_t kHeartbeatBytes = 24;
inline constexpr size_t kErrorFixedBytes = 16;      // + detail text
inline constexpr size_t kLookupFixedBytes = 16;     // + queue name (padding: amplification rule)
inline constexpr size_t kLookupReplyBytes = 16;
inline constexpr size_t kUnsubscribeBytes = 16;
inline constexpr size_t kJoinGroupFixedBytes = 24;    // + group name
inline constexpr size_t kGroupStatePrefixBytes = 16;
inline constexpr size_t kGroupPartitionBytes = 16;
inline constexpr size_t kCommitPrefixBytes = 24;      // + group name, then commit items
inline constexpr size_t kCommitItemBytes = 16;
inline constexpr size_t kOpenInboxBytes = 24;         // padded: its RESULT is no larger
inline constexpr size_t kReplyPrefixBytes = 16;       // u64 inbox_id, u64 reserved; + 1 record

inline constexpr size_t kMaxErrorDetailBytes = 1024;
inline constexpr uint16_t kMaxReceiveMessages = 1024;  // RECEIVE / FETCH max_messages
inline constexpr uint16_t kMinReplyFrameBytes = 512;   // smallest nonzero max_frame_bytes
inline constexpr uint32_t kMaxDelayMs = 900'000;           // message delay, NACK delay: 15 min
inline constexpr uint32_t kMaxVisibilityMs = 43'200'000;   // RECEIVE / EXTEND lease: 12 h
inline constexpr uint32_t kMaxWaitMs = 60'000;             // RECEIVE long poll: 60 s

// ---- little-endian loads and stores (unaligned-safe; compile to plain moves on x86-64) -----------
namespace le {
template <class T>
inline T Load(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) {
    if constexpr (sizeof(T) == 2) v = static_cast<T>(__builtin_bswap16(v));
    if constexpr (sizeof(T) == 4) v = static_cast<T>(__builtin_bswap32(v));
    if constexpr (sizeof(T) == 8) v = static_cast<T>(__builtin_bswap64(v));
  }
  return v;
}
template <class T>
inline void Store(std::byte* p, T v) {
  if constexpr (std::endian::native == std::endian::big && sizeof(T) > 1) {
    if constexpr (sizeof(T) == 2) v = static_cast<T>(__builtin_bswap16(v));
    if constexpr (sizeof(T) == 4) v = static_cast<T>(__builtin_bswap32(v));
    if constexpr (sizeof(T) == 8) v = static_cast<T>(__builtin_bswap64(v));
  }
  std::memcpy(p, &v, sizeof(T));
}
inline uint8_t U8(const std::byte* p) { return static_cast<uint8_t>(*p); }
inline uint16_t U16(const std::byte* p) { return Load<uint16_t>(p); }
inline uint32_t U32(const std::byte* p) { return Load<uint32_t>(p); }
inline uint64_t U64(const std::byte* p) { return Load<uint64_t>(p); }
}  // namespace le

}  // namespace sluice::protocol
