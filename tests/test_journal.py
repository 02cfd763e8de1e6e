"""The change journal: one record of each committed change (who, what, which serial), written in the
change's own transaction; IXFR answered from it, proven by dnspython's own IXFR client turning the old
zone into exactly the current one; its fallbacks to AXFR; trimming by age and by size.

Plain `django_db`: on_commit never runs, so no Celery work is sent."""
import uuid
from datetime import timedelta

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.xfr
import dns.zone
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest_servers import tsig_key
from tests.test_minidns import add_records
from workers import tasks
from workers.minidns import MiniDNS
from zones import events, journal
from zones.journal import Actor
from zones.models import OutboxEvent, RecordSet, TsigKey, Zone, ZoneChange
from zones.services import pools, writes

pytestmark = pytest.mark.django_db

LOCAL = ("127.0.0.1", 40000)
ALICE = Actor(7, "alice", str(uuid.uuid4()), "api")
NS = [{"hostname": "ns1.example.net.", "priority": 1}]


@pytest.fixture
def pool():
    return pools.save_pool(None, name="default", ns_records=NS, nameservers=[{"host": LOCAL[0], "port": 53}])


@pytest.fixture
def zone(pool):
    zone = writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com", actor=ALICE)
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"], actor=ALICE)
    return Zone.objects.get(id=zone.id)


def current(zone_id) -> Zone:
    return Zone.objects.get(id=zone_id)


def soa(serial, email="admin.example.com.") -> str:
    return f"ns1.example.net. {email} {serial} 3600 600 86400 3600"


# --- one record per change ------------------------------------------------------------------------


def test_every_change_records_who_what_and_which_serial(pool):
    zone = writes.create_zone(project_id="p1", name="example.com.", email="admin@example.com", actor=ALICE)
    s1 = zone.serial
    rs = writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"], actor=ALICE)
    s2 = current(zone.id).serial
    writes.update_recordset(zone.id, rs.id, records=["192.0.2.1", "192.0.2.2"], ttl=60, actor=ALICE)
    s3 = current(zone.id).serial
    writes.delete_recordset(zone.id, rs.id)  # no actor: the system's
    s4 = current(zone.id).serial
    writes.update_zone(zone.id, email="hostmaster@example.com", description="new", actor=ALICE)
    s5 = current(zone.id).serial
    writes.delete_zone(zone.id, actor=ALICE)
    s6 = current(zone.id).serial

    rows = list(ZoneChange.objects.filter(zone_id=zone.id).order_by("id"))
    assert [(r.action, r.serial_before, r.serial) for r in rows] == [
        ("zone.create", None, s1), ("recordset.create", s1, s2), ("recordset.update", s2, s3),
        ("recordset.delete", s3, s4), ("zone.update", s4, s5), ("zone.delete", s5, s6)]
    assert len({s1, s2, s3, s4, s5, s6}) == 6
    by_alice = [r for r in rows if r.action != "recordset.delete"]
    assert {(r.actor_user_id, r.actor_name, str(r.actor_token_id), r.actor_via) for r in by_alice} == \
        {(7, "alice", ALICE.token_id, "api")}
    assert (rows[3].actor_user_id, rows[3].actor_name, rows[3].actor_token_id, rows[3].actor_via) == \
        (None, "system", None, "system")
    assert all((r.zone_name, r.project_id) == ("example.com.", "p1") for r in rows)

    create, add, update, remove, email, delete = rows
    assert create.zone_before == {} and create.added == [
        ["example.com.", "SOA", 3600, [soa(s1)]], ["example.com.", "NS", 3600, ["ns1.example.net."]]]
    assert create.zone_after == {"name": "example.com.", "email": "admin@example.com", "ttl": 3600, "description": ""}
    assert add.recordset_id == rs.id and add.removed == [["example.com.", "SOA", 3600, [soa(s1)]]]
    assert add.added == [["www.example.com.", "A", 3600, ["192.0.2.1"]], ["example.com.", "SOA", 3600, [soa(s2)]]]
    assert update.removed == [["www.example.com.", "A", 3600, ["192.0.2.1"]], ["example.com.", "SOA", 3600, [soa(s2)]]]
    assert update.added == [["www.example.com.", "A", 60, ["192.0.2.1", "192.0.2.2"]],
                            ["example.com.", "SOA", 3600, [soa(s3)]]]
    assert remove.removed[0] == ["www.example.com.", "A", 60, ["192.0.2.1", "192.0.2.2"]]
    assert remove.added == [["example.com.", "SOA", 3600, [soa(s4)]]]
    assert (email.zone_before, email.zone_after) == ({"email": "admin@example.com", "description": ""},
                                                     {"email": "hostmaster@example.com", "description": "new"})
    assert email.added == [["example.com.", "SOA", 3600, [soa(s5, "hostmaster.example.com.")]]]
    assert delete.zone_before["name"] == "example.com." and delete.zone_after == {}
    assert (delete.removed, delete.added, delete.incremental) == ([], [], False)
    assert all(r.incremental for r in rows[:-1])


def test_a_zone_ttl_change_is_recorded_but_no_ixfr_crosses_it(zone):
    writes.update_zone(zone.id, ttl=600, actor=ALICE)
    row = ZoneChange.objects.latest("id")
    assert (row.zone_before, row.zone_after, row.incremental) == ({"ttl": 3600}, {"ttl": 600}, False)
    assert row.removed[0][:3] == ["example.com.", "SOA", 3600] and row.added[0][:3] == ["example.com.", "SOA", 600]


def test_changes_that_move_no_serial_are_not_recorded(zone):
    rs = RecordSet.objects.get(zone=zone, type="A")
    before = ZoneChange.objects.count()
    writes.update_zone(zone.id, description="only words")
    writes.update_zone(zone.id, ttl=zone.ttl, email=zone.email)
    writes.update_recordset(zone.id, rs.id, records=["192.0.2.1"], description="same records")
    assert ZoneChange.objects.count() == before and current(zone.id).serial == zone.serial


def test_a_change_that_rolls_back_or_is_refused_leaves_no_record(zone):
    before = (ZoneChange.objects.count(), OutboxEvent.objects.count())
    with pytest.raises(RuntimeError), transaction.atomic():
        writes.create_recordset(zone.id, name="mail", type="MX", records=["10 mx"], actor=ALICE)
        assert ZoneChange.objects.count() == before[0] + 1  # there, inside the change's transaction
        raise RuntimeError("the request failed after the change was written")
    with pytest.raises(Exception), transaction.atomic():
        writes.create_recordset(zone.id, name="bad", type="A", records=["not an address"], actor=ALICE)
    assert (ZoneChange.objects.count(), OutboxEvent.objects.count()) == before
    assert current(zone.id).serial == zone.serial


def test_the_outbox_event_carries_the_actor_and_its_record(zone):
    writes.create_recordset(zone.id, name="mail", type="MX", records=["10 mx"], actor=ALICE)
    event, change = OutboxEvent.objects.latest("id"), ZoneChange.objects.latest("id")
    assert event.type == events.UPDATE and event.payload["serial"] == change.serial
    assert event.payload["actor"] == {"user_id": 7, "username": "alice", "token_id": ALICE.token_id, "via": "api"}
    assert event.payload["change_id"] == change.id


def test_the_record_is_one_insert_and_reads_nothing_that_grows_with_the_zone(zone):
    big = writes.create_zone(project_id="p1", name="big.example.", email="admin@example.com")
    add_records(big, 2000)

    def queries(zone_id, name):
        with CaptureQueriesContext(connection) as captured:
            writes.create_recordset(zone_id, name=name, type="TXT", records=['"x"'], actor=ALICE)
        return [q["sql"] for q in captured.captured_queries]

    small, large = queries(zone.id, "a"), queries(big.id, "a")
    assert len(small) == len(large)
    # one statement writes the record and its outbox event (PostgreSQL; two elsewhere)
    assert sum('INSERT INTO "zones_zonechange"' in sql for sql in large) == 1
    assert [sql for sql in large if 'INSERT INTO "zones_outboxevent"' in sql] == [
        sql for sql in large if 'INSERT INTO "zones_zonechange"' in sql]


# --- condensing (no database) ---------------------------------------------------------------------


def diff(removed, added, old=1, new=2):
    return ([["z.", "SOA", 60, [soa(old)]], *removed], [["z.", "SOA", 60, [soa(new)]], *added])


def test_condensing_cancels_what_came_and_went_and_keeps_ttl_changes():
    a1, a2 = ["a.z.", "A", 60, ["192.0.2.1"]], ["a.z.", "A", 60, ["192.0.2.1", "192.0.2.2"]]
    a2_ttl = ["a.z.", "A", 300, ["192.0.2.1", "192.0.2.2"]]
    tmp = ["tmp.z.", "TXT", 60, ['"gone soon"']]
    removed, added = journal.condense([
        diff([], [a1, tmp], 1, 2),  # a and tmp come
        diff([tmp, a1], [a2], 2, 3),  # tmp goes again; a gains a record: 192.0.2.1 goes and comes back
        diff([a2], [a2_ttl], 3, 4),  # a's TTL changes
    ])
    assert removed == [["z.", "SOA", 60, [soa(1)]]]
    assert added == [["z.", "SOA", 60, [soa(4)]], ["a.z.", "A", 300, ["192.0.2.1", "192.0.2.2"]]]

    removed, added = journal.condense([diff([a1], [], 4, 5), diff([], [a1], 5, 6)])  # went and came back
    assert (removed, added) == ([["z.", "SOA", 60, [soa(4)]]], [["z.", "SOA", 60, [soa(6)]]])
    assert journal.condense([([], [a1])]) is None  # a change without its SOA records is no IXFR step


# --- IXFR through MiniDNS, applied by dnspython's own IXFR client ---------------------------------


def axfr(minidns, origin="example.com.") -> list[bytes]:
    query = dns.message.make_query(origin, "AXFR")
    return list(minidns.handle(query.to_wire(), LOCAL, True))


def zone_from(wires, origin="example.com.") -> dns.zone.Zone:
    """A secondary's copy, from an AXFR's messages."""
    copy = dns.zone.Zone(origin, relativize=False)
    with dns.xfr.Inbound(copy, dns.rdatatype.AXFR) as inbound:
        for wire in wires:
            inbound.process_message(dns.message.from_wire(wire, xfr=True, one_rr_per_rrset=True))
    return copy


def ixfr(minidns, copy: dns.zone.Zone, serial: int, tcp=True, payload=None, ring=None) -> list[bytes]:
    """Ask for an IXFR from `serial` and apply the answer to `copy` as dnspython's client does
    (raises if the answer is not a valid IXFR or AXFR-style answer for it)."""
    query, _ = dns.xfr.make_query(copy, serial=serial, use_edns=0 if payload else None, payload=payload,
                                  keyring=ring)
    wires = list(minidns.handle(query.to_wire(), LOCAL, tcp))
    with dns.xfr.Inbound(copy, dns.rdatatype.IXFR, serial, is_udp=not tcp) as inbound:
        mac, context = query.mac if ring else b"", None
        for wire in wires:
            message = dns.message.from_wire(wire, xfr=True, one_rr_per_rrset=True, keyring=ring or None,
                                            request_mac=mac, tsig_ctx=context, multi=bool(ring))
            context = message.tsig_ctx if ring else None
            inbound.process_message(message)
    return wires


def contents(copy: dns.zone.Zone) -> set:
    return {(name.to_text(), dns.rdatatype.to_text(rds.rdtype), rds.ttl, rdata.to_text())
            for name, node in copy.nodes.items() for rds in node for rdata in rds}


def answer_records(wires) -> list:
    """The answers' records, in order (signatures, if any, are checked by ixfr())."""
    return [rrset for wire in wires
            for rrset in dns.message.from_wire(wire, xfr=True, one_rr_per_rrset=True, keyring=False).answer]


def incremental(wires) -> bool:
    """RFC 1995: an incremental answer's second record is the client's SOA; an AXFR-style one's is not."""
    records = answer_records(wires)
    return len(records) > 1 and records[1].rdtype == dns.rdatatype.SOA


def test_ixfr_from_every_earlier_serial_makes_exactly_the_current_zone(zone, pool):
    add_records(zone, 20)  # so that no difference below outweighs the zone (that would be answered AXFR-style)
    minidns = MiniDNS()
    snapshots = {zone.serial: axfr(minidns)}
    www = RecordSet.objects.get(zone=zone, name="www.example.com.")
    steps = [
        lambda: writes.create_recordset(zone.id, name="mail", type="MX", records=["10 mx1", "20 mx2"], ttl=60),
        lambda: writes.update_recordset(zone.id, www.id, records=["192.0.2.1", "192.0.2.2"]),
        lambda: writes.update_recordset(zone.id, www.id, ttl=120),  # same records, another TTL
        lambda: writes.create_recordset(zone.id, name="tmp", type="TXT", records=['"short-lived"']),
        lambda: writes.delete_recordset(zone.id, RecordSet.objects.get(zone=zone, type="TXT").id),
        lambda: writes.update_zone(zone.id, email="hostmaster@example.com"),  # the SOA's RNAME
        lambda: writes.update_recordset(zone.id, www.id, ttl=None),  # the zone's TTL again
        lambda: pools.save_pool(pool, name="default", ns_records=NS + [{"hostname": "ns2.example.net."}]),
        lambda: writes.create_recordset(zone.id, name="_sip._tcp", type="SRV", records=["1 1 5060 sip"]),
    ]
    for step in steps:
        step()
        snapshots[current(zone.id).serial] = axfr(minidns)
    now = contents(zone_from(axfr(minidns)))
    assert ("example.com.", "NS", 3600, "ns2.example.net.") in now  # the pool's new NS came with the last change

    for serial, wires in list(snapshots.items())[:-1]:
        copy = zone_from(wires)
        answer = ixfr(minidns, copy, serial)
        assert incremental(answer), serial
        assert contents(copy) == now, serial

    first = answer_records(ixfr(minidns, zone_from(snapshots[zone.serial]), zone.serial))
    soas = [r[0].serial for r in first if r.rdtype == dns.rdatatype.SOA]
    assert soas == [current(zone.id).serial, zone.serial, current(zone.id).serial, current(zone.id).serial]
    assert not [r for r in first if r.rdtype == dns.rdatatype.TXT]  # came and went: condensed away


def test_a_client_at_the_current_serial_or_newer_gets_just_the_soa(zone):
    minidns = MiniDNS()
    copy = zone_from(axfr(minidns))
    for serial in (zone.serial, zone.serial + 5):
        for tcp in (True, False):
            query, _ = dns.xfr.make_query(copy, serial=serial)
            records = answer_records(minidns.handle(query.to_wire(), LOCAL, tcp))
            assert [(r.rdtype, r[0].serial) for r in records] == [(dns.rdatatype.SOA, zone.serial)]
    assert ixfr(minidns, copy, zone.serial) and contents(copy) == contents(zone_from(axfr(minidns)))


def test_over_udp_a_difference_that_fits_in_one_message_else_just_the_soa(zone):
    minidns = MiniDNS()
    old = axfr(minidns)
    writes.create_recordset(zone.id, name="mail", type="MX", records=["10 mx"])
    copy = zone_from(old)
    (wire,) = ixfr(minidns, copy, zone.serial, tcp=False, payload=1232)
    assert incremental([wire]) and contents(copy) == contents(zone_from(axfr(minidns)))

    writes.create_recordset(zone.id, name="big", type="TXT", records=[f'"{i:02d} {"x" * 200}"' for i in range(20)])
    with pytest.raises(dns.xfr.UseTCP):  # just our SOA: dnspython's client knows to ask again over TCP
        ixfr(minidns, zone_from(old), zone.serial, tcp=False, payload=1232)
    copy = zone_from(old)
    assert incremental(ixfr(minidns, copy, zone.serial)) and contents(copy) == contents(zone_from(axfr(minidns)))


@pytest.mark.parametrize("why", ["unknown serial", "trimmed", "zone ttl change", "bigger than the zone"])
def test_when_the_journal_does_not_know_the_way_the_answer_is_the_whole_zone(zone, why):
    minidns = MiniDNS()
    old, serial = axfr(minidns), zone.serial
    if why == "bigger than the zone":  # replacing every record: the difference would outweigh the zone
        writes.create_recordset(zone.id, name="t", type="TXT", records=[f'"{i}"' for i in range(10)])
        old, serial = axfr(minidns), current(zone.id).serial
        writes.update_recordset(zone.id, RecordSet.objects.get(zone=zone, type="TXT").id,
                                  records=[f'"new {i}"' for i in range(10)])
    writes.create_recordset(zone.id, name="mail", type="MX", records=["10 mx"])
    if why == "unknown serial":
        serial = 12345
    if why == "trimmed":  # the journal keeps only the newest change: not the one from `serial`
        writes.create_recordset(zone.id, name="api", type="A", records=["192.0.2.9"])
        assert journal.trim(0, 1) >= 1
    if why == "zone ttl change":
        writes.update_zone(zone.id, ttl=600)
    copy = zone_from(old)
    answer = ixfr(minidns, copy, serial)
    assert not incremental(answer)
    assert contents(copy) == contents(zone_from(axfr(minidns)))
    if why == "zone ttl change":  # past the TTL change the journal serves increments again
        after = current(zone.id).serial
        old = axfr(minidns)
        writes.create_recordset(zone.id, name="api", type="A", records=["192.0.2.9"])
        assert incremental(ixfr(minidns, zone_from(old), after))


def test_a_keyed_zone_gets_its_ixfr_signed_and_refuses_it_unsigned(zone, pool):
    key = TsigKey.objects.create(**tsig_key("pool-key"))
    pools.save_pool(pool, name="default", tsig_key="pool-key")
    minidns = MiniDNS()
    ring = {dns.name.from_text(key.name): dns.tsig.Key(key.name, key.secret, key.algorithm)}
    query = dns.message.make_query("example.com.", "AXFR")
    query.use_tsig(ring)
    old = [list(minidns.handle(query.to_wire(), LOCAL, True))[0]]
    old_zone = dns.zone.Zone("example.com.", relativize=False)
    with dns.xfr.Inbound(old_zone, dns.rdatatype.AXFR) as inbound:
        inbound.process_message(dns.message.from_wire(old[0], xfr=True, one_rr_per_rrset=True, keyring=ring,
                                                      request_mac=query.mac))
    writes.create_recordset(zone.id, name="mail", type="MX", records=["10 mx"])

    unsigned, _ = dns.xfr.make_query(old_zone, serial=zone.serial)
    (refused,) = minidns.handle(unsigned.to_wire(), LOCAL, True)
    assert dns.message.from_wire(refused).rcode() == dns.rcode.REFUSED
    for tcp in (False, True):  # over UDP in one message, over TCP in a stream: every message's MAC is checked
        copy = dns.zone.Zone("example.com.", relativize=False)
        with dns.xfr.Inbound(copy, dns.rdatatype.AXFR) as inbound:
            inbound.process_message(dns.message.from_wire(old[0], xfr=True, one_rr_per_rrset=True, keyring=ring,
                                                          request_mac=query.mac))
        answer = ixfr(minidns, copy, zone.serial, tcp=tcp, payload=None if tcp else 1232, ring=ring)
        assert incremental(answer) and copy.get_rdataset("mail.example.com.", "MX")


def test_a_one_record_change_to_a_10000_record_zone_is_a_few_hundred_bytes(zone, capsys):
    add_records(zone, 10_000)
    minidns = MiniDNS()
    old = axfr(minidns)
    writes.create_recordset(zone.id, name="new", type="A", records=["198.51.100.1"])
    copy = zone_from(old)
    answer = ixfr(minidns, copy, zone.serial)
    full = axfr(minidns)
    assert contents(copy) == contents(zone_from(full))
    ixfr_size, axfr_size = sum(map(len, answer)), sum(map(len, full))
    with capsys.disabled():
        print(f"\nIXFR of a one-record change to a 10,000-record zone: {ixfr_size} bytes in {len(answer)} message; "
              f"AXFR: {axfr_size:,} bytes in {len(full)} messages")
    assert len(answer) == 1 and ixfr_size < 300 and axfr_size > 100 * ixfr_size


# --- trimming -------------------------------------------------------------------------------------


def test_trimming_by_age_and_by_changes_per_zone(zone, pool):
    other = writes.create_zone(project_id="p2", name="other.example.", email="admin@example.com")
    for i in range(4):
        writes.create_recordset(zone.id, name=f"h{i}", type="A", records=["192.0.2.1"])
    ours = list(ZoneChange.objects.filter(zone_id=zone.id).order_by("id").values_list("id", flat=True))
    assert len(ours) == 6
    ZoneChange.objects.filter(id=ours[0]).update(created_at=timezone.now() - timedelta(days=2))
    assert journal.trim(max_age=24 * 3600, max_per_zone=0) == 1
    assert journal.trim(max_age=24 * 3600, max_per_zone=3) == 2
    assert list(ZoneChange.objects.filter(zone_id=zone.id).values_list("id", flat=True)) == ours[-3:]
    assert ZoneChange.objects.filter(zone_id=other.id).count() == 1  # under the limit: untouched
    assert journal.trim(max_age=24 * 3600, max_per_zone=3) == 0


def test_the_purge_sweep_trims_the_journal(zone, settings, monkeypatch):
    monkeypatch.setitem(settings.DNSCTL, "JOURNAL_MAX_CHANGES_PER_ZONE", 1)
    assert tasks.purge(force=True) == {"purged": 0, "zone_tasks_purged": 0, "journal_trimmed": 1}
    assert ZoneChange.objects.filter(zone_id=zone.id).get().action == "recordset.create"
