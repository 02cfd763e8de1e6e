"""Quotas in Designate's shapes: per project, per resource, a hard limit (-1: unlimited).

Defaults come from settings.QUOTAS (sized for a DNS service: a 100,000-record zone is normal);
a Quota row overrides one resource for one project. zones.services checks them inside the
write's own transaction: zone counts under a per-project lock, recordset and record counts under
the zone's row lock, so concurrent requests cannot overshoot.
"""
import hashlib

from django.conf import settings
from django.db import connection, transaction

from . import cached, validation
from .models import Quota

RESOURCES = ("zones", "zone_recordsets", "zone_records", "recordset_records", "api_export_size")
MIN_LIMIT, MAX_LIMIT = -1, 2**31 - 1  # Designate's bounds; -1 is unlimited


def defaults() -> dict[str, int]:
    return {resource: settings.QUOTAS[resource] for resource in RESOURCES}


def quotas_of(project_id: str, version: int | None = None) -> dict[str, int]:
    """The project's limits: the defaults, overridden by its own rows. With a config version
    (zones.cached, read by the caller's lock) from this process's copy."""
    project_id = validation.project_id(project_id)

    def load():  # the project's own rows only: the defaults are settings, read on every call
        return dict(Quota.objects.filter(project_id=project_id, resource__in=RESOURCES)
                    .values_list("resource", "hard_limit"))

    return {**defaults(), **cached.get(("quotas", project_id), version, load)}


@transaction.atomic
def set_quotas(project_id: str, values) -> dict[str, int]:
    """Set some of a project's limits ({resource: limit}); all or nothing."""
    if not isinstance(values, dict) or not values:
        validation.fail("quotas", f"Send an object of one or more of {', '.join(RESOURCES)}.")
    for resource, limit in values.items():
        if resource not in RESOURCES:
            validation.fail(resource, f"Unknown quota resource; known: {', '.join(RESOURCES)}.")
        if isinstance(limit, bool) or not isinstance(limit, int) or not MIN_LIMIT <= limit <= MAX_LIMIT:
            validation.fail(resource, f"Must be an integer between {MIN_LIMIT} (unlimited) and {MAX_LIMIT}.")
    validation.project_id(project_id)
    for resource, limit in values.items():
        Quota.objects.update_or_create(project_id=project_id, resource=resource, defaults={"hard_limit": limit})
    return quotas_of(project_id)


def reset_quotas(project_id: str):
    """Back to the defaults."""
    Quota.objects.filter(project_id=validation.project_id(project_id)).delete()


def check(project_id: str, version: int | None = None, **usage: int):
    """Raise OverQuota if any resource's usage after the write (resource=count) passes its limit."""
    _check(quotas_of(project_id, version), usage)


def _check(limits: dict[str, int], usage: dict[str, int]):
    for resource, count in usage.items():
        limit = limits[resource]
        if 0 <= limit < count:
            raise validation.OverQuota(resource, limit)


def check_new_zone(project_id: str, limits: dict[str, int]):
    """One more zone for the project; call under the project's lock (lock_project), with its limits."""
    assert connection.in_atomic_block, "quota checks run in the write's transaction"
    # Counted in a statement of its own, after the lock: its snapshot sees every zone committed before.
    # (Raw SQL: every zone create runs it, and the ORM spent more CPU building it than the count took.)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM zones_zone WHERE project_id = %s AND deleted_at IS NULL", [project_id])
        live = cursor.fetchone()[0]
    _check(limits, {"zones": live + 1})


# The lock, the project's limits and the config version (zones.cached) in one round trip.
_LOCK_SQL = ("SELECT pg_advisory_xact_lock(%s), (SELECT json_object_agg(resource, hard_limit) FROM zones_quota "
             f"WHERE project_id = %s AND resource = ANY(%s)), ({cached.VERSION_SQL})")


def lock_project(project_id: str) -> tuple[dict[str, int], int | None]:
    """Serialise a project's zone creations until the transaction ends: two requests must not both
    see the last free slot. Returns the project's limits and the config version, read in the same
    statement (they are not what the lock protects). PostgreSQL: a transaction-scoped advisory lock;
    SQLite's writers are serialised already."""
    project_id = validation.project_id(project_id)
    if connection.vendor != "postgresql":
        return quotas_of(project_id), None
    key = int.from_bytes(hashlib.sha256(f"dnsctl-project:{project_id}".encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, [key, project_id, list(RESOURCES)])
        _, own, version = cursor.fetchone()
    limits = defaults()
    limits.update(own or {})
    return limits, version


def _lock_project(project_id: str) -> dict[str, int]:
    """lock_project's limits (zone imports take the same lock)."""
    return lock_project(project_id)[0]


def absolute_limits(project_id: str) -> dict[str, int]:
    """GET /v2/limits: what the project may create, and the API's field limits (the view adds the page limit)."""
    limits = quotas_of(project_id)
    return {
        "max_zones": limits["zones"],
        "max_zone_recordsets": limits["zone_recordsets"],
        "max_zone_records": limits["zone_records"],
        "max_recordset_records": limits["recordset_records"],
        "min_ttl": settings.DNSCTL["MIN_TTL"],
        "max_zone_name_length": 255,
        "max_recordset_name_length": 255,
    }
