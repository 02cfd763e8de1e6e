"""The only code that changes zones, recordsets and pools.

Every change runs in one transaction that locks the zone row, bumps the serial once (only if
the zone's content really changed), sets status PENDING with the action, records the change once
(zones.journal: who, what, which serial; with its outbox event), and enqueues the provisioning
work on commit: nothing is sent for a change that did not commit. Who: every change takes an
`actor` (zones.journal.Actor); without one it is the system's.
"""
import ipaddress
import logging
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from celery import signature
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from dnsctl import metrics

from . import events, journal, quotas, reserved, validation
from .journal import SYSTEM, Actor, effective_ttl
from .models import (
    NameserverStatus,
    Pool,
    PoolAlsoNotify,
    PoolNameserver,
    PoolNsRecord,
    PeriodicRun,
    PoolTarget,
    RecordSet,
    TargetStatus,
    TsigKey,
    Zone,
)
from .serials import next_serial

log = logging.getLogger(__name__)
Action, Status = Zone.Action, Zone.Status


# --- selectors --------------------------------------------------------------------------------


def zones_for(project_id: str | None):
    """Live zones a caller may see: one project's, or every project's (project_id None = admin)."""
    qs = Zone.objects.filter(deleted_at__isnull=True).select_related("pool")
    return qs if project_id is None else qs.filter(project_id=project_id)


def nameservers_of(zone: Zone) -> list[dict]:
    return [{"hostname": r.hostname, "priority": r.priority} for r in zone.pool.ns_records.all()]


def propagation_of(zone: Zone, *, operator: bool = False) -> dict:
    """Each target's and nameserver's last result for the zone, so a lagging server shows.

    Operators see every server with its address and what it said. A tenant sees its nameservers by
    their public NS names, whether each serves the zone's serial, and how many targets applied the
    change: no targets, addresses, ports or server messages."""
    targets = {s.target_id: s for s in zone.target_statuses.all()}
    nameservers = {s.nameserver_id: s for s in zone.nameserver_statuses.all()}
    if not operator:
        applied = [s for s in targets.values() if s.serial == zone.serial]
        return {
            "zone_id": str(zone.id), "name": zone.name, "serial": zone.serial,
            "status": zone.status, "action": zone.action, "reason": zone.tenant_reason,
            "provisioning": {"servers": zone.pool.targets.count(), "done": sum(s.ok for s in applied),
                             "failed": sum(not s.ok for s in applied)},
            "nameservers": [_public_ns_row(zone, ns.public_name(i), nameservers.get(ns.id))
                            for i, ns in enumerate(zone.pool.nameservers.all())],
        }

    def target_row(t):
        s = targets.get(t.id)
        return {
            "id": str(t.id), "name": t.name, "type": t.type,
            "action": s.action if s else None, "serial": s.serial if s else None,
            "ok": s.ok if s else None, "message": s.message if s else "",
            "updated_at": s.updated_at if s else None,
        }

    def ns_row(ns):
        s = nameservers.get(ns.id)
        return {
            "id": str(ns.id), "host": ns.host, "port": ns.port,
            "serial": s.serial if s else None, "expected_serial": s.expected_serial if s else None,
            "ok": s.ok if s else None, "message": s.message if s else "",
            "in_sync": bool(s and s.serial == zone.serial), "updated_at": s.updated_at if s else None,
        }

    return {
        "zone_id": str(zone.id), "name": zone.name, "serial": zone.serial,
        "status": zone.status, "action": zone.action, "reason": zone.reason,
        "targets": [target_row(t) for t in zone.pool.targets.all()],
        "nameservers": [ns_row(ns) for ns in zone.pool.nameservers.all()],
    }


def _public_ns_row(zone: Zone, name: str, s: NameserverStatus | None) -> dict:
    return {"name": name, "serial": s.serial if s else None, "in_sync": bool(s and s.serial == zone.serial),
            "updated_at": s.updated_at if s else None}


# --- zones ------------------------------------------------------------------------------------


def default_pool() -> Pool:
    pool = Pool.objects.filter(name=settings.DNSCTL["DEFAULT_POOL"]).first()
    if pool is None and Pool.objects.count() == 1:
        pool = Pool.objects.get()
    if pool is None:
        validation.fail("pool_id", "No default pool is configured; create a pool named "
                        f"'{settings.DNSCTL['DEFAULT_POOL']}' or pass pool_id.")
    return pool


def _check_zone_name_free(name: str, project_id: str):
    live = Zone.objects.filter(deleted_at__isnull=True)
    if live.filter(name=name).exists():
        raise validation.Duplicate("zone", "name", f"A zone named {name} already exists.")
    labels = name.split(".")
    parents = [".".join(labels[i:]) for i in range(1, len(labels) - 1)]
    if live.filter(name__in=parents).exclude(project_id=project_id).exists():
        validation.fail("name", f"{name} is inside a zone that belongs to another project.")
    if live.filter(name__endswith="." + name).exclude(project_id=project_id).exists():
        validation.fail("name", f"{name} would contain a zone that belongs to another project.")


@transaction.atomic
def create_zone(*, project_id: str, name, email, ttl=None, description="", pool_id=None, admin=False,
                actor: Actor = SYSTEM) -> Zone:
    """A new zone in the default pool, or in pool_id if the project may use it. admin: the caller is an
    API admin, who may choose any pool and take public suffixes and blacklisted names."""
    name = validation.zone_name(name)
    reserved.check_zone_name(name, admin=admin)
    email = validation.email(email)
    ttl = validation.ttl(ttl) or settings.DNSCTL["DEFAULT_TTL"]
    pool = _pool_for(pool_id, project_id, admin)
    quotas.check_new_zone(project_id)
    _check_zone_name_free(name, project_id)
    zone = Zone(project_id=project_id, name=name, email=email, ttl=ttl, description=description or "",
                pool=pool, serial=next_serial(0), status=Status.PENDING, action=Action.CREATE,
                enqueued_at=timezone.now())
    try:
        with transaction.atomic():
            zone.save()
    except IntegrityError:
        raise validation.Duplicate("zone", "name", f"A zone named {name} already exists.") from None
    change = journal.Change(zone, journal.ZONE_CREATE, actor)
    change.zone_after = {field: getattr(zone, field) for field in journal.ZONE_FIELDS}
    _write_managed_recordsets(zone, change)
    _commit(zone, change, events.CREATE)
    return zone


def _pool_for(pool_id, project_id: str, admin: bool) -> Pool:
    if not pool_id:
        return default_pool()
    try:
        pool = Pool.objects.get(id=pool_id)
    except (Pool.DoesNotExist, ValidationError, ValueError):
        pool = None
    if pool is None or not (admin or pool_allows(pool, project_id)):
        # The same answer for a pool that does not exist and one the project may not use.
        validation.fail("attributes.pool_id", "No such pool is available to the project.")
    return pool


def pool_allows(pool: Pool, project_id: str) -> bool:
    """May the project ask for this pool? Its allowed_projects ("*": all), and the default pool always."""
    allowed = pool.allowed_projects or []
    return "*" in allowed or project_id in allowed or pool.name == settings.DNSCTL["DEFAULT_POOL"]


def pools_for(project_id: str | None):
    """The pools a caller may choose from (project_id None: an admin, every pool)."""
    pools = Pool.objects.all()
    if project_id is None:
        return pools
    allowed = [p.id for p in pools.only("id", "name", "allowed_projects") if pool_allows(p, project_id)]
    return pools.filter(id__in=allowed)


@transaction.atomic
def update_zone(zone_id, *, actor: Actor = SYSTEM, **fields) -> Zone:
    """Change email, ttl or description; only email and ttl change the zone's content (and are recorded,
    with a description changed at the same time)."""
    zone = _lock(zone_id)
    if zone.action == Action.DELETE:
        validation.fail("zone", "The zone is being deleted.")
    change = journal.Change(zone, journal.ZONE_UPDATE, actor)
    if "email" in fields and fields["email"] is not None:
        email = validation.email(fields["email"])
        change.field("email", zone.email, email)
        zone.email = email
    if "ttl" in fields and fields["ttl"] is not None:
        ttl = validation.ttl(fields["ttl"])
        change.field("ttl", zone.ttl, ttl)
        zone.ttl = ttl
    if "description" in fields and fields["description"] is not None:
        change.field("description", zone.description, fields["description"])
        zone.description = fields["description"]
    changed = bool({"email", "ttl"} & set(change.zone_after))
    if changed:
        _bump(zone, Action.UPDATE)
    zone.save()
    if changed:
        # Every RRset without its own TTL is served with the new one; they are not read here, so this
        # change cannot be an IXFR step (a secondary behind it gets an AXFR).
        change.incremental = "ttl" not in change.zone_after
        _write_managed_recordsets(zone, change)
        _commit(zone, change, events.UPDATE)
    return zone


@transaction.atomic
def delete_zone(zone_id, *, actor: Actor = SYSTEM) -> Zone:
    zone = _lock(zone_id)
    if zone.action != Action.DELETE:
        change = journal.Change(zone, journal.ZONE_DELETE, actor)
        change.zone_before = {field: getattr(zone, field) for field in journal.ZONE_FIELDS}
        change.incremental = False  # MiniDNS stops serving the zone: nothing to transfer
        _bump(zone, Action.DELETE)
        zone.save()
        _commit(zone, change, events.DELETE)
    return zone


def _lock(zone_id) -> Zone:
    return Zone.objects.select_for_update().select_related("pool").get(id=zone_id, deleted_at__isnull=True)


def _bump(zone: Zone, action: str):
    """One committed change: a newer serial, PENDING, and the action the targets must take."""
    zone.serial = next_serial(zone.serial)
    zone.version += 1
    zone.status = Status.PENDING
    zone.reason = zone.tenant_reason = ""
    zone.enqueued_at = timezone.now()  # the work _enqueue hands over on commit is in flight from now
    # A zone that never reached its targets still needs creating, whatever changed since.
    keep_create = zone.action == Action.CREATE and action == Action.UPDATE
    zone.action = Action.CREATE if keep_create else action


def _commit(zone: Zone, change: journal.Change, event_type: str):
    """The end of every change, in its transaction: its one record, its outbox event (with the actor)
    and its provisioning work (sent on commit)."""
    row = journal.record(change)
    events.record_change(zone, event_type, actor=change.actor, change_id=row.id)
    _enqueue(zone)


def _enqueue(zone: Zone):
    """Hand the change to Celery once it commits. If the broker is down the change is still safe
    in the database: recovery sends it when its enqueued_at is older than the propagation time."""
    zone_id, action, serial = str(zone.id), zone.action, zone.serial

    def send():
        try:
            # By name (zones/ never imports workers/), so say what the task says: no result to wait for,
            # and so no result-backend subscription that would hang the API while Redis is down.
            signature("workers.tasks.zone_action", args=(zone_id, action, serial)).apply_async(ignore_result=True)
        except Exception:  # noqa: BLE001 - the broker's failure must not fail a committed change
            log.warning("zone %s: could not enqueue %s@%s, recovery will retry it", zone_id, action, serial,
                        exc_info=True)

    transaction.on_commit(send)


def _write_managed_recordsets(zone: Zone, change: journal.Change):
    """SOA and apex NS follow the zone and its pool; users never edit them. BIND 9 refuses to load a
    zone without NS records, so a pool without any takes no zone and no change."""
    ns = [validation.zone_name(r.hostname, "ns_records") for r in zone.pool.ns_records.all()]
    if not ns:
        validation.fail("pool_id", "The zone's pool has no NS records, and a zone without them cannot be "
                                   "served; an admin must give the pool its ns_records first.")
    soa = (f"{ns[0]} {validation.email_to_rname(zone.email)} {zone.serial} "
           f"{zone.refresh} {zone.retry} {zone.expire} {zone.minimum}")
    _upsert_managed(zone, "SOA", [soa], change)
    _upsert_managed(zone, "NS", ns, change)


def _upsert_managed(zone: Zone, rtype: str, records: list[str], change: journal.Change):
    """Managed RRsets have no TTL of their own: they are served with the zone's."""
    rs, created = RecordSet.objects.get_or_create(
        zone=zone, name=zone.name, type=rtype,
        defaults={"records": records, "managed": True, "serial": zone.serial, "action": Action.CREATE},
    )
    if created:
        change.add(zone.name, rtype, zone.ttl, records)
    elif rs.records != records:
        change.remove(zone.name, rtype, change.zone_ttl_before, rs.records)
        change.add(zone.name, rtype, zone.ttl, records)
        rs.records, rs.serial, rs.status, rs.action = records, zone.serial, RecordSet.Status.PENDING, Action.UPDATE
        rs.version += 1
        rs.save()


# --- recordsets -------------------------------------------------------------------------------


@transaction.atomic
def create_recordset(zone_id, *, name, type, records, ttl=None, description="", actor: Actor = SYSTEM) -> RecordSet:
    zone = _lock(zone_id)
    _refuse_if_deleting(zone)
    rtype = validation.recordset_type(type)
    name = validation.record_name(name, zone.name)
    ttl = validation.ttl(ttl)
    rdata = validation.records(records, rtype, zone.name, name)
    if rtype == "NS" and name == zone.name:
        validation.fail("type", "NS records at the zone apex are managed by dnsctl.")
    siblings = set(zone.recordsets.filter(name=name).values_list("type", flat=True))
    if rtype in siblings:
        raise validation.Duplicate("recordset", "name", f"A {rtype} recordset named {name} already exists.")
    if rtype == "CNAME" and (name == zone.name or siblings):
        validation.fail("type", f"A CNAME must be the only recordset at {name}.")
    if "CNAME" in siblings:
        validation.fail("type", f"{name} already has a CNAME; a CNAME must be alone at its name.")
    quotas.check(zone.project_id, recordset_records=len(rdata), zone_recordsets=zone.recordset_count + 1,
                 zone_records=zone.record_count + len(rdata))
    zone.recordset_count += 1
    zone.record_count += len(rdata)
    change = journal.Change(zone, journal.RECORDSET_CREATE, actor)
    _bump(zone, Action.UPDATE)
    zone.save()
    rs = RecordSet.objects.create(zone=zone, name=name, type=rtype, ttl=ttl, records=rdata,
                                  description=description or "", serial=zone.serial)
    change.recordset_id = rs.id
    change.add(name, rtype, effective_ttl(ttl, zone), rdata)
    _write_managed_recordsets(zone, change)
    _commit(zone, change, events.UPDATE)
    return rs


@transaction.atomic
def update_recordset(zone_id, recordset_id, *, records=None, ttl=..., description=None,
                     actor: Actor = SYSTEM) -> RecordSet:
    """Replace records and/or ttl (ttl=None means 'use the zone TTL'); a no-op saves nothing, and a
    description alone changes no serial and is not recorded."""
    zone = _lock(zone_id)
    _refuse_if_deleting(zone)
    rs = _user_recordset(zone, recordset_id)
    change = journal.Change(zone, journal.RECORDSET_UPDATE, actor, recordset_id=rs.id)
    change.remove(rs.name, rs.type, effective_ttl(rs.ttl, zone), rs.records)
    changed = False
    if records is not None:
        rdata = validation.records(records, rs.type, zone.name, rs.name)
        grown = len(rdata) - len(rs.records)
        if grown > 0:  # a recordset may always shrink, even in a project over its (lowered) quota
            quotas.check(zone.project_id, recordset_records=len(rdata), zone_records=zone.record_count + grown)
        changed |= rdata != rs.records
        zone.record_count += grown
        rs.records = rdata
    if ttl is not ...:
        ttl = validation.ttl(ttl)
        changed |= ttl != rs.ttl
        rs.ttl = ttl
    if description is not None:
        rs.description = description
    if changed:
        _bump(zone, Action.UPDATE)
        zone.save()
        rs.serial, rs.status, rs.action = zone.serial, RecordSet.Status.PENDING, Action.UPDATE
        rs.version += 1
        change.add(rs.name, rs.type, effective_ttl(rs.ttl, zone), rs.records)
        _write_managed_recordsets(zone, change)
        _commit(zone, change, events.UPDATE)
    rs.save()
    return rs


@transaction.atomic
def delete_recordset(zone_id, recordset_id, *, actor: Actor = SYSTEM) -> RecordSet:
    zone = _lock(zone_id)
    _refuse_if_deleting(zone)
    rs = _user_recordset(zone, recordset_id)
    zone.recordset_count -= 1
    zone.record_count -= len(rs.records)
    change = journal.Change(zone, journal.RECORDSET_DELETE, actor, recordset_id=rs.id)
    change.remove(rs.name, rs.type, effective_ttl(rs.ttl, zone), rs.records)
    _bump(zone, Action.UPDATE)
    zone.save()
    rs_id = rs.id
    rs.delete()
    rs.id = rs_id  # Model.delete() clears the pk: callers still show which recordset went
    rs.status, rs.action = RecordSet.Status.PENDING, Action.DELETE
    _write_managed_recordsets(zone, change)
    _commit(zone, change, events.UPDATE)
    return rs


def _user_recordset(zone: Zone, recordset_id) -> RecordSet:
    rs = RecordSet.objects.get(zone=zone, id=recordset_id)
    if rs.managed:
        validation.fail("type", f"{rs.type} records at the zone apex are managed by dnsctl.")
    return rs


def _refuse_if_deleting(zone: Zone):
    if zone.action == Action.DELETE:
        validation.fail("zone", "The zone is being deleted.")


# --- what workers read and record ---------------------------------------------------------------
# Work travels as "refs": {"id", "name", "action", "serial"} for one zone. A batch of refs is pushed
# in one of three modes: "change" (the zone's own pending change), "sync" (re-push a healthy zone
# without changing it) and "target_sync" (replay onto one target; zone state is left alone).

CHANGE, SYNC, TARGET_SYNC = "change", "sync", "target_sync"


def pool_work(pool_id) -> dict | None:
    """Everything a task needs about a pool, as plain values (tasks never hold models)."""
    pool = (Pool.objects.filter(id=pool_id).select_related("tsig_key")
            .prefetch_related("targets__tsig_key", "nameservers", "also_notifies").first())
    if pool is None:
        return None
    return {
        "id": str(pool.id), "name": pool.name, "threshold": pool.threshold_percentage,
        "notify_source": pool.notify_source,  # dnsclient.send_notify(..., source=...)
        "catalog_zone": pool.catalog_zone,  # set: the targets' backends only call workers.catalog.members_changed
        "targets": [
            {"id": str(t.id), "name": t.name, "type": t.type, "options": target_options(t, pool),
             "masters": t.master_addresses()}
            for t in pool.targets.all()
        ],
        "nameservers": [{"id": str(n.id), "host": n.host, "port": n.port, "name": n.public_name(i)}
                        for i, n in enumerate(pool.nameservers.all())],
        "also_notifies": [{"host": a.host, "port": a.port} for a in pool.also_notifies.all()],
    }


def _ref(zone: dict, action: str | None = None) -> dict:
    return {"id": str(zone["id"]), "name": zone["name"], "action": action or zone["action"],
            "serial": zone["serial"], "pool": str(zone["pool_id"])}


def change_ref(zone_id, action, serial) -> dict | None:
    """The ref for a zone's pending change, or None when a newer change superseded it."""
    zone = Zone.objects.filter(id=zone_id, deleted_at__isnull=True, action=action, serial=serial).values(
        "id", "name", "action", "serial", "pool_id").first()
    return zone and _ref(zone)


@transaction.atomic
def claim_changes(limit: int) -> list[dict]:
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
    return [_ref(z) for z in rows]


def current_refs(refs: list[dict], mode: str) -> list[dict]:
    """The refs still worth pushing, in one query: a newer change or a delete makes a ref stale."""
    rows = {str(r["id"]): r for r in Zone.objects.filter(id__in=[ref["id"] for ref in refs]).values(
        "id", "serial", "action", "deleted_at")}

    def current(ref):
        row = rows.get(ref["id"])
        if mode == TARGET_SYNC:  # replay what the zone is now: live zones exist, deleted ones don't
            gone = row is None or row["deleted_at"] is not None or row["action"] == Action.DELETE
            return gone == (ref["action"] == Action.DELETE)
        if row is None or row["deleted_at"] is not None or row["serial"] != ref["serial"]:
            return False
        return row["action"] == (Action.NONE if mode == SYNC else ref["action"])

    return [ref for ref in refs if current(ref)]


def record_target_results(target_id, refs: list[dict], errors: dict):
    """Store one target's result for each zone of a batch (errors: zone id -> None or message)."""
    _record_latest(TargetStatus, "target_id", target_id, "serial", [
        {"zone_id": r["id"], "serial": r["serial"], "action": r["action"], "ok": errors[r["id"]] is None,
         "message": (errors[r["id"]] or "")[:2000]} for r in refs])


def record_target_result(zone_id, target_id, action, serial, ok, message=""):
    record_target_results(target_id, [{"id": str(zone_id), "serial": serial, "action": action}],
                          {str(zone_id): None if ok else message})


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


def finish(ref: dict, mode: str, ok: bool, reason: str = "", tenant_reason: str = "") -> bool:
    """Record the outcome of pushing one zone in the given mode. `reason` is the operator's (servers,
    addresses, their messages); `tenant_reason` is what the zone's project may read."""
    if mode == CHANGE:
        return finish_zone_action(ref["id"], ref["action"], ref["serial"], ok, reason, tenant_reason)
    if mode == SYNC:
        return finish_sync(ref["id"], ref["serial"], ok, reason, tenant_reason)
    if not ok:
        log.warning("target sync of %s (%s) failed: %s", ref["name"], ref["action"], reason)
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


# --- pools ------------------------------------------------------------------------------------


@transaction.atomic
def save_pool(pool: Pool | None, *, name, description="", threshold_percentage=100, ns_records=None,
              targets=None, nameservers=None, also_notifies=None, notify_source=None, tsig_key=None,
              catalog_zone=None, allowed_projects=None) -> Pool:
    """Create or replace a pool with its children. Nested lists given replace what is there;
    notify_source (an IP address), tsig_key (a key's name) and catalog_zone None keep, "" clears;
    allowed_projects (project ids, or "*") None keeps."""
    if not isinstance(threshold_percentage, int) or not 0 < threshold_percentage <= 100:
        validation.fail("threshold_percentage", "Must be an integer between 1 and 100.")
    if not name:
        validation.fail("name", "This field is required.")
    if Pool.objects.filter(name=name).exclude(id=getattr(pool, "id", None)).exists():
        raise validation.Duplicate("pool", "name", f"A pool named {name} already exists.")
    pool = pool or Pool()
    pool.name, pool.description, pool.threshold_percentage = name, description or "", threshold_percentage
    if notify_source is not None:
        pool.notify_source = _ip_address(notify_source, "notify_source") if notify_source else None
    if tsig_key is not None:
        pool.tsig_key = _tsig_key(tsig_key, "tsig_key")
    if catalog_zone is not None:
        pool.catalog_zone = validation.zone_name(catalog_zone, "catalog_zone") if catalog_zone else None
        if pool.catalog_zone:
            reserved.check_catalog_zone(pool.catalog_zone, pool.id)
    if allowed_projects is not None:
        pool.allowed_projects = _project_list(allowed_projects, "allowed_projects")
    pool.save()
    if ns_records is not None:
        pool.ns_records.all().delete()
        for i, r in enumerate(ns_records):
            hostname = validation.zone_name(r.get("hostname"), f"ns_records[{i}].hostname")
            priority = r.get("priority", 1)
            if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 32767:
                validation.fail(f"ns_records[{i}].priority", "Must be an integer between 0 and 32767.")
            PoolNsRecord.objects.create(pool=pool, hostname=hostname, priority=priority)
    if targets is not None:
        keep = [_save_target(pool, t, f"targets[{i}]").id for i, t in enumerate(targets)]
        pool.targets.exclude(id__in=keep).delete()
    if nameservers is not None:
        keep = [_save_nameserver(pool, n, f"nameservers[{i}]").id for i, n in enumerate(nameservers)]
        pool.nameservers.exclude(id__in=keep).delete()
    if also_notifies is not None:
        pool.also_notifies.all().delete()
        for i, n in enumerate(also_notifies):
            host, port = _host_port(n, f"also_notifies[{i}]")
            PoolAlsoNotify.objects.create(pool=pool, host=host, port=port)
    return pool


def _save_target(pool: Pool, t: dict, field: str) -> PoolTarget:
    """Create or change the pool's target named t["name"]: the options given are merged into the
    stored ones (a new type starts from none), then the backend checks them."""
    from workers.backends import BackendError, backend_types, get_backend  # validation only

    known = backend_types()
    target = pool.targets.filter(name=t.get("name")).first() or PoolTarget(pool=pool, name=t.get("name"))
    if not target.name:
        validation.fail(f"{field}.name", "This field is required.")
    kind = t.get("type") or target.type
    if kind not in known:
        validation.fail(f"{field}.type", f"Unknown backend type {kind!r}; known: {', '.join(known)}.")
    options = dict(target.options) if target.pk and kind == target.type else {}
    options.update(validation.json_object(t.get("options") or {}, f"{field}.options"))
    target.type, target.options = kind, options
    if "description" in t or not target.pk:
        target.description = t.get("description") or ""
    if "masters" in t or not target.pk:
        target.masters = _addresses(t.get("masters") or [], f"{field}.masters")
    if "tsig_key" in t:
        target.tsig_key = _tsig_key(t["tsig_key"], f"{field}.tsig_key")
    try:  # the backend checks its own options: a bad target is a 400 now, not an ERROR later
        get_backend(target.type, target.name, target_options(target, pool), target.master_addresses())
    except BackendError as exc:
        validation.fail(f"{field}.options", str(exc))
    target.save()
    return target


def _save_nameserver(pool: Pool, n: dict, field: str) -> PoolNameserver:
    host, port = _host_port(n, field)
    name = validation.zone_name(n["name"], f"{field}.name") if n.get("name") else ""
    return PoolNameserver.objects.update_or_create(pool=pool, host=host, port=port, defaults={"name": name})[0]


# One child of a pool at a time (manage.py configure_pool): save_pool replaces whole lists.

@transaction.atomic
def put_target(pool: Pool, target: dict) -> PoolTarget:
    """Add the target target["name"] to the pool, or change it (options merged, the rest kept)."""
    return _save_target(Pool.objects.select_for_update().get(id=pool.id), target, "target")


@transaction.atomic
def put_nameserver(pool: Pool, nameserver: dict) -> PoolNameserver:
    """Add the nameserver {host, port, name} to the pool, or give it a new public name (no name: kept)."""
    pool = Pool.objects.select_for_update().get(id=pool.id)
    if "name" not in nameserver:
        current = pool.nameservers.filter(host=nameserver.get("host"), port=nameserver.get("port", 53)).first()
        nameserver = {**nameserver, "name": current.name if current else ""}
    return _save_nameserver(pool, nameserver, "nameserver")


@transaction.atomic
def put_also_notify(pool: Pool, entry: dict) -> PoolAlsoNotify:
    host, port = _host_port(entry, "also_notify")
    return PoolAlsoNotify.objects.get_or_create(pool=pool, host=host, port=port)[0]


@transaction.atomic
def put_ns_record(pool: Pool, record: dict) -> PoolNsRecord:
    """Add the NS record {hostname, priority} every zone of the pool carries, or change its priority."""
    hostname = validation.zone_name(record.get("hostname"), "ns_record")
    priority = record.get("priority", 1)
    if not isinstance(priority, int) or not 0 < priority < 65536:
        validation.fail("ns_record.priority", "Must be an integer between 1 and 65535.")
    return PoolNsRecord.objects.update_or_create(pool=pool, hostname=hostname, defaults={"priority": priority})[0]


def remove_target(pool: Pool, name: str) -> None:
    if not pool.targets.filter(name=name).delete()[0]:
        validation.fail("target", f"Pool {pool.name} has no target named {name}.")


def remove_nameserver(pool: Pool, host: str, port: int) -> None:
    if not pool.nameservers.filter(host=host, port=port).delete()[0]:
        validation.fail("nameserver", f"Pool {pool.name} has no nameserver {host}:{port}.")


def remove_also_notify(pool: Pool, host: str, port: int) -> None:
    if not pool.also_notifies.filter(host=host, port=port).delete()[0]:
        validation.fail("also_notify", f"Pool {pool.name} has no also-notify {host}:{port}.")


def remove_ns_record(pool: Pool, hostname: str) -> None:
    hostname = validation.zone_name(hostname, "ns_record")
    if not pool.ns_records.filter(hostname=hostname).delete()[0]:
        validation.fail("ns_record", f"Pool {pool.name} has no NS record {hostname}.")


@transaction.atomic
def bump_catalog(pool_id) -> tuple[str, int] | None:
    """Give the pool's catalog zone a newer serial (max(serial + 1, unix time)); (name, serial), or
    None if the pool has no catalog. Called after membership changes committed, never before."""
    pool = Pool.objects.select_for_update().filter(id=pool_id, catalog_zone__isnull=False).first()
    if pool is None:
        return None
    pool.catalog_serial = next_serial(pool.catalog_serial)
    Pool.objects.filter(id=pool.id).update(catalog_serial=pool.catalog_serial)
    return pool.catalog_zone, pool.catalog_serial


def _ip_address(value, field: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        validation.fail(field, f"'{value}' is not an IP address.")


def _tsig_key(name, field: str) -> TsigKey | None:
    if not name:
        return None
    key = TsigKey.objects.filter(name=name).first()
    if key is None:
        validation.fail(field, f"There is no TSIG key named {name}.")
    return key


def target_options(target: PoolTarget, pool: Pool) -> dict:
    """A target's backend options as workers get them: with the TSIG key ({name, algorithm, secret})
    that signs its transfers (the target's own, else the pool's), and for a catalog pool the catalog
    ({pool, zone}) that carries the membership instead of the target's control channel."""
    options = dict(target.options)
    key = target.tsig_key or pool.tsig_key
    if key:
        options["tsig_key"] = key.as_dict()
    if pool.catalog_zone:
        options["catalog"] = {"pool": str(pool.id), "zone": pool.catalog_zone}
    return options


def _project_list(values, field: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) and 0 < len(v) <= 255 for v in values):
        validation.fail(field, 'A list of project ids (1 to 255 characters each), or ["*"] for every project.')
    return sorted(set(values))


def _host_port(entry: dict, field: str) -> tuple[str, int]:
    host, port = entry.get("host"), entry.get("port", 53)
    if not host or not isinstance(port, int) or not 0 < port < 65536:
        validation.fail(field, "Needs a host and a port between 1 and 65535.")
    return host, port


def _addresses(values: list, field: str) -> list[str]:
    result = []
    for value in values:
        host, _, port = str(value).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            validation.fail(field, f"'{value}' is not host:port.")
        result.append(f"{host}:{int(port)}")
    return result


@transaction.atomic
def delete_pool(pool: Pool):
    if pool.zones.filter(deleted_at__isnull=True).exists():
        validation.fail("pool", "The pool still has zones.")
    pool.zones.all().delete()  # soft-deleted zones, kept only for target sync of this pool
    pool.delete()


# --- recovery, sync, target sync, purge -----------------------------------------------------------


def max_propagation_seconds() -> float:
    """How long a change's work may take before it counts as lost: the whole SOA polling budget."""
    c = settings.DNSCTL
    return (c["POLL_TIMEOUT"] * c["POLL_MAX_RETRIES"] + c["POLL_RETRY_INTERVAL"] * c["POLL_MAX_RETRIES"]
            + c["POLL_DELAY"])


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


def _claim(refs: list[dict], now) -> list[dict]:
    """Mark the zones' work as in flight; a zone claimed meanwhile (a new change) is left out."""
    claimed = set(Zone.objects.filter(_not_in_flight(now), id__in=[r["id"] for r in refs])
                  .values_list("id", flat=True))
    Zone.objects.filter(id__in=claimed).update(enqueued_at=now, pushed_serial=F("serial"))
    return [r for r in refs if uuid.UUID(r["id"]) in claimed]


RECOVERY_ORDER = Case(When(action=Action.DELETE, then=0), When(action=Action.CREATE, then=1), default=2)


@transaction.atomic
def claim_recovery(limit: int) -> list[dict]:
    """Zones in ERROR, or PENDING with no work in flight, with their pending action: deletes first,
    then creates, then updates, oldest change first. Claimed, so the next sweep leaves them alone
    while this one's work runs."""
    now = timezone.now()
    rows = (Zone.objects.filter(_not_in_flight(now), deleted_at__isnull=True,
                                status__in=[Status.ERROR, Status.PENDING])
            .annotate(order=RECOVERY_ORDER).order_by("order", "updated_at")
            .values("id", "name", "action", "serial", "pool_id")[:limit])
    refs = [_ref(z, z["action"] if z["action"] != Action.NONE else Action.UPDATE) for z in rows]
    # A zone left in ERROR with no action pending (an old row) is pushed as an update.
    Zone.objects.filter(id__in=[r["id"] for r in refs if r["action"] == Action.UPDATE],
                        action=Action.NONE).update(action=Action.UPDATE)
    return _claim(refs, now)


def lagging_zones():
    """ACTIVE zones that some nameserver of their pool does not serve at the current serial."""
    in_sync = NameserverStatus.objects.filter(zone=OuterRef(OuterRef("pk")), serial=OuterRef(OuterRef("serial")))
    missing = PoolNameserver.objects.filter(pool=OuterRef("pool")).exclude(id__in=in_sync.values("nameserver_id"))
    return Zone.objects.filter(Exists(missing), status=Status.ACTIVE, deleted_at__isnull=True)


def sync_batches(batch_size: int, changed_within: int | None = None):
    """Yield claimed batches of healthy zones to re-push: ACTIVE ones (only those changed in the last
    changed_within seconds, if given) and every lagging one. Keyset-paged, never the whole table."""
    healthy = Zone.objects.filter(status=Status.ACTIVE, action=Action.NONE, deleted_at__isnull=True)
    if changed_within:
        healthy = healthy.filter(Q(updated_at__gte=timezone.now() - timedelta(seconds=changed_within))
                                 | Q(id__in=lagging_zones().values("id")))
    last = None
    while True:
        page = healthy.filter(id__gt=last) if last else healthy
        rows = list(page.order_by("id").values("id", "name", "action", "serial", "pool_id")[:batch_size])
        if not rows:
            return
        last = rows[-1]["id"]
        yield _claim([_ref(z, Action.UPDATE) for z in rows], timezone.now())


def find_target(pool: str, target: str) -> PoolTarget:
    """A pool's target by id or name (the CLI takes names, the API ids); a clear error if unknown."""
    pools = Pool.objects.filter(Q(name=pool) | Q(id=pool) if _is_uuid(pool) else Q(name=pool))
    targets = PoolTarget.objects.filter(pool__in=pools).select_related("pool")
    found = targets.filter(Q(name=target) | Q(id=target) if _is_uuid(target) else Q(name=target)).first()
    if found is None:
        if not pools.exists():
            validation.fail("pool", f"There is no pool {pool}.")
        known = ", ".join(targets.values_list("name", flat=True)) or "none"
        validation.fail("target", f"Pool {pool} has no target {target} (its targets: {known}).")
    return found


def target_sync_plan(target: PoolTarget, since) -> list[dict]:
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
                plan[zone["name"]] = _ref(zone, Action.DELETE)
        elif zone["created_at"] >= since:
            plan[zone["name"]] = _ref(zone, Action.CREATE)
        else:
            plan[zone["name"]] = _ref(zone, Action.UPDATE)
    return list(plan.values())


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


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
