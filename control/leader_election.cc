#include "control/leader_election.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "control/absl_view.h"
#include "protocol/assert.h"

namespace sluice::control {
namespace {
using Json = nlohmann::json;
constexpr int64_t kNsPerSec = 1'000'000'000;
}  // namespace

std::string EncodeLeader(const LeaderValue& v) {
  return Json{{"epoch", v.epoch}, {"client", v.client}, {"boot", absl::StrFormat("%016x", v.boot)}}
      .dump();
}

absl::StatusOr<LeaderValue> DecodeLeader(std::string_view s) {
  Json j = Json::parse(s.begin(), s.end(), nullptr, /*allow_exceptions=*/false);
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("the leader key holds no sluice leader value: ", A(s.substr(0, 120))));
  };
  if (j.is_discarded() || !j.is_object()) return bad();
  auto e = j.find("epoch");
  auto c = j.find("client");
  auto b = j.find("boot");
  if (e == j.end() || !e->is_number_unsigned() || c == j.end() || !c->is_string() ||
      b == j.end() || !b->is_string()) {
    return bad();
  }
  LeaderValue v;
  v.epoch = e->get<uint64_t>();
  v.client = c->get<std::string>();
  const std::string boot = b->get<std::string>();
  if (boot.empty() || boot.size() > 16 ||
      std::sscanf(boot.c_str(), "%" SCNx64, &v.boot) != 1) {
    return bad();
  }
  return v;
}

std::string_view ToString(ElectionAction a) {
  switch (a) {
    case ElectionAction::kNone: return "none";
    case ElectionAction::kPromote: return "promote";
    case ElectionAction::kRejoin: return "rejoin";
    case ElectionAction::kResume: return "resume";
  }
  return "?";
}

LeaderElection::LeaderElection(EtcdApi& etcd, ElectionConfig config, Clock clock)
    : etcd_(etcd),
      config_(std::move(config)),
      clock_(std::move(clock)),
      lease_ns_(config_.lease_ms * 1'000'000),
      state_(config_.primary ? State::kAcquire : State::kWatch) {
  // etcd leases are whole seconds; hwconf validates the setting (>= 2 s).
  SLUICE_ASSERT(config_.lease_ms >= 1000 && config_.lease_ms % 1000 == 0);
  next_step_ns_ = clock_();
}

ElectionAction LeaderElection::Step() {
  if (state_ == State::kDone) return ElectionAction::kNone;
  const int64_t now = clock_();
  switch (state_) {
    case State::kAcquire: Acquire(now); break;
    case State::kHold: Hold(now); break;
    case State::kSteppedDown: SteppedDown(now); break;
    case State::kWatch: Watch(now); break;
    case State::kDone: break;
  }
  return state_ == State::kDone ? action_ : ElectionAction::kNone;
}

void LeaderElection::Error(const absl::Status& s) {
  std::string text(s.message());
  if (text != last_error_) config_.log(text);
  last_error_ = std::move(text);
}

void LeaderElection::Finish(ElectionAction a, const std::string& why) {
  writable_until_ns_ = 0;
  state_ = State::kDone;
  action_ = a;
  config_.log(absl::StrCat(why, ": ", A(ToString(a))));
}

void LeaderElection::StepDown(const std::string& why) {
  // Writes stop now (the runner publishes 0) and never resume in this process.
  writable_until_ns_ = 0;
  state_ = State::kSteppedDown;
  config_.log(absl::StrCat("stepped down (no writes acknowledged any more): ", why));
}

// A lease of our own: the inherited one while it lives (a promoted standby restarting as this
// primary), else a new one. `*granted_at`: when the call that proves it alive was sent.
bool LeaderElection::EnsureLease(int64_t* granted_at) {
  if (lease_ != 0) return true;
  if (config_.inherited_lease != 0) {
    const int64_t lease = std::exchange(config_.inherited_lease, 0);
    const int64_t t = clock_();
    absl::StatusOr<int64_t> ttl = etcd_.KeepAlive(lease);
    if (ttl.ok() && *ttl > 0) {
      lease_ = lease;
      *granted_at = t;
      return true;
    }
  }
  const int64_t t = clock_();
  absl::StatusOr<int64_t> lease = etcd_.Grant(lease_ns_ / kNsPerSec);
  if (!lease.ok()) {
    Error(lease.status());
    return false;
  }
  lease_ = *lease;
  *granted_at = t;
  return true;
}

// The highest epoch ever elected: `<key>/epoch`, a decimal without a lease (it outlives every
// primary). Absent: 0.
bool LeaderElection::ReadRecord(Record* r) {
  absl::StatusOr<std::optional<EtcdKv>> kv = etcd_.Get(RecordKey());
  if (!kv.ok()) {
    Error(kv.status());
    return false;
  }
  *r = Record{};
  if (!kv->has_value()) return true;
  r->mod_revision = (*kv)->mod_revision;
  const std::string& v = (*kv)->value;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), r->epoch);
  if (ec != std::errc() || p != v.data() + v.size()) {
    Error(absl::InvalidArgumentError(
        absl::StrCat(RecordKey(), " holds no epoch: ", A(std::string_view(v).substr(0, 40)))));
    return false;
  }
  return true;
}

void LeaderElection::Acquire(int64_t now) {
  next_step_ns_ = now + retry_interval_ns();
  if (!EnsureLease(&lease_granted_ns_)) return;
  Record record;
  if (!ReadRecord(&record)) return;
  if (record.epoch > config_.epoch) {
    // A newer primary was elected while this box was away (it may be down now, its key gone):
    // this box's log may lack what it acknowledged. Never serve on an older epoch.
    return Finish(ElectionAction::kRejoin,
                  absl::StrCat("epoch ", record.epoch, " was elected after ours (",
                               config_.epoch, "); this box follows it"));
  }
  absl::StatusOr<std::optional<EtcdKv>> kv = etcd_.Get(config_.key);
  if (!kv.ok()) return Error(kv.status());
  const LeaderValue mine{config_.epoch, config_.client, config_.boot};
  const std::vector<EtcdPut> puts = {{config_.key, EncodeLeader(mine), lease_},
                                     {RecordKey(), std::to_string(config_.epoch), 0}};
  absl::StatusOr<bool> won = false;
  if (!kv->has_value()) {
    won = etcd_.PutIfUnchanged({{config_.key, 0}, {RecordKey(), record.mod_revision}}, puts);
  } else {
    absl::StatusOr<LeaderValue> holder = DecodeLeader((*kv)->value);
    if (!holder.ok()) return Error(holder.status());  // not ours to overwrite: wait
    if (holder->epoch > config_.epoch) {
      return Finish(ElectionAction::kRejoin,
                    absl::StrCat("the primary of epoch ", holder->epoch, " at ", holder->client,
                                 " holds ", config_.key, " (ours is ", config_.epoch, ")"));
    }
    if (holder->epoch == config_.epoch && !IsMine(*holder)) {
      std::string who = absl::StrCat(holder->client, " epoch ", holder->epoch);
      if (who != last_holder_) {
        config_.log(absl::StrCat(config_.key, " is held by ", who, ": waiting for it"));
      }
      last_holder_ = std::move(who);
      return;
    }
    // Ours from a previous incarnation (the key of the campaign that promoted us), or an older
    // epoch's (a primary deposed by a manual promotion): the newer epoch takes it over, unless
    // someone wrote it since we read it.
    won = etcd_.PutIfUnchanged(
        {{config_.key, (*kv)->mod_revision}, {RecordKey(), record.mod_revision}}, puts);
  }
  if (!won.ok()) {
    lease_ = 0;  // perhaps expired while we waited: a fresh one next time
    return Error(won.status());
  }
  if (!*won) return;  // somebody wrote the key in between: read it again
  state_ = State::kHold;
  writable_until_ns_ = lease_granted_ns_ + lease_ns_ - margin_ns();
  next_step_ns_ = lease_granted_ns_ + renew_interval_ns();
  last_error_.clear();
  config_.log(absl::StrCat("holding ", config_.key, " as the primary of epoch ", config_.epoch,
                           " (lease ", config_.lease_ms, " ms)"));
}

void LeaderElection::Hold(int64_t now) {
  if (now >= writable_until_ns_) {
    return StepDown(absl::StrCat("the lease was not renewed within ",
                                 (lease_ns_ - margin_ns()) / 1'000'000, " ms"));
  }
  const int64_t sent = clock_();
  absl::StatusOr<int64_t> ttl = etcd_.KeepAlive(lease_);
  const int64_t after = clock_();
  if (!ttl.ok()) {
    Error(ttl.status());
    next_step_ns_ = std::min(after + retry_interval_ns(), writable_until_ns_);
    return;
  }
  if (*ttl == 0) return StepDown("the lease expired in etcd");
  // A renewal answered after the deadline proves the lease, but the data path may already have
  // stopped: no way back to writable within a process (see the header).
  if (after >= writable_until_ns_) return StepDown("the renewal was answered too late");
  writable_until_ns_ = std::max(writable_until_ns_, sent + *ttl * kNsPerSec - margin_ns());
  next_step_ns_ = sent + renew_interval_ns();
  last_error_.clear();
  // Still ours? (An operator may have deleted or overwritten the key.)
  absl::StatusOr<std::optional<EtcdKv>> kv = etcd_.Get(config_.key);
  if (!kv.ok()) return Error(kv.status());
  if (!kv->has_value()) {
    config_.log(absl::StrCat(config_.key, " vanished while our lease lives: writing it again"));
    absl::StatusOr<bool> won = etcd_.PutIfUnchanged(
        {{config_.key, 0}},
        {{config_.key, EncodeLeader({config_.epoch, config_.client, config_.boot}), lease_}});
    if (!won.ok()) return Error(won.status());
    if (*won) return;
    next_step_ns_ = after;  // someone else wrote it: find out who at once
    return;
  }
  absl::StatusOr<LeaderValue> holder = DecodeLeader((*kv)->value);
  if (holder.ok() && holder->boot == config_.boot && IsMine(*holder)) return;
  const std::string who =
      holder.ok() ? absl::StrCat(holder->client, " epoch ", holder->epoch) : "an unknown value";
  StepDown(absl::StrCat(config_.key, " is held by ", who));
  if (holder.ok() && holder->epoch > config_.epoch) {
    Finish(ElectionAction::kRejoin, absl::StrCat("deposed by the primary of epoch ", holder->epoch));
  }
}

void LeaderElection::SteppedDown(int64_t now) {
  next_step_ns_ = now + retry_interval_ns();
  absl::StatusOr<std::optional<EtcdKv>> kv = etcd_.Get(config_.key);
  if (!kv.ok()) return Error(kv.status());
  if (!kv->has_value()) {
    return Finish(ElectionAction::kResume, absl::StrCat(config_.key, " is free"));
  }
  absl::StatusOr<LeaderValue> holder = DecodeLeader((*kv)->value);
  if (!holder.ok()) return Error(holder.status());
  if (holder->epoch > config_.epoch) {
    return Finish(ElectionAction::kRejoin,
                  absl::StrCat("the primary of epoch ", holder->epoch, " at ", holder->client,
                               " holds ", config_.key));
  }
  if (IsMine(*holder)) {
    return Finish(ElectionAction::kResume, absl::StrCat(config_.key, " is still ours"));
  }
  // An equal or older epoch elsewhere: its lease runs out, or it is deposed; wait.
}

void LeaderElection::Watch(int64_t now) {
  next_step_ns_ = now + renew_interval_ns();
  absl::StatusOr<std::optional<EtcdKv>> kv = etcd_.Get(config_.key);
  if (!kv.ok()) {
    next_step_ns_ = now + retry_interval_ns();
    return Error(kv.status());
  }
  last_error_.clear();
  if (kv->has_value()) {
    absl::StatusOr<LeaderValue> holder = DecodeLeader((*kv)->value);
    std::string who = holder.ok() ? absl::StrCat(holder->client, " epoch ", holder->epoch)
                                  : std::string(holder.status().message());
    if (who != last_holder_) config_.log(absl::StrCat(config_.key, " is held by ", who));
    last_holder_ = std::move(who);
    told_not_caught_up_ = false;
    return;
  }
  // The key is free: the primary's lease expired (or there never was one).
  if (!config_.may_campaign()) {
    if (!told_not_caught_up_) {
      config_.log(absl::StrCat(config_.key, " is free but this standby has not caught up with "
                               "the primary: not campaigning (sluicectl promote --force can)"));
    }
    told_not_caught_up_ = true;
    next_step_ns_ = now + retry_interval_ns();
    return;
  }
  // Above every epoch ever elected, even one this standby never heard of.
  Record record;
  if (!ReadRecord(&record)) return;
  const uint64_t epoch = std::max(config_.next_epoch(), record.epoch + 1);
  int64_t granted_at = 0;
  if (!EnsureLease(&granted_at)) return;
  absl::StatusOr<bool> won = etcd_.PutIfUnchanged(
      {{config_.key, 0}, {RecordKey(), record.mod_revision}},
      {{config_.key, EncodeLeader({epoch, config_.client, config_.boot}), lease_},
       {RecordKey(), std::to_string(epoch), 0}});
  if (won.ok() && *won) {
    campaign_epoch_ = epoch;
    return Finish(ElectionAction::kPromote,
                  absl::StrCat("won ", config_.key, " with epoch ", epoch));
  }
  if (!won.ok()) Error(won.status());
  if (won.ok()) config_.log(absl::StrCat("lost the campaign for ", config_.key));
  (void)etcd_.Revoke(lease_);  // best effort: it holds nothing and expires anyway
  lease_ = 0;
  next_step_ns_ = now + retry_interval_ns();
}

// ---- ElectionRunner ----------------------------------------------------------------------------

int64_t ElectionRunner::SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ElectionRunner::ElectionRunner(std::unique_ptr<EtcdApi> etcd, ElectionConfig config,
                               std::function<void(int64_t)> publish,
                               std::function<void(ElectionAction, const LeaderElection&)> on_action)
    : etcd_(std::move(etcd)),
      election_(std::make_unique<LeaderElection>(*etcd_, std::move(config), &SteadyNowNs)),
      publish_(std::move(publish)),
      on_action_(std::move(on_action)) {}

ElectionRunner::~ElectionRunner() { Stop(); }

ElectionAction ElectionRunner::AcquireBlocking(const std::atomic<bool>& stop) {
  while (!stop.load(std::memory_order_relaxed)) {
    const ElectionAction a = election_->Step();
    publish_(election_->writable_until_ns());
    if (a != ElectionAction::kNone) on_action_(a, *election_);
    if (a != ElectionAction::kNone || election_->holding()) return a;
    // Bounded waits so that a signal is noticed within 50 ms.
    while (!stop.load(std::memory_order_relaxed) && SteadyNowNs() < election_->next_step_ns()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::clamp<int64_t>((election_->next_step_ns() - SteadyNowNs()) / 1'000'000, 1, 50)));
    }
  }
  return ElectionAction::kNone;
}

void ElectionRunner::Start() { thread_ = std::thread([this] { Loop(); }); }

void ElectionRunner::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ElectionRunner::KeepAliveLease() {
  if (election_->lease() != 0) (void)etcd_->KeepAlive(election_->lease());
}

void ElectionRunner::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    const ElectionAction a = election_->Step();
    publish_(election_->writable_until_ns());
    if (a != ElectionAction::kNone) {
      on_action_(a, *election_);
      return;
    }
    lock.lock();
    const int64_t wait = std::max<int64_t>(election_->next_step_ns() - SteadyNowNs(), 0);
    cv_.wait_for(lock, std::chrono::nanoseconds(wait), [this] { return stop_; });
  }
}

}  // namespace sluice::control
