"""Door codes typed as DTMF during a call, and lockouts against guessing them.

Code entry (`enter_digit`): digits accumulate in a per-call buffer. After each digit the buffer is
compared, in constant time, with the end of every code that may be used on this call; a match
opens the door. An attempt ends without a match
- at '#' (an empty buffer is no attempt), or
- when the buffer reaches the length of the longest usable code;
such an attempt is a failure. '*' clears the buffer and is not a failure.

Lockouts (`Lockouts`): failures are counted per key — ("caller", "user@host") and
("source", ip) — so changing the From does not reset the count of the address the guesses come
from. After `max_failures` failures a key is locked out for `lockout_s`, doubling with every further
lockout of that key up to MAX_LOCKOUT_S. Success resets the key's count and its lockout level.
Keys come only from trusted calls (a configured code owner, the registrar or an allowed address),
so the tables stay small.

Public API
    enter_digit(buffer, digit, codes) -> (buffer, outcome, caller)
        codes: list of (caller_key, code); outcome TYPING, CLEARED, OPENED (caller = whose code
        matched) or FAILED.
    Lockouts(max_failures, lockout_s): configure(max_failures, lockout_s), locked(key, now),
        failure(key, now) -> lockout seconds when this failure starts a lockout else None,
        reset(key), expire(now), next_expiry(), active() -> [{"kind", "subject", "until"}].
"""

from firmware.app.callers import constant_time_equal

MAX_LOCKOUT_S = 86400
MAX_LEVEL = 20  # 2 ** 20 * lockout_s exceeds MAX_LOCKOUT_S for any lockout_s >= 1

TYPING = "typing"
CLEARED = "cleared"
OPENED = "opened"
FAILED = "failed"


def enter_digit(buffer, digit, codes):
    if digit == "*":
        return "", CLEARED, None
    if digit == "#":
        return "", FAILED if buffer else TYPING, None
    buffer += digit
    for caller, code in codes:
        if len(buffer) >= len(code) and constant_time_equal(buffer[-len(code):], code):
            return "", OPENED, caller
    if len(buffer) >= max(len(code) for _, code in codes):
        return "", FAILED, None
    return buffer, TYPING, None


class Lockouts:
    def __init__(self, max_failures, lockout_s):
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self._failures = {}  # key -> failures since the last lockout or success
        self._levels = {}  # key -> lockouts so far; the next lasts lockout_s * 2 ** level
        self._until = {}  # key -> end of the current lockout

    def configure(self, max_failures, lockout_s):
        self.max_failures = max_failures
        self.lockout_s = lockout_s

    def locked(self, key, now):
        until = self._until.get(key)
        return until is not None and now < until

    def failure(self, key, now):
        count = self._failures.get(key, 0) + 1
        if count < self.max_failures:
            self._failures[key] = count
            return None
        self._failures[key] = 0
        level = self._levels.get(key, 0)
        duration = min(self.lockout_s * 2 ** level, MAX_LOCKOUT_S)
        self._levels[key] = min(level + 1, MAX_LEVEL)
        self._until[key] = now + duration
        return duration

    def reset(self, key):
        self._failures.pop(key, None)
        self._levels.pop(key, None)
        self._until.pop(key, None)

    def expire(self, now):
        for key in [k for k, until in self._until.items() if until <= now]:
            del self._until[key]

    def next_expiry(self):
        return min(self._until.values()) if self._until else None

    def active(self):
        return [{"kind": key[0], "subject": key[1], "until": until}
                for key, until in sorted(self._until.items())]
