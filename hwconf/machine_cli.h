// `sluicectl hwconf check|suggest`: the machine check and the suggested layout on the command line
// (sluicectl hands everything after `hwconf` to RunHwconfCli). Exit status of check: 0 no finding,
// 1 warnings only (the layout runs here, slower than it could), 2 errors (it cannot run here, or
// the file is not a valid layout) -- and 2 for a usage error, as everywhere in sluicectl.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace sluice::hwconf {

inline constexpr int kCliOk = 0;
inline constexpr int kCliWarnings = 1;
inline constexpr int kCliErrors = 2;  // also usage errors

extern const char kHwconfCliHelp[];

// `args` are the words after `hwconf`; `json` is sluicectl's global --json (also accepted after
// `check`).
int RunHwconfCli(const std::vector<std::string>& args, bool json, std::ostream& out,
                 std::ostream& err);

}  // namespace sluice::hwconf
