"""Who is calling: caller identities, source addresses and secret comparison.

The allow list and the door codes name callers by SIP URI. Two URIs name the same caller when
their user parts are equal and their hosts are equal ignoring case (RFC 3261 §19.1.4 makes the
host case-insensitive and the user case-sensitive); scheme, port, URI parameters, display name
and header parameters such as `tag` are ignored.

Public API
    caller_key(text) -> "user@host" or None
        text: a URI or a From value ('"Name" <sip:...>;tag=x'); None when it is no SIP URI
    source_ip(source) -> str
        "udp:1.2.3.4:5060" -> "1.2.3.4", "tls:[::1]:5061" -> "::1"
    literal_ip(host) -> str or None
        the host as a comparable IP address, or None when it is a name
    direct_ip_trusted(caller, source_ip, trusted_ips) -> bool
        direct-IP mode: is a caller who claims the identity `caller` and sends from `source_ip`
        trusted? Only when the identity's own host is that very IP address and it is the host
        of an `[answer] allow` entry (`trusted_ips`): an allowed address cannot claim another
        entry's identity (issue 12)
    constant_time_equal(a, b) -> bool
        compares two strings in time independent of where they differ (hmac's compare_digest
        where the interpreter has one: compat.compare_digest)
"""

from firmware.compat import compare_digest  # None on MicroPython (no hmac module)
from firmware.sip.errors import ParseError
from firmware.sip.message import NameAddress

_KEYS: "dict[str, str | None]" = {}  # caller_key's answers by text, bounded: MAX_KEYS
MAX_KEYS = 64


def caller_key(text: str | None) -> str | None:
    """`user@host` (host in lower case) of a From / allow entry / door-code caller, or None.
    The answers are kept (bounded): an incoming call asks for the same From several times,
    on the answer path (issue 14)."""
    if text is None:  # a caller without an identity (e.g. `From: *`) matches no entry
        return None
    if text in _KEYS:
        return _KEYS[text]
    if len(_KEYS) >= MAX_KEYS:
        _KEYS.clear()
    key = _KEYS[text] = _caller_key(text)
    return key


def _caller_key(text: str) -> str | None:
    try:
        uri = NameAddress.parse(text.strip()).uri
    except ParseError:
        return None
    if uri is None or uri.scheme not in ("sip", "sips") or not uri.host:  # None: "*"
        return None
    return "%s@%s" % (uri.user or "", uri.host.lower())


def source_ip(source: str) -> str:
    _, _, address = source.partition(":")
    if address.startswith("["):
        return address[1:].partition("]")[0].lower()
    return address.rpartition(":")[0] if ":" in address else address


def literal_ip(host: str) -> str | None:
    """IPv4 dotted quads as written; IPv6 references without brackets, lower-case. IPv6 spellings
    are not canonicalised (write the allow entry as the SIP layer reports the source)."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1].lower()
    parts = host.split(".")
    if len(parts) != 4:
        return None
    for part in parts:  # a loop, not a generator (issue 14, the answer path)
        if not part.isdigit() or len(part) > 3 or int(part) > 255:
            return None
    return host


def direct_ip_trusted(caller: str | None, source_ip: str, trusted_ips: set[str]) -> bool:
    key = caller_key(caller) if caller else None
    if key is None or not source_ip:
        return False
    host = literal_ip(key.rpartition("@")[2])
    return host is not None and host == source_ip.lower() and host in trusted_ips


def constant_time_equal(a: str, b: str) -> bool:
    x = a.encode()
    y = b.encode()
    if compare_digest is not None:
        return compare_digest(x, y)
    difference = len(x) ^ len(y)
    for i in range(len(y)):
        difference |= (x[i] if i < len(x) else 0) ^ y[i]
    return difference == 0
