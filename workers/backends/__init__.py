"""Registry of backend types: type name -> dotted path of the Backend class.

Classes are imported lazily, so a worker only imports the backends it uses.
Tests may add entries with monkeypatch.setitem(BACKENDS, "fake", "pkg.FakeBackend").
"""

from importlib import import_module

from workers.backends.base import Backend, BackendError

BACKENDS: dict[str, str] = {
    "bind9": "workers.backends.bind9.Bind9Backend",
}

__all__ = ["BACKENDS", "Backend", "BackendError", "backend_types", "get_backend"]


def backend_types() -> list[str]:
    """The known backend type names, sorted (e.g. for model choices and validation)."""
    return sorted(BACKENDS)


def get_backend(type: str, name: str, options: dict, masters: list[tuple[str, int]]) -> Backend:
    """Instantiate the backend registered for type; BackendError if the type is unknown."""
    try:
        path = BACKENDS[type]
    except KeyError:
        raise BackendError(f"target {name!r}: unknown backend type {type!r} "
                           f"(known: {', '.join(backend_types())})") from None
    module_name, _, class_name = path.rpartition(".")
    cls = getattr(import_module(module_name), class_name)
    return cls(name, options, masters)
