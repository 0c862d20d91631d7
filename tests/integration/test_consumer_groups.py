"""Stream consumer groups end to end with the sluice CLI as a user runs it, on a real sluiced
with two workers (the group's coordinator, partition 0's owner, is on one worker; the partitions
are spread over both): two members share a 4-partition stream, a third joining or one dying
rebalances it, and a member that leaves commits what it printed so the next one resumes there."""

import os
import signal
import subprocess
import threading
import unittest

import harness
from harness import Namespace, Sluiced, sluice, wait_for

QUEUES = """
[[queue]]
name = "ticks"
type = "stream"
partitions = 4
"""

PARTITIONS = 4


class Member:
    """`sluice consume ticks --group g` in the background; collects stdout and stderr lines."""

    def __init__(self, name, *extra):
        self.name = name
        env = dict(os.environ, SLUICE_SERVER=f"{harness.SERVER_IP}:{harness.SERVER_PORT}")
        self.proc = harness.spawn(
            [harness.binary("client/sluice"), "consume", "ticks", "--group", "g", "--from",
             "earliest", "--format", "offsets", "--session-ms", "1000", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []  # (partition, offset, payload)
        self.errors = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._read, args=(self.proc.stdout, False)),
                         threading.Thread(target=self._read, args=(self.proc.stderr, True))]
        for t in self._threads:
            t.start()

    def _read(self, stream, is_err):
        for line in stream:
            with self._lock:
                if is_err:
                    self.errors.append(line.rstrip("\n"))
                else:
                    part, offset, payload = line.rstrip("\n").split(" ", 2)
                    self.lines.append((int(part), int(offset), payload))

    def got(self):
        with self._lock:
            return list(self.lines)

    def stderr_has(self, text):
        with self._lock:
            return any(text in e for e in self.errors)

    def generation(self):
        """The last generation this member reported (joined / rebalanced)."""
        with self._lock:
            gens = [int(e.split("generation ")[1].split(",")[0].split()[0])
                    for e in self.errors if "generation " in e]
        return gens[-1] if gens else 0

    def signal(self, sig):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout_s=20):
        try:
            rc = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            rc = self.proc.wait()
        for t in self._threads:
            t.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


def produce(first, per_partition):
    for part in range(PARTITIONS):
        lines = "".join(f"p{part}-{i}\n" for i in range(first, first + per_partition))
        out = sluice("produce", "ticks", "--partition", str(part), input=lines)
        assert f"acked {per_partition}" in out.stdout, out.stdout


def committed(group):
    """partition -> committed offset, from `sluice group`."""
    out = {}
    for line in sluice("group", "ticks", group).stdout.splitlines()[1:]:
        part, value = line.removeprefix("partition ").split(": ")
        if value != "-":
            out[int(part)] = int(value)
    return out


class ConsumerGroupsTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_two_members_rebalance_on_join_and_on_death_and_resume(self):
        with Namespace(), Sluiced(workers=2, queues=QUEUES) as s:
            members = []
            try:
                produce(0, 25)
                a = Member("a")
                members.append(a)
                wait_for(lambda: len(a.got()) >= 100, 30, "member a to read the backlog")
                self.assertEqual(sorted((p, o) for p, o, _ in a.got()),
                                 [(p, o) for p in range(PARTITIONS) for o in range(25)])
                # a commits before each heartbeat (every third of its 1 s session).
                wait_for(lambda: committed("g") == {p: 25 for p in range(PARTITIONS)}, 10,
                         "a's commit of the backlog")

                # b joins: generation 2, each member gets two partitions.
                b = Member("b")
                members.append(b)
                wait_for(lambda: b.generation() == 2 and a.generation() == 2, 30,
                         "both members in generation 2")
                self.assertTrue(a.stderr_has("rebalanced: generation 2, 2 members"), a.errors)
                produce(25, 25)
                new = lambda m: [(p, o) for p, o, _ in m.got() if o >= 25]
                wait_for(lambda: len(new(a)) + len(new(b)) >= 100, 30, "the next 100 messages")
                parts_a = {p for p, _ in new(a)}
                parts_b = {p for p, _ in new(b)}
                self.assertEqual(len(parts_a), 2, new(a))
                self.assertEqual(len(parts_b), 2, new(b))
                self.assertFalse(parts_a & parts_b, "a partition was read by both members")
                self.assertEqual(sorted(new(a) + new(b)),
                                 [(p, o) for p in range(PARTITIONS) for o in range(25, 50)],
                                 "lost or duplicated messages while both were members")
                # b got nothing old: it resumed from offsets a had committed.
                self.assertEqual([x for x in b.got() if x[1] < 25], [])

                # b dies without leaving: after its 1 s session, a takes its partitions back.
                b.signal(signal.SIGKILL)
                b.wait()
                wait_for(lambda: a.generation() == 3, 30, "generation 3 after b's session")
                self.assertTrue(a.stderr_has("rebalanced: generation 3, 1 members, "
                                             "partitions [0,1,2,3]"), a.errors)
                produce(50, 10)
                seen = lambda: {(p, o) for m in (a, b) for p, o, _ in m.got()}
                wait_for(lambda: len(seen()) >= 4 * 60, 30, "every message at least once")
                self.assertEqual(seen(), {(p, o) for p in range(PARTITIONS) for o in range(60)})

                # a leaves cleanly (Ctrl-C): it commits what it printed.
                a.signal(signal.SIGINT)
                self.assertEqual(a.wait(), 0, a.errors)
                desc = sluice("group", "ticks", "g").stdout.splitlines()
                self.assertEqual(desc[0], "group 'g' of 'ticks': generation 4, 0 members")
                self.assertEqual(desc[1:], [f"partition {p}: 60" for p in range(PARTITIONS)])

                # A new member resumes at the committed offsets: nothing is replayed.
                cp = sluice("consume", "ticks", "--group", "g", "--from", "earliest",
                            "--format", "offsets", "--timeout-ms", "1500")
                self.assertEqual(cp.stdout, "")
                produce(60, 1)
                cp = sluice("consume", "ticks", "--group", "g", "--from", "earliest",
                            "--format", "offsets", "--count", "4", "--timeout-ms", "5000")
                self.assertEqual(sorted(cp.stdout.splitlines()),
                                 sorted(f"{p} 60 p{p}-60" for p in range(PARTITIONS)))
                self.assertEqual(s.drops("malformed_frame"), 0)
            finally:
                for m in members:
                    m.signal(signal.SIGKILL)
                    m.wait()

    def test_count_commits_only_what_was_printed(self):
        with Namespace(), Sluiced(workers=2, queues=QUEUES):
            produce(0, 5)
            cp = sluice("consume", "ticks", "--group", "c", "--from", "earliest", "--count", "3",
                        "--timeout-ms", "5000")
            self.assertEqual(len(cp.stdout.splitlines()), 3)
            self.assertEqual(sum(committed("c").values()), 3, committed("c"))
            cp = sluice("consume", "ticks", "--group", "c", "--from", "earliest", "--count", "17",
                        "--timeout-ms", "5000")
            self.assertEqual(len(cp.stdout.splitlines()), 17)
            # Usage errors are clear and exit 2.
            bad = sluice("consume", "ticks", "--group", "c", "--partition", "1", check=False)
            self.assertEqual(bad.returncode, 2)
            self.assertIn("the group assigns partitions", bad.stderr)
            bad = sluice("consume", "ticks", "--from", "committed", check=False)
            self.assertEqual(bad.returncode, 2)
            self.assertIn("--from committed needs --group", bad.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
