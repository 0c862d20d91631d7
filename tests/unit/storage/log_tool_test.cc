// Runs the sluice-log binary (path in $SLUICE_LOG, set by meson) on a log this test writes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "storage/segment.h"
#include "storage/uring_writer.h"
#include "tests/unit/storage/test_util.h"

namespace sluice::storage {
namespace {

using testing::Producer;
using testing::TempDir;

struct ToolRun {
  int status;
  std::string out;
};

ToolRun Tool(const std::string& args) {
  const char* tool = std::getenv("SLUICE_LOG");
  EXPECT_NE(tool, nullptr) << "run through meson test (sets SLUICE_LOG)";
  ToolRun r{-1, ""};
  if (tool == nullptr) return r;
  FILE* p = ::popen((std::string(tool) + " " + args + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

void Write(const std::string& dir, PartitionId id) {
  Producer prod;
  WriterConfig c;
  c.segment_bytes = 128 << 10;
  c.buffers = prod.pool.region();
  auto w = UringWriter::Create(c);
  auto h = (*w)->OpenPartition({dir, id, shard::Durability::kWrite, 0}, LogState{});
  ASSERT_TRUE(h.ok());
  for (int b = 0; b < 50; ++b) {
    prod.Batch(3, 200);
    prod.Flush(**w, *h);
  }
}

TEST(LogTool, VerifyDumpAndCorruption) {
  TempDir tmp;
  Write(tmp.path(), {1, 0});
  Write(tmp.path(), {1, 1});
  ToolRun v = Tool("verify " + tmp.path());
  EXPECT_EQ(v.status, 0) << v.out;
  EXPECT_NE(v.out.find("OK: 2 partition(s), 100 batches"), std::string::npos) << v.out;

  ToolRun d = Tool("dump " + tmp.path() + "/1-1");
  EXPECT_EQ(d.status, 0) << d.out;
  EXPECT_NE(d.out.find("partition 1-1"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("segment 00000000000000000000: offsets [0, "), std::string::npos) << d.out;
  ToolRun rec = Tool("dump " + tmp.path() + "/1-0 --records");
  EXPECT_NE(rec.out.find("offset 149 ts "), std::string::npos) << rec.out;

  // Corrupt batch 10 of partition 1-1.
  auto dir = PartitionDir::Open(tmp.path(), {1, 1}, false);
  const std::string path = dir->LogPath(0);
  int fd = ::open(path.c_str(), O_WRONLY);
  const char x = 0x5a;
  ASSERT_EQ(::pwrite(fd, &x, 1, 10 * 4096 + 200), 1);
  ::close(fd);
  ToolRun bad = Tool("verify " + tmp.path());
  EXPECT_EQ(bad.status, 1) << bad.out;
  EXPECT_NE(bad.out.find("CORRUPT " + path + " offset 30 position 40960: bad-crc"),
            std::string::npos) << bad.out;
  EXPECT_EQ(Tool("frobnicate " + tmp.path()).status, 2);
}

}  // namespace
}  // namespace sluice::storage
