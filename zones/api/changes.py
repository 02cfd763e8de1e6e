"""The audit trail (not in Designate): every committed change of a zone, from the change journal.

GET /v2/zones/{zone_id}/changes lists one zone's changes to whoever may see the zone; admins list
every project's at GET /v2/changes (filters project_id, zone_id, actor, action, since, until). Each
change says who made it (the token's id only to admins), when, its serial, the zone's fields and the
recordsets before -> after. Changes that move no serial (a description alone) are not recorded.
"""
from datetime import timezone as dt_timezone

import django_filters as filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from zones import journal
from zones.models import ZoneChange

from .auth import API_PERMISSIONS, IsAdmin, is_admin
from .pagination import paginated
from .views import ListMixin, visible_zone


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time (naive means UTC) taken to UTC, so no offset PostgreSQL refuses reaches it."""

    def to_python(self, value):
        value = super().to_python(value)
        try:
            return value and value.astimezone(dt_timezone.utc)
        except OverflowError:
            raise forms.ValidationError("The time is out of range.", code="invalid") from None


class TimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class ChangeFilter(filters.FilterSet):
    action = filters.ChoiceFilter(choices=[(a, a) for a in journal.ACTIONS])
    actor = filters.CharFilter(field_name="actor_name", help_text='The username that made the change, or "system".')
    since = TimeFilter(field_name="created_at", lookup_expr="gte", help_text="Changes at or after this ISO 8601 time.")
    until = TimeFilter(field_name="created_at", lookup_expr="lte", help_text="Changes at or before this ISO 8601 time.")

    class Meta:
        model = ZoneChange
        fields = ["action", "actor", "since", "until"]


class AllChangesFilter(ChangeFilter):
    project_id = filters.CharFilter()
    zone_id = filters.UUIDFilter()

    class Meta:
        model = ZoneChange
        fields = ["project_id", "zone_id", "action", "actor", "since", "until"]


class ChangeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    zone_id = serializers.UUIDField()
    zone_name = serializers.CharField()
    project_id = serializers.CharField()
    action = serializers.CharField(help_text=", ".join(journal.ACTIONS))
    recordset_id = serializers.UUIDField(allow_null=True)
    serial = serializers.IntegerField(help_text="The zone's serial after the change.")
    previous_serial = serializers.IntegerField(source="serial_before", allow_null=True)
    created_at = serializers.DateTimeField()
    actor = serializers.SerializerMethodField()
    zone = serializers.SerializerMethodField()
    recordsets = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_actor(self, change) -> dict:
        """The user (or "system") and how the change came (api, admin, system); the token only to admins."""
        actor = {"user": change.actor_name, "via": change.actor_via}
        if self.context.get("admin"):
            actor["token_id"] = str(change.actor_token_id) if change.actor_token_id else None
        return actor

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_zone(self, change) -> dict:
        """The zone's fields the change set: {"before": {...}, "after": {...}}."""
        return {"before": change.zone_before, "after": change.zone_after}

    @extend_schema_field({"type": "array", "items": {"type": "object"}})
    def get_recordsets(self, change) -> list[dict]:
        """[{"name", "type", "before": {"ttl", "records"} or null, "after": ...}], the SOA left out."""
        return journal.recordset_changes(change)


class ChangeListMixin(ListMixin):
    serializer_class = ChangeSerializer
    pagination_class = paginated("changes")
    sort_keys = ["created_at", "id", "serial"]

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "admin": is_admin(self.request)}


class ZoneChangeViewSet(ChangeListMixin, viewsets.GenericViewSet):
    """One zone's changes, for whoever may see the zone."""

    filterset_class = ChangeFilter
    permission_classes = API_PERMISSIONS

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ZoneChange.objects.none()
        return journal.changes_for(visible_zone(self.request, self.kwargs["zone_id"]).id).order_by("created_at", "id")


class ChangeViewSet(ChangeListMixin, viewsets.GenericViewSet):
    """Admins: every project's changes, live and deleted zones alike."""

    filterset_class = AllChangesFilter
    permission_classes = API_PERMISSIONS + [IsAdmin]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ZoneChange.objects.none()
        return journal.changes_for().order_by("created_at", "id")
