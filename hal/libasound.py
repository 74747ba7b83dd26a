"""libasound (ALSA's C library) through ctypes: the only user of libasound2 (issue 19).

    has_pcm(name) -> bool                 the configuration defines `pcm.<name>` (speexrate)
    open_pcm(device, capture, rate, period_frames, periods, channels=(1, 2)) -> Pcm
        .channels                          what the device took: the first of `channels` it can
        .granted() -> {"rate", "period_size", "buffer_size", "channels"}   as libasound granted
        .read() -> (frames, data)          one period into a reused buffer: (n > 0, the
                                           period's bytes, or for a short read a view of the
                                           buffer valid until the next read), (0, b"")
                                           when nothing is ready, (-EPIPE or -ESTRPIPE, b"")
                                           after an overrun or suspend the PCM recovered from
        .write(data) -> frames             n >= 0 (0: the buffer is full), or -EPIPE after an
                                           underrun the PCM recovered from
        .poll_descriptors() -> [(fd, events)]
        .close()
    Mixer(device) .controls() -> [names with a playback volume], .set_volume(name, percent),
                  .close()
    AlsaError(what, code)                  every other failure; `code` is the negative errno,
                                           the message carries snd_strerror's text

Why ctypes and not pyalsaaudio: ctypes releases the GIL around every foreign call, so a device
whose snd_pcm_open blocks (a busy hw PCM waits in the kernel until its other user closes it; a
plugin whose server hangs; the `file` plugin opening a pipe without a writer) holds only the
thread that opens it, never the station's SIP and web; pyalsaaudio held the GIL inside
snd_pcm_open, which froze the whole process.  It also needs no compiler on the Pi: libasound2
is part of every Raspberry Pi OS, pyalsaaudio has no wheels at all.

Choices:
- PCMs are opened with SND_PCM_NONBLOCK and stay non-blocking: a busy hw device answers -EBUSY
  at once (the HAL retries with back-off), a read with nothing ready returns 0 and the caller
  waits on the poll descriptors (select.poll, without the GIL), a write to a full buffer returns
  0 (the HAL drops the frame instead of building up delay).
- Hardware parameters: RW interleaved, S16_LE, the first channel count in `channels` the device
  takes (mono, else stereo), rate, period and buffer each "near" what was asked; the software
  parameters are libasound's defaults (start at the first write, stop at an xrun).
- -EPIPE (xrun) and -ESTRPIPE (suspend) go through snd_pcm_recover and are then returned, so the
  caller can count them; any other error (-ENODEV, -EBADFD, -EIO: a device unplugged) raises
  AlsaError and the caller closes and reopens.
- The library is loaded at the first use (`libasound.so.2`), not at import.
"""

import ctypes
import errno
import threading

SND_PCM_STREAM_PLAYBACK = 0
SND_PCM_STREAM_CAPTURE = 1
SND_PCM_NONBLOCK = 1
SND_PCM_ACCESS_RW_INTERLEAVED = 3
SND_PCM_FORMAT_S16_LE = 2
SAMPLE_BYTES = 2
LIBRARY = "libasound.so.2"


class AlsaError(Exception):
    """A libasound call failed; `code` is its negative errno."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}: {strerror(code)}")
        self.code = code


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


_P = ctypes.c_void_p
_INT = ctypes.c_int
_UINT = ctypes.c_uint
_ULONG = ctypes.c_ulong  # snd_pcm_uframes_t
_LONG = ctypes.c_long  # snd_pcm_sframes_t
_SIGNATURES: "dict[str, tuple[object, list[object]]]" = {
    "snd_strerror": (ctypes.c_char_p, [_INT]),
    "snd_config_update": (_INT, []),
    "snd_config_search": (_INT, [_P, ctypes.c_char_p, ctypes.POINTER(_P)]),
    "snd_pcm_open": (_INT, [ctypes.POINTER(_P), ctypes.c_char_p, _INT, _INT]),
    "snd_pcm_close": (_INT, [_P]),
    "snd_pcm_hw_params_sizeof": (ctypes.c_size_t, []),
    "snd_pcm_hw_params_any": (_INT, [_P, _P]),
    "snd_pcm_hw_params_set_access": (_INT, [_P, _P, _INT]),
    "snd_pcm_hw_params_set_format": (_INT, [_P, _P, _INT]),
    "snd_pcm_hw_params_set_channels": (_INT, [_P, _P, _UINT]),
    "snd_pcm_hw_params_set_rate_near": (_INT, [_P, _P, ctypes.POINTER(_UINT),
                                               ctypes.POINTER(_INT)]),
    "snd_pcm_hw_params_set_period_size_near": (_INT, [_P, _P, ctypes.POINTER(_ULONG),
                                                      ctypes.POINTER(_INT)]),
    "snd_pcm_hw_params_set_buffer_size_near": (_INT, [_P, _P, ctypes.POINTER(_ULONG)]),
    "snd_pcm_hw_params": (_INT, [_P, _P]),
    "snd_pcm_hw_params_get_rate": (_INT, [_P, ctypes.POINTER(_UINT), ctypes.POINTER(_INT)]),
    "snd_pcm_hw_params_get_period_size": (_INT, [_P, ctypes.POINTER(_ULONG),
                                                 ctypes.POINTER(_INT)]),
    "snd_pcm_hw_params_get_buffer_size": (_INT, [_P, ctypes.POINTER(_ULONG)]),
    "snd_pcm_readi": (_LONG, [_P, _P, _ULONG]),
    "snd_pcm_writei": (_LONG, [_P, ctypes.c_char_p, _ULONG]),
    "snd_pcm_recover": (_INT, [_P, _INT, _INT]),
    "snd_pcm_poll_descriptors_count": (_INT, [_P]),
    "snd_pcm_poll_descriptors": (_INT, [_P, ctypes.POINTER(_PollFd), _UINT]),
    "snd_mixer_open": (_INT, [ctypes.POINTER(_P), _INT]),
    "snd_mixer_attach": (_INT, [_P, ctypes.c_char_p]),
    "snd_mixer_selem_register": (_INT, [_P, _P, _P]),
    "snd_mixer_load": (_INT, [_P]),
    "snd_mixer_close": (_INT, [_P]),
    "snd_mixer_first_elem": (_P, [_P]),
    "snd_mixer_elem_next": (_P, [_P]),
    "snd_mixer_selem_get_name": (ctypes.c_char_p, [_P]),
    "snd_mixer_selem_get_index": (_UINT, [_P]),
    "snd_mixer_selem_has_playback_volume": (_INT, [_P]),
    "snd_mixer_selem_get_playback_volume_range": (_INT, [_P, ctypes.POINTER(_LONG),
                                                         ctypes.POINTER(_LONG)]),
    "snd_mixer_selem_set_playback_volume_all": (_INT, [_P, _LONG]),
}

_lib: "ctypes.CDLL | None" = None
_loading = threading.Lock()


def library() -> ctypes.CDLL:
    """libasound, loaded once with every function's signature; AlsaError when it is missing."""
    global _lib
    with _loading:
        if _lib is None:
            try:
                lib = ctypes.CDLL(LIBRARY)
            except OSError as error:
                raise AlsaError(f"cannot load {LIBRARY} ({error}; install libasound2)",
                                -errno.ENOENT) from None
            for name, (restype, argtypes) in _SIGNATURES.items():
                function = getattr(lib, name)
                function.restype = restype
                function.argtypes = argtypes
            _lib = lib
        return _lib


def strerror(code: int) -> str:
    """snd_strerror's text for a negative errno (or libasound's own codes)."""
    try:
        text = library().snd_strerror(code) if _lib is not None else None
    except AlsaError:
        text = None
    if text:
        return str(text.decode(errors="replace"))
    return errno.errorcode.get(-code, str(code))


def _check(code: int, what: str) -> int:
    if code < 0:
        raise AlsaError(what, code)
    return code


def has_pcm(name: str) -> bool:
    """True when the ALSA configuration (re-read if its files changed) defines `pcm.<name>`:
    `speexrate` exists where libasound2-plugins is installed."""
    lib = library()
    if lib.snd_config_update() < 0:
        return False
    top = _P.in_dll(lib, "snd_config")
    node = _P()
    return bool(lib.snd_config_search(top, f"pcm.{name}".encode(), ctypes.byref(node)) == 0)


class Pcm:
    """One open PCM (see the module's doc); made by open_pcm."""

    def __init__(self, handle: ctypes.c_void_p, device: str, capture: bool) -> None:
        self._lib = library()
        self._handle: ctypes.c_void_p | None = handle
        self.device = device
        self.capture = capture
        self.channels = 1
        self.rate = 0
        self.period_size = 0
        self.buffer_size = 0
        self._buffer = ctypes.create_string_buffer(0)
        self._view = memoryview(b"")
        self._frame_bytes = SAMPLE_BYTES
        self._readi = self._lib.snd_pcm_readi  # bound once: called every period
        self._writei = self._lib.snd_pcm_writei
        self._period = _ULONG(0)

    def _configure(self, rate: int, period_frames: int, periods: int,
                   channels: "tuple[int, ...]") -> None:
        lib, pcm = self._lib, self._handle
        params = ctypes.create_string_buffer(lib.snd_pcm_hw_params_sizeof())
        _check(lib.snd_pcm_hw_params_any(pcm, params), "no hardware configuration")
        _check(lib.snd_pcm_hw_params_set_access(pcm, params, SND_PCM_ACCESS_RW_INTERLEAVED),
               "interleaved access refused")
        _check(lib.snd_pcm_hw_params_set_format(pcm, params, SND_PCM_FORMAT_S16_LE),
               "S16_LE refused")
        for count in channels:
            if lib.snd_pcm_hw_params_set_channels(pcm, params, count) == 0:
                self.channels = count
                break
        else:
            raise AlsaError(f"none of {list(channels)} channels", -errno.EINVAL)
        value, direction = _UINT(rate), _INT(0)
        _check(lib.snd_pcm_hw_params_set_rate_near(pcm, params, ctypes.byref(value),
                                                   ctypes.byref(direction)), f"rate {rate}")
        frames = _ULONG(period_frames)
        _check(lib.snd_pcm_hw_params_set_period_size_near(pcm, params, ctypes.byref(frames),
                                                          ctypes.byref(direction)),
               f"period of {period_frames} frames")
        frames = _ULONG(period_frames * periods)
        _check(lib.snd_pcm_hw_params_set_buffer_size_near(pcm, params, ctypes.byref(frames)),
               f"buffer of {period_frames * periods} frames")
        _check(lib.snd_pcm_hw_params(pcm, params), "hardware parameters refused")
        value, frames, size = _UINT(0), _ULONG(0), _ULONG(0)
        lib.snd_pcm_hw_params_get_rate(params, ctypes.byref(value), ctypes.byref(direction))
        lib.snd_pcm_hw_params_get_period_size(params, ctypes.byref(frames),
                                              ctypes.byref(direction))
        lib.snd_pcm_hw_params_get_buffer_size(params, ctypes.byref(size))
        self.rate, self.period_size, self.buffer_size = value.value, frames.value, size.value
        self._frame_bytes = SAMPLE_BYTES * self.channels
        self._period = _ULONG(self.period_size)
        if self.capture:
            self._buffer = ctypes.create_string_buffer(self.period_size * self._frame_bytes)
            self._view = memoryview(self._buffer).cast("B")

    def granted(self) -> "dict[str, int]":
        return {"rate": self.rate, "period_size": self.period_size,
                "buffer_size": self.buffer_size, "channels": self.channels}

    def _pcm(self) -> ctypes.c_void_p:
        if self._handle is None:
            raise AlsaError(f"{self.device} is closed", -errno.EBADFD)
        return self._handle

    def _xrun(self, code: int, what: str) -> int:
        """-EPIPE/-ESTRPIPE: recovered (the PCM is prepared again) and returned; others raise."""
        if code in (-errno.EAGAIN, -errno.EINTR):
            return 0
        if code in (-errno.EPIPE, -errno.ESTRPIPE):
            _check(self._lib.snd_pcm_recover(self._pcm(), code, 1), f"{what}: recovery")
            return code
        raise AlsaError(what, code)

    def read(self) -> "tuple[int, memoryview | bytes]":
        handle = self._handle
        if handle is None:  # never hand libasound a NULL PCM
            raise AlsaError(f"{self.device} is closed", -errno.EBADFD)
        frames = self._readi(handle, self._buffer, self._period)
        if frames == self.period_size:  # a whole period (the usual case): one copy, no view
            return frames, self._buffer.raw
        if frames > 0:
            return frames, self._view[:frames * self._frame_bytes]
        return self._xrun(frames, f"reading {self.device}"), b""

    def write(self, data: bytes) -> int:
        handle = self._handle
        if handle is None:
            raise AlsaError(f"{self.device} is closed", -errno.EBADFD)
        frames = self._writei(handle, data, len(data) // self._frame_bytes)
        return frames if frames >= 0 else self._xrun(frames, f"writing {self.device}")

    def poll_descriptors(self) -> "list[tuple[int, int]]":
        pcm = self._pcm()
        count = self._lib.snd_pcm_poll_descriptors_count(pcm)
        if count <= 0:
            return []
        fds = (_PollFd * count)()
        filled = self._lib.snd_pcm_poll_descriptors(pcm, fds, count)
        return [(fd.fd, fd.events) for fd in fds[:max(0, filled)]]

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.snd_pcm_close(handle)  # an unplugged device may fail even this


def open_pcm(device: str, capture: bool, rate: int, period_frames: int, periods: int,
             channels: "tuple[int, ...]" = (1, 2)) -> Pcm:
    """Opens and configures `device` (non-blocking; see the module's doc). AlsaError on any
    failure, with the PCM closed again."""
    lib = library()
    handle = _P()
    stream = SND_PCM_STREAM_CAPTURE if capture else SND_PCM_STREAM_PLAYBACK
    _check(lib.snd_pcm_open(ctypes.byref(handle), device.encode(), stream, SND_PCM_NONBLOCK),
           f"cannot open {device!r}")
    pcm = Pcm(handle, device, capture)
    try:
        pcm._configure(rate, period_frames, periods, channels)
    except AlsaError:
        pcm.close()
        raise
    return pcm


class Mixer:
    """The simple mixer controls of one card (`hw:CARD=x` or `default`)."""

    def __init__(self, device: str) -> None:
        lib = self._lib = library()
        handle = _P()
        _check(lib.snd_mixer_open(ctypes.byref(handle), 0), "cannot open a mixer")
        self._handle: ctypes.c_void_p | None = handle
        try:
            _check(lib.snd_mixer_attach(handle, device.encode()), f"no mixer on {device!r}")
            _check(lib.snd_mixer_selem_register(handle, None, None), "mixer elements")
            _check(lib.snd_mixer_load(handle), f"loading the mixer of {device!r}")
        except AlsaError:
            self.close()
            raise

    def _elements(self) -> "list[tuple[str, int]]":
        if self._handle is None:
            return []
        lib, found = self._lib, []
        element = lib.snd_mixer_first_elem(self._handle)
        while element:
            if lib.snd_mixer_selem_has_playback_volume(element) and \
                    lib.snd_mixer_selem_get_index(element) == 0:
                found.append((lib.snd_mixer_selem_get_name(element).decode(errors="replace"),
                              element))
            element = lib.snd_mixer_elem_next(element)
        return found

    def controls(self) -> "list[str]":
        """The names of the controls with a playback volume, in the card's order."""
        return [name for name, _ in self._elements()]

    def set_volume(self, name: str, percent: int) -> None:
        """Control `name` to `percent` (0-100) of its range, linearly, on every channel."""
        for found, element in self._elements():
            if found == name:
                low, high = _LONG(0), _LONG(0)
                _check(self._lib.snd_mixer_selem_get_playback_volume_range(
                    element, ctypes.byref(low), ctypes.byref(high)), f"range of {name}")
                value = round(low.value + (high.value - low.value) * percent / 100)
                _check(self._lib.snd_mixer_selem_set_playback_volume_all(element, value),
                       f"setting {name}")
                return
        raise AlsaError(f"no control {name!r}", -errno.ENOENT)

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.snd_mixer_close(handle)
