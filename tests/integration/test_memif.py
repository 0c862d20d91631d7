"""sluiced on a memif port: load-generator clients come and go under load, and sluiced stays up.

DPDK 22.11's memif PMD unmaps a departing peer's shared memory on its interrupt thread while a
worker may still be inside rx_burst on it (dataplane/unmap_guard.h). sluiced's munmap waits for
the workers' loop passes first; at exit it says how many unmaps did so, which shows the guard sat
on every disconnect's path (the crash itself is a race: a test can make it likely, not certain).
"""

import json
import os
import subprocess
import unittest

import harness
from harness import Sluiced, binary, wait_for

ROUNDS = 6


class MemifSluiced(Sluiced):
    """sluiced with one memif server port (the load generator is the client)."""

    def __init__(self, **kw):
        super().__init__(durability="none", **kw)
        self.socket = f"/run/sluice/it-{self.tag}.sock"

    def write_layout(self):
        os.makedirs("/run/sluice", exist_ok=True)
        text = f"""
[eal]
lcores = [0, 1]
main_lcore = 0
memory_mb = 256
hugepages = false
file_prefix = "sluice-it-{self.tag}"

[[port]]
name = "client0"
vdev = "net_memif0,role=server,socket={self.socket},id=0"
role = "client"
rx_queues = 1
mtu = 1500
ipv4 = "198.18.1.1"
udp_port = 7411

[[lcore]]
id = 1
rx = ["client0:0"]
shards = [0]
idle = "adaptive"

[dataplane]
shards = 1
shard_memory_mb = {harness.SHARD_MEMORY_MB}

[storage]
data_dirs = ["{self.data_dir}"]
durability = "none"

[control]
metadata_dir = "{self.metadata_dir}"
listen = "{harness.REST_ADDRESS}"

[[queue]]
name = "bench"
type = "stream"
partitions = 1
"""
        with open(self.layout, "w") as f:
            f.write(text)


def guarded_unmaps(s):
    try:
        return s.stats().get("guarded_unmaps", 0)
    except (OSError, ValueError):  # not written yet
        return 0


class MemifDisconnectTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_clients_come_and_go_under_load(self):
        with MemifSluiced() as s:
            acked = []
            for r in range(ROUNDS):
                out = os.path.join(s.dir, f"loadgen-{r}.json")
                lg = subprocess.run(
                    [binary("bench/loadgen/sluice-loadgen"), "--produce", "--size", "1024",
                     "--window", "1024", "--socket", s.socket, "--cpu", "0",
                     "--file-prefix", f"sluice-it-lg-{s.tag}-{r}", "--duration-s", "0.3",
                     "--warmup-s", "0.1", "--json", out, "--label", f"round {r}"],
                    capture_output=True, text=True, timeout=60)
                self.assertEqual(lg.returncode, 0, lg.stdout + lg.stderr)
                counts = json.load(open(out))["counts"]
                self.assertGreater(counts["messages_ok"], 0, counts)
                acked.append(counts["messages_ok"])
                # The load generator left with frames in flight: its disconnect went through
                # the guard (sluiced rewrites its stats file every second), and sluiced is up.
                wait_for(lambda: not s.alive() or guarded_unmaps(s) > r, 10,
                         f"round {r}'s disconnect to unmap through the guard")
                self.assertTrue(s.alive(), f"sluiced died after round {r}:\n{s.log()}")
            self.assertEqual(s.stop(), 0, s.log())
            log = s.log()
            self.assertIn(f"sluiced: {ROUNDS} unmap(s) of port memory waited for the workers'",
                          log)
            print(f"memif: {ROUNDS} clients under load came and went, {sum(acked)} messages "
                  f"acked; every disconnect's unmap waited for the workers")


if __name__ == "__main__":
    unittest.main(verbosity=2)
