"""The Host check against DNS rebinding (firmware/web/hosts.py) and the one-time setup code
(firmware/web/setupcode.py), as pure functions and in process through the microdot app.

The same behaviour against the running firmware, from a client that is not on loopback, is in
tests/web/test_first_boot_live.py."""

import asyncio
import ipaddress
import json
import os
import stat

import pytest
from microdot import Request, test_client

from firmware import config as configuration
from firmware.settings import WebConfig
from firmware.web import hosts, setupcode
from firmware.web.app import create_app
from tests.web.fake_station import FakeStation

NAMES = {"door1", "door1.local", "localhost", "door.example.org"}
ADDRESSES = {ipaddress.ip_address(a) for a in
             ("127.0.0.1", "::1", "192.168.1.20", "fd00::20", "fe80::1c2d:3eff:fe4f:5a6b")}
PASSWORD = "correct horse battery"


@pytest.mark.parametrize("value", [
    "door1", "door1:8080", "DOOR1.LOCAL", "door1.local.", "door1.local.:443", "localhost",
    "LocalHost.:8080", "door.example.org", "192.168.1.20", "192.168.1.20:8080", "127.0.0.1:80",
    "[::1]", "[::1]:8080", "[fd00::20]:8443", "[FD00:0:0:0:0:0:0:20]", "[::ffff:192.168.1.20]",
    "[fe80::1c2d:3eff:fe4f:5a6b%25eth0]:8080", " door1 ",
])
def test_own_names_are_accepted(value):
    assert hosts.is_own_host(value, NAMES, ADDRESSES)


@pytest.mark.parametrize("value", [
    None, "", "evil.example", "evil.example:8080", "door1.evil.example", "door1.local.evil",
    "192.168.1.21", "192.168.1.2", "10.0.0.1:8080", "0.0.0.0", "0.0.0.0:8080", "[::]:8080",
    "::1", "fd00::20", "[::1", "[::1]x", "[::1]:", "[::1]:99999", "door1:", "door1:80:80",
    "door1:0", "door1:abc", "door1..local", ".door1", "door1 evil", "door1/x", "door1@evil",
    "dóor1", "127.1", "0x7f.0.0.1", "localhost\r\nX: y", "[fd00::21]", "door1" * 60,
])
def test_other_names_are_refused(value):
    assert not hosts.is_own_host(value, NAMES, ADDRESSES)


def test_config_names_take_hostnames_and_a_specific_listen_address():
    def web(listen, hostnames):
        return WebConfig(listen=listen, https=False, hostnames=hostnames)

    assert hosts.config_names(web("0.0.0.0:8080", ["door.example.org"])) == ["door.example.org"]
    assert hosts.config_names(web("[::]:8080", [])) == []
    assert hosts.config_names(web("192.0.2.7:8080", [])) == ["192.0.2.7"]
    assert hosts.config_names(web("[2001:db8::7]:8080", [])) == ["2001:db8::7"]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_own_hosts_reread_the_addresses_when_they_change():
    clock, current, reads = Clock(), {"127.0.0.1"}, []

    def addresses():
        reads.append(clock.now)
        return set(current)

    own = hosts.OwnHosts(addresses, lambda: "Door1", lambda: ["10.9.8.7", "Door.Example.org."],
                         clock)
    assert own.allows("door1.local:8080") and own.allows("door.example.org")
    assert own.allows("10.9.8.7:8080")  # an address listed in [web] hostnames
    assert not own.allows("192.0.2.5:8080")
    current.add("192.0.2.5")  # a new DHCP lease
    clock.now += 0.5
    assert not own.allows("192.0.2.5:8080")  # re-read at most once a second
    clock.now += 1.0
    assert own.allows("192.0.2.5:8080")
    count = len(reads)
    for _ in range(100):  # a flood of foreign names costs no re-reads
        assert not own.allows("evil.example")
    assert len(reads) == count
    assert own.allows("[::1]:8080", local="::1")  # the address the connection arrived on


def test_loopback_clients():
    for client in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
        assert hosts.is_loopback(client), client
    for client in ("192.0.2.1", "::ffff:192.0.2.1", "fd00::1", "unknown", "", "0.0.0.0"):
        assert not hosts.is_loopback(client), client


@pytest.mark.parametrize("names, error", [
    (["door.example.org", "door.example.org.", "192.0.2.7", "2001:db8::7", "door-1"], None),
    ("door.example.org", "web.hostnames"), ([7], "web.hostnames[0]"),
    (["http://door.example.org"], "web.hostnames[0]"), (["door:8080"], "web.hostnames[0]"),
    (["ok", "a b"], "web.hostnames[1]"), (["-door"], "web.hostnames[0]"),
    ([""], "web.hostnames[0]"),
    (["x" * 64 + ".org"], "web.hostnames[0]"), (["door\r\n"], "web.hostnames[0]"),
    (["n%d" % i for i in range(33)], "web.hostnames"),
])
def test_config_validates_hostnames(names, error):
    doc = {"web": {"hostnames": names}}
    if error is None:
        assert configuration.validate(doc).web.hostnames == names
        return
    with pytest.raises(configuration.ConfigError) as exc:
        configuration.validate(doc)
    assert error in exc.value.errors
    assert configuration.defaults()["web"]["hostnames"] == []


# -- the setup code -------------------------------------------------------------------------------
def test_setup_code_is_made_once_private_and_removed(tmp_path):
    code = setupcode.SetupCode(str(tmp_path))
    made = code.ensure()
    assert setupcode.is_valid(made) and len(setupcode.normalise(made)) == 10
    assert not set(setupcode.normalise(made)) & set("01OIL")
    path = tmp_path / "setup-code"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert setupcode.SetupCode(str(tmp_path)).ensure() == made  # kept across restarts
    assert code.matches(made) and code.matches(made.lower().replace("-", " "))
    assert not code.matches(made[:-1]) and not code.matches("") and not code.matches(None)
    code.remove()
    assert not path.exists() and not code.matches(made)
    assert len({setupcode.make_code() for _ in range(50)}) == 50


def test_a_seeded_setup_code_is_used_and_a_malformed_one_replaced(tmp_path):
    (tmp_path / "setup-code").write_text("ABCDE-FGHJK\n")
    os.chmod(tmp_path / "setup-code", 0o644)
    assert setupcode.SetupCode(str(tmp_path)).ensure() == "ABCDE-FGHJK"
    assert stat.S_IMODE((tmp_path / "setup-code").stat().st_mode) == 0o600
    (tmp_path / "setup-code").write_text("short\n")
    assert setupcode.SetupCode(str(tmp_path)).ensure() != "short"


class App:
    """The app over a FakeStation; requests with any client address and Host."""

    def __init__(self, tmp_path, addresses=("127.0.0.1", "::1", "192.0.2.1")):
        self.station = FakeStation(configuration.validate({}))
        self.state_dir = tmp_path
        self.app = create_app(self.station, str(tmp_path / "doorline.toml"), str(tmp_path),
                              addresses=lambda: set(addresses))
        self.loop = asyncio.new_event_loop()

    def request(self, method, path, host="192.0.2.1:8080", client="192.0.2.9", body=b"",
                headers=None, version="1.1"):
        lines = [f"{method} {path} HTTP/{version}"]
        if host is not None:
            lines.append(f"Host: {host}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body:
            lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body

        async def run():
            request = await Request.create(self.app, test_client.AsyncBytesIO(raw),
                                           test_client.AsyncBytesIO(b""),
                                           (client, 40000))
            response = await self.app.dispatch_request(request)
            response.complete()
            return await test_client.TestResponse.create(response)

        return self.loop.run_until_complete(run())

    def setup(self, body, client="192.0.2.9", host="192.0.2.1:8080"):
        return self.request("POST", "/api/setup", host=host, client=client,
                            body=json.dumps(body).encode(),
                            headers={"Content-Type": "application/json"})

    def code(self):
        return (self.state_dir / "setup-code").read_text().strip()


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/setup"), ("POST", "/setup"), ("GET", "/login"),
    ("GET", "/static/app.js"), ("GET", "/api/status"), ("POST", "/api/setup"),
    ("GET", "/metrics"), ("GET", "/no/such/path"), ("OPTIONS", "/api/status"),
    ("DELETE", "/api/status"), ("HEAD", "/"),
])
def test_foreign_host_is_refused_on_every_path(tmp_path, method, path):
    app = App(tmp_path)
    res = app.request(method, path, host="evil.example:8080")
    assert res.status_code == 421, (method, path, res.status_code)
    if method != "HEAD":
        assert "DNS" in res.text and "[web] hostnames" in res.text
    assert res.headers["Content-Type"].startswith("text/plain")
    assert res.headers["X-Frame-Options"] == "DENY"
    assert app.request(method, path).status_code != 421


def test_missing_host_refused_on_http_1_1_only(tmp_path):
    app = App(tmp_path)
    assert app.request("GET", "/api/status", host=None).status_code == 421
    assert app.request("GET", "/api/status", host=None, version="1.0").status_code == 403


def test_rebinding_cannot_set_the_password_even_with_the_code(tmp_path):
    app = App(tmp_path)
    res = app.setup({"password": PASSWORD, "setup_code": app.code()}, host="evil.example",
                    client="127.0.0.1")
    assert res.status_code == 421
    assert not (tmp_path / "admin.json").exists()


def test_setup_from_another_machine_needs_the_code(tmp_path):
    app = App(tmp_path)
    res = app.setup({"password": PASSWORD})
    assert res.status_code == 403 and "setup code is needed" in res.json["error"]
    assert "journalctl -u doorline" in res.json["error"]
    assert app.setup({"password": PASSWORD, "setup_code": "ABCDE-FGHJK"}).status_code == 403
    assert not (tmp_path / "admin.json").exists()
    failures = [e for e in app.station.events() if e["type"] == "auth_failed"]
    assert [e["via"] for e in failures] == ["setup_code", "setup_code"]
    assert app.setup({"password": PASSWORD, "setup_code": app.code().lower()}).status_code == 200
    assert (tmp_path / "admin.json").exists() and not (tmp_path / "setup-code").exists()


def test_wrong_setup_codes_are_throttled(tmp_path):
    app = App(tmp_path)
    code = app.code()
    answers = [app.setup({"password": PASSWORD, "setup_code": "WRONG-CODE2"}).status_code
               for _ in range(6)]
    assert answers == [403] * 5 + [429]
    res = app.setup({"password": PASSWORD, "setup_code": code})
    assert res.status_code == 429 and "Retry-After" in res.headers  # even the right one, now
    # another client is not held back by the first one's failures
    assert app.setup({"password": PASSWORD, "setup_code": code}, client="192.0.2.10") \
        .status_code == 200


def test_setup_from_loopback_needs_no_code(tmp_path):
    app = App(tmp_path)
    assert app.setup({"password": PASSWORD}, client="127.0.0.1", host="localhost:8080") \
        .status_code == 200
    assert not (tmp_path / "setup-code").exists()


def test_setup_form_asks_for_the_code_from_another_machine(tmp_path):
    app = App(tmp_path)
    remote = app.request("GET", "/setup")
    assert 'name="setup_code"' in remote.text and "journalctl -u doorline" in remote.text
    assert "fingerprint" in remote.text  # how to trust the self-signed certificate
    local = app.request("GET", "/setup", client="127.0.0.1", host="127.0.0.1:8080")
    assert 'name="setup_code"' not in local.text
    cookie = remote.headers["Set-Cookie"][0].split(";")[0]
    csrf = remote.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = f"csrf={csrf}&password=correct+horse+battery&confirm=correct+horse+battery"
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    wrong = app.request("POST", "/setup", body=(form + "&setup_code=AAAAA-AAAAA").encode(),
                        headers=headers)
    assert wrong.status_code == 403 and "wrong setup code" in wrong.text
    assert not (tmp_path / "admin.json").exists()
    right = app.request("POST", "/setup", body=(form + "&setup_code=" + app.code()).encode(),
                        headers=headers)
    assert right.status_code == 303 and (tmp_path / "admin.json").exists()


def test_the_setup_code_is_logged_at_warning_until_the_password_is_set(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="doorline.web"):
        app = App(tmp_path)
    code = app.code()
    assert any(code in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert app.setup({"password": PASSWORD, "setup_code": code}).status_code == 200
    caplog.clear()
    with caplog.at_level("WARNING", logger="doorline.web"):
        App(tmp_path)
    assert not any("setup code" in r.getMessage() for r in caplog.records)


def test_an_unwritable_state_dir_leaves_setup_to_loopback(tmp_path, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(setupcode.os, "open", refuse)
    with caplog.at_level("ERROR", logger="doorline.web"):
        app = App(tmp_path)
    assert any("only be set from the station itself" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    assert app.setup({"password": PASSWORD, "setup_code": "ABCDE-FGHJK"}).status_code == 403
    assert app.setup({"password": PASSWORD}, client="::1", host="[::1]:8080").status_code == 200


def test_setup_codes_use_the_whole_alphabet_evenly():
    """make_code draws from os.urandom (no `random` module, issue 14 sixth round): every code
    is valid, and over many codes each of the 31 characters turns up about equally often."""
    counts = dict.fromkeys(setupcode.ALPHABET, 0)
    for _ in range(620):
        made = setupcode.make_code()
        assert setupcode.is_valid(made) and made[5] == "-" and len(made) == 11
        for char in setupcode.normalise(made):
            counts[char] += 1
    # 6200 characters: 200 each on average (sd ~14); a biased or short alphabet fails this
    assert all(130 < count < 270 for count in counts.values()), counts
