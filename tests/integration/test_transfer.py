"""Being transferred (issue 20): REFER (RFC 3515) from real phones, attended transfer
(RFC 3891 Replaces, by REFER and by INVITE), and hostile REFERs.

- Blind transfer by baresip's own `transfer` command through Kamailio: the concierge calls
  the door (the station auto-answers it); a transfer to a premium-looking number nobody
  allowed is refused (403, `transfer_refused`, nothing dialled; baresip then ends that call
  itself); on a new call it transfers the door to flat1; flat1 rings and answers
  (auto-answer), the station and flat1 hear each other (the station's 1 kHz microphone in
  flat1's recording, flat1's 440 Hz in the station's speaker file of the new call), the
  concierge's call is gone, and the event log says `transferred` (from, to).
- Hostile REFERs against an answered direct-IP call from a raw socket: a premium-looking
  target, a tel: URI, a Refer-To with an injected Route header, the right Call-ID and tags sent
  from another port, and a REFER outside any dialog: each gets 403 (or 481), no INVITE leaves
  the station, and each is logged as `transfer_refused`.
"""

import socket
import time
import uuid

import pytest

from tests.integration.helpers import raw_offer, receive
from tests.integration.test_calls_baresip import PHONE_HZ, _tone_report, tone_found
from tests.integration.test_calls_sipp import MIC_HZ, events, start_station
from tests.peers.fixtures import CONCIERGE_USER, FLAT1_USER
from tests.peers.process import free_port
from tests.peers.sipp import start_sipp

pytestmark = pytest.mark.peers

CONCIERGE = f"sip:{CONCIERGE_USER}@127.0.0.1"
FLAT1 = f"sip:{FLAT1_USER}@127.0.0.1"
CONCIERGE_HZ = 600
TALK_S = 2.5


def test_blind_transfer_by_baresip_through_kamailio(kamailio, baresip_factory, tmp_path):
    concierge = baresip_factory(CONCIERGE_USER, registrar=kamailio, tone_hz=CONCIERGE_HZ)
    flat1 = baresip_factory(FLAT1_USER, registrar=kamailio, tone_hz=PHONE_HZ)
    concierge.wait_registered(10)
    flat1.wait_registered(10)
    station = start_station(tmp_path / "station", registrar=kamailio, allow=(CONCIERGE,),
                            buttons=[{"role": "call", "targets": [FLAT1]}])
    try:
        # first a target nobody allowed (a premium-looking number): 403, nothing dialled
        concierge.dial(f"sip:door@127.0.0.1:{kamailio.udp_port}")
        concierge.wait_event("CALL_ESTABLISHED", 10)
        concierge.command("transfer", "sip:+19005550199@127.0.0.1")
        station.wait_log(r"REFER on call \S+ refused \(403\)", timeout=5)
        try:  # baresip 1.0.0 ends its call itself after a refused transfer
            station.wait_log(r"call \S+ ended", timeout=3)
        except AssertionError:
            concierge.command("hangup")
            station.wait_log(r"call \S+ ended", timeout=5)
        assert station.count_log(r"call \S+ ended: remote hangup") == 1  # not ended by us
        assert station.count_log(r"transferring to") == 0
        # then flat1
        concierge.dial(f"sip:door@127.0.0.1:{kamailio.udp_port}")
        concierge.wait_event("CALL_ESTABLISHED", 10)
        second_call = len(concierge.events)
        time.sleep(0.5)
        response = concierge.command("transfer", FLAT1)
        assert response.get("ok"), response
        flat1.wait_event("CALL_ESTABLISHED", 10)
        concierge.wait_event("CALL_CLOSED", 10, since=second_call)
        time.sleep(TALK_S)
        assert not [e for e in flat1.events if e.get("type") == "CALL_CLOSED"], \
            "flat1's call ended early"
        mark = station.log_offset()
        flat1.hangup()
        flat1.wait_event("CALL_CLOSED", 5)
        station.wait_log(r"call \S+ ended: remote hangup", timeout=5, since=mark)
    finally:
        station.stop()
        print(f"--- firmware log (tail) ---\n{station.log[-6000:]}")
    transferred = events(station, "transferred")
    assert len(transferred) == 1, events(station)
    assert transferred[0]["to"] == FLAT1 and CONCIERGE_USER in transferred[0]["from"]
    refused = events(station, "transfer_refused")
    assert [(e["to"], e["status"]) for e in refused] == [("sip:+19005550199@127.0.0.1", 403)]
    # the station's speaker files: the concierge's call (600 Hz), then flat1's (440 Hz)
    speaker = sorted(station.speaker_dir.glob("*.wav"))
    flat1_calls = [p for p in speaker if tone_found(p, PHONE_HZ)]
    assert len(flat1_calls) == 1, [_tone_report(p, PHONE_HZ) for p in speaker]
    print(f"station heard flat1: {_tone_report(flat1_calls[0], PHONE_HZ)}")
    recordings = flat1.recordings("dec")
    assert recordings and tone_found(recordings[-1], MIC_HZ), \
        [_tone_report(p, MIC_HZ) for p in recordings]
    print(f"flat1 heard the door: {_tone_report(recordings[-1], MIC_HZ)}")


# -- hostile REFERs ---------------------------------------------------------------------------

class RawPhone:
    """A caller on a raw UDP socket: enough SIP to hold one answered call and send REFERs."""

    def __init__(self, station_port, user="concierge"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.station_port = station_port
        self.user = user
        self.call_id = uuid.uuid4().hex
        self.from_tag = uuid.uuid4().hex[:8]
        self.to_tag = None
        self.cseq = 1

    def close(self):
        self.sock.close()

    def request(self, method, extra="", body="", call_id=None, to_tag=None, sock=None,
                cseq=None):
        sock = sock or self.sock
        port = sock.getsockname()[1]
        cseq = cseq or self.cseq
        to = f"<sip:door@127.0.0.1:{self.station_port}>"
        if to_tag:
            to += f";tag={to_tag}"
        text = (f"{method} sip:door@127.0.0.1:{self.station_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]}"
                f";rport\r\n"
                f"From: <sip:{self.user}@127.0.0.1>;tag={self.from_tag}\r\n"
                f"To: {to}\r\nCall-ID: {call_id or self.call_id}\r\n"
                f"CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
                f"Contact: <sip:{self.user}@127.0.0.1:{port}>\r\n{extra}"
                f"Content-Length: {len(body.encode())}\r\n\r\n{body}")
        sock.sendto(text.encode(), ("127.0.0.1", self.station_port))

    def call(self):
        body = raw_offer("127.0.0.1", self.port)
        self.request("INVITE", "Content-Type: application/sdp\r\n", body)
        ok = receive(self.sock, 5, "SIP/2.0 200")
        assert ok, "the station did not answer"
        to = next(line for line in ok.split("\r\n") if line.lower().startswith("to:"))
        self.to_tag = to.split("tag=")[1].split(";")[0].strip()
        self.request("ACK", to_tag=self.to_tag)

    def refer(self, refer_to, **options):
        self.cseq += 1
        self.request("REFER", f"Refer-To: {refer_to}\r\nReferred-By: <sip:{self.user}"
                              f"@127.0.0.1>\r\n", **options)


def _status(text):
    return int(text.split(" ", 2)[1]) if text else None


def test_hostile_refers_dial_nothing_and_are_logged(tmp_path):
    # where a dialled "premium" target would ring: nothing may arrive here
    trap = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    trap.bind(("127.0.0.1", 0))
    trap_port = trap.getsockname()[1]
    station = start_station(tmp_path / "station", allow=(CONCIERGE,), buttons=[
        {"role": "call", "targets": [f"sip:flat1@127.0.0.1:{trap_port + 2}"]}])
    phone = RawPhone(station.port)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    answers = {}
    try:
        phone.call()
        cases = [
            ("premium-looking target", f"<sip:+19005550199@127.0.0.1:{trap_port}>", {}),
            ("tel: URI", "<tel:+19005550199>", {}),
            ("injected Route header",
             f"<sip:flat1@127.0.0.1:{trap_port + 2}?Route=%3Csip:127.0.0.1:{trap_port}%3E>",
             {}),
            ("third party with the dialog's Call-ID and tags",
             f"<sip:flat1@127.0.0.1:{trap_port + 2}>", {"sock": other}),
        ]
        for name, refer_to, options in cases:
            phone.refer(refer_to, to_tag=phone.to_tag, **options)
            answers[name] = _status(receive(options.get("sock", phone.sock), 3, "SIP/2.0"))
        # outside a dialog: a fresh Call-ID, no To tag
        phone.refer(f"<sip:flat1@127.0.0.1:{trap_port + 2}>", call_id=uuid.uuid4().hex)
        answers["outside a dialog"] = _status(receive(phone.sock, 3, "SIP/2.0"))
        print("hostile REFERs and the station's answers:", answers)
        assert all(status in (403, 481) for status in answers.values()), answers
        assert receive(trap, 1.0, "INVITE") is None, "the station dialled a REFER target"
        phone.cseq += 1
        phone.request("BYE", to_tag=phone.to_tag)
        assert _status(receive(phone.sock, 3, "SIP/2.0")) == 200
    finally:
        station.stop()
        phone.close()
        other.close()
        trap.close()
        print(f"--- firmware log (tail) ---\n{station.log[-6000:]}")
    refused = events(station, "transfer_refused")
    assert len(refused) == 5, refused
    assert not events(station, "transferred") and not events(station, "transfer")
    assert station.count_log(r"INVITE sip:\+1900") == 0


# -- attended transfer ------------------------------------------------------------------------
# SIPp plays the referrer (the concierge, who consulted flat1 on a call of its own) and flat1;
# the REFER's Refer-To carries that consultation call's Replaces (RFC 3891 §3), which the
# station must put on its INVITE to flat1 together with Referred-By (RFC 3892).
CONSULT_REPLACES = "consult-1@127.0.0.1;to-tag=flat-tag;from-tag=concierge-tag"


def _referrer_scenario(flat_port):
    escaped = CONSULT_REPLACES.replace("@", "%40").replace(";", "%3B").replace("=", "%3D")
    common = """Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:concierge@127.0.0.1>;tag=[pid]SIPpTag00[call_number]
      Call-ID: [call_id]
      Contact: <sip:concierge@[local_ip]:[local_port]>
      Max-Forwards: 70"""
    ok = """SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0"""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="attended-transfer-referrer">
  <send retrans="500"><![CDATA[
      INVITE sip:door@[remote_ip]:[remote_port] SIP/2.0
      {common}
      To: <sip:door@[remote_ip]:[remote_port]>
      CSeq: 1 INVITE
      Content-Type: application/sdp
      Content-Length: [len]

v=0
o=sipp 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
      ACK [next_url] SIP/2.0
      {common}
      [last_To:]
      CSeq: 1 ACK
      Content-Length: 0
]]></send>
  <pause milliseconds="300"/>
  <send retrans="500"><![CDATA[
      REFER [next_url] SIP/2.0
      {common}
      [last_To:]
      CSeq: 2 REFER
      Refer-To: <sip:flat1@127.0.0.1:{flat_port}?Replaces={escaped}>
      Referred-By: <sip:concierge@127.0.0.1>
      Content-Length: 0
]]></send>
  <recv response="202"/>
  <recv request="NOTIFY">
    <action><ereg regexp="SIP/2.0 100" search_in="body" check_it="true" assign_to="n1"/></action>
  </recv>
  <send><![CDATA[
      {ok}
      X-Seen: [$n1]
]]></send>
  <recv request="NOTIFY">
    <action><ereg regexp="SIP/2.0 200" search_in="body" check_it="true" assign_to="n2"/></action>
  </recv>
  <send><![CDATA[
      {ok}
      X-Seen: [$n2]
]]></send>
  <recv request="BYE"/>
  <send><![CDATA[
      {ok}
]]></send>
</scenario>
"""


TRANSFER_TARGET_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="attended-transfer-target">
  <recv request="INVITE">
    <action>
      <ereg regexp="consult-1@127.0.0.1;to-tag=flat-tag;from-tag=concierge-tag"
            search_in="hdr" header="Replaces:" check_it="true" assign_to="replaces"/>
      <ereg regexp="sip:concierge@127.0.0.1" search_in="hdr" header="Referred-By:"
            check_it="true" assign_to="referred"/>
    </action>
  </recv>
  <send retrans="500"><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:flat1@[local_ip]:[local_port]>
      X-Seen: [$replaces] [$referred]
      Content-Type: application/sdp
      Content-Length: [len]

v=0
o=sipp 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
]]></send>
</scenario>
"""


def test_attended_transfer_by_refer_with_replaces(tmp_path):
    flat_port = free_port(("udp",))
    flat = f"sip:flat1@127.0.0.1:{flat_port}"
    station = start_station(tmp_path / "station", allow=(CONCIERGE,),
                            buttons=[{"role": "call", "targets": [flat]}])
    target = start_sipp(TRANSFER_TARGET_UAS, None, local_port=flat_port,
                        workdir=tmp_path / "flat1", timeout=20)
    referrer = start_sipp(_referrer_scenario(flat_port), ("127.0.0.1", station.port),
                          workdir=tmp_path / "concierge", timeout=20)
    try:
        referred = referrer.wait(timeout=15)
        station.wait_log(r"call \S+ ended", timeout=5)
    finally:
        station.stop()  # BYE to flat1 (SIGTERM ends every call)
        transferred_to = target.wait(timeout=10)
        print(f"--- firmware log (tail) ---\n{station.log[-5000:]}")
    assert referred.returncode == 0, referred.describe()
    assert transferred_to.returncode == 0, transferred_to.describe()
    moved = events(station, "transferred")
    assert len(moved) == 1 and moved[0]["to"] == flat, events(station)
    assert events(station, "transfer")[0]["attended"] is True


def test_invite_with_replaces_takes_over_the_call(tmp_path):
    """The PBX's attended transfer towards the door: flat1 (allowed) INVITEs with the
    concierge's dialog in Replaces; it is answered and the concierge's call ends with BYE."""
    station = start_station(tmp_path / "station", allow=(CONCIERGE, FLAT1))
    concierge = RawPhone(station.port)
    flat1 = RawPhone(station.port, user="flat1")
    try:
        concierge.call()
        replaces = (f"Replaces: {concierge.call_id};to-tag={concierge.to_tag};"
                    f"from-tag={concierge.from_tag}\r\n")
        body = raw_offer("127.0.0.1", flat1.port)
        flat1.request("INVITE", "Content-Type: application/sdp\r\n" + replaces, body)
        ok = receive(flat1.sock, 5, "SIP/2.0 200")
        assert ok, "the replacing INVITE was not answered"
        flat1.to_tag = ok.split("\r\nTo:")[1].split("tag=")[1].split("\r\n")[0].split(";")[0]
        flat1.request("ACK", to_tag=flat1.to_tag)
        bye = receive(concierge.sock, 5, "BYE")
        assert bye and concierge.call_id in bye, "the replaced call was not ended"
        # a Replaces naming no call of ours: 481, nothing answered
        stranger = RawPhone(station.port, user="flat1")
        stranger.request("INVITE", "Content-Type: application/sdp\r\n"
                         "Replaces: nope;to-tag=x;from-tag=y\r\n", raw_offer("127.0.0.1", 1))
        assert _status(receive(stranger.sock, 3, "SIP/2.0 4")) == 481
        stranger.close()
    finally:
        station.stop()
        concierge.close()
        flat1.close()
        print(f"--- firmware log (tail) ---\n{station.log[-5000:]}")
