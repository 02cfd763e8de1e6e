"""MiniDNS: the core through handle() (with the database, and with a fake source), then real sockets."""
import signal
import socket
import struct
import sys
import time

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.xfr
import dns.zone
import pytest

from tests.conftest_servers import MiniDNSThread
from tests.processes import Process
from tests.servers import free_port
from workers.minidns import MiniDNS
from zones.models import RecordSet, Zone
from zones.services import pools, writes

LOCAL = ("127.0.0.1", 40000)
STRANGER = ("192.0.2.55", 40000)
ORIGIN = dns.name.from_text("example.com.")


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def pool(db):
    """With a nameserver on loopback, as the test servers are: LOCAL may transfer the pool's zones."""
    return pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
                           nameservers=[{"host": LOCAL[0], "port": 53}])


@pytest.fixture
def zone(pool):
    zone = writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com")
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    return Zone.objects.get(id=zone.id)


def ask(minidns, name, rdtype, peer=LOCAL, tcp=False, **kwargs) -> list[dns.message.Message]:
    query = dns.message.make_query(name, rdtype, **kwargs)
    return [dns.message.from_wire(wire) for wire in minidns.handle(query.to_wire(), peer, tcp)]


def one(minidns, name, rdtype, **kwargs) -> dns.message.Message:
    responses = ask(minidns, name, rdtype, **kwargs)
    assert len(responses) == 1
    return responses[0]


def transfer(minidns, origin=ORIGIN, peer=LOCAL, serial=None) -> tuple[dns.zone.Zone, list[bytes]]:
    """AXFR (or IXFR from `serial`) through handle(), applied with dnspython's inbound machinery."""
    zone = dns.zone.Zone(origin, relativize=False)
    rdtype = dns.rdatatype.AXFR if serial is None else dns.rdatatype.IXFR
    query, _ = dns.xfr.make_query(zone, serial=serial)
    wires = list(minidns.handle(query.to_wire(), peer, True))
    with dns.xfr.Inbound(zone, rdtype, serial) as inbound:
        for wire in wires:
            message = dns.message.from_wire(wire, xfr=True, one_rr_per_rrset=True)
            inbound.process_message(message)
    return zone, wires


def first_and_last_rr(wires) -> tuple[dns.rrset.RRset, dns.rrset.RRset]:
    messages = [dns.message.from_wire(w, xfr=True, one_rr_per_rrset=True) for w in wires]
    return messages[0].answer[0], messages[-1].answer[-1]


def soa_serial(message) -> int:
    return next(r for r in message.answer + message.authority if r.rdtype == dns.rdatatype.SOA)[0].serial


def add_records(zone: Zone, count: int):
    """Many recordsets at once, straight into the table (services would bump the serial per row)."""
    RecordSet.objects.bulk_create(
        RecordSet(zone=zone, name=f"host{i}.{zone.name}", type="A", ttl=300 if i % 2 else None,
                  records=[f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"], serial=zone.serial)
        for i in range(count))


# --- the core, with the database ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("tcp", [False, True])
def test_soa_is_authoritative_with_the_current_serial(zone, tcp):
    response = one(MiniDNS(), "example.com.", "SOA", tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR and response.flags & dns.flags.AA
    assert soa_serial(response) == zone.serial
    assert response.answer[0].ttl == zone.ttl


@pytest.mark.django_db
def test_answers_names_inside_the_zone(zone):
    minidns = MiniDNS()
    response = one(minidns, "WWW.example.com.", "A")  # names are case-insensitive
    assert response.flags & dns.flags.AA and response.answer[0][0].to_text() == "192.0.2.1"

    nodata = one(minidns, "www.example.com.", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority[0].rdtype == dns.rdatatype.SOA

    nxdomain = one(minidns, "missing.example.com.", "A")
    assert nxdomain.rcode() == dns.rcode.NXDOMAIN and nxdomain.flags & dns.flags.AA
    assert soa_serial(nxdomain) == zone.serial

    ns = one(minidns, "example.com.", "NS")
    assert [r.to_text() for r in ns.answer[0]] == ["ns1.example.net."]


@pytest.mark.django_db
def test_the_closest_enclosing_zone_answers(zone):
    sub = writes.create_zone(project_id="p1", name="sub.example.com.", email="admin@example.com")
    response = one(MiniDNS(), "deep.www.sub.example.com.", "A")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].name == dns.name.from_text("sub.example.com.")
    assert soa_serial(response) == sub.serial


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["example.org.", "com.", "."])
def test_zones_we_do_not_serve_are_refused(zone, name):
    assert one(MiniDNS(), name, "SOA").rcode() == dns.rcode.REFUSED


@pytest.mark.django_db
def test_a_deleted_zone_is_refused(zone):
    minidns = MiniDNS()
    assert one(minidns, "example.com.", "SOA").rcode() == dns.rcode.NOERROR
    writes.delete_zone(zone.id)  # action DELETE: already gone for MiniDNS
    assert one(minidns, "example.com.", "SOA").rcode() == dns.rcode.REFUSED
    Zone.objects.filter(id=zone.id).update(deleted_at="2024-01-01T00:00:00Z", action="NONE")
    assert one(minidns, "www.example.com.", "A").rcode() == dns.rcode.REFUSED


@pytest.mark.django_db
@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
def test_transfers_to_strangers_are_refused(zone, rdtype):
    response = one(MiniDNS(), "example.com.", rdtype, peer=STRANGER, tcp=True)
    assert response.rcode() == dns.rcode.REFUSED and not response.answer


@pytest.mark.django_db
def test_pool_servers_and_the_setting_join_the_allow_list_on_refresh(zone, pool, settings):
    minidns = MiniDNS()
    assert not minidns.allowed("192.0.2.55")
    settings.DNSCTL = {**settings.DNSCTL, "MINIDNS_ALLOW_XFR_FROM": ["198.51.100.0/24"]}
    pools.save_pool(pool, name="default", nameservers=[{"host": "192.0.2.55", "port": 53}])
    assert not minidns.allowed("192.0.2.55")  # no DB read on the query path
    minidns.refresh_allow_list()
    assert minidns.allowed("192.0.2.55") and minidns.allowed("198.51.100.7")
    assert not minidns.allowed("::1") and not minidns.allowed("127.0.0.1")  # loopback is no longer the pool's
    assert not minidns.allowed("192.0.2.56")
    zone_copy, _ = transfer(minidns, peer=STRANGER)
    assert zone_copy.get_rdataset("www.example.com.", "A")


@pytest.mark.django_db
def test_axfr_round_trips_the_zone_with_soa_first_and_last(zone):
    writes.create_recordset(zone.id, name="mail", type="MX", records=["10 mx.example.com."], ttl=60)
    writes.create_recordset(zone.id, name="*.wild", type="TXT", records=['"hello world"'])
    zone = Zone.objects.get(id=zone.id)
    copy, wires = transfer(MiniDNS())
    first, last = first_and_last_rr(wires)
    assert first.rdtype == last.rdtype == dns.rdatatype.SOA and first[0].serial == last[0].serial == zone.serial

    served = {(name.to_text(), dns.rdatatype.to_text(rds.rdtype)): (rds.ttl, sorted(r.to_text() for r in rds))
              for name, node in copy.nodes.items() for rds in node}
    stored = {(rs.name, rs.type): (rs.ttl or zone.ttl, sorted(rs.records)) for rs in zone.recordsets.all()}
    assert served == stored


@pytest.mark.django_db
def test_a_5000_record_zone_spans_several_messages(zone):
    add_records(zone, 5000)
    started = time.monotonic()
    copy, wires = transfer(MiniDNS())
    elapsed = time.monotonic() - started
    assert len(wires) >= 2 and all(len(w) <= 65535 for w in wires)
    assert sum(len(node) for node in copy.nodes.values()) == 5000 + 3  # + SOA, NS, www A
    assert copy.get_rdataset("host4999.example.com.", "A")[0].to_text() == "10.0.19.135"
    assert copy.get_rdataset("host2.example.com.", "A").ttl == zone.ttl  # ttl None: the zone's
    first, last = first_and_last_rr(wires)
    assert first.rdtype == last.rdtype == dns.rdatatype.SOA
    assert elapsed < 10, f"render + AXFR of 5000 records took {elapsed:.1f}s"


@pytest.mark.django_db
def test_the_largest_record_the_api_accepts_transfers_alone_in_a_message(zone):
    before = zone.serial
    strings = " ".join(f'"{"x" * 255}"' for _ in range(250))  # one TXT record of 64,000 octets
    writes.create_recordset(zone.id, name="big", type="TXT", records=[strings])
    serial = Zone.objects.get(id=zone.id).serial
    minidns = MiniDNS()
    minidns.zone(zone.id, before)  # what a secondary at `before` holds: the IXFR is the journal's difference
    for asked in (None, before):
        copy, wires = transfer(minidns, serial=asked)
        assert all(len(w) <= 65535 for w in wires) and len(wires) >= 2
        assert len(copy.get_rdataset("big.example.com.", "TXT")[0].strings) == 250
        first, last = first_and_last_rr(wires)
        assert first.rdtype == last.rdtype == dns.rdatatype.SOA and last[0].serial == serial


@pytest.mark.django_db
def test_renders_once_per_serial_and_sees_changes_at_once(zone):
    minidns = MiniDNS()
    for _ in range(3):
        assert one(minidns, "www.example.com.", "A").answer
    transfer(minidns)
    assert minidns.renders == 1

    writes.create_recordset(zone.id, name="new", type="A", records=["192.0.2.9"])
    response = one(minidns, "new.example.com.", "A")
    assert response.answer[0][0].to_text() == "192.0.2.9"
    assert soa_serial(one(minidns, "example.com.", "SOA")) == Zone.objects.get(id=zone.id).serial
    assert minidns.renders == 2

    writes.update_zone(zone.id, ttl=900)  # the zone TTL is part of the snapshot too
    assert one(minidns, "www.example.com.", "A").answer[0].ttl == 900
    assert minidns.renders == 3


@pytest.mark.django_db
def test_the_cache_is_bounded_by_bytes_not_zones(pool):
    minidns = MiniDNS()
    for i in range(4):
        writes.create_zone(project_id="p1", name=f"z{i}.example.", email="admin@example.com")
    one(minidns, "www.z0.example.", "A")  # a query renders (an SOA would not)
    small = minidns._weight
    minidns.cache_bytes = int(small * 3.5)
    for i in range(1, 4):
        one(minidns, f"www.z{i}.example.", "A")
    assert list(minidns._cache) == [z.id for z in Zone.objects.filter(name__in=["z1.example.", "z2.example.",
                                                                                 "z3.example."]).order_by("name")]
    assert minidns._weight <= minidns.cache_bytes and minidns.renders == 4
    one(minidns, "www.z3.example.", "A")
    assert minidns.renders == 4  # z3 was still cached

    big = Zone.objects.get(name="z0.example.")
    add_records(big, 200)
    Zone.objects.filter(id=big.id).update(serial=big.serial + 1)  # the journal cannot tell: read whole
    RecordSet.objects.filter(zone=big, type="SOA").update(records=[
        RecordSet.objects.get(zone=big, type="SOA").records[0].replace(f" {big.serial} ", f" {big.serial + 1} ")])
    one(minidns, "host7.z0.example.", "A")
    assert list(minidns._cache) == [big.id]  # one zone of 200 records outweighs three small ones
    assert minidns._cache[big.id].weight > 50 * small


# --- the core, malformed input and failures (no database) ----------------------------------------


def test_garbage_gets_formerr_with_the_id_echoed():
    minidns = MiniDNS(source=FakeSource({}))
    wire = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x07garbage"
    (response,) = minidns.handle(wire, LOCAL, False)
    qid, flags = struct.unpack("!HH", response[:4])
    assert qid == 0xBEEF and flags & dns.flags.QR and flags & 0xF == dns.rcode.FORMERR
    assert minidns.handle(b"\x12\x34\x00", LOCAL, False) == []  # no header: nothing to answer
    assert minidns.handle(b"", LOCAL, True) == []
    response_packet = struct.pack("!HHHHHH", 1, 0x8000, 0, 0, 0, 0) + b"junk"
    assert minidns.handle(response_packet, LOCAL, False) == []  # never answer a response


def test_any_exception_becomes_servfail(caplog):
    class Broken(FakeSource):
        def find(self, names):
            raise RuntimeError("database is down")

    (response,) = ask(MiniDNS(source=Broken({})), "example.com.", "SOA")
    assert response.rcode() == dns.rcode.SERVFAIL
    assert "database is down" in caplog.text


def test_notify_is_not_implemented_and_udp_axfr_is_a_format_error():
    minidns = MiniDNS(source=fake_source())
    notify = dns.message.make_query("example.com.", "SOA")
    notify.flags = dns.flags.AA
    notify.set_opcode(dns.opcode.NOTIFY)
    (wire,) = minidns.handle(notify.to_wire(), LOCAL, False)
    assert dns.message.from_wire(wire).rcode() == dns.rcode.NOTIMP
    assert one(minidns, "example.com.", "AXFR").rcode() == dns.rcode.FORMERR
    assert one(minidns, "www.example.com.", "AXFR", tcp=True).rcode() == dns.rcode.REFUSED  # not an apex


def test_ixfr_gets_one_soa_when_current_else_the_whole_zone():
    minidns = MiniDNS(source=fake_source(serial=7))
    current = dns.message.make_query("example.com.", "IXFR")
    current.authority.append(dns.rrset.from_text(ORIGIN, 0, "IN", "SOA", ". . 7 1 1 1 1"))
    for tcp in (True, False):
        (response,) = ask_message(minidns, current, tcp)
        assert [r.rdtype for r in response.answer] == [dns.rdatatype.SOA] and response.flags & dns.flags.AA

    copy, wires = transfer(minidns, serial=5)  # behind: an AXFR-style answer, which dnspython accepts
    assert copy.get_rdataset("www.example.com.", "A") and len(wires) == 1
    stale = dns.message.make_query("example.com.", "IXFR")
    stale.authority.append(dns.rrset.from_text(ORIGIN, 0, "IN", "SOA", ". . 5 1 1 1 1"))
    (over_udp,) = ask_message(minidns, stale, False)  # RFC 1995: over UDP, just the SOA
    assert [r.rdtype for r in over_udp.answer] == [dns.rdatatype.SOA]


def test_delegations_wildcards_cnames_and_empty_non_terminals():
    minidns = MiniDNS(source=fake_source(extra=[
        ("child.example.com.", "NS", 300, ["ns.child.example.com."]),
        ("child.example.com.", "DS", 300, ["12345 13 2 " + "ab" * 32]),
        ("ns.child.example.com.", "A", 300, ["192.0.2.53"]),
        ("*.wild.example.com.", "TXT", 300, ['"any"']),
        ("alias.example.com.", "CNAME", 300, ["www.example.com."]),
        ("a.b.c.example.com.", "A", 300, ["192.0.2.4"]),
    ]))
    referral = one(minidns, "host.child.example.com.", "A")
    assert not referral.flags & dns.flags.AA and not referral.answer
    assert referral.authority[0].rdtype == dns.rdatatype.NS and referral.additional[0][0].address == "192.0.2.53"
    ds = one(minidns, "child.example.com.", "DS")
    assert ds.flags & dns.flags.AA and ds.answer[0].rdtype == dns.rdatatype.DS

    wild = one(minidns, "x.wild.example.com.", "TXT")
    assert wild.answer[0].name == dns.name.from_text("x.wild.example.com.") and wild.flags & dns.flags.AA
    assert one(minidns, "x.wild.example.com.", "A").rcode() == dns.rcode.NOERROR  # NODATA at the wildcard
    assert one(minidns, "x.other.example.com.", "A").rcode() == dns.rcode.NXDOMAIN

    cname = one(minidns, "alias.example.com.", "A")
    assert cname.answer[0].rdtype == dns.rdatatype.CNAME

    ent = one(minidns, "b.c.example.com.", "A")  # exists only as a parent of a.b.c
    assert ent.rcode() == dns.rcode.NOERROR and not ent.answer and ent.authority[0].rdtype == dns.rdatatype.SOA
    assert ent.authority[0].ttl == 60  # negative TTL: min(SOA TTL, SOA minimum)


def test_big_udp_answers_are_truncated():
    minidns = MiniDNS(source=fake_source(extra=[
        ("big.example.com.", "TXT", 300, [f'"{i:03d} {"x" * 200}"' for i in range(40)])]))
    response = one(minidns, "big.example.com.", "TXT")
    assert response.flags & dns.flags.TC
    assert len(one(minidns, "big.example.com.", "TXT", tcp=True).answer[0]) == 40
    claimed = ask(minidns, "big.example.com.", "TXT", use_edns=0, payload=65000)[0]
    assert claimed.flags & dns.flags.TC  # at most 1,232 bytes over UDP, whatever the client claims


class FakeSource:
    """Zones from a dict: name -> (serial, rows). Zone ids are the names."""

    def __init__(self, zones):
        self.zones = zones

    def find(self, names):
        return {name: (name, self.zones[name][0]) for name in names if name in self.zones}

    def records(self, zone_id):
        return zone_id, self.zones[zone_id][1]

    def soa(self, zone_id):
        return zone_id, self.zones[zone_id][1][0]

    def changes(self, zone_id, from_serial, to_serial):
        return None  # no journal: a new serial is rendered whole

    def xfr_hosts(self):
        return ["localhost"]

    def pool_of(self, zone_id):
        return None  # no pools: the list above may transfer every zone

    def ixfr(self, zone_id, from_serial, to_serial):
        return None  # no journal: IXFR is answered AXFR-style


def fake_source(serial=1, extra=()):
    rows = [("example.com.", "SOA", 3600, [f"ns1.example.net. admin.example.com. {serial} 3600 600 86400 60"]),
            ("example.com.", "NS", 3600, ["ns1.example.net."]),
            ("www.example.com.", "A", 300, ["192.0.2.1"]), *extra]
    return FakeSource({"example.com.": (serial, rows)})


def ask_message(minidns, query, tcp) -> list[dns.message.Message]:
    return [dns.message.from_wire(w) for w in minidns.handle(query.to_wire(), LOCAL, tcp)]


# --- real sockets ------------------------------------------------------------------------------


@pytest.fixture
def committed_zone(transactional_db, monkeypatch):
    monkeypatch.setattr(writes, "_enqueue", lambda zone: None)
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
                    nameservers=[{"host": LOCAL[0], "port": 53}])
    zone = writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com")
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    return Zone.objects.get(id=zone.id)


@pytest.mark.django_db(transaction=True)
def test_over_real_sockets(committed_zone):
    add_records(committed_zone, 5000)  # enough for a multi-message AXFR
    with MiniDNSThread(MiniDNS()) as server:
        port = server.port
        query = dns.message.make_query("example.com.", "SOA")
        udp = dns.query.udp(query, "127.0.0.1", port=port, timeout=5)
        tcp = dns.query.tcp(query, "127.0.0.1", port=port, timeout=5)
        for response in (udp, tcp):
            assert response.flags & dns.flags.AA and soa_serial(response) == committed_zone.serial

        # several queries on one TCP connection
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            for name in ("www.example.com.", "missing.example.com."):
                dns.query.send_tcp(sock, dns.message.make_query(name, "A"), None)
                answer, _ = dns.query.receive_tcp(sock, None)
                assert answer.rcode() == (dns.rcode.NOERROR if name.startswith("www") else dns.rcode.NXDOMAIN)

        messages = list(dns.query.xfr("127.0.0.1", "example.com.", port=port, timeout=10))
        assert len(messages) >= 2 and len(dns.zone.from_xfr(messages).nodes) == 5000 + 2

        inbound = dns.zone.Zone("example.com.")
        dns.query.inbound_xfr("127.0.0.1", inbound, port=port, timeout=10)
        assert inbound.get_rdataset("www", "A")[0].to_text() == "192.0.2.1"
        assert inbound.get_soa().serial == committed_zone.serial


@pytest.mark.django_db(transaction=True)
def test_the_command_serves_and_stops_on_sigterm(committed_zone):
    from django.db import connection

    db = connection.settings_dict
    port = free_port()
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings", "LOG_LEVEL": "INFO",
           "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    server = Process("minidns", [sys.executable, "manage.py", "minidns", "--host", "127.0.0.1", "--port", str(port)],
                     env).start()
    try:
        server.wait_for(lambda: "MiniDNS listening on" in server.log_text(), timeout=20, what="listening")
        assert f"MiniDNS listening on 127.0.0.1:{port} (udp+tcp)" in server.log_text()
        response = dns.query.udp(dns.message.make_query("example.com.", "SOA"), "127.0.0.1", port=port, timeout=5)
        assert soa_serial(response) == committed_zone.serial
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0
        assert "MiniDNS stopped" in server.log_text()
    finally:
        server.stop()
