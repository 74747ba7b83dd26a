# MicroPython freezing manifest for Doorline's portable core (sans-I/O SIP, SDP, RTP without
# SRTP, codecs, door-station application logic). Use with a port build:
#     make -C ports/unix FROZEN_MANIFEST=/path/to/doorline/manifest.py
# tools/mpy/compile.py reads the same list to cross-compile every module with mpy-cross.
#
# firmware/compat.py holds the few CPython/MicroPython differences the core cannot write around.
# Standard modules the core imports: array, binascii, collections (OrderedDict), hashlib (md5,
# sha1, sha256), math, os (urandom), struct, sys; all are built into the Unix port, so nothing is
# required from micropython-lib today. A port without one of them adds e.g. require("hashlib")
# here rather than a local copy. firmware/rtp/srtp.py and srtp_libcrypto.py, firmware/runtime and
# firmware/web are CPython only and deliberately left out.

PORTABLE_PACKAGES = ("sip", "sdp", "rtp", "codecs", "app", "session")
CPYTHON_ONLY = ("rtp/srtp.py", "rtp/srtp_libcrypto.py")


def portable_files(root="firmware"):
    import os

    files = ["__init__.py", "compat.py", "settings.py"]
    for package in PORTABLE_PACKAGES:
        for name in sorted(os.listdir(os.path.join(root, package))):
            path = package + "/" + name
            if name.endswith(".py") and path not in CPYTHON_ONLY:
                files.append(path)
    return files


if "package" in globals():  # executed by MicroPython's makemanifest.py
    package("firmware", files=portable_files(), opt=3)  # noqa: F821 (makemanifest built-in)
