"""SRTP and SRTCP protection (RFC 3711) with SDES keys (RFC 4568), through libsrtp.

Two backends with one behaviour (the same vectors, tests/rtp/test_srtp.py): our RFC 3711 on the
libcrypto that hashlib maps (firmware/rtp/srtp_libcrypto.py; nothing more to load where the
page's password check or https has mapped it), and pylibsrtp (libsrtp 2 with its own static
OpenSSL: +5.6 MB of RSS from the first SRTP call on, issue 14) where the process has no
libcrypto, or with `DOORLINE_SRTP=pylibsrtp`. This is the only module that imports either; it
is not part of the MicroPython-portable core. `RtpSession` does not
import it either: it takes any object with `protect`, `unprotect`, `protect_rtcp` and
`unprotect_rtcp` (an `SrtpSession`).

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

# srtp_profile_t (libsrtp 2, both backends); pylibsrtp's Policy constants have the same values.
_PROFILES = {AES_CM_128_HMAC_SHA1_80: 1, AES_CM_128_HMAC_SHA1_32: 2}
_DIRECTIONS = (OUTBOUND, INBOUND)

LIBCRYPTO = "libcrypto"  # backend names, as `DOORLINE_SRTP` takes them
PYLIBSRTP = "pylibsrtp"
_backend: "str | None" = None  # chosen at the first context


def backend() -> str:
    """The backend in use, chosen once: ours on libcrypto unless it is missing or not wanted."""
    global _backend
    if _backend is None:
        wanted = os.environ.get("DOORLINE_SRTP", LIBCRYPTO)
        _backend = PYLIBSRTP
        if wanted != PYLIBSRTP:
            from firmware.rtp import srtp_libcrypto

            try:
                srtp_libcrypto.load()
                _backend = LIBCRYPTO
            except srtp_libcrypto.Unavailable:
                pass
    return _backend


def _pylibsrtp_session(profile: int, material: bytes, outbound: bool) -> "Any":
    import pylibsrtp

    policy = pylibsrtp.Policy(
        key=material,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound
        else pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=profile,
    )
    if outbound:
        policy.allow_repeat_tx = True
    try:
        return pylibsrtp.Session(policy=policy)
    except pylibsrtp.Error as error:
        raise SrtpError(str(error)) from error


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
        if direction not in _DIRECTIONS:
            raise SrtpError(f"direction must be {OUTBOUND!r} or {INBOUND!r}")
        if len(master_key) != KEY_LENGTH or len(master_salt) != SALT_LENGTH:
            raise SrtpError("master key must be 16 bytes and master salt 14 bytes")
        self.suite = suite
        self.direction = direction
        material = bytes(master_key) + bytes(master_salt)
        outbound = direction == OUTBOUND
        self.direct = False
        if backend() == LIBCRYPTO:
            from firmware.rtp import srtp_libcrypto

            # its errors are SrtpErrors: SrtpSession hands out its methods themselves
            self.direct = True
            self._errors: tuple[type[Exception], ...] = (srtp_libcrypto.Error, ValueError)
            try:
                self._session: Any = srtp_libcrypto.Session(_PROFILES[suite], material,
                                                            outbound)
            except srtp_libcrypto.Error as error:
                raise SrtpError(str(error)) from error
        else:
            import pylibsrtp

            self._errors = (pylibsrtp.Error, ValueError)
            self._session = _pylibsrtp_session(_PROFILES[suite], material, outbound)

    def _run(self, operation: "Callable", direction: str, packet: bytes) -> bytes:
        if self.direction != direction:
            raise SrtpError(f"this context is {self.direction}")
        try:
            return operation(bytes(packet))
        except self._errors as error:
            raise SrtpError(str(error)) from error

    def protect(self, rtp: bytes) -> bytes:
        return self._run(self._session.protect, OUTBOUND, rtp)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._run(self._session.protect_rtcp, OUTBOUND, rtcp)

    def unprotect(self, srtp: bytes) -> bytes:
        return self._run(self._session.unprotect, INBOUND, srtp)

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        return self._run(self._session.unprotect_rtcp, INBOUND, srtcp)

    def __repr__(self) -> str:
        return f"<SrtpContext {self.suite} {self.direction}>"  # never show keys


class SrtpSession:
    """Both directions of one call: protect with our key, unprotect with the peer's."""

    def __init__(self, suite: str, local_key: bytes, local_salt: bytes, remote_key: bytes,
                 remote_salt: bytes) -> None:
        self.suite = suite
        self._outbound = SrtpContext(suite, local_key, local_salt, OUTBOUND)
        self._inbound = SrtpContext(suite, remote_key, remote_salt, INBOUND)
        # the contexts' methods themselves: one Python frame less per packet (issue 14); on
        # libcrypto the backend's own (two frames less: its errors are SrtpErrors, and each
        # context has one direction)
        outbound: Any = self._outbound._session if self._outbound.direct else self._outbound
        inbound: Any = self._inbound._session if self._inbound.direct else self._inbound
        self.protect: Callable[[bytes], bytes] = outbound.protect
        self.protect_rtcp: Callable[[bytes], bytes] = outbound.protect_rtcp
        self.unprotect: Callable[[bytes], bytes] = inbound.unprotect
        self.unprotect_rtcp: Callable[[bytes], bytes] = inbound.unprotect_rtcp

    def __repr__(self) -> str:
        return f"<SrtpSession {self.suite}>"
