// RecordRef (a validated record read in place) against the full decode: for random PRODUCE frames
// (every field, headers, fragments) each accessor gives what MessageRange's MessageView holds,
// and RecordRef::View() is that MessageView. The worker's route and append walks use RecordRef;
// any drift from the decoder would route or store a different message.
#include <gtest/gtest.h>

#include <vector>

#include "protocol/codec.h"
#include "tests/unit/protocol/random_frames.h"

namespace sluice::protocol {
namespace {

void ExpectSameView(const MessageView& a, const MessageView& b) {
  EXPECT_EQ(a.partition, b.partition);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.sequence, b.sequence);
  EXPECT_EQ(a.timestamp_ns, b.timestamp_ns);
  EXPECT_EQ(a.delay_ms, b.delay_ms);
  EXPECT_EQ(a.ttl_ms, b.ttl_ms);
  EXPECT_EQ(a.total_len, b.total_len);
  EXPECT_EQ(a.fragment_offset, b.fragment_offset);
  EXPECT_EQ(a.key.data(), b.key.data());
  EXPECT_EQ(a.key.size(), b.key.size());
  EXPECT_EQ(a.headers.bytes().data(), b.headers.bytes().data());
  EXPECT_EQ(a.headers.bytes().size(), b.headers.bytes().size());
  EXPECT_EQ(a.dedup_id.data(), b.dedup_id.data());
  EXPECT_EQ(a.dedup_id.size(), b.dedup_id.size());
  EXPECT_EQ(a.reply_to, b.reply_to);
  EXPECT_EQ(a.correlation_id, b.correlation_id);
  EXPECT_EQ(a.group_id.data(), b.group_id.data());
  EXPECT_EQ(a.group_id.size(), b.group_id.size());
  EXPECT_EQ(a.payload.data(), b.payload.data());
  EXPECT_EQ(a.payload.size(), b.payload.size());
  EXPECT_EQ(a.record.data(), b.record.data());
  EXPECT_EQ(a.record.size(), b.record.size());
}

TEST(RecordRef, MatchesTheFullDecodeOfRandomFrames) {
  testing::Rng r(20261129);
  std::vector<std::byte> buf(kMaxFrameBytes);
  uint32_t records = 0, fragments = 0;
  for (int frame = 0; frame < 400; ++frame) {
    FrameWriter w(buf);
    ASSERT_EQ(w.BeginProduce(testing::RandomIds(r), r.U32(), r.OneIn(2) ? 0 : r.U64()),
              EncodeError::kOk);
    const int n = static_cast<int>(r.Between(0, 12));
    std::vector<testing::OwnedMessage> owned(n);
    for (int i = 0; i < n; ++i) {
      testing::RandomMessage(r, r.OneIn(8) ? 2000 : 100, &owned[i]);
      MessageSpec spec = owned[i].spec;
      if (r.OneIn(4) && !spec.payload.empty()) {  // a later fragment: no metadata, a slice
        spec = MessageSpec{};
        spec.partition = static_cast<uint16_t>(r.Below(kAnyPartition));
        spec.sequence = owned[i].spec.sequence;
        spec.fragment = true;
        spec.total_len = static_cast<uint32_t>(owned[i].spec.payload.size() + 10);
        spec.fragment_offset = 10;
        spec.payload = owned[i].spec.payload;
      }
      if (w.AddMessage(spec) != EncodeError::kOk) break;
    }
    auto size = w.Finish();
    ASSERT_TRUE(size.has_value());
    auto f = DecodeFrame(std::span<const std::byte>(buf.data(), *size));
    ASSERT_TRUE(f.has_value());
    ASSERT_EQ(ValidateFrame(*f), DecodeError::kOk);
    const auto produce = DecodeProduce(*f);
    ASSERT_TRUE(produce.has_value());
    const ProduceView fast = DecodeValidatedProduce(*f);
    EXPECT_EQ(fast.queue_id, produce->queue_id);
    EXPECT_EQ(fast.producer_id, produce->producer_id);

    auto full = produce->messages.begin();
    uint32_t walked = 0;
    for (const RecordRef rec : fast.messages.records()) {
      ASSERT_FALSE(full == std::default_sentinel);
      const MessageView& m = *full;
      EXPECT_EQ(rec.data(), m.record.data());
      EXPECT_EQ(rec.size(), m.record.size());
      EXPECT_EQ(rec.record().data(), m.record.data());
      EXPECT_EQ(rec.partition(), m.partition);
      EXPECT_EQ(rec.priority(), m.priority);
      EXPECT_EQ(rec.flags(), m.flags);
      EXPECT_EQ(rec.is_fragment(), m.is_fragment());
      EXPECT_EQ(rec.sequence(), m.sequence);
      EXPECT_EQ(rec.timestamp_ns(), m.timestamp_ns);
      EXPECT_EQ(rec.delay_ms(), m.delay_ms);
      EXPECT_EQ(rec.ttl_ms(), m.ttl_ms);
      EXPECT_EQ(rec.key().data(), m.key.data());
      EXPECT_EQ(rec.key().size(), m.key.size());
      EXPECT_EQ(rec.dedup_id().data(), m.dedup_id.data());
      EXPECT_EQ(rec.dedup_id().size(), m.dedup_id.size());
      EXPECT_EQ(rec.group_id().data(), m.group_id.data());
      EXPECT_EQ(rec.group_id().size(), m.group_id.size());
      EXPECT_EQ(rec.payload().data(), m.payload.data());  // what content dedup hashes
      EXPECT_EQ(rec.payload().size(), m.payload.size());
      std::string_view dedup, group;
      rec.DedupAndGroup(&dedup, &group);
      EXPECT_EQ(dedup.size(), m.dedup_id.size());
      EXPECT_EQ(group.size(), m.group_id.size());
      if (!dedup.empty()) {
        EXPECT_EQ(dedup.data(), m.dedup_id.data());
      }
      if (!group.empty()) {
        EXPECT_EQ(group.data(), m.group_id.data());
      }
      ExpectSameView(rec.View(), m);
      // The record decoded on its own agrees too (the checks and the parse are one definition).
      const auto alone = DecodeMessageRecord(rec.record());
      ASSERT_TRUE(alone.has_value());
      ExpectSameView(*alone, m);
      fragments += rec.is_fragment() ? 1 : 0;
      ++full;
      ++walked;
    }
    EXPECT_TRUE(full == std::default_sentinel);
    EXPECT_EQ(walked, f->header.count);
    records += walked;
  }
  EXPECT_GT(records, 1000u);  // the walk saw many shapes, fragments among them
  EXPECT_GT(fragments, 100u);
}

}  // namespace
}  // namespace sluice::protocol
