"""What callers may see and choose: zones, pools and propagation, read-only."""
import uuid

from django.conf import settings
from django.db.models import Q

from zones import cached, transfers, validation
from zones.models import NameserverStatus, Pool, PoolNsRecord, PoolTarget, Zone


def zones_for(project_id: str | None):
    """Live zones a caller may see: one project's, or every project's (project_id None = admin)."""
    qs = Zone.objects.filter(deleted_at__isnull=True).select_related("pool")
    return qs if project_id is None else qs.filter(project_id=project_id)


def nameservers_of(zone: Zone) -> list[dict]:
    return [{"hostname": r.hostname, "priority": r.priority} for r in zone.pool.ns_records.all()]


def propagation_of(zone: Zone, *, operator: bool = False) -> dict:
    """Each target's and nameserver's last result for the zone, so a lagging server shows.

    Operators see every server with its address and what it said, and every transfer MiniDNS saw
    lately (zones.transfers: who, which serial, running or done, bytes). A tenant sees its nameservers
    by their public NS names, whether each serves the zone's serial and its latest transfer's state
    and serial, and how many targets applied the change: no targets, addresses, ports or messages."""
    targets = {s.target_id: s for s in zone.target_statuses.all()}
    nameservers = {s.nameserver_id: s for s in zone.nameserver_statuses.all()}
    seen = transfers.of_zones([zone.id]).get(str(zone.id), [])
    xfrs = [t for t in seen if t["type"] != "SOA"]

    def latest_transfer(ns, fields):
        rows = transfers.from_host(xfrs, ns.host)
        return {k: rows[0][k] for k in fields} if rows else None

    if not operator:
        applied = [s for s in targets.values() if s.serial == zone.serial]
        return {
            "zone_id": str(zone.id), "name": zone.name, "serial": zone.serial,
            "status": zone.status, "action": zone.action, "reason": zone.tenant_reason,
            "provisioning": {"servers": zone.pool.targets.count(), "done": sum(s.ok for s in applied),
                             "failed": sum(not s.ok for s in applied)},
            "nameservers": [{**_public_ns_row(zone, ns.public_name(i), nameservers.get(ns.id)),
                             "transfer": latest_transfer(ns, ("type", "serial", "state", "started_at", "ended_at"))}
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
            "transfer": latest_transfer(ns, ("peer", "type", "serial", "from_serial", "state", "started_at",
                                             "ended_at", "bytes", "messages", "error")),
        }

    return {
        "zone_id": str(zone.id), "name": zone.name, "serial": zone.serial,
        "status": zone.status, "action": zone.action, "reason": zone.reason,
        "targets": [target_row(t) for t in zone.pool.targets.all()],
        "nameservers": [ns_row(ns) for ns in zone.pool.nameservers.all()],
        "transfers": seen,
    }


def _public_ns_row(zone: Zone, name: str, s: NameserverStatus | None) -> dict:
    return {"name": name, "serial": s.serial if s else None, "in_sync": bool(s and s.serial == zone.serial),
            "updated_at": s.updated_at if s else None}


def default_pool() -> Pool:
    return default_pool_with_ns()[0]


def default_pool_with_ns(version: int | None = None) -> tuple[Pool, list[str]]:
    """The pool new zones go to (named DEFAULT_POOL, else the only one) and its NS hostnames; with a
    config version (zones.cached) from this process's copy: do not change the pool returned."""
    name = settings.DNSCTL["DEFAULT_POOL"]
    pool, ns = cached.get(("default pool", name), version, lambda: _default_pool_with_ns(name))
    if pool is None:
        validation.fail("pool_id", "No default pool is configured; create a pool named "
                        f"'{name}' or pass pool_id.")
    return pool, ns


def _default_pool_with_ns(name: str) -> tuple[Pool | None, list[str]]:
    pool, ns = pool_with_ns(name=name)
    if pool is None and Pool.objects.count() == 1:
        pool, ns = pool_with_ns(id=Pool.objects.get().id)
    return pool, ns


def pool_ns(pool_id, version: int | None = None) -> list[str]:
    """A pool's NS hostnames in priority order; with a config version from this process's copy."""
    return cached.get(("pool ns", str(pool_id)), version, lambda: list(
        PoolNsRecord.objects.filter(pool_id=pool_id).values_list("hostname", flat=True)))


def pool_with_ns(**lookup) -> tuple[Pool | None, list[str]]:
    """A pool (by Pool fields, e.g. name=... or id=...) and its NS hostnames in priority order: one
    query, the NS rows joined to their pool, unless the pool has none."""
    rows = list(PoolNsRecord.objects.select_related("pool").filter(**{f"pool__{k}": v for k, v in lookup.items()}))
    if rows:
        return rows[0].pool, [r.hostname for r in rows]
    return Pool.objects.filter(**lookup).first(), []


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


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False

