"""The configuration: defaults, one message per bad field, atomic save, secrets redacted."""

import os
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import config
from firmware.settings import ButtonConfig, Config, DoorCode, SipConfig


def test_defaults_validate_and_are_direct_ip_without_secrets():
    cfg = config.validate({})
    assert cfg.sip.registrar == ""
    assert cfg.sip.password == ""
    assert cfg.answer.allow == []  # nobody is auto-answered until the owner says so
    assert cfg.door.codes == []
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
    merged = config.validate(config.merge(current.to_dict(), {"sip": {"transport": "tcp"}}))
    assert merged.sip.username == "door" and merged.sip.transport == "tcp"
    assert config.effective_domain(merged) == "127.0.0.1"
    # derived values are not frozen into the document: a new registrar moves the domain
    moved = config.validate(config.merge(merged.to_dict(), {"sip": {"registrar": "[::1]:5060"}}))
    assert config.effective_domain(moved) == "[::1]"  # as it goes into sip:door@[::1]
    bare = config.validate(config.merge(merged.to_dict(), {"sip": {"registrar": "::1"}}))
    assert config.effective_domain(bare) == "[::1]"


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
    assert cfg.calls.follow_redirects is False
    assert config.validate({"calls": {"follow_redirects": True}}).calls.follow_redirects
    with pytest.raises(config.ConfigError) as info:
        config.validate({"calls": {"follow_redirects": "yes"}})
    assert "calls.follow_redirects" in info.value.errors


def test_calls_delayed_offer_is_off_by_default_and_checked():
    assert config.validate({}).calls.delayed_offer is False
    assert config.validate({"calls": {"delayed_offer": True}}).calls.delayed_offer is True
    with pytest.raises(config.ConfigError) as info:
        config.validate({"calls": {"delayed_offer": "yes"}})
    assert "calls.delayed_offer" in info.value.errors


def test_answer_identity_is_from_or_asserted():
    assert config.validate({}).answer.identity == "from"
    assert config.validate({"answer": {"identity": "asserted"}}).answer.identity == \
        "asserted"
    with pytest.raises(config.ConfigError) as info:
        config.validate({"answer": {"identity": "pai"}})
    assert "answer.identity" in info.value.errors


# -- every field that reaches the wire is validated as what it is (issue 12) -------------------
BAD_WIRE_VALUES = ["x\r\nVia: evil", "x\n", "a b", "x\x00", "x\x07y", "x\x7f"]
SIP_URI_FIELDS = [  # (document with VALUE standing for the bad text, the field path)
    ({"answer": {"allow": ["VALUE"]}}, "answer.allow[0]"),
    ({"buttons": [{"role": "call", "targets": ["sip:flat1@127.0.0.1", "VALUE"]}]},
     "buttons[0].targets[1]"),
    ({"door": {"codes": [{"caller": "VALUE", "code": "4711"}]}}, "door.codes[0].caller"),
]


def _errors(doc):
    with pytest.raises(config.ConfigError) as info:
        config.validate(doc)
    return info.value.errors


def _with(doc, value):
    """`doc` with the string "VALUE" replaced by `value`, wherever it is."""
    if isinstance(doc, dict):
        return {k: _with(v, value) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_with(v, value) for v in doc]
    return value if doc == "VALUE" else doc


@pytest.mark.parametrize("bad", BAD_WIRE_VALUES)
@pytest.mark.parametrize("field", ["domain", "username", "registrar", "listen"])
def test_hosts_and_user_parts_refuse_line_breaks_spaces_and_controls(field, bad):
    sip = {"username": "door", "registrar": "127.0.0.1:5060"}
    if field in ("domain", "username"):
        sip[field] = "door" + bad
    else:
        sip[field] = "127.0.0.1" + bad + ":5060"
    errors = _errors({"sip": sip})
    assert list(errors) == [f"sip.{field}"], errors
    assert "\n" not in errors[f"sip.{field}"] and "\r" not in errors[f"sip.{field}"]


@pytest.mark.parametrize("bad", BAD_WIRE_VALUES[:2] + BAD_WIRE_VALUES[3:])
@pytest.mark.parametrize("field", ["display_name", "password"])
def test_display_name_and_password_refuse_line_breaks_and_controls(field, bad):
    errors = _errors({"sip": {field: "Door" + bad}})
    assert list(errors) == [f"sip.{field}"], errors
    assert "control characters" in errors[f"sip.{field}"]


@pytest.mark.parametrize("value, fragment", [
    ("pbx.example.org:5060", "without a port"), ("::1", "IPv6 in brackets"),
    ("pbx_.-bad-", "host name or IP address"), ("a@b", "host name"), ("<x>", "host name"),
    ("1.2.3.4.5", "host name"), ("x" * 254, "longer than 253"),
])
def test_domain_is_a_host_name_or_ip_literal(value, fragment):
    assert fragment in _errors({"sip": {"domain": value}})["sip.domain"]


@pytest.mark.parametrize("value", ["example.org", "pbx-1.example.org.", "192.0.2.7", "[::1]",
                                   "[2001:db8::5]", "localhost"])
def test_good_domains_pass(value):
    assert config.validate({"sip": {"domain": value}}).sip.domain == value


@pytest.mark.parametrize("value", ['door"1', "door<1>", "door@x", "door:pw", "tür", "a%zz",
                                   "x" * 65, "door\\1", "[door]"])
def test_username_allows_only_rfc3261_user_characters(value):
    assert "sip.username" in _errors({"sip": {"username": value}})


@pytest.mark.parametrize("value", ["door", "door-1.a_b", "+4930123", "a;b", "x%41y", "a&b=c"])
def test_good_usernames_pass(value):
    assert config.validate({"sip": {"username": value}}).sip.username == value


@pytest.mark.parametrize("value", ["pb x:5060", "pbx\r\n:5060", "pb<x>", "pbx;lr", "[::1", "p/x"])
def test_registrar_is_a_host_and_port(value):
    assert "sip.registrar" in _errors({"sip": {"registrar": value, "username": "door"}})


@pytest.mark.parametrize("value", [*BAD_WIRE_VALUES, "not a uri", "tel:+4930123",
                                   "http://example.org/", "sip:a@b?Subject=x", "sip:a:pw@b",
                                   "sip:flat1@127.0.0.1\r\nX: y", "sip:@b", "sip:a@",
                                   "sip:" + "a" * 300 + "@b"])
@pytest.mark.parametrize("doc, path", SIP_URI_FIELDS)
def test_every_configured_uri_is_a_plain_sip_uri(doc, path, value):
    errors = _errors(_with(doc, value))
    assert list(errors) == [path], errors
    assert "\n" not in errors[path]


def test_good_uris_pass():
    doc = {"answer": {"allow": ["sip:flat1@127.0.0.1", "sips:flat2@example.org;transport=tls"]},
           "buttons": [{"role": "call", "targets": ["sip:flat1@[::1]:5062"]}]}
    assert config.validate(doc).answer.allow == doc["answer"]["allow"]


def test_display_name_with_quotes_is_sent_as_a_quoted_string():
    """Quotes and backslashes are allowed: they are escaped where the name is sent."""
    from firmware.sip.message import NameAddress
    from firmware.sip.useragent import UserAgent

    name = 'Door "B" \\ Hof'
    cfg = config.validate({"sip": {"display_name": name}})
    ua = UserAgent({"host": "127.0.0.1", "port": 5070, "transport": "udp", "username": "door",
                    "password": "", "domain": "127.0.0.1",
                    "display_name": cfg.sip.display_name})
    header = ua.from_header("tag1")
    assert NameAddress.parse(header).display_name == name
    assert NameAddress.parse(header).tag == "tag1"


def test_messages_name_the_field_and_stay_on_one_line():
    bad = {"sip": {"domain": "a\r\nb", "username": "a\r\nb", "display_name": "a\r\nb",
                   "password": "a\r\nb", "registrar": "a\r\nb", "listen": "a\r\nb:1"},
           "answer": {"allow": ["sip:a@b\r\n"]}}
    errors = _errors(bad)
    assert set(errors) == {"sip.domain", "sip.username", "sip.display_name", "sip.password",
                           "sip.registrar", "sip.listen", "answer.allow[0]"}, errors
    for message in errors.values():
        assert "\r" not in message and "\n" not in message, message


# -- [sip] tls_ca ---------------------------------------------------------------------------------
def _tls(path):
    return {"sip": {"transport": "tls", "tls_ca": str(path)}}


def test_tls_ca_must_be_a_readable_pem_certificate(tmp_path):
    from tests.peers.certs import make_certificates

    certs = make_certificates(tmp_path / "ca")
    good = certs.ca_path
    assert config.validate(_tls(good)).sip.tls_ca == str(good)

    missing = tmp_path / "missing.pem"
    assert "file not found" in _errors(_tls(missing))["sip.tls_ca"]
    assert "is a directory" in _errors(_tls(tmp_path))["sip.tls_ca"]
    text = tmp_path / "notes.txt"
    text.write_text("just some text\n")
    assert "CERTIFICATE block" in _errors(_tls(text))["sip.tls_ca"]
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    assert "no certificate that can be loaded" in _errors(_tls(broken))["sip.tls_ca"]
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)  # opening it would block the station's event loop
    assert "not a regular file" in _errors(_tls(fifo))["sip.tls_ca"]
    assert "not a regular file" in _errors(_tls("/dev/zero"))["sip.tls_ca"]
    key_only = certs.key_path  # a PEM file, but a key, not a certificate
    assert "CERTIFICATE block" in _errors(_tls(key_only))["sip.tls_ca"]
    unreadable = tmp_path / "secret.pem"
    unreadable.write_bytes(good.read_bytes())
    unreadable.chmod(0)
    if not os.access(unreadable, os.R_OK):  # root reads anything
        assert "cannot be read" in _errors(_tls(unreadable))["sip.tls_ca"]


# -- a bad file on disk: what the station runs with instead (SIP off, the page up) ---------------
def test_salvage_keeps_the_good_settings_and_drops_the_bad_ones(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[sip]\nregistrar = "127.0.0.1:5060"\nusername = "door"\n'
                    'domain = "example.org\\r\\nX-Evil: 1"\n'
                    '[web]\nlisten = "0.0.0.0:8081"\n'
                    '[[buttons]]\nrole = "call"\ntargets = ["sip:flat 1@x"]\n')
    with pytest.raises(config.ConfigError) as info:
        config.load(str(path))
    assert set(info.value.errors) == {"sip.domain", "buttons[0].targets[0]"}
    before = path.read_bytes()
    cfg = config.salvage(str(path), info.value.errors)
    assert cfg.sip.registrar == "127.0.0.1:5060" and cfg.sip.username == "door"
    assert cfg.sip.domain == ""  # the default
    assert cfg.web.listen == "0.0.0.0:8081"  # the page stays where the admin expects it
    assert cfg.to_dict()["buttons"] == config.defaults()["buttons"]
    assert path.read_bytes() == before  # nothing written


def test_salvage_of_unreadable_toml_is_the_defaults(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[sip\n")
    assert config.salvage(str(path), {"": "not valid TOML"}) == config.validate({})


def test_salvage_follows_errors_that_dropping_a_field_reveals(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[sip]\nregistrar = "127.0.0.1:5060"\nusername = "do or"\n'
                    'extra = 1\n[bogus]\nx = 1\n')
    with pytest.raises(config.ConfigError) as info:
        config.load(str(path))
    cfg = config.salvage(str(path), info.value.errors)
    assert config.validate(cfg.to_dict()) == cfg
    # without its user name the registrar cannot stay: the [sip] table falls back as a whole
    assert cfg.to_dict()["sip"] == config.defaults()["sip"]


# -- property: whatever validates goes onto the wire as a message our own parser reads back -----
_WIRE_TEXT = st.text(st.sampled_from(list("ab-1.:;@<>\"\\ %2F?&=[]_~") + ["\r", "\n", "\x00",
                                                                          "\t", "é", "\x85"]),
                     max_size=12)


@settings(max_examples=300, deadline=None)
@given(domain=_WIRE_TEXT, username=_WIRE_TEXT, display_name=_WIRE_TEXT, password=_WIRE_TEXT)
def test_a_valid_configuration_always_makes_parseable_sip(domain, username, display_name,
                                                          password):
    from firmware.sip.endpoint import Peer
    from firmware.sip.message import NameAddress, parse
    from firmware.sip.useragent import UserAgent

    doc = {"sip": {"registrar": "127.0.0.1:5060", "domain": domain, "username": username,
                   "display_name": display_name, "password": password}}
    try:
        cfg = config.validate(doc)
    except config.ConfigError:
        return
    sip = cfg.sip
    ua = UserAgent({"host": "127.0.0.1", "port": 5070, "transport": "udp",
                    "username": sip.username, "password": sip.password,
                    "domain": config.effective_domain(cfg), "display_name": sip.display_name,
                    "registrar": Peer("udp", "127.0.0.1", 5060),
                    "registrar_hostport": sip.registrar})
    ua.start(0.0)
    (data, _), = ua.datagrams_to_send()
    register = parse(data)
    assert NameAddress.parse(register.headers.get("To")).uri.user == sip.username
    sender = NameAddress.parse(ua.from_header("t"))
    assert (sender.display_name or "") == sip.display_name


# -- the typed form (firmware/settings.py): validated once, the dict form kept for file and API --
def test_validate_returns_typed_sections_and_the_document_round_trips():
    doc = {"sip": {"registrar": "127.0.0.1:5060", "username": "door", "password": "pw-secret"},
           "media": {"srtp": "optional", "srtp_requires_tls": False},
           "buttons": [{"role": "call", "targets": ["sip:flat1@127.0.0.1"]},
                       {"role": "gate", "targets": ["sip:flat2@127.0.0.1"], "mode": "sequential"}],
           "door": {"codes": [{"caller": "sip:flat1@127.0.0.1", "code": "4711"}]}}
    cfg = config.validate(doc)
    assert isinstance(cfg, Config) and isinstance(cfg.sip, SipConfig)
    assert [type(b) for b in cfg.buttons] == [ButtonConfig, ButtonConfig]
    assert cfg.button("gate").mode == "sequential" and cfg.button("gate").target_timeout_s == 20
    assert isinstance(cfg.door.codes[0], DoorCode) and cfg.door.codes[0].length == 4
    assert config.validate(cfg.to_dict()) == cfg
    assert config.validate(cfg.to_dict()).to_dict() == cfg.to_dict()
    assert config.validate(config.merge(cfg.to_dict(), {"web": {"https": True}})) != cfg
    assert "pw-secret" not in repr(cfg) and "4711" not in repr(cfg)
    hashed = config.hashed_codes(cfg)
    assert hashed.door.codes[0].code is None and hashed.door.codes[0].length == 4
    assert config.check_door_code(hashed.door.codes[0], "4711")
    assert cfg.door.codes[0].code == "4711"  # the original is left as it was


def test_audio_section_defaults_and_checks():
    cfg = config.validate({})
    assert (cfg.audio.echo_cancel, cfg.audio.noise_suppress, cfg.audio.agc) == (True,) * 3
    assert (cfg.audio.mic_gain_db, cfg.audio.speaker_volume) == (0, 80)
    good = config.validate({"audio": {"mic_gain_db": -6.5, "speaker_volume": 0, "agc": False},
                            "media": {"codecs": ["G722", "PCMU"]}})
    assert good.audio.mic_gain_db == -6.5 and good.media.codecs == ["G722", "PCMU"]
    assert config.validate(good.to_dict()) == good
    with pytest.raises(config.ConfigError) as bad:
        config.validate({"audio": {"mic_gain_db": 31, "speaker_volume": 101, "agc": "yes",
                                   "echo_cancel": 1, "loudness": 3}})
    # every bad field at once: the unknown key does not hide the bad values (issue 18)
    assert set(bad.value.errors) == {"audio.loudness", "audio.mic_gain_db",
                                     "audio.speaker_volume", "audio.agc", "audio.echo_cancel"}
    with pytest.raises(config.ConfigError) as bad:
        config.validate({"audio": {"mic_gain_db": 31, "speaker_volume": 101, "agc": "yes",
                                   "echo_cancel": 1}, "media": {"codecs": ["G729"]}})
    assert set(bad.value.errors) == {"audio.mic_gain_db", "audio.speaker_volume", "audio.agc",
                                     "audio.echo_cancel", "media.codecs"}


def test_audio_period_and_buffer_defaults_and_ranges():
    """[audio] period_ms (5-100) and buffer_ms (two periods to 1000), issue 19."""
    cfg = config.validate({})
    assert (cfg.audio.period_ms, cfg.audio.buffer_ms) == (20, 80)
    good = config.validate({"audio": {"period_ms": 10, "buffer_ms": 20}})
    assert (good.audio.period_ms, good.audio.buffer_ms) == (10, 20)
    assert config.validate(good.to_dict()) == good
    assert config.validate({"audio": {"period_ms": 100, "buffer_ms": 1000}}).audio.buffer_ms == 1000
    for audio, fields in [({"period_ms": 4}, {"audio.period_ms"}),
                          ({"period_ms": 101, "buffer_ms": 300}, {"audio.period_ms"}),
                          ({"period_ms": 20, "buffer_ms": 39}, {"audio.buffer_ms"}),
                          ({"buffer_ms": 1001}, {"audio.buffer_ms"}),
                          ({"period_ms": 2.5, "buffer_ms": "80"},
                           {"audio.period_ms", "audio.buffer_ms"}),
                          ({"period_ms": True}, {"audio.period_ms"})]:
        with pytest.raises(config.ConfigError) as bad:
            config.validate({"audio": audio})
        assert set(bad.value.errors) == fields, audio
    with pytest.raises(config.ConfigError) as bad:
        config.validate({"audio": {"period_ms": 40, "buffer_ms": 60}})
    assert "between 80 and 1000" in bad.value.errors["audio.buffer_ms"]


def test_g722_is_refused_without_libspandsp(monkeypatch):
    monkeypatch.setattr(config, "_g722_available", lambda: False)
    with pytest.raises(config.ConfigError) as bad:
        config.validate({"media": {"codecs": ["G722", "PCMU"]}})
    assert "libspandsp" in bad.value.errors["media.codecs"]
    assert config.validate({"media": {"codecs": ["PCMU"]}}).media.codecs == ["PCMU"]


# -- short targets (issue 19): `**610`, `flat1` mean sip:<it>@<domain> ----------------------------
def test_a_short_button_target_means_a_sip_uri_at_the_domain():
    cfg = config.validate({"sip": {"registrar": "fritz.box", "username": "door"},
                           "buttons": [{"role": "call", "targets": ["**610", "flat1",
                                                                    "sip:x@10.0.0.1"]}]})
    assert cfg.buttons[0].targets == ["**610", "flat1", "sip:x@10.0.0.1"]  # kept as written
    assert [cfg.sip.target_uri(t) for t in cfg.buttons[0].targets] == \
        ["sip:**610@fritz.box", "sip:flat1@fritz.box", "sip:x@10.0.0.1"]
    direct = config.validate({"sip": {"registrar": "", "domain": "example.org"},
                              "buttons": [{"role": "call", "targets": ["flat1"]}]})
    assert direct.sip.target_uri("flat1") == "sip:flat1@example.org"


def test_a_short_target_needs_a_domain_and_sip_user_characters():
    errors = _errors({"sip": {"registrar": "", "domain": ""},
                      "buttons": [{"role": "call", "targets": ["flat1"]}]})
    assert "needs [sip] domain or registrar" in errors["buttons[0].targets[0]"]
    for bad in ["flat 1", "#610", "a<b", ""]:
        errors = _errors({"sip": {"registrar": "pbx.example"},
                          "buttons": [{"role": "call", "targets": [bad]}]})
        assert "buttons[0].targets[0]" in errors, bad


def test_a_schedules_targets_may_be_short_too():
    cfg = config.validate({
        "sip": {"registrar": "fritz.box", "username": "door"},
        "schedules": [{"name": "night", "days": ["mon"], "times": ["22:00-24:00"]}],
        "buttons": [{"role": "call", "targets": ["**610"],
                     "schedule_targets": [{"schedule": "night", "targets": ["**9"]}]}]})
    assert cfg.buttons[0].schedule_targets[0].targets == ["**9"]
    assert cfg.sip.target_uri("**9") == "sip:**9@fritz.box"
    errors = _errors({"sip": {"registrar": "fritz.box", "username": "door"},
                      "schedules": [{"name": "night", "days": ["mon"], "times": ["22:00-24:00"]}],
                      "buttons": [{"role": "call", "targets": ["**610"], "schedule_targets": [
                          {"schedule": "night", "targets": ["#9"]}]}]})
    assert list(errors) == ["buttons[0].schedule_targets[0].targets[0]"]
