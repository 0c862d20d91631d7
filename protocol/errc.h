// Error codes carried on the wire (docs/protocol.md §Errors) and used as expected outcomes
// throughout the server. The numeric values are part of the protocol: never renumber.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice {

enum class Errc : uint16_t {
  kOk = 0,
  kMalformed = 1,          // frame or record failed a bounds or field check
  kUnsupportedVersion = 2, // frame version this server does not speak
  kUnknownType = 3,        // frame type not defined for this version
  kUnknownQueue = 4,       // queue id not in the queue table
  kUnknownPartition = 5,   // partition index >= queue's partition count
  kMessageTooLarge = 6,    // message (after reassembly) exceeds the queue's max size
  kUnauthorized = 7,       // auth tag missing or wrong
  kThrottled = 8,          // a ring, shard or storage queue is full: back off and retry
  kNotPrimary = 9,         // this box is a standby; the reply carries the primary's address
  kStorageFailed = 10,     // the partition's log hit an I/O error and stopped taking writes
  kWrongQueueType = 11,    // e.g. RECEIVE on a stream, SUBSCRIBE on a work queue
  kStaleReceipt = 12,      // receipt handle's lease expired and the message was re-leased
  kUnknownReceipt = 13,    // receipt handle names no leased message (deleted, or never existed)
  kOutOfOrderSequence = 14,// producer sequence skipped ahead of the next expected one
  kOffsetOutOfRange = 15,  // fetch/subscribe from an offset that is not (or no longer) retained
  kUnknownSubscription = 16,
  kNotReplicated = 17,     // sync queue: the standby is gone or lagging past its bound
  kInvalidArgument = 18,   // a field is well-formed but its value is not allowed
  kDuplicate = 19,         // informational: a dedup id or idempotent retransmit matched
  kInternal = 20,          // a server bug; never sent for bad input
  kUnverifiedSource = 21,  // reply would exceed the request and the source address is not yet
                           // verified: complete the HEARTBEAT cookie exchange first
  kStaleGeneration = 22,   // consumer group: the commit's generation is not the current one, or
                           // the member does not hold that partition in it (rebalanced)
};

constexpr std::string_view ErrcName(Errc e) {
  switch (e) {
    case Errc::kOk: return "OK";
    case Errc::kMalformed: return "MALFORMED";
    case Errc::kUnsupportedVersion: return "UNSUPPORTED_VERSION";
    case Errc::kUnknownType: return "UNKNOWN_TYPE";
    case Errc::kUnknownQueue: return "UNKNOWN_QUEUE";
    case Errc::kUnknownPartition: return "UNKNOWN_PARTITION";
    case Errc::kMessageTooLarge: return "MESSAGE_TOO_LARGE";
    case Errc::kUnauthorized: return "UNAUTHORIZED";
    case Errc::kThrottled: return "THROTTLED";
    case Errc::kNotPrimary: return "NOT_PRIMARY";
    case Errc::kStorageFailed: return "STORAGE_FAILED";
    case Errc::kWrongQueueType: return "WRONG_QUEUE_TYPE";
    case Errc::kStaleReceipt: return "STALE_RECEIPT";
    case Errc::kUnknownReceipt: return "UNKNOWN_RECEIPT";
    case Errc::kOutOfOrderSequence: return "OUT_OF_ORDER_SEQUENCE";
    case Errc::kOffsetOutOfRange: return "OFFSET_OUT_OF_RANGE";
    case Errc::kUnknownSubscription: return "UNKNOWN_SUBSCRIPTION";
    case Errc::kNotReplicated: return "NOT_REPLICATED";
    case Errc::kInvalidArgument: return "INVALID_ARGUMENT";
    case Errc::kDuplicate: return "DUPLICATE";
    case Errc::kInternal: return "INTERNAL";
    case Errc::kUnverifiedSource: return "UNVERIFIED_SOURCE";
    case Errc::kStaleGeneration: return "STALE_GENERATION";
  }
  return "UNKNOWN_ERROR";
}

// Human advice for an error, for CLIs and logs.
constexpr std::string_view ErrcAdvice(Errc e) {
  switch (e) {
    case Errc::kThrottled: return "the server is saturated; retry after a back-off";
    case Errc::kUnknownQueue: return "no queue with that name or id; create it first";
    case Errc::kMessageTooLarge: return "message exceeds the queue's max_message_bytes";
    case Errc::kStaleReceipt: return "the lease expired and the message was handed to another receiver";
    case Errc::kNotPrimary: return "this server is a standby; talk to the primary";
    case Errc::kStorageFailed: return "the partition's storage failed; it takes no writes until repaired";
    case Errc::kUnverifiedSource: return "send a HEARTBEAT and echo the server's cookie before large requests";
    case Errc::kStaleGeneration: return "the consumer group rebalanced; rejoin and resume from the committed offsets";
    default: return "";
  }
}

}  // namespace sluice
