"""HTTP Digest authentication for SIP: challenges in, credentials out.

Implements the client side of RFC 3261 section 22 with the algorithms of RFC 7616 as RFC 8760
brings them to SIP (MD5, SHA-256, SHA-512-256 and their "-sess" forms), plus the RFC 2617 /
RFC 2069 form without qop that RFC 3261 section 22.4 keeps for old registrars.

Public API
- `Challenge.parse(value) -> Challenge`: one `Digest` challenge from a WWW-Authenticate or
  Proxy-Authenticate value; raises `ParseError`. Attributes: `realm`, `nonce`, `algorithm`
  (upper case, "MD5" when absent), `qop` (list of lower-case options, empty when absent),
  `opaque`, `stale` (bool), `userhash` (bool), `params` (every parameter, lower-case names).
  `challenge.supported` says whether `authorization_header` can answer it.
- `parse_challenges(values) -> list`: every Digest challenge in a list of header values (a value
  may hold several challenges, RFC 7235 section 4.1); other schemes are skipped.
- `choose_challenge(challenges) -> Challenge | None`: the strongest supported one (see below).
- `compute_response(algorithm, username, realm, password, method, uri, nonce, nc=None,
  cnonce=None, qop=None, body=b"") -> str`: the hex `response` value (nc as 8 hex digits).
- `authorization_header(challenge, method, uri, username, password, cnonce, nc, body=b"")`:
  the Authorization / Proxy-Authorization value; `nc` is an int, `cnonce` a string the caller
  draws from `os.urandom` (passed in so tests are deterministic).
- `supported_algorithms() -> tuple`: what this interpreter can hash, strongest first (asks
  for every algorithm, so it loads hashlib on CPython; the UA itself never calls it).

Hash implementations come from `compat.hash_constructor`, looked up when an algorithm is first
needed: MD5 and SHA-256 without hashlib's OpenSSL on CPython, SHA-512-256 through hashlib only
when a registrar asks for it (issue 14: libcrypto costs ~3.7 MB of RSS).

Choosing among challenges: RFC 8760 (section 2.3, UAC behavior) lets a server send one challenge
per algorithm in order of its preference; the UAC should take the topmost it supports unless local
policy says otherwise. Our policy is the strongest algorithm we support (SHA-512-256, then
SHA-256, then MD5), so a registrar that still offers MD5 for old phones never downgrades us.
"""

from firmware.compat import hash_constructor
from firmware.sip.errors import ParseError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable
    from typing import Any, Literal

# RFC 7616 algorithm -> compat.hash_constructor name, strongest first.
_HASH_NAMES = (("SHA-512-256", "sha512_256"), ("SHA-256", "sha256"), ("MD5", "md5"))
_RANK = {algorithm: rank for rank, (algorithm, _) in enumerate(_HASH_NAMES)}

# algorithm -> constructor, or None once known to be missing; filled on first use (3 entries)
_HASHES: "dict[str, Callable | None]" = {}


def _hash_for(algorithm: str) -> "Callable | None":
    """The constructor for an upper-case base algorithm, or None (unknown or missing here)."""
    if algorithm not in _HASHES:
        if algorithm not in _RANK:
            return None
        _HASHES[algorithm] = hash_constructor(_HASH_NAMES[_RANK[algorithm]][1])
    return _HASHES[algorithm]


def supported_algorithms() -> "tuple[str, ...]":
    return tuple(a for a, _ in _HASH_NAMES if _hash_for(a) is not None)


_QOP_PREFERENCE = ("auth", "auth-int")  # auth-int costs a body hash and protects nothing more here


def _is_session(algorithm: str) -> bool:
    return algorithm.upper().endswith("-SESS")


def _base_algorithm(algorithm: str) -> str:
    """"SHA-256" for "sha-256-sess": the hash behind an algorithm token (case-insensitive)."""
    algorithm = algorithm.upper()
    return algorithm[: -len("-SESS")] if _is_session(algorithm) else algorithm


def _hex_hash(algorithm: str, data: bytes) -> str:
    constructor = _hash_for(_base_algorithm(algorithm))
    if constructor is None:
        raise ValueError("unsupported digest algorithm: " + algorithm)
    return constructor(data).digest().hex()


def _hash_joined(algorithm: str, *parts: "Any") -> str:  # str, None where qop is absent
    """H(part1 ":" part2 ...), the shape of every digest input; text is UTF-8 (RFC 7616 4)."""
    return _hex_hash(algorithm, ":".join(parts).encode("utf-8"))


class Challenge:
    """One Digest challenge (RFC 7616 section 3.3, RFC 3261 section 22.1)."""

    __slots__ = ("scheme", "params", "realm", "nonce", "algorithm", "qop", "opaque", "stale",
                 "userhash")

    def __init__(self, params: dict[str, str], scheme: str = "Digest") -> None:
        if "realm" not in params or "nonce" not in params:
            raise ParseError("digest challenge without realm or nonce")
        self.scheme = scheme
        self.params = params
        self.realm = params["realm"]
        self.nonce = params["nonce"]
        self.algorithm = params.get("algorithm") or "MD5"  # echoed as the server spelled it
        qop = params.get("qop") or ""
        self.qop = [option.strip().lower() for option in qop.split(",") if option.strip()]
        self.opaque = params.get("opaque")
        self.stale = (params.get("stale") or "").lower() == "true"
        self.userhash = (params.get("userhash") or "").lower() == "true"

    @classmethod
    def parse(cls, value: str) -> "Challenge":
        challenges = parse_challenges([value])
        if len(challenges) != 1:
            raise ParseError("expected exactly one Digest challenge")
        return challenges[0]

    @property
    def chosen_qop(self) -> "str | None | Literal[False]":
        """The qop we answer with: None for the RFC 2069 form, or the first we support (False:
        none of those offered, the challenge is not `supported`)."""
        if not self.qop:
            return None
        for option in _QOP_PREFERENCE:
            if option in self.qop:
                return option
        return False

    @property
    def supported(self) -> bool:
        if self.chosen_qop is False:
            return False
        return _hash_for(_base_algorithm(self.algorithm)) is not None

    def __repr__(self) -> str:
        qop = ",".join(self.qop) or "-"
        return f"<Challenge {self.scheme} realm={self.realm!r} algorithm={self.algorithm} " \
               f"qop={qop} stale={self.stale}>"


def _skip(text: str, position: int, characters: str = " \t\r\n") -> int:
    while position < len(text) and text[position] in characters:
        position += 1
    return position


def _read_token(text: str, position: int) -> tuple[str, int]:
    start = position
    while position < len(text) and text[position] not in " \t\r\n,=\"":
        position += 1
    return text[start:position], position


def _read_quoted(text: str, position: int) -> tuple[str, int]:
    """A quoted-string starting at the opening quote; backslash escapes one character."""
    characters = []
    position += 1
    while position < len(text):
        character = text[position]
        if character == "\\" and position + 1 < len(text):
            characters.append(text[position + 1])
            position += 2
        elif character == '"':
            return "".join(characters), position + 1
        else:
            characters.append(character)
            position += 1
    raise ParseError("unterminated quoted string in challenge")


def _parse_auth_items(text: str) -> list[tuple[str, dict[str, str]]]:
    """Split `scheme param=value, param="value", scheme ...` into (scheme, params) pairs."""
    items: list[tuple[str, dict[str, str]]] = []
    position = 0
    while True:
        position = _skip(text, position, " \t\r\n,")
        if position >= len(text):
            return items
        word, position = _read_token(text, position)
        if not word:
            raise ParseError("unexpected character in challenge")
        after = _skip(text, position)
        if after < len(text) and text[after] == "=":
            if not items:
                raise ParseError("challenge parameter before any scheme")
            position = _skip(text, after + 1)
            if position < len(text) and text[position] == '"':
                value, position = _read_quoted(text, position)
            else:
                value, position = _read_token(text, position)
            items[-1][1][word.lower()] = value
        else:
            items.append((word, {}))
            position = after


def parse_challenges(values: list[str]) -> "list[Challenge]":
    """Every Digest challenge in the given header values, in order."""
    challenges = []
    for value in values:
        for scheme, params in _parse_auth_items(value):
            if scheme.lower() == "digest":
                challenges.append(Challenge(params, scheme))
    return challenges


def choose_challenge(challenges: "list[Challenge]") -> "Challenge | None":
    """The strongest supported challenge (module docstring), the first of equals; or None."""
    best = None
    best_rank = len(_HASH_NAMES)
    for challenge in challenges:
        if not challenge.supported:
            continue
        rank = _RANK[_base_algorithm(challenge.algorithm)]
        if rank < best_rank:
            best, best_rank = challenge, rank
    return best


def compute_response(algorithm: str, username: str, realm: str, password: str, method: str,
                     uri: str, nonce: str, nc: str | None = None, cnonce: str | None = None,
                     qop: str | None = None, body: bytes = b"") -> str:
    """The request-digest of RFC 7616 section 3.4.1 (RFC 2617 section 3.2.2.1 without qop)."""
    ha1 = _hash_joined(algorithm, username, realm, password)
    if _is_session(algorithm):
        ha1 = _hash_joined(algorithm, ha1, nonce, cnonce)  # RFC 7616 section 3.4.2
    if qop == "auth-int":
        ha2 = _hash_joined(algorithm, method, uri, _hex_hash(algorithm, body))
    else:
        ha2 = _hash_joined(algorithm, method, uri)
    if qop:
        return _hash_joined(algorithm, ha1, nonce, nc, cnonce, qop, ha2)
    return _hash_joined(algorithm, ha1, nonce, ha2)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization_header(challenge: "Challenge", method: str, uri: str, username: str,
                         password: str, cnonce: str, nc: int, body: bytes = b"") -> str:
    """The credentials answering `challenge` (RFC 3261 section 22.2, RFC 7616 section 3.4)."""
    if not challenge.supported:
        raise ValueError(f"unsupported digest challenge: {challenge!r}")
    qop = challenge.chosen_qop
    assert qop is not False  # challenge.supported
    nc_text = f"{nc:08x}"
    response = compute_response(challenge.algorithm, username, challenge.realm, password,
                                method, uri, challenge.nonce, nc_text, cnonce, qop, body)
    shown_username = username
    if challenge.userhash:  # RFC 7616 section 3.4.4: hide the user name from onlookers
        shown_username = _hash_joined(challenge.algorithm, username, challenge.realm)
    fields = [
        "username=" + _quote(shown_username),
        "realm=" + _quote(challenge.realm),
        "nonce=" + _quote(challenge.nonce),
        "uri=" + _quote(uri),
        "response=" + _quote(response),
        "algorithm=" + challenge.algorithm,
    ]
    if qop or _is_session(challenge.algorithm):
        fields.append("cnonce=" + _quote(cnonce))
    if challenge.opaque is not None:
        fields.append("opaque=" + _quote(challenge.opaque))
    if qop:
        fields.append("qop=" + qop)
        fields.append("nc=" + nc_text)
    if challenge.userhash:
        fields.append("userhash=true")
    return "Digest " + ", ".join(fields)
