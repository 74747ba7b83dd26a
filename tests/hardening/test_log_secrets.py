"""Secrets never reach the log: the SIP password, and door codes typed during a real call (each
digit of a code is as secret as the code). Checked on a production-like station (no test hooks)
at DEBUG level, the most talkative it gets."""

import re

import pytest

from tests.integration.test_door_station import (
    DOOR_CODE,
    DoorStation,
    door_config,
    phone_calls_station,
    send_code,
    wait_established,
)
from tests.peers.fixtures import CONCIERGE_USER, DOOR_PASSWORD

pytestmark = pytest.mark.peers


def test_password_and_door_code_digits_are_not_logged(kamailio, baresip_factory, tmp_path):
    concierge = baresip_factory(CONCIERGE_USER, registrar=kamailio)
    concierge.wait_registered(5)
    station = DoorStation(tmp_path / "station", door_config(kamailio))
    station.fw.test_hooks = False  # as in production: no digit diagnostics
    station.start(kamailio)
    try:
        since = phone_calls_station(concierge, kamailio)
        wait_established(concierge, station, since)
        mark = station.event_count()
        played = send_code(concierge, DOOR_CODE)
        station.wait_event("door_open", played + 2.0, since=mark)  # the digits did arrive
        concierge.hangup()
    finally:
        station.fw.stop()
    log = station.fw.log
    events = open(station.events_path, encoding="utf-8").read()
    assert "registration registered" in log  # the log is really there, at DEBUG
    for text, where in ((log, "log"), (events, "event log")):
        assert DOOR_PASSWORD not in text, f"the SIP password is in the {where}"
        # as a word of its own: timestamps, ports and call ids hold these digits by chance
        code = re.search(r"(?<![0-9A-Za-z])%s(?![0-9A-Za-z])" % DOOR_CODE, text)
        context = text[max(0, code.start() - 80):code.end() + 80] if code else ""
        assert code is None, f"the door code is in the {where}: ...{context}..."
    assert "DTMF digit" not in log, "received digits are logged"
