"""Query strings as Designate reads them: unknown or repeated parameters are a 400 naming them on
every endpoint, and lists sort by Designate's keys with marker pagination that stays correct
under any order (ties and NULLs included).

Plain `django_db`: on_commit never runs, so no Celery work is sent.
"""
import uuid
from datetime import timedelta

import pytest
from django.urls import get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.test_api import admin, alice, bob, pool  # noqa: F401 - fixtures
from tests.test_api import client_for, create_recordset, create_zone, make_user
from zones.api.filters import QueryParamsMixin
from zones.models import OutboxEvent, Pool, PoolTarget, RecordSet, Zone
from zones.services import pools, writes

pytestmark = pytest.mark.django_db

ALL = {"HTTP_X_AUTH_ALL_PROJECTS": "true"}
ZONE_SORT_KEYS = ["created_at", "id", "updated_at", "name", "tenant_id", "serial", "ttl", "status"]
RECORDSET_SORT_KEYS = ["created_at", "id", "updated_at", "zone_id", "tenant_id", "name", "type", "ttl"]
POOL_SORT_KEYS = ["created_at", "id", "updated_at", "name"]
NS = [{"hostname": "ns1.example.net.", "priority": 1}]
T0 = timezone.now().replace(microsecond=0) - timedelta(days=1)




def assert_400_naming(response, *names):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == 400 and body["type"] == "invalid_object"
    assert set(body["errors"]) == set(names), body
    for name in names:
        assert name in body["message"]
    return body


def snapshot() -> dict:
    """Every row an API write could touch."""
    return {model.__name__: sorted(map(repr, model.objects.values())) for model in
            (Zone, RecordSet, Pool, PoolTarget, OutboxEvent)}


# --- every endpoint: unknown parameters -----------------------------------------------------------


def api_routes():
    """(name, methods) of every route of the API, but the OpenAPI schema and its Swagger UI."""
    routes = []
    for pattern in get_resolver().url_patterns:
        if getattr(pattern, "app_name", None) != "api":
            continue
        for route in pattern.url_patterns:
            view = route.callback
            if not route.name or route.name in ("schema", "docs"):
                continue
            if hasattr(view, "actions"):  # a viewset: the methods its route maps
                methods = list(view.actions)
            else:
                methods = [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view.cls, m)]
            routes.append((route, view.cls, methods))
    return routes


def test_the_route_walk_sees_every_endpoint():
    names = {route.name for route, _, _ in api_routes()}
    assert {"root", "v2", "zone-list", "zone-detail", "zone-nameservers", "zone-propagation", "recordset-list",
            "recordset-detail", "all-recordset-list", "pool-list", "pool-detail", "target-sync",
            "event-list"} <= names


@pytest.mark.parametrize("route, view, methods", api_routes(), ids=lambda v: getattr(v, "name", None) or "")
def test_every_endpoint_refuses_an_unknown_parameter_before_anything_else(admin, route, view, methods):
    assert issubclass(view, QueryParamsMixin)
    path = reverse(f"api:{route.name}", kwargs={name: str(uuid.uuid4()) for name in route.pattern.converters})
    before = snapshot()
    for method in methods:
        response = admin.generic(method.upper(), f"{path}?bogus=1&format=json")
        body = assert_400_naming(response, "bogus", "format")
        assert "bogus: Unknown query parameter for this endpoint" in body["message"]
    assert snapshot() == before


def test_the_same_with_a_trailing_slash(alice):
    assert_400_naming(alice.get("/v2/zones/?bogus=1"), "bogus")


def test_a_stranger_gets_401_not_a_lesson_in_parameters(pool):
    assert client_for("not-a-token").get("/v2/zones?bogus=1").status_code == 401


@pytest.mark.parametrize("query", ["limit=1", "name=example.com.", "sort_key=name", "marker=x", "type=A"])
def test_details_take_no_parameters_not_even_a_lists(alice, query):
    zone = create_zone(alice)
    rs = create_recordset(alice, zone["id"])
    name = query.split("=")[0]
    for path in (f"/v2/zones/{zone['id']}", f"/v2/zones/{zone['id']}/recordsets/{rs['id']}",
                 f"/v2/zones/{zone['id']}/nameservers", f"/v2/zones/{zone['id']}/propagation"):
        body = assert_400_naming(alice.get(f"{path}?{query}"), name)
        assert "it takes none" in body["message"]
        assert alice.get(path).status_code == 200


def test_writes_with_a_parameter_change_nothing_and_succeed_without_it(alice, admin):
    zone = create_zone(alice)
    rs = create_recordset(alice, zone["id"])
    other_pool = admin.post("/v2/pools", {"name": "spare"}, format="json").json()
    writes = [
        ("post", "/v2/zones", {"name": "new.com.", "email": "a@new.com"}, alice),
        ("patch", f"/v2/zones/{zone['id']}", {"ttl": 900}, alice),
        ("post", f"/v2/zones/{zone['id']}/recordsets", {"name": "api", "type": "A", "records": ["192.0.2.7"]},
         alice),
        ("put", f"/v2/zones/{zone['id']}/recordsets/{rs['id']}", {"records": ["192.0.2.9"]}, alice),
        ("delete", f"/v2/zones/{zone['id']}/recordsets/{rs['id']}", None, alice),
        ("delete", f"/v2/zones/{zone['id']}", None, alice),
        ("post", "/v2/pools", {"name": "another"}, admin),
        ("patch", f"/v2/pools/{other_pool['id']}", {"description": "changed"}, admin),
        ("delete", f"/v2/pools/{other_pool['id']}", None, admin),
    ]
    for method, path, data, client in writes:
        for query in ("?dry_run=1", "?ttl=900", "?name=new.com.&name=new.com."):
            before = snapshot()
            response = getattr(client, method)(path + query, data, format="json")
            assert_400_naming(response, query[1:].split("=")[0])
            assert snapshot() == before, (method, path, query)
        response = getattr(client, method)(path, data, format="json")
        assert response.status_code in (200, 201, 202, 204), (method, path, response.content)


# --- lists: unknown and repeated parameters -------------------------------------------------------


def list_paths(zone_id):
    return {
        "/v2/zones": ["name", "email", "description", "status", "type", "ttl"],
        f"/v2/zones/{zone_id}/recordsets": ["name", "type", "status", "ttl", "description", "data", "zone_id"],
        "/v2/recordsets": ["name", "type", "status", "ttl", "description", "data", "zone_id"],
        "/v2/pools": ["name"],
    }


def test_each_list_takes_exactly_its_filters_and_the_paging_parameters(alice):
    zone = create_zone(alice)
    for path, filters in list_paths(zone["id"]).items():
        for name in filters + ["limit", "marker", "sort_key", "sort_dir"]:
            value = {"marker": "", "sort_key": "created_at", "sort_dir": "desc", "ttl": "3600", "limit": "5",
                     "zone_id": zone["id"]}.get(name, "*")
            response = alice.get(path, {name: value})
            assert response.status_code == 200, (path, name, response.content)
        body = assert_400_naming(alice.get(path, {"bogus": "1", "pattern": "x"}), "bogus", "pattern")
        assert f"it takes {', '.join(sorted(filters + ['limit', 'marker', 'sort_key', 'sort_dir']))}." in \
            body["errors"]["bogus"][0]


@pytest.mark.parametrize("query, names", [
    ("name=a.com.&name=b.com.", ["name"]),
    ("limit=1&limit=2", ["limit"]),
    ("sort_key=name&sort_key=id", ["sort_key"]),
    ("sort_dir=asc&sort_dir=asc", ["sort_dir"]),
    ("marker=x&marker=y", ["marker"]),
    ("ttl=1&ttl=1&bogus=1&limit=2", ["ttl", "bogus"]),
])
def test_repeated_parameters_are_400_naming_each(alice, query, names):
    create_zone(alice)
    body = assert_400_naming(alice.get(f"/v2/zones?{query}"), *names)
    if "ttl" in names:
        assert body["errors"]["ttl"] == ["Given more than once: give it once."]


def test_events_take_after_limit_and_a_repeatable_type(admin, alice):
    for i in range(3):
        zone = create_zone(alice, f"z{i}.example.")
        alice.patch(f"/v2/zones/{zone['id']}", {"ttl": 900}, format="json")
    for seq, event in enumerate(OutboxEvent.objects.order_by("id"), 1):  # as the relay publishes them
        OutboxEvent.objects.filter(id=event.id).update(seq=seq, published_at=timezone.now())

    def types(query):
        response = admin.get(f"/v2/events?{query}")
        assert response.status_code == 200, response.content
        return [e["event_type"] for e in response.json()["events"]]

    both = types("type=dns.zone.create&type=dns.zone.update&after=1&limit=10")
    assert both == types("type=dns.zone.create,dns.zone.update&after=1&limit=10")
    assert sorted(set(both)) == ["dns.zone.create", "dns.zone.update"] and len(both) == 5
    assert set(types("type=dns.zone.update")) == {"dns.zone.update"}
    assert_400_naming(admin.get("/v2/events?after=1&after=2"), "after")
    assert_400_naming(admin.get("/v2/events?limit=1&limit=2"), "limit")
    assert_400_naming(admin.get("/v2/events?marker=1&sort_key=created_at"), "marker", "sort_key")


# --- sorting and marker pagination ----------------------------------------------------------------


def walk(client, path, params, headers=ALL, limit=3) -> list[str]:
    """Every id of the list, page by page through links.next."""
    response = client.get(path, {**params, "limit": limit}, **headers)
    assert response.status_code == 200, response.content
    key = path.rstrip("/").rsplit("/", 1)[-1]
    ids, total = [], response.json()["metadata"]["total_count"]
    for _ in range(100):
        body = response.json()
        assert body["metadata"]["total_count"] == total and len(body[key]) <= limit
        ids += [item["id"] for item in body[key]]
        if "next" not in body["links"]:
            break
        url = body["links"]["next"]
        for name, value in params.items():
            assert f"{name}={value}" in url
        response = client.get(url, **headers)
        assert response.status_code == 200, response.content
    assert len(ids) == total
    return ids


def expected(rows, descending) -> list[str]:
    """Python's order: (value, id), NULL after every value; descending is the exact reverse."""
    ordered = sorted(rows, key=lambda row: (row[0] is None, row[0], uuid.UUID(str(row[1]))))
    return [str(row[1]) for row in (ordered[::-1] if descending else ordered)]


@pytest.fixture
def zones(alice, bob, admin):
    """13 zones in three projects, with many ties on every key."""
    names = ["z1.example.", "z10.example.", "z2.example.", "a-b.example.", "ab.example.", "a.example.",
             "b.example.", "a0.example.", "a_b.example.", "zz.example.", "m.example.", "mm.example.", "n.example."]
    projects = ["p1", "p2", "ops"]
    statuses = ["PENDING", "ACTIVE", "ERROR"]
    for i, name in enumerate(names):
        zone = writes.create_zone(project_id=projects[i % 3], name=name, email="a@example.com")
        Zone.objects.filter(id=zone.id).update(ttl=[300, 600, 600, 900][i % 4], serial=[7, 7, 3][i % 3] + (i % 2),
                                               status=statuses[i % 3], updated_at=T0 + timedelta(seconds=i % 2))
    # created_at against the ids (groups of at most 3 ties): no project's default order is its id order
    for rank, zone_id in enumerate(sorted(Zone.objects.values_list("id", flat=True))):
        Zone.objects.filter(id=zone_id).update(created_at=T0 + timedelta(seconds=(12 - rank) // 3))


ZONE_FIELDS = {"tenant_id": "project_id"}


@pytest.mark.parametrize("key", ZONE_SORT_KEYS)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_zones_walk_in_every_order(admin, zones, key, direction):
    rows = Zone.objects.values_list(ZONE_FIELDS.get(key, key), "id")
    assert walk(admin, "/v2/zones", {"sort_key": key, "sort_dir": direction}) == expected(rows, direction == "desc")


@pytest.fixture
def recordsets(alice, bob, zones):
    """Recordsets in zones of three projects (z1: p1's, z10: p2's, z2: ops'); ttl NULL for some, and
    ties on every key."""
    zone_ids = [Zone.objects.get(name=name).id for name in ("z1.example.", "z10.example.", "z2.example.")]
    rows = [("www", "A", ["192.0.2.1"], None), ("www", "AAAA", ["2001:db8::1"], 300),
            ("www", "TXT", ['"x"'], None), ("api", "A", ["192.0.2.2"], 300), ("_sip._tcp", "SRV",
            ["1 1 5060 sip.example."], 60), ("a-b", "A", ["192.0.2.3"], None), ("ab", "A", ["192.0.2.4"], 60)]
    for zone_id in zone_ids:
        for name, rtype, records, ttl in rows:
            writes.create_recordset(zone_id, name=name, type=rtype, records=records, ttl=ttl)
    for i, rs in enumerate(RecordSet.objects.order_by("id")):
        RecordSet.objects.filter(id=rs.id).update(created_at=T0 + timedelta(seconds=i % 4),
                                                  updated_at=T0 + timedelta(seconds=(i // 5) % 2))
    return zone_ids


RECORDSET_FIELDS = {"tenant_id": "zone__project_id"}


@pytest.mark.parametrize("key", RECORDSET_SORT_KEYS)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_recordsets_walk_in_every_order(admin, recordsets, key, direction):
    field = RECORDSET_FIELDS.get(key, key)
    rows = RecordSet.objects.values_list(field, "id")
    params = {"sort_key": key, "sort_dir": direction}
    assert RecordSet.objects.filter(ttl__isnull=True).count() >= 9
    assert walk(admin, "/v2/recordsets", params, limit=4) == expected(rows, direction == "desc")
    zone_id = recordsets[0]
    rows = RecordSet.objects.filter(zone_id=zone_id).values_list(field, "id")
    assert walk(admin, f"/v2/zones/{zone_id}/recordsets", params, limit=2) == expected(rows, direction == "desc")


@pytest.mark.parametrize("key", POOL_SORT_KEYS)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_pools_walk_in_every_order(alice, key, direction):
    for i, name in enumerate(["b", "a-b", "ab", "a", "a_b", "Z", "z1", "z10", "z2"]):
        pool = pools.save_pool(None, name=name, ns_records=NS, allowed_projects=["*"])
        Pool.objects.filter(id=pool.id).update(created_at=T0 + timedelta(seconds=i % 3),
                                               updated_at=T0 + timedelta(seconds=i % 2))
    rows = Pool.objects.values_list(key, "id")
    assert walk(alice, "/v2/pools", {"sort_key": key, "sort_dir": direction}, headers={}, limit=2) == \
        expected(rows, direction == "desc")


def test_the_default_order_is_created_at_then_id_ascending(admin, zones):
    rows = Zone.objects.values_list("created_at", "id")
    assert walk(admin, "/v2/zones", {}) == expected(rows, False)
    assert walk(admin, "/v2/zones", {"sort_key": "", "sort_dir": ""}) == expected(rows, False)
    assert walk(admin, "/v2/zones", {"sort_dir": "desc"}) == expected(rows, True)


def test_a_members_walk_is_its_own_projects_zones_in_order(alice, zones):
    rows = Zone.objects.filter(project_id="p1").values_list("name", "id")
    assert walk(alice, "/v2/zones", {"sort_key": "name", "sort_dir": "desc"}, headers={}, limit=2) == \
        expected(rows, True)


def test_filters_and_sorting_page_together(admin, zones):
    rows = Zone.objects.filter(ttl=600).values_list("serial", "id")
    assert len(rows) >= 6
    assert walk(admin, "/v2/zones", {"ttl": 600, "sort_key": "serial", "sort_dir": "desc"}, limit=2) == \
        expected(rows, True)


def test_tenant_id_sorts_only_for_a_caller_looking_across_projects(alice, admin, zones):
    by_tenant = expected(Zone.objects.values_list("project_id", "id"), False)
    assert walk(admin, "/v2/zones", {"sort_key": "tenant_id"}) == by_tenant
    # everyone else gets the default order (not the id order that equal tenants would give)
    for client, headers, project in ((alice, {}, "p1"), (admin, {}, "ops"),
                                     (admin, {"HTTP_X_AUTH_SUDO_PROJECT_ID": "p2"}, "p2")):
        zones = Zone.objects.filter(project_id=project)
        default = expected(zones.values_list("created_at", "id"), True)
        assert default != expected(zones.values_list("project_id", "id"), True)
        assert walk(client, "/v2/zones", {"sort_key": "tenant_id", "sort_dir": "desc"}, headers=headers,
                    limit=2) == default
    rows = RecordSet.objects.values_list("zone__project_id", "id")
    response = admin.get("/v2/recordsets", {"sort_key": "tenant_id", "limit": 1000}, **ALL)
    assert [r["id"] for r in response.json()["recordsets"]] == expected(rows, False)


@pytest.mark.parametrize("path, query, name", [
    ("/v2/zones", {"sort_key": "records"}, "sort_key"),
    ("/v2/zones", {"sort_key": "project_id"}, "sort_key"),
    ("/v2/zones", {"sort_key": "Name"}, "sort_key"),
    ("/v2/zones", {"sort_key": "name,id"}, "sort_key"),
    ("/v2/zones", {"sort_key": "pool__targets__options"}, "sort_key"),
    ("/v2/zones", {"sort_dir": "ASC"}, "sort_dir"),
    ("/v2/zones", {"sort_dir": "descending"}, "sort_dir"),
    ("/v2/recordsets", {"sort_key": "records"}, "sort_key"),
    ("/v2/recordsets", {"sort_key": "serial"}, "sort_key"),
    ("/v2/pools", {"sort_key": "tenant_id"}, "sort_key"),
    ("/v2/pools", {"sort_key": "ttl"}, "sort_key"),
    ("/v2/pools", {"sort_dir": "up"}, "sort_dir"),
])
def test_bad_sort_keys_and_directions_are_400(admin, zones, path, query, name):
    body = assert_400_naming(admin.get(path, query, **ALL), name)
    if name == "sort_key":
        assert "sort_key must be one of created_at, id, updated_at" in body["message"]
    else:
        assert body["errors"] == {"sort_dir": ["sort_dir must be asc or desc."]}


def test_a_marker_the_caller_cannot_see_is_400_without_its_id(alice, bob, zones, recordsets):
    theirs = Zone.objects.filter(project_id="p2").first()
    their_rs = RecordSet.objects.filter(zone__project_id="p2").first()
    for path, marker in (("/v2/zones", theirs.id), ("/v2/recordsets", their_rs.id),
                         (f"/v2/zones/{recordsets[0]}/recordsets", their_rs.id)):
        for query in ({"marker": marker}, {"marker": marker, "sort_key": "name", "sort_dir": "desc"}):
            response = alice.get(path, query)
            body = assert_400_naming(response, "marker")
            assert str(marker) not in response.content.decode()
            assert body["errors"]["marker"] == ["The marker is not the id of an item of this list."]
    assert_400_naming(alice.get("/v2/zones", {"marker": "bogus"}), "marker")
    assert_400_naming(alice.get("/v2/zones", {"marker": "1" * 5000}), "marker")


def test_a_visible_marker_outside_the_filter_still_marks_a_place(admin, zones):
    marker = Zone.objects.filter(ttl=300).order_by("name").first()
    rows = [(name, id) for name, id in Zone.objects.values_list("name", "id")]
    after_marker = expected(rows, False)
    after_marker = after_marker[after_marker.index(str(marker.id)) + 1:]
    wanted = [i for i in after_marker if Zone.objects.get(id=i).ttl == 600]
    response = admin.get("/v2/zones", {"ttl": 600, "sort_key": "name", "marker": marker.id, "limit": 1000}, **ALL)
    assert [z["id"] for z in response.json()["zones"]] == wanted and wanted


def test_limit_max_and_clamping_are_unchanged(admin, zones):
    every = admin.get("/v2/zones", {"limit": "max"}, **ALL).json()
    assert len(every["zones"]) == 13 and "next" not in every["links"]
    assert len(admin.get("/v2/zones", {"limit": 5000}, **ALL).json()["zones"]) == 13
    for limit in ("0", "-1", "MAX", "1.5"):
        assert_400_naming(admin.get("/v2/zones", {"limit": limit}, **ALL), "limit")


# --- the OpenAPI schema --------------------------------------------------------------------------


def test_the_schema_lists_sort_key_and_sort_dir_with_their_values_on_each_list(db):
    paths = APIClient().get("/v2/schema", HTTP_ACCEPT="application/json").json()["paths"]
    for path, keys in (("/v2/zones", ZONE_SORT_KEYS), ("/v2/zones/{zone_id}/recordsets", RECORDSET_SORT_KEYS),
                       ("/v2/recordsets", RECORDSET_SORT_KEYS), ("/v2/pools", POOL_SORT_KEYS)):
        parameters = {p["name"]: p for p in paths[path]["get"]["parameters"] if p["in"] == "query"}
        assert parameters["sort_key"]["schema"]["enum"] == keys
        assert parameters["sort_dir"]["schema"]["enum"] == ["asc", "desc"]
        assert {"limit", "marker"} <= set(parameters)
    detail = paths["/v2/zones/{zone_id}"]["get"].get("parameters", [])
    assert not [p for p in detail if p["in"] == "query"]


# --- python-designateclient follows sorted pages ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_designateclient_follows_sorted_pages(live_server, monkeypatch):
    from designateclient.v2 import client as designate
    from designateclient.v2.utils import get_all
    from keystoneauth1 import session
    from keystoneauth1.token_endpoint import Token

    monkeypatch.setattr(writes, "_enqueue", lambda zone: None)  # no worker runs here
    pools.save_pool(None, name="default", ns_records=NS)
    auth = Token(live_server.url + "/v2", make_user("carol", "p3"))
    dns = designate.Client(session=session.Session(auth=auth), timeout=10)
    names = ["z1.example.", "z10.example.", "z2.example.", "a-b.example.", "ab.example."]
    for name in names:
        dns.zones.create(name, email="a@example.com")
    criterion = {"sort_key": "name", "sort_dir": "desc", "limit": 2}
    assert [z["name"] for z in get_all(dns.zones.list, criterion=criterion)] == sorted(names, reverse=True)


def test_wildcard_patterns_cost_the_database_little(alice):
    """A run of `*` is one (a thousand of them cost PostgreSQL's regex engine seconds), and a
    pattern is at most 255 characters, on every wildcard filter."""
    from zones.api.filters import wildcard_regex

    assert wildcard_regex("a***b*", "name") == "^a.*b.*$"
    zone = create_zone(alice, "example.com.")
    assert [z["id"] for z in alice.get("/v2/zones", {"name": "*" * 255}).json()["zones"]] == [zone["id"]]
    for path, field in (("/v2/zones", "name"), ("/v2/zones", "email"), ("/v2/recordsets", "data"),
                        ("/v2/recordsets", "description"), ("/v2/pools", "name")):
        assert_400_naming(alice.get(path, {field: "*" * 256}), field)
