"""The JSON API and the server-rendered forms, in process through microdot's TestClient."""

import asyncio
import base64
import json
import os
import re
import stat
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from microdot.test_client import TestClient

from firmware import config as configuration
from firmware.web import sessions
from firmware.web.app import MAX_BODY, create_app
from firmware.web.passwords import weakness
from tests.web.fake_station import FakeStation

PASSWORD = "correct horse battery"
SECURITY = {"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options",
            "Referrer-Policy"}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def basic(user="admin", password=PASSWORD):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


JSON = {"Content-Type": "application/json"}


class Env:
    """One app over a FakeStation, a config file, a fake clock and a private event loop."""

    def __init__(self, tmp_path, simulated=True, cfg=None):
        self.clock = FakeClock()
        # microdot's TestClient sends `Host: example.com:1234`: one of this station's names.
        cfg = configuration.merge(cfg or {}, {"web": {"hostnames": ["example.com"]}})
        self.station = FakeStation(cfg, simulated=simulated)
        self.state_dir = str(tmp_path)
        self.config_path = str(tmp_path / "doorline.toml")
        configuration.save_atomic(self.config_path, self.station.config)
        self.app = create_app(self.station, self.config_path, self.state_dir, clock=self.clock)
        self.loop = asyncio.new_event_loop()

    def client(self):
        return Client(self)

    def file_bytes(self):
        with open(self.config_path, "rb") as f:
            return f.read()

    def setup(self):
        res = self.client().post("/api/setup", {"password": PASSWORD}, JSON)
        assert res.status_code == 200, res.json


class Client:
    def __init__(self, env):
        self.env = env
        self.test_client = TestClient(env.app)

    def request(self, method, path, body=None, headers=None):
        coro = self.test_client.request(method, path, headers=dict(headers or {}), body=body)
        return self.env.loop.run_until_complete(coro)

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, body=None, headers=None):
        return self.request("POST", path, body, headers)

    def put(self, path, body=None, headers=None):
        return self.request("PUT", path, body, headers)

    def form(self, path, fields, headers=None):
        body = "&".join(f"{k}={v.replace(' ', '+')}" for k, v in fields.items())
        headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request("POST", path, body, headers)

    def csrf_from(self, res):
        return re.search(r'name="csrf(?:-token)?"\s+(?:value|content)="([^"]+)"', res.text)[1]

    def login(self, password=PASSWORD):
        token = self.csrf_from(self.get("/login"))
        return self.form("/login", {"csrf": token, "password": password})

    def page_token(self):
        res = self.get("/")
        assert res.status_code == 200
        return self.csrf_from(res)


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.loop.close()


@pytest.fixture
def ready(env):
    env.setup()
    return env


def auth_failures(station):
    return [e for e in station.events() if e["type"] == "auth_failed"]


# -- first boot ------------------------------------------------------------------------------------
def test_first_boot_api_refuses_everything_but_setup(env):
    client = env.client()
    for method, path in [("GET", "/api/status"), ("GET", "/api/config"), ("GET", "/metrics"),
                         ("POST", "/api/door/open"), ("GET", "/api/events")]:
        res = client.request(method, path, headers={**JSON, **basic()})
        assert res.status_code == 403, path
        assert "/api/setup" in res.json["error"]
    assert env.station.door_openings == []

    res = client.post("/api/setup", {"password": "short"}, JSON)
    assert res.status_code == 400 and "10 characters" in res.json["error"]
    assert not os.path.exists(os.path.join(env.state_dir, "admin.json"))
    assert client.post("/api/setup", {"password": PASSWORD}, JSON).status_code == 200
    res = client.post("/api/setup", {"password": "another good passphrase"}, JSON)
    assert res.status_code == 409
    assert client.get("/api/status", basic()).status_code == 200
    assert client.get("/api/status", basic(password="another good passphrase")).status_code == 401


def test_password_stored_only_as_scrypt_hash_mode_0600(ready):
    path = os.path.join(ready.state_dir, "admin.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        text = f.read()
    record = json.loads(text)
    assert PASSWORD not in text
    assert record["algorithm"] == "scrypt" and record["n"] >= 2**14 and record["salt"]


def test_first_boot_pages_lead_to_setup_form(env):
    client = env.client()
    for path in ("/", "/login"):
        res = client.get(path)
        assert res.status_code == 303 and res.headers["Location"] == "/setup"
    token = client.csrf_from(client.get("/setup"))
    res = client.form("/setup", {"password": PASSWORD, "confirm": PASSWORD})
    assert res.status_code == 403, "a form without its CSRF token must be refused"
    res = client.form("/setup", {"csrf": token, "password": "aaaaaaaaaaaaaa",
                                 "confirm": "aaaaaaaaaaaaaa"})
    assert res.status_code == 400 and "different characters" in res.text
    res = client.form("/setup", {"csrf": token, "password": PASSWORD, "confirm": PASSWORD + "x"})
    assert res.status_code == 400 and "differ" in res.text
    res = client.form("/setup", {"csrf": token, "password": PASSWORD, "confirm": PASSWORD})
    assert res.status_code == 303 and res.headers["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200 and '<meta name="csrf-token"' in page.text
    assert client.get("/setup").headers["Location"] == "/login"
    assert env.client().post("/api/setup", {"password": PASSWORD}, JSON).status_code == 409


@pytest.mark.parametrize("password", ["short1!", "aaaaaaaaaaaaaaaa", "abababababab",
                                      "Password123", "1234567890", "qwertyuiop",
                                      "zyxwvutsrqpon", "doorline2024!", "x" * 300])
def test_weak_passwords_refused(password):
    assert weakness(password) is not None


@pytest.mark.parametrize("password", [PASSWORD, "Tr0ub4dor&3xyz", "ring-the-bell-42"])
def test_reasonable_passwords_accepted(password):
    assert weakness(password) is None


# -- authentication -----------------------------------------------------------------------------
API_ROUTES = [("GET", "/api/status"), ("POST", "/api/call"), ("POST", "/api/hangup"),
              ("POST", "/api/door/open"), ("GET", "/api/config"), ("PUT", "/api/config"),
              ("GET", "/api/events"), ("POST", "/api/sim/button/call"),
              ("POST", "/api/sim/input/door_contact"), ("GET", "/metrics")]


@pytest.mark.parametrize("method,path", API_ROUTES)
def test_auth_required_everywhere(ready, method, path):
    client = ready.client()
    res = client.request(method, path, {"target": "sip:a@127.0.0.1"}, JSON)
    assert res.status_code == 401
    assert res.headers["WWW-Authenticate"].startswith('Basic realm="Doorline"')
    res = client.request(method, path, {"target": "sip:a@127.0.0.1"},
                         {**JSON, **basic(password="wrong password!")})
    assert res.status_code == 401
    res = client.request(method, path, {}, {**JSON, **basic(user="root")})
    assert res.status_code == 401
    assert len(auth_failures(ready.station)) == 2
    assert ready.station.door_openings == [] and ready.station.calls == []
    assert ready.station.presses == [] and ready.station.applied == []


def test_page_fetch_gets_no_basic_challenge(ready):
    """An expired session must send the page to /login, not pop up the browser's dialog."""
    res = ready.client().get("/api/status", {"X-CSRF-Token": "stale"})
    assert res.status_code == 401 and "WWW-Authenticate" not in res.headers


def test_login_rate_limiting_with_backoff(ready):
    client = ready.client()
    for _ in range(sessions.FREE_FAILURES):
        assert client.login("not the password").status_code == 401
    res = client.login(PASSWORD)
    assert res.status_code == 429, "the right password must wait during the back-off"
    assert int(res.headers["Retry-After"]) >= 1
    assert client.get("/api/status", basic()).status_code == 429, "Basic shares the throttle"
    ready.clock.now += 1.5
    assert client.login("still wrong pass").status_code == 401
    ready.clock.now += 1.5
    res = client.login(PASSWORD)
    assert res.status_code == 429, "the delay doubles after each further failure"
    ready.clock.now += 1.0
    assert client.login(PASSWORD).status_code == 303
    failures = auth_failures(ready.station)
    assert len(failures) == sessions.FREE_FAILURES + 1
    assert failures[0]["client"] == "127.0.0.1" and failures[0]["via"] == "form"
    assert ready.client().login("wrong again ...").status_code == 401, "success reset the count"


def test_session_cookie_flags_and_no_fixation(ready):
    client = ready.client()
    before = client.get("/login")
    anonymous = client.test_client.cookies["doorline_session"]
    res = client.login()
    assert res.status_code == 303
    cookie = res.headers["Set-Cookie"][0]
    assert cookie.startswith("doorline_session=")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in cookie
    assert "Secure" not in cookie and "Max-Age" not in cookie
    assert client.test_client.cookies["doorline_session"] != anonymous
    assert "HttpOnly" in before.headers["Set-Cookie"][0]


def test_https_session_cookie_is_secure_host_only(tmp_path):
    cfg = configuration.defaults()
    cfg["web"]["https"] = True
    env = Env(tmp_path, cfg=cfg)
    env.setup()
    res = env.client().login()
    cookie = res.headers["Set-Cookie"][0]
    assert cookie.startswith("__Host-doorline_session=") and "; Secure" in cookie


def test_session_idle_and_absolute_expiry(ready):
    client = ready.client()
    client.login()
    assert client.get("/api/status").status_code == 200
    ready.clock.now += sessions.IDLE_TIMEOUT + 1
    assert client.get("/api/status").status_code == 401
    assert client.get("/").headers["Location"] == "/login"

    client.login()
    start = ready.clock.now
    while ready.clock.now - start < sessions.ABSOLUTE_TIMEOUT - sessions.IDLE_TIMEOUT:
        ready.clock.now += sessions.IDLE_TIMEOUT - 60
        assert client.get("/api/status").status_code == 200
    ready.clock.now = start + sessions.ABSOLUTE_TIMEOUT + 1
    assert client.get("/api/status").status_code == 401


def test_logout_ends_the_session(ready):
    client = ready.client()
    client.login()
    token = client.page_token()
    cookie = client.test_client.cookies["doorline_session"]
    assert client.form("/logout", {"csrf": "wrong"}).status_code == 403
    res = client.form("/logout", {"csrf": token})
    assert res.status_code == 303 and res.headers["Location"] == "/login"
    assert "doorline_session" not in client.test_client.cookies
    replay = ready.client()
    replay.test_client.cookies["doorline_session"] = cookie
    assert replay.get("/api/status").status_code == 401


# -- CSRF and cross-site requests ------------------------------------------------------------------
def test_session_requests_need_the_csrf_token(ready):
    client = ready.client()
    client.login()
    token = client.page_token()
    assert client.post("/api/door/open", {}, JSON).status_code == 403
    assert client.post("/api/door/open", {}, {**JSON, "X-CSRF-Token": "x" * 43}).status_code == 403
    assert ready.station.door_openings == []
    res = client.post("/api/door/open", {}, {**JSON, "X-CSRF-Token": token})
    assert res.status_code == 200 and ready.station.door_openings == ["web"]


def test_login_form_without_token_refused(ready):
    client = ready.client()
    client.get("/login")
    assert client.form("/login", {"password": PASSWORD}).status_code == 403
    assert "doorline_session" in client.test_client.cookies
    assert client.get("/api/status").status_code == 401


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded",
                                          "text/plain", "multipart/form-data; boundary=x"])
def test_basic_auth_with_a_form_content_type_cannot_open_the_door(ready, content_type):
    headers = basic()
    if content_type:
        headers["Content-Type"] = content_type
    res = ready.client().post("/api/door/open", "a=b", headers)
    assert res.status_code == 415
    assert ready.station.door_openings == []


def test_basic_auth_with_json_opens_the_door(ready):
    res = ready.client().post("/api/door/open", None, {**basic(), **JSON})
    assert res.status_code == 200 and ready.station.door_openings == ["api"]


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"}, {"Origin": "http://example.com:1234.evil.example"},
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://example.com:1234", "Sec-Fetch-Site": "cross-site"}])
def test_cross_site_requests_refused_even_with_credentials(ready, headers):
    res = ready.client().post("/api/door/open", {}, {**basic(), **JSON, **headers})
    assert res.status_code == 403
    assert ready.station.door_openings == []
    same = {"Origin": "http://example.com:1234"}  # the TestClient's Host
    assert ready.client().post("/api/door/open", {}, {**basic(), **JSON, **same}).status_code == 200


# -- configuration ------------------------------------------------------------------------------
@pytest.mark.parametrize("doc,field", [
    ({"sip": {"listen": "127.0.0.1:70000"}}, "sip.listen"),
    ({"sip": {"transport": "sctp"}}, "sip.transport"),
    ({"buttons": [{"role": "call", "targets": ["sip:flat 1@@x"]}]}, "buttons[0].targets[0]"),
    ({"buttons": [{"role": "call"}, {"role": "call"}]}, "buttons[1].role"),
    ({"door": {"pulse_ms": "long"}}, "door.pulse_ms"),
    ({"door": {"codes": [{"caller": ["x"], "code": "(set)"}]}}, "door.codes[0].caller"),
    ({"nonsense": {}}, "nonsense"),
])
def test_bad_config_rejected_with_nothing_changed(ready, doc, field):
    before_file = ready.file_bytes()
    before_cfg = ready.station.config
    res = ready.client().put("/api/config", doc, {**basic(), **JSON})
    assert res.status_code == 400
    assert field in res.json["errors"], res.json
    assert ready.file_bytes() == before_file
    assert ready.station.applied == [] and ready.station.config is before_cfg


def test_good_config_saved_and_applied_secrets_redacted(ready):
    client = ready.client()
    doc = {"sip": {"registrar": "127.0.0.1:15060", "username": "door", "password": "s3cret-pw"},
           "door": {"codes": [{"caller": "sip:concierge@127.0.0.1", "code": "4711"}]}}
    res = client.put("/api/config", doc, {**basic(), **JSON})
    assert res.status_code == 200
    assert res.json["sip"]["password"] == configuration.SECRET
    assert res.json["door"]["codes"] == [{"caller": "sip:concierge@127.0.0.1",
                                          "code": configuration.SECRET}]
    saved = tomllib.loads(ready.file_bytes().decode())
    assert saved["sip"]["password"] == "s3cret-pw"
    code = saved["door"]["codes"][0]
    assert "code" not in code and configuration.check_door_code(code, "4711")
    assert b"4711" not in ready.file_bytes()  # door codes are stored only as salted hashes
    assert len(ready.station.applied) == 1
    assert ready.station.applied[0].sip.registrar == "127.0.0.1:15060"

    shown = client.get("/api/config", basic())
    download = client.get("/api/config?download=1", basic())
    assert "attachment" in download.headers["Content-Disposition"]
    for text in (shown.text, download.text, res.text, json.dumps(ready.station.events())):
        assert "s3cret-pw" not in text and "4711" not in text

    # Sending the redacted document back (as the page and an upload do) keeps the secrets.
    shown.json["sip"]["expires"] = 600
    assert client.put("/api/config", shown.json, {**basic(), **JSON}).status_code == 200
    saved = tomllib.loads(ready.file_bytes().decode())
    assert saved["sip"]["password"] == "s3cret-pw"
    code = saved["door"]["codes"][0]
    assert "code" not in code and configuration.check_door_code(code, "4711")
    assert b"4711" not in ready.file_bytes()  # door codes are stored only as salted hashes
    assert saved["sip"]["expires"] == 600
    assert [e["type"] for e in ready.station.events()].count("config_saved") == 2


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(
    st.sampled_from(["sip", "media", "answer", "buttons", "door", "web", "calls", "x"]),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)))
def test_any_config_document_is_answered_400_or_200_never_500(ready, doc):
    before = ready.file_bytes()
    res = ready.client().put("/api/config", doc, {**basic(), **JSON})
    assert res.status_code in (200, 400), res.text
    if res.status_code == 400:
        assert ready.file_bytes() == before and isinstance(res.json["errors"], dict)


# -- events, simulation, metrics -----------------------------------------------------------------
def test_events_paging(ready):
    base = ready.station.events()[-1]["id"]  # the first-boot event
    for i in range(250):
        ready.station.log_event("test", n=i)
    client = ready.client()
    newest = client.get("/api/events", basic()).json
    assert [e["n"] for e in newest["events"]] == list(range(150, 250))
    first = client.get(f"/api/events?since={base}&limit=100", basic()).json
    assert first["more"] is True and [e["n"] for e in first["events"]] == list(range(100))
    since = first["events"][-1]["id"]
    second = client.get(f"/api/events?since={since}&limit=100", basic()).json
    assert [e["n"] for e in second["events"]] == list(range(100, 200))
    last = client.get(f"/api/events?since={second['events'][-1]['id']}", basic()).json
    assert last["more"] is False and len(last["events"]) == 50
    for bad in ("-1", "abc", "1e3", "²", "9" * 30):
        assert client.get(f"/api/events?since={bad}", basic()).status_code == 400
    assert client.get("/api/events?limit=0", basic()).status_code == 400


def test_sim_button(ready):
    client = ready.client()
    headers = {**basic(), **JSON}
    assert client.post("/api/sim/button/call", {"press_ms": 150}, headers).status_code == 200
    assert client.post("/api/sim/button/call", None, headers).status_code == 200
    assert ready.station.presses == [("call", 150), ("call", 100)]
    assert client.post("/api/sim/button/bell", {}, headers).status_code == 404
    for bad in ("long", -5, 0, 10**6, True, 1.5):
        assert client.post("/api/sim/button/call", {"press_ms": bad}, headers).status_code == 400
    assert len(ready.station.presses) == 2


def test_sim_button_is_404_on_a_real_board(tmp_path):
    env = Env(tmp_path, simulated=False)
    env.setup()
    res = env.client().post("/api/sim/button/call", {"press_ms": 100}, {**basic(), **JSON})
    assert res.status_code == 404 and env.station.presses == []
    assert env.client().get("/api/status", basic()).json["simulated"] is False


def test_door_open_names_a_relay(tmp_path):
    env = Env(tmp_path, cfg={"relays": [{"role": "gate", "pulse_ms": 1500}]})
    env.setup()
    headers = {**basic(), **JSON}
    res = env.client().post("/api/door/open", {"relay": "gate"}, headers)
    assert res.status_code == 200 and res.json == {"ok": True, "relay": "gate"}
    assert env.client().post("/api/door/open", None, headers).json["relay"] == "door"
    assert env.station.door_openings == [("api", "gate"), "api"]
    res = env.client().post("/api/door/open", {"relay": "garage"}, headers)
    assert res.status_code == 400 and "garage" in res.json["error"]
    for bad in (5, "", None, ["gate"], "x" * 40):
        res = env.client().post("/api/door/open", {"relay": bad}, headers)
        assert res.status_code == 400, bad
    assert len(env.station.door_openings) == 2
    env.loop.close()


def test_sim_input(ready):
    client = ready.client()
    headers = {**basic(), **JSON}
    res = client.post("/api/sim/input/door_contact", {"state": "open"}, headers)
    assert res.status_code == 200 and ready.station.inputs == {"door_contact": False}
    assert client.post("/api/sim/input/door_contact", {"state": "closed"},
                       headers).status_code == 200
    assert ready.station.inputs == {"door_contact": True}
    for bad in ({"state": "ajar"}, {"state": True}, {}):
        assert client.post("/api/sim/input/door_contact", bad, headers).status_code == 400
    assert client.post("/api/sim/input/doorbell", {"state": "open"}, headers).status_code == 404


def test_sim_input_is_404_on_a_real_board(tmp_path):
    env = Env(tmp_path, simulated=False)
    env.setup()
    res = env.client().post("/api/sim/input/door_contact", {"state": "open"}, {**basic(), **JSON})
    assert res.status_code == 404 and not hasattr(env.station, "inputs")
    env.loop.close()


def test_metrics_prometheus_format(ready):
    ready.station.open_door()
    res = ready.client().get("/metrics", basic())
    assert res.status_code == 200
    assert res.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = res.text.rstrip("\n").split("\n")
    samples = {}
    for i in range(0, len(lines), 3):
        help_line, type_line, sample = lines[i:i + 3]
        name = sample.split(" ")[0]
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name)
        assert help_line.startswith(f"# HELP {name} ")
        assert type_line == f"# TYPE {name} " + ("counter" if name.endswith("_total") else "gauge")
        samples[name] = float(sample.split(" ")[1])
    assert samples["doorline_door_openings_total"] == 1
    assert samples["doorline_registration_registered"] == 1
    assert samples["doorline_rtp_jitter_ms"] == 1.25


def test_call_and_hangup(ready):
    client = ready.client()
    headers = {**basic(), **JSON}
    res = client.post("/api/call", {"target": "sip:flat1@127.0.0.1"}, headers)
    assert res.status_code == 200 and res.json["id"] == "call-1"
    res = client.post("/api/call", {"target": "sip:flat2@127.0.0.1"}, headers)
    assert res.status_code == 400 and "already" in res.json["error"]
    status = client.get("/api/status", basic()).json
    assert status["calls"][0]["peer"] == "sip:flat1@127.0.0.1"
    assert client.post("/api/hangup", None, headers).status_code == 200
    assert client.get("/api/status", basic()).json["calls"] == []


# -- hostile input ------------------------------------------------------------------------------
@pytest.mark.parametrize("body,status", [
    (b'{"target": ', 400), (b"[1, 2]", 400), (b'"sip:a@b"', 400), (b"\xff\xfe", 400),
    (b"[" * 50000 + b"]" * 50000, 413), (b"[" * 20000 + b"]" * 20000, 400),
    (b'{"target": 5}', 400), (b'{"target": ""}', 400), (b"", 400),
    (b'{"target": "' + b"a" * (MAX_BODY + 10) + b'"}', 413),
])
def test_hostile_bodies_rejected(ready, body, status):
    res = ready.client().post("/api/call", body, {**basic(), **JSON})
    assert res.status_code == status
    assert res.json and "error" in res.json
    assert ready.station.calls == []


def test_unknown_routes_and_security_headers_everywhere(ready):
    client = ready.client()
    responses = [client.get("/nope"), client.get("/api/nope", basic()),
                 client.get("/api/status"), client.get("/api/status", basic()),
                 client.get("/login"), client.get("/static/app.js"),
                 client.post("/api/call", b"x" * (MAX_BODY + 1), {**basic(), **JSON}),
                 client.request("DELETE", "/api/status", None, basic())]
    assert [r.status_code for r in responses] == [404, 404, 401, 200, 200, 200, 413, 405]
    assert responses[1].json == {"error": "not found"}
    for res in responses:
        assert SECURITY <= set(res.headers), res.headers
        assert "'unsafe-inline'" not in res.headers["Content-Security-Policy"]
        assert res.headers["X-Frame-Options"] == "DENY"
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["Referrer-Policy"] == "no-referrer"
    for res in responses[:5]:
        assert res.headers["Cache-Control"] == "no-store"
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/passwords.py").status_code == 404


def test_test_speaker_plays_outside_a_call_only(ready):
    client = ready.client()
    headers = {**basic(), **JSON}
    assert client.post("/api/audio/test-speaker", None, headers).status_code == 200
    assert ready.station.speaker_tests == 1
    ready.station.place_call("sip:flat1@example.com")
    res = client.post("/api/audio/test-speaker", {}, headers)
    assert res.status_code == 409 and "call" in res.json["error"]
    assert client.post("/api/audio/test-speaker", None, JSON).status_code == 401
