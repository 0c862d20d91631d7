"""Streams end to end with the sluice CLI as a user runs it: 100 000 messages produced and all
consumed in order with no loss or duplicate; two producers and two consumers at once."""

import subprocess
import os
import unittest

import harness
from harness import Namespace, Sluiced, sluice


def check_stream(test, lines, expected, producers):
    """lines: 'partition offset payload' from `sluice consume --format offsets`."""
    by_partition = {}
    for line in lines:
        part, offset, payload = line.split(" ", 2)
        by_partition.setdefault(int(part), []).append((int(offset), payload))
    got = [payload for msgs in by_partition.values() for _, payload in msgs]
    test.assertEqual(len(got), len(expected), "lost or duplicated messages")
    test.assertEqual(sorted(got), sorted(expected))
    for part, msgs in by_partition.items():
        offsets = [o for o, _ in msgs]
        test.assertEqual(offsets, list(range(offsets[0], offsets[0] + len(offsets))),
                         f"offsets of partition {part} not consecutive")
        # Within a partition each producer's messages keep the order they were sent in.
        for prefix in producers:
            seqs = [int(p.split("-")[1]) for _, p in msgs if p.startswith(prefix + "-")]
            test.assertEqual(seqs, sorted(seqs), f"{prefix} out of order in partition {part}")


class StreamsTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_100k_messages_in_order_no_loss_no_duplicate(self):
        with Namespace(), Sluiced() as s:
            n = 100_000
            expected = [f"a-{i:06d}" for i in range(n)]
            out = sluice("produce", "events", input="\n".join(expected) + "\n", timeout=120)
            self.assertIn(f"acked {n}", out.stdout)
            cp = sluice("consume", "events", "--from", "earliest", "--count", str(n),
                        "--format", "offsets", "--timeout-ms", "10000", timeout=120)
            check_stream(self, cp.stdout.splitlines(), expected, ["a"])
            self.assertEqual(s.drops("malformed_frame"), 0)

    def test_two_producers_and_two_consumers_at_once(self):
        with Namespace(), Sluiced():
            n = 20_000
            env = dict(os.environ, SLUICE_SERVER=f"{harness.SERVER_IP}:{harness.SERVER_PORT}")
            cli = harness.binary("client/sluice")
            consumers = [harness.spawn(
                [cli, "consume", "events", "--from", "earliest", "--count", str(2 * n),
                 "--format", "offsets", "--timeout-ms", "20000"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
            producers = []
            for prefix in ("p", "q"):
                producers.append(harness.spawn(
                    [cli, "produce", "events"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, env=env))
            data = {prefix: "".join(f"{prefix}-{i:06d}\n" for i in range(n)) for prefix in "pq"}
            try:
                outs = [p.communicate(data[prefix], timeout=120)
                        for p, prefix in zip(producers, "pq")]
                for p, (out, err) in zip(producers, outs):
                    self.assertEqual(p.returncode, 0, err)
                    self.assertIn(f"acked {n}", out)
                results = [c.communicate(timeout=120) for c in consumers]
            finally:
                for p in producers + consumers:
                    if p.poll() is None:
                        os.killpg(p.pid, 9)
                        p.wait()
            expected = [line for prefix in "pq" for line in data[prefix].splitlines()]
            for c, (out, err) in zip(consumers, results):
                self.assertEqual(c.returncode, 0, err)
                check_stream(self, out.splitlines(), expected, ["p", "q"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
