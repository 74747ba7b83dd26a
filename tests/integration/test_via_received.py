"""No reflection through a forged Via `received` (issue 12, RFC 3261 §18.2.1 / RFC 3581 §4).

Responses over UDP go to the top Via's `received` (and `rport`). A request whose sent-by names
its real source but that already carries `received=127.0.0.99` must not make the running
station answer to 127.0.0.99: the station overwrites `received` with the packet's real source.
A socket listening on 127.0.0.99 (a loopback alias) at the port the Via names counts what
reaches it; the sender must get the 200 itself.
"""

import socket
import time
import uuid

import pytest

from tests.integration.helpers import Firmware, station_config
from tests.peers.process import free_port

pytestmark = pytest.mark.peers

THIRD = "127.0.0.99"


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    fw = Firmware(tmp_path_factory.mktemp("via-station"), station_config(None)).start()
    try:
        fw.wait_log(r"listening on 127\.0\.0\.1:%d" % fw.port, timeout=10.0)
        yield fw
    finally:
        fw.kill()
        print(f"--- firmware log (tail) ---\n{fw.log[-3000:]}")


def options(station_port, local_port, via_params):
    branch = "z9hG4bK" + uuid.uuid4().hex[:12]
    return (
        f"OPTIONS sip:door@127.0.0.1:{station_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch}{via_params}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:tester@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:door@127.0.0.1:{station_port}>\r\n"
        f"Call-ID: {uuid.uuid4().hex}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode(), branch


def drain(sock, seconds):
    """Every datagram arriving on `sock` within `seconds`."""
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            got.append(sock.recvfrom(65535))
        except TimeoutError:
            break
    return got


@pytest.mark.parametrize("via_params", [f";received={THIRD}", f";received={THIRD};rport"],
                         ids=["received", "received+rport"])
def test_forged_received_is_ignored_and_the_answer_goes_to_the_real_source(station,
                                                                           via_params):
    port = free_port(("udp",))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    third = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sender.bind(("127.0.0.1", port))
        third.bind((THIRD, port))  # where a response to `received`:<sent-by port> would go
        data, branch = options(station.port, port, via_params)
        sender.sendto(data, ("127.0.0.1", station.port))
        answers = drain(sender, 1.0)
        reflected = drain(third, 0.5)
    finally:
        sender.close()
        third.close()
    print(f"Via ...{via_params}: responses to the real source {len(answers)}, "
          f"to {THIRD}: {len(reflected)}")
    assert reflected == [], (f"{len(reflected)} datagram(s) reflected to {THIRD}:\n"
                             f"{reflected[0][0][:400].decode(errors='replace')}")
    assert len(answers) == 1, answers
    response = answers[0][0].decode(errors="replace")
    assert response.startswith("SIP/2.0 200 ") and branch in response, response
    assert "received=127.0.0.1" in response and f"received={THIRD}" not in response, response
    assert station.alive
