"""The call and branch transition tables (firmware/sip/callstate.py), row by row.

Each scenario drives the real call layer (UserAgent + CallManager over the in-memory network of
test_call.py) and names the rows it must take; a recorder wrapped around `callstate.step` checks
that they were taken. `test_every_row_is_exercised` checks that the scenarios name every row of
every table, so a row added without a scenario fails. Application commands in a state without a
row raise CallStateError.
"""

import pytest

from firmware.sip import callstate as cs
from firmware.sip.call import (
    CallEnded,
    CallEstablished,
    CallRinging,
    CallStateError,
    IncomingCall,
    OfferReceived,
    RedirectRefused,
)
from firmware.sip.endpoint import Peer
from firmware.sip.transaction import T1
from tests.sip.test_call import (
    ANSWER,
    FLAT1,
    FLAT2,
    OFFER,
    Network,
    Phone,
    Station,
    contact,
    incoming_invite,
)

TABLES = (("UAC_CALL", cs.UAC_CALL), ("UAS_CALL", cs.UAS_CALL), ("OFFER", cs.OFFER),
          ("BRANCH", cs.BRANCH), ("DELAYED_OFFER", cs.DELAYED_OFFER))
DELAYED_STATES = (cs.AWAITING_OFFER, cs.EARLY_OFFER, cs.EARLY_OFFER_2XX, cs.FINAL_OFFER,
                  cs.OFFER_ANSWERED)
CHALLENGE = 'Proxy-Authenticate: Digest realm="example.org", nonce="n1", qop="auth"'


def _table_name(table):
    for name, candidate in TABLES:
        if candidate is table:
            return name
    return None


def uac(state, name):
    return ("UAC_CALL", state, name)


def uas(state, name):
    return ("UAS_CALL", state, name)


def offer(state, name):
    return ("OFFER", state, name)


def branch(state, name):
    return ("BRANCH", state, name)


def delayed(state, name):
    return ("DELAYED_OFFER", state, name)


class Rows:
    """Records every (table, state, input) row taken while in the `with` block."""

    def __init__(self):
        self.taken = []
        self._step = None

    def __enter__(self):
        self._step = cs.step
        original = self._step
        taken = self.taken

        def recording_step(table, state, name, what, commands):
            row = original(table, state, name, what, commands)
            if row is not None:
                taken.append((_table_name(table), state, name))
            return row

        cs.step = recording_step
        return self

    def __exit__(self, *exc):
        cs.step = self._step
        return False


DECLARED = []


def covers(*rows):
    """The scenario below must take each of `rows`."""
    def wrap(scenario):
        DECLARED.extend(rows)

        def test():
            with Rows() as recorder:
                scenario()
            missing = [row for row in rows if row not in recorder.taken]
            assert not missing, "rows not taken: %r" % (missing,)
        return test
    return wrap


# -- helpers -------------------------------------------------------------------------------
def outgoing(net, *phones, **options):
    """The door calls `phones`; returns (door, call, [INVITE as each phone received it])."""
    manager_options = {}
    for key in ("ring_timeout", "max_duration", "follow_redirects"):
        if key in options:
            manager_options[key] = options.pop(key)
    door = Station(net, **manager_options)
    call = door.call(*[p.address for p in phones], **options)
    net.run()
    return door, call, [p.take("INVITE") for p in phones if p.count("INVITE")]


def ring(phone, invite, tag="flat-tag"):
    phone.reply(invite, 180, "Ringing", to_tag=tag, extra=(contact(phone.address),))


def answer(phone, invite, tag="flat-tag", extra=()):
    phone.reply(invite, 200, "OK", to_tag=tag, extra=(contact(phone.address),) + tuple(extra),
                body=ANSWER)


def incoming(net, extra=(), **options):
    door, phone = Station(net, **options), Phone(net, FLAT1)
    incoming_invite(phone, extra=extra)
    return door, phone, door.take(IncomingCall).call


def answered(net, extra=(), ack=True, **options):
    """An incoming call the door answered (and the phone ACKed when `ack`)."""
    door, phone, call = incoming(net, extra=extra, **options)
    door.act(call.answer, OFFER)
    net.run()
    ok = phone.take(200)
    dialog = Phone.dialog_of(ok, phone_is_caller=True)
    if ack:
        phone.request("ACK", 1, dialog)
    return door, phone, call, dialog


# -- outgoing calls: UAC_CALL and BRANCH -------------------------------------------------------
@covers(uac(cs.CALLING, cs.PROVISIONAL), uac(cs.RINGING, cs.PROVISIONAL),
        uac(cs.RINGING, cs.SUCCESS), branch(cs.INVITING, cs.PROVISIONAL),
        branch(cs.EARLY, cs.PROVISIONAL), branch(cs.EARLY, cs.SUCCESS),
        branch(cs.ANSWERED, cs.SUCCESS), uac(cs.ACTIVE, cs.SEND_INFO),
        uac(cs.ACTIVE, cs.HANGUP))
def test_uac_ringing_answered_info_and_hangup():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    ring(phone, invite)
    ring(phone, invite)
    assert call.state == cs.RINGING
    answer(phone, invite)
    answer(phone, invite)  # retransmitted: ACKed again, still the one call
    assert phone.count("ACK") == 2 and call.state == cs.ACTIVE
    door.act(call.send_info, "application/dtmf-relay", b"Signal=5\r\n")
    net.run()
    assert phone.take("INFO")
    door.act(call.hangup)
    net.run()
    assert phone.take("BYE") and door.take(CallEnded).reason == "local hangup"
    assert call.state == cs.ENDED and call.branches[0].state == cs.ANSWERED


@covers(uac(cs.CALLING, cs.SUCCESS), branch(cs.INVITING, cs.SUCCESS),
        uac(cs.ACTIVE, cs.BYE_RECEIVED))
def test_uac_answered_without_ringing_then_remote_bye():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    answer(phone, invite)
    assert call.state == cs.ACTIVE
    ok = [m for _, _, _, m in net.wire if getattr(m, "status", None) == 200][0]
    phone.request("BYE", 2, Phone.dialog_of(ok))
    assert door.take(CallEnded).reason == "remote hangup"


@covers(uac(cs.CALLING, cs.NEXT_TARGET), uac(cs.RINGING, cs.NEXT_TARGET),
        uac(cs.RINGING, cs.ALL_FAILED), branch(cs.INVITING, cs.FAILURE),
        branch(cs.EARLY, cs.FAILURE))
def test_uac_sequential_targets_fail_one_after_the_other():
    net = Network()
    phones = [Phone(net, FLAT1), Phone(net, FLAT2), Phone(net, ("127.0.0.1", 5066))]
    door = Station(net)
    call = door.call(*[p.address for p in phones], sequential=True)
    net.run()
    phones[0].reply(phones[0].take("INVITE"), 486, "Busy Here")
    invite = phones[1].take("INVITE")  # the next target, still calling
    ring(phones[1], invite)
    phones[1].reply(invite, 480, "Temporarily Unavailable")
    last = phones[2].take("INVITE")
    assert call.state == cs.RINGING
    ring(phones[2], last)
    phones[2].reply(last, 603, "Decline")
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("rejected", 603)


@covers(uac(cs.CALLING, cs.ALL_FAILED))
def test_uac_single_target_fails_before_ringing():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    phone.reply(invite, 486, "Busy Here")
    assert door.take(CallEnded).reason == "busy" and call.state == cs.ENDED


@covers(uac(cs.CALLING, cs.HANGUP), branch(cs.INVITING, cs.CANCEL),
        branch(cs.CANCEL_PENDING, cs.PROVISIONAL), branch(cs.CANCELLING, cs.FAILURE))
def test_uac_hangup_before_any_provisional_cancels_at_the_first():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    door.act(call.hangup)
    net.run()
    assert phone.count("CANCEL") == 0 and door.take(CallEnded).reason == "local hangup"
    ring(phone, invite)
    assert phone.take("CANCEL")
    phone.reply(invite, 487, "Request Terminated")
    assert call.branches[0].state == cs.FAILED


@covers(uac(cs.RINGING, cs.HANGUP), branch(cs.EARLY, cs.CANCEL),
        branch(cs.CANCELLING, cs.SUCCESS), branch(cs.LATE, cs.SUCCESS))
def test_uac_cancel_loses_the_race_with_200():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    ring(phone, invite)
    door.act(call.hangup)
    net.run()
    assert phone.take("CANCEL")
    answer(phone, invite)
    assert phone.take("ACK") and phone.take("BYE")  # §15: ACK the 2xx, then BYE
    answer(phone, invite)  # retransmitted: ACKed again
    assert phone.take("ACK")


@covers(branch(cs.CANCEL_PENDING, cs.SUCCESS), branch(cs.CANCEL_PENDING, cs.FAILURE))
def test_uac_losing_forks_given_up_before_their_first_provisional():
    net = Network()
    flat1, flat2, flat3 = Phone(net, FLAT1), Phone(net, FLAT2), Phone(net, ("127.0.0.1", 5066))
    door, call, (invite1, invite2, invite3) = outgoing(net, flat1, flat2, flat3)
    answer(flat1, invite1, tag="t1")
    assert call.state == cs.ACTIVE
    assert [b.state for b in call.branches[1:]] == [cs.CANCEL_PENDING, cs.CANCEL_PENDING]
    answer(flat2, invite2, tag="t2")  # no CANCEL was sent yet: it answers anyway
    assert flat2.take("ACK") and flat2.take("BYE") and call.branches[1].state == cs.LATE
    flat3.reply(invite3, 486, "Busy Here")
    assert call.branches[2].state == cs.FAILED and call.state == cs.ACTIVE


@covers(uac(cs.CALLING, cs.RING_TIMEOUT), branch(cs.INVITING, cs.TIMEOUT))
def test_uac_nobody_answers_in_time():
    net = Network()
    flat1, flat2 = Phone(net, FLAT1), Phone(net, FLAT2)
    door, call, (invite1, invite2) = outgoing(net, flat1, flat2, ring_timeout=40.0)
    flat1.reply(invite1, 100, "Trying", to_tag=None)  # flat1's INVITE lives on (Proceeding)
    net.run(64 * T1 + 1)  # flat2 never answers: its Timer B fires first
    assert call.branches[1].state == cs.FAILED and call.state == cs.CALLING
    net.run(10)
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("no answer", 408)


@covers(uac(cs.RINGING, cs.RING_TIMEOUT))
def test_uac_ringing_too_long():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone, ring_timeout=5.0)
    ring(phone, invite)
    net.run(6)
    assert phone.take("CANCEL") and door.take(CallEnded).reason == "no answer"


@covers(uac(cs.CALLING, cs.TARGET_TIMEOUT), branch(cs.CANCEL_PENDING, cs.TIMEOUT))
def test_uac_sequential_last_target_silent_until_its_timeout():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone, sequential=True, target_timeout=5.0,
                                     ring_timeout=60.0)
    net.run(6)
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("no answer", 408)
    assert call.branches[0].state == cs.CANCEL_PENDING
    net.run(64 * T1)  # Timer B: the given-up INVITE ends quietly
    assert call.branches[0].state == cs.FAILED and not door.has(CallEnded)


@covers(uac(cs.RINGING, cs.TARGET_TIMEOUT))
def test_uac_sequential_last_target_rings_until_its_timeout():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone, sequential=True, target_timeout=5.0)
    ring(phone, invite)
    net.run(6)
    assert phone.take("CANCEL") and door.take(CallEnded).reason == "no answer"


@covers(branch(cs.INVITING, cs.CHALLENGE), branch(cs.EARLY, cs.CHALLENGE))
def test_uac_challenges_answered_with_counted_nonces():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    phone.reply(invite, 407, "Proxy Authentication Required", extra=(CHALLENGE,))
    again = phone.take("INVITE")
    ring(phone, again)
    stale = CHALLENGE.replace('"n1"', '"n2"') + ", stale=true"
    phone.reply(again, 407, "Proxy Authentication Required", extra=(stale,))
    third = phone.take("INVITE")
    assert "nc=00000001" in again.headers.get("Proxy-Authorization")
    assert 'nonce="n2"' in third.headers.get("Proxy-Authorization")
    assert call.branches[0].state == cs.INVITING


@covers(branch(cs.INVITING, cs.REDIRECT), branch(cs.EARLY, cs.REDIRECT),
        branch(cs.INVITING, cs.REDIRECT_REFUSED))
def test_uac_redirects_followed_then_refused():
    net = Network()
    flat1, flat2 = Phone(net, FLAT1), Phone(net, FLAT2)
    door = Station(net, follow_redirects=True)
    targets = [("sip:flat@127.0.0.1:%d" % a[1], Peer("udp", a[0], a[1])) for a in (FLAT1,)]
    targets.append(("sip:flat@127.0.0.1:%d" % FLAT2[1], Peer("udp", FLAT2[0], FLAT2[1])))
    call = door.calls.place_call(targets, OFFER, net.now, sequential=True)
    door._collect()
    net.run()
    invite = flat1.take("INVITE")
    flat1.reply(invite, 302, "Moved", extra=("Contact: <sip:flat@127.0.0.1:%d>" % FLAT2[1],))
    moved = flat2.take("INVITE")  # a configured target: followed (INVITING)
    ring(flat2, moved)
    flat2.reply(moved, 302, "Moved", extra=("Contact: <sip:flat@127.0.0.1:%d>" % FLAT1[1],))
    back = flat1.take("INVITE")  # followed from EARLY
    flat1.reply(back, 302, "Moved", extra=("Contact: <sip:premium@198.51.100.9>",))
    assert door.take(RedirectRefused).reason == "not a configured target"
    assert call.branches[0].state == cs.FAILED


@covers(branch(cs.EARLY, cs.REDIRECT_REFUSED))
def test_uac_redirect_refused_after_ringing():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    ring(phone, invite)
    phone.reply(invite, 302, "Moved", extra=("Contact: <sip:flat@127.0.0.1:5099>",))
    assert door.take(RedirectRefused).reason == "redirects are not followed"
    assert door.take(CallEnded).status == 302


@covers(branch(cs.FAILED, cs.SUCCESS))
def test_uac_stray_2xx_after_a_failure_is_acked_and_ended():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    phone.reply(invite, 486, "Busy Here")
    net.run(40.0)  # Timer D: the INVITE transaction is gone
    answer(phone, invite)
    assert phone.take("BYE")  # ACK, then BYE: the call had ended


@covers(uac(cs.ACTIVE, cs.MAX_DURATION))
def test_uac_max_duration():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone, max_duration=10.0)
    answer(phone, invite)
    net.run(11)
    assert phone.take("BYE") and door.take(CallEnded).reason == "max duration"


@covers(uac(cs.ACTIVE, cs.REFRESH_DUE), uac(cs.ACTIVE, cs.REINVITE),
        uac(cs.ACTIVE, cs.DIALOG_GONE))
def test_uac_refreshes_then_the_dialog_is_gone():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    answer(phone, invite, extra=("Session-Expires: 90;refresher=uac", "Require: timer"))
    net.run(46)
    refresh = phone.take("INVITE")  # at half time (RFC 4028 §10)
    phone.reply(refresh, 200, "OK", extra=(contact(FLAT1), "Session-Expires: 90;refresher=uac"),
                body=ANSWER)
    phone.inbox.clear()  # the refresh's retransmissions
    door.act(call.reinvite, OFFER)
    net.run()
    hold = phone.take("INVITE")
    phone.reply(hold, 481, "Call/Transaction Does Not Exist")
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("failed", 481)


@covers(uac(cs.ACTIVE, cs.SESSION_EXPIRED))
def test_uac_session_expires_when_the_peer_does_not_refresh():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    answer(phone, invite, extra=("Session-Expires: 90;refresher=uas", "Require: timer"))
    net.run(61)
    assert phone.take("BYE") and door.take(CallEnded).reason == "session expired"


@covers(uac(cs.ACTIVE, cs.REINVITE_TIMEOUT))
def test_uac_reinvite_never_answered():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    answer(phone, invite)
    door.act(call.reinvite, OFFER)
    net.run(64 * T1 + 1)
    assert phone.take("BYE")
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("failed", 408)


# -- incoming calls: UAS_CALL and OFFER ------------------------------------------------------
@covers(uas(cs.RINGING, cs.RING), uas(cs.RINGING, cs.ANSWER), uas(cs.ANSWERING, cs.ACK),
        uas(cs.ACTIVE, cs.HANGUP))
def test_uas_ring_answer_ack_hangup():
    net = Network()
    door, phone, call = incoming(net)
    door.act(call.ring)
    net.run()
    assert phone.take(180)
    door.act(call.answer, OFFER)
    net.run()
    phone.request("ACK", 1, Phone.dialog_of(phone.take(200), phone_is_caller=True))
    assert door.take(CallEstablished) and call.state == cs.ACTIVE
    door.act(call.hangup)
    net.run()
    assert phone.take("BYE") and call.state == cs.ENDED


@covers(uas(cs.RINGING, cs.REJECT))
def test_uas_reject():
    net = Network()
    door, phone, call = incoming(net)
    door.act(call.reject, 603)
    net.run()
    assert phone.take(603) and door.take(CallEnded).reason == "rejected"


@covers(uas(cs.RINGING, cs.HANGUP))
def test_uas_hangup_while_ringing():
    net = Network()
    door, phone, call = incoming(net)
    door.act(call.hangup)
    net.run()
    assert phone.take(480) and call.state == cs.ENDED


@covers(uas(cs.RINGING, cs.RING_TIMEOUT))
def test_uas_ring_timeout():
    net = Network()
    door, phone, call = incoming(net, ring_timeout=5.0)
    net.run(6)
    assert phone.take(480) and door.take(CallEnded).reason == "no answer"


@covers(uas(cs.RINGING, cs.PRACK_TIMEOUT))
def test_uas_reliable_ringing_never_pracked():
    net = Network()
    door, phone, call = incoming(net, extra=("Require: 100rel",), ring_timeout=60.0)
    door.act(call.ring)
    net.run(64 * T1 + 1)
    assert phone.take(504) and door.take(CallEnded).status == 504


@covers(uas(cs.RINGING, cs.CANCEL_RECEIVED))
def test_uas_cancelled():
    net = Network()
    door, phone, call = incoming(net)
    invite = [m for _, _, _, m in net.wire if getattr(m, "method", None) == "INVITE"][0]
    phone.send(("CANCEL %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"
                "Call-ID: %s\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n" % (
                    invite.uri, invite.headers.get("Via"), invite.headers.get("From"),
                    invite.headers.get("To"), invite.headers.get("Call-ID"))).encode())
    assert phone.take(487) and door.take(CallEnded).reason == "cancelled"


@covers(uas(cs.RINGING, cs.BYE_RECEIVED))
def test_uas_bye_on_the_early_dialog():
    net = Network()
    door, phone, call = incoming(net)
    door.act(call.ring)
    net.run()
    phone.request("BYE", 2, Phone.dialog_of(phone.take(180), phone_is_caller=True))
    assert phone.take(487) and door.take(CallEnded).reason == "remote hangup"


@covers(uas(cs.ANSWERING, cs.ACK_TIMEOUT))
def test_uas_no_ack():
    net = Network()
    door, phone, call, dialog = answered(net, ack=False)
    net.run(64 * T1 + 0.1)
    assert phone.take("BYE") and door.take(CallEnded).reason == "timeout"


@covers(uas(cs.ANSWERING, cs.BYE_RECEIVED))
def test_uas_bye_before_the_ack():
    net = Network()
    door, phone, call, dialog = answered(net, ack=False)
    phone.request("BYE", 2, dialog)
    assert door.take(CallEnded).reason == "remote hangup"


@covers(uas(cs.ANSWERING, cs.MAX_DURATION))
def test_uas_max_duration_before_the_ack():
    net = Network()
    door, phone, call, dialog = answered(net, ack=False, max_duration=5.0)
    net.run(6)
    assert phone.take("BYE") and door.take(CallEnded).reason == "max duration"


@covers(uas(cs.ANSWERING, cs.HANGUP), uas(cs.CLOSING, cs.HANGUP), uas(cs.CLOSING, cs.ACK))
def test_uas_hangup_twice_before_the_ack():
    net = Network()
    door, phone, call, dialog = answered(net, ack=False)
    door.act(call.hangup)
    net.run()
    door.act(call.hangup)
    net.run()
    assert call.state == cs.CLOSING and phone.count("BYE") == 0
    phone.request("ACK", 1, dialog)
    assert phone.take("BYE") and door.take(CallEnded).reason == "local hangup"


@covers(uas(cs.CLOSING, cs.ACK_TIMEOUT))
def test_uas_hung_up_and_never_acked():
    net = Network()
    door, phone, call, dialog = answered(net, ack=False)
    door.act(call.hangup)
    net.run(64 * T1 + 0.1)
    ended = door.take(CallEnded)
    assert phone.take("BYE") and (ended.reason, ended.status) == ("timeout", 408)


@covers(uas(cs.CLOSING, cs.BYE_RECEIVED))
def test_uas_hung_up_then_the_caller_hangs_up_too():
    net = Network()
    door, phone, call, dialog = answered(net, ack=False)
    door.act(call.hangup)
    net.run()
    phone.request("BYE", 2, dialog)
    assert door.take(CallEnded).reason == "remote hangup"


@covers(uas(cs.CLOSING, cs.MAX_DURATION))
def test_uas_hung_up_then_max_duration():
    net = Network()
    door, phone, call, dialog = answered(net, ack=False, max_duration=5.0)
    door.act(call.hangup)
    net.run(6)
    assert phone.take("BYE") and door.take(CallEnded).reason == "max duration"


@covers(uas(cs.ACTIVE, cs.BYE_RECEIVED), offer(cs.NO_OFFER, cs.REOFFER),
        offer(cs.OFFER_RECEIVED, cs.REOFFER), offer(cs.OFFER_RECEIVED, cs.ACCEPT_OFFER),
        offer(cs.OFFER_RECEIVED, cs.REJECT_OFFER))
def test_uas_offers_received_one_at_a_time():
    net = Network()
    door, phone, call, dialog = answered(net)
    phone.request("INVITE", 2, dialog, extra=(contact(FLAT1),), body=ANSWER)
    assert door.take(OfferReceived) and call.offer_state == cs.OFFER_RECEIVED
    phone.request("INVITE", 3, dialog, extra=(contact(FLAT1),), body=ANSWER)
    assert phone.take(491)
    door.act(call.accept_offer, OFFER)
    net.run()
    assert phone.take(200).body == OFFER
    phone.request("ACK", 2, dialog)
    phone.request("INVITE", 4, dialog, extra=(contact(FLAT1),), body=ANSWER)
    door.act(call.reject_offer, 488)
    net.run()
    assert phone.take(488) and call.offer_state == cs.NO_OFFER
    phone.request("BYE", 5, dialog)
    assert door.take(CallEnded).reason == "remote hangup"


@covers(offer(cs.NO_OFFER, cs.UPDATE_OFFER), offer(cs.OFFER_RECEIVED, cs.UPDATE_OFFER))
def test_uas_update_offers_rfc3311():
    net = Network()
    door, phone, call, dialog = answered(net)
    phone.request("UPDATE", 2, dialog, extra=(contact(FLAT1),), body=ANSWER)
    assert door.take(OfferReceived) and call.offer_state == cs.OFFER_RECEIVED
    phone.request("UPDATE", 3, dialog, extra=(contact(FLAT1),), body=ANSWER)
    assert phone.take(491)
    door.act(call.accept_offer, OFFER)
    net.run(64 * T1 + 1)
    ok = phone.take(200)
    assert ok.body == OFFER and ok.headers.get("CSeq") == "2 UPDATE"
    # a non-INVITE 2xx: never retransmitted by the call, no ACK awaited, the call goes on
    assert phone.count(200) == 0 and call.state == cs.ACTIVE and not door.has(CallEnded)
    phone.request("UPDATE", 4, dialog)  # without SDP: a session refresh, 200 at once
    assert phone.take(200).body == b""


@covers(uas(cs.ACTIVE, cs.ACK_TIMEOUT))
def test_uas_reinvite_2xx_never_acked():
    net = Network()
    door, phone, call, dialog = answered(net)
    phone.request("INVITE", 2, dialog, extra=(contact(FLAT1),))  # offerless: answered at once
    net.run(64 * T1 + 0.1)
    assert phone.take("BYE") and door.take(CallEnded).reason == "timeout"


@covers(uas(cs.ACTIVE, cs.MAX_DURATION))
def test_uas_max_duration():
    net = Network()
    door, phone, call, dialog = answered(net, max_duration=5.0)
    net.run(6)
    assert phone.take("BYE") and door.take(CallEnded).reason == "max duration"


@covers(uas(cs.ACTIVE, cs.REFRESH_DUE), uas(cs.ACTIVE, cs.REINVITE),
        uas(cs.ACTIVE, cs.SEND_INFO), uas(cs.ACTIVE, cs.DIALOG_GONE))
def test_uas_refresher_then_info_then_dialog_gone():
    net = Network()
    door, phone, call, dialog = answered(net, extra=("Session-Expires: 90;refresher=uas",
                                                     "Supported: timer"))
    net.run(46)
    refresh = phone.take("INVITE")
    phone.reply(refresh, 200, "OK", to_tag=None, extra=(contact(FLAT1),), body=ANSWER)
    door.act(call.send_info, "application/dtmf-relay", b"Signal=1\r\n")
    net.run()
    assert phone.take("INFO")
    phone.inbox.clear()  # the refresh's retransmissions
    door.act(call.reinvite, OFFER)
    net.run()
    phone.reply(phone.take("INVITE"), 408, "Request Timeout", to_tag=None)
    ended = door.take(CallEnded)
    assert (ended.reason, ended.status) == ("failed", 408)


@covers(uas(cs.ACTIVE, cs.SESSION_EXPIRED))
def test_uas_session_expires():
    net = Network()
    door, phone, call, dialog = answered(net, extra=("Session-Expires: 90;refresher=uac",
                                                     "Supported: timer"))
    net.run(61)
    assert phone.take("BYE") and door.take(CallEnded).reason == "session expired"


@covers(uas(cs.ACTIVE, cs.REINVITE_TIMEOUT))
def test_uas_reinvite_never_answered():
    net = Network()
    door, phone, call, dialog = answered(net)
    door.act(call.reinvite, OFFER)
    net.run(64 * T1 + 1)
    ended = door.take(CallEnded)
    assert phone.take("BYE") and (ended.reason, ended.status) == ("failed", 408)


# -- every row, and misuse ---------------------------------------------------------------------
# -- delayed offer in our direction: DELAYED_OFFER (RFC 3261 §13.2.1, RFC 3262 §5) ----------
def _reliable(phone, invite, status, rseq, body=b"", tag="flat-tag"):
    reason = "Ringing" if status == 180 else "Session Progress"
    phone.reply(invite, status, reason, to_tag=tag, body=body, extra=(
        contact(phone.address), "Require: 100rel", "RSeq: %d" % rseq))


def _delayed_call(net):
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone, sdp=None)
    assert invite.body == b"" and "Content-Type" not in invite.headers
    return door, phone, call, invite


@covers(delayed(cs.AWAITING_OFFER, cs.RELIABLE_NO_OFFER),
        delayed(cs.AWAITING_OFFER, cs.RELIABLE_OFFER),
        delayed(cs.EARLY_OFFER, cs.RELIABLE_OFFER), delayed(cs.EARLY_OFFER, cs.RELIABLE_NO_OFFER),
        delayed(cs.EARLY_OFFER, cs.GIVE_ANSWER), delayed(cs.OFFER_ANSWERED, cs.RELIABLE_OFFER),
        delayed(cs.OFFER_ANSWERED, cs.RELIABLE_NO_OFFER),
        delayed(cs.OFFER_ANSWERED, cs.SUCCESS_OFFER))
def test_delayed_offer_in_a_reliable_183_is_answered_in_its_prack():
    net = Network()
    door, phone, call, invite = _delayed_call(net)
    _reliable(phone, invite, 180, 1)  # no SDP: PRACKed at once, without a body
    assert phone.take("PRACK").body == b""
    door.take(CallRinging)
    _reliable(phone, invite, 183, 2, body=ANSWER)  # the offer: the PRACK waits for our answer
    assert phone.count("PRACK") == 0
    offer = door.take(CallRinging).offer
    assert offer is not None
    _reliable(phone, invite, 183, 3, body=ANSWER)  # still waiting: this one has no answer
    _reliable(phone, invite, 180, 4)
    assert phone.take("PRACK").headers.get("RAck").startswith("3 ")
    assert phone.take("PRACK").headers.get("RAck").startswith("4 ")
    door.act(call.send_answer, offer, OFFER)
    net.run()
    prack = phone.take("PRACK")
    assert prack.headers.get("RAck").startswith("2 ") and prack.body == OFFER
    assert prack.headers.get("Content-Type") == "application/sdp"
    assert call.local_sdp == OFFER
    with pytest.raises(CallStateError):  # answered already
        call.send_answer(offer, OFFER, net.now)
    _reliable(phone, invite, 183, 5, body=ANSWER)  # repeats the offer: a plain PRACK
    _reliable(phone, invite, 180, 6)
    assert [phone.take("PRACK").body for _ in range(2)] == [b"", b""]
    answer(phone, invite)  # the 200's SDP repeats the offer: the ACK carries nothing
    assert phone.take("ACK").body == b""
    assert door.take(CallEstablished).offer is None and call.state == cs.ACTIVE


@covers(delayed(cs.AWAITING_OFFER, cs.SUCCESS_OFFER), delayed(cs.FINAL_OFFER, cs.GIVE_ANSWER))
def test_delayed_offer_in_the_200_is_answered_in_the_ack():
    net = Network()
    door, phone, call, invite = _delayed_call(net)
    ring(phone, invite)  # unreliable: its SDP would be no offer (none here)
    assert door.take(CallRinging).offer is None and phone.count("PRACK") == 0
    answer(phone, invite)
    assert phone.count("ACK") == 0  # waits for our answer
    established = door.take(CallEstablished)
    assert established.offer is not None and established.sdp == ANSWER
    answer(phone, invite)  # retransmitted meanwhile: absorbed, still no ACK
    assert phone.count("ACK") == 0
    door.act(call.send_answer, established.offer, OFFER)
    net.run()
    ack = phone.take("ACK")
    assert ack.body == OFFER and ack.headers.get("Content-Type") == "application/sdp"
    answer(phone, invite)  # the ACK was lost: the same answer again
    assert phone.take("ACK").body == OFFER
    door.act(call.hangup)
    net.run()
    assert phone.take("BYE").body == b""


def test_delayed_offer_sdp_in_an_unreliable_183_is_no_offer():
    """RFC 3261 §13.2.1: the offer may come only in a reliable response. A PBX without 100rel
    that puts SDP in its 183 makes no offer: no PRACK, no early media; the 200's SDP is the
    offer and our answer goes in the ACK."""
    net = Network()
    door, phone, call, invite = _delayed_call(net)
    phone.reply(invite, 183, "Session Progress", to_tag="flat-tag", body=ANSWER,
                extra=(contact(phone.address),))
    assert door.take(CallRinging).offer is None and phone.count("PRACK") == 0
    answer(phone, invite)
    assert phone.count("ACK") == 0  # the 200 carries the offer: the ACK waits for our answer
    established = door.take(CallEstablished)
    assert established.offer is not None
    door.act(call.send_answer, established.offer, OFFER)
    net.run()
    assert phone.take("ACK").body == OFFER


@covers(delayed(cs.AWAITING_OFFER, cs.SUCCESS_NO_OFFER),
        delayed(cs.OFFER_ANSWERED, cs.SUCCESS_NO_OFFER))
def test_delayed_offer_and_a_200_without_one_is_acked_at_once():
    net = Network()
    door, phone, call, invite = _delayed_call(net)
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),))
    assert phone.take("ACK").body == b""
    established = door.take(CallEstablished)
    assert established.offer is None and established.sdp is None  # the session hangs up
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),))
    assert phone.take("ACK").body == b""


@covers(delayed(cs.EARLY_OFFER, cs.SUCCESS_NO_OFFER),
        delayed(cs.EARLY_OFFER_2XX, cs.GIVE_ANSWER))
def test_delayed_offer_a_200_overtaking_the_prack_waits_for_the_answer_too():
    net = Network()
    door, phone, call, invite = _delayed_call(net)
    _reliable(phone, invite, 183, 1, body=ANSWER)
    offer = door.take(CallRinging).offer
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),))
    assert phone.count("ACK") == 0 and phone.count("PRACK") == 0
    assert door.take(CallEstablished).offer is None  # the 183's offer is being answered
    door.act(call.send_answer, offer, OFFER)
    net.run()
    assert phone.take("PRACK").body == OFFER and phone.take("ACK").body == b""


@covers(delayed(cs.EARLY_OFFER, cs.SUCCESS_OFFER))
def test_delayed_offer_a_200_with_sdp_overtaking_the_prack():
    net = Network()
    door, phone, call, invite = _delayed_call(net)
    _reliable(phone, invite, 183, 1, body=ANSWER)
    offer = door.take(CallRinging).offer
    answer(phone, invite)
    assert phone.count("ACK") == 0
    door.act(call.send_answer, offer, None)  # no answer could be written: none in the PRACK
    net.run()
    assert phone.take("PRACK").body == b"" and phone.take("ACK").body == b""


def test_delayed_offer_of_a_branch_given_up_before_its_first_18x_still_gets_its_prack():
    net = Network()
    door, phone, call, invite = _delayed_call(net)
    door.act(call.hangup)  # CANCEL waits for a provisional response (§9.1)
    net.run()
    _reliable(phone, invite, 183, 1, body=ANSWER)
    assert phone.take("PRACK").body == b""  # nobody answers the offer: PRACKed without one
    assert phone.take("CANCEL") and not door.has(CallRinging)


def test_every_row_is_exercised():
    missing = []
    for name, table in TABLES:
        for state, key in table:
            if (name, state, key) not in DECLARED:
                missing.append((name, state, key))
    assert not missing, "rows without a scenario: %r" % (missing,)
    for table_name, state, key in DECLARED:
        assert (state, key) in dict(TABLES)[table_name], (table_name, state, key)


def test_rows_cite_only_known_states_and_actions():
    from firmware.sip.branch import Branch
    from firmware.sip.call import Call
    for name, table in TABLES:
        states = cs.BRANCH_STATES if name == "BRANCH" else DELAYED_STATES \
            if name == "DELAYED_OFFER" else (
                (cs.NO_OFFER, cs.OFFER_RECEIVED) if name == "OFFER" else cs.CALL_STATES)
        owner = Branch if name in ("BRANCH", "DELAYED_OFFER") else Call
        for (state, _), (next_state, action) in table.items():
            assert state in states and next_state in states
            assert action is None or hasattr(owner, "_" + action), (name, action)


def test_incoming_call_commands_in_the_wrong_state_raise():
    net = Network()
    door, phone, call, dialog = answered(net, ack=False)
    with pytest.raises(CallStateError):
        call.answer(OFFER, net.now)  # answer after answer
    with pytest.raises(CallStateError):
        call.ring(net.now)
    with pytest.raises(CallStateError):
        call.reject(486, net.now)
    with pytest.raises(CallStateError):
        call.reinvite(OFFER, net.now)  # no re-INVITE before the ACK
    with pytest.raises(CallStateError):
        call.accept_offer(OFFER, net.now)  # no offer pending
    with pytest.raises(CallStateError):
        call.reject_offer(488, net.now)
    phone.request("BYE", 2, dialog)
    with pytest.raises(CallStateError) as raised:
        call.hangup(net.now)  # hangup on an ended call
    assert "hangup" in str(raised.value) and "ended" in str(raised.value)
    before = len(net.wire)
    net.run()
    assert len(net.wire) == before  # the misuse sent nothing
    assert phone.count(200) == 1 and call.state == cs.ENDED  # the BYE's 200


def test_outgoing_call_commands_in_the_wrong_state_raise():
    net = Network()
    phone = Phone(net, FLAT1)
    door, call, (invite,) = outgoing(net, phone)
    for command, args in ((call.answer, (OFFER,)), (call.ring, ()), (call.reject, (486,)),
                          (call.reinvite, (OFFER,)),
                          (call.send_info, ("application/dtmf-relay", b"Signal=1\r\n"))):
        with pytest.raises(CallStateError):
            command(*args, net.now)
    assert call.state == cs.CALLING and phone.count("INVITE") == 0
