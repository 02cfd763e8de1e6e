"""GET /health: each component's state, 200 when every required one is up, else 503.

Cheap enough for a load balancer every second: one answer is shared for HEALTH_CACHE_SECONDS per
process, the probes run at once, each in its own thread, and the answer waits at most
HEALTH_TIMEOUT for them. A probe that has not answered by then is reported down; a probe that
hangs (a server that accepts and never answers) is not started again until it returns, so a
dead component costs no more threads. Nothing in the answer needs authentication to read: states,
ages and counts, never addresses, names or error texts (those go to the log when a state changes).
"""
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import dns.message
import dns.query
import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from tooz import coordination as tooz

from workers import heartbeat
from workers.coordination import tooz_url

log = logging.getLogger(__name__)


class Down(Exception):
    """A component answered, and the answer means it is down (no heartbeat, say)."""


def _conf(name):
    return settings.HEALTH[name]


_clients: dict[str, redis.Redis] = {}


def _redis(url: str) -> redis.Redis:
    """A client that tries once: a probe reports what it found, it does not wait for a comeback."""
    if url not in _clients:
        timeout = _conf("PROBE_TIMEOUT")
        _clients[url] = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                             retry=Retry(NoBackoff(), 0))
    return _clients[url]


def database():
    """SELECT 1 on this probe thread's own connection, kept as CONN_MAX_AGE says (0: closed after)."""
    connection.close_if_unusable_or_obsolete()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close_if_unusable_or_obsolete()
    return {}


def broker():
    _redis(settings.CELERY_BROKER_URL).ping()
    return {}


def result_backend():
    _redis(settings.CELERY_RESULT_BACKEND).ping()
    return {}


def _heartbeats(kind: str, max_age: float, what: str) -> dict:
    ages = heartbeat.newest(kind, max_age, _redis(settings.REDIS_URL))
    if not ages:
        raise Down(f"no {what} heartbeat in the last {max_age:g}s")
    return {"live": len(ages), "age": round(ages[0], 3)}


def workers():
    return _heartbeats("worker", _conf("WORKER_MAX_AGE"), "worker")


def beat():
    return _heartbeats("beat", _conf("BEAT_MAX_AGE"), "beat")


def minidns():
    """Any answer to an SOA query (REFUSED for the root is fine) means MiniDNS answers."""
    host, port = _conf("MINIDNS_HOST"), _conf("MINIDNS_PORT")
    dns.query.udp(dns.message.make_query(".", "SOA"), host, port=port, timeout=_conf("PROBE_TIMEOUT"))
    return {}


_coordinator = {"url": None, "client": None}


def coordination():
    """tooz's Redis driver retries a lost connection 15 times with backoff, longer than any probe may
    take: its server is asked directly. Another backend answers a heartbeat of this process's own
    tooz client (which joins no group)."""
    url = settings.COORDINATION_URL
    if url.startswith(("redis://", "rediss://")):
        _redis(url).ping()
        return {}
    if _coordinator["url"] != url:
        client = tooz.get_coordinator(tooz_url(url), f"health-{threading.get_native_id()}-{time.time_ns()}".encode())
        client.start(start_heart=False)  # raises while the backend is down: tried again next time
        _coordinator.update(url=url, client=client)
    _coordinator["client"].heartbeat()
    return {}


PROBES = {f.__name__: f for f in (database, broker, result_backend, workers, beat, minidns, coordination)}
_executors = {name: ThreadPoolExecutor(1, thread_name_prefix=f"health-{name}") for name in PROBES}
_running: dict = {}  # name -> the probe's latest future (not started again while it runs)
_last_state: dict[str, str] = {}
_cache = {"at": -1e9, "answer": None}
_lock = threading.Lock()


def _run(name: str) -> dict:
    started = time.monotonic()
    try:
        detail, why = {"state": "up", **PROBES[name]()}, ""
    except Exception as exc:  # noqa: BLE001 - a component's failure is its state, never the endpoint's
        detail = {"state": "down", "error": str(exc) if isinstance(exc, Down) else type(exc).__name__}
        why = repr(exc)
    detail["seconds"] = round(time.monotonic() - started, 3)
    if detail["state"] == "up" and detail["seconds"] > _conf("TIMEOUT"):
        detail, why = {"state": "down", "error": "answered too late", "seconds": detail["seconds"]}, "too slow"
    _note(name, detail["state"], why)
    return detail


def _note(name: str, state: str, why: str):
    """Log a component going down or coming back (once, not on every check)."""
    previous, _last_state[name] = _last_state.get(name), state
    if state != previous and (previous is not None or state == "down"):
        log.warning("health: %s is %s%s", name, state, f": {why}" if why else "")


def check(only: list[str] | None = None) -> tuple[bool, dict]:
    """(healthy, answer): every component (or `only` those), each with its state."""
    names = list(only or PROBES)
    timeout = _conf("TIMEOUT")
    futures = {}
    for name in names:
        future = _running.get(name)
        if future is None or future.done():
            future = _running[name] = _executors[name].submit(_run, name)
        futures[name] = future
    wait(list(futures.values()), timeout=timeout)
    required = set(_conf("REQUIRED"))
    components = {}
    for name, future in futures.items():
        if future.done():
            components[name] = dict(future.result())
        else:
            components[name] = {"state": "down", "error": f"no answer within {timeout:g}s"}
            _note(name, "down", "no answer in time")
        components[name]["required"] = name in required
    down = [name for name, c in components.items() if c["state"] == "down" and c["required"]]
    return not down, {"status": "down" if down else "ok", "down": down, "components": components}


def cached_check() -> tuple[bool, dict]:
    """check(), answered from this process's last result for HEALTH_CACHE_SECONDS."""
    with _lock:
        if time.monotonic() - _cache["at"] >= _conf("CACHE_SECONDS"):
            _cache.update(answer=check(), at=time.monotonic())
        return _cache["answer"]


@never_cache
@require_safe
def health_view(request):
    healthy, answer = cached_check()
    response = JsonResponse(answer, status=200 if healthy else 503)
    response._has_been_logged = True  # not Django's error line per 503: _note logs each change of state once
    return response
