"""NSD backend: zones are added and removed with nsd-control addzone/delzone and a pattern.

The pattern (see nsd_conf()) names MiniDNS in request-xfr and the NOTIFY senders in allow-notify,
so a zone is just "<name> <pattern>" and NSD transfers it at once. nsd-control exits 0 on most
failures, so its output is what counts. apply() sends addzones/delzones in chunks of 100: bigger
batches deadlock nsd-control against xfrd (TARGETS.md). NSD 4.6 cannot consume catalog zones.
"""

import itertools
import logging
import re
import subprocess
import time

from workers.backends import plain_zone_name
from workers.backends.base import Backend, BackendError, Option

log = logging.getLogger(__name__)

PATTERN_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CHUNK = 100


class NsdBackend(Backend):
    """Options: ``config`` (the nsd.conf whose remote-control section nsd-control reads, required),
    ``pattern`` (default "dnsctl"), ``timeout`` (seconds per nsd-control call, default 10)."""

    OPTIONS = {
        "config": Option(str, "absolute path of the nsd.conf nsd-control reads, on the worker's host (required)"),
        "pattern": Option(str, "the nsd.conf pattern new zones get (default dnsctl)"),
        "timeout": Option(float, "seconds per control-channel call (default 10)"),
    }
    consumes_catalogs = False  # NSD 4.6; catalogs came in 4.9

    def __init__(self, name: str, options: dict, masters: list[tuple[str, int]]):
        super().__init__(name, options, masters)
        self.config = str(self.options.get("config") or "")
        self.pattern = str(self.options.get("pattern") or "dnsctl")
        if not self.config.startswith("/"):
            raise BackendError(f"nsd target {name!r}: option config (absolute path of the nsd.conf "
                               "nsd-control reads) is required")
        if not PATTERN_RE.match(self.pattern):
            raise BackendError(f"nsd target {name!r}: invalid pattern {self.pattern!r}")

    # -- Backend API -----------------------------------------------------
    def create_zone(self, zone_name: str) -> None:
        zone = plain_zone_name(zone_name, self.name)
        result = self._control("addzone", zone, self.pattern)
        if not _ok(result) and f"zone {zone} already exists" not in result.stdout:
            self._fail("addzone", zone, result)

    def update_zone(self, zone_name: str) -> None:
        """The pattern carries the primaries, so an update only makes sure the zone is there."""
        self.create_zone(zone_name)

    def delete_zone(self, zone_name: str) -> None:
        zone = plain_zone_name(zone_name, self.name)
        result = self._control("delzone", zone)
        if not _ok(result) and f"zone {zone} not present" not in result.stdout:
            self._fail("delzone", zone, result)

    def has_zone(self, zone_name: str) -> bool:
        zone = plain_zone_name(zone_name, self.name)
        result = self._control("zonestatus", zone)
        if result.returncode == 0 and result.stdout.startswith(f"zone:\t{zone}\n"):
            return True
        if f"error zone {zone} not configured" in result.stdout:
            return False
        self._fail("zonestatus", zone, result)

    def check(self) -> None:
        result = self._control("status")
        if result.returncode != 0 or not result.stdout.startswith("version:"):
            raise BackendError(f"{self._where()}: nsd-control status (option config) failed: {_text(result)}")

    def apply(self, changes: list[tuple[str, str]], deadline: float | None = None) -> dict[str, str | None]:
        """addzones / delzones in chunks of CHUNK, in the order the changes come; none after deadline."""
        results: dict[str, str | None] = {}
        runs = itertools.groupby(changes, key=lambda change: change[0] == "DELETE")
        for deleting, run in runs:
            zones = {}
            for _, zone_name in run:
                try:
                    zones[plain_zone_name(zone_name, self.name)] = zone_name
                except BackendError as exc:
                    results[zone_name] = str(exc)
            names = list(zones)
            for start in range(0, len(names), CHUNK):
                chunk = names[start:start + CHUNK]
                lines = chunk if deleting else [f"{zone} {self.pattern}" for zone in chunk]
                try:
                    if deadline is not None and time.monotonic() > deadline:
                        raise BackendError(f"{self._where()}: not attempted, the attempt's time ran out")
                    outcome = self._bulk("delzones" if deleting else "addzones", chunk, lines)
                except BackendError as exc:
                    outcome = {zone: str(exc) for zone in chunk}
                results.update({zones[zone]: outcome[zone] for zone in chunk})
        return results

    # -- helpers ---------------------------------------------------------
    def _bulk(self, command: str, zones: list[str], lines: list[str]) -> dict[str, str | None]:
        """One addzones/delzones call; each zone's outcome read from nsd-control's lines: "added: z" /
        "removed: z" (an existing zone is "added" too, after "zone z already exists"), or a reason
        line then "error for input line 'z ...'"."""
        result = self._control(command, stdin="\n".join(lines) + "\n")
        outcome, reason = {}, ""
        for line in result.stdout.splitlines():
            if line.startswith(("added: ", "removed: ")):
                outcome[line.split(": ", 1)[1].strip()] = None
            elif line.startswith("error for input line '"):
                zone = line[len("error for input line '"):].rstrip("'").split()[0]
                missing = command == "delzones" and reason == f"warning zone {zone} not present"
                outcome[zone] = None if missing else f"{self._where()}: nsd-control {command} {zone} failed: {reason}"
            else:
                reason = line.strip()
        for zone in zones:  # not named in the output: nsd-control failed as a whole (no server, ...)
            outcome.setdefault(zone, f"{self._where()}: nsd-control {command} {zone} failed: {_text(result)}")
        return outcome

    def _control(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["nsd-control", "-c", self.config, *args]
        log.debug("nsd target %r: nsd-control %s", self.name, " ".join(args))
        try:
            return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=self.timeout,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"{self._where()}: nsd-control timed out after {self.timeout:g} s ({args[0]})") from None
        except OSError as exc:
            raise BackendError(f"{self._where()}: cannot run nsd-control: {exc}") from None

    def _where(self) -> str:
        return f"nsd target {self.name!r} ({self.config})"

    def _fail(self, command: str, zone: str, result: subprocess.CompletedProcess):
        raise BackendError(f"{self._where()}: nsd-control {command} {zone} failed: {_text(result)}")


def _ok(result: subprocess.CompletedProcess) -> bool:
    """nsd-control's success: exit 0 and a last line "ok" (it also exits 0 on many failures)."""
    lines = result.stdout.strip().splitlines()
    return result.returncode == 0 and bool(lines) and lines[-1] == "ok" and len(lines) == 1


def _text(result: subprocess.CompletedProcess) -> str:
    text = " / ".join(filter(None, (line.strip() for line in (result.stdout + result.stderr).splitlines())))
    return text or f"exit status {result.returncode}"


NSD_CONF = """\
server:
    ip-address: {listen}@{port}
    username: ""
    chroot: ""
    zonesdir: "{directory}/zones"
    database: ""
    zonelistfile: "{directory}/zone.list"       # addzone/delzone are persisted here
    xfrdfile: "{directory}/xfrd.state"
    xfrdir: "{directory}/xfr"
    pidfile: "{directory}/nsd.pid"
    logfile: "{directory}/nsd.log"
    server-count: 1
    verbosity: 2
    xfrd-reload-timeout: 0                      # the default throttles reloads after transfers to 1/s
    zonefiles-write: 0
remote-control:
    control-enable: yes
    control-interface: "{directory}/nsd.ctl"    # a unix socket: no TLS certificates needed
{key}pattern:
    name: "{pattern}"
    zonefile: "%s.zone"
{request_xfr}{allow_notify}"""


def nsd_conf(*, directory: str, port: int, masters: list[tuple[str, int]], listen: str = "127.0.0.1",
             notify_from: list[str] = ("127.0.0.1",), pattern: str = "dnsctl", tsig: dict | None = None) -> str:
    """An nsd.conf that makes NSD a target dnsctl can drive: what an operator must configure.

    The pattern transfers from MiniDNS (masters) and accepts NOTIFY only from notify_from: NSD
    wants an allow-notify even for the primary's own address. tsig ({name, algorithm, secret})
    signs the transfers.
    """
    key_name = tsig["name"] if tsig else "NOKEY"
    key = (f'key:\n    name: "{tsig["name"]}"\n    algorithm: {tsig["algorithm"]}\n    secret: "{tsig["secret"]}"\n'
           if tsig else "")
    request_xfr = "".join(f"    request-xfr: {host}@{p} {key_name}\n" for host, p in masters)
    allow_notify = "".join(f"    allow-notify: {address} NOKEY\n" for address in notify_from)
    return NSD_CONF.format(directory=directory, port=port, listen=listen, key=key, pattern=pattern,
                           request_xfr=request_xfr, allow_notify=allow_notify)
