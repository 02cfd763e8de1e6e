"""The contract every DNS server backend implements.

A backend drives one kind of DNS server (BIND9, Knot, ...) that runs as a
secondary of MiniDNS: the control plane only tells it which zones exist and
where the primaries are; zone data always comes from MiniDNS by AXFR/IXFR.
"""
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

METHODS = {"CREATE": "create_zone", "UPDATE": "update_zone", "DELETE": "delete_zone"}


class BackendError(Exception):
    """A target refused or failed an operation; str() says which server and why (the server's own message)."""


class Option(NamedTuple):
    """One backend option, as `manage.py configure_pool` offers it (--NAME, or --NAME-file for a secret)."""

    type: type
    help: str
    secret: bool = False  # read from a file too, never printed


class Backend:
    """One kind of DNS server driven as a secondary of MiniDNS.

    Subclasses take plain values, never models, so they can run in any worker.
    Every method is idempotent: create of an existing zone and delete of a
    missing zone are success, because tasks are retried and may run twice.
    Every call has a timeout. Failures raise BackendError naming the target
    and the server's message.
    """

    OPTIONS: dict[str, Option] = {}  # the options __init__ reads, for the operator's command line
    consumes_catalogs = True  # whether the server can consume a pool's catalog zone (RFC 9432)

    def __init__(self, name: str, options: dict, masters: list[tuple[str, int]]):
        # name: target name for messages; masters: MiniDNS (host, port) list
        self.name = name
        self.options = dict(options or {})
        self.masters = [(str(host), int(port)) for host, port in masters]
        self.timeout = self.number("timeout", float, 10, 0, 3600)
        self.parallel = self.number("parallel", int, self.default_parallel, 0, 64)

    def number(self, option: str, kind: type, default, low, high):
        """A numeric option (default when unset), low < value <= high, or a BackendError naming it:
        options come from people, and a wrong one must be refused when the target is saved."""
        value = self.options.get(option)
        try:
            value = default if value in (None, "") else kind(value)
        except (TypeError, ValueError, OverflowError):
            raise BackendError(f"{self.kind} target {self.name!r}: option {option} must be a number") from None
        if not low < value <= high:  # NaN fails too
            raise BackendError(f"{self.kind} target {self.name!r}: option {option} must be above {low} "
                               f"and at most {high}")
        return value

    @property
    def kind(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]

    def create_zone(self, zone_name: str) -> None:
        """Make the target a secondary for zone_name ("example.com.", absolute)."""
        raise NotImplementedError

    def update_zone(self, zone_name: str) -> None:
        """Ensure the zone is configured: create it if missing, fix its primaries."""
        raise NotImplementedError

    def delete_zone(self, zone_name: str) -> None:
        """Stop serving zone_name and drop its data."""
        raise NotImplementedError

    def has_zone(self, zone_name: str) -> bool:
        """Whether the server has zone_name configured, in its control channel's own words. A delete is
        confirmed by this, never by a DNS answer: a server SERVFAILs a zone it has but cannot load (one
        re-created after its primary dropped it), which looks like "gone" to a SOA query.
        BackendError if the server cannot tell."""
        raise NotImplementedError

    def confirm_absent(self, zone_names: list[str]) -> dict[str, str | None]:
        """After deletes: {zone_name: None once the server no longer has it, else why not}, `parallel`
        at a time. Never raises BackendError: each zone gets its own answer."""
        def one(zone_name):
            try:
                return zone_name, f"{self.kind} target {self.name!r} still has the zone" if self.has_zone(
                    zone_name) else None
            except BackendError as exc:
                return zone_name, str(exc)

        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            return dict(pool.map(one, zone_names))

    def check(self) -> None:
        """Ask the server's control channel whether it answers (e.g. `rndc status`): before a target
        is saved, so a wrong address or key is refused now, not found later as zones in ERROR.
        BackendError naming the target and the option that points at the channel."""
        raise NotImplementedError

    def apply(self, changes: list[tuple[str, str]], deadline: float | None = None) -> dict[str, str | None]:
        """Apply many changes to this one target: [(action, zone_name)] -> {zone_name: error or None}.

        Bulk work (recovery, sync, target sync) comes here. The default makes the single-zone calls,
        `parallel` at a time (option `parallel`, default 1); a backend whose server takes many zones
        in one go (a Knot configuration transaction) overrides it. Never raises BackendError: each
        zone gets its own result. No call starts after `deadline` (time.monotonic()): the zones left
        get an error, so an attempt ends within deadline + timeout even where Celery cannot cut it.
        """
        def one(change):
            action, zone_name = change
            if deadline is not None and time.monotonic() > deadline:
                return zone_name, f"{self.kind} target {self.name!r}: not attempted, the attempt's time ran out"
            try:
                getattr(self, METHODS[action])(zone_name)
                return zone_name, None
            except BackendError as exc:
                return zone_name, str(exc)

        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            return dict(pool.map(one, changes))

    default_parallel = 1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
