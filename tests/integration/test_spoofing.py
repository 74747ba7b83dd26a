"""A stranger impersonates the concierge by sending INVITEs straight to the station (issue 5).

The station is registered at Kamailio, so only requests that come from the registrar's address and
port are trusted (docs/CONFIG.md, "Trust").
The stranger is a raw UDP socket on loopback that writes its own INVITE with
`From: sip:concierge@127.0.0.1` — the allowed caller, whose door code is known to it — and then
tries every way to type that code: SIP INFO (application/dtmf-relay, RFC 6086 style) in whatever
dialog the station's responses set up, and RFC 4733 telephone-events sprayed at every port of the
station's (small) RTP range as well as at any port an SDP of the station names.

Expected: never a 200 for the INVITE (a 403, or only ringing), a `caller_rejected` event naming
the packet's real source address, and no `door_open` event; the relay stays closed. As a
control, the real concierge calling through Kamailio right afterwards is answered and opens the
door (so a station that rejects everyone, or that a stranger can lock out, fails this test).
The `forged_via` variant also forges the top Via and a Record-Route naming the registrar: trust
must come from where the packet came from, not from what its headers claim.
"""

import json
import os
import socket
import time

import pytest

from tests.integration.test_door_station import (  # noqa: F401  (door_station is a fixture)
    CONCIERGE,
    DOOR_CODE,
    PHONE_HZ,
    door_station,
    phone_calls_station,
    send_code,
    wait_established,
)
from tests.peers.capture import dtmf_packets
from tests.peers.fixtures import CONCIERGE_USER
from tests.peers.process import free_port

pytestmark = pytest.mark.peers

SDP = """v=0
o=stranger 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio {rtp_port} RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
"""


def _token():
    return os.urandom(6).hex()


def _header(message, name):
    for line in message.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def _status(message):
    parts = message.split(" ", 2)
    return int(parts[1]) if message.startswith("SIP/2.0 ") and parts[1].isdigit() else None


def _sdp_audio_port(message):
    body = message.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in message else ""
    for line in body.splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    return None


class Stranger:
    """A hand-written SIP UAC on one UDP socket plus an RTP socket; every wait is bounded."""

    def __init__(self, station_port):
        self.station = ("127.0.0.1", station_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", free_port(("udp",))))
        self.port = self.sock.getsockname()[1]
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", free_port(("udp",), 10000, 19998)))
        self.rtp_port = self.rtp.getsockname()[1]
        self.call_id = f"{_token()}@stranger"
        self.from_tag = _token()
        self.branch = "z9hG4bK" + _token()
        self.cseq = 1
        self.to_tag = None
        self.received = []  # every message the station sent us, in order

    def close(self):
        self.sock.close()
        self.rtp.close()

    def _via(self, branch, forged_via):
        if forged_via is not None:
            # rport (RFC 3581 §4) asks for the response at the packet's real source anyway.
            return f"SIP/2.0/UDP {forged_via[0]}:{forged_via[1]};branch={branch};rport"
        return f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport"

    def request(self, method, cseq, branch, body="", content_type=None, extra=(),
                forged_via=None):
        to = f"<sip:door@127.0.0.1:{self.station[1]}>"
        if self.to_tag and method not in ("CANCEL",):
            to += f";tag={self.to_tag}"
        lines = [
            f"{method} sip:door@127.0.0.1:{self.station[1]} SIP/2.0",
            f"Via: {self._via(branch, forged_via)}",
            "Max-Forwards: 70",
            f'From: "Concierge" <{CONCIERGE}>;tag={self.from_tag}',
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:concierge@127.0.0.1:{self.port}>",
            *extra,
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        payload = body.replace("\n", "\r\n") if body and "\r\n" not in body else body
        lines.append(f"Content-Length: {len(payload.encode())}")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + payload).encode(), self.station)

    def collect(self, until, timeout):
        """Read messages until `until(message)` is true or `timeout`; returns the new ones."""
        new = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            message = data.decode(errors="replace")
            if not message.strip():
                continue  # keep-alive
            new.append(message)
            self.received.append(message)
            to = _header(message, "To") or ""
            if ";tag=" in to and _status(message) is not None and "INVITE" in (
                    _header(message, "CSeq") or ""):
                self.to_tag = to.split(";tag=", 1)[1].split(";")[0]
            if until(message):
                break
        return new

    def invite(self, forged_via=None, extra=()):
        """INVITE with retransmissions (RFC 3261 §17.1.1.2) until a response or 2 s."""
        body = SDP.format(rtp_port=self.rtp_port)
        for wait in (0.5, 1.0, 0.5):
            self.request("INVITE", 1, self.branch, body, "application/sdp", extra, forged_via)
            if self.collect(lambda m: _status(m) is not None, wait):
                return
        return

    def invite_statuses(self):
        return [_status(m) for m in self.received
                if _status(m) is not None and (_header(m, "CSeq") or "").endswith("INVITE")]

    def ack(self, forged_via=None):
        """ACK a final response: same branch for a non-2xx (§17.1.1.3), a new one for 2xx."""
        final = [s for s in self.invite_statuses() if s >= 200]
        branch = "z9hG4bK" + _token() if final and final[-1] < 300 else self.branch
        self.request("ACK", 1, branch, forged_via=forged_via)

    def send_info_digits(self, digits, forged_via=None):
        for digit in digits:
            self.cseq += 1
            self.request("INFO", self.cseq, "z9hG4bK" + _token(),
                         f"Signal={digit}\r\nDuration=160\r\n", "application/dtmf-relay",
                         forged_via=forged_via)
            self.collect(lambda m: _status(m) is not None and "INFO" in (
                _header(m, "CSeq") or ""), 0.3)

    def spray_rfc4733(self, digits, ports):
        """One continuous telephone-event stream per destination port, paced in real time."""
        streams = [dtmf_packets(digits, src=("127.0.0.1", self.rtp_port), dst=("127.0.0.1", p))
                   for p in ports]
        began = time.monotonic()
        first = streams[0][0].ts if streams and streams[0] else 0.0
        for step in zip(*streams, strict=True):
            delay = began + (step[0].ts - first) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for packet in step:
                self.rtp.sendto(packet.payload, packet.dst)


def _rtp_ports(station):
    low, high = (int(p) for p in station.fw.config["media"]["rtp_ports"].split("-"))
    return list(range(low, high + 1))


@pytest.mark.parametrize("variant", ["plain", "forged_via"])
def test_spoofed_concierge_sent_straight_to_the_station_is_neither_answered_nor_opens_door(
        kamailio, baresip_factory, door_station, variant):  # noqa: F811 (imported fixture)
    station = door_station()  # registered at Kamailio (DoorStation.start waits for it)
    station.wait_api(3.0)
    forged_via = ("127.0.0.1", kamailio.udp_port) if variant == "forged_via" else None
    extra = (f"Record-Route: <sip:127.0.0.1:{kamailio.udp_port};lr>",) if forged_via else ()
    mark = station.event_count()
    stranger = Stranger(station.fw.port)
    try:
        stranger.invite(forged_via, extra)
        # A final answer, or ringing that goes on: either way give it a bounded look.
        stranger.collect(lambda m: (_status(m) or 0) >= 200, 3.0)
        statuses = stranger.invite_statuses()
        answered = 200 in statuses
        if any(s >= 200 for s in statuses):
            stranger.ack(forged_via)
        # Type the concierge's code every way a stranger can.
        stranger.send_info_digits(DOOR_CODE + "#", forged_via)
        ports = set(_rtp_ports(station))
        ports.update(p for p in map(_sdp_audio_port, stranger.received) if p)
        stranger.spray_rfc4733(DOOR_CODE + "#", sorted(ports))
        time.sleep(0.5)
        opened = station.events("door_open")
        relay = station.status()["door"]["relay"] if station.api_ready else None
        # Leave nothing behind: BYE if it was answered, CANCEL if it still rings.
        if answered:
            stranger.cseq += 1
            stranger.request("BYE", stranger.cseq, "z9hG4bK" + _token(), forged_via=forged_via)
        elif not any(s >= 200 for s in statuses):
            stranger.request("CANCEL", 1, stranger.branch, forged_via=forged_via)
            stranger.collect(lambda m: (_status(m) or 0) >= 300, 2.0)
            if any(s >= 300 for s in stranger.invite_statuses()):
                stranger.ack(forged_via)
        stranger.collect(lambda m: False, 0.3)
    finally:
        stranger.close()

    print(f"{variant}: INVITE statuses seen by the stranger: {statuses}")
    received = "\n".join(m.split("\r\n", 1)[0] for m in stranger.received)
    context = f"\n--- responses to the stranger ---\n{received}{station.describe()}"
    assert not answered, f"the spoofed INVITE was answered with 200{context}"
    assert not opened, f"the stranger opened the door: {opened}{context}"
    assert relay in (None, "closed"), f"relay {relay} after the stranger's DTMF{context}"
    # Both Vias carry rport (RFC 3581 §4): the responses come back to the real source.
    assert statuses, f"the station sent no response to the INVITE{context}"
    assert set(statuses) <= {100, 180, 183, 403, 480, 486, 487}, f"{statuses}{context}"
    new_events = station.events()[mark:]
    assert not [e for e in new_events if e.get("outcome") == "auto-answered"], context

    # Control: the real concierge, through the registrar, is answered and opens the door; the
    # stranger's attempts neither broke the station nor locked the concierge out.
    concierge = baresip_factory(CONCIERGE_USER, registrar=kamailio, tone_hz=PHONE_HZ)
    concierge.wait_registered(5)
    mark = station.event_count()
    since = phone_calls_station(concierge, kamailio)
    wait_established(concierge, station, since)
    played = send_code(concierge, DOOR_CODE)
    station.wait_event("door_open", played + 2.0, since=mark)
    concierge.hangup()

    rejected = [e for e in new_events if e.get("type") == "caller_rejected"]
    assert rejected, f"no caller_rejected event for the spoofed call{context}"
    # The real source of the packets, whatever the Via said.
    assert f"127.0.0.1:{stranger.port}" in json.dumps(rejected[0]), (
        f"caller_rejected does not name the source 127.0.0.1:{stranger.port}: {rejected[0]}")
    assert "concierge" in json.dumps(rejected[0]), rejected[0]
    station.check_event_ids()
