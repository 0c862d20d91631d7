// The worker's request path without DPDK (dataplane/frontend.h): a PRODUCE frame decoded and
// validated, routed to its owner (dataplane/produce_route.h, as FrameHandler does), appended,
// sealed, made durable (`none`) and acknowledged, with the
// loop pass's Service() once per kFramesPerPass frames, as a busy worker would run it. Time per
// iteration is ns per frame; items are messages. Everything a memif/NIC burst adds (rx copy,
// Ethernet/IP/UDP parse, tx) is outside: this is the part sluice owns.
//
// Checks the frontend's counters afterwards and reports an error if the messages were not all
// appended and acknowledged (a benchmark that cannot lie).
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/frontend.h"
#include "dataplane/produce_route.h"
#include "dataplane/queue_table.h"
#include "hwconf/layout.h"
#include "protocol/codec.h"

namespace sd = sluice::dataplane;
namespace p = sluice::protocol;

namespace {

constexpr uint32_t kFramesPerPass = 32;  // one RX burst

// Reply buffers from a fixed set, sent into the void (counted).
class NullChannel final : public sd::ReplyChannel {
 public:
  sd::ReplyBuffer Acquire(const sd::Endpoint&, size_t max_bytes) override {
    for (uint32_t h = 0; h < kMaxOutstanding; ++h) {
      if (!busy_[h]) {
        busy_[h] = true;
        return {std::span(buffers_[h].data(), std::min<size_t>(max_bytes, 1472)), h};
      }
    }
    return {};
  }
  void Send(const sd::ReplyBuffer& b, size_t) override {
    busy_[b.handle] = false;
    ++sent;
  }
  void Abandon(const sd::ReplyBuffer& b) override { busy_[b.handle] = false; }
  bool HandOffRecord(uint16_t, uint32_t, std::span<const std::byte>) override { return true; }
  uint64_t sent = 0;

 private:
  std::array<bool, kMaxOutstanding> busy_{};
  std::array<std::array<std::byte, 1472>, kMaxOutstanding> buffers_{};
};

// args: payload bytes, messages per frame, idempotent producer (0/1).
void BM_Produce(benchmark::State& state) {
  const uint32_t size = static_cast<uint32_t>(state.range(0));
  const uint32_t per_frame = static_cast<uint32_t>(state.range(1));
  const bool idempotent = state.range(2) != 0;

  sluice::hwconf::Layout layout;
  layout.shards = 1;
  sluice::hwconf::Lcore lc;
  lc.id = 1;
  lc.shards = {0};
  layout.lcores = {lc};
  sluice::hwconf::QueueDecl q;
  q.name = "bench";
  q.type = sluice::hwconf::QueueType::kStream;
  q.partitions = 1;
  layout.queues = {q};
  auto table = sd::QueueTable::Build(layout);
  if (!table.ok()) {
    state.SkipWithError("queue table");
    return;
  }
  NullChannel channel;
  const std::array<uint32_t, 1> shards{0};
  sd::Frontend frontend(**table, 0, shards, channel);
  const uint32_t queue_id = (*table)->FindByName("bench")->id;

  // The frame template; per frame only the sequences change (as the load generator's do): the
  // sequence is the u64 at byte 8 of each record (docs/protocol.md §6.3).
  std::vector<std::byte> payload(size, std::byte{0x5a});
  std::vector<std::byte> frame(65536);
  p::FrameWriter w(frame);
  const uint64_t producer = idempotent ? 7 : 0;
  if (w.BeginProduce({1, 1, 0}, queue_id, producer) != p::EncodeError::kOk) std::abort();
  for (uint32_t i = 0; i < per_frame; ++i) {
    p::MessageSpec m;
    m.partition = 0;
    m.sequence = i;
    m.payload = payload;
    if (w.AddMessage(m) != p::EncodeError::kOk) std::abort();
  }
  frame.resize(*w.Finish());
  constexpr size_t kRecordsAt = p::kHeaderBytes + p::kProducePrefixBytes;
  const size_t record_bytes = (frame.size() - kRecordsAt) / per_frame;

  sd::RouteContext route;
  route.receiver = true;
  const sd::Endpoint from{42, 7};
  uint64_t now_ns = 1'000'000'000;
  uint64_t seq = 0;
  uint32_t in_pass = 0;
  uint32_t rr = 0;  // FrameHandler's round-robin cursor
  for (auto _ : state) {
    if (idempotent) {
      std::byte* rec = frame.data() + kRecordsAt;
      for (uint32_t i = 0; i < per_frame; ++i, rec += record_bytes) {
        p::le::Store<uint64_t>(rec + 8, seq++);
      }
    }
    auto f = p::DecodeFrame(frame);
    if (!f || p::ValidateFrame(*f) != p::DecodeError::kOk) std::abort();
    const p::ProduceView produce = p::DecodeValidatedProduce(*f);
    const sd::QueueInfo* q = (*table)->Find(produce.queue_id);
    if (q == nullptr || sd::RouteProduce(*q, 0, *f, produce, frame.data(), &rr) != 1) std::abort();
    frontend.OnFrame(*f, from, route, now_ns);
    if (++in_pass == kFramesPerPass) {
      in_pass = 0;
      now_ns += 1'000;
      frontend.Service(now_ns);
    }
  }
  frontend.Service(now_ns + 1'000);
  const uint64_t messages = static_cast<uint64_t>(state.iterations()) * per_frame;
  const sd::FrontendCounters& c = frontend.counters();
  if (c.produced.load() != messages || c.acked.load() != messages) {
    state.SkipWithError("not every message was appended and acknowledged");
  }
  state.SetItemsProcessed(static_cast<int64_t>(messages));
  state.SetBytesProcessed(static_cast<int64_t>(messages * size));
  state.counters["ack_frames"] = static_cast<double>(channel.sent);
}
BENCHMARK(BM_Produce)
    ->ArgNames({"bytes", "per_frame", "idempotent"})
    ->Args({64, 1, 1})
    ->Args({64, 1, 0})
    ->Args({64, 13, 1})
    ->Args({1024, 1, 1});

}  // namespace

BENCHMARK_MAIN();
