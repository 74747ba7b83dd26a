"""Keeping the path to the registrar open over UDP and noticing when it breaks, sans-I/O.

Behind a NAT (most door stations: a FRITZ!Box, a mobile router) the registrar reaches the station
only through the NAT's UDP mapping, which most home routers drop after 30-180 s without traffic;
the registration refresh (minutes) is far too rare to hold it open. So while registered over UDP
the station sends a keep-alive every `interval` seconds (`[sip] keepalive_s`, default 25 s).

What is sent, as the registrar accepts it (docs/CONFIG.md):
- an OPTIONS request to the registrar (RFC 3261 §11; the form most PBXs use themselves: Asterisk
  `qualify`, FRITZ!Box, 3CX and Kamailio's nathelper all answer it). Any response (200, 401, 404,
  405, ...) proves the registrar alive and the mapping open, and its top Via's `received`/`rport`
  (RFC 3581) show the mapping the registrar sees;
- a registrar that has never answered an OPTIONS may not answer them at all: on the first one
  that goes unanswered the registration is refreshed at once (every registrar answers REGISTER);
  if that refresh succeeds, the station falls back to RFC 5626 §4.4.1-style double-CRLF
  keep-alives, which keep the mapping open but prove nothing (the registration refresh then is
  the only liveness check).

What follows from the answers (the UA carries it out):
- a registrar that did answer OPTIONS and leaves one unanswered for `interval` (the transaction
  retransmits it 9 times meanwhile, so one lost datagram is not a death) is taken for dead: the
  registration fails ("registrar not answering keep-alives") and re-registers with its back-off.
  A registrar that dies is noticed within two periods: the next keep-alive goes out at most one
  period later and is given one period to be answered;
- a response whose Via `received`/`rport` differs from the last one seen (the NAT gave us a new
  public port, e.g. after a router restart or a mapping timeout) re-registers at once, so the
  registrar's binding follows the new mapping instead of pointing at a dead one for up to
  `expires` seconds.

The table below is the whole policy, (state, input) -> (next state, action), as in
transaction.py; `actions()` drains what to do: PROBE (send an OPTIONS), CRLF (send a double
CRLF), REFRESH (re-register now), DEAD (the registrar is gone).
"""

from firmware.sip.errors import ParseError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sip.message import Response

    Table = dict[tuple[str, str], tuple[str, "str | None"]]

DEFAULT_INTERVAL = 25  # s: under the 30 s UDP timeout of the most forgetful home routers

# -- states ------------------------------------------------------------------------------------
OFF = "off"  # not registered: nothing to keep open
PROBING = "probing"  # an OPTIONS is out, waiting for any response
IDLE = "idle"  # the last OPTIONS was answered; the next goes out at the next period
CONFIRMING = "confirming"  # an OPTIONS went unanswered before any was: a REGISTER checks
CRLF_ONLY = "crlf only"  # the registrar does not answer OPTIONS: double-CRLF keep-alives

# -- inputs ------------------------------------------------------------------------------------
REGISTERED = "registered"
UNREGISTERED = "unregistered"
DUE = "period due"
ANSWERED = "OPTIONS answered"
MISSED = "OPTIONS unanswered for a period"  # or its transaction failed
MISSED_FIRST = "OPTIONS unanswered, none ever answered"
REFRESHED = "REGISTER answered 2xx"

# -- actions (drained by the UA) ----------------------------------------------------------------
PROBE = "probe"
CRLF = "crlf"
REFRESH = "refresh"
DEAD = "dead"

KEEPALIVE: "Table" = {
    # RFC 5626 §4.4 in spirit: keep-alives only while a registration (a flow) exists
    (OFF, REGISTERED): (PROBING, "probe"),
    (PROBING, UNREGISTERED): (OFF, None),
    (IDLE, UNREGISTERED): (OFF, None),
    (CONFIRMING, UNREGISTERED): (OFF, None),
    (CRLF_ONLY, UNREGISTERED): (OFF, None),
    # RFC 3261 §11: any response to OPTIONS shows the registrar is there
    (PROBING, ANSWERED): (IDLE, "answered"),
    (IDLE, DUE): (PROBING, "probe"),
    # unanswered by a registrar known to answer OPTIONS: dead (§17.1.2.2 would wait 32 s more)
    (PROBING, MISSED): (OFF, "dead"),
    # none answered yet: perhaps it ignores OPTIONS; a REGISTER (which any registrar answers)
    # tells (RFC 3261 §10.2.1 refresh); if that fails, the registration fails by itself
    (PROBING, MISSED_FIRST): (CONFIRMING, "refresh"),
    # never answered one yet: does it answer REGISTER? (RFC 3261 §10.2.1 refresh)
    (CONFIRMING, REFRESHED): (CRLF_ONLY, "crlf"),
    # RFC 5626 §4.4.1: the double CRLF keeps the mapping open; it has no answer over UDP
    (CRLF_ONLY, DUE): (CRLF_ONLY, "crlf"),
    (CRLF_ONLY, REGISTERED): (CRLF_ONLY, None),
    (PROBING, REGISTERED): (PROBING, None),
    (IDLE, REGISTERED): (IDLE, None),
    (CONFIRMING, REGISTERED): (CONFIRMING, None),
}


def via_mapping(response: "Response") -> "tuple[str, int] | None":
    """The (address, port) the sender of a response saw our request come from: the top Via's
    `received` and `rport` (RFC 3581 §4), or None when it did not say (no `rport` value)."""
    try:
        via = response.top_via()
    except ParseError:
        return None
    rport = via.params.get("rport")
    if not rport or not rport.isdigit():
        return None
    return via.params.get("received") or via.host, int(rport)


class KeepAlive:
    """The keep-alive policy for one registration over UDP (see the module docstring)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.state = OFF
        self.answers_options = False  # has the registrar ever answered one of our OPTIONS?
        self.probe = 0  # the id of the OPTIONS in flight (responses to older ones are late)
        self.due: float | None = None
        self._actions: list[str] = []

    def _feed(self, name: str, now: float) -> None:
        row = KEEPALIVE.get((self.state, name))
        if row is None:
            return  # e.g. a late answer, a period due while confirming: absorbed
        self.state, action = row
        if self.state == OFF:
            self.due = None
        if action is not None:
            getattr(self, "_" + action)(now)

    # -- inputs ------------------------------------------------------------------------------
    def registered(self, now: float) -> None:
        self._feed(REGISTERED, now)

    def unregistered(self, now: float) -> None:
        self._feed(UNREGISTERED, now)

    def refreshed(self, now: float) -> None:
        """A REGISTER got its 2xx (the confirming one, while CONFIRMING)."""
        self._feed(REFRESHED, now)

    def answered(self, probe: int, now: float) -> None:
        if probe == self.probe:
            self._feed(ANSWERED, now)

    def failed(self, probe: int, now: float) -> None:
        """The OPTIONS transaction failed (a transport error, or Timer F)."""
        if probe == self.probe and self.state == PROBING:
            self._missed(now)

    def handle_timer(self, now: float) -> None:
        if self.due is None or now < self.due:
            return
        if self.state == PROBING:
            self._missed(now)
        else:
            self._feed(DUE, now)

    def _missed(self, now: float) -> None:
        self._feed(MISSED if self.answers_options else MISSED_FIRST, now)

    # -- outputs -----------------------------------------------------------------------------
    def get_timer(self) -> "float | None":
        return self.due

    def actions(self) -> "list[str]":
        out, self._actions = self._actions, []
        return out

    # -- actions (KEEPALIVE) -----------------------------------------------------------------
    def _probe(self, now: float) -> None:
        self.probe += 1
        self.due = now + self.interval  # answered by then, or missed
        self._actions.append(PROBE)

    def _answered(self, now: float) -> None:
        self.answers_options = True
        # `due` stays: the next keep-alive goes one period after the last one was sent

    def _refresh(self, now: float) -> None:
        self.due = None
        self._actions.append(REFRESH)

    def _dead(self, now: float) -> None:
        self._actions.append(DEAD)

    def _crlf(self, now: float) -> None:
        self.due = now + self.interval
        self._actions.append(CRLF)
