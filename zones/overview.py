"""What operators look at: read-only numbers for the admin's overview page and /metrics.

Everything here reads; nothing writes. The overview is for people (a page load now and then);
`metrics_numbers` is what a Prometheus scrape reads, so it is a handful of grouped counts under a
statement timeout.
"""
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from . import events
from .models import SHARDS, ExistsSweep, NameserverStatus, OutboxEvent, PeriodicRun, Pool, TargetStatus, Zone

ERRORS_SHOWN = 20


def _statement_timeout(seconds: float):
    """Bound every query of the current transaction (PostgreSQL; SQLite has no such setting)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(seconds * 1000)}ms"])


def _live():
    return Zone.objects.filter(deleted_at__isnull=True)


def periodic_runs() -> list[dict]:
    return list(PeriodicRun.objects.order_by("name").values("name", "runs", "started_at", "finished_at", "summary"))


def outbox() -> dict:
    """Unpublished events and the age of the oldest (the relay's lag)."""
    found = OutboxEvent.objects.filter(seq__isnull=True).aggregate(n=Count("id"), oldest=Min("created_at"))
    lag = (timezone.now() - found["oldest"]).total_seconds() if found["oldest"] else 0.0
    return {"backlog": found["n"], "lag": max(0.0, lag)}


def exists_progress() -> dict:
    """Shards of the current exists period that are swept (done) and still to sweep."""
    period = events.period_of(time.time(), settings.EVENTS["EXISTS_INTERVAL"])
    done = ExistsSweep.objects.filter(period=period, done=True).count()
    return {"done": done, "pending": SHARDS - done}


def metrics_numbers() -> dict:
    """The gauges /metrics reads from the database."""
    with transaction.atomic():
        _statement_timeout(settings.METRICS["DB_TIMEOUT"])
        zones = {(row["pool__name"], row["status"], row["action"]): row["n"] for row in
                 _live().values("pool__name", "status", "action").annotate(n=Count("id")).order_by()}
        now = timezone.now()
        oldest = {row["pool__name"]: (now - row["oldest"]).total_seconds() for row in
                  _live().filter(status=Zone.Status.PENDING).values("pool__name")
                  .annotate(oldest=Min("updated_at")).order_by()}
        box = outbox()
        return {"zones": zones, "oldest_pending": oldest, "outbox_backlog": box["backlog"],
                "outbox_lag": box["lag"], "exists_shards": exists_progress(), "periodic": periodic_runs()}


def _server_rows(statuses, servers, key: str, lagging: Q, window_start) -> list[dict]:
    """Each server's recent success rate (its latest result per zone, for zones it handled in the
    window) and lag (live zones whose current serial it has not got: how many, since when)."""
    recent = {row[key]: row for row in statuses.filter(updated_at__gte=window_start).values(key)
              .annotate(total=Count("id"), ok=Count("id", filter=Q(ok=True))).order_by()}
    behind = {row[key]: row for row in statuses.filter(lagging, zone__deleted_at__isnull=True).values(key)
              .annotate(zones=Count("id"), since=Min("zone__updated_at")).order_by()}
    now = timezone.now()
    rows = []
    for server in servers:
        seen, lag = recent.get(server.id, {}), behind.get(server.id)
        rows.append({
            "server": server, "recent": seen.get("total", 0),
            "success_rate": round(100.0 * seen["ok"] / seen["total"], 1) if seen.get("total") else None,
            "lagging_zones": lag["zones"] if lag else 0,
            "lag_seconds": round((now - lag["since"]).total_seconds()) if lag else 0,
        })
    return rows


def pools(window: float = 3600) -> list[dict]:
    """Per pool: zones by status, the oldest PENDING change, the zones in ERROR with their reasons,
    and each target's and nameserver's recent success rate and lag."""
    window_start = timezone.now() - timedelta(seconds=window)
    by_status = {}
    for row in _live().values("pool_id", "status").annotate(n=Count("id")).order_by():
        by_status.setdefault(row["pool_id"], {})[row["status"]] = row["n"]
    result = []
    for pool in Pool.objects.prefetch_related("targets", "nameservers").order_by("name"):
        zones = _live().filter(pool=pool)
        counts = by_status.get(pool.id, {})
        errors = zones.filter(status=Zone.Status.ERROR).order_by("-updated_at")
        result.append({
            "pool": pool,
            "statuses": [(status, counts.get(status, 0)) for status in
                         (Zone.Status.ACTIVE, Zone.Status.PENDING, Zone.Status.ERROR)],
            "total": sum(counts.values()),
            "oldest_pending": zones.filter(status=Zone.Status.PENDING).order_by("updated_at", "id").first(),
            "errors": list(errors[:ERRORS_SHOWN]),
            "error_count": counts.get(Zone.Status.ERROR, 0),
            "targets": _server_rows(TargetStatus.objects.filter(target__pool=pool), pool.targets.all(), "target_id",
                                    Q(ok=False) | Q(serial__lt=F("zone__serial")), window_start),
            "nameservers": _server_rows(
                NameserverStatus.objects.filter(nameserver__pool=pool), pool.nameservers.all(), "nameserver_id",
                Q(serial__isnull=True) | ~Q(serial=F("zone__serial")), window_start),
        })
    return result
