// sluice-hwconf as an operator runs it: exit status and output of each command. The binary comes
// from SLUICE_HWCONF_EXE, which meson sets; without it the tests report SKIP, not PASS.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/unit/hwconf/test_util.h"

namespace {

struct ToolRun {
  int status = -1;
  std::string output;  // stdout and stderr together
};

ToolRun RunTool(const std::string& args) {
  const char* exe = std::getenv("SLUICE_HWCONF_EXE");
  ToolRun run;
  if (exe == nullptr) return run;
  const std::string command = std::string("'") + exe + "' " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) run.output.append(buf.data(), n);
  const int raw = pclose(pipe);
  run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return run;
}

class CliTest : public testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("SLUICE_HWCONF_EXE") == nullptr) GTEST_SKIP() << "SLUICE_HWCONF_EXE not set";
  }
  static std::string Source(const std::string& rel) {
    return std::string(SLUICE_SOURCE_DIR) + "/" + rel;
  }
};

TEST_F(CliTest, CheckValidLayoutPrintsSummaryAndOk) {
  const ToolRun r = RunTool("check " + Source("hwconf/tap.toml"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("EAL: sluiced -l 0,1 --main-lcore 0"), std::string::npos) << r.output;
  EXPECT_TRUE(r.output.ends_with("OK\n")) << r.output;
}

TEST_F(CliTest, CheckInvalidLayoutPrintsErrorAndExitsOne) {
  const std::string path = testing::TempDir() + "/hwconf_cli_invalid.toml";
  {
    std::ofstream out(path);
    out << sluice::hwconf::test::Edit("id = 1", "id = 0");
  }
  const ToolRun r = RunTool("check " + path);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(path + ":10: key 'lcore[0].id': lcore 0 is the main lcore"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("OK"), std::string::npos) << r.output;
  std::remove(path.c_str());
}

TEST_F(CliTest, CheckMissingFileExitsOne) {
  const ToolRun r = RunTool("check /nonexistent/layout.toml");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("cannot open"), std::string::npos) << r.output;
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  for (const char* args : {"", "check", "check a b", "frobnicate", "settings --json"}) {
    const ToolRun r = RunTool(args);
    EXPECT_EQ(r.status, 2) << "'" << args << "': " << r.output;
    EXPECT_NE(r.output.find("usage: sluice-hwconf"), std::string::npos) << r.output;
  }
}

TEST_F(CliTest, HelpExitsZero) {
  const ToolRun r = RunTool("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("check FILE"), std::string::npos) << r.output;
}

TEST_F(CliTest, SettingsPrintsTheReference) {
  const ToolRun text = RunTool("settings");
  EXPECT_EQ(text.status, 0);
  EXPECT_NE(text.output.find("ring_size = integer [16, 65536], power of two"), std::string::npos);
  const ToolRun md = RunTool("settings --markdown");
  EXPECT_EQ(md.status, 0);
  EXPECT_NE(md.output.find("| `ring_size` | integer |"), std::string::npos) << md.output;
}

TEST_F(CliTest, EalArgsOnePerLine) {
  const ToolRun r = RunTool("eal-args " + Source("hwconf/tap.toml"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(r.output.starts_with("sluiced\n-l\n0,1\n--main-lcore\n0\n")) << r.output;
}

}  // namespace
