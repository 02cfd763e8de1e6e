"""The audit trail over the API and in the Django admin: a zone's changes for its project, every
project's for admins (with filters), who made each change (the token only to admins), paged and
sorted like every list; bad parameters are a 400 naming them. Built on the change journal."""
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.test_api import admin, alice, bob, pool  # noqa: F401 - fixtures
from tests.test_api import assert_invalid, client_for, create_recordset, create_zone, make_user
from zones import accounts
from zones.models import ZoneChange
from zones.services import selectors

pytestmark = pytest.mark.django_db

ALL = {"HTTP_X_AUTH_ALL_PROJECTS": "true"}


@pytest.fixture
def history(alice, bob):
    """alice's zone with four changes made through the API, and bob's zone."""
    zone = create_zone(alice)
    rs = create_recordset(alice, zone["id"], records=["192.0.2.1"])
    assert alice.put(f"/v2/zones/{zone['id']}/recordsets/{rs['id']}", {"records": ["192.0.2.2"], "ttl": 60},
                     format="json").status_code == 202
    assert alice.patch(f"/v2/zones/{zone['id']}", {"email": "dns@example.com"}, format="json").status_code == 202
    theirs = create_zone(bob, "bob.example.")
    return {"zone": zone, "recordset": rs, "theirs": theirs}


def changes(client, path, **params):
    response = client.get(path, params, **params.pop("headers", {}))
    assert response.status_code == 200, response.content
    return response.json()


def test_a_zones_changes_say_who_did_what_and_which_serial(alice, history):
    zone_id = history["zone"]["id"]
    body = changes(alice, f"/v2/zones/{zone_id}/changes")
    assert body["metadata"]["total_count"] == 4 and set(body["links"]) == {"self"}
    create, add, update, email = body["changes"]
    assert [c["action"] for c in body["changes"]] == ["zone.create", "recordset.create", "recordset.update",
                                                      "zone.update"]
    assert [c["previous_serial"] for c in body["changes"]] == [None] + [c["serial"] for c in body["changes"][:-1]]
    assert email["serial"] == selectors.zones_for("p1").get(id=zone_id).serial
    assert all(c["actor"] == {"user": "alice", "via": "api"} for c in body["changes"])  # no token id for members
    assert all((c["zone_id"], c["zone_name"], c["project_id"]) == (zone_id, "example.com.", "p1")
               for c in body["changes"])
    assert create["zone"] == {"before": {}, "after": {"name": "example.com.", "email": "hostmaster@example.com",
                                                      "ttl": 3600, "description": ""}}
    assert create["recordsets"] == [{"name": "example.com.", "type": "NS", "before": None,
                                     "after": {"ttl": 3600, "records": ["ns1.example.net."]}}]
    assert add["recordset_id"] == history["recordset"]["id"] and add["recordsets"] == [
        {"name": "www.example.com.", "type": "A", "before": None, "after": {"ttl": 3600, "records": ["192.0.2.1"]}}]
    assert update["recordsets"] == [{"name": "www.example.com.", "type": "A",
                                     "before": {"ttl": 3600, "records": ["192.0.2.1"]},
                                     "after": {"ttl": 60, "records": ["192.0.2.2"]}}]
    assert email["zone"] == {"before": {"email": "hostmaster@example.com"}, "after": {"email": "dns@example.com"}}
    assert email["recordsets"] == []  # the SOA, which every change rewrites, is not listed


def test_admins_see_the_token_and_every_projects_changes(alice, admin, history):
    token = accounts.live_tokens().get(user__username="alice")
    zone_id = history["zone"]["id"]
    body = changes(admin, f"/v2/zones/{zone_id}/changes", headers=ALL)
    assert {c["actor"]["token_id"] for c in body["changes"]} == {str(token.id)}
    everything = changes(admin, "/v2/changes")
    assert everything["metadata"]["total_count"] == 5
    assert {c["project_id"] for c in everything["changes"]} == {"p1", "p2"}


def test_other_projects_and_members_get_nothing(alice, bob, history):
    response = bob.get(f"/v2/zones/{history['zone']['id']}/changes")
    assert response.status_code == 404 and history["zone"]["id"] not in response.content.decode()
    assert alice.get("/v2/changes").status_code == 403
    reader = client_for(make_user("rita", "p1", role="reader"))
    assert changes(reader, f"/v2/zones/{history['zone']['id']}/changes")["metadata"]["total_count"] == 4


def test_the_admin_list_filters_by_project_zone_actor_action_and_time(admin, history):
    def ids(**params):
        return [c["id"] for c in changes(admin, "/v2/changes", limit=1000, **params)["changes"]]

    every = list(ZoneChange.objects.order_by("created_at", "id").values_list("id", flat=True))
    assert ids() == every
    assert ids(project_id="p2") == ids(zone_id=history["theirs"]["id"]) == ids(actor="bob") == [every[-1]]
    assert ids(action="recordset.update") == list(ZoneChange.objects.filter(action="recordset.update")
                                                  .values_list("id", flat=True))
    middle = ZoneChange.objects.get(id=every[2]).created_at.isoformat()
    assert ids(since=middle) == every[2:] and ids(until=middle) == every[:3]
    assert ids(actor="nobody") == []
    assert ids(since="0877-11-20T17:40:31-19:59") == every  # any offset is taken to UTC first


@pytest.mark.parametrize("params, name", [
    ({"since": "yesterday"}, "since"), ({"until": "2026-13-01"}, "until"), ({"zone_id": "not-a-uuid"}, "zone_id"),
    ({"since": "0001-01-01T00:00:00+05:00"}, "since"),
    ({"action": "zone.explode"}, "action"), ({"sort_key": "actor"}, "sort_key"), ({"marker": "x"}, "marker"),
    ({"marker": "9" * 40}, "marker"), ({"limit": "0"}, "limit"), ({"bogus": "1"}, "bogus"),
])
def test_bad_parameters_are_400_naming_them(admin, history, params, name):
    for path in ("/v2/changes", f"/v2/zones/{history['zone']['id']}/changes"):
        if name in ("zone_id",) and "zones/" in path:
            continue
        assert_invalid(admin.get(path, params, **ALL), name)


def test_pages_walk_in_both_directions_by_each_sort_key(admin, history):
    for key in ("created_at", "id", "serial"):
        for direction in ("asc", "desc"):
            seen, url = [], f"/v2/changes?limit=2&sort_key={key}&sort_dir={direction}"
            while url:
                body = changes(admin, url)
                seen += [(c[key], c["id"]) for c in body["changes"]]
                url = body["links"].get("next")
            assert len(seen) == 5
            assert seen == sorted(seen, reverse=direction == "desc"), (key, direction)


def test_a_change_in_the_django_admin_is_recorded_with_the_person(client, history):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    zone_id = history["zone"]["id"]
    response = client.post(reverse("admin:zones_zone_changelist"),
                           {"action": "delete_zones", "_selected_action": [zone_id]})
    assert response.status_code == 302
    row = ZoneChange.objects.latest("id")
    assert (row.action, row.actor_name, row.actor_user_id, row.actor_via) == ("zone.delete", "root", user.pk, "admin")
    html = client.get(reverse("admin:zones_zonechange_changelist")).content.decode()
    assert "example.com." in html and "zone.delete" in html and "root" in html
    detail = client.get(reverse("admin:zones_zonechange_change", args=[row.id]))
    assert detail.status_code == 200 and "dns@example.com" in detail.content.decode()  # the zone as it was
