"""Integration-test harness: a real sluiced on DPDK's TAP PMD inside a network namespace that the
test creates, with clients run in the same namespace.

Every name is unique per run (namespace, TAP interface, DPDK file prefix, temp dir), so parallel or
leftover runs never collide. Processes are ended by the PID of the process group the harness
started, never by name. Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking range) and never
leave the namespace.
"""

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

CLONE_NEWNET = 0x40000000
SERVER_IP = "198.18.0.1"
KERNEL_CIDR = "198.18.0.2/24"
SERVER_PORT = 7411
# The REST API / metrics address: loopback of the namespace sluiced runs in (the test process is
# in that namespace too), so the default port never collides between runs.
REST_ADDRESS = "127.0.0.1:7480"
# The tests' shards take 16 MiB of message memory each (16 chunks of 1 MiB: the floor with the
# default 256 KiB message limit), not the default 64: sluiced touches it at start-up, and the
# suites start sluiced some 170 times (a quarter of a second each, measured).
SHARD_MEMORY_MB = 16

BUILD_DIR = os.environ.get("SLUICE_BUILD_DIR", "")
SOURCE_DIR = os.environ.get("SLUICE_SOURCE_DIR", "")


def binary(rel):
    path = os.path.join(BUILD_DIR, rel)
    if not os.path.exists(path):
        raise unittest.SkipTest(f"{path} not built")
    return path


def require_root():
    if os.geteuid() != 0:
        raise unittest.SkipTest("integration tests need root (network namespaces, TAP, DPDK)")


# What this test process started, so that it ends with the process even when meson kills it at
# its timeout (SIGTERM, then SIGKILL 0.5 s later), when no tearDown or `with` exit runs: the
# process groups of spawn() (daemons, clients) and the namespaces of Namespace. Left behind, a
# pair of polling sluiceds takes CPU from every later run on the machine.
_owned_procs = []
_owned_namespaces = set()
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """In the child before exec: SIGKILL when the process that forked it dies, however it dies
    (SIGKILL included, which no handler sees). Tests spawn from their main thread only: the
    "parent" of PR_SET_PDEATHSIG is the forking thread."""
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)


def spawn(argv, **kwargs):
    """subprocess.Popen in a process group of its own (ended by its PID with os.killpg), that
    dies with this process and is killed by the SIGTERM handler below."""
    _owned_procs[:] = [p for p in _owned_procs if p.poll() is None]
    proc = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent, **kwargs)
    _owned_procs.append(proc)
    return proc


def _end_everything_owned(signum, _frame):
    for proc in list(_owned_procs):
        if proc.poll() is None:  # not reaped: its PID, the group's ID, is not reused yet
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for name in list(_owned_namespaces):
        subprocess.run(["ip", "netns", "del", name], check=False, stderr=subprocess.DEVNULL)
    # Not sys.exit: unittest reports a SystemExit as a test error and goes on to the next test.
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _end_everything_owned)


def cost(seconds):
    """Marks a test that takes much longer than most (SIGKILL rounds): shard_tests() spreads the
    marked ones first."""
    def mark(test):
        test.cost_s = seconds
        return test
    return mark


def shard_tests(tests):
    """With SLUICE_TEST_SHARD=i/n in the environment (meson runs a long suite as n tests side by
    side, tests/integration/meson.build), the i-th of n disjoint parts of `tests` (a TestSuite):
    longest first, each to the part with the least cost so far (costs: cost() or 10 s), so that
    every test runs in exactly one part and the parts take about as long. Unset: all of them."""
    spec = os.environ.get("SLUICE_TEST_SHARD", "")
    if not spec:
        return tests
    index, count = (int(x) for x in spec.split("/"))
    assert 0 <= index < count, spec

    def flatten(suite):
        for t in suite:
            yield from (flatten(t) if isinstance(t, unittest.TestSuite) else (t,))

    def cost_of(test):
        return getattr(getattr(test, test._testMethodName, None), "cost_s", 10)

    everything = sorted(flatten(tests), key=lambda t: (-cost_of(t), t.id()))
    load = [0.0] * count
    mine = unittest.TestSuite()
    for t in everything:
        part = min(range(count), key=lambda i: (load[i], i))
        load[part] += cost_of(t)
        if part == index:
            mine.addTest(t)
    return mine


def wait_for(cond, timeout_s, what, interval_s=0.01):
    """Polls cond() until it is truthy; fails the test with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


class Namespace:
    """A network namespace the test process itself enters (so sockets it opens live there)."""

    def __init__(self):
        self.name = f"sluice-it-{os.getpid()}-{secrets.token_hex(3)}"
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._home_fd = None

    def __enter__(self):
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        _owned_namespaces.add(self.name)
        self._home_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if self._libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return self

    def __exit__(self, *exc):
        if self._home_fd is not None:
            self._libc.setns(self._home_fd, CLONE_NEWNET)
            os.close(self._home_fd)
        subprocess.run(["ip", "netns", "del", self.name], check=False)
        _owned_namespaces.discard(self.name)


class Sluiced:
    """sluiced on a TAP layout, started in the current network namespace."""

    def __init__(self, workers=1, queues=None, extra_toml="", metadata_dir=None,
                 durability="write", args=(), segment_bytes=8 << 20,
                 shard_memory_mb=SHARD_MEMORY_MB):
        self.tag = secrets.token_hex(3)
        self.workers = workers
        self.queues = queues if queues is not None else DEFAULT_QUEUES
        self.extra_toml = extra_toml
        self.durability = durability
        self.segment_bytes = segment_bytes
        self.shard_memory_mb = shard_memory_mb
        self.args = list(args)
        self.dir = tempfile.mkdtemp(prefix=f"sluice-it-{self.tag}-")
        self.data_dir = os.path.join(self.dir, "data")  # kept across restart()
        self.iface = f"slc{self.tag}"  # <= 15 characters
        self.layout = os.path.join(self.dir, "layout.toml")
        self.stats_path = os.path.join(self.dir, "stats.json")
        self.log_path = os.path.join(self.dir, "sluiced.log")
        # The queue catalog; a test that restarts sluiced passes the same directory again.
        self.metadata_dir = metadata_dir or os.path.join(self.dir, "meta")
        self.proc = None
        self._log_file = None

    def write_layout(self):
        lcores = list(range(self.workers + 1))
        # Two CPUs for everything: the main lcore and the workers share them (adaptive idle).
        cpus = ",".join(f"{l}@{l % 2 if self.workers > 1 else l}" for l in lcores)
        rx = self.workers
        worker_tables = []
        shards = 2 * self.workers
        for w in range(self.workers):
            worker_tables.append(
                f'[[lcore]]\nid = {w + 1}\nrx = ["client0:{w}"]\n'
                f"shards = [{2 * w}, {2 * w + 1}]\nidle = \"adaptive\"\n")
        text = f"""
[eal]
lcores = {lcores}
main_lcore = 0
memory_mb = 256
hugepages = false
file_prefix = "sluice-it-{self.tag}"
lcore_cpus = "{cpus}"

[[port]]
name = "client0"
vdev = "net_tap_{self.tag},iface={self.iface}"
rx_queues = {rx}
ipv4 = "{SERVER_IP}"
udp_port = {SERVER_PORT}
kernel_ipv4 = "{KERNEL_CIDR}"

{"".join(worker_tables)}
[dataplane]
shards = {shards}
shard_memory_mb = {self.shard_memory_mb}

[storage]
data_dirs = ["{self.data_dir}"]
durability = "{self.durability}"
segment_bytes = {self.segment_bytes}

[control]
metadata_dir = "{self.metadata_dir}"
listen = "{REST_ADDRESS}"

{self.queues}
{self.extra_toml}
"""
        with open(self.layout, "w") as f:
            f.write(text)

    def __enter__(self):
        self.write_layout()
        self._log_file = open(self.log_path, "w")
        self.start()
        return self

    def start(self):
        """Starts sluiced (again, after stop() or kill(): same layout, same data directory)."""
        log = self._log_file
        self._log_offset = os.path.getsize(self.log_path)
        self.proc = spawn(
            [binary("dataplane/sluiced"), "--hwconf", self.layout, "--stats-file", self.stats_path,
             *self.args],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: self.proc.poll() is not None or "sluiced: running" in self.run_log(),
                     60, "sluiced to start")
            if self.proc.poll() is not None:
                raise AssertionError(f"sluiced exited with {self.proc.returncode}:\n{self.log()}")
        except BaseException:
            self.stop()
            raise

    def run_log(self):
        """The log of the current run only (since the last start())."""
        return self.log()[self._log_offset:]

    def kill(self):
        """SIGKILL to the process group: a crash, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    @property
    def file_prefix(self):
        return f"sluice-it-{self.tag}"

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stats(self):
        """The counters sluiced last wrote (it rewrites the file every second and on exit)."""
        with open(self.stats_path) as f:
            return json.load(f)

    def total(self, key):
        return sum(w[key] for w in self.stats()["workers"])

    def drops(self, reason):
        return sum(w["drops"][reason] for w in self.stats()["workers"])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s=20):
        """SIGTERM to the process group started here; returns sluiced's exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def __exit__(self, *exc):
        self.stop()
        self._log_file.close()
        if exc[0] is not None:
            print(f"--- sluiced log ({self.log_path}) ---\n{self.log()}")
        shutil.rmtree(self.dir, ignore_errors=True)


DEFAULT_QUEUES = """
[[queue]]
name = "events"
type = "stream"
partitions = 2

[[queue]]
name = "jobs"
type = "work"
partitions = 2
visibility_timeout_ms = 30000
"""


def sluice(*args, input=None, timeout=60, check=True):
    """Runs the sluice CLI against the namespace's server; returns CompletedProcess (text)."""
    env = dict(os.environ, SLUICE_SERVER=f"{SERVER_IP}:{SERVER_PORT}")
    cp = subprocess.run([binary("client/sluice"), *args], input=input, capture_output=True,
                        text=True, timeout=timeout, env=env)
    if check and cp.returncode != 0:
        raise AssertionError(f"sluice {' '.join(args)} exited {cp.returncode}:\n"
                             f"stdout: {cp.stdout[-2000:]}\nstderr: {cp.stderr[-2000:]}")
    return cp


def sluicectl(*args, check=True):
    """Runs sluicectl against the REST API of the namespace's sluiced."""
    cp = subprocess.run([binary("control/sluicectl"), "--server", REST_ADDRESS, *args],
                        capture_output=True, text=True, timeout=60)
    if check and cp.returncode != 0:
        raise AssertionError(f"sluicectl {' '.join(args)} exited {cp.returncode}:\n"
                             f"{cp.stdout}\n{cp.stderr}")
    return cp


def udp_socket(timeout_s=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout_s)
    s.bind(("0.0.0.0", 0))
    return s
