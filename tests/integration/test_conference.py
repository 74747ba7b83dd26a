"""A conference of three at the door (`[calls] conference = true`, issue 20).

The concierge (600 Hz) calls the door through Kamailio and is auto-answered; flat1 (440 Hz)
calls while that call is up and joins. The station (1 kHz microphone) mixes locally, so each
baresip recording must carry the two other parties' tones (the door's and the other phone's:
each a clear share of every window's energy), and the station's speaker files carry each
phone's own. flat1, the joined party, types its door code and the door opens. When flat1
leaves, the concierge's call goes on; when the concierge hangs up the conference is over.
Also: a REFER with method=INVITE from the current peer brings an allowed target in.
"""

import socket
import statistics
import time

import pytest

from tests.integration.helpers import raw_offer, receive
from tests.integration.test_calls_baresip import tone_windows
from tests.integration.test_calls_sipp import MIC_HZ, events, logged_digits, start_station
from tests.integration.test_transfer import RawPhone
from tests.peers.fixtures import CONCIERGE_USER, FLAT1_USER

pytestmark = pytest.mark.peers

CONCIERGE = f"sip:{CONCIERGE_USER}@127.0.0.1"
FLAT1 = f"sip:{FLAT1_USER}@127.0.0.1"
CONCIERGE_HZ = 600
FLAT1_HZ = 440
TALK_S = 3.0
CODE = "2468"


def share(path, freq, skip_s):
    """The median share of `freq` in the 100 ms windows of the recording after `skip_s`."""
    ratios, _ = tone_windows(path, freq, skip_s=skip_s)
    return statistics.median(ratios) if ratios else 0.0


def test_three_party_conference_each_hears_the_other_two(kamailio, baresip_factory, tmp_path):
    concierge = baresip_factory(CONCIERGE_USER, registrar=kamailio, tone_hz=CONCIERGE_HZ)
    flat1 = baresip_factory(FLAT1_USER, registrar=kamailio, tone_hz=FLAT1_HZ)
    concierge.wait_registered(10)
    flat1.wait_registered(10)
    station = start_station(tmp_path / "station", registrar=kamailio,
                            allow=(CONCIERGE, FLAT1), codes=[(FLAT1, CODE)],
                            calls={"conference": True, "max_parties": 3},
                            # steady tones stand in for voices: the echo canceller and the
                            # AGC (issue 15, tested on their own) act on them by design, so
                            # the mixing is measured without them
                            audio={"noise_suppress": False, "echo_cancel": False,
                                   "agc": False})
    door = f"sip:door@127.0.0.1:{kamailio.udp_port}"
    try:
        concierge.dial(door)
        concierge.wait_event("CALL_ESTABLISHED", 10)
        time.sleep(0.5)
        flat1.dial(door)
        flat1.wait_event("CALL_ESTABLISHED", 10)
        joined_at = time.monotonic()
        time.sleep(TALK_S)
        flat1.send_dtmf(CODE)
        station.wait_log(r"door opened", timeout=5)
        flat1.hangup()
        flat1.wait_event("CALL_CLOSED", 5)
        time.sleep(0.5)
        assert not [e for e in concierge.events if e.get("type") == "CALL_CLOSED"], \
            "the concierge's call ended when flat1 left"
        concierge.hangup()
        concierge.wait_event("CALL_CLOSED", 5)
        station.wait_log(r"call \S+ ended: remote hangup", timeout=5)
        conference_s = time.monotonic() - joined_at
    finally:
        station.stop()
        print(f"--- firmware log (tail) ---\n{station.log[-6000:]}")
    assert logged_digits(station) == CODE
    assert events(station, "door_open"), events(station)
    # The concierge's recording starts before flat1 joined: look at its last part only.
    concierge_rec = concierge.recordings("dec")[-1]
    flat1_rec = flat1.recordings("dec")[-1]
    skip = 1.5  # flat1 joined about 1 s after the concierge's call started
    shares = {
        "concierge hears the door": share(concierge_rec, MIC_HZ, skip + 0.5),
        "concierge hears flat1": share(concierge_rec, FLAT1_HZ, skip + 0.5),
        "flat1 hears the door": share(flat1_rec, MIC_HZ, 0.5),
        "flat1 hears the concierge": share(flat1_rec, CONCIERGE_HZ, 0.5),
        "flat1 does not hear itself": share(flat1_rec, FLAT1_HZ, 0.5),
    }
    print(f"conference {conference_s:.1f} s; median tone shares per 100 ms window: "
          + ", ".join(f"{k} {v:.2f}" for k, v in shares.items()))
    for key in ("concierge hears the door", "concierge hears flat1", "flat1 hears the door",
                "flat1 hears the concierge"):
        assert shares[key] > 0.15, shares
    assert shares["flat1 does not hear itself"] < 0.05, shares
    speaker = sorted(station.speaker_dir.glob("*.wav"))
    heard = sorted((round(share(p, CONCIERGE_HZ, 0.5), 2), round(share(p, FLAT1_HZ, 0.5), 2))
                   for p in speaker)
    print(f"station speaker files (600 Hz share, 440 Hz share): {heard}")
    assert len(speaker) == 2 and any(c > 0.5 for c, _ in heard) and \
        any(f > 0.5 for _, f in heard), heard


def _answer(sock, invite, port, station_port):
    """A raw 200 with an SDP answer to `invite` (text), as flat1's phone."""
    lines = invite.split("\r\n")
    headers = [line for line in lines if line.split(":")[0].lower() in
               ("via", "from", "to", "call-id", "cseq")]
    headers = [h + ";tag=flat1tag" if h.lower().startswith("to:") else h for h in headers]
    body = raw_offer("127.0.0.1", port)
    text = ("SIP/2.0 200 OK\r\n" + "\r\n".join(headers) +
            f"\r\nContact: <sip:flat1@127.0.0.1:{port}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}")
    sock.sendto(text.encode(), ("127.0.0.1", station_port))


def test_refer_with_method_invite_joins_the_target(tmp_path):
    """With a conference, a REFER whose Refer-To names method=INVITE brings the (allowed)
    target in: the station calls it, reports 200 by NOTIFY and keeps the first call up."""
    flat = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flat.bind(("127.0.0.1", 0))
    flat_port = flat.getsockname()[1]
    target = f"sip:flat1@127.0.0.1:{flat_port}"
    station = start_station(tmp_path / "station", allow=(CONCIERGE,),
                            buttons=[{"role": "call", "targets": [target]}],
                            calls={"conference": True, "max_parties": 3})
    concierge = RawPhone(station.port)
    try:
        concierge.call()
        concierge.refer(f"<{target};method=INVITE>", to_tag=concierge.to_tag)
        assert receive(concierge.sock, 3, "SIP/2.0 202"), "REFER not accepted"
        invite = receive(flat, 5, "INVITE")
        assert invite and "Referred-By:" in invite
        _answer(flat, invite, flat_port, station.port)
        assert receive(flat, 3, "ACK")
        notify = receive(concierge.sock, 3, "NOTIFY")
        while notify is not None and "SIP/2.0 200" not in notify.split("\r\n\r\n", 1)[1]:
            notify = receive(concierge.sock, 3, "NOTIFY")
        assert notify, "no NOTIFY with 200"
        assert receive(concierge.sock, 1.5, "BYE") is None, "the first call was ended"
    finally:
        station.stop()
        concierge.close()
        flat.close()
        print(f"--- firmware log (tail) ---\n{station.log[-5000:]}")
    assert events(station, "transfer")[0]["outcome"] == "joining"
    assert not events(station, "transferred")
