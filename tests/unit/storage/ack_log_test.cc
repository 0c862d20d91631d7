#include "storage/ack_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/unit/storage/test_util.h"

namespace sluice::storage {
namespace {

using testing::TempDir;

TEST(AckLog, DeletesAndCommitsSurviveAReopen) {
  TempDir tmp;
  const std::string path = tmp.path() + "/acks.log";
  AckLoadReport rep;
  auto state = AckLog::Load(path, &rep);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(rep.entries, 0u);
  auto log = AckLog::Open(tmp.path(), path, *state);
  ASSERT_TRUE(log.ok()) << log.status();
  for (uint64_t o : {0, 1, 2, 5, 7}) ASSERT_TRUE(log->Delete(o));
  ASSERT_TRUE(log->Commit("billing", 40));
  ASSERT_TRUE(log->Commit("audit", 12));
  ASSERT_TRUE(log->Commit("billing", 41));
  ASSERT_TRUE(log->Flush().ok());
  ASSERT_TRUE(log->Delete(3));
  ASSERT_TRUE(log->Flush(true).ok());

  auto back = AckLog::Load(path, &rep);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(rep.entries, 1u + 5 + 3 + 1);
  EXPECT_EQ(back->deleted_below, 4u);  // 0..3 contiguous
  EXPECT_EQ(back->deleted, (std::vector<uint64_t>{5, 7}));
  EXPECT_TRUE(back->IsDeleted(2));
  EXPECT_FALSE(back->IsDeleted(4));
  EXPECT_TRUE(back->IsDeleted(7));
  EXPECT_EQ(back->commits.at("billing"), 41u);
  EXPECT_EQ(back->commits.at("audit"), 12u);

  // Reopening compacts: the file holds the state, not the history.
  auto again = AckLog::Open(tmp.path(), path, *back);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->file_bytes(), 16u + 2 * 16 + 2 * (16 + 8));
  auto third = AckLog::Load(path, &rep);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->deleted_below, 4u);
  EXPECT_EQ(third->commits.size(), 2u);
}

TEST(AckLog, APurgeMarkHidesEverythingBelowItAndSurvivesCompaction) {
  TempDir tmp;
  const std::string path = tmp.path() + "/acks.log";
  auto log = AckLog::Open(tmp.path(), path, AckState{});
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE(log->Delete(3));
  ASSERT_TRUE(log->Delete(20));
  ASSERT_TRUE(log->Commit("g", 2));
  ASSERT_TRUE(log->DeletedBelow(10));  // a purge at offset 10
  ASSERT_TRUE(log->Flush(true).ok());
  AckLoadReport rep;
  auto back = AckLog::Load(path, &rep);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->deleted_below, 10u);
  EXPECT_TRUE(back->IsDeleted(0));
  EXPECT_TRUE(back->IsDeleted(9));
  EXPECT_FALSE(back->IsDeleted(10));
  EXPECT_TRUE(back->IsDeleted(20));
  EXPECT_EQ(back->commits.at("g"), 2u);  // group offsets stay (the consumer resets from them)
  // Compaction at a log start below the mark keeps the mark.
  back->Compact(0);
  auto again = AckLog::Open(tmp.path(), path, *back);
  ASSERT_TRUE(again.ok());
  auto third = AckLog::Load(path, &rep);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->deleted_below, 10u);
  EXPECT_EQ(third->deleted, (std::vector<uint64_t>{20}));
}

TEST(AckLog, ATornTailIsIgnoredAndReported) {
  TempDir tmp;
  const std::string path = tmp.path() + "/acks.log";
  auto log = AckLog::Open(tmp.path(), path, AckState{});
  ASSERT_TRUE(log.ok());
  for (uint64_t o = 10; o < 20; ++o) ASSERT_TRUE(log->Delete(o));
  ASSERT_TRUE(log->Flush().ok());
  const uint64_t size = log->file_bytes();
  // Tear the last entry in half.
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size - 8)), 0);
  AckLoadReport rep;
  auto state = AckLog::Load(path, &rep);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(rep.bytes_cut, 8u);
  EXPECT_TRUE(state->IsDeleted(18));
  EXPECT_FALSE(state->IsDeleted(19));
}

TEST(AckLog, BufferFullAsksForAFlush) {
  TempDir tmp;
  auto log = AckLog::Open(tmp.path(), tmp.path() + "/acks.log", AckState{});
  ASSERT_TRUE(log.ok());
  uint64_t n = 0;
  while (log->Delete(n)) ++n;
  EXPECT_EQ(n, AckLog::kBufferBytes / 16);
  ASSERT_TRUE(log->Flush().ok());
  EXPECT_TRUE(log->Delete(n));
}

}  // namespace
}  // namespace sluice::storage
