"""Names a tenant may not take (zones.reserved): a pool's catalog zone, public suffixes, names outside
the TLDs, blacklisted names; the pool side of the catalog rule; MiniDNS answering catalog names before
any zone's; and Designate's /v2/tlds and /v2/blacklists (API, Django admin, python-designateclient).

Every refusal is checked for its status, the field it names, what it must not reveal, and that
nothing was written."""
import socket
import time

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from workers.minidns import MiniDNS
from zones import accounts, reserved
from zones.models import Blacklist, OutboxEvent, Pool, RecordSet, Tld, Zone
from zones.services import pools, writes

pytestmark = pytest.mark.django_db

CATALOG = "catalog.dnsctl.test."
# Equal to, enclosing, inside the catalog.
COLLIDING = [CATALOG, "dnsctl.test.", f"inside.{CATALOG}", f"abc.zones.{CATALOG}"]
PATHOLOGICAL = r"^(a|aa)+\.test\.$"  # exponential backtracking on "aaa…a.example."


# --- helpers --------------------------------------------------------------------------------------


def client(username, project, role="member") -> APIClient:
    return APIClient(HTTP_X_AUTH_TOKEN=accounts.issue_token(accounts.api_user(username, project, role)))


@pytest.fixture
def pool():
    return pools.save_pool(None, name="default", catalog_zone=CATALOG,
                           ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
                           nameservers=[{"host": "127.0.0.1", "port": 53}])  # may transfer the catalog


@pytest.fixture
def member(pool):
    return client("alice", "p1")


@pytest.fixture
def admin(pool):
    return client("root", "ops", role="admin")


@pytest.fixture
def reader(pool):
    return client("rita", "p1", role="reader")


def nothing_written():
    return (Zone.objects.count(), RecordSet.objects.count(), OutboxEvent.objects.count()) == (0, 0, 0)


def refused(name, *, admin=False) -> str:
    """The message of the 400 naming `name` that the service gives for this zone name."""
    with pytest.raises(ValidationError) as excinfo:
        writes.create_zone(project_id="p1", name=name, email="a@example.com", admin=admin)
    errors = excinfo.value.message_dict
    assert list(errors) == ["name"], errors
    return errors["name"][0]


def create(api, name, **headers):
    return api.post("/v2/zones", {"name": name, "email": "hostmaster@example.com"}, format="json", **headers)


def assert_400(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["code"], body["type"]) == (400, "invalid_object") and field in body["errors"], body
    return body


# --- the catalog zone belongs to the pool -----------------------------------------------------------


@pytest.mark.parametrize("name", COLLIDING)
@pytest.mark.parametrize("admin", [False, True])
def test_no_zone_equals_encloses_or_sits_inside_a_catalog(pool, name, admin):
    message = refused(name, admin=admin)
    assert "reserved for the DNS service" in message
    assert CATALOG not in message.replace(name, "")  # says nothing of the catalog but the name asked for
    assert nothing_written()


@pytest.mark.parametrize("name", ["other.dnsctl.test.", "xcatalog.dnsctl.test.", "catalog.dnsctl.example."])
def test_names_beside_the_catalog_stay_free(pool, name):
    assert writes.create_zone(project_id="p1", name=name, email="a@example.com").name == name


@pytest.mark.parametrize("name", COLLIDING)
def test_the_api_refuses_catalog_names_without_naming_the_catalog(member, admin, name):
    for api in (member, admin):
        body = assert_400(create(api, name), "name")
        assert CATALOG not in str(body).replace(name, "")  # only the name the caller sent comes back
        assert "reserved for the DNS service" in body["errors"]["name"][0]
    assert nothing_written()


def test_a_catalog_of_another_pool_is_reserved_too(pool):
    other = pools.save_pool(None, name="other", catalog_zone="cat.elsewhere.test.",
                               ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    assert "reserved" in refused("cat.elsewhere.test.")
    assert "reserved" in refused("elsewhere.test.")
    assert writes.create_zone(project_id="p", name="free.test.", email="a@example.com", pool_id=other.id,
                                admin=True)


# --- the pool side: a catalog name no zone and no other catalog uses ---------------------------------------


def pool_refused(pool_obj, name="second", **fields) -> str:
    with pytest.raises(ValidationError) as excinfo:
        pools.save_pool(pool_obj, name=name, **fields)
    assert "catalog_zone" in excinfo.value.message_dict, excinfo.value.message_dict
    return excinfo.value.message_dict["catalog_zone"][0]


@pytest.mark.parametrize("catalog", ["shop.example.", "cat.shop.example.", "deep.cat.shop.example."])
def test_a_pool_catalog_may_not_overlap_a_live_zone(pool, catalog):
    writes.create_zone(project_id="p1", name="shop.example.", email="a@example.com")
    assert "shop.example." in pool_refused(None, catalog_zone=catalog)
    assert not Pool.objects.filter(name="second").exists()


@pytest.mark.parametrize("catalog", ["inner.example.", "b.inner.example.", "a.b.inner.example.", "x.a.b.inner.example."])
def test_a_catalog_enclosing_equal_to_or_inside_a_zone_is_refused(pool, catalog):
    writes.create_zone(project_id="p1", name="a.b.inner.example.", email="a@example.com")
    assert "a.b.inner.example." in pool_refused(None, catalog_zone=catalog)
    assert not Pool.objects.filter(name="second").exists()


@pytest.mark.parametrize("catalog", [CATALOG, "dnsctl.test.", f"x.{CATALOG}"])
def test_a_pool_catalog_may_not_overlap_another_pools_catalog(pool, catalog):
    assert CATALOG in pool_refused(None, catalog_zone=catalog)
    assert not Pool.objects.filter(name="second").exists()


def test_changing_a_catalog_onto_a_zone_changes_nothing(pool):
    writes.create_zone(project_id="p1", name="shop.example.", email="a@example.com")
    pool_refused(pool, name="renamed", catalog_zone="shop.example.", description="changed")
    pool.refresh_from_db()
    assert (pool.name, pool.catalog_zone, pool.description) == ("default", CATALOG, "")


def test_a_pool_keeps_its_own_catalog_and_deleted_zones_do_not_count(pool):
    zone = writes.create_zone(project_id="p1", name="old.example.", email="a@example.com")
    Zone.objects.filter(id=zone.id).update(deleted_at=zone.created_at, status="DELETED")
    assert pools.save_pool(pool, name="default", catalog_zone=CATALOG).catalog_zone == CATALOG
    assert pools.save_pool(None, name="second", catalog_zone="cat.old.example.").catalog_zone == "cat.old.example."


def test_the_api_refuses_a_colliding_catalog_and_saves_nothing(admin, pool):
    writes.create_zone(project_id="p1", name="shop.example.", email="a@example.com")
    body = assert_400(admin.post("/v2/pools", {"name": "second", "catalog_zone": "cat.shop.example."}, format="json"),
                      "catalog_zone")
    assert "shop.example." in body["errors"]["catalog_zone"][0]
    assert not Pool.objects.filter(name="second").exists()
    response = admin.patch(f"/v2/pools/{pool.id}", {"description": "x", "catalog_zone": "shop.example."},
                           format="json")
    assert_400(response, "catalog_zone")
    pool.refresh_from_db()
    assert (pool.catalog_zone, pool.description) == (CATALOG, "")


def test_the_django_admin_refuses_a_colliding_catalog(client, pool):
    client.force_login(get_user_model().objects.create_superuser("staff", "s@example.com", "pw"))
    writes.create_zone(project_id="p1", name="shop.example.", email="a@example.com")
    data = {"name": "second", "description": "", "threshold_percentage": "100", "catalog_zone": "shop.example."}
    for prefix in ("ns_records", "targets", "nameservers", "also_notifies"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0",
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"})
    response = client.post(reverse("admin:zones_pool_add"), data, follow=True)
    html = response.content.decode()
    assert "Nothing was saved" in html and "catalog_zone" in html
    assert not Pool.objects.filter(name="second").exists()


# --- MiniDNS answers a catalog's names from the catalog --------------------------------------------------


def smuggle_zone(name, pool, serial=4242) -> Zone:
    """A zone row written behind the services' back (legacy data, a manual INSERT), with its SOA and NS."""
    zone = Zone.objects.create(project_id="evil", name=name, email="evil@example.com", pool=pool, serial=serial,
                               status="ACTIVE", action="NONE")
    RecordSet.objects.create(zone=zone, name=name, type="SOA", managed=True, serial=serial,
                             records=[f"ns1.example.net. evil.example.com. {serial} 3600 600 86400 3600"])
    RecordSet.objects.create(zone=zone, name=name, type="NS", managed=True, serial=serial, records=["ns1.example.net."])
    return zone


def ask(minidns, name, rdtype, tcp=False):
    query = dns.message.make_query(name, rdtype)
    return [dns.message.from_wire(w, xfr=rdtype == "AXFR", origin=None)
            for w in minidns.handle(query.to_wire(), ("127.0.0.1", 40000), tcp)]


def catalog_members(minidns) -> dict[str, str]:
    (message,) = ask(minidns, CATALOG, "AXFR", tcp=True)
    assert message.rcode() == dns.rcode.NOERROR
    assert message.answer[0].name.to_text() == CATALOG and message.answer[0].rdtype == dns.rdatatype.SOA
    return {rr.name.to_text(): rr[0].to_text() for rr in message.answer if rr.rdtype == dns.rdatatype.PTR}


@pytest.mark.parametrize("name", COLLIDING)
def test_minidns_answers_catalog_names_from_the_catalog_despite_a_colliding_zone_row(pool, name):
    members = [writes.create_zone(project_id="p1", name=f"m{i}.example.com.", email="a@example.com")
               for i in range(2)]
    smuggled = smuggle_zone(name, pool)
    minidns = MiniDNS()
    catalog_serial = Pool.objects.get(id=pool.id).catalog_serial

    (soa,) = ask(minidns, CATALOG, "SOA")
    assert soa.rcode() == dns.rcode.NOERROR and soa.answer[0][0].serial == catalog_serial
    # A row at or below the catalog is never served, so the catalog does not list it; one above it is a zone.
    listed = {m.name for m in members} | ({name} if not name.endswith(CATALOG) else set())
    assert set(catalog_members(minidns).values()) == listed
    assert (f"{smuggled.id.hex}.zones.{CATALOG}" in catalog_members(minidns)) == (name in listed)
    (version,) = ask(minidns, f"version.{CATALOG}", "TXT")
    assert [rr.to_text() for rr in version.answer[0]] == ['"2"']
    # A name below the catalog is the catalog's, whatever zone row claims it (or a name above it).
    below = f"www.{name}" if name.endswith(CATALOG) else f"www.{CATALOG}"
    (answer,) = ask(minidns, below, "SOA")
    assert answer.rcode() == dns.rcode.NXDOMAIN and answer.authority[0].name.to_text() == CATALOG
    assert answer.authority[0][0].serial == catalog_serial
    if name != CATALOG and name.endswith(CATALOG):  # the row's own apex is no zone apex either
        (transfer,) = ask(minidns, name, "AXFR", tcp=True)
        assert transfer.rcode() == dns.rcode.REFUSED


def test_a_zone_enclosing_the_catalog_still_answers_its_own_names(pool):
    smuggle_zone("dnsctl.test.", pool)
    (soa,) = ask(MiniDNS(), "www.dnsctl.test.", "SOA")
    assert soa.authority[0].name.to_text() == "dnsctl.test." and soa.authority[0][0].serial == 4242


def test_a_catalog_is_found_in_one_query(pool, django_assert_num_queries):
    smuggle_zone(CATALOG, pool)
    from workers.minidns import DatabaseZoneSource

    with django_assert_num_queries(1):
        found = DatabaseZoneSource().find([f"a.{CATALOG}", CATALOG, "dnsctl.test.", "test."])
    assert found == {CATALOG: (("catalog", pool.id), Pool.objects.get(id=pool.id).catalog_serial)}


# --- public suffixes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["co.uk.", "github.io.", "kawasaki.jp.", "x.kawasaki.jp.", "s3.amazonaws.com."])
def test_members_cannot_take_a_public_suffix(pool, name):
    assert "public suffix" in refused(name)
    assert nothing_written()


@pytest.mark.parametrize("name", ["x.co.uk.", "example.github.io.", "city.kawasaki.jp.", "example.com."])
def test_names_below_a_public_suffix_are_free(pool, name):
    assert writes.create_zone(project_id="p1", name=name, email="a@example.com").name == name


def test_admins_may_host_a_public_suffix(member, admin):
    assert_400(create(member, "co.uk."), "name")
    assert create(admin, "co.uk.").status_code == 202
    assert Zone.objects.get().name == "co.uk."


def test_the_public_suffix_list_needs_no_network(pool, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    for name in ("socket", "create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, no_network)
    reserved._public_suffixes.cache_clear()
    try:
        with pytest.raises(ValidationError, match="public suffix"):
            reserved.check_zone_name("github.io.", admin=False)
        reserved.check_zone_name("example.github.io.", admin=False)
    finally:
        reserved._public_suffixes.cache_clear()


# --- TLDs --------------------------------------------------------------------------------------------------


def test_without_tlds_any_name_goes(pool):
    assert writes.create_zone(project_id="p1", name="example.whatever.", email="a@example.com")


@pytest.mark.parametrize("admin", [False, True])
def test_with_tlds_a_zone_sits_strictly_below_one(pool, admin):
    reserved.save_tld(None, name="com")
    reserved.save_tld(None, name="co.uk")
    assert "not under a TLD" in refused("example.org.", admin=admin)
    assert "is a TLD" in refused("co.uk.", admin=admin)
    assert nothing_written()
    for name in ("example.com.", "a.b.example.com.", "example.co.uk."):
        writes.create_zone(project_id="p1", name=name, email="a@example.com", admin=admin)
    assert Zone.objects.count() == 3


def test_tld_crud(admin):
    response = admin.post("/v2/tlds", {"name": "COM", "description": "commercial"}, format="json")
    assert response.status_code == 201, response.content
    tld = response.json()
    assert set(tld) == {"id", "name", "description", "created_at", "updated_at", "links"}
    assert (tld["name"], tld["description"]) == ("com", "commercial")
    assert response["Location"] == tld["links"]["self"] and tld["links"]["self"].endswith(f"/v2/tlds/{tld['id']}")
    admin.post("/v2/tlds", {"name": "net"}, format="json")

    listed = admin.get("/v2/tlds").json()
    assert set(listed) == {"tlds", "links", "metadata"} and listed["metadata"]["total_count"] == 2
    assert [t["name"] for t in listed["tlds"]] == ["com", "net"]
    assert [t["name"] for t in admin.get("/v2/tlds?name=net").json()["tlds"]] == ["net"]
    assert [t["name"] for t in admin.get("/v2/tlds?name=c*").json()["tlds"]] == ["com"]
    assert admin.get(f"/v2/tlds/{tld['id']}").json()["name"] == "com"

    changed = admin.patch(f"/v2/tlds/{tld['id']}", {"description": None}, format="json")
    assert changed.status_code == 200 and changed.json()["description"] == ""
    renamed = admin.patch(f"/v2/tlds/{tld['id']}", {"name": "org"}, format="json").json()
    assert (renamed["name"], renamed["id"]) == ("org", tld["id"])

    assert admin.delete(f"/v2/tlds/{tld['id']}").status_code == 204
    assert list(Tld.objects.values_list("name", flat=True)) == ["net"]
    missing = admin.get(f"/v2/tlds/{tld['id']}")
    assert missing.status_code == 404 and missing.json()["type"] == "tld_not_found"
    assert tld["id"] not in missing.content.decode()


def test_duplicate_tld_is_a_409(admin):
    assert admin.post("/v2/tlds", {"name": "com"}, format="json").status_code == 201
    other = admin.post("/v2/tlds", {"name": "net"}, format="json").json()
    for response in (admin.post("/v2/tlds", {"name": "Com"}, format="json"),
                     admin.patch(f"/v2/tlds/{other['id']}", {"name": "com"}, format="json")):
        assert response.status_code == 409 and response.json()["type"] == "duplicate_tld", response.content
    assert sorted(Tld.objects.values_list("name", flat=True)) == ["com", "net"]


@pytest.mark.parametrize("body", [{"name": "com."}, {"name": ""}, {"name": 123}, {"name": None}, {"name": "a..b"},
                                  {"name": "-com"}, {"name": "com-"}, {"name": "x" * 64}, {"name": "bücher"},
                                  {"name": "a b"}, {"name": "*"}, {"name": ("a" * 60 + ".") * 5 + "com"}, {},
                                  {"name": "com", "description": "d" * 161}, {"name": "com", "description": 5},
                                  {"name": "com", "id": "x"}, {"name": "com", "colour": "red"}])
def test_bad_tlds_are_a_400_and_save_nothing(admin, body):
    response = admin.post("/v2/tlds", body, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()["errors"]) & {"name", "description", "id", "colour"}
    assert not Tld.objects.exists()


# --- blacklists -------------------------------------------------------------------------------------------


def test_blacklisted_names_are_refused_to_members_without_the_pattern(member, admin):
    reserved.save_blacklist(None, pattern=r"(^|\.)bank\.example\.$")
    for name in ("bank.example.", "www.bank.example."):
        body = assert_400(create(member, name), "name")
        assert "bank\\" not in str(body) and "^" not in str(body)
    assert nothing_written()
    assert create(member, "notabank.example.").status_code == 202
    assert create(admin, "bank.example.").status_code == 202
    assert sorted(Zone.objects.values_list("name", flat=True)) == ["bank.example.", "notabank.example."]


def test_a_pathological_pattern_refuses_instead_of_hanging(pool):
    reserved.save_blacklist(None, pattern=PATHOLOGICAL)
    started = time.monotonic()
    assert "reserved" in refused("a" * 60 + ".example.")
    assert time.monotonic() - started < 5
    assert nothing_written()


def test_a_pattern_stored_behind_the_apis_back_that_does_not_compile_refuses(pool):
    Blacklist.objects.create(pattern="(")
    assert "reserved" in refused("anything.example.")


def test_blacklist_crud(admin):
    response = admin.post("/v2/blacklists", {"pattern": r"^evil\.", "description": "no"}, format="json")
    assert response.status_code == 201, response.content
    item = response.json()
    assert set(item) == {"id", "pattern", "description", "created_at", "updated_at", "links"}
    assert response["Location"] == item["links"]["self"]
    admin.post("/v2/blacklists", {"pattern": "bad"}, format="json")
    listed = admin.get("/v2/blacklists").json()
    assert set(listed) == {"blacklists", "links", "metadata"}
    assert [b["pattern"] for b in listed["blacklists"]] == [r"^evil\.", "bad"]
    assert [b["pattern"] for b in admin.get("/v2/blacklists?pattern=bad").json()["blacklists"]] == ["bad"]
    assert admin.get(f"/v2/blacklists/{item['id']}").json()["pattern"] == r"^evil\."
    changed = admin.patch(f"/v2/blacklists/{item['id']}", {"pattern": "^worse\\."}, format="json")
    assert changed.status_code == 200 and changed.json()["pattern"] == "^worse\\."
    assert admin.delete(f"/v2/blacklists/{item['id']}").status_code == 204
    assert list(Blacklist.objects.values_list("pattern", flat=True)) == ["bad"]
    missing = admin.delete(f"/v2/blacklists/{item['id']}")
    assert missing.status_code == 404 and missing.json()["type"] == "blacklist_not_found"


def test_duplicate_blacklist_is_a_409(admin):
    admin.post("/v2/blacklists", {"pattern": "a"}, format="json")
    response = admin.post("/v2/blacklists", {"pattern": "a"}, format="json")
    assert response.status_code == 409 and response.json()["type"] == "duplicate_blacklist"
    assert Blacklist.objects.count() == 1


@pytest.mark.parametrize("body", [{"pattern": "("}, {"pattern": "[a-"}, {"pattern": "a{2,1}"}, {"pattern": ""},
                                  {"pattern": "x" * 256}, {"pattern": 7}, {"pattern": None}, {},
                                  {"pattern": "a", "description": "d" * 161}, {"pattern": "a", "links": {}}])
def test_bad_blacklists_are_a_400_and_save_nothing(admin, body):
    response = admin.post("/v2/blacklists", body, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()["errors"]) & {"pattern", "description", "links"}
    assert not Blacklist.objects.exists()


def test_a_bad_patch_changes_nothing(admin):
    item = reserved.save_blacklist(None, pattern="a", description="keep")
    response = admin.patch(f"/v2/blacklists/{item.id}", {"pattern": "(", "description": "new"}, format="json")
    assert_400(response, "pattern")
    item.refresh_from_db()
    assert (item.pattern, item.description) == ("a", "keep")


# --- only admins -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("collection, body", [("tlds", {"name": "org"}), ("blacklists", {"pattern": "x"})])
def test_every_tld_and_blacklist_call_is_403_for_non_admins(member, reader, collection, body):
    tld, blacklist = reserved.save_tld(None, name="com"), reserved.save_blacklist(None, pattern="evil")
    item = tld if collection == "tlds" else blacklist
    for api in (member, reader):
        for response in (api.get(f"/v2/{collection}"), api.post(f"/v2/{collection}", body, format="json"),
                         api.get(f"/v2/{collection}/{item.id}"),
                         api.patch(f"/v2/{collection}/{item.id}", body, format="json"),
                         api.delete(f"/v2/{collection}/{item.id}")):
            assert response.status_code == 403 and response.json()["type"] == "forbidden", response.content
            assert "evil" not in response.content.decode()
    assert APIClient().get(f"/v2/{collection}").status_code == 401
    assert [(t.name, t.description) for t in Tld.objects.all()] == [("com", "")]
    assert [(b.pattern, b.description) for b in Blacklist.objects.all()] == [("evil", "")]


@pytest.mark.parametrize("collection, key, values", [("tlds", "name", ["net", "com", "org", "co.uk", "de"]),
                                                      ("blacklists", "pattern", ["^b", "^a", "^d", "^c", "^e"])])
def test_tlds_and_blacklists_sort_by_designates_keys(admin, collection, key, values):
    for value in values:
        assert admin.post(f"/v2/{collection}", {key: value}, format="json").status_code == 201
    for direction, expected in (("asc", sorted(values)), ("desc", sorted(values, reverse=True))):
        seen, url = [], f"/v2/{collection}?sort_key={key}&sort_dir={direction}&limit=2"
        while url:
            body = admin.get(url).json()
            seen += [item[key] for item in body[collection]]
            url = body["links"].get("next", "").replace("http://testserver", "")
        assert seen == expected
    assert admin.get(f"/v2/{collection}?sort_key=description").status_code == 400


# --- the Django admin --------------------------------------------------------------------------------------


@pytest.fixture
def site(client):
    client.force_login(get_user_model().objects.create_superuser("staff", "s@example.com", "pw"))
    return client


def test_the_django_admin_edits_tlds_and_blacklists_through_the_same_rules(site):
    assert site.post(reverse("admin:zones_tld_add"), {"name": "NET", "description": ""}).status_code == 302
    assert list(Tld.objects.values_list("name", flat=True)) == ["net"]
    for bad in ("net.", "bücher", "net"):  # trailing dot, not A-label, duplicate
        response = site.post(reverse("admin:zones_tld_add"), {"name": bad, "description": ""})
        assert response.status_code == 200 and "errorlist" in response.content.decode(), bad
    assert Tld.objects.count() == 1

    assert site.post(reverse("admin:zones_blacklist_add"), {"pattern": "^x", "description": ""}).status_code == 302
    response = site.post(reverse("admin:zones_blacklist_add"), {"pattern": "(", "description": ""})
    assert response.status_code == 200 and "not a valid regular expression" in response.content.decode()
    assert list(Blacklist.objects.values_list("pattern", flat=True)) == ["^x"]
    item = Blacklist.objects.get()
    assert site.post(reverse("admin:zones_blacklist_change", args=[item.id]),
                     {"pattern": "^y", "description": "edited"}).status_code == 302
    item.refresh_from_db()
    assert (item.pattern, item.description) == ("^y", "edited")


# --- python-designateclient ---------------------------------------------------------------------------------


@pytest.fixture
def designate(live_server):
    from designateclient.v2 import client as designate
    from keystoneauth1 import session
    from keystoneauth1.token_endpoint import Token

    key = accounts.issue_token(accounts.api_user("root", "ops", "admin"))
    return designate.Client(session=session.Session(auth=Token(live_server.url + "/v2", key)), timeout=10)


@pytest.mark.django_db(transaction=True)
def test_designateclient_tlds(designate):
    from designateclient import exceptions

    tld = designate.tlds.create("com", description="commercial")
    assert (tld["name"], tld["description"]) == ("com", "commercial")
    assert [t["name"] for t in designate.tlds.list()] == ["com"]
    assert designate.tlds.get("com")["id"] == tld["id"]  # by name: a list with ?name=
    assert designate.tlds.get(tld["id"])["name"] == "com"
    assert designate.tlds.update("com", {"description": "changed"})["description"] == "changed"
    with pytest.raises(exceptions.Conflict) as conflict:
        designate.tlds.create("com")
    assert conflict.value.type == "duplicate_tld"
    with pytest.raises(exceptions.BadRequest):
        designate.tlds.create("com.")
    designate.tlds.delete("com")
    assert designate.tlds.list() == [] and not Tld.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_designateclient_blacklists(designate):
    from designateclient import exceptions

    item = designate.blacklists.create(r"^evil\.", description="no")
    assert (item["pattern"], item["description"]) == (r"^evil\.", "no")
    assert [b["id"] for b in designate.blacklists.list()] == [item["id"]]
    assert designate.blacklists.get(item["id"])["pattern"] == r"^evil\."
    assert designate.blacklists.update(item["id"], {"pattern": r"^worse\."})["pattern"] == r"^worse\."
    with pytest.raises(exceptions.Conflict) as conflict:
        designate.blacklists.create(r"^worse\.")
    assert conflict.value.type == "duplicate_blacklist"
    with pytest.raises(exceptions.BadRequest):
        designate.blacklists.create("(")
    designate.blacklists.delete(item["id"])
    assert designate.blacklists.list() == [] and not Blacklist.objects.exists()
