"""Queries per API write, pinned: each is a PostgreSQL round trip the API pays on every change
(bench/api_writes.py measures what they cost). A new query on these paths fails here; if it is
needed, raise the number with the reason in the commit.

Counted as production runs them: the caller's token already cached, the process's copies of TLDs,
blacklists, pools and quotas made (zones.cached: a process reads them again only after they
change), the transaction's own BEGIN/COMMIT included (here a SAVEPOINT/RELEASE pair: the test runs
inside a transaction).
"""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.test_api import client_for, make_user
from zones.services import pools

pytestmark = pytest.mark.django_db

# What each write reads and writes, in order (BEGIN and COMMIT not listed).
EXPECTED = {
    # the project's lock with its quota limits and the config version (reserved names and the default
    # pool then come from the process's copies); its zone count; the name free (one query for the
    # three ways); the zone; SOA and NS; the journal with its outbox event (one statement).
    "create zone": 6,
    # the zone, locked in the caller's scope, with the config version (quota limits and pool NS then
    # come from the copies); names taken at www with the managed RRsets; the zone; the recordset; the
    # SOA; the journal with its outbox event.
    "create recordset": 6,
    # the zone, locked in the caller's scope; the recordset with the managed RRsets; the zone; the SOA;
    # the journal with its outbox event; the recordset.
    "update recordset": 6,
    # the zone, locked in the caller's scope; the recordset with the managed RRsets; the zone; its
    # delete; the SOA; the journal with its outbox event.
    "delete recordset": 6,
    # the zone, locked in the caller's scope; the zone; the journal with its outbox event.
    "delete zone": 3,
}


@pytest.fixture
def alice():
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1},
                                                      {"hostname": "ns2.example.net.", "priority": 2}])
    client = client_for(make_user("alice", "p1"))
    assert client.get("/v2/zones").status_code == 200  # the token is in the cache, as for a client's next call
    # and the process's copies (zones.cached) are made, as for any call but the first after a change
    zid = client.post("/v2/zones", {"name": "warm.test.", "email": "a@a.test"}, format="json").json()["id"]
    assert client.post(f"/v2/zones/{zid}/recordsets", {"name": "www", "type": "A", "records": ["192.0.2.1"]},
                       format="json").status_code == 202
    return client


def counted(label, call, status=202):
    with CaptureQueriesContext(connection) as ctx:
        response = call()
    assert response.status_code == status, response.content
    sql = [q["sql"] for q in ctx.captured_queries]
    assert len(sql) == EXPECTED[label] + 2, f"{label}: {len(sql)} queries:\n" + "\n".join(s[:160] for s in sql)
    return response.json()


def test_writes_take_the_pinned_number_of_queries(alice):
    zone = counted("create zone", lambda: alice.post("/v2/zones", {"name": "a.test.", "email": "a@a.test"},
                                                     format="json"))
    zid = zone["id"]
    rs = counted("create recordset", lambda: alice.post(f"/v2/zones/{zid}/recordsets",
                                                        {"name": "www", "type": "A", "records": ["192.0.2.1"]},
                                                        format="json"))
    updated = counted("update recordset", lambda: alice.put(f"/v2/zones/{zid}/recordsets/{rs['id']}",
                                                            {"records": ["192.0.2.2"]}, format="json"))
    assert updated["records"] == ["192.0.2.2"] and updated["zone_name"] == "a.test."
    counted("delete recordset", lambda: alice.delete(f"/v2/zones/{zid}/recordsets/{rs['id']}"))
    counted("delete zone", lambda: alice.delete(f"/v2/zones/{zid}"))


def test_another_projects_zone_is_a_404_from_the_same_locking_query(alice):
    """The scope is in the write's own query: no separate visibility read, and still nothing to see."""
    zid = alice.post("/v2/zones", {"name": "b.test.", "email": "a@b.test"}, format="json").json()["id"]
    rs = alice.post(f"/v2/zones/{zid}/recordsets", {"name": "www", "type": "A", "records": ["192.0.2.1"]},
                    format="json").json()
    bob = client_for(make_user("bob", "p2"))
    for call in (lambda: bob.put(f"/v2/zones/{zid}/recordsets/{rs['id']}", {"records": ["192.0.2.9"]},
                                 format="json"),
                 lambda: bob.delete(f"/v2/zones/{zid}/recordsets/{rs['id']}"),
                 lambda: bob.post(f"/v2/zones/{zid}/recordsets", {"name": "x", "type": "A",
                                                                  "records": ["192.0.2.9"]}, format="json"),
                 lambda: bob.patch(f"/v2/zones/{zid}", {"ttl": 600}, format="json"),
                 lambda: bob.delete(f"/v2/zones/{zid}")):
        response = call()
        assert response.status_code == 404 and response.json()["type"] == "zone_not_found", response.content
    assert alice.get(f"/v2/zones/{zid}/recordsets/{rs['id']}").json()["records"] == ["192.0.2.1"]
    assert alice.get(f"/v2/zones/{zid}").json()["action"] == "CREATE"


def test_the_one_name_query_still_tells_taken_from_inside_from_around(alice):
    """Shortest names first: the name itself and its parents are seen before the zones below it."""
    for name in ("r.test.", "a.r.test.", "b.r.test.", "c.r.test.", "d.r.test.", "a.w.test.", "b.w.test.",
                 "c.w.test."):
        assert alice.post("/v2/zones", {"name": name, "email": "a@r.test"}, format="json").status_code == 202
    bob = client_for(make_user("bob", "p2"))
    taken = bob.post("/v2/zones", {"name": "r.test.", "email": "b@r.test"}, format="json")
    assert taken.status_code == 409 and taken.json()["type"] == "duplicate_zone", taken.content
    inside = bob.post("/v2/zones", {"name": "x.a.r.test.", "email": "b@r.test"}, format="json")
    assert inside.status_code == 400 and "inside a zone" in inside.content.decode(), inside.content
    around = bob.post("/v2/zones", {"name": "w.test.", "email": "b@r.test"}, format="json")
    assert around.status_code == 400 and "would contain a zone" in around.content.decode(), around.content
    assert bob.post("/v2/zones", {"name": "s.test.", "email": "b@r.test"}, format="json").status_code == 202


def test_the_name_below_check_takes_like_wildcards_literally(alice):
    """The zones below a name are found by a LIKE prefix of the reversed name: `_` and `%` in a name
    match only themselves."""
    assert alice.post("/v2/zones", {"name": "x.axb.test.", "email": "a@r.test"}, format="json").status_code == 202
    bob = client_for(make_user("bob", "p2"))
    assert bob.post("/v2/zones", {"name": "a_b.test.", "email": "b@r.test"}, format="json").status_code == 202
    assert alice.post("/v2/zones", {"name": "y.a_b.test.", "email": "a@r.test"}, format="json").status_code == 400
