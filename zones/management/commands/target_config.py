"""Print what a new server of a pool needs, ready to paste: a shell script that writes its configuration
(from the backend's own renderer: named_conf, knot_conf, pdns_conf, nsd_conf) and prepares it, then, as
comments, the command that starts it, the one that checks it, and the configure_pool line that adds it.

    manage.py target_config --type knot --pool default --dir /var/lib/dnsctl-knot --listen 192.0.2.31 --port 53

The configuration carries the pool's MiniDNS masters as primaries, its notify_source in the NOTIFY
ACL, its TSIG key and, where the pool has one, its catalog zone. Secrets it makes (the rndc key, the
PowerDNS API key) are written in the directory, mode 0600, and read from there by configure_pool.
"""
import base64
import ipaddress
import os
import secrets
import shlex
from dataclasses import dataclass, field

from django.core.management.base import BaseCommand, CommandError

from workers.backends.bind9 import named_conf
from workers.backends.knot import knot_conf
from workers.backends.nsd import nsd_conf
from workers.backends.pdns import pdns_conf
from zones.management.commands.configure_pool import KEY_RE, read_secret
from zones.models import Pool

PACKAGES = {"bind9": "bind9 bind9-utils bind9-dnsutils", "knot": "knot knot-dnsutils",
            "pdns": "pdns-server pdns-backend-sqlite3 sqlite3", "nsd": "nsd"}
PDNS_SCHEMA = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"


@dataclass
class Recipe:
    files: dict[str, str]  # name in the dir -> text
    prepare: list[str]  # shell lines after the files are written
    start: list[str]  # the server in the foreground
    check: list[str]  # exits 0 once the control channel answers
    options: list[str]  # configure_pool set-target flags
    notes: list[str] = field(default_factory=list)


class Command(BaseCommand):
    help = "Print the configuration and setup commands for a new bind9, knot, pdns or nsd target of a pool."

    def add_arguments(self, parser):
        parser.add_argument("--type", required=True, dest="kind", metavar="bind9|knot|pdns|nsd")
        parser.add_argument("--pool", default="default")
        parser.add_argument("--name", help="the target's name in the pool (default: TYPE-1)")
        parser.add_argument("--dir", help="the server's directory (default /var/lib/dnsctl-TYPE)")
        parser.add_argument("--listen", default="127.0.0.1", metavar="IP",
                            help="the address it answers DNS on (the pool polls it there)")
        parser.add_argument("--port", type=int, default=53)
        parser.add_argument("--control-listen", metavar="IP", help="bind9 rndc / pdns API address (default --listen)")
        parser.add_argument("--control-port", type=int, help="bind9 rndc port (953) / pdns API port (8081)")
        parser.add_argument("--control-allow", default="127.0.0.1", metavar="IP[/LEN]",
                            help="bind9 / pdns: the address dnsctl's workers reach the control channel from")
        parser.add_argument("--notify-from", action="append", metavar="IP[/LEN]",
                            help="addresses NOTIFYs come from (default: the pool's notify_source, else MiniDNS's); "
                                 "a network where workers have no fixed address")
        parser.add_argument("--master", action="append", metavar="HOST:PORT",
                            help="MiniDNS (default: the pool's targets' masters, else MINIDNS_HOST:MINIDNS_PORT)")
        parser.add_argument("--rndc-key-file", metavar="FILE", help="bind9: use this key file's rndc key, not a new one")

    def handle(self, *args, kind, pool, name, dir, listen, port, control_listen, control_port, control_allow,
               notify_from, master, rndc_key_file, **options):
        if kind not in PACKAGES:
            raise CommandError(f"option --type: unknown server type {kind!r} (known: {', '.join(PACKAGES)})")
        pool_name, pool = pool, Pool.objects.filter(name=pool).first()
        if pool is None:
            raise CommandError(f"option --pool: there is no pool named {pool_name!r}")
        name = name or f"{kind}-1"
        directory = os.path.abspath(dir or f"/var/lib/dnsctl-{kind}")
        masters = self.masters(pool, master)
        for host, _ in masters:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise CommandError(f"option --master: {host!r} is not an IP address (servers want MiniDNS's address)")
        for option, address in [("--control-allow", control_allow), *(("--notify-from", a) for a in notify_from or [])]:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise CommandError(f"option {option}: {address!r} is not an address or a network") from None
        notify = notify_from or ([pool.notify_source] if pool.notify_source else sorted({h for h, _ in masters}))
        target = pool.targets.filter(name=name).first()
        key = (target.tsig_key if target and target.tsig_key else pool.tsig_key)
        tsig = key.as_dict() if key else None
        where = f"pool {pool_name}, target {name}"
        args = dict(directory=directory, listen=listen, port=port, control_listen=control_listen or listen,
                    control_allow=control_allow, notify=notify, masters=masters, tsig=tsig,
                    catalog=pool.catalog_zone, where=where)
        if kind == "bind9":
            recipe = self.bind9(**args, control_port=control_port or 953, rndc_key_file=rndc_key_file)
        elif kind == "knot":
            recipe = self.knot(**args)
        elif kind == "pdns":
            recipe = self.pdns(**args, control_port=control_port or 8081)
        else:
            recipe = self.nsd(**args)
        self.stdout.write(self.script(kind, pool_name, name, directory, listen, port, masters, recipe))

    @staticmethod
    def masters(pool, given) -> list[tuple[str, int]]:
        if given:
            values = given
        else:
            values = next((t.masters for t in pool.targets.all() if t.masters), None) or [
                f"{os.environ.get('MINIDNS_HOST', '127.0.0.1')}:{os.environ.get('MINIDNS_PORT', '5354')}"]
        result = []
        for value in values:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit():
                raise CommandError(f"option --master: {value!r} is not HOST:PORT")
            result.append((host.strip("[]"), int(port)))
        return result

    # -- one recipe per server kind ---------------------------------------
    @staticmethod
    def bind9(*, directory, listen, port, control_listen, control_port, control_allow, notify, masters, tsig,
              catalog, where, rndc_key_file):
        if rndc_key_file:
            match = KEY_RE.search(read_secret(rndc_key_file, where, "--rndc-key-file"))
            if not match:
                raise CommandError(f"{where}: option --rndc-key-file: {rndc_key_file} holds no rndc key")
            if match["alg"].lower() != "hmac-sha256":
                raise CommandError(f"{where}: option --rndc-key-file: the key must be hmac-sha256, not {match['alg']}")
            key_name, secret = match["name"], match["secret"]
        else:
            key_name, secret = "rndc-key", base64.b64encode(os.urandom(32)).decode()
        conf = named_conf(directory=directory, port=port, rndc_port=control_port, rndc_secret=secret,
                          key_name=key_name, listen=listen, rndc_listen=control_listen,
                          rndc_allow=control_allow, allow_notify="; ".join(notify), tsig=tsig,
                          catalog=catalog, catalog_primaries=masters if catalog else [])
        key_file = f"{directory}/rndc.key"
        return Recipe(
            files={"named.conf": conf,
                   "rndc.key": f'key "{key_name}" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'},
            prepare=[f"named-checkconf {q(directory + '/named.conf')}"],
            start=["named", "-g", "-c", f"{directory}/named.conf"],
            check=["rndc", "-k", key_file, "-s", control_listen, "-p", str(control_port), "status"],
            options=["--rndc-host", control_listen, "--rndc-port", str(control_port), "--rndc-key-file", key_file])

    @staticmethod
    def knot(*, directory, listen, port, control_listen, control_allow, notify, masters, tsig, catalog, where):
        socket = f"{directory}/knot.sock"
        conf = knot_conf(directory=directory, port=port, masters=masters, socket=socket, listen=listen,
                         notify_from=notify, tsig=tsig, catalog=catalog)
        return Recipe(
            files={"knot.conf": conf},
            prepare=[f"mkdir -p {q(directory + '/db')} {q(directory + '/zones')}   # knotd does not make them",
                     f"knotc -C {q(directory + '/confdb')} conf-import {q(directory + '/knot.conf')}"
                     "   # a confdb keeps the zones knotc adds"],
            start=["knotd", "-C", f"{directory}/confdb"],
            check=["knotc", "-s", socket, "status"],
            options=["--socket", socket],
            notes=["The control channel is a unix socket: run the dnsctl worker on this host (or share the "
                   "directory with it)."])

    @staticmethod
    def pdns(*, directory, listen, port, control_listen, control_port, control_allow, notify, masters, tsig,
             catalog, where):
        api_key = secrets.token_urlsafe(32)
        master_hosts = {host for host, _ in masters}
        proxies = ",".join(a for a in notify if a not in master_hosts)
        conf = pdns_conf(directory=directory, port=port, api_port=control_port, api_key=api_key, listen=listen,
                         api_listen=control_listen, api_allow=cidr(control_allow),
                         notify_from=",".join(cidr(a) for a in sorted(set(notify) | master_hosts)),
                         trusted_notification_proxy=proxies)
        api_url = f"http://{control_listen}:{control_port}"
        notes = ["PowerDNS takes NOTIFY only from a zone's master: make the pool's notify_source MiniDNS's "
                 "address (configure_pool POOL set --notify-source IP)."]
        if catalog:
            notes.append(f"The pool has the catalog {catalog}: configure_pool's set-target adds its Consumer zone.")
        return Recipe(
            files={"pdns.conf": conf, "api-key": api_key + "\n"},
            prepare=[f"sqlite3 {q(directory + '/pdns.sqlite3')} < {PDNS_SCHEMA}   # the gsqlite3 schema, once"],
            start=["pdns_server", f"--config-dir={directory}"],
            check=["curl", "-fsS", "-o", "/dev/null", "-H", f"X-API-Key: {api_key}",
                   f"{api_url}/api/v1/servers/localhost"],
            options=["--api-url", api_url, "--api-key-file", f"{directory}/api-key"], notes=notes)

    @staticmethod
    def nsd(*, directory, listen, port, control_listen, control_allow, notify, masters, tsig, catalog, where):
        if catalog:
            raise CommandError(f"{where}: option --type nsd: the pool has a catalog zone ({catalog}) and NSD 4.6 "
                               "cannot consume catalogs; give NSD a pool without catalog_zone")
        conf = nsd_conf(directory=directory, port=port, masters=masters, listen=listen, notify_from=notify,
                        tsig=tsig)
        return Recipe(
            files={"nsd.conf": conf},
            prepare=[f"mkdir -p {q(directory + '/zones')}",
                     f"nsd-checkconf {q(directory + '/nsd.conf')}"],
            start=["nsd", "-d", "-c", f"{directory}/nsd.conf"],
            check=["nsd-control", "-c", f"{directory}/nsd.conf", "status"],
            options=["--config", f"{directory}/nsd.conf"],
            notes=["nsd-control talks to a unix socket: no nsd-control-setup (TLS certificates) is needed, but "
                   "the dnsctl worker must run on this host (or share the directory)."])

    @staticmethod
    def script(kind, pool, name, directory, listen, port, masters, recipe: Recipe) -> str:
        lines = [f"# A {kind} target {name!r} for dnsctl pool {pool!r} (manage.py target_config).",
                 f"# Packages (Debian 12): apt-get install {PACKAGES[kind]}",
                 "# 1. Prepare: run this script where the server runs, as the user it runs as.",
                 "set -eu", "umask 077", f"mkdir -p {q(directory)}"]
        for file_name, text in recipe.files.items():
            lines += [f"cat > {q(directory + '/' + file_name)} <<'EOF'", text.rstrip("\n"), "EOF"]
        lines += recipe.prepare
        add = ["python", "manage.py", "configure_pool", pool, "set-target", name, "--type", kind,
               *(arg for host, p in masters for arg in ("--master", f"{host}:{p}")), *recipe.options,
               "--nameserver", f"{listen}:{port}"]
        lines += ["# 2. Start it in the foreground (or put this in a service's ExecStart=):",
                  f"# start: {shlex.join(recipe.start)}",
                  f"# 3. Check: this exits 0, and dig @{listen} -p {port} . SOA gets an answer:",
                  f"# check: {shlex.join(recipe.check)}",
                  "# 4. Add it to the pool, on the dnsctl host (it checks the control channel first):",
                  f"# pool:  {shlex.join(add)}"]
        lines += [f"# Note: {note}" for note in recipe.notes]
        return "\n".join(lines) + "\n"


def q(path: str) -> str:
    return shlex.quote(path)


def cidr(address: str) -> str:
    return address if "/" in address else f"{address}/{ipaddress.ip_address(address).max_prefixlen}"
