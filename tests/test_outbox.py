"""The outbox: an event exists exactly when its change committed; the relay publishes in order,
keeps events while the bus is down and delivers them all when it is back; old events are trimmed."""
import shutil
import subprocess
import tempfile
import uuid
from datetime import timedelta

import pytest
import redis
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tests.conftest import wait_until
from tests.servers import free_port
from workers.event_tasks import relay_events
from workers.producer import EventBus, relay_outbox
from zones import events
from zones.models import OutboxEvent
from zones.services import pools, writes

pytestmark = pytest.mark.django_db
needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed (apt-get install redis-server)")


class RedisServer:
    """A private redis-server on a free loopback port (append-only file, so data survives a restart),
    for taking the bus or the coordination backend away and bringing it back."""

    def __init__(self):
        self.port, self.dir, self.proc = free_port(udp_too=False), tempfile.mkdtemp(prefix="dnsctl-redis-"), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir, "--save", "",
             "--appendonly", "yes"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)

        def answers():
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_until(answers, timeout=15, message="redis-server")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def bus(settings):
    """An event bus of the test's own: a fresh stream on the tests' Redis db."""
    settings.EVENTS = {**settings.EVENTS, "STREAM": f"test:events:{uuid.uuid4().hex}"}
    bus = EventBus()
    yield bus
    bus.redis.delete(bus.stream)


@pytest.fixture
def pool(db):
    return pools.save_pool(None, name="default", ns_records=[{"hostname": "ns1.example.net.", "priority": 1}])


def new_zone(name="example.com."):
    return writes.create_zone(project_id="p1", name=name, email="admin@example.com")


def drain(bus: EventBus, group="billing") -> list[dict]:
    taken = []
    while entries := bus.take(group, "c1", block_ms=100):
        bus.ack(group, [entry_id for entry_id, _ in entries])
        taken += [event for _, event in entries]
    return taken


def test_each_change_writes_one_event_in_its_transaction(pool):
    zone = new_zone()
    writes.update_zone(zone.id, ttl=600)
    writes.update_zone(zone.id, description="no content change: no event")
    rs = writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    writes.update_recordset(zone.id, rs.id, records=["192.0.2.2"])
    writes.delete_recordset(zone.id, rs.id)
    writes.delete_zone(zone.id)
    rows = list(OutboxEvent.objects.order_by("id"))
    assert [r.type for r in rows] == [events.CREATE] + [events.UPDATE] * 4 + [events.DELETE]
    assert {r.zone_id for r in rows} == {zone.id}
    assert [r.payload["serial"] for r in rows] == sorted({r.payload["serial"] for r in rows})
    assert rows[1].payload["ttl"] == 600
    assert rows[-1].payload["action"] == "DELETE" and rows[-1].payload["status"] == "PENDING"


def test_a_change_that_does_not_commit_emits_nothing(pool, bus):
    new_zone("kept.example.")
    with pytest.raises(RuntimeError), transaction.atomic():
        zone = new_zone()
        writes.update_zone(zone.id, ttl=600)
        raise RuntimeError("the caller's transaction fails after the change")
    with pytest.raises(ValidationError):
        new_zone("kept.example.")  # refused inside create_zone
    assert list(OutboxEvent.objects.values_list("payload__name", flat=True)) == ["kept.example."]
    bus.create_group("billing")
    assert relay_outbox(bus, 100) == 1
    assert [e["payload"]["name"] for e in drain(bus)] == ["kept.example."]


@needs_redis_server
def test_with_the_bus_down_events_wait_in_the_outbox_and_all_arrive_in_order(pool, redis_server, settings):
    settings.EVENTS = {**settings.EVENTS, "URL": redis_server.url}
    bus = EventBus()
    bus.create_group("billing")
    zone = new_zone()
    assert relay_events() == 1

    redis_server.stop()
    writes.update_zone(zone.id, ttl=600)
    writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    other = new_zone("example.org.")
    writes.delete_zone(zone.id)
    assert relay_events() == 0  # logged, not raised: the next beat tick tries again
    with pytest.raises(redis.ConnectionError):
        relay_outbox(bus, 100)
    assert OutboxEvent.objects.filter(seq__isnull=True).count() == 4

    redis_server.start()
    assert relay_events() == 4
    got = drain(bus)
    rows = list(OutboxEvent.objects.order_by("id"))
    assert [e["event_id"] for e in got] == [str(r.event_id) for r in rows]
    assert [e["cursor"] for e in got] == [1, 2, 3, 4, 5]
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5] and all(r.published_at for r in rows)  # stored as sent
    assert [(e["event_type"], e["payload"]["id"]) for e in got] == [
        (events.CREATE, str(zone.id)), (events.UPDATE, str(zone.id)), (events.UPDATE, str(zone.id)),
        (events.CREATE, str(other.id)), (events.DELETE, str(zone.id))]


def test_a_consumer_stopped_for_a_while_resumes_and_misses_nothing(pool, bus):
    bus.create_group("billing")
    zones = [new_zone(f"z{i}.example.") for i in range(6)]
    relay_outbox(bus, 100)
    first = bus.take("billing", "c1", count=2)
    bus.ack("billing", [entry_id for entry_id, _ in first])
    bus.take("billing", "c1", count=2)  # stops before acknowledging these two

    zones += [new_zone(f"later{i}.example.") for i in range(5)]  # changes while it is away
    relay_outbox(bus, 100)
    resumed = drain(bus)
    seen = [event["payload"]["id"] for _, event in first] + [e["payload"]["id"] for e in resumed]
    assert seen == [str(z.id) for z in zones]
    assert bus.redis.xpending(bus.stream, "billing")["pending"] == 0


def test_old_events_are_trimmed_after_their_retention(pool, bus):
    new_zone("old.example.")
    new_zone("newest-sent.example.")
    relay_outbox(bus, 100)
    new_zone("unsent.example.")
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(days=8))
    new_zone("recent.example.")
    # Old and published goes; unpublished always waits; the newest published stays, so cursors go on.
    assert events.trim_outbox(7 * 24 * 3600) == 1
    assert sorted(OutboxEvent.objects.values_list("payload__name", flat=True)) == [
        "newest-sent.example.", "recent.example.", "unsent.example."]
    relay_outbox(bus, 100)
    assert list(OutboxEvent.objects.order_by("seq").values_list("seq", flat=True)) == [2, 3, 4]

    assert bus.redis.xlen(bus.stream) == 4
    assert bus.trim(3600) == 0
    assert bus.trim(-60) == 4  # everything older than a minute from now
    assert bus.redis.xlen(bus.stream) == 0


def test_trimming_before_anything_was_published_trims_nothing(pool):
    assert events.trim_outbox(0) == 0  # an empty outbox (a new system)
    new_zone("unsent.example.")
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(days=8))
    assert events.trim_outbox(7 * 24 * 3600) == 0  # unpublished: it waits
    assert OutboxEvent.objects.count() == 1


def test_beat_runs_the_relay_and_the_trim():
    from dnsctl.celery import app

    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    schedule = app.conf.beat_schedule
    for name, task in (("events-relay", "workers.event_tasks.relay_events"),
                       ("events-trim", "workers.event_tasks.trim_events")):
        assert schedule[name]["task"] == task and task in app.tasks
