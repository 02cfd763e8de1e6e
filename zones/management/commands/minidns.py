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
from workers.transfers import Recorder

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
        recorder = Recorder(ttl=settings.DNSCTL["MINIDNS_TRANSFER_TTL"]).start()
        try:
            asyncio.run(self._serve(host, port, workers, recorder))
        finally:
            recorder.stop()

    async def _serve(self, host, port, workers, recorder):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(bound_host, bound_port):
            log.info("MiniDNS listening on %s:%s (udp+tcp)", bound_host, bound_port)

        c = settings.DNSCTL
        source = DatabaseZoneSource(listen=True)  # zone lookups cached, kept current by PostgreSQL's notices
        minidns = MiniDNS(source, keys=source, cache_bytes=c["MINIDNS_CACHE_BYTES"], transfers=recorder)
        source.watch(minidns.changed)
        try:
            await serve(host, port, minidns, ready=ready, stop=stop, workers=workers,
                        max_tcp=c["MINIDNS_TCP_MAX_CONNECTIONS"], max_tcp_per_address=c["MINIDNS_TCP_MAX_PER_ADDRESS"],
                        idle_timeout=c["MINIDNS_TCP_IDLE_TIMEOUT"], write_timeout=c["MINIDNS_TCP_WRITE_TIMEOUT"],
                        udp_buffer=c["MINIDNS_UDP_RCVBUF"])
        finally:
            source.close()
        log.info("MiniDNS stopped")
