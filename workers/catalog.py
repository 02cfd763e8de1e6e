"""Catalog zones (RFC 9432, version 2): a pool with a catalog zone provisions by membership.

MiniDNS serves the pool's catalog (its live zones as members; see `rows`); the pool's servers
consume it (BIND9 catalog-zones, Knot catalog-role interpret, PowerDNS kind Consumer) and create
or drop member zones themselves, so a catalog pool's targets need no control-channel action.

The pipeline provisions a catalog pool's targets here (`provision`, called by
workers.tasks.target_batch instead of the target's backend): a batch with a create or delete
calls `members_changed(pool_id)`, after the changes committed. That debounces: the first
change of a burst schedules one `catalog_changed` task CATALOG_DEBOUNCE seconds later, and the
changes in between ride on it, so 1,000 creates in a burst give a few serials, not 1,000. The task
clears the pending mark BEFORE it bumps the serial, so a change that finds the mark set has
committed before the bump, and one that comes after sets a new mark (and gets a new task).
"""
import logging

import redis
from celery import shared_task
from django.conf import settings

from workers import dnsclient
from workers.backends import check_target
from zones.services import pipeline
from zones.services.catalog import bump_catalog

log = logging.getLogger(__name__)


def member_label(zone_id) -> str:
    """The member's unique label: stable for the zone's life, from its id (RFC 9432 4.1)."""
    return str(zone_id).replace("-", "")


def rows(name: str, serial: int, members: list[tuple[object, str]]) -> list[tuple[str, str, int, list[str]]]:
    """The catalog zone `name` as MiniDNS rows [(owner, type, ttl, [rdata])]; members are (zone id, zone name)."""
    return [
        (name, "SOA", 0, [f"invalid. invalid. {serial} 3600 600 2147483646 0"]),
        (name, "NS", 0, ["invalid."]),
        (f"version.{name}", "TXT", 0, ['"2"']),
        *((f"{member_label(zone_id)}.zones.{name}", "PTR", 0, [zone_name]) for zone_id, zone_name in members),
    ]


def _redis():
    return redis.Redis.from_url(settings.REDIS_URL)


def _mark(pool_id) -> str:
    return f"dnsctl:catalog-pending:{pool_id}"


def members_changed(pool_id) -> bool:
    """A member of the pool's catalog came or went (committed): make sure a bump + NOTIFY follows.
    True when this call scheduled it, False when an already scheduled one covers it."""
    debounce = settings.DNSCTL["CATALOG_DEBOUNCE"]
    # The mark expires, so a lost task only delays the next burst's bump, never blocks it for good.
    if not _redis().set(_mark(pool_id), 1, nx=True, ex=max(60, int(debounce * 10))):
        return False
    # Priority 0 (first on Redis): the bump finishes work that is already in flight.
    catalog_changed.apply_async((str(pool_id),), countdown=debounce, priority=0)
    return True


@shared_task(ignore_result=True)
def catalog_changed(pool_id):
    """Bump the catalog's serial once for every change so far, then NOTIFY the pool's consumers."""
    _redis().delete(_mark(pool_id))
    bumped = bump_catalog(pool_id)
    pool = pipeline.pool_work(pool_id)
    if bumped is None or pool is None:
        return
    name, serial = bumped
    for peer in pool["nameservers"] + pool["also_notifies"]:
        try:
            dnsclient.send_notify(name, peer["host"], peer["port"], serial, source=pool["notify_source"],
                                  timeout=settings.DNSCTL["NOTIFY_TIMEOUT"], retries=settings.DNSCTL["NOTIFY_RETRIES"])
        except dnsclient.DNSClientError as exc:
            log.warning("catalog %s: NOTIFY to %s:%s failed: %s", name, peer["host"], peer["port"], exc)


def provision(pool_id, target: dict, changes: list[tuple[str, str]]) -> dict[str, str | None]:
    """Apply a batch of (action, zone name) to a target of the pool's catalog: its server consumes the
    catalog, so a create or delete only has to reach the catalog (an update needs nothing: the zone's
    NOTIFY reaches the server). The target's options are still checked, and its server must consume
    catalogs (BackendError if not). Every change succeeds once the catalog's bump is scheduled,
    once per batch."""
    check_target(target["type"], target["name"], target["options"], target["masters"])
    if any(action != "UPDATE" for action, _ in changes):
        members_changed(pool_id)
    return {zone_name: None for _, zone_name in changes}
