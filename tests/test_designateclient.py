"""python-designateclient, as a library, against the real API over HTTP (pytest-django's live_server).

keystoneauth's token_endpoint.Token returns its endpoint as is for every request, so the endpoint
is the API's `/v2` root; designateclient then calls `/zones`, `/zones/{id}/recordsets`, ... below it
(no trailing slash) with `X-Auth-Token`.
"""
import pytest
from designateclient import exceptions
from designateclient.v2 import client as designate
from keystoneauth1 import session
from keystoneauth1.token_endpoint import Token

from zones import accounts
from zones.models import RecordSet, Zone
from zones.services import pools, writes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dns(live_server, monkeypatch):
    monkeypatch.setattr(writes, "_enqueue", lambda zone: None)  # no worker runs here
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    key = accounts.issue_token(accounts.api_user("alice", "p1"))
    auth = Token(live_server.url + "/v2", key)
    return designate.Client(session=session.Session(auth=auth), timeout=10)


def test_zones_and_recordsets_through_designateclient(dns):
    zone = dns.zones.create("example.com.", email="hostmaster@example.com", ttl=600, description="made by the client")
    assert (zone["name"], zone["status"], zone["action"], zone["type"]) == ("example.com.", "PENDING", "CREATE",
                                                                             "PRIMARY")
    assert [z["id"] for z in dns.zones.list()] == [zone["id"]]
    assert dns.zones.get(zone["id"])["ttl"] == 600
    assert dns.zones.get("example.com.")["id"] == zone["id"]  # by name: a list with ?name=
    assert dns.nameservers.list(zone["id"]) == [{"hostname": "ns1.example.net.", "priority": 1}]

    updated = dns.zones.update("example.com.", {"ttl": 300, "description": "changed"})
    assert (updated["ttl"], updated["description"]) == (300, "changed")
    assert updated["serial"] > zone["serial"]

    rs = dns.recordsets.create(zone["id"], "www", "A", ["192.0.2.1", "192.0.2.2"], ttl=120)
    assert (rs["name"], rs["records"], rs["ttl"]) == ("www.example.com.", ["192.0.2.1", "192.0.2.2"], 120)
    assert sorted(r["type"] for r in dns.recordsets.list(zone["id"])) == ["A", "NS", "SOA"]
    assert dns.recordsets.get(zone["id"], rs["id"])["id"] == rs["id"]
    assert dns.recordsets.get("example.com.", "www.example.com.")["id"] == rs["id"]  # both by name
    assert [r["id"] for r in dns.recordsets.list_all_zones(criterion={"type": "A"})] == [rs["id"]]

    changed = dns.recordsets.update(zone["id"], "www.example.com.", {"records": ["192.0.2.9"]})
    assert (changed["records"], changed["action"]) == (["192.0.2.9"], "UPDATE")

    deleted = dns.recordsets.delete(zone["id"], rs["id"])
    assert (deleted["id"], deleted["action"]) == (rs["id"], "DELETE")
    assert not RecordSet.objects.filter(id=rs["id"]).exists()

    gone = dns.zones.delete("example.com.")
    assert (gone["action"], gone["status"]) == ("DELETE", "PENDING")
    assert Zone.objects.get(id=zone["id"]).action == "DELETE"


def test_list_pages_are_followed_by_designateclient(dns):
    from designateclient.v2.utils import get_all

    names = [f"z{i}.example." for i in range(5)]
    for name in names:
        dns.zones.create(name, email="a@example.com")
    first = dns.zones.list(limit=2)
    assert len(first) == 2 and first.next_page and first.next_link_criterion["limit"] == "2"
    assert [z["name"] for z in get_all(dns.zones.list, criterion={"limit": 2})] == names


def test_errors_surface_as_designateclient_exceptions(dns):
    with pytest.raises(exceptions.BadRequest) as bad:
        dns.zones.create("no-trailing-dot.com", email="a@example.com")
    assert bad.value.code == 400 and bad.value.type == "invalid_object"
    assert "name" in bad.value.errors and "end with a dot" in bad.value.message

    zone = dns.zones.create("example.com.", email="a@example.com")
    with pytest.raises(exceptions.BadRequest) as bad:
        dns.recordsets.create(zone["id"], "mx", "MX", ["mail.example.com."])
    assert "records" in bad.value.errors

    with pytest.raises(exceptions.BadRequest):
        dns.zones.create("other.com.", type_="SECONDARY", masters=["192.0.2.1"])

    with pytest.raises(exceptions.NotFound) as missing:
        dns.zones.get("0b1f6d3e-64b6-4a55-9a6b-2a4c3c2d6f00")
    assert missing.value.type == "zone_not_found"
    with pytest.raises(exceptions.NotFound):
        dns.zones.get("nonesuch.com.")  # resolving the name finds nothing
    assert Zone.objects.count() == 1
