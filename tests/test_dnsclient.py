"""workers.dnsclient against the tiny primary and a real BIND9 secondary."""

import socket
import threading
import time

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import needs_named

from tests.servers import free_port
from tests.servers.bind9 import Bind9Server
from tests.servers.tiny_primary import TinyPrimary
from workers.backends.bind9 import Bind9Backend
from workers.dnsclient import DNSClientError, query_soa_serial, send_notify

pytestmark = [
    pytest.mark.bind9,
    needs_named,
]

ZONE = "client.example.test."


@pytest.fixture(scope="module")
def primary():
    with TinyPrimary({ZONE: 7}) as server:
        yield server


@pytest.fixture(scope="module")
def bind(primary):
    """BIND serving ZONE from the primary."""
    with Bind9Server(primary=primary.address) as server:
        Bind9Backend("bind-client", server.backend_options, [primary.address]).create_zone(ZONE)
        deadline = time.monotonic() + 5
        while query_soa_serial(ZONE, server.host, server.port) != 7:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.02)
        yield server


# -- query_soa_serial --------------------------------------------------------

def test_soa_serial_from_primary(primary):
    assert query_soa_serial(ZONE, *primary.address) == 7
    assert query_soa_serial(ZONE.rstrip("."), *primary.address) == 7


def test_soa_serial_none_when_not_authoritative_for_that_name(primary):
    assert query_soa_serial("other.test.", *primary.address) is None  # REFUSED
    assert query_soa_serial("www." + ZONE, *primary.address) is None  # NOERROR, SOA only in authority
    assert query_soa_serial("nope." + ZONE, *primary.address) is None  # NXDOMAIN


def test_soa_serial_from_bind(bind):
    assert query_soa_serial(ZONE, bind.host, bind.port) == 7
    assert query_soa_serial("not-served.test.", bind.host, bind.port) is None  # REFUSED


def test_soa_query_sends_no_recursion_desired():
    received = []
    with Responder(lambda query: received.append(query) or []) as catcher:  # records, never answers
        with pytest.raises(DNSClientError):
            query_soa_serial(ZONE, "127.0.0.1", catcher.port, timeout=0.3)
    query = received[0]
    assert not query.flags & dns.flags.RD
    assert query.question[0].rdtype == dns.rdatatype.SOA


def test_soa_query_to_closed_port_raises_within_timeout():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(DNSClientError, match=f"127.0.0.1:{port}"):
        query_soa_serial(ZONE, "127.0.0.1", port, timeout=0.5)
    assert time.monotonic() - started < 1.5


# -- send_notify -------------------------------------------------------------

def test_notify_accepted_by_bind(bind):
    assert send_notify(ZONE, bind.host, bind.port) == dns.rcode.NOERROR
    assert send_notify(ZONE, bind.host, bind.port, serial=8) == dns.rcode.NOERROR


def test_notify_for_unserved_zone_is_not_noerror(bind):
    assert send_notify("not-served.test.", bind.host, bind.port) != dns.rcode.NOERROR


def test_notify_then_bind_fetches_new_serial(bind, primary):
    primary.set_serial(ZONE, 9)
    assert send_notify(ZONE, bind.host, bind.port, serial=9) == dns.rcode.NOERROR
    deadline = time.monotonic() + 5
    while query_soa_serial(ZONE, bind.host, bind.port) != 9:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_notify_wire_format_and_retries():
    """Opcode NOTIFY with AA (the flags-before-opcode gotcha), SOA hint, and 1 + retries sends."""
    received = []
    started = time.monotonic()
    with Responder(lambda query: received.append(query) or []) as catcher:  # records, never answers
        with pytest.raises(DNSClientError, match="after 3 attempt"):
            send_notify(ZONE, "127.0.0.1", catcher.port, serial=42, timeout=0.2, retries=2)
    assert time.monotonic() - started < 2
    assert len(received) == 3
    message = received[0]
    assert message.opcode() == dns.opcode.NOTIFY
    assert message.flags & dns.flags.AA
    assert str(message.question[0].name) == ZONE
    assert message.answer[0].rdtype == dns.rdatatype.SOA
    assert message.answer[0][0].serial == 42


def test_notify_to_closed_port_raises():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(DNSClientError, match=f"NOTIFY {ZONE} to 127.0.0.1:{port}"):
        send_notify(ZONE, "127.0.0.1", port, timeout=0.2, retries=1)
    assert time.monotonic() - started < 1.5


# -- the wire, read by hand --------------------------------------------------

class Responder:
    """A UDP server that answers each query with the datagrams reply(query) returns."""

    def __init__(self, reply):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port, self.reply = self.sock.getsockname()[1], reply
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            for datagram in self.reply(dns.message.from_wire(wire)):
                self.sock.sendto(datagram, peer)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


def soa_response(query, owner=ZONE, serial=11, rcode=dns.rcode.NOERROR):
    import dns.rrset

    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    response.set_rcode(rcode)
    response.answer.append(dns.rrset.from_text(owner, 300, "IN", "SOA",
                                               f"ns1.{ZONE} hostmaster.{ZONE} {serial} 3600 600 86400 300"))
    return response


def test_soa_serial_read_from_a_compressed_answer_in_any_case_after_stray_datagrams():
    """Names compressed (MNAME and RNAME point into the question), the owner in other case; a datagram
    with another id and one that is no response are ignored, not taken for the answer."""
    def reply(query):
        stray = soa_response(query, serial=1)
        stray.id = (query.id + 1) % 65536
        echoed = dns.message.make_query(ZONE, "SOA")
        echoed.id = query.id  # same id, but a query, not a response
        return [stray.to_wire(), echoed.to_wire(), soa_response(query, owner=ZONE.upper(), serial=4242).to_wire()]

    with Responder(reply) as server:
        assert query_soa_serial(ZONE, "127.0.0.1", server.port, timeout=1) == 4242


def test_soa_serial_none_for_another_owner_or_an_error_rcode():
    with Responder(lambda query: [soa_response(query, owner="example.test.").to_wire()]) as server:
        assert query_soa_serial(ZONE, "127.0.0.1", server.port, timeout=1) is None
    with Responder(lambda query: [soa_response(query, rcode=dns.rcode.SERVFAIL).to_wire()]) as server:
        assert query_soa_serial(ZONE, "127.0.0.1", server.port, timeout=1) is None


def test_a_malformed_answer_or_a_name_for_a_host_is_a_client_error():
    with Responder(lambda query: [soa_response(query).to_wire()[:-10]]) as server:
        with pytest.raises(DNSClientError, match="malformed"):
            query_soa_serial(ZONE, "127.0.0.1", server.port, timeout=1)
    with pytest.raises(DNSClientError, match="not an IP address"):
        query_soa_serial(ZONE, "localhost", 53, timeout=1)
    with pytest.raises(DNSClientError, match="not an IP address"):
        send_notify(ZONE, "localhost", 53, timeout=0.1, retries=0)


def test_notify_returns_the_answers_rcode():
    def reply(query):
        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.NOTAUTH)
        return [response.to_wire()]

    with Responder(reply) as server:
        assert send_notify(ZONE, "127.0.0.1", server.port, serial=3, timeout=1) == dns.rcode.NOTAUTH
