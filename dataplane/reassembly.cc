#include "dataplane/reassembly.h"

#include <algorithm>
#include <cstring>

#include "protocol/assert.h"

namespace sluice::dataplane {
namespace p = protocol;

Reassembly::Reassembly(uint32_t max_message_bytes) : slots_(kSlots) {
  // Fragment 0's metadata is bounded by the protocol's field limits.
  const size_t max_meta = p::kMessageFixedBytes + p::kFragmentExtBytes + p::kMaxKeyBytes +
                          p::kMaxHeadersBytes + 4 * 255;
  for (Slot& s : slots_) {
    s.meta.reserve(max_meta);
    s.payload.reserve(max_message_bytes);
    s.offsets.reserve(kMaxFragments);
  }
  record_.reserve(max_meta + max_message_bytes);
}

Reassembly::Slot* Reassembly::FindOrClaim(const FragmentKey& key, uint64_t now_ns) {
  Slot* free_slot = nullptr;
  for (Slot& s : slots_) {
    if (s.used && s.key == key) return &s;
    if (!s.used && free_slot == nullptr) free_slot = &s;
  }
  if (free_slot == nullptr) return nullptr;
  Slot& s = *free_slot;
  s.used = true;
  s.key = key;
  s.started_ns = now_ns;
  s.total_len = 0;
  s.received = 0;
  s.have_first = false;
  s.meta.clear();
  s.payload.clear();
  s.offsets.clear();
  return &s;
}

Reassembly::Outcome Reassembly::Add(const FragmentKey& key, const p::MessageView& m,
                                    uint32_t queue_max, uint64_t now_ns) {
  SLUICE_ASSERT(m.is_fragment() && completed_ == nullptr);
  if (m.total_len > queue_max) return {Errc::kMessageTooLarge};
  Slot* s = FindOrClaim(key, now_ns);
  if (s == nullptr) return {Errc::kThrottled};
  if (s->total_len == 0) {
    s->total_len = m.total_len;
    s->payload.resize(m.total_len);  // within the reserved capacity: no allocation
  } else if (s->total_len != m.total_len) {
    s->used = false;  // fragments that disagree: drop what we have
    return {Errc::kMalformed};
  }
  if (std::find(s->offsets.begin(), s->offsets.end(), m.fragment_offset) != s->offsets.end()) {
    return {};  // a retransmitted fragment
  }
  if (s->offsets.size() == kMaxFragments) {
    s->used = false;
    return {Errc::kMalformed};
  }
  s->offsets.push_back(m.fragment_offset);
  std::memcpy(s->payload.data() + m.fragment_offset, m.payload.data(), m.payload.size());
  s->received += static_cast<uint32_t>(m.payload.size());
  if (m.fragment_offset == 0) {
    // Everything of the record before its payload: fixed part, fragment extension, metadata.
    const size_t meta_len = m.record.size() - m.payload.size();
    s->meta.assign(m.record.begin(), m.record.begin() + static_cast<ptrdiff_t>(meta_len));
    s->have_first = true;
  }
  if (s->received > s->total_len) {  // overlapping fragments
    s->used = false;
    return {Errc::kMalformed};
  }
  if (!s->have_first || s->received != s->total_len) return {};
  return Build(*s);
}

Reassembly::Outcome Reassembly::Build(Slot& s) {
  // The unfragmented record: fixed part (FRAGMENT flag cleared, lengths updated), the metadata
  // fields of fragment 0 (after its 8-byte fragment extension), then the whole payload.
  const size_t fields = s.meta.size() - p::kMessageFixedBytes - p::kFragmentExtBytes;
  const size_t len = p::kMessageFixedBytes + fields + s.total_len;
  record_.resize(len);
  std::memcpy(record_.data(), s.meta.data(), p::kMessageFixedBytes);
  std::memcpy(record_.data() + p::kMessageFixedBytes,
              s.meta.data() + p::kMessageFixedBytes + p::kFragmentExtBytes, fields);
  std::memcpy(record_.data() + p::kMessageFixedBytes + fields, s.payload.data(), s.total_len);
  p::le::Store<uint32_t>(record_.data(), static_cast<uint32_t>(len));
  record_[7] = std::byte{static_cast<uint8_t>(p::le::U8(record_.data() + 7) & ~p::kMsgFlagFragment)};
  p::le::Store<uint32_t>(record_.data() + 40, s.total_len);
  completed_ = &s;
  return {Errc::kOk, true, record_};
}

void Reassembly::Release() {
  SLUICE_ASSERT(completed_ != nullptr);
  completed_->used = false;
  completed_ = nullptr;
}

uint32_t Reassembly::Expire(uint64_t now_ns) {
  uint32_t n = 0;
  for (Slot& s : slots_) {
    if (s.used && now_ns - s.started_ns > kTimeoutNs) {
      s.used = false;
      ++n;
    }
  }
  dropped_ += n;
  return n;
}

}  // namespace sluice::dataplane
