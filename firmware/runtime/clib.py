"""Finding a C library for ctypes (audioproc's libspeexdsp, g722's libspandsp): each of those
modules stays the only user of its library; this only finds and opens the file."""

import ctypes


def open_library(sonames: "tuple[str, ...]", name: str) -> "ctypes.CDLL | None":
    """The first of `sonames` that opens; else what the linker's cache knows as `name` (asking
    it runs a subprocess, so it comes last); None when neither opens."""
    for soname in sonames:
        try:
            return ctypes.CDLL(soname)
        except OSError:
            continue
    from ctypes import util

    found = util.find_library(name)
    if not found:
        return None
    try:
        return ctypes.CDLL(found)
    except OSError:
        return None
