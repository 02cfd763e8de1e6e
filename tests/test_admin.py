"""The Django admin: pages render, secrets stay hidden, and saves go through zones.services."""
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from zones.models import Pool, Zone
from zones.services import pipeline, pools, writes

pytestmark = pytest.mark.django_db

SECRET = "c2VjcmV0LXJuZGMta2V5LXZhbHVl"


@pytest.fixture
def site(client):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def pool():
    return pools.save_pool(
        None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
        targets=[{"name": "b1", "type": "bind9", "masters": ["127.0.0.1:5354"],
                  "options": {"rndc_host": "127.0.0.1", "rndc_key_secret": SECRET}}],
        nameservers=[{"host": "127.0.0.1", "port": 5300}], also_notifies=[{"host": "192.0.2.53", "port": 53}])


@pytest.fixture
def zone(pool):
    zone = writes.create_zone(project_id="p1", name="example.com.", email="a@example.com")
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    zone = Zone.objects.get(id=zone.id)
    pipeline.record_target_result(zone.id, pool.targets.get().id, "CREATE", zone.serial, False, "rndc: refused")
    pipeline.record_nameserver_result(zone.id, pool.nameservers.get().id, zone.serial, None, False, "timed out")
    return zone


def page(site, url):
    response = site.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_pool_pages_render_without_the_secret(site, pool):
    assert "default" in page(site, reverse("admin:zones_pool_changelist"))
    html = page(site, reverse("admin:zones_pool_change", args=[pool.id]))
    assert "b1" in html and "ns1.example.net." in html and "192.0.2.53" in html
    assert "rndc_key_secret" in html and "*****" in html
    assert SECRET not in html
    assert SECRET not in page(site, reverse("admin:zones_pool_add"))


def test_zone_pages_render_read_only_with_statuses(site, zone):
    html = page(site, reverse("admin:zones_zone_changelist"))
    assert "example.com." in html and "p1" in html
    assert "example.com." in page(site, reverse("admin:zones_zone_changelist") + "?q=p1")
    assert "example.com." in page(site, reverse("admin:zones_zone_changelist") + "?status__exact=PENDING")
    html = page(site, reverse("admin:zones_zone_change", args=[zone.id]))
    assert "www.example.com." in html and "192.0.2.1" in html  # recordsets
    assert "127.0.0.1:5300" in html and "timed out" in html  # nameserver status
    assert "rndc: refused" in html  # target status
    assert SECRET not in html
    assert 'name="_save"' not in html  # read-only: zones change through services
    assert "example.com." in page(site, reverse("admin:zones_recordset_changelist"))


def test_saving_a_pool_keeps_redacted_secrets_and_uses_the_service(site, pool):
    url = reverse("admin:zones_pool_change", args=[pool.id])
    target = pool.targets.get()
    ns = pool.nameservers.get()
    data = {
        "name": "default", "description": "edited", "threshold_percentage": "100",
        "ns_records-TOTAL_FORMS": "1", "ns_records-INITIAL_FORMS": "1",
        "ns_records-0-id": str(pool.ns_records.get().id), "ns_records-0-pool": str(pool.id),
        "ns_records-0-hostname": "ns1.example.net.", "ns_records-0-priority": "1",
        "targets-TOTAL_FORMS": "1", "targets-INITIAL_FORMS": "1",
        "targets-0-id": str(target.id), "targets-0-pool": str(pool.id), "targets-0-name": "b1",
        "targets-0-type": "bind9", "targets-0-description": "", "targets-0-masters": '["127.0.0.1:5354"]',
        "targets-0-options": '{"rndc_host": "127.0.0.2", "rndc_key_secret": "*****"}',
        "nameservers-TOTAL_FORMS": "1", "nameservers-INITIAL_FORMS": "1",
        "nameservers-0-id": str(ns.id), "nameservers-0-pool": str(pool.id),
        "nameservers-0-host": "127.0.0.1", "nameservers-0-port": "5300",
        "also_notifies-TOTAL_FORMS": "1", "also_notifies-INITIAL_FORMS": "1",
        "also_notifies-0-id": str(pool.also_notifies.get().id), "also_notifies-0-pool": str(pool.id),
        "also_notifies-0-host": "192.0.2.53", "also_notifies-0-port": "53", "also_notifies-0-DELETE": "on",
    }
    for prefix in ("ns_records", "targets", "nameservers", "also_notifies"):
        data[f"{prefix}-MIN_NUM_FORMS"], data[f"{prefix}-MAX_NUM_FORMS"] = "0", "1000"
    response = site.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    pool.refresh_from_db()
    target.refresh_from_db()
    assert pool.description == "edited"
    assert target.options == {"rndc_host": "127.0.0.2", "rndc_key_secret": SECRET}
    assert pool.also_notifies.count() == 0  # deleted in the form: the list was replaced
    assert pool.nameservers.get().id == ns.id


def test_a_pool_the_service_refuses_is_not_saved(site, pool):
    data = {"name": "broken", "description": "", "threshold_percentage": "100"}
    for prefix in ("ns_records", "targets", "nameservers", "also_notifies"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0",
                     f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"})
    data.update({"ns_records-TOTAL_FORMS": "1", "ns_records-0-hostname": "no-dot.example", "ns_records-0-priority": "1"})
    response = site.post(reverse("admin:zones_pool_add"), data, follow=True)
    assert response.status_code == 200
    assert "Nothing was saved" in response.content.decode() and "ns_records[0].hostname" in response.content.decode()
    assert not Pool.objects.filter(name="broken").exists()


def test_delete_action_goes_through_the_service(site, zone):
    response = site.post(reverse("admin:zones_zone_changelist"),
                         {"action": "delete_zones", "_selected_action": [str(zone.id)]})
    assert response.status_code == 302
    zone.refresh_from_db()
    assert (zone.action, zone.status) == ("DELETE", "PENDING")


def test_delete_action_needs_the_delete_permission(client, zone):
    from django.contrib.auth.models import Permission

    staff = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_zone"))
    client.force_login(staff)
    changelist = reverse("admin:zones_zone_changelist")
    assert "delete_zones" not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "delete_zones", "_selected_action": [str(zone.id)]})
    zone.refresh_from_db()
    assert zone.action != "DELETE"
    staff.user_permissions.add(Permission.objects.get(codename="delete_zone"))
    staff = get_user_model().objects.get(id=staff.id)  # permissions are cached on the user object
    client.force_login(staff)
    assert "delete_zones" in client.get(changelist).content.decode()
    client.post(changelist, {"action": "delete_zones", "_selected_action": [str(zone.id)]})
    zone.refresh_from_db()
    assert zone.action == "DELETE"
