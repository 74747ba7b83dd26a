"""Registration progress for the page (issue 18): `registering` while a REGISTER is outstanding
and we are not registered, `attempt` (since the last success, the one outstanding included),
`attempt_started` and `changed_at` on the caller's clock. Runs under MicroPython too."""

from firmware.sip import registration as reg
from tests.sip.test_registration import CHALLENGE, make, ok, only_request, respond


def test_first_attempt_then_a_timeout_then_the_retry():
    r = make()
    assert not r.registering and r.attempt == 0 and r.changed_at is None
    r.start(10.0)
    only_request(r)
    assert r.registering and r.attempt == 1 and r.attempt_started == 10.0
    assert r.state == reg.STATE_UNREGISTERED and r.changed_at == 10.0
    r.on_timeout(42.0)
    assert not r.registering and r.attempt == 1
    assert r.state == reg.STATE_FAILED and r.changed_at == 42.0
    due = r.next_refresh
    assert due > 42.0
    r.handle_timer(due)
    request = only_request(r)
    assert r.registering and r.attempt == 2 and r.attempt_started == due
    assert r.state == reg.STATE_FAILED and r.error == reg.TIMEOUT_ERROR  # the last reason kept
    started = r.attempt_started
    r.on_response(ok(request), started + 0.01)
    assert not r.registering and r.attempt == 0 and r.state == reg.STATE_REGISTERED
    assert r.changed_at == started + 0.01


def test_a_challenge_is_part_of_the_same_attempt():
    r = make()
    r.start(5.0)
    r.on_response(respond(only_request(r), 401, "Unauthorized",
                          f"WWW-Authenticate: {CHALLENGE}"), 5.1)
    only_request(r)  # the answer to the challenge
    assert r.registering and r.attempt == 1 and r.attempt_started == 5.0


def test_a_refresh_while_registered_is_not_registering():
    r = make(expires=600)
    r.start(0.0)
    r.on_response(ok(only_request(r), 600), 0.1)
    r.handle_timer(r.next_refresh)
    only_request(r)
    assert r.state == reg.STATE_REGISTERED and not r.registering and r.attempt == 0
    assert r.changed_at == 0.1


def test_a_wrong_password_counts_attempts():
    r = make()
    r.start(0.0)
    r.on_response(respond(only_request(r), 403, "Forbidden"), 0.2)
    assert r.state == reg.STATE_FAILED and r.error == "403 Forbidden" and r.attempt == 1
    r.handle_timer(r.next_refresh)
    only_request(r)
    assert r.registering and r.attempt == 2
