// Writes seed frames for fuzz_decode: valid frames of every type from the real encoder (random
// but seeded), plus single message records. Usage: corpus_gen <dir> [per_type=12] [seed=1]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocol/codec.h"
#include "tests/unit/protocol/random_frames.h"

namespace sp = sluice::protocol;
using sp::testing::OwnedMessage;
using sp::testing::Rng;

namespace {

sp::EncodeResult Records(Rng& r, sp::FrameType t, std::span<std::byte> out) {
  sp::FrameWriter w(out);
  const sp::FrameIds ids = sp::testing::RandomIds(r);
  const size_t n = r.Between(1, 6);
  std::vector<OwnedMessage> owned(n);
  switch (t) {
    case sp::FrameType::kProduce:
      w.BeginProduce(ids, r.U32(), r.U64());
      for (OwnedMessage& m : owned) {
        sp::testing::RandomMessage(r, 120, &m);
        if (r.OneIn(4)) {  // a fragment
          m.payload.resize(400);
          m.Bind();
          m.spec.partition = 1;
          sp::Fragmenter f(m.spec, 200 + sp::EncodedSize(m.spec) - 400);
          sp::MessageSpec frag;
          while (f.Next(&frag)) w.AddMessage(frag);
          continue;
        }
        w.AddMessage(m.spec);
      }
      break;
    case sp::FrameType::kAck:
      w.BeginAck(ids, r.U32(), r.U64());
      for (size_t i = 0; i < n; ++i) w.AddAckRange(sp::testing::RandomAckRange(r));
      break;
    case sp::FrameType::kMessages:
    case sp::FrameType::kDeliver:
      if (t == sp::FrameType::kMessages) {
        w.BeginMessages(ids, {r.U32(), sp::kAnyPartition, r.U64(), r.U64()});
      } else {
        w.BeginDeliver(ids, {r.U64(), r.U32(), 0, r.U64()});
      }
      for (OwnedMessage& m : owned) {
        sp::testing::RandomMessage(r, 120, &m);
        w.AddDelivered(sp::testing::RandomMeta(r), m.spec);
      }
      break;
    case sp::FrameType::kDelete:
    case sp::FrameType::kNack:
    case sp::FrameType::kExtend:
      w.BeginReceiptOps(t, ids);
      for (size_t i = 0; i < n; ++i) w.AddReceiptOp(sp::testing::RandomReceiptOp(r, t));
      break;
    case sp::FrameType::kResult:
      w.BeginResult(ids, r.OneIn(2) ? sp::FrameType::kDelete : sp::FrameType::kCommit);
      for (size_t i = 0; i < n; ++i) w.AddResult(sp::testing::RandomResultItem(r));
      break;
    case sp::FrameType::kGroupState:
      w.BeginGroupState(ids, {r.U32(), r.U32(), r.U16(), r.U32()});
      for (size_t i = 0; i < n; ++i) {
        const bool committed = r.OneIn(2);
        w.AddGroupPartition({static_cast<uint16_t>(i), committed, committed ? r.U64() : 0});
      }
      break;
    case sp::FrameType::kCommit:
      w.BeginCommit(ids, {r.U32(), r.U32(), r.Between(1, 1000), "group-1"});
      for (size_t i = 0; i < n; ++i) w.AddCommit({static_cast<uint16_t>(i), r.U64()});
      break;
    default: return sp::EncodeError::kBadValue;
  }
  return w.Finish();
}

sp::EncodeResult Frame(Rng& r, sp::FrameType t, std::span<std::byte> out) {
  const sp::FrameIds ids = sp::testing::RandomIds(r);
  std::string text = r.Bytes(60);
  switch (t) {
    case sp::FrameType::kReceive: return sp::EncodeReceive(out, ids, sp::testing::RandomReceive(r));
    case sp::FrameType::kSubscribe:
      return sp::EncodeSubscribe(out, ids, {r.Between(1, 1000), r.U32(), 0, sp::StartKind::kOffset, r.U64(), r.U32(), text});
    case sp::FrameType::kCredit: return sp::EncodeCredit(out, ids, sp::testing::RandomCredit(r));
    case sp::FrameType::kNak: return sp::EncodeNak(out, ids, sp::testing::RandomNak(r));
    case sp::FrameType::kFetch: return sp::EncodeFetch(out, ids, sp::testing::RandomFetch(r));
    case sp::FrameType::kHeartbeat: return sp::EncodeHeartbeat(out, ids, sp::testing::RandomHeartbeat(r));
    case sp::FrameType::kError:
      return sp::EncodeErrorFrame(out, ids, {sluice::Errc::kThrottled, 1, r.U32(), r.U16(), r.U32(), text});
    case sp::FrameType::kLookup: return sp::EncodeLookup(out, ids, {text.empty() ? "q" : text});
    case sp::FrameType::kLookupReply:
      return sp::EncodeLookupReply(out, ids, sp::testing::RandomLookupReply(r));
    case sp::FrameType::kUnsubscribe:
      return sp::EncodeUnsubscribe(out, ids, sp::testing::RandomUnsubscribe(r));
    case sp::FrameType::kOpenInbox:
      return sp::EncodeOpenInbox(out, ids, {r.Between(1, 1000), static_cast<sp::InboxOp>(r.Below(2))});
    case sp::FrameType::kReply: {
      OwnedMessage m;
      sp::testing::RandomMessage(r, 120, &m);
      return sp::EncodeReply(out, ids, r.Between(1, 1000), m.spec);
    }
    case sp::FrameType::kJoinGroup:
      return sp::EncodeJoinGroup(out, ids, {r.U32(), static_cast<sp::GroupOp>(r.Below(2)),
                                            r.Between(1, 1000), 0, text.empty() ? "g" : text});
    default: return Records(r, t, out);
  }
}

bool Write(const std::string& path, std::span<const std::byte> bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <corpus dir> [per_type] [seed]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const int per_type = argc > 2 ? std::atoi(argv[2]) : 12;
  Rng r(argc > 3 ? std::strtoull(argv[3], nullptr, 0) : 1);
  std::vector<std::byte> buf(sp::kDefaultFrameBytes);
  int written = 0;
  for (uint8_t t = 1; t <= sp::kMaxFrameType; ++t) {
    const auto type = static_cast<sp::FrameType>(t);
    for (int i = 0; i < per_type; ++i) {
      auto n = Frame(r, type, buf);
      if (!n) {
        std::fprintf(stderr, "corpus_gen: %s: %s\n", std::string(sp::FrameTypeName(type)).c_str(),
                     std::string(sp::EncodeErrorName(n.error())).c_str());
        return 1;
      }
      std::string name = dir + "/" + std::string(sp::FrameTypeName(type)) + "-" + std::to_string(i);
      if (!Write(name, std::span<const std::byte>(buf).first(*n))) {
        std::perror(name.c_str());
        return 1;
      }
      ++written;
    }
  }
  for (int i = 0; i < per_type; ++i) {  // bare message records
    OwnedMessage m;
    sp::testing::RandomMessage(r, 200, &m);
    auto n = sp::EncodeMessageRecord(buf, m.spec);
    if (!n || !Write(dir + "/RECORD-" + std::to_string(i), std::span<const std::byte>(buf).first(*n))) {
      return 1;
    }
    ++written;
  }
  std::printf("corpus_gen: wrote %d seed frames to %s\n", written, dir.c_str());
  return 0;
}
