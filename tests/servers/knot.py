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

import pytest

from tests.servers import ServerProcess
from workers.backends.knot import knot_conf

needs_knot = pytest.mark.skipif(shutil.which("knotd") is None or shutil.which("knotc") is None,
                                reason="Knot DNS not installed (apt-get install knot knot-dnsutils)")


class KnotServer(ServerProcess):
    program, dir_prefix, log_name = "knotd", "dnsctl-knot-", "knot.log"

    def __init__(self, masters: list[tuple[str, int]], notify_from: tuple[str, ...] = ("127.0.0.1",),
                 tsig: dict | None = None, catalog: str | None = None):
        super().__init__()
        self.masters, self.notify_from, self.tsig, self.catalog = masters, list(notify_from), tsig, catalog

    @property
    def socket(self) -> str:
        return os.path.join(self.dir, "knot.sock")

    @property
    def backend_options(self) -> dict:
        return {"socket": self.socket, "timeout": 10}

    def knotc(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run(["knotc", "-s", self.socket, *args], capture_output=True, text=True, timeout=timeout)

    def configure(self) -> None:
        for sub in ("db", "zones"):  # knotd does not create its storage directories
            os.mkdir(os.path.join(self.dir, sub))
        conf = self.write_private("knot.conf", knot_conf(directory=self.dir, port=self.port, masters=self.masters,
                                                         notify_from=self.notify_from, tsig=self.tsig,
                                                         catalog=self.catalog))
        imported = subprocess.run(["knotc", "-C", f"{self.dir}/confdb", "conf-import", conf],
                                  capture_output=True, text=True, timeout=10)
        if imported.returncode != 0:
            raise RuntimeError(f"knotc conf-import failed: {imported.stdout}{imported.stderr}")

    def argv(self) -> list[str]:
        return ["knotd", "-C", f"{self.dir}/confdb"]

    def control_ok(self) -> bool:
        return "Running" in self.knotc("status", timeout=2).stdout

    def shutdown(self) -> None:
        self.knotc("stop", timeout=5)
