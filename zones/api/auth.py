"""Who is calling: token authentication (Keystone's header or DRF's) and the caller's project.

keystoneauth's token_endpoint plugin (used by python-designateclient) sends `X-Auth-Token: <key>`;
`Authorization: Token <key>` works too; a key is an API token (zones.ApiToken), found by its
digest. A user acts for `user.membership.project_id` in the membership's role, as in Designate:
every caller, admins included, sees its own project; an admin sees every project with
`X-Auth-All-Projects: true` or one other with `X-Auth-Sudo-Project-ID`. Either header from a
non-admin is a 403.
"""
from django.core.exceptions import ObjectDoesNotExist
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied

from zones import accounts, validation
from zones.journal import Actor
from zones.models import ApiToken, ProjectMembership

SUDO_HEADER = "X-Auth-Sudo-Project-ID"
ALL_PROJECTS_HEADER = "X-Auth-All-Projects"


class XAuthTokenAuthentication(BaseAuthentication):
    """`X-Auth-Token: <key>` first, then `Authorization: Token <key>`. An unknown, expired or
    revoked key is a 401; `request.auth` is the ApiToken."""

    keyword = "Token"

    def authenticate(self, request):
        key = request.META.get("HTTP_X_AUTH_TOKEN", "").strip()
        if not key:
            header = get_authorization_header(request).split()
            if not header or header[0].lower() != self.keyword.lower().encode():
                return None  # another scheme (or none): the next authentication class may know it
            if len(header) != 2:
                raise AuthenticationFailed("The Authorization header must be 'Token <key>'.")
            key = header[1].decode("latin-1")
        token = accounts.authenticating_token(key)
        if token is None or not token.user.is_active:
            raise AuthenticationFailed("Invalid token.")
        if token.expired:
            raise AuthenticationFailed("The token has expired.")
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword  # so an unauthenticated call is a 401 (with WWW-Authenticate), not a 403


class XAuthTokenScheme(OpenApiAuthenticationExtension):
    """The schema's security: either header carries the key."""

    target_class = XAuthTokenAuthentication
    name = ["xAuthToken", "tokenAuth"]

    def get_security_requirement(self, auto_schema):
        return [{name: []} for name in self.name]  # one or the other

    def get_security_definition(self, auto_schema):
        return [{"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
                {"type": "apiKey", "in": "header", "name": "Authorization",
                 "description": 'The key after the prefix "Token ".'}]


def membership(user) -> ProjectMembership | None:
    try:
        return user.membership
    except (ObjectDoesNotExist, AttributeError):
        return None


def membership_project(user) -> str | None:
    found = membership(user)
    return found.project_id if found else None


def is_admin(request) -> bool:
    """The API's admin role (the membership's), not Django's staff flag."""
    user = request.user
    found = membership(user) if user and user.is_authenticated else None
    return bool(found and found.role == ProjectMembership.Role.ADMIN)


def all_projects(request) -> bool:
    """`X-Auth-All-Projects: true` (designateclient sends "True"); only admins may send it."""
    value = request.headers.get(ALL_PROJECTS_HEADER, "").strip().lower()
    if value in ("", "false", "0", "no"):
        return False
    if value not in ("true", "1", "yes"):
        raise PermissionDenied(f"{ALL_PROJECTS_HEADER} must be true or false.")
    if not is_admin(request):
        raise PermissionDenied(f"Only admins may send {ALL_PROJECTS_HEADER}.")
    return True


def sudo_project(request) -> str | None:
    value = request.headers.get(SUDO_HEADER, "").strip()
    if value and not is_admin(request):
        raise PermissionDenied(f"Only admins may send {SUDO_HEADER}.")
    return validation.project_id(value, SUDO_HEADER) if value else None


def project_scope(request) -> str | None:
    """The project whose objects the caller sees; None means every project (an admin asking for all)."""
    sudo = sudo_project(request)
    if all_projects(request):
        return sudo
    return sudo or membership_project(request.user)


def actor_of(request) -> Actor:
    """Who makes a change through the API: the user, and the token the call came with (none for a
    session of the browsable API)."""
    token = request.auth if isinstance(request.auth, ApiToken) else None
    return Actor(request.user.pk, request.user.get_username(), str(token.id) if token else None, "api")


def acting_project(request) -> str:
    """The project a new object belongs to: the caller's own, or an admin's sudo project."""
    return sudo_project(request) or membership_project(request.user)


class IsProjectMember(permissions.BasePermission):
    """Authenticated, with a project (and a role in it)."""

    message = "The user belongs to no project."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and membership(user) is not None)


class CanWrite(permissions.BasePermission):
    """Readers only read."""

    message = "The reader role may only read."

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        found = membership(request.user)
        return bool(found and found.role != ProjectMembership.Role.READER)


class IsAdminOrReadOnly(permissions.BasePermission):
    message = "Only admins may change pools."

    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or is_admin(request)


class IsAdmin(permissions.BasePermission):
    message = "Only admins may do this."

    def has_permission(self, request, view):
        return is_admin(request)


API_PERMISSIONS = [permissions.IsAuthenticated, IsProjectMember, CanWrite]
