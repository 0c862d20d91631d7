// The storage shell's lcore-side promises (docs/storage.md §3, §10), without DPDK or a frontend:
// a partition prepared off the lcore is adopted with no blocking file call (opens_off_lcore), the
// ack logs write and sync through the ack ring (ack_writes_async, ack_syncs_done), an ack-log
// write error fails the partition, reported through Poll like a failed segment write, and a
// deleted queue's partition directory is removed by the file worker, not on the lcore.
#include "dataplane/storage_shell.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/unit/storage/gate_job.h"

namespace sluice::dataplane {
namespace {

struct TempDir {
  TempDir() {
    std::string tmpl = "/tmp/sluice-shell-test-XXXXXX";
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

StorageShellConfig Config(const std::string& dir) {
  StorageShellConfig c;
  c.storage.data_dirs = {dir};
  c.storage.uring_depth = 64;
  c.storage.segment_bytes = 1 << 20;
  c.epoch = 1;
  return c;
}

absl::StatusOr<RecoveredLog> OpenEmpty(StorageShell& shell, uint32_t q, uint32_t p) {
  return shell.Open(
      q, p, shard::Durability::kWrite,
      [](const RecoveredMessage&) { return absl::OkStatus(); },
      [](std::string_view, uint64_t) {});
}

struct Report {
  uint32_t queue, partition;
  Errc errc;
  std::string failure;
};

// Runs passes (FlushAcks + Poll, as Frontend::Service does) until `done` or 10 s.
bool Passes(StorageShell& shell, std::vector<Report>* reports, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    shell.Poll([&](uint32_t q, uint32_t p, shard::DurableOffset, Errc e, std::string_view why) {
      reports->push_back({q, p, e, std::string(why)});
    });
    shell.FlushAcks();
  }
  return true;
}

storage::AckState LoadAcks(const std::string& dir, uint32_t q, uint32_t p) {
  auto pd = storage::PartitionDir::Open(dir, storage::PartitionId{q, p}, false);
  EXPECT_TRUE(pd.ok());
  storage::AckLoadReport rep;
  auto st = storage::AckLog::Load(pd->AckLogPath(), &rep);
  EXPECT_TRUE(st.ok());
  return st.ok() ? *st : storage::AckState{};
}

TEST(StorageShell, ARuntimePartitionIsAdoptedAndItsAcksGoThroughTheRing) {
  TempDir tmp;
  const StorageShellConfig config = Config(tmp.path);
  StartupRecovery store;
  store.PrepareAll(config.storage, {{3, 0}});  // the control thread's part
  auto shell = StorageShell::Create(config, &store);
  ASSERT_TRUE(shell.ok()) << shell.status();
  StorageShell& s = **shell;
  auto log = OpenEmpty(s, 3, 0);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(log->next_offset, 0u);
  EXPECT_EQ(s.stats().opens_off_lcore.load(), 1u);
  EXPECT_EQ(s.stats().opens_on_lcore.load(), 0u);
  EXPECT_EQ(s.writer_stats().first_segments, 1u);  // counted, though created by the control thread

  std::vector<Report> reports;
  for (uint64_t o = 0; o < 10; ++o) s.Removed(3, 0, o);
  ASSERT_TRUE(Passes(s, &reports, [&] {
    return s.stats().ack_writes_async.load() >= 1 && !s.AwaitingKernel();
  }));
  // A purge: its mark's write and fdatasync go through the ring; the lcore does not wait.
  ASSERT_TRUE(s.Purged(3, 0, 20).ok());
  EXPECT_EQ(s.stats().ack_sync_requests.load(), 1u);
  ASSERT_TRUE(Passes(s, &reports, [&] { return s.stats().ack_syncs_done.load() == 1; }));
  EXPECT_GE(s.stats().ack_syncs_async.load(), 1u);
  EXPECT_EQ(s.stats().ack_flush_errors.load(), 0u);
  EXPECT_EQ(s.stats().ack_write_waits.load(), 0u);
  EXPECT_TRUE(reports.empty());
  EXPECT_EQ(LoadAcks(tmp.path, 3, 0).deleted_below, 20u);

  // Nothing prepared for this one, and the worker runs (FlushAcks was called): opened on the
  // spot with blocking calls, and counted as such.
  ASSERT_TRUE(OpenEmpty(s, 3, 1).ok());
  EXPECT_EQ(s.stats().opens_on_lcore.load(), 1u);
  s.Close(3, 0, false);
  s.Close(3, 1, false);
}

// A reader of an ack-log file (a replication ack snapshot) notes what was appended when it asks
// (AckLogEnd) and looks, pass by pass, whether the file holds it (AckLogWritten): the writes go
// through the ring, and nothing waits for them.
TEST(StorageShell, AnAckLogsReaderLooksForItsEndPassByPassWithoutWaiting) {
  TempDir tmp;
  const StorageShellConfig config = Config(tmp.path);
  StartupRecovery store;
  store.PrepareAll(config.storage, {{3, 0}});
  auto shell = StorageShell::Create(config, &store);
  ASSERT_TRUE(shell.ok()) << shell.status();
  StorageShell& s = **shell;
  ASSERT_TRUE(OpenEmpty(s, 3, 0).ok());
  for (uint64_t o = 0; o < 10; ++o) s.Removed(3, 0, o);
  const uint64_t end = s.AckLogEnd(3, 0);
  EXPECT_GT(end, 0u);
  EXPECT_FALSE(s.AckLogWritten(3, 0, end));  // buffered only: the pass's FlushAcks writes it
  std::vector<Report> reports;
  ASSERT_TRUE(Passes(s, &reports, [&] { return s.AckLogWritten(3, 0, end); }));
  EXPECT_EQ(LoadAcks(tmp.path, 3, 0).deleted.size() + LoadAcks(tmp.path, 3, 0).deleted_below, 10u);
  // Later entries move the end, not what was asked for.
  s.Removed(3, 0, 10);
  EXPECT_GT(s.AckLogEnd(3, 0), end);
  EXPECT_TRUE(s.AckLogWritten(3, 0, end));
  // A partition without an ack log here never holds a reader up.
  EXPECT_EQ(s.AckLogEnd(9, 9), 0u);
  EXPECT_TRUE(s.AckLogWritten(9, 9, 1));
  EXPECT_EQ(s.stats().ack_write_waits.load(), 0u);
  EXPECT_TRUE(reports.empty());
  ASSERT_TRUE(Passes(s, &reports, [&] { return !s.AwaitingKernel(); }));
  s.Close(3, 0, false);
}

TEST(StorageShell, AnAckLogWriteErrorFailsThePartitionAndIsReportedOnce) {
  TempDir tmp;
  StorageShellConfig config = Config(tmp.path);
  config.fault = StorageFault{5, 0, 1, EIO, /*acks=*/true};  // after one good ack write
  StartupRecovery store;
  store.PrepareAll(config.storage, {{5, 0}, {5, 1}});
  auto shell = StorageShell::Create(config, &store);
  ASSERT_TRUE(shell.ok()) << shell.status();
  StorageShell& s = **shell;
  ASSERT_TRUE(OpenEmpty(s, 5, 0).ok());
  ASSERT_TRUE(OpenEmpty(s, 5, 1).ok());
  EXPECT_EQ(s.stats().opens_off_lcore.load(), 2u);
  std::vector<Report> reports;
  s.Removed(5, 0, 0);
  s.Removed(5, 1, 0);
  ASSERT_TRUE(Passes(s, &reports, [&] { return !s.AwaitingKernel(); }));
  EXPECT_TRUE(reports.empty());
  // The next write of partition 0's ack log fails: the partition fails, once, with the reason.
  s.Removed(5, 0, 1);
  s.Removed(5, 1, 1);
  ASSERT_TRUE(Passes(s, &reports, [&] { return !reports.empty() && !s.AwaitingKernel(); }));
  s.FlushAcks();
  s.Poll([&](uint32_t q, uint32_t p, shard::DurableOffset, Errc e, std::string_view why) {
    reports.push_back({q, p, e, std::string(why)});
  });
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].queue, 5u);
  EXPECT_EQ(reports[0].partition, 0u);
  EXPECT_EQ(reports[0].errc, Errc::kStorageFailed);
  EXPECT_NE(reports[0].failure.find("ack log write"), std::string::npos) << reports[0].failure;
  EXPECT_EQ(s.stats().ack_failures.load(), 1u);
  EXPECT_EQ(s.stats().failed.load(), 1u);
  EXPECT_GE(s.stats().ack_flush_errors.load(), 1u);
  // Never retried-and-forgotten: a purge of it is refused, later deletes are counted as lost;
  // the other partition keeps logging.
  EXPECT_FALSE(s.Purged(5, 0, 9).ok());
  ASSERT_TRUE(s.Purged(5, 1, 9).ok());
  ASSERT_TRUE(Passes(s, &reports, [&] { return s.stats().ack_syncs_done.load() == 1; }));
  EXPECT_EQ(LoadAcks(tmp.path, 5, 1).deleted_below, 9u);
  EXPECT_FALSE(LoadAcks(tmp.path, 5, 0).IsDeleted(1));
  s.Close(5, 0, false);
  s.Close(5, 1, false);
}

TEST(StorageShell, ADeletedPartitionsDirectoryIsRemovedOffTheLcore) {
  TempDir tmp;
  StorageShellConfig config = Config(tmp.path);
  StartupRecovery store;
  store.PrepareAll(config.storage, {{6, 0}, {6, 1}});
  auto shell = StorageShell::Create(config, &store);
  ASSERT_TRUE(shell.ok()) << shell.status();
  StorageShell& s = **shell;
  ASSERT_TRUE(OpenEmpty(s, 6, 0).ok());
  ASSERT_TRUE(OpenEmpty(s, 6, 1).ok());
  auto dir_of = [&](uint32_t p) {
    auto d = storage::PartitionDir::Open(DataDirOf(config.storage, 6, p),
                                         storage::PartitionId{6, p}, false);
    EXPECT_TRUE(d.ok());
    return d.ok() ? d->path() : std::string();
  };
  const std::string dir0 = dir_of(0), dir1 = dir_of(1);
  ASSERT_TRUE(std::filesystem::exists(dir0));
  s.Removed(6, 0, 0);  // an ack-log entry in the ring when the partition closes
  // The worker is busy (a slow disk): closing the deleted partition returns anyway, and the
  // lcore's passes go on while its directory is still there.
  auto hold = std::make_shared<storage::testing::GateJob>();
  ASSERT_TRUE(s.file_worker().Submit(hold));
  s.Close(6, 0, /*remove=*/true);
  EXPECT_EQ(s.removals_pending(), 1u);
  std::vector<Report> reports;
  for (int i = 0; i < 100; ++i) {
    s.Poll([&](uint32_t q, uint32_t p, shard::DurableOffset, Errc e, std::string_view why) {
      reports.push_back({q, p, e, std::string(why)});
    });
    s.FlushAcks();
  }
  EXPECT_TRUE(std::filesystem::exists(dir0)) << "removed on the lcore";
  EXPECT_EQ(s.removals_pending(), 1u);
  EXPECT_EQ(s.stats().dirs_removed.load(), 0u);
  // Released: the next passes see it done and count it; the other partition is untouched.
  hold->Release();
  ASSERT_TRUE(Passes(s, &reports, [&] { return s.removals_pending() == 0; }));
  EXPECT_FALSE(std::filesystem::exists(dir0));
  EXPECT_TRUE(std::filesystem::exists(dir1));
  EXPECT_EQ(s.stats().dirs_removed.load(), 1u);
  EXPECT_EQ(s.stats().dir_removal_errors.load(), 0u);
  EXPECT_TRUE(reports.empty());
  // A removal still with the worker when the shell goes is completed, not abandoned.
  auto hold2 = std::make_shared<storage::testing::GateJob>();
  ASSERT_TRUE(s.file_worker().Submit(hold2));
  s.Close(6, 1, /*remove=*/true);
  EXPECT_TRUE(std::filesystem::exists(dir1));
  hold2->Release();
  shell->reset();
  EXPECT_FALSE(std::filesystem::exists(dir1));
}

}  // namespace
}  // namespace sluice::dataplane
