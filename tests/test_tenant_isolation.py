"""What a hostile tenant would try: every endpoint of the API, every method it takes, called by
members of other projects (and another member of the same project, for what is personal) with the
ids of alice's objects. Each answer is a 403 or a 404 that names none of her objects, and nothing
in the database changes. The routes come from the URL resolver, so a new endpoint is tried too.
"""
import pytest
from django.urls import reverse

from tests.test_query_params import api_routes
from zones import accounts, quotas, reserved
from zones.services import pools, writes
from zones.models import (
    ApiToken,
    Blacklist,
    OutboxEvent,
    Pool,
    PoolNameserver,
    PoolTarget,
    Quota,
    RecordSet,
    Tld,
    Zone,
)

pytestmark = pytest.mark.django_db

SECRET = "c2VjcmV0LXJuZGMta2V5LXZhbHVl"
# A well-formed body for each write, so a refusal is about who asks, not about what was sent.
BODIES = {
    ("zone-list", "post"): {"name": "sub.alice.example.", "email": "a@example.com"},
    ("zone-detail", "patch"): {"ttl": 60, "description": "mine now"},
    ("recordset-list", "post"): {"name": "evil", "type": "A", "records": ["192.0.2.66"]},
    ("recordset-detail", "put"): {"records": ["192.0.2.66"]},
    ("pool-detail", "patch"): {"description": "mine now"},
    ("pool-list", "post"): {"name": "my-pool"},
    ("target-sync", "post"): {"since": "2020-01-01T00:00:00Z"},
    ("quota-detail", "patch"): {"zones": 100000},
    ("tld-detail", "patch"): {"description": "mine now"},
    ("tld-list", "post"): {"name": "evil"},
    ("blacklist-detail", "patch"): {"description": "mine now"},
    ("blacklist-list", "post"): {"pattern": "^x"},
    ("token-list", "post"): {"description": "x"},
}


@pytest.fixture
def alice_world(db):
    """Alice's objects (project p1), a pool open only to p1 with real-looking servers, and the rest."""
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    pool = pools.save_pool(
        None, name="alice-only", ns_records=[{"hostname": "ns1.example.net."}], allowed_projects=["p1"],
        targets=[{"name": "bind-secret", "type": "bind9", "masters": ["127.0.0.1:5354"],
                  "options": {"rndc_host": "198.51.100.7", "rndc_port": 9531, "rndc_key_secret": SECRET}}],
        nameservers=[{"host": "198.51.100.8", "port": 5300, "name": "ns1.example.net."}])
    alice = accounts.api_user("alice", "p1")
    zone = writes.create_zone(project_id="p1", name="alice.example.", email="hostmaster@alice.example",
                                pool_id=pool.id)
    recordset = writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    alice_key = accounts.issue_token(alice)
    quotas.set_quotas("p1", {"zones": 7})
    ids = {"zone_id": zone.id, "recordset_id": recordset.id, "pool_id": pool.id, "project_id": "p1",
           "target_id": pool.targets.get().id, "token_id": accounts.find_token(alice_key).id,
           "tld_id": reserved.save_tld(None, name="example").id,
           "blacklist_id": reserved.save_blacklist(None, pattern=r"^casino\.").id}
    secrets = [str(v) for v in ids.values()] + ["alice.example", "www", "192.0.2.1", "198.51.100", "bind-secret"]
    return {"ids": {k: str(v) for k, v in ids.items()}, "secrets": secrets}


def client_for(username, project):
    from rest_framework.test import APIClient

    return APIClient(HTTP_X_AUTH_TOKEN=accounts.issue_token(accounts.api_user(username, project)))


def snapshot():
    """Every row an API call could change."""
    return {model.__name__: sorted(map(repr, model.objects.values())) for model in
            (Zone, RecordSet, Pool, PoolTarget, PoolNameserver, OutboxEvent, Quota, ApiToken, Tld, Blacklist)}


def intruders():
    """bob and carol are members of other projects; dave is a member of alice's own project."""
    return {"bob": client_for("bob", "p2"), "carol": client_for("carol", "p3"), "dave": client_for("dave", "p1")}


ROUTES_WITH_IDS = [(route, methods) for route, _, methods in api_routes() if route.pattern.converters]


@pytest.mark.parametrize("route, methods", ROUTES_WITH_IDS, ids=lambda v: getattr(v, "name", None) or "")
def test_other_projects_reach_nothing_of_alices(alice_world, route, methods):
    path = reverse(f"api:{route.name}", kwargs={k: alice_world["ids"][k] for k in route.pattern.converters})
    clients = intruders()
    # dave shares alice's project: her zones are his to see, but her token and nothing else personal is.
    attackers = ["bob", "carol"] + (["dave"] if route.name == "token-detail" else [])
    before = snapshot()
    for name in attackers:
        for method in methods:
            response = clients[name].generic(method.upper(), path, data=_json(BODIES.get((route.name, method))),
                                             content_type="application/json")
            assert response.status_code in (403, 404), (name, method, path, response.status_code, response.content)
            body = response.content.decode()
            for secret in alice_world["secrets"]:
                assert secret not in body, (name, method, path, secret, body)
    assert snapshot() == before


@pytest.mark.parametrize("path", ["/v2/zones", "/v2/recordsets", "/v2/pools", "/v2/tokens"])
def test_lists_show_other_projects_nothing(alice_world, path):
    for name, client in intruders().items():
        # alice's project-mate sees the project's zones and pools, by design, but not her tokens.
        secrets = alice_world["secrets"] if name != "dave" else [alice_world["ids"]["token_id"]]
        body = client.get(path).content.decode()
        for secret in secrets:
            assert secret not in body, (name, path, secret)


def test_creating_inside_or_around_alices_zone_is_refused_without_naming_it(alice_world):
    bob = intruders()["bob"]
    before = snapshot()
    for name in ("alice.example.", "sub.alice.example.", "deep.sub.alice.example."):
        response = bob.post("/v2/zones", {"name": name, "email": "a@example.com"}, format="json")
        assert response.status_code in (400, 409), response.content
    assert snapshot() == before


def _json(body):
    import json

    return json.dumps(body) if body is not None else ""
