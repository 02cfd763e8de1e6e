"""The only code that changes zones, recordsets and pools.

Every change runs in one transaction that locks the zone row, bumps the serial once (only if
the zone's content really changed), sets status PENDING with the action, and enqueues the
provisioning work on commit: nothing is sent for a change that did not commit.
"""
import logging

from celery import signature
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import validation
from .models import (
    NameserverStatus,
    Pool,
    PoolAlsoNotify,
    PoolNameserver,
    PoolNsRecord,
    PoolTarget,
    RecordSet,
    TargetStatus,
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


def propagation_of(zone: Zone) -> dict:
    """Each target's and nameserver's last result for the zone, so a lagging server shows."""
    targets = {s.target_id: s for s in zone.target_statuses.all()}
    nameservers = {s.nameserver_id: s for s in zone.nameserver_statuses.all()}

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
        validation.fail("name", f"A zone named {name} already exists.")
    labels = name.split(".")
    parents = [".".join(labels[i:]) for i in range(1, len(labels) - 1)]
    if live.filter(name__in=parents).exclude(project_id=project_id).exists():
        validation.fail("name", f"{name} is inside a zone that belongs to another project.")
    if live.filter(name__endswith="." + name).exclude(project_id=project_id).exists():
        validation.fail("name", f"{name} would contain a zone that belongs to another project.")


@transaction.atomic
def create_zone(*, project_id: str, name, email, ttl=None, description="", pool_id=None) -> Zone:
    name = validation.zone_name(name)
    email = validation.email(email)
    ttl = validation.ttl(ttl) or settings.DNSCTL["DEFAULT_TTL"]
    pool = _pool_for(pool_id)
    _check_zone_name_free(name, project_id)
    zone = Zone(project_id=project_id, name=name, email=email, ttl=ttl, description=description or "",
                pool=pool, serial=next_serial(0), status=Status.PENDING, action=Action.CREATE)
    try:
        with transaction.atomic():
            zone.save()
    except IntegrityError:
        validation.fail("name", f"A zone named {name} already exists.")
    _write_managed_recordsets(zone)
    _enqueue(zone)
    return zone


def _pool_for(pool_id) -> Pool:
    if not pool_id:
        return default_pool()
    try:
        return Pool.objects.get(id=pool_id)
    except (Pool.DoesNotExist, ValidationError, ValueError):
        validation.fail("pool_id", f"Pool {pool_id} does not exist.")


@transaction.atomic
def update_zone(zone_id, **fields) -> Zone:
    """Change email, ttl or description; only email and ttl change the zone's content."""
    zone = _lock(zone_id)
    if zone.action == Action.DELETE:
        validation.fail("zone", "The zone is being deleted.")
    changed = False
    if "email" in fields and fields["email"] is not None:
        email = validation.email(fields["email"])
        changed |= email != zone.email
        zone.email = email
    if "ttl" in fields and fields["ttl"] is not None:
        ttl = validation.ttl(fields["ttl"])
        changed |= ttl != zone.ttl
        zone.ttl = ttl
    if "description" in fields and fields["description"] is not None:
        zone.description = fields["description"]
    if changed:
        _bump(zone, Action.UPDATE)
    zone.save()
    if changed:
        _write_managed_recordsets(zone)
        _enqueue(zone)
    return zone


@transaction.atomic
def delete_zone(zone_id) -> Zone:
    zone = _lock(zone_id)
    if zone.action != Action.DELETE:
        _bump(zone, Action.DELETE)
        zone.save()
        _enqueue(zone)
    return zone


def _lock(zone_id) -> Zone:
    return Zone.objects.select_for_update().select_related("pool").get(id=zone_id, deleted_at__isnull=True)


def _bump(zone: Zone, action: str):
    """One committed change: a newer serial, PENDING, and the action the targets must take."""
    zone.serial = next_serial(zone.serial)
    zone.version += 1
    zone.status = Status.PENDING
    zone.reason = ""
    # A zone that never reached its targets still needs creating, whatever changed since.
    keep_create = zone.action == Action.CREATE and action == Action.UPDATE
    zone.action = Action.CREATE if keep_create else action


def _enqueue(zone: Zone):
    zone_id, action, serial = str(zone.id), zone.action, zone.serial
    transaction.on_commit(
        lambda: signature("workers.tasks.zone_action", args=(zone_id, action, serial)).delay()
    )


def _write_managed_recordsets(zone: Zone):
    """SOA and apex NS follow the zone and its pool; users never edit them."""
    ns = [validation.zone_name(r.hostname, "ns_records") for r in zone.pool.ns_records.all()]
    primary = ns[0] if ns else f"ns.{zone.name}"
    soa = (f"{primary} {validation.email_to_rname(zone.email)} {zone.serial} "
           f"{zone.refresh} {zone.retry} {zone.expire} {zone.minimum}")
    _upsert_managed(zone, "SOA", [soa])
    if ns:
        _upsert_managed(zone, "NS", ns)


def _upsert_managed(zone: Zone, rtype: str, records: list[str]):
    rs, created = RecordSet.objects.get_or_create(
        zone=zone, name=zone.name, type=rtype,
        defaults={"records": records, "managed": True, "serial": zone.serial, "action": Action.CREATE},
    )
    if not created and rs.records != records:
        rs.records, rs.serial, rs.status, rs.action = records, zone.serial, RecordSet.Status.PENDING, Action.UPDATE
        rs.version += 1
        rs.save()


# --- recordsets -------------------------------------------------------------------------------


@transaction.atomic
def create_recordset(zone_id, *, name, type, records, ttl=None, description="") -> RecordSet:
    zone = _lock(zone_id)
    _refuse_if_deleting(zone)
    rtype = validation.recordset_type(type)
    name = validation.record_name(name, zone.name)
    ttl = validation.ttl(ttl)
    rdata = validation.records(records, rtype, zone.name)
    if rtype == "NS" and name == zone.name:
        validation.fail("type", "NS records at the zone apex are managed by dnsctl.")
    siblings = set(zone.recordsets.filter(name=name).values_list("type", flat=True))
    if rtype in siblings:
        validation.fail("name", f"A {rtype} recordset named {name} already exists.")
    if rtype == "CNAME" and (name == zone.name or siblings):
        validation.fail("type", f"A CNAME must be the only recordset at {name}.")
    if "CNAME" in siblings:
        validation.fail("type", f"{name} already has a CNAME; a CNAME must be alone at its name.")
    if zone.recordsets.count() >= settings.DNSCTL["MAX_RECORDSETS_PER_ZONE"]:
        validation.fail("zone", "The zone has reached its recordset quota.")
    _bump(zone, Action.UPDATE)
    zone.save()
    rs = RecordSet.objects.create(zone=zone, name=name, type=rtype, ttl=ttl, records=rdata,
                                  description=description or "", serial=zone.serial)
    _write_managed_recordsets(zone)
    _enqueue(zone)
    return rs


@transaction.atomic
def update_recordset(zone_id, recordset_id, *, records=None, ttl=..., description=None) -> RecordSet:
    """Replace records and/or ttl (ttl=None means 'use the zone TTL'); a no-op saves nothing."""
    zone = _lock(zone_id)
    _refuse_if_deleting(zone)
    rs = _user_recordset(zone, recordset_id)
    changed = False
    if records is not None:
        rdata = validation.records(records, rs.type, zone.name)
        changed |= rdata != rs.records
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
        _write_managed_recordsets(zone)
        _enqueue(zone)
    rs.save()
    return rs


@transaction.atomic
def delete_recordset(zone_id, recordset_id) -> RecordSet:
    zone = _lock(zone_id)
    _refuse_if_deleting(zone)
    rs = _user_recordset(zone, recordset_id)
    _bump(zone, Action.UPDATE)
    zone.save()
    rs_id = rs.id
    rs.delete()
    rs.id = rs_id  # Model.delete() clears the pk: callers still show which recordset went
    rs.status, rs.action = RecordSet.Status.PENDING, Action.DELETE
    _write_managed_recordsets(zone)
    _enqueue(zone)
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


def zone_work(zone_id) -> dict | None:
    """Everything a task needs about a zone and its pool, as plain values (tasks never hold models)."""
    zone = Zone.objects.select_related("pool").filter(id=zone_id).first()
    if zone is None:
        return None
    pool = zone.pool
    return {
        "id": str(zone.id), "name": zone.name, "serial": zone.serial,
        "status": zone.status, "action": zone.action, "deleted": zone.deleted_at is not None,
        "threshold": pool.threshold_percentage,
        "targets": [
            {"id": str(t.id), "name": t.name, "type": t.type, "options": t.options, "masters": t.master_addresses()}
            for t in pool.targets.all()
        ],
        "nameservers": [{"id": str(n.id), "host": n.host, "port": n.port} for n in pool.nameservers.all()],
        "also_notifies": [{"host": a.host, "port": a.port} for a in pool.also_notifies.all()],
    }


def record_target_result(zone_id, target_id, action, serial, ok, message=""):
    """Store a target's result unless a result for a newer serial is already there."""
    _record_latest(TargetStatus, {"zone_id": zone_id, "target_id": target_id}, "serial", serial,
                   action=action, ok=ok, message=message[:2000])


def record_nameserver_result(zone_id, nameserver_id, expected_serial, serial, ok, message=""):
    """Store what a nameserver served, unless a poll for a newer serial already reported."""
    _record_latest(NameserverStatus, {"zone_id": zone_id, "nameserver_id": nameserver_id}, "expected_serial",
                   expected_serial, serial=serial, ok=ok, message=message[:2000])


def _record_latest(model, key: dict, version_field: str, version: int, **values):
    """Upsert one status row; a write for an older version than the stored one is dropped."""
    with transaction.atomic():
        row = model.objects.select_for_update().filter(**key).first()
        if row and getattr(row, version_field) > version:
            return
        row = row or model(**key)
        setattr(row, version_field, version)
        for field, value in values.items():
            setattr(row, field, value)
        try:
            with transaction.atomic():
                row.save()
        except IntegrityError:  # a concurrent first write: the other result stands
            pass


def zone_version(zone_id) -> dict | None:
    """Just what a task needs to tell whether the zone moved on (one query, for hot retry paths)."""
    row = Zone.objects.filter(id=zone_id).values("serial", "action", "deleted_at").first()
    return row and {"serial": row["serial"], "action": row["action"], "deleted": row["deleted_at"] is not None}


@transaction.atomic
def finish_zone_action(zone_id, action, serial, ok: bool, reason: str = "") -> bool:
    """Record the outcome of the work for `serial`. A newer change wins: an older result is dropped."""
    zone = Zone.objects.select_for_update().filter(id=zone_id, deleted_at__isnull=True).first()
    if zone is None or zone.serial != serial or zone.action != action:
        log.info("zone %s: result for %s@%s dropped, the zone moved on", zone_id, action, serial)
        return False
    if not ok:
        zone.status, zone.reason = Status.ERROR, reason[:4000]
        zone.recordsets.filter(status=RecordSet.Status.PENDING).update(status=RecordSet.Status.ERROR)
    elif action == Action.DELETE:
        zone.status, zone.action, zone.reason, zone.deleted_at = Status.DELETED, Action.NONE, "", timezone.now()
    else:
        zone.status, zone.action, zone.reason = Status.ACTIVE, Action.NONE, ""
        zone.recordsets.filter(~Q(status=RecordSet.Status.ACTIVE), serial__lte=serial).update(
            status=RecordSet.Status.ACTIVE, action=Action.NONE)
    zone.save()
    return True


# --- pools ------------------------------------------------------------------------------------


@transaction.atomic
def save_pool(pool: Pool | None, *, name, description="", threshold_percentage=100, ns_records=None,
              targets=None, nameservers=None, also_notifies=None) -> Pool:
    """Create or replace a pool with its children. Nested lists given replace what is there."""
    from workers.backends import backend_types  # names only: zones/ never drives a backend

    if not isinstance(threshold_percentage, int) or not 0 < threshold_percentage <= 100:
        validation.fail("threshold_percentage", "Must be an integer between 1 and 100.")
    if not name:
        validation.fail("name", "This field is required.")
    if Pool.objects.filter(name=name).exclude(id=getattr(pool, "id", None)).exists():
        validation.fail("name", f"A pool named {name} already exists.")
    pool = pool or Pool()
    pool.name, pool.description, pool.threshold_percentage = name, description or "", threshold_percentage
    pool.save()
    if ns_records is not None:
        pool.ns_records.all().delete()
        for i, r in enumerate(ns_records):
            hostname = validation.zone_name(r.get("hostname"), f"ns_records[{i}].hostname")
            PoolNsRecord.objects.create(pool=pool, hostname=hostname, priority=int(r.get("priority", 1)))
    if targets is not None:
        known = backend_types()
        keep = []
        for i, t in enumerate(targets):
            if t.get("type") not in known:
                validation.fail(f"targets[{i}].type", f"Unknown backend type {t.get('type')!r}; known: {', '.join(known)}.")
            target = pool.targets.filter(name=t.get("name")).first() or PoolTarget(pool=pool, name=t.get("name"))
            if not target.name:
                validation.fail(f"targets[{i}].name", "This field is required.")
            options = dict(target.options) if target.pk else {}
            options.update(t.get("options") or {})
            target.type, target.description, target.options = t["type"], t.get("description", ""), options
            target.masters = _addresses(t.get("masters") or [], f"targets[{i}].masters")
            target.save()
            keep.append(target.id)
        pool.targets.exclude(id__in=keep).delete()
    if nameservers is not None:
        keep = []
        for i, n in enumerate(nameservers):
            host, port = _host_port(n, f"nameservers[{i}]")
            ns, _ = PoolNameserver.objects.get_or_create(pool=pool, host=host, port=port)
            keep.append(ns.id)
        pool.nameservers.exclude(id__in=keep).delete()
    if also_notifies is not None:
        pool.also_notifies.all().delete()
        for i, n in enumerate(also_notifies):
            host, port = _host_port(n, f"also_notifies[{i}]")
            PoolAlsoNotify.objects.create(pool=pool, host=host, port=port)
    return pool


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


def delete_pool(pool: Pool):
    if pool.zones.filter(deleted_at__isnull=True).exists():
        validation.fail("pool", "The pool still has zones.")
    pool.delete()
