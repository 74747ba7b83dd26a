"""How the answer to a request we sent finds its owner: the one callback in firmware/sip.

Everything else travels upward as events that carry their context, drained with `next_event()`:
the endpoint's to the user agent, the registration's and the call layer's (each naming its call)
through the user agent to the runtime. A response, though, belongs to whoever sent the request,
so each request sent with `UserAgent.send_request(request, dest, now, reply)` carries a `Reply`:
the endpoint keeps it with the client transaction, and the user agent hands it every response
(`on_response(response, now)`) or the failure (`on_failure(reason, now)`, reason "timeout",
"transport" or "overload"). The owner (the registration, a Branch, a Call) names one handler per
kind of request when it sends it, so no handler branches on what the request was; a handler is
called as `handler(reply, response_or_reason, now)`, and None means the answer is not needed.
"""


TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable

    from firmware.sip.dialog import Dialog
    from firmware.sip.endpoint import Peer
    from firmware.sip.message import Request, Response

    ResponseHandler = Callable[["Reply", Response, float], None]
    FailureHandler = Callable[["Reply", str, float], None]


class Reply:
    """The context of one request we sent. `dialog` and `dest` say where an in-dialog request
    went (a BYE retried with credentials goes to the same dialog and hop); `tries`: how many
    challenges were answered on the way to this request (bounds the retries)."""

    __slots__ = ("request", "handle_response", "handle_failure", "dialog", "dest", "tries")

    def __init__(self, request: "Request", on_response: "ResponseHandler | None" = None,
                 on_failure: "FailureHandler | None" = None, dialog: "Dialog | None" = None,
                 dest: "Peer | None" = None, tries: int = 0) -> None:
        self.request = request
        self.handle_response = on_response
        self.handle_failure = on_failure
        self.dialog = dialog
        self.dest = dest
        self.tries = tries

    def on_response(self, response: "Response", now: float) -> None:
        if self.handle_response is not None:
            self.handle_response(self, response, now)

    def on_failure(self, reason: str, now: float) -> None:
        if self.handle_failure is not None:
            self.handle_failure(self, reason, now)

    def __repr__(self) -> str:
        return "<Reply %s>" % self.request.method
