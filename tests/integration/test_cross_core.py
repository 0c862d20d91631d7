"""Two worker lcores on the two CPUs: frames received by one worker for partitions owned by the
other cross through the SP/SC hand-off ring (mbuf and all) and nothing is lost or reordered."""

import socket
import unittest

import harness
import wire
from harness import SERVER_IP, SERVER_PORT, Namespace, Sluiced, udp_socket, wait_for

SERVER = (SERVER_IP, SERVER_PORT)
QUEUES = """
[[queue]]
name = "spread"
type = "stream"
partitions = 4
"""


class CrossCoreTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_handoff_between_two_workers(self):
        with Namespace(), Sluiced(workers=2, queues=QUEUES) as s:
            sock = udp_socket(1.0)
            c = wire.Client(sock, SERVER, client_id=11)
            qid, partitions = c.lookup("spread")
            self.assertEqual(partitions, 4)
            producers = 4
            per_producer = 125
            per_partition = producers * per_producer
            # One socket per producer (so the kernel spreads flows over both TAP queues); each
            # frame carries one message for each partition, so every frame has two owners.
            senders = [udp_socket(0.05) for _ in range(producers)]
            acked = {(k, p): set() for k in range(producers) for p in range(partitions)}

            def frame_for(k, seq):
                records = b"".join(wire.message(f"p{p}-k{k}-{seq}".encode(), p, seq)
                                   for p in range(partitions))
                return wire.frame(wire.PRODUCE, wire.struct.pack("<IIQ", qid, 0, 100 + k) +
                                  records, count=partitions)

            def drain(k):
                try:
                    while True:
                        data, _ = senders[k].recvfrom(65536)
                        if wire.parse_header(data)["type"] == wire.ACK:
                            for part, errc, count, seq, off in wire.parse_acks(data):
                                if errc in ("OK", "DUPLICATE"):
                                    acked[(k, part)].update(range(seq, seq + count))
                except (socket.timeout, TimeoutError):
                    pass

            for seq in range(per_producer):
                for k in range(producers):
                    senders[k].sendto(frame_for(k, seq), SERVER)
                if seq % 16 == 15:
                    for k in range(producers):
                        drain(k)
            # Like a real producer: resend, in order, from the first unacknowledged sequence
            # (a flow the kernel moves between TAP queues can arrive out of order).
            for _ in range(50):
                done = True
                for k in range(producers):
                    drain(k)
                    first = min((q for q in range(per_producer)
                                 if any(q not in acked[(k, p)] for p in range(partitions))),
                                default=None)
                    if first is None:
                        continue
                    done = False
                    for q in range(first, min(first + 32, per_producer)):
                        senders[k].sendto(frame_for(k, q), SERVER)
                if done:
                    break
            for key, got in acked.items():
                self.assertEqual(len(got), per_producer, f"producer/partition {key}")

            c.handshake()
            for p in range(partitions):
                got = c.fetch_all(qid, p, per_partition)
                self.assertEqual([o for o, _ in got], list(range(per_partition)))
                # Exactly once, and each producer's messages in its sequence order.
                payloads = [m.decode() for _, m in got]
                self.assertEqual(len(set(payloads)), per_partition)
                for k in range(producers):
                    mine = [x for x in payloads if x.startswith(f"p{p}-k{k}-")]
                    self.assertEqual(mine, [f"p{p}-k{k}-{q}" for q in range(per_producer)])
            wait_for(lambda: all(w["handoffs_in"] > 0 for w in s.stats()["workers"]) or
                     sum(w["handoffs_out"] for w in s.stats()["workers"]) > 0, 10,
                     "hand-offs to be counted")
            for x in senders + [sock]:
                x.close()
            self.assertGreater(s.total("handoffs_out"), 0, "no frame crossed cores")
            self.assertEqual(s.total("throttled"), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
