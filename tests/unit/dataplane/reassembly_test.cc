#include "dataplane/reassembly.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::dataplane {
namespace {
namespace p = protocol;

std::vector<std::vector<std::byte>> Fragments(const std::string& payload, size_t budget) {
  p::MessageSpec whole;
  whole.partition = 0;
  whole.sequence = 4;
  whole.key = "key";
  whole.payload = {reinterpret_cast<const std::byte*>(payload.data()), payload.size()};
  p::Fragmenter fr(whole, budget);
  std::vector<std::vector<std::byte>> out;
  for (p::MessageSpec frag; fr.Next(&frag);) {
    std::vector<std::byte> rec(p::EncodedSize(frag));
    EXPECT_TRUE(p::EncodeMessageRecord(rec, frag).has_value());
    out.push_back(std::move(rec));
  }
  return out;
}

TEST(ReassemblyTest, RebuildsAnUnfragmentedRecord) {
  std::string payload(3000, 'x');
  auto frags = Fragments(payload, 1000);
  ASSERT_GE(frags.size(), 3u);
  Reassembly r(1 << 20);
  Reassembly::Outcome o;
  for (size_t i = frags.size(); i-- > 0;) {  // reverse order
    auto m = p::DecodeMessageRecord(frags[i]);
    ASSERT_TRUE(m.has_value());
    o = r.Add({1, 2, 3, 0, 4}, *m, 1 << 20, 0);
    ASSERT_EQ(o.errc, Errc::kOk);
    EXPECT_EQ(o.complete, i == 0);
  }
  auto whole = p::DecodeMessageRecord(o.record);
  ASSERT_TRUE(whole.has_value());
  EXPECT_FALSE(whole->is_fragment());
  EXPECT_EQ(whole->key, "key");
  EXPECT_EQ(whole->sequence, 4u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(whole->payload.data()),
                        whole->payload.size()), payload);
  r.Release();
}

TEST(ReassemblyTest, TooLargeForTheQueueAndTimeout) {
  auto frags = Fragments(std::string(3000, 'y'), 1000);
  Reassembly r(1 << 20);
  auto m = p::DecodeMessageRecord(frags[0]);
  EXPECT_EQ(r.Add({1, 2, 3, 0, 4}, *m, 2000, 0).errc, Errc::kMessageTooLarge);
  EXPECT_EQ(r.Add({1, 2, 3, 0, 4}, *m, 1 << 20, 0).errc, Errc::kOk);
  EXPECT_EQ(r.Expire(Reassembly::kTimeoutNs + 1), 1u);
  EXPECT_EQ(r.dropped(), 1u);
}

TEST(ReassemblyTest, ThrottlesWhenEverySlotIsBusy) {
  auto frags = Fragments(std::string(3000, 'z'), 1000);
  Reassembly r(1 << 20);
  auto m = p::DecodeMessageRecord(frags[0]);
  for (uint64_t i = 0; i < Reassembly::kSlots; ++i) {
    EXPECT_EQ(r.Add({1, 2, 3, 0, i}, *m, 1 << 20, 0).errc, Errc::kOk);
  }
  EXPECT_EQ(r.Add({1, 2, 3, 0, 99}, *m, 1 << 20, 0).errc, Errc::kThrottled);
}

}  // namespace
}  // namespace sluice::dataplane
