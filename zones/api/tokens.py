"""/v2/tokens: the caller's API tokens (Designate leaves tokens to Keystone; this is dnsctl's own).

POST makes one and answers its key, that once: the database keeps only a digest. Everything else
shows a token by its id, description, owner and times, never its key or digest. Every caller
manages its own tokens, readers too; an admin with X-Auth-All-Projects sees and revokes everyone's
(with X-Auth-Sudo-Project-ID, that project's users'). Another user's token is a 404, as is an
expired one (expired tokens are dropped when their owner makes a new one).
"""
from django.conf import settings
from django.db.models import F
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse

from zones import accounts

from .auth import IsProjectMember, all_projects, membership_project, sudo_project
from .errors import ResourceNotFound
from .pagination import paginated
from .serializers import StrictInteger, StrictSerializer, StrictString
from .views import ListMixin, _get, _input



class TokenNotFound(ResourceNotFound):
    error_type = "token_not_found"


class TokenCreateSerializer(StrictSerializer):
    description = StrictString(required=False, allow_blank=True, allow_null=True, max_length=accounts.DESCRIPTION_MAX,
                             trim_whitespace=False)
    expires_in = StrictInteger(required=False, allow_null=True,
                             help_text="Seconds until the token expires (default API_TOKEN_TTL).")

    def validate_description(self, value):
        return value or ""

    def validate_expires_in(self, value):
        if value is None:
            return None
        most = settings.API_TOKEN_MAX_TTL
        if most and not 1 <= value <= most:
            raise serializers.ValidationError(f"Must be between 1 and {most} seconds.")
        if not most and not 0 <= value <= accounts.LONGEST_TTL:
            raise serializers.ValidationError(f"Must be between 0 (never expires) and {accounts.LONGEST_TTL} seconds.")
        return value


class TokenSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    description = serializers.CharField()
    user = serializers.CharField(source="user.get_username", help_text="The owner's username.")
    project_id = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(source="created")
    expires_at = serializers.DateTimeField(source="expiry", allow_null=True, help_text="null: never expires.")
    links = serializers.SerializerMethodField()

    def get_project_id(self, obj) -> str | None:
        return membership_project(obj.user)

    def get_links(self, obj) -> dict[str, str]:
        return {"self": reverse("api:token-detail", kwargs={"token_id": obj.id}, request=self.context["request"])}


class NewTokenSerializer(TokenSerializer):
    key = serializers.CharField(help_text="The key, for X-Auth-Token: shown in this answer only.")


def visible_tokens(request):
    """The caller's live tokens; an admin's with X-Auth-All-Projects everyone's, with
    X-Auth-Sudo-Project-ID that project's users' (either header from anyone else is a 403)."""
    sudo, everyone = sudo_project(request), all_projects(request)
    tokens = accounts.live_tokens().select_related("user__membership").annotate(created_at=F("created"))
    if sudo:
        return tokens.filter(user__membership__project_id=sudo)
    return tokens if everyone else tokens.filter(user=request.user)


class TokenViewSet(ListMixin, viewsets.GenericViewSet):
    serializer_class = TokenSerializer
    pagination_class = paginated("tokens")
    permission_classes = [IsAuthenticated, IsProjectMember]  # readers manage their own tokens too
    lookup_url_kwarg = "token_id"
    sort_keys = {"created_at": "created", "id": "id", "expires_at": "expiry", "description": "description"}

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return accounts.live_tokens().none()
        return visible_tokens(self.request).order_by("created_at", "id")  # created_at: what pagination orders by

    def get_object(self):
        return _get(self.get_queryset(), self.kwargs["token_id"], TokenNotFound)

    def retrieve(self, request, token_id):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=TokenCreateSerializer, responses={201: NewTokenSerializer})
    def create(self, request):
        sudo_project(request), all_projects(request)  # as on every call: either header from a non-admin is a 403
        key = accounts.issue_token(request.user, **_input(TokenCreateSerializer, request))
        token = accounts.find_token(key)
        token.key = key
        return Response(NewTokenSerializer(token, context=self.get_serializer_context()).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, token_id):
        self.get_object().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
