#include "storage/segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "tests/unit/storage/test_util.h"

namespace sluice::storage {
namespace {

using testing::TempDir;

SegmentIndex ThreeEntries() {
  SegmentIndex idx;
  idx.Add(MakeIndexEntry(IndexKind::kBatch, 100, 0, 1000));
  idx.Add(MakeIndexEntry(IndexKind::kBatch, 150, 65536, 2000));
  idx.Add(MakeIndexEntry(IndexKind::kBatch, 180, 131072, 2000));  // same time: still ordered
  return idx;
}

TEST(SegmentIndex, OffsetLookupFindsTheEntryAtOrBefore) {
  const SegmentIndex idx = ThreeEntries();
  EXPECT_EQ(idx.FloorOffset(99), nullptr);
  EXPECT_EQ(idx.FloorOffset(100)->position, 0u);
  EXPECT_EQ(idx.FloorOffset(149)->position, 0u);
  EXPECT_EQ(idx.FloorOffset(150)->position, 65536u);
  EXPECT_EQ(idx.FloorOffset(179)->position, 65536u);
  EXPECT_EQ(idx.FloorOffset(1 << 30)->position, 131072u);
  EXPECT_EQ(idx.Next(idx.FloorOffset(100))->offset, 150u);
  EXPECT_EQ(idx.Next(idx.FloorOffset(500)), nullptr);
}

TEST(SegmentIndex, TimeLookupStartsWhereTheFirstMatchCanBe) {
  const SegmentIndex idx = ThreeEntries();
  EXPECT_EQ(idx.FloorTimestamp(0)->offset, 100u);     // before everything: the first entry
  EXPECT_EQ(idx.FloorTimestamp(1000)->offset, 100u);
  EXPECT_EQ(idx.FloorTimestamp(1500)->offset, 100u);  // inside the first interval
  // ts 2000: records at 2000 may already be inside the first interval (its batches run up to
  // offset 150 with timestamps up to 2000), so the search starts there.
  EXPECT_EQ(idx.FloorTimestamp(2000)->offset, 100u);
  EXPECT_EQ(idx.FloorTimestamp(2001)->offset, 180u);
  EXPECT_EQ(SegmentIndex{}.FloorTimestamp(5), nullptr);
}

TEST(PartitionDir, NamesFilesByBaseOffsetAndParsesDirNames) {
  TempDir tmp;
  auto dir = PartitionDir::Open(tmp.path(), PartitionId{12, 3}, true);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(dir->path(), tmp.path() + "/12-3");
  EXPECT_EQ(dir->LogPath(52311), tmp.path() + "/12-3/00000000000000052311.log");
  EXPECT_EQ(dir->IndexPath(0), tmp.path() + "/12-3/00000000000000000000.index");
  PartitionId id;
  EXPECT_TRUE(PartitionDir::ParseDirName("7-0", &id));
  EXPECT_EQ(id, (PartitionId{7, 0}));
  EXPECT_FALSE(PartitionDir::ParseDirName("lost+found", &id));
  EXPECT_FALSE(PartitionDir::Open(tmp.path(), PartitionId{1, 1}, false).ok());
}

TEST(PartitionDir, CreateSegmentPreallocatesAndRemoveDeletesBothFiles) {
  TempDir tmp;
  auto dir = PartitionDir::Open(tmp.path(), PartitionId{1, 0}, true);
  ASSERT_TRUE(dir.ok());
  bool direct = false;
  auto fd = dir->CreateSegment(0, 1 << 20, &direct);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_TRUE(direct);  // /tmp is ext4 here
  struct stat st;
  ASSERT_EQ(::fstat(fd->get(), &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  EXPECT_GE(st.st_blocks * 512, 1 << 20);  // allocated, not sparse
  ASSERT_TRUE(dir->CreateSegment(4096, 1 << 20, &direct).ok());
  EXPECT_FALSE(dir->CreateSegment(4096, 1 << 20, &direct).ok());  // never overwrites
  auto list = dir->ListSegments();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(*list, (std::vector<uint64_t>{0, 4096}));
  ASSERT_TRUE(dir->RemoveSegment(0).ok());
  EXPECT_FALSE(std::filesystem::exists(dir->LogPath(0)));
  EXPECT_FALSE(std::filesystem::exists(dir->IndexPath(0)));
  EXPECT_EQ(*dir->ListSegments(), (std::vector<uint64_t>{4096}));
}

TEST(PartitionDir, IndexFileRoundTripsAndATornTailIsIgnored) {
  TempDir tmp;
  auto dir = PartitionDir::Open(tmp.path(), PartitionId{1, 0}, true);
  ASSERT_TRUE(dir.ok());
  SegmentIndex idx = ThreeEntries();
  idx.Seal(200, 200704, 2500);
  ASSERT_TRUE(dir->WriteIndex(100, idx).ok());
  auto back = dir->LoadIndex(100);
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->entries().size(), 3u);
  ASSERT_TRUE(back->seal().has_value());
  EXPECT_EQ(back->seal()->offset, 200u);
  // Corrupt the third entry: the load keeps the first two and no seal.
  {
    int fd = ::open(dir->IndexPath(100).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    const char junk = 0x7f;
    ASSERT_EQ(::pwrite(fd, &junk, 1, 2 * 32 + 3), 1);
    ::close(fd);
  }
  back = dir->LoadIndex(100);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->entries().size(), 2u);
  EXPECT_FALSE(back->seal().has_value());
  EXPECT_FALSE(dir->LoadIndex(999).ok());  // missing
}

}  // namespace
}  // namespace sluice::storage
