"""A 16 MiB scrypt check in a thread (the web page's Basic auth) must not leave 16 MB behind."""

import os
import subprocess
import sys

from firmware.runtime import memory
from tests.conftest import ROOT
from tests.integration.helpers import service_environment

PROBE = """
import hashlib, sys, threading
from firmware.runtime.memory import fix_malloc_threshold
if sys.argv[1] in ("fixed", "tunables"):
    assert fix_malloc_threshold()
    assert ("ctypes" in sys.modules) == (sys.argv[1] == "fixed"), sorted(sys.modules)

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

def check():
    hashlib.scrypt(b"password", salt=bytes(16), n=2 ** 14, r=8, p=1, maxmem=64 * 2 ** 20)

check()  # as at setup, on the main thread
before = rss_mb()
thread = threading.Thread(target=check)
thread.start()
thread.join()
print(rss_mb() - before)
"""


def growth(mode, env=None):
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_a_large_freed_buffer_is_given_back():
    fixed, unfixed = growth("fixed"), growth("default")
    print(f"RSS kept after a 16 MiB scrypt in a thread: {fixed:.1f} MB fixed, "
          f"{unfixed:.1f} MB with glibc's dynamic threshold")
    assert fixed < 4, fixed


def test_the_service_sets_the_same_through_glibc_tunables_without_ctypes():
    """Issue 14, sixth round: the installed service gives glibc the settings in GLIBC_TUNABLES
    (tools/install/doorline.service); glibc applies them before Python starts (the freed
    16 MiB goes back as with mallopt), and the firmware loads no ctypes for them."""
    env = {**os.environ, **service_environment()}
    assert env.get("GLIBC_TUNABLES") == memory.TUNABLES_TEXT
    assert memory.tunables_in_effect(env)
    tuned, unfixed = growth("tunables", env), growth("default")
    print(f"RSS kept after a 16 MiB scrypt in a thread: {tuned:.1f} MB with the service's "
          f"GLIBC_TUNABLES, {unfixed:.1f} MB with glibc's dynamic threshold")
    assert tuned < 4, tuned
    assert unfixed > tuned + 8, (unfixed, tuned)  # the check can tell the two apart


def test_tunables_count_only_with_both_of_our_values():
    assert memory.tunables_in_effect({"GLIBC_TUNABLES": memory.TUNABLES_TEXT})
    assert memory.tunables_in_effect(
        {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072:x=1"})
    assert not memory.tunables_in_effect({})
    assert not memory.tunables_in_effect({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert not memory.tunables_in_effect(
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536:glibc.malloc.arena_max=2"})
