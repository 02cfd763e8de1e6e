"""Strictly in order on every target: creates, updates and deletes of the same zones, interleaved under
load through a real Celery worker onto two real BIND9s; then every target's configured zones must be
what the database says, by each server's own word (rndc showzone), not by a DNS answer."""
import random
import threading
import time
import uuid

import pytest
from django.db import connection, transaction

from tests.conftest import needs_named, wait_until
from workers.backends import get_backend
from workers.dnsclient import query_soa_serial
from zones import validation
from zones.services import pools, writes
from zones.services import pipeline
from zones.models import Zone

pytestmark = [needs_named, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def make_pool(binds, minidns_address, **options):
    host, port = minidns_address
    return pools.save_pool(
        None, name="default", threshold_percentage=100,
        ns_records=[{"hostname": "ns1.example.net.", "priority": 1}],
        targets=[{"name": f"bind-{i}", "type": "bind9", "options": {**b.backend_options, **options},
                  "masters": [f"{host}:{port}"]} for i, b in enumerate(binds)],
        nameservers=[{"host": b.host, "port": b.port} for b in binds],
    )


@pytest.fixture
def pool(binds, minidns_address, worker):
    return make_pool(binds, minidns_address)


def live(name):
    return Zone.objects.filter(name=name, deleted_at__isnull=True).first()


def step(name, rng):
    """One change to the zone called name, whatever state it is in: create it when the name is free,
    else update or delete it (a change the zone's state refuses is skipped, as the API would)."""
    zone = live(name)
    try:
        if zone is None:
            writes.create_zone(project_id="p", name=name, email="hostmaster@example.com")
        elif rng.random() < 0.4:
            writes.delete_zone(zone.id)
        elif rng.random() < 0.5:
            writes.create_recordset(zone.id, name=f"r{uuid.uuid4().hex[:8]}", type="TXT", records=['"x"'])
        else:
            writes.update_zone(zone.id, ttl=rng.randint(60, 7200))
    except (validation.ValidationError, Zone.DoesNotExist):
        pass  # being deleted or just deleted, or the name is not free yet (its delete has not finished)


def configured_as_in_database(binds, names):
    """What differs between each BIND9's configured zones (its own word) and the database."""
    backends = [get_backend("bind9", f"bind-{i}", b.backend_options, [("127.0.0.1", 1)]) for i, b in enumerate(binds)]
    wrong = []
    for name in names:
        zone = live(name)
        for bind, backend in zip(binds, backends):
            configured = backend.has_zone(name)
            if zone is None and configured:
                wrong.append(f"{name}: deleted in dnsctl, still configured on {backend.name}")
            elif zone is not None and not configured:
                wrong.append(f"{name}: {zone.status} in dnsctl, not configured on {backend.name}")
            elif zone is not None and query_soa_serial(name, bind.host, bind.port) != zone.serial:
                wrong.append(f"{name}: {backend.name} does not serve serial {zone.serial}")
    return wrong


def test_deletes_that_overtake_a_batch_of_creates(binds, minidns_address, worker):
    """One batch of 100 creates is on its way to the targets (rndc addzone, one at a time) when the
    zones are deleted, the last first: each delete's pipeline reaches the targets before the
    create's addzone for that zone would. The create must not land after the delete."""
    make_pool(binds, minidns_address, parallel=1)
    names = [f"b{i}-{uuid.uuid4().hex[:6]}.example.com." for i in range(100)]
    with transaction.atomic():  # one commit: the first zone_action takes every create in one batch
        ids = [writes.create_zone(project_id="p", name=name, email="hostmaster@example.com").id for name in names]
    first = get_backend("bind9", "bind-0", binds[0].backend_options, [("127.0.0.1", 1)])
    wait_until(lambda: first.has_zone(names[0]), timeout=30, interval=0.005, message="the batch to reach bind-0")
    for zone_id in reversed(ids):
        writes.delete_zone(zone_id)
    wait_until(lambda: not Zone.objects.filter(id__in=ids, status="PENDING").exists(), timeout=120, interval=0.5,
               message="every delete to settle")
    assert [(z.name, z.status, z.reason) for z in Zone.objects.filter(id__in=ids) if z.status != "DELETED"] == []
    assert configured_as_in_database(binds, names) == []


def test_interleaved_changes_leave_every_target_as_the_database_says(binds, pool):
    rng = random.Random(11)
    names = [f"o{i}-{uuid.uuid4().hex[:6]}.example.com." for i in range(40)]
    for name in names:
        step(name, rng)
    for _ in range(15):  # bursts of changes to the same zones while the previous bursts are in flight
        for name in rng.sample(names, len(names)):
            step(name, rng)
        time.sleep(rng.random())  # so deletes finish and their names are created again

    def settled():
        return not Zone.objects.filter(name__in=names, status="PENDING").exists()

    wait_until(settled, timeout=180, interval=0.5, message="every change to settle")
    zones = list(Zone.objects.filter(name__in=names))
    assert [(z.name, z.status, z.reason) for z in zones if z.status not in ("ACTIVE", "DELETED")] == []
    assert configured_as_in_database(binds, names) == []
    assert Zone.objects.filter(name__in=names, status="DELETED").exists()  # the run did delete and re-create
    assert Zone.objects.filter(name__in=names).count() > len(names)


@pytest.mark.django_db(transaction=True)
def test_the_fence_orders_two_tasks_on_one_target_and_re_reads_after_waiting():
    """What target_batch relies on: while one task holds a (target, zone name), another waits (or is
    Busy after its wait), sees the change that committed meanwhile, and other targets are free."""
    pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])
    zone = writes.create_zone(project_id="p", name="fenced.example.com.", email="a@example.com")
    ref = pipeline.ZoneRef.of({"id": zone.id, "name": zone.name, "action": "CREATE", "serial": zone.serial,
                               "pool_id": zone.pool_id})
    held, release = threading.Event(), threading.Event()

    def holder():
        try:
            with pipeline.fenced("target-1", [ref], pipeline.Mode.CHANGE, wait=5) as current:
                assert current == [ref]
                held.set()
                release.wait(10)
        finally:
            connection.close()

    def waiter(seen):
        try:
            with pipeline.fenced("target-1", [ref], pipeline.Mode.CHANGE, wait=10) as current:
                seen.append((time.monotonic(), current))
        finally:
            connection.close()

    first = threading.Thread(target=holder)
    first.start()
    assert held.wait(10)
    with pytest.raises(pipeline.Busy, match="still runs after 0.2 s"):
        with pipeline.fenced("target-1", [ref.__class__(ref.id, ref.name.upper(), ref.action, ref.serial,
                                                        ref.pool)], pipeline.Mode.CHANGE, wait=0.2):
            pass
    with pipeline.fenced("target-2", [ref], pipeline.Mode.CHANGE, wait=0.2) as current:
        assert current == [ref]  # another target: not held
    seen = []
    second = threading.Thread(target=waiter, args=(seen,))
    second.start()
    time.sleep(0.3)
    assert seen == []  # waiting for the holder
    writes.delete_zone(zone.id)  # a newer change commits while it waits
    released = time.monotonic()
    release.set()
    first.join(10)
    second.join(10)
    [(when, current)] = seen
    assert when >= released and current == []  # it re-read after the wait: the create is stale now
