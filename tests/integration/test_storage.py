"""Durability end to end with real processes (issue 5):

- crash test: a producer streams with `dsync` while the test SIGKILLs sluiced at random moments
  (20 rounds, bounded in time) and restarts it on the same data directory; afterwards every
  message the producer saw acknowledged is present exactly once, in order, payload intact;
- work-queue deletes survive a crash (an acked message is not redelivered);
- fault injection: write errors on one partition turn into STORAGE_FAILED there while the other
  partition keeps serving;
- a work queue created at runtime: its partitions' files are opened off the lcore, its deletes
  and a purge mark go through the lcore's io_uring (no blocking file call on the lcore, asserted
  by the stats file's counters), and they survive a SIGKILL;
- a queue deleted at runtime: its partitions' directories are removed by the worker's file
  worker thread (dirs_removed), not on the lcore.
"""

import hashlib
import os
import random
import socket
import struct
import threading
import time
import unittest

import harness
import wire
from harness import Namespace, Sluiced, sluice, sluicectl

STREAM = """
[[queue]]
name = "ledger"
type = "stream"
partitions = 2
"""

WORK = """
[[queue]]
name = "jobs"
type = "work"
partitions = 1
visibility_timeout_ms = 60000
"""

SERVER = (harness.SERVER_IP, harness.SERVER_PORT)
ROUNDS = int(os.environ.get("SLUICE_CRASH_ROUNDS", "20"))
PER_FRAME = 4  # frames stay far below the MTU (no IP fragments)


def payload(seq):
    """Self-checking payload: the sequence and a digest of it, padded to a varying length."""
    body = f"seq={seq:08d}".encode()
    pad = (seq * 37) % 100
    digest = hashlib.blake2b(body + bytes(pad), digest_size=8).hexdigest().encode()
    return body + b" " + digest + b" " + b"x" * pad


def storage_stats(s):
    """The storage counters of the stats file, summed over the workers that have storage."""
    total = {}
    for w in s.stats()["workers"]:
        for k, v in w.get("storage", {}).items():
            total[k] = total.get(k, 0) + v
    return total


class Producer:
    """One idempotent producer (fixed id, sequences from 0) with one frame in flight: after a
    crash it resends the same frame (same sequences) until it is acknowledged."""

    def __init__(self, queue_id, partition):
        self.queue_id, self.partition = queue_id, partition
        self.producer_id = random.getrandbits(63) | 1
        self.next_seq = 0
        self.acked = []          # sequences acknowledged OK or DUPLICATE, in order
        self.duplicates = 0      # resent after a crash and found already written
        self.request = 0
        self.client = None

    def connect(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.2)
        sock.bind(("0.0.0.0", 0))
        self.client = wire.Client(sock, SERVER, client_id=self.producer_id)
        self.client.handshake()

    def send_one_frame(self, alive):
        """Sends the pending frame until its acks arrive or sluiced dies. True if acked."""
        seqs = list(range(self.next_seq, self.next_seq + PER_FRAME))
        frame_bytes = lambda r: wire.produce(  # noqa: E731
            self.queue_id, [payload(s) for s in seqs], producer=self.producer_id,
            first_sequence=seqs[0], partition=self.partition, client=self.producer_id, request=r)
        answered = {}
        others = []
        give_up = time.monotonic() + 15
        while alive():
            if time.monotonic() > give_up:
                raise AssertionError(f"seqs {seqs[0]}..: no complete ack in 15 s; got {answered}, "
                                     f"other frames {others[-3:]}")
            self.request += 1
            req = self.request
            try:
                self.client.sock.sendto(frame_bytes(req), SERVER)
            except OSError:  # sluiced is gone and its TAP interface with it
                continue
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline and len(answered) < len(seqs):
                try:
                    data, _ = self.client.sock.recvfrom(65536)
                except TimeoutError:
                    if not alive():
                        return False
                    continue
                h = wire.parse_header(data)
                if h["type"] != wire.ACK:
                    others.append(wire.parse_error(data) if h["type"] == wire.ERROR else h)
                    continue
                for part, errc, count, first_seq, _ in wire.parse_acks(data):
                    for s in range(first_seq, first_seq + count):
                        if s in seqs:
                            answered[s] = errc
            if len(answered) == len(seqs):
                bad = {s: e for s, e in answered.items() if e not in ("OK", "DUPLICATE")}
                if bad:
                    raise AssertionError(f"unexpected acks {bad}")
                self.acked.extend(seqs)
                self.duplicates += sum(1 for e in answered.values() if e == "DUPLICATE")
                self.next_seq += PER_FRAME
                return True
            answered = {s: e for s, e in answered.items() if e in ("OK", "DUPLICATE")}
        return False


def fetch_partition(client, queue_id, partition):
    """Every message of a partition from offset 0 to its end: [(offset, payload)]."""
    got, offset = [], 0
    while True:
        reply = client.call(lambda r: wire.fetch(queue_id, partition, offset, 200,
                                                 client.client_id, r), (wire.MESSAGES, wire.ERROR))
        if wire.parse_header(reply)["type"] == wire.ERROR:
            raise AssertionError(f"fetch error {wire.parse_error(reply)} at {offset}")
        prefix, msgs = wire.parse_messages(reply)
        got.extend((m[0], m[4]) for m in msgs)
        if not msgs or prefix["next_offset"] >= prefix["high_watermark"]:
            return got
        offset = prefix["next_offset"]


def new_client(client_id):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    sock.bind(("0.0.0.0", 0))
    c = wire.Client(sock, SERVER, client_id=client_id)
    c.handshake()
    return c


class StorageTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_sigkill_at_random_moments_loses_no_acknowledged_message(self):
        rng = random.Random(int(os.environ.get("SLUICE_CRASH_SEED", "0")) or None)
        # 1 MiB segments (the smallest hwconf allows): each frame is a 4 KiB batch, so the rounds
        # cross several segment rolls (a spare prepared at half, renamed at the roll) and some
        # kills land around one.
        with Namespace(), Sluiced(queues=STREAM, durability="dsync", segment_bytes=1 << 20) as s:
            queue_id, _ = new_client(11).lookup("ledger")
            producer = Producer(queue_id, partition=1)
            producer.connect()
            started = time.monotonic()
            recovered_lines = 0
            spares_discarded = 0  # recoveries that found a prepared next segment (next.spare)
            for rnd in range(ROUNDS):
                self.assertLess(time.monotonic() - started, 240, "crash test over its time bound")
                kill_after = rng.uniform(0.05, 0.6)
                killer = threading.Timer(kill_after, s.kill)
                killer.start()
                try:
                    deadline = time.monotonic() + 5
                    while s.alive() and time.monotonic() < deadline:
                        producer.send_one_frame(s.alive)
                finally:
                    killer.cancel()
                    s.kill()
                s.start()
                recovered_lines += s.run_log().count("sluiced: recovery")
                spares_discarded += s.run_log().count("(next.spare) was discarded")
                producer.connect()  # new process: new address-verification secret
                # The frame in flight at the kill goes again with the same sequences: appended
                # once, or answered DUPLICATE if it had been written.
                self.assertTrue(producer.send_one_frame(s.alive), f"round {rnd}: no ack")
            acked = producer.acked
            self.assertGreater(len(acked), 20 * PER_FRAME, "too few messages to prove anything")

            msgs = fetch_partition(new_client(12), queue_id, 1)
            offsets = [o for o, _ in msgs]
            self.assertEqual(offsets, list(range(len(msgs))), "offsets not dense from 0")
            seqs = []
            for _, p in msgs:
                seq = int(p.split(b" ")[0].split(b"=")[1])
                self.assertEqual(p, payload(seq), f"payload of seq {seq} damaged")
                seqs.append(seq)
            self.assertEqual(len(seqs), len(set(seqs)), "a message is present twice")
            self.assertEqual(seqs, sorted(seqs), "messages out of order")
            missing = sorted(set(acked) - set(seqs))
            self.assertEqual(missing, [], f"{len(missing)} acknowledged message(s) lost")
            part_dir = os.path.join(s.data_dir, f"{queue_id}-1")
            segments = sorted(f for f in os.listdir(part_dir)
                              if f.endswith(".log") and f[:-4].isdigit())
            self.assertGreaterEqual(len(segments), 2, f"no segment roll happened: {segments}")
            # The last process rolled only into prepared spares: no segment created on the lcore.
            st = storage_stats(s)
            self.assertEqual(st["rolls_blocking"], 0, st)
            self.assertEqual(st["spare_failures"], 0, st)
            print(f"crash test: {ROUNDS} SIGKILLs, {len(acked)} messages acknowledged, "
                  f"{len(seqs)} recovered, {producer.duplicates} written before a kill and answered "
                  f"DUPLICATE when resent, "
                  f"{recovered_lines} recovery report line(s), {len(segments)} segments, "
                  f"{spares_discarded} spare(s) found and discarded by recovery")
            self.assertEqual(s.drops("malformed_frame"), 0)

    def test_deleted_work_messages_stay_deleted_after_a_crash(self):
        with Namespace(), Sluiced(queues=WORK, durability="dsync") as s:
            n = 60
            sluice("produce", "jobs", input="".join(f"job-{i}\n" for i in range(n)))
            leased = [tuple(l.split("\t", 1)) for l in
                      sluice("receive", "jobs", "--max", "40").stdout.splitlines() if l]
            self.assertEqual(len(leased), 40)
            deleted = {p for _, p in leased[:25]}
            sluice("delete", "jobs", *[r for r, _ in leased[:25]])
            s.kill()
            s.start()
            seen = []
            while True:
                got = [tuple(l.split("\t", 1)) for l in sluice(
                    "receive", "jobs", "--max", "100", "--delete", "--wait-ms", "300"
                ).stdout.splitlines() if l]
                if not got:
                    break
                seen.extend(p for _, p in got)
            self.assertEqual(sorted(seen), sorted(f"job-{i}" for i in range(n)
                                                  if f"job-{i}" not in deleted))
            self.assertEqual(len(seen), n - 25)

    def test_runtime_work_queue_opens_off_the_lcore_and_its_deletes_survive_a_crash(self):
        with Namespace(), Sluiced(queues=WORK, durability="dsync") as s:
            sluicectl("queue", "create", "rt-jobs", "--type", "work", "--partitions", "2",
                      "--attr", "visibility_timeout_ms=60000")
            # Its partitions' files were opened on the control thread before the table reached
            # the worker, which only adopted them: no open made a blocking file call on the lcore.
            harness.wait_for(lambda: storage_stats(s).get("opens_off_lcore", 0) >= 2, 5,
                             "the stats file to count the runtime opens")
            st = storage_stats(s)
            self.assertEqual(st["opens_off_lcore"], 2, st)
            self.assertEqual(st["opens_on_lcore"], 0, st)
            # Served at once: the create returned after the worker adopted the partitions.
            n = 60
            sluice("produce", "rt-jobs", input="".join(f"rt-{i}\n" for i in range(n)))
            leased = []
            for _ in range(20):
                leased += [tuple(l.split("\t", 1)) for l in sluice(
                    "receive", "rt-jobs", "--max", "40", "--wait-ms", "200").stdout.splitlines() if l]
                if len(leased) >= 40:
                    break
            self.assertGreaterEqual(len(leased), 40)
            deleted = {p for _, p in leased[:25]}
            sluice("delete", "rt-jobs", *[r for r, _ in leased[:25]])
            # The deletes went to the ack log through the lcore's ring.
            harness.wait_for(lambda: storage_stats(s)["ack_writes_async"] >= 1, 5,
                             "the stats file to count the ack-log writes")
            # A purge of the layout's queue: its mark is written and fdatasynced through the ring
            # (a linked write + fsync), and the purge is answered once that completed.
            sluice("produce", "jobs", input="".join(f"old-{i}\n" for i in range(5)))
            sluicectl("queue", "purge", "jobs")
            harness.wait_for(lambda: storage_stats(s)["ack_syncs_done"] >= 1, 5,
                             "the stats file to count the purge's sync")
            st = storage_stats(s)
            self.assertGreaterEqual(st["ack_syncs_async"], 1, st)
            self.assertEqual(st["ack_syncs_done"], st["ack_sync_requests"], st)
            self.assertEqual(st["ack_flush_errors"], 0, st)
            self.assertEqual(st["ack_failures"], 0, st)
            self.assertEqual(st["failed"], 0, st)
            self.assertEqual(st["rolls_blocking"], 0, st)
            s.kill()
            s.start()
            seen = []
            for _ in range(50):
                got = [tuple(l.split("\t", 1)) for l in sluice(
                    "receive", "rt-jobs", "--max", "100", "--delete", "--wait-ms", "300"
                ).stdout.splitlines() if l]
                if not got:
                    break
                seen.extend(p for _, p in got)
            self.assertEqual(sorted(seen), sorted(f"rt-{i}" for i in range(n)
                                                  if f"rt-{i}" not in deleted))
            # The purge held across the crash too.
            self.assertEqual(sluice("receive", "jobs", "--max", "10", "--wait-ms", "200").stdout, "")
            # Still writable after the restart (opened by start-up recovery this time).
            sluice("produce", "rt-jobs", input="after\n")

    def test_a_deleted_queues_directories_are_removed_off_the_lcore(self):
        with Namespace(), Sluiced(queues=WORK, durability="write") as s:
            sluicectl("queue", "create", "rt-gone", "--type", "stream", "--partitions", "2")
            sluice("produce", "rt-gone", input="".join(f"g-{i}\n" for i in range(20)))
            dirs = sorted(d for d in os.listdir(s.data_dir)
                          if not d.startswith(".") and os.path.isdir(os.path.join(s.data_dir, d)))
            before = set(dirs)
            self.assertGreaterEqual(len(before), 3, dirs)  # jobs-0, and rt-gone's two
            sluicectl("queue", "delete", "rt-gone")
            # The worker closed both partitions and handed their directories to its file worker;
            # its passes saw the removals complete and counted them.
            harness.wait_for(lambda: storage_stats(s).get("dirs_removed", 0) >= 2, 10,
                             "the stats file to count the removals")
            st = storage_stats(s)
            self.assertEqual(st["dirs_removed"], 2, st)
            self.assertEqual(st["dir_removal_errors"], 0, st)
            left = {d for d in os.listdir(s.data_dir)
                    if not d.startswith(".") and os.path.isdir(os.path.join(s.data_dir, d))}
            self.assertEqual(len(before - left), 2, (before, left))
            # The layout's queue serves on.
            sluice("produce", "jobs", input="still\n")
            self.assertIn("still", sluice("receive", "jobs", "--max", "1", "--wait-ms", "500").stdout)

    def test_segments_of_deleted_work_messages_are_removed(self):
        with Namespace(), Sluiced(queues=WORK, durability="write", segment_bytes=1 << 20) as s:
            n = 3000  # ~1 KB each: about three 1 MiB segments
            body = "x" * 1000
            sluice("produce", "jobs", input="".join(f"{i:04d}{body}\n" for i in range(n)))
            part_dir = os.path.join(s.data_dir, "1-0")
            segments = lambda: sorted(f for f in os.listdir(part_dir)  # noqa: E731
                                      if f.endswith(".log") and f[:-4].isdigit())
            self.assertGreaterEqual(len(segments()), 3, segments())
            # Every roll is counted in the stats file, and every one was into a spare prepared off
            # the lcore: none created the segment on the lcore (a roll with no spare ready waits
            # for it instead, counted as roll_waits).
            rolled = len(segments()) - 1
            harness.wait_for(lambda: storage_stats(s)["rolls_prepared"] >= rolled, 5,
                             "the stats file to count the segment rolls")
            self.assertEqual(storage_stats(s)["rolls_blocking"], 0, storage_stats(s))
            self.assertEqual(storage_stats(s)["spare_failures"], 0, storage_stats(s))
            drained = 0
            while drained < n:
                got = sluice("receive", "jobs", "--max", "50", "--delete", "--wait-ms", "500")
                lines = [l for l in got.stdout.splitlines() if l]
                self.assertTrue(lines, f"queue ran dry after {drained} of {n}")
                drained += len(lines)
            # Once a second the worker drops closed segments nothing needs; the active one stays.
            harness.wait_for(lambda: len(segments()) == 1, 10, "retention to remove segments")
            # Removed through the worker's ring (unlinks + directory fsync), counted once done.
            harness.wait_for(lambda: storage_stats(s)["segments_removed"] >= rolled, 5,
                             "the stats file to count the removed segments")
            self.assertEqual(storage_stats(s)["retention_errors"], 0)
            self.assertEqual(storage_stats(s)["failed"], 0)
            s.kill()
            s.start()  # and the queue is still empty and writable after a restart
            self.assertEqual(sluice("receive", "jobs", "--max", "10", "--wait-ms", "200").stdout, "")
            sluice("produce", "jobs", input="after\n")
            got = sluice("receive", "jobs", "--max", "10", "--wait-ms", "2000").stdout
            self.assertTrue(got.rstrip("\n").endswith("after"), got)

    def test_fetch_older_than_memory_is_served_from_the_log(self):
        queues = '[[queue]]\nname = "archive"\ntype = "stream"\npartitions = 1\n'
        with Namespace(), Sluiced(queues=queues, durability="write") as s:
            # More records than a stream partition indexes in memory (65 536): the oldest chunks
            # are evicted, so offsets from 0 can only come from the log.
            n, body = 80_000, "y" * 100
            lines = [f"{i:05d}{body}" for i in range(n)]
            sluice("produce", "archive", input="\n".join(lines) + "\n", timeout=180)
            c = new_client(50)
            queue_id, _ = c.lookup("archive")

            def fetch(kind, value, count):
                got, first = [], True
                while len(got) < count:
                    k, v = (kind, value) if first else (0, got[-1][0] + 1)
                    first = False
                    body = struct.pack("<IHBBQHHI", queue_id, 0, k, 0, v, 50, 1472, 0)
                    reply = c.call(lambda r: wire.frame(wire.FETCH, body, client=c.client_id, request=r),
                                   (wire.MESSAGES, wire.ERROR))
                    if wire.parse_header(reply)["type"] == wire.ERROR:
                        raise AssertionError(f"fetch error {wire.parse_error(reply)}")
                    _, msgs = wire.parse_messages(reply)
                    self.assertTrue(msgs, "empty fetch")
                    got.extend((m[0], m[4].decode()) for m in msgs)
                return got[:count]

            for kind, value in ((0, 0), (1, 0), (0, 1234)):  # offset 0, earliest, offset 1234
                got = fetch(kind, value, 40)
                start = 1234 if value == 1234 else 0
                self.assertEqual([o for o, _ in got], list(range(start, start + 40)))
                self.assertEqual([p for _, p in got], lines[start:start + 40])
            # The tail still comes from memory, and from the log again after a restart.
            self.assertEqual(fetch(0, n - 5, 5), list(enumerate(lines))[n - 5:])
            harness.wait_for(lambda: s.stats()["workers"][0]["storage"]["cold_fetches"] >= 3, 5,
                             "the stats file to show the fetches served from the log")
            # Every batch went to the disk from the shard's chunk pool, registered with io_uring
            # (WRITE_FIXED: no page pinning per write).
            st = s.stats()["workers"][0]["storage"]
            self.assertGreater(st["batches"], 0, st)
            self.assertGreaterEqual(st["fixed_writes"], st["batches"], st)  # + any re-queued write
            s.kill()
            s.start()
            c = new_client(51)
            self.assertEqual(fetch(0, 7, 3), list(enumerate(lines))[7:10])

    def test_consumer_group_offsets_survive_a_crash(self):
        queues = '[[queue]]\nname = "feed"\ntype = "stream"\npartitions = 2\n'
        with Namespace(), Sluiced(queues=queues, durability="dsync") as s:
            n = 40
            sluice("produce", "feed", input="".join(f"f-{i:02d}\n" for i in range(n)))
            first = sluice("consume", "feed", "--group", "g", "--from", "earliest", "--count", "15",
                           "--timeout-ms", "10000").stdout.splitlines()
            self.assertEqual(len(first), 15)
            s.kill()
            s.start()
            # The group resumes where it committed: the other 25, none of the first 15 again.
            rest = sluice("consume", "feed", "--group", "g", "--from", "earliest", "--count", "25",
                          "--timeout-ms", "10000").stdout.splitlines()
            self.assertEqual(sorted(first + rest), [f"f-{i:02d}" for i in range(n)])

    def test_write_error_fails_one_partition_while_the_other_keeps_serving(self):
        # Queue id 1 ("ledger"), partition 0: its writes fail with EIO after 3 went through.
        with Namespace(), Sluiced(queues=STREAM, durability="write",
                                  args=["--inject-storage-fault", "1:0:3:5"]) as s:
            queue_id, _ = new_client(21).lookup("ledger")
            self.assertEqual(queue_id, 1)
            results = {}
            for part in (0, 1):
                c = new_client(30 + part)
                results[part] = [produce_one(c, queue_id, part, seq) for seq in range(12)]
            self.assertEqual(results[1], ["OK"] * 12, "the healthy partition must keep serving")
            self.assertEqual(results[0][:3], ["OK"] * 3)
            self.assertIn("STORAGE_FAILED", results[0])
            first_failure = results[0].index("STORAGE_FAILED")
            self.assertEqual(results[0][first_failure:], ["STORAGE_FAILED"] *
                             (12 - first_failure), "a failed partition never takes writes again")
            self.assertIn("storage failed", s.log())
            # What was acknowledged before the failure is still served.
            reader = new_client(40)
            self.assertEqual(len(fetch_partition(reader, queue_id, 0)), first_failure)
            self.assertEqual(len(fetch_partition(reader, queue_id, 1)), 12)

    def test_ack_log_write_error_fails_its_partition_while_the_other_keeps_serving(self):
        # Queue id 1 ("jobs2"), partition 0: its first ack-log write (through the lcore's ack
        # ring) fails with EIO. A lost delete alone would be a redelivery, but an ack log that
        # cannot be written fails the partition like a failed segment write (docs/storage.md §3).
        work2 = WORK.replace('name = "jobs"', 'name = "jobs2"').replace("partitions = 1",
                                                                        "partitions = 2")
        with Namespace(), Sluiced(queues=work2, durability="write",
                                  args=["--inject-storage-fault", "1:0:0:5:acks"]) as s:
            queue_id, _ = new_client(21).lookup("jobs2")
            self.assertEqual(queue_id, 1)
            clients = {part: new_client(60 + part) for part in (0, 1)}
            for part in (0, 1):
                self.assertEqual(produce_one(clients[part], queue_id, part, 0), "OK")
            # Receive and delete both messages: partition 0's delete goes to its ack log.
            got = []
            for _ in range(20):
                got += [l for l in sluice("receive", "jobs2", "--max", "10", "--delete",
                                          "--wait-ms", "200").stdout.splitlines() if l]
                if len(got) >= 2:
                    break
            self.assertEqual(len(got), 2, got)
            harness.wait_for(lambda: storage_stats(s).get("ack_failures", 0) >= 1, 5,
                             "the stats file to count the ack-log failure")
            # From now on partition 0 answers STORAGE_FAILED; partition 1 keeps serving.
            results = [produce_one(clients[0], queue_id, 0, seq) for seq in range(1, 4)]
            self.assertEqual(results, ["STORAGE_FAILED"] * 3)
            self.assertEqual([produce_one(clients[1], queue_id, 1, seq) for seq in range(1, 4)],
                             ["OK"] * 3)
            st = storage_stats(s)
            self.assertEqual(st["ack_failures"], 1, st)
            self.assertEqual(st["failed"], 1, st)
            self.assertGreaterEqual(st["ack_flush_errors"], 1, st)
            self.assertIn("storage failed: ack log write", s.log())


def produce_one(client, queue_id, partition, seq):
    """Produces one message as idempotent producer `client.client_id`, sequence `seq`, and
    returns its ack's error name (acks carry request id 0: matched by sequence)."""
    pid = client.client_id
    for _ in range(20):
        client.sock.sendto(wire.produce(queue_id, [b"m%d" % seq], producer=pid,
                                        first_sequence=seq, partition=partition, client=pid,
                                        request=seq + 1), SERVER)
        try:
            while True:
                data, _ = client.sock.recvfrom(65536)
                if wire.parse_header(data)["type"] != wire.ACK:
                    continue
                for part, errc, count, first, _ in wire.parse_acks(data):
                    if part == partition and first <= seq < first + count:
                        return errc
        except TimeoutError:
            continue
    raise AssertionError(f"no ack for partition {partition} sequence {seq}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
