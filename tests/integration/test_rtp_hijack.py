"""The call's audio belongs to the peer in the SDP (issue 12), on the running station.

A real call: the simulated call button → Kamailio → baresip (flat1, answering by hand after
about a second of ringing). Meanwhile a rogue UDP socket on 127.0.0.1 sprays valid PCMU RTP,
a steady stream (one SSRC, consecutive sequence numbers) at every port of the station's
`rtp_ports` range, odd and even, every 20 ms, from before the INVITE leaves until after the
call ended. Before the fix the station latched onto the first valid packet, which was the
rogue's (queued while it rang), and sent it the door microphone; now:
- not one packet from the station reaches the rogue (counted at the rogue's socket);
- baresip hears the station's 1 kHz tone (its recording) and the station's speaker plays
  baresip's 440 Hz, not the rogue's silence.
"""

import os
import socket
import struct
import threading
import time

import pytest

from tests.integration.test_calls_baresip import PHONE_HZ, press_call_button, tone_found
from tests.integration.test_calls_sipp import MIC_HZ, RTP_RANGE, start_station
from tests.peers.fixtures import FLAT1_USER

pytestmark = pytest.mark.peers

FLAT1_CALLER = f"sip:{FLAT1_USER}@127.0.0.1"
ULAW_SILENCE = b"\xff" * 160
SPRAY_INTERVAL = 0.02
MAX_SPRAY_S = 60.0  # the rogue stops by itself at the latest after this long


class Rogue:
    """One UDP socket on 127.0.0.1 sending PCMU RTP to every port in [low, high] each 20 ms,
    counting every datagram it receives from the station's range."""

    def __init__(self, low, high):
        self.ports = range(low, high + 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.sent = 0
        self.received = 0
        self.received_from = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rogue")
        self._ssrc = int.from_bytes(os.urandom(4), "big")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(5)
        self._receive()
        self.sock.close()

    def _packet(self, sequence):
        header = struct.pack("!BBHII", 0x80, 0, sequence & 0xFFFF, (sequence * 160) & 0xFFFFFFFF,
                             self._ssrc)
        return header + ULAW_SILENCE

    def _receive(self):
        for _ in range(10000):
            try:
                _, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # ICMP port unreachable from a port nobody listens on
            if addr[1] in self.ports:
                self.received += 1
                self.received_from.add(addr[1])

    def _run(self):
        began = time.monotonic()
        sequence = 0
        while not self._stop.is_set() and time.monotonic() - began < MAX_SPRAY_S:
            data = self._packet(sequence)
            for port in self.ports:
                try:
                    self.sock.sendto(data, ("127.0.0.1", port))
                    self.sent += 1
                except OSError:
                    pass
            sequence += 1
            self._receive()
            self._stop.wait(SPRAY_INTERVAL)


def test_rogue_spraying_rtp_gets_nothing_and_the_phone_hears_the_door(kamailio, baresip_factory,
                                                                      tmp_path):
    phone = baresip_factory(FLAT1_USER, registrar=kamailio, answer_mode="manual",
                            tone_hz=PHONE_HZ)
    phone.wait_registered(10)
    station = start_station(tmp_path / "station", registrar=kamailio, allow=(FLAT1_CALLER,),
                            buttons=[{"role": "call", "targets": [FLAT1_CALLER]}])
    try:
        low, high = station.rtp_low, station.rtp_low + RTP_RANGE - 1
        with Rogue(low, high) as rogue:
            time.sleep(0.2)
            press_call_button(station)
            phone.wait_event("CALL_INCOMING", 10)
            time.sleep(1.0)  # it rings; the rogue's packets queue on the station's sockets
            phone.accept()
            phone.wait_event("CALL_ESTABLISHED", 10)
            time.sleep(3.0)
            phone.hangup()
            phone.wait_event("CALL_CLOSED", 5)
            station.wait_log(r"call \S+ ended", timeout=5)
            time.sleep(0.2)
        phone.stop()
        print(f"rogue sprayed {rogue.sent} RTP packets at ports {low}-{high}; received "
              f"{rogue.received} packets from the station (from ports "
              f"{sorted(rogue.received_from)})")
        assert rogue.sent > 1000
        assert rogue.received == 0, f"{rogue.received} packets of ours reached the rogue"
        recordings = phone.recordings("dec")
        assert recordings, "baresip wrote no recording"
        assert tone_found(recordings[-1], MIC_HZ), "baresip did not hear the door's tone"
        speaker = sorted(station.speaker_dir.glob("*.wav"))
        assert len(speaker) == 1 and tone_found(speaker[0], PHONE_HZ), \
            "the door's speaker did not play the phone's tone"
        assert station.alive
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-4000:]}")
