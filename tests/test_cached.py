"""The API's per-process copies of TLDs, blacklists, pools and quotas (zones.cached): a write uses
a copy only while the config version it was made at is current, and every way those tables change
(the API, the ORM, raw SQL, a rollback) makes the next write read them again, in the same process."""
import pytest
from django.db import connection, transaction

from tests.test_api import client_for, make_user
from zones import cached, quotas, reserved
from zones.models import Pool, PoolNsRecord, RecordSet, Tld
from zones.services import catalog, pools

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    client = client_for(make_user("alice", "p1"))
    assert new_zone(client, "warm.example.").status_code == 202  # the copies are made
    return client


def new_zone(client, name):
    return client.post("/v2/zones", {"name": name, "email": "a@example.net"}, format="json")


def test_the_version_changes_with_every_kind_of_change_and_only_then():
    first = cached.version()
    assert first is not None
    assert cached.version() == first
    pool = pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    steps = [lambda: Tld.objects.create(name="com"),
             lambda: reserved.save_blacklist(None, pattern="^evil"),
             lambda: quotas.set_quotas("p1", {"zones": 3}),
             lambda: PoolNsRecord.objects.filter(pool=pool).update(priority=2),
             lambda: Pool.objects.filter(id=pool.id).update(allowed_projects=["p2"]),
             lambda: Tld.objects.all().delete()]
    seen = {cached.version()}
    for step in steps:
        step()
        assert cached.version() not in seen
        seen.add(cached.version())
    before = cached.version()
    Pool.objects.filter(id=pool.id).update(catalog_zone="cat.example.")
    assert cached.version() != before
    before = cached.version()
    assert catalog.bump_catalog(pool.id)  # the pipeline's serial is no copy's business
    assert cached.version() == before


def test_a_new_tld_blacklist_or_catalog_applies_to_the_next_create(alice):
    assert new_zone(alice, "a.example.").status_code == 202
    Tld.objects.create(name="org")
    refused = new_zone(alice, "b.example.")
    assert refused.status_code == 400 and "not under a TLD" in refused.content.decode()
    Tld.objects.create(name="example")
    assert new_zone(alice, "c.example.").status_code == 202
    reserved.save_blacklist(None, pattern=r"^d\.")
    assert new_zone(alice, "d.example.").status_code == 400
    Pool.objects.filter(name="default").update(catalog_zone="cat.e.example.")
    assert new_zone(alice, "e.example.").status_code == 400


def test_new_pool_ns_records_reach_new_zones_and_the_next_change_of_old_ones(alice):
    zid = new_zone(alice, "a.example.").json()["id"]
    pools.put_ns_record(Pool.objects.get(name="default"), {"hostname": "ns0.example.net.", "priority": 1})
    PoolNsRecord.objects.filter(hostname="ns1.example.net.").update(priority=5)
    new = new_zone(alice, "b.example.").json()["id"]
    assert RecordSet.objects.get(zone_id=new, type="NS").records == ["ns0.example.net.", "ns1.example.net."]
    assert alice.post(f"/v2/zones/{zid}/recordsets", {"name": "www", "type": "A", "records": ["192.0.2.1"]},
                      format="json").status_code == 202
    assert RecordSet.objects.get(zone_id=zid, type="NS").records == ["ns0.example.net.", "ns1.example.net."]
    assert RecordSet.objects.get(zone_id=zid, type="SOA").records[0].startswith("ns0.example.net. ")


def test_a_lowered_quota_applies_to_the_next_recordset(alice):
    zid = new_zone(alice, "a.example.").json()["id"]
    body = {"name": "www", "type": "A", "records": ["192.0.2.1"]}
    assert alice.post(f"/v2/zones/{zid}/recordsets", body, format="json").status_code == 202
    quotas.set_quotas("p1", {"zone_recordsets": 1})
    refused = alice.post(f"/v2/zones/{zid}/recordsets", {**body, "name": "ftp"}, format="json")
    assert refused.status_code == 413 and refused.json()["type"] == "over_quota", refused.content


def test_a_copy_made_in_a_transaction_that_rolled_back_is_not_used(alice):
    assert reserved.reserved_names()["tlds"] == frozenset()
    with pytest.raises(RuntimeError), transaction.atomic():
        Tld.objects.create(name="net")
        assert reserved.reserved_names()["tlds"] == {"net"}  # the copy is made at the change's own version
        raise RuntimeError("rolled back")
    assert reserved.reserved_names()["tlds"] == frozenset()
    assert new_zone(alice, "a.example.").status_code == 202


def test_a_raw_sql_change_counts_too(alice):
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO zones_blacklist (id, pattern, description, created_at, updated_at) "
                       "VALUES (gen_random_uuid(), '^raw', '', now(), now())")
    assert new_zone(alice, "raw.example.").status_code == 400
