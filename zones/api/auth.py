"""Who is calling: token authentication (Keystone's header or DRF's) and the caller's project.

keystoneauth's token_endpoint plugin (used by python-designateclient) sends `X-Auth-Token: <key>`;
`Authorization: Token <key>` works too. A user acts for `user.membership.project_id`; staff users
are admins and see every project (an admin may narrow to one with `X-Auth-Sudo-Project-ID`).
"""
from django.core.exceptions import ObjectDoesNotExist
from rest_framework import permissions
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import ValidationError

SUDO_HEADER = "X-Auth-Sudo-Project-ID"


class XAuthTokenAuthentication(TokenAuthentication):
    """`X-Auth-Token: <key>` first, then DRF's `Authorization: Token <key>`."""

    def authenticate(self, request):
        key = request.META.get("HTTP_X_AUTH_TOKEN", "").strip()
        if key:
            return self.authenticate_credentials(key)
        return super().authenticate(request)


def membership_project(user) -> str | None:
    try:
        return user.membership.project_id
    except (ObjectDoesNotExist, AttributeError):
        return None


def is_admin(request) -> bool:
    return bool(request.user and request.user.is_authenticated and request.user.is_staff)


def project_scope(request) -> str | None:
    """The project whose objects the caller sees; None means every project (an admin)."""
    if is_admin(request):
        return request.headers.get(SUDO_HEADER) or None
    return membership_project(request.user)


def acting_project(request) -> str:
    """The project a new zone belongs to."""
    project = project_scope(request) or membership_project(request.user)
    if not project:
        raise ValidationError({"project_id": [f"An admin without a project must send {SUDO_HEADER}."]})
    return project


class IsProjectMember(permissions.BasePermission):
    """Authenticated, and either an admin or a member of a project."""

    message = "The user belongs to no project."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return user.is_staff or membership_project(user) is not None


class IsAdminOrReadOnly(permissions.BasePermission):
    message = "Only admins may change pools."

    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or is_admin(request)


class IsAdmin(permissions.BasePermission):
    message = "Only admins may do this."

    def has_permission(self, request, view):
        return is_admin(request)


API_PERMISSIONS = [permissions.IsAuthenticated, IsProjectMember]
