// The replication link's datagrams (docs/replication.md §2). Pure C++: encoders write into caller
// buffers, the decoder is allocation-free and checks every field against the datagram's length
// and its CRC32C. Little-endian, like the rest of sluice.
//
//   [LinkHeader 24 B][body]
//   HELLO      u64 boot_id, u32 count, u32 client_ipv4, u16 client_port, u16 flags, u16 part,
//              u16 parts (a HELLO of more partitions than one datagram holds is sent in parts),
//              u16 channel, u16 channels, u32 layout shape (ChannelShape), then
//              count x HelloEntry (24 B: queue, partition, log or durable end, epoch_start: where
//              the sender's current epoch began in that log). client_*: the primary's client
//              address (NOT_PRIMARY redirects on the standby), 0 from a standby. flags bit 0
//              (kHelloReplyWanted): the sender has no session with the receiver: answer with a
//              HELLO (a HELLO without it is not answered: no ping-pong).
//   BATCH      BatchFragmentHeader (40 B), then frag_bytes of the batch's on-disk bytes
//   ACK        u32 count, u32 0, count x PartitionOffset               (cumulative durable ends)
//   NAK        u32 queue, u32 partition, u64 from_offset                (next offset expected)
//   HEARTBEAT  u64 sent_ns
//   CATALOG    u64 hash, u32 total_bytes, u32 frag_offset, u32 frag_bytes, u32 0, then the bytes:
//              a fragment of the primary's queue catalog document (metadata replication)
//   CATALOG_ACK u64 hash                                               (standby has it whole)
//   ACKLOG     AckLogHeader (32 B: queue, partition, generation, first_seq, count, bytes), then
//              `count` ack records of the partition's ack log, in sequence order (§ ack-log
//              replication in docs/replication.md): each [u8 kind][u8 group_len][u16 0]
//              [u32 ref_partition][u64 offset][group, zero-padded to 8 bytes]
//   ACKLOG_ACK u32 count, u32 0, count x AckLogPosition (32 B)   (standby: where each partition's
//              ack-log stream stands: received, applied; flags bit 0 = a gap was seen: resend)
//   LOG_START  u32 count, u32 0, count x PartitionOffset   (primary, every second: the first
//              offset each partition's log still holds after retention; the standby removes
//              what lies wholly below it and below its own durable end)
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace sluice::replication {

inline constexpr uint32_t kLinkMagic = 0x50524C53;  // "SLRP" in wire byte order
// 2: HELLO states its channel (docs §1); 3: LOG_START (the standby's retention). Any other
// version is refused (kBadVersion, counted as malformed): both boxes must run the same format.
inline constexpr uint16_t kLinkVersion = 3;
inline constexpr uint32_t kLinkHeaderBytes = 24;
inline constexpr uint32_t kFragmentHeaderBytes = 40;
inline constexpr uint32_t kPartitionOffsetBytes = 16;
inline constexpr uint32_t kHelloEntryBytes = 24;
// Enough for any partition count a HELLO or ACK carries in one datagram of a 9000-byte MTU.
inline constexpr uint32_t kMaxEntriesPerMessage = 512;

enum class MsgType : uint8_t {
  kHello = 1, kBatch = 2, kAck = 3, kNak = 4, kHeartbeat = 5, kCatalog = 6, kCatalogAck = 7,
  kAckLog = 8, kAckLogAck = 9, kLogStart = 10
};
inline constexpr uint8_t kMaxMsgType = 10;
inline constexpr uint32_t kCatalogHeaderBytes = 24;
inline constexpr uint16_t kHelloReplyWanted = 1;
inline constexpr uint32_t kMaxCatalogBytes = 8u << 20;
enum class Role : uint8_t { kPrimary = 1, kStandby = 2 };
std::string_view MsgTypeName(MsgType t);

struct LinkHeader {
  uint32_t magic;
  uint16_t version;
  uint8_t type;     // MsgType
  uint8_t role;     // Role of the sender
  uint32_t length;  // bytes of the whole datagram (header + body)
  uint32_t crc;     // CRC32C of the datagram with this field zero
  uint64_t epoch;   // sender's epoch
};
static_assert(sizeof(LinkHeader) == kLinkHeaderBytes);

struct PartitionOffset {
  uint32_t queue;
  uint32_t partition;
  uint64_t offset;
};
static_assert(sizeof(PartitionOffset) == kPartitionOffsetBytes);

// Replication from several worker lcores (docs/replication.md §1): each lcore that owns shards
// runs its own channel (a PrimaryLink or a StandbyLink over its own queue pair of the link) for
// its own partitions. Channel i of one box talks to channel i of the other, so both boxes must
// split their partitions the same way: `layout` hashes the shard count and which channel owns
// each shard (LayoutShapeHash). A HELLO of another channel or another shape is refused.
struct ChannelShape {
  uint16_t channel = 0;
  uint16_t channels = 1;
  uint32_t layout = 0;
  bool operator==(const ChannelShape&) const = default;
};
// FNV-1a over the shard count and each shard's channel (shard_channel[s]).
uint32_t LayoutShapeHash(std::span<const uint16_t> shard_channel, uint16_t channels);

struct HelloEntry {
  uint32_t queue;
  uint32_t partition;
  uint64_t offset;       // primary: its log end; standby: its durable end
  uint64_t epoch_start;  // primary: offset where its current epoch's writes begin (a deposed
                         // primary rejoining truncates its log there); standby: 0
};
static_assert(sizeof(HelloEntry) == kHelloEntryBytes);

// Ack-log replication (replication/ack_stream.h). Record kinds 1-3 are storage::AckKind's; 4 and
// 5 bracket a snapshot (the whole ack state of the partition) at the start of a generation.
enum class AckRecordKind : uint8_t {
  kDelete = 1, kCommit = 2, kDeletedBelow = 3, kSnapshotBegin = 4, kSnapshotEnd = 5
};
inline constexpr uint32_t kAckLogHeaderBytes = 32;
inline constexpr uint32_t kAckRecordHeaderBytes = 16;
inline constexpr uint32_t kAckLogPositionBytes = 32;
// A commit's group key is "<partition>:<group>" (the ack log's key): a u32 in decimal, a colon
// and the protocol's longest group name (u8 length), so every key the primary logs fits.
inline constexpr uint32_t kMaxAckGroupBytes = 10 + 1 + 255;
inline constexpr uint16_t kAckPositionGap = 1;  // AckLogPosition flags: resend from next_seq

struct AckLogHeader {
  uint32_t queue;
  uint32_t partition;
  uint64_t generation;  // the primary's stream of this partition (a new one starts with a snapshot)
  uint64_t first_seq;   // sequence number of the first record in this datagram
  uint32_t count;       // records
  uint32_t bytes;       // bytes of the records
};
static_assert(sizeof(AckLogHeader) == kAckLogHeaderBytes);

// One ack record (a view: `group` points into the datagram or the sender's ring).
struct AckRecord {
  AckRecordKind kind = AckRecordKind::kDelete;
  uint32_t ref_partition = 0;  // the partition whose data `offset` refers to (a group commit is
                               // logged in partition 0's ack log but names another partition)
  uint64_t offset = 0;
  std::string_view group;      // kCommit: the ack log's key
};
inline constexpr uint32_t AckRecordBytes(size_t group_len) {
  return kAckRecordHeaderBytes + static_cast<uint32_t>((group_len + 7) & ~size_t{7});
}
// Encodes `r` at `out` (AckRecordBytes(r.group.size()) bytes).
void EncodeAckRecord(std::byte* out, const AckRecord& r);
// Decodes the record at `bytes` (which a decoded ACKLOG checked); returns its size.
uint32_t DecodeAckRecord(std::span<const std::byte> bytes, AckRecord* out);

struct AckLogPosition {
  uint32_t queue;
  uint32_t partition;
  uint64_t generation;  // 0: none (a snapshot is needed)
  uint64_t next_seq;    // every record below it was received (in order)
  uint32_t applied_lag; // next_seq - applied (records received, not yet in the ack log), saturated
  uint16_t flags;       // kAckPositionGap
  uint16_t zero;
};
static_assert(sizeof(AckLogPosition) == kAckLogPositionBytes);

struct BatchFragmentHeader {
  uint32_t queue;
  uint32_t partition;
  uint64_t base_offset;  // first record of the batch
  uint64_t end_offset;   // one past its last record
  uint32_t batch_bytes;  // header + payload of the batch (the CRC-covered bytes; no padding)
  uint32_t frag_offset;  // where this fragment's bytes go in the batch
  uint32_t frag_unit;    // every fragment but the last carries exactly this many bytes
  uint32_t frag_bytes;   // bytes in this fragment
};
static_assert(sizeof(BatchFragmentHeader) == kFragmentHeaderBytes);

// A decoded datagram. Views point into the datagram (valid while it is).
struct LinkMessage {
  MsgType type = MsgType::kHeartbeat;
  Role role = Role::kPrimary;
  uint64_t epoch = 0;
  // HELLO
  uint64_t boot_id = 0;
  uint32_t client_ipv4 = 0;  // host order a<<24|b<<16|c<<8|d
  uint16_t client_port = 0;
  uint16_t hello_flags = 0;
  uint16_t hello_part = 0;   // this datagram's index among
  uint16_t hello_parts = 1;  // the parts of one HELLO (>= 1)
  ChannelShape shape{};      // the sender's replication channel and its box's layout shape
  // HELLO / ACK / LOG_START: `count` entries of 16 bytes, unaligned; read with Entry(i).
  uint32_t count = 0;
  std::span<const std::byte> entries;
  // BATCH
  BatchFragmentHeader fragment{};
  std::span<const std::byte> data;
  // NAK
  uint32_t queue = 0;
  uint32_t partition = 0;
  uint64_t from_offset = 0;
  // HEARTBEAT
  uint64_t sent_ns = 0;
  // CATALOG / CATALOG_ACK (data: the fragment's bytes)
  uint64_t catalog_hash = 0;
  uint32_t catalog_bytes = 0;
  uint32_t catalog_offset = 0;

  // ACKLOG (data: the records, checked)
  AckLogHeader acklog{};

  PartitionOffset Entry(uint32_t i) const;     // ACK, LOG_START
  AckLogPosition Position(uint32_t i) const;   // ACKLOG_ACK
  HelloEntry Hello(uint32_t i) const;          // HELLO
};

enum class DecodeError : uint8_t {
  kOk,
  kShort,        // fewer bytes than a header, or than the header's length
  kBadMagic,
  kBadVersion,
  kBadType,
  kBadRole,
  kBadLength,    // body size does not fit the type, or length != datagram size
  kBadCrc,
  kBadFragment,  // fragment outside its batch, zero unit, bytes past the end...
  kTooMany,      // count above kMaxEntriesPerMessage
};
std::string_view DecodeErrorName(DecodeError e);

DecodeError DecodeLink(std::span<const std::byte> datagram, LinkMessage* out);

// Encoders: each writes one datagram into `buf` and returns its size, or 0 if `buf` is too small.
size_t EncodeHello(std::span<std::byte> buf, Role role, uint64_t epoch, uint64_t boot_id,
                   std::span<const HelloEntry> entries, uint32_t client_ipv4 = 0,
                   uint16_t client_port = 0, uint16_t flags = 0, uint16_t part = 0,
                   uint16_t parts = 1, const ChannelShape& shape = {});
// HELLO entries that fit one datagram of `max_datagram_bytes`.
inline constexpr uint32_t HelloEntriesPerDatagram(uint32_t max_datagram_bytes) {
  return (max_datagram_bytes - kLinkHeaderBytes - 32) / kHelloEntryBytes;
}
size_t EncodeAck(std::span<std::byte> buf, Role role, uint64_t epoch,
                 std::span<const PartitionOffset> entries);
// LOG_START: each partition's log start on the primary (at most kMaxEntriesPerMessage).
size_t EncodeLogStart(std::span<std::byte> buf, Role role, uint64_t epoch,
                      std::span<const PartitionOffset> entries);
size_t EncodeNak(std::span<std::byte> buf, Role role, uint64_t epoch, uint32_t queue,
                 uint32_t partition, uint64_t from_offset);
size_t EncodeHeartbeat(std::span<std::byte> buf, Role role, uint64_t epoch, uint64_t sent_ns);
size_t EncodeCatalog(std::span<std::byte> buf, Role role, uint64_t epoch, uint64_t hash,
                     uint32_t total_bytes, uint32_t offset, std::span<const std::byte> bytes);
size_t EncodeCatalogAck(std::span<std::byte> buf, Role role, uint64_t epoch, uint64_t hash);
// ACKLOG: `records` are `h.count` encoded records (h.bytes of them).
size_t EncodeAckLog(std::span<std::byte> buf, Role role, uint64_t epoch, const AckLogHeader& h,
                    std::span<const std::byte> records);
size_t EncodeAckLogAck(std::span<std::byte> buf, Role role, uint64_t epoch,
                       std::span<const AckLogPosition> entries);
size_t EncodeFragment(std::span<std::byte> buf, Role role, uint64_t epoch,
                      const BatchFragmentHeader& h, std::span<const std::byte> bytes);

// The identity of a catalog document: CRC32C in the high half, size in the low half.
uint64_t CatalogHash(std::span<const std::byte> document);

// Largest fragment payload that fits a datagram of `max_datagram_bytes`.
inline constexpr uint32_t FragmentCapacity(uint32_t max_datagram_bytes) {
  return max_datagram_bytes > kLinkHeaderBytes + kFragmentHeaderBytes
             ? max_datagram_bytes - kLinkHeaderBytes - kFragmentHeaderBytes
             : 0;
}

}  // namespace sluice::replication
