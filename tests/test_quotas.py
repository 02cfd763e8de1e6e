"""Quotas and limits in Designate's shapes, enforced in the write's own transaction.

The API tests use plain `django_db`; the concurrency tests run a live server on real PostgreSQL
with many clients at once, and python-designateclient proves the shapes.
"""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings
from rest_framework.test import APIClient

from zones import accounts, quotas
from zones.models import OutboxEvent, Quota, RecordSet, Zone
from zones.services import pipeline, pools, writes

DEFAULTS = {"zones": 1000, "zone_recordsets": 200_000, "zone_records": 500_000, "recordset_records": 100,
            "api_export_size": 500_000}


def client(username, project, role="member") -> APIClient:
    return APIClient(HTTP_X_AUTH_TOKEN=accounts.issue_token(accounts.api_user(username, project, role)))


@pytest.fixture
def pool(db):
    return pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])


@pytest.fixture
def alice(pool):
    return client("alice", "p1")


@pytest.fixture
def bob(pool):
    return client("bob", "p2")


@pytest.fixture
def admin(pool):
    return client("root", "ops", "admin")


def new_zone(c, name="example.com."):
    return c.post("/v2/zones", {"name": name, "email": "hostmaster@example.com"}, format="json")


def new_recordset(c, zone_id, name="www", records=("192.0.2.1",)):
    return c.post(f"/v2/zones/{zone_id}/recordsets", {"name": name, "type": "A", "records": list(records)},
                  format="json")


def assert_over_quota(response, resource):
    assert response.status_code == 413, response.content
    body = response.json()
    assert (body["code"], body["type"]) == (413, "over_quota"), body
    assert body["message"] == f"Quota exceeded for {resource}." and resource in body["errors"], body


def state():
    """Everything a refused write must leave as it was."""
    return (list(Zone.objects.order_by("id").values_list("id", "serial", "recordset_count", "record_count")),
            sorted(RecordSet.objects.values_list("id", "records")), OutboxEvent.objects.count())


def test_defaults_come_from_settings_and_are_sized_for_dns():
    assert quotas.defaults() == DEFAULTS == settings.QUOTAS


def test_a_member_reads_its_own_quotas_and_limits_only(alice, admin):
    assert alice.get("/v2/quotas").json() == DEFAULTS
    assert alice.get("/v2/quotas/p1").json() == DEFAULTS
    other = alice.get("/v2/quotas/p2")
    assert other.status_code == 403 and other.json()["type"] == "forbidden"
    assert admin.get("/v2/quotas/p1").json() == DEFAULTS
    limits = alice.get("/v2/limits").json()
    assert limits == {"max_zones": 1000, "max_zone_recordsets": 200_000, "max_zone_records": 500_000,
                      "max_recordset_records": 100, "min_ttl": settings.DNSCTL["MIN_TTL"],
                      "max_zone_name_length": 255, "max_recordset_name_length": 255, "max_page_limit": 1000}


def test_admins_set_and_reset_quotas(alice, admin):
    response = admin.patch("/v2/quotas/p1", {"zones": 3, "recordset_records": -1}, format="json")
    assert response.status_code == 200
    assert response.json() == {**DEFAULTS, "zones": 3, "recordset_records": -1}
    assert alice.get("/v2/quotas").json()["zones"] == 3
    assert alice.get("/v2/limits").json()["max_zones"] == 3
    assert admin.get("/v2/quotas/p2").json() == DEFAULTS  # one project's quota is not another's
    assert admin.delete("/v2/quotas/p1").status_code == 204
    assert alice.get("/v2/quotas").json() == DEFAULTS
    assert not Quota.objects.exists()


@pytest.mark.parametrize("body, field", [
    ({"zonez": 3}, "zonez"),
    ({"zones": "3"}, "zones"),
    ({"zones": True}, "zones"),
    ({"zones": 2.5}, "zones"),
    ({"zones": -2}, "zones"),
    ({"zones": 2**31}, "zones"),
    ({"zones": None}, "zones"),
    ({}, "quotas"),
    ([{"zones": 3}], "quotas"),
])
def test_bad_quota_updates_are_400_and_change_nothing(admin, body, field):
    admin.patch("/v2/quotas/p1", {"zone_records": 7}, format="json")
    response = admin.patch("/v2/quotas/p1", {"zones": 5, **body} if isinstance(body, dict) and body else body,
                           format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert admin.get("/v2/quotas/p1").json() == {**DEFAULTS, "zone_records": 7}


def test_members_cannot_change_quotas(alice):
    for response in (alice.patch("/v2/quotas/p1", {"zones": 10**6}, format="json"),
                     alice.delete("/v2/quotas/p1"),
                     alice.patch("/v2/quotas", {"zones": 10**6}, format="json")):
        assert response.status_code in (403, 405), response.content
    assert not Quota.objects.exists()


def test_zone_quota_is_per_project_and_refuses_with_nothing_written(alice, bob, admin):
    quotas.set_quotas("p1", {"zones": 2})
    assert new_zone(alice, "a.example.").status_code == 202
    assert new_zone(alice, "b.example.").status_code == 202
    before = state()
    assert_over_quota(new_zone(alice, "c.example."), "zones")
    assert state() == before
    assert new_zone(bob, "d.example.").status_code == 202  # p2 has the default
    # An admin creating for p1 (sudo) is held to p1's quota too.
    assert_over_quota(admin.post("/v2/zones", {"name": "e.example.", "email": "a@example.com"}, format="json",
                                 HTTP_X_AUTH_SUDO_PROJECT_ID="p1"), "zones")
    # A zone being deleted still counts; once deleted, its slot is free again.
    zone = Zone.objects.get(name="a.example.")
    alice.delete(f"/v2/zones/{zone.id}")
    assert_over_quota(new_zone(alice, "c.example."), "zones")
    pipeline.finish_zone_action(zone.id, "DELETE", Zone.objects.get(id=zone.id).serial, True)
    assert new_zone(alice, "c.example.").status_code == 202


def test_recordset_quotas_count_user_data_only(alice):
    quotas.set_quotas("p1", {"zone_recordsets": 2, "zone_records": 3, "recordset_records": 2})
    zone_id = new_zone(alice).json()["id"]  # its SOA and NS recordsets do not count
    assert new_recordset(alice, zone_id, "a", ["192.0.2.1", "192.0.2.2"]).status_code == 202
    before = state()
    assert_over_quota(new_recordset(alice, zone_id, "b", ["192.0.2.1", "192.0.2.2", "192.0.2.3"]),
                      "recordset_records")
    assert_over_quota(new_recordset(alice, zone_id, "b", ["192.0.2.1", "192.0.2.2"]), "zone_records")
    assert state() == before
    b = new_recordset(alice, zone_id, "b", ["192.0.2.9"]).json()
    assert_over_quota(new_recordset(alice, zone_id, "c"), "zone_recordsets")
    # Updates that grow are checked; updates that shrink always pass.
    url = f"/v2/zones/{zone_id}/recordsets/{b['id']}"
    assert_over_quota(alice.put(url, {"records": ["192.0.2.8", "192.0.2.9"]}, format="json"), "zone_records")
    assert alice.put(url, {"records": ["192.0.2.7"]}, format="json").status_code == 202
    quotas.set_quotas("p1", {"zone_records": 1})  # lowered below what the zone holds
    a = RecordSet.objects.get(zone_id=zone_id, name="a.example.com.")
    assert alice.put(f"/v2/zones/{zone_id}/recordsets/{a.id}", {"records": ["192.0.2.1"]},
                     format="json").status_code == 202
    assert alice.delete(url).status_code == 202
    zone = Zone.objects.get(id=zone_id)
    assert (zone.recordset_count, zone.record_count) == (1, 1)
    quotas.set_quotas("p1", {"zone_recordsets": -1, "zone_records": -1})
    for i in range(5):
        assert new_recordset(alice, zone_id, f"n{i}").status_code == 202


def test_counters_follow_every_write(alice):
    zone_id = new_zone(alice).json()["id"]
    ids = [new_recordset(alice, zone_id, f"h{i}", [f"192.0.2.{j}" for j in range(1, i + 2)]).json()["id"]
           for i in range(4)]
    alice.put(f"/v2/zones/{zone_id}/recordsets/{ids[0]}", {"records": ["192.0.2.1", "192.0.2.2", "192.0.2.3"]},
              format="json")
    alice.put(f"/v2/zones/{zone_id}/recordsets/{ids[3]}", {"records": ["192.0.2.1"]}, format="json")
    alice.delete(f"/v2/zones/{zone_id}/recordsets/{ids[1]}")
    user = RecordSet.objects.filter(zone_id=zone_id, managed=False)
    zone = Zone.objects.get(id=zone_id)
    assert (zone.recordset_count, zone.record_count) == (user.count(), sum(len(r.records) for r in user)) == (3, 7)


def test_quotas_in_the_django_admin_are_validated(admin_client, db):
    url = "/admin/zones/quota/add/"
    bad = admin_client.post(url, {"project_id": "p1", "resource": "zones", "hard_limit": -5})
    assert bad.status_code == 200 and not Quota.objects.exists()
    ok = admin_client.post(url, {"project_id": "p1", "resource": "zones", "hard_limit": 4})
    assert ok.status_code == 302 and quotas.quotas_of("p1")["zones"] == 4


# --- many clients at once, on real PostgreSQL -------------------------------------------------------


@pytest.fixture
def live(live_server, monkeypatch):
    monkeypatch.setattr(writes, "_enqueue", lambda zone: None)  # no worker in these tests
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    return live_server.url


def _post_all(url, token, bodies, workers=16):
    def post(body):
        return requests.post(url, json=body, headers={"X-Auth-Token": token}, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(post, bodies))


@pytest.mark.django_db(transaction=True)
def test_concurrent_zone_creations_never_overshoot(live):
    token = accounts.issue_token(accounts.api_user("alice", "p1"))
    quotas.set_quotas("p1", {"zones": 5})
    codes = _post_all(f"{live}/v2/zones", token,
                      [{"name": f"z{i}.example.", "email": "a@example.com"} for i in range(24)])
    assert sorted(set(codes)) == [202, 413] and codes.count(202) == 5, codes
    assert Zone.objects.filter(project_id="p1").count() == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_recordset_creations_never_overshoot(live):
    token = accounts.issue_token(accounts.api_user("alice", "p1"))
    quotas.set_quotas("p1", {"zone_recordsets": 6, "zone_records": 9})
    zone = writes.create_zone(project_id="p1", name="example.com.", email="a@example.com")
    codes = _post_all(f"{live}/v2/zones/{zone.id}/recordsets", token,
                      [{"name": f"h{i}", "type": "A", "records": ["192.0.2.1", "192.0.2.2"]} for i in range(24)])
    assert codes.count(202) == 4 and set(codes) == {202, 413}, codes  # 4 × 2 records: a fifth would make 10
    zone.refresh_from_db()
    assert (zone.recordset_count, zone.record_count) == (4, 8) == (
        RecordSet.objects.filter(zone=zone, managed=False).count(),
        sum(len(r) for r in RecordSet.objects.filter(zone=zone, managed=False).values_list("records", flat=True)))


@pytest.mark.django_db(transaction=True)
def test_designateclient_quotas_and_limits(live):
    from designateclient import exceptions
    from designateclient.v2 import client as designate
    from keystoneauth1 import session
    from keystoneauth1.token_endpoint import Token

    def dns(username, project, role="member"):
        key = accounts.issue_token(accounts.api_user(username, project, role))
        return designate.Client(session=session.Session(auth=Token(live + "/v2", key)), timeout=10)

    admin, tenant = dns("root", "ops", "admin"), dns("alice", "p1")
    assert admin.quotas.update("p1", {"zones": 1})["zones"] == 1
    assert tenant.quotas.list()["zones"] == 1 and tenant.quotas.list("p1")["zones"] == 1
    assert tenant.limits.get()["max_zones"] == 1
    tenant.zones.create("one.example.", email="a@example.com")
    with pytest.raises(exceptions.OverQuota):
        tenant.zones.create("two.example.", email="a@example.com")
    with pytest.raises(exceptions.Forbidden):
        tenant.quotas.update("p1", {"zones": 100})
    admin.quotas.reset("p1")
    assert tenant.quotas.list()["zones"] == DEFAULTS["zones"]
    tenant.zones.create("two.example.", email="a@example.com")


@pytest.mark.parametrize("project", ["%00", "x" * 256, "a%0Ab"])
def test_a_project_id_that_cannot_be_one_is_400_on_every_method(admin, project):
    for method, body in (("get", None), ("patch", {"zones": 5}), ("delete", None)):
        response = getattr(admin, method)(f"/v2/quotas/{project}", body, format="json")
        assert response.status_code == 400 and "project_id" in response.json()["errors"], (method, response.content)
    assert not Quota.objects.exists()
