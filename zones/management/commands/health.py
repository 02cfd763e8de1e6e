"""`manage.py health [--only COMPONENT ...]`: the /health check from a shell or a container's
healthcheck. Prints the answer as JSON; exits 0 when every required component asked about is up."""
import json
import os
import sys

from django.core.management.base import BaseCommand

from dnsctl import health


class Command(BaseCommand):
    help = "Check dnsctl's components as GET /health does; exit status 1 if a required one is down."

    def add_arguments(self, parser):
        parser.add_argument("--only", nargs="+", choices=list(health.PROBES), metavar="COMPONENT",
                            help=f"check only these ({', '.join(health.PROBES)})")

    def handle(self, *args, only=None, **options):
        healthy, answer = health.check(only)
        self.stdout.write(json.dumps(answer, indent=2))
        sys.stdout.flush()
        os._exit(0 if healthy else 1)  # now: a probe still hung (a server that never answers) is not waited for
