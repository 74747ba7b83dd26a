"""The media runtime (issue 12): random RTP port pairs; no SDES keys over plain signalling with
the default config (decided by the session layer, over the runtime's port); and the player: what
queued before media started is dropped, a re-offer moves the media, hold does not."""

import socket
import time

import pytest

from firmware import config as configuration
from firmware.runtime.media import MediaStream, PortPool
from firmware.sdp import offer_answer
from firmware.sdp.session import SessionDescription
from firmware.session import events as ev
from firmware.session.session import SessionManager
from firmware.sip.call import CallManager
from firmware.sip.endpoint import Peer
from firmware.sip.useragent import UserAgent
from tests.integration.test_calls_sipp import free_rtp_range

RANGE = 40


def _pool():
    low = free_rtp_range(RANGE)
    return PortPool("127.0.0.1", low, low + RANGE - 1), low


def test_port_pairs_are_even_odd_random_and_within_the_range():
    pool, low = _pool()
    picked = []
    for _ in range(8):
        port, socks = pool.open_pair()
        for s in socks:
            s.close()
        assert port % 2 == 0 and low <= port and port + 1 <= low + RANGE - 1
        picked.append(port)
    # In order, eight calls would get low, low+2, ... (a stranger could guess the next one).
    assert picked != [low + 2 * i for i in range(8)]


def test_a_taken_pair_is_skipped_and_a_full_range_is_an_error():
    low = free_rtp_range(4)
    pool = PortPool("127.0.0.1", low, low + 3)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", low + 1))  # the first pair's RTCP port
    try:
        for _ in range(5):
            port, socks = pool.open_pair()
            assert port == low + 2
            for s in socks:
                s.close()
        port, held = pool.open_pair()
        with pytest.raises(OSError, match="no free RTP port pair"):
            pool.open_pair()
        for s in held:
            s.close()
    finally:
        blocker.close()


@pytest.mark.parametrize("secure,explicit,keys", [
    (False, None, False),  # the default: never SDES keys over UDP/TCP
    (True, None, True),    # over TLS they may travel
    (False, False, True),  # srtp_requires_tls = false, set on purpose
])
def test_optional_srtp_sends_keys_only_over_tls_unless_allowed(secure, explicit, keys):
    pytest.importorskip("pylibsrtp")
    media = {"srtp": "optional"}
    if explicit is not None:
        media["srtp_requires_tls"] = explicit
    cfg = configuration.validate({"media": media})
    media_cfg = cfg.media  # SessionManager derives srtp_requires_tls (MediaConfig)
    pool, _ = _pool()
    port, pair = pool.open_pair()
    settings = {"host": "127.0.0.1", "port": 5060, "transport": "udp", "username": "door",
                "domain": "127.0.0.1", "password": "", "display_name": "", "registrar": None}
    sessions = SessionManager(CallManager(UserAgent(settings)), media_cfg)
    transport = "tls" if secure else "udp"
    try:
        session = sessions.place_call("call", [("sip:flat@127.0.0.1", Peer(
            transport, "127.0.0.1", 5061))], "127.0.0.1", port, 0.0)
        assert sessions.next_event() == ev.CallStarted(session.id, "call")  # no key problem
        offer = session.call.local_sdp
        assert (b"a=crypto:" in offer) is keys
        assert b"RTP/AVP " in offer
    finally:
        for sock in pair:
            sock.close()


def _offer(port):
    return ("v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n").encode()


def _negotiated(port, offer, media_cfg):
    """What the session layer hands the player: our answer's negotiation of `offer`."""
    local = offer_answer.LocalMedia("127.0.0.1", port, codecs=media_cfg.codecs)
    return offer_answer.create_answer(SessionDescription.parse(offer), local, 1)[1]


def _rtp(sequence):
    return bytes([0x80, 0]) + sequence.to_bytes(2, "big") + (160 * sequence).to_bytes(4, "big") \
        + (0x1234).to_bytes(4, "big") + b"\xff" * 160


def test_datagrams_queued_before_media_starts_are_dropped():
    """Even from the SDP's own address: what arrived while the call rang is not its media."""
    pool, _ = _pool()
    media_cfg = configuration.validate({}).media
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    port, pair = pool.open_pair()
    stream = MediaStream("c2", pair, None, None, None)
    try:
        negotiated = _negotiated(port, _offer(peer.getsockname()[1]), media_cfg)
        for sequence in range(20):
            peer.sendto(_rtp(sequence), ("127.0.0.1", port))
        time.sleep(0.1)
        stream.play(negotiated)
        data, addr = peer.recvfrom(2048)  # our media goes to the SDP's address
        assert addr == ("127.0.0.1", port) and data[1] & 0x7F == 0
        peer.sendto(_rtp(20), ("127.0.0.1", port))  # live media is heard
        time.sleep(0.2)
    finally:
        stream.stop()
        peer.close()
    assert stream.stats()["packets_received"] == 1


def test_a_re_offer_that_moves_the_peer_moves_our_media_but_hold_does_not():
    pool, _ = _pool()
    media_cfg = configuration.validate({}).media
    first, moved = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    port, pair = pool.open_pair()
    stream = MediaStream("c3", pair, None, None, None)
    try:
        for sock in (first, moved):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(2)
        stream.play(_negotiated(port, _offer(first.getsockname()[1]), media_cfg))
        first.recvfrom(2048)
        stream.update(_negotiated(port, _offer(moved.getsockname()[1]), media_cfg))  # re-INVITE
        data, addr = moved.recvfrom(2048)
        assert addr == ("127.0.0.1", port)
        hold = _offer(moved.getsockname()[1]).replace(b"c=IN IP4 127.0.0.1", b"c=IN IP4 0.0.0.0")
        stream.update(_negotiated(port, hold, media_cfg))
        time.sleep(0.1)
        assert stream.session.remote_addr == ("127.0.0.1", moved.getsockname()[1])
    finally:
        stream.stop()
        first.close()
        moved.close()


def test_codec_at_another_rate_than_the_device_is_resampled():
    """A re-INVITE from G.722 to PCMU keeps the 16 kHz device and resamples at the codec."""
    from firmware.codecs.g711 import CODECS
    from firmware.runtime.media import _Rated

    rated = _Rated(CODECS["PCMU"].encode, CODECS["PCMU"].decode, 16000, 8000)
    payloads = [rated.encode(bytes(640)) for _ in range(5)]
    assert all(150 <= len(p) <= 170 for p in payloads)  # ~160 G.711 bytes per 20 ms
    frames = [rated.decode(bytes([0xFF]) * 160) for _ in range(5)]
    assert all(len(f) == 640 for f in frames)  # whole 16 kHz frames for the device


def test_new_mic_gain_applies_during_the_call(tmp_path):
    """The page's slider during a call (issue 15): `set_audio` changes the level sent at once."""
    import array
    import math
    import wave

    from firmware.settings import AudioConfig
    from hal.sim import SimAudio

    mic = tmp_path / "mic.wav"
    with wave.open(str(mic), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(array.array("h", (int(4000 * math.sin(2 * math.pi * 1000 * n / 8000))
                                          for n in range(8000))).tobytes())
    pool, _ = _pool()
    media_cfg = configuration.validate({}).media
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    port, pair = pool.open_pair()
    quieter = AudioConfig(False, False, False, 0, 90)  # digital volume: a processor from the start
    stream = MediaStream("c4", pair, SimAudio(mic=mic), None, None, audio_cfg=quieter)

    def level(packets=10):
        total = 0.0
        for _ in range(packets):
            data, _ = peer.recvfrom(2048)
            samples = [_ulaw(code) for code in data[12:]]
            total += sum(v * v for v in samples) / len(samples)
        return 10 * math.log10(total / packets)

    try:
        stream.play(_negotiated(port, _offer(peer.getsockname()[1]), media_cfg))
        level(5)  # start-up
        before = level()
        stream.set_audio(AudioConfig(False, False, False, 6, 90))
        level(5)  # the command and the queued frames
        after = level()
        stream.set_audio(AudioConfig(False, False, False, -6, 90))
        level(5)
        lower = level()
    finally:
        stream.stop()
        peer.close()
    assert abs(after - before - 6) < 1 and abs(lower - before + 6) < 1, (before, after, lower)


def _ulaw(code):
    code = ~code & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)) - 0x84
    return -magnitude if code & 0x80 else magnitude


def test_the_media_thread_wakes_once_per_frame_and_keeps_arrival_times():
    """Issue 14: received packets do not wake the thread (they wait in the socket for the next
    20 ms frame tick, with which the send slots coincide), so a peer sending at 50 packets/s
    out of phase with our ticks leaves about 50 wake-ups/s, not 100. The jitter buffer still
    gets each packet's arrival time (kernel stamp), not the later tick."""
    pool, _ = _pool()
    media_cfg = configuration.validate({}).media
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    port, pair = pool.open_pair()
    stream = MediaStream("c4", pair, None, None, None)
    wakes = []
    received = []
    run_commands = stream._run_commands
    stream._run_commands = lambda: (wakes.append(time.monotonic()), run_commands())[1]
    try:
        stream.play(_negotiated(port, _offer(peer.getsockname()[1]), media_cfg))
        peer.recvfrom(2048)  # our first packet: the thread runs
        session = stream.session
        receive = session.receive
        session.receive = lambda data, addr, now: (
            received.append((data[2:4], now)), receive(data, addr, now))[1]
        time.sleep(0.01)  # half a frame: out of phase with the ticks
        sent_at = {}
        began = time.monotonic()
        for sequence in range(50):  # one second of a peer's packets
            sent_at[sequence.to_bytes(2, "big")] = time.monotonic()
            peer.sendto(_rtp(sequence), ("127.0.0.1", port))
            time.sleep(max(0.0, began + (sequence + 1) * 0.02 - time.monotonic()))
        ended = time.monotonic()
        time.sleep(0.1)
    finally:
        stream.stop()
        peer.close()
    during = [t for t in wakes if began <= t < ended]
    assert len(received) == 50, len(received)
    # 50 frame ticks in the second (a slow machine may run late, never more), plus an RTCP
    # report at most; waking per packet as well would be about 100.
    assert len(during) <= 55, f"{len(during)} wake-ups in {ended - began:.2f} s"
    # Arrival times are the sending times (loopback), not the up to 20 ms later tick.
    offsets = sorted(now - sent_at[sequence] for sequence, now in received)
    assert -0.001 < offsets[0] and offsets[len(offsets) // 2] < 0.005, offsets


def test_stop_wakes_the_media_thread_instead_of_waiting_for_its_deadline(monkeypatch):
    """stop() runs on the event loop: it must not wait for the thread's next deadline (a frame
    tick, up to 20 ms, during which SIP would stall at every hang-up). With the tick made 1 s
    long and nothing to send (the peer only sends), stop() still returns at once."""
    from firmware.runtime import media

    monkeypatch.setattr(media, "FRAME", 1.0)
    pool, _ = _pool()
    media_cfg = configuration.validate({}).media
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    port, pair = pool.open_pair()
    stream = MediaStream("c5", pair, None, None, None)
    offer = _offer(peer.getsockname()[1]) + b"a=sendonly\r\n"
    negotiated = _negotiated(port, offer, media_cfg)
    assert not negotiated.sending
    try:
        stream.play(negotiated)
        time.sleep(0.2)  # the thread is asleep until its 1 s tick
        began = time.monotonic()
        stream.stop()
        took = time.monotonic() - began
    finally:
        peer.close()
    assert not stream._thread.is_alive()
    assert took < 0.5, f"stop() took {took:.3f} s"


def test_a_stopped_stream_is_freed_without_the_cycle_collector():
    """Issue 14, the answer path: a stopped call's stream (thread, sockets, RTP session) must be
    freed by reference counting when the station drops it. As a reference cycle it waited for
    the next gen-0 collection, which then freed ~60 objects per call in the middle of whatever
    ran, often the next INVITE's answer (~170 µs there)."""
    import gc
    import weakref

    pool, _ = _pool()
    media_cfg = configuration.validate({}).media
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2)
    port, pair = pool.open_pair()
    stream = MediaStream("c6", pair, None, None, None)
    try:
        stream.play(_negotiated(port, _offer(peer.getsockname()[1]), media_cfg))
        peer.recvfrom(2048)  # the thread runs and sends
    finally:
        stream.stop()
        peer.close()
    freed = weakref.ref(stream)
    gc.disable()
    try:
        del stream
        assert freed() is None, "the stopped stream is still held by a reference cycle"
    finally:
        gc.enable()


def test_port_draws_are_uniform_and_within_the_range():
    """PortPool's draws come from os.urandom without the `random` module (issue 14, sixth
    round): every value in [0, n), each about as often as the others."""
    from firmware.runtime.media import _draw

    assert {_draw(1) for _ in range(20)} == {0}
    counts = [0, 0, 0]
    for _ in range(3000):
        counts[_draw(3)] += 1
    assert all(800 < count < 1200 for count in counts), counts  # mean 1000, sd ~26
    big = [_draw(100000) for _ in range(200)]
    assert all(0 <= value < 100000 for value in big) and len(set(big)) > 190
