"""Automatic promotion through etcd (docs/replication.md §7): a primary and a standby sluiced over
the kernel UDP link (test_replication.py's Box and Pair), both with `[replication] etcd` pointing
at an etcd server (Debian's etcd-server) the test starts on the loopback of the network namespace
it creates, on free ports, with a data directory under the run's temp dir, ended by the PID of its
process group.

  1. SIGKILL the primary: the standby promotes by itself once the lease expired; every acked sync
     message is on it exactly once, in order; the old primary, started again, finds the key held
     by the newer epoch and rejoins as standby before serving; the sluice CLI (libsluice) pointed
     at it follows NOT_PRIMARY to the new primary.
  2. SIGSTOP the primary past its lease: the standby promotes; frames that reached the old
     primary while it was stopped, and any after SIGCONT, are never acknowledged (it stepped down
     on its own clock: NOT_PRIMARY), even on an async queue; it rejoins as standby.

The lease is 2 s (etcd's minimum); waiting it out is what the tests test.
"""

import json
import os
import signal
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import base64

import harness
import test_replication as tr
import wire

LEASE_MS = 2000
KEY = "/sluice/it/leader"
CLI_COUNT = 400
QUEUES = """
[[queue]]
name = "events"
type = "stream"
partitions = 2

[[queue]]
name = "loose"
type = "stream"
partitions = 1
"""


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Etcd:
    """An etcd server on the namespace's loopback."""

    def __init__(self, root):
        self.dir = os.path.join(root, "etcd")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.log_path = os.path.join(root, "etcd.log")
        self.proc = None

    def start(self):
        etcd = "/usr/bin/etcd"
        if not os.path.exists(etcd):
            raise unittest.SkipTest("etcd-server is not installed (scripts/install-deps)")
        peer = f"http://127.0.0.1:{self.peer_port}"
        self._log = open(self.log_path, "w")
        self.proc = harness.spawn(
            [etcd, "--name", "sluice-it", "--data-dir", self.dir,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"sluice-it={peer}", "--initial-cluster-state", "new"],
            stdout=self._log, stderr=subprocess.STDOUT)
        harness.wait_for(lambda: self.proc.poll() is not None or self.healthy(), 30, "etcd")
        if self.proc.poll() is not None:
            raise AssertionError(f"etcd exited {self.proc.returncode}:\n{self.log()}")

    def healthy(self):
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                return json.loads(r.read()).get("health") == "true"
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def get(self, key):
        """A key's value (bytes), or None when absent."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        req = urllib.request.Request(f"{self.url}/v3/kv/range", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=2) as r:
            kvs = json.loads(r.read()).get("kvs", [])
        return base64.b64decode(kvs[0]["value"]) if kvs else None

    def leader(self):
        """The leader key's value (a dict), or None when absent."""
        v = self.get(KEY)
        return json.loads(v) if v is not None else None

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None:
            self._log.close()


def add_etcd(box, url):
    """Points a Box's layout at etcd (test_replication.Box writes [replication] with mode last)."""
    with open(box.layout) as f:
        text = f.read()
    marker = 'mode = "sync"\n'
    assert text.count(marker) == 1, "test_replication.Box layout changed: update add_etcd"
    text = text.replace(marker, marker + f'etcd = "{url}"\netcd_lease_ms = {LEASE_MS}\n'
                                         f'etcd_key = "{KEY}"\n')
    with open(box.layout, "w") as f:
        f.write(text)


def count_at_least(box, queue_id, n):
    try:
        return len(tr.fetch_partition(box, queue_id, 0, n)) >= n
    except AssertionError:  # fewer than n yet
        return False


def client_of(box):
    return f"{box.server[0]}:{box.server[1]}"


class EtcdFailoverTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_root()
        harness.binary("dataplane/sluiced")
        harness.binary("client/sluice")

    def setUp(self):
        self._failed = True
        self.ns = harness.Namespace()
        self.ns.__enter__()
        self.pair = tr.Pair(queues=QUEUES, link="udp")
        self.etcd = Etcd(self.pair.root)
        self.etcd.start()
        for box in (self.pair.a, self.pair.b):
            add_etcd(box, self.etcd.url)

    def tearDown(self):
        for box in (self.pair.a, self.pair.b):
            if box.proc is not None and box.proc.poll() is None:
                try:
                    os.killpg(box.proc.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        if self._failed:
            print(f"--- etcd log ---\n{self.etcd.log()[-3000:]}")
        self.etcd.stop()
        self.pair.close(self._failed)
        self.ns.__exit__(None, None, None)

    def start_pair(self):
        a, b = self.pair.a, self.pair.b
        a.start()
        harness.wait_for(lambda: "sluiced: etcd: holding" in a.log(), 10, "a to hold the key")
        b.start()
        tr.wait_in_sync(a, b)
        leader = self.etcd.leader()
        self.assertEqual(leader["client"], client_of(a), leader)
        self.assertEqual(leader["epoch"], a.role()["epoch"])

    def wait_promoted(self, box, since, timeout_s):
        """Waits for `box` to promote itself (no REST call) and serve as primary."""
        harness.wait_for(lambda: "promoted to primary" in box.log()[since:], timeout_s,
                         f"{box.name} to promote itself")
        box.wait_running(after=box.log().rfind("promoted to primary"))
        harness.wait_for(lambda: box.role().get("role") == "primary", 15, f"{box.name} primary")

    def cli_produce_via(self, box, text):
        """The sluice CLI (libsluice), pointed at `box`: follows NOT_PRIMARY to the primary."""
        cli = subprocess.run([harness.binary("client/sluice"), "--server", client_of(box),
                              "produce", "events", "--partition", "0"], input=text + "\n",
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(cli.returncode, 0, cli.stdout + cli.stderr)
        return cli

    def test_sigkill_primary_standby_promotes_itself(self):
        a, b = self.pair.a, self.pair.b
        self.start_pair()
        queue_id = tr.lookup(a)
        p = tr.Producer()
        for i in range(60):
            self.assertEqual(p.send_one(a.server, queue_id, i % 2), "OK")
        # While the primary holds the key, the standby never promotes (several leases).
        before = b.log_size()
        deadline = time.monotonic() + 2.5 * LEASE_MS / 1000
        while time.monotonic() < deadline:
            self.assertEqual(p.send_one(a.server, queue_id, 0), "OK")
        self.assertNotIn("promoted", b.log()[before:])
        self.assertEqual(b.role().get("role"), "standby")
        # libsluice with the pair as its server list, producing across the kill: it moves to
        # the standby once the primary is silent and has every message acked there.
        # `loose` is sync but may degrade: the promoted standby, alone, acks it at once (with the
        # alarm), so the CLI completes before the old primary returns (whose redirect would
        # otherwise also lead the CLI to the new primary).
        loose_id = tr.lookup_name(a, "loose")
        status, body = a.http("PATCH", "/v1/queues/loose",
                              {"attributes": {"replication_degrade": "allow"}})
        self.assertEqual(status, 200, body)
        harness.wait_for(lambda: tr.queues_of(b).get("loose", {}).get("attributes", {})
                         .get("replication_degrade") == "allow", 10, "the catalog on b")
        cli = subprocess.Popen(
            [harness.binary("client/sluice"), "--server", f"{client_of(a)},{client_of(b)}",
             "produce", "loose", "--partition", "0", "--count", str(CLI_COUNT), "--rate", "100"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        harness.wait_for(lambda: count_at_least(a, loose_id, 20), 10,
                         "the CLI's first messages on the primary")
        # SIGKILL: the standby campaigns once the lease expired, and restarts as primary.
        t_kill = time.monotonic()
        a.kill()
        self.wait_promoted(b, before, timeout_s=LEASE_MS / 1000 + 15)
        took = time.monotonic() - t_kill
        leader = self.etcd.leader()
        self.assertEqual(leader["client"], client_of(b), leader)
        self.assertEqual(leader["epoch"], b.role()["epoch"])
        self.assertGreater(b.role()["epoch"], 1)
        # The highest elected epoch is recorded beside the key (no lease: it outlives b's).
        self.assertEqual(self.etcd.get(KEY + "/epoch"), str(leader["epoch"]).encode())
        # Every acked message exactly once, in order, at its acked offset, on the new primary.
        for part in (0, 1):
            got = tr.fetch_partition(b, queue_id, part, len(p.acked[part]))
            self.assertEqual(got, [(o, pl) for (_, o, pl) in p.acked[part]], f"partition {part}")
        # The CLI finished on the new primary alone (the old one is still dead): every message
        # acked, each exactly once.
        out, _ = cli.communicate(timeout=40)
        self.assertEqual(cli.returncode, 0, out)
        got = tr.fetch_partition(b, loose_id, 0, CLI_COUNT)
        self.assertEqual([o for (o, _) in got], list(range(CLI_COUNT)))
        self.assertFalse(count_at_least(b, loose_id, CLI_COUNT + 1), "a message twice")
        # The old primary starts again: the key names a newer epoch, so it rejoins as standby
        # before it serves anything.
        before = a.log_size()
        a.start()
        self.assertIn("rejoining as standby", a.log()[before:])
        harness.wait_for(lambda: a.role().get("role") == "standby", 30, "a to be standby")
        tr.wait_in_sync(b, a)
        # With its standby back, the new primary takes sync writes.
        for i in range(40):
            self.assertEqual(p.send_one(b.server, queue_id, i % 2, deadline_s=5.0), "OK")
        total = 0
        for part in (0, 1):
            got = tr.fetch_partition(b, queue_id, part, len(p.acked[part]))
            self.assertEqual(got, [(o, pl) for (_, o, pl) in p.acked[part]], f"partition {part}")
            total += len(got)
        # libsluice, pointed at the old primary, follows NOT_PRIMARY to the new one.
        self.cli_produce_via(a, "via-redirect")
        got = tr.fetch_partition(b, queue_id, 0, len(p.acked[0]) + 1)
        self.assertEqual(got[-1][1], b"via-redirect")
        print(f"\netcd SIGKILL: standby promoted itself {took:.1f} s after the kill (lease "
              f"{LEASE_MS} ms); {total} acked sync messages on it exactly once, in order; the old "
              f"primary rejoined at start; the CLI followed NOT_PRIMARY from it; the CLI producing "
              f"across the kill with the pair as its server list had all {CLI_COUNT} messages "
              f"acked, each once on the new primary ({out.strip().splitlines()[-1]})")
        p.sock.close()
        self._failed = False

    def test_sigstop_primary_past_its_lease_is_fenced(self):
        a, b = self.pair.a, self.pair.b
        self.start_pair()
        queue_id = tr.lookup(a)
        loose_id = tr.lookup_name(a, "loose")
        # An async queue: acked on local durability alone, so only the lease rule can stop a
        # resumed old primary from acknowledging it.
        status, body = a.http("PATCH", "/v1/queues/loose", {"attributes": {"replication": "async"}})
        self.assertEqual(status, 200, body)
        p = tr.Producer()
        for i in range(30):
            self.assertEqual(p.send_one(a.server, queue_id, i % 2), "OK")
        loose = tr.Producer(producer_id=78)
        self.assertEqual(loose.send_one(a.server, loose_id, 0), "OK")
        before_b = b.log_size()
        before_a = a.log_size()
        os.killpg(a.proc.pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        self.wait_promoted(b, before_b, timeout_s=LEASE_MS / 1000 + 15)
        took = time.monotonic() - t_stop
        # Frames for the old primary while it is stopped: they wait in its TAP queue.
        s = harness.udp_socket(0.2)
        queued = 0
        for i in range(20):
            seq = loose.seq[0] + i
            s.sendto(wire.produce(loose_id, [b"stale-%d" % i], producer=loose.producer_id,
                                  first_sequence=seq, partition=0, client=loose.producer_id,
                                  request=5000 + i), a.server)
            queued += 1
        os.killpg(a.proc.pid, signal.SIGCONT)
        # Whatever the old primary answers from now on, it is never an acknowledgement.
        answers = {}
        deadline = time.monotonic() + 20
        rejoined = False
        while time.monotonic() < deadline and not rejoined:
            try:
                reply, _ = s.recvfrom(65536)
                h = wire.parse_header(reply)
                if h["type"] == wire.ERROR:
                    e = wire.parse_error(reply)
                    answers[e] = answers.get(e, 0) + 1
                elif h["type"] == wire.ACK:
                    for (_, errc, _, _, _) in wire.parse_acks(reply):
                        answers[errc] = answers.get(errc, 0) + 1
            except (TimeoutError, socket.timeout):
                pass
            e = loose.send_one(a.server, loose_id, 0, deadline_s=0.3)
            answers[e] = answers.get(e, 0) + 1
            since = a.log()[before_a:]
            at = since.find("rejoining as standby")
            rejoined = at >= 0 and "sluiced: running" in since[at:]
        s.close()
        self.assertTrue(rejoined, f"a did not rejoin as standby; answers {answers}")
        self.assertNotIn("OK", answers)
        self.assertNotIn("DUPLICATE", answers)
        self.assertGreater(answers.get("NOT_PRIMARY", 0), 0, answers)
        log_a = a.log()[before_a:]
        self.assertIn("stepped down", log_a)
        harness.wait_for(lambda: a.role().get("role") == "standby", 30, "a to be standby")
        tr.wait_in_sync(b, a)
        for i in range(10):
            self.assertEqual(p.send_one(b.server, queue_id, i % 2, deadline_s=5.0), "OK")
        # Nothing of the stale frames reached the new primary's log either (it never had them),
        # and the sync messages are all there once.
        for part in (0, 1):
            got = tr.fetch_partition(b, queue_id, part, len(p.acked[part]))
            self.assertEqual(got, [(o, pl) for (_, o, pl) in p.acked[part]], f"partition {part}")
        # libsluice, pointed at the old primary, follows NOT_PRIMARY to the new one.
        self.cli_produce_via(a, "after-sigstop")
        print(f"\netcd SIGSTOP: standby promoted itself {took:.1f} s after the stop; the resumed "
              f"old primary answered {answers} to {queued} stale frames and later produces (no "
              f"acknowledgement), stepped down and rejoined as standby")
        p.sock.close()
        loose.sock.close()
        self._failed = False


if __name__ == "__main__":
    unittest.main(verbosity=2)
