// The election rules (control/leader_election.h) against an in-memory etcd that shares a fake
// clock with them: leases expire on that clock, calls can fail or take time, and a test can make
// another writer win a race. Deterministic: no server, no sleeps.
#include "control/leader_election.h"

#include <map>
#include <random>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace sluice::control {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSec = 1'000 * kMs;

struct FakeClock {
  int64_t now = 1'000 * kSec;
};

// etcd semantics that matter here: a lease lives until its last renewal's arrival + TTL; keys
// attached to it go when it does (checked lazily, as the server's expiry pass would).
class FakeEtcd : public EtcdApi {
 public:
  explicit FakeEtcd(FakeClock& clock) : clock_(clock) {}
  bool down = false;          // every call fails (unreachable)
  int64_t latency_ns = 0;     // each call takes this long (the clock advances)
  std::function<void()> before_txn;  // runs inside a txn call before it compares (a race)
  int calls = 0;

  absl::StatusOr<int64_t> Grant(int64_t ttl_s) override {
    if (auto s = Begin(); !s.ok()) return s;
    const int64_t id = next_lease_++;
    leases_[id] = {ttl_s, clock_.now + ttl_s * kSec};
    return id;
  }
  absl::StatusOr<int64_t> KeepAlive(int64_t lease) override {
    if (auto s = Begin(); !s.ok()) return s;
    auto it = leases_.find(lease);
    if (it == leases_.end()) return 0;
    it->second.expiry = clock_.now + it->second.ttl_s * kSec;
    return it->second.ttl_s;
  }
  absl::Status Revoke(int64_t lease) override {
    if (auto s = Begin(); !s.ok()) return s;
    Drop(lease);
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<EtcdKv>> Get(std::string_view key) override {
    if (auto s = Begin(); !s.ok()) return s;
    auto it = kv_.find(std::string(key));
    if (it == kv_.end()) return std::optional<EtcdKv>();
    return std::optional<EtcdKv>(it->second);
  }
  absl::StatusOr<bool> PutIfUnchanged(const std::vector<EtcdExpect>& expect,
                                      const std::vector<EtcdPut>& puts) override {
    if (auto s = Begin(); !s.ok()) return s;
    if (before_txn) std::exchange(before_txn, nullptr)();
    Expire();
    for (const EtcdExpect& e : expect) {
      auto it = kv_.find(e.key);
      if ((it == kv_.end() ? 0 : it->second.mod_revision) != e.mod_revision) return false;
    }
    for (const EtcdPut& p : puts) {  // etcd checks every lease before it writes anything
      if (p.lease != 0 && !leases_.count(p.lease)) {
        return absl::UnavailableError("etcd txn: etcdserver: requested lease not found");
      }
    }
    for (const EtcdPut& p : puts) (void)PutLocked(p.key, p.value, p.lease);
    return true;
  }

  // Test access (no latency, never down).
  void Put(const std::string& key, const std::string& value, int64_t lease = 0) {
    Expire();
    (void)PutLocked(key, value, lease);
  }
  std::optional<LeaderValue> Leader(const std::string& key) {
    Expire();
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::nullopt;
    auto v = DecodeLeader(it->second.value);
    EXPECT_TRUE(v.ok()) << v.status();
    return *v;
  }
  // When the lease that holds `key` expires on the server (INT64_MAX: no lease / no key).
  int64_t KeyExpiry(const std::string& key) {
    auto it = kv_.find(key);
    if (it == kv_.end() || it->second.lease == 0) return INT64_MAX;
    return leases_.at(it->second.lease).expiry;
  }
  std::optional<std::string> Value(const std::string& key) {
    Expire();
    auto it = kv_.find(key);
    if (it == kv_.end()) return std::nullopt;
    return it->second.value;
  }
  bool LeaseAlive(int64_t lease) {
    Expire();
    return leases_.count(lease) > 0;
  }

 private:
  struct Lease {
    int64_t ttl_s;
    int64_t expiry;
  };
  absl::Status Begin() {
    ++calls;
    clock_.now += latency_ns;
    Expire();
    if (down) return absl::UnavailableError("etcd range: no answer (fake: down)");
    return absl::OkStatus();
  }
  void Expire() {
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.expiry <= clock_.now) {
        const int64_t id = it->first;
        ++it;
        Drop(id);
      } else {
        ++it;
      }
    }
  }
  void Drop(int64_t lease) {
    leases_.erase(lease);
    for (auto it = kv_.begin(); it != kv_.end();) {
      it = it->second.lease == lease ? kv_.erase(it) : std::next(it);
    }
  }
  absl::StatusOr<bool> PutLocked(std::string_view key, std::string_view value, int64_t lease) {
    if (lease != 0 && !leases_.count(lease)) {
      return absl::UnavailableError("etcd txn: etcdserver: requested lease not found");
    }
    EtcdKv& kv = kv_[std::string(key)];
    if (kv.create_revision == 0) kv.create_revision = ++revision_;
    kv.key = std::string(key);
    kv.value = std::string(value);
    kv.mod_revision = ++revision_;
    kv.lease = lease;
    return true;
  }
  FakeClock& clock_;
  std::map<int64_t, Lease> leases_;
  std::map<std::string, EtcdKv> kv_;
  int64_t next_lease_ = 100;
  int64_t revision_ = 1;
};

const std::string kKey = "/sluice/test/leader";

ElectionConfig Primary(uint64_t epoch, const std::string& client = "198.18.0.1:7411") {
  ElectionConfig c;
  c.key = kKey;
  c.lease_ms = 3000;
  c.client = client;
  c.boot = 0xA1;
  c.primary = true;
  c.epoch = epoch;
  return c;
}

ElectionConfig Standby(uint64_t next_epoch, bool* caught_up = nullptr,
                       const std::string& client = "198.18.0.2:7411") {
  ElectionConfig c;
  c.key = kKey;
  c.lease_ms = 3000;
  c.client = client;
  c.boot = 0xB2;
  c.primary = false;
  c.may_campaign = [caught_up] { return caught_up == nullptr || *caught_up; };
  c.next_epoch = [next_epoch] { return next_epoch; };
  return c;
}

struct Rig {
  FakeClock clock;
  FakeEtcd etcd{clock};
  std::unique_ptr<LeaderElection> Make(ElectionConfig c) {
    return std::make_unique<LeaderElection>(etcd, std::move(c), [this] { return clock.now; });
  }
  // Steps `e` at its next_step times until `until` (or an action); returns the action.
  ElectionAction RunUntil(LeaderElection& e, int64_t until) {
    for (int i = 0; i < 10'000 && clock.now < until; ++i) {
      clock.now = std::max(clock.now, std::min(e.next_step_ns(), until));
      if (clock.now >= until) break;
      if (ElectionAction a = e.Step(); a != ElectionAction::kNone) return a;
    }
    return ElectionAction::kNone;
  }
};

TEST(LeaderValue, RoundTripsAndRefusesGarbage) {
  LeaderValue v{7, "198.18.0.1:7411", 0xDEADBEEF12345678};
  auto back = DecodeLeader(EncodeLeader(v));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->epoch, 7u);
  EXPECT_EQ(back->client, v.client);
  EXPECT_EQ(back->boot, v.boot);
  for (const char* bad : {"", "x", "[]", R"({"epoch":-1,"client":"a","boot":"1"})",
                          R"({"epoch":1,"client":2,"boot":"1"})", R"({"epoch":1,"client":"a"})",
                          R"({"epoch":1,"client":"a","boot":"zz"})"}) {
    EXPECT_FALSE(DecodeLeader(bad).ok()) << bad;
  }
}

TEST(LeaderElection, PrimaryAcquiresTheFreeKeyAndRenewsIt) {
  Rig r;
  auto p = r.Make(Primary(3));
  EXPECT_EQ(p->writable_until_ns(), 0);  // nothing before the key is held
  const int64_t t0 = r.clock.now;
  EXPECT_EQ(p->Step(), ElectionAction::kNone);
  ASSERT_TRUE(p->holding());
  auto v = r.etcd.Leader(kKey);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->epoch, 3u);
  EXPECT_EQ(v->client, "198.18.0.1:7411");
  EXPECT_EQ(v->boot, 0xA1u);
  EXPECT_EQ(p->writable_until_ns(), t0 + 3 * kSec - p->margin_ns());
  // Renewals keep it: an hour of steps at their times, always writable, never an action.
  const int64_t end = r.clock.now + 3600 * kSec;
  EXPECT_EQ(r.RunUntil(*p, end), ElectionAction::kNone);
  EXPECT_TRUE(p->holding());
  EXPECT_GT(p->writable_until_ns(), r.clock.now);
  EXPECT_LE(p->writable_until_ns(), r.etcd.KeyExpiry(kKey) - p->margin_ns());
}

TEST(LeaderElection, PrimaryStepsDownBeforeItsLeaseExpiresWhenEtcdIsUnreachable) {
  Rig r;
  auto p = r.Make(Primary(3));
  ASSERT_EQ(p->Step(), ElectionAction::kNone);
  ASSERT_TRUE(p->holding());
  r.RunUntil(*p, r.clock.now + 10 * kSec);
  const int64_t server_expiry = r.etcd.KeyExpiry(kKey);
  r.etcd.down = true;
  // Step at every time the election asks for; record the last instant it was writable.
  int64_t last_writable = 0;
  for (int i = 0; i < 1000 && r.clock.now < server_expiry + 10 * kSec; ++i) {
    r.clock.now = p->next_step_ns();
    if (p->writable_until_ns() > r.clock.now) last_writable = r.clock.now;
    EXPECT_EQ(p->Step(), ElectionAction::kNone);  // no action while etcd says nothing
    EXPECT_LE(p->writable_until_ns(), server_expiry - p->margin_ns());
  }
  EXPECT_FALSE(p->holding());
  EXPECT_EQ(p->writable_until_ns(), 0);
  EXPECT_LT(last_writable, server_expiry - p->margin_ns());
  // etcd is back; the lease expired and the key went with it: restart as primary to acquire.
  r.etcd.down = false;
  r.clock.now = p->next_step_ns();
  EXPECT_EQ(p->Step(), ElectionAction::kResume);
  EXPECT_EQ(p->Step(), ElectionAction::kNone);  // an action is given once
}

TEST(LeaderElection, ARenewalThatReturnsLateStepsDown) {
  Rig r;
  auto p = r.Make(Primary(3));
  ASSERT_EQ(p->Step(), ElectionAction::kNone);
  const int64_t deadline = p->writable_until_ns();
  r.clock.now = p->next_step_ns();
  r.etcd.latency_ns = deadline - r.clock.now;  // the answer arrives exactly at the deadline
  EXPECT_EQ(p->Step(), ElectionAction::kNone);
  EXPECT_FALSE(p->holding());
  EXPECT_EQ(p->writable_until_ns(), 0);
}

TEST(LeaderElection, AnExpiredLeaseStepsDownAtOnce) {
  Rig r;
  auto p = r.Make(Primary(3));
  ASSERT_EQ(p->Step(), ElectionAction::kNone);
  ASSERT_TRUE(r.etcd.Revoke(p->lease()).ok());  // as if etcd expired it (e.g. its clock jumped)
  r.clock.now = p->next_step_ns();
  EXPECT_EQ(p->Step(), ElectionAction::kNone);
  EXPECT_FALSE(p->holding());
  EXPECT_EQ(p->writable_until_ns(), 0);
}

TEST(LeaderElection, StandbyNeverCampaignsWhileTheKeyIsHeld) {
  Rig r;
  auto p = r.Make(Primary(3));
  ASSERT_EQ(p->Step(), ElectionAction::kNone);
  auto s = r.Make(Standby(4));
  // Both step at their own times for a minute: the standby only watches.
  const int64_t end = r.clock.now + 60 * kSec;
  while (r.clock.now < end) {
    r.clock.now = std::min(p->next_step_ns(), s->next_step_ns());
    ASSERT_EQ(p->Step(), ElectionAction::kNone);
    ASSERT_EQ(s->Step(), ElectionAction::kNone);
  }
  EXPECT_EQ(r.etcd.Leader(kKey)->epoch, 3u);
}

TEST(LeaderElection, StandbyPromotesOnlyAfterTheDeadPrimarysLeaseExpires) {
  Rig r;
  auto p = r.Make(Primary(3));
  ASSERT_EQ(p->Step(), ElectionAction::kNone);
  r.RunUntil(*p, r.clock.now + 5 * kSec);
  const int64_t primary_writable_until = p->writable_until_ns();
  const int64_t expiry = r.etcd.KeyExpiry(kKey);
  p.reset();  // SIGKILL: no more renewals
  auto s = r.Make(Standby(4));
  ElectionAction a = ElectionAction::kNone;
  for (int i = 0; i < 100 && a == ElectionAction::kNone; ++i) {
    r.clock.now = s->next_step_ns();
    a = s->Step();
    if (a == ElectionAction::kNone) {
      EXPECT_LT(r.clock.now, expiry);
    }
  }
  ASSERT_EQ(a, ElectionAction::kPromote);
  EXPECT_GE(r.clock.now, expiry);
  EXPECT_GT(r.clock.now, primary_writable_until);  // the old primary stopped before
  // within a poll interval of the expiry
  EXPECT_LE(r.clock.now, expiry + s->renew_interval_ns());
  EXPECT_EQ(s->promoted_epoch(), 4u);
  auto v = r.etcd.Leader(kKey);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->epoch, 4u);
  EXPECT_EQ(v->client, "198.18.0.2:7411");
  EXPECT_TRUE(r.etcd.LeaseAlive(s->lease()));
}

TEST(LeaderElection, StandbyThatHasNotCaughtUpDoesNotCampaign) {
  Rig r;
  bool caught_up = false;
  auto s = r.Make(Standby(2, &caught_up));
  EXPECT_EQ(r.RunUntil(*s, r.clock.now + 30 * kSec), ElectionAction::kNone);
  EXPECT_FALSE(r.etcd.Leader(kKey));
  caught_up = true;
  EXPECT_EQ(r.RunUntil(*s, r.clock.now + 2 * kSec), ElectionAction::kPromote);
}

TEST(LeaderElection, StandbyThatLosesTheRaceStaysStandbyAndFreesItsLease) {
  Rig r;
  auto s = r.Make(Standby(4));
  int64_t rival_lease = 0;
  r.etcd.before_txn = [&] {
    rival_lease = *r.etcd.Grant(3);
    r.etcd.Put(kKey, EncodeLeader({4, "198.18.0.9:7411", 0xC3}), rival_lease);
  };
  EXPECT_EQ(s->Step(), ElectionAction::kNone);
  EXPECT_EQ(s->lease(), 0);
  EXPECT_EQ(r.etcd.Leader(kKey)->client, "198.18.0.9:7411");
  // The rival keeps its key alive: no promotion for as long.
  for (int i = 0; i < 40; ++i) {
    r.clock.now = s->next_step_ns();
    ASSERT_TRUE(r.etcd.KeepAlive(rival_lease).ok());
    ASSERT_EQ(s->Step(), ElectionAction::kNone);
  }
}

TEST(LeaderElection, AHigherEpochInTheKeyDeposesTheHolder) {
  Rig r;
  auto p = r.Make(Primary(3));
  ASSERT_EQ(p->Step(), ElectionAction::kNone);
  ASSERT_TRUE(p->holding());
  r.etcd.Put(kKey, EncodeLeader({5, "198.18.0.2:7411", 0xB2}));
  r.clock.now = p->next_step_ns();
  EXPECT_EQ(p->Step(), ElectionAction::kRejoin);
  EXPECT_EQ(p->writable_until_ns(), 0);
  EXPECT_FALSE(p->holding());
}

TEST(LeaderElection, APrimaryStartingUnderANewerPrimaryRejoins) {
  Rig r;
  r.etcd.Put(kKey, EncodeLeader({5, "198.18.0.2:7411", 0xB2}), *r.etcd.Grant(3));
  auto p = r.Make(Primary(4));
  EXPECT_EQ(p->Step(), ElectionAction::kRejoin);
  EXPECT_EQ(p->writable_until_ns(), 0);
  EXPECT_EQ(r.etcd.Leader(kKey)->epoch, 5u);  // untouched
}

TEST(LeaderElection, APrimaryWaitsForAnEqualEpochHeldElsewhere) {
  Rig r;
  const int64_t lease = *r.etcd.Grant(3);
  r.etcd.Put(kKey, EncodeLeader({4, "198.18.0.2:7411", 0xB2}), lease);
  auto p = r.Make(Primary(4));
  EXPECT_EQ(p->Step(), ElectionAction::kNone);
  EXPECT_FALSE(p->holding());
  EXPECT_EQ(p->writable_until_ns(), 0);
  // Its holder dies: the key is free after the lease, and then ours.
  EXPECT_EQ(r.RunUntil(*p, r.clock.now + 5 * kSec), ElectionAction::kNone);
  EXPECT_TRUE(p->holding());
  EXPECT_EQ(r.etcd.Leader(kKey)->client, "198.18.0.1:7411");
}

TEST(LeaderElection, APromotedStandbyTakesOverItsCampaignKeyAndLease) {
  Rig r;
  auto s = r.Make(Standby(4, nullptr, "198.18.0.2:7411"));
  ASSERT_EQ(s->Step(), ElectionAction::kPromote);
  const int64_t lease = s->lease();
  // The same box restarted as primary of epoch 4 (a new boot id), handed the lease.
  ElectionConfig c = Primary(4, "198.18.0.2:7411");
  c.boot = 0xB3;
  c.inherited_lease = lease;
  auto p = r.Make(std::move(c));
  r.clock.now += 1 * kSec;  // the restart
  EXPECT_EQ(p->Step(), ElectionAction::kNone);
  ASSERT_TRUE(p->holding());
  EXPECT_EQ(p->lease(), lease);
  EXPECT_EQ(r.etcd.Leader(kKey)->boot, 0xB3u);
}

TEST(LeaderElection, ANewerEpochTakesTheKeyFromAnOlderOne) {
  // A manual promotion (sluicectl promote --force) while the old primary still holds the key.
  Rig r;
  auto old = r.Make(Primary(3));
  ASSERT_EQ(old->Step(), ElectionAction::kNone);
  ElectionConfig c = Primary(4, "198.18.0.2:7411");
  auto p = r.Make(std::move(c));
  EXPECT_EQ(p->Step(), ElectionAction::kNone);
  EXPECT_TRUE(p->holding());
  r.clock.now = old->next_step_ns();
  EXPECT_EQ(old->Step(), ElectionAction::kRejoin);
}

TEST(LeaderElection, ASteppedDownPrimaryRejoinsUnderTheStandbyThatPromoted) {
  // SIGSTOP past the lease: the primary's steps stop; the standby promotes; the primary wakes.
  Rig r;
  auto p = r.Make(Primary(3));
  ASSERT_EQ(p->Step(), ElectionAction::kNone);
  const int64_t deadline = p->writable_until_ns();
  auto s = r.Make(Standby(4));
  ASSERT_EQ(r.RunUntil(*s, r.clock.now + 10 * kSec), ElectionAction::kPromote);
  EXPECT_GT(r.clock.now, deadline);
  // Resumed: the deadline passed on its own clock before it runs a step: not writable.
  EXPECT_LE(p->writable_until_ns(), r.clock.now);
  EXPECT_EQ(p->Step(), ElectionAction::kNone);  // steps down first
  EXPECT_EQ(p->writable_until_ns(), 0);
  r.clock.now = p->next_step_ns();
  EXPECT_EQ(p->Step(), ElectionAction::kRejoin);
}

// SIGSTOP A past its lease, B promotes (epoch 4), B dies, its key expires, A resumes: A must not
// take the key again on epoch 3 (B may have acknowledged what A lacks). It follows epoch 4.
TEST(LeaderElection, AStalePrimaryNeverReacquiresAfterANewerEpochWasElected) {
  Rig r;
  auto a = r.Make(Primary(3));
  ASSERT_EQ(a->Step(), ElectionAction::kNone);
  auto b = r.Make(Standby(4));
  ASSERT_EQ(r.RunUntil(*b, r.clock.now + 10 * kSec), ElectionAction::kPromote);
  EXPECT_EQ(r.etcd.Value(kKey + "/epoch"), "4");
  b.reset();
  r.clock.now += 10 * kSec;  // B's lease expires: the key is gone, the record stays
  ASSERT_FALSE(r.etcd.Leader(kKey));
  // A wakes: stepped down, key free -> restarts as primary (kResume) ...
  EXPECT_EQ(a->Step(), ElectionAction::kNone);
  r.clock.now = a->next_step_ns();
  EXPECT_EQ(a->Step(), ElectionAction::kResume);
  // ... and the restarted process finds the record above its epoch: it rejoins instead.
  auto again = r.Make(Primary(3));
  EXPECT_EQ(again->Step(), ElectionAction::kRejoin);
  EXPECT_EQ(again->writable_until_ns(), 0);
  EXPECT_FALSE(r.etcd.Leader(kKey));
}

// A standby campaigns above every epoch ever elected, even ones it never heard of.
TEST(LeaderElection, ACampaignTakesAnEpochAboveTheRecord) {
  Rig r;
  r.etcd.Put(kKey + "/epoch", "7");
  auto s = r.Make(Standby(2));
  ASSERT_EQ(s->Step(), ElectionAction::kPromote);
  EXPECT_EQ(s->promoted_epoch(), 8u);
  EXPECT_EQ(r.etcd.Leader(kKey)->epoch, 8u);
  EXPECT_EQ(r.etcd.Value(kKey + "/epoch"), "8");
  // A record that is not a number is not overwritten: no campaign.
  Rig r2;
  r2.etcd.Put(kKey + "/epoch", "seven");
  auto s2 = r2.Make(Standby(2));
  EXPECT_EQ(r2.RunUntil(*s2, r2.clock.now + 5 * kSec), ElectionAction::kNone);
  EXPECT_FALSE(r2.etcd.Leader(kKey));
}

// Random outages and latencies against a primary and a standby stepping at their own times: a
// standby never wins while the primary may still write, and a primary that keeps its key stays
// writable when etcd is healthy.
TEST(LeaderElection, RandomOutagesNeverOverlapTwoWriters) {
  int promotions = 0;
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    Rig r;
    std::mt19937 rng(seed);
    auto p = r.Make(Primary(3));
    auto s = r.Make(Standby(4));
    bool primary_alive = true;
    int64_t promoted_at = -1;
    for (int i = 0; i < 3000 && promoted_at < 0; ++i) {
      r.etcd.down = rng() % 10 == 0;
      r.etcd.latency_ns = static_cast<int64_t>(rng() % 400) * kMs;
      if (rng() % 400 == 0) primary_alive = false;  // killed or stopped
      const int64_t next = primary_alive ? std::min(p->next_step_ns(), s->next_step_ns())
                                         : s->next_step_ns();
      r.clock.now = std::max(r.clock.now, next);
      if (primary_alive && r.clock.now >= p->next_step_ns()) {
        const ElectionAction a = p->Step();
        if (a == ElectionAction::kResume) p = r.Make(Primary(3));  // restarted in place
        ASSERT_NE(a, ElectionAction::kPromote);
      }
      if (r.clock.now >= s->next_step_ns()) {
        if (s->Step() == ElectionAction::kPromote) promoted_at = r.clock.now;
      }
    }
    if (promoted_at >= 0) {
      ++promotions;
      // Whatever the old primary does from now on, its deadline is in the past.
      EXPECT_LT(p->writable_until_ns(), promoted_at) << "seed " << seed;
    }
  }
  EXPECT_GT(promotions, 5);  // the property was exercised, not vacuously true
}

}  // namespace
}  // namespace sluice::control
