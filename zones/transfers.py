"""What MiniDNS saw of the secondaries' transfers, kept in Redis for a while (MINIDNS_TRANSFER_TTL).

MiniDNS (workers.transfers.Recorder) appends one event per SOA query from a pool server, per
transfer request and per transfer's end to a short list per zone; the propagation view shows
them and the nameserver polls read them, so that a poll neither gives up while a secondary is
still taking a big zone nor waits blindly. Redis, not the database: it is a hint that may be
lost, written from MiniDNS's hot path, never the truth.
"""
import functools
import ipaddress
import json
import logging
import socket

import redis
from django.conf import settings

log = logging.getLogger(__name__)

PREFIX = "dnsctl:transfers:"
MAX_EVENTS = 64  # per zone: a few serials' worth for every server of a big pool
_clients: dict[str, redis.Redis] = {}


def client(url: str | None = None) -> redis.Redis:
    url = url or settings.REDIS_URL
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    return _clients[url]


def write(events: list[dict], ttl: float, conn: redis.Redis | None = None):
    """Append events (each with a "zone") to their zones' lists, newest first, in one round trip: three
    commands per zone, whatever its events."""
    by_zone: dict[str, list[str]] = {}
    for event in events:
        by_zone.setdefault(PREFIX + str(event["zone"]), []).append(
            json.dumps({k: v for k, v in event.items() if k != "zone"}, separators=(",", ":")))
    pipe = (conn or client()).pipeline(transaction=False)
    for key, values in by_zone.items():
        pipe.lpush(key, *values)  # pushed in order: the last (newest) ends up first
        pipe.ltrim(key, 0, MAX_EVENTS - 1)
        pipe.expire(key, max(1, int(ttl)))
    pipe.execute()


def of_zones(zone_ids, conn: redis.Redis | None = None) -> dict[str, list[dict]]:
    """{zone id: its transfers, newest first}; {} for every zone when Redis does not answer (a hint)."""
    zone_ids = [str(z) for z in zone_ids]
    if not zone_ids:
        return {}
    try:
        pipe = (conn or client()).pipeline(transaction=False)
        for zone_id in zone_ids:
            pipe.lrange(PREFIX + zone_id, 0, -1)
        lists = pipe.execute()
    except redis.RedisError as exc:
        log.warning("transfers: cannot read what MiniDNS saw: %s", exc)
        return {}
    return {zone_id: summarize([json.loads(e) for e in events]) for zone_id, events in zip(zone_ids, lists)}


def summarize(events: list[dict]) -> list[dict]:
    """Fold a zone's events (newest first) into one row per transfer (its request, then its end) and
    one per server's latest SOA query: {peer, type, serial, from_serial, state, started_at,
    ended_at, bytes, messages, error}. state: asked (SOA), running, done or failed."""
    rows: dict[str, dict] = {}
    for event in reversed(events):  # oldest first: later events complete earlier ones
        key = event["id"] if event["type"] != "SOA" else f"{event['peer']} SOA"
        row = rows.setdefault(key, {"peer": event["peer"], "type": event["type"], "serial": event.get("serial"),
                                    "from_serial": event.get("from"), "state": "", "started_at": event["at"],
                                    "ended_at": None, "bytes": None, "messages": None, "error": ""})
        if event["state"] in ("asked", "running"):
            row.update(state=event["state"], started_at=event["at"], serial=event.get("serial"))
        else:
            row.update(state=event["state"], ended_at=event["at"], bytes=event.get("bytes"),
                       messages=event.get("messages"), error=event.get("error", ""))
    return sorted(rows.values(), key=lambda r: r["ended_at"] or r["started_at"], reverse=True)


def same_address(peer: str, host: str) -> bool:
    """Is the transfer's source the nameserver's host (an address, or a name that resolves to it)?"""
    try:
        ip = ipaddress.ip_address(peer.split("%")[0])
    except ValueError:
        return False
    return (ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip) in _addresses(host)


@functools.lru_cache(maxsize=1024)
def _addresses(host: str) -> frozenset:
    """A nameserver's addresses (resolved once per process when it is a name: this is only a hint)."""
    try:
        return frozenset({ipaddress.ip_address(host)})
    except ValueError:
        pass
    try:
        return frozenset(ipaddress.ip_address(info[4][0].split("%")[0]) for info in socket.getaddrinfo(host, None))
    except OSError:
        return frozenset()


def from_host(transfers: list[dict], host: str) -> list[dict]:
    """The zone's transfers whose source is `host`."""
    return [t for t in transfers if same_address(t["peer"], host)]
