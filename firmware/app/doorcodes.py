"""Door codes typed as DTMF during a call, and lockouts against guessing them.

Code entry (`enter_digit`, issue 12): digits accumulate in a per-call entry. An entry is complete
- at '#' (an empty entry is no attempt and is ignored), or
- when it reaches the length of the longest code usable on this call.
A complete entry is compared, as a whole, with each usable code of exactly its length (never with
a part of it: no sliding windows, no prefixes). One complete entry is one attempt: it opens the
door or it is one failure, however many digits it holds. So typing `01234567` tests one
candidate and costs one failure; an attacker gets exactly one guess per failure counted. A code
shorter than the longest code usable on the call is ended with '#'. '*' clears the entry; nothing
is compared, so it is no attempt and costs nothing.

Lockouts (`Lockouts`): failures are counted per key. The controller chooses the keys: the
caller's identity ("caller", "user@host") always, and the source address ("source", ip) only for
direct-IP calls; behind a registrar every call comes from the registrar's address, so a source
key there would let one flat's wrong codes lock out every flat. After `max_failures` failures a
key is locked out for `lockout_s`, doubling with every further lockout of that key up to
MAX_LOCKOUT_S. Success resets the key's count and its lockout level. Keys come only from trusted
calls (a configured code owner, the registrar or an allowed address), so the tables stay small.

Stored codes (`StoredCode`; a leaked config file must not give the codes away): the config keeps a
code as a salted hash, "pbkdf2_sha256$<iterations>$<salt-hex>$<hash-hex>" (PBKDF2-HMAC-SHA256, RFC
8018 §5.2, one 32-byte block), with its `length` (the number of digits) beside it. The length is no
secret worth keeping: someone cracking the hash tries short codes first anyway, so knowing it saves
them at most a tenth of the work; it lets each typed digit cost one hash per code of that length
instead of one per possible length. Verification uses `hashlib.pbkdf2_hmac` where it exists
(CPython; imported at the first code typed, not at start: issue 14) and a portable PBKDF2
built on SHA-256 otherwise (MicroPython has no pbkdf2_hmac); both give the same bytes. The final
comparison is constant-time. Clear codes (`code`, as typed into the page and before the config
is saved) are still accepted.

Public API
    enter_digit(buffer, digit, codes) -> (buffer, outcome, caller)
        codes: list of (caller_key, code), code a StoredCode or a clear digit string; outcome
        TYPING, CLEARED, OPENED (caller = whose code matched) or FAILED.
    StoredCode.from_entry({"code"} or {"code_hash", "length"}) -> StoredCode; .length,
        .matches(digits) -> bool
    hash_code(code, salt, iterations) -> the "pbkdf2_sha256$..." string
    pbkdf2_sha256(secret, salt, iterations) -> 32 bytes; portable_pbkdf2_sha256(...) the same
        without hashlib.pbkdf2_hmac
    Lockouts(max_failures, lockout_s): configure(max_failures, lockout_s), locked(key, now),
        failure(key, now) -> lockout seconds when this failure starts a lockout else None,
        reset(key), expire(now), next_expiry(), active() -> [{"kind", "subject", "until"}].
"""

from firmware.app.callers import constant_time_equal
from firmware.compat import hash_constructor, pbkdf2_hmac  # pbkdf2_hmac: None on MicroPython

HASH_SCHEME = "pbkdf2_sha256"

MAX_LOCKOUT_S = 86400
MAX_LEVEL = 20  # 2 ** 20 * lockout_s exceeds MAX_LOCKOUT_S for any lockout_s >= 1

TYPING = "typing"
CLEARED = "cleared"
OPENED = "opened"
FAILED = "failed"


TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.settings import DoorCode


def enter_digit(buffer: str, digit: str,
                codes: "list[tuple[str, str | StoredCode]] | list[tuple[str, StoredCode]]"
                ) -> tuple[str, str, str | None]:
    if digit == "*":
        return "", CLEARED, None
    stored = [(caller, _stored(code)) for caller, code in codes]
    if digit == "#":
        if not buffer:
            return "", TYPING, None
        return _complete(buffer, stored)
    buffer += digit
    if len(buffer) >= max(code.length for _, code in stored):
        return _complete(buffer, stored)
    return buffer, TYPING, None


def _complete(entry: str, codes: "list[tuple[str, StoredCode]]") -> tuple[str, str, str | None]:
    """One attempt: the whole entry against every usable code of its length."""
    for caller, code in codes:
        if code.length == len(entry) and code.matches(entry):
            return "", OPENED, caller
    return "", FAILED, None


class StoredCode:
    """One configured code: clear digits, or a PBKDF2 hash with the code's length."""

    __slots__ = ("length", "clear", "hashed")

    def __init__(self, length: int, clear: str | None = None, hashed: str | None = None) -> None:
        self.length = length
        self.clear = clear
        self.hashed = hashed

    @classmethod
    def from_config(cls, code: "DoorCode") -> "StoredCode":
        """From a validated door.codes entry (firmware/settings.py)."""
        if code.code_hash is not None:
            return cls(code.length, hashed=code.code_hash)
        return cls(code.length, clear=code.code)

    @classmethod
    def from_entry(cls, entry: dict) -> "StoredCode":
        if entry.get("code_hash"):
            return cls(int(entry["length"]), hashed=entry["code_hash"])
        return cls(len(entry["code"]), clear=entry["code"])

    def matches(self, digits: str) -> bool:
        if self.hashed is None:
            return constant_time_equal(digits, self.clear)  # type: ignore[arg-type]  # clear code
        if len(digits) != self.length:
            return False
        scheme, iterations, salt, _ = self.hashed.split("$")
        candidate = hash_code(digits, bytes.fromhex(salt), int(iterations))
        return scheme == HASH_SCHEME and constant_time_equal(candidate, self.hashed)

    def __repr__(self) -> str:
        return "<StoredCode %d digits %s>" % (self.length, "hashed" if self.hashed else "clear")


def _stored(code: "StoredCode | str") -> "StoredCode":
    return code if isinstance(code, StoredCode) else StoredCode(len(code), clear=code)


def hash_code(code: str, salt: bytes, iterations: int) -> str:
    digest = pbkdf2_sha256(code.encode(), salt, iterations)
    return "%s$%d$%s$%s" % (HASH_SCHEME, iterations, salt.hex(), digest.hex())


def pbkdf2_sha256(secret: bytes, salt: bytes, iterations: int) -> bytes:
    if pbkdf2_hmac is not None:
        return pbkdf2_hmac("sha256", secret, salt, iterations)
    return portable_pbkdf2_sha256(secret, salt, iterations)


def portable_pbkdf2_sha256(secret: bytes, salt: bytes, iterations: int) -> bytes:
    """PBKDF2-HMAC-SHA256 (RFC 8018 §5.2, HMAC per RFC 2104) for one 32-byte block."""
    sha256 = hash_constructor("sha256")
    assert sha256 is not None  # every interpreter we run on has SHA-256
    key = sha256(secret).digest() if len(secret) > 64 else secret
    key = key + bytes(64 - len(key))
    inner = bytes(b ^ 0x36 for b in key)
    outer = bytes(b ^ 0x5C for b in key)

    def mac(message: bytes) -> bytes:
        return sha256(outer + sha256(inner + message).digest()).digest()

    block = mac(salt + b"\x00\x00\x00\x01")
    total = int.from_bytes(block, "big")
    for _ in range(iterations - 1):
        block = mac(block)
        total ^= int.from_bytes(block, "big")
    return total.to_bytes(32, "big")


class Lockouts:
    def __init__(self, max_failures: int, lockout_s: int) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        # key -> failures since the last lockout or success
        self._failures: dict[tuple[str, str | None], int] = {}
        # key -> lockouts so far; the next lasts lockout_s * 2 ** level
        self._levels: dict[tuple[str, str | None], int] = {}
        self._until: dict[tuple[str, str | None], float] = {}  # key -> end of the current lockout

    def configure(self, max_failures: int, lockout_s: int) -> None:
        self.max_failures = max_failures
        self.lockout_s = lockout_s

    def locked(self, key: tuple[str, str | None], now: float) -> bool:
        until = self._until.get(key)
        return until is not None and now < until

    def failure(self, key: tuple[str, str | None], now: float) -> int | None:
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

    def reset(self, key: tuple[str, str | None]) -> None:
        self._failures.pop(key, None)
        self._levels.pop(key, None)
        self._until.pop(key, None)

    def expire(self, now: float) -> None:
        for key in [k for k, until in self._until.items() if until <= now]:
            del self._until[key]

    def next_expiry(self) -> float | None:
        return min(self._until.values()) if self._until else None

    def active(self) -> list[dict]:
        return [{"kind": key[0], "subject": key[1], "until": until}
                for key, until in sorted(self._until.items())]
