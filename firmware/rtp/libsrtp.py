"""The system's libsrtp 2 (`libsrtp2.so.1`), loaded with ctypes: SRTP without pylibsrtp and cffi.

Why (issue 14, memory in an SRTP call): pylibsrtp's wheel links a whole OpenSSL libcrypto into
its 7 MB `_binding.abi3.so` and loads cffi's backend beside it; the first SRTP call mapped
+5.6 MB of RSS that stayed for the process's life. Debian's and Raspberry Pi OS's `libsrtp2-1`
is a 0.1 MB library (its ciphers come from NSS there): +2.0 MB with its crypto loaded and
initialised. ctypes is already loaded by then (runtime/memory.py), so nothing else comes with it.

This module is CPython only (manifest.py `CPYTHON_ONLY`), like srtp.py, which is its only
importer and which falls back to pylibsrtp where this library is missing or not version 2.

Layout: `srtp_policy_t` and `srtp_crypto_policy_t` as declared in libsrtp 2.x's `srtp2/srtp.h`
(unchanged from 2.0 to 2.6; libsrtp 3 changes them, hence the version check in `load`).

Public API
- `Unavailable(Exception)`: the library is missing or not libsrtp 2.
- `Error(Exception)`: a libsrtp call failed; the message is libsrtp's own wording of its status.
- `load() -> None`: opens and initialises the library once (`srtp_init`); raises `Unavailable`.
- `PROFILE_AES128_CM_SHA1_80`, `PROFILE_AES128_CM_SHA1_32` (`srtp_profile_t`).
- `Session(profile, key_and_salt, outbound)`: one `srtp_t` for any SSRC sent (outbound) or
  received; `protect`, `unprotect`, `protect_rtcp`, `unprotect_rtcp` take and return bytes.
  A session is used by one thread at a time (the media thread that owns the call).
"""

import ctypes
import threading

PROFILE_AES128_CM_SHA1_80 = 1  # srtp_profile_aes128_cm_sha1_80
PROFILE_AES128_CM_SHA1_32 = 2  # srtp_profile_aes128_cm_sha1_32
_SSRC_ANY_INBOUND = 2  # srtp_ssrc_type_t
_SSRC_ANY_OUTBOUND = 3
_MAX_TRAILER = 16 + 128 + 4  # SRTP_MAX_TRAILER_LEN (tag + MKI), + the SRTCP index
_LIBRARY = "libsrtp2.so.1"

# srtp_err_status_t, in libsrtp's own words (srtp2/srtp.h), indexed by status.
_STATUS = (
    "nothing to report", "unspecified failure", "unsupported parameter",
    "couldn't allocate memory", "couldn't deallocate properly", "couldn't initialize",
    "can't process as much data as requested", "authentication failure", "cipher failure",
    "replay check failed (bad index)", "replay check failed (index too old)",
    "algorithm failed test routine", "unsupported operation", "no appropriate context found",
    "unable to perform desired validation", "can't use key any more", "error in use of socket",
    "error in use POSIX signals", "nonce check failed", "couldn't read data",
    "couldn't write data", "error parsing data", "error encoding data",
    "error while using semaphores", "error while using pfkey",
    "error MKI present in packet is invalid", "packet index is too old to consider",
    "packet index advanced, reset needed",
)


class Unavailable(Exception):
    """libsrtp 2 cannot be loaded here."""


class Error(Exception):
    """A libsrtp call returned a status other than ok."""


class _Ssrc(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("value", ctypes.c_uint)]


class _CryptoPolicy(ctypes.Structure):
    _fields_ = [("cipher_type", ctypes.c_uint32), ("cipher_key_len", ctypes.c_int),
                ("auth_type", ctypes.c_uint32), ("auth_key_len", ctypes.c_int),
                ("auth_tag_len", ctypes.c_int), ("sec_serv", ctypes.c_int)]


class _Policy(ctypes.Structure):
    _fields_ = [("ssrc", _Ssrc), ("rtp", _CryptoPolicy), ("rtcp", _CryptoPolicy),
                ("key", ctypes.c_char_p), ("keys", ctypes.c_void_p),
                ("num_master_keys", ctypes.c_ulong), ("deprecated_ekt", ctypes.c_void_p),
                ("window_size", ctypes.c_ulong), ("allow_repeat_tx", ctypes.c_int),
                ("enc_xtn_hdr", ctypes.c_void_p), ("enc_xtn_hdr_count", ctypes.c_int),
                ("next", ctypes.c_void_p)]


_lib: "ctypes.CDLL | None" = None
_lock = threading.Lock()


def _check(status: int) -> None:
    if status:
        reason = _STATUS[status] if 0 <= status < len(_STATUS) else f"libsrtp status {status}"
        raise Error(reason)


def load() -> "ctypes.CDLL":
    """The initialised library; the first call opens it (a soname: no `ctypes.util` search)."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        try:
            lib = ctypes.CDLL(_LIBRARY)
            version = lib.srtp_get_version
        except (OSError, AttributeError) as error:
            raise Unavailable(f"{_LIBRARY}: {error}") from error
        version.restype = ctypes.c_uint
        major = version() >> 24
        if major != 2:
            raise Unavailable(f"{_LIBRARY} is libsrtp {major}, this binding needs 2")
        pointer = ctypes.c_void_p
        size = ctypes.POINTER(ctypes.c_int)
        for name in ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp",
                     "srtp_unprotect_rtcp"):
            function = getattr(lib, name)
            function.argtypes = [pointer, ctypes.c_void_p, size]
            function.restype = ctypes.c_int
        lib.srtp_create.argtypes = [ctypes.POINTER(pointer), ctypes.POINTER(_Policy)]
        lib.srtp_dealloc.argtypes = [pointer]
        for name in ("srtp_crypto_policy_set_from_profile_for_rtp",
                     "srtp_crypto_policy_set_from_profile_for_rtcp"):
            getattr(lib, name).argtypes = [ctypes.POINTER(_CryptoPolicy), ctypes.c_int]
        try:
            _check(lib.srtp_init())
        except Error as error:
            raise Unavailable(f"srtp_init: {error}") from error
        _lib = lib
        return lib


class Session:
    """One libsrtp session; `key_and_salt` is the master key followed by the master salt."""

    def __init__(self, profile: int, key_and_salt: bytes, outbound: bool) -> None:
        lib = load()
        self._lib = lib
        self._handle = ctypes.c_void_p()
        policy = _Policy()
        _check(lib.srtp_crypto_policy_set_from_profile_for_rtp(ctypes.byref(policy.rtp),
                                                                 profile))
        _check(lib.srtp_crypto_policy_set_from_profile_for_rtcp(ctypes.byref(policy.rtcp),
                                                                  profile))
        policy.ssrc.type = _SSRC_ANY_OUTBOUND if outbound else _SSRC_ANY_INBOUND
        key = ctypes.create_string_buffer(bytes(key_and_salt), len(key_and_salt))
        policy.key = ctypes.cast(key, ctypes.c_char_p)
        # RFC 4733 repeats the final telephone-event packet with the same sequence number.
        policy.allow_repeat_tx = 1 if outbound else 0
        _check(lib.srtp_create(ctypes.byref(self._handle), ctypes.byref(policy)))
        ctypes.memset(key, 0, len(key_and_salt))  # libsrtp keeps its own derived keys
        self._size = 0
        self._grow(1500)

    def _grow(self, size: int) -> None:
        # One buffer per session, reused for every packet: the packet is copied in by a slice
        # assignment and libsrtp works in place (ctypes sees the same memory).
        self._data = bytearray(size + _MAX_TRAILER)
        self._buffer = (ctypes.c_char * len(self._data)).from_buffer(self._data)
        self._length = ctypes.c_int()
        self._length_ref = ctypes.byref(self._length)
        self._size = size

    def _apply(self, function: "ctypes._NamedFuncPointer", packet: bytes) -> bytes:
        size = len(packet)
        if size > self._size:
            self._grow(size)
        self._data[:size] = packet
        length = self._length
        length.value = size
        _check(function(self._handle, self._buffer, self._length_ref))
        return bytes(self._data[:length.value])

    def protect(self, rtp: bytes) -> bytes:
        return self._apply(self._lib.srtp_protect, rtp)

    def unprotect(self, srtp: bytes) -> bytes:
        return self._apply(self._lib.srtp_unprotect, srtp)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._apply(self._lib.srtp_protect_rtcp, rtcp)

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        return self._apply(self._lib.srtp_unprotect_rtcp, srtcp)

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            self._lib.srtp_dealloc(handle)
            handle.value = None
