"""A call from an INVITE without a usable Contact can be hung up by the running station.

RFC 3261 §8.1.1.8 wants a Contact in every INVITE (the dialog's remote target); an RFC 2543
caller may leave it out (RFC 4475 §3.3.15 says to accept that), and `Contact: *` has no URI.
Found by the type checker (issue 13): the station answered such an INVITE with 200, made a
dialog whose remote target was None, and every BYE it then tried (a hang-up, max_duration_s,
a missing ACK) raised ParseError inside the station's loop: no BYE ever left, the call stayed
up. Now the BYE goes to the caller's From URI, as RFC 2543 did."""

import base64
import json
import socket
import urllib.request
import uuid

import pytest

from tests.integration.helpers import raw_offer, receive
from tests.integration.test_calls_sipp import SIPP_CALLER, stations  # noqa: F401 (fixture)

pytestmark = pytest.mark.peers

ADMIN_PASSWORD = "contact-test-Password-1"


def web(station, path, body, auth=True):
    request = urllib.request.Request(f"http://{station.config['web']['listen']}{path}",
                                     method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    if auth:
        token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def call_and_hang_up(station, contact):
    """INVITE (with `contact`, None: no Contact header), ACK the 200, hang up through the API;
    the station's BYE request line, or None when none came within 3 s."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        host, port = sock.getsockname()
        target = f"sip:door@127.0.0.1:{station.port}"
        sdp = raw_offer(host, port)
        tag, call_id = uuid.uuid4().hex[:8], uuid.uuid4().hex
        lines = [f"INVITE {target} SIP/2.0",
                 f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
                 "Max-Forwards: 70", f"From: <{SIPP_CALLER}>;tag={tag}", f"To: <{target}>",
                 f"Call-ID: {call_id}", "CSeq: 1 INVITE", "Content-Type: application/sdp",
                 f"Content-Length: {len(sdp)}"]
        if contact is not None:
            lines.append(f"Contact: {contact}")
        sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + sdp).encode(), ("127.0.0.1", station.port))
        ok = receive(sock, 3.0, "SIP/2.0 200 ")
        assert ok is not None, station.log[-3000:]
        to = next(line[3:].strip() for line in ok.split("\r\n") if line.lower().startswith("to:"))
        ack = [f"ACK {target} SIP/2.0",
               f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
               "Max-Forwards: 70", f"From: <{SIPP_CALLER}>;tag={tag}", f"To: {to}",
               f"Call-ID: {call_id}", "CSeq: 1 ACK", "Content-Length: 0"]
        sock.sendto(("\r\n".join(ack) + "\r\n\r\n").encode(), ("127.0.0.1", station.port))
        assert web(station, "/api/hangup", {}) == 200
        bye = receive(sock, 3.0, "BYE ")
        if bye is not None:  # answer it, so the station's transaction ends
            head = [line for line in bye.split("\r\n")
                    if line.lower().startswith(("via:", "from:", "to:", "call-id:", "cseq:"))]
            sock.sendto(("\r\n".join(["SIP/2.0 200 OK", *head, "Content-Length: 0"])
                         + "\r\n\r\n").encode(), ("127.0.0.1", station.port))
            return bye.split("\r\n", 1)[0]
        return None
    finally:
        sock.close()


def test_a_call_without_a_contact_uri_is_hung_up_with_a_bye(stations):  # noqa: F811
    station = stations()
    assert web(station, "/api/setup", {"password": ADMIN_PASSWORD}, auth=False) == 200
    byes = {}
    for contact in (None, "*", "<sip:raw@127.0.0.1:5999>"):
        mark = station.log_offset()
        byes[contact] = call_and_hang_up(station, contact)
        station.wait_log(r"call \S+ ended", timeout=3, since=mark)
    print(f"the station's BYE by the caller's Contact: {byes}")
    assert byes[None] == f"BYE {SIPP_CALLER} SIP/2.0", (byes, station.log[-3000:])
    assert byes["*"] == f"BYE {SIPP_CALLER} SIP/2.0", (byes, station.log[-3000:])
    assert byes["<sip:raw@127.0.0.1:5999>"] == "BYE sip:raw@127.0.0.1:5999 SIP/2.0", byes
    assert "Traceback" not in station.log, station.log[-3000:]
