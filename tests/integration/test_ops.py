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


if __name__ == "__main__":
    unittest.main(verbosity=2)
