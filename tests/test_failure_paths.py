"""Failures end in a state, quickly; work is neither lost nor repeated: the chord's error path, time
limits, recovery's idea of lost work, the claim of pending changes, periodic sync's bound, and
reordered records being no change. Each test fails without its fix."""
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from dnsctl.celery import app as celery_app
from tests.conftest import needs_named, wait_until
from tests.fakes import FakeBackend, make_pool, run
from workers import tasks
from zones.models import SHARDS, OutboxEvent, Zone, ZoneChange
from zones.services import pipeline, sweeps, writes


def create(capture, name):
    return run(capture, writes.create_zone, project_id="p", name=name, email="a@example.com")


# --- the chord's error path ------------------------------------------------------------------


@pytest.mark.django_db
def test_pipeline_failed_puts_current_zones_in_error_with_the_reason(eager, django_capture_on_commit_callbacks):
    make_pool()
    zone = writes.create_zone(project_id="p", name="broken.example.com.", email="a@example.com")
    moved_on = writes.create_zone(project_id="p", name="moved.example.com.", email="a@example.com")
    old = pipeline.ZoneRef.of({"id": moved_on.id, "name": moved_on.name, "action": "CREATE",
                               "serial": moved_on.serial, "pool_id": moved_on.pool_id})
    writes.update_zone(moved_on.id, ttl=60)  # a newer change: its own pipeline decides
    refs = [pipeline.ZoneRef.of({"id": zone.id, "name": zone.name, "action": "CREATE", "serial": zone.serial,
                                 "pool_id": zone.pool_id}), old]
    tasks.pipeline_failed(None, ConnectionError("Error 111 connecting to redis"), None,
                          pipeline.refs_to_json(refs), "change", "targets")
    zone, moved_on = Zone.objects.get(id=zone.id), Zone.objects.get(id=moved_on.id)
    assert (zone.status, zone.action) == ("ERROR", "CREATE")
    assert zone.reason == "The targets stage failed: ConnectionError: Error 111 connecting to redis"
    assert zone.tenant_reason == "The change could not be provisioned; it will be retried."
    assert zone.enqueued_at is None  # recovery takes it at its next run, not after the propagation time
    assert moved_on.status == "PENDING"


def test_every_chord_has_the_error_path(monkeypatch):
    built = []
    monkeypatch.setattr(tasks, "chord", lambda header: lambda body: built.append(body))
    ref = pipeline.ZoneRef("00000000-0000-0000-0000-000000000001", "a.example.", "CREATE", 5, "p")
    tasks._chord([], tasks.targets_done.s("p", [ref.to_json()], "change"), [ref], "change", "targets")
    [body] = built
    [errback] = body.options["link_error"]
    assert errback["task"] == "workers.tasks.pipeline_failed"
    assert list(errback["args"]) == [[ref.to_json()], "change", "targets"]


@needs_named
@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_header_that_raises_ends_its_zones_in_error_at_once(binds, minidns_address, worker):
    """A real worker, Redis and chord: one target_batch of the batch raises (its refs cannot be read:
    the database refuses an id), and the zone of the batch is in ERROR with the reason within seconds,
    not PENDING until recovery."""
    host, port = minidns_address
    pool = make_pool_on(binds, host, port)
    zone = writes.create_zone(project_id="p", name=f"h{uuid.uuid4().hex[:8]}.example.com.", email="a@example.com")
    wait_until(lambda: Zone.objects.get(id=zone.id).status == "ACTIVE", timeout=40, message="the zone")
    zone = Zone.objects.get(id=zone.id)
    good = {"id": str(zone.id), "name": zone.name, "action": "UPDATE", "serial": zone.serial, "pool": str(pool.id)}
    bad = {**good, "id": "not-a-zone-id", "name": "bad.example.com."}
    started = time.monotonic()
    tasks.push(str(pool.id), pipeline.refs_from_json([good, bad]), pipeline.Mode.SYNC)  # a sync: ours alone
    wait_until(lambda: Zone.objects.get(id=zone.id).status == "ERROR", timeout=20, message="ERROR")
    assert time.monotonic() - started < 20
    zone = Zone.objects.get(id=zone.id)
    assert zone.reason.startswith("Sync failed: The targets stage failed: ChordError: Dependency "), zone.reason
    assert "raised ValidationError" in zone.reason and "not-a-zone-id" in zone.reason
    assert zone.action == "UPDATE"  # recovery pushes it again


def make_pool_on(binds, host, port):
    from zones.services import pools

    return pools.save_pool(
        None, name="default", threshold_percentage=100, ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
        targets=[{"name": f"bind-{i}", "type": "bind9", "options": b.backend_options, "masters": [f"{host}:{port}"]}
                 for i, b in enumerate(binds)],
        nameservers=[{"host": b.host, "port": b.port} for b in binds])


# --- time limits -------------------------------------------------------------------------------


def test_every_task_has_a_soft_and_a_hard_time_limit():
    assert 0 < celery_app.conf.task_soft_time_limit < celery_app.conf.task_time_limit
    assert 0 < tasks.target_batch.soft_time_limit == settings.DNSCTL["TARGET_TIMEOUT"] < tasks.target_batch.time_limit
    ours = [task for name, task in celery_app.tasks.items() if name.startswith("workers.")]
    assert len(ours) >= 10
    for task in ours:  # a task's own limits, or the app's defaults, both set
        assert (task.soft_time_limit or celery_app.conf.task_soft_time_limit) < (
            task.time_limit or celery_app.conf.task_time_limit), task.name


def test_a_batch_starts_no_backend_call_after_its_deadline():
    """Celery cannot cut a task short in a threads worker: the attempt itself stops starting calls."""
    class Slow(FakeBackend):
        def create_zone(self, zone_name):
            time.sleep(0.2)
            super().create_zone(zone_name)

    FakeBackend.reset()
    backend = Slow("slow", {"parallel": 1}, [("127.0.0.1", 53)])
    names = [f"d{i}.example." for i in range(10)]
    started = time.monotonic()
    results = backend.apply([("CREATE", n) for n in names], deadline=time.monotonic() + 0.5)
    assert time.monotonic() - started < 1.2
    done = [n for n in names if results[n] is None]
    assert 2 <= len(done) <= 4 and done == names[:len(done)]
    assert all(results[n].endswith("target 'slow': not attempted, the attempt's time ran out")
               for n in names[len(done):])


# --- recovery's idea of lost work ----------------------------------------------------------------


@pytest.mark.django_db
def test_a_slow_target_is_not_given_a_second_pipeline(eager):
    """Work that started longer ago than the polls take, but not longer than the target phase may
    (retries × TARGET_TIMEOUT), is still in flight: recovery leaves it alone."""
    make_pool()
    zone = writes.create_zone(project_id="p", name="slow.example.com.", email="a@example.com")
    c = settings.DNSCTL
    targets = (c["TARGET_MAX_RETRIES"] + 1) * c["TARGET_TIMEOUT"] + c["TARGET_MAX_RETRIES"] * c["TARGET_RETRY_INTERVAL"]
    polls = sweeps.max_propagation_seconds() - targets
    assert polls >= c["POLL_TIMEOUT"] * c["POLL_MAX_RETRIES"] + c["POLL_DELAY"]  # the whole polling budget too
    Zone.objects.filter(id=zone.id).update(enqueued_at=timezone.now() - timedelta(seconds=polls + 1))
    assert sweeps.claim_recovery(limit=10) == []
    Zone.objects.filter(id=zone.id).update(enqueued_at=timezone.now() - timedelta(seconds=targets + polls + 1))
    assert [r.name for r in sweeps.claim_recovery(limit=10)] == [zone.name]


# --- claims --------------------------------------------------------------------------------------


def _change_lands_before_the_claim_writes(monkeypatch, zone_id):
    """Run a change of zone_id right before the claim's UPDATE, once: a change that committed between
    the claim's read and its write (another connection, without the claim's lock)."""
    done, table = [], connection.ops.quote_name(Zone._meta.db_table)

    def before_the_claims_write(execute, sql, params, many, context):
        if sql.startswith(f"UPDATE {table} SET") and "pushed_serial" in sql and not done:
            done.append(None)  # the change's own statements pass straight through
            done[0] = writes.update_zone(zone_id, ttl=4321).serial
        return execute(sql, params, many, context)

    this_thread = connections["default"]  # the wrapper itself: undoing on the proxy would delete the list
    monkeypatch.setattr(this_thread, "execute_wrappers", [*this_thread.execute_wrappers, before_the_claims_write])
    return done


@pytest.mark.django_db
def test_claim_of_changes_never_marks_a_newer_serial_pushed(eager, monkeypatch):
    make_pool()
    zone = writes.create_zone(project_id="p", name="claimed.example.com.", email="a@example.com")
    newer = _change_lands_before_the_claim_writes(monkeypatch, zone.id)
    [ref] = pipeline.claim_changes(10)
    assert ref.serial == zone.serial and newer and newer[0] != zone.serial
    assert Zone.objects.get(id=zone.id).pushed_serial == zone.serial
    assert [(r.id, r.serial) for r in pipeline.claim_changes(10)] == [(str(zone.id), newer[0])]


@pytest.mark.django_db
def test_claim_of_a_sweep_never_marks_a_newer_serial_pushed(eager, monkeypatch):
    make_pool()
    zone = writes.create_zone(project_id="p", name="swept.example.com.", email="a@example.com")
    Zone.objects.filter(id=zone.id).update(status="ERROR", enqueued_at=None)
    newer = _change_lands_before_the_claim_writes(monkeypatch, zone.id)
    [ref] = sweeps.claim_recovery(10)
    assert ref.serial == zone.serial and newer
    assert [(r.id, r.serial) for r in pipeline.claim_changes(10)] == [(str(zone.id), newer[0])]


# --- periodic sync's bound -----------------------------------------------------------------------


@pytest.mark.django_db
def test_default_sync_is_bounded_and_a_full_pass_covers_every_zone(eager, monkeypatch,
                                                                  django_capture_on_commit_callbacks):
    make_pool()
    zones = [create(django_capture_on_commit_callbacks, f"s{i}.example.com.") for i in range(60)]
    assert {z.status for z in zones} == {"ACTIVE"}
    Zone.objects.update(updated_at=timezone.now() - timedelta(days=2))
    recent = zones[0]
    Zone.objects.filter(id=recent.id).update(updated_at=timezone.now())
    interval, full_pass = 1800, 6 * 1800
    monkeypatch.setitem(settings.DNSCTL, "PERIODIC_SYNC_FULL_PASS", full_pass)
    pushed = []
    monkeypatch.setattr(tasks, "_push_batches", lambda refs, mode, summary: pushed.append({r.name for r in refs}))
    runs = []
    for i in range(6):  # one full pass: every zone once, besides the recently changed one every time
        monkeypatch.setattr(tasks.time, "time", lambda i=i: 1_700_000_000 // interval * interval + i * interval)
        pushed.clear()
        Zone.objects.update(enqueued_at=None)
        tasks.periodic_sync(force=True)
        runs.append(set().union(*pushed))
    assert all(recent.name in names for names in runs)
    assert all(len(names) < len(zones) / 2 for names in runs)  # a slice, not every zone
    assert set().union(*runs) == {z.name for z in zones}
    slices = [sweeps.sync_slice(i * interval, interval, full_pass) for i in range(6)]
    assert [s.start for s in slices] == sorted(s.start for s in slices) and slices[-1].stop == SHARDS
    assert sweeps.sync_slice(0, interval, 0) is None


# --- a reordered recordset is no change -----------------------------------------------------------


@pytest.mark.django_db
def test_reordering_a_recordsets_records_is_not_a_change(eager):
    make_pool()
    zone = writes.create_zone(project_id="p", name="order.example.com.", email="a@example.com")
    rs = writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1", "192.0.2.2", "192.0.2.3"])
    before = Zone.objects.get(id=zone.id)
    changes, events = ZoneChange.objects.count(), OutboxEvent.objects.count()
    writes.update_recordset(zone.id, rs.id, records=["192.0.2.3", "192.0.2.1", "192.0.2.2"])
    after = Zone.objects.get(id=zone.id)
    assert (after.serial, after.version, after.enqueued_at) == (before.serial, before.version, before.enqueued_at)
    assert (ZoneChange.objects.count(), OutboxEvent.objects.count()) == (changes, events)
    assert rs.__class__.objects.get(id=rs.id).records == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    writes.update_recordset(zone.id, rs.id, records=["192.0.2.3", "192.0.2.1"])  # a real change still is one
    assert Zone.objects.get(id=zone.id).serial != before.serial and ZoneChange.objects.count() == changes + 1
