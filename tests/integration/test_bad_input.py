"""Bad input over the wire: each kind gets its specific error (or a counted drop where no reply is
allowed), valid traffic loses nothing, and sluiced keeps running."""

import os
import random
import socket
import struct
import unittest

import harness
import wire
from harness import SERVER_IP, SERVER_PORT, Namespace, Sluiced, udp_socket, wait_for

SERVER = (SERVER_IP, SERVER_PORT)


def lookup_id(sock, name):
    sock.sendto(wire.lookup(name), SERVER)
    data, _ = sock.recvfrom(65536)
    return wire.parse_lookup_reply(data)[0]


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_root()
        cls.ns = Namespace().__enter__()
        cls.sluiced = Sluiced().__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.sluiced.__exit__(None, None, None)
        cls.ns.__exit__(None, None, None)

    def setUp(self):
        self.sock = udp_socket()
        self.assertTrue(self.sluiced.alive())

    def tearDown(self):
        self.sock.close()
        self.assertTrue(self.sluiced.alive(), self.sluiced.log())

    def request(self, data):
        self.sock.sendto(data, SERVER)
        reply, _ = self.sock.recvfrom(65536)
        return reply

    def assert_silent(self, data):
        """No reply: the frame is not a sluice frame (or no reply may be sent)."""
        self.sock.sendto(data, SERVER)
        # A heartbeat sent after it is answered first if the bad frame got no reply.
        reply = self.request(wire.heartbeat(request=4242))
        self.assertEqual(wire.parse_header(reply)["request"], 4242)

    def test_random_bytes_are_dropped_silently(self):
        rng = random.Random(1)
        before = self.sluiced.drops("malformed_frame")
        for _ in range(50):
            self.assert_silent(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))))
        wait_for(lambda: self.sluiced.drops("malformed_frame") >= before + 50, 10,
                 "malformed_frame drops to be counted")

    def test_truncated_frame_is_malformed(self):
        full = wire.produce(lookup_id(self.sock, "events"), [b"x" * 40])
        for cut in (48, 60, len(full) - 1):
            reply = self.request(full[:cut])
            self.assertEqual(wire.parse_error(reply), "MALFORMED", f"cut at {cut}")
            self.assertLessEqual(len(reply), cut, "reply larger than the request")
        # Shorter than a header, or than the smallest ERROR frame (48 bytes): the amplification
        # rule leaves nothing to answer with; the drop is counted.
        before = self.sluiced.drops("malformed_frame")
        for cut in (20, 33, 40):
            self.assert_silent(full[:cut])
        wait_for(lambda: self.sluiced.drops("malformed_frame") >= before + 3, 10, "counted drops")

    def test_bad_version(self):
        data = bytearray(wire.heartbeat())
        data[4] = 7
        self.assertEqual(wire.parse_error(self.request(bytes(data))), "UNSUPPORTED_VERSION")

    def test_unknown_queue(self):
        self.assertEqual(wire.parse_error(self.request(wire.produce(999, [b"x"]))),
                         "UNKNOWN_QUEUE")
        self.assertEqual(wire.parse_error(self.request(wire.lookup("no-such-queue"))),
                         "UNKNOWN_QUEUE")

    def test_unknown_partition(self):
        qid = lookup_id(self.sock, "events")
        acks = wire.parse_acks(self.request(wire.produce(qid, [b"x"], partition=77)))
        self.assertEqual(acks[0][1], "UNKNOWN_PARTITION")

    def test_oversized_message(self):
        qid = lookup_id(self.sock, "events")
        # 256 KiB is the queue's limit; a single datagram cannot carry it, and a fragment of a
        # larger message is refused before reassembly.
        big = struct.pack("<IHBBQQIIHHBBBBI", 44 + 8 + 1000, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                          0, 1000) + struct.pack("<II", 2 << 20, 0) + b"z" * 1000
        frame = wire.frame(wire.PRODUCE, struct.pack("<IIQ", qid, 0, 0) + big, count=1)
        reply = self.request(frame)
        h = wire.parse_header(reply)
        if h["type"] == wire.ERROR:
            self.assertEqual(wire.parse_error(reply), "MESSAGE_TOO_LARGE")
        else:
            self.assertEqual(wire.parse_acks(reply)[0][1], "MESSAGE_TOO_LARGE")

    def test_unverified_source_gets_no_large_reply(self):
        qid = lookup_id(self.sock, "jobs")
        receive = wire.frame(wire.RECEIVE, struct.pack("<IHHIIHHI", qid, 0xFFFF, 10, 0xFFFFFFFF,
                                                        0, 0, 0, 0))
        reply = self.request(receive)
        self.assertEqual(wire.parse_error(reply), "UNVERIFIED_SOURCE")
        self.assertLessEqual(len(reply), len(receive))

    def test_malformed_flood_while_valid_traffic_flows(self):
        qid = lookup_id(self.sock, "events")
        flood = udp_socket()
        rng = random.Random(7)
        junk = [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))) for _ in range(64)]
        trunc = wire.produce(qid, [b"y" * 100])[:70]
        producer = 0xABCDEF
        total = 2000
        malformed_before = self.sluiced.drops("malformed_frame")
        acked = {}

        def send(seq):
            self.sock.sendto(wire.produce(qid, [f"m{seq}".encode()], producer=producer,
                                          first_sequence=seq), SERVER)

        for seq in range(total):
            for j in range(4):  # four bad frames for every good one
                flood.sendto(junk[(seq + j) % 64] if j < 3 else trunc, SERVER)
            send(seq)
            if seq % 50 == 49:
                self._collect_acks(acked, producer)
        # The kernel side of the TAP may drop datagrams under the flood; a producer retransmits
        # what was not acknowledged, with the same sequence (idempotent: never appended twice).
        for _ in range(20):
            if self._collect_acks(acked, producer) >= total:
                break
            missing = [seq for seq in range(total) if seq not in acked]
            for seq in missing[:200]:
                send(seq)
        self.assertEqual(sorted(acked), list(range(total)))
        # Offsets are dense and in sequence order: nothing appended twice, nothing lost.
        self.assertEqual([acked[s] for s in range(total)],
                         list(range(acked[0], acked[0] + total)))
        wait_for(lambda: self.sluiced.drops("malformed_frame") >= malformed_before + total, 10,
                 "the flood to be counted")
        flood.close()

    def _collect_acks(self, acked, producer):
        self.sock.settimeout(0.05)
        try:
            while True:
                data, _ = self.sock.recvfrom(65536)
                h = wire.parse_header(data)
                if h["type"] != wire.ACK:
                    continue
                for part, errc, count, seq, off in wire.parse_acks(data):
                    self.assertIn(errc, ("OK", "DUPLICATE"))
                    for i in range(count):
                        acked[seq + i] = off + i
        except socket.timeout:
            pass
        finally:
            self.sock.settimeout(2.0)
        return len(acked)


if __name__ == "__main__":
    unittest.main(verbosity=2)
