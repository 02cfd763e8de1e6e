"""The task pipeline's decisions, run eagerly with the fake backend and a fake SOA poll.

The real pipeline (real worker, Redis, BIND9) is proven in test_integration.py.
"""
import pytest
from celery.canvas import Signature
from django.conf import settings

from dnsctl.celery import app as celery_app
from tests.fakes import FakeBackend, make_pool, run
from workers import dnsclient, tasks
from zones.models import NameserverStatus, TargetStatus, Zone
from zones.services import pipeline, pools, writes


@pytest.mark.django_db
def test_create_reaches_active_on_every_target(eager, django_capture_on_commit_callbacks):
    make_pool()
    zone = run(django_capture_on_commit_callbacks, writes.create_zone,
               project_id="p", name="example.com.", email="a@example.com")
    assert (zone.status, zone.action) == ("ACTIVE", "NONE")
    assert all("example.com." in FakeBackend.zones[t] for t in ("t1", "t2"))
    assert set(TargetStatus.objects.values_list("ok", flat=True)) == {True}
    assert list(NameserverStatus.objects.values_list("serial", flat=True)) == [zone.serial] * 2


@pytest.mark.django_db
def test_failed_target_below_threshold_is_error_with_reason(eager, django_capture_on_commit_callbacks):
    make_pool(threshold=100)
    FakeBackend.failing.add("t2")
    zone = run(django_capture_on_commit_callbacks, writes.create_zone,
               project_id="p", name="example.com.", email="a@example.com")
    assert (zone.status, zone.action) == ("ERROR", "CREATE")
    assert "1 of 2 targets" in zone.reason and "t2: target t2: connection refused" in zone.reason


@pytest.mark.django_db
def test_failed_target_within_threshold_is_active(eager, django_capture_on_commit_callbacks):
    make_pool(threshold=50)
    FakeBackend.failing.add("t2")
    zone = run(django_capture_on_commit_callbacks, writes.create_zone,
               project_id="p", name="example.com.", email="a@example.com")
    assert zone.status == "ACTIVE"
    statuses = {s.nameserver.host: s for s in NameserverStatus.objects.select_related("nameserver")}
    assert statuses["t1"].ok and not statuses["t2"].ok and statuses["t2"].serial is None


@pytest.mark.django_db
def test_unreachable_nameserver_counts_against_consensus(eager, django_capture_on_commit_callbacks):
    make_pool(threshold=100, targets=("t1",), nameservers=("t1", "unreachable"))
    zone = run(django_capture_on_commit_callbacks, writes.create_zone,
               project_id="p", name="example.com.", email="a@example.com")
    assert zone.status == "ERROR"
    assert "1 of 2 nameservers" in zone.reason and "unreachable:53: timed out" in zone.reason


@pytest.mark.django_db
def test_recordset_change_and_delete(eager, django_capture_on_commit_callbacks):
    make_pool()
    zone = run(django_capture_on_commit_callbacks, writes.create_zone,
               project_id="p", name="example.com.", email="a@example.com")
    zone = run(django_capture_on_commit_callbacks, writes.create_recordset,
               zone.id, name="www", type="A", records=["192.0.2.1"])
    assert zone.status == "ACTIVE" and zone.recordsets.get(type="A").status == "ACTIVE"
    assert ("t1", "update", "example.com.") in FakeBackend.calls
    zone = run(django_capture_on_commit_callbacks, writes.delete_zone, zone.id)
    assert (zone.status, zone.action) == ("DELETED", "NONE") and zone.deleted_at
    assert FakeBackend.zones == {"t1": set(), "t2": set()}


@pytest.mark.django_db
def test_delete_needs_every_target(eager, django_capture_on_commit_callbacks):
    make_pool(threshold=50)
    zone = run(django_capture_on_commit_callbacks, writes.create_zone,
               project_id="p", name="example.com.", email="a@example.com")
    FakeBackend.failing.add("t2")
    zone = run(django_capture_on_commit_callbacks, writes.delete_zone, zone.id)
    assert (zone.status, zone.action) == ("ERROR", "DELETE") and "100% needed" in zone.reason


@pytest.mark.django_db
def test_superseded_work_does_nothing(eager):
    make_pool()
    zone = writes.create_zone(project_id="p", name="example.com.", email="a@example.com")
    pipeline.claim_changes(10)  # another worker took it
    assert tasks.zone_action() == "nothing waiting"
    assert FakeBackend.calls == []
    # a late chord body for an older serial leaves the newer change alone
    old = {"id": str(zone.id), "name": zone.name, "action": "CREATE", "serial": zone.serial - 1,
           "pool": str(zone.pool_id)}
    tasks.polls_done([{"nameserver": "x", "address": "x", "seen": {old["id"]: [old["serial"], True, ""]}}],
                     str(zone.pool_id), [old], "change")
    assert Zone.objects.get(id=zone.id).status == "PENDING"


@pytest.mark.django_db
def test_running_the_same_action_twice_is_harmless(eager, django_capture_on_commit_callbacks):
    make_pool()
    zone = run(django_capture_on_commit_callbacks, writes.create_zone,
               project_id="p", name="example.com.", email="a@example.com")
    assert tasks.zone_action() == "nothing waiting"  # a second kick: the change was already pushed
    assert tasks.zone_action(str(zone.id), "CREATE", zone.serial) == "nothing waiting"  # a message from before kicks
    assert Zone.objects.get(id=zone.id).status == "ACTIVE"


@pytest.mark.django_db
def test_pool_without_targets_is_error(eager, django_capture_on_commit_callbacks):
    make_pool(targets=(), nameservers=("t1",))
    zone = run(django_capture_on_commit_callbacks, writes.create_zone,
               project_id="p", name="example.com.", email="a@example.com")
    assert zone.status == "ERROR" and "no targets" in zone.reason


def test_celery_configuration_is_effective():
    """A mistyped Celery setting silently does nothing: assert the values the app really uses."""
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_url.startswith("redis://") and conf.result_backend.startswith("redis://")
    assert "workers.tasks.zone_action" in celery_app.tasks


@pytest.mark.django_db
def test_a_burst_of_changes_travels_in_one_batch(eager):
    make_pool()
    zones = [writes.create_zone(project_id="p", name=f"b{i}.example.com.", email="a@example.com")
             for i in range(3)]  # committed, the kick not yet run
    assert tasks.zone_action() == {"pushed": 3}
    assert [c for c in FakeBackend.calls if c[0] == "t1"] == [("t1", "create", z.name) for z in zones]
    assert set(Zone.objects.values_list("status", flat=True)) == {"ACTIVE"}
    assert tasks.zone_action() == "nothing waiting"
    writes.create_zone(project_id="p", name="late.example.com.", email="a@example.com")
    pipeline.claim_changes(10)  # another worker took it
    assert tasks.zone_action() == "nothing waiting"


@pytest.mark.django_db
def test_a_kick_takes_every_waiting_change_however_many_batches(eager, monkeypatch):
    make_pool()
    monkeypatch.setitem(settings.DNSCTL, "BATCH_SIZE", 2)
    for i in range(5):
        writes.create_zone(project_id="p", name=f"k{i}.example.com.", email="a@example.com")
    assert tasks.zone_action() == {"pushed": 5}
    assert set(Zone.objects.values_list("status", flat=True)) == {"ACTIVE"}


@pytest.mark.django_db
def test_one_kick_per_burst_and_a_new_one_once_it_runs(eager, monkeypatch, django_capture_on_commit_callbacks):
    make_pool()
    sent = []
    monkeypatch.setattr(Signature, "apply_async", lambda sig, *a, **k: sent.append((sig.task, k.get("countdown"))))
    monkeypatch.setattr(pipeline, "BUSY_WINDOW", 10.0)  # however slow this machine, the changes come as a stream
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            writes.create_zone(project_id="p", name=f"c{i}.example.com.", email="a@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        writes.create_zone(project_id="p", name="c3.example.com.", email="a@example.com")
    assert sent == [("workers.tasks.zone_action", None)]  # the kick is outstanding: it takes all four
    monkeypatch.setattr(tasks, "_push_batches", lambda refs, mode, summary: None)
    tasks.zone_action()  # the kick runs: it drops the key before it claims
    with django_capture_on_commit_callbacks(execute=True):
        writes.create_zone(project_id="p", name="c4.example.com.", email="a@example.com")
    # changes keep coming (this one less than BUSY_WINDOW after the last): the kick waits for more of them
    assert sent[1] == ("workers.tasks.zone_action", settings.DNSCTL["KICK_DELAY"])
    pipeline.drop_kick()
    pipeline._kick_redis().delete(pipeline.BUSY_KEY)  # a quiet moment: the next change's kick goes at once
    with django_capture_on_commit_callbacks(execute=True):
        writes.create_zone(project_id="p", name="c5.example.com.", email="a@example.com")
    assert sent[2] == ("workers.tasks.zone_action", None)
    pipeline.drop_kick()


@pytest.mark.django_db
def test_one_client_changing_one_thing_at_a_time_is_not_a_stream(eager, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    """A zone created and, once ACTIVE, changed at once: the change's kick goes at once, not KICK_DELAY
    later (two changes in a window are no stream; a third is)."""
    make_pool()
    sent = []
    monkeypatch.setattr(Signature, "apply_async", lambda sig, *a, **k: sent.append((sig.task, k.get("countdown"))))
    monkeypatch.setattr(pipeline, "BUSY_WINDOW", 10.0)  # however slow this machine, all in one window
    pipeline._kick_redis().delete(pipeline.BUSY_KEY)
    for i in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            writes.create_zone(project_id="p", name=f"s{i}.example.com.", email="a@example.com")
        pipeline.drop_kick()  # its kick ran
    kick = "workers.tasks.zone_action"
    assert sent == [(kick, None), (kick, None), (kick, settings.DNSCTL["KICK_DELAY"])]
    pipeline._kick_redis().delete(pipeline.BUSY_KEY)


@pytest.mark.django_db
def test_a_kick_that_could_not_be_sent_lets_the_next_change_try(eager, monkeypatch,
                                                                 django_capture_on_commit_callbacks):
    make_pool()
    tries = []

    def broker_down(sig, *args, **kwargs):
        tries.append(sig.task)
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379")

    monkeypatch.setattr(Signature, "apply_async", broker_down)
    for i in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            writes.create_zone(project_id="p", name=f"d{i}.example.com.", email="a@example.com")
    assert len(tries) == 2 and pipeline.take_kick() is not None
    pipeline.drop_kick()


@pytest.mark.django_db
def test_notify_leaves_from_the_pool_notify_source(eager, monkeypatch, django_capture_on_commit_callbacks):
    pool = make_pool()
    pools.save_pool(pool, name=pool.name, notify_source="127.0.0.2")
    sent = []
    monkeypatch.setattr(dnsclient, "send_notify", lambda name, host, port, serial, **kw: sent.append((host, kw)))
    run(django_capture_on_commit_callbacks, writes.create_zone, project_id="p", name="n.example.com.",
        email="a@example.com")
    assert sorted(host for host, _ in sent) == ["t1", "t2"] and {kw["source"] for _, kw in sent} == {"127.0.0.2"}
