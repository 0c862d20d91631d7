// Loading, validating and describing machine layouts (hwconf/layout.h).
//
// A layout is a TOML file; hwconf/README.md documents every key (its reference section is the
// output of PrintSettings in Markdown) and every validation rule. Errors are
// absl::InvalidArgumentError with one line per problem, ordered by line in the file:
//
//   tap.toml:12: key 'port[0].ipv4': "198.18.0.300" is not an IPv4 address (a.b.c.d, 0-255 each)
//
// Schema problems (syntax, unknown keys, types, ranges, enum values) are all reported together; the
// cross-key rules (shard and RX-queue ownership, references, ...) run only on a layout whose every
// value parsed, and are then all reported together too.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "hwconf/layout.h"

namespace sluice::hwconf {

// Reads and validates the layout file at `path`. NotFoundError if it cannot be read,
// InvalidArgumentError if it is not a valid layout.
absl::StatusOr<Layout> LoadLayout(const std::string& path);

// Same, from TOML text; `name` stands for the file in error messages and Layout::source.
absl::StatusOr<Layout> LoadLayoutFromString(std::string_view toml, std::string_view name);

// A human-readable summary: the EAL argv, ports, what each lcore polls and owns, storage,
// replication, control and the declared queues. Ends with a newline.
std::string FormatLayout(const Layout& layout);

// The EAL argv the layout implies, argv0 first: -l or --lcores, --main-lcore, memory (-m or
// --socket-mem), --no-huge, --file-prefix, --vdev per vdev port, -a per PCI port (or --no-pci when
// there is none), then eal.extra_args verbatim. Never --in-memory: sluicectl and dpdk-telemetry.py
// attach to the running process through its file prefix.
std::vector<std::string> EalArgs(const Layout& layout, std::string_view argv0);

enum class SettingsFormat { kText, kMarkdown };

// The reference of every layout key (type, range or allowed values, unit, default, description),
// printed from the same table the loader validates against.
void PrintSettings(std::ostream& out, SettingsFormat format = SettingsFormat::kText);

}  // namespace sluice::hwconf
