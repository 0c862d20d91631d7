"""The control plane of a running sluiced (TAP layout in a network namespace): every REST
endpoint, every validation error class with its JSON body, idempotent and conflicting creates,
queues created at run time carrying traffic through the wire, purge, delete while producers and
consumers run on other queues, /metrics through prometheus_client's parser, DPDK telemetry under
/sluice/, sluicectl against the daemon, and a restart that keeps the metadata."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import harness
from harness import Namespace, Sluiced, sluice, wait_for

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # Debian's python3-prometheus-client (scripts/install-deps)
    text_string_to_metric_families = None

BASE = f"http://{harness.REST_ADDRESS}"


def http(method, path, body=None, raw=None):
    """(status, parsed JSON or text, headers). `raw`: bytes sent as they are."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is None and method in ("POST", "PATCH", "PUT"):
        data = b""  # httplib wants a Content-Length on POST
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text, headers = r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        status, text, headers = e.code, e.read().decode(), e.headers
    try:
        return status, json.loads(text), headers
    except ValueError:
        return status, text, headers


def sluicectl(*args, check=True):
    cp = subprocess.run([harness.binary("control/sluicectl"), "--server", harness.REST_ADDRESS,
                         *args], capture_output=True, text=True, timeout=60)
    if check and cp.returncode != 0:
        raise AssertionError(f"sluicectl {' '.join(args)} exited {cp.returncode}:\n"
                             f"{cp.stdout}\n{cp.stderr}")
    return cp


def receive_all(queue, count, attempts=30):
    """Payloads leased from `queue` until `count` arrived. RECEIVE from any partition looks at the
    partitions of the worker it reaches, so a multi-partition queue takes a few calls."""
    got = []
    for _ in range(attempts):
        out = sluice("receive", queue, "--max", "10", "--wait-ms", "100").stdout
        got += [line.split("\t", 1)[1] for line in out.splitlines()]
        if len(got) >= count:
            break
    return sorted(got)


def wait_ready():
    wait_for(lambda: http("GET", "/health/ready")[0] == 200, 30, "readiness")


def telemetry(prefix, command):
    """One DPDK telemetry command over the v2 socket (what dpdk-telemetry.py does)."""
    path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(10)
        s.connect(path)
        info = json.loads(s.recv(16384).decode())
        s.send(command.encode())
        reply = json.loads(s.recv(info.get("max_output_len", 16384)).decode())
    return reply[command]


class ControlTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def assertError(self, response, status, code, field=None):
        got_status, body, _ = response
        self.assertEqual(got_status, status, body)
        self.assertIsInstance(body, dict, f"error body is not JSON: {body!r}")
        self.assertEqual(body["error"]["code"], code, body)
        self.assertTrue(body["error"]["message"], body)
        if field is not None:
            self.assertEqual(body["error"]["field"], field, body)

    def test_endpoints_errors_runtime_queues_metrics_telemetry_sluicectl(self):
        with Namespace(), Sluiced(workers=2) as s:
            wait_ready()
            # ---- health, role, version ----
            st, live, _ = http("GET", "/health/live")
            self.assertEqual((st, live["status"]), (200, "ok"), live)
            st, ready, _ = http("GET", "/health/ready")
            self.assertEqual(st, 200, ready)
            self.assertEqual({c["name"] for c in ready["checks"] if c["ok"]},
                             {"ports", "catalog", "lcores", "storage"})
            st, role, _ = http("GET", "/v1/role")
            self.assertEqual((st, role["role"]), (200, "standalone"))
            st, version, _ = http("GET", "/v1/version")
            self.assertEqual(st, 200)
            self.assertEqual(version["api"], "v1")
            self.assertIn("dpdk", version["components"])

            # ---- the layout's [[queue]] entries went through the catalog ----
            st, listing, _ = http("GET", "/v1/queues")
            self.assertEqual(st, 200)
            names = {q["name"]: q for q in listing["queues"]}
            self.assertEqual(set(names), {"events", "jobs"})
            self.assertEqual(names["jobs"]["attributes"]["visibility_timeout_ms"], 30000)

            # ---- create: 201, idempotent 200, conflicting 409 ----
            spec = {"name": "orders", "type": "work", "partitions": 3,
                    "attributes": {"visibility_timeout_ms": 45000, "max_receive_count": 2,
                                   "dead_letter_queue": "jobs"}}
            st, orders, headers = http("POST", "/v1/queues", spec)
            self.assertEqual(st, 201, orders)
            self.assertEqual(headers["Location"], "/v1/queues/orders")
            st, again, _ = http("POST", "/v1/queues", spec)
            self.assertEqual((st, again["id"]), (200, orders["id"]))
            self.assertError(http("POST", "/v1/queues", dict(spec, partitions=4)), 409,
                             "conflict", "partitions")

            # ---- every validation error class ----
            self.assertError(http("POST", "/v1/queues", raw=b"{not json"), 400, "bad_json")
            self.assertError(http("POST", "/v1/queues", {"name": "x", "type": "work", "colour": 1}),
                             400, "unknown_field", "colour")
            self.assertError(http("POST", "/v1/queues",
                                  {"name": "x", "type": "work", "attributes": {"speed": 1}}),
                             400, "unknown_field", "attributes.speed")
            self.assertError(http("POST", "/v1/queues",
                                  {"name": "x", "type": "work",
                                   "attributes": {"priority_levels": 17}}),
                             400, "invalid_argument", "attributes.priority_levels")
            self.assertError(http("POST", "/v1/queues", {"name": "bad name!", "type": "work"}),
                             400, "invalid_argument", "name")
            self.assertError(http("POST", "/v1/queues", {"name": "x", "type": "topic"}),
                             400, "invalid_argument", "type")
            self.assertError(http("POST", "/v1/queues",
                                  {"name": "x", "type": "stream",
                                   "attributes": {"fifo": True}}),
                             400, "invalid_argument")
            self.assertError(http("POST", "/v1/queues",
                                  {"name": "x", "type": "work",
                                   "attributes": {"dead_letter_queue": "nope",
                                                  "max_receive_count": 1}}),
                             400, "invalid_argument", "attributes.dead_letter_queue")
            self.assertError(http("PATCH", "/v1/queues/orders", {"attributes": {"fifo": True}}),
                             400, "immutable", "attributes.fifo")
            self.assertError(http("GET", "/v1/queues/nope"), 404, "not_found", "name")
            self.assertError(http("GET", "/v1/nothing-here"), 404, "not_found")
            st, body, headers = http("PUT", "/v1/queues", {})
            self.assertError((st, body, headers), 405, "method_not_allowed")
            self.assertIn("POST", headers["Allow"])
            self.assertError(http("DELETE", "/v1/queues/jobs"), 409, "conflict")  # orders' DLQ
            self.assertError(http("POST", "/v1/queues", raw=b" " * (1 << 20) + b"{}"), 413,
                             "payload_too_large")
            # The shards were sized at start for 256 KiB messages: a larger queue is refused by
            # the dataplane before publication, and the catalog rolls the create back.
            self.assertError(http("POST", "/v1/queues",
                                  {"name": "huge", "type": "stream",
                                   "attributes": {"max_message_bytes": 1 << 20}}),
                             409, "limit_exceeded", "attributes.max_message_bytes")
            self.assertEqual(http("GET", "/v1/queues/huge")[0], 404)

            # ---- update ----
            st, patched, _ = http("PATCH", "/v1/queues/orders",
                                  {"attributes": {"visibility_timeout_ms": 60000}})
            self.assertEqual((st, patched["attributes"]["visibility_timeout_ms"]), (200, 60000))

            # ---- a stream and a work queue created at run time carry traffic ----
            st, rt_stream, _ = http("POST", "/v1/queues",
                                    {"name": "rt-stream", "type": "stream", "partitions": 4})
            self.assertEqual(st, 201, rt_stream)
            n = 2000
            payloads = [f"m-{i:05d}" for i in range(n)]
            out = sluice("produce", "rt-stream", input="\n".join(payloads) + "\n", timeout=120)
            self.assertIn(f"acked {n}", out.stdout)
            cp = sluice("consume", "rt-stream", "--from", "earliest", "--count", str(n),
                        "--timeout-ms", "10000", timeout=120)
            self.assertEqual(sorted(cp.stdout.split()), payloads)
            sluice("produce", "orders", input="o1\no2\no3\n")
            self.assertEqual(receive_all("orders", 3), ["o1", "o2", "o3"])

            # ---- describe with live per-partition stats ----
            st, desc, _ = http("GET", "/v1/queues/rt-stream")
            self.assertEqual(st, 200)
            parts = desc["stats"]["partitions"]
            self.assertEqual(len(parts), 4)
            self.assertEqual(sum(p["next_offset"] for p in parts), n)
            self.assertEqual(sum(p["depth"] for p in parts), n)
            self.assertTrue(all(p["lcore"] in (1, 2) for p in parts), parts)
            # A queue created at run time is durable (the layout's default `write`): its log
            # holds at least the payload bytes.
            self.assertGreater(sum(p["bytes_on_disk"] for p in parts), 7 * n, parts)
            st, desc, _ = http("GET", "/v1/queues/orders")
            self.assertEqual(sum(p["in_flight"] for p in desc["stats"]["partitions"]), 3)

            self.check_metrics(n)

            # ---- purge (the messages go, the offsets stay: test_ops.py has the details) ----
            sluice("produce", "rt-stream", input="after\n")
            st, purged, _ = http("POST", "/v1/queues/rt-stream/purge")
            self.assertEqual((st, purged["purge_generation"]), (200, 1))
            st, desc, _ = http("GET", "/v1/queues/rt-stream")
            self.assertEqual(sum(p["depth"] for p in desc["stats"]["partitions"]), 0, desc)
            self.assertEqual(sum(p["next_offset"] for p in desc["stats"]["partitions"]), n + 1)
            self.assertTrue(all(p["low_offset"] == p["next_offset"]
                                for p in desc["stats"]["partitions"]), desc)
            cp = sluice("consume", "rt-stream", "--from", "earliest", "--count", "1",
                        "--timeout-ms", "1000", timeout=60, check=False)
            self.assertEqual(cp.stdout.strip(), "", "purged messages came back")

            # ---- stats, metrics ----
            st, stats, _ = http("GET", "/v1/stats")
            self.assertEqual(st, 200)
            self.assertEqual(stats["published_version"], stats["catalog_version"])
            self.assertEqual(len(stats["lcores"]), 2)
            self.assertGreaterEqual(sum(l["produced"] for l in stats["lcores"]), n + 4)

            # ---- delete ----
            st, deleted, _ = http("DELETE", "/v1/queues/rt-stream")
            self.assertEqual((st, deleted["deleted"]["name"]), (200, "rt-stream"))
            self.assertError(http("GET", "/v1/queues/rt-stream"), 404, "not_found")
            gone = sluice("produce", "rt-stream", input="x\n", check=False, timeout=60)
            self.assertNotEqual(gone.returncode, 0)
            self.assertIn("UNKNOWN_QUEUE", gone.stderr + gone.stdout)

            # ---- DPDK telemetry ----
            lcores = telemetry(s.file_prefix, "/sluice/lcores")
            self.assertEqual(set(lcores), {"lcore1", "lcore2"})
            self.assertGreater(lcores["lcore1"]["loops"], 0)
            # This test's frames went through lcore 1 or 2: some pass found work, and the time
            # in busy passes is part of the loop's time.
            for name, l in lcores.items():
                self.assertLessEqual(l["busy_ns"], l["loop_ns"], name)
            self.assertGreater(sum(l["busy_ns"] for l in lcores.values()), 0)
            self.assertGreater(sum(l["rx_bursts"] for l in lcores.values()), 0)
            queues = telemetry(s.file_prefix, "/sluice/queues")
            self.assertIn(f"queue{orders['id']}", queues)
            health = telemetry(s.file_prefix, "/sluice/health")
            self.assertEqual((health["live"], health["ready"]), (1, 1))
            if shutil.which("dpdk-telemetry.py"):
                cp = subprocess.run(["dpdk-telemetry.py", "-f", s.file_prefix],
                                    input="/sluice/health\n", capture_output=True, text=True,
                                    timeout=30)
                self.assertIn('"ready": 1', cp.stdout, cp.stdout + cp.stderr)

            # ---- sluicectl against the daemon ----
            cp = sluicectl("queue", "list")
            self.assertIn("orders", cp.stdout)
            self.assertIn("events", cp.stdout)
            sluicectl("queue", "create", "ctl-q", "--type", "work", "--attr", "ttl_ms=5m")
            self.assertEqual(json.loads(sluicectl("--json", "queue", "describe", "ctl-q").stdout)
                             ["attributes"]["ttl_ms"], 300000)
            self.assertEqual(sluicectl("queue", "describe", "nope", check=False).returncode, 1)
            sluicectl("queue", "delete", "ctl-q")
            self.assertEqual(sluicectl("health").returncode, 0)
            stats = json.loads(sluicectl("--json", "stats").stdout)
            self.assertEqual(len(stats["lcores"]), 2)
            self.assertIn("sluice_lcore_loops_total", sluicectl("metrics").stdout)

            self.assertTrue(s.alive())
            self.assertEqual(s.stop(), 0, s.log())

    def check_metrics(self, n):
        st, text, headers = http("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        if text_string_to_metric_families is None:
            self.skipTest("python3-prometheus-client not installed")
        families = {f.name: f for f in text_string_to_metric_families(text)}
        def samples(name):
            return families[name].samples
        self.assertEqual(samples("sluice_ready")[0].value, 1)
        self.assertEqual(samples("sluice_live")[0].value, 1)
        queues = {s.labels["queue"] for s in samples("sluice_queue_info")}
        self.assertTrue({"events", "jobs", "orders", "rt-stream"} <= queues, queues)
        offsets = [s for s in samples("sluice_partition_next_offset")
                   if s.labels["queue"] == "rt-stream"]
        self.assertEqual(sum(s.value for s in offsets), n)
        loops = {s.labels["lcore"]: s.value for s in samples("sluice_lcore_loops")
                 if s.name == "sluice_lcore_loops_total"}
        self.assertEqual(set(loops), {"1", "2"})
        self.assertTrue(all(v > 0 for v in loops.values()), loops)
        rx = sum(s.value for s in samples("sluice_lcore_rx_packets")
                 if s.name == "sluice_lcore_rx_packets_total")
        self.assertGreater(rx, 0)
        self.assertIn("sluice_lcore_ring_occupancy", families)
        # Durable queues were written: the workers' io_uring counters moved.
        submits = sum(s.value for s in samples("sluice_lcore_uring_submits")
                      if s.name == "sluice_lcore_uring_submits_total")
        written = sum(s.value for s in samples("sluice_lcore_batches")
                      if s.name == "sluice_lcore_batches_total")
        self.assertGreater(submits, 0)
        self.assertGreater(written, 0)
        disk = sum(s.value for s in samples("sluice_partition_disk_bytes")
                   if s.labels["queue"] == "rt-stream")
        self.assertGreater(disk, 0)
        drops = {s.labels["reason"] for s in samples("sluice_lcore_drops")}
        self.assertIn("malformed_frame", drops)

    def test_attribute_update_reaches_the_running_queue(self):
        with Namespace(), Sluiced():
            wait_ready()
            st, _, _ = http("POST", "/v1/queues", {"name": "vis", "type": "work"})
            self.assertEqual(st, 201)
            # Lower the default visibility timeout from 30 s to 300 ms on the live queue: a
            # message received without an explicit timeout comes back within a second.
            st, patched, _ = http("PATCH", "/v1/queues/vis",
                                  {"attributes": {"visibility_timeout_ms": 300}})
            self.assertEqual((st, patched["attributes"]["visibility_timeout_ms"]), (200, 300))
            sluice("produce", "vis", input="v1\n")
            first = sluice("receive", "vis", "--max", "1", "--wait-ms", "2000").stdout
            self.assertTrue(first.rstrip().endswith("v1"), first)
            started = time.monotonic()
            again = sluice("receive", "vis", "--max", "1", "--wait-ms", "5000").stdout
            self.assertTrue(again.rstrip().endswith("v1"), again)
            self.assertLess(time.monotonic() - started, 3.0)

    def test_delete_while_producers_and_consumers_run_on_other_queues(self):
        with Namespace(), Sluiced(workers=2) as s:
            wait_ready()
            n = 20_000
            env = dict(os.environ, SLUICE_SERVER=f"{harness.SERVER_IP}:{harness.SERVER_PORT}")
            cli = harness.binary("client/sluice")
            # The consumer writes to a file: a pipe nobody reads while queues churn would fill,
            # block the consumer, and let its subscription lapse (no CREDIT for 3 s).
            consumed_path = os.path.join(s.dir, "consumed.txt")
            consumed = open(consumed_path, "w")
            consumer = harness.spawn(
                [cli, "consume", "events", "--from", "earliest", "--count", str(n),
                 "--timeout-ms", "30000"],
                stdout=consumed, stderr=subprocess.PIPE, text=True, env=env)
            expected = [f"e-{i:06d}" for i in range(n)]
            producer = harness.spawn(
                [cli, "produce", "events"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, env=env)
            work_producer = harness.spawn(
                [cli, "produce", "jobs", "--count", "5000", "--size", "64"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            try:
                producer.stdin.write("\n".join(expected[: n // 2]) + "\n")
                producer.stdin.flush()
                # Queues come and go, with traffic of their own, while the others run.
                for i in range(15):
                    name = f"tmp-{i}"
                    qtype = "stream" if i % 2 else "work"
                    st, q, _ = http("POST", "/v1/queues",
                                    {"name": name, "type": qtype, "partitions": 2})
                    self.assertEqual(st, 201, q)
                    sluice("produce", name, input="".join(f"t{j}\n" for j in range(50)))
                    if i % 3 == 0:
                        self.assertEqual(http("POST", f"/v1/queues/{name}/purge")[0], 200)
                    st, _, _ = http("DELETE", f"/v1/queues/{name}")
                    self.assertEqual(st, 200)
                out, err = producer.communicate("\n".join(expected[n // 2:]) + "\n", timeout=120)
                self.assertEqual(producer.returncode, 0, err)
                self.assertIn(f"acked {n}", out)
                out, err = work_producer.communicate(timeout=120)
                self.assertEqual(work_producer.returncode, 0, err)
                self.assertIn("acked 5000", out)
                _, err = consumer.communicate(timeout=120)
                self.assertEqual(consumer.returncode, 0, err)
                consumed.close()
                with open(consumed_path) as f:
                    self.assertEqual(sorted(f.read().split()), expected,
                                     "lost or duplicated messages")
                # RECEIVE(any) looks at the partitions of the worker it reaches: an empty answer
                # ends the drain only when several in a row say so.
                drained, empty_in_a_row = 0, 0
                while drained < 5000 and empty_in_a_row < 20:
                    got = sluice("receive", "jobs", "--max", "100", "--delete",
                                 "--wait-ms", "50").stdout.splitlines()
                    drained += len(got)
                    empty_in_a_row = 0 if got else empty_in_a_row + 1
                self.assertEqual(drained, 5000)
            finally:
                consumed.close()
                for p in (consumer, producer, work_producer):
                    if p.poll() is None:
                        os.killpg(p.pid, 9)
                        p.wait()
            st, listing, _ = http("GET", "/v1/queues")
            self.assertEqual({q["name"] for q in listing["queues"]}, {"events", "jobs"})
            self.assertTrue(s.alive())
            self.assertEqual(s.stop(), 0, s.log())

    def test_restart_keeps_the_metadata(self):
        meta = tempfile.mkdtemp(prefix="sluice-it-meta-")
        try:
            with Namespace():
                with Sluiced(metadata_dir=meta) as s:
                    wait_ready()
                    st, kept, _ = http("POST", "/v1/queues",
                                       {"name": "kept", "type": "work", "partitions": 2,
                                        "attributes": {"ttl_ms": 60000}})
                    self.assertEqual(st, 201)
                    self.assertEqual(http("PATCH", "/v1/queues/kept",
                                          {"attributes": {"delay_ms": 250}})[0], 200)
                    st, tmp, _ = http("POST", "/v1/queues", {"name": "tmp", "type": "stream"})
                    self.assertEqual(http("DELETE", "/v1/queues/tmp")[0], 200)
                    self.assertEqual(s.stop(), 0, s.log())
                with Sluiced(metadata_dir=meta) as s:
                    wait_ready()
                    st, again, _ = http("GET", "/v1/queues/kept")
                    self.assertEqual(st, 200)
                    self.assertEqual(again["id"], kept["id"])
                    self.assertEqual(again["partitions"], 2)
                    self.assertEqual(again["attributes"]["ttl_ms"], 60000)
                    self.assertEqual(again["attributes"]["delay_ms"], 250)
                    self.assertEqual(http("GET", "/v1/queues/tmp")[0], 404)
                    # Ids are never reused, across restarts too.
                    st, fresh, _ = http("POST", "/v1/queues", {"name": "fresh", "type": "stream"})
                    self.assertEqual(st, 201)
                    self.assertGreater(fresh["id"], tmp["id"])
                    # The restored queue runs: traffic through the wire.
                    sluice("produce", "kept", input="k1\n")
                    self.assertEqual(receive_all("kept", 1), ["k1"])
                    self.assertEqual(s.stop(), 0, s.log())
        finally:
            shutil.rmtree(meta, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
