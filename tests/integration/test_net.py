"""The dataplane answers ARP and ICMP echo on the TAP port, and counts what it drops."""

import subprocess
import unittest

import harness
from harness import SERVER_IP, Namespace, Sluiced, wait_for


class NetTest(unittest.TestCase):
    def setUp(self):
        harness.require_root()

    def test_arp_and_ping(self):
        with Namespace(), Sluiced() as s:
            ping = subprocess.run(["ping", "-c", "5", "-i", "0.05", "-W", "2", SERVER_IP],
                                  capture_output=True, text=True, timeout=30)
            self.assertEqual(ping.returncode, 0, ping.stdout + ping.stderr)
            self.assertIn("5 received", ping.stdout)
            # The kernel resolved the dataplane's MAC through our ARP reply.
            neigh = subprocess.run(["ip", "neigh", "show", SERVER_IP], capture_output=True,
                                   text=True).stdout
            self.assertRegex(neigh, r"lladdr ([0-9a-f]{2}:){5}[0-9a-f]{2}")
            wait_for(lambda: s.total("icmp_echo_replies") >= 5, 10, "echo counter")
            self.assertGreaterEqual(s.total("arp_replies"), 1)

    def test_clean_shutdown_exit_code(self):
        with Namespace(), Sluiced() as s:
            self.assertTrue(s.alive())
            self.assertEqual(s.stop(), 0, s.log())
            self.assertIn("stopped on signal 15", s.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
