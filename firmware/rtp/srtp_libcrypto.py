"""SRTP and SRTCP (RFC 3711) on the libcrypto the process already has: AES-CM and HMAC-SHA1.

Why (issue 14, memory in an SRTP call): Python's hashlib and ssl load OpenSSL's libcrypto, and a
station that has checked its admin password (scrypt) or serves https has it mapped anyway.
pylibsrtp's binding carried a second, static OpenSSL (+5.6 MB in the first SRTP call); the
system's libsrtp 2 brings NSS, softokn, freebl and sqlite (+3.3 MB). This module runs AES-128
through the mapped libcrypto (ctypes, `EVP_aes_128_ecb` over counter blocks: AES-CM keystream)
and takes HMAC-SHA1 from CPython's own `_sha1` (the pads hashed once per key): what an SRTP
call adds is this file and two cipher contexts per session.

CPU per packet (issue 14, sixth round): a media thread wakes every 20 ms with cold caches, and
then one ctypes call into libcrypto costs more than the rest of a packet's crypto. So the
keystreams of the next `PAD_PACKETS` RTP packet indices of an SSRC are made in one call and a
packet is encrypted by one XOR of Python integers; HMAC copies prepared SHA-1 states (measured
in docs/BENCH.md, "Issue 14, sixth round").

CPython only (manifest.py `CPYTHON_ONLY`); srtp.py is its only importer and chooses it first.

RFC map
- §4.3.1/§4.3.2 key derivation with key_derivation_rate 0: labels 0-2 (SRTP encryption key,
  authentication key, salt), 3-5 (SRTCP); PRF = AES-CM keyed with the master key, IV =
  (label || 0^48) XOR master salt, times 2^16 (`_derive`).
- §4.1.1 AES-CM: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16) (`_iv`, `Session._pad`);
  the keystream is AES(IV), AES(IV + 1), ... (`_Ctr`: ECB over those counter blocks).
- §4.2/§4.2.1 HMAC-SHA1 (RFC 2104) over the authenticated portion || ROC (SRTP) or
  || E||SRTCP index (SRTCP), truncated to the suite's tag: 10 or 4 bytes for SRTP, always 10
  for SRTCP (RFC 4568 §6.2.2).
- §3.3.1 and Appendix A: the packet index from SEQ and the highest index seen (`_guess`), as
  libsrtp estimates it (a stream still below 2^15 takes SEQ as is).
- §3.3.2 replay list: a 128-packet window per SSRC (libsrtp's default), checked before the tag,
  updated only after the tag verified. The sender allows a repeated index (RFC 4733 repeats the
  final telephone-event packet).
- §3.4 SRTCP: the first 8 octets in the clear, the E flag and the 31-bit index appended; a
  fresh sender's first index is 1 (as libsrtp). A received packet with E = 0 (sent in the
  clear) is refused, as libsrtp refuses it under a policy that encrypts: no downgrade.

Public API
- `Unavailable(Exception)`, `Error(srtp.SrtpError)` (libsrtp's wording: "authentication failure",
  "replay check failed (bad index)", "replay check failed (index too old)", ...).
- `load()`: finds the mapped libcrypto (loading `_hashlib` first); raises `Unavailable`.
- `Session(profile, key_and_salt, outbound)` with `protect`, `unprotect`, `protect_rtcp`,
  `unprotect_rtcp`, the shape of pylibsrtp's `Session` (`profile` 1 = _80, 2 = _32, libsrtp's
  `srtp_profile_t`).
"""

import ctypes
import struct
import threading

from firmware.compat import compare_digest
from firmware.rtp.srtp import SrtpError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from typing import Any

PROFILE_AES128_CM_SHA1_80 = 1
PROFILE_AES128_CM_SHA1_32 = 2
_TAG = {PROFILE_AES128_CM_SHA1_80: 10, PROFILE_AES128_CM_SHA1_32: 4}
SRTCP_TAG = 10
KEY_LENGTH, SALT_LENGTH, AUTH_KEY_LENGTH = 16, 14, 20
WINDOW = 128  # replay window, packets (libsrtp's default)
_WINDOW_MASK = (1 << WINDOW) - 1
MAX_STREAMS = 32  # SSRCs remembered per session (bounded; the oldest is forgotten)
PAD_PACKETS = 64  # RTP keystreams made ahead per SSRC, in one batch (issue 14, below)
MAX_PAD = 2048  # octets of keystream kept per packet index at most (a datagram's worth)
_MEDIAN = 1 << 15
_SRTCP_INDEX_MAX = (1 << 31) - 1
_E_FLAG = 0x80000000
_SEQ_SSRC = struct.Struct("!H4xI").unpack_from

AUTH_FAIL = "authentication failure"
REPLAY_FAIL = "replay check failed (bad index)"
REPLAY_OLD = "replay check failed (index too old)"
BAD_PARAM = "unsupported parameter"
KEY_EXPIRED = "can't use key any more"
CANT_CHECK = "unable to perform desired validation"


class Unavailable(Exception):
    """No usable libcrypto in this process."""


class Error(SrtpError):
    """Protecting or unprotecting failed (libsrtp's wording); an `srtp.SrtpError`, so that
    `srtp.SrtpSession` can hand out this module's methods themselves."""


_crypto: "_Crypto | None" = None
_lock = threading.Lock()


class _Crypto:
    """The few libcrypto calls: AES-128 in ECB mode over counter blocks (= AES-CM keystream,
    many packets' worth per call), and SHA-1 for HMAC: CPython's own `_sha1` (measured
    cheaper per packet on a cold wake-up than OpenSSL's through `_hashlib`), else
    `_hashlib`'s."""

    def __init__(self, lib: "ctypes.CDLL") -> None:
        try:
            import _sha1  # type: ignore[import-not-found]

            self.sha1: Any = _sha1.sha1
        except ImportError:  # a CPython built without it
            import _hashlib

            self.sha1 = _hashlib.openssl_sha1
        lib.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
        lib.EVP_CIPHER_CTX_free.argtypes = [ctypes.c_void_p]
        lib.EVP_CIPHER_CTX_set_padding.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.EVP_aes_128_ecb.restype = ctypes.c_void_p
        lib.EVP_EncryptInit_ex.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                           ctypes.c_char_p, ctypes.c_char_p]
        lib.EVP_EncryptInit_ex.restype = ctypes.c_int
        lib.EVP_EncryptUpdate.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                          ctypes.POINTER(ctypes.c_int), ctypes.c_char_p,
                                          ctypes.c_int]
        lib.EVP_EncryptUpdate.restype = ctypes.c_int
        self.lib = lib
        self.cipher = lib.EVP_aes_128_ecb()
        if not self.cipher:
            raise Unavailable("libcrypto has no AES-128-ECB")


def _mapped_libcrypto() -> str:
    """The path of the libcrypto this process has mapped ("" when none)."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").partition("/")[2]
                if "libcrypto.so" in path:
                    return "/" + path
    except OSError:
        pass
    return ""


def load() -> "_Crypto":
    global _crypto
    with _lock:
        if _crypto is not None:
            return _crypto
        try:
            import _hashlib  # noqa: F401  # maps libcrypto, as hashlib would
        except ImportError as error:
            raise Unavailable(f"no _hashlib: {error}") from error
        path = _mapped_libcrypto()
        if not path:
            raise Unavailable("no libcrypto mapped (hashlib without OpenSSL)")
        try:
            crypto = _Crypto(ctypes.CDLL(path))  # the same library: dlopen counts a reference
        except (OSError, AttributeError) as error:
            raise Unavailable(f"{path}: {error}") from error
        _crypto = crypto
        return crypto


class _Hmac:
    """HMAC-SHA1 (RFC 2104) under one key: the inner and outer pads hashed once, copied per
    message (half the time of a one-shot `hmac.digest`, which re-keys every packet). The RTP
    paths of `Session` inline `digest` (one Python frame less per packet)."""

    __slots__ = ("inner", "outer")

    def __init__(self, crypto: "_Crypto", key: bytes) -> None:
        block = key.ljust(64, b"\x00")  # keys here are 20 bytes: never hashed first
        self.inner = crypto.sha1(bytes(b ^ 0x36 for b in block))
        self.outer = crypto.sha1(bytes(b ^ 0x5C for b in block))

    def digest(self, message: bytes) -> bytes:
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return bytes(outer.digest())


_COUNTERS: "dict[int, tuple[int, int]]" = {}  # blocks -> (_repeat, _counts), see _Ctr


def _counters(blocks: int) -> "tuple[int, int]":
    """For `blocks` 16-octet counter blocks as one integer: the multiplier that repeats a
    128-bit IV in each block, and the block numbers 0, 1, ... in each block's low bits (the
    IV's low 16 bits are zero, RFC 3711 §4.1.1, so OR adds them)."""
    pair = _COUNTERS.get(blocks)
    if pair is None:
        pair = (int.from_bytes((b"\x00" * 15 + b"\x01") * blocks, "big"),
                int.from_bytes(b"".join(j.to_bytes(16, "big") for j in range(blocks)), "big"))
        if blocks <= MAX_PAD // 16:  # bounded: one entry per size up to a datagram
            _COUNTERS[blocks] = pair
    return pair


class _Ctr:
    """AES-128 in counter mode under one key, as keystream: one EVP AES-128-ECB context
    (keyed once, no padding) encrypts the counter blocks of one packet or of a batch in one
    call. `keystreams(ivs, size)`: `size` octets of keystream from each 128-bit counter `iv`
    (integers, low 16 bits zero), as integers; `apply(iv, data)` encrypts or decrypts."""

    def __init__(self, crypto: "_Crypto", key: bytes) -> None:
        lib = crypto.lib
        self._lib = lib
        self._ctx = lib.EVP_CIPHER_CTX_new()
        if not self._ctx or not lib.EVP_EncryptInit_ex(self._ctx, crypto.cipher, None, key,
                                                       None):
            raise Error("cipher failure")
        lib.EVP_CIPHER_CTX_set_padding(self._ctx, 0)
        self._update = lib.EVP_EncryptUpdate
        self._out = bytearray(0)
        self._view: ctypes.Array[ctypes.c_char] | None = None
        self._outl = ctypes.c_int()
        self._outl_ref = ctypes.byref(self._outl)

    def keystreams(self, ivs: "list[int] | range", size: int) -> "list[int]":
        if size <= 0:
            return [0 for _ in ivs]
        blocks = (size + 15) >> 4
        span = blocks << 4
        repeat, counts = _counters(blocks)
        counters = b"".join([(iv * repeat | counts).to_bytes(span, "big") for iv in ivs])
        total = len(counters)
        if total > len(self._out):
            self._out = bytearray(total)
            self._view = (ctypes.c_char * total).from_buffer(self._out)
        if not self._update(self._ctx, self._view, self._outl_ref, counters, total):
            raise Error("cipher failure")
        out = self._out
        return [int.from_bytes(out[start:start + size], "big") for start in range(0, total, span)]

    def apply(self, iv: bytes, data: bytes) -> bytes:
        size = len(data)
        if size == 0:
            return b""
        stream = self.keystreams([int.from_bytes(iv, "big")], size)[0]
        return (int.from_bytes(data, "big") ^ stream).to_bytes(size, "big")

    def __del__(self) -> None:
        ctx = getattr(self, "_ctx", None)
        if ctx:
            self._lib.EVP_CIPHER_CTX_free(ctx)
            self._ctx = None


def _derive(crypto: "_Crypto", master_key: bytes, master_salt: bytes, label: int,
            length: int) -> bytes:
    """RFC 3711 §4.3.1 with kdr 0: AES-CM keystream from IV = ((label || 0^48) XOR salt) * 2^16."""
    x = bytearray(master_salt)
    x[7] ^= label
    return _Ctr(crypto, master_key).apply(bytes(x) + b"\x00\x00", bytes(length))


def _iv(salt: int, ssrc: int, index: int) -> bytes:
    """RFC 3711 §4.1.1: (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16), 16 octets; `salt` is
    k_s * 2^16 as an integer."""
    return (salt ^ (ssrc << 64) ^ (index << 16)).to_bytes(16, "big")


def _guess(top: int, seq: int) -> int:
    """The packet index of SEQ given the highest index seen (RFC 3711 Appendix A; a stream whose
    index is still at most 2^15 takes SEQ itself, as libsrtp's srtp_rdbx_estimate_index)."""
    if top <= _MEDIAN:
        return seq
    roc, local = top >> 16, top & 0xFFFF
    if local < _MEDIAN:
        if seq - local > _MEDIAN:
            roc -= 1
    elif local - _MEDIAN > seq:
        roc += 1
    return (roc << 16) | seq


class _Window:
    """The replay list (§3.3.2): the highest index and a bitmask of the WINDOW below it."""

    __slots__ = ("top", "mask")

    def __init__(self) -> None:
        self.top = 0
        self.mask = 0  # bit k: index top - k was accepted

    def check(self, index: int, allow_repeat: bool = False) -> None:
        delta = index - self.top
        if delta > 0:
            return
        if -delta >= WINDOW:
            raise Error(REPLAY_OLD)
        if self.mask >> -delta & 1 and not allow_repeat:
            raise Error(REPLAY_FAIL)

    def add(self, index: int) -> None:
        delta = index - self.top
        if delta > 0:
            self.mask = ((self.mask << delta) | 1) & ((1 << WINDOW) - 1)
            self.top = index
        else:
            self.mask |= 1 << -delta


class _Stream:
    """One SSRC's replay lists, SRTCP index and the RTP keystreams made ahead (`pads`: packet
    index -> keystream of `pad_size` octets as an integer; `pad_end`: the index after the last
    one made)."""

    __slots__ = ("rtp", "rtcp", "rtcp_sent", "pads", "pad_size", "pad_end")

    def __init__(self) -> None:
        self.rtp = _Window()
        self.rtcp = _Window()
        self.rtcp_sent = 0
        self.pads: dict[int, int] = {}
        self.pad_size = 0
        self.pad_end = 0


def _rtp_header_length(packet: bytes) -> int:
    """Octets before the payload (fixed header, CSRCs, header extension); -1 if truncated."""
    if len(packet) < 12:
        return -1
    length = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if len(packet) < length + 4:
            return -1
        length += 4 + 4 * int.from_bytes(packet[length + 2:length + 4], "big")
    return length if len(packet) >= length else -1


class Session:
    """Every SSRC sent (outbound) or received under one master key and salt.

    Per RTP packet (issue 14, CPU per call: on a wake-up every 20 ms the code and data of each
    distinct call are cold, and one ctypes call into libcrypto cost more than the rest of the
    packet's crypto): the AES-CM keystreams of the next `PAD_PACKETS` packet indices of an SSRC
    are made in one batch (indices are sequential both ways), so a packet's encryption is one
    XOR of Python integers; a packet outside the batch (reordered, repeated, larger) gets its
    own keystream. HMAC-SHA1 copies the prepared pads. Each batch's keystream is what RFC 3711
    §4.1.1 defines for that index; nothing else is kept ahead."""

    def __init__(self, profile: int, key_and_salt: bytes, outbound: bool) -> None:
        if profile not in _TAG or len(key_and_salt) != KEY_LENGTH + SALT_LENGTH:
            raise Error(BAD_PARAM)
        crypto = load()
        key, salt = bytes(key_and_salt[:KEY_LENGTH]), bytes(key_and_salt[KEY_LENGTH:])
        self._tag = _TAG[profile]
        self._outbound = outbound
        self._rtp_cipher = _Ctr(crypto, _derive(crypto, key, salt, 0, KEY_LENGTH))
        rtp_auth = _Hmac(crypto, _derive(crypto, key, salt, 1, AUTH_KEY_LENGTH))
        self._rtp_inner, self._rtp_outer = rtp_auth.inner, rtp_auth.outer
        self._rtp_salt = int.from_bytes(_derive(crypto, key, salt, 2, SALT_LENGTH), "big") << 16
        self._rtcp_cipher = _Ctr(crypto, _derive(crypto, key, salt, 3, KEY_LENGTH))
        self._rtcp_auth = _Hmac(crypto, _derive(crypto, key, salt, 4, AUTH_KEY_LENGTH)).digest
        self._rtcp_salt = int.from_bytes(_derive(crypto, key, salt, 5, SALT_LENGTH),
                                         "big") << 16
        self._streams: dict[int, _Stream] = {}

    def _stream(self, ssrc: int) -> "_Stream":
        stream = self._streams.get(ssrc)
        if stream is None:
            if len(self._streams) >= MAX_STREAMS:
                del self._streams[next(iter(self._streams))]
            stream = self._streams[ssrc] = _Stream()
        return stream

    def _pad(self, stream: "_Stream", ssrc: int, index: int, size: int) -> int:
        """The keystream of `size` octets for `index` when the batch has none (as an integer):
        the next batch from `index` on, or for an index behind the batch (reordered, repeated)
        or a packet larger than any datagram, this packet's alone."""
        cipher, base = self._rtp_cipher, self._rtp_salt ^ (ssrc << 64)
        if size > MAX_PAD or (index < stream.pad_end and size <= stream.pad_size):
            return cipher.keystreams([base ^ (index << 16)], size)[0]
        if size > stream.pad_size:
            stream.pad_size = (size + 15) & ~15
        pad_size = stream.pad_size
        pads = cipher.keystreams([base ^ (ahead << 16)
                                  for ahead in range(index, index + PAD_PACKETS)], pad_size)
        stream.pads = dict(zip(range(index + 1, index + PAD_PACKETS), pads[1:], strict=True))
        stream.pad_end = index + PAD_PACKETS
        return pads[0] >> 8 * (pad_size - size)

    def protect(self, rtp: bytes) -> bytes:
        if not self._outbound:
            raise Error(BAD_PARAM)
        # The usual packet (no CSRC, no header extension) skips the general header walk.
        header = 12 if len(rtp) >= 12 and not rtp[0] & 0x1F else _rtp_header_length(rtp)
        if header < 0:
            raise Error(BAD_PARAM)
        seq, ssrc = _SEQ_SSRC(rtp, 2)
        stream = self._streams.get(ssrc) or self._stream(ssrc)
        window = stream.rtp
        top = window.top
        index = seq if top <= _MEDIAN else _guess(top, seq)
        delta = index - top
        if delta > 0:  # the usual packet: the next index (RFC 3711 §3.3.2 as _Window.add)
            window.mask = ((window.mask << delta) | 1) & _WINDOW_MASK
            window.top = index
        else:
            window.check(index, allow_repeat=True)
            window.add(index)
        size = len(rtp) - header
        pad = stream.pads.pop(index, None)
        if pad is not None and size <= stream.pad_size:
            pad >>= 8 * (stream.pad_size - size)
        else:
            pad = self._pad(stream, ssrc, index, size)
        encrypted = rtp[:header] + (int.from_bytes(rtp[header:], "big") ^ pad).to_bytes(
            size, "big")
        inner = self._rtp_inner.copy()
        inner.update(encrypted + (index >> 16).to_bytes(4, "big"))
        outer = self._rtp_outer.copy()
        outer.update(inner.digest())
        return encrypted + outer.digest()[:self._tag]

    def unprotect(self, srtp: bytes) -> bytes:
        if self._outbound:
            raise Error(BAD_PARAM)
        end = len(srtp) - self._tag
        if end < 12:
            raise Error(BAD_PARAM)
        header = 12 if not srtp[0] & 0x1F else _rtp_header_length(srtp[:end])
        if header < 0:
            raise Error(BAD_PARAM)
        seq, ssrc = _SEQ_SSRC(srtp, 2)
        stream = self._streams.get(ssrc)
        window = stream.rtp if stream is not None else _Window()
        top = window.top
        index = seq if top <= _MEDIAN else _guess(top, seq)
        if index <= top:
            window.check(index)
        authenticated = srtp[:end]
        inner = self._rtp_inner.copy()
        inner.update(authenticated + (index >> 16).to_bytes(4, "big"))
        outer = self._rtp_outer.copy()
        outer.update(inner.digest())
        if not compare_digest(outer.digest()[:self._tag], srtp[end:]):
            raise Error(AUTH_FAIL)
        if stream is None:  # a new SSRC counts once its first packet has authenticated
            stream = self._stream(ssrc)
            stream.rtp = window
        delta = index - top
        if delta > 0:
            window.mask = ((window.mask << delta) | 1) & _WINDOW_MASK
            window.top = index
        else:
            window.add(index)
        size = end - header
        pad = stream.pads.pop(index, None)
        if pad is not None and size <= stream.pad_size:
            pad >>= 8 * (stream.pad_size - size)
        else:
            pad = self._pad(stream, ssrc, index, size)
        return srtp[:header] + (int.from_bytes(srtp[header:end], "big") ^ pad).to_bytes(
            size, "big")

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        if not self._outbound:
            raise Error(BAD_PARAM)
        if len(rtcp) < 8:
            raise Error(BAD_PARAM)
        ssrc = struct.unpack_from("!I", rtcp, 4)[0]
        stream = self._stream(ssrc)
        if stream.rtcp_sent >= _SRTCP_INDEX_MAX:
            raise Error(KEY_EXPIRED)
        stream.rtcp_sent += 1
        index = stream.rtcp_sent
        encrypted = rtcp[:8] + self._rtcp_cipher.apply(_iv(self._rtcp_salt, ssrc, index),
                                                       rtcp[8:])
        trailer = struct.pack("!I", _E_FLAG | index)
        tag = self._rtcp_auth(encrypted + trailer)[:SRTCP_TAG]
        return encrypted + trailer + tag

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        if self._outbound:
            raise Error(BAD_PARAM)
        end = len(srtcp) - SRTCP_TAG - 4
        if end < 8:
            raise Error(BAD_PARAM)
        ssrc = struct.unpack_from("!I", srtcp, 4)[0]
        word = struct.unpack_from("!I", srtcp, end)[0]
        if not word & _E_FLAG:  # sent in the clear, while these suites encrypt: not accepted
            raise Error(CANT_CHECK)
        index = word & _SRTCP_INDEX_MAX
        stream = self._streams.get(ssrc)
        window = stream.rtcp if stream is not None else _Window()
        window.check(index)
        expected = self._rtcp_auth(srtcp[:end + 4])[:SRTCP_TAG]
        if not compare_digest(expected, srtcp[end + 4:]):
            raise Error(AUTH_FAIL)
        if stream is None:
            stream = self._stream(ssrc)
            stream.rtcp = window
        window.add(index)
        return srtcp[:8] + self._rtcp_cipher.apply(_iv(self._rtcp_salt, ssrc, index),
                                                   srtcp[8:end])
