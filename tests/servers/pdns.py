"""Run a real PowerDNS Authoritative (gsqlite3 + HTTP API) as a secondary on 127.0.0.1 for tests.

Follows /work/shared/TARGETS.md section 3: a private temp dir with its SQLite database, free DNS
and API ports, and the pdns.conf that workers.backends.pdns.pdns_conf() documents.
"""

import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from tests.servers import free_port
from tests.servers.knot import answers_dns
from workers.backends.pdns import pdns_conf

READY_DEADLINE = 15.0
SCHEMA = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"

needs_pdns = pytest.mark.skipif(shutil.which("pdns_server") is None or not os.path.exists(SCHEMA),
                                reason="PowerDNS not installed (apt-get install pdns-server pdns-backend-sqlite3)")


class PdnsServer:
    host = "127.0.0.1"

    def __init__(self):
        self.api_key = secrets.token_urlsafe(24)
        self.dir: str | None = None
        self.port = self.api_port = None
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def backend_options(self) -> dict:
        return {"api_url": self.api_url, "api_key": self.api_key, "timeout": 10}

    def start(self) -> "PdnsServer":
        self.dir = tempfile.mkdtemp(prefix="dnsctl-pdns-")
        self.port = free_port()
        self.api_port = free_port(udp_too=False)
        with sqlite3.connect(os.path.join(self.dir, "pdns.sqlite3")) as db, open(SCHEMA) as schema:
            db.executescript(schema.read())
        with open(os.open(os.path.join(self.dir, "pdns.conf"), os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(pdns_conf(directory=self.dir, port=self.port, api_port=self.api_port, api_key=self.api_key))
        try:
            self._log = open(os.path.join(self.dir, "pdns.log"), "ab")
            self.proc = subprocess.Popen(["pdns_server", f"--config-dir={self.dir}"], stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM (pdns_control quit takes about a second either way), kill if it lingers; remove the dir."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "PdnsServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def api(self, path: str) -> int:
        """GET /api/v1/servers/localhost/<path>: the HTTP status (tests inspect zones with it)."""
        request = urllib.request.Request(f"{self.api_url}/api/v1/servers/localhost" + (f"/{path}" if path else ""),
                                         headers={"X-API-Key": self.api_key})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(os.path.join(self.dir, "pdns.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_ready(self) -> None:
        """Ready = the API answers 200 and DNS answers (DNS comes up ~200 ms after the API)."""
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pdns_server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                api_ok = self.api("") == 200
            except OSError:
                api_ok = False
            if api_ok and answers_dns(self.host, self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"pdns_server not ready after {READY_DEADLINE:.0f} s:\n{self.log_tail()}")
