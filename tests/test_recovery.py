"""Recovery, periodic sync, target sync and purge: the decisions, run eagerly with the fake backend.

The same paths against real BIND9, a real worker, Redis and PostgreSQL are in test_faults.py.
"""
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.fakes import FakeBackend, make_pool, run
from workers import coordination, tasks
from zones.models import PeriodicRun, Zone
from zones.services import pipeline, selectors, sweeps, writes


def create(capture, name):
    return run(capture, writes.create_zone, project_id="p", name=name, email="a@example.com")


def stale(*zones):
    """As if the zones' work had been lost longer ago than the maximum propagation time."""
    Zone.objects.filter(id__in=[z.id for z in zones]).update(
        enqueued_at=timezone.now() - timedelta(seconds=sweeps.max_propagation_seconds() + 1))


@pytest.mark.django_db
def test_error_zones_recover_once_the_target_is_back(eager, django_capture_on_commit_callbacks):
    make_pool()
    FakeBackend.failing.add("t2")
    zones = [create(django_capture_on_commit_callbacks, f"z{i}.example.com.") for i in range(3)]
    assert {z.status for z in zones} == {"ERROR"}
    FakeBackend.failing.clear()
    summary = tasks.recover(force=True)
    assert summary["zones"] == 3 and summary["pushed"] == 3
    assert set(Zone.objects.values_list("status", "action")) == {("ACTIVE", "NONE")}
    assert FakeBackend.zones["t2"] == {z.name for z in zones}
    assert PeriodicRun.objects.get(name="recovery").runs == 1


@pytest.mark.django_db
def test_recovery_orders_deletes_then_creates_then_updates(eager, monkeypatch, django_capture_on_commit_callbacks):
    make_pool()
    updated, deleted = (create(django_capture_on_commit_callbacks, f"{n}.example.com.") for n in ("u", "d"))
    FakeBackend.failing.add("t1")
    run(django_capture_on_commit_callbacks, writes.update_zone, updated.id, ttl=60)
    run(django_capture_on_commit_callbacks, writes.delete_zone, deleted.id)
    created = create(django_capture_on_commit_callbacks, "c.example.com.")
    assert Zone.objects.filter(status="ERROR").count() == 3
    monkeypatch.setitem(settings.DNSCTL, "POLL_MAX_RETRIES", 40)  # a propagation time to be in flight for
    refs = sweeps.claim_recovery(limit=10)
    assert [(r.name, r.action) for r in refs] == [
        ("d.example.com.", "DELETE"), ("c.example.com.", "CREATE"), ("u.example.com.", "UPDATE")]
    assert sweeps.claim_recovery(limit=10) == []  # in flight now: not sent twice
    assert created.name in {r.name for r in refs}


@pytest.mark.django_db
def test_pending_zones_wait_for_the_propagation_time(eager, monkeypatch):
    make_pool()
    monkeypatch.setitem(settings.DNSCTL, "POLL_MAX_RETRIES", 40)
    fresh = writes.create_zone(project_id="p", name="fresh.example.com.", email="a@example.com")
    lost = writes.create_zone(project_id="p", name="lost.example.com.", email="a@example.com")
    c = settings.DNSCTL  # 40 polls, the waits doubling from POLL_RETRY_INTERVAL up to POLL_RETRY_MAX_INTERVAL
    waits, wait = 0.0, c["POLL_RETRY_INTERVAL"]
    for _ in range(40):
        waits, wait = waits + min(wait, c["POLL_RETRY_MAX_INTERVAL"]), wait * 2
    targets = (c["TARGET_MAX_RETRIES"] + 1) * c["TARGET_TIMEOUT"] + c["TARGET_MAX_RETRIES"] * c["TARGET_RETRY_INTERVAL"]
    assert sweeps.max_propagation_seconds() == pytest.approx(
        targets + c["POLL_TIMEOUT"] * 41 + waits + c["POLL_DELAY"] + c["POLL_TRANSFER_MAX_WAIT"])
    stale(lost)
    assert [r.name for r in sweeps.claim_recovery(limit=10)] == [lost.name]
    assert fresh.status == "PENDING"


@pytest.mark.django_db
def test_a_change_that_could_not_be_enqueued_is_kept_and_recovered(eager, monkeypatch, caplog,
                                                                   django_capture_on_commit_callbacks):
    make_pool()

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    from celery.canvas import Signature

    send = Signature.apply_async
    monkeypatch.setattr(Signature, "apply_async", broker_down)
    zone = create(django_capture_on_commit_callbacks, "kept.example.com.")
    assert zone.status == "PENDING" and "recovery will retry it" in caplog.text
    monkeypatch.setattr(Signature, "apply_async", send)
    stale(zone)
    tasks.recover(force=True)
    assert Zone.objects.get(id=zone.id).status == "ACTIVE"


@pytest.mark.django_db
def test_recovery_runs_once_per_interval_and_on_one_node(eager, django_capture_on_commit_callbacks):
    make_pool()
    assert isinstance(tasks.recover(), dict)
    assert tasks.recover().startswith("skipped")  # a second beat node's tick in the same interval
    with coordination.lock("periodic:recovery"):  # another node is running it right now
        assert tasks.recover(force=True).startswith("skipped")
    assert isinstance(tasks.recover(force=True), dict)
    assert PeriodicRun.objects.get(name="recovery").runs == 2


@pytest.mark.django_db
def test_one_bad_batch_does_not_stop_a_sweep(eager, monkeypatch, caplog):
    pushed = []

    def flaky_push(pool_id, refs, mode, target_ids=None):
        if pool_id == "bad":
            raise RuntimeError("boom")
        pushed.append(pool_id)

    monkeypatch.setattr(tasks, "push", flaky_push)
    summary = {}
    refs = [pipeline.ZoneRef(str(i), f"z{i}.", "UPDATE", 1, p) for i, p in enumerate(["bad", "good"])]
    tasks._push_batches(refs, pipeline.CHANGE, summary)
    assert pushed == ["good"] and summary == {"pushed": 1, "failed": 1} and "z0." in caplog.text


@pytest.mark.django_db
def test_sync_restores_a_zone_a_target_lost_without_touching_the_zone(eager, django_capture_on_commit_callbacks):
    make_pool()
    zone = create(django_capture_on_commit_callbacks, "sync.example.com.")
    FakeBackend.zones["t2"].clear()  # the server lost it
    summary = tasks.periodic_sync(force=True)
    assert summary["pushed"] == 1 and zone.name in FakeBackend.zones["t2"]
    after = Zone.objects.get(id=zone.id)
    assert (after.status, after.serial, after.updated_at, after.enqueued_at) == (
        "ACTIVE", zone.serial, zone.updated_at, None)


@pytest.mark.django_db
def test_sync_that_keeps_failing_puts_the_zone_in_error(eager, monkeypatch, django_capture_on_commit_callbacks):
    make_pool()
    zone = create(django_capture_on_commit_callbacks, "failing.example.com.")
    monkeypatch.setitem(settings.DNSCTL, "PERIODIC_SYNC_MAX_ATTEMPTS", 1)  # eager tasks can't re-schedule
    FakeBackend.failing.add("t1")
    FakeBackend.calls.clear()
    assert tasks.periodic_sync(force=True) == {"pushed": 1}
    zone = Zone.objects.get(id=zone.id)
    assert (zone.status, zone.action) == ("ERROR", "UPDATE") and "t1: target t1: connection refused" in zone.reason
    assert [c for c in FakeBackend.calls if c[0] == "t1"] == [("t1", "update", zone.name)]
    FakeBackend.failing.clear()
    tasks.recover(force=True)
    assert Zone.objects.get(id=zone.id).status == "ACTIVE"


@pytest.mark.django_db
def test_sync_window_still_includes_lagging_zones(eager, monkeypatch, django_capture_on_commit_callbacks):
    make_pool(threshold=50, targets=("t1", "t2"), nameservers=("t1", "t2"))
    FakeBackend.failing.add("t2")
    old, lagging = (create(django_capture_on_commit_callbacks, f"{n}.example.com.") for n in ("old", "lagging"))
    assert {old.status, lagging.status} == {"ACTIVE"}  # by threshold, t2 lags on both
    FakeBackend.failing.clear()
    run(django_capture_on_commit_callbacks, writes.create_recordset, old.id, name="www", type="A",
        records=["192.0.2.1"])
    Zone.objects.filter(id=lagging.id).update(updated_at=timezone.now() - timedelta(days=1))
    Zone.objects.filter(id=old.id).update(updated_at=timezone.now() - timedelta(days=1))
    assert set(sweeps.lagging_zones().values_list("name", flat=True)) == {lagging.name}
    monkeypatch.setitem(settings.DNSCTL, "PERIODIC_SYNC_SECONDS", 3600)
    assert tasks.periodic_sync(force=True)["pushed"] == 1
    assert lagging.name in FakeBackend.zones["t2"] and not sweeps.lagging_zones().exists()


def _age(zone, **times):
    Zone.objects.filter(id=zone.id).update(**times)


@pytest.mark.django_db
def test_target_sync_plan_follows_the_pool_manager_rules(eager, django_capture_on_commit_callbacks):
    make_pool()
    before, since = timezone.now() - timedelta(hours=2), timezone.now() - timedelta(hours=1)
    z = {n: create(django_capture_on_commit_callbacks, f"{n}.example.com.")
         for n in ("untouched", "updated", "removed", "brief", "reborn", "new")}
    for name in ("updated", "removed", "untouched", "reborn"):
        _age(z[name], created_at=before, updated_at=before)
    _age(z["untouched"], created_at=before, updated_at=before)
    for name in ("removed", "brief", "reborn"):
        run(django_capture_on_commit_callbacks, writes.delete_zone, z[name].id)
    _age(z["reborn"], created_at=before)
    reborn = create(django_capture_on_commit_callbacks, "reborn.example.com.")  # same name, created after
    Zone.objects.filter(id=z["updated"].id).update(updated_at=timezone.now())
    _age(z["removed"], created_at=before)
    target = selectors.find_target("default", "t2")
    plan = {r.name: (r.action, r.id) for r in sweeps.target_sync_plan(target, since)}
    assert plan == {
        "updated.example.com.": ("UPDATE", str(z["updated"].id)),
        "removed.example.com.": ("DELETE", str(z["removed"].id)),
        "reborn.example.com.": ("CREATE", str(reborn.id)),
        "new.example.com.": ("CREATE", str(z["new"].id)),
    }


@pytest.mark.django_db
def test_target_sync_rebuilds_one_emptied_target(eager, django_capture_on_commit_callbacks):
    make_pool()
    live = [create(django_capture_on_commit_callbacks, f"live{i}.example.com.") for i in range(3)]
    gone = create(django_capture_on_commit_callbacks, "gone.example.com.")
    run(django_capture_on_commit_callbacks, writes.delete_zone, gone.id)
    FakeBackend.zones["t2"] = set()
    FakeBackend.calls.clear()
    message = sweeps.start_target_sync("default", "t2", "1970-01-01T00:00:00Z")
    assert message == "Syncing 3 zones on target t2"  # "gone" was created and deleted since
    assert FakeBackend.zones["t2"] == {z.name for z in live}
    assert all(c[0] == "t2" for c in FakeBackend.calls)  # the other target is left alone
    assert {Zone.objects.get(id=z.id).status for z in live} == {"ACTIVE"}


@pytest.mark.django_db
@pytest.mark.parametrize("pool, target, since, field", [
    ("default", "nope", "2020-01-01T00:00:00Z", "target"),
    ("nope", "t1", "2020-01-01T00:00:00Z", "pool"),
    ("default", "t1", "yesterday", "since"),
    ("default", "t1", "2999-01-01T00:00:00Z", "since"),
])
def test_target_sync_refuses_bad_input(eager, pool, target, since, field):
    make_pool()
    with pytest.raises(ValidationError) as info:
        sweeps.start_target_sync(pool, target, since)
    assert field in info.value.message_dict


@pytest.mark.django_db
def test_purge_removes_only_old_deleted_zones(eager, django_capture_on_commit_callbacks):
    make_pool()
    old, recent, live = (create(django_capture_on_commit_callbacks, f"{n}.example.com.")
                         for n in ("old", "recent", "live"))
    for zone in (old, recent):
        run(django_capture_on_commit_callbacks, writes.delete_zone, zone.id)
    _age(old, deleted_at=timezone.now() - timedelta(seconds=settings.DNSCTL["PURGE_AFTER"] + 1))
    assert tasks.purge(force=True) == {"purged": 1, "journal_trimmed": 0, "zone_tasks_purged": 0}
    assert set(Zone.objects.values_list("name", flat=True)) == {recent.name, live.name}


@pytest.mark.django_db
def test_target_sync_api_is_for_admins_and_answers_at_once(eager, django_user_model,
                                                            django_capture_on_commit_callbacks):
    from rest_framework.test import APIClient

    from zones import accounts

    pool = make_pool()
    create(django_capture_on_commit_callbacks, "api.example.com.")
    target = pool.targets.get(name="t1")
    url = f"/v2/pools/{pool.id}/targets/{target.id}/sync"
    clients = {}
    for name, role in (("tenant", "member"), ("ops", "admin")):
        clients[name] = APIClient()
        clients[name].credentials(HTTP_X_AUTH_TOKEN=accounts.issue_token(accounts.api_user(name, name, role)))
    assert clients["tenant"].post(url, {"since": "2020-01-01T00:00:00Z"}, format="json").status_code == 403
    bad = clients["ops"].post(url, {"since": "not a time"}, format="json")
    assert bad.status_code == 400 and "since" in bad.json()["errors"]
    unknown = clients["ops"].post(f"/v2/pools/{pool.id}/targets/{pool.id}/sync", {"since": "2020-01-01"},
                                  format="json")
    assert unknown.status_code == 400 and "target" in unknown.json()["errors"]
    FakeBackend.zones["t1"] = set()
    ok = clients["ops"].post(url, {"since": "2020-01-01T00:00:00Z"}, format="json")
    assert ok.status_code == 202 and ok.json() == {"message": "Syncing 1 zones on target t1"}
    assert FakeBackend.zones["t1"] == {"api.example.com."}
