"""Liveness of the running station, and the systemd watchdog that is fed only while it is alive.

`Health` collects heartbeats. Each component beats whenever it does useful work; the station is
healthy only while every *required* component beat within its allowance:

    health = Health()                    # "loop" and "sip" required, "audio" not (no call)
    health.beat("sip")                   # the SIP layer processed a message or its idle tick ran
    health.require("audio", True)        # a call started: the audio thread must now keep beating
    health.beat("audio")                 # from the audio thread, once per frame block
    health.require("audio", False)       # call ended
    health.healthy(now) -> bool;  health.problems(now) -> ["audio: silent for 3.1 s (limit 2 s)"]

Requiring a component starts its allowance afresh, so a call that has just begun is not judged
on the silence before it. `beat()` may be called from any thread (it only stores a float).

`Watchdog` feeds systemd (sd_notify WATCHDOG=1) from the asyncio loop itself: a loop that is
blocked cannot run `tick()`, so the pings stop and systemd restarts the service after
WatchdogSec. Each tick also beats "loop". The interval is a third of `$WATCHDOG_USEC`, which
leaves two missed ticks of margin; without `$WATCHDOG_USEC` (or with `$WATCHDOG_PID` naming
another process) the watchdog is disabled and `start()` does nothing.

    watchdog = Watchdog(Notifier(), health)
    watchdog.start(loop)          # schedules tick() every interval on `loop`
    watchdog.ready("listening on 0.0.0.0:5060")   # READY=1 + STATUS=
    watchdog.status("registered")                 # STATUS=
    watchdog.stopping()           # STOPPING=1, stops ticking

`install_test_hooks(loop)`: with DOORLINE_TEST_HOOKS=1 in the environment, SIGUSR2 makes the loop
run a blocking `time.sleep(DOORLINE_TEST_BLOCK_S)` (default 5 s), so tests can show that a
blocked loop stops the pings; SIGUSR1 logs the loaded modules' names (a guard that the idle
station loads nothing its configuration does not use). Does nothing otherwise.
"""

import logging
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Mapping

    from firmware.runtime.sdnotify import Notifier

log = logging.getLogger("doorline.health")

# Allowances in seconds: how long a required component may stay silent.
LIMITS = {
    "loop": 5.0,    # the watchdog tick itself runs at least every WatchdogSec/3
    "sip": 10.0,    # the SIP layer handled input or ran its idle tick
    "audio": 2.0,   # during a call the audio thread moves a 20 ms frame block many times a second
}
REQUIRED_AT_START = ("loop", "sip")
TEST_BLOCK_DEFAULT_S = 5.0


class Health:
    def __init__(self, limits: dict[str, float] | None = None,
                 clock: "Callable" = time.monotonic) -> None:
        self.limits = dict(LIMITS if limits is None else limits)
        self._clock = clock
        start = clock()
        self._last = {name: start for name in self.limits}
        self._required = {name: name in REQUIRED_AT_START for name in self.limits}

    def beat(self, name: str, now: float | None = None) -> None:
        if name not in self.limits:
            raise KeyError(f"unknown health component {name!r}")
        self._last[name] = self._clock() if now is None else now

    def require(self, name: str, required: bool = True, now: float | None = None) -> None:
        if required and not self._required[name]:
            self.beat(name, now)
        self._required[name] = bool(required)

    def problems(self, now: float | None = None) -> list[str]:
        """One line per required component that is overdue; empty when healthy."""
        now = self._clock() if now is None else now
        lines = []
        for name, limit in self.limits.items():
            age = now - self._last[name]
            if self._required[name] and age > limit:
                lines.append(f"{name}: silent for {age:.1f} s (limit {limit:g} s)")
        return lines

    def healthy(self, now: float | None = None) -> bool:
        return not self.problems(now)


def interval_from_environment(environ: "Mapping[str, str] | None" = None) -> float | None:
    """Seconds between watchdog pings (WATCHDOG_USEC / 3), or None when systemd wants none."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1e6 / 3


class Watchdog:
    def __init__(self, notifier: "Notifier", health: "Health", interval: float | None = None,
                 environ: "Mapping[str, str] | None" = None) -> None:
        self.notifier = notifier
        self.health = health
        self.interval = interval_from_environment(environ) if interval is None else interval
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._was_healthy = True

    def ready(self, status: str | None = None) -> None:
        self.notifier.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> None:
        self.notifier.notify(f"STATUS={text}")

    def stopping(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.notifier.notify("STOPPING=1")

    def tick(self, now: float | None = None) -> bool:
        """Beat "loop" and ping systemd if everything required is alive. Returns True if pinged."""
        self.health.beat("loop", now)
        problems = self.health.problems(now)
        if problems:
            if self._was_healthy:
                log.warning("unhealthy, withholding watchdog pings: %s", "; ".join(problems))
                self.status("unhealthy: " + "; ".join(problems))
            self._was_healthy = False
            return False
        if not self._was_healthy:
            log.info("healthy again, watchdog pings resume")
            self.status("running")
        self._was_healthy = True
        return self.notifier.notify("WATCHDOG=1")

    def start(self, loop: "asyncio.AbstractEventLoop") -> None:
        """Tick every `interval` seconds on `loop` (nothing when the watchdog is disabled)."""
        if self.interval is None:
            return
        self._loop = loop
        self._schedule()

    def _schedule(self) -> None:
        assert self._loop is not None and self.interval is not None  # start() set them
        self._handle = self._loop.call_later(self.interval, self._on_timer)

    def _on_timer(self) -> None:
        self.tick()
        self._schedule()


def install_test_hooks(loop: "asyncio.AbstractEventLoop",
                       environ: "Mapping[str, str] | None" = None) -> bool:
    """With DOORLINE_TEST_HOOKS=1: SIGUSR2 blocks `loop` for DOORLINE_TEST_BLOCK_S seconds;
    SIGUSR1 logs the names of the loaded modules (one WARNING line)."""
    environ = os.environ if environ is None else environ
    if environ.get("DOORLINE_TEST_HOOKS") != "1":
        return False
    seconds = float(environ.get("DOORLINE_TEST_BLOCK_S", TEST_BLOCK_DEFAULT_S))

    def block_loop() -> None:
        log.warning("test hook: blocking the event loop for %.1f s", seconds)
        time.sleep(seconds)  # deliberately blocking: this simulates a hung loop

    def log_modules() -> None:
        # What the idle station has loaded (tests/integration/test_lean_start.py: nothing the
        # configuration does not use).
        log.warning("test hook: modules loaded: %s", " ".join(sorted(sys.modules)))

    loop.add_signal_handler(signal.SIGUSR2, block_loop)
    loop.add_signal_handler(signal.SIGUSR1, log_modules)
    return True
