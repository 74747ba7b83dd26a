"""The states of a door call and of each INVITE it sends, and their transition tables.

One set of call-state constants for every layer (the SIP call, the controller, the web status).
As in transaction.py, a table maps (state, input) to (next state, action): the action names a
method `_<action>` of the owner (None: only the state changes). Each row cites the rule it
follows (RFC 3261 unless said otherwise).

An input a state has no row for is absorbed when it comes from the network or a timer (late and
duplicate messages are normal), but an application command without a row is a programming error:
`CallStateError` (as h11 raises on misuse), never a silent no-op.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    Table = dict[tuple[str, str], tuple[str, "str | None"]]

# -- call states (Call.state) ------------------------------------------------------------------

CALLING = "calling"  # outgoing, INVITE sent, no 18x yet
RINGING = "ringing"  # outgoing with a 18x, or incoming waiting for the application
ANSWERING = "answering"  # incoming, 2xx sent, waiting for the ACK (§13.3.1.4)
CLOSING = "closing"  # incoming, hung up while answering: the BYE waits for the ACK (§15)
ACTIVE = "active"  # the dialog is confirmed: media flows
ENDED = "ended"

CALL_STATES = (CALLING, RINGING, ANSWERING, CLOSING, ACTIVE, ENDED)

# -- call inputs -------------------------------------------------------------------------------
# application commands: no row means CallStateError
RING = "ring"
ANSWER = "answer"
REJECT = "reject"
HANGUP = "hangup"
REINVITE = "reinvite"
SEND_INFO = "send info"
# from the network
PROVISIONAL = "1xx"  # a branch rings (a 18x)
SUCCESS = "2xx"  # a branch was answered with a new dialog
ACK = "ACK"
CANCEL_RECEIVED = "CANCEL"
BYE_RECEIVED = "BYE"
DIALOG_GONE = "408/481 to re-INVITE"
REINVITE_TIMEOUT = "re-INVITE timeout"
# from the branches
NEXT_TARGET = "next target"  # sequential ringing: a branch failed or timed out, more to ring
ALL_FAILED = "every branch failed"
# timers
RING_TIMEOUT = "ring timeout"
TARGET_TIMEOUT = "last target timeout"  # sequential: the last target did not answer in time
ACK_TIMEOUT = "2xx not acknowledged"  # 64*T1 after our 2xx without its ACK
PRACK_TIMEOUT = "18x not PRACKed"  # RFC 3262 §3: 64*T1 after our reliable 18x
MAX_DURATION = "max duration"
SESSION_EXPIRED = "session expired"
REFRESH_DUE = "session refresh due"

CALL_COMMANDS = (RING, ANSWER, REJECT, HANGUP, REINVITE, SEND_INFO)

# An outgoing call (we are the UAC of the INVITE): §13.2 with forking (§13.2.2.4), §9.1 CANCEL,
# §15 BYE, RFC 4028 session timers.
UAC_CALL: "Table" = {
    # §13.2.2.1: a 1xx with a To tag is an early dialog; the call rings
    (CALLING, PROVISIONAL): (RINGING, "report_ringing"),
    (RINGING, PROVISIONAL): (RINGING, "report_ringing"),
    # §13.2.2.4: the first 2xx wins; the other branches get CANCEL (§9.1)
    (CALLING, SUCCESS): (ACTIVE, "establish"),
    (RINGING, SUCCESS): (ACTIVE, "establish"),
    # §13.2.2.3: a final failure ends the call once no branch is left to ring
    (CALLING, NEXT_TARGET): (CALLING, "ring_next"),
    (RINGING, NEXT_TARGET): (RINGING, "ring_next"),
    (CALLING, ALL_FAILED): (ENDED, "end_failed"),
    (RINGING, ALL_FAILED): (ENDED, "end_failed"),
    # §9.1: a local hang-up before the answer CANCELs every branch
    (CALLING, HANGUP): (ENDED, "cancel_branches"),
    (RINGING, HANGUP): (ENDED, "cancel_branches"),
    (CALLING, RING_TIMEOUT): (ENDED, "give_up_ringing"),
    (RINGING, RING_TIMEOUT): (ENDED, "give_up_ringing"),
    (CALLING, TARGET_TIMEOUT): (ENDED, "end_no_answer"),
    (RINGING, TARGET_TIMEOUT): (ENDED, "end_no_answer"),
    # §15: BYE both ways on a confirmed dialog
    (ACTIVE, HANGUP): (ENDED, "send_bye"),
    (ACTIVE, BYE_RECEIVED): (ENDED, "end_remote_hangup"),
    (ACTIVE, MAX_DURATION): (ENDED, "send_bye"),
    # RFC 4028 §10: the refresher refreshes at half time; the other side BYEs at expiry
    (ACTIVE, REFRESH_DUE): (ACTIVE, "refresh_session"),
    (ACTIVE, SESSION_EXPIRED): (ENDED, "send_bye"),
    # §14.1, §12.2.1.2: a re-INVITE answered 408/481 means the dialog is gone; a timeout BYEs
    (ACTIVE, REINVITE): (ACTIVE, "send_reinvite"),
    (ACTIVE, SEND_INFO): (ACTIVE, "send_info_request"),
    (ACTIVE, DIALOG_GONE): (ENDED, "end_dialog_gone"),
    (ACTIVE, REINVITE_TIMEOUT): (ENDED, "send_bye"),
}

# An incoming call (we are the UAS of the INVITE): §13.3, §9.2 CANCEL, §15 BYE, RFC 6026 (the 2xx
# is ours to retransmit until its ACK), RFC 4028 session timers.
UAS_CALL: "Table" = {
    # §13.3.1.1: the application may ring (180), answer (2xx, §13.3.1.4) or reject (§13.3.1.3)
    (RINGING, RING): (RINGING, "send_ringing"),
    (RINGING, ANSWER): (ANSWERING, "send_answer"),
    (RINGING, REJECT): (ENDED, "send_rejection"),
    (RINGING, HANGUP): (ENDED, "send_unavailable"),
    (RINGING, RING_TIMEOUT): (ENDED, "send_no_answer"),
    # RFC 3262 §3: a reliable 18x not PRACKed within 64*T1: the INVITE gets a 5xx
    (RINGING, PRACK_TIMEOUT): (ENDED, "send_not_acknowledged"),
    # §9.2: a CANCEL before the final response ends the INVITE with 487
    (RINGING, CANCEL_RECEIVED): (ENDED, "send_terminated"),
    # §15.1.2: a BYE on the early dialog ends it; the INVITE gets 487
    (RINGING, BYE_RECEIVED): (ENDED, "end_bye_before_answer"),
    # §13.3.1.4: the ACK confirms the dialog; RFC 6026 §8.7: without it, BYE after 64*T1
    (ANSWERING, ACK): (ACTIVE, "report_established"),
    (ANSWERING, ACK_TIMEOUT): (ENDED, "send_bye"),
    (ANSWERING, BYE_RECEIVED): (ENDED, "end_remote_hangup"),
    (ANSWERING, MAX_DURATION): (ENDED, "send_bye"),
    # §15: the callee MUST NOT send a BYE before the ACK to its 2xx (or its give-up)
    (ANSWERING, HANGUP): (CLOSING, None),
    (CLOSING, HANGUP): (CLOSING, None),
    (CLOSING, ACK): (ENDED, "send_bye"),
    (CLOSING, ACK_TIMEOUT): (ENDED, "send_bye"),
    (CLOSING, BYE_RECEIVED): (ENDED, "end_remote_hangup"),
    (CLOSING, MAX_DURATION): (ENDED, "send_bye"),
    # §15: BYE both ways on a confirmed dialog
    (ACTIVE, HANGUP): (ENDED, "send_bye"),
    (ACTIVE, BYE_RECEIVED): (ENDED, "end_remote_hangup"),
    (ACTIVE, MAX_DURATION): (ENDED, "send_bye"),
    # (a session timer cannot expire while answering: 64*T1 < Min-SE * 2/3)
    # §14.2: the 2xx to a re-INVITE is retransmitted too; never ACKed, the dialog is BYEd
    (ACTIVE, ACK_TIMEOUT): (ENDED, "send_bye"),
    # RFC 4028 §10
    (ACTIVE, REFRESH_DUE): (ACTIVE, "refresh_session"),
    (ACTIVE, SESSION_EXPIRED): (ENDED, "send_bye"),
    # §14.1, §12.2.1.2
    (ACTIVE, REINVITE): (ACTIVE, "send_reinvite"),
    (ACTIVE, SEND_INFO): (ACTIVE, "send_info_request"),
    (ACTIVE, DIALOG_GONE): (ENDED, "end_dialog_gone"),
    (ACTIVE, REINVITE_TIMEOUT): (ENDED, "send_bye"),
}

# -- offers received within the dialog (Call.offer_state) -------------------------------------
NO_OFFER = "no offer"
OFFER_RECEIVED = "offer received"  # a re-INVITE waits for the application's answer

REOFFER = "re-INVITE"
UPDATE_OFFER = "UPDATE with SDP"  # RFC 3311
ACCEPT_OFFER = "accept offer"
REJECT_OFFER = "reject offer"

OFFER_COMMANDS = (ACCEPT_OFFER, REJECT_OFFER)

OFFER: "Table" = {
    # §14.2: a re-INVITE carries a new offer (or none: a session refresh, RFC 4028 §7.1)
    (NO_OFFER, REOFFER): (OFFER_RECEIVED, "take_offer"),
    # §14.2: one offer at a time, a second re-INVITE meanwhile gets 491
    (OFFER_RECEIVED, REOFFER): (OFFER_RECEIVED, "send_request_pending"),
    # RFC 3311 §5.2: an UPDATE may carry an offer within the dialog (early or confirmed); its
    # answer goes in the UPDATE's 2xx; 491 while an offer is pending, 500 before our first
    # answer (both as for a re-INVITE)
    (NO_OFFER, UPDATE_OFFER): (OFFER_RECEIVED, "take_offer"),
    (OFFER_RECEIVED, UPDATE_OFFER): (OFFER_RECEIVED, "send_request_pending"),
    # §14.2, RFC 3264 §5: the answer goes in the 2xx; a refused offer leaves the session as it was
    (OFFER_RECEIVED, ACCEPT_OFFER): (NO_OFFER, "send_offer_answer"),
    (OFFER_RECEIVED, REJECT_OFFER): (NO_OFFER, "send_offer_rejection"),
}

# -- delayed offer in our direction ([calls] delayed_offer): one per early dialog ------------
# Our INVITE carries no SDP (RFC 3261 §13.2.1, RFC 3264 §4): the offer comes in the first
# reliable non-failure response, a reliable 18x (RFC 3262 §5: the answer goes in its PRACK) or
# the 2xx (the answer goes in the ACK). The application writes the answer (`send_answer`); the
# PRACK or ACK waits for it. State of a dialog of a Branch (`Branch.offers[to tag]`).
AWAITING_OFFER = "awaiting offer"  # INVITE without SDP, no offer seen on this dialog yet
EARLY_OFFER = "offer in reliable 18x"  # its PRACK waits for our answer
EARLY_OFFER_2XX = "offer in 18x, 2xx came"  # the PRACK and the ACK wait for our answer
FINAL_OFFER = "offer in 2xx"  # the ACK waits for our answer
OFFER_ANSWERED = "answered"  # offer/answer complete: later SDP only repeats it

RELIABLE_OFFER = "reliable 18x with SDP"
RELIABLE_NO_OFFER = "reliable 18x without SDP"
SUCCESS_OFFER = "2xx with SDP"
SUCCESS_NO_OFFER = "2xx without SDP"
GIVE_ANSWER = "answer written"  # the application's answer (None: none possible)

# Not an input of this table: SDP in an UNRELIABLE 18x. RFC 3261 §13.2.1 allows the offer only
# in a reliable non-failure response, so such a body is no offer; the dialog stays
# AWAITING_OFFER and no early media plays until the reliable 18x or the 2xx brings the offer.
DELAYED_OFFER: "Table" = {
    # RFC 3262 §5: the first reliable 18x with SDP carries the offer; our answer goes in its
    # PRACK (held until the application wrote it)
    (AWAITING_OFFER, RELIABLE_OFFER): (EARLY_OFFER, "hold_prack"),
    # RFC 3262 §4: a reliable 18x without SDP is PRACKed at once; the offer comes later
    (AWAITING_OFFER, RELIABLE_NO_OFFER): (AWAITING_OFFER, "send_prack"),
    # RFC 3264 §4 / RFC 3261 §13.2.1: after the answer, SDP in a later 18x or in the 2xx
    # repeats the offer (no new offer may come before the 2xx): PRACK / ACK without a body
    (OFFER_ANSWERED, RELIABLE_OFFER): (OFFER_ANSWERED, "send_prack"),
    (OFFER_ANSWERED, RELIABLE_NO_OFFER): (OFFER_ANSWERED, "send_prack"),
    (OFFER_ANSWERED, SUCCESS_OFFER): (OFFER_ANSWERED, "send_ack"),
    (OFFER_ANSWERED, SUCCESS_NO_OFFER): (OFFER_ANSWERED, "send_ack"),
    (EARLY_OFFER, RELIABLE_OFFER): (EARLY_OFFER, "send_prack"),
    (EARLY_OFFER, RELIABLE_NO_OFFER): (EARLY_OFFER, "send_prack"),
    (EARLY_OFFER, GIVE_ANSWER): (OFFER_ANSWERED, "send_prack_answer"),
    # RFC 3262 §3 lets the 2xx overtake our PRACK: the ACK waits for the PRACK's answer too
    (EARLY_OFFER, SUCCESS_OFFER): (EARLY_OFFER_2XX, "hold_ack"),
    (EARLY_OFFER, SUCCESS_NO_OFFER): (EARLY_OFFER_2XX, "hold_ack"),
    (EARLY_OFFER_2XX, GIVE_ANSWER): (OFFER_ANSWERED, "send_prack_answer_and_ack"),
    # §13.2.1: no offer before the 2xx: the 2xx carries it; the answer goes in the ACK
    # (§13.2.2.4: "the ACK MUST carry an answer in its body"; an unacceptable offer gets a
    # valid answer that refuses every stream, and the call is then ended with BYE)
    (AWAITING_OFFER, SUCCESS_OFFER): (FINAL_OFFER, "hold_ack"),
    (FINAL_OFFER, GIVE_ANSWER): (OFFER_ANSWERED, "send_ack_answer"),
    # §13.2.1 violated (a 2xx without the offer): ACKed as it must be (§13.2.2.4); the
    # application finds no description and ends the call with BYE
    (AWAITING_OFFER, SUCCESS_NO_OFFER): (OFFER_ANSWERED, "send_ack"),
}

# -- branch states (Branch.state): one INVITE of an outgoing call -----------------------------
INVITING = "inviting"  # INVITE sent, no provisional response yet: no CANCEL allowed (§9.1)
EARLY = "early"  # a 1xx came: the branch may be CANCELled
CANCEL_PENDING = "cancel pending"  # given up before any 1xx: CANCEL at the first one (§9.1)
CANCELLING = "cancelling"  # given up and CANCEL sent: a 487 (or a racing 2xx) follows
ANSWERED = "answered"  # a 2xx came while the call wanted it
LATE = "answered late"  # a 2xx came after the branch was given up: ACK and BYE (§13.2.2.4)
FAILED = "failed"  # a final failure, a timeout or a refused redirect

BRANCH_STATES = (INVITING, EARLY, CANCEL_PENDING, CANCELLING, ANSWERED, LATE, FAILED)
BRANCH_LIVE = (INVITING, EARLY)  # the call still waits for this branch

# branch inputs (PROVISIONAL and SUCCESS as above)
CHALLENGE = "401/407 answerable"
REDIRECT = "3xx followed"
REDIRECT_REFUSED = "3xx refused"
FAILURE = "300-699"
# Timer B, a transport error or no room for the transaction: all only before a provisional
# response (§17.1.1.2: a Proceeding INVITE client has neither Timer B nor transport errors)
TIMEOUT = "no final response"
CANCEL = "cancel"

BRANCH: "Table" = {
    # §13.2.2.1: provisional responses; the call rings
    (INVITING, PROVISIONAL): (EARLY, "report_ringing"),
    (EARLY, PROVISIONAL): (EARLY, "report_ringing"),
    # §13.2.2.4: a 2xx is ACKed by the call; RFC 6026 §8.4: every 2xx (retransmitted, forked)
    (INVITING, SUCCESS): (ANSWERED, "report_answer"),
    (EARLY, SUCCESS): (ANSWERED, "report_answer"),
    (ANSWERED, SUCCESS): (ANSWERED, "report_answer"),
    # §9.1 and §15: the CANCEL lost the race with a 2xx: ACK it, then BYE
    (CANCEL_PENDING, SUCCESS): (LATE, "report_answer"),
    (CANCELLING, SUCCESS): (LATE, "report_answer"),
    (LATE, SUCCESS): (LATE, "report_answer"),
    (FAILED, SUCCESS): (FAILED, "report_answer"),
    # §22.2: answer a challenge once per nonce (again only when stale), with a new CSeq
    (INVITING, CHALLENGE): (INVITING, "answer_challenge"),
    (EARLY, CHALLENGE): (INVITING, "answer_challenge"),
    # §8.1.3.4: a redirect is followed only to a configured target; otherwise the branch fails
    (INVITING, REDIRECT): (INVITING, "follow_redirect"),
    (EARLY, REDIRECT): (INVITING, "follow_redirect"),
    (INVITING, REDIRECT_REFUSED): (FAILED, "refuse_redirect"),
    (EARLY, REDIRECT_REFUSED): (FAILED, "refuse_redirect"),
    # §13.2.2.3: a final failure; §17.1.1.2 Timer B: no final response is a 408
    (INVITING, FAILURE): (FAILED, "report_failure"),
    (EARLY, FAILURE): (FAILED, "report_failure"),
    (INVITING, TIMEOUT): (FAILED, "report_timeout"),
    # §9.1: no CANCEL before a provisional response; then as soon as one comes
    (INVITING, CANCEL): (CANCEL_PENDING, None),
    (EARLY, CANCEL): (CANCELLING, "send_cancel"),
    (CANCEL_PENDING, PROVISIONAL): (CANCELLING, "send_cancel"),
    # §9.1: the INVITE's final response after a CANCEL (487) ends a given-up branch quietly;
    # a given-up branch answers no challenge and follows no redirect (its 401/3xx is a FAILURE)
    (CANCEL_PENDING, FAILURE): (FAILED, None),
    (CANCEL_PENDING, TIMEOUT): (FAILED, None),
    (CANCELLING, FAILURE): (FAILED, None),
}


class CallStateError(Exception):
    """An application command the call's state has no transition for (e.g. `answer` twice,
    `hangup` on an ended call)."""

    def __init__(self, what: str, command: str, state: str) -> None:
        super().__init__("%s: cannot %s in state %r" % (what, command, state))
        self.command = command
        self.state = state


def step(table: "Table", state: str, name: str, what: str,
         commands: "tuple[str, ...]") -> "tuple[str, str | None] | None":
    """The (next state, action) row for `name` in `state`; None when the input is absorbed;
    CallStateError when `name` is one of `commands` (the application's) and has no row."""
    row = table.get((state, name))
    if row is None and name in commands:
        raise CallStateError(what, name, state)
    return row
