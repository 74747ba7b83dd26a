"""Dialogs (firmware/sip/dialog.py): RFC 3261 §12 state from literal messages."""

from firmware.sip.dialog import CONFIRMED, EARLY, Dialog, dialog_key
from firmware.sip.message import CSeq, NameAddress, parse


def message(first_line, *headers):
    return parse(("\r\n".join((first_line,) + headers + ("Content-Length: 0",)) +
                  "\r\n\r\n").encode())


INVITE = message(
    "INVITE sip:flat@127.0.0.1:5062 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKd1",
    "From: \"Door\" <sip:door@example.org>;tag=door-tag", "To: <sip:flat@example.org>",
    "Call-ID: d1@door", "CSeq: 4 INVITE", "Contact: <sip:door@127.0.0.1:5060>")


def response(status, *extra):
    return message("SIP/2.0 %d X" % status,
                   "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKd1",
                   "From: \"Door\" <sip:door@example.org>;tag=door-tag",
                   "To: <sip:flat@example.org>;tag=flat-tag", "Call-ID: d1@door",
                   "CSeq: 4 INVITE", *extra)


def incoming_request(method, seq, *extra):
    return message("%s sip:door@127.0.0.1:5060 SIP/2.0" % method,
                   "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKr%d" % seq,
                   "From: <sip:flat@example.org>;tag=flat-tag",
                   "To: \"Door\" <sip:door@example.org>;tag=door-tag",
                   "Call-ID: d1@door", "CSeq: %d %s" % (seq, method), *extra)


def test_uac_dialog_from_a_2xx_reverses_record_route_and_targets_the_contact():
    dialog = Dialog.as_uac(INVITE, response(
        200, "Contact: <sip:flat@127.0.0.9:5099>", "Record-Route: <sip:p2;lr>",
        "Record-Route: <sip:p1;lr>"))
    assert dialog.state == CONFIRMED
    assert dialog.id == ("d1@door", "door-tag", "flat-tag")
    assert dialog.route_set == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert dialog.remote_target == "sip:flat@127.0.0.9:5099"
    assert dialog.next_hop_uri() == "sip:p1;lr"
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:flat@127.0.0.9:5099"
    assert CSeq.parse(bye.headers.get("CSeq")).seq == 5
    assert bye.headers.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert NameAddress.parse(bye.headers.get("From")).tag == "door-tag"
    assert NameAddress.parse(bye.headers.get("To")).tag == "flat-tag"
    assert NameAddress.parse(bye.headers.get("From")).display_name == "Door"


def test_ack_reuses_the_invite_cseq():
    dialog = Dialog.as_uac(INVITE, response(200, "Contact: <sip:flat@127.0.0.1:5062>"))
    ack = dialog.create_request("ACK", cseq=4)
    assert ack.headers.get("CSeq") == "4 ACK"
    assert CSeq.parse(dialog.create_request("INFO").headers.get("CSeq")).seq == 5


def test_early_dialog_is_confirmed_with_the_2xx_route_set_and_target():
    dialog = Dialog.as_uac(INVITE, response(180, "Contact: <sip:flat@127.0.0.1:7000>",
                                            "Record-Route: <sip:early;lr>"))
    assert dialog.state == EARLY and dialog.route_set == ["<sip:early;lr>"]
    dialog.confirm(response(200, "Contact: <sip:flat@127.0.0.1:7001>",
                            "Record-Route: <sip:final;lr>"))
    assert dialog.state == CONFIRMED
    assert dialog.route_set == ["<sip:final;lr>"]
    assert dialog.remote_target == "sip:flat@127.0.0.1:7001"


def test_strict_router_becomes_the_request_uri():
    dialog = Dialog.as_uac(INVITE, response(200, "Contact: <sip:flat@127.0.0.1:5062>",
                                            "Record-Route: <sip:strict.example.org>"))
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:strict.example.org"  # §12.2.1.1
    assert bye.headers.get_all("Route") == ["<sip:flat@127.0.0.1:5062>"]


def test_uas_dialog_keeps_record_route_order_and_checks_cseq_order():
    invite = incoming_request("INVITE", 10, "Contact: <sip:flat@127.0.0.1:5062>",
                              "Record-Route: <sip:p1;lr>", "Record-Route: <sip:p2;lr>")
    invite.headers.set("To", "<sip:door@example.org>")
    dialog = Dialog.as_uas(invite, "door-tag")
    assert dialog.state == EARLY
    assert dialog.id == ("d1@door", "door-tag", "flat-tag")
    assert dialog.route_set == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert dialog.accepts(incoming_request("INFO", 11))
    assert not dialog.accepts(incoming_request("INFO", 11))  # §12.2.2: not above remote CSeq
    assert not dialog.accepts(incoming_request("INFO", 9))
    assert dialog.accepts(incoming_request("ACK", 10))
    bye = dialog.create_request("BYE")
    assert bye.headers.get("CSeq") == "1 BYE"
    assert str(bye.uri) == "sip:flat@127.0.0.1:5062"


def test_reinvite_refreshes_the_remote_target():
    invite = incoming_request("INVITE", 1, "Contact: <sip:flat@127.0.0.1:5062>")
    dialog = Dialog.as_uas(invite, "door-tag")
    assert dialog.accepts(incoming_request("INVITE", 2, "Contact: <sip:flat@127.0.0.1:6000>"))
    assert dialog.remote_target == "sip:flat@127.0.0.1:6000"
    assert dialog.accepts(incoming_request("INFO", 3, "Contact: <sip:flat@127.0.0.1:7000>"))
    assert dialog.remote_target == "sip:flat@127.0.0.1:6000"  # INFO is no target refresh


def test_dialog_key_from_either_side():
    request = incoming_request("BYE", 3)
    assert dialog_key(request, local_is_from=False) == ("d1@door", "door-tag", "flat-tag")
    assert dialog_key(request, local_is_from=True) == ("d1@door", "flat-tag", "door-tag")


def test_uas_dialog_without_a_contact_uri_targets_the_from_uri():
    """RFC 2543 callers may omit Contact (RFC 4475 §3.3.15); `Contact: *` names no URI either.
    The BYE used to raise ParseError (remote target None); found by the type checker."""
    for contact in ((), ("Contact: *",)):
        dialog = Dialog.as_uas(incoming_request("INVITE", 1, *contact), "door-tag")
        assert dialog.remote_target == "sip:flat@example.org"
        assert str(dialog.create_request("BYE").uri) == "sip:flat@example.org"
