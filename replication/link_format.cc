#include "replication/link_format.h"

#include <cstring>

#include "protocol/assert.h"
#include "storage/crc32c.h"

namespace sluice::replication {
namespace {

void Finish(std::span<std::byte> dgram) {
  // CRC over the datagram with the crc field zero, then stored in place.
  std::memset(dgram.data() + offsetof(LinkHeader, crc), 0, sizeof(uint32_t));
  const uint32_t crc = storage::Crc32c(dgram);
  std::memcpy(dgram.data() + offsetof(LinkHeader, crc), &crc, sizeof crc);
}

size_t Begin(std::span<std::byte> buf, size_t total, MsgType type, Role role, uint64_t epoch) {
  if (buf.size() < total) return 0;
  LinkHeader h{kLinkMagic, kLinkVersion, static_cast<uint8_t>(type), static_cast<uint8_t>(role),
               static_cast<uint32_t>(total), 0, epoch};
  std::memcpy(buf.data(), &h, sizeof h);
  return total;
}

constexpr size_t kHelloPrefixBytes = 32;

template <typename E>
size_t EncodeEntries(std::span<std::byte> buf, MsgType type, Role role, uint64_t epoch,
                     uint64_t boot_id, std::span<const E> entries, uint32_t client_ipv4 = 0,
                     uint16_t client_port = 0, uint16_t flags = 0, uint16_t part = 0,
                     uint16_t parts = 1, const ChannelShape& shape = {}) {
  if (entries.size() > kMaxEntriesPerMessage) return 0;
  const size_t prefix = type == MsgType::kHello ? kHelloPrefixBytes : 8;
  const size_t total = kLinkHeaderBytes + prefix + entries.size() * sizeof(E);
  if (Begin(buf, total, type, role, epoch) == 0) return 0;
  std::byte* p = buf.data() + kLinkHeaderBytes;
  if (type == MsgType::kHello) {
    std::memcpy(p, &boot_id, 8);
    p += 8;
  }
  const uint32_t count = static_cast<uint32_t>(entries.size());
  const uint32_t zero = 0;
  std::memcpy(p, &count, 4);
  if (type == MsgType::kHello) {
    std::memcpy(p + 4, &client_ipv4, 4);
    std::memcpy(p + 8, &client_port, 2);
    std::memcpy(p + 10, &flags, 2);
    std::memcpy(p + 12, &part, 2);
    std::memcpy(p + 14, &parts, 2);
    std::memcpy(p + 16, &shape.channel, 2);
    std::memcpy(p + 18, &shape.channels, 2);
    std::memcpy(p + 20, &shape.layout, 4);
    p += 24;
  } else {
    std::memcpy(p + 4, &zero, 4);
    p += 8;
  }
  if (!entries.empty()) std::memcpy(p, entries.data(), entries.size() * sizeof(E));
  Finish(buf.first(total));
  return total;
}

}  // namespace

std::string_view MsgTypeName(MsgType t) {
  switch (t) {
    case MsgType::kHello: return "HELLO";
    case MsgType::kBatch: return "BATCH";
    case MsgType::kAck: return "ACK";
    case MsgType::kNak: return "NAK";
    case MsgType::kHeartbeat: return "HEARTBEAT";
    case MsgType::kCatalog: return "CATALOG";
    case MsgType::kCatalogAck: return "CATALOG_ACK";
    case MsgType::kAckLog: return "ACKLOG";
    case MsgType::kAckLogAck: return "ACKLOG_ACK";
    case MsgType::kLogStart: return "LOG_START";
  }
  return "?";
}

std::string_view DecodeErrorName(DecodeError e) {
  switch (e) {
    case DecodeError::kOk: return "ok";
    case DecodeError::kShort: return "short";
    case DecodeError::kBadMagic: return "bad-magic";
    case DecodeError::kBadVersion: return "bad-version";
    case DecodeError::kBadType: return "bad-type";
    case DecodeError::kBadRole: return "bad-role";
    case DecodeError::kBadLength: return "bad-length";
    case DecodeError::kBadCrc: return "bad-crc";
    case DecodeError::kBadFragment: return "bad-fragment";
    case DecodeError::kTooMany: return "too-many";
  }
  return "?";
}

HelloEntry LinkMessage::Hello(uint32_t i) const {
  HelloEntry e;
  std::memcpy(&e, entries.data() + size_t{i} * kHelloEntryBytes, sizeof e);
  return e;
}

AckLogPosition LinkMessage::Position(uint32_t i) const {
  AckLogPosition e;
  std::memcpy(&e, entries.data() + size_t{i} * kAckLogPositionBytes, sizeof e);
  return e;
}

void EncodeAckRecord(std::byte* out, const AckRecord& r) {
  const uint32_t n = AckRecordBytes(r.group.size());
  std::memset(out, 0, n);
  SLUICE_ASSERT(r.group.size() <= kMaxAckGroupBytes);
  out[0] = static_cast<std::byte>(r.kind);
  const uint16_t len = static_cast<uint16_t>(r.group.size());
  std::memcpy(out + 2, &len, 2);
  std::memcpy(out + 4, &r.ref_partition, 4);
  std::memcpy(out + 8, &r.offset, 8);
  if (!r.group.empty()) std::memcpy(out + kAckRecordHeaderBytes, r.group.data(), r.group.size());
}

uint32_t DecodeAckRecord(std::span<const std::byte> b, AckRecord* out) {
  out->kind = static_cast<AckRecordKind>(b[0]);
  uint16_t len;
  std::memcpy(&len, b.data() + 2, 2);
  std::memcpy(&out->ref_partition, b.data() + 4, 4);
  std::memcpy(&out->offset, b.data() + 8, 8);
  out->group = std::string_view(reinterpret_cast<const char*>(b.data() + kAckRecordHeaderBytes), len);
  return AckRecordBytes(len);
}

PartitionOffset LinkMessage::Entry(uint32_t i) const {
  PartitionOffset e;
  std::memcpy(&e, entries.data() + size_t{i} * kPartitionOffsetBytes, sizeof e);
  return e;
}

DecodeError DecodeLink(std::span<const std::byte> d, LinkMessage* out) {
  if (d.size() < kLinkHeaderBytes) return DecodeError::kShort;
  LinkHeader h;
  std::memcpy(&h, d.data(), sizeof h);
  if (h.magic != kLinkMagic) return DecodeError::kBadMagic;
  if (h.version != kLinkVersion) return DecodeError::kBadVersion;
  if (h.length != d.size()) return h.length > d.size() ? DecodeError::kShort : DecodeError::kBadLength;
  if (h.type < 1 || h.type > kMaxMsgType) return DecodeError::kBadType;
  if (h.role != 1 && h.role != 2) return DecodeError::kBadRole;
  // CRC with the field taken as zero: continue the CRC over the three parts.
  const uint32_t zero = 0;
  const size_t at = offsetof(LinkHeader, crc);
  uint32_t crc = storage::Crc32c(d.first(at));
  crc = storage::Crc32c({reinterpret_cast<const std::byte*>(&zero), 4}, crc);
  crc = storage::Crc32c(d.subspan(at + 4), crc);
  if (crc != h.crc) return DecodeError::kBadCrc;

  *out = LinkMessage{};
  out->type = static_cast<MsgType>(h.type);
  out->role = static_cast<Role>(h.role);
  out->epoch = h.epoch;
  std::span<const std::byte> body = d.subspan(kLinkHeaderBytes);
  switch (out->type) {
    case MsgType::kHello:
    case MsgType::kAck:
    case MsgType::kLogStart: {
      const size_t prefix = out->type == MsgType::kHello ? kHelloPrefixBytes : 8;
      if (body.size() < prefix) return DecodeError::kBadLength;
      size_t p = 0;
      if (out->type == MsgType::kHello) {
        std::memcpy(&out->boot_id, body.data(), 8);
        std::memcpy(&out->client_ipv4, body.data() + 12, 4);
        std::memcpy(&out->client_port, body.data() + 16, 2);
        std::memcpy(&out->hello_flags, body.data() + 18, 2);
        std::memcpy(&out->hello_part, body.data() + 20, 2);
        std::memcpy(&out->hello_parts, body.data() + 22, 2);
        std::memcpy(&out->shape.channel, body.data() + 24, 2);
        std::memcpy(&out->shape.channels, body.data() + 26, 2);
        std::memcpy(&out->shape.layout, body.data() + 28, 4);
        if (out->hello_parts == 0) out->hello_parts = 1;
        if (out->shape.channels == 0 || out->shape.channel >= out->shape.channels) {
          return DecodeError::kBadLength;
        }
        if (out->hello_part >= out->hello_parts) return DecodeError::kBadLength;
        p = 8;
      }
      std::memcpy(&out->count, body.data() + p, 4);
      if (out->count > kMaxEntriesPerMessage) return DecodeError::kTooMany;
      const size_t entry = out->type == MsgType::kHello ? kHelloEntryBytes : kPartitionOffsetBytes;
      if (body.size() != prefix + size_t{out->count} * entry) {
        return DecodeError::kBadLength;
      }
      out->entries = body.subspan(prefix);
      return DecodeError::kOk;
    }
    case MsgType::kAckLogAck: {
      if (body.size() < 8) return DecodeError::kBadLength;
      std::memcpy(&out->count, body.data(), 4);
      if (out->count > kMaxEntriesPerMessage) return DecodeError::kTooMany;
      if (body.size() != 8 + size_t{out->count} * kAckLogPositionBytes) return DecodeError::kBadLength;
      out->entries = body.subspan(8);
      return DecodeError::kOk;
    }
    case MsgType::kAckLog: {
      if (body.size() < kAckLogHeaderBytes) return DecodeError::kBadLength;
      AckLogHeader& a = out->acklog;
      std::memcpy(&a, body.data(), sizeof a);
      if (body.size() != kAckLogHeaderBytes + size_t{a.bytes}) return DecodeError::kBadLength;
      if (a.count == 0 || a.count > a.bytes / kAckRecordHeaderBytes) return DecodeError::kBadFragment;
      // Every record lies inside, has a known kind and its padding fills the bytes exactly.
      const std::span<const std::byte> recs = body.subspan(kAckLogHeaderBytes);
      size_t pos = 0;
      for (uint32_t i = 0; i < a.count; ++i) {
        if (pos + kAckRecordHeaderBytes > recs.size()) return DecodeError::kBadFragment;
        const uint8_t kind = static_cast<uint8_t>(recs[pos]);
        uint16_t len;
        std::memcpy(&len, recs.data() + pos + 2, 2);
        if (kind < 1 || kind > 5 || recs[pos + 1] != std::byte{0} || len > kMaxAckGroupBytes) {
          return DecodeError::kBadFragment;
        }
        pos += AckRecordBytes(len);
      }
      if (pos != recs.size()) return DecodeError::kBadFragment;
      out->data = recs;
      return DecodeError::kOk;
    }
    case MsgType::kNak:
      if (body.size() != 16) return DecodeError::kBadLength;
      std::memcpy(&out->queue, body.data(), 4);
      std::memcpy(&out->partition, body.data() + 4, 4);
      std::memcpy(&out->from_offset, body.data() + 8, 8);
      return DecodeError::kOk;
    case MsgType::kHeartbeat:
      if (body.size() != 8) return DecodeError::kBadLength;
      std::memcpy(&out->sent_ns, body.data(), 8);
      return DecodeError::kOk;
    case MsgType::kCatalogAck:
      if (body.size() != 8) return DecodeError::kBadLength;
      std::memcpy(&out->catalog_hash, body.data(), 8);
      return DecodeError::kOk;
    case MsgType::kCatalog: {
      if (body.size() < kCatalogHeaderBytes) return DecodeError::kBadLength;
      uint32_t frag = 0;
      std::memcpy(&out->catalog_hash, body.data(), 8);
      std::memcpy(&out->catalog_bytes, body.data() + 8, 4);
      std::memcpy(&out->catalog_offset, body.data() + 12, 4);
      std::memcpy(&frag, body.data() + 16, 4);
      if (body.size() != kCatalogHeaderBytes + size_t{frag}) return DecodeError::kBadLength;
      if (out->catalog_bytes > kMaxCatalogBytes ||
          uint64_t{out->catalog_offset} + frag > out->catalog_bytes ||
          (frag == 0 && out->catalog_bytes != 0)) {
        return DecodeError::kBadFragment;
      }
      out->data = body.subspan(kCatalogHeaderBytes);
      return DecodeError::kOk;
    }
    case MsgType::kBatch: {
      if (body.size() < kFragmentHeaderBytes) return DecodeError::kBadLength;
      BatchFragmentHeader& f = out->fragment;
      std::memcpy(&f, body.data(), sizeof f);
      if (body.size() != kFragmentHeaderBytes + size_t{f.frag_bytes}) return DecodeError::kBadLength;
      // The fragment must lie inside its batch, on a unit boundary, full-sized unless last.
      if (f.frag_unit == 0 || f.frag_bytes == 0 || f.end_offset <= f.base_offset ||
          f.frag_offset % f.frag_unit != 0 || uint64_t{f.frag_offset} + f.frag_bytes > f.batch_bytes ||
          f.frag_bytes > f.frag_unit ||
          (f.frag_bytes != f.frag_unit && f.frag_offset + f.frag_bytes != f.batch_bytes)) {
        return DecodeError::kBadFragment;
      }
      out->data = body.subspan(kFragmentHeaderBytes);
      return DecodeError::kOk;
    }
  }
  return DecodeError::kBadType;
}

size_t EncodeHello(std::span<std::byte> buf, Role role, uint64_t epoch, uint64_t boot_id,
                   std::span<const HelloEntry> entries, uint32_t client_ipv4,
                   uint16_t client_port, uint16_t flags, uint16_t part, uint16_t parts,
                   const ChannelShape& shape) {
  return EncodeEntries(buf, MsgType::kHello, role, epoch, boot_id, entries, client_ipv4,
                       client_port, flags, part, parts, shape);
}

uint32_t LayoutShapeHash(std::span<const uint16_t> shard_channel, uint16_t channels) {
  uint32_t h = 2166136261u;
  auto mix = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 16777619u;
    }
  };
  mix(channels);
  mix(static_cast<uint32_t>(shard_channel.size()));
  for (uint16_t c : shard_channel) mix(c);
  return h;
}

size_t EncodeAck(std::span<std::byte> buf, Role role, uint64_t epoch,
                 std::span<const PartitionOffset> entries) {
  return EncodeEntries<PartitionOffset>(buf, MsgType::kAck, role, epoch, 0, entries);
}

size_t EncodeLogStart(std::span<std::byte> buf, Role role, uint64_t epoch,
                      std::span<const PartitionOffset> entries) {
  return EncodeEntries<PartitionOffset>(buf, MsgType::kLogStart, role, epoch, 0, entries);
}

size_t EncodeNak(std::span<std::byte> buf, Role role, uint64_t epoch, uint32_t queue,
                 uint32_t partition, uint64_t from_offset) {
  const size_t total = kLinkHeaderBytes + 16;
  if (Begin(buf, total, MsgType::kNak, role, epoch) == 0) return 0;
  std::byte* p = buf.data() + kLinkHeaderBytes;
  std::memcpy(p, &queue, 4);
  std::memcpy(p + 4, &partition, 4);
  std::memcpy(p + 8, &from_offset, 8);
  Finish(buf.first(total));
  return total;
}

size_t EncodeHeartbeat(std::span<std::byte> buf, Role role, uint64_t epoch, uint64_t sent_ns) {
  const size_t total = kLinkHeaderBytes + 8;
  if (Begin(buf, total, MsgType::kHeartbeat, role, epoch) == 0) return 0;
  std::memcpy(buf.data() + kLinkHeaderBytes, &sent_ns, 8);
  Finish(buf.first(total));
  return total;
}

size_t EncodeCatalog(std::span<std::byte> buf, Role role, uint64_t epoch, uint64_t hash,
                     uint32_t total_bytes, uint32_t offset, std::span<const std::byte> bytes) {
  const size_t total = kLinkHeaderBytes + kCatalogHeaderBytes + bytes.size();
  if (Begin(buf, total, MsgType::kCatalog, role, epoch) == 0) return 0;
  std::byte* p = buf.data() + kLinkHeaderBytes;
  const uint32_t frag = static_cast<uint32_t>(bytes.size()), zero = 0;
  std::memcpy(p, &hash, 8);
  std::memcpy(p + 8, &total_bytes, 4);
  std::memcpy(p + 12, &offset, 4);
  std::memcpy(p + 16, &frag, 4);
  std::memcpy(p + 20, &zero, 4);
  if (!bytes.empty()) std::memcpy(p + kCatalogHeaderBytes, bytes.data(), bytes.size());
  Finish(buf.first(total));
  return total;
}

uint64_t CatalogHash(std::span<const std::byte> document) {
  return (uint64_t{storage::Crc32c(document)} << 32) | (document.size() & 0xffffffffu);
}

size_t EncodeCatalogAck(std::span<std::byte> buf, Role role, uint64_t epoch, uint64_t hash) {
  const size_t total = kLinkHeaderBytes + 8;
  if (Begin(buf, total, MsgType::kCatalogAck, role, epoch) == 0) return 0;
  std::memcpy(buf.data() + kLinkHeaderBytes, &hash, 8);
  Finish(buf.first(total));
  return total;
}

size_t EncodeAckLog(std::span<std::byte> buf, Role role, uint64_t epoch, const AckLogHeader& h,
                    std::span<const std::byte> records) {
  if (records.size() != h.bytes) return 0;
  const size_t total = kLinkHeaderBytes + kAckLogHeaderBytes + records.size();
  if (Begin(buf, total, MsgType::kAckLog, role, epoch) == 0) return 0;
  std::memcpy(buf.data() + kLinkHeaderBytes, &h, sizeof h);
  if (!records.empty()) {
    std::memcpy(buf.data() + kLinkHeaderBytes + kAckLogHeaderBytes, records.data(), records.size());
  }
  Finish(buf.first(total));
  return total;
}

size_t EncodeAckLogAck(std::span<std::byte> buf, Role role, uint64_t epoch,
                       std::span<const AckLogPosition> entries) {
  return EncodeEntries<AckLogPosition>(buf, MsgType::kAckLogAck, role, epoch, 0, entries);
}

size_t EncodeFragment(std::span<std::byte> buf, Role role, uint64_t epoch,
                      const BatchFragmentHeader& h, std::span<const std::byte> bytes) {
  if (bytes.size() != h.frag_bytes) return 0;
  const size_t total = kLinkHeaderBytes + kFragmentHeaderBytes + bytes.size();
  if (Begin(buf, total, MsgType::kBatch, role, epoch) == 0) return 0;
  std::memcpy(buf.data() + kLinkHeaderBytes, &h, sizeof h);
  std::memcpy(buf.data() + kLinkHeaderBytes + kFragmentHeaderBytes, bytes.data(), bytes.size());
  Finish(buf.first(total));
  return total;
}

}  // namespace sluice::replication
