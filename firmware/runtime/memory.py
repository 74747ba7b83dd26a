"""Keep the station's memory flat: a station that runs for years must not grow under any input.

glibc serves large allocations with mmap and returns them on free, but after the first such free
it raises its mmap threshold to that size (the "dynamic threshold"). The next allocation of that
size then comes from the heap and stays there after it is freed. The web page's scrypt password
check allocates 16 MiB: the first check in a thread left +16 MB of RSS for good. A fixed
threshold keeps every large buffer on mmap, so it is given back when freed.
"""

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 128 * 1024  # glibc's own default, made fixed


def fix_malloc_threshold() -> bool:
    """Best effort: elsewhere than glibc this does nothing."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
