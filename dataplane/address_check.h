// Address verification against reflection/amplification (docs/protocol.md §12, §13). A client
// proves it receives at its source address by echoing a cookie the server sent there in a
// HEARTBEAT. The cookie is SipHash-2-4 of (address and port, client id, epoch) under a secret
// drawn at start, so nothing is stored for unverified sources.
//
// Verified sources live in one lock-free DPDK hash shared by all workers: a TAP or RSS queue can
// move a flow to another worker (the kernel's TAP steers by where replies came from), so a
// per-worker table would forget a verified client. Readers (every request that needs it) never
// lock; writers (a valid HEARTBEAT echo, about once a second per client) take the hash's writer
// path. Entries carry the time of the last valid echo and lapse after kVerifiedForNs.
#pragma once

#include <cstdint>
#include <random>

#include <rte_hash.h>
#include <rte_hash_crc.h>

#include "absl/status/statusor.h"

namespace sluice::dataplane {

class AddressCheck {
 public:
  static constexpr uint32_t kMaxVerified = 1 << 16;
  static constexpr uint64_t kEpochNs = 60'000'000'000ull;        // cookies rotate every minute
  static constexpr uint64_t kVerifiedForNs = 300'000'000'000ull;  // "a few minutes", renewed

  // Creates the shared table (main lcore, at start-up).
  static absl::StatusOr<AddressCheck*> Create(int socket_id);
  ~AddressCheck();
  AddressCheck(const AddressCheck&) = delete;
  AddressCheck& operator=(const AddressCheck&) = delete;

  uint64_t Cookie(uint64_t endpoint, uint64_t client_id, uint64_t now_ns) const {
    return SipHash(endpoint, client_id, now_ns / kEpochNs);
  }

  // True if `cookie` is this or the previous epoch's cookie for the source; then it is verified
  // (or renewed) for kVerifiedForNs. A full table leaves the source unverified (it retries).
  bool Verify(uint64_t endpoint, uint64_t client_id, uint64_t cookie, uint64_t now_ns);

  bool IsVerified(uint64_t endpoint, uint64_t client_id, uint64_t now_ns) const {
    uint64_t at = 0;
    return VerifiedAt(endpoint, client_id, &at) && now_ns - at < kVerifiedForNs;
  }
  // The time of the source's last valid echo, if the table holds the source (entries are never
  // deleted; a later Verify overwrites the time). Workers ask through their VerifiedMemo.
  bool VerifiedAt(uint64_t endpoint, uint64_t client_id, uint64_t* at) const;

 private:
  struct Key {
    uint64_t endpoint;
    uint64_t client_id;
  };

  explicit AddressCheck(rte_hash* table);
  static uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }
  uint64_t SipHash(uint64_t a, uint64_t b, uint64_t c) const;

  rte_hash* table_;
  uint64_t k0_ = 0, k1_ = 0;
};

}  // namespace sluice::dataplane
