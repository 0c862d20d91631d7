// RouteProduce (the receiving worker's routing of a PRODUCE, read in place with RecordRef) against
// the walk it replaced (a MessageView per record): for random frames over a queue split across
// workers, the same owner set, the same round-robin cursor afterwards, and byte-identical frames
// (kAnyPartition resolved in place at the same records, to the same partitions).
#include <gtest/gtest.h>

#include <vector>

#include "dataplane/frontend.h"
#include "dataplane/produce_route.h"
#include "protocol/codec.h"
#include "protocol/crc32c.h"
#include "tests/unit/protocol/random_frames.h"

namespace sluice::dataplane {
namespace {
namespace p = protocol;

// The general path, as FrameHandler::OwnersOf walked a PRODUCE before RouteProduce.
uint64_t ReferenceRoute(const QueueInfo& q, uint16_t self, const p::FrameView& f,
                        std::byte* frame, uint32_t* rr) {
  const p::ProduceView produce = *p::DecodeProduce(f);
  const uint16_t parts = static_cast<uint16_t>(q.partition_worker.size());
  uint64_t owners = 0;
  for (const p::MessageView& msg : produce.messages) {
    uint16_t part = msg.partition;
    if (part == p::kAnyPartition && !msg.is_fragment()) {
      part = !msg.key.empty() ? p::PartitionForKey(msg.key, parts)
                              : static_cast<uint16_t>((*rr)++ % parts);
      const size_t at = static_cast<size_t>(msg.record.data() - f.bytes.data());
      p::le::Store<uint16_t>(frame + at + 4, part);
    }
    owners |= uint64_t{1} << OwnerOf(q, part, self);
  }
  return owners;
}

TEST(RouteProduce, SameOwnersAndBytesAsTheMessageViewWalk) {
  p::testing::Rng r(1129);
  QueueInfo q;
  q.id = 3;
  q.partition_worker = {0, 1, 2, 1, 0, 3, 2};  // 7 partitions over 4 workers
  std::vector<std::byte> a(p::kMaxFrameBytes), b;
  uint32_t rr_fast = 5, rr_ref = 5;
  uint32_t resolved = 0, frames_multi_owner = 0;
  for (int frame = 0; frame < 500; ++frame) {
    p::FrameWriter w(a);
    ASSERT_EQ(w.BeginProduce(p::testing::RandomIds(r), q.id, r.U64()), p::EncodeError::kOk);
    const int n = static_cast<int>(r.Between(1, 10));
    for (int i = 0; i < n; ++i) {
      p::testing::OwnedMessage m;
      p::testing::RandomMessage(r, 60, &m);
      // Mostly the queue's partitions or any; now and then one out of range (the receiver's).
      m.spec.partition = r.OneIn(3)    ? p::kAnyPartition
                         : r.OneIn(10) ? static_cast<uint16_t>(7 + r.Below(100))
                                       : static_cast<uint16_t>(r.Below(7));
      if (r.OneIn(2)) m.key.clear();
      m.Bind();
      p::MessageSpec spec = m.spec;
      if (r.OneIn(6) && spec.partition != p::kAnyPartition && !spec.payload.empty()) {
        p::MessageSpec frag;  // a later fragment: routed by the partition it names
        frag.partition = spec.partition;
        frag.sequence = spec.sequence;
        frag.fragment = true;
        frag.total_len = static_cast<uint32_t>(spec.payload.size() + 4);
        frag.fragment_offset = 4;
        frag.payload = spec.payload;
        spec = frag;
      }
      ASSERT_EQ(w.AddMessage(spec), p::EncodeError::kOk);
    }
    const size_t size = *w.Finish();
    b.assign(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(size));
    const uint16_t self = static_cast<uint16_t>(r.Below(4));

    auto fa = p::DecodeFrame(std::span<const std::byte>(a.data(), size));
    ASSERT_TRUE(fa.has_value());
    ASSERT_EQ(p::ValidateFrame(*fa), p::DecodeError::kOk);
    auto fb = p::DecodeFrame(b);
    ASSERT_TRUE(fb.has_value());
    const std::vector<std::byte> before = b;

    const uint64_t fast =
        RouteProduce(q, self, *fa, p::DecodeValidatedProduce(*fa), a.data(), &rr_fast);
    const uint64_t ref = ReferenceRoute(q, self, *fb, b.data(), &rr_ref);
    EXPECT_EQ(fast, ref) << "frame " << frame;
    EXPECT_EQ(rr_fast, rr_ref) << "frame " << frame;
    ASSERT_TRUE(std::equal(b.begin(), b.end(), a.begin())) << "frame " << frame;
    resolved += b != before ? 1 : 0;
    frames_multi_owner += __builtin_popcountll(fast) > 1 ? 1 : 0;
    // Still a valid frame, every record now naming a real partition unless it is a fragment.
    ASSERT_EQ(p::ValidateFrame(*fa), p::DecodeError::kOk);
  }
  EXPECT_GT(resolved, 100u);  // kAnyPartition was resolved in many frames
  EXPECT_GT(frames_multi_owner, 100u);
}

}  // namespace
}  // namespace sluice::dataplane
