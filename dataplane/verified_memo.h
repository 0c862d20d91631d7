// One worker's memory of the last source it found verified (address_check.h), so that a stream
// of requests from one client costs one hash lookup per ~5 minutes instead of one per frame
// (rte_hash_lookup_data on the shared table: ~150 instructions, measured under callgrind — about
// an eighth of an x1 PRODUCE's whole path on the worker).
//
// Why it answers as the table would: the table's entries are never deleted, and an entry's time
// (the last valid echo) is only ever overwritten by a later Verify, which stores its worker's
// now_ns. So the table's time for a source never moves back, except by the difference between two
// workers' pass clocks (microseconds; each worker stamps now_ns once per loop pass). The memory
// says "verified" only while its remembered time is kMarginNs (1 s) younger than the expiry; in
// that window the table, read now, says "verified" too. Everything else — another source, an older
// echo, an unverified source, a clock behind the remembered time — is asked of the table, exactly
// as before (so a source verified meanwhile by a HEARTBEAT on another worker is seen at once).
// Without DPDK: the table lookup comes in as a callable (unit-tested with a fake table).
#pragma once

#include <cstdint>

namespace sluice::dataplane {

class VerifiedMemo {
 public:
  static constexpr uint64_t kMarginNs = 1'000'000'000ull;

  // verified_at(endpoint, client_id, &at): the table's lookup (true and the time of the last
  // valid echo if it holds the source). verified_for_ns: the table's expiry (kVerifiedForNs).
  template <class Lookup>
  bool IsVerified(uint64_t endpoint, uint64_t client_id, uint64_t now_ns,
                  uint64_t verified_for_ns, Lookup&& verified_at) {
    static_assert(kMarginNs < 300'000'000'000ull);
    if (valid_ && endpoint == endpoint_ && client_id == client_id_ &&
        now_ns - at_ < verified_for_ns - kMarginNs) {  // unsigned: a clock behind at_ misses
      return true;
    }
    uint64_t at = 0;
    if (!verified_at(endpoint, client_id, &at)) return false;
    valid_ = true;
    endpoint_ = endpoint;
    client_id_ = client_id;
    at_ = at;
    return now_ns - at < verified_for_ns;
  }

 private:
  bool valid_ = false;
  uint64_t endpoint_ = 0;
  uint64_t client_id_ = 0;
  uint64_t at_ = 0;  // the table's time for (endpoint_, client_id_) when last read
};

}  // namespace sluice::dataplane
