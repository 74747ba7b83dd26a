"""Tools for the hostile tests: raw SIP over loopback and process figures from /proc.

- `process_figures(pid) -> {"rss_kb", "fds", "threads"}` (VmRSS, /proc/<pid>/fd, Threads).
- `SipSocket()`: a UDP socket on 127.0.0.1; `send(data, port)`, `responses(timeout)` (status
  lines drained until `timeout` of silence), `options(port, timeout) -> status or None`.
- `invite(port, call_id, local_port, user="door") -> bytes`: a complete INVITE with SDP.
- `healthy(station, kamailio, sock)`: the station answers OPTIONS with 200 within a few seconds
  (a source that has just been throttled gets its tokens back meanwhile) and is still registered.
"""

import os
import socket
import time

from tests.integration.helpers import wait_contacts


def process_figures(pid):
    figures = {"fds": len(os.listdir(f"/proc/{pid}/fd"))}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name == "VmRSS":
                figures["rss_kb"] = int(value.split()[0])
            elif name == "Threads":
                figures["threads"] = int(value)
    return figures


def invite(port, call_id, local_port, user="door", branch=None):
    body = ("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    return (f"INVITE sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{branch or call_id};rport\r\n"
            f"From: <sip:intruder@127.0.0.1>;tag={call_id[:8]}\r\n"
            f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:intruder@127.0.0.1:{local_port}>\r\nMax-Forwards: 70\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
            ).encode()


class SipSocket:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def send(self, data, port):
        self.sock.sendto(data, ("127.0.0.1", port))

    def responses(self, timeout):
        """Status codes of every datagram that arrives until `timeout` s of silence."""
        statuses = []
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                return statuses
            if data.startswith(b"SIP/2.0 "):
                statuses.append(int(data[8:11]))

    def options(self, port, timeout=1.0):
        call_id = os.urandom(6).hex()
        self.send((f"OPTIONS sip:door@127.0.0.1:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{call_id};rport\r\n"
                   f"From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:door@127.0.0.1>\r\n"
                   f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   f"Content-Length: 0\r\n\r\n").encode(), port)
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                return None
            if call_id.encode() in data and data.startswith(b"SIP/2.0 "):
                return int(data[8:11])
        return None

    def close(self):
        self.sock.close()


def healthy(station, kamailio, sock, timeout=6.0):
    """Answers OPTIONS (200) and is registered; AssertionError with the station's tail if not."""
    assert station.fw.alive, f"the station died{station.describe()}"
    deadline = time.monotonic() + timeout
    status = None
    while status != 200 and time.monotonic() < deadline:
        status = sock.options(station.fw.port, timeout=1.0)
    assert status == 200, f"OPTIONS got {status}{station.describe()}"
    wait_contacts(kamailio, "door", timeout=3.0)
