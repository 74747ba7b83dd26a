"""The registration state machine, driven with a fake clock and hand-written responses."""

import hashlib
import random as pyrandom

import pytest

from firmware.sip import digest
from firmware.sip import registration as reg
from firmware.sip.message import Request, parse

AOR = "sip:door@example.org"
REGISTRAR = "sip:127.0.0.1:15060;transport=tcp"
CONTACT = "sip:door@127.0.0.1:5070;transport=tcp"
USER, PASSWORD = "door", "secret"
CHALLENGE = 'Digest realm="example.org", nonce="n0nce1", qop="auth", opaque="op4que"'


class FillRandom:
    """random(n) -> n copies of one byte: 0x00 gives the shortest jitter, 0xff the longest."""

    def __init__(self, fill=0x5A):
        self.fill = fill

    def __call__(self, n):
        return bytes([self.fill]) * n


def make(fill=0x5A, expires=3600, random=None):
    return reg.Registration(AOR, REGISTRAR, CONTACT, USER, PASSWORD, expires=expires,
                            random=random or FillRandom(fill))


def only_request(registration):
    requests = registration.requests_to_send()
    assert len(requests) == 1, requests
    assert isinstance(requests[0], Request)
    return requests[0]


def events(registration):
    found = []
    while True:
        event = registration.next_event()
        if event is None:
            return found
        found.append((event.state, event.error))


def respond(request, status, reason, *extra):
    """A response to `request` as a registrar would write it, parsed from text."""
    lines = [f"SIP/2.0 {status} {reason}",
             "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKtest",
             f"From: {request.headers.get('From')}",
             f"To: {request.headers.get('To')};tag=registrar",
             f"Call-ID: {request.headers.get('Call-ID')}",
             f"CSeq: {request.headers.get('CSeq')}"]
    lines += list(extra)
    lines.append("Content-Length: 0")
    return parse(("\r\n".join(lines) + "\r\n\r\n").encode())


def ok(request, expires=3600):
    return respond(request, 200, "OK", f"Contact: <{CONTACT}>;expires={expires}")


def hex_of(name, text):
    return getattr(hashlib, name)(text.encode()).digest().hex()  # MicroPython: no new()/hexdigest()


def credentials(request, header="Authorization"):
    values = request.headers.get_all(header)
    assert len(values) == 1, values
    return digest.parse_challenges(values)[0].params


def expected_response(fields, method="REGISTER", password=PASSWORD, hash_name="md5"):
    """RFC 7616 §3.4.1 written out independently of firmware.sip.digest."""
    ha1 = hex_of(hash_name, f"{fields['username']}:{fields['realm']}:{password}")
    ha2 = hex_of(hash_name, f"{method}:{fields['uri']}")
    return hex_of(hash_name, f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:"
                             f"{fields['qop']}:{ha2}")


def register(registration, now=0.0, expires=3600):
    """start, 401, answer, 200: returns the accepted request."""
    registration.start(now)
    first = only_request(registration)
    registration.on_response(respond(first, 401, "Unauthorized",
                                     f"WWW-Authenticate: {CHALLENGE}"), now + 0.01)
    answer = only_request(registration)
    registration.on_response(ok(answer, expires), now + 0.02)
    assert registration.state == reg.STATE_REGISTERED
    return answer


def test_first_register():
    registration = make()
    assert registration.state == reg.STATE_DISABLED
    registration.start(100.0)
    request = only_request(registration)
    assert request.method == "REGISTER"
    assert str(request.uri) == REGISTRAR
    headers = request.headers
    assert "Via" not in headers and "Authorization" not in headers
    assert headers.get("From").startswith(f"<{AOR}>;tag=")
    assert headers.get("To") == f"<{AOR}>"
    assert headers.get("Call-ID")
    assert headers.get("CSeq") == "1 REGISTER"
    assert headers.get("Contact") == f"<{CONTACT}>"
    assert headers.get("Expires") == "3600"
    assert registration.state == reg.STATE_UNREGISTERED
    assert events(registration) == [(reg.STATE_UNREGISTERED, None)]
    assert registration.next_refresh is None
    assert registration.get_timer() == 100.0 + reg.TRANSACTION_GUARD
    registration.start(101.0)
    assert registration.requests_to_send() == []


def test_401_answered_with_correct_digest():
    registration = make()
    registration.start(0.0)
    first = only_request(registration)
    registration.on_response(respond(first, 401, "Unauthorized",
                                     f"WWW-Authenticate: {CHALLENGE}"), 0.1)
    answer = only_request(registration)
    assert answer.headers.get("Call-ID") == first.headers.get("Call-ID")
    assert answer.headers.get("CSeq") == "2 REGISTER"
    fields = credentials(answer)
    assert fields["username"] == USER
    assert fields["realm"] == "example.org"
    assert fields["nonce"] == "n0nce1"
    assert fields["uri"] == REGISTRAR
    assert fields["qop"] == "auth"
    assert fields["nc"] == "00000001"
    assert fields["opaque"] == "op4que"
    assert fields["algorithm"] == "MD5"
    assert fields["cnonce"]
    assert fields["response"] == expected_response(fields)
    assert registration.state == reg.STATE_UNREGISTERED
    assert registration.error is None


@pytest.mark.parametrize("granted, refresh_after", [(3600, 3600 - reg.REFRESH_MARGIN),
                                                    (120, 60.0), (60, 30.0)])
def test_200_schedules_refresh_from_granted_expires(granted, refresh_after):
    registration = make()
    registration.start(10.0)
    first = only_request(registration)
    events(registration)
    registration.on_response(ok(first, granted), 10.5)
    assert registration.state == reg.STATE_REGISTERED
    assert registration.error is None
    assert registration.expires == granted
    assert registration.next_refresh == pytest.approx(10.0 + refresh_after)
    assert registration.get_timer() == registration.next_refresh
    assert events(registration) == [(reg.STATE_REGISTERED, None)]
    registration.handle_timer(registration.next_refresh - 0.1)
    assert registration.requests_to_send() == []
    registration.handle_timer(registration.next_refresh)
    refresh = only_request(registration)
    assert refresh.headers.get("CSeq") == "2 REGISTER"
    assert refresh.headers.get("Call-ID") == first.headers.get("Call-ID")
    assert registration.state == reg.STATE_REGISTERED


def test_refresh_reuses_nonce_with_rising_nc():
    registration = make()
    register(registration)
    registration.handle_timer(registration.next_refresh)
    refresh = only_request(registration)
    fields = credentials(refresh)
    assert fields["nonce"] == "n0nce1"
    assert fields["nc"] == "00000002"
    assert fields["response"] == expected_response(fields)
    assert refresh.headers.get("CSeq") == "3 REGISTER"


def test_granted_expires_from_our_contact_among_several():
    registration = make()
    registration.start(0.0)
    request = only_request(registration)
    registration.on_response(respond(
        request, 200, "OK", "Contact: <sip:phone@127.0.0.1:5080>;expires=30",
        f'Contact: "Door" <{CONTACT}>;expires=600;received="sip:127.0.0.1:41000"',
        "Expires: 900"), 0.1)
    assert registration.expires == 600


def test_granted_expires_from_expires_header():
    registration = make()
    registration.start(0.0)
    request = only_request(registration)
    registration.on_response(respond(request, 200, "OK", f"Contact: <{CONTACT}>",
                                     "Expires: 300"), 0.1)
    assert registration.expires == 300
    assert registration.next_refresh == pytest.approx(300 - reg.REFRESH_MARGIN)


def test_unrecognised_contacts_fall_back_to_the_shortest():
    registration = make()
    registration.start(0.0)
    request = only_request(registration)
    registration.on_response(respond(
        request, 200, "OK", "Contact: <sip:door@192.0.2.1:5070>;expires=45",
        "Contact: <sip:door@192.0.2.2:5070>;expires=90"), 0.1)
    assert registration.expires == 45


def test_200_without_our_binding_is_a_failure():
    registration = make()
    registration.start(0.0)
    request = only_request(registration)
    registration.on_response(ok(request, 0), 0.1)
    assert registration.state == reg.STATE_FAILED
    assert "did not keep our contact" in registration.error


def test_423_retries_with_min_expires():
    registration = make(expires=60)
    registration.start(0.0)
    first = only_request(registration)
    registration.on_response(respond(first, 423, "Interval Too Brief", "Min-Expires: 1800"), 0.1)
    retry = only_request(registration)
    assert retry.headers.get("Expires") == "1800"
    assert retry.headers.get("CSeq") == "2 REGISTER"
    registration.on_response(ok(retry, 1800), 0.2)
    assert registration.state == reg.STATE_REGISTERED
    registration.handle_timer(registration.next_refresh)
    assert only_request(registration).headers.get("Expires") == "1800"


def test_423_without_a_larger_min_expires_fails():
    registration = make(expires=600)
    registration.start(0.0)
    first = only_request(registration)
    registration.on_response(respond(first, 423, "Interval Too Brief", "Min-Expires: 300"), 0.1)
    assert registration.requests_to_send() == []
    assert registration.state == reg.STATE_FAILED
    assert registration.error == "423 Interval Too Brief"


def test_stale_nonce_answered_again_without_failure():
    registration = make()
    registration.start(0.0)
    first = only_request(registration)
    registration.on_response(respond(first, 401, "Unauthorized",
                                     f"WWW-Authenticate: {CHALLENGE}"), 0.1)
    answer = only_request(registration)
    stale = 'Digest realm="example.org", nonce="n0nce2", qop="auth", stale=true'
    registration.on_response(respond(answer, 401, "Unauthorized",
                                     f"WWW-Authenticate: {stale}"), 0.2)
    again = only_request(registration)
    fields = credentials(again)
    assert fields["nonce"] == "n0nce2"
    assert fields["nc"] == "00000001"
    assert fields["response"] == expected_response(fields)
    assert registration.state == reg.STATE_UNREGISTERED
    registration.on_response(ok(again), 0.3)
    assert registration.state == reg.STATE_REGISTERED


def test_new_challenge_to_cached_credentials_is_answered():
    """A refresh with the old nonce challenged without stale: the nonce expired, not the
    password; we answer the fresh challenge once."""
    registration = make()
    register(registration)
    registration.handle_timer(registration.next_refresh)
    refresh = only_request(registration)
    fresh = 'Digest realm="example.org", nonce="n0nce9", qop="auth"'
    registration.on_response(respond(refresh, 401, "Unauthorized",
                                     f"WWW-Authenticate: {fresh}"), 4000.0)
    answer = only_request(registration)
    assert credentials(answer)["nonce"] == "n0nce9"
    assert registration.state == reg.STATE_REGISTERED


def fail_with_wrong_password(registration, now):
    first = only_request(registration)
    registration.on_response(respond(first, 401, "Unauthorized",
                                     f"WWW-Authenticate: {CHALLENGE}"), now)
    answer = only_request(registration)
    registration.on_response(respond(answer, 401, "Unauthorized",
                                     f"WWW-Authenticate: {CHALLENGE}"), now)
    assert registration.requests_to_send() == []


@pytest.mark.parametrize("fill, waits", [
    (0x00, [15, 30, 60, 120, 150, 150, 150]),
    (0xFF, [30, 60, 120, 240, 300, 300, 300]),
])
def test_wrong_password_fails_and_backs_off_to_a_cap(fill, waits):
    registration = make(fill)
    now = 0.0
    registration.start(now)
    events(registration)
    seen = []
    for _ in waits:
        fail_with_wrong_password(registration, now)
        assert registration.state == reg.STATE_FAILED
        assert registration.error == "401: wrong username or password"
        seen.append(round(registration.next_refresh - now, 3))
        now = registration.get_timer()
        registration.handle_timer(now)
    assert seen == waits
    assert events(registration) == [(reg.STATE_FAILED, "401: wrong username or password")]


def test_back_off_jitter_stays_within_bounds():
    source = pyrandom.Random(7)
    registration = make(random=source.randbytes)
    now = 0.0
    registration.start(now)
    waits = []
    for _ in range(40):
        only_request(registration)
        registration.on_timeout(now)
        waits.append(registration.next_refresh - now)
        now = registration.next_refresh
        registration.handle_timer(now)
    nominal = [min(20.0, 2.0 * 2 ** n) for n in range(40)]
    for wait, full in zip(waits, nominal, strict=True):
        assert full / 2 <= wait <= full
    assert len({round(w, 6) for w in waits[5:]}) > 20  # really drawn, not constant


@pytest.mark.parametrize("fill, waits", [
    (0x00, [1, 2, 4, 8, 10, 10]),
    (0xFF, [2, 4, 8, 16, 20, 20]),
])
def test_timeouts_retry_on_a_short_capped_schedule(fill, waits):
    registration = make(fill)
    now = 0.0
    registration.start(now)
    seen = []
    for _ in waits:
        only_request(registration)
        now += 32.0
        registration.on_timeout(now)
        assert registration.state == reg.STATE_FAILED
        assert registration.error == "timeout: no response from registrar"
        seen.append(registration.next_refresh - now)
        now = registration.next_refresh
        registration.handle_timer(now)
    assert seen == waits
    retry = only_request(registration)
    registration.on_response(ok(retry), now + 0.1)
    assert registration.state == reg.STATE_REGISTERED
    assert registration.error is None
    registration.handle_timer(registration.next_refresh)
    registration.on_timeout(5000.0)  # the count started again after the success
    assert registration.next_refresh - 5000.0 == waits[0]


def test_refresh_timeout_loses_registration_then_recovers():
    registration = make(0xFF)
    register(registration, expires=120)
    events(registration)
    due = registration.next_refresh
    registration.handle_timer(due)
    only_request(registration)
    registration.on_timeout(due + 32)
    assert registration.state == reg.STATE_FAILED
    assert registration.expires is None
    assert registration.next_refresh == pytest.approx(due + 32 + 2.0)
    registration.handle_timer(registration.next_refresh)
    retry = only_request(registration)
    assert "Authorization" not in retry.headers  # stale credentials dropped after a failure
    registration.on_response(ok(retry, 120), due + 34.1)
    assert events(registration) == [(reg.STATE_FAILED, reg.TIMEOUT_ERROR),
                                    (reg.STATE_REGISTERED, None)]


def test_missing_transaction_report_is_caught_by_the_guard_timer():
    registration = make(0xFF)
    registration.start(0.0)
    only_request(registration)
    registration.handle_timer(reg.TRANSACTION_GUARD - 1)
    assert registration.state == reg.STATE_UNREGISTERED
    registration.handle_timer(reg.TRANSACTION_GUARD)
    assert registration.state == reg.STATE_FAILED
    assert registration.error == reg.TIMEOUT_ERROR


def test_flow_failure_while_registered_re_registers_at_once():
    registration = make()
    register(registration)
    events(registration)
    registration.flow_failed(500.0)
    again = only_request(registration)
    assert registration.state == reg.STATE_FAILED
    assert registration.error == reg.FLOW_ERROR
    registration.on_response(ok(again), 500.1)
    assert events(registration) == [(reg.STATE_FAILED, reg.FLOW_ERROR),
                                    (reg.STATE_REGISTERED, None)]


def test_flow_failure_during_refresh_resends_when_the_transaction_fails():
    registration = make()
    register(registration)
    registration.handle_timer(registration.next_refresh)
    only_request(registration)
    registration.flow_failed(3600.0)
    assert registration.requests_to_send() == []  # the endpoint fails that transaction next
    registration.on_timeout(3600.0)
    again = only_request(registration)
    assert again.headers.get("Expires") == "3600"
    assert registration.error == reg.FLOW_ERROR


def test_flow_failure_when_not_registered_backs_off():
    registration = make(0xFF)
    registration.start(0.0)
    only_request(registration)
    registration.flow_failed(0.5)
    registration.on_timeout(0.5)
    assert registration.requests_to_send() == []
    assert registration.error == reg.FLOW_ERROR
    assert registration.next_refresh == 2.5
    registration.flow_failed(1.0)  # already waiting to retry: nothing changes
    assert registration.requests_to_send() == []
    assert registration.next_refresh == 2.5


def test_unregister_sends_expires_zero():
    registration = make()
    register(registration)
    events(registration)
    unregister = registration.stop(1000.0)
    assert registration.requests_to_send() == [unregister]
    assert unregister.headers.get("Expires") == "0"
    assert unregister.headers.get("Contact") == f"<{CONTACT}>"
    assert credentials(unregister)["nc"] == "00000002"
    assert registration.stop(1000.0) is None
    registration.on_response(ok(unregister, 0), 1000.1)
    assert registration.state == reg.STATE_UNREGISTERED
    assert registration.expires is None
    assert registration.get_timer() is None
    assert events(registration) == [(reg.STATE_UNREGISTERED, None)]
    registration.handle_timer(99999.0)
    assert registration.requests_to_send() == []


def test_unregister_answers_a_challenge_then_times_out():
    registration = make()
    register(registration)
    unregister = registration.stop(1000.0)
    registration.requests_to_send()
    registration.on_response(respond(unregister, 401, "Unauthorized",
                                     'WWW-Authenticate: Digest realm="example.org", '
                                     'nonce="late", qop="auth"'), 1000.1)
    answer = only_request(registration)
    assert answer.headers.get("Expires") == "0"
    assert credentials(answer)["nonce"] == "late"
    assert registration.state == reg.STATE_REGISTERED
    registration.on_timeout(1032.0)
    assert registration.state == reg.STATE_UNREGISTERED


def test_sha256_challenge_preferred_over_md5():
    registration = make()
    registration.start(0.0)
    first = only_request(registration)
    registration.on_response(respond(
        first, 401, "Unauthorized",
        'WWW-Authenticate: Digest realm="example.org", nonce="m", algorithm=MD5, qop="auth"',
        'WWW-Authenticate: Digest realm="example.org", nonce="s", algorithm=SHA-256, qop="auth"',
    ), 0.1)
    fields = credentials(only_request(registration))
    assert fields["algorithm"] == "SHA-256"
    assert fields["nonce"] == "s"
    assert fields["response"] == expected_response(fields, hash_name="sha256")


def test_407_answered_with_proxy_authorization():
    registration = make()
    registration.start(0.0)
    first = only_request(registration)
    registration.on_response(respond(first, 407, "Proxy Authentication Required",
                                     f"Proxy-Authenticate: {CHALLENGE}"), 0.1)
    answer = only_request(registration)
    assert "Authorization" not in answer.headers
    fields = credentials(answer, "Proxy-Authorization")
    assert fields["response"] == expected_response(fields)
    registration.on_response(respond(answer, 407, "Proxy Authentication Required",
                                     f"Proxy-Authenticate: {CHALLENGE}"), 0.2)
    assert registration.error == "407: wrong username or password"


def test_unsupported_challenge_fails():
    registration = make()
    registration.start(0.0)
    first = only_request(registration)
    registration.on_response(respond(first, 401, "Unauthorized",
                                     'WWW-Authenticate: Basic realm="x"'), 0.1)
    assert registration.requests_to_send() == []
    assert registration.error == "401: no supported authentication challenge"


def test_endless_stale_challenges_are_cut_short():
    registration = make()
    registration.start(0.0)
    request = only_request(registration)
    for round_number in range(reg.MAX_CHALLENGE_ROUNDS + 1):
        stale = f'Digest realm="example.org", nonce="n{round_number}", stale=true'
        registration.on_response(respond(request, 401, "Unauthorized",
                                         f"WWW-Authenticate: {stale}"), 0.1)
        sent = registration.requests_to_send()
        if round_number < reg.MAX_CHALLENGE_ROUNDS:
            (request,) = sent
    assert sent == []
    assert registration.state == reg.STATE_FAILED


@pytest.mark.parametrize("status, reason, error, first_wait", [
    (403, "Forbidden", "403 Forbidden", 30.0),
    (404, "Not Found", "404 Not Found", 30.0),
    (500, "Server Internal Error", "500 Server Internal Error", 2.0),
    (408, "Request Timeout", "408 Request Timeout", 2.0),
])
def test_final_errors_fail_with_status_text(status, reason, error, first_wait):
    registration = make(0xFF)
    registration.start(0.0)
    request = only_request(registration)
    registration.on_response(respond(request, status, reason), 1.0)
    assert registration.state == reg.STATE_FAILED
    assert registration.error == error
    assert registration.next_refresh == 1.0 + first_wait


def test_retry_after_is_honoured():
    registration = make(0xFF)
    registration.start(0.0)
    request = only_request(registration)
    registration.on_response(respond(request, 503, "Service Unavailable",
                                     "Retry-After: 120 (maintenance)"), 1.0)
    assert registration.next_refresh == 121.0
    registration.handle_timer(120.0)
    assert registration.requests_to_send() == []
    registration.handle_timer(121.0)
    assert len(registration.requests_to_send()) == 1


def test_unrelated_and_provisional_responses_are_ignored():
    registration = make()
    registration.start(0.0)
    request = only_request(registration)
    registration.on_response(respond(request, 100, "Trying"), 0.1)
    other = Request("REGISTER", REGISTRAR)
    for name in ("From", "To", "Call-ID"):
        other.headers.set(name, request.headers.get(name))
    other.headers.set("CSeq", "7 REGISTER")
    registration.on_response(ok(other), 0.1)
    assert registration.state == reg.STATE_UNREGISTERED
    registration.on_response(ok(request), 0.2)
    assert registration.state == reg.STATE_REGISTERED
    registration.on_response(ok(request), 0.3)  # a retransmitted 200 changes nothing
    registration.on_timeout(0.4)
    assert registration.state == reg.STATE_REGISTERED


def test_lost_registrar_fails_at_once_even_with_a_refresh_in_flight():
    """firmware/sip/keepalive.py says the registrar is dead: no waiting for Timer F (32 s)."""
    registration = make()
    registration.start(0.0)
    registration.on_response(ok(only_request(registration)), 0.1)
    events(registration)
    registration.refresh_now(10.0)
    refresh = only_request(registration)
    registration.lost(12.0, "registrar not answering keep-alives")
    assert events(registration) == [("failed", "registrar not answering keep-alives")]
    assert 12.0 + 1.0 <= registration.next_refresh <= 12.0 + 2.0  # unreachable back-off
    registration.on_response(ok(refresh), 13.0)  # the abandoned refresh's late answer
    assert registration.state == "failed" and events(registration) == []
