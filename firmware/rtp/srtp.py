"""SRTP and SRTCP protection (RFC 3711) with SDES keys (RFC 4568), through libsrtp.

This is the only module that imports `pylibsrtp`; it is not part of the MicroPython-portable
core. `RtpSession` does not import it either: it takes any object with `protect`, `unprotect`,
`protect_rtcp` and `unprotect_rtcp` (an `SrtpSession`).

Suites: AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32 (RFC 4568 §6.2; 16-byte master key,
14-byte master salt). With _32 only SRTP uses the 4-byte tag; SRTCP keeps the 10-byte tag
(RFC 4568 §6.2.2, RFC 3711 §5.2), which libsrtp does.

Rollover counter (RFC 3711 §3.3.1): libsrtp keeps the ROC per SSRC and estimates the packet
index from the sequence number (Appendix A), so a context must see a stream from its start;
pylibsrtp exposes no call to set a ROC. A receiver that joins a stream whose ROC is already
non-zero cannot authenticate it, which is the intended behaviour for SDES-keyed calls (both
sides start at ROC 0).

Replay protection (§3.3.2) is libsrtp's: a 128-packet window per SSRC on the receiving side.
The sending side allows repeating a sequence number, because RFC 4733 repeats the final
telephone-event packet.

The inline key text of `a=crypto` (base64 of key||salt) is parsed and produced by
`firmware.sdp.session.InlineKey`; this module takes raw bytes.

Public API
- `SrtpError(Exception)`: every failure (authentication, replay, bad key, bad packet); `.reason`.
- `AES_CM_128_HMAC_SHA1_80`, `AES_CM_128_HMAC_SHA1_32`, `SUITES`, `KEY_LENGTH` (16),
  `SALT_LENGTH` (14).
- `new_key_material() -> bytes` (30 random bytes: key||salt); `split_key_material(material)
  -> (key, salt)`.
- `SrtpContext(suite, master_key, master_salt, direction)` with `direction` `OUTBOUND`
  (`protect`, `protect_rtcp`) or `INBOUND` (`unprotect`, `unprotect_rtcp`).
- `SrtpSession(suite, local_key, local_salt, remote_key, remote_salt)`: one context each way;
  `protect(rtp)`, `unprotect(srtp)`, `protect_rtcp(rtcp)`, `unprotect_rtcp(srtcp)`.
"""

import os

import pylibsrtp

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable
    from typing import Any

AES_CM_128_HMAC_SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
AES_CM_128_HMAC_SHA1_32 = "AES_CM_128_HMAC_SHA1_32"
SUITES = (AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32)

KEY_LENGTH = 16
SALT_LENGTH = 14

OUTBOUND = "outbound"
INBOUND = "inbound"

_PROFILES = {
    AES_CM_128_HMAC_SHA1_80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    AES_CM_128_HMAC_SHA1_32: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
_SSRC_TYPES = {
    OUTBOUND: pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
    INBOUND: pylibsrtp.Policy.SSRC_ANY_INBOUND,
}


class SrtpError(Exception):
    """Protecting or unprotecting failed; `reason` says why (libsrtp's wording)."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, reason)
        self.reason = reason


def new_key_material() -> bytes:
    """Fresh master key and salt for one direction of one call (RFC 4568 §6.1)."""
    return os.urandom(KEY_LENGTH + SALT_LENGTH)


def split_key_material(material: bytes) -> tuple[bytes, bytes]:
    if len(material) != KEY_LENGTH + SALT_LENGTH:
        raise SrtpError("key material must be 30 bytes")
    return material[:KEY_LENGTH], material[KEY_LENGTH:]


class SrtpContext:
    """One direction of SRTP+SRTCP for every SSRC sent (or received) under one master key."""

    def __init__(self, suite: str, master_key: bytes, master_salt: bytes, direction: str) -> None:
        if suite not in _PROFILES:
            raise SrtpError(f"unsupported crypto suite {suite!r}")
        if direction not in _SSRC_TYPES:
            raise SrtpError(f"direction must be {OUTBOUND!r} or {INBOUND!r}")
        if len(master_key) != KEY_LENGTH or len(master_salt) != SALT_LENGTH:
            raise SrtpError("master key must be 16 bytes and master salt 14 bytes")
        self.suite = suite
        self.direction = direction
        policy = pylibsrtp.Policy(
            key=bytes(master_key) + bytes(master_salt),
            ssrc_type=_SSRC_TYPES[direction],
            srtp_profile=_PROFILES[suite],
        )
        if direction == OUTBOUND:
            policy.allow_repeat_tx = True
        try:
            self._session = pylibsrtp.Session(policy=policy)
        except pylibsrtp.Error as error:
            raise SrtpError(str(error)) from error
        # Per packet, straight into libsrtp (issue 14): pylibsrtp's `Session.protect` allocates
        # a length cell with cffi on every call and runs through two more Python frames; on a
        # wake-up after 20 ms of other work each of those costs cache misses. The fast path
        # uses pylibsrtp's own cffi binding and its session handle, with one buffer and one
        # length cell per context; where a pylibsrtp version lacks them, its public API serves.
        fast = _FastPath.attach(self._session)
        session = self._session
        if fast is not None:
            operations = (fast.protect, fast.protect_rtcp, fast.unprotect, fast.unprotect_rtcp)
        else:
            operations = (_wrapped(session.protect), _wrapped(session.protect_rtcp),
                          _wrapped(session.unprotect), _wrapped(session.unprotect_rtcp))
        wrong = self._wrong_direction
        if direction == OUTBOUND:
            self.protect, self.protect_rtcp = operations[:2]
            self.unprotect = self.unprotect_rtcp = wrong
        else:
            self.protect = self.protect_rtcp = wrong
            self.unprotect, self.unprotect_rtcp = operations[2:]

    # protect(rtp), protect_rtcp(rtcp) on an OUTBOUND context; unprotect(srtp),
    # unprotect_rtcp(srtcp) on an INBOUND one: each -> bytes, raising SrtpError
    protect: "Callable[[bytes], bytes]"
    protect_rtcp: "Callable[[bytes], bytes]"
    unprotect: "Callable[[bytes], bytes]"
    unprotect_rtcp: "Callable[[bytes], bytes]"

    def _wrong_direction(self, packet: bytes) -> bytes:
        raise SrtpError(f"this context is {self.direction}")

    def __repr__(self) -> str:
        return f"<SrtpContext {self.suite} {self.direction}>"  # never show keys


def _wrapped(operation: "Callable") -> "Callable[[bytes], bytes]":
    """pylibsrtp's public call, its errors as SrtpError."""
    def run(packet: bytes) -> bytes:
        try:
            return operation(bytes(packet))
        except (pylibsrtp.Error, ValueError) as error:
            raise SrtpError(str(error)) from error

    return run


class _FastPath:
    """libsrtp's protect/unprotect called through pylibsrtp's cffi binding with a buffer and a
    length cell made once (what `pylibsrtp.Session` does per call, minus the allocation)."""

    MAX_PACKET = 1500  # pylibsrtp's own buffer size
    TRAILER = 4 + 16 + 128  # room libsrtp may append: SRTCP index, tag, MKI (as pylibsrtp)

    def __init__(self, ffi: "Any", lib: "Any", session: "pylibsrtp.Session") -> None:
        self._session = session  # owns the handle (libsrtp's context is freed with it)
        self._handle = session._srtp[0]
        self._cdata = ffi.new("char[]", self.MAX_PACKET)
        self._buffer = ffi.buffer(self._cdata)
        self._length = ffi.new("int *")
        self._ok = lib.srtp_err_status_ok
        self.protect = self._operation(lib.srtp_protect, self.TRAILER)
        self.protect_rtcp = self._operation(lib.srtp_protect_rtcp, self.TRAILER)
        self.unprotect = self._operation(lib.srtp_unprotect, 0)
        self.unprotect_rtcp = self._operation(lib.srtp_unprotect_rtcp, 0)

    @classmethod
    def attach(cls, session: "pylibsrtp.Session") -> "_FastPath | None":
        try:
            from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]

            session._srtp[0]  # noqa: B018  # the handle, where this version keeps it
            lib.srtp_protect, lib.srtp_unprotect  # noqa: B018  # present in this binding?
            lib.srtp_protect_rtcp, lib.srtp_unprotect_rtcp  # noqa: B018
        except (ImportError, AttributeError, TypeError, IndexError):
            return None
        return cls(ffi, lib, session)

    def _operation(self, function: "Any", trailer: int) -> "Callable[[bytes], bytes]":
        cdata, buffer, length, handle, ok = (self._cdata, self._buffer, self._length,
                                              self._handle, self._ok)
        limit = self.MAX_PACKET - trailer

        def run(packet: bytes) -> bytes:
            size = len(packet)
            if size > limit:
                raise SrtpError("packet is too long")
            buffer[0:size] = packet
            length[0] = size
            status = function(handle, cdata, length)
            if status != ok:
                raise SrtpError(_reason(status))
            return buffer[0:length[0]]

        return run


def _reason(status: int) -> str:
    reasons = getattr(pylibsrtp, "ERRORS", ())
    return reasons[status] if 0 <= status < len(reasons) else f"libsrtp error {status}"


class SrtpSession:
    """Both directions of one call: protect with our key, unprotect with the peer's."""

    def __init__(self, suite: str, local_key: bytes, local_salt: bytes, remote_key: bytes,
                 remote_salt: bytes) -> None:
        self.suite = suite
        self._outbound = SrtpContext(suite, local_key, local_salt, OUTBOUND)
        self._inbound = SrtpContext(suite, remote_key, remote_salt, INBOUND)
        # the contexts' own functions: no frame of ours between the RTP session and libsrtp
        self.protect: Callable[[bytes], bytes] = self._outbound.protect
        self.protect_rtcp: Callable[[bytes], bytes] = self._outbound.protect_rtcp
        self.unprotect: Callable[[bytes], bytes] = self._inbound.unprotect
        self.unprotect_rtcp: Callable[[bytes], bytes] = self._inbound.unprotect_rtcp

    def __repr__(self) -> str:
        return f"<SrtpSession {self.suite}>"
