"""Zone import and export (Designate's /v2/zones/tasks/imports and /v2/zones/{id}/tasks/export).

An import is a zone file kept in a ZoneImport row and read by a Celery task (by name: zones/ never
imports workers/), so a 100,000-record file never travels through the broker nor holds a web
worker. The task reads and checks the whole file first (zones.zone_files: the API's own rules, the
project's quotas); any problem ends it in ERROR naming the lines, with nothing written. Otherwise,
in one transaction, it creates the zone through zones.services.create_zone (the name, reserved
names, the zones quota, the pool, one journal change, one dns.zone.create outbox event and the push
to the pool on commit, like any zone create) and adds the recordsets to it in bulk: the create's
journal change lists them too, and the zone's counters count them. The pipeline then takes the zone
to ACTIVE as usual.

A dry run is a task too (a 100,000-record file takes seconds of CPU to check: too long for a web
request): the worker reads and checks the file the same way and tries the zone's creation in a
transaction that is rolled back, so it writes nothing but the task's plan.

An export writes the zone out (zones.zone_files.render) in a Celery task too, refused when the zone
has more records than the project's api_export_size quota, and keeps the file with its serial.
"""
import io
import json
import logging
import uuid

from celery import signature
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from . import quotas, validation, zone_files
from .services import writes
from .journal import Actor
from .models import RecordSet, Zone, ZoneChange, ZoneExport, ZoneImport, shard_for

log = logging.getLogger(__name__)
Status = ZoneImport.Status
HARD_MAX_RECORDS = 2_000_000  # what a file may hold when the zone_records quota is unlimited
BULK_BATCH = 5000


# --- imports -------------------------------------------------------------------------------------


def imports_for(project_id: str | None):
    """Import tasks a caller may see: one project's, or every project's (None: an admin)."""
    qs = ZoneImport.objects.defer("zonefile")
    return qs if project_id is None else qs.filter(project_id=project_id)


def exports_for(project_id: str | None):
    qs = ZoneExport.objects.defer("zonefile")
    return qs if project_id is None else qs.filter(project_id=project_id)


def _zonefile(value) -> str:
    if not isinstance(value, str) or not value.strip():
        validation.fail("zonefile", "The zone file is empty.")
    if "\x00" in value:
        validation.fail("zonefile", "The zone file holds a NUL character.")
    return value


@transaction.atomic
def submit_import(*, project_id: str, zonefile, pool_id=None, admin=False, actor: Actor,
                  dry_run=False) -> ZoneImport:
    """Keep the file and hand its import (or dry run) to Celery once this commits. A project has at
    most IMPORT_MAX_PENDING tasks waiting, dry runs included: each holds up to IMPORT_MAX_BODY_SIZE bytes."""
    zonefile = _zonefile(zonefile)
    limit = settings.DNSCTL["IMPORT_MAX_PENDING"]
    quotas._lock_project(project_id)  # two requests must not both take the last slot
    if ZoneImport.objects.filter(project_id=project_id, status=Status.PENDING).count() >= limit:
        raise validation.OverQuota("zone_imports", limit)
    task = ZoneImport.objects.create(project_id=project_id, zonefile=zonefile, pool_id=str(pool_id or ""),
                                     admin=admin, actor=actor.as_dict(), dry_run=dry_run)
    _enqueue("workers.zone_tasks.import_zone", ZoneImport, task.id)
    return task


def _enqueue(task_name: str, model, task_id):
    """Send the task once the row commits. If the broker is down the task says so (ERROR) instead of
    waiting forever: nothing else would send it."""
    def send():
        try:
            signature(task_name, args=(str(task_id),)).apply_async(ignore_result=True)
        except Exception:  # noqa: BLE001 - the broker's failure must not fail the committed request
            log.warning("%s %s could not be queued", task_name, task_id, exc_info=True)
            _finish(model, task_id, Status.ERROR, "The task could not be queued (the broker is unreachable); "
                                                  "try again.")

    transaction.on_commit(send)


def _finish(model, task_id, status: str, message: str, **fields) -> int:
    """End a PENDING task; a task that ended already is left as it is (a redelivered task ends once)."""
    extra = {"zonefile": ""} if model is ZoneImport else {}
    return model.objects.filter(id=task_id, status=Status.PENDING).update(
        status=status, message=message[:10_000], version=F("version") + 1, updated_at=timezone.now(),
        **extra, **fields)


def read(zonefile: str, project_id: str) -> zone_files.ZoneFile:
    """The file read and checked by the API's rules and the project's per-zone quotas."""
    limits = quotas.quotas_of(project_id)
    cap = limits["zone_records"] if limits["zone_records"] >= 0 else HARD_MAX_RECORDS
    # Room for the SOA and apex NS, which do not count; the exact count is checked below.
    parsed = zone_files.read(zonefile, min(cap, HARD_MAX_RECORDS) + 100)
    if parsed.problems:
        return parsed
    usage = {"zone_recordsets": len(parsed.recordsets), "zone_records": parsed.record_count}
    for resource, count in usage.items():
        if 0 <= limits[resource] < count:
            parsed.problem(None, resource, f"Quota exceeded for {resource} (limit {limits[resource]:,}): the file "
                                           f"has {count:,}.")
    biggest = max(parsed.recordsets, key=lambda rs: len(rs.records), default=None)
    if biggest and 0 <= limits["recordset_records"] < len(biggest.records):
        for rs in parsed.recordsets:
            if len(rs.records) > limits["recordset_records"]:
                parsed.problem(rs.line, "recordset_records", f"Quota exceeded for recordset_records (limit "
                                                             f"{limits['recordset_records']}): {rs.name} {rs.type} "
                                                             f"has {len(rs.records)} records.")
    return parsed


MAX_IGNORED = 100  # lines a plan lists as set aside (one per recordset at most); the rest are counted


def plan(parsed: zone_files.ZoneFile, *, project_id: str, pool_id=None, admin=False) -> dict:
    """A dry run: what an import of the file read would create, and every problem, writing nothing."""
    if parsed.name and parsed.email and parsed.ttl and not parsed.problems:
        with transaction.atomic():
            try:
                writes.create_zone(project_id=project_id, name=parsed.name, email=parsed.email, ttl=parsed.ttl,
                                     pool_id=pool_id or None, admin=admin)
            except ValidationError as exc:
                parsed.invalid(parsed.soa_line, exc)
            transaction.set_rollback(True)  # nothing of it stays, nor is anything sent
    return {
        "valid": not parsed.problems,
        "zone": {"name": parsed.name, "email": parsed.email, "ttl": parsed.ttl},
        "recordsets": len(parsed.recordsets),
        "records": parsed.record_count,
        "ignored": parsed.ignored[:MAX_IGNORED],
        "more_ignored": max(0, len(parsed.ignored) - MAX_IGNORED),
        "errors": [p.as_dict() for p in parsed.problems],
        "more_errors": parsed.more_problems,
    }


def _run_dry(task: ZoneImport, parsed: zone_files.ZoneFile) -> str:
    """End a dry run COMPLETE (the file would import) or ERROR (its problems), with the plan."""
    result = plan(parsed, project_id=task.project_id, pool_id=task.pool_id, admin=task.admin)
    if result["valid"]:
        message = (f"dry run: {parsed.name} would be imported: {result['recordsets']:,} recordsets, "
                   f"{result['records']:,} records")
        _finish(ZoneImport, task.id, Status.COMPLETE, message, plan=result)
        return "planned"
    _finish(ZoneImport, task.id, Status.ERROR, parsed.summary(), plan=result)
    return "invalid"


def run_import(import_id) -> str:
    """The Celery task's work: read the file, then create the zone and its recordsets in one
    transaction (a dry run: only try), or end in ERROR naming the lines. Safe to run twice: only a
    PENDING task runs."""
    task = ZoneImport.objects.filter(id=import_id, status=Status.PENDING).first()
    if task is None:
        return "not pending"
    parsed = None
    try:
        parsed = read(task.zonefile, task.project_id)
        if task.dry_run:
            return _run_dry(task, parsed)
        if parsed.problems:
            _finish(ZoneImport, task.id, Status.ERROR, parsed.summary())
            return "invalid"
        with transaction.atomic():
            locked = ZoneImport.objects.select_for_update().filter(id=task.id, status=Status.PENDING).first()
            if locked is None:
                return "not pending"
            zone = _create(locked, parsed)
            _finish(ZoneImport, task.id, Status.COMPLETE, f"{zone.name} imported: {len(parsed.recordsets):,} "
                                                          f"recordsets, {parsed.record_count:,} records",
                    zone_id=zone.id)
        return "imported"
    except ValidationError as exc:
        problems = zone_files.ZoneFile()
        problems.invalid(parsed and parsed.soa_line, exc)  # the zone's name, email, TTL, pool: the SOA's line
        _finish(ZoneImport, task.id, Status.ERROR, problems.summary())
        return "refused"
    except Exception:
        log.exception("zone import %s failed", import_id)
        _finish(ZoneImport, task.id, Status.ERROR, "The import failed on the server; nothing was written.")
        raise


def _create(task: ZoneImport, parsed: zone_files.ZoneFile) -> Zone:
    """The zone as services creates any zone, then its recordsets in bulk in the same transaction:
    the creation's one journal change lists them, and the counters quotas read count them."""
    zone = writes.create_zone(project_id=task.project_id, name=parsed.name, email=parsed.email, ttl=parsed.ttl,
                                pool_id=task.pool_id or None, admin=task.admin, actor=Actor(**task.actor))
    _insert_recordsets(zone, parsed.recordsets)
    Zone.objects.filter(id=zone.id).update(recordset_count=len(parsed.recordsets),
                                           record_count=parsed.record_count)
    change = ZoneChange.objects.get(zone_id=zone.id, serial=zone.serial)
    change.added += [[rs.name, rs.type, rs.ttl, rs.records] for rs in parsed.recordsets]
    change.save(update_fields=["added"])
    return zone


COPY_COLUMNS = ("id", "zone_id", "name", "type", "ttl", "description", "records", "managed", "serial", "status",
                "action", "version", "created_at", "updated_at", "zone_shard")


def _insert_recordsets(zone: Zone, recordsets: list[zone_files.RecordSet]):
    """New recordsets in bulk: PostgreSQL's COPY (100,000 rows in about a second; bulk_create builds a
    model instance per row and takes several), bulk_create elsewhere. The rows are what
    RecordSet(...) would save; names and types hold no character COPY's text format escapes."""
    if connection.vendor != "postgresql":
        RecordSet.objects.bulk_create(
            (RecordSet(zone=zone, name=rs.name, type=rs.type, ttl=rs.ttl, records=rs.records, serial=zone.serial)
             for rs in recordsets), batch_size=BULK_BATCH)
        return
    now = timezone.now().isoformat()
    fixed = f"{zone.serial}\tPENDING\tCREATE\t1\t{now}\t{now}\t{shard_for(zone.id)}\n"
    zone_id = str(zone.id)
    lines = (f"{uuid.uuid4()}\t{zone_id}\t{rs.name}\t{rs.type}\t{rs.ttl}\t\t"
             f"{json.dumps(rs.records).replace(chr(92), chr(92) * 2)}\tf\t{fixed}" for rs in recordsets)
    with connection.cursor() as cursor:
        cursor.copy_expert(f"COPY {RecordSet._meta.db_table} ({', '.join(COPY_COLUMNS)}) FROM STDIN",
                           io.StringIO("".join(lines)))


@transaction.atomic
def delete_import(task: ZoneImport):
    """Designate's DELETE: the task's record goes (a PENDING one is not run; its zone, if any, stays)."""
    ZoneImport.objects.filter(id=task.id).delete()


# --- exports -------------------------------------------------------------------------------------


def export_size(zone: Zone) -> int:
    """The records an export of the zone holds: the tenant's, the SOA and the apex NS."""
    return zone.record_count + 1 + zone.pool.ns_records.count()


def _check_export_size(zone: Zone):
    quotas.check(zone.project_id, api_export_size=export_size(zone))


@transaction.atomic
def submit_export(zone: Zone) -> ZoneExport:
    """An export task for a live zone, refused at once (OverQuota) when the zone is larger than
    its project's api_export_size. It belongs to the zone's project."""
    _check_export_size(zone)
    task = ZoneExport.objects.create(project_id=zone.project_id, zone_id=zone.id, zone_name=zone.name)
    _enqueue("workers.zone_tasks.export_zone", ZoneExport, task.id)
    return task


def run_export(export_id) -> str:
    """The Celery task's work: write the zone out as it is now, one consistent read."""
    task = ZoneExport.objects.filter(id=export_id, status=Status.PENDING).defer("zonefile").first()
    if task is None:
        return "not pending"
    with transaction.atomic():
        zone = Zone.objects.filter(id=task.zone_id, deleted_at__isnull=True).select_related("pool").first()
        if zone is None:
            _finish(ZoneExport, task.id, Status.ERROR, "The zone no longer exists.")
            return "no zone"
        _share_lock(zone)
        zone.refresh_from_db()
        try:
            _check_export_size(zone)
        except validation.OverQuota as exc:
            _finish(ZoneExport, task.id, Status.ERROR, f"Quota exceeded for api_export_size (limit {exc.limit:,}): "
                                                       f"the zone has {export_size(zone):,} records.")
            return "too large"
        text = render(zone)
        _finish(ZoneExport, task.id, Status.COMPLETE, "", zonefile=text, serial=zone.serial, zone_name=zone.name)
    return "exported"


def _share_lock(zone: Zone):
    """Hold changes to the zone off while it is read (PostgreSQL; SQLite's reads see one snapshot)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM zones_zone WHERE id = %s FOR SHARE", [zone.id])


def render(zone: Zone) -> str:
    """The zone as MiniDNS serves it: SOA, apex NS, then the recordsets by name and type."""
    rows = list(zone.recordsets.order_by("name", "type").values_list("name", "type", "ttl", "records", "managed"))
    first = {"SOA": 0, "NS": 1}
    rows.sort(key=lambda r: (not r[4], first.get(r[1], 2) if r[4] else 0))  # stable: the managed ones first
    header = (f"{zone.name} serial {zone.serial}, exported by dnsctl at "
              f"{timezone.now().replace(microsecond=0).isoformat()}")
    return zone_files.render(zone.name, zone.ttl, (row[:4] for row in rows), header=header)


@transaction.atomic
def delete_export(task: ZoneExport):
    ZoneExport.objects.filter(id=task.id).delete()


def export_file(task: ZoneExport) -> str | None:
    """The file of a COMPLETE export, else None."""
    if task.status != Status.COMPLETE:
        return None
    return ZoneExport.objects.filter(id=task.id).values_list("zonefile", flat=True).first()
