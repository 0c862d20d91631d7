// What consumers hand to the application: a delivered message (ReceivedMessage, views), an owning
// copy of one (OwnedMessage), receipt handles of leased work-queue messages, start positions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "protocol/codec.h"

namespace sluice::client {

// A delivered message. Every view points into a buffer the consumer owns: valid during the
// callback that received it (or as long as the OwnedMessage holding it).
struct ReceivedMessage {
  uint16_t partition = 0;
  uint64_t offset = 0;
  uint64_t server_timestamp_ns = 0;
  uint64_t receipt = 0;        // work queues: the lease handle; 0 for streams
  uint16_t receive_count = 0;  // work queues: 1 on first delivery
  uint64_t producer_id = 0;    // with `sequence`: consumer-side dedup
  uint64_t sequence = 0;
  uint8_t priority = 0;
  uint64_t timestamp_ns = 0;   // the producer's, 0 if it gave none
  std::string_view key;
  protocol::HeadersView headers;
  std::string_view dedup_id;
  std::string_view reply_to;
  std::string_view correlation_id;
  std::string_view group_id;
  std::span<const std::byte> payload;
  std::span<const std::byte> record;  // the whole message record as produced

  std::string_view payload_view() const {
    return {reinterpret_cast<const char*>(payload.data()), payload.size()};
  }
};

// The views of a decoded delivered record.
ReceivedMessage ToReceived(const protocol::DeliveredMeta& meta, const protocol::MessageView& m);

// A ReceivedMessage that owns its bytes (one allocation: the record). Move-only, so its views
// stay valid.
class OwnedMessage {
 public:
  OwnedMessage() = default;
  explicit OwnedMessage(const ReceivedMessage& m);
  // A whole (unfragmented) record and its delivery metadata.
  OwnedMessage(const protocol::DeliveredMeta& meta, std::vector<std::byte> record);
  OwnedMessage(OwnedMessage&&) noexcept = default;
  OwnedMessage& operator=(OwnedMessage&&) noexcept = default;
  OwnedMessage(const OwnedMessage&) = delete;
  OwnedMessage& operator=(const OwnedMessage&) = delete;

  const ReceivedMessage& operator*() const { return view_; }
  const ReceivedMessage* operator->() const { return &view_; }
  const ReceivedMessage& get() const { return view_; }

 private:
  std::vector<std::byte> record_;
  ReceivedMessage view_;
};

// Reassembles delivered fragments (docs/protocol.md §9): a stored message too large for the
// consumer's reply datagram arrives as fragment records that share its metadata (offset,
// receipt), possibly over several datagrams; fragment 0 carries key, headers and the rest.
class DeliveryAssembler {
 public:
  static constexpr size_t kMaxPartial = 64;  // messages being reassembled; the oldest goes first

  // Adds a fragment (`d.message.is_fragment()`); the whole message once every byte is in.
  std::optional<OwnedMessage> Add(const protocol::DeliveredView& d);
  size_t partial() const { return partial_.size(); }

 private:
  struct Partial {
    protocol::DeliveredMeta meta;
    std::vector<std::byte> first_record;  // fragment 0, for the metadata
    std::vector<std::byte> payload;
    std::map<uint32_t, uint32_t> pieces;  // fragment_offset -> length
    uint64_t have = 0;
    uint64_t age = 0;
  };
  std::map<std::pair<uint16_t, uint64_t>, Partial> partial_;  // (partition, offset)
  uint64_t clock_ = 0;
};

// A work-queue lease: which partition and which handle. Printed as "<partition>:<hex handle>".
struct Receipt {
  uint16_t partition = 0;
  uint64_t handle = 0;
  friend bool operator==(const Receipt&, const Receipt&) = default;
};
std::string FormatReceipt(const Receipt& r);
absl::StatusOr<Receipt> ParseReceipt(std::string_view text);
inline Receipt ReceiptOf(const ReceivedMessage& m) { return Receipt{m.partition, m.receipt}; }

// Where a subscription or fetch starts.
struct StartPosition {
  protocol::StartKind kind = protocol::StartKind::kLatest;
  uint64_t value = 0;  // offset, or timestamp in ns since the Unix epoch

  static StartPosition Offset(uint64_t o) { return {protocol::StartKind::kOffset, o}; }
  static StartPosition Earliest() { return {protocol::StartKind::kEarliest, 0}; }
  static StartPosition Latest() { return {protocol::StartKind::kLatest, 0}; }
  static StartPosition Timestamp(uint64_t ns) { return {protocol::StartKind::kTimestamp, ns}; }
  static StartPosition Committed() { return {protocol::StartKind::kCommitted, 0}; }
};
// "earliest", "latest", "committed", "@<ns timestamp>" or an offset.
absl::StatusOr<StartPosition> ParseStartPosition(std::string_view text);

}  // namespace sluice::client
