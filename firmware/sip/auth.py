"""The station's one digest answerer (RFC 3261 §22.2, RFC 7616 §3.4), shared by REGISTER,
INVITE and BYE.

`Credentials(username, password, random)`: `answer(challenge, method, uri)` returns the
Authorization / Proxy-Authorization value. The nonce count goes up for every answer to the same
nonce (RFC 7616 §3.4: a server may refuse a count it has seen), whichever request it is for; the
cnonce comes from the injected `random(n)` (tests pass a deterministic one).
`challenge_in(response)` picks the strongest supported challenge of a 401/407 as
(answer header name, Challenge), or None. `retry_in_dialog(response, tries)` is the one rule
for a challenged request within a dialog (BYE, PRACK): which challenge to answer, or None.
"""

import os

from firmware.sip import digest
from firmware.sip.errors import ParseError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable

    from firmware.sip.digest import Challenge
    from firmware.sip.message import Response

    Random = Callable[[int], bytes]  # os.urandom, or a test's deterministic stand-in

MAX_NONCES = 16  # nonce counters remembered (oldest forgotten first)
MAX_TRIES = 2  # per request: one answer, and one more only for stale=true (RFC 3261 §22.2)


def challenge_in(response: "Response") -> "tuple[str, Challenge] | None":
    """(answer header name, Challenge) for a 401 or 407, or None when it has no challenge we
    support."""
    if response.status == 401:
        name, answer_name = "WWW-Authenticate", "Authorization"
    elif response.status == 407:
        name, answer_name = "Proxy-Authenticate", "Proxy-Authorization"
    else:
        return None
    try:
        challenge = digest.choose_challenge(
            digest.parse_challenges(response.headers.get_all(name)))
    except ParseError:
        return None
    if challenge is None:
        return None
    return answer_name, challenge


def retry_in_dialog(response: "Response", tries: int) -> "tuple[str, Challenge] | None":
    """RFC 3261 §22.2 (§22.1: a request within a dialog may be challenged like any other; RFC
    3262 §7.2: a PRACK is one): answer a 401/407 once, and once more only when the second
    challenge says stale=true (RFC 7616 §3.3: a PBX that rotated its nonce meanwhile), so at
    most MAX_TRIES answers; `tries`: the answers already sent for this request. None: give up
    (another challenge means the password is wrong; retrying would only loop)."""
    found = challenge_in(response)
    if found is None or tries >= MAX_TRIES or (tries and not found[1].stale):
        return None
    return found


class Credentials:
    """One username and password, answering challenges with counted nonces."""

    def __init__(self, username: str, password: str,
                 random: "Random" = os.urandom) -> None:
        self.username = username
        self.password = password
        self._random = random
        self._counts: list[tuple[tuple[str, str], int]] = []  # [(realm, nonce), nc], oldest first

    def answer(self, challenge: "Challenge", method: str, uri: object,
               body: bytes = b"") -> str:
        key = (challenge.realm, challenge.nonce)
        count = 0
        for index, (seen, used) in enumerate(self._counts):
            if seen == key:
                count = used
                self._counts.pop(index)
                break
        count += 1
        self._counts = (self._counts + [(key, count)])[-MAX_NONCES:]
        return digest.authorization_header(
            challenge, method, str(uri), self.username, self.password,
            self._random(8).hex(), count, body)

    def count_for(self, challenge: "Challenge") -> int:
        """How many answers went to this challenge's nonce so far."""
        key = (challenge.realm, challenge.nonce)
        for seen, used in self._counts:
            if seen == key:
                return used
        return 0
