"""IXFR from the change journal, seen by real secondaries: BIND9, Knot and PowerDNS take a one-record
change as an incremental transfer (their own logs say so), and after a journal gap they fall back to
AXFR and still serve the current zone. The whole path is the real one: services → Celery worker →
backends → NOTIFY → the secondaries transfer from the MiniDNS process → SOA polls → ACTIVE."""
import os
import re
import time
import uuid

import dns.message
import dns.query
import pytest

from tests.conftest import needs_named, wait_until
from tests.servers.bind9 import Bind9Server
from tests.servers.knot import KnotServer, needs_knot
from tests.servers.pdns import PdnsServer, needs_pdns
from workers.dnsclient import query_soa_serial
from zones import journal
from zones.models import RecordSet, Zone
from zones.services import pools, writes

pytestmark = [needs_named, needs_knot, needs_pdns, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _log(server) -> str:
    with open(os.path.join(server.dir, server.log_name), errors="replace") as f:
        return f.read()


# What each server logs when it takes a zone incrementally, and when it gets the whole zone instead
# (read in their logs: BIND9 9.18 at debug level 3, Knot 3.2, PowerDNS 4.7). {zone}: no trailing dot.
INCREMENTAL = {
    "bind9": r"transfer of '{zone}/IN' from \S+: got incremental response\n(?:.*\n)*?.*"
             r"zone {zone}/IN: transferred serial {serial}\n",
    "knot": r"\[{zone}\.\] IXFR, incoming, remote \S+, finished(?:.*\n)*?.*"
            r"\[{zone}\.\] refresh, remote \S+, zone updated, .*serial \d+ -> {serial},",
    "pdns": r"IXFR-in zone: '{zone}', primary: '\S+', got [1-9]\d* deltas?, zone committed with serial {serial}",
}
WHOLE = {
    "bind9": r"transfer of '{zone}/IN' from \S+: got nonincremental response",
    "knot": r"\[{zone}\.\] IXFR, incoming, remote \S+, receiving AXFR-style IXFR",
    "pdns": r"AXFR-in zone: '{zone}', primary: '\S+', zone committed with serial {serial}",
}


def logged(patterns, kind, server, since, zone) -> bool:
    """Did the server log this kind of transfer of the zone at its serial, since offset `since`?"""
    pattern = patterns[kind].format(zone=re.escape(zone.name.rstrip(".")), serial=zone.serial)
    return bool(re.search(pattern, _log(server)[since:]))


@pytest.fixture(scope="module")
def secondaries(minidns_address):
    started = {}
    try:
        started["bind9"] = Bind9Server(primary=minidns_address).start()
        started["bind9"].rndc("trace", "3")  # BIND9 says which kind of transfer it got at debug level 3
        started["knot"] = KnotServer(masters=[minidns_address]).start()
        started["pdns"] = PdnsServer().start()
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture
def pool(secondaries, minidns_address, worker):
    host, port = minidns_address
    return pools.save_pool(
        None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}], notify_source=host,
        targets=[{"name": kind, "type": kind, "options": server.backend_options, "masters": [f"{host}:{port}"]}
                 for kind, server in secondaries.items()],
        nameservers=[{"host": server.host, "port": server.port} for server in secondaries.values()])


def settled(zone_id) -> Zone:
    """The zone once its change is done: ACTIVE (or ERROR, which fails the test with the reason)."""
    zone = wait_until(lambda: (z := Zone.objects.get(id=zone_id)).action == "NONE" or z.status == "ERROR",
                      timeout=60, message="the change to settle")
    zone = Zone.objects.get(id=zone_id)
    assert zone.status == "ACTIVE", zone.reason
    return zone


def a_record(server, name) -> list[str]:
    answer = dns.query.udp(dns.message.make_query(name, "A"), server.host, port=server.port, timeout=2)
    return sorted(r.to_text() for rrset in answer.answer for r in rrset)


def new_zone(records: int = 20) -> Zone:
    name = f"ixfr-{uuid.uuid4().hex[:8]}.example.com."
    zone = writes.create_zone(project_id="p1", name=name, email="admin@example.com")
    for i in range(records):
        writes.create_recordset(zone.id, name=f"host{i}", type="A", records=[f"192.0.2.{i + 1}"])
    return settled(zone.id)


def offsets(secondaries) -> dict:
    return {kind: len(_log(server)) for kind, server in secondaries.items()}


def quiet_offsets(secondaries, quiet: float = 1.0) -> dict:
    """offsets() once no server has logged anything for `quiet` s: a refresh one of them queued while the
    zone was being filled (PowerDNS queues one per NOTIFY, as a whole transfer) has run by then, and
    is not taken for the answer to the change that follows (seen in CI: an AXFR at the new serial)."""
    last, since = offsets(secondaries), time.monotonic()
    deadline = since + 30
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = offsets(secondaries)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"the secondaries' logs never went quiet for {quiet} s")


def held_everywhere(secondaries, zone) -> dict:
    """quiet_offsets() once every secondary serves the zone at its serial (ACTIVE needs the pool's
    threshold, not every server)."""
    for server in secondaries.values():
        wait_until(lambda: query_soa_serial(zone.name, server.host, server.port) == zone.serial, timeout=30,
                   interval=0.1, message=f"{zone.name} at its serial on {type(server).__name__}")
    return quiet_offsets(secondaries)


def test_a_one_record_change_is_an_incremental_transfer_on_each_server(secondaries, pool):
    zone = new_zone()
    since = held_everywhere(secondaries, zone)
    writes.create_recordset(zone.id, name="new", type="A", records=["198.51.100.7"])
    zone = settled(zone.id)
    for kind, server in secondaries.items():
        assert query_soa_serial(zone.name, server.host, server.port) == zone.serial, kind
        assert a_record(server, f"new.{zone.name}") == ["198.51.100.7"], kind
        assert a_record(server, f"host19.{zone.name}") == ["192.0.2.20"], kind
        assert logged(INCREMENTAL, kind, server, since[kind], zone), \
            f"{kind} logged no incremental transfer:\n{_log(server)[since[kind]:]}"
        assert not logged(WHOLE, kind, server, since[kind], zone), kind


def test_after_a_journal_gap_each_server_gets_the_whole_zone_and_converges(secondaries, pool, monkeypatch):
    zone = new_zone(3)
    since = held_everywhere(secondaries, zone)
    with monkeypatch.context() as unnoticed:  # two changes the secondaries do not hear of...
        unnoticed.setattr(writes, "_enqueue", lambda zone: None)
        writes.create_recordset(zone.id, name="gone", type="A", records=["198.51.100.8"])
        writes.update_recordset(zone.id, RecordSet.objects.get(zone_id=zone.id, name=f"gone.{zone.name}").id,
                                  records=["198.51.100.9"])
    assert journal.trim(0, 1) >= 1  # ...and the journal keeps only the newest change per zone
    writes.create_recordset(zone.id, name="new", type="A", records=["198.51.100.10"])
    zone = settled(zone.id)
    for kind, server in secondaries.items():
        assert query_soa_serial(zone.name, server.host, server.port) == zone.serial, kind
        assert a_record(server, f"gone.{zone.name}") == ["198.51.100.9"], kind
        assert a_record(server, f"new.{zone.name}") == ["198.51.100.10"], kind
        assert logged(WHOLE, kind, server, since[kind], zone), \
            f"{kind} logged no full transfer:\n{_log(server)[since[kind]:]}"
        assert not logged(INCREMENTAL, kind, server, since[kind], zone), kind

    since = held_everywhere(secondaries, zone)  # the journal goes on from there: the next change is incremental again
    writes.delete_recordset(zone.id, RecordSet.objects.get(zone_id=zone.id, name=f"new.{zone.name}").id)
    zone = settled(zone.id)
    for kind, server in secondaries.items():
        assert a_record(server, f"new.{zone.name}") == [], kind
        assert logged(INCREMENTAL, kind, server, since[kind], zone), kind
