"""Whose identity the running station trusts (issue 12), on the wire.

1. Registered, behind a PBX (Kamailio with `invite_auth` and `assert_identity`: a local user's
   INVITE is challenged and gets a `P-Asserted-Identity` naming the authenticated user; any PAI
   a caller brings is removed; a caller that is no local user, as from a PSTN trunk, is relayed
   with whatever From it wrote). A SIPp caller sends From `<sip:+491701234567@127.0.0.1>` (the
   tenant's mobile number, in `[answer] allow`) plus a forged PAI of the same identity.
   With `[answer] identity = "from"` (the default) the From is believed and the call is
   auto-answered: the documented risk. With `identity = "asserted"` it gets 403, and the real
   concierge (baresip, authenticated, PAI added by Kamailio) is still auto-answered.
2. Direct-IP: `allow` holds `sip:sipp@127.0.0.1` and `sip:bob@127.0.0.2`. A raw UAC on
   127.0.0.2 claiming `sip:sipp@127.0.0.1` is refused (it was auto-answered before: any allowed
   address could claim any allowed identity); the same socket as bob, and 127.0.0.1 as sipp,
   are answered.
"""

import socket
import time
import uuid

import pytest

from tests.integration.test_calls_sipp import SIPP_CALLER, stations  # noqa: F401 (fixture)
from tests.integration.test_door_station import (
    CONCIERGE,
    PHONE_HZ,
    DoorStation,
    door_config,
    phone_calls_station,
    wait_established,
)
from tests.peers.fixtures import CONCIERGE_USER, PEER_USERS
from tests.peers.kamailio import Kamailio
from tests.peers.process import MissingBinary, free_port
from tests.peers.sipp import run_sipp, uac_scenario

pytestmark = pytest.mark.peers

MOBILE = "sip:+491701234567@127.0.0.1"  # a caller ID anyone can put in From from the PSTN


@pytest.fixture
def pbx(tmp_path):
    try:
        proxy = Kamailio(tmp_path / "pbx", PEER_USERS, tls=False, invite_auth=True,
                         assert_identity=True)
    except MissingBinary as missing:
        pytest.skip(str(missing))
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
        print(f"--- kamailio log (tail) ---\n{proxy.log[-4000:]}")


def spoofing_scenario(expect_status):
    """SIPp's UAC with From = MOBILE and a forged P-Asserted-Identity of the same caller."""
    xml = uac_scenario(hold_ms=300, expect_status=expect_status)
    xml = xml.replace("From: sipp <sip:sipp@[local_ip]:[local_port]>", f"From: <{MOBILE}>")
    return xml.replace("      Max-Forwards: 70\n      Content-Type: application/sdp",
                       f"      Max-Forwards: 70\n      P-Asserted-Identity: <{MOBILE}>\n"
                       "      Content-Type: application/sdp", 1)


@pytest.mark.parametrize("identity", ["from", "asserted"])
def test_pstn_caller_id_in_from_is_trusted_only_with_identity_from(tmp_path, pbx,
                                                                     baresip_factory, identity):
    config = door_config(pbx, answer={"mode": "auto", "allow": [MOBILE, CONCIERGE],
                                      "max_duration_s": 60, "identity": identity})
    station = DoorStation(tmp_path / "station", config)
    try:
        station.start(pbx)
        mark = station.event_count()
        expected = 200 if identity == "from" else 403
        result = run_sipp(spoofing_scenario(expected), ("127.0.0.1", pbx.udp_port),
                          workdir=tmp_path / "sipp", service="door", timeout=10)
        auto = [e for e in station.events()[mark:]
                if e.get("type") == "call" and e.get("outcome") == "auto-answered"]
        print(f"identity={identity}: spoofed PSTN caller ID {MOBILE}: SIPp expected "
              f"{expected}, returncode {result.returncode}; auto-answered: {len(auto)}")
        assert result.returncode == 0, result.describe() + station.describe()
        if identity == "from":
            assert len(auto) == 1, station.describe()
            return
        assert not auto, station.describe()
        rejected = station.wait_event("caller_rejected", 3.0, since=mark)[0]
        assert rejected["status"] == 403 and rejected["reason"] == "untrusted source", rejected

        # Control: the concierge authenticates at the PBX, which asserts who it is.
        concierge = baresip_factory(CONCIERGE_USER, registrar=pbx, tone_hz=PHONE_HZ)
        concierge.wait_registered(5)
        mark = station.event_count()
        since = phone_calls_station(concierge, pbx)
        wait_established(concierge, station, since)
        auto = station.wait_event("call", 5.0, since=mark,
                                  match=lambda e: e.get("outcome") == "auto-answered")[0]
        assert auto["caller"] == CONCIERGE, auto
        concierge.hangup()
    finally:
        station.fw.kill()


class RawCaller:
    """A UDP UAC bound to `host` that places one INVITE and cleans up after itself."""

    def __init__(self, host):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, free_port(("udp",))))
        self.host, self.port = self.sock.getsockname()

    def close(self):
        self.sock.close()

    def _send(self, lines, station_port, body=""):
        lines = lines + [f"Content-Length: {len(body.encode())}"]
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(),
                         ("127.0.0.1", station_port))

    def call(self, caller, station_port):
        """INVITE as `caller`; returns the final status (None if none within 3 s)."""
        call_id, tag, branch = uuid.uuid4().hex, uuid.uuid4().hex[:8], "z9hG4bK" + \
            uuid.uuid4().hex[:12]
        target = f"sip:door@127.0.0.1:{station_port}"
        head = [f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport",
                "Max-Forwards: 70", f"From: <{caller}>;tag={tag}"]
        sdp = (f"v=0\r\no=raw 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 {self.host}\r\n"
               f"t=0 0\r\nm=audio {self.port + 1} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        invite = [f"INVITE {target} SIP/2.0", *head, f"To: <{target}>", f"Call-ID: {call_id}",
                  "CSeq: 1 INVITE", f"Contact: <sip:raw@{self.host}:{self.port}>",
                  "Content-Type: application/sdp"]
        self._send(invite, station_port, sdp)
        status, to = None, None
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and status is None:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65535).decode(errors="replace")
            except TimeoutError:
                break
            code = int(data.split(" ", 2)[1]) if data.startswith("SIP/2.0 ") else 0
            if code >= 200:
                status = code
                to = next(line[3:].strip() for line in data.split("\r\n")
                          if line.lower().startswith("to:"))
        if status is None:
            return None
        ack_branch = branch if status >= 300 else "z9hG4bK" + uuid.uuid4().hex[:12]
        dialog = [f"From: <{caller}>;tag={tag}", f"To: {to}", f"Call-ID: {call_id}"]
        self._send([f"ACK {target} SIP/2.0",
                    f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={ack_branch};rport",
                    "Max-Forwards: 70", *dialog, "CSeq: 1 ACK"], station_port)
        if status < 300:
            self._send([f"BYE {target} SIP/2.0",
                        f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK"
                        f"{uuid.uuid4().hex[:12]};rport", "Max-Forwards: 70", *dialog,
                        "CSeq: 2 BYE"], station_port)
            self.sock.settimeout(1.0)
            try:
                self.sock.recv(65535)  # the 200 to BYE (or a 2xx retransmission)
            except TimeoutError:
                pass
        return status


def test_direct_ip_identity_is_trusted_only_from_its_own_host(stations):  # noqa: F811
    bob = "sip:bob@127.0.0.2"
    station = stations(allow=(SIPP_CALLER, bob))
    outcomes = {}
    for host, caller in (("127.0.0.2", SIPP_CALLER), ("127.0.0.2", bob),
                         ("127.0.0.1", SIPP_CALLER)):
        raw = RawCaller(host)
        mark = station.log_offset()
        try:
            outcomes[(host, caller)] = raw.call(caller, station.port)
        finally:
            raw.close()
        station.wait_log(r"call \S+ ended", timeout=3, since=mark)
    print(f"direct-IP trust by source: {outcomes}")
    assert outcomes[("127.0.0.2", SIPP_CALLER)] == 403, (outcomes, station.log[-3000:])
    assert outcomes[("127.0.0.2", bob)] == 200, (outcomes, station.log[-3000:])
    assert outcomes[("127.0.0.1", SIPP_CALLER)] == 200, (outcomes, station.log[-3000:])
