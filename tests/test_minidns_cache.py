"""MiniDNS's rendered zones: prepared wire shared by transfers and streamed as it renders, the next serial
from the journal, SOA never waiting for a render, the byte-bounded cache, failures logged once, and the
zone lookups kept current by PostgreSQL's notices."""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from tests.conftest import wait_until
from tests.test_minidns import LOCAL, add_records, ask, one, soa_serial, transfer
from workers.minidns import DatabaseZoneSource, MiniDNS, RenderedZone
from zones.services import pools, writes
from zones.models import Zone


class GatedSource:
    """Zones from a dict (name -> (serial, rows)); the rows of `slow` stop after `before` of them until
    `gate` is set, like a big zone still being read from the database."""

    def __init__(self, zones, slow=None, before=0):
        self.zones, self.slow, self.before = zones, slow, before
        self.gate, self.waiting, self.reads = threading.Event(), threading.Event(), 0

    def find(self, names):
        return {name: (name, self.zones[name][0]) for name in names if name in self.zones}

    def soa(self, zone_id):
        return zone_id, self.zones[zone_id][1][0]

    def records(self, zone_id):
        self.reads += 1
        return zone_id, self._rows(zone_id)

    def _rows(self, zone_id):
        for i, row in enumerate(self.zones[zone_id][1]):
            if zone_id == self.slow and i == self.before:
                self.waiting.set()
                assert self.gate.wait(30), "the test never opened the gate"
            yield row

    def changes(self, zone_id, from_serial, to_serial):
        return None

    def ixfr(self, zone_id, from_serial, to_serial):
        return None

    def xfr_hosts(self):
        return ["127.0.0.1", "::1"]  # the tests' secondaries, allowed every zone

    def pool_of(self, zone_id):
        return None


def zone_rows(name, serial, hosts=0):
    return [(name, "SOA", 300, [f"ns1.{name} hostmaster.{name} {serial} 3600 600 86400 300"]),
            (name, "NS", 300, [f"ns1.{name}"]), (f"ns1.{name}", "A", 300, ["192.0.2.1"]),
            *((f"h{i}.{name}", "A", 300, [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"]) for i in range(hosts))]


def axfr(minidns, name):
    return minidns.handle(dns.message.make_query(name, "AXFR").to_wire(), LOCAL, True)


def apply_all(name, wires):
    zone = dns.zone.Zone(name, relativize=False)
    with dns.xfr.Inbound(zone, dns.rdatatype.AXFR) as inbound:
        for wire in wires:
            inbound.process_message(dns.message.from_wire(wire, xfr=True, one_rr_per_rrset=True))
    return zone


def test_soa_and_other_zones_answer_while_a_big_zone_renders_and_its_transfer_streams():
    big, small = "big.example.", "small.example."
    source = GatedSource({big: (7, zone_rows(big, 7, hosts=20_000)), small: (3, zone_rows(small, 3))},
                         slow=big, before=15_000)
    minidns = MiniDNS(source=source)
    transfer_ = axfr(minidns, big)
    first = next(transfer_)  # sent before the render is done: the gate is still shut
    assert source.waiting.is_set() or not source.gate.is_set()
    assert dns.message.from_wire(first, xfr=True).answer[0].rdtype == dns.rdatatype.SOA

    with ThreadPoolExecutor(1) as pool:  # the rest of the transfer waits for the render, in a thread
        rest = pool.submit(list, transfer_)
        assert source.waiting.wait(10)
        assert soa_serial(one(minidns, big, "SOA")) == 7  # the zone being rendered, that one included
        assert one(minidns, f"ns1.{small}", "A").answer and soa_serial(one(minidns, small, "SOA")) == 3
        ixfr = dns.message.make_query(big, "IXFR")
        ixfr.authority.append(dns.rrset.from_text(big, 0, "IN", "SOA", ". . 7 1 1 1 1"))
        (current,) = minidns.handle(ixfr.to_wire(), LOCAL, True)  # a current secondary: just the SOA
        assert [r.rdtype for r in dns.message.from_wire(current).answer] == [dns.rdatatype.SOA]
        assert not rest.done() and not source.gate.is_set()  # all of it answered while the render waited
        source.gate.set()
        wires = [first, *rest.result(30)]
    copy = apply_all(big, wires)
    assert len(copy.nodes) == 20_000 + 2 and copy.get_soa().serial == 7
    assert minidns.full_renders == 2 and source.reads == 2  # each zone read once


def test_concurrent_transfers_share_one_render_and_one_wire_form():
    name = "shared.example."
    source = GatedSource({name: (5, zone_rows(name, 5, hosts=8000))}, slow=name, before=4000)
    minidns = MiniDNS(source=source)
    with ThreadPoolExecutor(4) as pool:
        transfers = [pool.submit(lambda: list(axfr(minidns, name))) for _ in range(4)]
        assert source.waiting.wait(10)
        source.gate.set()
        results = [t.result(30) for t in transfers]
    assert source.reads == 1 and minidns.full_renders == 1
    assert all([w[2:] for w in wires] == [w[2:] for w in results[0]] for wires in results)  # but the ids
    assert len(apply_all(name, results[0]).nodes) == 8000 + 2
    again = list(axfr(minidns, name))
    assert [w[2:] for w in again] == [w[2:] for w in results[0]] and source.reads == 1  # warm: no render


def test_a_failed_render_is_logged_once_per_zone_and_serial(caplog):
    name = "broken.example."
    rows = zone_rows(name, 4) + [(f"bad.{name}", "MX", 300, ["not an mx"])]
    source = GatedSource({name: (4, rows)})
    minidns = MiniDNS(source=source)
    caplog.set_level(logging.DEBUG, logger="workers.minidns")
    for _ in range(3):
        assert one(minidns, f"ns1.{name}", "A").rcode() == dns.rcode.SERVFAIL
        (wire,) = list(axfr(minidns, name))
        assert dns.message.from_wire(wire).rcode() == dns.rcode.SERVFAIL
    assert soa_serial(one(minidns, name, "SOA")) == 4  # SOA still answers from its own read
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "serial 4" in errors[0].getMessage()
    assert source.reads == 1  # not read again before RETRY_FAILED

    source.zones[name] = (5, zone_rows(name, 5) + rows[3:])  # a new serial, still broken: logged again, once
    for _ in range(2):
        one(minidns, f"ns1.{name}", "A")
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2


# --- with the database ---------------------------------------------------------------------------


@pytest.fixture
def pool(db):
    """With a nameserver on loopback, as the test servers are: LOCAL may transfer the pool's zones."""
    return pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
                           nameservers=[{"host": LOCAL[0], "port": 53}])


def contents(zone: dns.zone.Zone):
    return {(name.to_text(), dns.rdatatype.to_text(rds.rdtype)): (rds.ttl, sorted(r.to_text() for r in rds))
            for name, node in zone.nodes.items() for rds in node}


@pytest.mark.django_db
def test_the_next_serial_from_the_journal_equals_a_full_render(pool):
    zone = writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com")
    add_records(Zone.objects.get(id=zone.id), 3000)
    www = writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1", "192.0.2.2"])
    writes.create_recordset(zone.id, name="a.b.c", type="TXT", records=['"deep"'])
    minidns = MiniDNS()
    before, _ = transfer(minidns)
    assert minidns.full_renders == 1

    writes.update_recordset(zone.id, www.id, records=["192.0.2.2", "192.0.2.3"], ttl=60)
    writes.create_recordset(zone.id, name="mail", type="MX", records=["10 mx.example.net."])
    gone = writes.create_recordset(zone.id, name="gone", type="A", records=["192.0.2.9"])
    writes.delete_recordset(zone.id, gone.id)
    abc = Zone.objects.get(id=zone.id).recordsets.get(name="a.b.c.example.com.")
    writes.delete_recordset(zone.id, abc.id)  # b.c.example.com. stops being an empty non-terminal
    writes.update_zone(zone.id, email="hostmaster@example.com")  # the SOA itself changes
    serial = Zone.objects.get(id=zone.id).serial

    incremental, _ = transfer(minidns)
    assert minidns.full_renders == 1 and minidns.renders == 2  # made from the journal, not read again
    fresh = MiniDNS()
    full, _ = transfer(fresh)
    assert contents(incremental) == contents(full) and incremental.get_soa().serial == serial
    assert contents(incremental) != contents(before)
    for qname, rdtype in [("www.example.com.", "A"), ("b.c.example.com.", "A"), ("mail.example.com.", "MX"),
                          ("gone.example.com.", "A"), ("host17.example.com.", "A"), ("example.com.", "NS")]:
        ours, theirs = one(minidns, qname, rdtype), one(fresh, qname, rdtype)
        assert (ours.rcode(), ours.answer, ours.authority) == (theirs.rcode(), theirs.answer, theirs.authority)
    assert one(minidns, "b.c.example.com.", "A").rcode() == dns.rcode.NXDOMAIN


@pytest.mark.django_db
def test_a_zone_ttl_change_is_read_whole(pool):
    zone = writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com")
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    minidns = MiniDNS()
    transfer(minidns)
    writes.update_zone(zone.id, ttl=900)  # every inherited TTL moves: the journal does not list them
    copy, _ = transfer(minidns)
    assert copy.get_rdataset("www.example.com.", "A").ttl == 900 and minidns.full_renders == 2


@pytest.mark.django_db(transaction=True)
def test_zone_lookups_are_cached_and_dropped_when_postgresql_says_the_zone_changed(monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(writes, "_enqueue", lambda zone: None)
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    zone = writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com")
    source = DatabaseZoneSource(listen=True)
    try:
        minidns = MiniDNS(source, keys=source)
        source.watch(minidns.changed)
        wait_until(lambda: source._live, timeout=10, message="the listener")
        serial = soa_serial(one(minidns, "example.com.", "SOA"))
        with CaptureQueriesContext(connection) as queries:
            for _ in range(5):
                assert soa_serial(one(minidns, "example.com.", "SOA")) == serial
                assert one(minidns, "other.example.", "SOA").rcode() == dns.rcode.REFUSED
        assert len(queries) <= 1  # other.example. read once, then known to be absent
        soa_query = dns.message.make_query("example.com.", "SOA").to_wire()
        (quick,) = minidns.answer_from_memory(soa_query, LOCAL, False)  # what the transport answers on its loop
        assert soa_serial(dns.message.from_wire(quick)) == serial
        assert minidns.answer_from_memory(dns.message.make_query("www.example.com.", "A").to_wire(), LOCAL,
                                          False) is None  # not an SOA: a worker thread answers
        with_edns = dns.message.make_query("example.com.", "SOA", use_edns=0, payload=1232)  # as BIND9 asks
        (quick,) = minidns.answer_from_memory(with_edns.to_wire(), LOCAL, False)
        assert soa_serial(dns.message.from_wire(quick)) == serial and dns.message.from_wire(quick).edns == 0
        signed = dns.message.make_query("example.com.", "SOA")
        signed.use_tsig(dns.tsigkeyring.from_text({"k.": "c2VjcmV0c2VjcmV0"}), keyname="k.")
        assert minidns.answer_from_memory(signed.to_wire(), LOCAL, False) is None  # handle() checks the TSIG

        writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])  # commits: a notice
        new = Zone.objects.get(id=zone.id).serial
        wait_until(lambda: minidns.answer_from_memory(soa_query, LOCAL, False) is None
                   or soa_serial(dns.message.from_wire(minidns.answer_from_memory(soa_query, LOCAL, False)[0])) == new,
                   timeout=5, message="the old serial forgotten")
        wait_until(lambda: soa_serial(one(minidns, "example.com.", "SOA")) == new, timeout=5,
                   message="the new serial")
        writes.create_zone(project_id="p1", name="other.example.", email="admin@example.com")
        wait_until(lambda: one(minidns, "other.example.", "SOA").rcode() == dns.rcode.NOERROR, timeout=5,
                   message="the new zone")
    finally:
        source.close()


@pytest.mark.django_db(transaction=True)
def test_notices_carry_what_changed_so_a_change_costs_minidns_no_read(monkeypatch):
    """The notices say each zone's id, serial (none: not served) and pool, and "keys" when a pool's key
    changes: the cache follows them in place, and the zone's pool and keys (the transfer ACL) are known
    without a read, yet never stale."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from zones.models import TsigKey

    monkeypatch.setattr(writes, "_enqueue", lambda zone: None)
    servers = {"ns_records": [{"hostname": "ns1.example.net.", "priority": 1}],
               "nameservers": [{"host": LOCAL[0], "port": 53}]}  # LOCAL may transfer
    pool = pools.save_pool(None, name="default", **servers)
    source = DatabaseZoneSource(listen=True)
    try:
        minidns = MiniDNS(source, keys=source)
        source.watch(minidns.changed)
        wait_until(lambda: source._live, timeout=10, message="the listener")
        zone = writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com")
        serial = Zone.objects.get(id=zone.id).serial
        wait_until(lambda: source.find_cached(["example.com."]) == {"example.com.": (zone.id, serial)}, timeout=5,
                   message="the new zone known from its notice")
        wait_until(lambda: minidns._soa_in_memory(zone.id, serial) is not None, timeout=5,
                   message="the new zone rendered ahead")
        with CaptureQueriesContext(connection) as queries:
            assert source.pool_of(zone.id) == pool.id
            assert source.transfer_keys(zone.id) == set()
            assert source.transfer_keys(zone.id) == set()
            (quick,) = minidns.answer_from_memory(dns.message.make_query("example.com.", "SOA").to_wire(), LOCAL,
                                                  False)
        assert len(queries) == 1 and soa_serial(dns.message.from_wire(quick)) == serial  # the keys, read once

        writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
        new = Zone.objects.get(id=zone.id).serial
        wait_until(lambda: source.find_cached(["example.com."]) == {"example.com.": (zone.id, new)}, timeout=5,
                   message="the new serial from the notice")
        wait_until(lambda: minidns._current(zone.id, new) is not None, timeout=5, message="the next serial")
        minidns.refresh_allow_list()  # as the transport does every 30 s
        ixfr = dns.message.make_query("example.com.", "IXFR")
        ixfr.authority.append(dns.rrset.from_text("example.com.", 0, "IN", "SOA", f"a. b. {serial} 1 1 1 1"))
        with CaptureQueriesContext(connection) as queries:
            answer = one_wire(minidns, ixfr.to_wire())
        soa, a = dns.rdatatype.SOA, dns.rdatatype.A
        assert len(queries) == 0 and [r.rdtype for r in answer.answer] == [soa, soa, soa, a, soa]
        assert answer.answer[1][0].serial == serial and answer.answer[-1][0].serial == new  # the render's difference

        TsigKey.objects.create(name="pool-key", algorithm="hmac-sha256", secret="c2VjcmV0")
        pools.save_pool(pool, name="default", tsig_key="pool-key", **servers)
        wait_until(lambda: source.transfer_keys(zone.id) == {"pool-key"}, timeout=5, message="the key required")

        writes.delete_zone(zone.id)
        wait_until(lambda: source.find_cached(["example.com."]) == {}, timeout=5, message="the zone gone")
    finally:
        source.close()


@pytest.mark.django_db(transaction=True)
def test_a_read_on_a_connection_broken_since_its_last_use_is_tried_again_on_a_new_one(pool):
    """MiniDNS's threads skip Django's health check per use: a connection PostgreSQL dropped in between
    (a restart) fails the read, which is then tried again on a new connection, not answered SERVFAIL."""
    import psycopg2
    from django.db import connection

    zone = writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com")
    source = DatabaseZoneSource()
    connection.ensure_connection()
    killer = psycopg2.connect(**connection.get_connection_params())
    try:
        killer.autocommit = True
        killer.cursor().execute("SELECT pg_terminate_backend(%s)", [connection.connection.get_backend_pid()])
    finally:
        killer.close()
    assert source.find(["example.com."]) == {"example.com.": (zone.id, zone.serial)}


def one_wire(minidns, wire):
    (answer,) = minidns.handle(wire, LOCAL, False)
    return dns.message.from_wire(answer, one_rr_per_rrset=True)


def test_queries_of_a_big_zone_answer_from_its_last_serial_while_the_next_renders():
    name = "big.example."
    source = GatedSource({name: (1, zone_rows(name, 1, hosts=MiniDNS.BIG))})
    minidns = MiniDNS(source=source)
    assert one(minidns, f"h5.{name}", "A").answer  # rendered at serial 1
    rows = zone_rows(name, 2, hosts=MiniDNS.BIG) + [(f"new.{name}", "A", 300, ["192.0.2.7"])]
    source.zones[name], source.slow, source.before = (2, rows), name, 100
    started = time.monotonic()
    stale = one(minidns, f"h5.{name}", "A")  # serial 2 renders behind the gate: serial 1 answers
    assert stale.answer and soa_serial(one(minidns, name, "SOA")) == 2 and time.monotonic() - started < 5
    assert source.waiting.wait(10) and not source.gate.is_set()
    source.gate.set()
    wait_until(lambda: one(minidns, f"new.{name}", "A").answer, timeout=10, message="serial 2 rendered")


class GrowingHosts(GatedSource):
    """GatedSource whose allowed hosts grow; the first read of them waits for `gate` with what it saw."""

    def __init__(self, zones):
        super().__init__(zones)
        self.hosts, self.host_reads = ["127.0.0.1"], 0

    def xfr_hosts(self):
        self.host_reads += 1
        hosts = list(self.hosts)
        if self.host_reads == 2:  # the first is MiniDNS's own at its first use
            self.waiting.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return hosts


def test_a_new_server_is_not_refused_while_an_older_read_of_the_pools_runs():
    """A new pool's servers all ask at once (BIND9 backs off for a minute after a refusal): the one that
    finds a read under way waits for it, then reads again, since that read may predate its pool."""
    name = "new.example."
    source = GrowingHosts({name: (1, zone_rows(name, 1))})
    minidns = MiniDNS(source=source)
    assert minidns.allowed("127.0.0.1")
    with ThreadPoolExecutor(1) as pool:
        periodic = pool.submit(minidns.refresh_allow_list)  # the transport's, every 30 s
        assert source.waiting.wait(10)
        source.hosts.append("192.0.2.55")  # committed while that read runs
        with ThreadPoolExecutor(1) as other:
            asked = other.submit(lambda: minidns.handle(
                dns.message.make_query(name, "AXFR").to_wire(), ("192.0.2.55", 40000), True))
            time.sleep(0.2)
            assert not asked.done()  # waits for the read under way, not refused
            source.gate.set()
            periodic.result(10)
            wires = list(asked.result(10))
    assert dns.message.from_wire(wires[0], xfr=True).rcode() == dns.rcode.NOERROR
    assert apply_all(name, wires).get_rdataset(f"ns1.{name}", "A")
    assert source.host_reads == 3


@pytest.mark.parametrize("rtype, text", [
    ("CNAME", "www.example.com."), ("CNAME", "example.com."), ("NS", "ns1.example.net."), ("PTR", "a.b.example.com."),
    ("MX", "10 mx.example.com."), ("MX", "0 ."), ("SRV", "10 60 5060 sip.example.com."), ("TXT", '"hello world"'),
    ("TXT", '""'), ("TXT", '"a" "b"'), ("TXT", '"with \\" quote"'), ("CAA", '0 issue "letsencrypt.org"'),
    ("SOA", "ns1.example.net. hostmaster.example.com. 2026120701 3600 600 86400 300"),
    ("SOA", "example.com. example.com. 4294967295 1 2 3 4"), ("SOA", "ns1.example.net. a\\.b.example.com. 1 2 3 4 5")])
def test_records_written_directly_are_what_dnspython_writes(rtype, text):
    import io

    import dns.rdata

    zone = RenderedZone("example.com.")
    expected = io.BytesIO()
    dns.rdata.from_text("IN", rtype, text, origin=zone.origin, relativize=False).to_wire(
        expected, zone._compress, zone.origin)
    assert zone._rdata(dns.rdatatype.from_text(rtype), text) == expected.getvalue()
