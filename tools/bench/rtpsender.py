"""A tiny impaired RTP sender: a 1 kHz PCMU tone with seeded loss and jitter.

    plan = impaired_schedule(seconds=20, loss=0.05, jitter_ms=60, seed=7)
    send_stream(sock, destination, plan)        # blocks for about `seconds`

`impaired_schedule` numbers 20 ms packets 0..n-1 (RTP timestamps advance by 160, RFC 3551 §4.5.14
for PCMU), drops each with probability `loss`, and delays the rest by a uniform random 0..jitter_ms
after its nominal send time; sending in order of those times reorders packets whose delays differ
by more than 20 ms, as a jittery network does. Same seed, same plan.

Public API:
- `tone_frame(freq=1000, amplitude=0.5) -> bytes`: 160 PCMU bytes (at 8 kHz a 1 kHz period is 8
  samples, so every frame of the tone is the same).
- `impaired_schedule(seconds, loss=0.05, jitter_ms=60.0, seed=7) -> list[(offset_s, bytes)]`,
  sorted by send offset.
- `wait_for_media(sock, timeout) -> (host, port) | None`: where the UA's RTP comes from (with
  symmetric RTP, RFC 4961, that is also where it expects ours).
- `send_stream(sock, destination, plan) -> int`: datagrams sent; it drains what the UA sends
  back so the socket buffer never fills.
"""

import math
import random
import struct
import time

from firmware.codecs.g711 import ulaw_encode

SAMPLES_PER_FRAME = 160
FRAME_S = 0.020


def tone_frame(freq=1000, amplitude=0.5, rate=8000):
    samples = [int(round(amplitude * 32767 * math.sin(2 * math.pi * freq * n / rate)))
               for n in range(SAMPLES_PER_FRAME)]
    return ulaw_encode(struct.pack(f"<{SAMPLES_PER_FRAME}h", *samples))


def impaired_schedule(seconds, loss=0.05, jitter_ms=60.0, seed=7, payload=None):
    chooser = random.Random(seed)
    payload = payload if payload is not None else tone_frame()
    ssrc = chooser.getrandbits(32)
    first_seq = chooser.getrandbits(16)
    first_ts = chooser.getrandbits(32)
    plan = []
    for index in range(int(seconds / FRAME_S)):
        dropped = chooser.random() < loss
        delay = chooser.uniform(0.0, jitter_ms / 1000.0)
        if dropped:
            continue
        header = struct.pack("!BBHII", 0x80, 0x80 if index == 0 else 0,
                             (first_seq + index) & 0xFFFF,
                             (first_ts + index * SAMPLES_PER_FRAME) & 0xFFFFFFFF, ssrc)
        plan.append((index * FRAME_S + delay, header + payload))
    plan.sort(key=lambda entry: entry[0])
    return plan


def send_stream(sock, destination, plan):
    sock.setblocking(False)
    start = time.monotonic()
    sent = 0
    for offset, packet in plan:
        while True:
            remaining = start + offset - time.monotonic()
            _drain(sock)
            if remaining <= 0:
                break
            time.sleep(min(remaining, 0.005))
        sock.sendto(packet, destination)
        sent += 1
    return sent


def _drain(sock):
    for _ in range(64):
        try:
            sock.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return


def wait_for_media(sock, timeout):
    """The address the UA sends its RTP from (symmetric RTP: where we send ours), or None."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data, address = sock.recvfrom(2048)
        except TimeoutError:
            continue
        if len(data) >= 12 and data[0] >> 6 == 2 and (data[1] & 0x7F) in (0, 8):
            return address
    return None
