"""The few differences between CPython and MicroPython that the portable core cannot write around.

Everything else in firmware/sip, sdp, rtp, codecs and app uses constructs that behave the same on
both (see the portable-core rules in docs/ARCHITECTURE.md); what cannot, is chosen here once, at
import time, so CPython keeps its fastest form and no module tests the interpreter itself.

Public API
    MICROPYTHON                  True under MicroPython
    ordered_dict(pairs=())       a dict that keeps insertion order: `dict` on CPython (ordered
                                 since 3.7), `collections.OrderedDict` on MicroPython, whose plain
                                 dict is a hash table in no particular order. Note that under
                                 MicroPython an OrderedDict never compares equal to a plain dict;
                                 compare `dict(x)` or the items.
    item_getter(table)           a one-argument function returning table[index], for map():
                                 the C-level bound `table.__getitem__` on CPython; MicroPython
                                 does not expose `__getitem__` on built-in types.
    hash_constructor(name)       the constructor of hash `name` ("md5", "sha256", "sha512_256"),
                                 or None where this interpreter lacks it. On CPython, MD5 and
                                 SHA-256 come from the built-in `_md5` / `_sha2` (`_sha256`
                                 before 3.12) modules, so digest auth does not load hashlib,
                                 whose OpenSSL (libcrypto, about 3.7 MB of RSS and 3-4 ms of
                                 start) only an algorithm that needs it pays for, when first
                                 asked (SHA-512-256: issue 14). MicroPython: its `hashlib`.
    pbkdf2_hmac                  hashlib.pbkdf2_hmac, imported at its first call (it needs
                                 OpenSSL); None on MicroPython (no such function)
    byte_lookup(table)           a function `indices -> bytes`: table[i] for each i (e.g. the
                                 samples of an array('H') into a 65536-entry bytes table). CPython:
                                 one C-level `itemgetter(*indices)` call (about half the time of
                                 map() over `table.__getitem__`, issue 14); MicroPython: map()
    byte_pairs(table)            a function `data -> bytes`: the 2-byte strings table[b] for each
                                 byte b of `data`, joined (a 256-entry table of pairs, e.g. G.711
                                 decoding). CPython: two `bytes.translate` calls interleaved by
                                 slice assignment (about 5 times faster than joining 160 pairs);
                                 MicroPython, which has neither: b"".join(map(...))
    bisect_right(ordered, value) where `value` goes in the sorted list `ordered` after any equal
                                 values: CPython's C `_bisect.bisect_right` (no Python frame per
                                 call: issue 14, the jitter buffer per packet); MicroPython,
                                 which lacks the module: a binary search in Python
    compare_digest(a, b)         constant-time comparison: CPython's `_operator._compare_digest`
                                 (what `hmac.compare_digest` falls back to, without importing
                                 hmac and its OpenSSL); None on MicroPython (no hmac module)
"""

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable
    from typing import Any

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    from collections import OrderedDict as ordered_dict

    def item_getter(table: "bytes | list[bytes]") -> "Callable":
        return lambda index: table[index]

    def hash_constructor(name: str) -> "Callable | None":
        import hashlib

        return getattr(hashlib, name, None)

    def byte_lookup(table: bytes) -> "Callable[[Any], bytes]":
        get = item_getter(table)
        return lambda indices: bytes(map(get, indices))

    def byte_pairs(table: "list[bytes]") -> "Callable[[bytes], bytes]":
        get = item_getter(table)
        return lambda data: b"".join(map(get, data))

    pbkdf2_hmac = None
    compare_digest = None

    def bisect_right(ordered: "list[Any]", value: "Any") -> int:
        low, high = 0, len(ordered)
        while low < high:
            middle = (low + high) // 2
            if value < ordered[middle]:
                high = middle
            else:
                low = middle + 1
        return low

else:
    ordered_dict = dict

    def item_getter(table: "bytes | list[bytes]") -> "Callable":
        return table.__getitem__

    # hash name -> CPython's built-in modules that may hold it (no OpenSSL), in order of trial
    _BUILTIN_HASHES = {"md5": ("_md5",), "sha256": ("_sha2", "_sha256")}

    def hash_constructor(name: str) -> "Callable | None":
        for module_name in _BUILTIN_HASHES.get(name, ()):
            try:
                module = __import__(module_name)
            except ImportError:  # a build without it: hashlib below
                continue
            constructor = getattr(module, name, None)
            if constructor is not None:
                return constructor
        import hashlib  # loads libcrypto: only for what the built-in modules lack

        constructor = getattr(hashlib, name, None)
        if constructor is not None:
            return constructor
        try:
            hashlib.new(name)
        except ValueError:  # this OpenSSL lacks it (or FIPS mode forbids it)
            return None
        return lambda data=b"": hashlib.new(name, data)

    from _bisect import bisect_right  # noqa: F401  # public API
    from _operator import _compare_digest as compare_digest  # noqa: F401  # public API
    from _operator import itemgetter as _itemgetter

    def byte_lookup(table: bytes) -> "Callable[[Any], bytes]":
        get = table.__getitem__

        def lookup(indices: "Any") -> bytes:
            if len(indices) > 1:  # itemgetter of one index returns the item, not a tuple
                return bytes(_itemgetter(*indices)(table))
            return bytes(map(get, indices))

        return lookup

    def byte_pairs(table: "list[bytes]") -> "Callable[[bytes], bytes]":
        if any(len(pair) != 2 for pair in table) or len(table) != 256:
            raise ValueError("byte_pairs needs 256 two-byte strings")
        first = bytes(pair[0] for pair in table)
        second = bytes(pair[1] for pair in table)

        def widen(data: bytes) -> bytes:
            out = bytearray(2 * len(data))
            out[0::2] = data.translate(first)
            out[1::2] = data.translate(second)
            return bytes(out)

        return widen

    def pbkdf2_hmac(hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
        from hashlib import pbkdf2_hmac as openssl_pbkdf2_hmac  # libcrypto: at the first use

        return openssl_pbkdf2_hmac(hash_name, password, salt, iterations)
