"""firmware/settings.py: the typed config sections the core reads (also run under MicroPython).
Validation is firmware/config.py's (tests/test_config.py); here the objects themselves."""

from firmware.app import doorcodes
from firmware.settings import Config, DoorCode, MediaConfig, SipConfig

DOC = {
    "sip": {"registrar": "[2001:db8::1]:5060", "domain": "", "username": "door",
            "password": "hunter2-secret", "transport": "udp", "listen": "127.0.0.1:5070",
            "tls_ca": "", "expires": 600, "display_name": "Door", "keepalive_s": 25,
            "auth_username": ""},
    "media": {"srtp": "optional", "srtp_requires_tls": None, "codecs": ["PCMA", "PCMU"],
              "rtp_ports": "40000-40199"},
    "answer": {"mode": "auto", "allow": ["sip:flat1@127.0.0.1"], "max_duration_s": 120,
               "identity": "from", "schedule": ""},
    "buttons": [{"role": "call", "targets": ["sip:flat1@127.0.0.1"], "mode": "parallel",
                 "target_timeout_s": 20, "second_press": "ignore", "answer_mode": "",
                 "schedule_targets": [{"schedule": "night",
                                       "targets": ["sip:concierge@127.0.0.1"]}],
                 "quiet": ""}],
    "calls": {"ring_timeout_s": 30, "max_duration_s": 300, "max_calls": 1,
              "follow_redirects": False, "conference": False, "max_parties": 3,
              "delayed_offer": False},
    "door": {"pulse_ms": 3000, "max_failures": 3, "lockout_s": 60, "codes": [
        {"caller": "sip:flat1@127.0.0.1", "code": "471108"},
        {"caller": "sip:flat2@127.0.0.1", "code_hash": "pbkdf2_sha256$1$00ff$" + "ab" * 32,
         "length": 5, "relay": "gate", "schedule": "night"}],
             "hangup_on_close": True, "held_open_alarm_s": 60},
    "web": {"listen": "127.0.0.1:8080", "https": False, "hostnames": ["door.example.org"]},
    "relays": [{"role": "gate", "pulse_ms": 1500}],
    "time": {"zone": "Europe/Berlin", "holidays": ["2026-12-25"]},
    "schedules": [{"name": "night", "days": ["mon", "holiday"], "times": ["22:00-06:00"]}],
    "transfer": {"allow": ["sip:flat2@127.0.0.1"]},
    "messages": {"to": ["sip:concierge@127.0.0.1"], "events": ["button", "door_open"]},
}


def test_sections_are_typed_attributes_and_the_dict_form_comes_back_unchanged():
    cfg = Config.from_dict(DOC)
    assert cfg.sip.expires == 600 and cfg.media.codecs == ["PCMA", "PCMU"]
    assert cfg.buttons[0].targets == ["sip:flat1@127.0.0.1"] and cfg.calls.max_calls == 1
    assert cfg.door.codes[0].length == 6 and cfg.door.codes[1].length == 5
    assert cfg.web.hostnames == ["door.example.org"] and cfg.answer.identity == "from"
    assert cfg.relays[0].role == "gate" and cfg.time.zone == "Europe/Berlin"
    assert cfg.buttons[0].schedule_targets[0].schedule == "night"
    assert cfg.door.codes[1].relay == "gate" and cfg.door.codes[0].relay == "door"
    assert cfg.relay_pulse_ms("gate") == 1500 and cfg.relay_pulse_ms("door") == 3000
    assert cfg.relay_pulse_ms("garage") is None and cfg.relay_roles() == ["door", "gate"]
    out = cfg.to_dict()
    for section in DOC:
        assert out[section] == DOC[section], section
    out["buttons"][0]["targets"].append("sip:x@127.0.0.1")  # a fresh document
    assert cfg.buttons[0].targets == ["sip:flat1@127.0.0.1"]


def test_equal_by_value_section_by_section():
    a, b = Config.from_dict(DOC), Config.from_dict(DOC)
    assert a == b and not a != b and a.sip == b.sip and a.door.codes == b.door.codes
    b.web.https = True
    assert a != b and a.sip == b.sip and a.web != b.web
    assert a.button("call") is a.buttons[0] and a.button("hangup") is None


def test_no_secret_in_any_repr():
    cfg = Config.from_dict(DOC)
    for shown in (repr(cfg), repr(cfg.sip), repr(cfg.door), repr(cfg.door.codes)):
        assert "hunter2" not in shown and "471108" not in shown and "abab" not in shown
    assert "(set)" in repr(cfg.sip) and "door@udp" in repr(cfg.sip)


def test_derived_values():
    cfg = Config.from_dict(DOC)
    assert cfg.sip.effective_domain() == "[2001:db8::1]"
    assert cfg.media.keys_need_tls() is True  # not set: SDES keys only over TLS
    assert cfg.media.port_range() == (40000, 40199)
    media = MediaConfig(srtp="optional", srtp_requires_tls=False, codecs=["PCMU"],
                        rtp_ports="40000-40003")
    assert media.keys_need_tls() is False
    sip = SipConfig(registrar="pbx.example.org:5061", domain="", username="door", password="",
                    transport="tls", listen="127.0.0.1:5071", tls_ca="", expires=600,
                    display_name="")
    assert sip.effective_domain() == "pbx.example.org"


def test_door_codes_are_compared_by_the_controller_as_stored():
    clear = DoorCode("sip:flat1@127.0.0.1", code="4711")
    assert doorcodes.StoredCode.from_config(clear).matches("4711")
    assert not doorcodes.StoredCode.from_config(clear).matches("4712")
    hashed = DoorCode("sip:flat1@127.0.0.1",
                      code_hash=doorcodes.hash_code("2580", b"\x01" * 16, 10), length=4)
    assert doorcodes.StoredCode.from_config(hashed).matches("2580")
    assert not doorcodes.StoredCode.from_config(hashed).matches("2581")
    assert hashed.to_dict() == {"caller": "sip:flat1@127.0.0.1", "code_hash": hashed.code_hash,
                                "length": 4}
