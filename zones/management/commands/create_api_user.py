"""Create or update an API user with its project and role; print a token for it.

    manage.py create_api_user alice --project acme                 # a member of project acme
    manage.py create_api_user audit --project acme --role reader   # reads acme's zones only
    manage.py create_api_user ops --project ops --admin            # an admin (--role admin)

Running it again is safe: the user is kept, the project and role are set as given.
"""
from django.core.management.base import BaseCommand

from zones import accounts


class Command(BaseCommand):
    help = "Create (or update) an API user with a project and a role, and print a token for it."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--project", required=True, help="The project (tenant) the user acts for.")
        parser.add_argument("--role", choices=accounts.Role.values, default=accounts.Role.MEMBER)
        parser.add_argument("--admin", action="store_true", help="Same as --role admin.")

    def handle(self, *args, username, project, role, admin, **options):
        role = accounts.Role.ADMIN if admin else role
        user = accounts.api_user(username, project, role)
        key = accounts.issue_token(user)
        self.stderr.write(f"user {username}: project {project}, role {role}")
        self.stdout.write(f"token: {key}")
