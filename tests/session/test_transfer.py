"""The session layer's part of being transferred (firmware/session/transfer.py), in memory:
REFER → TransferRequested → transfer (202, NOTIFY 100, INVITE with Referred-By) → the new
call's progress NOTIFYed and, once answered, the first call BYEd; a failed new call leaves the
first one up; refuse_transfer answers the REFER; an INVITE with Replaces hangs up the call it
replaces once established."""

from firmware.session import events as ev
from firmware.sip.endpoint import Peer
from tests.session.test_session import RTP_PORT, Door, ack_for, active_incoming, in_dialog
from tests.sip.test_call import ANSWER, DOOR, FLAT1, FLAT2, Network, Phone, contact, request_text


def _refer(net, target="sip:flat2@127.0.0.1:5064"):
    door, phone, flat2 = Door(net, max_calls=1), Phone(net, FLAT1), Phone(net, FLAT2)
    call_id, ok = active_incoming(net, door, phone)
    in_dialog(phone, ok, "REFER", 2, extra=("Refer-To: <%s>" % target,
                                            "Referred-By: <sip:flat@127.0.0.1:5062>"))
    return door, phone, flat2, call_id


def test_transfer_notifies_progress_and_ends_the_first_call_when_answered():
    net = Network()
    door, phone, flat2, call_id = _refer(net)
    asked = door.take(ev.TransferRequested)
    assert (asked.call_id, asked.target, asked.replaces) == (call_id, "sip:flat2@127.0.0.1:5064",
                                                              None)
    routed = [(asked.target, Peer("udp", *FLAT2))]
    new = door.do("transfer", call_id, "newcall00001", routed, DOOR[0], RTP_PORT + 2)
    assert new is not None and new.id == "newcall00001"
    assert phone.take(202)
    assert phone.take("NOTIFY").body == b"SIP/2.0 100 Trying\r\n"
    invite = flat2.take("INVITE")
    assert invite.headers.get("Referred-By") == "<sip:flat@127.0.0.1:5062>"
    flat2.reply(invite, 180, "Ringing", extra=(contact(FLAT2),))
    assert phone.take("NOTIFY").body == b"SIP/2.0 180 Ringing\r\n"
    flat2.reply(invite, 200, "OK", extra=(contact(FLAT2),), body=ANSWER)
    net.run()
    final = phone.take("NOTIFY")
    assert final.body == b"SIP/2.0 200 OK\r\n"
    assert final.headers.get("Subscription-State").startswith("terminated")
    assert phone.take("BYE")
    assert door.take(ev.CallEnded).call_id == call_id
    assert door.sessions.get("newcall00001").state == "active"


def test_a_failed_transfer_is_notified_and_the_first_call_stays():
    net = Network()
    door, phone, flat2, call_id = _refer(net)
    door.take(ev.TransferRequested)
    door.do("transfer", call_id, "newcall00002", [("sip:flat2@127.0.0.1:5064",
                                                   Peer("udp", *FLAT2))], DOOR[0], RTP_PORT + 2)
    flat2.reply(flat2.take("INVITE"), 486, "Busy Here")
    net.run()
    notifies = [m for m in phone.inbox if getattr(m, "method", None) == "NOTIFY"]
    assert notifies[-1].body == b"SIP/2.0 486 Busy Here\r\n"
    assert phone.count("BYE") == 0 and door.sessions.get(call_id).state == "active"


def test_a_refused_transfer_dials_nothing():
    net = Network()
    door, phone, flat2, call_id = _refer(net, "sip:+19005550199@127.0.0.1")
    door.take(ev.TransferRequested)
    door.do("refuse_transfer", call_id, 403)
    assert phone.take(403) and flat2.count("INVITE") == 0 and phone.count("NOTIFY") == 0


def test_a_replacing_call_hangs_up_the_call_it_replaces_once_established():
    net = Network()
    door, phone, pbx = Door(net, max_calls=1), Phone(net, FLAT1), Phone(net, FLAT2)
    call_id, ok = active_incoming(net, door, phone)
    session = door.sessions.get(call_id)
    dialog = session.call.dialog
    replaces = "%s;to-tag=%s;from-tag=%s" % (dialog.call_id, dialog.local_tag, dialog.remote_tag)
    pbx.send(request_text("INVITE", "sip:door@%s:%d" % DOOR, FLAT2, "z9hG4bKrep1",
                          "<sip:flat2@127.0.0.1>;tag=p1", "<sip:door@127.0.0.1>", "rep-1", 1,
                          (contact(FLAT2), "Replaces: " + replaces), ANSWER))
    offered = [e for e in door.events if isinstance(e, ev.CallOffered)][-1]
    assert offered.replaces == call_id
    door.do("answer", offered.call_id)
    assert phone.count("BYE") == 0  # not before the replacing call is up
    pbx.send(ack_for(pbx.take(200), pbx))
    assert phone.take("BYE")
