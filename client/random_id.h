// Client-chosen ids (subscriptions, group members, reply inboxes): random, so that two clients or
// two runs of one client never collide, and never 0 (the protocol's "none").
#pragma once

#include <cstdint>
#include <random>

namespace sluice::client {

inline uint64_t RandomId() {
  std::random_device rd;
  uint64_t v = 0;
  while (v == 0) v = (uint64_t{rd()} << 32) | rd();
  return v;
}

}  // namespace sluice::client
