"""Create or update an API user, its project membership and its token; print the token.

    manage.py create_api_user alice --project acme           # a project member
    manage.py create_api_user ops --project ops --admin      # an admin: sees every project

Running it again is safe: the user and token are kept, the project and admin flag are set as given.
"""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from zones.models import ProjectMembership


class Command(BaseCommand):
    help = "Create (or update) an API user with a project membership and a token, and print the token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--project", required=True, help="The project (tenant) the user acts for.")
        parser.add_argument("--admin", action="store_true", help="Make the user an admin (staff): every project.")

    @transaction.atomic
    def handle(self, *args, username, project, admin, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
        user.is_staff = admin
        user.save()
        ProjectMembership.objects.update_or_create(user=user, defaults={"project_id": project})
        token, _ = Token.objects.get_or_create(user=user)
        verb = "created" if created else "updated"
        self.stderr.write(f"{verb} user {username} in project {project}{' (admin)' if admin else ''}")
        self.stdout.write(f"token: {token.key}")
