"""Designate v2 endpoints. Thin: check the request's shape, scope to the caller's project, call
zones.services, render. Every change answers 202: the zone goes PENDING until the pool has it."""
import uuid
from contextlib import contextmanager

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from zones.models import Pool, RecordSet, Zone
from zones.services import pools, selectors, sweeps, writes

from .auth import API_PERMISSIONS, IsAdmin, IsAdminOrReadOnly, acting_project, actor_of, is_admin, project_scope
from .errors import PoolNotFound, RecordSetNotFound, ZoneNotFound
from .filters import PoolFilter, QueryParamsMixin, RecordSetFilter, ZoneFilter
from .pagination import paginated
from .serializers import (
    NameserverListSerializer,
    PoolAdminSerializer,
    PoolInputSerializer,
    PoolSerializer,
    RecordSetCreateSerializer,
    RecordSetSerializer,
    RecordSetUpdateSerializer,
    TargetSyncSerializer,
    ZoneCreateSerializer,
    ZoneSerializer,
    ZoneUpdateSerializer,
)


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _get(queryset, object_id, not_found):
    key = _uuid(object_id)
    obj = queryset.filter(id=key).first() if key else None
    if obj is None:
        raise not_found(object_id)
    return obj


def visible_zone(request, zone_id) -> Zone:
    """A live zone of the caller's project (any project for an admin); else 404."""
    return _get(selectors.zones_for(project_scope(request)), zone_id, ZoneNotFound)


@contextmanager
def changing(request, zone_id, recordset_id=None):
    """Around a write of an existing zone: the kwargs that scope it to the caller (the write locks the
    zone with the same query that checks it is the caller's), and its lookups' misses as the API's 404s."""
    scope = project_scope(request)
    if _uuid(zone_id) is None:
        raise ZoneNotFound(zone_id)
    if recordset_id is not None and _uuid(recordset_id) is None:
        raise RecordSetNotFound(recordset_id)
    try:
        yield {"project_id": scope, "actor": actor_of(request)}
    except Zone.DoesNotExist:
        raise ZoneNotFound(zone_id) from None
    except RecordSet.DoesNotExist:
        raise RecordSetNotFound(recordset_id) from None


def _input(serializer_class, request, partial=False) -> dict:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class ListMixin(QueryParamsMixin):
    """A list takes its `filterset_class`'s filters and, from `paginated(...)`, limit, marker and
    (with `sort_keys`) sort_key, sort_dir; its other actions take no query parameters."""

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def accepted(self, obj):
        return Response(self.get_serializer(obj).data, status=status.HTTP_202_ACCEPTED)


# Designate's RecordSetsController keys but `records`, which its storage has no column for (it answers
# invalid_sort_key too); the cross-zone list takes `id` as well.
RECORDSET_SORT_KEYS = {key: "zone__project_id" if key == "tenant_id" else key for key in (
    "created_at", "id", "updated_at", "zone_id", "tenant_id", "name", "type", "ttl")}


class ZoneViewSet(ListMixin, viewsets.GenericViewSet):
    serializer_class = ZoneSerializer
    filterset_class = ZoneFilter
    pagination_class = paginated("zones")
    sort_keys = ["created_at", "id", "updated_at", "name", "tenant_id", "serial", "ttl", "status"]
    permission_classes = API_PERMISSIONS
    lookup_url_kwarg = "zone_id"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Zone.objects.none()
        return selectors.zones_for(project_scope(self.request)).order_by("created_at", "id")

    def get_object(self):
        return visible_zone(self.request, self.kwargs["zone_id"])

    def retrieve(self, request, zone_id):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=ZoneCreateSerializer, responses={202: ZoneSerializer})
    def create(self, request):
        data = _input(ZoneCreateSerializer, request)
        data.pop("type", None)
        pool_id = data.pop("attributes", {}).get("pool_id")
        return self.accepted(writes.create_zone(project_id=acting_project(request), pool_id=pool_id,
                                                  admin=is_admin(request), actor=actor_of(request), **data))

    @extend_schema(request=ZoneUpdateSerializer, responses={202: ZoneSerializer})
    def partial_update(self, request, zone_id):
        data = _input(ZoneUpdateSerializer, request)
        with changing(request, zone_id) as scoped:
            return self.accepted(writes.update_zone(zone_id, **scoped, **data))

    @extend_schema(request=None, responses={202: ZoneSerializer})
    def destroy(self, request, zone_id):
        with changing(request, zone_id) as scoped:
            return self.accepted(writes.delete_zone(zone_id, **scoped))


class RecordSetViewSet(ListMixin, viewsets.GenericViewSet):
    """Recordsets of one zone. SOA and apex NS are listed but belong to dnsctl (changing them is a 400)."""

    serializer_class = RecordSetSerializer
    filterset_class = RecordSetFilter
    pagination_class = paginated("recordsets")
    sort_keys = RECORDSET_SORT_KEYS
    permission_classes = API_PERMISSIONS
    lookup_url_kwarg = "recordset_id"

    def zone(self) -> Zone:
        if not hasattr(self, "_zone"):
            self._zone = visible_zone(self.request, self.kwargs["zone_id"])
        return self._zone

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RecordSet.objects.none()
        return self.zone().recordsets.select_related("zone").order_by("created_at", "id")

    def get_object(self):
        return _get(self.get_queryset(), self.kwargs["recordset_id"], RecordSetNotFound)

    def retrieve(self, request, zone_id, recordset_id):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=RecordSetCreateSerializer, responses={202: RecordSetSerializer})
    def create(self, request, zone_id):
        data = _input(RecordSetCreateSerializer, request)
        with changing(request, zone_id) as scoped:
            return self.accepted(writes.create_recordset(zone_id, **scoped, **data))

    @extend_schema(request=RecordSetUpdateSerializer, responses={202: RecordSetSerializer})
    def update(self, request, zone_id, recordset_id):
        data = _input(RecordSetUpdateSerializer, request)
        with changing(request, zone_id, recordset_id) as scoped:
            return self.accepted(writes.update_recordset(zone_id, recordset_id, **scoped, **data))

    @extend_schema(request=None, responses={202: RecordSetSerializer})
    def destroy(self, request, zone_id, recordset_id):
        with changing(request, zone_id, recordset_id) as scoped:
            return self.accepted(writes.delete_recordset(zone_id, recordset_id, **scoped))


class AllRecordSetsViewSet(ListMixin, viewsets.GenericViewSet):
    """Every recordset the caller can see, across zones (`zone_id` filters)."""

    serializer_class = RecordSetSerializer
    filterset_class = RecordSetFilter
    pagination_class = paginated("recordsets")
    sort_keys = RECORDSET_SORT_KEYS
    permission_classes = API_PERMISSIONS

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RecordSet.objects.none()
        zones = selectors.zones_for(project_scope(self.request))
        return RecordSet.objects.filter(zone__in=zones).select_related("zone").order_by("created_at", "id")


class PoolViewSet(ListMixin, viewsets.GenericViewSet):
    """Pools: every user reads the public shape; admins also see the servers, and write."""

    filterset_class = PoolFilter
    pagination_class = paginated("pools")
    sort_keys = ["created_at", "id", "updated_at", "name"]
    permission_classes = API_PERMISSIONS + [IsAdminOrReadOnly]
    lookup_url_kwarg = "pool_id"

    def get_queryset(self):
        """Members see the pools they may create zones in; admins every pool."""
        if getattr(self, "swagger_fake_view", False):
            return Pool.objects.none()
        scope = None if is_admin(self.request) else acting_project(self.request)
        return selectors.pools_for(scope).prefetch_related("ns_records", "targets", "nameservers",
                                                          "also_notifies").order_by("created_at", "id")

    def get_serializer_class(self):
        return PoolAdminSerializer if is_admin(self.request) else PoolSerializer

    def get_object(self):
        return _get(self.get_queryset(), self.kwargs["pool_id"], PoolNotFound)

    def reloaded(self, pool, code=status.HTTP_200_OK):
        return Response(self.get_serializer(self.get_queryset().get(id=pool.id)).data, status=code)

    def retrieve(self, request, pool_id):
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(request=PoolInputSerializer, responses={201: PoolAdminSerializer})
    def create(self, request):
        data = _input(PoolInputSerializer, request)
        return self.reloaded(pools.save_pool(None, **data), status.HTTP_201_CREATED)

    @extend_schema(request=PoolInputSerializer, responses={200: PoolAdminSerializer})
    def partial_update(self, request, pool_id):
        pool = self.get_object()
        data = _input(PoolInputSerializer, request, partial=True)
        for field in ("name", "description", "threshold_percentage"):
            data.setdefault(field, getattr(pool, field))
        return self.reloaded(pools.save_pool(pool, **data))

    @extend_schema(request=None, responses={204: None})
    def destroy(self, request, pool_id):
        pools.delete_pool(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class TargetSyncView(QueryParamsMixin, APIView):
    """Admin only: replay every change since a timestamp onto one target of a pool (done in Celery)."""

    permission_classes = API_PERMISSIONS + [IsAdmin]

    @extend_schema(request=TargetSyncSerializer, responses={202: OpenApiTypes.OBJECT})
    def post(self, request, pool_id, target_id):
        pool = _get(Pool.objects.all(), pool_id, PoolNotFound)
        since = _input(TargetSyncSerializer, request)["since"]
        message = sweeps.start_target_sync(str(pool.id), target_id, since)
        return Response({"message": message}, status=status.HTTP_202_ACCEPTED)


class NameserversView(QueryParamsMixin, APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(responses=NameserverListSerializer)
    def get(self, request, zone_id):
        return Response({"nameservers": selectors.nameservers_of(visible_zone(request, zone_id))})


class PropagationView(QueryParamsMixin, APIView):
    """Our extension: each target's and nameserver's last result for the zone."""

    permission_classes = API_PERMISSIONS

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, zone_id):
        return Response(selectors.propagation_of(visible_zone(request, zone_id), operator=is_admin(request)))


def _version(request) -> dict:
    return {"id": "v2.0", "status": "CURRENT", "updated": "2025-01-01T00:00:00Z",
            "links": [{"rel": "self", "href": reverse("api:v2", request=request)}]}


class RootView(QueryParamsMixin, APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({"versions": [_version(request)]})


class VersionView(QueryParamsMixin, APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        body = _version(request)
        body["links"] += [
            {"rel": name, "href": reverse(f"api:{view}", request=request)}
            for name, view in (("zones", "zone-list"), ("recordsets", "all-recordset-list"),
                               ("pools", "pool-list"), ("schema", "schema"), ("docs", "docs"))
        ]
        return Response({"version": body})
