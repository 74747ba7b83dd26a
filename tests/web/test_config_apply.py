"""PUT /api/config over the real Station (in this process): a failure while applying that is not
an OSError (here a RuntimeError injected where the user agent is built) puts the previous
configuration back, running, and nothing is saved (issue 12)."""

import asyncio
import json

import pytest
from microdot.test_client import TestClient

from firmware import config as configuration
from firmware.runtime import station as station_module
from firmware.runtime.station import Station
from firmware.web.app import create_app
from tests.peers.process import can_bind, free_port
from tests.web.test_api import JSON, PASSWORD, basic


def _bound(kind, port):
    """Is 127.0.0.1:port taken (for `kind` "udp"/"tcp")?"""
    return not can_bind(kind, port)


@pytest.fixture
def running(tmp_path):
    loop = asyncio.new_event_loop()
    old_port = free_port(("udp", "tcp"))
    # microdot's TestClient sends `Host: example.com:1234`: one of this station's names.
    cfg = configuration.validate({"sip": {"listen": f"127.0.0.1:{old_port}"},
                                  "web": {"hostnames": ["example.com"]}})
    config_path = str(tmp_path / "doorline.toml")
    configuration.save_atomic(config_path, cfg)
    station = Station(cfg, None, config_path=config_path, state_dir=str(tmp_path), loop=loop)
    loop.run_until_complete(station.start())
    client = TestClient(create_app(station, config_path, str(tmp_path)))

    def request(method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body)
        return loop.run_until_complete(client.request(method, path, headers=dict(headers or {}),
                                                      body=data))

    assert request("POST", "/api/setup", {"password": PASSWORD}, JSON).status_code == 200
    yield station, request, config_path, old_port
    loop.run_until_complete(station.stop())
    loop.close()


def test_a_non_oserror_during_apply_rolls_back_and_saves_nothing(running, monkeypatch):
    station, request, config_path, old_port = running
    before = station.config
    with open(config_path, "rb") as f:
        file_before = f.read()
    new_port = free_port(("udp", "tcp"))
    real_user_agent = station_module.UserAgent

    def user_agent(settings, *args, **kwargs):
        if settings.port == new_port:
            raise RuntimeError("injected failure")
        return real_user_agent(settings, *args, **kwargs)

    monkeypatch.setattr(station_module, "UserAgent", user_agent)
    res = request("PUT", "/api/config", {"sip": {"listen": f"127.0.0.1:{new_port}"},
                                         "door": {"pulse_ms": 1234}}, {**JSON, **basic()})
    assert res.status_code == 400, res.json
    assert "injected failure" in " ".join(res.json["errors"].values()), res.json

    assert station.config == before
    assert station.controller is not None
    with open(config_path, "rb") as f:
        assert f.read() == file_before, "a configuration that failed to apply was saved"
    assert station.ua is not None and station.ua.endpoint.port == old_port, "SIP not restored"
    assert _bound("udp", old_port) and _bound("tcp", old_port)
    assert not _bound("udp", new_port) and not _bound("tcp", new_port), "half-applied sockets"
    status = station.status()
    assert status["registration"]["state"] == "disabled", status
    assert [e for e in station.events() if e["type"] in ("config", "config_saved")] == []

    # Once the failure is gone, the same document applies and is saved.
    monkeypatch.setattr(station_module, "UserAgent", real_user_agent)
    res = request("PUT", "/api/config", {"sip": {"listen": f"127.0.0.1:{new_port}"}},
                  {**JSON, **basic()})
    assert res.status_code == 200, res.json
    assert station.ua.endpoint.port == new_port and not _bound("udp", old_port)
    with open(config_path, "rb") as f:
        assert f"127.0.0.1:{new_port}".encode() in f.read()
