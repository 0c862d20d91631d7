// Automatic promotion through an etcd leader key (docs/replication.md §7).
//
// The primary holds `key` = {"epoch", "client", "boot"} attached to a lease of `lease_ms` and
// renews the lease; the standby reads the key and, when it is absent (the primary's lease
// expired), campaigns: create-if-absent under its own lease, with the epoch it will promote to.
// Only the box that created the key promotes, so a standby never promotes while a live primary
// holds the key. Beside it, `key/epoch` (no lease) records the highest epoch ever elected, written
// in the same txn as the key: a primary whose epoch is below it never acquires the key again (it
// rejoins as standby), even when the newer primary is down and its key gone; a campaign takes an
// epoch above it.
//
// The safety rule of the primary (writes stop before anyone else can take over): a renewal sent
// at t (our monotonic clock) that succeeds proves the lease lives until at least t + TTL on the
// server's clock (the server restarts the TTL when it receives the renewal, after t). So the
// primary takes writes only while now < t_last_successful_send + TTL - margin. The data path
// checks that deadline itself (writable_until_ns, published by the runner as a TSC value), so a
// stalled election thread or a process stopped with SIGSTOP steps down on resume without the
// election having to run first. A deadline that passed is never extended again in the same
// process: the box restarts (kResume / kRejoin) instead, so there is no way back to writable
// without going through the start-up acquisition.
//
// LeaderElection is the state machine: pure, driven by Step() with an injected clock and an
// EtcdApi, so the unit tests run every rule with a fake etcd and a fake clock. ElectionRunner is
// the thread that steps it in sluiced.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/statusor.h"
#include "control/etcd_client.h"

namespace sluice::control {

// The value of the leader key.
struct LeaderValue {
  uint64_t epoch = 0;
  std::string client;  // "ip:port": where clients reach this box; also the box's identity
  uint64_t boot = 0;   // this process incarnation
};
std::string EncodeLeader(const LeaderValue& v);
absl::StatusOr<LeaderValue> DecodeLeader(std::string_view s);

// What the box must do after a Step.
enum class ElectionAction {
  kNone,
  kPromote,  // standby: we created the key with the next epoch; restart as primary
  kRejoin,   // primary: a newer primary holds the key; restart as its standby
  kResume,   // primary: stepped down (lease lost) and the key is free or ours; restart as primary
             // to acquire again (partitions re-registered by the normal start-up)
};
std::string_view ToString(ElectionAction a);

struct ElectionConfig {
  std::string key = "/sluice/leader";
  int64_t lease_ms = 3000;   // multiple of 1000 (etcd leases are whole seconds)
  std::string client;        // this box's client address, "ip:port"
  uint64_t boot = 0;
  bool primary = false;      // the role this process runs
  uint64_t epoch = 0;        // primary: its epoch
  // Primary: the lease of the standby process that campaigned and restarted itself as this
  // primary (promotion restarts in place), reused while alive so that the key does not lapse
  // during the restart. 0: none.
  int64_t inherited_lease = 0;
  // Standby: may it campaign now (caught up with the primary, as unforced promotion demands)?
  std::function<bool()> may_campaign = [] { return true; };
  // Standby: the epoch a promotion would take (max(own, seen) + 1).
  std::function<uint64_t()> next_epoch = [] { return uint64_t{1}; };
  // Diagnostic lines (state changes, first error of a run of errors), without a prefix.
  std::function<void(const std::string&)> log = [](const std::string&) {};
};

class LeaderElection {
 public:
  using Clock = std::function<int64_t()>;  // monotonic nanoseconds

  LeaderElection(EtcdApi& etcd, ElectionConfig config, Clock clock);

  // One round of etcd calls (at most a few, each bounded by the client's timeout). Call again at
  // next_step_ns(). Returns what the box must do; once not kNone, Step does nothing more.
  ElectionAction Step();
  int64_t next_step_ns() const { return next_step_ns_; }

  // Primary: writes may be acknowledged while the monotonic clock is below this; 0 = not.
  int64_t writable_until_ns() const { return writable_until_ns_; }
  bool holding() const { return state_ == State::kHold; }
  int64_t lease() const { return lease_; }
  // Standby after kPromote: the epoch written in the key.
  uint64_t promoted_epoch() const { return campaign_epoch_; }

  // The timing rules, derived from lease_ms (see the file comment).
  int64_t renew_interval_ns() const { return lease_ns_ / 4; }
  int64_t retry_interval_ns() const { return lease_ns_ / 10; }
  int64_t margin_ns() const { return lease_ns_ / 4; }

 private:
  enum class State { kAcquire, kHold, kSteppedDown, kWatch, kDone };
  void Acquire(int64_t now);
  void Hold(int64_t now);
  void SteppedDown(int64_t now);
  void Watch(int64_t now);
  void StepDown(const std::string& why);
  void Finish(ElectionAction a, const std::string& why);
  bool EnsureLease(int64_t* granted_at);
  void Error(const absl::Status& s);
  bool IsMine(const LeaderValue& v) const { return v.client == config_.client; }
  struct Record {
    uint64_t epoch = 0;
    int64_t mod_revision = 0;  // 0: absent
  };
  std::string RecordKey() const { return config_.key + "/epoch"; }
  bool ReadRecord(Record* r);

  EtcdApi& etcd_;
  ElectionConfig config_;
  Clock clock_;
  const int64_t lease_ns_;
  State state_;
  ElectionAction action_ = ElectionAction::kNone;
  int64_t lease_ = 0;
  int64_t lease_granted_ns_ = 0;
  int64_t writable_until_ns_ = 0;
  int64_t next_step_ns_ = 0;
  uint64_t campaign_epoch_ = 0;
  std::string last_error_;      // logged once per run of the same error
  std::string last_holder_;     // standby: logged when it changes
  bool told_not_caught_up_ = false;
};

// Steps a LeaderElection on its own thread until it yields an action or Stop(). After every
// step `publish(writable_until_ns)` (steady-clock nanoseconds; the caller converts it for the
// data path); an action goes to `on_action` once, from that thread.
class ElectionRunner {
 public:
  ElectionRunner(std::unique_ptr<EtcdApi> etcd, ElectionConfig config,
                 std::function<void(int64_t)> publish,
                 std::function<void(ElectionAction, const LeaderElection&)> on_action);
  ~ElectionRunner();  // Stop()
  // Runs steps on the calling thread until the key is held, an action is due, or `stop` (the
  // primary's start-up acquisition, before it serves). Returns the action (kNone: holding, or
  // stopped); an action also goes to `on_action`, from the calling thread.
  ElectionAction AcquireBlocking(const std::atomic<bool>& stop);
  void Start();
  void Stop();
  // Renews the election's lease once, now (before a promoted standby executes itself again).
  void KeepAliveLease();
  static int64_t SteadyNowNs();
  LeaderElection& election() { return *election_; }

 private:
  void Loop();
  std::unique_ptr<EtcdApi> etcd_;
  std::unique_ptr<LeaderElection> election_;
  std::function<void(int64_t)> publish_;
  std::function<void(ElectionAction, const LeaderElection&)> on_action_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sluice::control
