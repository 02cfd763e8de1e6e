"""Knot DNS backend: zones are added and removed with knotc on knotd's control socket.

Every change is a configuration transaction (conf-begin ... conf-commit, conf-abort on any
error). Knot allows only one such transaction per server, so changes to one Knot target are
serialised by a cluster-wide lock, and apply() puts many zones in ONE transaction. A zone is
just ``zone[<name>]`` with ``template <template>``: the template (see knot_conf()) names MiniDNS
as master and holds the NOTIFY ACL, so knotd pulls the zone by AXFR at commit.

knotd's control socket is a unix socket: the worker that drives a Knot target runs on its host
(or shares the socket's directory).
"""

import logging
import re
import subprocess

from workers.backends import plain_zone_name, target_lock
from workers.backends.base import Backend, BackendError, Option

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # template / remote / acl / key ids in knot.conf


class KnotBackend(Backend):
    """Options: ``socket`` (knotd's control socket, required), ``template`` (default "dnsctl"),
    ``timeout`` (seconds per knotc call and to wait for the target's lock, default 10)."""

    OPTIONS = {
        "socket": Option(str, "absolute path of knotd's control socket, on the worker's host (required)"),
        "template": Option(str, "the knot.conf template new zones get (default dnsctl)"),
        "timeout": Option(float, "seconds per control-channel call (default 10)"),
    }

    def __init__(self, name: str, options: dict, masters: list[tuple[str, int]]):
        super().__init__(name, options, masters)
        self.socket = str(self.options.get("socket") or "")
        self.template = str(self.options.get("template") or "dnsctl")
        if not self.socket.startswith("/"):
            raise BackendError(f"knot target {name!r}: option socket (absolute path of knotd's control socket) "
                               "is required")
        if not NAME_RE.match(self.template):
            raise BackendError(f"knot target {name!r}: invalid template {self.template!r}")

    # -- Backend API -----------------------------------------------------
    def create_zone(self, zone_name: str) -> None:
        self._one("CREATE", zone_name)

    def update_zone(self, zone_name: str) -> None:
        self._one("UPDATE", zone_name)

    def delete_zone(self, zone_name: str) -> None:
        self._one("DELETE", zone_name)

    def has_zone(self, zone_name: str) -> bool:
        """zone-status knows configured zones and a catalog's members alike."""
        zone = plain_zone_name(zone_name, self.name)
        result = self._knotc("zone-status", zone)
        if result.returncode == 0:
            return True
        if "(no such zone found)" in result.stdout:
            return False
        self._fail("zone-status", result)

    def check(self) -> None:
        """knotd answers on the socket, and knows the template new zones get."""
        status = self._knotc("status")
        if "Running" not in status.stdout:
            raise BackendError(f"{self._where()}: knotc status (option socket) failed: {_text(status)}")
        template = self._knotc("conf-read", f"template[{self.template}]")
        if template.returncode != 0:
            raise BackendError(f"{self._where()}: knotd has no template {self.template!r} (option template): "
                               f"{_text(template)}")

    def apply(self, changes: list[tuple[str, str]], deadline: float | None = None) -> dict[str, str | None]:
        """All changes in one configuration transaction, under the target's lock. Knot's own
        "already there" and "not there" answers to a line count as success (idempotency). One
        transaction is one bounded call: deadline does not cut it."""
        results: dict[str, str | None] = {}
        lines: list[tuple[str, str | None]] = []  # (knotc command, the error that means "already done")
        for action, zone_name in changes:
            try:
                zone = plain_zone_name(zone_name, self.name)
            except BackendError as exc:
                results[zone_name] = str(exc)
                continue
            results[zone_name] = None
            if action == "DELETE":
                lines.append((f"conf-unset zone[{zone}]", "(invalid identifier)"))
            else:  # the template carries the primaries: set it again on an existing zone too
                lines += [(f"conf-set zone[{zone}]", "(duplicate identifier)"),
                          (f"conf-set zone[{zone}].template {self.template}", None)]
        if not lines:
            return results
        try:
            with self._locked():
                done = self._transaction(lines)
                removed = [cmd[len("conf-unset zone["):-1] for (cmd, _), ok in zip(lines, done)
                           if ok and cmd.startswith("conf-unset")]
                if removed:
                    self._purge(removed)
        except BackendError as exc:
            return {zone_name: results.get(zone_name) or str(exc) for _, zone_name in changes}
        return results

    # -- helpers ---------------------------------------------------------
    def _one(self, action: str, zone_name: str) -> None:
        error = self.apply([(action, zone_name)])[zone_name]
        if error:
            raise BackendError(error)

    def _locked(self):
        return target_lock(f"knot:{self.socket}", self.timeout, self._where())  # per server, whatever the pool

    def _transaction(self, lines: list[tuple[str, str | None]]) -> list[bool]:
        """conf-begin and the lines in one knotc session (it answers one line per command), then
        conf-commit; conf-abort on any error. Returns, per line, whether it changed something."""
        commands = ["conf-begin"] + [command for command, _ in lines]
        for attempt in (1, 2):
            session = self._knotc(stdin="\n".join(commands) + "\n")
            answers = [line.strip() for line in session.stdout.splitlines() if line.strip()]
            if attempt == 1 and answers and "too many transactions" in answers[0]:
                # We hold the target's lock, so this is a transaction left open by a crashed worker
                # (our lines went into it: the abort drops them too).
                log.warning("knot target %r: aborting a stale configuration transaction", self.name)
                self._knotc("conf-abort")
                continue
            break
        if session.returncode != 0 or len(answers) != len(commands) or answers[0] != "OK":
            self._knotc("conf-abort")
            self._fail("conf-begin", session)
        errors = [f"{command}: {answer}" for (command, done_already), answer in zip(lines, answers[1:])
                  if answer != "OK" and not (done_already and done_already in answer)]
        if errors:
            self._knotc("conf-abort")
            self._fail("conf-set", session, errors)
        commit = self._knotc("conf-commit")
        if commit.returncode != 0:
            self._knotc("conf-abort")
            self._fail("conf-commit", commit)
        return [answer == "OK" for answer in answers[1:]]

    def _purge(self, zones: list[str]) -> None:
        """Drop the journal and timers of removed zones; the zone is already gone, so only log failures."""
        result = self._knotc("-f", "zone-purge", *zones, "+orphan")
        if result.returncode != 0:
            log.warning("knot target %r: zone-purge failed: %s", self.name, _text(result))

    def _knotc(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        cmd = ["knotc", "-s", self.socket, "-t", str(max(1, int(self.timeout))), *args]
        log.debug("knot target %r: knotc %s", self.name, " ".join(args) or f"({stdin.count(chr(10))} lines)")
        try:
            return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=self.timeout + 5,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BackendError(f"{self._where()}: knotc timed out after {self.timeout:g} s "
                               f"({args[0] if args else 'session'})") from None
        except OSError as exc:
            raise BackendError(f"{self._where()}: cannot run knotc: {exc}") from None

    def _where(self) -> str:
        return f"knot target {self.name!r} ({self.socket})"

    def _fail(self, command: str, result: subprocess.CompletedProcess, errors: list[str] | None = None):
        message = " / ".join(errors) if errors else _text(result)
        raise BackendError(f"{self._where()}: knotc {command} failed: {message}")


def _text(result: subprocess.CompletedProcess) -> str:
    lines = filter(None, (line.strip() for line in (result.stderr + result.stdout).splitlines()))
    text = " / ".join(dict.fromkeys(lines))  # once each: a session repeats its error for every line
    return text or f"exit status {result.returncode}"


KNOT_CONF = """\
server:
    rundir: "{directory}"
    pidfile: "{directory}/knot.pid"
    listen: [ {listen} ]
database:
    storage: "{directory}/db"
control:
    listen: "{socket}"
log:
  - target: stderr
    any: info
{key}remote:
  - id: dnsctl
    address: [ {masters} ]{remote_key}
acl:
  - id: dnsctl_notify               # NOTIFY is accepted only from addresses an ACL names, even the primary's
    address: [ {notify_from} ]
    action: notify
template:
  - id: default
    storage: "{directory}/zones"
  - id: {template}
    storage: "{directory}/zones"
    file: "%s.zone"
    master: dnsctl                  # Knot 3.2's keyword ("primary" from 3.3)
    acl: dnsctl_notify
    zonefile-sync: -1               # keep transferred data in the journal only
    zonefile-load: none
    journal-content: all
{catalog}"""


def knot_conf(*, directory: str, port: int, masters: list[tuple[str, int]], socket: str | None = None,
              listen: str = "127.0.0.1", notify_from: list[str] = ("127.0.0.1",), template: str = "dnsctl",
              tsig: dict | None = None, catalog: str | None = None) -> str:
    """A knot.conf that makes Knot a target dnsctl can drive: what an operator must configure.

    masters are MiniDNS's addresses; notify_from the addresses dnsctl NOTIFYs from (the pool's
    notify_source, else the worker's address). tsig ({name, algorithm, secret}) signs the transfers.
    catalog names the pool's catalog zone (RFC 9432): Knot interprets it and gives its members the
    template. Knot answers REFUSED for the catalog zone itself (see `knotc zone-status`).
    """
    catalog_zone = (f"zone:\n  - domain: {catalog}\n    template: {template}\n    catalog-role: interpret\n"
                    f"    catalog-template: {template}\n" if catalog else "")
    key = remote_key = ""
    if tsig:
        key = (f"key:\n  - id: {tsig['name']}\n    algorithm: {tsig['algorithm']}\n"
               f"    secret: {tsig['secret']}\n")
        remote_key = f"\n    key: {tsig['name']}"
    return KNOT_CONF.format(directory=directory, listen=f"{listen}@{port}", socket=socket or f"{directory}/knot.sock",
                            masters=", ".join(f"{host}@{p}" for host, p in masters), remote_key=remote_key, key=key,
                            notify_from=", ".join(notify_from), template=template, catalog=catalog_zone)
