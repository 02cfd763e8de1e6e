"""The Designate v2 REST API: shapes, status codes, filters, pagination, errors, isolation, pools.

Plain `django_db` (no transaction=True): on_commit never runs, so no Celery work is sent.
"""
import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from zones import accounts
from zones.api.errors import designate_exception_handler
from zones.models import Pool, RecordSet, Zone
from zones.services import pipeline, pools, writes

pytestmark = pytest.mark.django_db

ZONE_KEYS = {"id", "pool_id", "project_id", "name", "email", "ttl", "serial", "status", "action", "description",
             "masters", "type", "transferred_at", "version", "created_at", "updated_at", "attributes", "links",
             "shard", "reason"}
RECORDSET_KEYS = {"id", "zone_id", "zone_name", "project_id", "name", "type", "ttl", "records", "description",
                  "status", "action", "version", "created_at", "updated_at", "links"}
POOL_KEYS = {"id", "name", "description", "attributes", "ns_records", "project_id", "created_at", "updated_at",
             "links"}
POOL_ADMIN_KEYS = POOL_KEYS | {"threshold_percentage", "targets", "nameservers", "also_notifies", "notify_source",
                               "tsig_key", "catalog_zone", "allowed_projects"}
SECRET = "c2VjcmV0LXJuZGMta2V5LXZhbHVl"  # base64, as bind9's rndc_key_secret must be


def make_user(username, project=None, role="member") -> str:
    """A token for a new user in project (none: a user without a project)."""
    user = accounts.api_user(username, project, role) if project else get_user_model().objects.create(username=username)
    return accounts.issue_token(user)


def client_for(token) -> APIClient:
    return APIClient(HTTP_X_AUTH_TOKEN=token)


@pytest.fixture
def pool():
    return pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])


@pytest.fixture
def alice(pool):
    return client_for(make_user("alice", "p1"))


@pytest.fixture
def bob(pool):
    return client_for(make_user("bob", "p2"))


@pytest.fixture
def admin(pool):
    return client_for(make_user("root", "ops", role="admin"))


def create_zone(client, name="example.com.", **extra):
    headers = {k: extra.pop(k) for k in list(extra) if k.startswith("HTTP_")}
    response = client.post("/v2/zones", {"name": name, "email": f"hostmaster@{name.rstrip('.')}", **extra},
                           format="json", **headers)
    assert response.status_code == 202, response.json()
    return response.json()


def create_recordset(client, zone_id, name="www", type="A", records=("192.0.2.1",), **extra):
    response = client.post(f"/v2/zones/{zone_id}/recordsets",
                           {"name": name, "type": type, "records": list(records), **extra}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()


def assert_invalid(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == 400 and body["type"] == "invalid_object"
    assert field in body["errors"], body
    assert field in body["message"]
    return body


def serial_of(zone_id) -> int:
    return Zone.objects.get(id=zone_id).serial


# --- zones ---------------------------------------------------------------------------------------


def test_create_zone_answers_202_with_the_designate_shape(alice, pool):
    response = alice.post("/v2/zones", {"name": "Example.COM.", "email": "hostmaster@example.com", "ttl": 600,
                                        "description": "mine", "type": "PRIMARY"}, format="json")
    assert response.status_code == 202
    zone = response.json()
    assert set(zone) == ZONE_KEYS
    assert zone["name"] == "example.com."
    assert (zone["status"], zone["action"], zone["type"]) == ("PENDING", "CREATE", "PRIMARY")
    assert (zone["project_id"], zone["pool_id"], zone["ttl"], zone["description"]) == ("p1", str(pool.id), 600, "mine")
    assert zone["masters"] == [] and zone["attributes"] == {} and zone["transferred_at"] is None
    assert zone["links"]["self"] == f"http://testserver/v2/zones/{zone['id']}"
    assert 0 <= zone["shard"] <= 4095 and zone["reason"] == ""
    assert zone["serial"] == serial_of(zone["id"])


def test_create_zone_defaults_ttl_and_works_with_a_trailing_slash(alice):
    response = alice.post("/v2/zones/", {"name": "example.com.", "email": "a@example.com"}, format="json")
    assert response.status_code == 202
    assert response.json()["ttl"] == 3600


def test_secondary_zones_are_refused(alice):
    response = alice.post("/v2/zones", {"name": "example.com.", "email": "a@example.com", "type": "SECONDARY"},
                          format="json")
    assert_invalid(response, "type")
    assert Zone.objects.count() == 0


def test_unknown_fields_are_refused(alice):
    response = alice.post("/v2/zones", {"name": "example.com.", "email": "a@example.com", "colour": "red"},
                          format="json")
    assert_invalid(response, "colour")


def test_get_zone_and_its_trailing_slash(alice):
    zone = create_zone(alice)
    for url in (f"/v2/zones/{zone['id']}", f"/v2/zones/{zone['id']}/"):
        response = alice.get(url)
        assert response.status_code == 200
        assert response.json()["id"] == zone["id"]


def test_unknown_zone_is_a_designate_404(alice):
    for zone_id in ("0b1f6d3e-64b6-4a55-9a6b-2a4c3c2d6f00", "not-a-uuid"):
        response = alice.get(f"/v2/zones/{zone_id}")
        assert response.status_code == 404
        body = response.json()
        assert (body["code"], body["type"]) == (404, "zone_not_found")
        assert zone_id not in body["message"] and body["message"] == "Could not find zone."


def test_patch_zone_bumps_the_serial_and_answers_202(alice):
    zone = create_zone(alice)
    response = alice.patch(f"/v2/zones/{zone['id']}", {"email": "other@example.com", "ttl": 300,
                                                       "description": "changed"}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert (body["email"], body["ttl"], body["description"]) == ("other@example.com", 300, "changed")
    assert body["serial"] > zone["serial"] and body["version"] == zone["version"] + 1
    assert body["status"] == "PENDING"


def test_no_op_patch_keeps_the_serial(alice):
    zone = create_zone(alice, ttl=600)
    response = alice.patch(f"/v2/zones/{zone['id']}", {"ttl": 600, "email": zone["email"],
                                                       "description": "words only"}, format="json")
    assert response.status_code == 202
    assert response.json()["serial"] == zone["serial"] == serial_of(zone["id"])
    assert response.json()["description"] == "words only"


@pytest.mark.parametrize("body, field", [
    ({"name": "other.com."}, "name"),
    ({"serial": 5}, "serial"),
    ({"pool_id": "0b1f6d3e-64b6-4a55-9a6b-2a4c3c2d6f00"}, "pool_id"),
    ({"nonsense": 1}, "nonsense"),
    ({"ttl": 0}, "ttl"),
    ({"ttl": "soon"}, "ttl"),
    ({"email": "nobody"}, "email"),
])
def test_bad_patch_is_400_and_changes_nothing(alice, body, field):
    zone = create_zone(alice)
    assert_invalid(alice.patch(f"/v2/zones/{zone['id']}", body, format="json"), field)
    after = alice.get(f"/v2/zones/{zone['id']}").json()
    assert (after["serial"], after["name"], after["ttl"], after["email"]) == (
        zone["serial"], zone["name"], zone["ttl"], zone["email"])


def test_delete_zone_answers_202_with_action_delete(alice):
    zone = create_zone(alice)
    response = alice.delete(f"/v2/zones/{zone['id']}")
    assert response.status_code == 202
    body = response.json()
    assert (body["id"], body["action"], body["status"]) == (zone["id"], "DELETE", "PENDING")
    assert body["serial"] > zone["serial"]
    # Until the pool confirms, the zone is still there, being deleted; it cannot be changed.
    assert alice.get(f"/v2/zones/{zone['id']}").json()["action"] == "DELETE"
    assert_invalid(alice.patch(f"/v2/zones/{zone['id']}", {"ttl": 60}, format="json"), "zone")
    assert_invalid(alice.post(f"/v2/zones/{zone['id']}/recordsets",
                              {"name": "www", "type": "A", "records": ["192.0.2.1"]}, format="json"), "zone")


def test_delete_of_a_deleted_zone_is_404(alice):
    zone = create_zone(alice)
    pipeline.finish_zone_action(zone["id"], "DELETE", alice.delete(f"/v2/zones/{zone['id']}").json()["serial"], True)
    assert alice.delete(f"/v2/zones/{zone['id']}").status_code == 404
    assert alice.get("/v2/zones").json()["zones"] == []


@pytest.mark.parametrize("name", [
    "example.com",  # no trailing dot
    "a" * 64 + ".com.",  # label longer than 63
    "exa mple.com.",
    "ex!ample.com.",
    "under_score-.com.",
    "com.",  # a TLD
    "",
])
def test_bad_zone_names_are_400_naming_the_field(alice, name):
    response = alice.post("/v2/zones", {"name": name, "email": "a@example.com"}, format="json")
    assert_invalid(response, "name")
    assert Zone.objects.count() == 0 and RecordSet.objects.count() == 0


@pytest.mark.parametrize("body, field", [
    ({"email": "not-an-email"}, "email"),
    ({"email": "a@b"}, "email"),
    ({"email": "a@@example.com"}, "email"),
    ({}, "email"),  # missing
    ({"ttl": 0}, "ttl"),
    ({"ttl": -5}, "ttl"),
    ({"ttl": 2**31}, "ttl"),
    ({"ttl": "an hour"}, "ttl"),
    ({"ttl": 1.5}, "ttl"),
    ({"description": "x" * 161}, "description"),
])
def test_bad_zone_fields_are_400_and_write_nothing(alice, body, field):
    data = {"name": "example.com.", **({"email": "a@example.com", **body} if body else {})}
    assert_invalid(alice.post("/v2/zones", data, format="json"), field)
    assert Zone.objects.count() == 0 and RecordSet.objects.count() == 0


def assert_duplicate(response, thing):
    assert response.status_code == 409, response.content
    body = response.json()
    assert (body["code"], body["type"]) == (409, f"duplicate_{thing}") and "name" in body["errors"], body


def test_duplicate_zone_is_409(alice, bob):
    create_zone(alice)
    assert_duplicate(alice.post("/v2/zones", {"name": "EXAMPLE.com.", "email": "a@example.com"}, format="json"), "zone")
    assert_duplicate(bob.post("/v2/zones", {"name": "example.com.", "email": "a@example.com"}, format="json"), "zone")
    assert Zone.objects.count() == 1


def test_zone_inside_or_around_another_projects_zone_is_400(alice, bob):
    create_zone(alice, "example.com.")
    before = (Zone.objects.count(), RecordSet.objects.count())
    assert_invalid(bob.post("/v2/zones", {"name": "sub.example.com.", "email": "a@example.com"}, format="json"),
                   "name")
    create_zone(bob, "deep.other.org.")
    assert_invalid(alice.post("/v2/zones", {"name": "other.org.", "email": "a@example.com"}, format="json"), "name")
    assert (Zone.objects.count(), RecordSet.objects.count()) == (before[0] + 1, before[1] + 2)
    # inside one's own zone is fine
    create_zone(alice, "sub.example.com.")


def test_wrong_method_keeps_its_status_in_the_designate_shape(alice):
    zone = create_zone(alice)
    response = alice.put(f"/v2/zones/{zone['id']}", {"ttl": 60}, format="json")
    assert response.status_code == 405
    assert (response.json()["code"], response.json()["type"]) == (405, "method_not_allowed")


def test_unhandled_exceptions_are_not_swallowed():
    assert designate_exception_handler(RuntimeError("boom"), {}) is None


@pytest.mark.parametrize("body", ["{not json", "[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000,
                                  '{"name": "\\x"}', "\xff\xfe"])
def test_malformed_json_is_400(alice, body):
    """Nested too deeply for Python's decoder (a RecursionError, not a ValueError) is a 400 too."""
    before = Zone.objects.count()
    response = alice.post("/v2/zones", body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert (response.json()["code"], response.json()["type"]) == (400, "invalid_json")
    assert Zone.objects.count() == before


# --- lists: filters and pagination ------------------------------------------------------------------


def test_list_zones_shape(alice):
    zone = create_zone(alice)
    response = alice.get("/v2/zones")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"zones", "links", "metadata"}
    assert [z["id"] for z in body["zones"]] == [zone["id"]]
    assert set(body["zones"][0]) == ZONE_KEYS
    assert body["links"] == {"self": "http://testserver/v2/zones"}
    assert body["metadata"] == {"total_count": 1}


def test_zone_filters(alice):
    a = create_zone(alice, "alpha.com.", ttl=300, description="first")
    b = create_zone(alice, "beta.com.", ttl=600)
    c = create_zone(alice, "alpha.org.", ttl=600)
    Zone.objects.filter(id=b["id"]).update(status="ACTIVE", action="NONE")

    def names(query):
        response = alice.get("/v2/zones", query)
        assert response.status_code == 200, response.json()
        return sorted(z["name"] for z in response.json()["zones"])

    assert names({"name": "ALPHA.com."}) == ["alpha.com."]
    assert names({"name": "alpha"}) == []
    assert names({"name": "alpha.*"}) == ["alpha.com.", "alpha.org."]
    assert names({"name": "*.com."}) == ["alpha.com.", "beta.com."]
    assert names({"status": "ACTIVE"}) == ["beta.com."]
    assert names({"status": "pending"}) == ["alpha.com.", "alpha.org."]
    assert names({"type": "PRIMARY"}) == ["alpha.com.", "alpha.org.", "beta.com."]
    assert names({"type": "SECONDARY"}) == []
    assert names({"ttl": 600}) == ["alpha.org.", "beta.com."]
    assert names({"email": c["email"]}) == ["alpha.org."]
    assert names({"description": "first"}) == [a["name"]]
    assert alice.get("/v2/zones", {"name": "*.com.", "ttl": 600}).json()["metadata"]["total_count"] == 1
    assert alice.get("/v2/zones", {"ttl": "abc"}).status_code == 400


def test_pagination_with_limit_marker_and_next_links(alice):
    ids = [create_zone(alice, f"z{i}.example.")["id"] for i in range(5)]
    seen, url, pages = [], "/v2/zones?limit=2", 0
    while url:
        body = alice.get(url).json()
        pages += 1
        assert body["metadata"]["total_count"] == 5
        assert len(body["zones"]) <= 2
        seen += [z["id"] for z in body["zones"]]
        url = body["links"].get("next")
        if url:
            assert "limit=2" in url and f"marker={body['zones'][-1]['id']}" in url
    assert seen == ids and pages == 3


def test_pagination_keeps_filters_and_defaults(alice):
    ids = [create_zone(alice, f"z{i}.example.", ttl=60 if i % 2 else 120)["id"] for i in range(5)]
    body = alice.get("/v2/zones", {"ttl": 60, "limit": 1}).json()
    assert [z["id"] for z in body["zones"]] == [ids[1]]
    assert body["metadata"]["total_count"] == 2 and "ttl=60" in body["links"]["next"]
    body = alice.get(body["links"]["next"]).json()
    assert [z["id"] for z in body["zones"]] == [ids[3]] and "next" not in body["links"]
    body = alice.get("/v2/zones", {"marker": ids[2]}).json()
    assert [z["id"] for z in body["zones"]] == ids[3:] and "next" not in body["links"]
    assert len(alice.get("/v2/zones", {"limit": 5000}).json()["zones"]) == 5  # clamped to 1000


@pytest.mark.parametrize("query, field", [
    ({"marker": "0b1f6d3e-64b6-4a55-9a6b-2a4c3c2d6f00"}, "marker"),
    ({"marker": "bogus"}, "marker"),
    ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"),
])
def test_bad_pagination_is_400(alice, query, field):
    create_zone(alice)
    assert_invalid(alice.get("/v2/zones", query), field)


def test_another_projects_zone_is_not_a_marker(alice, bob):
    theirs = create_zone(bob, "theirs.com.")
    create_zone(alice)
    assert_invalid(alice.get("/v2/zones", {"marker": theirs["id"]}), "marker")


# --- auth and isolation -----------------------------------------------------------------------


def test_no_or_bad_token_is_401(pool):
    for client in (APIClient(), client_for("not-a-token")):
        response = client.get("/v2/zones")
        assert response.status_code == 401
        assert response.json()["code"] == 401


def test_authorization_token_header_works_too(pool):
    key = make_user("carol", "p3")
    client = APIClient(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/v2/zones").status_code == 200


def test_user_without_project_is_403(pool):
    response = client_for(make_user("drifter")).get("/v2/zones")
    assert response.status_code == 403
    assert response.json()["type"] == "forbidden"


def test_projects_do_not_see_each_other(alice, bob):
    zone = create_zone(alice)
    rs = create_recordset(alice, zone["id"])
    assert bob.get("/v2/zones").json()["zones"] == []
    for header in ({"HTTP_X_AUTH_SUDO_PROJECT_ID": "p1"}, {"HTTP_X_AUTH_ALL_PROJECTS": "true"}):
        response = bob.get("/v2/zones", **header)  # only admins may look past their project
        assert response.status_code == 403 and response.json()["type"] == "forbidden", header
    assert bob.get("/v2/zones", HTTP_X_AUTH_ALL_PROJECTS="false").json()["zones"] == []
    assert bob.get("/v2/recordsets").json()["recordsets"] == []
    for url in (f"/v2/zones/{zone['id']}", f"/v2/zones/{zone['id']}/recordsets",
                f"/v2/zones/{zone['id']}/recordsets/{rs['id']}", f"/v2/zones/{zone['id']}/nameservers",
                f"/v2/zones/{zone['id']}/propagation"):
        response = bob.get(url)
        assert response.status_code == 404 and response.json()["type"] == "zone_not_found", url
    assert bob.patch(f"/v2/zones/{zone['id']}", {"ttl": 60}, format="json").status_code == 404
    assert bob.delete(f"/v2/zones/{zone['id']}").status_code == 404
    assert bob.put(f"/v2/zones/{zone['id']}/recordsets/{rs['id']}", {"ttl": 60}, format="json").status_code == 404
    assert bob.delete(f"/v2/zones/{zone['id']}/recordsets/{rs['id']}").status_code == 404
    assert Zone.objects.get(id=zone["id"]).action == "CREATE"


def test_admin_sees_its_own_project_unless_it_asks_for_all(alice, bob, admin):
    a, b = create_zone(alice, "a.com."), create_zone(bob, "b.com.")
    mine = create_zone(admin, "mine.com.")
    assert mine["project_id"] == "ops"
    assert [z["id"] for z in admin.get("/v2/zones").json()["zones"]] == [mine["id"]]
    assert admin.get(f"/v2/zones/{a['id']}").status_code == 404
    every = admin.get("/v2/zones", HTTP_X_AUTH_ALL_PROJECTS="True").json()["zones"]  # designateclient's spelling
    assert sorted(z["id"] for z in every) == sorted([a["id"], b["id"], mine["id"]])
    assert admin.get(f"/v2/zones/{a['id']}", HTTP_X_AUTH_ALL_PROJECTS="true").status_code == 200
    sudo = admin.get("/v2/zones", HTTP_X_AUTH_SUDO_PROJECT_ID="p2").json()["zones"]
    assert [z["id"] for z in sudo] == [b["id"]]
    assert create_zone(admin, "for-p2.com.", HTTP_X_AUTH_SUDO_PROJECT_ID="p2")["project_id"] == "p2"
    assert admin.get("/v2/zones", HTTP_X_AUTH_ALL_PROJECTS="maybe").status_code == 403


def test_a_sudo_project_that_cannot_be_one_is_400_and_creates_nothing(admin):
    for project in ("x" * 256, "a\tb"):
        response = admin.post("/v2/zones", {"name": "a.example.", "email": "a@example.com"}, format="json",
                              HTTP_X_AUTH_SUDO_PROJECT_ID=project)
        assert response.status_code == 400 and "X-Auth-Sudo-Project-ID" in response.json()["errors"]
    assert not Zone.objects.exists()


def test_staff_without_the_admin_role_is_a_member(pool):
    user = accounts.api_user("staffer", "p9")
    user.is_staff = True
    user.save()
    staffer = client_for(accounts.issue_token(user))
    assert staffer.get("/v2/zones", HTTP_X_AUTH_ALL_PROJECTS="true").status_code == 403
    assert staffer.post("/v2/pools", {"name": "mine"}, format="json").status_code == 403


def test_readers_read_but_never_write(alice, pool):
    zone = create_zone(alice)
    reader = client_for(make_user("auditor", "p1", role="reader"))
    assert [z["id"] for z in reader.get("/v2/zones").json()["zones"]] == [zone["id"]]
    before = (Zone.objects.count(), RecordSet.objects.count(), Zone.objects.get(id=zone["id"]).serial)
    for response in (reader.post("/v2/zones", {"name": "r.com.", "email": "a@r.com"}, format="json"),
                     reader.patch(f"/v2/zones/{zone['id']}", {"ttl": 60}, format="json"),
                     reader.post(f"/v2/zones/{zone['id']}/recordsets", {"name": "w", "type": "A",
                                                                         "records": ["192.0.2.1"]}, format="json"),
                     reader.delete(f"/v2/zones/{zone['id']}")):
        assert response.status_code == 403 and response.json()["type"] == "forbidden"
    assert (Zone.objects.count(), RecordSet.objects.count(), Zone.objects.get(id=zone["id"]).serial) == before


# --- recordsets ---------------------------------------------------------------------------------


def test_recordset_create_get_list_put_delete(alice):
    zone = create_zone(alice)
    rs = create_recordset(alice, zone["id"], name="www", records=["192.0.2.1", "192.0.2.2"], ttl=300,
                          description="web")
    assert set(rs) == RECORDSET_KEYS
    assert (rs["name"], rs["type"], rs["records"], rs["ttl"], rs["description"]) == (
        "www.example.com.", "A", ["192.0.2.1", "192.0.2.2"], 300, "web")
    assert (rs["zone_id"], rs["zone_name"], rs["project_id"]) == (zone["id"], "example.com.", "p1")
    assert (rs["status"], rs["action"]) == ("PENDING", "CREATE")
    url = f"/v2/zones/{zone['id']}/recordsets/{rs['id']}"
    assert rs["links"]["self"] == "http://testserver" + url
    assert serial_of(zone["id"]) > zone["serial"]

    assert alice.get(url).json() == rs
    listed = alice.get(f"/v2/zones/{zone['id']}/recordsets").json()
    assert set(listed) == {"recordsets", "links", "metadata"}
    assert sorted(r["type"] for r in listed["recordsets"]) == ["A", "NS", "SOA"]
    assert listed["metadata"]["total_count"] == 3

    serial = serial_of(zone["id"])
    response = alice.put(url, {"records": ["192.0.2.9"], "ttl": None}, format="json")
    assert response.status_code == 202
    assert (response.json()["records"], response.json()["ttl"], response.json()["action"]) == (
        ["192.0.2.9"], None, "UPDATE")
    assert serial_of(zone["id"]) > serial

    serial = serial_of(zone["id"])
    response = alice.delete(url)
    assert response.status_code == 202
    assert (response.json()["id"], response.json()["action"], response.json()["status"]) == (
        rs["id"], "DELETE", "PENDING")
    assert serial_of(zone["id"]) > serial
    assert alice.get(url).status_code == 404
    assert alice.get(url).json()["type"] == "recordset_not_found"


def test_no_op_recordset_put_keeps_the_serial(alice):
    zone = create_zone(alice)
    rs = create_recordset(alice, zone["id"], ttl=300)
    serial = serial_of(zone["id"])
    response = alice.put(f"/v2/zones/{zone['id']}/recordsets/{rs['id']}",
                         {"records": ["192.0.2.1"], "ttl": 300, "description": "words"}, format="json")
    assert response.status_code == 202
    assert serial_of(zone["id"]) == serial and response.json()["version"] == rs["version"]


def test_recordset_names_may_be_relative_or_absolute_and_at_the_apex(alice):
    zone = create_zone(alice)
    assert create_recordset(alice, zone["id"], name="mail.example.com.")["name"] == "mail.example.com."
    assert create_recordset(alice, zone["id"], name="example.com.", type="MX",
                            records=["10 mail"])["records"] == ["10 mail.example.com."]
    assert create_recordset(alice, zone["id"], name="_sip._tcp", type="SRV",
                            records=["10 5 5060 sip.example.com."])["name"] == "_sip._tcp.example.com."


def test_recordset_filters_and_pagination(alice):
    zone = create_zone(alice)
    base = f"/v2/zones/{zone['id']}/recordsets"
    create_recordset(alice, zone["id"], name="www", records=["192.0.2.1"])
    create_recordset(alice, zone["id"], name="www", type="AAAA", records=["2001:db8::1"])
    create_recordset(alice, zone["id"], name="api", records=["192.0.2.2", "192.0.2.3"], ttl=60)

    def found(query):
        response = alice.get(base, query)
        assert response.status_code == 200, response.json()
        return sorted((r["name"], r["type"]) for r in response.json()["recordsets"])

    assert found({"name": "www.example.com."}) == [("www.example.com.", "A"), ("www.example.com.", "AAAA")]
    assert found({"type": "aaaa"}) == [("www.example.com.", "AAAA")]
    assert found({"type": "A", "name": "*.example.com."}) == [("api.example.com.", "A"), ("www.example.com.", "A")]
    assert found({"ttl": 60}) == [("api.example.com.", "A")]
    assert found({"data": "192.0.2.3"}) == [("api.example.com.", "A")]
    assert found({"data": "192.0.2.*"}) == [("api.example.com.", "A"), ("www.example.com.", "A")]
    assert found({"status": "PENDING"})[0] == ("api.example.com.", "A")

    body = alice.get(base, {"limit": 2}).json()
    assert len(body["recordsets"]) == 2 and body["metadata"]["total_count"] == 5 and "next" in body["links"]
    rest = alice.get(body["links"]["next"]).json()
    assert len(rest["recordsets"]) == 2 and "next" in rest["links"]
    last = alice.get(rest["links"]["next"]).json()
    assert len(last["recordsets"]) == 1 and "next" not in last["links"]
    ids = [r["id"] for page in (body, rest, last) for r in page["recordsets"]]
    assert len(set(ids)) == 5


def test_all_recordsets_lists_across_the_callers_zones(alice):
    a, b = create_zone(alice, "a.com."), create_zone(alice, "b.com.")
    create_recordset(alice, a["id"])
    create_recordset(alice, b["id"])
    body = alice.get("/v2/recordsets", {"type": "A"}).json()
    assert sorted(r["name"] for r in body["recordsets"]) == ["www.a.com.", "www.b.com."]
    body = alice.get("/v2/recordsets", {"zone_id": a["id"], "type": "A"}).json()
    assert [r["name"] for r in body["recordsets"]] == ["www.a.com."]


@pytest.mark.parametrize("rtype, record", [
    ("A", "1.2.3"),
    ("A", "999.1.1.1"),
    ("AAAA", "192.0.2.1"),
    ("AAAA", "2001:db8::zz"),
    ("MX", "mail.example.com."),
    ("SRV", "10 5 mail"),
    ("SRV", "10 5 70000 sip.example.com."),
    ("CAA", "0 issue"),
    ("CAA", '0 is!sue "ca.example.net"'),
    ("SSHFP", "1 1 zz"),
    ("SSHFP", "1 1"),
])
def test_invalid_rdata_is_400_naming_records(alice, rtype, record):
    zone = create_zone(alice)
    before = (serial_of(zone["id"]), RecordSet.objects.count())
    response = alice.post(f"/v2/zones/{zone['id']}/recordsets",
                          {"name": "x", "type": rtype, "records": [record]}, format="json")
    body = assert_invalid(response, "records")
    assert record in body["message"]
    assert (serial_of(zone["id"]), RecordSet.objects.count()) == before


@pytest.mark.parametrize("body, field", [
    ({"name": "www.example.org.", "type": "A", "records": ["192.0.2.1"]}, "name"),
    ({"name": "www.", "type": "A", "records": ["192.0.2.1"]}, "name"),
    ({"name": "bad label", "type": "A", "records": ["192.0.2.1"]}, "name"),
    ({"name": "www", "type": "BOGUS", "records": ["192.0.2.1"]}, "type"),
    ({"name": "www", "type": "A", "records": []}, "records"),
    ({"name": "www", "type": "A", "records": "192.0.2.1"}, "records"),
    ({"name": "www", "type": "A", "records": ["192.0.2.1"], "ttl": 0}, "ttl"),
    ({"name": "www", "type": "A", "records": ["192.0.2.1"], "status": "ACTIVE"}, "status"),
    ({"type": "A", "records": ["192.0.2.1"]}, "name"),
])
def test_bad_recordsets_are_400_and_write_nothing(alice, body, field):
    zone = create_zone(alice)
    before = (serial_of(zone["id"]), RecordSet.objects.count())
    assert_invalid(alice.post(f"/v2/zones/{zone['id']}/recordsets", body, format="json"), field)
    assert (serial_of(zone["id"]), RecordSet.objects.count()) == before


def test_cname_must_be_alone_at_its_name(alice):
    zone = create_zone(alice)
    url = f"/v2/zones/{zone['id']}/recordsets"
    create_recordset(alice, zone["id"], name="www")
    assert_invalid(alice.post(url, {"name": "www", "type": "CNAME", "records": ["other.example.net."]},
                              format="json"), "type")
    create_recordset(alice, zone["id"], name="alias", type="CNAME", records=["www"])
    assert_invalid(alice.post(url, {"name": "alias", "type": "TXT", "records": ['"hi"']}, format="json"), "type")
    assert_invalid(alice.post(url, {"name": "example.com.", "type": "CNAME", "records": ["x.example.net."]},
                              format="json"), "type")
    assert_invalid(alice.post(url, {"name": "two", "type": "CNAME", "records": ["a.example.net.", "b.example.net."]},
                              format="json"), "records")
    assert RecordSet.objects.filter(zone_id=zone["id"]).count() == 4


def test_duplicate_recordset_is_409(alice):
    zone = create_zone(alice)
    create_recordset(alice, zone["id"])
    count = RecordSet.objects.count()
    assert_duplicate(alice.post(f"/v2/zones/{zone['id']}/recordsets",
                                {"name": "www", "type": "A", "records": ["192.0.2.7"]}, format="json"), "recordset")
    assert RecordSet.objects.count() == count


def test_soa_and_apex_ns_are_listed_but_immutable(alice):
    zone = create_zone(alice)
    base = f"/v2/zones/{zone['id']}/recordsets"
    managed = {r["type"]: r for r in alice.get(base).json()["recordsets"]}
    assert managed["NS"]["records"] == ["ns1.example.net."]
    assert managed["SOA"]["records"][0].startswith("ns1.example.net. hostmaster.example.com. ")
    before = serial_of(zone["id"])
    for rs in managed.values():
        assert_invalid(alice.put(f"{base}/{rs['id']}", {"records": ["ns9.example.net."]}, format="json"), "type")
        assert_invalid(alice.delete(f"{base}/{rs['id']}"), "type")
    assert_invalid(alice.post(base, {"name": "example.com.", "type": "SOA", "records": [
        "ns1.example.net. a.example.com. 1 2 3 4 5"]}, format="json"), "type")
    assert_invalid(alice.post(base, {"name": "example.com.", "type": "NS", "records": ["ns9.example.net."]},
                              format="json"), "type")
    assert serial_of(zone["id"]) == before
    # NS below the apex (a delegation) is the user's
    create_recordset(alice, zone["id"], name="sub", type="NS", records=["ns.elsewhere.net."])


@pytest.mark.parametrize("body, field", [
    ({"name": "other"}, "name"),
    ({"type": "AAAA"}, "type"),
    ({"records": ["nope"]}, "records"),
    ({"ttl": -1}, "ttl"),
])
def test_bad_recordset_put_is_400_and_changes_nothing(alice, body, field):
    zone = create_zone(alice)
    rs = create_recordset(alice, zone["id"])
    serial = serial_of(zone["id"])
    assert_invalid(alice.put(f"/v2/zones/{zone['id']}/recordsets/{rs['id']}", body, format="json"), field)
    assert serial_of(zone["id"]) == serial
    assert alice.get(f"/v2/zones/{zone['id']}/recordsets/{rs['id']}").json() == rs


def test_recordset_of_another_zone_is_404(alice):
    a, b = create_zone(alice, "a.com."), create_zone(alice, "b.com.")
    rs = create_recordset(alice, a["id"])
    assert alice.get(f"/v2/zones/{b['id']}/recordsets/{rs['id']}").status_code == 404
    assert alice.delete(f"/v2/zones/{b['id']}/recordsets/{rs['id']}").status_code == 404


# --- nameservers and propagation -----------------------------------------------------------------


def test_nameservers(alice):
    zone = create_zone(alice)
    response = alice.get(f"/v2/zones/{zone['id']}/nameservers")
    assert response.status_code == 200
    assert response.json() == {"nameservers": [{"hostname": "ns1.example.net.", "priority": 1}]}


def test_propagation_shows_each_target_and_nameserver(admin):
    pool = pools.save_pool(
        None, name="bind", ns_records=[{"hostname": "ns1.example.net."}],
        targets=[{"name": "b1", "type": "bind9", "options": {"rndc_key_secret": SECRET}, "masters": ["127.0.0.1:5354"]}],
        nameservers=[{"host": "127.0.0.1", "port": 5300}])
    zone = writes.create_zone(project_id="ops", name="example.com.", email="a@example.com", pool_id=pool.id,
                                admin=True)
    ns = pool.nameservers.get()
    pipeline.record_nameserver_result(zone.id, ns.id, zone.serial, zone.serial - 1, False, "behind")
    body = admin.get(f"/v2/zones/{zone.id}/propagation").json()
    assert (body["zone_id"], body["serial"], body["status"]) == (str(zone.id), zone.serial, "PENDING")
    assert [t["name"] for t in body["targets"]] == ["b1"] and body["targets"][0]["ok"] is None
    assert body["nameservers"][0]["serial"] == zone.serial - 1 and body["nameservers"][0]["in_sync"] is False
    assert body["nameservers"][0]["message"] == "behind"


def test_tenants_see_their_nameservers_by_name_and_no_server_details(admin, alice):
    pool = pools.save_pool(
        None, name="shared", ns_records=[{"hostname": "ns1.example.net."}], allowed_projects=["p1"],
        targets=[{"name": "bind-east-7", "type": "bind9", "masters": ["127.0.0.1:5354"],
                  "options": {"rndc_host": "198.51.100.7", "rndc_port": 9531, "rndc_key_secret": SECRET}}],
        nameservers=[{"host": "198.51.100.8", "port": 5300, "name": "ns1.example.net."},
                     {"host": "198.51.100.9", "port": 5300}])
    zone = create_zone(alice, attributes={"pool_id": str(pool.id)})
    assert zone["pool_id"] == str(pool.id)
    target, (ns1, ns2) = pool.targets.get(), pool.nameservers.all()
    pipeline.record_target_result(zone["id"], target.id, "CREATE", zone["serial"], False,
                                  "rndc: connect failed: 198.51.100.7#9531: connection refused")
    pipeline.record_nameserver_result(zone["id"], ns1.id, zone["serial"], None, False, "timed out")
    pipeline.record_nameserver_result(zone["id"], ns2.id, zone["serial"], zone["serial"], True, "")
    operator_reason = "CREATE succeeded on 0 of 1 targets, 100% needed. bind-east-7: rndc: connect failed: 198.51.100.7#9531"
    pipeline.finish_zone_action(zone["id"], "CREATE", zone["serial"], False, operator_reason,
                                "CREATE succeeded on 0 of 1 servers, 100% needed.")
    seen = alice.get(f"/v2/zones/{zone['id']}/propagation").json()
    text = str(seen) + str(alice.get(f"/v2/zones/{zone['id']}").json())
    for secret in ("198.51.100", "rndc", "bind-east", "refused", "timed out", "bind9"):
        assert secret not in text, secret
    for port in ("9531", "5300"):  # a number of its own: an id or a timestamp may hold the digits
        assert not re.search(rf"(?<![\w.-]){port}(?![\w-])", text), port
    assert seen["reason"] == "CREATE succeeded on 0 of 1 servers, 100% needed."
    assert seen["provisioning"] == {"servers": 1, "done": 0, "failed": 1}
    assert [(n["name"], n["in_sync"]) for n in seen["nameservers"]] == [("ns1.example.net.", False),
                                                                         ("nameserver 2", True)]
    assert "targets" not in seen
    operator = admin.get(f"/v2/zones/{zone['id']}/propagation", HTTP_X_AUTH_ALL_PROJECTS="true").json()
    assert operator["reason"] == operator_reason and operator["targets"][0]["message"].startswith("rndc")
    assert admin.get(f"/v2/zones/{zone['id']}", HTTP_X_AUTH_ALL_PROJECTS="true").json()["reason"] == operator_reason


def test_members_choose_only_pools_open_to_them(alice, bob, admin, pool):
    private = pools.save_pool(None, name="private", ns_records=[{"hostname": "ns1.example.net."}])
    p1_only = pools.save_pool(None, name="p1-only", ns_records=[{"hostname": "ns1.example.net."}],
                                 allowed_projects=["p1"])
    assert {p["name"] for p in alice.get("/v2/pools").json()["pools"]} == {"default", "p1-only"}
    assert {p["name"] for p in bob.get("/v2/pools").json()["pools"]} == {"default"}
    assert bob.get(f"/v2/pools/{private.id}").status_code == 404
    before = Zone.objects.count()
    for client, pool_id in ((bob, p1_only.id), (alice, private.id), (alice, "0b1f6d3e-64b6-4a55-9a6b-2a4c3c2d6f00"),
                            (alice, "nonsense")):
        response = client.post("/v2/zones", {"name": "x.example.", "email": "a@example.com",
                                             "attributes": {"pool_id": str(pool_id)}}, format="json")
        assert_invalid(response, "attributes.pool_id")
        assert str(pool_id) not in response.json()["message"]
    assert_invalid(alice.post("/v2/zones", {"name": "x.example.", "email": "a@example.com",
                                            "attributes": {"colour": "red"}}, format="json"), "attributes")
    assert Zone.objects.count() == before
    assert create_zone(alice, "mine.example.", attributes={"pool_id": str(p1_only.id)})["pool_id"] == str(p1_only.id)
    assert create_zone(alice, "dflt.example.", attributes={"pool_id": str(pool.id)})["pool_id"] == str(pool.id)
    assert create_zone(admin, "ops.example.", attributes={"pool_id": str(private.id)})["pool_id"] == str(private.id)
    assert_invalid(admin.patch(f"/v2/pools/{private.id}", {"allowed_projects": "p1"}, format="json"),
                   "allowed_projects")


# --- pools --------------------------------------------------------------------------------------


POOL_BODY = {
    "name": "bind",
    "description": "two BIND servers",
    "threshold_percentage": 50,
    "ns_records": [{"hostname": "ns1.example.org.", "priority": 1}, {"hostname": "ns2.example.org.", "priority": 2}],
    "targets": [{"name": "b1", "type": "bind9", "masters": ["127.0.0.1:5354"],
                 "options": {"rndc_host": "127.0.0.1", "rndc_port": 9531, "rndc_key_secret": SECRET,
                             "api_token": "tok", "password": "pw"}}],
    "nameservers": [{"host": "127.0.0.1", "port": 5300}],
    "also_notifies": [{"host": "192.0.2.53", "port": 53}],
}


def test_users_read_the_public_pool_shape(alice, pool):
    body = alice.get("/v2/pools").json()
    assert set(body) == {"pools", "links", "metadata"}
    assert [p["name"] for p in body["pools"]] == ["default"]
    assert set(body["pools"][0]) == POOL_KEYS
    detail = alice.get(f"/v2/pools/{pool.id}").json()
    assert set(detail) == POOL_KEYS
    assert detail["ns_records"] == [{"hostname": "ns1.example.net.", "priority": 1}]
    assert (detail["attributes"], detail["project_id"]) == ({}, None)
    assert detail["links"]["self"] == f"http://testserver/v2/pools/{pool.id}"


def test_admin_creates_a_pool_and_sees_servers_with_secrets_redacted(admin):
    response = admin.post("/v2/pools", POOL_BODY, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == POOL_ADMIN_KEYS
    assert body["threshold_percentage"] == 50
    target = body["targets"][0]
    assert (target["name"], target["type"], target["masters"]) == ("b1", "bind9", ["127.0.0.1:5354"])
    assert target["options"] == {"rndc_host": "127.0.0.1", "rndc_port": 9531, "rndc_key_secret": "*****",
                                 "api_token": "*****", "password": "*****"}
    assert [(n["host"], n["port"]) for n in body["nameservers"]] == [("127.0.0.1", 5300)]
    assert body["also_notifies"] == [{"host": "192.0.2.53", "port": 53}]
    assert SECRET not in admin.get("/v2/pools").content.decode()
    assert SECRET not in admin.get(f"/v2/pools/{body['id']}").content.decode()
    assert Pool.objects.get(name="bind").targets.get().options["rndc_key_secret"] == SECRET


def test_redacted_secrets_sent_back_keep_the_stored_ones(admin):
    body = admin.post("/v2/pools", POOL_BODY, format="json").json()
    targets = body["targets"]
    targets[0]["options"]["rndc_port"] = 953  # the GET shape, secrets still "*****", sent back
    response = admin.patch(f"/v2/pools/{body['id']}", {"targets": targets, "threshold_percentage": 100},
                           format="json")
    assert response.status_code == 200, response.json()
    options = Pool.objects.get(id=body["id"]).targets.get().options
    assert options["rndc_key_secret"] == SECRET and options["password"] == "pw" and options["rndc_port"] == 953
    assert response.json()["threshold_percentage"] == 100 and response.json()["name"] == "bind"
    # lists not sent are left as they are
    assert len(response.json()["ns_records"]) == 2 and len(response.json()["nameservers"]) == 1
    # a new secret replaces the old one
    targets[0]["options"]["rndc_key_secret"] = "bmV3LXNlY3JldA=="
    admin.patch(f"/v2/pools/{body['id']}", {"targets": targets}, format="json")
    assert Pool.objects.get(id=body["id"]).targets.get().options["rndc_key_secret"] == "bmV3LXNlY3JldA=="


def test_users_cannot_write_pools(alice, pool):
    count = Pool.objects.count()
    for response in (alice.post("/v2/pools", POOL_BODY, format="json"),
                     alice.patch(f"/v2/pools/{pool.id}", {"description": "mine"}, format="json"),
                     alice.delete(f"/v2/pools/{pool.id}")):
        assert response.status_code == 403
        assert response.json()["type"] == "forbidden"
    assert Pool.objects.count() == count and Pool.objects.get(id=pool.id).description == ""


@pytest.mark.parametrize("change, field", [
    ({"targets": [{"name": "x", "type": "nonsuch"}]}, "targets[0].type"),
    ({"targets": [{"type": "bind9"}]}, "targets[0].name"),
    ({"threshold_percentage": 0}, "threshold_percentage"),
    ({"threshold_percentage": 101}, "threshold_percentage"),
    ({"ns_records": [{"hostname": "ns1.example.org"}]}, "ns_records[0].hostname"),
    ({"nameservers": [{"host": "127.0.0.1", "port": 70000}]}, "nameservers[0]"),
    ({"targets": [{"name": "b", "type": "bind9", "masters": ["nohost"]}]}, "targets[0].masters"),
    ({"name": ""}, "name"),
    ({"colour": "red"}, "colour"),
    # What PostgreSQL cannot store, or a backend cannot read, is a 400 too (not a 500):
    ({"targets": [{"name": "b", "type": "bind9", "masters": ["127.0.0.1:5354"],
                   "options": {"rndc_key_secret": SECRET, "note": "a\u0000b"}}]}, "targets[0].options"),
    ({"targets": [{"name": "b", "type": "bind9", "masters": ["127.0.0.1:5354"],
                   "options": {"rndc_key_secret": SECRET, "x": {"y": ["\u0000"]}}}]}, "targets[0].options"),
    ({"targets": [{"name": "b", "type": "bind9", "masters": ["127.0.0.1:5354"],
                   "options": {"rndc_key_secret": SECRET, "rndc_port": "abc"}}]}, "targets[0].options"),
    ({"targets": [{"name": "b", "type": "bind9", "masters": ["127.0.0.1:5354"],
                   "options": {"rndc_key_secret": SECRET, "parallel": "many"}}]}, "targets[0].options"),
    ({"targets": [{"name": "b", "type": "bind9", "masters": ["127.0.0.1:5354"],
                   "options": {"rndc_key_secret": SECRET, "timeout": "nan"}}]}, "targets[0].options"),
    ({"targets": [{"name": "p", "type": "pdns", "masters": ["127.0.0.1:5354"],
                   "options": {"api_url": "http://[::1", "api_key": "k"}}]}, "targets[0].options"),
    ({"ns_records": [{"hostname": "ns1.example.org.", "priority": 10**9}]}, "ns_records[0].priority"),
    ({"nameservers": [{"host": "127.0.0.1", "port": 5300, "name": 5}]}, "nameservers[0].name"),
    ({"nameservers": [{"host": "127.0.0.1", "port": 5300, "name": "not a name!"}]}, "nameservers[0].name"),
    ({"allowed_projects": ["p1", 7]}, "allowed_projects[1]"),
])
def test_bad_pools_are_400_and_write_nothing(admin, pool, change, field):
    before = Pool.objects.count()
    assert_invalid(admin.post("/v2/pools", {**POOL_BODY, **change}, format="json"), field)
    assert Pool.objects.count() == before


def test_duplicate_pool_is_409(admin, pool):
    assert_duplicate(admin.post("/v2/pools", {**POOL_BODY, "name": "default"}, format="json"), "pool")
    assert Pool.objects.count() == 1


def test_admin_deletes_only_empty_pools(admin, alice, pool):
    create_zone(alice)
    assert_invalid(admin.delete(f"/v2/pools/{pool.id}"), "pool")
    empty = admin.post("/v2/pools", {"name": "empty"}, format="json").json()
    assert admin.delete(f"/v2/pools/{empty['id']}").status_code == 204
    assert admin.get(f"/v2/pools/{empty['id']}").json()["type"] == "pool_not_found"


def test_zone_create_needs_a_default_pool(db):
    client = client_for(make_user("early", "p1"))
    assert_invalid(client.post("/v2/zones", {"name": "example.com.", "email": "a@example.com"}, format="json"),
                   "pool_id")


# --- documents and the command -------------------------------------------------------------------


def test_version_documents_schema_and_docs_need_no_token(db):
    client = APIClient()
    root = client.get("/").json()
    assert root["versions"][0]["id"] == "v2.0"
    assert root["versions"][0]["links"][0]["href"] == "http://testserver/v2"
    for url in ("/v2", "/v2/"):
        assert client.get(url).json()["version"]["status"] == "CURRENT"
    schema = client.get("/v2/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/v2/zones", "/v2/zones/{zone_id}", "/v2/zones/{zone_id}/recordsets", "/v2/pools"} <= set(paths)
    assert client.get("/v2/docs").status_code == 200


def test_create_api_user_is_idempotent_and_prints_a_new_token_each_run(db):
    def run(*args):
        out = StringIO()
        call_command("create_api_user", "dave", *args, stdout=out, stderr=StringIO())
        line = out.getvalue().strip()
        assert line.startswith("token: ")
        return line.removeprefix("token: ")

    token = run("--project", "p1")
    user = get_user_model().objects.get(username="dave")
    assert (user.membership.project_id, user.membership.role, user.has_usable_password()) == ("p1", "member", False)
    second = run("--project", "p2", "--admin")
    assert second != token
    user.refresh_from_db()
    assert (user.membership.project_id, user.membership.role, user.is_staff) == ("p2", "admin", False)
    run("--project", "p2", "--role", "reader")
    user.refresh_from_db()
    assert user.membership.role == "reader"
    assert get_user_model().objects.filter(username="dave").count() == 1
    assert user.auth_token_set.count() == 3
    for key in (token, second):  # earlier tokens keep working
        assert APIClient(HTTP_X_AUTH_TOKEN=key).get("/v2/zones").status_code == 200


def _drf_representation(serializer_class, obj, user):
    """DRF's own walk over the serializer's fields, for the same object and caller."""
    from rest_framework import serializers
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    request = Request(APIRequestFactory().get("/v2/zones"))
    request.user = user
    fast = serializer_class(obj, context={"request": request}).data
    generic = serializers.ModelSerializer.to_representation(serializer_class(context={"request": request}), obj)
    return dict(fast), dict(generic)


@pytest.mark.parametrize("role", ["member", "admin"])
def test_zone_and_recordset_output_is_what_drfs_field_walk_gives(pool, role):
    """ZoneSerializer and RecordSetSerializer write their fields straight from the object (every
    response): the same JSON values as DRF's generic to_representation, for every kind of value."""
    from zones.api.serializers import RecordSetSerializer, ZoneSerializer

    user = accounts.api_user("u", "p1", role)
    zone = writes.create_zone(project_id="p1", name="shape.test.", email="a@shape.test", ttl=300,
                              description="dé")
    Zone.objects.filter(id=zone.id).update(status=Zone.Status.ERROR, reason="bind-1: refused",
                                           tenant_reason="a nameserver refused")
    rs = writes.create_recordset(zone.id, name="www", type="TXT", records=['"a b"', '"c"'], description="x")
    for obj, serializer in ((zone, ZoneSerializer), (Zone.objects.get(id=zone.id), ZoneSerializer),
                            (rs, RecordSetSerializer), (RecordSet.objects.get(id=rs.id), RecordSetSerializer),
                            (RecordSet.objects.get(zone=zone, type="SOA"), RecordSetSerializer)):
        fast, generic = _drf_representation(serializer, obj, user)
        assert fast == generic
        assert [type(v) for v in fast.values()] == [type(v) for v in generic.values()]
        assert list(fast) == list(generic)
    assert fast["ttl"] is None and fast["links"]["self"].endswith(f"/v2/zones/{zone.id}/recordsets/{fast['id']}")


def test_a_lists_links_are_each_objects_own(alice):
    """One reversed URL per request and view name, each object's ids put in."""
    ids = [create_zone(alice, f"l{i}.example.com.")["id"] for i in range(3)]
    zones = alice.get("/v2/zones").json()["zones"]
    assert [z["links"]["self"] for z in zones] == [f"http://testserver/v2/zones/{i}" for i in ids]
    rs = [create_recordset(alice, ids[0], name=f"r{i}")["id"] for i in range(2)]
    listed = alice.get(f"/v2/zones/{ids[0]}/recordsets?type=A").json()["recordsets"]
    assert [r["links"]["self"] for r in listed] == [f"http://testserver/v2/zones/{ids[0]}/recordsets/{i}" for i in rs]
