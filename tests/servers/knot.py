"""Run a real Knot DNS ``knotd`` as a secondary on 127.0.0.1 for integration tests.

Follows /work/shared/TARGETS.md section 2: a private temp dir, a free DNS port, the control
socket in the dir, and the knot.conf that workers.backends.knot.knot_conf() documents, imported
into a confdb so that knotc's runtime changes persist.

    with KnotServer(masters=[primary.address]) as knot:
        KnotBackend("knot", knot.backend_options, [primary.address]).create_zone("example.test.")
"""

import os
import shutil
import subprocess
import tempfile
import time

import dns.exception
import dns.message
import dns.query
import pytest

from tests.servers import free_port
from workers.backends.knot import knot_conf

READY_DEADLINE = 10.0

needs_knot = pytest.mark.skipif(shutil.which("knotd") is None or shutil.which("knotc") is None,
                                reason="Knot DNS not installed (apt-get install knot knot-dnsutils)")


class KnotServer:
    host = "127.0.0.1"

    def __init__(self, masters: list[tuple[str, int]], notify_from: tuple[str, ...] = ("127.0.0.1",),
                 tsig: dict | None = None, catalog: str | None = None):
        self.masters, self.notify_from, self.tsig, self.catalog = masters, list(notify_from), tsig, catalog
        self.dir: str | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def socket(self) -> str:
        return os.path.join(self.dir, "knot.sock")

    @property
    def backend_options(self) -> dict:
        return {"socket": self.socket, "timeout": 10}

    def start(self) -> "KnotServer":
        self.dir = tempfile.mkdtemp(prefix="dnsctl-knot-")
        self.port = free_port()
        for sub in ("db", "zones"):  # knotd does not create its storage directories
            os.mkdir(os.path.join(self.dir, sub))
        conf = os.path.join(self.dir, "knot.conf")
        with open(os.open(conf, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(knot_conf(directory=self.dir, port=self.port, masters=self.masters,
                              notify_from=self.notify_from, tsig=self.tsig, catalog=self.catalog))
        try:
            imported = subprocess.run(["knotc", "-C", f"{self.dir}/confdb", "conf-import", conf],
                                      capture_output=True, text=True, timeout=10)
            if imported.returncode != 0:
                raise RuntimeError(f"knotc conf-import failed: {imported.stdout}{imported.stderr}")
            self._log = open(os.path.join(self.dir, "knot.log"), "ab")
            self.proc = subprocess.Popen(["knotd", "-C", f"{self.dir}/confdb"], stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """knotc stop, then kill if it lingers; remove the dir. Safe to call twice."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.knotc("stop", timeout=5)
                except (subprocess.SubprocessError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=5)
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

    def __enter__(self) -> "KnotServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def knotc(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run(["knotc", "-s", self.socket, *args], capture_output=True, text=True, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(os.path.join(self.dir, "knot.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"knotd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if "Running" in self.knotc("status", timeout=2).stdout and answers_dns(self.host, self.port):
                return
            time.sleep(0.02)
        raise RuntimeError(f"knotd not ready after {READY_DEADLINE:.0f} s:\n{self.log_tail()}")


def answers_dns(host: str, port: int) -> bool:
    """Any answer to a SOA query for '.' (REFUSED included): the server's DNS side is up."""
    try:
        dns.query.udp(dns.message.make_query(".", "SOA"), host, port=port, timeout=0.5)
        return True
    except (dns.exception.DNSException, OSError):
        return False
