"""G.722 wideband speech (ITU-T G.722, 64 kbit/s SB-ADPCM) through libspandsp, by ctypes.

The only importer of libspandsp (Debian/Raspberry Pi OS `libspandsp2`; the same library
baresip's `g722` module uses). Loaded on the first G.722 call, never at start-up (issue 14).

Public API
- `available() -> bool`: whether the library can be loaded here.
- `G722Codec()`: one call's encoder and decoder state (G.722 is ADPCM: each direction keeps
  state from packet to packet, so every call has its own). `encode(pcm) -> bytes`: 16-bit
  little-endian mono PCM at 16 kHz, two samples per output byte (20 ms: 640 bytes -> 160);
  `decode(payload) -> bytes`: the reverse (160 bytes -> 640). `close()` frees the states.

Choices (issue 15): a C library that the OS ships and keeps (spandsp) needs no compiler on a
32-bit Pi and costs microseconds per packet; see docs/AUDIO.md for what was compared. RTP
carries G.722 with an 8000 Hz clock (RFC 3551 §4.5.2): the RTP layer never sees 16 kHz.
"""

import ctypes

from firmware.runtime.clib import open_library

LIBRARY_NAMES = ("spandsp", )
SONAMES = ("libspandsp.so.2", "libspandsp.so.3")
RATE_64K = 64000  # bit/s: mode 1, the one RFC 3551 §4.5.2 defines for RTP
SAMPLE_RATE = 16000

UNAVAILABLE = "G.722 needs libspandsp (Debian package libspandsp2)"
_lib: "ctypes.CDLL | None" = None


class G722Unavailable(RuntimeError):
    """libspandsp is not installed: G.722 cannot be offered or used."""


def _load() -> "ctypes.CDLL":
    global _lib
    if _lib is not None:
        return _lib
    lib = open_library(SONAMES, LIBRARY_NAMES[0])
    if lib is None:
        raise G722Unavailable(UNAVAILABLE)
    lib.g722_encode_init.restype = ctypes.c_void_p
    lib.g722_encode_init.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.g722_decode_init.restype = ctypes.c_void_p
    lib.g722_decode_init.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.g722_encode.restype = ctypes.c_int
    lib.g722_encode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_int]
    lib.g722_decode.restype = ctypes.c_int
    lib.g722_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_int]
    lib.g722_encode_free.argtypes = [ctypes.c_void_p]
    lib.g722_decode_free.argtypes = [ctypes.c_void_p]
    _lib = lib
    return lib


def available() -> bool:
    try:
        _load()
    except G722Unavailable:
        return False
    return True


class G722Codec:
    """One call's G.722 encoder and decoder (64 kbit/s, 16 kHz PCM)."""

    def __init__(self) -> None:
        lib = _load()
        self._lib = lib
        self._encoder = lib.g722_encode_init(None, RATE_64K, 0)
        self._decoder = lib.g722_decode_init(None, RATE_64K, 0)
        if not self._encoder or not self._decoder:
            self.close()
            raise MemoryError("g722 state allocation failed")

    def encode(self, pcm: bytes) -> bytes:
        samples = len(pcm) // 2
        out = ctypes.create_string_buffer(samples // 2 + 1)
        count = self._lib.g722_encode(self._encoder, out, bytes(pcm), samples)
        return out.raw[:count]

    def decode(self, payload: bytes) -> bytes:
        out = ctypes.create_string_buffer(len(payload) * 4)
        count = self._lib.g722_decode(self._decoder, out, bytes(payload), len(payload))
        return out.raw[:count * 2]

    def close(self) -> None:
        if self._encoder:
            self._lib.g722_encode_free(self._encoder)
            self._encoder = None
        if self._decoder:
            self._lib.g722_decode_free(self._decoder)
            self._decoder = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone already
            pass
