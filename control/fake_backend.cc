#include "control/fake_backend.h"

namespace sluice::control {

FakeBackend::FakeBackend(int lcores) : lcores_(lcores) {}

absl::Status FakeBackend::Publish(std::shared_ptr<const CatalogSnapshot> snapshot) {
  std::lock_guard lock(mu_);
  if (!fail_next_publish_.ok()) {
    absl::Status st = fail_next_publish_;
    fail_next_publish_ = absl::OkStatus();
    return st;
  }
  published_versions_.push_back(snapshot->version());
  published_ = std::move(snapshot);
  return absl::OkStatus();
}

BackendStats FakeBackend::Stats() {
  std::lock_guard lock(mu_);
  const uint64_t t = ++ticks_;
  BackendStats s;
  if (published_ == nullptr) return s;
  s.published_version = published_->version();
  for (const QueueMeta& q : published_->queues()) {
    QueueStats qs;
    qs.id = q.id;
    for (uint32_t p = 0; p < q.spec.partitions; ++p) {
      PartitionStats ps;
      ps.partition = p;
      ps.shard = (q.id - 1 + p) % 4;
      ps.lcore = static_cast<int>(1 + ps.shard % lcores_);
      ps.messages_in = 100 * t + p;
      ps.messages_out = 90 * t;
      ps.bytes_in = ps.messages_in * 128;
      ps.bytes_out = ps.messages_out * 128;
      ps.next_offset = ps.messages_in;
      ps.durable_offset = ps.messages_in;
      ps.low_offset = q.purge_generation > 0 ? ps.next_offset : 0;
      ps.depth = ps.next_offset - ps.low_offset;
      ps.in_flight = q.spec.type == QueueType::kWork ? 3 : 0;
      ps.bytes_stored = ps.depth * 128;
      ps.acked = q.spec.type == QueueType::kWork ? 80 * t : 0;
      ps.bytes_on_disk = ps.bytes_in;
      qs.partitions.push_back(ps);
    }
    s.queues.push_back(std::move(qs));
  }
  for (int l = 0; l < lcores_; ++l) {
    LcoreStats ls;
    ls.lcore = l + 1;
    ls.worker = static_cast<uint32_t>(l);
    ls.rx_packets = 1000 * t;
    ls.rx_bytes = 1000 * t * 200;
    ls.tx_packets = 900 * t;
    ls.tx_bytes = 900 * t * 100;
    ls.frames = 990 * t;
    ls.messages_in = 2000 * t;
    ls.loops = 1'000'000 * t;
    ls.drops = {{"bad_udp_checksum", 2}, {"ring_full", t}};
    ls.produced = 2000 * t;
    ls.acked = 2000 * t;
    ls.ring_occupancy = 7;
    ls.batches = 20 * t;
    ls.batch_bytes = Histogram{{4096, 65536, 262144}, {5, 10, 5, 0}, 1'500'000};
    ls.batch_messages = Histogram{{1, 8, 64}, {4, 10, 6, 0}, 300};
    ls.ack_latency_seconds = Histogram{{0.00001, 0.0001, 0.001, 0.01}, {5, 40, 4, 1, 0}, 0.01};
    s.lcores.push_back(std::move(ls));
  }
  s.ack_latency_seconds =
      Histogram{{0.00001, 0.0001, 0.001, 0.01}, {10, 80, 9, 1, 0}, 0.02};
  return s;
}

absl::Status FakeBackend::Purge(const QueueMeta& queue) {
  std::lock_guard lock(mu_);
  purged_.push_back(queue.spec.name);
  return absl::OkStatus();
}

HealthReport FakeBackend::Liveness() {
  std::lock_guard lock(mu_);
  return HealthReport{live_, {{"lcores", live_, live_ ? "2 workers looping" : "worker 1 stalled"}}};
}

HealthReport FakeBackend::Readiness() {
  std::lock_guard lock(mu_);
  const bool published = published_ != nullptr;
  return HealthReport{ready_ && published,
                      {{"ports", ready_, ready_ ? "link up" : "port client0 link down"},
                       {"catalog", published, published ? "published" : "not published yet"}}};
}

RoleInfo FakeBackend::Role() {
  std::lock_guard lock(mu_);
  return role_;
}

void FakeBackend::SetRole(RoleInfo role) {
  std::lock_guard lock(mu_);
  role_ = std::move(role);
}

VersionInfo FakeBackend::Version() { return VersionInfo{{{"dataplane", "fake"}}}; }

void FakeBackend::SetReady(bool ready) {
  std::lock_guard lock(mu_);
  ready_ = ready;
}
void FakeBackend::SetLive(bool live) {
  std::lock_guard lock(mu_);
  live_ = live;
}
void FakeBackend::FailNextPublish(absl::Status status) {
  std::lock_guard lock(mu_);
  fail_next_publish_ = std::move(status);
}
std::shared_ptr<const CatalogSnapshot> FakeBackend::published() const {
  std::lock_guard lock(mu_);
  return published_;
}
std::vector<uint64_t> FakeBackend::published_versions() const {
  std::lock_guard lock(mu_);
  return published_versions_;
}
std::vector<std::string> FakeBackend::purged() const {
  std::lock_guard lock(mu_);
  return purged_;
}

}  // namespace sluice::control
