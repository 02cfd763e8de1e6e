"""Zone events: one payload shape for create/update/delete (from the outbox) and exists (from sweeps).

Create/update/delete are written to the outbox in the change's own transaction, so an event exists
exactly when its change committed; a relay publishes them. Exists events are not stored: a sweep
builds them from the zone rows, shard by shard, and their id is derived from (zone, audit period)
so a repeat (a batch re-sent after a producer died) is recognisable by any consumer.
"""
import logging
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from . import plain_sql
from .models import ExistsSweep, OutboxEvent, Zone

log = logging.getLogger(__name__)

CREATE, UPDATE, DELETE, EXISTS = "dns.zone.create", "dns.zone.update", "dns.zone.delete", "dns.zone.exists"
TYPES = (CREATE, UPDATE, DELETE, EXISTS)
EXISTS_NAMESPACE = uuid.UUID("6f1d3c2e-7d1b-5b7e-9a51-2f0e6c1d4b10")
ZONE_FIELDS = ("id", "name", "project_id", "pool_id", "serial", "status", "action", "ttl", "email", "shard",
               "created_at", "updated_at", "deleted_at")


def _time(value: datetime | None) -> str | None:
    return value.astimezone(dt_timezone.utc).isoformat() if value else None


def zone_payload(zone: dict) -> dict:
    """The zone's fields as plain JSON values (the shape every event type shares)."""
    return {
        "id": str(zone["id"]), "name": zone["name"], "project_id": zone["project_id"],
        "pool_id": str(zone["pool_id"]), "serial": int(zone["serial"]), "status": zone["status"],
        "action": zone["action"], "ttl": int(zone["ttl"]), "email": zone["email"], "shard": int(zone["shard"]),
        "created_at": _time(zone["created_at"]), "updated_at": _time(zone["updated_at"]),
        "deleted_at": _time(zone["deleted_at"]),
    }


def envelope(event_id, event_type: str, timestamp: str, payload: dict) -> dict:
    return {"event_id": str(event_id), "event_type": event_type, "timestamp": timestamp, "payload": payload}


# --- the outbox (create / update / delete) ---------------------------------------------------------


def change_event(zone: Zone, event_type: str, actor) -> OutboxEvent:
    """The change's event, not yet written: zones.journal.record writes it with the change's record, in
    the change's transaction, adding that record's id (`change_id`). It carries who made the change (a
    zones.journal.Actor). Call after the zone is saved."""
    payload = zone_payload({f: getattr(zone, f) for f in ZONE_FIELDS})
    payload.update(actor=actor.as_dict())
    return OutboxEvent(type=event_type, zone_id=zone.id, payload=payload)


def outbox_envelope(row: OutboxEvent) -> dict:
    return {**envelope(row.event_id, row.type, _time(row.created_at), row.payload), "cursor": row.seq}


def publish_outbox(publish, batch_size: int) -> int:
    """Hand the oldest unpublished events to publish(list of envelopes), in id order, and number them.

    One batch per transaction: the rows are numbered and marked, then published, then committed.
    If publishing raises (the bus is down) the transaction rolls back and the rows wait for the next
    run; if the commit fails after publishing, the same events go out again (same event ids).
    Callers run one relay at a time (a cluster lock); `seq` is unique, so a second one would fail.
    """
    with transaction.atomic():
        rows = list(OutboxEvent.objects.select_for_update().filter(seq__isnull=True).order_by("id")[:batch_size])
        if not rows:
            return 0
        last = OutboxEvent.objects.aggregate(Max("seq"))["seq__max"] or 0
        now = timezone.now()
        for i, row in enumerate(rows, start=last + 1):
            row.seq, row.published_at = i, now
        plain_sql.update_each(OutboxEvent, "seq", {row.id: row.seq for row in rows}, published_at=now)
        publish([outbox_envelope(row) for row in rows])
    return len(rows)


def published_events(after: int = 0, types=None):
    """Published outbox events after a cursor, in publish order (what GET /v2/events pages through)."""
    qs = OutboxEvent.objects.filter(seq__gt=after).order_by("seq")
    return qs.filter(type__in=types) if types else qs


def trim_outbox(older_than: float) -> int:
    """Delete published events older than `older_than` seconds. Unpublished ones always wait, and the
    newest published one stays: the next cursor follows it."""
    newest = OutboxEvent.objects.aggregate(Max("seq"))["seq__max"]
    if newest is None:  # nothing published yet (a new system): nothing to trim
        return 0
    cutoff = timezone.now() - timedelta(seconds=older_than)
    deleted, _ = OutboxEvent.objects.filter(seq__lt=newest, created_at__lt=cutoff).delete()
    return deleted


# --- exists sweeps ----------------------------------------------------------------------------------


def period_of(now: float, interval: float) -> int:
    return int(now // interval)


def exists_event_id(zone_id: str, period_beginning: str) -> uuid.UUID:
    """The same zone in the same audit period always gets the same id: repeats can be dropped."""
    return uuid.uuid5(EXISTS_NAMESPACE, f"{zone_id}/{period_beginning}")


def audit_period(period: int, interval: float) -> tuple[str, str]:
    """(beginning, ending) of a period as the exists payload states them."""
    return tuple(_time(datetime.fromtimestamp(p * interval, dt_timezone.utc)) for p in (period, period + 1))


def exists_events(zones: list[dict], period: int, interval: float) -> list[dict]:
    """One exists event per zone; a zone whose payload cannot be built is logged and skipped."""
    beginning, ending = audit_period(period, interval)
    now = _time(timezone.now())
    events = []
    for zone in zones:
        try:
            payload = {**zone_payload(zone), "audit_period_beginning": beginning, "audit_period_ending": ending}
        except Exception:  # noqa: BLE001 - one bad row must not end the sweep
            log.exception("zone %s: cannot build its exists event, skipped", zone.get("id"))
            continue
        events.append(envelope(exists_event_id(payload["id"], beginning), EXISTS, now, payload))
    return events


def prepare_sweep(period: int, shards) -> set[int]:
    """Make sure each shard has its progress row for the period; return the shards not done yet."""
    ExistsSweep.objects.bulk_create([ExistsSweep(period=period, shard=s) for s in shards], ignore_conflicts=True)
    done = set(ExistsSweep.objects.filter(period=period, done=True).values_list("shard", flat=True))
    return set(shards) - done


def sweep_batch(period: int, shards: list[int], interval: float, batch_size: int, publish,
                member: str) -> tuple[list[int], list[int], int]:
    """Emit exists events for the next `batch_size` live zones of some shards, in (shard, id) order.

    Returns (shards it could lock, shards now finished, zones read). A shard's progress row stays
    locked from reading the batch to committing how far it got, so two producers that both think
    they own a shard (during a re-split) never send the same batch: the second skips it and comes
    back later. Only a producer dying between publishing and committing repeats a batch, and the
    repeats carry the same event ids.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Progress lost in a database crash only means a batch is sent again (same ids): no need
            # to wait for the disk on each of thousands of small commits.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        rows = list(ExistsSweep.objects.select_for_update(skip_locked=True)
                    .filter(period=period, shard__in=shards, done=False).order_by("shard"))
        if not rows:
            return [], [], 0
        where = Q(shard__in=[r.shard for r in rows if r.last_zone_id is None])
        for row in rows:
            if row.last_zone_id is not None:  # partly swept: continue after its last zone
                where |= Q(shard=row.shard, id__gt=row.last_zone_id)
        # The range lets PostgreSQL walk the (shard, id) index in order instead of sorting the shards' zones.
        in_range = Q(shard__gte=rows[0].shard, shard__lte=rows[-1].shard, deleted_at__isnull=True)
        batch = list(Zone.objects.filter(in_range, where).order_by("shard", "id").values(*ZONE_FIELDS)[:batch_size])
        publish(exists_events(batch, period, interval))
        full = len(batch) == batch_size
        finished = [r for r in rows if not full or r.shard < batch[-1]["shard"]]
        ExistsSweep.objects.filter(id__in=[r.id for r in finished]).update(
            done=True, swept_by=member, updated_at=timezone.now())
        if full:
            ExistsSweep.objects.filter(period=period, shard=batch[-1]["shard"]).update(
                last_zone_id=batch[-1]["id"], swept_by=member, updated_at=timezone.now())
        return [r.shard for r in rows], [r.shard for r in finished], len(batch)


def trim_sweeps(before_period: int) -> int:
    deleted, _ = ExistsSweep.objects.filter(period__lt=before_period).delete()
    return deleted

