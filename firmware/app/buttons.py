"""Guarding call buttons against bounce, floods and stuck contacts.

The HAL debounces in hardware and software already; this is the second line of defence, because a
door button is the one input anyone on the street can operate:

- a press within DEBOUNCE_S of the last accepted press of the same button is bounce;
- a press while the button is still down (no release in between) is ignored;
- a button held down longer than STUCK_S is stuck: it is reported once, and ignored until released;
- at most CALLS_PER_MINUTE calls per button in any 60 s window; the first press refused is
  reported, the following ones are not, until a call is allowed again.

Public API
    ButtonGuard()
    press(role, now) -> True when the press counts (False: bounce, still held or stuck)
    release(role) -> True when this release ends a stuck period
    reserve_call(role, now) -> ALLOWED, LIMITED (report it) or LIMITED_QUIET (already reported)
    check_stuck(now) -> roles that became stuck now;  stuck_roles() -> roles stuck right now
    next_deadline() -> when check_stuck next has something to do, or None
"""

from firmware.compat import ordered_dict

DEBOUNCE_S = 0.3
STUCK_S = 10.0
CALLS_PER_MINUTE = 6
RATE_WINDOW_S = 60.0

ALLOWED = "allowed"
LIMITED = "limited"
LIMITED_QUIET = "limited quietly"


class _Button:
    __slots__ = ("down_since", "last_press", "stuck", "calls", "limit_reported")

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.last_press: float | None = None
        self.stuck = False
        self.calls: list[float] = []  # start times of calls placed in the last RATE_WINDOW_S
        self.limit_reported = False


class ButtonGuard:
    def __init__(self) -> None:
        # stuck roles reported in first-press order
        self._buttons: dict[str, _Button] = ordered_dict()

    def _button(self, role: str) -> "_Button":
        button = self._buttons.get(role)
        if button is None:
            button = self._buttons[role] = _Button()
        return button

    def press(self, role: str, now: float) -> bool:
        button = self._button(role)
        if button.down_since is not None:
            return False
        button.down_since = now
        if button.last_press is not None and now - button.last_press < DEBOUNCE_S:
            return False
        button.last_press = now
        return True

    def release(self, role: str) -> bool:
        button = self._button(role)
        button.down_since = None
        was_stuck = button.stuck
        button.stuck = False
        return was_stuck

    def reserve_call(self, role: str, now: float) -> str:
        button = self._button(role)
        button.calls = [t for t in button.calls if now - t < RATE_WINDOW_S]
        if len(button.calls) >= CALLS_PER_MINUTE:
            if button.limit_reported:
                return LIMITED_QUIET
            button.limit_reported = True
            return LIMITED
        button.calls.append(now)
        button.limit_reported = False
        return ALLOWED

    def check_stuck(self, now: float) -> list[str]:
        newly = []
        for role, button in self._buttons.items():
            if (button.down_since is not None and not button.stuck
                    and now - button.down_since >= STUCK_S):
                button.stuck = True
                newly.append(role)
        return newly

    def stuck_roles(self) -> list[str]:
        return [role for role, button in self._buttons.items() if button.stuck]

    def next_deadline(self) -> float | None:
        deadlines = [b.down_since + STUCK_S for b in self._buttons.values()
                     if b.down_since is not None and not b.stuck]
        return min(deadlines) if deadlines else None
