// The sluice-protocol shell of one worker lcore: validates each datagram, answers what needs no
// shard (HEARTBEAT, LOOKUP, malformed frames), routes everything else to the owner workers of the
// partitions it names — inline when that is this worker, otherwise through the owner's SP/SC ring
// with the mbuf's reference count raised (no copy) — and gives the frontend an mbuf-backed
// ReplyChannel.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <rte_mbuf.h>

#include "dataplane/address_check.h"
#include "dataplane/frontend.h"
#include "dataplane/net.h"
#include "dataplane/port.h"
#include "dataplane/verified_memo.h"

namespace sluice::dataplane {

class Worker;
struct SharedRuntime;

class FrameHandler final : public ReplyChannel {
 public:
  FrameHandler(Worker& worker, const SharedRuntime& shared);
  ~FrameHandler();

  // A UDP datagram for the sluice port, received by this worker. Consumes the mbuf.
  void OnDatagram(rte_mbuf* m, const Peer& from, const PortRuntime& port);
  // A frame another worker received and handed to this one (an owner). Consumes the mbuf.
  void OnHandoff(rte_mbuf* m);
  // Periodic work of the owned shards; returns work done.
  uint32_t Service(uint64_t now_ns) { return frontend_->Service(now_ns); }
  void Drain(uint64_t now_ns) { frontend_->Drain(now_ns); }

  // A new queue table (start of a pass) and the partition figures for the control plane.
  void SetTable(const QueueTable& next) { frontend_->SetTable(next); }
  void CollectPartitionStats(std::vector<PartitionFigures>* out) const {
    frontend_->CollectPartitionStats(out);
  }
  std::string ShardStatsJson() const { return frontend_->StatsJson(); }
  std::vector<std::span<std::byte>> BatchMemory() const { return frontend_->BatchMemory(); }
  const FrontendCounters& frontend_counters() const { return frontend_->counters(); }
  const FrontendHistograms& frontend_histograms() const { return frontend_->histograms(); }

  // ReplyChannel
  ReplyBuffer Acquire(const Endpoint& to, size_t max_bytes) override;
  void Send(const ReplyBuffer& buffer, size_t bytes) override;
  void Abandon(const ReplyBuffer& buffer) override;
  bool HandOffRecord(uint16_t worker, uint32_t queue, std::span<const std::byte> record) override;

 private:
  // Bit per worker that must see the frame; 0 when the receiver answers it alone.
  uint64_t OwnersOf(const protocol::FrameView& f, uint8_t* payload, RouteContext* route);
  void AnswerHeartbeat(const protocol::FrameView& f, const Endpoint& from);
  void AnswerLookup(const protocol::FrameView& f, const Endpoint& from);
  void AnswerError(const protocol::FrameHeader& h, uint8_t raw_type, Errc errc,
                   std::string_view detail, const Endpoint& to, size_t request_bytes);
  void AnswerMalformed(std::span<const std::byte> datagram, protocol::DecodeError e,
                       const Endpoint& to);
  bool NeedsVerifiedSource(protocol::FrameType t) const;
  // A validated PRODUCE received from `from` (OnDatagram's common case). Consumes the mbuf.
  void OnProduce(rte_mbuf* m, const protocol::FrameView& frame, const Endpoint& from);
  // Whether the source address of `ep` was verified for `client_id` (the memo, else the table).
  bool Verified(const Endpoint& ep, uint64_t client_id);
  // Hands the frame to every owner in `owners` but this worker (a reference each); a full ring
  // marks the owner in route->throttled_workers.
  void HandOffToOwners(rte_mbuf* m, uint64_t owners, RouteContext* route);
  const PortRuntime* PortById(uint16_t port_id) const;

  Worker& worker_;
  const SharedRuntime& shared_;
  std::unique_ptr<Frontend> frontend_;
  AddressCheck& address_check_;  // shared by all workers
  VerifiedMemo verified_memo_;    // this worker's last verified source (no lookup per frame)
  uint32_t produce_rr_ = 0;  // round-robin cursor for keyless messages without a partition
  uint32_t receive_rr_ = 0;  // and for RECEIVE from any partition
  // A reply buffer handed out: its mbuf already holds the headers (copied from its route's
  // template at Acquire), so nothing refers to the route cache after that.
  struct PendingReply {
    rte_mbuf* m = nullptr;
    uint32_t ip_sum = 0;  // the template's IPv4 header sum, for the checksum at Send
    uint16_t port_id = 0;
  };
  std::array<PendingReply, kMaxOutstanding> replies_{};
  // Reply destinations seen lately, each with its pre-built Ethernet/IPv4/UDP headers: a reply
  // copies them instead of writing every field and summing the IPv4 header (most replies go to
  // a client that was answered moments ago). Direct-mapped by endpoint; a miss builds the entry.
  struct Route {
    Endpoint to{~uint64_t{0}, ~uint64_t{0}};  // no real endpoint (its port id would be 0xffff)
    const PortRuntime* port = nullptr;
    uint32_t room = 0;  // payload bytes one datagram to it can carry (mbuf and the port's MTU)
    DatagramTemplate headers;
  };
  static constexpr uint32_t kRoutes = 64;
  static_assert((kRoutes & (kRoutes - 1)) == 0);
  const Route* RouteTo(const Endpoint& to);
  const Route* BuildRoute(Route& slot, const Endpoint& to);
  std::array<Route, kRoutes> routes_{};
};

}  // namespace sluice::dataplane
