#!/usr/bin/env python3
"""GET /metrics from the control plane (fake backend, seeded queues) and parse it with
prometheus_client's text-format parser: every family typed and documented, every sample line
accounted for by the parser, histograms cumulative, and the values the fake backend reports.

usage: metrics_test.py SLUICE_CONTROL_FAKE
Exit 77 (skipped) when prometheus_client is not installed (scripts/install-deps installs it)."""
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_server import FakeServer  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("SKIP: python3-prometheus-client is not installed")
    sys.exit(77)

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def main():
    with FakeServer(sys.argv[1], "--seed") as server:
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
            content_type = r.headers["Content-Type"]
            text = r.read().decode()
    check(content_type.startswith("text/plain; version=0.0.4"), f"content type {content_type}")

    families = {}
    for fam in text_string_to_metric_families(text):
        check(fam.name not in families, f"family {fam.name} appears twice")
        families[fam.name] = fam
        check(fam.documentation != "", f"{fam.name} has no HELP")
        check(fam.type in ("counter", "gauge", "histogram"), f"{fam.name} type {fam.type}")
        check(len(fam.samples) > 0, f"{fam.name} has no samples")

    # Every sample line of the text was understood by the parser (nothing silently dropped).
    sample_lines = [l for l in text.splitlines() if l and not l.startswith("#")]
    parsed = sum(len(f.samples) for f in families.values())
    check(parsed == len(sample_lines), f"parsed {parsed} samples of {len(sample_lines)} lines")
    # And every family was declared with both HELP and TYPE.
    helps = {l.split()[2] for l in text.splitlines() if l.startswith("# HELP ")}
    types = {l.split()[2] for l in text.splitlines() if l.startswith("# TYPE ")}
    check(helps == types, f"HELP and TYPE lines differ: {helps ^ types}")

    def samples(name, **labels):
        fam = families.get(name)
        check(fam is not None, f"family {name} missing")
        if fam is None:
            return []
        return [s for s in fam.samples
                if all(s.labels.get(k) == v for k, v in labels.items())]

    # Catalog and queues: orders (work, 2 partitions), orders-dlq (work, 1), ticks (stream, 3).
    check(samples("sluice_queues")[0].value == 3, "sluice_queues == 3")
    info = {s.labels["queue"]: s.labels for s in samples("sluice_queue_info")}
    check(set(info) == {"orders", "orders-dlq", "ticks"}, f"queue_info {info}")
    check(info["ticks"]["type"] == "stream", "ticks is a stream")
    depth = samples("sluice_partition_depth_messages")
    check(families["sluice_partition_depth_messages"].type == "gauge", "depth is a gauge")
    check(len(depth) == 6, f"6 partitions have a depth, got {len(depth)}")
    check({(s.labels["queue"], s.labels["partition"]) for s in depth} ==
          {("orders", "0"), ("orders", "1"), ("orders-dlq", "0"),
           ("ticks", "0"), ("ticks", "1"), ("ticks", "2")}, "partition labels")
    inflight = samples("sluice_partition_inflight_messages", queue="orders")
    check(all(s.value == 3 for s in inflight), "work partitions have 3 in flight")
    # Counters: the parser strips _total from the family name and keeps it on samples.
    fam = families.get("sluice_partition_messages_in")
    check(fam is not None and fam.type == "counter", "messages_in is a counter family")
    if fam:
        check(all(s.name == "sluice_partition_messages_in_total" for s in fam.samples),
              "counter samples end in _total")
    # Per lcore.
    rx = samples("sluice_lcore_rx_packets")
    check({s.labels["lcore"] for s in rx} == {"1", "2"}, "two lcores")
    drops = samples("sluice_lcore_drops", lcore="1")
    check({s.labels["reason"] for s in drops} == {"bad_udp_checksum", "ring_full"}, "drop reasons")
    check(samples("sluice_lcore_ring_occupancy", lcore="2")[0].value == 7, "ring occupancy")

    # Histograms: cumulative buckets, +Inf equals _count.
    for name, labels in (("sluice_ack_latency_seconds", {}),
                         ("sluice_lcore_batch_bytes", {"lcore": "1"}),
                         ("sluice_lcore_batch_messages", {"lcore": "2"}),
                         ("sluice_lcore_ack_latency_seconds", {"lcore": "1"})):
        fam = families.get(name)
        check(fam is not None and fam.type == "histogram", f"{name} is a histogram")
        if fam is None:
            continue
        ss = [s for s in fam.samples if all(s.labels.get(k) == v for k, v in labels.items())]
        buckets = [s for s in ss if s.name == name + "_bucket"]
        values = [s.value for s in buckets]
        check(values == sorted(values), f"{name} buckets cumulative: {values}")
        check(buckets[-1].labels["le"] == "+Inf", f"{name} ends with +Inf")
        count = [s.value for s in ss if s.name == name + "_count"]
        check(count == [buckets[-1].value], f"{name} _count equals +Inf bucket")
        check(any(s.name == name + "_sum" for s in ss), f"{name} has _sum")
    lat = [s for s in families["sluice_ack_latency_seconds"].samples
           if s.name.endswith("_bucket")]
    check([s.value for s in lat] == [10, 90, 99, 100, 100], f"ack latency buckets {lat}")

    # Per queue: sums of the partitions; rates are gauges.
    qin = samples("sluice_queue_messages_in", queue="ticks")
    pin = samples("sluice_partition_messages_in", queue="ticks")
    check(len(qin) == 1 and qin[0].value == sum(s.value for s in pin),
          f"queue messages_in is the sum of its partitions: {qin} {pin}")
    check(families["sluice_queue_bytes_out"].type == "counter", "queue bytes_out is a counter")
    for fam in ("sluice_queue_messages_in_per_second", "sluice_partition_bytes_out_per_second",
                "sluice_queue_disk_bytes"):
        check(fam in families and families[fam].type == "gauge", f"{fam} is a gauge")

    check(samples("sluice_ready")[0].value == 1, "ready")
    check(samples("sluice_role", role="primary")[0].value == 1, "role primary")
    print(f"{len(families)} families, {parsed} samples parsed")
    if failures:
        print(f"{len(failures)} failed")
        return 1
    print("metrics_test: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
