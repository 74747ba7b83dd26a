"""The controller's transfer and message policy (firmware/app/transfers.py, issue 20)."""

from firmware.app import actions as a
from firmware.app.transfers import MessageLimiter, allowed_target, message_text
from tests.app.harness import CONCIERGE, FLAT1, FLAT2, ControllerHarness, config, events, of_type

PREMIUM = "sip:+19005550199@127.0.0.1"


def test_allowed_target_compares_user_host_and_port():
    allowed = [FLAT1, "sip:flat2@127.0.0.1:5080"]
    assert allowed_target("sip:flat1@127.0.0.1", allowed) == FLAT1
    assert allowed_target("sip:flat1@127.0.0.1;maddr=10.0.0.9", allowed) == FLAT1
    assert allowed_target("sip:FLAT1@127.0.0.1", allowed) is None  # the user is case-sensitive
    assert allowed_target("sip:flat1@127.0.0.1:5999", allowed) is None
    assert allowed_target("sip:flat2@127.0.0.1:5080", allowed) == "sip:flat2@127.0.0.1:5080"
    assert allowed_target("tel:+19005550199", allowed) is None
    assert allowed_target(PREMIUM, allowed) is None


def test_transfer_to_a_default_target_places_the_configured_uri():
    station = ControllerHarness()  # default: the button target FLAT1 and answer.allow
    station.answered_call("in1")
    out = station.do("transfer_requested", "in1", FLAT1 + ";maddr=10.0.0.9", None,
                     "udp:127.0.0.1:15060")
    [transfer] = of_type(out, a.Transfer)
    assert (transfer.call_id, transfer.target) == ("in1", FLAT1)  # not the REFER's text
    assert events(out, "transfer")[0]["outcome"] == "accepted"
    station.do("call_started", transfer.new_call_id, "transfer")
    out = station.do("call_established", transfer.new_call_id)
    [moved] = events(out, "transferred")
    assert (moved["from"], moved["to"]) == (CONCIERGE, FLAT1)


def test_transfer_refused_outside_the_allow_list_or_on_an_untrusted_call():
    station = ControllerHarness(config(transfer={"allow": [FLAT2]}))
    station.answered_call("in1")
    out = station.do("transfer_requested", "in1", FLAT1, None, "udp:127.0.0.1:15060")
    assert of_type(out, a.RefuseTransfer) == [a.RefuseTransfer("in1", 403)]
    assert not of_type(out, a.Transfer)
    assert events(out, "transfer_refused")[0]["reason"] == "target not in transfer.allow"
    out = station.do("transfer_requested", "in1", PREMIUM, None, "udp:127.0.0.1:15060")
    assert of_type(out, a.RefuseTransfer) and not of_type(out, a.Transfer)
    ringing = ControllerHarness(config(answer={"mode": "ring"}))
    ringing.incoming("in2", trusted=False)
    out = ringing.do("transfer_requested", "in2", FLAT1, None, "udp:127.0.0.1:15060")
    assert of_type(out, a.RefuseTransfer)
    assert events(out, "transfer_refused")[0]["reason"] == "the call is not up"


def test_refusals_from_below_are_logged():
    station = ControllerHarness()
    out = station.do("transfer_refused", None, "<tel:1>", 403, "REFER outside a dialog",
                     "udp:127.0.0.1:5999")
    assert events(out, "transfer_refused") == [
        {"call_id": None, "to": "<tel:1>", "from": None, "status": 403,
         "reason": "REFER outside a dialog", "source": "udp:127.0.0.1:5999"}]


def test_button_press_sends_a_message_and_a_flood_is_bounded():
    station = ControllerHarness(config(messages={"to": [CONCIERGE]}))
    out = station.press()
    assert of_type(out, a.SendMessage) == [
        a.SendMessage([CONCIERGE], "Door: someone rang (button call)")]
    silent = ControllerHarness()  # no [messages] to: nothing sent
    assert not of_type(silent.press(), a.SendMessage)
    limiter = MessageLimiter(3)
    assert [limiter.allow(t) for t in (0, 1, 2, 3, 61)] == [True, True, True, False, True]


def test_incoming_message_answered_by_trust_never_acted_upon():
    station = ControllerHarness()
    out = station.do("message_received", "m1", CONCIERGE, "udp:127.0.0.1:15060", "127.0.0.1",
                     True, "open the door")
    assert of_type(out, a.AnswerMessage) == [a.AnswerMessage("m1", 200)]
    assert not of_type(out, a.PulseRelay)
    out = station.do("message_received", "m2", "sip:stranger@127.0.0.1", "udp:127.0.0.1:15060",
                     "127.0.0.1", True, "hi")
    assert of_type(out, a.AnswerMessage) == [a.AnswerMessage("m2", 403)]
    out = station.do("message_received", "m3", CONCIERGE, "udp:10.0.0.1:5060", "10.0.0.1",
                     False, "hi")
    assert of_type(out, a.AnswerMessage) == [a.AnswerMessage("m3", 403)]
    assert events(out, "message")[0]["trusted"] is False


def test_message_texts():
    assert message_text("door_open", {"by": "api"}) == "Door: opened (by api)"
    assert "flat1" in message_text("transferred", {"to": FLAT1})


def test_refer_with_method_invite_joins_only_with_a_conference():
    station = ControllerHarness(config(calls={"conference": True, "max_parties": 3}))
    station.answered_call("in1")
    out = station.do("transfer_requested", "in1", FLAT1, None, "udp:127.0.0.1:15060", join=True)
    [join] = of_type(out, a.Transfer)
    assert join.join and events(out, "transfer")[0]["outcome"] == "joining"
    station.do("call_started", join.new_call_id, "conference")
    assert not events(station.do("call_established", join.new_call_id), "transferred")
    out = station.do("transfer_requested", "in1", FLAT1, None, "udp:127.0.0.1:15060", join=True)
    assert of_type(out, a.RefuseTransfer)  # door + 2 calls: max_parties reached
    plain = ControllerHarness()  # no conference: an ordinary transfer
    plain.answered_call("in1")
    out = plain.do("transfer_requested", "in1", FLAT1, None, "udp:127.0.0.1:15060", join=True)
    assert not of_type(out, a.Transfer)[0].join


def test_a_trusted_caller_joins_a_call_that_is_up_only_with_a_conference():
    lone = ControllerHarness()
    lone.answered_call("in1")
    assert of_type(lone.incoming("in2", caller=FLAT2), a.Reject) == [a.Reject("in2", 486)]
    conf = ControllerHarness(config(calls={"conference": True, "max_parties": 3},
                                    answer={"allow": [CONCIERGE, FLAT2]}))
    conf.answered_call("in1")
    assert a.Answer("in2") in conf.incoming("in2", caller=FLAT2)
    assert of_type(conf.incoming("in3", caller=FLAT2), a.Reject) == [a.Reject("in3", 486)]
    stranger = conf.incoming("in4", caller="sip:stranger@127.0.0.1")
    assert of_type(stranger, a.Reject)
