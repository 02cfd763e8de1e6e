"""Coordination between worker, beat and producer processes, over tooz (Redis by default).

One tooz coordinator per process (created lazily, so it is born after a prefork worker forks),
with its heartbeat thread running: the heartbeat keeps held locks alive and group membership
fresh. Locks are tooz locks, so they hold across processes and machines.
"""
import logging
import os
import threading
import uuid
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from tooz import coordination

log = logging.getLogger(__name__)
_state = {"pid": None, "coordinator": None, "member": None}
_guard = threading.Lock()


def tooz_url(url: str) -> str:
    """tooz's Redis driver takes the db from ``?db=N`` and ignores the path: accept both spellings."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if parts.scheme in ("redis", "rediss") and parts.path.strip("/").isdigit() and "db" not in query:
        query["db"] = parts.path.strip("/")
        parts = parts._replace(path="", query=urlencode(query))
    return urlunsplit(parts)


def member_id() -> str:
    return f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def get_coordinator():
    """This process's started coordinator (a new one after fork: sockets and threads don't survive it)."""
    with _guard:
        if _state["pid"] != os.getpid() or _state["coordinator"] is None:
            member = member_id()
            coordinator = coordination.get_coordinator(tooz_url(settings.COORDINATION_URL), member.encode())
            coordinator.start(start_heart=True)
            _state.update(pid=os.getpid(), coordinator=coordinator, member=member)
        return _state["coordinator"]


def my_member_id() -> str:
    """The id this process's coordinator joins groups with."""
    get_coordinator()
    return _state["member"]


def stop_coordinator():
    with _guard:
        coordinator, _state["coordinator"] = _state["coordinator"], None
        if coordinator is not None and _state["pid"] == os.getpid():
            try:
                coordinator.stop()
            except coordination.ToozError:
                log.warning("stopping the coordinator failed", exc_info=True)


@contextmanager
def lock(name: str, blocking=True):
    """Hold the cluster-wide lock `name` (yields True), or yield False if blocking=False and it is taken.

    blocking may also be a number of seconds to wait.
    """
    the_lock = get_coordinator().get_lock(f"dnsctl:{name}".encode())
    acquired = the_lock.acquire(blocking=blocking)
    try:
        yield acquired
    finally:
        if acquired:
            the_lock.release()
