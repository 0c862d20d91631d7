// Debian's Abseil is built as C++14: absl::string_view is its own type, not std::string_view.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"

namespace sluice::control {

inline absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace sluice::control
