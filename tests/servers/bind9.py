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
import subprocess

from tests.servers import ServerProcess, free_port
from workers.backends.bind9 import named_conf

RNDC_KEY_NAME = "rndc-key"

RNDC_CONF = """\
key "{key_name}" {{ algorithm hmac-sha256; secret "{secret}"; }};
options {{ default-server 127.0.0.1; default-port {rndc_port}; default-key "{key_name}"; }};
"""


class Bind9Server(ServerProcess):
    """One named process; rndc-added zones survive ``restart()`` (they are kept in the dir's NZD)."""

    program, dir_prefix, log_name = "named", "dnsctl-bind9-", "named.log"

    def __init__(self, primary: tuple[str, int] | None = None, tsig: dict | None = None, catalog: str | None = None):
        super().__init__()
        self.primary = primary  # zones are added by the backend; a catalog is consumed from here
        self.tsig, self.catalog = tsig, catalog  # named_conf()'s TSIG key and catalog zone
        self.rndc_port: int | None = None
        self.rndc_secret = base64.b64encode(os.urandom(32)).decode()

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

    def rndc(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        """Run rndc against this server (for tests to inspect, e.g. ``showzone``)."""
        return subprocess.run(["rndc", "-c", os.path.join(self.dir, "rndc.conf"), *args],
                              capture_output=True, text=True, timeout=timeout)

    def configure(self) -> None:
        self.rndc_port = free_port(udp_too=False)
        while self.rndc_port == self.port:
            self.rndc_port = free_port(udp_too=False)
        self.write_private("named.conf", named_conf(
            directory=self.dir, port=self.port, rndc_port=self.rndc_port, rndc_secret=self.rndc_secret,
            key_name=RNDC_KEY_NAME, tsig=self.tsig, catalog=self.catalog,
            catalog_primaries=[self.primary] if self.catalog else []))
        self.write_private("rndc.conf", RNDC_CONF.format(key_name=RNDC_KEY_NAME, secret=self.rndc_secret,
                                                         rndc_port=self.rndc_port))

    def argv(self) -> list[str]:
        return ["named", "-g", "-c", os.path.join(self.dir, "named.conf")]

    def control_ok(self) -> bool:
        try:
            return self.rndc("status", timeout=2).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def shutdown(self) -> None:
        self.rndc("stop", timeout=5)
