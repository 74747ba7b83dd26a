"""The RTP pair bound ahead for the next incoming call (runtime/callexec.py, issue 14: the
answer path). The real Station answers INVITEs in direct-IP mode; SIP's datagrams go to a
recorder instead of a socket, the RTP pairs are real sockets on loopback."""

import asyncio
import socket

from firmware import config as configuration
from firmware.runtime.station import Station
from firmware.sip.endpoint import Peer
from firmware.sip.useragent import UASettings
from tests.peers.process import free_port

HOST = "127.0.0.1"
CALLER = Peer("udp", HOST, 5763)

INVITE = (
    "INVITE sip:door@127.0.0.1:{sip_port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5763;branch=z9hG4bK-spare-{n}\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5763>;tag=spare{n}\r\n"
    "To: <sip:door@127.0.0.1:{sip_port}>\r\n"
    "Call-ID: spare-{n}@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:sipp@127.0.0.1:5763>\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Type: application/sdp\r\n\r\n"
    "v=0\r\no=sipp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {rtp} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
IN_DIALOG = (
    "{method} sip:door@127.0.0.1:{sip_port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5763;branch=z9hG4bK-spare-{n}-{method}\r\n"
    "From: sipp <sip:sipp@127.0.0.1:5763>;tag=spare{n}\r\n"
    "To: <sip:door@127.0.0.1:{sip_port}>;tag={tag}\r\n"
    "Call-ID: spare-{n}@127.0.0.1\r\n"
    "CSeq: {seq} {method}\r\n"
    "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


class Wire:
    """Stands in for runtime/transport.Transports: what the station sends."""

    def __init__(self):
        self.sent = []
        self.closed = False

    def send(self, data, peer):
        self.sent.append(data)

    def close(self):
        self.closed = True

    async def wait_closed(self):
        pass


def _bound(port):
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((HOST, port))
    except OSError:
        return True
    finally:
        probe.close()
    return False


def test_the_next_incoming_call_takes_a_pair_bound_after_the_last_answer(tmp_path):
    sip_port = free_port()
    low = free_port(("udp",), 30000, 39000) & ~1

    async def scenario():
        cfg = configuration.validate({
            "sip": {"registrar": "", "listen": "%s:%d" % (HOST, sip_port)},
            "media": {"srtp": "off", "rtp_ports": "%d-%d" % (low, low + 19)},
            "answer": {"mode": "auto", "allow": ["sip:sipp@127.0.0.1"]}})
        station = Station(cfg, None, state_dir=str(tmp_path), loop=asyncio.get_running_loop())
        station.prepare()
        wire = station.transports = Wire()
        settings = UASettings.from_config(cfg.sip, HOST, sip_port, HOST, None)
        station._start_ua(settings, HOST, sip_port, None)
        await asyncio.sleep(0)
        assert station._spare_pair is None  # no call yet: no port held

        def call(n):
            wire.sent.clear()
            station._on_receive(INVITE.format(sip_port=sip_port, n=n, rtp=low + 40).encode(),
                                CALLER)
            [answer] = [d for d in wire.sent if d.startswith(b"SIP/2.0 200")]
            text = answer.decode()
            tag = text.split("\r\nTo: ")[1].split(";tag=")[1].split("\r\n")[0]
            port = int(text.split("m=audio ")[1].split()[0])
            return port, tag

        def hang_up(n, tag):
            for seq, method in ((1, "ACK"), (2, "BYE")):
                station._on_receive(IN_DIALOG.format(
                    method=method, seq=seq, sip_port=sip_port, n=n, tag=tag).encode(), CALLER)

        try:
            first, tag = call(1)
            await asyncio.sleep(0)  # the turn is over: the spare is bound now
            spare = station._spare_pair
            assert spare is not None and spare[0] != first and low <= spare[0] < low + 20
            assert _bound(spare[0]) and _bound(spare[0] + 1)
            hang_up(1, tag)
            second, tag = call(2)
            assert second == spare[0]  # the answer used it, no bind on the way
            await asyncio.sleep(0)
            assert station._spare_pair is not None and station._spare_pair[0] != second
            hang_up(2, tag)
            kept = station._spare_pair[0]
        finally:
            await station.stop()
        assert station._spare_pair is None and not _bound(kept) and not _bound(kept + 1)

    asyncio.run(asyncio.wait_for(scenario(), 10))
