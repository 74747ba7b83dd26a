"""The station's one digest answerer (firmware/sip/auth.py), alone and as REGISTER, INVITE and
BYE use it: nonce counts shared per nonce (RFC 7616 §3.4), cnonce from the injected random."""

from firmware.sip import auth, digest
from firmware.sip import registration as reg
from firmware.sip.message import parse
from tests.sip.test_call import (
    FLAT1,
    Network,
    Phone,
    Station,
    contact,
)

CHALLENGE = 'Digest realm="example.org", nonce="n1", qop="auth"'


class Counter:
    """A deterministic `random(n)`: 0x01 0x02 ... so every cnonce is predictable."""

    def __init__(self):
        self.next = 0

    def __call__(self, n):
        out = bytes((self.next + i + 1) % 256 for i in range(n))
        self.next += n
        return out


def fields_of(value):
    parts = dict(part.strip().split("=", 1) for part in value[len("Digest "):].split(","))
    return {name: text.strip('"') for name, text in parts.items()}


def test_nonce_count_rises_per_nonce_and_cnonce_is_the_injected_random():
    credentials = auth.Credentials("door", "secret", Counter())
    challenge = digest.Challenge.parse(CHALLENGE)
    other = digest.Challenge.parse(CHALLENGE.replace("n1", "n2"))
    first = fields_of(credentials.answer(challenge, "INVITE", "sip:flat@example.org"))
    second = fields_of(credentials.answer(challenge, "BYE", "sip:flat@example.org"))
    fresh = fields_of(credentials.answer(other, "BYE", "sip:flat@example.org"))
    assert (first["nc"], second["nc"], fresh["nc"]) == ("00000001", "00000002", "00000001")
    assert first["cnonce"] == bytes(range(1, 9)).hex()
    assert second["cnonce"] == bytes(range(9, 17)).hex()
    assert credentials.count_for(challenge) == 2
    assert first["response"] == digest.compute_response(
        "MD5", "door", "example.org", "secret", "INVITE", "sip:flat@example.org", "n1",
        first["nc"], first["cnonce"], "auth")


def test_nonce_counts_are_bounded():
    credentials = auth.Credentials("door", "secret", Counter())
    for index in range(auth.MAX_NONCES + 5):
        credentials.answer(digest.Challenge.parse(CHALLENGE.replace("n1", "x%d" % index)),
                           "REGISTER", "sip:example.org")
    assert len(credentials._counts) == auth.MAX_NONCES
    assert credentials.count_for(digest.Challenge.parse(CHALLENGE.replace("n1", "x0"))) == 0


def test_no_supported_challenge():
    response = parse(b"SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\n"
                     b"Content-Length: 0\r\n\r\n")
    assert auth.challenge_in(response) is None
    assert auth.challenge_in(parse(b"SIP/2.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n")) \
        is None


def test_registration_counts_on_the_shared_answerer():
    credentials = auth.Credentials("door", "secret", Counter())
    challenge = digest.Challenge.parse(CHALLENGE)
    credentials.answer(challenge, "INVITE", "sip:flat@example.org")  # a call used nonce n1
    registration = reg.Registration("sip:door@example.org", "sip:example.org",
                                    "sip:door@127.0.0.1:5060", "door", "secret",
                                    random=Counter(), credentials=credentials)
    registration.start(0.0)
    (first,) = registration.requests_to_send()
    response = first.make_response(401)
    response.headers.set("WWW-Authenticate", CHALLENGE)
    registration.on_response(response, 0.1)
    (retry,) = registration.requests_to_send()
    assert fields_of(retry.headers.get("Authorization"))["nc"] == "00000002"


def test_invite_and_bye_challenges_share_the_uas_nonce_count_and_the_injected_random():
    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    door.ua.credentials = auth.Credentials("door", "secret", Counter())
    call = door.call(FLAT1)
    net.run()
    invite = phone.take("INVITE")
    phone.reply(invite, 407, "Proxy Authentication Required",
                extra=("Proxy-Authenticate: " + CHALLENGE,))
    retry = phone.take("INVITE")
    on_invite = fields_of(retry.headers.get("Proxy-Authorization"))
    assert (on_invite["nc"], on_invite["cnonce"]) == ("00000001", bytes(range(1, 9)).hex())
    phone.reply(retry, 200, extra=(contact(FLAT1),), body=b"")
    door.act(call.hangup)
    net.run()
    bye = phone.take("BYE")
    phone.reply(bye, 407, "Proxy Authentication Required",
                extra=("Proxy-Authenticate: " + CHALLENGE,))
    on_bye = fields_of(phone.take("BYE").headers.get("Proxy-Authorization"))
    # the same nonce answered a second time: nc 2 (it was always 1), cnonce from `random`
    assert (on_bye["nc"], on_bye["cnonce"]) == ("00000002", bytes(range(9, 17)).hex())
