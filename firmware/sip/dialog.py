"""Dialogs (RFC 3261 §12), sans-I/O.

A dialog is the peer-to-peer relationship an INVITE creates: Call-ID, local and remote tags, the
local and remote CSeq, the remote target (from Contact) and the route set (from Record-Route).
- §12.1.1 UAS side: route set in Record-Route order, remote CSeq from the request;
- §12.1.2 UAC side: route set in reverse Record-Route order, from a 18x or 2xx with a To tag;
- §12.2.1.1 requests within the dialog (loose routing, RFC 3261 §16.12; strict routers get the
  §12.2.1.1 rewrite);
- §12.2.2 in-order checks of requests received within the dialog; target refresh on re-INVITE.
"""

from firmware.sip.message import NameAddress, Request

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sip.message import Response
    from firmware.sip.uri import URI

EARLY = "early"
CONFIRMED = "confirmed"
TERMINATED = "terminated"


def _contact_uri(message: "Response | Request") -> str | None:
    """The first Contact's URI; None without one, and for `Contact: *` (which has none)."""
    contact = message.contact_address()
    uri = None if contact is None else contact.uri
    return None if uri is None else str(uri)


def _from_uri(request: "Request") -> str | None:
    uri = request.from_address().uri
    return None if uri is None else str(uri)


class Dialog:
    def __init__(self, call_id: str, local_tag: str | None, remote_tag: str | None,
                 local_uri: str, remote_uri: str, remote_target: "str | URI | None",
                 route_set: list[str], local_seq: int,
                 remote_seq: int | None, secure: bool, state: str) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri  # the From/To value of our side, without tag
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.secure = secure
        self.state = state

    @property
    def id(self) -> tuple[str, str | None, str | None]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uac(cls, request: "Request", response: "Response") -> "Dialog":
        """§12.1.2: from our request and a 1xx/2xx response that carries a To tag."""
        to = response.to_address()
        frm = request.from_address()
        routes = list(reversed(response.headers.get_all("Record-Route")))
        state = CONFIRMED if 200 <= response.status < 300 else EARLY
        return cls(
            call_id=request.headers.get("Call-ID"), local_tag=frm.tag, remote_tag=to.tag,
            local_uri=_without_tag(frm), remote_uri=_without_tag(request.to_address()),
            remote_target=_contact_uri(response) or request.uri, route_set=routes,
            local_seq=request.cseq().seq, remote_seq=None,
            secure=str(request.uri).startswith("sips:"), state=state)

    @classmethod
    def as_uas(cls, request: "Request", local_tag: str, state: str = EARLY) -> "Dialog":
        """§12.1.1: from a dialog-creating request we answer with `local_tag`."""
        frm = request.from_address()
        return cls(
            call_id=request.headers.get("Call-ID"), local_tag=local_tag, remote_tag=frm.tag,
            local_uri=_without_tag(request.to_address()), remote_uri=_without_tag(frm),
            # An INVITE MUST carry a Contact (§8.1.1.8); an RFC 2543 caller may not (RFC 4475
            # §3.3.15), and was reached at its From address then.
            remote_target=_contact_uri(request) or _from_uri(request),
            route_set=request.headers.get_all("Record-Route"),
            local_seq=0, remote_seq=request.cseq().seq,
            secure=request.uri.scheme == "sips", state=state)

    def confirm(self, response: "Response | None" = None) -> None:
        """A 2xx confirms the dialog; the UAC takes the remote target and route set from it."""
        self.state = CONFIRMED
        if response is not None:
            self.route_set = list(reversed(response.headers.get_all("Record-Route")))
            target = _contact_uri(response)
            if target:
                self.remote_target = target

    def create_request(self, method: str, cseq: int | None = None) -> "Request":
        """§12.2.1.1. ACK and CANCEL pass the INVITE's `cseq`; others take the next number."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        routes = list(self.route_set)
        uri = self.remote_target
        if routes and ";lr" not in routes[0]:
            # Strict router (§12.2.1.1): its URI becomes the Request-URI, the target goes last.
            uri = str(NameAddress.parse(routes[0]).uri)
            routes = routes[1:] + ["<%s>" % self.remote_target]
        request = Request(method, uri)  # type: ignore[arg-type]  # None only for From: *
        request.headers.set("From", "%s;tag=%s" % (self.local_uri, self.local_tag))
        to = self.remote_uri
        if self.remote_tag:
            to += ";tag=%s" % self.remote_tag
        request.headers.set("To", to)
        request.headers.set("Call-ID", self.call_id)
        request.headers.set("CSeq", "%d %s" % (cseq, method))
        for route in routes:
            request.headers.add("Route", route)
        return request

    def next_hop_uri(self) -> "str | URI | None":
        """The URI whose host and port the request goes to first (§8.1.2)."""
        if self.route_set:
            return str(NameAddress.parse(self.route_set[0]).uri)
        return self.remote_target

    def accepts(self, request: "Request") -> bool:
        """§12.2.2: False when the CSeq is out of order (the caller answers 500)."""
        seq = request.cseq().seq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        if request.method in ("INVITE", "UPDATE"):
            target = _contact_uri(request)
            if target:
                self.remote_target = target  # target refresh (§12.2.2)
        return True


def _without_tag(address: "NameAddress") -> str:
    """The From/To value of a dialog's side: `address` (a parsed NameAddress, left unchanged)
    without its tag."""
    if "tag" not in address.params:  # (an INVITE's To) no copy needed
        return str(address)
    copy = NameAddress(address.uri, address.display_name, address.params)
    copy.params.pop("tag", None)
    return str(copy)


def dialog_key(message: "Request | Response",
               local_is_from: bool) -> tuple[str, str | None, str | None]:
    """(Call-ID, local tag, remote tag) of a message, seen from our side."""
    frm = message.from_address().tag
    to = message.to_address().tag
    call_id = message.headers.get("Call-ID")
    return (call_id, frm, to) if local_is_from else (call_id, to, frm)
