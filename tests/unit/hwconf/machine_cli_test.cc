// `sluicectl hwconf check|suggest`: exit status, one line per finding, --json, --out. Most tests
// call RunHwconfCli in-process; the last ones run the sluicectl binary (SLUICECTL_EXE, set by
// meson; SKIP without it) to see that the dispatch reaches it.
#include "hwconf/machine_cli.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/unit/hwconf/machine_fixture.h"

namespace sluice::hwconf {
namespace {

struct Result {
  int status;
  std::string out, err;
};

std::vector<std::string> On(std::string_view fixture) {
  return {"--topology", test::FixtureDir(fixture) + "/topology.xml", "--root",
          test::FixtureDir(fixture) + "/root"};
}

Result Cli(std::vector<std::string> args, std::string_view fixture = "", bool json = false) {
  if (!fixture.empty()) {
    for (std::string& a : On(fixture)) args.push_back(a);
  }
  std::ostringstream out, err;
  const int status = RunHwconfCli(args, json, out, err);
  return {status, out.str(), err.str()};
}

std::string Shipped(std::string_view name) {
  return std::string(SLUICE_SOURCE_DIR) + "/hwconf/" + std::string(name);
}

std::string WriteTemp(std::string_view name, std::string_view text) {
  const std::string path = testing::TempDir() + "/" + std::string(name);
  std::ofstream(path) << text;
  return path;
}

TEST(HwconfCliTest, CleanLayoutExitsZero) {
  const Result r = Cli({"check", Shipped("tap.toml")}, "vm-2core");
  EXPECT_EQ(r.status, kCliOk) << r.out << r.err;
  EXPECT_TRUE(r.out.ends_with("(2 CPUs, 1 NUMA node): 0 errors, 0 warnings\n")) << r.out;
}

TEST(HwconfCliTest, WarningsOnlyExitOne) {
  const std::string path = WriteTemp("cli_warn.toml", test::ServerWith("socket_mem_mb = [1024, 0]",
                                                                       "socket_mem_mb = [1024, 0]\nlcore_cpus = \"2@4\""));
  const Result r = Cli({"check", path}, "server-2s");
  EXPECT_EQ(r.status, kCliWarnings) << r.out << r.err;
  EXPECT_NE(r.out.find("warning: worker lcore 2 polls (idle = \"poll\") on CPU 4"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(": 0 errors, 2 warnings\n"), std::string::npos) << r.out;
}

TEST(HwconfCliTest, ErrorsExitTwoOneLinePerFinding) {
  const Result r = Cli({"check", Shipped("examples/nic-2port.toml")}, "vm-2core");
  EXPECT_EQ(r.status, kCliErrors) << r.out << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int findings = 0;
  while (std::getline(lines, line)) {
    if (line.find(" errors, ") != std::string::npos) continue;  // the summary
    EXPECT_TRUE(test::IsFindingLine(line)) << line;
    ++findings;
  }
  EXPECT_GE(findings, 5);
}

TEST(HwconfCliTest, InvalidLayoutIsAnErrorFinding) {
  const std::string path = WriteTemp("cli_invalid.toml", test::ServerWith("id = 2", "id = 0"));
  const Result r = Cli({"check", path}, "server-2s");
  EXPECT_EQ(r.status, kCliErrors);
  EXPECT_NE(r.out.find("error: " + path + ":"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("is the main lcore"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("; fix: correct it"), std::string::npos) << r.out;
}

TEST(HwconfCliTest, JsonForScripts) {
  const Result r = Cli({"check", Shipped("examples/nic-2port.toml"), "--json"}, "server-2s");
  EXPECT_EQ(r.status, kCliWarnings);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["errors"], 0);
  // CPUs 4-5 of that machine are on node 1: two workers poll the client port and the link from
  // there (the link has a queue per worker, docs/replication.md §1), plus one not isolated.
  EXPECT_EQ(j["warnings"], 5);
  ASSERT_EQ(j["findings"].size(), 5u);
  for (const auto& f : j["findings"]) {
    EXPECT_EQ(f["severity"], "warning");
    for (const char* key : {"code", "what", "why", "fix"}) {
      EXPECT_FALSE(f[key].get<std::string>().empty()) << key;
    }
  }
  // sluicectl's global --json means the same.
  const Result global = Cli({"check", Shipped("examples/nic-2port.toml")}, "server-2s", true);
  EXPECT_EQ(global.out, r.out);
}

TEST(HwconfCliTest, UsageErrorsExitTwo) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {}, {"frobnicate"}, {"check"}, {"check", "a", "b"}, {"check", "a", "--ports", "x"},
           {"suggest", "file"}, {"suggest", "--ports"}, {"suggest", "--rx-queues", "0"},
           {"suggest", "--force"}, {"suggest", "--json"}, {"check", "a", "--topology"}}) {
    const Result r = Cli(args);
    EXPECT_EQ(r.status, kCliErrors) << testing::PrintToString(args);
    EXPECT_NE(r.err.find("sluicectl hwconf --help"), std::string::npos) << r.err;
  }
  const Result help = Cli({"--help"});
  EXPECT_EQ(help.status, kCliOk);
  EXPECT_NE(help.out.find("exit status of check"), std::string::npos);
}

TEST(HwconfCliTest, SuggestWritesALayoutThatChecksClean) {
  const std::string path = testing::TempDir() + "/cli_suggest.toml";
  std::remove(path.c_str());
  const Result r = Cli({"suggest", "--out", path}, "server-2s");
  EXPECT_EQ(r.status, kCliOk) << r.err;
  EXPECT_NE(r.out.find("wrote " + path), std::string::npos) << r.out;
  EXPECT_EQ(r.err, "") << "no finding on the suggested layout";
  const Result check = Cli({"check", path}, "server-2s");
  EXPECT_EQ(check.status, kCliOk) << check.out;
  // It does not overwrite a file by accident.
  const Result again = Cli({"suggest", "--out", path}, "server-2s");
  EXPECT_EQ(again.status, kCliErrors);
  EXPECT_NE(again.err.find("exists; --force"), std::string::npos) << again.err;
  EXPECT_EQ(Cli({"suggest", "--out", path, "--force"}, "server-2s").status, kCliOk);
  std::remove(path.c_str());
}

TEST(HwconfCliTest, SuggestPortsAndFindingsOnStderr) {
  const Result r = Cli({"suggest", "--ports", "0000:3b:00.0", "net_tap0,iface=sluice0",
                        "--rx-queues", "1"},
                       "server-2s");
  EXPECT_EQ(r.status, kCliOk) << r.err;
  EXPECT_NE(r.out.find("pci = \"0000:3b:00.0\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vdev = \"net_tap0,iface=sluice0\""), std::string::npos) << r.out;
  const Result bad = Cli({"suggest", "--ports", "0000:5e:00.0"}, "server-2s");
  EXPECT_EQ(bad.status, kCliErrors);
  EXPECT_NE(bad.err.find("not a PCI device"), std::string::npos) << bad.err;
}

// ---- through the sluicectl binary ------------------------------------------------------------

Result RunSluicectl(const std::string& args) {
  const char* exe = std::getenv("SLUICECTL_EXE");
  const std::string err_path = testing::TempDir() + "/sluicectl_hwconf.err";
  const std::string command = std::string("'") + exe + "' " + args + " 2>'" + err_path + "'";
  Result r{-1, "", ""};
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) r.out.append(buf.data(), n);
  const int raw = pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  std::ifstream in(err_path);
  r.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return r;
}

class SluicectlHwconfTest : public testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("SLUICECTL_EXE") == nullptr) GTEST_SKIP() << "SLUICECTL_EXE not set";
  }
  static std::string Fixture(std::string_view name) {
    std::string out;
    for (const std::string& a : On(name)) out += " '" + a + "'";
    return out;
  }
};

TEST_F(SluicectlHwconfTest, CheckAndSuggestAreReachable) {
  const Result ok = RunSluicectl("hwconf check '" + Shipped("tap.toml") + "'" + Fixture("vm-2core"));
  EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("0 errors, 0 warnings"), std::string::npos) << ok.out;
  const Result bad =
      RunSluicectl("hwconf check '" + Shipped("examples/nic-2port.toml") + "'" + Fixture("vm-2core"));
  EXPECT_EQ(bad.status, 2) << bad.out;
  const Result json = RunSluicectl("--json hwconf check '" + Shipped("examples/nic-2port.toml") +
                                   "'" + Fixture("server-2s"));
  EXPECT_EQ(json.status, 1) << json.out << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["warnings"], 5);
  const Result suggest = RunSluicectl("hwconf suggest" + Fixture("vm-2core"));
  EXPECT_EQ(suggest.status, 0) << suggest.err;
  EXPECT_TRUE(LoadLayoutFromString(suggest.out, "stdout").ok()) << suggest.out;
}

TEST_F(SluicectlHwconfTest, HelpAndUsage) {
  const Result help = RunSluicectl("help hwconf");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("usage: sluicectl hwconf check FILE"), std::string::npos) << help.out;
  const Result main_help = RunSluicectl("--help");
  EXPECT_NE(main_help.out.find("hwconf check FILE | suggest"), std::string::npos) << main_help.out;
  const Result usage = RunSluicectl("hwconf check");
  EXPECT_EQ(usage.status, 2);
}

}  // namespace
}  // namespace sluice::hwconf
