"""What the provisioning pipeline (workers.tasks) reads and records: a pool's work as plain
values, the changes to push, which of them are still current, each server's result, and each
zone's outcome. An older result never overwrites a newer change."""
import logging
from dataclasses import dataclass
from enum import StrEnum

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from dnsctl import metrics
from zones.models import NameserverStatus, Pool, RecordSet, TargetStatus, Zone

from .pools import target_options

log = logging.getLogger(__name__)
Action, Status = Zone.Action, Zone.Status


class Mode(StrEnum):
    """What pushing a batch means for its zones (a str: Celery messages carry its value)."""

    CHANGE = "change"  # the zone's own pending change: its outcome is the zone's status
    SYNC = "sync"  # re-push a healthy zone without changing it: a failure puts it in ERROR for recovery
    TARGET_SYNC = "target_sync"  # replay onto one target: zone state is left alone


CHANGE, SYNC, TARGET_SYNC = Mode.CHANGE, Mode.SYNC, Mode.TARGET_SYNC


@dataclass(frozen=True)
class ZoneRef:
    """One zone's work in the pipeline: the action its targets must take at this serial, in this pool.
    Celery messages carry its JSON form (to_json: the dict refs always had, so messages in flight
    across an upgrade still read)."""

    id: str
    name: str
    action: str
    serial: int
    pool: str

    @classmethod
    def of(cls, zone: dict, action: str | None = None) -> "ZoneRef":
        """From a Zone values() row (id, name, action, serial, pool_id); action overrides the zone's."""
        return cls(str(zone["id"]), zone["name"], action or zone["action"], zone["serial"], str(zone["pool_id"]))

    @classmethod
    def from_json(cls, data: dict) -> "ZoneRef":
        return cls(str(data["id"]), data["name"], data["action"], int(data["serial"]), str(data["pool"]))

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "action": self.action, "serial": self.serial, "pool": self.pool}


def refs_from_json(items: list[dict]) -> list[ZoneRef]:
    return [ZoneRef.from_json(item) for item in items]


def refs_to_json(refs: list[ZoneRef]) -> list[dict]:
    return [ref.to_json() for ref in refs]


def pool_work(pool_id) -> dict | None:
    """Everything a task needs about a pool, as plain values (tasks never hold models)."""
    pool = (Pool.objects.filter(id=pool_id).select_related("tsig_key")
            .prefetch_related("targets__tsig_key", "nameservers", "also_notifies").first())
    if pool is None:
        return None
    return {
        "id": str(pool.id), "name": pool.name, "threshold": pool.threshold_percentage,
        "notify_source": pool.notify_source,  # dnsclient.send_notify(..., source=...)
        "catalog_zone": pool.catalog_zone,  # set: the pipeline provisions through the catalog, not the targets
        "targets": [
            {"id": str(t.id), "name": t.name, "type": t.type, "options": target_options(t, pool),
             "masters": t.master_addresses()}
            for t in pool.targets.all()
        ],
        "nameservers": [{"id": str(n.id), "host": n.host, "port": n.port, "name": n.public_name(i)}
                        for i, n in enumerate(pool.nameservers.all())],
        "also_notifies": [{"host": a.host, "port": a.port} for a in pool.also_notifies.all()],
    }


def change_ref(zone_id, action, serial) -> ZoneRef | None:
    """The ref for a zone's pending change, or None when a newer change superseded it."""
    zone = Zone.objects.filter(id=zone_id, deleted_at__isnull=True, action=action, serial=serial).values(
        "id", "name", "action", "serial", "pool_id").first()
    return zone and ZoneRef.of(zone)


@transaction.atomic
def claim_changes(limit: int) -> list[ZoneRef]:
    """Changes waiting to be pushed, oldest first, claimed so that no other worker pushes them too.

    Every committed change enqueues a zone_action, and the first one to run takes every change
    waiting then: under a burst, one pipeline carries many zones instead of one per zone.
    FOR NO KEY UPDATE: a task inserting a status row holds a key-share lock on the zone row, which
    FOR UPDATE would see as taken and skip, leaving the change unpushed until recovery."""
    waiting = (Zone.objects.select_for_update(skip_locked=True, no_key=True)
               .filter(status=Status.PENDING, deleted_at__isnull=True).exclude(pushed_serial=F("serial"))
               .order_by("enqueued_at"))
    rows = list(waiting.values("id", "name", "action", "serial", "pool_id")[:limit])
    Zone.objects.filter(id__in=[z["id"] for z in rows]).update(pushed_serial=F("serial"))
    return [ZoneRef.of(z) for z in rows]


def current_refs(refs: list[ZoneRef], mode: Mode) -> list[ZoneRef]:
    """The refs still worth pushing, in one query: a newer change or a delete makes a ref stale."""
    rows = {str(r["id"]): r for r in Zone.objects.filter(id__in=[ref.id for ref in refs]).values(
        "id", "serial", "action", "deleted_at")}

    def current(ref):
        row = rows.get(ref.id)
        if mode == Mode.TARGET_SYNC:  # replay what the zone is now: live zones exist, deleted ones don't
            gone = row is None or row["deleted_at"] is not None or row["action"] == Action.DELETE
            return gone == (ref.action == Action.DELETE)
        if row is None or row["deleted_at"] is not None or row["serial"] != ref.serial:
            return False
        return row["action"] == (Action.NONE if mode == Mode.SYNC else ref.action)

    return [ref for ref in refs if current(ref)]


def record_target_results(target_id, refs: list[ZoneRef], errors: dict):
    """Store one target's result for each zone of a batch (errors: zone id -> None or message)."""
    _record_latest(TargetStatus, "target_id", target_id, "serial", [
        {"zone_id": r.id, "serial": r.serial, "action": r.action, "ok": errors[r.id] is None,
         "message": (errors[r.id] or "")[:2000]} for r in refs])


def record_target_result(zone_id, target_id, action, serial, ok, message=""):
    _record_latest(TargetStatus, "target_id", target_id, "serial", [
        {"zone_id": str(zone_id), "serial": serial, "action": action, "ok": ok,
         "message": ("" if ok else message or "")[:2000]}])


def record_nameserver_results(nameserver_id, rows: list[dict]):
    """Store what a nameserver served for each zone of a batch: rows of zone_id, expected_serial,
    serial, ok, message."""
    _record_latest(NameserverStatus, "nameserver_id", nameserver_id, "expected_serial",
                   [{**row, "message": row["message"][:2000]} for row in rows])


def record_nameserver_result(zone_id, nameserver_id, expected_serial, serial, ok, message=""):
    record_nameserver_results(nameserver_id, [{"zone_id": str(zone_id), "expected_serial": expected_serial,
                                               "serial": serial, "ok": ok, "message": message}])


def _record_latest(model, server_field: str, server_id, version_field: str, rows: list[dict]):
    """Upsert one status row per zone for one server, in two queries; a row for an older version
    than the stored one is dropped (a late result of a superseded change)."""
    if not rows:
        return
    with transaction.atomic():
        stored = dict(model.objects.select_for_update().filter(
            zone_id__in=[r["zone_id"] for r in rows], **{server_field: server_id}).values_list("zone_id", version_field))
        stored = {str(zone_id): version for zone_id, version in stored.items()}
        fresh = [model(**{server_field: server_id}, **row) for row in rows
                 if stored.get(str(row["zone_id"]), row[version_field]) <= row[version_field]]
        model.objects.bulk_create(fresh, update_conflicts=True, unique_fields=["zone", server_field[:-3]],
                                  update_fields=[f for f in rows[0] if f != "zone_id"] + ["updated_at"])


def finish(ref: ZoneRef, mode: Mode, ok: bool, reason: str = "", tenant_reason: str = "") -> bool:
    """Record the outcome of pushing one zone in the given mode. `reason` is the operator's (servers,
    addresses, their messages); `tenant_reason` is what the zone's project may read."""
    if mode == Mode.CHANGE:
        return finish_zone_action(ref.id, ref.action, ref.serial, ok, reason, tenant_reason)
    if mode == Mode.SYNC:
        return finish_sync(ref.id, ref.serial, ok, reason, tenant_reason)
    if not ok:
        log.warning("target sync of %s (%s) failed: %s", ref.name, ref.action, reason)
    return False


@transaction.atomic
def finish_zone_action(zone_id, action, serial, ok: bool, reason: str = "", tenant_reason: str = "") -> bool:
    """Record the outcome of the work for `serial`. A newer change wins: an older result is dropped."""
    zone = Zone.objects.select_for_update().filter(id=zone_id, deleted_at__isnull=True).first()
    if zone is None or zone.serial != serial or zone.action != action:
        log.debug("zone %s: result for %s@%s dropped, the zone moved on", zone_id, action, serial)
        return False
    if zone.status == Status.PENDING:  # the change's own outcome (a retry of an ERROR is not timed again)
        metrics.change_settled(action, ok, zone.updated_at, timezone.now())
    zone.enqueued_at = None
    if not ok:
        zone.status, zone.reason = Status.ERROR, reason[:4000]
        zone.tenant_reason = (tenant_reason or "The change could not be provisioned.")[:4000]
        zone.recordsets.filter(status=RecordSet.Status.PENDING).update(status=RecordSet.Status.ERROR)
    elif action == Action.DELETE:
        zone.status, zone.action, zone.deleted_at = Status.DELETED, Action.NONE, timezone.now()
        zone.reason = zone.tenant_reason = ""
    else:
        zone.status, zone.action = Status.ACTIVE, Action.NONE
        zone.reason = zone.tenant_reason = ""
        zone.recordsets.filter(~Q(status=RecordSet.Status.ACTIVE), serial__lte=serial).update(
            status=RecordSet.Status.ACTIVE, action=Action.NONE)
    zone.save()
    return True


@transaction.atomic
def finish_sync(zone_id, serial, ok: bool, reason: str = "", tenant_reason: str = "") -> bool:
    """A sync that failed puts the zone in ERROR with an UPDATE pending, so recovery retries it."""
    zone = Zone.objects.select_for_update().filter(id=zone_id, deleted_at__isnull=True).first()
    if zone is None or zone.serial != serial or zone.action != Action.NONE:
        return False
    if ok:  # nothing changed: keep updated_at, the time of the zone's last real change
        Zone.objects.filter(id=zone_id).update(enqueued_at=None)
        return True
    zone.status, zone.action, zone.reason = Status.ERROR, Action.UPDATE, f"Sync failed: {reason}"[:4000]
    zone.tenant_reason = f"Sync failed: {tenant_reason or 'the zone could not be provisioned.'}"[:4000]
    zone.enqueued_at = None
    zone.save()
    return True

