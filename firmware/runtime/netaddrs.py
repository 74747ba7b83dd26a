"""The station's own host name and IP addresses, read from the system (Linux /proc).

Public API:
- `host_name() -> str` (socket.gethostname()).
- `interface_addresses() -> set[str]`: every local IPv4 address (the `/32 host LOCAL` entries of
  /proc/net/fib_trie) and IPv6 address (/proc/net/if_inet6) of every interface, plus the
  loopback addresses; where /proc cannot be read, the addresses the host name resolves to.
"""

import ipaddress
import socket

FIB_TRIE = "/proc/net/fib_trie"
IF_INET6 = "/proc/net/if_inet6"


def host_name() -> str:
    return socket.gethostname()


def _ipv4_local(text: str) -> set[str]:
    found, last = set(), None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("|--", "+--")):
            last = stripped[3:].split()[0] if stripped[3:].split() else None
        elif stripped.startswith("/32 host LOCAL") and last:
            found.add(last)
    return found


def _ipv6_local(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            try:
                found.add(str(ipaddress.IPv6Address(int(fields[0], 16))))
            except ValueError:
                pass
    return found


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def interface_addresses() -> set[str]:
    found = {"127.0.0.1", "::1"}
    fib, inet6 = _read(FIB_TRIE), _read(IF_INET6)
    if fib is not None:
        found |= _ipv4_local(fib)
    if inet6 is not None:
        found |= _ipv6_local(inet6)
    if fib is None:
        try:
            # an AF_INET/AF_INET6 sockaddr starts with the address text
            found |= {info[4][0] for info in socket.getaddrinfo(host_name(), None)}  # type: ignore[misc]
        except OSError:
            pass
    return found
