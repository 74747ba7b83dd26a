"""A re-INVITE in the early dialog, before the running station has answered the INVITE.

RFC 3261 §14.2: a UAS that receives a second INVITE on a dialog before it has sent the final
response to the first one MUST answer it 500 with a Retry-After of 0-10 s. Found by the type
checker (issue 13): an offerless re-INVITE while the call rang was answered with our current
SDP, which did not exist yet; building that 200 raised inside the station's loop, so the caller
got no response at all. Now it gets the 500 and the call rings on."""

import socket
import uuid

import pytest

from tests.integration.helpers import raw_offer, receive
from tests.integration.test_calls_sipp import SIPP_CALLER, stations  # noqa: F401 (fixture)

pytestmark = pytest.mark.peers


def header(message, name):
    return next(line.split(":", 1)[1].strip() for line in message.split("\r\n")
                if line.lower().startswith(name.lower() + ":"))


def test_a_reinvite_before_the_answer_gets_500_and_the_call_rings_on(stations):  # noqa: F811
    station = stations(answer_mode="ring")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        host, port = sock.getsockname()
        target = f"sip:door@127.0.0.1:{station.port}"
        sdp = raw_offer(host, port)
        tag, call_id = uuid.uuid4().hex[:8], uuid.uuid4().hex

        def request(method, cseq, to, body="", branch=None):
            lines = [f"{method} {target} SIP/2.0",
                     f"Via: SIP/2.0/UDP {host}:{port};branch="
                     f"{branch or 'z9hG4bK' + uuid.uuid4().hex[:12]};rport",
                     "Max-Forwards: 70", f"From: <{SIPP_CALLER}>;tag={tag}", f"To: {to}",
                     f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
                     f"Contact: <sip:raw@{host}:{port}>", f"Content-Length: {len(body)}"]
            if body:
                lines.insert(-1, "Content-Type: application/sdp")
            sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(),
                        ("127.0.0.1", station.port))

        invite_branch = "z9hG4bK" + uuid.uuid4().hex[:12]
        request("INVITE", 1, f"<{target}>", sdp, branch=invite_branch)
        ringing = receive(sock, 3.0, "SIP/2.0 180 ")
        assert ringing is not None, station.log[-3000:]
        to = header(ringing, "To")
        request("INVITE", 2, to)  # offerless, in the early dialog
        refused = receive(sock, 3.0, "SIP/2.0 500 ")
        print(f"re-INVITE before the answer: {refused.splitlines()[0] if refused else None}")
        assert refused is not None, station.log[-3000:]
        assert header(refused, "CSeq") == "2 INVITE"
        assert 0 <= int(header(refused, "Retry-After")) <= 10
        # The call rings on: a CANCEL ends it with 487 to the INVITE (§9.2).
        lines = [f"CANCEL {target} SIP/2.0",
                 f"Via: SIP/2.0/UDP {host}:{port};branch={invite_branch};rport",
                 "Max-Forwards: 70", f"From: <{SIPP_CALLER}>;tag={tag}", f"To: <{target}>",
                 f"Call-ID: {call_id}", "CSeq: 1 CANCEL", "Content-Length: 0"]
        sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), ("127.0.0.1", station.port))
        assert receive(sock, 3.0, "SIP/2.0 487 ") is not None, station.log[-3000:]
        assert "Traceback" not in station.log, station.log[-3000:]
    finally:
        sock.close()
