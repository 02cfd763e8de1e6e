"""PowerDNS Authoritative backend: zones are added and removed through its HTTP API.

A zone becomes kind Slave with MiniDNS as masters and IXFR metadata 1 (PowerDNS asks for
incremental transfers only then), then ``PUT .../axfr-retrieve`` starts the transfer at once
(otherwise it waits for the next xfr-cycle). Writes to one PowerDNS target are
serialised by a cluster-wide lock: its SQLite backend fails concurrent writes ("database is
locked"). PowerDNS accepts NOTIFY only from the zone's masters' addresses (see pdns_conf()).
Only the standard library talks HTTP here: the API needs nothing more.
"""

import json
import logging
import urllib.error
import urllib.parse
import urllib.request

from workers.backends import plain_zone_name, target_lock
from workers.backends.base import Backend, BackendError, Option

log = logging.getLogger(__name__)


class PowerDNSBackend(Backend):
    """Options: ``api_url`` (e.g. http://127.0.0.1:8081, required), ``api_key`` (required),
    ``server_id`` (default "localhost"), ``timeout`` (seconds per request and for the lock, default 10)."""

    OPTIONS = {
        "api_url": Option(str, "URL of the PowerDNS HTTP API, e.g. http://127.0.0.1:8081 (required)"),
        "api_key": Option(str, "the API key (pdns.conf api-key; required)", secret=True),
        "server_id": Option(str, "the API's server id (default localhost)"),
        "timeout": Option(float, "seconds per control-channel call (default 10)"),
    }

    def __init__(self, name: str, options: dict, masters: list[tuple[str, int]]):
        super().__init__(name, options, masters)
        self.api_url = str(self.options.get("api_url") or "").rstrip("/")
        self._api_key = str(self.options.get("api_key") or "")
        self.server_id = str(self.options.get("server_id") or "localhost")
        self._tsig = self.options.get("tsig_key") or None  # {name, algorithm, secret}: signs transfers
        try:
            parts = urllib.parse.urlsplit(self.api_url)
            usable = parts.scheme in ("http", "https") and parts.hostname
        except ValueError:  # e.g. an unclosed IPv6 bracket
            usable = False
        if not usable:
            raise BackendError(f"pdns target {name!r}: option api_url must be an http(s) URL, "
                               "e.g. http://127.0.0.1:8081")
        if not self._api_key:
            raise BackendError(f"pdns target {name!r}: option api_key is required")
        if not self.masters:
            raise BackendError(f"pdns target {name!r}: no masters to transfer from")
        if self._tsig and not all(self._tsig.get(k) for k in ("name", "algorithm", "secret")):
            raise BackendError(f"pdns target {name!r}: tsig_key needs a name, an algorithm and a secret")

    # -- Backend API -----------------------------------------------------
    def create_zone(self, zone_name: str) -> None:
        zone = self._zone(zone_name)
        with self._locked():
            self._ensure_tsig_key()
            status, body = self._request("POST", "zones", self._zone_body(zone))
            if status not in (201, 409):  # 409 Conflict: already there
                self._fail("POST", "zones", zone, status, body)
            self._ask_for_ixfr(zone)
            self._retrieve(zone)

    def update_zone(self, zone_name: str) -> None:
        zone = self._zone(zone_name)
        with self._locked():
            self._ensure_tsig_key()
            status, body = self._request("PUT", self._zone_path(zone), self._zone_body(zone, with_name=False))
            if status == 404:  # not there: create it
                status, body = self._request("POST", "zones", self._zone_body(zone))
                if status not in (201, 409):
                    self._fail("POST", "zones", zone, status, body)
            elif status != 204:
                self._fail("PUT", self._zone_path(zone), zone, status, body)
            self._ask_for_ixfr(zone)
            self._retrieve(zone)

    def delete_zone(self, zone_name: str) -> None:
        zone = self._zone(zone_name)
        with self._locked():
            status, body = self._request("DELETE", self._zone_path(zone))
            if status not in (204, 404):  # 404: not there
                self._fail("DELETE", self._zone_path(zone), zone, status, body)

    def has_zone(self, zone_name: str) -> bool:
        zone = self._zone(zone_name)
        status, body = self._request("GET", self._zone_path(zone) + "?rrsets=false")
        if status not in (200, 404):
            self._fail("GET", self._zone_path(zone), zone, status, body)
        return status == 200

    def check(self) -> None:
        try:
            status, body = self._request("GET", "")
        except BackendError as exc:
            raise BackendError(f"{exc} (option api_url)") from None
        if status != 200:
            option = {401: "api_key", 403: "api_key", 404: "server_id"}.get(status, "api_url")
            message = " ".join(body.split())[:200].replace(self._api_key, "***")
            raise BackendError(f"{self._where()}: GET servers/{self.server_id} (option {option}) failed: "
                               f"HTTP {status} {message}")

    def create_consumer(self, catalog_zone: str) -> None:
        """Consume the pool's catalog zone (RFC 9432, kind Consumer): PowerDNS then creates and drops
        the members as Slave zones of the same masters. Set up once per server, not per zone."""
        zone = self._zone(catalog_zone)
        with self._locked():
            self._ensure_tsig_key()
            status, body = self._request("POST", "zones", {**self._zone_body(zone), "kind": "Consumer"})
            if status not in (201, 409):
                self._fail("POST", "zones", zone, status, body)
            self._retrieve(zone)

    # -- helpers ---------------------------------------------------------
    def _zone(self, zone_name: str) -> str:
        return plain_zone_name(zone_name, self.name) + "."

    def _zone_path(self, zone: str) -> str:
        return "zones/" + urllib.parse.quote(zone.replace("/", "=2F"), safe="")

    def _zone_body(self, zone: str, with_name: bool = True) -> dict:
        body = {"kind": "Slave", "masters": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.masters],
                # AXFR-MASTER-TSIG: sign our transfers (master_tsig_key_ids would be for serving them)
                "slave_tsig_key_ids": [self._tsig["name"] + "."] if self._tsig else []}
        return {"name": zone, **body} if with_name else body

    def _ensure_tsig_key(self) -> None:
        """Create the TSIG key on the server, or make its algorithm and secret ours."""
        if not self._tsig:
            return
        key = {"algorithm": self._tsig["algorithm"], "key": self._tsig["secret"]}
        status, body = self._request("POST", "tsigkeys", {"name": self._tsig["name"], **key})
        if status == 409:
            path = "tsigkeys/" + urllib.parse.quote(self._tsig["name"] + ".", safe="")
            status, body = self._request("PUT", path, key)
        if status not in (200, 201):
            self._fail("POST", "tsigkeys", self._tsig["name"], status, body)

    def _ask_for_ixfr(self, zone: str) -> None:
        """PowerDNS transfers a secondary zone incrementally only when its IXFR metadata is 1."""
        path = self._zone_path(zone) + "/metadata/IXFR"
        status, body = self._request("PUT", path, {"kind": "IXFR", "metadata": ["1"]})
        if status != 200:
            self._fail("PUT", path, zone, status, body)

    def _retrieve(self, zone: str) -> None:
        """Transfer now instead of at the next xfr-cycle."""
        path = self._zone_path(zone) + "/axfr-retrieve"
        status, body = self._request("PUT", path)
        if status != 200:
            self._fail("PUT", path, zone, status, body)

    def _locked(self):
        return target_lock(f"pdns:{self.api_url}", self.timeout, self._where())  # per server, whatever the pool

    def _request(self, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
        url = f"{self.api_url}/api/v1/servers/{urllib.parse.quote(self.server_id, safe='')}" + (f"/{path}" if path else "")
        request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                         headers={"X-API-Key": self._api_key, "Accept": "application/json",
                                                  "Content-Type": "application/json"})
        log.debug("pdns target %r: %s %s", self.name, method, path)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendError(f"{self._where()}: {method} {path} failed: {reason}") from None

    def _where(self) -> str:
        return f"pdns target {self.name!r} ({self.api_url})"

    def _fail(self, method: str, path: str, zone: str, status: int, body: str):
        try:
            message = json.loads(body).get("error") or body
        except (ValueError, AttributeError):
            message = body
        message = " ".join(str(message).split())[:500].replace(self._api_key, "***")
        if self._tsig:
            message = message.replace(self._tsig["secret"], "***")
        raise BackendError(f"{self._where()}: {method} {path} ({zone}) failed: HTTP {status} {message}")


PDNS_CONF = """\
launch=gsqlite3
gsqlite3-database={directory}/pdns.sqlite3
local-address={listen}
local-port={port}
socket-dir={directory}
daemon=no
guardian=no
disable-syslog=yes
secondary=yes
xfr-cycle-interval=1
# NOTIFY is accepted only from a zone's masters (MiniDNS): dnsctl must NOTIFY from that address
# (the pool's notify_source), or name its sender as trusted-notification-proxy.
allow-notify-from={notify_from}
{proxy}security-poll-suffix=
api=yes
api-key={api_key}
webserver=yes
webserver-address={api_listen}
webserver-port={api_port}
webserver-allow-from={api_allow}
cache-ttl=0
query-cache-ttl=0
negquery-cache-ttl=0
"""


def pdns_conf(*, directory: str, port: int, api_port: int, api_key: str, listen: str = "127.0.0.1",
              api_listen: str = "127.0.0.1", api_allow: str = "127.0.0.1/32",
              notify_from: str = "127.0.0.1/32", trusted_notification_proxy: str = "") -> str:
    """A pdns.conf (gsqlite3) that makes PowerDNS a target dnsctl can drive: what an operator must configure.

    Secondary mode, the HTTP API with its key, fresh answers right after a transfer or a delete,
    and a 1 s xfr-cycle as a fallback for axfr-retrieve.
    """
    proxy = f"trusted-notification-proxy={trusted_notification_proxy}\n" if trusted_notification_proxy else ""
    return PDNS_CONF.format(directory=directory, port=port, api_port=api_port, api_key=api_key, listen=listen,
                            api_listen=api_listen, api_allow=api_allow, notify_from=notify_from, proxy=proxy)
