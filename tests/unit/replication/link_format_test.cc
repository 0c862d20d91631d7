#include "replication/link_format.h"

#include "storage/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace sluice::replication {
namespace {

TEST(LinkFormat, HelloRoundTrip) {
  std::vector<std::byte> buf(1472);
  const HelloEntry e[2] = {{7, 0, 100, 0}, {7, 1, 250, 40}};
  const size_t n = EncodeHello(buf, Role::kPrimary, 3, 0xabcdef, e, 0xC6120A01, 7411);
  ASSERT_EQ(n, kLinkHeaderBytes + 32 + 2 * kHelloEntryBytes);
  LinkMessage m;
  ASSERT_EQ(DecodeLink(std::span(buf).first(n), &m), DecodeError::kOk);
  EXPECT_EQ(m.type, MsgType::kHello);
  EXPECT_EQ(m.role, Role::kPrimary);
  EXPECT_EQ(m.epoch, 3u);
  EXPECT_EQ(m.boot_id, 0xabcdefu);
  EXPECT_EQ(m.client_ipv4, 0xC6120A01u);
  EXPECT_EQ(m.client_port, 7411u);
  ASSERT_EQ(m.count, 2u);
  EXPECT_EQ(m.Hello(1).queue, 7u);
  EXPECT_EQ(m.Hello(1).partition, 1u);
  EXPECT_EQ(m.Hello(1).offset, 250u);
  EXPECT_EQ(m.Hello(1).epoch_start, 40u);
}

TEST(LinkFormat, HelloCarriesItsChannelAndLayoutShape) {
  std::vector<std::byte> buf(1472);
  const HelloEntry e[1] = {{7, 3, 100, 0}};
  const ChannelShape shape{1, 2, 0xdeadbeef};
  const size_t n = EncodeHello(buf, Role::kStandby, 3, 9, e, 0, 0, kHelloReplyWanted, 0, 1, shape);
  ASSERT_NE(n, 0u);
  LinkMessage m;
  ASSERT_EQ(DecodeLink(std::span(buf).first(n), &m), DecodeError::kOk);
  EXPECT_EQ(m.shape, shape);
  EXPECT_EQ(m.hello_flags, kHelloReplyWanted);
  // The default: channel 0 of 1.
  const size_t n0 = EncodeHello(buf, Role::kPrimary, 3, 9, e);
  ASSERT_EQ(DecodeLink(std::span(buf).first(n0), &m), DecodeError::kOk);
  EXPECT_EQ(m.shape, (ChannelShape{0, 1, 0}));
  // A channel outside its count is refused.
  for (const ChannelShape bad : {ChannelShape{2, 2, 0}, ChannelShape{0, 0, 0}}) {
    const size_t nb = EncodeHello(buf, Role::kPrimary, 3, 9, e, 0, 0, 0, 0, 1, bad);
    EXPECT_NE(DecodeLink(std::span(buf).first(nb), &m), DecodeError::kOk);
  }
  // 59 entries still fit a 1500-byte MTU's datagram (docs/replication.md §2).
  EXPECT_EQ(HelloEntriesPerDatagram(1472), 59u);
  std::vector<HelloEntry> many(59, HelloEntry{1, 2, 3, 4});
  EXPECT_LE(EncodeHello(buf, Role::kPrimary, 3, 9, many), 1472u);
  EXPECT_NE(EncodeHello(buf, Role::kPrimary, 3, 9, many), 0u);
}

TEST(LinkFormat, AckNakHeartbeatRoundTrip) {
  std::vector<std::byte> buf(1472);
  const PartitionOffset e[1] = {{1, 2, 3}};
  size_t n = EncodeAck(buf, Role::kStandby, 9, e);
  LinkMessage m;
  ASSERT_EQ(DecodeLink(std::span(buf).first(n), &m), DecodeError::kOk);
  EXPECT_EQ(m.type, MsgType::kAck);
  EXPECT_EQ(m.Entry(0).offset, 3u);
  n = EncodeNak(buf, Role::kStandby, 9, 4, 5, 66);
  ASSERT_EQ(DecodeLink(std::span(buf).first(n), &m), DecodeError::kOk);
  EXPECT_EQ(m.type, MsgType::kNak);
  EXPECT_EQ(m.queue, 4u);
  EXPECT_EQ(m.partition, 5u);
  EXPECT_EQ(m.from_offset, 66u);
  n = EncodeHeartbeat(buf, Role::kPrimary, 2, 12345);
  ASSERT_EQ(DecodeLink(std::span(buf).first(n), &m), DecodeError::kOk);
  EXPECT_EQ(m.type, MsgType::kHeartbeat);
  EXPECT_EQ(m.sent_ns, 12345u);
  EXPECT_EQ(m.role, Role::kPrimary);
}

TEST(LinkFormat, LogStartRoundTripAndOtherVersionsRefused) {
  std::vector<std::byte> buf(1472);
  const PartitionOffset e[3] = {{4, 0, 0}, {4, 1, 1200}, {9, 7, ~uint64_t{0} >> 1}};
  const size_t n = EncodeLogStart(buf, Role::kPrimary, 5, e);
  ASSERT_EQ(n, kLinkHeaderBytes + 8 + 3 * kPartitionOffsetBytes);
  LinkMessage m;
  ASSERT_EQ(DecodeLink(std::span(buf).first(n), &m), DecodeError::kOk);
  EXPECT_EQ(m.type, MsgType::kLogStart);
  EXPECT_EQ(MsgTypeName(m.type), "LOG_START");
  EXPECT_EQ(m.role, Role::kPrimary);
  EXPECT_EQ(m.epoch, 5u);
  ASSERT_EQ(m.count, 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(m.Entry(i).queue, e[i].queue);
    EXPECT_EQ(m.Entry(i).partition, e[i].partition);
    EXPECT_EQ(m.Entry(i).offset, e[i].offset);
  }
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::byte> c(buf.begin(), buf.begin() + n);
    c[i] ^= std::byte{0x10};
    EXPECT_NE(DecodeLink(c, &m), DecodeError::kOk) << "flipped byte " << i;
  }
  // A count that does not match the body is refused.
  std::vector<std::byte> c(buf.begin(), buf.begin() + n - kPartitionOffsetBytes);
  const uint32_t len = static_cast<uint32_t>(c.size());
  std::memcpy(c.data() + offsetof(LinkHeader, length), &len, 4);
  std::memset(c.data() + offsetof(LinkHeader, crc), 0, 4);
  const uint32_t c_crc = storage::Crc32c(c);
  std::memcpy(c.data() + offsetof(LinkHeader, crc), &c_crc, 4);
  EXPECT_EQ(DecodeLink(c, &m), DecodeError::kBadLength);
  // A box of another link format version (2: before LOG_START) is refused as such, even with a
  // valid CRC: both boxes must run the same format.
  for (const uint16_t v : {uint16_t{1}, uint16_t{2}, uint16_t{4}}) {
    std::vector<std::byte> o(buf.begin(), buf.begin() + n);
    std::memcpy(o.data() + offsetof(LinkHeader, version), &v, 2);
    std::memset(o.data() + offsetof(LinkHeader, crc), 0, 4);
    const uint32_t crc = storage::Crc32c(o);
    std::memcpy(o.data() + offsetof(LinkHeader, crc), &crc, 4);
    EXPECT_EQ(DecodeLink(o, &m), DecodeError::kBadVersion) << v;
  }
  EXPECT_EQ(kLinkVersion, 3u);
}

TEST(LinkFormat, FragmentRoundTripAndBounds) {
  std::vector<std::byte> buf(1472), data(100, std::byte{0x5a});
  BatchFragmentHeader h{1, 0, 10, 20, 250, 200, 100, 50};
  // Last fragment: 200 + 50 == 250.
  ASSERT_EQ(EncodeFragment(buf, Role::kPrimary, 1, h, std::span(data).first(50)), 0u + kLinkHeaderBytes + kFragmentHeaderBytes + 50);
  LinkMessage m;
  ASSERT_EQ(DecodeLink(std::span(buf).first(kLinkHeaderBytes + kFragmentHeaderBytes + 50), &m),
            DecodeError::kOk);
  EXPECT_EQ(m.fragment.base_offset, 10u);
  EXPECT_EQ(m.data.size(), 50u);
  // A short fragment that is not the last, one past the batch, one off the unit grid: refused.
  const BatchFragmentHeader bad[] = {
      {1, 0, 10, 20, 250, 100, 100, 50},  // short but not last
      {1, 0, 10, 20, 250, 200, 100, 60},  // past batch_bytes (and short)
      {1, 0, 10, 20, 250, 150, 100, 100}, // off the grid
      {1, 0, 10, 10, 250, 0, 100, 100},   // empty offset range
      {1, 0, 10, 20, 250, 0, 0, 0},       // zero unit
  };
  for (const BatchFragmentHeader& b : bad) {
    const size_t n = EncodeFragment(buf, Role::kPrimary, 1, b, std::span(data).first(b.frag_bytes));
    ASSERT_NE(n, 0u);
    EXPECT_NE(DecodeLink(std::span(buf).first(n), &m), DecodeError::kOk) << b.frag_offset;
  }
}

TEST(LinkFormat, CorruptionTruncationAndGarbageAreRefused) {
  std::vector<std::byte> buf(1472);
  const size_t n = EncodeHeartbeat(buf, Role::kPrimary, 2, 12345);
  LinkMessage m;
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::byte> c(buf.begin(), buf.begin() + n);
    c[i] ^= std::byte{0x01};
    EXPECT_NE(DecodeLink(c, &m), DecodeError::kOk) << "flipped byte " << i;
  }
  for (size_t len = 0; len < n; ++len) {
    EXPECT_NE(DecodeLink(std::span(buf).first(len), &m), DecodeError::kOk) << len;
  }
  // Random garbage: never accepted, never crashes (bounded: 20000 datagrams).
  std::mt19937_64 rng(7);
  std::vector<std::byte> g(1472);
  for (int i = 0; i < 20000; ++i) {
    const size_t len = rng() % g.size();
    for (size_t j = 0; j < len; ++j) g[j] = static_cast<std::byte>(rng());
    if (i % 2 == 0 && len >= 4) {  // give half of them the magic, to get past the first check
      const uint32_t magic = kLinkMagic;
      std::memcpy(g.data(), &magic, 4);
    }
    EXPECT_NE(DecodeLink(std::span(g).first(len), &m), DecodeError::kOk);
  }
}

TEST(LinkFormat, AckLogRoundTripAndEveryFlipRefused) {
  // Three records: a delete, a commit with a key that needs padding, a purge mark.
  std::vector<std::byte> recs(AckRecordBytes(0) * 2 + AckRecordBytes(5));
  const AckRecord in[3] = {{AckRecordKind::kDelete, 1, 42, {}},
                           {AckRecordKind::kCommit, 3, 7, "3:grp"},
                           {AckRecordKind::kDeletedBelow, 1, 99, {}}};
  size_t at = 0;
  for (const AckRecord& r : in) {
    EncodeAckRecord(recs.data() + at, r);
    at += AckRecordBytes(r.group.size());
  }
  ASSERT_EQ(at, recs.size());
  std::vector<std::byte> buf(1472);
  const AckLogHeader h{5, 1, 0x1234'0000'0002ull, 17, 3, static_cast<uint32_t>(recs.size())};
  const size_t n = EncodeAckLog(buf, Role::kPrimary, 3, h, recs);
  ASSERT_EQ(n, kLinkHeaderBytes + kAckLogHeaderBytes + recs.size());
  LinkMessage m;
  ASSERT_EQ(DecodeLink(std::span(buf).first(n), &m), DecodeError::kOk);
  EXPECT_EQ(m.type, MsgType::kAckLog);
  EXPECT_EQ(m.acklog.generation, h.generation);
  EXPECT_EQ(m.acklog.first_seq, 17u);
  EXPECT_EQ(m.acklog.count, 3u);
  size_t pos = 0;
  for (const AckRecord& want : in) {
    AckRecord got;
    pos += DecodeAckRecord(m.data.subspan(pos), &got);
    EXPECT_EQ(got.kind, want.kind);
    EXPECT_EQ(got.ref_partition, want.ref_partition);
    EXPECT_EQ(got.offset, want.offset);
    EXPECT_EQ(got.group, want.group);
  }
  EXPECT_EQ(pos, m.data.size());
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::byte> c(buf.begin(), buf.begin() + n);
    c[i] ^= std::byte{0x10};
    EXPECT_NE(DecodeLink(c, &m), DecodeError::kOk) << "flipped byte " << i;
  }
  // A count that does not match the records, or a bad kind, is refused even with a good CRC.
  AckLogHeader bad = h;
  bad.count = 4;
  EXPECT_EQ(DecodeLink(std::span(buf).first(EncodeAckLog(buf, Role::kPrimary, 3, bad, recs)), &m),
            DecodeError::kBadFragment);
  recs[0] = std::byte{9};
  EXPECT_EQ(DecodeLink(std::span(buf).first(EncodeAckLog(buf, Role::kPrimary, 3, h, recs)), &m),
            DecodeError::kBadFragment);

  const AckLogPosition pos_in[2] = {{5, 0, 7, 100, 3, kAckPositionGap, 0}, {5, 1, 8, 0, 0, 0, 0}};
  const size_t k = EncodeAckLogAck(buf, Role::kStandby, 3, pos_in);
  ASSERT_EQ(DecodeLink(std::span(buf).first(k), &m), DecodeError::kOk);
  EXPECT_EQ(m.type, MsgType::kAckLogAck);
  ASSERT_EQ(m.count, 2u);
  EXPECT_EQ(m.Position(0).next_seq, 100u);
  EXPECT_EQ(m.Position(0).applied_lag, 3u);
  EXPECT_EQ(m.Position(0).flags, kAckPositionGap);
  EXPECT_EQ(m.Position(1).generation, 8u);
  EXPECT_NE(DecodeLink(std::span(buf).first(k - 1), &m), DecodeError::kOk);
}

// The longest key the primary logs, "<u32 partition>:<255-byte group>" (266 bytes), crosses
// whole; a length beyond kMaxAckGroupBytes is refused.
TEST(LinkFormat, AckLogCarriesTheLongestCommitKey) {
  const std::string key = "4294967295:" + std::string(255, 'g');
  ASSERT_EQ(key.size(), kMaxAckGroupBytes);
  std::vector<std::byte> recs(AckRecordBytes(key.size()));
  EncodeAckRecord(recs.data(), {AckRecordKind::kCommit, 4, 7, key});
  std::vector<std::byte> buf(1472);
  const AckLogHeader h{5, 0, 1, 0, 1, static_cast<uint32_t>(recs.size())};
  LinkMessage m;
  ASSERT_EQ(DecodeLink(std::span(buf).first(EncodeAckLog(buf, Role::kPrimary, 3, h, recs)), &m),
            DecodeError::kOk);
  AckRecord got;
  EXPECT_EQ(DecodeAckRecord(m.data, &got), recs.size());
  EXPECT_EQ(got.group, key);
  const uint16_t too_long = kMaxAckGroupBytes + 8;
  std::memcpy(recs.data() + 2, &too_long, 2);
  EXPECT_EQ(DecodeLink(std::span(buf).first(EncodeAckLog(buf, Role::kPrimary, 3, h, recs)), &m),
            DecodeError::kBadFragment);
}

TEST(LinkFormat, EncodersRefuseSmallBuffers) {
  std::vector<std::byte> buf(20);
  EXPECT_EQ(EncodeHeartbeat(buf, Role::kPrimary, 1, 1), 0u);
  EXPECT_EQ(EncodeNak(buf, Role::kStandby, 1, 1, 1, 1), 0u);
}

}  // namespace
}  // namespace sluice::replication
