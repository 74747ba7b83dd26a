"""The answer in a 183 (early media, RFC 3261 §13.2.1 / RFC 3264) counts when the 200 carries
no SDP (issue 13: the session layer keeps the 18x's answer), against the running station.

The call button rings a SIPp UAS through Kamailio (a target that is no Kamailio user is relayed
to its Request-URI). The UAS answers 183 with an SDP whose m= port is a plain UDP socket of the
test, then 200 OK without a body. Before the session layer the station parsed the missing body
as the answer and failed: no media was sent and the controller never heard that the call was
up. Expected: RTP from the station reaches the 183's address, the call is "established" in the
event log, and a hang-up through the API ends it with BYE.
"""

import socket
import time

import pytest

from tests.integration.test_door_station import DoorStation, door_config
from tests.peers.process import free_port
from tests.peers.sipp import start_sipp

pytestmark = pytest.mark.peers


def early_media_scenario(media_port):
    """183 with SDP (media to 127.0.0.1:`media_port`), 200 without SDP, ACK, then the
    station's BYE."""
    sdp = ("v=0\r\no=sipp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {media_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="early-media-answer">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 183 Session Progress
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

{sdp}
    ]]>
  </send>
  <pause milliseconds="300"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


def test_the_183_answer_is_used_when_the_200_has_no_sdp(tmp_path, kamailio):
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    media.settimeout(0.1)
    sipp_port = free_port(("udp", "tcp"))
    target = f"sip:flat9@127.0.0.1:{sipp_port}"  # not a Kamailio user: relayed to the UAS
    config = door_config(kamailio, buttons=[{"role": "call", "targets": [target]}])
    station = DoorStation(tmp_path / "station", config)
    uas = start_sipp(early_media_scenario(media.getsockname()[1]), None, local_port=sipp_port,
                     workdir=tmp_path / "sipp", timeout=15)
    packets = []
    try:
        station.start(kamailio)
        station.require_api()
        mark = station.event_count()
        station.press("call")
        established = station.wait_event("call", 8.0, since=mark,
                                         match=lambda e: e.get("outcome") == "established")
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                packets.append(media.recvfrom(2048))
            except TimeoutError:
                continue
        station.request("POST", "/api/hangup", {})
        result = uas.wait(timeout=10)
    finally:
        uas.stop()
        media.close()
        station.fw.kill()
    rtp = [data for data, _ in packets if len(data) >= 12 and data[0] >> 6 == 2]
    print(f"RTP packets to the 183's address in 1 s: {len(rtp)}")
    assert established, f"the call never became established{station.describe()}"
    assert len(rtp) >= 20, f"{len(rtp)} RTP packets reached the 183's address" + \
        station.describe()
    assert all(data[1] & 0x7F == 0 for data in rtp)  # PCMU, as the 183 answered
    assert result.returncode == 0, result.describe() + station.describe()
