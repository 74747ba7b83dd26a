"""UDP keep-alives towards the registrar and NAT mapping changes (firmware/sip/keepalive.py),
driven through the real UserAgent over the in-memory network of test_call.py: a scripted
registrar answers REGISTER (and OPTIONS, when it does) with the Via received/rport a NAT in
between would make it see (RFC 3581)."""

from firmware.sip import keepalive as ka
from firmware.sip.endpoint import Peer
from firmware.sip.message import parse
from firmware.sip.registration import STATE_FAILED, STATE_REGISTERED
from firmware.sip.transaction import T1
from firmware.sip.useragent import KEEPALIVE_DEAD_ERROR, MappingChanged, UserAgent
from tests.sip.test_call import DOOR, PROXY, Network, response_text

INTERVAL = 25


class Registrar:
    """Answers REGISTER 200 (and OPTIONS 200 when `answers_options`) while `alive`, stamping
    the top Via with `public` as the address it saw."""

    def __init__(self, net, answers_options=True):
        self.address = PROXY
        self.alive = True
        self.answers_options = answers_options
        self.public = ("192.0.2.10", 40001)
        self.received = []  # (time, method or "CRLF")
        self.call_ids = []  # (method, Call-ID): retransmissions share one
        self._out = []
        net.attach(self)
        self.net = net

    def receive(self, data, source, now):
        if not data.strip(b"\r\n"):
            self.received.append((now, "CRLF"))
            return
        request = parse(data)
        self.received.append((now, request.method))
        self.call_ids.append((request.method, request.headers.get("Call-ID")))
        if not self.alive or (request.method == "OPTIONS" and not self.answers_options):
            return
        via = request.headers.get("Via").replace(
            ";rport", ";received=%s;rport=%d" % self.public, 1)
        request.headers.set("Via", via)
        extra = ("Contact: %s;expires=600" % request.headers.get("Contact"),) \
            if request.method == "REGISTER" else ()
        self._out.append((response_text(request, 200, to_tag="reg", extra=extra),
                          Peer("udp", source.host, source.port)))

    def datagrams_to_send(self):
        out, self._out = self._out, []
        return out

    def get_timer(self):
        return None

    def handle_timer(self, now):
        pass

    def count(self, method, since=0.0):
        return sum(1 for t, m in self.received if m == method and t >= since)


class Door:
    def __init__(self, net, keepalive=INTERVAL):
        self.address = DOOR
        self.ua = UserAgent({"host": DOOR[0], "port": DOOR[1], "transport": "udp",
                             "username": "door", "password": "secret", "domain": "example.org",
                             "registrar": Peer("udp", *PROXY), "expires": 600,
                             "keepalive": keepalive})
        self.events = []
        self.sent = []  # every request and response the door sent, parsed
        net.attach(self)
        self.ua.start(net.now)

    def receive(self, data, source, now):
        self.ua.receive(data, source, now)
        self._collect()

    def handle_timer(self, now):
        self.ua.handle_timer(now)
        self._collect()

    def get_timer(self):
        return self.ua.get_timer()

    def datagrams_to_send(self):
        out = self.ua.datagrams_to_send()
        self.sent += [parse(data) for data, _ in out if data.strip(b"\r\n")]
        return out

    def _collect(self):
        while True:
            event = self.ua.next_event()
            if event is None:
                return
            self.events.append(event)

    @property
    def state(self):
        return self.ua.registration.state


def test_options_keepalives_every_period_while_registered():
    net = Network()
    registrar = Registrar(net)
    door = Door(net)
    net.run(0.1)
    assert door.state == STATE_REGISTERED and door.ua.mapping == ("192.0.2.10", 40001)
    net.run(4 * INTERVAL)
    probes = [t for t, m in registrar.received if m == "OPTIONS"]
    assert len(probes) == 5  # at registration, then every period
    assert all(abs((b - a) - INTERVAL) < 0.01 for a, b in zip(probes[:-1], probes[1:], strict=True))
    assert door.ua.keepalive.answers_options and door.state == STATE_REGISTERED


def test_a_dead_registrar_is_noticed_within_two_periods():
    net = Network()
    registrar = Registrar(net)
    door = Door(net)
    net.run(30)  # registered, two keep-alives answered
    registrar.alive = False
    died = net.now
    failed_at = None
    for _ in range(200):
        net.run(0.5)
        if door.state == STATE_FAILED:
            failed_at = net.now
            break
    assert failed_at is not None and failed_at - died <= 2 * INTERVAL
    assert door.ua.registration.error == KEEPALIVE_DEAD_ERROR
    # it keeps trying to register (back-off), and is back once the registrar is
    registrar.alive = True
    net.run(30)
    assert door.state == STATE_REGISTERED


def test_a_changed_nat_mapping_re_registers_at_once():
    net = Network()
    registrar = Registrar(net)
    door = Door(net)
    net.run(1)
    registers = registrar.count("REGISTER")
    registrar.public = ("192.0.2.10", 40777)  # the NAT remapped us
    net.run(INTERVAL)  # the next keep-alive's answer shows it
    changed = [e for e in door.events if isinstance(e, MappingChanged)]
    assert len(changed) == 1
    assert (changed[0].old, changed[0].new) == (("192.0.2.10", 40001), ("192.0.2.10", 40777))
    assert registrar.count("REGISTER") == registers + 1
    assert door.state == STATE_REGISTERED and door.ua.mapping == ("192.0.2.10", 40777)
    net.run(2 * INTERVAL)
    assert registrar.count("REGISTER") == registers + 1  # once, not at every keep-alive


def test_a_registrar_ignoring_options_gets_crlf_keepalives_and_stays_registered():
    net = Network()
    registrar = Registrar(net, answers_options=False)
    door = Door(net)
    net.run(1)
    registers = registrar.count("REGISTER")
    net.run(INTERVAL + 1)  # the first OPTIONS unanswered: one REGISTER checks, it works
    assert registrar.count("REGISTER") == registers + 1
    assert door.ua.keepalive.state == ka.CRLF_ONLY and door.state == STATE_REGISTERED
    since = net.now
    net.run(3 * INTERVAL)
    assert registrar.count("CRLF", since) == 3
    # only the one unanswered OPTIONS (retransmitted by its transaction), no new ones
    assert len(set(c for m, c in registrar.call_ids if m == "OPTIONS")) == 1
    assert door.state == STATE_REGISTERED and not any(
        e for e in door.events if getattr(e, "state", None) == STATE_FAILED)


def test_no_keepalives_when_switched_off():
    net = Network()
    registrar = Registrar(net)
    door = Door(net, keepalive=0)
    net.run(3 * INTERVAL)
    assert door.state == STATE_REGISTERED and registrar.count("OPTIONS") == 0
    assert door.ua.keepalive is None


def test_late_answers_to_an_old_keepalive_are_ignored():
    alive = ka.KeepAlive(10)
    alive.registered(0.0)
    assert alive.actions() == [ka.PROBE] and alive.get_timer() == 10.0
    alive.answered(alive.probe, 1.0)
    alive.handle_timer(10.0)
    assert alive.actions() == [ka.PROBE] and alive.state == ka.PROBING
    alive.answered(alive.probe - 1, 11.0)  # the first one's retransmitted answer
    assert alive.state == ka.PROBING
    alive.handle_timer(20.0)
    assert alive.actions() == [ka.DEAD] and alive.state == ka.OFF and alive.get_timer() is None
    assert 64 * T1 > 10  # the transaction would have waited longer than the period


def test_after_a_mapping_change_the_registration_moves_to_the_new_local_port():
    """The runtime answers MappingChanged with a new local port (`move_to_port`): one REGISTER
    from it with the new Contact, the old Contact removed (expires=0) in the same request."""
    net = Network()
    registrar = Registrar(net)
    door = Door(net)
    net.run(1)
    old_contact = door.ua.contact_uri()
    registrar.public = ("192.0.2.10", 40777)
    registers = registrar.count("REGISTER")
    for _ in range(100):  # until the next keep-alive's answer shows the new mapping
        net.run(0.5)
        if any(isinstance(e, MappingChanged) for e in door.events):
            break
    door.ua.move_to_port(DOOR[1] + 100, net.now)  # what the runtime does
    registrar.public = ("192.0.2.10", 41999)  # the NAT maps the new local port anew
    net.run(0.1)
    assert registrar.count("REGISTER") == registers + 1
    register = [m for m in door.sent if m.method == "REGISTER"][-1]
    contacts = register.headers.get_all("Contact")
    assert contacts == ["<%s>" % door.ua.contact_uri(), "<%s>;expires=0" % old_contact]
    assert ":%d" % (DOOR[1] + 100) in contacts[0]
    assert "%s:%d;" % (DOOR[0], DOOR[1] + 100) in register.headers.get("Via")
    assert door.state == STATE_REGISTERED  # its 200 (to the new Via port) was taken
    net.run(1.5)  # no second REGISTER through the old port after MOVE_WAIT
    assert registrar.count("REGISTER") == registers + 1
    # the new port's own mapping is the new baseline, not another change: no port hopping
    net.run(3 * INTERVAL)
    assert len([e for e in door.events if isinstance(e, MappingChanged)]) == 1
    assert registrar.count("REGISTER") == registers + 1
    assert door.ua.mapping == ("192.0.2.10", 41999)


def test_without_a_new_port_it_re_registers_through_the_old_one_after_move_wait():
    net = Network()
    registrar = Registrar(net)
    door = Door(net)
    net.run(1)
    registrar.public = ("192.0.2.10", 40777)
    registers = registrar.count("REGISTER")
    net.run(INTERVAL)
    changed = [e for e in door.events if isinstance(e, MappingChanged)]
    assert changed and registrar.count("REGISTER") == registers + 1
    register = [m for m in door.sent if m.method == "REGISTER"][-1]
    assert register.headers.get_all("Contact") == ["<%s>" % door.ua.contact_uri()]
