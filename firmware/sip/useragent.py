"""The door station's SIP user agent core, sans-I/O (RFC 3261 §8, §10, §11).

It ties the endpoint (transactions, transports) to the registration and to the calls, and owns
the UA-wide policy:
- OPTIONS is answered 200 with Allow/Accept/Supported (§11.2);
- REGISTER is refused with 405: the station is a UA, never a registrar (§8.2.1, issue #9);
- admission (firmware/sip/admission.py): rate limits, a uniform 403 to anyone but the registrar
  while one is configured, 404 for Request-URIs that are not ours, before any transaction;
- routing (docs/INTERFACE.md): while a registrar is configured every request outside a dialog goes
  to it as outbound proxy;
- trust: a request is trusted when it came from the registrar's address over the registration's
  transport, or over TLS; in direct-IP mode trust is decided by the caller's source address.

Requests we send carry a `context`: an object with `on_response(response, now)` and
`on_failure(reason, now)`; responses and failures are handed back to it.
"""

import os

from firmware.sip import admission
from firmware.sip import registration as reg
from firmware.sip.endpoint import (
    Endpoint,
    MessageRejected,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
)
from firmware.sip.message import Request

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable
    from typing import Any

    from firmware.sip.endpoint import Peer
    from firmware.sip.message import Response
    from firmware.sip.registration import Registration
    from firmware.sip.transaction import ClientTransaction
    from firmware.sip.uri import URI

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf"
SUPPORTED = "timer, replaces"


# The UA passes these on as they are: the registration's state changes and the endpoint's
# refusals (under the name the station and tests use).
RegistrationChanged = reg.RegistrationChanged
Rejected = MessageRejected


class _RegistrationContext:
    def __init__(self, registration: "Registration") -> None:
        self.registration = registration

    def on_response(self, response: "Response", now: float) -> None:
        if response.status >= 200:
            self.registration.on_response(response, now)

    def on_failure(self, reason: str, now: float) -> None:
        self.registration.on_timeout(now)


class UserAgent:
    """`settings`: username, domain, password, display_name, transport, listen host and port,
    expires, and `registrar` — a resolved Peer, or None for direct-IP mode."""

    def __init__(self, settings: "dict[str, Any]",
                 random: "Callable" = os.urandom, user_agent: str = "Doorline") -> None:
        self.settings = settings
        self.random = random
        self.endpoint = Endpoint(settings["host"], settings["port"], settings["transport"],
                                 user_agent=user_agent, random=random)
        self.registrar: Peer | None = settings.get("registrar")
        self.registration: reg.Registration | None = None
        self.request_handler: Any = None  # the call layer: handle_request(event, now) -> bool
        self.endpoint.screen = admission.Gate(
            self.from_registrar, self.registrar is not None,
            usernames=(settings.get("username") or "door",),
            hosts=(settings["host"], settings.get("domain") or settings["host"]))
        self._events: list[object] = []
        if self.registrar is not None:
            self.registration = reg.Registration(
                aor=self.aor(), registrar_uri=self.registrar_uri(), contact=self.contact_uri(),
                username=settings["username"], password=settings["password"],
                expires=settings.get("expires", 3600), random=random)
            self._registration_context = _RegistrationContext(self.registration)

    # -- identities ------------------------------------------------------------------------
    def aor(self) -> str:
        return "sip:%s@%s" % (self.settings["username"], self.settings["domain"])

    def registrar_uri(self) -> str:
        """`sips:` for TLS (RFC 5630), else `sip:` with the transport named when not UDP."""
        peer = self.registrar
        assert peer is not None  # only asked for with a registrar configured
        scheme = "sips" if peer.transport == "tls" else "sip"
        uri = "%s:%s" % (scheme, self.settings.get("registrar_hostport") or peer.host)
        if peer.transport == "tcp":
            uri += ";transport=tcp"
        return uri

    def contact_uri(self) -> str:
        host = self.endpoint.sent_by_host()
        user = self.settings.get("username") or "door"
        scheme = "sips" if self.settings["transport"] == "tls" else "sip"
        uri = "%s:%s@%s:%d" % (scheme, user, host, self.endpoint.port)
        if self.settings["transport"] == "tcp":
            uri += ";transport=tcp"
        return uri

    def from_header(self, tag: str) -> str:
        name = self.settings.get("display_name") or ""
        # A quoted-string (RFC 3261 §25.1): '"' and '\\' go as quoted-pairs.
        display = '"%s" ' % name.replace("\\", "\\\\").replace('"', '\\"') if name else ""
        if self.registrar is not None:
            return "%s<%s>;tag=%s" % (display, self.aor(), tag)
        host = self.endpoint.sent_by_host()
        return "%s<sip:%s@%s>;tag=%s" % (display, self.settings.get("username") or "door",
                                         host, tag)

    # -- routing and trust -----------------------------------------------------------------
    def route_for(self, target_peer: "Peer") -> "Peer":
        """The next hop for a request outside a dialog: the registrar when one is configured."""
        return self.registrar if self.registrar is not None else target_peer

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
        if self.request_handler is not None:
            self.request_handler.handle_timer(now)
        self._dispatch(now)

    def get_timer(self) -> float | None:
        timers: list[Any] = [self.endpoint.get_timer()]
        if self.registration is not None:
            timers.append(self.registration.get_timer())
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

    def send_request(self, request: "Request", dest: "Peer", now: float,
                     context: "Any") -> "ClientTransaction | None":
        return self.endpoint.send_request(request, dest, now, context=context)

    def status(self) -> dict:
        if self.registration is None:
            return {"state": "disabled", "error": None, "next_refresh": None}
        r = self.registration
        return {"state": r.state, "error": r.error, "next_refresh": r.next_refresh}

    # -- internals -------------------------------------------------------------------------
    def _flush_registration(self, now: float) -> None:
        assert self.registration is not None and self.registrar is not None
        for request in self.registration.requests_to_send():
            self.endpoint.send_request(request, self.registrar, now,
                                       context=self._registration_context)
        while True:
            event = self.registration.next_event()
            if event is None:
                break
            self._events.append(event)

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

    def _on_request(self, event: "RequestReceived", now: float) -> None:
        request = event.request
        method = request.method
        if method == "OPTIONS":
            self._answer(event, 200, now, capabilities=True)
        elif method == "REGISTER":
            self._answer(event, 405, now, capabilities=True)
            self._events.append(Rejected(event.source, "REGISTER sent to the station", request))
        elif self.request_handler is not None and self.request_handler.handle_request(event, now):
            pass
        elif method == "ACK":
            pass
        elif method in ("INVITE", "BYE", "CANCEL", "INFO", "UPDATE", "PRACK"):
            self._answer(event, 481, now)
        else:
            self._answer(event, 501, now, capabilities=True)

    def _answer(self, event: "RequestReceived", status: int, now: float,
                capabilities: bool = False) -> None:
        response = event.request.make_response(status)
        if status >= 200 and status != 100 and "tag=" not in (response.headers.get("To") or ""):
            response.headers.set("To", response.headers.get("To") + ";tag=" +
                                 self.endpoint.new_tag())
        if capabilities:
            response.headers.set("Allow", ALLOW)
            response.headers.set("Accept", ACCEPT)
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
