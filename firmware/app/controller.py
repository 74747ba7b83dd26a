"""The door-station controller: hardware and SIP events in, actions out (sans-I/O).

It owns the station's policy — who may make it answer, who may open the door, what the LEDs and
the speaker show — and nothing else: the runtime feeds it events with the current monotonic time
`now` (float seconds) and carries out the actions it returns (see firmware/app/actions.py).
Trust rules follow docs/CONFIG.md "Trust"; Answer-Mode requests follow RFC 5373 §5-6 (a request for
manual answer is honoured, a request for auto-answer never overrides the configuration).

    Controller(cfg, now, random=os.urandom)     cfg: a firmware.settings.Config (validated)
Inputs
    button_pressed(role, now, local=None) / button_released(role, now)
        local: the wall-clock time in the station's zone (schedules.LocalTime), given by the
        runtime with every input that a schedule may decide (presses, incoming calls, digits);
        the last one given is kept. Without one yet, no named schedule is active.
    registration_changed(state, error, now)    state: registered|unregistered|failed|disabled
    incoming_call(call_id, caller, source, trusted, answer_mode, now, source_ip=None, local=None)
        caller: the From (URI or name-addr); source: "udp:1.2.3.4:5060"; trusted: the SIP layer's
        verdict (registrar flow or TLS); answer_mode: "auto"|"manual"|None (RFC 5373);
        source_ip: the source address (default: taken from `source`). In direct-IP mode
        (registration "disabled") the controller ignores `trusted` and decides itself: a call is
        trusted when source_ip equals the host of an [answer] allow entry written as an IP address
        and the caller's own host is that same address (callers.direct_ip_trusted).
    call_started(call_id, role, now) / call_failed_to_start(call_id, reason, now)   after
                                               PlaceCall, with the call id it carries
    call_ringing(call_id, now)
    call_established(call_id, now, peer=None)  peer: which ring-group target answered, when known
    call_ended(call_id, reason, status, now)   reason as firmware.sip.call.CallEnded
    dtmf(call_id, digit, now, local=None)      from any transport, already de-duplicated
    open_door(by, now, relay="door") -> bool   the web API; by: "api" or "web"; False (and
                                               nothing done) for a relay the config lacks
    input_changed(role, active, now)           a board input: door_contact active = contact
                                               closed (door shut); the first report of an input
                                               sets its state without an event
    place_call(target, now) -> bool            a test call from the web API (False: refused)
    hangup(now) -> int                         hang up every call; how many
    handle_timer(now), get_timer() -> float or None
    update_config(cfg, now)                    applied live; calls in progress keep going
Outputs
    next_action() -> action or None            drain after every input
    snapshot() -> {"leds": {role: pattern}, "door": {"relay": "open"|"closed",
                   "relays": {role: "open"|"closed"}, "contact": "open"|"closed"|None,
                   "held_open": bool},
                   "calls": [{"id", "direction", "state", "peer", "role"}],
                   "lockouts": [{"kind": "caller"|"source", "subject", "until"}], "registration"}

Policy
- Buttons (firmware/app/buttons.py guards bounce, floods and stuck contacts): a press places a call
  to the [[buttons]] targets (parallel ring group, or sequential with target_timeout_s). No
  targets: logged, failure cue. While a call placed by any button is up, a further press is
  ignored (logged once per call) or, with second_press = "hangup", hangs that call up. A `hangup`
  button without a [[buttons]] entry hangs up every call.
- Incoming calls, in this order: [answer] mode off -> 480; [calls] max_calls reached -> 486;
  mode ring -> 180 and ring until the SIP layer's ring timeout; mode auto -> 403 unless the
  caller is in [answer] allow (user@host) and trusted, else answer with the auto_answer cue and
  hang up after [answer] max_duration_s (the SIP layer's [calls] limits are the first line).
- Door codes (firmware/app/doorcodes.py): only on answered, trusted calls; outgoing calls are
  trusted (we chose whom to call) and use the code of the target that answered (of any target
  while the runtime does not say which). Failures count per caller identity, and in direct-IP
  mode also per source address (behind a registrar all calls share its address, so one flat's
  wrong codes would lock out every flat). Each complete entry is one attempt (doorcodes.py).
- LEDs: status on when registered or in direct-IP mode, blink_slow when unregistered or failed,
  blink_fast while a button is stuck; call blink_fast while a call rings, on while answered;
  door on while the relay is pulsed.
- Cues: ringback while an outgoing call rings; busy or failure for FEEDBACK_CUE_S when it fails;
  door_open on opening; auto_answer when answering by itself; unavailable in quiet hours.
- Every door (issue 17): relays by role ([[relays]]; `door` also from [door] pulse_ms); a door
  code opens its own relay, the API the relay it names; each opening logs `door_open` with `by`,
  `how` and `relay`, and lights the LED of the relay's role while the pulse lasts. The `exit`
  button opens the door relay locally (`by = "exit"`, no call). The door contact logs
  `door_opened` / `door_closed`; held open for [door] held_open_alarm_s it logs
  `door_held_open` once and blinks the door LED fast until it closes; with hangup_on_close, its
  closing ends every call during which the door was opened (relay pulsed or contact opened).
- Schedules (firmware/app/schedules.py, on the runtime's local time): a button rings the targets
  of its first active schedule_targets entry, else its targets, and during its `quiet` schedule
  plays "unavailable" and calls no one; [answer] schedule limits auto-answer (outside it an
  auto-answer call is refused 480); a door code with a schedule is usable only while active.
"""

import os

from firmware.app import doorcodes, transfers
from firmware.app.actions import (
    Answer,
    AnswerMessage,
    Hangup,
    LogEvent,
    PlaceCall,
    PlayCue,
    PulseRelay,
    RefuseTransfer,
    Reject,
    Ring,
    SendMessage,
    SetLed,
    StopCue,
    Transfer,
)
from firmware.app.buttons import ALLOWED, CALLS_PER_MINUTE, LIMITED, STUCK_S, ButtonGuard
from firmware.app.callers import caller_key, direct_ip_trusted, literal_ip
from firmware.app.callers import source_ip as ip_of_source
from firmware.app.reasons import registration_reason
from firmware.app.schedules import Schedules
from firmware.sip.callstate import ACTIVE, ANSWERING, CALLING, RINGING
from firmware.sip.errors import ParseError
from firmware.sip.uri import URI

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable
    from typing import Any

    from firmware.app.actions import Action
    from firmware.app.doorcodes import StoredCode
    from firmware.app.schedules import LocalTime
    from firmware.settings import ButtonConfig, Config

# Registration states, as firmware.sip.registration reports them
REGISTERED = "registered"
UNREGISTERED = "unregistered"
FAILED = "failed"
DISABLED = "disabled"  # direct-IP mode

OUTGOING = "outgoing"
INCOMING = "incoming"

# Call states: the SIP call layer's (firmware/sip/callstate.py), plus STARTING
STARTING = "starting"  # PlaceCall sent, the runtime has not named the call yet

# (state, report) -> next state; `call_ended` removes a call from any state.
TRANSITIONS = {
    (STARTING, "started"): CALLING,
    (CALLING, "ringing"): RINGING,
    (CALLING, "established"): ACTIVE,
    (RINGING, "established"): ACTIVE,
    (ANSWERING, "established"): ACTIVE,
}
ANSWERED_STATES = (ANSWERING, ACTIVE)

STATUS_LED = "status"
CALL_LED = "call"
DOOR_LED = "door"
DOOR_RELAY = "door"
HANGUP_BUTTON = "hangup"
EXIT_BUTTON = "exit"
DOOR_CONTACT = "door_contact"
API_ROLE = "api"
FEEDBACK_CUE_S = 4.0
CALL_ID_BYTES = 6  # outgoing call ids: 12 hex digits, as the SIP call layer's own


class _Call:
    __slots__ = ("id", "direction", "state", "role", "from_button", "targets", "peer", "caller",
                 "source", "source_ip", "trusted", "established_at", "hangup_at",
                 "hangup_requested", "digits", "noted", "door_opened", "transferred_from")

    def __init__(self, call_id: str, direction: str, state: str, role: str | None) -> None:
        self.id = call_id
        self.direction = direction
        self.state = state
        self.role = role
        self.from_button = False
        self.targets: list[str] = []
        self.peer: str | None = None
        self.caller: str | None = None
        self.source: str | None = None
        self.source_ip: str | None = None
        self.trusted = False
        self.established_at: float | None = None
        self.hangup_at: float | None = None  # [answer] max_duration_s for auto-answered calls
        self.hangup_requested = False
        self.digits = ""
        self.noted: set[str] = set()  # things already logged once for this call
        self.door_opened = False  # a relay pulsed or the contact opened during the call
        # a transfer's new call: (the first call's id, who transferred it)
        self.transferred_from: tuple[str, str | None] | None = None

    def __repr__(self) -> str:
        return "<_Call %s %s %s %s>" % (self.id, self.direction, self.state, self.peer)


class Controller:
    def __init__(self, cfg: "Config", now: float,
                 random: "Callable[[int], bytes]" = os.urandom) -> None:
        self.random = random  # the ids of the calls it places
        self._actions: list[Action] = []
        self._calls: list[_Call] = []
        self._leds: dict[str, str] = {}
        self._buttons = ButtonGuard()
        self._lockouts = doorcodes.Lockouts(cfg.door.max_failures, cfg.door.lockout_s)
        self._registration = UNREGISTERED if cfg.sip.registrar else DISABLED
        self._registration_error: str | None = None
        self._relay_until: dict[str, float] = {}  # relay role -> end of its pulse
        self._local: LocalTime | None = None  # the last wall-clock time the runtime gave
        self._contact: bool | None = None  # door_contact active (closed); None: not reported
        self._opened_at: float | None = None  # when the door contact last opened
        self._held_alarm_at: float | None = None  # when the held-open alarm is due
        self._held_open = False  # the alarm has gone off and the door is still open
        self._cue: tuple[str, str | None] | None = None  # (name, call_id) of the cue playing, as
        self._cue_stop_at: float | None = None  # far as we know
        self._now = now
        self._messages = transfers.MessageLimiter()
        self._apply_config(cfg)
        self._update_leds()

    # -- outputs ----------------------------------------------------------------------------
    def next_action(self) -> "Action | None":
        return self._actions.pop(0) if self._actions else None

    def get_timer(self) -> float | None:
        deadlines: list[Any] = [self._cue_stop_at, self._buttons.next_deadline(),
                                self._lockouts.next_expiry(), self._held_alarm_at] + \
            [c.hangup_at for c in self._calls] + list(self._relay_until.values())
        deadlines = [t for t in deadlines if t is not None]
        return min(deadlines) if deadlines else None

    def snapshot(self) -> "dict[str, Any]":
        return {
            "leds": dict(self._leds),
            "door": {"relay": "open" if DOOR_RELAY in self._relay_until else "closed",
                     "relays": {role: "open" if role in self._relay_until else "closed"
                                for role in self._cfg.relay_roles()},
                     "contact": None if self._contact is None else
                     ("closed" if self._contact else "open"),
                     "held_open": self._held_open},
            "calls": [{"id": c.id, "direction": c.direction, "state": c.state, "peer": c.peer,
                       "role": c.role} for c in self._calls],
            "lockouts": self._lockouts.active(),
            "registration": self._registration,
        }

    # -- inputs -----------------------------------------------------------------------------
    def handle_timer(self, now: float) -> None:
        self._advance(now)
        self._update_leds()

    def update_config(self, cfg: "Config", now: float) -> None:
        self._advance(now)
        self._apply_config(cfg)
        if not cfg.sip.registrar:
            self._set_registration(DISABLED, None)
        elif self._registration == DISABLED:
            # direct-IP trust must end with direct-IP mode, before the runtime reports anything
            self._set_registration(UNREGISTERED, None)
        self._update_leds()

    def registration_changed(self, state: str, error: str | None, now: float) -> None:
        self._advance(now)
        self._set_registration(state, error)
        self._update_leds()

    def button_pressed(self, role: str, now: float, local: "LocalTime | None" = None) -> None:
        self._advance(now, local)
        if self._buttons.press(role, now):
            self._on_press(role, now)
        self._update_leds()

    def button_released(self, role: str, now: float) -> None:
        self._advance(now)
        if self._buttons.release(role):
            self._log("button", role=role, outcome="released", reason="was stuck")
        self._update_leds()

    def incoming_call(self, call_id: str, caller: str | None, source: str, trusted: bool,
                      answer_mode: str | None, now: float, source_ip: str | None = None,
                      replaces: str | None = None,
                      local: "LocalTime | None" = None) -> None:
        self._advance(now, local)
        if self._find(call_id) is None:
            if source_ip is None:
                source_ip = ip_of_source(source)
            self._on_incoming(call_id, caller, source, source_ip.lower(), trusted, answer_mode,
                              now, self._find(replaces) if replaces else None)
        self._update_leds()

    # -- transfer and messages (issue 20; policy in firmware/app/transfers.py) ---------------
    def transfer_requested(self, call_id: str, target: str, replaces: str | None,
                           source: str, now: float, join: bool = False) -> None:
        """A REFER on `call_id` from its peer (the SIP layer checked where it came from).
        `join` (Refer-To with method=INVITE) with `[calls] conference`: the target joins."""
        self._advance(now)
        call = self._find(call_id)
        calls = self._cfg.calls
        join = join and calls.conference and replaces is None
        if join and len(self._calls) + 1 >= calls.max_parties:
            self._emit(RefuseTransfer(call_id, 403))
            self._log("transfer_refused", call_id=call_id, to=target, status=403,
                      reason="max_parties reached", source=source,
                      **{"from": call.peer if call else None})
            self._update_leds()
            return
        fields = {"call_id": call_id, "from": call.peer if call else None, "to": target,
                  "source": source, "attended": replaces is not None}
        entry = transfers.allowed_target(target, self._cfg.transfer_targets())
        if call is None or call.state != ACTIVE or call.hangup_requested:
            reason = "the call is not up"
        elif not call.trusted:
            reason = "untrusted call"
        elif entry is None:
            reason = "target not in transfer.allow"
        else:
            reason = None
        if reason is not None or entry is None or call is None:
            self._emit(RefuseTransfer(call_id, 403))
            self._log("transfer_refused", status=403, reason=reason, **fields)
        else:
            new = _Call(self.random(CALL_ID_BYTES).hex(), OUTGOING, STARTING,
                        "conference" if join else "transfer")
            new.targets = [entry]
            new.peer = entry
            new.trusted = True  # a configured target
            if not join:
                new.transferred_from = (call_id, call.peer)
                call.hangup_at = None  # the transfer ends it, or it goes on
            self._calls.append(new)
            self._emit(Transfer(call_id, new.id, entry, join))
            self._log("transfer", outcome="joining" if join else "accepted",
                      new_call_id=new.id, **fields)
        self._update_leds()

    def transfer_refused(self, call_id: str | None, refer_to: str, status: int, reason: str,
                         source: str, now: float) -> None:
        """A REFER the SIP layer refused by itself: logged."""
        self._advance(now)
        call = self._find(call_id) if call_id else None
        self._log("transfer_refused", call_id=call_id, to=refer_to,
                  **{"from": call.peer if call else None, "status": status, "reason": reason,
                     "source": source})
        self._update_leds()

    def message_received(self, message_id: str, sender: str | None, source: str,
                         source_ip: str, trusted: bool, text: str, now: float) -> None:
        """An incoming SIP MESSAGE: 200 from a trusted source, 403 otherwise; shown, never
        acted upon."""
        self._advance(now)
        if self._registration == DISABLED:
            trusted = direct_ip_trusted(sender, source_ip.lower(), self._trusted_ips)
        # as for a call: a sender in [answer] allow, from a trusted source
        trusted = trusted and caller_key(sender) in self._allow_keys
        status = 200 if trusted else 403
        self._emit(AnswerMessage(message_id, status))
        self._log("message", direction=INCOMING, sender=sender, source=source,
                  trusted=trusted, status=status, text=text)
        self._update_leds()

    def message_outcome(self, message_id: str, to: str, status: int | None, reason: str,
                        now: float) -> None:
        self._advance(now)
        if status is None or not 200 <= status < 300:
            self._log("message", direction=OUTGOING, to=to, outcome="failed", status=status,
                      reason=reason)
        self._update_leds()

    def call_started(self, call_id: str, role: str, now: float) -> None:
        self._advance(now)
        call = self._find(call_id)
        if call is None or call.state != STARTING:
            self._emit(Hangup(call_id))
            self._log("call", call_id=call_id, role=role, outcome="hung up",
                      reason="not placed by the controller")
        else:
            call.state = TRANSITIONS[(STARTING, "started")]
            self._log("call", call_id=call_id, direction=OUTGOING, peer=call.peer,
                      role=call.role, outcome="placed")
            if call.hangup_requested:
                self._emit(Hangup(call_id))
        self._update_leds()

    def call_failed_to_start(self, call_id: str, reason: str, now: float) -> None:
        self._advance(now)
        call = self._find(call_id)
        if call is not None and call.state == STARTING:
            self._calls.remove(call)
            self._log("call", call_id=call.id, direction=OUTGOING, peer=call.peer,
                      role=call.role, outcome="failed", status=None, reason=reason)
            if not call.hangup_requested:
                self._play("failure", None, FEEDBACK_CUE_S)
        self._update_leds()

    def call_ringing(self, call_id: str, now: float, early: bool = False) -> None:
        """`early`: the 18x brought early media (a PBX's ringback or announcement), which the
        speaker plays instead of our own ringback cue."""
        self._advance(now)
        call = self._find(call_id)
        if call is not None and call.direction == OUTGOING and early:
            self._transition(call, "ringing")
            self._stop_cue("ringback", call_id)
        elif call is not None and self._transition(call, "ringing") and \
                call.direction == OUTGOING:
            self._play("ringback", call_id)
        self._update_leds()

    def call_established(self, call_id: str, now: float, peer: str | None = None) -> None:
        self._advance(now)
        call = self._find(call_id)
        if call is not None and self._transition(call, "established"):
            call.established_at = now
            if peer is not None:
                call.peer = peer
            self._stop_cue("ringback", call_id)
            self._log("call", call_id=call_id, direction=call.direction, peer=call.peer,
                      role=call.role, outcome="established")
            if call.transferred_from is not None:
                self._log("transferred", call_id=call_id, to=call.peer,
                          first_call_id=call.transferred_from[0],
                          **{"from": call.transferred_from[1]})
        self._update_leds()

    def call_ended(self, call_id: str, reason: str, status: int | None, now: float) -> None:
        self._advance(now)
        call = self._find(call_id)
        if call is not None:
            self._calls.remove(call)
            self._on_ended(call, reason, status, now)
        self._update_leds()

    def dtmf(self, call_id: str, digit: str, now: float,
             local: "LocalTime | None" = None) -> None:
        self._advance(now, local)
        call = self._find(call_id)
        if call is not None and call.state in ANSWERED_STATES:
            self._on_digit(call, digit, now)
        self._update_leds()

    def open_door(self, by: str, now: float, relay: str = DOOR_RELAY) -> bool:
        self._advance(now)
        known = self._cfg.relay_pulse_ms(relay) is not None
        if known:
            self._open_door(by, "api", None, now, relay)
        self._update_leds()
        return known

    def input_changed(self, role: str, active: bool, now: float) -> None:
        self._advance(now)
        if role == DOOR_CONTACT:
            self._on_contact(active, now)
        self._update_leds()

    def place_call(self, target: str, now: float) -> bool:
        self._advance(now)
        placed = self._on_place_call(target, now)
        self._update_leds()
        return placed

    def hangup(self, now: float) -> int:
        self._advance(now)
        calls = [c for c in self._calls if not c.hangup_requested]
        for call in calls:
            self._hang_up(call, "hangup requested through the API")
        self._update_leds()
        return len(calls)

    # -- policy -----------------------------------------------------------------------------
    def _on_press(self, role: str, now: float) -> None:
        if role == EXIT_BUTTON:
            self._log("button", role=role, outcome="door")
            self._open_door(EXIT_BUTTON, "button", None, now, DOOR_RELAY)
            return
        button = self._button_cfg.get(role)
        if button is None:
            if role == HANGUP_BUTTON:
                self._log("button", role=role, outcome="hangup")
                for call in list(self._calls):
                    self._hang_up(call, "hangup button")
            else:
                self._log("button", role=role, outcome="ignored", reason="no [[buttons]] entry")
                self._play("failure", None, FEEDBACK_CUE_S)
            return
        button_calls = [c for c in self._calls if c.from_button]
        if button_calls:
            if button.second_press == "hangup":
                self._log("button", role=role, outcome="hangup")
                for call in button_calls:
                    self._hang_up(call, "second press of a call button")
            elif "second press" not in button_calls[0].noted:
                button_calls[0].noted.add("second press")
                self._log("button", role=role, outcome="ignored", reason="a call is already up")
            return
        if button.quiet and self._schedules.active(button.quiet, self._local):
            self._log("button", role=role, outcome="quiet", schedule=button.quiet)
            self._play("unavailable", None)
            return
        targets, schedule = button.targets, None
        for entry in button.schedule_targets:
            if self._schedules.active(entry.schedule, self._local):
                targets, schedule = entry.targets, entry.schedule
                break
        if not targets:
            self._log("button", role=role, outcome="no call", reason="no targets configured")
            self._play("failure", None, FEEDBACK_CUE_S)
            return
        if len(self._calls) >= self._cfg.calls.max_calls:
            # no cue: the call that is up may be an answered one, listening at the door
            self._log("button", role=role, outcome="busy", reason="max_calls reached")
            return
        verdict = self._buttons.reserve_call(role, now)
        if verdict == ALLOWED:
            fields: dict[str, Any] = {"targets": list(targets)}
            if schedule is not None:
                fields["schedule"] = schedule
            self._log("button", role=role, outcome="call", **fields)
            # short targets (`**610`, `flat1`) become sip:<it>@<domain> (docs/CONFIG.md)
            targets = [self._cfg.sip.target_uri(t) for t in targets]
            call = self._start_call(targets, button.mode == "sequential",
                                    button.target_timeout_s, role)
            call.from_button = True
        elif verdict == LIMITED:
            self._log("button", role=role, outcome="ignored",
                      reason="more than %d calls a minute" % CALLS_PER_MINUTE)

    def _on_place_call(self, target: str, now: float) -> bool:
        try:
            scheme = URI.parse(target).scheme
        except (ParseError, AttributeError):
            scheme = None
        if scheme not in ("sip", "sips"):
            self._log("call", peer=target, role=API_ROLE, outcome="refused",
                      reason="not a sip: or sips: URI")
            return False
        if len(self._calls) >= self._cfg.calls.max_calls:
            self._log("call", peer=target, role=API_ROLE, outcome="busy",
                      reason="max_calls reached")
            return False
        self._start_call([target], False, self._cfg.calls.ring_timeout_s, API_ROLE)
        return True

    def _start_call(self, targets: list[str], sequential: bool, target_timeout_s: int,
                    role: str) -> "_Call":
        # The call's one id in every layer, issued here so that the runtime's reports
        # (call_started, call_failed_to_start) name the call, not a button role.
        call = _Call(self.random(CALL_ID_BYTES).hex(), OUTGOING, STARTING, role)
        call.targets = list(targets)
        call.peer = ", ".join(targets)
        call.trusted = True  # we chose whom to call
        self._calls.append(call)
        self._emit(PlaceCall(targets, sequential, target_timeout_s, role, call.id))
        return call

    def _on_incoming(self, call_id: str, caller: str | None, source: str, source_ip: str,
                     trusted: bool, answer_mode: str | None, now: float,
                     replaces: "_Call | None" = None) -> None:
        if self._registration == DISABLED:
            trusted = direct_ip_trusted(caller, source_ip, self._trusted_ips)
        fields = {"call_id": call_id, "caller": caller, "source": source, "trusted": trusted}
        mode = self._cfg.answer.mode
        if mode == "off":
            self._reject(call_id, 480, "call", fields, "answer mode is off")
            return
        if replaces is not None:
            fields["replaces"] = replaces.id  # RFC 3891: it takes that call's place
        # [calls] conference: a trusted, allowed caller joins the call that is up (below)
        limit = self._cfg.calls.call_limit() if mode == "auto" else self._cfg.calls.max_calls
        if len(self._calls) >= limit + (replaces is not None):
            self._reject(call_id, 486, "call", fields, "max_calls reached")
            return
        if mode == "auto":
            if caller_key(caller) not in self._allow_keys:
                self._reject(call_id, 403, "caller_rejected", fields, "not in answer.allow",
                             setting="answer.allow")
                return
            if not trusted:
                # direct-IP mode trusts by an allow entry's IP address; behind a registrar no
                # setting lets a caller in who did not come through it
                self._reject(call_id, 403, "caller_rejected", fields, "untrusted source",
                             setting="answer.allow" if self._registration == DISABLED else None)
                return
            schedule = self._cfg.answer.schedule
            if not self._schedules.active(schedule, self._local):
                self._reject(call_id, 480, "call", fields,
                             "outside answer.schedule %r" % schedule)
                return
        call = _Call(call_id, INCOMING, RINGING, None)
        call.caller = call.peer = caller
        call.source = source
        call.source_ip = source_ip
        call.trusted = trusted
        self._calls.append(call)
        if mode == "auto" and answer_mode != "manual":
            call.state = ANSWERING
            call.hangup_at = now + self._cfg.answer.max_duration_s
            self._emit(Answer(call_id))
            self._play("auto_answer", call_id)
            self._log("call", direction=INCOMING, outcome="auto-answered", **fields)
        else:
            self._emit(Ring(call_id))
            reason = "caller asked for manual answer" if mode == "auto" else "answer mode is ring"
            self._log("call", direction=INCOMING, outcome="ringing", reason=reason, **fields)

    def _reject(self, call_id: str, status: int, event_type: str, fields: dict,
                reason: str, setting: "str | None" = None) -> None:
        """`setting`: for `caller_rejected`, the config path that would let the caller in."""
        self._emit(Reject(call_id, status))
        extra = {"setting": setting} if event_type == "caller_rejected" else {}
        self._log(event_type, direction=INCOMING, outcome="rejected", status=status,
                  reason=reason, **fields, **extra)

    def _on_ended(self, call: "_Call", reason: str, status: int | None, now: float) -> None:
        self._stop_cue("ringback", call.id)
        if call.established_at is not None:
            outcome = "completed"
        elif call.hangup_requested:
            outcome = "cancelled"
        elif reason == "busy":
            outcome = "busy"
        else:
            outcome = "unanswered"
        duration = 0.0 if call.established_at is None else now - call.established_at
        self._log("call", call_id=call.id, direction=call.direction, peer=call.peer,
                  role=call.role, caller=call.caller, source=call.source, reason=reason,
                  status=status, outcome=outcome, duration_s=round(duration, 1))
        if call.direction == OUTGOING and outcome in ("busy", "unanswered"):
            self._play("busy" if outcome == "busy" else "failure", None, FEEDBACK_CUE_S)

    def _on_digit(self, call: "_Call", digit: str, now: float) -> None:
        fields = {"call_id": call.id, "caller": call.peer, "source": call.source}
        if not call.trusted:
            self._log_once(call, "untrusted", "code_failed", reason="untrusted call", **fields)
            return
        codes = self._codes_for(call)
        if not codes:
            return
        keys: list[tuple[str, str | None]] = []
        owner: str | None
        for owner, _, _ in codes:
            key = ("caller", caller_key(owner))
            if key not in keys:
                keys.append(key)
        if call.source_ip and self._registration == DISABLED:
            # Direct-IP only: while a registrar is configured, every call that reaches us came
            # through it (the SIP layer refuses the rest with 403), so its source address is the
            # registrar's, shared by every flat behind it.
            keys.append(("source", call.source_ip))
        if any(self._lockouts.locked(key, now) for key in keys):
            self._log_once(call, "locked", "code_failed", reason="locked out: digits ignored",
                           **fields)
            return
        # each code by its index, so that the one that matched tells its owner and its relay
        usable = [(str(i), code) for i, (_, code, _) in enumerate(codes)]
        call.digits, outcome, which = doorcodes.enter_digit(call.digits, digit, usable)
        if outcome == doorcodes.OPENED:
            for key in keys:
                self._lockouts.reset(key)
            owner, _, relay = codes[int(which or 0)]
            self._open_door(owner, "dtmf", call, now, relay)
        elif outcome == doorcodes.FAILED:
            self._log("code_failed", reason="wrong code", **fields)
            for key in keys:
                duration = self._lockouts.failure(key, now)
                if duration is not None:
                    # No "until": `now` is a monotonic clock, meaningless in a persisted log.
                    self._log("lockout", kind=key[0], subject=key[1], duration_s=duration,
                              **fields)

    def _codes_for(self, call: "_Call") -> "list[tuple[str, StoredCode, str]]":
        """(owner, code, relay) of the codes usable on `call` now (their schedule active)."""
        identities: list[Any]  # the caller and peer are known by the time digits come
        if call.direction == INCOMING:
            identities = [call.caller]
        elif call.established_at is not None and call.peer not in (None, ", ".join(call.targets)):
            identities = [call.peer]
        else:
            identities = call.targets
        keys = [caller_key(text) for text in identities]
        return [(owner, code, relay) for key, owner, code, relay, schedule in self._codes
                if key in keys and self._schedules.active(schedule, self._local)]

    def _open_door(self, by: str | None, how: str, call: "_Call | None", now: float,
                   relay: str = DOOR_RELAY) -> None:
        pulse_ms = self._cfg.relay_pulse_ms(relay)
        if pulse_ms is None:  # a relay removed from the config since the code was checked
            pulse_ms = self._cfg.door.pulse_ms
        self._emit(PulseRelay(relay, pulse_ms))
        self._relay_until[relay] = now + pulse_ms / 1000.0
        for up in self._calls:
            if up.state in ANSWERED_STATES:
                up.door_opened = True
        call_id = None if call is None else call.id
        self._play("door_open", call_id)
        fields: dict[str, str | None] = {"by": by, "how": how, "relay": relay}
        if call is not None:
            fields["call_id"] = call_id
            fields["source"] = call.source
        self._log("door_open", **fields)

    def _on_contact(self, closed: bool, now: float) -> None:
        was, self._contact = self._contact, closed
        if was is None or was == closed:  # the first report, or no change
            if was is None and not closed:
                self._door_left_open(now)
            return
        if not closed:
            self._log("door_opened")
            self._door_left_open(now)
            return
        open_s = None if self._opened_at is None else round(now - self._opened_at, 1)
        fields: dict[str, Any] = {"open_s": open_s}
        if self._held_open:
            fields["alarm"] = "ended"
        self._opened_at = self._held_alarm_at = None
        self._held_open = False
        self._log("door_closed", **fields)
        if self._cfg.door.hangup_on_close:
            for call in [c for c in self._calls if c.door_opened]:
                self._hang_up(call, "the door closed after it was opened (door.hangup_on_close)")

    def _door_left_open(self, now: float) -> None:
        self._opened_at = now
        for call in self._calls:
            if call.state in ANSWERED_STATES:
                call.door_opened = True
        alarm_s = self._cfg.door.held_open_alarm_s
        self._held_alarm_at = now + alarm_s if alarm_s > 0 else None

    def _hang_up(self, call: "_Call", reason: str) -> None:
        if call.hangup_requested:
            return
        call.hangup_requested = True
        call.hangup_at = None
        self._log("call", call_id=call.id, direction=call.direction, peer=call.peer,
                  role=call.role, outcome="hanging up", reason=reason)
        if call.state != STARTING:  # a starting call is hung up once started
            self._emit(Hangup(call.id))

    # -- time -------------------------------------------------------------------------------
    def _advance(self, now: float, local: "LocalTime | None" = None) -> None:
        """Everything whose time has come, before the input that brought `now` is handled."""
        self._now = now
        if local is not None:
            self._local = local
        for role in [r for r, until in self._relay_until.items() if now >= until]:
            del self._relay_until[role]
        if self._held_alarm_at is not None and now >= self._held_alarm_at:
            self._held_alarm_at = None
            self._held_open = True
            assert self._opened_at is not None  # the alarm is armed when the door opens
            self._log("door_held_open", held_s=round(now - self._opened_at, 1),
                      alarm_s=self._cfg.door.held_open_alarm_s)
        if self._cue_stop_at is not None and now >= self._cue_stop_at:
            assert self._cue is not None  # a stop time comes with the cue it stops
            self._stop_cue(self._cue[0], self._cue[1])
        for role in self._buttons.check_stuck(now):
            self._log("button", role=role, outcome="stuck",
                      reason="held for more than %g s" % STUCK_S)
        self._lockouts.expire(now)
        for call in self._calls:
            if call.hangup_at is not None and now >= call.hangup_at:
                self._hang_up(call, "answer.max_duration_s reached")

    # -- state helpers ----------------------------------------------------------------------
    def _apply_config(self, cfg: "Config") -> None:
        self._cfg = cfg
        self._button_cfg: dict[str, ButtonConfig] = {}
        for button in cfg.buttons:
            self._button_cfg[button.role] = button
        self._allow_keys = set()
        self._trusted_ips = set()
        for entry in cfg.answer.allow:
            key = caller_key(entry)
            if key is not None:
                self._allow_keys.add(key)
                ip = literal_ip(key.rpartition("@")[2])
                if ip is not None:
                    self._trusted_ips.add(ip)
        self._codes = [(caller_key(c.caller), c.caller, doorcodes.StoredCode.from_config(c),
                        c.relay, c.schedule) for c in cfg.door.codes]
        self._schedules = Schedules(cfg.time, cfg.schedules)
        if cfg.door.held_open_alarm_s <= 0:
            self._held_alarm_at = None
        elif self._opened_at is not None and not self._held_open:
            self._held_alarm_at = self._opened_at + cfg.door.held_open_alarm_s
        self._lockouts.configure(cfg.door.max_failures, cfg.door.lockout_s)

    def _set_registration(self, state: str, error: str | None) -> None:
        if (state, error) == (self._registration, self._registration_error):
            return
        self._registration = state
        self._registration_error = error
        # a registrar's 401/403 is told here, with its reason; `auth_failed` is only for the
        # station's own web/API login (docs/API.md)
        self._log("registration", state=state, error=error,
                  reason=registration_reason(error, self._cfg.sip.registrar,
                                              self._cfg.sip.transport),
                  registrar=self._cfg.sip.registrar or None)

    def _update_leds(self) -> None:
        if self._buttons.stuck_roles():
            status = "blink_fast"
        elif self._registration in (REGISTERED, DISABLED):
            status = "on"
        else:
            status = "blink_slow"
        call = "off"  # "on" when a call is answered, else "blink_fast" while there is one
        for each in self._calls:
            if each.state in ANSWERED_STATES:
                call = "on"
                break
            call = "blink_fast"
        leds = [(STATUS_LED, status), (CALL_LED, call)]
        roles = self._cfg.relay_roles()
        # a relay dropped from the config: its LED goes off with its pulse
        roles += [r for r in self._leds if r not in roles and r not in (STATUS_LED, CALL_LED)]
        for role in roles:  # the LED of each relay's role (door, gate...)
            pattern = "on" if role in self._relay_until else "off"
            if role == DOOR_LED and self._held_open:
                pattern = "blink_fast"  # the held-open alarm
            leds.append((role, pattern))
        for role, pattern in leds:
            if self._leds.get(role) != pattern:
                self._leds[role] = pattern
                self._emit(SetLed(role, pattern))

    def _transition(self, call: "_Call", report: str) -> bool:
        state = TRANSITIONS.get((call.state, report))
        if state is None:
            return False
        call.state = state
        return True

    def _find(self, call_id: str) -> "_Call | None":
        for call in self._calls:
            if call.id == call_id and call_id is not None:
                return call
        return None

    def _play(self, name: str, call_id: str | None, for_s: float | None = None) -> None:
        self._emit(PlayCue(name, call_id))
        self._cue = (name, call_id)
        self._cue_stop_at = None if for_s is None else self._now + for_s

    def _stop_cue(self, name: str, call_id: str | None) -> None:
        if self._cue == (name, call_id):
            self._emit(StopCue(name))
            self._cue = None
            self._cue_stop_at = None

    def _emit(self, action: "Action") -> None:
        self._actions.append(action)

    def _log(self, event_type: str, **fields: object) -> None:
        self._emit(LogEvent(event_type, fields))
        messages = self._cfg.messages
        if messages.to and transfers.worth_a_message(event_type, fields, messages.events) \
                and self._messages.allow(self._now):
            self._emit(SendMessage(messages.to, transfers.message_text(event_type, fields)))

    def _log_once(self, call: "_Call", note: str, event_type: str, **fields: object) -> None:
        if note not in call.noted:
            call.noted.add(note)
            self._log(event_type, **fields)
