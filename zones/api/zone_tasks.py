"""Designate's zone import and export tasks. Thin: the shapes here, the work in zones.imports.

POST /v2/zones/tasks/imports takes the zone file as `text/dns` (or, as designateclient sends it with
--attributes, JSON {"zonefile": ..., "attributes": {"pool_id": ...}}) and answers 202 with a PENDING
task; `?dry_run=true` answers 202 with a PENDING dry-run task, which the worker ends COMPLETE or ERROR
with its `plan` and which writes nothing else (a big file's check takes longer than a request may).
POST /v2/zones/{id}/tasks/export answers 202 with a PENDING export; GET .../exports/{id}/export is
the file, as `text/dns`, once the export is COMPLETE.
"""
import json

import django_filters as filters
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, parsers, renderers, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from zones import imports
from zones.models import ZoneExport, ZoneImport

from .auth import API_PERMISSIONS, acting_project, actor_of, is_admin, project_scope
from .errors import ResourceNotFound
from .filters import QueryParamsMixin, WildcardFilter
from .pagination import paginated
from .parsers import JSONParser
from .serializers import StrictSerializer, StrictString
from .views import ListMixin, _get, visible_zone

ZONE_FILE = "text/dns"
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


class ImportNotFound(ResourceNotFound):
    error_type = "zone_import_not_found"


class ExportNotFound(ResourceNotFound):
    error_type = "zone_export_not_found"


class ExportNotReady(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    error_type = "zone_export_not_ready"
    default_detail = "The export is not COMPLETE: it has no file."


class ZoneFileParser(parsers.BaseParser):
    """A `text/dns` body: the zone file, as text (UTF-8)."""

    media_type = ZONE_FILE

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return stream.read().decode("utf-8") if stream is not None else ""
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"The zone file is not UTF-8 text: {exc.reason} at byte {exc.start}.") from None


class ZoneFileRenderer(renderers.BaseRenderer):
    """`text/dns` for the export's file; an error body is the API's JSON."""

    media_type = ZONE_FILE
    format = "dns"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data.encode() if isinstance(data, str) else json.dumps(data).encode()


# --- shapes --------------------------------------------------------------------------------------


class TaskSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField(help_text="PENDING, COMPLETE or ERROR.")
    message = serializers.SerializerMethodField()
    zone_id = serializers.UUIDField(allow_null=True)
    project_id = serializers.CharField()
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(allow_null=True)

    def get_message(self, task) -> str | None:
        return task.message or None


class ImportPlanSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    zone = serializers.DictField(help_text="The zone's name, email and TTL, from the SOA.")
    recordsets = serializers.IntegerField(help_text="Recordsets the import would create.")
    records = serializers.IntegerField(help_text="Records in them.")
    ignored = serializers.ListField(child=serializers.CharField(), help_text="Lines set aside: the SOA, apex NS.")
    more_ignored = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField(), help_text="{line, field, message} each.")
    more_errors = serializers.IntegerField()


class ZoneImportSerializer(TaskSerializer):
    """Designate's import task; a dry run's also says `dry_run` and, once it ended, its `plan`."""

    links = serializers.SerializerMethodField()
    dry_run = serializers.BooleanField(required=False, help_text="Only on a dry run's task: true.")
    plan = ImportPlanSerializer(required=False, allow_null=True,
                                help_text="Only on a dry run's task: what the import would do (null while PENDING).")

    def to_representation(self, task):
        data = super().to_representation(task)
        if not task.dry_run:  # Designate's shape, unchanged
            del data["dry_run"], data["plan"]
        return data

    def get_links(self, task) -> dict:
        request = self.context.get("request")
        links = {"self": reverse("api:zone-import-detail", kwargs={"import_id": task.id}, request=request)}
        if task.zone_id:
            links["href"] = reverse("api:zone-detail", kwargs={"zone_id": task.zone_id}, request=request)
        return links


class ZoneExportSerializer(TaskSerializer):
    location = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    def get_location(self, task) -> str | None:
        if task.status != ZoneExport.Status.COMPLETE:
            return None
        return f"designate://v2/zones/tasks/exports/{task.id}/export"

    def get_links(self, task) -> dict:
        request = self.context.get("request")
        return {"self": reverse("api:zone-export-detail", kwargs={"export_id": task.id}, request=request),
                "export": reverse("api:zone-export-file", kwargs={"export_id": task.id}, request=request)}


class ImportAttributes(StrictSerializer):
    pool_id = StrictString(required=False, help_text="A pool the project may use (as for a zone create).")


class ZoneImportInput(StrictSerializer):
    """designateclient's JSON form (`openstack zone import create --attributes pool_id:...`)."""

    zonefile = StrictString(trim_whitespace=False)
    attributes = ImportAttributes(required=False)


class ImportFilter(filters.FilterSet):
    status = filters.CharFilter(lookup_expr="iexact")
    zone_id = filters.UUIDFilter()
    message = WildcardFilter()

    class Meta:
        model = ZoneImport
        fields = ["status", "zone_id", "message"]


class ExportFilter(filters.FilterSet):
    status = filters.CharFilter(lookup_expr="iexact")
    zone_id = filters.UUIDFilter()

    class Meta:
        model = ZoneExport
        fields = ["status", "zone_id"]


SORT_KEYS = ["created_at", "id", "updated_at", "status"]


def _dry_run(request) -> bool:
    value = request.query_params.get("dry_run", "").strip().lower()
    if value not in TRUE + FALSE:
        raise exceptions.ValidationError({"dry_run": ["dry_run must be true or false."]})
    return value in TRUE


# --- views ---------------------------------------------------------------------------------------


class ZoneImportViewSet(ListMixin, viewsets.GenericViewSet):
    serializer_class = ZoneImportSerializer
    filterset_class = ImportFilter
    pagination_class = paginated("imports")
    sort_keys = SORT_KEYS
    permission_classes = API_PERMISSIONS
    parser_classes = [ZoneFileParser, JSONParser]

    def accepted_query_params(self):
        return super().accepted_query_params() | ({"dry_run"} if self.action == "create" else set())

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ZoneImport.objects.none()
        return imports.imports_for(project_scope(self.request)).order_by("created_at", "id")

    def get_object(self):
        return _get(self.get_queryset(), self.kwargs["import_id"], ImportNotFound)

    def retrieve(self, request, import_id):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        request={ZONE_FILE: OpenApiTypes.STR, "application/json": ZoneImportInput},
        parameters=[OpenApiParameter("dry_run", OpenApiTypes.BOOL, description="Only check the file: the task "
                                                                                "ends with its plan, writes nothing.")],
        responses={202: ZoneImportSerializer})
    def create(self, request):
        if isinstance(request.data, str):
            zonefile, pool_id = request.data, None
        else:
            serializer = ZoneImportInput(data=request.data)
            serializer.is_valid(raise_exception=True)
            zonefile = serializer.validated_data["zonefile"]
            pool_id = serializer.validated_data.get("attributes", {}).get("pool_id")
        project, admin = acting_project(request), is_admin(request)
        task = imports.submit_import(project_id=project, zonefile=zonefile, pool_id=pool_id, admin=admin,
                                     actor=actor_of(request), dry_run=_dry_run(request))
        return Response(self.get_serializer(task).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, import_id):
        imports.delete_import(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ZoneExportViewSet(ListMixin, viewsets.GenericViewSet):
    serializer_class = ZoneExportSerializer
    filterset_class = ExportFilter
    pagination_class = paginated("exports")
    sort_keys = SORT_KEYS
    permission_classes = API_PERMISSIONS

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ZoneExport.objects.none()
        return imports.exports_for(project_scope(self.request)).order_by("created_at", "id")

    def get_object(self):
        return _get(self.get_queryset(), self.kwargs["export_id"], ExportNotFound)

    def retrieve(self, request, export_id):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=None, responses={202: ZoneExportSerializer})
    def create(self, request, zone_id):
        task = imports.submit_export(visible_zone(request, zone_id))
        return Response(self.get_serializer(task).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, export_id):
        imports.delete_export(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ZoneExportFileView(QueryParamsMixin, APIView):
    """The export's zone file (`text/dns`)."""

    permission_classes = API_PERMISSIONS
    renderer_classes = [ZoneFileRenderer, renderers.JSONRenderer]

    @extend_schema(responses={(200, ZONE_FILE): OpenApiResponse(OpenApiTypes.STR, description="The zone file.")})
    def get(self, request, export_id):
        task = _get(imports.exports_for(project_scope(request)), export_id, ExportNotFound)
        text = imports.export_file(task)
        if text is None:
            raise ExportNotReady()
        return HttpResponse(text, content_type=f"{ZONE_FILE}; charset=utf-8")
