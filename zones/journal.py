"""The change journal: one ZoneChange row per committed change of a zone.

zones.services gathers what a change did in a `Change` and writes it with `record()` in the change's
own transaction, together with its outbox event (one statement, nothing read back). The same row is read three ways:
- MiniDNS answers IXFR from it (`ixfr`: the changes from a client's serial to the current one,
  condensed into one difference as RFC 1995 allows);
- the API and the admin list it as the audit trail (`changes_for`);
- the outbox event of the change carries its actor (zones.events).
It is trimmed by age and by changes per zone (`trim`, from the purge sweep).
"""
import json
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db import connection
from django.db.models import Count, Subquery
from django.utils import timezone

from . import plain_sql
from .models import OutboxEvent, Zone, ZoneChange

ZONE_CREATE, ZONE_UPDATE, ZONE_DELETE = "zone.create", "zone.update", "zone.delete"
RECORDSET_CREATE, RECORDSET_UPDATE, RECORDSET_DELETE = "recordset.create", "recordset.update", "recordset.delete"
ACTIONS = (ZONE_CREATE, ZONE_UPDATE, ZONE_DELETE, RECORDSET_CREATE, RECORDSET_UPDATE, RECORDSET_DELETE)
# The zone fields a change's record shows before -> after (what a tenant can set).
ZONE_FIELDS = ("name", "email", "ttl", "description")


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the API caller (its user and the token it came with), a person in the
    Django admin, or the system itself. Handed from the views to zones.services as a plain value."""

    user_id: int | None
    username: str
    token_id: str | None = None
    via: str = "api"  # api, admin or system

    def as_dict(self) -> dict:
        return asdict(self)


SYSTEM = Actor(None, "system", None, "system")


def effective_ttl(ttl: int | None, zone: Zone) -> int:
    """The TTL an RRset is served with: its own, else the zone's."""
    return zone.ttl if ttl is None else ttl


class Change:
    """What one change did, gathered while zones.services writes it. Built before the serial is bumped
    (so it knows the serial before), with the TTLs the RRsets were served with."""

    def __init__(self, zone: Zone, action: str, actor: Actor, recordset_id=None):
        self.zone, self.action, self.actor, self.recordset_id = zone, action, actor, recordset_id
        self.serial_before = None if action == ZONE_CREATE else zone.serial
        self.zone_ttl_before = zone.ttl
        self.zone_before, self.zone_after = {}, {}
        self.removed, self.added = [], []
        self.incremental = True

    def field(self, name: str, before, after):
        """A zone field the change sets; kept only if its value really changes."""
        if before != after:
            self.zone_before[name], self.zone_after[name] = before, after

    def remove(self, owner: str, rtype: str, ttl: int, records: list[str]):
        if records:
            self.removed.append([owner, rtype, ttl, list(records)])

    def add(self, owner: str, rtype: str, ttl: int, records: list[str]):
        if records:
            self.added.append([owner, rtype, ttl, list(records)])


def record(change: Change, event: OutboxEvent):
    """Write the change's one record and its outbox event (zones.events.change_event), which carries
    the record's id; call inside the change's transaction, after the serial is bumped. On PostgreSQL
    one statement (the record's INSERT feeds the event's), in plain SQL (zones.plain_sql): every write runs
    it, and the two ORM creates cost a tenth of an API write's CPU and a round trip more."""
    assert connection.in_atomic_block, "a change's record must be written in the change's transaction"
    zone, actor = change.zone, change.actor
    row = ZoneChange(
        zone_id=zone.id, zone_name=zone.name, project_id=zone.project_id, action=change.action,
        recordset_id=change.recordset_id, serial_before=change.serial_before, serial=zone.serial,
        actor_user_id=actor.user_id, actor_name=actor.username[:150], actor_token_id=actor.token_id,
        actor_via=actor.via, zone_before=change.zone_before, zone_after=change.zone_after,
        removed=change.removed, added=change.added, incremental=change.incremental)
    if connection.vendor != "postgresql":
        plain_sql.insert(row)
        event.payload["change_id"] = row.id
        plain_sql.insert(event)
        return
    record_sql, record_params = plain_sql.insert_sql([row])
    event_sql, event_params = plain_sql.insert_sql(
        [event], wrap={"payload": "%s::jsonb || jsonb_build_object('change_id', (SELECT id FROM change))"})
    with connection.cursor() as cursor:
        cursor.execute(f"WITH change AS ({record_sql}) {event_sql}", record_params + event_params)


# --- IXFR ----------------------------------------------------------------------------------------


def ixfr_diffs(zone_id, from_serial: int, to_serial: int) -> list[tuple[list, list]] | None:
    """The (removed, added) of each change that took the zone from from_serial to to_serial, in order;
    None when the journal does not chain all the way (trimmed, never recorded, or a change that is not
    incremental on the way). One query: the changes from the one that started at from_serial."""
    diffs, serial = [], from_serial
    for before, after, incremental, removed, added in _chain(zone_id, from_serial):
        if serial == to_serial:
            break
        if before != serial or not incremental:
            return None
        diffs.append((removed, added))
        serial = after
    return diffs if diffs and serial == to_serial else None


_CHAIN = """SELECT serial_before, serial, incremental, removed, added FROM zones_zonechange
WHERE zone_id = %s AND id >= (SELECT id FROM zones_zonechange WHERE zone_id = %s AND serial_before = %s
                              ORDER BY id DESC LIMIT 1)
ORDER BY id"""


def _chain(zone_id, from_serial):
    """The journal's rows from the change that started at from_serial on. On PostgreSQL as plain SQL: MiniDNS
    reads it for every change, and the ORM spent ten times longer building the query than running it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_CHAIN, [zone_id, zone_id, from_serial])
            return [(before, after, incremental, _loaded(removed), _loaded(added))
                    for before, after, incremental, removed, added in cursor.fetchall()]
    start = (ZoneChange.objects.filter(zone_id=zone_id, serial_before=from_serial).order_by("-id")
             .values("id")[:1])
    return (ZoneChange.objects.filter(zone_id=zone_id, id__gte=Subquery(start)).order_by("id")
            .values_list("serial_before", "serial", "incremental", "removed", "added"))


def _loaded(value):
    """A jsonb value as the driver hands it to Django: text, decoded here as JSONField would."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def condense(diffs: list[tuple[list, list]]) -> tuple[list, list] | None:
    """One difference for a run of changes (RFC 1995 section 4 allows condensing): (removed, added)
    as rows [owner, type, ttl, [rdata]], each starting with the SOA (the first change's old one, the
    last change's new one). A record added and then removed, or removed and then added back, cancels.
    A record is (owner, type, ttl, rdata), so a TTL change stays a removal and an addition. None if a
    change lacks its SOA records (it could not be an IXFR step)."""
    removed, added = {}, {}  # dicts as ordered sets of (owner, type, ttl, rdata)
    old_soa = new_soa = None
    for diff_removed, diff_added in diffs:
        soas = [row for row in diff_removed if row[1] == "SOA"], [row for row in diff_added if row[1] == "SOA"]
        if len(soas[0]) != 1 or len(soas[1]) != 1:
            return None
        old_soa = old_soa or soas[0][0]
        new_soa = soas[1][0]
        for key in _records(diff_removed):
            if key in added:
                del added[key]
            else:
                removed[key] = None
        for key in _records(diff_added):
            if key in removed:
                del removed[key]
            else:
                added[key] = None
    if old_soa is None:
        return None
    return [old_soa] + _rows(removed), [new_soa] + _rows(added)


def ixfr(zone_id, from_serial: int, to_serial: int) -> tuple[list, list] | None:
    """The condensed difference from from_serial to to_serial, or None (then an AXFR is due)."""
    diffs = ixfr_diffs(zone_id, from_serial, to_serial)
    return condense(diffs) if diffs else None


def _records(rows):
    for owner, rtype, ttl, records in rows:
        if rtype != "SOA":
            for rdata in records:
                yield owner, rtype, ttl, rdata


def _rows(keys) -> list:
    """Records back into RRset rows, in first-seen order."""
    rows = {}
    for owner, rtype, ttl, rdata in keys:
        rows.setdefault((owner, rtype, ttl), []).append(rdata)
    return [[owner, rtype, ttl, records] for (owner, rtype, ttl), records in rows.items()]


# --- the audit trail -----------------------------------------------------------------------------


def changes_for(zone_id=None):
    """Changes, newest last: one zone's, or every zone's (the admin's view)."""
    changes = ZoneChange.objects.all()
    return changes if zone_id is None else changes.filter(zone_id=zone_id)


def recordset_changes(change: ZoneChange) -> list[dict]:
    """The change's RRsets as before -> after, paired by name and type; the SOA, which every change
    rewrites, is left out (its serial is the change's, its email a zone field)."""
    pairs = {}
    for side, rows in (("before", change.removed), ("after", change.added)):
        for owner, rtype, ttl, records in rows:
            if rtype != "SOA":
                pair = pairs.setdefault((owner, rtype), {"name": owner, "type": rtype, "before": None, "after": None})
                pair[side] = {"ttl": ttl, "records": records}
    return list(pairs.values())


# --- trimming ------------------------------------------------------------------------------------


def trim(max_age: float, max_per_zone: int, batch_size: int = 10_000) -> int:
    """Delete changes older than max_age seconds, and each zone's beyond its newest max_per_zone
    (0 = no limit), batch_size rows per statement. IXFR from a trimmed serial falls back to AXFR;
    the audit trail keeps what the journal keeps."""
    deleted = 0
    if max_age:
        cutoff = timezone.now() - timedelta(seconds=max_age)
        while True:
            ids = list(ZoneChange.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:batch_size])
            if not ids:
                break
            deleted += ZoneChange.objects.filter(id__in=ids).delete()[0]
    if max_per_zone:
        crowded = list(ZoneChange.objects.values("zone_id").annotate(n=Count("id")).filter(n__gt=max_per_zone)
                       .values_list("zone_id", flat=True))
        for zone_id in crowded:
            ids = ZoneChange.objects.filter(zone_id=zone_id).order_by("-id").values_list("id", flat=True)
            oldest_kept = ids[max_per_zone - 1]
            while count := ZoneChange.objects.filter(
                    id__in=list(ids.filter(id__lt=oldest_kept)[:batch_size])).delete()[0]:
                deleted += count
    return deleted
