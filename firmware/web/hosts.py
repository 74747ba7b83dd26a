"""Only requests addressed to one of the station's own names are served (DNS rebinding).

A web page on the internet can make a browser on the LAN send requests to the station by
resolving its own name (`evil.example`) to the station's address: the browser then treats the
station as `evil.example` and lets that page read the answers. Such requests still carry
`Host: evil.example`, so every request whose Host is not one of the station's own names is
refused with 421 before any route or hook runs, whatever the path (static files, the API,
/metrics, the setup form, unknown paths).

Own names: the station's IP addresses (IPv4, IPv6 in brackets, with or without a port), its
host name, `<hostname>.local` (mDNS), `localhost`, and `[web] hostnames`. Names compare without
case and without a trailing dot. An HTTP/1.1 request without Host is refused too; HTTP/1.0
allows it (no browser sends that).

Public API:
- `parse_host(value) -> str | ipaddress.IPv4Address | IPv6Address | None`: the host part of a
  Host header value (lower case, no trailing dot, no port, no IPv6 zone), None when malformed.
- `is_own_host(value, names, addresses) -> bool`: the pure decision; `names` a set of
  normalised names (`normalise_name`), `addresses` a set of `ipaddress` objects.
- `normalise_name(name) -> str`.
- `is_loopback(client) -> bool`; `config_names(web) -> list` (`web`: the [web] section, a
  WebConfig; its `hostnames` + the listen host).
- `OwnHosts(addresses, host_name, extra_names, clock)`: the station's current names; the
  address list is re-read at most every `REFRESH_S` (sooner, at most once a second, when an
  unknown address literal shows up: a new DHCP lease). `.allows(host_header, local=None)`;
  `local` is the address the connection arrived on, always accepted.
- `refuse_foreign_hosts(app, own_hosts, finish)`: wraps `app.dispatch_request` with the check;
  `finish(request, response)` adds the usual response headers.
"""

import ipaddress
import logging
from typing import TYPE_CHECKING

from microdot import Response

if TYPE_CHECKING:
    from collections.abc import Callable
    from ipaddress import IPv4Address, IPv6Address
    from typing import Any

    from microdot.microdot import Microdot, Request

    from firmware.settings import WebConfig


REFRESH_S = 5.0
RETRY_UNKNOWN_S = 1.0
LOG_EVERY_S = 60.0
MAX_HOST_LENGTH = 255 + 8
DNS_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
REFUSAL = ("421 Misdirected Request\n\n"
           "This door station answers only to its own names: its IP addresses, its host name, "
           "<hostname>.local, localhost and the names in [web] hostnames. The name this request "
           "was sent to (the Host header) is not one of them, so it is refused: a web page "
           "that makes a browser send requests to the station under another name (DNS "
           "rebinding) gets nothing. If you reach the station under another name on purpose, "
           "add that name to [web] hostnames.\n")

log = logging.getLogger("doorline.web")


def normalise_name(name: str) -> str:
    name = name.strip().lower()
    return name[:-1] if name.endswith(".") else name


def _port_ok(text: str) -> bool:
    return text == "" or (text.isascii() and text.isdigit() and len(text) <= 5 and
                          0 < int(text) <= 65535)


def parse_host(value: str | None) -> "str | IPv4Address | IPv6Address | None":
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > MAX_HOST_LENGTH or not value.isascii():
        return None
    if value.startswith("["):
        inner, closed, rest = value[1:].partition("]")
        if not closed or not (rest == "" or (rest.startswith(":") and rest != ":" and
                                             _port_ok(rest[1:]))):
            return None
        inner = inner.partition("%")[0]  # RFC 6874 zone ("fe80::1%25eth0")
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError:
            return None
    host, colon, port = value.rpartition(":") if ":" in value else (value, "", "")
    if ":" in host or (colon and (port == "" or not _port_ok(port))):
        return None  # an IPv6 address must be in brackets
    host = normalise_name(host)
    if not host or host.startswith(".") or ".." in host or not set(host) <= DNS_CHARS:
        return None
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        return host


def is_own_host(value: str | None, names: set[str],
                addresses: "set[IPv4Address | IPv6Address] | set[IPv4Address]") -> bool:
    host = parse_host(value)
    if host is None:
        return False
    if isinstance(host, str):
        return host in names
    if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
        host = host.ipv4_mapped
    return host in addresses


def is_loopback(client: str) -> bool:
    """Is `client` (a socket address string) on loopback (127.0.0.0/8, ::1, ::ffff:127.x)?"""
    address = _address(client)
    return address is not None and address.is_loopback


def config_names(web: "WebConfig") -> list[str]:
    """The extra own names from a [web] config table: `hostnames`, and the `listen` host when
    it is one address (not 0.0.0.0 or ::, which no browser should be let to use as a name)."""
    names = list(web.hostnames)
    host = web.listen.rpartition(":")[0].strip("[]")
    address = _address(host)
    if host and (address is None or not address.is_unspecified):
        names.append(host)
    return names


def _address(text: str) -> "IPv4Address | IPv6Address | None":
    """An ipaddress object for a socket address string ('::ffff:1.2.3.4' → IPv4), or None."""
    try:
        address = ipaddress.ip_address(str(text).partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class OwnHosts:
    def __init__(self, addresses: "Callable", host_name: "Callable", extra_names: "Callable",
                 clock: "Callable[[], float]") -> None:
        self._read_addresses = addresses
        self._host_name = host_name
        self._extra_names = extra_names
        self.clock = clock
        self._addresses: frozenset[IPv4Address | IPv6Address] = frozenset()
        self._read_at: float | None = None
        self.refused = 0
        self._logged_at: float | None = None

    def names(self) -> "tuple[set[str], set[IPv4Address | IPv6Address]]":
        """(names, addresses) named by the host name and `[web] hostnames`."""
        names: set[str] = {"localhost"}
        addresses: set[IPv4Address | IPv6Address] = set()
        host = normalise_name(self._host_name() or "")
        if host:
            names.update((host, host + ".local"))
        for name in self._extra_names():
            address = _address(name)
            if address is not None:
                addresses.add(address)
            else:
                names.add(normalise_name(name))
        return names, addresses

    def addresses(self, force: bool = False) -> frozenset:
        now = self.clock()
        age = None if self._read_at is None else now - self._read_at
        if age is None or age >= REFRESH_S or (force and age >= RETRY_UNKNOWN_S):
            found = set()
            for text in self._read_addresses():
                address = _address(text)
                if address is not None:
                    found.add(address)
            self._addresses = frozenset(found)
            self._read_at = now
        return self._addresses

    def allows(self, host_header: str, local: str | None = None) -> bool:
        names, addresses = self.names()
        addresses |= self.addresses()
        local_address = _address(local) if local else None
        if local_address is not None:
            addresses.add(local_address)
        if is_own_host(host_header, names, addresses):
            return True
        if not isinstance(parse_host(host_header), str):  # an address literal: maybe new
            addresses |= self.addresses(force=True)
            return is_own_host(host_header, names, addresses)
        return False

    def note_refused(self, request: "Request") -> None:
        self.refused += 1
        now = self.clock()
        if self._logged_at is None or now - self._logged_at >= LOG_EVERY_S:
            self._logged_at = now
            host = str(request.headers.get("Host"))[:80]
            log.warning("refused a web request for Host %r from %s (not one of the station's "
                        "names; %d refused so far); add a name to [web] hostnames if it is "
                        "yours", host, _peer(request), self.refused)


def _peer(request: "Request") -> str:
    addr = request.client_addr
    return str(addr[0]) if isinstance(addr, (tuple, list)) and addr else "unknown"


def _local_address(request: "Request") -> str | None:
    sock = getattr(request, "sock", None)
    writer = sock[1] if isinstance(sock, (tuple, list)) and len(sock) > 1 else None
    info = getattr(writer, "get_extra_info", None)
    if info is None:
        return None
    sockname = info("sockname")
    return sockname[0] if isinstance(sockname, (tuple, list)) and sockname else None


def refuse_foreign_hosts(app: "Microdot", own_hosts: "OwnHosts", finish: "Callable") -> None:
    dispatch = app.dispatch_request

    async def checked(request: "Request") -> "Any":
        if request is not None:
            host = request.headers.get("Host")
            missing = host is None and request.http_version != "1.0"
            if missing or (host is not None and
                           not own_hosts.allows(host, _local_address(request))):
                own_hosts.note_refused(request)
                response = Response(REFUSAL, 421, {"Content-Type": "text/plain; charset=utf-8",
                                                   "Connection": "close"})
                response = await finish(request, response) or response
                response.is_head = request.method == "HEAD"
                return response
        return await dispatch(request)

    # microdot's one hook for this
    app.dispatch_request = checked  # type: ignore[method-assign,assignment]
