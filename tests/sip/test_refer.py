"""REFER (RFC 3515, 3892), Replaces (RFC 3891) and MESSAGE (RFC 3428) in the call layer, in
memory (firmware/sip/refer.py, firmware/sip/messaging.py), with the scripted peers of
tests/sip/test_call.py."""

import pytest

from firmware.sip import refer
from firmware.sip.call import (
    CallEnded,
    IncomingCall,
    MessageDelivered,
    MessageFailed,
    MessageReceived,
    ReferReceived,
    ReferRefused,
)
from firmware.sip.callstate import CallStateError
from firmware.sip.endpoint import Peer
from tests.sip.test_call import (
    DOOR,
    FLAT1,
    FLAT2,
    Network,
    Phone,
    Station,
    answered_call,
    contact,
    request_text,
)


# -- parsing -----------------------------------------------------------------------------------
def test_refer_to_plain_sip_target():
    target = refer.parse_refer_to(["<sip:flat2@example.org>"])
    assert (target.uri, target.replaces, target.method) == ("sip:flat2@example.org", None,
                                                            "INVITE")


def test_refer_to_with_replaces_is_decoded():
    target = refer.parse_refer_to([
        "<sip:flat2@example.org?Replaces=abc%40host%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>"])
    assert target.uri == "sip:flat2@example.org"
    assert target.replaces == "abc@host;to-tag=t1;from-tag=f1"
    assert refer.parse_replaces(target.replaces) == ("abc@host", "t1", "f1", False)


@pytest.mark.parametrize("value,status", [
    ("<tel:+19005550199>", 403),
    ("<http://example.org/>", 403),
    ("<sip:flat2@example.org?Route=%3Csip:evil.example%3E>", 403),
    ("<sip:flat2@example.org?From=x&Replaces=a%3Bto-tag%3Dt%3Bfrom-tag%3Df>", 403),
    ("<sip:flat2@example.org;method=BYE>", 403),
    ("<sip:example.org>", 403),
    ("<sip:flat2@example.org?Replaces=broken>", 400),
    ("not a uri", 400),
])
def test_refer_to_refused(value, status):
    with pytest.raises(refer.ReferError) as info:
        refer.parse_refer_to([value])
    assert info.value.status == status


def test_exactly_one_refer_to():
    for values in ([], ["<sip:a@b>", "<sip:c@d>"]):
        with pytest.raises(refer.ReferError) as info:
            refer.parse_refer_to(values)
        assert info.value.status == 400


def test_sipfrag():
    assert refer.sipfrag(200) == b"SIP/2.0 200 OK\r\n"
    assert refer.sipfrag(486, "Busy Here") == b"SIP/2.0 486 Busy Here\r\n"


# -- REFER within a call ------------------------------------------------------------------------
def _call_with_refer(refer_to, source=FLAT1, net=None):
    net = net or Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone)
    phone.received_invite = invite
    dialog = Phone.dialog_of(invite)
    sender = phone if source == FLAT1 else Phone(net, source)
    sender.request("REFER", 2, dialog, extra=(
        "Refer-To: " + refer_to, "Referred-By: <sip:flat@127.0.0.1>",
        contact(FLAT1)))
    return net, door, phone, sender, call


def test_refer_reported_then_accepted_with_202_and_notify_trying():
    net, door, phone, _, call = _call_with_refer("<sip:flat2@127.0.0.1>")
    event = door.take(ReferReceived)
    assert (event.target, event.replaces, event.referred_by) == (
        "sip:flat2@127.0.0.1", None, "<sip:flat@127.0.0.1>")
    assert phone.count(202) == 0  # parked until the application decides
    door.act(call.accept_refer)
    net.run()
    assert phone.take(202)
    notify = phone.take("NOTIFY")
    assert notify.headers.get("Event") == "refer"
    assert notify.headers.get("Subscription-State").startswith("active")
    assert notify.body == b"SIP/2.0 100 Trying\r\n"
    door.act(call.notify_refer, 200)
    net.run()
    final = phone.take("NOTIFY")
    assert final.body == b"SIP/2.0 200 OK\r\n"
    assert final.headers.get("Subscription-State").startswith("terminated")
    with pytest.raises(CallStateError):
        door.act(call.notify_refer, 200)  # the subscription is over


def test_refer_rejected_by_the_application_gets_its_status():
    net, door, phone, _, call = _call_with_refer("<sip:+19005550199@127.0.0.1>")
    door.take(ReferReceived)
    door.act(call.reject_refer, 403)
    net.run()
    assert phone.take(403) and phone.count("NOTIFY") == 0


@pytest.mark.parametrize("refer_to", [
    "<tel:+19005550199>", "<sip:flat2@127.0.0.1?Contact=%3Csip:x%40evil%3E>"])
def test_refer_refused_by_the_call_layer(refer_to):
    net, door, phone, _, call = _call_with_refer(refer_to)
    assert phone.take(403)
    refused = door.take(ReferRefused)
    assert refused.call is call and refused.status == 403
    assert not door.has(ReferReceived)


def test_refer_with_the_dialog_ids_from_another_address_is_refused():
    net, door, phone, other, call = _call_with_refer("<sip:flat2@127.0.0.1>", source=FLAT2)
    assert other.take(403)
    assert "not from the call's peer" in door.take(ReferRefused).reason
    assert not door.has(ReferReceived)


def test_refer_outside_a_dialog_is_refused_and_reported():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    phone.send(request_text("REFER", "sip:door@%s:%d" % DOOR, FLAT1, "z9hG4bKr1",
                            "<sip:flat@127.0.0.1>;tag=x", "<sip:door@127.0.0.1>", "r1@flat", 1,
                            ("Refer-To: <sip:flat2@127.0.0.1>",)))
    assert phone.take(403)
    refused = door.take(ReferRefused)
    assert refused.call is None and refused.reason == "REFER outside a dialog"


def test_a_second_refer_while_one_is_pending_is_refused():
    net, door, phone, _, call = _call_with_refer("<sip:flat2@127.0.0.1>")
    door.take(ReferReceived)
    phone.request("REFER", 3, Phone.dialog_of(_invite(phone)),
                  extra=("Refer-To: <sip:flat2@127.0.0.1>", contact(FLAT1)))
    assert phone.take(403)
    assert "already in progress" in door.take(ReferRefused).reason


def _invite(phone):
    return phone.received_invite


# -- Referred-By / Replaces on the new INVITE; INVITE with Replaces ----------------------------
def test_transfer_invite_carries_referred_by_and_replaces():
    net = Network()
    door, flat2 = Station(net, max_calls=1), Phone(net, FLAT2)
    call = door.call(FLAT2, headers=[("Referred-By", "<sip:flat@127.0.0.1>"),
                                     ("Replaces", "c1;to-tag=a;from-tag=b")])
    assert call is not None
    net.run()
    invite = flat2.take("INVITE")
    assert invite.headers.get("Referred-By") == "<sip:flat@127.0.0.1>"
    assert invite.headers.get("Replaces") == "c1;to-tag=a;from-tag=b"
    # one extra call beside the one a transfer replaces, not more
    assert door.call(FLAT1) is None
    assert door.call(FLAT1, extra_calls=1) is not None


def test_incoming_invite_with_replaces_names_the_call_it_replaces():
    net = Network()
    door, phone, pbx = Station(net), Phone(net, FLAT1), Phone(net, FLAT2)
    call, invite = answered_call(net, door, phone)
    dialog = call.dialog
    replaces = "%s;to-tag=%s;from-tag=%s" % (dialog.call_id, dialog.local_tag,
                                              dialog.remote_tag)
    pbx.send(request_text("INVITE", "sip:door@%s:%d" % DOOR, FLAT2, "z9hG4bKrep1",
                          "<sip:flat2@127.0.0.1>;tag=p1", "<sip:door@127.0.0.1>", "rep-1", 1,
                          (contact(FLAT2), "Replaces: " + replaces)))
    new = door.take(IncomingCall).call
    assert new.replaces == call.id
    # a Replaces naming no call of ours: 481
    pbx.send(request_text("INVITE", "sip:door@%s:%d" % DOOR, FLAT2, "z9hG4bKrep2",
                          "<sip:flat2@127.0.0.1>;tag=p2", "<sip:door@127.0.0.1>", "rep-2", 1,
                          (contact(FLAT2), "Replaces: nope;to-tag=x;from-tag=y")))
    assert pbx.take(481)


# -- MESSAGE ------------------------------------------------------------------------------------
def test_message_sent_with_digest_answered_once():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    door.calls.messages.send("m1", "sip:flat@127.0.0.1:5062", Peer("udp", *FLAT1), "hello",
                             net.now)
    net.run()
    first = phone.take("MESSAGE")
    assert first.body == b"hello" and first.headers.get("Content-Type").startswith("text/plain")
    phone.reply(first, 401, "Unauthorized", extra=(
        'WWW-Authenticate: Digest realm="r", nonce="n1", qop="auth"',))
    second = phone.take("MESSAGE")
    assert "Authorization" in second.headers
    assert second.headers.get("Call-ID") == first.headers.get("Call-ID")
    assert second.cseq().seq == first.cseq().seq + 1
    assert second.from_address().tag == first.from_address().tag
    phone.reply(second, 401, "Unauthorized", extra=(
        'WWW-Authenticate: Digest realm="r", nonce="n2", qop="auth"',))
    assert phone.count("MESSAGE") == 0  # never answered twice: a failure
    failed = door.take(MessageFailed)
    assert failed.status == 401 and failed.message_id == "m1"


def test_message_delivered_and_timeout_reported_once():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    door.calls.messages.send("m2", "sip:flat@127.0.0.1:5062", Peer("udp", *FLAT1), "x", net.now)
    net.run()
    phone.reply(phone.take("MESSAGE"), 200)
    assert door.take(MessageDelivered).status == 200
    door.calls.messages.send("m3", "sip:flat@127.0.0.1:5064", Peer("udp", *FLAT2), "x", net.now)
    net.run(60.0)
    failed = door.take(MessageFailed)
    assert failed.status is None and failed.message_id == "m3"
    assert not door.has(MessageFailed)


def test_incoming_message_waits_for_the_application():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    phone.send(request_text("MESSAGE", "sip:door@%s:%d" % DOOR, FLAT1, "z9hG4bKm1",
                            "<sip:flat@127.0.0.1>;tag=x", "<sip:door@127.0.0.1>", "m1@flat", 1,
                            ("Content-Type: text/plain",), b"open \x01up"))
    received = door.take(MessageReceived)
    assert received.text == "open ?up" and not received.trusted
    assert phone.count(200) == 0 and phone.count(403) == 0
    door.act(door.calls.messages.answer, received.message_id, 403)
    net.run()
    assert phone.take(403)


def test_call_ends_normally_after_a_transfer():
    net, door, phone, _, call = _call_with_refer("<sip:flat2@127.0.0.1>")
    door.take(ReferReceived)
    door.act(call.accept_refer)
    net.run()
    door.act(call.hangup)
    net.run()
    assert phone.take("BYE") and door.take(CallEnded)


def test_explicit_method_invite_marks_a_join():
    target = refer.parse_refer_to(["<sip:flat2@example.org;method=INVITE>"])
    assert target.join and target.uri == "sip:flat2@example.org"
    assert not refer.parse_refer_to(["<sip:flat2@example.org>"]).join
