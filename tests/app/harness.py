"""A controller on a fake clock, for the app tests: feeds inputs, fires due timers, collects
actions."""

import copy

from firmware.app import actions as a
from firmware.app.controller import Controller
from firmware.config import merge, validate

CONCIERGE = "sip:concierge@127.0.0.1"
GUARD = "sip:guard@127.0.0.1"
FLAT1 = "sip:flat1@127.0.0.1"
FLAT2 = "sip:flat2@127.0.0.1"
REGISTRAR_SOURCE = "udp:127.0.0.1:15060"
# firmware/runtime/eventlog.py writes {"id", "time", "type"} and lays the fields over them
RESERVED_EVENT_KEYS = {"id", "time", "type"}

BASE = {
    "sip": {"registrar": "127.0.0.1:15060", "username": "door", "password": "secret"},
    "answer": {"mode": "auto", "allow": [CONCIERGE, GUARD], "max_duration_s": 120},
    "buttons": [{"role": "call", "targets": [FLAT1]}],
    "calls": {"max_calls": 1},
    "door": {"pulse_ms": 3000, "max_failures": 3, "lockout_s": 60,
             "codes": [{"caller": CONCIERGE, "code": "1234"}, {"caller": GUARD, "code": "9876"}]},
}


def config(**changes):
    """The base configuration with whole sections or keys laid over it, validated."""
    return validate(merge(copy.deepcopy(BASE), changes))


class ControllerHarness:
    def __init__(self, cfg=None, start=1000.0, registered=True):
        self.t = start
        self.ctl = Controller(cfg or config(), self.t)
        self.log = []  # every action ever returned, in order
        if registered and self.ctl.snapshot()["registration"] != "disabled":
            self.ctl.registration_changed("registered", None, self.t)
        self.drain()

    def placed_id(self):
        """The call id the controller issued in its last PlaceCall."""
        placed = [action for action in self.log if isinstance(action, a.PlaceCall)]
        assert placed, "no PlaceCall yet"
        assert isinstance(placed[-1].call_id, str) and placed[-1].call_id
        return placed[-1].call_id

    def drain(self):
        out = []
        while True:
            action = self.ctl.next_action()
            if action is None:
                break
            if isinstance(action, a.LogEvent):
                clash = RESERVED_EVENT_KEYS.intersection(action.fields)
                assert not clash, "%r would overwrite the event log's own %s" % (action, clash)
            out.append(action)
        self.log.extend(out)
        return out

    def advance(self, seconds):
        """Move the clock, firing every timer that falls due on the way."""
        end = self.t + seconds
        for _ in range(1000):
            due = self.ctl.get_timer()
            if due is None or due > end:
                break
            self.t = max(self.t, due)
            self.ctl.handle_timer(self.t)
        else:
            raise AssertionError("the controller's timer never moves on")
        self.t = end
        return self.drain()

    def do(self, method, *args, **kwargs):
        """Call an input with the current time as `now`; return the actions it produced."""
        getattr(self.ctl, method)(*args, now=self.t, **kwargs)
        return self.drain()

    def press(self, role="call", hold=0.1):
        out = self.do("button_pressed", role)
        out += self.advance(hold)
        out += self.do("button_released", role)
        return out

    def incoming(self, call_id, caller=CONCIERGE, source=REGISTRAR_SOURCE, trusted=True,
                 answer_mode=None, **kwargs):
        return self.do("incoming_call", call_id, caller, source, trusted, answer_mode, **kwargs)

    def answered_call(self, call_id="in1", caller=CONCIERGE, source=REGISTRAR_SOURCE):
        """An incoming call auto-answered and confirmed by the ACK."""
        out = self.incoming(call_id, caller, source)
        assert a.Answer(call_id) in out, out
        self.do("call_established", call_id)
        return call_id

    def type_digits(self, call_id, digits):
        out = []
        for digit in digits:
            out += self.do("dtmf", call_id, digit)
            out += self.advance(0.2)
        return out

    @property
    def leds(self):
        return self.ctl.snapshot()["leds"]


def of_type(actions, kind):
    return [x for x in actions if isinstance(x, kind)]


def events(actions, event_type):
    return [x.fields for x in actions if isinstance(x, a.LogEvent) and x.type == event_type]
