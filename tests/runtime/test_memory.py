"""A 16 MiB scrypt check in a thread (the web page's Basic auth) must not leave 16 MB behind."""

import subprocess
import sys

from tests.conftest import ROOT

PROBE = """
import hashlib, sys, threading
from firmware.runtime.memory import fix_malloc_threshold
if sys.argv[1] == "fixed":
    assert fix_malloc_threshold()

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


def growth(mode):
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


def test_a_large_freed_buffer_is_given_back():
    fixed, unfixed = growth("fixed"), growth("default")
    print(f"RSS kept after a 16 MiB scrypt in a thread: {fixed:.1f} MB fixed, "
          f"{unfixed:.1f} MB with glibc's dynamic threshold")
    assert fixed < 4, fixed
