"""`manage.py producer`: one exists producer (join the tooz group, sweep this member's shards)."""
import signal
import threading

from django.core.management.base import BaseCommand

from workers.coordination import stop_coordinator
from workers.producer import Producer


class Command(BaseCommand):
    help = "Emit dns.zone.exists for the live zones of this member's shards every EXISTS_INTERVAL seconds."

    def handle(self, *args, **options):
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        try:
            Producer.from_settings().run(stopping)
        finally:
            stop_coordinator()
