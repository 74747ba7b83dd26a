"""The configuration: defaults, one message per bad field, atomic save, secrets redacted."""

import os
import tomllib

import pytest

from firmware import config


def test_defaults_validate_and_are_direct_ip_without_secrets():
    cfg = config.validate({})
    assert cfg["sip"]["registrar"] == ""
    assert cfg["sip"]["password"] == ""
    assert cfg["answer"]["allow"] == []  # nobody is auto-answered until the owner says so
    assert cfg["door"]["codes"] == []
    # SDES keys only over TLS unless switched off explicitly, optional SRTP included (issue 12).
    for srtp in ("off", "optional", "mandatory"):
        assert config.srtp_requires_tls(config.validate({"media": {"srtp": srtp}})) is True
    explicit = {"media": {"srtp": "optional", "srtp_requires_tls": False}}
    assert config.srtp_requires_tls(config.validate(explicit)) is False


def test_each_bad_field_gets_its_own_message():
    bad = {
        "sip": {"transport": "sctp", "listen": "127.0.0.1:70000", "registrar": "pbx:5060"},
        "media": {"codecs": ["G729"], "rtp_ports": "5-4"},
        "answer": {"allow": ["not a uri"]},
        "buttons": [{"role": "call", "targets": ["sip:a@b"], "answer_mode": "yes"},
                    {"role": "call"}],
        "door": {"codes": [{"caller": "sip:x@y", "code": "12"}], "pulse_ms": 0},
    }
    with pytest.raises(config.ConfigError) as info:
        config.validate(bad)
    errors = info.value.errors
    assert "udp, tcp, tls" in errors["sip.transport"]
    assert "1-65535" in errors["sip.listen"]
    assert "sip.username" in errors  # a registrar needs a user name
    assert "media.codecs" in errors and "media.rtp_ports" in errors
    assert "answer.allow[0]" in errors
    assert "configured twice" in errors["buttons[1].role"]
    assert "auto" in errors["buttons[0].answer_mode"]
    assert "door.codes[0].code" in errors and "door.pulse_ms" in errors


def test_unknown_keys_are_named():
    with pytest.raises(config.ConfigError) as info:
        config.validate({"sip": {"registar": "x"}, "extra": {}})
    assert info.value.errors == {"sip.registar": "unknown key", "extra": "unknown section"}


def test_partial_update_merges_over_current():
    current = config.validate({"sip": {"username": "door", "registrar": "127.0.0.1:5060"}})
    merged = config.validate(config.merge(current, {"sip": {"transport": "tcp"}}))
    assert merged["sip"]["username"] == "door" and merged["sip"]["transport"] == "tcp"
    assert config.effective_domain(merged) == "127.0.0.1"
    # derived values are not frozen into the document: a new registrar moves the domain
    moved = config.validate(config.merge(merged, {"sip": {"registrar": "[::1]:5060"}}))
    assert config.effective_domain(moved) == "::1"


def test_load_creates_defaults_with_private_mode(tmp_path):
    path = tmp_path / "config.toml"
    cfg = config.load(str(path))
    assert cfg == config.validate({})
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_load_reports_toml_syntax_errors(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[sip\n")
    with pytest.raises(config.ConfigError) as info:
        config.load(str(path))
    assert "not valid TOML" in str(info.value)


def test_save_keeps_previous_version(tmp_path):
    path = str(tmp_path / "config.toml")
    first = config.validate({"sip": {"username": "one"}})
    second = config.validate({"sip": {"username": "two"}})
    config.save_atomic(path, first)
    config.save_atomic(path, second)
    with open(path, "rb") as f:
        assert tomllib.load(f)["sip"]["username"] == "two"
    with open(path + ".prev", "rb") as f:
        assert tomllib.load(f)["sip"]["username"] == "one"
    assert [p for p in os.listdir(tmp_path) if ".tmp." in p] == []


def test_secrets_are_redacted_and_restored():
    cfg = config.validate({
        "sip": {"password": "hunter2"},
        "door": {"codes": [{"caller": "sip:a@127.0.0.1", "code": "4711"}]},
    })
    shown = config.redacted(cfg)
    assert "hunter2" not in repr(shown) and "4711" not in repr(shown)
    assert shown["sip"]["password"] == config.SECRET
    back = config.unredact({"sip": shown["sip"], "door": shown["door"]}, cfg)
    assert back["sip"]["password"] == "hunter2"
    assert back["door"]["codes"][0]["code"] == "4711"


def test_unredact_survives_odd_callers():
    cfg = config.validate({})
    out = config.unredact({"door": {"codes": [{"caller": ["x"], "code": config.SECRET}]}}, cfg)
    assert out["door"]["codes"][0]["code"] == config.SECRET


def test_stale_temp_files_are_removed_on_load(tmp_path):
    path = tmp_path / "config.toml"
    config.load(str(path))
    (tmp_path / "config.toml.tmp.4242").write_text("half a conf")
    config.load(str(path))
    assert not (tmp_path / "config.toml.tmp.4242").exists()


def test_sip_trust_keys_default_to_the_safe_choice_and_are_checked():
    cfg = config.validate({})
    assert cfg["calls"]["follow_redirects"] is False
    assert config.validate({"calls": {"follow_redirects": True}})["calls"]["follow_redirects"]
    with pytest.raises(config.ConfigError) as info:
        config.validate({"calls": {"follow_redirects": "yes"}})
    assert "calls.follow_redirects" in info.value.errors


def test_answer_identity_is_from_or_asserted():
    assert config.validate({})["answer"]["identity"] == "from"
    assert config.validate({"answer": {"identity": "asserted"}})["answer"]["identity"] == \
        "asserted"
    with pytest.raises(config.ConfigError) as info:
        config.validate({"answer": {"identity": "pai"}})
    assert "answer.identity" in info.value.errors
