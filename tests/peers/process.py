"""Process and port plumbing shared by the peer wrappers.

Public API:
- `free_port(kinds=("udp", "tcp"), low=2000, high=9999) -> int`: a 127.0.0.1 port that both
  kinds can bind right now. The default range is 4-digit on purpose: sipsak truncates 5-digit
  ports in the Request-URI, and staying below the Linux ephemeral range (32768+) avoids
  clashing with ports the kernel hands out to other tests' clients.
- `ManagedProcess(argv, log_path, cwd=None, env=None)`: `start()`, `alive`, `pid`,
  `returncode`, `wait(timeout)`, `stop(timeout=5.0, sig=SIGTERM, repeat=False)` (signal by
  PID, bounded wait, then SIGKILL to the process group it was started in), `log_text()`.
  Output (stdout and stderr) goes to `log_path`, never to a pipe nobody reads.
- `wait_until(predicate, timeout, interval=0.02) -> bool`: bounded polling.
- `require_binary(name) -> str`: absolute path, or `MissingBinary` (fixtures turn it into a skip).
"""

import os
import random
import shutil
import signal
import socket
import subprocess
import time

_handed_out = set()


class MissingBinary(RuntimeError):
    pass


def require_binary(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise MissingBinary(f"{name} is not installed")
    return path


def can_bind(kind, port):
    """Is 127.0.0.1:port free for `kind` ("udp"/"tcp")?"""
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, sock_type) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(kinds=("udp", "tcp"), low=2000, high=9999):
    # Random rather than sequential: other test sessions on this machine pick ports too.
    for _ in range(500):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        if all(can_bind(kind, port) for kind in kinds):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {low}-{high}")


def wait_until(predicate, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class ManagedProcess:
    def __init__(self, argv, log_path, cwd=None, env=None):
        self.argv = [str(arg) for arg in argv]
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self._popen = None

    def start(self):
        if self.alive:
            raise RuntimeError(f"{self.argv[0]} already running as {self.pid}")
        with open(self.log_path, "ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                # Own process group: a peer that forks workers (Kamailio) can then be
                # SIGKILLed with its children and nothing else.
                start_new_session=True,
            )

    @property
    def pid(self):
        return self._popen.pid if self._popen else None

    @property
    def alive(self):
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self):
        return self._popen.poll() if self._popen else None

    def wait(self, timeout):
        """Return code once the process exits; subprocess.TimeoutExpired after `timeout`."""
        return self._popen.wait(timeout)

    def stop(self, timeout=5.0, sig=signal.SIGTERM, repeat=False):
        """Signal, wait up to `timeout`, then SIGKILL the process group. With `repeat`, the
        signal is sent a second time halfway through (baresip treats a second SIGTERM as
        "stop now" instead of waiting for its de-REGISTER to be answered)."""
        if self._popen is None:
            return None
        waits = (timeout / 2, timeout / 2) if repeat else (timeout,)
        for wait in waits:
            if self._popen.poll() is not None:
                break
            os.kill(self._popen.pid, sig)
            try:
                self._popen.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        if self._popen.poll() is None:
            os.killpg(self._popen.pid, signal.SIGKILL)
            self._popen.wait(timeout)
        return self._popen.returncode

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return log.read()
        except FileNotFoundError:
            return ""


class PeerProcess:
    """What every peer wrapper tells about its process (`_process`, a ManagedProcess, and
    `log_path`); used as `with Peer(...) as peer:`."""

    _process = None
    log_path = None

    def __enter__(self):
        return self.start()

    @property
    def alive(self):
        return self._process is not None and self._process.alive

    @property
    def pid(self):
        return self._process.pid if self._process else None

    @property
    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
