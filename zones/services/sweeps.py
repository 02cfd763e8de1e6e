"""What the periodic and on-demand sweeps claim: recovery of lost or failed changes, periodic
sync of healthy zones, a target's replay since a time, and the purge of deleted zones; each
periodic run is claimed once per interval."""
import math
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from celery import signature
from django.conf import settings
from django.db import transaction
from django.db.models import Case, Exists, F, OuterRef, Q, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from zones import plain_sql, validation
from zones.models import (SHARDS, NameserverStatus, PeriodicRun, PoolNameserver, PoolTarget, Zone, ZoneExport,
                          ZoneImport)

from .pipeline import ZoneRef
from .selectors import find_target

Action, Status = Zone.Action, Zone.Status


def max_propagation_seconds() -> float:
    """How long a change's work may take before it counts as lost: every attempt on the targets (each
    up to TARGET_TIMEOUT, target_batch's soft time limit) with the waits between them, then the whole
    SOA polling budget (its polls, their backed-off waits, and the time polls may go on while a transfer
    is under way). Shorter, and recovery would give a slow target a second pipeline every interval."""
    c = settings.DNSCTL
    retries = c["TARGET_MAX_RETRIES"]
    targets = (retries + 1) * c["TARGET_TIMEOUT"] + retries * c["TARGET_RETRY_INTERVAL"]
    waits = sum(min(c["POLL_RETRY_INTERVAL"] * 2 ** i, c["POLL_RETRY_MAX_INTERVAL"])
                for i in range(c["POLL_MAX_RETRIES"]))
    polls = c["POLL_DELAY"] + c["POLL_TIMEOUT"] * (c["POLL_MAX_RETRIES"] + 1) + waits + c["POLL_TRANSFER_MAX_WAIT"]
    return targets + polls


def start_periodic_run(name: str, interval: float) -> bool:
    """Claim this interval's run of a sweep; False if a run started less than ~an interval ago.

    Called under the sweep's cluster lock. 0.9 × interval leaves room for beat's jitter."""
    now = timezone.now()
    PeriodicRun.objects.get_or_create(name=name)
    recent = now - timedelta(seconds=interval * 0.9)
    return bool(PeriodicRun.objects.filter(Q(started_at__isnull=True) | Q(started_at__lte=recent), name=name)
                .update(started_at=now, finished_at=None, runs=F("runs") + 1))


def end_periodic_run(name: str, summary: dict):
    text = ", ".join(f"{k}: {v}" for k, v in summary.items())
    PeriodicRun.objects.filter(name=name).update(finished_at=timezone.now(), summary=text[:4000])


def _not_in_flight(now) -> Q:
    return Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - timedelta(seconds=max_propagation_seconds()))


def _claim(refs: list[ZoneRef], now) -> list[ZoneRef]:
    """Mark the zones' work as in flight; a zone claimed meanwhile (a new change) is left out."""
    claimed = set(Zone.objects.filter(_not_in_flight(now), id__in=[r.id for r in refs])
                  .values_list("id", flat=True))
    refs = [r for r in refs if uuid.UUID(r.id) in claimed]
    # pushed_serial := the serial each ref carries, not the row's serial now: a change that committed in
    # between stays unpushed, and its kick takes it.
    plain_sql.update_each(Zone, "pushed_serial", {ref.id: ref.serial for ref in refs}, enqueued_at=now)
    return refs


RECOVERY_ORDER = Case(When(action=Action.DELETE, then=0), When(action=Action.CREATE, then=1), default=2)


@transaction.atomic
def claim_recovery(limit: int) -> list[ZoneRef]:
    """Zones in ERROR, or PENDING with no work in flight, with their pending action: deletes first,
    then creates, then updates, oldest change first. Claimed, so the next sweep leaves them alone
    while this one's work runs."""
    now = timezone.now()
    rows = (Zone.objects.filter(_not_in_flight(now), deleted_at__isnull=True,
                                status__in=[Status.ERROR, Status.PENDING])
            .annotate(order=RECOVERY_ORDER).order_by("order", "updated_at")
            .values("id", "name", "action", "serial", "pool_id")[:limit])
    refs = [ZoneRef.of(z, z["action"] if z["action"] != Action.NONE else Action.UPDATE) for z in rows]
    # A zone left in ERROR with no action pending (an old row) is pushed as an update.
    Zone.objects.filter(id__in=[r.id for r in refs if r.action == Action.UPDATE],
                        action=Action.NONE).update(action=Action.UPDATE)
    return _claim(refs, now)


def lagging_zones():
    """ACTIVE zones that some nameserver of their pool does not serve at the current serial."""
    in_sync = NameserverStatus.objects.filter(zone=OuterRef(OuterRef("pk")), serial=OuterRef(OuterRef("serial")))
    missing = PoolNameserver.objects.filter(pool=OuterRef("pool")).exclude(id__in=in_sync.values("nameserver_id"))
    return Zone.objects.filter(Exists(missing), status=Status.ACTIVE, deleted_at__isnull=True)


def sync_batches(batch_size: int, changed_within: int | None = None, shards: range | None = None):
    """Yield claimed batches of healthy zones to re-push: every lagging one, the ACTIVE ones changed in
    the last changed_within seconds, and the ACTIVE ones in `shards` (a slice of the full pass); with
    neither given, every ACTIVE zone. Keyset-paged, never the whole table."""
    healthy = Zone.objects.filter(status=Status.ACTIVE, action=Action.NONE, deleted_at__isnull=True)
    if changed_within or shards is not None:
        wanted = Q(id__in=lagging_zones().values("id"))
        if changed_within:
            wanted |= Q(updated_at__gte=timezone.now() - timedelta(seconds=changed_within))
        if shards is not None:
            wanted |= Q(shard__gte=shards.start, shard__lt=shards.stop)
        healthy = healthy.filter(wanted)
    last = None
    while True:
        page = healthy.filter(id__gt=last) if last else healthy
        rows = list(page.order_by("id").values("id", "name", "action", "serial", "pool_id")[:batch_size])
        if not rows:
            return
        last = rows[-1]["id"]
        yield _claim([ZoneRef.of(z, Action.UPDATE) for z in rows], timezone.now())


def sync_slice(now: float, interval: float, full_pass: float) -> range | None:
    """The shards this run of periodic sync re-pushes so that every zone gets one re-push per full_pass
    seconds: the 4,096 shards cut into full_pass / interval slices, taken in turn by the clock (so a
    missed run skips a slice, it does not shift the others). None when full_pass is 0 (no full pass)."""
    if not full_pass or not interval:
        return None
    slices = max(1, math.ceil(full_pass / interval))
    index = int(now // interval) % slices
    return range(SHARDS * index // slices, SHARDS * (index + 1) // slices)


def target_sync_plan(target: PoolTarget, since) -> list[ZoneRef]:
    """What to replay on one target for everything that changed since `since`, in change order:
    a zone deleted since then that existed before → DELETE; a zone created since → CREATE (it
    replaces an earlier delete of the same name); anything else changed since → UPDATE."""
    zones = (Zone.objects.filter(pool_id=target.pool_id)
             .filter(Q(updated_at__gte=since) | Q(created_at__gte=since) | Q(deleted_at__gte=since))
             .order_by("updated_at", "id").values("id", "name", "action", "serial", "pool_id", "created_at",
                                                  "deleted_at"))
    plan = {}
    for zone in zones.iterator(chunk_size=2000):
        gone = zone["deleted_at"] is not None or zone["action"] == Action.DELETE
        if gone:
            if zone["created_at"] < since:
                plan[zone["name"]] = ZoneRef.of(zone, Action.DELETE)
        elif zone["created_at"] >= since:
            plan[zone["name"]] = ZoneRef.of(zone, Action.CREATE)
        else:
            plan[zone["name"]] = ZoneRef.of(zone, Action.UPDATE)
    return list(plan.values())


def parse_since(value) -> datetime:
    """An ISO 8601 timestamp (naive means UTC) that is not in the future, or a ValidationError."""
    parsed = parse_datetime(str(value or "").strip())
    if parsed is None:
        validation.fail("since", f"'{value}' is not an ISO 8601 timestamp (e.g. 2026-01-31T12:00:00Z).")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt_timezone.utc)
    if parsed > timezone.now():
        validation.fail("since", f"{parsed.isoformat()} is in the future.")
    return parsed


def start_target_sync(pool, target, since) -> str:
    """Validate, count and hand a target sync to Celery; answers at once (CLI and API)."""
    target = find_target(str(pool), str(target))
    since = parse_since(since)
    count = len(target_sync_plan(target, since))
    signature("workers.tasks.target_sync", args=(str(target.pool_id), str(target.id), since.isoformat())).apply_async(
        ignore_result=True)
    return f"Syncing {count} zones on target {target.name}"


def purge_deleted(older_than: int, batch_size: int, max_batches: int = 100) -> int:
    """Remove soft-deleted zones deleted more than older_than seconds ago, batch_size at a time."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    purged = 0
    for _ in range(max_batches):
        ids = list(Zone.objects.filter(status=Status.DELETED, deleted_at__lt=cutoff)
                   .values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        with transaction.atomic():
            Zone.objects.filter(id__in=ids).delete()
        purged += len(ids)
    return purged


def purge_zone_tasks(older_than: int, batch_size: int, max_batches: int = 100) -> int:
    """Remove import and export tasks (and the exports' files) that ended, COMPLETE or ERROR, more than
    older_than seconds ago (0: keep them), batch_size at a time. A PENDING task is never removed here."""
    if not older_than:
        return 0
    cutoff = timezone.now() - timedelta(seconds=older_than)
    purged = 0
    for model in (ZoneImport, ZoneExport):
        for _ in range(max_batches):
            ids = list(model.objects.filter(status__in=[ZoneImport.Status.COMPLETE, ZoneImport.Status.ERROR],
                                            updated_at__lt=cutoff).values_list("id", flat=True)[:batch_size])
            if not ids:
                break
            model.objects.filter(id__in=ids).delete()
            purged += len(ids)
    return purged
