"""Pool administration: a pool with its targets, nameservers, also-notifies and NS records
(the API, the admin and manage.py configure_pool), and a target's options as workers get them."""
import ipaddress

from django.db import transaction

from zones import backends, reserved, validation
from zones.models import Pool, PoolAlsoNotify, PoolNameserver, PoolNsRecord, PoolTarget, TsigKey


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
    known = backends.types()
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
    # The backend checks its own options: a bad target is a 400 now, not an ERROR later.
    problem = backends.check(target.type, target.name, target_options(target, pool), target.master_addresses())
    if problem:
        validation.fail(f"{field}.options", problem)
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

