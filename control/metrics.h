// GET /metrics: the backend's statistics, the catalog and the control plane's own state in the
// Prometheus text exposition format (version 0.0.4): every family with # HELP and # TYPE, counters
// named *_total, histograms as _bucket{le}/_sum/_count. Metric names: docs/control.md §Metrics.
#pragma once

#include <map>
#include <string>

#include "control/catalog.h"
#include "control/control_backend.h"

namespace sluice::control {

inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

struct MetricsContext {
  std::string version;            // sluice version
  bool live = true;
  bool ready = true;
  RoleInfo role;
  std::map<int, uint64_t> http_responses;  // REST responses by status code
};

std::string RenderMetrics(const BackendStats& stats, const CatalogSnapshot& catalog,
                          const MetricsContext& context);

}  // namespace sluice::control
