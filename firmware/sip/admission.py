"""Admission control: which requests the station lets in, sans-I/O.

A door station is a user agent (RFC 3261 §8.2), not a proxy or registrar, and it sits on a network
for years. Before a request outside any transaction allocates state, it is screened here:

1. Rate limits (token buckets): every new request costs one token from its source address's bucket
   and one from a global bucket shared by all untrusted sources. Excess is dropped silently — an
   answer would cost what the limit is there to save. The registrar (the one source trusted while
   registered, docs/CONFIG.md "Trust") has a bucket of its own, so a flood from elsewhere on the
   network cannot starve real calls. So has a request inside one of our live dialogs (its
   Call-ID, To tag and From tag name a call of ours, RFC 3261 §12.2.2: an ACK, BYE, INFO with a
   key press, re-INVITE): it costs a token of its source's dialog bucket and none of the global
   one, so a flood from elsewhere cannot drop a real call's ACK, BYE or door code, and a peer
   that places calls quickly (three requests per call) is not throttled as a stranger would be.
   The tables of sources are bounded (least recently used sources are forgotten first).
2. Policy (`screen_request`), in order:
   - a request with a To tag belongs to a dialog: the call layer answers it (481 if unknown);
   - REGISTER is let through so the UA can answer 405 (§8.2.1: we are no registrar);
   - while a registrar is configured, a request that did not come from it gets one uniform
     stateless 403, whatever its method or user part, so extensions cannot be enumerated;
     OPTIONS is still answered (§11);
   - a Request-URI that is not ours (user part neither absent nor our username, or host none of
     our addresses) gets 404 (§8.2.2.1): nothing is ever relayed.

Public API
    TokenBucket(rate, burst, now=0.0): take(now) -> bool
    Admission(source_rate=20.0, source_burst=40.0, global_rate=100.0, global_burst=100.0,
              registrar_rate=200.0, registrar_burst=400.0, dialog_rate=50.0,
              dialog_burst=100.0, max_sources=1024)
        admit(host, trusted, now) -> bool; admit_dialog(host, now) -> bool (a request in one
        of our dialogs); counters `admitted`, `dropped`; len() = sources kept
    screen_request(request, trusted, registrar_configured, usernames, hosts) -> int | None
        None: let the request in; else the status of a stateless rejection
    is_ours(uri, usernames, hosts) -> bool
        wildcard hosts ("0.0.0.0", "::") in `hosts` accept any IP literal host
    Gate(is_trusted, registrar_configured, usernames, hosts, admission=None, knows_dialog=None)
        gate(request, source, now) -> ADMIT (None), DROP or a status: what the endpoint calls
        for each request that matches no transaction; `source` is an endpoint Peer,
        `is_trusted(source)` says whether it is the registrar, `knows_dialog(request)` whether
        the request belongs to one of our live dialogs (the call layer's table)
"""

from firmware.compat import ordered_dict
from firmware.sip.errors import ParseError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable

    from firmware.sip.endpoint import Peer
    from firmware.sip.message import Request
    from firmware.sip.uri import URI

ADMIT = None
DROP = "drop"
FORBIDDEN = 403
NOT_FOUND = 404
WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]")


class TokenBucket:
    """`rate` tokens per second up to `burst`; starts full."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def __repr__(self) -> str:
        return "<TokenBucket %.1f/%.0f at %.1f/s>" % (self.tokens, self.burst, self.rate)


class Admission:
    """Per-source and global token buckets for new transactions."""

    def __init__(self, source_rate: float = 20.0, source_burst: float = 40.0,
                 global_rate: float = 100.0, global_burst: float = 100.0,
                 registrar_rate: float = 200.0, registrar_burst: float = 400.0,
                 dialog_rate: float = 50.0, dialog_burst: float = 100.0,
                 max_sources: int = 1024) -> None:
        self.source_rate = source_rate
        self.source_burst = source_burst
        self.dialog_rate = dialog_rate
        self.dialog_burst = dialog_burst
        self.max_sources = max_sources
        self.global_bucket = TokenBucket(global_rate, global_burst)
        self.registrar_bucket = TokenBucket(registrar_rate, registrar_burst)
        # host → TokenBucket; insertion order = least recently used first (an ordered dict:
        # MicroPython's plain dict has no order)
        self._sources: dict[str, TokenBucket] = ordered_dict()
        self._dialog_sources: dict[str, TokenBucket] = ordered_dict()  # the same, in dialogs
        self.admitted = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._sources)

    def admit(self, host: str, trusted: bool, now: float) -> bool:
        """May a new transaction from `host` start now? `trusted`: it came from the registrar."""
        if trusted:
            allowed = self.registrar_bucket.take(now)
        else:
            bucket = self._bucket(self._sources, host, now, self.source_rate, self.source_burst)
            # The source pays first: one noisy source must not drain the shared cap for others.
            allowed = bucket.take(now) and self.global_bucket.take(now)
        return self._count(allowed)

    def admit_dialog(self, host: str, now: float) -> bool:
        """May a request inside one of our live dialogs from `host` go on now? Its source's
        dialog bucket only: the global cap is for strangers' new work."""
        bucket = self._bucket(self._dialog_sources, host, now, self.dialog_rate,
                              self.dialog_burst)
        return self._count(bucket.take(now))

    def _count(self, allowed: bool) -> bool:
        if allowed:
            self.admitted += 1
        else:
            self.dropped += 1
        return allowed

    def _bucket(self, table: "dict[str, TokenBucket]", host: str, now: float, rate: float,
                burst: float) -> "TokenBucket":
        bucket = table.pop(host, None)
        if bucket is None:
            if len(table) >= self.max_sources:
                # Forget the least recently seen source: at worst it starts over with a full
                # bucket, which the global cap (or, in dialogs, the dialog's own) still bounds.
                del table[next(iter(table))]
            bucket = TokenBucket(rate, burst, now)
        table[host] = bucket  # re-inserted: now the most recently used
        return bucket


def is_ours(uri: "URI", usernames: tuple[str, ...], hosts: tuple[str, str]) -> bool:
    """Is a Request-URI addressed to this station (RFC 3261 §8.2.2.1)?"""
    if uri.scheme not in ("sip", "sips"):
        return False
    if uri.user is not None and uri.user not in usernames:
        return False
    assert uri.host is not None  # URI.parse gives every sip/sips URI a host
    host = uri.host.lower()
    if host in hosts:  # as configured (issue 14, the answer path)
        return True
    wanted = [h.lower() for h in hosts]
    if host in wanted or host.strip("[]") in [h.strip("[]") for h in wanted]:
        return True
    wildcard = any(h in WILDCARD_HOSTS for h in wanted)
    return wildcard and _is_ip_literal(host)


def screen_request(request: "Request", trusted: bool, registrar_configured: bool,
                   usernames: tuple[str, ...], hosts: tuple[str, str]) -> str | int | None:
    """The policy for a new request (see the module docstring); ACKs are never answered, so the
    caller drops an ACK that gets a status here."""
    if _in_dialog(request):
        return ADMIT
    method = request.method
    if method == "REGISTER":
        return ADMIT
    if registrar_configured and not trusted:
        return ADMIT if method == "OPTIONS" else FORBIDDEN
    if method == "OPTIONS" or is_ours(request.uri, usernames, hosts):
        return ADMIT
    return NOT_FOUND


class Gate:
    """The buckets and the policy together, as the endpoint's `screen` hook."""

    def __init__(self, is_trusted: "Callable", registrar_configured: bool,
                 usernames: tuple[str, ...],
                 hosts: tuple[str, str], admission: "Admission | None" = None,
                 knows_dialog: "Callable | None" = None) -> None:
        self.is_trusted = is_trusted
        self.knows_dialog = knows_dialog
        self.registrar_configured = registrar_configured
        self.usernames = usernames
        self.hosts = hosts
        self.admission = admission if admission is not None else Admission()

    def __call__(self, request: "Request", source: "Peer", now: float) -> str | int | None:
        trusted = self.is_trusted(source)
        if not trusted and self.knows_dialog is not None and self.knows_dialog(request):
            return ADMIT if self.admission.admit_dialog(source.host, now) else DROP
        if not self.admission.admit(source.host, trusted, now):
            return DROP
        return screen_request(request, trusted, self.registrar_configured, self.usernames,
                              self.hosts)


def _in_dialog(request: "Request") -> bool:
    try:
        return request.to_address().tag is not None
    except (ParseError, TypeError, AttributeError):
        return False


def _is_ip_literal(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        return True
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts)
