// The Frontend's reply channel for unit tests: every frame sent is kept (`sent`), every record
// handed to another worker is noted (`handed_off`); at most kMaxOutstanding buffers are held, as
// the worker's TX path allows.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/frontend.h"

namespace sluice::dataplane {

class FakeReplyChannel final : public ReplyChannel {
 public:
  ReplyBuffer Acquire(const Endpoint&, size_t max_bytes) override {
    for (uint32_t h = 0; h < kMaxOutstanding; ++h) {
      if (!busy_[h]) {
        busy_[h] = true;
        buffers_[h].assign(std::min<size_t>(max_bytes, 1472), std::byte{0});
        return {buffers_[h], h};
      }
    }
    ADD_FAILURE() << "more than kMaxOutstanding buffers held";
    return {};
  }
  void Send(const ReplyBuffer& b, size_t bytes) override {
    ASSERT_TRUE(busy_[b.handle]);
    sent.emplace_back(b.bytes.begin(), b.bytes.begin() + static_cast<ptrdiff_t>(bytes));
    busy_[b.handle] = false;
  }
  void Abandon(const ReplyBuffer& b) override { busy_[b.handle] = false; }
  bool HandOffRecord(uint16_t worker, uint32_t queue, std::span<const std::byte> record) override {
    handed_off.push_back({worker, queue, record.size()});
    return true;
  }

  struct HandOff {
    uint16_t worker;
    uint32_t queue;
    size_t bytes;
  };
  std::vector<HandOff> handed_off;
  std::vector<std::vector<std::byte>> sent;

 private:
  std::array<bool, kMaxOutstanding> busy_{};
  std::array<std::vector<std::byte>, kMaxOutstanding> buffers_;
};

}  // namespace sluice::dataplane
