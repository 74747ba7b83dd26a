"""Issue 18's backend (docs/API.md): the board's roles, every configuration error at once with
board-aware role checks, configuration warnings, one `config_saved` per save, the favicon,
real reason phrases, and logged-in sessions that survive a restart of the process.

In process through microdot's TestClient over tests/web/fake_station.py (pc-sim's roles), except
the reason phrases, which are read from a real socket, and the station's own board report,
which uses the real Station and the simulated board."""

import asyncio
import json
import os
import socket
import stat

import pytest

import hal
from firmware import config as configuration
from firmware.runtime.station import Station
from firmware.web import app as webapp
from firmware.web import sessions
from tests.web.test_api import JSON, PASSWORD, Env, basic

PC_SIM = {"name": "pc-sim", "simulated": True, "buttons": ["call", "call2", "hangup", "exit"],
          "relays": ["door", "gate"], "inputs": ["door_contact"],
          "leds": ["status", "call", "door", "gate"], "camera": False}


@pytest.fixture
def ready(tmp_path):
    env = Env(tmp_path)
    env.setup()
    yield env
    env.loop.close()


def put(env, doc):
    return env.client().put("/api/config", doc, {**JSON, **basic()})


# -- GET /api/board --------------------------------------------------------------------------------
def test_board_roles_behind_the_login(ready):
    client = ready.client()
    assert client.get("/api/board").status_code == 401
    res = client.get("/api/board", basic())
    assert res.status_code == 200 and res.json == PC_SIM


def test_the_station_reports_the_roles_of_its_board_file():
    loop = asyncio.new_event_loop()
    board = hal.open_board("pc-sim")
    try:
        station = Station(configuration.validate({}), board, loop=loop)
        assert station.board_info() == PC_SIM  # boards/pc-sim.toml, in the file's order
        assert Station(configuration.validate({}), None, loop=loop).board_info() is None
    finally:
        board.close()
        loop.close()


# -- PUT /api/config: board roles, every error at once ---------------------------------------------
def test_an_unknown_button_role_is_refused_naming_the_boards_roles(ready):
    before = ready.file_bytes()
    res = put(ready, {"buttons": [{"role": "call", "targets": ["sip:flat1@127.0.0.1"]},
                                  {"role": "doorbell", "targets": ["sip:flat2@127.0.0.1"]}]})
    assert res.status_code == 400
    assert res.json == {"errors": {"buttons[1].role": 'no button role "doorbell" on this board '
                                                      "(pc-sim has: call, call2, hangup, exit)"}}
    assert ready.file_bytes() == before and ready.station.applied == []
    res = put(ready, {"buttons": [{"role": "call2", "targets": ["sip:flat2@127.0.0.1"]}]})
    assert res.status_code == 200, res.json


def test_relays_and_door_code_relays_must_exist_on_the_board(ready):
    res = put(ready, {"relays": [{"role": "gate"}, {"role": "garage"}],
                      "door": {"codes": [{"caller": "sip:a@127.0.0.1", "code": "4711",
                                          "relay": "garage"},
                                         {"caller": "sip:a@127.0.0.1", "code": "4712",
                                          "relay": "gate"}]}})
    assert res.status_code == 400
    errors = res.json["errors"]
    assert set(errors) == {"relays[1].role", "door.codes[0].relay"}
    assert errors["relays[1].role"] == \
        'no relay role "garage" on this board (pc-sim has: door, gate)'
    assert "garage" in errors["door.codes[0].relay"] and "door, gate" in \
        errors["door.codes[0].relay"]
    assert put(ready, {"relays": [{"role": "gate", "pulse_ms": 1500}]}).status_code == 200


def test_an_upload_with_several_errors_gets_each_under_its_field(ready):
    res = put(ready, {
        "sip": {"registrar": "bad host:99999", "transport": "carrier-pigeon", "colour": "red"},
        "media": {"srtp": "always"},
        "buttons": [{"role": "call", "targets": ["sip:flat1@127.0.0.1"]},
                    {"role": "doorbell", "targets": ["not a uri@@"]}],
        "door": {"codes": [{"caller": "sip:a@127.0.0.1", "code": "12", "relay": "garage"}]},
        "audio": {"speaker_volume": 101, "loudness": 3},
    })
    assert res.status_code == 400
    errors = res.json["errors"]
    expected = {"sip.registrar", "sip.transport", "sip.colour", "media.srtp", "buttons[1].role",
                "buttons[1].targets[0]", "door.codes[0].code", "door.codes[0].relay",
                "audio.speaker_volume", "audio.loudness"}
    assert expected <= set(errors), errors
    assert all(isinstance(m, str) and m for m in errors.values())


def test_a_file_at_start_is_not_checked_against_a_board():
    # a hand-edited file must never stop the station: only saving checks the board's roles
    doc = {"buttons": [{"role": "call7", "targets": ["sip:a@127.0.0.1"]}]}
    assert configuration.validate(doc).buttons[0].role == "call7"
    with pytest.raises(configuration.ConfigError) as bad:
        configuration.validate(doc, board=PC_SIM)
    assert list(bad.value.errors) == ["buttons[0].role"]


# -- GET /api/config/warnings ----------------------------------------------------------------------
def test_warnings_follow_the_saved_configuration(ready):
    client = ready.client()
    res = client.get("/api/config/warnings", basic())
    assert res.status_code == 200
    assert set(res.json["warnings"]) == {"answer.allow", "buttons[0].targets"}  # the defaults
    doc = {"answer": {"mode": "auto", "allow": ["sip:concierge@127.0.0.1"]},
           "buttons": [{"role": "call", "targets": ["sip:flat1@127.0.0.1"]}]}
    assert put(ready, doc).status_code == 200
    assert client.get("/api/config/warnings", basic()).json == {"warnings": {}}
    assert put(ready, {"media": {"srtp": "mandatory"}}).status_code == 200
    warnings = client.get("/api/config/warnings", basic()).json["warnings"]
    assert list(warnings) == ["media.srtp"] and "srtp_requires_tls" in warnings["media.srtp"]


# -- events ----------------------------------------------------------------------------------------
def test_one_config_saved_event_per_save_naming_what_changed(ready):
    assert put(ready, {"door": {"pulse_ms": 1200}}).status_code == 200
    assert put(ready, {"door": {"pulse_ms": 1200}}).status_code == 200
    saved = [e for e in ready.station.events() if e["type"].startswith("config")]
    assert [(e["type"], e["sections"], e["changed"]) for e in saved] == \
        [("config_saved", ["door"], ["door"]), ("config_saved", ["door"], [])]


# -- favicon, help, reason phrases -----------------------------------------------------------------
def test_favicon_and_icon_link_on_the_server_rendered_pages(tmp_path):
    env = Env(tmp_path)
    client = env.client()
    setup = client.get("/setup")
    assert '<link rel="icon" href="/static/icon.svg?v=' in setup.text
    for path in ("/favicon.ico", "/static/icon.svg"):
        res = client.get(path)
        assert res.status_code == 200, path
        assert res.headers["Content-Type"] == "image/svg+xml"
        assert res.body.startswith(b"<svg") and len(res.body) < 2048
    env.setup()
    assert '<link rel="icon"' in client.get("/login").text
    env.loop.close()


def test_help_json_is_served_and_versioned(tmp_path):
    env = Env(tmp_path)
    res = env.client().get("/static/help.json")
    assert res.status_code == 200 and res.headers["Content-Type"] == "application/json"
    help_ = json.loads(res.body)
    assert help_["sip.registrar"]["default"] == '""'
    assert "direct-IP mode" in help_["sip.registrar"]["help"]
    before = env.app.doorline.version
    original = webapp.pages.load_static

    def changed_help():
        files, index, _ = original()
        files["help.json"] = b"{}"
        return files, index, webapp.pages.version_of(files)

    assert webapp.pages.version_of(original()[0]) == before
    assert changed_help()[2] != before  # the help is part of the cache-busting version
    env.loop.close()


def raw_request(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_every_response_carries_its_real_reason_phrase(tmp_path):
    env = Env(tmp_path)

    async def run():
        server = await webapp.start(env.app, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        try:
            lines = {}
            for name, request in [
                    ("redirect", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                    ("ok", b"GET /setup HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                    ("forbidden", b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                    ("missing", b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                    ("method", b"DELETE /setup HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                    ("foreign", b"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
                    ("garbage", b"NONSENSE\r\n\r\n")]:
                lines[name] = await loop.run_in_executor(None, raw_request, port, request)
            return lines
        finally:
            server.close()
            await server.wait_closed()

    lines = env.loop.run_until_complete(run())
    assert lines == {"redirect": "HTTP/1.0 303 See Other", "ok": "HTTP/1.0 200 OK",
                     "forbidden": "HTTP/1.0 403 Forbidden", "missing": "HTTP/1.0 404 Not Found",
                     "method": "HTTP/1.0 405 Method Not Allowed",
                     "foreign": "HTTP/1.0 421 Misdirected Request",
                     "garbage": "HTTP/1.0 400 Bad Request"}
    assert webapp.reason_phrase(599) == "Unknown"
    env.loop.close()


# -- sessions that survive a restart ---------------------------------------------------------------
def restart(env):
    """A new app (a restarted process) on the same state dir and config."""
    env.app = webapp.create_app(env.station, env.config_path, env.state_dir, clock=env.clock)


def test_a_logged_in_session_survives_a_restart(ready, monkeypatch):
    client = ready.client()
    assert client.login().status_code == 303
    token = client.page_token()
    path = os.path.join(ready.state_dir, "sessions.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cookie = client.test_client.cookies["doorline_session"]
    with open(path) as f:
        text = f.read()
    assert cookie not in text and token in text  # the id only as its SHA-256
    restart(ready)
    after = ready.client()
    after.test_client.cookies["doorline_session"] = cookie
    assert after.get("/").status_code == 200
    assert after.page_token() == token
    res = after.post("/api/door/open", {}, {**JSON, "X-CSRF-Token": token})
    assert res.status_code == 200, res.json
    # idle expiry still counts across the restart (the file keeps Unix times)
    ready.clock.now += sessions.IDLE_TIMEOUT + 1
    wall = sessions.time.time() + sessions.IDLE_TIMEOUT + 1
    monkeypatch.setattr(sessions.time, "time", lambda: wall)
    restart(ready)
    late = ready.client()
    late.test_client.cookies["doorline_session"] = cookie
    assert late.get("/").status_code == 303


def test_sessions_from_the_future_are_dropped(ready, monkeypatch):
    # a Pi without a clock battery may start with a clock behind the file's times
    client = ready.client()
    client.login()
    cookie = client.test_client.cookies["doorline_session"]
    wall = sessions.time.time() - 3600
    monkeypatch.setattr(sessions.time, "time", lambda: wall)
    restart(ready)
    again = ready.client()
    again.test_client.cookies["doorline_session"] = cookie
    assert again.get("/").status_code == 303


def test_logout_ends_the_session_also_after_a_restart(ready):
    client = ready.client()
    client.login()
    token = client.page_token()
    cookie = client.test_client.cookies["doorline_session"]
    assert client.form("/logout", {"csrf": token}).status_code == 303
    restart(ready)
    again = ready.client()
    again.test_client.cookies["doorline_session"] = cookie
    assert again.get("/").status_code == 303


def test_a_password_change_ends_every_saved_session(ready):
    client = ready.client()
    client.login()
    cookie = client.test_client.cookies["doorline_session"]
    # the documented reset: delete admin.json, restart, set a new password
    os.unlink(os.path.join(ready.state_dir, "admin.json"))
    restart(ready)
    assert ready.client().post("/api/setup", {"password": PASSWORD + " 2"},
                               JSON).status_code == 200
    restart(ready)
    again = ready.client()
    again.test_client.cookies["doorline_session"] = cookie
    assert again.get("/").status_code == 303
    # and the store's own drop_all (any future password change) is saved too
    store = ready.app.doorline.sessions
    session = store.create(authenticated=True)
    store.drop_all()
    restart(ready)
    assert ready.app.doorline.sessions.get(session.id) is None


def test_a_damaged_session_file_starts_empty(ready, caplog):
    with open(os.path.join(ready.state_dir, "sessions.json"), "w") as f:
        f.write("{not json")
    restart(ready)
    assert ready.client().login().status_code == 303
    assert "ignoring the session file" in caplog.text


def test_static_files_are_gzipped_for_clients_that_take_it(tmp_path):
    import gzip

    env = Env(tmp_path)
    client = env.client()
    total_raw = total_sent = 0
    for name in ("app.js", "style.css"):  # (TestClient cannot read gzipped JSON)
        raw = client.get(f"/static/{name}")
        assert raw.status_code == 200 and "Content-Encoding" not in raw.headers
        assert raw.headers["Vary"] == "Accept-Encoding"
        packed = client.get(f"/static/{name}", {"Accept-Encoding": "br, gzip;q=0.8"})
        assert packed.headers["Content-Encoding"] == "gzip", name
        assert gzip.decompress(packed.body) == raw.body
        assert len(packed.body) < len(raw.body) / 2, name
        total_raw += len(raw.body)
        total_sent += len(packed.body)
        refused = client.get(f"/static/{name}", {"Accept-Encoding": "gzip;q=0, identity"})
        assert "Content-Encoding" not in refused.headers and refused.body == raw.body
    help_json = env.app.doorline.static["help.json"]
    total_raw += len(help_json)
    total_sent += len(webapp.pages.gzipped(help_json))
    print(f"app.js + style.css + help.json: {total_raw} bytes, {total_sent} gzipped")
    env.loop.close()


def test_changing_the_password_ends_every_other_session(ready):
    page, other = ready.client(), ready.client()
    page.login()
    other.login()
    token = page.page_token()
    old_cookie = page.test_client.cookies["doorline_session"]
    new_password = "another long passphrase"
    res = page.post("/api/password", {"current": "wrong password!", "password": new_password},
                    {**JSON, "X-CSRF-Token": token})
    assert res.status_code == 403 and other.get("/").status_code == 200
    res = page.post("/api/password", {"current": PASSWORD, "password": "short"},
                    {**JSON, "X-CSRF-Token": token})
    assert res.status_code == 400
    res = page.post("/api/password", {"current": PASSWORD, "password": new_password},
                    {**JSON, "X-CSRF-Token": token})
    assert res.status_code == 200 and res.json["csrf"] != token
    assert other.get("/").status_code == 303  # the other browser is logged out
    assert page.get("/").status_code == 200  # the page that changed it is not
    assert page.test_client.cookies["doorline_session"] != old_cookie
    assert ready.client().get("/api/status", basic()).status_code == 401
    assert ready.client().get("/api/status", basic(password=new_password)).status_code == 200
    # and after a restart the old session stays ended, the new one lives
    new_cookie = page.test_client.cookies["doorline_session"]
    restart(ready)
    for cookie, status in ((old_cookie, 303), (new_cookie, 200)):
        client = ready.client()
        client.test_client.cookies["doorline_session"] = cookie
        assert client.get("/").status_code == status
    changes = [e for e in ready.station.events() if e["type"] == "admin_password_set"]
    assert changes[-1]["via"] == "change"
    res = ready.client().post("/api/password", {"password": PASSWORD},
                              {**JSON, **basic(password=new_password)})
    assert res.status_code == 200 and res.json == {"ok": True}


@pytest.mark.parametrize("method,path", [("GET", "/api/board"), ("GET", "/api/config/warnings"),
                                         ("POST", "/api/password")])
def test_the_new_routes_need_the_login(ready, method, path):
    res = ready.client().request(method, path, {"password": "x" * 20}, JSON)
    assert res.status_code == 401
    assert res.headers["WWW-Authenticate"].startswith('Basic realm="Doorline"')
