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

from firmware.sip import admission, auth
from firmware.sip import registration as reg
from firmware.sip.endpoint import (
    Endpoint,
    MessageRejected,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
)
from firmware.sip.message import Request

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
ACCEPT = "application/sdp, application/dtmf-relay, application/dtmf"
SUPPORTED = "timer, replaces"


# The UA passes these on as they are: the registration's state changes and the endpoint's
# refusals (under the name the station and tests use).
RegistrationChanged = reg.RegistrationChanged
Rejected = MessageRejected


class _RegistrationContext:
    def __init__(self, registration):
        self.registration = registration

    def on_response(self, response, now):
        if response.status >= 200:
            self.registration.on_response(response, now)

    def on_failure(self, reason, now):
        self.registration.on_timeout(now)


class UserAgent:
    """`settings`: username, domain, password, display_name, transport, listen host and port,
    expires, and `registrar` — a resolved Peer, or None for direct-IP mode."""

    def __init__(self, settings, random=os.urandom, user_agent="Doorline"):
        self.settings = settings
        self.random = random
        self.endpoint = Endpoint(settings["host"], settings["port"], settings["transport"],
                                 user_agent=user_agent, random=random)
        self.registrar = settings.get("registrar")
        self.registration = None
        self.request_handler = None  # the call layer: handle_request(event, now) -> bool
        self.endpoint.screen = admission.Gate(
            self.from_registrar, self.registrar is not None,
            usernames=(settings.get("username") or "door",),
            hosts=(settings["host"], settings.get("domain") or settings["host"]))
        self._events = []
        # one digest answerer for REGISTER, INVITE and BYE: nonce counts are shared (RFC 7616)
        self.credentials = auth.Credentials(settings.get("username") or "door",
                                            settings.get("password") or "", random)
        if self.registrar is not None:
            self.registration = reg.Registration(
                aor=self.aor(), registrar_uri=self.registrar_uri(), contact=self.contact_uri(),
                username=settings["username"], password=settings["password"],
                expires=settings.get("expires", 3600), random=random,
                credentials=self.credentials)
            self._registration_context = _RegistrationContext(self.registration)

    # -- identities ------------------------------------------------------------------------
    def aor(self):
        return "sip:%s@%s" % (self.settings["username"], self.settings["domain"])

    def registrar_uri(self):
        """`sips:` for TLS (RFC 5630), else `sip:` with the transport named when not UDP."""
        peer = self.registrar
        scheme = "sips" if peer.transport == "tls" else "sip"
        uri = "%s:%s" % (scheme, self.settings.get("registrar_hostport") or peer.host)
        if peer.transport == "tcp":
            uri += ";transport=tcp"
        return uri

    def contact_uri(self):
        host = self.endpoint.sent_by_host()
        user = self.settings.get("username") or "door"
        scheme = "sips" if self.settings["transport"] == "tls" else "sip"
        uri = "%s:%s@%s:%d" % (scheme, user, host, self.endpoint.port)
        if self.settings["transport"] == "tcp":
            uri += ";transport=tcp"
        return uri

    def from_header(self, tag):
        name = self.settings.get("display_name") or ""
        # A quoted-string (RFC 3261 §25.1): '"' and '\\' go as quoted-pairs.
        display = '"%s" ' % name.replace("\\", "\\\\").replace('"', '\\"') if name else ""
        if self.registrar is not None:
            return "%s<%s>;tag=%s" % (display, self.aor(), tag)
        host = self.endpoint.sent_by_host()
        return "%s<sip:%s@%s>;tag=%s" % (display, self.settings.get("username") or "door",
                                         host, tag)

    # -- routing and trust -----------------------------------------------------------------
    def route_for(self, target_peer):
        """The next hop for a request outside a dialog: the registrar when one is configured."""
        return self.registrar if self.registrar is not None else target_peer

    def from_registrar(self, source):
        """Did this come over the registration's flow / from the registrar's address?"""
        registrar = self.registrar
        return registrar is not None and source.transport == registrar.transport and \
            source.host == registrar.host and (source.reliable or source.port == registrar.port)

    # -- sans-I/O surface ------------------------------------------------------------------
    def start(self, now):
        if self.registration is not None:
            self.registration.start(now)
            self._flush_registration(now)

    def stop(self, now):
        if self.registration is not None:
            self.registration.stop(now)
            self._flush_registration(now)

    def receive(self, data, source, now):
        self.endpoint.receive(data, source, now)
        self._dispatch(now)

    def flow_failed(self, peer, now):
        self.endpoint.flow_failed(peer, now)
        if self.registration is not None and self.registrar is not None and \
                peer.transport == self.registrar.transport and peer.host == self.registrar.host \
                and peer.port == self.registrar.port:
            self.registration.flow_failed(now)
        self._dispatch(now)

    def handle_timer(self, now):
        self.endpoint.handle_timer(now)
        if self.registration is not None:
            self.registration.handle_timer(now)
        if self.request_handler is not None:
            self.request_handler.handle_timer(now)
        self._dispatch(now)

    def get_timer(self):
        timers = [self.endpoint.get_timer()]
        if self.registration is not None:
            timers.append(self.registration.get_timer())
        if self.request_handler is not None:
            timers.append(self.request_handler.get_timer())
        timers = [t for t in timers if t is not None]
        return min(timers) if timers else None

    def datagrams_to_send(self):
        return self.endpoint.datagrams_to_send()

    def next_event(self):
        """UA events first, then the call layer's."""
        if self._events:
            return self._events.pop(0)
        if self.request_handler is not None:
            return self.request_handler.next_event()
        return None

    def send_request(self, request, dest, now, context):
        return self.endpoint.send_request(request, dest, now, context=context)

    def awaiting_responses(self):
        """Is a request we sent (an unregister, a BYE, a CANCEL) still waiting for its final
        response? The station waits for these, bounded, before it closes its sockets."""
        return self.endpoint.awaiting_final_responses()

    def status(self):
        if self.registration is None:
            return {"state": "disabled", "error": None, "next_refresh": None}
        r = self.registration
        return {"state": r.state, "error": r.error, "next_refresh": r.next_refresh}

    # -- internals -------------------------------------------------------------------------
    def _flush_registration(self, now):
        for request in self.registration.requests_to_send():
            self.endpoint.send_request(request, self.registrar, now,
                                       context=self._registration_context)
        while True:
            event = self.registration.next_event()
            if event is None:
                break
            self._events.append(event)

    def _dispatch(self, now):
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

    def _on_request(self, event, now):
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

    def _answer(self, event, status, now, capabilities=False):
        response = event.request.make_response(status)
        if status >= 200 and status != 100 and "tag=" not in (response.headers.get("To") or ""):
            response.headers.set("To", response.headers.get("To") + ";tag=" +
                                 self.endpoint.new_tag())
        if capabilities:
            response.headers.set("Allow", ALLOW)
            response.headers.set("Accept", ACCEPT)
            response.headers.set("Supported", SUPPORTED)
        self.endpoint.send_response(event.transaction, response, now)


def new_request(method, uri, from_value, to_value, call_id, cseq, contact=None):
    """A request outside a dialog with the headers §8.1.1 requires (Via comes later)."""
    request = Request(method, uri)
    request.headers.set("From", from_value)
    request.headers.set("To", to_value)
    request.headers.set("Call-ID", call_id)
    request.headers.set("CSeq", "%d %s" % (cseq, method))
    if contact:
        request.headers.set("Contact", "<%s>" % contact)
    return request
