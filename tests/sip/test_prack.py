"""PBX dialects on the call layer, no I/O (issue 19): reliable provisional responses (RFC 3262)
both ways, Require/Unsupported (RFC 3261 §8.2.2.3) and qop=auth-int on a challenged INVITE.

Driven over the in-memory network of test_call.py: the door is a real UserAgent + CallManager,
the PBX/phone a scripted peer writing literal SIP."""

from firmware.sip import digest, prack
from firmware.sip.call import CallEnded, CallEstablished, CallRinging, IncomingCall
from firmware.sip.transaction import T1
from tests.sip.test_call import (
    ANSWER,
    FLAT1,
    OFFER,
    Network,
    Phone,
    Station,
    contact,
    cseq,
    incoming_invite,
)


def _reliable_180(phone, invite, rseq, tag="flat-tag"):
    phone.reply(invite, 180, "Ringing", to_tag=tag, extra=(
        contact(phone.address), "Require: 100rel", "RSeq: %d" % rseq))


# -- UAC: the PBX's 18x come reliably --------------------------------------------------------
def test_our_invite_says_we_support_100rel_and_a_reliable_180_is_pracked_once():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call = door.call(phone.address)
    net.run()
    invite = phone.take("INVITE")
    assert "100rel" in invite.headers.get_all("Supported")
    _reliable_180(phone, invite, 7)
    prack_ = phone.take("PRACK")
    assert prack_.headers.get("RAck") == "7 %d INVITE" % cseq(invite).seq
    assert prack_.headers.get("Call-ID") == invite.headers.get("Call-ID")
    assert "tag=flat-tag" in prack_.headers.get("To")
    assert cseq(prack_).seq == cseq(invite).seq + 1 and cseq(prack_).method == "PRACK"
    assert str(prack_.uri) == "sip:flat@%s:%d" % FLAT1
    phone.reply(prack_, 200)
    assert door.take(CallRinging).call is call
    # the PBX retransmits its 180 (say, the 200 to our PRACK crossed it): no new PRACK,
    # not a second ring
    _reliable_180(phone, invite, 7)
    assert phone.count("PRACK") == 0 and not door.has(CallRinging)
    # out of sequence (a gap): discarded, no PRACK
    _reliable_180(phone, invite, 9)
    assert phone.count("PRACK") == 0 and not door.has(CallRinging)
    # the next one in sequence (a 183 with early media, say) is PRACKed and reported
    phone.reply(invite, 183, "Session Progress", extra=(
        contact(phone.address), "Require: 100rel", "RSeq: 8"), body=ANSWER)
    assert phone.take("PRACK").headers.get("RAck") == "8 %d INVITE" % cseq(invite).seq
    assert door.take(CallRinging).sdp == ANSWER
    phone.reply(invite, 200, extra=(contact(phone.address),), body=ANSWER)
    assert door.take(CallEstablished)
    assert cseq(phone.take("ACK")).seq == cseq(invite).seq  # the ACK keeps the INVITE's CSeq


def test_an_unreliable_180_gets_no_prack():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    door.call(phone.address)
    net.run()
    invite = phone.take("INVITE")
    phone.reply(invite, 180, "Ringing", extra=(contact(phone.address), "RSeq: 1"))
    assert phone.count("PRACK") == 0 and door.has(CallRinging)


def test_each_early_dialog_of_a_forked_invite_has_its_own_rseq():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    door.call(phone.address)
    net.run()
    invite = phone.take("INVITE")
    _reliable_180(phone, invite, 1, tag="fork-a")
    _reliable_180(phone, invite, 1, tag="fork-b")
    racks = [phone.take("PRACK") for _ in range(2)]
    assert sorted(m.headers.get("To").split("tag=")[1] for m in racks) == ["fork-a", "fork-b"]


# -- UAS: a caller that requires 100rel ------------------------------------------------------
def _incoming_requiring_100rel(net):
    door, phone = Station(net, ring_timeout=60.0), Phone(net, FLAT1)
    incoming_invite(phone, extra=("Require: 100rel", "Supported: 100rel"))
    call = door.take(IncomingCall).call
    return door, phone, call


def _prack_for(phone, ringing, rseq=None, cseq_=2):
    rack = "%s 1 INVITE" % (rseq if rseq is not None else ringing.headers.get("RSeq"))
    frm, to = ringing.headers.get("From"), ringing.headers.get("To")
    from tests.sip.test_call import request_text
    phone.send(request_text("PRACK", "sip:door@127.0.0.1:5060", phone.address,
                            "z9hG4bKprack%d" % cseq_, frm, to, ringing.headers.get("Call-ID"),
                            cseq_, ("RAck: " + rack,)))


def test_our_180_to_a_caller_requiring_100rel_is_reliable_until_pracked():
    net = Network()
    door, phone, call = _incoming_requiring_100rel(net)
    door.act(call.ring)
    net.run()
    ringing = phone.take(180)
    assert ringing.headers.get("Require") == "100rel"
    rseq = int(ringing.headers.get("RSeq"))
    assert 1 <= rseq < 2 ** 31
    net.run(T1 + 0.01)  # not PRACKed: sent again at T1, then 2*T1 later
    assert phone.take(180).headers.get("RSeq") == str(rseq)
    net.run(2 * T1)
    assert phone.take(180)
    # a PRACK for another RSeq matches nothing: 481, and the retransmissions go on
    _prack_for(phone, ringing, rseq=rseq + 5, cseq_=2)
    assert phone.take(481)
    _prack_for(phone, ringing, cseq_=3)
    assert phone.take(200).headers.get("CSeq") == "3 PRACK"
    phone.inbox.clear()
    net.run(10)
    assert phone.count(180) == 0  # acknowledged: no more retransmissions
    door.act(call.answer, OFFER)
    net.run()
    assert phone.take(200).body == OFFER


def test_a_reliable_180_never_pracked_fails_the_invite_with_504_after_64_t1():
    net = Network()
    door, phone, call = _incoming_requiring_100rel(net)
    door.act(call.ring)
    net.run(64 * T1 + 1)
    assert phone.count(180) >= 5  # T1, 2, 4, 8, 16 s ... (RFC 3262 §3: no T2 cap)
    assert phone.take(504)
    ended = door.take(CallEnded)
    assert ended.status == 504


def test_a_caller_only_supporting_100rel_gets_a_plain_180():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    incoming_invite(phone, extra=("Supported: 100rel",))
    call = door.take(IncomingCall).call
    door.act(call.ring)
    net.run(1)
    ringing = phone.take(180)
    assert "RSeq" not in ringing.headers and phone.count(180) == 0


# -- Require / Unsupported (RFC 3261 §8.2.2.3) ------------------------------------------------
def test_an_invite_requiring_an_extension_we_lack_gets_420_with_unsupported():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    incoming_invite(phone, extra=("Require: 100rel, precondition", "Require: sec-agree"))
    refused = phone.take(420)
    assert refused.headers.get_all("Unsupported") == ["precondition", "sec-agree"]
    assert "100rel" in refused.headers.get_all("Supported")
    assert not door.has(IncomingCall)


def test_what_we_support_is_required_without_a_420():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    incoming_invite(phone, extra=("Require: timer", "Session-Expires: 1800"))
    assert phone.count(420) == 0 and door.has(IncomingCall)
    assert prack.requires(phone.take(100)) is False


# -- qop=auth-int: the INVITE's body is hashed (RFC 7616 §3.4.3) -------------------------------
def test_an_auth_int_challenge_to_our_invite_hashes_the_sdp_body():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    door.call(phone.address)
    net.run()
    invite = phone.take("INVITE")
    phone.reply(invite, 401, "Unauthorized", extra=(
        'WWW-Authenticate: Digest realm="example.org", nonce="n-int", qop="auth-int", '
        'algorithm=SHA-256',))
    retry = phone.take("INVITE")
    value = retry.headers.get("Authorization")
    fields = dict(part.strip().split("=", 1) for part in value[len("Digest "):].split(","))
    fields = {name: text.strip('"') for name, text in fields.items()}
    assert fields["qop"] == "auth-int" and fields["algorithm"] == "SHA-256"
    expected = digest.compute_response(
        "SHA-256", "door", "example.org", "secret", "INVITE", fields["uri"], "n-int",
        fields["nc"], fields["cnonce"], "auth-int", retry.body)
    assert retry.body == OFFER and fields["response"] == expected


# -- a 401 on the BYE, then a stale nonce (RFC 7616 §3.3) ----------------------------------------
def test_a_bye_challenged_again_as_stale_is_answered_once_more_and_no_further():
    from tests.sip.test_call import answered_call

    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone)
    door.act(call.hangup)
    net.run()
    bye = phone.take("BYE")
    for nonce, stale in (("n1", ""), ("n2", ", stale=true")):
        phone.reply(bye, 401, "Unauthorized", extra=(
            'WWW-Authenticate: Digest realm="pbx", nonce="%s", qop="auth"%s' % (nonce, stale),))
        again = phone.take("BYE")
        assert 'nonce="%s"' % nonce in again.headers.get("Authorization")
        assert cseq(again).seq == cseq(bye).seq + 1
        bye = again
    phone.reply(bye, 401, "Unauthorized", extra=(
        'WWW-Authenticate: Digest realm="pbx", nonce="n3", qop="auth", stale=true',))
    assert phone.count("BYE") == 0  # a PBX that keeps saying stale is not answered for ever


# -- a challenged PRACK (RFC 3262 §7.2: a request within the early dialog; RFC 3261 §22.2) -------
def _auth_fields(value):
    fields = dict(part.strip().split("=", 1) for part in value[len("Digest "):].split(","))
    return {name: text.strip('"') for name, text in fields.items()}


def test_a_challenged_prack_goes_again_with_credentials_the_same_rack_and_a_new_cseq():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    door.call(phone.address)
    net.run()
    invite = phone.take("INVITE")
    _reliable_180(phone, invite, 5)
    first = phone.take("PRACK")
    phone.reply(first, 407, "Proxy Authentication Required", extra=(
        'Proxy-Authenticate: Digest realm="pbx", nonce="p1", qop="auth", algorithm=MD5',))
    again = phone.take("PRACK")
    assert again.headers.get("RAck") == first.headers.get("RAck") == "5 1 INVITE"
    assert cseq(again).seq == cseq(first).seq + 1 and cseq(again).method == "PRACK"
    fields = _auth_fields(again.headers.get("Proxy-Authorization"))
    assert fields["nonce"] == "p1" and fields["response"] == digest.compute_response(
        "MD5", "door", "pbx", "secret", "PRACK", fields["uri"], "p1", fields["nc"],
        fields["cnonce"], "auth", b"")
    # challenged again without stale=true: the password is wrong, no loop
    phone.reply(again, 407, "Proxy Authentication Required", extra=(
        'Proxy-Authenticate: Digest realm="pbx", nonce="p2", qop="auth"',))
    assert phone.count("PRACK") == 0


def test_a_challenged_prack_carrying_our_answer_keeps_it_and_hashes_it_for_auth_int():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call = door.call(phone.address, sdp=None)  # a delayed offer: the 183 brings the offer
    net.run()
    invite = phone.take("INVITE")
    phone.reply(invite, 183, "Session Progress", extra=(
        contact(phone.address), "Require: 100rel", "RSeq: 1"), body=ANSWER)
    door.act(call.send_answer, door.take(CallRinging).offer, OFFER)
    net.run()
    first = phone.take("PRACK")
    assert first.body == OFFER
    phone.reply(first, 401, "Unauthorized", extra=(
        'WWW-Authenticate: Digest realm="pbx", nonce="i1", qop="auth-int", algorithm=SHA-256',))
    again = phone.take("PRACK")
    assert again.body == OFFER and again.headers.get("Content-Type") == "application/sdp"
    fields = _auth_fields(again.headers.get("Authorization"))
    assert fields["qop"] == "auth-int" and fields["response"] == digest.compute_response(
        "SHA-256", "door", "pbx", "secret", "PRACK", fields["uri"], "i1", fields["nc"],
        fields["cnonce"], "auth-int", OFFER)
