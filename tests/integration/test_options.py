"""The running station answers OPTIONS (RFC 3261 §11), refuses REGISTER (405) and survives
malformed requests (RFC 4475), checked with sipsak, SIPp and raw datagrams.

One station in direct-IP mode serves the whole module: every test also shows it is still alive
and answering after what the previous ones threw at it.
"""

import re
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from tests.conftest import VECTORS
from tests.integration.helpers import Firmware, station_config
from tests.peers.sipp import run_sipp

pytestmark = pytest.mark.peers

CAPABILITIES = ("Allow", "Accept", "Supported")


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    # free_port() hands out 4-digit ports: sipsak truncates 5-digit ones in the Request-URI.
    fw = Firmware(tmp_path_factory.mktemp("options-station"), station_config(None)).start()
    try:
        fw.wait_log(r"listening on 127\.0\.0\.1:%d" % fw.port, timeout=10.0)
        yield fw
        assert fw.alive, "the station died during the module"
    finally:
        fw.kill()
        print(f"--- firmware log (tail) ---\n{fw.log[-4000:]}")


def header_values(message, name):
    """All values of header `name` in a response text, comma lists split."""
    values = []
    head = message.split("\r\n\r\n", 1)[0].replace("\r\n", "\n")
    for line in head.split("\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            values.extend(v.strip() for v in value.split(",") if v.strip())
    return values


def check_capabilities(response_text):
    assert {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"} <= set(
        header_values(response_text, "Allow")), response_text
    assert "application/sdp" in header_values(response_text, "Accept"), response_text
    assert re.search(r"(?im)^Supported[ \t]*:", response_text), response_text


def request(method, port, local_port, branch=None, call_id=None, extra=""):
    branch = branch or "z9hG4bK" + uuid.uuid4().hex[:12]
    call_id = call_id or uuid.uuid4().hex
    return (
        f"{method} sip:door@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:tester@127.0.0.1:{local_port}>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:door@127.0.0.1:{port}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:tester@127.0.0.1:{local_port}>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class UdpProbe:
    """A loopback UDP socket that sends datagrams and collects what comes back."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def send(self, data, port):
        self.sock.sendto(data, ("127.0.0.1", port))

    def receive(self, timeout):
        """The first datagram within `timeout` seconds, or None."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65535)
        except TimeoutError:
            return None

    def final_response(self, timeout=2.0):
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            data = self.receive(remaining)
            if data is None:
                return None
            if not data.startswith(b"SIP/2.0 1"):
                return data
        return None

    def close(self):
        self.sock.close()


def assert_answers_options(port):
    probe = UdpProbe()
    try:
        probe.send(request("OPTIONS", port, probe.port), port)
        response = probe.final_response(2.0)
        assert response is not None, "no answer to OPTIONS"
        assert response.startswith(b"SIP/2.0 200 "), response
        return response.decode()
    finally:
        probe.close()


def test_options_over_udp_answered_with_capabilities(station):
    check_capabilities(assert_answers_options(station.port))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipsak_options(station, transport):
    sipsak = shutil.which("sipsak")
    if sipsak is None:
        pytest.skip("sipsak is not installed")
    assert station.port < 10000  # sipsak would truncate a 5-digit port
    argv = [sipsak, "-vv", "-s", f"sip:door@127.0.0.1:{station.port}"]
    if transport == "tcp":
        argv[1:1] = ["-E", "tcp"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output  # sipsak exits 0 only on a 2xx
    start = output.index("SIP/2.0 200")
    check_capabilities(output[start:].replace("\n", "\r\n"))


OPTIONS_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options">
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Accept: application/sdp
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" timeout="5000">
    <action>
      <ereg regexp="Allow: *[A-Z, ]*OPTIONS" search_in="msg" check_it="true"
            assign_to="allow"/>
      <ereg regexp="Accept: *[a-z/+, -]*application/sdp" search_in="msg" check_it="true"
            assign_to="accept"/>
    </action>
  </recv>
  <!-- SIPp's header search sees only the first of repeated header lines, so the whole
       message is searched: one Allow line or one line per method both match. -->
  <Reference variables="allow,accept"/>
</scenario>
"""


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_options(station, tmp_path, transport):
    result = run_sipp(OPTIONS_SCENARIO, remote=("127.0.0.1", station.port), service="door",
                      transport=transport, workdir=tmp_path, timeout=15)
    assert result.returncode == 0 and result.successful == 1, result.describe()
    assert "SIP/2.0 200" in result.messages


def test_register_sent_to_the_station_gets_405(station):
    probe = UdpProbe()
    try:
        probe.send(request("REGISTER", station.port, probe.port, extra="Expires: 60\r\n"),
                   station.port)
        response = probe.final_response(2.0)
    finally:
        probe.close()
    assert response is not None and response.startswith(b"SIP/2.0 405 "), response
    assert "REGISTER" not in header_values(response.decode(), "Allow")
    assert "OPTIONS" in header_values(response.decode(), "Allow")


def manifest():
    rows = {}
    lines = (VECTORS / "rfc4475" / "manifest.tsv").read_text().splitlines()
    for line in lines[1:]:
        fields = line.split("\t")
        rows[fields[0]] = dict(zip(lines[0].split("\t"), fields, strict=True))
    return rows


SENT_BY = re.compile(rb"(?im)^((?:via|v)[ \t]*:[ \t]*SIP[ \t]*/[ \t]*[0-9.]+[ \t]*/[ \t]*"
                     rb"[a-z]+[ \t]+)[^;,\s]+")


def aimed_at(data, port):
    """The vector with its top Via's sent-by replaced by our socket (plus rport), so an answer
    comes back to the test instead of to the example hosts. Nothing else changes: none of the
    chosen vectors is malformed in the sent-by itself."""
    aimed, count = SENT_BY.subn(lambda m: m.group(1) + b"127.0.0.1:%d;rport" % port, data, 1)
    assert count == 1
    return aimed


# Vector → the status it must get over UDP (None: no answer, as for responses).
MALFORMED = {
    "badinv01.dat": 400, "clerr.dat": 400, "ncl.dat": 400, "scalar02.dat": 400,
    "quotbal.dat": 400, "mismatch01.dat": 400, "mismatch02.dat": 400, "insuf.dat": 400,
    "multi01.dat": 400, "mcl01.dat": 400, "badvers.dat": 505,
    "scalarlg.dat": None, "bigcode.dat": None,
    "lwsruri.dat": 400,
}
@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_request_over_udp(station, name):
    row = manifest()[name]
    assert row["expected"] == "invalid"
    expected = MALFORMED[name]
    # The expectation agrees with the manifest's handling column.
    if expected is None:
        assert "discard" in row["rfc_expected_handling"]
    else:
        assert str(expected) in row["rfc_expected_handling"]
    probe = UdpProbe()
    try:
        probe.send(aimed_at((VECTORS / "rfc4475" / name).read_bytes(), probe.port),
                   station.port)
        response = probe.final_response(0.7 if expected is None else 2.0)
    finally:
        probe.close()
    if expected is None:
        assert response is None, response
    else:
        assert response is not None, f"no answer to {name}"
        assert response.startswith(b"SIP/2.0 %d " % expected), response[:200]
    assert_answers_options(station.port)
    assert station.alive
