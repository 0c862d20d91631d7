#include "client/message.h"

#include <array>
#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/errors.h"
#include "protocol/assert.h"

namespace sluice::client {
namespace p = protocol;

ReceivedMessage ToReceived(const p::DeliveredMeta& meta, const p::MessageView& m) {
  ReceivedMessage r;
  r.partition = meta.partition;
  r.offset = meta.offset;
  r.server_timestamp_ns = meta.server_timestamp_ns;
  r.receipt = meta.receipt;
  r.receive_count = meta.receive_count;
  r.producer_id = meta.producer_id;
  r.sequence = m.sequence;
  r.priority = m.priority;
  r.timestamp_ns = m.timestamp_ns;
  r.key = m.key;
  r.headers = m.headers;
  r.dedup_id = m.dedup_id;
  r.reply_to = m.reply_to;
  r.correlation_id = m.correlation_id;
  r.group_id = m.group_id;
  r.payload = m.payload;
  r.record = m.record;
  return r;
}

OwnedMessage::OwnedMessage(const ReceivedMessage& m) : record_(m.record.begin(), m.record.end()) {
  auto decoded = p::DecodeMessageRecord(record_);
  SLUICE_ASSERT(decoded.has_value());  // it was validated as part of its frame
  p::DeliveredMeta meta;
  meta.offset = m.offset;
  meta.server_timestamp_ns = m.server_timestamp_ns;
  meta.receipt = m.receipt;
  meta.producer_id = m.producer_id;
  meta.partition = m.partition;
  meta.receive_count = m.receive_count;
  view_ = ToReceived(meta, *decoded);
}

OwnedMessage::OwnedMessage(const p::DeliveredMeta& meta, std::vector<std::byte> record)
    : record_(std::move(record)) {
  auto decoded = p::DecodeMessageRecord(record_);
  SLUICE_ASSERT(decoded.has_value());
  view_ = ToReceived(meta, *decoded);
}

std::optional<OwnedMessage> DeliveryAssembler::Add(const p::DeliveredView& d) {
  const p::MessageView& m = d.message;
  SLUICE_ASSERT(m.is_fragment());
  const auto key = std::make_pair(d.meta.partition, d.meta.offset);
  auto it = partial_.find(key);
  if (it == partial_.end()) {
    if (partial_.size() >= kMaxPartial) {  // forget the oldest: it is re-delivered or re-fetched
      auto oldest = partial_.begin();
      for (auto i = partial_.begin(); i != partial_.end(); ++i) {
        if (i->second.age < oldest->second.age) oldest = i;
      }
      partial_.erase(oldest);
    }
    it = partial_.emplace(key, Partial{}).first;
    it->second.meta = d.meta;
    it->second.payload.resize(m.total_len);
  }
  Partial& pa = it->second;
  pa.age = ++clock_;
  if (m.total_len != pa.payload.size() ||
      uint64_t{m.fragment_offset} + m.payload.size() > pa.payload.size()) {
    partial_.erase(it);  // fragments that disagree: drop what we have
    return std::nullopt;
  }
  if (m.fragment_offset == 0) pa.first_record.assign(m.record.begin(), m.record.end());
  if (pa.pieces.emplace(m.fragment_offset, static_cast<uint32_t>(m.payload.size())).second) {
    std::copy(m.payload.begin(), m.payload.end(), pa.payload.begin() + m.fragment_offset);
    pa.have += m.payload.size();
  }
  if (pa.have < pa.payload.size() || pa.first_record.empty()) return std::nullopt;
  auto first = p::DecodeMessageRecord(pa.first_record);
  SLUICE_ASSERT(first.has_value());
  std::array<p::Header, p::kMaxHeaders> headers;
  p::MessageSpec spec = p::SpecOf(*first, headers);
  spec.payload = pa.payload;  // fragment 0's metadata, the whole payload
  std::vector<std::byte> record(p::EncodedSize(spec));
  auto n = p::EncodeMessageRecord(record, spec);
  const p::DeliveredMeta meta = pa.meta;
  partial_.erase(it);
  if (!n) return std::nullopt;  // cannot happen for a validated fragment 0 and a <= 1 MiB payload
  return OwnedMessage(meta, std::move(record));
}

std::string FormatReceipt(const Receipt& r) {
  return absl::StrFormat("%u:%016x", r.partition, r.handle);
}

absl::StatusOr<Receipt> ParseReceipt(std::string_view text) {
  const size_t colon = text.find(':');
  uint32_t part = 0;
  uint64_t handle = 0;
  if (colon == std::string_view::npos || !absl::SimpleAtoi(Sv(text.substr(0, colon)), &part) ||
      part >= p::kAnyPartition || !absl::SimpleHexAtoi(Sv(text.substr(colon + 1)), &handle) ||
      handle == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "receipt '", Sv(text), "' is not <partition>:<hex handle> (as printed by sluice receive)"));
  }
  return Receipt{static_cast<uint16_t>(part), handle};
}

absl::StatusOr<StartPosition> ParseStartPosition(std::string_view text) {
  if (text == "earliest") return StartPosition::Earliest();
  if (text == "latest") return StartPosition::Latest();
  if (text == "committed") return StartPosition::Committed();
  uint64_t v = 0;
  if (!text.empty() && text[0] == '@' && absl::SimpleAtoi(Sv(text.substr(1)), &v)) {
    return StartPosition::Timestamp(v);
  }
  if (absl::SimpleAtoi(Sv(text), &v)) return StartPosition::Offset(v);
  return absl::InvalidArgumentError(absl::StrCat(
      "start position '", Sv(text),
      "' is not an offset, earliest, latest, committed or @<timestamp ns>"));
}

}  // namespace sluice::client
