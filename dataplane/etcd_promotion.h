// sluiced's side of automatic promotion through etcd (docs/replication.md §7): the election
// (control/leader_election.h) on its own thread, its deadline handed to the data path, and its
// actions turned into the same restarts as manual promotion and fencing.
//
//   - Primary: Acquire() before any worker exists (partitions are registered for replication
//     only on a writable box), then Start() keeps the lease alive. Every step publishes the
//     deadline as a TSC value in ReplicationStatus::writable_until_tsc; ReplicationShell and
//     ReplicationRoleView refuse writes (NOT_PRIMARY) past it, on their own clock reading.
//   - Standby: Start() watches the key and campaigns when it is free and the standby has caught
//     up; winning restarts the process as primary with the next epoch, the campaign's lease
//     handed over in $SLUICE_ETCD_LEASE so the key does not lapse during the restart.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "control/leader_election.h"
#include "dataplane/replication_shell.h"
#include "hwconf/layout.h"

namespace sluice::dataplane {

struct EtcdPromotionConfig {
  const hwconf::Layout* layout = nullptr;
  ReplicationStatus* status = nullptr;
  bool primary = false;
  uint64_t epoch = 0;          // the state file's epoch
  uint64_t boot_id = 0;
  // Standby: the epoch a promotion takes (RestartInRole's rule).
  std::function<uint64_t()> next_epoch;
  // An action of the election (from its thread): the caller stops and restarts accordingly.
  // `epoch`: with kPromote, the epoch written in the key (the promotion must persist it).
  std::function<void(control::ElectionAction, uint64_t epoch)> on_action;
};

class EtcdPromotion {
 public:
  // Null (and OK) when the layout configures no etcd.
  static absl::StatusOr<std::unique_ptr<EtcdPromotion>> Create(EtcdPromotionConfig c);
  ~EtcdPromotion();

  // Primary: blocks until the key is ours (returns kNone), an action is due, or `stop`.
  control::ElectionAction Acquire(const std::atomic<bool>& stop);
  void Start();
  void Stop();
  // A standby that won: renew the campaign's lease and hand it to the next process image.
  void BeforePromotionExec();

 private:
  explicit EtcdPromotion(EtcdPromotionConfig c);
  void Publish(int64_t writable_until_ns);
  EtcdPromotionConfig config_;
  std::unique_ptr<control::ElectionRunner> runner_;
};

}  // namespace sluice::dataplane
