"""Run a real NSD as a secondary on 127.0.0.1 for integration tests.

Follows /work/shared/TARGETS.md section 4: a private temp dir, a free DNS port, the control
socket in the dir, and the nsd.conf that workers.backends.nsd.nsd_conf() documents.
"""

import os
import shutil
import subprocess
import time

import pytest

from tests.servers import ServerProcess, answers_dns
from workers.backends.nsd import nsd_conf

needs_nsd = pytest.mark.skipif(shutil.which("nsd") is None or shutil.which("nsd-control") is None,
                               reason="NSD not installed (apt-get install nsd)")


class NsdServer(ServerProcess):
    program, dir_prefix, log_name, stdout_name = "nsd", "dnsctl-nsd-", "nsd.log", "nsd.stderr"

    def __init__(self, masters: list[tuple[str, int]], notify_from: tuple[str, ...] = ("127.0.0.1",),
                 tsig: dict | None = None):
        super().__init__()
        self.masters, self.notify_from, self.tsig = masters, list(notify_from), tsig

    @property
    def config(self) -> str:
        return os.path.join(self.dir, "nsd.conf")

    @property
    def backend_options(self) -> dict:
        return {"config": self.config, "timeout": 10}

    def control(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run(["nsd-control", "-c", self.config, *args], capture_output=True, text=True,
                              timeout=timeout)

    def configure(self) -> None:
        os.mkdir(os.path.join(self.dir, "zones"))
        self.write_private("nsd.conf", nsd_conf(directory=self.dir, port=self.port, masters=self.masters,
                                                notify_from=self.notify_from, tsig=self.tsig))

    def argv(self) -> list[str]:
        return ["nsd", "-d", "-c", self.config]

    def control_ok(self) -> bool:
        return self.control("status", timeout=2).returncode == 0

    def shutdown(self) -> None:
        self.control("stop", timeout=5)

    def after_exit(self) -> None:
        """The process we wait for is xfrd; the server children exit a few ms later: wait for the port to go quiet."""
        deadline = time.monotonic() + 5
        while answers_dns(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.02)
