// Address verification against reflection/amplification (docs/protocol.md, "amplification rule").
// A client proves it receives at its source address by echoing a cookie the server sent there in
// a HEARTBEAT. The cookie is SipHash-2-4 of (address, port, client id, epoch) under a secret drawn
// at start, so the server keeps no state per unverified source; it remembers verified sources in a
// bounded per-lcore table (RSS keeps a client's flow on one RX queue, hence one lcore).
#pragma once

#include <cstdint>
#include <random>

#include "absl/container/flat_hash_set.h"

namespace sluice::dataplane {

class AddressCheck {
 public:
  static constexpr size_t kMaxVerified = 1 << 16;
  static constexpr uint64_t kEpochNs = 60'000'000'000ull;  // cookies rotate every minute

  AddressCheck() {
    std::random_device rd;
    k0_ = (uint64_t{rd()} << 32) | rd();
    k1_ = (uint64_t{rd()} << 32) | rd();
    verified_.reserve(kMaxVerified);
  }

  uint64_t Cookie(uint64_t endpoint, uint64_t client_id, uint64_t now_ns) const {
    return SipHash(endpoint, client_id, now_ns / kEpochNs);
  }

  // True if `cookie` is the current or the previous epoch's cookie for the source; remembers it.
  bool Verify(uint64_t endpoint, uint64_t client_id, uint64_t cookie, uint64_t now_ns) {
    const uint64_t epoch = now_ns / kEpochNs;
    if (cookie == 0 || (cookie != SipHash(endpoint, client_id, epoch) &&
                        cookie != SipHash(endpoint, client_id, epoch - 1))) {
      return false;
    }
    // A full table starts over: clients re-verify with their next heartbeat (every second).
    if (verified_.size() >= kMaxVerified) verified_.clear();
    verified_.insert(Key{endpoint, client_id});
    return true;
  }

  bool IsVerified(uint64_t endpoint, uint64_t client_id) const {
    return verified_.contains(Key{endpoint, client_id});
  }

 private:
  struct Key {
    uint64_t endpoint;
    uint64_t client_id;
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.endpoint, k.client_id);
    }
  };

  static uint64_t Rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

  // SipHash-2-4 over three 64-bit words.
  uint64_t SipHash(uint64_t a, uint64_t b, uint64_t c) const {
    uint64_t v0 = k0_ ^ 0x736f6d6570736575ull, v1 = k1_ ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0_ ^ 0x6c7967656e657261ull, v3 = k1_ ^ 0x7465646279746573ull;
    auto round = [&] {
      v0 += v1; v1 = Rotl(v1, 13); v1 ^= v0; v0 = Rotl(v0, 32);
      v2 += v3; v3 = Rotl(v3, 16); v3 ^= v2;
      v0 += v3; v3 = Rotl(v3, 21); v3 ^= v0;
      v2 += v1; v1 = Rotl(v1, 17); v1 ^= v2; v2 = Rotl(v2, 32);
    };
    for (uint64_t m : {a, b, c, uint64_t{24} << 56}) {
      v3 ^= m;
      round();
      round();
      v0 ^= m;
    }
    v2 ^= 0xff;
    for (int i = 0; i < 4; ++i) round();
    const uint64_t h = v0 ^ v1 ^ v2 ^ v3;
    return h == 0 ? 1 : h;  // 0 means "no cookie" on the wire
  }

  uint64_t k0_ = 0, k1_ = 0;
  absl::flat_hash_set<Key> verified_;
};

}  // namespace sluice::dataplane
