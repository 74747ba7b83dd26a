"""config.validate reports every bad field at once (issue 18: an upload with several errors
gets each one under its field path), also when one of them is a wrong type or an unknown key."""

import pytest

from firmware import config


def errors_of(doc, board=None):
    with pytest.raises(config.ConfigError) as bad:
        config.validate(doc, board=board)
    return bad.value.errors


def test_a_wrong_type_in_sip_does_not_hide_the_other_sip_errors():
    errors = errors_of({"sip": {"username": 5, "display_name": "a\nb", "listen": "nowhere",
                                "expires": 5, "registrar": "[::1"}})
    assert set(errors) == {"sip.username", "sip.display_name", "sip.listen", "sip.expires",
                           "sip.registrar"}, errors


def test_a_bad_button_role_does_not_hide_the_buttons_other_errors():
    errors = errors_of({"buttons": [{"role": 7, "targets": ["sip:"], "mode": "random",
                                     "target_timeout_s": 1}]})
    assert set(errors) == {"buttons[0].role", "buttons[0].targets[0]", "buttons[0].mode",
                           "buttons[0].target_timeout_s"}, errors


def test_unknown_sections_keys_and_bad_values_together():
    errors = errors_of({"colour": {}, "door": {"pulse_ms": 1, "handle": "left"},
                        "web": "not a table", "calls": {"max_calls": 0}})
    assert set(errors) == {"colour", "door.handle", "door.pulse_ms", "web", "calls.max_calls"}


def test_the_callers_document_is_left_as_it_was():
    doc = {"sip": {"colour": "red"}, "door": {"pulse_ms": 500}}
    errors_of(doc)
    assert doc == {"sip": {"colour": "red"}, "door": {"pulse_ms": 500}}


def test_a_wrong_type_in_mqtt_does_not_hide_the_other_mqtt_errors():
    errors = errors_of({"mqtt": {"broker": 1883, "topic_prefix": "a/#", "tls": "yes",
                                 "discovery_prefix": ""}})
    assert set(errors) == {"mqtt.broker", "mqtt.topic_prefix", "mqtt.tls",
                           "mqtt.discovery_prefix"}, errors
