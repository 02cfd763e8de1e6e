"""What the provisioning pipeline (workers.tasks) reads and records: a pool's work as plain
values, the changes to push, which of them are still current, each server's result, and each
zone's outcome. An older result never overwrites a newer change."""
import hashlib
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import redis
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from dnsctl import metrics
from zones import cached, plain_sql
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
    """Everything a task needs about a pool, as plain values (tasks never hold models; callers only
    read it). Every stage asks, so the process keeps a copy per version of the pools' configuration
    (zones.cached: any change to a pool, its targets, nameservers, also-notifies or a TSIG key makes
    a new one): one small query per stage instead of five, never stale."""
    return cached.get(("pool_work", str(pool_id)), cached.version(), lambda: _read_pool_work(pool_id))


def _read_pool_work(pool_id) -> dict | None:
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


KICK_KEY = "dnsctl:pipeline:kick"  # in the broker's Redis: a restart loses it with the kick it stands for
KICK_TTL = 2.0  # s: how long a key whose kick was lost keeps new changes from sending one
BUSY_KEY = "dnsctl:pipeline:busy"  # counts the changes that commit in a BUSY_WINDOW s window
BUSY_WINDOW = 0.15  # s
# A stream is this many changes in one window. Not two: one client making changes one at a time sends
# the next as soon as the last is ACTIVE (an idle system takes 0.1 s), which a window of two took for a
# stream: its change waited KICK_DELAY for company that never came (idle recordset change 0.24-0.3 s).
BUSY_CHANGES = 3
_kick_clients: dict[str, redis.Redis] = {}


def _kick_redis() -> redis.Redis | None:
    """The broker's Redis; None for another broker (tests' memory://), where every change sends a kick."""
    url = settings.CELERY_BROKER_URL
    if url not in _kick_clients:
        _kick_clients[url] = (redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
                              if url.split("://", 1)[0] in ("redis", "rediss", "unix") else None)
    return _kick_clients[url]


def take_kick() -> float | None:
    """None when a kick (zone_action) is outstanding; else the caller, a change that just committed,
    must send one, with this countdown: 0 on a quiet system (or when Redis cannot tell), KICK_DELAY
    while changes keep coming (BUSY_CHANGES of them in one BUSY_WINDOW s window), so that a steady
    stream travels in batches of KICK_DELAY s worth of changes instead of one each. A kick claims
    every change waiting when it runs, so a burst sends one kick, not a task per change, and under
    load its batch grows while it waits in the queue.

    The key is set here (SET NX) by whoever then sends the kick, and zone_action deletes it
    (drop_kick) BEFORE it claims. No committed change is left unpushed:
    - the key was free: this change's own kick runs after its commit and claims it;
    - the key was set: the kick K sent by whoever set it deletes it no earlier than this change saw
      it, so K's claim starts after this commit (an expired key changes nothing, K still runs; K
      deleting a newer key is harmless, its claim follows);
    - a claim skips locked rows: locked by another claim (which takes the change), by a newer change
      of the zone (its own commit repeats this argument), or by finish_outcomes, which locks only
      rows still at the serial it finishes, never one with a newer change waiting;
    - zone_action claims again while a claim comes back full, so nothing waits behind the limit.
    What is left waits for the next kick of any change, or recovery, as it did when each change had
    its own task: a kick lost with Redis, or never sent (its sender failed to publish, and dropped
    the key, or died), and a change whose row a writer held at the claim and then rolled back.
    Under a backlog a kick may wait longer than KICK_TTL in the queue: that only costs an extra kick."""
    client = _kick_redis()
    if client is None:
        return 0.0
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set(KICK_KEY, 1, nx=True, px=int(KICK_TTL * 1000))
        pipe.set(BUSY_KEY, 0, nx=True, px=int(BUSY_WINDOW * 1000))  # the window opens with its first change
        pipe.incr(BUSY_KEY)
        taken, _, changes = pipe.execute()
    except redis.RedisError:
        return 0.0
    if not taken:
        return None
    return settings.DNSCTL["KICK_DELAY"] if changes >= BUSY_CHANGES else 0.0


def drop_kick():
    """The kick runs (or could not be sent): the next change that commits sends a new one."""
    client = _kick_redis()
    try:
        if client is not None:
            client.delete(KICK_KEY)
    except redis.RedisError as exc:  # the key expires by itself; until then changes wait for a kick or recovery
        log.warning("could not clear the pipeline's kick: %s", exc)


@transaction.atomic
def claim_changes(limit: int) -> list[ZoneRef]:
    """Changes waiting to be pushed, oldest first, claimed so that no other worker pushes them too.

    FOR NO KEY UPDATE: a task inserting a status row holds a key-share lock on the zone row, which
    FOR UPDATE would see as taken and skip, leaving the change unpushed until recovery. Written as
    SQL: every kick claims, and building these two statements through the ORM (the CASE for each
    zone) was an eighth of the worker's CPU under load."""
    pk, pool_pk = Zone._meta.pk, Zone._meta.get_field("pool").target_field
    table = connection.ops.quote_name(Zone._meta.db_table)
    lock = " FOR NO KEY UPDATE SKIP LOCKED" if connection.features.has_select_for_no_key_update else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, name, action, serial, pool_id FROM {table} WHERE status = %s AND deleted_at IS NULL "
            f"AND (pushed_serial IS NULL OR pushed_serial <> serial) ORDER BY enqueued_at LIMIT %s{lock}",
            [Status.PENDING, limit])
        refs = [ZoneRef(str(pk.to_python(zone_id)), name, action, serial, str(pool_pk.to_python(pool_id)))
                for zone_id, name, action, serial, pool_id in cursor.fetchall()]
    plain_sql.update_each(Zone, "pushed_serial", {ref.id: ref.serial for ref in refs})
    return refs


def current_refs(refs: list[ZoneRef], mode: Mode) -> list[ZoneRef]:
    """The refs still worth pushing, in one query (written as SQL: every stage asks): a newer change or
    a delete makes a ref stale."""
    rows = {}
    if refs:
        pk = Zone._meta.pk
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, serial, action, deleted_at FROM {connection.ops.quote_name(Zone._meta.db_table)} "
                           f"WHERE id IN ({', '.join(['%s'] * len(refs))})",
                           [pk.get_db_prep_value(ref.id, connection) for ref in refs])
            rows = {str(pk.to_python(zone_id)): {"serial": serial, "action": action, "deleted_at": deleted_at}
                    for zone_id, serial, action, deleted_at in cursor.fetchall()}

    def current(ref):
        row = rows.get(ref.id)
        if mode == Mode.TARGET_SYNC:  # replay what the zone is now: live zones exist, deleted ones don't
            gone = row is None or row["deleted_at"] is not None or row["action"] == Action.DELETE
            return gone == (ref.action == Action.DELETE)
        if row is None or row["deleted_at"] is not None or row["serial"] != ref.serial:
            return False
        return row["action"] == (Action.NONE if mode == Mode.SYNC else ref.action)

    return [ref for ref in refs if current(ref)]


class Busy(Exception):
    """Another task still applies a change of these zones to this target (fenced() waited long enough)."""


@contextmanager
def fenced(target_id, refs: list[ZoneRef], mode: Mode, wait: float):
    """Apply refs to one target in order: yields the refs still current once this task holds the
    (target, zone name) locks, and keeps them until the caller's target calls are done.

    Without it a task could find its create current, a delete commit and reach the target first,
    and the create land after it: the zone DELETED here, still configured there. Locks are
    PostgreSQL transaction advisory locks: one query for the batch, taken in key order so batches
    never deadlock, released at commit or when the holder's connection dies (a lost worker leaves
    none behind), and nothing in Redis to lose. By name, not id: a zone re-created under a deleted
    one's name waits for the old delete too. Busy after `wait` seconds. SQLite (a single-process
    dev setup) has no such locks and takes none."""
    keys = sorted({_fence_key(target_id, ref.name) for ref in refs})
    with transaction.atomic():
        if keys and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                try:  # one round trip; a timeout ends the transaction (Busy leaves this block)
                    cursor.execute("SET LOCAL lock_timeout = %s; SELECT count(pg_advisory_xact_lock(k)) FROM "
                                   "(SELECT unnest(%s::bigint[]) AS k ORDER BY 1) AS ordered; "
                                   "SET LOCAL lock_timeout = 0", [f"{max(1, int(wait * 1000))}ms", keys])
                except OperationalError as exc:
                    if getattr(exc.__cause__, "pgcode", None) != "55P03":  # lock_not_available
                        raise
                    raise Busy(f"another change of these zones on this target still runs after {wait:g} s") from None
        yield current_refs(refs, mode)


def _fence_key(target_id, zone_name: str) -> int:
    """A signed 64-bit advisory lock key for (target, zone name); a collision only serialises two zones."""
    digest = hashlib.blake2b(f"dnsctl-fence:{target_id}:{zone_name.lower()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


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
    """Upsert one status row per zone for one server in one statement (INSERT .. ON CONFLICT DO UPDATE,
    in zone order so two batches never deadlock); a row for an older version than the stored one is
    left alone (a late result of a superseded change)."""
    if not rows:
        return
    rows = sorted(rows, key=lambda row: str(row["zone_id"]))
    names = ["zone_id", server_field, *[f for f in rows[0] if f != "zone_id"], "updated_at"]
    fields = [model._meta.get_field(name) for name in names]
    now, server_id = timezone.now(), str(server_id)
    params = [field.get_db_prep_save(value, connection) for row in rows
              for field, value in zip(fields, [row["zone_id"], server_id, *[row[n] for n in names[2:-1]], now])]
    q = connection.ops.quote_name
    table, columns = q(model._meta.db_table), [q(field.column) for field in fields]
    one = f"({', '.join(['%s'] * len(fields))})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * len(rows))} "
            f"ON CONFLICT ({columns[0]}, {columns[1]}) DO UPDATE SET "
            f"{', '.join(f'{c} = EXCLUDED.{c}' for c in columns[2:])} "
            f"WHERE {table}.{q(version_field)} <= EXCLUDED.{q(version_field)}", params)


@dataclass(frozen=True)
class Outcome:
    """How pushing one zone ended: `reason` is the operator's (servers, addresses, their messages);
    `tenant_reason` is what the zone's project may read."""

    ref: ZoneRef
    ok: bool
    reason: str = ""
    tenant_reason: str = ""


def finish_outcomes(outcomes: list[Outcome], mode: Mode) -> int:
    """Record a batch's outcomes in one transaction; how many were recorded (a zone that moved on is
    not: a newer change wins). If that transaction fails, zone by zone, so that one zone that cannot
    be recorded never stops the others."""
    if mode == Mode.TARGET_SYNC:  # a replay leaves the zone's state alone
        for outcome in outcomes:
            if not outcome.ok:
                log.warning("target sync of %s (%s) failed: %s", outcome.ref.name, outcome.ref.action, outcome.reason)
        return 0
    if not outcomes:
        return 0
    if len(outcomes) > 1:
        try:
            return _record_outcomes(outcomes, mode)
        except Exception:  # noqa: BLE001
            log.warning("recording %d outcomes together failed; one by one", len(outcomes), exc_info=True)
    recorded = 0
    for outcome in outcomes:
        try:
            recorded += _record_outcomes([outcome], mode)
        except Exception:  # noqa: BLE001
            log.exception("zone %s (%s): recording the outcome failed", outcome.ref.name, outcome.ref.id)
    return recorded


@transaction.atomic
def _record_outcomes(outcomes: list[Outcome], mode: Mode) -> int:
    """Lock the zones still at the outcomes' serial and action (in id order, one query; a zone with a
    newer change waiting is neither locked nor touched), then one update per kind of outcome."""
    wanted_action = (lambda ref: ref.action) if mode == Mode.CHANGE else (lambda ref: Action.NONE)
    by_version = {}
    for outcome in outcomes:
        by_version.setdefault((outcome.ref.serial, wanted_action(outcome.ref)), []).append(outcome.ref.id)
    match = Q()
    for (serial, action), ids in by_version.items():
        match |= Q(id__in=ids, serial=serial, action=action)
    rows = {str(zone_id): (status, updated_at) for zone_id, status, updated_at in (
        Zone.objects.select_for_update(no_key=True).filter(match, deleted_at__isnull=True).order_by("id")
        .values_list("id", "status", "updated_at"))}
    now = timezone.now()
    current = [o for o in outcomes if o.ref.id in rows]
    if len(current) < len(outcomes):
        log.debug("results dropped for zones that moved on: %s",
                  ", ".join(o.ref.name for o in outcomes if o.ref.id not in rows))
    zones = Zone.objects.filter(deleted_at__isnull=True)
    ok = [o.ref.id for o in current if o.ok]
    failed = {}
    for o in current:
        if not o.ok:
            failed.setdefault((o.reason, o.tenant_reason), []).append(o.ref.id)
    if mode == Mode.SYNC:
        zones.filter(id__in=ok).update(enqueued_at=None)  # nothing changed: updated_at stays the last change's
        for (reason, tenant_reason), ids in failed.items():  # ERROR with an UPDATE pending: recovery retries it
            zones.filter(id__in=ids).update(
                status=Status.ERROR, action=Action.UPDATE, reason=f"Sync failed: {reason}"[:4000],
                tenant_reason=f"Sync failed: {tenant_reason or 'the zone could not be provisioned.'}"[:4000],
                enqueued_at=None, updated_at=now)
        return len(current)
    for o in current:
        status, updated_at = rows[o.ref.id]
        if status == Status.PENDING:  # the change's own outcome (a retry of an ERROR is not timed again)
            metrics.change_settled(o.ref.action, o.ok, updated_at, now)
    deleted = [o.ref.id for o in current if o.ok and o.ref.action == Action.DELETE]
    active = [zone_id for zone_id in ok if zone_id not in deleted]
    settled = {"action": Action.NONE, "reason": "", "tenant_reason": "", "enqueued_at": None, "updated_at": now}
    if deleted:
        zones.filter(id__in=deleted).update(status=Status.DELETED, deleted_at=now, **settled)
    if active:
        zones.filter(id__in=active).update(status=Status.ACTIVE, **settled)
        RecordSet.objects.filter(~Q(status=RecordSet.Status.ACTIVE), zone_id__in=active,
                                 serial__lte=F("zone__serial")).update(status=RecordSet.Status.ACTIVE,
                                                                      action=Action.NONE)
    for (reason, tenant_reason), ids in failed.items():
        zones.filter(id__in=ids).update(
            status=Status.ERROR, reason=reason[:4000], enqueued_at=None, updated_at=now,
            tenant_reason=(tenant_reason or "The change could not be provisioned.")[:4000])
        RecordSet.objects.filter(zone_id__in=ids, status=RecordSet.Status.PENDING).update(
            status=RecordSet.Status.ERROR)
    return len(current)


def finish(ref: ZoneRef, mode: Mode, ok: bool, reason: str = "", tenant_reason: str = "") -> bool:
    """Record the outcome of pushing one zone in the given mode (an error raises)."""
    if mode == Mode.TARGET_SYNC:
        return bool(finish_outcomes([Outcome(ref, ok, reason, tenant_reason)], mode))
    return bool(_record_outcomes([Outcome(ref, ok, reason, tenant_reason)], mode))


def finish_zone_action(zone_id, action, serial, ok: bool, reason: str = "", tenant_reason: str = "") -> bool:
    """Record the outcome of the work for `serial`. A newer change wins: an older result is dropped."""
    return finish(ZoneRef(str(zone_id), "", action, serial, ""), Mode.CHANGE, ok, reason, tenant_reason)
