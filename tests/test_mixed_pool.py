"""End to end on a pool of four different servers: BIND9, Knot, PowerDNS and NSD, each driven by its
backend through the normal path (services → Celery worker → backends → NOTIFY → SOA polls → ACTIVE)."""
import uuid

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import needs_named, wait_until
from tests.conftest_servers import four_servers, mixed_pool, wait_for_refused  # noqa: F401 - fixtures
from tests.servers.bind9 import Bind9Server
from tests.servers.knot import KnotServer, needs_knot
from tests.servers.nsd import needs_nsd
from tests.servers.pdns import PdnsServer, needs_pdns
from workers.dnsclient import query_soa_serial
from zones.models import Pool, Zone
from zones.serials import is_newer
from zones.services import pools, writes

pytestmark = [needs_named, needs_knot, needs_pdns, needs_nsd, pytest.mark.integration,
              pytest.mark.django_db(transaction=True)]




def wait_status(zone_id, *statuses, timeout=60):
    return wait_until(lambda: (z := Zone.objects.get(id=zone_id)).status in statuses and z.action != "UPDATE"
                      and z, timeout=timeout, message=f"zone {zone_id} to be {statuses}")


def test_a_zone_goes_active_on_all_four_and_is_dropped_by_all(four_servers, mixed_pool):
    name = f"mixed-{uuid.uuid4().hex[:8]}.example.com."
    zone = writes.create_zone(project_id="p1", name=name, email="admin@example.com")
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.80"])
    zone = wait_status(zone.id, "ACTIVE", "ERROR")
    assert (zone.status, zone.action) == ("ACTIVE", "NONE"), zone.reason
    for kind, server in four_servers.items():
        assert query_soa_serial(name, server.host, server.port) == zone.serial, kind
        answer = dns.query.udp(dns.message.make_query(f"www.{name}", "A"), server.host, port=server.port, timeout=2)
        assert [r.to_text() for r in answer.answer[0]] == ["192.0.2.80"], kind

    writes.delete_zone(zone.id)
    zone = wait_status(zone.id, "DELETED", "ERROR")
    assert zone.status == "DELETED", zone.reason
    for kind, server in four_servers.items():
        assert wait_for_refused(server, name) == dns.rcode.REFUSED, kind


CATALOG = "catalog.mixed.test."


@pytest.fixture
def catalog_pool(minidns_address, worker):
    """A catalog pool: BIND9, Knot and PowerDNS consume its catalog from MiniDNS; their control
    channels are never used."""
    from workers.backends.pdns import PowerDNSBackend

    host, port = minidns_address
    pool = pools.save_pool(None, name="default", catalog_zone=CATALOG, notify_source=host,
                              ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    consumers = {}
    try:
        consumers["bind9"] = Bind9Server(primary=minidns_address, catalog=CATALOG).start()
        consumers["knot"] = KnotServer(masters=[minidns_address], catalog=CATALOG).start()
        consumers["pdns"] = PdnsServer().start()
        PowerDNSBackend("pdns", consumers["pdns"].backend_options, [minidns_address]).create_consumer(CATALOG)
        pools.save_pool(
            pool, name="default",
            targets=[{"name": kind, "type": kind, "options": server.backend_options, "masters": [f"{host}:{port}"]}
                     for kind, server in consumers.items()],
            nameservers=[{"host": server.host, "port": server.port} for server in consumers.values()])
        yield consumers
    finally:
        for server in consumers.values():
            server.stop()


def test_a_catalog_pool_provisions_50_zones_and_drops_them(catalog_pool):
    names = [f"cat{i}-{uuid.uuid4().hex[:6]}.example.com." for i in range(50)]
    zones = [writes.create_zone(project_id="p1", name=name, email="admin@example.com") for name in names]
    for zone in zones:
        zone = wait_status(zone.id, "ACTIVE", "ERROR")
        assert (zone.status, zone.action) == ("ACTIVE", "NONE"), zone.reason
        for kind, server in catalog_pool.items():
            assert query_soa_serial(zone.name, server.host, server.port) == zone.serial, kind
    serial = Pool.objects.get(name="default").catalog_serial
    for zone in zones:
        writes.delete_zone(zone.id)
    for zone in zones:
        zone = wait_status(zone.id, "DELETED", "ERROR")
        assert zone.status == "DELETED", zone.reason
        for kind, server in catalog_pool.items():
            assert wait_for_refused(server, zone.name) == dns.rcode.REFUSED, kind
    assert is_newer(Pool.objects.get(name="default").catalog_serial, serial)
