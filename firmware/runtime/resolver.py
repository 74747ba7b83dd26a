"""Locating SIP servers (RFC 3263) with dnspython: NAPTR → SRV → A/AAAA.

`locate(host, port, transport, secure)` returns the Peers to try, in order:
- a numeric address is used as is (§4.2), with the default port of the transport;
- an explicit port skips NAPTR and SRV (§4.2): A/AAAA only;
- with a transport chosen, the SRV records of that transport (`_sip._udp`, `_sip._tcp`,
  `_sips._tcp`) ordered by priority and weight (RFC 2782), else A/AAAA;
- with no transport chosen, NAPTR records pick it (§4.1); without usable NAPTR records, the
  SRV records of each transport we support are asked for in turn (§4.1: a transport is
  supported by the domain if its query succeeds); with none, A/AAAA with UDP (TLS for sips).
- every Peer of a name carries `server_name`, the domain a TLS certificate must match: the
  domain we were asked to locate, never the SRV target (RFC 5922 §4.1).
- `system_fallback`: a name DNS does not know is looked up with the system resolver
  (getaddrinfo: /etc/hosts, mDNS), as dnspython reads neither; `localhost` or `pbx.local`
  registrars then still work.

`Locator(resolver=None, system_fallback=True)`; `await locator.locate(host, port=None,
transport=None, secure=False) -> [Peer]`, raising LocateError when nothing is found.
"""

import asyncio
import ipaddress
import socket
from typing import TYPE_CHECKING

from firmware.sip.endpoint import Peer

if TYPE_CHECKING:
    from typing import Any

    from dns.asyncresolver import Resolver

DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061}
SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
NAPTR_SERVICE = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SUPPORTED = ("udp", "tcp", "tls")  # the order SRV is tried in when NAPTR gives no answer


def lookup_errors() -> "tuple[type[Exception], ...]":
    """What a failed lookup raises. dnspython (even its `dns.exception`) is imported only once
    a name is looked up: a station with a numeric registrar never loads it (issue 14)."""
    import dns.exception

    return (dns.exception.DNSException, OSError)


class LocateError(Exception):
    pass


def is_numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def order_srv(records: "list[Any]", rng: "Any" = None) -> "list[Any]":
    """RFC 2782: lowest priority first; within a priority, weighted random order (`rng`: the
    `random` module unless given; imported here, not at the start of a station with an IP
    registrar)."""
    if rng is None:
        import random as rng
    out = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        while group:
            total = sum(r.weight for r in group)
            pick = rng.uniform(0, total) if total else 0
            running = 0
            for r in group:
                running += r.weight
                if running >= pick:
                    break
            group.remove(r)
            out.append(r)
    return out


class Locator:
    def __init__(self, resolver: "Resolver | None" = None, system_fallback: bool = True) -> None:
        self._resolver = resolver
        self.system_fallback = system_fallback

    @property
    def resolver(self) -> "Resolver":
        if self._resolver is None:
            # Imported on first use: dnspython's resolver costs ~130 ms of start-up (far more
            # on a Pi Zero), and a numeric registrar never needs it.
            import dns.asyncresolver

            self._resolver = dns.asyncresolver.Resolver()
        return self._resolver

    async def locate(self, host: str, port: int | None = None, transport: str | None = None,
                     secure: bool = False) -> "list[Peer]":
        host = host.strip("[]")
        if is_numeric(host):
            transport = transport or ("tls" if secure else "udp")
            return [Peer(transport, host, port or DEFAULT_PORT[transport])]
        if port is not None:
            transport = transport or ("tls" if secure else "udp")
            peers = await self._addresses(host, port, transport)
            if not peers:
                raise LocateError(f"cannot resolve {host}")
            return peers
        peers = []
        if transport is None:
            transport, srv_name = await self._naptr(host, secure)
            if srv_name is not None:
                peers = await self._srv(srv_name, transport, host)
            else:
                for candidate in ("tls",) if secure else SUPPORTED:
                    peers = await self._srv(SRV_PREFIX[candidate] + host, candidate, host)
                    if peers:
                        break
        else:
            peers = await self._srv(SRV_PREFIX[transport] + host, transport, host)
        if not peers:
            peers = await self._addresses(host, DEFAULT_PORT[transport], transport)
        if not peers:
            raise LocateError(f"cannot resolve {host}")
        return peers

    async def _naptr(self, host: str, secure: bool) -> tuple[str, str | None]:
        try:
            answer = await self.resolver.resolve(host, "NAPTR")
        except lookup_errors():
            answer = []  # type: ignore[assignment]  # no records
        records = sorted(answer, key=lambda r: (r.order, r.preference))
        for record in records:
            service = record.service.decode().upper()
            transport = NAPTR_SERVICE.get(service)
            if transport and (transport == "tls" or not secure) and record.flags.lower() == b"s":
                return transport, record.replacement.to_text(omit_final_dot=True)
        return ("tls" if secure else "udp"), None

    async def _srv(self, name: str, transport: str, server_name: str) -> "list[Peer]":
        try:
            answer = await self.resolver.resolve(name, "SRV")
        except lookup_errors():
            return []
        peers = []
        for record in order_srv(list(answer)):
            target = record.target.to_text(omit_final_dot=True)
            peers.extend(await self._addresses(target, record.port, transport, server_name))
        return peers

    async def _addresses(self, host: str, port: int, transport: str,
                         server_name: str | None = None) -> "list[Peer]":
        peers = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(host, rdtype)
            except lookup_errors():
                continue
            for record in answer:
                peers.append(Peer(transport, record.address, port,
                                  server_name=server_name or host))
        if not peers and self.system_fallback:
            peers = [Peer(transport, address, port, server_name=server_name or host)
                     for address in await _system_addresses(host, port)]
        return peers


async def _system_addresses(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP)
    except OSError:  # socket.gaierror included
        return []
    addresses: list[Any] = []  # an AF_INET/AF_INET6 sockaddr starts with the address text
    for _family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses
