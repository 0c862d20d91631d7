"""Work-queue features end to end through the sluice CLI on a real sluiced: priorities, FIFO message
groups, per-message delay, dedup ids, TTL, lease extension, and dead letters (with their reason
and original attributes) moved back by `sluice redrive`."""

import time
import unittest

import harness
from harness import Namespace, Sluiced, sluice, sluicectl


def create_feature_queues():
    """Priorities and FIFO groups are per-queue attributes (the layout's [[queue]] cannot set
    them): created through the control plane as an operator would."""
    sluicectl("queue", "create", "work", "--type", "work", "--attr", "priority_levels=16")
    sluicectl("queue", "create", "groups", "--type", "work", "--attr", "fifo=true")

QUEUES = """
[[queue]]
name = "jobs"
type = "work"
partitions = 2
visibility_timeout_ms = 30000
max_receive_count = 2
dead_letter_queue = "dlq"

[[queue]]
name = "dlq"
type = "work"
partitions = 1
visibility_timeout_ms = 30000
"""


def produce(queue, lines, *args):
    out = sluice("produce", queue, *args, input="".join(f"{x}\n" for x in lines))
    assert f"acked {len(lines)}," in out.stdout, out.stdout
    return out


def receive(queue, *args):
    """[(receipt, payload, {attribute: value})] from `sluice receive --headers`."""
    out = []
    for line in sluice("receive", queue, "--headers", *args).stdout.splitlines():
        if line.startswith("  "):
            key, value = line.strip().split(": ", 1)
            out[-1][2][key] = value
        elif line:
            receipt, payload = line.split("\t", 1)
            out.append((receipt, payload, {}))
    return out


def receive_all(queue, n, *args, timeout_s=10):
    """Receives until n messages came (a RECEIVE answers from one partition at a time)."""
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got += receive(queue, "--max", "10", "--wait-ms", "1000", *args)
    return got


def payloads(msgs):
    return [p for _, p, _ in msgs]


class WorkQueueFeaturesTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_priorities_groups_delay_dedup_ttl_extend(self):
        with Namespace(), Sluiced(queues=QUEUES):
            create_feature_queues()
            # Priorities: a higher priority is always received first; FIFO within a level.
            produce("work", ["low-1", "low-2"])
            produce("work", ["urgent"], "--priority", "15")
            produce("work", ["mid-1", "mid-2"], "--priority", "7")
            got = receive("work", "--max", "10", "--delete")
            self.assertEqual(payloads(got), ["urgent", "mid-1", "mid-2", "low-1", "low-2"])
            self.assertEqual(got[0][2]["priority"], "15")

            # FIFO groups: one leased message per group, in order; groups in parallel.
            produce("groups", ["a1", "a2"], "--group-id", "A")
            produce("groups", ["b1", "b2"], "--group-id", "B")
            first = receive("groups", "--max", "10")
            self.assertEqual(sorted(payloads(first)), ["a1", "b1"])
            self.assertEqual(receive("groups", "--max", "10"), [], "a2/b2 wait behind a1/b1")
            by = {p: r for r, p, _ in first}
            self.assertEqual(first[0][2]["group_id"], "A" if first[0][1] == "a1" else "B")
            sluice("delete", "groups", by["a1"])
            sluice("nack", "groups", by["b1"])  # b1 again, not b2
            second = receive("groups", "--max", "10")
            self.assertEqual(sorted(payloads(second)), ["a2", "b1"])
            sluice("delete", "groups", *[r for r, _, _ in second])
            self.assertEqual(payloads(receive("groups", "--max", "10", "--delete")), ["b2"])

            # Delay: invisible for its delay, then handed to a waiting receive.
            produce("work", ["later"], "--delay-ms", "1500")
            produce("work", ["now"])
            self.assertEqual(payloads(receive("work", "--max", "10", "--delete")), ["now"])
            started = time.monotonic()
            late = receive("work", "--max", "10", "--wait-ms", "10000", "--delete")
            waited = time.monotonic() - started
            self.assertEqual(payloads(late), ["later"])
            self.assertGreater(waited, 0.5)
            self.assertLess(waited, 9.0)

            # Dedup: the same dedup id within the window is acknowledged, not appended twice.
            produce("work", ["order-1"], "--dedup-id", "o-1")
            produce("work", ["order-1 again"], "--dedup-id", "o-1")
            produce("work", ["order-2"], "--dedup-id", "o-2")
            got = receive("work", "--max", "10", "--delete")
            self.assertEqual(payloads(got), ["order-1", "order-2"])
            self.assertEqual(got[0][2]["dedup_id"], "o-1")
            # Content dedup, turned on live: without a dedup id the same payload within the window
            # is acknowledged, not appended twice; a dedup id still wins over the content.
            sluicectl("queue", "update", "work", "--attr", "content_dedup=true")
            produce("work", ["same body", "same body", "other body"])
            produce("work", ["same body"], "--dedup-id", "o-3")
            self.assertEqual(payloads(receive("work", "--max", "10", "--delete")),
                             ["same body", "other body", "same body"])

            # TTL: a message whose time to live passes before anyone receives it is never
            # delivered. (The sleep is the TTL under test, not a synchronisation.)
            produce("work", ["short-lived"], "--ttl-ms", "200")
            produce("work", ["long-lived"], "--ttl-ms", "600000")
            time.sleep(0.5)
            self.assertEqual(payloads(receive("work", "--max", "10", "--delete")), ["long-lived"])

            # Extend: a lease lengthened past its first end stays invisible.
            produce("work", ["slow job"])
            (receipt, _, _), = receive("work", "--visibility-ms", "300")
            ok = sluice("extend", "work", receipt, "--visibility-ms", "20000")
            self.assertEqual(ok.stdout.strip(), f"ok {receipt}")
            self.assertEqual(receive("work", "--wait-ms", "800"), [], "the lease was extended")
            sluice("delete", "work", receipt)
            bad = sluice("extend", "work", receipt, "--visibility-ms", "1000", check=False)
            self.assertEqual(bad.returncode, 1)
            self.assertIn("UNKNOWN_RECEIPT", bad.stderr)
            usage = sluice("extend", "work", receipt, check=False)
            self.assertEqual(usage.returncode, 2)
            self.assertIn("--visibility-ms", usage.stderr)

    def test_dead_letters_keep_attributes_and_redrive_moves_them_back(self):
        with Namespace(), Sluiced(queues=QUEUES):
            # The redrive gives each dead letter a dedup id of its own: the same payloads sent
            # back within the window are not taken for duplicates of the originals.
            sluicectl("queue", "update", "jobs", "--attr", "content_dedup=true")
            produce("jobs", ["poison"], "--key", "k-7", "--header", "app=billing,v=2",
                    "--correlation-id", "c-1", "--priority", "3")
            produce("jobs", ["bad-1", "bad-2"], "--partition", "1")
            # Three messages fail twice each: the first lease runs out, the second is nacked.
            for attempt in range(2):
                got = receive_all("jobs", 3, "--visibility-ms", "300")
                self.assertEqual(sorted(payloads(got)), ["bad-1", "bad-2", "poison"],
                                 f"attempt {attempt}")
                if attempt == 1:
                    sluice("nack", "jobs", *[r for r, _, _ in got])
            self.assertEqual(receive("jobs", "--max", "10", "--wait-ms", "500"), [])

            dead = receive_all("dlq", 3)
            self.assertEqual(sorted(payloads(dead)), ["bad-1", "bad-2", "poison"])
            poison = next(m for m in dead if m[1] == "poison")[2]
            self.assertEqual(poison["key"], "k-7")
            self.assertEqual(poison["correlation_id"], "c-1")
            self.assertEqual(poison["priority"], "3")
            self.assertEqual(poison["header app"], "billing")
            self.assertEqual(poison["header v"], "2")
            self.assertEqual(poison["header sluice-dlq-reason"], "max_receive_count")
            self.assertEqual(poison["header sluice-dlq-last-lease"], "nacked")
            self.assertEqual(poison["header sluice-dlq-source-queue"], "jobs")
            self.assertEqual(poison["header sluice-dlq-receive-count"], "2")
            bad = next(m for m in dead if m[1] == "bad-1")[2]
            self.assertEqual(bad["header sluice-dlq-source-partition"], "1")
            sluice("nack", "dlq", *[r for r, _, _ in dead])  # visible again for the redrive

            out = sluice("redrive", "dlq", "--max", "1").stdout
            self.assertEqual(out.strip(), "moved 1, no target 0, failed 0")
            out = sluice("redrive", "dlq").stdout
            self.assertEqual(out.strip(), "moved 2, no target 0, failed 0")
            self.assertEqual(receive("dlq", "--max", "10"), [])

            back = receive_all("jobs", 3, "--delete")
            self.assertEqual(sorted(payloads(back)), ["bad-1", "bad-2", "poison"])
            poison = next(m for m in back if m[1] == "poison")[2]
            self.assertEqual(poison["key"], "k-7")
            self.assertEqual(poison["header app"], "billing")
            self.assertEqual(poison["receive_count"], "1", "a fresh message in its queue")
            self.assertFalse(any(k.startswith("header sluice-dlq") for k in poison), poison)
            self.assertEqual({m[2]["partition"] for m in back if m[1].startswith("bad")}, {"1"},
                             "keyless dead letters return to their source partition")

            # --to sends them elsewhere; an empty DLQ moves nothing.
            self.assertEqual(sluice("redrive", "dlq", "--to", "work").stdout.strip(),
                             "moved 0, no target 0, failed 0")
            missing = sluice("redrive", "nope", check=False)
            self.assertEqual(missing.returncode, 1)
            self.assertIn("UNKNOWN_QUEUE", missing.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
