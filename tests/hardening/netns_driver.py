"""Network-fault scenarios, run by tests/hardening/test_netns.py inside a private network
namespace (`unshare -n python -m tests.hardening.netns_driver SCENARIO WORKDIR`): it brings `lo`
up, starts Kamailio and the station there, puts a seeded userspace UDP relay in the path (the
kernel has no netem) and prints one JSON line with what it measured.

- `media`: a scripted caller (allowed, trusted: its INVITE comes through Kamailio) sends a
  440 Hz PCMU stream to the station through the relay with 5 % loss and 0-100 ms jitter for
  6 s; reports how much of the station's speaker WAV carries the tone and the longest gap.
- `outage`: the station registers (expires 60) through the relay; the relay drops everything
  for 60 s, long enough for Kamailio to drop the contact; reports when it did and how long
  after the end of the outage the station's contact was back.
- `nat`: the station registers through a NAT relay (Kamailio sees the relay's outside port, as
  it would a router's), with `keepalive_s = 5` and a 10-minute registration. The NAT remaps
  (a new outside port, the old one closed, as a router does after a restart or a mapping
  timeout): how long until Kamailio holds one binding, with the Contact on a new local port of
  the station, reached through the NAT's new outside port. Then a caller behind a NAT (its SDP
  names one RTP port, its RTP comes from another of the same IP) calls the station through
  Kamailio while a rogue on another IP sprays RTP at it: where the station's RTP goes (RFC
  4961: the port may latch, the IP may not). Then the registrar goes silent: how long until
  the station says so.
"""

import heapq
import json
import math
import os
import pathlib
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time

from firmware.codecs.g711 import ulaw_encode
from tests.integration.helpers import Firmware, station_config, wait_contacts
from tests.peers.audio import read_wav, rms, tone_power_ratio
from tests.peers.fixtures import PEER_USERS
from tests.peers.kamailio import Kamailio
from tests.peers.process import free_port

CALLER = "sip:tester@127.0.0.1"  # unknown to Kamailio, so its INVITE is not challenged
TONE_HZ = 440
OUTAGE_S = 60.0


class Relay(threading.Thread):
    """UDP relay: datagrams to `port` go to `target` from a second socket, answers come back
    to the last client; `loss`, `jitter` (max extra delay, s) and `blocked` apply both ways."""

    def __init__(self, target, seed, loss=0.0, jitter=0.0):
        super().__init__(daemon=True)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.target = target
        self.client = None
        self.rng = random.Random(seed)
        self.loss, self.jitter, self.blocked = loss, jitter, False
        self.counts = {"forwarded": 0, "lost": 0, "blocked": 0}
        self.stopping = False

    def run(self):
        queue, order = [], 0
        while not self.stopping:
            wait = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.05
            readable, _, _ = select.select([self.front, self.back], [], [], min(wait, 0.05))
            for sock in readable:
                data, source = sock.recvfrom(65535)
                if sock is self.front:
                    self.client, out, dest = source, self.back, self.target
                elif self.client is None:
                    continue
                else:
                    out, dest = self.front, self.client
                if self.blocked:
                    self.counts["blocked"] += 1
                elif self.rng.random() < self.loss:
                    self.counts["lost"] += 1
                else:
                    order += 1
                    due = time.monotonic() + self.rng.uniform(0, self.jitter)
                    heapq.heappush(queue, (due, order, data, out, dest))
            while queue and queue[0][0] <= time.monotonic():
                _, _, data, out, dest = heapq.heappop(queue)
                out.sendto(data, dest)
                self.counts["forwarded"] += 1


class Nat(threading.Thread):
    """A UDP NAT in front of the registrar, as a home router is: each inside source address
    (the station's ports) gets its own outside socket (the mapping Kamailio sees), answers to
    it go back to that source; `remap()` closes every outside socket and opens new ones on
    other ports (as after a router restart or a mapping timeout); `blocked` drops everything."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.target = target
        self.lock = threading.Lock()
        self.mappings = {}  # inside (host, port) -> outside socket
        self.blocked = False
        self.stopping = False

    def outside_port(self, inside):
        with self.lock:
            sock = self.mappings.get(inside)
        return sock.getsockname()[1] if sock is not None else None

    def remap(self):
        with self.lock:
            old = list(self.mappings.values())
            for inside in list(self.mappings):
                self.mappings[inside] = self._outside()
        for sock in old:
            sock.close()

    @staticmethod
    def _outside():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        return sock

    def run(self):
        while not self.stopping:
            with self.lock:
                clients = {sock: inside for inside, sock in self.mappings.items()}
            try:
                readable, _, _ = select.select([self.front, *clients], [], [], 0.05)
                for sock in readable:
                    data, source = sock.recvfrom(65535)
                    if self.blocked:
                        continue
                    if sock is self.front:
                        with self.lock:
                            outside = self.mappings.get(source)
                            if outside is None:
                                outside = self.mappings[source] = self._outside()
                        outside.sendto(data, self.target)
                    else:
                        self.front.sendto(data, clients[sock])
            except OSError:  # an outside socket closed under select: next round
                continue


def start_kamailio(workdir, max_expires=60):
    kamailio = Kamailio(workdir / "kamailio", PEER_USERS, tls=False, max_expires=max_expires)
    kamailio.start()
    return kamailio


def header(message, name):
    for line in message.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def media(workdir):
    kamailio = start_kamailio(workdir)
    config = station_config(kamailio, "udp")
    low = free_port(("udp",), 20000, 29000) & ~1
    config["media"] = {"srtp": "off", "rtp_ports": f"{low}-{low + 7}"}
    config["answer"] = {"mode": "auto", "allow": [CALLER], "max_duration_s": 60}
    speaker = workdir / "speaker"
    fw = Firmware(workdir / "fw", config, extra_args=["--speaker-dir", speaker]).start()
    try:
        fw.wait_log(r"registration registered", timeout=10)
        wait_contacts(kamailio, "door", timeout=5)
        return _call_through_relay(kamailio, fw, speaker)
    finally:
        fw.kill()
        kamailio.close()


def _call_through_relay(kamailio, fw, speaker):
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    sip.settimeout(5)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    proxy = ("127.0.0.1", kamailio.udp_port)
    port, rtp_port = sip.getsockname()[1], rtp.getsockname()[1]
    call_id, tag = os.urandom(8).hex(), os.urandom(4).hex()
    sdp = ("v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n")
    common = (f"From: <{CALLER}>;tag={tag}\r\nCall-ID: {call_id}\r\n"
              f"Contact: <sip:tester@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n")
    sip.sendto((f"INVITE sip:door@127.0.0.1:{kamailio.udp_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id};rport\r\n{common}"
                f"To: <sip:door@127.0.0.1>\r\nCSeq: 1 INVITE\r\n"
                f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
                ).encode(), proxy)
    deadline = time.monotonic() + 10
    ok = None
    while ok is None and time.monotonic() < deadline:
        text = sip.recv(65535).decode(errors="replace")
        if text.startswith("SIP/2.0 200"):
            ok = text
        elif text.startswith("SIP/2.0 ") and int(text[8:11]) >= 300:
            raise RuntimeError("the call was refused: " + text.split("\r\n", 1)[0])
    if ok is None:
        raise RuntimeError("no 200 for the INVITE")
    to = header(ok, "To")
    target = header(ok, "Contact").strip("<>").split(">")[0]
    body = ok.split("\r\n\r\n", 1)[1]
    station_rtp = int(body.split("m=audio ", 1)[1].split()[0])
    route = f"Route: <sip:127.0.0.1:{kamailio.udp_port};lr>\r\n"

    def in_dialog(method, cseq):
        return (f"{method} {target} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{os.urandom(6).hex()}\r\n"
                f"{route}{common}To: {to}\r\nCSeq: {cseq} {method}\r\n"
                f"Content-Length: 0\r\n\r\n").encode()

    sip.sendto(in_dialog("ACK", 1), proxy)
    relay = Relay(("127.0.0.1", station_rtp), seed=5, loss=0.05, jitter=0.1)
    relay.start()
    seconds, ssrc = 6.0, 0x1234ABCD
    started = time.monotonic()
    for n in range(int(seconds * 50)):
        pcm = [int(12000 * math.sin(2 * math.pi * TONE_HZ * (n * 160 + i) / 8000))
               for i in range(160)]
        header_bytes = bytes([0x80, 0]) + (n & 0xFFFF).to_bytes(2, "big") + \
            (n * 160).to_bytes(4, "big") + ssrc.to_bytes(4, "big")
        payload = ulaw_encode(struct.pack("<160h", *pcm))
        rtp.sendto(header_bytes + payload, ("127.0.0.1", relay.port))
        time.sleep(max(0.0, started + (n + 1) * 0.02 - time.monotonic()))
    time.sleep(0.3)
    sip.sendto(in_dialog("BYE", 2), proxy)
    time.sleep(1.0)
    relay.stopping = True
    wavs = sorted(speaker.glob("*.wav"))
    if not wavs:
        raise RuntimeError("the station wrote no speaker WAV")
    samples, rate = read_wav(wavs[-1])
    window = rate // 10
    marks = []
    for start in range(int(0.5 * rate), len(samples) - window, window):
        chunk = samples[start:start + window]
        marks.append(rms(chunk) > 0.01 and tone_power_ratio(chunk, rate, TONE_HZ) > 0.5)
    longest = run = 0
    for has in marks:
        run = 0 if has else run + 1
        longest = max(longest, run)
    return {"windows": len(marks), "with_tone": sum(marks), "longest_gap_ms": longest * 100,
            "relay": relay.counts, "wav_seconds": round(len(samples) / rate, 2)}


def outage(workdir):
    # Kamailio grants 30 s bindings: the one made just before the outage lapses well inside the
    # 60 s outage (it sweeps expired bindings every 5 s), so the registration really is lost.
    kamailio = start_kamailio(workdir, max_expires=30)
    relay = Relay(("127.0.0.1", kamailio.udp_port), seed=60)
    relay.start()
    config = station_config(kamailio, "udp", expires=60)
    config["sip"]["registrar"] = f"127.0.0.1:{relay.port}"
    fw = Firmware(workdir / "fw", config).start()
    try:
        fw.wait_log(r"registration registered", timeout=10)
        wait_contacts(kamailio, "door", timeout=5)
        began = time.monotonic()
        relay.blocked = True
        mark = fw.log_offset()
        expired_after = None
        while time.monotonic() - began < OUTAGE_S:
            if expired_after is None and not kamailio.contacts("door"):
                expired_after = time.monotonic() - began
            time.sleep(0.5)
        relay.blocked = False
        ended = time.monotonic()
        wait_contacts(kamailio, "door", timeout=45)
        recovered = time.monotonic() - ended
        return {"outage_s": round(ended - began, 1),
                "registrar_dropped_contact_after_s": expired_after and round(expired_after, 1),
                "failures_logged": fw.count_log(r"registration failed", since=mark),
                "registered_again_after_s": round(recovered, 1), "relay": relay.counts,
                "alive": fw.alive}
    finally:
        relay.stopping = True
        fw.kill()
        kamailio.close()


KEEPALIVE_S = 5


def _received_port(kamailio):
    """The port of the source address Kamailio holds for the door's binding (fix_nated_register
    keeps it as `Received`), or None."""
    for binding in kamailio.bindings("door"):
        received = binding.get("Received", "")
        if received.rpartition(":")[2].isdigit():
            return int(received.rpartition(":")[2])
    return None


def _contact_ports(kamailio):
    """The ports of the Contact URIs of the door's bindings."""
    ports = []
    for binding in kamailio.bindings("door"):
        host_port = binding["Address"].split("@", 1)[-1].split(";")[0].rstrip(">")
        if host_port.rpartition(":")[2].isdigit():
            ports.append(int(host_port.rpartition(":")[2]))
    return ports


def _wait(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def nat(workdir):
    kamailio = start_kamailio(workdir, max_expires=3600)
    nat_ = Nat(("127.0.0.1", kamailio.udp_port))
    nat_.start()
    config = station_config(kamailio, "udp", expires=600)
    config["sip"]["registrar"] = f"127.0.0.1:{nat_.port}"
    config["sip"]["keepalive_s"] = KEEPALIVE_S
    low = free_port(("udp",), 20000, 29000) & ~1
    config["media"] = {"srtp": "off", "rtp_ports": f"{low}-{low + 7}"}
    config["answer"] = {"mode": "auto", "allow": [CALLER], "max_duration_s": 60}
    fw = Firmware(workdir / "fw", config).start()
    result = {"keepalive_s": KEEPALIVE_S}
    try:
        fw.wait_log(r"registration registered", timeout=10)
        listen_port = int(config["sip"]["listen"].rsplit(":", 1)[1])
        first = nat_.outside_port(("127.0.0.1", listen_port))
        result["received_before"] = _wait(lambda: _received_port(kamailio) == first, 5) and first
        result["contact_ports_before"] = _contact_ports(kamailio)
        # -- the NAT remaps: the binding must follow within the keep-alive period (+ slack)
        mark = fw.log_offset()
        remapped = time.monotonic()
        nat_.remap()
        second = nat_.outside_port(("127.0.0.1", listen_port))

        def moved():  # one binding, its Contact on a new local port, reached through the NAT
            ports = _contact_ports(kamailio)
            return len(ports) == 1 and ports[0] != listen_port and \
                _received_port(kamailio) == nat_.outside_port(("127.0.0.1", ports[0]))

        followed = _wait(moved, 4 * KEEPALIVE_S)
        after = _contact_ports(kamailio)
        result["remapped"] = {"old": first, "new": second,
                              "binding_followed_after_s": followed and
                              round(time.monotonic() - remapped, 1),
                              "contact_ports_after": after, "listen_port": listen_port,
                              "received_after": _received_port(kamailio),
                              "logged": fw.count_log(r"NAT mapping changed", since=mark)}
        # the NAT gave the new local port a mapping of its own: that is no further change
        time.sleep(2 * KEEPALIVE_S)  # at least one keep-alive from the new port answered
        result["remapped"]["logged_later"] = fw.count_log(r"NAT mapping changed", since=mark)
        result["remapped"]["contact_ports_later"] = _contact_ports(kamailio)
        # -- a call through Kamailio reaches the moved port through the NAT; symmetric RTP
        # from a NATed caller while a rogue sprays
        result["rtp"] = _rtp_behind_nat(kamailio)
        # -- the registrar goes silent: noticed within two keep-alive periods
        mark = fw.log_offset()
        silent = time.monotonic()
        nat_.blocked = True
        fw.wait_log(r"registration failed: registrar not answering keep-alives",
                    timeout=4 * KEEPALIVE_S, since=mark)
        result["dead_noticed_after_s"] = round(time.monotonic() - silent, 1)
        nat_.blocked = False
        fw.wait_log(r"registration registered", timeout=30, since=mark)
        result["alive"] = fw.alive
        return result
    finally:
        nat_.stopping = True
        fw.kill()
        kamailio.close()


def _rtp_behind_nat(kamailio):
    """A caller whose SDP names RTP port A but whose RTP leaves from port B of the same IP (a
    NAT); a rogue on 127.0.0.2 sends RTP at the station's port from the start. Counts what the
    station sends to A, to B and to the rogue."""
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    sip.settimeout(5)
    sdp_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # named in the SDP
    sdp_side.bind(("127.0.0.1", 0))
    nat_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where its RTP comes from
    nat_side.bind(("127.0.0.1", 0))
    rogue = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rogue.bind(("127.0.0.2", 0))
    for sock in (sdp_side, nat_side, rogue):
        sock.setblocking(False)
    proxy = ("127.0.0.1", kamailio.udp_port)
    port = sip.getsockname()[1]
    call_id, tag = os.urandom(8).hex(), os.urandom(4).hex()
    sdp = ("v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {sdp_side.getsockname()[1]} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    common = (f"From: <{CALLER}>;tag={tag}\r\nCall-ID: {call_id}\r\n"
              f"Contact: <sip:tester@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n")
    sip.sendto((f"INVITE sip:door@127.0.0.1:{kamailio.udp_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id};rport\r\n{common}"
                f"To: <sip:door@127.0.0.1>\r\nCSeq: 1 INVITE\r\n"
                f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
                ).encode(), proxy)
    ok = None
    deadline = time.monotonic() + 10
    while ok is None and time.monotonic() < deadline:
        text = sip.recv(65535).decode(errors="replace")
        if text.startswith("SIP/2.0 200"):
            ok = text
        elif text.startswith("SIP/2.0 ") and int(text[8:11]) >= 300:
            raise RuntimeError("the call was refused: " + text.split("\r\n", 1)[0])
    if ok is None:
        raise RuntimeError("no 200 for the INVITE")
    to = header(ok, "To")
    target = header(ok, "Contact").strip("<>").split(">")[0]
    station = ("127.0.0.1", int(ok.split("\r\n\r\n", 1)[1].split("m=audio ", 1)[1].split()[0]))
    route = f"Route: <sip:127.0.0.1:{kamailio.udp_port};lr>\r\n"

    def in_dialog(method, cseq):
        return (f"{method} {target} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{os.urandom(6).hex()}\r\n"
                f"{route}{common}To: {to}\r\nCSeq: {cseq} {method}\r\n"
                f"Content-Length: 0\r\n\r\n").encode()

    sip.sendto(in_dialog("ACK", 1), proxy)
    counts = {"to_sdp_port": 0, "to_nat_port": 0, "to_rogue": 0}
    half = {"to_sdp_port": 0, "to_nat_port": 0}
    started = time.monotonic()
    for n in range(150):  # 3 s of 20 ms packets from the NAT's port, rogue packets between
        packet = bytes([0x80, 0]) + n.to_bytes(2, "big") + (n * 160).to_bytes(4, "big") + \
            (0x5EED0001).to_bytes(4, "big") + bytes([0xFF]) * 160
        nat_side.sendto(packet, station)
        rogue.sendto(packet[:8] + (0xBAD00001).to_bytes(4, "big") + packet[12:], station)
        for sock, key in ((sdp_side, "to_sdp_port"), (nat_side, "to_nat_port"),
                          (rogue, "to_rogue")):
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                counts[key] += 1
        if n == 75:
            half = {k: counts[k] for k in half}
        time.sleep(max(0.0, started + (n + 1) * 0.02 - time.monotonic()))
    sip.sendto(in_dialog("BYE", 2), proxy)
    time.sleep(0.5)
    for sock in (sip, sdp_side, nat_side, rogue):
        sock.close()
    # in the second half the station must be sending to the NAT's port only
    return dict(counts, second_half_to_nat_port=counts["to_nat_port"] - half["to_nat_port"],
                second_half_to_sdp_port=counts["to_sdp_port"] - half["to_sdp_port"])


def main():
    scenario, workdir = sys.argv[1], pathlib.Path(sys.argv[2])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    result = {"media": media, "outage": outage, "nat": nat}[scenario](workdir)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
