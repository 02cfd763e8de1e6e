"""Change one part of a pool from the command line: a target of any kind, a nameserver, an also-notify,
an NS record, or the pool's own fields. Everything else in the pool stays as it is.

    manage.py configure_pool default set-target knot-1 --type knot --socket /var/lib/knot/knot.sock \
        --master 192.0.2.10:5354 --nameserver 192.0.2.31:53 --ns-name ns2.example.net.

Each backend's options are flags (workers/backends/*.py OPTIONS); the backend checks them, and the
target's control channel must answer (`--no-check` skips that for a server that is not up yet). Any
error names the target and the option, exits with status 1, and saves nothing.
"""
import argparse
import os
import re
from importlib import import_module
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from workers.backends import BACKENDS, BackendError, get_backend
from zones.models import Pool
from zones.services import pools

KEY_RE = re.compile(r'key\s+"?(?P<name>[^"\s{]+)"?\s*{[^}]*algorithm\s+(?P<alg>[\w-]+);[^}]*secret\s+"(?P<secret>[^"]+)"')


def backend_options() -> dict[str, dict]:
    """{type: {option: Option}} from every registered backend."""
    result = {}
    for kind, path in sorted(BACKENDS.items()):
        module, _, name = path.rpartition(".")
        result[kind] = getattr(import_module(module), name).OPTIONS
    return result


def flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class Command(BaseCommand):
    help = ("Add, change or remove one target (bind9, knot, pdns, nsd), nameserver, also-notify or NS record "
            "of a pool, or set the pool's fields ('set' creates the pool). 'show' prints the pool.")

    def add_arguments(self, parser):
        parser.add_argument("pool")
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        verbs.add_parser("show", help="print the pool (secrets as *****)")

        pool = verbs.add_parser("set", help="create the pool, or change its fields")
        pool.add_argument("--description")
        pool.add_argument("--threshold", type=int, help="percentage of nameservers a change must reach")
        pool.add_argument("--notify-source", metavar="IP", help="the address NOTIFYs leave from ('' clears)")
        pool.add_argument("--tsig-key", metavar="NAME", help="TSIG key that signs transfers ('' clears)")
        pool.add_argument("--catalog-zone", metavar="ZONE", help="RFC 9432 catalog zone ('' clears)")

        target = verbs.add_parser("set-target", help="add a target, or change the options given")
        target.add_argument("name")
        target.add_argument("--type", help=f"backend: {', '.join(sorted(BACKENDS))} (required for a new target)")
        target.add_argument("--master", action="append", metavar="HOST:PORT", type=host_port,
                            help="MiniDNS, where the server transfers zones from (default: the pool's other targets')")
        target.add_argument("--description")
        target.add_argument("--tsig-key", metavar="NAME", help="the target's own TSIG key ('' clears)")
        target.add_argument("--nameserver", metavar="HOST:PORT", type=host_port,
                            help="also poll the server there (set-nameserver in the same step)")
        target.add_argument("--ns-name", metavar="HOSTNAME.", help="the nameserver's public NS name")
        target.add_argument("--no-check", action="store_true",
                            help="save without asking the control channel (a server that is not up yet)")
        seen = {}
        for kind, options in backend_options().items():
            for option, spec in options.items():
                seen.setdefault(option, []).append(kind)
        for option, kinds in seen.items():
            spec = backend_options()[kinds[0]][option]
            target.add_argument(flag(option), dest=f"opt_{option}", type=spec.type, metavar=spec.type.__name__.upper(),
                                help=f"{'/'.join(kinds)}: {spec.help}")
            if spec.secret:
                target.add_argument(flag(option) + "-file", dest=f"file_{option}", metavar="FILE",
                                    help=f"{'/'.join(kinds)}: read {option} from FILE (keeps it out of ps)")
        target.add_argument("--rndc-key-file", metavar="FILE",
                            help="bind9: rndc key name, algorithm and secret from a key file (tsig-keygen, rndc-confgen -a)")

        verbs.add_parser("remove-target").add_argument("name")
        ns = verbs.add_parser("set-nameserver", help="add a nameserver (polled for serials), or rename it")
        ns.add_argument("address", metavar="HOST:PORT", type=host_port)
        ns.add_argument("--name", metavar="HOSTNAME.", help="its public NS name")
        verbs.add_parser("remove-nameserver").add_argument("address", metavar="HOST:PORT", type=host_port)
        verbs.add_parser("add-also-notify").add_argument("address", metavar="HOST:PORT", type=host_port)
        verbs.add_parser("remove-also-notify").add_argument("address", metavar="HOST:PORT", type=host_port)
        record = verbs.add_parser("set-ns-record", help="add an NS record every zone of the pool carries")
        record.add_argument("hostname")
        record.add_argument("--priority", type=int, default=1)
        verbs.add_parser("remove-ns-record").add_argument("hostname")

    def handle(self, *args, pool, verb, **options):
        name = pool
        pool = Pool.objects.filter(name=name).first()
        if pool is None and verb != "set":
            raise CommandError(f"there is no pool named {name!r} (create it with: configure_pool {name} set)")
        where = f"pool {name}" + (f", target {options['name']}" if verb in ("set-target", "remove-target") else "")
        try:
            with transaction.atomic():
                message = getattr(self, verb.replace("-", "_"))(pool, name, **options)
        except ValidationError as exc:
            errors = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            raise CommandError(f"{where}: {errors} (nothing was saved)") from None
        except BackendError as exc:
            raise CommandError(f"{where}: {exc} (nothing was saved)") from None
        if message:
            self.stdout.write(message)

    # -- verbs: each runs in one transaction ----------------------------
    def show(self, pool, pool_name, **options):
        secret = {option for specs in backend_options().values() for option, spec in specs.items() if spec.secret}
        lines = [f"pool {pool.name} (threshold {pool.threshold_percentage}%, notify source "
                 f"{pool.notify_source or '-'}, TSIG key {pool.tsig_key or '-'}, catalog {pool.catalog_zone or '-'})"]
        for t in pool.targets.all():
            opts = " ".join(f"{k}={'*****' if k in secret else v}" for k, v in sorted(t.options.items()))
            lines.append(f"  target {t.name} ({t.type}) masters {','.join(t.masters)} {opts}")
        lines += [f"  nameserver {n.host}:{n.port} {n.name}".rstrip() for n in pool.nameservers.all()]
        lines += [f"  also-notify {n.host}:{n.port}" for n in pool.also_notifies.all()]
        lines += [f"  ns-record {r.hostname} priority {r.priority}" for r in pool.ns_records.all()]
        return "\n".join(lines)

    def set(self, pool, pool_name, *, description, threshold, notify_source, tsig_key, catalog_zone, **options):
        saved = pools.save_pool(
            pool, name=pool_name,
            description=description if description is not None else getattr(pool, "description", ""),
            threshold_percentage=threshold if threshold is not None else getattr(pool, "threshold_percentage", 100),
            notify_source=notify_source, tsig_key=tsig_key, catalog_zone=catalog_zone)
        return f"pool {saved.name}: {'created' if pool is None else 'changed'}"

    def set_target(self, pool, pool_name, **options):
        target_name, existing = options["name"], pool.targets.filter(name=options["name"]).first()
        kind = options["type"] or (existing.type if existing else None)
        if not kind:
            raise CommandError(f"pool {pool_name}, target {target_name}: option --type is required for a new target "
                               f"({', '.join(sorted(BACKENDS))})")
        spec = {"name": target_name, "type": kind, "options": self.target_options(pool_name, target_name, kind, options)}
        if options["master"]:
            spec["masters"] = [f"{host}:{port}" for host, port in options["master"]]
        elif existing is None:
            spec["masters"] = self.pool_masters(pool, pool_name, target_name)
        for field in ("description", "tsig_key"):
            if options[field] is not None:
                spec[field] = options[field]
        target = pools.put_target(pool, spec)
        if options["nameserver"]:
            host, port = options["nameserver"]
            pools.put_nameserver(pool, {"host": host, "port": port, **named(options["ns_name"])})
        if not options["no_check"]:
            self.probe(pool, target)
        return f"pool {pool_name}: target {target_name} ({kind}) {'changed' if existing else 'added'}" + (
            " without a check of its control channel" if options["no_check"] else "")

    def remove_target(self, pool, pool_name, **options):
        pools.remove_target(pool, options["name"])
        return f"pool {pool_name}: target {options['name']} removed"

    def set_nameserver(self, pool, pool_name, *, address, **options):
        pools.put_nameserver(pool, {"host": address[0], "port": address[1], **named(options["name"])})
        return f"pool {pool_name}: nameserver {address[0]}:{address[1]} set"

    def remove_nameserver(self, pool, pool_name, *, address, **options):
        pools.remove_nameserver(pool, *address)
        return f"pool {pool_name}: nameserver {address[0]}:{address[1]} removed"

    def add_also_notify(self, pool, pool_name, *, address, **options):
        pools.put_also_notify(pool, {"host": address[0], "port": address[1]})
        return f"pool {pool_name}: also-notify {address[0]}:{address[1]} set"

    def remove_also_notify(self, pool, pool_name, *, address, **options):
        pools.remove_also_notify(pool, *address)
        return f"pool {pool_name}: also-notify {address[0]}:{address[1]} removed"

    def set_ns_record(self, pool, pool_name, *, hostname, priority, **options):
        record = pools.put_ns_record(pool, {"hostname": hostname, "priority": priority})
        return f"pool {pool_name}: NS record {record.hostname} set"

    def remove_ns_record(self, pool, pool_name, *, hostname, **options):
        pools.remove_ns_record(pool, hostname)
        return f"pool {pool_name}: NS record {hostname} removed"

    # -- helpers ---------------------------------------------------------
    @staticmethod
    def target_options(pool_name, target_name, kind, options) -> dict:
        """The backend options given as flags; a flag of another backend is an error naming it."""
        where = f"pool {pool_name}, target {target_name}"
        known = backend_options().get(kind, {})
        given = {}
        for key, value in options.items():
            if value is None or not key.startswith(("opt_", "file_")):
                continue
            option = key.split("_", 1)[1]
            given_flag = flag(option) + ("-file" if key.startswith("file_") else "")
            if option not in known and kind in BACKENDS:
                takes = " ".join(flag(o) for o in known)
                raise CommandError(f"{where}: option {given_flag} is not a {kind} option ({kind} takes {takes})")
            if key.startswith("file_"):
                value = read_secret(value, where, flag(option) + "-file")
            given[option] = value
        if options.get("rndc_key_file"):
            if kind != "bind9":
                raise CommandError(f"{where}: option --rndc-key-file is for bind9 targets, not {kind}")
            match = KEY_RE.search(read_secret(options["rndc_key_file"], where, "--rndc-key-file"))
            if not match:
                raise CommandError(f'{where}: option --rndc-key-file: {options["rndc_key_file"]} holds no '
                                   'key "NAME" { algorithm ...; secret "..."; }')
            given.update(rndc_key_name=match["name"], rndc_key_algorithm=match["alg"], rndc_key_secret=match["secret"])
        return given

    @staticmethod
    def pool_masters(pool, pool_name, target_name) -> list[str]:
        masters = {tuple(t.masters) for t in pool.targets.all() if t.masters}
        if len(masters) != 1:
            reason = "its targets name different ones" if masters else "it has no target to copy them from"
            raise CommandError(f"pool {pool_name}, target {target_name}: option --master HOST:PORT (MiniDNS's "
                               f"address) is required: {reason}")
        return list(masters.pop())

    @staticmethod
    def probe(pool, target) -> None:
        """Ask the target's control channel (its own, even in a catalog pool); a PowerDNS target of a
        catalog pool gets the catalog's Consumer zone now, as that is how it learns the zones."""
        options = pools.target_options(target, pool)
        catalog = options.pop("catalog", None)
        backend = get_backend(target.type, target.name, options, target.master_addresses())
        backend.check()
        if catalog and hasattr(backend, "create_consumer"):
            backend.create_consumer(catalog["zone"])


def named(name: str | None) -> dict:
    """A nameserver's public name only when one was given: otherwise the stored one stays."""
    return {} if name is None else {"name": name}


def read_secret(path: str, where: str, option: str) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise CommandError(f"{where}: option {option}: cannot read {path}: {os.strerror(exc.errno or 0)}") from None
    if not text:
        raise CommandError(f"{where}: option {option}: {path} is empty")
    return text
