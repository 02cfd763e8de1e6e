"""The backend types a pool's targets may have, and their option checks, for pool validation.

zones/ never imports workers/ (workers import zones): the workers app fills this when Django's
apps are ready (workers.apps.WorkersConfig.ready), so saving a pool anywhere settings install
`workers` (API, admin, commands, workers) refuses a bad target with a 400 now, not an ERROR later.
"""
from collections.abc import Callable

# types() -> the known type names, sorted; check(type, name, options, masters) -> None, or what is
# wrong with the target (the backend's own message).
_types: Callable[[], list[str]] | None = None
_check: Callable[[str, str, dict, list], str | None] | None = None


def register(types: Callable[[], list[str]], check: Callable[[str, str, dict, list], str | None]) -> None:
    global _types, _check
    _types, _check = types, check


def types() -> list[str]:
    """The known backend type names, sorted (none before workers registered them)."""
    return _types() if _types else []


def check(type: str, name: str, options: dict, masters: list) -> str | None:
    """None if a target of this type with these options can be driven, else the reason it cannot."""
    if _check is None:
        return f"unknown backend type {type!r} (no backends are installed)"
    return _check(type, name, options, masters)
