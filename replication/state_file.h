// The replication state a box keeps in its first data directory (docs/replication.md §6):
// its epoch, its role when a promotion or a fencing changed it from the layout's, and where its
// epoch began in each partition's log. Written whole, atomically: temporary file, fsync, rename,
// directory fsync — a crash leaves the old state or the new one, never a mix.
//
//   epoch 4
//   role primary                 (absent: the layout's [replication] role)
//   pending_starts 1             (promoted: record the epoch starts at the next start)
//   start 3 0 1200               (queue 3 partition 0: epoch 4 began at offset 1200)
//   channel_epoch 1 3            (standby: replication channel 1 follows epoch 3 so far)
//
// A standby with several replication channels (docs/replication.md §1) adopts a new epoch per
// channel, each after cutting its own partitions' divergent tails: `epoch` is the highest, and a
// channel listed starts at its own (one not listed at `epoch`).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace sluice::replication {

struct ReplicationState {
  uint64_t epoch = 0;
  std::optional<std::string> role;  // "primary" or "standby"
  bool pending_starts = false;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> starts;
  std::map<uint32_t, uint64_t> channel_epochs;

  uint64_t EpochOfChannel(uint32_t channel) const {
    auto it = channel_epochs.find(channel);
    return it == channel_epochs.end() ? epoch : it->second;
  }

  uint64_t StartOf(uint32_t queue, uint32_t partition) const {
    auto it = starts.find({queue, partition});
    return it == starts.end() ? 0 : it->second;
  }
  bool operator==(const ReplicationState&) const = default;
};

// The file's path in a data directory.
std::string StatePath(const std::string& data_dir);
// A missing file is the default state (epoch 0, the layout's role). A malformed one is an error
// naming the line.
absl::StatusOr<ReplicationState> LoadState(const std::string& path);
absl::Status SaveState(const std::string& path, const ReplicationState& state);

}  // namespace sluice::replication
