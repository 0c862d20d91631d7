// Invariant checks that stay on in release builds (STYLE: broken invariants are assertions,
// expected outcomes are Errc/absl::Status). A failed check prints where and aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

#define SLUICE_ASSERT(cond)                                                          \
  do {                                                                               \
    if (__builtin_expect(!(cond), 0)) {                                              \
      std::fprintf(stderr, "sluice: assertion failed: %s (%s:%d)\n", #cond, __FILE__, \
                   __LINE__);                                                        \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)
