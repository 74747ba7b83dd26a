"""The web API of the real firmware process over real HTTP (issue 6), against real peers.

tests/web/ checks the same API through a FakeStation; here `python -m firmware --board pc-sim`
runs as its own process (tests/integration/helpers.py `Firmware`), Kamailio is the registrar and
a baresip plays flat1. HTTP goes through the standard library only (http.client), so redirects
and status codes are seen exactly as sent.

- first boot: every API path answers 403 with a message until `POST /api/setup`, which works
  once (409 after); afterwards no credentials → 401 with a Basic challenge;
- configuration applied live: a direct-IP station gets a registrar by `PUT /api/config` and
  registers at Kamailio without a restart (same PID), then moves to TCP and re-registers;
- a valid configuration the station cannot use (its new SIP port is taken) → 400 for that
  field, the running settings kept and re-saved;
- bad configurations (port 70000, unknown transport, malformed SIP URI, duplicate button role)
  → 400 with one message per field, the file's bytes, the status and the binding unchanged;
- the call button through `POST /api/sim/button/call` rings flat1; status, hang-up, event log
  and /metrics follow the call;
- `POST /api/door/open` pulses the relay (seen open, then closed in /api/status); requests a
  cross-site page could send (form content type, cross-site fetch metadata, foreign Origin)
  cannot open it.

Every wait is bounded; failures carry the station's log tail.
"""

import base64
import http.client
import json
import os
import socket
import stat
import time
import tomllib

import pytest

from firmware import config as configuration
from tests.integration.helpers import Firmware, station_config, wait_contacts
from tests.peers.audio import write_tone_wav
from tests.peers.fixtures import DOOR_PASSWORD, DOOR_USER, FLAT1_USER
from tests.peers.process import free_port, wait_until

pytestmark = pytest.mark.peers

ADMIN_PASSWORD = "Klingel-Draht-4182"
FLAT1 = "sip:flat1@127.0.0.1"
PULSE_MS = 1000
API_PATHS = [  # every API route with a body it would accept once authenticated
    ("GET", "/api/status", None), ("GET", "/api/config", None), ("GET", "/api/events", None),
    ("GET", "/metrics", None), ("PUT", "/api/config", {"sip": {"expires": 600}}),
    ("POST", "/api/call", {"target": FLAT1}), ("POST", "/api/hangup", {}),
    ("POST", "/api/door/open", {}), ("POST", "/api/sim/button/call", {"press_ms": 100}),
]


def basic(password=ADMIN_PASSWORD, user="admin"):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class LiveStation:
    """A firmware process with its web API on [web] listen."""

    def __init__(self, workdir, config):
        workdir.mkdir(parents=True, exist_ok=True)
        mic = write_tone_wav(workdir / "mic.wav", 1000, seconds=1.0, rate=8000)
        self.fw = Firmware(workdir / "fw", config,
                           extra_args=["--mic", mic, "--speaker-dir", workdir / "speaker"])
        host, port = config["web"]["listen"].rsplit(":", 1)
        self.web = (host, int(port))

    def start(self, timeout=8.0):
        self.fw.start()
        self.fw.wait_log(r"web page on http://", timeout)
        return self

    def describe(self, lines=50):
        return "\n--- station log ---\n" + "\n".join(self.fw.log.splitlines()[-lines:])

    def http(self, method, path, body=None, auth=True, content_type="application/json",
             headers=None, timeout=5.0):
        """One request on a fresh connection. `body` is JSON-encoded unless bytes; `auth` is
        True (Basic admin), False, or an Authorization value."""
        connection = http.client.HTTPConnection(*self.web, timeout=timeout)
        try:
            sent = dict(headers or {})
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            if content_type and method != "GET":  # API.md: even with an empty body
                sent["Content-Type"] = content_type
            if auth:
                sent["Authorization"] = basic() if auth is True else auth
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    def api(self, method, path, body=None, expect=200):
        reply = self.http(method, path, body)
        assert reply.status == expect, f"{method} {path} → {reply}{self.describe()}"
        return reply.json if reply.headers.get_content_type() == "application/json" \
            else reply.body.decode()

    def set_password(self):
        reply = self.http("POST", "/api/setup", {"password": ADMIN_PASSWORD}, auth=False)
        assert reply.status == 200, f"POST /api/setup → {reply}{self.describe()}"

    def status(self):
        return self.api("GET", "/api/status")

    def wait_status(self, predicate, timeout, what):
        seen = []

        def check():
            seen[:] = [self.status()]
            return predicate(seen[0])

        assert wait_until(check, timeout, 0.05), (
            f"{what} not seen in /api/status within {timeout} s; last: {seen[-1:]}"
            f"{self.describe()}")
        return seen[0]

    def events(self, type_=None):
        events = self.api("GET", "/api/events?limit=1000")["events"]
        return [e for e in events if type_ is None or e["type"] == type_]

    def config_bytes(self):
        with open(self.fw.config_path, "rb") as config_file:
            return config_file.read()


@pytest.fixture
def live_station(tmp_path):
    """`live_station(config)` starts a LiveStation; each is killed by PID afterwards."""
    started = []

    def make(config):
        station = LiveStation(tmp_path / f"station-{len(started)}", config)
        started.append(station)
        return station.start()

    yield make
    for station in started:
        station.fw.kill()
        print(f"--- station {station.fw.workdir} ---{station.describe(80)}")


def registered_config(kamailio, **sections):
    config = station_config(kamailio, "udp")
    config.update(sections)
    return config


def wait_bindings(kamailio, predicate, timeout, what, station):
    """Kamailio's bindings of the door once `predicate(bindings)` holds."""
    last = []

    def check():
        last[:] = kamailio.bindings(DOOR_USER)
        return predicate(last)

    assert wait_until(check, timeout, 0.05), (
        f"the door's bindings were never {what} within {timeout} s: {last}{station.describe()}")
    return list(last)


def metric_samples(text):
    """{name: value} of a Prometheus text exposition; checks every sample has HELP and TYPE."""
    helps, types, samples = set(), {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line.strip():
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert set(samples) == helps == set(types), f"HELP/TYPE/sample mismatch:\n{text}"
    for name, kind in types.items():
        assert kind == ("counter" if name.endswith("_total") else "gauge"), (name, kind)
    return samples


# -- first boot ----------------------------------------------------------------------------
def test_first_boot_api_refused_until_setup_then_basic_auth_required(live_station):
    station = live_station(station_config(None))
    config_before = station.config_bytes()

    for method, path, body in API_PATHS:
        for auth in (False, basic("anything at all")):
            reply = station.http(method, path, body, auth=auth)
            assert reply.status == 403, f"{method} {path} before setup → {reply}"
            assert reply.headers.get_content_type() == "application/json", reply.headers
            assert "no admin password is set yet" in reply.json["error"], reply
            assert "/api/setup" in reply.json["error"], reply
    page = station.http("GET", "/", auth=False)
    assert (page.status, page.headers["Location"]) == (303, "/setup"), page

    # Nothing above changed anything: no call, door closed, file as it was.
    assert station.config_bytes() == config_before
    assert not os.path.exists(os.path.join(station.fw.state_dir, "admin.json"))

    weak = station.http("POST", "/api/setup", {"password": "aaaaaaaaaaaa"}, auth=False)
    assert weak.status == 400 and "different characters" in weak.json["error"], weak
    not_json = station.http("POST", "/api/setup", b"password=" + ADMIN_PASSWORD.encode(),
                            auth=False, content_type="application/x-www-form-urlencoded")
    assert not_json.status == 415, not_json
    station.set_password()
    again = station.http("POST", "/api/setup", {"password": "Another-Good-Pass-99"}, auth=False)
    assert again.status == 409 and "already set" in again.json["error"], again

    admin_file = os.path.join(station.fw.state_dir, "admin.json")
    assert stat.S_IMODE(os.stat(admin_file).st_mode) == 0o600
    with open(admin_file, encoding="utf-8") as stored:
        assert ADMIN_PASSWORD not in stored.read(), "the admin password is stored in clear"

    for method, path, body in API_PATHS:
        reply = station.http(method, path, body, auth=False)
        assert reply.status == 401, f"{method} {path} without credentials → {reply}"
        assert reply.headers["WWW-Authenticate"].startswith('Basic realm="Doorline"'), reply
        assert reply.json["error"], reply
    wrong = station.http("GET", "/api/status", auth=basic("Another-Good-Pass-99"))
    assert wrong.status == 401, f"the second setup's password must not work: {wrong}"
    status = station.status()  # the password set first works
    assert status["registration"]["state"] == "disabled" and status["calls"] == []
    assert status["door"]["relay"] == "closed" and status["simulated"] is True
    types = [e["type"] for e in station.events()]
    assert types.count("admin_password_set") == 1 and types.count("auth_failed") == 1, types
    assert "door_open" not in types and "call" not in types, types
    assert station.fw.alive


# -- configuration applied live --------------------------------------------------------------
def test_registrar_set_by_put_config_registers_without_restart_then_moves_to_tcp(
        kamailio, live_station):
    config = station_config(None)
    station = live_station(config)
    station.set_password()
    pid = station.fw.pid
    assert station.status()["registration"]["state"] == "disabled"
    assert kamailio.contacts(DOOR_USER) == []
    listen_port = station.fw.port

    sip = {"registrar": f"127.0.0.1:{kamailio.udp_port}", "domain": kamailio.domain,
           "username": DOOR_USER, "password": DOOR_PASSWORD, "transport": "udp"}
    saved = station.api("PUT", "/api/config", {"sip": sip})
    assert saved["sip"]["registrar"] == sip["registrar"] and saved["sip"]["password"] == "(set)"
    assert DOOR_PASSWORD not in json.dumps(saved)
    station.wait_status(lambda s: s["registration"]["state"] == "registered", 5.0,
                        "registration registered over UDP")
    contacts = wait_contacts(kamailio, DOOR_USER, timeout=3.0)
    assert any(f":{listen_port}" in c for c in contacts), contacts
    assert [b["Socket"].split(":")[0] for b in kamailio.bindings(DOOR_USER)] == ["udp"]
    assert station.fw.pid == pid and station.fw.alive, "the process was restarted"
    with open(station.fw.config_path + ".prev", "rb") as previous:
        assert b"127.0.0.1:%d" % kamailio.udp_port not in previous.read()
    assert f"127.0.0.1:{kamailio.udp_port}" in station.config_bytes().decode()
    assert DOOR_PASSWORD not in station.api("GET", "/api/config")["sip"].values()

    # The registrar's TCP transport: the station re-registers over TCP and drops the UDP one.
    station.api("PUT", "/api/config", {"sip": {"registrar": f"127.0.0.1:{kamailio.tcp_port}",
                                               "transport": "tcp", "password": "(set)"}})

    bindings = wait_bindings(
        kamailio, lambda found: found and all(b["Socket"].startswith("tcp:") for b in found),
        5.0, "over TCP only", station)
    assert any(f":{listen_port}" in b["Address"] for b in bindings), bindings
    status = station.wait_status(lambda s: s["registration"]["state"] == "registered", 3.0,
                                 "registration registered over TCP")
    assert status["registration"]["error"] is None
    assert station.fw.pid == pid and station.fw.alive, "the process was restarted"
    saved_sections = [e["sections"] for e in station.events("config_saved")]
    assert saved_sections == [["sip"], ["sip"]], saved_sections


def test_sip_port_in_use_answers_400_and_keeps_the_running_settings(kamailio, live_station):
    """A valid document the station cannot use (its new SIP port is taken) is rolled back: 400
    naming the field, the old file back on disk, registered again on the old port."""
    station = live_station(registered_config(kamailio))
    station.set_password()
    pid, old_port = station.fw.pid, station.fw.port
    station.wait_status(lambda s: s["registration"]["state"] == "registered", 5.0, "registered")
    wait_contacts(kamailio, DOOR_USER, lambda found: any(f":{old_port}" in c for c in found))
    config_before = station.api("GET", "/api/config")
    busy_port = free_port(("udp", "tcp"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", busy_port))
        reply = station.http("PUT", "/api/config", {"sip": {"listen": f"127.0.0.1:{busy_port}"}})
    assert reply.status == 400, f"{reply}{station.describe()}"
    assert list(reply.json["errors"]) == ["sip.listen"], reply.json
    assert "in use" in reply.json["errors"]["sip.listen"], reply.json
    with open(station.fw.config_path, "rb") as config_file:
        on_disk = configuration.validate(tomllib.load(config_file))
    assert configuration.redacted(on_disk) == config_before
    assert station.api("GET", "/api/config") == config_before
    station.wait_status(lambda s: s["registration"]["state"] == "registered", 5.0,
                        "registered again with the old settings")
    contacts = wait_contacts(kamailio, DOOR_USER,
                             lambda found: any(f":{old_port}" in c for c in found))
    assert not any(f":{busy_port}" in c for c in contacts), contacts
    assert station.fw.pid == pid and station.fw.alive
    assert station.events("config_saved") == []


# -- bad configuration rejected --------------------------------------------------------------
BAD_CONFIGS = [
    ({"sip": {"listen": "127.0.0.1:70000"}}, {"sip.listen": "port must be 1-65535"}),
    ({"sip": {"transport": "carrier-pigeon"}}, {"sip.transport": "must be one of udp, tcp, tls"}),
    ({"buttons": [{"role": "call", "targets": [FLAT1, "sip:flat 1@@x"]}]},
     {"buttons[0].targets[1]": "not a valid SIP URI"}),
    ({"buttons": [{"role": "call", "targets": [FLAT1]}, {"role": "call", "targets": []}]},
     {"buttons[1].role": "configured twice"}),
]


def test_bad_configs_rejected_with_one_message_per_field_and_nothing_changed(
        kamailio, live_station):
    station = live_station(registered_config(kamailio))
    station.set_password()
    station.wait_status(lambda s: s["registration"]["state"] == "registered", 5.0, "registered")
    bindings = wait_contacts(kamailio, DOOR_USER, timeout=3.0)
    file_before = station.config_bytes()
    config_before = station.api("GET", "/api/config")
    status_before = station.status()
    log_offset = station.fw.log_offset()

    everything_at_once = {}
    for document, expected in BAD_CONFIGS:
        reply = station.http("PUT", "/api/config", document)
        assert reply.status == 400, f"{document} → {reply}"
        errors = reply.json["errors"]
        assert set(errors) == set(expected), f"{document} → {errors}"
        for path, fragment in expected.items():
            assert fragment in errors[path], f"{path}: {errors[path]!r}"
        for section, table in document.items():
            everything_at_once.setdefault(section, {} if isinstance(table, dict) else [])
            if isinstance(table, dict):
                everything_at_once[section].update(table)
    everything_at_once["buttons"] = [{"role": "call", "targets": ["sip:flat 1@@x"]},
                                     {"role": "call"}]
    reply = station.http("PUT", "/api/config", everything_at_once)
    assert reply.status == 400, reply
    assert set(reply.json["errors"]) == {"sip.listen", "sip.transport", "buttons[0].targets[0]",
                                         "buttons[1].role"}, reply.json

    assert station.config_bytes() == file_before, "a rejected configuration was written"
    assert not os.path.exists(station.fw.config_path + ".prev")
    assert station.api("GET", "/api/config") == config_before
    status_after = station.status()
    for key in ("registration", "calls", "door", "leds"):
        assert status_after[key] == status_before[key], (key, status_before, status_after)
    assert "SIP settings changed" not in station.fw.log[log_offset:]
    assert kamailio.contacts(DOOR_USER) == bindings
    assert station.events("config_saved") == [] and station.events("config") == []


# -- a call through the API, then events and metrics -------------------------------------------
def test_call_button_rings_flat1_status_hangup_events_and_metrics(
        kamailio, baresip_factory, live_station):
    phone = baresip_factory(FLAT1_USER, registrar=kamailio, answer_mode="manual")
    phone.wait_registered(5.0)
    station = live_station(registered_config(
        kamailio, buttons=[{"role": "call", "targets": [FLAT1]}]))
    station.set_password()
    station.wait_status(lambda s: s["registration"]["state"] == "registered", 5.0, "registered")
    before = metric_samples(station.api("GET", "/metrics"))
    assert before["doorline_registration_registered"] == 1
    assert before["doorline_calls_active"] == 0 and before["doorline_calls_total"] == 0

    station.api("POST", "/api/sim/button/call", {"press_ms": 100})
    incoming = phone.wait_event("CALL_INCOMING", 5.0)
    assert incoming.get("peeruri", "").startswith("sip:door@"), incoming
    ringing = station.wait_status(lambda s: s["calls"] and s["calls"][0]["state"] == "ringing",
                                  3.0, "the call ringing")["calls"][0]
    assert (ringing["direction"], ringing["peer"]) == ("outgoing", FLAT1), ringing
    phone.accept()
    phone.wait_event("CALL_ESTABLISHED", 5.0)
    status = station.wait_status(
        lambda s: s["calls"] and s["calls"][0]["state"] == "active"
        and s["calls"][0]["stats"].get("packets_received", 0) > 10, 5.0,
        "an active call with received audio")
    call = status["calls"][0]
    assert call["id"] == ringing["id"], (ringing, call)
    assert (call["codec"], call["srtp"]) == ("PCMU", False), call
    during = metric_samples(station.api("GET", "/metrics"))
    assert during["doorline_calls_active"] == 1 and during["doorline_calls_total"] == 1, during

    assert station.api("POST", "/api/hangup", {}) == {"ok": True}
    phone.wait_event("CALL_CLOSED", 5.0)
    station.wait_status(lambda s: s["calls"] == [], 5.0, "no call")
    calls = station.events("call")
    assert calls and calls[-1]["peer"].startswith(FLAT1), calls
    assert all(isinstance(e["id"], int) for e in station.events())
    after = metric_samples(station.api("GET", "/metrics"))
    assert after["doorline_calls_active"] == 0 and after["doorline_calls_total"] == 1, after
    assert after["doorline_registration_registered"] == 1, after
    reply = station.http("GET", "/metrics")
    assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"


# -- the door relay -------------------------------------------------------------------------
CROSS_SITE_ATTEMPTS = [  # (content type, extra headers, expected status)
    ("application/x-www-form-urlencoded", {}, 415),  # an HTML form with cached Basic creds
    ("text/plain", {}, 415),
    ("multipart/form-data; boundary=x", {}, 415),
    ("application/json", {"Sec-Fetch-Site": "cross-site"}, 403),
    ("application/json", {"Origin": "http://evil.example"}, 403),
]


def test_door_open_pulses_relay_and_cross_site_requests_cannot_open_it(
        kamailio, live_station):
    station = live_station(registered_config(kamailio, door={"pulse_ms": PULSE_MS}))
    station.set_password()
    host, port = station.web
    for content_type, headers, expected in CROSS_SITE_ATTEMPTS:
        headers = {"Host": f"{host}:{port}", **headers}
        reply = station.http("POST", "/api/door/open", b"open=1", content_type=content_type,
                             headers=headers)
        assert reply.status == expected, f"{content_type} {headers} → {reply}"
    assert station.status()["door"]["relay"] == "closed"
    assert station.events("door_open") == []

    assert station.api("POST", "/api/door/open") == {"ok": True, "relay": "door"}
    opened_at = time.monotonic()
    station.wait_status(lambda s: s["door"]["relay"] == "open", 0.5, "the relay open")
    station.wait_status(lambda s: s["door"]["relay"] == "closed", PULSE_MS / 1000 + 2.0,
                        "the relay closed again")
    pulse = time.monotonic() - opened_at
    assert pulse >= PULSE_MS / 1000 * 0.8, f"relay closed after {pulse:.2f} s"
    openings = station.events("door_open")
    assert len(openings) == 1 and openings[0]["by"] == "api", openings
    samples = metric_samples(station.api("GET", "/metrics"))
    assert samples["doorline_door_openings_total"] == 1, samples
