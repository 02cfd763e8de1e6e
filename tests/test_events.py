"""Events: shards filled on every write path, one payload shape for every event type, exists sweeps
batch by batch (deterministic ids, deleted zones skipped, bad rows skipped, a locked shard left to its
holder), and GET /v2/events for admins."""
import logging
import threading
import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tests.test_api import client_for, make_user
from tests.test_outbox import bus, drain, new_zone, pool  # noqa: F401 - fixtures
from workers.producer import relay_outbox
from zones import events
from zones.models import ExistsSweep, OutboxEvent, RecordSet, Zone, shard_for
from zones.services import writes

pytestmark = pytest.mark.django_db
INTERVAL = 3600.0
ENVELOPE = {"event_id", "event_type", "timestamp", "payload"}
PAYLOAD = {"id", "name", "project_id", "pool_id", "serial", "status", "action", "ttl", "email", "shard",
           "created_at", "updated_at", "deleted_at"}


def zone_in_shard(pool, shard: int, name: str, **fields) -> Zone:
    return Zone(id=uuid.UUID(f"{shard:03x}{uuid.uuid4().hex[3:]}"), name=name, email="a@b.example", project_id="p1",
                pool=pool, **fields)


def test_bulk_created_zones_and_recordsets_get_their_shards(pool):
    zones = Zone.objects.bulk_create([zone_in_shard(pool, s, f"z{s}.example.") for s in (0, 7, 4095)])
    assert [z.shard for z in Zone.objects.order_by("shard")] == [0, 7, 4095]
    RecordSet.objects.bulk_create([RecordSet(zone=z, name=z.name, type="TXT", records=['"x"']) for z in zones])
    assert sorted(RecordSet.objects.values_list("zone_shard", flat=True)) == [0, 7, 4095]


def test_recordsets_written_by_services_carry_the_zone_shard(pool):
    zone = new_zone()
    rs = writes.create_recordset(zone.id, name="www", type="A", records=["192.0.2.1"])
    assert zone.shard == shard_for(zone.id)
    assert set(RecordSet.objects.values_list("zone_shard", flat=True)) == {zone.shard}
    assert RecordSet.objects.get(id=rs.id).zone_shard == zone.shard


def test_every_event_type_shares_one_payload_shape(pool, bus):
    zone = new_zone()
    writes.update_zone(zone.id, ttl=600)
    writes.delete_zone(zone.id)
    relay_outbox(bus, 100)
    bus.create_group("billing")
    changes = drain(bus)
    exists = events.exists_events(list(Zone.objects.values(*events.ZONE_FIELDS)), 5, INTERVAL)
    assert [e["event_type"] for e in changes + exists] == [events.CREATE, events.UPDATE, events.DELETE, events.EXISTS]
    for event in changes:  # outbox events also say who made the change, and which record is its
        assert set(event) == ENVELOPE | {"cursor"} and set(event["payload"]) == PAYLOAD | {"actor", "change_id"}
        assert event["payload"]["actor"] == {"user_id": None, "username": "system", "token_id": None, "via": "system"}
    assert set(exists[0]) == ENVELOPE
    assert set(exists[0]["payload"]) == PAYLOAD | {"audit_period_beginning", "audit_period_ending"}
    assert exists[0]["payload"]["audit_period_beginning"] == "1970-01-01T05:00:00+00:00"
    assert exists[0]["payload"]["audit_period_ending"] == "1970-01-01T06:00:00+00:00"
    assert changes[2]["payload"]["serial"] == exists[0]["payload"]["serial"] == Zone.objects.get().serial


def test_exists_event_ids_depend_on_zone_and_period_only(pool):
    rows = list(Zone.objects.bulk_create([zone_in_shard(pool, 1, "a.example."), zone_in_shard(pool, 1, "b.example.")]))
    values = list(Zone.objects.order_by("id").values(*events.ZONE_FIELDS))
    ids = [e["event_id"] for e in events.exists_events(values, 7, INTERVAL)]
    assert ids == [e["event_id"] for e in events.exists_events(values, 7, INTERVAL)]
    assert set(ids).isdisjoint(e["event_id"] for e in events.exists_events(values, 8, INTERVAL))
    assert len(set(ids)) == len(rows)


def test_shards_are_swept_in_batches_in_shard_and_id_order_without_deleted_zones(pool):
    zones = Zone.objects.bulk_create([zone_in_shard(pool, 9, f"z{i}.example.") for i in range(5)]
                                     + [zone_in_shard(pool, 10, "next-shard.example.")]
                                     + [zone_in_shard(pool, 9, "gone.example.", deleted_at=timezone.now())])
    in_order = sorted((str(z.id) for z in zones[:5])) + [str(zones[5].id)]
    published = []
    assert events.prepare_sweep(100, [9, 10, 11]) == {9, 10, 11}
    sweep = [events.sweep_batch(100, [9, 10], INTERVAL, 4, published.append, "me") for _ in range(3)]
    # 4 zones of shard 9 (it is not finished), then its last one and shard 10's; then nothing is left.
    assert sweep == [([9, 10], [], 4), ([9, 10], [9, 10], 2), ([], [], 0)]
    assert [len(batch) for batch in published] == [4, 2]
    assert [e["payload"]["id"] for batch in published for e in batch] == in_order
    assert events.prepare_sweep(100, [9, 10, 11]) == {11}
    assert set(ExistsSweep.objects.filter(done=True).values_list("swept_by", flat=True)) == {"me"}


def test_a_zone_whose_payload_cannot_be_built_is_logged_and_skipped(pool, monkeypatch, caplog):
    zones = Zone.objects.bulk_create([zone_in_shard(pool, 3, f"z{i}.example.") for i in range(3)])
    bad = sorted(zones, key=lambda z: str(z.id))[1].id
    build = events.zone_payload
    monkeypatch.setattr(events, "zone_payload", lambda z: build({**z, "serial": None} if z["id"] == bad else z))
    published = []
    events.prepare_sweep(1, [3])
    assert events.sweep_batch(1, [3], INTERVAL, 10, published.extend, "me") == ([3], [3], 3)
    assert sorted(e["payload"]["id"] for e in published) == sorted(str(z.id) for z in zones if z.id != bad)
    assert f"zone {bad}: cannot build its exists event" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_shard_locked_by_another_producer_is_left_to_it(pool):
    """The row lock is what keeps two producers that both think they own a shard from both sweeping it."""
    Zone.objects.bulk_create([zone_in_shard(pool, 5, "a.example.")])
    events.prepare_sweep(1, [5])
    locked, release = threading.Event(), threading.Event()

    def other_producer():
        with transaction.atomic():
            ExistsSweep.objects.select_for_update().get(period=1, shard=5)
            locked.set()
            release.wait(30)
        connection.close()

    thread = threading.Thread(target=other_producer)
    thread.start()
    try:
        assert locked.wait(30)
        published = []
        assert events.sweep_batch(1, [5], INTERVAL, 10, published.extend, "me") == ([], [], 0)
        assert published == []
    finally:
        release.set()
        thread.join(30)
    assert events.sweep_batch(1, [5], INTERVAL, 10, published.extend, "me") == ([5], [5], 1)
    assert len(published) == 1


@pytest.fixture
def published(pool, bus):
    for i in range(5):
        zone = new_zone(f"z{i}.example.")
        writes.update_zone(zone.id, ttl=100 + i)
    relay_outbox(bus, 100)
    return list(OutboxEvent.objects.order_by("seq"))


def test_admins_page_through_the_events_by_cursor(published):
    admin = client_for(make_user("root", "ops", role="admin"))
    first = admin.get("/v2/events", {"limit": 4}).json()
    assert [e["cursor"] for e in first["events"]] == [1, 2, 3, 4]
    assert first["events"][0] == events.outbox_envelope(published[0])
    second = admin.get(first["links"]["next"]).json()
    third = admin.get(second["links"]["next"]).json()
    assert [e["cursor"] for e in second["events"] + third["events"]] == list(range(5, 11))
    assert "next" not in third["links"]
    updates = admin.get("/v2/events", {"after": 3, "type": events.UPDATE}).json()["events"]
    assert [e["cursor"] for e in updates] == [4, 6, 8, 10]
    assert all(e["event_type"] == events.UPDATE for e in updates)


def test_events_are_for_admins_only(published):
    assert client_for(make_user("alice", "p1")).get("/v2/events").status_code == 403


@pytest.mark.parametrize("query, field", [
    ({"after": "abc"}, "after"), ({"after": "-1"}, "after"), ({"type": "dns.zone.exists"}, "type"),
    ({"type": "dns.zone.create,bogus"}, "type"), ({"limit": "0"}, "limit"),
])
def test_bad_event_queries_get_a_400_naming_the_field(published, query, field):
    response = client_for(make_user("root", "ops", role="admin")).get("/v2/events", query)
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "invalid_object" and list(body["errors"]) == [field]


def test_a_row_whose_payload_cannot_be_built_is_logged_as_an_error(pool, caplog):
    caplog.set_level(logging.ERROR, logger="zones.events")
    zone = Zone.objects.bulk_create([zone_in_shard(pool, 2, "a.example.")])[0]
    row = {**Zone.objects.values(*events.ZONE_FIELDS).get(), "created_at": "not a time"}
    assert events.exists_events([row], 1, INTERVAL) == []
    assert [r.levelname for r in caplog.records] == ["ERROR"] and str(zone.id) in caplog.text
