"""Issue 14: the idle station loads only what its configuration uses, and registers first.

A plain configuration (UDP, a registrar given by IP address, http web page) must not load the
modules that were made lazy or that only other configurations need: the DNS resolver library
(an IP registrar needs no lookup), SRTP and cryptography (no call, no https), argparse's help
formatter and ctypes.util with what they drag in (shutil, bz2, lzma, tempfile). The module
list comes from the running firmware's test hook (DOORLINE_TEST_HOOKS=1: SIGUSR1 logs
sys.modules, firmware/runtime/health.py). Start order: the registrar's answer comes before
the web page starts, and the media code is loaded once registered (the warm-up), before a call.
"""

import os
import re
import signal

import pytest

from tests.integration.helpers import Firmware, station_config, wait_contacts

pytestmark = pytest.mark.peers

NOT_LOADED = (
    "dns.resolver", "dns.asyncresolver", "dns.query",  # RFC 3263 lookups: an IP registrar
    "pylibsrtp", "cryptography", "_cffi_backend",  # SRTP, the https certificate
    "argparse", "shutil", "bz2", "lzma", "tempfile", "ctypes.util",  # start-up helpers
    "hypothesis", "email", "http.client", "http.server", "sqlite3",
    "zoneinfo",  # schedules in a time zone other than UTC (runtime/localtime.py)
)


def loaded_modules(station):
    offset = station.log_offset()
    os.kill(station.pid, signal.SIGUSR1)  # our own process, by PID
    line = station.wait_log(r"test hook: modules loaded: (.*)", timeout=5.0, since=offset)
    return set(line.group(1).split())


def test_idle_station_loads_nothing_it_does_not_use(tmp_path, kamailio):
    config = station_config(kamailio, "udp")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", config["sip"]["registrar"])
    station = Firmware(tmp_path / "fw", config, log_level="INFO").start()
    try:
        wait_contacts(kamailio, "door", timeout=10.0)
        web = station.wait_log(r"web page on http://", timeout=10.0)
        registered = station.wait_log(r"registration registered", timeout=10.0)
        assert registered.start() < web.start(), "the page started before the registrar answered"
        modules = loaded_modules(station)
        assert "firmware.runtime.media" in modules  # the warm-up: loaded before any call
        assert "microdot" in modules  # the page is up
        unexpected = sorted(name for name in NOT_LOADED if name in modules)
        assert unexpected == [], f"the idle station loaded {unexpected}"
        assert station.alive
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-3000:]}")
