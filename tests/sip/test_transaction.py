"""RFC 3261 §17 transactions (with RFC 6026 and RFC 4320), driven by real bytes and a fake clock."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.sip import message
from firmware.sip import transaction as txn

DOOR_VIA = "SIP/2.0/UDP 127.0.0.1:5070;branch={branch}"

REQUEST_TEXT = (
    "{method} sip:flat1@127.0.0.1:5080 SIP/2.0\r\n"
    "Via: {via}\r\n"
    "Max-Forwards: 69\r\n"
    "Route: <sip:127.0.0.1:15060;lr>\r\n"
    "From: \"Door\" <sip:door@127.0.0.1>;tag=door-tag\r\n"
    "To: <sip:flat1@127.0.0.1>{to_tag}\r\n"
    "Call-ID: {call_id}\r\n"
    "CSeq: {seq} {cseq_method}\r\n"
    "Contact: <sip:door@127.0.0.1:5070>\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)

RESPONSE_TEXT = (
    "SIP/2.0 {status} {reason}\r\n"
    "Via: {via}\r\n"
    "From: \"Door\" <sip:door@127.0.0.1>;tag=door-tag\r\n"
    "To: <sip:flat1@127.0.0.1>{to_tag}\r\n"
    "Call-ID: {call_id}\r\n"
    "CSeq: {seq} {cseq_method}\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)

REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 408: "Request Timeout",
           486: "Busy Here", 487: "Request Terminated"}


def request(method="INVITE", branch="z9hG4bK-inv-1", via=None, to_tag=None, seq=1,
            cseq_method=None, call_id="call-1@127.0.0.1"):
    text = REQUEST_TEXT.format(
        method=method, via=via or DOOR_VIA.format(branch=branch),
        to_tag=";tag=" + to_tag if to_tag else "", call_id=call_id, seq=seq,
        cseq_method=cseq_method or method)
    parsed = message.parse(text.encode())
    assert isinstance(parsed, message.Request)
    return parsed


def response(status, method="INVITE", branch="z9hG4bK-inv-1", to_tag="flat-tag", seq=1,
             call_id="call-1@127.0.0.1"):
    text = RESPONSE_TEXT.format(
        status=status, reason=REASONS[status], via=DOOR_VIA.format(branch=branch),
        to_tag=";tag=" + to_tag if to_tag else "", call_id=call_id, seq=seq,
        cseq_method=method)
    parsed = message.parse(text.encode())
    assert isinstance(parsed, message.Response)
    return parsed


def events(transaction):
    found = []
    while True:
        event = transaction.next_event()
        if event is None:
            return found
        found.append(event)


def event_types(transaction):
    return [type(event) for event in events(transaction)]


def run_timers(transaction, until):
    """Fire every timer up to `until` exactly on time; return [(time, messages sent)]."""
    sent = []
    while True:
        deadline = transaction.get_timer()
        if deadline is None or deadline > until:
            return sent
        transaction.handle_timer(deadline)
        messages = transaction.messages_to_send()
        if messages:
            sent.append((deadline, messages))


def statuses(messages):
    return [m.status for m in messages]


# -- constants ------------------------------------------------------------------------------


def test_timer_values_follow_rfc3261_table_4_and_rfc6026():
    assert (txn.T1, txn.T2, txn.T4) == (0.5, 4.0, 5.0)
    assert txn.TIMER_A == txn.TIMER_E == txn.TIMER_G == 0.5
    assert txn.TIMER_B == txn.TIMER_F == txn.TIMER_H == txn.TIMER_J == 32.0
    assert txn.TIMER_D == 32.0
    assert txn.TIMER_I == txn.TIMER_K == 5.0
    assert txn.TIMER_L == txn.TIMER_M == 32.0
    assert txn.TIMER_C > 180 - 1


def test_new_branch_has_magic_cookie_and_is_random():
    branches = {txn.new_branch() for _ in range(200)}
    assert len(branches) == 200
    for branch in branches:
        assert branch.startswith("z9hG4bK")
        assert len(branch) > len("z9hG4bK") + 16


# -- INVITE client (§17.1.1, RFC 6026) ---------------------------------------------------------


def test_invite_client_udp_retransmits_with_doubling_then_times_out_at_timer_b():
    invite = request()
    tx = txn.ClientTransaction(invite, reliable=False, now=0.0)
    assert tx.state == txn.CALLING
    assert tx.messages_to_send() == [invite]
    sent = run_timers(tx, until=100)
    assert [time for time, _ in sent] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(messages == [invite] for _, messages in sent)
    assert tx.terminated
    assert event_types(tx) == [txn.TransactionTimeout, txn.TransactionTerminated]


def test_invite_client_reliable_never_retransmits():
    tx = txn.ClientTransaction(request(), reliable=True, now=10.0)
    assert len(tx.messages_to_send()) == 1
    assert tx.get_timer() == 42.0
    assert run_timers(tx, until=100) == []
    assert tx.terminated
    assert event_types(tx) == [txn.TransactionTimeout, txn.TransactionTerminated]


def test_invite_client_provisional_stops_retransmission_and_timer_b():
    tx = txn.ClientTransaction(request(), reliable=False, now=0.0)
    tx.messages_to_send()
    tx.receive(response(100), now=0.2)
    assert tx.state == txn.PROCEEDING
    assert tx.get_timer() is None
    tx.receive(response(180), now=3.0)
    assert [e.response.status for e in events(tx)] == [100, 180]
    assert tx.messages_to_send() == []


def test_invite_client_acks_non_2xx_final_with_same_branch_and_to_tag():
    invite = request()
    tx = txn.ClientTransaction(invite, reliable=False, now=0.0)
    tx.messages_to_send()
    tx.receive(response(180), now=1.0)
    busy = response(486, to_tag="busy-tag")
    tx.receive(busy, now=2.0)
    assert tx.state == txn.COMPLETED
    assert [e.response.status for e in events(tx)] == [180, 486]
    [ack] = tx.messages_to_send()
    ack = message.parse(ack.to_bytes())  # the bytes on the wire, read back
    assert ack.method == "ACK"
    assert str(ack.uri) == "sip:flat1@127.0.0.1:5080"
    assert ack.headers.get_all("Via") == [invite.headers.get("Via")]
    assert message.Via.parse(ack.headers.get("Via")).branch == "z9hG4bK-inv-1"
    assert message.NameAddress.parse(ack.headers.get("To")).tag == "busy-tag"
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.headers.get("Call-ID") == "call-1@127.0.0.1"
    cseq = message.CSeq.parse(ack.headers.get("CSeq"))
    assert (cseq.seq, cseq.method) == (1, "ACK")
    assert ack.headers.get_all("Route") == ["<sip:127.0.0.1:15060;lr>"]
    assert ack.body == b""


def test_invite_client_completed_reacks_retransmitted_final_then_timer_d():
    tx = txn.ClientTransaction(request(), reliable=False, now=0.0)
    tx.messages_to_send()
    tx.receive(response(486), now=1.0)
    [ack] = tx.messages_to_send()
    events(tx)
    tx.receive(response(486), now=2.0)
    assert tx.messages_to_send() == [ack]
    assert events(tx) == []  # the retransmission is not passed up
    assert tx.get_timer() == 33.0  # Timer D: 32 s after entering Completed
    tx.handle_timer(32.9)
    assert tx.state == txn.COMPLETED
    tx.handle_timer(33.0)
    assert tx.terminated
    assert event_types(tx) == [txn.TransactionTerminated]


def test_invite_client_reliable_terminates_right_after_acking():
    tx = txn.ClientTransaction(request(), reliable=True, now=0.0)
    tx.messages_to_send()
    tx.receive(response(486), now=1.0)
    assert tx.terminated
    assert [m.method for m in tx.messages_to_send()] == ["ACK"]
    assert event_types(tx) == [txn.ResponseReceived, txn.TransactionTerminated]


def test_invite_client_accepted_passes_every_2xx_up_and_never_acks_them():
    tx = txn.ClientTransaction(request(), reliable=False, now=0.0)
    tx.messages_to_send()
    tx.receive(response(200, to_tag="first"), now=1.0)
    assert tx.state == txn.ACCEPTED
    tx.receive(response(200, to_tag="first"), now=1.5)  # retransmission
    tx.receive(response(200, to_tag="forked"), now=2.0)  # another branch of a fork
    tx.receive(response(486), now=2.5)  # not a 2xx: ignored in Accepted
    tx.receive(response(180), now=2.6)
    tags = [message.NameAddress.parse(e.response.headers.get("To")).tag for e in events(tx)]
    assert tags == ["first", "first", "forked"]
    assert tx.messages_to_send() == []  # the TU acknowledges 2xx (§13.2.2.4)
    assert tx.get_timer() == 33.0  # Timer M
    tx.handle_timer(33.0)
    assert tx.terminated
    assert event_types(tx) == [txn.TransactionTerminated]


def test_invite_client_2xx_in_calling_stops_retransmissions():
    tx = txn.ClientTransaction(request(), reliable=False, now=0.0)
    tx.messages_to_send()
    tx.receive(response(200), now=0.1)
    assert tx.get_timer() == pytest.approx(32.1)  # Timer M only: Timers A and B are gone
    assert run_timers(tx, until=100) == []
    assert tx.terminated


def test_invite_client_transport_error_terminates_with_transport_error_event():
    tx = txn.ClientTransaction(request(), reliable=True, now=0.0)
    tx.transport_error(now=0.01)
    assert tx.terminated
    assert tx.get_timer() is None
    assert event_types(tx) == [txn.TransportError, txn.TransactionTerminated]


# -- non-INVITE client (§17.1.2, RFC 4320) ---------------------------------------------------


def options(branch="z9hG4bK-opt-1"):
    return request("OPTIONS", branch=branch)


def test_non_invite_client_udp_caps_retransmission_interval_at_t2():
    tx = txn.ClientTransaction(options(), reliable=False, now=0.0)
    assert tx.state == txn.TRYING
    tx.messages_to_send()
    sent = run_timers(tx, until=100)
    expected = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [time for time, _ in sent] == expected
    assert tx.terminated
    # RFC 4320: a timeout is an event, never a made-up 408 response.
    assert event_types(tx) == [txn.TransactionTimeout, txn.TransactionTerminated]


def test_non_invite_client_proceeding_retransmits_every_t2():
    tx = txn.ClientTransaction(options(), reliable=False, now=0.0)
    tx.messages_to_send()
    assert [t for t, _ in run_timers(tx, until=0.5)] == [0.5]
    tx.receive(response(100, method="OPTIONS", branch="z9hG4bK-opt-1", to_tag=None), now=0.7)
    assert tx.state == txn.PROCEEDING
    sent = run_timers(tx, until=100)
    assert [t for t, _ in sent] == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert event_types(tx) == [txn.ResponseReceived, txn.TransactionTimeout,
                               txn.TransactionTerminated]


def test_non_invite_client_completed_absorbs_retransmissions_until_timer_k():
    tx = txn.ClientTransaction(options(), reliable=False, now=0.0)
    tx.messages_to_send()
    ok = response(200, method="OPTIONS", branch="z9hG4bK-opt-1")
    tx.receive(ok, now=2.0)
    assert tx.state == txn.COMPLETED
    tx.receive(ok, now=2.5)
    assert [e.response.status for e in events(tx)] == [200]
    assert tx.get_timer() == 7.0  # Timer K = T4
    assert run_timers(tx, until=100) == []
    assert tx.terminated


def test_non_invite_client_reliable_terminates_on_final_response():
    tx = txn.ClientTransaction(options(), reliable=True, now=0.0)
    tx.messages_to_send()
    assert tx.get_timer() == 32.0  # Timer F only
    tx.receive(response(408, method="OPTIONS", branch="z9hG4bK-opt-1"), now=1.0)
    assert tx.terminated
    assert event_types(tx) == [txn.ResponseReceived, txn.TransactionTerminated]


# -- INVITE server (§17.2.1, RFC 6026) ---------------------------------------------------------


def inbound_invite(branch="z9hG4bK-in-1"):
    return request(via="SIP/2.0/UDP 127.0.0.1:5080;branch=" + branch, call_id="in-1@127.0.0.1")


def test_invite_server_sends_trying_and_resends_last_provisional_on_retransmission():
    invite = inbound_invite()
    tx = txn.ServerTransaction(invite, reliable=False, now=0.0)
    assert tx.state == txn.PROCEEDING
    assert tx.messages_to_send() == []  # the 100 waits for the end of the TU's turn
    assert tx.get_timer() == txn.TIMER_TRYING == 0.0
    tx.handle_timer(0.0)  # the owner's next turn: the TU has not responded
    [trying] = tx.messages_to_send()
    assert trying.status == 100
    assert trying.headers.get("Via") == invite.headers.get("Via")
    tx.receive(inbound_invite(), now=0.5)
    assert statuses(tx.messages_to_send()) == [100]
    ringing = invite.make_response(180)
    ringing.headers.set("To", ringing.headers.get("To") + ";tag=door")
    tx.send_response(ringing, now=0.6)
    assert tx.messages_to_send() == [ringing]
    tx.receive(inbound_invite(), now=1.5)
    assert tx.messages_to_send() == [ringing]
    assert events(tx) == []


@pytest.mark.parametrize("status", [180, 183, 200, 486])
def test_invite_server_leaves_the_trying_out_when_the_tu_responds_in_its_turn(status):
    # §17.2.1: the 100 may be left out when the TU answers within 200 ms; ours waits only for
    # the end of the turn in which the INVITE reached the TU
    invite = inbound_invite()
    tx = txn.ServerTransaction(invite, reliable=False, now=0.0)
    answer = invite.make_response(status, to_tag="door")
    tx.send_response(answer, now=0.0)
    assert tx.messages_to_send() == [answer]
    tx.handle_timer(0.0)
    assert tx.messages_to_send() == []
    assert tx.get_timer() != 0.0  # no Trying timer left (a 2xx: Timer L; 486: G and H)
    tx.receive(inbound_invite(), now=0.25)  # a retransmission gets the TU's response again
    assert statuses(tx.messages_to_send()) == ([] if status == 200 else [status])
    assert 100 not in statuses(tx.messages_to_send())


def test_invite_server_trying_is_sent_before_a_late_tu_response():
    invite = inbound_invite()
    tx = txn.ServerTransaction(invite, reliable=True, now=0.0)
    tx.handle_timer(0.0)
    assert statuses(tx.messages_to_send()) == [100]
    tx.send_response(invite.make_response(180, to_tag="door"), now=1.0)
    tx.handle_timer(1.0)
    assert statuses(tx.messages_to_send()) == [180]  # the 100 went once


def test_non_invite_server_never_sends_trying():
    bye = inbound_bye("z9hG4bK-no-trying")
    tx = txn.ServerTransaction(bye, reliable=False, now=0.0)
    assert tx.get_timer() is None
    tx.handle_timer(0.0)
    assert tx.messages_to_send() == []


def test_invite_server_udp_timer_g_retransmits_failure_until_timer_h():
    invite = inbound_invite()
    tx = txn.ServerTransaction(invite, reliable=False, now=0.0)
    tx.messages_to_send()
    tx.send_response(invite.make_response(486), now=10.0)
    assert tx.state == txn.COMPLETED
    assert statuses(tx.messages_to_send()) == [486]
    sent = run_timers(tx, until=100)
    times = [round(t - 10.0, 3) for t, _ in sent]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(statuses(messages) == [486] for _, messages in sent)
    assert tx.terminated
    assert event_types(tx) == [txn.TransactionTimeout, txn.TransactionTerminated]


def test_invite_server_completed_resends_final_on_request_retransmission():
    invite = inbound_invite()
    tx = txn.ServerTransaction(invite, reliable=True, now=0.0)
    tx.messages_to_send()
    tx.send_response(invite.make_response(486), now=1.0)
    tx.messages_to_send()
    assert tx.get_timer() == 33.0  # no Timer G on reliable transports; Timer H only
    tx.receive(inbound_invite(), now=2.0)
    assert statuses(tx.messages_to_send()) == [486]
    tx.send_response(invite.make_response(500), now=2.1)  # later finals are discarded
    assert tx.messages_to_send() == []


def ack_for(branch="z9hG4bK-in-1", to_tag=None, via=None):
    return request("ACK", via=via or "SIP/2.0/UDP 127.0.0.1:5080;branch=" + branch,
                   to_tag=to_tag, call_id="in-1@127.0.0.1")


def test_invite_server_ack_for_failure_confirms_and_timer_i_terminates():
    invite = inbound_invite()
    tx = txn.ServerTransaction(invite, reliable=False, now=0.0)
    tx.send_response(invite.make_response(486), now=1.0)
    tx.messages_to_send()
    tx.receive(ack_for(), now=1.2)
    assert tx.state == txn.CONFIRMED
    assert tx.get_timer() == pytest.approx(6.2)  # Timer I = T4; Timer G is gone
    tx.receive(ack_for(), now=2.0)  # retransmitted ACK absorbed
    tx.receive(inbound_invite(), now=2.1)
    assert run_timers(tx, until=100) == []
    assert tx.messages_to_send() == []
    assert tx.terminated
    assert event_types(tx) == [txn.TransactionTerminated]  # the ACK is not the TU's


def test_invite_server_reliable_ack_terminates_at_once():
    invite = inbound_invite()
    tx = txn.ServerTransaction(invite, reliable=True, now=0.0)
    tx.send_response(invite.make_response(603), now=1.0)
    tx.receive(ack_for(), now=1.1)
    assert tx.terminated


def test_invite_server_accepted_absorbs_invites_and_sends_tu_2xx_retransmissions():
    invite = inbound_invite()
    tx = txn.ServerTransaction(invite, reliable=False, now=0.0)
    tx.messages_to_send()
    ok = invite.make_response(200)
    tx.send_response(ok, now=1.0)
    assert tx.state == txn.ACCEPTED
    assert tx.messages_to_send() == [ok]
    tx.receive(inbound_invite(), now=1.5)
    assert tx.messages_to_send() == []  # RFC 6026 §8.7: absorbed, the TU retransmits 2xx
    tx.send_response(ok, now=1.5)
    assert tx.messages_to_send() == [ok]
    tx.send_response(invite.make_response(486), now=1.6)  # no failure after a 2xx
    assert tx.messages_to_send() == []
    ack = ack_for()
    tx.receive(ack, now=2.0)
    assert tx.state == txn.ACCEPTED
    [event] = events(tx)
    assert isinstance(event, txn.AckReceived) and event.ack is ack
    assert tx.get_timer() == 33.0  # Timer L
    tx.handle_timer(33.0)
    assert tx.terminated


def test_invite_server_transport_error_in_accepted_keeps_state():
    invite = inbound_invite()
    tx = txn.ServerTransaction(invite, reliable=True, now=0.0)
    tx.send_response(invite.make_response(200), now=1.0)
    tx.transport_error(now=1.0)
    assert tx.state == txn.ACCEPTED
    assert event_types(tx) == [txn.TransportError]


def test_invite_server_transport_error_in_proceeding_terminates():
    tx = txn.ServerTransaction(inbound_invite(), reliable=True, now=0.0)
    tx.transport_error(now=0.1)
    assert tx.terminated
    assert event_types(tx) == [txn.TransportError, txn.TransactionTerminated]


# -- non-INVITE server (§17.2.2) ---------------------------------------------------------------


def inbound_bye(branch="z9hG4bK-bye-1"):
    return request("BYE", via="SIP/2.0/UDP 127.0.0.1:5080;branch=" + branch, to_tag="door")


def test_non_invite_server_trying_absorbs_then_completed_resends_until_timer_j():
    bye = inbound_bye()
    tx = txn.ServerTransaction(bye, reliable=False, now=0.0)
    assert tx.state == txn.TRYING
    assert tx.messages_to_send() == []
    tx.receive(inbound_bye(), now=0.5)
    assert tx.messages_to_send() == []
    ok = bye.make_response(200)
    tx.send_response(ok, now=0.7)
    assert tx.state == txn.COMPLETED
    assert tx.messages_to_send() == [ok]
    tx.receive(inbound_bye(), now=1.5)
    assert tx.messages_to_send() == [ok]
    tx.send_response(bye.make_response(500), now=1.6)
    assert tx.messages_to_send() == []
    assert tx.get_timer() == pytest.approx(32.7)  # Timer J = 64*T1
    assert run_timers(tx, until=100) == []
    assert tx.terminated
    assert event_types(tx) == [txn.TransactionTerminated]


def test_non_invite_server_proceeding_resends_provisional():
    bye = inbound_bye()
    tx = txn.ServerTransaction(bye, reliable=False, now=0.0)
    trying = bye.make_response(100)
    tx.send_response(trying, now=2.0)
    assert tx.state == txn.PROCEEDING
    tx.receive(inbound_bye(), now=3.0)
    assert tx.messages_to_send() == [trying, trying]


def test_non_invite_server_reliable_terminates_on_final():
    bye = inbound_bye()
    tx = txn.ServerTransaction(bye, reliable=True, now=0.0)
    tx.send_response(bye.make_response(200), now=0.1)
    assert tx.terminated
    assert statuses(tx.messages_to_send()) == [200]


# -- the table (§17.1.3, §17.2.3, §9.2) --------------------------------------------------------


def test_table_matches_responses_by_branch_and_cseq_method():
    table = txn.TransactionTable()
    invite_tx = txn.ClientTransaction(request(branch="z9hG4bK-a"), False, 0.0)
    cancel_tx = txn.ClientTransaction(request("CANCEL", branch="z9hG4bK-a"), False, 0.1)
    assert table.add(invite_tx) and table.add(cancel_tx)
    assert table.lookup(response(487, branch="z9hG4bK-a")) is invite_tx
    assert table.lookup(response(200, method="CANCEL", branch="z9hG4bK-a")) is cancel_tx
    assert table.lookup(response(200, branch="z9hG4bK-other")) is None
    assert table.lookup(response(200, method="BYE", branch="z9hG4bK-a")) is None


def test_table_matches_requests_by_branch_sent_by_and_method():
    table = txn.TransactionTable()
    invite_tx = txn.ServerTransaction(inbound_invite("z9hG4bK-s"), False, 0.0)
    assert table.add(invite_tx)
    assert table.lookup(inbound_invite("z9hG4bK-s")) is invite_tx
    assert table.lookup(ack_for("z9hG4bK-s")) is invite_tx  # ACK for a non-2xx
    assert table.lookup(ack_for("z9hG4bK-new")) is None  # ACK for a 2xx: the owner's
    other_port = request(via="SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-s")
    assert table.lookup(other_port) is None
    # The CANCEL is its own transaction but finds the INVITE it refers to (§9.2).
    cancel = request("CANCEL", via="SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-s",
                     call_id="in-1@127.0.0.1")
    assert table.lookup(cancel) is None
    assert table.find_invite_for_cancel(cancel) is invite_tx
    cancel_tx = txn.ServerTransaction(cancel, False, 0.2)
    assert table.add(cancel_tx)
    assert table.lookup(cancel) is cancel_tx
    assert table.find_invite_for_cancel(cancel) is invite_tx


RFC2543_VIA = "SIP/2.0/UDP 127.0.0.1:5080"


def rfc2543(method="INVITE", to_tag=None, seq=1, call_id="old@127.0.0.1", via=RFC2543_VIA):
    return request(method, via=via, to_tag=to_tag, seq=seq, call_id=call_id)


def test_table_rfc2543_fallback_matches_on_dialog_fields_and_top_via():
    table = txn.TransactionTable()
    invite = rfc2543()
    tx = txn.ServerTransaction(invite, False, 0.0)
    assert table.add(tx)
    assert table.lookup(rfc2543()) is tx
    assert table.lookup(rfc2543(call_id="other@127.0.0.1")) is None
    assert table.lookup(rfc2543(seq=2)) is None
    assert table.lookup(rfc2543(via="SIP/2.0/UDP 127.0.0.1:5081")) is None
    assert table.lookup(rfc2543(to_tag="x")) is None
    assert table.find_invite_for_cancel(rfc2543("CANCEL")) is tx
    busy = invite.make_response(486)
    busy.headers.set("To", busy.headers.get("To") + ";tag=door-486")
    tx.send_response(busy, now=1.0)
    # An ACK matches through the To tag of the response we sent.
    assert table.lookup(rfc2543("ACK", to_tag="door-486")) is tx
    assert table.lookup(rfc2543("ACK", to_tag="other")) is None
    assert table.lookup(rfc2543("ACK")) is None


def test_table_rfc2543_branch_without_cookie_uses_fallback():
    table = txn.TransactionTable()
    via = "SIP/2.0/UDP 127.0.0.1:5080;branch=1234"
    tx = txn.ServerTransaction(rfc2543("OPTIONS", via=via), False, 0.0)
    assert table.add(tx)
    assert table.lookup(rfc2543("OPTIONS", via=via)) is tx
    assert table.lookup(rfc2543("INFO", via=via)) is None


def test_table_is_bounded_and_refuses_duplicates():
    table = txn.TransactionTable(max_transactions=2)
    first = txn.ClientTransaction(options("z9hG4bK-1"), False, 0.0)
    second = txn.ServerTransaction(inbound_bye("z9hG4bK-2"), False, 0.0)
    third = txn.ServerTransaction(rfc2543(), False, 0.0)
    assert table.add(first) and table.add(second)
    assert not table.add(third)
    assert len(table) == 2
    assert table.lookup(rfc2543()) is None
    table.remove(second)
    table.remove(second)  # harmless
    assert not table.add(first)  # already there
    assert table.add(third)
    assert table.lookup(rfc2543()) is third
    assert len(table) == 2


def test_table_drives_timers_and_removes_terminated_transactions():
    table = txn.TransactionTable()
    client = txn.ClientTransaction(options("z9hG4bK-c"), reliable=False, now=0.0)
    server = txn.ServerTransaction(inbound_bye("z9hG4bK-b"), reliable=False, now=0.0)
    table.add(client)
    table.add(server)
    assert [m.method for _, m in table.messages_to_send()] == ["OPTIONS"]
    server.send_response(server.request.make_response(200), now=0.1)
    assert [(t, m.status) for t, m in table.messages_to_send()] == [(server, 200)]
    assert table.get_timer() == 0.5  # Timer E before Timer J (32.1)
    assert table.handle_timer(0.5) == []
    assert [(t, m.method) for t, m in table.messages_to_send()] == [(client, "OPTIONS")]
    assert table.messages_to_send() == []
    paired = table.handle_timer(32.0)  # Timer F fires; the retransmissions due are sent
    assert [(t, type(e)) for t, e in paired] == [
        (client, txn.TransactionTimeout), (client, txn.TransactionTerminated)]
    assert [t for t, _ in table.messages_to_send()] == [client]
    assert len(table) == 1
    assert table.lookup(response(200, method="OPTIONS", branch="z9hG4bK-c")) is None
    assert table.get_timer() == pytest.approx(32.1)
    paired = table.handle_timer(40.0)
    assert [(t, type(e)) for t, e in paired] == [(server, txn.TransactionTerminated)]
    assert len(table) == 0 and table.get_timer() is None


def test_events_have_readable_reprs():
    assert repr(txn.ResponseReceived(response(180))) == "ResponseReceived(180 Ringing)"
    assert repr(txn.TransactionTimeout()) == "TransactionTimeout()"
    assert repr(txn.TransportError()) == "TransportError()"
    assert repr(txn.TransactionTerminated()) == "TransactionTerminated()"
    assert "Calling" in repr(txn.ClientTransaction(request(), False, 0.0))


def test_ack_never_starts_a_transaction():
    with pytest.raises(ValueError):
        txn.ClientTransaction(request("ACK"), False, 0.0)
    with pytest.raises(ValueError):
        txn.ServerTransaction(ack_for(), False, 0.0)


# -- invariants under any order of inputs ----------------------------------------------------

CLIENT_STEPS = st.lists(st.one_of(
    st.tuples(st.just("response"), st.sampled_from([100, 180, 200, 408, 486])),
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=20.0)),
    st.tuples(st.just("transport_error"), st.none()),
), max_size=25)


def check_invariants(tx, all_events):
    types = [type(e) for e in all_events]
    assert types.count(txn.TransactionTerminated) <= 1
    if txn.TransactionTerminated in types:
        assert types[-1] is txn.TransactionTerminated
        assert tx.terminated and tx.get_timer() is None
    assert types.count(txn.TransactionTimeout) <= 1
    if isinstance(tx, txn.ClientTransaction):
        # A client fails once and for all; only an Accepted server outlives a transport error.
        assert types.count(txn.TransactionTimeout) + types.count(txn.TransportError) <= 1


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(["INVITE", "OPTIONS"]), reliable=st.booleans(), steps=CLIENT_STEPS)
def test_client_transaction_invariants(method, reliable, steps):
    branch = "z9hG4bK-prop"
    tx = txn.ClientTransaction(request(method, branch=branch), reliable, 0.0)
    now, all_events, finals = 0.0, [], []
    for kind, value in steps:
        was_terminated = tx.terminated
        tx.messages_to_send()
        if kind == "response":
            tx.receive(response(value, method=method, branch=branch), now)
        elif kind == "wait":
            now += value
            tx.handle_timer(now)
        else:
            tx.transport_error(now)
        new_events = events(tx)
        if was_terminated:
            assert new_events == [] and tx.messages_to_send() == []
        all_events += new_events
        finals += [e.response.status for e in new_events
                   if isinstance(e, txn.ResponseReceived) and e.response.status >= 200]
        check_invariants(tx, all_events)
    # At most one final response reaches the TU, except 2xx to INVITE (RFC 6026).
    if method == "INVITE":
        assert len([s for s in finals if s >= 300]) <= 1
        assert not (any(s < 300 for s in finals) and any(s >= 300 for s in finals))
    else:
        assert len(finals) <= 1


SERVER_STEPS = st.lists(st.one_of(
    st.tuples(st.just("send"), st.sampled_from([100, 180, 200, 486])),
    st.tuples(st.just("request"), st.none()),
    st.tuples(st.just("ack"), st.none()),
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=20.0)),
    st.tuples(st.just("transport_error"), st.none()),
), max_size=25)


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(["INVITE", "BYE"]), reliable=st.booleans(), steps=SERVER_STEPS)
def test_server_transaction_invariants(method, reliable, steps):
    via = "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-prop"
    original = request(method, via=via)
    tx = txn.ServerTransaction(original, reliable, 0.0)
    now, all_events, sent_finals = 0.0, [], []
    for kind, value in steps:
        was_terminated = tx.terminated
        if kind == "send":
            tx.send_response(original.make_response(value), now)
        elif kind == "request":
            tx.receive(request(method, via=via), now)
        elif kind == "ack":
            tx.receive(request("ACK", via=via, cseq_method="ACK"), now)
        elif kind == "wait":
            now += value
            tx.handle_timer(now)
        else:
            tx.transport_error(now)
        sent = tx.messages_to_send()
        new_events = events(tx)
        if was_terminated:
            assert sent == [] and new_events == []
        sent_finals += [m.status for m in sent if m.status >= 200]
        all_events += new_events
        check_invariants(tx, all_events)
    # Only one final response ever goes out, retransmitted or (2xx to INVITE) resent by the TU.
    assert len(set(sent_finals)) <= 1


def test_full_table_makes_room_by_dropping_a_lingering_transaction_only():
    # 20 calls a second leave BYE server transactions Completed for Timer J (32 s over UDP):
    # they only absorb retransmissions, so a full table drops the oldest of them for new work.
    table = txn.TransactionTable(max_transactions=2)
    done = txn.ServerTransaction(inbound_bye("z9hG4bK-done"), False, 0.0)
    done.send_response(done.request.make_response(200), 0.0)
    busy = txn.ServerTransaction(inbound_bye("z9hG4bK-busy"), False, 0.0)  # Trying: working
    assert done.lingering and not busy.lingering
    assert table.add(done) and table.add(busy)
    newcomer = txn.ServerTransaction(inbound_bye("z9hG4bK-new"), False, 0.0)
    assert table.add(newcomer)
    assert table.evicted == 1 and len(table) == 2
    assert table.lookup(inbound_bye("z9hG4bK-done")) is None
    assert table.lookup(inbound_bye("z9hG4bK-busy")) is busy
    # nothing lingers now: the table refuses, as before
    assert not table.add(txn.ServerTransaction(inbound_bye("z9hG4bK-4"), False, 0.0))
    assert table.evicted == 1


def test_accepted_invite_server_lingers_only_after_its_ack():
    server = txn.ServerTransaction(inbound_invite(), False, 0.0)
    server.send_response(response(200, branch="z9hG4bK-in-1"), 0.0)
    assert server.state == txn.ACCEPTED and not server.lingering  # the 2xx still needs its ACK
    server.receive(request("ACK", branch="z9hG4bK-in-1", to_tag="flat-tag"), 0.1)
    assert server.lingering


def test_the_ack_for_a_2xx_in_its_own_transaction_marks_the_accepted_invite_acked():
    # §13.2.2.4: the ACK for a 2xx carries a new branch, so it matches no transaction; the
    # table finds the INVITE by Call-ID, CSeq number and From tag (RFC 6026 §8.7), so a full
    # table can drop it instead of refusing calls once 32 s of INVITEs fill it (issue 14).
    table = txn.TransactionTable()
    server = txn.ServerTransaction(inbound_invite(), False, 0.0)
    assert table.add(server)
    ack = request("ACK", via="SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-ack-new",
                  call_id="in-1@127.0.0.1", to_tag="flat-tag")
    table.ack_for_2xx(ack)
    assert not server.acked  # no 2xx sent yet: nothing to acknowledge
    server.send_response(response(200, branch="z9hG4bK-in-1"), 0.0)
    table.ack_for_2xx(request("ACK", via="SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-x",
                              call_id="other@127.0.0.1", to_tag="flat-tag"))
    table.ack_for_2xx(request("ACK", via="SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-y",
                              call_id="in-1@127.0.0.1", seq=2, to_tag="flat-tag"))
    assert not server.lingering  # another call's ACK, another CSeq: not this one
    table.ack_for_2xx(ack)
    assert server.acked and server.lingering
    assert events(server) == []  # the ACK went to the TU by the endpoint, not through here
    table.remove(server)
    assert table._invites == {}  # the index follows the table


def test_a_dropped_transaction_is_handed_out_once_so_its_owner_forgets_it():
    table = txn.TransactionTable(max_transactions=1)
    done = txn.ServerTransaction(inbound_bye("z9hG4bK-done"), False, 0.0)
    done.send_response(done.request.make_response(200), 0.0)
    assert table.add(done) and table.evicted_transactions() == []
    assert table.add(txn.ServerTransaction(inbound_bye("z9hG4bK-new"), False, 0.0))
    assert table.evicted_transactions() == [done]
    assert table.evicted_transactions() == []
