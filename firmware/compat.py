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
"""

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    from collections import OrderedDict as ordered_dict

    def item_getter(table: "bytes | list[bytes]") -> "Callable":
        return lambda index: table[index]

else:
    ordered_dict = dict

    def item_getter(table: "bytes | list[bytes]") -> "Callable":
        return table.__getitem__
