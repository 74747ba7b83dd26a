"""A stand-in for firmware.runtime.station.Station with the facade the web layer uses.

It keeps what the web layer asked it to do (calls placed, door openings, button presses, applied
configs) so tests can check the effect, and moves a placed call from "calling" to "active"
(firmware/sip/callstate.py) after `answer_after` seconds so the page can show a state change
(a call to a target in `unanswered` ends then with 408 "no answer" instead). A saved change
of [sip] goes through "registering" (attempt 1, `since` = now) to "registered" after
`register_after` seconds, or to "failed" with a reason when the registrar's host is in
`unreachable`; direct-IP mode is state "disabled", mode "direct".
"""

import threading
import time

from firmware import config as configuration
from firmware.settings import Config


class FakeStation:
    def __init__(self, cfg=None, simulated=True, roles=("call",), answer_after=0.5):
        # a Config as validate() returned it, or a document to validate
        self.config = cfg if isinstance(cfg, Config) else \
            configuration.validate(cfg or configuration.defaults())
        self.simulated = simulated
        self.roles = set(roles)
        self.answer_after = answer_after
        self.applied = []
        self.door_openings = []
        self.presses = []
        self.calls = []
        self.calls_total = 0
        self._events = []
        self._lock = threading.Lock()  # the browser test reads from another thread
        self._subscribers = []  # (event loop, callback): GET /api/events/stream
        self.unanswered = set()
        self.camera = False  # what board_info() says (no camera routes either way)
        self.unreachable = set()
        self.register_after = 0.8
        self.skew = 0.0  # seconds the station's clock is ahead of the browser's (`since`)
        self.registration = {"state": "registered", "error": None, "mode": "registrar",
                             "reason": None, "attempt": 1, "since": round(time.time() - 60, 1)}

    def _registration(self, now):
        reg = self.registration
        if reg["state"] == "registering" and now + self.skew - reg["since"] >= self.register_after:
            host = self.config.sip.registrar.rsplit(":", 1)[0]
            if host in self.unreachable:
                reason = f"no answer from {host}:5060 (timeout)"
                reg.update(state="failed", error="timeout", reason=reason, since=now + self.skew)
            else:
                reg.update(state="registered", since=now + self.skew)
            self.log_event("registration", state=reg["state"], reason=reg["reason"])
        return dict(reg, next_refresh=now + 60)

    def status(self):
        now = time.time()
        calls = []
        for call in list(self.calls):
            if call["peer"] in self.unanswered and now - call["started"] >= self.answer_after:
                self.calls.remove(call)
                self.log_event("call", call_id=call["id"], direction="outgoing",
                               peer=call["peer"], state="ended", status=408,
                               reason="no answer")
                continue
            confirmed = now - call["started"] >= self.answer_after
            calls.append({"id": call["id"], "direction": "outgoing",
                          "state": "active" if confirmed else "calling",
                          "peer": call["peer"], "codec": "PCMU" if confirmed else None,
                          "srtp": False, "started": round(call["started"], 1),
                          "wideband": False,
                          "stats": {"packets_rx": int((now - call["started"]) * 50) if confirmed
                                    else 0, "lost": 0, "jitter_ms": 1.5 if confirmed else None,
                                    "loss_percent": 0.0 if confirmed else None}})
        contact = getattr(self, "inputs", {}).get("door_contact")
        return {"registration": self._registration(now),
                "calls": calls, "door": {"relay": "closed",
                                         "relays": {"door": "closed", "gate": "closed"},
                                         "contact": None if contact is None else
                                         "closed" if contact else "open", "held_open": False},
                "leds": {"status": "on"}, "uptime_s": 42.0}

    async def apply_config(self, cfg):
        old, self.config = self.config, cfg
        self.applied.append(cfg)
        if cfg.section("sip") != old.section("sip"):
            direct = not cfg.sip.registrar
            self.registration = {"state": "disabled" if direct else "registering",
                                 "error": None, "mode": "direct" if direct else "registrar",
                                 "reason": None, "attempt": 1, "since": time.time() + self.skew}
        return [name for name in sorted(cfg.SECTIONS) if cfg.section(name) != old.section(name)]

    def board_info(self):
        """The roles of pc-sim (boards/pc-sim.toml), as the station reports its board."""
        return {"name": "pc-sim", "simulated": self.simulated,
                "buttons": ["call", "call2", "hangup", "exit"], "relays": ["door", "gate"],
                "inputs": ["door_contact"], "leds": ["status", "call", "door", "gate"],
                "camera": self.camera}

    def place_call(self, target_uri):
        if not target_uri.startswith(("sip:", "sips:")):
            raise ValueError(f"not a SIP URI: {target_uri}")
        if self.calls:
            raise ValueError("a call is already in progress")
        self.calls_total += 1
        call_id = f"call-{self.calls_total}"
        self.calls.append({"id": call_id, "peer": target_uri, "started": time.time()})
        self.log_event("call", direction="outgoing", peer=target_uri, state="calling")
        return call_id

    def hangup(self):
        for call in self.calls:
            self.log_event("call", peer=call["peer"], state="ended")
        self.calls = []

    def test_speaker(self):
        self.speaker_tests = getattr(self, "speaker_tests", 0) + 1
        return not self.calls

    def open_door(self, by="api", relay="door"):
        if relay not in self.config.relay_roles():
            raise ValueError(f"no relay {relay!r}")
        self.door_openings.append(by if relay == "door" else (by, relay))
        self.log_event("door_open", by=by, relay=relay)

    def set_input(self, role, active):
        if role != "door_contact":
            raise KeyError(role)
        self.inputs = {**getattr(self, "inputs", {}), role: active}

    def events(self, since=None):
        with self._lock:
            return [dict(e) for e in self._events if since is None or e["id"] > since]

    def subscribe_events(self, callback):
        """As the station's: callback(event) for each new event, on the web server's loop
        (log_event may run on a test's thread)."""
        import asyncio

        entry = (asyncio.get_running_loop(), callback)
        self._subscribers.append(entry)
        return lambda: entry in self._subscribers and self._subscribers.remove(entry)

    def press_button(self, role, press_ms):
        if role not in self.roles:
            raise KeyError(role)
        self.presses.append((role, press_ms))

    def metrics(self):
        return {"registration_registered": 1, "calls_active": len(self.calls),
                "calls_total": self.calls_total, "rtp_packets_lost_total": 3,
                "rtp_jitter_ms": 1.25, "door_openings_total": len(self.door_openings)}

    def log_event(self, type, **fields):
        with self._lock:
            event_id = self._events[-1]["id"] + 1 if self._events else 1
            event = {"id": event_id, "time": time.time(), "type": type, **fields}
            self._events.append(event)
        for loop, callback in list(self._subscribers):
            loop.call_soon_threadsafe(callback, dict(event))
