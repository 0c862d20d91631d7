// The sluice version this control plane was built as (meson project version).
#pragma once

#include <string_view>

namespace sluice::control {

std::string_view SluiceVersion();
inline constexpr std::string_view kApiVersion = "v1";

}  // namespace sluice::control
