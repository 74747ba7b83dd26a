"""The door station's SIP user agent core, sans-I/O (RFC 3261 §8, §10, §11).

It ties the endpoint (transactions, transports) to the registration and to the calls, and owns
the UA-wide policy:
- OPTIONS is answered 200 with Allow/Accept/Supported (§11.2);
- REGISTER is refused with 405: the station is a UA, never a registrar (§8.2.1), so nothing can
  register through it;
- admission (firmware/sip/admission.py): rate limits, a uniform 403 to anyone but the registrar
  while one is configured, 404 for Request-URIs that are not ours, before any transaction;
- routing (docs/CONFIG.md `registrar`): while a registrar is configured every request outside a
  dialog goes to it as outbound proxy; the one function that decides a call's next hop is the
  session layer's `next_hop` (firmware/session/routing.py): the call layer sends where it is told;
- trust: a request is trusted when it came from the registrar's address over the registration's
  transport, or over TLS; in direct-IP mode trust is decided by the caller's source address.

Upward, the UA passes events on (`next_event()`: its own, the registration's, then the call
layer's); the one callback is the `Reply` a request we send carries (firmware/sip/reply.py): its
responses and failure are handed back to it. The call layer (`request_handler`, a CallManager)
gets every request that is not the UA's own (OPTIONS, REGISTER) and owns it from there: what it
does not know it hands back to `answer_unmatched` (481 / 501), so nothing is signalled upward by
a return value.

The call layer's port: calls and branches talk to the UA only, never to its endpoint or
registration: `send_request`, `send_response`, `send_stateless`, `find_cancelled`, `new_tag`,
`new_call_id`, `new_id`, `answer_challenge`, `contact_uri`, `from_header`,
`from_registrar`, `answer_unmatched`.
"""

import os

from firmware.sip import admission, auth
from firmware.sip import keepalive as ka
from firmware.sip import registration as reg
from firmware.sip.endpoint import (
    Endpoint,
    MessageRejected,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
)
from firmware.sip.errors import ParseError
from firmware.sip.message import Request
from firmware.sip.reply import Reply

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable
    from typing import Any

    from firmware.settings import SipConfig
    from firmware.sip.call import CallManager
    from firmware.sip.digest import Challenge
    from firmware.sip.endpoint import Peer
    from firmware.sip.message import Response
    from firmware.sip.transaction import ClientTransaction, ServerTransaction
    from firmware.sip.uri import URI

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REFER, NOTIFY, MESSAGE"
ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf, text/plain"
SUPPORTED = "timer, replaces, 100rel"
# The option tags a request may Require of us (RFC 3261 §8.2.2.3); `path` only ever goes to a
# registrar (RFC 3327), so a request to us requiring it is as unsupported as any other.
UNDERSTOOD = tuple(tag.strip() for tag in SUPPORTED.split(","))


def unsupported(request: "Request") -> "list[str]":
    """The option tags in `request`'s Require that we do not understand (RFC 3261 §8.2.2.3);
    ACK and CANCEL are never refused for them (§8.2.2.3: a CANCEL is processed as is)."""
    if request.method in ("ACK", "CANCEL"):
        return []
    tags = []
    for value in request.headers.get_all("Require"):
        tag = value.strip()
        if tag and tag.lower() not in UNDERSTOOD and tag not in tags:
            tags.append(tag)
    return tags[:8]  # bounded: the 420 lists the first few


# The UA passes these on as they are: the registration's state changes and the endpoint's
# refusals (MessageRejected).
RegistrationChanged = reg.RegistrationChanged

KEEPALIVE_DEAD_ERROR = "registrar not answering keep-alives"
# After a NAT mapping changed, how long the runtime has to give us a new local port
# (`move_to_port`) before we re-register through the old one.
MOVE_WAIT = 1.0


class MappingChanged:
    """The registrar saw our requests come from another public address or port (a NAT mapping
    changed, RFC 3581 received/rport). The runtime opens a new local UDP port and calls
    `UserAgent.move_to_port` with it: the station re-registers from there (a fresh NAT
    mapping, the old binding removed); without one within MOVE_WAIT it re-registers through
    the old port."""

    __slots__ = ("old", "new")

    def __init__(self, old: "tuple[str, int]", new: "tuple[str, int]") -> None:
        self.old = old
        self.new = new

    def __repr__(self) -> str:
        return "<MappingChanged %s:%d -> %s:%d>" % (self.old + self.new)


class UASettings:
    """What the user agent needs to know, read once (instead of a string-keyed dict).

    `host`, `port`, `transport`: where we listen (the Via sent-by and Contact); `username`
    (default "door"), `password`, `domain` (of our address of record), `display_name`,
    `expires` (the registration interval we ask for); `registrar`: a resolved Peer, or None for
    direct-IP mode; `registrar_hostport`: the registrar as configured (the REGISTER's
    Request-URI). Build it with `from_config` from the validated `[sip]` section, or with
    `from_dict` from the older settings dict; a missing or wrongly typed value raises ValueError
    naming it.
    """

    __slots__ = ("host", "port", "transport", "username", "password", "domain", "display_name",
                 "expires", "registrar", "registrar_hostport", "keepalive", "auth_username")

    def __init__(self, host: str, port: int, transport: str = "udp", username: str = "door",
                 password: str = "", domain: "str | None" = None, display_name: str = "",
                 expires: int = 3600, registrar: "Peer | None" = None,
                 registrar_hostport: "str | None" = None, keepalive: int = 0,
                 auth_username: str = "") -> None:
        if not isinstance(host, str) or not host:
            raise ValueError("settings: host must be a non-empty string, not %r" % (host,))
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("settings: port must be 1-65535, not %r" % (port,))
        if transport not in ("udp", "tcp", "tls"):
            raise ValueError("settings: transport must be udp, tcp or tls, not %r" % (transport,))
        if not isinstance(expires, int) or expires < 0:
            raise ValueError("settings: expires must be a whole number of seconds, not %r"
                             % (expires,))
        self.host = host
        self.port = port
        self.transport = transport
        self.username = username or "door"
        self.password = password or ""
        self.domain = domain
        self.display_name = display_name or ""
        self.expires = expires
        self.registrar = registrar
        self.registrar_hostport = registrar_hostport
        if not isinstance(keepalive, int) or keepalive < 0:
            raise ValueError("settings: keepalive must be a whole number of seconds, not %r"
                             % (keepalive,))
        self.keepalive = keepalive  # [sip] keepalive_s: 0 = none (firmware/sip/keepalive.py)
        # the digest user name when it is not the SIP user (3CX's "Authentication ID")
        self.auth_username = auth_username or ""

    @classmethod
    def from_dict(cls, settings: "dict[str, Any]") -> "UASettings":
        """From the dict the runtime used to pass (keys as the attribute names)."""
        unknown = [k for k in settings if k not in cls.__slots__]
        if unknown:
            raise ValueError("settings: unknown key(s) %s" % ", ".join(sorted(unknown)))
        for key in ("host", "port"):
            if key not in settings:
                raise ValueError("settings: %s is missing" % key)
        values = {}
        for key in cls.__slots__:
            if key in settings and settings[key] is not None:
                values[key] = settings[key]
        return cls(**values)

    @classmethod
    def from_config(cls, sip: "SipConfig", host: str, port: int, domain: "str | None",
                    registrar: "Peer | None" = None) -> "UASettings":
        """From the validated `[sip]` section (a firmware.settings.SipConfig) and what the
        runtime found: the listen `host` and `port`, the effective `domain`
        (SipConfig.effective_domain) and the located `registrar` Peer (None: direct-IP mode)."""
        return cls(host, port, transport=sip.transport, username=sip.username,
                   password=sip.password, domain=domain or host,
                   display_name=sip.display_name, expires=sip.expires,
                   registrar=registrar, registrar_hostport=sip.registrar or None,
                   keepalive=sip.keepalive_s, auth_username=sip.auth_username)

    def __repr__(self) -> str:
        # never the password
        return "<UASettings %s@%s:%s %s registrar %r>" % (self.username, self.host, self.port,
                                                          self.transport, self.registrar)


class UserAgent:
    """`settings`: a `UASettings` (a dict with its attribute names as keys is still taken and
    converted once, for the callers that build one)."""

    def __init__(self, settings: "UASettings | dict[str, Any]",
                 random: "Callable[[int], bytes]" = os.urandom,
                 user_agent: str = "Doorline") -> None:
        if isinstance(settings, dict):
            settings = UASettings.from_dict(settings)
        self.settings = settings
        self.random = random
        self.endpoint = Endpoint(settings.host, settings.port, settings.transport,
                                 user_agent=user_agent, random=random)
        self.registrar = settings.registrar
        self.registration: reg.Registration | None = None
        # the call layer: handle_request(event, now), handle_stray_response(response, now),
        # handle_timer(now), get_timer(), next_event()
        self.request_handler: CallManager | None = None
        self.endpoint.screen = admission.Gate(
            self.from_registrar, self.registrar is not None, usernames=(settings.username,),
            hosts=(settings.host, settings.domain or settings.host),
            knows_dialog=self._knows_dialog)
        self._events: list[object] = []
        # one digest answerer for REGISTER, INVITE and BYE: nonce counts are shared (RFC 7616)
        self.credentials = auth.Credentials(settings.auth_username or settings.username,
                                            settings.password, random)
        if self.registrar is not None:
            self.registration = reg.Registration(
                aor=self.aor(), registrar_uri=self.registrar_uri(), contact=self.contact_uri(),
                username=settings.username, password=settings.password,
                expires=settings.expires, random=random, credentials=self.credentials)
        # UDP keep-alives towards the registrar (TCP/TLS flows have the transport's CRLF pings)
        self.keepalive: ka.KeepAlive | None = None
        if self.registration is not None and self.registrar is not None and \
                self.registrar.transport == "udp" and settings.keepalive:
            self.keepalive = ka.KeepAlive(settings.keepalive)
        self.mapping: tuple[str, int] | None = None  # our address as the registrar sees it
        self._probe_call_id: str | None = None
        self._move_deadline: float | None = None  # waiting for move_to_port

    def _knows_dialog(self, request: "Request") -> bool:
        """Is `request` inside one of the call layer's live dialogs (admission's dialog budget)?"""
        knows = getattr(self.request_handler, "knows_dialog", None)
        return knows is not None and bool(knows(request))

    # -- identities ------------------------------------------------------------------------
    def aor(self) -> str:
        return "sip:%s@%s" % (self.settings.username, self.settings.domain)

    def registrar_uri(self) -> str:
        """`sips:` for TLS (RFC 5630), else `sip:` with the transport named when not UDP."""
        peer = self.registrar
        assert peer is not None  # only asked for with a registrar configured
        scheme = "sips" if peer.transport == "tls" else "sip"
        uri = "%s:%s" % (scheme, self.settings.registrar_hostport or peer.host)
        if peer.transport == "tcp":
            uri += ";transport=tcp"
        return uri

    def contact_uri(self) -> str:
        host = self.endpoint.sent_by_host()
        transport = self.settings.transport
        scheme = "sips" if transport == "tls" else "sip"
        uri = "%s:%s@%s:%d" % (scheme, self.settings.username, host, self.endpoint.port)
        if transport == "tcp":
            uri += ";transport=tcp"
        return uri

    def from_header(self, tag: str) -> str:
        name = self.settings.display_name
        # A quoted-string (RFC 3261 §25.1): '"' and '\\' go as quoted-pairs.
        display = '"%s" ' % name.replace("\\", "\\\\").replace('"', '\\"') if name else ""
        if self.registrar is not None:
            return "%s<%s>;tag=%s" % (display, self.aor(), tag)
        host = self.endpoint.sent_by_host()
        return "%s<sip:%s@%s>;tag=%s" % (display, self.settings.username, host, tag)

    # -- trust -----------------------------------------------------------------------------
    def from_registrar(self, source: "Peer") -> bool:
        """Did this come over the registration's flow / from the registrar's address?"""
        registrar = self.registrar
        return registrar is not None and source.transport == registrar.transport and \
            source.host == registrar.host and (source.reliable or source.port == registrar.port)

    # -- sans-I/O surface ------------------------------------------------------------------
    def start(self, now: float) -> None:
        if self.registration is not None:
            self.registration.start(now)
            self._flush_registration(now)

    def stop(self, now: float) -> None:
        if self.registration is not None:
            self.registration.stop(now)
            self._flush_registration(now)

    def receive(self, data: bytes, source: "Peer", now: float) -> None:
        self.endpoint.receive(data, source, now)
        self._dispatch(now)

    def flow_failed(self, peer: "Peer", now: float) -> None:
        self.endpoint.flow_failed(peer, now)
        if self.registration is not None and self.registrar is not None and \
                peer.transport == self.registrar.transport and peer.host == self.registrar.host \
                and peer.port == self.registrar.port:
            self.registration.flow_failed(now)
        self._dispatch(now)

    def handle_timer(self, now: float) -> None:
        self.endpoint.handle_timer(now)
        if self.registration is not None:
            self.registration.handle_timer(now)
        if self.keepalive is not None:
            self.keepalive.handle_timer(now)
            self._run_keepalive(now)
        if self._move_deadline is not None and now >= self._move_deadline:
            self.move_to_port(None, now)
        if self.request_handler is not None:
            self.request_handler.handle_timer(now)
        self._dispatch(now)

    def get_timer(self) -> float | None:
        if self.endpoint.has_events():
            # Undelivered (a request sent outside `receive`/`handle_timer` that found the
            # transaction table full reports its failure as an event): due at once, so the
            # owner hears it now rather than at the next unrelated input.
            return 0.0
        timers: list[Any] = [self.endpoint.get_timer()]
        if self.registration is not None:
            timers.append(self.registration.get_timer())
        if self.keepalive is not None:
            timers.append(self.keepalive.get_timer())
        timers.append(self._move_deadline)
        if self.request_handler is not None:
            timers.append(self.request_handler.get_timer())
        timers = [t for t in timers if t is not None]
        return min(timers) if timers else None

    def datagrams_to_send(self) -> "list[tuple[bytes, Peer]]":
        return self.endpoint.datagrams_to_send()

    def next_event(self) -> object:
        """UA events first, then the call layer's."""
        if self._events:
            return self._events.pop(0)
        if self.request_handler is not None:
            return self.request_handler.next_event()
        return None

    def awaiting_final_responses(self) -> bool:
        """Is a request we sent (an unregister, a BYE, a CANCEL) still waiting for its final
        response?"""
        return self.endpoint.awaiting_final_responses()

    # -- the call layer's port ---------------------------------------------------------------
    def send_request(self, request: "Request", dest: "Peer", now: float, context: "Reply",
                     branch: "str | None" = None) -> "ClientTransaction | None":
        """A new client transaction; `context` is the request's `Reply`. CANCEL passes the
        INVITE's `branch` (§9.1). Returns the transaction (None: no room, reported as a
        failure)."""
        return self.endpoint.send_request(request, dest, now, context=context, branch=branch)

    def send_response(self, transaction: "ServerTransaction", response: "Response",
                      now: float) -> None:
        self.endpoint.send_response(transaction, response, now)

    def send_stateless(self, message: "Request | Response", dest: "Peer") -> None:
        """An ACK to a 2xx (§13.2.2.4) or a 2xx retransmitted by its dialog (§13.3.1.4)."""
        self.endpoint.send_stateless(message, dest)

    def find_cancelled(self, cancel: "Request") -> "ServerTransaction | None":
        """The INVITE server transaction a CANCEL refers to (§9.2), or None."""
        return self.endpoint.find_cancelled(cancel)

    def preloaded_routes(self) -> "list[str]":
        """The Route set of a request outside a dialog: the registrar's Service-Route (RFC
        3608 §6.1) while registered, else none."""
        registration = self.registration
        if registration is None or registration.state != reg.STATE_REGISTERED:
            return []
        return list(registration.service_route)

    def new_tag(self) -> str:
        return self.endpoint.new_tag()

    def new_call_id(self) -> str:
        return self.endpoint.new_call_id()

    def new_id(self) -> str:
        """A short random id (a call's)."""
        return self.random(6).hex()

    def answer_challenge(self, challenge: "Challenge", method: str, uri: object,
                         body: bytes = b"") -> str:
        """The Authorization value for `challenge`, from the UA's one digest answerer (`body`:
        the request's, hashed for qop=auth-int)."""
        return self.credentials.answer(challenge, method, uri, body)

    def answer_unmatched(self, event: "RequestReceived", now: float) -> None:
        """A request nobody above owns: an ACK is absorbed, a request for a dialog or an INVITE
        transaction we do not know gets 481 (§12.2.2, §9.2), any other method 501."""
        method = event.request.method
        if method == "ACK":
            return
        if method in ("INVITE", "BYE", "CANCEL", "INFO", "UPDATE", "PRACK"):
            self._answer(event, 481, now)
        else:
            self._answer(event, 501, now, capabilities=True)

    def status(self) -> dict:
        if self.registration is None:
            return {"state": "disabled", "error": None, "next_refresh": None,
                    "registering": False, "attempt": 0, "since": None}
        r = self.registration
        # `since` (like next_refresh) on the caller's `now` clock: when the REGISTER now
        # outstanding was first sent while registering, else when `state` last changed
        return {"state": r.state, "error": r.error, "next_refresh": r.next_refresh,
                "registering": r.registering, "attempt": r.attempt,
                "since": r.attempt_started if r.registering else r.changed_at}

    # -- internals -------------------------------------------------------------------------
    def _flush_registration(self, now: float) -> None:
        assert self.registration is not None and self.registrar is not None
        for request in self.registration.requests_to_send():
            self.endpoint.send_request(request, self.registrar, now, context=Reply(
                request, self._on_register_response, self._on_register_failure))
        while True:
            event = self.registration.next_event()
            if event is None:
                break
            self._events.append(event)
            if self.keepalive is not None:
                if event.state == reg.STATE_REGISTERED:
                    self.keepalive.registered(now)
                else:
                    self.keepalive.unregistered(now)
                self._run_keepalive(now)

    # -- keep-alives and the NAT mapping (firmware/sip/keepalive.py) ----------------------------
    def _run_keepalive(self, now: float) -> None:
        """Carry out what the keep-alive policy decided."""
        keepalive, registration = self.keepalive, self.registration
        assert keepalive is not None and registration is not None and self.registrar is not None
        for action in keepalive.actions():
            if action == ka.PROBE:
                request = new_request(
                    "OPTIONS", self.registrar_uri(), "<%s>;tag=%s" % (self.aor(), self.new_tag()),
                    "<%s>" % self.registrar_uri(), self.new_call_id(), 1)
                request.headers.set("Accept", "application/sdp")
                self._probe_call_id = request.headers.get("Call-ID")
                self.endpoint.send_request(request, self.registrar, now, context=Reply(
                    request, self._on_probe_response, self._on_probe_failure))
            elif action == ka.CRLF:
                self.endpoint.send_keepalive(self.registrar)
            elif action == ka.REFRESH:
                registration.refresh_now(now)
            elif action == ka.DEAD:
                registration.lost(now, KEEPALIVE_DEAD_ERROR)

    def _on_probe_response(self, reply: "Reply", response: "Response", now: float) -> None:
        assert self.keepalive is not None  # only sent with one
        if response.status < 200 or \
                reply.request.headers.get("Call-ID") != self._probe_call_id:
            return
        self.keepalive.answered(self.keepalive.probe, now)
        self._check_mapping(response, now)
        self._run_keepalive(now)

    def _on_probe_failure(self, reply: "Reply", reason: str, now: float) -> None:
        assert self.keepalive is not None  # only sent with one
        if reply.request.headers.get("Call-ID") == self._probe_call_id:
            self.keepalive.failed(self.keepalive.probe, now)
            self._run_keepalive(now)

    def _check_mapping(self, response: "Response", now: float) -> None:
        """RFC 3581: a response's Via received/rport is our address as the registrar sees it;
        when it changes while registered, the binding points at a dead mapping: re-register.
        UDP only: over TCP/TLS each new connection has a new port, and registers anew anyway.
        Only responses to requests sent from the current local port count: after a move the
        first one sets the new baseline (the NAT maps the new port to yet another one)."""
        mapping = ka.via_mapping(response)
        if mapping is None or self.registrar is None or self.registrar.transport != "udp":
            return
        try:
            sent_from = response.top_via().port or 5060
        except ParseError:
            return
        if sent_from != self.endpoint.port:
            return
        old, self.mapping = self.mapping, mapping
        if old is not None and old != mapping and self.registration is not None and \
                self.registration.state == reg.STATE_REGISTERED and \
                self._move_deadline is None:
            self._events.append(MappingChanged(old, mapping))
            self._move_deadline = now + MOVE_WAIT

    def move_to_port(self, port: "int | None", now: float) -> None:
        """After MappingChanged: requests leave from local `port` from now on and the
        registration moves there (the former Contact removed in the same REGISTER); None: no
        new port could be had, re-register through the current one."""
        self._move_deadline = None
        registration = self.registration
        if registration is None:
            return
        if port is None or port == self.endpoint.port:
            registration.refresh_now(now)
        else:
            self.endpoint.move_to(port)
            self.mapping = None  # the new port's mapping is the next baseline
            registration.move(self.contact_uri(), now)
        self._flush_registration(now)
    def _dispatch(self, now: float) -> None:
        while True:
            event = self.endpoint.next_event()
            if event is None:
                break
            if isinstance(event, RequestReceived):
                self._on_request(event, now)
            elif isinstance(event, ResponseReceived):
                if event.context is not None:
                    event.context.on_response(event.response, now)
                elif self.request_handler is not None:
                    self.request_handler.handle_stray_response(event.response, now)
            elif isinstance(event, RequestFailed):
                if event.context is not None:
                    event.context.on_failure(event.reason, now)
            elif isinstance(event, MessageRejected):
                self._events.append(event)
        if self.registration is not None:
            self._flush_registration(now)

    def _on_register_response(self, reply: "Reply", response: "Response", now: float) -> None:
        assert self.registration is not None  # only sent with a registration
        if response.status >= 200:
            if 200 <= response.status < 300:
                self._check_mapping(response, now)
            self.registration.on_response(response, now)
            if self.keepalive is not None and 200 <= response.status < 300:
                self.keepalive.refreshed(now)
                self._run_keepalive(now)

    def _on_register_failure(self, reply: "Reply", reason: str, now: float) -> None:
        assert self.registration is not None  # only sent with a registration
        self.registration.on_timeout(now)

    def _on_request(self, event: "RequestReceived", now: float) -> None:
        request = event.request
        method = request.method
        missing = unsupported(request)
        if missing:
            # §8.2.2.3: 420 Bad Extension listing what we lack; the call never starts
            self._answer(event, 420, now, unsupported=", ".join(missing))
        elif method == "OPTIONS":
            self._answer(event, 200, now, capabilities=True)
        elif method == "REGISTER":
            self._answer(event, 405, now, capabilities=True)
            self._events.append(MessageRejected(event.source, "REGISTER sent to the station",
                                                request))
        elif self.request_handler is not None:
            self.request_handler.handle_request(event, now)
        else:
            self.answer_unmatched(event, now)

    def _answer(self, event: "RequestReceived", status: int, now: float,
                capabilities: bool = False, unsupported: str = "") -> None:
        response = event.request.make_response(status)
        if status >= 200 and status != 100 and "tag=" not in (response.headers.get("To") or ""):
            response.headers.set("To", response.headers.get("To") + ";tag=" +
                                 self.endpoint.new_tag())
        if capabilities:
            response.headers.set("Allow", ALLOW)
            response.headers.set("Accept", ACCEPT)
            response.headers.set("Supported", SUPPORTED)
        if unsupported:
            response.headers.set("Unsupported", unsupported)
            response.headers.set("Supported", SUPPORTED)
        assert event.transaction is not None  # only an ACK comes without one, never answered
        self.endpoint.send_response(event.transaction, response, now)


def new_request(method: str, uri: "str | URI", from_value: str, to_value: str, call_id: str,
                cseq: int, contact: str | None = None) -> "Request":
    """A request outside a dialog with the headers §8.1.1 requires (Via comes later)."""
    request = Request(method, uri)
    request.headers.set("From", from_value)
    request.headers.set("To", to_value)
    request.headers.set("Call-ID", call_id)
    request.headers.set("CSeq", "%d %s" % (cseq, method))
    if contact:
        request.headers.set("Contact", "<%s>" % contact)
    return request
