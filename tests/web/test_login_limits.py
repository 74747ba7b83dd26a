"""Login throttling beyond one address: an IPv6 client's whole /64 counts as one client, all
clients together have a cap on failed passwords per window, and scrypt never runs on the event
loop (a slow password check does not stall other clients)."""

import asyncio
import base64
import socket
import threading
import time

from firmware import config
from firmware.web import app as web
from firmware.web import passwords, sessions
from tests.web.fake_station import FakeStation
from tests.web.test_api import PASSWORD, FakeClock


class Request:
    """What check_password reads of a microdot request."""

    def __init__(self, address):
        self.client_addr = address
        self.path = "/login"


def make_web(tmp_path):
    clock = FakeClock()
    app = web.create_app(FakeStation(), str(tmp_path / "doorline.toml"), str(tmp_path),
                         clock=clock)
    app.doorline.admin.set(PASSWORD)
    return app.doorline, clock


def attempt(web_state, address, password):
    """'ok', 'wrong' or the ApiError status."""
    async def check():
        try:
            ok = await web_state.check_password(Request(address), password, "form")
        except web.ApiError as exc:
            return exc.status
        return "ok" if ok else "wrong"
    return asyncio.run(check())


def test_client_key_groups_ipv6_by_64_and_unmaps_ipv4():
    assert sessions.client_key("192.0.2.7") == "192.0.2.7"
    assert sessions.client_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert sessions.client_key("2001:db8:1:2:ffff:ffff:ffff:fffe") == "2001:db8:1:2::/64"
    assert sessions.client_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert sessions.client_key("fe80::1%eth0") == "fe80::/64"
    assert sessions.client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert sessions.client_key("unknown") == "unknown"


def test_ipv6_failures_count_for_the_whole_64(tmp_path):
    state, clock = make_web(tmp_path)
    for i in range(sessions.FREE_FAILURES):  # a new address of the same /64 for each guess
        assert attempt(state, (f"2001:db8:5:6::{i + 1:x}", 443, 0, 0), "wrong guess") == "wrong"
    assert attempt(state, ("2001:db8:5:6:1234::99", 443, 0, 0), PASSWORD) == 429, (
        "another address of the same /64 must be throttled")
    assert attempt(state, ("2001:db8:5:7::1", 443, 0, 0), PASSWORD) == "ok", (
        "a neighbouring /64 is another client")
    assert attempt(state, ("192.0.2.1", 80), PASSWORD) == "ok"


def test_global_cap_on_failures_across_clients(tmp_path):
    state, clock = make_web(tmp_path)
    for i in range(sessions.GLOBAL_FAILURES):  # each from its own address: no per-client limit
        assert attempt(state, (f"198.51.100.{i + 1}", 80), "wrong guess") == "wrong"
        clock.now += 0.5
    assert attempt(state, ("203.0.113.9", 80), "another guess") == 429, (
        "a client that never failed must wait once all clients together reached the cap")
    assert attempt(state, ("2001:db8::1", 80, 0, 0), PASSWORD) == 429
    clock.now += sessions.GLOBAL_WINDOW + 0.1 - 0.5 * sessions.GLOBAL_FAILURES
    # the oldest failure left the window: one attempt fits again
    assert attempt(state, ("203.0.113.9", 80), "another guess") == "wrong"
    assert attempt(state, ("203.0.113.10", 80), PASSWORD) == 429
    clock.now += 1.0
    assert attempt(state, ("203.0.113.10", 80), PASSWORD) == "ok"


def test_concurrent_checks_one_per_client_but_a_known_password_needs_no_worker(tmp_path):
    state, clock = make_web(tmp_path)

    async def concurrently(address, password, count):
        async def one():
            try:
                ok = await state.check_password(Request(address), password, "basic")
            except web.ApiError as exc:
                return exc.status
            return "ok" if ok else "wrong"
        return await asyncio.gather(*(one() for _ in range(count)))

    results = asyncio.run(concurrently(("192.0.2.5", 80), "wrong guess", 3))
    assert sorted(results, key=str) == [429, 429, "wrong"], results
    assert attempt(state, ("192.0.2.5", 80), PASSWORD) == "ok"
    # A script using Basic on every request, several at once: the verified password is known.
    assert asyncio.run(concurrently(("192.0.2.5", 80), PASSWORD, 10)) == ["ok"] * 10


def http_get(port, path, headers="", timeout=10.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_event_loop_keeps_serving_while_scrypt_runs(tmp_path, monkeypatch):
    """A password check made slow (as on a Pi Zero with a big N) must not delay a request of
    another client: the check runs on the worker thread. The server runs on its own event loop
    in a thread; the clients here use plain blocking sockets and time what they see."""
    check_seconds = 1.5
    real = passwords._scrypt
    started = threading.Event()

    def slow_scrypt(*args):
        started.set()
        time.sleep(check_seconds)
        return real(*args)

    station = FakeStation(config.validate({}))
    app = web.create_app(station, str(tmp_path / "config.toml"), str(tmp_path))
    app.doorline.admin.set(PASSWORD)
    monkeypatch.setattr(passwords, "_scrypt", slow_scrypt)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(web.start(app, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        token = base64.b64encode(b"admin:a wrong password").decode()
        login = []
        login_thread = threading.Thread(target=lambda: login.append(
            http_get(port, "/api/status", f"Authorization: Basic {token}\r\n")), daemon=True)
        login_thread.start()
        assert started.wait(5), "the password check never started"
        began = time.monotonic()
        other = http_get(port, "/static/app.js")
        other_took = time.monotonic() - began
        login_thread.join(10)
    finally:
        async def shut_down():
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut_down(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    print(f"another client's request took {other_took:.3f} s during a {check_seconds} s check")
    assert other.split(b" ", 2)[1] == b"200"
    assert other_took < 0.5, f"the event loop stalled {other_took:.2f} s behind scrypt"
    assert login and login[0].split(b" ", 2)[1] == b"401"
