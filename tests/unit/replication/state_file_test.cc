#include "replication/state_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace sluice::replication {
namespace {

struct Dir {
  Dir() {
    std::string t = "/tmp/sluice-repl-state-XXXXXX";
    path = mkdtemp(t.data());
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string path;
};

TEST(StateFile, MissingIsDefault) {
  Dir d;
  auto st = LoadState(StatePath(d.path));
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(*st, ReplicationState{});
}

TEST(StateFile, RoundTrip) {
  Dir d;
  ReplicationState s;
  s.epoch = 7;
  s.role = "primary";
  s.pending_starts = true;
  s.starts[{3, 1}] = 1200;
  ASSERT_TRUE(SaveState(StatePath(d.path), s).ok());
  auto back = LoadState(StatePath(d.path));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(back->StartOf(3, 1), 1200u);
  EXPECT_EQ(back->StartOf(3, 0), 0u);
  EXPECT_FALSE(std::filesystem::exists(StatePath(d.path) + ".tmp"));
}

TEST(StateFile, ChannelEpochsRoundTrip) {
  Dir d;
  ReplicationState s;
  s.epoch = 5;
  s.role = "standby";
  s.channel_epochs[0] = 5;
  s.channel_epochs[1] = 4;  // channel 1 has not cut its tails for epoch 5 yet
  ASSERT_TRUE(SaveState(StatePath(d.path), s).ok());
  auto back = LoadState(StatePath(d.path));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
  EXPECT_EQ(back->EpochOfChannel(0), 5u);
  EXPECT_EQ(back->EpochOfChannel(1), 4u);
  EXPECT_EQ(back->EpochOfChannel(2), 5u);  // not listed: the box's epoch
  std::ofstream(StatePath(d.path)) << "epoch 3\nchannel_epoch 1\n";
  EXPECT_FALSE(LoadState(StatePath(d.path)).ok());
}

TEST(StateFile, MalformedNamesTheLine) {
  Dir d;
  std::ofstream(StatePath(d.path)) << "epoch 3\nrole king\n";
  auto st = LoadState(StatePath(d.path));
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.status().message()).find(":2:"), std::string::npos) << st.status();
}

}  // namespace
}  // namespace sluice::replication
