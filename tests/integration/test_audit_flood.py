"""The audit trail survives a port-changing flood of rejected calls (issue 12).

The station is registered at Kamailio, so INVITEs sent straight to it by strangers get a
stateless 403 and are logged as rejected. First a lockout (the concierge types one wrong code
through Kamailio, max_failures = 1) and a door opening (the API) are logged; then strangers on
FLOOD_ADDRESSES loopback addresses send INVITEs for FLOOD_S seconds, each from a new source port,
with a 1500-character display name. The admission buckets let about 100 a second through (the
global untrusted bucket), more than the general ring of 1000 events holds within the flood.

Expected, from /api/events during the flood and from events.jsonl after a clean shutdown:
- door_open and lockout are still returned by /api/events;
- one caller_rejected event per flooding address (not one per source port);
- after shutdown, rejected_summary events whose counts add up to the 403s the strangers got;
- attacker-controlled fields are cut to 200 characters;
- few file writes (the /metrics write counter, and the changes of the file seen by polling it).
"""

import base64
import json
import os
import socket
import threading
import time
import urllib.request

import pytest

from tests.hardening.hostile import invite
from tests.integration.test_door_station import (  # noqa: F401  (door_station is a fixture)
    ADMIN_PASSWORD,
    PHONE_HZ,
    door_station,
    phone_calls_station,
    send_code,
    wait_established,
)
from tests.peers.fixtures import CONCIERGE_USER

pytestmark = pytest.mark.peers

FLOOD_ADDRESSES = [f"127.0.77.{i}" for i in range(1, 17)]
FLOOD_S = 11.0
OFFERED_PER_S = 150
DISPLAY_NAME = "A" * 1500
MAX_FIELD_CHARS = 200  # firmware/app/auditlog.py
ANSWER_WAIT_S = 2.0  # each source port is read for its 403 this long, then closed


def metric(station, name):
    """One sample of GET /metrics (Prometheus text), or None when the metric is missing."""
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    request = urllib.request.Request(station.web_url + "/metrics",
                                     headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=2.0) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith(f"doorline_{name} "):
            return float(line.split()[1])
    return None


class FileWatcher(threading.Thread):
    """Polls events.jsonl every 20 ms and counts the changes of its (mtime, size, inode)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.changes = 0
        self.stop_event = threading.Event()

    def _state(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def run(self):
        last = self._state()
        while not self.stop_event.wait(0.02):
            state = self._state()
            if state != last:
                self.changes += 1
                last = state


def flood(station_port, seconds, per_second):
    """INVITEs from new source ports on FLOOD_ADDRESSES; returns (offered, 403s received)."""
    offered, forbidden = 0, 0
    waiting = []

    def drain(sock):
        nonlocal forbidden
        sock.setblocking(False)
        try:
            while True:
                data = sock.recv(65535)
                if data.startswith(b"SIP/2.0 403 "):
                    forbidden += 1
        except (BlockingIOError, OSError):
            pass
        sock.close()

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        address = FLOOD_ADDRESSES[offered % len(FLOOD_ADDRESSES)]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, 0))
        port = sock.getsockname()[1]
        data = invite(station_port, f"flood{offered}-{os.urandom(4).hex()}", port)
        data = data.replace(b"From: <sip:intruder@",
                            b'From: "' + DISPLAY_NAME.encode() + b'" <sip:intruder@')
        data = data.replace(f"127.0.0.1:{port};branch".encode(), f"{address}:{port};branch"
                            .encode())
        sock.sendto(data, ("127.0.0.1", station_port))
        waiting.append((time.monotonic(), sock))
        offered += 1
        while waiting and time.monotonic() - waiting[0][0] > ANSWER_WAIT_S:
            drain(waiting.pop(0)[1])
        ahead = started + offered / per_second - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    time.sleep(ANSWER_WAIT_S)
    for _, sock in waiting:
        drain(sock)
    return offered, forbidden


def test_security_events_survive_a_port_changing_flood_and_writes_are_batched(
        kamailio, baresip_factory, door_station):  # noqa: F811
    concierge = baresip_factory(CONCIERGE_USER, registrar=kamailio, tone_hz=PHONE_HZ)
    concierge.wait_registered(5)
    station = door_station(door={"max_failures": 1, "lockout_s": 600})
    station.require_api()

    # A lockout through a real call, and a door opening through the API.
    since = phone_calls_station(concierge, kamailio)
    wait_established(concierge, station, since)
    mark = station.event_count()
    played = send_code(concierge, "0000")
    station.wait_event("lockout", played + 2.0, since=mark)
    concierge.hangup()
    concierge.wait_event("CALL_CLOSED", 5, since=since)
    status, body = station.request("POST", "/api/door/open", {})
    assert status == 200, (status, body)
    station.wait_event("door_open", 2.0)

    writes_before = metric(station, "eventlog_writes_total")
    watcher = FileWatcher(station.events_path)
    watcher.start()
    offered, forbidden = flood(station.fw.port, FLOOD_S, OFFERED_PER_S)
    watcher.stop_event.set()
    watcher.join(2.0)
    writes_after = metric(station, "eventlog_writes_total")

    status, body = station.request("GET", "/api/events?limit=1000")
    assert status == 200, (status, body)
    events = body["events"]
    types = [e["type"] for e in events]
    flood_events = [e for e in events if any(a + ":" in json.dumps(e) for a in FLOOD_ADDRESSES)]
    rejected = [e for e in flood_events if e["type"] == "caller_rejected"]
    print(f"audit flood: offered {offered} INVITEs in {FLOOD_S:.0f} s from "
          f"{len(FLOOD_ADDRESSES)} addresses, each from a new port; {forbidden} got a 403; "
          f"/api/events: door_open {types.count('door_open')}, lockout "
          f"{types.count('lockout')}, caller_rejected from the flood {len(rejected)} of "
          f"{len(events)} events; file changes seen during the flood {watcher.changes}; "
          f"write counter {writes_before} → {writes_after}")
    context = station.describe()
    assert forbidden > 1000, f"the flood got only {forbidden} 403s{context}"
    assert types.count("door_open") == 1, f"door_open lost under the flood{context}"
    assert types.count("lockout") == 1, f"lockout lost under the flood{context}"
    assert len(rejected) <= len(FLOOD_ADDRESSES), (
        f"{len(rejected)} caller_rejected events for {len(FLOOD_ADDRESSES)} addresses")
    assert all(len(e.get("caller", "")) <= MAX_FIELD_CHARS for e in rejected), rejected[:1]
    assert writes_after is not None and writes_after - writes_before <= FLOOD_S / 30 + 2, (
        writes_before, writes_after)
    assert watcher.changes <= FLOOD_S / 30 + 2, f"events.jsonl changed {watcher.changes} times"
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    # Paging keeps its shape: since/limit/more over the merged stream.
    status, page = station.request("GET", "/api/events?since=0&limit=3")
    assert status == 200 and len(page["events"]) == 3 and page["more"] is True, page
    suppressed = metric(station, "events_suppressed_total")
    assert suppressed == forbidden - len(rejected), (suppressed, forbidden, len(rejected))

    # A clean shutdown writes what waited, and one summary per address with its count.
    station.fw.stop()
    written = station.events()
    summaries = [e for e in written if e["type"] == "rejected_summary"]
    print(f"after shutdown: {len(written)} events in events.jsonl, {len(summaries)} summaries, "
          f"e.g. {summaries[0]['text'] if summaries else None!r}")
    assert {e["source_ip"] for e in summaries} <= set(FLOOD_ADDRESSES), summaries
    assert sum(e["count"] for e in summaries) + len(
        [a for a in FLOOD_ADDRESSES if a not in {e["source_ip"] for e in summaries}]
    ) == forbidden, summaries
    assert [e["type"] for e in written].count("door_open") == 1
    assert [e["type"] for e in written].count("lockout") == 1
    assert all("\u00d7" in e["text"] for e in summaries)
    station.check_event_ids()

