"""[mqtt] and [[webhooks]] in the configuration (issue 17): defaults, errors per field,
secrets redacted and put back, the file round trip."""

import pytest

from firmware import config as configuration


def errors(doc):
    with pytest.raises(configuration.ConfigError) as caught:
        configuration.validate(doc)
    return caught.value.errors


def test_defaults_off():
    cfg = configuration.validate({})
    assert cfg.mqtt.broker == "" and cfg.mqtt.discovery_prefix == "homeassistant"
    assert cfg.mqtt.allow_door_open is False and cfg.webhooks == []


def test_round_trip_and_redaction(tmp_path):
    doc = {"mqtt": {"broker": "127.0.0.1:1883", "username": "door", "password": "pw",
                    "topic_prefix": "doorline/front", "allow_door_open": True},
           "webhooks": [{"url": "https://hooks.example.org/door", "events": ["button"],
                         "secret": "s3cret"}]}
    cfg = configuration.validate(doc)
    assert configuration.validate(cfg.to_dict()) == cfg
    path = tmp_path / "c.toml"
    configuration.save_atomic(str(path), cfg)
    assert configuration.load(str(path)) == cfg
    shown = configuration.redacted(cfg)
    assert shown["mqtt"]["password"] == "(set)" and shown["webhooks"][0]["secret"] == "(set)"
    assert "pw" not in repr(cfg) and "s3cret" not in repr(cfg)
    back = configuration.unredact(shown, cfg)
    assert configuration.validate(back) == cfg
    moved = configuration.redacted(cfg)
    moved["webhooks"][0]["url"] = "https://hooks.example.org/other"
    assert configuration.unredact(moved, cfg)["webhooks"][0]["secret"] == "s3cret"
    added = configuration.redacted(cfg)
    added["webhooks"].append({"url": "http://x/", "secret": "(set)"})
    assert "again" in errors(configuration.unredact(added, cfg))["webhooks[1].secret"]


def test_bad_fields_named():
    found = errors({"mqtt": {"broker": "x:99999", "topic_prefix": "a/#/b", "tls": "yes",
                             "discovery_prefix": ""},
                    "webhooks": [{"url": "ftp://x/", "secret": ""},
                                 {"url": "http://u:p@x/", "secret": "s", "events": ["a b"],
                                  "colour": 1}]})
    assert set(found) == {"mqtt.broker", "mqtt.topic_prefix", "mqtt.tls",
                          "mqtt.discovery_prefix", "webhooks[0].url", "webhooks[0].secret",
                          "webhooks[1].url", "webhooks[1].events[0]", "webhooks[1].colour"}
    assert "at most" in errors({"webhooks": [{"url": "http://x/", "secret": "s"}] * 9})[
        "webhooks"]
    assert "file not found" in errors({"mqtt": {"tls": True, "tls_ca": "/nonexistent.pem"}})[
        "mqtt.tls_ca"]
