#include "control/version.h"

#ifndef SLUICE_VERSION
#error "SLUICE_VERSION is set by control/meson.build"
#endif

namespace sluice::control {

std::string_view SluiceVersion() { return SLUICE_VERSION; }

}  // namespace sluice::control
