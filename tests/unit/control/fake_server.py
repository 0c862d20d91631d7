"""Starts sluice-control-fake on 127.0.0.1 (an ephemeral port) for the control-plane tests."""
import subprocess


class FakeServer:
    def __init__(self, exe, *args):
        self.proc = subprocess.Popen([exe, "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening "):
            self.proc.kill()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.address = line.split()[1]
        self.url = "http://" + self.address

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.returncode == 0, f"fake server exit {self.proc.returncode}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
