#include "dataplane/worker.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "dataplane/frame_handler.h"
#include "dataplane/idle.h"
#include "dataplane/replication_handoff.h"
#include "dataplane/replication_shell.h"
#include "dataplane/storage_shell.h"
#include "dataplane/table_publisher.h"
#include "dataplane/unmap_guard.h"
#include "protocol/assert.h"

namespace sluice::dataplane {

Worker::Worker(uint16_t index, const hwconf::Lcore& conf, const SharedRuntime& shared,
               std::unique_ptr<StorageShell> storage,
               std::unique_ptr<ReplicationShell> replication,
               std::unique_ptr<HandoffReplicator> handoff)
    : index_(index), conf_(conf), shared_(shared), storage_(std::move(storage)),
      replication_(std::move(replication)), handoff_(std::move(handoff)) {
  // A reader of the queue table from here on (before the first load: a table this worker holds
  // is never freed under it); the lcore reports quiescent states once it runs.
  shared.tables->Register(index);
  table_ = shared.tables->Load();
  SLUICE_ASSERT(table_ != nullptr);  // the control plane published before workers start
  // Only client ports are set up so far; replication links (a later issue) are not polled yet.
  for (const hwconf::RxQueueRef& ref : conf.rx) {
    const hwconf::Port* port = shared.layout->FindPort(ref.port);
    SLUICE_ASSERT(port != nullptr);  // hwconf validated the reference
    if (port->role != hwconf::PortRole::kClient) continue;
    const PortRuntime* rt = nullptr;
    for (const PortRuntime& p : shared.ports)
      if (p.conf == port) rt = &p;
    SLUICE_ASSERT(rt != nullptr);
    rx_.push_back({rt, ref.queue});
  }
  for (uint16_t from = 0; from < shared.worker_count; ++from) {
    if (from != index && shared.rings[from][index] != nullptr) {
      inbound_.push_back(shared.rings[from][index]);
    }
  }
  uint16_t max_port = 0;
  for (const PortRuntime& p : shared.ports) max_port = std::max<uint16_t>(max_port, p.addr.port_id);
  tx_.resize(max_port + 1u);
  // Worker i transmits on TX queue i of every port: no TX queue is shared between lcores.
  for (const PortRuntime& p : shared.ports) tx_[p.addr.port_id] = TxBuffer(p.addr.port_id, index);
  // Except a replication channel on its link: it transmits on its channel's queue (memif: queue
  // i of one box is queue i of the other); no other lcore transmits on the link.
  if (replication_ != nullptr && replication_->has_port()) {
    tx_[replication_->link_port_id()] =
        TxBuffer(replication_->link_port_id(), replication_->link_queue());
  }
  // A standby's logs are the replication shell's: it opens them (on this thread, before launch).
  if (replication_ != nullptr) replication_->SetTable(*table_);
  if (replication_ == nullptr && handoff_ == nullptr && shared.replication_status != nullptr) {
    role_view_ = std::make_unique<ReplicationRoleView>(*shared.replication_status);
  }
  handler_ = std::make_unique<FrameHandler>(*this, shared);
  // Batches are written straight from the shards' chunk pools: registered, a write skips pinning
  // its pages. Registered here, on the main thread, while the ring is still disabled (a
  // SINGLE_ISSUER ring takes registrations from its submitter only once enabled).
  if (storage_ != nullptr) {
    const std::vector<std::span<std::byte>> regions = handler_->BatchMemory();
    if (absl::Status s = storage_->RegisterBatchMemory(regions); !s.ok()) {
      std::fprintf(stderr, "sluiced: worker %u: storage: %s; writes pin pages per I/O\n", index,
                   std::string(s.message()).c_str());
    } else {
      size_t bytes = 0;
      for (std::span<std::byte> r : regions) bytes += r.size();
      std::printf("sluiced: worker %u: storage: %u chunk pool(s), %zu MiB, registered with "
                  "io_uring\n", index, storage_->registered_regions(), bytes >> 20);
    }
  }
  clock_.Start(shared.tsc_start, shared.unix_ns_at_start, shared.tsc_hz);
  UpdateClock();
  SetUpWakeups();
}

Worker::~Worker() {
  FreeSpares();  // none normally: Run frees them on its lcore when it ends
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

Persistence* Worker::frontend_storage() {
  if (replication_ != nullptr && !replication_->Writable()) return nullptr;
  if (role_view_ != nullptr && !role_view_->Writable()) return nullptr;
  if (handoff_ != nullptr && !handoff_->Writable()) return nullptr;
  return storage_.get();
}

Replicator* Worker::replicator() {
  if (replication_ != nullptr) return replication_.get();
  if (handoff_ != nullptr) return handoff_.get();
  return role_view_.get();
}

void Worker::SetUpWakeups() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  SLUICE_ASSERT(epoll_fd_ >= 0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  SLUICE_ASSERT(shared_.wake[index_].fd >= 0);
  SLUICE_ASSERT(epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, shared_.wake[index_].fd, &ev) == 0);
  rx_wakeups_ = true;
  for (const RxQueue& q : rx_) {
    const int fd = q.port->rx_interrupts
                       ? rte_eth_dev_rx_intr_ctl_q_get_fd(q.port->addr.port_id, q.queue) : -1;
    if (fd < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      rx_wakeups_ = false;
    }
  }
  if (replication_ != nullptr) {
    const int fd = !replication_->has_port() ? replication_->udp_fd()
                   : replication_->link_rx_interrupts()
                       ? rte_eth_dev_rx_intr_ctl_q_get_fd(replication_->link_port_id(),
                                                          replication_->link_queue()) : -1;
    if (fd < 0 || epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) rx_wakeups_ = false;
  }
}

uint64_t Worker::RingOccupancy() const {
  uint64_t n = 0;
  for (rte_ring* r : inbound_) n += rte_ring_count(r);
  return n;
}

void Worker::LoadTable() {
  const QueueTable* t = shared_.tables->Load();
  if (t == table_) return;
  table_ = t;
  if (replication_ != nullptr) replication_->SetTable(*t);
  handler_->SetTable(*t);
}

void Worker::PublishStats(StatsMailbox& box, uint64_t requested) {
  figures_.clear();
  handler_->CollectPartitionStats(&figures_);
  box.figures.swap(figures_);
  if (storage_ != nullptr) {
    const storage::WriterStats& ws = storage_->writer_stats();
    box.storage = StorageFigures{ws.batches, ws.submits, ws.batches};
  }
  box.published.store(requested, std::memory_order_release);
}

// The completion of a write is not only the device's: a direct write into a preallocated
// (unwritten) extent, and every RWF_DSYNC write on a disk without FUA, finish in a kworker bound
// to the CPU that took the interrupt, which is often this lcore's. The scheduler does not preempt
// a spinning thread for it until the next tick (4 ms at HZ=250): a window-1 durable produce took
// 4 ms with a polling worker and 81 us (write) / 233 us (dsync) with this yield
// (docs/storage.md §4). Only an empty pass yields, so a busy lcore makes no extra system call.
// Inlined into Run (asked twice per pass; GCC left it a call).
[[gnu::always_inline]] inline bool Worker::AwaitingKernel() const {
  // A shell with no durable partition open has nothing in the kernel: closing a partition waits
  // for its writes and its ack log's (StorageShell::Close). Asked twice per pass, so the writer
  // and the ack ring are not, on an in-memory lcore.
  if (storage_ != nullptr && storage_->Persisting() && storage_->AwaitingKernel()) return true;
  return replication_ != nullptr && replication_->AwaitingKernel();
}

bool Worker::RingsEmpty() const {
  for (rte_ring* r : inbound_)
    if (rte_ring_count(r) != 0) return false;
  // Link frames another channel's lcore handed to this one wake it the same way, and so do the
  // replica reads a dedicated replication lcore answered.
  if (handoff_ != nullptr && !handoff_->RepliesEmpty()) return false;
  return replication_ == nullptr || replication_->LinkRingsEmpty();
}

// Offline only around the wait itself: a sleeping worker holds up neither a publication nor a
// guarded unmap, and the PMD calls (interrupt enable/disable) stay inside an online stretch.
void Worker::Sleep(uint64_t ns) {
  ++counters_.idle_sleeps;
  TablePublisher& tables = *shared_.tables;
  if (!rx_wakeups_) {
    timespec ts{0, static_cast<long>(ns)};
    tables.Offline(index_);
    nanosleep(&ts, nullptr);
    tables.Online(index_);
    return;
  }
  for (const RxQueue& q : rx_) rte_eth_dev_rx_intr_enable(q.port->addr.port_id, q.queue);
  if (replication_ != nullptr && replication_->has_port()) {
    rte_eth_dev_rx_intr_enable(replication_->link_port_id(), replication_->link_queue());
  }
  WakeSignal& me = shared_.wake[index_];
  me.sleeping.store(true, std::memory_order_seq_cst);
  if (RingsEmpty()) {
    epoll_event events[8];
    const timespec ts{0, static_cast<long>(ns)};
    tables.Offline(index_);
    epoll_pwait2(epoll_fd_, events, 8, &ts, nullptr);
    tables.Online(index_);
  }
  me.sleeping.store(false, std::memory_order_relaxed);
  uint64_t drained;
  while (read(me.fd, &drained, sizeof drained) > 0) {
  }
  for (const RxQueue& q : rx_) rte_eth_dev_rx_intr_disable(q.port->addr.port_id, q.queue);
  if (replication_ != nullptr && replication_->has_port()) {
    rte_eth_dev_rx_intr_disable(replication_->link_port_id(), replication_->link_queue());
  }
}

void Worker::UpdateClock() {
  const uint64_t tsc = rte_rdtsc();
  if (clock_.AnchorDue(tsc)) {  // every ~60 ms (wall_clock.h)
    timespec t{};
    clock_gettime(CLOCK_REALTIME, &t);
    clock_.Anchor(tsc, static_cast<uint64_t>(t.tv_sec) * 1'000'000'000ull +
                           static_cast<uint64_t>(t.tv_nsec));
  }
  now_ns_ = clock_.Now(tsc);
}

bool Worker::HandOff(uint16_t to, rte_mbuf* m) {
  rte_ring* ring = shared_.rings[index_][to];
  SLUICE_ASSERT(ring != nullptr);
  if (rte_ring_sp_enqueue(ring, m) != 0) return false;
  ++counters_.handoffs_out;
  WakeSignal& peer = shared_.wake[to];
  if (peer.sleeping.load(std::memory_order_seq_cst)) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(peer.fd, &one, sizeof one);  // only when the peer is idle
  }
  return true;
}

uint32_t Worker::PollRx() {
  uint32_t work = 0;
  rte_mbuf* pkts[kRxBurst];
  for (const RxQueue& q : rx_) {
    const uint16_t n = rte_eth_rx_burst(q.port->addr.port_id, q.queue, pkts, kRxBurst);
    work += n;
    counters_.rx_packets += n;
    if (n != 0) ++counters_.rx_bursts;
    for (uint16_t i = 0; i < n; ++i) {
      if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
      rte_mbuf* m = pkts[i];
      counters_.rx_bytes += m->pkt_len;
      Peer peer;
      switch (ClassifyFrame(m, q.port->addr, counters_, &peer)) {
        case RxVerdict::kDrop: Retire(m); break;
        case RxVerdict::kReply: Transmit(q.port->addr.port_id, m); break;
        case RxVerdict::kDatagram: handler_->OnDatagram(m, peer, *q.port); break;
      }
    }
    FreeRetired();
  }
  return work;
}

uint32_t Worker::PollRings() {
  uint32_t work = 0;
  rte_mbuf* frames[kRxBurst];
  for (rte_ring* ring : inbound_) {
    const unsigned n = rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(frames), kRxBurst,
                                                 nullptr);
    counters_.handoffs_in += n;
    work += n;
    for (unsigned i = 0; i < n; ++i) handler_->OnHandoff(frames[i]);
    FreeRetired();
  }
  return work;
}

void Worker::FlushTx() {
  for (TxBuffer& t : tx_) t.Flush(counters_);
}

int Worker::Run(const std::atomic<bool>& stop) {
  MarkPollerThread();
  IdlePolicy idle(conf_.idle, rx_wakeups_, uint64_t{conf_.idle_sleep_max_us} * 1000);
  TablePublisher& tables = *shared_.tables;
  uint64_t pass_start_ns = now_ns_;
  bool pass_worked = false;
  while (!stop.load(std::memory_order_relaxed)) {
    ++counters_.loops;
    UpdateClock();
    // The pass before this one (and any idle sleep after it) ends now.
    counters_.loop_ns += now_ns_ - pass_start_ns;
    if (pass_worked) counters_.busy_ns += now_ns_ - pass_start_ns;
    pass_start_ns = now_ns_;
    LoadTable();
    uint32_t work = PollRx();
    if (!inbound_.empty()) work += PollRings();  // a lone worker has no hand-off rings
    TxBuffer* link_tx = replication_ != nullptr && replication_->has_port()
                            ? &tx_[replication_->link_port_id()] : nullptr;
    if (replication_ != nullptr) work += replication_->PollLink(NowNs(), link_tx, counters_);
    // A durable write can complete within the pass that submitted it (a fast device answers
    // during the submit): its acks are timed against a clock read now, not at the start of the
    // pass, or the ack latency histogram reads 0 for them. One more TSC read per busy pass, only
    // on lcores with durable partitions.
    if (AwaitingKernel() || (work != 0 && storage_ != nullptr && storage_->Persisting())) {
      UpdateClock();
    }
    work += handler_->Service(NowNs());
    if (replication_ != nullptr) {
      work += replication_->Poll(NowNs(), frontend_storage(), link_tx, counters_);
    }
    FlushTx();
    AnswerStatsRequest();
    // Its ack records are in the files now, once the ack logs' writes (through the ring, so
    // asynchronous) have completed: until then the replication lcore's snapshot waits.
    if (handoff_ != nullptr && (storage_ == nullptr || storage_->AcksSettled())) {
      handoff_->PassEnded();
    }
    tables.Quiescent(index_);  // the table loaded above is not read again before the next load
    pass_worked = work != 0;
    if (work == 0 && AwaitingKernel()) {
      ++counters_.kernel_yields;
      sched_yield();
    }
    if (const uint64_t ns = idle.Next(work); ns != 0) Sleep(ns);
  }
  // Drain: what other lcores already handed us is still answered, and what was appended is
  // written and acked, before the ports close.
  UpdateClock();
  LoadTable();
  PollRings();
  handler_->Service(NowNs());
  handler_->Drain(NowNs());
  if (replication_ != nullptr) replication_->Drain();
  FlushTx();
  FreeSpares();
  tables.Unregister(index_);
  return 0;
}

}  // namespace sluice::dataplane
