"""MiniDNS under misbehaving clients, over real sockets on 127.0.0.1: TCP connection caps, a client
that stops reading, UDP size caps, ANY, bursts of garbage, the transfer ACL per pool."""
import os
import socket
import struct
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from tests.conftest import wait_until
from tests.conftest_servers import DictZones, MiniDNSThread
from workers.minidns import UDP_MAX, MiniDNS
from workers.transfers import Recorder

ZONE = "big.example.test."


def big_source(records=6000) -> DictZones:
    """~1 KiB per record: a 6 MiB AXFR, more than any socket buffer between the two ends."""
    source = DictZones()
    source.add("small.example.test.", serial=7)
    source.add(ZONE, serial=3)
    rows = source.zones[ZONE][1]
    text = " ".join(f'"{i:04d}{"y" * 250}"' for i in range(4))
    rows += [(f"r{i}.{ZONE}", "TXT", 300, [text]) for i in range(records)]
    rows += [(f"multi.{ZONE}", t, 300, v) for t, v in (("A", ["192.0.2.1"]), ("AAAA", ["2001:db8::1"]),
                                                        ("MX", ["10 mx.example.test."]), ("TXT", ['"hello"']))]
    rows.append((f"wide.{ZONE}", "TXT", 300, [f'"{i} {"z" * 250}"' for i in range(10)]))
    return source


@pytest.fixture(scope="module")
def source():
    return big_source()


@pytest.fixture(scope="module")
def minidns(source):
    """One MiniDNS for the module: the big zone is rendered once, here."""
    minidns = MiniDNS(source)
    minidns.zone(ZONE, 3).advance(lambda: False)  # rendered whole
    return minidns


@pytest.fixture
def noted(minidns):
    """What MiniDNS notes of transfers, collected instead of written to Redis."""
    notes = []
    minidns.transfers = Recorder(write=notes.extend, interval=0.05).start()
    yield notes
    minidns.transfers.stop()
    minidns.transfers = None


def soa_over_tcp(port, source_address=("127.0.0.1", 0)) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=source_address) as sock:
        dns.query.send_tcp(sock, dns.message.make_query("small.example.test.", "SOA"), None)
        answer, _ = dns.query.receive_tcp(sock, time.time() + 5)
        return answer.answer[0][0].serial


def cut_at_once(sock) -> bool:
    """Did the server drop this connection (without answering the query sent on it)?"""
    wire = dns.message.make_query("small.example.test.", "SOA").to_wire()
    try:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        return sock.recv(2) == b""
    except ConnectionError:
        return True


def test_tcp_connections_are_capped_in_all_and_per_address(minidns):
    limits = {}
    with MiniDNSThread(minidns, max_tcp=3, max_tcp_per_address=2, limits=limits) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)]
        wait_until(lambda: sum(limits["tcp"].held.values()) == 2, timeout=5, message="two connections held")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as third:
            assert cut_at_once(third)  # a third from the same address
        assert soa_over_tcp(server.port, ("127.0.0.2", 0)) == 7  # another address still has room
        wait_until(lambda: sum(limits["tcp"].held.values()) == 2, timeout=5, message="its slot given back")
        other = socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=("127.0.0.3", 0))
        wait_until(lambda: sum(limits["tcp"].held.values()) == 3, timeout=5, message="three held")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=("127.0.0.4", 0)) as s:
            assert cut_at_once(s)  # the total is reached
        for sock in held + [other]:
            sock.close()
        wait_until(lambda: not limits["tcp"].held, timeout=5, message="slots given back")
        assert soa_over_tcp(server.port) == 7
        assert limits["tcp"].refused == 2


def test_a_client_that_stops_reading_is_dropped_and_its_slot_freed(minidns, noted):
    limits = {}
    with MiniDNSThread(minidns, max_tcp=1, write_timeout=0.5, limits=limits) as server:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        stalled.connect(("127.0.0.1", server.port))
        dns.query.send_tcp(stalled, dns.message.make_query(ZONE, "AXFR"), None)
        wait_until(lambda: sum(limits["tcp"].held.values()) == 1, timeout=5, message="the slot taken")
        wait_until(lambda: not limits["tcp"].held, timeout=30, message="the stalled client dropped")
        assert soa_over_tcp(server.port) == 7  # its slot serves the next client
        received = 0
        try:
            while chunk := stalled.recv(1 << 20):
                received += len(chunk)
        except ConnectionError:
            pass
        stalled.close()
        assert received < 5 * 1024 * 1024  # it never got the whole zone
    minidns.transfers.stop()
    ends = [n for n in noted if n["type"] == "AXFR" and n["state"] != "running"]
    assert [n["state"] for n in ends] == ["failed"] and "stopped reading" in ends[0]["error"]


def test_an_idle_or_half_sent_query_costs_its_slot_only_for_the_idle_timeout(minidns):
    limits = {}
    with MiniDNSThread(minidns, max_tcp=1, idle_timeout=0.5, limits=limits) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
            slow.sendall(struct.pack("!H", 100) + b"\x00" * 10)  # promises 100 bytes, sends 10
            wait_until(lambda: limits["tcp"].held, timeout=5, message="the slot taken")
            wait_until(lambda: not limits["tcp"].held, timeout=5, message="the slot given back")
            assert slow.recv(10) == b""
        assert soa_over_tcp(server.port) == 7


def test_a_transfer_is_noted_when_its_last_message_is_written(minidns, noted):
    with MiniDNSThread(minidns) as server:
        messages = list(dns.query.xfr("127.0.0.1", ZONE, port=server.port, timeout=20))
        assert len(dns.zone.from_xfr(messages).nodes) > 6000
    minidns.transfers.stop()
    transfer = [n for n in noted if n["type"] == "AXFR"]
    assert [n["state"] for n in transfer] == ["running", "done"]
    running, done = transfer
    assert running["peer"] == "127.0.0.1" and running["serial"] == 3 and running["id"] == done["id"]
    assert done["messages"] == len(messages) and done["bytes"] > 5 * 1024 * 1024
    assert done["at"] >= running["at"]


def test_udp_answers_never_exceed_1232_bytes_whatever_the_client_claims(minidns):
    with MiniDNSThread(minidns) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(5)
        try:
            for name, truncated in ((f"r1.{ZONE}", False), (f"wide.{ZONE}", True)):  # ~1 KiB, ~2.6 KiB
                query = dns.message.make_query(name, "TXT", use_edns=0, payload=65000)
                sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
                wire, _ = sock.recvfrom(65535)
                answer = dns.message.from_wire(wire)
                assert len(wire) <= UDP_MAX and bool(answer.flags & dns.flags.TC) == truncated, name
                assert bool(answer.answer) != truncated
        finally:
            sock.close()
        over_tcp = dns.query.tcp(dns.message.make_query(f"wide.{ZONE}", "TXT"), "127.0.0.1", port=server.port,
                                 timeout=5)
        assert len(over_tcp.answer[0]) == 10  # the client retries over TCP and gets it all


def test_any_gets_one_rrset(minidns):
    with MiniDNSThread(minidns) as server:
        for tcp in (False, True):
            ask = dns.query.tcp if tcp else dns.query.udp
            response = ask(dns.message.make_query(f"multi.{ZONE}", "ANY"), "127.0.0.1", port=server.port, timeout=5)
            assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
            assert len(response.answer) == 1 and len(response.answer[0]) == 1  # RFC 8482
        mx = dns.query.tcp(dns.message.make_query(f"multi.{ZONE}", "MX"), "127.0.0.1", port=server.port, timeout=5)
        assert mx.answer[0].rdtype == dns.rdatatype.MX  # each type asked for by name is still there


def garbage(n: int) -> list[bytes]:
    """Random datagrams, and headers that promise a question the packet does not hold."""
    packets = []
    for i in range(n):
        if i % 2:
            packets.append(os.urandom(12 + i % 60))
        else:
            packets.append(struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"\x3fabc")
    return packets


def test_no_valid_query_is_lost_in_a_burst_of_garbage(minidns):
    limits = {}
    with MiniDNSThread(minidns, limits=limits) as server:
        assert limits["udp_buffer"] >= 1024 * 1024  # asked for 4 MiB (root may exceed rmem_max)
        sock, flood = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
        sock.settimeout(5)
        valid = {}
        junk = garbage(20_000)
        try:
            for i, packet in enumerate(junk):
                flood.sendto(packet, ("127.0.0.1", server.port))  # its FORMERRs are never read
                if i % 100 == 0:
                    query = dns.message.make_query("small.example.test.", "SOA")
                    while query.id in valid:
                        query = dns.message.make_query("small.example.test.", "SOA")
                    valid[query.id] = query
                    sock.sendto(query.to_wire(), ("127.0.0.1", server.port))
            answered, deadline = set(), time.monotonic() + 20
            while answered != set(valid) and time.monotonic() < deadline:
                try:
                    wire, _ = sock.recvfrom(65535)
                except socket.timeout:
                    break
                if len(wire) > 12 and struct.unpack("!H", wire[6:8])[0]:  # an answer, not a FORMERR header
                    message = dns.message.from_wire(wire)
                    if message.id in valid and message.answer:
                        answered.add(message.id)
        finally:
            sock.close()
            flood.close()
        assert answered == set(valid), f"{len(valid) - len(answered)} of {len(valid)} valid queries lost"
        assert limits["udp"].garbage >= len(junk) * 0.99  # turned away on the loop, never in the pool


@pytest.mark.django_db
def test_a_zone_transfers_only_to_its_pools_servers_and_the_allow_list(settings):
    from zones.services import pools, writes

    ns = [{"hostname": "ns1.example.net.", "priority": 1}]
    first = pools.save_pool(None, name="first", ns_records=ns, nameservers=[{"host": "127.0.0.10", "port": 53}],
                               also_notifies=[{"host": "127.0.0.12", "port": 53}])
    second = pools.save_pool(None, name="second", ns_records=ns, nameservers=[{"host": "127.0.0.20", "port": 53}])
    for name, pool in (("a.example.", first), ("b.example.", second)):
        writes.create_zone(project_id="p", name=name, email="a@example.com", pool_id=pool.id, admin=True)
    minidns = MiniDNS()

    def rcode(peer, name, rdtype="AXFR"):
        wires = minidns.handle(dns.message.make_query(name, rdtype).to_wire(), (peer, 5353), True)
        return dns.message.from_wire(next(iter(wires)), xfr=True, origin=None).rcode()

    assert rcode("127.0.0.10", "a.example.") == rcode("127.0.0.12", "a.example.") == dns.rcode.NOERROR
    assert rcode("127.0.0.20", "b.example.", "IXFR") == dns.rcode.NOERROR
    assert rcode("127.0.0.10", "b.example.") == rcode("127.0.0.20", "a.example.", "IXFR") == dns.rcode.REFUSED
    for peer in ("127.0.0.1", "::1", "192.0.2.1"):  # loopback is nobody's server here
        assert rcode(peer, "a.example.") == rcode(peer, "b.example.") == dns.rcode.REFUSED, peer
    assert rcode("127.0.0.1", "a.example.", "SOA") == dns.rcode.NOERROR  # queries stay open to all

    settings.DNSCTL = {**settings.DNSCTL, "MINIDNS_ALLOW_XFR_FROM": ["127.0.0.96/30"]}
    pools.save_pool(second, name="second", nameservers=[{"host": "127.0.0.21", "port": 53}])
    # a refused transfer re-reads the pools: the new server and the setting apply at once
    assert rcode("127.0.0.98", "a.example.") == rcode("127.0.0.98", "b.example.") == dns.rcode.NOERROR
    assert rcode("127.0.0.21", "b.example.") == dns.rcode.NOERROR and rcode("127.0.0.20", "b.example.") == dns.rcode.REFUSED
