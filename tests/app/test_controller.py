"""The door-station controller on a fake clock: every policy rule, no I/O."""

import pytest

from firmware.app import actions as a
from firmware.app import buttons, callers, doorcodes
from firmware.app.controller import FEEDBACK_CUE_S
from tests.app.harness import (
    CONCIERGE,
    FLAT1,
    FLAT2,
    GUARD,
    REGISTRAR_SOURCE,
    ControllerHarness,
    config,
    events,
    of_type,
)

DIRECT = {"sip": {"registrar": ""}, "answer": {"allow": ["sip:concierge@127.0.0.2"]}}


# -- buttons --------------------------------------------------------------------------------
def test_press_places_a_call_to_the_button_targets():
    station = ControllerHarness()
    out = station.press()
    assert of_type(out, a.PlaceCall) == [
        a.PlaceCall([FLAT1], False, 20, "call", station.placed_id())]
    assert events(out, "button")[0]["outcome"] == "call"


def test_several_targets_ring_in_parallel_or_one_after_the_other():
    group = ControllerHarness(config(buttons=[{"role": "call", "targets": [FLAT1, FLAT2]}]))
    assert of_type(group.press(), a.PlaceCall) == [
        a.PlaceCall([FLAT1, FLAT2], False, 20, "call", group.placed_id())]
    chain = ControllerHarness(config(buttons=[{"role": "call", "targets": [FLAT1, FLAT2],
                                     "mode": "sequential", "target_timeout_s": 7}]))
    assert of_type(chain.press(), a.PlaceCall) == [
        a.PlaceCall([FLAT1, FLAT2], True, 7, "call", chain.placed_id())]


def test_button_without_targets_logs_and_plays_the_failure_cue():
    station = ControllerHarness(config(buttons=[{"role": "call", "targets": []}]))
    out = station.press()
    assert not of_type(out, a.PlaceCall)
    assert events(out, "button") == [
        {"role": "call", "outcome": "no call", "reason": "no targets configured"}]
    assert a.PlayCue("failure", None) in out
    assert a.StopCue("failure") not in station.advance(FEEDBACK_CUE_S - 0.5)
    assert a.StopCue("failure") in station.advance(1.0)


def test_unknown_button_plays_failure_and_hangup_button_ends_calls():
    station = ControllerHarness()
    out = station.press("call2")
    assert not of_type(out, a.PlaceCall) and a.PlayCue("failure", None) in out
    station.advance(1)
    station.answered_call("in1")
    assert of_type(station.press("hangup"), a.Hangup) == [a.Hangup("in1")]


def test_bounce_two_presses_50_ms_apart_make_one_call():
    station = ControllerHarness()
    out = station.do("button_pressed", "call")
    # the call fails at once, so only the debounce stands between the bounce and a second call
    out += station.do("call_failed_to_start", station.placed_id(), "no route")
    out += station.advance(0.02)
    out += station.do("button_released", "call")
    out += station.advance(0.03)
    out += station.do("button_pressed", "call")  # 50 ms after the first press
    out += station.advance(0.1)
    out += station.do("button_released", "call")
    assert len(of_type(out, a.PlaceCall)) == 1


def test_press_after_the_debounce_window_counts_again():
    station = ControllerHarness(config(buttons=[{"role": "call", "targets": [FLAT1],
                                       "second_press": "hangup"}]))
    station.press(hold=0.05)
    c1 = station.placed_id()
    station.do("call_started", c1, "call")
    station.advance(0.3)
    assert of_type(station.press(), a.Hangup) == [a.Hangup(c1)]


def test_stuck_button_is_logged_blinks_the_status_led_and_places_no_more_calls():
    station = ControllerHarness()
    out = station.do("button_pressed", "call")
    assert len(of_type(out, a.PlaceCall)) == 1
    station.do("call_failed_to_start", station.placed_id(), "no route")
    out = station.advance(9.5)
    assert not events(out, "button")
    out = station.advance(1.0)  # held for more than 10 s
    assert [e["outcome"] for e in events(out, "button")] == ["stuck"]
    assert station.leds["status"] == "blink_fast"
    out = station.advance(30)
    out += station.do("button_pressed", "call")  # a flaky contact reports the press again
    out += station.advance(30)
    assert not of_type(out, a.PlaceCall) and not events(out, "button")
    out = station.do("button_released", "call")
    assert events(out, "button") == [{"role": "call", "outcome": "released", "reason": "was stuck"}]
    assert station.leds["status"] == "on"
    station.advance(1)
    assert len(of_type(station.press(), a.PlaceCall)) == 1


def test_flood_of_presses_is_rate_limited_per_button_and_logged_once():
    station = ControllerHarness()
    placed, limited = 0, 0
    for _ in range(20):  # one press every 2 s; each call fails at once
        out = station.press()
        placed += len(of_type(out, a.PlaceCall))
        limited += len([e for e in events(out, "button") if "calls a minute" in
                        e.get("reason", "")])
        if of_type(out, a.PlaceCall):
            station.do("call_failed_to_start", station.placed_id(), "no route")
        station.advance(1.9)
    assert placed == buttons.CALLS_PER_MINUTE
    assert limited == 1
    station.advance(60)
    assert len(of_type(station.press(), a.PlaceCall)) == 1


def test_second_press_is_ignored_while_a_button_call_is_up():
    station = ControllerHarness()
    station.press()
    c1 = station.placed_id()
    station.do("call_started", c1, "call")
    station.advance(1)
    out = station.press()
    station.advance(1)
    out += station.press()
    assert not of_type(out, a.PlaceCall) and not of_type(out, a.Hangup)
    assert len(events(out, "button")) == 1  # logged once per call


def test_second_press_hangup_ends_the_button_call():
    station = ControllerHarness(config(buttons=[{"role": "call", "targets": [FLAT1],
                                       "second_press": "hangup"}]))
    station.press()
    c1 = station.placed_id()
    station.do("call_started", c1, "call")
    station.do("call_established", c1)
    station.advance(5)
    out = station.press()
    assert of_type(out, a.Hangup) == [a.Hangup(c1)] and not of_type(out, a.PlaceCall)
    station.advance(1)
    out = station.press()  # the BYE is on its way: no second one, and no new call yet
    assert not of_type(out, a.Hangup) and not of_type(out, a.PlaceCall)
    out = station.do("call_ended", c1, "local hangup", None)
    assert events(out, "call")[0]["outcome"] == "completed"
    assert not of_type(out, a.PlayCue)  # we ended it: no failure tone


def test_hangup_before_the_runtime_names_the_call_hangs_it_up_once_started():
    station = ControllerHarness()
    station.press()
    assert station.ctl.hangup(station.t) == 1
    assert not of_type(station.drain(), a.Hangup)  # the call has no id yet: nothing to send
    c1 = station.placed_id()
    out = station.do("call_started", c1, "call")
    assert of_type(out, a.Hangup) == [a.Hangup(c1)]


def test_the_controller_finds_its_call_by_the_id_it_issued_not_by_role():
    station = ControllerHarness()
    station.press()
    issued = station.placed_id()
    out = station.do("call_failed_to_start", "not-" + issued, "no route")  # another call's
    assert not events(out, "call") and len(station.ctl.snapshot()["calls"]) == 1
    out = station.do("call_started", issued, "api")  # the id counts, whatever the role says
    assert not of_type(out, a.Hangup)
    assert station.ctl.snapshot()["calls"][0]["id"] == issued
    station.do("call_ended", issued, "no answer", 480)
    station.advance(FEEDBACK_CUE_S + 1)
    station.press()
    assert station.placed_id() != issued  # a new id for every call


def test_call_started_that_the_controller_never_asked_for_is_hung_up():
    station = ControllerHarness()
    out = station.do("call_started", "x9", "call")
    assert of_type(out, a.Hangup) == [a.Hangup("x9")]


# -- outgoing calls: ring group, cues, LEDs --------------------------------------------------
def test_ring_group_where_the_second_target_answers():
    cfg = config(buttons=[{"role": "call", "targets": [FLAT1, FLAT2]}],
                 door={"codes": [{"caller": FLAT1, "code": "1111"},
                                 {"caller": FLAT2, "code": "2222"}]})
    station = ControllerHarness(cfg)
    station.press()
    c1 = station.placed_id()
    station.do("call_started", c1, "call")
    out = station.do("call_ringing", c1)
    assert a.PlayCue("ringback", c1) in out
    station.advance(4)
    out = station.do("call_established", c1, peer=FLAT2)
    assert a.StopCue("ringback") in out
    assert station.ctl.snapshot()["calls"] == [
        {"id": c1, "direction": "outgoing", "state": "active", "peer": FLAT2, "role": "call"}]
    assert not of_type(station.type_digits(c1, "1111"), a.PulseRelay)  # flat1's code
    out = station.type_digits(c1, "2222")
    assert of_type(out, a.PulseRelay) == [a.PulseRelay("door", 3000)]
    assert events(out, "door_open")[0]["by"] == FLAT2


def test_ring_group_answered_by_an_unnamed_target_accepts_any_targets_code():
    cfg = config(buttons=[{"role": "call", "targets": [FLAT1, FLAT2]}],
                 door={"codes": [{"caller": FLAT2, "code": "2222"}]})
    station = ControllerHarness(cfg)
    station.press()
    c1 = station.placed_id()
    station.do("call_started", c1, "call")
    station.do("call_established", c1)  # the runtime does not say who answered
    out = station.type_digits(c1, "2222")
    assert events(out, "door_open")[0]["by"] == FLAT2


def test_led_patterns_over_the_life_of_an_outgoing_call():
    station = ControllerHarness(registered=False)
    assert station.leds == {"status": "blink_slow", "call": "off", "door": "off"}
    station.do("registration_changed", "registered", None)
    assert station.leds["status"] == "on"
    station.press()
    assert station.leds["call"] == "blink_fast"
    c1 = station.placed_id()
    station.do("call_started", c1, "call")
    station.do("call_ringing", c1)
    assert station.leds["call"] == "blink_fast"
    station.do("call_established", c1)
    assert station.leds["call"] == "on"
    out = station.do("call_ended", c1, "remote hangup", None)
    assert station.leds["call"] == "off" and a.SetLed("call", "off") in out
    out = station.do("registration_changed", "failed", "timeout")
    assert station.leds["status"] == "blink_slow"
    assert events(out, "registration") == [
        {"state": "failed", "error": "timeout", "reason": "timeout",
         "registrar": "127.0.0.1:15060"}]


def test_busy_and_failed_outgoing_calls_play_their_cue_for_a_while():
    station = ControllerHarness()
    station.press()
    c1 = station.placed_id()
    station.do("call_started", c1, "call")
    station.do("call_ringing", c1)
    out = station.do("call_ended", c1, "busy", 486)
    assert a.StopCue("ringback") in out and a.PlayCue("busy", None) in out
    assert events(out, "call")[0]["outcome"] == "busy"
    assert a.StopCue("busy") in station.advance(FEEDBACK_CUE_S)
    station.advance(1)
    station.press()
    c2 = station.placed_id()
    station.do("call_started", c2, "call")
    out = station.do("call_ended", c2, "no answer", 480)
    assert a.PlayCue("failure", None) in out
    station.advance(FEEDBACK_CUE_S + 1)
    station.press()
    out = station.do("call_failed_to_start", station.placed_id(), "cannot resolve flat1")
    assert a.PlayCue("failure", None) in out
    assert events(out, "call")[0]["reason"] == "cannot resolve flat1"
    assert station.ctl.snapshot()["calls"] == []


def test_call_end_is_logged_with_duration_and_outcome():
    station = ControllerHarness()
    station.press()
    c1 = station.placed_id()
    station.do("call_started", c1, "call")
    station.do("call_established", c1)
    station.advance(42)
    out = station.do("call_ended", c1, "remote hangup", None)
    fields = events(out, "call")[0]
    assert fields["call_id"] == c1 and fields["duration_s"] == 42.0
    assert fields["outcome"] == "completed" and fields["reason"] == "remote hangup"


def test_api_place_call_and_hangup():
    station = ControllerHarness()
    assert station.ctl.place_call("sip:test@127.0.0.1", station.t)
    assert of_type(station.drain(), a.PlaceCall) == [
        a.PlaceCall(["sip:test@127.0.0.1"], False, 30, "api", station.placed_id())]
    t1 = station.placed_id()
    station.do("call_started", t1, "api")
    assert not station.ctl.place_call("sip:other@127.0.0.1", station.t)  # max_calls = 1
    assert station.ctl.hangup(station.t) == 1
    assert of_type(station.drain(), a.Hangup) == [a.Hangup(t1)]
    assert not station.ctl.place_call("http://example.com/", station.t)
    assert events(station.drain(), "call")[0]["outcome"] == "refused"


# -- incoming calls -----------------------------------------------------------------------
def test_auto_answer_for_an_allowed_trusted_caller_announces_itself():
    station = ControllerHarness()
    out = station.incoming("in1", '"Concierge" <sip:concierge@127.0.0.1;transport=udp>;tag=9')
    assert out[:2] == [a.Answer("in1"), a.PlayCue("auto_answer", "in1")]
    assert a.SetLed("call", "on") in out
    fields = events(out, "call")[0]
    assert fields["outcome"] == "auto-answered" and fields["source"] == REGISTRAR_SOURCE


def test_allowed_caller_from_an_untrusted_source_is_rejected_and_logged():
    station = ControllerHarness()
    out = station.incoming("in1", CONCIERGE, source="udp:127.0.0.9:5060", trusted=False)
    assert of_type(out, a.Reject) == [a.Reject("in1", 403)]
    assert not of_type(out, a.Answer)
    fields = events(out, "caller_rejected")[0]
    assert fields["caller"] == CONCIERGE and fields["source"] == "udp:127.0.0.9:5060"
    assert fields["reason"] == "untrusted source"
    assert station.ctl.snapshot()["calls"] == []


def test_unknown_caller_is_rejected_in_auto_mode():
    station = ControllerHarness()
    out = station.incoming("in1", "sip:stranger@127.0.0.1")
    assert of_type(out, a.Reject) == [a.Reject("in1", 403)]
    assert events(out, "caller_rejected")[0]["reason"] == "not in answer.allow"


@pytest.mark.parametrize("caller, allowed", [
    ("sip:concierge@127.0.0.1:5060;transport=tcp", True),
    ('"Front desk" <sips:concierge@127.0.0.1>;tag=abc', True),
    ("sip:Concierge@127.0.0.1", False),  # the user part is case-sensitive
    ("sip:concierge@127.0.0.10", False),
    ("tel:+4930123", False),
    ("not a uri", False),
])
def test_callers_compare_by_user_and_host(caller, allowed):
    station = ControllerHarness(config(answer={"allow": ["sip:concierge@127.0.0.1"]}))
    out = station.incoming("in1", caller)
    assert bool(of_type(out, a.Answer)) == allowed


def test_host_comparison_ignores_case():
    station = ControllerHarness(config(answer={"allow": ["sip:concierge@Door.Example.ORG"]}))
    assert of_type(station.incoming("in1", "sip:concierge@door.example.org"), a.Answer)


def test_direct_ip_mode_trusts_the_source_ip_of_an_allow_entry():
    station = ControllerHarness(config(**DIRECT))
    assert station.ctl.snapshot()["registration"] == "disabled"
    assert station.leds["status"] == "on"  # direct-IP counts as idle
    out = station.incoming("in1", "sip:concierge@127.0.0.2", source="udp:127.0.0.2:5060",
                           trusted=False)
    assert of_type(out, a.Answer) == [a.Answer("in1")]
    station.do("call_ended", "in1", "remote hangup", None)
    # the same From from another address: the SIP layer's verdict does not count here
    out = station.incoming("in2", "sip:concierge@127.0.0.2", source="udp:127.0.0.3:5060",
                           trusted=True)
    assert of_type(out, a.Reject) == [a.Reject("in2", 403)]
    assert events(out, "caller_rejected")[0]["reason"] == "untrusted source"
    out = station.incoming("in3", "sip:concierge@127.0.0.2", source="tcp:whatever",
                           trusted=False, source_ip="127.0.0.2")
    assert of_type(out, a.Answer) == [a.Answer("in3")]


def test_direct_ip_trust_with_ipv6_sources():
    station = ControllerHarness(config(sip={"registrar": ""},
                                       answer={"allow": ["sip:concierge@[::1]"]}))
    out = station.incoming("in1", "sip:concierge@[::1]", source="udp:[::1]:5060", trusted=False)
    assert of_type(out, a.Answer)


def test_configuring_a_registrar_ends_direct_ip_trust_at_once():
    station = ControllerHarness(config(**DIRECT))
    station.do("update_config", config(answer=DIRECT["answer"]))
    assert station.ctl.snapshot()["registration"] == "unregistered"
    out = station.incoming("in1", "sip:concierge@127.0.0.2", source="udp:127.0.0.2:5060",
                           trusted=False)
    assert of_type(out, a.Reject) == [a.Reject("in1", 403)]


def test_answer_mode_off_rejects_with_480():
    station = ControllerHarness(config(answer={"mode": "off"}))
    out = station.incoming("in1")
    assert of_type(out, a.Reject) == [a.Reject("in1", 480)]
    assert events(out, "call")[0]["outcome"] == "rejected"


def test_answer_mode_ring_only_rings_even_for_allowed_callers():
    station = ControllerHarness(config(answer={"mode": "ring"}))
    out = station.incoming("in1", answer_mode="auto")
    assert of_type(out, a.Ring) == [a.Ring("in1")] and not of_type(out, a.Answer)
    assert station.leds["call"] == "blink_fast"
    out = station.do("call_ended", "in1", "timeout", 408)
    assert station.leds["call"] == "off"
    assert events(out, "call")[0]["outcome"] == "unanswered"


def test_caller_asking_for_manual_answer_is_not_auto_answered():
    station = ControllerHarness()
    out = station.incoming("in1", answer_mode="manual")
    assert of_type(out, a.Ring) == [a.Ring("in1")] and not of_type(out, a.Answer)


def test_max_calls_answers_busy():
    station = ControllerHarness(config(calls={"max_calls": 1}))
    station.answered_call("in1")
    out = station.incoming("in2", GUARD)
    assert of_type(out, a.Reject) == [a.Reject("in2", 486)]
    assert events(out, "call")[0]["reason"] == "max_calls reached"
    out = station.press()
    assert not of_type(out, a.PlaceCall)
    assert events(out, "button")[0]["outcome"] == "busy"
    two = ControllerHarness(config(calls={"max_calls": 2}))
    two.answered_call("in1")
    assert of_type(two.incoming("in2", GUARD), a.Answer) == [a.Answer("in2")]


def test_auto_answered_call_is_hung_up_after_answer_max_duration():
    station = ControllerHarness(config(answer={"max_duration_s": 30}))
    station.answered_call("in1")
    assert not of_type(station.advance(29), a.Hangup)
    out = station.advance(2)
    assert of_type(out, a.Hangup) == [a.Hangup("in1")]
    assert events(out, "call")[0]["reason"] == "answer.max_duration_s reached"
    assert not of_type(station.advance(60), a.Hangup)  # once


# -- door codes -----------------------------------------------------------------------------
def test_right_code_pulses_the_relay_plays_the_cue_and_logs():
    station = ControllerHarness()
    station.answered_call("in1")
    out = station.type_digits("in1", "1234")
    assert of_type(out, a.PulseRelay) == [a.PulseRelay("door", 3000)]
    assert a.PlayCue("door_open", "in1") in out
    assert events(out, "door_open") == [
        {"by": CONCIERGE, "how": "dtmf", "relay": "door", "call_id": "in1",
         "source": REGISTRAR_SOURCE}]
    assert station.ctl.snapshot()["door"]["relay"] == "open"
    assert station.leds["door"] == "on"
    station.advance(2.0)  # 3 s pulse, 0.2 s passed after the last digit already
    assert station.ctl.snapshot()["door"]["relay"] == "open"
    out = station.advance(1.0)
    assert station.ctl.snapshot()["door"]["relay"] == "closed"
    assert a.SetLed("door", "off") in out


def test_star_clears_and_hash_ends_an_attempt():
    station = ControllerHarness()
    station.answered_call("in1")
    out = station.type_digits("in1", "12*1234")
    assert len(of_type(out, a.PulseRelay)) == 1 and not events(out, "code_failed")
    out = station.type_digits("in1", "12*34")
    assert not of_type(out, a.PulseRelay) and not events(out, "code_failed")
    out = station.type_digits("in1", "*12#")
    assert events(out, "code_failed")[0]["reason"] == "wrong code"
    out = station.type_digits("in1", "#")  # nothing typed: no attempt
    assert not events(out, "code_failed")


def test_every_complete_entry_is_one_attempt_and_no_part_of_it_is_tried():
    station = ControllerHarness()
    station.answered_call("in1")
    # the right code inside a longer entry is not found: "01234567" is two wrong entries
    out = station.type_digits("in1", "01234567")
    assert not of_type(out, a.PulseRelay)
    assert len(events(out, "code_failed")) == 2
    out = station.type_digits("in1", "1234")
    assert of_type(out, a.PulseRelay)


def test_entries_match_whole_codes_of_their_own_length_only():
    codes = [("a", "1234"), ("b", "12345678")]
    enter = doorcodes.enter_digit
    buffer, outcome = "", None
    for digit in "1234":  # a prefix of b's code and a's whole code: nothing is compared yet
        buffer, outcome, _ = enter(buffer, digit, codes)
    assert (buffer, outcome) == ("1234", doorcodes.TYPING)
    assert enter(buffer, "#", codes) == ("", doorcodes.OPENED, "a")  # '#' ends a short code
    buffer = ""
    for digit in "12345678":
        buffer, outcome, owner = enter(buffer, digit, codes)
    assert (outcome, owner) == (doorcodes.OPENED, "b")
    buffer = ""
    for digit in "99991234":  # a's code at the end of a long entry: one failed attempt
        buffer, outcome, owner = enter(buffer, digit, codes)
    assert (buffer, outcome) == ("", doorcodes.FAILED)
    assert enter("12", "#", codes) == ("", doorcodes.FAILED, None)  # no code that short
    assert enter("", "#", codes) == ("", doorcodes.TYPING, None)
    assert enter("123", "*", codes) == ("", doorcodes.CLEARED, None)


def test_an_attacker_tests_one_candidate_per_failure():
    """Brute force through a caller with codes of two lengths: with max_failures 3, exactly three
    candidates are compared before the lockout ignores the digits."""
    cfg = config(door={"max_failures": 3, "lockout_s": 60,
                       "codes": [{"caller": CONCIERGE, "code": "5678"},
                                 {"caller": CONCIERGE, "code": "99990123"}]})
    station = ControllerHarness(cfg)
    station.answered_call("in1")
    tried = []
    real = doorcodes.StoredCode.matches

    def spy(self, digits):
        tried.append(digits)
        return real(self, digits)

    doorcodes.StoredCode.matches = spy
    try:
        out = station.type_digits("in1", "01234567" "12345678" "23456789" "5678#")
    finally:
        doorcodes.StoredCode.matches = real
    assert not of_type(out, a.PulseRelay)
    assert len(events(out, "code_failed")) == 4  # three wrong codes, then "locked out"
    assert len(events(out, "lockout")) == 1
    assert tried == ["01234567", "12345678", "23456789"]


def test_three_wrong_codes_lock_out_for_a_growing_period():
    station = ControllerHarness()
    station.answered_call("in1")
    out = station.type_digits("in1", "0000" "1111")
    assert len(events(out, "code_failed")) == 2 and not events(out, "lockout")
    out = station.type_digits("in1", "2222")
    lockouts = events(out, "lockout")
    # behind the registrar: the caller's identity only, never the registrar's address
    assert [(e["kind"], e["subject"], e["duration_s"]) for e in lockouts] == [
        ("caller", "concierge@127.0.0.1", 60)]
    assert len(station.ctl.snapshot()["lockouts"]) == 1
    out = station.type_digits("in1", "1234" "1234")  # the right code is ignored while locked
    assert not of_type(out, a.PulseRelay)
    assert len(events(out, "code_failed")) == 1  # logged once
    station.advance(60)
    assert station.ctl.snapshot()["lockouts"] == []
    out = station.type_digits("in1", "5555" "6666" "7777")
    assert {e["duration_s"] for e in events(out, "lockout")} == {120}
    station.advance(120)
    out = station.type_digits("in1", "5555" "6666" "7777")
    assert {e["duration_s"] for e in events(out, "lockout")} == {240}


def test_lockout_period_is_capped():
    lockouts = doorcodes.Lockouts(1, 3600)
    durations = [lockouts.failure(("caller", "x"), 0.0) for _ in range(40)]
    assert durations[:4] == [3600, 7200, 14400, 28800]
    assert max(durations) == doorcodes.MAX_LOCKOUT_S == durations[-1]


def test_success_resets_the_failure_count():
    station = ControllerHarness()
    station.answered_call("in1")
    station.type_digits("in1", "0000" "0000")
    station.type_digits("in1", "1234")
    out = station.type_digits("in1", "0000" "0000")
    assert not events(out, "lockout")
    out = station.type_digits("in1", "0000")
    assert events(out, "lockout")


def test_one_flats_wrong_codes_never_lock_out_another_flat_behind_the_registrar():
    station = ControllerHarness(config(calls={"max_calls": 2}))
    station.answered_call("in1", CONCIERGE, source=REGISTRAR_SOURCE)
    out = station.type_digits("in1", "0000" "0000" "0000")
    assert [(e["kind"], e["subject"]) for e in events(out, "lockout")] == [
        ("caller", "concierge@127.0.0.1")]
    station.answered_call("in2", GUARD, source=REGISTRAR_SOURCE)  # same address: the PBX
    out = station.type_digits("in2", "9876")
    assert of_type(out, a.PulseRelay) and not events(out, "code_failed")
    out = station.type_digits("in1", "1234")  # the concierge stays locked out
    assert not of_type(out, a.PulseRelay)
    assert events(out, "code_failed")[0]["reason"] == "locked out: digits ignored"
    assert [x["kind"] for x in station.ctl.snapshot()["lockouts"]] == ["caller"]


def test_lockout_per_source_holds_when_the_caller_changes_in_direct_ip_mode():
    cfg = config(sip={"registrar": ""}, calls={"max_calls": 2},
                 answer={"allow": ["sip:concierge@127.0.0.2", "sip:guard@127.0.0.2",
                                   "sip:guard@127.0.0.5"]},
                 door={"codes": [{"caller": "sip:concierge@127.0.0.2", "code": "1234"},
                                 {"caller": "sip:guard@127.0.0.2", "code": "9876"},
                                 {"caller": "sip:guard@127.0.0.5", "code": "9876"}]})
    station = ControllerHarness(cfg)
    station.answered_call("in1", "sip:concierge@127.0.0.2", source="udp:127.0.0.2:5060")
    out = station.type_digits("in1", "0000" "0000" "0000")
    assert {(e["kind"], e["subject"]) for e in events(out, "lockout")} == {
        ("caller", "concierge@127.0.0.2"), ("source", "127.0.0.2")}
    station.answered_call("in2", "sip:guard@127.0.0.2", source="udp:127.0.0.2:5062")
    out = station.type_digits("in2", "9876")  # guard's right code, from the locked source
    assert not of_type(out, a.PulseRelay)
    assert events(out, "code_failed")[0]["reason"] == "locked out: digits ignored"
    station.do("call_ended", "in1", "remote hangup", None)
    station.answered_call("in3", "sip:guard@127.0.0.5", source="udp:127.0.0.5:5060")
    assert of_type(station.type_digits("in3", "9876"), a.PulseRelay)


def test_lockout_per_caller_holds_when_the_source_changes():
    station = ControllerHarness(config(calls={"max_calls": 2}))
    station.answered_call("in1", CONCIERGE, source="udp:127.0.0.1:15060")
    station.type_digits("in1", "0000" "0000" "0000")
    station.answered_call("in2", CONCIERGE, source="tls:127.0.0.5:5061")
    assert not of_type(station.type_digits("in2", "1234"), a.PulseRelay)


def test_untrusted_call_never_opens_the_door_even_with_the_right_code():
    station = ControllerHarness(config(answer={"mode": "ring"}))
    station.incoming("in1", CONCIERGE, source="udp:127.0.0.9:5060", trusted=False)
    out = station.type_digits("in1", "1234")  # still ringing: no digits yet
    station.do("call_established", "in1")  # whatever answered it, it stays untrusted
    out = station.type_digits("in1", "1234" "1234")
    assert not of_type(out, a.PulseRelay)
    assert [e["reason"] for e in events(out, "code_failed")] == ["untrusted call"]


def test_caller_without_a_code_cannot_open_and_is_not_counted():
    station = ControllerHarness(config(answer={"allow": [CONCIERGE, "sip:visitor@127.0.0.1"]}))
    station.answered_call("in1", "sip:visitor@127.0.0.1")
    out = station.type_digits("in1", "1234" "9876" "0000" "0000")
    assert not of_type(out, a.PulseRelay) and not events(out, "code_failed")


def test_api_opens_the_door():
    station = ControllerHarness()
    out = station.do("open_door", "admin")
    assert of_type(out, a.PulseRelay) == [a.PulseRelay("door", 3000)]
    assert events(out, "door_open") == [{"by": "admin", "how": "api", "relay": "door"}]
    assert a.PlayCue("door_open", None) in out


# -- configuration, registration, helpers ---------------------------------------------------
def test_update_config_applies_live():
    station = ControllerHarness()
    station.do("update_config", config(answer={"mode": "off"}, door={"pulse_ms": 500}))
    assert of_type(station.incoming("in1"), a.Reject) == [a.Reject("in1", 480)]
    assert of_type(station.do("open_door", "api"), a.PulseRelay) == [a.PulseRelay("door", 500)]


def test_a_registrar_refusing_our_password_is_a_registration_event_with_its_reason():
    # issue 18: `auth_failed` is the station's own web/API login only (docs/API.md)
    station = ControllerHarness()
    out = station.do("registration_changed", "failed", "401: wrong username or password")
    assert events(out, "auth_failed") == []
    assert events(out, "registration") == [{
        "state": "failed", "error": "401: wrong username or password",
        "reason": "wrong user name or password (401)", "registrar": "127.0.0.1:15060"}]
    assert station.do("registration_changed", "failed", "401: wrong username or password") == []
    out = station.do("registration_changed", "failed", "403 Forbidden")
    assert events(out, "registration")[0]["reason"] == "403 Forbidden"


def test_constant_time_compare_without_hmac(monkeypatch):
    monkeypatch.setattr(callers, "compare_digest", None)
    assert callers.constant_time_equal("1234", "1234")
    assert not callers.constant_time_equal("1235", "1234")
    assert not callers.constant_time_equal("123", "1234")
    assert not callers.constant_time_equal("12345", "1234")


def test_source_ip_parsing():
    assert callers.source_ip("udp:192.0.2.7:5060") == "192.0.2.7"
    assert callers.source_ip("tls:[2001:DB8::1]:5061") == "2001:db8::1"
    assert callers.literal_ip("door.example.org") is None
    assert callers.literal_ip("192.0.2.300") is None


def test_a_short_target_is_called_at_the_registrars_domain():
    station = ControllerHarness(config(buttons=[{"role": "call", "targets": ["**610", FLAT2]}]))
    assert of_type(station.press(), a.PlaceCall) == [
        a.PlaceCall(["sip:**610@127.0.0.1", FLAT2], False, 20, "call", station.placed_id())]


def test_early_media_plays_instead_of_our_ringback():
    station = ControllerHarness()
    station.press()
    c1 = station.placed_id()
    station.do("call_started", c1, "call")
    assert a.PlayCue("ringback", c1) in station.do("call_ringing", c1)  # a plain 180 first
    out = station.do("call_ringing", c1, early=True)  # then a 183 with the PBX's audio
    assert a.StopCue("ringback") in out and not of_type(out, a.PlayCue)
    assert station.ctl.snapshot()["calls"][0]["state"] == "ringing"
    other = ControllerHarness()
    other.press()
    c2 = other.placed_id()
    other.do("call_started", c2, "call")
    assert not of_type(other.do("call_ringing", c2, early=True), a.PlayCue)
