"""The station's settings as small typed objects, one class per section of the config file.

Portable (MicroPython subset, frozen with the core by manifest.py): the sans-I/O core
(firmware/app, firmware/session) reads these objects and imports nothing from firmware/config.py,
which holds what CPython alone runs (TOML, defaults, validation, hashing, atomic saving).

`firmware.config.validate(doc)` checks a document once and builds a `Config` with
`Config.from_dict`; nothing downstream checks a type again. `from_dict` takes a document in the
normal form `validate` produced (every key present) and checks nothing itself: anything from
outside (a file, the web API) goes through `validate`. `to_dict()` gives that document back
(the file and wire format: TOML, GET/PUT /api/config), so `validate(c.to_dict()) == c`.
Objects compare by value; a repr never shows a secret (the SIP password, door codes).
"""

SECRET_SHOWN = "(set)"  # what a repr shows for a secret that is set


class _Section:
    """Value equality and a dict form over the class's `__slots__` (no secrets in a repr:
    the subclasses that hold one write their own)."""

    __slots__: tuple = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return False
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def to_dict(self) -> dict:
        out = {}
        for name in self.__slots__:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, list) else value
        return out

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, " ".join(
            "%s=%r" % (name, getattr(self, name)) for name in self.__slots__))


class SipConfig(_Section):
    """[sip]: registrar ("" for direct-IP mode), domain, username, password, transport
    (udp, tcp, tls), listen ("host:port"), tls_ca (a PEM file path or ""), expires (s),
    display_name."""

    __slots__ = ("registrar", "domain", "username", "password", "transport", "listen", "tls_ca",
                 "expires", "display_name", "keepalive_s", "auth_username")

    def __init__(self, registrar: str, domain: str, username: str, password: str,
                 transport: str, listen: str, tls_ca: str, expires: int,
                 display_name: str, keepalive_s: int = 25, auth_username: str = "") -> None:
        self.registrar = registrar
        self.domain = domain
        self.username = username
        self.password = password
        self.transport = transport
        self.listen = listen
        self.tls_ca = tls_ca
        self.expires = expires
        self.display_name = display_name
        self.keepalive_s = keepalive_s
        self.auth_username = auth_username

    def effective_domain(self) -> str:
        """The AOR domain: `domain`, else the registrar's host (an IPv6 address in brackets,
        as it goes into `sip:user@[2001:db8::1]`); "" when neither is set."""
        if self.domain or not self.registrar:
            return self.domain
        text = self.registrar
        if text.startswith("["):
            return "[" + text[1:].partition("]")[0] + "]"
        if text.count(":") > 1:  # a bare IPv6 address, no port
            return "[" + text + "]"
        return text.rpartition(":")[0] if text.count(":") == 1 else text

    def target_uri(self, target: str) -> str:
        """A button target as a SIP URI: a short target (no `sip:`/`sips:` and no `@`, e.g.
        `**610` on a FRITZ!Box, or `flat1`) means `sip:<target>@<effective domain>`; anything
        else is returned as written."""
        if target.startswith(("sip:", "sips:")) or "@" in target:
            return target
        return "sip:%s@%s" % (target, self.effective_domain())

    def __repr__(self) -> str:
        return "<SipConfig %s@%s registrar=%r listen=%s password=%s>" % (
            self.username, self.transport, self.registrar, self.listen,
            SECRET_SHOWN if self.password else "''")


class MediaConfig(_Section):
    """[media]: srtp (off, optional, mandatory), srtp_requires_tls (None: not set, which means
    true), codecs (names in order of preference), rtp_ports ("low-high")."""

    __slots__ = ("srtp", "srtp_requires_tls", "codecs", "rtp_ports")

    def __init__(self, srtp: str, srtp_requires_tls: "bool | None", codecs: "list[str]",
                 rtp_ports: str) -> None:
        self.srtp = srtp
        self.srtp_requires_tls = srtp_requires_tls
        self.codecs = codecs
        self.rtp_ports = rtp_ports

    def keys_need_tls(self) -> bool:
        """SDES keys only over TLS: true unless `srtp_requires_tls` was set false on purpose
        (issue 12), for `optional` as for `mandatory`. Derived here, never stored: a later
        change of the setting must not leave a stale copy behind."""
        return self.srtp_requires_tls is not False

    def port_range(self) -> "tuple[int, int]":
        low, _, high = self.rtp_ports.partition("-")
        return int(low), int(high)


class AudioConfig(_Section):
    """[audio]: echo_cancel, noise_suppress, agc (booleans), mic_gain_db (-20..30 dB added to
    the microphone before the echo canceller), speaker_volume (0-100 %), period_ms and
    buffer_ms (the ALSA period and buffer of a Pi's sound card, issue 19)."""

    __slots__ = ("echo_cancel", "noise_suppress", "agc", "mic_gain_db", "speaker_volume",
                 "period_ms", "buffer_ms")

    def __init__(self, echo_cancel: bool = True, noise_suppress: bool = True, agc: bool = True,
                 mic_gain_db: "int | float" = 0, speaker_volume: int = 80, period_ms: int = 20,
                 buffer_ms: int = 80) -> None:
        self.echo_cancel = echo_cancel
        self.noise_suppress = noise_suppress
        self.agc = agc
        self.mic_gain_db = mic_gain_db
        self.speaker_volume = speaker_volume
        self.period_ms = period_ms
        self.buffer_ms = buffer_ms

    def processing(self) -> bool:
        """Whether any of the DSP stages (echo canceller, noise suppressor, AGC) is on."""
        return bool(self.echo_cancel or self.noise_suppress or self.agc)


class AnswerConfig(_Section):
    """[answer]: mode (auto, ring, off), allow (SIP URIs), max_duration_s, identity (from,
    asserted), schedule (a [[schedules]] name: auto-answer only while it is active; "" always)."""

    __slots__ = ("mode", "allow", "max_duration_s", "identity", "schedule")

    def __init__(self, mode: str, allow: "list[str]", max_duration_s: int,
                 identity: str, schedule: str = "") -> None:
        self.mode = mode
        self.allow = allow
        self.max_duration_s = max_duration_s
        self.identity = identity
        self.schedule = schedule


class ScheduleTargets(_Section):
    """One entry of a button's `schedule_targets`: the targets rung while `schedule` is
    active."""

    __slots__ = ("schedule", "targets")

    def __init__(self, schedule: str, targets: "list[str]") -> None:
        self.schedule = schedule
        self.targets = targets


class ButtonConfig(_Section):
    """One [[buttons]] entry: role, targets (SIP URIs), mode (parallel, sequential),
    target_timeout_s, second_press (ignore, hangup), answer_mode ("", auto, manual),
    schedule_targets (ScheduleTargets, the first whose schedule is active wins over `targets`),
    quiet (a schedule name: while it is active a press plays the "unavailable" cue instead of
    ringing; "" never)."""

    __slots__ = ("role", "targets", "mode", "target_timeout_s", "second_press", "answer_mode",
                 "schedule_targets", "quiet")

    def __init__(self, role: str, targets: "list[str]", mode: str, target_timeout_s: int,
                 second_press: str, answer_mode: str,
                 schedule_targets: "list[ScheduleTargets] | None" = None,
                 quiet: str = "") -> None:
        self.role = role
        self.targets = targets
        self.mode = mode
        self.target_timeout_s = target_timeout_s
        self.second_press = second_press
        self.answer_mode = answer_mode
        self.schedule_targets = schedule_targets or []
        self.quiet = quiet

    @classmethod
    def from_dict(cls, entry: dict) -> "ButtonConfig":
        fields = dict(entry)
        fields["schedule_targets"] = [ScheduleTargets(**e)
                                      for e in entry.get("schedule_targets", [])]
        return cls(**fields)

    def to_dict(self) -> dict:
        out = _Section.to_dict(self)
        out["schedule_targets"] = [e.to_dict() for e in self.schedule_targets]
        return out


class CallsConfig(_Section):
    """[calls]: ring_timeout_s, max_duration_s, max_calls, follow_redirects, conference,
    max_parties."""

    __slots__ = ("ring_timeout_s", "max_duration_s", "max_calls", "follow_redirects",
                 "conference", "max_parties")

    def __init__(self, ring_timeout_s: int, max_duration_s: int, max_calls: int,
                 follow_redirects: bool, conference: bool = False,
                 max_parties: int = 3) -> None:
        self.ring_timeout_s = ring_timeout_s
        self.max_duration_s = max_duration_s
        self.max_calls = max_calls
        self.follow_redirects = follow_redirects
        self.conference = conference
        self.max_parties = max_parties

    def call_limit(self) -> int:
        """Simultaneous calls: `max_calls`, or with a conference enough for `max_parties`
        (the door is one of them)."""
        if self.conference:
            return max(self.max_calls, self.max_parties - 1)
        return self.max_calls


class TransferConfig(_Section):
    """[transfer]: allow (SIP URIs a trusted peer may transfer the door to; empty: every
    button target and every [answer] allow entry, see `Config.transfer_targets`)."""

    __slots__ = ("allow",)

    def __init__(self, allow: "list[str]") -> None:
        self.allow = allow


class MessagesConfig(_Section):
    """[messages]: to (SIP URIs that get a SIP MESSAGE), events (event types that send one)."""

    __slots__ = ("to", "events")

    def __init__(self, to: "list[str]", events: "list[str]") -> None:
        self.to = to
        self.events = events


class DoorCode(_Section):
    """One door.codes entry: the caller it belongs to and either the code in clear (`code`, as
    typed, before it is saved) or its stored hash (`code_hash`) and `length`."""

    __slots__ = ("caller", "code", "code_hash", "length", "relay", "schedule")

    def __init__(self, caller: str, code: "str | None" = None, code_hash: "str | None" = None,
                 length: "int | None" = None, relay: str = "door", schedule: str = "") -> None:
        self.caller = caller
        self.code = code
        self.code_hash = code_hash
        # the code's length (validated with a hash; a clear code's own length)
        self.length = length if length is not None else len(code or "")
        self.relay = relay  # the relay this code opens
        self.schedule = schedule  # a [[schedules]] name: usable only while active; "" always

    @classmethod
    def from_dict(cls, entry: dict) -> "DoorCode":
        return cls(entry["caller"], entry.get("code"), entry.get("code_hash"),
                   entry.get("length"), entry.get("relay", "door"), entry.get("schedule", ""))

    def to_dict(self) -> dict:
        if self.code_hash is not None:
            out = {"caller": self.caller, "code_hash": self.code_hash, "length": self.length}
        else:
            out = {"caller": self.caller, "code": self.code}
        if self.relay != "door":  # written only when set: older files and pages stay as they were
            out["relay"] = self.relay
        if self.schedule:
            out["schedule"] = self.schedule
        return out

    def __repr__(self) -> str:
        return "<DoorCode %s %s, %s digits, relay %s>" % (
            self.caller, "hashed" if self.code_hash is not None else "clear", self.length,
            self.relay)


class DoorConfig(_Section):
    """[door]: pulse_ms (the `door` relay's pulse unless [[relays]] names it), codes
    (DoorCode), max_failures, lockout_s, hangup_on_close (end the call when the door contact
    closes after an opening), held_open_alarm_s (0: off)."""

    __slots__ = ("pulse_ms", "codes", "max_failures", "lockout_s", "hangup_on_close",
                 "held_open_alarm_s")

    def __init__(self, pulse_ms: int, codes: "list[DoorCode]", max_failures: int,
                 lockout_s: int, hangup_on_close: bool = False,
                 held_open_alarm_s: int = 0) -> None:
        self.pulse_ms = pulse_ms
        self.codes = codes
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.hangup_on_close = hangup_on_close
        self.held_open_alarm_s = held_open_alarm_s

    def to_dict(self) -> dict:
        return {"pulse_ms": self.pulse_ms, "codes": [c.to_dict() for c in self.codes],
                "max_failures": self.max_failures, "lockout_s": self.lockout_s,
                "hangup_on_close": self.hangup_on_close,
                "held_open_alarm_s": self.held_open_alarm_s}


class RelayConfig(_Section):
    """One [[relays]] entry: role (door, gate, ...) and pulse_ms."""

    __slots__ = ("role", "pulse_ms")

    def __init__(self, role: str, pulse_ms: int) -> None:
        self.role = role
        self.pulse_ms = pulse_ms


class TimeConfig(_Section):
    """[time]: zone (an IANA time zone name, the station's wall clock for schedules) and
    holidays ("YYYY-MM-DD" dates: on them only schedules listing "holiday" are active)."""

    __slots__ = ("zone", "holidays")

    def __init__(self, zone: str, holidays: "list[str]") -> None:
        self.zone = zone
        self.holidays = holidays


class ScheduleConfig(_Section):
    """One [[schedules]] entry: name, days ("mon".."sun", "holiday"), times ("HH:MM-HH:MM"
    local ranges; an end before its start runs past midnight)."""

    __slots__ = ("name", "days", "times")

    def __init__(self, name: str, days: "list[str]", times: "list[str]") -> None:
        self.name = name
        self.days = days
        self.times = times


class WebConfig(_Section):
    """[web]: listen ("host:port"), https, hostnames (extra names the page answers to)."""

    __slots__ = ("listen", "https", "hostnames")

    def __init__(self, listen: str, https: bool, hostnames: "list[str]") -> None:
        self.listen = listen
        self.https = https
        self.hostnames = hostnames


class MqttConfig(_Section):
    """[mqtt] (issue 17, "Telling the house"): broker ("" = off; host[:port]), username,
    password, tls, tls_ca (a PEM file or "" for the system's CAs), topic_prefix ("" =
    `doorline/<device id>`), discovery_prefix, allow_door_open."""

    __slots__ = ("broker", "username", "password", "tls", "tls_ca", "topic_prefix",
                 "discovery_prefix", "allow_door_open")

    def __init__(self, broker: str = "", username: str = "", password: str = "",
                 tls: bool = False, tls_ca: str = "", topic_prefix: str = "",
                 discovery_prefix: str = "homeassistant", allow_door_open: bool = False) -> None:
        self.broker = broker
        self.username = username
        self.password = password
        self.tls = tls
        self.tls_ca = tls_ca
        self.topic_prefix = topic_prefix
        self.discovery_prefix = discovery_prefix
        self.allow_door_open = allow_door_open

    def __repr__(self) -> str:
        return "<MqttConfig broker=%r user=%r password=%s tls=%r prefix=%r door=%r>" % (
            self.broker, self.username, SECRET_SHOWN if self.password else "''", self.tls,
            self.topic_prefix, self.allow_door_open)


class WebhookConfig(_Section):
    """One [[webhooks]] entry: url (http:// or https://), events (types; empty = all), secret
    (the HMAC-SHA256 key), tls_ca (a PEM file or "" for the system's CAs)."""

    __slots__ = ("url", "events", "secret", "tls_ca")

    def __init__(self, url: str, events: "list[str]", secret: str, tls_ca: str = "") -> None:
        self.url = url
        self.events = events
        self.secret = secret
        self.tls_ca = tls_ca

    def wants(self, type_: str) -> bool:
        return not self.events or type_ in self.events

    def __repr__(self) -> str:
        return "<WebhookConfig %s events=%r secret=%s>" % (
            self.url, self.events, SECRET_SHOWN if self.secret else "''")


class CameraConfig(_Section):
    """[camera]: enabled (use the board's camera, if it has one), width, height, fps,
    snapshot_on_ring, history (snapshots kept), video ("offer" or "off": H.264 in calls),
    phone_token (the secret of /camera.jpg; "" = that URL is off)."""

    __slots__ = ("enabled", "width", "height", "fps", "snapshot_on_ring", "history", "video",
                 "phone_token")

    def __init__(self, enabled: bool = True, width: int = 640, height: int = 480, fps: int = 15,
                 snapshot_on_ring: bool = True, history: int = 50, video: str = "offer",
                 phone_token: str = "") -> None:
        self.enabled = enabled
        self.width = width
        self.height = height
        self.fps = fps
        self.snapshot_on_ring = snapshot_on_ring
        self.history = history
        self.video = video
        self.phone_token = phone_token

    def __repr__(self) -> str:
        return "<CameraConfig enabled=%r %dx%d@%d video=%s history=%d phone_token=%s>" % (
            self.enabled, self.width, self.height, self.fps, self.video, self.history,
            SECRET_SHOWN if self.phone_token else "''")


class Config(_Section):
    """The whole configuration: `sip`, `media`, `answer`, `buttons` (a list of ButtonConfig),
    `calls`, `door`, `web`, `audio` (defaults when not given), `relays` (RelayConfig), `time`,
    `schedules` (ScheduleConfig); `mqtt` and `webhooks` (a list of WebhookConfig) tell the
    house (defaults when not given); `transfer`, `messages`; `camera`."""

    __slots__ = ("sip", "media", "answer", "buttons", "calls", "door", "web", "audio", "relays",
                 "time", "schedules", "mqtt", "webhooks", "transfer", "messages", "camera")
    SECTIONS = __slots__

    def __init__(self, sip: "SipConfig", media: "MediaConfig", answer: "AnswerConfig",
                 buttons: "list[ButtonConfig]", calls: "CallsConfig", door: "DoorConfig",
                 web: "WebConfig", audio: "AudioConfig | None" = None,
                 relays: "list[RelayConfig] | None" = None, time: "TimeConfig | None" = None,
                 schedules: "list[ScheduleConfig] | None" = None,
                 mqtt: "MqttConfig | None" = None,
                 webhooks: "list[WebhookConfig] | None" = None,
                 transfer: "TransferConfig | None" = None,
                 messages: "MessagesConfig | None" = None,
                 camera: "CameraConfig | None" = None) -> None:
        self.sip = sip
        self.media = media
        self.answer = answer
        self.buttons = buttons
        self.calls = calls
        self.door = door
        self.web = web
        self.audio = audio if audio is not None else AudioConfig()
        self.relays = relays or []
        self.time = time or TimeConfig("UTC", [])
        self.schedules = schedules or []
        self.mqtt = mqtt if mqtt is not None else MqttConfig()
        self.webhooks = webhooks if webhooks is not None else []
        self.transfer = transfer or TransferConfig([])
        self.messages = messages or MessagesConfig([], ["button"])
        self.camera = camera if camera is not None else CameraConfig()

    @classmethod
    def from_dict(cls, doc: dict) -> "Config":
        """The typed form of a document in `firmware.config.validate`'s normal form (every
        section and key present, values checked): use `validate` for anything else."""
        door = doc["door"]
        return cls(
            SipConfig(**doc["sip"]),
            MediaConfig(**doc["media"]),
            AnswerConfig(**doc["answer"]),
            [ButtonConfig.from_dict(b) for b in doc["buttons"]],
            CallsConfig(**doc["calls"]),
            DoorConfig(door["pulse_ms"], [DoorCode.from_dict(c) for c in door["codes"]],
                       door["max_failures"], door["lockout_s"], door["hangup_on_close"],
                       door["held_open_alarm_s"]),
            WebConfig(**doc["web"]),
            AudioConfig(**doc["audio"]) if "audio" in doc else None,
            [RelayConfig(**r) for r in doc["relays"]],
            TimeConfig(**doc["time"]),
            [ScheduleConfig(**e) for e in doc["schedules"]],
            mqtt=MqttConfig(**doc["mqtt"]) if "mqtt" in doc else None,
            webhooks=[WebhookConfig(**w) for w in doc.get("webhooks", [])],
            transfer=TransferConfig(**doc["transfer"]) if "transfer" in doc else None,
            messages=MessagesConfig(**doc["messages"]) if "messages" in doc else None,
            camera=CameraConfig(**doc["camera"]) if "camera" in doc else None)

    def to_dict(self) -> dict:
        """The document (a fresh dict: the caller may change it): what the file holds."""
        return {"sip": self.sip.to_dict(), "media": self.media.to_dict(),
                "answer": self.answer.to_dict(), "buttons": [b.to_dict() for b in self.buttons],
                "calls": self.calls.to_dict(), "door": self.door.to_dict(),
                "web": self.web.to_dict(), "audio": self.audio.to_dict(),
                "relays": [r.to_dict() for r in self.relays], "time": self.time.to_dict(),
                "schedules": [e.to_dict() for e in self.schedules],
                "mqtt": self.mqtt.to_dict(), "webhooks": [w.to_dict() for w in self.webhooks],
                "transfer": self.transfer.to_dict(), "messages": self.messages.to_dict(),
                "camera": self.camera.to_dict()}

    def section(self, name: str) -> object:
        """A section by its name in the file (for what compares sections by name)."""
        return getattr(self, name)

    def button(self, role: str) -> "ButtonConfig | None":
        for button in self.buttons:
            if button.role == role:
                return button
        return None

    def relay_pulse_ms(self, role: str) -> "int | None":
        """The pulse of relay `role`: its [[relays]] entry, else [door] pulse_ms for `door`;
        None for a relay the configuration does not know."""
        for relay in self.relays:
            if relay.role == role:
                return relay.pulse_ms
        return self.door.pulse_ms if role == "door" else None

    def relay_roles(self) -> "list[str]":
        """`door` first, then the other [[relays]] roles in file order."""
        return ["door"] + [r.role for r in self.relays if r.role != "door"]

    def transfer_targets(self) -> "list[str]":
        """Where a trusted peer may transfer the door (REFER): `[transfer] allow`, or by
        default every button target (a short one as the SIP URI it means) and every
        `[answer] allow` entry."""
        if self.transfer.allow:
            return list(self.transfer.allow)
        out: list[str] = []
        for button in self.buttons:
            out.extend(self.sip.target_uri(target) for target in button.targets)
        out.extend(self.answer.allow)
        return out

    def __repr__(self) -> str:
        return ("<Config %r %r %r buttons=%r %r %r %r %r relays=%r %r schedules=%r %r "
                "webhooks=%r %r %r %r>") % (
            self.sip, self.media, self.answer, self.buttons, self.calls, self.door, self.web,
            self.audio, self.relays, self.time, self.schedules, self.mqtt, self.webhooks,
            self.transfer, self.messages, self.camera)
