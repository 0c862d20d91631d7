// Codec micro-benchmarks (protocol/codec.h): encode and decode of PRODUCE (client -> server) and
// MESSAGES (server -> client) frames, 64-byte and 1 KiB payloads, one message per frame or a
// frame filled to the 65507-byte maximum. Reports ns/message (counter `ns_per_msg`, shown in
// seconds: "25n" = 25 ns) and messages/s (`items_per_second`).
//
// Decode = DecodeFrame + the type's decoder (validates every record) + a walk that reads every
// field of every message, i.e. what a server or consumer does with a frame.
// Each benchmark checks it processed the message count it claims (SkipWithError otherwise).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "protocol/codec.h"

namespace sp = sluice::protocol;

namespace {

enum class Kind { kProduce, kMessages };

struct Variant {
  const char* name;
  Kind kind;
  size_t payload_bytes;
  bool fill;  // false: one message per frame; true: as many as fit in kMaxFrameBytes
};

// The table every benchmark is generated from.
constexpr Variant kVariants[] = {
    {"produce/64B/1", Kind::kProduce, 64, false},
    {"produce/64B/many", Kind::kProduce, 64, true},
    {"produce/1KiB/1", Kind::kProduce, 1024, false},
    {"produce/1KiB/many", Kind::kProduce, 1024, true},
    {"messages/64B/1", Kind::kMessages, 64, false},
    {"messages/64B/many", Kind::kMessages, 64, true},
    {"messages/1KiB/1", Kind::kMessages, 1024, false},
    {"messages/1KiB/many", Kind::kMessages, 1024, true},
};

struct Fixture {
  std::vector<std::byte> payload;
  std::vector<std::byte> buf = std::vector<std::byte>(sp::kMaxFrameBytes);
  std::string key = "user-123";
  sp::MessageSpec spec;

  explicit Fixture(size_t payload_bytes) : payload(payload_bytes, std::byte{0x5A}) {
    spec.partition = 3;
    spec.key = key;
    spec.payload = payload;
  }

  // Encodes one frame; returns its size and the number of messages in it.
  std::pair<size_t, uint32_t> Encode(const Variant& v, uint64_t seq) {
    sp::FrameWriter w(buf);
    const sp::FrameIds ids{1, seq, 0};
    if (v.kind == Kind::kProduce) {
      w.BeginProduce(ids, 7, 42);
    } else {
      w.BeginMessages(ids, {7, sp::kAnyPartition, 0, 0});
    }
    uint32_t n = 0;
    do {
      spec.sequence = seq + n;
      sp::EncodeError e = v.kind == Kind::kProduce
                              ? w.AddMessage(spec)
                              : w.AddDelivered({seq + n, 1, seq + n + 1, 42, 3, 1}, spec);
      if (e != sp::EncodeError::kOk) break;
      ++n;
    } while (v.fill);
    auto len = w.Finish();
    return {len.has_value() ? *len : 0, n};
  }
};

void SetCounters(benchmark::State& state, uint32_t per_frame, size_t frame_bytes) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * per_frame);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * frame_bytes));
  state.counters["msgs_per_frame"] = per_frame;
  state.counters["ns_per_msg"] = benchmark::Counter(
      per_frame, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_Encode(benchmark::State& state, Variant v) {
  Fixture fx(v.payload_bytes);
  const auto [size, per_frame] = fx.Encode(v, 0);
  if (size == 0 || per_frame == 0 || (v.fill && per_frame < 2)) {
    state.SkipWithError("encoder did not produce the frame it claims to measure");
    return;
  }
  uint64_t seq = 0;
  for (auto _ : state) {
    auto [n, count] = fx.Encode(v, seq);
    benchmark::DoNotOptimize(n);
    benchmark::DoNotOptimize(fx.buf.data());
    if (count != per_frame) {
      state.SkipWithError("message count changed");
      break;
    }
    seq += count;
  }
  SetCounters(state, per_frame, size);
}

// Reads every field so the decode cannot be optimised away.
inline uint64_t Touch(const sp::MessageView& m) {
  return m.sequence + m.partition + m.priority + m.timestamp_ns + m.delay_ms + m.ttl_ms +
         m.key.size() + m.headers.size() + m.dedup_id.size() + m.reply_to.size() +
         m.correlation_id.size() + m.group_id.size() + m.payload.size() +
         static_cast<uint64_t>(m.payload.empty() ? std::byte{0} : m.payload[0]);
}

void BM_Decode(benchmark::State& state, Variant v) {
  Fixture fx(v.payload_bytes);
  const auto [size, per_frame] = fx.Encode(v, 0);
  const std::span<const std::byte> frame(fx.buf.data(), size);
  uint64_t walked = 0;
  for (auto _ : state) {
    auto f = sp::DecodeFrame(frame);
    if (!f) {
      state.SkipWithError("frame did not decode");
      break;
    }
    uint64_t sum = 0;
    uint32_t n = 0;
    if (v.kind == Kind::kProduce) {
      auto p = sp::DecodeProduce(*f);
      if (!p) {
        state.SkipWithError("PRODUCE did not decode");
        break;
      }
      for (const sp::MessageView& m : p->messages) sum += Touch(m), ++n;
    } else {
      auto p = sp::DecodeMessages(*f);
      if (!p) {
        state.SkipWithError("MESSAGES did not decode");
        break;
      }
      for (const sp::DeliveredView& d : p->messages) sum += Touch(d.message) + d.meta.offset, ++n;
    }
    benchmark::DoNotOptimize(sum);
    walked += n;
  }
  if (walked != static_cast<uint64_t>(state.iterations()) * per_frame) {
    state.SkipWithError("decoder walked fewer messages than the frame holds");
    return;
  }
  SetCounters(state, per_frame, size);
}

const bool kRegistered = [] {
  for (const Variant& v : kVariants) {
    benchmark::RegisterBenchmark((std::string("BM_Encode/") + v.name).c_str(), BM_Encode, v);
    benchmark::RegisterBenchmark((std::string("BM_Decode/") + v.name).c_str(), BM_Decode, v);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
