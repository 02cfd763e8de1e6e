"""Catalog zones (RFC 9432): MiniDNS serves a catalog pool's members, the serial is bumped once per
debounced burst, and BIND9, Knot and PowerDNS consumers create and drop the member zones themselves."""
import json
import urllib.request
import uuid

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import needs_named, wait_until
from tests.conftest_servers import wait_for_refused
from tests.servers.bind9 import Bind9Server
from tests.servers.knot import KnotServer, needs_knot
from tests.servers.pdns import PdnsServer, needs_pdns
from workers import catalog
from workers.backends.pdns import PowerDNSBackend
from workers.dnsclient import query_soa_serial
from workers.minidns import MiniDNS
from zones.models import Pool
from zones.serials import is_newer
from zones.services import pools, writes
from zones.services.catalog import bump_catalog

CATALOG = "catalog.dnsctl.test."


def catalog_pool(**extra):
    return pools.save_pool(None, name="catalog", catalog_zone=CATALOG,
                              ns_records=[{"hostname": "ns1.example.net.", "priority": 1}], **extra)


def axfr(minidns, name):
    query = dns.message.make_query(name, "AXFR")
    wires = list(minidns.handle(query.to_wire(), ("127.0.0.1", 1), True))
    return [dns.message.from_wire(w, xfr=True, origin=None) for w in wires]


@pytest.fixture
def scheduled(monkeypatch):
    """What members_changed() hands to Celery, kept here: the tests run the task themselves."""
    calls = []
    monkeypatch.setattr(catalog.catalog_changed, "apply_async",
                        lambda args, countdown, priority: calls.append((args, countdown)))
    return calls


# -- what MiniDNS serves ------------------------------------------------------------------------------

def test_minidns_serves_the_live_members_with_stable_labels(db):
    pool = catalog_pool(nameservers=[{"host": "127.0.0.1", "port": 53}])  # the pool's consumer: may transfer it
    zones = [writes.create_zone(project_id="p", name=f"m{i}.example.com.", email="a@example.com",
                                  pool_id=pool.id, admin=True) for i in range(3)]
    writes.delete_zone(zones[2].id)  # pending delete: already out of the catalog
    minidns = MiniDNS()
    (message,) = axfr(minidns, CATALOG)
    assert message.rcode() == dns.rcode.NOERROR
    records = {(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)): [d.to_text() for d in r] for r in message.answer}
    assert records[(f"version.{CATALOG}", "TXT")] == ['"2"']
    members = {name: value for (name, rtype), value in records.items() if rtype == "PTR"}
    assert members == {f"{z.id.hex}.zones.{CATALOG}": [z.name] for z in zones[:2]}
    assert message.answer[0][0].serial == Pool.objects.get(id=pool.id).catalog_serial

    name, serial = bump_catalog(pool.id)
    assert name == CATALOG and serial > message.answer[0][0].serial
    (after,) = axfr(minidns, CATALOG)
    assert after.answer[0][0].serial == serial


def test_a_burst_of_changes_gives_one_bump(db, scheduled):
    pool = catalog_pool()
    before = Pool.objects.get(id=pool.id).catalog_serial
    assert [catalog.members_changed(pool.id) for _ in range(1000)].count(True) == 1
    assert scheduled == [((str(pool.id),), 1.0)]
    catalog.catalog_changed(str(pool.id))  # what the scheduled task does
    assert is_newer(Pool.objects.get(id=pool.id).catalog_serial, before)
    assert catalog.members_changed(pool.id) is True  # a change after the bump schedules the next one
    assert len(scheduled) == 2


def test_catalog_zone_is_validated(db):
    from django.core.exceptions import ValidationError

    catalog_pool()
    with pytest.raises(ValidationError) as excinfo:
        pools.save_pool(None, name="other", catalog_zone=CATALOG)
    assert "catalog_zone" in excinfo.value.message_dict
    with pytest.raises(ValidationError):
        pools.save_pool(None, name="other", catalog_zone="not a name")


# -- real consumers ---------------------------------------------------------------------------------

@needs_named
@needs_knot
@needs_pdns
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_bind9_knot_and_pdns_consume_the_catalog(minidns_address, scheduled):
    pool = catalog_pool()
    consumers = []
    try:
        consumers.append(Bind9Server(primary=minidns_address, catalog=CATALOG).start())
        consumers.append(KnotServer(masters=[minidns_address], catalog=CATALOG).start())
        pdns = PdnsServer().start()
        consumers.append(pdns)
        PowerDNSBackend("pdns-consumer", pdns.backend_options, [minidns_address]).create_consumer(CATALOG)
        pools.save_pool(pool, name="catalog", nameservers=[{"host": s.host, "port": s.port} for s in consumers])

        names = [f"cat{i}-{uuid.uuid4().hex[:6]}.example.com." for i in range(50)]
        zones = [writes.create_zone(project_id="p", name=n, email="a@example.com", pool_id=pool.id, admin=True)
                 for n in names]
        for _ in zones:
            catalog.members_changed(pool.id)  # what the pipeline calls after each committed create
        assert len(scheduled) == 1
        catalog.catalog_changed(*scheduled[0][0])
        for server in consumers:
            for zone in zones:
                wait_until(lambda: query_soa_serial(zone.name, server.host, server.port) == zone.serial,
                           timeout=30, interval=0.05, message=f"{zone.name} on {type(server).__name__}")
        assert _pdns_kind(pdns, names[0]) == "Slave"

        for zone in zones:
            writes.delete_zone(zone.id)
            catalog.members_changed(pool.id)
        assert len(scheduled) == 2
        catalog.catalog_changed(*scheduled[1][0])
        for server in consumers:
            for name in names:
                assert wait_for_refused(server, name, timeout=30) == dns.rcode.REFUSED, type(server).__name__
    finally:
        for server in consumers:
            server.stop()


def _pdns_kind(pdns, name):
    request = urllib.request.Request(f"{pdns.api_url}/api/v1/servers/localhost/zones/{name}",
                                     headers={"X-API-Key": pdns.api_key})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["kind"]


def test_the_api_sets_and_clears_the_catalog_zone(admin_user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    response = api.post("/v2/pools", {"name": "c", "catalog_zone": CATALOG, "notify_source": "127.0.0.1"},
                        format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["catalog_zone"], response.json()["notify_source"]) == (CATALOG, "127.0.0.1")
    response = api.patch(f"/v2/pools/{response.json()['id']}", {"catalog_zone": ""}, format="json")
    assert response.status_code == 200 and response.json()["catalog_zone"] is None
    assert api.post("/v2/pools", {"name": "d", "catalog_zone": "bad name"}, format="json").status_code == 400


def test_a_pool_with_bad_backend_options_is_a_400(admin_user):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(admin_user)
    target = {"name": "k1", "type": "knot", "masters": ["127.0.0.1:5354"], "options": {"socket": "relative"}}
    response = api.post("/v2/pools", {"name": "bad", "targets": [target]}, format="json")
    assert response.status_code == 400
    assert "knot target 'k1'" in response.json()["errors"]["targets[0].options"][0]
    assert not Pool.objects.filter(name="bad").exists()
