"""SIP messages: parse and serialise requests and responses, frame streams, header value types.

Implements RFC 3261 §7 (message format: start lines, header fields and folding §7.3.1, compact
forms §7.3.3, framing §7.5 and §18.3), §20 (header fields, list headers), the §25 grammar for the
start lines, Via, name-addr/addr-spec, CSeq and generic-param, §8.2.6 (making responses) and the
mandatory-header checks of §8.1.1 / §8.2 that decide a 400. RFC 5626 §4.4.1 CRLF keep-alives on
streams. Validated against the RFC 4475 and RFC 5118 torture messages.

Public API
    parse(data: bytes) -> Request | Response      one datagram; raises ParseError only
    check_message(message) -> str | None          why a parsed message must be refused (a
        reason phrase for 400; "Version Not Supported" means 505), or None when it is usable
    Request(method, uri, headers=None, body=b"", version=SIP_VERSION)   uri: URI or text
        .method .uri .version .headers .body; .make_response(status, reason=None, to_tag=None)
    Response(status, reason=None, headers=None, body=b"", version=SIP_VERSION)
        .status .reason .version .headers .body
    message.to_bytes()  serialises; writes one Content-Length equal to len(body)
        (CPython also takes bytes(message); MicroPython ignores __bytes__)
    Headers(fields=None)  ordered, case-insensitive; compact names expanded (`i` -> `Call-ID`)
        get(name, default=None), get_all(name), set(name, value), add(name, value),
        insert(name, value), remove(name), name in headers, iter -> (name, value), len, copy()
    Via.parse(value)          .protocol .transport (upper-case) .host .port .params .branch
    NameAddress.parse(value)  .display_name .uri .params .tag; `*` gives .wildcard (uri None);
        the same text may give the same (shared) object, as URI.parse: read, never change it
    CSeq.parse(value)         .seq .method
    StreamReader().feed(data) -> list of Request / Response / ParseError / KEEPALIVE_PING /
        KEEPALIVE_PONG; .pending (bytes held); .broken (framing lost: close the connection)
    Limits: MAX_MESSAGE_SIZE, MAX_HEADERS, MAX_HEADER_LINE. Tables: COMPACT_FORMS,
    LIST_HEADERS, REASON_PHRASES. Helpers: canonical_name(name) -> (name, key),
    split_outside(text, separator) (splits outside quotes and <>; for e.g. challenge params).

Choices
    * The header section must be UTF-8 (§7.3.1 TEXT-UTF8); other bytes are a ParseError. The body
      stays bytes and may hold anything (RFC 4475 mpart01).
    * Lines end in CRLF (§7). A bare CR or LF, or a control character outside a quoted-pair,
      in the header section is a ParseError.
    * Values of list headers (LIST_HEADERS) are split at commas outside quotes and <>, one entry
      per element; other headers (WWW-Authenticate, Date...) are never split.
    * Content-Length is framing, not data: parse() drops it from the headers (len(body) is the
      truth) and to_bytes() writes a fresh one. On a datagram, a larger Content-Length than the
      body is an error, a smaller one truncates, none means the rest of the datagram (§18.3).
    * Header values are kept as text; the typed parsers (Via, NameAddress, CSeq) run on demand,
      and check_message() runs them on the headers every transaction and dialog relies on.
      parse() accepts liberal request-line spacing (RFC 4475 §3.1.2.9-10) and writes it clean.
    * Header parameter values are kept as written (a quoted value keeps its quotes); names are
      lower-case.
    * check_message() treats Max-Forwards as optional (validated when present): RFC 2543 peers
      omit it and RFC 4475 §3.4.1 requires accepting them. Several Content-Length values are a
      ParseError (framing is ambiguous), other duplicated single-value headers are flagged.
"""

from firmware.compat import ordered_dict
from firmware.sip.errors import ParseError
from firmware.sip.uri import DIGITS, TOKEN_CHARS, URI, is_token, only, split_host_port

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable, Iterator
    from typing import Any

SIP_VERSION = "SIP/2.0"
MAX_MESSAGE_SIZE = 65535  # bytes of one message (a UDP datagram cannot be larger)
MAX_HEADERS = 256  # header field lines, after unfolding
MAX_HEADER_LINE = 8192  # characters of one unfolded header field

# §7.3.3 and the registered compact forms (RFC 3265, 3515, 3841, 3892, 4028, 4474).
COMPACT_FORMS = {
    "i": "call-id", "m": "contact", "f": "from", "t": "to", "v": "via", "l": "content-length",
    "c": "content-type", "e": "content-encoding", "k": "supported", "s": "subject",
    "o": "event", "u": "allow-events", "r": "refer-to", "b": "referred-by",
    "x": "session-expires", "a": "accept-contact", "j": "reject-contact",
    "d": "request-disposition", "y": "identity", "n": "identity-info",
}
_CANONICAL_NAMES = {
    name.lower(): name
    for name in (
        "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
        "Allow-Events", "Answer-Mode", "Authentication-Info", "Authorization", "Call-ID",
        "Call-Info", "Contact", "Priv-Answer-Mode", "Replaces",
        "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
        "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
        "Identity-Info", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE",
        "Organization", "P-Asserted-Identity", "Path", "Priority", "Privacy",
        "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
        "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Reply-To",
        "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Server",
        "Service-Route", "Session-Expires", "Subject", "Subscription-State", "Supported",
        "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
    )
}
# Headers whose grammar is `x *(COMMA x)` (§7.3.1): several values may share one line.
LIST_HEADERS = {
    "accept", "accept-contact", "accept-encoding", "accept-language", "alert-info", "allow",
    "allow-events", "call-info", "contact", "content-encoding", "content-language", "error-info",
    "in-reply-to", "p-asserted-identity", "path", "proxy-require", "reason", "record-route",
    "reject-contact", "require", "route", "service-route", "supported", "unsupported", "via",
    "warning",
}
_SINGLE_HEADERS = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Type")
_ADDRESS_HEADERS = ("From", "To", "Contact", "Route", "Record-Route")
_READ_ADDRESS_HEADERS = ("From", "To", "Contact")  # the first value is kept parsed
# by lookup key, for check_message (no lower() per message)
_MANDATORY = (("To", "to"), ("From", "from"), ("CSeq", "cseq"), ("Call-ID", "call-id"),
              ("Via", "via"))
_SINGLE_KEYS = tuple((name, name.lower()) for name in _SINGLE_HEADERS)
_ADDRESS_KEYS = tuple((name.lower(), 1 if name in _READ_ADDRESS_HEADERS else 0)
                      for name in _ADDRESS_HEADERS)
_RESPONSE_COPIED = ("via", "from", "to", "call-id", "cseq")  # §8.2.6.2, by lookup key

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

_WHITESPACE = " \t"
_GEN_VALUE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" + DIGITS + "-.!%*_+`'~:[]"


def _canonical_name(name: str) -> tuple[str, str]:
    key = name.lower()
    if len(key) == 1:
        key = COMPACT_FORMS.get(key, key)
    return _CANONICAL_NAMES.get(key, name), key


# The usual spellings of every known name (as registered, lower-case, compact) -> (printable
# name, key), computed once: the parser and each header lookup take one dict probe (issue 14,
# the answer path). Other spellings are worked out on each use, so no peer can grow this table.
_KNOWN_NAMES: dict[str, tuple[str, str]] = {}
for _printable in _CANONICAL_NAMES.values():
    for _spelling in (_printable, _printable.lower()):
        _KNOWN_NAMES[_spelling] = _canonical_name(_spelling)
for _compact in COMPACT_FORMS:
    for _spelling in (_compact, _compact.upper()):
        _KNOWN_NAMES[_spelling] = _canonical_name(_spelling)
del _printable, _spelling, _compact


def canonical_name(name: str) -> tuple[str, str]:
    """(printable name, lookup key) for a header name; compact forms are expanded (§7.3.3)."""
    known = _KNOWN_NAMES.get(name)
    return known if known is not None else _canonical_name(name)


def _quoted_end(text: str, start: int) -> int:
    """Index just past the quoted-string opening at text[start] (§25.1 quoted-pair aware)."""
    index = start + 1
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
        elif char == '"':
            return index + 1
        else:
            index += 1
    raise ParseError("unterminated quoted string")


def _unquote(text: str) -> str:
    """Content of a quoted-string without its quotes, quoted-pairs resolved."""
    if "\\" not in text:
        return text
    out = []
    index = 0
    while index < len(text):
        if text[index] == "\\":
            index += 1
        out.append(text[index])
        index += 1
    return "".join(out)


def split_outside(text: str, separator: str) -> list[str]:
    """Split at separator, except inside quoted strings and <...> (§7.3.1). An unterminated
    quote runs to the end: the value's own parser reports it, not the splitter."""
    if separator not in text:  # one item (e.g. a single Contact): nothing to split
        return [text]
    if '"' not in text and "<" not in text:
        return text.split(separator)
    parts = []
    start = index = 0
    in_angle = False
    length = len(text)
    while index < length:
        char = text[index]
        if char == '"':
            try:
                index = _quoted_end(text, index)
            except ParseError:
                break
            continue
        if char == "<":
            in_angle = True
        elif char == ">":
            in_angle = False
        elif char == separator and not in_angle:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


# The splits of short list values seen lately (`Allow`, `Supported` on every answer, the Via
# and Contact of a caller that calls again); bounded, emptied when full (issue 14).
_SPLITS: "dict[str, tuple[str, ...]]" = {}
MAX_SPLITS = 64
MAX_SPLIT_KEPT = 256  # characters of a value whose split is kept


def _split_list(value: str) -> "tuple[str, ...]":
    known = _SPLITS.get(value)
    if known is not None:
        return known
    items = [item.strip(_WHITESPACE) for item in split_outside(value, ",")]
    split = tuple(item for item in items if item) or ("",)
    if len(value) <= MAX_SPLIT_KEPT:
        if len(_SPLITS) >= MAX_SPLITS:
            _SPLITS.clear()
        _SPLITS[value] = split
    return split


class Headers:
    """Ordered header fields with case-insensitive names; see the module docstring."""

    __slots__ = ("_fields",)

    def __init__(self,
                 fields: "dict[str, str] | Headers | list[tuple[str, str]] | None" = None) -> None:
        self._fields: list[list[str]] = []  # [key, name, value]
        if fields is not None:
            for name, value in fields.items() if isinstance(fields, dict) else fields:
                self.add(name, value)

    def _entries(self, name: str, value: str) -> tuple[str, list[list[str]]]:
        # known names and list values already split: one dict probe each (issue 14)
        printable, key = _KNOWN_NAMES[name] if name in _KNOWN_NAMES else _canonical_name(name)
        value = str(value)
        if "\r" in value or "\n" in value:
            raise ParseError("line break in header value")
        if key not in LIST_HEADERS:
            return key, [[key, printable, value.strip(_WHITESPACE)]]
        values = _SPLITS[value] if value in _SPLITS else _split_list(value)
        return key, [[key, printable, item] for item in values]

    def get(self, name: str, default: str | None = None) -> "str | Any":
        # "str | Any": None when absent, but check_message() has made sure of the mandatory
        # headers (Via, From, To, Call-ID, CSeq), which the layers above read unchecked.
        known = _KNOWN_NAMES.get(name)
        key = known[1] if known is not None else _canonical_name(name)[1]
        for field in self._fields:
            if field[0] == key:
                return field[2]
        return default

    def get_all(self, name: str) -> list[str]:
        key = canonical_name(name)[1]
        return [field[2] for field in self._fields if field[0] == key]

    def add(self, name: str, value: str) -> None:
        self._fields.extend(self._entries(name, value)[1])

    def insert(self, name: str, value: str) -> None:
        key, entries = self._entries(name, value)
        keys = [field[0] for field in self._fields]
        position = keys.index(key) if key in keys else 0
        self._fields[position:position] = entries

    def set(self, name: str, value: str) -> None:
        key, entries = self._entries(name, value)
        fields = self._fields
        for position, field in enumerate(fields):
            if field[0] == key:  # the new values take the place of the first old one
                self._fields = fields[:position] + entries + [
                    later for later in fields[position:] if later[0] != key]
                return
        fields.extend(entries)

    def remove(self, name: str) -> None:
        key = canonical_name(name)[1]
        self._fields = [field for field in self._fields if field[0] != key]

    def copy(self) -> "Headers":
        return Headers(self)

    def __contains__(self, name: str) -> bool:
        known = _KNOWN_NAMES.get(name)
        key = known[1] if known is not None else _canonical_name(name)[1]
        for field in self._fields:
            if field[0] == key:
                return True
        return False

    def __iter__(self) -> "Iterator[tuple[str, str]]":
        return iter([(field[1], field[2]) for field in self._fields])

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return "Headers(" + repr(list(self)) + ")"


class _Message:
    def __init__(self, headers: "Headers | list[tuple[str, str]] | None", body: bytes,
                 version: str) -> None:
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = bytes(body)
        self.version = version
        # lookup key -> (the text parsed, its value object)
        self._parsed: dict[str, tuple[str, Any]] = {}

    # -- header values, parsed once per text ---------------------------------------------------
    # The value objects are shared: read them, do not change them (a changed top Via goes back
    # with `set_top_via`). A header set to a new text is parsed again on the next read.
    def _value(self, key: str, name: str, parse: "Callable[[str], Any]") -> "Any":
        for field in self.headers._fields:  # the first value under lookup key `key`
            if field[0] == key:
                text = field[2]
                break
        else:
            raise ParseError("no " + name + " header")
        known = self._parsed.get(key)
        if known is not None and known[0] == text:
            return known[1]
        value = parse(text)
        self._parsed[key] = (text, value)
        return value

    def top_via(self) -> "Via":
        """The first Via (`Via`); raises ParseError when missing or malformed."""
        return self._value("via", "Via", Via.parse)

    def cseq(self) -> "CSeq":
        return self._value("cseq", "CSeq", CSeq.parse)

    def from_address(self) -> "NameAddress":
        """The From as a `NameAddress` (`.tag`, `.uri`, ...)."""
        return self._value("from", "From", NameAddress.parse)

    def to_address(self) -> "NameAddress":
        return self._value("to", "To", NameAddress.parse)

    def contact_address(self) -> "NameAddress | None":
        """The first Contact as a `NameAddress`, or None without one."""
        for field in self.headers._fields:
            if field[0] == "contact":
                return self._value("contact", "Contact", NameAddress.parse)
        return None

    def set_top_via(self, via: "Via") -> None:
        """Replace the first Via with `via` (the endpoint's received/rport, §18.2.1)."""
        text = str(via)
        for field in self.headers._fields:
            if field[0] == "via":
                field[2] = text
                break
        else:
            self.headers.add("Via", text)
        self._parsed["via"] = (text, via)

    def start_line(self) -> str:
        raise NotImplementedError  # Request and Response write their own

    def to_bytes(self) -> bytes:
        lines = [self.start_line()] + [field[1] + ": " + field[2] for field in self.headers._fields
                                       if field[0] != "content-length"]
        lines.append("Content-Length: " + str(len(self.body)))
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body

    __bytes__ = to_bytes


class Request(_Message):
    def __init__(self, method: str, uri: "str | URI", headers: list[tuple[str, str]] | None = None,
                 body: bytes = b"", version: str = SIP_VERSION) -> None:
        _Message.__init__(self, headers, body, version)
        self.method = method
        self.uri = uri if isinstance(uri, URI) else URI.parse(uri)

    def start_line(self) -> str:
        return self.method + " " + str(self.uri) + " " + self.version

    def make_response(self, status: int, reason: str | None = None,
                      to_tag: str | None = None) -> "Response":
        """A response per §8.2.6: Via, From, To, Call-ID and CSeq copied; the To tag added
        when the request had none (not on 100, §8.2.6.2); Timestamp echoed on 100 (§8.2.6.1)."""
        headers = Headers()
        # The request's fields are already split and named canonically: copied as they are,
        # in this order (the answer path, issue 14: no second parse of each value).
        copied = headers._fields
        fields = self.headers._fields
        to = None  # the copied To field
        for key in _RESPONSE_COPIED:
            for field in fields:
                if field[0] == key:
                    entry = [key, field[1], field[2]]
                    copied.append(entry)
                    if key == "to" and to is None:
                        to = entry
        if status == 100:
            for field in fields:
                if field[0] == "timestamp":
                    copied.append(["timestamp", field[1], field[2]])
                    break
        if to_tag and status != 100 and to is not None and self._has_no_to_tag():
            to[2] = to[2] + ";tag=" + to_tag
        return Response(status, reason, headers)

    def _has_no_to_tag(self) -> bool:
        """True for a To without a tag; a To that does not parse is left as it is (the answer
        to a malformed request echoes what it got)."""
        try:
            return self.to_address().tag is None
        except ParseError:
            return False

    def __repr__(self) -> str:
        return "Request(" + repr(self.method) + ", " + repr(str(self.uri)) + ")"


class Response(_Message):
    def __init__(self, status: int, reason: str | None = None, headers: "Headers | None" = None,
                 body: bytes = b"", version: str = SIP_VERSION) -> None:
        _Message.__init__(self, headers, body, version)
        self.status = status
        self.reason = REASON_PHRASES.get(status, "") if reason is None else reason

    def start_line(self) -> str:
        return self.version + " " + str(self.status) + " " + self.reason

    def __repr__(self) -> str:
        return "Response(" + repr(self.status) + ", " + repr(self.reason) + ")"


def _parse_version(text: str) -> str:
    """§25.1 SIP-Version: "SIP" "/" 1*DIGIT "." 1*DIGIT ("SIP" is case-insensitive)."""
    major, dot, minor = text[4:].partition(".")
    if text[:4].upper() != "SIP/" or not dot or not only(major, DIGITS) or not only(minor, DIGITS):
        raise ParseError("bad SIP version")
    return "SIP/" + major + "." + minor


def _check_line(line: str) -> None:
    """Reject control characters except HTAB and those escaped by a quoted-pair."""
    if not line or (min(line) >= " " and "\x7f" not in line):  # the common case, in C
        return
    for index, char in enumerate(line):
        if (char < " " and char != "\t" or char == "\x7f") and line[index - 1 : index] != "\\":
            raise ParseError("control character in header section")


def _parse_start_line(line: str) -> "Request | Response":
    if line[:4].upper() == "SIP/":
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not only(code, DIGITS) or code[0] not in "123456":
            raise ParseError("bad status code")
        return Response(int(code), reason.strip(_WHITESPACE), version=_parse_version(version))
    # RFC 4475 §3.1.2.9-10: extra SP between or after the elements is accepted liberally.
    parts = [part for part in line.split(" ") if part]
    if len(parts) != 3:
        raise ParseError("bad request line")
    method, uri, version = parts
    if not is_token(method):
        raise ParseError("bad method")
    return Request(method, URI.parse(uri), version=_parse_version(version))


def _parse_head(raw: bytes) -> "Request | Response":
    """Start line and header fields (bytes before the empty line) -> message without body."""
    try:
        text = raw.decode("utf-8")
    except UnicodeError:
        raise ParseError("header section is not UTF-8") from None
    lines = text.split("\r\n")
    unbroken = text.replace("\r\n", "")
    # the common case, in C: no control character anywhere (else each line is looked at)
    clean = not unbroken or (min(unbroken) >= " " and "\x7f" not in unbroken)
    if not clean:
        _check_line(lines[0])
    message = _parse_start_line(lines[0])
    if clean and "\r\n " not in text and "\r\n\t" not in text:
        _parse_fields(lines, message.headers._fields, len(text) <= MAX_HEADER_LINE)
        return message
    fields: list[list[str]] = []  # [name, value, continuation...]
    for line in lines[1:]:
        _check_line(line)
        if line[:1] in (" ", "\t"):  # folded continuation (§7.3.1)
            if not fields:
                raise ParseError("continuation line before the first header")
            fields[-1].append(line.strip(_WHITESPACE))
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(_WHITESPACE)
        if not colon or (name not in _KNOWN_NAMES and not is_token(name)):  # known: tokens
            raise ParseError("bad header line")
        if len(fields) >= MAX_HEADERS:
            raise ParseError("too many header fields")
        fields.append([name, value.strip(_WHITESPACE)])
    # The fields go straight into the Headers (what Headers.add would check cannot occur
    # here: the lines carry no CR or LF, and each value is stripped already).
    out = message.headers._fields
    for field in fields:
        value = field[1] if len(field) == 2 else " ".join(field[1:]).strip(_WHITESPACE)
        if len(value) > MAX_HEADER_LINE:
            raise ParseError("header field too long")
        printable, key = canonical_name(field[0])
        if key in LIST_HEADERS:
            for item in _split_list(value):
                out.append([key, printable, item])
        else:
            out.append([key, printable, value])
    return message


def _parse_fields(lines: list[str], out: list[list[str]], short: bool) -> None:
    """The header lines of a section without folding or control characters, in one pass
    (issue 14, the answer path): the same checks as the general loop of _parse_head."""
    if len(lines) - 1 > MAX_HEADERS:
        raise ParseError("too many header fields")
    for index in range(1, len(lines)):
        name, colon, value = lines[index].partition(":")
        if not colon:
            raise ParseError("bad header line")
        if name in _KNOWN_NAMES:
            printable, key = _KNOWN_NAMES[name]
        else:
            name = name.rstrip(_WHITESPACE)
            if name not in _KNOWN_NAMES and not is_token(name):
                raise ParseError("bad header line")
            printable, key = canonical_name(name)
        value = value.strip(_WHITESPACE)
        if not short and len(value) > MAX_HEADER_LINE:
            raise ParseError("header field too long")
        if key in LIST_HEADERS:
            for item in _split_list(value):
                out.append([key, printable, item])
        else:
            out.append([key, printable, value])


def _take_content_length(headers: "Headers") -> int | None:
    """Remove Content-Length from headers and return it (None when absent)."""
    values = headers.get_all("Content-Length")
    if not values:
        return None
    headers.remove("Content-Length")
    if len(values) > 1:
        raise ParseError("several Content-Length values")
    if not only(values[0], DIGITS):
        raise ParseError("bad Content-Length")
    length = int(values[0])
    if length > MAX_MESSAGE_SIZE:
        raise ParseError("Content-Length too large")
    return length


def _parse(data: bytes) -> "Request | Response":
    data = bytes(data)
    if len(data) > MAX_MESSAGE_SIZE:
        raise ParseError("message too large")
    start = 0
    while data.startswith(b"\r\n", start):  # §7.5: CRLFs before the start line are ignored
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise ParseError("header section not terminated by an empty line")
    message = _parse_head(data[start:end])
    rest = data[end + 4 :]
    length = _take_content_length(message.headers)
    if length is not None:
        if length > len(rest):
            raise ParseError("Content-Length larger than the body")
        rest = rest[:length]
    message.body = rest
    return message


def parse(data: bytes) -> "Request | Response":
    """Parse one datagram into a Request or Response; raises ParseError and nothing else."""
    try:
        return _parse(data)
    except ParseError:
        raise
    except (ValueError, IndexError, TypeError) as error:  # a grammar gap must not crash a UA
        raise ParseError("malformed message") from error


def _parse_header_params(text: str) -> dict[str, str | None]:
    """`;`-separated generic-params (§25.1) after the first `;` -> dict with lower-case names,
    in the order written."""
    params: dict[str, str | None] = ordered_dict()
    value: str | None
    for chunk in split_outside(text, ";"):
        name, equals, value = chunk.partition("=")
        name = name.strip(_WHITESPACE).lower()
        if not name or name.strip(TOKEN_CHARS):  # is_token, inline (issue 14)
            raise ParseError("bad header parameter")
        if equals:
            value = value.strip(_WHITESPACE)
            if value[:1] == '"':
                if _quoted_end(value, 0) != len(value):
                    raise ParseError("bad quoted parameter value")
            elif not value or value.strip(_GEN_VALUE_CHARS):  # only(), inline
                raise ParseError("bad header parameter value")
        else:
            value = None
        if name in params:
            raise ParseError("repeated header parameter")
        params[name] = value
    return params


def _format_params(params: dict[str, str | None]) -> str:
    out = ""  # a loop, not a generator resumed per parameter (issue 14, the answer path)
    for name, value in params.items():
        out += ";" + name if value is None else ";" + name + "=" + value
    return out


def _format_display_name(name: str) -> str:
    # tokens separated by single spaces (every word a token) stay as they are; in C: no
    # empty word (leading, trailing or double space), nothing but token characters between
    if name and name[0] != " " and name[-1] != " " and "  " not in name \
            and only(name.replace(" ", ""), TOKEN_CHARS):
        return name
    out = []
    for char in name:
        if char in "\r\n":
            char = " "
        elif char in '"\\' or char < " " or char == "\x7f":
            char = "\\" + char
        out.append(char)
    return '"' + "".join(out) + '"'


class Via:
    """One Via value (§20.42, §25.1 via-parm). transport is upper-case; host as written."""

    __slots__ = ("protocol", "transport", "host", "port", "params")

    def __init__(self, transport: str, host: str, port: int | None = None,
                 params: dict[str, str | None] | None = None, protocol: str = SIP_VERSION) -> None:
        self.protocol = protocol
        self.transport = transport
        self.host = host
        self.port = port
        self.params = ordered_dict(params) if params else ordered_dict()

    @classmethod
    def parse(cls, value: str) -> "Via":
        head, semicolon, param_text = value.partition(";")
        params = _parse_header_params(param_text) if semicolon else None
        parts = head.split("/")  # SLASH = SWS "/" SWS
        if len(parts) != 3:
            raise ParseError("bad Via sent-protocol")
        name, version = parts[0].strip(_WHITESPACE), parts[1].strip(_WHITESPACE)
        words = parts[2].split()
        transport = words[0] if words else ""
        # the three tokens checked at once (issue 14, the answer path); one by one to say which
        if not (name and version and len(words) >= 2
                and only(name + version + transport, TOKEN_CHARS)):
            if not is_token(name) or not is_token(version) or len(words) < 2:
                raise ParseError("bad Via sent-protocol")
            raise ParseError("bad Via sent-by")
        # sent-by = host [COLON port] where COLON = SWS ":" SWS.
        sent_by = " ".join(words[1:]).replace(" :", ":").replace(": ", ":")
        if " " in sent_by:
            raise ParseError("bad Via sent-by")
        host, port = split_host_port(sent_by)
        return cls(transport.upper(), host, port, params, name.upper() + "/" + version)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        port = "" if self.port is None else ":" + str(self.port)
        return (self.protocol + "/" + self.transport + " " + self.host + port
                + _format_params(self.params))

    def __repr__(self) -> str:
        return "Via(" + repr(str(self)) + ")"


# NameAddress.parse's last answers, as URI.parse's (firmware/sip/uri.py): the To and Contact
# of a caller that calls again are the same texts (issue 14, the answer path). Shared: read a
# parsed address, never change it. Bounded: emptied when full, long texts not kept.
_ADDRESSES: "dict[str, NameAddress]" = {}
MAX_ADDRESSES = 64
MAX_ADDRESS_LENGTH = 256


class NameAddress:
    """From/To/Contact/Route/Record-Route value (§20.10, §25.1 name-addr / addr-spec). A parsed
    one may be shared (parse keeps its last answers): read it, build a new one to change."""

    __slots__ = ("display_name", "uri", "params")

    def __init__(self, uri: "URI | None", display_name: str | None = None,
                 params: dict[str, str | None] | None = None) -> None:
        self.uri = uri
        self.display_name = display_name
        self.params = ordered_dict(params) if params else ordered_dict()

    @classmethod
    def parse(cls, value: str) -> "NameAddress":
        known = _ADDRESSES.get(value)
        if known is not None and cls is NameAddress:
            return known
        address = cls._parse(value)
        if cls is NameAddress and len(value) <= MAX_ADDRESS_LENGTH:
            if len(_ADDRESSES) >= MAX_ADDRESSES:
                _ADDRESSES.clear()
            _ADDRESSES[value] = address
        return address

    @classmethod
    def _parse(cls, value: str) -> "NameAddress":
        value = value.strip(_WHITESPACE)
        if value == "*":  # Contact: * (§10.2.2)
            return cls(None)
        display_name = None
        if value.startswith('"'):
            end = _quoted_end(value, 0)
            display_name = _unquote(value[1 : end - 1])
            rest = value[end:].lstrip(_WHITESPACE)
            if not rest.startswith("<"):
                raise ParseError("quoted display name without <URI>")
        else:
            less = value.find("<")
            before = value[:less]
            if less >= 0 and ";" not in before and '"' not in before:
                words = before.split()  # no empty word: every one a token, checked at once
                if "".join(words).strip(TOKEN_CHARS):
                    raise ParseError("bad display name")
                display_name = " ".join(words) or None
                rest = value[less:]
            else:
                rest = None
        if rest is None:  # addr-spec: header parameters start at the first ';' (§20)
            uri_text, semicolon, param_text = value.partition(";")
            uri_text = uri_text.rstrip(_WHITESPACE)
            if "?" in uri_text or "," in uri_text:
                raise ParseError("URI with headers or comma must be in <>")
        else:
            greater = rest.find(">")
            if greater < 0:
                raise ParseError("missing >")
            uri_text = rest[1:greater]
            after = rest[greater + 1 :].lstrip(_WHITESPACE)
            if after and after[0] != ";":
                raise ParseError("text after >")
            semicolon, param_text = after[:1], after[1:]
        uri = URI.parse(uri_text)
        params = _parse_header_params(param_text) if semicolon else None
        return cls(uri, display_name, params)

    @property
    def wildcard(self) -> bool:
        return self.uri is None

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        if self.uri is None:
            return "*"
        display = "" if self.display_name is None else _format_display_name(self.display_name) + " "
        return display + "<" + str(self.uri) + ">" + _format_params(self.params)

    def __repr__(self) -> str:
        return "NameAddress(" + repr(str(self)) + ")"


class CSeq:
    """CSeq value (§20.16): sequence number (32-bit unsigned) and method."""

    __slots__ = ("seq", "method")

    def __init__(self, seq: int, method: str) -> None:
        self.seq = seq
        self.method = method

    @classmethod
    def parse(cls, value: str) -> "CSeq":
        words = value.split()
        if len(words) != 2 or not only(words[0], DIGITS) or not is_token(words[1]):
            raise ParseError("bad CSeq")
        if len(words[0]) > 10 or int(words[0]) > 0xFFFFFFFF:
            raise ParseError("CSeq number too large")
        return cls(int(words[0]), words[1])

    def __str__(self) -> str:
        return str(self.seq) + " " + self.method

    def __repr__(self) -> str:
        return "CSeq(" + repr(str(self)) + ")"


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _is_sip_date(text: str) -> bool:
    """§25.1 SIP-date: rfc1123-date, always GMT, e.g. `Sat, 13 Nov 2010 23:29:00 GMT`."""
    parts = text.split(" ")
    if len(parts) != 6 or parts[0][:-1] not in _WEEKDAYS or parts[0][-1:] != ",":
        return False
    clock = parts[4].split(":")
    return (
        len(parts[1]) == 2 and only(parts[1], DIGITS) and parts[2] in _MONTHS
        and len(parts[3]) == 4 and only(parts[3], DIGITS) and parts[5] == "GMT"
        and len(clock) == 3 and all(len(item) == 2 and only(item, DIGITS) for item in clock)
    )


def _header_problem(message: "Request | Response") -> "str | None":
    # One pass over the fields (the answer path, issue 14): each value list by lookup key,
    # and the keys seen more than once (none, in most messages).
    by_key: dict[str, list[str]] = {}
    repeated: set[str] | None = None
    for key, _name, value in message.headers._fields:
        if key in by_key:
            by_key[key].append(value)
            if repeated is None:
                repeated = set()
            repeated.add(key)
        else:
            by_key[key] = [value]
    for name, key in _MANDATORY:
        if key not in by_key:
            return "Missing " + name + " header"
    if repeated is not None:
        for name, key in _SINGLE_KEYS:
            if key in repeated:
                return "Multiple " + name + " headers"
    call_id = by_key["call-id"][0]
    if not call_id or len(call_id.split()) != 1:
        return "Bad Call-ID"
    date = by_key.get("date")
    if date is not None and not _is_sip_date(date[0]):
        return "Bad Date"
    forwards = by_key.get("max-forwards")  # optional: RFC 2543 peers omit it (§3.4.1 4475)
    if forwards is not None:
        max_forwards = forwards[0]
        if not only(max_forwards, DIGITS) or len(max_forwards.lstrip("0")) > 3 \
                or int(max_forwards) > 255:
            return "Bad Max-Forwards"
    try:
        # the values the layers above read are parsed here once, and kept (message.cseq() ...)
        message.cseq()
        message.top_via()
        for value in by_key["via"][1:]:
            Via.parse(value)
        message.from_address()
        message.to_address()
        message.contact_address()
        for key, first in _ADDRESS_KEYS:
            if key in by_key:
                values = by_key[key]
                for index in range(first, len(values)):
                    NameAddress.parse(values[index])
    except ParseError as error:
        return "Bad header: " + error.reason
    return None


def check_message(message: "Request | Response") -> str | None:
    """Why a parsed message must not be processed (§8.1.1 mandatory headers, §8.2.2-8.2.3,
    RFC 4475 §3.1.2 / §3.3): a short reason for the 400 (or "Version Not Supported": answer
    505), or None. Call it before handing a message to transactions; drop bad responses."""
    if message.version != SIP_VERSION:
        return "Version Not Supported"
    problem = _header_problem(message)
    if problem is not None or not isinstance(message, Request):
        return problem
    if message.method != message.cseq().method:
        return "CSeq method does not match the request"
    if message.uri.headers:
        return "Headers not allowed in the Request-URI"
    return None


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


KEEPALIVE_PING = _Marker("KEEPALIVE_PING")  # CRLF CRLF from a client (RFC 5626 §4.4.1)
KEEPALIVE_PONG = _Marker("KEEPALIVE_PONG")  # CRLF answer from a server


def _scan_content_length(head: bytes) -> int | None:
    """Content-Length from raw header bytes, only to find where the message ends."""
    found = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            found.append(value.strip())
    if len(found) != 1 or not found[0].isdigit():  # bytes.isdigit: ASCII digits only
        return None
    return int(found[0])


class StreamReader:
    """Frames messages out of a TCP/TLS byte stream (§18.3: Content-Length is mandatory).

    feed() returns what the new bytes completed. A message that frames correctly but does not
    parse comes back as a ParseError and the stream goes on. When framing is lost (no usable
    Content-Length, or a header section or message beyond MAX_MESSAGE_SIZE) it returns a
    ParseError, drops its buffer and sets `broken`: the caller closes the connection. A peer
    that never finishes a message is held to MAX_MESSAGE_SIZE bytes; the caller's idle timer
    (it owns the clock) ends such a connection.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes already searched for the empty line
        self.broken = False

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> "list[Request | ParseError | _Marker | Response]":
        if self.broken:
            return []
        self._buffer += data
        out = []
        while not self.broken:
            item = self._next()
            if item is None:
                break
            out.append(item)
        return out

    def _fail(self, reason: str) -> "ParseError":
        self._buffer = bytearray()
        self.broken = True
        return ParseError(reason)

    def _consume(self, count: int) -> None:
        self._buffer[:count] = b""  # MicroPython's bytearray has no slice deletion
        self._scanned = 0

    def _next(self) -> "Request | Response | ParseError | _Marker | None":
        buffer = self._buffer
        if buffer[:2] == b"\r\n":
            if buffer[:4] == b"\r\n\r\n":
                self._consume(4)
                return KEEPALIVE_PING
            if buffer == b"\r\n\r":
                return None
            self._consume(2)
            return KEEPALIVE_PONG
        end = buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) > MAX_MESSAGE_SIZE:
                return self._fail("header section too large")
            return None
        length = _scan_content_length(bytes(buffer[:end]))
        if length is None:
            return self._fail("missing or bad Content-Length on a stream")
        total = end + 4 + length
        if total > MAX_MESSAGE_SIZE:
            return self._fail("message too large")
        if len(buffer) < total:
            self._scanned = end
            return None
        data = bytes(buffer[:total])
        self._consume(total)
        try:
            return parse(data)
        except ParseError as error:
            return error
