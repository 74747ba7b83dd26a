"""The running station under hostile traffic on loopback, registered at Kamailio.

- malformed traffic: every RFC 4475 invalid message, truncated and bit-flipped variants of the
  valid ones, random datagrams, half-open TCP connections and a TLS ClientHello that stalls;
  after each batch OPTIONS is still answered and the registration holds; RSS growth reported.
- flood: 500 INVITEs/s for 10 s from an untrusted source; none answered 200, the station stays
  registered, and the concierge's call through Kamailio goes through during the flood.
- door-code brute force through real calls: lockout after max_failures per caller (behind the
  registrar not per source: every flat shares its address), the second lockout twice as long,
  everything in events.jsonl.
"""

import json
import os
import random
import socket
import threading
import time

import pytest

from tests.conftest import VECTORS
from tests.hardening.hostile import SipSocket, healthy, invite, process_figures
from tests.integration.test_door_station import (  # noqa: F401  (door_station is a fixture)
    PHONE_HZ,
    door_station,
    phone_calls_station,
    send_code,
    wait_established,
)
from tests.peers.fixtures import CONCIERGE_USER

pytestmark = pytest.mark.peers

SEED = 4475
MAX_RSS_GROWTH_KB = 16 * 1024


def manifest():
    lines = (VECTORS / "rfc4475" / "manifest.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def vector_batches(rng):
    rows = manifest()
    read = {row["file"]: (VECTORS / "rfc4475" / row["file"]).read_bytes() for row in rows}
    invalid = [read[r["file"]] for r in rows if r["expected"] == "invalid"]
    valid = [read[r["file"]] for r in rows if r["expected"] == "valid"]
    truncated = [data[:rng.randrange(1, len(data))] for data in valid for _ in range(4)]
    flipped = []
    for data in valid:
        for _ in range(6):
            mutable = bytearray(data)
            for _ in range(rng.randrange(1, 8)):
                mutable[rng.randrange(len(mutable))] ^= 1 << rng.randrange(8)
            flipped.append(bytes(mutable))
    noise = [rng.randbytes(rng.randrange(1, 1500)) for _ in range(300)]
    sip_like = [b"INVITE sip:door@127.0.0.1 SIP/2.0\r\n" + rng.randbytes(rng.randrange(0, 600))
                for _ in range(100)]
    return {"rfc4475 invalid": invalid, "truncated valid": truncated,
            "bit-flipped valid": flipped, "random datagrams": noise + sip_like}


def send_paced(sock, datagrams, port, per_second=400):
    for i, data in enumerate(datagrams):
        sock.send(data, port)
        if i % 20 == 19:
            time.sleep(20 / per_second)


def test_malformed_traffic_leaves_the_station_answering_and_registered(kamailio, door_station):  # noqa: F811
    station = door_station()
    pid, port = station.fw.pid, station.fw.port
    sock = SipSocket()
    healthy(station, kamailio, sock)
    before = process_figures(pid)
    rng = random.Random(SEED)
    report = []
    for name, datagrams in vector_batches(rng).items():
        send_paced(sock, datagrams, port)
        sock.responses(0.3)
        healthy(station, kamailio, sock)
        report.append(f"{name}: {len(datagrams)} datagrams")

    # Half-open TCP connections (connect, say nothing) and a TLS ClientHello cut short: the
    # station must not wait on them forever, nor stop accepting well-behaved connections.
    client_hello_start = bytes.fromhex("16030100c8010000c40303") + rng.randbytes(32)
    stalled = []
    for i in range(12):
        conn = socket.create_connection(("127.0.0.1", port), timeout=2)
        if i % 2:
            conn.sendall(client_hello_start)
        stalled.append(conn)
    healthy(station, kamailio, sock)
    report.append(f"{len(stalled)} half-open/stalled-TLS TCP connections")
    # firmware/runtime/transport.py FIRST_MESSAGE_TIMEOUT: closed after 10 s (checked each 1 s).
    deadline = time.monotonic() + 15
    open_ones = list(stalled)
    while open_ones and time.monotonic() < deadline:
        for conn in list(open_ones):
            conn.settimeout(0.05)
            try:
                if conn.recv(1) == b"":
                    open_ones.remove(conn)
            except TimeoutError:
                pass
            except OSError:
                open_ones.remove(conn)
    for conn in stalled:
        conn.close()
    assert not open_ones, f"{len(open_ones)} stalled connections still open after 15 s"
    # A well-behaved TCP client still gets an answer.
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        call_id = os.urandom(4).hex()
        local = conn.getsockname()[1]
        conn.sendall((f"OPTIONS sip:door@127.0.0.1:{port} SIP/2.0\r\n"
                      f"Via: SIP/2.0/TCP 127.0.0.1:{local};branch=z9hG4bK{call_id}\r\n"
                      f"From: <sip:p@127.0.0.1>;tag=1\r\nTo: <sip:door@127.0.0.1>\r\n"
                      f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                      f"Content-Length: 0\r\n\r\n").encode())
        assert conn.recv(4096).startswith(b"SIP/2.0 200 "), station.describe()
    healthy(station, kamailio, sock)
    after = process_figures(pid)
    growth = after["rss_kb"] - before["rss_kb"]
    print("malformed traffic: " + "; ".join(report) +
          f"; RSS {before['rss_kb']} → {after['rss_kb']} kB ({growth:+d} kB), "
          f"fds {before['fds']} → {after['fds']}, threads {before['threads']} → "
          f"{after['threads']}")
    assert growth < MAX_RSS_GROWTH_KB, f"RSS grew by {growth} kB"
    sock.close()


def test_invite_flood_from_a_stranger_while_a_trusted_call_goes_through(
        kamailio, baresip_factory, door_station):  # noqa: F811
    concierge = baresip_factory(CONCIERGE_USER, registrar=kamailio, tone_hz=PHONE_HZ)
    concierge.wait_registered(5)
    station = door_station()
    pid, port = station.fw.pid, station.fw.port
    before = process_figures(pid)
    flood = SipSocket()
    statuses = []
    collector = threading.Thread(target=lambda: statuses.extend(flood.responses(12.0)))
    collector.start()
    rate, seconds = 500, 10
    offered = 0
    started = time.monotonic()
    call_result = {}

    def trusted_call():
        time.sleep(3.0)  # well inside the flood
        since = phone_calls_station(concierge, kamailio)
        try:
            wait_established(concierge, station, since, timeout=5.0)
            call_result["established"] = time.monotonic() - started
        finally:
            concierge.hangup()

    caller = threading.Thread(target=_capture_error, args=(trusted_call, call_result))
    caller.start()
    for i in range(rate * seconds):
        flood.send(invite(port, f"flood{i}-{os.urandom(4).hex()}", flood.port), port)
        offered += 1
        ahead = started + (i + 1) / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    sent_in = time.monotonic() - started
    caller.join(15)
    collector.join(15)
    after = process_figures(pid)
    by_status = {s: statuses.count(s) for s in sorted(set(statuses))}
    answered = len(statuses)
    print(f"flood: offered {offered} INVITEs in {sent_in:.1f} s; answered {answered} "
          f"{by_status}; dropped {offered - answered}; RSS {before['rss_kb']} → "
          f"{after['rss_kb']} kB; trusted call established at "
          f"{call_result.get('established', 'never')} s")
    assert call_result.get("error") is None, call_result["error"]
    assert "established" in call_result, f"the trusted call failed{station.describe()}"
    assert 200 not in statuses, by_status
    assert set(statuses) <= {100, 403}, by_status
    # Per-source bucket (20/s, burst 40) bounds what gets any answer at all.
    assert answered <= 40 + 20 * (sent_in + 2), by_status
    healthy(station, kamailio, flood)
    flood.close()


def _capture_error(function, result):
    try:
        function()
    except BaseException as exc:  # reported by the main thread
        result["error"] = exc


def test_door_code_brute_force_locks_out_the_caller_for_growing_periods(
        kamailio, baresip_factory, door_station):  # noqa: F811
    concierge = baresip_factory(CONCIERGE_USER, registrar=kamailio, tone_hz=PHONE_HZ)
    concierge.wait_registered(5)
    station = door_station(door={"max_failures": 3, "lockout_s": 5})
    durations = []
    for _ in range(2):
        since = phone_calls_station(concierge, kamailio)
        wait_established(concierge, station, since)
        mark = station.event_count()
        played = send_code(concierge, "0000" * 3)
        station.wait_event("code_failed", played + 2.0, since=mark, count=3)
        lockouts = station.wait_event("lockout", 2.0, since=mark)
        kinds = {e["kind"]: e for e in lockouts}
        assert set(kinds) == {"caller"}, lockouts
        assert "concierge" in kinds["caller"]["subject"], lockouts
        assert not [e for e in station.events()[mark:] if e.get("type") == "lockout"
                    and e.get("kind") == "source"], "the registrar's address was locked out"
        durations.append(kinds["caller"]["duration_s"])
        concierge.hangup()
        concierge.wait_event("CALL_CLOSED", 5, since=since)
        time.sleep(durations[-1] + 0.5)  # let the lockout run out
    print(f"door-code brute force: lockouts of {durations} s (caller)")
    assert durations == [5, 10], durations
    assert not station.events("door_open"), station.describe()
    failed = station.events("code_failed")
    assert len(failed) >= 6 and all("0000" not in json.dumps(e) for e in failed), failed
