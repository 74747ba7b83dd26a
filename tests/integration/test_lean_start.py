"""Issue 14: the idle station loads only what its configuration uses, and registers first.

A plain configuration (UDP, a registrar given by IP address, http web page) must not load the
modules that were made lazy or that only other configurations need: the DNS resolver library
(an IP registrar needs no lookup), SRTP, ssl (asyncio imports it unless firmware/runtime/lazyssl.py
holds it back) and cryptography (no call, no https), argparse's help
formatter and ctypes.util with what they drag in (shutil, bz2, lzma, tempfile), and OpenSSL's
libcrypto (hashlib, hmac, secrets) before a password is set or checked. The module
list comes from the running firmware's test hook (DOORLINE_TEST_HOOKS=1: SIGUSR1 logs
sys.modules, firmware/runtime/health.py). Start order: the registrar's answer comes before
the web page starts, and the media code is loaded once registered (the warm-up), before a call.
Issue 14, sixth round: after a login the station still has no http enum nor `random`, and a
restart with its files unchanged loads no TOML parser (firmware/tomlcache.py).
"""

import base64
import json
import os
import re
import signal
import site
import urllib.request

import pytest

from tests.integration.helpers import Firmware, station_config, wait_contacts
from tests.peers.process import ManagedProcess

ADMIN_PASSWORD = "lean-start admin 7f3c"

pytestmark = pytest.mark.peers

NOT_LOADED = (
    "dns", "dns.exception",  # RFC 3263 lookups (dnspython): not for an IP registrar
    "dns.resolver", "dns.asyncresolver", "dns.query",
    "pylibsrtp", "cryptography", "_cffi_backend",  # SRTP, the https certificate
    "argparse", "shutil", "bz2", "lzma", "tempfile", "ctypes.util",  # start-up helpers
    "hypothesis", "email", "http.client", "http.server", "sqlite3",
    "ssl", "_ssl",  # asyncio's own import of ssl waits for TLS (firmware/runtime/lazyssl.py)
    "dataclasses",  # hal/board.py's records are plain classes
    "tomli_w",  # only when the configuration is saved
    "pathlib", "urllib.parse",  # board files and the simulated audio use os.path
    "zoneinfo",  # schedules in a time zone other than UTC (runtime/localtime.py)
    # telling the house (issue 17): only with [mqtt] broker or [[webhooks]]
    "aiomqtt", "paho", "firmware.runtime.house", "firmware.runtime.mqtt",
    "firmware.runtime.webhooks", "firmware.app.homeassistant",
    # OpenSSL's libcrypto (~3 MB) until a password is set or checked, TLS, or SHA-512-256
    # (issue 14, fifth round): the page's tokens, digests and compares take no hashlib
    "hashlib", "_hashlib", "hmac", "secrets",
    "http", "html",  # the status enum tables and the entity table, for one phrase and escape
    "random",  # the RTP port draws take os.urandom (runtime/media.py)
)
# Nor after a restart with the configuration and board files unchanged (issue 14, sixth round)
NOT_LOADED_ON_RESTART = ("tomllib", "datetime", "_datetime")
# Still not loaded once an administrator has logged in (the bench's idle figure; issue 14,
# sixth round): the reason phrases are the page's own table, not http.HTTPStatus.
NOT_LOADED_AFTER_LOGIN = ("http", "html", "random", "secrets", "ssl", "_ssl", "tomli_w",
                          "email", "http.client", "urllib.parse", "pathlib")


class InstalledFirmware(Firmware):
    """Started as tools/install/doorline.service starts it: `python -S -m firmware` with the
    site-packages on PYTHONPATH (with `site`, the editable install's import hook of this
    development tree would load pathlib and more before our first line)."""

    def start(self):
        self.argv[1:1] = ["-S"]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "DOORLINE_TEST_HOOKS": "1",
                    "PYTHONPATH": os.pathsep.join(site.getsitepackages())}
        ManagedProcess.start(self)
        return self


def loaded_modules(station):
    offset = station.log_offset()
    os.kill(station.pid, signal.SIGUSR1)  # our own process, by PID
    line = station.wait_log(r"test hook: modules loaded: (.*)", timeout=5.0, since=offset)
    return set(line.group(1).split())


def log_in(station):
    """As the bench does before it reads the idle RSS: set the admin password, then one
    authenticated request (scrypt)."""
    port = int(station.config["web"]["listen"].rsplit(":", 1)[1])
    base = f"http://127.0.0.1:{port}"
    request = urllib.request.Request(f"{base}/api/setup", data=json.dumps(
        {"password": ADMIN_PASSWORD}).encode(), headers={"Content-Type": "application/json"},
        method="POST")
    with urllib.request.urlopen(request, timeout=10.0) as response:
        assert response.status == 200
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    request = urllib.request.Request(f"{base}/api/events?limit=1",
                                     headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=10.0) as response:
        assert response.status == 200


def test_idle_station_loads_nothing_it_does_not_use(tmp_path, kamailio):
    config = station_config(kamailio, "udp")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", config["sip"]["registrar"])
    station = InstalledFirmware(tmp_path / "fw", config, log_level="INFO").start()
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
        log_in(station)
        modules = loaded_modules(station)
        assert "hashlib" in modules  # the login's scrypt
        unexpected = sorted(name for name in NOT_LOADED_AFTER_LOGIN if name in modules)
        assert unexpected == [], f"after a login the station loaded {unexpected}"
        # A restart with both files unchanged takes their parsed TOML from the state
        # directory (firmware/tomlcache.py): no TOML parser, no datetime.
        offset = station.log_offset()
        assert station.stop()[0] == 0
        station.start()
        station.wait_log(r"registration registered", timeout=10.0, since=offset)
        station.wait_log(r"web page on http://", timeout=10.0, since=offset)
        modules = loaded_modules(station)
        unexpected = sorted(name for name in NOT_LOADED + NOT_LOADED_ON_RESTART
                            if name in modules)
        assert unexpected == [], f"the restarted station loaded {unexpected}"
        assert station.alive
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-3000:]}")


def test_a_camera_configured_but_unused_loads_no_camera_library(tmp_path, kamailio):
    """Issue 16: with `--camera pattern` and `[camera] enabled`, nothing of PyAV (nor any
    encoder) is loaded until the camera is used; a snapshot then loads it."""
    config = station_config(kamailio, "udp")
    station = Firmware(tmp_path / "fw", config, log_level="INFO",
                       extra_args=("--camera", "pattern")).start()
    try:
        station.wait_log(r"registration registered", timeout=10.0)
        station.wait_log(r"web page on http://", timeout=10.0)
        modules = loaded_modules(station)
        assert "firmware.runtime.camera" in modules  # the warm-up made the service
        camera_libraries = sorted(name for name in modules
                                  if name == "av" or name.startswith(("av.", "hal.camera_av",
                                                                      "picamera2")))
        assert camera_libraries == [], camera_libraries
        assert station.alive
    finally:
        station.kill()
