"""No toll fraud through redirects (issue 12), against the running station.

The station registers at Kamailio. The call button rings a SIPp UAS reached through Kamailio
(a target that is no Kamailio user is relayed to its Request-URI); the UAS answers
`302 Moved Temporarily` with a Contact that looks like a premium-rate number,
`sip:0900123456@127.0.0.1:<port>`, where a plain UDP socket of the test listens. Before the fix
the station sent a new INVITE to that Contact (through Kamailio, which relayed it; a PBX that
challenges it got the station's credentials) and the premium socket received it.

Expected: not one datagram reaches the premium socket, the call ends (the 3xx is final), and a
`redirect_refused` event names the call's configured target and the refused URI. Both with the
default configuration and with `[calls] follow_redirects = true` (the Contact is not one of the
button's targets).
"""

import socket
import time

import pytest

from tests.integration.test_door_station import DoorStation, door_config
from tests.peers.process import free_port, wait_until
from tests.peers.sipp import start_sipp

pytestmark = pytest.mark.peers

PREMIUM_USER = "0900123456"


def redirect_scenario(contact):
    """Answer one INVITE with 302 to `contact`, take the (hop-by-hop) ACK."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="redirect-to-premium">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 302 Moved Temporarily
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <{contact}>
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


@pytest.mark.parametrize("follow", [None, True], ids=["default", "follow_redirects"])
def test_302_to_a_premium_number_reaches_nothing_and_is_logged(tmp_path, kamailio,
                                                               follow):
    premium = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    premium.bind(("127.0.0.1", free_port(("udp",))))
    premium_uri = f"sip:{PREMIUM_USER}@127.0.0.1:{premium.getsockname()[1]}"
    sipp_port = free_port(("udp", "tcp"))
    target = f"sip:flat9@127.0.0.1:{sipp_port}"  # not a Kamailio user: relayed to the UAS
    calls = {"ring_timeout_s": 15, "max_calls": 1}
    if follow is not None:
        calls["follow_redirects"] = follow
    config = door_config(kamailio, calls=calls,
                         buttons=[{"role": "call", "targets": [target]}])
    station = DoorStation(tmp_path / "station", config)
    uas = start_sipp(redirect_scenario(premium_uri), None, local_port=sipp_port,
                     workdir=tmp_path / "sipp", timeout=15)
    try:
        station.start(kamailio)
        station.require_api()
        mark = station.event_count()
        station.press("call")
        result = uas.wait(timeout=20)
        # Whatever the station does with the 302 happens within a few round trips on
        # loopback; an INVITE (and its retransmissions) to the premium socket would show here.
        received = []
        premium.settimeout(0.1)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                received.append(premium.recvfrom(65535))
            except TimeoutError:
                continue
        refused = station.events("redirect_refused")
        ended = station.wait_event("call", 5.0, since=mark,
                                   match=lambda e: e.get("outcome") == "unanswered")
        idle = wait_until(lambda: not station.status().get("calls"), 3.0, 0.05)
    finally:
        uas.stop()
        premium.close()
        station.fw.kill()
    print(f"{'follow_redirects' if follow else 'default'}: datagrams to the premium target "
          f"{premium_uri}: {len(received)}; events: {refused}")
    assert received == [], (
        f"{len(received)} datagram(s) reached the premium target, first:\n"
        f"{received[0][0][:600].decode(errors='replace')}{station.describe()}")
    assert result.returncode == 0, result.describe() + station.describe()
    assert len(refused) == 1, f"redirect_refused events: {refused}{station.describe()}"
    assert refused[0]["target"] == target, refused
    assert refused[0]["uri"] == premium_uri, refused
    assert refused[0]["reason"] == ("not a configured target" if follow else
                                    "redirects are not followed"), refused
    assert ended[0].get("status") == 302, ended
    assert idle, f"the call is still up{station.describe()}"
    relayed = kamailio.log.count(f"REQ INVITE sip:{PREMIUM_USER}@")
    assert relayed == 0, f"Kamailio saw {relayed} INVITE(s) to the premium number"
