"""config.warnings(cfg, board): settings that save but cannot work together (issue 18,
docs/CONFIG.md "Warnings"), one test per warning, each also shown silent when fixed."""

from firmware import config

ALLOWED = "sip:concierge@127.0.0.1"
BOARD = {"name": "pc-sim", "buttons": ["call", "call2", "hangup", "exit"],
         "relays": ["door", "gate"], "inputs": ["door_contact"], "camera": False}


def working(**sections):
    """A configuration without warnings, with `sections` laid over it."""
    doc = {"answer": {"mode": "auto", "allow": [ALLOWED]},
           "buttons": [{"role": "call", "targets": ["sip:flat1@127.0.0.1"]}]}
    return config.validate(config.merge(doc, sections))


def test_a_working_configuration_has_no_warnings():
    assert config.warnings(working(), BOARD) == {}
    assert config.warnings(working()) == {}


def test_mandatory_srtp_over_udp_refuses_every_call():
    warnings = config.warnings(working(media={"srtp": "mandatory"}))
    assert list(warnings) == ["media.srtp"]
    assert "UDP" in warnings["media.srtp"] and "srtp_requires_tls = false" in \
        warnings["media.srtp"]
    assert "TCP" in config.warnings(working(media={"srtp": "mandatory"},
                                            sip={"transport": "tcp"}))["media.srtp"]
    assert config.warnings(working(media={"srtp": "mandatory", "srtp_requires_tls": False})) \
        == {}
    assert config.warnings(working(media={"srtp": "optional", "srtp_requires_tls": False})) \
        == {}


def test_optional_srtp_over_udp_never_encrypts():
    warnings = config.warnings(working(media={"srtp": "optional"}))
    assert list(warnings) == ["media.srtp"] and "plain RTP" in warnings["media.srtp"]
    assert config.warnings(working(media={"srtp": "off"})) == {}
    for srtp in ("optional", "mandatory"):  # keys over TLS: as meant
        assert config.warnings(working(media={"srtp": srtp}, sip={"transport": "tls"})) == {}


def test_a_door_code_for_a_caller_who_is_not_allowed():
    codes = [{"caller": "sip:flat1@127.0.0.1", "code": "4711"},
             {"caller": "sip:concierge@127.0.0.1:5060;transport=udp", "code": "4712"}]
    warnings = config.warnings(working(door={"codes": codes}))
    assert list(warnings) == ["door.codes[0].caller"]  # the second is the allowed caller
    assert "sip:flat1@127.0.0.1" in warnings["door.codes[0].caller"]
    assert "answer.allow" in warnings["door.codes[0].caller"]


def test_auto_answer_with_an_empty_allow_list():
    warnings = config.warnings(working(answer={"allow": []}))
    assert list(warnings) == ["answer.allow"] and "403" in warnings["answer.allow"]
    assert config.warnings(working(answer={"allow": [], "mode": "ring"})) == {}


def test_a_call_button_with_no_targets():
    buttons = [{"role": "call", "targets": ["sip:flat1@127.0.0.1"]},
               {"role": "call2", "targets": []},
               {"role": "hangup", "targets": []}]
    warnings = config.warnings(config.validate(
        {"answer": {"allow": [ALLOWED]}, "buttons": buttons}))
    assert warnings == {"buttons[1].targets": "the call2 button has no targets: pressing it "
                                              "calls no one"}
    scheduled = [{"role": "call", "targets": [], "schedule_targets": [
        {"schedule": "day", "targets": ["sip:flat1@127.0.0.1"]}]}]
    doc = {"answer": {"allow": [ALLOWED]}, "buttons": scheduled,
           "schedules": [{"name": "day", "days": ["mon"], "times": ["08:00-18:00"]}]}
    assert config.warnings(config.validate(doc)) == {}


def test_a_phone_picture_url_on_a_board_without_camera():
    cfg = working(camera={"phone_token": "a" * 24})
    assert list(config.warnings(cfg, BOARD)) == ["camera.phone_token"]
    assert config.warnings(cfg, {**BOARD, "camera": True}) == {}
    assert config.warnings(cfg) == {}  # no board known: nothing to say


def test_direct_ip_mode_with_an_allowed_caller_at_a_host_name():
    cfg = working(answer={"allow": [ALLOWED, "sip:flat1@phone.example.org"]})
    assert cfg.sip.registrar == ""
    warnings = config.warnings(cfg)
    assert list(warnings) == ["answer.allow[1]"]
    assert "sip:flat1@phone.example.org" in warnings["answer.allow[1]"]
    assert config.warnings(working(answer={"allow": ["sip:flat1@phone.example.org"]},
                                   sip={"registrar": "pbx.example.org", "username": "door"})) \
        == {}
    assert config.warnings(working(answer={"mode": "ring",
                                           "allow": ["sip:flat1@phone.example.org"]})) == {}
