"""Request/reply end to end through the sluice CLI on a real sluiced with two workers (a reply's
inbox may live on the other worker than the service queue): `sluice respond` answers requests
from a work queue, `sluice request` waits for the answer in a temporary inbox; a request whose
requester went away is dropped unanswered."""

import os
import signal
import subprocess
import unittest

import harness
from harness import Namespace, Sluiced, sluice, wait_for

QUEUES = """
[[queue]]
name = "svc"
type = "work"
partitions = 2
visibility_timeout_ms = 5000
"""


class Responder:
    def __init__(self, *args):
        env = dict(os.environ, SLUICE_SERVER=f"{harness.SERVER_IP}:{harness.SERVER_PORT}")
        self.proc = harness.spawn([harness.binary("client/sluice"), "respond", "svc", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


class RequestReplyTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_request_respond_timeout_and_orphan(self):
        with Namespace(), Sluiced(workers=2, queues=QUEUES):
            responder = Responder("--exec", "tr a-z A-Z")
            try:
                self.assertEqual(sluice("request", "svc", "hello").stdout, "HELLO\n")
                out = sluice("request", "svc", input="one\ntwo\nthree\n").stdout
                self.assertEqual(out, "ONE\nTWO\nTHREE\n")
            finally:
                rc, out, err = responder.stop()
            self.assertEqual(rc, 0, err)
            self.assertEqual(out.splitlines(), ["replied"] * 4)

            # Nobody serves the queue: the request times out (exit 3) and stays queued.
            late = sluice("request", "svc", "anyone?", "--timeout-ms", "500", check=False)
            self.assertEqual(late.returncode, 3, late.stderr)
            self.assertIn("no reply", late.stderr)
            # Its requester is gone (its inbox closed): a responder drops it unanswered.
            cp = sluice("respond", "svc", "--count", "1", "--timeout-ms", "5000")
            self.assertEqual(cp.stdout, "orphaned\n")

            # A failing handler hands the request back; a working one answers it later.
            responder = Responder("--exec", "exit 1")
            requester = harness.spawn(
                [harness.binary("client/sluice"), "request", "svc", "retry me", "--timeout-ms",
                 "10000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env=dict(os.environ, SLUICE_SERVER=f"{harness.SERVER_IP}:{harness.SERVER_PORT}"))
            try:
                wait_for(lambda: responder.proc.stdout.readline() == "failed\n", 10,
                         "a failed attempt")
                responder.stop()
                responder = Responder("--count", "1")  # echo
                out, err = requester.communicate(timeout=15)
                self.assertEqual(requester.returncode, 0, err)
                self.assertEqual(out, "retry me\n")
            finally:
                responder.stop()
                if requester.poll() is None:
                    os.killpg(requester.pid, signal.SIGKILL)
                    requester.wait()


if __name__ == "__main__":
    unittest.main(verbosity=2)
