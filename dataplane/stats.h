// Counters of the worker lcores, read by the main lcore: printed on exit and written as JSON to
// --stats-file (tests and scripts read it; /metrics and DPDK telemetry come with the control plane).
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace sluice::dataplane {

class Worker;

void PrintStats(FILE* out, const std::vector<std::unique_ptr<Worker>>& workers);
// Writes atomically (temp file + rename) so that a reader never sees half a file.
void WriteStatsFile(const std::string& path, const std::vector<std::unique_ptr<Worker>>& workers);

}  // namespace sluice::dataplane
