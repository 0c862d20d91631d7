#!/usr/bin/env python3
"""sluicectl end to end against sluice-control-fake: every command, human and --json output,
the documented exit codes (0 ok, 1 refused/not found, 2 usage, 3 unreachable), --help per
subcommand, and metadata that survives a server restart (file store).

usage: sluicectl_test.py SLUICE_CONTROL_FAKE SLUICECTL"""
import json
import os
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_server import FakeServer  # noqa: E402

FAKE, CTL = sys.argv[1], sys.argv[2]
failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def ctl(server, *args):
    env = dict(os.environ)
    env.pop("SLUICE_SERVER", None)
    argv = [CTL] + (["--server", server] if server else []) + list(args)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    return p.returncode, p.stdout, p.stderr


def expect(server, code, *args, out=None, err=None):
    rc, o, e = ctl(server, *args)
    what = " ".join(args)
    check(rc == code, f"`sluicectl {what}` exit {rc}, want {code}; stderr: {e.strip()}")
    if out is not None:
        check(out in o, f"`sluicectl {what}` stdout lacks {out!r}: {o!r}")
    if err is not None:
        check(err in e, f"`sluicectl {what}` stderr lacks {err!r}: {e!r}")
    return o


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    meta = tempfile.mkdtemp(prefix="sluicectl-test-")
    # Help and usage need no server.
    expect(None, 0, "--help", out="exit codes:")
    for words, title in ((["queue"], "usage: sluicectl queue create|list"),
                         (["queue", "create"], "usage: sluicectl queue create NAME --type"),
                         (["queue", "list"], "usage: sluicectl queue list"),
                         (["queue", "describe"], "usage: sluicectl queue describe NAME"),
                         (["queue", "update"], "usage: sluicectl queue update NAME"),
                         (["queue", "purge"], "usage: sluicectl queue purge NAME"),
                         (["queue", "delete"], "usage: sluicectl queue delete NAME"),
                         (["health"], "usage: sluicectl health"),
                         (["stats"], "usage: sluicectl stats [--watch SECONDS]"),
                         (["metrics"], "usage: sluicectl metrics")):
        expect(None, 0, *words, "--help", out=title)
        expect(None, 0, "help", *words, out=title)
    expect(None, 2, err="no command")
    expect(None, 2, "frobnicate", err="unknown command")
    expect(None, 2, "queue", "create", "q", err="--type")
    expect(None, 2, "queue", "create", "q", "--type", "work", "--attr", "nope=1", err="unknown attribute")
    expect(None, 2, "queue", "create", "q", "--type", "work", "--attr", "ttl_ms=5parsecs", err="not a number")
    expect(None, 2, "queue", "update", "q", err="--attr")
    expect(None, 2, "queue", "describe", err="exactly one NAME")
    expect(None, 2, "stats", "--watch", "0", err="--watch")
    expect(None, 2, "health", "--attr", "ttl_ms=1", err="belong to queue")
    expect("localhost", 2, "health", err="HOST:PORT")
    expect(None, 2, "--bogus", "health", err="unknown option")
    expect(None, 0, "attributes", out="visibility_timeout_ms")

    # Nothing listens there: exit 3.
    expect(f"127.0.0.1:{free_port()}", 3, "queue", "list", err="cannot reach")
    expect(f"127.0.0.1:{free_port()}", 3, "health")

    with FakeServer(FAKE, "--metadata-dir", meta) as s:
        a = s.address
        expect(a, 0, "queue", "create", "jobs-dlq", "--type", "work", out="created queue jobs-dlq (id 1)")
        expect(a, 0, "queue", "create", "jobs", "--type", "work", "--partitions", "4",
               "--attr", "visibility_timeout_ms=45s", "--attr", "max_receive_count=5",
               "--attr", "dead_letter_queue=jobs-dlq", out="created queue jobs (id 2)")
        expect(a, 0, "queue", "create", "jobs", "--type", "work", "--partitions", "4",
               "--attr", "visibility_timeout_ms=45000", "--attr", "max_receive_count=5",
               "--attr", "dead_letter_queue=jobs-dlq", out="exists, identical")
        expect(a, 1, "queue", "create", "jobs", "--type", "work", "--partitions", "2",
               err="conflict [partitions]")
        expect(a, 1, "queue", "create", "bad", "--type", "work", "--attr", "priority_levels=17",
               err="[attributes.priority_levels]")
        expect(a, 0, "--json", "queue", "create", "ticks", "--type", "stream",
               "--attr", "retention_ms=7d", "--attr", "retention_bytes=1GiB")

        out = expect(a, 0, "queue", "list", out="NAME")
        check("jobs" in out and "ticks" in out and "DURABILITY" in out, f"list table: {out}")
        rc, out, _ = ctl(a, "--json", "queue", "list")
        listed = json.loads(out)
        check([q["name"] for q in listed["queues"]] == ["jobs-dlq", "jobs", "ticks"], f"json list {out}")
        ticks = [q for q in listed["queues"] if q["name"] == "ticks"][0]
        check(ticks["attributes"]["retention_ms"] == 7 * 86400 * 1000, "retention 7d in ms")
        check(ticks["attributes"]["retention_bytes"] == 1 << 30, "retention 1GiB")

        out = expect(a, 0, "queue", "describe", "jobs", out="visibility_timeout_ms")
        check("45000" in out and "PART" in out and "DURABLE" in out, f"describe: {out}")
        rc, out, _ = ctl(a, "--json", "queue", "describe", "jobs")
        d = json.loads(out)
        check(len(d["stats"]["partitions"]) == 4, "4 partitions of stats")
        expect(a, 1, "queue", "describe", "nope", err="no queue named \"nope\"")
        rc, out, _ = ctl(a, "--json", "queue", "describe", "nope")
        check(rc == 1 and json.loads(out)["error"]["code"] == "not_found", f"--json error body {out}")

        expect(a, 0, "queue", "update", "jobs", "--attr", "ttl_ms=1h", out="updated queue jobs")
        expect(a, 1, "queue", "update", "jobs", "--attr", "fifo=true", err="immutable")
        expect(a, 0, "queue", "purge", "jobs", out="purged queue jobs (purge 1)")
        expect(a, 1, "queue", "delete", "jobs-dlq", err="dead_letter_queue of")
        expect(a, 0, "health", out="ready: ok")
        rc, out, _ = ctl(a, "--json", "health")
        check(rc == 0 and json.loads(out)["live"]["status"] == "ok", f"health json {out}")
        out = expect(a, 0, "stats", out="LCORE")
        check("jobs" in out and "THROTTLED" in out, f"stats: {out}")
        # Ack latency quantiles from the fake's histogram (5, 40, 4, 1 in 10us/100us/1ms/10ms).
        check("ACK_P99" in out and "<=100us" in out and "<=10ms" in out, f"stats quantiles: {out}")
        out = expect(a, 0, "stats", "--watch", "0.2", "--count", "2")
        check(out.count("catalog v") == 2, f"two refreshes: {out}")
        rc, out, _ = ctl(a, "--json", "stats")
        check(rc == 0 and len(json.loads(out)["lcores"]) == 2, "stats json")
        expect(a, 0, "metrics", out="# TYPE sluice_partition_depth_messages gauge")
        expect(a, 0, "role", out="role: primary")
        expect(a, 0, "version", out="version: 0.1.0")
        expect(a, 0, "queue", "delete", "ticks", out="deleted queue ticks")
        expect(a, 1, "queue", "delete", "ticks", err="not_found")
        # SLUICE_SERVER is honoured when --server is absent.
        env = dict(os.environ, SLUICE_SERVER=a)
        p = subprocess.run([CTL, "queue", "list"], capture_output=True, text=True, env=env, timeout=30)
        check(p.returncode == 0 and "jobs" in p.stdout, "SLUICE_SERVER")

    # A restart keeps the metadata (file store), ids go on.
    with FakeServer(FAKE, "--metadata-dir", meta) as s:
        rc, out, _ = ctl(s.address, "--json", "queue", "list")
        names = [q["name"] for q in json.loads(out)["queues"]]
        check(names == ["jobs-dlq", "jobs"], f"after restart: {names}")
        jobs = json.loads(ctl(s.address, "--json", "queue", "describe", "jobs")[1])
        check(jobs["attributes"]["ttl_ms"] == 3600000 and jobs["purge_generation"] == 1,
              f"updates survived: {jobs}")
        expect(s.address, 0, "queue", "create", "again", "--type", "stream", out="(id 4)")

    print(f"{checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
