"""Registry of backend types: type name -> dotted path of the Backend class.

Classes are imported lazily, so a worker only imports the backends it uses.
Tests may add entries with monkeypatch.setitem(BACKENDS, "fake", "pkg.FakeBackend").
"""

import re
from contextlib import contextmanager
from importlib import import_module

from workers.backends.base import Backend, BackendError

BACKENDS: dict[str, str] = {
    "bind9": "workers.backends.bind9.Bind9Backend",
    "knot": "workers.backends.knot.KnotBackend",
    "nsd": "workers.backends.nsd.NsdBackend",
    "pdns": "workers.backends.pdns.PowerDNSBackend",
}

__all__ = ["BACKENDS", "Backend", "BackendError", "backend_types", "check_target", "get_backend", "plain_zone_name",
           "target_lock", "target_problem"]

# Zone names go on control-channel command lines and into file names: plain hostname-ish labels
# only ('/' is allowed for RFC 2317 classless reverse zones).
_LABEL_RE = re.compile(r"^[a-z0-9_/-]{1,63}$")


def backend_types() -> list[str]:
    """The known backend type names, sorted (e.g. for model choices and validation)."""
    return sorted(BACKENDS)


def get_backend(type: str, name: str, options: dict, masters: list[tuple[str, int]]) -> Backend:
    """Instantiate the backend registered for type (it validates its options); BackendError if the
    type is unknown or an option is wrong."""
    try:
        path = BACKENDS[type]
    except KeyError:
        raise BackendError(f"target {name!r}: unknown backend type {type!r} "
                           f"(known: {', '.join(backend_types())})") from None
    module_name, _, class_name = path.rpartition(".")
    return getattr(import_module(module_name), class_name)(name, options, masters)


def check_target(type: str, name: str, options: dict, masters: list[tuple[str, int]]) -> Backend:
    """get_backend, and for a target of a catalog pool (options["catalog"], set by
    zones.services.pools.target_options) a server that can consume the pool's catalog zone."""
    backend = get_backend(type, name, options, masters)
    if (options or {}).get("catalog") and not backend.consumes_catalogs:
        raise BackendError(f"{type} target {name!r}: this server cannot consume the pool's catalog zone; "
                           "give it a pool without catalog_zone")
    return backend


def target_problem(type: str, name: str, options: dict, masters: list[tuple[str, int]]) -> str | None:
    """check_target's verdict as zones.backends wants it: None, or the reason."""
    try:
        check_target(type, name, options, masters)
    except BackendError as exc:
        return str(exc)
    return None


def plain_zone_name(zone_name: str, target: str) -> str:
    """'Example.COM.' -> 'example.com': safe for a control channel; BackendError naming the target if not."""
    zone = str(zone_name).strip().rstrip(".").lower()
    if not zone or not all(_LABEL_RE.match(label) for label in zone.split(".")):
        raise BackendError(f"target {target!r}: invalid zone name {zone_name!r}")
    return zone


@contextmanager
def target_lock(key: str, timeout: float, where: str):
    """Hold the cluster-wide lock of one target (servers that take one writer at a time);
    BackendError naming `where` if another change still holds it after `timeout` seconds."""
    from workers import coordination  # needs Django settings: only when a backend really locks

    with coordination.lock(f"target:{key}", blocking=timeout) as acquired:
        if not acquired:
            raise BackendError(f"{where}: another change to this target still runs after {timeout:g} s")
        yield

