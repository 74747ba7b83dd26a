"""Webhooks (issue 17) against local HTTP(S) receivers run by the test, the station as its own
process (pc-sim, direct-IP mode).

- every POST carries the event as JSON, `X-Doorline-Event` and a signature that verifies
  (HMAC-SHA256 of the body with the webhook's secret); each webhook gets only the types it
  asked for; the delay from the button press (API) to the POST is measured;
- a receiver answering 500 is retried with back-off (1 s, then 2 s) until it takes the event;
- HTTPS: the receiver's certificate verifies with the webhook's `tls_ca`; without it (the
  system's CAs) nothing is delivered;
- a receiver that never answers does not delay a call: button → INVITE (at a UDP socket of the
  test's that answers 486) measured without and with such a webhook (and an MQTT broker that
  never answers either).
"""

import hashlib
import hmac
import http.server
import json
import os
import socket
import ssl
import statistics
import threading
import time

import pytest

from tests.peers.certs import make_certificates
from tests.peers.process import free_port, wait_until

pytestmark = pytest.mark.peers

SECRET = "hook-secret-1"
OTHER_SECRET = "hook-secret-2"


class Receiver:
    """A threaded HTTP(S) server recording (monotonic time, path, headers, body); it answers
    each POST with the next status of `statuses` (the last one repeats)."""

    def __init__(self, statuses=(200,), certs=None):
        self.records = []
        self.statuses = list(statuses)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                owner.records.append((time.monotonic(), self.path, dict(self.headers), body))
                status = owner.statuses.pop(0) if len(owner.statuses) > 1 else owner.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if certs is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certs.cert_path, certs.key_path)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def posts(self, path=None):
        return [r for r in list(self.records) if path is None or r[1] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(*args, **kwargs):
        receiver = Receiver(*args, **kwargs)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


def verify(record, secret):
    expected = "sha256=" + hmac.new(secret.encode(), record[3], hashlib.sha256).hexdigest()
    return hmac.compare_digest(record[2].get("X-Doorline-Signature", ""), expected)


def test_signed_posts_filtered_per_webhook(receivers, house_stations):
    receiver = receivers()
    station = house_stations({"webhooks": [
        {"url": receiver.url("/buttons"), "events": ["button"], "secret": SECRET},
        {"url": receiver.url("/all"), "secret": OTHER_SECRET}]})
    # the admin password set at start: an event for /all only
    assert wait_until(lambda: receiver.posts("/all"), 5)
    delays = []
    for _ in range(5):
        began = time.monotonic()
        station.press("call")
        assert wait_until(lambda t=began: [r for r in receiver.posts("/buttons") if r[0] >= t],
                          5, 0.005), station.fw.log[-3000:]
        delays.append([r for r in receiver.posts("/buttons") if r[0] >= began][0][0] - began)
        time.sleep(0.4)  # presses closer than 0.3 s are one press (debounce)
    posts = receiver.posts("/buttons")
    assert len(posts) == 5
    for record in posts:
        event = json.loads(record[3])
        assert event["type"] == "button" and event["role"] == "call"
        assert record[2]["X-Doorline-Event"] == "button"
        assert record[2]["Content-Type"] == "application/json"
        assert verify(record, SECRET)
        assert not verify(record, OTHER_SECRET)
    assert wait_until(lambda: len([r for r in receiver.posts("/all")
                                   if json.loads(r[3])["type"] == "button"]) == 5, 5)
    every = receiver.posts("/all")
    assert {json.loads(r[3])["type"] for r in every} >= {"admin_password_set", "button"}
    assert all(verify(r, OTHER_SECRET) for r in every)
    print(f"button press (API) → webhook POST: median {statistics.median(delays) * 1000:.1f} ms,"
          f" max {max(delays) * 1000:.1f} ms")


def test_500_is_retried_with_back_off(receivers, house_stations):
    receiver = receivers(statuses=(500, 500, 200))
    station = house_stations({"webhooks": [
        {"url": receiver.url("/hook"), "events": ["button"], "secret": SECRET}]})
    station.press("call")
    assert wait_until(lambda: len(receiver.posts()) >= 3, 10, 0.01), station.fw.log[-3000:]
    times = [r[0] for r in receiver.posts()]
    bodies = {r[3] for r in receiver.posts()}
    assert len(bodies) == 1, "the same event each time"
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert 0.9 <= gaps[0] < 2.0 and 1.9 <= gaps[1] < 3.5, gaps
    time.sleep(1.5)
    assert len(receiver.posts()) == 3, "delivered: no more attempts"
    station.fw.wait_log(r"webhook .*: event \d+: HTTP 500; retrying in 1 s", 2)
    status, metrics = station.request("GET", "/metrics")
    assert status == 200 and b"doorline_webhook_deliveries_total 1\n" in metrics
    assert b"doorline_webhook_failures_total 0\n" in metrics
    print(f"500, 500, 200: attempts {[round(g, 2) for g in gaps]} s apart")


def test_https_certificate_verified(receivers, house_stations, tmp_path):
    certs = make_certificates(tmp_path / "certs")
    receiver = receivers(certs=certs)
    station = house_stations({"webhooks": [
        {"url": receiver.url("/trusted"), "events": ["button"], "secret": SECRET,
         "tls_ca": os.fspath(certs.ca_path)},
        {"url": receiver.url("/untrusted"), "events": ["button"], "secret": SECRET}]})
    station.press("call")
    assert wait_until(lambda: receiver.posts("/trusted"), 5), station.fw.log[-3000:]
    assert verify(receiver.posts("/trusted")[0], SECRET)
    station.fw.wait_log(r"webhook https://127\.0\.0\.1:\d+/untrusted: event \d+: .*"
                        r"CERTIFICATE_VERIFY_FAILED", 5)
    assert not receiver.posts("/untrusted")


class BusyPhone:
    """A UDP socket that answers every INVITE with 486 Busy Here and records when it came."""

    def __init__(self):
        self.port = free_port(("udp",))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.invites = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            if not data.startswith(b"INVITE "):
                continue
            self.invites.append(time.monotonic())
            head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            keep = [h for h in head[1:] if h.split(b":", 1)[0].strip().lower() in
                    (b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq")]
            keep = [h + b";tag=busy" if h.lower().startswith((b"to:", b"t:")) and
                    b"tag=" not in h else h for h in keep]
            reply = b"\r\n".join([b"SIP/2.0 486 Busy Here", *keep, b"Content-Length: 0"])
            self.sock.sendto(reply + b"\r\n\r\n", peer)

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


def press_to_invite(station, phone, presses=5):
    delays = []
    for _ in range(presses):
        seen = len(phone.invites)
        began = time.monotonic()
        station.press("call")
        assert wait_until(lambda s=seen: len(phone.invites) > s, 5, 0.002), \
            station.fw.log[-3000:]
        delays.append(phone.invites[seen] - began)
        assert wait_until(lambda: not station.api("GET", "/api/status")["calls"], 5, 0.05)
        time.sleep(0.4)
    return delays


def test_dead_receivers_do_not_delay_calls(house_stations):
    phone = BusyPhone()
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind(("127.0.0.1", 0))
    dead.listen(64)  # connections complete in the backlog; nobody ever reads or answers
    try:
        target = f"sip:flat1@127.0.0.1:{phone.port}"
        config = {"buttons": [{"role": "call", "targets": [target]}]}
        plain = house_stations(dict(config))
        without = press_to_invite(plain, phone)
        plain.fw.stop()
        # a webhook receiver and an MQTT "broker" that accept connections and never answer
        dead_address = f"127.0.0.1:{dead.getsockname()[1]}"
        hooked = house_stations({**config, "webhooks": [
            {"url": f"http://{dead_address}/never", "secret": SECRET}],
            "mqtt": {"broker": dead_address}})
        with_hook = press_to_invite(hooked, phone)
        median_without = statistics.median(without)
        median_with = statistics.median(with_hook)
        print(f"button → INVITE: without a webhook median {median_without * 1000:.1f} ms "
              f"(max {max(without) * 1000:.1f}); with a webhook receiver and an MQTT broker "
              "that never answer median "
              f"{median_with * 1000:.1f} ms (max {max(with_hook) * 1000:.1f})")
        assert median_with < median_without + 0.05, (without, with_hook)
        assert max(with_hook) < 1.0
        # the webhook is indeed stuck: its first event is still waiting for an answer
        hooked.fw.wait_log(r"webhook http://127\.0\.0\.1:\d+/never: event \d+: no answer", 10)
    finally:
        phone.close()
        dead.close()
