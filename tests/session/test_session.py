"""The session layer (firmware/session/) driven in memory with a fake clock, as
tests/sip/test_call.py drives the SIP call layer: a real UserAgent + CallManager +
SessionManager for the door, scripted phones, and a stand-in for the runtime that answers
OpenMedia with a port (or with "no port") and records every session event in order."""

from firmware.session import events as ev
from firmware.session.routing import is_ip_address, next_hop, route_targets
from firmware.session.session import SessionManager
from firmware.settings import MediaConfig
from firmware.sip.call import CallManager
from firmware.sip.endpoint import Peer
from firmware.sip.message import parse
from firmware.sip.useragent import UserAgent
from tests.sip.test_call import (
    ANSWER,
    DOOR,
    FLAT1,
    FLAT2,
    Network,
    Phone,
    contact,
    incoming_invite,
)

RTP_PORT = 40000
MEDIA = {"codecs": ["PCMU", "PCMA"], "srtp": "off", "srtp_requires_tls": True,
         "rtp_ports": "40000-40199"}
G729_ONLY = ANSWER.replace(b"RTP/AVP 0", b"RTP/AVP 18")
HOLD_OFFER = ANSWER.replace(b"o=flat 1 1", b"o=flat 1 2") + b"a=sendonly\r\n"
RESUME_OFFER = ANSWER.replace(b"o=flat 1 1", b"o=flat 1 3")


class Door:
    """The door station without I/O: the SIP cores, the session layer and a runtime stand-in
    (ports handed out from RTP_PORT unless `no_port` says why there is none)."""

    def __init__(self, net, media=None, random=None, delayed_offer=False, **manager_options):
        self.address = DOOR
        settings = {"host": DOOR[0], "port": DOOR[1], "transport": "udp", "username": "door",
                    "domain": "example.org", "password": "secret", "display_name": "Door",
                    "registrar": None}
        self.ua = UserAgent(settings)
        self.calls = CallManager(self.ua, **manager_options)
        self.sessions = SessionManager(self.calls, MediaConfig(**(media or MEDIA)),
                                       **({"random": random} if random else {}),
                                       delayed_offer=delayed_offer)
        self.net = net
        self.no_port = None
        self.events = []
        self.others = []  # UA events that are not the call layer's
        net.attach(self)

    def receive(self, data, source, now):
        self.ua.receive(data, source, now)
        self.collect()

    def handle_timer(self, now):
        self.ua.handle_timer(now)
        self.collect()

    def get_timer(self):
        return self.ua.get_timer()

    def datagrams_to_send(self):
        return self.ua.datagrams_to_send()

    def collect(self):
        for _ in range(100):
            progressed = False
            event = self.ua.next_event()
            if event is not None:
                progressed = True
                if not self.sessions.on_sip_event(event, self.net.now):
                    self.others.append(event)
            event = self.sessions.next_event()
            if event is not None:
                progressed = True
                self.events.append(event)
                if isinstance(event, ev.OpenMedia):
                    if self.no_port:
                        self.sessions.media_unavailable(event.call_id, self.no_port,
                                                        self.net.now)
                    else:
                        self.sessions.media_opened(event.call_id, DOOR[0], RTP_PORT,
                                                   self.net.now)
            if not progressed:
                return
        raise AssertionError("the session layer never went quiet")

    def do(self, command, *args):
        """A controller command at the current time; its events collected."""
        result = getattr(self.sessions, command)(*args + (self.net.now,))
        self.collect()
        self.net.run()
        return result

    def place(self, *addresses, **options):
        routed = [("sip:flat@%s:%d" % a, Peer("udp", a[0], a[1])) for a in addresses]
        session = self.sessions.place_call("call", routed, DOOR[0], RTP_PORT, self.net.now,
                                           **options)
        self.collect()
        self.net.run()
        return session

    def kinds(self):
        return [type(e).__name__ for e in self.events]

    def take(self, kind):
        for event in self.events:
            if isinstance(event, kind):
                self.events.remove(event)
                return event
        raise AssertionError("no %s among %r" % (kind.__name__, self.events))


def _sdp_port(body):
    for line in body.decode().split("\r\n"):
        if line.startswith("m=audio "):
            return int(line.split()[1])
    return None


def _offered_call(net, door, phone, body=ANSWER):
    incoming_invite(phone, body=body)
    phone.take(100)
    return door.events[1].call_id if len(door.events) > 1 else door.events[0].call_id


# -- incoming: their offer, our answer ---------------------------------------------------------
def test_incoming_offer_is_answered_only_when_the_controller_says_answer():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id = _offered_call(net, door, phone)
    assert door.kinds() == ["OpenMedia", "CallOffered"]
    offered = door.events[1]
    assert offered.call_id == call_id == door.events[0].call_id
    assert offered.caller == "sip:flat@127.0.0.1:5062"
    assert offered.source == "udp:127.0.0.1:5062" and offered.source_ip == "127.0.0.1"
    assert offered.trusted is False and offered.answer_mode is None
    assert phone.count(200) == 0  # the answer is parked
    door.do("ring", call_id)
    assert phone.take(180)
    assert door.do("answer", call_id) is True
    ok = phone.take(200)
    assert _sdp_port(ok.body) == RTP_PORT  # the runtime's port is in our answer
    start = door.events[2]
    assert isinstance(start, ev.StartMedia) and start.call_id == call_id
    assert start.negotiated.codec == "PCMU" and start.negotiated.remote_port == 5000
    assert door.do("answer", call_id) is False  # answered already: nothing parked
    phone.send(ack_for(ok, phone))
    assert door.kinds() == ["OpenMedia", "CallOffered", "StartMedia", "CallEstablished"]
    assert door.events[3] == ev.CallEstablished(call_id, "incoming", "sip:flat@127.0.0.1:5062")
    assert door.sessions.status() == [{"id": call_id, "direction": "incoming",
                                       "state": "active", "peer": "sip:flat@127.0.0.1:5062",
                                       "codec": "PCMU", "srtp": False}]


def ack_for(ok, phone):
    via = ok.headers.get("Via")
    branch = via.split("branch=")[1].split(";")[0] + "ack"
    lines = ["ACK sip:door@%s:%d SIP/2.0" % DOOR,
             "Via: SIP/2.0/UDP %s:%d;branch=%s" % (phone.address[0], phone.address[1], branch),
             "Max-Forwards: 70", "From: " + ok.headers.get("From"), "To: " + ok.headers.get("To"),
             "Call-ID: " + ok.headers.get("Call-ID"),
             "CSeq: %s ACK" % ok.headers.get("CSeq").split()[0], "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def in_dialog(phone, ok, method, cseq, body=b"", extra=()):
    """A request from the caller within the dialog its INVITE `ok` confirmed."""
    lines = ["%s sip:door@%s:%d SIP/2.0" % ((method,) + DOOR),
             "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s%d" % (phone.address[0], phone.address[1],
                                                           method.lower(), cseq),
             "Max-Forwards: 70", "From: " + ok.headers.get("From"), "To: " + ok.headers.get("To"),
             "Call-ID: " + ok.headers.get("Call-ID"), "CSeq: %d %s" % (cseq, method),
             contact(phone.address)] + list(extra)
    if body and not extra:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(body))
    phone.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def active_incoming(net, door, phone):
    call_id = _offered_call(net, door, phone)
    door.do("answer", call_id)
    ok = phone.take(200)
    phone.send(ack_for(ok, phone))
    return call_id, ok


def test_a_malformed_offer_is_refused_488_and_the_controller_never_hears_of_it():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    incoming_invite(phone, body=b"v=0\r\nthis is not SDP\r\n")
    assert phone.take(488)
    assert door.kinds() == ["OpenMedia", "CallRefused", "StopMedia", "CallEnded"]
    refused = door.events[1]
    assert refused.status == 488 and refused.reason.startswith("no acceptable media: malformed")
    assert door.sessions.status() == []


def test_a_g729_only_offer_is_refused_488():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    incoming_invite(phone, body=G729_ONLY)
    assert phone.take(488)
    assert door.events[1] == ev.CallRefused(door.events[0].call_id, "sip:flat@127.0.0.1:5062",
                                            488, "no acceptable media: no common codec")


def ack_with(ok, phone, body):
    """The ACK to `ok` carrying `body` (the answer to the offer in our 200)."""
    head, _, _ = ack_for(ok, phone).partition(b"Content-Length: 0")
    return head + b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n" % \
        len(body) + body


def test_delayed_offer_our_offer_goes_in_the_200_and_the_acks_answer_starts_media():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id = _offered_call(net, door, phone, body=b"")
    assert door.kinds() == ["OpenMedia", "CallOffered"]
    assert door.do("answer", call_id) is True
    ok = phone.take(200)
    assert _sdp_port(ok.body) == RTP_PORT and b"RTP/AVP 0 8" in ok.body  # an offer: our codecs
    assert door.kinds() == ["OpenMedia", "CallOffered"]  # no media before the answer
    phone.send(ack_with(ok, phone, ANSWER.replace(b"RTP/AVP 0", b"RTP/AVP 8")))
    assert door.kinds() == ["OpenMedia", "CallOffered", "StartMedia", "CallEstablished"]
    start = door.events[2]
    assert start.negotiated.codec == "PCMA" and start.negotiated.remote_port == 5000


def test_delayed_offer_without_an_answer_in_the_ack_is_hung_up():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id = _offered_call(net, door, phone, body=b"")
    door.do("answer", call_id)
    phone.send(ack_for(phone.take(200), phone))
    assert "unusable answer in the ACK" in door.take(ev.CallRefused).reason
    assert phone.take("BYE") and not any(isinstance(e, ev.StartMedia) for e in door.events)


def test_delayed_offer_with_an_unusable_answer_in_the_ack_is_hung_up():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id = _offered_call(net, door, phone, body=b"")
    door.do("answer", call_id)
    phone.send(ack_with(phone.take(200), phone, G729_ONLY))  # answers what we never offered
    assert "unusable answer in the ACK" in door.take(ev.CallRefused).reason
    assert phone.take("BYE") and not any(isinstance(e, ev.StartMedia) for e in door.events)


def _delayed_offer_requiring_100rel(net, door, phone):
    """A caller's INVITE without SDP requiring 100rel; the door rings: (call id, the 180)."""
    incoming_invite(phone, body=b"", extra=("Require: 100rel",))
    phone.take(100)
    call_id = door.events[0].call_id
    door.do("ring", call_id)
    return call_id, phone.take(180)


def test_delayed_offer_with_100rel_our_offer_goes_in_the_reliable_180_the_prack_answers():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id, ringing = _delayed_offer_requiring_100rel(net, door, phone)
    # RFC 3261 §13.2.1: the first reliable non-failure response carries the offer
    assert ringing.headers.get("Require") == "100rel" and _sdp_port(ringing.body) == RTP_PORT
    in_dialog(phone, ringing, "PRACK", 2, body=ANSWER.replace(b"RTP/AVP 0", b"RTP/AVP 8"),
              extra=("RAck: %s 1 INVITE" % ringing.headers.get("RSeq"),
                     "Content-Type: application/sdp"))
    assert phone.take(200).headers.get("CSeq") == "2 PRACK"
    assert "StartMedia" not in door.kinds()  # negotiated, not started before the answer
    door.do("answer", call_id)
    ok = phone.take(200)
    assert ok.body == ringing.body  # the same description: the offer/answer is done
    start = door.take(ev.StartMedia)
    assert start.negotiated.codec == "PCMA" and start.negotiated.remote_port == 5000
    phone.send(ack_for(ok, phone))
    assert door.take(ev.CallEstablished)
    assert not [e for e in door.events if isinstance(e, (ev.StartMedia, ev.UpdateMedia,
                                                         ev.CallRefused))]


def test_delayed_offer_with_100rel_an_unusable_answer_in_the_prack_ends_the_call():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id, ringing = _delayed_offer_requiring_100rel(net, door, phone)
    in_dialog(phone, ringing, "PRACK", 2, body=G729_ONLY, extra=(
        "RAck: %s 1 INVITE" % ringing.headers.get("RSeq"), "Content-Type: application/sdp"))
    assert phone.take(200) and phone.take(480)  # the PRACK's 200, then the INVITE's 480
    assert "unusable answer" in door.take(ev.CallRefused).reason


def test_a_reinvite_without_sdp_gets_our_offer_and_the_acks_answer_moves_the_media():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id, ok = active_incoming(net, door, phone)
    del door.events[:]
    in_dialog(phone, ok, "INVITE", 2)
    offer = phone.take(200)
    assert _sdp_port(offer.body) == RTP_PORT
    moved = ANSWER.replace(b"o=flat 1 1", b"o=flat 1 2").replace(b"5000", b"6000")
    phone.send(ack_with(offer, phone, moved))
    update = door.take(ev.UpdateMedia)
    assert update.call_id == call_id and update.negotiated.remote_port == 6000


def test_no_media_port_is_503():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    door.no_port = "no free RTP port pair in 40000-40001"
    incoming_invite(phone)
    assert phone.take(503)
    assert door.kinds() == ["OpenMedia", "CallRefused", "StopMedia", "CallEnded"]
    assert door.events[1].status == 503
    assert door.events[1].reason == "no media: no free RTP port pair in 40000-40001"


def test_mandatory_srtp_over_udp_is_refused_488_keys_never_sent():
    net = Network()
    door, phone = Door(net, media=dict(MEDIA, srtp="mandatory")), Phone(net, FLAT1)
    incoming_invite(phone)
    assert phone.take(488)
    assert "SRTP is mandatory" in door.events[1].reason


def test_reinvite_hold_and_resume_update_the_playing_stream():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id, ok = active_incoming(net, door, phone)
    del door.events[:]
    in_dialog(phone, ok, "INVITE", 2, HOLD_OFFER)
    answer = phone.take(200)
    assert b"a=recvonly" in answer.body
    update = door.take(ev.UpdateMedia)
    assert update.call_id == call_id
    assert update.negotiated.sending is False and update.negotiated.receiving is True
    in_dialog(phone, ok, "INVITE", 3, RESUME_OFFER)
    assert b"a=sendrecv" in phone.take(200).body
    assert door.take(ev.UpdateMedia).negotiated.sending is True
    in_dialog(phone, ok, "INVITE", 4, G729_ONLY)
    assert phone.take(488)  # a re-offer we cannot answer keeps the call as it was
    assert door.events == [] and door.sessions.get(call_id).state == "active"


def test_hold_by_us_sends_a_sendonly_offer_and_the_answer_updates_the_stream():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id, ok = active_incoming(net, door, phone)
    del door.events[:]
    assert door.do("hold", call_id) is None
    reinvite = phone.take("INVITE")
    assert b"a=sendonly" in reinvite.body and _sdp_port(reinvite.body) == RTP_PORT
    assert b"o=doorline" in reinvite.body or b" 2 IN IP4" in reinvite.body
    phone.reply(reinvite, 200, "OK", to_tag=None, extra=(contact(phone.address),),
                body=ANSWER.replace(b"o=flat 1 1", b"o=flat 1 2") + b"a=recvonly\r\n")
    update = door.take(ev.UpdateMedia)
    assert update.negotiated.sending is True and update.negotiated.receiving is False


def test_digits_by_info_and_by_rtp_reach_the_controller_with_the_call_id():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id, ok = active_incoming(net, door, phone)
    del door.events[:]
    in_dialog(phone, ok, "INFO", 2, b"Signal=5\r\nDuration=160\r\n",
              extra=("Content-Type: application/dtmf-relay",))
    assert phone.take(200)
    door.do("digit", call_id, "#")
    door.do("digit", "not-a-call", "1")
    assert door.events == [ev.DigitReceived(call_id, "5", "info"),
                           ev.DigitReceived(call_id, "#", "rtp")]


def test_remote_hangup_stops_media_then_reports_the_end():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id, ok = active_incoming(net, door, phone)
    del door.events[:]
    in_dialog(phone, ok, "BYE", 2)
    assert phone.take(200)
    assert door.events == [ev.StopMedia(call_id), ev.CallEnded(call_id, "remote hangup", None)]
    assert door.sessions.get(call_id) is None


def test_local_hangup_sends_bye():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id, ok = active_incoming(net, door, phone)
    del door.events[:]
    door.do("hangup", call_id)
    assert phone.take("BYE")
    assert door.events == [ev.StopMedia(call_id), ev.CallEnded(call_id, "local hangup", None)]
    door.do("hangup", call_id)  # again: nothing (no CallStateError)
    door.do("hangup", None)
    assert door.events[2:] == []


def test_a_cancelled_call_cannot_be_answered_and_a_rejected_one_not_either():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    call_id = _offered_call(net, door, phone)
    door.do("reject", call_id, 486)
    assert phone.take(486)
    assert door.do("answer", call_id) is False
    assert door.kinds() == ["OpenMedia", "CallOffered", "StopMedia", "CallEnded"]


# -- outgoing: our offer, their answer ---------------------------------------------------------
def test_outgoing_offer_carries_our_port_and_the_answer_starts_media():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    session = door.place(FLAT1)
    invite = phone.take("INVITE")
    assert _sdp_port(invite.body) == RTP_PORT
    phone.reply(invite, 180, "Ringing", extra=(contact(phone.address),))
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=ANSWER)
    assert phone.take("ACK")
    assert door.events == [ev.CallStarted(session.id, "call"), ev.CallRinging(session.id, False),
                           door.events[2], ev.CallEstablished(session.id, "outgoing",
                                                              "sip:flat@127.0.0.1:5062")]
    assert isinstance(door.events[2], ev.StartMedia)
    assert door.events[2].negotiated.remote_port == 5000


def test_early_media_answer_in_183_is_used_when_the_200_has_none():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    session = door.place(FLAT1)
    invite = phone.take("INVITE")
    early = ANSWER.replace(b"5000", b"5008")
    phone.reply(invite, 183, "Session Progress", extra=(contact(phone.address),), body=early)
    assert door.take(ev.CallStarted) and door.take(ev.CallRinging) == \
        ev.CallRinging(session.id, True)
    # early media: the stream starts with the 183 (the PBX's ringback to the door's speaker)
    start = door.take(ev.StartMedia)
    assert start.negotiated.remote_port == 5008
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),))
    assert door.take(ev.CallEstablished)
    assert not [e for e in door.events if isinstance(e, (ev.StartMedia, ev.UpdateMedia))]


def test_early_media_moves_when_the_200_answers_elsewhere():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    door.place(FLAT1)
    invite = phone.take("INVITE")
    phone.reply(invite, 183, "Session Progress", extra=(contact(phone.address),),
                body=ANSWER.replace(b"5000", b"5008"))
    assert door.take(ev.StartMedia).negotiated.remote_port == 5008
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=ANSWER)
    assert door.take(ev.UpdateMedia).negotiated.remote_port == 5000
    assert door.take(ev.CallEstablished)
    assert not [e for e in door.events if isinstance(e, ev.StartMedia)]


def test_forked_early_media_the_200s_early_dialog_keeps_its_own_answer():
    """A forking proxy gives one INVITE two early dialogs, each with early media; the 200
    without SDP comes on the first: the stream goes back to that dialog's answer."""
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    door.place(FLAT1)
    invite = phone.take("INVITE")
    for tag, port in (("fork-a", b"5008"), ("fork-b", b"5016")):
        phone.reply(invite, 183, "Session Progress", to_tag=tag,
                    extra=(contact(phone.address),), body=ANSWER.replace(b"5000", port))
    assert door.take(ev.StartMedia).negotiated.remote_port == 5008
    assert door.take(ev.UpdateMedia).negotiated.remote_port == 5016
    phone.reply(invite, 200, "OK", to_tag="fork-a", extra=(contact(phone.address),))
    assert door.take(ev.UpdateMedia).negotiated.remote_port == 5008
    assert door.take(ev.CallEstablished)


def test_a_200_repeating_the_183s_answer_does_not_update_the_stream():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    door.place(FLAT1)
    invite = phone.take("INVITE")
    early = ANSWER.replace(b"5000", b"5008")
    phone.reply(invite, 183, "Session Progress", extra=(contact(phone.address),), body=early)
    assert door.take(ev.StartMedia).negotiated.remote_port == 5008
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=early)
    assert door.take(ev.CallEstablished)
    assert not [e for e in door.events if isinstance(e, (ev.StartMedia, ev.UpdateMedia))]


def test_delayed_offer_forked_the_200s_early_dialog_keeps_its_own_negotiation():
    net = Network()
    door, phone = Door(net, delayed_offer=True), Phone(net, FLAT1)
    door.place(FLAT1)
    invite = phone.take("INVITE")
    for tag, port in (("fork-a", b"5008"), ("fork-b", b"5016")):
        phone.reply(invite, 183, "Session Progress", to_tag=tag, body=ANSWER.replace(
            b"5000", port), extra=(contact(phone.address), "Require: 100rel", "RSeq: 1"))
        assert _sdp_port(phone.take("PRACK").body) == RTP_PORT  # each offer answered
    assert door.take(ev.StartMedia).negotiated.remote_port == 5008
    assert door.take(ev.UpdateMedia).negotiated.remote_port == 5016
    phone.reply(invite, 200, "OK", to_tag="fork-a", extra=(contact(phone.address),))
    assert phone.take("ACK").body == b""
    assert door.take(ev.UpdateMedia).negotiated.remote_port == 5008
    assert door.take(ev.CallEstablished)


def test_an_unusable_answer_hangs_the_call_up_and_is_never_established():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    session = door.place(FLAT1)
    invite = phone.take("INVITE")
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=G729_ONLY)
    assert phone.take("ACK") and phone.take("BYE")
    assert door.kinds() == ["CallStarted", "CallRefused", "StopMedia", "CallEnded"]
    assert door.events[1].reason.startswith("unusable answer")
    assert door.sessions.get(session.id) is None


# -- outgoing with a delayed offer ([calls] delayed_offer): the PBX offers -----------------
def _reliable_183(phone, invite, body):
    phone.reply(invite, 183, "Session Progress", body=body, extra=(
        contact(phone.address), "Require: 100rel", "RSeq: 1"))


def test_delayed_offer_the_200s_offer_is_answered_in_the_ack_and_starts_media():
    net = Network()
    door, phone = Door(net, delayed_offer=True), Phone(net, FLAT1)
    session = door.place(FLAT1)
    invite = phone.take("INVITE")
    assert invite.body == b"" and session.offer is None
    offer = ANSWER.replace(b"RTP/AVP 0", b"RTP/AVP 8")  # the PBX offers PCMA only
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=offer)
    ack = phone.take("ACK")
    assert _sdp_port(ack.body) == RTP_PORT and b"RTP/AVP 8\r\n" in ack.body  # our answer
    assert door.kinds() == ["CallStarted", "StartMedia", "CallEstablished"]
    start = door.events[1]
    assert start.negotiated.codec == "PCMA" and start.negotiated.remote_port == 5000


def test_delayed_offer_in_a_reliable_183_is_answered_in_the_prack_with_early_media():
    net = Network()
    door, phone = Door(net, delayed_offer=True), Phone(net, FLAT1)
    session = door.place(FLAT1)
    invite = phone.take("INVITE")
    _reliable_183(phone, invite, ANSWER.replace(b"5000", b"5008"))
    prack = phone.take("PRACK")
    assert _sdp_port(prack.body) == RTP_PORT and prack.headers.get("RAck") == "1 1 INVITE"
    assert door.take(ev.CallRinging) == ev.CallRinging(session.id, True)
    assert door.take(ev.StartMedia).negotiated.remote_port == 5008  # early media, at once
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),),
                body=ANSWER.replace(b"5000", b"5008"))  # repeats the 183's offer
    assert phone.take("ACK").body == b""
    assert door.take(ev.CallEstablished)
    assert not [e for e in door.events if isinstance(e, (ev.StartMedia, ev.UpdateMedia))]


def test_delayed_offer_an_unacceptable_offer_gets_a_refusing_answer_in_the_ack_then_bye():
    net = Network()
    door, phone = Door(net, delayed_offer=True), Phone(net, FLAT1)
    door.place(FLAT1)
    invite = phone.take("INVITE")
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=G729_ONLY)
    ack = phone.take("ACK")
    assert _sdp_port(ack.body) == 0  # RFC 3261 §13.2.2.4: a valid answer, every stream refused
    assert phone.take("BYE")
    assert door.kinds() == ["CallStarted", "CallRefused", "StopMedia", "CallEnded"]
    assert "no common codec" in door.events[1].reason


def test_delayed_offer_a_200_without_an_offer_is_acked_and_hung_up():
    net = Network()
    door, phone = Door(net, delayed_offer=True), Phone(net, FLAT1)
    door.place(FLAT1)
    invite = phone.take("INVITE")
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),))
    assert phone.take("ACK").body == b"" and phone.take("BYE")
    assert door.kinds() == ["CallStarted", "CallRefused", "StopMedia", "CallEnded"]


def test_delayed_offer_of_a_call_without_a_session_is_still_acked():
    net = Network()
    door, phone = Door(net, delayed_offer=True), Phone(net, FLAT1)
    door.calls.place_call([("sip:flat@%s:%d" % FLAT1, Peer("udp", *FLAT1))], None, net.now)
    net.run()
    invite = phone.take("INVITE")
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=ANSWER)
    assert phone.take("ACK").body == b""  # not left waiting for an answer nobody writes


def test_forking_first_2xx_wins_and_the_other_branch_is_cancelled():
    net = Network()
    door = Door(net)
    flat1, flat2 = Phone(net, FLAT1), Phone(net, FLAT2)
    session = door.place(FLAT1, FLAT2)
    invite1, invite2 = flat1.take("INVITE"), flat2.take("INVITE")
    flat1.reply(invite1, 180, "Ringing", to_tag="t1", extra=(contact(FLAT1),))
    flat2.reply(invite2, 180, "Ringing", to_tag="t2", extra=(contact(FLAT2),))
    flat2.reply(invite2, 200, "OK", to_tag="t2", extra=(contact(FLAT2),), body=ANSWER)
    assert flat1.take("CANCEL")
    assert flat2.take("ACK")
    starts = [e for e in door.events if isinstance(e, ev.StartMedia)]
    assert len(starts) == 1 and starts[0].call_id == session.id
    assert door.take(ev.CallEstablished).peer == "sip:flat@127.0.0.1:5064"
    assert not any(isinstance(e, ev.CallEnded) for e in door.events)


def test_busy_and_no_port_and_key_policy_do_not_start_a_call():
    net = Network()
    door = Door(net)
    Phone(net, FLAT1)
    door.place(FLAT1)
    routed = [("sip:flat@127.0.0.1:5064", Peer("udp", "127.0.0.1", 5064))]
    assert door.sessions.place_call("call", routed, DOOR[0], RTP_PORT, net.now,
                                    call_id="c-busy") is None
    assert door.sessions.place_call("api", routed, DOOR[0], None, net.now,
                                    no_media="no free RTP port pair", call_id="c-port") is None
    strict = Door(Network(), media=dict(MEDIA, srtp="mandatory"))
    assert strict.sessions.place_call("call", routed, DOOR[0], RTP_PORT, net.now) is None
    door.collect()
    strict.collect()
    assert door.events[1:] == [ev.CallNotStarted("c-busy", "call", "busy"),
                               ev.CallNotStarted("c-port", "api",
                                                 "no media: no free RTP port pair")]
    # without an id from the controller, the session layer mints the call's one id
    assert strict.events[0].call_id and len(strict.events[0].call_id) == 12
    assert strict.events[0].reason.startswith("SRTP is mandatory")


def test_srtp_keys_come_from_the_injected_random():
    net = Network()
    media = dict(MEDIA, srtp="optional", srtp_requires_tls=False)
    door, phone = Door(net, media=media, random=lambda n: b"\x07" * n), Phone(net, FLAT1)
    door.place(FLAT1)
    invite = phone.take("INVITE")
    # base64 of 30 bytes 0x07: the same key for both suites, from the injected random
    assert invite.body.count(b"inline:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH") == 2


def test_the_controllers_call_id_is_the_one_id_of_every_layer():
    net = Network()
    door = Door(net)
    Phone(net, FLAT1)
    routed = [("sip:flat@127.0.0.1:5062", Peer("udp", "127.0.0.1", 5062))]
    session = door.sessions.place_call("call", routed, DOOR[0], RTP_PORT, net.now,
                                       call_id="0a1b2c3d4e5f")
    door.collect()
    assert session.id == session.call.id == "0a1b2c3d4e5f"
    assert door.events == [ev.CallStarted("0a1b2c3d4e5f", "call")]
    assert door.sessions.place_call("call", routed, DOOR[0], RTP_PORT, net.now,
                                    call_id="ffff") is None  # max_calls = 1
    door.collect()
    assert door.events[1:] == [ev.CallNotStarted("ffff", "call", "busy")]


def test_the_session_id_is_the_sip_call_id_every_event_carries():
    net = Network()
    door = Door(net)
    Phone(net, FLAT1)
    session = door.place(FLAT1)
    assert session.id == session.call.id
    assert door.sessions.ids() == [session.id]
    assert parse(door.net.wire[0][3].to_bytes()).method == "INVITE"


# -- the next hop ------------------------------------------------------------------------------
def test_next_hop_registrar_numeric_host_and_name():
    registrar = Peer("udp", "127.0.0.9", 5060)
    assert next_hop("sip:flat@example.org", registrar, "udp") is registrar
    peer = next_hop("sip:flat@127.0.0.2:5070", None, "tcp")
    assert (peer.transport, peer.host, peer.port) == ("tcp", "127.0.0.2", 5070)
    peer = next_hop("sips:flat@[::1]", None, "udp")
    assert (peer.transport, peer.host, peer.port) == ("tls", "::1", 5061)
    peer = next_hop("sip:flat@127.0.0.2;transport=tcp", None, "udp")
    assert (peer.transport, peer.port) == ("tcp", 5060)
    assert next_hop("sip:flat@flat.example.org", None, "udp") is None
    assert route_targets(["sip:a@127.0.0.2", "sip:b@b.example"], None, "udp") is None
    assert [p.host for _, p in route_targets(["sip:a@127.0.0.2"], None, "udp")] == ["127.0.0.2"]
    assert is_ip_address("10.0.0.1") and not is_ip_address("10.0.0.256")
    assert not is_ip_address("1.2.3") and is_ip_address("fe80::1") and not is_ip_address("a.b")
