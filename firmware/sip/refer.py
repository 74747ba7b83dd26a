"""Being transferred: REFER received within a call (RFC 3515, RFC 3892, RFC 3891), sans-I/O.

RFC map
- RFC 3515 §2.4.1: the REFER's `Refer-To` names what to do; exactly one `Refer-To` (§2.4.1: a
  REFER without one, or with several, gets 400).
- RFC 3515 §2.4.2: 202 Accepted creates an implicit subscription; §2.4.4/§2.4.5: the referee
  reports progress with NOTIFY (`Event: refer`, `message/sipfrag` body holding the status line of
  the referenced request) and ends it with `Subscription-State: terminated`.
- RFC 3892: the INVITE the referee sends carries `Referred-By` (copied from the REFER, or the
  referrer's URI when it had none).
- RFC 3891 §3: a `Replaces` header embedded in the Refer-To URI goes into the new INVITE (attended
  transfer); it is the one embedded header accepted (RFC 3515 §2.1 lets a Refer-To carry any: a
  `Route`, `From` or `Contact` smuggled in would steer our INVITE, so every other one is refused).

Public API
- `ReferError(status, reason)`; `parse_refer_to(values) -> ReferTarget` (`uri`: the target as
  text without headers; `replaces`: the decoded Replaces value or None; `method`; `join`:
  the Refer-To named `method=INVITE` explicitly, which a station with `[calls] conference`
  takes as "bring the target in" rather than "hand the call over").
- `parse_replaces(value) -> (call_id, to_tag, from_tag, early_only)` (RFC 3891 §6.1).
- `sipfrag(status, reason) -> bytes`.
- `Transferee` (mixed into `Call`): `accept_refer(now)`, `reject_refer(status, now)`,
  `notify_refer(status, reason, now)`; the call emits `ReferReceived` / `ReferRefused`.
  Its REFER subscription follows the table `REFER_SUBSCRIPTION` (RFC 3515 §2.4).

Choices
- A REFER is only taken on a confirmed call (`active`) and from the call's own first hop (the
  registrar, or the peer in direct-IP mode): a third party that guessed Call-ID and tags but
  sends from elsewhere gets 403, as does a REFER while another one is pending (one transfer at a
  time; RFC 3515 allows several, a door station needs one).
- Only `sip:`/`sips:` targets; `method` absent or INVITE.
"""

from firmware.sip import callstate as cs
from firmware.sip.callbase import CallBase
from firmware.sip.callevents import CallEvent
from firmware.sip.errors import ParseError
from firmware.sip.message import NameAddress
from firmware.sip.reply import Reply

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sip.endpoint import RequestReceived

MAX_REFER_TO = 512  # characters of a Refer-To value we look at

REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK",
           403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
           480: "Temporarily Unavailable", 486: "Busy Here", 487: "Request Terminated",
           488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable",
           603: "Decline"}


class ReferError(ParseError):
    """A REFER we refuse: `status` to answer it with, `reason` for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class ReferTarget:
    __slots__ = ("uri", "replaces", "method", "join")

    def __init__(self, uri: str, replaces: "str | None", method: str,
                 join: bool = False) -> None:
        self.uri = uri
        self.replaces = replaces
        self.method = method
        self.join = join

    def __repr__(self) -> str:
        return "<ReferTarget %s replaces=%r>" % (self.uri, self.replaces)


def _unescape(text: str) -> str:
    """%-escapes decoded (RFC 3261 §19.1.2 headers in a URI are escaped)."""
    if "%" not in text:
        return text
    out = bytearray()
    chunks = text.split("%")
    out += chunks[0].encode()
    for chunk in chunks[1:]:
        try:
            out.append(int(chunk[:2], 16))
        except ValueError:
            raise ReferError(400, "bad %-escape in Refer-To") from None
        out += chunk[2:].encode()
    try:
        return bytes(out).decode()
    except UnicodeError:
        raise ReferError(400, "Refer-To is not UTF-8") from None


def parse_refer_to(values: "list[str]") -> "ReferTarget":
    """RFC 3515 §2.1/§2.4.1: the one Refer-To of a REFER (`values`: every Refer-To header).
    Raises ReferError: 400 malformed or not exactly one, 403 a target we never dial."""
    if len(values) != 1:
        raise ReferError(400, "a REFER needs exactly one Refer-To (got %d)" % len(values))
    value = values[0].strip()
    if len(value) > MAX_REFER_TO:
        raise ReferError(400, "Refer-To longer than %d characters" % MAX_REFER_TO)
    try:
        address = NameAddress.parse(value)
    except ParseError as exc:
        raise ReferError(400, "malformed Refer-To: %s" % exc.reason) from None
    uri = address.uri
    if uri is None:
        raise ReferError(400, "Refer-To names no URI")
    if uri.scheme not in ("sip", "sips"):
        raise ReferError(403, "Refer-To is not a SIP URI (%s:)" % uri.scheme)
    if uri.user is None or uri.host is None:
        raise ReferError(403, "Refer-To names no user")
    if uri.password is not None:
        raise ReferError(403, "Refer-To carries a password")
    replaces = None
    for name, raw in uri.headers.items():
        if name.lower() != "replaces":
            raise ReferError(403, "Refer-To carries a %s header" % _unescape(name))
        replaces = _unescape(raw)
        parse_replaces(replaces)  # refused when malformed
    method = (uri.params.get("method") or "INVITE").upper()
    if method != "INVITE":
        raise ReferError(403, "Refer-To asks for %s, not INVITE" % method)
    target = uri.copy()
    target.headers = {}
    join = "method" in target.params
    if join:
        del target.params["method"]
    return ReferTarget(str(target), replaces, method, join)


def parse_replaces(value: str) -> "tuple[str, str, str, bool]":
    """RFC 3891 §6.1: `callid;to-tag=..;from-tag=..[;early-only]`. Raises ReferError(400)."""
    chunks = [c.strip() for c in value.split(";")]
    call_id = chunks[0]
    params: dict[str, str | None] = {}
    for chunk in chunks[1:]:
        name, equals, val = chunk.partition("=")
        params[name.strip().lower()] = val.strip() if equals else None
    to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
    if not call_id or not to_tag or not from_tag or any(c in value for c in "\r\n<>\",?&"):
        raise ReferError(400, "malformed Replaces")
    return call_id, to_tag, from_tag, "early-only" in params


def sipfrag(status: int, reason: "str | None" = None) -> bytes:
    """RFC 3515 §2.4.5: the status line of the referenced request, as message/sipfrag."""
    return ("SIP/2.0 %d %s\r\n" % (status, reason or REASONS.get(status, ""))).encode()


# -- the REFER subscription of a call (RFC 3515 §2.4) --------------------------------------
NO_REFER = "no refer"
REFER_PENDING = "refer pending"  # received, waiting for the application's verdict
REFER_ACTIVE = "refer active"  # 202 sent; NOTIFYs report progress
REFER_DONE = "refer done"  # the final NOTIFY went (Subscription-State: terminated)

REFER_RECEIVED = "REFER"
ACCEPT_REFER = "accept refer"
REJECT_REFER = "reject refer"
PROGRESS = "progress"  # a provisional status of the new INVITE
FINAL = "final"  # its final status

REFER_COMMANDS = (ACCEPT_REFER, REJECT_REFER, PROGRESS, FINAL)

REFER_SUBSCRIPTION: "cs.Table" = {
    # RFC 3515 §2.4.1: a REFER is accepted or refused by the application
    (NO_REFER, REFER_RECEIVED): (REFER_PENDING, "report_refer"),
    (REFER_DONE, REFER_RECEIVED): (REFER_PENDING, "report_refer"),
    # one transfer at a time: a second REFER meanwhile is refused
    (REFER_PENDING, REFER_RECEIVED): (REFER_PENDING, "refuse_busy"),
    (REFER_ACTIVE, REFER_RECEIVED): (REFER_ACTIVE, "refuse_busy"),
    # RFC 3515 §2.4.2: 202, then §2.4.4: an immediate NOTIFY ("100 Trying")
    (REFER_PENDING, ACCEPT_REFER): (REFER_ACTIVE, "send_accepted"),
    (REFER_PENDING, REJECT_REFER): (NO_REFER, "send_refusal"),
    # RFC 3515 §2.4.5: NOTIFY message/sipfrag for progress, the last one terminated
    (REFER_ACTIVE, PROGRESS): (REFER_ACTIVE, "send_notify"),
    (REFER_ACTIVE, FINAL): (REFER_DONE, "send_final_notify"),
}


class ReferReceived(CallEvent):
    """A REFER within the call the application may act on: `accept_refer` (202, then dial
    `target`) or `reject_refer(status)`. `referred_by`: the Referred-By to send (RFC 3892)."""

    __slots__ = ("target", "replaces", "referred_by", "source", "join")

    def __init__(self, call: "CallBase", target: str, replaces: "str | None",
                 referred_by: str, source: str, join: bool = False) -> None:
        CallEvent.__init__(self, call)
        self.join = join  # Refer-To with an explicit method=INVITE (see ReferTarget)
        self.target = target
        self.replaces = replaces
        self.referred_by = referred_by
        self.source = source


class ReferRefused(CallEvent):
    """A REFER the call layer refused by itself (`status` sent): malformed, not a SIP target,
    injected headers, wrong source, call not up."""

    __slots__ = ("refer_to", "status", "reason", "source")

    def __init__(self, call: "CallBase | None", refer_to: str, status: int, reason: str,
                 source: str) -> None:
        CallEvent.__init__(self, call)  # type: ignore[arg-type]  # None: outside a dialog
        self.refer_to = refer_to
        self.status = status
        self.reason = reason
        self.source = source

    def __repr__(self) -> str:
        return "<ReferRefused %s %d %s>" % (self.call.id if self.call else "-", self.status,
                                            self.reason)


def source_text(event: "RequestReceived") -> str:
    peer = event.source
    return "%s:%s:%s" % (peer.transport, peer.host, peer.port)


class Transferee(CallBase):
    """REFER handling of `Call` (see the module docstring)."""

    refer_state = NO_REFER
    _refer: "RequestReceived | None" = None  # the REFER waiting for the verdict
    _refer_seq = 0

    def _feed_refer(self, name: str, now: float, *args: object) -> None:
        row = cs.step(REFER_SUBSCRIPTION, self.refer_state, name, "call %s" % self.id,
                      REFER_COMMANDS)
        if row is None:
            return
        self.refer_state, action = row
        if action is not None:
            getattr(self, "_" + action)(now, *args)

    # -- application commands --------------------------------------------------------------
    def accept_refer(self, now: float) -> None:
        self._feed_refer(ACCEPT_REFER, now)

    def reject_refer(self, status: int, now: float) -> None:
        self._feed_refer(REJECT_REFER, now, status)

    def notify_refer(self, status: int, now: float, reason: "str | None" = None) -> None:
        """The new INVITE's progress (1xx) or outcome (>= 200, which ends the subscription)."""
        self._feed_refer(PROGRESS if status < 200 else FINAL, now, status, reason)

    # -- input -----------------------------------------------------------------------------
    def on_refer(self, event: "RequestReceived", now: float) -> None:
        """A REFER that matched this call's dialog (CSeq checked)."""
        request = event.request
        shown = (request.headers.get("Refer-To") or "")[:MAX_REFER_TO]
        dest = self.dest
        if dest is None or not event.source.same_address(dest) and not (
                event.source.reliable and event.source.transport == dest.transport and
                event.source.host == dest.host):
            self._refuse_refer(event, 403, "REFER not from the call's peer", shown, now)
            return
        if self.state != cs.ACTIVE:
            self._refuse_refer(event, 403, "REFER while the call is %s" % self.state, shown, now)
            return
        try:
            target = parse_refer_to(request.headers.get_all("Refer-To"))
        except ReferError as exc:
            self._refuse_refer(event, exc.status, exc.reason, shown, now)
            return
        referred_by = request.headers.get("Referred-By") or ""
        try:  # copied into our INVITE (RFC 3892 §3): only a well-formed, short name-addr
            valid = len(referred_by) <= MAX_REFER_TO and \
                NameAddress.parse(referred_by).uri is not None
        except ParseError:
            valid = False
        if not valid:
            referred_by = "<%s>" % (self.peer or "")
        self._feed_refer(REFER_RECEIVED, now, event, target, referred_by)

    # -- actions (REFER_SUBSCRIPTION) ------------------------------------------------------
    def _report_refer(self, now: float, event: "RequestReceived", target: "ReferTarget",
                      referred_by: str) -> None:
        self._refer = event
        self.manager.emit(ReferReceived(self, target.uri, target.replaces, referred_by,
                                        source_text(event), target.join))

    def _refuse_busy(self, now: float, event: "RequestReceived", target: "ReferTarget",
                     referred_by: str) -> None:
        self._refuse_refer(event, 403, "a transfer is already in progress", target.uri, now)

    def _refuse_refer(self, event: "RequestReceived", status: int, reason: str, shown: str,
                      now: float) -> None:
        self._reply(event, status, now)
        self.manager.emit(ReferRefused(self, shown, status, reason, source_text(event)))

    def _send_accepted(self, now: float) -> None:
        assert self._refer is not None  # REFER_PENDING holds it
        self._reply(self._refer, 202, now)
        self._refer = None
        self._send_notify(now, 100, None, "active;expires=60")

    def _send_refusal(self, now: float, status: int) -> None:
        assert self._refer is not None  # REFER_PENDING holds it
        self._reply(self._refer, status, now)
        self._refer = None

    def _send_final_notify(self, now: float, status: int, reason: "str | None") -> None:
        self._send_notify(now, status, reason, "terminated;reason=noresource")

    def _send_notify(self, now: float, status: int, reason: "str | None",
                     state: str = "active;expires=60") -> None:
        if self.dialog is None or self.dest is None or self.state == cs.ENDED:
            return
        request = self.dialog.create_request("NOTIFY")
        request.headers.set("Event", "refer")
        request.headers.set("Subscription-State", state)
        request.headers.set("Contact", "<%s>" % self.ua.contact_uri())
        request.headers.set("Content-Type", "message/sipfrag;version=2.0")
        request.body = sipfrag(status, reason)
        self.ua.send_request(request, self.dest, now, Reply(request))
