#include "dataplane/stats.h"

#include <cstdio>

#include "absl/strings/str_format.h"
#include "dataplane/frame_handler.h"
#include "dataplane/storage_shell.h"
#include "dataplane/unmap_guard.h"
#include "dataplane/worker.h"

namespace sluice::dataplane {
namespace {

std::string CountersJson(const Worker& w) {
  const LcoreCounters& c = w.counters();
  std::string s = absl::StrFormat(
      "{\"worker\": %u, \"lcore\": %d, \"rx_packets\": %u, \"rx_bytes\": %u, \"tx_packets\": %u, "
      "\"tx_bytes\": %u, \"arp_replies\": %u, \"icmp_echo_replies\": %u, \"frames\": %u, "
      "\"handoffs_out\": %u, \"handoffs_in\": %u, \"throttled\": %u, "
      "\"error_replies\": %u, \"idle_sleeps\": %u, \"kernel_yields\": %u, \"loops\": %u, "
      "\"rx_bursts\": %u, \"busy_ns\": %u, \"loop_ns\": %u, \"drops\": {",
      w.index(), w.lcore_id(), c.rx_packets.load(), c.rx_bytes.load(), c.tx_packets.load(),
      c.tx_bytes.load(), c.arp_replies.load(), c.icmp_echo_replies.load(), c.frames.load(),
      c.handoffs_out.load(), c.handoffs_in.load(), c.throttled.load(), c.error_replies.load(),
      c.idle_sleeps.load(), c.kernel_yields.load(), c.loops.load(), c.rx_bursts.load(),
      c.busy_ns.load(), c.loop_ns.load());
  for (size_t r = 0; r < c.drops.size(); ++r) {
    absl::StrAppendFormat(&s, "%s\"%s\": %u", r ? ", " : "",
                          DropReasonName(static_cast<DropReason>(r)), c.drops[r].load());
  }
  const FrontendCounters& f = w.handler().frontend_counters();
  absl::StrAppendFormat(&s,
                        "}, \"produced\": %u, \"acked\": %u, \"duplicates\": %u, "
                        "\"items_throttled\": %u, \"rejected\": %u, \"delivered\": %u, "
                        "\"reply_no_buffer\": %u",
                        f.produced.load(), f.acked.load(), f.duplicates.load(),
                        f.throttled.load(), f.rejected.load(), f.delivered.load(),
                        f.reply_no_buffer.load());
  absl::StrAppendFormat(&s, ", \"storage_failures\": %u", f.storage_failures.load());
  if (const StorageShell* st = w.storage()) {
    const StorageShellStats& ss = st->stats();
    absl::StrAppendFormat(
        &s,
        ", \"storage\": {\"partitions\": %u, \"failed\": %u, \"batches\": %u, \"bytes\": %u, "
        "\"throttled\": %u, \"ack_entries\": %u, \"ack_flush_errors\": %u, "
        "\"cold_fetches\": %u, \"segments_removed\": %u, \"retention_errors\": %u, "
        "\"fixed_writes\": %u, \"rolls_prepared\": %u, \"rolls_blocking\": %u, "
        "\"roll_waits\": %u, \"spare_failures\": %u, \"writes_during_spare_sync\": %u",
        ss.opened.load() - ss.closed.load(), ss.failed.load(), ss.submitted.load(),
        ss.submitted_bytes.load(), ss.throttled.load(), ss.ack_entries.load(),
        ss.ack_flush_errors.load(), ss.cold_fetches.load(), ss.segments_removed.load(),
        ss.retention_errors.load(), ss.fixed_writes.load(), ss.rolls_prepared.load(),
        ss.rolls_blocking.load(), ss.roll_waits.load(), ss.spare_failures.load(),
        ss.writes_during_spare_sync.load());
    // The ack logs' and runtime opens' work off the lcore (docs/storage.md §6, §9).
    absl::StrAppendFormat(
        &s,
        ", \"ack_writes_async\": %u, \"ack_syncs_async\": %u, \"ack_sync_requests\": %u, "
        "\"ack_syncs_done\": %u, \"ack_write_waits\": %u, \"ack_failures\": %u, "
        "\"opens_off_lcore\": %u, \"opens_on_lcore\": %u, \"dirs_removed\": %u, "
        "\"dir_removal_errors\": %u}",
        ss.ack_writes_async.load(), ss.ack_syncs_async.load(), ss.ack_sync_requests.load(),
        ss.ack_syncs_done.load(), ss.ack_write_waits.load(), ss.ack_failures.load(),
        ss.opens_off_lcore.load(), ss.opens_on_lcore.load(), ss.dirs_removed.load(),
        ss.dir_removal_errors.load());
  }
  absl::StrAppend(&s, ", \"shards\": ", w.handler().ShardStatsJson(), "}");
  return s;
}

}  // namespace

void PrintStats(FILE* out, const std::vector<std::unique_ptr<Worker>>& workers) {
  for (const auto& w : workers) {
    const LcoreCounters& c = w->counters();
    uint64_t drops = 0;
    for (uint64_t d : c.drops) drops += d;
    std::fprintf(out,
                 "sluiced: worker %u (lcore %d): rx %lu pkts, tx %lu pkts, frames %lu, "
                 "messages %lu, handoffs %lu out / %lu in, throttled %lu, drops %lu\n",
                 w->index(), w->lcore_id(), c.rx_packets.load(), c.tx_packets.load(),
                 c.frames.load(), w->handler().frontend_counters().produced.load(),
                 c.handoffs_out.load(), c.handoffs_in.load(), c.throttled.load(), drops);
  }
}

void WriteStatsFile(const std::string& path, const std::vector<std::unique_ptr<Worker>>& workers) {
  std::string json = "{\"workers\": [";
  for (size_t i = 0; i < workers.size(); ++i) {
    absl::StrAppend(&json, i ? ", " : "", CountersJson(*workers[i]));
  }
  // Process-wide: unmaps of port memory that waited for the workers (unmap_guard.h).
  absl::StrAppend(&json, "], \"guarded_unmaps\": ", GuardedUnmaps(), "}\n");
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return;
  std::fwrite(json.data(), 1, json.size(), f);
  std::fclose(f);
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace sluice::dataplane
