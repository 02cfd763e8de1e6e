"""Three real producer processes on the real PostgreSQL and Redis, one SIGKILLed mid-sweep; a consumer
group reads the stream and counts exists events per zone per interval.

In the first interval a third producer joins while two sweep (shards move mid-sweep): every live
zone gets exactly one event. In the second, one producer is killed while it sweeps: every live
zone still gets one, the only repeats are the batch it had in flight, and the event ids are exactly
the live zones' ids for that period.
"""
import collections
import os
import signal
import sys
import threading
import time
import uuid

import pytest
from django.conf import settings

from tests.conftest import wait_until
from tests.processes import Process
from tests.test_partitioner import coordinator
from workers.partitioner import Partitioner
from workers.producer import EventBus, Producer
from zones import events
from zones.models import ExistsSweep, Zone
from zones.services import pools

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
INTERVAL, BATCH, VICTIM_BATCH, ZONES, DELETED = 10, 20, 2, 1500, 30


def start_producer(env: dict) -> Process:
    return Process("producer", [sys.executable, "manage.py", "producer"], env).start()


def done_shards(period: int, swept_by: str | None = None) -> int:
    rows = ExistsSweep.objects.filter(period=period, done=True)
    return (rows.filter(swept_by__startswith=swept_by) if swept_by else rows).count()


def wait_for_period_start() -> int:
    """Sleep to the start of the next interval, so a sweep has the whole interval to finish."""
    period = events.period_of(time.time(), INTERVAL) + 1
    time.sleep(max(0.0, period * INTERVAL - time.time()) + 0.05)
    return period


def wait_for_sweep(period: int):
    """Every shard swept in the period (producers sweep only the current period: waiting past it is useless)."""
    wait_until(lambda: done_shards(period) == 4096, timeout=(period + 1) * INTERVAL - time.time() + 2,
               message=f"every shard to be swept within period {period}")


def exists_by_period(bus: EventBus) -> dict[str, list[dict]]:
    bus.create_group("billing")
    by_period = collections.defaultdict(list)
    while entries := bus.take("billing", "counter", count=1000, block_ms=200):
        bus.ack("billing", [entry_id for entry_id, _ in entries])
        for _, event in entries:
            by_period[event["payload"]["audit_period_beginning"]].append(event)
    return by_period


def test_every_live_zone_gets_its_exists_event_each_interval_even_when_a_producer_dies(system_env):
    pool = pools.save_pool(None, name="default")
    Zone.objects.bulk_create([Zone(name=f"z{i}.example.", email="a@b.example", project_id="p1", pool=pool)
                              for i in range(ZONES)])
    live = {str(z) for z in Zone.objects.values_list("id", flat=True)}
    Zone.objects.bulk_create([Zone(name=f"gone{i}.example.", email="a@b.example", project_id="p1", pool=pool,
                                   deleted_at="2020-01-01T00:00:00Z") for i in range(DELETED)])
    stream = f"test:exists:{uuid.uuid4().hex}"
    env = {**system_env, "EVENTS_STREAM": stream, "PRODUCER_GROUP": f"producers-{uuid.uuid4().hex[:8]}",
           "COORDINATION_URL": f"{settings.REDIS_URL}?membership_timeout=2", "EXISTS_INTERVAL": str(INTERVAL),
           "EXISTS_BATCH_SIZE": str(BATCH), "PRODUCER_TICK": "0.2"}
    bus = EventBus(stream=stream)
    producers = []
    try:
        producers = [start_producer(env) for _ in range(2)]
        for producer in producers:
            producer.wait_for(lambda p=producer: " joined;" in p.log_text(), what="joined")
        first = wait_for_period_start()
        # The third joins while the other two sweep; it takes small batches, so it is still sweeping
        # when it is killed in the next interval.
        victim = start_producer({**env, "EXISTS_BATCH_SIZE": str(VICTIM_BATCH)})
        producers.append(victim)
        wait_for_sweep(first)

        second = first + 1
        time.sleep(max(0.0, second * INTERVAL - time.time()))
        victim_member = f"{os.uname().nodename}-{victim.proc.pid}-"
        wait_until(lambda: done_shards(second, victim_member) >= 20, timeout=30, interval=0.02,
                   message="the victim to be sweeping")
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        assert done_shards(second) < 4096, "the victim had finished its shards before it was killed"
        wait_for_sweep(second)
        assert ExistsSweep.objects.filter(period=second).exclude(swept_by__startswith=victim_member).exists()
    finally:
        for producer in producers:
            producer.stop()

    by_period = exists_by_period(bus)
    bus.redis.delete(stream)
    for period in (first, second):
        beginning, _ = events.audit_period(period, INTERVAL)
        got = by_period[beginning]
        per_zone = collections.Counter(event["payload"]["id"] for event in got)
        missing, extra = live - set(per_zone), set(per_zone) - live
        assert not missing and not extra, f"period {period}: {len(missing)} zones missing, extra {extra}"
        expected_ids = {str(events.exists_event_id(zone_id, beginning)) for zone_id in live}
        assert {event["event_id"] for event in got} == expected_ids
        if period == first:
            assert max(per_zone.values()) == 1, "a zone got two exists events while no producer died"
        else:
            assert len(got) - len(live) <= VICTIM_BATCH, "more repeats than the batch the victim had in flight"



def test_a_producer_that_gains_shards_mid_sweep_sweeps_them_in_the_same_interval(system_env):
    """A member leaves while another sweeps: the survivor re-reads the group and sweeps the leaver's shards too."""
    pool = pools.save_pool(None, name="default")
    Zone.objects.bulk_create([Zone(name=f"z{i}.example.", email="a@b.example", project_id="p1", pool=pool)
                              for i in range(300)])
    group, stream = f"producers-{uuid.uuid4().hex[:8]}", f"test:exists:{uuid.uuid4().hex}"
    a, b = coordinator(settings.COORDINATION_URL, "a"), coordinator(settings.COORDINATION_URL, "b")
    leaver = Partitioner(b, "b", group)

    class LeaveAfterTheFirstBatch(EventBus):
        def publish(self, batch):
            super().publish(batch)
            if "b" in leaver.members():
                leaver.leave()

    try:
        survivor = Partitioner(a, "a", group)
        survivor.join()
        leaver.join()
        assert len(survivor.my_shards()) == 2048
        producer = Producer(survivor, LeaveAfterTheFirstBatch(stream=stream), INTERVAL * 1000, 10, tick=0)
        period = events.period_of(time.time(), producer.interval)
        while producer.sweep(threading.Event()):
            pass
        assert done_shards(period) == 4096
        assert EventBus(stream=stream).redis.xlen(stream) == 300
    finally:
        a.stop()
        b.stop()
        EventBus(stream=stream).redis.delete(stream)
