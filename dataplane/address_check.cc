#include "dataplane/address_check.h"

#include <rte_errno.h>

#include "absl/strings/str_format.h"

namespace sluice::dataplane {

absl::StatusOr<AddressCheck*> AddressCheck::Create(int socket_id) {
  rte_hash_parameters params{};
  params.name = "sluice_verified_sources";
  params.entries = kMaxVerified;
  params.key_len = sizeof(Key);
  params.hash_func = rte_hash_crc;
  params.socket_id = socket_id;
  params.extra_flag =
      RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD;
  rte_hash* table = rte_hash_create(&params);
  if (table == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "verified-source table (%u entries): %s", kMaxVerified, rte_strerror(rte_errno)));
  }
  return new AddressCheck(table);
}

AddressCheck::AddressCheck(rte_hash* table) : table_(table) {
  std::random_device rd;
  k0_ = (uint64_t{rd()} << 32) | rd();
  k1_ = (uint64_t{rd()} << 32) | rd();
}

AddressCheck::~AddressCheck() { rte_hash_free(table_); }

bool AddressCheck::Verify(uint64_t endpoint, uint64_t client_id, uint64_t cookie,
                          uint64_t now_ns) {
  const uint64_t epoch = now_ns / kEpochNs;
  if (cookie == 0 || (cookie != SipHash(endpoint, client_id, epoch) &&
                      cookie != SipHash(endpoint, client_id, epoch - 1))) {
    return false;
  }
  const Key key{endpoint, client_id};
  // The data word is the verification time; updating it for an existing key is atomic.
  return rte_hash_add_key_data(table_, &key, reinterpret_cast<void*>(now_ns)) == 0;
}

bool AddressCheck::VerifiedAt(uint64_t endpoint, uint64_t client_id, uint64_t* at) const {
  const Key key{endpoint, client_id};
  void* data = nullptr;
  if (rte_hash_lookup_data(table_, &key, &data) < 0) return false;
  *at = reinterpret_cast<uint64_t>(data);
  return true;
}

// SipHash-2-4 over three 64-bit words.
uint64_t AddressCheck::SipHash(uint64_t a, uint64_t b, uint64_t c) const {
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

}  // namespace sluice::dataplane
