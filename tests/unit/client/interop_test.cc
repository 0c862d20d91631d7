// libsluice against the server's real request layer (dataplane::Frontend over the shard engine,
// no DPDK): a thin UDP shell stands in for the DPDK frame handler (heartbeat cookies, LOOKUP,
// the verified-source check) and hands every other frame to the Frontend, whose reply frames go
// back over the socket. Catches disagreements between client and server about the protocol.
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/connection.h"
#include "client/errors.h"
#include "client/group_consumer.h"
#include "client/request_reply.h"
#include "client/producer.h"
#include "client/stream_consumer.h"
#include "client/work_consumer.h"
#include "dataplane/frontend.h"
#include "dataplane/queue_table.h"
#include "gtest/gtest.h"
#include "hwconf/layout.h"
#include "protocol/assert.h"

namespace sluice::client::testing {
namespace {

namespace p = protocol;
namespace dp = dataplane;

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class RealServer final : public dp::ReplyChannel {
 public:
  RealServer() {
    layout_.shards = 1;
    hwconf::Lcore lc;
    lc.id = 1;
    lc.shards = {0};
    layout_.lcores = {lc};
    hwconf::QueueDecl stream;
    stream.name = "events";
    stream.type = hwconf::QueueType::kStream;
    stream.partitions = 2;
    hwconf::QueueDecl work;
    work.name = "jobs";
    work.type = hwconf::QueueType::kWork;
    work.partitions = 1;
    work.visibility_timeout_ms = 1000;
    hwconf::QueueDecl ticks;  // consumer groups
    ticks.name = "ticks";
    ticks.type = hwconf::QueueType::kStream;
    ticks.partitions = 4;
    layout_.queues = {stream, work, ticks};
    auto table = dp::QueueTable::Build(layout_);
    SLUICE_ASSERT(table.ok());
    table_ = std::move(*table);
    const std::array<uint32_t, 1> shards{0};
    frontend_ = std::make_unique<dp::Frontend>(*table_, 0, shards, *this);

    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SLUICE_ASSERT(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~RealServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  dp::FrontendCounters counters() {
    std::lock_guard<std::mutex> l(mu_);
    return frontend_->counters();
  }

  // ReplyChannel
  dp::ReplyBuffer Acquire(const dp::Endpoint& to, size_t max_bytes) override {
    for (uint32_t h = 0; h < kMaxOutstanding; ++h) {
      if (!busy_[h]) {
        busy_[h] = true;
        to_[h] = to;
        buffers_[h].assign(std::min<size_t>(max_bytes, p::kMaxFrameBytes), std::byte{0});
        return {buffers_[h], h};
      }
    }
    return {};
  }
  void Send(const dp::ReplyBuffer& b, size_t bytes) override {
    const sockaddr_in& peer = peers_[to_[b.handle].w0];
    sendto(fd_, b.bytes.data(), bytes, 0, reinterpret_cast<const sockaddr*>(&peer), sizeof peer);
    busy_[b.handle] = false;
  }
  void Abandon(const dp::ReplyBuffer& b) override { busy_[b.handle] = false; }
  bool HandOffRecord(uint16_t, uint32_t, std::span<const std::byte>) override {
    return false;  // one worker: every partition is local
  }

 private:
  void Loop() {
    std::vector<std::byte> buf(65536);
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      poll(&pfd, 1, 1);
      std::lock_guard<std::mutex> l(mu_);
      for (int i = 0; i < 64; ++i) {
        sockaddr_in from{};
        socklen_t len = sizeof from;
        const ssize_t n = recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 0) break;
        const uint64_t key = (uint64_t{ntohl(from.sin_addr.s_addr)} << 16) | ntohs(from.sin_port);
        peers_[key] = from;
        OnDatagram(key, std::span<const std::byte>(buf.data(), static_cast<size_t>(n)));
      }
      frontend_->Service(static_cast<uint64_t>(Now()));
    }
  }

  void Reply(uint64_t key, std::span<const std::byte> bytes) {
    const sockaddr_in& peer = peers_[key];
    sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&peer), sizeof peer);
  }

  // What the DPDK FrameHandler does before the Frontend: heartbeats, LOOKUP, verification.
  void OnDatagram(uint64_t key, std::span<const std::byte> d) {
    auto f = p::DecodeFrame(d);
    if (!f || p::ValidateFrame(*f) != p::DecodeError::kOk) return;
    std::byte out[256];
    const p::FrameIds ids{f->header.client_id, f->header.request_id, 0};
    const uint64_t cookie = (key * 0x9E3779B97F4A7C15ull) ^ f->header.client_id ^ 0xC00C1E;
    switch (f->header.type) {
      case p::FrameType::kHeartbeat: {
        auto hb = p::DecodeHeartbeat(*f);
        if (hb->cookie == cookie) verified_.insert({key, f->header.client_id});
        auto n = p::EncodeHeartbeat(out, ids, p::Heartbeat{cookie, 1, 1000});
        Reply(key, std::span<const std::byte>(out, *n));
        return;
      }
      case p::FrameType::kLookup: {
        auto r = p::DecodeLookup(*f);
        const dp::QueueInfo* q = table_->FindByName(r->name);
        p::EncodeResult n = p::EncodeError::kNoSpace;
        if (q == nullptr) {
          n = p::EncodeErrorFrame(std::span<std::byte>(out, d.size()), ids,
                                  p::ErrorReply{Errc::kUnknownQueue, 16, 0, 0, 0, "no such queue"});
        } else {
          n = p::EncodeLookupReply(
              out, ids,
              p::LookupReply{q->id, static_cast<uint16_t>(q->partition_worker.size()),
                             q->is_stream() ? p::QueueType::kStream : p::QueueType::kWorkQueue,
                             q->config.max_message_bytes});
        }
        if (n) Reply(key, std::span<const std::byte>(out, *n));
        return;
      }
      case p::FrameType::kReceive:
      case p::FrameType::kFetch:
      case p::FrameType::kSubscribe:
      case p::FrameType::kCredit:
      case p::FrameType::kNak:
      case p::FrameType::kJoinGroup:
      case p::FrameType::kOpenInbox:
        if (verified_.count({key, f->header.client_id}) == 0) {
          auto n = p::EncodeErrorFrame(std::span<std::byte>(out, d.size()), ids,
                                       p::ErrorReply{Errc::kUnverifiedSource,
                                                     static_cast<uint8_t>(f->header.type), 0, 0, 0,
                                                     "not verified"});
          if (n) Reply(key, std::span<const std::byte>(out, *n));
          return;
        }
        break;
      default:
        break;
    }
    dp::RouteContext route;
    route.receiver = true;
    route.any_partition = 0;
    frontend_->OnFrame(*f, dp::Endpoint{key, 0}, route, static_cast<uint64_t>(Now()));
  }

  std::mutex mu_;
  hwconf::Layout layout_;
  std::unique_ptr<const dp::QueueTable> table_;
  std::unique_ptr<dp::Frontend> frontend_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::map<uint64_t, sockaddr_in> peers_;
  std::set<std::pair<uint64_t, uint64_t>> verified_;
  std::array<bool, kMaxOutstanding> busy_{};
  std::array<dp::Endpoint, kMaxOutstanding> to_{};
  std::array<std::vector<std::byte>, kMaxOutstanding> buffers_;
};

class InteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ConnectionOptions o;
    o.server = server_.address();
    o.retransmit_interval = absl::Milliseconds(50);
    auto c = Connection::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    conn_ = std::move(*c);
  }
  RealServer server_;
  std::unique_ptr<Connection> conn_;
};

TEST_F(InteropTest, ProduceThenSubscribeAndFetch) {
  auto prod = Producer::Create(*conn_, "events", {.linger = absl::Milliseconds(2)});
  ASSERT_TRUE(prod.ok()) << prod.status();
  std::map<uint16_t, std::vector<uint64_t>> acked;
  int failures = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string payload = absl::StrCat("e", i);
    ASSERT_TRUE((*prod)->Send({.payload = AsBytes(payload), .key = absl::StrCat("k", i % 7)},
                              [&](const absl::Status& s, uint16_t part, uint64_t off) {
                                if (!s.ok()) {
                                  ADD_FAILURE() << s;
                                  ++failures;
                                }
                                acked[part].push_back(off);
                              })
                    .ok());
  }
  ASSERT_TRUE((*prod)->Flush(absl::Seconds(5)).ok());
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(server_.counters().produced, 200u);
  for (auto& [part, offs] : acked) {
    std::sort(offs.begin(), offs.end());
    for (size_t i = 0; i < offs.size(); ++i) EXPECT_EQ(offs[i], i) << "partition " << part;
  }

  std::map<uint16_t, std::vector<uint64_t>> seen;
  size_t total = 0;
  auto sub = StreamConsumer::Create(*conn_, "events", {.start = StartPosition::Earliest(), .window = 16},
                                    [&](const ReceivedMessage& m) {
                                      seen[m.partition].push_back(m.offset);
                                      ++total;
                                    });
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE(conn_->PollUntil([&] { return total == 200; }, absl::Seconds(10)).ok())
      << "got " << total;
  for (auto& [part, offs] : seen) {
    ASSERT_EQ(offs.size(), acked[part].size());
    for (size_t i = 0; i < offs.size(); ++i) EXPECT_EQ(offs[i], i);
  }
  auto q = conn_->Lookup("events");
  auto r = Fetch(*conn_, *q, 1, StartPosition::Offset(0), 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->messages.size(), std::min<size_t>(5, acked[1].size()));
  EXPECT_EQ(r->high_watermark, acked[1].size());
}

TEST_F(InteropTest, RepeatedSequenceIsAckedDuplicateWithTheOriginalOffset) {
  // Two producers with one producer id send sequence 0 of partition 0: the second is a
  // retransmit as far as the server can tell, and is not appended again.
  uint64_t first_offset = 1, second_offset = 2;
  Producer first(*conn_, *conn_->Lookup("events"), {.linger = absl::ZeroDuration(), .producer_id = 77});
  ASSERT_TRUE(first.Send({.payload = AsBytes("x"), .partition = 0},
                         [&](const absl::Status& s, uint16_t, uint64_t off) {
                           EXPECT_TRUE(s.ok()) << s;
                           first_offset = off;
                         })
                  .ok());
  ASSERT_TRUE(first.Flush(absl::Seconds(5)).ok());
  Producer again(*conn_, *conn_->Lookup("events"), {.linger = absl::ZeroDuration(), .producer_id = 77});
  ASSERT_TRUE(again.Send({.payload = AsBytes("x"), .partition = 0},
                         [&](const absl::Status& s, uint16_t, uint64_t off) {
                           EXPECT_TRUE(s.ok()) << s;
                           second_offset = off;
                         })
                  .ok());
  ASSERT_TRUE(again.Flush(absl::Seconds(5)).ok());
  EXPECT_EQ(server_.counters().produced, 1u);
  EXPECT_EQ(server_.counters().duplicates, 1u);
  EXPECT_EQ(again.stats().duplicates, 1u);
  EXPECT_EQ(second_offset, first_offset);
}

TEST_F(InteropTest, LargeMessageRoundTrip) {
  std::string big(5000, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  auto prod = Producer::Create(*conn_, "events", {.linger = absl::Milliseconds(1)});
  ASSERT_TRUE(prod.ok());
  absl::Status result = absl::UnknownError("pending");
  ASSERT_TRUE((*prod)->Send({.payload = AsBytes(big), .partition = 1},
                            [&](const absl::Status& s, uint16_t, uint64_t) { result = s; })
                  .ok());
  ASSERT_TRUE((*prod)->Flush(absl::Seconds(5)).ok());
  ASSERT_TRUE(result.ok()) << result;
  EXPECT_EQ((*prod)->stats().fragmented, 1u);
  auto q = conn_->Lookup("events");
  auto r = Fetch(*conn_, *q, 1, StartPosition::Earliest(), 1);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 1u);
  EXPECT_EQ(r->messages[0]->payload_view(), big);
}

TEST_F(InteropTest, WorkQueueReceiveDeleteAndStaleReceipt) {
  auto prod = Producer::Create(*conn_, "jobs", {.linger = absl::Milliseconds(1)});
  ASSERT_TRUE(prod.ok());
  for (int i = 0; i < 3; ++i) {
    const std::string s = absl::StrCat("job", i);
    ASSERT_TRUE((*prod)->Send({.payload = AsBytes(s)}).ok());
  }
  ASSERT_TRUE((*prod)->Flush(absl::Seconds(5)).ok());
  auto wc = WorkConsumer::Create(*conn_, "jobs");
  ASSERT_TRUE(wc.ok()) << wc.status();
  auto got = (*wc)->ReceiveSync({.max_messages = 10, .visibility = absl::Milliseconds(200)});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0]->payload_view(), "job0");
  std::vector<Receipt> receipts;
  for (const OwnedMessage& m : *got) receipts.push_back(ReceiptOf(*m));
  auto del = (*wc)->DeleteSync(std::span<const Receipt>(receipts).first(2));
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_TRUE((*del)[0].ok()) << (*del)[0];
  EXPECT_TRUE((*del)[1].ok()) << (*del)[1];
  // The third lease expires; it is received again; the old receipt is stale.
  auto again = (*wc)->ReceiveSync({.max_messages = 1, .wait = absl::Seconds(3)});
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0]->receive_count, 2);
  auto stale = (*wc)->DeleteSync(std::span<const Receipt>(receipts).last(1));
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(ErrcOf((*stale)[0]), Errc::kStaleReceipt) << (*stale)[0];
  auto twice = (*wc)->DeleteSync(std::span<const Receipt>(receipts).first(1));
  ASSERT_TRUE(twice.ok());
  EXPECT_FALSE((*twice)[0].ok());
}

// ---- consumer groups ---------------------------------------------------------------------------

std::unique_ptr<Connection> Connect(const std::string& server) {
  ConnectionOptions o;
  o.server = server;
  o.retransmit_interval = absl::Milliseconds(50);
  auto c = Connection::Connect(o);
  SLUICE_ASSERT(c.ok());
  return *std::move(c);
}

void ProduceTicks(Connection& conn, int first, int n) {
  auto prod = Producer::Create(conn, "ticks", {.linger = absl::Milliseconds(1)});
  ASSERT_TRUE(prod.ok()) << prod.status();
  for (int i = first; i < first + n; ++i) {
    const std::string payload = absl::StrCat("t", i);
    ASSERT_TRUE((*prod)->Send({.payload = AsBytes(payload), .partition = static_cast<uint16_t>(i % 4)})
                    .ok());
  }
  ASSERT_TRUE((*prod)->Flush(absl::Seconds(5)).ok());
}

// A raw COMMIT, as a member that did not hear of a rebalance would send it.
Errc RawCommit(Connection& conn, uint32_t queue_id, uint32_t generation, uint64_t member,
               uint16_t partition, uint64_t offset) {
  const uint64_t rid = conn.NextRequestId();
  p::FrameWriter w(conn.scratch());
  w.BeginCommit(conn.Ids(rid), {queue_id, generation, member, "g"});
  w.AddCommit({partition, offset});
  auto n = w.Finish();
  SLUICE_ASSERT(n.has_value());
  std::optional<Errc> got;
  conn.Call(std::span<const std::byte>(conn.scratch().data(), *n), {},
            [&](const p::FrameView* f, const absl::Status&) {
              got = Errc::kInternal;
              if (f != nullptr) {
                if (auto r = p::DecodeResultFrame(*f); r && r->items.size() == 1) {
                  EXPECT_EQ(r->request_type, p::FrameType::kCommit);
                  got = r->items[0].errc;
                }
              }
              return true;
            });
  (void)conn.PollUntil([&] { return got.has_value(); }, absl::Seconds(3));
  return got.value_or(Errc::kInternal);
}

TEST_F(InteropTest, ConsumerGroupSharesRebalancesFencesAndResumes) {
  ProduceTicks(*conn_, 0, 40);
  const std::string server = server_.address();
  auto conn_a = Connect(server);
  auto conn_b = Connect(server);
  std::map<std::pair<uint16_t, uint64_t>, int> seen_a, seen_b;
  GroupConsumerOptions o;
  o.group = "g";
  o.start = StartPosition::Earliest();
  o.session_timeout = absl::Milliseconds(600);
  o.heartbeat_interval = absl::Milliseconds(100);
  o.member_id = 100;
  auto a = GroupConsumer::Create(*conn_a, "ticks", o, [&](const ReceivedMessage& m) {
    ++seen_a[{m.partition, m.offset}];
  });
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ((*a)->generation(), 1u);
  EXPECT_EQ((*a)->assignment(), (std::vector<uint16_t>{0, 1, 2, 3}));
  auto poll = [&](auto&&... consumers) {
    (void)std::initializer_list<int>{((void)consumers->Poll(absl::Milliseconds(2)), 0)...};
  };
  for (int i = 0; i < 2000 && seen_a.size() < 40; ++i) poll(*a);
  ASSERT_EQ(seen_a.size(), 40u);
  ASSERT_TRUE((*a)->Commit().ok());
  auto d = DescribeGroup(*conn_, "ticks", "g");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->generation, 1u);
  EXPECT_EQ(d->members, 1u);
  EXPECT_EQ(d->committed, (std::map<uint16_t, uint64_t>{{0, 10}, {1, 10}, {2, 10}, {3, 10}}));

  // B joins: generation 2; A hears of it on its next heartbeat and gives up half.
  o.member_id = 200;
  auto b = GroupConsumer::Create(*conn_b, "ticks", o, [&](const ReceivedMessage& m) {
    ++seen_b[{m.partition, m.offset}];
  });
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->generation(), 2u);
  EXPECT_EQ((*b)->assignment(), (std::vector<uint16_t>{2, 3}));
  for (int i = 0; i < 2000 && (*a)->generation() != 2; ++i) poll(*a, *b);
  EXPECT_EQ((*a)->generation(), 2u);
  EXPECT_EQ((*a)->assignment(), (std::vector<uint16_t>{0, 1}));
  EXPECT_TRUE(seen_b.empty()) << "B resumed from the committed offsets: nothing old";

  // A's generation-1 view is fenced: it cannot move partition 3 any more.
  const uint32_t ticks_id = (*a)->queue().queue_id;
  EXPECT_EQ(RawCommit(*conn_, ticks_id, 1, 100, 3, 99), Errc::kStaleGeneration);
  EXPECT_EQ(RawCommit(*conn_, ticks_id, 2, 100, 3, 99), Errc::kStaleGeneration);
  EXPECT_EQ(RawCommit(*conn_, ticks_id, 2, 200, 3, 10), Errc::kOk);

  // New messages go to whoever holds their partition, each exactly once.
  ProduceTicks(*conn_, 40, 40);
  auto news = [&] {
    size_t n = 0;
    for (auto& [k, c] : seen_a) n += k.second >= 10 ? c : 0;
    for (auto& [k, c] : seen_b) n += k.second >= 10 ? c : 0;
    return n;
  };
  for (int i = 0; i < 4000 && news() < 40; ++i) poll(*a, *b);
  EXPECT_EQ(news(), 40u);
  for (auto& [k, c] : seen_b) {
    EXPECT_TRUE(k.first == 2 || k.first == 3) << "B read partition " << k.first;
    EXPECT_EQ(c, 1);
  }
  for (auto& [k, c] : seen_a) {
    if (k.second >= 10) {
      EXPECT_TRUE(k.first == 0 || k.first == 1) << "A read partition " << k.first;
    }
    EXPECT_EQ(c, 1);
  }

  // B goes silent (no more polls: no heartbeats). After its session the server drops it and A,
  // at its next heartbeat, takes every partition back, resuming B's at B's last commit.
  const MonoNs silent_from = NowNs();
  for (int i = 0; i < 4000 && (*a)->assignment().size() != 4; ++i) poll(*a);
  EXPECT_EQ((*a)->assignment().size(), 4u);
  EXPECT_GE(NowNs() - silent_from, 500'000'000) << "B expired before its 600 ms session";
  EXPECT_EQ((*a)->generation(), 3u);
  ProduceTicks(*conn_, 80, 8);
  auto at_least = [&] {
    std::set<std::pair<uint16_t, uint64_t>> all;
    for (auto& [k, c] : seen_a) all.insert(k);
    for (auto& [k, c] : seen_b) all.insert(k);
    return all.size();
  };
  for (int i = 0; i < 4000 && at_least() < 88; ++i) poll(*a);
  EXPECT_EQ(at_least(), 88u) << "every message reached the group at least once";
  for (uint16_t part = 0; part < 4; ++part) EXPECT_EQ((*a)->position(part), 22u) << part;

  // A leaves; the group keeps its offsets, and a new member resumes there: nothing is replayed.
  ASSERT_TRUE((*a)->Close().ok());
  d = DescribeGroup(*conn_, "ticks", "g");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->members, 0u);
  EXPECT_EQ(d->committed, (std::map<uint16_t, uint64_t>{{0, 22}, {1, 22}, {2, 22}, {3, 22}}));
  b->reset();  // B's late LEAVE changes nothing (it was dropped already)
  std::vector<std::string> late;
  o.member_id = 300;
  auto c = GroupConsumer::Create(*conn_b, "ticks", o, [&](const ReceivedMessage& m) {
    late.emplace_back(m.payload_view());
  });
  ASSERT_TRUE(c.ok()) << c.status();
  for (int i = 0; i < 50; ++i) poll(*c);
  EXPECT_TRUE(late.empty());
  ProduceTicks(*conn_, 88, 4);
  for (int i = 0; i < 2000 && late.size() < 4; ++i) poll(*c);
  std::sort(late.begin(), late.end());
  EXPECT_EQ(late, (std::vector<std::string>{"t88", "t89", "t90", "t91"}));
}

TEST_F(InteropTest, StreamConsumerStartsAtTheGroupsCommittedOffsets) {
  ProduceTicks(*conn_, 0, 8);  // two per partition
  const uint32_t ticks_id = conn_->Lookup("ticks")->queue_id;
  // An administrative commit (member 0, generation 0: the group has no members).
  const uint64_t rid = conn_->NextRequestId();
  p::FrameWriter w(conn_->scratch());
  w.BeginCommit(conn_->Ids(rid), {ticks_id, 0, 0, "adm"});
  w.AddCommit({0, 1});
  w.AddCommit({3, 2});
  auto n = w.Finish();
  ASSERT_TRUE(n.has_value());
  int ok = 0;
  bool done = false;
  conn_->Call(std::span<const std::byte>(conn_->scratch().data(), *n), {},
              [&](const p::FrameView* f, const absl::Status&) {
                if (f != nullptr) {
                  if (auto r = p::DecodeResultFrame(*f)) {
                    for (const p::ResultItem it : r->items) ok += it.errc == Errc::kOk;
                  }
                }
                return done = true;
              });
  ASSERT_TRUE(conn_->PollUntil([&] { return done; }, absl::Seconds(3)).ok());
  EXPECT_EQ(ok, 2);
  std::set<std::pair<uint16_t, uint64_t>> seen;
  auto sc = StreamConsumer::Create(*conn_, "ticks",
                                   {.start = StartPosition::Committed(), .group = "adm"},
                                   [&](const ReceivedMessage& m) { seen.insert({m.partition, m.offset}); });
  ASSERT_TRUE(sc.ok()) << sc.status();
  (void)conn_->PollUntil([&] { return seen.size() >= 5; }, absl::Seconds(3));
  (void)conn_->PollUntil([&] { return false; }, absl::Milliseconds(100));  // nothing more comes
  EXPECT_EQ(seen, (std::set<std::pair<uint16_t, uint64_t>>{{0, 1}, {1, 0}, {1, 1}, {2, 0}, {2, 1}}));
}

TEST_F(InteropTest, ConsumerGroupErrors) {
  GroupConsumerOptions o;
  o.group = "g";
  auto w = GroupConsumer::Create(*conn_, "jobs", o, [](const ReceivedMessage&) {});
  EXPECT_EQ(ErrcOf(w.status()), Errc::kWrongQueueType) << w.status();
  o.group = "";
  auto e = GroupConsumer::Create(*conn_, "ticks", o, [](const ReceivedMessage&) {});
  EXPECT_TRUE(absl::IsInvalidArgument(e.status())) << e.status();
  o.group = "g";
  o.session_timeout = absl::Milliseconds(50);
  auto s = GroupConsumer::Create(*conn_, "ticks", o, [](const ReceivedMessage&) {});
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
  auto d = DescribeGroup(*conn_, "ticks", "never-used");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->generation, 0u);
  EXPECT_TRUE(d->committed.empty());
  auto u = DescribeGroup(*conn_, "nope", "g");
  EXPECT_EQ(ErrcOf(u.status()), Errc::kUnknownQueue) << u.status();
}

// ---- request/reply -------------------------------------------------------------------------------

TEST_F(InteropTest, RequestReplyThroughATemporaryInbox) {
  auto requester_conn = Connect(server_.address());
  auto rq = Requester::Create(*requester_conn);
  ASSERT_TRUE(rq.ok()) << rq.status();
  EXPECT_EQ((*rq)->reply_to().substr(0, 6), "inbox:");
  auto rs = Responder::Create(*conn_, "jobs", [](const ReceivedMessage& m) -> absl::StatusOr<std::string> {
    if (m.payload_view() == "fail") return absl::InternalError("handler failed");
    return "re:" + std::string(m.payload_view());
  }, {.retry_delay = absl::Milliseconds(50)});
  ASSERT_TRUE(rs.ok()) << rs.status();

  // Three requests in flight at once; the responder answers them in one batch.
  std::map<std::string, std::string> replies;
  for (std::string q : {"a", "b", "c"}) {
    ASSERT_TRUE((*rq)->RequestAsync("jobs", AsBytes(q), absl::Seconds(5),
                                    [&replies, q](absl::StatusOr<const ReceivedMessage*> r) {
                                      ASSERT_TRUE(r.ok()) << r.status();
                                      replies[q] = std::string((*r)->payload_view());
                                    })
                    .ok());
  }
  for (int i = 0; i < 200 && replies.size() < 3; ++i) {
    (void)requester_conn->Poll(absl::Milliseconds(1));
    auto n = (*rs)->Serve(absl::Milliseconds(10));
    ASSERT_TRUE(n.ok()) << n.status();
  }
  EXPECT_EQ(replies, (std::map<std::string, std::string>{{"a", "re:a"}, {"b", "re:b"}, {"c", "re:c"}}));
  EXPECT_EQ((*rs)->stats().replied, 3u);
  EXPECT_EQ((*rq)->stats().replies, 3u);
  EXPECT_EQ((*rq)->pending(), 0u);

  // A handler failure hands the request back; with nobody answering, the requester times out.
  bool timed_out = false;
  ASSERT_TRUE((*rq)->RequestAsync("jobs", AsBytes("fail"), absl::Milliseconds(300),
                                  [&](absl::StatusOr<const ReceivedMessage*> r) {
                                    timed_out = absl::IsDeadlineExceeded(r.status());
                                  })
                  .ok());
  for (int i = 0; i < 100 && !timed_out; ++i) {
    (void)requester_conn->Poll(absl::Milliseconds(5));
    (void)(*rs)->Serve(absl::ZeroDuration());
  }
  EXPECT_TRUE(timed_out);
  EXPECT_GE((*rs)->stats().failed, 1u);
  EXPECT_EQ((*rq)->stats().timeouts, 1u);

  // The requester goes away: its inbox is closed, and a request still queued for it is deleted
  // by the responder without an answer ("orphaned").
  const uint64_t orphaned_before = (*rs)->stats().orphaned;
  {
    auto gone = Requester::Create(*requester_conn);
    ASSERT_TRUE(gone.ok());
    ASSERT_TRUE((*gone)->RequestAsync("jobs", AsBytes("late"), absl::Seconds(5),
                                      [](absl::StatusOr<const ReceivedMessage*>) {})
                    .ok());
    (void)requester_conn->PollUntil([&] { return false; }, absl::Milliseconds(50));  // sent
  }  // ~Requester: CLOSE
  (void)requester_conn->PollUntil([&] { return false; }, absl::Milliseconds(50));
  for (int i = 0; i < 100 && (*rs)->stats().orphaned == orphaned_before; ++i) {
    (void)(*rs)->Serve(absl::Milliseconds(20));  // "fail" comes back too; it fails again
  }
  EXPECT_EQ((*rs)->stats().orphaned, orphaned_before + 1);
}

TEST_F(InteropTest, ReplyToAnUnknownInboxIsRefused) {
  p::MessageSpec m;
  const std::string payload = "x";
  m.payload = AsBytes(payload);
  const uint64_t rid = conn_->NextRequestId();
  auto n = p::EncodeReply(conn_->scratch(), conn_->Ids(rid), 0x1234, m);
  ASSERT_TRUE(n.has_value());
  std::optional<Errc> got;
  conn_->Call(std::span<const std::byte>(conn_->scratch().data(), *n), {},
              [&](const p::FrameView* f, const absl::Status&) {
                if (f != nullptr) {
                  if (auto r = p::DecodeResultFrame(*f); r && r->items.size() == 1) {
                    got = r->items[0].errc;
                  }
                }
                return true;
              });
  ASSERT_TRUE(conn_->PollUntil([&] { return got.has_value(); }, absl::Seconds(3)).ok());
  EXPECT_EQ(got, Errc::kUnknownQueue);
}

}  // namespace
}  // namespace sluice::client::testing
