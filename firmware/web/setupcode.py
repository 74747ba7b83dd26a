"""The one-time setup code that setting the first admin password from another machine needs.

Until the admin password exists, whoever reaches the page could set it. So a request that does
not come from the station itself (loopback) must also give this code, which only someone with
access to the station or to how it was installed can know: it is made on first start (or by
`make install`, or by the image builder, which seed `STATE_DIR/setup-code`), stored there with
mode 0600, logged at WARNING on every start while no password is set (journalctl -u doorline),
and removed once the password is set.

The code is `CODE_LENGTH` characters from `ALPHABET` (no 0/O, 1/I/L), shown as two groups
joined by "-"; typing compares without case, spaces or dashes, in constant time.

Public API:
- `ALPHABET`, `CODE_LENGTH`, `FILE_NAME`, `make_code() -> str`, `normalise(text) -> str`,
  `is_valid(text) -> bool` (a well-formed code).
- `SetupCode(state_dir)`: `.ensure() -> str` (the stored code, made and written when missing
  or malformed), `.matches(text) -> bool`, `.remove()`, `.path`.
"""

import os

from firmware.compat import compare_digest

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 10
MIN_LENGTH, MAX_LENGTH = 8, 32  # what a seeded file may hold
FILE_NAME = "setup-code"


def make_code() -> str:
    # os.urandom, as `secrets` and SystemRandom draw (no libcrypto, and not the `random`
    # module, which nothing else of an idle station needs: issue 14, sixth round). A byte
    # counts only below the largest multiple of the alphabet's size (uniform); 248 of 256
    # bytes are kept on average, so the bounded supply never runs out in practice.
    size = len(ALPHABET)
    limit = 256 - 256 % size
    picks = [b % size for b in os.urandom(CODE_LENGTH * 8) if b < limit][:CODE_LENGTH]
    if len(picks) < CODE_LENGTH:
        raise RuntimeError("os.urandom gave too few usable bytes")
    code = "".join(ALPHABET[i] for i in picks)
    return code[:CODE_LENGTH // 2] + "-" + code[CODE_LENGTH // 2:]


def normalise(text: str) -> str:
    return "".join(c for c in text.upper() if c not in " -\t")


def is_valid(text: str) -> bool:
    core = normalise(text) if isinstance(text, str) else ""
    return MIN_LENGTH <= len(core) <= MAX_LENGTH and all(c in ALPHABET for c in core)


class SetupCode:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, FILE_NAME)
        self._code: str | None = None

    def _load(self) -> str | None:
        try:
            with open(self.path, encoding="ascii", errors="replace") as f:
                text = f.read(MAX_LENGTH * 2).strip()
        except OSError:
            return None
        return text if is_valid(text) else None

    def ensure(self) -> str:
        code = self._load()
        if code is None:
            code = make_code()
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            tmp = f"{self.path}.tmp.{os.getpid()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(code + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        else:
            try:
                os.chmod(self.path, 0o600)
            except OSError:
                pass
        self._code = code
        return code

    def matches(self, text: str | None) -> bool:
        if self._code is None or not isinstance(text, str) or len(text) > MAX_LENGTH * 2:
            return False
        return compare_digest(normalise(text).encode("ascii", "replace"),
                                   normalise(self._code).encode("ascii"))

    def remove(self) -> None:
        self._code = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
