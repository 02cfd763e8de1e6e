"""Designate's /v2/quotas and /v2/limits.

GET /v2/quotas and GET /v2/quotas/{project_id} show a project's limits (a member only its own
project's; admins any); PATCH sets some of them and DELETE resets them to the defaults (admins).
GET /v2/limits shows the caller's project's limits in Designate's `max_*` names.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from zones import quotas

from .auth import API_PERMISSIONS, acting_project, is_admin
from .filters import QueryParamsMixin
from .pagination import MAX_LIMIT


class OwnQuotaView(QueryParamsMixin, APIView):
    """GET /v2/quotas: the caller's own project's."""

    permission_classes = API_PERMISSIONS

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="v2_quotas_own")
    def get(self, request):
        return Response(quotas.quotas_of(acting_project(request)))


class QuotaView(QueryParamsMixin, APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, project_id):
        if project_id != acting_project(request) and not is_admin(request):
            raise PermissionDenied("Only admins may see another project's quotas.")
        return Response(quotas.quotas_of(project_id))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def patch(self, request, project_id):
        self._admin_only(request)
        return Response(quotas.set_quotas(project_id, request.data))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, project_id):
        self._admin_only(request)
        quotas.reset_quotas(project_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @staticmethod
    def _admin_only(request):
        if not is_admin(request):
            raise PermissionDenied("Only admins may change quotas.")


class LimitsView(QueryParamsMixin, APIView):
    permission_classes = API_PERMISSIONS

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({**quotas.absolute_limits(acting_project(request)), "max_page_limit": MAX_LIMIT})
