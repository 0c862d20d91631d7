#include "dataplane/pending_replies.h"

#include "protocol/assert.h"

namespace sluice::dataplane {

PendingReplies::PendingReplies(uint32_t max_replies, uint32_t max_items)
    : replies_(max_replies), items_(max_items) {
  SLUICE_ASSERT(max_replies > 0 && max_items > 0);
}

bool PendingReplies::Open(const Head& head, uint32_t max_items) {
  SLUICE_ASSERT(!open_ && max_items > 0);
  const uint32_t cap = static_cast<uint32_t>(items_.size());
  if (count_ == replies_.size() || max_items > cap) return false;
  // Contiguous slots: after the tail, or from 0 when the end of the ring is too short (the
  // slots skipped there count as this reply's, so they come back when it goes).
  uint32_t pos = 0;
  uint32_t skipped = 0;
  if (items_used_ == 0) {
    items_head_ = items_tail_ = 0;
  } else if (items_tail_ > items_head_ ||
             (items_tail_ == items_head_ && items_used_ == 0)) {
    if (cap - items_tail_ >= max_items) {
      pos = items_tail_;
    } else if (items_head_ >= max_items) {
      skipped = cap - items_tail_;
    } else {
      return false;
    }
  } else {  // the free slots are [tail, head)
    if (items_head_ - items_tail_ < max_items) return false;
    pos = items_tail_;
  }
  Reply& r = At(count_);
  r = Reply{head, pos, 0, skipped + max_items, 0, false};
  items_tail_ = (pos + max_items) % cap;
  items_used_ += skipped + max_items;
  ++count_;
  ++waiting_;
  open_ = true;
  open_cap_ = max_items;
  return true;
}

void PendingReplies::Add(const Item& item) {
  SLUICE_ASSERT(open_);
  Reply& r = At(count_ - 1);
  SLUICE_ASSERT(r.count < open_cap_);
  items_[r.first + r.count++] = item;
  if (item.wait_seq != 0) ++r.waiting;
}

bool PendingReplies::Close() {
  SLUICE_ASSERT(open_);
  open_ = false;
  Reply& r = At(count_ - 1);
  const uint32_t unused = open_cap_ - r.count;
  const uint32_t cap = static_cast<uint32_t>(items_.size());
  r.span -= unused;
  items_used_ -= unused;
  items_tail_ = (r.first + r.count) % cap;
  if (items_used_ == 0) items_head_ = items_tail_ = 0;
  return r.waiting > 0;
}

const PendingReplies::Head& PendingReplies::last_head() const {
  SLUICE_ASSERT(count_ > 0);
  return At(count_ - 1).head;
}

std::span<const PendingReplies::Item> PendingReplies::last_items() const {
  SLUICE_ASSERT(count_ > 0);
  const Reply& r = At(count_ - 1);
  return {items_.data() + r.first, r.count};
}

void PendingReplies::DropLast() {
  SLUICE_ASSERT(!open_ && count_ > 0);
  const Reply& r = At(count_ - 1);
  SLUICE_ASSERT(!r.released);
  const uint32_t cap = static_cast<uint32_t>(items_.size());
  const uint32_t skipped = r.span - r.count;
  items_tail_ = skipped > 0 ? cap - skipped : r.first;
  items_used_ -= r.span;
  --count_;
  --waiting_;
  if (items_used_ == 0) items_head_ = items_tail_ = 0;
}

bool PendingReplies::Holds(uint64_t endpoint, uint64_t client_id, uint64_t request_id,
                           uint8_t request_type) const {
  for (uint32_t i = 0; i < count_; ++i) {
    const Reply& r = At(i);
    if (!r.released && r.head.request_id == request_id && r.head.client_id == client_id &&
        r.head.endpoint == endpoint && r.head.request_type == request_type) {
      return true;
    }
  }
  return false;
}

void PendingReplies::PopReleased() {
  const uint32_t cap = static_cast<uint32_t>(items_.size());
  while (count_ > 0 && At(0).released) {
    const Reply& r = At(0);
    items_used_ -= r.span;
    items_head_ = (r.first + r.count) % cap;
    head_ = (head_ + 1) % static_cast<uint32_t>(replies_.size());
    --count_;
  }
  if (items_used_ == 0) items_head_ = items_tail_ = 0;
}

uint32_t PendingReplies::Release(absl::FunctionRef<Verdict(const Head&, const Item&)> verdict,
                                 absl::FunctionRef<void(const Head&, std::span<const Item>)> send) {
  SLUICE_ASSERT(!open_);
  uint32_t released = 0;
  for (uint32_t i = 0; i < count_; ++i) {
    Reply& r = At(i);
    if (r.released) continue;
    for (uint32_t k = 0; k < r.count && r.waiting > 0; ++k) {
      Item& item = items_[r.first + k];
      if (item.wait_seq == 0) continue;
      const Verdict v = verdict(r.head, item);
      if (v == Verdict::kWait) continue;
      if (v == Verdict::kNotReplicated) item.errc = Errc::kNotReplicated;
      item.wait_seq = 0;
      --r.waiting;
    }
    if (r.waiting > 0) continue;
    send(r.head, std::span<const Item>(items_.data() + r.first, r.count));
    r.released = true;
    --waiting_;
    ++released;
  }
  PopReleased();
  return released;
}

}  // namespace sluice::dataplane
