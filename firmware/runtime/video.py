"""Video for one call: an executor that PLAYS a negotiated H.264 stream (issue 16), beside the
audio's MediaStream (runtime/media.py), on its own port pair and two threads of its own:

- the sender (when we send and the station has a camera): holds the camera while the call
  lasts, takes the newest frame at the camera's rate (older ones are dropped, never queued),
  encodes it (one encoder per stream), packetizes it (firmware/rtp/h264.py, RFC 6184 mode 1)
  and sends the packets paced so that no 1 ms holds more than one path MTU. RTP timestamps are
  the capture time at 90 kHz. A key frame (SPS and PPS before it) at the start, every
  KEY_INTERVAL_S until the peer asks for one with PLI or FIR, and whenever it asks;
- the receiver: RTP from the peer's address only (SRTP unprotected when negotiated),
  reassembled into access units and decoded to count the decodable frames (`stats()`); a lost
  packet asks the peer for a key frame (PLI, at most once per PLI_INTERVAL_S); RTCP PLI/FIR
  from the peer set the key-frame flag.

Decides nothing: what to send and where come from the session layer's NegotiatedVideo.
"""

import logging
import os
import select
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING, Any

from firmware.rtp import h264
from firmware.rtp.packet import (
    OtherRtcp,
    ReceiverReport,
    RtpPacket,
    RtpParseError,
    SenderReport,
    SourceDescription,
    is_rtcp,
    parse_rtcp,
    serialize_rtcp,
)

if TYPE_CHECKING:
    from firmware.runtime.camera import CameraService
    from firmware.sdp.video import NegotiatedVideo
    from hal.camera import H264Encoder

log = logging.getLogger("doorline.video")

PATH_MTU = 1500
WIRE_OVERHEAD = 48  # IPv6 (40) + UDP (8) headers around each datagram
# IPv6 (40) + UDP (8) + RTP (12) + SRTP tag (10) + a margin for tunnels
MAX_PAYLOAD = 1200
KEY_INTERVAL_S = 2.0
PLI_INTERVAL_S = 1.0
MAX_DATAGRAMS_PER_WAKE = 64
RECEIVE_WAKE_S = 0.2
BITRATE = 600_000
DECODE_RECEIVED = True  # count decodable frames (FFmpeg's decoder; cheap at these sizes)
SR_INTERVAL_S = 5.0  # RTCP sender reports (RFC 3550 §6.4.1), for the peer's lip sync
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970


class VideoStream:
    def __init__(self, call_id: str, sockets: "list[socket.socket]",
                 camera: "CameraService | None") -> None:
        self.call_id = call_id
        self.rtp_socket, self.rtcp_socket = sockets
        self.camera = camera
        self.negotiated: NegotiatedVideo | None = None
        self.ssrc = struct.unpack("!I", os.urandom(4))[0]
        self._sequence = struct.unpack("!H", os.urandom(2))[0]
        self._ts_base = struct.unpack("!I", os.urandom(4))[0]
        self._srtp: Any = None
        self._stop = threading.Event()
        self.key_frames = h264.KeyFrames(KEY_INTERVAL_S)  # the policy (firmware/rtp/h264.py)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._counters = {"frames_sent": 0, "key_frames_sent": 0, "packets_sent": 0,
                          "bytes_sent": 0, "payload_bytes_sent": 0, "key_requests": 0,
                          "packets_received": 0, "frames_received": 0, "frames_decoded": 0,
                          "decode_errors": 0, "plis_sent": 0, "lost_frames": 0}
        self._delays: list[float] = []  # capture → first packet sent, seconds (last 256)
        self.decoded_size: tuple[int, int] | None = None
        self.remote_ssrc = 0

    # -- commands from the event loop --------------------------------------------------------
    def play(self, negotiated: "NegotiatedVideo") -> None:
        self.negotiated = negotiated
        self._srtp = _srtp_session(negotiated)
        self._start_thread(self._receive, "doorline-video-rx")
        if negotiated.sending and self.camera is not None:
            self._start_thread(self._send, "doorline-video-tx")
        log.info("video %s: %r", self.call_id, negotiated)

    def update(self, negotiated: "NegotiatedVideo | None") -> None:
        """A re-INVITE: the new address and direction (a stream that stops sending keeps its
        thread idle until the call ends)."""
        if negotiated is None:
            return
        if _keys(negotiated.srtp) != _keys(self.negotiated.srtp if self.negotiated else None):
            self._srtp = _srtp_session(negotiated)  # new keys (or none) from now on
        self.negotiated = negotiated
        self.key_frames.want()

    def stop(self) -> None:
        """Ends both threads without waiting for them on the event loop: the receiver closes
        the sockets when it leaves (within RECEIVE_WAKE_S), the sender after its frame."""
        self._stop.set()
        if not any(thread.is_alive() for thread in self._threads):
            self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in (self.rtp_socket, self.rtcp_socket):
            sock.close()

    def stats(self) -> "dict[str, Any]":
        with self._lock:
            out: dict[str, Any] = dict(self._counters)
            delays = sorted(self._delays)
        if delays:
            out["capture_to_rtp_ms"] = {"median": round(delays[len(delays) // 2] * 1000, 1),
                                        "max": round(delays[-1] * 1000, 1)}
        out["peer_asked_key_frame"] = self.key_frames.peer_asked
        if self.decoded_size is not None:
            out["received_size"] = list(self.decoded_size)
        return out

    def _start_thread(self, target: "Any", name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] += n

    # -- sending ---------------------------------------------------------------------------------
    def _send(self) -> None:
        camera = self.camera
        assert camera is not None
        camera.acquire()
        encoder: H264Encoder | None = None
        try:
            negotiated = self.negotiated
            assert negotiated is not None  # play() came first
            # the level in our SDP (sdp/video.py): the SPS says the same
            encoder = camera.camera.h264_encoder(BITRATE,
                                                 int(negotiated.profile_level_id[4:], 16))
            last_report = -1e9
            after = time.monotonic() - 1.0
            start: float | None = None
            while not self._stop.is_set():
                frame = camera.wait_frame(after, timeout=1.0)
                if frame is None:
                    if camera.error is not None and not camera.capturing:
                        log.error("video %s: camera failed (%s); no more video",
                                  self.call_id, camera.error)
                        return
                    continue
                after = frame.time
                negotiated = self.negotiated
                if negotiated is None or not negotiated.sending:
                    continue
                if start is None:
                    start = frame.time
                units = encoder.encode(frame, self.key_frames.due(frame.time))
                if not units:
                    continue
                if h264.is_key_frame(units):
                    self.key_frames.sent(frame.time)
                    self._count("key_frames_sent")
                timestamp = (self._ts_base + int((frame.time - start) * 90000)) & 0xFFFFFFFF
                self._send_access_unit(units, timestamp, frame.time, negotiated)
                if frame.time - last_report >= SR_INTERVAL_S:
                    last_report = frame.time
                    self._send_report(timestamp, frame.time, negotiated)
        except Exception:  # the encoder or a socket: the call's audio goes on
            log.exception("video %s: sending stopped", self.call_id)
        finally:
            if encoder is not None:
                encoder.close()
            camera.release()

    def _send_access_unit(self, units: "list[bytes]", timestamp: int, captured: float,
                          negotiated: "NegotiatedVideo") -> None:
        payloads = h264.packetize(units, MAX_PAYLOAD)
        datagrams = []
        for i, payload in enumerate(payloads):
            packet = RtpPacket(negotiated.payload_type, self._sequence, timestamp, self.ssrc,
                               payload, marker=i == len(payloads) - 1)
            self._sequence = (self._sequence + 1) & 0xFFFF
            data = packet.to_bytes()
            if self._srtp is not None:
                data = self._srtp.protect(data)
            datagrams.append(data)
        offsets = h264.pacing([len(d) + WIRE_OVERHEAD for d in datagrams], PATH_MTU)
        destination = (negotiated.remote_address, negotiated.remote_port)
        slot, last_sent = 0, time.monotonic()
        for i, (data, offset) in enumerate(zip(datagrams, offsets, strict=True)):
            if offset != slot:  # the next slot: 1 ms after the last datagram of this one went
                due = last_sent + (offset - slot) / 1000  # out (however late that was), so
                wait = due - time.monotonic()  # no 1 ms holds more than one path MTU
                if wait > 0:
                    time.sleep(wait)
                slot = offset
            try:
                self.rtp_socket.sendto(data, destination)
            except OSError as exc:  # a full buffer or an unreachable peer: drop, go on
                log.debug("video %s: send failed: %s", self.call_id, exc)
                continue
            finally:
                last_sent = time.monotonic()
            if i == 0:
                with self._lock:
                    self._delays.append(time.monotonic() - captured)
                    if len(self._delays) > 256:
                        self._delays.pop(0)
            self._count("packets_sent")
            self._count("bytes_sent", len(data))
            self._count("payload_bytes_sent", len(payloads[i]))
        self._count("frames_sent")

    def _send_report(self, timestamp: int, captured: float,
                     negotiated: "NegotiatedVideo") -> None:
        """SR + SDES CNAME: `timestamp` is the RTP time of `captured` (monotonic)."""
        wall = time.time() - (time.monotonic() - captured) + NTP_EPOCH_OFFSET
        ntp = int(wall * (1 << 32)) & 0xFFFFFFFFFFFFFFFF
        with self._lock:
            packets = self._counters["packets_sent"]
            octets = self._counters["payload_bytes_sent"]
        report = serialize_rtcp([
            SenderReport(self.ssrc, ntp, timestamp, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF),
            SourceDescription.with_cname(self.ssrc, "doorline-video")])
        if self._srtp is not None:
            report = self._srtp.protect_rtcp(report)
        try:
            self.rtcp_socket.sendto(report, (negotiated.remote_rtcp_address,
                                             negotiated.remote_rtcp_port))
        except OSError:
            pass

    # -- receiving -------------------------------------------------------------------------------
    def _receive(self) -> None:
        depacketizer = h264.Depacketizer()
        decoder: Any = None
        last_pli = -1e9
        sockets = [self.rtp_socket, self.rtcp_socket]
        try:
            while not self._stop.is_set():
                try:
                    readable, _, _ = select.select(sockets, [], [], RECEIVE_WAKE_S)
                except (OSError, ValueError):
                    return  # closed
                for sock in readable:
                    for _ in range(MAX_DATAGRAMS_PER_WAKE):
                        try:
                            data, source = sock.recvfrom(65536)
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:
                            break
                        negotiated = self.negotiated
                        if negotiated is None or source[0] != negotiated.remote_address:
                            continue  # media only from the address the SDP names
                        if sock is self.rtcp_socket or is_rtcp(data):
                            self._on_rtcp(data)
                            continue
                        units_done = self._on_rtp(data, depacketizer, negotiated)
                        for units in units_done:
                            self._count("frames_received")
                            if DECODE_RECEIVED:
                                if decoder is None:
                                    decoder = _decoder()
                                if decoder is not None and decoder.decode(units):
                                    self._count("frames_decoded")
                                    self.decoded_size = decoder.size
                now = time.monotonic()
                if depacketizer.wants_key_frame and self._counters["packets_received"] and \
                        now - last_pli >= PLI_INTERVAL_S:
                    last_pli = now
                    self._send_pli()
                with self._lock:
                    self._counters["lost_frames"] = depacketizer.lost_units
        except Exception:
            log.exception("video %s: receiving stopped", self.call_id)
        finally:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join(timeout=2.0)  # the sender's last frame goes out first
            self._close_sockets()

    def _on_rtp(self, data: bytes, depacketizer: "h264.Depacketizer",
                negotiated: "NegotiatedVideo") -> "list[list[bytes]]":
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect(data)
            except Exception:  # srtp.SrtpError: forged or replayed
                return []
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            return []
        if packet.payload_type != negotiated.payload_type:
            return []
        self._count("packets_received")
        self.remote_ssrc = packet.ssrc
        return depacketizer.push(packet.payload, packet.sequence, packet.timestamp,
                                 packet.marker)

    def _on_rtcp(self, data: bytes) -> None:
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect_rtcp(data)
            except Exception:
                return
        try:
            packets = parse_rtcp(data)
        except RtpParseError:
            return
        for packet in packets:
            if isinstance(packet, OtherRtcp) and h264.key_frame_requested(
                    packet.packet_type, packet.count, packet.body, self.ssrc):
                self.key_frames.requested()  # the sender thread reads it at its next frame
                self._count("key_requests")

    def _send_pli(self) -> None:
        negotiated = self.negotiated
        if negotiated is None or not negotiated.pli:
            return
        # a compound packet (RFC 3550 §6.1): an empty receiver report, then the PLI
        data = ReceiverReport(self.ssrc).to_bytes() + h264.pli(self.ssrc, self.remote_ssrc)
        if self._srtp is not None:
            data = self._srtp.protect_rtcp(data)
        try:
            self.rtcp_socket.sendto(data, (negotiated.remote_rtcp_address,
                                           negotiated.remote_rtcp_port))
            self._count("plis_sent")
        except OSError:
            pass


def _keys(params: "Any") -> "tuple[bytes, bytes, bytes, bytes] | None":
    if params is None:
        return None
    return params.local_key, params.local_salt, params.remote_key, params.remote_salt


def _srtp_session(negotiated: "NegotiatedVideo") -> "Any":
    if negotiated.srtp is None:
        return None
    from firmware.rtp import srtp

    p = negotiated.srtp
    return srtp.SrtpSession(p.suite, p.local_key, p.local_salt, p.remote_key, p.remote_salt)


def _decoder() -> "Any":
    try:
        from hal.camera_av import H264Decoder

        return H264Decoder()
    except Exception as exc:  # no PyAV: count frames, decode none
        log.warning("received video is not decoded: %s", exc)
        return None
