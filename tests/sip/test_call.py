"""The INVITE session layer (firmware/sip/call.py) driven end to end without I/O.

The door station is a real `UserAgent` + `CallManager`; the phones it talks to are scripted peers
that parse what reaches them with `message.parse` and answer with literal SIP text. A `Network`
moves datagrams between them by (host, port) and a fake clock jumps from one timer to the next.
"""

from firmware.session.routing import next_hop
from firmware.sip import digest
from firmware.sip.call import (
    AnswerReceived,
    CallEnded,
    CallEstablished,
    CallManager,
    CallRinging,
    IncomingCall,
    InfoReceived,
    OfferReceived,
    RedirectRefused,
)
from firmware.sip.endpoint import Peer
from firmware.sip.message import CSeq, NameAddress, Via, parse
from firmware.sip.transaction import T1, T2
from firmware.sip.useragent import UserAgent

HOST = "127.0.0.1"
DOOR = (HOST, 5060)
FLAT1 = (HOST, 5062)
FLAT2 = (HOST, 5064)
PROXY = (HOST, 5070)
OFFER = b"v=0\r\no=door 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
        b"m=audio 4000 RTP/AVP 0\r\n"
ANSWER = b"v=0\r\no=flat 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" \
         b"m=audio 5000 RTP/AVP 0\r\n"
MAX_STEPS = 10000


# -- the in-memory network and its nodes -----------------------------------------------------
class Network:
    """Delivers datagrams by (host, port) and runs a fake clock from timer to timer. `wire`
    records every datagram as (time, source address, destination address, parsed message)."""

    def __init__(self):
        self.now = 0.0
        self.nodes = {}
        self.wire = []
        self.drop = None  # predicate(message, source, destination): lose the datagram

    def attach(self, node):
        self.nodes[node.address] = node
        return node

    def deliver(self):
        for _ in range(MAX_STEPS):
            moved = False
            for address, node in list(self.nodes.items()):
                for data, peer in node.datagrams_to_send():
                    moved = True
                    destination = (peer.host, peer.port)
                    # a keep-alive (a bare CRLF pair) goes on the wire as its bytes
                    message = parse(data) if data.strip(b"\r\n") else data
                    self.wire.append((self.now, address, destination, message))
                    if self.drop is not None and self.drop(message, address, destination):
                        continue
                    target = self.nodes.get(destination)
                    if target is not None:
                        target.receive(data, Peer("udp", address[0], address[1]), self.now)
            if not moved:
                return
        raise AssertionError("the network never went quiet")

    def run(self, seconds=0.0):
        """Deliver everything, then fire timers due within `seconds` in time order."""
        deadline = self.now + seconds
        self.deliver()
        for _ in range(MAX_STEPS):
            due = [t for t in (node.get_timer() for node in self.nodes.values())
                   if t is not None]
            if not due or min(due) > deadline:
                self.now = deadline
                return
            self.now = max(self.now, min(due))
            for node in list(self.nodes.values()):
                timer = node.get_timer()
                if timer is not None and timer <= self.now:
                    node.handle_timer(self.now)
            self.deliver()
        raise AssertionError("timers kept firing")

    def sent(self, source, destination, what):
        """Messages seen on the wire from `source` to `destination` matching `what` (a method
        name or a status code)."""
        return [(t, m) for t, s, d, m in self.wire
                if s == source and d == destination and _matches(m, what)]


def _matches(message, what):
    if isinstance(what, int):
        return getattr(message, "status", None) == what
    return getattr(message, "method", None) == what


class Station:
    """The door station under test: UserAgent + CallManager, with its events collected."""

    def __init__(self, net, address=DOOR, registrar=None, username="door", **manager_options):
        self.address = address
        settings = {"host": address[0], "port": address[1], "transport": "udp",
                    "username": username, "domain": "example.org", "password": "secret",
                    "display_name": "Door", "registrar": registrar}
        self.ua = UserAgent(settings)
        self.calls = CallManager(self.ua, **manager_options)
        self.net = net
        self.events = []
        net.attach(self)

    def receive(self, data, source, now):
        self.ua.receive(data, source, now)
        self._collect()

    def handle_timer(self, now):
        self.ua.handle_timer(now)
        self._collect()

    def get_timer(self):
        return self.ua.get_timer()

    def datagrams_to_send(self):
        return self.ua.datagrams_to_send()

    def _collect(self):
        while True:
            event = self.ua.next_event()
            if event is None:
                return
            self.events.append(event)

    def call(self, *addresses, **options):
        """Place a call to `addresses` routed as the runtime routes it (the session layer's one
        next-hop function: the registrar, when one is configured, else the address itself)."""
        targets = [("sip:flat@%s:%d" % a, next_hop("sip:flat@%s:%d" % a, self.ua.registrar,
                                                    "udp")) for a in addresses]
        sdp = options.pop("sdp", OFFER)  # None: a delayed offer (INVITE without SDP)
        call = self.calls.place_call(targets, sdp, self.net.now, **options)
        self._collect()
        return call

    def act(self, action, *args):
        """Run an application action on a call at the current time and collect its events."""
        action(*args, self.net.now)
        self._collect()

    def take(self, kind):
        """Pop the first event of class `kind` (and check there is one)."""
        for event in self.events:
            if isinstance(event, kind):
                self.events.remove(event)
                return event
        raise AssertionError("no %s among %r" % (kind.__name__, self.events))

    def has(self, kind):
        return any(isinstance(e, kind) for e in self.events)


class Phone:
    """A scripted SIP peer: records what it receives, sends what the test writes."""

    def __init__(self, net, address):
        self.address = address
        self.inbox = []
        self._outbox = []
        self.net = net
        net.attach(self)

    def receive(self, data, source, now):
        self.inbox.append(parse(data))

    def datagrams_to_send(self):
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self):
        return None

    def handle_timer(self, now):
        pass

    def send(self, data, to=DOOR):
        self._outbox.append((data, Peer("udp", to[0], to[1])))
        self.net.run()

    def take(self, what):
        """Pop the first received message matching `what` (a method name or a status)."""
        for message in self.inbox:
            if _matches(message, what):
                self.inbox.remove(message)
                return message
        raise AssertionError("%s not received; inbox %r" % (what, self.inbox))

    def count(self, what):
        return sum(1 for m in self.inbox if _matches(m, what))

    def reply(self, request, status, reason="OK", to_tag="flat-tag", extra=(), body=b""):
        self.send(response_text(request, status, reason, to_tag, extra, body))

    def request(self, method, cseq, dialog, extra=(), body=b"", branch=None):
        """A request from this phone inside `dialog` (see `Phone.dialog_of`)."""
        self.send(request_text(method, dialog["target"], self.address, branch or
                               "z9hG4bK%s%d" % (method.lower(), cseq),
                               dialog["from"], dialog["to"], dialog["call_id"], cseq, extra,
                               body))

    @staticmethod
    def dialog_of(message, phone_is_caller=False, to_tag="flat-tag"):
        """From/To/Call-ID/target for requests this phone sends within the dialog of
        `message` (the INVITE the phone answered, or the INVITE it sent)."""
        frm, to = message.headers.get("From"), message.headers.get("To")
        if phone_is_caller:
            return {"from": frm, "to": to, "call_id": message.headers.get("Call-ID"),
                    "target": str(NameAddress.parse(message.headers.get("Contact")).uri)}
        if "tag=" not in to:
            to += ";tag=" + to_tag
        return {"from": to, "to": frm, "call_id": message.headers.get("Call-ID"),
                "target": str(NameAddress.parse(message.headers.get("Contact")).uri)}


# -- SIP text helpers --------------------------------------------------------------------------
def response_text(request, status, reason="OK", to_tag="flat-tag", extra=(), body=b""):
    """A response to `request` as a phone writes it: Via/From/To/Call-ID/CSeq copied (§8.2.6),
    our To tag added, then the `extra` header lines."""
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    lines += ["Via: " + via for via in request.headers.get_all("Via")]
    to = request.headers.get("To")
    if to_tag and status > 100 and "tag=" not in to:
        to += ";tag=" + to_tag
    lines += ["From: " + request.headers.get("From"), "To: " + to,
              "Call-ID: " + request.headers.get("Call-ID"),
              "CSeq: " + request.headers.get("CSeq")]
    lines += list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def request_text(method, uri, source, branch, frm, to, call_id, cseq, extra=(), body=b""):
    lines = ["%s %s SIP/2.0" % (method, uri),
             "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (source[0], source[1], branch),
             "Max-Forwards: 70", "From: " + frm, "To: " + to, "Call-ID: " + call_id,
             "CSeq: %d %s" % (cseq, method)]
    lines += list(extra)
    if body and not any(line.lower().startswith("content-type") for line in extra):
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def contact(address, user="flat"):
    return "Contact: <sip:%s@%s:%d>" % (user, address[0], address[1])


def incoming_invite(phone, call_id="in-1@flat", cseq=1, extra=(), body=ANSWER,
                    branch="z9hG4bKinv1"):
    """The phone calls the door: an INVITE with an offer (ANSWER is the phone's SDP)."""
    phone.send(request_text(
        "INVITE", "sip:door@%s:%d" % DOOR, phone.address, branch,
        "<sip:flat@%s:%d>;tag=caller-tag" % phone.address, "<sip:door@%s:%d>" % DOOR,
        call_id, cseq, (contact(phone.address),) + tuple(extra), body))


def to_tag(message):
    return NameAddress.parse(message.headers.get("To")).tag


def cseq(message):
    return CSeq.parse(message.headers.get("CSeq"))


# -- UAC: the door calls a flat ------------------------------------------------------------
def ringing_call(net, door, phone, to_tag_="flat-tag", extra=()):
    """Door → phone INVITE, answered 100 and 180; returns (call, INVITE as received)."""
    call = door.call(phone.address)
    net.run()
    invite = phone.take("INVITE")
    phone.reply(invite, 100, "Trying", to_tag=None)
    phone.reply(invite, 180, "Ringing", to_tag=to_tag_, extra=(contact(phone.address),) +
                tuple(extra))
    return call, invite


def answered_call(net, door, phone, extra=()):
    call, invite = ringing_call(net, door, phone)
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),) + tuple(extra), body=ANSWER)
    return call, invite


def test_uac_invite_ringing_answer_and_ack():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = ringing_call(net, door, phone)
    assert invite.body == OFFER
    assert door.take(CallRinging).call is call
    assert call.state == "ringing"
    phone.reply(invite, 200, "OK", body=ANSWER, extra=(
        "Contact: <sip:flat@127.0.0.1:5062;ob>",
        "Record-Route: <sip:p2.example.org;lr>",
        "Record-Route: <sip:p1.example.org;lr>"))
    established = door.take(CallEstablished)
    assert established.call is call and established.sdp == ANSWER
    assert call.state == "active"
    ack = phone.take("ACK")
    assert cseq(ack).seq == cseq(invite).seq and cseq(ack).method == "ACK"
    assert str(ack.uri) == "sip:flat@127.0.0.1:5062;ob"  # the 200's Contact (§13.2.2.4)
    assert ack.headers.get_all("Route") == ["<sip:p1.example.org;lr>",
                                            "<sip:p2.example.org;lr>"]  # reversed (§12.1.2)
    assert to_tag(ack) == "flat-tag"
    assert Via.parse(ack.headers.get("Via")).branch != Via.parse(invite.headers.get("Via")).branch


def test_uac_retransmitted_200_is_acked_again_and_keeps_the_call():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone)
    phone.take("ACK")
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=ANSWER)
    assert phone.take("ACK")
    assert phone.count("BYE") == 0
    assert call.state == "active"


def test_uac_200_retransmitted_after_the_call_ended_is_acked_again():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone)
    phone.take("ACK")
    door.act(call.hangup)
    net.run()
    phone.reply(phone.take("BYE"), 200)
    net.run(40)  # past Timer M: the INVITE transaction is gone (RFC 6026 §8.4)
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=ANSWER)
    assert to_tag(phone.take("ACK")) == "flat-tag"  # §13.2.2.4: the lost ACK is sent again
    assert phone.count("BYE") == 0  # the same dialog: nothing new to end


def test_uac_local_hangup_sends_bye_in_the_dialog():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone)
    door.act(call.hangup)
    net.run()
    bye = phone.take("BYE")
    assert cseq(bye).seq == cseq(invite).seq + 1  # the next local CSeq (§12.2.1.1)
    assert to_tag(bye) == "flat-tag" and bye.headers.get("Call-ID") == invite.headers.get(
        "Call-ID")
    phone.reply(bye, 200)
    ended = door.take(CallEnded)
    assert ended.reason == "local hangup"
    assert door.calls.calls == []


def test_uac_remote_bye_is_answered_200():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone)
    phone.take("ACK")
    phone.request("BYE", 1, Phone.dialog_of(invite))
    ok = phone.take(200)
    assert cseq(ok).method == "BYE"
    assert door.take(CallEnded).reason == "remote hangup"
    assert call.state == "ended"


def test_uac_cancel_after_ringing_then_487():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = ringing_call(net, door, phone)
    door.act(call.hangup)
    net.run()
    cancel = phone.take("CANCEL")
    assert cseq(cancel).seq == cseq(invite).seq and cseq(cancel).method == "CANCEL"
    assert Via.parse(cancel.headers.get("Via")).branch == \
        Via.parse(invite.headers.get("Via")).branch  # §9.1
    assert str(cancel.uri) == str(invite.uri)
    phone.reply(cancel, 200)
    phone.reply(invite, 487, "Request Terminated")
    assert phone.take("ACK")  # the transaction ACKs the 487 (§17.1.1.3)
    assert door.take(CallEnded).reason == "local hangup"
    assert not door.has(CallEnded)


def test_uac_cancel_before_any_provisional_waits_for_one():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call = door.call(phone.address)
    net.run()
    invite = phone.take("INVITE")
    door.act(call.hangup)
    net.run(0.1)
    assert phone.count("CANCEL") == 0  # §9.1: not before a provisional response
    phone.reply(invite, 100, "Trying", to_tag=None)
    assert phone.count("CANCEL") == 0  # 100 is hop-by-hop; still no CANCEL
    phone.reply(invite, 180, "Ringing")
    assert phone.take("CANCEL")


def test_uac_200_racing_our_cancel_is_acked_then_ended_with_bye():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = ringing_call(net, door, phone)
    door.act(call.hangup)
    net.run()
    cancel = phone.take("CANCEL")
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=ANSWER)
    phone.reply(cancel, 200)  # too late to cancel: the INVITE was answered (§9.2)
    ack = phone.take("ACK")
    bye = phone.take("BYE")
    assert to_tag(ack) == to_tag(bye) == "flat-tag"
    assert cseq(bye).seq > cseq(invite).seq
    assert door.take(CallEnded).reason == "local hangup"
    assert not door.has(CallEstablished)


def test_uac_busy_ends_the_call():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = ringing_call(net, door, phone)
    phone.reply(invite, 486, "Busy Here")
    assert phone.take("ACK")
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("busy", 486)
    assert door.calls.calls == []


PREMIUM = "sip:0900123456@127.0.0.1:5064"  # what a rogue 3xx points at (toll fraud, issue 12)


def _redirected(door, phone, contact_uri, also=(), **call_options):
    """The door calls `phone` (and the `also` addresses), which answers 302 with `contact_uri`;
    returns the INVITE."""
    door.call(phone.address, *also, **call_options)
    door.net.run()
    invite = phone.take("INVITE")
    phone.reply(invite, 302, "Moved Temporarily", extra=("Contact: <%s>" % contact_uri,))
    assert phone.take("ACK")
    return invite


def test_uac_redirect_is_not_followed_by_default():
    net = Network()
    door, phone, premium = Station(net), Phone(net, FLAT1), Phone(net, FLAT2)
    _redirected(door, phone, PREMIUM)
    assert premium.inbox == [] and not net.sent(DOOR, FLAT2, "INVITE")
    refused = door.take(RedirectRefused)
    assert (refused.target, refused.uri, refused.reason, refused.status) == (
        "sip:flat@127.0.0.1:5062", PREMIUM, "redirects are not followed", 302)
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("failed", 302)
    assert door.calls.calls == []


def test_uac_redirect_to_an_unconfigured_uri_is_refused_even_when_following():
    net = Network()
    door, phone, premium = Station(net, follow_redirects=True), Phone(net, FLAT1), \
        Phone(net, FLAT2)
    _redirected(door, phone, PREMIUM + ";transport=udp?Subject=%0D%0Ax" + "9" * 300)
    assert premium.inbox == []
    refused = door.take(RedirectRefused)
    assert refused.reason == "not a configured target"
    assert len(refused.uri) <= 120 and refused.uri.startswith(PREMIUM)
    assert "\r" not in refused.uri and "\n" not in refused.uri
    assert door.take(CallEnded).status == 302


def test_uac_redirect_is_followed_to_a_configured_target():
    net = Network()
    door, phone, other = Station(net, follow_redirects=True), Phone(net, FLAT1), \
        Phone(net, FLAT2)
    # Both flats are the button's targets (sequential: only the first rings at first).
    invite = _redirected(door, phone, "sip:flat@127.0.0.1:5064", also=(FLAT2,),
                         sequential=True, target_timeout=20)
    second = other.take("INVITE")
    assert str(second.uri) == "sip:flat@127.0.0.1:5064"
    assert cseq(second).seq == cseq(invite).seq + 1
    assert not door.has(RedirectRefused)
    other.reply(second, 200, extra=(contact(other.address),), body=ANSWER)
    established = door.take(CallEstablished)
    assert established.call.peer == "sip:flat@127.0.0.1:5064"
    assert other.take("ACK")


def test_uac_redirect_through_the_registrar_never_answers_its_challenge():
    """Registered: every INVITE goes to the registrar, which may challenge it (407). A 3xx to
    an unconfigured URI makes no request that could carry our credentials; and a request to an
    unconfigured URI (however it came about) gets no digest answer."""
    net = Network()
    door = Station(net, registrar=Peer("udp", *PROXY), follow_redirects=True)
    proxy = Phone(net, PROXY)
    call = door.call(FLAT1)
    net.run()
    invite = proxy.take("INVITE")
    proxy.reply(invite, 302, "Moved Temporarily", extra=("Contact: <%s>" % PREMIUM,))
    assert proxy.take("ACK")
    assert proxy.count("INVITE") == 0
    assert door.take(RedirectRefused).reason == "not a configured target"
    assert door.take(CallEnded).status == 302

    # The guard itself: an INVITE to an unconfigured URI that the registrar challenges.
    call = door.call(FLAT1)
    net.run()
    proxy.take("INVITE")
    branch = call.branches[0]
    branch.cseq += 1
    door.act(lambda now: branch.send_invite(now, uri=PREMIUM))
    net.run()
    rogue = proxy.take("INVITE")
    assert str(rogue.uri) == PREMIUM
    proxy.reply(rogue, 407, "Proxy Authentication Required", extra=(
        'Proxy-Authenticate: Digest realm="example.org", nonce="n1", qop="auth"',))
    assert proxy.take("ACK")
    assert proxy.count("INVITE") == 0
    assert not [m for _, m in net.sent(DOOR, PROXY, "INVITE")
                if "Proxy-Authorization" in m.headers or "Authorization" in m.headers]


def test_uac_challenge_for_a_configured_target_is_still_answered_after_a_redirect():
    net = Network()
    door = Station(net, registrar=Peer("udp", *PROXY), follow_redirects=True)
    proxy = Phone(net, PROXY)
    door.call(FLAT1, FLAT2, sequential=True, target_timeout=20)
    net.run()
    invite = proxy.take("INVITE")
    proxy.reply(invite, 302, "Moved Temporarily", extra=("Contact: <sip:flat@127.0.0.1:5064>",))
    redirected = proxy.take("INVITE")
    assert str(redirected.uri) == "sip:flat@127.0.0.1:5064"
    proxy.reply(redirected, 407, "Proxy Authentication Required", extra=(
        'Proxy-Authenticate: Digest realm="example.org", nonce="n2", qop="auth"',))
    retry = proxy.take("INVITE")
    assert str(retry.uri) == "sip:flat@127.0.0.1:5064"
    assert "Proxy-Authorization" in retry.headers


def _challenge_then_retry(status, challenge_header, credentials_header):
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call = door.call(phone.address)
    net.run()
    invite = phone.take("INVITE")
    phone.reply(invite, status, "Unauthorized", extra=(
        '%s: Digest realm="example.org", nonce="abc123", qop="auth"' % challenge_header,))
    assert phone.take("ACK")
    retry = phone.take("INVITE")
    assert cseq(retry).seq == cseq(invite).seq + 1
    assert retry.headers.get("Call-ID") == invite.headers.get("Call-ID")
    value = retry.headers.get(credentials_header)
    assert value is not None, retry.headers
    fields = dict(part.strip().split("=", 1) for part in value[len("Digest "):].split(","))
    fields = {name: text.strip('"') for name, text in fields.items()}
    expected = digest.compute_response(
        "MD5", "door", "example.org", "secret", "INVITE", fields["uri"], "abc123",
        fields["nc"], fields["cnonce"], "auth")
    assert fields["response"] == expected
    assert fields["uri"] == str(invite.uri) and fields["username"] == "door"
    return net, door, phone, call, retry


def test_uac_401_on_invite_is_answered_with_authorization():
    net, door, phone, call, retry = _challenge_then_retry(401, "WWW-Authenticate",
                                                          "Authorization")
    phone.reply(retry, 200, extra=(contact(phone.address),), body=ANSWER)
    assert door.take(CallEstablished)
    ack = phone.take("ACK")
    assert cseq(ack).seq == cseq(retry).seq


def test_uac_407_on_invite_is_answered_with_proxy_authorization():
    _challenge_then_retry(407, "Proxy-Authenticate", "Proxy-Authorization")


def test_uac_second_non_stale_challenge_fails_the_call():
    net, door, phone, call, retry = _challenge_then_retry(401, "WWW-Authenticate",
                                                          "Authorization")
    phone.reply(retry, 401, "Unauthorized", extra=(
        'WWW-Authenticate: Digest realm="example.org", nonce="other", qop="auth"',))
    assert phone.count("INVITE") == 0
    ended = door.take(CallEnded)
    assert ended.status == 401 and ended.reason == "failed"


def test_uac_401_on_bye_is_answered_once():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone)
    door.act(call.hangup)
    net.run()
    bye = phone.take("BYE")
    phone.reply(bye, 401, "Unauthorized", extra=(
        'WWW-Authenticate: Digest realm="example.org", nonce="byenonce", qop="auth"',))
    again = phone.take("BYE")
    assert cseq(again).seq == cseq(bye).seq + 1
    assert 'nonce="byenonce"' in again.headers.get("Authorization")
    assert to_tag(again) == "flat-tag"
    phone.reply(again, 401, "Unauthorized", extra=(
        'WWW-Authenticate: Digest realm="example.org", nonce="n2", qop="auth"',))
    assert phone.count("BYE") == 0


def test_uac_ring_timeout_cancels():
    net = Network()
    door, phone = Station(net, ring_timeout=20.0), Phone(net, FLAT1)
    call, invite = ringing_call(net, door, phone)
    net.run(19.0)
    assert phone.count("CANCEL") == 0
    net.run(2.0)
    phone.take("CANCEL")
    ended = door.take(CallEnded)
    assert ended.reason == "no answer"


def test_uac_max_duration_sends_bye():
    net = Network()
    door, phone = Station(net, max_duration=60.0), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone)
    net.run(59.0)
    assert phone.count("BYE") == 0
    net.run(2.0)
    bye = phone.take("BYE")
    phone.reply(bye, 200)
    assert door.take(CallEnded).reason == "max duration"


def test_uac_session_timer_refresher_uac_reinvites_at_half_time():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone, extra=(
        "Session-Expires: 90;refresher=uac", "Require: timer"))
    assert "timer" in invite.headers.get("Supported")
    phone.take("ACK")
    answered_at = net.now
    net.run(44.0)
    assert phone.count("INVITE") == 0
    net.run(1.2)  # answer the refresh before Timer A retransmits it
    refresh = phone.take("INVITE")
    sent_at = [t for t, m in net.sent(DOOR, FLAT1, "INVITE") if t > answered_at][0]
    assert sent_at == answered_at + 45.0
    assert cseq(refresh).seq == cseq(invite).seq + 1 and to_tag(refresh) == "flat-tag"
    assert refresh.headers.get("Session-Expires").startswith("90;refresher=uac")
    phone.reply(refresh, 200, extra=(contact(phone.address), "Session-Expires: 90;refresher=uac"),
                body=ANSWER)
    ack = phone.take("ACK")
    assert cseq(ack).seq == cseq(refresh).seq
    assert door.take(AnswerReceived).sdp == ANSWER
    net.run(44.0)
    assert phone.count("INVITE") == 0 and phone.count("BYE") == 0
    net.run(2.0)
    assert phone.take("INVITE")  # the next refresh, half-way again


def test_uac_session_timer_refresher_uas_silence_ends_with_bye():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone, extra=(
        "Session-Expires: 90;refresher=uas", "Require: timer"))
    phone.take("ACK")
    net.run(59.0)
    assert phone.count("BYE") == 0 and phone.count("INVITE") == 0
    net.run(2.0)  # RFC 4028 §10: BYE at 90 - min(32, 90 / 3) = 60 s
    assert phone.take("BYE")
    assert door.take(CallEnded).reason == "session expired"


def test_uac_session_timer_refreshed_by_the_peer_keeps_the_call():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone, extra=(
        "Session-Expires: 90;refresher=uas", "Require: timer"))
    phone.take("ACK")
    dialog = Phone.dialog_of(invite)
    for number, delay in ((1, 40.0), (2, 40.0)):
        net.run(delay)
        phone.request("INVITE", number, dialog, extra=(
            contact(phone.address), "Session-Expires: 90;refresher=uac", "Supported: timer"))
        ok = phone.take(200)
        assert ok.headers.get("Session-Expires").startswith("90")
        assert "refresher=uac" in ok.headers.get("Session-Expires")
        phone.request("ACK", number, dialog)
    net.run(50.0)
    assert phone.count("BYE") == 0
    assert call.state == "active"


def test_uac_200_without_provisional_then_retransmitted_is_not_ended():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    door.call(phone.address)
    net.run()
    invite = phone.take("INVITE")
    for _ in range(2):
        phone.reply(invite, 200, extra=(contact(phone.address),), body=ANSWER)
        assert phone.take("ACK")
    assert phone.count("BYE") == 0
    assert len([e for e in door.events if isinstance(e, CallEstablished)]) == 1


# -- ring groups -----------------------------------------------------------------------------
def test_parallel_ring_group_second_answers_first_is_cancelled():
    net = Network()
    door, flat1, flat2 = Station(net), Phone(net, FLAT1), Phone(net, FLAT2)
    call = door.call(FLAT1, FLAT2)
    net.run()
    invite1, invite2 = flat1.take("INVITE"), flat2.take("INVITE")
    assert invite1.headers.get("Call-ID") != invite2.headers.get("Call-ID")
    flat1.reply(invite1, 180, "Ringing", to_tag="t1", extra=(contact(FLAT1),))
    flat2.reply(invite2, 200, to_tag="t2", extra=(contact(FLAT2),), body=ANSWER)
    assert flat2.take("ACK")
    cancel = flat1.take("CANCEL")
    assert cseq(cancel).seq == cseq(invite1).seq
    flat1.reply(cancel, 200, to_tag="t1")
    flat1.reply(invite1, 487, "Request Terminated", to_tag="t1")
    assert door.take(CallEstablished).call is call
    assert call.peer == "sip:flat@127.0.0.1:5064"
    assert not door.has(CallEnded)
    door.act(call.hangup)
    net.run()
    assert flat2.take("BYE") and flat1.count("BYE") == 0


def test_parallel_ring_group_late_200_is_acked_and_byed():
    net = Network()
    door, flat1, flat2 = Station(net), Phone(net, FLAT1), Phone(net, FLAT2)
    call = door.call(FLAT1, FLAT2)
    net.run()
    invite1, invite2 = flat1.take("INVITE"), flat2.take("INVITE")
    flat1.reply(invite1, 180, "Ringing", to_tag="t1", extra=(contact(FLAT1),))
    flat2.reply(invite2, 200, to_tag="t2", extra=(contact(FLAT2),), body=ANSWER)
    flat1.reply(invite1, 200, to_tag="t1", extra=(contact(FLAT1),), body=ANSWER)  # the race
    ack, bye = flat1.take("ACK"), flat1.take("BYE")
    assert to_tag(ack) == to_tag(bye) == "t1"
    assert call.state == "active" and flat2.count("BYE") == 0
    flat1.reply(bye, 200, to_tag=None)
    assert len([e for e in door.events if isinstance(e, CallEstablished)]) == 1


def test_the_call_layer_sends_an_invite_to_the_next_hop_it_is_given():
    """One next-hop function: the session layer's `next_hop` decides (the registrar while one is
    configured); the call layer does not decide again, so a hop it is given is where the INVITE
    goes, registered or not (and a followed redirect goes to that target's given hop)."""
    net = Network()
    door = Station(net, registrar=Peer("udp", *PROXY), follow_redirects=True)
    proxy, flat1, flat2 = Phone(net, PROXY), Phone(net, FLAT1), Phone(net, FLAT2)
    targets = [("sip:flat@%s:%d" % a, Peer("udp", *a)) for a in (FLAT1, FLAT2)]
    door.calls.place_call(targets, OFFER, net.now, sequential=True, target_timeout=20)
    net.run()
    invite = flat1.take("INVITE")
    assert proxy.count("INVITE") == 0
    flat1.reply(invite, 302, "Moved", extra=("Contact: <sip:flat@%s:%d>" % FLAT2,))
    assert flat2.take("INVITE") and proxy.count("INVITE") == 0


def test_an_invite_with_no_room_for_its_transaction_fails_the_call_at_once():
    """Under a flood the transaction table is full: `send_request` returns None and the
    endpoint reports an "overload" failure as an event. The call layer does not use the missing
    transaction; the UA makes the undelivered failure due at once (get_timer), so the call ends
    now instead of ringing nobody until the ring timeout (30 s)."""
    net = Network()
    door, flat1, flat2 = Station(net), Phone(net, FLAT1), Phone(net, FLAT2)
    door.ua.endpoint.table.max_transactions = 0  # as full as a flood leaves it
    call = door.call(FLAT1, FLAT2)
    assert call is not None and call.branches[0].transaction is None
    assert door.ua.get_timer() is not None and door.ua.get_timer() <= net.now
    net.run(1.0)
    ended = door.take(CallEnded)
    assert ended.call is call and ended.status == 408 and call.state == "ended"
    assert flat1.count("INVITE") == flat2.count("INVITE") == 0
    assert door.ua.get_timer() is None  # nothing left to do


def test_one_invite_forked_by_a_proxy_into_two_early_dialogs():
    net = Network()
    door, proxy = Station(net, registrar=Peer("udp", *PROXY)), Phone(net, PROXY)
    call = door.call(FLAT1)  # registered: the INVITE goes to the registrar
    net.run()
    invite = proxy.take("INVITE")
    assert str(invite.uri) == "sip:flat@127.0.0.1:5062"
    rr = "Record-Route: <sip:127.0.0.1:5070;lr>"
    proxy.reply(invite, 180, "Ringing", to_tag="fork-a", extra=(contact(FLAT1), rr))
    proxy.reply(invite, 180, "Ringing", to_tag="fork-b", extra=(contact(FLAT2), rr))
    assert len([e for e in door.events if isinstance(e, CallRinging)]) == 2
    proxy.reply(invite, 200, to_tag="fork-b", extra=(contact(FLAT2), rr), body=ANSWER)
    ack = proxy.take("ACK")
    assert to_tag(ack) == "fork-b" and str(ack.uri) == "sip:flat@127.0.0.1:5064"
    assert ack.headers.get_all("Route") == ["<sip:127.0.0.1:5070;lr>"]
    assert door.take(CallEstablished).call is call
    door.act(call.hangup)
    net.run()
    assert to_tag(proxy.take("BYE")) == "fork-b"


def test_sequential_ringing_moves_on_after_the_per_target_timeout():
    net = Network()
    door, flat1, flat2 = Station(net), Phone(net, FLAT1), Phone(net, FLAT2)
    call = door.call(FLAT1, FLAT2, sequential=True, target_timeout=10.0)
    net.run()
    invite1 = flat1.take("INVITE")
    assert flat2.count("INVITE") == 0
    flat1.reply(invite1, 180, "Ringing", to_tag="t1", extra=(contact(FLAT1),))
    net.run(9.0)
    assert flat1.count("CANCEL") == 0 and flat2.count("INVITE") == 0
    net.run(2.0)
    cancel = flat1.take("CANCEL")
    flat1.reply(cancel, 200, to_tag="t1")
    flat1.reply(invite1, 487, "Request Terminated", to_tag="t1")
    invite2 = flat2.take("INVITE")
    assert not door.has(CallEnded)
    flat2.reply(invite2, 200, to_tag="t2", extra=(contact(FLAT2),), body=ANSWER)
    assert door.take(CallEstablished).call is call and call.peer == "sip:flat@127.0.0.1:5064"


def test_sequential_target_silent_until_timeout_is_cancelled_when_it_rings_late():
    net = Network()
    door, flat1, flat2 = Station(net), Phone(net, FLAT1), Phone(net, FLAT2)
    door.call(FLAT1, FLAT2, sequential=True, target_timeout=10.0)
    net.run(10.1)
    invite1 = flat1.take("INVITE")
    assert flat2.take("INVITE")
    flat1.reply(invite1, 180, "Ringing", to_tag="t1")
    assert flat1.take("CANCEL")  # deferred until its first 1xx (§9.1)
    flat1.reply(invite1, 200, to_tag="t1", extra=(contact(FLAT1),), body=ANSWER)
    assert flat1.take("ACK") and flat1.take("BYE")  # it lost: the race ends with BYE
    assert not door.has(CallEstablished)


def test_sequential_last_target_timing_out_ends_no_answer():
    net = Network()
    door, flat1 = Station(net), Phone(net, FLAT1)
    door.call(FLAT1, sequential=True, target_timeout=5.0)
    net.run()
    flat1.reply(flat1.take("INVITE"), 180, "Ringing")
    net.run(6.0)
    assert flat1.take("CANCEL")
    assert door.take(CallEnded).reason == "no answer"


def test_max_calls_refuses_a_second_outgoing_call():
    net = Network()
    door = Station(net)
    Phone(net, FLAT1)
    assert door.call(FLAT1) is not None
    assert door.call(FLAT1) is None


# -- UAS: a flat calls the door ----------------------------------------------------------------
def incoming(net, **options):
    door, phone = Station(net, **options), Phone(net, FLAT1)
    incoming_invite(phone)
    call = door.take(IncomingCall).call
    return door, phone, call


def answered_incoming(net):
    door, phone, call = incoming(net)
    door.act(call.answer, OFFER)
    net.run()
    ok = phone.take(200)
    return door, phone, call, ok


def test_uas_trying_at_once_then_ringing_with_tag_and_contact():
    net = Network()
    door, phone, call = incoming(net)
    trying = phone.take(100)  # sent by the transaction without waiting for the application
    assert to_tag(trying) is None
    assert call.remote_sdp == ANSWER and call.peer == "sip:flat@127.0.0.1:5062"
    door.act(call.ring)
    net.run()
    ringing = phone.take(180)
    assert to_tag(ringing) == call.dialog.local_tag
    assert NameAddress.parse(ringing.headers.get("Contact")).uri.port == 5060


def test_uas_200_is_retransmitted_with_doubling_intervals_until_the_ack():
    net = Network()
    door, phone, call = incoming(net)
    door.act(call.answer, OFFER)
    net.run(12.0)
    times = [t for t, _ in net.sent(DOOR, FLAT1, 200)]
    assert times == [0.0, T1, 3 * T1, 7 * T1, 15 * T1, 15 * T1 + T2]  # the interval caps at T2
    ok = phone.take(200)
    assert ok.body == OFFER and to_tag(ok) == call.dialog.local_tag
    assert call.state == "answering" and not door.has(CallEstablished)
    phone.request("ACK", 1, Phone.dialog_of(ok, phone_is_caller=True))
    assert door.take(CallEstablished).sdp == ANSWER
    assert call.state == "active"
    before = len(net.sent(DOOR, FLAT1, 200))
    net.run(10.0)
    assert len(net.sent(DOOR, FLAT1, 200)) == before


def test_uas_no_ack_within_64_t1_ends_with_bye():
    net = Network()
    door, phone, call = incoming(net)
    door.act(call.answer, OFFER)
    net.run(64 * T1 - 0.1)
    assert phone.count("BYE") == 0
    net.run(0.2)
    bye = phone.take("BYE")
    assert to_tag(bye) == "caller-tag" and str(bye.uri) == "sip:flat@127.0.0.1:5062"
    ended = door.take(CallEnded)
    assert ended.reason == "timeout"


def test_uas_cancel_before_answer():
    net = Network()
    door, phone, call = incoming(net)
    door.act(call.ring)
    net.run()
    phone.send(request_text(
        "CANCEL", "sip:door@127.0.0.1:5060", FLAT1, "z9hG4bKinv1",
        "<sip:flat@127.0.0.1:5062>;tag=caller-tag", "<sip:door@127.0.0.1:5060>", "in-1@flat",
        1))
    ok = [m for m in phone.inbox if getattr(m, "status", 0) == 200][0]
    assert cseq(ok).method == "CANCEL"
    assert to_tag(ok) == call.dialog.local_tag  # §9.2: the same tag as the INVITE's responses
    terminated = phone.take(487)
    assert cseq(terminated).method == "INVITE"
    assert to_tag(terminated) == call.dialog.local_tag
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("cancelled", 487)


def test_uas_cancel_that_matches_no_invite_transaction_gets_481():
    net = Network()
    door, phone, call = incoming(net)
    door.act(call.ring)
    net.run()
    phone.send(request_text(  # the right Call-ID, another branch: not this INVITE's CANCEL
        "CANCEL", "sip:door@127.0.0.1:5060", FLAT1, "z9hG4bKother",
        "<sip:flat@127.0.0.1:5062>;tag=caller-tag", "<sip:door@127.0.0.1:5060>", "in-1@flat",
        1))
    assert cseq(phone.take(481)).method == "CANCEL"  # §9.2
    assert call.state == "ringing" and phone.count(487) == 0


def test_uas_remote_bye():
    net = Network()
    door, phone, call, ok = answered_incoming(net)
    dialog = Phone.dialog_of(ok, phone_is_caller=True)
    phone.request("ACK", 1, dialog)
    phone.request("BYE", 2, dialog)
    bye_ok = phone.take(200)
    assert cseq(bye_ok).method == "BYE"
    assert door.take(CallEnded).reason == "remote hangup"


def test_uas_reinvite_with_an_offer_and_a_second_one_while_it_is_pending():
    net = Network()
    door, phone, call, ok = answered_incoming(net)
    dialog = Phone.dialog_of(ok, phone_is_caller=True)
    phone.request("ACK", 1, dialog)
    hold = ANSWER + b"a=sendonly\r\n"
    phone.request("INVITE", 2, dialog, extra=(contact(FLAT1),), body=hold)
    offer = door.take(OfferReceived)
    assert offer.sdp == hold and call.remote_sdp == hold
    phone.request("INVITE", 3, dialog, extra=(contact(FLAT1),), body=ANSWER)
    assert cseq(phone.take(491)).seq == 3
    door.act(call.accept_offer, OFFER + b"a=recvonly\r\n")
    net.run()
    answer = phone.take(200)
    assert cseq(answer).seq == 2 and answer.body.endswith(b"a=recvonly\r\n")
    phone.request("ACK", 2, dialog)
    net.run(40.0)
    assert phone.count(200) == 0  # the ACK stopped the retransmissions
    assert call.state == "active"


def test_uas_info_dtmf_relay():
    net = Network()
    door, phone, call, ok = answered_incoming(net)
    dialog = Phone.dialog_of(ok, phone_is_caller=True)
    phone.request("ACK", 1, dialog)
    phone.request("INFO", 2, dialog, extra=("Content-Type: application/dtmf-relay",),
                  body=b"Signal=5\r\nDuration=160\r\n")
    assert cseq(phone.take(200)).method == "INFO"
    info = door.take(InfoReceived)
    assert info.content_type == "application/dtmf-relay"
    assert info.body == b"Signal=5\r\nDuration=160\r\n"


def test_uas_out_of_order_cseq_gets_500():
    net = Network()
    door, phone, call, ok = answered_incoming(net)
    dialog = Phone.dialog_of(ok, phone_is_caller=True)
    phone.request("ACK", 1, dialog)
    phone.request("INFO", 5, dialog, extra=("Content-Type: application/dtmf-relay",),
                  body=b"Signal=1\r\n")
    assert phone.take(200)
    phone.request("INFO", 4, dialog, extra=("Content-Type: application/dtmf-relay",),
                  body=b"Signal=2\r\n")
    assert phone.take(500)
    assert len([e for e in door.events if isinstance(e, InfoReceived)]) == 1


def test_uas_request_for_an_unknown_dialog_gets_481():
    net = Network()
    door, phone, call, ok = answered_incoming(net)
    dialog = Phone.dialog_of(ok, phone_is_caller=True)
    dialog["to"] = "<sip:door@127.0.0.1:5060>;tag=not-ours"
    phone.request("BYE", 2, dialog)
    assert phone.take(481)
    assert call.state != "ended"


def test_uas_max_calls_answers_busy():
    net = Network()
    door, phone, call = incoming(net)
    incoming_invite(phone, call_id="in-2@flat", branch="z9hG4bKinv2")
    busy = phone.take(486)
    assert busy.headers.get("Call-ID") == "in-2@flat" and to_tag(busy)
    assert not door.has(IncomingCall)


def test_uac_sends_answer_mode_only_when_asked():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    door.call(phone.address, answer_mode="auto")
    net.run()
    assert phone.take("INVITE").headers.get("Answer-Mode") == "auto"  # RFC 5373 §4
    net2 = Network()
    door2, phone2 = Station(net2), Phone(net2, FLAT1)
    door2.call(phone2.address)
    net2.run()
    assert "Answer-Mode" not in phone2.take("INVITE").headers


def test_uas_answer_mode_is_read():
    net = Network()
    door, phone = Station(net, max_calls=3), Phone(net, FLAT1)
    incoming_invite(phone, extra=("Answer-Mode: Auto",))
    assert door.take(IncomingCall).call.requested_answer_mode == "auto"
    incoming_invite(phone, call_id="in-2@flat", branch="z9hG4bKinv2",
                    extra=("Answer-Mode: Manual", "Priv-Answer-Mode: Auto;require"))
    assert door.take(IncomingCall).call.requested_answer_mode == "auto"
    incoming_invite(phone, call_id="in-3@flat", branch="z9hG4bKinv3")
    assert door.take(IncomingCall).call.requested_answer_mode is None


def test_uas_trust_comes_from_the_registrar_address_only():
    net = Network()
    door = Station(net, registrar=Peer("udp", *PROXY), max_calls=2)
    proxy, stranger = Phone(net, PROXY), Phone(net, FLAT1)
    incoming_invite(proxy)
    assert door.take(IncomingCall).call.trusted is True
    incoming_invite(stranger, call_id="in-2@flat", branch="z9hG4bKinv2")
    assert stranger.take(403)  # admission: only the registrar may call while registered
    assert not door.has(IncomingCall)


PAI = "P-Asserted-Identity: \"Concierge\" <sip:concierge@example.org>, <tel:+4930123>"


def test_uas_asserted_identity_is_the_registrars_pai_not_the_from():
    net = Network()
    door = Station(net, registrar=Peer("udp", *PROXY), max_calls=3, identity="asserted")
    proxy = Phone(net, PROXY)
    incoming_invite(proxy, extra=(PAI,))
    call = door.take(IncomingCall).call
    assert (call.peer, call.trusted) == ("sip:concierge@example.org", True)
    assert call.asserted_identity == "sip:concierge@example.org"
    # No PAI from the registrar: the From alone (set by the caller) earns no trust.
    incoming_invite(proxy, call_id="in-2@flat", branch="z9hG4bKinv2")
    call = door.take(IncomingCall).call
    assert (call.peer, call.trusted) == ("sip:flat@127.0.0.1:5070", False)
    # Only a tel: URI asserted: no SIP identity to match the allow list either.
    incoming_invite(proxy, call_id="in-3@flat", branch="z9hG4bKinv3",
                    extra=("P-Asserted-Identity: <tel:+4930123>",))
    assert door.take(IncomingCall).call.trusted is False


def test_uas_asserted_identity_star_is_no_identity_and_no_crash():
    """`P-Asserted-Identity: *` parses as a name-address without a URI (found by mypy: the
    identity reader used its URI unchecked, an AttributeError while taking the INVITE, so the
    call never reached the application)."""
    net = Network()
    door = Station(net, registrar=Peer("udp", *PROXY), identity="asserted")
    proxy = Phone(net, PROXY)
    incoming_invite(proxy, extra=("P-Asserted-Identity: *",))
    call = door.take(IncomingCall).call
    assert (call.trusted, call.asserted_identity) == (False, None)
    door.act(call.ring)
    net.run()
    assert proxy.take(180)


def test_uas_from_identity_ignores_pai_by_default():
    net = Network()
    door = Station(net, registrar=Peer("udp", *PROXY))
    proxy = Phone(net, PROXY)
    incoming_invite(proxy, extra=(PAI,))
    call = door.take(IncomingCall).call
    assert (call.peer, call.trusted, call.asserted_identity) == (
        "sip:flat@127.0.0.1:5070", True, None)


def test_uas_asserted_identity_never_comes_from_a_direct_ip_caller():
    net = Network()
    door, phone = Station(net, identity="asserted"), Phone(net, FLAT1)
    incoming_invite(phone, extra=(PAI,))
    call = door.take(IncomingCall).call
    assert (call.peer, call.trusted) == ("sip:flat@127.0.0.1:5062", False)


def test_uas_direct_ip_calls_are_untrusted():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    incoming_invite(phone)
    assert door.take(IncomingCall).call.trusted is False


def test_uas_offerless_reinvite_before_the_answer_gets_500_and_the_call_rings_on():
    """RFC 3261 §14.2: a re-INVITE in the early dialog, before our final response to the
    INVITE, gets 500 with Retry-After 0-10 s. Without an offer it used to be answered with our
    SDP, which did not exist yet (found by mypy: a 200 with body None, a TypeError in the
    endpoint and no response)."""
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    incoming_invite(phone)
    call = door.take(IncomingCall).call
    door.act(call.ring)
    net.run()
    dialog = Phone.dialog_of(phone.take(180), phone_is_caller=True)
    dialog["target"] = "sip:door@%s:%d" % DOOR
    phone.request("INVITE", 2, dialog)
    refused = phone.take(500)
    assert cseq(refused).seq == 2 and 0 <= int(refused.headers.get("Retry-After")) <= 10
    assert phone.count(200) == 0 and call.state == "ringing"
    door.act(call.answer, OFFER)
    net.run()
    assert cseq(phone.take(200)).seq == 1


def test_uas_session_timer_choice_follows_supported_timer():
    net = Network()
    door, phone = Station(net, max_calls=2), Phone(net, FLAT1)
    incoming_invite(phone, extra=("Supported: timer", "Session-Expires: 120"))
    call = door.take(IncomingCall).call
    door.act(call.answer, OFFER)
    net.run()
    ok = phone.take(200)
    assert ok.headers.get("Session-Expires") == "120;refresher=uac"  # the caller refreshes
    assert "timer" in ok.headers.get_all("Require")
    phone.request("ACK", 1, Phone.dialog_of(ok, phone_is_caller=True))
    incoming_invite(phone, call_id="in-2@flat", branch="z9hG4bKinv2",
                    extra=("Session-Expires: 120",))  # no Supported: timer
    second = door.take(IncomingCall).call
    door.act(second.answer, OFFER)
    net.run()
    ok2 = [m for m in phone.inbox if getattr(m, "status", 0) == 200][-1]
    assert ok2.headers.get("Session-Expires") == "120;refresher=uas"  # so we refresh
    phone.request("ACK", 1, Phone.dialog_of(ok2, phone_is_caller=True))
    phone.inbox.clear()
    net.run(60.5)
    refresh = phone.take("INVITE")
    assert refresh.headers.get("Call-ID") == "in-2@flat"
    assert refresh.headers.get("CSeq") == "1 INVITE"  # our first request in that dialog


def test_uac_no_response_at_all_fails_after_timer_b():
    net = Network()
    door = Station(net, ring_timeout=60.0)
    door.call(FLAT1)  # nobody listens there
    net.run(64 * T1 - 1)
    assert not door.has(CallEnded)
    net.run(2)
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("no answer", 408)
    assert len(net.sent(DOOR, FLAT1, "INVITE")) == 7  # 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5


def test_uas_local_hangup_after_the_ack_sends_bye():
    net = Network()
    door, phone, call, ok = answered_incoming(net)
    phone.request("ACK", 1, Phone.dialog_of(ok, phone_is_caller=True))
    door.act(call.hangup)
    net.run()
    bye = phone.take("BYE")
    assert NameAddress.parse(bye.headers.get("From")).tag == call.dialog.local_tag
    assert to_tag(bye) == "caller-tag"
    assert door.take(CallEnded).reason == "local hangup"


def test_uas_hangup_before_answer_rejects():
    net = Network()
    door, phone, call = incoming(net)
    door.act(call.hangup)
    net.run()
    assert phone.take(480)
    assert door.take(CallEnded).reason == "no answer"


def test_two_stations_call_each_other():
    """Both ends are the real call layer: INVITE, ring, answer, ACK, BYE."""
    net = Network()
    door, flat = Station(net), Station(net, address=FLAT1, username="flat")
    call = door.call(FLAT1)
    net.run()
    incoming_call = flat.take(IncomingCall).call
    flat.act(incoming_call.ring)
    net.run()
    assert door.take(CallRinging)
    flat.act(incoming_call.answer, ANSWER)
    net.run()
    assert door.take(CallEstablished).sdp == ANSWER
    assert flat.take(CallEstablished).sdp == OFFER
    net.run(10.0)
    assert len(net.sent(FLAT1, DOOR, 200)) == 1  # the ACK stopped the 2xx retransmissions
    door.act(call.hangup)
    net.run()
    assert door.take(CallEnded).reason == "local hangup"
    assert flat.take(CallEnded).reason == "remote hangup"
    assert door.calls.calls == [] and flat.calls.calls == []


def test_uas_hangup_before_the_ack_waits_for_it_to_send_bye():
    net = Network()
    door, phone, call, ok = answered_incoming(net)
    door.act(call.hangup)
    net.run(0.2)
    assert phone.count("BYE") == 0  # RFC 3261 §15: not before the ACK
    phone.request("ACK", 1, Phone.dialog_of(ok, phone_is_caller=True))
    assert phone.take("BYE")
    assert door.take(CallEnded).reason == "local hangup"
    assert not door.has(CallEstablished)


def test_uas_200_to_a_reinvite_is_retransmitted_until_its_ack():
    net = Network()
    door, phone, call, ok = answered_incoming(net)
    dialog = Phone.dialog_of(ok, phone_is_caller=True)
    phone.request("ACK", 1, dialog)
    phone.request("INVITE", 2, dialog, extra=(contact(FLAT1),))  # offerless: a refresh
    assert phone.take(200).body == OFFER  # answered at once with our current SDP
    net.run(2.0)
    assert phone.count(200) == 2  # at T1 and 3*T1 (§13.3.1.4)
    phone.request("ACK", 2, dialog)
    phone.inbox.clear()
    net.run(10.0)
    assert phone.count(200) == 0 and call.state == "active"


def test_losing_fork_bye_challenge_is_answered_in_that_dialog():
    net = Network()
    door, flat1, flat2 = Station(net), Phone(net, FLAT1), Phone(net, FLAT2)
    door.call(FLAT1, FLAT2)
    net.run()
    invite1, invite2 = flat1.take("INVITE"), flat2.take("INVITE")
    flat2.reply(invite2, 200, to_tag="t2", extra=(contact(FLAT2),), body=ANSWER)
    flat1.reply(invite1, 200, to_tag="t1", extra=(contact(FLAT1),), body=ANSWER)
    bye = flat1.take("BYE")
    flat1.reply(bye, 401, "Unauthorized", to_tag=None, extra=(
        'WWW-Authenticate: Digest realm="example.org", nonce="n1", qop="auth"',))
    again = flat1.take("BYE")
    assert to_tag(again) == "t1" and "Authorization" in again.headers
    assert flat2.count("BYE") == 0
