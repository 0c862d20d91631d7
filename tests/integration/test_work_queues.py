"""Work queues end to end with the sluice CLI: receive, delete, nack, visibility-timeout
redelivery, stale receipts, and exactly-once draining of a backlog."""

import time
import unittest

import harness
from harness import Namespace, Sluiced, sluice

QUEUES = """
[[queue]]
name = "jobs"
type = "work"
partitions = 1
visibility_timeout_ms = 30000
"""


def receive(*args):
    cp = sluice("receive", "jobs", *args)
    return [tuple(line.split("\t", 1)) for line in cp.stdout.splitlines() if line]


class WorkQueuesTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_receive_delete_nack_and_visibility_timeout(self):
        with Namespace(), Sluiced(queues=QUEUES) as s:
            sluice("produce", "jobs", input="a\nb\nc\n")
            leased = receive("--max", "3", "--visibility-ms", "1500")
            self.assertEqual(sorted(p for _, p in leased), ["a", "b", "c"])
            receipts = {p: r for r, p in leased}
            # While leased, nothing is visible.
            self.assertEqual(receive("--max", "3"), [])
            sluice("delete", "jobs", receipts["a"])
            sluice("nack", "jobs", receipts["b"])
            # The nacked message is visible again at once, with a new receipt.
            again = receive("--max", "3", "--visibility-ms", "60000")
            self.assertEqual([p for _, p in again], ["b"])
            self.assertNotEqual(again[0][0], receipts["b"])
            # "c" was neither deleted nor nacked: it comes back when its lease runs out.
            started = time.monotonic()
            redelivered = receive("--max", "3", "--wait-ms", "5000", "--visibility-ms", "60000")
            self.assertEqual([p for _, p in redelivered], ["c"])
            self.assertLess(time.monotonic() - started, 5.0)
            # Its old receipt is stale now; the deleted message's receipt is unknown.
            stale = sluice("delete", "jobs", receipts["c"], check=False)
            self.assertEqual(stale.returncode, 1)
            self.assertIn("STALE_RECEIPT", stale.stderr)
            gone = sluice("delete", "jobs", receipts["a"], check=False)
            self.assertEqual(gone.returncode, 1)
            self.assertIn("UNKNOWN_RECEIPT", gone.stderr)
            # The deleted message never comes back.
            sluice("delete", "jobs", redelivered[0][0], again[0][0])
            self.assertEqual(receive("--max", "3", "--wait-ms", "200"), [])
            shard = [x for w in s.stats()["workers"] for x in w["shards"]]
            self.assertGreaterEqual(sum(x["redeliveries"] for x in shard), 1)

    def test_backlog_is_drained_exactly_once(self):
        with Namespace(), Sluiced(queues=QUEUES):
            n = 2000
            sluice("produce", "jobs", input="".join(f"job-{i}\n" for i in range(n)))
            seen = []
            while True:
                got = receive("--max", "100", "--delete", "--wait-ms", "200")
                if not got:
                    break
                seen.extend(p for _, p in got)
            self.assertEqual(sorted(seen), sorted(f"job-{i}" for i in range(n)))
            self.assertEqual(len(seen), len(set(seen)))
            # FIFO within the single partition (no priorities set).
            self.assertEqual(seen, [f"job-{i}" for i in range(n)])

    def test_one_receive_returns_every_fragmented_message(self):
        # 3 KB messages travel as fragments (one datagram holds ~1.4 KB): a RECEIVE of 40 of them
        # is one reply of ~120 frames, every one but the last flagged MORE.
        with Namespace(), Sluiced(queues=QUEUES):
            body = "z" * 3000
            sluice("produce", "jobs", input="".join(f"{i:03d}{body}\n" for i in range(40)))
            got = receive("--max", "40")
            self.assertEqual(sorted(p for _, p in got), [f"{i:03d}{body}" for i in range(40)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
