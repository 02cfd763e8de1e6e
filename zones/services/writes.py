"""The only code that changes zones and recordsets.

Every change runs in one transaction that locks the zone row, bumps the serial once (only if
the zone's content really changed), sets status PENDING with the action, records the change once
(zones.journal: who, what, which serial; with its outbox event), and enqueues the provisioning
work on commit: nothing is sent for a change that did not commit. Who: every change takes an
`actor` (zones.journal.Actor); without one it is the system's. A change of an existing zone takes
`project_id` from the API (the caller's scope): another project's zone is then Zone.DoesNotExist,
found by the same query that locks it.
"""
import functools
import logging

from celery import signature
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from zones import cached, events, journal, plain_sql, quotas, reserved, validation
from zones.journal import SYSTEM, Actor, effective_ttl
from zones.models import Pool, RecordSet, Zone
from zones.serials import next_serial

from . import pipeline
from .selectors import default_pool_with_ns, pool_allows, pool_ns, pool_with_ns

log = logging.getLogger(__name__)
Action, Status = Zone.Action, Zone.Status
# What a change of an existing zone sets (_bump, and the counters recordset writes keep): saved alone.
CHANGED = ["serial", "version", "status", "reason", "tenant_reason", "enqueued_at", "action", "updated_at",
           "recordset_count", "record_count"]


def _check_zone_name_free(name: str, project_id: str):
    """The name itself (a 409), or a zone of another project above or below it (a 400): one query,
    shortest names first, so the name and its parents come before any zone below it. The zones
    below are those whose reversed name starts with the reversed ".name": a prefix, which an index
    answers (migration 0017), where `name LIKE '%.name'` would read every zone. Raw SQL, as _lock's:
    the ORM spent 1.5 ms of CPU building it for every zone create."""
    labels = name.split(".")
    parents = [".".join(labels[i:]) for i in range(1, len(labels) - 1)]
    names = [name, *parents]
    below = connection.operators["startswith"] % "%s"  # LIKE, with the backend's escape clause
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name FROM zones_zone WHERE deleted_at IS NULL "
                       f"AND (name IN ({', '.join(['%s'] * len(names))}) OR reverse(name) {below}) "
                       "AND (name = %s OR project_id <> %s) ORDER BY length(name) LIMIT %s",
                       [*names, connection.ops.prep_for_like_query(("." + name)[::-1]) + "%", name, project_id,
                        len(names) + 1])
        taken = [row[0] for row in cursor.fetchall()]
    if name in taken:
        raise validation.Duplicate("zone", "name", f"A zone named {name} already exists.")
    if set(parents).intersection(taken):
        validation.fail("name", f"{name} is inside a zone that belongs to another project.")
    if taken:
        validation.fail("name", f"{name} would contain a zone that belongs to another project.")


@transaction.atomic
def create_zone(*, project_id: str, name, email, ttl=None, description="", pool_id=None, admin=False,
                actor: Actor = SYSTEM) -> Zone:
    """A new zone in the default pool, or in pool_id if the project may use it. admin: the caller is an
    API admin, who may choose any pool and take public suffixes and blacklisted names."""
    name = validation.zone_name(name)
    # The project's lock comes with its limits and the config version that the checks' copies need.
    limits, version = quotas.lock_project(project_id)
    reserved.check_zone_name(name, admin=admin, version=version)
    email = validation.email(email)
    ttl = validation.ttl(ttl) or settings.DNSCTL["DEFAULT_TTL"]
    pool, ns = _pool_for(pool_id, project_id, admin, version)
    quotas.check_new_zone(project_id, limits)
    _check_zone_name_free(name, project_id)
    zone = Zone(project_id=project_id, name=name, email=email, ttl=ttl, description=description or "",
                pool_id=pool.id, serial=next_serial(0), status=Status.PENDING, action=Action.CREATE,
                enqueued_at=timezone.now())
    try:
        # No savepoint: a name taken since the check fails the whole change, which this raise rolls back.
        plain_sql.insert(zone)
    except IntegrityError:
        raise validation.Duplicate("zone", "name", f"A zone named {name} already exists.") from None
    change = journal.Change(zone, journal.ZONE_CREATE, actor)
    change.zone_after = {field: getattr(zone, field) for field in journal.ZONE_FIELDS}
    _write_managed_recordsets(zone, change, ns, new=True)
    _commit(zone, change, events.CREATE)
    return zone


def _pool_for(pool_id, project_id: str, admin: bool, version: int | None) -> tuple[Pool, list[str]]:
    """The new zone's pool and its NS hostnames."""
    if not pool_id:
        return default_pool_with_ns(version)
    try:
        pool, ns = pool_with_ns(id=pool_id)
    except (ValidationError, ValueError):
        pool = None
    if pool is None or not (admin or pool_allows(pool, project_id)):
        # The same answer for a pool that does not exist and one the project may not use.
        validation.fail("attributes.pool_id", "No such pool is available to the project.")
    return pool, ns


@transaction.atomic
def update_zone(zone_id, *, actor: Actor = SYSTEM, project_id: str | None = None, **fields) -> Zone:
    """Change email, ttl or description; only email and ttl change the zone's content (and are recorded,
    with a description changed at the same time)."""
    zone = _lock(zone_id, project_id)
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
    plain_sql.update(zone, [*CHANGED, "email", "ttl", "description"])
    if changed:
        # Every RRset without its own TTL is served with the new one; they are not read here, so this
        # change cannot be an IXFR step (a secondary behind it gets an AXFR).
        change.incremental = "ttl" not in change.zone_after
        _write_managed_recordsets(zone, change)
        _commit(zone, change, events.UPDATE)
    return zone


@transaction.atomic
def delete_zone(zone_id, *, actor: Actor = SYSTEM, project_id: str | None = None) -> Zone:
    zone = _lock(zone_id, project_id)
    if zone.action != Action.DELETE:
        change = journal.Change(zone, journal.ZONE_DELETE, actor)
        change.zone_before = {field: getattr(zone, field) for field in journal.ZONE_FIELDS}
        change.incremental = False  # MiniDNS stops serving the zone: nothing to transfer
        _bump(zone, Action.DELETE)
        _save_change(zone)
        _commit(zone, change, events.DELETE)
    return zone


def _lock(zone_id, project_id: str | None = None) -> Zone:
    """The live zone, row-locked until the change commits (Zone.DoesNotExist if it is not, or not in
    project_id's project when one is given: the API's scope). Only the zone's row: its pool's stays free.
    The same statement reads zone.config_version (zones.cached: the copies of pool NS and quotas).
    Raw SQL because every write runs it: building it with the ORM took five times the CPU of running it,
    and reading it with raw() (a RawQuerySet) as much again as plain_sql.loaded."""
    postgresql = connection.vendor == "postgresql"
    sql = (f"SELECT {plain_sql.columns(Zone)}, {f'({cached.VERSION_SQL})' if postgresql else 'NULL'} "
           "FROM zones_zone WHERE id = %s AND deleted_at IS NULL")
    params = [Zone._meta.pk.get_db_prep_value(zone_id, connection)]
    if project_id is not None:
        sql += " AND project_id = %s"
        params.append(project_id)
    with connection.cursor() as cursor:
        cursor.execute(sql + (" FOR UPDATE" if postgresql else ""), params)
        row = cursor.fetchone()
    if row is None:
        raise Zone.DoesNotExist(f"no live zone {zone_id}")
    zone = plain_sql.loaded(Zone, [row])[0]
    zone.config_version = row[-1]
    return zone


def _save_change(zone: Zone):
    """Write the columns a change of an existing zone sets."""
    plain_sql.update(zone, CHANGED)


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
    journal.record(change, events.change_event(zone, event_type, change.actor))
    _enqueue(zone)


def _enqueue(zone: Zone):
    """Kick the pipeline once the change commits, unless a kick is already on its way (it will take
    this change too: pipeline.take_kick says why none is lost). If the broker is down the change is
    still safe in the database: recovery sends it when its enqueued_at is older than the propagation time."""
    zone_id = zone.id

    def send():
        countdown = pipeline.take_kick()
        if countdown is None:
            return
        try:
            # By name (zones/ never imports workers/), so say what the task says: no result to wait for,
            # and so no result-backend subscription that would hang the API while Redis is down.
            signature("workers.tasks.zone_action").apply_async(ignore_result=True, countdown=countdown or None)
        except Exception:  # noqa: BLE001 - the broker's failure must not fail a committed change
            pipeline.drop_kick()
            log.warning("zone %s: could not send the pipeline its kick, recovery will retry it", zone_id,
                        exc_info=True)

    transaction.on_commit(send)


def _write_managed_recordsets(zone: Zone, change: journal.Change, ns: list[str] | None = None, new: bool = False,
                              stored: dict[str, RecordSet] | None = None):
    """SOA and apex NS follow the zone and its pool; users never edit them. BIND 9 refuses to load a
    zone without NS records, so a pool without any takes no zone and no change. ns: the pool's NS
    hostnames when the caller has them; new: the zone has no managed RRsets yet (both in one INSERT);
    stored: the managed RRsets by type when the caller read them (_with_managed)."""
    if ns is None:
        ns = pool_ns(zone.pool_id, getattr(zone, "config_version", None))
    ns = list(_ns_names(tuple(ns)))
    if not ns:
        validation.fail("pool_id", "The zone's pool has no NS records, and a zone without them cannot be "
                                   "served; an admin must give the pool its ns_records first.")
    soa = (f"{ns[0]} {validation.email_to_rname(zone.email)} {zone.serial} "
           f"{zone.refresh} {zone.retry} {zone.expire} {zone.minimum}")
    wanted = {"SOA": [soa], "NS": ns}  # in this order in the change's record
    if stored is None:
        stored = {} if new else {rs.type: rs for rs in RecordSet.objects.filter(zone=zone, name=zone.name,
                                                                                  type__in=list(wanted))}
    missing = []
    for rtype, records in wanted.items():
        rs = stored.get(rtype)
        if rs is None:
            missing.append(RecordSet(zone=zone, name=zone.name, type=rtype, records=records, managed=True,
                                     serial=zone.serial, action=Action.CREATE))
            change.add(zone.name, rtype, zone.ttl, records)
        elif rs.records != records:
            # Managed RRsets have no TTL of their own: they are served with the zone's.
            change.remove(zone.name, rtype, change.zone_ttl_before, rs.records)
            change.add(zone.name, rtype, zone.ttl, records)
            rs.records, rs.serial, rs.status, rs.action = records, zone.serial, RecordSet.Status.PENDING, Action.UPDATE
            rs.version += 1
            plain_sql.update(rs, ["records", "serial", "status", "action", "version", "updated_at"])
    if missing:
        plain_sql.insert(*missing)


@functools.lru_cache(maxsize=1024)
def _ns_names(ns: tuple[str, ...]) -> tuple[str, ...]:
    """The pool's NS hostnames as zone names (validation.zone_name, a pure function: parsing them cost 3% of a
    write's CPU). A bad one raises every time: exceptions are not cached."""
    return tuple(validation.zone_name(hostname, "ns_records") for hostname in ns)


@transaction.atomic
def create_recordset(zone_id, *, name, type, records, ttl=None, description="", actor: Actor = SYSTEM,
                     project_id: str | None = None) -> RecordSet:
    zone = _lock(zone_id, project_id)
    _refuse_if_deleting(zone)
    rtype = validation.recordset_type(type)
    name = validation.record_name(name, zone.name)
    ttl = validation.ttl(ttl)
    rdata = validation.records(records, rtype, zone.name, name)
    if rtype == "NS" and name == zone.name:
        validation.fail("type", "NS records at the zone apex are managed by dnsctl.")
    at_name, managed = _with_managed(zone, name=name)
    siblings = {rs.type for rs in at_name}
    if rtype in siblings:
        raise validation.Duplicate("recordset", "name", f"A {rtype} recordset named {name} already exists.")
    if rtype == "CNAME" and (name == zone.name or siblings):
        validation.fail("type", f"A CNAME must be the only recordset at {name}.")
    if "CNAME" in siblings:
        validation.fail("type", f"{name} already has a CNAME; a CNAME must be alone at its name.")
    quotas.check(zone.project_id, zone.config_version, recordset_records=len(rdata),
                 zone_recordsets=zone.recordset_count + 1,
                 zone_records=zone.record_count + len(rdata))
    zone.recordset_count += 1
    zone.record_count += len(rdata)
    change = journal.Change(zone, journal.RECORDSET_CREATE, actor)
    _bump(zone, Action.UPDATE)
    _save_change(zone)
    rs = RecordSet(zone=zone, name=name, type=rtype, ttl=ttl, records=rdata, description=description or "",
                   serial=zone.serial)
    plain_sql.insert(rs)
    change.recordset_id = rs.id
    change.add(name, rtype, effective_ttl(ttl, zone), rdata)
    _write_managed_recordsets(zone, change, stored=managed)
    _commit(zone, change, events.UPDATE)
    return rs


@transaction.atomic
def update_recordset(zone_id, recordset_id, *, records=None, ttl=..., description=None,
                     actor: Actor = SYSTEM, project_id: str | None = None) -> RecordSet:
    """Replace records and/or ttl (ttl=None means 'use the zone TTL'); a no-op saves nothing, and a
    description alone changes no serial and is not recorded."""
    zone = _lock(zone_id, project_id)
    _refuse_if_deleting(zone)
    rs, managed = _user_recordset(zone, recordset_id)
    change = journal.Change(zone, journal.RECORDSET_UPDATE, actor, recordset_id=rs.id)
    change.remove(rs.name, rs.type, effective_ttl(rs.ttl, zone), rs.records)
    changed = False
    if records is not None:
        rdata = validation.records(records, rs.type, zone.name, rs.name)
        grown = len(rdata) - len(rs.records)
        if grown > 0:  # a recordset may always shrink, even in a project over its (lowered) quota
            quotas.check(zone.project_id, zone.config_version, recordset_records=len(rdata),
                         zone_records=zone.record_count + grown)
        if sorted(rdata) != sorted(rs.records):  # an RRset has no order: the same records reordered are no change
            changed = True
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
        _save_change(zone)
        rs.serial, rs.status, rs.action = zone.serial, RecordSet.Status.PENDING, Action.UPDATE
        rs.version += 1
        change.add(rs.name, rs.type, effective_ttl(rs.ttl, zone), rs.records)
        _write_managed_recordsets(zone, change, stored=managed)
        _commit(zone, change, events.UPDATE)
    plain_sql.update(rs, ["records", "ttl", "description", "serial", "status", "action", "version", "updated_at"])
    return rs


@transaction.atomic
def delete_recordset(zone_id, recordset_id, *, actor: Actor = SYSTEM,
                     project_id: str | None = None) -> RecordSet:
    zone = _lock(zone_id, project_id)
    _refuse_if_deleting(zone)
    rs, managed = _user_recordset(zone, recordset_id)
    zone.recordset_count -= 1
    zone.record_count -= len(rs.records)
    change = journal.Change(zone, journal.RECORDSET_DELETE, actor, recordset_id=rs.id)
    change.remove(rs.name, rs.type, effective_ttl(rs.ttl, zone), rs.records)
    _bump(zone, Action.UPDATE)
    _save_change(zone)
    rs_id = rs.id
    rs.delete()
    rs.id = rs_id  # Model.delete() clears the pk: callers still show which recordset went
    rs.status, rs.action = RecordSet.Status.PENDING, Action.DELETE
    _write_managed_recordsets(zone, change, stored=managed)
    _commit(zone, change, events.UPDATE)
    return rs


def _user_recordset(zone: Zone, recordset_id) -> tuple[RecordSet, dict[str, RecordSet]]:
    """The recordset (RecordSet.DoesNotExist if the zone has none with this id), and the managed ones."""
    found, managed = _with_managed(zone, recordset_id=recordset_id)
    if not found:
        raise RecordSet.DoesNotExist(f"no recordset {recordset_id} in zone {zone.id}")
    rs = found[0]
    if rs.managed:
        validation.fail("type", f"{rs.type} records at the zone apex are managed by dnsctl.")
    return rs, managed


def _with_managed(zone: Zone, *, name: str | None = None, recordset_id=None) -> tuple[list[RecordSet],
                                                                                       dict[str, RecordSet]]:
    """The zone's recordsets at `name` or with `recordset_id`, and its managed SOA and apex NS by type,
    in one query (raw SQL, as _lock's: every recordset write runs it). rs.zone is this (locked) zone."""
    uuid_field = RecordSet._meta.pk
    try:
        wanted = uuid_field.to_python(recordset_id)
    except ValidationError:
        raise RecordSet.DoesNotExist(f"no recordset {recordset_id}") from None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {plain_sql.columns(RecordSet)} FROM zones_recordset "
                       "WHERE zone_id = %s AND (name = %s OR id = %s OR managed AND name = %s)",
                       [uuid_field.get_db_prep_value(zone.id, connection), name,
                        uuid_field.get_db_prep_value(wanted, connection), zone.name])
        rows = plain_sql.loaded(RecordSet, cursor.fetchall())
    for rs in rows:
        rs.zone = zone
    found = [rs for rs in rows if rs.name == name or rs.id == wanted]
    return found, {rs.type: rs for rs in rows if rs.managed and rs.name == zone.name}


def _refuse_if_deleting(zone: Zone):
    if zone.action == Action.DELETE:
        validation.fail("zone", "The zone is being deleted.")

