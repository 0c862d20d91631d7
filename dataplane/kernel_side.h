// The kernel side of a TAP port: sluiced gives the interface the layout's `kernel_ipv4` and
// brings it up, so that kernel clients on the same host (or in the same network namespace) reach
// the dataplane as soon as sluiced has started. Start-up only; never on the packet path.
#pragma once

#include "absl/status/status.h"
#include "hwconf/layout.h"

namespace sluice::dataplane {

absl::Status ConfigureKernelSide(const hwconf::Port& port);

}  // namespace sluice::dataplane
