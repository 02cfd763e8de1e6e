"""Run MiniDNS, the primary every target transfers zones from, until SIGTERM or SIGINT."""
import asyncio
import gc
import logging
import os
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from workers.minidns import DatabaseZoneSource, MiniDNS, serve

log = logging.getLogger("workers.minidns")


class Command(BaseCommand):
    help = "Serve every live zone over UDP and TCP (SOA, queries, AXFR, IXFR) from the database."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("MINIDNS_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("MINIDNS_PORT", 5354)))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("MINIDNS_WORKERS", 16)),
                            help="threads answering queries (each may hold a database connection)")

    def handle(self, *args, host, port, workers, **options):
        # A thread answering an SOA gets the GIL within ~1 ms of a thread rendering a big zone (not 5), and
        # full garbage collections, which hold it throughout, skip what was loaded at start (never garbage).
        sys.setswitchinterval(0.001)
        gc.freeze()
        asyncio.run(self._serve(host, port, workers))

    async def _serve(self, host, port, workers):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(bound_host, bound_port):
            log.info("MiniDNS listening on %s:%s (udp+tcp)", bound_host, bound_port)

        source = DatabaseZoneSource(listen=True)  # zone lookups cached, kept current by PostgreSQL's notices
        minidns = MiniDNS(source, keys=source, cache_bytes=settings.DNSCTL["MINIDNS_CACHE_BYTES"])
        source.watch(minidns.changed)
        try:
            await serve(host, port, minidns, ready=ready, stop=stop, workers=workers)
        finally:
            source.close()
        log.info("MiniDNS stopped")
