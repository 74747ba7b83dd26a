"""One client cannot exhaust the running station's web server (issue 12).

The real firmware runs as its own process (direct-IP mode, no peers needed); the attacks come
over real loopback sockets, from several 127.0.0.0/8 source addresses where the test needs
different clients:

- a header flood (100+ MB of header lines, sent in a bounded loop until the server answers or
  closes) → 431, and the station's RSS (VmRSS) grows by less than MAX_RSS_GROWTH_KB;
- too many header lines → 431; a long request line → 414;
- 150 idle connections → at most MAX_CONNECTIONS stay open, all are closed within a few
  seconds, and an authenticated API request is answered meanwhile;
- a client at its per-address cap with busy connections gets 503 for one more, while another
  address is served;
- a deeply nested JSON body → 400 with a clear message, and the station keeps serving.

Figures (RSS before/after, open connections over time) are printed for the report.
"""

import select
import socket
import time

import pytest

from firmware.web import limits
from tests.hardening.hostile import process_figures
from tests.integration.helpers import station_config
from tests.integration.test_web_live import live_station  # noqa: F401  (a fixture)

FLOOD_BYTES = 120 * 1024 * 1024
FLOOD_SECONDS = 30.0
MAX_RSS_GROWTH_KB = 4 * 1024
IDLE = 150


@pytest.fixture
def station(live_station):  # noqa: F811
    live = live_station(station_config(None))
    live.set_password()
    assert live.http("GET", "/api/status").status == 200
    return live


def connect(station, source="127.0.0.1", timeout=5.0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(station.web)
    return sock


def exchange(station, data, source="127.0.0.1", timeout=5.0):
    """Send `data`, return everything answered until the server closes."""
    with connect(station, source, timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_all(sock, timeout)


def read_all(sock, timeout):
    answer = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        answer += chunk
    return answer


def status_of(answer):
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None


def is_closed(sock):
    """True once the server closed (EOF or reset; an answer before it is read and dropped)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


def test_header_flood_is_431_and_memory_stays_flat(station):
    pid = station.fw.pid
    before = process_figures(pid)["rss_kb"]
    filler = b"a" * 1000
    made = [0]

    def chunk():  # about 1 MB of header lines, each with a name of its own
        first = made[0]
        made[0] += 1024
        return b"".join(b"X-%08d: %s\r\n" % (n, filler) for n in range(first, first + 1024))

    sent, peak, answer = 0, before, b""
    with connect(station) as sock:
        sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.setblocking(False)
        began = time.monotonic()
        pending = memoryview(chunk())
        while sent < FLOOD_BYTES and time.monotonic() - began < FLOOD_SECONDS:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                try:
                    answer = sock.recv(65536)
                except OSError:
                    pass
                break
            if writable:
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += n
                pending = pending[n:] or memoryview(chunk())
                if sent // (8 << 20) != (sent - n) // (8 << 20):
                    peak = max(peak, process_figures(pid)["rss_kb"])
        took = time.monotonic() - began
        if not answer:  # the server closed while we were sending: collect what it answered
            sock.setblocking(True)
            sock.settimeout(12.0)
            answer = read_all(sock, 12.0)
    after = process_figures(pid)["rss_kb"]
    peak = max(peak, after)
    print(f"header flood: sent {sent / 2**20:.1f} MB in {took:.1f} s, answer "
          f"{answer[:40]!r}; RSS {before} kB before, {peak} kB peak, {after} kB after "
          f"(+{peak - before} kB)")
    assert status_of(answer) == 431, f"a header flood must be refused with 431: {answer[:200]!r}"
    assert peak - before < MAX_RSS_GROWTH_KB, f"RSS grew {peak - before} kB under the flood"
    assert station.http("GET", "/api/status").status == 200


def test_many_header_lines_431_long_request_line_414(station):
    many = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n"
    answer = exchange(station, many)
    assert status_of(answer) == 431, answer[:200]
    assert b"header lines" in answer
    long_line = b"GET /api/status?" + b"a" * 10000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answer = exchange(station, long_line)
    assert status_of(answer) == 414, answer[:200]
    assert station.http("GET", "/api/status").status == 200


def test_idle_connections_are_capped_and_closed_while_the_api_still_answers(station):
    socks = []
    try:
        began = time.monotonic()
        for i in range(IDLE):  # 10 idle connections from each of 15 addresses
            socks.append(connect(station, f"127.0.0.{2 + i // 10}"))
        time.sleep(0.5)
        open_soon = sum(not is_closed(s) for s in socks)
        served_began = time.monotonic()
        reply = station.http("GET", "/api/status")
        served_took = time.monotonic() - served_began
        open_while_served = sum(not is_closed(s) for s in socks)
        deadline = began + limits.IDLE_TIMEOUT + 3.0
        while time.monotonic() < deadline and any(not is_closed(s) for s in socks):
            time.sleep(0.1)
        open_later = sum(not is_closed(s) for s in socks)
        all_closed_after = time.monotonic() - began
        print(f"{IDLE} idle connections: {open_soon} open after 0.5 s, {open_while_served} "
              f"while an API request was served in {served_took:.3f} s, {open_later} open "
              f"after {all_closed_after:.1f} s")
    finally:
        for sock in socks:
            sock.close()
    assert reply.status == 200, reply
    assert open_soon <= limits.MAX_CONNECTIONS, f"{open_soon} idle connections held open"
    assert open_while_served > 0, "the idle connections should still be open at that point"
    assert served_took < 2.0
    assert open_later == 0, f"{open_later} idle connections still open"


def test_per_address_cap_refuses_with_503_and_other_addresses_are_served(station):
    busy = []
    try:
        # Busy connections: a complete head announcing a body that never comes.
        for _ in range(limits.MAX_PER_CLIENT):
            sock = connect(station, "127.0.0.50")
            sock.sendall(b"PUT /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n")
            busy.append(sock)
        time.sleep(0.3)
        still_open = sum(not is_closed(s) for s in busy)
        with connect(station, "127.0.0.50") as extra:
            refused = read_all(extra, 3.0)
        other = exchange(station, b"GET /static/app.js HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
                         source="127.0.0.51")
    finally:
        for sock in busy:
            sock.close()
    print(f"per-address cap: {still_open} busy connections open, one more got "
          f"{refused[:40]!r}")
    assert still_open == limits.MAX_PER_CLIENT
    assert status_of(refused) == 503, refused[:200]
    assert b"Retry-After" in refused
    assert status_of(other) == 200


def test_deeply_nested_json_is_400_and_the_station_keeps_serving(station):
    deep = b'{"sip": {"x": ' + b"[" * 900 + b"]" * 900 + b"}}"
    reply = station.http("PUT", "/api/config", deep)
    assert reply.status == 400, reply
    assert "nests too deeply" in reply.json["error"]
    deeper = b"[" * 60000
    reply = station.http("PUT", "/api/config", deeper)
    assert reply.status == 400, reply
    assert "nests too deeply" in reply.json["error"]
    assert station.http("GET", "/api/status").status == 200
    assert station.fw.alive
