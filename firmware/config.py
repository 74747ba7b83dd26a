"""The station's configuration: defaults, validation, atomic saving (CPython only).

The TOML keys are a public interface (see docs/CONFIG.md). `validate(doc)` checks a document
once and returns a `settings.Config` (typed objects, one per section, firmware/settings.py: the
portable core reads those and never imports this module), or raises ConfigError with one
message per bad field, so the command line, the web API and the page all report the same errors.
The dict form is the file and wire format: `Config.to_dict()` for TOML and the web API, and
`validate` is the way back. Nothing here touches the network or the hardware.

Secrets: the file is written 0600 (it holds the SIP password). Door codes are accepted in clear
(`code`) but saved as `code_hash` = "pbkdf2_sha256$<iterations>$<salt-hex>$<hash-hex>" plus
`length`; `load()` rewrites a file that still holds clear codes. `redacted()` shows every
secret as "(set)"; `check_door_code(entry, digits)` compares in constant time;
`hash_door_code(code)`.
"""

import copy
import ipaddress
import os
import stat
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

from firmware import tomlcache
from firmware.app import callers, doorcodes
from firmware.settings import Config, DoorCode
from firmware.sip.errors import ParseError
from firmware.sip.uri import URI, split_host_port

SECRET = "(set)"  # what the API shows instead of a secret that exists
# Door codes are saved as PBKDF2-SHA256 hashes (firmware/app/doorcodes.py). Each typed digit costs
# one hash per code of that length, on the event loop: ~3 ms here, tens of ms on a small Pi.
CODE_HASH_ITERATIONS = 10000
MAX_CODE_HASH_ITERATIONS = 1000000

DEFAULTS: "dict[str, Any]" = {
    "sip": {
        "registrar": "",
        "domain": "",
        "username": "",
        "password": "",
        "transport": "udp",
        "listen": "127.0.0.1:5070",
        "tls_ca": "",
        # 10 minutes: a registrar that restarts and forgets its bindings (memory-only
        # location tables are common) finds us again within minutes, not within the hour.
        "expires": 600,
        "display_name": "Door",
        # UDP keep-alive towards the registrar (firmware/sip/keepalive.py); 0 = none
        "keepalive_s": 25,
        # the digest user name where it differs from `username` ("" = the same); 3CX calls it
        # the Authentication ID
        "auth_username": "",
    },
    "media": {
        "srtp": "off",
        "srtp_requires_tls": None,  # None: true (SDES keys only over TLS) unless set false
        "codecs": ["PCMU", "PCMA"],
        "rtp_ports": "40000-40199",
    },
    # identity: "from" or "asserted" (the registrar's P-Asserted-Identity, RFC 3325), issue 12
    # schedule: a [[schedules]] name; auto-answer only while it is active ("" always), issue 17
    "answer": {"mode": "auto", "allow": [], "max_duration_s": 120, "identity": "from",
               "schedule": ""},
    "buttons": [
        {"role": "call", "targets": [], "mode": "parallel", "target_timeout_s": 20,
         "second_press": "ignore", "answer_mode": "", "schedule_targets": [], "quiet": ""},
    ],
    # follow_redirects: a 3xx to our INVITE is followed only when true, and then only to one
    # of the call's configured targets (toll fraud through redirects, issue 12).
    # delayed_offer: our INVITEs carry no SDP (the PBX offers; issue 19, docs/INSTALL.md)
    "calls": {"ring_timeout_s": 30, "max_duration_s": 300, "max_calls": 1,
              "follow_redirects": False, "conference": False, "max_parties": 3,
              "delayed_offer": False},
    "door": {"pulse_ms": 3000, "codes": [], "max_failures": 3, "lockout_s": 60,
             "hangup_on_close": False, "held_open_alarm_s": 0},
    "web": {"listen": "127.0.0.1:8080", "https": False, "hostnames": []},
    # issue 15: the microphone's DSP (firmware/runtime/audioproc.py) and the speaker's volume
    "audio": {"echo_cancel": True, "noise_suppress": True, "agc": True, "mic_gain_db": 0,
              "speaker_volume": 80, "period_ms": 20, "buffer_ms": 80},
    # Every door (issue 17): more relays, the station's wall clock and its time profiles.
    "relays": [],
    "time": {"zone": "UTC", "holidays": []},
    "schedules": [],
    # Telling the house (issue 17; docs/HOME.md): MQTT with Home Assistant discovery, webhooks.
    "mqtt": {"broker": "", "username": "", "password": "", "tls": False, "tls_ca": "",
             "topic_prefix": "", "discovery_prefix": "homeassistant", "allow_door_open": False},
    "webhooks": [],
    # issue 20: REFER targets (empty: button targets + answer.allow) and SIP MESSAGE
    "transfer": {"allow": []},
    "messages": {"to": [], "events": ["button"]},
    # issue 16: the board's camera (hal/camera.py); phone_token "" keeps /camera.jpg off
    "camera": {"enabled": True, "width": 640, "height": 480, "fps": 15,
               "snapshot_on_ring": True, "history": 50, "video": "offer", "phone_token": ""},
}
# Sections that are lists of tables ([[name]]), each entry with these defaults.
LIST_SECTIONS = ("buttons", "relays", "schedules", "webhooks")
RELAY_DEFAULTS: "dict[str, Any]" = {"role": "", "pulse_ms": 3000}
SCHEDULE_DEFAULTS: "dict[str, Any]" = {"name": "", "days": [], "times": []}
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday")
MAX_RELAYS = 8
MAX_SCHEDULES = 32
MAX_HOLIDAYS = 366
MAX_TIME_RANGES = 8
WEBHOOK_DEFAULTS: "dict[str, Any]" = {"url": "", "events": [], "secret": "", "tls_ca": ""}
MAX_WEBHOOKS = 8
MAX_WEBHOOK_EVENTS = 64
MAX_SECRET_LENGTH = 256
MAX_TOPIC_LENGTH = 200

CHOICES = {
    ("sip", "transport"): ("udp", "tcp", "tls"),
    ("media", "srtp"): ("off", "optional", "mandatory"),
    ("answer", "mode"): ("auto", "ring", "off"),
    ("answer", "identity"): ("from", "asserted"),
    ("camera", "video"): ("offer", "off"),
}
KNOWN_CODECS = ("PCMU", "PCMA", "G722")
MIC_GAIN_DB_RANGE = (-20, 30)
PERIOD_MS_RANGE = (5, 100)  # [audio] period_ms: the ALSA period of a Pi's sound card
BUFFER_MS_MAX = 1000  # [audio] buffer_ms: from two periods to this
BUTTON_MODES = ("parallel", "sequential")
SECOND_PRESS = ("ignore", "hangup")
ANSWER_MODES = ("", "auto", "manual")  # RFC 5373 Answer-Mode asked of the called phone


class ConfigError(ValueError):
    """A configuration with one or more bad fields; `errors` maps field path → message."""

    def __init__(self, errors: "dict[str, str]") -> None:
        self.errors = errors
        ValueError.__init__(self, "; ".join(f"{k}: {v}" for k, v in errors.items()))


def defaults() -> "dict[str, Any]":
    return copy.deepcopy(DEFAULTS)


def merge(base: "dict[str, Any]", partial: "dict[str, Any]") -> "dict[str, Any]":
    """A copy of `base` with `partial` laid over it, table by table (lists replace whole)."""
    out = copy.deepcopy(base)
    for key, value in partial.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """'host[:port]', '[v6]:port' → (host, port or default). Raises ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError("unterminated [IPv6 address]")
        ipaddress.IPv6Address(host)
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise ValueError("expected [address]:port")
    else:
        host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    if not host or any(c.isspace() or c in "/@;?" for c in host):
        raise ValueError("expected host[:port]")
    if not text.startswith("["):
        _check_host_name(host)
    if port == "":
        if default_port is None:
            raise ValueError("a port is required (host:port)")
        return host, default_port
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError("port must be 1-65535")
    return host, int(port)


# Limits for the texts that reach SIP headers (a header line stays short and readable).
MAX_HOST_LENGTH = 253
MAX_USER_LENGTH = 64
MAX_DISPLAY_NAME_LENGTH = 64
MAX_PASSWORD_LENGTH = 128
MAX_URI_LENGTH = 256
MAX_CA_FILE_BYTES = 1024 * 1024
# RFC 3261 §25.1 user = 1*( unreserved / escaped / user-unreserved )
USER_CHARS = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
              "-_.!~*'()" "&=+$,;?/" "%")


def _has_control(text: str) -> bool:
    """C0 controls, DEL and C1 controls: never part of a header value we write."""
    return any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in text)


def _shown(text: str, limit: int = 40) -> str:
    """A bad value for a one-line message: controls escaped, long values cut."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit] + "…"


def _check_host_name(host: str) -> None:
    """A host name or IPv4 address as SIP's URI grammar accepts it (RFC 3261 §25.1 host), or a
    bare IPv6 address. Raises ValueError with a short reason."""
    if len(host) > MAX_HOST_LENGTH:
        raise ValueError(f"host name longer than {MAX_HOST_LENGTH} characters")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
            return
        except ValueError:
            raise ValueError("expected host[:port] (an IPv6 address goes in brackets: "
                             "[2001:db8::1]:5060)") from None
    try:
        split_host_port(host)
    except ParseError:
        raise ValueError("not a valid host name or IP address") from None


class _Checker:
    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def fail(self, path: str, message: str) -> None:
        self.errors.setdefault(path, message)

    def type(self, path: str, value: Any, kinds: "tuple[type, ...]", label: str) -> bool:
        if isinstance(value, bool) and bool not in kinds:
            self.fail(path, f"must be {label}")
            return False
        if not isinstance(value, kinds):
            self.fail(path, f"must be {label}")
            return False
        return True

    def integer(self, path: str, value: Any, low: int, high: int) -> None:
        if self.type(path, value, (int,), "a whole number") and not low <= value <= high:
            self.fail(path, f"must be between {low} and {high} (got {value})")

    def sip_uri(self, path: str, value: Any) -> None:
        if not self.type(path, value, (str,), "a SIP URI string"):
            return
        try:
            uri = URI.parse(value)
        except ParseError as exc:
            self.fail(path, f"not a valid SIP URI ({exc.reason}): {value!r}")
            return
        if uri.scheme not in ("sip", "sips"):
            self.fail(path, f"must be a sip: or sips: URI (got {value!r})")
        elif len(value) > MAX_URI_LENGTH:
            self.fail(path, f"longer than {MAX_URI_LENGTH} characters")
        elif uri.headers or "?" in value.partition("@")[2]:
            self.fail(path, f"must not carry ?headers (got {value!r})")
        elif uri.password is not None:
            self.fail(path, "must not carry a password (user:password@)")

    def host(self, path: str, value: str, what: str = "a host name or IP address") -> None:
        """`value` is a bare host: a name, an IPv4 address or an [IPv6] reference, no port."""
        if not value:
            return
        if _has_control(value) or any(c.isspace() for c in value):
            self.fail(path, f"must be {what}, without spaces or line breaks "
                            f"(got {_shown(value)})")
            return
        try:
            host, port = split_host_port(value)
        except ParseError:
            self.fail(path, f"must be {what} (IPv6 in brackets) (got {_shown(value)})")
            return
        if port is not None:
            self.fail(path, f"must be {what} without a port (got {_shown(value)})")
        elif len(host) > MAX_HOST_LENGTH:
            self.fail(path, f"longer than {MAX_HOST_LENGTH} characters")


def validate(doc: Any, board: "dict[str, Any] | None" = None) -> Config:
    """Check a whole configuration document once. Returns it as a `Config` (defaults filled
    in) or raises ConfigError with one message per bad field: every bad field at once, an
    unknown section or key too (it is reported and left out, the rest is still checked).
    With `board` (`{"name", "buttons", "relays", "inputs"}`: the running board's roles, as
    GET /api/board gives them) the roles a button, a relay or a door code names must exist on
    that board; without, any well-formed role name is accepted (a file loaded at start, which
    must never stop the station)."""
    if not isinstance(doc, dict):
        raise ConfigError({"": "the configuration must be a table"})
    check = _Checker()
    for key in doc:
        if key not in DEFAULTS:
            check.fail(str(key), "unknown section")
    base = defaults()
    if "buttons" in doc:
        base["buttons"] = []
    cfg = merge(base, {k: v for k, v in doc.items() if k in DEFAULTS})
    for section, table in cfg.items():
        if section in LIST_SECTIONS:
            continue
        if not isinstance(table, dict):
            check.fail(section, "must be a table")
            cfg[section] = copy.deepcopy(DEFAULTS[section])  # checked no further
            continue
        for key in [k for k in table if k not in DEFAULTS[section]]:
            check.fail(f"{section}.{key}", "unknown key")
            del table[key]

    for (section, key), allowed in CHOICES.items():
        value = cfg[section][key]
        if value not in allowed:
            check.fail(f"{section}.{key}", f"must be one of {', '.join(allowed)} (got {value!r})")
    _check_sip(check, cfg["sip"])
    _check_media(check, cfg["media"])
    _check_answer(check, cfg["answer"])
    _check_schedules(check, cfg)  # first: the others name schedules
    _check_relays(check, cfg)
    _check_buttons(check, cfg["buttons"], cfg["sip"])
    _check_door(check, cfg["door"])
    _check_door_control(check, cfg)
    calls = cfg["calls"]
    check.integer("calls.ring_timeout_s", calls["ring_timeout_s"], 5, 600)
    check.integer("calls.max_duration_s", calls["max_duration_s"], 10, 86400)
    check.integer("calls.max_calls", calls["max_calls"], 1, 8)
    check.type("calls.follow_redirects", calls["follow_redirects"], (bool,), "true or false")
    check.type("calls.conference", calls["conference"], (bool,), "true or false")
    check.integer("calls.max_parties", calls["max_parties"], 2, 4)
    check.type("calls.delayed_offer", calls["delayed_offer"], (bool,), "true or false")
    _check_transfer_and_messages(check, cfg["transfer"], cfg["messages"])
    web = cfg["web"]
    _check_listen(check, "web.listen", web["listen"])
    check.type("web.https", web["https"], (bool,), "true or false")
    _check_hostnames(check, web["hostnames"])
    _check_audio(check, cfg["audio"])
    _check_mqtt(check, cfg["mqtt"])
    _check_webhooks(check, cfg)
    _check_camera(check, cfg["camera"])
    if board is not None:
        _check_board_roles(check, cfg, board)
    if check.errors:
        raise ConfigError(check.errors)
    return Config.from_dict(cfg)


def _check_board_roles(check: _Checker, cfg: "dict[str, Any]", board: "dict[str, Any]") -> None:
    """Buttons, relays and door codes' relays name roles the running board has."""
    name = board.get("name") or "this board"

    def refuse(path: str, kind: str, role: Any, have: "list[str]") -> None:
        check.fail(path, f"no {kind} role \"{role}\" on this board ({name} has: "
                         f"{', '.join(have) or 'none'})")

    buttons = [str(r) for r in board.get("buttons", [])]
    for i, button in enumerate(cfg["buttons"] if isinstance(cfg["buttons"], list) else []):
        role = button.get("role") if isinstance(button, dict) else None
        if isinstance(role, str) and _role_name(role) and role != "exit" and \
                role not in buttons:
            refuse(f"buttons[{i}].role", "button", role, buttons)
    relays = [str(r) for r in board.get("relays", [])]
    for i, relay in enumerate(cfg["relays"] if isinstance(cfg["relays"], list) else []):
        role = relay.get("role") if isinstance(relay, dict) else None
        if isinstance(role, str) and _role_name(role) and role not in relays:
            refuse(f"relays[{i}].role", "relay", role, relays)
    codes = cfg["door"]["codes"] if isinstance(cfg["door"]["codes"], list) else []
    for i, entry in enumerate(codes):
        role = entry.get("relay", "door") if isinstance(entry, dict) else None
        if isinstance(role, str) and role not in relays:
            refuse(f"door.codes[{i}].relay", "relay", role, relays)


# -- telling the house (issue 17) ---------------------------------------------------------------
def _check_mqtt(check: _Checker, mqtt: "dict[str, Any]") -> None:
    texts = ("broker", "username", "password", "tls_ca", "topic_prefix", "discovery_prefix")
    # each text on its own: a wrong type in one field must not hide the others' errors
    ok = {key: check.type(f"mqtt.{key}", mqtt[key], (str,), "a string") for key in texts}
    check.type("mqtt.tls", mqtt["tls"], (bool,), "true or false")
    check.type("mqtt.allow_door_open", mqtt["allow_door_open"], (bool,), "true or false")
    if ok["broker"] and mqtt["broker"]:
        try:
            parse_host_port(mqtt["broker"], 1883)
        except ValueError as exc:
            check.fail("mqtt.broker", f"{exc} (got {_shown(mqtt['broker'])})")
    for key in ("username", "password"):
        if ok[key] and (_has_control(mqtt[key]) or len(mqtt[key]) > MAX_PASSWORD_LENGTH):
            check.fail(f"mqtt.{key}", "must be at most %d characters without control "
                                      "characters" % MAX_PASSWORD_LENGTH)
    for key in ("topic_prefix", "discovery_prefix"):
        topic = mqtt[key]
        if ok[key] and (len(topic) > MAX_TOPIC_LENGTH or _has_control(topic) or
                        any(c in topic for c in "#+\0") or topic.startswith("/") or
                        topic.endswith("/") or "//" in topic):
            check.fail(f"mqtt.{key}", "must be an MQTT topic like doorline/front without "
                                      f"wildcards, empty levels or a leading/trailing / "
                                      f"(got {_shown(topic)})")
    if ok["discovery_prefix"] and not mqtt["discovery_prefix"]:
        check.fail("mqtt.discovery_prefix", "must not be empty (Home Assistant's is "
                                            "homeassistant)")
    if ok["tls_ca"] and mqtt["tls"] is True and mqtt["tls_ca"]:
        problem = ca_file_problem(mqtt["tls_ca"])
        if problem:
            check.fail("mqtt.tls_ca", problem)


def _check_webhooks(check: _Checker, cfg: "dict[str, Any]") -> None:
    for path, full in _table_list(check, cfg, "webhooks", WEBHOOK_DEFAULTS, MAX_WEBHOOKS):
        url = full["url"]
        if check.type(f"{path}.url", url, (str,), "an http:// or https:// URL"):
            problem = webhook_url_problem(url)
            if problem:
                check.fail(f"{path}.url", problem)
        events = full["events"]
        if check.type(f"{path}.events", events, (list,), "a list of event types"):
            if len(events) > MAX_WEBHOOK_EVENTS:
                check.fail(f"{path}.events", f"at most {MAX_WEBHOOK_EVENTS} event types")
            for j, name in enumerate(events):
                if not isinstance(name, str) or not name or len(name) > 64 or \
                        not name.replace("_", "").isalnum() or not name.isascii():
                    check.fail(f"{path}.events[{j}]",
                               f"must be an event type like 'button' (got {_shown(str(name))})")
        secret = full["secret"]
        if check.type(f"{path}.secret", secret, (str,), "a string"):
            if not secret:
                check.fail(f"{path}.secret", "is required: every POST is signed with it "
                                             "(HMAC-SHA256)")
            elif secret == SECRET:
                check.fail(f"{path}.secret", "type the secret again (this webhook is new)")
            elif len(secret) > MAX_SECRET_LENGTH or _has_control(secret):
                check.fail(f"{path}.secret", f"must be at most {MAX_SECRET_LENGTH} characters "
                                             "without control characters")
        ca = full["tls_ca"]
        if check.type(f"{path}.tls_ca", ca, (str,), "a string") and ca:
            problem = ca_file_problem(ca)
            if problem:
                check.fail(f"{path}.tls_ca", problem)


def split_webhook_url(url: str) -> "tuple[str, str, int, str]":
    """(scheme, host, port, path-and-query) of an http(s) URL; raises ValueError."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    hostport, slash, path = rest.partition("/")
    if "@" in hostport:
        raise ValueError("must not carry user:password@ (use the secret)")
    if "#" in url:
        raise ValueError("must not carry a #fragment")
    host, port = parse_host_port(hostport, 443 if scheme == "https" else 80)
    return scheme, host, port, slash + path if slash else "/"


def webhook_url_problem(url: str) -> str | None:
    if len(url) > MAX_URI_LENGTH * 4 or _has_control(url) or any(c.isspace() for c in url):
        return "must be a URL without spaces or control characters, at most 1024 characters"
    try:
        split_webhook_url(url)
    except ValueError as exc:
        return f"{exc} (got {_shown(url)})"
    return None


# Derived settings are computed where used, never stored: a later change of what they derive
# from (the registrar, the SRTP mode) must not leave a stale copy behind.
def effective_domain(cfg: Config) -> str:
    """The AOR domain: `[sip] domain`, else the registrar's host (SipConfig.effective_domain)."""
    return cfg.sip.effective_domain()


def srtp_requires_tls(cfg: Config) -> bool:
    """`[media] srtp_requires_tls`: true unless set to false explicitly, for `optional` as for
    `mandatory` (issue 12: SDES keys never travel over plain signalling by default)."""
    return cfg.media.keys_need_tls()


def _check_listen(check: _Checker, path: str, value: Any) -> None:
    if check.type(path, value, (str,), "a host:port string"):
        try:
            parse_host_port(value)
        except ValueError as exc:
            check.fail(path, f"{exc} (got {value!r})")


MAX_WEB_HOSTNAMES = 32


def _check_hostnames(check: _Checker, names: Any) -> None:
    """[web] hostnames: extra names the page answers to (DNS names or IP addresses)."""
    if not check.type("web.hostnames", names, (list,), "a list of host names"):
        return
    if len(names) > MAX_WEB_HOSTNAMES:
        check.fail("web.hostnames", f"at most {MAX_WEB_HOSTNAMES} names")
    for i, name in enumerate(names):
        path = f"web.hostnames[{i}]"
        if not check.type(path, name, (str,), "a host name string"):
            continue
        if not _is_host_name(name):
            check.fail(path, "must be a host name like door.example.org or an IP address, "
                             f"without scheme, port or path (got {name[:100]!r})")


def _is_host_name(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    text = name[:-1] if name.endswith(".") else name
    labels = text.split(".")
    return 0 < len(text) <= 253 and all(
        0 < len(label) <= 63 and label.isascii() and label[0] != "-" and label[-1] != "-"
        and all(c.isalnum() or c == "-" for c in label) for label in labels)


def _check_sip(check: _Checker, sip: "dict[str, Any]") -> None:
    texts = ("registrar", "domain", "username", "password", "tls_ca", "display_name",
             "auth_username")
    # each text on its own: a wrong type in one field must not hide the others' errors
    ok = {key: check.type(f"sip.{key}", sip[key], (str,), "a string") for key in texts}
    if ok["registrar"] and sip["registrar"]:
        try:
            parse_host_port(sip["registrar"], 5060)
        except ValueError as exc:
            check.fail("sip.registrar", f"{exc} (got {sip['registrar']!r})")
        if ok["username"] and not sip["username"]:
            check.fail("sip.username", "is required when a registrar is set")
    if ok["domain"]:
        check.host("sip.domain", sip["domain"])
    for key in ("username", "auth_username"):
        if ok[key]:
            _check_user(check, f"sip.{key}", sip[key])
    name = sip["display_name"]
    if not ok["display_name"]:
        pass
    elif _has_control(name):
        check.fail("sip.display_name", "must not contain line breaks or control characters")
    elif len(name) > MAX_DISPLAY_NAME_LENGTH:
        check.fail("sip.display_name", f"longer than {MAX_DISPLAY_NAME_LENGTH} characters")
    if not ok["password"]:
        pass
    elif _has_control(sip["password"]):
        check.fail("sip.password", "must not contain line breaks or control characters")
    elif len(sip["password"]) > MAX_PASSWORD_LENGTH:
        check.fail("sip.password", f"longer than {MAX_PASSWORD_LENGTH} characters")
    _check_listen(check, "sip.listen", sip["listen"])
    check.integer("sip.expires", sip["expires"], 60, 86400)
    if sip["keepalive_s"] != 0 or isinstance(sip["keepalive_s"], bool):
        check.integer("sip.keepalive_s", sip["keepalive_s"], 5, 3600)
    if ok["tls_ca"] and sip["transport"] == "tls" and sip["tls_ca"]:
        problem = ca_file_problem(sip["tls_ca"])
        if problem:
            check.fail("sip.tls_ca", problem)


def _check_user(check: _Checker, path: str, user: str) -> None:
    """A SIP URI user part as RFC 3261 §25.1 allows it (and as our own parser reads it back)."""
    if not user:
        return
    bad = sorted(set(c for c in user if c not in USER_CHARS))
    if bad:
        check.fail(path, "may only hold letters, digits and -_.!~*'()&=+$,;?/% "
                         f"(got {_shown(''.join(bad))})")
        return
    if len(user) > MAX_USER_LENGTH:
        check.fail(path, f"longer than {MAX_USER_LENGTH} characters")
        return
    try:
        parsed = URI.parse("sip:%s@invalid" % user)
    except ParseError as exc:
        check.fail(path, f"not a valid SIP user part ({exc.reason}): {_shown(user)}")
        return
    if parsed.user != user:
        check.fail(path, f"not a valid SIP user part: {_shown(user)}")


def ca_file_problem(path: str) -> str | None:
    """None when `path` is a readable PEM file with at least one certificate that ssl loads,
    else a one-line reason (for `[sip] tls_ca`)."""
    if _has_control(path):
        return "must be a file path without control characters"
    try:
        if os.path.isdir(path):
            return f"is a directory, not a PEM file: {path}"
        if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
            return f"is not a regular file: {path}"  # a FIFO or device would block or never end
        with open(path, "rb") as f:
            data = f.read(MAX_CA_FILE_BYTES + 1)
    except FileNotFoundError:
        return f"file not found: {path}"
    except OSError as exc:
        return f"cannot be read: {path}: {exc.strerror or exc}"
    if len(data) > MAX_CA_FILE_BYTES:
        return f"larger than {MAX_CA_FILE_BYTES // 1024} KiB: {path}"
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return f"not a PEM file with a CERTIFICATE block: {path}"
    import ssl  # only for a TLS CA file: a plain station never loads ssl

    try:
        ssl.create_default_context().load_verify_locations(
            cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"holds no certificate that can be loaded ({reason}): {path}"
    return None


def _check_media(check: _Checker, media: "dict[str, Any]") -> None:
    codecs = media["codecs"]
    if check.type("media.codecs", codecs, (list,), "a list of codec names"):
        bad = [c for c in codecs if c not in KNOWN_CODECS]
        if bad or not codecs or len(set(codecs)) != len(codecs):
            check.fail("media.codecs", f"must list distinct codecs among {', '.join(KNOWN_CODECS)}")
        elif "G722" in codecs and not _g722_available():
            check.fail("media.codecs", "G722 needs libspandsp, which is not installed here "
                                       "(Debian package libspandsp2)")
    if media["srtp_requires_tls"] is not None:
        check.type("media.srtp_requires_tls", media["srtp_requires_tls"], (bool,), "true or false")
    ports = media["rtp_ports"]
    if check.type("media.rtp_ports", ports, (str,), 'a "low-high" string'):
        low, _, high = ports.partition("-")
        if not (low.isdigit() and high.isdigit() and 1024 <= int(low) < int(high) <= 65535):
            check.fail("media.rtp_ports", f'must be "low-high" within 1024-65535 (got {ports!r})')
        elif int(high) - int(low) < 3:
            check.fail("media.rtp_ports", "the range must hold at least two RTP/RTCP pairs")


def _g722_available() -> bool:
    """Whether libspandsp loads (only asked when G722 is configured: it loads the library)."""
    from firmware.runtime import g722

    return g722.available()


def _check_audio(check: _Checker, audio: "dict[str, Any]") -> None:
    for key in ("echo_cancel", "noise_suppress", "agc"):
        check.type(f"audio.{key}", audio[key], (bool,), "true or false")
    low, high = MIC_GAIN_DB_RANGE
    gain = audio["mic_gain_db"]
    if check.type("audio.mic_gain_db", gain, (int, float), "a number of dB"):
        if not low <= gain <= high:
            check.fail("audio.mic_gain_db", f"must be between {low} and {high} dB (got {gain})")
    check.integer("audio.speaker_volume", audio["speaker_volume"], 0, 100)
    period, buffer = audio["period_ms"], audio["buffer_ms"]
    check.integer("audio.period_ms", period, *PERIOD_MS_RANGE)
    if type(period) is int and PERIOD_MS_RANGE[0] <= period <= PERIOD_MS_RANGE[1]:
        check.integer("audio.buffer_ms", buffer, 2 * period, BUFFER_MS_MAX)
    else:
        check.integer("audio.buffer_ms", buffer, 2 * PERIOD_MS_RANGE[0], BUFFER_MS_MAX)


def _check_answer(check: _Checker, answer: "dict[str, Any]") -> None:
    if check.type("answer.allow", answer["allow"], (list,), "a list of SIP URIs"):
        for i, uri in enumerate(answer["allow"]):
            check.sip_uri(f"answer.allow[{i}]", uri)
    check.integer("answer.max_duration_s", answer["max_duration_s"], 10, 86400)


MAX_URI_LIST = 32
MESSAGE_EVENTS = ("button", "call", "door_open", "caller_rejected", "code_failed", "lockout",
                  "transferred", "transfer_refused")


def _check_transfer_and_messages(check: _Checker, transfer: "dict[str, Any]",
                                 messages: "dict[str, Any]") -> None:
    for path, uris in (("transfer.allow", transfer["allow"]), ("messages.to", messages["to"])):
        if check.type(path, uris, (list,), "a list of SIP URIs"):
            if len(uris) > MAX_URI_LIST:
                check.fail(path, f"at most {MAX_URI_LIST} entries")
            for i, uri in enumerate(uris):
                check.sip_uri(f"{path}[{i}]", uri)
    events = messages["events"]
    if check.type("messages.events", events, (list,), "a list of event types"):
        for i, name in enumerate(events):
            if name not in MESSAGE_EVENTS:
                check.fail(f"messages.events[{i}]",
                           f"must be one of {', '.join(MESSAGE_EVENTS)} (got {name!r})")


def is_short_target(target: str) -> bool:
    """A button target without `sip:`/`sips:` and `@` (`**610`, `flat1`): it means
    `sip:<target>@<domain>` (SipConfig.target_uri)."""
    return not target.startswith(("sip:", "sips:")) and "@" not in target


def _check_target(check: _Checker, path: str, target: Any, sip: "dict[str, Any]") -> None:
    """A full SIP URI, or a short target: a SIP user part that becomes `sip:<it>@<domain>`,
    which needs a domain (`[sip] domain` or a registrar)."""
    if not isinstance(target, str) or not is_short_target(target):
        check.sip_uri(path, target)
        return
    if not target:
        check.fail(path, "must not be empty")
        return
    before = len(check.errors)
    _check_user(check, path, target)
    if len(check.errors) > before:
        return
    if not (isinstance(sip.get("domain"), str) and sip["domain"]) and \
            not (isinstance(sip.get("registrar"), str) and sip["registrar"]):
        check.fail(path, f"a short target ({target!r}, meaning sip:{target}@<domain>) needs "
                         "[sip] domain or registrar")


def _check_buttons(check: _Checker, buttons: Any, sip: "dict[str, Any]") -> None:
    if not check.type("buttons", buttons, (list,), "a list of [[buttons]] tables"):
        return
    seen = set()
    for i, button in enumerate(buttons):
        path = f"buttons[{i}]"
        if not check.type(path, button, (dict,), "a table"):
            continue
        for key in button:
            if key not in DEFAULTS["buttons"][0]:
                check.fail(f"{path}.{key}", "unknown key")
        full = merge(DEFAULTS["buttons"][0], button)
        buttons[i] = full
        role = full["role"]
        if check.type(f"{path}.role", role, (str,), "a role name"):  # the rest is checked anyway
            if not role or not role.replace("_", "").isalnum():
                check.fail(f"{path}.role", f"must be a role name like 'call' (got {role!r})")
            if role in seen:
                check.fail(f"{path}.role", f"button role {role!r} is configured twice")
            if role == "exit":
                check.fail(f"{path}.role", "the exit button opens the door and rings no one: "
                                           "it needs no [[buttons]] entry")
            seen.add(role)
        if check.type(f"{path}.targets", full["targets"], (list,), "a list of SIP URIs"):
            for j, uri in enumerate(full["targets"]):
                _check_target(check, f"{path}.targets[{j}]", uri, sip)
        if full["mode"] not in BUTTON_MODES:
            check.fail(f"{path}.mode", f"must be one of {', '.join(BUTTON_MODES)}")
        if full["second_press"] not in SECOND_PRESS:
            check.fail(f"{path}.second_press", f"must be one of {', '.join(SECOND_PRESS)}")
        if full["answer_mode"] not in ANSWER_MODES:
            check.fail(f"{path}.answer_mode", 'must be "", "auto" or "manual"')
        check.integer(f"{path}.target_timeout_s", full["target_timeout_s"], 3, 600)


MAX_CAMERA_WIDTH, MAX_CAMERA_HEIGHT, MAX_CAMERA_FPS, MAX_SNAPSHOT_HISTORY = 1920, 1080, 30, 1000


def _check_camera(check: _Checker, camera: "dict[str, Any]") -> None:
    for key in ("enabled", "snapshot_on_ring"):
        check.type(f"camera.{key}", camera[key], (bool,), "true or false")
    check.integer("camera.width", camera["width"], 160, MAX_CAMERA_WIDTH)
    check.integer("camera.height", camera["height"], 120, MAX_CAMERA_HEIGHT)
    for key, step in (("width", 16), ("height", 2)):
        value = camera[key]
        if "camera." + key not in check.errors and value % step:
            check.fail("camera." + key, f"must be a multiple of {step} (got {value})")
    check.integer("camera.fps", camera["fps"], 1, MAX_CAMERA_FPS)
    check.integer("camera.history", camera["history"], 0, MAX_SNAPSHOT_HISTORY)
    token = camera["phone_token"]
    if check.type("camera.phone_token", token, (str,), "a string") and token and \
            (len(token) < 16 or len(token) > 128 or not token.isascii() or
             not all(c.isalnum() or c in "-_" for c in token)):
        check.fail("camera.phone_token", "must be empty (off) or 16-128 letters, digits, - or _")


def _check_door(check: _Checker, door: "dict[str, Any]") -> None:
    check.integer("door.pulse_ms", door["pulse_ms"], 100, 30000)
    check.integer("door.max_failures", door["max_failures"], 1, 20)
    check.integer("door.lockout_s", door["lockout_s"], 5, 86400)
    if not check.type("door.codes", door["codes"], (list,), "a list of {caller, code} tables"):
        return
    for i, entry in enumerate(door["codes"]):
        path = f"door.codes[{i}]"
        if not check.type(path, entry, (dict,), "a {caller, code} table"):
            continue
        unknown = set(entry) - {"caller", "code", "code_hash", "length", "relay", "schedule"}
        if unknown:
            check.fail(f"{path}.{sorted(unknown, key=str)[0]}", "unknown key")
        check.sip_uri(f"{path}.caller", entry.get("caller"))
        if "code_hash" in entry or "length" in entry:
            _check_code_hash(check, path, entry)
            continue
        code = entry.get("code")
        if not (isinstance(code, str) and code.isdigit() and 4 <= len(code) <= 12):
            check.fail(f"{path}.code", "must be 4 to 12 digits")


def _role_name(text: Any) -> bool:
    return isinstance(text, str) and 0 < len(text) <= 32 and text.replace("_", "").isalnum() \
        and text.isascii()


def _check_schedules(check: _Checker, cfg: "dict[str, Any]") -> None:
    """[time] zone and holidays, [[schedules]] name, days, times (issue 17)."""
    time_table = cfg["time"]
    zone = time_table["zone"]
    if check.type("time.zone", zone, (str,), 'an IANA time zone name like "Europe/Berlin"'):
        problem = zone_problem(zone)
        if problem:
            check.fail("time.zone", problem)
    holidays = time_table["holidays"]
    if check.type("time.holidays", holidays, (list,), 'a list of "YYYY-MM-DD" dates'):
        if len(holidays) > MAX_HOLIDAYS:
            check.fail("time.holidays", f"at most {MAX_HOLIDAYS} dates")
        for i, day in enumerate(holidays):
            if not _is_date(day):
                check.fail(f"time.holidays[{i}]", f'must be a "YYYY-MM-DD" date (got {day!r})')
    seen = set()
    for path, full in _table_list(check, cfg, "schedules", SCHEDULE_DEFAULTS, MAX_SCHEDULES):
        if not _role_name(full["name"]):
            check.fail(f"{path}.name", "must be a name like 'office' (letters, digits, _; "
                                       f"at most 32) (got {full['name']!r})")
        elif full["name"] in seen:
            check.fail(f"{path}.name", f"schedule {full['name']!r} is defined twice")
        seen.add(full["name"])
        days = full["days"]
        if check.type(f"{path}.days", days, (list,), "a list of day names"):
            bad = [d for d in days if d not in DAY_NAMES]
            if bad or not days:
                check.fail(f"{path}.days", f"must list days among {', '.join(DAY_NAMES)} "
                                           f"(got {days!r})")
        times = full["times"]
        if check.type(f"{path}.times", times, (list,), 'a list of "HH:MM-HH:MM" ranges'):
            if not times or len(times) > MAX_TIME_RANGES:
                check.fail(f"{path}.times", f"must hold 1 to {MAX_TIME_RANGES} ranges "
                                            '(all day: "00:00-24:00")')
            for j, text in enumerate(times):
                if _time_range(text) is None:
                    check.fail(f"{path}.times[{j}]", 'must be "HH:MM-HH:MM" (00:00 to 24:00, '
                                                     f"start and end differ) (got {text!r})")


def zone_problem(zone: str) -> str | None:
    """None when the station can use the time zone `zone` (firmware/runtime/localtime.py,
    the only user of zoneinfo: loaded only for a zone other than UTC)."""
    if zone == "UTC":
        return None
    from firmware.runtime.localtime import zone_problem as problem

    return problem(zone)


def _is_date(text: Any) -> bool:
    if not isinstance(text, str) or len(text) != 10 or text[4] != "-" or text[7] != "-":
        return False
    year, month, day = text[:4], text[5:7], text[8:]
    if not (year.isdigit() and month.isdigit() and day.isdigit()):
        return False
    days_in = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return 1 <= int(month) <= 12 and 1 <= int(day) <= days_in[int(month) - 1]


def _time_range(text: Any) -> "tuple[int, int] | None":
    """'HH:MM-HH:MM' → (start, end) in minutes of the day, or None."""
    if not isinstance(text, str):
        return None
    start, dash, end = text.partition("-")
    if not dash:
        return None
    minutes = []
    for part in (start, end):
        hour, colon, minute = part.strip().partition(":")
        if not (colon and hour.isdigit() and minute.isdigit() and len(minute) == 2
                and len(hour) <= 2):
            return None
        value = int(hour) * 60 + int(minute)
        if int(minute) > 59 or value > 24 * 60:
            return None
        minutes.append(value)
    if minutes[0] == minutes[1] or minutes[0] == 24 * 60:
        return None
    return minutes[0], minutes[1]


def _table_list(check: _Checker, cfg: "dict[str, Any]", name: str,
                defaults: "dict[str, Any]",
                limit: int) -> "Iterator[tuple[str, dict[str, Any]]]":
    """The tables of the `[[name]]` list, each merged with `defaults` (and put back in its
    place), with its path; unknown keys, a list too long or not a list are reported (the
    last leaves an empty list)."""
    entries = cfg[name]
    if not check.type(name, entries, (list,), f"a list of [[{name}]] tables"):
        cfg[name] = []
        return
    if len(entries) > limit:
        check.fail(name, f"at most {limit} {name}")
    for i, entry in enumerate(entries):
        path = f"{name}[{i}]"
        if not check.type(path, entry, (dict,), "a table"):
            continue
        for key in entry:
            if key not in defaults:
                check.fail(f"{path}.{key}", "unknown key")
        full = merge(defaults, entry)
        entries[i] = full
        yield path, full


def _check_relays(check: _Checker, cfg: "dict[str, Any]") -> None:
    seen = set()
    for path, full in _table_list(check, cfg, "relays", RELAY_DEFAULTS, MAX_RELAYS):
        if not _role_name(full["role"]):
            check.fail(f"{path}.role", f"must be a role name like 'gate' (got {full['role']!r})")
        elif full["role"] in seen:
            check.fail(f"{path}.role", f"relay role {full['role']!r} is configured twice")
        seen.add(full["role"])
        check.integer(f"{path}.pulse_ms", full["pulse_ms"], 100, 30000)


def _check_door_control(check: _Checker, cfg: "dict[str, Any]") -> None:
    """What names a schedule or a relay names one that exists; the door contact's keys."""
    door = cfg["door"]
    check.type("door.hangup_on_close", door["hangup_on_close"], (bool,), "true or false")
    check.integer("door.held_open_alarm_s", door["held_open_alarm_s"], 0, 86400)
    schedules = cfg["schedules"] if isinstance(cfg["schedules"], list) else []
    names = {s.get("name") for s in schedules if isinstance(s, dict)}
    relays = {"door"} | {r.get("role") for r in cfg["relays"] if isinstance(r, dict)}

    def schedule(path: str, value: Any) -> None:
        if not isinstance(value, str):
            check.fail(path, "must be a schedule name (a string)")
        elif value and value not in names:
            known = ", ".join(sorted(str(n) for n in names)) or "none defined"
            check.fail(path, f"no [[schedules]] entry named {value!r} ({known})")

    schedule("answer.schedule", cfg["answer"]["schedule"])
    for i, button in enumerate(cfg["buttons"] if isinstance(cfg["buttons"], list) else []):
        if not isinstance(button, dict):
            continue
        path = f"buttons[{i}]"
        schedule(f"{path}.quiet", button.get("quiet", ""))
        entries = button.get("schedule_targets", [])
        if not check.type(f"{path}.schedule_targets", entries, (list,),
                          "a list of {schedule, targets} tables"):
            continue
        for j, entry in enumerate(entries):
            where = f"{path}.schedule_targets[{j}]"
            if not check.type(where, entry, (dict,), "a {schedule, targets} table"):
                continue
            if set(entry) != {"schedule", "targets"}:
                check.fail(where, "must have exactly the keys schedule and targets")
                continue
            schedule(f"{where}.schedule", entry["schedule"])
            if not entry["schedule"]:
                check.fail(f"{where}.schedule", "must name a schedule")
            if check.type(f"{where}.targets", entry["targets"], (list,), "a list of SIP URIs"):
                for k, uri in enumerate(entry["targets"]):
                    _check_target(check, f"{where}.targets[{k}]", uri, cfg["sip"])
    codes = door["codes"] if isinstance(door["codes"], list) else []
    for i, entry in enumerate(codes):
        if not isinstance(entry, dict):
            continue
        relay = entry.get("relay", "door")
        if relay not in relays:
            check.fail(f"door.codes[{i}].relay", f"no relay {relay!r} (configured: "
                                                 f"{', '.join(sorted(str(r) for r in relays))})")
        schedule(f"door.codes[{i}].schedule", entry.get("schedule", ""))


def _check_code_hash(check: _Checker, path: str, entry: "dict[str, Any]") -> None:
    """A stored code: "pbkdf2_sha256$<iterations>$<salt-hex>$<hash-hex>" and its length."""
    if "code" in entry:
        check.fail(f"{path}.code", "give either code or code_hash, not both")
    check.integer(f"{path}.length", entry.get("length"), 4, 12)
    code_hash = entry.get("code_hash")
    parts = code_hash.split("$") if isinstance(code_hash, str) else []
    if len(parts) != 4 or parts[0] != doorcodes.HASH_SCHEME or not parts[1].isdigit() or \
            not 1 <= int(parts[1]) <= MAX_CODE_HASH_ITERATIONS or not _is_hex(parts[2], 8, 64) \
            or not _is_hex(parts[3], 64, 64):
        check.fail(f"{path}.code_hash",
                   "must be pbkdf2_sha256$<iterations>$<salt-hex>$<64 hex digits>")


def _is_hex(text: str, shortest: int, longest: int) -> bool:
    return shortest <= len(text) <= longest and len(text) % 2 == 0 and \
        all(c in "0123456789abcdef" for c in text)


def hash_door_code(code: str, iterations: int | None = None, salt: bytes | None = None) -> str:
    """The `code_hash` stored for a clear code (a fresh 16-byte salt unless given)."""
    return doorcodes.hash_code(code, salt or os.urandom(16), iterations or CODE_HASH_ITERATIONS)


def check_door_code(entry: "DoorCode | dict[str, Any]", digits: str) -> bool:
    """Does `digits` open with this door.codes entry (a DoorCode, or the table the file holds)?
    Constant-time (firmware/app/doorcodes)."""
    code = DoorCode.from_dict(entry) if isinstance(entry, dict) else entry
    return doorcodes.StoredCode.from_config(code).matches(digits)


def hashed_codes(cfg: Config) -> Config:
    """`cfg` with its door codes all stored as hashes (what goes to disk)."""
    return Config.from_dict(_hash_codes(cfg.to_dict()))


def _hash_codes(out: "dict[str, Any]") -> "dict[str, Any]":
    """In place: the clear codes of a document replaced by their hashes."""
    door = out.get("door")
    if isinstance(door, dict) and isinstance(door.get("codes"), list):
        for entry in door["codes"]:
            if isinstance(entry, dict) and isinstance(entry.get("code"), str) and \
                    entry["code"] != SECRET:
                code = entry.pop("code")
                entry["code_hash"] = hash_door_code(code)
                entry["length"] = len(code)
    return out


def load(path: str, cache_dir: str | None = None) -> Config:
    """Read and validate the config file; create it with defaults when missing. With
    `cache_dir` (the state directory), an unchanged file's parsed document is taken from
    there, without loading the TOML parser (firmware/tomlcache.py); it is validated as ever."""
    _remove_stale_temp_files(path)
    if not os.path.exists(path):
        save_atomic(path, validate({}))
    try:
        doc = tomlcache.read(path, cache_dir)
    except ValueError as exc:  # tomllib.TOMLDecodeError, or bytes that are not UTF-8
        raise ConfigError({"": f"{path} is not valid TOML: {exc}"}) from None
    cfg = validate(doc)
    if any(c.code is not None for c in cfg.door.codes):
        # Codes written in clear by hand leave the disk now, backup included.
        cfg = hashed_codes(cfg)
        save_atomic(path, cfg)
        if os.path.exists(path + ".prev"):
            os.unlink(path + ".prev")
    return cfg


def salvage(path: str, errors: "dict[str, str]", rounds: int = 8) -> Config:
    """What to run with when the file at `path` is invalid (`errors` as load() raised them):
    the file's settings without the bad fields (those fall back to their defaults). The station
    runs its web page on it with SIP off, so the page shows the rest of the file and the admin
    fixes the bad fields there. Never raises ConfigError and writes nothing."""
    import tomllib  # salvaging a broken file only

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, ValueError):  # tomllib.TOMLDecodeError is a ValueError
        return validate({})
    for _ in range(rounds):
        smaller = _without_fields(doc, errors)
        if smaller == doc:  # a rule between fields (e.g. a registrar needs a user): whole tables
            bad = {path.partition(".")[0].partition("[")[0] for path in errors}
            smaller = {k: v for k, v in doc.items() if k not in bad}
        doc = smaller
        try:
            return validate(doc)
        except ConfigError as exc:
            errors = exc.errors
    return validate({})


def _without_fields(doc: Any, errors: "dict[str, str]") -> "dict[str, Any]":
    """`doc` without the settings that `errors` names: 'sip.domain' drops that key,
    'buttons[0].targets[1]' or 'door.codes[2].code' the whole list, 'x' the section."""
    if not isinstance(doc, dict):
        return {}
    out = {k: copy.deepcopy(v) for k, v in doc.items() if k in DEFAULTS}
    for path in errors:
        section, _, rest = path.partition(".")
        section = section.partition("[")[0]
        key = rest.partition("[")[0].partition(".")[0]
        table = out.get(section)
        if not key or not isinstance(table, dict) or section in LIST_SECTIONS:
            out.pop(section, None)
        else:
            table.pop(key, None)
    return out


def _remove_stale_temp_files(path: str) -> None:
    """A save killed mid-way leaves `path.tmp.<pid>`; the real file is intact, so drop them."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for entry in names:
        if entry.startswith(name + ".tmp."):
            try:
                os.unlink(os.path.join(directory, entry))
            except OSError:
                pass


def _to_toml(cfg: Config) -> str:
    doc = _hash_codes(cfg.to_dict())
    if doc["media"]["srtp_requires_tls"] is None:  # TOML has no null: not set
        del doc["media"]["srtp_requires_tls"]
    import tomli_w  # only when saving: not on the start path

    return tomli_w.dumps(doc)


def save_atomic(path: str, cfg: Config) -> None:
    """Write `cfg` so that `path` always holds either the old or the new file: a temp file in
    the same directory, fsync, keep the previous version as `path + '.prev'`, then rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_to_toml(cfg))
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            prev = path + ".prev"
            if os.path.exists(prev):
                os.unlink(prev)
            os.link(path, prev)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def redacted(cfg: Config) -> "dict[str, Any]":
    """The document safe to show (GET /api/config): secrets replaced by SECRET when set, ''
    when not."""
    out = cfg.to_dict()
    out["sip"]["password"] = SECRET if cfg.sip.password else ""
    out["door"]["codes"] = [{**c.to_dict(), "code": SECRET} for c in cfg.door.codes]
    for entry in out["door"]["codes"]:
        entry.pop("code_hash", None)
        entry.pop("length", None)
    out["mqtt"]["password"] = SECRET if cfg.mqtt.password else ""
    for hook in out["webhooks"]:
        hook["secret"] = SECRET if hook["secret"] else ""
    out["camera"]["phone_token"] = SECRET if cfg.camera.phone_token else ""
    return out


def unredact(partial: "dict[str, Any]", current: Config) -> "dict[str, Any]":
    """Put back secrets that a client sent back unchanged as SECRET."""
    out = copy.deepcopy(partial)
    sip = out.get("sip")
    if isinstance(sip, dict) and sip.get("password") == SECRET:
        sip["password"] = current.sip.password
    camera = out.get("camera")
    if isinstance(camera, dict) and camera.get("phone_token") == SECRET:
        camera["phone_token"] = current.camera.phone_token
    door = out.get("door")
    if isinstance(door, dict) and isinstance(door.get("codes"), list):
        secrets = ("code", "code_hash", "length")
        # a caller may hold one code per relay: match on (caller, relay) first, then caller
        old: dict[Any, dict[str, Any]] = {}
        for c in reversed(current.door.codes):
            kept = {k: v for k, v in c.to_dict().items() if k in secrets}
            old[(c.caller, c.relay)] = kept
            old[c.caller] = kept
        for entry in door["codes"]:
            if isinstance(entry, dict) and entry.get("code") == SECRET and \
                    isinstance(entry.get("caller"), str):
                found = old.get((entry["caller"], entry.get("relay", "door")),
                                old.get(entry["caller"]))
                if found is not None:
                    del entry["code"]
                    entry.update(found)
    mqtt = out.get("mqtt")
    if isinstance(mqtt, dict) and mqtt.get("password") == SECRET:
        mqtt["password"] = current.mqtt.password
    hooks = out.get("webhooks")
    if isinstance(hooks, list):
        # by URL; a changed URL keeps the secret of the webhook at the same place in the list
        hook_secrets = {h.url: h.secret for h in current.webhooks}
        for i, hook in enumerate(hooks):
            if not isinstance(hook, dict) or hook.get("secret") != SECRET:
                continue
            if hook.get("url") in hook_secrets:
                hook["secret"] = hook_secrets[hook["url"]]
            elif i < len(current.webhooks):
                hook["secret"] = current.webhooks[i].secret
    return out


# -- warnings: a configuration that saves but cannot work as meant (GET /api/config/warnings) --
def warnings(cfg: Config, board: "dict[str, Any] | None" = None) -> "dict[str, str]":
    """{field path: sentence} for settings that are valid one by one but cannot work together
    (docs/CONFIG.md "Warnings"). Pure: reads `cfg` (and the board's roles), changes nothing."""
    caller_key = callers.caller_key
    out: dict[str, str] = {}
    sip, media, answer = cfg.sip, cfg.media, cfg.answer
    if media.srtp == "mandatory" and media.keys_need_tls() and sip.transport != "tls":
        out["media.srtp"] = (
            f"mandatory SRTP over {sip.transport.upper()} signalling refuses every call: the "
            "SRTP keys may only travel over TLS. Use transport tls, or set "
            "srtp_requires_tls = false (keys readable on the network), or srtp optional")
    elif media.srtp == "optional" and media.keys_need_tls() and sip.transport != "tls":
        out["media.srtp"] = (
            f"optional SRTP over {sip.transport.upper()} signalling never encrypts a call: "
            "the SRTP keys may only travel over TLS, so every call uses plain RTP. Use "
            "transport tls, or set srtp_requires_tls = false (keys readable on the network)")
    allowed = {caller_key(uri) for uri in answer.allow}
    if answer.mode == "auto" and not answer.allow:
        out["answer.allow"] = ("answer mode auto with an empty allow list: every incoming call "
                               "is refused (403). Add the callers that may be answered, or "
                               "set mode ring")
    if not sip.registrar and answer.mode == "auto":
        for i, uri in enumerate(answer.allow):
            host = (caller_key(uri) or "@").rpartition("@")[2]
            if callers.literal_ip(host) is None:
                out[f"answer.allow[{i}]"] = (
                    f"{uri}: in direct-IP mode only callers at an IP address are trusted "
                    "(a host name proves nothing), so this caller is never auto-answered. "
                    "Write its IP address, or set a registrar")
    for i, code in enumerate(cfg.door.codes):
        if caller_key(code.caller) not in allowed:
            out[f"door.codes[{i}].caller"] = (
                f"{code.caller} is not in the allowed callers (answer.allow): their calls are "
                "refused, so this door code can never be typed. Add them to answer.allow")
    for i, button in enumerate(cfg.buttons):
        if button.role in ("hangup", "exit"):
            continue
        if not button.targets and not button.schedule_targets:
            out[f"buttons[{i}].targets"] = (
                f"the {button.role} button has no targets: pressing it calls no one")
    if board is not None and cfg.camera.enabled and not board.get("camera") and \
            cfg.camera.phone_token:
        out["camera.phone_token"] = ("this board has no camera: the phone picture URL "
                                     "answers 404")
    return out
