"""SDP session descriptions: parse and serialise (RFC 8866), with the attribute helpers we need.

Implemented
- RFC 8866 §5: the description format. Session section ``v o s i u e p c b (t r*)+ z k a*``, then
  media sections ``m i c* b* k a*``. Lines are ``<letter>=<value>``; CRLF on output, CRLF or a bare
  LF accepted on input. Unknown line letters are rejected (§5: "reject"), unknown attributes kept
  in order. Addresses are kept as written (``224.2.1.1/127/3`` stays one string).
- RFC 8866 §6: rtpmap, fmtp, ptime, maxptime and the direction attributes
  (sendrecv/sendonly/recvonly/inactive; media level overrides session level, default sendrecv).
- RFC 3605 (``a=rtcp:<port> [IN IP4 <address>]``), RFC 5761 §5.1.1 (``a=rtcp-mux``).
- RFC 4568 §9.1: ``a=crypto:<tag> <suite> inline:<base64 key||salt>[|lifetime][|MKI:length]
  [;inline:...] [session-params]``; the inline key is decoded and split by the suite's key length.

Public API
- ``SdpParseError(ValueError)``: the only exception that parsing raises, for any input; ``.reason``.
- ``SessionDescription.parse(text_or_bytes)``; ``str(sd)`` / ``sd.to_bytes()`` serialise with CRLF
  (CPython also takes ``bytes(sd)``).
  Attributes: ``version``, ``origin`` (``Origin``), ``session_name``, ``information``, ``uri``,
  ``emails``, ``phones``, ``connection`` (``Connection`` or None), ``bandwidths``
  (``Bandwidth`` list), ``timings`` (``Timing`` list), ``zone_adjustments``, ``key``,
  ``attributes`` (``Attribute`` list), ``media`` (``MediaDescription`` list);
  ``connection_for(media)``, ``direction_of(media)``.
- ``MediaDescription(media, port, proto, formats, port_count=None)``: also ``information``,
  ``connections``, ``bandwidths``, ``key``, ``attributes``; helpers ``rtpmap(pt)``, ``fmtp(pt)``,
  ``ptime``, ``maxptime``, ``rtcp``, ``rtcp_mux``, ``cryptos()``.
- Both levels: ``get_attribute(name)``, ``get_attributes(name)``, ``has_attribute(name)``,
  ``add_attribute(name, value=None)``, ``remove_attributes(name)``, ``direction``,
  ``set_direction(direction)``.
- Value types with ``parse(value)`` and ``str()``: ``RtpMap``, ``Rtcp``, ``Crypto``,
  ``InlineKey``; ``parse_ptime(value)``. These raise ``SdpParseError``; the media helpers skip a
  malformed attribute instead, so one bad line does not spoil a whole description.
- Limits: ``MAX_SIZE`` characters, ``MAX_LINES``, ``MAX_LINE_LENGTH``, ``MAX_MEDIA``.
"""

import binascii

MAX_SIZE = 65536
MAX_LINES = 1024
MAX_LINE_LENGTH = 4096
MAX_MEDIA = 64

SENDRECV = "sendrecv"
SENDONLY = "sendonly"
RECVONLY = "recvonly"
INACTIVE = "inactive"
DIRECTIONS = (SENDRECV, SENDONLY, RECVONLY, INACTIVE)

# RFC 4568 §6.2 and RFC 6188: master key and salt lengths in bytes for the known suites.
CRYPTO_SUITE_KEY_LENGTHS = {
    "AES_CM_128_HMAC_SHA1_80": (16, 14),
    "AES_CM_128_HMAC_SHA1_32": (16, 14),
    "F8_128_HMAC_SHA1_80": (16, 14),
    "AES_192_CM_HMAC_SHA1_80": (24, 14),
    "AES_192_CM_HMAC_SHA1_32": (24, 14),
    "AES_256_CM_HMAC_SHA1_80": (32, 14),
    "AES_256_CM_HMAC_SHA1_32": (32, 14),
}

_DIGITS = "0123456789"
_ALPHANUMERIC = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN_CHARS = "!#$%&'*+-.^_`{|}~" + _ALPHANUMERIC  # RFC 8866 §9 token-char
_BASE64_CHARS = "+/" + _ALPHANUMERIC
_SESSION_LETTERS = "vosiuepcbtrzka"
_MEDIA_LETTERS = "icbka"


class SdpParseError(ValueError):
    """Malformed SDP; ``reason`` says what was wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _shorten(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _uint(text: str, what: str, maximum: int | None = None) -> int:
    # str.strip(chars) runs in C (MicroPython too): empty when every char is one of them
    if not text or text[20:] or text.strip(_DIGITS):  # text[20:]: longer than 20
        raise SdpParseError(f"{what} is not a number: {_shorten(text)}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpParseError(f"{what} out of range: {value}")
    return value


def _token(text: str, what: str) -> str:
    if not text or text.strip(_TOKEN_CHARS):
        raise SdpParseError(f"bad {what}: {_shorten(text)}")
    return text


def _fields(value: str, count: int, what: str) -> list[str]:
    fields = value.split()
    if len(fields) != count:
        raise SdpParseError(f"{what} needs {count} fields: {_shorten(value)}")
    return fields


def addrtype_of(address: str) -> str:
    """``IP6`` for an IPv6 literal, else ``IP4`` (RFC 8866 §5.7)."""
    return "IP6" if ":" in address else "IP4"


class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (RFC 8866 §5.2)."""

    def __init__(self, username: str, session_id: int, session_version: int, address: str,
                 addrtype: str | None = None, nettype: str = "IN") -> None:
        self.username = username
        self.session_id = session_id
        self.session_version = session_version
        self.address = address
        self.addrtype = addrtype or addrtype_of(address)
        self.nettype = nettype

    @classmethod
    def parse(cls, value: str) -> "Origin":
        username, sess_id, sess_version, nettype, addrtype, address = _fields(value, 6, "o=")
        if not (nettype + addrtype).strip(_TOKEN_CHARS):  # both tokens (split: non-empty)
            return cls(username, _uint(sess_id, "sess-id"), _uint(sess_version, "sess-version"),
                       address, addrtype, nettype)
        return cls(username, _uint(sess_id, "sess-id"), _uint(sess_version, "sess-version"),
                   address, _token(addrtype, "addrtype"), _token(nettype, "nettype"))

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.session_version} "
                f"{self.nettype} {self.addrtype} {self.address}")

    def __repr__(self) -> str:
        return f"Origin({str(self)!r})"


class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 8866 §5.7)."""

    def __init__(self, address: str, addrtype: str | None = None, nettype: str = "IN") -> None:
        self.address = address
        self.addrtype = addrtype or addrtype_of(address)
        self.nettype = nettype

    @classmethod
    def parse(cls, value: str) -> "Connection":
        nettype, addrtype, address = _fields(value, 3, "c=")
        if not (nettype + addrtype).strip(_TOKEN_CHARS):  # both tokens (split: non-empty)
            return cls(address, addrtype, nettype)
        return cls(address, _token(addrtype, "addrtype"), _token(nettype, "nettype"))

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"

    def __repr__(self) -> str:
        return f"Connection({str(self)!r})"


class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (RFC 8866 §5.8)."""

    def __init__(self, bwtype: str, value: int) -> None:
        self.bwtype = bwtype
        self.value = value

    @classmethod
    def parse(cls, value: str) -> "Bandwidth":
        bwtype, colon, amount = value.partition(":")
        if not colon:
            raise SdpParseError(f"b= needs a colon: {_shorten(value)}")
        return cls(_token(bwtype, "bwtype"), _uint(amount, "bandwidth"))

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.value}"

    def __repr__(self) -> str:
        return f"Bandwidth({str(self)!r})"


class Timing:
    """``t=<start> <stop>`` with its ``r=`` lines kept as written (RFC 8866 §5.9, §5.10)."""

    def __init__(self, start: int = 0, stop: int = 0,
                 repeats: "list[str] | None" = None) -> None:
        self.start = start
        self.stop = stop
        self.repeats = list(repeats or ())

    @classmethod
    def parse(cls, value: str) -> "Timing":
        start, stop = _fields(value, 2, "t=")
        return cls(_uint(start, "start time"), _uint(stop, "stop time"))

    def __str__(self) -> str:
        return f"{self.start} {self.stop}"

    def __repr__(self) -> str:
        return f"Timing({str(self)!r})"


class Attribute:
    """``a=<name>`` (value None) or ``a=<name>:<value>`` (RFC 8866 §5.13)."""

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name = name
        self.value = value

    @classmethod
    def parse(cls, text: str) -> "Attribute":
        name, colon, value = text.partition(":")
        if not name or name.strip(_TOKEN_CHARS):  # _token, inline (issue 14, the answer path)
            raise SdpParseError(f"bad attribute name: {_shorten(name)}")
        return cls(name, value if colon else None)

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"

    def __repr__(self) -> str:
        return f"Attribute({str(self)!r})"


class _AttributeList:
    """Attribute access shared by the session and media levels."""

    attributes: "list[Attribute]"

    def get_attribute(self, name: str) -> str | None:
        """Value of the first ``name`` attribute, or None (also for a property attribute)."""
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute.value
        return None

    def get_attributes(self, name: str) -> list[str | None]:
        return [attribute.value for attribute in self.attributes if attribute.name == name]

    def has_attribute(self, name: str) -> bool:
        return any(attribute.name == name for attribute in self.attributes)

    def add_attribute(self, name: str, value: str | None = None) -> None:
        self.attributes.append(Attribute(name, value))

    def remove_attributes(self, name: str) -> None:
        self.attributes = [attribute for attribute in self.attributes if attribute.name != name]

    @property
    def direction(self) -> str | None:
        """The direction attribute written at this level (the last one wins), or None."""
        found = None
        for attribute in self.attributes:
            if attribute.name in DIRECTIONS:
                found = attribute.name
        return found

    def set_direction(self, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}")
        self.attributes = [a for a in self.attributes if a.name not in DIRECTIONS]
        self.add_attribute(direction)


class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 8866 §6.6)."""

    def __init__(self, payload_type: int, encoding: str, clock_rate: int,
                 channels: int | None = None) -> None:
        self.payload_type = payload_type
        self.encoding = encoding
        self.clock_rate = clock_rate
        self.channels = channels

    @classmethod
    def parse(cls, value: str) -> "RtpMap":
        fields = value.split()  # _fields, inline (issue 14, the answer path)
        if len(fields) != 2:
            raise SdpParseError(f"rtpmap needs 2 fields: {_shorten(value)}")
        payload_type, encoding = fields
        parts = encoding.split("/")
        if len(parts) not in (2, 3) or not parts[0]:
            raise SdpParseError(f"bad rtpmap encoding: {_shorten(encoding)}")
        channels = _uint(parts[2], "channels", 255) if len(parts) == 3 else None
        return cls(_uint(payload_type, "payload type", 127), parts[0],
                   _uint(parts[1], "clock rate", 10**9), channels)

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"

    def __repr__(self) -> str:
        return f"RtpMap({str(self)!r})"


def parse_ptime(value: str | None) -> int:
    """``a=ptime`` / ``a=maxptime`` value in whole milliseconds (``20`` or ``20.0``)."""
    whole, dot, fraction = (value or "").strip().partition(".")
    if dot and fraction and fraction.strip(_DIGITS):
        # (a dot was found, so value is not None)
        raise SdpParseError(f"bad packet time: {_shorten(value)}")  # type: ignore[arg-type]
    return _uint(whole, "packet time", 10000)


class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605 §2.1)."""

    def __init__(self, port: int, address: str | None = None, addrtype: str | None = None,
                 nettype: str = "IN") -> None:
        self.port = port
        self.address = address
        self.addrtype = addrtype or (addrtype_of(address) if address else None)
        self.nettype = nettype

    @classmethod
    def parse(cls, value: str) -> "Rtcp":
        fields = value.split()
        if len(fields) not in (1, 4):
            raise SdpParseError(f"bad rtcp attribute: {_shorten(value)}")
        port = _uint(fields[0], "rtcp port", 65535)
        if len(fields) == 1:
            return cls(port)
        return cls(port, fields[3], _token(fields[2], "addrtype"), _token(fields[1], "nettype"))

    def __str__(self) -> str:
        if self.address is None:
            return str(self.port)
        return f"{self.port} {self.nettype} {self.addrtype} {self.address}"

    def __repr__(self) -> str:
        return f"Rtcp({str(self)!r})"


def _decode_base64(text: str) -> bytes:
    # binascii silently skips foreign characters, so check the alphabet first.
    body = text.rstrip("=")
    if not body or len(text) - len(body) > 2 or any(c not in _BASE64_CHARS for c in body):
        raise SdpParseError(f"bad base64 key: {_shorten(text)}")
    if len(body) % 4 == 1:
        raise SdpParseError(f"bad base64 length: {_shorten(text)}")
    try:
        return binascii.a2b_base64(body + "=" * (-len(body) % 4))
    except ValueError as error:  # binascii.Error is a ValueError (and absent on MicroPython)
        raise SdpParseError(f"bad base64 key: {_shorten(text)}") from error


def _lifetime_packets(text: str) -> int:
    if text.startswith("2^"):
        return 2 ** _uint(text[2:], "lifetime exponent", 64)
    return _uint(text, "lifetime")


class InlineKey:
    """One RFC 4568 §9.1 key-param: ``inline:<key||salt base64>[|<lifetime>][|<MKI>:<length>]``.

    ``lifetime`` is kept as written (``2^20`` or decimal); ``lifetime_packets`` is its value.
    """

    def __init__(self, key_salt: bytes, lifetime: str | None = None, mki_value: int | None = None,
                 mki_length: int | None = None) -> None:
        self.key_salt = key_salt
        self.lifetime = lifetime
        self.mki_value = mki_value
        self.mki_length = mki_length

    @classmethod
    def parse(cls, text: str) -> "InlineKey":
        method, colon, info = text.partition(":")
        if not colon or method != "inline":
            raise SdpParseError(f"unsupported key method: {_shorten(text)}")
        parts = info.split("|")
        if len(parts) > 3:
            raise SdpParseError(f"bad inline key: {_shorten(text)}")
        key = cls(_decode_base64(parts[0]))
        for part in parts[1:]:
            if ":" in part and key.mki_value is None:
                value, _, length = part.partition(":")
                key.mki_value = _uint(value, "MKI value")
                key.mki_length = _uint(length, "MKI length", 128)
                if key.mki_length == 0:
                    raise SdpParseError("MKI length must be 1..128")
            elif key.lifetime is None and key.mki_value is None and ":" not in part:
                _lifetime_packets(part)
                key.lifetime = part
            else:
                raise SdpParseError(f"bad inline key: {_shorten(text)}")
        return key

    @property
    def lifetime_packets(self) -> int | None:
        return None if self.lifetime is None else _lifetime_packets(self.lifetime)

    def __str__(self) -> str:
        text = "inline:" + binascii.b2a_base64(self.key_salt).decode().strip()
        if self.lifetime is not None:
            text += "|" + self.lifetime
        if self.mki_value is not None:
            text += f"|{self.mki_value}:{self.mki_length}"
        return text

    def __repr__(self) -> str:
        return f"InlineKey({len(self.key_salt)} bytes)"  # keys stay out of logs


class Crypto:
    """``a=crypto:<tag> <suite> <key-params> [<session-params>]`` (RFC 4568 §9.1).

    ``keys`` is a list of ``InlineKey``; for a known suite every key must have the suite's
    key+salt length. ``master_key`` / ``master_salt`` split the first key (None when the suite
    is unknown).
    """

    def __init__(self, tag: int, suite: str, keys: "list[InlineKey]",
                 session_params: list[str] | None = None) -> None:
        self.tag = tag
        self.suite = suite
        self.keys = list(keys)
        self.session_params = list(session_params or ())

    @classmethod
    def inline(cls, tag: int, suite: str, key: bytes, salt: bytes) -> "Crypto":
        """A crypto attribute carrying one inline key without lifetime or MKI."""
        return cls(tag, suite, [InlineKey(key + salt)])

    @classmethod
    def parse(cls, value: str) -> "Crypto":
        fields = value.split()
        if len(fields) < 3:
            raise SdpParseError(f"crypto needs tag, suite and key: {_shorten(value)}")
        crypto = cls(_uint(fields[0], "crypto tag", 999999999), _token(fields[1], "crypto suite"),
                     [InlineKey.parse(part) for part in fields[2].split(";")], fields[3:])
        lengths = CRYPTO_SUITE_KEY_LENGTHS.get(crypto.suite)
        if lengths and any(len(key.key_salt) != lengths[0] + lengths[1] for key in crypto.keys):
            raise SdpParseError(f"key length does not fit {crypto.suite}")
        return crypto

    @property
    def master_key(self) -> bytes | None:
        lengths = CRYPTO_SUITE_KEY_LENGTHS.get(self.suite)
        return self.keys[0].key_salt[:lengths[0]] if lengths else None

    @property
    def master_salt(self) -> bytes | None:
        lengths = CRYPTO_SUITE_KEY_LENGTHS.get(self.suite)
        return self.keys[0].key_salt[lengths[0]:] if lengths else None

    def __str__(self) -> str:
        text = f"{self.tag} {self.suite} " + ";".join(str(key) for key in self.keys)
        return " ".join([text] + self.session_params)

    def __repr__(self) -> str:
        return f"Crypto({self.tag} {self.suite})"  # keys stay out of logs


class MediaDescription(_AttributeList):
    """``m=<media> <port>[/<number of ports>] <proto> <fmt> ...`` and its section (§5.14)."""

    def __init__(self, media: str, port: int, proto: str, formats: list[str],
                 port_count: int | None = None, connections: "list[Connection] | None" = None,
                 bandwidths: "list[Bandwidth] | None" = None,
                 attributes: "list[Attribute] | None" = None, information: str | None = None,
                 key: str | None = None) -> None:
        self.media = media
        self.port = port
        self.port_count = port_count
        self.proto = proto
        self.formats = list(formats)
        self.information = information
        self.connections = list(connections or ())
        self.bandwidths = list(bandwidths or ())
        self.key = key
        self.attributes = list(attributes or ())

    @classmethod
    def parse(cls, value: str) -> "MediaDescription":
        fields = value.split()
        if len(fields) < 3:
            raise SdpParseError(f"m= needs media, port and proto: {_shorten(value)}")
        port_text, slash, count_text = fields[1].partition("/")
        port_count = _uint(count_text, "number of ports", 65535) if slash else None
        for part in fields[2].split("/"):
            _token(part, "proto")
        # every format a token (split() gives no empty one): checked at once, then one by one
        # only to name the bad one
        if len(fields) > 3 and "".join(fields[3:]).strip(_TOKEN_CHARS):
            for fmt in fields[3:]:
                _token(fmt, "format")
        return cls(_token(fields[0], "media type"), _uint(port_text, "port", 65535), fields[2],
                   fields[3:], port_count)

    def rtpmap(self, payload_type: int) -> "RtpMap | None":
        """The ``RtpMap`` for ``payload_type`` (int), or None."""
        for mapping in self.rtpmaps():
            if mapping.payload_type == payload_type:
                return mapping
        return None

    def rtpmaps(self) -> "list[RtpMap]":
        mappings = []
        for value in self.get_attributes("rtpmap"):
            try:
                mappings.append(RtpMap.parse(value or ""))
            except SdpParseError:
                continue
        return mappings

    def fmtp(self, payload_type: int) -> str | None:
        """The format parameters (text after the payload type) for ``payload_type``, or None."""
        for value in self.get_attributes("fmtp"):
            fmt, _, params = (value or "").partition(" ")
            if fmt == str(payload_type):
                return params.strip()
        return None

    def _packet_time(self, name: str) -> int | None:
        value = self.get_attribute(name)
        if value is None:  # absent (most offers have no maxptime): no error raised and caught
            return None
        try:
            return parse_ptime(value)
        except SdpParseError:
            return None

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds, or None when absent or malformed."""
        return self._packet_time("ptime")

    @property
    def maxptime(self) -> int | None:
        return self._packet_time("maxptime")

    @property
    def rtcp(self) -> "Rtcp | None":
        """The ``Rtcp`` attribute (RFC 3605), or None when absent or malformed."""
        try:
            value = self.get_attribute("rtcp")
            return None if value is None else Rtcp.parse(value)
        except SdpParseError:
            return None

    @property
    def rtcp_mux(self) -> bool:
        return self.has_attribute("rtcp-mux")

    def cryptos(self) -> "list[Crypto]":
        """The well-formed ``Crypto`` attributes in offer order (RFC 4568 §5.1.1: an answerer
        ignores crypto attributes it cannot use)."""
        found = []
        for value in self.get_attributes("crypto"):
            try:
                found.append(Crypto.parse(value or ""))
            except SdpParseError:
                continue
        return found

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        lines = ["m=" + " ".join([self.media, port, self.proto] + self.formats)]
        if self.information is not None:
            lines.append("i=" + self.information)
        lines += ["c=" + str(connection) for connection in self.connections]
        lines += ["b=" + str(bandwidth) for bandwidth in self.bandwidths]
        if self.key is not None:
            lines.append("k=" + self.key)
        # Attribute.__str__, inline (issue 14, the answer path)
        lines += ["a=" + a.name if a.value is None else "a=" + a.name + ":" + a.value
                  for a in self.attributes]
        return lines

    def __repr__(self) -> str:
        return f"MediaDescription({self.lines()[0]!r})"


def _split_lines(data: bytes | str) -> list[tuple[str, str]]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > MAX_SIZE:
            raise SdpParseError("description too large")
        try:
            data = bytes(data).decode("utf-8")  # valid UTF-8 holds no lone surrogate
        except UnicodeError as error:
            raise SdpParseError("description is not UTF-8") from error
    elif not isinstance(data, str):
        raise SdpParseError("description must be str or bytes")
    else:
        try:
            data.encode("utf-8")  # so that sd.to_bytes() cannot fail later (lone surrogates)
        except UnicodeError as error:
            raise SdpParseError("description is not valid Unicode") from error
    if len(data) > MAX_SIZE:
        raise SdpParseError("description too large")
    if "\x00" in data:
        raise SdpParseError("NUL character in description")
    lines = data.split("\n")
    if len(lines) > MAX_LINES:
        raise SdpParseError("too many lines")
    unbroken = data.replace("\r\n", "\n")
    if "\r" not in unbroken and len(data) <= MAX_LINE_LENGTH:
        # the common case in one pass (issue 14, the answer path): CRLF or LF line ends, no
        # bare CR, no line can be too long; the same checks as the general loop below
        lines = unbroken.split("\n")
        for line in lines:
            if line and line[1:2] != "=":
                raise SdpParseError(f"not a <type>=<value> line: {_shorten(line)}")
        return [(line[0], line[2:]) for line in lines if line]
    result = []
    for line in lines:
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue  # tolerate blank lines, notably a trailing one
        if len(line) > MAX_LINE_LENGTH:
            raise SdpParseError("line too long")
        if "\r" in line or len(line) < 2 or line[1] != "=":
            raise SdpParseError(f"not a <type>=<value> line: {_shorten(line)}")
        result.append((line[0], line[2:]))
    return result


class SessionDescription(_AttributeList):
    """A whole SDP description (RFC 8866 §5)."""

    def __init__(self, origin: "Origin | None", session_name: str | None = "-",
                 connection: "Connection | None" = None,
                 media: "list[MediaDescription] | None" = None,
                 attributes: "list[Attribute] | None" = None, timings: "list[Timing] | None" = None,
                 bandwidths: "list[Bandwidth] | None" = None) -> None:
        self.version = 0
        self.origin = origin
        self.session_name = session_name
        self.information: str | None = None
        self.uri: str | None = None
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.connection = connection
        self.bandwidths = list(bandwidths or ())
        self.timings = list(timings) if timings else [Timing()]
        self.zone_adjustments: str | None = None
        self.key: str | None = None
        self.attributes = list(attributes or ())
        self.media = list(media or ())

    @classmethod
    def parse(cls, data: bytes | str) -> "SessionDescription":
        lines = _split_lines(data)
        if not lines or lines[0][0] != "v" or lines[0][1].strip() != "0":
            raise SdpParseError("description must start with v=0")
        sd = cls(None, None)
        sd.timings = []
        seen = {"v"}
        for letter, value in lines[1:]:
            if letter == "m":
                if len(sd.media) >= MAX_MEDIA:
                    raise SdpParseError("too many media descriptions")
                sd.media.append(MediaDescription.parse(value))
            elif sd.media:
                sd._parse_media_line(sd.media[-1], letter, value)
            else:
                sd._parse_session_line(letter, value, seen)
        for letter, what in (("o", "origin"), ("s", "session name")):
            if letter not in seen:
                raise SdpParseError(f"missing {what} (o=/s=)")
        if not sd.timings:
            sd.timings.append(Timing())  # t= is mandatory, but some peers leave it out
        return sd

    def _parse_session_line(self, letter: str, value: str, seen: set[str]) -> None:
        if letter not in _SESSION_LETTERS:
            raise SdpParseError(f"unknown or misplaced line type {letter!r}")
        if letter in "vosiuczk" and letter in seen:  # at most once per RFC 8866 §5
            raise SdpParseError(f"duplicate {letter}= line")
        seen.add(letter)
        if letter == "o":
            self.origin = Origin.parse(value)
        elif letter == "s":
            self.session_name = value
        elif letter == "i":
            self.information = value
        elif letter == "u":
            self.uri = value
        elif letter == "e":
            self.emails.append(value)
        elif letter == "p":
            self.phones.append(value)
        elif letter == "c":
            self.connection = Connection.parse(value)
        elif letter == "b":
            self.bandwidths.append(Bandwidth.parse(value))
        elif letter == "t":
            self.timings.append(Timing.parse(value))
        elif letter == "r":
            if not self.timings:
                raise SdpParseError("r= before t=")
            self.timings[-1].repeats.append(value)
        elif letter == "z":
            self.zone_adjustments = value
        elif letter == "k":
            self.key = value
        else:
            self.attributes.append(Attribute.parse(value))

    @staticmethod
    def _parse_media_line(media: "MediaDescription", letter: str, value: str) -> None:
        if letter not in _MEDIA_LETTERS:
            raise SdpParseError(f"line type {letter!r} not allowed in a media section")
        if letter == "i":
            media.information = value
        elif letter == "c":
            media.connections.append(Connection.parse(value))
        elif letter == "b":
            media.bandwidths.append(Bandwidth.parse(value))
        elif letter == "k":
            media.key = value
        else:
            media.attributes.append(Attribute.parse(value))

    def connection_for(self, media: "MediaDescription") -> "Connection | None":
        """The connection data that applies to ``media`` (its own first c=, else the session's)."""
        return media.connections[0] if media.connections else self.connection

    def direction_of(self, media: "MediaDescription") -> str:
        """RFC 8866 §6.7: media-level direction, else session-level, else sendrecv."""
        return media.direction or self.direction or SENDRECV

    def lines(self) -> list[str]:
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        for letter, value in (("i", self.information), ("u", self.uri)):
            if value is not None:
                lines.append(f"{letter}={value}")
        lines += ["e=" + email for email in self.emails]
        lines += ["p=" + phone for phone in self.phones]
        if self.connection is not None:
            lines.append(f"c={self.connection}")
        lines += ["b=" + str(bandwidth) for bandwidth in self.bandwidths]
        for timing in self.timings:
            lines.append(f"t={timing}")
            lines += ["r=" + repeat for repeat in timing.repeats]
        for letter, value in (("z", self.zone_adjustments), ("k", self.key)):
            if value is not None:
                lines.append(f"{letter}={value}")
        lines += ["a=" + str(attribute) for attribute in self.attributes]
        for media in self.media:
            lines += media.lines()
        return lines

    def __str__(self) -> str:
        lines = self.lines()
        text = "\r\n".join(lines)
        # A value with a line break would smuggle extra lines into the description (counted
        # on the whole text: the joins are the only line breaks of a clean description).
        if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
            for line in lines:
                if "\r" in line or "\n" in line:
                    raise ValueError(f"line break inside SDP line {line!r}")
        return text + "\r\n"

    def to_bytes(self) -> bytes:
        return str(self).encode("utf-8")

    __bytes__ = to_bytes

    def __repr__(self) -> str:
        return f"SessionDescription(origin={self.origin!r}, media={self.media!r})"
