"""The endpoint (firmware/sip/endpoint.py): Via stamping and RFC 3581, where responses go, and
retransmissions reaching the wire, checked on the datagrams it hands out."""

from firmware.sip.endpoint import (
    Endpoint,
    MessageRejected,
    Peer,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
)
from firmware.sip.message import Request, Via, parse
from firmware.sip.transaction import T1, T2

PHONE = Peer("udp", "127.0.0.1", 5062)
NATTED = Peer("udp", "127.0.0.5", 40000)  # the address the phone's datagrams really come from


def request_text(method="OPTIONS", via="SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKe1;rport",
                 call_id="e1@phone", cseq=1, extra=()):
    lines = ["%s sip:door@127.0.0.1:5060 SIP/2.0" % method, "Via: " + via,
             "Max-Forwards: 70", "From: <sip:flat@127.0.0.1>;tag=ft",
             "To: <sip:door@127.0.0.1>", "Call-ID: " + call_id,
             "CSeq: %d %s" % (cseq, method)] + list(extra) + ["Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def events(endpoint):
    found = []
    while True:
        event = endpoint.next_event()
        if event is None:
            return found
        found.append(event)


def sent(endpoint):
    return [(parse(data), peer) for data, peer in endpoint.datagrams_to_send()]


def outgoing(method, uri="sip:flat@127.0.0.1:5062"):
    request = Request(method, uri)
    request.headers.set("From", "<sip:door@127.0.0.1>;tag=dt")
    request.headers.set("To", "<%s>" % uri)
    request.headers.set("Call-ID", "out1@door")
    request.headers.set("CSeq", "1 %s" % method)
    return request


def test_received_and_rport_are_filled_in_from_the_source():
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.receive(request_text(), NATTED, 0.0)
    [event] = events(endpoint)
    assert isinstance(event, RequestReceived)
    via = Via.parse(event.request.headers.get("Via"))
    assert via.params["received"] == "127.0.0.5" and via.params["rport"] == "40000"
    assert via.branch == "z9hG4bKe1"


def test_received_is_added_without_rport_when_the_host_differs():
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.receive(request_text(via="SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKe2"), NATTED,
                     0.0)
    [event] = events(endpoint)
    via = Via.parse(event.request.headers.get("Via"))
    assert via.params["received"] == "127.0.0.5" and "rport" not in via.params
    endpoint.send_response(event.transaction, event.request.make_response(200), 0.0)
    [(response, peer)] = sent(endpoint)
    assert (peer.host, peer.port) == ("127.0.0.5", 5062)  # received host, sent-by port


def test_responses_to_udp_requests_go_to_received_and_rport():
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.receive(request_text(), NATTED, 0.0)
    [event] = events(endpoint)
    endpoint.send_response(event.transaction, event.request.make_response(200), 0.0)
    [(response, peer)] = sent(endpoint)
    assert response.status == 200
    assert (peer.transport, peer.host, peer.port) == ("udp", "127.0.0.5", 40000)
    assert response.headers.get("Server") == "Doorline"


def test_invite_gets_100_trying_at_the_end_of_the_turn():
    # RFC 3261 §17.2.1: the 100 is due once the turn that delivered the INVITE is over (the
    # owner's next handle_timer, at once); a TU that has not responded by then gets it sent
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.receive(request_text("INVITE"), PHONE, 0.0)
    assert sent(endpoint) == []
    assert endpoint.get_timer() == 0.0
    endpoint.handle_timer(0.0)
    [(trying, peer)] = sent(endpoint)
    assert trying.status == 100 and peer == PHONE


def test_invite_answered_in_its_turn_gets_no_100_trying():
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.receive(request_text("INVITE"), PHONE, 0.0)
    [event] = events(endpoint)
    answer = event.request.make_response(200, to_tag="door")
    endpoint.send_response(event.transaction, answer, 0.0)
    endpoint.handle_timer(endpoint.get_timer())
    assert [response.status for response, _ in sent(endpoint)] == [200]


def test_request_retransmissions_reach_the_wire():
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.send_request(outgoing("OPTIONS"), PHONE, 0.0, context="ctx")
    [(first, peer)] = sent(endpoint)
    via = Via.parse(first.headers.get("Via"))
    assert (via.host, via.port, via.transport) == ("127.0.0.1", 5060, "UDP")
    assert "rport" in via.params and via.branch.startswith("z9hG4bK")
    assert first.headers.get("Max-Forwards") == "70" and peer == PHONE
    times = []
    now = 0.0
    for _ in range(20):
        now = endpoint.get_timer()
        endpoint.handle_timer(now)
        for message, peer in sent(endpoint):
            assert message.to_bytes() == first.to_bytes() and peer == PHONE
            times.append(now)
        if any(isinstance(e, RequestFailed) for e in events(endpoint)):
            break
    assert times[:5] == [T1, 3 * T1, 7 * T1, 7 * T1 + T2, 7 * T1 + 2 * T2]  # Timer E (§17.1.2.2)
    assert now == 64 * T1  # Timer F


def test_invite_retransmissions_and_the_response_back_to_the_context():
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.send_request(outgoing("INVITE"), PHONE, 0.0, context="ctx")
    [(invite, _)] = sent(endpoint)
    endpoint.handle_timer(T1)
    assert [m.to_bytes() for m, _ in sent(endpoint)] == [invite.to_bytes()]
    endpoint.handle_timer(3 * T1)
    assert [m.to_bytes() for m, _ in sent(endpoint)] == [invite.to_bytes()]
    ringing = invite.make_response(180, to_tag="ft")
    endpoint.receive(ringing.to_bytes(), PHONE, 2.0)
    [event] = events(endpoint)
    assert isinstance(event, ResponseReceived) and event.context == "ctx"
    assert event.response.status == 180
    endpoint.handle_timer(10.0)
    assert sent(endpoint) == []  # Proceeding: no more retransmissions


def test_response_for_another_sent_by_is_dropped():
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.send_request(outgoing("OPTIONS"), PHONE, 0.0, context="ctx")
    [(request, _)] = sent(endpoint)
    response = request.make_response(200, to_tag="x")
    response.headers.set("Via", "SIP/2.0/UDP 127.0.0.9:5060;branch=%s" %
                         Via.parse(request.headers.get("Via")).branch)
    endpoint.receive(response.to_bytes(), PHONE, 0.1)
    [event] = events(endpoint)
    assert isinstance(event, MessageRejected)


def test_stray_2xx_to_invite_goes_up_without_a_transaction():
    endpoint = Endpoint("127.0.0.1", 5060)
    text = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKgone\r\n"
            b"From: <sip:door@127.0.0.1>;tag=dt\r\nTo: <sip:flat@127.0.0.1>;tag=ft\r\n"
            b"Call-ID: gone@door\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    endpoint.receive(text, PHONE, 0.0)
    [event] = events(endpoint)
    assert isinstance(event, ResponseReceived) and event.transaction is None


def test_malformed_request_gets_a_stateless_400_to_its_source():
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.receive(request_text(extra=("Max-Forwards: lots",)), PHONE, 0.0)
    [(response, peer)] = sent(endpoint)
    assert response.status == 400 and peer.port == 5062
    assert isinstance(events(endpoint)[0], MessageRejected)


def test_full_table_answers_503():
    endpoint = Endpoint("127.0.0.1", 5060, max_transactions=1)
    endpoint.receive(request_text(), PHONE, 0.0)
    endpoint.receive(request_text(via="SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKe9",
                                  call_id="other@phone"), PHONE, 0.0)
    [(response, _)] = sent(endpoint)
    assert response.status == 503 and response.headers.get("Retry-After") == "5"


def test_a_received_written_by_the_sender_is_overwritten_with_the_real_source():
    """No reflection (issue 12): a Via whose sent-by matches the source but that already
    carries `received=` naming a third address must not send our response there."""
    for via, port in (("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKr1;received=127.0.0.99", 5062),
                      ("SIP/2.0/UDP 127.0.0.1:5062;received=127.0.0.99;branch=z9hG4bKr2;rport",
                       5062),
                      ("SIP/2.0/UDP 127.0.0.99:5062;branch=z9hG4bKr3;received=127.0.0.99",
                       5062)):
        endpoint = Endpoint("127.0.0.1", 5060)
        endpoint.receive(request_text(via=via), PHONE, 0.0)
        [event] = events(endpoint)
        assert Via.parse(event.request.headers.get("Via")).params["received"] == "127.0.0.1"
        endpoint.send_response(event.transaction, event.request.make_response(200), 0.0)
        [(response, peer)] = sent(endpoint)
        assert (peer.host, peer.port) == ("127.0.0.1", port), via
        assert Via.parse(response.headers.get("Via")).params["received"] == "127.0.0.1"


def test_a_forged_received_cannot_aim_a_stateless_refusal_elsewhere():
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.screen = lambda request, source, now: 403
    endpoint.receive(request_text("INVITE", via="SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKr4;"
                                  "received=127.0.0.99"), PHONE, 0.0)
    [(response, peer)] = sent(endpoint)
    assert response.status == 403 and (peer.host, peer.port) == ("127.0.0.1", 5062)


def test_a_full_table_keeps_taking_calls_and_forgets_what_it_dropped():
    """Calls at a steady rate over UDP leave each INVITE (Timer L) and BYE (Timer J) server
    transaction for 32 s. A full table drops the oldest lingering ones: the ACKed INVITEs (the
    ACK for a 2xx comes with a new branch, §13.2.2.4) as well as the BYEs, so no call is ever
    refused for room, and the endpoint keeps nothing about the dropped ones (issue 14: it kept
    every one, ~130 objects per call, for ever)."""
    endpoint = Endpoint("127.0.0.1", 5060, max_transactions=8)
    for n in range(40):
        call_id, now = "c%d@phone" % n, n * 0.05
        endpoint.receive(request_text("INVITE", via="SIP/2.0/UDP 127.0.0.1:5062;branch="
                                      "z9hG4bKi%d" % n, call_id=call_id), PHONE, now)
        [invite] = events(endpoint)
        assert invite.transaction is not None, n  # taken, not refused with a 503
        endpoint.send_response(invite.transaction,
                               invite.request.make_response(200, to_tag="dt"), now)
        [(ok, _)] = sent(endpoint)
        assert ok.status == 200
        for method, cseq in (("ACK", 1), ("BYE", 2)):
            endpoint.receive(request_text(method, via="SIP/2.0/UDP 127.0.0.1:5062;branch="
                                          "z9hG4bK%s%d" % (method, n), call_id=call_id,
                                          cseq=cseq), PHONE, now)
        ack, bye = events(endpoint)
        assert ack.transaction is None and bye.transaction is not None
        endpoint.send_response(bye.transaction, bye.request.make_response(200), now)
        sent(endpoint)
        assert len(endpoint.table) <= 8
        assert len(endpoint._destinations) <= 8 and len(endpoint._contexts) <= 8
    assert endpoint.table.evicted + len(endpoint.table) == 2 * 40  # no timer ended any


def test_a_full_table_makes_room_outside_invite_turns():
    """Issue 14: the next INVITE's answer does not pay for dropping a lingering transaction;
    the turns of other requests and of timers make room for it ahead."""
    endpoint = Endpoint("127.0.0.1", 5060, max_transactions=4)

    def bye(n, now):
        endpoint.receive(request_text("BYE", via="SIP/2.0/UDP 127.0.0.1:5062;branch="
                                      "z9hG4bKb%d" % n, call_id="b%d@phone" % n), PHONE, now)
        [event] = events(endpoint)
        endpoint.send_response(event.transaction, event.request.make_response(200), now)

    def invite(n, now):
        endpoint.receive(request_text("INVITE", via="SIP/2.0/UDP 127.0.0.1:5062;branch="
                                      "z9hG4bKi%d" % n, call_id="i%d@phone" % n), PHONE, now)
        [event] = events(endpoint)
        assert event.transaction is not None  # taken, not refused

    invite(0, 0.0)
    invite(1, 0.0)  # both still working (Proceeding): never dropped
    for n in range(3):  # each BYE's turn drops the one before, Completed (Timer J) by then
        bye(n, 0.0)
    assert len(endpoint.table) == 3 and endpoint.table.evicted == 2
    assert len(endpoint._destinations) == 3
    endpoint.handle_timer(0.1)  # a timer's turn: room for two, made now
    assert len(endpoint.table) == 2 and endpoint.table.evicted == 3
    invite(2, 0.2)
    assert len(endpoint.table) == 3 and endpoint.table.evicted == 3  # none dropped in its turn
    bye(3, 0.3)  # nothing lingers while it is added: the table is full again
    assert len(endpoint.table) == 4 and endpoint.table.evicted == 3
    invite(3, 0.4)  # no other turn came: the INVITE's own turn drops, as before
    assert len(endpoint.table) == 4 and endpoint.table.evicted == 4
    assert len(endpoint._destinations) == 4
