"""Keep the station's memory flat: a station that runs for years must not grow under any input.

glibc serves large allocations with mmap and returns them on free, but after the first such free
it raises its mmap threshold to that size (the "dynamic threshold"). The next allocation of that
size then comes from the heap and stays there after it is freed. The web page's scrypt password
check allocates 16 MiB: the first check in a thread left +16 MB of RSS for good. A fixed
threshold keeps every large buffer on mmap, so it is given back when freed.
"""

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 128 * 1024  # glibc's own default, made fixed
M_ARENA_MAX = -8  # glibc's mallopt parameter number
# glibc gives each new thread its own malloc arena (up to 8 per core), each a fresh 64 MiB
# region whose touched pages stay: the media, capture, cue and worker threads allocate little
# and briefly, so they share two (issue 14, memory in a call).
ARENA_MAX = 2


def fix_malloc_threshold() -> bool:
    """Best effort: elsewhere than glibc this does nothing.

    The process's own symbols (`CDLL(None)`) include the C library's: no `ctypes.util`,
    whose `find_library` imports shutil, tempfile, bz2, lzma (1 MB of RSS) and runs
    `ldconfig -p` in a subprocess, about 10 ms of the start on the bench machine."""
    import ctypes  # here, not at import: called once SIP has settled (firmware/__main__.py)

    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, ARENA_MAX)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
