"""The operators' overview in the Django admin renders each pool's state from the database."""
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from zones import overview
from zones.models import PeriodicRun, Zone
from zones.services import pipeline, pools, writes

pytestmark = pytest.mark.django_db
URL = "/admin/overview/"


@pytest.fixture
def site(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def pool():
    return pools.save_pool(
        None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
        targets=[{"name": name, "type": "bind9", "masters": ["127.0.0.1:5354"],
                  "options": {"rndc_host": "127.0.0.1", "rndc_key_secret": "c2VjcmV0"}}
                 for name in ("bind-a", "bind-b")],
        nameservers=[{"host": "127.0.0.1", "port": 5300, "name": "ns1.example.net."},
                     {"host": "127.0.0.1", "port": 5301}])


def make_zone(name, status, reason="", age=0):
    zone = writes.create_zone(project_id="p1", name=name, email="a@example.com")
    Zone.objects.filter(id=zone.id).update(status=status, reason=reason,
                                           action="NONE" if status == "ACTIVE" else "CREATE",
                                           updated_at=timezone.now() - timedelta(seconds=age))
    return Zone.objects.get(id=zone.id)


@pytest.fixture
def zones(pool):
    a, b = pool.targets.order_by("name")
    ns1, ns2 = pool.nameservers.order_by("port")
    active = [make_zone(f"ok{i}.example.com.", "ACTIVE") for i in range(3)]
    old = make_zone("old-pending.example.com.", "PENDING", age=600)
    make_zone("new-pending.example.com.", "PENDING", age=5)
    broken = make_zone("broken.example.com.", "ERROR",
                       reason="CREATE succeeded on 1 of 2 targets: bind-b: rndc refused")
    for zone in active:  # bind-a applied everything; bind-b failed one zone; ns2 lags on one
        pipeline.record_target_result(zone.id, a.id, "CREATE", zone.serial, True)
        pipeline.record_target_result(zone.id, b.id, "CREATE", zone.serial, zone != active[0], "rndc: refused")
        pipeline.record_nameserver_result(zone.id, ns1.id, zone.serial, zone.serial, True)
        pipeline.record_nameserver_result(zone.id, ns2.id, zone.serial, zone.serial if zone != active[1] else None,
                                          zone != active[1], "timed out")
    PeriodicRun.objects.create(name="recovery", runs=7, started_at=timezone.now() - timedelta(seconds=90),
                               finished_at=timezone.now() - timedelta(seconds=89), summary="zones: 1, pushed: 1")
    return {"old": old, "broken": broken}


def test_overview_shows_each_pool_with_statuses_errors_servers_and_runs(site, zones):
    response = site.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Pool <a" in html and ">default</a>" in html and "6 zones" in html
    assert "old-pending.example.com." in html and "new-pending.example.com." not in html  # only the oldest
    assert "broken.example.com." in html and "bind-b: rndc refused" in html
    assert "66.7 %" in html and "100.0 %" in html  # bind-b, bind-a; ns2 is 66.7 % too
    assert "recovery" in html and "zones: 1, pushed: 1" in html
    assert "c2VjcmV0" not in html  # target secrets are never shown


def test_numbers_per_pool(zones):
    [row] = overview.pools()
    assert dict(row["statuses"]) == {"ACTIVE": 3, "PENDING": 2, "ERROR": 1} and row["total"] == 6
    assert row["oldest_pending"] == zones["old"] and row["errors"] == [zones["broken"]]
    targets = {r["server"].name: r for r in row["targets"]}
    assert (targets["bind-a"]["success_rate"], targets["bind-a"]["lagging_zones"]) == (100.0, 0)
    assert (targets["bind-b"]["success_rate"], targets["bind-b"]["lagging_zones"]) == (66.7, 1)
    nameservers = {r["server"].port: r for r in row["nameservers"]}
    assert (nameservers[5300]["success_rate"], nameservers[5300]["lagging_zones"]) == (100.0, 0)
    assert (nameservers[5301]["success_rate"], nameservers[5301]["lagging_zones"]) == (66.7, 1)


def test_a_pool_without_targets_says_so(site, db):
    pools.save_pool(None, name="empty", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    html = site.get(URL).content.decode()
    assert "No targets: the pool" in html and "No nameservers" in html


def test_index_links_to_the_overview(site):
    assert URL in site.get("/admin/").content.decode()


def test_only_staff_see_it(client, db):
    assert client.get(URL).status_code == 302  # to the login page
    get_user_model().objects.create_user("bob", password="pw")
    client.login(username="bob", password="pw")
    response = client.get(URL)
    assert response.status_code == 302 and "login" in response["Location"]
