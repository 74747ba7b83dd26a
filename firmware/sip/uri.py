"""SIP, SIPS and tel URIs: parse, serialise, compare.

Implements the SIP-URI / SIPS-URI grammar of RFC 3261 §19.1.1 and §25.1, the comparison rules of
§19.1.4, tel URIs per RFC 3966 (comparison §4) and IPv6 references per RFC 5118 with the corrected
IPv6 grammar of RFC 5954 (so `[2001:db8:::192.0.2.1]` is rejected). Any other scheme is the
absoluteURI of §25.1: kept opaque, compared textually (RFC 4475 §3.3.2-3.3.4 must still parse).

Public API
    URI.parse(text) -> URI                raises ParseError on anything outside the grammar;
                                          the same text may give the same (shared) object:
                                          read it, change only a copy()
    URI(scheme="sip", user=None, host=None, port=None, params=None, headers=None,
        password=None, opaque=None)       build one (values are trusted, not validated)
    uri.scheme     "sip", "sips", "tel" or another scheme, lower-case
    uri.user       user part as written (escapes kept); for tel the telephone number
    uri.password   as written, or None
    uri.host       as written; an IPv6 reference keeps its brackets ("[::1]"); None for tel
    uri.port       int or None
    uri.params     dict: lower-case names (escaped unreserved characters decoded) -> value as
                   written, None for a flag parameter such as `lr`
    uri.headers    dict: header name -> value as written (the `?a=b&c=d` part)
    uri.opaque     text after "scheme:" for other schemes, else None
    uri.transport  lower-case `transport` parameter or None
    str(uri), uri == other (§19.1.4 / RFC 3966 §4), hash(uri), uri.copy()

Helpers shared with the header parsers
    split_host_port(text) -> (host, port)   `host [":" port]` as in a Via sent-by
    is_token(text) -> bool                   RFC 3261 token
    only(text, chars) -> bool                every character of non-empty text is in chars
"""

from firmware.compat import ordered_dict
from firmware.sip.errors import ParseError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from typing import Any

DIGITS = "0123456789"
HEX_DIGITS = DIGITS + "abcdefABCDEF"
ALPHANUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + DIGITS
TOKEN_CHARS = ALPHANUM + "-.!%*_+`'~"
_UNRESERVED = ALPHANUM + "-_.!~*'()"
_RESERVED = ";/?:@&=+$,"
_USER_CHARS = _UNRESERVED + "%&=+$,;?/"
_PASSWORD_CHARS = _UNRESERVED + "%&=+$,"
_PARAM_CHARS = _UNRESERVED + "%[]/:&+$"
_HEADER_CHARS = _UNRESERVED + "%[]/?:+$"
_HOST_CHARS = ALPHANUM + "-._"
_SCHEME_CHARS = ALPHANUM + "+-."
_OPAQUE_CHARS = _UNRESERVED + _RESERVED + "%[]#"
_VISUAL_SEPARATORS = "-.()"
# §19.1.4: these parameters make two URIs differ when only one of them carries it.
_MUST_MATCH_PARAMS = ("user", "ttl", "method", "maddr", "transport")
_CASELESS_PARAMS = ("user", "maddr", "transport")


def only(text: str, chars: str) -> bool:
    """True when text is non-empty and made only of chars (str.strip runs in C)."""
    return bool(text) and not text.strip(chars)


def is_token(text: str) -> bool:
    return only(text, TOKEN_CHARS)


def _check_escapes(text: str) -> None:
    """Every `%` must start a two-hex-digit escape (§25.1 escaped)."""
    if "%" in text:
        for chunk in text.split("%")[1:]:
            if len(chunk) < 2 or not only(chunk[:2], HEX_DIGITS):
                raise ParseError("bad %-escape in URI")


def _normalised(text: str | None) -> bytes | None:
    """Bytes for comparison: escapes decoded except those of reserved characters (§19.1.4)."""
    if text is None or "%" not in text:
        return None if text is None else text.encode()
    chunks = text.split("%")
    out = bytearray(chunks[0].encode())
    for chunk in chunks[1:]:
        code = int(chunk[:2], 16)
        if chr(code) in _RESERVED:
            out += b"%" + chunk[:2].upper().encode()
        else:
            out.append(code)
        out += chunk[2:].encode()
    return bytes(out)


def _decode_unreserved(text: str) -> str:
    """Decode escapes of unreserved characters only, so `%6C%72` names the `lr` parameter."""
    if "%" not in text:
        return text
    chunks = text.split("%")
    out = [chunks[0]]
    for chunk in chunks[1:]:
        char = chr(int(chunk[:2], 16))
        out.append(char + chunk[2:] if char in _UNRESERVED else "%" + chunk)
    return "".join(out)


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not only(part, DIGITS) or len(part) > 3 or int(part) > 255:
            return False
    return True


def _is_ipv6(text: str) -> bool:
    """RFC 3986 IPv6address (as adopted by RFC 5954), without the brackets."""
    if text.count("::") > 1:
        return False
    compressed = "::" in text
    if compressed:
        head, tail = text.split("::")
        groups = (head.split(":") if head else []) + (tail.split(":") if tail else [])
    else:
        groups = text.split(":")
    count = len(groups)
    if groups and "." in groups[-1] and not text.endswith(":"):
        if not _is_ipv4(groups[-1]):
            return False
        groups = groups[:-1]
        count += 1
    for group in groups:
        if len(group) > 4 or not only(group, HEX_DIGITS):
            return False
    return count < 8 if compressed else count == 8


def _check_host(host: str) -> None:
    if host.startswith("["):
        if not host.endswith("]") or not _is_ipv6(host[1:-1]):
            raise ParseError("bad IPv6 reference")
        return
    if only(host, DIGITS + "."):
        if not _is_ipv4(host):
            raise ParseError("bad IPv4 address")
        return
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not only(host, _HOST_CHARS):
        raise ParseError("bad host")
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-":
            raise ParseError("bad host")


def _parse_port(text: str) -> int:
    if not only(text, DIGITS) or len(text) > 5 or int(text) > 65535:
        raise ParseError("bad port")
    return int(text)


# Answers of split_host_port for the few sent-bys and hosts a station sees again and again
# (its own address, the registrar, the peers of its calls): each INVITE names the same host in
# its Request-URI, Via, From, To and Contact (issue 14, the answer path). Bounded: emptied
# when full, so no peer can grow it.
_HOST_PORTS: "dict[str, tuple[str, int | None]]" = {}
MAX_HOST_PORTS = 64


def split_host_port(text: str) -> tuple[str, int | None]:
    """`host [":" port]` -> (host, port or None); IPv6 references keep their brackets."""
    known = _HOST_PORTS.get(text)
    if known is not None:
        return known
    if len(_HOST_PORTS) >= MAX_HOST_PORTS:
        _HOST_PORTS.clear()
    known = _HOST_PORTS[text] = _split_host_port(text)  # raises ParseError: nothing kept
    return known


def _split_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and rest[0] != ":":
            raise ParseError("bad text after IPv6 reference")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text = text.partition(":")
        if not colon:
            port_text = None
    _check_host(host)
    return host, (None if port_text is None else _parse_port(port_text))


def _parse_params(chunks: list[str], keep_case: bool = False) -> dict[str, str | None]:
    """`;name[=value]` chunks of a URI -> dict in the order written (§25.1 uri-parameters,
    RFC 3966 par)."""
    params = ordered_dict()
    for chunk in chunks:
        name, equals, value = chunk.partition("=")
        if not only(name, _PARAM_CHARS) or (equals and not only(value, _PARAM_CHARS)):
            raise ParseError("bad URI parameter")
        _check_escapes(chunk)
        name = _decode_unreserved(name).lower()
        if name in params:
            raise ParseError("repeated URI parameter")
        params[name] = value if equals else None
    return params


def _parse_headers(text: str) -> dict[str, str]:
    headers = ordered_dict()
    for chunk in text.split("&"):
        name, equals, value = chunk.partition("=")
        bad_value = value and not only(value, _HEADER_CHARS)
        if not equals or not only(name, _HEADER_CHARS) or bad_value:
            raise ParseError("bad URI header")
        _check_escapes(chunk)
        headers[name] = value
    return headers


# URI.parse's last answers: a station sees the same few URIs in every INVITE (its own in the
# Request-URI and To, the caller's in From and Contact; issue 14, the answer path). The objects
# are shared, so a parsed URI is read, never changed (`copy()` gives one to change). Bounded:
# emptied when full, long texts not kept.
_PARSED: "dict[str, URI]" = {}
MAX_PARSED = 64
MAX_PARSED_LENGTH = 256


class URI:
    """A parsed or built URI; see the module docstring for the attributes. A parsed URI may be
    shared (URI.parse keeps its last answers): change a `copy()`, never the parsed one."""

    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers", "opaque")

    def __init__(self, scheme: str = "sip", user: str | None = None, host: str | None = None,
                 port: int | None = None, params: dict[str, str | None] | None = None,
                 headers: dict[str, str] | None = None, password: str | None = None,
                 opaque: str | None = None) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = ordered_dict(params) if params else ordered_dict()
        self.headers = ordered_dict(headers) if headers else ordered_dict()
        self.opaque = opaque

    @classmethod
    def parse(cls, text: str) -> "URI":
        known = _PARSED.get(text) if isinstance(text, str) else None
        if known is not None and cls is URI:
            return known
        uri = cls._parse(text)
        if cls is URI and len(text) <= MAX_PARSED_LENGTH:
            if len(_PARSED) >= MAX_PARSED:
                _PARSED.clear()
            _PARSED[text] = uri
        return uri

    @classmethod
    def _parse(cls, text: str) -> "URI":
        if not isinstance(text, str):
            raise ParseError("URI is not text")
        scheme, colon, rest = text.partition(":")
        if not colon or not only(scheme, _SCHEME_CHARS) or scheme[0] not in ALPHANUM[:52]:
            raise ParseError("bad URI scheme")
        scheme = scheme.lower()
        try:
            if scheme in ("sip", "sips"):
                return cls._parse_sip(scheme, rest)
            if scheme == "tel":
                return cls._parse_tel(rest)
        except (ValueError, IndexError) as error:
            if isinstance(error, ParseError):
                raise
            raise ParseError("malformed URI") from error
        if not only(rest, _OPAQUE_CHARS):
            raise ParseError("bad characters in URI")
        return cls(scheme, opaque=rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str) -> "URI":
        user = password = None
        # '@' cannot occur unescaped after the userinfo (§25.1), so the first one ends it.
        userinfo, at, hostpart = rest.partition("@")
        if at:
            user, colon, password = userinfo.partition(":")
            if not only(user, _USER_CHARS):
                raise ParseError("bad URI user part")
            if colon:
                if password and not only(password, _PASSWORD_CHARS):
                    raise ParseError("bad URI password")
            else:
                password = None
            _check_escapes(userinfo)
        else:
            hostpart = rest
        hostpart, question, header_text = hostpart.partition("?")
        chunks = hostpart.split(";")
        host, port = split_host_port(chunks[0])
        params = _parse_params(chunks[1:])
        headers = _parse_headers(header_text) if question else None
        return cls(scheme, user, host, port, params, headers, password)

    @classmethod
    def _parse_tel(cls, rest: str) -> "URI":
        chunks = rest.split(";")
        number = chunks[0]
        params = _parse_params(chunks[1:])
        if number.startswith("+"):
            valid = only(number[1:], DIGITS + _VISUAL_SEPARATORS)
            valid = valid and number[1:].strip(_VISUAL_SEPARATORS) != ""
        else:
            valid = only(number, HEX_DIGITS + "*#" + _VISUAL_SEPARATORS)
            valid = valid and params.get("phone-context") is not None  # RFC 3966 §5.1.5
        if not valid:
            raise ParseError("bad telephone number")
        return cls("tel", number, params=params)

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.lower() if value else None

    def copy(self) -> "URI":
        return URI(self.scheme, self.user, self.host, self.port, self.params, self.headers,
                   self.password, self.opaque)

    def __str__(self) -> str:
        if self.opaque is not None:
            return self.scheme + ":" + self.opaque
        out = self.scheme + ":"  # by concatenation: no list, no join (issue 14, the answer path)
        if self.user is not None:
            out += self.user
            if self.password is not None:
                out += ":" + self.password
            if self.host is not None:
                out += "@"
        if self.host is not None:
            out += self.host
        if self.port is not None:
            out += ":" + str(self.port)
        for name, value in self.params.items():
            out += ";" + name if value is None else ";" + name + "=" + value
        if self.headers:
            out += "?" + "&".join(name + "=" + value for name, value in self.headers.items())
        return out

    def __repr__(self) -> str:
        return "URI(" + repr(str(self)) + ")"

    def _tel_key(self) -> tuple[str, list[tuple[str, bytes | None]]]:
        number = self.user or ""
        for separator in _VISUAL_SEPARATORS:
            number = number.replace(separator, "")
        params = sorted(  # _normalised(str) is bytes, never None:
            (name, None if value is None else _normalised(value).lower())  # type: ignore[union-attr]
            for name, value in self.params.items()
        )
        return number.upper(), params

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, URI):
            return NotImplemented
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if self.scheme == "tel":
            return self._tel_key() == other._tel_key()
        return self._sip_equal(other)

    def _sip_equal(self, other: "URI") -> bool:
        mine: Any  # str, then its normalised bytes, then the headers' dict
        theirs: Any
        if (
            _normalised(self.user) != _normalised(other.user)
            or _normalised(self.password) != _normalised(other.password)
            or (self.host or "").lower() != (other.host or "").lower()
            or self.port != other.port
        ):
            return False
        for name in set(self.params) | set(other.params):
            mine, theirs = self.params.get(name), other.params.get(name)
            present = (name in self.params, name in other.params)
            if present != (True, True):
                if name in _MUST_MATCH_PARAMS:
                    return False
                continue
            if mine is None or theirs is None:
                if mine is not theirs:
                    return False
                continue
            mine, theirs = _normalised(mine), _normalised(theirs)
            if name in _CASELESS_PARAMS:
                mine, theirs = mine.lower(), theirs.lower()
            if mine != theirs:
                return False
        mine = {name.lower(): _normalised(value) for name, value in self.headers.items()}
        theirs = {name.lower(): _normalised(value) for name, value in other.headers.items()}
        return mine == theirs

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        if self.opaque is not None:
            return hash((self.scheme, self.opaque))
        if self.scheme == "tel":
            return hash((self.scheme, self._tel_key()[0]))
        return hash((self.scheme, _normalised(self.user), (self.host or "").lower(), self.port))
