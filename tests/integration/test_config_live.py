"""A saved configuration can never brick the station (issue 12), against the real firmware.

- `PUT /api/config` with a CRLF in `sip.domain` → 400 naming the field, nothing saved; the
  station restarts fine afterwards (before the fix the value was saved and every start after it
  died with a ParseError: a restart loop that hid the page);
- a station whose SIP cannot start (its SIP port is taken) still serves the web page, and
  /api/status says why; a PUT of a working configuration brings SIP up and registers with
  Kamailio, in the same process;
- a hand-written configuration file that is invalid does not end the process: the page comes up
  with SIP off, /api/status names the bad fields, and saving a fixed configuration registers.

Every wait is bounded; stations are killed by PID.
"""

import os
import socket

import pytest

from tests.integration.helpers import station_config, wait_contacts
from tests.integration.test_web_live import LiveStation
from tests.peers.fixtures import DOOR_PASSWORD, DOOR_USER
from tests.peers.process import free_port

pytestmark = pytest.mark.peers

CRLF_DOMAIN = "example.org\r\nX-Injected: 1"


@pytest.fixture
def live_station(tmp_path):
    started = []

    def make(config, wait_web=True):
        station = LiveStation(tmp_path / f"station-{len(started)}", config)
        started.append(station)
        return station.start() if wait_web else station

    yield make
    for station in started:
        station.fw.kill()
        print(f"--- station {station.fw.workdir} ---{station.describe(60)}")


def test_crlf_in_domain_is_refused_and_nothing_saved(live_station):
    station = live_station(station_config(None))
    station.set_password()
    file_before = station.config_bytes()

    reply = station.http("PUT", "/api/config", {"sip": {"domain": CRLF_DOMAIN}})
    assert reply.status == 400, f"{reply}{station.describe()}"
    assert list(reply.json["errors"]) == ["sip.domain"], reply.json
    assert "host name" in reply.json["errors"]["sip.domain"], reply.json
    assert station.config_bytes() == file_before, "a refused configuration was written"
    assert not os.path.exists(station.fw.config_path + ".prev")
    assert station.api("GET", "/api/config")["sip"]["domain"] == "127.0.0.1"

    # The file on disk still starts: the next start serves the page and runs SIP.
    pid = station.fw.pid
    code, _ = station.fw.stop()
    assert code == 0, station.describe()
    offset = station.fw.log_offset()
    station.fw.start()
    station.fw.wait_log(r"web page on http://", 8.0, since=offset)
    station.fw.wait_log(r"listening on 127\.0\.0\.1", 5.0, since=offset)
    assert station.fw.pid != pid and station.fw.alive
    registration = station.status()["registration"]
    assert {k: registration[k] for k in ("state", "error", "next_refresh", "mode", "reason")} \
        == {"state": "disabled", "error": None, "next_refresh": None, "mode": "direct",
            "reason": None}, registration


def test_sip_that_cannot_start_leaves_the_page_up_and_a_fixed_config_registers(
        kamailio, live_station):
    config = station_config(kamailio, "udp")
    busy_port = int(config["sip"]["listen"].rsplit(":", 1)[1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", busy_port))
        station = live_station(config)
        station.fw.wait_log(r"SIP not started", 5.0)
        station.set_password()
        pid = station.fw.pid
        status = station.status()
        registration = status["registration"]
        assert registration["state"] == "failed", status
        assert "sip.listen" in registration["error"] and "in use" in registration["error"], status
        assert status["config_errors"] == {}, status
        assert kamailio.contacts(DOOR_USER) == []

        # Saving the same unusable settings again: 400 for the field, SIP still off, and the
        # status still says why.
        reply = station.http("PUT", "/api/config", {"sip": {"expires": 900}})
        assert reply.status == 400, f"{reply}{station.describe()}"
        assert "in use" in reply.json["errors"]["sip.listen"], reply.json
        status = station.status()
        assert status["registration"]["state"] == "failed", status
        assert "in use" in status["registration"]["error"], status
        assert "expires = 900" not in station.config_bytes().decode()

        new_port = free_port(("udp", "tcp"))
        saved = station.api("PUT", "/api/config",
                            {"sip": {"listen": f"127.0.0.1:{new_port}", "password": "(set)"}})
        assert saved["sip"]["listen"] == f"127.0.0.1:{new_port}"
        station.wait_status(lambda s: s["registration"]["state"] == "registered", 5.0,
                            "registered after the fixed configuration")
        contacts = wait_contacts(kamailio, DOOR_USER, timeout=3.0)
        assert any(f":{new_port}" in c for c in contacts), contacts
        assert station.fw.pid == pid and station.fw.alive, "the process was restarted"
        assert f"127.0.0.1:{new_port}" in station.config_bytes().decode()


def test_a_bad_file_on_disk_starts_the_page_with_sip_off_until_fixed(kamailio, tmp_path,
                                                                       live_station):
    """A hand-edited file with a CRLF in the domain: no exit (no restart loop), the page is up,
    /api/status names the field, saving a fixed domain registers in the same process."""
    good = station_config(kamailio, "udp")
    sip_port = int(good["sip"]["listen"].rsplit(":", 1)[1])
    web = good["web"]["listen"]
    text = (f'[sip]\nregistrar = "{good["sip"]["registrar"]}"\n'
            f'domain = "{kamailio.domain}\\r\\nX-Injected: 1"\n'
            f'username = "{DOOR_USER}"\npassword = "{DOOR_PASSWORD}"\n'
            f'listen = "{good["sip"]["listen"]}"\nexpires = 600\n'
            f'[web]\nlisten = "{web}"\n')
    station = LiveStation(tmp_path / "bad-file", good)
    with open(station.fw.config_path, "w", encoding="utf-8") as config_file:
        config_file.write(text)  # the hand-edited file, instead of the dict's TOML
    station.start()
    station.set_password()
    pid = station.fw.pid
    try:
        status = station.status()
        assert status["registration"]["state"] == "failed", status
        assert "sip.domain" in status["registration"]["error"], status
        assert list(status["config_errors"]) == ["sip.domain"], status
        assert "host name" in status["config_errors"]["sip.domain"], status
        shown = station.api("GET", "/api/config")
        assert shown["sip"]["registrar"] == good["sip"]["registrar"], shown  # the rest is kept
        assert shown["sip"]["password"] == "(set)"
        assert kamailio.contacts(DOOR_USER) == []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", sip_port))  # SIP is off: its port is free

        station.api("PUT", "/api/config", {"sip": {"domain": kamailio.domain,
                                                   "password": "(set)"}})
        status = station.wait_status(lambda s: s["registration"]["state"] == "registered",
                                     5.0, "registered after the domain was fixed")
        assert status["config_errors"] == {}, status
        contacts = wait_contacts(kamailio, DOOR_USER, timeout=3.0)
        assert any(f":{sip_port}" in c for c in contacts), contacts
        assert station.fw.pid == pid and station.fw.alive
        assert b"X-Injected" not in station.config_bytes()
        with open(station.fw.config_path + ".prev", "rb") as previous:
            assert b"X-Injected" in previous.read()  # the admin's file is kept as the backup
    finally:
        station.fw.kill()
        print(station.describe(60))


def test_tls_ca_that_is_not_a_pem_certificate_is_refused_at_save(live_station, tmp_path):
    station = live_station(station_config(None))
    station.set_password()
    file_before = station.config_bytes()
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("this is not a certificate\n")
    for path, fragment in ((not_pem, "CERTIFICATE block"), (tmp_path / "nowhere.pem",
                                                              "file not found")):
        reply = station.http("PUT", "/api/config",
                             {"sip": {"transport": "tls", "tls_ca": str(path)}})
        assert reply.status == 400, f"{reply}{station.describe()}"
        assert list(reply.json["errors"]) == ["sip.tls_ca"], reply.json
        assert fragment in reply.json["errors"]["sip.tls_ca"], reply.json
    assert station.config_bytes() == file_before


def test_a_registrar_that_does_not_resolve_does_not_hide_the_page(live_station):
    """The registrar lookup retries for ever; the page used to wait for it and never came up."""
    config = station_config(None)
    config["sip"].update({"registrar": "doorline-test.invalid", "username": DOOR_USER})
    station = live_station(config)
    station.set_password()
    status = station.wait_status(lambda s: s["registration"]["error"], 5.0,
                                 "the lookup failure in the status")
    # issue 18: still trying, so "registering", with the lookup failure as the reason
    assert status["registration"]["state"] == "registering", status
    assert status["registration"]["reason"] == status["registration"]["error"], status
    assert "registrar not found" in status["registration"]["error"], status
    assert "doorline-test.invalid" in status["registration"]["error"], status
    assert station.fw.alive


def test_tls_ca_that_is_not_a_pem_certificate_is_named_at_start(live_station, tmp_path):
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("this is not a certificate\n")
    config = station_config(None)
    config["sip"].update({"transport": "tls", "tls_ca": str(not_pem)})
    station = live_station(config)
    station.set_password()
    status = station.status()
    assert status["registration"]["state"] == "failed", status
    assert list(status["config_errors"]) == ["sip.tls_ca"], status
    assert "CERTIFICATE block" in status["config_errors"]["sip.tls_ca"], status
    assert station.fw.alive
