"""The catalog attack against a real BIND9 consumer: the REST API, PostgreSQL, Redis, a Celery worker,
MiniDNS and BIND9 with catalog-zones. A tenant who takes the catalog's name (or one enclosing or inside
it) would make MiniDNS serve its zone as the catalog, and BIND9 would drop every member zone of the
pool, or refuse the catalog and stop provisioning. The API refuses the names; a colliding row that
gets into the database anyway does not reach the consumers."""
import pytest
from rest_framework.test import APIClient

from tests.conftest import needs_named, wait_until
from tests.servers.bind9 import Bind9Server
from tests.test_reserved_names import smuggle_zone
from workers import catalog
from workers.dnsclient import query_soa_serial
from zones import accounts
from zones.models import Pool, Zone
from zones.services import pools

pytestmark = [needs_named, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CATALOG = "catalog.safety.test."
COLLIDING = [CATALOG, "safety.test.", f"inside.{CATALOG}"]  # equal, enclosing, inside


@pytest.fixture
def consumer(minidns_address):
    bind = Bind9Server(primary=minidns_address, catalog=CATALOG).start()
    yield bind
    bind.stop()


@pytest.fixture
def catalog_pool(consumer, minidns_address, worker):
    host, port = minidns_address
    return pools.save_pool(
        None, name="default", catalog_zone=CATALOG, notify_source="127.0.0.1",
        ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
        targets=[{"name": "bind-consumer", "type": "bind9", "options": consumer.backend_options,
                  "masters": [f"{host}:{port}"]}],
        nameservers=[{"host": consumer.host, "port": consumer.port}])


@pytest.fixture
def tenant():
    api = APIClient()
    api.credentials(HTTP_X_AUTH_TOKEN=accounts.issue_token(accounts.api_user("tenant", "project-1")))
    return api


def create_served(api, name, consumer) -> Zone:
    """Create the zone through the API and wait until the pipeline says ACTIVE and BIND9 serves it."""
    response = api.post("/v2/zones", {"name": name, "email": "hostmaster@example.com"}, format="json")
    assert response.status_code == 202, response.content
    zone = wait_until(lambda: (z := Zone.objects.get(id=response.json()["id"])).status in ("ACTIVE", "ERROR") and z,
                      timeout=60, message=f"{name} to settle")
    assert zone.status == "ACTIVE", zone.reason
    assert query_soa_serial(name, consumer.host, consumer.port) == zone.serial
    return zone


def serves_all(consumer, zones) -> bool:
    return all(query_soa_serial(z.name, consumer.host, consumer.port) == z.serial for z in zones)


def test_bind9_keeps_every_member_zone_when_a_tenant_goes_for_the_catalog(catalog_pool, consumer, tenant):
    members = [create_served(tenant, f"member{i}.example.com.", consumer) for i in range(3)]

    for name in COLLIDING:
        response = tenant.post("/v2/zones", {"name": name, "email": "hostmaster@example.com"}, format="json")
        assert response.status_code == 400 and "name" in response.json()["errors"], response.content
        assert CATALOG not in response.content.decode().replace(name, "")
    assert Zone.objects.count() == len(members)

    # Rows that got in behind the services' back, with serials newer than the catalog's: without the
    # catalog's precedence in MiniDNS, BIND9 would take the equal one as the catalog and drop every member.
    newer = Pool.objects.get(id=catalog_pool.id).catalog_serial + 1000
    for name in COLLIDING:
        smuggle_zone(name, catalog_pool, serial=newer)
    before = Pool.objects.get(id=catalog_pool.id).catalog_serial
    catalog.catalog_changed(str(catalog_pool.id))  # the serial bump and NOTIFY a membership change makes
    bumped = Pool.objects.get(id=catalog_pool.id).catalog_serial
    assert bumped != before
    wait_until(lambda: query_soa_serial(CATALOG, consumer.host, consumer.port) == bumped, timeout=30,
               message="BIND9 to transfer the bumped catalog")

    # The pool still provisions: a new member arrives through the next catalog version (so BIND9 has
    # applied this one and the bumped one before it), and the old members are all still there.
    members.append(create_served(tenant, "member-after.example.com.", consumer))
    assert query_soa_serial(CATALOG, consumer.host, consumer.port) != newer
    assert serves_all(consumer, members)
