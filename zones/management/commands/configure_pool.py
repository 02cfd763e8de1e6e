"""Create or update a pool of BIND9 targets from the command line (used by docker-compose)."""
import re
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from zones import services
from zones.models import Pool

KEY_RE = re.compile(r'key\s+"?(?P<name>[^"\s{]+)"?\s*{[^}]*algorithm\s+(?P<alg>[\w-]+);[^}]*secret\s+"(?P<secret>[^"]+)"')


class Command(BaseCommand):
    help = ("Create or update POOL with BIND9 targets. Each --bind9 is NAME=IP:DNS_PORT:RNDC_PORT; the target "
            "transfers from --minidns and is polled on IP:DNS_PORT.")

    def add_arguments(self, parser):
        parser.add_argument("pool")
        parser.add_argument("--bind9", action="append", default=[], metavar="NAME=IP:DNS_PORT:RNDC_PORT")
        parser.add_argument("--minidns", required=True, metavar="IP:PORT")
        parser.add_argument("--rndc-key-file", required=True, help="a key file as written by tsig-keygen")
        parser.add_argument("--ns-record", action="append", default=[], metavar="HOSTNAME.")
        parser.add_argument("--threshold", type=int, default=100)

    def handle(self, *args, pool, bind9, minidns, rndc_key_file, ns_record, threshold, **options):
        match = KEY_RE.search(Path(rndc_key_file).read_text())
        if not match:
            raise CommandError(f"{rndc_key_file} holds no key {{ algorithm ...; secret \"...\"; }}")
        targets, nameservers = [], []
        for spec in bind9:
            try:
                name, address = spec.split("=", 1)
                ip, dns_port, rndc_port = address.rsplit(":", 2)
                dns_port, rndc_port = int(dns_port), int(rndc_port)
            except ValueError:
                raise CommandError(f"--bind9 {spec!r} is not NAME=IP:DNS_PORT:RNDC_PORT") from None
            targets.append({"name": name, "type": "bind9", "masters": [minidns], "options": {
                "host": ip, "port": dns_port, "rndc_host": ip, "rndc_port": rndc_port,
                "rndc_key_name": match["name"], "rndc_key_algorithm": match["alg"],
                "rndc_key_secret": match["secret"]}})
            nameservers.append({"host": ip, "port": dns_port})
        try:
            saved = services.save_pool(
                Pool.objects.filter(name=pool).first(), name=pool, threshold_percentage=threshold,
                ns_records=[{"hostname": h, "priority": i + 1} for i, h in enumerate(ns_record)],
                targets=targets, nameservers=nameservers)
        except ValidationError as exc:
            raise CommandError(f"pool {pool}: {exc.message_dict}") from None
        self.stdout.write(f"pool {saved.name}: {len(targets)} targets, {len(nameservers)} nameservers")
