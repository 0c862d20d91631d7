#include "dataplane/etcd_promotion.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include <rte_cycles.h>

#include "absl/strings/str_cat.h"
#include "control/etcd_client.h"

namespace sluice::dataplane {
namespace {

constexpr char kLeaseEnv[] = "SLUICE_ETCD_LEASE";

// The box's identity in the key, and where clients find it: its first client port.
std::string ClientAddress(const hwconf::Layout& l) {
  for (const hwconf::Port& p : l.ports) {
    if (p.role == hwconf::PortRole::kClient) return absl::StrCat(p.ipv4, ":", p.udp_port);
  }
  return l.control.listen;
}

}  // namespace

EtcdPromotion::EtcdPromotion(EtcdPromotionConfig c) : config_(std::move(c)) {}

EtcdPromotion::~EtcdPromotion() { Stop(); }

absl::StatusOr<std::unique_ptr<EtcdPromotion>> EtcdPromotion::Create(EtcdPromotionConfig c) {
  const hwconf::Replication& rep = c.layout->replication;
  if (rep.etcd.empty() || rep.role == hwconf::ReplicationRole::kNone) return nullptr;
  // A call may take a quarter of the lease at most: the renewal schedule has room for a retry.
  auto etcd = control::EtcdClient::Create(rep.etcd, std::min<int64_t>(rep.etcd_lease_ms / 4, 1000));
  if (!etcd.ok()) return etcd.status();
  std::unique_ptr<EtcdPromotion> p(new EtcdPromotion(std::move(c)));
  const EtcdPromotionConfig& pc = p->config_;
  control::ElectionConfig e;
  e.key = rep.etcd_key;
  e.lease_ms = rep.etcd_lease_ms;
  e.client = ClientAddress(*pc.layout);
  e.boot = pc.boot_id;
  e.primary = pc.primary;
  e.epoch = pc.epoch;
  if (const char* lease = std::getenv(kLeaseEnv); lease != nullptr) {
    if (pc.primary) e.inherited_lease = std::strtoll(lease, nullptr, 10);
    unsetenv(kLeaseEnv);  // one handover only
  }
  ReplicationStatus* status = pc.status;
  e.may_campaign = [status] { return status->caught_up.load(std::memory_order_relaxed); };
  e.next_epoch = pc.next_epoch;
  e.log = [](const std::string& line) {
    std::printf("sluiced: etcd: %s\n", line.c_str());
    std::fflush(stdout);
  };
  // Until the key is ours, a primary takes no writes.
  if (pc.primary) status->writable_until_tsc.store(0, std::memory_order_relaxed);
  std::printf("sluiced: etcd: automatic promotion through %s, key %s, lease %u ms, as %s\n",
              rep.etcd.c_str(), rep.etcd_key.c_str(), rep.etcd_lease_ms, e.client.c_str());
  EtcdPromotion* self = p.get();
  p->runner_ = std::make_unique<control::ElectionRunner>(
      std::move(*etcd), std::move(e), [self](int64_t until) { self->Publish(until); },
      [self](control::ElectionAction a, const control::LeaderElection& e) {
        self->config_.on_action(a, e.promoted_epoch());
      });
  return p;
}

void EtcdPromotion::Publish(int64_t writable_until_ns) {
  // Steady-clock nanoseconds -> the TSC the data path reads: both monotonic, read back to back.
  const int64_t now_ns = control::ElectionRunner::SteadyNowNs();
  const uint64_t now_tsc = rte_get_timer_cycles();
  uint64_t until_tsc = 0;
  if (writable_until_ns > now_ns) {
    const unsigned __int128 cycles = static_cast<unsigned __int128>(writable_until_ns - now_ns) *
                                     rte_get_timer_hz() / 1'000'000'000u;
    until_tsc = now_tsc + static_cast<uint64_t>(cycles);
  }
  config_.status->writable_until_tsc.store(until_tsc, std::memory_order_relaxed);
}

control::ElectionAction EtcdPromotion::Acquire(const std::atomic<bool>& stop) {
  return runner_->AcquireBlocking(stop);
}

void EtcdPromotion::Start() { runner_->Start(); }

void EtcdPromotion::Stop() {
  if (runner_) runner_->Stop();
}

void EtcdPromotion::BeforePromotionExec() {
  runner_->KeepAliveLease();
  const int64_t lease = runner_->election().lease();
  if (lease != 0) setenv(kLeaseEnv, std::to_string(lease).c_str(), 1);
}

}  // namespace sluice::dataplane
