"""The contract every DNS server backend implements.

A backend drives one kind of DNS server (BIND9, Knot, ...) that runs as a
secondary of MiniDNS: the control plane only tells it which zones exist and
where the primaries are; zone data always comes from MiniDNS by AXFR/IXFR.
"""


class BackendError(Exception):
    """A target refused or failed an operation; str() says which server and why (the server's own message)."""


class Backend:
    """One kind of DNS server driven as a secondary of MiniDNS.

    Subclasses take plain values, never models, so they can run in any worker.
    Every method is idempotent: create of an existing zone and delete of a
    missing zone are success, because tasks are retried and may run twice.
    Every call has a timeout. Failures raise BackendError naming the target
    and the server's message.
    """

    def __init__(self, name: str, options: dict, masters: list[tuple[str, int]]):
        # name: target name for messages; masters: MiniDNS (host, port) list
        self.name = name
        self.options = dict(options or {})
        self.masters = [(str(host), int(port)) for host, port in masters]

    def create_zone(self, zone_name: str) -> None:
        """Make the target a secondary for zone_name ("example.com.", absolute)."""
        raise NotImplementedError

    def update_zone(self, zone_name: str) -> None:
        """Ensure the zone is configured: create it if missing, fix its primaries."""
        raise NotImplementedError

    def delete_zone(self, zone_name: str) -> None:
        """Stop serving zone_name and drop its data."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
