"""API users: who acts for which project in which role, and the tokens they call the API with.

The one place that makes users and tokens, so the management commands, the demo, the tests and
the benchmarks all get them the same way.
"""
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from .models import ProjectMembership

Role = ProjectMembership.Role


@transaction.atomic
def api_user(username: str, project_id: str, role: str = Role.MEMBER):
    """Create the user (no password: it calls the API with tokens) or update its project and role."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(Role.values)}")
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save()
    ProjectMembership.objects.update_or_create(user=user, defaults={"project_id": project_id, "role": role})
    return user


def issue_token(user) -> str:
    """A token for the user; returns the key."""
    return Token.objects.get_or_create(user=user)[0].key
