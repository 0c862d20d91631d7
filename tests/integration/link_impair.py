"""A kernel impairment of a veth pair without sch_netem (docs/replication.md §12): loss,
duplication, reordering and delay from cls_bpf programs (link_impair.bpf.c, compiled here with
clang at test time), the clsact qdisc and an HTB root qdisc on each sending end.

Per sending end:
  clsact egress   impair_egress: decides each frame's fate (the `loss`, `duplicate` and
                  `reorder` fractions, independently per frame), sends duplicates and ballast
  root 1: htb default 10 (with a size table, so a grown ballast is charged at its new length)
    1:10          every other frame; with `delay_ms` > 0 shaped so that a BALLAST_LEN-byte
                  ballast frame takes `delay_ms` to send: each frame waits at least that long
                  (behind a ballast, or behind a backlog at least as long)
    1:20          the `reorder` fraction, each waiting at least `reorder_delay_ms` the same way
                  while later frames pass through 1:10
    filter        impair_classify: drops the lost frames, sends the others to their class
and on the receiving end, clsact ingress impair_observe counts reordered and duplicate arrivals.
The delay classes are also rate limits (1 ms: 12 Mbit/s, 10 ms: 1.2 Mbit/s).

Only traffic that goes through the qdisc layer is impaired: DPDK's af_packet PMD must be given
qdisc_bypass=0 (its default sets PACKET_QDISC_BYPASS, which skips the egress hooks). Ingress-side
impairment would not work either: packet sockets see a received frame before tc ingress runs.

`python3 link_impair.py` (root) measures what the impairment does to numbered frames sent through
a packet socket on a veth pair in a namespace of its own.
"""

import ctypes
import os
import re
import subprocess
import sysconfig

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "link_impair.bpf.c")
BALLAST_LEN = 1514  # bytes the ballast frame is grown to (a full frame at MTU 1500)
COUNTERS = ("stamped", "dups", "ballast", "passed", "slowed", "lost",
            "arrived", "reordered", "dup_arrived", "max_seq")


def _thresh(p):
    if not 0 <= p <= 1:
        raise ValueError(f"probability {p} not in [0, 1]")
    return min(int(p * 2**32), 2**32 - 1)


def _rate_bit(delay_ms):
    """The HTB rate at which sending a ballast frame takes `delay_ms`."""
    return max(int(BALLAST_LEN * 8 * 1000 / delay_ms), 8)


def tc(*args):
    cp = subprocess.run(["tc", *args], capture_output=True, text=True)
    if cp.returncode != 0:
        raise RuntimeError(f"tc {' '.join(args)}: {cp.stderr.strip()}")
    return cp.stdout


class LinkImpairment:
    """Impairs both directions of the veth pair `ends` (two interface names in the current
    network namespace). Call install(), then remove() (idempotent); counters() at any time."""

    def __init__(self, ends, workdir, loss=0.0, duplicate=0.0, reorder=0.0, delay_ms=0.0,
                 reorder_delay_ms=10.0):
        if reorder > 0 and reorder_delay_ms <= 0:
            raise ValueError("reordering needs reorder_delay_ms > 0")
        self.ends = tuple(ends)
        self.delay_ms = delay_ms
        self.reorder_delay_ms = reorder_delay_ms
        self.obj = os.path.join(workdir, "link_impair.bpf.o")
        defines = {"LOSS_THRESH": f"{_thresh(loss)}u", "DUP_THRESH": f"{_thresh(duplicate)}u",
                   "SLOW_THRESH": f"{_thresh(reorder)}u", "BALLAST_LEN": BALLAST_LEN}
        for prefix, ms in (("", delay_ms), ("SLOW_", reorder_delay_ms)):
            if ms > 0:  # the class's rate, as the program's model of it sees it
                defines[f"{prefix}DELAY_NS"] = f"{int(ms * 1e6)}ull"
                defines[f"{prefix or 'FAST_'}PS_PER_BYTE"] = f"{8 * 10**12 // _rate_bit(ms)}ull"
        # -target bpf does not search the multiarch include directory (asm/types.h).
        multiarch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
        subprocess.run(["clang", "-O2", "-g", "-Wall", "-Werror", "-target", "bpf",
                        f"-I/usr/include/{multiarch}",
                        *[f"-D{k}={v}" for k, v in defines.items()],
                        "-c", SOURCE, "-o", self.obj], check=True)
        self._installed = []

    def install(self):
        try:
            for dev in self.ends:
                self._install_end(dev)
        except Exception:
            self.remove()
            raise

    def _install_end(self, dev):
        self._installed.append(dev)
        # A size table (even one adding nothing) makes the qdisc layer take a frame's length
        # again after clsact egress ran: without it a ballast frame would be charged at the
        # length it had before impair_egress grew it.
        tc("qdisc", "add", "dev", dev, "root", "handle", "1:", "stab", "overhead", "0",
           "linklayer", "ethernet", "htb", "default", "10")
        # burst/cburst 1 byte: the class never has tokens saved up for a second frame, so the
        # frame behind a ballast always waits for it.
        shaped = ["burst", "1", "cburst", "1", "quantum", str(BALLAST_LEN)]
        fast = ([f"{_rate_bit(self.delay_ms)}bit", *shaped] if self.delay_ms > 0 else
                ["10gbit"])
        slow = [f"{_rate_bit(self.reorder_delay_ms)}bit", *shaped]
        for minor, spec in (("10", fast), ("20", slow)):
            tc("class", "add", "dev", dev, "parent", "1:", "classid", f"1:{minor}", "htb",
               "rate", spec[0], "ceil", *spec)
            # An explicit FIFO: a veth's tx_queue_len may be 0, which would give a 1-frame queue.
            tc("qdisc", "add", "dev", dev, "parent", f"1:{minor}", "handle", f"{minor}:",
               "pfifo", "limit", "1000")
        tc("filter", "add", "dev", dev, "parent", "1:", "prio", "1", "bpf", "da", "obj",
           self.obj, "sec", "impair/classify", "classid", "1:10")
        tc("qdisc", "add", "dev", dev, "clsact")
        tc("filter", "add", "dev", dev, "egress", "prio", "1", "bpf", "da", "obj", self.obj,
           "sec", "impair/egress")
        tc("filter", "add", "dev", dev, "ingress", "prio", "1", "bpf", "da", "obj", self.obj,
           "sec", "impair/observe")

    def remove(self):
        for dev in self._installed:
            for what in (["root"], ["clsact"]):
                subprocess.run(["tc", "qdisc", "del", "dev", dev, *what], capture_output=True)
        self._installed = []

    def counters(self):
        """{sending end: {counter: value}}: what its egress and classify programs counted and
        what the observer on the other end counted of the frames it sent."""
        out = {}
        for i, dev in enumerate(self.ends):
            peer = self.ends[1 - i]
            c = {}
            for where, d, sec in ((["egress"], dev, "egress"), (["parent", "1:"], dev, "classify"),
                                  (["ingress"], peer, "observe")):
                values = _read_counters(_prog_id(d, where, sec))
                c.update({k: v for k, v in zip(COUNTERS, values) if v})
            out[dev] = {k: c.get(k, 0) for k in COUNTERS}
        return out

    def qdisc_stats(self, dev):
        """`tc -s` of the sending end `dev`: what the qdiscs themselves counted."""
        return tc("-s", "qdisc", "show", "dev", dev) + tc("-s", "class", "show", "dev", dev)


def _prog_id(dev, where, sec):
    out = tc("filter", "show", "dev", dev, *where)
    m = re.search(rf"impair/{sec}\].*? id (\d+)", out)
    if not m:
        raise RuntimeError(f"no impair/{sec} program on {dev} {where}:\n{out}")
    return int(m.group(1))


# The bpf(2) syscall, for the counters map of a program attached by tc (no bpftool needed).
_SYS_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
_MAP_LOOKUP_ELEM, _PROG_GET_FD_BY_ID, _MAP_GET_FD_BY_ID, _OBJ_GET_INFO_BY_FD = 1, 13, 14, 15
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd, attr):
    r = _libc.syscall(_SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"bpf({cmd}): {os.strerror(e)}")
    return r


def _read_counters(prog_id):
    attr = (ctypes.c_uint8 * 128)()
    ctypes.c_uint32.from_buffer(attr, 0).value = prog_id
    prog_fd = _bpf(_PROG_GET_FD_BY_ID, attr)
    try:
        # struct bpf_prog_info: nr_map_ids at byte 52, map_ids (a pointer) at 56.
        info = (ctypes.c_uint8 * 256)()
        map_ids = (ctypes.c_uint32 * 4)()
        ctypes.c_uint32.from_buffer(info, 52).value = len(map_ids)
        ctypes.c_uint64.from_buffer(info, 56).value = ctypes.addressof(map_ids)
        attr = (ctypes.c_uint8 * 128)()
        ctypes.c_uint32.from_buffer(attr, 0).value = prog_fd
        ctypes.c_uint32.from_buffer(attr, 4).value = ctypes.sizeof(info)
        ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(info)
        _bpf(_OBJ_GET_INFO_BY_FD, attr)
        if ctypes.c_uint32.from_buffer(info, 52).value != 1:
            raise RuntimeError(f"program {prog_id}: expected one map")
    finally:
        os.close(prog_fd)
    attr = (ctypes.c_uint8 * 128)()
    ctypes.c_uint32.from_buffer(attr, 0).value = map_ids[0]
    map_fd = _bpf(_MAP_GET_FD_BY_ID, attr)
    try:
        values = []
        key, value = ctypes.c_uint32(), ctypes.c_uint64()
        for i in range(len(COUNTERS)):
            key.value = i
            attr = (ctypes.c_uint8 * 128)()
            ctypes.c_uint32.from_buffer(attr, 0).value = map_fd
            ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(key)
            ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(value)
            _bpf(_MAP_LOOKUP_ELEM, attr)
            values.append(value.value)
        return values
    finally:
        os.close(map_fd)


# --- measurement: python3 link_impair.py ----------------------------------------------------------

def _measure_link(ends, count, interval_ms, **impairment):
    """Sends `count` numbered frames from ends[0] to ends[1] through packet sockets (the path DPDK's
    af_packet PMD takes with qdisc_bypass=0), every `interval_ms`, and returns what arrived."""
    import select
    import socket
    import struct
    import tempfile
    import time
    ethertype = 0x88b6  # local experimental 2 (the ballast uses 0x88b5)
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    tx.bind((ends[0], 0))
    rx.bind((ends[1], 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    dst = bytes.fromhex(open(f"/sys/class/net/{ends[1]}/address").read().strip().replace(":", ""))
    src = bytes.fromhex(open(f"/sys/class/net/{ends[0]}/address").read().strip().replace(":", ""))
    with tempfile.TemporaryDirectory(prefix="link-impair-") as d:
        imp = LinkImpairment(ends, d, **impairment) if impairment else None
        if imp:
            imp.install()
        try:
            sent, got = {}, []
            start = time.monotonic_ns()
            seq = 0
            end = start + int((count * interval_ms + 500) * 1e6)
            while time.monotonic_ns() < end:
                now = time.monotonic_ns()
                if seq < count and now >= start + int(seq * interval_ms * 1e6):
                    sent[seq] = now
                    tx.send(dst + src + struct.pack("!HI", ethertype, seq) + bytes(80))
                    seq += 1
                    continue
                due = (start + int(seq * interval_ms * 1e6) if seq < count else end) - now
                if select.select([rx], [], [], max(due, 0) / 1e9)[0]:
                    frame = rx.recv(2048)
                    got.append((struct.unpack("!I", frame[14:18])[0], time.monotonic_ns()))
            counters = imp.counters()[ends[0]] if imp else {}
        finally:
            if imp:
                imp.remove()
    delays = sorted((t - sent[s]) / 1e6 for s, t in got)
    seen, highest, reordered, dups = set(), -1, 0, 0
    for s, _ in got:
        if s in seen:
            dups += 1
        elif s < highest:
            reordered += 1
        seen.add(s)
        highest = max(highest, s)
    pct = lambda q: delays[min(int(q * len(delays)), len(delays) - 1)] if delays else float("nan")
    return {"sent": count, "received": len(got), "lost": count - len(seen), "duplicates": dups,
            "reordered": reordered, "delay_ms_min": pct(0), "delay_ms_p50": pct(0.5),
            "delay_ms_p99": pct(0.99), "delay_ms_max": pct(1.0), "counters": counters}


def _measure_child():
    import json
    subprocess.run(["ip", "link", "add", "lia", "type", "veth", "peer", "name", "lib"], check=True)
    for dev in ("lia", "lib"):
        subprocess.run(["ip", "link", "set", dev, "up"], check=True)
    cases = [("none", {}),
             ("delay 2 ms", {"delay_ms": 2.0}),
             ("reorder 10% by 10 ms", {"reorder": 0.1, "reorder_delay_ms": 10.0}),
             ("loss 5%, dup 5%", {"loss": 0.05, "duplicate": 0.05}),
             ("the test's: loss/dup/reorder 5%, delay 1 ms, reorder by 10 ms",
              {"loss": 0.05, "duplicate": 0.05, "reorder": 0.05, "delay_ms": 1.0,
               "reorder_delay_ms": 10.0})]
    for interval in (5.0, 0.5):
        for name, kw in cases:
            r = _measure_link(("lia", "lib"), 600, interval, **kw)
            print(f"every {interval} ms, {name}: " + json.dumps(r), flush=True)


if __name__ == "__main__":
    import secrets
    import sys
    if sys.argv[1:] == ["--child"]:
        _measure_child()
    else:
        ns = f"link-impair-{secrets.token_hex(3)}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            subprocess.run(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
                            "--child"], check=True)
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)
