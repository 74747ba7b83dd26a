"""The admin password: strength rules, salted scrypt hash, storage in `state_dir/admin.json`.

The file holds only the hash and the scrypt parameters it was made with (so they can be raised
later without breaking old files), written atomically with mode 0600:

    {"algorithm": "scrypt", "n": 16384, "r": 8, "p": 1, "salt": "<b64>", "hash": "<b64>"}

Public API:
- `weakness(password) -> str | None`: why a password is refused, or None when it is acceptable.
- `AdminPassword(state_dir)`: `.is_set`, `.set(password)` (raises `ValueError` when weak,
  `PasswordAlreadySet` when one exists), `.verify(password) -> bool` (scrypt: slow, for a
  worker thread), `.known(password) -> bool` (the last password that verified; cheap).
"""

import base64
import json
import os

from firmware.compat import compare_digest, hash_constructor

MIN_LENGTH = 10
MAX_LENGTH = 256  # bounds the work one login attempt can cost
SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES = 2**14, 8, 1, 32

# The most used passwords of at least MIN_LENGTH characters, and words a guesser tries first on a
# door station; compared case-insensitively after dropping trailing digits and punctuation.
COMMON = frozenset("""
password passw0rd password1 qwertyuiop qwertyuiopasdfghjkl asdfghjkl zxcvbnm iloveyou
administrator admin admin123 letmein welcome trustno1 football baseball superman
starwars sunshine princess dragon monkey master shadow changeme default doorline intercom
doorbell frontdoor opensesame sesame raspberry raspberrypi secret abc123 abcdefghij
1q2w3e4r5t 1qaz2wsx3edc qazwsxedc qwerty123 zaq12wsx
""".split())
KEYBOARD_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "abcdefghijklmnopqrstuvwxyz")


class PasswordAlreadySet(Exception):
    """The first-boot password can only be set once; change it with the old one."""


def weakness(password: str) -> str | None:
    """A short reason why `password` is too weak, or None."""
    if not isinstance(password, str):
        return "the password must be a string"
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password must have at most {MAX_LENGTH} characters"
    if len(set(password)) < 4:
        return "the password repeats too few different characters"
    lowered = password.lower()
    core = lowered.rstrip("0123456789!?.#*_-@ ")
    if lowered in COMMON or core in COMMON:
        return "this password is on the list of commonly used passwords"
    if _is_sequence(lowered):
        return "the password is a simple keyboard or alphabet sequence"
    return None


def _is_sequence(text: str) -> bool:
    for row in KEYBOARD_ROWS:
        for line in (row, row[::-1]):
            if text in line * (len(text) // len(line) + 2):
                return True
    return False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class AdminPassword:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "admin.json")
        self._record = self._load()
        # A keyed digest of the last password that verified, so that scripts using HTTP Basic
        # on every request do not pay for scrypt each time.
        self._cache_key = os.urandom(32)
        self._verified: bytes | None = None

    def _load(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                record = json.load(f)
        except FileNotFoundError:
            return None
        if not isinstance(record, dict) or record.get("algorithm") != "scrypt":
            raise ValueError(f"{self.path}: not a Doorline password file")
        return record

    @property
    def is_set(self) -> bool:
        return self._record is not None

    def set(self, password: str, replace: bool = False) -> None:
        """Store the first password; with `replace`, a new one over the current (the caller
        has verified the current one)."""
        if self.is_set and not replace:
            raise PasswordAlreadySet("the admin password is already set")
        reason = weakness(password)
        if reason:
            raise ValueError(reason)
        salt = os.urandom(16)
        record = {"algorithm": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                  "salt": _b64(salt), "hash": _b64(_scrypt(password, salt, SCRYPT_N, SCRYPT_R,
                                                           SCRYPT_P, HASH_BYTES))}
        _write_private(self.path, json.dumps(record))
        self._record = record
        self._verified = None

    @property
    def fingerprint(self) -> str:
        """A digest of the stored password record ("" before it is set): changes whenever the
        password does (web/sessions.py binds the saved sessions to it)."""
        record = self._record
        if record is None:
            return ""
        sha256 = hash_constructor("sha256")  # CPython's built-in: no libcrypto at start
        assert sha256 is not None
        return sha256(("%s$%s" % (record.get("salt"), record.get("hash")))
                              .encode()).hexdigest()

    def known(self, password: str | None) -> bool:
        """True when `password` is the last one that verified (a keyed digest, no scrypt: cheap
        enough for the event loop)."""
        if not self.is_set or not isinstance(password, str) or len(password) > MAX_LENGTH:
            return False
        import hmac  # libcrypto, as scrypt: only once a password is in play

        tag = hmac.digest(self._cache_key, password.encode("utf-8"), "sha256")
        return self._verified is not None and compare_digest(tag, self._verified)

    def verify(self, password: object) -> bool:
        if not self.is_set or not isinstance(password, str) or len(password) > MAX_LENGTH:
            return False
        if self.known(password):
            return True
        import hmac  # libcrypto, as scrypt: only once a password is in play

        tag = hmac.digest(self._cache_key, password.encode("utf-8"), "sha256")
        record = self._record
        assert record is not None  # is_set
        expected = base64.b64decode(record["hash"])
        actual = _scrypt(password, base64.b64decode(record["salt"]), record["n"], record["r"],
                         record["p"], len(expected))
        if compare_digest(actual, expected):
            self._verified = tag
            return True
        return False


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    import hashlib  # scrypt is OpenSSL's: libcrypto from the first login on

    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=256 * 1024 * 1024)


def _write_private(path: str, text: str) -> None:
    """Temp file in the same directory, mode 0600 from creation, fsync, rename."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
