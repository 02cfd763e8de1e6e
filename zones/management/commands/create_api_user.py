"""Create or update an API user with its project and role; make a new token for it and print it.

    manage.py create_api_user alice --project acme                 # a member of project acme
    manage.py create_api_user audit --project acme --role reader   # reads acme's zones only
    manage.py create_api_user ops --project ops --admin            # an admin (--role admin)

Running it again is safe: the user is kept, the project and role are set as given. Every run
prints a new token (only a digest is stored, so an earlier key cannot be shown again); earlier
tokens keep working until they expire or are revoked (DELETE /v2/tokens/{id}, or the admin).
"""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from zones import accounts


class Command(BaseCommand):
    help = "Create (or update) an API user with a project and a role, and print a new token for it."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--project", required=True, help="The project (tenant) the user acts for.")
        parser.add_argument("--role", choices=accounts.Role.values, default=accounts.Role.MEMBER)
        parser.add_argument("--admin", action="store_true", help="Same as --role admin.")
        parser.add_argument("--description", default="made by create_api_user", help="The token's description.")
        parser.add_argument("--expires-in", type=int, default=None, metavar="SECONDS",
                            help="The token's lifetime (default API_TOKEN_TTL; 0 = never expires).")

    def handle(self, *args, username, project, role, admin, description, expires_in, **options):
        role = accounts.Role.ADMIN if admin else role
        try:
            with transaction.atomic():  # a refused token leaves the user as it was
                user = accounts.api_user(username, project, role)
                key = accounts.issue_token(user, description=description, expires_in=expires_in)
        except ValidationError as exc:  # a bad --description or --expires-in, or too many tokens
            problems = (f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            raise CommandError("; ".join(problems)) from None
        self.stderr.write(f"user {username}: project {project}, role {role}")
        self.stdout.write(f"token: {key}")
