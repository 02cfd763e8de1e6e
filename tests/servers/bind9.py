"""Run a real BIND9 ``named`` as a secondary on 127.0.0.1 for integration tests.

Follows the recipe in /work/shared/TARGETS.md section 1: a private temp dir,
free DNS and rndc ports, ``allow-new-zones`` so zones can be added with rndc,
and ``allow-notify`` so tests can NOTIFY from 127.0.0.1.

    with Bind9Server(primary=("127.0.0.1", 5300)) as bind:
        Bind9Backend("bind", bind.backend_options, [primary]).create_zone("example.test.")
        dns query to (bind.host, bind.port)
"""

import base64
import os
import shutil
import subprocess
import tempfile
import time

import dns.exception
import dns.message
import dns.query

from tests.servers import free_port
from workers.backends.bind9 import named_conf

READY_DEADLINE = 10.0
RNDC_KEY_NAME = "rndc-key"

RNDC_CONF = """\
key "{key_name}" {{ algorithm hmac-sha256; secret "{secret}"; }};
options {{ default-server 127.0.0.1; default-port {rndc_port}; default-key "{key_name}"; }};
"""


class Bind9Server:
    """One named process. ``stop(keep_dir=True)`` + ``start()`` (or ``restart()``)
    brings it back on the same ports and directory, with its rndc-added zones."""

    host = "127.0.0.1"

    def __init__(self, primary: tuple[str, int] | None = None, tsig: dict | None = None, catalog: str | None = None):
        self.primary = primary  # zones are added by the backend; a catalog is consumed from here
        self.tsig, self.catalog = tsig, catalog  # named_conf()'s TSIG key and catalog zone
        self.dir: str | None = None
        self.port: int | None = None
        self.rndc_port: int | None = None
        self.rndc_secret = base64.b64encode(os.urandom(32)).decode()
        self.proc: subprocess.Popen | None = None
        self._log = None

    # -- paths and options ---------------------------------------------
    @property
    def conf_path(self) -> str:
        return os.path.join(self.dir, "named.conf")

    @property
    def rndc_conf_path(self) -> str:
        return os.path.join(self.dir, "rndc.conf")

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "named.log")

    @property
    def backend_options(self) -> dict:
        """The options dict Bind9Backend takes to drive this server."""
        return {
            "rndc_host": self.host,
            "rndc_port": self.rndc_port,
            "rndc_key_name": RNDC_KEY_NAME,
            "rndc_key_algorithm": "hmac-sha256",
            "rndc_key_secret": self.rndc_secret,
            "timeout": 10,
        }

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle -----------------------------------------------------
    def start(self) -> "Bind9Server":
        """Start named (reusing dir and ports after stop(keep_dir=True)) and wait until ready."""
        if self.running:
            return self
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="dnsctl-bind9-")
            self.port = free_port(udp_too=True)
            self.rndc_port = free_port(udp_too=False)
            while self.rndc_port == self.port:
                self.rndc_port = free_port(udp_too=False)
            self._write_configs()
        try:
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                ["named", "-g", "-c", self.conf_path],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, keep_dir: bool = False) -> None:
        """Stop named (rndc stop, then kill if it lingers); remove the dir unless keep_dir.
        Safe to call twice, or after a failed start."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.rndc("stop", timeout=5)
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
        if not keep_dir and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def restart(self) -> "Bind9Server":
        self.stop(keep_dir=True)
        return self.start()

    def __enter__(self) -> "Bind9Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers -------------------------------------------------------
    def rndc(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        """Run rndc against this server (for tests to inspect, e.g. ``showzone``)."""
        return subprocess.run(["rndc", "-c", self.rndc_conf_path, *args],
                              capture_output=True, text=True, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def _write_configs(self) -> None:
        configs = {
            self.conf_path: named_conf(directory=self.dir, port=self.port, rndc_port=self.rndc_port,
                                       rndc_secret=self.rndc_secret, key_name=RNDC_KEY_NAME, tsig=self.tsig,
                                       catalog=self.catalog, catalog_primaries=[self.primary] if self.catalog else []),
            self.rndc_conf_path: RNDC_CONF.format(key_name=RNDC_KEY_NAME, secret=self.rndc_secret,
                                                  rndc_port=self.rndc_port),
        }
        for path, text in configs.items():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)

    def _wait_ready(self) -> None:
        """Ready = rndc status works and a SOA query for '.' gets any answer (REFUSED is fine)."""
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"named exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._rndc_ok() and self._dns_ok():
                return
            time.sleep(0.02)
        raise RuntimeError(f"named not ready after {READY_DEADLINE:.0f} s:\n{self.log_tail()}")

    def _rndc_ok(self) -> bool:
        try:
            return self.rndc("status", timeout=2).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _dns_ok(self) -> bool:
        query = dns.message.make_query(".", "SOA")
        try:
            dns.query.udp(query, self.host, port=self.port, timeout=0.5)
            return True
        except (dns.exception.DNSException, OSError):
            return False
