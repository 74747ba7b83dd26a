"""Registration progress in GET /api/status (issue 18, docs/API.md "Registration progress")
from the real firmware process, against a real Kamailio and an unreachable loopback port.

- an unreachable registrar (a loopback UDP port where nothing answers) shows `registering` with
  `attempt` 1 from the first status on, never a bare `unregistered`; after Timer F (32 s) it is
  `failed` with the reason "no answer from 127.0.0.1:PORT (timeout)", and the retry shows
  `registering`, `attempt` 2, with that reason kept;
- a wrong password at Kamailio: `failed`, "wrong user name or password (401)", as a
  `registration` event with that reason and no `auth_failed` event (that is the page's login);
- saving the right password: `registered` with `since` after the save; a registrar change
  then shows `registering` at once, never the stale `registered` while the station
  unregisters and registers again.

Every wait is bounded; the stations are killed by PID (tests/integration/helpers.py)."""

import concurrent.futures
import socket
import time

import pytest

from tests.integration.helpers import station_config
from tests.integration.test_web_live import live_station  # noqa: F401  (the fixture)
from tests.peers.fixtures import DOOR_PASSWORD
from tests.peers.process import wait_until

pytestmark = pytest.mark.peers

TIMER_F = 32.0


def registration(station):
    return station.status()["registration"]


def test_an_unreachable_registrar_shows_registering_then_the_reason(live_station):  # noqa: F811
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes REGISTERs, answers none
    blackhole.bind(("127.0.0.1", 0))
    blackhole.settimeout(5.0)  # every wait bounded
    try:
        config = station_config(None)
        registrar = "127.0.0.1:%d" % blackhole.getsockname()[1]
        config["sip"]["registrar"] = registrar
        started = time.time()
        station = live_station(config)
        station.set_password()
        first = registration(station)
        assert first["state"] == "registering", first
        assert (first["mode"], first["attempt"], first["reason"]) == ("registrar", 1, None)
        assert started - 1 <= first["since"] <= time.time() + 1
        seen = []

        def failed():
            seen.append(registration(station))
            return seen[-1]["state"] == "failed"

        assert wait_until(failed, TIMER_F + 10, 0.25), f"{seen[-1:]}{station.describe()}"
        assert {s["state"] for s in seen} <= {"registering", "failed"}, seen
        assert all(s["attempt"] == 1 for s in seen if s["state"] == "registering"), seen
        fail = seen[-1]
        assert fail["reason"] == f"no answer from {registrar} (timeout)", fail
        assert fail["since"] >= first["since"] + TIMER_F - 1 and fail["next_refresh"], fail
        retry = station.wait_status(
            lambda s: s["registration"]["state"] == "registering", 25, "the retry")
        assert retry["registration"]["attempt"] == 2, retry
        assert retry["registration"]["reason"] == fail["reason"]  # the last failure's reason
        assert retry["registration"]["since"] >= fail["since"]
        assert blackhole.recv(65535).startswith(b"REGISTER ")
    finally:
        blackhole.close()


def test_wrong_password_then_the_right_one_at_kamailio(live_station, kamailio):  # noqa: F811
    config = station_config(kamailio, "udp", password="not-the-password")
    station = live_station(config)
    station.set_password()
    status = station.wait_status(lambda s: s["registration"]["state"] == "failed", 10,
                                 "the refused registration")["registration"]
    assert status["reason"] == "wrong user name or password (401)", status
    assert status["mode"] == "registrar" and status["attempt"] == 1
    events = station.events()
    assert [e["reason"] for e in events if e["type"] == "registration"
            and e["state"] == "failed"] == ["wrong user name or password (401)"]
    assert [e for e in events if e["type"] == "auth_failed"] == []

    saved_at = time.time()
    station.api("PUT", "/api/config", {"sip": {"password": DOOR_PASSWORD}})
    status = station.wait_status(lambda s: s["registration"]["state"] == "registered", 10,
                                 "the registration with the right password")["registration"]
    assert status["since"] >= saved_at - 0.5 and status["reason"] is None, status
    assert status["attempt"] == 0

    # A registrar change while registered (to one that never answers, so the new attempt
    # stays outstanding): from the restart on, status shows "registering", never the old
    # "registered" nor a bare "unregistered".
    blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blackhole.bind(("127.0.0.1", 0))
    blackhole.settimeout(5.0)  # every wait bounded
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            changed_at = time.time()
            put = pool.submit(station.api, "PUT", "/api/config", {
                "sip": {"registrar": "127.0.0.1:%d" % blackhole.getsockname()[1]}})
            seen = []
            while not put.done() and time.time() - changed_at < 10:
                seen.append(registration(station))
            put.result(timeout=10)
        after = registration(station)
        assert (after["state"], after["attempt"], after["reason"]) == ("registering", 1, None)
        assert after["since"] >= changed_at - 0.1, after
        seen.append(after)
        states = [s["state"] for s in seen]
        assert "unregistered" not in states, seen
        # polls answered before the PUT began its restart show the old registration; from the
        # first "registering" on, nothing else
        assert set(states[states.index("registering"):]) == {"registering"}, seen
        assert blackhole.recv(65535).startswith(b"REGISTER ")
    finally:
        blackhole.close()
    assert [e["type"] for e in station.events()].count("config_saved") == 2
