// The file store: versions and compare-and-swap, damage detection, and crash safety — a crash
// after each step of a Save leaves the old or the new document, never a torn one.
#include "control/file_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/unit/control/test_util.h"

namespace sluice::control {
namespace {

using testing::MakeTempDir;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Spit(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::optional<StoredDocument> LoadFresh(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<FileStore>> store = FileStore::Open(dir);
  EXPECT_TRUE(store.ok());
  absl::StatusOr<std::optional<StoredDocument>> doc = (*store)->Load();
  EXPECT_TRUE(doc.ok()) << doc.status();
  return doc.ok() ? *doc : std::nullopt;
}

TEST(FileStore, VersionsAndCompareAndSwap) {
  const std::string dir = MakeTempDir() + "/a/b/meta";  // parents are created
  absl::StatusOr<std::unique_ptr<FileStore>> store = FileStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  FileStore& s = **store;
  absl::StatusOr<std::optional<StoredDocument>> empty = s.Load();
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());

  EXPECT_EQ(*s.Save(0, "one"), 1u);
  EXPECT_EQ(s.Save(0, "again").status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(*s.Save(1, "two"), 2u);
  EXPECT_EQ(s.Save(1, "stale").status().code(), absl::StatusCode::kAborted);

  std::optional<StoredDocument> doc = LoadFresh(dir);
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ(doc->version, 2u);
  EXPECT_EQ(doc->body, "two");
  EXPECT_EQ(access((dir + "/catalog.tmp").c_str(), F_OK), -1);  // renamed away
  EXPECT_EQ(Slurp(dir + "/catalog").rfind("sluice-metadata 1 version=2 bytes=3 crc32c=", 0), 0u);

  // Another instance (a restart) continues from the stored version.
  absl::StatusOr<std::unique_ptr<FileStore>> again = FileStore::Open(dir);
  EXPECT_EQ((*again)->Save(1, "x").status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(*(*again)->Save(2, "three"), 3u);
}

TEST(FileStore, DamageIsReportedNotRead) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE((*FileStore::Open(dir))->Save(0, "{\"queues\": []}").ok());
  const std::string good = Slurp(dir + "/catalog");
  struct Case {
    const char* what;
    std::string bytes;
  };
  std::string flipped = good;
  flipped[flipped.size() - 3] ^= 0x20;
  const Case cases[] = {
      {"flipped body byte", flipped},
      {"truncated", good.substr(0, good.size() - 2)},
      {"extended", good + "x"},
      {"no header", "{\"queues\": []}"},
      {"empty", ""},
      {"bad header", "sluice-metadata 1 version=x\n{}"},
  };
  for (const Case& c : cases) {
    Spit(dir + "/catalog", c.bytes);
    absl::StatusOr<std::optional<StoredDocument>> doc = (*FileStore::Open(dir))->Load();
    EXPECT_EQ(doc.status().code(), absl::StatusCode::kDataLoss) << c.what;
    // A store that cannot read its document refuses to overwrite it.
    EXPECT_EQ((*FileStore::Open(dir))->Save(1, "new").status().code(),
              absl::StatusCode::kDataLoss) << c.what;
  }
}

TEST(FileStore, LeftoverTempFileIsIgnored) {
  const std::string dir = MakeTempDir();
  ASSERT_TRUE((*FileStore::Open(dir))->Save(0, "old").ok());
  Spit(dir + "/catalog.tmp", "sluice-metadata 1 version=2 bytes=100 crc32c=00000000\nhalf");
  std::optional<StoredDocument> doc = LoadFresh(dir);
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ(doc->body, "old");
  EXPECT_EQ((*FileStore::Open(dir))->Save(1, "new").value_or(0), 2u);
  EXPECT_EQ(LoadFresh(dir)->body, "new");
}

// For each step of a Save: crash right after it, then "restart" (a new FileStore) and load.
// Before the rename the old document must be there, from the rename on the new one; never
// anything else. Then the restarted store saves again as usual.
TEST(FileStore, CrashAfterEveryStepLeavesOldOrNew) {
  const std::string old_body(5000, 'o');   // big enough that "half written" is a real torn file
  const std::string new_body(7000, 'n');
  for (int step = 0; step < kSaveStepCount; ++step) {
    SCOPED_TRACE(ToString(static_cast<SaveStep>(step)));
    const std::string dir = MakeTempDir();
    ASSERT_TRUE((*FileStore::Open(dir))->Save(0, old_body).ok());

    std::vector<SaveStep> seen;
    bool crashed = false;
    auto crashing = FileStore::Open(dir, [&seen, &crashed, step](SaveStep s) {
      if (crashed) return true;
      seen.push_back(s);
      crashed = static_cast<int>(s) == step;
      return !crashed;
    });
    ASSERT_TRUE(crashing.ok());
    absl::StatusOr<uint64_t> r = (*crashing)->Save(1, new_body);
    if (step == static_cast<int>(SaveStep::kDirSynced)) {
      // The last hook runs after the work is done; the failure is reported all the same.
      EXPECT_FALSE(r.ok());
    } else {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
    }
    ASSERT_EQ(seen.size(), static_cast<size_t>(step + 1));  // steps ran in order, stopped there
    for (int i = 0; i <= step; ++i) EXPECT_EQ(seen[i], static_cast<SaveStep>(i));

    std::optional<StoredDocument> doc = LoadFresh(dir);
    ASSERT_TRUE(doc.has_value());
    if (step < static_cast<int>(SaveStep::kRenamed)) {
      EXPECT_EQ(doc->version, 1u);
      EXPECT_EQ(doc->body, old_body);
    } else {
      EXPECT_EQ(doc->version, 2u);
      EXPECT_EQ(doc->body, new_body);
    }

    // The crashed instance does not trust its idea of the version: it reloads.
    absl::StatusOr<uint64_t> next = (*crashing)->Save(doc->version, "after");
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(*next, doc->version + 1);
    // And a restarted store goes on from what it found.
    std::optional<StoredDocument> latest = LoadFresh(dir);
    auto restarted = FileStore::Open(dir);
    ASSERT_TRUE((*restarted)->Load().ok());
    absl::StatusOr<uint64_t> v = (*restarted)->Save(latest->version, "restarted");
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(LoadFresh(dir)->body, "restarted");
  }
}

TEST(FileStore, CrashDuringTheFirstSaveLeavesNothingOrTheDocument) {
  for (int step = 0; step < kSaveStepCount; ++step) {
    SCOPED_TRACE(ToString(static_cast<SaveStep>(step)));
    const std::string dir = MakeTempDir();
    auto crashing = FileStore::Open(dir, [step](SaveStep s) { return static_cast<int>(s) != step; });
    EXPECT_FALSE((*crashing)->Save(0, "first").ok());
    std::optional<StoredDocument> doc = LoadFresh(dir);
    if (step < static_cast<int>(SaveStep::kRenamed)) {
      EXPECT_FALSE(doc.has_value());
    } else {
      ASSERT_TRUE(doc.has_value());
      EXPECT_EQ(doc->body, "first");
    }
  }
}

TEST(FileStore, FileInPlaceOfTheDirectory) {
  const std::string dir = MakeTempDir();
  Spit(dir + "/file", "x");
  absl::StatusOr<std::unique_ptr<FileStore>> s = FileStore::Open(dir + "/file");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace sluice::control
