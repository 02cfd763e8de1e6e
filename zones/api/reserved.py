"""Designate's /v2/tlds and /v2/blacklists: admin-only CRUD of the names zones must sit under and the
patterns tenants' zone names must not match (the rules themselves are in zones.reserved)."""
import django_filters as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response

from zones import reserved
from zones.models import Blacklist, Tld

from .auth import API_PERMISSIONS, IsAdmin
from .errors import ResourceNotFound
from .filters import WildcardFilter
from .pagination import paginated
from .serializers import StrictSerializer, StrictString, _link
from .views import ListMixin, _get, _input


class TldNotFound(ResourceNotFound):
    error_type = "tld_not_found"


class BlacklistNotFound(ResourceNotFound):
    error_type = "blacklist_not_found"


READ_ONLY = ("id", "created_at", "updated_at", "links")


class TldInputSerializer(StrictSerializer):
    read_only_names = READ_ONLY
    name = StrictString(trim_whitespace=False, help_text="As Designate: no trailing dot, e.g. com or co.uk.")
    description = StrictString(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)


class BlacklistInputSerializer(StrictSerializer):
    read_only_names = READ_ONLY
    pattern = StrictString(trim_whitespace=False, help_text="A regular expression; zone names it matches "
                                                          "(re.search) are refused to non-admins.")
    description = StrictString(required=False, allow_blank=True, allow_null=True, trim_whitespace=False)


class TldSerializer(serializers.ModelSerializer):
    links = serializers.SerializerMethodField()

    class Meta:
        model = Tld
        fields = ["id", "name", "description", "created_at", "updated_at", "links"]
        read_only_fields = fields

    def get_links(self, obj) -> dict[str, str]:
        return _link(self, "tld-detail", tld_id=obj.id)


class BlacklistSerializer(serializers.ModelSerializer):
    links = serializers.SerializerMethodField()

    class Meta:
        model = Blacklist
        fields = ["id", "pattern", "description", "created_at", "updated_at", "links"]
        read_only_fields = fields

    def get_links(self, obj) -> dict[str, str]:
        return _link(self, "blacklist-detail", blacklist_id=obj.id)


class TldFilter(filters.FilterSet):
    name = WildcardFilter(help_text="TLD name, e.g. com (`*` is a wildcard).")

    class Meta:
        model = Tld
        fields = ["name"]


class BlacklistFilter(filters.FilterSet):
    pattern = WildcardFilter(help_text="The pattern as stored (`*` is a wildcard, as in Designate).")

    class Meta:
        model = Blacklist
        fields = ["pattern"]


class AdminCrudViewSet(ListMixin, viewsets.GenericViewSet):
    """List, get, create (201), PATCH (200) and DELETE (204), for admins only (everyone else: 403)."""

    permission_classes = API_PERMISSIONS + [IsAdmin]
    input_class: type[serializers.Serializer]
    not_found: type[ResourceNotFound]
    save: staticmethod  # zones.reserved's save function: save(obj or None, **fields)

    def get_queryset(self):
        return self.serializer_class.Meta.model.objects.order_by("created_at", "id")

    def get_object(self):
        return _get(self.get_queryset(), self.kwargs[self.lookup_url_kwarg], self.not_found)

    def retrieve(self, request, **kwargs):
        return Response(self.get_serializer(self.get_object()).data)

    def create(self, request):
        body = self.get_serializer(self.save(None, **_input(self.input_class, request))).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["links"]["self"]})

    def partial_update(self, request, **kwargs):
        obj = self.get_object()
        return Response(self.get_serializer(self.save(obj, **_input(self.input_class, request, partial=True))).data)

    def destroy(self, request, **kwargs):
        self.get_object().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(create=extend_schema(request=TldInputSerializer, responses={201: TldSerializer}),
                    partial_update=extend_schema(request=TldInputSerializer, responses={200: TldSerializer}),
                    destroy=extend_schema(request=None, responses={204: None}))
class TldViewSet(AdminCrudViewSet):
    """Once any TLD exists, every zone must sit strictly below one (admins' zones too, as in Designate)."""

    serializer_class = TldSerializer
    input_class = TldInputSerializer
    filterset_class = TldFilter
    pagination_class = paginated("tlds")
    lookup_url_kwarg = "tld_id"
    not_found = TldNotFound
    save = staticmethod(reserved.save_tld)
    sort_keys = ("created_at", "id", "updated_at", "name")  # Designate's


@extend_schema_view(create=extend_schema(request=BlacklistInputSerializer, responses={201: BlacklistSerializer}),
                    partial_update=extend_schema(request=BlacklistInputSerializer,
                                                 responses={200: BlacklistSerializer}),
                    destroy=extend_schema(request=None, responses={204: None}))
class BlacklistViewSet(AdminCrudViewSet):
    """Zone names a pattern matches are refused to everyone but admins."""

    serializer_class = BlacklistSerializer
    input_class = BlacklistInputSerializer
    filterset_class = BlacklistFilter
    pagination_class = paginated("blacklists")
    lookup_url_kwarg = "blacklist_id"
    not_found = BlacklistNotFound
    save = staticmethod(reserved.save_blacklist)
    sort_keys = ("created_at", "id", "updated_at", "pattern")  # Designate's
