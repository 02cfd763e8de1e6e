"""Run a real PowerDNS Authoritative (gsqlite3 + HTTP API) as a secondary on 127.0.0.1 for tests.

Follows /work/shared/TARGETS.md section 3: a private temp dir with its SQLite database, free DNS
and API ports, and the pdns.conf that workers.backends.pdns.pdns_conf() documents.
"""

import os
import secrets
import shutil
import sqlite3
import urllib.error
import urllib.request

import pytest

from tests.servers import ServerProcess, free_port
from workers.backends.pdns import pdns_conf

SCHEMA = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"

needs_pdns = pytest.mark.skipif(shutil.which("pdns_server") is None or not os.path.exists(SCHEMA),
                                reason="PowerDNS not installed (apt-get install pdns-server pdns-backend-sqlite3)")


class PdnsServer(ServerProcess):
    """Stopped with SIGTERM: pdns_control quit takes about a second either way."""

    program, dir_prefix, log_name = "pdns_server", "dnsctl-pdns-", "pdns.log"
    ready_deadline, ready_interval, stop_timeout = 15.0, 0.05, 10.0

    def __init__(self):
        super().__init__()
        self.api_key = secrets.token_urlsafe(24)
        self.api_port: int | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def backend_options(self) -> dict:
        return {"api_url": self.api_url, "api_key": self.api_key, "timeout": 10}

    def api(self, path: str) -> int:
        """GET /api/v1/servers/localhost/<path>: the HTTP status (tests inspect zones with it)."""
        request = urllib.request.Request(f"{self.api_url}/api/v1/servers/localhost" + (f"/{path}" if path else ""),
                                         headers={"X-API-Key": self.api_key})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def configure(self) -> None:
        self.api_port = free_port(udp_too=False)
        with sqlite3.connect(os.path.join(self.dir, "pdns.sqlite3")) as db, open(SCHEMA) as schema:
            db.executescript(schema.read())
        self.write_private("pdns.conf", pdns_conf(directory=self.dir, port=self.port, api_port=self.api_port,
                                                  api_key=self.api_key))

    def argv(self) -> list[str]:
        return ["pdns_server", f"--config-dir={self.dir}"]

    def control_ok(self) -> bool:
        """The API answers 200 (DNS comes up ~200 ms after it)."""
        try:
            return self.api("") == 200
        except OSError:
            return False
