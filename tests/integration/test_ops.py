"""Operator-facing queue behaviour end to end on a real sluiced: the queue default long poll
(receive_wait_ms), purge that keeps stream offsets (and stays purged across a restart), a live
dedup window update, and the per-partition counters and histograms of describe and /metrics."""

import json
import struct
import time
import unittest
import urllib.request

import harness
import wire
from harness import Namespace, Sluiced, sluice, sluicectl, wait_for

QUEUE_DEFAULT_WAIT = 0xFFFFFFFF


def receive_frame(queue_id, wait_ms, client, request, max_messages=10):
    body = struct.pack("<IHHIIHHI", queue_id, 0xFFFF, max_messages, 0xFFFFFFFF, wait_ms, 0, 0, 0)
    return wire.frame(wire.RECEIVE, body, client=client, request=request)


def rest(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{harness.REST_ADDRESS}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"{}")


def produce(queue, lines, *args):
    out = sluice("produce", queue, *args, input="".join(f"{x}\n" for x in lines))
    assert f"acked {len(lines)}," in out.stdout, out.stdout
    return out


def frames(d):
    try:
        return d.total("frames")
    except (FileNotFoundError, ValueError):  # not written yet, or caught mid-replace
        return 0


class ShardMemoryTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_each_shard_takes_the_layouts_message_memory(self):
        """dataplane.shard_memory_mb sizes each shard's chunk pool (64 MiB when unset): a worker
        with two shards at 32 MiB each says so when its storage starts (the tests' other layouts
        take 16 MiB, the floor of 16 chunks of 1 MiB with the default 256 KiB message limit)."""
        with Namespace(), Sluiced(shard_memory_mb=32) as d:
            wait_for(lambda: "chunk pool(s)" in d.log(), 10, "the storage start-up line")
            line = next(x for x in d.log().splitlines() if "chunk pool(s)" in x)
            self.assertIn("2 chunk pool(s), 64 MiB", line)


class ReceiveWaitDefaultTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_queue_default_long_poll(self):
        with Namespace(), Sluiced() as d:
            sluicectl("queue", "create", "lp", "--type", "work", "--attr", "receive_wait_ms=2000")
            sock = harness.udp_socket(timeout_s=5.0)
            c = wire.Client(sock, (harness.SERVER_IP, harness.SERVER_PORT), client_id=77)
            c.handshake()
            queue_id = c.lookup("lp")[0]

            # A RECEIVE that asks for the queue default, sent before anything is in the queue,
            # is parked: no answer until the message arrives (the stats file shows the server
            # handled the frame; an immediate empty answer would be in the socket by then).
            # Our handshake (2 frames) and lookup (1) are in the stats file first.
            wait_for(lambda: frames(d) >= 3, 10, "the stats file counting our first frames")
            before = frames(d)
            sock.sendto(receive_frame(queue_id, QUEUE_DEFAULT_WAIT, 77, 1000), c.server)
            wait_for(lambda: frames(d) > before, 10, "sluiced handled the RECEIVE")
            sock.setblocking(False)
            with self.assertRaises(BlockingIOError):
                sock.recvfrom(65536)
            sock.settimeout(5.0)
            produced = time.monotonic()
            produce("lp", ["hello"])
            reply, _ = sock.recvfrom(65536)
            got = time.monotonic()
            h = wire.parse_header(reply)
            self.assertEqual((h["type"], h["request"]), (wire.MESSAGES, 1000))
            _, msgs = wire.parse_messages(reply)
            self.assertEqual([m[4] for m in msgs], [b"hello"])
            self.assertGreaterEqual(got, produced)

            # Nothing in the queue: the default wait runs out after ~2 s (not at once).
            sent = time.monotonic()
            sock.sendto(receive_frame(queue_id, QUEUE_DEFAULT_WAIT, 77, 1001), c.server)
            reply, _ = sock.recvfrom(65536)
            self.assertEqual(wire.parse_header(reply)["count"], 0)
            self.assertGreaterEqual(time.monotonic() - sent, 1.9)

            # wait_ms 0 still answers at once.
            sent = time.monotonic()
            sock.sendto(receive_frame(queue_id, 0, 77, 1002), c.server)
            reply, _ = sock.recvfrom(65536)
            self.assertEqual(wire.parse_header(reply)["count"], 0)
            self.assertLess(time.monotonic() - sent, 1.5)

            # The CLI without --wait-ms uses the queue default: an empty queue holds it ~2 s.
            sent = time.monotonic()
            self.assertEqual(sluice("receive", "lp").stdout, "")
            self.assertGreaterEqual(time.monotonic() - sent, 1.9)
            sent = time.monotonic()
            sluice("receive", "lp", "--wait-ms", "0")
            self.assertLess(time.monotonic() - sent, 1.5)


def consume_offsets(queue, count, *args, timeout_ms=3000):
    """[(partition, offset, payload)] of `sluice consume --format offsets`."""
    cp = sluice("consume", queue, "--format", "offsets", "--count", str(count),
                "--timeout-ms", str(timeout_ms), *args, check=False)
    out = []
    for line in cp.stdout.splitlines():
        part, offset, payload = line.split(" ", 2)
        out.append((int(part), int(offset), payload))
    return out


def partitions(name):
    return rest("GET", f"/v1/queues/{name}")["stats"]["partitions"]


def fetch_errc(c, queue_id, offset):
    reply = c.call(lambda r: wire.fetch(queue_id, 0, offset, 10, c.client_id, r),
                   (wire.MESSAGES, wire.ERROR))
    if wire.parse_header(reply)["type"] == wire.ERROR:
        return wire.parse_error(reply)
    return wire.parse_messages(reply)


class PurgeTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_purge_keeps_offsets_and_stays_purged_after_a_crash(self):
        with Namespace(), Sluiced(queues="", durability="write") as d:
            sluicectl("queue", "create", "ps", "--type", "stream")
            sluicectl("queue", "create", "pw", "--type", "work")
            produce("ps", [f"old-{i}" for i in range(5)])
            produce("pw", ["w-0", "w-1", "w-2"])
            self.assertEqual(len(consume_offsets("ps", 5, "--from", "earliest")), 5)
            held = sluice("receive", "pw", "--wait-ms", "0").stdout.split("\t")[0]
            self.assertTrue(held)

            rest("POST", "/v1/queues/ps/purge", {})
            rest("POST", "/v1/queues/pw/purge", {})

            # Stream: the log starts where it ended; offsets are not reused.
            [p] = partitions("ps")
            self.assertEqual((p["low_offset"], p["next_offset"], p["depth"]), (5, 5, 0), p)
            produce("ps", ["new-5"])
            self.assertEqual(consume_offsets("ps", 1, "--from", "earliest"), [(0, 5, "new-5")])
            # An old offset is out of range on the wire (a consumer resets to earliest).
            sock = harness.udp_socket(timeout_s=5.0)
            c = wire.Client(sock, (harness.SERVER_IP, harness.SERVER_PORT), client_id=78)
            c.handshake()
            ps_id = c.lookup("ps")[0]
            err = fetch_errc(c, ps_id, 2)
            self.assertEqual(err, "OFFSET_OUT_OF_RANGE")
            old = sluice("consume", "ps", "--from", "2", "--count", "1", "--timeout-ms", "1000",
                         check=False)
            self.assertNotEqual(old.returncode, 0)
            self.assertIn("OFFSET_OUT_OF_RANGE", old.stderr)

            # Work queue: ready and leased messages are gone; the held receipt names nothing.
            self.assertEqual(sluice("receive", "pw", "--wait-ms", "0").stdout, "")
            gone = sluice("delete", "pw", held, check=False)
            self.assertNotEqual(gone.returncode, 0)
            self.assertIn("UNKNOWN_RECEIPT", gone.stdout + gone.stderr)
            [p] = partitions("pw")
            self.assertEqual((p["depth"], p["in_flight"], p["next_offset"]), (0, 0, 3), p)
            produce("pw", ["w-3"])

            # A crash right after: the purge mark is on disk, so nothing purged comes back.
            d.kill()
            d.start()
            self.assertEqual(consume_offsets("ps", 2, "--from", "earliest", timeout_ms=1500),
                             [(0, 5, "new-5")])
            [p] = partitions("ps")
            self.assertEqual((p["low_offset"], p["next_offset"]), (5, 6), p)
            got = sluice("receive", "pw", "--max", "10", "--wait-ms", "1000").stdout
            self.assertEqual([line.split("\t", 1)[1] for line in got.splitlines()], ["w-3"])
            produce("ps", ["new-6"])
            self.assertEqual(consume_offsets("ps", 2, "--from", "earliest"),
                             [(0, 5, "new-5"), (0, 6, "new-6")])


def receive_payloads(queue, *args):
    out = sluice("receive", queue, "--max", "100", "--wait-ms", "0", "--delete", *args).stdout
    return sorted(line.split("\t", 1)[1] for line in out.splitlines())


class DedupLiveUpdateTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_dedup_window_update_applies_to_the_running_queue(self):
        with Namespace(), Sluiced(queues=""):
            sluicectl("queue", "create", "dd", "--type", "work", "--attr", "dedup_window_ms=0")
            produce("dd", ["a1"], "--dedup-id", "x")
            produce("dd", ["a2"], "--dedup-id", "x")
            self.assertEqual(receive_payloads("dd"), ["a1", "a2"])  # dedup off
            # Turned on live: a repeated dedup id is acknowledged, not stored again.
            sluicectl("queue", "update", "dd", "--attr", "dedup_window_ms=60s")
            produce("dd", ["b1"], "--dedup-id", "y")
            produce("dd", ["b2"], "--dedup-id", "y")
            self.assertEqual(receive_payloads("dd"), ["b1"])
            # Shrunk live to 1 ms: "y" (seen longer ago than that) is forgotten.
            sluicectl("queue", "update", "dd", "--attr", "dedup_window_ms=1")
            produce("dd", ["b3"], "--dedup-id", "y")
            self.assertEqual(receive_payloads("dd"), ["b3"])


def metrics():
    """/metrics through prometheus_client's parser: {sample name: [(labels, value)]}."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise unittest.SkipTest("python3-prometheus-client not installed")
    with urllib.request.urlopen(f"http://{harness.REST_ADDRESS}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            out.setdefault(smp.name, []).append((smp.labels, smp.value))
    return out


def value(m, name, **labels):
    return sum(v for lab, v in m.get(name, []) if all(lab.get(k) == x for k, x in labels.items()))


def telemetry(prefix, command):
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(10)
        s.connect(f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2")
        info = json.loads(s.recv(16384).decode())
        s.send(command.encode())
        return json.loads(s.recv(info.get("max_output_len", 16384)).decode())[command]


class StatsAndHistogramsTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_counters_rates_and_histograms_rise_with_traffic(self):
        with Namespace(), Sluiced(queues="", durability="write") as d:
            sluicectl("queue", "create", "hs", "--type", "stream", "--partitions", "2")
            before = metrics()
            n = 300
            lines = [f"payload-{i:04d}" for i in range(n)]
            rest("GET", "/v1/queues/hs")  # the first rate sample
            produce("hs", lines)
            after = metrics()

            # Every message acked once: the ack latency histograms count exactly n more.
            lat = "sluice_ack_latency_seconds_count"
            self.assertEqual(value(after, lat) - value(before, lat), n)
            lcore_lat = "sluice_lcore_ack_latency_seconds_count"
            self.assertEqual(value(after, lcore_lat) - value(before, lcore_lat), n)
            inf = [v for lab, v in after["sluice_ack_latency_seconds_bucket"]
                   if lab["le"] == "+Inf"]
            self.assertEqual(inf, [value(after, lat)])
            self.assertGreater(value(after, "sluice_ack_latency_seconds_sum"), 0)
            # Batches: at least one sealed, and they hold the n messages.
            bm = "sluice_lcore_batch_messages"
            self.assertGreater(value(after, bm + "_count") - value(before, bm + "_count"), 0)
            self.assertEqual(value(after, bm + "_sum") - value(before, bm + "_sum"), n)
            self.assertGreater(value(after, "sluice_lcore_batch_bytes_count"), 0)

            # Per queue and per partition: messages and bytes in.
            self.assertEqual(value(after, "sluice_queue_messages_in_total", queue="hs"), n)
            # Record bytes: the payload plus the record's fields (a few dozen bytes each).
            bytes_in = value(after, "sluice_queue_bytes_in_total", queue="hs")
            payload = sum(len(x) for x in lines)
            self.assertGreater(bytes_in, payload)
            self.assertLess(bytes_in, payload + 100 * n)
            parts = partitions("hs")
            self.assertEqual(sum(p["messages_in"] for p in parts), n)
            self.assertTrue(all(p["bytes_in"] > 0 for p in parts), parts)
            self.assertGreater(sum(p["bytes_on_disk"] for p in parts), 0, parts)

            # Messages out: a fetch of everything counts n out.
            self.assertEqual(len(consume_offsets("hs", n, "--from", "earliest")), n)
            self.assertEqual(sum(p["messages_out"] for p in partitions("hs")), n)

            # Rates: the control plane computes them from samples >= 1 s apart.
            wait_for(lambda: rest("GET", "/v1/queues/hs")["stats"]["totals"]
                     ["messages_in_per_s"] > 0, 10, "a messages_in rate")

            # The same histograms through DPDK telemetry.
            hist = telemetry(d.file_prefix, "/sluice/histograms")
            total = sum(v["count"] for k, v in hist.items() if k.endswith("_ack_latency_ns"))
            self.assertEqual(total, value(metrics(), lat))
            one = next(v for k, v in hist.items() if k.endswith("_ack_latency_ns"))
            self.assertEqual(one["le_inf"], one["count"])
            self.assertIn("le_1024", one)
            queues = telemetry(d.file_prefix, "/sluice/queues")
            self.assertEqual(sum(q["messages_in"] for k, q in queues.items()
                                 if k.startswith("queue")), n)


if __name__ == "__main__":
    unittest.main(verbosity=2)
