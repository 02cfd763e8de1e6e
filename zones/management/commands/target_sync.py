"""Replay everything that happened since a timestamp onto one target, e.g. a rebuilt server:

    manage.py target_sync --pool default --target bind-1 --since 1970-01-01T00:00:00Z

Answers at once with how many zones will be replayed; a Celery worker does the work.
"""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from zones.services import sweeps


class Command(BaseCommand):
    help = "Replay every zone create/update/delete since --since onto one target of a pool (in Celery)."

    def add_arguments(self, parser):
        parser.add_argument("--pool", required=True, help="The pool's name or id.")
        parser.add_argument("--target", required=True, help="The target's name or id.")
        parser.add_argument("--since", required=True, help="ISO 8601 timestamp; naive means UTC.")

    def handle(self, *args, pool, target, since, **options):
        try:
            self.stdout.write(sweeps.start_target_sync(pool, target, since))
        except ValidationError as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()))
