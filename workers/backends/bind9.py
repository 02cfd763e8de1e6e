"""BIND9 backend: zones are added/changed/removed at runtime over named's control channel
(the rndc protocol, spoken by workers/rndc.py: no rndc process per call).

named must have ``allow-new-zones yes;`` and a ``controls`` channel for the key
given here. Each zone becomes
``{ type secondary; file "<zone>.db"; primaries { H port P; ... }; };``
with MiniDNS as primaries, so named pulls the data by AXFR at once.
"""

import base64
import binascii
import ipaddress
import logging
import re

from workers import rndc
from workers.backends.base import Backend, BackendError, Option

log = logging.getLogger(__name__)

ALGORITHMS = set(rndc.ALGORITHMS)
# Key names go inside quoted strings of named.conf and `target_config`'s output: no quotes, spaces or ';'.
KEY_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
# Zone names go on the control channel's command line and into `file "..."`: plain hostname-ish
# labels only ('/' is allowed for RFC 2317 classless reverse zones).
ZONE_LABEL_RE = re.compile(r"^[a-z0-9_/-]{1,63}$")


class Bind9Backend(Backend):
    default_parallel = 8  # a batch's zones in threads, sharing the client's kept connections (workers/rndc.py)
    OPTIONS = {
        "rndc_host": Option(str, "address of named's control channel (default 127.0.0.1)"),
        "rndc_port": Option(int, "port of named's control channel (default 953)"),
        "rndc_key_name": Option(str, "name of the rndc key in named.conf (default rndc-key)"),
        "rndc_key_algorithm": Option(str, "algorithm of the rndc key (default hmac-sha256)"),
        "rndc_key_secret": Option(str, "base64 secret of the rndc key (required)", secret=True),
        "timeout": Option(float, "seconds per control-channel call (default 10)"),
        "parallel": Option(int, "zones of a batch at once (default 8; they share at most 4 kept "
                                "control-channel connections per named and worker process)"),
    }

    def __init__(self, name: str, options: dict, masters: list[tuple[str, int]]):
        super().__init__(name, options, masters)
        opts = self.options
        self.rndc_host = str(opts.get("rndc_host") or "127.0.0.1")
        self.key_name = str(opts.get("rndc_key_name") or "rndc-key")
        self.key_algorithm = str(opts.get("rndc_key_algorithm") or "hmac-sha256").lower()
        self.rndc_port = self.number("rndc_port", int, 953, 0, 65535)
        self._secret = str(opts.get("rndc_key_secret") or "")
        # TSIG for transfers from MiniDNS: named.conf must define this key (named_conf(tsig=...)).
        self.tsig_key_name = str((opts.get("tsig_key") or {}).get("name") or "")

        # Validate up front: a bad key or address fails here, naming the option, not on first use.
        if not self._secret:
            raise BackendError(f"bind9 target {name!r}: option rndc_key_secret is required")
        try:
            base64.b64decode(self._secret, validate=True)
        except (binascii.Error, ValueError):
            raise BackendError(f"bind9 target {name!r}: rndc_key_secret is not valid base64") from None
        if not KEY_NAME_RE.match(self.key_name):
            raise BackendError(f"bind9 target {name!r}: invalid rndc_key_name {self.key_name!r}")
        if self.tsig_key_name and not KEY_NAME_RE.match(self.tsig_key_name):
            raise BackendError(f"bind9 target {name!r}: invalid TSIG key name {self.tsig_key_name!r}")
        if self.key_algorithm not in ALGORITHMS:
            raise BackendError(f"bind9 target {name!r}: unsupported rndc_key_algorithm "
                               f"{self.key_algorithm!r}")
        if not self.masters:
            raise BackendError(f"bind9 target {name!r}: no masters to use as primaries")
        for host, port in self.masters:
            try:
                ipaddress.ip_address(host)  # BIND's primaries must be addresses, not names
            except ValueError:
                raise BackendError(f"bind9 target {name!r}: master {host!r} is not an IP address") from None
        self._client = rndc.shared_client(self.rndc_host, self.rndc_port, self.key_algorithm, self._secret, self.timeout)

    # -- Backend API -----------------------------------------------------
    def create_zone(self, zone_name: str) -> None:
        zone = self._zone(zone_name)
        reply = self._rndc("addzone", zone, self._zone_config(zone), zone=zone)
        if reply.err not in (None, "already exists"):
            self._fail("addzone", zone, reply)

    def update_zone(self, zone_name: str) -> None:
        """The zone configured as we would add it: asked with showzone (a read), and only changed
        (modzone) when its configuration differs. modzone on every change made named rebuild the zone,
        reload it from its file and query MiniDNS's SOA again, all in named's exclusive mode."""
        zone = self._zone(zone_name)
        config = self._zone_config(zone)
        shown = self._rndc("showzone", zone, zone=zone)
        if shown.ok and shown.text.strip() == f'zone "{zone}" {config}':
            return
        if shown.ok or shown.err != "not found":
            reply = self._rndc("modzone", zone, config, zone=zone)
            if reply.ok:
                return
            if reply.err != "not found":
                self._fail("modzone", zone, reply)
        # Missing: add it. "already exists" means a concurrent create won the race.
        reply = self._rndc("addzone", zone, config, zone=zone)
        if reply.err not in (None, "already exists"):
            self._fail("addzone", zone, reply)

    def delete_zone(self, zone_name: str) -> None:
        zone = self._zone(zone_name)
        reply = self._rndc("delzone", "-clean", zone, zone=zone)
        if reply.err not in (None, "not found"):
            self._fail("delzone", zone, reply)

    def has_zone(self, zone_name: str) -> bool:
        zone = self._zone(zone_name)
        reply = self._rndc("showzone", zone, zone=zone)
        if reply.ok:
            return True
        if reply.err == "not found":
            return False
        self._fail("showzone", zone, reply)

    def check(self) -> None:
        try:
            reply = self._client.call("status")
            message = "" if reply.ok else _message("status", reply)
        except rndc.RndcError as exc:
            message = f"rndc: {exc}"
        if message:
            raise BackendError(f"bind9 target {self.name!r}: rndc status on {self.rndc_host}:{self.rndc_port} "
                               f"(options rndc_host, rndc_port, rndc_key_*) failed: {message}")

    # -- helpers ---------------------------------------------------------
    def _zone(self, zone_name: str) -> str:
        """'Example.COM.' -> 'example.com' (rndc and file names want no trailing dot)."""
        zone = zone_name.strip().rstrip(".").lower()
        if not zone or not all(ZONE_LABEL_RE.match(label) for label in zone.split(".")):
            raise BackendError(f"bind9 target {self.name!r}: invalid zone name {zone_name!r}")
        return zone

    def _zone_config(self, zone: str) -> str:
        """The zone's statement as `rndc showzone` prints it back (so update_zone can compare them)."""
        key = f' key "{self.tsig_key_name}"' if self.tsig_key_name else ""
        primaries = " ".join(f"{host} port {port}{key};" for host, port in self.masters)
        file_name = zone.replace("/", "_") + ".db"
        return f'{{ type secondary; file "{file_name}"; primaries {{ {primaries} }}; }};'

    def _rndc(self, *args: str, zone: str) -> rndc.Reply:
        """One command over named's control channel (workers/rndc.py, no rndc process). named's own
        refusal ("already exists", "not found") comes back in the reply for the caller to judge; a
        connection, key or protocol failure, or the timeout, is a BackendError here."""
        log.debug("bind9 target %r: rndc %s %s", self.name, args[0], zone)
        try:
            return self._client.call(" ".join(args))
        except rndc.RndcTimeout:
            raise BackendError(f"bind9 target {self.name!r} ({self.rndc_host}:{self.rndc_port}): "
                               f"rndc timed out after {self.timeout:g} s ({args[0]})") from None
        except rndc.RndcError as exc:
            raise BackendError(f"bind9 target {self.name!r} ({self.rndc_host}:{self.rndc_port}): "
                               f"rndc {args[0]} {zone} failed: rndc: {exc}") from None

    def _fail(self, command: str, zone: str, reply: rndc.Reply):
        raise BackendError(f"bind9 target {self.name!r} ({self.rndc_host}:{self.rndc_port}): "
                           f"rndc {command} {zone} failed: {_message(command, reply)}")


def _message(command: str, reply: rndc.Reply) -> str:
    """What rndc would print, on one line: "rndc: 'addzone' failed: <reason> / <named's text>"."""
    lines = [f"rndc: '{command}' failed: {reply.err}"] if reply.err is not None else []
    lines += filter(None, (line.strip() for line in reply.text.splitlines()))
    return " / ".join(lines)


NAMED_CONF = """\
key "{key_name}" {{ algorithm hmac-sha256; secret "{rndc_secret}"; }};
{tsig}controls {{ inet {rndc_listen} port {rndc_port} allow {{ {rndc_allow}; }} keys {{ "{key_name}"; }}; }};
options {{
    directory "{directory}"; pid-file "{directory}/named.pid"; session-keyfile "{directory}/session.key";
    lock-file "{directory}/named.lock";
    managed-keys-directory "{directory}"; new-zones-directory "{directory}";
    listen-on port {port} {{ {listen}; }}; listen-on-v6 {{ none; }};
    recursion no; allow-query {{ any; }}; dnssec-validation no;
    allow-new-zones yes;                 // rndc addzone / modzone / delzone
    allow-notify {{ {allow_notify}; }};   // dnsctl's NOTIFY sender, besides the zone's primaries
    notify no;
    serial-query-rate 1000;              // the default 20/s throttles refreshes after NOTIFY bursts
    transfers-in 100;
{catalog_options}}};
{catalog_zone}"""


def named_conf(*, directory: str, port: int, rndc_port: int, rndc_secret: str, key_name: str = "rndc-key",
               listen: str = "127.0.0.1", rndc_listen: str = "127.0.0.1", rndc_allow: str = "127.0.0.1",
               allow_notify: str = "127.0.0.1", tsig: dict | None = None, catalog: str | None = None,
               catalog_primaries: list[tuple[str, int]] = ()) -> str:
    """A named.conf that makes BIND9 a target dnsctl can drive: what an operator must configure.

    allow_notify names the address dnsctl NOTIFYs from (the pool's notify_source) when it is not
    MiniDNS's. tsig ({name, algorithm, secret}) is the key of the pool or target: the zones' primaries
    clause names it, so named signs its transfers. catalog names the pool's catalog zone (RFC 9432) that
    named consumes from catalog_primaries (MiniDNS), creating and dropping member zones itself;
    min-update-interval 0, or members change at most every 5 s.
    """
    tsig_clause = (f'key "{tsig["name"]}" {{ algorithm {tsig["algorithm"]}; secret "{tsig["secret"]}"; }};\n'
                   if tsig else "")
    key = f' key "{tsig["name"]}"' if tsig else ""
    primaries = " ".join(f"{host} port {p}{key};" for host, p in catalog_primaries)
    catalog_options = (f'    catalog-zones {{ zone "{catalog}" default-primaries {{ {primaries} }} in-memory yes '
                       f'min-update-interval 0; }};\n' if catalog else "")
    catalog_zone = (f'zone "{catalog}" {{ type secondary; primaries {{ {primaries} }}; file "{catalog}.cat.db"; }};\n'
                    if catalog else "")
    return NAMED_CONF.format(directory=directory, port=port, rndc_port=rndc_port, rndc_secret=rndc_secret,
                             key_name=key_name, listen=listen, rndc_listen=rndc_listen, rndc_allow=rndc_allow,
                             allow_notify=allow_notify, tsig=tsig_clause, catalog_options=catalog_options,
                             catalog_zone=catalog_zone)
