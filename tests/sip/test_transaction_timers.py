"""The transaction table's timers (a deadline heap, issue 14): every RFC 3261 §17 / RFC 6026
timer fires when it did with the scan over every transaction, in the same order, and the heap
stays bounded. Driven by real messages and a fake clock; also runs under MicroPython."""

import random

from firmware import compat
from firmware.sip import message
from firmware.sip import transaction as txn

REQUEST_TEXT = (
    "{method} sip:door@127.0.0.1:5070 SIP/2.0\r\n"
    "Via: {via}\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:flat@127.0.0.1>;tag=from-{label}\r\n"
    "To: <sip:door@127.0.0.1>{to_tag}\r\n"
    "Call-ID: call-{label}@127.0.0.1\r\n"
    "CSeq: 1 {cseq_method}\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)

RESPONSE_TEXT = (
    "SIP/2.0 {status} Whatever\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{label}\r\n"
    "From: <sip:flat@127.0.0.1>;tag=from-{label}\r\n"
    "To: <sip:door@127.0.0.1>;tag=to-{label}\r\n"
    "Call-ID: call-{label}@127.0.0.1\r\n"
    "CSeq: 1 {method}\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def request(method, label, ours, to_tag=None, cseq_method=None, branch=None):
    """A request we send (`ours`: our Via) or receive (the peer's Via, port 5080)."""
    via = "SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-%s" % (5070 if ours else 5080,
                                                           branch or label)
    text = REQUEST_TEXT.format(method=method, via=via, label=label,
                               to_tag=";tag=" + to_tag if to_tag else "",
                               cseq_method=cseq_method or method)
    parsed = message.parse(text.encode())
    assert isinstance(parsed, message.Request)
    return parsed


def response(status, method, label):
    parsed = message.parse(RESPONSE_TEXT.format(status=status, method=method,
                                                label=label).encode())
    assert isinstance(parsed, message.Response)
    return parsed


def client(method, label, reliable=False, now=0.0):
    return txn.ClientTransaction(request(method, label, True), reliable, now)


def server(method, label, reliable=False, now=0.0):
    return txn.ServerTransaction(request(method, label, False), reliable, now)


class ScanTable(txn.TransactionTable):
    """The reference: the table as it was before the heap, scanning every transaction."""

    def get_timer(self):
        deadlines = [t.get_timer() for t in self]
        deadlines = [d for d in deadlines if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now):
        events = []
        for transaction in self:
            deadline = transaction.get_timer()
            if deadline is not None and deadline <= now:
                transaction.handle_timer(now)
            while True:
                event = transaction.next_event()
                if event is None:
                    break
                events.append((transaction, event))
            if transaction.terminated:
                for sent in transaction.messages_to_send():
                    self._orphan_messages.append((transaction, sent))
                self.remove(transaction)
        return events

    def messages_to_send(self):
        messages, self._orphan_messages = self._orphan_messages, []
        for transaction in self:
            for sent in transaction.messages_to_send():
                messages.append((transaction, sent))
        return messages


def first_line(sent):
    if isinstance(sent, message.Request):
        return sent.method
    return str(sent.status)


def in_order(pairs):
    """The table's order, which MicroPython's unordered dicts give the reference in hash
    order: there compare per transaction, each one's own in its order (MicroPython's sort is
    not stable: the index keeps it)."""
    if not compat.MICROPYTHON:
        return pairs
    return [pair for _, _, pair in sorted((pair[0], index, pair)
                                          for index, pair in enumerate(pairs))]


class World:
    """One table and its transactions by label, driven by the same steps as its twin."""

    def __init__(self, table):
        self.table = table
        self.by_label = {}
        self.labels = {}

    def label(self, transaction):
        return self.labels[transaction]

    def step(self, step, now):
        """Apply one step; return what it observably produced."""
        kind = step[0]
        table = self.table
        if kind == "add":
            _, side, method, label, reliable = step
            make = client if side == "client" else server
            transaction = make(method, label, reliable, now)
            self.by_label[label] = transaction
            self.labels[transaction] = label
            added = table.add(transaction)
            return [added, sorted(self.label(t) for t in table.evicted_transactions())]
        if kind == "handle":
            return in_order([(self.label(t), type(e).__name__) for t, e in table.handle_timer(now)])
        if kind == "send":
            return in_order([(self.label(t), first_line(m)) for t, m in table.messages_to_send()])
        if kind == "make_room":
            table.make_room(step[1])
            return sorted(self.label(t) for t in table.evicted_transactions())
        transaction = self.by_label.get(step[1])
        if transaction is None:
            return None
        label, method = step[1], transaction.method
        is_client = isinstance(transaction, txn.ClientTransaction)
        if kind == "answer":
            status = step[2]
            if is_client:
                transaction.receive(response(status, method, label), now)
            else:
                transaction.send_response(transaction.request.make_response(
                    status, to_tag="to-" + label), now)
        elif kind == "again" and not is_client:
            transaction.receive(request(method, label, False), now)
        elif kind == "ack" and not is_client:
            transaction.receive(request("ACK", label, False, to_tag="to-" + label,
                                        cseq_method="ACK"), now)
            table.ack_for_2xx(request("ACK", label, False, to_tag="to-" + label,
                                      cseq_method="ACK", branch=label + "-2xx"))
        elif kind == "error":
            transaction.transport_error(now)
        elif kind == "remove":
            table.remove(transaction)
        elif kind == "drain":  # the owner pumps this one itself, as the endpoint does
            found = []
            while True:
                event = transaction.next_event()
                if event is None:
                    break
                found.append(type(event).__name__)
            return found + [first_line(m) for m in transaction.messages_to_send()]
        return None


def random_steps(rng, count, labels):
    steps = []
    serial = 0
    for _ in range(count):
        roll = rng.random()
        if roll < 0.22:
            serial += 1
            side = rng.choice(["client", "server"])
            method = rng.choice(["INVITE", "INVITE", "OPTIONS", "BYE"])
            steps.append(("add", side, method, "t%d" % serial, rng.random() < 0.25))
        elif roll < 0.45:
            steps.append(("advance", rng.choice(["exact", "exact", "jump", "small"]),
                          rng.uniform(0.0, 12.0)))
        elif roll < 0.58:
            steps.append(("answer", "t%d" % rng.randint(1, max(serial, 1)),
                          rng.choice([100, 180, 200, 200, 486])))
        elif roll < 0.66:
            steps.append(("ack", "t%d" % rng.randint(1, max(serial, 1))))
        elif roll < 0.72:
            steps.append(("again", "t%d" % rng.randint(1, max(serial, 1))))
        elif roll < 0.75:
            steps.append(("error", "t%d" % rng.randint(1, max(serial, 1))))
        elif roll < 0.78:
            steps.append(("remove", "t%d" % rng.randint(1, max(serial, 1))))
        elif roll < 0.81:
            steps.append(("make_room", rng.randint(0, 3)))
        elif roll < 0.88:
            steps.append(("drain", "t%d" % rng.randint(1, max(serial, 1))))
        else:
            steps.append(("send",))
    return steps


def reference_deadline(table):
    deadlines = [t.get_timer() for t in table]
    deadlines = [d for d in deadlines if d is not None]
    return min(deadlines) if deadlines else None


def run_twins(seed, count, max_transactions):
    rng = random.Random(seed)
    steps = random_steps(rng, count, max_transactions)
    heap = World(txn.TransactionTable(max_transactions=max_transactions))
    scan = World(ScanTable(max_transactions=max_transactions))
    now = 0.0
    fired = 0
    for index, step in enumerate(steps):
        if step[0] == "advance":
            deadline = scan.table.get_timer()
            if step[1] == "exact" and deadline is not None:
                now = max(now, deadline)  # exactly on time
            elif step[1] == "small":
                now += step[2] / 100
            else:
                now += step[2]
            step = ("handle",)
        got, expected = heap.step(step, now), scan.step(step, now)
        assert got == expected, (seed, index, step, got, expected)
        if step[0] == "handle":
            fired += len(got)
        assert heap.table.get_timer() == scan.table.get_timer() == \
            reference_deadline(heap.table), (seed, index, step)
        assert [heap.label(t) for t in heap.table] == [scan.label(t) for t in scan.table]
        assert heap.table.evicted == scan.table.evicted
        table = heap.table
        assert len(table._heap) <= max(2 * table._live, 1), (seed, index, len(table._heap))
    return fired


def test_get_timer_and_handle_timer_match_a_scan_over_every_transaction():
    # A random mix of both sides' four machines, reliable and not, every input, the owner
    # pumping some itself, removals, a full table making room: the same deadlines, events
    # (in the same order) and messages as the scan over the whole table.
    fired = 0
    for seed in range(12):
        fired += run_twins(seed, 400, max_transactions=12)
    assert fired > 300  # the steps did drive timers (about 500 events)


def test_the_heap_matches_the_scan_with_a_large_table():
    assert run_twins(99, 1500, max_transactions=254) > 100


def drive(table, until):
    """Fire the table's timers exactly on time up to `until`: [(time, label, event)]."""
    fired = []
    while True:
        deadline = table.get_timer()
        if deadline is None or deadline > until:
            return fired
        for transaction, event in table.handle_timer(deadline):
            fired.append((deadline, transaction.branch[8:], type(event).__name__))
        for transaction, sent in table.messages_to_send():
            fired.append((deadline, transaction.branch[8:], first_line(sent)))


def test_timer_a_doubles_until_timer_b_ends_an_unanswered_invite():
    table = txn.TransactionTable()
    assert table.add(client("INVITE", "a"))
    assert table.messages_to_send()[0][1].method == "INVITE"
    fired = drive(table, 100)
    # §17.1.1.2: retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5; Timer B at 64*T1 = 32
    assert [t for t, _, what in fired if what == "INVITE"] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert fired[-2:] == [(32.0, "a", "TransactionTimeout"), (32.0, "a", "TransactionTerminated")]
    assert len(table) == 0 and table.get_timer() is None and table._heap == []


def test_timer_e_goes_to_t2_after_a_provisional_and_timer_f_times_out():
    table = txn.TransactionTable()
    options = client("OPTIONS", "e")
    table.add(options)
    table.messages_to_send()
    assert drive(table, 1.0) == [(0.5, "e", "OPTIONS")]
    options.receive(response(180, "OPTIONS", "e"), 1.0)  # Proceeding: re-armed every T2
    assert table.get_timer() == 1.5  # Timer E as armed before
    fired = drive(table, 100)
    times = [t for t, _, what in fired if what == "OPTIONS"]
    assert times == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert [what for _, _, what in fired][:1] == ["ResponseReceived"]  # collected at 1.5
    assert fired[-2:] == [(32.0, "e", "TransactionTimeout"), (32.0, "e", "TransactionTerminated")]


def test_timer_g_retransmits_a_failure_until_timer_h_and_an_ack_starts_timer_i():
    table = txn.TransactionTable()
    lost, acked = server("INVITE", "h"), server("INVITE", "i")
    table.add(lost)
    table.add(acked)
    assert drive(table, 0.0) == [(0.0, "h", "100"), (0.0, "i", "100")]  # Timer Trying
    lost.send_response(lost.request.make_response(486, to_tag="to-h"), 0.0)
    acked.send_response(acked.request.make_response(486, to_tag="to-i"), 0.0)
    assert [label for _, label in
            [(t.branch, first_line(m)) for t, m in table.messages_to_send()]] == ["486", "486"]
    fired = drive(table, 1.0)
    acked.receive(request("ACK", "i", False, to_tag="to-i", cseq_method="ACK"), 1.0)
    fired += drive(table, 100)
    # §17.2.1: G at 0.5, 1.5, 3.5, then every T2 = 4 s; H at 32; I 5 s after the ACK
    assert [t for t, label, what in fired if label == "h" and what == "486"] == \
        [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(t, what) for t, label, what in fired if label == "i"] == [
        (0.5, "486"), (6.0, "TransactionTerminated")]
    assert fired[-2:] == [(32.0, "h", "TransactionTimeout"), (32.0, "h", "TransactionTerminated")]


def test_timers_d_j_k_l_m_end_their_transactions_on_time():
    table = txn.TransactionTable()
    d, m, k = client("INVITE", "d"), client("INVITE", "m"), client("OPTIONS", "k")
    j, l_ = server("BYE", "j"), server("INVITE", "l")
    for transaction in (d, m, k, j, l_):
        assert table.add(transaction)
    drive(table, 0.0)
    d.receive(response(486, "INVITE", "d"), 0.2)  # Timer D: 32 s
    m.receive(response(200, "INVITE", "m"), 0.3)  # Timer M: 32 s (RFC 6026)
    k.receive(response(200, "OPTIONS", "k"), 0.4)  # Timer K: 5 s
    j.send_response(j.request.make_response(200, to_tag="to-j"), 0.6)  # Timer J: 32 s
    l_.send_response(l_.request.make_response(200, to_tag="to-l"), 0.7)  # Timer L: 32 s
    table.handle_timer(0.7)
    table.messages_to_send()
    ends = [(label, t) for t, label, what in drive(table, 100)
            if what == "TransactionTerminated"]
    assert [label for label, _ in ends] == ["k", "d", "m", "j", "l"]
    expected = {"k": 5.4, "d": 32.2, "m": 32.3, "j": 32.6, "l": 32.7}
    for label, at in ends:
        assert abs(at - expected[label]) < 1e-9, (label, at)
    assert len(table) == 0 and table.get_timer() is None


def test_zero_length_timers_on_reliable_transports_end_at_once():
    table = txn.TransactionTable()
    bye = server("BYE", "r", reliable=True)
    table.add(bye)
    bye.send_response(bye.request.make_response(200, to_tag="to-r"), 1.0)  # Timer J = 0
    assert bye.terminated
    assert table.get_timer() is None
    assert [(t.branch, type(e).__name__) for t, e in table.handle_timer(1.0)] == [
        ("z9hG4bK-r", "TransactionTerminated")]
    assert [first_line(m) for _, m in table.messages_to_send()] == ["200"]
    assert len(table) == 0


def test_many_transactions_fire_in_deadline_order_and_the_table_order_within_a_time():
    table = txn.TransactionTable(max_transactions=254)
    for index in range(254):  # OPTIONS sent 10 ms apart, from the last to the first
        assert table.add(client("OPTIONS", "n%d" % index, reliable=True,
                                now=(253 - index) * 0.01))
    table.messages_to_send()
    fired = drive(table, 100)
    assert len(fired) == 2 * 254  # a timeout and the end of each, each at its own Timer F
    labels = [label for _, label, what in fired if what == "TransactionTimeout"]
    assert labels == ["n%d" % index for index in range(253, -1, -1)]
    # due together: in the table's order (as added), whatever the deadlines
    for index in range(254):
        assert table.add(client("OPTIONS", "s%d" % index, reliable=True,
                                now=(253 - index) * 0.01))
    fired = table.handle_timer(100.0)
    assert [t.branch[8:] for t, e in fired if isinstance(e, txn.TransactionTimeout)] == \
        ["s%d" % index for index in range(254)]
    assert len(table) == 0 and table._heap == []


def test_terminated_and_removed_transactions_leave_no_timer_and_the_heap_stays_bounded():
    table = txn.TransactionTable()
    invites = [client("INVITE", "x%d" % index) for index in range(100)]
    for invite in invites:
        table.add(invite)
    assert table.get_timer() == 0.5
    for invite in invites[:50]:  # a 180 stops Timers A and B: stale entries, no timer
        invite.receive(response(180, "INVITE", invite.branch[8:]), 0.1)
    for invite in invites[50:99]:
        invite.transport_error(0.2)  # terminated: gone at the next handle_timer
    assert table.get_timer() == 0.5  # x99's Timer A
    assert len(table._heap) <= 2 * table._live
    table.remove(invites[99])
    assert table.get_timer() is None
    events = table.handle_timer(0.3)
    assert len([e for _, e in events if isinstance(e, txn.TransportError)]) == 49
    assert len(table) == 50 and table._heap == [] and table._live == 0
    # a client re-armed 64 times over leaves at most one live entry and a few stale ones
    options = client("OPTIONS", "again")
    table.add(options)
    turns = 0
    while options in table:  # Timer E, re-armed each time, until Timer F
        options.receive(response(100, "OPTIONS", "again"), 0.0)
        table.handle_timer(table.get_timer())
        assert len(table._heap) <= 2
        turns += 1
    assert turns == 9 and table.get_timer() is None


def test_a_transaction_fed_outside_the_table_is_seen_at_the_next_turn():
    # The owner feeds a transaction directly (a response, the TU's answer): the table finds
    # its new deadline, its events and its messages without scanning the others.
    table = txn.TransactionTable()
    idle = [client("INVITE", "idle%d" % index) for index in range(5)]
    for invite in idle:
        table.add(invite)
        invite.receive(response(180, "INVITE", invite.branch[8:]), 0.0)
    busy = server("INVITE", "busy")
    table.add(busy)
    assert [(t.branch[8:], type(e).__name__) for t, e in table.handle_timer(0.0)] == \
        [(t.branch[8:], "ResponseReceived") for t in idle]
    table.messages_to_send()
    assert table.get_timer() is None
    busy.send_response(busy.request.make_response(200, to_tag="to-busy"), 1.0)
    assert table.get_timer() == 33.0  # Timer L
    assert [first_line(m) for _, m in table.messages_to_send()] == ["200"]
    assert table.handle_timer(1.0) == []
