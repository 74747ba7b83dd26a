"""RFC 3263 server location (firmware.runtime.resolver.Locator) against a real DNS server.

The server is a few lines of dnspython on 127.0.0.1 (UDP, a free port) answering from a dict;
the Locator talks to it through a real `dns.asyncresolver.Resolver`, so queries, NXDOMAIN and
empty answers travel as real DNS messages.
"""

import asyncio
import random
import socket
import threading

import dns.asyncresolver
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from firmware.runtime.resolver import LocateError, Locator, order_srv

ZONE = {
    # A plain host: no NAPTR, no SRV.
    ("plain.test", "A"): ["192.0.2.10"],
    ("dual.test", "A"): ["192.0.2.11"],
    ("dual.test", "AAAA"): ["2001:db8::11"],
    # SRV by priority, then weight (RFC 2782).
    ("_sip._udp.example.test", "SRV"): [
        "20 0 5062 backup.example.test.",
        "10 0 5061 primary.example.test.",
    ],
    ("_sip._tcp.example.test", "SRV"): ["10 0 5070 primary.example.test."],
    ("_sips._tcp.example.test", "SRV"): ["10 0 5071 primary.example.test."],
    ("example.test", "A"): ["192.0.2.1"],
    ("primary.example.test", "A"): ["192.0.2.2"],
    ("backup.example.test", "A"): ["192.0.2.3"],
    # NAPTR prefers TCP (order 10) over UDP (order 20) (RFC 3263 §4.1).
    ("naptr.test", "NAPTR"): [
        '20 10 "s" "SIP+D2U" "" _sip._udp.naptr.test.',
        '10 10 "s" "SIP+D2T" "" _sip._tcp.naptr.test.',
    ],
    ("_sip._udp.naptr.test", "SRV"): ["10 0 5060 udp.naptr.test."],
    ("_sip._tcp.naptr.test", "SRV"): ["10 0 5090 tcp.naptr.test."],
    ("udp.naptr.test", "A"): ["192.0.2.20"],
    ("tcp.naptr.test", "A"): ["192.0.2.21"],
    # Weighted SRV inside one priority.
    ("_sip._udp.weighted.test", "SRV"): [
        "10 10 5060 light.weighted.test.",
        "10 90 5060 heavy.weighted.test.",
    ],
    ("light.weighted.test", "A"): ["192.0.2.30"],
    ("heavy.weighted.test", "A"): ["192.0.2.31"],
    # Only a TCP SRV and no NAPTR: the transport is found by asking SRV (RFC 3263 §4.1).
    ("_sip._tcp.tcponly.test", "SRV"): ["10 0 5080 tcponly.test."],
    ("tcponly.test", "A"): ["192.0.2.40"],
    # sips: with a NAPTR that offers only UDP: no usable record; _sips._tcp decides.
    ("secure.test", "NAPTR"): ['10 10 "s" "SIP+D2U" "" _sip._udp.secure.test.'],
    ("_sip._udp.secure.test", "SRV"): ["10 0 5060 secure.test."],
    ("_sips._tcp.secure.test", "SRV"): ["10 0 5061 sips.secure.test."],
    ("sips.secure.test", "A"): ["192.0.2.50"],
    ("secure.test", "A"): ["192.0.2.51"],
}


class DnsServer:
    """A one-thread authoritative server for ZONE on 127.0.0.1; `queries` lists (name, type)."""

    def __init__(self, zone):
        self.zone = zone
        self.names = {name for name, _ in zone}
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True, name="test-dns")
        self._thread.start()

    def _serve(self):
        while self._running:
            try:
                wire, client = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.sock.sendto(self.answer(dns.message.from_wire(wire)).to_wire(), client)

    def answer(self, query):
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        if name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif (name, rdtype) in self.zone:  # else NOERROR with no answer (NODATA)
            response.answer.append(
                dns.rrset.from_text(name + ".", 60, "IN", rdtype, *self.zone[name, rdtype]))
        return response

    def close(self):
        self._running = False
        self._thread.join(2.0)
        self.sock.close()


@pytest.fixture
def dns_server():
    server = DnsServer(ZONE)
    yield server
    server.close()


@pytest.fixture
def locate(dns_server):
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_server.port
    resolver.lifetime = 2.0
    locator = Locator(resolver, system_fallback=False)

    def run(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(locator.locate(*args, **kwargs), 5.0))

    return run


def summary(peers):
    return [(p.transport, p.host, p.port) for p in peers]


def test_numeric_address_is_used_as_is_without_dns(locate, dns_server):
    assert summary(locate("127.0.0.1")) == [("udp", "127.0.0.1", 5060)]
    assert summary(locate("127.0.0.1", 5080, "tcp")) == [("tcp", "127.0.0.1", 5080)]
    assert summary(locate("[::1]", None, "tls")) == [("tls", "::1", 5061)]
    assert dns_server.queries == []


def test_explicit_port_asks_only_for_addresses(locate, dns_server):
    # example.test has SRV records; an explicit port must bypass them (RFC 3263 §4.2).
    assert summary(locate("example.test", 5099, "udp")) == [("udp", "192.0.2.1", 5099)]
    assert {rdtype for _, rdtype in dns_server.queries} <= {"A", "AAAA"}


def test_a_and_aaaa_both_become_candidates(locate):
    assert summary(locate("dual.test", 5060, "udp")) == [
        ("udp", "192.0.2.11", 5060), ("udp", "2001:db8::11", 5060)]


def test_srv_lowest_priority_first(locate):
    assert summary(locate("example.test", None, "udp")) == [
        ("udp", "192.0.2.2", 5061), ("udp", "192.0.2.3", 5062)]
    assert summary(locate("example.test", None, "tcp")) == [("tcp", "192.0.2.2", 5070)]


def test_srv_weight_decides_the_order_within_a_priority(locate):
    first = [locate("weighted.test", None, "udp")[0].host for _ in range(120)]
    heavy = first.count("192.0.2.31")
    # 90 % expected; the binomial spread (sd ~3.3) keeps this far from flaky.
    assert 85 <= heavy <= 119, heavy
    assert "192.0.2.30" in first


def test_order_srv_follows_rfc_2782_with_a_given_draw():
    class Record:
        def __init__(self, priority, weight, name):
            self.priority, self.weight, self.name = priority, weight, name

    class Draw:  # uniform(a, b) returns the largest value: the last record of the running sum
        def uniform(self, low, high):
            return high

    records = [Record(2, 5, "c"), Record(1, 0, "zero"), Record(1, 30, "a"), Record(1, 70, "b")]
    assert [r.name for r in order_srv(records, Draw())] == ["b", "a", "zero", "c"]
    assert sorted(r.name for r in order_srv(records, random.Random(1))) == [
        "a", "b", "c", "zero"]


def test_naptr_selects_tcp_then_its_srv(locate, dns_server):
    assert summary(locate("naptr.test")) == [("tcp", "192.0.2.21", 5090)]
    assert ("naptr.test", "NAPTR") in dns_server.queries
    assert ("_sip._tcp.naptr.test", "SRV") in dns_server.queries


def test_without_naptr_srv_queries_find_the_transport(locate):
    assert summary(locate("tcponly.test")) == [("tcp", "192.0.2.40", 5080)]


def test_no_naptr_no_srv_means_a_record_and_default_port(locate):
    assert summary(locate("plain.test")) == [("udp", "192.0.2.10", 5060)]
    assert summary(locate("plain.test", None, "tcp")) == [("tcp", "192.0.2.10", 5060)]
    assert summary(locate("plain.test", None, "tls")) == [("tls", "192.0.2.10", 5061)]


def test_sips_uses_sips_tcp_srv_and_never_a_plain_naptr(locate, dns_server):
    assert summary(locate("secure.test", secure=True)) == [("tls", "192.0.2.50", 5061)]
    assert ("_sips._tcp.secure.test", "SRV") in dns_server.queries
    assert ("_sip._udp.secure.test", "SRV") not in dns_server.queries


def test_nxdomain_raises_locate_error(locate):
    with pytest.raises(LocateError):
        locate("missing.test")
    with pytest.raises(LocateError):
        locate("missing.test", 5060, "udp")


def test_tls_server_name_is_the_domain_not_the_srv_target(locate):
    # RFC 5922 §4.1: the certificate must match the domain of the URI, not the SRV target.
    peers = locate("example.test", None, "tls")
    assert summary(peers) == [("tls", "192.0.2.2", 5071)]
    assert peers[0].server_name == "example.test"
    explicit = locate("example.test", 5061, "tls")
    assert explicit[0].server_name == "example.test"


def test_system_fallback_finds_hosts_file_names(dns_server):
    """Names only /etc/hosts (or mDNS) knows, e.g. `localhost`, still resolve."""
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = dns_server.port
    resolver.lifetime = 2.0
    peers = asyncio.run(asyncio.wait_for(
        Locator(resolver).locate("localhost", 5070, "udp"), 5.0))
    assert ("udp", "127.0.0.1", 5070) in summary(peers)
