#include "control/control_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "control/errors.h"

namespace sluice::control {
namespace {

absl::Status PublishError(const absl::Status& st) {
  // The dataplane says which attribute it cannot hold (shard capacity, message size): a limit the
  // client can act on (409 limit_exceeded with that field), not an outage.
  if (st.code() == absl::StatusCode::kResourceExhausted && !ErrorFieldOf(st).empty()) return st;
  return MakeError(absl::StatusCode::kUnavailable, errc::kUnavailable, "",
                   absl::StrCat("the dataplane did not take the new queue table: ", st.message()));
}

}  // namespace

ControlService::ControlService(Catalog& catalog, ControlBackend& backend)
    : catalog_(catalog), backend_(backend) {}

absl::Status ControlService::PublishLocked() {
  absl::Status st = backend_.Publish(catalog_.Snapshot());
  return st.ok() ? st : PublishError(st);
}

absl::Status ControlService::RefuseUnlessPrimary() {
  const RoleInfo r = backend_.Role();
  if (r.role == "standby") {
    return MakeError(absl::StatusCode::kFailedPrecondition, errc::kNotPrimary, "",
                     absl::StrCat("this box is the standby (epoch ", r.epoch, "): change queues "
                                  "on the primary", r.peer.empty() ? "" : " (" + r.peer + ")",
                                  "; its catalog reaches this box over the replication link"));
  }
  if (r.role == "primary" && r.fenced) {
    return MakeError(absl::StatusCode::kFailedPrecondition, errc::kNotPrimary, "",
                     absl::StrCat("this primary is fenced: a newer epoch than ", r.epoch,
                                  " exists; change queues on the new primary"));
  }
  return absl::OkStatus();
}

absl::Status ControlService::PublishCurrent() {
  std::lock_guard lock(publish_mu_);
  return PublishLocked();
}

absl::Status ControlService::ReplaceCatalog(std::string_view document) {
  std::lock_guard lock(publish_mu_);
  if (absl::Status st = catalog_.Replace(document); !st.ok()) return st;
  return PublishLocked();
}

absl::StatusOr<BootstrapReport> ControlService::Bootstrap(
    const std::vector<hwconf::QueueDecl>& decls) {
  std::lock_guard lock(publish_mu_);
  // A queue after its dead-letter queue: passes over what is left until no progress.
  std::vector<const hwconf::QueueDecl*> pending, order;
  for (const auto& d : decls) pending.push_back(&d);
  while (!pending.empty()) {
    std::vector<const hwconf::QueueDecl*> later;
    for (const hwconf::QueueDecl* d : pending) {
      const bool ready = d->dead_letter_queue.empty() ||
                         catalog_.Describe(d->dead_letter_queue).ok() ||
                         std::any_of(order.begin(), order.end(), [d](const auto* o) {
                           return o->name == d->dead_letter_queue;
                         });
      (ready ? order : later).push_back(d);
    }
    if (later.size() == pending.size()) {  // a cycle or a missing target: Create says which
      order.insert(order.end(), later.begin(), later.end());
      break;
    }
    pending = std::move(later);
  }
  BootstrapReport report;
  for (const hwconf::QueueDecl* d : order) {
    const QueueSpec spec = SpecFromQueueDecl(*d, catalog_.options());
    absl::StatusOr<QueueMeta> existing = catalog_.Describe(spec.name);
    if (existing.ok()) {
      if (existing->spec == spec) {
        report.existing.push_back(spec.name);
      } else {
        report.warnings.push_back(absl::StrCat(
            "[[queue]] \"", spec.name, "\" differs from the stored queue (",
            existing->spec.type != spec.type ? "type"
            : existing->spec.partitions != spec.partitions
                ? "partitions"
                : std::string(FirstDifference(existing->spec.attributes, spec.attributes)),
            "); the stored metadata is kept"));
      }
      continue;
    }
    absl::StatusOr<CreateResult> r = catalog_.Create(spec);
    if (!r.ok()) {
      return absl::Status(r.status().code(), absl::StrCat("[[queue]] \"", spec.name, "\": ",
                                                          r.status().message()));
    }
    report.created.push_back(spec.name);
  }
  return report;
}

absl::StatusOr<CreateResult> ControlService::CreateQueue(const QueueSpec& spec) {
  std::lock_guard lock(publish_mu_);
  if (absl::Status st = RefuseUnlessPrimary(); !st.ok()) return st;
  absl::StatusOr<CreateResult> r = catalog_.Create(spec);
  if (!r.ok() || !r->created) return r;
  if (absl::Status st = PublishLocked(); !st.ok()) {
    (void)catalog_.Delete(spec.name);  // nothing can name it yet: a fresh queue is no DLQ target
    return st;
  }
  return r;
}

absl::StatusOr<QueueMeta> ControlService::UpdateQueue(std::string_view name,
                                                      const AttributePatch& patch) {
  std::lock_guard lock(publish_mu_);
  if (absl::Status st = RefuseUnlessPrimary(); !st.ok()) return st;
  const uint64_t before = catalog_.Snapshot()->version();
  absl::StatusOr<QueueMeta> r = catalog_.Update(name, patch);
  if (!r.ok() || catalog_.Snapshot()->version() == before) return r;
  if (absl::Status st = PublishLocked(); !st.ok()) return st;
  return r;
}

absl::StatusOr<QueueMeta> ControlService::PurgeQueue(std::string_view name) {
  std::lock_guard lock(publish_mu_);
  if (absl::Status st = RefuseUnlessPrimary(); !st.ok()) return st;
  absl::StatusOr<QueueMeta> r = catalog_.Purge(name);
  if (!r.ok()) return r;
  if (absl::Status st = PublishLocked(); !st.ok()) return st;
  if (absl::Status st = backend_.Purge(*r); !st.ok()) {
    return MakeError(absl::StatusCode::kUnavailable, errc::kUnavailable, "",
                     absl::StrCat("purge recorded, but the dataplane failed it: ", st.message()));
  }
  return r;
}

absl::StatusOr<QueueMeta> ControlService::DeleteQueue(std::string_view name) {
  std::lock_guard lock(publish_mu_);
  if (absl::Status st = RefuseUnlessPrimary(); !st.ok()) return st;
  absl::StatusOr<QueueMeta> r = catalog_.Delete(name);
  if (!r.ok()) return r;
  if (absl::Status st = PublishLocked(); !st.ok()) return st;
  return r;
}

BackendStats ControlService::Stats() {
  BackendStats stats = backend_.Stats();
  std::lock_guard lock(rates_mu_);
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - sample_time_).count();
  const bool resample = sample_.empty() || dt >= 1.0;
  std::map<std::pair<uint32_t, uint32_t>, Sample> next;
  for (QueueStats& q : stats.queues) {
    for (PartitionStats& p : q.partitions) {
      const auto key = std::make_pair(q.id, p.partition);
      const Sample cur{p.messages_in, p.messages_out, p.bytes_in, p.bytes_out};
      if (resample) {
        auto prev = sample_.find(key);
        if (prev != sample_.end() && !sample_.empty() && dt > 0) {
          auto rate = [dt](uint64_t a, uint64_t b) { return a >= b ? double(a - b) / dt : 0.0; };
          rates_[key] = Rates{rate(cur.messages_in, prev->second.messages_in),
                              rate(cur.messages_out, prev->second.messages_out),
                              rate(cur.bytes_in, prev->second.bytes_in),
                              rate(cur.bytes_out, prev->second.bytes_out)};
        }
        next[key] = cur;
      }
      auto r = rates_.find(key);
      if (r != rates_.end()) {
        p.messages_in_per_s = r->second.messages_in;
        p.messages_out_per_s = r->second.messages_out;
        p.bytes_in_per_s = r->second.bytes_in;
        p.bytes_out_per_s = r->second.bytes_out;
      }
    }
  }
  if (resample) {
    sample_ = std::move(next);
    sample_time_ = now;
    for (auto it = rates_.begin(); it != rates_.end();) {
      it = sample_.count(it->first) ? std::next(it) : rates_.erase(it);
    }
  }
  return stats;
}

}  // namespace sluice::control
