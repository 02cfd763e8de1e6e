"""End to end on real parts: the REST API, PostgreSQL, Redis, a Celery worker, MiniDNS and two BIND9s."""
import uuid

import dns.message
import dns.query
import dns.rcode
import pytest
from rest_framework.test import APIClient

from tests.conftest import needs_named, wait_until
from workers.dnsclient import query_soa_serial
from zones import accounts
from zones.models import Zone
from zones.services import pools

pytestmark = [needs_named, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pool_factory(binds, minidns_address, worker):
    def make(threshold=100):
        host, port = minidns_address
        return pools.save_pool(
            None, name="default", threshold_percentage=threshold,
            ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
            targets=[{"name": f"bind-{i}", "type": "bind9", "options": b.backend_options,
                      "masters": [f"{host}:{port}"]} for i, b in enumerate(binds)],
            nameservers=[{"host": b.host, "port": b.port, "name": f"ns{i + 1}.example.net."}
                         for i, b in enumerate(binds)],
        )
    return make


@pytest.fixture
def api(django_user_model):
    user = accounts.api_user("tenant", "project-1")
    client = APIClient()
    client.credentials(HTTP_X_AUTH_TOKEN=accounts.issue_token(user))
    return client


def new_name():
    return f"z{uuid.uuid4().hex[:10]}.example.com."


def wait_status(zone_id, *statuses, timeout=40):
    return wait_until(lambda: (z := Zone.objects.get(id=zone_id)).status in statuses and z,
                      timeout=timeout, message=f"zone {zone_id} to be {statuses}")


def create_zone(api, name):
    response = api.post("/v2/zones", {"name": name, "email": "admin@example.com"}, format="json")
    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["action"]) == ("PENDING", "CREATE")
    return response.json()["id"]


def test_create_update_delete_on_two_bind9(api, binds, pool_factory):
    pool_factory()
    name = new_name()
    zone_id = create_zone(api, name)
    zone = wait_status(zone_id, "ACTIVE", "ERROR")
    assert (zone.status, zone.action) == ("ACTIVE", "NONE"), zone.reason
    for bind in binds:
        assert query_soa_serial(name, bind.host, bind.port) == zone.serial

    response = api.post(f"/v2/zones/{zone_id}/recordsets",
                        {"name": f"www.{name}", "type": "A", "records": ["192.0.2.10", "192.0.2.11"]}, format="json")
    assert response.status_code == 202, response.content
    zone = wait_until(lambda: (z := Zone.objects.get(id=zone_id)).status == "ACTIVE" and z.action == "NONE" and z,
                      timeout=40, message="recordset change to be ACTIVE")
    for bind in binds:
        answer = dns.query.udp(dns.message.make_query(f"www.{name}", "A"), bind.host, port=bind.port, timeout=2)
        assert sorted(r.to_text() for r in answer.answer[0]) == ["192.0.2.10", "192.0.2.11"]
        assert query_soa_serial(name, bind.host, bind.port) == zone.serial
    propagation = api.get(f"/v2/zones/{zone_id}/propagation").json()
    assert all(ns["serial"] == zone.serial and ns["in_sync"] for ns in propagation["nameservers"])
    assert propagation["provisioning"] == {"servers": 2, "done": 2, "failed": 0}

    assert api.delete(f"/v2/zones/{zone_id}").status_code == 202
    zone = wait_status(zone_id, "DELETED", "ERROR")
    assert zone.status == "DELETED", zone.reason
    for bind in binds:
        response = dns.query.udp(dns.message.make_query(name, "SOA"), bind.host, port=bind.port, timeout=2)
        assert response.rcode() == dns.rcode.REFUSED


@pytest.fixture
def second_bind_down(binds):
    binds[1].stop(keep_dir=True)
    yield binds[1]
    binds[1].start()


def test_target_down_with_threshold_100_is_error(api, pool_factory, second_bind_down):
    pool_factory(threshold=100)
    zone_id = create_zone(api, new_name())
    zone = wait_status(zone_id, "ACTIVE", "ERROR")
    assert zone.status == "ERROR" and zone.action == "CREATE"
    assert "1 of 2 targets" in zone.reason and "bind-1" in zone.reason
    body = api.get(f"/v2/zones/{zone_id}").json()  # the tenant's view: no server names or messages
    assert body["status"] == "ERROR" and body["reason"] == "CREATE succeeded on 1 of 2 servers, 100% needed."


def test_target_down_with_threshold_50_is_active(api, binds, pool_factory, second_bind_down):
    pool_factory(threshold=50)
    name = new_name()
    zone_id = create_zone(api, name)
    zone = wait_status(zone_id, "ACTIVE", "ERROR")
    assert zone.status == "ACTIVE", zone.reason
    assert query_soa_serial(name, binds[0].host, binds[0].port) == zone.serial
    lagging = [ns for ns in api.get(f"/v2/zones/{zone_id}/propagation").json()["nameservers"] if not ns["in_sync"]]
    assert [ns["name"] for ns in lagging] == ["ns2.example.net."]
