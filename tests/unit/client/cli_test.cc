// Runs the `sluice` binary (path in $SLUICE_CLI_BINARY, set by meson) against the fake server and
// checks output and exit codes.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "protocol/crc32c.h"
#include "tests/unit/client/fake_server.h"
#include "tests/unit/client/test_util.h"

namespace sluice::client::testing {
namespace {

struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("SLUICE_CLI_BINARY");
    if (bin == nullptr || access(bin, X_OK) != 0) GTEST_SKIP() << "SLUICE_CLI_BINARY not set";
    bin_ = bin;
    server_ = std::make_unique<FakeServer>(StandardQueues());
    dir_ = ::testing::TempDir();
  }
  // Runs `sluice --server <fake> <args>` with `stdin_text` on stdin (bounded by `timeout`).
  CliRun Sluice(const std::string& args, const std::string& stdin_text = "") {
    const std::string in = dir_ + "/cli_in", out = dir_ + "/cli_out", err = dir_ + "/cli_err";
    std::ofstream(in) << stdin_text;
    const std::string cmd = absl::StrCat("timeout 20 ", bin_, " --server ", server_->address(), " ",
                                         args, " <", in, " >", out, " 2>", err);
    const int status = std::system(cmd.c_str());
    CliRun r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = Slurp(out);
    r.err = Slurp(err);
    return r;
  }
  std::string bin_;
  std::string dir_;
  std::unique_ptr<FakeServer> server_;
};

TEST_F(CliTest, HelpAndUsage) {
  CliRun r = Sluice("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "Exit codes: 0 ok, 1 a request failed, 2 usage"));
  r = Sluice("produce --help");
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "--rate R")) << r.out;
  r = Sluice("bogus");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "unknown command 'bogus'")) << r.err;
  r = Sluice("consume orders --nonsense 1");
  EXPECT_EQ(r.code, 2);
  r = Sluice("receive jobs --max 5000");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "--max must be a number in 1..1024")) << r.err;
  r = Sluice("--help");
  for (const char* cmd : {"extend QUEUE", "redrive DLQ", "request QUEUE", "respond QUEUE",
                          "group QUEUE GROUP", "--group G"}) {
    EXPECT_TRUE(absl::StrContains(r.out, cmd)) << cmd;
  }
  r = Sluice("produce orders --header nokey");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "--header takes KEY=VALUE")) << r.err;
  r = Sluice("extend jobs 0:0000000100000001");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "extend needs --visibility-ms")) << r.err;
  r = Sluice("consume orders --group g --partition 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "the group assigns partitions")) << r.err;
  r = Sluice("consume orders --from committed");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "--from committed needs --group")) << r.err;
  r = Sluice("consume orders --group g --session-ms 50");
  EXPECT_EQ(r.code, 2);
  r = Sluice("request");
  EXPECT_EQ(r.code, 2);
}

TEST_F(CliTest, ProduceSyntheticThenConsume) {
  CliRun r = Sluice("produce orders --count 20 --size 10");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "sent 20, acked 20, errors 0, ")) << r.out;
  EXPECT_EQ(server_->LogSize("orders", 0), 20u);
  r = Sluice("consume orders --from earliest --count 20 --format offsets --timeout-ms 5000");
  EXPECT_EQ(r.code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 20u);
  EXPECT_EQ(lines[0], "0 0 xxxxxxxxxx");
  EXPECT_EQ(lines[19], "0 19 xxxxxxxxxx");
}

TEST_F(CliTest, ProduceLinesFromStdin) {
  CliRun r = Sluice("produce multi --key user-1", "alpha\nbeta\ngamma\n");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "sent 3, acked 3, errors 0")) << r.out;
  const uint16_t part = protocol::PartitionForKey("user-1", 3);
  EXPECT_EQ(server_->Payloads("multi", part), (std::vector<std::string>{"alpha", "beta", "gamma"}));
  r = Sluice(absl::StrCat("consume multi --from earliest --partition ", part, " --count 3"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "alpha\nbeta\ngamma\n");
}

TEST_F(CliTest, ProduceFailuresExitOne) {
  CliRun r = Sluice("produce small --count 2 --size 3000");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(
      r.err, "sluice: produce to 'small' partition 0: MESSAGE_TOO_LARGE: message exceeds the "
             "queue's max_message_bytes"))
      << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "sent 0, acked 0, errors 2")) << r.out;
}

TEST_F(CliTest, ConsumeCountNotReachedIsATimeout) {
  server_->Append("orders", 0, "only one");
  CliRun r = Sluice("consume orders --from earliest --count 2 --timeout-ms 200");
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out, "only one\n");
}

TEST_F(CliTest, LookupAndErrors) {
  CliRun r = Sluice("lookup multi");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "queue 'multi': id 2, stream, 3 partitions, max message 262144 bytes\n");
  r = Sluice("lookup nope");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StartsWith(
      r.err, "sluice: lookup 'nope': UNKNOWN_QUEUE: no queue with that name or id; create it first"))
      << r.err;
}

TEST_F(CliTest, ReceiveDeleteNack) {
  server_->Append("jobs", 0, "first");
  server_->Append("jobs", 0, "second");
  CliRun r = Sluice("receive jobs --max 1");
  EXPECT_EQ(r.code, 0) << r.err;
  std::vector<std::string> parts = absl::StrSplit(r.out, absl::MaxSplits('\t', 1));
  ASSERT_EQ(parts.size(), 2u) << r.out;
  const std::string receipt = parts[0];
  EXPECT_EQ(parts[1], "first\n");
  r = Sluice("delete jobs " + receipt);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "ok " + receipt + "\n");
  r = Sluice("delete jobs " + receipt);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "delete from 'jobs' partition 0 receipt " + receipt +
                                           ": UNKNOWN_RECEIPT"))
      << r.err;
  r = Sluice("delete jobs not-a-receipt");
  EXPECT_EQ(r.code, 2);
  // receive + nack: the message comes back.
  r = Sluice("receive jobs");
  parts = absl::StrSplit(r.out, absl::MaxSplits('\t', 1));
  ASSERT_EQ(parts.size(), 2u) << r.out;
  EXPECT_EQ(parts[1], "second\n");
  r = Sluice("nack jobs " + parts[0]);
  EXPECT_EQ(r.code, 0) << r.err;
  r = Sluice("receive jobs --delete");
  EXPECT_TRUE(absl::StrContains(r.out, "second")) << r.out;
  EXPECT_EQ(server_->LiveMessages("jobs", 0), 0u);
}

TEST_F(CliTest, PingAndUnreachable) {
  CliRun r = Sluice("ping --count 2");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "heartbeat reply from 127.0.0.1:")) << r.out;
  server_->SetSilent(true);
  r = Sluice("ping");
  EXPECT_EQ(r.code, 3);
  EXPECT_TRUE(absl::StrContains(r.err, "cannot reach server")) << r.err;
}

}  // namespace
}  // namespace sluice::client::testing
