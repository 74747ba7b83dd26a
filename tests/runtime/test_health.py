"""Health monitor and systemd watchdog: pings flow only while every required part is alive."""

import asyncio
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from firmware.runtime.health import Health, Watchdog, install_test_hooks, interval_from_environment
from firmware.runtime.sdnotify import Notifier

ROOT = pathlib.Path(__file__).resolve().parents[2]


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: a bound datagram socket in a short temp dir, drained
    by a thread (the kernel queues only ~10 datagrams) that records (arrival time, text)."""

    def __init__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="dl-wd-")
        self.path = os.path.join(self._dir.name, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.datagrams = []
        self._arrived = threading.Condition()
        self._closing = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while not self._closing:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._arrived:
                self.datagrams.append((time.monotonic(), data.decode()))
                self._arrived.notify_all()

    def receive_for(self, seconds):
        """What arrives within the next `seconds`, as (arrival time, text)."""
        start = len(self.datagrams)
        time.sleep(seconds)
        with self._arrived:
            return self.datagrams[start:]

    def wait_for(self, text, seconds):
        deadline = time.monotonic() + seconds
        with self._arrived:
            while True:
                for _, data in self.datagrams:
                    if text in data.split("\n"):
                        return data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{text!r} not received within {seconds} s")
                self._arrived.wait(left)

    def close(self):
        self._closing = True
        self._reader.join(timeout=2)
        self.sock.close()
        self._dir.cleanup()


@pytest.fixture
def systemd():
    fake = FakeSystemd()
    yield fake
    fake.close()


def pings(datagrams):
    return [t for t, text in datagrams if "WATCHDOG=1" in text.split("\n")]


# -- Health ---------------------------------------------------------------------------------------

def test_loop_and_sip_required_audio_only_during_a_call():
    health = Health(clock=lambda: 100.0)
    assert health.healthy(104.0)
    assert health.problems(111.0) == ["loop: silent for 11.0 s (limit 5 s)",
                                      "sip: silent for 11.0 s (limit 10 s)"]
    health.beat("loop", 110.0)
    health.beat("sip", 110.0)
    assert health.healthy(111.0)
    health.require("audio", True, now=111.0)
    assert health.healthy(112.9)
    assert health.problems(113.5) == ["audio: silent for 2.5 s (limit 2 s)"]
    health.require("audio", False)
    assert health.healthy(113.5)


def test_requiring_again_restarts_the_allowance():
    health = Health(clock=lambda: 0.0)
    health.require("audio", True, now=0.0)
    health.require("audio", False)
    health.require("audio", True, now=50.0)
    health.beat("loop", 50.0)
    health.beat("sip", 50.0)
    assert health.healthy(51.0)


def test_unknown_component_is_an_error():
    with pytest.raises(KeyError):
        Health().beat("sipp")


def test_interval_is_a_third_of_watchdog_usec():
    assert interval_from_environment({"WATCHDOG_USEC": "30000000"}) == 10.0
    assert interval_from_environment({}) is None
    assert interval_from_environment({"WATCHDOG_USEC": "0"}) is None
    assert interval_from_environment({"WATCHDOG_USEC": "3000000",
                                      "WATCHDOG_PID": str(os.getpid())}) == 1.0
    assert interval_from_environment({"WATCHDOG_USEC": "3000000",
                                      "WATCHDOG_PID": str(os.getpid() + 1)}) is None


# -- Watchdog ------------------------------------------------------------------------------------

def test_ready_status_stopping(systemd):
    watchdog = Watchdog(Notifier(systemd.path), Health(), interval=1.0)
    watchdog.ready("listening on 127.0.0.1:5070")
    watchdog.status("registered")
    watchdog.stopping()
    systemd.wait_for("STOPPING=1", 2.0)
    texts = [text for _, text in systemd.datagrams]
    assert texts == ["READY=1\nSTATUS=listening on 127.0.0.1:5070", "STATUS=registered",
                     "STOPPING=1"]


def test_pings_stop_when_the_audio_thread_hangs_and_resume_after(systemd):
    health = Health(limits={"loop": 5.0, "sip": 10.0, "audio": 0.3})
    watchdog = Watchdog(Notifier(systemd.path), health, interval=0.05)
    health.require("audio", True)
    hung = threading.Event()
    stop = threading.Event()

    def audio_thread():
        while not stop.is_set():
            if not hung.is_set():
                health.beat("audio")
            time.sleep(0.02)

    async def scenario():
        loop = asyncio.get_running_loop()
        watchdog.start(loop)
        await asyncio.sleep(0.5)
        hung.set()
        hang_started = time.monotonic()
        await asyncio.sleep(1.0)
        hung.clear()
        await asyncio.sleep(0.5)
        watchdog.stopping()
        return hang_started

    thread = threading.Thread(target=audio_thread, daemon=True)
    thread.start()
    try:
        hang_started = asyncio.run(scenario())
    finally:
        stop.set()
        thread.join(timeout=2)
    systemd.receive_for(0.1)
    datagrams = systemd.datagrams
    times = pings(datagrams)
    before = [t for t in times if t < hang_started]
    # allowance 0.3 s plus one tick of slack: no pings from then until the thread beats again
    during = [t for t in times if hang_started + 0.4 < t < hang_started + 1.0]
    after = [t for t in times if t > hang_started + 1.05]
    assert len(before) >= 5
    assert during == []
    assert len(after) >= 5
    statuses = [text for _, text in datagrams if text.startswith("STATUS=")]
    assert statuses[0].startswith("STATUS=unhealthy: audio: silent for")
    assert statuses[1] == "STATUS=running"


def test_a_blocked_loop_sends_no_pings(systemd):
    watchdog = Watchdog(Notifier(systemd.path), Health(), interval=0.05)

    async def scenario():
        loop = asyncio.get_running_loop()
        watchdog.start(loop)
        await asyncio.sleep(0.3)
        started = time.monotonic()
        time.sleep(0.6)  # the hung loop
        ended = time.monotonic()
        await asyncio.sleep(0.3)
        watchdog.stopping()
        return started, ended

    started, ended = asyncio.run(scenario())
    systemd.receive_for(0.1)
    times = pings(systemd.datagrams)
    assert len([t for t in times if t < started]) >= 3
    assert [t for t in times if started + 0.01 < t < ended] == []
    assert len([t for t in times if t > ended]) >= 3


def test_disabled_watchdog_schedules_nothing(systemd):
    watchdog = Watchdog(Notifier(systemd.path), Health(), environ={})
    assert watchdog.interval is None

    async def scenario():
        watchdog.start(asyncio.get_running_loop())
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    systemd.receive_for(0.1)
    assert systemd.datagrams == []


def test_test_hook_needs_the_environment_switch():
    async def scenario():
        loop = asyncio.get_running_loop()
        assert install_test_hooks(loop, environ={}) is False
        assert install_test_hooks(loop, environ={"DOORLINE_TEST_HOOKS": "1",
                                                 "DOORLINE_TEST_BLOCK_S": "0.4"})
        ticks = []
        loop.call_later(0.05, lambda: os.kill(os.getpid(), signal.SIGUSR2))
        start = time.monotonic()
        while time.monotonic() - start < 0.6:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)
        loop.remove_signal_handler(signal.SIGUSR2)
        return max(b - a for a, b in zip(ticks, ticks[1:], strict=False))

    assert asyncio.run(scenario()) >= 0.35


# -- the real firmware under a fake systemd -------------------------------------------------------

def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_firmware_stops_pinging_while_its_loop_is_blocked(systemd, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[sip]\nlisten = "127.0.0.1:{_free_port()}"\n'
                      f'[web]\nlisten = "127.0.0.1:{_free_port()}"\n')
    env = dict(os.environ, NOTIFY_SOCKET=systemd.path, WATCHDOG_USEC="1500000",
               DOORLINE_TEST_HOOKS="1", DOORLINE_TEST_BLOCK_S="2.5")
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "firmware", "--board", "pc-sim", "--config", str(config),
         "--state-dir", str(tmp_path / "state")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        systemd.wait_for("READY=1", 15.0)
        assert len(pings(systemd.receive_for(1.6))) >= 2  # every 0.5 s
        proc.send_signal(signal.SIGUSR2)
        blocked_at = time.monotonic()
        datagrams = systemd.receive_for(4.0)
        times = pings(datagrams)
        assert [t for t in times if blocked_at + 0.6 < t < blocked_at + 2.4] == []
        assert len([t for t in times if t > blocked_at + 2.6]) >= 2
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING=1", 5.0)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        proc.stderr.close()
