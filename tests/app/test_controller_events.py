"""The controller's events as the page reads them (issue 18, docs/API.md "GET /api/events"):
`caller_rejected` names the setting that would let the caller in, a failed outgoing call ends
with its status and reason, and a registrar's refusal is a `registration` event with a reason,
never `auth_failed` (that is the station's own login)."""

from tests.app.harness import CONCIERGE, ControllerHarness, config, events

DIRECT = {"sip": {"registrar": ""}, "answer": {"allow": ["sip:concierge@127.0.0.2"]}}


def test_a_caller_not_in_the_allow_list_is_refused_naming_answer_allow():
    station = ControllerHarness()
    fields = events(station.incoming("in1", "sip:stranger@127.0.0.1"), "caller_rejected")[0]
    assert (fields["caller"], fields["reason"], fields["setting"], fields["status"]) == \
        ("sip:stranger@127.0.0.1", "not in answer.allow", "answer.allow", 403)
    assert fields["source"]


def test_an_untrusted_source_names_no_setting_behind_a_registrar():
    station = ControllerHarness()
    out = station.incoming("in1", CONCIERGE, source="udp:127.0.0.9:5060", trusted=False)
    fields = events(out, "caller_rejected")[0]
    assert fields["reason"] == "untrusted source" and fields["setting"] is None


def test_an_untrusted_source_in_direct_ip_mode_names_answer_allow():
    station = ControllerHarness(config(**DIRECT))
    out = station.incoming("in1", "sip:concierge@127.0.0.2", source="udp:127.0.0.3:5060",
                           trusted=True)
    fields = events(out, "caller_rejected")[0]
    assert fields["reason"] == "untrusted source" and fields["setting"] == "answer.allow"


def test_a_test_call_that_times_out_ends_with_its_status_and_reason():
    station = ControllerHarness()
    assert station.ctl.place_call("sip:test@127.0.0.1", station.t)
    station.drain()
    call_id = station.placed_id()
    station.do("call_started", call_id, "api")
    fields = events(station.do("call_ended", call_id, "no answer", 408), "call")[0]
    assert (fields["call_id"], fields["outcome"], fields["status"], fields["reason"]) == \
        (call_id, "unanswered", 408, "no answer")


def test_a_call_that_cannot_be_placed_ends_with_a_null_status_and_its_reason():
    station = ControllerHarness()
    station.press()
    call_id = station.placed_id()
    fields = events(station.do("call_failed_to_start", call_id, "no free RTP port"), "call")[0]
    assert (fields["call_id"], fields["outcome"], fields["status"], fields["reason"]) == \
        (call_id, "failed", None, "no free RTP port")


def test_registrar_refusals_are_registration_events_with_reasons():
    station = ControllerHarness()
    out = station.do("registration_changed", "failed", "timeout: no response from registrar")
    assert events(out, "registration")[0]["reason"] == "no answer from 127.0.0.1:15060 (timeout)"
    out = station.do("registration_changed", "failed", "407: wrong username or password")
    assert events(out, "registration")[0]["reason"] == "wrong user name or password (407)"
    assert events(out, "auth_failed") == []


def test_a_registrar_without_a_port_is_named_with_the_transports_default():
    from firmware.app.reasons import registration_reason

    timeout = "timeout: no response from registrar"
    assert registration_reason(timeout, "pbx.example.org") == \
        "no answer from pbx.example.org:5060 (timeout)"
    assert registration_reason(timeout, "pbx.example.org", "tls") == \
        "no answer from pbx.example.org:5061 (timeout)"
    assert registration_reason(timeout, "[2001:db8::1]") == \
        "no answer from [2001:db8::1]:5060 (timeout)"
    assert registration_reason(timeout, "[2001:db8::1]:5070") == \
        "no answer from [2001:db8::1]:5070 (timeout)"
    assert registration_reason("connection to registrar lost", "10.0.0.1:5060", "tcp") == \
        "the connection to 10.0.0.1:5060 was lost"
    assert registration_reason("423 Interval Too Brief", "x") == "423 Interval Too Brief"
    assert registration_reason(None, "x") is None
