"""Registrar dialects on the UA, no I/O (issue 19): Path and Service-Route (RFC 3327, RFC 3608),
several Contact bindings in the 200 (only ours counts), over the in-memory network of
test_call.py with a scripted registrar/proxy."""

from firmware.session.routing import next_hop
from firmware.sip.call import CallManager
from firmware.sip.endpoint import Peer
from firmware.sip.message import parse
from firmware.sip.registration import STATE_REGISTERED
from tests.sip.test_call import OFFER, PROXY, Network, response_text
from tests.sip.test_keepalive import Door

SERVICE_ROUTE = "<sip:orig@10.0.0.9:5060;lr>"


class Pbx:
    """Answers REGISTER 200 with another phone's binding first, ours (expires 1200), a Path and
    a Service-Route; records everything else."""

    def __init__(self, net, service_route=(SERVICE_ROUTE,)):
        self.address = PROXY
        self.service_route = service_route
        self.requests = []
        self._out = []
        net.attach(self)

    def receive(self, data, source, now):
        request = parse(data)
        self.requests.append(request)
        if request.method != "REGISTER":
            return
        ours = request.headers.get("Contact")
        extra = ["Contact: <sip:deskphone@10.0.0.7:5060>;expires=3600",
                 "Contact: %s;expires=1200" % ours, "Path: <sip:edge@10.0.0.8;lr>"]
        extra += ["Service-Route: " + route for route in self.service_route]
        self._out.append((response_text(request, 200, to_tag="reg", extra=extra),
                          Peer("udp", source.host, source.port)))

    def datagrams_to_send(self):
        out, self._out = self._out, []
        return out

    def get_timer(self):
        return None

    def handle_timer(self, now):
        pass


def _registered(net, service_route=(SERVICE_ROUTE,)):
    pbx = Pbx(net, service_route)
    door = Door(net, keepalive=0)
    calls = CallManager(door.ua)
    net.run(0.1)
    assert door.state == STATE_REGISTERED
    return pbx, door, calls


def test_register_says_path_and_only_our_binding_counts():
    net = Network()
    pbx, door, calls = _registered(net)
    register = pbx.requests[0]
    assert "path" in register.headers.get_all("Supported")
    assert door.ua.registration.expires == 1200  # ours, not the desk phone's 3600
    # refreshed at 1200 - 90 s after it was sent, not at half of 3600
    assert abs(door.ua.registration.next_refresh - 1110) < 0.2


def test_service_route_is_the_preloaded_route_of_our_invites():
    net = Network()
    pbx, door, calls = _registered(net)
    target = "sip:flat1@example.org"
    calls.place_call([(target, next_hop(target, door.ua.registrar, "udp"))], OFFER, net.now)
    net.run()
    invite = [r for r in pbx.requests if r.method == "INVITE"][0]
    assert invite.headers.get_all("Route") == [SERVICE_ROUTE]
    assert str(invite.uri) == target  # the Request-URI stays the target (loose routing)


def test_without_service_route_no_route_is_preloaded():
    net = Network()
    pbx, door, calls = _registered(net, service_route=())
    target = "sip:flat1@example.org"
    calls.place_call([(target, next_hop(target, door.ua.registrar, "udp"))], OFFER, net.now)
    net.run()
    invite = [r for r in pbx.requests if r.method == "INVITE"][0]
    assert "Route" not in invite.headers


def test_an_authentication_id_other_than_the_extension_answers_the_challenge():
    """3CX: the extension number is the SIP user (From, To, Contact), the Authentication ID
    the digest user name."""
    from firmware.sip.digest import Challenge
    from firmware.sip.useragent import UserAgent

    ua = UserAgent({"host": "127.0.0.1", "port": 5060, "username": "101", "password": "pw",
                    "domain": "pbx.example", "registrar": Peer("udp", "127.0.0.1", 5070),
                    "auth_username": "Xq7pA2"})
    value = ua.answer_challenge(Challenge.parse('Digest realm="3CXPhoneSystem", nonce="n"'),
                                "REGISTER", "sip:pbx.example")
    assert 'username="Xq7pA2"' in value
    assert ua.aor() == "sip:101@pbx.example" and "sip:101@" in ua.contact_uri()
