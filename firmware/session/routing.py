"""The one next-hop rule for a request outside a dialog (RFC 3261 §8.1.2, RFC 3263 §4.2).

Registered: the registrar is the outbound proxy, whatever the target. Direct-IP: a numeric host
is used as is, on the target's transport (`sips:` means TLS) and port (5061 for TLS, else 5060);
a host name gives None, and the runtime resolves it (RFC 3263, runtime/resolver.py).
"""

from firmware.sip.endpoint import Peer
from firmware.sip.uri import URI


def next_hop(target: "str | URI", registrar: "Peer | None",
             default_transport: str) -> "Peer | None":
    """`target`: URI text or URI; `registrar`: its Peer or None. Returns a Peer or None."""
    uri = URI.parse(target) if isinstance(target, str) else target
    if registrar is not None:
        return registrar
    host = (uri.host or "").strip("[]")
    if not is_ip_address(host):
        return None
    transport = uri.transport or ("tls" if uri.scheme == "sips" else default_transport)
    return Peer(transport, host, uri.port or (5061 if transport == "tls" else 5060))


def route_targets(targets: "list[str]", registrar: "Peer | None",
                  default_transport: str) -> "list[tuple[str, Peer]] | None":
    """[(target, Peer)] for every target, or None when one of them needs a DNS lookup."""
    routed = []
    for target in targets:
        peer = next_hop(target, registrar, default_transport)  # ParseError: not a SIP URI
        if peer is None:
            return None
        routed.append((target, peer))
    return routed


def is_ip_address(host: str) -> bool:
    """A literal IPv4 (dotted quad) or IPv6 address (without brackets)."""
    if ":" in host:
        return all(c in "0123456789abcdefABCDEF:." for c in host) and host.count("::") <= 1
    parts = host.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part or len(part) > 3 or not all("0" <= c <= "9" for c in part):
            return False
        if int(part) > 255:
            return False
    return True
