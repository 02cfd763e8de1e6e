"""Run a real NSD as a secondary on 127.0.0.1 for integration tests.

Follows /work/shared/TARGETS.md section 4: a private temp dir, a free DNS port, the control
socket in the dir, and the nsd.conf that workers.backends.nsd.nsd_conf() documents.
"""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.servers import free_port
from tests.servers.knot import answers_dns
from workers.backends.nsd import nsd_conf

READY_DEADLINE = 10.0

needs_nsd = pytest.mark.skipif(shutil.which("nsd") is None or shutil.which("nsd-control") is None,
                               reason="NSD not installed (apt-get install nsd)")


class NsdServer:
    host = "127.0.0.1"

    def __init__(self, masters: list[tuple[str, int]], notify_from: tuple[str, ...] = ("127.0.0.1",),
                 tsig: dict | None = None):
        self.masters, self.notify_from, self.tsig = masters, list(notify_from), tsig
        self.dir: str | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def config(self) -> str:
        return os.path.join(self.dir, "nsd.conf")

    @property
    def backend_options(self) -> dict:
        return {"config": self.config, "timeout": 10}

    def start(self) -> "NsdServer":
        self.dir = tempfile.mkdtemp(prefix="dnsctl-nsd-")
        self.port = free_port()
        os.mkdir(os.path.join(self.dir, "zones"))
        with open(os.open(self.config, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(nsd_conf(directory=self.dir, port=self.port, masters=self.masters,
                             notify_from=self.notify_from, tsig=self.tsig))
        try:
            self._log = open(os.path.join(self.dir, "nsd.stderr"), "ab")
            self.proc = subprocess.Popen(["nsd", "-d", "-c", self.config], stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """nsd-control stop, wait for xfrd and for the port to go quiet; remove the dir."""
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.control("stop", timeout=5)
                except (subprocess.SubprocessError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
                deadline = time.monotonic() + 5  # the server children exit a few ms after xfrd
                while answers_dns(self.host, self.port) and time.monotonic() < deadline:
                    time.sleep(0.02)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "NsdServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def control(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run(["nsd-control", "-c", self.config, *args], capture_output=True, text=True,
                              timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(os.path.join(self.dir, "nsd.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nsd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.control("status", timeout=2).returncode == 0 and answers_dns(self.host, self.port):
                return
            time.sleep(0.02)
        raise RuntimeError(f"nsd not ready after {READY_DEADLINE:.0f} s:\n{self.log_tail()}")
